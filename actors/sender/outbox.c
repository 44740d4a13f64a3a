/* The sender's rules; see outbox.h. */
#include "outbox.h"

#include "souk/error.h"
#include "souk/proto.h"
#include "souk/twilio.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Our clock and Twilio's may disagree a little, and date_created has whole
 * seconds: a message counts as "after the lease was taken" this much early. */
#define RECONCILE_SKEW_MS 3000
#define PAGE_MAX 1000

/* ---- plan ------------------------------------------------------------------ */

void outbox_plan_clear(outbox_plan_t *plan)
{
    free(plan->to);
    free(plan->body);
    free(plan->content_vars);
    twilio_split_free(&plan->parts, plan->nparts);
    memset(plan, 0, sizeof *plan);
}

static void s_fail(outbox_plan_t *plan, int code, const char *reason)
{
    plan->kind = OUTBOX_PLAN_FAIL;
    plan->error_code = code;
    snprintf(plan->reason, sizeof plan->reason, "%s", reason);
}

/* "whatsapp:+<digits>" -> digits, for a to_addr that names a WhatsApp user. */
static bool s_waid_of_addr(const char *addr, char *waid, size_t len)
{
    static const char prefix[] = "whatsapp:+";
    if (!addr || strncmp(addr, prefix, sizeof prefix - 1) != 0)
        return false;
    const char *d = addr + sizeof prefix - 1;
    size_t n = strspn(d, "0123456789");
    if (n == 0 || d[n] != '\0' || n > TWILIO_WAID_MAX_DIGITS || n >= len)
        return false;
    memcpy(waid, d, n + 1);
    return true;
}

/* The address to send to, and the user behind it when the store knows one. */
static int s_recipient(store_t *store, const store_outbox_t *row, store_user_t *user,
                       bool *known, char **to)
{
    char derived[TWILIO_WAID_MAX_DIGITS + 1];
    const char *waid = row->waid && *row->waid ? row->waid : NULL;
    if (!waid && s_waid_of_addr(row->to_addr, derived, sizeof derived))
        waid = derived;
    *known = false;
    if (waid) {
        int rc = store_user_get(store, waid, user);
        if (rc == SOUK_OK)
            *known = true;
        else if (rc != SOUK_ENOTFOUND)
            return rc;
    }
    if (row->to_addr && *row->to_addr)
        *to = strdup(row->to_addr);
    else if (*known && user->from_addr && *user->from_addr)
        *to = strdup(user->from_addr);
    else if (asprintf(to, "whatsapp:+%s", row->waid ? row->waid : "") < 0)
        *to = NULL;
    return *to ? SOUK_OK : SOUK_ENOMEM;
}

/* WAIT while the previous part is not with Twilio; FAIL if it never will be. */
static int s_check_prev_part(store_t *store, const store_outbox_t *row, outbox_plan_t *plan)
{
    char prev[1024];
    if (!outbox_part_prev(row->key, prev, sizeof prev))
        return SOUK_OK;
    store_outbox_t p = { 0 };
    int rc = store_outbox_get(store, prev, &p);
    if (rc == SOUK_ENOTFOUND)
        return SOUK_OK;
    if (rc != SOUK_OK)
        return rc;
    switch (p.state) {
    case STORE_OUTBOX_OFFERED:
    case STORE_OUTBOX_QUEUED:
    case STORE_OUTBOX_SENDING:
        plan->kind = OUTBOX_PLAN_WAIT;
        break;
    case STORE_OUTBOX_FAILED:
        if (!p.twilio_sid)
            s_fail(plan, p.error_code, "previous part failed");
        break;
    default:
        break;
    }
    store_outbox_clear(&p);
    return SOUK_OK;
}

/* {"1": body} with whitespace runs folded to one space (WhatsApp refuses
 * newlines, tabs and long runs of spaces in a variable), truncated. */
