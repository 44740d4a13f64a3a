/* openai: the HTTP client for the OpenAI API (souk/openai.h).
 *
 * The request runs on a curl multi handle driven by curl_multi_poll with a
 * short timeout, so the wait can call the owner's tick between polls; the
 * back-off between attempts is cut into ticks the same way. The easy
 * handle and the multi handle live as long as the client: curl keeps the
 * connection in the multi handle's cache and reuses it for the next call. */
#include "souk/openai.h"

#include "souk/actor.h"
#include "souk/curl.h"
#include "souk/error.h"
#include "souk/metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#define OPENAI_TIMEOUT_DEFAULT_MS 10000
#define OPENAI_RETRIES_DEFAULT 2
#define OPENAI_TICK_DEFAULT_MS 250
#define OPENAI_BACKOFF_BASE_MS 250
#define OPENAI_BACKOFF_CAP_MS 4000
/* An answer larger than this is not one the API gives: refused. */
#define OPENAI_BODY_MAX (16 * 1024 * 1024)

struct openai_s {
    char *base_url;
    char *auth;                 /* "Authorization: Bearer …" or NULL */
    int timeout_ms, retries, tick_ms;
    openai_tick_fn *tick;
    void *tick_arg;
    CURL *easy;
    CURLM *multi;
    char error[256];
    openai_stats_t stats;
    /* the current response */
    char *body;
    size_t len, cap;
    bool too_big;
    int64_t retry_after_ms;
};

static void s_set_error(openai_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_set_error(openai_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->error, sizeof self->error, fmt, ap);
    va_end(ap);
}

int openai_new(const openai_options_t *opt, openai_t **out, char *err, size_t errlen)
{
    if (!opt || !out || !opt->base_url || !*opt->base_url) {
        if (err && errlen)
            snprintf(err, errlen, "openai: a base URL is needed");
        return SOUK_EINVAL;
    }
    int rc = souk_curl_load(err, errlen);
    if (rc != SOUK_OK)
        return rc;
    openai_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOUK_ENOMEM;
    size_t n = strlen(opt->base_url);
    while (n > 0 && opt->base_url[n - 1] == '/')
        n--;
    self->base_url = strndup(opt->base_url, n);
    if (opt->api_key && *opt->api_key
        && asprintf(&self->auth, "Authorization: Bearer %s", opt->api_key) < 0)
        self->auth = NULL, rc = SOUK_ENOMEM;
    self->timeout_ms = opt->timeout_ms > 0 ? opt->timeout_ms : OPENAI_TIMEOUT_DEFAULT_MS;
    self->retries = opt->retries >= 0 ? opt->retries : OPENAI_RETRIES_DEFAULT;
    self->tick_ms = opt->tick_ms > 0 ? opt->tick_ms : OPENAI_TICK_DEFAULT_MS;
    self->tick = opt->tick;
    self->tick_arg = opt->tick_arg;
    self->easy = curl_easy_init();
    self->multi = curl_multi_init();
    if (rc != SOUK_OK || !self->base_url || !self->easy || !self->multi) {
        openai_destroy(&self);
        return SOUK_ENOMEM;
    }
    *out = self;
    return SOUK_OK;
}

void openai_destroy(openai_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    openai_t *self = *self_p;
    if (self->easy)
        curl_easy_cleanup(self->easy);
    if (self->multi)
        curl_multi_cleanup(self->multi);
    if (self->auth) /* the key: not left in freed memory */
        explicit_bzero(self->auth, strlen(self->auth));
    free(self->auth);
    free(self->base_url);
    free(self->body);
    free(self);
    *self_p = NULL;
}

void openai_set_tick(openai_t *self, openai_tick_fn *tick, void *arg)
{
    self->tick = tick;
    self->tick_arg = arg;
}

void openai_set_timeout(openai_t *self, int timeout_ms)
{
    self->timeout_ms = timeout_ms > 0 ? timeout_ms : OPENAI_TIMEOUT_DEFAULT_MS;
}

const char *openai_last_error(const openai_t *self)
{
    return self->error;
}

void openai_stats(const openai_t *self, openai_stats_t *out)
{
    *out = self->stats;
}

/* ---- one HTTP exchange -------------------------------------------------- */

static size_t s_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    openai_t *self = arg;
    size_t n = size * nmemb;
    if (self->len + n > OPENAI_BODY_MAX) {
        self->too_big = true;
        return 0;               /* curl aborts the transfer */
    }
    if (self->len + n + 1 > self->cap) {
        size_t cap = self->cap ? self->cap : 16384;
        while (cap < self->len + n + 1)
            cap *= 2;
        char *grown = realloc(self->body, cap);
        if (!grown)
            return 0;
        self->body = grown;
        self->cap = cap;
    }
    memcpy(self->body + self->len, data, n);
    self->len += n;
    self->body[self->len] = '\0';
    return n;
}

