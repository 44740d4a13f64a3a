/* `souk events [--count N]`: subscribes to the supervisor's events endpoint
 * and prints every EVENT as one JSON line
 *   {"ts_ms":…,"kind":…,"name":…,"role":…,"pid":…,"code":…,"signal":…,"detail":…}
 * until SIGINT or SIGTERM (or N events). `detail` is the event's detail text
 * (often a small JSON document) as a string. */
#include "cli.h"
#include "souk/endpoints.h"
#include "souk/error.h"
#include "souk/proto.h"

#include <czmq.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

static void s_print(const souk_event_t *e)
{
    json_t *line = json_pack("{sIsssssssIsIsIss}", "ts_ms", (json_int_t)e->ts_ms, "kind", e->kind,
                             "name", e->name, "role", e->role, "pid", (json_int_t)e->pid, "code",
                             (json_int_t)e->code, "signal", (json_int_t)e->signal, "detail",
                             e->detail);
    char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
    if (text) {
        printf("%s\n", text);
        fflush(stdout);
    }
    free(text);
    json_decref(line);
}

static int s_signal_fd(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -1;
    return signalfd(-1, &set, SFD_CLOEXEC);
}

int cli_events(souk_config_t *cfg, int argc, char **argv)
{
    long long count = 0; /* 0: until interrupted */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--count") == 0 && i + 1 < argc && atoll(argv[i + 1]) > 0) {
            count = atoll(argv[++i]);
        } else {
            fprintf(stderr, "usage: souk events [--count N]\n");
            return 2;
        }
    }
    char ep[512];
    souk_endpoint(ep, sizeof ep, cfg->run_dir, SOUK_EP_EVENTS, 0);
    if (!cli_endpoint_alive(ep)) {
        fprintf(stderr, "souk is not running (nothing listens on %s)\n", ep);
        return 3;
    }
    int sigfd = s_signal_fd();
    zsys_handler_set(NULL);
    zsock_t *sub = zsock_new(ZMQ_SUB);
    if (sigfd < 0 || !sub || zsock_connect(sub, "%s", ep) < 0) {
        fprintf(stderr, "souk events: cannot subscribe to %s\n", ep);
        zsock_destroy(&sub);
        return 1;
    }
    zsock_set_subscribe(sub, "");
    zmq_pollitem_t items[] = {
        { zsock_resolve(sub), 0, ZMQ_POLLIN, 0 },
        { NULL, sigfd, ZMQ_POLLIN, 0 },
    };
    long long seen = 0;
    while ((!count || seen < count) && zmq_poll(items, 2, -1) >= 0 && !items[1].revents) {
        souk_msg_t m;
        char err[128];
        int rc = souk_msg_recv(sub, NULL, NULL, &m, ZMQ_DONTWAIT, err, sizeof err);
        if (rc == SOUK_OK && m.type == SOUK_MSG_EVENT) {
            s_print(&m.event);
            seen++;
        } else if (rc != SOUK_OK && rc != SOUK_EBUSY) {
            fprintf(stderr, "souk events: skipped a malformed event: %s\n", err);
        }
        souk_msg_clear(&m);
    }
    zsock_destroy(&sub);
    close(sigfd);
    return 0;
}
