/* search_price: price limits in a customer's words ("under 20 dollars").
 *
 * A limit is a keyword before an amount ("below $50") or an amount before
 * "or less" ("20 euros or less"); the amount may carry a currency sign or
 * word on either side. The leftmost limit wins. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "souk/error.h"
#include "souk/search.h"

typedef struct {
    const char *words;
    bool strict;
} price_word_t;

/* Longest first where one is a prefix of another. */
static const price_word_t s_before[] = {
    { "for less than", true }, { "less than", true }, { "cheaper than", true },
    { "lower than", true }, { "under", true }, { "below", true }, { "beneath", true },
    { "no more than", false }, { "not more than", false }, { "not over", false },
    { "maximum of", false }, { "maximum", false }, { "max.", false }, { "max", false },
    { "at most", false }, { "up to", false }, { "within", false }, { "budget of", false },
    { "budget is", false }, { "budget", false }, { "<=", false }, { "<", true },
};
static const struct {
    const char *words;
    bool needs_currency;       /* "13 max" is a model name, "$13 max" a limit */
} s_after[] = {
    { "or less", false }, { "or cheaper", false }, { "or under", false }, { "or below", false },
    { "and under", false }, { "and below", false }, { "at most", false }, { "maximum", true },
    { "max", true }, { "tops", true },
};
static const char *const s_currency_words[] = {
    "dollars", "dollar", "bucks", "buck", "usd", "euros", "euro", "eur", "pounds", "pound",
    "gbp", "quid",
};

static bool s_word_char(char c)
{
    return isalnum((unsigned char)c);
}

/* Whether text at p starts with words (case-insensitive) ending at a word
 * boundary; *end gets where they end. */
static bool s_match(const char *start, const char *p, const char *words, const char **end)
{
    size_t len = strlen(words);
    if (strncasecmp(p, words, len) != 0)
        return false;
    if (p > start && s_word_char(p[-1]) && s_word_char(words[0]))
        return false;
    if (s_word_char(words[len - 1]) && s_word_char(p[len]))
        return false;
    *end = p + len;
    return true;
}

static const char *s_skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A currency sign ($, €, £) or word at p; returns the end, or p if none. */
static const char *s_currency(const char *start, const char *p)
{
    if (*p == '$')
        return p + 1;
    if (strncmp(p, "\xe2\x82\xac", 3) == 0 || strncmp(p, "\xc2\xa3", 2) == 0)
        return p + (p[0] == '\xe2' ? 3 : 2);
    const char *end;
    for (size_t i = 0; i < sizeof s_currency_words / sizeof s_currency_words[0]; i++)
        if (s_match(start, p, s_currency_words[i], &end))
            return end;
    return p;
}

/* An amount at p: digits with "," thousands or "." / "," decimals, and an
 * optional "k". Returns its end (p when there is none) and *cents. */
static const char *s_amount(const char *p, int64_t *cents)
{
    if (!isdigit((unsigned char)*p))
        return p;
    int64_t whole = 0, frac = 0;
    int frac_digits = 0;
    const char *s = p;
    for (;;) {
        if (isdigit((unsigned char)*s)) {
            if (whole > 100000000000LL)
                return p;
            whole = whole * 10 + (*s++ - '0');
        } else if (*s == ',' && isdigit((unsigned char)s[1]) && isdigit((unsigned char)s[2]) &&
                   isdigit((unsigned char)s[3]) && !isdigit((unsigned char)s[4])) {
            s++;                               /* thousands separator */
        } else {
            break;
        }
    }
    if ((*s == '.' || *s == ',') && isdigit((unsigned char)s[1])) {
        s++;
        while (isdigit((unsigned char)*s)) {
            if (frac_digits < 2) {
                frac = frac * 10 + (*s - '0');
                frac_digits++;
            }
            s++;
        }
        if (frac_digits == 1)
            frac *= 10;
    }
    int64_t v = whole * 100 + frac;
    if ((*s == 'k' || *s == 'K') && !s_word_char(s[1])) {
        v *= 1000;
        s++;
    }
    if (s_word_char(*s))
        return p;                              /* "3x", "128gb": not an amount */
    *cents = v;
    return s;
}

/* [sign] amount [sign or word] at p; returns the end or p; *currency:
 * whether a sign or word was there. */
static const char *s_price(const char *start, const char *p, int64_t *cents, bool *currency)
{
    const char *sign = s_currency(start, p);
    const char *q = s_skip_space(sign);
    const char *e = s_amount(q, cents);
    if (e == q)
        return p;
    const char *c = s_currency(start, s_skip_space(e));
    *currency = sign != p || c != s_skip_space(e);
    return c != s_skip_space(e) ? c : e;
}

static void s_rest(const char *text, size_t from, size_t to, char *rest, size_t restlen)
{
    if (!rest || !restlen)
        return;
    char buf[2048];
    snprintf(buf, sizeof buf, "%.*s %s", (int)from, text, text + to);
    const char *s = buf;
    while (isspace((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len && (isspace((unsigned char)s[len - 1]) || s[len - 1] == ',' || s[len - 1] == '.'))
        len--;
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < restlen; i++) {
        if (isspace((unsigned char)s[i]) && o && rest[o - 1] == ' ')
            continue;
        rest[o++] = isspace((unsigned char)s[i]) ? ' ' : s[i];
    }
    rest[o] = '\0';
}

int search_parse_price_limit(const char *text, int64_t *max_cents, char *rest, size_t restlen)
{
    if (!text || !max_cents)
        return SOUK_EINVAL;
    for (const char *p = text; *p; p++) {
        const char *end;
        int64_t cents;
        for (size_t i = 0; i < sizeof s_before / sizeof s_before[0]; i++) {
            if (!s_match(text, p, s_before[i].words, &end))
                continue;
            const char *e = s_skip_space(end);
            if (strncasecmp(e, "of ", 3) == 0)
                e = s_skip_space(e + 3);
            bool currency;
            const char *pe = s_price(text, e, &cents, &currency);
            if (pe == e)
                continue;
            *max_cents = s_before[i].strict && cents > 0 ? cents - 1 : cents;
            s_rest(text, (size_t)(p - text), (size_t)(pe - text), rest, restlen);
            return 1;
        }
        if (p > text && s_word_char(p[-1]) && s_word_char(*p))
            continue;
        bool currency;
        const char *pe = s_price(text, p, &cents, &currency);
        if (pe == p)
            continue;
        const char *a = s_skip_space(pe);
        for (size_t i = 0; i < sizeof s_after / sizeof s_after[0]; i++) {
            if ((currency || !s_after[i].needs_currency) && s_match(text, a, s_after[i].words, &end)) {
                *max_cents = cents;
                s_rest(text, (size_t)(p - text), (size_t)(end - text), rest, restlen);
                return 1;
            }
        }
    }
    if (rest && restlen)
        s_rest(text, 0, 0, rest, restlen);
    return 0;
}
