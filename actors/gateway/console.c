/* The web console: one page at /console for the operator and the merchant —
 * a WhatsApp-like chat with the shop as any test user, the live actor tree
 * with a kill button, and the orders, tickets and outbox as they change.
 * This file is its door, its page and its websocket; console_chat.c and
 * console_feed.c do what the page asks and what it watches (console.h).
 *
 * Off unless SOUK_CONSOLE_TOKEN is set. The browser presents the token once
 * as /console?token=…, which is answered 303 to /console with the token in
 * an HttpOnly, SameSite=Strict cookie scoped to /console (Secure when the
 * public URL is https), so it leaves the address bar and no script can read
 * it. The page and its websocket (/console/ws, protocol "souk-console")
 * check the cookie (or the query) in constant time; without it they answer
 * 401. The websocket also checks Origin (403 from another site's page). Voice notes uploaded from the page are served at
 * /console/media/<128-bit random id> without the token: the URL is the
 * capability a session needs to download one, as Twilio's media URLs are.
 *
 * The websocket carries JSON objects with a "type": to the page hello,
 * status, event, data, sent, answer, killed, error; from the page send,
 * kill, status. A page that lets QUEUE_MAX bytes pile up is closed rather
 * than let the gateway's memory grow. */
#include "console.h"

#include "souk/endpoints.h"
#include "souk/error.h"
#include "souk/log.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define COOKIE_NAME "souk_console"
#define WS_PROTOCOL "souk-console"
#define RX_MAX (3 * 1024 * 1024)         /* one websocket message from a page */
#define QUEUE_MAX (8 * 1024 * 1024)      /* bytes waiting for a slow page before it is closed */
#define TEXT_PLAIN "text/plain; charset=utf-8"

extern const unsigned char gw_console_page[]; /* console.html, embedded at build time */
extern const size_t gw_console_page_len;

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
            if (strlen(frag + 6) >= cap)
                return false;
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
            /* a longer value is wrong, never cut down to a prefix that matches */
            found = strlen(p + sizeof COOKIE_NAME) < cap;
            if (found)
                snprintf(out, cap, "%s", p + sizeof COOKIE_NAME);
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
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size > GW_CONSOLE_MEDIA_MAX) {
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

/* A browser names the page that opens a websocket in Origin: it must be
 * this host (as the browser reached it) or the public URL, so that another
 * site — even one on the same domain, which SameSite lets the cookie reach —
 * cannot drive the console. Clients without Origin are not browsers. */
static bool s_origin_ok(gw_t *gw, struct lws *wsi)
{
    char origin[256], host[256];
    if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0)
        return true;
    if (lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) < 0)
        return false;
    if (strcmp(origin, gw->sign_base) == 0)
        return true;
    const char *rest = !strncmp(origin, "http://", 7) ? origin + 7
                     : !strncmp(origin, "https://", 8) ? origin + 8
                                                       : NULL;
    return rest && lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST) > 0
           && strcasecmp(rest, host) == 0;
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
    if (!s_origin_ok(gw, wsi)) {
        SLOG_WARN("console.forbidden", "what=websocket reason=origin");
        s_write_plain(wsi, 403, "the console's websocket opens only from its own page\n");
        return 1;
    }
    if (strcmp(proto, WS_PROTOCOL) != 0) {
        s_write_plain(wsi, 400, "websocket protocol must be " WS_PROTOCOL "\n");
        return 1;
    }
    return 0;
}

/* ---- pages: sending ---------------------------------------------------------------- */

static void s_page_drop_queue(gw_page_t *c)
{
    while (c->head) {
        gw_page_out_t *m = c->head;
        c->head = m->next;
        free(m);
    }
    c->tail = NULL;
    c->queued = 0;
}

void gw_console_send_text(gw_page_t *c, const char *text, size_t len)
{
    if (c->closing)
        return;
    if (c->queued + len > QUEUE_MAX) {
        SLOG_WARN("console.slow_page", "queued=%zu", c->queued);
        s_page_drop_queue(c);
        c->closing = true;
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
        return;
    }
    gw_page_out_t *m = malloc(sizeof *m + LWS_PRE + len);
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

char *gw_console_send(gw_console_t *self, gw_page_t *c, json_t *doc, bool keep)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return NULL;
    size_t len = strlen(text);
    if (c)
        gw_console_send_text(c, text, len);
    else
        for (gw_page_t *p = self->pages; p; p = p->next)
            gw_console_send_text(p, text, len);
    if (keep)
        return text;
    free(text);
    return NULL;
}

