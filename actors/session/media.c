/* Media in a turn: voice notes become text, everything else a helpful word.
 *
 * Before a turn is answered, each of its messages that carries media (or a
 * location) is looked at, from the webhook parameters stored with it:
 *   - a voice note (an audio type) is acknowledged at once (DEFER: transcribing
 *     takes seconds, more than the webhook can wait), downloaded from
 *     Twilio (souk/media.h) and transcribed (souk/stt.h, SOUK_STT); the
 *     transcript then stands for the message's text and takes the same path
 *     as typed text. When the recogniser was not sure, the reply starts
 *     with what was heard, so the user can tell a misunderstanding;
 *   - an image, a sticker, a video or a document gets a note saying what
 *     souk can do with it (nothing yet) and what to send instead;
 *   - a location is recorded in the history ("📍 Location: …") and is the
 *     delivery address of the next order: place_order calls get it as their
 *     note (session_media_tool_args).
 *
 * Download and transcription block for seconds. They run on a worker
 * thread while the session's thread waits on a pipe and heartbeats every
 * SOUK_HEARTBEAT_MS, so the supervisor never sees a silent session (one
 * silent for three intervals is killed as hung). The worker touches no
 * socket and no store: it gets copies of what it needs and hands back the
 * text. Like a tool call (tools_client.c), the wait does not serve the
 * gateway socket: a session serves one user, whose next message waits
 * there meanwhile. */
#include "session.h"

#include "souk/error.h"
#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/media.h"
#include "souk/stt.h"

#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MEDIA_PER_MESSAGE 10
#define LOCATION_PREFIX "\xF0\x9F\x93\x8D Location: "

#define TEXT_LISTENING "\xF0\x9F\x8E\x99\xEF\xB8\x8F Got your voice note, listening\xE2\x80\xA6"
#define TEXT_NOT_HEARD                                                                     \
    "\xF0\x9F\x8E\x99\xEF\xB8\x8F Sorry, I couldn't make out your voice note. Could you "  \
    "say it again, or type it?"
#define TEXT_IMAGE                                                                         \
    "Thanks for the picture! I can't look at images yet. Tell me in words what you're "   \
    "looking for (e.g. \"white sneakers under $100\") and I'll search the shop for you."
#define TEXT_STICKER                                                                       \
    "Nice sticker! \xF0\x9F\x98\x8A Tell me what you're looking for, or send an order "  \
    "number and I'll check on it."
#define TEXT_VIDEO                                                                         \
    "Thanks for the video! I can't watch videos yet. If something is wrong with an "     \
    "order, tell me in words and give the order number; I'll pass it to the team."
#define TEXT_DOCUMENT                                                                      \
    "Thanks for the file! I can't open documents here. Please type your question, or "   \
    "send an order number and I'll look it up."

typedef enum { KIND_AUDIO, KIND_IMAGE, KIND_STICKER, KIND_VIDEO, KIND_DOCUMENT, KIND_N } kind_t;

/* ---- the worker ---------------------------------------------------------- */

typedef struct {
    /* in: copies, owned by the job */
    char *url, *hosts, *auth_host, *account_sid, *auth_token, *stt, *shop_dir;
    char *openai_base, *openai_key, *content_type;
    size_t max_bytes;
    /* out */
    int rc;
    char err[256];
    stt_result_t result;
    int64_t download_ms, transcribe_ms;
    int pipe[2];
} job_t;

static void s_job_free(job_t *j)
{
    free(j->url);
    free(j->hosts);
    free(j->auth_host);
    free(j->account_sid);
    free(j->auth_token);
    free(j->stt);
    free(j->shop_dir);
    free(j->openai_base);
    free(j->openai_key);
    free(j->content_type);
    stt_result_clear(&j->result);
    free(j);
}

/* The service guesses the format from the file name: WhatsApp's voice
 * notes are Ogg/Opus, an audio file shared in a chat may be another. */
