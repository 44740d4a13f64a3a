/* media: downloads a message's media from Twilio, safely (see souk/media.h
 * for the rules and why). Redirects are followed here, not by libcurl, so
 * that each hop's host is checked against the allow-list before any byte
 * goes to it, and so that the credentials can only ever reach the first. */
#include "souk/media.h"

#include "souk/curl.h"
#include "souk/error.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HOST_MAX 256

typedef struct {
    char *data;
    size_t len, cap, max;
    bool too_big;
} sink_t;

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static int s_load_rc = SOUK_EUNAVAIL;
static char s_load_err[256];

static void s_load(void)
{
    s_load_rc = souk_curl_load(s_load_err, sizeof s_load_err);
    if (s_load_rc == SOUK_OK && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(s_load_err, sizeof s_load_err, "curl_global_init failed");
        s_load_rc = SOUK_EUNAVAIL;
    }
}

void media_blob_clear(media_blob_t *b)
{
    if (!b)
        return;
    free(b->data);
    free(b->content_type);
    memset(b, 0, sizeof *b);
}

/* Splits an http(s) URL's authority: host (lower case, no brackets) and
 * port text ("" when absent). false for another scheme, userinfo, or a
 * host that does not fit. */
static bool s_split(const char *url, bool *https, char *host, size_t hostlen, char *port,
                    size_t portlen)
{
    const char *p;
    if (strncasecmp(url, "https://", 8) == 0) {
        *https = true;
        p = url + 8;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        *https = false;
        p = url + 7;
    } else {
        return false;
    }
    size_t alen = strcspn(p, "/?#");
    if (memchr(p, '@', alen) || alen == 0)
        return false;   /* user:password@ in a URL is never legitimate here */
    const char *hs = p, *he;
    const char *ps = NULL;
    if (*p == '[') {
        hs = p + 1;
        he = memchr(hs, ']', alen - 1);
        if (!he)
            return false;
        if (he + 1 < p + alen) {
            if (he[1] != ':')
                return false;
            ps = he + 2;
        }
    } else {
        he = memchr(p, ':', alen);
        if (he)
            ps = he + 1;
        else
            he = p + alen;
    }
    size_t hl = (size_t)(he - hs);
    size_t pl = ps ? (size_t)(p + alen - ps) : 0;
    if (hl == 0 || hl >= hostlen || pl >= portlen)
        return false;
    for (size_t i = 0; i < hl; i++)
        host[i] = (char)tolower((unsigned char)hs[i]);
    host[hl] = '\0';
    memcpy(port, ps ? ps : "", pl);
    port[pl] = '\0';
    for (size_t i = 0; i < pl; i++)
        if (!isdigit((unsigned char)port[i]))
            return false;
    return true;
}

bool media_url_host(const char *url, char *out, size_t outlen)
{
    bool https;
    char port[8];
    return url && s_split(url, &https, out, outlen, port, sizeof port);
}

static bool s_loopback(const char *host)
{
    return strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0
           || strncmp(host, "127.", 4) == 0;
}

/* Whether one allow-list entry (len bytes, may carry ":port") matches. */
static bool s_entry_matches(const char *entry, size_t len, const char *host, const char *port)
{
    while (len && isspace((unsigned char)*entry)) {
        entry++;
        len--;
    }
    while (len && isspace((unsigned char)entry[len - 1]))
        len--;
    const char *colon = memchr(entry, ':', len);
    size_t hl = colon ? (size_t)(colon - entry) : len;
    if (colon) {
        size_t pl = len - hl - 1;
        if (strlen(port) != pl || strncmp(colon + 1, port, pl) != 0)
            return false;
    }
    if (hl == 0)
        return false;
    if (hl > 2 && entry[0] == '*' && entry[1] == '.') {
        size_t sl = hl - 1;            /* ".example.com" */
        size_t n = strlen(host);
        return n > sl && strncasecmp(host + n - sl, entry + 1, sl) == 0;
    }
    return strlen(host) == hl && strncasecmp(host, entry, hl) == 0;
}

bool media_url_allowed(const char *hosts, const char *url)
{
    bool https;
    char host[HOST_MAX], port[8];
    if (!hosts || !url || !s_split(url, &https, host, sizeof host, port, sizeof port))
        return false;
    if (!https && !s_loopback(host))
        return false;
    for (const char *p = hosts; *p;) {
        size_t n = strcspn(p, ",");
        if (s_entry_matches(p, n, host, port))
            return true;
        p += n;
        if (*p == ',')
            p++;
    }
    return false;
}

