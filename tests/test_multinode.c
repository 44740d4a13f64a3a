/* Several souk nodes on one store (issue 6, "Several nodes").
 *
 * Three real `souk serve` processes, each with its own port and data
 * folder, share one store: a SQLite folder (SOUK_STORE_DIR) or, with
 * SOUK_TEST_STORE=dynamodb, one DynamoDB (dynalite, started here). A user's
 * messages reach any node, as behind a load balancer; each message carries
 * a unique token that the echo answer repeats, so every reply — inline
 * TwiML, or a later one sent by some node's sender (console mode: an
 * "outbound" event on that node's events stream) — is matched to the
 * messages it answers. The tests assert that every accepted message gets
 * exactly one reply, and that the lease kept one user's turns on one node:
 *
 *   spread       messages of three users round-robin over the three nodes,
 *                no failures: no turn is run twice (serve logs), and the
 *                messages that reached a non-holder were acknowledged with
 *                nothing and answered by the holder
 *   node_killed  a node is SIGKILLed while it holds three users' leases and
 *                their messages wait in its debounce: one user writes again
 *                at once to another node (which waits out the lease and
 *                takes over), one writes after the lease expired, one never
 *                writes again (another node's sweep finds the orphan) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "souk/error.h"
#include "store_backend.h"

#define NODES 3
#define USERS 3
#define PER_USER 6
#define MSGS_MAX (USERS * PER_USER)
#define SETTLE_MS 30000
#define QUIET_MS 800

typedef struct {
    char sid[35];
    char token[16];
    int inline_hits, rest_hits;
    char answer[16];
} msg_t;

typedef struct {
    test_store_t store;
    harness_t nodes[NODES];
    bool up[NODES];
    msg_t msgs[MSGS_MAX];
    int nmsgs;
} cluster_t;

static void s_waid(int user, char out[16])
{
    snprintf(out, 16, "1555041%04d", user);
}

static int s_cluster_start(cluster_t *c, const char *debounce_ms)
{
    memset(c, 0, sizeof *c);
    if (test_store_start(&c->store) != 0)
        return -1;
    for (int i = 0; i < NODES; i++) {
        char node[32];
        snprintf(node, sizeof node, "SOUK_NODE_ID=node%d", i);
        char debounce[48];
        snprintf(debounce, sizeof debounce, "SOUK_DEBOUNCE_MS=%s", debounce_ms);
        const char *env[16] = { node, debounce, "SOUK_LEASE_MS=2000", "SOUK_REPLY_BUDGET_MS=300" };
        int n = 4;
        for (int k = 0; c->store.env[k] && n < 15; k++)
            env[n++] = c->store.env[k];
        env[n] = NULL;
        if (harness_start(&c->nodes[i], env) != 0)
            return -1;
        if (harness_events_join(&c->nodes[i], 5000) != 0)
            return -1;
        c->up[i] = true;
    }
    return 0;
}

static void s_cluster_stop(cluster_t *c)
{
    for (int i = 0; i < NODES; i++)
        if (c->nodes[i].pid > 0)
            harness_stop(&c->nodes[i], false);
    test_store_stop(&c->store);
}

/* Sends message `k` of `user` to node `node`; records its inline reply. */
static void s_send(cluster_t *c, int node, int user, int k)
{
    msg_t *m = &c->msgs[c->nmsgs++];
    snprintf(m->token, sizeof m->token, "t-u%02d-m%02d.", user, k);
    char waid[16], name[16], text[64];
    s_waid(user, waid);
    snprintf(name, sizeof name, "U%d", user);
    snprintf(text, sizeof text, "hello %s", m->token);
    harness_reply_t r = { 0 };
    assert_int_equal(harness_send(&c->nodes[node], waid, name, text, NULL, m->sid, &r), 0);
    assert_int_equal(r.status, 200);
    snprintf(m->answer, sizeof m->answer, "%s", r.answer);
    for (int i = 0; r.message && i < c->nmsgs; i++)
        if (strstr(r.message, c->msgs[i].token))
            c->msgs[i].inline_hits++;
    harness_reply_clear(&r);
}

/* Counts the tokens of one later reply. */
static void s_rest_reply(cluster_t *c, const char *body)
{
    for (int i = 0; i < c->nmsgs; i++)
        if (strstr(body, c->msgs[i].token))
            c->msgs[i].rest_hits++;
}

static bool s_all_answered(const cluster_t *c)
{
    for (int i = 0; i < c->nmsgs; i++)
        if (c->msgs[i].inline_hits + c->msgs[i].rest_hits == 0)
            return false;
    return true;
}

/* Takes "outbound" events from every live node until every message has a
 * reply (or the time is up), then listens QUIET_MS more for doubles. */
