/* The session actor, as a process: each test runs the real binary
 * (`$SOUK_BIN actor session s-<waid> <waid>`) in its own data folder
 * against sockets the test owns — a ROUTER on the control endpoint playing
 * the supervisor, a ROUTER on the sessions endpoint playing the gateway, a
 * PULL on the sender endpoint — and checks what it says and what it
 * stored. Every wait is a poll with a time-out. */
#include "souk/endpoints.h"
#include "souk/error.h"
#include "souk/proto.h"
#include "souk/store.h"

#include <czmq.h>
#include <ftw.h>
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
#include <unistd.h>

#include <cmocka.h>

extern char **environ;

#define WAID "15551230001"
#define OTHER_WAID "15559990000"
#define NAME "s-" WAID
#define TOOLS 2
#define WAIT_MS 3000
#define QUIET_MS 300

typedef struct {
    char dir[32];
    char run[64];
    zsock_t *control;   /* ROUTER: the supervisor */
    zsock_t *gateway;   /* ROUTER: the gateway */
    zsock_t *sender;    /* PULL: the sender */
    zsock_t *tools[TOOLS];
    pid_t pid;
    store_t *store;
} fx_t;

/* ---- process and sockets ------------------------------------------------ */

static const char *s_bin(void)
{
    const char *bin = getenv("SOUK_BIN");
    return bin ? bin : "build/souk";
}

static zsock_t *s_bind(fx_t *fx, int type, souk_endpoint_t which, int index)
{
    char ep[256];
    souk_endpoint(ep, sizeof ep, fx->run, which, index);
    zsock_t *s = zsock_new(type);
    assert_non_null(s);
    zsock_set_linger(s, 0);
    if (type == ZMQ_ROUTER) {
        zsock_set_router_mandatory(s, 1);
        zsock_set_router_handover(s, 1);
    }
    assert_true(zsock_bind(s, "%s", ep) >= 0);
    return s;
}

static int s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/sk-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->run, sizeof fx->run, "%s/run", fx->dir);
    assert_int_equal(mkdir(fx->run, 0750), 0);
    zsys_handler_set(NULL);
    fx->control = s_bind(fx, ZMQ_ROUTER, SOUK_EP_CONTROL, 0);
    fx->gateway = s_bind(fx, ZMQ_ROUTER, SOUK_EP_SESSIONS, 0);
    fx->sender = s_bind(fx, ZMQ_PULL, SOUK_EP_SENDER, 0);
    for (int i = 0; i < TOOLS; i++)
        fx->tools[i] = s_bind(fx, ZMQ_ROUTER, SOUK_EP_TOOL, i);
    setenv("SOUK_DATA", fx->dir, 1);
    setenv("TWILIO_AUTH_TOKEN", "0123456789abcdef0123456789abcdef", 1);
    setenv("SOUK_TOOLS", "2", 1);
    setenv("SOUK_AGENT", "echo", 1); /* the session's mechanics, not the shop's answers */
    setenv("SOUK_HEARTBEAT_MS", "100", 1);
    setenv("SOUK_REPLY_BUDGET_MS", "3000", 1);
    setenv("SOUK_DEBOUNCE_MS", "0", 1);
    setenv("SOUK_SESSION_IDLE_S", "300", 1);
    *state = fx;
    return 0;
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

/* Waits for the child to exit (a pidfd becomes readable: no polling) and
 * reaps it. Returns the wait status, or -1 on time-out. */
static int s_wait_exit(fx_t *fx, int timeout_ms)
{
    int fd = (int)syscall(SYS_pidfd_open, fx->pid, 0);
    assert_true(fd >= 0);
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int ready = poll(&p, 1, timeout_ms);
    close(fd);
    if (ready != 1)
        return -1;
    int status;
    assert_int_equal(waitpid(fx->pid, &status, 0), fx->pid);
    fx->pid = 0;
    return status;
}

static void s_kill(fx_t *fx)
{
    if (fx->pid > 0) {
        kill(fx->pid, SIGKILL);
        assert_true(s_wait_exit(fx, 5000) != -1);
    }
}

static int s_teardown(void **state)
{
    fx_t *fx = *state;
    s_kill(fx);
    store_close(&fx->store);
    zsock_destroy(&fx->control);
    zsock_destroy(&fx->gateway);
    zsock_destroy(&fx->sender);
    for (int i = 0; i < TOOLS; i++)
        zsock_destroy(&fx->tools[i]);
    nftw(fx->dir, s_rm, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static pid_t s_spawn_args(const char *arg)
{
    char *argv[] = { (char *)s_bin(), "actor", "session", NAME, (char *)arg, NULL };
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, argv[0], NULL, NULL, argv, environ), 0);
    return pid;
}

/* ---- messages ------------------------------------------------------------ */

/* Receives one message within timeout_ms: SOUK_OK, or SOUK_ETIMEDOUT. */
static int s_recv(zsock_t *sock, bool router, int timeout_ms, souk_msg_t *out)
{
    zmq_pollitem_t item = { .socket = zsock_resolve(sock), .events = ZMQ_POLLIN };
    if (zmq_poll(&item, 1, timeout_ms) != 1)
        return SOUK_ETIMEDOUT;
    unsigned char id[256];
    size_t idlen = sizeof id;
    char err[128];
    int rc = souk_msg_recv(sock, router ? id : NULL, router ? &idlen : NULL, out, 0, err,
                           sizeof err);
    if (rc != SOUK_OK)
        fail_msg("bad message from the session: %s (%s)", souk_errname(rc), err);
    return rc;
}

