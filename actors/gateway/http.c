/* The HTTP edge of the gateway: routes, limits, validation and answers.
 *
 * Every webhook is checked in this order, cheapest and pre-body first:
 * Content-Length (411 without one or chunked, 413 over 64 KiB — answered
 * before the body is read, and the connection closed), Content-Type (415),
 * form encoding and UTF-8 (400), X-Twilio-Signature against the public URL
 * (403), then the fields (400). A verified message goes to routing.c, which
 * answers it now (duplicate, busy, apology) or later (reply, ack, merged).
 *
 * An answer decided while this connection's own callback runs is written at
 * the end of that callback; one decided elsewhere (a bus message, a timer)
 * waits for LWS_CALLBACK_HTTP_WRITEABLE. libwebsockets frees the per-request
 * data when a keep-alive transaction completes, so everything in it is
 * per-request and released in s_pss_reset(). */
#include "gateway.h"

#include "souk/error.h"
#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/twilio.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define PATH_INBOUND "/webhooks/whatsapp"
#define PATH_STATUS "/webhooks/whatsapp/status"
#define QUERY_MAX 2048
#define SIG_MAX 128
#define TEXT_PLAIN "text/plain; charset=utf-8"

/* GET-only routes from ROUTE_HEALTHZ on */
typedef enum {
    ROUTE_NONE, ROUTE_INBOUND, ROUTE_STATUS, ROUTE_HEALTHZ, ROUTE_READYZ, ROUTE_METRICS, ROUTE_CONSOLE
} route_t;

typedef struct {
    char request_id[GW_REQUEST_ID_LEN];
    route_t route;
    int64_t started_us;       /* headers arrived (gw_metrics_now_us) */
    bool form_type;           /* Content-Type was form-urlencoded */
    char signature[SIG_MAX];  /* X-Twilio-Signature, "" when absent */
    char from[SOUK_CAP_ID + 1]; /* From, masked, for logs; "" until parsed */
    char *query;              /* the query string, NULL when none */
    char *body;
    size_t body_len, body_cap;
    gw_request_t *req;        /* routed, waiting for its answer */
    /* the decided answer */
    bool answered, close_after, deferred;
    int status;
    char content_type[48];
    const char *carries;      /* X-Souk-Answer, or NULL */
    char set_cookie[200];     /* console: Set-Cookie, or "" */
    char location[64];        /* console: Location, or "" */
    char *out;
    size_t out_len;
} pss_t;

static gw_t *s_gw(struct lws *wsi) { return lws_context_user(lws_get_context(wsi)); }

/* Releases everything a request holds; a request still waiting for its
 * answer is gone, and its reply will go out through the sender. */
static void s_pss_reset(gw_t *gw, pss_t *pss)
{
    if (pss->req) {
        gw_routing_request_gone(gw->routing, pss->req);
        pss->req = NULL;
    }
    if (pss->deferred && gw->unwritten)
        gw->unwritten--;
    free(pss->query);
    free(pss->body);
    free(pss->out);
    memset(pss, 0, sizeof *pss);
}

static void s_set_answer(pss_t *pss, int status, const char *ctype, const char *body, size_t len)
{
    char *copy = malloc(len ? len : 1);
    if (copy)
        memcpy(copy, body, len);
    pss->out = copy;
    pss->out_len = copy ? len : 0;
    pss->status = copy ? status : 500;
    snprintf(pss->content_type, sizeof pss->content_type, "%s", ctype);
    pss->answered = true;
}

void gw_http_answer(gw_t *gw, void *http, const gw_answer_t *a)
{
    struct lws *wsi = http;
    pss_t *pss = lws_wsi_user(wsi);
    pss->req = NULL; /* routing has forgotten it */
    s_set_answer(pss, a->status, a->content_type, a->body, a->len);
    pss->carries = a->carries;
    if (wsi != gw->in_wsi) {
        pss->deferred = true;
        gw->unwritten++;
        lws_callback_on_writable(wsi);
    }
}