void gw_console_error(gw_console_t *self, gw_page_t *c, const char *id, const char *text)
{
    json_t *doc = json_pack("{s:s, s:s, s:s}", "type", "error", "id", id ? id : "", "text", text);
    gw_console_send(self, c, doc, false);
}

/* ---- pages: what they ask ---------------------------------------------------------------- */

static void s_on_message(gw_console_t *self, gw_page_t *c, const char *text, size_t len)
{
    json_t *msg = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (!type)
        gw_console_error(self, c, NULL, "expected a JSON object with a type");
    else if (!strcmp(type, "send"))
        gw_console_chat_send(self, c, msg);
    else if (!strcmp(type, "kill"))
        gw_console_kill(self, c, msg);
    else if (!strcmp(type, "status"))
        gw_console_ask_status(self);
    else
        gw_console_error(self, c, NULL, "unknown type");
    json_decref(msg);
}

/* ---- the websocket ------------------------------------------------------------------------ */

static void s_page_open(gw_console_t *self, gw_page_t *c, struct lws *wsi)
{
    memset(c, 0, sizeof *c);
    c->wsi = wsi;
    c->next = self->pages;
    if (self->pages)
        self->pages->prev = c;
    self->pages = c;
    self->npages++;
    SLOG_INFO("console.open", "pages=%zu", self->npages);
    gw_t *gw = self->gw;
    json_t *hello = json_pack("{s:s, s:s, s:s, s:b}", "type", "hello", "shop", gw->cfg->shop_name,
                              "sender", *gw->cfg->twilio_account_sid ? "twilio" : "console",
                              "draining", gw->draining);
    gw_console_send(self, c, hello, false);
    if (self->status)
        gw_console_send_text(c, self->status, strlen(self->status));
    if (self->data)
        gw_console_send_text(c, self->data, strlen(self->data));
    gw_console_feed_start(self);
}

static void s_page_close(gw_console_t *self, gw_page_t *c)
{
    if (!c->wsi)
        return;
    gw_console_chat_page_gone(self, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        self->pages = c->next;
    if (c->next)
        c->next->prev = c->prev;
    self->npages--;
    s_page_drop_queue(c);
    free(c->rx);
    memset(c, 0, sizeof *c);
    SLOG_INFO("console.close", "pages=%zu", self->npages);
}

static int s_ws_writeable(gw_page_t *c)
{
    gw_page_out_t *m = c->head;
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

static int s_ws_receive(gw_console_t *self, gw_page_t *c, struct lws *wsi, const void *in, size_t len)
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
        gw_console_error(self, c, NULL, "message over 3 MiB");
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
    gw_page_t *c = user;
    int rc = 0;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        if (!self)
            return -1;
        s_page_open(self, c, wsi);
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
            s_page_close(self, c);
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
                                     .per_session_data_size = sizeof(gw_page_t) };
    out[1] = (struct lws_protocols){ .name = GW_CONSOLE_BUS, .callback = gw_console_bus_callback };
}

/* ---- set-up ---------------------------------------------------------------------------------- */

static int s_adopt(gw_t *gw, zsock_t *sock)
{
    int copy = fcntl(zsock_fd(sock), F_DUPFD_CLOEXEC, 0); /* lws closes what it adopts */
    if (copy < 0)
        return -1;
    lws_adopt_desc_t d = {
        .vh = gw->vhost, .type = LWS_ADOPT_RAW_FILE_DESC, .fd.filefd = copy,
        .vh_prot_name = GW_CONSOLE_BUS, .opaque = &s_tag_console_bus,
    };
    if (!lws_adopt_descriptor_vhost_via_info(&d)) {
        close(copy);
        return -1;
    }
    return 0;
}

/* The token travels in a URL and a cookie: letters, digits and - . _ ~ only. */
static bool s_token_usable(const char *token)
{
    size_t n = strlen(token);
    return strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") == n;
}

int gw_console_start(gw_t *gw)
{
    const char *token = gw->cfg->console_token;
    if (!*token)
        return 0;
    if (!s_token_usable(token)) {
        SLOG_ERROR("console.off",
                   "reason=\"SOUK_CONSOLE_TOKEN may hold only letters, digits and - . _ ~\"");
        return 0;
    }
    if (strlen(token) < 16)
        SLOG_WARN("console.weak_token",
                  "reason=\"SOUK_CONSOLE_TOKEN is shorter than 16 characters\"");
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
    while (self->reqs) {
        gw_console_req_t *r = self->reqs;
        self->reqs = r->next;
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
