/* The gateway's routing state machine and bounded maps, driven directly
 * with a recording fake of the outside world and a hand-moved clock: the
 * budget edge is tested to the millisecond, both orders of timer and offer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "souk/error.h"

/* ---- recent --------------------------------------------------------------- */

static void test_recent_basics(void **state)
{
    (void)state;
    gw_recent_t *r = gw_recent_new(4);
    assert_non_null(r);
    assert_int_equal(gw_recent_get(r, "a"), 0);
    assert_int_equal(gw_recent_put(r, "a", 1), SOUK_OK);
    assert_int_equal(gw_recent_put(r, "b", 2), SOUK_OK);
    assert_int_equal(gw_recent_get(r, "a"), 1);
    assert_int_equal(gw_recent_put(r, "a", 3), SOUK_OK); /* update, same place */
    assert_int_equal(gw_recent_get(r, "a"), 3);
    assert_int_equal(gw_recent_size(r), 2);
    gw_recent_put(r, "c", 1);
    gw_recent_put(r, "d", 1);
    gw_recent_put(r, "e", 1); /* forgets a, the oldest */
    assert_int_equal(gw_recent_get(r, "a"), 0);
    assert_int_equal(gw_recent_get(r, "b"), 2);
    assert_int_equal(gw_recent_get(r, "e"), 1);
    assert_int_equal(gw_recent_size(r), 4);
    char longkey[GW_SID_MAX + 2];
    memset(longkey, 'x', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    assert_int_equal(gw_recent_put(r, longkey, 1), SOUK_EINVAL);
    assert_int_equal(gw_recent_get(r, longkey), 0);
    gw_recent_destroy(&r);
    assert_null(r);
}

/* Many keys through a small map: exactly the last `cap` are remembered,
 * whatever the probe runs looked like when older ones were removed. */
static void test_recent_eviction(void **state)
{
    (void)state;
    enum { CAP = 1000, N = 25000 };
    gw_recent_t *r = gw_recent_new(CAP);
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "SM%08d", i);
        assert_int_equal(gw_recent_put(r, key, i % 7 + 1), SOUK_OK);
        if (i % 997 == 0) {
            for (int j = 0; j <= i; j++) {
                snprintf(key, sizeof key, "SM%08d", j);
                int want = j > i - CAP ? j % 7 + 1 : 0;
                assert_int_equal(gw_recent_get(r, key), want);
            }
        }
    }
    assert_int_equal(gw_recent_size(r), CAP);
    gw_recent_destroy(&r);
}

/* ---- routing with a recording world -------------------------------------------- */

#define MAX_EVENTS 256

typedef struct {
    char connected[8][32]; /* session peers that exist */
    int nconnected;
    bool busy;             /* deliver says EBUSY */
    char delivered[MAX_EVENTS][40];
    int ndelivered;
    char spawned[MAX_EVENTS][32];
    int nspawned;
    struct {
        char sid[40];
        bool inline_;
    } verdicts[MAX_EVENTS];
    int nverdicts;
    int idle_ok; /* -1 none, 0, 1 */
    struct {
        int http;
        int status;
        char body[512];
    } answers[MAX_EVENTS];
    int nanswers;
} world_t;

static int w_deliver(void *arg, const char *waid, const void *frame, size_t len)
{
    world_t *w = arg;
    if (w->busy)
        return SOUK_EBUSY;
    for (int i = 0; i < w->nconnected; i++)
        if (strcmp(w->connected[i], waid) == 0) {
            souk_msg_t m;
            assert_int_equal(souk_msg_decode(frame, len, &m, NULL, 0), SOUK_OK);
            assert_string_equal(m.inbound.waid, waid);
            snprintf(w->delivered[w->ndelivered++], 40, "%s", m.inbound.msg_sid);
            souk_msg_clear(&m);
            return SOUK_OK;
        }
    return SOUK_EUNAVAIL;
}

static int w_to_session(void *arg, const char *waid, const souk_msg_t *m)
{
    (void)waid;
    world_t *w = arg;
    if (m->type == SOUK_MSG_REPLY_VERDICT) {
        snprintf(w->verdicts[w->nverdicts].sid, 40, "%s", m->reply_verdict.msg_sid);
        w->verdicts[w->nverdicts++].inline_ = m->reply_verdict.inline_;
    } else if (m->type == SOUK_MSG_IDLE_OK) {
        w->idle_ok = m->idle_ok.ok;
    }
    return SOUK_OK;
}

static int w_to_supervisor(void *arg, const souk_msg_t *m)
{
    world_t *w = arg;
    assert_int_equal(m->type, SOUK_MSG_SPAWN_SESSION);
    snprintf(w->spawned[w->nspawned++], 32, "%s", m->spawn_session.waid);
    return SOUK_OK;
}