int64_t openai_retry_after_ms(const char *v)
{
    if (!v)
        return -1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v >= '0' && *v <= '9') {
        char *end;
        double s = strtod(v, &end);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        return *end || s > 86400 ? -1 : (int64_t)(s * 1000);
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%s", v);
    buf[strcspn(buf, "\r\n")] = '\0';
    time_t t = curl_getdate(buf, NULL);
    if (t == (time_t)-1)
        return -1;
    int64_t ms = (int64_t)t * 1000 - souk_wall_ms();
    return ms > 0 ? ms : 0;
}

static size_t s_on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    openai_t *self = arg;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
        char v[64];
        size_t l = n - (sizeof name - 1);
        if (l >= sizeof v)
            l = sizeof v - 1;
        memcpy(v, data + sizeof name - 1, l);
        v[l] = '\0';
        self->retry_after_ms = openai_retry_after_ms(v);
    }
    return n;
}

static void s_tick(openai_t *self)
{
    if (self->tick)
        self->tick(self->tick_arg);
}

/* Sleeps until `until` (monotonic), ticking. */
static void s_sleep_until(openai_t *self, int64_t until)
{
    for (int64_t now = souk_now_ms(); now < until; now = souk_now_ms()) {
        int64_t d = until - now;
        poll(NULL, 0, (int)(d < self->tick_ms ? d : self->tick_ms));
        s_tick(self);
    }
}

/* One request, waited for until `until`. Returns the CURLcode; *status. */
static CURLcode s_exchange(openai_t *self, const char *url, const char *body, int64_t until,
                           long *status)
{
    *status = 0;
    self->len = 0;
    self->too_big = false;
    self->retry_after_ms = -1;
    if (self->body)
        self->body[0] = '\0';
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (h && self->auth)
        h = curl_slist_append(h, self->auth);
    if (!h)
        return CURLE_OUT_OF_MEMORY;
    int64_t left = until - souk_now_ms();
    CURL *e = self->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, self);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, self);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(left > 1 ? left : 1));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(left > 1 ? left : 1));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    CURLcode code = CURLE_OK;
    if (curl_multi_add_handle(self->multi, e) != CURLM_OK) {
        curl_slist_free_all(h);
        return CURLE_FAILED_INIT;
    }
    for (bool done = false; !done;) {
        int running = 0;
        if (curl_multi_perform(self->multi, &running) != CURLM_OK) {
            code = CURLE_FAILED_INIT;
            break;
        }
        CURLMsg *m;
        int queued;
        while ((m = curl_multi_info_read(self->multi, &queued)))
            if (m->msg == CURLMSG_DONE && m->easy_handle == e) {
                code = m->data.result;
                done = true;
            }
        if (done || !running)
            break;
        int fds;
        curl_multi_poll(self->multi, NULL, 0, self->tick_ms, &fds);
        s_tick(self);
    }
    curl_multi_remove_handle(self->multi, e);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    if (code == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    return code;
}

static bool s_retryable(CURLcode code, long status)
{
    if (code != CURLE_OK)
        return code != CURLE_OUT_OF_MEMORY && code != CURLE_WRITE_ERROR;
    return status == 429 || status >= 500;
}

static int64_t s_backoff_ms(int attempt, int64_t retry_after_ms)
{
    int64_t d = (int64_t)OPENAI_BACKOFF_BASE_MS << (attempt < 5 ? attempt : 5);
    if (d > OPENAI_BACKOFF_CAP_MS)
        d = OPENAI_BACKOFF_CAP_MS;
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r)
        r = (uint32_t)souk_now_ms();
    d = d / 2 + (int64_t)(r % (uint32_t)(d / 2 + 1)); /* half fixed, half jitter */
    return retry_after_ms > d ? retry_after_ms : d;
}

