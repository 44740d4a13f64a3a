/* outbox: the sender's rules, apart from its I/O.
 *
 * What to do with a due outbox row (send it free-form, send the template,
 * fail it, or wait for the part before it), how long to wait before a retry,
 * how to read Twilio's answer, how fast to send, and how to recognise, in a
 * listing of Twilio's messages, one a dead sender had already sent. The only
 * I/O here is reading the store (the user record, the previous part) and
 * putting the further parts of a split body.
 *
 * Long bodies: a body over 1600 characters is split at paragraph, line or
 * word boundaries. The row itself carries part 1 (its Twilio sid is part
 * 1's), and parts 2..n become rows of their own, keys "<key>#2" … "<key>#n",
 * put (idempotently) before part 1 is sent. A part row is sent only once the
 * row before it has been accepted by Twilio, so the parts arrive in order
 * whatever retries, crashes or restarts happen in between; a part whose
 * predecessor failed without being sent fails too.
 *
 * Webhook rows: a row whose to_addr is an http:// or https:// URL (the
 * merchant's webhook) holds a JSON document. It is POSTed to that URL as it
 * is, never through Twilio: no 24-hour window, opt-out, splitting or pace.
 * 2xx is sent; 429, 5xx and network errors are retried with the same
 * backoff; any other answer fails it. Delivery is at least once: a POST
 * whose answer was lost is made again, with the row's key as its
 * Idempotency-Key header. */
#ifndef SENDER_OUTBOX_H
#define SENDER_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "souk/store.h"
#include "twilio_rest.h"

#define OUTBOX_WINDOW_MS (24LL * 3600 * 1000)
#define OUTBOX_MAX_ATTEMPTS 10
#define OUTBOX_LEASE_MS 30000
#define OUTBOX_BACKOFF_BASE_MS 1000
#define OUTBOX_BACKOFF_CAP_MS (5 * 60 * 1000)
/* Longest template variable; WhatsApp refuses more than ~1024 characters. */
#define OUTBOX_TEMPLATE_VAR_CHARS 1000

/* Twilio's codes for what the sender decides itself. */
#define OUTBOX_CODE_OPTED_OUT 21610
#define OUTBOX_CODE_WINDOW 63016
#define OUTBOX_CODE_RATE 63018

typedef struct {
    const char *template_sid;   /* ContentSid outside the 24-hour window; "" none */
} outbox_rules_t;

typedef enum {
    OUTBOX_PLAN_SEND,   /* send it now */
    OUTBOX_PLAN_FAIL,   /* mark it failed: error_code, reason */
    OUTBOX_PLAN_WAIT,   /* a part whose predecessor is not sent yet: leave it */
} outbox_plan_kind_t;

typedef struct {
    outbox_plan_kind_t kind;
    char *to;                   /* "whatsapp:+…"; always set on SOUK_OK */
    char *body;                 /* free-form text (part 1 when split); NULL with a template */
    char *content_vars;         /* ContentVariables JSON with a template; else NULL */
    char **parts;               /* every part when split (parts[0] == body's text); else NULL */
    size_t nparts;
    int error_code;             /* OUTBOX_PLAN_FAIL */
    char reason[160];           /* OUTBOX_PLAN_FAIL */
} outbox_plan_t;

/* Decides what to do with `row` at now_ms (epoch): a body that is not
 * UTF-8, opt-out (21610), the previous part's state, the 24-hour window
 * (template or 63016) and splitting, in that order. SOUK_OK with *plan owned by the caller
 * (outbox_plan_clear), or a store error. */
int outbox_plan(store_t *store, const outbox_rules_t *rules, const store_outbox_t *row,
                int64_t now_ms, outbox_plan_t *plan);
void outbox_plan_clear(outbox_plan_t *plan);

/* Whether row is a webhook row (to_addr an http or https URL, no waid). */
bool outbox_is_webhook(const store_outbox_t *row);

/* Puts parts 2..n of a split plan as queued rows "<key>#i", each like `row`;
 * rows already there are kept. SOUK_OK or a store error. */
int outbox_put_parts(store_t *store, const store_outbox_t *row, const outbox_plan_t *plan,
                     int64_t now_ms);

/* For "<base>#<n>" with n >= 2, writes the previous part's key ("<base>" for
 * n == 2) to prev and returns true; false for any other key. */
bool outbox_part_prev(const char *key, char *prev, size_t prevlen);

/* Splits text into parts Twilio takes (at most 1600 UTF-16 units each).
 * Same contract as twilio_split_body. */
int outbox_split(const char *text, char ***parts, size_t *nparts);
/* Length in UTF-16 code units, what Twilio's 1600 counts; text is valid UTF-8. */
size_t outbox_utf16_len(const char *text);

/* ---- Twilio's answer --------------------------------------------------------- */

typedef enum {
    OUTBOX_SENT,        /* accepted: sid */
    OUTBOX_RETRY,       /* not accepted, try again later (429, 5xx, 63018, network) */
    OUTBOX_FAIL,        /* refused for good: code, reason */
    OUTBOX_UNKNOWN,     /* no answer after the request left: Twilio may have it */
} outbox_result_kind_t;

typedef struct {
    outbox_result_kind_t kind;
    char sid[64];
    int code;                   /* Twilio's error code, else the HTTP status; 0 none */
    char reason[256];
    int64_t retry_after_ms;     /* -1 when Twilio named none */
} outbox_result_t;

void outbox_classify(const twilio_reply_t *reply, outbox_result_t *out);
/* The same for a webhook's answer: 2xx SENT; 429, 5xx and any network
 * error RETRY (at least once); anything else FAIL with the HTTP status. */
void outbox_classify_webhook(const twilio_reply_t *reply, outbox_result_t *out);

/* Delay before attempt `attempts` + 1 after `attempts` failed ones (>= 1):
 * 1 s, 2 s, 4 s … capped at 5 min, plus up to 25% jitter from jitter (any
 * 32-bit random value); never less than retry_after_ms. */
int64_t outbox_backoff_ms(int attempts, uint32_t jitter, int64_t retry_after_ms);

/* ---- pace: a token bucket per sender number ------------------------------ */

typedef struct {
    double tokens, rate_per_ms, burst;
    int64_t last_ms;
} outbox_bucket_t;

/* rate messages/s, bursts of up to one second's worth. */
void outbox_bucket_init(outbox_bucket_t *b, int rate, int64_t now_ms);
/* Takes a token and returns 0, or returns the ms until one is there. */
int64_t outbox_bucket_take(outbox_bucket_t *b, int64_t now_ms);

/* ---- reconciliation ---------------------------------------------------------- */

typedef struct {
    char sid[64];
    char status[32];
    int error_code;
} outbox_found_t;

/* Looks through a Messages.json page for the message a dead sender sent for
 * a row: same To, same Body (body NULL, for a template, matches none),
 * created no earlier than since_ms less a clock-skew allowance, and whose
 * sid no outbox row has recorded yet. The oldest such message wins.
 * SOUK_OK with *found, SOUK_ENOTFOUND, SOUK_EPROTO for a bad page, or a
 * store error. */
int outbox_find_sent(store_t *store, const char *page, size_t len, const char *to,
                     const char *body, int64_t since_ms, outbox_found_t *found);

#endif
