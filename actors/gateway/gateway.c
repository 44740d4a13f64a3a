/* Gateway actor: the one process that talks HTTP to Twilio.
 *
 * One thread, one loop — libwebsockets' — into which everything else is
 * folded: the control DEALER and the sessions ROUTER through dup()s of their
 * ZMQ_FDs adopted as raw file descriptors, the signal fd the same way, and
 * timers (heartbeat, reply budgets, housekeeping, the drain deadline) as
 * lws_sul. ZMQ_FD is edge-triggered, so after every event the sockets are
 * drained while ZMQ_EVENTS says POLLIN (gw_after_event), sends included.
 *
 * The gateway never waits on the store, a model or Twilio: it parses,
 * verifies, routes and answers (http.c, routing.c). On STOP or SIGTERM it
 * answers new webhooks 503, lets pending requests finish until the drain
 * deadline, and exits 0. */
#include "gateway.h"

#include "souk/endpoints.h"
#include "souk/error.h"
#include "souk/log.h"
#include "souk/roles.h"
#include "souk/twilio.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define PUMP_MAX 1024      /* bus messages per event before yielding to HTTP */
#define DRAIN_GRACE_MS 500 /* after the drain deadline, for answers to be written */

static int s_tag_control, s_tag_sessions, s_tag_signals; /* adopted fds' identities */

/* ---- the bus ----------------------------------------------------------------- */

