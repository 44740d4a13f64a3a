/* The agent's reply text: a growing buffer with the few shapes a WhatsApp
 * answer needs (money with its currency sign, *bold* names, numbered
 * product lines), finished under Twilio's 1,600-character body limit.
 * Limits are counted in bytes, which are never fewer than characters. */
#include "agent_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A buffer that stops growing far past one message: nothing is lost that
 * a reply could have shown. */
#define TEXT_HARD_MAX (8 * AGENT_REPLY_MAX)
#define ELLIPSIS "\u2026"

static bool s_reserve(ag_text_t *t, size_t more)
{
    if (t->oom)
        return false;
    if (t->len + more + 1 > TEXT_HARD_MAX)
        return false;
    if (t->len + more + 1 <= t->cap)
        return true;
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->len + more + 1)
        cap *= 2;
    char *b = realloc(t->buf, cap);
    if (!b) {
        t->oom = true;
        return false;
    }
    t->buf = b;
    t->cap = cap;
    return true;
}

static void s_add_n(ag_text_t *t, const char *s, size_t n)
{
    if (!s_reserve(t, n))
        return;
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

void ag_text_add(ag_text_t *t, const char *s)
{
    s_add_n(t, s, strlen(s));
}

void ag_text_printf(ag_text_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !s_reserve(t, (size_t) n))
        return;
    va_start(ap, fmt);
    vsnprintf(t->buf + t->len, (size_t) n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t) n;
}

void ag_text_money(ag_text_t *t, int64_t cents, const char *currency)
{
    const char *sign = NULL;
    if (strcmp(currency, "USD") == 0)
        sign = "$";
    else if (strcmp(currency, "EUR") == 0)
        sign = "\u20ac";
    else if (strcmp(currency, "GBP") == 0)
        sign = "\u00a3";
    if (cents < 0)
        cents = 0;
    /* 1,299.50: thousands grouped, two decimals */
    char units[32], grouped[48];
    int n = snprintf(units, sizeof units, "%lld", (long long) (cents / 100));
    int g = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            grouped[g++] = ',';
        grouped[g++] = units[i];
    }
    grouped[g] = '\0';
    if (sign)
        ag_text_printf(t, "%s%s.%02lld", sign, grouped, (long long) (cents % 100));
    else
        ag_text_printf(t, "%s.%02lld %s", grouped, (long long) (cents % 100), currency);
}

void ag_text_bold(ag_text_t *t, const char *name)
{
    ag_text_add(t, "*");
    for (const char *p = name; *p; p++) {
        if (*p == '*' || *p == '\n' || *p == '\r')
            continue;
        s_add_n(t, p, 1);
    }
    ag_text_add(t, "*");
}

void ag_text_products(ag_text_t *t, const ag_product_t *p, int n)
{
    for (int i = 0; i < n; i++) {
        ag_text_printf(t, "%d. ", i + 1);
        ag_text_bold(t, p[i].name);
        ag_text_add(t, " \u2014 ");
        ag_text_money(t, p[i].price_cents, p[i].currency);
        if (!p[i].in_stock)
            ag_text_add(t, " (out of stock)");
        ag_text_add(t, "\n");
    }
}

/* Length of the longest prefix of s[0..len) that is at most max bytes and
 * ends on a UTF-8 boundary. */
static size_t s_utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

void ag_text_trim(ag_text_t *t)
{
    while (t->len && isspace((unsigned char) t->buf[t->len - 1]))
        t->len--;
    if (t->buf)
        t->buf[t->len] = '\0';
}

char *ag_text_finish(ag_text_t *t)
{
    if (t->oom || !t->buf) {
        ag_text_free(t);
        return strdup("Sorry, something went wrong on my side. Please try again.");
    }
    ag_text_trim(t);
    if (t->len > AGENT_REPLY_MAX) {
        size_t room = AGENT_REPLY_MAX - strlen("\n" ELLIPSIS);
        size_t cut = s_utf8_cut(t->buf, t->len, room);
        /* keep whole lines when that loses little, else whole words */
        size_t at = cut;
        while (at > 0 && t->buf[at] != '\n')
            at--;
        if (at < cut / 2) {
            at = cut;
            while (at > 0 && t->buf[at] != ' ')
                at--;
            if (at < cut / 2)
                at = cut;
        }
        t->len = at;
        while (t->len && isspace((unsigned char) t->buf[t->len - 1]))
            t->len--;
        t->buf[t->len] = '\0';
        ag_text_add(t, "\n" ELLIPSIS);
    }
    char *s = t->buf;
    *t = (ag_text_t) { 0 };
    return s;
}

void ag_text_free(ag_text_t *t)
{
    free(t->buf);
    *t = (ag_text_t) { 0 };
}

void ag_first_name(const char *profile, char *out, size_t cap)
{
    out[0] = '\0';
    if (!profile || cap < 2)
        return;
    while (*profile == ' ' || *profile == '\t')
        profile++;
    size_t o = 0;
    bool letters = false;
    for (const char *p = profile; *p && *p != ' ' && *p != '\t' && o + 1 < cap; p++) {
        unsigned char c = (unsigned char) *p;
        /* WhatsApp formatting marks and controls would garble the reply */
        if (c < 0x20 || c == 0x7f || strchr("*_~`", c))
            continue;
        letters |= isalpha(c) || c >= 0xC3;
        out[o++] = (char) c;
    }
    /* the loop may stop inside a sequence: back off to its start */
    size_t n = o;
    if (n && ((unsigned char) out[n - 1] & 0x80)) {
        size_t start = n - 1;
        while (start > 0 && ((unsigned char) out[start] & 0xC0) == 0x80)
            start--;
        unsigned char lead = (unsigned char) out[start];
        size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (n - start < want)
            n = start;
    }
    out[n] = '\0';
    if (!letters)
        out[0] = '\0';
}
