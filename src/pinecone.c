/* pinecone: Pinecone's REST data plane over libcurl (see souk/pinecone.h).
 *
 * One easy handle per client, so consecutive requests reuse the connection.
 * Upsert bodies are written by hand into a growing buffer (the vectors'
 * floats as %.7g: float precision in a third of jansson's bytes), so a batch
 * is cut exactly at the byte limit; everything else is jansson. */
#include "souk/pinecone.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "souk/curl.h"
#include "souk/error.h"
#include "souk/metrics.h"

#define CONNECT_TIMEOUT_MS 5000
#define BACKOFF_MAX_MS 5000

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf_t;

struct pinecone_s {
    CURL *curl;
    struct curl_slist *headers;
    char *base;                 /* "https://host" without a trailing slash */
    char *ns;
    int timeout_ms, backoff_ms, query_budget_ms;
    sbuf_t batch;               /* queued upsert vectors, comma separated */
    size_t batch_n;
    sbuf_t resp;
    pinecone_match_t *matches;
    int n_matches;
    json_t *answer;             /* the last query's response (owns match strings) */
    pinecone_stats_t stats;
    unsigned rand_state;
    char err[512];
};

static int s_fail(pinecone_t *self, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_fail(pinecone_t *self, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->err, sizeof self->err, fmt, ap);
    va_end(ap);
    return rc;
}

static int s_reserve(sbuf_t *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return SOUK_OK;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->buf, cap);
    if (!p)
        return SOUK_ENOMEM;
    b->buf = p;
    b->cap = cap;
    return SOUK_OK;
}

static int s_append(sbuf_t *b, const char *s, size_t n)
{
    if (s_reserve(b, n) != SOUK_OK)
        return SOUK_ENOMEM;
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
    return SOUK_OK;
}

static int s_appends(sbuf_t *b, const char *s)
{
    return s_append(b, s, strlen(s));
}

/* A JSON string literal of s. */
static int s_append_json_str(sbuf_t *b, const char *s)
{
    json_t *j = json_string(s);
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    int rc = t ? s_appends(b, t) : SOUK_ENOMEM;
    free(t);
    json_decref(j);
    return rc;
}

static int s_append_floats(sbuf_t *b, const float *v, int dim)
{
    if (s_reserve(b, (size_t)dim * 16 + 2) != SOUK_OK)
        return SOUK_ENOMEM;
    b->buf[b->len++] = '[';
    for (int i = 0; i < dim; i++)
        b->len += (size_t)snprintf(b->buf + b->len, 17, "%s%.7g", i ? "," : "", (double)v[i]);
    b->buf[b->len++] = ']';
    b->buf[b->len] = '\0';
    return SOUK_OK;
}

static size_t s_collect(char *data, size_t size, size_t n, void *arg)
{
    sbuf_t *b = arg;
    return s_append(b, data, size * n) == SOUK_OK ? size * n : 0;
}

int pinecone_new(const pinecone_opts_t *opts, pinecone_t **out, char *err, size_t errlen)
{
    if (!opts || !out)
        return SOUK_EINVAL;
    if (!opts->host || !*opts->host || !opts->api_key || !*opts->api_key) {
        if (err && errlen)
            snprintf(err, errlen, "pinecone: PINECONE_INDEX_HOST and PINECONE_API_KEY must be set");
        return SOUK_ECONFIG;
    }
    int rc = souk_curl_load(err, errlen);
    if (rc != SOUK_OK)
        return rc;
    pinecone_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOUK_ENOMEM;
    const char *h = opts->host;
    bool scheme = strncmp(h, "http://", 7) == 0 || strncmp(h, "https://", 8) == 0;
    size_t hl = strlen(h);
    while (hl && h[hl - 1] == '/')
        hl--;
    char key[1024];
    snprintf(key, sizeof key, "Api-Key: %s", opts->api_key);
    self->base = malloc(hl + 9);
    if (self->base)
        snprintf(self->base, hl + 9, "%s%.*s", scheme ? "" : "https://", (int)hl, h);
    self->ns = strdup(opts->ns ? opts->ns : "");
    self->curl = curl_easy_init();
    self->headers = curl_slist_append(NULL, key);
    explicit_bzero(key, sizeof key);
    if (self->headers)
        self->headers = curl_slist_append(self->headers, "Content-Type: application/json");
    if (self->headers)
        self->headers = curl_slist_append(self->headers,
                                          "X-Pinecone-API-Version: " PINECONE_API_VERSION);
    /* a query's body passes 1 KiB: no "Expect: 100-continue" round trip */
    if (self->headers)
        self->headers = curl_slist_append(self->headers, "Expect:");
    if (!self->base || !self->ns || !self->curl || !self->headers) {
        pinecone_destroy(&self);
        return SOUK_ENOMEM;
    }
    self->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 10000;
    self->backoff_ms = opts->backoff_ms > 0 ? opts->backoff_ms : 200;
    self->query_budget_ms = opts->query_budget_ms > 0 ? opts->query_budget_ms
                                                      : PINECONE_QUERY_BUDGET_MS;
    self->rand_state = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)self;
    *out = self;
    return SOUK_OK;
}

