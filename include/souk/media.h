/* souk/media.h: downloading a message's media from Twilio.
 *
 * A webhook names its media by URL (MediaUrl0 …). Twilio serves them at
 * https://api.twilio.com/… with HTTP Basic auth (AccountSid:AuthToken) and
 * answers with a redirect to a short-lived CDN URL (mms.twiliocdn.com …).
 * A forged webhook could name any URL, so:
 *   - every URL, the first and each redirect's, must be on the allow-list
 *     (SOUK_MEDIA_HOSTS), over https (plain http only to a loopback host,
 *     for tests);
 *   - the credentials go to the first request alone, and only when its host
 *     is `auth_host` (TWILIO_API_BASE's): redirects are followed by hand,
 *     each a fresh request without them (libcurl's CURLOPT_UNRESTRICTED_AUTH
 *     is never set, and CURLOPT_FOLLOWLOCATION is off);
 *   - the body is capped (Content-Length checked first, the transfer
 *     aborted past the cap when it is absent or lies), with connect and
 *     total timeouts.
 * Blocking; libcurl is loaded on first use (souk/curl.h). */
#ifndef SOUK_MEDIA_H
#define SOUK_MEDIA_H

#include <stdbool.h>
#include <stddef.h>

/* WhatsApp media are at most 16 MB. */
#define MEDIA_MAX_BYTES (16 * 1024 * 1024)
#define MEDIA_MAX_REDIRECTS 3

typedef struct {
    const char *url;
    const char *hosts;          /* allow-list: "api.twilio.com,*.twiliocdn.com" */
    const char *auth_host;      /* host that may get the credentials; NULL: none does */
    const char *account_sid;    /* Basic auth user; NULL or "": no auth */
    const char *auth_token;     /* Basic auth password (a secret: never logged) */
    size_t max_bytes;           /* 0: MEDIA_MAX_BYTES */
    long connect_timeout_ms;    /* 0: 5000 */
    long timeout_ms;            /* whole transfer, per request; 0: 30000 */
} media_fetch_t;

typedef struct {
    char *data;                 /* the body (NUL-terminated for convenience) */
    size_t len;
    char *content_type;         /* the last response's; "" when none */
    int redirects;              /* how many were followed */
} media_blob_t;

/* Downloads opt->url into *out (caller clears with media_blob_clear).
 * SOUK_OK; SOUK_EFORBIDDEN for a URL (first or redirected) off the
 * allow-list or on a refused scheme; SOUK_ETOOBIG past the cap;
 * SOUK_ETIMEDOUT; SOUK_ENOTFOUND for a 404; SOUK_EIO for any other failure
 * (HTTP status, too many redirects, network); SOUK_EUNAVAIL without
 * libcurl. `err` (may be NULL) gets a sentence without secrets. */
int media_fetch(const media_fetch_t *opt, media_blob_t *out, char *err, size_t errlen);

/* Whether `url` is one media_fetch may request: http(s), a host on the
 * comma-separated allow-list `hosts` (an entry "*.example.com" matches any
 * subdomain of example.com, not example.com itself; an entry may carry a
 * port, "127.0.0.1:8080", which must then match), https unless the host is
 * loopback, no user:password in the URL. */
bool media_url_allowed(const char *hosts, const char *url);

/* The host of an http(s) URL, lower-cased, into out (without port or
 * brackets). false when the URL is not http(s) or the host does not fit. */
bool media_url_host(const char *url, char *out, size_t outlen);

void media_blob_clear(media_blob_t *b);

#endif