/* The API's own error message, when the body is its error JSON. */
static void s_api_error(openai_t *self, long status)
{
    if (status == 401 || status == 403) {
        /* the API's text quotes part of the key: not repeated */
        s_set_error(self, "HTTP %ld: the API key was refused", status);
        return;
    }
    json_t *doc = self->len ? json_loadb(self->body, self->len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
    s_set_error(self, "HTTP %ld%s%.160s", status, msg ? ": " : "", msg ? msg : "");
    json_decref(doc);
}

static int s_status_error(long status)
{
    if (status == 401 || status == 403)
        return SOUK_EFORBIDDEN;
    if (status == 429 || status >= 500)
        return SOUK_EUNAVAIL;
    return SOUK_EINVAL;
}

int openai_post(openai_t *self, const char *path, const json_t *body, json_t **reply,
                openai_call_t *info)
{
    openai_call_t dummy;
    info = info ? info : &dummy;
    memset(info, 0, sizeof *info);
    *reply = NULL;
    self->error[0] = '\0';
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    char *url = NULL;
    if (!text || asprintf(&url, "%s%s", self->base_url, path) < 0) {
        free(text);
        return SOUK_ENOMEM;
    }
    int64_t start = souk_now_ms(), until = start + self->timeout_ms;
    int rc = SOUK_EUNAVAIL;
    self->stats.calls++;
    for (int attempt = 0;; attempt++) {
        long status;
        info->attempts++;
        self->stats.attempts++;
        CURLcode code = s_exchange(self, url, text, until, &status);
        info->status = status;
        bool timed_out = code == CURLE_OPERATION_TIMEDOUT || souk_now_ms() >= until;
        if (code == CURLE_OK && status >= 200 && status < 300) {
            json_error_t jerr;
            *reply = json_loadb(self->body ? self->body : "", self->len, JSON_REJECT_DUPLICATES,
                                &jerr);
            rc = json_is_object(*reply) ? SOUK_OK : SOUK_EPROTO;
            if (rc != SOUK_OK) {
                s_set_error(self, "the answer of %s is not a JSON object (%s)", path, jerr.text);
                json_decref(*reply);
                *reply = NULL;
            }
            break;
        }
        if (code != CURLE_OK) {
            s_set_error(self, "%s%s", self->too_big ? "answer too large: " : "",
                        curl_easy_strerror(code));
            rc = timed_out ? SOUK_ETIMEDOUT : SOUK_EUNAVAIL;
        } else {
            s_api_error(self, status);
            rc = s_status_error(status);
        }
        if (!s_retryable(code, status) || attempt >= self->retries || timed_out)
            break;
        int64_t wake = souk_now_ms() + s_backoff_ms(attempt, self->retry_after_ms);
        if (wake >= until) {    /* Retry-After beyond the deadline: give up now */
            rc = SOUK_ETIMEDOUT;
            s_set_error(self, "retry would pass the %d ms deadline", self->timeout_ms);
            break;
        }
        s_sleep_until(self, wake);
    }
    info->latency_ms = souk_now_ms() - start;
    self->stats.latency_ms += (uint64_t)info->latency_ms;
    if (rc == SOUK_OK) {
        json_t *usage = json_object_get(*reply, "usage");
        json_t *in = json_object_get(usage, "prompt_tokens");
        json_t *out = json_object_get(usage, "completion_tokens");
        info->tokens_in = json_is_integer(in) && json_integer_value(in) > 0 ? json_integer_value(in) : 0;
        info->tokens_out = json_is_integer(out) && json_integer_value(out) > 0 ? json_integer_value(out) : 0;
        self->stats.tokens_in += (uint64_t)info->tokens_in;
        self->stats.tokens_out += (uint64_t)info->tokens_out;
        souk_metric_add("souk_llm_tokens_total", "kind=\"prompt\"", (double)info->tokens_in);
        souk_metric_add("souk_llm_tokens_total", "kind=\"completion\"", (double)info->tokens_out);
    } else {
        self->stats.failures++;
    }
    souk_metric_observe("souk_llm_request_duration_seconds", "", (double)info->latency_ms / 1000.0);
    souk_metric_add("souk_llm_requests_total",
                    rc == SOUK_OK          ? "result=\"ok\""
                    : rc == SOUK_ETIMEDOUT ? "result=\"timeout\""
                                           : "result=\"error\"",
                    1);
    free(url);
    free(text);
    return rc;
}

/* ---- chat completions --------------------------------------------------- */

void openai_chat_clear(openai_chat_t *out)
{
    if (!out)
        return;
    free(out->content);
    for (size_t i = 0; i < out->n_tool_calls; i++) {
        free(out->tool_calls[i].id);
        free(out->tool_calls[i].name);
        free(out->tool_calls[i].arguments);
    }
    free(out->tool_calls);
    memset(out, 0, sizeof *out);
}

static int s_read_tool_calls(const json_t *calls, openai_chat_t *out)
{
    if (!calls || json_is_null(calls))
        return SOUK_OK;
    if (!json_is_array(calls))
        return SOUK_EPROTO;
    size_t n = json_array_size(calls);
    if (n == 0)
        return SOUK_OK;
    out->tool_calls = calloc(n, sizeof *out->tool_calls);
    if (!out->tool_calls)
        return SOUK_ENOMEM;
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c) {
        json_t *fn = json_object_get(c, "function");
        const char *id = json_string_value(json_object_get(c, "id"));
        const char *name = json_string_value(json_object_get(fn, "name"));
        const char *args = json_string_value(json_object_get(fn, "arguments"));
        if (!name || !*name || !args)
            return SOUK_EPROTO;
        openai_tool_call_t *t = &out->tool_calls[out->n_tool_calls++];
        t->id = strdup(id ? id : "");
        t->name = strdup(name);
        t->arguments = strdup(args);
        if (!t->id || !t->name || !t->arguments)
            return SOUK_ENOMEM;
    }
    return SOUK_OK;
}