static void w_answer(void *arg, void *http, const gw_answer_t *a)
{
    world_t *w = arg;
    w->answers[w->nanswers].http = (int)(intptr_t)http;
    w->answers[w->nanswers].status = a->status;
    snprintf(w->answers[w->nanswers].body, 512, "%.*s", (int)a->len, a->body);
    w->nanswers++;
}

static const gw_routing_ops_t s_ops = { w_deliver, w_to_session, w_to_supervisor, w_answer };

static gw_routing_t *s_routing(world_t *w, int64_t budget)
{
    memset(w, 0, sizeof *w);
    w->idle_ok = -1;
    gw_routing_t *r = gw_routing_new(&s_ops, w, budget, 60000);
    assert_non_null(r);
    return r;
}

static gw_disposition_t s_inbound(gw_routing_t *r, const char *sid, const char *waid, int http,
                                  int64_t now)
{
    char from[48];
    snprintf(from, sizeof from, "whatsapp:+%s", waid);
    gw_inbound_t in = { .request_id = "req-1", .msg_sid = sid, .waid = waid, .from = from,
                        .profile = "Ana", .body = "hi", .params = "{}", .received_ms = 1 };
    gw_request_t *req;
    return gw_routing_inbound(r, &in, (void *)(intptr_t)http, &req, now);
}

/* For offers at every millisecond around the deadline, in both orders of
 * the budget timer and the offer: exactly one of (inline answer, verdict
 * inline=false + acknowledgement). */
static void test_budget_edge(void **state)
{
    (void)state;
    for (int64_t t = 95; t <= 105; t++) {
        for (int timer_first = 0; timer_first < 2; timer_first++) {
            world_t w;
            gw_routing_t *r = s_routing(&w, 100);
            snprintf(w.connected[w.nconnected++], 32, "100");
            assert_int_equal(s_inbound(r, "SM1", "100", 7, 0), GW_ROUTED);
            gw_routing_accepted(r, "100", "SM1", false, 1);
            if (timer_first)
                gw_routing_expire(r, t);
            gw_routing_offer(r, "100", "SM1", "r:SM1", "THE-REPLY", t);
            if (!timer_first)
                gw_routing_expire(r, t);
            assert_int_equal(w.nverdicts, 1);
            if (w.verdicts[0].inline_) {
                /* nothing is written before the session confirms */
                assert_int_equal(w.nanswers, 0);
                gw_routing_inline_ack(r, "100", "SM1", true, t + 1);
            }
            assert_int_equal(w.nanswers, 1);
            bool inline_answer = strstr(w.answers[0].body, "THE-REPLY") != NULL;
            assert_int_equal(w.verdicts[0].inline_, inline_answer);
            assert_int_equal(inline_answer, t < 100);
            /* a repeated offer gets the same verdict and answers nothing */
            gw_routing_offer(r, "100", "SM1", "r:SM1", "THE-REPLY", t + 50);
            assert_int_equal(w.nverdicts, 2);
            assert_int_equal(w.verdicts[1].inline_, inline_answer);
            assert_int_equal(w.nanswers, 1);
            assert_int_equal(gw_routing_pending(r), 0);
            gw_routing_destroy(&r);
        }
    }
}

/* Twilio takes a 200 for "delivered": a request whose budget runs out
 * before any session stored its message is answered 503 (not taken), at
 * its budget, never 200; the message is still delivered, and its answer,
 * whenever it comes, goes by REST (never inline into a closed request). */
