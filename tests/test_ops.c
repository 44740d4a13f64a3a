/* Operations, end to end against the real `souk serve` (tests/harness.h):
 * GET /metrics moves with traffic and restarts, the log carries one request
 * id from the gateway through the session and the tools to the sender and
 * never a secret or a whole phone number, the systemd notify protocol
 * against a socket this test binds, the unit file passes systemd-analyze,
 * and configuration errors stop start-up naming the variable.
 *
 * Sends by Twilio error code are checked against tests/fakes/twilio_fake.py,
 * a local stand-in that follows Twilio's documented REST contract (Twilio
 * cannot be reached from here).
 *
 * One scenario per process (the argument), as in test_supervisor.c. Values
 * that come from heartbeats are at most one heartbeat old: the tests
 * scrape again until they show (with a deadline), never sleep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fake_proc.h"
#include "harness.h"
#include "slurp.h"

#define WAIT_MS 10000

static const char *const fast_env[] = { "SOUK_DEBOUNCE_MS=0", "SOUK_HEARTBEAT_MS=100", NULL };

/* ---- helpers --------------------------------------------------------------- */

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

/* Stops souk, keeps its log for the caller, removes the folder. */
static char *s_stop_with_log(harness_t *h)
{
    assert_int_equal(harness_stop(h, true), 0);
    char *log = slurp(h->log_path, NULL);
    nftw(h->data, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    return log;
}

/* ---- metrics ---------------------------------------------------------------- */

static void metrics_exposition(void **state)
{
    (void)state;
    harness_t h;
    assert_int_equal(harness_start(&h, fast_env), 0);
    char *body = NULL, *ctype = NULL;
    assert_int_equal(harness_get(&h, "/metrics", &body, &ctype), 200);
    assert_non_null(strstr(ctype, "text/plain"));
    assert_non_null(strstr(ctype, "version=0.0.4"));
    /* every family the issue names, typed */
    const char *families[] = {
        "# TYPE souk_webhook_requests_total counter",
        "# TYPE souk_webhook_duration_seconds histogram",
        "# TYPE souk_reply_duration_seconds histogram",
        "# TYPE souk_tool_call_duration_seconds histogram",
        "# TYPE souk_llm_request_duration_seconds histogram",
        "# TYPE souk_send_duration_seconds histogram",
        "# TYPE souk_sessions_live gauge",
        "# TYPE souk_actor_restarts_total counter",
        "# TYPE souk_actors_hung gauge",
        "# TYPE souk_actor_queue_depth gauge",
        "# TYPE souk_outbox_messages gauge",
        "# TYPE souk_send_errors_total counter",
        "# TYPE souk_llm_tokens_total counter",
        "# TYPE souk_dedupe_hits_total counter",
    };
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (!strstr(body, families[i]))
            fail_msg("missing: %s", families[i]);
    /* LLM tokens are zero until an LLM is wired in; the tree is there */
    assert_true(harness_metric_value(body, "souk_llm_tokens_total") == 0);
    assert_true(harness_metric_value(body, "souk_actors{role=\"tool\"}") == 2);
    assert_true(harness_metric_value(body, "souk_actors{role=\"gateway\"}") == 1);
    /* histogram buckets ascend, +Inf last, then _sum and _count */
    const char *b1 = strstr(body, "souk_send_duration_seconds_bucket{le=\"0.005\"}");
    const char *b2 = strstr(body, "souk_send_duration_seconds_bucket{le=\"30\"}");
    const char *inf = strstr(body, "souk_send_duration_seconds_bucket{le=\"+Inf\"}");
    const char *sum = strstr(body, "souk_send_duration_seconds_sum");
    assert_true(b1 && b2 && inf && sum && b1 < b2 && b2 < inf && inf < sum);
    free(body);
    free(ctype);
    /* GET only */
    harness_reply_t r;
    assert_int_equal(harness_post_raw(&h, "/metrics", "text/plain", "", NULL, &r), 0);
    assert_int_equal(r.status, 405);
    harness_reply_clear(&r);
    assert_int_equal(harness_stop(&h, false), 0);
}

static void metrics_move_with_traffic(void **state)
{
    (void)state;
    harness_t h;
    assert_int_equal(harness_start(&h, fast_env), 0);
    const char *ok200 = "souk_webhook_requests_total{route=\"/webhooks/whatsapp\",status=\"200\"}";
    assert_true(harness_metric(&h, ok200) < 1);
    assert_true(harness_metric(&h, "souk_sessions_live") == 0);

    char sid[35];
    harness_reply_t r;
    assert_int_equal(harness_send(&h, "15550002001", "Ana", "hello", NULL, sid, &r), 0);
    assert_string_equal(r.answer, "inline");
    harness_reply_clear(&r);
    assert_int_equal(harness_send(&h, "15550002002", "Bo", "hi", NULL, NULL, &r), 0);
    harness_reply_clear(&r);
    assert_true(harness_metric_await(&h, ok200, 2, WAIT_MS) >= 2);
    assert_true(harness_metric_await(&h, "souk_webhook_duration_seconds_count{route=\"/webhooks/whatsapp\"}", 2, WAIT_MS) >= 2);
    assert_true(harness_metric(&h, "souk_sessions_live") == 2);
    assert_true(harness_metric_await(&h, "souk_reply_duration_seconds_count{path=\"inline\"}", 2, WAIT_MS) >= 2);

    /* a repeated MessageSid is a dedupe hit, answered without processing */
    assert_true(harness_metric(&h, "souk_dedupe_hits_total{where=\"gateway\"}") < 1);
    assert_int_equal(harness_send(&h, "15550002001", "Ana", "hello", sid, NULL, &r), 0);
    assert_string_equal(r.answer, "none");
    harness_reply_clear(&r);
    assert_true(harness_metric_await(&h, "souk_dedupe_hits_total{where=\"gateway\"}", 1, WAIT_MS) >= 1);

    /* a bad request is counted under its status */
    assert_int_equal(harness_post_raw(&h, "/webhooks/whatsapp", "application/x-www-form-urlencoded",
                                      "From=x", "bad", &r), 0);
    assert_int_equal(r.status, 403);
    harness_reply_clear(&r);
    assert_true(harness_metric_await(&h, "souk_webhook_requests_total{route=\"/webhooks/whatsapp\",status=\"403\"}", 1, WAIT_MS) >= 1);
    assert_int_equal(harness_stop(&h, false), 0);
}

static pid_t s_kill_actor(harness_t *h, const char *name)
{
    pid_t pid = harness_actor_pid(h, name);
    assert_true(pid > 0);
    assert_int_equal(kill(pid, SIGKILL), 0);
    return pid;
}

static void s_await_ready(harness_t *h, const char *name)
{
    souk_msg_t ev;
    for (;;) {
        assert_int_equal(harness_wait_event(h, "ready", name, WAIT_MS, &ev), 0);
        bool it = strcmp(ev.event.name, name) == 0;
        souk_msg_clear(&ev);
        if (it)
            return;
    }
}

static void metrics_move_with_restarts(void **state)
{
    (void)state;
    harness_t h;
    assert_int_equal(harness_start(&h, fast_env), 0);
    assert_int_equal(harness_events_join(&h, WAIT_MS), 0);
    harness_reply_t r;
    assert_int_equal(harness_send(&h, "15550002003", "Cy", "hello", NULL, NULL, &r), 0);
    harness_reply_clear(&r);
    assert_true(harness_metric(&h, "souk_actor_restarts_total{role=\"tool\"}") == 0);
    assert_true(harness_metric(&h, "souk_actor_restarts_total{role=\"session\"}") == 0);

    s_kill_actor(&h, "tool-1");
    s_await_ready(&h, "tool-1");
    assert_true(harness_metric(&h, "souk_actor_restarts_total{role=\"tool\"}") == 1);

    s_kill_actor(&h, "s-15550002003");
    souk_msg_t ev;
    assert_int_equal(harness_wait_event(&h, "restarted", "s-15550002003", WAIT_MS, &ev), 0);
    souk_msg_clear(&ev);
    assert_true(harness_metric(&h, "souk_actor_restarts_total{role=\"session\"}") == 1);

    /* a restarted gateway starts counting from zero, but the total does
     * not go down: the dead process's counts are kept by the supervisor */
    const char *ok200 = "souk_webhook_requests_total{route=\"/webhooks/whatsapp\",status=\"200\"}";
    assert_true(harness_metric_await(&h, ok200, 1, WAIT_MS) >= 1);
    s_kill_actor(&h, "gateway");
    s_await_ready(&h, "gateway");
    assert_true(harness_metric(&h, "souk_actor_restarts_total{role=\"gateway\"}") == 1);
    assert_true(harness_metric(&h, ok200) >= 1);
    assert_int_equal(harness_send(&h, "15550002003", "Cy", "again", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    harness_reply_clear(&r);
    assert_true(harness_metric_await(&h, ok200, 2, WAIT_MS) >= 2);
    assert_int_equal(harness_stop(&h, false), 0);
}

/* A hung actor (SIGSTOP: alive, silent) is counted, killed and restarted. */
static void metrics_count_hung_actor(void **state)
{
    (void)state;
    harness_t h;
    assert_int_equal(harness_start(&h, fast_env), 0);
    assert_int_equal(harness_events_join(&h, WAIT_MS), 0);
    pid_t pid = harness_actor_pid(&h, "tool-0");
    assert_true(pid > 0);
    assert_int_equal(kill(pid, SIGSTOP), 0);
    souk_msg_t ev;
    assert_int_equal(harness_wait_event(&h, "hung", "tool-0", WAIT_MS, &ev), 0);
    souk_msg_clear(&ev);
    s_await_ready(&h, "tool-0");
    assert_true(harness_metric(&h, "souk_actor_hung_total{role=\"tool\"}") == 1);
    assert_true(harness_metric(&h, "souk_actor_restarts_total{role=\"tool\"}") == 1);
    assert_int_equal(harness_stop(&h, false), 0);
}

/* ---- sends through the fake Twilio --------------------------------------------- */

#define ACCOUNT "AC0123456789abcdef0123456789abcdef"
static void s_no_secret_or_number(const char *log, const char *waid);
/* A refused send is counted under Twilio's error code, an accepted one as
 * sent, both with their send time. */
static void metrics_send_errors_by_code(void **state)
{
    (void)state;
    const char *args[] = { "--account-sid", ACCOUNT, "--auth-token", HARNESS_TOKEN, NULL };
    fake_proc_t fake;
    assert_int_equal(fake_proc_start(&fake, "twilio_fake.py", args), 0);
    json_t *ok = fake_proc_call(&fake, "POST", "/_fake/script",
                                "{\"rules\": [{\"status\": 400, \"code\": 21211, \"times\": 1}]}");
    assert_non_null(ok);
    json_decref(ok);
    char api[64];
    snprintf(api, sizeof api, "TWILIO_API_BASE=http://127.0.0.1:%d", fake.port);
    const char *const env[] = { "SOUK_REPLY_BUDGET_MS=100", "SOUK_DEBOUNCE_MS=600",
                                "SOUK_HEARTBEAT_MS=100", "TWILIO_ACCOUNT_SID=" ACCOUNT,
                                "TWILIO_WHATSAPP_FROM=whatsapp:+14155238886", api, NULL };
    harness_t h;
    assert_int_equal(harness_start(&h, env), 0);
    harness_reply_t r;
    assert_int_equal(harness_send(&h, "15550004001", "Ha", "first", NULL, NULL, &r), 0);
    assert_string_equal(r.answer, "later");
    harness_reply_clear(&r);
    assert_true(harness_metric_await(&h, "souk_send_errors_total{code=\"21211\"}", 1, WAIT_MS) >= 1);
    assert_true(harness_metric_await(&h, "souk_sends_total{channel=\"twilio\",result=\"failed\"}", 1, WAIT_MS) >= 1);
    assert_int_equal(harness_send(&h, "15550004002", "Io", "second", NULL, NULL, &r), 0);
    harness_reply_clear(&r);
    assert_true(harness_metric_await(&h, "souk_sends_total{channel=\"twilio\",result=\"sent\"}", 1, WAIT_MS) >= 1);
    assert_true(harness_metric_await(&h, "souk_send_duration_seconds_count{channel=\"twilio\"}", 2, WAIT_MS) >= 2);
    assert_true(harness_metric_await(&h, "souk_outbox_messages{state=\"failed\"}", 1, WAIT_MS) >= 1);
    char *log = s_stop_with_log(&h);
    s_no_secret_or_number(log, "15550004001");
    free(log);
    fake_proc_stop(&fake);
}

/* ---- logs ------------------------------------------------------------------- */

/* The request id of the gateway's `event` line that mentions sid. */
static bool s_request_of_event(const char *log, const char *event, const char *sid, char *req,
                               size_t len)
{
    for (const char *p = log; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        const char *end = strchr(p, '\n');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char line[2048];
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), p);
        char want[64];
        snprintf(want, sizeof want, "event=%s ", event);
        if (!strstr(line, want) || !strstr(line, sid))
            continue;
        const char *r = strstr(line, " req=");
        if (!r)
            return false;
        snprintf(req, len, "%.*s", (int)strcspn(r + 5, " "), r + 5);
        return true;
    }
    return false;
}

static bool s_request_of(const char *log, const char *sid, char *req, size_t len)
{
    return s_request_of_event(log, "http.inbound", sid, req, len);
}

/* Whether some line of `actor` carries req=<req>. */
static bool s_actor_has(const char *log, const char *actor_prefix, const char *req)
{
    char want_actor[64], want_req[96];
    snprintf(want_actor, sizeof want_actor, " actor=%s", actor_prefix);
    snprintf(want_req, sizeof want_req, " req=%s ", req);
    for (const char *p = log; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        const char *end = strchr(p, '\n');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char line[4096];
        snprintf(line, sizeof line, "%.*s ", (int)(n < sizeof line - 2 ? n : sizeof line - 2), p);
        if (strstr(line, want_actor) && strstr(line, want_req))
            return true;
    }
    return false;
}

static void s_no_secret_or_number(const char *log, const char *waid)
{
    assert_null(strstr(log, HARNESS_TOKEN));
    assert_null(strstr(log, waid));
}

/* Deferred by the debounce past the budget: the reply goes through the
 * sender, and each actor's lines about it carry the gateway's request id. */
static void logs_request_id_to_sender(void **state)
{
    (void)state;
    const char *const env[] = { "SOUK_REPLY_BUDGET_MS=100", "SOUK_DEBOUNCE_MS=600",
                                "SOUK_LOG_LEVEL=debug", NULL };
    harness_t h;
    assert_int_equal(harness_start(&h, env), 0);
    char sid[35];
    harness_reply_t r;
    assert_int_equal(harness_send(&h, "15550003001", "Di", "later please", NULL, sid, &r), 0);
    assert_string_equal(r.answer, "later");
    harness_reply_clear(&r);
    char *body = NULL;
    assert_int_equal(harness_wait_outbound(&h, "15550003001", WAIT_MS, &body), 0);
    free(body);
    /* and the figures of that path: the sender's, the outbox's, the session's */
    assert_true(harness_metric_await(&h, "souk_sends_total{channel=\"console\",result=\"sent\"}", 1, WAIT_MS) >= 1);
    assert_true(harness_metric_await(&h, "souk_reply_duration_seconds_count{path=\"later\"}", 1, WAIT_MS) >= 1);
    assert_true(harness_metric_await(&h, "souk_outbox_messages{state=\"sent\"}", 1, WAIT_MS) >= 1);
    /* a status callback's request id reaches the sender's line about it */
    const char *status_sid = "SM0123456789abcdef0123456789abcdee";
    char form[256], sig[64];
    snprintf(form, sizeof form, "MessageSid=%s&MessageStatus=delivered&AccountSid=AC1", status_sid);
    assert_int_equal(harness_sign("/webhooks/whatsapp/status", form, sig), 0);
    assert_int_equal(harness_post_raw(&h, "/webhooks/whatsapp/status",
                                      "application/x-www-form-urlencoded", form, sig, &r), 0);
    assert_int_equal(r.status, 200);
    harness_reply_clear(&r);
    assert_true(harness_metric_await(&h, "souk_webhook_requests_total{route=\"/webhooks/whatsapp/status\",status=\"200\"}", 1, WAIT_MS) >= 1);
    assert_true(harness_metric_await(&h, "souk_delivery_updates_total{status=\"delivered\"}", 1, WAIT_MS) >= 1);
    char *log = s_stop_with_log(&h);
    char status_req[64];
    assert_true(s_request_of_event(log, "http.status", status_sid, status_req, sizeof status_req));
    assert_true(s_actor_has(log, "sender", status_req));
    assert_non_null(log);
    char req[64];
    assert_true(s_request_of(log, sid, req, sizeof req));
    assert_true(s_actor_has(log, "gateway", req));
    assert_true(s_actor_has(log, "s-", req));
    assert_true(s_actor_has(log, "sender", req));
    s_no_secret_or_number(log, "15550003001");
    free(log);
}

/* The built-in agent searches the catalogue: the tool actor's line for that
 * call carries the message's request id. */
static void logs_request_id_to_tools(void **state)
{
    (void)state;
    const char *const env[] = { "SOUK_AGENT=builtin", "SOUK_DEBOUNCE_MS=0", NULL };
    harness_t h;
    assert_int_equal(harness_start(&h, env), 0);
    char sid[35];
    harness_reply_t r;
    assert_int_equal(harness_send(&h, "15550003002", "Ed", "do you have red headphones?", NULL,
                                  sid, &r), 0);
    assert_int_equal(r.status, 200);
    harness_reply_clear(&r);
    assert_true(harness_metric_await(&h, "souk_tool_call_duration_seconds_count{tool=\"search_products\"}", 1, WAIT_MS) >= 1);
    char *log = s_stop_with_log(&h);
    char req[64];
    assert_true(s_request_of(log, sid, req, sizeof req));
    assert_true(s_actor_has(log, "tool-", req));
    assert_true(s_actor_has(log, "s-", req));
    s_no_secret_or_number(log, "15550003002");
    free(log);
}

/* SOUK_LOG_FORMAT=json: every line is one JSON object with ts, level,
 * actor and event; SOUK_LOG_LEVEL=warn leaves out info lines. */
static void logs_json_and_level(void **state)
{
    (void)state;
    const char *const env[] = { "SOUK_LOG_FORMAT=json", "SOUK_DEBOUNCE_MS=0", NULL };
    harness_t h;
    assert_int_equal(harness_start(&h, env), 0);
    harness_reply_t r;
    assert_int_equal(harness_send(&h, "15550003003", "Fa", "hello", NULL, NULL, &r), 0);
    harness_reply_clear(&r);
    char *log = s_stop_with_log(&h);
    int lines = 0;
    bool saw_req = false;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (!o)
            fail_msg("not JSON: %s", line);
        assert_non_null(json_string_value(json_object_get(o, "ts")));
        assert_non_null(json_string_value(json_object_get(o, "level")));
        assert_non_null(json_string_value(json_object_get(o, "actor")));
        assert_non_null(json_string_value(json_object_get(o, "event")));
        saw_req = saw_req || json_object_get(o, "req");
        json_decref(o);
        lines++;
    }
    assert_true(lines > 10);
    assert_true(saw_req);
    free(log);

    const char *const quiet[] = { "SOUK_LOG_LEVEL=warn", NULL };
    assert_int_equal(harness_start(&h, quiet), 0);
    assert_int_equal(harness_send(&h, "15550003004", "Gu", "hello", NULL, NULL, &r), 0);
    harness_reply_clear(&r);
    log = s_stop_with_log(&h);
    assert_null(strstr(log, "level=info"));
    assert_null(strstr(log, "level=debug"));
    free(log);
}

