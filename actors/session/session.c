/* Session actor: one process per live WhatsApp user, bound for life to the
 * WaId it was started with (argv, from the signed webhook that made the
 * gateway ask for it). It persists the user's messages before acknowledging
 * them, answers each burst of messages as one turn, and hands the answer to
 * the gateway as an offer the gateway accepts inline or sends through the
 * outbox. Everything it owes is in the store first, so a crash is resumed
 * from there at the next start: each accepted message gets one answer.
 *
 * The protocol with the gateway is docs/ARCHITECTURE.md, "The life of a
 * message". This file is the actor's shape: sockets, the one zloop, the
 * bus dispatch, the one timer, idle exit and the drain on STOP. */
#include "session.h"

#include "souk/endpoints.h"
#include "souk/error.h"
#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/roles.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* SQLite page cache of a session's store handle: a session reads and
 * writes a handful of rows per turn, and 10,000 idle sessions must fit. */
#define SESSION_STORE_CACHE_KIB 64
/* Hibernation: a session quiet for SOUK_SESSION_HIBERNATE_MS gives back
 * what only a turn needs (single node): its store handle and its links to
 * the tool actors and the sender (s_release). An idle user then costs no
 * SQLite cache, statements or file locks (every open handle holds locks
 * that each other process's lock calls walk past: thousands of idle
 * handles slowed every commit) and no ZeroMQ pipes; the next message
 * brings them back (session_wake). The heap is trimmed this long
 * after, once libzmq's reaper thread has freed the closed links' pipes. */
#define SESSION_TRIM_AFTER_MS 100
/* stack kept below the frame that discards the rest, for what it calls */
#define SESSION_STACK_KEEP (8 * 1024)
#define MONITOR_ENDPOINT "inproc://session-gateway-monitor"

static int s_on_timer(zloop_t *loop, int timer_id, void *arg);

/* ---- helpers used by the other files ---------------------------------- */

static int s_connect_work(session_t *self);

int session_wake(session_t *self)
{
    self->store_used_ms = souk_now_ms();
    if (self->store && self->tools)
        return SOUK_OK;
    if (!self->tools && s_connect_work(self) != SOUK_OK)
        return SOUK_EIO;
    if (self->store)
        return SOUK_OK;
    char err[256] = "";
    store_options_t opt = { .cache_kib = SESSION_STORE_CACHE_KIB };
    int rc = store_open(self->cfg->store, self->cfg->store_dir, &opt, &self->store, err,
                        sizeof err);
    if (rc != SOUK_OK)
        SLOG_ERROR("session.store_open", "err=%s reason=\"%s\"", souk_errname(rc), err);
    return rc;
}

/* Whether the store handle may be given back now, and when it may. */
static int64_t s_store_close_due(const session_t *self)
{
    if (!self->store || self->cfg->multi_node || session_busy(self) || self->draining
        || !self->cfg->session_hibernate_ms)
        return 0;
    return self->store_used_ms + self->cfg->session_hibernate_ms;
}

/* The main stack's pages below the deepest frame an idle session still
 * uses: SQLite's parser and the first turn touched tens of KiB that stay
 * private to the process after they return. Like OTP's hibernate, the idle
 * session drops them (dead data below the stack pointer; the kernel maps
 * zero pages again when the stack grows there). */
static void s_discard_stack(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return;
    char line[512];
    uintptr_t lo = 0, hi = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "[stack]") && sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &lo, &hi) == 2)
            break;
    fclose(f);
    volatile char here = 0;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t keep = ((uintptr_t)&here - SESSION_STACK_KEEP) & ~(page - 1);
    if (lo && keep > lo && keep < hi)
        madvise((void *)lo, keep - lo, MADV_DONTNEED);
}

static void s_release(session_t *self)
{
    store_close(&self->store);
    zsock_destroy(&self->tools);
    zsock_destroy(&self->sender);
    s_discard_stack();
    /* what was freed goes back to the system (s_on_timer), once libzmq's
     * reaper thread has let the pipes go too */
    self->trim_due_ms = souk_now_ms() + SESSION_TRIM_AFTER_MS;
    souk_metric_add("souk_session_hibernations_total", "", 1);
    SLOG_DEBUG("session.hibernated", "idle_ms=%lld",
               (long long)(souk_now_ms() - self->store_used_ms));
}

