/* Merchant notifications and the money and time formats of the results.
 *
 * A new order, a cancellation or a new ticket becomes up to two durable
 * outbox rows, both queued for the sender:
 *   "m:<id>[:cancelled]"  a short WhatsApp text to SOUK_MERCHANT_WHATSAPP
 *                         (the customer's full number: the merchant may see it);
 *   "w:<id>[:cancelled]"  the JSON document, POSTed by the sender to
 *                         SOUK_MERCHANT_WEBHOOK (to_addr is the URL).
 * The keys make the puts idempotent: a retried call notifies nobody twice,
 * and a call that crashed before notifying notifies on its retry. */
#include "tools_priv.h"

#include "souk/error.h"
#include "souk/log.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOTE_LINES_MAX 10
#define NOTE_NAME_MAX 80
#define NOTE_MESSAGE_MAX 600

/* ---- formats ------------------------------------------------------------------ */

json_t *tools_money_json(int64_t cents)
{
    return json_real((double)cents / 100.0);
}

json_t *tools_time_json(int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char buf[32] = "";
    if (gmtime_r(&t, &tm))
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

char *tools_dump(const json_t *v)
{
    /* 15 significant digits print every amount up to 10^13 exactly (19.98, not 19.9800000000000004) */
    return v ? json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
}

void tools_money_text(int64_t cents, const char *currency, char *buf, size_t len)
{
    const char *sign = !currency ? NULL
                     : strcmp(currency, "USD") == 0 ? "$"
                     : strcmp(currency, "EUR") == 0 ? "\xE2\x82\xAC"
                     : strcmp(currency, "GBP") == 0 ? "\xC2\xA3" : NULL;
    long long units = (long long)(cents / 100), rest = (long long)(cents % 100);
    if (sign)
        snprintf(buf, len, "%s%lld.%02lld", sign, units, rest);
    else
        snprintf(buf, len, "%lld.%02lld %s", units, rest, currency ? currency : "");
}

/* ---- helpers ------------------------------------------------------------------- */

/* "whatsapp:+14155550100" from "+1 415 555 0100", "whatsapp:+1415…" or
 * digits; false when it is none of those. */
static bool s_merchant_addr(const char *in, char *out, size_t len)
{
    if (!in || !*in)
        return false;
    if (strncmp(in, "whatsapp:", 9) == 0)
        in += 9;
    char digits[32];
    size_t n = 0;
    for (const char *p = in; *p; p++) {
        if (*p >= '0' && *p <= '9' && n < sizeof digits - 1)
            digits[n++] = *p;
        else if (!strchr("+ -().", *p) || (*p == '+' && p != in))
            return false;
    }
    digits[n] = '\0';
    if (n < 5 || n > 20)
        return false;
    snprintf(out, len, "whatsapp:+%s", digits);
    return true;
}

/* Appends to a growing text; stops quietly at the cap. */
typedef struct {
    char buf[2048];
    size_t len;
} s_text_t;

static void s_add(s_text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_add(s_text_t *t, const char *fmt, ...)
{
    if (t->len >= sizeof t->buf - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, fmt, ap);
    va_end(ap);
    t->len = w < 0 ? t->len : t->len + (size_t)w >= sizeof t->buf ? sizeof t->buf - 1 : t->len + (size_t)w;
    /* never end inside a character */
    while (t->len > 0 && ((unsigned char)t->buf[t->len] & 0xC0) == 0x80)
        t->len--;
    t->buf[t->len] = '\0';
}

static const char *s_str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static int64_t s_cents(const json_t *o, const char *k)
{
    return llround(json_number_value(json_object_get(o, k)) * 100.0);
}

/* "Ana, +14155550100" or "+14155550100" */
static void s_customer(tools_call_t *c, char *profile, size_t plen, char *who, size_t wlen)
{
    store_user_t u = { 0 };
    profile[0] = '\0';
    if (store_user_get(c->ctx->store, c->waid, &u) == SOUK_OK && u.profile_name && *u.profile_name)
        snprintf(profile, plen, "%s", u.profile_name);
    store_user_clear(&u);
    if (*profile)
        snprintf(who, wlen, "%.60s, +%s", profile, c->waid);
    else
        snprintf(who, wlen, "+%s", c->waid);
}

static void s_text(tools_note_kind_t kind, const json_t *doc, const char *who, s_text_t *t)
{
    char money[48];
    if (kind == TOOLS_NOTE_TICKET) {
        s_add(t, "New support ticket %s from %s", s_str(doc, "ticket_id"), who);
        if (*s_str(doc, "order_id"))
            s_add(t, " about order %s", s_str(doc, "order_id"));
        s_add(t, ": %.200s\n%.*s", s_str(doc, "subject"), NOTE_MESSAGE_MAX, s_str(doc, "message"));
        return;
    }
    tools_money_text(s_cents(doc, "total"), s_str(doc, "currency"), money, sizeof money);
    if (kind == TOOLS_NOTE_CANCEL) {
        s_add(t, "Order %s (%s) was cancelled by the customer (%s); its stock was given back.",
              s_str(doc, "order_id"), money, who);
        return;
    }
    s_add(t, "New order %s from %s: ", s_str(doc, "order_id"), who);
    const json_t *items = json_object_get(doc, "items");
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        if (i == NOTE_LINES_MAX) {
            s_add(t, ", and %zu more", json_array_size(items) - i);
            break;
        }
        s_add(t, "%s%lld \xC3\x97 %.*s", i ? ", " : "",
              (long long)json_integer_value(json_object_get(it, "quantity")), NOTE_NAME_MAX,
              s_str(it, "name"));
    }
    s_add(t, ". Total %s.", money);
    if (*s_str(doc, "note"))
        s_add(t, "\nNote: %.300s", s_str(doc, "note"));
}

static char *s_webhook_doc(tools_note_kind_t kind, const json_t *doc, const char *key,
                           const char *waid, const char *profile, int64_t now_ms)
{
    static const char *const events[] = { "order.created", "order.cancelled", "ticket.created" };
    json_t *customer = json_pack("{s:s, s:s+}", "waid", waid, "phone", "+", waid);
    if (customer && *profile)
        json_object_set_new(customer, "name", json_string(profile));
    json_t *w = json_pack("{s:s, s:s, s:o, s:o, s:O}", "id", key, "event", events[kind],
                          "created_at", tools_time_json(now_ms), "customer", customer,
                          kind == TOOLS_NOTE_TICKET ? "ticket" : "order", doc);
    char *text = tools_dump(w);
    json_decref(w);
    return text;
}

/* Puts one queued notification (nothing when its key is there already) and
 * hints the sender while it is still queued. */
static int s_put(tools_call_t *c, const char *key, const char *to, const char *body)
{
    store_outbox_t o = {
        .key = (char *)key, .to_addr = (char *)to, .body = (char *)body, .kind = STORE_KIND_NOTIFY,
        .state = STORE_OUTBOX_QUEUED, .next_attempt_ms = c->now_ms, .created_ms = c->now_ms,
    };
    store_outbox_t existing = { 0 };
    int rc = store_outbox_put(c->ctx->store, &o, &existing);
    bool queued = rc == SOUK_OK || (rc == SOUK_EEXISTS && existing.state == STORE_OUTBOX_QUEUED);
    store_outbox_clear(&existing);
    if (rc == SOUK_EEXISTS)
        rc = SOUK_OK;
    if (rc == SOUK_OK && queued && c->ctx->hint)
        c->ctx->hint(key, c->ctx->hint_arg);
    return rc;
}

int tools_notify(tools_call_t *c, tools_note_kind_t kind, const json_t *doc)
{
    const tools_ctx_t *ctx = c->ctx;
    char to[48];
    bool whatsapp = s_merchant_addr(ctx->merchant_whatsapp, to, sizeof to);
    bool webhook = ctx->merchant_webhook && *ctx->merchant_webhook;
    if (!whatsapp && ctx->merchant_whatsapp && *ctx->merchant_whatsapp)
        SLOG_WARN("tools.merchant_whatsapp", "reason=\"not a phone number: no WhatsApp notification\"");
    if (!whatsapp && !webhook)
        return SOUK_OK;
    const char *id = s_str(doc, kind == TOOLS_NOTE_TICKET ? "ticket_id" : "order_id");
    const char *suffix = kind == TOOLS_NOTE_CANCEL ? ":cancelled" : "";
    char profile[128], who[160], key[160];
    s_customer(c, profile, sizeof profile, who, sizeof who);
    int rc = SOUK_OK;
    if (whatsapp) {
        s_text_t t = { .len = 0 };
        s_text(kind, doc, who, &t);
        snprintf(key, sizeof key, "m:%s%s", id, suffix);
        rc = s_put(c, key, to, t.buf);
    }
    if (rc == SOUK_OK && webhook) {
        snprintf(key, sizeof key, "w:%s%s", id, suffix);
        char *body = s_webhook_doc(kind, doc, key, c->waid, profile, c->now_ms);
        rc = body ? s_put(c, key, ctx->merchant_webhook, body) : SOUK_ENOMEM;
        free(body);
    }
    return rc;
}
