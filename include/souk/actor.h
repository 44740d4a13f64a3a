/* What every actor process shares: its link to the supervisor.
 *
 * An actor is `souk actor ROLE NAME …`, exec'd by the supervisor. It creates
 * its souk_actor_t first (which says HELLO on the control endpoint), makes
 * its own binds and connects, then calls souk_actor_ready(): the supervisor
 * counts it as started only then. From there it heartbeats every
 * SOUK_HEARTBEAT_MS; one silent for three intervals is killed as hung.
 *
 * SIGTERM and SIGINT are blocked and delivered through a signalfd, so the
 * actor's one poll loop sees them like any other input and can drain.
 *
 * Two ways to run the loop: actors built on czmq's zloop call
 * souk_actor_attach() and get control messages, signals, heartbeats and
 * socket-monitor events wired in; the gateway, which runs libwebsockets'
 * loop, uses the lower-level calls (control socket, signal fd, heartbeat). */
#ifndef SOUK_ACTOR_H
#define SOUK_ACTOR_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "souk/config.h"
#include "souk/proto.h"

typedef struct souk_actor souk_actor_t;

typedef struct {
    uint64_t handled; /* messages handled so far */
    uint64_t depth;   /* work waiting (mailbox, queue) */
    uint64_t idle_ms; /* since the last message handled; for LRU reaping */
    const char *metrics; /* more samples after the process registry's (souk/metrics.h), or NULL */
} souk_actor_stats_t;

/* Handlers return 0 to go on, or -1 to end zloop_start() (as any zloop
 * handler may). */
typedef struct {
    /* A control message other than STOP; the message is the callee's to
     * clear. May be NULL. */
    int (*on_control)(souk_msg_t *msg, void *arg);
    /* STOP from the supervisor, SIGTERM or SIGINT: begin draining, or return
     * -1 to end the loop now. `drain_ms` is how long the supervisor will
     * wait (0 for a signal). Required. */
    int (*on_stop)(const char *reason, uint64_t drain_ms, void *arg);
    /* Fills the counters for the next heartbeat. May be NULL. */
    void (*stats)(souk_actor_stats_t *stats, void *arg);
    void *arg;
} souk_actor_handlers_t;

/* Sets up signals (czmq's own handlers off), connects to the supervisor's
 * control endpoint as `name` and says HELLO. Returns NULL (logged) on
 * failure. The caller owns the actor (souk_actor_destroy). */
souk_actor_t *souk_actor_new(const char *name, const char *role, const souk_config_t *cfg);

/* Closes the control link (a last heartbeat is not sent) and nulls *self_p. */
void souk_actor_destroy(souk_actor_t **self_p);

/* Tells the supervisor every bind and connect is done. */
int souk_actor_ready(souk_actor_t *self);

/* Sends a heartbeat with `stats` (NULL: zeros) and the samples of the
 * process's metrics registry (souk/metrics.h); an unchanged set of samples
 * travels as "" except every tenth heartbeat. */
int souk_actor_heartbeat(souk_actor_t *self, const souk_actor_stats_t *stats);

/* Publishes a lifecycle or domain event through the supervisor's events
 * endpoint (kind e.g. "outbound", detail a short JSON document or ""). */
int souk_actor_event(souk_actor_t *self, const char *kind, const char *detail);

/* Sends any message to the supervisor (e.g. SPAWN_SESSION). */
int souk_actor_send(souk_actor_t *self, const souk_msg_t *msg);

/* Watches a socket with a ZeroMQ socket monitor; its connect, disconnect
 * and handshake-failure events go to the events stream as kind "socket"
 * with `label` in the detail. Needs souk_actor_attach (or _pump_monitors). */
int souk_actor_monitor(souk_actor_t *self, zsock_t *sock, const char *label);

/* Wires control, signals, heartbeats and monitors into `loop`; call it
 * after the souk_actor_monitor() calls. */
int souk_actor_attach(souk_actor_t *self, zloop_t *loop, const souk_actor_handlers_t *h);

/* Lower level, for loops that are not zloop: */
zsock_t *souk_actor_control(souk_actor_t *self);
int souk_actor_signal_fd(souk_actor_t *self);
/* Reads one pending signal from the signal fd; returns its number or 0. */
int souk_actor_take_signal(souk_actor_t *self);
/* Forwards pending socket-monitor events; never blocks. */
void souk_actor_pump_monitors(souk_actor_t *self);
const char *souk_actor_name(const souk_actor_t *self);

/* Milliseconds on the monotonic clock. */
int64_t souk_now_ms(void);
/* Milliseconds since the epoch. */
int64_t souk_wall_ms(void);

#endif