/* An error (or other plain) answer, logged with the request id. */
static void s_reject(pss_t *pss, int status, const char *why)
{
    souk_log_request(pss->request_id);
    char quoted[2 * SOUK_CAP_ID];
    if (*pss->from) /* not validated yet: quoted */
        SLOG_WARN("http.reject", "status=%d reason=\"%s\" from=%s", status, why,
                  souk_log_quote(pss->from, quoted, sizeof quoted));
    else
        SLOG_WARN("http.reject", "status=%d reason=\"%s\"", status, why);
    souk_log_request(NULL);
    char text[160];
    int n = snprintf(text, sizeof text, "%s\n", why);
    s_set_answer(pss, status, TEXT_PLAIN, text, (size_t)n);
}

/* The route as a metrics label: its path, so an operator recognises it. */
static const char *s_route_label(route_t route)
{
    switch (route) {
    case ROUTE_INBOUND: return PATH_INBOUND;
    case ROUTE_STATUS: return PATH_STATUS;
    case ROUTE_HEALTHZ: return "/healthz";
    case ROUTE_READYZ: return "/readyz";
    case ROUTE_METRICS: return "/metrics";
    case ROUTE_CONSOLE: return "/console";
    default: return "other";
    }
}

/* The console's page and files: never cached, never framed; and the
 * cookie that carries its token. Nonzero when the headers do not fit. */
static int s_console_headers(struct lws *wsi, pss_t *pss, unsigned char **p, unsigned char *end)
{
    static const struct { const char *name, *value; } fixed[] = {
        { "cache-control:", "no-store" },
        { "x-frame-options:", "DENY" },
        { "x-content-type-options:", "nosniff" },
        { "referrer-policy:", "no-referrer" },
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)fixed[i].name,
                                        (const unsigned char *)fixed[i].value,
                                        (int)strlen(fixed[i].value), p, end))
            return 1;
    if (*pss->set_cookie
        && lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_SET_COOKIE,
                                        (unsigned char *)pss->set_cookie,
                                        (int)strlen(pss->set_cookie), p, end))
        return 1;
    if (*pss->location
        && lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_LOCATION, (unsigned char *)pss->location,
                                        (int)strlen(pss->location), p, end))
        return 1;
    return 0;
}

/* Writes the decided answer. Returns what the callback must return. */
static int s_write(struct lws *wsi, pss_t *pss)
{
    gw_t *gw = s_gw(wsi);
    size_t cap = LWS_PRE + 512 + pss->out_len;
    unsigned char small[LWS_PRE + 4096];
    unsigned char *buf = cap <= sizeof small ? small : malloc(cap);
    if (!buf)
        return -1;
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + cap;
    char len[24];
    int nlen = snprintf(len, sizeof len, "%zu", pss->out_len);
    int rc = -1;
    if (lws_add_http_header_status(wsi, (unsigned int)pss->status, &p, end)
        || lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                        (unsigned char *)pss->content_type,
                                        (int)strlen(pss->content_type), &p, end)
        || lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, (unsigned char *)len,
                                        nlen, &p, end)
        || (*pss->request_id
            && lws_add_http_header_by_name(wsi, (unsigned char *)"x-request-id:",
                                           (unsigned char *)pss->request_id,
                                           (int)strlen(pss->request_id), &p, end))
        || (pss->carries
            && lws_add_http_header_by_name(wsi, (unsigned char *)"x-souk-answer:",
                                           (unsigned char *)pss->carries,
                                           (int)strlen(pss->carries), &p, end))
        || (pss->status == 405
            && lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_ALLOW,
                                            (unsigned char *)(pss->route >= ROUTE_HEALTHZ ? "GET" : "POST"),
                                            pss->route >= ROUTE_HEALTHZ ? 3 : 4, &p, end))
        || (pss->route == ROUTE_CONSOLE && s_console_headers(wsi, pss, &p, end))
        || (pss->close_after
            && lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (unsigned char *)"close", 5,
                                            &p, end))
        || lws_finalize_http_header(wsi, &p, end))
        goto cleanup;
    memcpy(p, pss->out, pss->out_len);
    p += pss->out_len;
    int n = (int)(p - start);
    if (lws_write(wsi, start, (size_t)n, LWS_WRITE_HTTP) != n)
        goto cleanup;
    if (pss->route == ROUTE_INBOUND || pss->route == ROUTE_STATUS) {
        gw->handled++;
        gw->last_handled_ms = souk_now_ms();
    }
    gw_metrics_request_done(s_route_label(pss->route), pss->status, pss->started_us,
                            pss->route == ROUTE_INBOUND || pss->route == ROUTE_STATUS);
    rc = 0;
