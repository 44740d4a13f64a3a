/* Supervisor test harness: one real `souk serve` per test in its own data
 * folder (/tmp/sk-XXXXXX), talked to only through the public contracts —
 * the control endpoint (STATUS_REQ, SPAWN_SESSION, EVENT), the events
 * endpoint and signals. The test process is a child subreaper, so anything
 * souk leaves behind is re-parented to it and can be counted.
 *
 * Functions assert nothing; they return what happened. */
#ifndef SOUK_TEST_SUP_HARNESS_H
#define SOUK_TEST_SUP_HARNESS_H

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "souk/proto.h"

typedef struct {
    char dir[32];      /* /tmp/sk-XXXXXX */
    char log[64];      /* dir/serve.log */
    char control[128]; /* endpoints */
    char events[128];
    pid_t pid;         /* souk serve; 0 once reaped */
    int status;        /* its wait status once reaped */
    zsock_t *sub;      /* SUB on events, connected before souk starts */
    zsock_t *ctl;      /* DEALER on control */
    zlistx_t *backlog; /* events received but not yet waited for */
} sh_t;

/* Makes the data folder and the environment (SOUK_DATA, a free SOUK_PORT,
 * SOUK_LISTEN=lo, TWILIO_AUTH_TOKEN, plus `env`: "K=V" strings, NULL
 * terminated, may be NULL) and subscribes to the events endpoint. */
int sh_init(sh_t *h, const char *const *env);
/* Starts souk serve; with `wait_ready`, waits (20 s) until every actor is
 * ready and the events subscription is live. Returns 0 or -1. */
int sh_start(sh_t *h, bool wait_ready);
/* Kills what is left, reaps, prints the log when `show_log`, removes the folder. */
void sh_fini(sh_t *h, bool show_log);

/* The status document (caller decrefs), or NULL. */
json_t *sh_status(sh_t *h);
/* The row of actor `name` in `status` (borrowed), or NULL. */
json_t *sh_actor(json_t *status, const char *name);
/* pid of actor `name` from a fresh status, or 0. */
pid_t sh_pid(sh_t *h, const char *name);

/* Sends a message on the control DEALER. */
int sh_send(sh_t *h, const souk_msg_t *m);
int sh_spawn_session(sh_t *h, const char *waid);
/* Round trip through the supervisor and the events PUB: returns once a
 * marker event sent over control comes back (the subscription is live and
 * everything sent before has been handled). Events received until then are
 * dropped: the sync is a barrier between steps of a test. */
int sh_sync(sh_t *h);

/* Waits for an event of `kind` from actor `name` (NULL: any), taking the
 * oldest such event received since the last sync, so waits may come in any
 * order. Returns 0 with *out filled (caller souk_msg_clear; out may be
 * NULL), -1 on time-out. */
int sh_wait_event(sh_t *h, const char *kind, const char *name, int timeout_ms, souk_msg_t *out);

/* Waits for souk serve to exit; returns its exit code (128+N for a signal),
 * or -1 on time-out. */
int sh_wait_exit(sh_t *h, int timeout_ms);
/* Processes still re-parented to the test after souk serve is gone (waits
 * up to timeout_ms for them to disappear). */
int sh_orphans(int timeout_ms);

/* Runs `souk ARGS...` (NULL-terminated) with the test's environment; returns
 * the exit code, stdout in *out (caller frees; may be NULL). */
int sh_run(char **out, const char *arg, ...) __attribute__((sentinel));

/* Milliseconds on the monotonic clock. */
int64_t sh_now_ms(void);

#endif
