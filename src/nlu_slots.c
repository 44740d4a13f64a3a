/* Slots: the concrete things a customer message names, read by rules.
 *
 * The text is split into lowercased tokens; each reader below claims the
 * tokens it understands (order ids first, then prices, references to shown
 * items, quantities), so a number is read once: "under 20 dollars" is a
 * price, "#2" a reference, "iphone 13" part of the product. What nobody
 * claimed, minus request filler ("can you show me", "pls"), is the product
 * query. Yes/no, changes of mind and refinements are read from marker words.
 * Everything here is bounded and allocation-free. */
#include "souk/nlu.h"
#include "souk/error.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define TOK_MAX 40
#define TOKS_MAX (NLU_TEXT_MAX / 2 + 1)
#define QTY_MAX 999

typedef enum { T_WORD, T_NUM, T_SYM, T_EMOJI } tkind_t;

typedef struct {
    char s[TOK_MAX + 1];        /* lowercased; apostrophes dropped */
    tkind_t kind;
    double num;                 /* value of a T_NUM ("19.99", "1,000") */
    bool used;                  /* claimed by a slot */
} tok_t;

typedef struct {
    tok_t t[TOKS_MAX];
    int n;
    nlu_slots_t *out;
} ctx_t;

#define LIST(...) ((const char *const[]) { __VA_ARGS__, NULL })

/* ---- tokens ------------------------------------------------------------ */

static bool s_in(const char *w, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(w, *list) == 0)
            return true;
    return false;
}

static bool s_is(const ctx_t *c, int i, const char *w)
{
    return i >= 0 && i < c->n && strcmp(c->t[i].s, w) == 0;
}

static bool s_is_in(const ctx_t *c, int i, const char *const *list)
{
    return i >= 0 && i < c->n && s_in(c->t[i].s, list);
}

static bool s_free(const ctx_t *c, int i)
{
    return i >= 0 && i < c->n && !c->t[i].used;
}

static void s_use(ctx_t *c, int from, int to)
{
    for (int i = from; i <= to && i < c->n; i++)
        if (i >= 0)
            c->t[i].used = true;
}

static bool s_is_punct(const ctx_t *c, int i)
{
    return i < 0 || i >= c->n || (c->t[i].kind == T_SYM && strchr(",.!?;:", c->t[i].s[0]));
}

static void s_push(ctx_t *c, const char *s, size_t len, tkind_t kind)
{
    if (c->n >= TOKS_MAX)
        return;
    tok_t *t = &c->t[c->n++];
    len = len > TOK_MAX ? TOK_MAX : len;
    memcpy(t->s, s, len);
    t->s[len] = '\0';
    t->kind = kind;
    t->used = false;
    t->num = kind == T_NUM ? strtod(t->s, NULL) : 0;
}

/* Whether the UTF-8 sequence at p[i] is a letter: ASCII letters and digits,
 * and any sequence led by 0xC3..0xE1 (Latin-1 letters up to Devanagari)
 * except × and ÷. Emoji and symbols (0xE2 and up, 0xC2) are not. */
static size_t s_letter_len(const unsigned char *p, size_t i, size_t n)
{
    unsigned char b = p[i];
    if (b < 0x80)
        return isalnum(b) ? 1 : 0;
    if (b < 0xC3 || b > 0xE1 || (b == 0xC3 && i + 1 < n && (p[i + 1] == 0x97 || p[i + 1] == 0xB7)))
        return 0;
    size_t len = b >= 0xE0 ? 3 : 2;
    return i + len <= n ? len : 0;
}

/* '.' before a digit, or ',' before exactly three digits: inside a number. */
static bool s_number_sep(const unsigned char *p, size_t i, size_t n)
{
    if (p[i] == '.')
        return i + 1 < n && isdigit(p[i + 1]);
    return p[i] == ',' && i + 3 < n && isdigit(p[i + 1]) && isdigit(p[i + 2]) && isdigit(p[i + 3])
           && (i + 4 >= n || !isdigit(p[i + 4]));
}

static bool s_apostrophe(const unsigned char *p, size_t i, size_t n, size_t *len)
{
    *len = p[i] == '\'' ? 1 : (i + 2 < n && p[i] == 0xE2 && p[i + 1] == 0x80 && p[i + 2] == 0x99) ? 3 : 0;
    return *len && i + *len < n && s_letter_len(p, i + *len, n);
}

/* A run of letters and digits: "don't" → "dont", "19.99", "1,000" → 1000. */
static size_t s_scan_word(ctx_t *c, const unsigned char *p, size_t n)
{
    char buf[TOK_MAX + 1];
    size_t i = 0, len = 0, step;
    bool digits = true;
    while (i < n) {
        if ((step = s_letter_len(p, i, n)) > 0) {
            digits = digits && step == 1 && isdigit(p[i]);
            for (size_t k = 0; k < step && len < TOK_MAX; k++)
                buf[len++] = (char) tolower(p[i + k]);
        } else if (digits && len && s_number_sep(p, i, n)) {
            if (p[i] == '.' && len < TOK_MAX)
                buf[len++] = '.';
            step = 1;
        } else if (len && s_apostrophe(p, i, n, &step)) {
            /* skipped */
        } else {
            break;
        }
        i += step;
    }
    s_push(c, buf, len, digits ? T_NUM : T_WORD);
    return i;
}