static char *s_template_vars(const char *body)
{
    size_t len = strlen(body);
    char *text = malloc(len + 4);
    if (!text)
        return NULL;
    size_t o = 0, chars = 0;
    bool space = true, cut = false;
    for (const char *p = body; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            if (!space)
                text[o++] = ' ';
            space = true;
            continue;
        }
        if ((c & 0xC0) != 0x80 && chars++ == OUTBOX_TEMPLATE_VAR_CHARS) {
            cut = true;
            break;
        }
        text[o++] = (char)c;
        space = false;
    }
    while (o > 0 && text[o - 1] == ' ')
        o--;
    if (cut)
        memcpy(text + o, "\xE2\x80\xA6", 3), o += 3; /* … */
    text[o] = '\0';
    json_t *doc = json_pack("{s:s}", "1", text);
    char *out = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    free(text);
    return out;
}

bool outbox_is_webhook(const store_outbox_t *row)
{
    const char *to = row->to_addr;
    return (!row->waid || !*row->waid) && to
        && (strncmp(to, "http://", 7) == 0 || strncmp(to, "https://", 8) == 0);
}

/* A webhook row goes out whole, as it is: only its encoding is checked. */
static int s_plan_webhook(const store_outbox_t *row, outbox_plan_t *plan)
{
    plan->to = strdup(row->to_addr);
    plan->body = strdup(row->body);
    if (!plan->to || !plan->body) {
        outbox_plan_clear(plan);
        return SOUK_ENOMEM;
    }
    if (!souk_utf8_valid(row->body, strlen(row->body)))
        s_fail(plan, 0, "body is not valid UTF-8");
    return SOUK_OK;
}

int outbox_plan(store_t *store, const outbox_rules_t *rules, const store_outbox_t *row,
                int64_t now_ms, outbox_plan_t *plan)
{
    memset(plan, 0, sizeof *plan);
    plan->kind = OUTBOX_PLAN_SEND;
    if (outbox_is_webhook(row))
        return s_plan_webhook(row, plan);
    store_user_t user = { 0 };
    bool known = false;
    int rc = s_recipient(store, row, &user, &known, &plan->to);
    if (rc == SOUK_OK && !souk_utf8_valid(row->body, strlen(row->body)))
        s_fail(plan, 0, "body is not valid UTF-8");
    else if (rc == SOUK_OK && known && user.opted_out)
        s_fail(plan, OUTBOX_CODE_OPTED_OUT, "opted out");
    if (rc == SOUK_OK && plan->kind == OUTBOX_PLAN_SEND)
        rc = s_check_prev_part(store, row, plan);
    /* A user's reply is bound by the window; so is any address the store
     * knows as a user (a merchant who also writes to the shop). Other
     * addresses are not users we can know the window of. */
    bool windowed = (row->waid && *row->waid) || known;
    bool inside = known && user.last_inbound_ms > 0 && now_ms - user.last_inbound_ms < OUTBOX_WINDOW_MS;
    if (rc == SOUK_OK && plan->kind == OUTBOX_PLAN_SEND && windowed && !inside) {
        if (rules->template_sid && *rules->template_sid) {
            plan->content_vars = s_template_vars(row->body);
            rc = plan->content_vars ? SOUK_OK : SOUK_ENOMEM;
        } else {
            s_fail(plan, OUTBOX_CODE_WINDOW, "outside the 24-hour window");
        }
    } else if (rc == SOUK_OK && plan->kind == OUTBOX_PLAN_SEND) {
        if (outbox_utf16_len(row->body) > TWILIO_BODY_MAX_CHARS) {
            rc = outbox_split(row->body, &plan->parts, &plan->nparts);
            if (rc == SOUK_OK && plan->nparts == 0)
                s_fail(plan, 21602, "empty body");
            else if (rc == SOUK_OK)
                plan->body = strdup(plan->parts[0]);
        } else {
            plan->body = strdup(row->body);
        }
        if (rc == SOUK_OK && plan->kind == OUTBOX_PLAN_SEND && !plan->body)
            rc = SOUK_ENOMEM;
    }
    store_user_clear(&user);
    if (rc != SOUK_OK)
        outbox_plan_clear(plan);
    return rc;
}