/* The next message of `type` on the gateway's socket; SESSION_HELLO is
 * skipped unless it is the one expected (the session says it again after
 * a reconnect). Anything else fails the test. */
static void s_gw_expect(fx_t *fx, souk_msg_type_t type, int timeout_ms, souk_msg_t *out)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    for (;;) {
        int left = (int)(deadline - zclock_mono());
        if (left < 0 || s_recv(fx->gateway, true, left, out) != SOUK_OK)
            fail_msg("no %s from the session within %d ms", souk_msg_name(type), timeout_ms);
        if (out->type == type)
            return;
        if (out->type != SOUK_MSG_SESSION_HELLO)
            fail_msg("expected %s, got %s", souk_msg_name(type), souk_msg_name(out->type));
        souk_msg_clear(out);
    }
}

/* Nothing but SESSION_HELLO for `ms`. */
static void s_gw_quiet(fx_t *fx, int ms)
{
    int64_t deadline = zclock_mono() + ms;
    souk_msg_t m;
    int left;
    while ((left = (int)(deadline - zclock_mono())) > 0) {
        if (s_recv(fx->gateway, true, left, &m) != SOUK_OK)
            return;
        if (m.type != SOUK_MSG_SESSION_HELLO)
            fail_msg("unexpected %s from the session", souk_msg_name(m.type));
        souk_msg_clear(&m);
    }
}

static void s_ctl_expect(fx_t *fx, souk_msg_type_t type, int timeout_ms, souk_msg_t *out)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    for (;;) {
        int left = (int)(deadline - zclock_mono());
        if (left < 0 || s_recv(fx->control, true, left, out) != SOUK_OK)
            fail_msg("no %s on control within %d ms", souk_msg_name(type), timeout_ms);
        if (out->type == type)
            return;
        souk_msg_clear(out);
    }
}

static void s_gw_send(fx_t *fx, souk_msg_t *m)
{
    assert_int_equal(souk_msg_send(fx->gateway, WAID, strlen(WAID), m, 0), SOUK_OK);
}

static void s_inbound_full(fx_t *fx, const char *waid, const char *sid, const char *body,
                           uint64_t num_media, const char *params)
{
    char from[64], rid[64];
    snprintf(from, sizeof from, "whatsapp:+%s", waid);
    snprintf(rid, sizeof rid, "req-%s", sid);
    souk_msg_t m = { .type = SOUK_MSG_INBOUND };
    m.inbound.request_id = rid;
    m.inbound.msg_sid = (char *)sid;
    m.inbound.waid = (char *)waid;
    m.inbound.from = from;
    m.inbound.profile = "Ana";
    m.inbound.body = (char *)body;
    m.inbound.num_media = num_media;
    m.inbound.params = (char *)(params ? params : "{}");
    m.inbound.received_ms = (uint64_t)zclock_time();
    s_gw_send(fx, &m);
}

static void s_inbound(fx_t *fx, const char *sid, const char *body)
{
    s_inbound_full(fx, WAID, sid, body, 0, NULL);
}

static void s_verdict(fx_t *fx, const char *sid, bool inline_)
{
    char key[160];
    snprintf(key, sizeof key, "r:%s", sid);
    souk_msg_t m = { .type = SOUK_MSG_REPLY_VERDICT };
    m.reply_verdict.msg_sid = (char *)sid;
    m.reply_verdict.outbox_key = key;
    m.reply_verdict.inline_ = inline_;
    s_gw_send(fx, &m);
    if (inline_) { /* the session confirms it recorded the verdict */
        souk_msg_t ack;
        s_gw_expect(fx, SOUK_MSG_INLINE_ACK, WAIT_MS, &ack);
        assert_string_equal(ack.inline_ack.msg_sid, sid);
        assert_true(ack.inline_ack.ok);
        souk_msg_clear(&ack);
    }
}

static void s_idle_ok(fx_t *fx, bool ok)
{
    souk_msg_t m = { .type = SOUK_MSG_IDLE_OK };
    m.idle_ok.waid = WAID;
    m.idle_ok.ok = ok;
    s_gw_send(fx, &m);
}

static void s_expect_accepted(fx_t *fx, const char *sid, bool duplicate)
{
    souk_msg_t m;
    s_gw_expect(fx, SOUK_MSG_ACCEPTED, WAIT_MS, &m);
    assert_string_equal(m.accepted.msg_sid, sid);
    assert_int_equal(m.accepted.duplicate, duplicate);
    souk_msg_clear(&m);
}

/* The offer for sid; the caller clears *m. */
static void s_expect_offer(fx_t *fx, const char *sid, int timeout_ms, souk_msg_t *m)
{
    char key[160];
    snprintf(key, sizeof key, "r:%s", sid);
    s_gw_expect(fx, SOUK_MSG_REPLY_OFFER, timeout_ms, m);
    assert_string_equal(m->reply_offer.msg_sid, sid);
    assert_string_equal(m->reply_offer.outbox_key, key);
    assert_true(strlen(m->reply_offer.body) > 0);
}