int session_send_gateway(session_t *self, const souk_msg_t *m)
{
    int rc = souk_msg_send(self->gateway, NULL, 0, m, ZMQ_DONTWAIT);
    if (rc != SOUK_OK)
        SLOG_WARN("session.send_failed", "type=%s err=%s", souk_msg_name(m->type),
                  souk_errname(rc));
    return rc;
}

void session_fail(session_t *self, const char *what, int rc)
{
    SLOG_ERROR("session.failed", "what=%s err=%s store=\"%s\"", what, souk_errname(rc),
               self->store ? store_last_error(self->store) : "");
    /* the store unreachable or throttled past its retries (DynamoDB): not
     * this user's fault, and nothing is lost by leaving (see error.h) */
    self->exit_code = rc == SOUK_EUNAVAIL || rc == SOUK_EBUSY ? SOUK_EXIT_TEMPFAIL : 1;
}

bool session_busy(const session_t *self)
{
    return self->turn_len > 0 || self->offers != NULL;
}

static int64_t s_earliest(int64_t a, int64_t b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    return a < b ? a : b;
}

void session_schedule(session_t *self)
{
    int64_t due = s_earliest(session_turn_due(self), session_reply_due(self));
    if (!self->draining)
        due = s_earliest(due, session_lease_due(self));
    due = s_earliest(due, s_store_close_due(self));
    due = s_earliest(due, self->trim_due_ms);
    if (self->draining)
        due = s_earliest(due, self->drain_deadline_ms);
    else if (!session_busy(self))
        due = s_earliest(due, self->idle_asked_ms
                                  ? self->idle_asked_ms + SESSION_IDLE_WAIT_MS
                                  : self->idle_from_ms + self->cfg->session_idle_s * 1000);
    if (self->timer_id != -1 && due == self->timer_due)
        return;
    if (self->timer_id != -1)
        zloop_timer_end(self->loop, self->timer_id);
    self->timer_id = -1;
    self->timer_due = due;
    if (!due)
        return;
    int64_t delay = due - souk_now_ms();
    self->timer_id = zloop_timer(self->loop, delay > 0 ? (size_t)delay : 1, 1, s_on_timer, self);
    if (self->timer_id < 0)
        SLOG_ERROR("session.timer_failed", "delay_ms=%lld", (long long)delay);
}

/* ---- lifecycle: hello, idle, drain ------------------------------------- */

static void s_send_hello(session_t *self)
{
    souk_msg_t m = { .type = SOUK_MSG_SESSION_HELLO };
    m.session_hello.waid = self->waid;
    m.session_hello.pid = (uint64_t)getpid();
    session_send_gateway(self, &m);
}

static void s_ask_idle(session_t *self)
{
    souk_msg_t m = { .type = SOUK_MSG_IDLE };
    m.idle.waid = self->waid;
    if (session_send_gateway(self, &m) == SOUK_OK) {
        self->idle_asked_ms = souk_now_ms();
        SLOG_INFO("session.idle_asked", "idle_ms=%lld",
                  (long long)(self->idle_asked_ms - self->last_msg_ms));
    } else {
        self->idle_from_ms = souk_now_ms(); /* ask again a period later */
    }
}

/* Finishes what is owed (the turn now, offers until their verdict or the
 * deadline), then exits. Returns -1 when there is nothing to wait for. */
static int s_drain(session_t *self, const char *reason, uint64_t drain_ms)
{
    if (self->draining) {
        SLOG_INFO("session.drain_cut", "reason=%s", reason);
        return -1; /* a second stop shortens the drain */
    }
    int64_t budget = drain_ms ? (int64_t)drain_ms * 9 / 10 : self->cfg->drain_ms;
    self->draining = true;
    self->drain_deadline_ms = souk_now_ms() + budget;
    SLOG_INFO("session.draining", "reason=%s turn=%zu drain_ms=%lld", reason, self->turn_len,
              (long long)budget);
    if (self->turn_len)
        session_turn_run(self);
    if (self->exit_code || !session_busy(self))
        return -1;
    session_schedule(self);
    return 0;
}