/* Without TWILIO_AUTH_TOKEN souk makes a development token in the data
 * folder: the log says where it is, never what it is. */
static void logs_dev_token_stays_in_its_file(void **state)
{
    (void)state;
    const char *const env[] = { "TWILIO_AUTH_TOKEN=", NULL };
    harness_t h;
    assert_int_equal(harness_start(&h, env), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/dev-token", h.data);
    char *token = slurp(path, NULL);
    assert_non_null(token);
    token[strcspn(token, "\r\n")] = '\0';
    assert_true(strlen(token) >= 16);
    char *log = s_stop_with_log(&h);
    assert_non_null(strstr(log, "dev-token"));
    assert_null(strstr(log, token));
    free(log);
    free(token);
}

/* ---- systemd ------------------------------------------------------------------ */

static int s_bind_notify(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
        return -1;
    return fd;
}

/* Waits (poll on the socket) for a datagram holding the line `want`. */
static bool s_notified(int fd, const char *want, int timeout_ms)
{
    for (int64_t end = zclock_mono() + timeout_ms; zclock_mono() < end;) {
        zmq_pollitem_t item = { .fd = fd, .events = ZMQ_POLLIN };
        if (zmq_poll(&item, 1, (long)(end - zclock_mono())) <= 0)
            continue;
        char buf[1024];
        ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save))
            if (!strncmp(line, want, strlen(want)))
                return true;
    }
    return false;
}

