/* The gateway actor in isolation: a real `souk actor gateway` process, real
 * HTTP over loopback, and the test playing the supervisor (control ROUTER),
 * the sender (PULL) and session actors (DEALERs named by WaId). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gw_harness.h"
#include "souk/error.h"

#define WAID "14155550100"
#define WAID2 "447700900123"
#define ACK_TEXT "working on it"

static int s_start(void **state, const char *const *env)
{
    gwh_t *h = calloc(1, sizeof *h);
    if (gwh_start(h, env) < 0) {
        fprintf(stderr, "gateway did not start (log: %s)\n", h->log);
        gwh_stop(h);
        free(h);
        return -1;
    }
    *state = h;
    return 0;
}

static int setup(void **state) { return s_start(state, NULL); }

static int setup_short_budget(void **state)
{
    const char *env[] = { "SOUK_REPLY_BUDGET_MS=200", NULL };
    return s_start(state, env);
}

static int setup_race(void **state)
{
    const char *env[] = { "SOUK_REPLY_BUDGET_MS=60", "SOUK_LOG_LEVEL=warn", NULL };
    return s_start(state, env);
}

static int teardown(void **state)
{
    gwh_t *h = *state;
    gwh_stop(h);
    free(h);
    return 0;
}

/* Posts a signed inbound webhook for (sid, waid, body); returns the fd. */
static int s_post(gwh_t *h, const char *sid, const char *waid, const char *body)
{
    twilio_form_t *f = gwh_form(sid, waid, body);
    int fd = gwh_webhook(h, f);
    twilio_form_free(&f);
    assert_true(fd >= 0);
    return fd;
}

/* Reads the response on fd and closes it; returns the status. */
static int s_read(int fd, gwh_resp_t *r, int timeout_ms)
{
    int rc = gwh_http_read(fd, timeout_ms, r);
    close(fd);
    assert_int_equal(rc, 0);
    return r->status;
}

/* Sends `raw` and expects `status` with `text` in the body. */
static void s_expect(gwh_t *h, const char *raw, int status, const char *text)
{
    gwh_resp_t r;
    int st = gwh_http(h, raw, &r);
    if (st != status || (text && !strstr(r.body ? r.body : "", text)))
        fprintf(stderr, "expected %d '%s', got %d '%s'\n", status, text ? text : "", st,
                r.body ? r.body : "");
    assert_int_equal(st, status);
    if (text)
        assert_non_null(strstr(r.body, text));
    assert_true(r.body_len > 0); /* never an empty body */
    gwh_resp_clear(&r);
}

static void s_expect_post(gwh_t *h, const twilio_form_t *f, const char *sign_url,
                          const char *signature, const char *host, int status, const char *text)
{
    char *raw = gwh_post("/webhooks/whatsapp", f, sign_url, signature, host, NULL, NULL);
    s_expect(h, raw, status, text);
    free(raw);
}

/* Receives the next INBOUND on s and checks its sid. */
static void s_expect_inbound(zsock_t *s, const char *sid, souk_msg_t *out)
{
    souk_msg_t m;
    assert_int_equal(gwh_session_recv(s, SOUK_MSG_NONE, 5000, &m), 0);
    assert_int_equal(m.type, SOUK_MSG_INBOUND);
    assert_string_equal(m.inbound.msg_sid, sid);
    if (out)
        *out = m;
    else
        souk_msg_clear(&m);
}

static bool s_expect_verdict(zsock_t *s, const char *sid)
{
    souk_msg_t m;
    assert_int_equal(gwh_session_recv(s, SOUK_MSG_REPLY_VERDICT, 5000, &m), 0);
    assert_string_equal(m.reply_verdict.msg_sid, sid);
    bool inline_ = m.reply_verdict.inline_;
    if (inline_) { /* as a session does: the verdict is recorded, write it */
        souk_msg_t ack = { .type = SOUK_MSG_INLINE_ACK };
        ack.inline_ack.msg_sid = (char *)sid;
        ack.inline_ack.ok = true;
        assert_int_equal(gwh_session_send(s, &ack), 0);
    }
    souk_msg_clear(&m);
    return inline_;
}

/* Nothing arrives on the session within ms. */
static void s_expect_quiet(zsock_t *s, int ms)
{
    souk_msg_t m;
    int rc = gwh_session_recv(s, SOUK_MSG_NONE, ms, &m);
    if (rc == 0) {
        fprintf(stderr, "unexpected %s\n", souk_msg_name(m.type));
        souk_msg_clear(&m);
    }
    assert_int_equal(rc, -1);
}

static void s_session_exit(gwh_t *h, const char *waid, bool quarantined)
{
    souk_msg_t m = { .type = SOUK_MSG_SESSION_EXIT };
    m.session_exit.waid = (char *)waid;
    m.session_exit.signal = quarantined ? 11 : 9;
    m.session_exit.quarantined = quarantined;
    assert_int_equal(gwh_control_send(h, &m), SOUK_OK);
}