static int s_handle_idle_ok(session_t *self, const souk_idle_ok_t *ok)
{
    if (strcmp(ok->waid, self->waid) != 0 || !self->idle_asked_ms) {
        SLOG_DEBUG("session.idle_ok_ignored", "asked=%d", self->idle_asked_ms != 0);
        return 0;
    }
    self->idle_asked_ms = 0;
    if (!ok->ok) {
        self->idle_from_ms = souk_now_ms();
        SLOG_INFO("session.idle_refused", "handled=%llu", (unsigned long long)self->handled);
        return 0;
    }
    if (session_busy(self)) {
        /* The gateway counts us gone: owe nothing past the drain. */
        SLOG_WARN("session.idle_ok_while_busy", "turn=%zu", self->turn_len);
        return s_drain(self, "idle", 0);
    }
    SLOG_INFO("session.idle_exit", "handled=%llu", (unsigned long long)self->handled);
    return -1;
}

/* ---- loop handlers ------------------------------------------------------ */

static int s_on_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop; (void)timer_id;
    session_t *self = arg;
    self->timer_id = -1; /* one-shot: zloop has dropped it */
    int64_t now = souk_now_ms();
    int64_t close_due = s_store_close_due(self);
    if (close_due && close_due <= now)
        s_release(self);
    else if (self->trim_due_ms && self->trim_due_ms <= now) {
        self->trim_due_ms = 0;
        malloc_trim(0);
    }
    /* a closed handle means nothing is owed: this is for safety only */
    if (!self->store && (session_busy(self) || self->cfg->multi_node)) {
        int rc = session_wake(self);
        if (rc != SOUK_OK) {
            session_fail(self, "store", rc);
            return -1;
        }
    }
    int64_t turn_due = session_turn_due(self);
    if (turn_due && turn_due <= now)
        session_turn_run(self);
    session_lease_tick(self);
    session_reply_reoffer(self, false);
    if (self->exit_code)
        return -1;
    if (self->draining) {
        if (!session_busy(self))
            return -1;
        if (now >= self->drain_deadline_ms) {
            SLOG_WARN("session.drain_timeout", "turn=%zu offers=%d", self->turn_len,
                      self->offers != NULL);
            return -1; /* what is left stays in the store for the next start */
        }
    } else if (!session_busy(self)) {
        if (self->idle_asked_ms && now >= self->idle_asked_ms + SESSION_IDLE_WAIT_MS) {
            SLOG_INFO("session.idle_exit", "handled=%llu gateway=silent",
                      (unsigned long long)self->handled);
            return -1;
        }
        if (!self->idle_asked_ms && now >= self->idle_from_ms + self->cfg->session_idle_s * 1000)
            s_ask_idle(self);
    }
    session_schedule(self);
    return 0;
}

static int s_on_gateway(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    session_t *self = arg;
    souk_msg_t m;
    char err[128];
    int rc = souk_msg_recv(sock, NULL, NULL, &m, ZMQ_DONTWAIT, err, sizeof err);
    if (rc == SOUK_EBUSY)
        return 0;
    if (rc != SOUK_OK) {
        SLOG_WARN("session.bad_message", "err=%s reason=\"%s\"", souk_errname(rc), err);
        return 0;
    }
    rc = 0;
    /* an INBOUND while draining is not taken (below): nothing to wake for */
    if ((m.type == SOUK_MSG_INBOUND && !self->draining) || m.type == SOUK_MSG_REPLY_VERDICT) {
        int orc = session_wake(self);
        if (orc != SOUK_OK) {
            /* not acknowledged: the gateway delivers it again */
            session_fail(self, "store", orc);
            souk_msg_clear(&m);
            return -1;
        }
    }
    switch (m.type) {
    case SOUK_MSG_INBOUND:
        if (self->draining)
            /* not acknowledged: the gateway holds it and delivers it again
             * to the next session after SESSION_EXIT */
            SLOG_INFO("session.inbound_deferred", "sid=%s reason=draining", m.inbound.msg_sid);
        else
            session_inbound_handle(self, &m.inbound);
        break;
    case SOUK_MSG_REPLY_VERDICT:
        session_reply_verdict(self, &m.reply_verdict);
        break;
    case SOUK_MSG_IDLE_OK:
        rc = s_handle_idle_ok(self, &m.idle_ok);
        break;
    default:
        SLOG_WARN("session.unexpected", "type=%s", souk_msg_name(m.type));
    }
    souk_msg_clear(&m);
    souk_log_request(NULL);
    if (self->exit_code || (self->draining && !session_busy(self)))
        return -1;
    session_schedule(self);
    return rc;
}