cleanup:
    if (buf != small)
        free(buf);
    bool close_after = pss->close_after;
    s_pss_reset(gw, pss);
    if (rc < 0 || close_after)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- request headers ------------------------------------------------------------ */

static bool s_is_method(struct lws *wsi, enum lws_token_indexes t)
{
    return lws_hdr_total_length(wsi, t) > 0;
}

static route_t s_route_of(const char *path)
{
    if (strcmp(path, PATH_INBOUND) == 0) return ROUTE_INBOUND;
    if (strcmp(path, PATH_STATUS) == 0) return ROUTE_STATUS;
    if (strcmp(path, "/healthz") == 0) return ROUTE_HEALTHZ;
    if (strcmp(path, "/readyz") == 0) return ROUTE_READYZ;
    if (strcmp(path, "/metrics") == 0) return ROUTE_METRICS;
    if (gw_console_path(path)) return ROUTE_CONSOLE;
    return ROUTE_NONE;
}

/* "application/x-www-form-urlencoded", any case, optionally followed by
 * parameters (charset=UTF-8). */
static bool s_is_form_type(const char *ct)
{
    static const char want[] = "application/x-www-form-urlencoded";
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, want, sizeof want - 1) != 0)
        return false;
    ct += sizeof want - 1;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

/* The query string as libwebsockets keeps it: each '&'-separated argument
 * already percent-decoded. Joined back with '&'; NULL when there is none. */
static char *s_query(struct lws *wsi)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) <= 0)
        return NULL;
    char *q = malloc(QUERY_MAX);
    if (!q)
        return NULL;
    size_t off = 0;
    char frag[QUERY_MAX];
    for (int i = 0;; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0)
            break;
        if (off + (size_t)n + 2 > QUERY_MAX) {
            free(q);
            return NULL;
        }
        if (i)
            q[off++] = '&';
        memcpy(q + off, frag, (size_t)n);
        off += (size_t)n;
    }
    q[off] = '\0';
    return q;
}

/* Content-Length as a number; -1 when absent, -2 when not a number. */
static long long s_content_length(struct lws *wsi)
{
    char v[32];
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
        return -1;
    if (lws_hdr_copy(wsi, v, sizeof v, WSI_TOKEN_HTTP_CONTENT_LENGTH) < 0)
        return -2;
    char *endp;
    errno = 0;
    long long n = strtoll(v, &endp, 10);
    if (errno || endp == v || *endp || n < 0 || !isdigit((unsigned char)v[0]))
        return -2;
    return n;
}

