/* dynamo: DynamoDB's JSON API over libcurl, signed with libcurl's SigV4,
 * retried with back-off, counted (see souk/dynamo.h). The store's DynamoDB
 * backend (src/store_dynamo.c) is its one user; the access patterns live
 * there, this file knows only requests and answers. */
#include "souk/dynamo.h"
#include "souk/curl.h"
#include "souk/error.h"
#include "souk/metrics.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define ATTEMPTS 7              /* back-off 20, 40 ... 640 ms (+ jitter): ~1.3 s in all */
#define BACKOFF_FIRST_MS 20
#define TIMEOUT_MS 10000
#define CONNECT_TIMEOUT_MS 2000
#define ANSWER_MAX (16u << 20)  /* a Query page is at most 1 MB of items; leave room */

struct dynamo_s {
    CURL *curl;
    struct curl_slist *headers_base;   /* content type and, when set, the session token */
    char endpoint[512];
    char sigv4[128];            /* "aws:amz:REGION:dynamodb" */
    char userpwd[512];          /* "KEY:SECRET", for CURLOPT_USERPWD: never logged */
    char *answer;
    size_t answer_len, answer_cap;
    bool answer_too_big;
    uint32_t jitter;
    dynamo_stats_t stats;
    char errmsg[320];
};

/* ---- attribute values ------------------------------------------------------ */

json_t *dynamo_s(const char *s)
{
    return s ? json_pack("{s:s}", "S", s) : NULL;
}

json_t *dynamo_n(int64_t n)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, n);
    return json_pack("{s:s}", "N", buf);
}

json_t *dynamo_bool(int b)
{
    return json_pack("{s:b}", "BOOL", b);
}

void dynamo_set(json_t *item, const char *name, json_t *value)
{
    if (value)
        json_object_set_new(item, name, value);
}

const char *dynamo_get_s(const json_t *item, const char *name)
{
    return json_string_value(json_object_get(json_object_get(item, name), "S"));
}

int64_t dynamo_get_n(const json_t *item, const char *name, int64_t dflt)
{
    const char *s = json_string_value(json_object_get(json_object_get(item, name), "N"));
    if (!s)
        return dflt;
    /* DynamoDB may answer "5.0"-free integers only for what we store, but a
     * counter ADDed to is still an integer: strtoll is enough */
    return strtoll(s, NULL, 10);
}

int dynamo_get_bool(const json_t *item, const char *name)
{
    return json_is_true(json_object_get(json_object_get(item, name), "BOOL"));
}

/* ---- open / close ------------------------------------------------------------ */

static const char *s_env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int s_fail(char *err, size_t errlen, int rc, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    return rc;
}

int dynamo_open(dynamo_t **out, char *err, size_t errlen)
{
    int rc = souk_curl_load(err, errlen);
    if (rc != SOUK_OK)
        return rc;
    const char *endpoint = s_env("DYNAMODB_ENDPOINT");
    const char *region = s_env("AWS_REGION");
    if (!region)
        region = s_env("AWS_DEFAULT_REGION");
    const char *key = s_env("AWS_ACCESS_KEY_ID");
    const char *secret = s_env("AWS_SECRET_ACCESS_KEY");
    const char *token = s_env("AWS_SESSION_TOKEN");
    if (!region && !endpoint)
        return s_fail(err, errlen, SOUK_ECONFIG,
                      "SOUK_STORE=dynamodb needs AWS_REGION (or AWS_DEFAULT_REGION) or DYNAMODB_ENDPOINT");
    if ((!key || !secret) && !endpoint)
        return s_fail(err, errlen, SOUK_ECONFIG,
                      "SOUK_STORE=dynamodb needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    /* A local endpoint (dynalite, DynamoDB Local) accepts any signature. */
    if (!region)
        region = "us-east-1";
    if (!key || !secret)
        key = "local", secret = "local";

    dynamo_t *self = calloc(1, sizeof *self);
    if (!self)
        return s_fail(err, errlen, SOUK_ENOMEM, "out of memory");
    if (endpoint)
        snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint);
    else
        snprintf(self->endpoint, sizeof self->endpoint, "https://dynamodb.%s.amazonaws.com", region);
    snprintf(self->sigv4, sizeof self->sigv4, "aws:amz:%s:dynamodb", region);
    if ((size_t) snprintf(self->userpwd, sizeof self->userpwd, "%s:%s", key, secret)
        >= sizeof self->userpwd) {
        free(self);
        return s_fail(err, errlen, SOUK_ECONFIG, "AWS credentials too long");
    }
    self->headers_base = curl_slist_append(NULL, "Content-Type: application/x-amz-json-1.0");
    if (token && self->headers_base) {
        char h[4096];
        snprintf(h, sizeof h, "X-Amz-Security-Token: %s", token);
        struct curl_slist *l = curl_slist_append(self->headers_base, h);
        explicit_bzero(h, sizeof h);
        if (!l) {
            curl_slist_free_all(self->headers_base);
            self->headers_base = NULL;
        }
    }
    self->curl = curl_easy_init();
    if (!self->curl || !self->headers_base) {
        dynamo_close(&self);
        return s_fail(err, errlen, SOUK_ENOMEM, "cannot make a curl handle");
    }
    uint32_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t) sizeof seed)
        seed = (uint32_t) getpid() * 2654435761u;
    self->jitter = seed | 1;
    *out = self;
    return SOUK_OK;
}

