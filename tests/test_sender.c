/* The sender actor, as a process, against a local fake of Twilio's REST API.
 *
 * Each test runs the real binary (`$SOUK_BIN actor sender sender`) in its
 * own data folder, with TWILIO_API_BASE pointing at tests/fakes/twilio_fake.py
 * (one fake for the whole run, reset between tests), a ROUTER on the control
 * endpoint playing the supervisor and a PUSH on the sender endpoint playing
 * the sessions and the gateway. Rows go into the outbox through the store
 * API; what Twilio saw is read back from the fake, with its timestamps, so
 * timing claims are measured where the messages arrive, not with sleeps.
 * The rules the actor applies (backoff, answers, splitting, pace) are also
 * tested directly, first. */
#include "outbox.h"
#include "twilio_rest.h"

#include "fake_proc.h"
#include "souk/endpoints.h"
#include "souk/error.h"
#include "souk/proto.h"
#include "souk/store.h"
#include "souk/twilio.h"

#include <curl/curl.h>
#include <czmq.h>
#include <ftw.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

extern char **environ;

#define ACCOUNT "ACf00df00df00df00df00df00df00df00d"
#define TOKEN "test-auth-token-5f3a"
#define FROM "whatsapp:+14155238886"
#define PUBLIC_URL "https://shop.example.org"
#define TEMPLATE "HXb5b62575e6e4ff6129ad7c8efe1f983e"
#define WAIT_MS 8000

/* ---- the fake: one for the whole run -------------------------------------------- */

static fake_proc_t s_fake;

static int s_fake_start(void **state)
{
    (void)state;
    const char *args[] = { "--account-sid", ACCOUNT, "--auth-token", TOKEN, NULL };
    int rc = fake_proc_start(&s_fake, "twilio_fake.py", args);
    zsys_handler_set(NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return rc;
}

static int s_fake_stop(void **state)
{
    (void)state;
    fake_proc_stop(&s_fake);
    curl_global_cleanup();
    return 0;
}

/* A request to the fake's control endpoints; the answer parsed. */
static json_t *s_fake_call(const char *method, const char *path, const char *json_body)
{
    json_t *doc = fake_proc_call(&s_fake, method, path, json_body);
    assert_non_null(doc);
    return doc;
}

static void s_fake_script(const char *rules_json)
{
    json_decref(s_fake_call("POST", "/_fake/script", rules_json));
}

/* {"messages": [...accepted], "attempts": [...every POST]} */
static json_t *s_fake_seen(void)
{
    return s_fake_call("GET", "/_fake/messages", NULL);
}

static size_t s_fake_count(const char *list)
{
    json_t *seen = s_fake_seen();
    size_t n = json_array_size(json_object_get(seen, list));
    json_decref(seen);
    return n;
}

static const char *s_form(json_t *entry, const char *field)
{
    return json_string_value(json_object_get(json_object_get(entry, "form"), field));
}

static double s_ts(json_t *entry)
{
    return json_real_value(json_object_get(entry, "ts"));
}

/* ---- fixture: a data folder, the supervisor's ROUTER, a PUSH, the store ---------- */

typedef struct {
    char dir[32];
    char run[64];
    char log[64];
    zsock_t *control;   /* ROUTER: the supervisor */
    zsock_t *push;      /* PUSH: sessions and gateway */
    store_t *store;
    pid_t pid;
} fx_t;

typedef struct {
    bool console;
    const char *token;          /* NULL: the right one */
    const char *template_sid;   /* NULL: none */
    int rate;                   /* 0: default */
    int port;                   /* 0: the fake's */
} opts_t;

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static int s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/sk-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->run, sizeof fx->run, "%s/run", fx->dir);
    snprintf(fx->log, sizeof fx->log, "%s/sender.log", fx->dir);
    assert_int_equal(mkdir(fx->run, 0750), 0);
    char ep[256], err[256];
    souk_endpoint(ep, sizeof ep, fx->run, SOUK_EP_CONTROL, 0);
    fx->control = zsock_new(ZMQ_ROUTER);
    zsock_set_linger(fx->control, 0);
    zsock_set_router_handover(fx->control, 1);
    assert_true(zsock_bind(fx->control, "%s", ep) >= 0);
    souk_endpoint(ep, sizeof ep, fx->run, SOUK_EP_SENDER, 0);
    fx->push = zsock_new(ZMQ_PUSH);
    zsock_set_linger(fx->push, 0);
    assert_true(zsock_connect(fx->push, "%s", ep) >= 0);
    assert_int_equal(store_open("sqlite", fx->dir, NULL, &fx->store, err, sizeof err), SOUK_OK);
    json_decref(s_fake_call("POST", "/_fake/reset", "{}"));
    *state = fx;
    return 0;
}

static void s_dump_log(fx_t *fx)
{
    FILE *f = fopen(fx->log, "r");
    char line[1024];
    fprintf(stderr, "---- sender log (%s) ----\n", fx->log);
    while (f && fgets(line, sizeof line, f))
        fputs(line, stderr);
    if (f)
        fclose(f);
}

static int s_wait_exit(pid_t pid, int timeout_ms)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0)
        return -1;
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int ready = poll(&p, 1, timeout_ms);
    close(fd);
    int status = -1;
    if (ready == 1)
        waitpid(pid, &status, 0);
    return ready == 1 ? status : -1;
}

static void s_kill9(fx_t *fx)
{
    if (fx->pid <= 0)
        return;
    kill(fx->pid, SIGKILL);
    assert_true(s_wait_exit(fx->pid, 5000) != -1);
    fx->pid = 0;
}