static void s_answer_probe(gw_t *gw, pss_t *pss)
{
    if (pss->route == ROUTE_HEALTHZ) {
        s_set_answer(pss, 200, TEXT_PLAIN, "ok\n", 3);
        return;
    }
    if (gw->ready && !gw->draining) {
        s_set_answer(pss, 200, TEXT_PLAIN, "ready\n", 6);
        return;
    }
    char text[300];
    int n = snprintf(text, sizeof text, "not ready: %s\n",
                     gw->draining ? "shutting down" : gw->ready_detail);
    s_set_answer(pss, 503, TEXT_PLAIN, text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
}

/* LWS_CALLBACK_HTTP: route, method and the pre-body limits. Either answers
 * (pss->answered) or prepares for the body. */
static void s_on_headers(struct lws *wsi, pss_t *pss, const char *path)
{
    gw_t *gw = s_gw(wsi);
    gw_request_id(gw, pss->request_id);
    pss->started_us = gw_metrics_now_us();
    pss->route = s_route_of(path);
    bool post = s_is_method(wsi, WSI_TOKEN_POST_URI);
    bool get = s_is_method(wsi, WSI_TOKEN_GET_URI);
    bool chunked = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
    long long clen = s_content_length(wsi);
    /* an answer before the body: close rather than parse what follows */
    pss->close_after = chunked || clen > 0;
    switch (pss->route) {
    case ROUTE_NONE:
        s_reject(pss, 404, "not found");
        return;
    case ROUTE_HEALTHZ:
    case ROUTE_READYZ:
        if (!get)
            s_reject(pss, 405, "method not allowed: use GET");
        else
            s_answer_probe(gw, pss);
        return;
    case ROUTE_METRICS:
        if (!get)
            s_reject(pss, 405, "method not allowed: use GET");
        else
            gw_metrics_scrape(gw->metrics, wsi); /* answered when the supervisor replies */
        return;
    case ROUTE_CONSOLE:
        if (!get) {
            s_reject(pss, 405, "method not allowed: use GET");
        } else {
            gw_console_http_t c;
            gw_console_http(gw, wsi, path, &c);
            s_set_answer(pss, c.body ? c.status : 500, c.content_type ? c.content_type : TEXT_PLAIN,
                         c.body ? c.body : "", c.len);
            snprintf(pss->set_cookie, sizeof pss->set_cookie, "%s", c.set_cookie);
            snprintf(pss->location, sizeof pss->location, "%s", c.location);
            free(c.body);
        }
        return;
    default:
        break;
    }
    if (!post) {
        s_reject(pss, 405, "method not allowed: use POST");
        return;
    }
    if (gw->draining) {
        s_reject(pss, 503, "shutting down");
        return;
    }
    if (chunked || clen == -1) {
        s_reject(pss, 411, "Content-Length required (chunked bodies are not accepted)");
        return;
    }
    if (clen == -2) {
        s_reject(pss, 400, "malformed Content-Length");
        return;
    }
    if (clen > GW_BODY_MAX) {
        s_reject(pss, 413, "body over 64 KiB");
        return;
    }
    pss->close_after = false;
    char ct[128];
    pss->form_type = lws_hdr_copy(wsi, ct, sizeof ct, WSI_TOKEN_HTTP_CONTENT_TYPE) > 0
                     && s_is_form_type(ct);
    if (lws_hdr_custom_copy(wsi, pss->signature, sizeof pss->signature, "x-twilio-signature:",
                            19) < 0)
        pss->signature[0] = '\0';
    pss->query = s_query(wsi);
    pss->body_cap = (size_t)clen;
    pss->body = malloc(pss->body_cap + 1);
    if (!pss->body)
        s_reject(pss, 500, "out of memory");
}

/* ---- the body ------------------------------------------------------------------------ */

static bool s_sid_valid(const char *sid)
{
    size_t n = sid ? strlen(sid) : 0;
    if (n == 0 || n > GW_SID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)sid[i]))
            return false;
    return true;
}

