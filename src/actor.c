/* An actor's link to its supervisor; see include/souk/actor.h. */
#include "souk/actor.h"
#include "souk/endpoints.h"
#include "souk/error.h"
#include "souk/log.h"
#include "souk/metrics.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define MONITORS_MAX 8
#define METRICS_RESEND 10 /* an unchanged metrics fragment is sent again after this many heartbeats */
#define MONITOR_EVENTS                                                       \
    (ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CLOSED         \
     | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL \
     | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_BIND_FAILED)

typedef struct {
    zsock_t *pair;
    char label[32];
} monitor_t;

struct souk_actor {
    char name[SOUK_CAP_NAME + 1];
    char role[SOUK_CAP_NAME + 1];
    zsock_t *control;
    int sigfd;
    int64_t heartbeat_ms;
    monitor_t monitors[MONITORS_MAX];
    int nmonitors;
    souk_actor_handlers_t handlers;
    char *metrics_sent;        /* the last metrics fragment a heartbeat carried */
    int beats_unsent;          /* heartbeats since, that did not repeat it */
};

int64_t souk_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t souk_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int make_signal_fd(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

souk_actor_t *souk_actor_new(const char *name, const char *role, const souk_config_t *cfg)
{
    /* czmq would trap SIGINT/SIGTERM and swallow them; we want them on the
     * signal fd instead. */
    zsys_handler_set(NULL);
    zsys_set_linger(SOUK_LINGER_MS);
    souk_actor_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    snprintf(self->name, sizeof self->name, "%s", name);
    snprintf(self->role, sizeof self->role, "%s", role);
    self->heartbeat_ms = cfg->heartbeat_ms;
    self->sigfd = make_signal_fd();
    if (self->sigfd < 0) {
        SLOG_ERROR("actor.signalfd", "err=%d", errno);
        free(self);
        return NULL;
    }
    char ep[512];
    souk_endpoint(ep, sizeof ep, cfg->run_dir, SOUK_EP_CONTROL, 0);
    /* The identity must be set before connecting, or ROUTER assigns a
     * binary one and the supervisor cannot address us by name. */
    self->control = zsock_new(ZMQ_DEALER);
    if (self->control) {
        zsock_set_identity(self->control, self->name);
        zsock_set_sndhwm(self->control, SOUK_HWM_CONTROL);
        zsock_set_rcvhwm(self->control, SOUK_HWM_CONTROL);
        zsock_set_linger(self->control, SOUK_LINGER_MS);
    }
    if (!self->control || zsock_connect(self->control, "%s", ep) < 0) {
        SLOG_ERROR("actor.connect", "endpoint=%s", ep);
        souk_actor_destroy(&self);
        return NULL;
    }
    souk_msg_t hello = { .type = SOUK_MSG_HELLO };
    hello.hello.name = self->name;
    hello.hello.role = self->role;
    hello.hello.pid = (uint64_t)getpid();
    if (souk_msg_send(self->control, NULL, 0, &hello, 0) != SOUK_OK) {
        souk_actor_destroy(&self);
        return NULL;
    }
    return self;
}

void souk_actor_destroy(souk_actor_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    souk_actor_t *self = *self_p;
    for (int i = 0; i < self->nmonitors; i++)
        zsock_destroy(&self->monitors[i].pair);
    zsock_destroy(&self->control);
    if (self->sigfd >= 0)
        close(self->sigfd);
    free(self->metrics_sent);
    free(self);
    *self_p = NULL;
}

int souk_actor_ready(souk_actor_t *self)
{
    souk_msg_t m = { .type = SOUK_MSG_READY };
    m.ready.name = self->name;
    return souk_msg_send(self->control, NULL, 0, &m, 0);
}

int souk_actor_heartbeat(souk_actor_t *self, const souk_actor_stats_t *stats)
{
    souk_actor_stats_t zero = { 0 };
    if (!stats)
        stats = &zero;
    souk_msg_t m = { .type = SOUK_MSG_HEARTBEAT };
    m.heartbeat.name = self->name;
    m.heartbeat.handled = stats->handled;
    m.heartbeat.depth = stats->depth;
    m.heartbeat.idle_ms = stats->idle_ms;
    /* the process registry (souk/metrics.h), then the caller's own lines */
    char *fragment = souk_metrics_render();
    char *joined = NULL;
    if (fragment && stats->metrics && *stats->metrics
        && asprintf(&joined, "%s%s", fragment, stats->metrics) < 0)
        joined = NULL;
    m.heartbeat.metrics = joined ? joined
                        : fragment && *fragment ? fragment
                        : (char *)(stats->metrics ? stats->metrics : "");
    if (strlen(m.heartbeat.metrics) > SOUK_CAP_DOC)
        m.heartbeat.metrics = ""; /* a heartbeat must never fail for its metrics */
    /* Unchanged since the last one sent: "" (the supervisor keeps what it
     * has), so thousands of idle sessions cost no bytes; in full every
     * METRICS_RESEND heartbeats anyway, in case one was lost. */
    bool same = self->metrics_sent && strcmp(self->metrics_sent, m.heartbeat.metrics) == 0;
    const char *text = m.heartbeat.metrics;
    if (same && ++self->beats_unsent < METRICS_RESEND)
        m.heartbeat.metrics = "";
    int rc = souk_msg_send(self->control, NULL, 0, &m, ZMQ_DONTWAIT);
    if (rc == SOUK_OK && *m.heartbeat.metrics) {
        self->beats_unsent = 0;
        if (!same) {
            free(self->metrics_sent);
            self->metrics_sent = strdup(text);
        }
    }
    free(joined);
    free(fragment);
    return rc;
}

int souk_actor_event(souk_actor_t *self, const char *kind, const char *detail)
{
    souk_msg_t m = { .type = SOUK_MSG_EVENT };
    m.event.ts_ms = (uint64_t)souk_wall_ms();
    m.event.kind = (char *)kind;
    m.event.name = self->name;
    m.event.role = self->role;
    m.event.pid = (uint64_t)getpid();
    m.event.detail = (char *)(detail ? detail : "");
    return souk_msg_send(self->control, NULL, 0, &m, ZMQ_DONTWAIT);
}

int souk_actor_send(souk_actor_t *self, const souk_msg_t *msg)
{
    return souk_msg_send(self->control, NULL, 0, msg, ZMQ_DONTWAIT);
}

int souk_actor_monitor(souk_actor_t *self, zsock_t *sock, const char *label)
{
    if (self->nmonitors == MONITORS_MAX)
        return SOUK_ENOMEM;
    char ep[96];
    snprintf(ep, sizeof ep, "inproc://monitor-%d", self->nmonitors);
    if (zmq_socket_monitor(zsock_resolve(sock), ep, MONITOR_EVENTS) < 0)
        return SOUK_EIO;
    monitor_t *m = &self->monitors[self->nmonitors];
    m->pair = zsock_new_pair(NULL);
    if (!m->pair || zsock_connect(m->pair, "%s", ep) < 0) {
        zsock_destroy(&m->pair);
        return SOUK_EIO;
    }
    snprintf(m->label, sizeof m->label, "%s", label);
    self->nmonitors++;
    return SOUK_OK;
}

static const char *monitor_event_name(uint16_t ev)
{
    switch (ev) {
    case ZMQ_EVENT_CONNECTED: return "connected";
    case ZMQ_EVENT_DISCONNECTED: return "disconnected";
    case ZMQ_EVENT_CLOSED: return "closed";
    case ZMQ_EVENT_BIND_FAILED: return "bind_failed";
    default: return "handshake_failed";
    }
}

/* A monitor event is two frames: 6 bytes (event id, value), the endpoint. */
static void forward_monitor_event(souk_actor_t *self, monitor_t *m)
{
    zmsg_t *msg = zmsg_recv_nowait(m->pair);
    if (!msg)
        return;
    zframe_t *head = zmsg_first(msg);
    zframe_t *addr = zmsg_next(msg);
    if (head && zframe_size(head) >= 2) {
        uint16_t ev;
        memcpy(&ev, zframe_data(head), sizeof ev);
        char detail[512];
        char *endpoint = addr ? zframe_strdup(addr) : NULL;
        snprintf(detail, sizeof detail, "{\"socket\":\"%s\",\"event\":\"%s\",\"endpoint\":\"%s\"}",
                 m->label, monitor_event_name(ev), endpoint ? endpoint : "");
        free(endpoint);
        souk_actor_event(self, "socket", detail);
    }
    zmsg_destroy(&msg);
}

void souk_actor_pump_monitors(souk_actor_t *self)
{
    for (int i = 0; i < self->nmonitors; i++) {
        while (zsock_events(self->monitors[i].pair) & ZMQ_POLLIN)
            forward_monitor_event(self, &self->monitors[i]);
    }
}

zsock_t *souk_actor_control(souk_actor_t *self) { return self->control; }
int souk_actor_signal_fd(souk_actor_t *self) { return self->sigfd; }
const char *souk_actor_name(const souk_actor_t *self) { return self->name; }

int souk_actor_take_signal(souk_actor_t *self)
{
    struct signalfd_siginfo si;
    if (read(self->sigfd, &si, sizeof si) != (ssize_t)sizeof si)
        return 0;
    return (int)si.ssi_signo;
}

/* ---- zloop wiring ----------------------------------------------------- */

static int on_control(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    souk_actor_t *self = arg;
    char err[128];
    souk_msg_t m;
    int rc = souk_msg_recv(sock, NULL, NULL, &m, ZMQ_DONTWAIT, err, sizeof err);
    if (rc == SOUK_EBUSY)
        return 0;
    if (rc != SOUK_OK) {
        SLOG_WARN("control.bad_message", "err=%s reason=\"%s\"", souk_errname(rc), err);
        return 0;
    }
    if (m.type == SOUK_MSG_STOP) {
        rc = self->handlers.on_stop(m.stop.reason, m.stop.drain_ms, self->handlers.arg);
        souk_msg_clear(&m);
        return rc;
    }
    if (self->handlers.on_control)
        return self->handlers.on_control(&m, self->handlers.arg);
    souk_msg_clear(&m);
    return 0;
}

static int on_signal(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop; (void)item;
    souk_actor_t *self = arg;
    int sig = souk_actor_take_signal(self);
    if (!sig)
        return 0;
    return self->handlers.on_stop(sig == SIGINT ? "SIGINT" : "SIGTERM", 0, self->handlers.arg);
}

static int on_heartbeat(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop; (void)timer_id;
    souk_actor_t *self = arg;
    souk_actor_stats_t st = { 0 };
    if (self->handlers.stats)
        self->handlers.stats(&st, self->handlers.arg);
    souk_actor_heartbeat(self, &st);
    return 0;
}

static int on_monitor(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    souk_actor_t *self = arg;
    for (int i = 0; i < self->nmonitors; i++)
        if (self->monitors[i].pair == sock)
            forward_monitor_event(self, &self->monitors[i]);
    return 0;
}

int souk_actor_attach(souk_actor_t *self, zloop_t *loop, const souk_actor_handlers_t *h)
{
    self->handlers = *h;
    zmq_pollitem_t sig = { .fd = self->sigfd, .events = ZMQ_POLLIN };
    if (zloop_reader(loop, self->control, on_control, self) < 0
        || zloop_poller(loop, &sig, on_signal, self) < 0
        || zloop_timer(loop, (size_t)self->heartbeat_ms, 0, on_heartbeat, self) < 0)
        return SOUK_EIO;
    for (int i = 0; i < self->nmonitors; i++)
        if (zloop_reader(loop, self->monitors[i].pair, on_monitor, self) < 0)
            return SOUK_EIO;
    /* a handler error must not end the loop */
    zloop_reader_set_tolerant(loop, self->control);
    return SOUK_OK;
}