static void s_tokenize(ctx_t *c, const char *text)
{
    const unsigned char *p = (const unsigned char *) text;
    size_t n = strnlen(text, NLU_TEXT_MAX), i = 0;
    c->n = 0;
    while (i < n) {
        unsigned char b = p[i];
        size_t len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
        len = i + len > n ? n - i : len;
        if (s_letter_len(p, i, n)) {
            i += s_scan_word(c, p + i, n - i);
            continue;
        }
        if (len == 2 && b == 0xC3 && p[i + 1] == 0x97)
            s_push(c, "x", 1, T_WORD);                          /* × */
        else if ((len == 2 && b == 0xC2 && p[i + 1] == 0xA3) || (len == 3 && b == 0xE2 && p[i + 1] == 0x82 && p[i + 2] == 0xAC))
            s_push(c, (const char *) p + i, len, T_SYM);       /* £ € */
        else if (b >= 0xE2 && !(b == 0xEF && len == 3 && p[i + 1] == 0xB8))
            s_push(c, (const char *) p + i, len, T_EMOJI);     /* not a variation selector */
        else if (b < 0x80 && !isspace(b))
            s_push(c, (const char *) p + i, 1, T_SYM);
        i += len;
    }
}

/* Length in tokens of the first of the space-separated phrases matching the
 * free tokens at i; 0 when none does. List the longer phrases first. */
static int s_phrase(const ctx_t *c, int i, const char *const *phrases)
{
    for (; *phrases; phrases++) {
        const char *p = *phrases;
        int k = 0;
        while (*p) {
            size_t len = strcspn(p, " ");
            if (!s_free(c, i + k) || strlen(c->t[i + k].s) != len || strncmp(c->t[i + k].s, p, len) != 0)
                break;
            k++;
            p += len;
            p += *p == ' ';
        }
        if (!*p)
            return k;
    }
    return 0;
}

/* ---- numbers ----------------------------------------------------------- */

static const struct {
    const char *word;
    int value;
} s_number_words[] = {
    { "one", 1 }, { "two", 2 }, { "three", 3 }, { "four", 4 }, { "five", 5 }, { "six", 6 },
    { "seven", 7 }, { "eight", 8 }, { "nine", 9 }, { "ten", 10 }, { "eleven", 11 },
    { "twelve", 12 }, { "thirteen", 13 }, { "fourteen", 14 }, { "fifteen", 15 },
    { "sixteen", 16 }, { "seventeen", 17 }, { "eighteen", 18 }, { "nineteen", 19 },
    { "twenty", 20 }, { "thirty", 30 }, { "forty", 40 }, { "fifty", 50 }, { "sixty", 60 },
    { "seventy", 70 }, { "eighty", 80 }, { "ninety", 90 }, { "hundred", 100 },
};

static int s_number_word(const char *w)
{
    for (size_t i = 0; i < sizeof s_number_words / sizeof s_number_words[0]; i++)
        if (strcmp(w, s_number_words[i].word) == 0)
            return s_number_words[i].value;
    return 0;
}

/* A number at free token i: digits, or words ("twenty five", "a hundred").
 * Sets *value and *end (the last token used); false when there is none. */
static bool s_number(const ctx_t *c, int i, double *value, int *end)
{
    if (!s_free(c, i))
        return false;
    if (c->t[i].kind == T_NUM) {
        *value = c->t[i].num;
        *end = i;
        return true;
    }
    int v = s_number_word(c->t[i].s);
    if ((s_is(c, i, "a") || s_is(c, i, "one")) && s_is(c, i + 1, "hundred")) {
        *value = 100;
        *end = i + 1;
        return true;
    }
    if (!v)
        return false;
    *end = i;
    int j = s_is(c, i + 1, "-") ? i + 2 : i + 1, unit = s_free(c, j) ? s_number_word(c->t[j].s) : 0;
    if (v >= 20 && v < 100 && v % 10 == 0 && unit > 0 && unit < 10) {
        v += unit;
        *end = j;
    } else if (v < 10 && s_is(c, i + 1, "hundred")) {
        v *= 100;
        *end = i + 1;
    }
    *value = v;
    return true;
}

/* ---- order ids --------------------------------------------------------- */

static int s_crockford(int ch)
{
    ch = toupper(ch);
    if (ch == 'I' || ch == 'L')
        return '1';
    if (ch == 'O')
        return '0';
    if (isdigit(ch) || (ch >= 'A' && ch <= 'Z' && ch != 'U'))
        return ch;
    return -1;
}

int nlu_order_id_normalize(const char *s, char out[9])
{
    if (!s || !out)
        return SOUK_EINVAL;
    s += *s == '#';
    if (tolower((unsigned char) s[0]) != 's' || tolower((unsigned char) s[1]) != 'k')
        return SOUK_EINVAL;
    s += 2;
    s += *s == '-' || *s == ' ';
    char id[9] = "SK-";
    for (int i = 0; i < 5; i++) {
        int ch = s[i] ? s_crockford((unsigned char) s[i]) : -1;
        if (ch < 0)
            return SOUK_EINVAL;
        id[3 + i] = (char) ch;
    }
    if (s[5] != '\0')
        return SOUK_EINVAL;
    memcpy(out, id, sizeof id);
    return SOUK_OK;
}