static void s_expect_no_reply(fx_t *fx, const char *sid)
{
    souk_msg_t m;
    s_gw_expect(fx, SOUK_MSG_REPLY_OFFER, WAIT_MS, &m);
    assert_string_equal(m.reply_offer.msg_sid, sid);
    assert_string_equal(m.reply_offer.outbox_key, "");
    assert_string_equal(m.reply_offer.body, "");
    souk_msg_clear(&m);
}

/* Starts the session and waits until it has said READY and hello. */
static void s_start(fx_t *fx)
{
    fx->pid = s_spawn_args(WAID);
    souk_msg_t m;
    s_ctl_expect(fx, SOUK_MSG_READY, WAIT_MS, &m);
    assert_string_equal(m.ready.name, NAME);
    souk_msg_clear(&m);
    s_gw_expect(fx, SOUK_MSG_SESSION_HELLO, WAIT_MS, &m);
    assert_string_equal(m.session_hello.waid, WAID);
    assert_int_equal(m.session_hello.pid, (uint64_t)fx->pid);
    souk_msg_clear(&m);
    if (!fx->store) {
        char err[256];
        assert_int_equal(store_open("sqlite", fx->dir, NULL, &fx->store, err, sizeof err), SOUK_OK);
    }
}

/* Every message before this is handled: messages are handled in order, and
 * a repeat of a finished message is answered at once as a duplicate. */
static void s_barrier(fx_t *fx, const char *done_sid)
{
    s_inbound(fx, done_sid, "again");
    souk_msg_t m;
    s_gw_expect(fx, SOUK_MSG_ACCEPTED, WAIT_MS, &m);
    assert_string_equal(m.accepted.msg_sid, done_sid);
    bool duplicate = m.accepted.duplicate;
    souk_msg_clear(&m);
    if (!duplicate) { /* an inline answer is offered again (it never arrived) */
        s_expect_offer(fx, done_sid, WAIT_MS, &m);
        souk_msg_clear(&m);
        s_verdict(fx, done_sid, true);
    }
}

static int s_exit_code(fx_t *fx, int timeout_ms)
{
    int status = s_wait_exit(fx, timeout_ms);
    if (status == -1)
        fail_msg("the session did not exit within %d ms", timeout_ms);
    if (!WIFEXITED(status))
        fail_msg("the session died of signal %d", WTERMSIG(status));
    return WEXITSTATUS(status);
}

/* ---- store checks -------------------------------------------------------- */

typedef struct {
    int in, out;
    const char *sid;
    int sid_in, sid_out;
} hist_count_t;

static int s_count_history(const store_history_t *h, void *arg)
{
    hist_count_t *c = arg;
    bool match = h->msg_sid && strcmp(h->msg_sid, c->sid) == 0;
    if (h->dir == STORE_DIR_IN) {
        c->in++;
        c->sid_in += match;
    } else {
        c->out++;
        c->sid_out += match;
    }
    return 0;
}

static hist_count_t s_history(fx_t *fx, const char *sid)
{
    hist_count_t c = { .sid = sid };
    assert_int_equal(store_history_recent(fx->store, WAID, 200, s_count_history, &c), SOUK_OK);
    return c;
}

static store_outbox_state_t s_outbox_state(fx_t *fx, const char *sid)
{
    char key[160];
    snprintf(key, sizeof key, "r:%s", sid);
    store_outbox_t o = { 0 };
    assert_int_equal(store_outbox_get(fx->store, key, &o), SOUK_OK);
    store_outbox_state_t st = o.state;
    store_outbox_clear(&o);
    return st;
}

static store_inbound_state_t s_inbound_state(fx_t *fx, const char *sid, const char *turn_sid)
{
    store_inbound_t in = { 0 };
    assert_int_equal(store_inbound_get(fx->store, sid, &in), SOUK_OK);
    if (turn_sid) {
        assert_non_null(in.turn_sid);
        assert_string_equal(in.turn_sid, turn_sid);
    }
    store_inbound_state_t st = in.state;
    store_inbound_clear(&in);
    return st;
}

/* ---- tests --------------------------------------------------------------- */

static void test_refuses_bad_waid(void **state)
{
    fx_t *fx = *state;
    fx->pid = s_spawn_args("12ab");
    assert_int_equal(s_exit_code(fx, WAIT_MS), 78);
    char *argv[] = { (char *)s_bin(), "actor", "session", NAME, NULL };
    assert_int_equal(posix_spawn(&fx->pid, argv[0], NULL, NULL, argv, environ), 0);
    assert_int_equal(s_exit_code(fx, WAIT_MS), 78);
}

static void test_persists_before_accepted(void **state)
{
    fx_t *fx = *state;
    setenv("SOUK_DEBOUNCE_MS", "5000", 1); /* the turn waits: the row is still "received" */
    s_start(fx);
    const char *params = "{\"From\":\"whatsapp:+" WAID "\",\"ProfileName\":\"Ana\","
                         "\"MediaUrl0\":\"https://media.example/img1.jpg\","
                         "\"MediaContentType0\":\"image/jpeg\"}";
    s_inbound_full(fx, WAID, "SM001", "hello there", 1, params);
    s_expect_accepted(fx, "SM001", false);

    store_inbound_t in = { 0 };
    assert_int_equal(store_inbound_get(fx->store, "SM001", &in), SOUK_OK);
    assert_string_equal(in.waid, WAID);
    assert_string_equal(in.body, "hello there");
    assert_int_equal(in.state, STORE_INBOUND_RECEIVED);
    assert_non_null(in.media);
    assert_non_null(strstr(in.media, "img1.jpg"));
    store_inbound_clear(&in);

    store_user_t u = { 0 };
    assert_int_equal(store_user_get(fx->store, WAID, &u), SOUK_OK);
    assert_string_equal(u.profile_name, "Ana");
    assert_string_equal(u.from_addr, "whatsapp:+" WAID);
    assert_true(u.last_inbound_ms > 0);
    assert_non_null(u.last_media);
    assert_non_null(strstr(u.last_media, "https://media.example/img1.jpg"));
    assert_non_null(strstr(u.last_media, "image/jpeg"));
    store_user_clear(&u);

    hist_count_t h = s_history(fx, "SM001");
    assert_int_equal(h.sid_in, 1);
    assert_int_equal(h.out, 0);
}

