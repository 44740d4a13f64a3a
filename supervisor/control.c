/* The supervisor's two sockets.
 *
 * control (ROUTER, mandatory routing, handover): actors connect as DEALERs
 * named after themselves and say HELLO, READY, HEARTBEAT, EVENT; the gateway
 * asks for sessions (SPAWN_SESSION) and hears SESSION_EXIT and READINESS;
 * clients (`souk status`, tests) ask STATUS_REQ or KILL under any identity.
 * SPAWN_SESSION is accepted from any peer, but SESSION_EXIT always goes to
 * the gateway, the one that answers users.
 *
 * events (PUB): every lifecycle event, and the events actors send over
 * control (socket monitors, outbound messages), one EVENT frame each. */
#include "supervisor.h"

#include "souk/actor.h"
#include "souk/endpoints.h"
#include "souk/error.h"
#include "souk/log.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DRAIN_BATCH 1000 /* messages per turn of the loop, so signals stay prompt */

int sup_control_bind(sup_t *sup)
{
    char ep[512];
    sup->control = zsock_new(ZMQ_ROUTER);
    sup->events = zsock_new(ZMQ_PUB);
    if (!sup->control || !sup->events)
        return SOUK_ENOMEM;
    zsock_set_router_mandatory(sup->control, 1);
    zsock_set_router_handover(sup->control, 1);
    zsock_set_linger(sup->control, SOUK_LINGER_MS);
    zsock_set_sndhwm(sup->control, SOUK_HWM_CONTROL);
    zsock_set_rcvhwm(sup->control, SOUK_HWM_CONTROL);
    zsock_set_linger(sup->events, SOUK_LINGER_MS);
    zsock_set_sndhwm(sup->events, SOUK_HWM_DEFAULT);
    souk_endpoint(ep, sizeof ep, sup->cfg->run_dir, SOUK_EP_CONTROL, 0);
    if (zsock_bind(sup->control, "%s", ep) < 0) {
        SLOG_ERROR("control.bind", "endpoint=%s err=\"%s\"", ep, zmq_strerror(zmq_errno()));
        return SOUK_EIO;
    }
    souk_endpoint(ep, sizeof ep, sup->cfg->run_dir, SOUK_EP_EVENTS, 0);
    if (zsock_bind(sup->events, "%s", ep) < 0) {
        SLOG_ERROR("events.bind", "endpoint=%s err=\"%s\"", ep, zmq_strerror(zmq_errno()));
        return SOUK_EIO;
    }
    return SOUK_OK;
}

/* ---- events -------------------------------------------------------------- */

static void s_publish(sup_t *sup, const souk_msg_t *m)
{
    int rc = souk_msg_send(sup->events, NULL, 0, m, ZMQ_DONTWAIT);
    if (rc != SOUK_OK)
        SLOG_WARN("events.unsent", "kind=%s err=%s", m->event.kind, souk_errname(rc));
}

static souk_log_level_t s_event_level(const char *kind, int code, int sig)
{
    if (!strcmp(kind, "hung") || !strcmp(kind, "escalated") || !strcmp(kind, "quarantined"))
        return SOUK_LOG_WARN;
    if (!strcmp(kind, "exited") && (code || (sig && sig != SIGTERM)))
        return SOUK_LOG_WARN;
    return SOUK_LOG_INFO;
}

void sup_event(sup_t *sup, const char *kind, const sup_child_t *c, int code, int sig,
               const char *detail)
{
    souk_msg_t m = { .type = SOUK_MSG_EVENT };
    m.event.ts_ms = (uint64_t)souk_wall_ms();
    m.event.kind = (char *)kind;
    m.event.name = (char *)(c ? c->name : "supervisor");
    m.event.role = (char *)(c ? c->spec->role : "supervisor");
    m.event.pid = (uint64_t)(c ? c->pid : sup->pid);
    m.event.code = code;
    m.event.signal = sig;
    m.event.detail = (char *)detail;
    s_publish(sup, &m);
    sup_metrics_event(kind, c);

    char event[80], masked[SOUK_CAP_NAME + 1], quoted[256];
    snprintf(event, sizeof event, "actor.%s", kind);
    sup_mask_name(m.event.name, masked, sizeof masked);
    souk_log(s_event_level(kind, code, sig), event, "name=%s pid=%llu%s%s", masked,
             (unsigned long long)m.event.pid, *detail ? " detail=" : "",
             *detail ? souk_log_quote(detail, quoted, sizeof quoted) : "");
}

/* ---- sends to the gateway ------------------------------------------------ */

