/* twilio_rest: the sender's HTTP client for Twilio's Messages resource.
 *
 * libcurl's multi interface driven by a czmq zloop: curl tells us which
 * sockets to watch and when to time out (CURLMOPT_SOCKETFUNCTION /
 * TIMERFUNCTION), the loop calls curl back, so many requests are in flight
 * at once and the loop never blocks. Connections are kept and reused.
 *
 * Credentials travel only as curl's Basic auth options, never in a URL, and
 * curl's verbose output is never switched on: the auth token cannot reach a
 * log. A request's callback runs exactly once, from the loop, never from
 * inside the call that started it; after twilio_rest_destroy no callback
 * runs. The parsing half (Twilio's JSON answers, Retry-After) is pure. */
#ifndef SENDER_TWILIO_REST_H
#define SENDER_TWILIO_REST_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "souk/twilio.h"

typedef struct twilio_rest twilio_rest_t;

/* What came back. Borrowed by the callback for the duration of the call. */
typedef struct {
    int curl_code;           /* CURLE_OK when an HTTP answer arrived */
    bool maybe_sent;         /* no answer, but the request had left: Twilio may have it */
    long status;             /* HTTP status; 0 without an answer */
    int64_t retry_after_ms;  /* from Retry-After; -1 when absent */
    const char *body;        /* answer body (NUL-terminated), "" when none */
    size_t len;
    const char *error;       /* curl's error text when curl_code != CURLE_OK */
} twilio_reply_t;

typedef void(twilio_rest_fn)(const twilio_reply_t *reply, void *arg);

/* A client on `loop` for account_sid at api_base ("https://api.twilio.com"),
 * with at most max_inflight requests and connections at once. Copies its
 * arguments. NULL (logged) on failure. souk_curl_load and curl_global_init
 * are the caller's.
 * With api_base, account_sid or auth_token NULL it is a plain client, for
 * twilio_rest_post_json only (send and list answer SOUK_EINVAL). */
twilio_rest_t *twilio_rest_new(zloop_t *loop, const char *api_base, const char *account_sid,
                               const char *auth_token, int max_inflight);
/* Abandons requests in flight (no callbacks), closes connections, nulls *self_p. */
void twilio_rest_destroy(twilio_rest_t **self_p);

/* POST form to Messages.json; fn(reply, arg) runs later, once. SOUK_EBUSY
 * when max_inflight requests are already out, SOUK_ENOMEM, SOUK_EIO. */
int twilio_rest_send(twilio_rest_t *self, const twilio_form_t *form, twilio_rest_fn *fn, void *arg);
/* GET Messages.json?To=to&From=from&PageSize=page_size (from may be NULL or
 * ""): the newest messages to `to`. Same contract as twilio_rest_send. */
int twilio_rest_list(twilio_rest_t *self, const char *to, const char *from, int page_size,
                     twilio_rest_fn *fn, void *arg);
/* POST a JSON document to url (http or https, else SOUK_EINVAL) without
 * Twilio's credentials, with "Idempotency-Key: key" when key is not NULL,
 * so the receiver can drop a repeat. Same contract as twilio_rest_send. */
int twilio_rest_post_json(twilio_rest_t *self, const char *url, const char *json, const char *key,
                          twilio_rest_fn *fn, void *arg);
/* Requests started and not yet called back. */
int twilio_rest_inflight(const twilio_rest_t *self);

/* ---- parsing Twilio's answers -------------------------------------------- */

/* The sid of a created Message ("SM…"/"MM…") into sid (sidlen bytes).
 * SOUK_EPROTO when the body is not that JSON. */
int twilio_rest_parse_created(const char *body, size_t len, char *sid, size_t sidlen);
/* Twilio's error JSON {code, message, more_info, status}: *code (0 when
 * absent) and message ("" when absent). SOUK_EPROTO when not JSON. */
int twilio_rest_parse_error(const char *body, size_t len, int *code, char *message,
                            size_t msglen);

/* One Message of a listing; strings borrowed for the callback's duration. */
typedef struct {
    const char *sid, *to, *from, *body, *status;
    int error_code;          /* 0 when null */
    int64_t created_ms;      /* date_created (RFC 2822, whole seconds); -1 unparsable */
} twilio_listed_t;
/* Calls cb for each message of a Messages.json page, in the page's order
 * (newest first); cb returns non-zero to stop. SOUK_EPROTO when not a page. */
int twilio_rest_parse_list(const char *body, size_t len,
                           int (*cb)(const twilio_listed_t *m, void *arg), void *arg);

/* A Retry-After value, delta-seconds or an HTTP date, as milliseconds from
 * now_wall_ms; -1 when unparsable, 0 for a date in the past. */
int64_t twilio_rest_retry_after_ms(const char *value, int64_t now_wall_ms);
/* An RFC 2822 date ("Wed, 18 Aug 2010 20:01:40 +0000") as epoch ms; -1 when
 * unparsable. */
int64_t twilio_rest_date_ms(const char *rfc2822);

#endif
