/* Messages from a console page, taken through the webhook's own path.
 *
 * After the token check (console.c) a page's message becomes what a
 * verified webhook becomes: the console builds the parameters Twilio would
 * post (MessageSid, From, WaId, ProfileName, Body, NumMedia, MediaUrl0…) and
 * hands them to gw_routing_inbound, so dedupe, session start, the reply
 * budget and the inline/later decision are the ones a real message gets.
 * The answer comes back through gw_console_answer as the TwiML Twilio would
 * have read. Nobody outside can inject one: the authenticated websocket is
 * the only way in, and no signature is made or skipped.
 *
 * A voice note arrives base64 in the message, is stored in
 * $SOUK_DATA/console-media/<32 hex>.<ext> (0600) and becomes MediaUrl0, a
 * URL under SOUK_PUBLIC_URL that console.c serves. */
#include "console.h"

#include "souk/error.h"
#include "souk/log.h"
#include "souk/twilio.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define BODY_MAX 1600 /* Twilio's limit for a WhatsApp body, in characters */

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
    if (len == 0 || len > GW_CONSOLE_MEDIA_MAX) {
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

static gw_console_req_t *s_req_find(gw_console_t *self, const void *ptr)
{
    for (gw_console_req_t *r = self->reqs; r; r = r->next)
        if (r == ptr)
            return r;
    return NULL;
}

static void s_req_remove(gw_console_t *self, gw_console_req_t *r)
{
    for (gw_console_req_t **pp = &self->reqs; *pp; pp = &(*pp)->next)
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

/* Why a page's message cannot be sent, or NULL. */
static const char *s_invalid(const gw_t *gw, const char *waid, const char *name, const char *body,
                             bool media)
{
    if (gw->draining)
        return "souk is shutting down";
    if (!waid || !s_is_digits(waid, 6, 15))
        return "the number must be 6 to 15 digits (country code first)";
    if (s_chars(body) > BODY_MAX || strlen(name) > SOUK_CAP_ID || (!*body && !media))
        return "a message needs a body (at most 1,600 characters) or a voice note";
    return NULL;
}

/* Hands a message to routing as a webhook would; its answer reaches the
 * page through gw_console_answer. media_url: its voice note's, or NULL. */
static void s_route(gw_console_t *self, gw_page_t *c, const char *id, const gw_inbound_t *in,
                    const char *media_url)
{
    gw_console_req_t *r = calloc(1, sizeof *r);
    if (!r) {
        gw_console_error(self, c, id, "out of memory");
        return;
    }
    r->page = c;
    snprintf(r->id, sizeof r->id, "%s", id);
    snprintf(r->sid, sizeof r->sid, "%s", in->msg_sid);
    r->next = self->reqs;
    self->reqs = r;
    gw_console_send(self, c,
                    json_pack("{s:s, s:s, s:s, s:s, s:s?}", "type", "sent", "id", id, "msg_sid",
                              in->msg_sid, "request_id", in->request_id, "media_url", media_url),
                    false);
    char masked[SOUK_CAP_ID];
    twilio_mask_phone(in->from, masked, sizeof masked);
    souk_log_request(in->request_id);
    SLOG_INFO("console.inbound", "sid=%s from=%s media=%llu", in->msg_sid, masked,
              (unsigned long long)in->num_media);
    souk_log_request(NULL);
    gw_request_t *req = NULL;
    /* answers at once (duplicate, busy, apology) go through gw_console_answer, which frees r */
    gw_disposition_t d = gw_routing_inbound(self->gw->routing, in, r, &req, souk_now_ms());
    if (d == GW_ROUTED && s_req_find(self, r))
        r->req = req;
}

void gw_console_chat_send(gw_console_t *self, gw_page_t *c, json_t *msg)
{
    gw_t *gw = self->gw;
    const char *id = json_string_value(json_object_get(msg, "id"));
    const char *waid = json_string_value(json_object_get(msg, "waid"));
    const char *name = json_string_value(json_object_get(msg, "name"));
    const char *body = json_string_value(json_object_get(msg, "body"));
    json_t *media = json_object_get(msg, "media");
    id = id && strlen(id) < sizeof ((gw_console_req_t *)0)->id ? id : "";
    name = name ? name : "";
    body = body ? body : "";
    const char *why = s_invalid(gw, waid, name, body, json_is_object(media));
    char url[640];
    const char *ctype = NULL;
    if (!why && json_is_object(media))
        why = s_store_media(self, media, url, sizeof url, &ctype);
    char sid[GW_SID_MAX + 1] = "SM", from[SOUK_CAP_ID], request_id[GW_REQUEST_ID_LEN];
    if (!why && !s_random_hex(sid + 2))
        why = "no randomness for the MessageSid";
    if (why) {
        gw_console_error(self, c, id, why);
        return;
    }
    snprintf(from, sizeof from, "whatsapp:+%s", waid);
    gw_request_id(gw, request_id);
    char *params = s_params(gw, sid, waid, from, name, body, ctype ? url : NULL, ctype);
    if (!params) {
        gw_console_error(self, c, id, "out of memory");
        return;
    }
    gw_inbound_t in = {
        .request_id = request_id, .msg_sid = sid, .waid = waid, .from = from, .profile = name,
        .body = body, .num_media = ctype ? 1 : 0, .params = params,
        .received_ms = (uint64_t)souk_wall_ms(),
    };
    s_route(self, c, id, &in, ctype ? url : NULL);
    free(params);
}

bool gw_console_answer(gw_t *gw, void *http, const gw_answer_t *a)
{
    gw_console_t *self = gw->console;
    gw_console_req_t *r = self ? s_req_find(self, http) : NULL;
    if (!r)
        return false;
    if (r->page) {
        json_t *doc = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s%}", "type", "answer", "id", r->id,
                                "msg_sid", r->sid, "status", a->status, "carries",
                                a->carries ? a->carries : "", "twiml", a->body, a->len);
        gw_console_send(self, r->page, doc, false);
    }
    s_req_remove(self, r);
    return true;
}

void gw_console_chat_page_gone(gw_console_t *self, gw_page_t *page)
{
    for (gw_console_req_t **pp = &self->reqs; *pp;) {
        gw_console_req_t *r = *pp;
        if (r->page != page) {
            pp = &r->next;
            continue;
        }
        if (r->req) { /* routing keeps it until answered; the reply goes out through the sender */
            gw_routing_request_gone(self->gw->routing, r->req);
            r->req = NULL;
        }
        *pp = r->next;
        free(r);
    }
}
