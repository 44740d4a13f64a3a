/* The web console: one page at /console for the operator and the merchant —
 * a WhatsApp-like chat with the shop as any test user, the live actor tree
 * with a kill button, and the orders, tickets and outbox as they change.
 *
 * Off unless SOUK_CONSOLE_TOKEN is set. The browser presents the token once
 * as /console?token=…, which is answered 303 to /console with the token in
 * an HttpOnly, SameSite=Strict cookie scoped to /console (Secure when the
 * public URL is https), so it leaves the address bar and no script can read
 * it. The page and its websocket (/console/ws, protocol "souk-console")
 * check the cookie (or the query) in constant time; without it they answer
 * 401. Voice notes uploaded from the page are kept in
 * $SOUK_DATA/console-media/ and served at /console/media/<128-bit random
 * id>, the capability a session needs to download them, like Twilio's
 * media URLs.
 *
 * A message typed in the page takes the webhook's own path after the token
 * check: the console builds the parameters Twilio would send (MessageSid,
 * From, WaId, ProfileName, Body, NumMedia, MediaUrl0…) and hands them to
 * gw_routing_inbound, so dedupe, session start, the reply budget and the
 * inline/later decision are the ones a real webhook gets; the answer comes
 * back through gw_console_answer as the TwiML Twilio would have read. Nobody
 * outside can inject one: the websocket is the only way in, behind the token.
 *
 * Later replies, the actor tree and the kill button use the supervisor's
 * own endpoints, like `souk events` and `souk status`: a SUB on the events
 * PUB (lifecycle events, the console sender's "outbound" messages) and a
 * client DEALER on control (STATUS_REQ, KILL), adopted into the gateway's
 * libwebsockets loop like its other sockets. Orders, tickets and the outbox
 * come from a store handle the console opens for reading, refreshed once a
 * second and only while a page is open (newest CONSOLE_ROWS of each), so a
 * gateway nobody watches never touches the store. */
#include "gateway.h"

#include "souk/endpoints.h"
#include "souk/error.h"
#include "souk/log.h"
#include "souk/store.h"
#include "souk/twilio.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define COOKIE_NAME "souk_console"
#define WS_PROTOCOL "souk-console"
#define BUS_PROTOCOL "souk-console-bus"
#define CONSOLE_ROWS 30                  /* newest orders, tickets, outbox rows shown */
#define REFRESH_MS 1000                  /* store and status refresh while a page is open */
#define STATUS_WAIT_MS 3000              /* a status request unanswered this long is asked again */
#define RX_MAX (3 * 1024 * 1024)         /* one websocket message from the page */
#define MEDIA_MAX (2 * 1024 * 1024)      /* one voice note */
#define QUEUE_MAX (8 * 1024 * 1024)      /* bytes waiting for a slow page before it is dropped */
#define BODY_MAX 1600                    /* Twilio's limit for a WhatsApp body */
#define TEXT_PLAIN "text/plain; charset=utf-8"

extern const unsigned char gw_console_page[]; /* console.html, embedded at build time */
extern const size_t gw_console_page_len;

typedef struct out_msg {
    struct out_msg *next;
    size_t len;
    unsigned char buf[]; /* LWS_PRE bytes, then the text */
} out_msg_t;

/* One open page: the websocket's per-session data. */
typedef struct client {
    struct client *prev, *next;
    struct lws *wsi;
    out_msg_t *head, *tail;
    size_t queued;
    char *rx;
    size_t rx_len;
    bool rx_overflow;
} client_t;

/* A message sent from a page, waiting for routing's answer. */
typedef struct creq {
    struct creq *next;
    client_t *client;  /* NULL once the page closed */
    gw_request_t *req; /* routing's handle while routed */
    char id[64];       /* the page's id for the message */
    char sid[GW_SID_MAX + 1];
} creq_t;