static void notify_protocol(void **state)
{
    (void)state;
    char path[96], env_sock[128];
    snprintf(path, sizeof path, "/tmp/souk-notify-%d", (int)getpid());
    unlink(path);
    int fd = s_bind_notify(path);
    assert_true(fd >= 0);
    snprintf(env_sock, sizeof env_sock, "NOTIFY_SOCKET=%s", path);
    const char *const env[] = { env_sock, "WATCHDOG_USEC=400000", NULL };
    harness_t h;
    assert_int_equal(harness_start(&h, env), 0);
    assert_true(s_notified(fd, "STATUS=starting", WAIT_MS));
    assert_true(s_notified(fd, "READY=1", WAIT_MS));
    /* the watchdog is fed at half of WATCHDOG_USEC, again and again */
    assert_true(s_notified(fd, "WATCHDOG=1", WAIT_MS));
    assert_true(s_notified(fd, "WATCHDOG=1", WAIT_MS));
    kill(h.pid, SIGTERM);
    assert_true(s_notified(fd, "STOPPING=1", WAIT_MS));
    assert_int_equal(harness_stop(&h, false), 0);
    close(fd);
    unlink(path);
}

/* systemd-analyze verify on the unit, with ExecStart pointed at the binary
 * under test (skipped where systemd is not installed). */