/* SIGTERM and a clean exit (0) expected. */
static void s_stop(fx_t *fx)
{
    if (fx->pid <= 0)
        return;
    kill(fx->pid, SIGTERM);
    int status = s_wait_exit(fx->pid, 5000);
    if (status == -1) {
        s_kill9(fx);
        fail_msg("the sender did not stop on SIGTERM");
    }
    fx->pid = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        s_dump_log(fx);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static int s_teardown(void **state)
{
    fx_t *fx = *state;
    if (fx->pid > 0) {
        kill(fx->pid, SIGKILL);
        s_wait_exit(fx->pid, 5000);
    }
    store_close(&fx->store);
    zsock_destroy(&fx->control);
    zsock_destroy(&fx->push);
    if (getenv("SOUK_TEST_KEEP")) /* keep the data folder and the sender's log */
        fprintf(stderr, "kept %s\n", fx->dir);
    else
        nftw(fx->dir, s_rm, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

/* Receives one control message within timeout_ms: SOUK_OK, SOUK_ETIMEDOUT. */
static int s_control_recv(fx_t *fx, int timeout_ms, souk_msg_t *m)
{
    zpoller_t *p = zpoller_new(fx->control, NULL);
    void *ready = zpoller_wait(p, timeout_ms);
    zpoller_destroy(&p);
    if (!ready)
        return SOUK_ETIMEDOUT;
    unsigned char id[256];
    size_t idlen = sizeof id;
    char err[128];
    return souk_msg_recv(fx->control, id, &idlen, m, 0, err, sizeof err);
}

/* The first control message of `type` (others are dropped) within timeout_ms. */
static int s_control_wait(fx_t *fx, souk_msg_type_t type, const char *event_kind, int timeout_ms,
                          souk_msg_t *out)
{
    int64_t end = zclock_mono() + timeout_ms;
    for (int64_t left = timeout_ms; left > 0; left = end - zclock_mono()) {
        souk_msg_t m;
        int rc = s_control_recv(fx, (int)left, &m);
        if (rc == SOUK_ETIMEDOUT)
            break;
        if (rc != SOUK_OK)
            continue;
        if (m.type == type && (!event_kind || strcmp(m.event.kind, event_kind) == 0)) {
            *out = m;
            return SOUK_OK;
        }
        souk_msg_clear(&m);
    }
    return SOUK_ETIMEDOUT;
}

static void s_start(fx_t *fx, const opts_t *o)
{
    char base[64], rate[16];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", o && o->port ? o->port : s_fake.port);
    snprintf(rate, sizeof rate, "%d", o && o->rate ? o->rate : 80);
    setenv("SOUK_DATA", fx->dir, 1);
    setenv("SOUK_PUBLIC_URL", PUBLIC_URL, 1);
    setenv("SOUK_HEARTBEAT_MS", "200", 1);
    setenv("SOUK_LOG_LEVEL", "debug", 1);
    setenv("SOUK_SEND_RATE", rate, 1);
    setenv("TWILIO_API_BASE", base, 1);
    setenv("TWILIO_WHATSAPP_FROM", FROM, 1);
    setenv("TWILIO_AUTH_TOKEN", o && o->token ? o->token : TOKEN, 1);
    if (o && o->console)
        unsetenv("TWILIO_ACCOUNT_SID");
    else
        setenv("TWILIO_ACCOUNT_SID", ACCOUNT, 1);
    if (o && o->template_sid)
        setenv("TWILIO_TEMPLATE_SID", o->template_sid, 1);
    else
        unsetenv("TWILIO_TEMPLATE_SID");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, fx->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    const char *bin = getenv("SOUK_BIN");
    char *argv[] = { "souk", "actor", "sender", "sender", NULL };
    assert_int_equal(posix_spawn(&fx->pid, bin ? bin : "build/souk", &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    souk_msg_t m;
    if (s_control_wait(fx, SOUK_MSG_READY, NULL, 10000, &m) != SOUK_OK) {
        s_dump_log(fx);
        fail_msg("the sender did not say READY");
    }
    souk_msg_clear(&m);
}

/* ---- the outbox, from the test's side ------------------------------------------------ */

static int64_t s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A user who wrote `ago_ms` ago (opens or closes the 24-hour window). */
static void s_user(fx_t *fx, const char *waid, int64_t ago_ms, bool opted_out)
{
    char from[64];
    snprintf(from, sizeof from, "whatsapp:+%s", waid);
    store_user_seen_t seen = { .waid = waid, .profile_name = "Ana", .from_addr = from,
                               .inbound = true, .now_ms = s_now() - ago_ms };
    assert_int_equal(store_user_seen(fx->store, &seen), SOUK_OK);
    if (opted_out)
        assert_int_equal(store_user_set_opt_out(fx->store, waid, true, s_now()), SOUK_OK);
}

static void s_put(fx_t *fx, const char *key, const char *waid, const char *body)
{
    int64_t now = s_now();
    store_outbox_t o = { .key = (char *)key, .waid = (char *)waid, .body = (char *)body,
                         .kind = STORE_KIND_REPLY, .state = STORE_OUTBOX_QUEUED,
                         .next_attempt_ms = now, .created_ms = now };
    assert_int_equal(store_outbox_put(fx->store, &o, NULL), SOUK_OK);
}

/* A notification to an address rather than a user (the merchant). */
static void s_put_notify(fx_t *fx, const char *key, const char *to_addr, const char *body)
{
    int64_t now = s_now();
    store_outbox_t o = { .key = (char *)key, .to_addr = (char *)to_addr, .body = (char *)body,
                         .kind = STORE_KIND_NOTIFY, .state = STORE_OUTBOX_QUEUED,
                         .next_attempt_ms = now, .created_ms = now };
    assert_int_equal(store_outbox_put(fx->store, &o, NULL), SOUK_OK);
}

static void s_hint(fx_t *fx, const char *key)
{
    souk_msg_t m = { .type = SOUK_MSG_SEND_HINT };
    m.send_hint.outbox_key = (char *)key;
    assert_int_equal(souk_msg_send(zsock_resolve(fx->push), NULL, 0, &m, 0), SOUK_OK);
}

static void s_delivery(fx_t *fx, const char *sid, const char *status)
{
    souk_msg_t m = { .type = SOUK_MSG_DELIVERY };
    m.delivery.message_sid = (char *)sid;
    m.delivery.status = (char *)status;
    m.delivery.ts_ms = (uint64_t)s_now();
    assert_int_equal(souk_msg_send(zsock_resolve(fx->push), NULL, 0, &m, 0), SOUK_OK);
}

static bool s_terminal_or(store_outbox_state_t st, store_outbox_state_t want)
{
    return st == want || st == STORE_OUTBOX_FAILED || st == STORE_OUTBOX_INLINE
        || st == STORE_OUTBOX_READ || st == STORE_OUTBOX_UNDELIVERED;
}

/* Waits until key is in `want` (or a terminal state) and returns the row. */
static void s_wait_row(fx_t *fx, const char *key, store_outbox_state_t want, int timeout_ms,
                       store_outbox_t *out)
{
    int64_t end = zclock_mono() + timeout_ms;
    for (;;) {
        memset(out, 0, sizeof *out);
        int rc = store_outbox_get(fx->store, key, out);
        if (rc == SOUK_OK && s_terminal_or(out->state, want))
            break;
        if (zclock_mono() > end) {
            s_dump_log(fx);
            fail_msg("%s: still %s, wanted %s", key, rc == SOUK_OK ? store_outbox_state_name(out->state) : souk_errname(rc),
                     store_outbox_state_name(want));
        }
        store_outbox_clear(out);
        zclock_sleep(20);
    }
    if (out->state != want) {
        s_dump_log(fx);
        fail_msg("%s: %s (code %d, %s), wanted %s", key, store_outbox_state_name(out->state),
                 out->error_code, out->error_reason ? out->error_reason : "", store_outbox_state_name(want));
    }
}

static void s_expect_sent(fx_t *fx, const char *key, int timeout_ms, char sid[64])
{
    store_outbox_t row;
    s_wait_row(fx, key, STORE_OUTBOX_SENT, timeout_ms, &row);
    assert_non_null(row.twilio_sid);
    if (sid)
        snprintf(sid, 64, "%s", row.twilio_sid);
    store_outbox_clear(&row);
}

static void s_expect_failed(fx_t *fx, const char *key, int code, const char *reason_prefix)
{
    store_outbox_t row;
    s_wait_row(fx, key, STORE_OUTBOX_FAILED, WAIT_MS, &row);
    assert_int_equal(row.error_code, code);
    assert_non_null(row.error_reason);
    if (strncmp(row.error_reason, reason_prefix, strlen(reason_prefix)) != 0)
        fail_msg("%s: reason \"%s\", wanted \"%s…\"", key, row.error_reason, reason_prefix);
    store_outbox_clear(&row);
}

/* Attempts the fake saw with this Body. */
static size_t s_attempts_with_body(json_t *seen, const char *body)
{
    size_t i, n = 0;
    json_t *a;
    json_array_foreach(json_object_get(seen, "attempts"), i, a)
        n += s_form(a, "Body") && strcmp(s_form(a, "Body"), body) == 0;
    return n;
}

/* ================================================================================
 * The rules, directly
 * ================================================================================ */

static void test_backoff(void **state)
{
    (void)state;
    int64_t prev = 0;
    for (int a = 1; a <= 12; a++) {
        int64_t lo = outbox_backoff_ms(a, 0, -1), hi = outbox_backoff_ms(a, 1000, -1);
        int64_t base = (int64_t)OUTBOX_BACKOFF_BASE_MS << (a - 1);
        if (base > OUTBOX_BACKOFF_CAP_MS)
            base = OUTBOX_BACKOFF_CAP_MS;
        assert_true(lo == base);
        assert_true(hi >= lo && hi <= OUTBOX_BACKOFF_CAP_MS && hi <= lo + lo / 4);
        assert_true(lo >= prev);
        prev = lo;
    }
    assert_true(outbox_backoff_ms(1, 0, 7000) == 7000);   /* Retry-After wins */
    assert_true(outbox_backoff_ms(30, 0, -1) == OUTBOX_BACKOFF_CAP_MS);
}

static void test_classify(void **state)
{
    (void)state;
    outbox_result_t r;
    const char *created = "{\"sid\":\"SM0123456789abcdef0123456789abcdef\",\"status\":\"queued\"}";
    twilio_reply_t ok = { .status = 201, .retry_after_ms = -1, .body = created, .len = strlen(created) };
    outbox_classify(&ok, &r);
    assert_int_equal(r.kind, OUTBOX_SENT);
    assert_string_equal(r.sid, "SM0123456789abcdef0123456789abcdef");

    const char *e429 = "{\"code\":20429,\"message\":\"Too Many Requests\",\"more_info\":\"x\",\"status\":429}";
    twilio_reply_t busy = { .status = 429, .retry_after_ms = 3000, .body = e429, .len = strlen(e429) };
    outbox_classify(&busy, &r);
    assert_int_equal(r.kind, OUTBOX_RETRY);
    assert_int_equal(r.code, 20429);
    assert_true(r.retry_after_ms == 3000);

    twilio_reply_t down = { .status = 503, .retry_after_ms = -1, .body = "<html>", .len = 6 };
    outbox_classify(&down, &r);
    assert_int_equal(r.kind, OUTBOX_RETRY);
    assert_int_equal(r.code, 503);

    const int permanent[] = { 21211, 21610, 63003, 63014, 63016, 21617, 20003 };
    for (size_t i = 0; i < sizeof permanent / sizeof *permanent; i++) {
        char body[200];
        snprintf(body, sizeof body, "{\"code\":%d,\"message\":\"no %d\",\"status\":400}", permanent[i],
                 permanent[i]);
        twilio_reply_t bad = { .status = permanent[i] == 20003 ? 401 : 400, .retry_after_ms = -1,
                               .body = body, .len = strlen(body) };
        outbox_classify(&bad, &r);
        assert_int_equal(r.kind, OUTBOX_FAIL);
        assert_int_equal(r.code, permanent[i]);
        assert_true(strncmp(r.reason, "no ", 3) == 0);
    }
    const char *e63018 = "{\"code\":63018,\"message\":\"Rate limit exceeded\",\"status\":400}";
    twilio_reply_t rate = { .status = 400, .retry_after_ms = -1, .body = e63018, .len = strlen(e63018) };
    outbox_classify(&rate, &r);
    assert_int_equal(r.kind, OUTBOX_RETRY);

    twilio_reply_t refused = { .curl_code = 7, .maybe_sent = false, .body = "", .error = "refused" };
    outbox_classify(&refused, &r);
    assert_int_equal(r.kind, OUTBOX_RETRY);
    twilio_reply_t lost = { .curl_code = 28, .maybe_sent = true, .body = "", .error = "timeout" };
    outbox_classify(&lost, &r);
    assert_int_equal(r.kind, OUTBOX_UNKNOWN);
}

static void test_parsing(void **state)
{
    (void)state;
    assert_true(twilio_rest_retry_after_ms("2", 0) == 2000);
    assert_true(twilio_rest_retry_after_ms(" 120\r\n", 0) == 120000);
    assert_true(twilio_rest_retry_after_ms("soon", 0) == -1);
    int64_t now = twilio_rest_date_ms("Wed, 18 Aug 2010 20:01:40 +0000");
    assert_true(now == 1282161700000LL);
    assert_true(twilio_rest_retry_after_ms("Wed, 18 Aug 2010 20:01:45 GMT", now) == 5000);
    assert_true(twilio_rest_date_ms("not a date") == -1);
    char prev[64];
    assert_true(outbox_part_prev("r:SM1#2", prev, sizeof prev));
    assert_string_equal(prev, "r:SM1");
    assert_true(outbox_part_prev("r:SM1#3", prev, sizeof prev));
    assert_string_equal(prev, "r:SM1#2");
    assert_false(outbox_part_prev("r:SM1#1", prev, sizeof prev));
    assert_false(outbox_part_prev("r:SM1", prev, sizeof prev));
    assert_false(outbox_part_prev("r:SM1#02", prev, sizeof prev));
    assert_false(outbox_part_prev("#2", prev, sizeof prev));
}

static void test_split_utf16(void **state)
{
    (void)state;
    /* 1200 emoji: 1200 code points but 2400 UTF-16 units, over Twilio's 1600 */
    char *text = malloc(1200 * 4 + 1);
    for (int i = 0; i < 1200; i++)
        memcpy(text + 4 * i, "\xF0\x9F\x98\x80", 4);
    text[1200 * 4] = '\0';
    assert_int_equal(outbox_utf16_len(text), 2400);
    char **parts;
    size_t n;
    assert_int_equal(outbox_split(text, &parts, &n), SOUK_OK);
    assert_true(n >= 2);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(outbox_utf16_len(parts[i]) <= TWILIO_BODY_MAX_CHARS);
        total += strlen(parts[i]);
    }
    assert_int_equal(total, strlen(text));
    twilio_split_free(&parts, n);
    free(text);
}

static void test_bucket(void **state)
{
    (void)state;
    outbox_bucket_t b;
    outbox_bucket_init(&b, 5, 1000);
    for (int i = 0; i < 5; i++)
        assert_true(outbox_bucket_take(&b, 1000) == 0);
    int64_t wait = outbox_bucket_take(&b, 1000);
    assert_true(wait == 200);
    assert_true(outbox_bucket_take(&b, 1199) > 0);
    assert_true(outbox_bucket_take(&b, 1200) == 0);
    assert_true(outbox_bucket_take(&b, 1200) > 0);
    /* an idle minute refills to the burst, not beyond */
    int sent = 0;
    while (outbox_bucket_take(&b, 61200) == 0)
        sent++;
    assert_int_equal(sent, 5);
}

/* ================================================================================
 * The actor against the fake
 * ================================================================================ */

static void test_sent_with_sid(void **state)
{
    fx_t *fx = *state;
    s_user(fx, "14155550101", 60 * 1000, false);
    const char *body = "Hello Ana! Your order ☕ #A-17 is ready & waiting.";
    s_put(fx, "r:SMtest1", "14155550101", body);
    s_start(fx, NULL);
    s_hint(fx, "r:SMtest1");
    char sid[64];
    s_expect_sent(fx, "r:SMtest1", WAIT_MS, sid);
    assert_int_equal(strlen(sid), 34);
    assert_memory_equal(sid, "SM", 2);

    json_t *seen = s_fake_seen();
    json_t *attempts = json_object_get(seen, "attempts"), *msgs = json_object_get(seen, "messages");
    assert_int_equal(json_array_size(attempts), 1);
    assert_int_equal(json_array_size(msgs), 1);
    json_t *m = json_array_get(msgs, 0);
    assert_true(json_is_true(json_object_get(json_array_get(attempts, 0), "auth_ok")));
    assert_string_equal(s_form(m, "To"), "whatsapp:+14155550101");
    assert_string_equal(s_form(m, "From"), FROM);
    assert_string_equal(s_form(m, "Body"), body);
    assert_string_equal(s_form(m, "StatusCallback"), PUBLIC_URL "/webhooks/whatsapp/status");
    assert_null(s_form(m, "ContentSid"));
    assert_string_equal(json_string_value(json_object_get(m, "sid")), sid);
    json_decref(seen);

    store_outbox_t row;
    assert_int_equal(store_outbox_get(fx->store, "r:SMtest1", &row), SOUK_OK);
    assert_int_equal(row.attempts, 1);
    store_outbox_clear(&row);
    s_stop(fx);
}

static void test_wrong_credentials(void **state)
{
    fx_t *fx = *state;
    s_user(fx, "14155550102", 60 * 1000, false);
    s_put(fx, "r:SMauth", "14155550102", "hello");
    opts_t o = { .token = "not-the-token" };
    s_start(fx, &o);
    s_hint(fx, "r:SMauth");
    s_expect_failed(fx, "r:SMauth", 20003, "Authenticate");
    zclock_sleep(1500); /* longer than the first backoff: a retry would show */
    s_hint(fx, "r:SMauth");
    zclock_sleep(200);
    assert_int_equal(s_fake_count("attempts"), 1);
    assert_int_equal(s_fake_count("messages"), 0);
    s_stop(fx);
}

static void test_429_honours_retry_after(void **state)
{
    fx_t *fx = *state;
    s_user(fx, "14155550103", 60 * 1000, false);
    s_fake_script("{\"rules\":[{\"status\":429,\"code\":20429,\"retry_after\":2}]}");
    s_put(fx, "r:SM429", "14155550103", "busy world");
    s_start(fx, NULL);
    s_hint(fx, "r:SM429");
    s_expect_sent(fx, "r:SM429", WAIT_MS, NULL);
    json_t *seen = s_fake_seen();
    json_t *attempts = json_object_get(seen, "attempts");
    assert_int_equal(json_array_size(attempts), 2);
    double gap = s_ts(json_array_get(attempts, 1)) - s_ts(json_array_get(attempts, 0));
    print_message("429 then retry after %.3f s (Retry-After: 2)\n", gap);
    assert_true(gap >= 2.0);
    assert_true(gap < 3.5);
    json_decref(seen);
    s_stop(fx);
}

static void test_5xx_backs_off(void **state)
{
    fx_t *fx = *state;
    s_user(fx, "14155550104", 60 * 1000, false);
    s_fake_script("{\"rules\":[{\"status\":500,\"times\":1},{\"status\":503,\"times\":1},"
                  "{\"status\":400,\"code\":63018,\"times\":1}]}");
    s_put(fx, "r:SM5xx", "14155550104", "flaky world");
    s_start(fx, NULL);
    s_hint(fx, "r:SM5xx");
    s_expect_sent(fx, "r:SM5xx", 15000, NULL);
    json_t *seen = s_fake_seen();
    json_t *a = json_object_get(seen, "attempts");
    assert_int_equal(json_array_size(a), 4);
    double g1 = s_ts(json_array_get(a, 1)) - s_ts(json_array_get(a, 0));
    double g2 = s_ts(json_array_get(a, 2)) - s_ts(json_array_get(a, 1));
    double g3 = s_ts(json_array_get(a, 3)) - s_ts(json_array_get(a, 2));
    print_message("500, 503, 63018 then sent: gaps %.3f %.3f %.3f s\n", g1, g2, g3);
    assert_true(g1 >= 1.0 && g1 < 2.0);
    assert_true(g2 >= 2.0 && g2 < 3.5);
    assert_true(g3 >= 4.0 && g3 < 6.0);
    json_decref(seen);
    store_outbox_t row;
    assert_int_equal(store_outbox_get(fx->store, "r:SM5xx", &row), SOUK_OK);
    assert_int_equal(row.attempts, 4);
    store_outbox_clear(&row);
    s_stop(fx);
}

/* A port nobody listens on: bind one, note it, close it. */
static int s_dead_port(void)
{
    zsock_t *s = zsock_new(ZMQ_STREAM);
    int port = zsock_bind(s, "tcp://127.0.0.1:*");
    zsock_destroy(&s);
    return port;
}

/* Connection refused: the request never left, so it is retried (not
 * failed, not reconciled); a sender restarted with Twilio reachable sends it. */
static void test_network_error_retries(void **state)
{
    fx_t *fx = *state;
    s_user(fx, "14155550142", 60 * 1000, false);
    s_put(fx, "r:SMnet", "14155550142", "are you reachable?");
    opts_t down = { .port = s_dead_port() };
    assert_true(down.port > 0);
    s_start(fx, &down);
    s_hint(fx, "r:SMnet");
    store_outbox_t row = { 0 };
    int64_t end = zclock_mono() + WAIT_MS;
    do {
        store_outbox_clear(&row);
        zclock_sleep(20);
        assert_int_equal(store_outbox_get(fx->store, "r:SMnet", &row), SOUK_OK);
        /* the second attempt may be caught in flight (sending): wait for its end */
    } while ((row.attempts < 2 || row.state != STORE_OUTBOX_QUEUED) && zclock_mono() < end);
    assert_int_equal(row.state, STORE_OUTBOX_QUEUED);
    assert_true(row.attempts >= 2); /* retried after its backoff */
    assert_non_null(row.error_reason);
    assert_memory_equal(row.error_reason, "network: ", 9);
    store_outbox_clear(&row);
    s_stop(fx);
    s_start(fx, NULL);
    s_expect_sent(fx, "r:SMnet", WAIT_MS, NULL);
    assert_int_equal(s_fake_count("attempts"), 1);
    s_stop(fx);
}

static void test_permanent_errors(void **state)
{
    fx_t *fx = *state;
    static const int codes[] = { 21211, 21610, 63003, 63014, 63016, 21617 };
    enum { N = sizeof codes / sizeof *codes };
    char rules[2048] = "{\"rules\":[";
    for (size_t i = 0; i < N; i++) {
        char waid[32], rule[160];
        snprintf(waid, sizeof waid, "1415555020%zu", i);
        s_user(fx, waid, 60 * 1000, false);
        snprintf(rule, sizeof rule, "%s{\"to\":\"whatsapp:+%s\",\"status\":400,\"code\":%d,\"times\":-1}",
                 i ? "," : "", waid, codes[i]);
        strcat(rules, rule);
    }
    strcat(rules, "]}");
    s_fake_script(rules);
    for (size_t i = 0; i < N; i++) {
        char waid[32], key[32];
        snprintf(waid, sizeof waid, "1415555020%zu", i);
        snprintf(key, sizeof key, "r:SMperm%zu", i);
        s_put(fx, key, waid, "refused");
    }
    s_start(fx, NULL);
    s_hint(fx, "r:SMperm0");
    const char *reasons[] = { "Invalid 'To' Phone Number", "Attempt to send to unsubscribed",
                              "Channel could not find To", "Message could not be delivered",
                              "Failed to send freeform message", "The concatenated message body" };
    for (size_t i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "r:SMperm%zu", i);
        s_expect_failed(fx, key, codes[i], reasons[i]);
    }
    zclock_sleep(1500); /* past the first backoff */
    json_t *seen = s_fake_seen();
    assert_int_equal(json_array_size(json_object_get(seen, "attempts")), N);
    assert_int_equal(s_attempts_with_body(seen, "refused"), N);
    json_decref(seen);
    for (size_t i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "r:SMperm%zu", i);
        store_outbox_t row;
        assert_int_equal(store_outbox_get(fx->store, key, &row), SOUK_OK);
        assert_int_equal(row.state, STORE_OUTBOX_FAILED);
        assert_int_equal(row.attempts, 1);
        store_outbox_clear(&row);
    }
    s_stop(fx);
}

static void test_gives_up(void **state)
{
    fx_t *fx = *state;
    s_user(fx, "14155550105", 60 * 1000, false);
    s_fake_script("{\"rules\":[{\"status\":503,\"times\":-1}]}");
    s_put(fx, "r:SMgiveup", "14155550105", "never");
    /* nine attempts already made (and failed) by earlier runs */
    for (int i = 0; i < OUTBOX_MAX_ATTEMPTS - 1; i++) {
        int64_t now = s_now();
        store_outbox_change_t take = { .count_attempt = true, .next_attempt_ms = now + 30000, .now_ms = now };
        store_outbox_change_t back = { .next_attempt_ms = now, .now_ms = now };
        assert_int_equal(store_outbox_transition(fx->store, "r:SMgiveup", STORE_OUTBOX_QUEUED,
                                                 STORE_OUTBOX_SENDING, &take, NULL), SOUK_OK);
        assert_int_equal(store_outbox_transition(fx->store, "r:SMgiveup", STORE_OUTBOX_SENDING,
                                                 STORE_OUTBOX_QUEUED, &back, NULL), SOUK_OK);
    }
    s_start(fx, NULL);
    s_expect_failed(fx, "r:SMgiveup", 503, "gave up after 10 attempts");
    assert_int_equal(s_fake_count("attempts"), 1);
    s_stop(fx);
}

/* A text of paragraphs and sentences, n bytes (ASCII). */
static char *s_long_text(size_t n)
{
    static const char *const words[] = { "souk", "sells", "fresh", "mint", "tea,", "dates", "and",
                                          "saffron.", "Ask", "for", "today's", "prices!" };
    char *t = malloc(n + 1);
    size_t o = 0, w = 0;
    while (o < n) {
        const char *word = words[w % 12];
        const char *sep = w % 97 == 96 ? "\n\n" : w % 31 == 30 ? "\n" : " ";
        int k = snprintf(t + o, n + 1 - o, "%s%s", word, sep);
        o += (size_t)k;
        w++;
    }
    t[n] = '\0';
    return t;
}

static void test_long_body_split_in_order(void **state)
{
    fx_t *fx = *state;
    s_user(fx, "14155550106", 60 * 1000, false);
    char *text = s_long_text(4000);
    char **parts;
    size_t n;
    assert_int_equal(outbox_split(text, &parts, &n), SOUK_OK);
    assert_true(n >= 3);
    /* part 1 fails once: parts 2.. must still arrive after it */
    char rules[256], prefix[24];
    snprintf(prefix, sizeof prefix, "%.20s", parts[0]);
    snprintf(rules, sizeof rules, "{\"rules\":[{\"body_prefix\":\"%s\",\"status\":500}]}", prefix);
    s_fake_script(rules);
    s_put(fx, "r:SMlong", "14155550106", text);
    s_start(fx, NULL);
    s_hint(fx, "r:SMlong");
    s_expect_sent(fx, "r:SMlong", WAIT_MS, NULL);
    for (size_t i = 2; i <= n; i++) {
        char key[32];
        snprintf(key, sizeof key, "r:SMlong#%zu", i);
        s_expect_sent(fx, key, WAIT_MS, NULL);
    }
    json_t *seen = s_fake_seen();
    json_t *msgs = json_object_get(seen, "messages");
    assert_int_equal(json_array_size(msgs), n);
    const char *cursor = text;
    for (size_t i = 0; i < n; i++) {
        const char *b = s_form(json_array_get(msgs, i), "Body");
        assert_string_equal(b, parts[i]);
        assert_true(outbox_utf16_len(b) <= TWILIO_BODY_MAX_CHARS);
        const char *at = strstr(cursor, b); /* in the text's order */
        assert_non_null(at);
        cursor = at + strlen(b);
    }
    json_decref(seen);
    twilio_split_free(&parts, n);
    free(text);
    s_stop(fx);
}

static void test_rate_limit(void **state)
{
    fx_t *fx = *state;
    s_user(fx, "14155550107", 60 * 1000, false);
    for (int i = 0; i < 20; i++) {
        char key[32], body[32];
        snprintf(key, sizeof key, "r:SMrate%02d", i);
        snprintf(body, sizeof body, "paced %02d", i);
        s_put(fx, key, "14155550107", body);
    }
    opts_t o = { .rate = 5 };
    s_start(fx, &o);
    s_hint(fx, "r:SMrate00");
    for (int i = 0; i < 20; i++) {
        char key[32];
        snprintf(key, sizeof key, "r:SMrate%02d", i);
        s_expect_sent(fx, key, 10000, NULL);
    }
    json_t *seen = s_fake_seen();
    json_t *msgs = json_object_get(seen, "messages");
    assert_int_equal(json_array_size(msgs), 20);
    double span = s_ts(json_array_get(msgs, 19)) - s_ts(json_array_get(msgs, 0));
    /* a burst of 5, then 15 at 5/s */
    print_message("20 messages at SOUK_SEND_RATE=5 took %.3f s\n", span);
    assert_true(span >= 2.8);
    assert_true(span < 4.5);
    for (size_t i = 5; i < 20; i++) { /* never more than 5 + 5/s */
        double dt = s_ts(json_array_get(msgs, i)) - s_ts(json_array_get(msgs, 0));
        assert_true(dt >= (double)(i - 4) / 5.0 - 0.05);
    }
    json_decref(seen);
    s_stop(fx);
}

/* Several sends are out at once, but one at a time per recipient: a user's
 * replies reach Twilio in order even when Twilio is slow to answer. */
static void test_one_send_per_recipient(void **state)
{
    fx_t *fx = *state;
    s_user(fx, "14155550117", 60 * 1000, false);
    s_user(fx, "14155550118", 60 * 1000, false);
    s_fake_script("{\"rules\":[{\"to\":\"whatsapp:+14155550117\",\"delay_ms\":300,\"times\":-1}]}");
    s_put(fx, "r:SMord1", "14155550117", "first");
    s_put(fx, "r:SMord2", "14155550117", "second");
    s_put(fx, "r:SMord3", "14155550117", "third");
    s_put(fx, "r:SMother", "14155550118", "meanwhile");
    s_start(fx, NULL);
    s_hint(fx, "r:SMord1");
    s_expect_sent(fx, "r:SMord3", WAIT_MS, NULL);
    s_expect_sent(fx, "r:SMother", WAIT_MS, NULL);
    json_t *seen = s_fake_seen();
    json_t *a = json_object_get(seen, "attempts"), *e;
    assert_int_equal(json_array_size(a), 4);
    double ts_user[3] = { 0 }, ts_other = 0;
    size_t i, n = 0;
    json_array_foreach(a, i, e) {
        if (strcmp(s_form(e, "To"), "whatsapp:+14155550118") == 0) {
            ts_other = s_ts(e);
            continue;
        }
        static const char *const order[] = { "first", "second", "third" };
        assert_string_equal(s_form(e, "Body"), order[n]);
        ts_user[n++] = s_ts(e);
    }
    assert_int_equal(n, 3);
    /* each waited for the answer to the one before (300 ms) */
    assert_true(ts_user[1] - ts_user[0] >= 0.3);
    assert_true(ts_user[2] - ts_user[1] >= 0.3);
    assert_true(ts_other < ts_user[1]); /* another user is not held up */
    json_decref(seen);
    s_stop(fx);
}

static void test_window_uses_template(void **state)
{
    fx_t *fx = *state;
    s_user(fx, "14155550108", 25LL * 3600 * 1000, false);
    s_put(fx, "r:SMtpl", "14155550108", "Your order shipped.\n\nTrack it here:   https://x.example/1");
    opts_t o = { .template_sid = TEMPLATE };
    s_start(fx, &o);
    s_hint(fx, "r:SMtpl");
    s_expect_sent(fx, "r:SMtpl", WAIT_MS, NULL);
    json_t *seen = s_fake_seen();
    json_t *m = json_array_get(json_object_get(seen, "messages"), 0);
    assert_string_equal(s_form(m, "ContentSid"), TEMPLATE);
    assert_null(s_form(m, "Body"));
    json_t *vars = json_loads(s_form(m, "ContentVariables"), 0, NULL);
    assert_non_null(vars);
    assert_string_equal(json_string_value(json_object_get(vars, "1")),
                        "Your order shipped. Track it here: https://x.example/1");
    json_decref(vars);
    json_decref(seen);
    s_stop(fx);
}

static void test_window_without_template_fails(void **state)
{
    fx_t *fx = *state;
    s_user(fx, "14155550109", 25LL * 3600 * 1000, false);
    s_user(fx, "14155550110", 23LL * 3600 * 1000, false);
    s_put(fx, "r:SMold", "14155550109", "too late");
    s_put(fx, "r:SMfresh", "14155550110", "just in time");
    s_start(fx, NULL);
    s_hint(fx, "r:SMold");
    s_expect_failed(fx, "r:SMold", 63016, "outside the 24-hour window");
    s_expect_sent(fx, "r:SMfresh", WAIT_MS, NULL);
    json_t *seen = s_fake_seen();
    assert_int_equal(json_array_size(json_object_get(seen, "attempts")), 1);
    assert_int_equal(s_attempts_with_body(seen, "too late"), 0);
    json_decref(seen);
    s_stop(fx);
}

/* A merchant notification goes to its to_addr. Its window is known only
 * when that number also writes to the shop (a user the store knows). */
static void test_merchant_notification(void **state)
{
    fx_t *fx = *state;
    s_user(fx, "14155550140", 30LL * 3600 * 1000, false); /* a merchant who wrote 30 h ago */
    s_put_notify(fx, "m:OR-1", "whatsapp:+14155550199", "New order OR-1: 2 x mint tea");
    s_put_notify(fx, "m:OR-2", "whatsapp:+14155550140", "New order OR-2");
    s_start(fx, NULL);
    s_hint(fx, "m:OR-1");
    s_expect_sent(fx, "m:OR-1", WAIT_MS, NULL);
    s_expect_failed(fx, "m:OR-2", 63016, "outside the 24-hour window");
    json_t *seen = s_fake_seen();
    json_t *a = json_object_get(seen, "attempts");
    assert_int_equal(json_array_size(a), 1);
    assert_string_equal(s_form(json_array_get(a, 0), "To"), "whatsapp:+14155550199");
    assert_string_equal(s_form(json_array_get(a, 0), "Body"), "New order OR-1: 2 x mint tea");
    json_decref(seen);
    s_stop(fx);
}

/* SIGTERM with a request out: the sender waits for Twilio's answer (up to
 * SOUK_DRAIN_MS), records it and exits 0. */
static void test_sigterm_drains(void **state)
{
    fx_t *fx = *state;
    s_user(fx, "14155550141", 60 * 1000, false);
    s_fake_script("{\"rules\":[{\"delay_ms\":1000}]}");
    s_put(fx, "r:SMdrain", "14155550141", "slow answer");
    s_start(fx, NULL);
    s_hint(fx, "r:SMdrain");
    int64_t end = zclock_mono() + WAIT_MS;
    while (s_fake_count("messages") < 1 && zclock_mono() < end)
        zclock_sleep(10);
    assert_int_equal(s_fake_count("messages"), 1);
    s_stop(fx); /* asserts a clean exit */
    store_outbox_t row;
    assert_int_equal(store_outbox_get(fx->store, "r:SMdrain", &row), SOUK_OK);
    assert_int_equal(row.state, STORE_OUTBOX_SENT);
    store_outbox_clear(&row);
}

static void test_opted_out_gets_nothing(void **state)
{
    fx_t *fx = *state;
    s_user(fx, "14155550111", 60 * 1000, true);
    s_put(fx, "r:SMstop", "14155550111", "are you there?");
    s_start(fx, NULL);
    s_hint(fx, "r:SMstop");
    s_expect_failed(fx, "r:SMstop", 21610, "opted out");
    zclock_sleep(300);
    assert_int_equal(s_fake_count("attempts"), 0);
    s_stop(fx);
}

/* Every body exactly once at the fake, and each row holds the sid the fake gave it. */
static void s_expect_each_once(fx_t *fx, const char *key_fmt, const char *body_fmt, int n)
{
    json_t *seen = s_fake_seen();
    json_t *msgs = json_object_get(seen, "messages");
    for (int i = 0; i < n; i++) {
        char key[32], body[32], sid[64];
        snprintf(key, sizeof key, key_fmt, i);
        snprintf(body, sizeof body, body_fmt, i);
        s_expect_sent(fx, key, 1, sid);
        size_t j, count = 0;
        json_t *m;
        json_array_foreach(msgs, j, m) {
            if (strcmp(s_form(m, "Body"), body) != 0)
                continue;
            count++;
            assert_string_equal(json_string_value(json_object_get(m, "sid")), sid);
        }
        if (count != 1)
            fail_msg("%s reached Twilio %zu times", body, count);
    }
    json_decref(seen);
}

static void test_kill9_resumes_once(void **state)
{
    fx_t *fx = *state;
    enum { N = 30 };
    s_user(fx, "14155550112", 60 * 1000, false);
    for (int i = 0; i < N; i++) {
        char key[32], body[32];
        snprintf(key, sizeof key, "r:SMkill%02d", i);
        snprintf(body, sizeof body, "resume %02d", i);
        s_put(fx, key, "14155550112", body);
    }
    opts_t o = { .rate = 10 };
    s_start(fx, &o);
    s_hint(fx, "r:SMkill00");
    int64_t end = zclock_mono() + WAIT_MS;
    while (s_fake_count("messages") < 12 && zclock_mono() < end)
        zclock_sleep(20);
    s_kill9(fx);
    size_t before = s_fake_count("messages");
    print_message("killed after %zu of %d messages\n", before, N);
    assert_true(before >= 12 && before < N);
    s_start(fx, &o);
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "r:SMkill%02d", i);
        s_expect_sent(fx, key, 10000, NULL);
    }
    s_expect_each_once(fx, "r:SMkill%02d", "resume %02d", N);
    assert_int_equal(s_fake_count("attempts"), N);
    s_stop(fx);
}