static const char *s_audio_filename(const char *content_type)
{
    static const struct { const char *type, *name; } names[] = {
        { "audio/mpeg", "audio.mp3" }, { "audio/mp4", "audio.m4a" },
        { "audio/aac", "audio.m4a" },  { "audio/wav", "audio.wav" },
        { "audio/x-wav", "audio.wav" }, { "audio/webm", "audio.webm" },
        { "audio/flac", "audio.flac" },
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strncasecmp(content_type, names[i].type, strlen(names[i].type)) == 0)
            return names[i].name;
    return "voice.ogg";
}

static void s_job_run(job_t *j)
{
    media_fetch_t f = {
        .url = j->url, .hosts = j->hosts, .auth_host = j->auth_host,
        .account_sid = j->account_sid, .auth_token = j->auth_token, .max_bytes = j->max_bytes,
    };
    media_blob_t blob = { 0 };
    int64_t t0 = souk_now_ms();
    j->rc = media_fetch(&f, &blob, j->err, sizeof j->err);
    int64_t t1 = souk_now_ms();
    j->download_ms = t1 - t0;
    if (j->rc == SOUK_OK && strcmp(j->stt, "openai") == 0) {
        stt_openai_t o = {
            .base_url = j->openai_base, .api_key = j->openai_key, .audio = blob.data,
            .len = blob.len, .content_type = j->content_type,
            .filename = s_audio_filename(j->content_type),
        };
        j->rc = stt_openai_transcribe(&o, &j->result, j->err, sizeof j->err);
    } else if (j->rc == SOUK_OK) {
        int16_t *pcm = NULL;
        size_t n = 0;
        j->rc = stt_decode_ogg(blob.data, blob.len, &pcm, &n, j->err, sizeof j->err);
        stt_sphinx_t s = { .shop_dir = j->shop_dir };
        if (j->rc == SOUK_OK)
            j->rc = stt_sphinx_transcribe(&s, pcm, n, &j->result, j->err, sizeof j->err);
        free(pcm);
    }
    j->transcribe_ms = souk_now_ms() - t1;
    media_blob_clear(&blob);
}

static void *s_job_thread(void *arg)
{
    job_t *j = arg;
    s_job_run(j);
    char done = 1;
    ssize_t w = write(j->pipe[1], &done, 1);
    (void)w;
    return NULL;
}

static void s_heartbeat(session_t *self)
{
    souk_actor_stats_t st = { .handled = self->handled, .depth = 1 };
    souk_actor_heartbeat(self->actor, &st);
}

/* Runs the job on a thread, heartbeating until it ends (inline when no
 * thread can be made). */
static void s_job_wait(session_t *self, job_t *j)
{
    pthread_t t;
    if (pipe(j->pipe) != 0) {
        s_job_run(j);
        return;
    }
    if (pthread_create(&t, NULL, s_job_thread, j) != 0) {
        s_job_run(j);
    } else {
        struct pollfd p = { .fd = j->pipe[0], .events = POLLIN };
        s_heartbeat(self);
        while (poll(&p, 1, (int)self->cfg->heartbeat_ms) <= 0 || !(p.revents & (POLLIN | POLLHUP)))
            s_heartbeat(self);
        pthread_join(t, NULL);
    }
    close(j->pipe[0]);
    close(j->pipe[1]);
}

static char *s_dup(const char *s) { return strdup(s ? s : ""); }

/* The transcript of one voice note into *text (caller frees); false when
 * nothing usable came back (logged). */