static bool s_has_digit(const char *s)
{
    for (; *s; s++)
        if (isdigit((unsigned char) *s))
            return true;
    return false;
}

/* "SK-7K3Q9", "sk 7k3q9", "sk7k3q9": without the dash the five characters
 * must hold a digit, which tells an id from a word ("sketchy"). */
static void s_read_order_id(ctx_t *c)
{
    char buf[TOK_MAX + 8];
    for (int i = 0; i < c->n && !c->out->order_id[0]; i++) {
        const char *w = c->t[i].s;
        int last = -1;
        if (strcmp(w, "sk") == 0 && s_is(c, i + 1, "-") && s_free(c, i + 2)) {
            snprintf(buf, sizeof buf, "sk-%s", c->t[i + 2].s);
            last = i + 2;
        } else if (strcmp(w, "sk") == 0 && s_free(c, i + 1) && s_has_digit(c->t[i + 1].s)) {
            snprintf(buf, sizeof buf, "sk%s", c->t[i + 1].s);
            last = i + 1;
        } else if (strlen(w) == 7 && strncmp(w, "sk", 2) == 0 && s_has_digit(w + 2)) {
            snprintf(buf, sizeof buf, "%s", w);
            last = i;
        }
        if (last >= 0 && nlu_order_id_normalize(buf, c->out->order_id) == SOUK_OK)
            s_use(c, s_is(c, i - 1, "#") ? i - 1 : i, last);
    }
}

/* ---- prices ------------------------------------------------------------ */

typedef struct {
    double value;
    int start, end;             /* tokens of the amount, currency included */
    const char *currency;       /* "USD"... or NULL when unsaid */
} amount_t;

static const char *s_currency(const char *w)
{
    if (s_in(w, LIST("$", "usd", "dollar", "dollars", "buck", "bucks")))
        return "USD";
    if (s_in(w, LIST("€", "eur", "euro", "euros")))
        return "EUR";
    if (s_in(w, LIST("£", "gbp", "pound", "pounds", "quid")))
        return "GBP";
    return NULL;
}

/* Words after a number that make it something other than money. */
static const char *const s_not_money[] = {
    "kg", "kgs", "g", "gb", "tb", "mb", "inch", "inches", "cm", "mm", "km", "ml", "l", "litre",
    "litres", "liter", "liters", "year", "years", "yrs", "month", "months", "day", "days", "hour",
    "hours", "week", "weeks", "minutes", "mins", "pcs", "pieces", "items", "units", "people",
    "percent", "%", "mah", "hz", "mp", "pairs", "of", NULL
};

/* "20", "$20", "20 dollars", "€9.99", "20k", "1.5k", "20usd", "fifty bucks",
 * "a tenner" at token i. */
static bool s_amount(const ctx_t *c, int i, amount_t *a)
{
    const char *pre = s_free(c, i) ? s_currency(c->t[i].s) : NULL;
    int j = pre ? i + 1 : i, end;
    double v;
    if (!pre && s_is(c, i, "a") && s_is(c, i + 1, "tenner")) {
        *a = (amount_t) { 10, i, i + 1, "GBP" };
        return true;
    }
    if (s_number(c, j, &v, &end)) {
        const char *post = s_free(c, end + 1) ? s_currency(c->t[end + 1].s) : NULL;
        if (!pre && !post && s_is_in(c, end + 1, s_not_money))
            return false;
        if (!post && s_is(c, end + 1, "k")) {
            v *= 1000;
            end++;
            post = s_free(c, end + 1) ? s_currency(c->t[end + 1].s) : NULL;
        }
        *a = (amount_t) { v, i, post ? end + 1 : end, pre ? pre : post };
        return true;
    }
    if (!s_free(c, j) || !isdigit((unsigned char) c->t[j].s[0]))
        return false;
    char *rest;
    v = strtod(c->t[j].s, &rest);
    if (strcmp(rest, "k") == 0)
        *a = (amount_t) { v * 1000, i, j, pre };
    else if (s_currency(rest))
        *a = (amount_t) { v, i, j, pre ? pre : s_currency(rest) };
    else
        return false;
    return true;
}

static void s_set_price(ctx_t *c, const amount_t *a, bool max)
{
    nlu_slots_t *o = c->out;
    if (max) {
        o->has_price_max = true;
        o->price_max = a->value;
    } else {
        o->has_price_min = true;
        o->price_min = a->value;
    }
    if (a->currency && !o->currency[0])
        snprintf(o->currency, sizeof o->currency, "%s", a->currency);
    s_use(c, a->start, a->end);
}

static const char *const s_max_markers[] = {
    "no more than", "not more than", "my budget is", "budget of", "budget is", "budget around",
    "less than", "lower than", "cheaper than", "less then", "up to", "at most", "not over",
    "not above", "under", "undr", "below", "bellow", "upto", "max", "maximum", "within", "budget",
    "<", NULL
};
static const char *const s_min_markers[] = {
    "more expensive than", "pricier than", "more than", "greater than", "higher than", "at least",
    "starting at", "starting from", "over", "above", "min", "minimum", "from", ">", NULL
};
static const char *const s_max_suffixes[] = {
    "or less", "or under", "or below", "and under", "and below", "or cheaper", "at most", NULL
};
static const char *const s_min_suffixes[] = {
    "or more", "and up", "and above", "or above", "and over", NULL
};
/* Only after an amount with a currency: "iphone 6 plus" is a phone. */
static const char *const s_money_max_suffixes[] = { "max", "tops", NULL };
static const char *const s_money_min_suffixes[] = { "plus", "+", NULL };