struct gw_console {
    gw_t *gw;
    zsock_t *events;   /* SUB on the supervisor's events */
    zsock_t *control;  /* DEALER, a client of the supervisor */
    store_t *store;    /* opened on the first refresh */
    bool store_failed;
    client_t *clients;
    size_t nclients;
    creq_t *creqs;
    int64_t status_asked_ms; /* 0: no request outstanding */
    bool status_again;       /* something changed while one was outstanding */
    char *status;      /* last status message sent, for a new page */
    char *data;        /* last data message sent, for a new page */
    char media_dir[512];
    bool timer_armed;
    lws_sorted_usec_list_t sul_refresh;
};

static int s_tag_console_bus;

/* ---- the token ------------------------------------------------------------------ */

static bool s_token_equal(const char *want, const char *got, size_t got_len)
{
    size_t want_len = strlen(want);
    unsigned char diff = (unsigned char)(want_len != got_len);
    for (size_t i = 0; i < got_len; i++)
        diff |= (unsigned char)(got[i] ^ want[i < want_len ? i : 0]);
    return diff == 0 && want_len > 0;
}

/* The token the request presents as ?token= (query), else as the cookie. */
static bool s_query_token(struct lws *wsi, char *out, size_t cap)
{
    char frag[512];
    for (int i = 0;; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0)
            return false;
        if (strncmp(frag, "token=", 6) == 0) {
            snprintf(out, cap, "%s", frag + 6);
            return true;
        }
    }
}

static bool s_cookie_token(struct lws *wsi, char *out, size_t cap)
{
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COOKIE);
    if (total <= 0 || total > 8192)
        return false;
    char *c = malloc((size_t)total + 1);
    if (!c || lws_hdr_copy(wsi, c, total + 1, WSI_TOKEN_HTTP_COOKIE) < 0) {
        free(c);
        return false;
    }
    bool found = false;
    for (char *save = NULL, *p = strtok_r(c, ";", &save); p; p = strtok_r(NULL, ";", &save)) {
        while (*p == ' ')
            p++;
        if (strncmp(p, COOKIE_NAME "=", sizeof COOKIE_NAME) == 0) {
            snprintf(out, cap, "%s", p + sizeof COOKIE_NAME);
            found = true;
            break;
        }
    }
    free(c);
    return found;
}

typedef enum { AUTH_NONE, AUTH_COOKIE, AUTH_QUERY } auth_t;

static auth_t s_auth(gw_t *gw, struct lws *wsi)
{
    char got[512];
    const char *want = gw->cfg->console_token;
    if (s_query_token(wsi, got, sizeof got) && s_token_equal(want, got, strlen(got)))
        return AUTH_QUERY;
    if (s_cookie_token(wsi, got, sizeof got) && s_token_equal(want, got, strlen(got)))
        return AUTH_COOKIE;
    return AUTH_NONE;
}

/* ---- HTTP ---------------------------------------------------------------------------- */

bool gw_console_path(const char *path)
{
    return strcmp(path, "/console") == 0 || strncmp(path, "/console/", 9) == 0;
}

static void s_text(gw_console_http_t *out, int status, const char *text)
{
    out->status = status;
    out->content_type = TEXT_PLAIN;
    out->body = strdup(text);
    out->len = out->body ? strlen(text) : 0;
}

/* "<32 hex>.<ext>", as s_store_media names them: nothing else is opened. */
static bool s_media_name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len < 34 || len > 37)
        return false;
    const char *ext = name + 33;
    return strspn(name, "0123456789abcdef") == 32 && name[32] == '.'
           && strspn(ext, "abcdefghijklmnopqrstuvwxyz0123456789") == len - 33;
}

static const char *s_media_type(const char *name)
{
    const char *ext = strrchr(name, '.') + 1;
    if (!strcmp(ext, "ogg"))
        return "audio/ogg";
    if (!strcmp(ext, "mp3"))
        return "audio/mpeg";
    if (!strcmp(ext, "wav"))
        return "audio/wav";
    if (!strcmp(ext, "webm"))
        return "audio/webm";
    return "application/octet-stream";
}