static void test_answers_with_help_text(void **state)
{
    fx_t *fx = *state;
    s_start(fx);
    s_inbound(fx, "SM001", "  do you sell shoes?  ");
    s_expect_accepted(fx, "SM001", false);
    souk_msg_t m;
    s_expect_offer(fx, "SM001", WAIT_MS, &m);
    assert_non_null(strstr(m.reply_offer.body, "Hi Ana!"));
    assert_non_null(strstr(m.reply_offer.body, "\u201cdo you sell shoes?\u201d"));
    assert_non_null(strstr(m.reply_offer.body, "place an order"));
    souk_msg_clear(&m);
    assert_int_equal(s_outbox_state(fx, "SM001"), STORE_OUTBOX_OFFERED);
    assert_int_equal(s_inbound_state(fx, "SM001", "SM001"), STORE_INBOUND_DONE);
    hist_count_t h = s_history(fx, "r:SM001");
    assert_int_equal(h.sid_out, 1);
}

static void test_duplicate(void **state)
{
    fx_t *fx = *state;
    s_start(fx);
    s_inbound(fx, "SM001", "hi");
    s_expect_accepted(fx, "SM001", false);
    souk_msg_t m;
    s_expect_offer(fx, "SM001", WAIT_MS, &m);
    s_verdict(fx, "SM001", true);
    /* delivered again after an inline answer: Twilio resends only what got
     * no answer, so that answer never reached it — the same reply again */
    s_inbound(fx, "SM001", "hi");
    s_expect_accepted(fx, "SM001", false);
    souk_msg_t again;
    s_expect_offer(fx, "SM001", WAIT_MS, &again);
    assert_string_equal(again.reply_offer.body, m.reply_offer.body);
    souk_msg_clear(&again);
    s_verdict(fx, "SM001", true);
    /* once the reply goes by REST, a repeat is a plain duplicate */
    s_inbound(fx, "SM002", "more");
    s_expect_accepted(fx, "SM002", false);
    s_expect_offer(fx, "SM002", WAIT_MS, &again);
    souk_msg_clear(&again);
    s_verdict(fx, "SM002", false);
    s_inbound(fx, "SM002", "more");
    s_expect_accepted(fx, "SM002", true);
    s_gw_quiet(fx, QUIET_MS);
    assert_int_equal(s_history(fx, "SM001").sid_in, 1);
    souk_msg_clear(&m);
}

/* A repeat of a message still waiting in the turn is the same work: it is
 * accepted (the gateway waits for its answer) and answered once. */
static void test_duplicate_of_pending_message(void **state)
{
    fx_t *fx = *state;
    setenv("SOUK_DEBOUNCE_MS", "500", 1);
    s_start(fx);
    s_inbound(fx, "SM001", "hi");
    s_expect_accepted(fx, "SM001", false);
    s_inbound(fx, "SM001", "hi");
    s_expect_accepted(fx, "SM001", false);
    souk_msg_t m;
    s_expect_offer(fx, "SM001", WAIT_MS, &m);
    souk_msg_clear(&m);
    s_gw_quiet(fx, QUIET_MS);
}

/* A repeat of a message whose answer still waits for a verdict (the
 * gateway restarted and Twilio delivered again) gets the offer again. */
static void test_duplicate_while_offered(void **state)
{
    fx_t *fx = *state;
    s_start(fx);
    s_inbound(fx, "SM001", "hi");
    s_expect_accepted(fx, "SM001", false);
    souk_msg_t first, again;
    s_expect_offer(fx, "SM001", WAIT_MS, &first);
    s_inbound(fx, "SM001", "hi");
    s_expect_accepted(fx, "SM001", false);
    s_expect_offer(fx, "SM001", WAIT_MS, &again);
    assert_string_equal(first.reply_offer.body, again.reply_offer.body);
    souk_msg_clear(&first);
    souk_msg_clear(&again);
    s_verdict(fx, "SM001", true);
    s_barrier(fx, "SM001");
    assert_int_equal(s_outbox_state(fx, "SM001"), STORE_OUTBOX_INLINE);
}

static void test_refuses_other_user(void **state)
{
    fx_t *fx = *state;
    s_start(fx);
    s_inbound_full(fx, OTHER_WAID, "SMX01", "let me in", 0, NULL);
    s_gw_quiet(fx, QUIET_MS);
    store_inbound_t in = { 0 };
    assert_int_equal(store_inbound_get(fx->store, "SMX01", &in), SOUK_ENOTFOUND);
    store_user_t u = { 0 };
    assert_int_equal(store_user_get(fx->store, OTHER_WAID, &u), SOUK_ENOTFOUND);
    /* still serving its own user */
    s_inbound(fx, "SM001", "hi");
    s_expect_accepted(fx, "SM001", false);
}