int openai_chat(openai_t *self, const json_t *request, openai_chat_t *out)
{
    memset(out, 0, sizeof *out);
    json_t *reply;
    int rc = openai_post(self, "/chat/completions", request, &reply, &out->call);
    if (rc != SOUK_OK)
        return rc;
    json_t *choice = json_array_get(json_object_get(reply, "choices"), 0);
    json_t *msg = json_object_get(choice, "message");
    json_t *content = json_object_get(msg, "content");
    if (!json_is_object(msg) || (content && !json_is_string(content) && !json_is_null(content))) {
        rc = SOUK_EPROTO;
    } else {
        const char *fr = json_string_value(json_object_get(choice, "finish_reason"));
        snprintf(out->finish_reason, sizeof out->finish_reason, "%s", fr ? fr : "");
        if (json_is_string(content) && !(out->content = strdup(json_string_value(content))))
            rc = SOUK_ENOMEM;
        if (rc == SOUK_OK)
            rc = s_read_tool_calls(json_object_get(msg, "tool_calls"), out);
        if (rc == SOUK_OK && !out->content && !out->n_tool_calls)
            rc = SOUK_EPROTO;
    }
    json_decref(reply);
    if (rc != SOUK_OK) {
        openai_call_t call = out->call;
        openai_chat_clear(out);
        out->call = call;
        if (rc == SOUK_EPROTO) {
            s_set_error(self, "the chat completion has no usable message");
            self->stats.failures++;
        }
    }
    return rc;
}

/* ---- embeddings --------------------------------------------------------- */

static int s_read_vector(const json_t *emb, int dim, float *out)
{
    if (!json_is_array(emb) || json_array_size(emb) != (size_t)dim)
        return SOUK_EPROTO;
    double norm = 0;
    for (int j = 0; j < dim; j++) {
        json_t *x = json_array_get(emb, (size_t)j);
        if (!json_is_number(x) || !isfinite(json_number_value(x)))
            return SOUK_EPROTO;
        out[j] = (float)json_number_value(x);
        norm += (double)out[j] * out[j];
    }
    if (norm > 0) {
        float s = (float)(1.0 / sqrt(norm));
        for (int j = 0; j < dim; j++)
            out[j] *= s;
    }
    return SOUK_OK;
}

int openai_embed(openai_t *self, const char *model, int dim_param, const char *const *texts,
                 size_t n, int dim, float *out, openai_call_t *info)
{
    if (!model || !texts || !out || n == 0 || dim < 1)
        return SOUK_EINVAL;
    json_t *input = json_array();
    for (size_t i = 0; input && i < n; i++)
        /* the API refuses an empty string: a blank text still gets a vector */
        json_array_append_new(input, json_string(texts[i] && *texts[i] ? texts[i] : " "));
    json_t *req = input ? json_pack("{s:s, s:o, s:s}", "model", model, "input", input,
                                    "encoding_format", "float")
                        : NULL;
    if (req && dim_param > 0)
        json_object_set_new(req, "dimensions", json_integer(dim_param));
    if (!req)
        return SOUK_ENOMEM;
    json_t *reply;
    int rc = openai_post(self, "/embeddings", req, &reply, info);
    json_decref(req);
    if (rc != SOUK_OK)
        return rc;
    json_t *data = json_object_get(reply, "data");
    bool *seen = calloc(n, sizeof *seen);
    if (!seen)
        rc = SOUK_ENOMEM;
    else if (!json_is_array(data) || json_array_size(data) != n)
        rc = SOUK_EPROTO;
    size_t i;
    json_t *d;
    json_array_foreach(data, i, d) {
        if (rc != SOUK_OK)
            break;
        json_t *idx = json_object_get(d, "index");
        json_int_t k = json_is_integer(idx) ? json_integer_value(idx) : -1;
        if (k < 0 || (size_t)k >= n || seen[k])
            rc = SOUK_EPROTO;
        else {
            seen[k] = true;
            rc = s_read_vector(json_object_get(d, "embedding"), dim, out + (size_t)k * dim);
        }
    }
    if (rc == SOUK_EPROTO) {
        s_set_error(self, "the embeddings answer is not %zu vectors of %d numbers", n, dim);
        self->stats.failures++;
    }
    free(seen);
    json_decref(reply);
    return rc;
}