static int s_deliver(void *arg, const char *waid, const void *frame, size_t len)
{
    gw_t *gw = arg;
    void *h = zsock_resolve(gw->sessions);
    if (zmq_send(h, waid, strlen(waid), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return errno == EHOSTUNREACH ? SOUK_EUNAVAIL : errno == EAGAIN ? SOUK_EBUSY : SOUK_EIO;
    if (zmq_send(h, frame, len, ZMQ_DONTWAIT) < 0)
        return errno == EAGAIN ? SOUK_EBUSY : SOUK_EIO;
    return SOUK_OK;
}

static int s_to_session(void *arg, const char *waid, const souk_msg_t *m)
{
    gw_t *gw = arg;
    return souk_msg_send(gw->sessions, waid, strlen(waid), m, ZMQ_DONTWAIT);
}

static int s_to_supervisor(void *arg, const souk_msg_t *m)
{
    gw_t *gw = arg;
    return souk_actor_send(gw->actor, m);
}

static void s_answer(void *arg, void *http, const gw_answer_t *a)
{
    if (!gw_console_answer(arg, http, a))
        gw_http_answer(arg, http, a);
}

static void s_on_control(gw_t *gw, souk_msg_t *m)
{
    switch (m->type) {
    case SOUK_MSG_STOP: {
        /* finish a little before the supervisor's patience runs out */
        int64_t d = (int64_t)m->stop.drain_ms;
        gw_begin_drain(gw, m->stop.reason, d - (d / 10 < 200 ? d / 10 : 200));
        break;
    }
    case SOUK_MSG_SESSION_EXIT:
        gw_routing_session_exit(gw->routing, m->session_exit.waid, m->session_exit.quarantined,
                                m->session_exit.code < 0 && !m->session_exit.signal,
                                souk_now_ms());
        break;
    case SOUK_MSG_METRICS_REP:
        gw_metrics_reply(gw->metrics, m->metrics_rep.text);
        break;
    case SOUK_MSG_READINESS:
        if (gw->ready != m->readiness.ready)
            SLOG_INFO("gateway.readiness", "ready=%d", m->readiness.ready);
        gw->ready = m->readiness.ready;
        snprintf(gw->ready_detail, sizeof gw->ready_detail, "%s",
                 *m->readiness.detail ? m->readiness.detail : "starting");
        break;
    default:
        SLOG_DEBUG("gateway.control_ignored", "type=%s", souk_msg_name(m->type));
    }
}

static void s_on_session(gw_t *gw, const char *peer, souk_msg_t *m)
{
    int64_t now = souk_now_ms();
    switch (m->type) {
    case SOUK_MSG_SESSION_HELLO:
        if (strcmp(m->session_hello.waid, peer) == 0)
            gw_routing_session_hello(gw->routing, peer, now);
        else
            SLOG_WARN("gateway.hello_mismatch", "peer_len=%zu", strlen(peer));
        break;
    case SOUK_MSG_ACCEPTED:
        gw_routing_accepted(gw->routing, peer, m->accepted.msg_sid, m->accepted.duplicate, now);
        break;
    case SOUK_MSG_MERGED:
        gw_routing_merged(gw->routing, peer, m->merged.msg_sid, now);
        break;
    case SOUK_MSG_REPLY_OFFER:
        gw_routing_offer(gw->routing, peer, m->reply_offer.msg_sid, m->reply_offer.outbox_key,
                         m->reply_offer.body, now);
        break;
    case SOUK_MSG_INLINE_ACK:
        gw_routing_inline_ack(gw->routing, peer, m->inline_ack.msg_sid, m->inline_ack.ok, now);
        break;
    case SOUK_MSG_DEFER:
        gw_routing_defer(gw->routing, peer, m->defer.msg_sid, m->defer.text, now);
        break;
    case SOUK_MSG_IDLE:
        gw_routing_idle(gw->routing, peer, m->idle.waid, now);
        break;
    default:
        SLOG_WARN("gateway.session_unexpected", "type=%s", souk_msg_name(m->type));
    }
}

/* Receives and handles up to *budget messages from sock. Returns whether
 * it stopped with input still waiting. */
static bool s_pump(gw_t *gw, zsock_t *sock, bool router, int *budget)
{
    while (zsock_events(sock) & ZMQ_POLLIN) {
        if ((*budget)-- <= 0)
            return true;
        char id[SOUK_CAP_ID + 2];
        size_t idlen = SOUK_CAP_ID + 1;
        char err[128];
        souk_msg_t m;
        int rc = souk_msg_recv(sock, router ? id : NULL, router ? &idlen : NULL, &m,
                               ZMQ_DONTWAIT, err, sizeof err);
        if (rc == SOUK_EBUSY)
            break;
        if (rc != SOUK_OK) {
            SLOG_WARN("gateway.bad_message", "from=%s err=%s reason=\"%s\"",
                     router ? "session" : "control", souk_errname(rc), err);
            continue;
        }
        if (!router) {
            s_on_control(gw, &m);
        } else if (idlen == 0 || idlen > SOUK_CAP_ID || memchr(id, 0, idlen)) {
            SLOG_WARN("gateway.bad_peer", "id_len=%zu type=%s", idlen, souk_msg_name(m.type));
        } else {
            id[idlen] = '\0';
            s_on_session(gw, id, &m);
        }
        souk_msg_clear(&m);
    }
    return false;
}

static void s_on_pump_later(lws_sorted_usec_list_t *sul);

static void s_budget_fired(lws_sorted_usec_list_t *sul)
{
    gw_t *gw = lws_container_of(sul, gw_t, sul_budget);
    gw->budget_armed_ms = -1;
    gw_routing_expire(gw->routing, souk_now_ms());
    gw_after_event(gw);
}

/* One timer for every reply budget: requests expire in arrival order. */
static void s_arm_budget(gw_t *gw)
{
    int64_t next = gw_routing_next_deadline(gw->routing);
    if (next == gw->budget_armed_ms)
        return;
    gw->budget_armed_ms = next;
    if (next < 0) {
        lws_sul_cancel(&gw->sul_budget);
        return;
    }
    int64_t wait_ms = next - souk_now_ms() + 1; /* the ms clock truncates */
    lws_sul_schedule(gw->ctx, 0, &gw->sul_budget, s_budget_fired,
                     (lws_usec_t)(wait_ms > 0 ? wait_ms : 0) * LWS_US_PER_MS);
}

static void s_check_drained(gw_t *gw)
{
    if (!gw->draining || gw->done || gw_routing_pending(gw->routing) || gw->unwritten)
        return;
    SLOG_INFO("gateway.drained", "held=%zu", gw_routing_held(gw->routing));
    gw->done = true;
    lws_cancel_service(gw->ctx);
}

void gw_after_event(gw_t *gw)
{
    if (gw->in_after_event)
        return;
    gw->in_after_event = true;
    int budget = PUMP_MAX;
    bool more = false;
    /* handling a message may send on either socket, which can swallow the
     * edge of new input: loop until both are really empty */
    zsock_t *control = souk_actor_control(gw->actor);
    while (!more && ((zsock_events(control) & ZMQ_POLLIN) || (zsock_events(gw->sessions) & ZMQ_POLLIN))) {
        more = s_pump(gw, control, false, &budget);
        more = s_pump(gw, gw->sessions, true, &budget) || more;
    }
    if (more)
        lws_sul_schedule(gw->ctx, 0, &gw->sul_pump, s_on_pump_later, 1);
    s_arm_budget(gw);
    s_check_drained(gw);
    gw->in_after_event = false;
}

static void s_on_pump_later(lws_sorted_usec_list_t *sul)
{
    gw_after_event(lws_container_of(sul, gw_t, sul_pump));
}

/* ---- timers and signals -------------------------------------------------------- */

static void s_heartbeat(lws_sorted_usec_list_t *sul)
{
    gw_t *gw = lws_container_of(sul, gw_t, sul_heartbeat);
    souk_actor_stats_t st = {
        .handled = gw->handled,
        .depth = gw_routing_pending(gw->routing) + gw_routing_held(gw->routing),
        .idle_ms = (uint64_t)(souk_now_ms() - gw->last_handled_ms),
    };
    souk_actor_heartbeat(gw->actor, &st);
    souk_actor_pump_monitors(gw->actor);
    lws_sul_schedule(gw->ctx, 0, &gw->sul_heartbeat, s_heartbeat,
                     (lws_usec_t)gw->cfg->heartbeat_ms * LWS_US_PER_MS);
    gw_after_event(gw);
}

static void s_tick(lws_sorted_usec_list_t *sul)
{
    gw_t *gw = lws_container_of(sul, gw_t, sul_tick);
    gw_routing_tick(gw->routing, souk_now_ms());
    lws_sul_schedule(gw->ctx, 0, &gw->sul_tick, s_tick, (lws_usec_t)GW_TICK_MS * LWS_US_PER_MS);
    gw_after_event(gw);
}

static void s_drain_deadline(lws_sorted_usec_list_t *sul)
{
    gw_t *gw = lws_container_of(sul, gw_t, sul_drain);
    if (!gw->drain_hard) {
        SLOG_INFO("gateway.drain_deadline", "pending=%zu", gw_routing_pending(gw->routing));
        gw_routing_answer_all(gw->routing, souk_now_ms());
        gw->drain_hard = true;
        lws_sul_schedule(gw->ctx, 0, &gw->sul_drain, s_drain_deadline,
                         (lws_usec_t)DRAIN_GRACE_MS * LWS_US_PER_MS);
    } else {
        SLOG_WARN("gateway.drain_unwritten", "answers=%zu", gw->unwritten);
        gw->done = true;
    }
    gw_after_event(gw);
}

void gw_begin_drain(gw_t *gw, const char *reason, int64_t drain_ms)
{
    int64_t now = souk_now_ms();
    int64_t deadline = now + (drain_ms > 0 ? drain_ms : 0);
    if (gw->draining && deadline >= gw->drain_deadline_ms)
        return;
    SLOG_INFO("gateway.draining", "reason=%s drain_ms=%lld pending=%zu", reason ? reason : "?",
             (long long)(deadline - now), gw_routing_pending(gw->routing));
    gw->draining = true;
    gw->drain_deadline_ms = deadline;
    gw_routing_set_draining(gw->routing);
    lws_sul_schedule(gw->ctx, 0, &gw->sul_drain, s_drain_deadline,
                     (lws_usec_t)(deadline - now) * LWS_US_PER_MS);
}

static void s_on_signals(gw_t *gw)
{
    int sig;
    while ((sig = souk_actor_take_signal(gw->actor)) != 0) {
        /* a second signal means: stop now */
        int64_t drain_ms = gw->signalled ? 0 : gw->cfg->drain_ms;
        gw->signalled = true;
        gw_begin_drain(gw, sig == SIGINT ? "SIGINT" : "SIGTERM", drain_ms);
    }
}

static int s_bus_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                          void *in, size_t len)
{
    (void)user; (void)in; (void)len;
    gw_t *gw = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        if (lws_get_opaque_user_data(wsi) == &s_tag_signals)
            s_on_signals(gw);
        gw_after_event(gw);
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (!gw->done) {
            SLOG_ERROR("gateway.bus_fd_closed", "which=%s",
                      lws_get_opaque_user_data(wsi) == &s_tag_signals ? "signals" : "socket");
            gw->exit_code = 1;
            gw->done = true;
        }
        return 0;
    default:
        return 0;
    }
}

