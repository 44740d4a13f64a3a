/* The DynamoDB client (src/dynamo.c) against a local capture server that
 * plays DynamoDB's HTTP contract (documented in the DynamoDB API reference:
 * POST /, X-Amz-Target DynamoDB_20120810.<Op>, application/x-amz-json-1.0,
 * errors as HTTP 400/5xx with {"__type": "...#Name", "message": ...}):
 * dynalite does not check signatures, so this test does. It recomputes each
 * captured request's AWS Signature Version 4 from the secret key, following
 * AWS's published algorithm (canonical request, string to sign, the
 * derived signing key), and compares it with what libcurl sent; then
 * retries on throttling and 5xx, the error mapping, and an endpoint that is
 * not there. */
#include "souk/dynamo.h"
#include "souk/error.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define AKID "AKIDEXAMPLE"
#define TOKEN "session-token-example"

/* ---- the capture server: answers from a script, keeps the last request --- */

typedef struct {
    int status;
    const char *body;
} answer_t;

typedef struct {
    int fd, port;
    pthread_t thread;
    answer_t script[8];
    int n_script, served;
    char last[16384];           /* the last request, head and body */
    size_t last_len;
} server_t;

static void *s_serve(void *arg)
{
    server_t *sv = arg;
    for (;;) {
        int c = accept(sv->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        /* keep-alive: serve requests on this connection until it closes */
        for (;;) {
            char buf[16384];
            size_t len = 0;
            char *end = NULL;
            ssize_t n = 0;
            while (!end && len < sizeof buf - 1 && (n = read(c, buf + len, sizeof buf - 1 - len)) > 0) {
                len += (size_t) n;
                buf[len] = '\0';
                end = strstr(buf, "\r\n\r\n");
            }
            if (!end)
                break;
            const char *cl = strcasestr(buf, "\r\ncontent-length:");
            size_t want = (size_t) (end + 4 - buf) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
            while (len < want && len < sizeof buf - 1 && (n = read(c, buf + len, sizeof buf - 1 - len)) > 0)
                len += (size_t) n;
            buf[len] = '\0';
            memcpy(sv->last, buf, len + 1);
            sv->last_len = len;
            answer_t a = sv->served < sv->n_script ? sv->script[sv->served] : sv->script[sv->n_script - 1];
            sv->served++;
            char head[256];
            int hl = snprintf(head, sizeof head,
                              "HTTP/1.1 %d X\r\nContent-Type: application/x-amz-json-1.0\r\n"
                              "Content-Length: %zu\r\n\r\n", a.status, strlen(a.body));
            if (write(c, head, (size_t) hl) != hl || write(c, a.body, strlen(a.body)) < 0)
                break;
        }
        close(c);
    }
}

static void s_server_start(server_t *sv)
{
    sv->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(sv->fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    assert_int_equal(bind(sv->fd, (struct sockaddr *) &a, sizeof a), 0);
    assert_int_equal(listen(sv->fd, 8), 0);
    assert_int_equal(getsockname(sv->fd, (struct sockaddr *) &a, &len), 0);
    sv->port = ntohs(a.sin_port);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", sv->port);
    setenv("DYNAMODB_ENDPOINT", url, 1);
    assert_int_equal(pthread_create(&sv->thread, NULL, s_serve, sv), 0);
}

static void s_server_stop(server_t *sv)
{
    shutdown(sv->fd, SHUT_RDWR);
    close(sv->fd);
    pthread_join(sv->thread, NULL);
}

static int setup(void **state)
{
    server_t *sv = calloc(1, sizeof *sv);
    setenv("AWS_ACCESS_KEY_ID", AKID, 1);
    setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
    setenv("AWS_REGION", "eu-west-3", 1);
    unsetenv("AWS_SESSION_TOKEN");
    *state = sv;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

/* ---- SigV4, computed here from AWS's description ------------------------ */

static void s_hex(const unsigned char *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void s_sha256_hex(const char *data, size_t len, char out[65])
{
    unsigned char d[32];
    SHA256((const unsigned char *) data, len, d);
    s_hex(d, 32, out);
}

static void s_hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int n = 32;
    HMAC(EVP_sha256(), key, (int) klen, (const unsigned char *) msg, strlen(msg), out, &n);
}

/* The value of header `name` (lower case) in the captured head, trimmed. */
static char *s_header(const char *req, const char *name, char *buf, size_t len)
{
    const char *end = strstr(req, "\r\n\r\n");
    for (const char *line = strstr(req, "\r\n") + 2; line && line < end;) {
        const char *eol = strstr(line, "\r\n");
        const char *colon = memchr(line, ':', (size_t) (eol - line));
        if (colon && (size_t) (colon - line) == strlen(name) && strncasecmp(line, name, strlen(name)) == 0) {
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            size_t n = (size_t) (eol - v);
            while (n && v[n - 1] == ' ')
                n--;
            snprintf(buf, len, "%.*s", (int) n, v);
            return buf;
        }
        line = eol + 2;
    }
    return NULL;
}

/* Checks the captured request's Authorization against our own SigV4. */
static void s_check_signature(const char *req, const char *region, bool token)
{
    char auth[1024], date[32], tmp[1024];
    assert_non_null(s_header(req, "authorization", auth, sizeof auth));
    assert_non_null(s_header(req, "x-amz-date", date, sizeof date));
    assert_int_equal(strlen(date), 16);             /* 20240101T000000Z */
    char scope[128];
    snprintf(scope, sizeof scope, "%.8s/%s/dynamodb/aws4_request", date, region);
    char want_prefix[256];
    snprintf(want_prefix, sizeof want_prefix, "AWS4-HMAC-SHA256 Credential=" AKID "/%s, SignedHeaders=", scope);
    assert_int_equal(strncmp(auth, want_prefix, strlen(want_prefix)), 0);
    char signed_headers[512];
    const char *sh = auth + strlen(want_prefix);
    const char *comma = strchr(sh, ',');
    assert_non_null(comma);
    snprintf(signed_headers, sizeof signed_headers, "%.*s", (int) (comma - sh), sh);
    const char *sig = strstr(comma, "Signature=");
    assert_non_null(sig);
    sig += 10;
    assert_int_equal(strlen(sig), 64);
    /* what must be covered: the host, the time, the operation, the body's
     * type, and the session token when there is one */
    char padded[520];
    snprintf(padded, sizeof padded, ";%s;", signed_headers);
    assert_non_null(strstr(padded, ";host;"));
    assert_non_null(strstr(padded, ";x-amz-date;"));
    assert_non_null(strstr(padded, ";x-amz-target;"));
    assert_non_null(strstr(padded, ";content-type;"));
    if (token) {
        assert_non_null(strstr(padded, ";x-amz-security-token;"));
        assert_string_equal(s_header(req, "x-amz-security-token", tmp, sizeof tmp), TOKEN);
    }

    /* the canonical request: method, path, query, headers, their names, the body's hash */
    const char *body = strstr(req, "\r\n\r\n") + 4;
    char canon[4096], hash[65];
    size_t n = (size_t) snprintf(canon, sizeof canon, "POST\n/\n\n");
    char names[512];
    snprintf(names, sizeof names, "%s", signed_headers);
    for (char *save = NULL, *h = strtok_r(names, ";", &save); h; h = strtok_r(NULL, ";", &save)) {
        assert_non_null(s_header(req, h, tmp, sizeof tmp));
        n += (size_t) snprintf(canon + n, sizeof canon - n, "%s:%s\n", h, tmp);
    }
    s_sha256_hex(body, strlen(body), hash);
    n += (size_t) snprintf(canon + n, sizeof canon - n, "\n%s\n%s", signed_headers, hash);
    char canon_hash[65], to_sign[512];
    s_sha256_hex(canon, n, canon_hash);
    snprintf(to_sign, sizeof to_sign, "AWS4-HMAC-SHA256\n%s\n%s\n%s", date, scope, canon_hash);
    unsigned char k[32], k2[32];
    char day[9];
    snprintf(day, sizeof day, "%.8s", date);
    s_hmac("AWS4" SECRET, strlen("AWS4" SECRET), day, k);
    s_hmac(k, 32, region, k2);
    s_hmac(k2, 32, "dynamodb", k);
    s_hmac(k, 32, "aws4_request", k2);
    s_hmac(k2, 32, to_sign, k);
    char want[65];
    s_hex(k, 32, want);
    assert_string_equal(sig, want);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_signature(void **state)
{
    server_t *sv = *state;
    sv->script[0] = (answer_t) { 200, "{\"Item\":{\"pk\":{\"S\":\"a\"}}}" };
    sv->n_script = 1;
    s_server_start(sv);
    dynamo_t *d = NULL;
    char err[256];
    assert_int_equal(dynamo_open(&d, err, sizeof err), SOUK_OK);
    json_t *req = json_pack("{s:s, s:{s:{s:s}, s:{s:s}}}", "TableName", "souk", "Key", "pk", "S",
                            "U#1555", "sk", "S", "PROFILE");
    json_t *resp = NULL;
    assert_int_equal(dynamo_call(d, "GetItem", req, &resp), SOUK_OK);
    assert_string_equal(dynamo_get_s(json_object_get(resp, "Item"), "pk"), "a");
    json_decref(resp);
    char tmp[256];
    assert_string_equal(s_header(sv->last, "x-amz-target", tmp, sizeof tmp), "DynamoDB_20120810.GetItem");
    assert_string_equal(s_header(sv->last, "content-type", tmp, sizeof tmp), "application/x-amz-json-1.0");
    assert_non_null(strstr(sv->last, "\"U#1555\""));
    s_check_signature(sv->last, "eu-west-3", false);
    /* the secret itself never travels */
    assert_null(strstr(sv->last, SECRET));
    json_decref(req);
    dynamo_close(&d);
    assert_null(d);

    /* temporary credentials: the session token is sent and signed */
    setenv("AWS_SESSION_TOKEN", TOKEN, 1);
    setenv("AWS_REGION", "ap-southeast-2", 1);
    assert_int_equal(dynamo_open(&d, err, sizeof err), SOUK_OK);
    req = json_pack("{s:s}", "TableName", "souk");
    assert_int_equal(dynamo_call(d, "DescribeTable", req, NULL), SOUK_OK);
    s_check_signature(sv->last, "ap-southeast-2", true);
    json_decref(req);
    dynamo_close(&d);
    s_server_stop(sv);
}

static void test_retries_and_errors(void **state)
{
    server_t *sv = *state;
    sv->script[0] = (answer_t) { 400, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException\",\"message\":\"slow down\"}" };
    sv->script[1] = (answer_t) { 400, "{\"__type\":\"com.amazon.coral.availability#ThrottlingException\"}" };
    sv->script[2] = (answer_t) { 500, "{\"__type\":\"com.amazon.coral.service#InternalFailure\"}" };
    sv->script[3] = (answer_t) { 200, "{\"ConsumedCapacity\":{\"TableName\":\"souk\",\"CapacityUnits\":1.0}}" };
    sv->script[4] = (answer_t) { 400, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException\",\"message\":\"The conditional request failed\"}" };
    sv->script[5] = (answer_t) { 400, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException\"}" };
    sv->script[6] = (answer_t) { 503, "{}" };
    sv->n_script = 7;
    s_server_start(sv);
    dynamo_t *d = NULL;
    assert_int_equal(dynamo_open(&d, NULL, 0), SOUK_OK);
    json_t *req = json_pack("{s:s}", "TableName", "souk");
    /* two throttles and a 500, then success: one call */
    assert_int_equal(dynamo_call(d, "PutItem", req, NULL), SOUK_OK);
    dynamo_stats_t st;
    dynamo_stats(d, &st);
    assert_int_equal(st.requests, 4);
    assert_int_equal(st.retries, 3);
    assert_int_equal(st.writes, 1);
    assert_int_equal(st.reads, 0);
    assert_true(st.write_units == 1.0);
    /* a failed condition is an answer, not retried */
    assert_int_equal(dynamo_call(d, "PutItem", req, NULL), SOUK_ECONFLICT);
    assert_int_equal(dynamo_call(d, "GetItem", req, NULL), SOUK_ECONFIG);
    assert_non_null(strstr(dynamo_last_error(d), "souk db create"));
    /* 5xx for good: busy after the back-off */
    assert_int_equal(dynamo_call(d, "Query", req, NULL), SOUK_EBUSY);
    dynamo_stats(d, &st);
    assert_int_equal(st.reads, 2);
    assert_true(st.retries >= 3 + 6);
    json_decref(req);
    dynamo_close(&d);
    s_server_stop(sv);
}

static void test_unreachable_and_config(void **state)
{
    (void) state;
    setenv("DYNAMODB_ENDPOINT", "http://127.0.0.1:9", 1);
    dynamo_t *d = NULL;
    assert_int_equal(dynamo_open(&d, NULL, 0), SOUK_OK);
    json_t *req = json_pack("{s:s}", "TableName", "souk");
    assert_int_equal(dynamo_call(d, "GetItem", req, NULL), SOUK_EUNAVAIL);
    json_decref(req);
    dynamo_close(&d);
    /* no endpoint and no region: a sentence naming what to set */
    unsetenv("DYNAMODB_ENDPOINT");
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    char err[256] = "";
    assert_int_equal(dynamo_open(&d, err, sizeof err), SOUK_ECONFIG);
    assert_non_null(strstr(err, "AWS_REGION"));
    setenv("AWS_DEFAULT_REGION", "us-west-2", 1);
    unsetenv("AWS_SECRET_ACCESS_KEY");
    assert_int_equal(dynamo_open(&d, err, sizeof err), SOUK_ECONFIG);
    assert_non_null(strstr(err, "AWS_SECRET_ACCESS_KEY"));
    setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
    assert_int_equal(dynamo_open(&d, err, sizeof err), SOUK_OK);
    assert_string_equal(dynamo_endpoint(d), "https://dynamodb.us-west-2.amazonaws.com");
    dynamo_close(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_signature, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retries_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_and_config, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