/* Words that make "from 2 to 3" a change of quantity, not of price. */
static bool s_quantity_talk(const ctx_t *c)
{
    for (int i = 0; i < c->n; i++)
        if (s_in(c->t[i].s, LIST("change", "make", "quantity", "qty", "switch", "update", "instead")))
            return true;
    return false;
}

/* "between 10 and 20", "from 10 to 20", "$10-$20", "10 to 20 dollars". */
static bool s_read_range(ctx_t *c, int i)
{
    amount_t lo, hi;
    int k = s_is(c, i, "between") || s_is(c, i, "from") ? 1 : 0;
    if (!s_amount(c, i + k, &lo))
        return false;
    int sep = lo.end + 1;
    if (!(s_is(c, sep, "and") || s_is(c, sep, "to") || s_is(c, sep, "-")) || !s_amount(c, sep + 1, &hi))
        return false;
    if (!lo.currency && !hi.currency && (!k || (s_is(c, i, "from") && s_quantity_talk(c))))
        return false;
    if (!lo.currency)
        lo.currency = hi.currency;
    lo.start = i;
    s_set_price(c, &lo, false);
    s_set_price(c, &hi, true);
    return true;
}

static void s_read_prices(ctx_t *c)
{
    for (int i = 0; i < c->n; i++) {
        amount_t a;
        int k;
        if (!s_free(c, i) || s_read_range(c, i))
            continue;
        if ((k = s_phrase(c, i, s_max_markers)) && s_amount(c, i + k, &a)) {
            a.start = i;
            s_set_price(c, &a, true);
        } else if ((k = s_phrase(c, i, s_min_markers)) && s_amount(c, i + k, &a)
                   && (a.currency || !s_is(c, i, "from") || !s_quantity_talk(c))) {
            a.start = i;
            s_set_price(c, &a, false);
        } else if (s_amount(c, i, &a) && ((k = s_phrase(c, a.end + 1, s_max_suffixes))
                                          || (a.currency && (k = s_phrase(c, a.end + 1, s_money_max_suffixes))))) {
            a.end += k;
            s_set_price(c, &a, true);
        } else if (s_amount(c, i, &a) && ((k = s_phrase(c, a.end + 1, s_min_suffixes))
                                          || (a.currency && (k = s_phrase(c, a.end + 1, s_money_min_suffixes))))) {
            a.end += k;
            s_set_price(c, &a, false);
        }
    }
}

/* An amount with a currency and no marker ("anything for 20 bucks?") is a
 * budget; read after the references so "the $29.99 one" stays one. */
static void s_read_budget(ctx_t *c)
{
    for (int i = 0; i < c->n && !c->out->has_price_max && !c->out->has_price_min; i++) {
        amount_t a;
        if (s_amount(c, i, &a) && a.currency && !s_is(c, a.start - 1, "the")) {
            a.start -= s_is(c, a.start - 1, "for") || s_is(c, a.start - 1, "around")
                       || s_is(c, a.start - 1, "about");
            s_set_price(c, &a, true);
        }
    }
}

/* ---- references to what was shown -------------------------------------- */

static const char *const s_cancel_verbs[] = {
    "cancel", "cancle", "cancl", "cansel", "canel", "cncl", "abort", "cancellation", NULL
};

static const char *const s_ordinals[] = {
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth", NULL
};
static const char *const s_ordinal_digits[] = {
    "1st", "2nd", "3rd", "4th", "5th", "6th", "7th", "8th", "9th", "10th", NULL
};
/* Verbs that pick an item: "take the second", "i want this". */
static const char *const s_choice_verbs[] = {
    "take", "want", "wnt", "buy", "order", "get", "gimme", "add", "like", "love", "choose", "pick",
    "prefer", "need", "send", "of", "with", "for", "go", "keep", NULL
};
/* What may follow a reference without making it something else. */
static const char *const s_ref_tails[] = {
    "one", "option", "item", "choice", "product", "pls", "please", "plz", "then", "instead", "too",
    "as", "and", "x", "thanks", NULL
};
/* "the first time", "my last order" are not references. */
static const char *const s_not_ref_tails[] = {
    "time", "times", "week", "month", "year", "day", "night", "order", "orders", "purchase", "page",
    "two", "three", "few", "couple", "delivery", NULL
};

static int s_ordinal(const ctx_t *c, int i)
{
    for (int k = 0; s_ordinals[k]; k++)
        if (s_is(c, i, s_ordinals[k]) || s_is(c, i, s_ordinal_digits[k]))
            return k + 1;
    return 0;
}

static bool s_ref_tail_ok(const ctx_t *c, int i)
{
    return !s_is_in(c, i, s_not_ref_tails)
           && (i >= c->n || s_is_punct(c, i) || s_is_in(c, i, s_ref_tails) || c->t[i].kind == T_EMOJI
               || c->t[i].kind == T_NUM);
}