static bool s_transcribe(session_t *self, const char *msg_sid, const char *url,
                         const char *content_type, char **text, double *confidence)
{
    const souk_config_t *cfg = self->cfg;
    job_t *j = calloc(1, sizeof *j);
    if (!j)
        return false;
    char auth_host[256] = "", shop_dir[512];
    media_url_host(cfg->twilio_api_base, auth_host, sizeof auth_host);
    snprintf(shop_dir, sizeof shop_dir, "%s/stt", cfg->data_dir);
    const char *base = getenv("OPENAI_BASE_URL");
    j->url = s_dup(url);
    j->hosts = s_dup(cfg->media_hosts);
    j->auth_host = s_dup(auth_host);
    j->account_sid = s_dup(cfg->twilio_account_sid);
    j->auth_token = s_dup(cfg->twilio_auth_token);
    j->stt = s_dup(cfg->stt);
    j->shop_dir = s_dup(shop_dir);
    j->openai_base = s_dup(base && *base ? base : "https://api.openai.com/v1");
    j->openai_key = s_dup(getenv("OPENAI_API_KEY"));
    j->content_type = s_dup(content_type);
    j->max_bytes = (size_t)cfg->media_max_bytes;
    bool ok = false;
    if (j->url && j->hosts && j->auth_host && j->account_sid && j->auth_token && j->stt
        && j->shop_dir && j->openai_base && j->openai_key && j->content_type) {
        s_job_wait(self, j);
        if (j->rc == SOUK_OK) {
            ok = j->result.text && *j->result.text;
            souk_metric_observe("souk_voice_transcription_duration_seconds", "",
                                (double)(j->download_ms + j->transcribe_ms) / 1000.0);
            SLOG_INFO("session.voice", "sid=%s stt=%s model=%s confidence=%.2f audio_ms=%lld "
                      "download_ms=%lld transcribe_ms=%lld heard=%d lang=%s",
                      msg_sid, cfg->stt, j->result.model, j->result.confidence,
                      (long long)j->result.audio_ms, (long long)j->download_ms,
                      (long long)j->transcribe_ms, ok, j->result.language ? j->result.language : "-");
            if (ok) {
                *text = j->result.text;
                *confidence = j->result.confidence;
                j->result.text = NULL;
            }
        } else {
            SLOG_WARN("session.voice_failed", "sid=%s err=%s reason=\"%s\"", msg_sid,
                      souk_errname(j->rc), j->err);
        }
    }
    s_job_free(j);
    return ok;
}

/* ---- notes --------------------------------------------------------------- */

static int s_note(session_media_t *m, const char *text)
{
    if (m->note && strstr(m->note, text))
        return SOUK_OK;         /* two pictures get one answer */
    char *n = NULL;
    if (asprintf(&n, "%s%s%s", m->note ? m->note : "", m->note ? "\n\n" : "", text) < 0)
        return SOUK_ENOMEM;
    free(m->note);
    m->note = n;
    return SOUK_OK;
}

static const char *s_param(const json_t *params, const char *name)
{
    const json_t *v = json_object_get(params, name);
    if (json_is_array(v))
        v = json_array_get(v, 0);
    return json_string_value(v);
}

static kind_t s_kind(const char *content_type, const char *message_type)
{
    if (message_type && strcasecmp(message_type, "sticker") == 0)
        return KIND_STICKER;
    if (strncasecmp(content_type, "audio/", 6) == 0)
        return KIND_AUDIO;
    if (strncasecmp(content_type, "image/webp", 10) == 0)
        return KIND_STICKER;    /* WhatsApp's stickers are WebP images */
    if (strncasecmp(content_type, "image/", 6) == 0)
        return KIND_IMAGE;
    if (strncasecmp(content_type, "video/", 6) == 0)
        return KIND_VIDEO;
    return KIND_DOCUMENT;
}

/* How many bytes of s to keep, at most max, without cutting a UTF-8
 * character (the text goes on the bus, which refuses broken UTF-8). */
static int s_utf8_cut(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return (int)n;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    return (int)max;
}