int sup_send_gateway(sup_t *sup, const souk_msg_t *m)
{
    int rc = souk_msg_send(sup->control, SUP_GATEWAY, strlen(SUP_GATEWAY), m, ZMQ_DONTWAIT);
    if (rc != SOUK_OK)
        SLOG_INFO("control.unsent", "to=" SUP_GATEWAY " type=%s err=%s", souk_msg_name(m->type),
                  souk_errname(rc));
    return rc;
}

void sup_send_session_exit(sup_t *sup, const char *waid, int code, int sig, bool quarantined)
{
    souk_msg_t m = { .type = SOUK_MSG_SESSION_EXIT };
    m.session_exit.waid = (char *)waid;
    m.session_exit.code = code;
    m.session_exit.signal = sig;
    m.session_exit.quarantined = quarantined;
    sup_send_gateway(sup, &m);
}

/* ---- status -------------------------------------------------------------- */

static json_t *s_rss_kb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "re");
    long long size, resident;
    int n = f ? fscanf(f, "%lld %lld", &size, &resident) : 0;
    if (f)
        fclose(f);
    if (n != 2)
        return json_null();
    return json_integer(resident * (sysconf(_SC_PAGESIZE) / 1024));
}

static json_t *s_actor_row(const sup_child_t *c, int64_t now)
{
    char text[32];
    json_t *row = json_object();
    json_object_set_new(row, "name", json_string(c->name));
    json_object_set_new(row, "role", json_string(c->spec->role));
    json_object_set_new(row, "pid", c->pid ? json_integer(c->pid) : json_null());
    json_object_set_new(row, "state", json_string(sup_state_name(c->state)));
    json_object_set_new(row, "restarts", json_integer(c->restarts));
    json_object_set_new(row, "uptime_s", json_integer(c->pid ? (now - c->forked_ms) / 1000 : 0));
    json_object_set_new(row, "rss_kb", c->pid ? s_rss_kb(c->pid) : json_null());
    sup_exit_text(c->last_code, c->last_signal, text, sizeof text);
    json_object_set_new(row, "last_exit", c->exited_once ? json_string(text) : json_null());
    json_object_set_new(row, "handled", json_integer((json_int_t)c->handled));
    json_object_set_new(row, "depth", json_integer((json_int_t)c->depth));
    json_object_set_new(row, "idle_ms", json_integer((json_int_t)c->idle_ms));
    json_object_set_new(row, "restart", json_string(sup_restart_name(c->spec->restart)));
    json_object_set_new(row, "started_at_ms",
                        c->forked_wall_ms ? json_integer(c->forked_wall_ms) : json_null());
    json_object_set_new(row, "ready_at_ms",
                        c->ready_wall_ms ? json_integer(c->ready_wall_ms) : json_null());
    return row;
}

/* Rows for sessions go in while the document stays under its frame cap. */
static size_t s_add_sessions(sup_t *sup, json_t *actors, size_t budget, int64_t now)
{
    size_t omitted = 0, used = 0;
    for (sup_child_t *c = zhashx_first(sup->sessions); c; c = zhashx_next(sup->sessions)) {
        json_t *row = s_actor_row(c, now);
        char *text = json_dumps(row, JSON_COMPACT);
        size_t len = text ? strlen(text) + 1 : budget;
        free(text);
        if (used + len > budget) {
            json_decref(row);
            omitted++;
            continue;
        }
        used += len;
        json_array_append_new(actors, row);
    }
    return omitted;
}

static json_int_t s_quarantined(sup_t *sup, int64_t now)
{
    json_int_t n = 0;
    for (sup_budget_t *b = zhashx_first(sup->budgets); b; b = zhashx_next(sup->budgets))
        n += b->until_ms > now;
    return n;
}

