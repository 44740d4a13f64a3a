/* What the console's pages watch: the supervisor's events and status, the
 * kill button, and the shop's orders, tickets and outbox.
 *
 * The console uses the supervisor's own endpoints, as `souk events` and
 * `souk status` do: a SUB on the events PUB (lifecycle events, and the
 * console sender's "outbound" messages, the later replies the chat shows)
 * and a client DEALER on control (STATUS_REQ, KILL), both adopted into the
 * gateway's libwebsockets loop like its other sockets. Status is asked on
 * every lifecycle event and once a second; orders, tickets and the outbox
 * come from a store handle opened for reading, refreshed once a second
 * (the newest CONSOLE_ROWS of each, sent only when something moved), and
 * only while a page is open: a gateway nobody watches never reads the
 * store. */
#include "console.h"

#include "souk/error.h"
#include "souk/log.h"
#include "souk/twilio.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONSOLE_ROWS 30      /* newest orders, tickets, outbox rows shown */
#define REFRESH_MS 1000      /* status and data refresh while a page is open */
#define STATUS_WAIT_MS 3000  /* a status request unanswered this long is asked again */

typedef struct {
    json_t *rows;
} collect_t;

static void s_pump(gw_console_t *self);

void gw_console_ask_status(gw_console_t *self)
{
    int64_t now = souk_now_ms();
    if (self->status_asked_ms && now - self->status_asked_ms < STATUS_WAIT_MS) {
        self->status_again = true;
        return;
    }
    souk_msg_t m = { .type = SOUK_MSG_STATUS_REQ };
    m.status_req.ts = (uint64_t)souk_wall_ms();
    if (souk_msg_send(self->control, NULL, 0, &m, ZMQ_DONTWAIT) == SOUK_OK) {
        self->status_asked_ms = now;
        self->status_again = false;
    }
    s_pump(self); /* a send can swallow the edge of waiting input */
}

static void s_on_status_rep(gw_console_t *self, const char *json)
{
    json_t *doc = json_loads(json, 0, NULL);
    if (!doc)
        return;
    if (json_object_get(doc, "actors")) {
        self->status_asked_ms = 0;
        free(self->status);
        json_t *msg = json_pack("{s:s, s:o}", "type", "status", "doc", doc);
        self->status = gw_console_send(self, NULL, msg, true);
        if (self->status_again)
            gw_console_ask_status(self);
    } else { /* KILL's answer: {"ok":…} */
        gw_console_send(self, NULL, json_pack("{s:s, s:o}", "type", "killed", "result", doc), false);
        gw_console_ask_status(self);
    }
}

static void s_on_event(gw_console_t *self, const souk_event_t *e)
{
    json_t *ev = json_pack("{s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "ts_ms", (json_int_t)e->ts_ms,
                           "kind", e->kind, "name", e->name, "role", e->role, "pid",
                           (json_int_t)e->pid, "code", (json_int_t)e->code, "signal",
                           (json_int_t)e->signal, "detail", e->detail);
    if (!strcmp(e->kind, "outbound")) { /* a later reply: the page wants it as JSON */
        json_t *detail = json_loads(e->detail, 0, NULL);
        if (detail)
            json_object_set_new(ev, "outbound", detail);
    }
    gw_console_send(self, NULL, json_pack("{s:s, s:o}", "type", "event", "event", ev), false);
    if (strcmp(e->kind, "socket") != 0 && strcmp(e->kind, "outbound") != 0)
        gw_console_ask_status(self);
}

static void s_pump(gw_console_t *self)
{
    zsock_t *socks[2] = { self->events, self->control };
    bool again = true;
    while (again) {
        again = false;
        for (int i = 0; i < 2; i++) {
            if (!(zsock_events(socks[i]) & ZMQ_POLLIN))
                continue;
            again = true;
            souk_msg_t m;
            char err[128];
            int rc = souk_msg_recv(socks[i], NULL, NULL, &m, ZMQ_DONTWAIT, err, sizeof err);
            if (rc != SOUK_OK) {
                if (rc != SOUK_EBUSY)
                    SLOG_WARN("console.bad_message", "err=%s reason=\"%s\"", souk_errname(rc), err);
                continue;
            }
            if (m.type == SOUK_MSG_EVENT && self->pages)
                s_on_event(self, &m.event);
            else if (m.type == SOUK_MSG_STATUS_REP)
                s_on_status_rep(self, m.status_rep.json);
            souk_msg_clear(&m);
        }
    }
}

int gw_console_bus_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                            size_t len)
{
    (void)user; (void)in; (void)len;
    gw_t *gw = lws_context_user(lws_get_context(wsi));
    if (reason == LWS_CALLBACK_RAW_RX_FILE && gw->console)
        s_pump(gw->console);
    else if (reason == LWS_CALLBACK_RAW_CLOSE_FILE && gw->console && !gw->done)
        SLOG_WARN("console.bus_closed", "effect=\"pages stop updating\"");
    return 0;
}

static int s_collect_order(const store_order_t *o, void *arg)
{
    collect_t *c = arg;
    json_t *items = json_loads(o->items ? o->items : "[]", 0, NULL);
    json_array_append_new(c->rows, json_pack("{s:s, s:s, s:s, s:I, s:s, s:o, s:I, s:I}", "order_id",
                                             o->order_id, "waid", o->waid, "status",
                                             store_order_status_name(o->status), "total_cents",
                                             (json_int_t)o->total_cents, "currency", o->currency,
                                             "items", items ? items : json_array(), "created_ms",
                                             (json_int_t)o->created_ms, "updated_ms",
                                             (json_int_t)o->updated_ms));
    return json_array_size(c->rows) >= CONSOLE_ROWS;
}