static void s_set_ref(ctx_t *c, nlu_ref_t ref, int index, int from, int to)
{
    if (c->out->ref != NLU_REF_NONE)
        return;
    c->out->ref = ref;
    c->out->ref_index = index;
    s_use(c, s_is(c, from - 1, "the") ? from - 1 : from, s_is(c, to + 1, "one") ? to + 1 : to);
}

/* "#2", "number 2", "no. 2", "option 2", "option b", "item two". */
static bool s_read_ref_number(ctx_t *c, int i)
{
    int j = -1;
    double v;
    int end;
    if (s_is(c, i, "#"))
        j = i + 1;
    else if (s_is_in(c, i, LIST("number", "num", "nr", "option", "item", "choice", "product")))
        j = i + 1 + (s_is(c, i + 1, "#") || s_is(c, i + 1, "no"));
    else if (s_is(c, i, "no") && s_is(c, i + 1, "."))
        j = i + 2;
    if (j < 0)
        return false;
    if (s_is(c, i, "option") && s_free(c, j) && strlen(c->t[j].s) == 1 && c->t[j].s[0] >= 'a'
        && c->t[j].s[0] <= 'e') {
        s_set_ref(c, NLU_REF_INDEX, c->t[j].s[0] - 'a' + 1, i, j);
        return true;
    }
    if (!s_number(c, j, &v, &end) || v < 1 || v > 99 || v != (int) v)
        return false;
    s_set_ref(c, NLU_REF_INDEX, (int) v, i, end);
    return true;
}

static bool s_read_ref_ordinal(ctx_t *c, int i)
{
    int k = s_ordinal(c, i);
    bool last = s_is_in(c, i, LIST("last", "final", "bottom", "latter"));
    if ((!k && !last) || !s_ref_tail_ok(c, i + 1))
        return false;
    bool anchored = s_is(c, i - 1, "the") || s_is_in(c, i - 1, s_choice_verbs) || s_is(c, i + 1, "one")
                    || (!last && i == 0);
    if (!anchored)
        return false;
    s_set_ref(c, last ? NLU_REF_LAST : NLU_REF_INDEX, k, i, i);
    return true;
}

/* "the cheaper one", "the cheapest", "the most expensive one". */
static bool s_read_ref_price(ctx_t *c, int i)
{
    static const char *const cheap[] = {
        "less expensive", "least expensive", "lower priced", "cheaper", "cheapest", "cheap", NULL
    };
    static const char *const dear[] = {
        "most expensive", "more expensive", "pricier", "priciest", "expensive", "dearer", NULL
    };
    int k = s_phrase(c, i, cheap), d = k ? 0 : s_phrase(c, i, dear);
    if ((!k && !d) || !s_ref_tail_ok(c, i + k + d))
        return false;
    if (!s_is(c, i - 1, "the") && !s_is(c, i + k + d, "one"))
        return false;
    s_set_ref(c, k ? NLU_REF_CHEAPEST : NLU_REF_PRICIEST, 0, i, i + k + d - 1);
    return true;
}

/* "that one", "this", "it" after a choice verb, or a message that is only
 * "this" / "that". */
static bool s_read_ref_that(ctx_t *c, int i)
{
    static const char *const pronouns[] = { "that", "this", "it", "those", "these", "them", NULL };
    if (!s_is_in(c, i, pronouns) || s_is_in(c, i - 1, s_cancel_verbs)
        || s_is_in(c, i - 1, LIST("forget", "scratch", "remove", "delete", "drop")))
        return false;
    bool one = s_is(c, i + 1, "one") || s_is(c, i + 1, "ones");
    bool alone = c->n <= 3 && (s_is(c, i, "this") || s_is(c, i, "that"));
    if (!one && !alone && !(s_is_in(c, i - 1, s_choice_verbs) && s_ref_tail_ok(c, i + 1)))
        return false;
    s_set_ref(c, NLU_REF_THAT, 0, i, i);
    return true;
}

/* "the blue one", "that red one", "the one with the mirror": the describing
 * words stay in the query for matching against what was shown. */
static bool s_read_ref_described(ctx_t *c, int i)
{
    if (!s_is(c, i, "one") || !s_free(c, i))
        return false;
    if ((s_is(c, i - 1, "the") || s_is(c, i - 1, "that")) && s_free(c, i - 1)
        && s_is_in(c, i + 1, LIST("with", "in", "for", "from", "that", "which"))) {
        c->out->ref = NLU_REF_DESCRIBED;
        s_use(c, i - 1, i + 1);
        return true;
    }
    for (int k = 1; k <= 3 && i - k - 1 >= 0; k++) {
        int det = i - k - 1;
        if (!s_free(c, i - k) || (c->t[i - k].kind == T_SYM && !s_currency(c->t[i - k].s)))
            return false;
        if (s_is_in(c, det, LIST("the", "that", "this")) && s_free(c, det)) {
            c->out->ref = NLU_REF_DESCRIBED;
            s_use(c, det, det);
            s_use(c, i, i);
            return true;
        }
    }
    return false;
}

static void s_read_refs(ctx_t *c)
{
    for (int i = 0; i < c->n && c->out->ref == NLU_REF_NONE; i++)
        if (s_free(c, i) && !s_read_ref_number(c, i) && !s_read_ref_ordinal(c, i))
            s_read_ref_price(c, i);
    for (int i = 0; i < c->n && c->out->ref == NLU_REF_NONE; i++)
        if (s_free(c, i) && !s_read_ref_that(c, i))
            s_read_ref_described(c, i);
}