/* ---- set-up ----------------------------------------------------------------------- */

void gw_request_id(gw_t *gw, char out[GW_REQUEST_ID_LEN])
{
    snprintf(out, GW_REQUEST_ID_LEN, "%s-%llx", gw->request_prefix,
             (unsigned long long)++gw->request_seq);
}

static int s_adopt(gw_t *gw, int fd, int *tag)
{
    /* lws closes what it adopts: give it a copy */
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0)
        return -1;
    lws_adopt_desc_t d = {
        .vh = gw->vhost, .type = LWS_ADOPT_RAW_FILE_DESC, .fd.filefd = copy,
        .vh_prot_name = "souk-bus", .opaque = tag,
    };
    if (!lws_adopt_descriptor_vhost_via_info(&d)) {
        close(copy);
        return -1;
    }
    return 0;
}

static void s_lws_log(int level, const char *line)
{
    char quoted[512];
    char copy[480];
    snprintf(copy, sizeof copy, "%s", line);
    copy[strcspn(copy, "\r\n")] = '\0';
    souk_log(level == LLL_ERR ? SOUK_LOG_ERROR : SOUK_LOG_WARN, "lws", "msg=%s",
             souk_log_quote(copy, quoted, sizeof quoted));
}

static int s_sockets(gw_t *gw)
{
    char ep[512];
    souk_endpoint(ep, sizeof ep, gw->cfg->run_dir, SOUK_EP_SESSIONS, 0);
    gw->sessions = zsock_new(ZMQ_ROUTER);
    if (!gw->sessions)
        return -1;
    zsock_set_router_mandatory(gw->sessions, 1);
    zsock_set_router_handover(gw->sessions, 1);
    zsock_set_sndhwm(gw->sessions, SOUK_HWM_DEFAULT);
    zsock_set_rcvhwm(gw->sessions, SOUK_HWM_DEFAULT);
    zsock_set_linger(gw->sessions, SOUK_LINGER_MS);
    if (zsock_bind(gw->sessions, "%s", ep) < 0) {
        SLOG_ERROR("gateway.bind", "endpoint=%s err=\"%s\"", ep, zmq_strerror(zmq_errno()));
        return -1;
    }
    souk_endpoint(ep, sizeof ep, gw->cfg->run_dir, SOUK_EP_SENDER, 0);
    gw->sender = zsock_new(ZMQ_PUSH);
    if (!gw->sender)
        return -1;
    zsock_set_sndhwm(gw->sender, SOUK_HWM_DEFAULT);
    zsock_set_linger(gw->sender, SOUK_LINGER_MS);
    if (zsock_connect(gw->sender, "%s", ep) < 0) {
        SLOG_ERROR("gateway.connect", "endpoint=%s", ep);
        return -1;
    }
    /* the link to the sender in the events stream (forwarded with each
     * heartbeat); the sessions ROUTER is not watched: thousands of peers */
    souk_actor_monitor(gw->actor, gw->sender, "gateway-sender");
    return 0;
}

