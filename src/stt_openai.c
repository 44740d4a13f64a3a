/* stt_openai: a voice note to text through OpenAI's audio API
 * (POST <base>/audio/transcriptions, multipart/form-data: file, model
 * whisper-1, response_format verbose_json — which adds the detected
 * language). Also works against OpenAI-compatible servers that implement
 * that endpoint. The multipart body is built here: four parts do not need
 * libcurl's MIME API. */
#include "souk/stt.h"

#include "souk/curl.h"
#include "souk/error.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ANSWER_MAX (1024 * 1024)

typedef struct {
    char *data;
    size_t len;
    bool too_big;
} answer_t;

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static int s_load_rc = SOUK_EUNAVAIL;
static char s_load_err[256];

static void s_load(void)
{
    s_load_rc = souk_curl_load(s_load_err, sizeof s_load_err);
    if (s_load_rc == SOUK_OK && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        s_load_rc = SOUK_EUNAVAIL;
}

static size_t s_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
    answer_t *a = arg;
    size_t n = size * nmemb;
    if (a->len + n > ANSWER_MAX) {
        a->too_big = true;
        return 0;
    }
    char *d = realloc(a->data, a->len + n + 1);
    if (!d)
        return 0;
    memcpy(d + a->len, ptr, n);
    a->data = d;
    a->len += n;
    d[a->len] = '\0';
    return n;
}

static void s_field(FILE *f, const char *boundary, const char *name, const char *value)
{
    fprintf(f, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n", boundary, name,
            value);
}

/* The multipart body; caller frees. */
static char *s_body(const stt_openai_t *opt, const char *boundary, size_t *len)
{
    char *body = NULL;
    FILE *f = open_memstream(&body, len);
    if (!f)
        return NULL;
    s_field(f, boundary, "model", "whisper-1");
    s_field(f, boundary, "response_format", "verbose_json");
    fprintf(f,
            "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
            "Content-Type: %s\r\n\r\n",
            boundary, opt->filename ? opt->filename : "voice.ogg",
            opt->content_type && *opt->content_type ? opt->content_type : "audio/ogg");
    fwrite(opt->audio, 1, opt->len, f);
    fprintf(f, "\r\n--%s--\r\n", boundary);
    if (fclose(f) != 0) {
        free(body);
        return NULL;
    }
    return body;
}

static int s_parse(const answer_t *a, stt_result_t *out, char *err, size_t errlen)
{
    json_t *doc = a->data ? json_loadb(a->data, a->len, 0, NULL) : NULL;
    const char *text = json_string_value(json_object_get(doc, "text"));
    const char *lang = json_string_value(json_object_get(doc, "language"));
    int rc = SOUK_OK;
    if (!text) {
        snprintf(err, errlen, "transcription answer without text");
        rc = SOUK_EIO;
    } else {
        out->text = strdup(text);
        out->language = lang ? strdup(lang) : NULL;
        out->confidence = 1.0;
        out->model = "openai";
        double secs = json_number_value(json_object_get(doc, "duration"));
        out->audio_ms = (int64_t)(secs * 1000);
        if (!out->text || (lang && !out->language))
            rc = SOUK_ENOMEM;
    }
    json_decref(doc);
    return rc;
}

int stt_openai_transcribe(const stt_openai_t *opt, stt_result_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    pthread_once(&s_once, s_load);
    if (s_load_rc != SOUK_OK) {
        snprintf(err, errlen, "%s", s_load_err);
        return s_load_rc;
    }
    if (!opt->base_url || !*opt->base_url || !opt->api_key || !*opt->api_key) {
        snprintf(err, errlen, "OPENAI_API_KEY is not set");
        return SOUK_EUNAVAIL;
    }
    char boundary[64], url[1024], auth[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(boundary, sizeof boundary, "souk-%lx%lx", (long)ts.tv_sec, (long)ts.tv_nsec);
    size_t blen = 0;
    char *body = s_body(opt, boundary, &blen);
    if (!body)
        return SOUK_ENOMEM;
    size_t bl = strlen(opt->base_url);
    snprintf(url, sizeof url, "%.*s/audio/transcriptions", (int)(bl && opt->base_url[bl - 1] == '/' ? bl - 1 : bl),
             opt->base_url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", opt->api_key);
    char ctype[128];
    snprintf(ctype, sizeof ctype, "Content-Type: multipart/form-data; boundary=%s", boundary);
    struct curl_slist *hdrs = curl_slist_append(NULL, auth);
    struct curl_slist *h2 = hdrs ? curl_slist_append(hdrs, ctype) : NULL;
    CURL *e = h2 ? curl_easy_init() : NULL;
    answer_t a = { 0 };
    int rc = SOUK_OK;
    if (!e) {
        rc = SOUK_ENOMEM;
    } else {
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, opt->timeout_ms > 0 ? opt->timeout_ms : 60000L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &a);
        CURLcode c = curl_easy_perform(e);
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        if (c == CURLE_OPERATION_TIMEDOUT) {
            snprintf(err, errlen, "transcription timed out");
            rc = SOUK_ETIMEDOUT;
        } else if (c != CURLE_OK) {
            snprintf(err, errlen, "transcription request failed: %s", curl_easy_strerror(c));
            rc = SOUK_EIO;
        } else if (status != 200) {
            snprintf(err, errlen, "transcription answered HTTP %ld", status);
            rc = SOUK_EIO;
        } else {
            rc = s_parse(&a, out, err, errlen);
        }
        curl_easy_cleanup(e);
    }
    curl_slist_free_all(hdrs);
    free(body);
    free(a.data);
    if (rc != SOUK_OK)
        stt_result_clear(out);
    return rc;
}