/* ---- quantities -------------------------------------------------------- */

/* Words after a number that make it a count: "3 pcs", "2 of", "2 dozen". */
static const char *const s_count_units[] = {
    "x", "pcs", "pc", "pieces", "piece", "units", "unit", "packs", "pack", "packets", "packet",
    "boxes", "box", "bottles", "bottle", "jars", "jar", "bags", "kg", "kgs", "kilos", "kilo",
    "cartons", "carton", "sets", "set", "pairs", "pair", "cans", "dozen", "of", NULL
};
/* Words before a bare number that make it a count: "take 3", "make it 2". */
static const char *const s_count_context[] = {
    "take", "want", "wnt", "need", "buy", "order", "ordering", "get", "add", "send", "bhej", "give",
    "gimme", "it", "to", "just", "only", "me", "another", "ill", "id", "yes", "ok", "okay", "k",
    "sure", "yeah", "yep", "ya", "no", "actually", "wait", "instead", "rather", "now", "x", "qty",
    "quantity", "amount", "meant", "mean", "said", "and", "also", "plus", "not", "for", "of", "from",
    "de", NULL
};
/* Words after a number that make it a measure or a model: "14 inch". */
static const char *const s_not_count[] = {
    "inch", "inches", "gb", "tb", "mb", "cm", "mm", "km", "ml", "l", "litre", "litres", "year",
    "years", "yrs", "month", "months", "day", "days", "hour", "hours", "week", "weeks", "minutes",
    "mins", "am", "pm", "%", "percent", "mah", "hz", "mp", "stars", "star", "people", "sec", "seconds",
    "moment", "minute", "times", NULL
};
/* Things that come in pairs: "a pair of jordans" is one item. */
static const char *const s_pair_items[] = {
    "shoes", "sneakers", "trainers", "jordans", "heels", "slippers", "sandals", "boots", "cleats",
    "sunglasses", "glasses", "shades", "earrings", "socks", "gloves", "jeans", "trousers",
    "earphones", "airpods", "headphones", "loafers", "pumps", "wedges", NULL
};

typedef struct {
    int value, at;
    bool negated;               /* "not 3", "instead of 2", "from 2" */
} count_t;

static bool s_pair_item_near(const ctx_t *c, int i)
{
    for (int k = i; k < c->n && k <= i + 3; k++)
        if (s_is_in(c, k, s_pair_items))
            return true;
    return false;
}

/* "half a dozen", "a dozen", "a couple (of)", "a pair (of)", "2 dozen". */
static int s_count_phrase(ctx_t *c, int i, int *end)
{
    int k;
    if ((k = s_phrase(c, i, LIST("half a dozen", "half dozen")))) {
        *end = i + k - 1;
        return 6;
    }
    if ((k = s_phrase(c, i, LIST("a dozen", "one dozen", "dozen")))) {
        *end = i + k - 1;
        return 12;
    }
    if ((k = s_phrase(c, i, LIST("a couple of", "a couple", "couple of")))) {
        *end = i + k - 1;
        return 2;
    }
    if ((k = s_phrase(c, i, LIST("a pair of", "a pair", "pair of")))) {
        *end = i + k - 1;
        return s_pair_item_near(c, *end + 1) ? 1 : 2;
    }
    return 0;
}

/* "2x", "x2", "3pcs". */
static int s_count_glued(const char *w)
{
    char *rest;
    long v;
    if (w[0] == 'x' && isdigit((unsigned char) w[1])) {
        v = strtol(w + 1, &rest, 10);
        rest = *rest ? NULL : rest;
    } else if (isdigit((unsigned char) w[0])) {
        v = strtol(w, &rest, 10);
        rest = s_in(rest, LIST("x", "pcs", "pc", "pk")) ? rest : NULL;
    } else {
        return 0;
    }
    return rest && v >= 1 && v <= QTY_MAX ? (int) v : 0;
}

/* A count starting at free token i; 0 when there is none. */
static int s_count_at(ctx_t *c, int i, int *end)
{
    int v = s_count_phrase(c, i, end);
    double num;
    if (v)
        return v;
    if ((v = s_count_glued(c->t[i].s)) > 0) {
        *end = i;
        return v;
    }
    if (s_is_in(c, i, LIST("no", "any", "every", "some", "each", "which")) || !s_number(c, i, &num, end)
        || num < 1 || num > QTY_MAX || num != (int) num || s_is_in(c, *end + 1, s_not_count))
        return 0;
    if (s_is(c, i, "one") && s_is_in(c, i - 1, LIST("no", "any", "every", "some", "each", "which", "the")))
        return 0;
    v = (int) num;
    if (s_is(c, *end + 1, "dozen")) {
        (*end)++;
        return v * 12 <= QTY_MAX ? v * 12 : 0;
    }
    if (s_is_in(c, *end + 1, s_count_units) && !s_is(c, *end + 1, "dozen")) {
        (*end)++;
        return v;
    }
    bool after = i == 0 || s_is_punct(c, i - 1) || c->t[i - 1].used || s_is_in(c, i - 1, s_count_context);
    bool word = c->t[i].kind == T_WORD;
    if (!after && !word)
        return 0;       /* "iphone 13", "size 42", "yoga 920" */
    return v;
}