static void s_free_matches(pinecone_t *self)
{
    free(self->matches);
    self->matches = NULL;
    self->n_matches = 0;
    json_decref(self->answer);
    self->answer = NULL;
}

void pinecone_destroy(pinecone_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pinecone_t *self = *self_p;
    if (self->curl)
        curl_easy_cleanup(self->curl);
    if (self->headers)
        curl_slist_free_all(self->headers);
    s_free_matches(self);
    free(self->batch.buf);
    free(self->resp.buf);
    free(self->base);
    free(self->ns);
    free(self);
    *self_p = NULL;
}

const char *pinecone_last_error(const pinecone_t *self)
{
    return self && self->err[0] ? self->err : "ok";
}

const char *pinecone_namespace(const pinecone_t *self)
{
    return self->ns;
}

void pinecone_stats(const pinecone_t *self, pinecone_stats_t *st)
{
    *st = self->stats;
}

/* ---- one request, with retries -------------------------------------------------- */

static void s_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Pinecone's error body is {"code", "message", "details"}; a gateway in
 * front may answer plain text. Either way a short excerpt, for the error. */
static void s_error_text(const sbuf_t *resp, char *out, size_t outlen)
{
    json_t *doc = resp->len ? json_loadb(resp->buf, resp->len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(doc, "message"));
    if (msg)
        snprintf(out, outlen, "%.200s", msg);
    else if (json_is_string(doc))
        snprintf(out, outlen, "%.200s", json_string_value(doc));
    else
        snprintf(out, outlen, "%.120s", resp->len ? resp->buf : "(empty body)");
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    json_decref(doc);
}

/* method "GET" or "POST" (body); the response lands in self->resp and, when
 * it is JSON as it should be, in *doc (caller decrefs). */
static double s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* budget_ms > 0 bounds the attempts and the waits between them together (a
 * search must answer within the reply budget); 0: PINECONE_RETRIES alone. */
static int s_request(pinecone_t *self, const char *method, const char *path, const char *body,
                     size_t body_len, json_t **doc, int budget_ms)
{
    char url[4096];
    snprintf(url, sizeof url, "%s%s", self->base, path);
    long delay = self->backoff_ms;
    double t0 = s_now_ms();
    for (int attempt = 0;; attempt++) {
        long timeout = self->timeout_ms;
        if (budget_ms > 0) {
            long left = budget_ms - (long)(s_now_ms() - t0);
            timeout = left < timeout ? (left > 1 ? left : 1) : timeout;
        }
        self->resp.len = 0;
        CURL *c = self->curl;
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, self->headers);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_collect);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &self->resp);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        if (strcmp(method, "POST") == 0) {
            curl_easy_setopt(c, CURLOPT_POST, 1L);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        } else {
            curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        }
        self->stats.requests++;
        CURLcode cc = curl_easy_perform(c);
        long status = 0;
        if (cc == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        bool retry = cc != CURLE_OK || status == 429 || status >= 500;
        long jitter = delay / 2 ? (long)(rand_r(&self->rand_state) % (unsigned)(delay / 2)) : 0;
        if (retry && budget_ms > 0 && s_now_ms() - t0 + (double)(delay + jitter) >= budget_ms)
            retry = false;                     /* no time left for another attempt */
        if (retry && attempt < PINECONE_RETRIES) {
            self->stats.retries++;
            s_sleep_ms(delay + jitter);
            delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
            continue;
        }
        char why[256];
        if (cc != CURLE_OK)
            return s_fail(self, cc == CURLE_OPERATION_TIMEDOUT ? SOUK_ETIMEDOUT : SOUK_EUNAVAIL,
                          "pinecone: %s %s: %s (after %d attempts)", method, path,
                          curl_easy_strerror(cc), attempt + 1);
        if (status < 200 || status > 299) {
            s_error_text(&self->resp, why, sizeof why);
            int rc = status == 401 || status == 403 ? SOUK_ECONFIG
                     : status == 404                ? SOUK_ENOTFOUND
                     : status == 429 || status >= 500 ? SOUK_EUNAVAIL
                                                      : SOUK_EINVAL;
            return s_fail(self, rc, "pinecone: %s %s: HTTP %ld%s: %s%s", method, path, status,
                          rc == SOUK_EUNAVAIL ? " after retries" : "", why,
                          rc == SOUK_ECONFIG ? " (check PINECONE_API_KEY)" : "");
        }
        json_error_t je;
        *doc = json_loadb(self->resp.buf ? self->resp.buf : "", self->resp.len, 0, &je);
        if (!json_is_object(*doc)) {
            json_decref(*doc);
            *doc = NULL;
            return s_fail(self, SOUK_EPROTO, "pinecone: %s %s: the response is not a JSON object (%s)",
                          method, path, je.text[0] ? je.text : "not an object");
        }
        return SOUK_OK;
    }
}