static size_t s_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
    sink_t *s = arg;
    size_t n = size * nmemb;
    if (s->len + n > s->max) {
        s->too_big = true;
        return 0;               /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 64 * 1024;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *d = realloc(s->data, cap);
        if (!d)
            return 0;
        s->data = d;
        s->cap = cap;
    }
    memcpy(s->data + s->len, ptr, n);
    s->len += n;
    s->data[s->len] = '\0';
    return n;
}

/* One request, no redirect followed. *status gets the HTTP status, *next
 * (caller frees) the redirect target when there is one. */
static int s_request(const media_fetch_t *opt, const char *url, bool with_auth, sink_t *sink,
                     long *status, char **next, char **ctype, char *err, size_t errlen)
{
    CURL *e = curl_easy_init();
    if (!e)
        return SOUK_ENOMEM;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     opt->connect_timeout_ms > 0 ? opt->connect_timeout_ms : 5000L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, opt->timeout_ms > 0 ? opt->timeout_ms : 30000L);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)sink->max);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "souk-media/1");
    if (with_auth) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, opt->account_sid);
        curl_easy_setopt(e, CURLOPT_PASSWORD, opt->auth_token ? opt->auth_token : "");
    }
    CURLcode c = curl_easy_perform(e);
    int rc = SOUK_OK;
    if (c == CURLE_OK) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
        char *loc = NULL, *ct = NULL;
        curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &loc);
        curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct);
        *next = loc ? strdup(loc) : NULL;
        *ctype = strdup(ct ? ct : "");
        if ((loc && !*next) || !*ctype)
            rc = SOUK_ENOMEM;
    } else if (c == CURLE_FILESIZE_EXCEEDED || (c == CURLE_WRITE_ERROR && sink->too_big)) {
        snprintf(err, errlen, "media larger than %zu bytes", sink->max);
        rc = SOUK_ETOOBIG;
    } else if (c == CURLE_OPERATION_TIMEDOUT) {
        snprintf(err, errlen, "media download timed out");
        rc = SOUK_ETIMEDOUT;
    } else {
        snprintf(err, errlen, "media download failed: %s", curl_easy_strerror(c));
        rc = c == CURLE_OUT_OF_MEMORY ? SOUK_ENOMEM : SOUK_EIO;
    }
    curl_easy_cleanup(e);
    return rc;
}

int media_fetch(const media_fetch_t *opt, media_blob_t *out, char *err, size_t errlen)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof dummy;
    }
    *err = '\0';
    memset(out, 0, sizeof *out);
    pthread_once(&s_once, s_load);
    if (s_load_rc != SOUK_OK) {
        snprintf(err, errlen, "%s", s_load_err);
        return s_load_rc;
    }
    char host[HOST_MAX] = "";
    bool auth = opt->account_sid && *opt->account_sid && opt->auth_host && *opt->auth_host
                && media_url_host(opt->url, host, sizeof host)
                && strcasecmp(host, opt->auth_host) == 0;
    char *url = strdup(opt->url ? opt->url : "");
    sink_t sink = { .max = opt->max_bytes ? opt->max_bytes : MEDIA_MAX_BYTES };
    int rc = url ? SOUK_OK : SOUK_ENOMEM;
    for (int hop = 0; rc == SOUK_OK; hop++) {
        if (!media_url_allowed(opt->hosts, url)) {
            char h[HOST_MAX] = "?";
            media_url_host(url, h, sizeof h);
            snprintf(err, errlen, "media host %s is not allowed", h);
            rc = SOUK_EFORBIDDEN;
            break;
        }
        long status = 0;
        char *next = NULL, *ctype = NULL;
        sink.len = 0;
        sink.too_big = false;
        /* the credentials go to the first request only: a redirect is a
         * fresh request to whatever host Twilio (or a forger) named */
        rc = s_request(opt, url, auth && hop == 0, &sink, &status, &next, &ctype, err, errlen);
        if (rc == SOUK_OK && status >= 300 && status < 400 && next) {
            free(url);
            free(ctype);
            url = next;
            out->redirects = hop + 1;
            if (hop + 1 > MEDIA_MAX_REDIRECTS) {
                snprintf(err, errlen, "too many media redirects");
                rc = SOUK_EIO;
            }
            continue;
        }
        free(next);
        if (rc == SOUK_OK && status != 200) {
            snprintf(err, errlen, "media download answered HTTP %ld", status);
            rc = status == 404 ? SOUK_ENOTFOUND : SOUK_EIO;
        }
        if (rc == SOUK_OK) {
            out->data = sink.data ? sink.data : strdup("");
            out->len = sink.len;
            out->content_type = ctype;
            sink.data = NULL;
            if (!out->data)
                rc = SOUK_ENOMEM;
        } else {
            free(ctype);
        }
        break;
    }
    free(url);
    free(sink.data);
    if (rc != SOUK_OK)
        media_blob_clear(out);
    return rc;
}