/* Killed after Twilio accepted but before the sids were recorded: the
 * restarted sender finds them in Twilio's list and sends nothing again. A
 * row taken but never posted is found absent and sent once. */
static void test_kill9_mid_request_reconciles(void **state)
{
    fx_t *fx = *state;
    enum { N = 3 };
    s_fake_script("{\"rules\":[{\"delay_ms\":4000,\"times\":-1}]}");
    for (int i = 0; i < N; i++) { /* three users: their sends go out together */
        char key[32], body[32], waid[32];
        snprintf(key, sizeof key, "r:SMmid%d", i);
        snprintf(body, sizeof body, "in flight %d", i);
        snprintf(waid, sizeof waid, "1415555013%d", i);
        s_user(fx, waid, 60 * 1000, false);
        s_put(fx, key, waid, body);
    }
    s_start(fx, NULL);
    s_hint(fx, "r:SMmid0");
    int64_t end = zclock_mono() + WAIT_MS;
    while (s_fake_count("messages") < N && zclock_mono() < end)
        zclock_sleep(20);
    assert_int_equal(s_fake_count("messages"), N);
    s_kill9(fx);
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "r:SMmid%d", i);
        store_outbox_t row;
        assert_int_equal(store_outbox_get(fx->store, key, &row), SOUK_OK);
        assert_int_equal(row.state, STORE_OUTBOX_SENDING);
        store_outbox_clear(&row);
    }
    /* a row a dead sender had taken but not posted yet */
    s_put(fx, "r:SMmid3", "14155550130", "in flight 3");
    int64_t now = s_now();
    store_outbox_change_t take = { .count_attempt = true, .next_attempt_ms = now + 30000, .now_ms = now };
    assert_int_equal(store_outbox_transition(fx->store, "r:SMmid3", STORE_OUTBOX_QUEUED,
                                             STORE_OUTBOX_SENDING, &take, NULL), SOUK_OK);
    s_fake_script("{\"rules\":[]}");
    s_start(fx, NULL); /* no hint: the start-up scan takes the orphans over */
    for (int i = 0; i <= N; i++) {
        char key[32];
        snprintf(key, sizeof key, "r:SMmid%d", i);
        s_expect_sent(fx, key, WAIT_MS, NULL);
    }
    s_expect_each_once(fx, "r:SMmid%d", "in flight %d", N + 1);
    assert_int_equal(s_fake_count("attempts"), N + 1);
    s_stop(fx);
}

