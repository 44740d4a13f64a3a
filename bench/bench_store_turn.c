/* The store's write path under many session actors at once (issue 3: "show
 * the p99.9 of a persisted turn"). Each of P processes plays a session actor
 * with its own store handle and runs turns back to back; a turn is every
 * write a session makes for one message and its answer, in the session's
 * three units of work (store batches):
 *   [inbound put, user seen, history (in)], [outbox put (offered),
 *   history (out), inbound finish], outbox offered -> queued.
 * Prints turns/s for all processes together and the latency of one turn
 * (p50, p99, p99.9, max), and on DynamoDB the requests a turn costs (what
 * DynamoDB bills). Usage: bench_store_turn [PROCESSES [TURNS_EACH [BACKEND]]]
 * BACKEND sqlite (default) or dynamodb: the table from the environment
 * (DYNAMODB_ENDPOINT, SOUK_TABLE_PREFIX...), created if missing; see
 * bench/dynamo/run.sh. */
#include "souk/error.h"
#include "souk/store.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t s_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int s_turn(store_t *st, const char *waid, int p, int i, bool batched)
{
    char sid[64], key[80];
    snprintf(sid, sizeof sid, "SM%08d%08d", p, i);
    snprintf(key, sizeof key, "r:%s", sid);
    int64_t now = s_wall_ms();
    store_inbound_t in = { .msg_sid = sid, .waid = (char *)waid, .body = "show me running shoes",
                           .received_ms = now };
    store_user_seen_t seen = { .waid = waid, .profile_name = "Bench", .inbound = true,
                               .now_ms = now };
    store_history_t hin = { .waid = (char *)waid, .dir = STORE_DIR_IN, .msg_sid = sid,
                            .text = "show me running shoes", .ts_ms = now };
    store_outbox_t ob = { .key = key, .waid = (char *)waid, .kind = STORE_KIND_REPLY,
                          .state = STORE_OUTBOX_OFFERED, .created_ms = now,
                          .body = "Here's what I found for running shoes: 1. *Nike Air* $89.99" };
    store_history_t hout = { .waid = (char *)waid, .dir = STORE_DIR_OUT, .msg_sid = key,
                             .text = ob.body, .ts_ms = now };
    store_outbox_change_t ch = { .now_ms = now, .next_attempt_ms = now };
    /* the session's three units of work: accept, answer, verdict (each
     * batch one transaction on SQLite; unbatched with BENCH_UNBATCHED=1) */
    if (batched && store_batch_begin(st) != SOUK_OK)
        return -1;
    int rc = store_inbound_put(st, &in);
    if (rc == SOUK_OK)
        rc = store_user_seen(st, &seen);
    if (rc == SOUK_OK)
        rc = store_history_append(st, &hin);
    if (batched && store_batch_end(st, rc == SOUK_OK) != SOUK_OK)
        rc = SOUK_EIO;
    if (rc == SOUK_OK && batched)
        rc = store_batch_begin(st);
    if (rc == SOUK_OK)
        rc = store_outbox_put(st, &ob, NULL);
    if (rc == SOUK_OK)
        rc = store_history_append(st, &hout);
    if (rc == SOUK_OK)
        rc = store_inbound_finish(st, sid, STORE_INBOUND_DONE, sid);
    if (batched && store_batch_end(st, rc == SOUK_OK) != SOUK_OK)
        rc = SOUK_EIO;
    if (rc == SOUK_OK)
        rc = store_outbox_transition(st, key, STORE_OUTBOX_OFFERED, STORE_OUTBOX_QUEUED, &ch, NULL);
    return rc == SOUK_OK ? 0 : -1;
}

int main(int argc, char **argv)
{
    int procs = argc > 1 ? atoi(argv[1]) : 50;
    int turns = argc > 2 ? atoi(argv[2]) : 200;
    const char *backend = argc > 3 ? argv[3] : "sqlite";
    char dir[] = "/tmp/skstore-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    store_t *st;
    char err[256];
    if (store_create(backend, dir, err, sizeof err) != SOUK_OK
        || store_open(backend, dir, NULL, &st, err, sizeof err) != SOUK_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    store_close(&st);
    bool batched = !getenv("BENCH_UNBATCHED");
    size_t n = (size_t)procs * (size_t)turns;
    int64_t *lat = mmap(NULL, n * sizeof *lat, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                        -1, 0);
    store_ops_t *ops = mmap(NULL, (size_t)procs * sizeof *ops, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int64_t t0 = s_now_ns();
    for (int p = 0; p < procs; p++) {
        if (fork() != 0)
            continue;
        store_t *mine;
        if (store_open(backend, dir, NULL, &mine, err, sizeof err) != SOUK_OK)
            _exit(1);
        char waid[32];
        snprintf(waid, sizeof waid, "1555%07d", p);
        for (int i = 0; i < turns; i++) {
            int64_t a = s_now_ns();
            if (s_turn(mine, waid, p, i, batched) != 0)
                _exit(2);
            lat[(size_t)p * (size_t)turns + (size_t)i] = s_now_ns() - a;
        }
        store_ops(mine, &ops[p]);
        store_close(&mine);
        _exit(0);
    }
    int failed = 0, status;
    while (wait(&status) > 0)
        failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    double secs = (double)(s_now_ns() - t0) / 1e9;
    qsort(lat, n, sizeof *lat, s_cmp);
    printf("%s store turns (7 writes, %s): %d processes x %d turns: %.0f turns/s; one turn p50 %.2f ms, "
           "p99 %.2f ms, p99.9 %.2f ms, max %.2f ms; %d failed\n",
           backend, batched ? "in 3 batches" : "unbatched", procs, turns, (double)n / secs, lat[n / 2] / 1e6, lat[(size_t)(n * 0.99)] / 1e6,
           lat[(size_t)(n * 0.999)] / 1e6, lat[n - 1] / 1e6, failed);
    store_ops_t all = { 0 };
    for (int p = 0; p < procs; p++) {
        all.requests += ops[p].requests;
        all.reads += ops[p].reads;
        all.writes += ops[p].writes;
        all.retries += ops[p].retries;
    }
    if (all.requests)
        printf("  per turn: %.2f requests = %.2f reads + %.2f writes (%llu retries in all)\n",
               (double)all.requests / (double)n, (double)all.reads / (double)n,
               (double)all.writes / (double)n, (unsigned long long)all.retries);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 && !failed ? 0 : 1;
}