static void test_order_within_user(void **state)
{
    fx_t *fx = *state;
    s_start(fx);
    enum { N = 6 };
    char sids[N][16], bodies[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(sids[i], sizeof sids[i], "SM%03d", i);
        snprintf(bodies[i], sizeof bodies[i], "message %d", i);
        s_inbound(fx, sids[i], bodies[i]);
    }
    int accepted = 0, offered = 0;
    while (offered < N) {
        souk_msg_t m;
        if (s_recv(fx->gateway, true, WAIT_MS, &m) != SOUK_OK)
            fail_msg("only %d of %d answers", offered, N);
        if (m.type == SOUK_MSG_ACCEPTED) {
            assert_true(accepted < N);
            assert_string_equal(m.accepted.msg_sid, sids[accepted]);
            accepted++;
        } else if (m.type == SOUK_MSG_REPLY_OFFER) {
            assert_true(offered < accepted);
            assert_string_equal(m.reply_offer.msg_sid, sids[offered]);
            assert_non_null(strstr(m.reply_offer.body, bodies[offered]));
            offered++;
        } else if (m.type != SOUK_MSG_SESSION_HELLO) {
            fail_msg("unexpected %s", souk_msg_name(m.type));
        }
        souk_msg_clear(&m);
    }
}

static void test_debounce_merges_a_burst(void **state)
{
    fx_t *fx = *state;
    setenv("SOUK_DEBOUNCE_MS", "400", 1);
    s_start(fx);
    s_inbound(fx, "SM001", "one");
    s_inbound(fx, "SM002", "two");
    s_inbound(fx, "SM003", "three");
    s_expect_accepted(fx, "SM001", false);
    s_expect_accepted(fx, "SM002", false);
    s_expect_accepted(fx, "SM003", false);
    souk_msg_t m;
    s_gw_expect(fx, SOUK_MSG_MERGED, WAIT_MS, &m);
    assert_string_equal(m.merged.msg_sid, "SM001");
    assert_string_equal(m.merged.into_sid, "SM003");
    souk_msg_clear(&m);
    s_gw_expect(fx, SOUK_MSG_MERGED, WAIT_MS, &m);
    assert_string_equal(m.merged.msg_sid, "SM002");
    assert_string_equal(m.merged.into_sid, "SM003");
    souk_msg_clear(&m);
    s_expect_offer(fx, "SM003", WAIT_MS, &m);
    assert_non_null(strstr(m.reply_offer.body, "one / two / three"));
    souk_msg_clear(&m);
    s_gw_quiet(fx, QUIET_MS);
    assert_int_equal(s_inbound_state(fx, "SM001", "SM003"), STORE_INBOUND_MERGED);
    assert_int_equal(s_inbound_state(fx, "SM002", "SM003"), STORE_INBOUND_MERGED);
    assert_int_equal(s_inbound_state(fx, "SM003", "SM003"), STORE_INBOUND_DONE);
    assert_int_equal(s_history(fx, "r:SM003").out, 1);
}

/* A user who never pauses still gets an answer every 16 messages. */
static void test_turn_is_capped(void **state)
{
    fx_t *fx = *state;
    setenv("SOUK_DEBOUNCE_MS", "1000", 1);
    s_start(fx);
    enum { N = 17, CAP = 16 };
    char sids[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(sids[i], sizeof sids[i], "SM%03d", i);
        s_inbound(fx, sids[i], "more");
    }
    souk_msg_t m;
    for (int i = 0; i < CAP; i++)
        s_expect_accepted(fx, sids[i], false);
    for (int i = 0; i < CAP - 1; i++) {
        s_gw_expect(fx, SOUK_MSG_MERGED, WAIT_MS, &m);
        assert_string_equal(m.merged.msg_sid, sids[i]);
        assert_string_equal(m.merged.into_sid, sids[CAP - 1]);
        souk_msg_clear(&m);
    }
    s_expect_offer(fx, sids[CAP - 1], WAIT_MS, &m); /* at once, not after the window */
    souk_msg_clear(&m);
    s_expect_accepted(fx, sids[N - 1], false);
    s_expect_offer(fx, sids[N - 1], WAIT_MS, &m);
    souk_msg_clear(&m);
}

static void test_debounce_zero_answers_each(void **state)
{
    fx_t *fx = *state;
    s_start(fx);
    static const char *const words[] = { "one", "two", "three" };
    static const char *const sids[] = { "SM001", "SM002", "SM003" };
    for (int i = 0; i < 3; i++)
        s_inbound(fx, sids[i], words[i]);
    for (int i = 0; i < 3; i++) {
        souk_msg_t m;
        s_expect_accepted(fx, sids[i], false);
        s_expect_offer(fx, sids[i], WAIT_MS, &m);
        for (int k = 0; k < 3; k++)
            assert_int_equal(strstr(m.reply_offer.body, words[k]) != NULL, k == i);
        souk_msg_clear(&m);
    }
}

