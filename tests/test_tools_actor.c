/* The tool actor and the sender's webhook delivery, as real processes.
 *
 * Each test runs `$SOUK_BIN actor tool tool-0 0` (and, for webhooks, `actor
 * sender sender`) in its own data folder, with a ROUTER on the control
 * endpoint playing the supervisor, a DEALER on tool-0 playing a session and,
 * when no sender runs, a PULL on the sender endpoint catching SEND_HINTs.
 * The merchant's webhook is tests/fakes/webhook_fake.py (one for the run,
 * reset between tests), which records every request and answers scripted
 * statuses. The store is read directly to check what happened. */
#include "fake_proc.h"
#include "souk/endpoints.h"
#include "souk/error.h"
#include "souk/proto.h"
#include "souk/search.h"
#include "souk/store.h"

#include <curl/curl.h>
#include <czmq.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
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

#define ANA "15551230001"
#define MERCHANT "+15550001111"
#define WAIT_MS 8000

/* ---- the webhook fake: one for the whole run ---------------------------------------- */

static fake_proc_t s_fake;

static int s_fake_start(void **state)
{
    (void)state;
    int rc = fake_proc_start(&s_fake, "webhook_fake.py", NULL);
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

/* The requests the fake has seen, once there are at least n (or after timeout_ms). */
static json_t *s_fake_requests(size_t n, int timeout_ms)
{
    int64_t end = zclock_mono() + timeout_ms;
    for (;;) {
        json_t *doc = s_fake_call("GET", "/_fake/requests", NULL);
        json_t *list = json_incref(json_object_get(doc, "requests"));
        json_decref(doc);
        if (json_array_size(list) >= n || zclock_mono() >= end)
            return list;
        json_decref(list);
        zclock_sleep(20);
    }
}

static const char *s_header(const json_t *req, const char *name)
{
    return json_string_value(json_object_get(json_object_get(req, "headers"), name));
}

/* ---- fixture ---------------------------------------------------------------------------- */

typedef struct {
    char dir[32];
    char run[64];
    zsock_t *control;   /* ROUTER: the supervisor */
    zsock_t *tool;      /* DEALER: a session */
    zsock_t *pull;      /* PULL on the sender endpoint, when no sender runs */
    store_t *store;
    pid_t tool_pid, sender_pid;
    char url[128];      /* the fake's webhook URL */
} fx_t;

#define P(sku_, name_, cat_, desc_, cents_, stock_)                                        \
    { .sku = sku_, .name = name_, .category = cat_, .description = desc_,                  \
      .price_cents = cents_, .currency = "USD", .stock = stock_, .updated_ms = 1 }

static store_product_t s_catalogue[] = {
    P("BEA-MASC", "Essence Mascara Lash Princess", "beauty", "A volumizing mascara for long lashes.", 999, 10),
    P("SHO-RUN", "Trail Running Sneakers", "shoes", "Comfortable running shoes.", 5999, 5),
    P("WAT-LAST", "Limited Edition Watch", "accessories", "A numbered wristwatch.", 25000, 1),
};

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/sk-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->run, sizeof fx->run, "%s/run", fx->dir);
    assert_int_equal(mkdir(fx->run, 0750), 0);
    char ep[256], err[256];
    souk_endpoint(ep, sizeof ep, fx->run, SOUK_EP_CONTROL, 0);
    fx->control = zsock_new(ZMQ_ROUTER);
    zsock_set_linger(fx->control, 0);
    zsock_set_router_handover(fx->control, 1);
    assert_true(zsock_bind(fx->control, "%s", ep) >= 0);
    assert_int_equal(store_open("sqlite", fx->dir, NULL, &fx->store, err, sizeof err), SOUK_OK);
    assert_int_equal(store_product_upsert(fx->store, s_catalogue, 3, NULL), SOUK_OK);
    assert_int_equal(search_build_index(fx->store, fx->dir, NULL, NULL, err, sizeof err), SOUK_OK);
    snprintf(fx->url, sizeof fx->url, "http://127.0.0.1:%d/hooks/souk", s_fake.port);
    json_decref(s_fake_call("POST", "/_fake/reset", "{}"));
    *state = fx;
    return 0;
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