/* Socket events of the gateway link. A new gateway knows nothing of us:
 * say hello again and offer again what waits for a verdict (it answers
 * inline=false for requests it never saw). */
static int s_on_monitor(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    session_t *self = arg;
    zmsg_t *msg = zmsg_recv_nowait(sock);
    if (!msg)
        return 0;
    zframe_t *head = zmsg_first(msg);
    uint16_t ev = 0;
    if (head && zframe_size(head) >= sizeof ev)
        memcpy(&ev, zframe_data(head), sizeof ev);
    zmsg_destroy(&msg);
    if (ev == ZMQ_EVENT_DISCONNECTED) {
        self->gateway_lost = true;
        SLOG_INFO("session.gateway_lost", "offers=%d", self->offers != NULL);
    } else if (ev == ZMQ_EVENT_CONNECTED && self->gateway_lost) {
        self->gateway_lost = false;
        SLOG_INFO("session.gateway_back", "offers=%d", self->offers != NULL);
        s_send_hello(self);
        session_reply_reoffer(self, true);
        session_schedule(self);
    }
    return 0;
}

static int s_on_stop(const char *reason, uint64_t drain_ms, void *arg)
{
    return s_drain(arg, reason, drain_ms);
}

static void s_stats(souk_actor_stats_t *st, void *arg)
{
    session_t *self = arg;
    st->handled = self->handled;
    st->depth = self->turn_len;
    st->idle_ms = (uint64_t)(souk_now_ms() - self->last_msg_ms);
}

/* ---- set-up and tear-down ---------------------------------------------- */

static bool s_waid_valid(const char *waid)
{
    size_t n = waid ? strlen(waid) : 0;
    if (n == 0 || n > TWILIO_WAID_MAX_DIGITS)
        return false;
    return strspn(waid, "0123456789") == n;
}

static zsock_t *s_socket(int type)
{
    zsock_t *s = zsock_new(type);
    if (s) {
        zsock_set_linger(s, SOUK_LINGER_MS);
        zsock_set_sndhwm(s, SOUK_HWM_DEFAULT);
        zsock_set_rcvhwm(s, SOUK_HWM_DEFAULT);
    }
    return s;
}

/* The links a turn needs (session_wake): the sender and the tool actors. */
static int s_connect_work(session_t *self)
{
    const souk_config_t *cfg = self->cfg;
    char ep[512];
    zsock_destroy(&self->sender);
    zsock_destroy(&self->tools);
    self->sender = s_socket(ZMQ_PUSH);
    self->tools = s_socket(ZMQ_DEALER);
    if (!self->sender || !self->tools)
        return SOUK_ENOMEM;
    /* a call goes only to a tool actor whose connection is up; one that is
     * down (restarting) does not swallow calls in a queue */
    zsock_set_immediate(self->tools, 1);
    souk_endpoint(ep, sizeof ep, cfg->run_dir, SOUK_EP_SENDER, 0);
    if (zsock_connect(self->sender, "%s", ep) < 0)
        goto fail;
    for (int i = 0; i < cfg->tools; i++) {
        souk_endpoint(ep, sizeof ep, cfg->run_dir, SOUK_EP_TOOL, i);
        if (zsock_connect(self->tools, "%s", ep) < 0)
            goto fail;
    }
    return SOUK_OK;
fail:
    SLOG_ERROR("session.connect", "endpoint=%s", ep);
    return SOUK_EIO;
}

/* The gateway link, for life. It is watched before it connects, so no
 * event is missed. */