static void s_media(gw_console_t *self, const char *name, gw_console_http_t *out)
{
    if (!s_media_name_ok(name)) {
        s_text(out, 404, "not found\n");
        return;
    }
    char path[640];
    snprintf(path, sizeof path, "%s/%s", self->media_dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size > MEDIA_MAX) {
        if (fd >= 0)
            close(fd);
        s_text(out, 404, "not found\n");
        return;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    ssize_t n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
    close(fd);
    if (n != st.st_size) {
        free(buf);
        s_text(out, 500, "cannot read the file\n");
        return;
    }
    out->status = 200;
    out->content_type = s_media_type(name);
    out->body = buf;
    out->len = (size_t)n;
}

void gw_console_http(gw_t *gw, struct lws *wsi, const char *path, gw_console_http_t *out)
{
    gw_console_t *self = gw->console;
    memset(out, 0, sizeof *out);
    if (!self) { /* off: nothing is there */
        s_text(out, 404, "not found\n");
        return;
    }
    if (strncmp(path, "/console/media/", 15) == 0) {
        s_media(self, path + 15, out);
        return;
    }
    if (strcmp(path, "/console") != 0 && strcmp(path, "/console/") != 0) {
        s_text(out, 404, "not found\n");
        return;
    }
    auth_t auth = s_auth(gw, wsi);
    if (auth == AUTH_NONE) {
        SLOG_WARN("console.unauthorized", "what=page");
        s_text(out, 401, "the console needs its token: open /console?token=SOUK_CONSOLE_TOKEN\n");
        return;
    }
    if (auth == AUTH_QUERY) { /* once: into the cookie, out of the address bar */
        snprintf(out->set_cookie, sizeof out->set_cookie,
                 COOKIE_NAME "=%s; Path=/console; HttpOnly; SameSite=Strict%s",
                 gw->cfg->console_token,
                 strncmp(gw->cfg->public_url, "https:", 6) == 0 ? "; Secure" : "");
        snprintf(out->location, sizeof out->location, "/console");
        s_text(out, 303, "see /console\n");
        return;
    }
    out->status = 200;
    out->content_type = "text/html; charset=utf-8";
    out->body = malloc(gw_console_page_len + 1);
    out->len = out->body ? gw_console_page_len : 0;
    if (out->body)
        memcpy(out->body, gw_console_page, gw_console_page_len);
    else
        s_text(out, 500, "out of memory\n");
}

/* A short plain answer written now, from a callback that has not answered. */
static void s_write_plain(struct lws *wsi, int status, const char *text)
{
    unsigned char buf[LWS_PRE + 1024];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf;
    char len[16];
    int nlen = snprintf(len, sizeof len, "%zu", strlen(text));
    if (lws_add_http_header_status(wsi, (unsigned int)status, &p, end)
        || lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, (unsigned char *)TEXT_PLAIN,
                                        (int)strlen(TEXT_PLAIN), &p, end)
        || lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, (unsigned char *)len,
                                        nlen, &p, end)
        || lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (unsigned char *)"close", 5, &p,
                                        end)
        || lws_finalize_http_header(wsi, &p, end))
        return;
    size_t n = strlen(text);
    memcpy(p, text, n);
    p += n;
    lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_FINAL);
}

int gw_console_confirm_upgrade(gw_t *gw, struct lws *wsi)
{
    char path[64] = "";
    lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI);
    char proto[64] = "";
    lws_hdr_copy(wsi, proto, sizeof proto, WSI_TOKEN_PROTOCOL);
    if (!gw->console || strcmp(path, "/console/ws") != 0) {
        s_write_plain(wsi, 404, "not found\n");
        return 1;
    }
    if (s_auth(gw, wsi) == AUTH_NONE) {
        SLOG_WARN("console.unauthorized", "what=websocket");
        s_write_plain(wsi, 401, "the console needs its token\n");
        return 1;
    }
    if (strcmp(proto, WS_PROTOCOL) != 0) {
        s_write_plain(wsi, 400, "websocket protocol must be " WS_PROTOCOL "\n");
        return 1;
    }
    return 0;
}

/* ---- pages: sending ---------------------------------------------------------------- */

static void s_client_drop_queue(client_t *c)
{
    while (c->head) {
        out_msg_t *m = c->head;
        c->head = m->next;
        free(m);
    }
    c->tail = NULL;
    c->queued = 0;
}

