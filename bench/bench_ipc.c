/* Request/reply round trip between two actor processes over ipc with a
 * ~200-byte msgpack message (issue 2: p50 under 50 µs).
 *
 * Like two actors: separate processes (forked before either creates a
 * ZeroMQ context), a DEALER with an identity connected to a ROUTER, every
 * message encoded and decoded with the bus codec (souk_msg_send/recv).
 * The figure depends on how fast an idle CPU wakes up: on a KVM guest that
 * is the cpuidle haltpoll setting, which the last line reports.
 * Usage: bench_ipc [ROUND_TRIPS]   (default 100000) */
#include "souk/error.h"
#include "souk/proto.h"

#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The first line of a sysfs file, or "-" where there is none. */
static void s_sysfs(const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "-");
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (fgets(out, (int)cap, f))
        out[strcspn(out, "\n")] = '\0';
    fclose(f);
}

static int s_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The echoing side: answers every TOOL_CALL with a TOOL_RESULT. */
static int s_server(const char *ep)
{
    zsys_handler_set(NULL);
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    zsock_set_router_mandatory(router, 1);
    if (zsock_bind(router, "%s", ep) < 0)
        return 1;
    for (;;) {
        unsigned char id[64];
        size_t idlen = sizeof id;
        souk_msg_t m;
        if (souk_msg_recv(router, id, &idlen, &m, 0, NULL, 0) != SOUK_OK)
            break;
        bool stop = m.type != SOUK_MSG_TOOL_CALL;
        if (!stop) {
            souk_msg_t r = { .type = SOUK_MSG_TOOL_RESULT };
            r.tool_result.call_id = m.tool_call.call_id;
            r.tool_result.ok = true;
            r.tool_result.result = m.tool_call.args;
            r.tool_result.error = "";
            souk_msg_send(router, id, idlen, &r, 0);
        }
        souk_msg_clear(&m);
        if (stop)
            break;
    }
    zsock_destroy(&router);
    return 0;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100000;
    char dir[] = "/tmp/skbench-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char ep[128];
    snprintf(ep, sizeof ep, "ipc://%s/rt", dir);
    pid_t pid = fork();
    if (pid == 0)
        _exit(s_server(ep));

    zsys_handler_set(NULL);
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    zsock_set_identity(dealer, "bench");
    zsock_connect(dealer, "%s", ep);
    souk_msg_t call = { .type = SOUK_MSG_TOOL_CALL };
    call.tool_call.call_id = "c-000001";
    call.tool_call.waid = "15550001234";
    call.tool_call.tool = "search_products";
    call.tool_call.args = "{\"query\":\"running shoes for trail and road\",\"limit\":5,"
                          "\"filters\":{\"in_stock\":true,\"max_price\":120}}";
    call.tool_call.idem_key = "SM0123456789abcdef0123456789abcd:1";
    call.tool_call.deadline_ms = 1700000000000ull;
    char *frame;
    size_t frame_len;
    souk_msg_encode(&call, &frame, &frame_len);
    free(frame);

    int64_t *rtt = calloc((size_t)n, sizeof *rtt);
    int warm = n / 10;
    for (int i = -warm; i < n; i++) {
        int64_t t0 = s_now_ns();
        souk_msg_send(dealer, NULL, 0, &call, 0);
        souk_msg_t r;
        if (souk_msg_recv(dealer, NULL, NULL, &r, 0, NULL, 0) != SOUK_OK)
            return 1;
        souk_msg_clear(&r);
        if (i >= 0)
            rtt[i] = s_now_ns() - t0;
    }
    qsort(rtt, (size_t)n, sizeof *rtt, s_cmp);
    printf("ipc round trip, %zu-byte msgpack frame, %d round trips: p50 %.1f us, p99 %.1f us, "
           "p99.9 %.1f us\n", frame_len, n, rtt[n / 2] / 1e3, rtt[(int)(n * 0.99)] / 1e3,
           rtt[(int)(n * 0.999)] / 1e3);
    char driver[64], poll_ns[64];
    s_sysfs("/sys/devices/system/cpu/cpuidle/current_driver", driver, sizeof driver);
    s_sysfs("/sys/module/haltpoll/parameters/guest_halt_poll_ns", poll_ns, sizeof poll_ns);
    printf("cpuidle driver %s, guest_halt_poll_ns %s (0: an idle vCPU halts at once, and waking "
           "it costs a hypervisor round trip)\n", driver, poll_ns);

    souk_msg_t stop = { .type = SOUK_MSG_STATUS_REQ };
    souk_msg_send(dealer, NULL, 0, &stop, 0);
    waitpid(pid, NULL, 0);
    zsock_destroy(&dealer);
    free(rtt);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