static void test_verdict_inline(void **state)
{
    fx_t *fx = *state;
    s_start(fx);
    s_inbound(fx, "SM001", "hi");
    s_expect_accepted(fx, "SM001", false);
    souk_msg_t m;
    s_expect_offer(fx, "SM001", WAIT_MS, &m);
    souk_msg_clear(&m);
    s_verdict(fx, "SM001", true);
    s_barrier(fx, "SM001");
    assert_int_equal(s_outbox_state(fx, "SM001"), STORE_OUTBOX_INLINE);
    assert_int_equal(s_recv(fx->sender, false, QUIET_MS, &m), SOUK_ETIMEDOUT);
    /* the same verdict again changes nothing */
    s_verdict(fx, "SM001", false);
    s_barrier(fx, "SM001");
    assert_int_equal(s_outbox_state(fx, "SM001"), STORE_OUTBOX_INLINE);
}

static void test_verdict_rest_hints_sender(void **state)
{
    fx_t *fx = *state;
    s_start(fx);
    s_inbound(fx, "SM001", "hi");
    s_expect_accepted(fx, "SM001", false);
    souk_msg_t m;
    s_expect_offer(fx, "SM001", WAIT_MS, &m);
    souk_msg_clear(&m);
    s_verdict(fx, "SM001", false);
    assert_int_equal(s_recv(fx->sender, false, WAIT_MS, &m), SOUK_OK);
    assert_int_equal(m.type, SOUK_MSG_SEND_HINT);
    assert_string_equal(m.send_hint.outbox_key, "r:SM001");
    souk_msg_clear(&m);
    char *key = "r:SM001";
    store_outbox_t o = { 0 };
    assert_int_equal(store_outbox_get(fx->store, key, &o), SOUK_OK);
    assert_int_equal(o.state, STORE_OUTBOX_QUEUED);
    assert_true(o.next_attempt_ms > 0);
    assert_string_equal(o.waid, WAID);
    store_outbox_clear(&o);
}

/* Killed after ACCEPTED, before the turn ran: the restarted session
 * answers the pending message, once. */
static void test_resume_after_kill_mid_turn(void **state)
{
    fx_t *fx = *state;
    setenv("SOUK_DEBOUNCE_MS", "8000", 1);
    s_start(fx);
    s_inbound(fx, "SM001", "are you open today?");
    s_expect_accepted(fx, "SM001", false);
    s_kill(fx);
    assert_int_equal(s_inbound_state(fx, "SM001", NULL), STORE_INBOUND_RECEIVED);

    s_start(fx);
    souk_msg_t m;
    s_expect_offer(fx, "SM001", WAIT_MS, &m); /* long before the 8 s window */
    assert_non_null(strstr(m.reply_offer.body, "are you open today?"));
    souk_msg_clear(&m);
    s_verdict(fx, "SM001", true);
    s_barrier(fx, "SM001");
    s_gw_quiet(fx, QUIET_MS);
    assert_int_equal(s_outbox_state(fx, "SM001"), STORE_OUTBOX_INLINE);
    assert_int_equal(s_inbound_state(fx, "SM001", "SM001"), STORE_INBOUND_DONE);
    hist_count_t h = s_history(fx, "SM001");
    assert_int_equal(h.sid_in, 1);
    assert_int_equal(h.out, 1);
}

/* Killed after the offer, before the verdict: the restarted session offers
 * the same answer again; one outbox row, one history entry. */
static void test_resume_after_kill_before_verdict(void **state)
{
    fx_t *fx = *state;
    s_start(fx);
    s_inbound(fx, "SM001", "price of the red bag?");
    s_expect_accepted(fx, "SM001", false);
    souk_msg_t first, again;
    s_expect_offer(fx, "SM001", WAIT_MS, &first);
    s_kill(fx);

    s_start(fx);
    s_expect_offer(fx, "SM001", WAIT_MS, &again);
    assert_string_equal(first.reply_offer.body, again.reply_offer.body);
    souk_msg_clear(&first);
    souk_msg_clear(&again);
    s_verdict(fx, "SM001", false);
    souk_msg_t hint;
    assert_int_equal(s_recv(fx->sender, false, WAIT_MS, &hint), SOUK_OK);
    assert_string_equal(hint.send_hint.outbox_key, "r:SM001");
    souk_msg_clear(&hint);
    s_barrier(fx, "SM001");
    s_gw_quiet(fx, QUIET_MS);
    assert_int_equal(s_outbox_state(fx, "SM001"), STORE_OUTBOX_QUEUED);
    hist_count_t h = s_history(fx, "r:SM001");
    assert_int_equal(h.out, 1);
    assert_int_equal(h.in, 1);
}

/* Killed in the middle of a burst: the pending messages are one turn. */
static void test_resume_merges_pending_burst(void **state)
{
    fx_t *fx = *state;
    setenv("SOUK_DEBOUNCE_MS", "8000", 1);
    s_start(fx);
    s_inbound(fx, "SM001", "first");
    s_inbound(fx, "SM002", "second");
    s_expect_accepted(fx, "SM001", false);
    s_expect_accepted(fx, "SM002", false);
    s_kill(fx);
    s_start(fx);
    souk_msg_t m;
    s_gw_expect(fx, SOUK_MSG_MERGED, WAIT_MS, &m);
    assert_string_equal(m.merged.msg_sid, "SM001");
    assert_string_equal(m.merged.into_sid, "SM002");
    souk_msg_clear(&m);
    s_expect_offer(fx, "SM002", WAIT_MS, &m);
    assert_non_null(strstr(m.reply_offer.body, "first / second"));
    souk_msg_clear(&m);
}