/* Queues a text for one page; a page that lets QUEUE_MAX pile up is closed. */
static void s_send_text(client_t *c, const char *text, size_t len)
{
    if (c->queued + len > QUEUE_MAX) {
        SLOG_WARN("console.slow_page", "queued=%zu", c->queued);
        s_client_drop_queue(c);
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
        return;
    }
    out_msg_t *m = malloc(sizeof *m + LWS_PRE + len);
    if (!m)
        return;
    m->next = NULL;
    m->len = len;
    memcpy(m->buf + LWS_PRE, text, len);
    if (c->tail)
        c->tail->next = m;
    else
        c->head = m;
    c->tail = m;
    c->queued += len;
    lws_callback_on_writable(c->wsi);
}

/* Sends doc (a JSON object, consumed) to one page, or to all when c is NULL;
 * returns the text when keep (caller frees), else NULL. */
static char *s_send(gw_console_t *self, client_t *c, json_t *doc, bool keep)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return NULL;
    size_t len = strlen(text);
    if (c)
        s_send_text(c, text, len);
    else
        for (client_t *p = self->clients; p; p = p->next)
            s_send_text(p, text, len);
    if (keep)
        return text;
    free(text);
    return NULL;
}

static void s_error(gw_console_t *self, client_t *c, const char *id, const char *text)
{
    s_send(self, c, json_pack("{s:s, s:s, s:s}", "type", "error", "id", id ? id : "", "text", text),
           false);
}

/* ---- the bus: events, status, kill -------------------------------------------------------- */

static void s_pump(gw_console_t *self);

static void s_ask_status(gw_console_t *self)
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
        self->status = s_send(self, NULL, json_pack("{s:s, s:o}", "type", "status", "doc", doc), true);
        if (self->status_again)
            s_ask_status(self);
    } else { /* KILL's answer: {"ok":…} */
        s_send(self, NULL, json_pack("{s:s, s:o}", "type", "killed", "result", doc), false);
        s_ask_status(self);
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
    s_send(self, NULL, json_pack("{s:s, s:o}", "type", "event", "event", ev), false);
    if (strcmp(e->kind, "socket") != 0 && strcmp(e->kind, "outbound") != 0)
        s_ask_status(self);
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
            if (m.type == SOUK_MSG_EVENT && self->clients)
                s_on_event(self, &m.event);
            else if (m.type == SOUK_MSG_STATUS_REP)
                s_on_status_rep(self, m.status_rep.json);
            souk_msg_clear(&m);
        }
    }
}

static int s_bus_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len)
{
    (void)user; (void)in; (void)len;
    gw_t *gw = lws_context_user(lws_get_context(wsi));
    if (reason == LWS_CALLBACK_RAW_RX_FILE && gw->console)
        s_pump(gw->console);
    else if (reason == LWS_CALLBACK_RAW_CLOSE_FILE && gw->console && !gw->done)
        SLOG_WARN("console.bus_fd_closed", "console=stale");
    return 0;
}

/* ---- orders, tickets, outbox ------------------------------------------------------------ */

typedef struct {
    json_t *rows;
} collect_t;

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
        if (store_open(self->gw->cfg->store, self->gw->cfg->data_dir, &opt, &self->store, err,
                       sizeof err) != SOUK_OK) {
            SLOG_WARN("console.store", "reason=\"%s\"", err);
            self->store_failed = true;
        }
    }
    if (!self->store)
        return;
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
    if (self->data && strcmp(self->data, text) == 0) { /* nothing moved */
        free(text);
        return;
    }
    free(self->data);
    self->data = text;
    for (client_t *p = self->clients; p; p = p->next)
        s_send_text(p, text, strlen(text));
}

static void s_refresh(lws_sorted_usec_list_t *sul)
{
    gw_console_t *self = lws_container_of(sul, gw_console_t, sul_refresh);
    self->timer_armed = false;
    if (!self->clients)
        return;
    s_refresh_data(self);
    s_ask_status(self);
    self->timer_armed = true;
    lws_sul_schedule(self->gw->ctx, 0, &self->sul_refresh, s_refresh,
                     (lws_usec_t)REFRESH_MS * LWS_US_PER_MS);
}

/* ---- pages: what they ask ---------------------------------------------------------------- */

