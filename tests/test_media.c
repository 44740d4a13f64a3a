/* Media download (souk/media.h) against a local HTTP server.
 *
 * Twilio cannot be reached from here: tests/fakes/media_fake.py stands in
 * for it and follows Twilio's documented media contract (Basic auth on
 * api.twilio.com, a 307 to a short-lived CDN URL on another host). The
 * fake's second host name is "localhost" (the first is 127.0.0.1), so a
 * client that sent the credentials along the redirect would be seen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "fake_proc.h"
#include "souk/error.h"
#include "souk/media.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SID "AC00000000000000000000000000000000"
#define TOKEN "0123456789abcdef0123456789abcdef"
#define HOSTS "127.0.0.1,localhost"

static fake_proc_t s_fake;
static char s_dir[64];

static int s_setup(void **state)
{
    (void)state;
    strcpy(s_dir, "/tmp/souk-media-XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    char path[128];
    snprintf(path, sizeof path, "%s/ME0001.ogg", s_dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    for (int i = 0; i < 5000; i++)
        fputc(i & 0xff, f);
    fclose(f);
    const char *args[] = { "--dir", s_dir, "--account-sid", SID, "--auth-token", TOKEN, NULL };
    return fake_proc_start(&s_fake, "media_fake.py", args);
}

static int s_teardown(void **state)
{
    (void)state;
    fake_proc_stop(&s_fake);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void s_url(char *out, size_t len, const char *host, const char *path)
{
    snprintf(out, len, "http://%s:%d%s", host, s_fake.port, path);
}

static media_fetch_t s_opt(const char *url)
{
    return (media_fetch_t) {
        .url = url, .hosts = HOSTS, .auth_host = "127.0.0.1", .account_sid = SID,
        .auth_token = TOKEN, .timeout_ms = 10000,
    };
}

/* The fake's request log (through media_fetch itself, without credentials). */
static json_t *s_log(void)
{
    char url[128];
    s_url(url, sizeof url, "127.0.0.1", "/_fake/log");
    media_fetch_t o = { .url = url, .hosts = HOSTS };
    media_blob_t b;
    if (media_fetch(&o, &b, NULL, 0) != SOUK_OK)
        return NULL;
    json_t *doc = json_loads(b.data, 0, NULL);
    media_blob_clear(&b);
    json_t *requests = json_incref(json_object_get(doc, "requests"));
    json_decref(doc);
    return requests;
}

static void s_reset(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "python3 -c \"import urllib.request as u; "
                              "u.urlopen(u.Request('http://127.0.0.1:%d/_fake/reset', b''))\"",
             s_fake.port);
    assert_int_equal(system(cmd), 0);
}

static void test_allow_list(void **state)
{
    (void)state;
    const char *h = "api.twilio.com,*.twiliocdn.com";
    assert_true(media_url_allowed(h, "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"));
    assert_true(media_url_allowed(h, "https://mms.twiliocdn.com/x?Expires=1"));
    assert_true(media_url_allowed(h, "https://media.twiliocdn.com/x"));
    assert_true(media_url_allowed(h, "HTTPS://API.Twilio.com/x"));
    assert_false(media_url_allowed(h, "https://twiliocdn.com/x"));         /* * is a subdomain */
    assert_false(media_url_allowed(h, "https://eviltwiliocdn.com/x"));
    assert_false(media_url_allowed(h, "https://api.twilio.com.evil.example/x"));
    assert_false(media_url_allowed(h, "http://api.twilio.com/x"));         /* https only */
    assert_false(media_url_allowed(h, "https://user:pw@api.twilio.com/x"));
    assert_false(media_url_allowed(h, "https://evil.example@api.twilio.com/x"));
    assert_false(media_url_allowed(h, "ftp://api.twilio.com/x"));
    assert_false(media_url_allowed(h, "file:///etc/passwd"));
    assert_false(media_url_allowed(h, "https://169.254.169.254/latest/meta-data"));
    assert_true(media_url_allowed("127.0.0.1", "http://127.0.0.1:8080/x"));  /* loopback: http ok */
    assert_true(media_url_allowed("127.0.0.1:8080", "http://127.0.0.1:8080/x"));
    assert_false(media_url_allowed("127.0.0.1:8080", "http://127.0.0.1:9090/x"));
    assert_false(media_url_allowed("", "https://api.twilio.com/x"));
    char host[64];
    assert_true(media_url_host("https://[::1]:443/x", host, sizeof host));
    assert_string_equal(host, "::1");
}

/* Basic auth on the first host only; the redirect to the other is followed
 * without it, and the bytes arrive whole. */
static void test_redirect_without_credentials(void **state)
{
    (void)state;
    s_reset();
    char url[256], err[256];
    s_url(url, sizeof url, "127.0.0.1", "/2010-04-01/Accounts/" SID "/Messages/MM1/Media/ME0001.ogg");
    media_fetch_t o = s_opt(url);
    media_blob_t b;
    assert_int_equal(media_fetch(&o, &b, err, sizeof err), SOUK_OK);
    assert_int_equal(b.len, 5000);
    for (size_t i = 0; i < b.len; i++)
        assert_int_equal((unsigned char)b.data[i], i & 0xff);
    assert_int_equal(b.redirects, 1);
    assert_string_equal(b.content_type, "audio/ogg");
    media_blob_clear(&b);
    json_t *log = s_log();
    assert_non_null(log);
    assert_int_equal(json_array_size(log), 2);
    json_t *first = json_array_get(log, 0), *second = json_array_get(log, 1);
    assert_true(json_is_true(json_object_get(first, "auth")));
    assert_non_null(strstr(json_string_value(json_object_get(first, "host")), "127.0.0.1"));
    assert_string_equal(json_string_value(json_object_get(second, "path")), "/cdn/ME0001.ogg");
    assert_non_null(strstr(json_string_value(json_object_get(second, "host")), "localhost"));
    assert_true(json_is_false(json_object_get(second, "auth")));
    json_decref(log);
}

