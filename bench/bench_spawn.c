/* Actor spawn and restart figures, against a real `souk serve`.
 *
 *   spawn to ready  SPAWN_SESSION for a new user, until the session actor
 *                   says READY: as the supervisor measures it (fork to READY,
 *                   the "ready" event's spawn_to_ready_us) and as a client
 *                   sees it (request sent to "ready" event received); each
 *                   session is then stopped (SIGTERM) so one lives at a time.
 *   restart         kill -9 of an actor until its replacement is READY, the
 *                   first restart of each (no backoff yet): a fresh session
 *                   per round, and tool-0 with its backoff allowed to reset.
 *
 * usage: SOUK_BIN=build/souk build/bench_spawn [SPAWNS [KILLS [TOOL_KILLS]]]
 * (defaults 200, 100, 20) */
#include "../tests/sup_harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int s_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void s_report(const char *what, int64_t *us, int n)
{
    if (n == 0) {
        printf("%-44s no samples\n", what);
        return;
    }
    qsort(us, (size_t)n, sizeof *us, s_cmp);
    printf("%-44s n=%-4d p50 %6.2f ms  p90 %6.2f ms  p99 %6.2f ms  max %6.2f ms\n", what, n,
           us[n / 2] / 1000.0, us[n * 9 / 10] / 1000.0, us[n * 99 / 100] / 1000.0,
           us[n - 1] / 1000.0);
}

static int64_t s_detail_us(const souk_msg_t *ev)
{
    const char *p = strstr(ev->event.detail, "\"spawn_to_ready_us\":");
    return p ? atoll(p + strlen("\"spawn_to_ready_us\":")) : 0;
}

/* Waits for a "ready" of `name` from another pid than `old`. */
static int s_wait_ready(sh_t *h, const char *name, pid_t old, souk_msg_t *ev)
{
    while (sh_wait_event(h, "ready", name, 15000, ev) == 0) {
        if ((pid_t)ev->event.pid != old)
            return 0;
        souk_msg_clear(ev);
    }
    return -1;
}

static void s_bench_spawn(sh_t *h, int n)
{
    int64_t *sup = calloc((size_t)n, sizeof *sup), *client = calloc((size_t)n, sizeof *client);
    int got = 0;
    for (int i = 0; i < n; i++) {
        char waid[32], name[40];
        snprintf(waid, sizeof waid, "1555%07d", i);
        snprintf(name, sizeof name, "s-%s", waid);
        int64_t t0 = s_now_us();
        souk_msg_t ev;
        if (sh_spawn_session(h, waid) != 0 || s_wait_ready(h, name, 0, &ev) != 0) {
            fprintf(stderr, "spawn %d: no ready event\n", i);
            break;
        }
        client[got] = s_now_us() - t0;
        sup[got++] = s_detail_us(&ev);
        pid_t pid = (pid_t)ev.event.pid;
        souk_msg_clear(&ev);
        kill(pid, SIGTERM);
        sh_wait_event(h, "exited", name, 15000, NULL);
    }
    s_report("spawn to ready (supervisor: fork..READY)", sup, got);
    s_report("spawn to ready (client: request..event)", client, got);
    free(sup);
    free(client);
}

static void s_bench_session_restart(sh_t *h, int n)
{
    int64_t *us = calloc((size_t)n, sizeof *us);
    int got = 0;
    for (int i = 0; i < n; i++) {
        char waid[32], name[40];
        snprintf(waid, sizeof waid, "1666%07d", i);
        snprintf(name, sizeof name, "s-%s", waid);
        souk_msg_t ev;
        if (sh_spawn_session(h, waid) != 0 || s_wait_ready(h, name, 0, &ev) != 0)
            break;
        pid_t old = (pid_t)ev.event.pid;
        souk_msg_clear(&ev);
        int64_t t0 = s_now_us();
        kill(old, SIGKILL);
        if (s_wait_ready(h, name, old, &ev) != 0)
            break;
        us[got++] = s_now_us() - t0;
        pid_t pid = (pid_t)ev.event.pid;
        souk_msg_clear(&ev);
        kill(pid, SIGTERM);
        sh_wait_event(h, "exited", name, 15000, NULL);
        sh_wait_event(h, "exited", name, 15000, NULL);
    }
    s_report("restart after kill -9 (session, first)", us, got);
    free(us);
}

static void s_bench_tool_restart(sh_t *h, int n)
{
    int64_t *us = calloc((size_t)n, sizeof *us);
    int got = 0;
    for (int i = 0; i < n; i++) {
        pid_t old = sh_pid(h, "tool-0");
        sh_sync(h);
        int64_t t0 = s_now_us();
        kill(old, SIGKILL);
        souk_msg_t ev;
        if (s_wait_ready(h, "tool-0", old, &ev) != 0)
            break;
        us[got++] = s_now_us() - t0;
        souk_msg_clear(&ev);
        usleep(1100 * 1000); /* up a whole (1 s) window: the next restart is a first again */
    }
    s_report("restart after kill -9 (tool-0, first)", us, got);
    free(us);
}

int main(int argc, char **argv)
{
    int spawns = argc > 1 ? atoi(argv[1]) : 200;
    int kills = argc > 2 ? atoi(argv[2]) : 100;
    int tool_kills = argc > 3 ? atoi(argv[3]) : 20;
    static const char *const env[] = { "SOUK_RESTART_WINDOW_S=1", "SOUK_RESTART_MAX=1000",
                                       "SOUK_QUARANTINE_CRASHES=1000", "SOUK_LOG_LEVEL=warn",
                                       NULL };
    sh_t h;
    if (sh_init(&h, env) != 0 || sh_start(&h, true) != 0) {
        fprintf(stderr, "souk serve did not start\n");
        sh_fini(&h, true);
        return 1;
    }
    s_bench_spawn(&h, spawns);
    s_bench_session_restart(&h, kills);
    s_bench_tool_restart(&h, tool_kills);
    kill(h.pid, SIGTERM);
    int code = sh_wait_exit(&h, 20000);
    sh_fini(&h, code != 0);
    return code == 0 ? 0 : 1;
}