/* ---- upsert ------------------------------------------------------------------------ */

static int s_vector_json(sbuf_t *b, const char *id, const float *vec, int dim,
                         const json_t *metadata)
{
    int rc = s_appends(b, "{\"id\":");
    if (rc == SOUK_OK)
        rc = s_append_json_str(b, id);
    if (rc == SOUK_OK)
        rc = s_appends(b, ",\"values\":");
    if (rc == SOUK_OK)
        rc = s_append_floats(b, vec, dim);
    if (rc == SOUK_OK && metadata && json_object_size(metadata)) {
        char *m = json_dumps(metadata, JSON_COMPACT);
        rc = m ? s_appends(b, ",\"metadata\":") : SOUK_ENOMEM;
        if (rc == SOUK_OK)
            rc = s_appends(b, m);
        free(m);
    }
    return rc == SOUK_OK ? s_appends(b, "}") : rc;
}

static int s_send_upsert(pinecone_t *self, const char *ns, const char *vectors, size_t n)
{
    sbuf_t body = { 0 };
    int rc = s_appends(&body, "{\"namespace\":");
    if (rc == SOUK_OK)
        rc = s_append_json_str(&body, ns);
    if (rc == SOUK_OK)
        rc = s_appends(&body, ",\"vectors\":[");
    if (rc == SOUK_OK)
        rc = s_appends(&body, vectors);
    if (rc == SOUK_OK)
        rc = s_appends(&body, "]}");
    json_t *doc = NULL;
    if (rc == SOUK_OK) {
        self->stats.upsert_requests++;
        rc = s_request(self, "POST", "/vectors/upsert", body.buf, body.len, &doc, 0);
    }
    free(body.buf);
    if (rc == SOUK_ENOMEM)
        return s_fail(self, rc, "pinecone: out of memory");
    if (rc != SOUK_OK)
        return rc;
    json_t *count = json_object_get(doc, "upsertedCount");
    json_int_t got = json_is_integer(count) ? json_integer_value(count) : -1;
    json_decref(doc);
    if (got != (json_int_t)n)
        return s_fail(self, SOUK_EPROTO, "pinecone: upsert of %zu vectors answered upsertedCount %lld",
                      n, (long long)got);
    self->stats.upserted += n;
    return SOUK_OK;
}

int pinecone_upsert_flush(pinecone_t *self)
{
    if (!self)
        return SOUK_EINVAL;
    if (!self->batch_n)
        return SOUK_OK;
    int rc = s_send_upsert(self, self->ns, self->batch.buf, self->batch_n);
    self->batch.len = 0;
    self->batch_n = 0;
    return rc;
}

static bool s_finite(const float *vec, int dim)
{
    for (int i = 0; i < dim; i++)
        if (!isfinite(vec[i]))
            return false;
    return true;
}