static void s_kill(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGKILL);
        s_wait_exit(*pid, 5000);
    }
    *pid = 0;
}

static void s_dump_log(fx_t *fx, const char *name)
{
    char path[96], line[1024];
    snprintf(path, sizeof path, "%s/%s.log", fx->dir, name);
    FILE *f = fopen(path, "r");
    fprintf(stderr, "---- %s ----\n", path);
    while (f && fgets(line, sizeof line, f))
        fputs(line, stderr);
    if (f)
        fclose(f);
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    s_kill(&fx->tool_pid);
    s_kill(&fx->sender_pid);
    store_close(&fx->store);
    zsock_destroy(&fx->tool);
    zsock_destroy(&fx->pull);
    zsock_destroy(&fx->control);
    if (getenv("SOUK_TEST_KEEP"))
        fprintf(stderr, "kept %s\n", fx->dir);
    else
        nftw(fx->dir, s_rm, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

/* READY from the actor `name` within timeout_ms (other control traffic dropped). */
static bool s_wait_ready(fx_t *fx, const char *name, int timeout_ms)
{
    int64_t end = zclock_mono() + timeout_ms;
    zpoller_t *p = zpoller_new(fx->control, NULL);
    bool ready = false;
    for (int64_t left = timeout_ms; left > 0 && !ready; left = end - zclock_mono()) {
        if (!zpoller_wait(p, (int)left))
            break;
        unsigned char id[256];
        size_t idlen = sizeof id;
        souk_msg_t m;
        char err[128];
        if (souk_msg_recv(fx->control, id, &idlen, &m, 0, err, sizeof err) != SOUK_OK)
            continue;
        ready = m.type == SOUK_MSG_READY && strcmp(m.ready.name, name) == 0;
        souk_msg_clear(&m);
    }
    zpoller_destroy(&p);
    return ready;
}

/* An "outbound" EVENT (the console sender's) whose detail contains want. */
static bool s_wait_outbound(fx_t *fx, const char *want, int timeout_ms)
{
    int64_t end = zclock_mono() + timeout_ms;
    zpoller_t *p = zpoller_new(fx->control, NULL);
    bool found = false;
    for (int64_t left = timeout_ms; left > 0 && !found; left = end - zclock_mono()) {
        if (!zpoller_wait(p, (int)left))
            break;
        unsigned char id[256];
        size_t idlen = sizeof id;
        souk_msg_t m;
        char err[128];
        if (souk_msg_recv(fx->control, id, &idlen, &m, 0, err, sizeof err) != SOUK_OK)
            continue;
        found = m.type == SOUK_MSG_EVENT && strcmp(m.event.kind, "outbound") == 0
             && strstr(m.event.detail, want);
        souk_msg_clear(&m);
    }
    zpoller_destroy(&p);
    return found;
}

typedef struct {
    bool twilio;        /* sender: Twilio mode (API base: the fake), else console */
    bool merchant;      /* tool: SOUK_MERCHANT_WHATSAPP and _WEBHOOK set */
} opts_t;

static void s_env(fx_t *fx, const opts_t *o)
{
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", s_fake.port);
    setenv("SOUK_DATA", fx->dir, 1);
    setenv("SOUK_HEARTBEAT_MS", "200", 1);
    setenv("SOUK_LOG_LEVEL", "debug", 1);
    setenv("SOUK_PUBLIC_URL", "https://shop.example.org", 1);
    setenv("TWILIO_AUTH_TOKEN", "test-auth-token-5f3a", 1);
    setenv("TWILIO_WHATSAPP_FROM", "whatsapp:+14155238886", 1);
    setenv("TWILIO_API_BASE", base, 1);
    unsetenv("TWILIO_TEMPLATE_SID");
    if (o && o->twilio)
        setenv("TWILIO_ACCOUNT_SID", "ACf00df00df00df00df00df00df00df00d", 1);
    else
        unsetenv("TWILIO_ACCOUNT_SID");
    if (o && o->merchant) {
        setenv("SOUK_MERCHANT_WHATSAPP", MERCHANT, 1);
        setenv("SOUK_MERCHANT_WEBHOOK", fx->url, 1);
    } else {
        unsetenv("SOUK_MERCHANT_WHATSAPP");
        unsetenv("SOUK_MERCHANT_WEBHOOK");
    }
}

static pid_t s_spawn(fx_t *fx, char *const argv[], const char *name)
{
    char log[96];
    snprintf(log, sizeof log, "%s/%s.log", fx->dir, name);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    const char *bin = getenv("SOUK_BIN");
    pid_t pid = 0;
    assert_int_equal(posix_spawn(&pid, bin ? bin : "build/souk", &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    if (!s_wait_ready(fx, name, 10000)) {
        s_dump_log(fx, name);
        fail_msg("%s did not say READY", name);
    }
    return pid;
}

/* The tool actor, a DEALER to it, and (without a sender) a PULL for hints. */
static void s_start_tool(fx_t *fx, const opts_t *o, bool with_sender)
{
    s_env(fx, o);
    char ep[256];
    if (!with_sender) {
        souk_endpoint(ep, sizeof ep, fx->run, SOUK_EP_SENDER, 0);
        fx->pull = zsock_new(ZMQ_PULL);
        zsock_set_linger(fx->pull, 0);
        assert_true(zsock_bind(fx->pull, "%s", ep) >= 0);
    }
    char *argv[] = { "souk", "actor", "tool", "tool-0", "0", NULL };
    fx->tool_pid = s_spawn(fx, argv, "tool-0");
    souk_endpoint(ep, sizeof ep, fx->run, SOUK_EP_TOOL, 0);
    fx->tool = zsock_new(ZMQ_DEALER);
    zsock_set_linger(fx->tool, 0);
    assert_true(zsock_connect(fx->tool, "%s", ep) >= 0);
}

static void s_start_sender(fx_t *fx, const opts_t *o)
{
    s_env(fx, o);
    char *argv[] = { "souk", "actor", "sender", "sender", NULL };
    fx->sender_pid = s_spawn(fx, argv, "sender");
}

/* ---- calls --------------------------------------------------------------------------- */

static int64_t s_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_send_call(fx_t *fx, const char *call_id, const char *waid, const char *tool,
                        const char *args, const char *key, uint64_t deadline_ms)
{
    souk_msg_t m = { .type = SOUK_MSG_TOOL_CALL };
    m.tool_call = (souk_tool_call_t){ .call_id = (char *)call_id, .waid = (char *)waid,
                                      .tool = (char *)tool, .args = (char *)args,
                                      .idem_key = (char *)key, .deadline_ms = deadline_ms };
    assert_int_equal(souk_msg_send(zsock_resolve(fx->tool), NULL, 0, &m, 0), SOUK_OK);
}

/* The next TOOL_RESULT (caller clears). */
static void s_recv_result(fx_t *fx, souk_msg_t *out)
{
    zpoller_t *p = zpoller_new(fx->tool, NULL);
    void *ready = zpoller_wait(p, WAIT_MS);
    zpoller_destroy(&p);
    if (!ready) {
        s_dump_log(fx, "tool-0");
        fail_msg("no TOOL_RESULT within %d ms", WAIT_MS);
    }
    char err[128];
    assert_int_equal(souk_msg_recv(fx->tool, NULL, NULL, out, 0, err, sizeof err), SOUK_OK);
    assert_int_equal(out->type, SOUK_MSG_TOOL_RESULT);
}

static void s_call(fx_t *fx, const char *call_id, const char *waid, const char *tool, const char *args,
                   const char *key, uint64_t deadline_ms, souk_msg_t *out)
{
    s_send_call(fx, call_id, waid, tool, args, key, deadline_ms);
    s_recv_result(fx, out);
    assert_string_equal(out->tool_result.call_id, call_id);
}

/* The error code of a failed result: result is {"code", "retryable"}. */
static const char *s_code(const souk_msg_t *r, char *buf, size_t len)
{
    json_t *doc = json_loads(r->tool_result.result, 0, NULL);
    snprintf(buf, len, "%s", json_string_value(json_object_get(doc, "code")) ?: "?");
    json_decref(doc);
    return buf;
}

static char *s_recv_hint(fx_t *fx)
{
    zpoller_t *p = zpoller_new(fx->pull, NULL);
    void *ready = zpoller_wait(p, WAIT_MS);
    zpoller_destroy(&p);
    if (!ready)
        return NULL;
    souk_msg_t m;
    char err[128];
    assert_int_equal(souk_msg_recv(fx->pull, NULL, NULL, &m, 0, err, sizeof err), SOUK_OK);
    assert_int_equal(m.type, SOUK_MSG_SEND_HINT);
    char *key = strdup(m.send_hint.outbox_key);
    souk_msg_clear(&m);
    return key;
}

static int s_order_count_cb(const store_order_t *o, void *arg)
{
    (void)o;
    (*(int *)arg)++;
    return 0;
}

static int s_orders(fx_t *fx)
{
    int n = 0;
    assert_int_equal(store_order_list_all(fx->store, s_order_count_cb, &n), SOUK_OK);
    return n;
}

/* Waits for outbox row key to reach state; returns the row (caller clears). */
static void s_wait_row(fx_t *fx, const char *key, store_outbox_state_t state, store_outbox_t *row)
{
    int64_t end = zclock_mono() + WAIT_MS;
    for (;;) {
        memset(row, 0, sizeof *row);
        int rc = store_outbox_get(fx->store, key, row);
        if (rc == SOUK_OK && row->state == state)
            return;
        if (zclock_mono() >= end) {
            s_dump_log(fx, "sender");
            fail_msg("row %s: %s, state %s, want %s", key, souk_errname(rc),
                     rc == SOUK_OK ? store_outbox_state_name(row->state) : "-",
                     store_outbox_state_name(state));
        }
        store_outbox_clear(row);
        zclock_sleep(20);
    }
}

/* ---- the tool actor ---------------------------------------------------------------------- */

static void test_tool_call_round_trip(void **state)
{
    fx_t *fx = *state;
    opts_t o = { .merchant = true };
    s_start_tool(fx, &o, false);
    souk_msg_t r;
    s_call(fx, "c-1", ANA, "search_products", "{\"query\":\"mascara\",\"limit\":3}", "", 0, &r);
    assert_true(r.tool_result.ok);
    assert_string_equal(r.tool_result.error, "");
    json_t *hits = json_loads(r.tool_result.result, 0, NULL);
    assert_true(json_array_size(hits) >= 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(hits, 0), "product_id")), "BEA-MASC");
    json_decref(hits);
    souk_msg_clear(&r);

    const char *args = "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":2}]}";
    s_call(fx, "c-2", ANA, "place_order", args, "SM1#1", (uint64_t)s_wall() + 5000, &r);
    assert_true(r.tool_result.ok);
    json_t *order = json_loads(r.tool_result.result, 0, NULL);
    const char *id = json_string_value(json_object_get(order, "order_id"));
    assert_non_null(strstr(r.tool_result.result, "\"total\":19.98"));
    /* both notifications hinted to the sender */
    char want[64];
    char *hint = s_recv_hint(fx);
    snprintf(want, sizeof want, "m:%s", id);
    assert_non_null(hint);
    assert_string_equal(hint, want);
    free(hint);
    hint = s_recv_hint(fx);
    snprintf(want, sizeof want, "w:%s", id);
    assert_non_null(hint);
    assert_string_equal(hint, want);
    free(hint);
    /* the session retries (another call id, same key): the first result */
    souk_msg_t again;
    s_call(fx, "c-3", ANA, "place_order", args, "SM1#1", 0, &again);
    assert_true(again.tool_result.ok);
    assert_string_equal(again.tool_result.result, r.tool_result.result);
    assert_int_equal(s_orders(fx), 1);
    store_product_t p = { 0 };
    assert_int_equal(store_product_get(fx->store, "BEA-MASC", &p), SOUK_OK);
    assert_int_equal(p.stock, 8);
    store_product_clear(&p);
    json_decref(order);
    souk_msg_clear(&r);
    souk_msg_clear(&again);
}