/* The credentials go only to TWILIO_API_BASE's host: a webhook naming
 * another allow-listed host gets none (and Twilio's 401 is a failure). */
static void test_credentials_only_to_auth_host(void **state)
{
    (void)state;
    s_reset();
    char url[256], err[256];
    s_url(url, sizeof url, "localhost", "/2010-04-01/Accounts/" SID "/Messages/MM1/Media/ME0001.ogg");
    media_fetch_t o = s_opt(url);
    media_blob_t b;
    assert_int_equal(media_fetch(&o, &b, err, sizeof err), SOUK_EIO);
    assert_non_null(strstr(err, "401"));
    assert_null(strstr(err, TOKEN));
    json_t *log = s_log();
    assert_int_equal(json_array_size(log), 1);
    assert_true(json_is_false(json_object_get(json_array_get(log, 0), "auth")));
    json_decref(log);
    /* and without an account there is no auth at all */
    s_url(url, sizeof url, "127.0.0.1", "/2010-04-01/Accounts/" SID "/Messages/MM1/Media/ME0001.ogg");
    o = s_opt(url);
    o.account_sid = "";
    assert_int_equal(media_fetch(&o, &b, err, sizeof err), SOUK_EIO);
}

static void test_not_allowed_hosts(void **state)
{
    (void)state;
    s_reset();
    char url[512], target[256], err[256];
    media_blob_t b;
    /* the first URL off the list: nothing is requested at all */
    media_fetch_t o = s_opt("https://evil.example/2010-04-01/Accounts/" SID "/Messages/MM1/Media/ME1");
    assert_int_equal(media_fetch(&o, &b, err, sizeof err), SOUK_EFORBIDDEN);
    assert_non_null(strstr(err, "evil.example"));
    /* a redirect off the list: refused before any byte goes there */
    s_url(target, sizeof target, "127.0.0.2", "/cdn/ME0001.ogg");
    char path[300];
    snprintf(path, sizeof path, "/redirect?to=%s", target);
    s_url(url, sizeof url, "127.0.0.1", path);
    o = s_opt(url);
    assert_int_equal(media_fetch(&o, &b, err, sizeof err), SOUK_EFORBIDDEN);
    assert_non_null(strstr(err, "127.0.0.2"));
    /* a redirect to plain http on a public host, or another scheme */
    snprintf(path, sizeof path, "/redirect?to=http://api.twilio.com/x");
    s_url(url, sizeof url, "127.0.0.1", path);
    o = s_opt(url);
    o.hosts = HOSTS ",api.twilio.com";
    assert_int_equal(media_fetch(&o, &b, err, sizeof err), SOUK_EFORBIDDEN);
    snprintf(path, sizeof path, "/redirect?to=file:///etc/passwd");
    s_url(url, sizeof url, "127.0.0.1", path);
    o = s_opt(url);
    assert_int_equal(media_fetch(&o, &b, err, sizeof err), SOUK_EFORBIDDEN);
    json_t *log = s_log();
    for (size_t i = 0; i < json_array_size(log); i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(log, i), "path")),
                            "/redirect");
    json_decref(log);
}

/* media_fetch of path on 127.0.0.1 capped at max_bytes (0: the default cap). */
static int s_fetch_capped(const char *path, size_t max_bytes, media_blob_t *b)
{
    char url[256], err[256];
    s_url(url, sizeof url, "127.0.0.1", path);
    media_fetch_t o = s_opt(url);
    o.max_bytes = max_bytes;
    return media_fetch(&o, b, err, sizeof err);
}

static void test_size_cap(void **state)
{
    (void)state;
    media_blob_t b;
    /* under the cap */
    assert_int_equal(s_fetch_capped("/big?bytes=1000000", 1000000, &b), SOUK_OK);
    assert_int_equal(b.len, 1000000);
    media_blob_clear(&b);
    /* over it, announced by Content-Length */
    assert_int_equal(s_fetch_capped("/big?bytes=1000001", 1000000, &b), SOUK_ETOOBIG);
    assert_null(b.data);
    /* over it, chunked without a length: the transfer is cut */
    assert_int_equal(s_fetch_capped("/big?bytes=3000000&chunked=1", 1000000, &b), SOUK_ETOOBIG);
    /* the default cap is WhatsApp's 16 MB */
    assert_int_equal(s_fetch_capped("/big?bytes=16777217&chunked=1", 0, &b), SOUK_ETOOBIG);
}

static void test_timeout_and_errors(void **state)
{
    (void)state;
    char url[256], err[256];
    media_blob_t b;
    s_url(url, sizeof url, "127.0.0.1", "/slow?ms=3000");
    media_fetch_t o = s_opt(url);
    o.timeout_ms = 300;
    assert_int_equal(media_fetch(&o, &b, err, sizeof err), SOUK_ETIMEDOUT);
    s_url(url, sizeof url, "127.0.0.1", "/cdn/MEmissing.ogg");
    o = s_opt(url);
    assert_int_equal(media_fetch(&o, &b, err, sizeof err), SOUK_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_redirect_without_credentials),
        cmocka_unit_test(test_credentials_only_to_auth_host),
        cmocka_unit_test(test_not_allowed_hosts),
        cmocka_unit_test(test_size_cap),
        cmocka_unit_test(test_timeout_and_errors),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