/* "📍 Location: 51.50740,-0.12780 Address (Label)"; NULL without one. */
static char *s_location_text(const json_t *params)
{
    const char *lat = s_param(params, "Latitude"), *lon = s_param(params, "Longitude");
    if (!lat || !lon || !*lat || !*lon)
        return NULL;
    char *end1, *end2;
    double la = strtod(lat, &end1), lo = strtod(lon, &end2);
    if (*end1 || *end2 || la < -90 || la > 90 || lo < -180 || lo > 180)
        return NULL;
    const char *addr = s_param(params, "Address"), *label = s_param(params, "Label");
    addr = addr ? addr : "";
    label = label ? label : "";
    char *out = NULL;
    if (asprintf(&out, LOCATION_PREFIX "%.5f,%.5f%s%.*s%s%.*s%s", la, lo, *addr ? " " : "",
                 s_utf8_cut(addr, 200), addr, *label ? " (" : "", s_utf8_cut(label, 80), label,
                 *label ? ")" : "") < 0)
        return NULL;
    for (char *c = out; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    return out;
}

char *session_media_history_text(const char *params_json)
{
    json_t *params = params_json && *params_json ? json_loads(params_json, 0, NULL) : NULL;
    char *text = params ? s_location_text(params) : NULL;
    json_decref(params);
    return text;
}

static int s_set_body(session_msg_t *msg, const char *text)
{
    char *b = NULL;
    if (asprintf(&b, "%s%s%s", msg->body, *msg->body ? "\n" : "", text) < 0)
        return SOUK_ENOMEM;
    free(msg->body);
    msg->body = b;
    return SOUK_OK;
}

static int s_voice(session_t *self, session_msg_t *msg, const char *url, const char *type,
                   const char *turn_sid, session_media_t *m)
{
    if (!m->deferred) {
        souk_msg_t d = { .type = SOUK_MSG_DEFER };
        d.defer.msg_sid = (char *)turn_sid;
        d.defer.text = TEXT_LISTENING;
        session_send_gateway(self, &d);
        m->deferred = true;
    }
    char *text = NULL;
    double confidence = 0;
    if (!s_transcribe(self, msg->msg_sid, url, type, &text, &confidence))
        return s_note(m, TEXT_NOT_HEARD);
    int rc = s_set_body(msg, text);
    if (rc == SOUK_OK && confidence < STT_MIN_CONFIDENCE) {
        char *heard = NULL;
        if (asprintf(&heard, "\xF0\x9F\x8E\x99\xEF\xB8\x8F I heard: \xE2\x80\x9C%s\xE2\x80\x9D", text)
            < 0)
            rc = SOUK_ENOMEM;
        else
            rc = s_note(m, heard);
        free(heard);
    }
    free(text);
    return rc;
}

static int s_message(session_t *self, session_msg_t *msg, const char *turn_sid,
                     session_media_t *m)
{
    store_inbound_t row = { 0 };
    int rc = store_inbound_get(self->store, msg->msg_sid, &row);
    if (rc == SOUK_ENOTFOUND)
        return SOUK_OK;
    if (rc != SOUK_OK)
        return rc;
    json_t *params = row.params && *row.params ? json_loads(row.params, 0, NULL) : NULL;
    const char *mtype = s_param(params, "MessageType");
    char *loc = params ? s_location_text(params) : NULL;
    if (loc) {
        const char *addr = s_param(params, "Address");
        addr = addr ? addr : "";
        char *note = NULL;
        if (asprintf(&note,
                     "\xF0\x9F\x93\x8D Thanks, I have your location%s%.*s%s. I'll use it as the "
                     "delivery address for your next order.",
                     *addr ? " (" : "", s_utf8_cut(addr, 200), addr, *addr ? ")" : "") < 0)
            rc = SOUK_ENOMEM;
        else
            rc = s_note(m, note);
        free(note);
        free(loc);
    }
    uint64_t n = msg->num_media < MEDIA_PER_MESSAGE ? msg->num_media : MEDIA_PER_MESSAGE;
    for (uint64_t i = 0; rc == SOUK_OK && params && i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "MediaUrl%llu", (unsigned long long)i);
        const char *url = s_param(params, name);
        snprintf(name, sizeof name, "MediaContentType%llu", (unsigned long long)i);
        const char *type = s_param(params, name);
        if (!url)
            continue;
        static const char *const notes[KIND_N] = {
            [KIND_IMAGE] = TEXT_IMAGE, [KIND_STICKER] = TEXT_STICKER,
            [KIND_VIDEO] = TEXT_VIDEO, [KIND_DOCUMENT] = TEXT_DOCUMENT,
        };
        kind_t k = s_kind(type ? type : "", mtype);
        rc = k == KIND_AUDIO ? s_voice(self, msg, url, type ? type : "", turn_sid, m)
                             : s_note(m, notes[k]);
    }
    json_decref(params);
    store_inbound_clear(&row);
    return rc;
}