#define GW_PROTOCOLS (3 + GW_CONSOLE_PROTOCOLS)

static int s_http(gw_t *gw, struct lws_protocols protocols[GW_PROTOCOLS])
{
    protocols[0] = gw_http_protocol;
    protocols[1] = (struct lws_protocols){ .name = "souk-bus", .callback = s_bus_callback };
    gw_console_protocols(protocols + 2);
    protocols[GW_PROTOCOLS - 1] = (struct lws_protocols){ 0 };
    lws_set_log_level(LLL_ERR | LLL_WARN, s_lws_log);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = (int)gw->cfg->port;
    info.iface = *gw->cfg->listen ? gw->cfg->listen : NULL;
    info.protocols = protocols;
    info.user = gw;
    info.server_string = "souk";
    info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
    gw->ctx = lws_create_context(&info);
    if (!gw->ctx) {
        SLOG_ERROR("gateway.listen", "port=%lld iface=%s", (long long)gw->cfg->port,
                  *gw->cfg->listen ? gw->cfg->listen : "*");
        return -1;
    }
    gw->vhost = lws_get_vhost_by_name(gw->ctx, "default");
    if (!gw->vhost
        || s_adopt(gw, zsock_fd(souk_actor_control(gw->actor)), &s_tag_control) < 0
        || s_adopt(gw, zsock_fd(gw->sessions), &s_tag_sessions) < 0
        || s_adopt(gw, souk_actor_signal_fd(gw->actor), &s_tag_signals) < 0) {
        SLOG_ERROR("gateway.adopt", "err=%d", errno);
        return -1;
    }
    if (gw_console_start(gw) < 0) {
        SLOG_ERROR("gateway.console", "err=%d", errno);
        return -1;
    }
    return 0;
}