static void s_expect_spawn(gwh_t *h, const char *waid)
{
    souk_msg_t m;
    assert_int_equal(gwh_control_recv(h, SOUK_MSG_SPAWN_SESSION, 5000, &m), 0);
    assert_string_equal(m.spawn_session.waid, waid);
    souk_msg_clear(&m);
}

/* ---- probes and routes ---------------------------------------------------------- */

static void test_healthz_readyz(void **state)
{
    gwh_t *h = *state;
    s_expect(h, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, "ok");
    s_expect(h, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 503, "not ready");
    assert_int_equal(gwh_set_ready(h, true), 0);
    s_expect(h, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 200, "ready");
    assert_int_equal(gwh_set_ready(h, false), 0);
    s_expect(h, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 503, "sender starting");
}

static void test_not_found_and_methods(void **state)
{
    gwh_t *h = *state;
    s_expect(h, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not found");
    s_expect(h, "POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 404, NULL);
    gwh_resp_t r;
    assert_int_equal(gwh_http(h, "GET /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\n\r\n", &r), 405);
    assert_non_null(strcasestr(r.headers, "allow: POST"));
    gwh_resp_clear(&r);
    s_expect(h, "GET /webhooks/whatsapp/status HTTP/1.1\r\nHost: x\r\n\r\n", 405, "POST");
    s_expect(h, "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na=b", 405, "GET");
}

/* Keep-alive: several requests on one connection, each answered. */
static void test_keepalive(void **state)
{
    gwh_t *h = *state;
    const char *one = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd = gwh_http_send(h, one, strlen(one));
    assert_true(fd >= 0);
    for (int i = 0; i < 3; i++) {
        gwh_resp_t r;
        assert_int_equal(gwh_http_read(fd, 3000, &r), 0);
        assert_int_equal(r.status, 200);
        gwh_resp_clear(&r);
        if (i < 2)
            assert_int_equal(send(fd, one, strlen(one), MSG_NOSIGNAL), (ssize_t)strlen(one));
    }
    close(fd);
}

/* ---- limits and validation --------------------------------------------------------- */

static void test_limits(void **state)
{
    gwh_t *h = *state;
    /* 413 from the header alone: the body is never sent */
    s_expect(h,
             "POST /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\n"
             "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n",
             413, "64 KiB");
    /* exactly 64 KiB is allowed through the size check (then fails later) */
    {
        size_t n = 64 * 1024;
        char *raw = malloc(n + 512);
        int off = sprintf(raw, "POST /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\nContent-Type: "
                               "application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n\r\n", n);
        memset(raw + off, 'a', n);
        raw[off + n] = '\0';
        s_expect(h, raw, 403, "X-Twilio-Signature missing");
        free(raw);
    }
    s_expect(h,
             "POST /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\n"
             "Content-Type: application/x-www-form-urlencoded\r\n\r\n",
             411, "Content-Length");
    s_expect(h,
             "POST /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
             "Content-Type: application/x-www-form-urlencoded\r\n\r\n3\r\na=b\r\n0\r\n\r\n",
             411, "chunked");
    s_expect(h,
             "POST /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: 2\r\n\r\n{}",
             415, "x-www-form-urlencoded");
    s_expect(h,
             "POST /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na=b",
             415, NULL);
    s_expect(h,
             "POST /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\n"
             "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\n"
             "Body=%ZZabc",
             400, "malformed");
    s_expect(h,
             "POST /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\n"
             "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\n"
             "Body=%C3%28",
             400, "UTF-8");
    /* the status callback has the same limits */
    s_expect(h,
             "POST /webhooks/whatsapp/status HTTP/1.1\r\nHost: x\r\n"
             "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 70000\r\n\r\n",
             413, NULL);
    s_expect(h,
             "POST /webhooks/whatsapp/status HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
             "Content-Length: 3\r\n\r\na=b",
             415, NULL);
    /* and the connection still works for the next request */
    s_expect(h, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, "ok");
}

static void test_fields(void **state)
{
    gwh_t *h = *state;
    twilio_form_t *f = twilio_form_new();
    twilio_form_add(f, "MessageSid", "SM00000000000000000000000000000001");
    twilio_form_add(f, "WaId", WAID);
    twilio_form_add(f, "Body", "hi");
    s_expect_post(h, f, NULL, NULL, NULL, 400, "From and WaId");
    twilio_form_free(&f);

    f = twilio_form_new();
    twilio_form_add(f, "MessageSid", "SM00000000000000000000000000000002");
    twilio_form_add(f, "From", "whatsapp:+" WAID);
    s_expect_post(h, f, NULL, NULL, NULL, 400, "From and WaId");
    twilio_form_free(&f);

    f = gwh_form("SM00000000000000000000000000000003", WAID, "hi");
    twilio_form_t *g = twilio_form_new();
    for (size_t i = 0; i < twilio_form_count(f); i++)
        twilio_form_add(g, twilio_form_name(f, i),
                        strcmp(twilio_form_name(f, i), "WaId") == 0 ? "14155550199"
                                                                     : twilio_form_value(f, i));
    s_expect_post(h, g, NULL, NULL, NULL, 400, "WaId does not match");
    twilio_form_free(&f);
    twilio_form_free(&g);

    f = gwh_form("not a sid!", WAID, "hi");
    s_expect_post(h, f, NULL, NULL, NULL, 400, "MessageSid");
    twilio_form_free(&f);
}

/* ---- signatures ------------------------------------------------------------------ */

static void test_signature(void **state)
{
    gwh_t *h = *state;
    zsock_t *s = gwh_session(h, WAID, true);
    assert_non_null(s);
    twilio_form_t *f = gwh_form("SM10000000000000000000000000000001", WAID, "hi");
    s_expect_post(h, f, NULL, "", NULL, 403, "missing");
    s_expect_post(h, f, NULL, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", NULL, 403, "does not match");
    /* signed for the host the request claims, not for the public URL */
    s_expect_post(h, f, "https://evil.example/webhooks/whatsapp", NULL, "evil.example", 403,
                  "does not match");
    s_expect_post(h, f, "http://localhost/webhooks/whatsapp", NULL, "localhost", 403, NULL);
    /* a token other than ours */
    {
        char sig[29];
        twilio_signature_compute("another-token", GWH_PUBLIC_URL "/webhooks/whatsapp", f, sig);
        s_expect_post(h, f, NULL, sig, NULL, 403, NULL);
    }
    s_expect_quiet(s, 100);

    /* signed for the public URL, whatever the Host header says */
    int fd;
    {
        char *raw = gwh_post("/webhooks/whatsapp", f, NULL, NULL, "10.1.2.3:8080", NULL, NULL);
        fd = gwh_http_send(h, raw, strlen(raw));
        free(raw);
    }
    s_expect_inbound(s, "SM10000000000000000000000000000001", NULL);
    souk_msg_t m = { .type = SOUK_MSG_MERGED };
    m.merged.msg_sid = "SM10000000000000000000000000000001";
    m.merged.into_sid = "SM10000000000000000000000000000009";
    gwh_session_send(s, &m);
    gwh_resp_t r;
    assert_int_equal(s_read(fd, &r, 5000), 200);
    gwh_resp_clear(&r);
    twilio_form_free(&f);

    /* port variants: signed with :443 added, the public URL has none */
    const struct {
        const char *sid, *sign_url;
    } ok[] = {
        { "SM10000000000000000000000000000002", GWH_PUBLIC_URL ":443/webhooks/whatsapp" },
        { "SM10000000000000000000000000000003", GWH_PUBLIC_URL "/webhooks/whatsapp" },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        f = gwh_form(ok[i].sid, WAID, "port");
        char *raw = gwh_post("/webhooks/whatsapp", f, ok[i].sign_url, NULL, NULL, NULL, NULL);
        fd = gwh_http_send(h, raw, strlen(raw));
        free(raw);
        s_expect_inbound(s, ok[i].sid, NULL);
        m.merged.msg_sid = (char *)ok[i].sid;
        gwh_session_send(s, &m);
        assert_int_equal(s_read(fd, &r, 5000), 200);
        gwh_resp_clear(&r);
        twilio_form_free(&f);
    }
    /* a wrong port is not a variant */
    f = gwh_form("SM10000000000000000000000000000004", WAID, "port");
    s_expect_post(h, f, GWH_PUBLIC_URL ":8443/webhooks/whatsapp", NULL, NULL, 403, NULL);
    twilio_form_free(&f);

    /* the query string is part of the signed URL */
    f = gwh_form("SM10000000000000000000000000000005", WAID, "query");
    char *raw = gwh_post("/webhooks/whatsapp?tenant=shop1", f,
                         GWH_PUBLIC_URL "/webhooks/whatsapp", NULL, NULL, NULL, NULL);
    s_expect(h, raw, 403, NULL);
    free(raw);
    raw = gwh_post("/webhooks/whatsapp?tenant=shop1", f,
                   GWH_PUBLIC_URL "/webhooks/whatsapp?tenant=shop1", NULL, NULL, NULL, NULL);
    fd = gwh_http_send(h, raw, strlen(raw));
    free(raw);
    s_expect_inbound(s, "SM10000000000000000000000000000005", NULL);
    m.merged.msg_sid = "SM10000000000000000000000000000005";
    gwh_session_send(s, &m);
    assert_int_equal(s_read(fd, &r, 5000), 200);
    gwh_resp_clear(&r);
    twilio_form_free(&f);

    /* escapes in the query: libwebsockets decodes it, the canonical
     * re-encoding is what Twilio signed */
    f = gwh_form("SM10000000000000000000000000000006", WAID, "query");
    raw = gwh_post("/webhooks/whatsapp?shop=a%2Fb+c&x=1", f,
                   GWH_PUBLIC_URL "/webhooks/whatsapp?shop=a%2Fb+c&x=1", NULL, NULL, NULL, NULL);
    fd = gwh_http_send(h, raw, strlen(raw));
    free(raw);
    s_expect_inbound(s, "SM10000000000000000000000000000006", NULL);
    m.merged.msg_sid = "SM10000000000000000000000000000006";
    gwh_session_send(s, &m);
    assert_int_equal(s_read(fd, &r, 5000), 200);
    gwh_resp_clear(&r);
    twilio_form_free(&f);
    zsock_destroy(&s);
}

/* ---- routing --------------------------------------------------------------------------- */

static void test_inline_reply(void **state)
{
    gwh_t *h = *state;
    zsock_t *s = gwh_session(h, WAID, true);
    twilio_form_t *f = gwh_form("SM20000000000000000000000000000001", WAID, "caf\xc3\xa9 & <b>");
    twilio_form_add(f, "SomethingNew", "kept");
    twilio_form_add(f, "MediaUrl0", "https://api.twilio.com/x");
    twilio_form_add(f, "MediaUrl0", "dup");
    int fd = gwh_webhook(h, f);
    twilio_form_free(&f);
    souk_msg_t m;
    s_expect_inbound(s, "SM20000000000000000000000000000001", &m);
    assert_string_equal(m.inbound.waid, WAID);
    assert_string_equal(m.inbound.from, "whatsapp:+" WAID);
    assert_string_equal(m.inbound.profile, "Ana");
    assert_string_equal(m.inbound.body, "caf\xc3\xa9 & <b>");
    assert_int_equal(m.inbound.num_media, 0);
    assert_true(strlen(m.inbound.request_id) > 0);
    assert_true(m.inbound.received_ms > 1600000000000ull);
    json_t *params = json_loads(m.inbound.params, 0, NULL);
    assert_non_null(params);
    assert_string_equal(json_string_value(json_object_get(params, "SomethingNew")), "kept");
    assert_string_equal(json_string_value(json_object_get(params, "AccountSid")),
                        "AC00000000000000000000000000000000");
    assert_int_equal(json_array_size(json_object_get(params, "MediaUrl0")), 2);
    json_decref(params);
    souk_msg_clear(&m);

    gwh_accept(s, "SM20000000000000000000000000000001", false);
    gwh_offer(s, "SM20000000000000000000000000000001", "Hello & <welcome> \"Ana\"");
    assert_true(s_expect_verdict(s, "SM20000000000000000000000000000001"));
    gwh_resp_t r;
    assert_int_equal(s_read(fd, &r, 5000), 200);
    assert_non_null(strcasestr(r.headers, "content-type: text/xml"));
    assert_non_null(strstr(r.body, "<Message>Hello &amp; &lt;welcome&gt;"));
    assert_true(strncmp(r.body, "<?xml", 5) == 0);
    gwh_resp_clear(&r);
    /* the same offer again gets the same verdict */
    gwh_offer(s, "SM20000000000000000000000000000001", "Hello again");
    assert_true(s_expect_verdict(s, "SM20000000000000000000000000000001"));
    /* an offer for a message this gateway never saw goes through the sender */
    gwh_offer(s, "SM29999999999999999999999999999999", "late");
    assert_false(s_expect_verdict(s, "SM29999999999999999999999999999999"));
    zsock_destroy(&s);
}

static void test_dedupe(void **state)
{
    gwh_t *h = *state;
    zsock_t *s = gwh_session(h, WAID, true);
    int fd1 = s_post(h, "SM30000000000000000000000000000001", WAID, "once");
    s_expect_inbound(s, "SM30000000000000000000000000000001", NULL);
    /* the repeat is answered at once, while the first still waits: 503
     * while no session has stored the message (a 200 would vouch for a
     * message only this gateway holds), <Response/> once one has */
    int fd2 = s_post(h, "SM30000000000000000000000000000001", WAID, "once");
    gwh_resp_t r;
    assert_int_equal(s_read(fd2, &r, 2000), 503);
    gwh_resp_clear(&r);
    s_expect_quiet(s, 100);
    gwh_accept(s, "SM30000000000000000000000000000001", false);
    fd2 = s_post(h, "SM30000000000000000000000000000001", WAID, "once");
    assert_int_equal(s_read(fd2, &r, 2000), 200);
    assert_non_null(strstr(r.body, "<Response/>"));
    gwh_resp_clear(&r);
    s_expect_quiet(s, 100);
    gwh_offer(s, "SM30000000000000000000000000000001", "answer");
    assert_true(s_expect_verdict(s, "SM30000000000000000000000000000001"));
    assert_int_equal(s_read(fd1, &r, 5000), 200);
    assert_non_null(strstr(r.body, "answer"));
    gwh_resp_clear(&r);
    /* and after it was answered */
    fd2 = s_post(h, "SM30000000000000000000000000000001", WAID, "once");
    assert_int_equal(s_read(fd2, &r, 2000), 200);
    assert_non_null(strstr(r.body, "<Response/>"));
    gwh_resp_clear(&r);
    s_expect_quiet(s, 100);
    zsock_destroy(&s);
}

static void test_spawn_hold_deliver_in_order(void **state)
{
    gwh_t *h = *state;
    const char *sids[] = { "SM40000000000000000000000000000001", "SM40000000000000000000000000000002",
                           "SM40000000000000000000000000000003" };
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = s_post(h, sids[i], WAID2, "held");
    s_expect_spawn(h, WAID2);
    /* one request to start it, not one per message */
    souk_msg_t m;
    assert_int_equal(gwh_control_recv(h, SOUK_MSG_SPAWN_SESSION, 300, &m), -1);
    zsock_t *s = gwh_session(h, WAID2, false);
    gwh_hello(s, WAID2);
    for (int i = 0; i < 3; i++)
        s_expect_inbound(s, sids[i], NULL);
    for (int i = 0; i < 3; i++) {
        gwh_accept(s, sids[i], false);
        gwh_offer(s, sids[i], "in order");
        assert_true(s_expect_verdict(s, sids[i]));
        gwh_resp_t r;
        assert_int_equal(s_read(fds[i], &r, 5000), 200);
        assert_non_null(strstr(r.body, "in order"));
        gwh_resp_clear(&r);
    }
    zsock_destroy(&s);
}

static void test_redeliver_after_exit(void **state)
{
    gwh_t *h = *state;
    zsock_t *s = gwh_session(h, WAID, true);
    const char *a = "SM50000000000000000000000000000001", *b = "SM50000000000000000000000000000002",
               *c = "SM50000000000000000000000000000003";
    int fa = s_post(h, a, WAID, "a");
    int fb = s_post(h, b, WAID, "b");
    s_expect_inbound(s, a, NULL);
    s_expect_inbound(s, b, NULL);
    gwh_accept(s, a, false); /* b is lost with the session */
    /* the ACCEPTED must be handled before the exit: a barrier */
    {
        souk_msg_t idle = { .type = SOUK_MSG_IDLE }, ok;
        idle.idle.waid = "barrier";
        gwh_session_send(s, &idle);
        assert_int_equal(gwh_session_recv(s, SOUK_MSG_IDLE_OK, 3000, &ok), 0);
        souk_msg_clear(&ok);
    }
    zsock_destroy(&s);
    s_session_exit(h, WAID, false);
    s_expect_spawn(h, WAID);
    int fc = s_post(h, c, WAID, "c"); /* arrives while the new one starts */
    s = gwh_session(h, WAID, false);
    gwh_hello(s, WAID);
    s_expect_inbound(s, b, NULL);
    s_expect_inbound(s, c, NULL);
    s_expect_quiet(s, 100);
    /* the restarted session answers all three */
    const char *all[] = { a, b, c };
    int fds[] = { fa, fb, fc };
    for (int i = 0; i < 3; i++) {
        if (i)
            gwh_accept(s, all[i], false);
        gwh_offer(s, all[i], "after restart");
        assert_true(s_expect_verdict(s, all[i]));
        gwh_resp_t r;
        assert_int_equal(s_read(fds[i], &r, 5000), 200);
        assert_non_null(strstr(r.body, "after restart"));
        gwh_resp_clear(&r);
    }
    zsock_destroy(&s);
}

static void test_budget_ack_then_rest(void **state)
{
    gwh_t *h = *state; /* budget 200 ms */
    zsock_t *s = gwh_session(h, WAID, true);
    const char *sid = "SM60000000000000000000000000000001";
    long long t0 = gwh_now_ms();
    int fd = s_post(h, sid, WAID, "slow");
    s_expect_inbound(s, sid, NULL);
    gwh_accept(s, sid, false);
    gwh_resp_t r;
    assert_int_equal(s_read(fd, &r, 3000), 200);
    long long waited = gwh_now_ms() - t0;
    assert_non_null(strstr(r.body, ACK_TEXT));
    assert_non_null(strcasestr(r.headers, "content-type: text/xml"));
    gwh_resp_clear(&r);
    assert_true(waited >= 190);
    gwh_offer(s, sid, "late answer");
    assert_false(s_expect_verdict(s, sid));
    gwh_offer(s, sid, "late answer");
    assert_false(s_expect_verdict(s, sid));
    /* a message held (no session) past its budget is answered 503, never
     * 200 (Twilio would take it for delivered), and is still delivered when
     * the session comes; its answer goes by REST */
    const char *sid2 = "SM60000000000000000000000000000002";
    fd = s_post(h, sid2, WAID2, "held");
    s_expect_spawn(h, WAID2);
    assert_int_equal(s_read(fd, &r, 3000), 503);
    gwh_resp_clear(&r);
    zsock_t *s2 = gwh_session(h, WAID2, false);
    gwh_hello(s2, WAID2);
    s_expect_inbound(s2, sid2, NULL);
    gwh_accept(s2, sid2, false);
    gwh_offer(s2, sid2, "by REST");
    assert_false(s_expect_verdict(s2, sid2));
    zsock_destroy(&s2);
    zsock_destroy(&s);
}

/* The edge of the budget: offers timed around the deadline, many times.
 * For every request exactly one of (the reply inline in the HTTP answer,
 * verdict inline=false) must happen. */
static void test_budget_race(void **state)
{
    gwh_t *h = *state; /* budget 60 ms */
    enum { USERS = 16, ROUNDS = 15, BUDGET = 60 };
    zsock_t *sess[USERS];
    char waids[USERS][16];
    for (int u = 0; u < USERS; u++) {
        snprintf(waids[u], sizeof waids[u], "1555000%04d", u);
        sess[u] = gwh_session(h, waids[u], true);
        assert_non_null(sess[u]);
    }
    int inline_n = 0, rest_n = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int fds[USERS];
        long long t0[USERS], offer_at[USERS];
        bool offered[USERS];
        char sids[USERS][40];
        for (int u = 0; u < USERS; u++) {
            snprintf(sids[u], sizeof sids[u], "SM7%02d%02d000000000000000000000000000", round, u);
            t0[u] = gwh_now_ms();
            fds[u] = s_post(h, sids[u], waids[u], "race");
            /* from 4 ms early to 4 ms late, spread over the users */
            offer_at[u] = t0[u] + BUDGET - 4 + (u * 9) / USERS;
            offered[u] = false;
        }
        for (int u = 0; u < USERS; u++) {
            s_expect_inbound(sess[u], sids[u], NULL);
            gwh_accept(sess[u], sids[u], false);
        }
        for (int left = USERS; left > 0;) {
            long long now = gwh_now_ms();
            for (int u = 0; u < USERS; u++)
                if (!offered[u] && now >= offer_at[u]) {
                    gwh_offer(sess[u], sids[u], "RACE-REPLY");
                    offered[u] = true;
                    left--;
                }
            if (left)
                usleep(200); /* pacing the offers is the point of this test */
        }
        for (int u = 0; u < USERS; u++) {
            bool verdict_inline = s_expect_verdict(sess[u], sids[u]);
            gwh_resp_t r;
            assert_int_equal(s_read(fds[u], &r, 3000), 200);
            bool body_inline = strstr(r.body, "RACE-REPLY") != NULL;
            bool ack = strstr(r.body, ACK_TEXT) != NULL;
            if (verdict_inline != body_inline || body_inline == ack)
                fprintf(stderr, "round %d user %d: verdict=%d body=%s\n", round, u,
                        verdict_inline, r.body);
            assert_int_equal(verdict_inline, body_inline);
            assert_true(body_inline != ack);
            gwh_resp_clear(&r);
            if (verdict_inline)
                inline_n++;
            else
                rest_n++;
        }
    }
    fprintf(stderr, "budget race: %d inline, %d through the sender\n", inline_n, rest_n);
    assert_int_equal(inline_n + rest_n, USERS * ROUNDS);
    for (int u = 0; u < USERS; u++)
        zsock_destroy(&sess[u]);
}

static void test_merged_and_duplicate(void **state)
{
    gwh_t *h = *state;
    zsock_t *s = gwh_session(h, WAID, true);
    const char *a = "SM80000000000000000000000000000001", *b = "SM80000000000000000000000000000002";
    int fa = s_post(h, a, WAID, "first");
    s_expect_inbound(s, a, NULL);
    gwh_accept(s, a, false);
    souk_msg_t m = { .type = SOUK_MSG_MERGED };
    m.merged.msg_sid = (char *)a;
    m.merged.into_sid = "SM80000000000000000000000000000003";
    gwh_session_send(s, &m);
    gwh_resp_t r;
    assert_int_equal(s_read(fa, &r, 2000), 200);
    assert_non_null(strstr(r.body, "<Response/>"));
    gwh_resp_clear(&r);
    gwh_offer(s, a, "should not be inline");
    assert_false(s_expect_verdict(s, a));

    int fb = s_post(h, b, WAID, "seen by the store");
    s_expect_inbound(s, b, NULL);
    gwh_accept(s, b, true);
    assert_int_equal(s_read(fb, &r, 2000), 200);
    assert_non_null(strstr(r.body, "<Response/>"));
    gwh_resp_clear(&r);
    zsock_destroy(&s);
}

static void test_quarantine_apology(void **state)
{
    gwh_t *h = *state;
    zsock_t *s = gwh_session(h, WAID, true);
    const char *a = "SM90000000000000000000000000000001";
    int fa = s_post(h, a, WAID, "crash me");
    s_expect_inbound(s, a, NULL);
    zsock_destroy(&s);
    s_session_exit(h, WAID, true);
    gwh_resp_t r;
    assert_int_equal(s_read(fa, &r, 2000), 200);
    assert_non_null(strstr(r.body, "Sorry"));
    gwh_resp_clear(&r);
    int fb = s_post(h, "SM90000000000000000000000000000002", WAID, "again");
    assert_int_equal(s_read(fb, &r, 2000), 200);
    assert_non_null(strstr(r.body, "Sorry"));
    gwh_resp_clear(&r);
    souk_msg_t m;
    assert_int_equal(gwh_control_recv(h, SOUK_MSG_SPAWN_SESSION, 200, &m), -1);
    /* a session that says hello again lifts it */
    s = gwh_session(h, WAID, true);
    int fc = s_post(h, "SM90000000000000000000000000000003", WAID, "better now");
    s_expect_inbound(s, "SM90000000000000000000000000000003", NULL);
    gwh_accept(s, "SM90000000000000000000000000000003", false);
    gwh_offer(s, "SM90000000000000000000000000000003", "welcome back");
    assert_true(s_expect_verdict(s, "SM90000000000000000000000000000003"));
    assert_int_equal(s_read(fc, &r, 2000), 200);
    assert_non_null(strstr(r.body, "welcome back"));
    gwh_resp_clear(&r);
    zsock_destroy(&s);
}

static void test_idle(void **state)
{
    gwh_t *h = *state;
    zsock_t *s = gwh_session(h, WAID, true);
    const char *a = "SMA0000000000000000000000000000001";
    int fa = s_post(h, a, WAID, "busy");
    s_expect_inbound(s, a, NULL);
    souk_msg_t idle = { .type = SOUK_MSG_IDLE }, m;
    idle.idle.waid = WAID;
    gwh_session_send(s, &idle);
    assert_int_equal(gwh_session_recv(s, SOUK_MSG_IDLE_OK, 2000, &m), 0);
    assert_false(m.idle_ok.ok); /* a is in flight */
    souk_msg_clear(&m);
    gwh_accept(s, a, false);
    gwh_offer(s, a, "done");
    assert_true(s_expect_verdict(s, a));
    gwh_resp_t r;
    assert_int_equal(s_read(fa, &r, 2000), 200);
    gwh_resp_clear(&r);
    gwh_session_send(s, &idle);
    assert_int_equal(gwh_session_recv(s, SOUK_MSG_IDLE_OK, 2000, &m), 0);
    assert_true(m.idle_ok.ok);
    souk_msg_clear(&m);
    /* now the old session is on its way out: a new message is not sent to
     * it but held for a new one */
    const char *b = "SMA0000000000000000000000000000002";
    int fb = s_post(h, b, WAID, "after idle");
    s_expect_spawn(h, WAID);
    s_expect_quiet(s, 100);
    zsock_destroy(&s);
    s_session_exit(h, WAID, false);
    s_expect_spawn(h, WAID); /* still holding: asks again after the exit */
    s = gwh_session(h, WAID, false);
    gwh_hello(s, WAID);
    s_expect_inbound(s, b, NULL);
    gwh_accept(s, b, false);
    gwh_offer(s, b, "new session");
    assert_true(s_expect_verdict(s, b));
    assert_int_equal(s_read(fb, &r, 2000), 200);
    assert_non_null(strstr(r.body, "new session"));
    gwh_resp_clear(&r);
    zsock_destroy(&s);
}

static void test_busy_when_too_many_held(void **state)
{
    gwh_t *h = *state;
    enum { N = 64 };
    int fds[N];
    char sid[40];
    for (int i = 0; i < N; i++) {
        snprintf(sid, sizeof sid, "SMB%031d", i);
        fds[i] = s_post(h, sid, WAID2, "flood");
    }
    s_expect_spawn(h, WAID2);
    int fd = s_post(h, "SMBFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", WAID2, "one too many");
    gwh_resp_t r;
    assert_int_equal(s_read(fd, &r, 2000), 200);
    assert_non_null(strstr(r.body, "try again"));
    gwh_resp_clear(&r);
    /* the held ones are still delivered, in order */
    zsock_t *s = gwh_session(h, WAID2, false);
    gwh_hello(s, WAID2);
    for (int i = 0; i < N; i++) {
        snprintf(sid, sizeof sid, "SMB%031d", i);
        s_expect_inbound(s, sid, NULL);
        souk_msg_t m = { .type = SOUK_MSG_MERGED };
        m.merged.msg_sid = sid;
        m.merged.into_sid = "SMBFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF";
        gwh_session_send(s, &m);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(s_read(fds[i], &r, 3000), 200);
        gwh_resp_clear(&r);
    }
    zsock_destroy(&s);
}

/* ---- status callbacks ---------------------------------------------------------------------- */

static void test_status_callback(void **state)
{
    gwh_t *h = *state;
    twilio_form_t *f = twilio_form_new();
    twilio_form_add(f, "MessageSid", "SMC0000000000000000000000000000001");
    twilio_form_add(f, "MessageStatus", "delivered");
    twilio_form_add(f, "AccountSid", "AC00000000000000000000000000000000");
    twilio_form_add(f, "To", "whatsapp:+" WAID);
    char *raw = gwh_post("/webhooks/whatsapp/status", f, NULL, NULL, NULL, NULL, NULL);
    s_expect(h, raw, 200, "<Response/>");
    free(raw);
    zmq_pollitem_t it = { .socket = zsock_resolve(h->sender), .events = ZMQ_POLLIN };
    assert_int_equal(zmq_poll(&it, 1, 3000), 1);
    souk_msg_t m;
    assert_int_equal(souk_msg_recv(h->sender, NULL, NULL, &m, 0, NULL, 0), SOUK_OK);
    assert_int_equal(m.type, SOUK_MSG_DELIVERY);
    assert_string_equal(m.delivery.message_sid, "SMC0000000000000000000000000000001");
    assert_string_equal(m.delivery.status, "delivered");
    assert_int_equal(m.delivery.error_code, 0);
    assert_true(m.delivery.ts_ms > 0);
    souk_msg_clear(&m);

    twilio_form_add(f, "ErrorCode", "63016");
    /* signed for the inbound URL: wrong */
    raw = gwh_post("/webhooks/whatsapp/status", f, GWH_PUBLIC_URL "/webhooks/whatsapp", NULL,
                   NULL, NULL, NULL);
    s_expect(h, raw, 403, NULL);
    free(raw);
    raw = gwh_post("/webhooks/whatsapp/status", f, NULL, "", NULL, NULL, NULL);
    s_expect(h, raw, 403, "missing");
    free(raw);
    raw = gwh_post("/webhooks/whatsapp/status", f, NULL, NULL, NULL, NULL, NULL);
    s_expect(h, raw, 200, "<Response/>");
    free(raw);
    assert_int_equal(zmq_poll(&it, 1, 3000), 1);
    assert_int_equal(souk_msg_recv(h->sender, NULL, NULL, &m, 0, NULL, 0), SOUK_OK);
    assert_int_equal(m.delivery.error_code, 63016);
    souk_msg_clear(&m);
    twilio_form_free(&f);

    f = twilio_form_new();
    twilio_form_add(f, "MessageSid", "SMC0000000000000000000000000000002");
    raw = gwh_post("/webhooks/whatsapp/status", f, NULL, NULL, NULL, NULL, NULL);
    s_expect(h, raw, 400, "MessageStatus");
    free(raw);
    twilio_form_free(&f);
}

/* ---- stopping ---------------------------------------------------------------------------- */

static void test_sigterm_drain(void **state)
{
    gwh_t *h = *state;
    assert_int_equal(gwh_set_ready(h, true), 0);
    zsock_t *s = gwh_session(h, WAID, true);
    const char *a = "SMD0000000000000000000000000000001";
    int fa = s_post(h, a, WAID, "before stop");
    s_expect_inbound(s, a, NULL);
    gwh_accept(s, a, false);
    kill(h->pid, SIGTERM);
    /* new webhooks are refused, probes say not ready */
    long long end = gwh_now_ms() + 2000;
    int st = 0;
    while (gwh_now_ms() < end) {
        gwh_resp_t r;
        twilio_form_t *f = gwh_form("SMD0000000000000000000000000000002", WAID, "after stop");
        char *raw = gwh_post("/webhooks/whatsapp", f, NULL, NULL, NULL, NULL, NULL);
        st = gwh_http(h, raw, &r);
        free(raw);
        twilio_form_free(&f);
        gwh_resp_clear(&r);
        if (st == 503)
            break;
        /* a 200 here would be the duplicate answer of a request that beat
         * the signal; it must not be routed */
    }
    assert_int_equal(st, 503);
    s_expect(h, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 503, "shutting down");
    /* the pending request is still answered */
    gwh_offer(s, a, "answered while draining");
    assert_true(s_expect_verdict(s, a));
    gwh_resp_t r;
    assert_int_equal(s_read(fa, &r, 3000), 200);
    assert_non_null(strstr(r.body, "answered while draining"));
    gwh_resp_clear(&r);
    int status = gwh_wait_exit(h, 0, 3000);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    zsock_destroy(&s);
}

static void test_stop_deadline(void **state)
{
    gwh_t *h = *state;
    /* a message no session will take (none is started while stopping) */
    int fa = s_post(h, "SME0000000000000000000000000000001", WAID2, "held at stop");
    s_expect_spawn(h, WAID2);
    souk_msg_t m = { .type = SOUK_MSG_STOP };
    m.stop.reason = "shutdown";
    m.stop.drain_ms = 300;
    assert_int_equal(gwh_control_send(h, &m), SOUK_OK);
    gwh_resp_t r;
    assert_int_equal(s_read(fa, &r, 3000), 503);
    assert_non_null(strstr(r.body, "shutting down"));
    gwh_resp_clear(&r);
    int status = gwh_wait_exit(h, 0, 3000);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* The log has request ids and masked numbers; never the token or a number. */
static void test_logs(void **state)
{
    gwh_t *h = *state;
    twilio_form_t *f = gwh_form("SMF0000000000000000000000000000001", WAID, "hi");
    s_expect_post(h, f, NULL, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", NULL, 403, NULL);
    twilio_form_free(&f);
    int fd = s_post(h, "SMF0000000000000000000000000000002", WAID, "hi");
    s_expect_spawn(h, WAID);
    close(fd);
    int status = gwh_wait_exit(h, SIGTERM, 5000);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    FILE *lf = fopen(h->log, "r");
    assert_non_null(lf);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, lf);
    text[n] = '\0';
    fclose(lf);
    assert_non_null(strstr(text, "status=403"));
    assert_non_null(strstr(text, "req="));
    assert_null(strstr(text, GWH_TOKEN));
    assert_null(strstr(text, WAID));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_healthz_readyz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signature, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedupe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spawn_hold_deliver_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redeliver_after_exit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_ack_then_rest, setup_short_budget, teardown),
        cmocka_unit_test_setup_teardown(test_budget_race, setup_race, teardown),
        cmocka_unit_test_setup_teardown(test_merged_and_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quarantine_apology, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_when_too_many_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