static void test_no_200_before_stored(void **state)
{
    (void)state;
    world_t w;
    gw_routing_t *r = s_routing(&w, 100);
    snprintf(w.connected[w.nconnected++], 32, "100");
    assert_int_equal(s_inbound(r, "SM1", "100", 7, 0), GW_ROUTED);
    assert_int_equal(w.ndelivered, 1);
    gw_routing_expire(r, 99);
    assert_int_equal(w.nanswers, 0);
    gw_routing_expire(r, 100);
    assert_int_equal(w.nanswers, 1);
    assert_int_equal(w.answers[0].status, 503);
    assert_int_equal(gw_routing_pending(r), 0);
    /* delivered again while still not stored: 503 again, not a duplicate's
     * 200 (a gateway killed now would lose the message it vouched for) */
    assert_true(gw_routing_unstored(r, "100", "SM1"));
    assert_false(gw_routing_unstored(r, "200", "SM1"));
    assert_int_equal(s_inbound(r, "SM1", "100", 9, 120), GW_BUSY);
    assert_int_equal(w.nanswers, 2);
    assert_int_equal(w.answers[1].status, 503);
    assert_int_equal(w.ndelivered, 1);   /* held once, delivered once */
    gw_routing_accepted(r, "100", "SM1", false, 150);
    assert_false(gw_routing_unstored(r, "100", "SM1"));
    /* stored now: a delivery again is a duplicate */
    assert_int_equal(s_inbound(r, "SM1", "100", 10, 155), GW_DUPLICATE);
    assert_int_equal(w.nanswers, 3);
    assert_int_equal(w.answers[2].status, 200);
    gw_routing_offer(r, "100", "SM1", "r:SM1", "THE-REPLY", 160);
    assert_int_equal(w.nanswers, 3);
    assert_int_equal(w.nverdicts, 1);
    assert_false(w.verdicts[0].inline_);
    /* stored in time: the acknowledgement is a 200 */
    assert_int_equal(s_inbound(r, "SM2", "100", 8, 200), GW_ROUTED);
    gw_routing_accepted(r, "100", "SM2", false, 201);
    gw_routing_expire(r, 300);
    assert_int_equal(w.nanswers, 4);
    assert_int_equal(w.answers[3].status, 200);
    gw_routing_destroy(&r);
}

/* An inline answer waits for INLINE_ACK; without it (the session died)
 * it is written when the confirmation wait runs out, once; a refusal
 * (the reply already goes by REST) answers empty. */
static void test_inline_confirmation(void **state)
{
    (void)state;
    world_t w;
    gw_routing_t *r = s_routing(&w, 100);
    snprintf(w.connected[w.nconnected++], 32, "100");
    assert_int_equal(s_inbound(r, "SM1", "100", 7, 0), GW_ROUTED);
    gw_routing_accepted(r, "100", "SM1", false, 1);
    gw_routing_offer(r, "100", "SM1", "r:SM1", "THE-REPLY", 10);
    assert_int_equal(w.nanswers, 0);
    gw_routing_expire(r, 10 + GW_CONFIRM_WAIT_MS - 1);
    assert_int_equal(w.nanswers, 0);
    gw_routing_expire(r, 10 + GW_CONFIRM_WAIT_MS);
    assert_int_equal(w.nanswers, 1);
    assert_non_null(strstr(w.answers[0].body, "THE-REPLY"));
    gw_routing_inline_ack(r, "100", "SM1", true, 10 + GW_CONFIRM_WAIT_MS + 1);
    assert_int_equal(w.nanswers, 1);

    assert_int_equal(s_inbound(r, "SM2", "100", 8, 20), GW_ROUTED);
    gw_routing_accepted(r, "100", "SM2", false, 21);
    gw_routing_offer(r, "100", "SM2", "r:SM2", "BY-REST", 22);
    gw_routing_inline_ack(r, "100", "SM2", false, 23);
    assert_int_equal(w.nanswers, 2);
    assert_null(strstr(w.answers[1].body, "BY-REST"));
    assert_int_equal(gw_routing_pending(r), 0);
    gw_routing_destroy(&r);
}

static void test_hold_spawn_retry_and_order(void **state)
{
    (void)state;
    world_t w;
    gw_routing_t *r = s_routing(&w, 3000);
    assert_int_equal(s_inbound(r, "SM1", "200", 1, 0), GW_ROUTED);
    assert_int_equal(s_inbound(r, "SM2", "200", 2, 1), GW_ROUTED);
    assert_int_equal(w.nspawned, 1);
    assert_int_equal(gw_routing_held(r), 2);
    gw_routing_tick(r, 100);
    assert_int_equal(w.nspawned, 1);
    gw_routing_tick(r, GW_SPAWN_RETRY_MS + 1);
    assert_int_equal(w.nspawned, 2); /* no hello came: ask again */
    snprintf(w.connected[w.nconnected++], 32, "200");
    gw_routing_session_hello(r, "200", 2500);
    assert_int_equal(w.ndelivered, 2);
    assert_string_equal(w.delivered[0], "SM1");
    assert_string_equal(w.delivered[1], "SM2");
    /* the session dies with SM2 not accepted */
    gw_routing_accepted(r, "200", "SM1", false, 2600);
    gw_routing_session_exit(r, "200", false, false, 2700);
    assert_int_equal(w.nspawned, 3);
    gw_routing_session_hello(r, "200", 2800);
    assert_int_equal(w.ndelivered, 3);
    assert_string_equal(w.delivered[2], "SM2");
    gw_routing_destroy(&r);
}