static void test_tool_call_past_deadline_not_run(void **state)
{
    fx_t *fx = *state;
    s_start_tool(fx, NULL, false);
    souk_msg_t r;
    char code[32];
    s_call(fx, "late-1", ANA, "place_order", "{\"items\":[{\"product_id\":\"WAT-LAST\",\"quantity\":1}]}",
           "SMlate#1", (uint64_t)s_wall() - 1000, &r);
    assert_false(r.tool_result.ok);
    assert_non_null(strstr(r.tool_result.error, "deadline passed"));
    assert_string_equal(s_code(&r, code, sizeof code), "ETIMEDOUT");
    souk_msg_clear(&r);
    assert_int_equal(s_orders(fx), 0);
    store_product_t p = { 0 };
    assert_int_equal(store_product_get(fx->store, "WAT-LAST", &p), SOUK_OK);
    assert_int_equal(p.stock, 1);
    store_product_clear(&p);
    /* within its deadline the same call runs */
    s_call(fx, "late-2", ANA, "place_order", "{\"items\":[{\"product_id\":\"WAT-LAST\",\"quantity\":1}]}",
           "SMlate#1", (uint64_t)s_wall() + 5000, &r);
    assert_true(r.tool_result.ok);
    souk_msg_clear(&r);
    assert_int_equal(s_orders(fx), 1);
}