static void test_delivery_out_of_order(void **state)
{
    fx_t *fx = *state;
    s_user(fx, "14155550114", 60 * 1000, false);
    s_put(fx, "r:SMdlv", "14155550114", "track me");
    s_start(fx, NULL);
    s_hint(fx, "r:SMdlv");
    char sid[64];
    s_expect_sent(fx, "r:SMdlv", WAIT_MS, sid);
    s_delivery(fx, sid, "delivered");
    s_delivery(fx, sid, "sent");       /* late and older: ignored */
    s_delivery(fx, sid, "delivered");  /* a repeat */
    s_delivery(fx, sid, "accepted");   /* not a state of ours: logged, ignored */
    store_outbox_t row;
    s_wait_row(fx, "r:SMdlv", STORE_OUTBOX_DELIVERED, WAIT_MS, &row);
    store_outbox_clear(&row);
    zclock_sleep(300);
    assert_int_equal(store_outbox_get(fx->store, "r:SMdlv", &row), SOUK_OK);
    assert_int_equal(row.state, STORE_OUTBOX_DELIVERED);
    store_outbox_clear(&row);
    s_delivery(fx, sid, "read");
    s_delivery(fx, sid, "failed");     /* after read: terminal stays */
    s_wait_row(fx, "r:SMdlv", STORE_OUTBOX_READ, WAIT_MS, &row);
    store_outbox_clear(&row);
    zclock_sleep(300);
    assert_int_equal(store_outbox_get(fx->store, "r:SMdlv", &row), SOUK_OK);
    assert_int_equal(row.state, STORE_OUTBOX_READ);
    store_outbox_clear(&row);
    s_stop(fx);
}