/* Appends s percent-encoded, '=' kept; space as "+" or "%20". */
static size_t s_query_encode(char *out, size_t cap, const char *s, bool plus)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 4 < cap; p++) {
        if (isalnum(*p) || strchr("-._~=&", *p)) {
            out[o++] = (char)*p;
        } else if (*p == ' ' && plus) {
            out[o++] = '+';
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return o;
}

/* Checks X-Twilio-Signature against public URL + path + query. The query
 * reaches us decoded (see s_query), so besides it as decoded the two
 * canonical re-encodings are tried; anything else fails closed. */
static bool s_signature_ok(gw_t *gw, pss_t *pss, const char *path, const twilio_form_t *form)
{
    if (!*pss->signature)
        return false;
    size_t cap = sizeof gw->sign_base + strlen(path) + 3 * QUERY_MAX + 2;
    char *url = malloc(cap);
    if (!url)
        return false;
    int base = snprintf(url, cap, "%s%s", gw->sign_base, path);
    bool ok = false;
    if (!pss->query) {
        ok = twilio_signature_valid(gw->token, url, form, pss->signature);
    } else {
        char *q = url + base;
        *q++ = '?';
        size_t room = cap - (size_t)base - 1;
        snprintf(q, room, "%s", pss->query);
        ok = twilio_signature_valid(gw->token, url, form, pss->signature);
        for (int plus = 0; !ok && plus < 2; plus++) {
            s_query_encode(q, room, pss->query, plus);
            if (strcmp(q, pss->query) != 0)
                ok = twilio_signature_valid(gw->token, url, form, pss->signature);
        }
    }
    free(url);
    return ok;
}

/* Every parameter as a JSON object; a name given several times maps to
 * an array of its values in order. Caller frees. */
static char *s_params_json(const twilio_form_t *form)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    for (size_t i = 0; i < twilio_form_count(form); i++) {
        const char *name = twilio_form_name(form, i);
        json_t *v = json_string(twilio_form_value(form, i));
        json_t *prev = json_object_get(o, name);
        if (!prev) {
            json_object_set_new(o, name, v);
        } else if (json_is_array(prev)) {
            json_array_append_new(prev, v);
        } else {
            json_t *a = json_array();
            json_array_append(a, prev);
            json_array_append_new(a, v);
            json_object_set_new(o, name, a);
        }
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    return s;
}

/* ProfileName capped to the protocol's limit at a UTF-8 boundary (the full
 * value stays in params). */
static void s_profile(const char *in, char out[SOUK_CAP_ID + 1])
{
    size_t n = strlen(in);
    if (n > SOUK_CAP_ID) {
        n = SOUK_CAP_ID;
        while (n > 0 && ((unsigned char)in[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(out, in, n);
    out[n] = '\0';
}

static bool s_is_number(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

/* Why an inbound webhook's fields are unacceptable, or NULL. */
static const char *s_inbound_invalid(const twilio_form_t *form)
{
    const char *from = twilio_form_get(form, "From");
    const char *waid = twilio_form_get(form, "WaId");
    const char *media = twilio_form_get(form, "NumMedia");
    if (!s_sid_valid(twilio_form_get(form, "MessageSid")))
        return "MessageSid missing or malformed";
    if (!from || !waid)
        return "From and WaId are required";
    if (!twilio_waid_matches_from(waid, from))
        return "WaId does not match the number in From";
    if (media && (!s_is_number(media) || strlen(media) > 6))
        return "NumMedia is not a number";
    return NULL;
}

static void s_inbound(gw_t *gw, struct lws *wsi, pss_t *pss, const twilio_form_t *form)
{
    const char *why = s_inbound_invalid(form);
    if (why) {
        s_reject(pss, 400, why);
        return;
    }
    const char *sid = twilio_form_get(form, "MessageSid");
    if (gw_routing_seen(gw->routing, sid) /* the hot path of a retry storm: no JSON */
        && !gw_routing_unstored(gw->routing, twilio_form_get(form, "WaId"), sid)) {
        souk_metric_add("souk_dedupe_hits_total", "where=\"gateway\"", 1);
        souk_log_request(pss->request_id);
        SLOG_DEBUG("http.inbound", "sid=%s from=%s disposition=duplicate", sid, pss->from);
        souk_log_request(NULL);
        s_set_answer(pss, 200, "text/xml", gw->twiml_empty, gw->twiml_empty_len);
        pss->carries = "none";
        return;
    }
    char *params = s_params_json(form);
    if (!params) {
        s_reject(pss, 500, "out of memory");
        return;
    }
    const char *media = twilio_form_get(form, "NumMedia");
    const char *profile = twilio_form_get(form, "ProfileName");
    const char *body = twilio_form_get(form, "Body");
    char profile_capped[SOUK_CAP_ID + 1];
    s_profile(profile ? profile : "", profile_capped);
    gw_inbound_t in = {
        .request_id = pss->request_id,
        .msg_sid = sid,
        .waid = twilio_form_get(form, "WaId"),
        .from = twilio_form_get(form, "From"),
        .profile = profile_capped,
        .body = body ? body : "",
        .num_media = media ? strtoull(media, NULL, 10) : 0,
        .params = params,
        .received_ms = (uint64_t)souk_wall_ms(),
    };
    gw_disposition_t d = gw_routing_inbound(gw->routing, &in, wsi, &pss->req, souk_now_ms());
    free(params);
    static const char *const names[] = { "routed", "duplicate", "busy", "apology", "failed" };
    souk_log_request(pss->request_id);
    if (d == GW_ROUTED)
        SLOG_INFO("http.inbound", "sid=%s from=%s", sid, pss->from);
    else if (d == GW_DUPLICATE)
        SLOG_DEBUG("http.inbound", "sid=%s from=%s disposition=duplicate", sid, pss->from);
    else
        SLOG_WARN("http.inbound", "sid=%s from=%s disposition=%s", sid, pss->from, names[d]);
    souk_log_request(NULL);
}

static void s_status(gw_t *gw, pss_t *pss, const twilio_form_t *form)
{
    const char *sid = twilio_form_get(form, "MessageSid");
    const char *status = twilio_form_get(form, "MessageStatus");
    const char *code = twilio_form_get(form, "ErrorCode");
    const char *why = !s_sid_valid(sid) ? "MessageSid missing or malformed"
                    : !status || !*status || strlen(status) > SOUK_CAP_NAME
                        ? "MessageStatus missing or malformed"
                        : NULL;
    if (why) {
        s_reject(pss, 400, why);
        return;
    }
    souk_msg_t m = { .type = SOUK_MSG_DELIVERY };
    m.delivery.message_sid = (char *)sid;
    m.delivery.status = (char *)status;
    m.delivery.error_code = code && s_is_number(code) ? strtoll(code, NULL, 10) : 0;
    m.delivery.ts_ms = (uint64_t)souk_wall_ms();
    m.delivery.request_id = pss->request_id;
    /* never wait: a full queue is answered 503, the honest answer */
    if (souk_msg_send(gw->sender, NULL, 0, &m, ZMQ_DONTWAIT) != SOUK_OK) {
        s_reject(pss, 503, "cannot queue the status update now");
        return;
    }
    souk_log_request(pss->request_id);
    SLOG_DEBUG("http.status", "sid=%s status=%s error_code=%lld", sid, status,
               (long long)m.delivery.error_code);
    souk_log_request(NULL);
    s_set_answer(pss, 200, "text/xml", gw->twiml_empty, gw->twiml_empty_len);
}

/* The whole body is here: validate and dispatch. */
static void s_on_body(struct lws *wsi, pss_t *pss)
{
    gw_t *gw = s_gw(wsi);
    if (!pss->form_type) {
        s_reject(pss, 415, "Content-Type must be application/x-www-form-urlencoded");
        return;
    }
    twilio_form_t *form = NULL;
    int rc = twilio_form_parse(pss->body, pss->body_len, &form);
    if (rc != SOUK_OK) {
        s_reject(pss, rc == SOUK_ENOMEM ? 500 : 400,
                 rc == SOUK_EINVAL    ? "malformed form encoding or invalid UTF-8"
                 : rc == SOUK_ETOOBIG ? "too many parameters"
                                      : "out of memory");
        return;
    }
    const char *from = twilio_form_get(form, "From");
    if (from)
        twilio_mask_phone(from, pss->from, sizeof pss->from);
    const char *path = pss->route == ROUTE_INBOUND ? PATH_INBOUND : PATH_STATUS;
    if (!*pss->signature)
        s_reject(pss, 403, "X-Twilio-Signature missing");
    else if (!s_signature_ok(gw, pss, path, form))
        s_reject(pss, 403, "X-Twilio-Signature does not match");
    else if (pss->route == ROUTE_INBOUND)
        s_inbound(gw, wsi, pss, form);
    else
        s_status(gw, pss, form);
    twilio_form_free(&form);
}

/* ---- the protocol ------------------------------------------------------------------------ */

/* The whole request is here: validate, dispatch, and write the answer now
 * if it was decided now. */
static int s_complete(struct lws *wsi, pss_t *pss)
{
    if (!pss->answered && pss->route != ROUTE_METRICS)
        s_on_body(wsi, pss);
    return pss->answered ? s_write(wsi, pss) : 0;
}

static int s_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len)
{
    gw_t *gw = s_gw(wsi);
    pss_t *pss = user;
    int rc = 0;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        gw->in_wsi = wsi;
        s_on_headers(wsi, pss, in ? (const char *)in : "");
        if (pss->answered)
            rc = s_write(wsi, pss);
        else if (pss->body_cap == 0) /* no body to wait for */
            rc = s_complete(wsi, pss);
        break;
    case LWS_CALLBACK_HTTP_BODY:
        if (pss->body && !pss->answered) {
            size_t n = len <= pss->body_cap - pss->body_len ? len : pss->body_cap - pss->body_len;
            memcpy(pss->body + pss->body_len, in, n);
            pss->body_len += n;
        }
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        gw->in_wsi = wsi;
        rc = s_complete(wsi, pss);
        break;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!pss || !pss->answered)
            return 0;
        rc = s_write(wsi, pss);
        break;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return gw_console_confirm_upgrade(gw, wsi);
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (pss && pss->route == ROUTE_METRICS && !pss->answered)
            gw_metrics_gone(gw->metrics, wsi);
        if (pss)
            s_pss_reset(gw, pss);
        break;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
    gw->in_wsi = NULL;
    gw_after_event(gw);
    return rc;
}

const struct lws_protocols gw_http_protocol = {
    .name = "souk-http",
    .callback = s_callback,
    .per_session_data_size = sizeof(pss_t),
    .rx_buffer_size = 0,
};