static void test_tool_bad_input_never_crashes(void **state)
{
    fx_t *fx = *state;
    s_start_tool(fx, NULL, false);
    static const char *const cases[][5] = {
        /* call id, waid, tool, args, code */
        { "b-1", ANA, "search_products", "{oops", "EINVAL" },
        { "b-2", ANA, "search_products", "{\"query\":\"x\",\"user\":\"1\"}", "EINVAL" },
        { "b-3", "", "list_orders", "{}", "EFORBIDDEN" },
        { "b-4", "not-digits", "get_order", "{\"order_id\":\"SK-AAAAA\"}", "EFORBIDDEN" },
        { "b-5", ANA, "rm_rf", "{}", "EINVAL" },
        { "b-6", ANA, "get_order", "{\"order_id\":\"SK-AAAAA\"}", "ENOTFOUND" },
        { "b-7", ANA, "place_order", "{\"items\":[{\"product_id\":\"BEA-MASC\",\"quantity\":1}]}", "EINVAL" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        souk_msg_t r;
        char code[32];
        s_call(fx, cases[i][0], cases[i][1], cases[i][2], cases[i][3], "", 0, &r);
        assert_false(r.tool_result.ok);
        assert_true(strlen(r.tool_result.error) > 10);
        assert_string_equal(s_code(&r, code, sizeof code), cases[i][4]);
        souk_msg_clear(&r);
    }
    /* frames that are not a TOOL_CALL are dropped, and the actor goes on */
    assert_int_equal(zsock_send(fx->tool, "s", "\xc1 not msgpack"), 0);
    souk_msg_t hint = { .type = SOUK_MSG_SEND_HINT };
    hint.send_hint.outbox_key = "x";
    assert_int_equal(souk_msg_send(zsock_resolve(fx->tool), NULL, 0, &hint, 0), SOUK_OK);
    /* many calls at once: answered one by one, in order */
    char ids[40][16];
    for (int i = 0; i < 40; i++) {
        snprintf(ids[i], sizeof ids[i], "m-%d", i);
        s_send_call(fx, ids[i], ANA, i % 2 ? "list_orders" : "get_product",
                    i % 2 ? "{}" : "{\"product_id\":\"SHO-RUN\"}", "", 0);
    }
    for (int i = 0; i < 40; i++) {
        souk_msg_t r;
        s_recv_result(fx, &r);
        assert_string_equal(r.tool_result.call_id, ids[i]);
        assert_true(r.tool_result.ok);
        souk_msg_clear(&r);
    }
    assert_true(kill(fx->tool_pid, 0) == 0);
    /* and it stops cleanly */
    kill(fx->tool_pid, SIGTERM);
    int status = s_wait_exit(fx->tool_pid, 5000);
    fx->tool_pid = 0;
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- the sender's webhook delivery ------------------------------------------------------ */

static void s_put_webhook(fx_t *fx, const char *key, const char *url, const char *body)
{
    int64_t now = s_wall();
    store_outbox_t o = { .key = (char *)key, .to_addr = (char *)url, .body = (char *)body,
                         .kind = STORE_KIND_NOTIFY, .state = STORE_OUTBOX_QUEUED,
                         .next_attempt_ms = now, .created_ms = now };
    assert_int_equal(store_outbox_put(fx->store, &o, NULL), SOUK_OK);
    /* hint like a tool would */
    char ep[256];
    souk_endpoint(ep, sizeof ep, fx->run, SOUK_EP_SENDER, 0);
    zsock_t *push = zsock_new(ZMQ_PUSH);
    zsock_set_linger(push, 500);
    assert_true(zsock_connect(push, "%s", ep) >= 0);
    souk_msg_t m = { .type = SOUK_MSG_SEND_HINT };
    m.send_hint.outbox_key = (char *)key;
    assert_int_equal(souk_msg_send(zsock_resolve(push), NULL, 0, &m, 0), SOUK_OK);
    zsock_destroy(&push);
}

#define DOC "{\"id\":\"w:SK-TEST1\",\"event\":\"order.created\",\"order\":{\"order_id\":\"SK-TEST1\",\"total\":19.98}}"

static void test_webhook_posted_as_json(void **state)
{
    fx_t *fx = *state;
    s_start_sender(fx, NULL); /* console mode: webhooks still go out */
    s_put_webhook(fx, "w:SK-TEST1", fx->url, DOC);
    store_outbox_t row;
    s_wait_row(fx, "w:SK-TEST1", STORE_OUTBOX_SENT, &row);
    assert_int_equal(row.attempts, 1);
    store_outbox_clear(&row);
    json_t *reqs = s_fake_requests(1, WAIT_MS);
    assert_int_equal(json_array_size(reqs), 1);
    json_t *q = json_array_get(reqs, 0);
    assert_string_equal(json_string_value(json_object_get(q, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(q, "path")), "/hooks/souk");
    assert_string_equal(json_string_value(json_object_get(q, "body")), DOC);
    assert_string_equal(s_header(q, "content-type"), "application/json");
    assert_string_equal(s_header(q, "idempotency-key"), "w:SK-TEST1");
    assert_null(s_header(q, "authorization"));
    json_decref(reqs);
}

static void test_webhook_5xx_retried_then_sent(void **state)
{
    fx_t *fx = *state;
    json_decref(s_fake_call("POST", "/_fake/script", "{\"statuses\":[503,500]}"));
    s_start_sender(fx, NULL);
    s_put_webhook(fx, "w:SK-TEST2", fx->url, DOC);
    store_outbox_t row;
    s_wait_row(fx, "w:SK-TEST2", STORE_OUTBOX_SENT, &row);
    assert_int_equal(row.attempts, 3);
    store_outbox_clear(&row);
    json_t *reqs = s_fake_requests(3, WAIT_MS);
    assert_int_equal(json_array_size(reqs), 3);
    /* backoff between attempts: 1 s, then 2 s (plus jitter) */
    double t0 = json_real_value(json_object_get(json_array_get(reqs, 0), "ts"));
    double t1 = json_real_value(json_object_get(json_array_get(reqs, 1), "ts"));
    double t2 = json_real_value(json_object_get(json_array_get(reqs, 2), "ts"));
    assert_true(t1 - t0 >= 0.95 && t2 - t1 >= 1.95);
    json_decref(reqs);
}

static void test_webhook_4xx_fails(void **state)
{
    fx_t *fx = *state;
    json_decref(s_fake_call("POST", "/_fake/script", "{\"statuses\":[404]}"));
    s_start_sender(fx, NULL);
    s_put_webhook(fx, "w:SK-TEST3", fx->url, DOC);
    store_outbox_t row;
    s_wait_row(fx, "w:SK-TEST3", STORE_OUTBOX_FAILED, &row);
    assert_int_equal(row.error_code, 404);
    assert_int_equal(row.attempts, 1);
    store_outbox_clear(&row);
    zclock_sleep(1500); /* no retry follows */
    json_t *reqs = s_fake_requests(1, 0);
    assert_int_equal(json_array_size(reqs), 1);
    json_decref(reqs);
}

static void test_webhook_network_error_retried(void **state)
{
    fx_t *fx = *state;
    s_start_sender(fx, NULL);
    s_put_webhook(fx, "w:SK-TEST4", "http://127.0.0.1:9/nobody-listens", DOC);
    int64_t end = zclock_mono() + WAIT_MS;
    store_outbox_t row = { 0 };
    while (zclock_mono() < end) {
        store_outbox_clear(&row);
        assert_int_equal(store_outbox_get(fx->store, "w:SK-TEST4", &row), SOUK_OK);
        if (row.state == STORE_OUTBOX_QUEUED && row.attempts >= 1)
            break;
        zclock_sleep(20);
    }
    assert_int_equal(row.state, STORE_OUTBOX_QUEUED);
    assert_true(row.attempts >= 1);
    assert_non_null(row.error_reason);
    assert_non_null(strstr(row.error_reason, "network"));
    assert_true(row.next_attempt_ms > s_wall());
    store_outbox_clear(&row);
}

static void test_webhook_never_through_twilio(void **state)
{
    fx_t *fx = *state;
    opts_t o = { .twilio = true }; /* Twilio's API base is the fake too: it would see a Twilio call */
    s_start_sender(fx, &o);
    s_put_webhook(fx, "w:SK-TEST5", fx->url, DOC);
    store_outbox_t row;
    s_wait_row(fx, "w:SK-TEST5", STORE_OUTBOX_SENT, &row);
    store_outbox_clear(&row);
    zclock_sleep(300);
    json_t *reqs = s_fake_requests(1, 0);
    assert_int_equal(json_array_size(reqs), 1);
    json_t *q = json_array_get(reqs, 0);
    assert_string_equal(json_string_value(json_object_get(q, "path")), "/hooks/souk");
    assert_null(s_header(q, "authorization"));
    json_decref(reqs);
}

/* The whole way: a session's place_order through the tool actor reaches the
 * merchant's webhook as JSON and the merchant's WhatsApp through the sender. */
static void test_order_reaches_the_merchant(void **state)
{
    fx_t *fx = *state;
    opts_t o = { .merchant = true };
    s_start_sender(fx, &o);
    s_start_tool(fx, &o, true);
    souk_msg_t r;
    s_call(fx, "e-1", ANA, "place_order", "{\"items\":[{\"product_id\":\"SHO-RUN\",\"quantity\":2}]}",
           "SMe2e#1", (uint64_t)s_wall() + 5000, &r);
    assert_true(r.tool_result.ok);
    json_t *order = json_loads(r.tool_result.result, 0, NULL);
    const char *id = json_string_value(json_object_get(order, "order_id"));
    char want[128];
    snprintf(want, sizeof want, "New order %s from +%s: 2", id, ANA);
    assert_true(s_wait_outbound(fx, want, WAIT_MS));
    json_t *reqs = s_fake_requests(1, WAIT_MS);
    assert_int_equal(json_array_size(reqs), 1);
    json_t *doc = json_loads(json_string_value(json_object_get(json_array_get(reqs, 0), "body")), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "event")), "order.created");
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "order"), "order_id")), id);
    assert_true(json_real_value(json_object_get(json_object_get(doc, "order"), "total")) == 119.98);
    json_decref(doc);
    json_decref(reqs);
    char key[64];
    store_outbox_t row;
    snprintf(key, sizeof key, "w:%s", id);
    s_wait_row(fx, key, STORE_OUTBOX_SENT, &row);
    store_outbox_clear(&row);
    snprintf(key, sizeof key, "m:%s", id);
    s_wait_row(fx, key, STORE_OUTBOX_SENT, &row);
    assert_string_equal(row.to_addr, "whatsapp:" MERCHANT);
    store_outbox_clear(&row);
    json_decref(order);
    souk_msg_clear(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_tool_call_round_trip),
        T(test_tool_call_past_deadline_not_run),
        T(test_tool_bad_input_never_crashes),
        T(test_webhook_posted_as_json),
        T(test_webhook_5xx_retried_then_sent),
        T(test_webhook_4xx_fails),
        T(test_webhook_network_error_retried),
        T(test_webhook_never_through_twilio),
        T(test_order_reaches_the_merchant),
#undef T
    };
    return cmocka_run_group_tests(tests, s_fake_start, s_fake_stop);
}