static void test_console_mode(void **state)
{
    fx_t *fx = *state;
    s_user(fx, "14155550115", 60 * 1000, false);
    const char *body = "Console says \"hi\"\nsecond line ☕";
    s_put(fx, "r:SMcon", "14155550115", body);
    opts_t o = { .console = true };
    s_start(fx, &o);
    s_hint(fx, "r:SMcon");
    souk_msg_t ev;
    assert_int_equal(s_control_wait(fx, SOUK_MSG_EVENT, "outbound", WAIT_MS, &ev), SOUK_OK);
    json_t *d = json_loads(ev.event.detail, 0, NULL);
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(d, "waid")), "14155550115");
    assert_string_equal(json_string_value(json_object_get(d, "to")), "whatsapp:+14155550115");
    assert_string_equal(json_string_value(json_object_get(d, "key")), "r:SMcon");
    assert_string_equal(json_string_value(json_object_get(d, "body")), body);
    assert_string_equal(ev.event.role, "sender");
    json_decref(d);
    souk_msg_clear(&ev);
    char sid[64];
    s_expect_sent(fx, "r:SMcon", WAIT_MS, sid);
    assert_memory_equal(sid, "console-", 8);

    /* a long reply: one event per part, in order, each row sent */
    char *text = s_long_text(4000);
    char **parts;
    size_t n;
    assert_int_equal(outbox_split(text, &parts, &n), SOUK_OK);
    s_put(fx, "r:SMconlong", "14155550115", text);
    s_hint(fx, "r:SMconlong");
    for (size_t i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, i ? "r:SMconlong#%zu" : "r:SMconlong", i + 1);
        assert_int_equal(s_control_wait(fx, SOUK_MSG_EVENT, "outbound", WAIT_MS, &ev), SOUK_OK);
        d = json_loads(ev.event.detail, 0, NULL);
        assert_string_equal(json_string_value(json_object_get(d, "key")), key);
        assert_string_equal(json_string_value(json_object_get(d, "body")), parts[i]);
        json_decref(d);
        souk_msg_clear(&ev);
        s_expect_sent(fx, key, WAIT_MS, NULL);
    }
    twilio_split_free(&parts, n);
    free(text);
    assert_int_equal(s_fake_count("attempts"), 0);
    s_stop(fx);
    /* the number is masked in the log, the body is only at debug level */
    FILE *f = fopen(fx->log, "r");
    char line[2048];
    bool console_line = false;
    while (f && fgets(line, sizeof line, f)) {
        if (strstr(line, "event=send.console ")) {
            console_line = true;
            assert_null(strstr(line, "14155550115"));
            assert_null(strstr(line, "Console says"));
        }
        assert_null(strstr(line, TOKEN));
    }
    if (f)
        fclose(f);
    assert_true(console_line);
}