/* A gateway that restarts knows nothing: the session says hello again and
 * offers again what has no verdict yet. */
static void test_gateway_restart(void **state)
{
    fx_t *fx = *state;
    s_start(fx);
    s_inbound(fx, "SM001", "hi");
    s_expect_accepted(fx, "SM001", false);
    souk_msg_t m;
    s_expect_offer(fx, "SM001", WAIT_MS, &m);
    souk_msg_clear(&m);
    zsock_destroy(&fx->gateway);
    fx->gateway = s_bind(fx, ZMQ_ROUTER, SOUK_EP_SESSIONS, 0);
    s_gw_expect(fx, SOUK_MSG_SESSION_HELLO, WAIT_MS, &m);
    assert_string_equal(m.session_hello.waid, WAID);
    souk_msg_clear(&m);
    s_expect_offer(fx, "SM001", WAIT_MS, &m);
    souk_msg_clear(&m);
    s_verdict(fx, "SM001", false);
    s_barrier(fx, "SM001");
    assert_int_equal(s_outbox_state(fx, "SM001"), STORE_OUTBOX_QUEUED);
}

static void test_reoffer_without_verdict(void **state)
{
    fx_t *fx = *state;
    setenv("SOUK_REPLY_BUDGET_MS", "50", 1); /* offers again after 2.05 s */
    s_start(fx);
    s_inbound(fx, "SM001", "hi");
    s_expect_accepted(fx, "SM001", false);
    souk_msg_t first, again;
    s_expect_offer(fx, "SM001", WAIT_MS, &first);
    int64_t t0 = zclock_mono();
    s_expect_offer(fx, "SM001", 2 * WAIT_MS, &again);
    assert_true(zclock_mono() - t0 >= 1500);
    assert_string_equal(first.reply_offer.body, again.reply_offer.body);
    souk_msg_clear(&first);
    souk_msg_clear(&again);
}

static void test_idle_exit(void **state)
{
    fx_t *fx = *state;
    setenv("SOUK_SESSION_IDLE_S", "1", 1);
    s_start(fx);
    souk_msg_t m;
    s_gw_expect(fx, SOUK_MSG_IDLE, WAIT_MS, &m);
    assert_string_equal(m.idle.waid, WAID);
    souk_msg_clear(&m);
    s_idle_ok(fx, true);
    assert_int_equal(s_exit_code(fx, WAIT_MS), 0);
}

static void test_idle_refused_stays(void **state)
{
    fx_t *fx = *state;
    setenv("SOUK_SESSION_IDLE_S", "1", 1);
    s_start(fx);
    souk_msg_t m;
    s_gw_expect(fx, SOUK_MSG_IDLE, WAIT_MS, &m);
    souk_msg_clear(&m);
    s_idle_ok(fx, false);
    /* still alive and serving */
    s_inbound(fx, "SM001", "hi");
    s_expect_accepted(fx, "SM001", false);
    s_expect_offer(fx, "SM001", WAIT_MS, &m);
    souk_msg_clear(&m);
    s_verdict(fx, "SM001", true);
    /* asks again only after another idle period */
    int64_t t0 = zclock_mono();
    s_gw_expect(fx, SOUK_MSG_IDLE, WAIT_MS, &m);
    assert_true(zclock_mono() - t0 >= 800);
    souk_msg_clear(&m);
    assert_true(kill(fx->pid, 0) == 0);
    s_idle_ok(fx, true);
    assert_int_equal(s_exit_code(fx, WAIT_MS), 0);
}

/* Not while it owes an answer: an offer without a verdict keeps it. */
static void test_no_idle_while_offer_waits(void **state)
{
    fx_t *fx = *state;
    setenv("SOUK_SESSION_IDLE_S", "1", 1);
    s_start(fx);
    s_inbound(fx, "SM001", "hi");
    s_expect_accepted(fx, "SM001", false);
    souk_msg_t m;
    s_expect_offer(fx, "SM001", WAIT_MS, &m);
    souk_msg_clear(&m);
    s_gw_quiet(fx, 1500);
    s_verdict(fx, "SM001", true);
    s_gw_expect(fx, SOUK_MSG_IDLE, WAIT_MS, &m);
    souk_msg_clear(&m);
}

static void test_idle_gateway_silent(void **state)
{
    fx_t *fx = *state;
    setenv("SOUK_SESSION_IDLE_S", "1", 1);
    s_start(fx);
    souk_msg_t m;
    s_gw_expect(fx, SOUK_MSG_IDLE, WAIT_MS, &m);
    souk_msg_clear(&m);
    assert_int_equal(s_exit_code(fx, 2 * WAIT_MS), 0);
}

static void s_stop(fx_t *fx, const char *reason, uint64_t drain_ms)
{
    souk_msg_t m = { .type = SOUK_MSG_STOP };
    m.stop.reason = (char *)reason;
    m.stop.drain_ms = drain_ms;
    assert_int_equal(souk_msg_send(fx->control, NAME, strlen(NAME), &m, 0), SOUK_OK);
}

static void test_stop_exits(void **state)
{
    fx_t *fx = *state;
    s_start(fx);
    s_stop(fx, "evicted", 2000);
    assert_int_equal(s_exit_code(fx, WAIT_MS), 0);
}