/* The auth token signatures are checked with; without TWILIO_AUTH_TOKEN,
 * the development token `souk serve` keeps in the data folder. */
static int s_token(gw_t *gw)
{
    if (!*gw->cfg->twilio_auth_token) {
        char err[256];
        if (souk_config_prepare_data(gw->cfg, err, sizeof err) != SOUK_OK) {
            SLOG_ERROR("gateway.token", "reason=\"%s\"", err);
            return -1;
        }
    }
    gw->token = gw->cfg->twilio_auth_token;
    snprintf(gw->sign_base, sizeof gw->sign_base, "%s", gw->cfg->public_url);
    size_t n = strlen(gw->sign_base);
    while (n > 0 && gw->sign_base[n - 1] == '/')
        gw->sign_base[--n] = '\0';
    return *gw->token ? 0 : -1;
}

int gateway_main(souk_config_t *cfg, const char *name, const char *arg)
{
    (void)arg;
    gw_t gw = { .cfg = cfg, .exit_code = 0, .budget_armed_ms = -1 };
    struct lws_protocols protocols[GW_PROTOCOLS];
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
        rnd = (uint32_t)getpid();
    snprintf(gw.request_prefix, sizeof gw.request_prefix, "%08x", rnd);
    gw.last_handled_ms = souk_now_ms();
    snprintf(gw.ready_detail, sizeof gw.ready_detail, "waiting for the supervisor");

    char err[256];
    if (souk_lws_load(err, sizeof err) != SOUK_OK || twilio_crypto_load(err, sizeof err) != SOUK_OK) {
        SLOG_ERROR("gateway.library", "err=EUNAVAIL detail=\"%s\"", err);
        return SOUK_EXIT_CONFIG; /* no restart can install a library */
    }
    gw.actor = souk_actor_new(name, "gateway", cfg);
    if (!gw.actor)
        return 1;
    if (s_token(&gw) < 0) {
        souk_actor_destroy(&gw.actor);
        return SOUK_EXIT_CONFIG;
    }
    gw_routing_ops_t ops = { s_deliver, s_to_session, s_to_supervisor, s_answer };
    gw.routing = gw_routing_new(&ops, &gw, cfg->reply_budget_ms, cfg->quarantine_s * 1000);
    gw.twiml_empty = twilio_twiml_empty();
    gw.metrics = gw_metrics_new(&gw);
    if (!gw.routing || !gw.twiml_empty || !gw.metrics || s_sockets(&gw) < 0 || s_http(&gw, protocols) < 0) {
        gw.exit_code = 1;
        goto cleanup;
    }
    gw.twiml_empty_len = strlen(gw.twiml_empty);
    lws_sul_schedule(gw.ctx, 0, &gw.sul_heartbeat, s_heartbeat,
                     (lws_usec_t)cfg->heartbeat_ms * LWS_US_PER_MS);
    lws_sul_schedule(gw.ctx, 0, &gw.sul_tick, s_tick, (lws_usec_t)GW_TICK_MS * LWS_US_PER_MS);
    if (souk_actor_ready(gw.actor) != SOUK_OK) {
        gw.exit_code = 1;
        goto cleanup;
    }
    SLOG_INFO("gateway.ready", "port=%lld iface=%s public_url=%s budget_ms=%lld",
             (long long)cfg->port, *cfg->listen ? cfg->listen : "*", gw.sign_base,
             (long long)cfg->reply_budget_ms);
    gw_after_event(&gw); /* anything that arrived before the fds were adopted */
    while (!gw.done) {
        if (lws_service(gw.ctx, 0) < 0) {
            SLOG_ERROR("gateway.loop", "err=lws_service");
            gw.exit_code = 1;
            break;
        }
    }
cleanup:
    gw.done = true;
    if (gw.ctx)
        lws_context_destroy(gw.ctx); /* closes connections: routing forgets them */
    gw_metrics_destroy(&gw.metrics);
    gw_console_stop(&gw);
    gw_routing_destroy(&gw.routing);
    zsock_destroy(&gw.sessions);
    zsock_destroy(&gw.sender);
    free(gw.twiml_empty);
    SLOG_INFO("gateway.exit", "code=%d handled=%llu", gw.exit_code,
             (unsigned long long)gw.handled);
    souk_actor_destroy(&gw.actor);
    return gw.exit_code;
}