static void s_collect(cluster_t *c, int settle_ms)
{
    zpoller_t *poller = zpoller_new(NULL);
    for (int i = 0; i < NODES; i++)
        if (c->up[i])
            zpoller_add(poller, c->nodes[i].events);
    int64_t deadline = zclock_mono() + settle_ms, quiet_end = 0;
    for (;;) {
        int64_t now = zclock_mono();
        if (!quiet_end && s_all_answered(c))
            quiet_end = now + QUIET_MS;
        int64_t end = quiet_end ? quiet_end : deadline;
        if (now >= end)
            break;
        zsock_t *which = zpoller_wait(poller, (int)(end - now));
        if (!which)
            continue;
        souk_msg_t m;
        if (souk_msg_recv(which, NULL, NULL, &m, ZMQ_DONTWAIT, NULL, 0) != SOUK_OK)
            continue;
        if (m.type == SOUK_MSG_EVENT && strcmp(m.event.kind, "outbound") == 0) {
            json_t *d = json_loads(m.event.detail, 0, NULL);
            const char *b = json_string_value(json_object_get(d, "body"));
            if (b)
                s_rest_reply(c, b);
            json_decref(d);
        }
        souk_msg_clear(&m);
    }
    zpoller_destroy(&poller);
}

static void s_assert_one_reply_each(const cluster_t *c)
{
    int bad = 0;
    for (int i = 0; i < c->nmsgs; i++) {
        const msg_t *m = &c->msgs[i];
        if (m->inline_hits + m->rest_hits != 1) {
            fprintf(stderr, "%s: %d inline + %d later replies (webhook answered %s)\n", m->token,
                    m->inline_hits, m->rest_hits, m->answer);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* How many lines of node i's serve log hold `needle` (and `also`, when
 * not NULL). */
static int s_log_count2(const cluster_t *c, int i, const char *needle, const char *also)
{
    FILE *f = fopen(c->nodes[i].log_path, "r");
    if (!f)
        return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle) && (!also || strstr(line, also)))
            n++;
    fclose(f);
    return n;
}

static int s_log_count(const cluster_t *c, int i, const char *needle)
{
    return s_log_count2(c, i, needle, NULL);
}

static void test_spread(void **state)
{
    (void)state;
    cluster_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    assert_int_equal(s_cluster_start(c, "0"), 0);
    for (int k = 0; k < PER_USER; k++)
        for (int u = 0; u < USERS; u++)
            s_send(c, (u + k) % NODES, u, k);
    s_collect(c, SETTLE_MS);
    s_assert_one_reply_each(c);
    /* each turn ran once, on one node; the non-holders left theirs */
    int turns = 0, left = 0;
    for (int i = 0; i < NODES; i++) {
        turns += s_log_count(c, i, "session.turn ");
        left += s_log_count(c, i, "session.left_to_holder");
    }
    printf("# spread: %d messages, %d turns, %d left to the holder\n", c->nmsgs, turns, left);
    assert_true(left >= USERS * (PER_USER - 2));
    /* no message was the last of two turns, on one node or two */
    for (int k = 0; k < c->nmsgs; k++) {
        char sid[48];
        snprintf(sid, sizeof sid, "sid=%s ", c->msgs[k].sid);
        int runs = 0;
        for (int i = 0; i < NODES; i++)
            runs += s_log_count2(c, i, "session.turn ", sid);
        assert_true(runs <= 1);
    }
    for (int i = 0; i < c->nmsgs; i++)
        if (strcmp(c->msgs[i].answer, "later") == 0)
            assert_int_equal(c->msgs[i].inline_hits, 0);
    s_cluster_stop(c);
    free(c);
}

static void test_node_killed(void **state)
{
    (void)state;
    cluster_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    /* the debounce keeps accepted messages waiting on node 0 when it dies */
    assert_int_equal(s_cluster_start(c, "1500"), 0);
    for (int u = 0; u < USERS; u++)
        s_send(c, 0, u, 0);
    assert_int_equal(kill(c->nodes[0].pid, SIGKILL), 0);
    int st;
    assert_int_equal(harness_wait_exit(c->nodes[0].pid, 10000, &st), 0);
    c->nodes[0].pid = 0;
    c->up[0] = false;
    harness_stop(&c->nodes[0], false); /* removes its data folder */
    /* user 0 at once, to a node that must wait out node 0's lease */
    s_send(c, 1, 0, 1);
    /* user 2 after the lease is surely gone; user 1 never again */
    s_collect(c, 2500);
    s_send(c, 2, 2, 1);
    s_collect(c, SETTLE_MS);
    s_assert_one_reply_each(c);
    int swept = s_log_count(c, 1, "sweep.orphan") + s_log_count(c, 2, "sweep.orphan");
    printf("# node_killed: %d messages answered, %d orphan sweeps\n", c->nmsgs, swept);
    assert_true(swept >= 1);
    s_cluster_stop(c);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spread),
        cmocka_unit_test(test_node_killed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