int outbox_put_parts(store_t *store, const store_outbox_t *row, const outbox_plan_t *plan,
                     int64_t now_ms)
{
    for (size_t i = 1; i < plan->nparts; i++) {
        char key[1024];
        snprintf(key, sizeof key, "%s#%zu", row->key, i + 1);
        store_outbox_t part = {
            .key = key, .waid = row->waid, .to_addr = row->to_addr, .body = plan->parts[i],
            .kind = row->kind, .state = STORE_OUTBOX_QUEUED,
            .next_attempt_ms = now_ms, .created_ms = now_ms,
        };
        int rc = store_outbox_put(store, &part, NULL);
        if (rc != SOUK_OK && rc != SOUK_EEXISTS)
            return rc;
    }
    return SOUK_OK;
}

bool outbox_part_prev(const char *key, char *prev, size_t prevlen)
{
    const char *hash = strrchr(key, '#');
    if (!hash || hash == key || hash[1] < '1' || hash[1] > '9')
        return false;
    size_t digits = strspn(hash + 1, "0123456789");
    if (hash[1 + digits] != '\0' || digits > 6)
        return false;
    long n = strtol(hash + 1, NULL, 10);
    if (n < 2)
        return false;
    int len = (int)(hash - key);
    int w = n == 2 ? snprintf(prev, prevlen, "%.*s", len, key)
                   : snprintf(prev, prevlen, "%.*s#%ld", len, key, n - 1);
    return w > 0 && (size_t)w < prevlen;
}

size_t outbox_utf16_len(const char *text)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if ((*p & 0xC0) == 0x80)
            continue;
        n += *p >= 0xF0 ? 2 : 1; /* beyond the BMP: a surrogate pair */
    }
    return n;
}

int outbox_split(const char *text, char ***parts, size_t *nparts)
{
    /* twilio_split_body counts code points; a text rich in emoji needs a
     * smaller cut to stay within 1600 UTF-16 units. */
    for (size_t max = TWILIO_BODY_MAX_CHARS;; max -= max / 8) {
        char **p = NULL;
        size_t n = 0;
        int rc = twilio_split_body(text, max, &p, &n);
        if (rc != SOUK_OK)
            return rc;
        bool fits = true;
        for (size_t i = 0; i < n && fits; i++)
            fits = outbox_utf16_len(p[i]) <= TWILIO_BODY_MAX_CHARS;
        if (fits || max < 16) {
            *parts = p;
            *nparts = n;
            return SOUK_OK;
        }
        twilio_split_free(&p, n);
    }
}

/* ---- Twilio's answer ---------------------------------------------------------- */

void outbox_classify(const twilio_reply_t *reply, outbox_result_t *out)
{
    memset(out, 0, sizeof *out);
    out->retry_after_ms = reply->retry_after_ms;
    if (reply->curl_code != 0) {
        out->kind = reply->maybe_sent ? OUTBOX_UNKNOWN : OUTBOX_RETRY;
        snprintf(out->reason, sizeof out->reason, "network: %s", reply->error);
        return;
    }
    if (reply->status / 100 == 2) {
        if (twilio_rest_parse_created(reply->body, reply->len, out->sid, sizeof out->sid) == SOUK_OK) {
            out->kind = OUTBOX_SENT;
        } else {
            out->kind = OUTBOX_UNKNOWN;
            snprintf(out->reason, sizeof out->reason, "HTTP %ld without a message sid", reply->status);
        }
        return;
    }
    int code = 0;
    char message[200];
    twilio_rest_parse_error(reply->body, reply->len, &code, message, sizeof message);
    out->code = code ? code : (int)reply->status;
    if (*message)
        snprintf(out->reason, sizeof out->reason, "%s", message);
    else
        snprintf(out->reason, sizeof out->reason, "HTTP %ld", reply->status);
    if (reply->status == 429 || reply->status >= 500 || code == OUTBOX_CODE_RATE)
        out->kind = OUTBOX_RETRY;
    else if (reply->status >= 400)
        out->kind = OUTBOX_FAIL;
    else
        out->kind = OUTBOX_RETRY; /* 1xx/3xx: not an answer Twilio gives */
}