static char *s_status_json(sup_t *sup)
{
    static const char *const phases[] = { "starting", "running", "stopping", "stopping" };
    int64_t now = souk_now_ms();
    json_t *doc = json_object();
    json_t *actors = json_array();
    json_object_set_new(doc, "pid", json_integer(sup->pid));
    json_object_set_new(doc, "phase", json_string(phases[sup->phase]));
    json_object_set_new(doc, "ready", json_boolean(sup->all_ready));
    json_object_set_new(doc, "uptime_s", json_integer((now - sup->started_ms) / 1000));
    json_object_set_new(doc, "sessions_live", json_integer((json_int_t)zhashx_size(sup->sessions)));
    json_object_set_new(doc, "sessions_max", json_integer(sup->tree.sessions_max));
    json_object_set_new(doc, "quarantined", json_integer(s_quarantined(sup, now)));
    for (size_t i = 0; i < sup->tree.nspecs; i++)
        if (sup->kids[i])
            json_array_append_new(actors, s_actor_row(sup->kids[i], now));
    char *head = json_dumps(doc, JSON_COMPACT), *body = json_dumps(actors, JSON_COMPACT);
    size_t used = (head ? strlen(head) : 0) + (body ? strlen(body) : 0) + 64;
    free(head);
    free(body);
    size_t omitted = used < SOUK_CAP_DOC
                     ? s_add_sessions(sup, actors, SOUK_CAP_DOC - used, now)
                     : zhashx_size(sup->sessions);
    json_object_set_new(doc, "sessions_omitted", json_integer((json_int_t)omitted));
    json_object_set_new(doc, "actors", actors);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

static void s_reply(sup_t *sup, const void *id, size_t idlen, const char *json)
{
    souk_msg_t r = { .type = SOUK_MSG_STATUS_REP };
    r.status_rep.json = (char *)(json ? json : "{}");
    int rc = souk_msg_send(sup->control, id, idlen, &r, ZMQ_DONTWAIT);
    if (rc != SOUK_OK)
        SLOG_WARN("control.unsent", "type=status_rep err=%s", souk_errname(rc));
}

static void s_kill(sup_t *sup, const void *id, size_t idlen, const souk_kill_t *k)
{
    sup_child_t *c = sup_child_find(sup, k->name);
    json_t *doc;
    if (!c || !c->pid)
        doc = json_pack("{sbss}", "ok", 0, "error", "no running actor of that name");
    else if (k->signal < 1 || k->signal >= NSIG)
        doc = json_pack("{sbss}", "ok", 0, "error", "no such signal");
    else if (kill(c->pid, (int)k->signal) < 0)
        doc = json_pack("{sbss}", "ok", 0, "error", strerror(errno));
    else
        doc = json_pack("{sbsssisI}", "ok", 1, "name", c->name, "pid", (int)c->pid, "signal",
                        (json_int_t)k->signal);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    s_reply(sup, id, idlen, text);
    free(text);
    json_decref(doc);
}

/* ---- messages in --------------------------------------------------------- */

/* An actor's routing id is its name; a client's is binary. */
static sup_child_t *s_sender(sup_t *sup, const unsigned char *id, size_t idlen)
{
    char name[SOUK_CAP_NAME + 1];
    if (idlen == 0 || idlen > SOUK_CAP_NAME || id[0] == 0)
        return NULL;
    memcpy(name, id, idlen);
    name[idlen] = '\0';
    if (strlen(name) != idlen)
        return NULL;
    return sup_child_find(sup, name);
}

static void s_dispatch(sup_t *sup, const unsigned char *id, size_t idlen, souk_msg_t *m)
{
    sup_child_t *c = s_sender(sup, id, idlen);
    if (c)
        c->seen_ms = souk_now_ms();
    switch (m->type) {
    case SOUK_MSG_HELLO:
    case SOUK_MSG_READY:
    case SOUK_MSG_HEARTBEAT:
        if (c)
            sup_child_message(sup, c, m);
        else
            SLOG_DEBUG("control.unknown_actor", "type=%s", souk_msg_name(m->type));
        break;
    case SOUK_MSG_SPAWN_SESSION:
        sup_session_request(sup, m->spawn_session.waid);
        break;
    case SOUK_MSG_STATUS_REQ: {
        char *json = s_status_json(sup);
        s_reply(sup, id, idlen, json);
        free(json);
        break;
    }
    case SOUK_MSG_METRICS_REQ: {
        char *text = sup_metrics_render(sup);
        souk_msg_t r = { .type = SOUK_MSG_METRICS_REP };
        r.metrics_rep.text = text && strlen(text) <= SOUK_CAP_DOC ? text : "";
        int rc = souk_msg_send(sup->control, id, idlen, &r, ZMQ_DONTWAIT);
        if (rc != SOUK_OK)
            SLOG_WARN("control.unsent", "type=metrics_rep err=%s", souk_errname(rc));
        free(text);
        break;
    }
    case SOUK_MSG_KILL:
        s_kill(sup, id, idlen, &m->kill);
        break;
    case SOUK_MSG_EVENT:
        s_publish(sup, m);
        break;
    default:
        SLOG_WARN("control.unexpected", "type=%s", souk_msg_name(m->type));
        break;
    }
}

void sup_control_drain(sup_t *sup)
{
    for (int i = 0; i < DRAIN_BATCH; i++) {
        unsigned char id[256];
        size_t idlen = sizeof id;
        char err[128];
        souk_msg_t m;
        int rc = souk_msg_recv(sup->control, id, &idlen, &m, ZMQ_DONTWAIT, err, sizeof err);
        if (rc == SOUK_EBUSY || rc == SOUK_EIO)
            return;
        if (rc != SOUK_OK) {
            SLOG_WARN("control.bad_message", "err=%s reason=\"%s\"", souk_errname(rc), err);
            continue;
        }
        s_dispatch(sup, id, idlen, &m);
        souk_msg_clear(&m);
    }
}