static void unit_verifies(void **state)
{
    (void)state;
    const char *src = getenv("SOUK_SRC");
    assert_non_null(src);
    if (system("command -v systemd-analyze >/dev/null 2>&1") != 0) {
        skip();
        return;
    }
    char unit_in[512];
    snprintf(unit_in, sizeof unit_in, "%s/scripts/souk.service", src);
    char *unit = slurp(unit_in, NULL);
    assert_non_null(unit);
    const char *keys[] = { "Type=notify", "WatchdogSec=", "Restart=on-failure", "EnvironmentFile=",
                           "User=souk", "NoNewPrivileges=yes", "ProtectSystem=strict",
                           "ProtectHome=yes", "PrivateTmp=yes", "ReadWritePaths=/var/lib/souk",
                           "NotifyAccess=main", "KillMode=mixed" };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!strstr(unit, keys[i]))
            fail_msg("souk.service lacks %s", keys[i]);
    char dir[] = "/tmp/souk-unit-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], cmd[1024];
    snprintf(path, sizeof path, "%s/souk.service", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (char *save = NULL, *line = strtok_r(unit, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "ExecStart=", 10))
            fprintf(f, "ExecStart=%s serve\n", harness_bin());
        else if (!strncmp(line, "EnvironmentFile=", 16))
            fprintf(f, "EnvironmentFile=-/etc/souk/souk.env\n"); /* absent here: optional for the check */
        else
            fprintf(f, "%s\n", line);
    }
    fclose(f);
    free(unit);
    snprintf(cmd, sizeof cmd, "systemd-analyze verify --man=no %s > %s/out 2>&1", path, dir);
    int rc = system(cmd);
    snprintf(path, sizeof path, "%s/out", dir);
    char *out = slurp(path, NULL);
    /* the unit's own lines must be clean; the host's other units are not ours */
    bool ours = out && strstr(out, "souk.service:");
    if (rc != 0 || ours)
        fprintf(stderr, "systemd-analyze: %s\n", out ? out : "");
    assert_false(ours);
    free(out);
    nftw(dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static int s_souk(const char *env, const char *args, char **out, char **err);

/* No Docker engine runs here: the Dockerfile is checked by reading it for
 * what the issue asks (a multi-stage Debian 12 slim build that runs the
 * README's test script, a non-root runtime, PORT, SIGTERM, HEALTHCHECK). */
static void dockerfile_reads_right(void **state)
{
    (void)state;
    const char *src = getenv("SOUK_SRC");
    char path[512];
    snprintf(path, sizeof path, "%s/Dockerfile", src);
    char *d = slurp(path, NULL);
    assert_non_null(d);
    const char *build = strstr(d, "FROM debian:12-slim AS build");
    assert_non_null(build);
    const char *runtime = strstr(build + 1, "\nFROM debian:12-slim\n");
    assert_non_null(runtime);
    const char *test = strstr(build, "./scripts/test");
    assert_true(test && test < runtime); /* tests run in the build stage */
    assert_non_null(strstr(build, "./scripts/setup"));
    const char *user = strstr(runtime, "\nUSER ");
    assert_non_null(user);
    assert_null(strstr(user, "USER root"));
    assert_non_null(strstr(runtime, "HEALTHCHECK"));
    assert_non_null(strstr(runtime, "/healthz"));
    assert_non_null(strstr(runtime, "PORT"));
    assert_non_null(strstr(runtime, "STOPSIGNAL SIGTERM"));
    assert_non_null(strstr(runtime, "ENTRYPOINT [\"/usr/local/bin/souk\"]")); /* exec form: PID 1 */
    assert_non_null(strstr(runtime, "CMD [\"serve\"]"));
    free(d);
    snprintf(path, sizeof path, "%s/.dockerignore", src);
    d = slurp(path, NULL);
    assert_non_null(d);
    assert_non_null(strstr(d, "build"));
    assert_non_null(strstr(d, ".git"));
    free(d);
    /* souk honours PORT when SOUK_PORT is unset (Cloud Run) */
    char *out, *err;
    assert_int_equal(s_souk("PORT=9191", "config", &out, &err), 0);
    assert_non_null(strstr(out, "SOUK_PORT=9191"));
    free(out);
    free(err);
}

/* ---- configuration --------------------------------------------------------------- */

/* Runs `souk ARGS` with extra env; returns the exit code, *err its stderr. */
static int s_souk(const char *env, const char *args, char **out, char **err)
{
    char dir[] = "/tmp/souk-cfg-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && env -u SOUK_PORT -u TWILIO_AUTH_TOKEN SOUK_DATA=%s/var %s %s %s "
             "> %s/out 2> %s/err",
             dir, dir, env, harness_bin(), args, dir, dir);
    int status = system(cmd);
    char path[128];
    snprintf(path, sizeof path, "%s/out", dir);
    *out = slurp(path, NULL);
    snprintf(path, sizeof path, "%s/err", dir);
    *err = slurp(path, NULL);
    nftw(dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void config_errors_name_the_variable(void **state)
{
    (void)state;
    struct {
        const char *env, *name;
    } bad[] = {
        { "SOUK_PORT=http", "SOUK_PORT" },
        { "SOUK_TOOLS=0", "SOUK_TOOLS" },
        { "SOUK_LOG_FORMAT=xml", "SOUK_LOG_FORMAT" },
        { "SOUK_PUBLIC_URL=ftp://x", "SOUK_PUBLIC_URL" },
        { "SOUK_REPLY_BUDGET_MS=20000", "SOUK_REPLY_BUDGET_MS" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out, *err;
        int code = s_souk(bad[i].env, "serve", &out, &err);
        if (code != 78 || !strstr(err, bad[i].name))
            fail_msg("%s: exit %d, stderr: %s", bad[i].env, code, err);
        free(out);
        free(err);
    }
}

static void config_file_and_env(void **state)
{
    (void)state;
    char file[] = "/tmp/souk-env-XXXXXX";
    int fd = mkstemp(file);
    assert_true(fd >= 0);
    const char *text = "# souk.env\nSOUK_SHOP_NAME=From The File\nSOUK_TOOLS=3\n"
                       "TWILIO_AUTH_TOKEN=file-secret-0123456789\n"
                       "SOUK_MERCHANT_WEBHOOK=https://shop:hook-password@hooks.example.org/new\n";
    assert_true(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    char args[256], *out, *err;
    /* the file is read, and its secret is hidden */
    snprintf(args, sizeof args, "--config %s config", file);
    assert_int_equal(s_souk("", args, &out, &err), 0);
    assert_non_null(strstr(out, "SOUK_SHOP_NAME=From The File"));
    assert_non_null(strstr(out, "SOUK_TOOLS=3"));
    assert_non_null(strstr(out, "TWILIO_AUTH_TOKEN=(set)"));
    assert_null(strstr(out, "file-secret"));
    /* so are a URL's credentials */
    assert_null(strstr(out, "hook-password"));
    assert_non_null(strstr(out, "SOUK_MERCHANT_WEBHOOK=https://(credentials hidden)@hooks.example.org/new"));
    free(out);
    free(err);
    /* the environment wins over the file */
    assert_int_equal(s_souk("SOUK_TOOLS=5 TWILIO_AUTH_TOKEN=env-secret-abcdef", args, &out, &err), 0);
    assert_non_null(strstr(out, "SOUK_TOOLS=5"));
    assert_null(strstr(out, "env-secret"));
    free(out);
    free(err);
    /* a wrong value in the file stops start-up, naming it */
    FILE *f = fopen(file, "a");
    fputs("SOUK_SESSIONS_MAX=-4\n", f);
    fclose(f);
    snprintf(args, sizeof args, "serve --config %s", file);
    assert_int_equal(s_souk("", args, &out, &err), 78);
    assert_non_null(strstr(err, "SOUK_SESSIONS_MAX"));
    free(out);
    free(err);
    /* so does a name souk does not know (a typo would be silently ignored) */
    f = fopen(file, "w");
    fputs("SOUK_TOOOLS=2\n", f);
    fclose(f);
    assert_int_equal(s_souk("", args, &out, &err), 78);
    assert_non_null(strstr(err, "SOUK_TOOOLS"));
    free(out);
    free(err);
    /* and a missing file */
    assert_int_equal(s_souk("", "serve --config /nonexistent/souk.env", &out, &err), 78);
    assert_non_null(strstr(err, "/nonexistent/souk.env"));
    free(out);
    free(err);
    unlink(file);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_exposition),
        cmocka_unit_test(metrics_move_with_traffic),
        cmocka_unit_test(metrics_move_with_restarts),
        cmocka_unit_test(metrics_count_hung_actor),
        cmocka_unit_test(metrics_send_errors_by_code),
        cmocka_unit_test(logs_request_id_to_sender),
        cmocka_unit_test(logs_request_id_to_tools),
        cmocka_unit_test(logs_json_and_level),
        cmocka_unit_test(logs_dev_token_stays_in_its_file),
        cmocka_unit_test(notify_protocol),
        cmocka_unit_test(unit_verifies),
        cmocka_unit_test(dockerfile_reads_right),
        cmocka_unit_test(config_errors_name_the_variable),
        cmocka_unit_test(config_file_and_env),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