void dynamo_close(dynamo_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dynamo_t *self = *self_p;
    if (self->curl)
        curl_easy_cleanup(self->curl);
    curl_slist_free_all(self->headers_base);
    explicit_bzero(self->userpwd, sizeof self->userpwd);
    free(self->answer);
    free(self);
    *self_p = NULL;
}

const char *dynamo_last_error(const dynamo_t *self)
{
    return self && self->errmsg[0] ? self->errmsg : "no error";
}

void dynamo_stats(const dynamo_t *self, dynamo_stats_t *out)
{
    *out = self->stats;
}

const char *dynamo_endpoint(const dynamo_t *self)
{
    return self->endpoint;
}

/* ---- one request ------------------------------------------------------------- */

static size_t s_on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
    dynamo_t *self = arg;
    size_t n = size * nmemb;
    if (self->answer_len + n + 1 > ANSWER_MAX) {
        self->answer_too_big = true;
        return 0;
    }
    if (self->answer_len + n + 1 > self->answer_cap) {
        size_t cap = (self->answer_len + n + 1) * 2;
        char *a = realloc(self->answer, cap);
        if (!a)
            return 0;
        self->answer = a;
        self->answer_cap = cap;
    }
    memcpy(self->answer + self->answer_len, ptr, n);
    self->answer_len += n;
    self->answer[self->answer_len] = '\0';
    return n;
}

static bool s_is_read(const char *op)
{
    return strcmp(op, "GetItem") == 0 || strcmp(op, "Query") == 0 || strcmp(op, "Scan") == 0
        || strcmp(op, "DescribeTable") == 0 || strcmp(op, "BatchGetItem") == 0;
}

/* Counts the items of a BatchWriteItem: each is a write billed on its own. */
static uint64_t s_batch_items(json_t *req)
{
    uint64_t n = 0;
    const char *table;
    json_t *list;
    json_object_foreach(json_object_get(req, "RequestItems"), table, list)
        n += json_array_size(list);
    return n;
}

static void s_count_capacity(dynamo_t *self, const char *op, json_t *answer)
{
    json_t *cc = json_object_get(answer, "ConsumedCapacity");
    json_t *one;
    size_t i;
    double units = 0;
    if (json_is_object(cc))
        units = json_number_value(json_object_get(cc, "CapacityUnits"));
    else
        json_array_foreach(cc, i, one)
            units += json_number_value(json_object_get(one, "CapacityUnits"));
    if (s_is_read(op))
        self->stats.read_units += units;
    else
        self->stats.write_units += units;
}

typedef enum { OUTCOME_DONE, OUTCOME_RETRY_BUSY, OUTCOME_RETRY_UNREACHABLE } s_outcome_t;

/* Maps an error answer's __type to a code, and says whether to retry. */
static int s_error_code(dynamo_t *self, long status, s_outcome_t *outcome)
{
    json_t *j = json_loadb(self->answer ? self->answer : "", self->answer_len, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "__type"));
    const char *msg = json_string_value(json_object_get(j, "message"));
    if (!msg)
        msg = json_string_value(json_object_get(j, "Message"));
    const char *name = type ? strrchr(type, '#') : NULL;
    name = name ? name + 1 : type ? type : "";
    snprintf(self->errmsg, sizeof self->errmsg, "dynamodb: HTTP %ld %s: %.120s", status,
             *name ? name : "(no type)", msg ? msg : "");
    int rc = SOUK_EIO;
    *outcome = OUTCOME_DONE;
    if (strcmp(name, "ConditionalCheckFailedException") == 0)
        rc = SOUK_ECONFLICT;
    else if (strcmp(name, "ProvisionedThroughputExceededException") == 0
             || strcmp(name, "ThrottlingException") == 0 || strcmp(name, "RequestLimitExceeded") == 0
             || strcmp(name, "LimitExceededException") == 0 || status >= 500) {
        rc = SOUK_EBUSY;
        *outcome = OUTCOME_RETRY_BUSY;
    } else if (strcmp(name, "ResourceNotFoundException") == 0) {
        rc = SOUK_ECONFIG;
        snprintf(self->errmsg, sizeof self->errmsg,
                 "dynamodb: no such table at %.200s: run `souk db create`", self->endpoint);
    } else if (strcmp(name, "ResourceInUseException") == 0)
        rc = SOUK_EEXISTS;
    else if (strcmp(name, "ValidationException") == 0 || strcmp(name, "SerializationException") == 0)
        rc = SOUK_EINVAL;
    else if (strcmp(name, "UnrecognizedClientException") == 0
             || strcmp(name, "InvalidSignatureException") == 0
             || strcmp(name, "AccessDeniedException") == 0
             || strcmp(name, "MissingAuthenticationTokenException") == 0
             || strcmp(name, "ExpiredTokenException") == 0 || status == 403)
        rc = SOUK_EFORBIDDEN;
    else if (strcmp(name, "ItemCollectionSizeLimitExceededException") == 0)
        rc = SOUK_ETOOBIG;
    json_decref(j);
    return rc;
}