void outbox_classify_webhook(const twilio_reply_t *reply, outbox_result_t *out)
{
    memset(out, 0, sizeof *out);
    out->retry_after_ms = reply->retry_after_ms;
    if (reply->curl_code != 0) {
        out->kind = OUTBOX_RETRY;
        snprintf(out->reason, sizeof out->reason, "network: %s", reply->error);
        return;
    }
    out->code = (int)reply->status;
    snprintf(out->reason, sizeof out->reason, "HTTP %ld", reply->status);
    if (reply->status / 100 == 2)
        out->kind = OUTBOX_SENT;
    else if (reply->status == 429 || reply->status >= 500)
        out->kind = OUTBOX_RETRY;
    else
        out->kind = OUTBOX_FAIL;
}

int64_t outbox_backoff_ms(int attempts, uint32_t jitter, int64_t retry_after_ms)
{
    int shift = attempts < 1 ? 0 : attempts - 1 > 20 ? 20 : attempts - 1;
    int64_t d = (int64_t)OUTBOX_BACKOFF_BASE_MS << shift;
    if (d > OUTBOX_BACKOFF_CAP_MS)
        d = OUTBOX_BACKOFF_CAP_MS;
    d += d * (int64_t)(jitter % 1001) / 4000;
    if (d > OUTBOX_BACKOFF_CAP_MS)
        d = OUTBOX_BACKOFF_CAP_MS;
    return retry_after_ms > d ? retry_after_ms : d;
}

/* ---- pace --------------------------------------------------------------------- */

void outbox_bucket_init(outbox_bucket_t *b, int rate, int64_t now_ms)
{
    if (rate < 1)
        rate = 1;
    b->rate_per_ms = rate / 1000.0;
    b->burst = rate;
    b->tokens = b->burst;
    b->last_ms = now_ms;
}

int64_t outbox_bucket_take(outbox_bucket_t *b, int64_t now_ms)
{
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * b->rate_per_ms;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->last_ms = now_ms;
    }
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 0;
    }
    int64_t wait = (int64_t)ceil((1.0 - b->tokens) / b->rate_per_ms);
    return wait < 1 ? 1 : wait;
}

/* ---- reconciliation ----------------------------------------------------------- */

typedef struct {
    const char *to, *body;
    int64_t since_ms;
    outbox_found_t found[PAGE_MAX];
    size_t n;
} s_match_t;

static int s_collect_match(const twilio_listed_t *m, void *arg)
{
    s_match_t *mt = arg;
    if (mt->n == PAGE_MAX)
        return 1;
    if (!mt->body || strcmp(m->to, mt->to) != 0 || strcmp(m->body, mt->body) != 0)
        return 0;
    if (m->created_ms < 0 || m->created_ms < mt->since_ms - RECONCILE_SKEW_MS || !*m->sid)
        return 0;
    outbox_found_t *f = &mt->found[mt->n++];
    snprintf(f->sid, sizeof f->sid, "%s", m->sid);
    snprintf(f->status, sizeof f->status, "%s", m->status);
    f->error_code = m->error_code;
    return 0;
}

int outbox_find_sent(store_t *store, const char *page, size_t len, const char *to,
                     const char *body, int64_t since_ms, outbox_found_t *found)
{
    s_match_t *mt = calloc(1, sizeof *mt);
    if (!mt)
        return SOUK_ENOMEM;
    mt->to = to;
    mt->body = body;
    mt->since_ms = since_ms;
    int rc = twilio_rest_parse_list(page, len, s_collect_match, mt);
    if (rc == SOUK_OK)
        rc = SOUK_ENOTFOUND;
    /* The page is newest first: walk it oldest first. A sid another row
     * already recorded is that row's message, not ours. */
    for (size_t i = mt->n; i-- > 0 && rc == SOUK_ENOTFOUND;) {
        store_outbox_t other = { 0 };
        int g = store_outbox_get_by_sid(store, mt->found[i].sid, &other);
        store_outbox_clear(&other);
        if (g == SOUK_ENOTFOUND) {
            *found = mt->found[i];
            rc = SOUK_OK;
        } else if (g != SOUK_OK) {
            rc = g;
        }
    }
    free(mt);
    return rc;
}