static void s_read_quantity(ctx_t *c, bool change)
{
    count_t counts[8];
    int n = 0;
    for (int i = 0; i < c->n && n < 8; i++) {
        int end, v;
        if (!s_free(c, i) || (v = s_count_at(c, i, &end)) == 0)
            continue;
        bool negated = s_is(c, i - 1, "not") || s_is(c, i - 1, "from")
                       || (s_is(c, i - 1, "of") && s_is(c, i - 2, "instead"));
        counts[n++] = (count_t) { v, i, negated };
        s_use(c, s_is_in(c, i - 1, LIST("x", "qty", "quantity", "amount")) ? i - 1 : i, end);
        i = end;
    }
    int pick = -1;
    for (int k = 0; k < n; k++)
        if (!counts[k].negated && (pick < 0 || change))
            pick = k;
    if (pick >= 0)
        c->out->quantity = counts[pick].value;
}

/* ---- yes / no, cancellations, changes of mind, refinements ------------- */

static const char *const s_yes_words[] = {
    "yes", "yess", "yesss", "yas", "yeah", "yea", "yeh", "yep", "yup", "ya", "yah", "yh", "y", "sure",
    "ok", "okay", "okk", "oki", "okie", "k", "kk", "alright", "aight", "confirm", "confirmed",
    "correct", "absolutely", "definitely", "agreed", "agree", "approve", "approved", "accept",
    "accepted", "proceed", "perfect", "si", "sí", "oui", "ja", "haan", "han", "sim", "bet", "fine",
    "👍", "✅", "👌", "✔", NULL
};
static const char *const s_no_words[] = {
    "no", "nope", "nah", "nay", "n", "cancel", "nvm", "nevermind", "stop", "dont", "nein", "non",
    "nahi", "na", "❌", "👎", "✖", NULL
};
static const char *const s_yes_phrases[] = {
    "go ahead", "do it", "sounds good", "of course", "please do", "thats right", "thats correct",
    "i confirm", "i agree", "lets do it", "place it", "order it", NULL
};
static const char *const s_no_phrases[] = {
    "never mind", "not now", "no thanks", "no thank you", "forget it", "forget about it", NULL
};
static const char *const s_order_words[] = {
    "order", "orders", "ordr", "purchase", "shipment", "delivery", NULL
};

static int s_first_word(const ctx_t *c)
{
    int i = 0;
    while (i < c->n && (s_is_in(c, i, LIST("hi", "hey", "hello", "oh", "um", "umm", "hmm", "well", "so"))
                        || s_is_punct(c, i)))
        i++;
    return i;
}

/* Whether phrases occur among the free tokens; marks every occurrence used. */
static bool s_anywhere(ctx_t *c, const char *const *phrases)
{
    bool found = false;
    for (int i = 0; i < c->n; i++) {
        int k = s_phrase(c, i, phrases);
        if (k) {
            s_use(c, i, i + k - 1);
            found = true;
        }
    }
    return found;
}

static void s_read_cancel(ctx_t *c)
{
    for (int i = 0; i < c->n; i++) {
        if (!s_is_in(c, i, s_cancel_verbs))
            continue;
        s_use(c, i, i);
        for (int k = i + 1; k < c->n && k <= i + 4; k++)
            if (s_is_in(c, k, s_order_words))
                c->out->cancel_order = true;
        if (c->out->order_id[0] || s_is(c, i, "cancellation"))
            c->out->cancel_order = true;
    }
}

static void s_read_confirm(ctx_t *c)
{
    int i = s_first_word(c);
    nlu_slots_t *o = c->out;
    bool no_phrase = s_anywhere(c, s_no_phrases), yes_phrase = s_anywhere(c, s_yes_phrases);
    bool no = no_phrase || (s_is_in(c, i, s_no_words) && !o->cancel_order);
    bool yes = !no && (yes_phrase || s_is_in(c, i, s_yes_words));
    if (s_is_in(c, i, s_no_words) || s_is_in(c, i, s_yes_words))
        s_use(c, i, i);
    if (no && (o->quantity || o->ref != NLU_REF_NONE))
        o->change = true;       /* "no, make it 2": a correction, not a refusal */
    else
        o->confirm = no ? NLU_CONFIRM_NO : yes ? NLU_CONFIRM_YES : NLU_CONFIRM_NONE;
}

static bool s_change_marked(ctx_t *c)
{
    static const char *const markers[] = {
        "make it", "make that", "scratch that", "on second thought", "change it", "change to",
        "change the", "actually", "instead", "rather", "wait", "meant", "oops", "correction",
        "switch", "swap", "update", NULL
    };
    return s_anywhere(c, markers);
}

static void s_read_refine(ctx_t *c)
{
    static const char *const cheaper[] = {
        "less expensive", "lower priced", "lower price", "more affordable", "too expensive",
        "too pricey", "too much", "cheaper", "cheapest", "cheap", "affordable", "budget",
        "inexpensive", NULL
    };
    static const char *const pricier[] = {
        "more expensive", "most expensive", "higher end", "high end", "more premium", "better quality",
        "best quality", "more luxurious", "pricier", "priciest", "premium", "luxury", "fancier", NULL
    };
    for (int i = 0; i < c->n && c->out->refine == NLU_REFINE_NONE; i++) {
        int k = s_phrase(c, i, cheaper), d = k ? 0 : s_phrase(c, i, pricier);
        if (!k && !d)
            continue;
        c->out->refine = k ? NLU_REFINE_CHEAPER : NLU_REFINE_PRICIER;
        s_use(c, i, i + k + d - 1 + s_is(c, i + k + d, "than") + s_is(c, i + k + d, "ones"));
    }
}

