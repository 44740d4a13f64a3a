/* The supervisor's parts, shared by the files of supervisor/ and nothing else.
 *
 *   tree.c        the supervision tree on one screen: child specs, policy numbers
 *   policy.c      restart arithmetic without side effects: backoff, windows, verdicts
 *   children.c    one child's life: fork + exec, stop, exit, restart, liveness
 *   sessions.c    the dynamic session group: spawn on request, cap, quarantine
 *   control.c     the control ROUTER and the events PUB: messages in, status and events out
 *   notify.c      the systemd notify protocol
 *   metrics.c     the actors' metrics added up, for the gateway's GET /metrics
 *   supervisor.c  supervisor_main: signals, start-up and shut-down order, the poll loop
 *
 * Everything runs on the supervisor's one thread; only this folder forks. */
#ifndef SOUK_SUPERVISOR_H
#define SOUK_SUPERVISOR_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "souk/config.h"
#include "souk/metrics.h"
#include "souk/proto.h"

#define SUP_SPECS_MAX 72               /* sender + up to 64 tools + group + gateway */
#define SUP_GATEWAY "gateway"          /* the gateway's name: SESSION_EXIT and READINESS go there */
#define SUP_SESSION_PREFIX "s-"        /* a session actor is named s-<waid> */
/* Sessions are many and mostly idle. glibc's per-thread cache of freed
 * chunks (tcache: up to 7 of each small size) keeps heap pages busy that a
 * hibernating session would otherwise give back: ~100 KiB of its ~1 MiB
 * (docs/BENCHMARKS.md). Its speed is worth nothing to an idle process. */
#define SUP_SESSION_TUNABLES "glibc.malloc.tcache_count=0"

/* ---- tree.c: what to run ------------------------------------------------- */

typedef enum {
    SUP_PERMANENT, /* always restarted */
    SUP_TRANSIENT, /* restarted only after an abnormal exit (non-zero or a signal) */
    SUP_TEMPORARY, /* never restarted */
} sup_restart_t;

typedef struct {
    char name[SOUK_CAP_NAME + 1]; /* a group: its members are named <prefix><arg> */
    char role[SOUK_CAP_NAME + 1];
    char arg[24];                 /* role argument (pool index), "" for none */
    sup_restart_t restart;
    int64_t shutdown_ms;          /* STOP to SIGKILL; STOP carries this less the grace as drain */
    bool group;                   /* dynamic: members started on request (sessions) */
    const char *tunables;         /* glibc tunables this role runs with (GLIBC_TUNABLES), or NULL */
} sup_spec_t;

typedef struct {
    sup_spec_t specs[SUP_SPECS_MAX]; /* start order; stop order is the reverse */
    size_t nspecs;
    int64_t sessions_max;
    int64_t start_timeout_ms;    /* fork to READY; longer is a failed start */
    int64_t heartbeat_ms;
    int64_t hung_after_ms;       /* silent this long: hung */
    int64_t stop_grace_ms;       /* SIGKILL this long after STOP's drain; a second signal's grace */
    int64_t backoff_base_ms;     /* second restart's delay; the first is immediate */
    int64_t backoff_cap_ms;
    int64_t backoff_reset_ms;    /* up this long: the next crash restarts immediately again */
    int64_t intensity_max;       /* more restarts of one child than this ... */
    int64_t intensity_window_ms; /* ... within this window: escalate */
    int64_t quarantine_crashes;  /* more crashes of one user's session in the window ... */
    int64_t quarantine_ms;       /* ... quarantine the user this long */
} sup_tree_t;

/* Fills `tree` from the configuration. */
void sup_tree_init(sup_tree_t *tree, const souk_config_t *cfg);
/* The group spec (sessions), or NULL. */
const sup_spec_t *sup_tree_group(const sup_tree_t *tree);
/* `env` (NULL-terminated) with `tunables` ("name=value:...") merged into
 * GLIBC_TUNABLES; a tunable the operator already set there keeps the
 * operator's value. One allocation, for execve: the caller frees it; NULL
 * when out of memory. */
char **sup_env_tuned(char *const *env, const char *tunables);
const char *sup_restart_name(sup_restart_t restart);

/* ---- policy.c: restart arithmetic ---------------------------------------- */

/* The times of the last max+1 restarts (or crashes) of one child. */
typedef struct {
    int64_t *at;
    int64_t cap;
    int64_t n;
    int64_t head;
} sup_window_t;

int sup_window_init(sup_window_t *w, int64_t max);
void sup_window_clear(sup_window_t *w);
/* Records one at `now`; returns how many fall within the last `window_ms`. */
int64_t sup_window_add(sup_window_t *w, int64_t now, int64_t window_ms);
/* How many fall within the last `window_ms` (0 when the window is empty). */
int64_t sup_window_count(const sup_window_t *w, int64_t now, int64_t window_ms);