static int s_collect_ticket(const store_ticket_t *t, void *arg)
{
    collect_t *c = arg;
    json_array_append_new(c->rows, json_pack("{s:s, s:s, s:s, s:s, s:s?, s:I}", "ticket_id",
                                             t->ticket_id, "waid", t->waid, "status",
                                             store_ticket_status_name(t->status), "subject",
                                             t->subject ? t->subject : "", "order_id", t->order_id,
                                             "created_ms", (json_int_t)t->created_ms));
    return json_array_size(c->rows) >= CONSOLE_ROWS;
}

static int s_collect_outbox(const store_outbox_t *o, void *arg)
{
    collect_t *c = arg;
    json_array_append_new(c->rows, json_pack("{s:s, s:s?, s:s?, s:s, s:s, s:s, s:i, s:i, s:s?, s:I}",
                                             "key", o->key, "waid", o->waid, "to", o->to_addr,
                                             "kind", store_outbox_kind_name(o->kind), "state",
                                             store_outbox_state_name(o->state), "body", o->body,
                                             "attempts", o->attempts, "error_code", o->error_code,
                                             "error_reason", o->error_reason, "updated_ms",
                                             (json_int_t)o->updated_ms));
    return json_array_size(c->rows) >= CONSOLE_ROWS;
}

/* rc of a list, logged: the console shows what it could read */
static void s_list_done(gw_console_t *self, const char *what, int rc)
{
    if (rc != SOUK_OK)
        SLOG_DEBUG("console.list", "what=%s err=%s detail=\"%s\"", what, souk_errname(rc),
                   store_last_error(self->store));
}

static void s_refresh_data(gw_console_t *self)
{
    if (!self->store && !self->store_failed) {
        char err[256];
        store_options_t opt = { .busy_timeout_ms = 50 }; /* never hold the loop for long */
        if (store_open(self->gw->cfg->store, self->gw->cfg->store_dir, &opt, &self->store, err,
                       sizeof err) != SOUK_OK) {
            SLOG_WARN("console.store", "reason=\"%s\"", err);
            self->store_failed = true;
        }
    }
    if (!self->store)
        return;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    collect_t orders = { json_array() }, tickets = { json_array() }, outbox = { json_array() };
    if (orders.rows)
        s_list_done(self, "orders", store_order_list_all(self->store, s_collect_order, &orders));
    if (tickets.rows)
        s_list_done(self, "tickets", store_ticket_list_all(self->store, s_collect_ticket, &tickets));
    if (outbox.rows)
        s_list_done(self, "outbox", store_outbox_list_all(self->store, s_collect_outbox, &outbox));
    json_t *doc = json_pack("{s:s, s:o, s:o, s:o}", "type", "data", "orders", orders.rows,
                            "tickets", tickets.rows, "outbox", outbox.rows);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    bool same = self->data && strcmp(self->data, text) == 0;
    SLOG_DEBUG("console.refresh", "us=%lld bytes=%zu changed=%d",
               (long long)((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000),
               strlen(text), !same);
    if (same) { /* nothing moved */
        free(text);
        return;
    }
    free(self->data);
    self->data = text;
    for (gw_page_t *p = self->pages; p; p = p->next)
        gw_console_send_text(p, text, strlen(text));
}

static void s_refresh(lws_sorted_usec_list_t *sul)
{
    gw_console_t *self = lws_container_of(sul, gw_console_t, sul_refresh);
    self->refreshing = false;
    if (!self->pages)
        return;
    s_refresh_data(self);
    gw_console_ask_status(self);
    self->refreshing = true;
    lws_sul_schedule(self->gw->ctx, 0, &self->sul_refresh, s_refresh,
                     (lws_usec_t)REFRESH_MS * LWS_US_PER_MS);
}

void gw_console_kill(gw_console_t *self, gw_page_t *c, json_t *msg)
{
    const char *name = json_string_value(json_object_get(msg, "name"));
    if (!name || !*name || strlen(name) > SOUK_CAP_NAME) {
        gw_console_error(self, c, NULL, "kill: which actor?");
        return;
    }
    souk_msg_t m = { .type = SOUK_MSG_KILL };
    m.kill.name = (char *)name;
    m.kill.signal = SIGKILL; /* a crash, so the supervisor restarts it */
    char masked[SOUK_CAP_NAME + 1], quoted[2 * SOUK_CAP_NAME + 8];
    twilio_mask_phone(name, masked, sizeof masked); /* a session's name holds its number */
    SLOG_INFO("console.kill", "name=%s signal=KILL", souk_log_quote(masked, quoted, sizeof quoted));
    if (souk_msg_send(self->control, NULL, 0, &m, ZMQ_DONTWAIT) != SOUK_OK)
        gw_console_error(self, c, NULL, "kill: the supervisor is not reachable");
    s_pump(self);
}

void gw_console_feed_start(gw_console_t *self)
{
    if (self->refreshing)
        return;
    self->refreshing = true;
    lws_sul_schedule(self->gw->ctx, 0, &self->sul_refresh, s_refresh, 1);
}