int pinecone_upsert_add(pinecone_t *self, const char *id, const float *vec, int dim,
                        const json_t *metadata)
{
    if (!self || !id || !*id || !vec || dim < 1 || !s_finite(vec, dim) ||
        (metadata && !json_is_object(metadata)))
        return SOUK_EINVAL;
    sbuf_t one = { 0 };
    int rc = s_vector_json(&one, id, vec, dim, metadata);
    if (rc == SOUK_OK && one.len + 256 > PINECONE_BODY_MAX)
        rc = s_fail(self, SOUK_EINVAL, "pinecone: vector %s alone exceeds a request", id);
    /* the body adds the namespace and brackets: keep 4 KiB for them */
    if (rc == SOUK_OK && self->batch_n &&
        (self->batch_n == PINECONE_UPSERT_MAX ||
         self->batch.len + one.len + 1 + 4096 > PINECONE_BODY_MAX))
        rc = pinecone_upsert_flush(self);
    if (rc == SOUK_OK && self->batch_n)
        rc = s_append(&self->batch, ",", 1);
    if (rc == SOUK_OK)
        rc = s_append(&self->batch, one.buf, one.len);
    if (rc == SOUK_OK)
        self->batch_n++;
    free(one.buf);
    return rc;
}

int pinecone_put(pinecone_t *self, const char *ns, const char *id, const float *vec, int dim,
                 const json_t *metadata)
{
    if (!self || !id || !vec || dim < 1 || !s_finite(vec, dim))
        return SOUK_EINVAL;
    sbuf_t one = { 0 };
    int rc = s_vector_json(&one, id, vec, dim, metadata);
    if (rc == SOUK_OK)
        rc = s_send_upsert(self, ns ? ns : self->ns, one.buf, 1);
    free(one.buf);
    return rc;
}

/* ---- query ------------------------------------------------------------------------- */

/* Checks the documented shape: {"matches": [{"id": str, "score": num,
 * "metadata"?: obj}], "namespace": str}, best first. */
static int s_parse_matches(pinecone_t *self, json_t *doc, int top_k)
{
    json_t *arr = json_object_get(doc, "matches");
    if (!json_is_array(arr))
        return s_fail(self, SOUK_EPROTO, "pinecone: query response has no \"matches\" array");
    size_t n = json_array_size(arr);
    if (n > (size_t)top_k)
        return s_fail(self, SOUK_EPROTO, "pinecone: query for topK %d answered %zu matches", top_k, n);
    self->matches = calloc(n + 1, sizeof *self->matches);
    if (!self->matches)
        return s_fail(self, SOUK_ENOMEM, "pinecone: out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(arr, i);
        json_t *id = json_object_get(m, "id"), *score = json_object_get(m, "score");
        json_t *meta = json_object_get(m, "metadata");
        if (!json_is_string(id) || !json_string_length(id) || !json_is_number(score) ||
            !isfinite(json_number_value(score)) || (meta && !json_is_object(meta) && !json_is_null(meta)))
            return s_fail(self, SOUK_EPROTO, "pinecone: query match %zu is malformed (needs a string "
                          "\"id\", a number \"score\", an object \"metadata\")", i);
        self->matches[i] = (pinecone_match_t){ .id = json_string_value(id),
                                               .score = (float)json_number_value(score),
                                               .metadata = json_is_object(meta) ? meta : NULL };
        if (i && self->matches[i].score > self->matches[i - 1].score + 1e-6f)
            return s_fail(self, SOUK_EPROTO, "pinecone: query matches are not best first");
    }
    self->n_matches = (int)n;
    return SOUK_OK;
}