static bool s_is_digits(const char *s, size_t lo, size_t hi)
{
    size_t n = strlen(s);
    return n >= lo && n <= hi && strspn(s, "0123456789") == n;
}

/* 16 random bytes as 32 hex digits and a NUL: MessageSids, media names
 * (a media URL is its own capability, so no weak fallback). */
static bool s_random_hex(char out[33])
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return false;
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    return true;
}

static int s_b64_value(int ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

/* Decodes standard base64 (padding optional); NULL when malformed. */
static unsigned char *s_b64_decode(const char *in, size_t *out_len)
{
    size_t n = strlen(in);
    while (n > 0 && in[n - 1] == '=')
        n--;
    unsigned char *out = malloc(n / 4 * 3 + 3);
    if (!out)
        return NULL;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = s_b64_value((unsigned char)in[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    *out_len = o;
    return out;
}

static const char *s_media_ext(const char *ctype)
{
    if (!strncmp(ctype, "audio/ogg", 9) || !strncmp(ctype, "audio/opus", 10))
        return "ogg";
    if (!strcmp(ctype, "audio/mpeg") || !strcmp(ctype, "audio/mp3"))
        return "mp3";
    if (!strcmp(ctype, "audio/wav") || !strcmp(ctype, "audio/x-wav"))
        return "wav";
    if (!strncmp(ctype, "audio/webm", 10))
        return "webm";
    return NULL;
}

/* Stores an uploaded voice note; its URL (under the public URL) in url. */
static const char *s_store_media(gw_console_t *self, json_t *media, char *url, size_t cap,
                                 const char **ctype_out)
{
    const char *ctype = json_string_value(json_object_get(media, "content_type"));
    const char *data = json_string_value(json_object_get(media, "data"));
    const char *ext = ctype ? s_media_ext(ctype) : NULL;
    if (!ext || !data)
        return "a voice note must be audio/ogg, audio/mpeg, audio/wav or audio/webm";
    size_t len = 0;
    unsigned char *bytes = s_b64_decode(data, &len);
    if (!bytes)
        return "the voice note is not valid base64";
    if (len == 0 || len > MEDIA_MAX) {
        free(bytes);
        return "a voice note must be 1 byte to 2 MiB";
    }
    char id[33], name[48], path[640];
    if (!s_random_hex(id)) {
        free(bytes);
        return "no randomness for the file name";
    }
    snprintf(name, sizeof name, "%s.%s", id, ext);
    snprintf(path, sizeof path, "%s/%s", self->media_dir, name);
    mkdir(self->media_dir, 0700);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, bytes, len) == (ssize_t)len;
    if (fd >= 0)
        close(fd);
    free(bytes);
    if (!ok)
        return "could not store the voice note";
    snprintf(url, cap, "%s/console/media/%s", self->gw->sign_base, name);
    *ctype_out = ctype;
    return NULL;
}

/* The parameters Twilio would have posted for this message. */
static char *s_params(gw_t *gw, const char *sid, const char *waid, const char *from,
                      const char *name, const char *body, const char *media_url,
                      const char *media_type)
{
    const char *to = *gw->cfg->twilio_whatsapp_from ? gw->cfg->twilio_whatsapp_from
                                                    : "whatsapp:+14155238886";
    json_t *p = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
                          "MessageSid", sid, "SmsMessageSid", sid, "SmsSid", sid, "AccountSid",
                          *gw->cfg->twilio_account_sid ? gw->cfg->twilio_account_sid : "ACconsole",
                          "From", from, "To", to, "Body", body, "NumMedia", media_url ? "1" : "0",
                          "NumSegments", "1", "ProfileName", name, "WaId", waid, "MessageType",
                          media_url ? "audio" : "text", "SmsStatus", "received", "ApiVersion",
                          "2010-04-01");
    if (p && media_url) {
        json_object_set_new(p, "MediaUrl0", json_string(media_url));
        json_object_set_new(p, "MediaContentType0", json_string(media_type));
    }
    char *s = p ? json_dumps(p, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(p);
    return s;
}

static creq_t *s_creq_find(gw_console_t *self, const void *ptr)
{
    for (creq_t *r = self->creqs; r; r = r->next)
        if (r == ptr)
            return r;
    return NULL;
}

static void s_creq_remove(gw_console_t *self, creq_t *r)
{
    for (creq_t **pp = &self->creqs; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            free(r);
            return;
        }
}

/* Characters (code points) of valid UTF-8, as Twilio counts a body. */
static size_t s_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void s_on_send(gw_console_t *self, client_t *c, json_t *msg)
{
    gw_t *gw = self->gw;
    const char *id = json_string_value(json_object_get(msg, "id"));
    const char *waid = json_string_value(json_object_get(msg, "waid"));
    const char *name = json_string_value(json_object_get(msg, "name"));
    const char *body = json_string_value(json_object_get(msg, "body"));
    json_t *media = json_object_get(msg, "media");
    id = id && strlen(id) < sizeof ((creq_t *)0)->id ? id : "";
    if (gw->draining) {
        s_error(self, c, id, "souk is shutting down");
        return;
    }
    if (!waid || !s_is_digits(waid, 6, 15)) {
        s_error(self, c, id, "the number must be 6 to 15 digits (country code first)");
        return;
    }
    if (!body)
        body = "";
    if (!name)
        name = "";
    if (s_chars(body) > BODY_MAX || strlen(name) > SOUK_CAP_ID || (!*body && !json_is_object(media))) {
        s_error(self, c, id, "a message needs a body (at most 1,600 characters) or a voice note");
        return;
    }
    char url[640];
    const char *ctype = NULL;
    if (json_is_object(media)) {
        const char *why = s_store_media(self, media, url, sizeof url, &ctype);
        if (why) {
            s_error(self, c, id, why);
            return;
        }
    }
    char sid[GW_SID_MAX + 1] = "SM", from[SOUK_CAP_ID], request_id[GW_REQUEST_ID_LEN];
    if (!s_random_hex(sid + 2)) {
        s_error(self, c, id, "no randomness for the MessageSid");
        return;
    }
    snprintf(from, sizeof from, "whatsapp:+%s", waid);
    gw_request_id(gw, request_id);
    char *params = s_params(gw, sid, waid, from, name, body, ctype ? url : NULL, ctype);
    creq_t *r = calloc(1, sizeof *r);
    if (!params || !r) {
        free(params);
        free(r);
        s_error(self, c, id, "out of memory");
        return;
    }
    r->client = c;
    snprintf(r->id, sizeof r->id, "%s", id);
    snprintf(r->sid, sizeof r->sid, "%s", sid);
    r->next = self->creqs;
    self->creqs = r;
    gw_inbound_t in = {
        .request_id = request_id, .msg_sid = sid, .waid = waid, .from = from, .profile = name,
        .body = body, .num_media = ctype ? 1 : 0, .params = params,
        .received_ms = (uint64_t)souk_wall_ms(),
    };
    s_send(self, c, json_pack("{s:s, s:s, s:s, s:s}", "type", "sent", "id", id, "msg_sid", sid,
                              "request_id", request_id), false);
    char masked[SOUK_CAP_ID];
    twilio_mask_phone(from, masked, sizeof masked);
    souk_log_request(request_id);
    SLOG_INFO("console.inbound", "sid=%s from=%s media=%d", sid, masked, ctype ? 1 : 0);
    souk_log_request(NULL);
    gw_request_t *req = NULL;
    gw_disposition_t d = gw_routing_inbound(gw->routing, &in, r, &req, souk_now_ms());
    free(params);
    if (d == GW_ROUTED && s_creq_find(self, r))
        r->req = req;
}

static void s_on_kill(gw_console_t *self, client_t *c, json_t *msg)
{
    const char *name = json_string_value(json_object_get(msg, "name"));
    if (!name || !*name || strlen(name) > SOUK_CAP_NAME) {
        s_error(self, c, NULL, "kill: which actor?");
        return;
    }
    souk_msg_t m = { .type = SOUK_MSG_KILL };
    m.kill.name = (char *)name;
    m.kill.signal = SIGKILL; /* a crash, so the supervisor restarts it */
    SLOG_INFO("console.kill", "name_len=%zu", strlen(name));
    if (souk_msg_send(self->control, NULL, 0, &m, ZMQ_DONTWAIT) != SOUK_OK)
        s_error(self, c, NULL, "kill: the supervisor is not reachable");
    s_pump(self);
}

static void s_on_message(gw_console_t *self, client_t *c, const char *text, size_t len)
{
    json_t *msg = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (!type)
        s_error(self, c, NULL, "expected a JSON object with a type");
    else if (!strcmp(type, "send"))
        s_on_send(self, c, msg);
    else if (!strcmp(type, "kill"))
        s_on_kill(self, c, msg);
    else if (!strcmp(type, "status"))
        s_ask_status(self);
    else
        s_error(self, c, NULL, "unknown type");
    json_decref(msg);
}

bool gw_console_answer(gw_t *gw, void *http, const gw_answer_t *a)
{
    gw_console_t *self = gw->console;
    creq_t *r = self ? s_creq_find(self, http) : NULL;
    if (!r)
        return false;
    if (r->client)
        s_send(self, r->client,
               json_pack("{s:s, s:s, s:s, s:i, s:s, s:s%}", "type", "answer", "id", r->id, "msg_sid",
                         r->sid, "status", a->status, "carries", a->carries ? a->carries : "",
                         "twiml", a->body, a->len),
               false);
    s_creq_remove(self, r);
    return true;
}

/* ---- the websocket ------------------------------------------------------------------------ */

static void s_client_open(gw_console_t *self, client_t *c, struct lws *wsi)
{
    memset(c, 0, sizeof *c);
    c->wsi = wsi;
    c->next = self->clients;
    if (self->clients)
        self->clients->prev = c;
    self->clients = c;
    self->nclients++;
    SLOG_INFO("console.open", "pages=%zu", self->nclients);
    gw_t *gw = self->gw;
    s_send(self, c, json_pack("{s:s, s:s, s:s, s:b}", "type", "hello", "shop", gw->cfg->shop_name,
                              "sender", *gw->cfg->twilio_account_sid ? "twilio" : "console",
                              "draining", gw->draining), false);
    if (self->status)
        s_send_text(c, self->status, strlen(self->status));
    if (self->data)
        s_send_text(c, self->data, strlen(self->data));
    if (!self->timer_armed) { /* the first page: start refreshing */
        self->timer_armed = true;
        lws_sul_schedule(gw->ctx, 0, &self->sul_refresh, s_refresh, 1);
    }
}

static void s_client_close(gw_console_t *self, client_t *c)
{
    if (!c->wsi)
        return;
    for (creq_t *r = self->creqs; r; r = r->next)
        if (r->client == c) {
            r->client = NULL;
            if (r->req) { /* its reply, when offered, goes out through the sender */
                gw_routing_request_gone(self->gw->routing, r->req);
                r->req = NULL;
            }
        }
    /* requests the page no longer waits for and routing has forgotten */
    for (creq_t **pp = &self->creqs; *pp;) {
        creq_t *r = *pp;
        if (!r->client && !r->req) {
            *pp = r->next;
            free(r);
        } else {
            pp = &r->next;
        }
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        self->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    self->nclients--;
    s_client_drop_queue(c);
    free(c->rx);
    memset(c, 0, sizeof *c);
    SLOG_INFO("console.close", "pages=%zu", self->nclients);
}

static int s_ws_writeable(client_t *c)
{
    out_msg_t *m = c->head;
    if (!m)
        return 0;
    int n = lws_write(c->wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
    c->head = m->next;
    if (!c->head)
        c->tail = NULL;
    c->queued -= m->len;
    free(m);
    if (n < 0)
        return -1;
    if (c->head)
        lws_callback_on_writable(c->wsi);
    return 0;
}

static int s_ws_receive(gw_console_t *self, client_t *c, struct lws *wsi, const void *in, size_t len)
{
    if (!c->rx_overflow && c->rx_len + len <= RX_MAX) {
        char *grown = realloc(c->rx, c->rx_len + len + 1);
        if (grown) {
            c->rx = grown;
            memcpy(c->rx + c->rx_len, in, len);
            c->rx_len += len;
        } else {
            c->rx_overflow = true;
        }
    } else {
        c->rx_overflow = true;
    }
    if (!lws_is_final_fragment(wsi))
        return 0;
    if (c->rx_overflow)
        s_error(self, c, NULL, "message over 3 MiB");
    else
        s_on_message(self, c, c->rx, c->rx_len);
    free(c->rx);
    c->rx = NULL;
    c->rx_len = 0;
    c->rx_overflow = false;
    return 0;
}

static int s_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    gw_t *gw = lws_context_user(lws_get_context(wsi));
    gw_console_t *self = gw->console;
    client_t *c = user;
    int rc = 0;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        if (!self)
            return -1;
        s_client_open(self, c, wsi);
        break;
    case LWS_CALLBACK_RECEIVE:
        if (!self || !c->wsi)
            return -1;
        rc = s_ws_receive(self, c, wsi, in, len);
        break;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!self || !c->wsi)
            return 0;
        rc = s_ws_writeable(c);
        break;
    case LWS_CALLBACK_CLOSED:
        if (self && c)
            s_client_close(self, c);
        break;
    default:
        return 0;
    }
    gw_after_event(gw); /* routing may have sent on the bus */
    return rc;
}

void gw_console_protocols(struct lws_protocols *out)
{
    out[0] = (struct lws_protocols){ .name = WS_PROTOCOL, .callback = s_ws_callback,
                                     .per_session_data_size = sizeof(client_t) };
    out[1] = (struct lws_protocols){ .name = BUS_PROTOCOL, .callback = s_bus_callback };
}

/* ---- set-up ---------------------------------------------------------------------------------- */

static int s_adopt(gw_t *gw, zsock_t *sock)
{
    int copy = fcntl(zsock_fd(sock), F_DUPFD_CLOEXEC, 0); /* lws closes what it adopts */
    if (copy < 0)
        return -1;
    lws_adopt_desc_t d = {
        .vh = gw->vhost, .type = LWS_ADOPT_RAW_FILE_DESC, .fd.filefd = copy,
        .vh_prot_name = BUS_PROTOCOL, .opaque = &s_tag_console_bus,
    };
    if (!lws_adopt_descriptor_vhost_via_info(&d)) {
        close(copy);
        return -1;
    }
    return 0;
}

int gw_console_start(gw_t *gw)
{
    if (!*gw->cfg->console_token)
        return 0;
    gw_console_t *self = calloc(1, sizeof *self);
    if (!self)
        return -1;
    self->gw = gw;
    gw->console = self;
    snprintf(self->media_dir, sizeof self->media_dir, "%s/console-media", gw->cfg->data_dir);
    char ep[512];
    self->events = zsock_new(ZMQ_SUB);
    self->control = zsock_new(ZMQ_DEALER);
    if (!self->events || !self->control)
        return -1;
    zsock_set_linger(self->events, 0);
    zsock_set_linger(self->control, 0);
    zsock_set_rcvhwm(self->events, SOUK_HWM_DEFAULT);
    zsock_set_subscribe(self->events, "");
    souk_endpoint(ep, sizeof ep, gw->cfg->run_dir, SOUK_EP_EVENTS, 0);
    if (zsock_connect(self->events, "%s", ep) < 0)
        return -1;
    souk_endpoint(ep, sizeof ep, gw->cfg->run_dir, SOUK_EP_CONTROL, 0);
    if (zsock_connect(self->control, "%s", ep) < 0)
        return -1;
    if (s_adopt(gw, self->events) < 0 || s_adopt(gw, self->control) < 0)
        return -1;
    SLOG_INFO("console.on", "path=/console");
    return 0;
}

/* After lws_context_destroy: closing the pages needed the console. */
void gw_console_stop(gw_t *gw)
{
    gw_console_t *self = gw->console;
    if (!self)
        return;
    while (self->creqs) {
        creq_t *r = self->creqs;
        self->creqs = r->next;
        free(r);
    }
    zsock_destroy(&self->events);
    zsock_destroy(&self->control);
    store_close(&self->store);
    free(self->status);
    free(self->data);
    free(self);
    gw->console = NULL;
}