/* ---- the product query -------------------------------------------------- */

/* Request words, politeness and pronouns: never part of a product. */
static const char *const s_filler[] = {
    "hi", "hello", "hey", "heyy", "heyyy", "hii", "hiii", "helo", "hallo", "yo", "hola", "bonjour",
    "salaam", "salam", "namaste", "sup", "please", "pls", "plz", "plse", "plss", "kindly", "thanks",
    "thank", "thx", "ty", "tysm", "cheers", "bro", "sis", "dude", "mate", "habibi", "bhai", "yaar",
    "sir", "madam", "can", "could", "would", "will", "should", "may", "might", "i", "im", "ive", "id",
    "ill", "me", "my", "mine", "we", "us", "our", "you", "u", "ya", "ur", "your", "youre", "show",
    "find", "search", "searching", "looking", "look", "see", "view", "check", "browse", "get", "got",
    "give", "gimme", "send", "bring", "want", "wanna", "need", "like", "love", "lemme", "let", "lets",
    "buy", "buying", "purchase", "order", "ordering", "add", "take", "grab", "have", "has", "hv",
    "hav", "do", "does", "did", "dont", "is", "are", "am", "be", "was", "were", "r", "there", "any",
    "anything", "something", "some", "stuff", "things", "thing", "available", "availability",
    "stock", "sell", "selling", "carry", "recommend", "suggest", "suggestions", "options", "ideas",
    "also", "too", "just", "only", "really", "very", "so", "maybe", "that", "this", "these",
    "those", "it", "them", "one", "ones", "what", "whats", "wat", "which", "where", "when", "how",
    "hw", "much", "many", "yes", "yeah", "yep", "ok", "okay", "sure", "cart", "basket", "price",
    "prices", "cost", "costs", "more", "other", "others", "else", "similar", "now", "today", "asap",
    "a", "an", "the", "tell", "about", "info", "details", "gonna", "status", "update",
    "track", "tracking", "said", "confirm", "confirmed", NULL
};
/* Joining words: kept inside a query ("shoes for running"), not at its ends. */
static const char *const s_edge_filler[] = {
    "for", "with", "of", "in", "on", "at", "to", "from", "by", "and", "or", "&", "as", "well",
    "new", "good", "nice", "kind", "sort", "type", "then", "again", "here", "not", "no", NULL
};

static bool s_query_word(const ctx_t *c, int i)
{
    const tok_t *t = &c->t[i];
    return !t->used && (t->kind == T_WORD || t->kind == T_NUM || s_is(c, i, "&")) && !s_in(t->s, s_filler);
}

static void s_build_query(ctx_t *c)
{
    int keep[TOKS_MAX], n = 0;
    for (int i = 0; i < c->n; i++)
        if (s_query_word(c, i))
            keep[n++] = i;
    int from = 0, to = n - 1;
    while (from <= to && s_in(c->t[keep[from]].s, s_edge_filler))
        from++;
    while (to >= from && s_in(c->t[keep[to]].s, s_edge_filler))
        to--;
    char *q = c->out->query;
    size_t len = 0;
    for (int k = from; k <= to; k++) {
        const char *w = c->t[keep[k]].s;
        size_t wl = strlen(w);
        if (len + (len > 0) + wl >= NLU_QUERY_MAX)
            break;
        if (len)
            q[len++] = ' ';
        memcpy(q + len, w, wl);
        len += wl;
    }
    q[len] = '\0';
}

/* ---- the whole ---------------------------------------------------------- */

int nlu_extract_slots(const char *text, nlu_slots_t *out)
{
    ctx_t ctx, *c = &ctx;
    if (!text || !out)
        return SOUK_EINVAL;
    memset(out, 0, sizeof *out);
    c->out = out;
    s_tokenize(c, text);
    s_read_order_id(c);
    s_read_prices(c);
    s_read_refs(c);
    s_read_budget(c);
    bool change = s_change_marked(c);
    s_read_quantity(c, change);
    out->change = change && (out->quantity || out->ref != NLU_REF_NONE);
    s_read_cancel(c);
    s_read_confirm(c);
    s_read_refine(c);
    s_build_query(c);
    return SOUK_OK;
}

const char *nlu_ref_name(nlu_ref_t ref)
{
    static const char *const names[] = {
        "none", "index", "that", "last", "cheapest", "priciest", "described"
    };
    return (unsigned) ref < sizeof names / sizeof names[0] ? names[ref] : "unknown";
}

const char *nlu_confirm_name(nlu_confirm_t confirm)
{
    static const char *const names[] = { "none", "yes", "no" };
    return (unsigned) confirm < sizeof names / sizeof names[0] ? names[confirm] : "unknown";
}

const char *nlu_refine_name(nlu_refine_t refine)
{
    static const char *const names[] = { "none", "cheaper", "pricier" };
    return (unsigned) refine < sizeof names / sizeof names[0] ? names[refine] : "unknown";
}