/* One attempt: SOUK_OK with *resp, or an error and whether to retry. */
static int s_attempt(dynamo_t *self, const char *op, const char *body, size_t body_len,
                     json_t **resp, s_outcome_t *outcome)
{
    char target[96];
    snprintf(target, sizeof target, "X-Amz-Target: DynamoDB_20120810.%s", op);
    /* libcurl signs every header it sends; the target must be among them */
    struct curl_slist *h = curl_slist_append(NULL, target);
    for (struct curl_slist *b = self->headers_base; h && b; b = b->next)
        if (!curl_slist_append(h, b->data)) {
            curl_slist_free_all(h);
            h = NULL;
        }
    if (!h) {
        *outcome = OUTCOME_DONE;
        return SOUK_ENOMEM;
    }
    CURL *c = self->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, self->endpoint);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) body_len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, self->sigv4);
    curl_easy_setopt(c, CURLOPT_USERPWD, self->userpwd);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, self);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long) TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long) CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    self->answer_len = 0;
    self->answer_too_big = false;
    if (self->answer)
        self->answer[0] = '\0';
    self->stats.requests++;
    CURLcode cc = curl_easy_perform(c);
    curl_slist_free_all(h);
    if (cc != CURLE_OK) {
        snprintf(self->errmsg, sizeof self->errmsg, "dynamodb %s at %.200s: %s", op, self->endpoint,
                 self->answer_too_big ? "answer too big" : curl_easy_strerror(cc));
        *outcome = self->answer_too_big ? OUTCOME_DONE : OUTCOME_RETRY_UNREACHABLE;
        return self->answer_too_big ? SOUK_ETOOBIG : SOUK_EUNAVAIL;
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200)
        return s_error_code(self, status, outcome);
    *outcome = OUTCOME_DONE;
    json_error_t jerr;
    json_t *j = json_loadb(self->answer ? self->answer : "", self->answer_len, 0, &jerr);
    if (!json_is_object(j)) {
        json_decref(j);
        snprintf(self->errmsg, sizeof self->errmsg, "dynamodb %s: unreadable answer: %s", op,
                 jerr.text);
        return SOUK_EPROTO;
    }
    s_count_capacity(self, op, j);
    if (resp)
        *resp = j;
    else
        json_decref(j);
    return SOUK_OK;
}

static void s_backoff(dynamo_t *self, int attempt)
{
    int64_t ms = (int64_t) BACKOFF_FIRST_MS << attempt;
    self->jitter ^= self->jitter << 13;
    self->jitter ^= self->jitter >> 17;
    self->jitter ^= self->jitter << 5;
    /* "full jitter" on the upper half: retries of many clients spread out */
    ms = ms / 2 + self->jitter % (uint32_t) (ms / 2 + 1);
    struct timespec d = { (time_t) (ms / 1000), (long) (ms % 1000) * 1000000 };
    nanosleep(&d, NULL);
}

int dynamo_call(dynamo_t *self, const char *op, json_t *req, json_t **resp)
{
    if (resp)
        *resp = NULL;
    char *body = json_dumps(req, JSON_COMPACT);
    if (!body)
        return SOUK_ENOMEM;
    size_t body_len = strlen(body);
    if (s_is_read(op))
        self->stats.reads++;
    else if (strcmp(op, "BatchWriteItem") == 0)
        self->stats.writes += s_batch_items(req);
    else if (strcmp(op, "PutItem") == 0 || strcmp(op, "UpdateItem") == 0
             || strcmp(op, "DeleteItem") == 0)
        self->stats.writes++;
    int rc = SOUK_EIO;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
        if (attempt) {
            self->stats.retries++;
            s_backoff(self, attempt - 1);
        }
        s_outcome_t outcome;
        rc = s_attempt(self, op, body, body_len, resp, &outcome);
        if (outcome == OUTCOME_DONE)
            break;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    char labels[64];
    snprintf(labels, sizeof labels, "op=\"%s\"", op);
    souk_metric_observe("souk_store_request_duration_seconds", labels,
                        (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    free(body);
    return rc;
}