static int s_connect(session_t *self)
{
    char ep[512];
    self->gateway = s_socket(ZMQ_DEALER);
    self->monitor = zsock_new(ZMQ_PAIR);
    if (!self->gateway || !self->monitor)
        return SOUK_ENOMEM;
    zsock_set_identity(self->gateway, self->waid); /* before connect, or ROUTER makes one up */
    if (zmq_socket_monitor(zsock_resolve(self->gateway), MONITOR_ENDPOINT,
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) < 0
        || zsock_connect(self->monitor, MONITOR_ENDPOINT) < 0)
        return SOUK_EIO;
    souk_endpoint(ep, sizeof ep, self->cfg->run_dir, SOUK_EP_SESSIONS, 0);
    if (zsock_connect(self->gateway, "%s", ep) < 0) {
        SLOG_ERROR("session.connect", "endpoint=%s", ep);
        return SOUK_EIO;
    }
    return SOUK_OK;
}

static void s_self_destroy(session_t *self)
{
    session_turn_clear(self);
    session_reply_clear(self);
    llm_destroy(&self->llm);
    zloop_destroy(&self->loop);
    zsock_destroy(&self->monitor);
    zsock_destroy(&self->tools);
    zsock_destroy(&self->sender);
    zsock_destroy(&self->gateway);
    store_close(&self->store);
    free(self->profile_name);
    souk_actor_destroy(&self->actor);
}

/* Returns 0 when ready, else the exit code. */
static int s_self_init(session_t *self, const souk_config_t *cfg, const char *name,
                       const char *waid)
{
    self->cfg = cfg;
    self->timer_id = -1;
    self->last_msg_ms = self->idle_from_ms = souk_now_ms();
    snprintf(self->waid, sizeof self->waid, "%s", waid);
    twilio_mask_phone(waid, self->masked, sizeof self->masked);
    char log_name[SOUK_CAP_NAME + 1];
    snprintf(log_name, sizeof log_name, "s-%s", self->masked);
    souk_log_init(log_name, NULL, NULL); /* the actor name holds the number */

    self->actor = souk_actor_new(name, "session", cfg);
    if (!self->actor)
        return 1;
    int rc = session_wake(self);
    if (rc != SOUK_OK)
        return rc == SOUK_ECONFIG || rc == SOUK_EINVAL ? SOUK_EXIT_CONFIG : 1;
    if (s_connect(self) != SOUK_OK)
        return 1;
    self->loop = zloop_new();
    souk_actor_handlers_t h = { .on_stop = s_on_stop, .stats = s_stats, .arg = self };
    if (!self->loop || souk_actor_attach(self->actor, self->loop, &h) != SOUK_OK
        || zloop_reader(self->loop, self->gateway, s_on_gateway, self) < 0
        || zloop_reader(self->loop, self->monitor, s_on_monitor, self) < 0)
        return 1;
    zloop_reader_set_tolerant(self->loop, self->gateway);
    return 0;
}

int session_main(souk_config_t *cfg, const char *name, const char *arg)
{
    if (!s_waid_valid(arg)) {
        SLOG_ERROR("session.bad_waid", "reason=\"a session needs the WaId (digits) as its argument\"");
        return SOUK_EXIT_CONFIG;
    }
    session_t self = { 0 };
    int code = s_self_init(&self, cfg, name, arg);
    if (code == 0 && souk_actor_ready(self.actor) != SOUK_OK)
        code = 1;
    if (code == 0) {
        SLOG_INFO("session.ready", "pid=%d", (int)getpid());
        s_send_hello(&self);
        session_lease_start(&self);
        /* Offers first: a resumed turn may find its row among them. The
         * user's offers and pending work are the lease holder's. */
        int rc = self.lease_held ? session_reply_resume(&self) : SOUK_OK;
        if (rc == SOUK_OK && self.lease_held)
            rc = session_turn_resume(&self);
        if (rc != SOUK_OK)
            code = rc == SOUK_EUNAVAIL || rc == SOUK_EBUSY ? SOUK_EXIT_TEMPFAIL : 1;
    }
    if (code == 0) {
        session_schedule(&self);
        zloop_start(self.loop);
        code = self.exit_code;
    }
    session_lease_end(&self);
    s_self_destroy(&self);
    return code;
}