/* The delay after `delay`: 0, then base, then doubling up to the cap. */
int64_t sup_backoff_next(const sup_tree_t *tree, int64_t delay);

typedef enum {
    SUP_EXIT_FINAL,   /* leave it down */
    SUP_EXIT_RESTART, /* restart it (after the intensity check) */
    SUP_EXIT_CONFIG,  /* configuration error: stop everything */
} sup_verdict_t;

/* What to do after a child exited with `code` or died of `sig` (0 if it
 * exited); `stop_requested` when the supervisor asked it to stop. */
sup_verdict_t sup_exit_verdict(sup_restart_t restart, int code, int sig, bool stop_requested);

/* "exit 0", "signal 9". Returns out. */
const char *sup_exit_text(int code, int sig, char *out, size_t len);

/* Copies an actor name for a log line, masking the phone number in a
 * session's name: "s-15550100200" -> "s-155******00". Returns out. */
const char *sup_mask_name(const char *name, char *out, size_t len);
/* Masks a bare WaId the same way. */
const char *sup_mask_waid(const char *waid, char *out, size_t len);

/* Whether `waid` is acceptable as a session key (1..48 of [0-9A-Za-z_-]). */
bool sup_waid_valid(const char *waid);

/* ---- notify.c: systemd --------------------------------------------------- */

typedef struct {
    int fd;                     /* -1 when NOTIFY_SOCKET is not set */
    struct sockaddr_un addr;
    socklen_t addrlen;
    int64_t watchdog_ms;        /* half of WATCHDOG_USEC, 0 for no watchdog */
} sup_notify_t;

/* Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID, then removes them from
 * the environment so the actors never talk to systemd. */