int session_media_prepare(session_t *self, session_msg_t *msgs, size_t n, const char *turn_sid,
                          session_media_t *m)
{
    memset(m, 0, sizeof *m);
    int rc = SOUK_OK;
    /* a location comes with an empty body and no media: a text turn costs
     * no extra read */
    for (size_t i = 0; rc == SOUK_OK && i < n; i++)
        if (msgs[i].num_media > 0 || !*msgs[i].body)
            rc = s_message(self, &msgs[i], turn_sid, m);
    return rc;
}

char *session_media_reply(const session_media_t *m, char *reply)
{
    if (!m->note)
        return reply;
    char *out = NULL;
    if (asprintf(&out, "%s%s%s", m->note, reply && *reply ? "\n\n" : "", reply ? reply : "") < 0)
        out = NULL;
    free(reply);
    return out;
}

void session_media_clear(session_media_t *m)
{
    free(m->note);
    memset(m, 0, sizeof *m);
}

/* ---- the delivery address of the next order ------------------------------ */

typedef struct {
    char *text;
    int64_t ts_ms;
} last_location_t;

static int s_find_location(const store_history_t *h, void *arg)
{
    last_location_t *l = arg;
    if (h->dir == STORE_DIR_IN && h->text
        && strncmp(h->text, LOCATION_PREFIX, strlen(LOCATION_PREFIX)) == 0 && h->ts_ms >= l->ts_ms) {
        free(l->text);
        l->text = strdup(h->text + strlen(LOCATION_PREFIX));
        l->ts_ms = h->ts_ms;
    }
    return SOUK_OK;
}

static int s_newest_order(const store_order_t *o, void *arg)
{
    int64_t *newest = arg;
    if (o->created_ms > *newest)
        *newest = o->created_ms;
    return SOUK_OK;
}

char *session_media_tool_args(session_t *self, const char *tool, const char *args_json)
{
    if (strcmp(tool, "place_order") != 0)
        return NULL;
    last_location_t l = { 0 };
    int64_t newest = 0;
    char *out = NULL;
    /* the newest location the user sent since their last order */
    if (store_history_recent(self->store, self->waid, 50, s_find_location, &l) != SOUK_OK || !l.text
        || store_order_list_user(self->store, self->waid, s_newest_order, &newest) != SOUK_OK
        || newest > l.ts_ms) {
        free(l.text);
        return NULL;
    }
    json_t *args = json_loads(args_json ? args_json : "{}", 0, NULL);
    const char *note = json_string_value(json_object_get(args, "note"));
    char *joined = NULL;
    if (json_is_object(args)
        && asprintf(&joined, "%s%sDeliver to: %s", note ? note : "", note ? " \xC2\xB7 " : "",
                    l.text) >= 0) {
        if (strlen(joined) > 500)
            joined[500] = '\0'; /* the schema's cap; cut at a byte, mended below */
        while (!souk_utf8_valid(joined, strlen(joined)))
            joined[strlen(joined) - 1] = '\0';
        json_object_set_new(args, "note", json_string(joined));
        out = json_dumps(args, JSON_COMPACT);
        SLOG_INFO("session.delivery_location", "tool=%s attached=1", tool);
    }
    free(joined);
    json_decref(args);
    free(l.text);
    return out;
}