int pinecone_query(pinecone_t *self, const float *vec, int dim, int top_k, const json_t *filter,
                   bool include_metadata, const pinecone_match_t **matches, int *n)
{
    if (!self || !vec || dim < 1 || top_k < 1 || top_k > PINECONE_TOPK_MAX || !matches || !n ||
        (filter && !json_is_object(filter)) || !s_finite(vec, dim))
        return SOUK_EINVAL;
    *n = 0;
    *matches = NULL;
    s_free_matches(self);
    sbuf_t body = { 0 };
    char head[128];
    snprintf(head, sizeof head, "{\"topK\":%d,\"includeValues\":false,\"includeMetadata\":%s,"
             "\"namespace\":", top_k, include_metadata ? "true" : "false");
    int rc = s_appends(&body, head);
    if (rc == SOUK_OK)
        rc = s_append_json_str(&body, self->ns);
    if (rc == SOUK_OK && filter && json_object_size(filter)) {
        char *f = json_dumps(filter, JSON_COMPACT);
        rc = f ? s_appends(&body, ",\"filter\":") : SOUK_ENOMEM;
        if (rc == SOUK_OK)
            rc = s_appends(&body, f);
        free(f);
    }
    if (rc == SOUK_OK)
        rc = s_appends(&body, ",\"vector\":");
    if (rc == SOUK_OK)
        rc = s_append_floats(&body, vec, dim);
    if (rc == SOUK_OK)
        rc = s_appends(&body, "}");
    json_t *doc = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (rc == SOUK_OK)
        rc = s_request(self, "POST", "/query", body.buf, body.len, &doc, self->query_budget_ms);
    else
        rc = s_fail(self, rc, "pinecone: out of memory");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    souk_metric_observe("souk_vector_query_duration_seconds", "",
                        (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    free(body.buf);
    if (rc != SOUK_OK)
        return rc;
    self->answer = doc;
    rc = s_parse_matches(self, doc, top_k);
    if (rc != SOUK_OK) {
        s_free_matches(self);
        return rc;
    }
    *matches = self->matches;
    *n = self->n_matches;
    return SOUK_OK;
}

/* ---- delete and fetch ----------------------------------------------------------------- */

static int s_delete(pinecone_t *self, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return s_fail(self, SOUK_ENOMEM, "pinecone: out of memory");
    json_t *doc = NULL;
    int rc = s_request(self, "POST", "/vectors/delete", text, strlen(text), &doc, 0);
    free(text);
    json_decref(doc);
    return rc;
}

int pinecone_delete_ids(pinecone_t *self, const char *const *ids, size_t n)
{
    if (!self || (n && !ids))
        return SOUK_EINVAL;
    for (size_t at = 0; at < n; at += PINECONE_DELETE_MAX) {
        json_t *arr = json_array();
        for (size_t i = at; arr && i < n && i < at + PINECONE_DELETE_MAX; i++)
            if (json_array_append_new(arr, json_string(ids[i])) != 0) {
                json_decref(arr);
                arr = NULL;
            }
        int rc = s_delete(self, arr ? json_pack("{s:o,s:s}", "ids", arr, "namespace", self->ns)
                                    : NULL);
        if (rc == SOUK_ENOTFOUND)
            rc = SOUK_OK;                      /* no namespace: nothing to delete */
        if (rc != SOUK_OK)
            return rc;
    }
    return SOUK_OK;
}

int pinecone_delete_all(pinecone_t *self, const char *ns)
{
    if (!self)
        return SOUK_EINVAL;
    int rc = s_delete(self, json_pack("{s:b,s:s}", "deleteAll", 1, "namespace", ns ? ns : self->ns));
    return rc == SOUK_ENOTFOUND ? SOUK_OK : rc;
}

int pinecone_fetch(pinecone_t *self, const char *ns, const char *id, json_t **metadata)
{
    if (!self || !id || !metadata)
        return SOUK_EINVAL;
    *metadata = NULL;
    char *eid = curl_easy_escape(self->curl, id, 0);
    char *ens = curl_easy_escape(self->curl, ns ? ns : self->ns, 0);
    char path[2048];
    if (eid && ens)
        snprintf(path, sizeof path, "/vectors/fetch?ids=%s&namespace=%s", eid, ens);
    curl_free(eid);
    curl_free(ens);
    if (!eid || !ens)
        return s_fail(self, SOUK_ENOMEM, "pinecone: out of memory");
    json_t *doc = NULL;
    int rc = s_request(self, "GET", path, NULL, 0, &doc, self->query_budget_ms);
    if (rc != SOUK_OK)
        return rc;
    json_t *vectors = json_object_get(doc, "vectors");
    json_t *v = json_object_get(vectors, id);
    json_t *meta = json_object_get(v, "metadata");
    if (!json_is_object(vectors))
        rc = s_fail(self, SOUK_EPROTO, "pinecone: fetch response has no \"vectors\" object");
    else if (!v)
        rc = s_fail(self, SOUK_ENOTFOUND, "pinecone: no vector %s in namespace %s", id,
                    ns ? ns : self->ns);
    else if (!json_is_object(v) || (meta && !json_is_object(meta)))
        rc = s_fail(self, SOUK_EPROTO, "pinecone: fetched vector %s is malformed", id);
    else
        *metadata = meta ? json_incref(meta) : json_object();
    json_decref(doc);
    return rc;
}