static void test_busy_retry(void **state)
{
    (void)state;
    world_t w;
    gw_routing_t *r = s_routing(&w, 3000);
    snprintf(w.connected[w.nconnected++], 32, "300");
    w.busy = true;
    assert_int_equal(s_inbound(r, "SM1", "300", 1, 0), GW_ROUTED);
    assert_int_equal(w.ndelivered, 0);
    assert_int_equal(w.nspawned, 0);
    w.busy = false;
    gw_routing_tick(r, 10);
    assert_int_equal(w.ndelivered, 1);
    gw_routing_destroy(&r);
}

/* A refused spawn (at the cap) is not asked for again at once — that would
 * ping-pong with the supervisor — but later, backing off; and a session
 * whose hello was missed still gets the held messages at the retry. */
static void test_refused_spawn(void **state)
{
    (void)state;
    world_t w;
    gw_routing_t *r = s_routing(&w, 3000);
    s_inbound(r, "SM1", "600", 1, 0);
    assert_int_equal(w.nspawned, 1);
    gw_routing_session_exit(r, "600", false, true, 5);
    assert_int_equal(w.nspawned, 1);
    gw_routing_tick(r, 5 + GW_SPAWN_RETRY_MS - 1);
    assert_int_equal(w.nspawned, 1);
    gw_routing_tick(r, 5 + GW_SPAWN_RETRY_MS);
    assert_int_equal(w.nspawned, 2);
    gw_routing_session_exit(r, "600", false, true, 2010);
    gw_routing_tick(r, 2010 + GW_SPAWN_RETRY_MS * 2 - 1);
    assert_int_equal(w.nspawned, 2); /* backed off to twice the wait */
    gw_routing_tick(r, 2010 + GW_SPAWN_RETRY_MS * 2);
    assert_int_equal(w.nspawned, 3);
    snprintf(w.connected[w.nconnected++], 32, "600"); /* started, hello lost */
    gw_routing_tick(r, 2010 + GW_SPAWN_RETRY_MS * 8);
    assert_int_equal(w.ndelivered, 1);
    assert_int_equal(w.nspawned, 3);
    gw_routing_destroy(&r);
}

static void test_drain(void **state)
{
    (void)state;
    world_t w;
    gw_routing_t *r = s_routing(&w, 3000);
    snprintf(w.connected[w.nconnected++], 32, "400");
    s_inbound(r, "SM1", "400", 1, 0); /* accepted by its session */
    s_inbound(r, "SM2", "401", 2, 0); /* held: no session */
    gw_routing_accepted(r, "400", "SM1", false, 1);
    gw_routing_set_draining(r);
    gw_routing_answer_all(r, 10);
    assert_int_equal(w.nanswers, 2);
    assert_int_equal(w.answers[0].status, 200); /* acknowledged: reply by REST */
    assert_int_equal(w.answers[1].status, 503); /* nobody took it: say so */
    assert_int_equal(gw_routing_pending(r), 0);
    gw_routing_destroy(&r);
}

static void test_forget_idle_users(void **state)
{
    (void)state;
    world_t w;
    gw_routing_t *r = s_routing(&w, 3000);
    snprintf(w.connected[w.nconnected++], 32, "500");
    gw_routing_session_hello(r, "500", 0);
    gw_routing_idle(r, "500", "500", 10);
    assert_int_equal(w.idle_ok, 1);
    /* down: a message now waits for a new session */
    s_inbound(r, "SM1", "500", 1, 20);
    assert_int_equal(w.ndelivered, 0);
    assert_int_equal(w.nspawned, 1);
    gw_routing_session_hello(r, "500", 30);
    assert_int_equal(w.ndelivered, 1);
    gw_routing_idle(r, "500", "500", 40);
    assert_int_equal(w.idle_ok, 0); /* SM1 in flight */
    gw_routing_accepted(r, "500", "SM1", false, 50);
    gw_routing_offer(r, "500", "SM1", "r:SM1", "x", 60);
    gw_routing_inline_ack(r, "500", "SM1", true, 65);
    gw_routing_idle(r, "500", "500", 70);
    assert_int_equal(w.idle_ok, 1);
    gw_routing_session_exit(r, "500", false, false, 80);
    gw_routing_tick(r, 80 + GW_USER_FORGET_MS);
    /* forgotten: a new message tries the routing id first again */
    s_inbound(r, "SM2", "500", 2, 100 + GW_USER_FORGET_MS);
    assert_int_equal(w.ndelivered, 2);
    gw_routing_destroy(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recent_basics),
        cmocka_unit_test(test_recent_eviction),
        cmocka_unit_test(test_budget_edge),
        cmocka_unit_test(test_no_200_before_stored),
        cmocka_unit_test(test_inline_confirmation),
        cmocka_unit_test(test_hold_spawn_retry_and_order),
        cmocka_unit_test(test_busy_retry),
        cmocka_unit_test(test_refused_spawn),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_forget_idle_users),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