/* Not a claim, a figure: how fast the sender goes against the fake. */
static void test_throughput(void **state)
{
    fx_t *fx = *state;
    enum { N = 1000, USERS = 50 };
    for (int u = 0; u < USERS; u++) {
        char waid[32];
        snprintf(waid, sizeof waid, "141555510%02d", u);
        s_user(fx, waid, 60 * 1000, false);
    }
    for (int i = 0; i < N; i++) {
        char key[32], body[32], waid[32];
        snprintf(key, sizeof key, "r:SMfast%04d", i);
        snprintf(body, sizeof body, "fast %04d", i);
        snprintf(waid, sizeof waid, "141555510%02d", i % USERS);
        s_put(fx, key, waid, body);
    }
    opts_t o = { .rate = 10000 };
    s_start(fx, &o);
    s_hint(fx, "r:SMfast0000");
    int64_t end = zclock_mono() + 60000;
    while (s_fake_count("messages") < N && zclock_mono() < end)
        zclock_sleep(50);
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "r:SMfast%04d", i);
        s_expect_sent(fx, key, 10000, NULL);
    }
    json_t *seen = s_fake_seen();
    json_t *msgs = json_object_get(seen, "messages");
    assert_int_equal(json_array_size(msgs), N);
    double span = s_ts(json_array_get(msgs, N - 1)) - s_ts(json_array_get(msgs, 0));
    print_message("%d sends in %.3f s: %.0f sends/s against the fake\n", N, span, (N - 1) / span);
    json_decref(seen);
    /* and no token in any log line */
    s_stop(fx);
    FILE *f = fopen(fx->log, "r");
    char line[4096];
    while (f && fgets(line, sizeof line, f))
        assert_null(strstr(line, TOKEN));
    if (f)
        fclose(f);
}