static void test_stop_finishes_turn(void **state)
{
    fx_t *fx = *state;
    setenv("SOUK_DEBOUNCE_MS", "10000", 1);
    s_start(fx);
    s_inbound(fx, "SM001", "quick question");
    s_expect_accepted(fx, "SM001", false);
    s_stop(fx, "shutdown", 3000);
    souk_msg_t m;
    s_expect_offer(fx, "SM001", 1000, &m);
    souk_msg_clear(&m);
    s_verdict(fx, "SM001", true);
    assert_int_equal(s_exit_code(fx, WAIT_MS), 0);
    assert_int_equal(s_outbox_state(fx, "SM001"), STORE_OUTBOX_INLINE);
}

static void test_sigterm_finishes_turn(void **state)
{
    fx_t *fx = *state;
    setenv("SOUK_DEBOUNCE_MS", "10000", 1);
    s_start(fx);
    s_inbound(fx, "SM001", "quick question");
    s_expect_accepted(fx, "SM001", false);
    kill(fx->pid, SIGTERM);
    souk_msg_t m;
    s_expect_offer(fx, "SM001", 1000, &m);
    souk_msg_clear(&m);
    s_verdict(fx, "SM001", false);
    assert_int_equal(s_exit_code(fx, WAIT_MS), 0);
    assert_int_equal(s_outbox_state(fx, "SM001"), STORE_OUTBOX_QUEUED);
}

static void test_opt_out_and_back_in(void **state)
{
    fx_t *fx = *state;
    s_start(fx);
    s_inbound(fx, "SM001", " Stop\n");
    s_expect_accepted(fx, "SM001", false);
    s_expect_no_reply(fx, "SM001");
    store_user_t u = { 0 };
    assert_int_equal(store_user_get(fx->store, WAID, &u), SOUK_OK);
    assert_true(u.opted_out);
    assert_true(u.opt_changed_ms > 0);
    store_user_clear(&u);
    assert_int_equal(s_inbound_state(fx, "SM001", "SM001"), STORE_INBOUND_DONE);

    /* opted out: nothing more, not even the help text */
    s_inbound(fx, "SM002", "hello?");
    s_expect_accepted(fx, "SM002", false);
    s_expect_no_reply(fx, "SM002");
    assert_int_equal(s_history(fx, "x").out, 0);

    s_inbound(fx, "SM003", "START");
    s_expect_accepted(fx, "SM003", false);
    souk_msg_t m;
    s_expect_offer(fx, "SM003", WAIT_MS, &m);
    assert_non_null(strstr(m.reply_offer.body, "subscribed again"));
    souk_msg_clear(&m);
    assert_int_equal(store_user_get(fx->store, WAID, &u), SOUK_OK);
    assert_false(u.opted_out);
    store_user_clear(&u);

    s_inbound(fx, "SM004", "unsubscribe");
    s_expect_accepted(fx, "SM004", false);
    s_expect_no_reply(fx, "SM004");
    s_inbound(fx, "SM005", "unstop");
    s_expect_accepted(fx, "SM005", false);
    s_expect_offer(fx, "SM005", WAIT_MS, &m);
    souk_msg_clear(&m);
    s_inbound(fx, "SM006", "stop please"); /* not a keyword */
    s_expect_accepted(fx, "SM006", false);
    s_expect_offer(fx, "SM006", WAIT_MS, &m);
    assert_non_null(strstr(m.reply_offer.body, "stop please"));
    souk_msg_clear(&m);
}

static void test_heartbeat_stats(void **state)
{
    fx_t *fx = *state;
    setenv("SOUK_DEBOUNCE_MS", "5000", 1);
    s_start(fx);
    s_inbound(fx, "SM001", "hi");
    s_expect_accepted(fx, "SM001", false);
    souk_msg_t m;
    /* the first heartbeat after ACCEPTED shows the waiting message */
    for (;;) {
        s_ctl_expect(fx, SOUK_MSG_HEARTBEAT, WAIT_MS, &m);
        bool seen = m.heartbeat.handled == 1;
        if (seen) {
            assert_string_equal(m.heartbeat.name, NAME);
            assert_int_equal(m.heartbeat.depth, 1);
            assert_true(m.heartbeat.idle_ms < 5000);
        }
        souk_msg_clear(&m);
        if (seen)
            break;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)
        T(test_refuses_bad_waid),
        T(test_persists_before_accepted),
        T(test_answers_with_help_text),
        T(test_duplicate),
        T(test_duplicate_of_pending_message),
        T(test_duplicate_while_offered),
        T(test_refuses_other_user),
        T(test_order_within_user),
        T(test_debounce_merges_a_burst),
        T(test_turn_is_capped),
        T(test_debounce_zero_answers_each),
        T(test_verdict_inline),
        T(test_verdict_rest_hints_sender),
        T(test_resume_after_kill_mid_turn),
        T(test_resume_after_kill_before_verdict),
        T(test_resume_merges_pending_burst),
        T(test_gateway_restart),
        T(test_reoffer_without_verdict),
        T(test_idle_exit),
        T(test_idle_refused_stays),
        T(test_no_idle_while_offer_waits),
        T(test_idle_gateway_silent),
        T(test_stop_exits),
        T(test_stop_finishes_turn),
        T(test_sigterm_finishes_turn),
        T(test_opt_out_and_back_in),
        T(test_heartbeat_stats),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