void sup_notify_init(sup_notify_t *n);
/* Sends one datagram ("READY=1", "STATUS=..."); a no-op without a socket. */
void sup_notify(sup_notify_t *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sup_notify_close(sup_notify_t *n);

/* ---- the running supervisor ---------------------------------------------- */

typedef enum {
    SUP_QUEUED,   /* in the start sequence, not forked yet (shown as "starting") */
    SUP_STARTING, /* forked, READY not yet received */
    SUP_READY,
    SUP_STOPPING, /* STOP (or SIGTERM) sent, waiting for the exit */
    SUP_BACKOFF,  /* exited, restart scheduled */
    SUP_HUNG,     /* killed for silence or a start timeout, waiting for the exit */
    SUP_EXITED,   /* down for good */
} sup_state_t;

const char *sup_state_name(sup_state_t state);

typedef struct {
    const sup_spec_t *spec;
    char name[SOUK_CAP_NAME + 1];
    char arg[SOUK_CAP_ID + 1];     /* the pool index or the waid */
    pid_t pid;                     /* 0 when no process */
    sup_state_t state;
    bool hello;                    /* the current process said HELLO */
    bool killed;                   /* SIGKILL sent to the current process */
    int64_t forked_ms, ready_ms, seen_ms, deadline_ms; /* monotonic; deadline 0 = none */
    int64_t forked_wall_ms, ready_wall_ms;
    int64_t forked_us;             /* for the spawn-to-ready figure */
    int64_t restarts;
    int64_t backoff_ms;            /* delay of the next restart */
    int64_t backoff_delay_ms;      /* delay of the pending restart (BACKOFF) */
    sup_window_t window;           /* recent restarts, for the intensity */
    bool exited_once;
    int last_code, last_signal;
    uint64_t handled, depth, idle_ms;
    int64_t heartbeat_ms;          /* when the last heartbeat came (monotonic) */
    bool respawn;                  /* session: asked for again while stopping */
    char pending[SOUK_CAP_ID + 1]; /* session: a waid waiting for this one's slot */
    char *metrics;                 /* the current process's last metrics fragment, or NULL */
} sup_child_t;

typedef enum {
    SUP_PHASE_STARTING, /* starting the static children in order */
    SUP_PHASE_RUNNING,
    SUP_PHASE_STOPPING, /* stopping in reverse order */
    SUP_PHASE_DONE,
} sup_phase_t;

typedef struct {
    sup_window_t crashes;
    int64_t until_ms; /* quarantined until (monotonic), 0 if not */
} sup_budget_t;

typedef struct {
    souk_config_t *cfg;
    const char *exe;
    pid_t pid;
    sup_tree_t tree;
    sup_child_t *kids[SUP_SPECS_MAX]; /* one per spec, NULL for the group */
    char **envs[SUP_SPECS_MAX];       /* per spec: its environment when it has tunables, else NULL (environ) */
    zhashx_t *sessions;               /* name -> sup_child_t (owned) */
    zhashx_t *by_pid;                 /* "pid" -> sup_child_t */
    zhashx_t *budgets;                /* waid -> sup_budget_t (owned) */
    zsock_t *control;
    zsock_t *events;
    int sigfd;
    sup_notify_t notify;
    sup_phase_t phase;
    size_t cursor;                    /* next spec to start, or one past the spec being stopped */
    int exit_code;
    int signals;                      /* SIGTERM/SIGINT received */
    bool hurry;                       /* second signal: everything stops at once */
    int lockfd;
    bool all_ready;
    bool ready_notified;
    int64_t next_deadline_ms;         /* earliest child deadline (may be stale-early) */
    int64_t tick_at_ms;
    int64_t watchdog_at_ms;
    int64_t started_ms, started_wall_ms;
    souk_metrics_merge_t *retired;    /* counters of actor processes that exited */
} sup_t;

/* children.c */
sup_child_t *sup_child_new(const sup_spec_t *spec, const char *name, const char *arg,
                           const sup_tree_t *tree);
void sup_child_destroy(sup_child_t **self_p);
/* Forks and execs `souk actor ROLE NAME [ARG]`; the child is STARTING. */
int sup_child_start(sup_t *sup, sup_child_t *c);
/* Asks the child to drain and exit: STOP (SIGTERM when STOP cannot be
 * delivered), SIGKILL `shutdown_ms` later. */
void sup_child_stop(sup_t *sup, sup_child_t *c, const char *reason, int64_t shutdown_ms);
/* SIGKILL, once. */
void sup_child_kill(sup_child_t *c);
/* Applies the restart policy to a reaped child. */
void sup_child_exited(sup_t *sup, sup_child_t *c, int status);
/* HELLO, READY, HEARTBEAT from the child. */
void sup_child_message(sup_t *sup, sup_child_t *c, const souk_msg_t *m);
/* Deadlines and liveness; called from the loop's scans. */
void sup_child_check(sup_t *sup, sup_child_t *c, int64_t now);
void sup_child_set_deadline(sup_t *sup, sup_child_t *c, int64_t at);
/* Restarts `c` now or after its backoff. */
void sup_child_schedule_restart(sup_t *sup, sup_child_t *c);
sup_child_t *sup_child_find(sup_t *sup, const char *name);
sup_child_t *sup_child_by_pid(sup_t *sup, pid_t pid);

/* sessions.c */
int sup_sessions_init(sup_t *sup);
void sup_sessions_destroy(sup_t *sup);
void sup_session_request(sup_t *sup, const char *waid);
/* A session was reaped: budget, SESSION_EXIT, restart or removal. */
void sup_session_exited(sup_t *sup, sup_child_t *c, int code, int sig, bool stop_requested);
bool sup_session_quarantined(sup_t *sup, const char *waid, int64_t now);
/* Forgets budgets that no longer matter. */
void sup_sessions_purge(sup_t *sup, int64_t now);

/* control.c */
int sup_control_bind(sup_t *sup);
/* Handles every waiting control message (bounded, so signals stay prompt). */
void sup_control_drain(sup_t *sup);
/* Publishes a lifecycle event about `c` (NULL: the supervisor) and logs it.
 * `detail` is a short JSON document or "". */
void sup_event(sup_t *sup, const char *kind, const sup_child_t *c, int code, int sig,
               const char *detail);
/* Sends to the gateway; a failure (gateway absent) is logged, not fatal. */
int sup_send_gateway(sup_t *sup, const souk_msg_t *m);
void sup_send_session_exit(sup_t *sup, const char *waid, int code, int sig, bool quarantined);

/* metrics.c */
int sup_metrics_init(sup_t *sup);
void sup_metrics_destroy(sup_t *sup);
/* Keeps the fragment of c's latest heartbeat. */
void sup_metrics_heartbeat(sup_child_t *c, const char *fragment);
/* c's process is gone: its counters are kept, its gauges dropped. */
void sup_metrics_retire(sup_t *sup, sup_child_t *c);
/* Counts a lifecycle event (restarted, hung) for its role. */
void sup_metrics_event(const char *kind, const sup_child_t *c);
/* The whole exposition: every actor's fragment plus the supervisor's own
 * figures. Caller frees; NULL when out of memory. */
char *sup_metrics_render(sup_t *sup);

/* supervisor.c */
/* Re-evaluates "every permanent child is ready" and tells the gateway and
 * systemd when it changed (the gateway also when `force`). */
void sup_readiness_update(sup_t *sup, bool force);
/* Moves the start-up or shut-down sequence on after a state change. */
void sup_sequence_step(sup_t *sup);
/* Begins the orderly shut-down (or shortens it on a second call). */
void sup_shutdown(sup_t *sup, const char *reason, int exit_code);

#endif