int main(void)
{
    if (getenv("SOUK_TEST_FILTER")) /* e.g. SOUK_TEST_FILTER='test_kill9*' */
        cmocka_set_test_filter(getenv("SOUK_TEST_FILTER"));
    const struct CMUnitTest rules[] = {
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_parsing),
        cmocka_unit_test(test_split_utf16),
        cmocka_unit_test(test_bucket),
    };
#define T(fn) cmocka_unit_test_setup_teardown(fn, s_setup, s_teardown)
    const struct CMUnitTest actor[] = {
        T(test_sent_with_sid),
        T(test_wrong_credentials),
        T(test_429_honours_retry_after),
        T(test_5xx_backs_off),
        T(test_network_error_retries),
        T(test_permanent_errors),
        T(test_gives_up),
        T(test_long_body_split_in_order),
        T(test_rate_limit),
        T(test_one_send_per_recipient),
        T(test_window_uses_template),
        T(test_window_without_template_fails),
        T(test_opted_out_gets_nothing),
        T(test_merchant_notification),
        T(test_sigterm_drains),
        T(test_kill9_resumes_once),
        T(test_kill9_mid_request_reconciles),
        T(test_delivery_out_of_order),
        T(test_console_mode),
        T(test_throughput),
    };
#undef T
    int failed = cmocka_run_group_tests_name("sender rules", rules, NULL, NULL);
    failed += cmocka_run_group_tests_name("sender actor", actor, s_fake_start, s_fake_stop);
    return failed;
}
