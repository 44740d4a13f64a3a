/* catalog: product files (CSV, JSON array, JSON lines) -> store rows.
 *
 * Every record, whatever its format, becomes a JSON object first (a CSV
 * record: header name -> cell text), and one function, s_add_record, turns
 * an object into a validated row or into one problem line listing all that
 * is wrong with it. The readers only find records and their first lines. */
#include "souk/catalog.h"
#include "souk/error.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROGRESS_EVERY 2048         /* records between progress calls */
#define WHY_MAX 1024
#define QUOTE_MAX 40                /* characters of a value quoted in a reason */

/* ---- the known fields ------------------------------------------------------ */

#define CATALOG_FIELD_MAP(XX)                                                \
    XX(SKU, "sku") XX(NAME, "name") XX(DESCRIPTION, "description")           \
    XX(PRICE, "price") XX(CURRENCY, "currency") XX(CATEGORY, "category")     \
    XX(STOCK, "stock") XX(IMAGE_URL, "image_url") XX(BRAND, "brand")         \
    XX(TAGS, "tags")

typedef enum {
#define XX(name, text) F_##name,
    CATALOG_FIELD_MAP(XX)
#undef XX
    F_COUNT,
    F_ATTR = F_COUNT            /* any other key */
} field_t;

static const char *const s_field_names[] = {
#define XX(name, text) text,
    CATALOG_FIELD_MAP(XX)
#undef XX
};

static field_t s_field_of(const char *key)
{
    for (int f = 0; f < F_COUNT; f++)
        if (strcasecmp(key, s_field_names[f]) == 0)
            return (field_t)f;
    return F_ATTR;
}

static const char *const s_format_names[] = {
#define XX(name, text) text,
    CATALOG_FORMAT_MAP(XX)
#undef XX
};

const char *catalog_format_name(catalog_format_t f)
{
    return (unsigned)f < sizeof s_format_names / sizeof s_format_names[0] ? s_format_names[f] : "?";
}

int catalog_format_parse(const char *name, catalog_format_t *f)
{
    for (size_t i = 0; name && i < sizeof s_format_names / sizeof s_format_names[0]; i++)
        if (strcasecmp(name, s_format_names[i]) == 0) {
            *f = (catalog_format_t)i;
            return SOUK_OK;
        }
    return SOUK_EINVAL;
}

/* ---- the private part: SKU index, capacities ------------------------------ */

typedef struct {
    const char *sku;            /* a row's, or one of kept[] */
    size_t line;
    ssize_t row;                /* -1: a rejected record */
} slot_t;

struct catalog_priv_s {
    slot_t *slots;
    size_t cap, n;              /* cap: a power of two */
    char **kept;                /* SKUs of rejected records */
    size_t n_kept, cap_kept;
    size_t cap_rows, cap_lines, cap_problems;
    int64_t now_ms;
};

static uint64_t s_hash(const char *s)
{
    uint64_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static slot_t *s_slot(const catalog_priv_t *ix, const char *sku)
{
    if (!ix->cap)
        return NULL;
    size_t i = s_hash(sku) & (ix->cap - 1);
    while (ix->slots[i].sku && strcmp(ix->slots[i].sku, sku) != 0)
        i = (i + 1) & (ix->cap - 1);
    return &ix->slots[i];
}

static int s_index_grow(catalog_priv_t *ix)
{
    size_t cap = ix->cap ? ix->cap * 2 : 1024;
    slot_t *old = ix->slots;
    size_t old_cap = ix->cap;
    ix->slots = calloc(cap, sizeof *ix->slots);
    if (!ix->slots) {
        ix->slots = old;
        return SOUK_ENOMEM;
    }
    ix->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].sku)
            *s_slot(ix, old[i].sku) = old[i];
    free(old);
    return SOUK_OK;
}

/* Records sku, which is not there yet, at line. */
static int s_index_add(catalog_priv_t *ix, const char *sku, size_t line, ssize_t row)
{
    if ((ix->n + 1) * 10 > ix->cap * 7 && s_index_grow(ix) != SOUK_OK)
        return SOUK_ENOMEM;
    *s_slot(ix, sku) = (slot_t) { .sku = sku, .line = line, .row = row };
    ix->n++;
    return SOUK_OK;
}

static int s_grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return SOUK_OK;
    size_t n = *cap ? *cap * 2 : 256;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * size);
    if (!q)
        return SOUK_ENOMEM;
    *p = q;
    *cap = n;
    return SOUK_OK;
}

ssize_t catalog_find(const catalog_t *self, const char *sku)
{
    if (!self || !sku)
        return -1;
    const slot_t *s = s_slot(self->priv, sku);
    return s && s->sku ? s->row : -1;
}

/* ---- problems --------------------------------------------------------------- */

static int s_vproblem(catalog_t *cat, size_t line, const char *fmt, va_list ap)
{
    catalog_priv_t *pv = cat->priv;
    if (s_grow((void **)&cat->problems, &pv->cap_problems, cat->n_problems + 1,
               sizeof *cat->problems) != SOUK_OK)
        return SOUK_ENOMEM;
    char *reason = NULL;
    if (vasprintf(&reason, fmt, ap) < 0)
        return SOUK_ENOMEM;
    cat->problems[cat->n_problems++] = (catalog_problem_t) { .line = line, .reason = reason };
    return SOUK_OK;
}

/* Records a problem of the file: SOUK_OK, or SOUK_ENOMEM. */
static int s_problem(catalog_t *cat, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_problem(catalog_t *cat, size_t line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = s_vproblem(cat, line, fmt, ap);
    va_end(ap);
    return rc;
}

/* Records a rejected record: SOUK_EPROTO, or SOUK_ENOMEM. */
static int s_reject(catalog_t *cat, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_reject(catalog_t *cat, size_t line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cat->records++;
    int rc = s_vproblem(cat, line, fmt, ap);
    va_end(ap);
    return rc == SOUK_OK ? SOUK_EPROTO : rc;
}

/* The reasons of one record, joined by "; ". */
typedef struct {
    char text[WHY_MAX];
    size_t len;
} why_t;

static void s_why(why_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_why(why_t *w, const char *fmt, ...)
{
    if (w->len + 8 >= sizeof w->text)
        return;
    if (w->len)
        w->len += (size_t)snprintf(w->text + w->len, sizeof w->text - w->len, "; ");
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->text + w->len, sizeof w->text - w->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        w->len = w->len + (size_t)n < sizeof w->text ? w->len + (size_t)n : sizeof w->text - 1;
}

/* A value as it may be quoted in a reason: at most QUOTE_MAX characters,
 * control characters shown as spaces. */
static const char *s_quoted(const char *s, char *buf, size_t len)
{
    size_t i = 0, chars = 0;
    for (; *s && i + 4 < len && chars < QUOTE_MAX; s++, i++) {
        buf[i] = (unsigned char)*s < 0x20 ? ' ' : *s;
        if (((unsigned char)*s & 0xc0) != 0x80)
            chars++;
    }
    while (((unsigned char)*s & 0xc0) == 0x80 && i + 4 < len)
        buf[i++] = *s++;
    if (*s && i + 4 <= len) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

/* ---- values ---------------------------------------------------------------- */

static bool s_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* A trimmed copy of s[0..n); NULL (and *empty) when nothing is left. */
static char *s_trimmed(const char *s, size_t n, bool *empty)
{
    while (n && s_space(*s))
        s++, n--;
    while (n && s_space(s[n - 1]))
        n--;
    *empty = n == 0;
    return n ? strndup(s, n) : NULL;
}

static bool s_has_control(const char *s, bool allow_breaks)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 || c == 0x7f) && !(allow_breaks && (c == '\n' || c == '\t' || c == '\r')))
            return true;
    }
    return false;
}

/* The text of a scalar: a string trimmed, a number or boolean as written.
 * SOUK_OK with *out (NULL when empty or null), SOUK_EINVAL for an object or
 * an array, SOUK_ENOMEM. */
static int s_scalar_text(json_t *v, char **out)
{
    bool empty;
    char buf[64];
    *out = NULL;
    switch (json_typeof(v)) {
    case JSON_STRING:
        *out = s_trimmed(json_string_value(v), json_string_length(v), &empty);
        return *out || empty ? SOUK_OK : SOUK_ENOMEM;
    case JSON_INTEGER:
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        snprintf(buf, sizeof buf, "%.15g", json_real_value(v));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        snprintf(buf, sizeof buf, "%s", json_is_true(v) ? "true" : "false");
        break;
    case JSON_NULL:
        return SOUK_OK;
    default:
        return SOUK_EINVAL;
    }
    *out = strdup(buf);
    return *out ? SOUK_OK : SOUK_ENOMEM;
}

enum { TEXT_REQUIRED = 1, TEXT_BREAKS = 2 };

/* A text field: NULL when absent or bad; reasons go to w. */
static char *s_text_field(json_t *v, const char *name, size_t max, int flags, why_t *w, int *rc)
{
    char *t = NULL;
    int r = v ? s_scalar_text(v, &t) : SOUK_OK;
    if (r == SOUK_ENOMEM) {
        *rc = r;
        return NULL;
    }
    if (r != SOUK_OK) {
        s_why(w, "%s: not text", name);
        return NULL;
    }
    if (t && !(flags & TEXT_BREAKS))
        for (char *c = t; *c; c++)
            if (*c == '\n' || *c == '\r' || *c == '\t')
                *c = ' ';
    if (!t && (flags & TEXT_REQUIRED)) {
        s_why(w, "%s: missing", name);
    } else if (t && strlen(t) > max) {
        s_why(w, "%s: longer than %zu bytes", name, max);
    } else if (t && s_has_control(t, flags & TEXT_BREAKS)) {
        s_why(w, "%s: contains a control character", name);
    } else {
        return t;
    }
    free(t);
    return NULL;
}

int catalog_parse_price(const char *text, int64_t *cents, char *why, size_t whylen)
{
    char q[QUOTE_MAX * 4 + 8];
    const char *s = text ? text : "";
    while (s_space(*s))
        s++;
    size_t n = strlen(s);
    while (n && s_space(s[n - 1]))
        n--;
    if (n == 0) {
        snprintf(why, whylen, "missing");
        return SOUK_EINVAL;
    }
    bool negative = s[0] == '-', large = false;
    const char *p = s + negative, *end = s + n;
    int64_t units = 0, frac = 0;
    size_t digits = 0, group = 0, commas = 0, decimals = 0;
    for (; p < end; p++) {          /* the whole part, maybe with thousands commas */
        if (isdigit((unsigned char)*p)) {
            large = large || units > CATALOG_PRICE_MAX_CENTS;
            units = large ? units : units * 10 + (*p - '0');
            digits++, group++;
        } else if (*p == ',' && digits && (!commas || group == 3)) {
            commas++, group = 0;
        } else {
            break;
        }
    }
    bool ok = digits > 0;
    if (commas == 1 && group >= 1 && group <= 2 && p == end) {
        decimals = group;           /* "9,99": a decimal comma after all */
        frac = units % (group == 1 ? 10 : 100);
        units /= group == 1 ? 10 : 100;
    } else if (commas && group != 3) {
        ok = false;                 /* "1,2,3", "12," */
    } else if (p < end && *p == '.') {
        for (p++; p < end && isdigit((unsigned char)*p); p++, ok = true)
            if (decimals < 2)
                frac = frac * 10 + (*p - '0'), decimals++;
            else if (*p != '0')
                decimals = 3;       /* "9.990" is fine, "9.999" is not */
    }
    if (!ok || p != end) {
        snprintf(why, whylen, "not a number ('%s')", s_quoted(s, q, sizeof q));
        return SOUK_EINVAL;
    }
    if (decimals > 2) {
        snprintf(why, whylen, "more than two decimals ('%s')", s_quoted(s, q, sizeof q));
        return SOUK_EINVAL;
    }
    if (large || units > CATALOG_PRICE_MAX_CENTS / 100) {
        snprintf(why, whylen, "too large ('%s')", s_quoted(s, q, sizeof q));
        return SOUK_EINVAL;
    }
    int64_t c = units * 100 + (decimals == 1 ? frac * 10 : frac);
    if (negative && c > 0) {
        snprintf(why, whylen, "negative ('%s')", s_quoted(s, q, sizeof q));
        return SOUK_EINVAL;
    }
    *cents = c;
    return SOUK_OK;
}

static void s_price_field(json_t *v, int64_t *cents, why_t *w)
{
    char r[256];
    if (!v || json_is_null(v)) {
        s_why(w, "price: missing");
    } else if (json_is_string(v)) {
        if (catalog_parse_price(json_string_value(v), cents, r, sizeof r) != SOUK_OK)
            s_why(w, "price: %s", r);
    } else if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < 0)
            s_why(w, "price: negative (%" JSON_INTEGER_FORMAT ")", x);
        else if (x > CATALOG_PRICE_MAX_CENTS / 100)
            s_why(w, "price: too large (%" JSON_INTEGER_FORMAT ")", x);
        else
            *cents = x * 100;
    } else if (json_is_real(v)) {
        double x = json_real_value(v), c = x * 100.0, whole = round(c);
        if (!isfinite(x))
            s_why(w, "price: not a number");
        else if (x < 0)
            s_why(w, "price: negative (%g)", x);
        else if (c > (double)CATALOG_PRICE_MAX_CENTS)
            s_why(w, "price: too large (%g)", x);
        else if (fabs(c - whole) > 1e-6 * fmax(1.0, c))
            s_why(w, "price: more than two decimals (%.15g)", x);
        else
            *cents = (int64_t)whole;
    } else {
        s_why(w, "price: not a number");
    }
}

static void s_currency_field(json_t *v, char **out, why_t *w, int *rc)
{
    char *t = s_text_field(v, "currency", 16, 0, w, rc);
    char q[QUOTE_MAX * 4 + 8];
    if (!t) {
        *out = strdup("USD");
        if (!*out)
            *rc = SOUK_ENOMEM;
        return;
    }
    bool ok = strlen(t) == 3;
    for (int i = 0; ok && i < 3; i++) {
        ok = isalpha((unsigned char)t[i]) && !((unsigned char)t[i] & 0x80);
        t[i] = (char)toupper((unsigned char)t[i]);
    }
    if (ok) {
        *out = t;
        return;
    }
    s_why(w, "currency: not a three-letter code ('%s')", s_quoted(t, q, sizeof q));
    free(t);
}

/* "12", "12.0": a whole number of items. */
static void s_stock_field(json_t *v, int64_t *stock, why_t *w, int *rc)
{
    char q[QUOTE_MAX * 4 + 8];
    *stock = 0;
    if (!v || json_is_null(v))
        return;
    if (json_is_integer(v) || json_is_real(v)) {
        double x = json_number_value(v);
        if (json_is_integer(v) && json_integer_value(v) >= 0
            && json_integer_value(v) <= CATALOG_STOCK_MAX)
            *stock = json_integer_value(v);
        else if (x < 0)
            s_why(w, "stock: negative (%.15g)", x);
        else if (!isfinite(x) || x != floor(x))
            s_why(w, "stock: not a whole number (%.15g)", x);
        else if (x > (double)CATALOG_STOCK_MAX)
            s_why(w, "stock: too large (%.15g)", x);
        else
            *stock = (int64_t)x;
        return;
    }
    char *t = s_text_field(v, "stock", 64, 0, w, rc);
    if (!t)
        return;
    const char *p = t;
    int64_t n = 0;
    bool digits = false, large = false;
    if (*p == '+')
        p++;
    for (; isdigit((unsigned char)*p); p++, digits = true) {
        n = n * 10 + (*p - '0');
        large = large || n > CATALOG_STOCK_MAX;
        if (large)
            n = CATALOG_STOCK_MAX;
    }
    if (*p == '.')
        for (p++; *p == '0'; p++)
            ;
    if (t[0] == '-' && (t[1] == '.' || isdigit((unsigned char)t[1])))
        s_why(w, "stock: negative ('%s')", s_quoted(t, q, sizeof q));
    else if (*p || !digits)
        s_why(w, "stock: not a whole number ('%s')", s_quoted(t, q, sizeof q));
    else if (large)
        s_why(w, "stock: too large ('%s')", s_quoted(t, q, sizeof q));
    else
        *stock = n;
    free(t);
}

static void s_url_field(json_t *v, char **out, why_t *w, int *rc)
{
    char q[QUOTE_MAX * 4 + 8];
    *out = s_text_field(v, "image_url", 2048, 0, w, rc);
    if (!*out)
        return;
    bool ok = strncasecmp(*out, "http://", 7) == 0 || strncasecmp(*out, "https://", 8) == 0;
    for (const char *p = *out; ok && *p; p++)
        ok = !s_space(*p);
    if (!ok) {
        s_why(w, "image_url: not an http(s) URL ('%s')", s_quoted(*out, q, sizeof q));
        free(*out);
        *out = NULL;
    }
}

/* Adds one tag (trimmed; empty ones skipped) to the array. */
static int s_tag_add(json_t *tags, const char *s, size_t n)
{
    bool empty;
    char *t = s_trimmed(s, n, &empty);
    if (!t)
        return empty ? SOUK_OK : SOUK_ENOMEM;
    json_t *j = json_string(t);
    free(t);
    return j && json_array_append_new(tags, j) == 0 ? SOUK_OK : SOUK_ENOMEM;
}

/* The words of a JSON array; *bad when an element is not a word. */
static int s_tags_from_array(json_t *arr, json_t *tags, bool *bad)
{
    size_t i;
    json_t *e;
    int rc = SOUK_OK;
    json_array_foreach(arr, i, e) {
        char *t = NULL;
        if (json_is_null(e) || s_scalar_text(e, &t) != SOUK_OK)
            *bad = true;
        else if (t && rc == SOUK_OK)
            rc = s_tag_add(tags, t, strlen(t));
        free(t);
    }
    return rc;
}

/* A text "a;b", "a|b" or "a,b" (the first of those separators present
 * wins), or the text of a JSON array. */
static int s_tags_split(const char *s, json_t *tags, bool *bad)
{
    while (s_space(*s))
        s++;
    json_t *arr = *s == '[' ? json_loads(s, 0, NULL) : NULL;
    if (json_is_array(arr)) {
        int rc = s_tags_from_array(arr, tags, bad);
        json_decref(arr);
        return rc;
    }
    json_decref(arr);
    char sep = strchr(s, ';') ? ';' : strchr(s, '|') ? '|' : ',';
    for (const char *p = s;; p++) {
        const char *e = strchr(p, sep);
        if (s_tag_add(tags, p, e ? (size_t)(e - p) : strlen(p)) != SOUK_OK)
            return SOUK_ENOMEM;
        if (!e)
            return SOUK_OK;
        p = e;
    }
}

static void s_tags_field(json_t *v, char **out, why_t *w, int *rc)
{
    *out = NULL;
    if (!v || json_is_null(v))
        return;
    json_t *tags = json_array();
    bool bad = !json_is_string(v) && !json_is_array(v);
    if (!tags) {
        *rc = SOUK_ENOMEM;
        return;
    }
    if (json_is_string(v))
        *rc = s_tags_split(json_string_value(v), tags, &bad);
    else if (json_is_array(v))
        *rc = s_tags_from_array(v, tags, &bad);
    if (bad)
        s_why(w, "tags: not a list of words (a JSON array of strings, or \"a;b;c\")");
    else if (*rc == SOUK_OK && json_array_size(tags) && !(*out = json_dumps(tags, JSON_COMPACT)))
        *rc = SOUK_ENOMEM;
    json_decref(tags);
}

/* A free attribute's value as text; NULL for an empty one. */
static int s_attr_value(json_t *v, char **out)
{
    if (json_is_object(v) || json_is_array(v)) {
        bool empty = json_is_object(v) ? json_object_size(v) == 0 : json_array_size(v) == 0;
        *out = empty ? NULL : json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(15));
        return empty || *out ? SOUK_OK : SOUK_ENOMEM;
    }
    return s_scalar_text(v, out);
}

static void s_attrs_add(json_t *attrs, const char *key, json_t *v, why_t *w, int *rc)
{
    char q[QUOTE_MAX * 4 + 8];
    bool empty;
    char *k = s_trimmed(key, strlen(key), &empty), *t = NULL;
    if (!k && !empty) {
        *rc = SOUK_ENOMEM;
        return;
    }
    if (!k) {
        s_why(w, "an attribute has no name");
    } else if (strlen(k) > 100 || s_has_control(k, false)) {
        s_why(w, "attribute name '%s': longer than 100 bytes or with control characters",
              s_quoted(k, q, sizeof q));
    } else if ((*rc = s_attr_value(v, &t)) != SOUK_OK) {
        /* out of memory */
    } else if (t && strlen(t) > CATALOG_TEXT_MAX) {
        s_why(w, "%s: longer than %d bytes", k, CATALOG_TEXT_MAX);
    } else if (t && json_object_get(attrs, k)) {
        s_why(w, "'%s' given twice", k);
    } else if (t && json_object_set_new(attrs, k, json_string(t)) != 0) {
        *rc = SOUK_ENOMEM;
    }
    free(t);
    free(k);
}

/* ---- records -> rows ---------------------------------------------------------- */

static void s_fields(json_t *obj, json_t *f[F_COUNT], json_t *attrs, why_t *w, int *rc)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        field_t k = s_field_of(key);
        if (k == F_ATTR)
            s_attrs_add(attrs, key, v, w, rc);
        else if (f[k])
            s_why(w, "'%s' given twice", s_field_names[k]);
        else
            f[k] = v;
    }
}

/* Appends a valid row; takes *p in any case (cleared on SOUK_ENOMEM). */
static int s_push_row(catalog_t *cat, store_product_t *p, size_t line)
{
    catalog_priv_t *pv = cat->priv;
    if (s_grow((void **)&cat->rows, &pv->cap_rows, cat->n_rows + 1, sizeof *cat->rows) != SOUK_OK
        || s_grow((void **)&cat->lines, &pv->cap_lines, cat->n_rows + 1, sizeof *cat->lines)
               != SOUK_OK) {
        store_product_clear(p);
        return SOUK_ENOMEM;
    }
    cat->lines[cat->n_rows] = line;
    cat->rows[cat->n_rows] = *p;
    cat->rows[cat->n_rows].updated_ms = pv->now_ms;
    return s_index_add(pv, p->sku, line, (ssize_t)cat->n_rows++);
}

/* Keeps the SKU of a rejected record (taking *sku) so that a later
 * duplicate still names its line. */
static int s_keep_sku(catalog_t *cat, char **sku, size_t line)
{
    catalog_priv_t *pv = cat->priv;
    if (s_grow((void **)&pv->kept, &pv->cap_kept, pv->n_kept + 1, sizeof *pv->kept) != SOUK_OK)
        return SOUK_ENOMEM;
    pv->kept[pv->n_kept++] = *sku;
    *sku = NULL;
    return s_index_add(pv, pv->kept[pv->n_kept - 1], line, -1);
}

/* Validates one record into a row, or adds a problem for its line. */
static int s_add_record(catalog_t *cat, json_t *obj, size_t line)
{
    catalog_priv_t *pv = cat->priv;
    json_t *f[F_COUNT] = { 0 };
    json_t *attrs = json_object();
    why_t w = { .len = 0 };
    int rc = attrs ? SOUK_OK : SOUK_ENOMEM;
    store_product_t p = { .updated_ms = 0 };
    cat->records++;
    s_fields(obj, f, attrs, &w, &rc);
    p.sku = s_text_field(f[F_SKU], "sku", CATALOG_SKU_MAX, TEXT_REQUIRED, &w, &rc);
    p.name = s_text_field(f[F_NAME], "name", CATALOG_NAME_MAX, TEXT_REQUIRED, &w, &rc);
    p.description = s_text_field(f[F_DESCRIPTION], "description", CATALOG_TEXT_MAX, TEXT_BREAKS,
                                 &w, &rc);
    s_price_field(f[F_PRICE], &p.price_cents, &w);
    s_currency_field(f[F_CURRENCY], &p.currency, &w, &rc);
    p.category = s_text_field(f[F_CATEGORY], "category", CATALOG_NAME_MAX, 0, &w, &rc);
    s_stock_field(f[F_STOCK], &p.stock, &w, &rc);
    s_url_field(f[F_IMAGE_URL], &p.image_url, &w, &rc);
    p.brand = s_text_field(f[F_BRAND], "brand", CATALOG_NAME_MAX, 0, &w, &rc);
    s_tags_field(f[F_TAGS], &p.tags, &w, &rc);
    if (rc == SOUK_OK && json_object_size(attrs) && !(p.attrs = json_dumps(attrs, JSON_COMPACT)))
        rc = SOUK_ENOMEM;
    json_decref(attrs);

    const slot_t *seen = rc == SOUK_OK && p.sku ? s_slot(pv, p.sku) : NULL;
    if (seen && seen->sku) {
        char q[QUOTE_MAX * 4 + 8];
        s_why(&w, "sku '%s' is also on line %zu", s_quoted(p.sku, q, sizeof q), seen->line);
    } else if (rc == SOUK_OK && p.sku && !w.len) {
        return s_push_row(cat, &p, line);
    } else if (rc == SOUK_OK && p.sku) {
        rc = s_keep_sku(cat, &p.sku, line);
    }
    store_product_clear(&p);
    return rc == SOUK_OK ? s_problem(cat, line, "%s", w.text) : rc;
}

/* ---- reading ----------------------------------------------------------------- */

typedef struct {
    catalog_t *cat;
    const catalog_options_t *opt;
    const char *data, *p, *end;
    size_t line;                /* of p */
} reader_t;

static void s_progress(reader_t *r)
{
    if (r->opt->progress && r->cat->records % PROGRESS_EVERY == 0)
        r->opt->progress(r->opt->progress_arg, (size_t)(r->p - r->data),
                         (size_t)(r->end - r->data), r->cat->records);
}

/* Moves p over n bytes, counting line breaks. */
static void s_advance(reader_t *r, size_t n)
{
    const char *stop = r->p + n;
    for (const char *q = r->p; (q = memchr(q, '\n', (size_t)(stop - q))); q++)
        r->line++;
    r->p = stop;
}

static void s_skip_space(reader_t *r)
{
    while (r->p < r->end && s_space(*r->p)) {
        if (*r->p == '\n')
            r->line++;
        r->p++;
    }
}

/* -- JSON lines: one object a line; a bad line spoils only itself. */
static int s_read_jsonl(reader_t *r)
{
    int rc = SOUK_OK;
    while (rc == SOUK_OK && r->p < r->end) {
        const char *nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
        const char *stop = nl ? nl : r->end;
        size_t n = (size_t)(stop - r->p);
        bool blank = true;
        for (size_t i = 0; i < n && blank; i++)
            blank = s_space(r->p[i]);
        if (!blank) {
            json_error_t e;
            json_t *v = json_loadb(r->p, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
            if (!v)
                rc = s_reject(r->cat, r->line, "JSON: %s", e.text);
            else if (!json_is_object(v))
                rc = s_reject(r->cat, r->line, "not a JSON object");
            else
                rc = s_add_record(r->cat, v, r->line);
            rc = rc == SOUK_EPROTO ? SOUK_OK : rc;
            json_decref(v);
            s_progress(r);
        }
        r->p = nl ? nl + 1 : r->end;
        r->line++;
    }
    return rc;
}

/* -- a JSON array: each element parsed on its own, to know its line. A
 * syntax error ends the reading (nothing after it can be trusted). */
static int s_read_json(reader_t *r)
{
    s_skip_space(r);
    if (r->p == r->end || *r->p != '[')
        return s_problem(r->cat, r->line, "JSON: expected an array of products");
    r->p++;
    int rc = SOUK_OK;
    for (bool first = true; rc == SOUK_OK; first = false) {
        s_skip_space(r);
        if (r->p < r->end && *r->p == ']' && first) {
            r->p++;
            break;
        }
        size_t line = r->line;
        json_error_t e;
        json_t *v = json_loadb(r->p, (size_t)(r->end - r->p),
                               JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
        if (!v)
            return s_problem(r->cat, line + (size_t)(e.line > 0 ? e.line - 1 : 0), "JSON: %s",
                             e.text);
        s_advance(r, (size_t)e.position);
        rc = json_is_object(v) ? s_add_record(r->cat, v, line)
                               : s_reject(r->cat, line, "not a JSON object");
        rc = rc == SOUK_EPROTO ? SOUK_OK : rc;
        json_decref(v);
        s_progress(r);
        s_skip_space(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
        } else if (r->p < r->end && *r->p == ']') {
            r->p++;
            break;
        } else if (rc == SOUK_OK) {
            return s_problem(r->cat, r->line, "JSON: expected ',' or ']' after a product");
        }
    }
    s_skip_space(r);
    if (rc == SOUK_OK && r->p < r->end)
        rc = s_problem(r->cat, r->line, "JSON: text after the closing ']'");
    return rc;
}

/* -- CSV (RFC 4180) ------------------------------------------------------------ */

typedef struct {
    reader_t *r;
    char sep;
    char *buf;                  /* the record's cells, unquoted, each NUL-terminated */
    size_t len, cap;
    size_t *cells;              /* offsets into buf */
    size_t *lens;
    size_t n, cap_cells, cap_lens;
    bool junk_after_quote;
} csv_t;

static int s_csv_put(csv_t *c, const char *s, size_t n)
{
    if (s_grow((void **)&c->buf, &c->cap, c->len + n + 1, 1) != SOUK_OK)
        return SOUK_ENOMEM;
    memcpy(c->buf + c->len, s, n);
    c->len += n;
    return SOUK_OK;
}

static int s_csv_end_cell(csv_t *c, size_t start)
{
    if (s_grow((void **)&c->cells, &c->cap_cells, c->n + 1, sizeof *c->cells) != SOUK_OK
        || s_grow((void **)&c->lens, &c->cap_lens, c->n + 1, sizeof *c->lens) != SOUK_OK
        || s_csv_put(c, "", 1) != SOUK_OK)
        return SOUK_ENOMEM;
    c->cells[c->n] = start;
    c->lens[c->n++] = c->len - 1 - start;
    return SOUK_OK;
}

/* A quoted cell's text after its opening quote; p ends past the closing one.
 * CRLF inside becomes LF. SOUK_EPROTO when the quote is never closed. */
static int s_csv_quoted(csv_t *c)
{
    reader_t *r = c->r;
    for (;;) {
        const char *q = r->p;
        while (q < r->end && *q != '"' && *q != '\r' && *q != '\n')
            q++;
        if (s_csv_put(c, r->p, (size_t)(q - r->p)) != SOUK_OK)
            return SOUK_ENOMEM;
        r->p = q;
        if (q == r->end)
            return SOUK_EPROTO;
        if (*q == '"' && q + 1 < r->end && q[1] == '"') {
            r->p += 2;
            if (s_csv_put(c, "\"", 1) != SOUK_OK)
                return SOUK_ENOMEM;
            continue;
        }
        if (*q == '"') {
            r->p++;
            return SOUK_OK;
        }
        r->p += *q == '\r' && q + 1 < r->end && q[1] == '\n' ? 2 : 1;
        r->line++;
        if (s_csv_put(c, "\n", 1) != SOUK_OK)
            return SOUK_ENOMEM;
    }
}

/* Reads one record into c. Returns 1, 0 at the end, SOUK_EPROTO for a
 * quote never closed, SOUK_ENOMEM. A blank line is a record of one empty
 * cell. */
static int s_csv_record(csv_t *c)
{
    reader_t *r = c->r;
    c->len = c->n = 0;
    c->junk_after_quote = false;
    if (r->p == r->end)
        return 0;
    for (;;) {
        size_t start = c->len;
        if (r->p < r->end && *r->p == '"') {
            r->p++;
            int rc = s_csv_quoted(c);
            if (rc != SOUK_OK)
                return rc;
        }
        const char *q = r->p;
        while (q < r->end && *q != c->sep && *q != '\r' && *q != '\n')
            q++;
        if (q > r->p && start != c->len)
            c->junk_after_quote = true;
        if (s_csv_put(c, r->p, (size_t)(q - r->p)) != SOUK_OK || s_csv_end_cell(c, start) != SOUK_OK)
            return SOUK_ENOMEM;
        r->p = q;
        if (q == r->end)
            return 1;
        r->p++;
        if (*q == c->sep)
            continue;
        if (*q == '\r' && r->p < r->end && *r->p == '\n')
            r->p++;
        r->line++;
        return 1;
    }
}

/* The separator the header line uses most: ',', ';' or tab. */
static char s_csv_separator(const char *p, const char *end)
{
    size_t comma = 0, semi = 0, tab = 0;
    bool quoted = false;
    for (; p < end && (quoted || (*p != '\n' && *p != '\r')); p++) {
        if (*p == '"')
            quoted = !quoted;
        else if (!quoted)
            comma += *p == ',', semi += *p == ';', tab += *p == '\t';
    }
    return semi > comma && semi >= tab ? ';' : tab > comma ? '\t' : ',';
}

static bool s_csv_blank(const csv_t *c)
{
    return c->n == 1 && c->lens[0] == 0;
}

static bool s_utf8_ok(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    json_decref(j);
    return j != NULL;
}

/* A file-level problem of the header: SOUK_EPROTO, or SOUK_ENOMEM. */
#define HEADER_PROBLEM(cat, ...) (s_problem((cat), 1, __VA_ARGS__) == SOUK_OK ? SOUK_EPROTO : SOUK_ENOMEM)

/* The header: trimmed names, none empty or repeated, sku, name and price
 * present. SOUK_EPROTO after recording the problems. */
static int s_csv_header(csv_t *c, char ***names)
{
    catalog_t *cat = c->r->cat;
    bool seen[F_COUNT] = { false };
    if (!(*names = calloc(c->n, sizeof **names)))
        return SOUK_ENOMEM;
    for (size_t i = 0; i < c->n; i++) {
        const char *cell = c->buf + c->cells[i];
        bool empty;
        char *name = s_trimmed(cell, c->lens[i], &empty);
        if (!name && !empty)
            return SOUK_ENOMEM;
        (*names)[i] = name;
        if (!name || strlen(cell) != c->lens[i] || !s_utf8_ok(cell, c->lens[i]))
            return HEADER_PROBLEM(cat, "column %zu of the header has no name", i + 1);
        for (size_t k = 0; k < i; k++)
            if (strcasecmp((*names)[k], name) == 0)
                return HEADER_PROBLEM(cat, "column '%s' appears twice in the header", name);
        if (s_field_of(name) != F_ATTR)
            seen[s_field_of(name)] = true;
    }
    static const field_t required[] = { F_SKU, F_NAME, F_PRICE };
    int rc = SOUK_OK;
    for (size_t i = 0; i < sizeof required / sizeof required[0] && rc != SOUK_ENOMEM; i++)
        if (!seen[required[i]])
            rc = HEADER_PROBLEM(cat, "the header has no '%s' column", s_field_names[required[i]]);
    return rc;
}

/* One record as an object of header name -> cell, or SOUK_EPROTO after
 * recording the record's problem. */
static int s_csv_object(csv_t *c, char **names, size_t n_names, size_t line, json_t **out)
{
    catalog_t *cat = c->r->cat;
    size_t n = c->n;
    while (n > n_names && c->lens[n - 1] == 0)
        n--;                    /* trailing empty cells, as some spreadsheets write */
    *out = NULL;
    if (n != n_names)
        return s_reject(cat, line, "%zu cells where the header has %zu%s", n, n_names,
                        n > n_names && c->sep == ',' ? " (a ',' inside a cell must be quoted)" : "");
    if (c->junk_after_quote)
        return s_reject(cat, line, "text after a closing quote (a '\"' inside a quoted cell is written '\"\"')");
    json_t *obj = json_object();
    if (!obj)
        return SOUK_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *cell = c->buf + c->cells[i];
        json_t *v = memchr(cell, '\0', c->lens[i]) ? NULL : json_stringn(cell, c->lens[i]);
        if (!v) {
            json_decref(obj);
            return s_reject(cat, line, "%s: not UTF-8 text", names[i]);
        }
        json_object_set_new_nocheck(obj, names[i], v);
    }
    *out = obj;
    return SOUK_OK;
}

static int s_read_csv(reader_t *r)
{
    csv_t c = { .r = r, .sep = s_csv_separator(r->p, r->end) };
    char **names = NULL;
    size_t n_names = 0;
    int rc = s_csv_record(&c);
    if (rc == 0 || (rc == 1 && s_csv_blank(&c)))
        rc = HEADER_PROBLEM(r->cat, "no header row");
    else if (rc == SOUK_EPROTO)
        rc = HEADER_PROBLEM(r->cat, "a quoted cell of the header is never closed");
    else if (rc == 1 && (n_names = c.n))
        rc = s_csv_header(&c, &names);
    while (rc == SOUK_OK) {
        size_t line = r->line;
        rc = s_csv_record(&c);
        if (rc == SOUK_EPROTO) {
            rc = s_reject(r->cat, line, "a quoted cell is never closed");
        } else if (rc == 1 && !s_csv_blank(&c)) {
            json_t *obj;
            rc = s_csv_object(&c, names, n_names, line, &obj);
            if (rc == SOUK_OK)
                rc = s_add_record(r->cat, obj, line);
            json_decref(obj);
            rc = rc == SOUK_EPROTO ? SOUK_OK : rc;
            s_progress(r);
        } else if (rc == 1) {
            rc = SOUK_OK;       /* a blank line */
        } else {
            break;              /* the end, or out of memory */
        }
    }
    for (size_t i = 0; names && i < n_names; i++)
        free(names[i]);
    free(names);
    free(c.buf);
    free(c.cells);
    free(c.lens);
    return rc == SOUK_EPROTO || rc == 0 ? SOUK_OK : rc;
}

/* ---- the catalogue ----------------------------------------------------------- */

static catalog_format_t s_guess(const char *name, const char *p, const char *end)
{
    while (p < end && s_space(*p))
        p++;
    if (p < end && *p == '[')
        return CATALOG_JSON;
    if (p < end && *p == '{')
        return CATALOG_JSONL;
    const char *dot = name ? strrchr(name, '.') : NULL;
    if (dot && strcasecmp(dot, ".json") == 0)
        return CATALOG_JSON;
    if (dot && (strcasecmp(dot, ".jsonl") == 0 || strcasecmp(dot, ".ndjson") == 0))
        return CATALOG_JSONL;
    return CATALOG_CSV;
}

int catalog_parse(const char *data, size_t len, const char *name, const catalog_options_t *opt,
                  catalog_t **out)
{
    static const catalog_options_t none = { .format = CATALOG_AUTO };
    if ((!data && len) || !out)
        return SOUK_EINVAL;
    opt = opt ? opt : &none;
    catalog_t *cat = calloc(1, sizeof *cat);
    if (!cat || !(cat->priv = calloc(1, sizeof *cat->priv))) {
        free(cat);
        return SOUK_ENOMEM;
    }
    cat->priv->now_ms = opt->now_ms;
    reader_t r = { .cat = cat, .opt = opt, .data = data, .p = data, .end = data + len, .line = 1 };
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        r.p += 3;
    cat->format = opt->format != CATALOG_AUTO ? opt->format : s_guess(name, r.p, r.end);
    int rc = cat->format == CATALOG_JSON  ? s_read_json(&r)
           : cat->format == CATALOG_JSONL ? s_read_jsonl(&r)
                                          : s_read_csv(&r);
    if (rc == SOUK_OK && cat->records == 0 && cat->n_problems == 0)
        rc = s_problem(cat, 0, "no products in the file");
    if (rc == SOUK_OK && opt->progress)
        opt->progress(opt->progress_arg, len, len, cat->records);
    if (rc != SOUK_OK) {
        catalog_destroy(&cat);
        return rc;
    }
    *out = cat;
    return SOUK_OK;
}

int catalog_load(const char *path, const catalog_options_t *opt, catalog_t **out, char *err,
                 size_t errlen)
{
    if (!path || !out)
        return SOUK_EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "cannot read %s: %s", path,
                 fd < 0 || errno ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return SOUK_EIO;
    }
    size_t len = (size_t)st.st_size;
    void *map = len ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (len && map == MAP_FAILED) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return SOUK_EIO;
    }
    if (len)
        madvise(map, len, MADV_SEQUENTIAL);
    int rc = catalog_parse(map, len, path, opt, out);
    if (len)
        munmap(map, len);
    if (rc != SOUK_OK)
        snprintf(err, errlen, "%s", souk_strerror(rc));
    return rc;
}

void catalog_destroy(catalog_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    catalog_t *cat = *self_p;
    for (size_t i = 0; i < cat->n_rows; i++)
        store_product_clear(&cat->rows[i]);
    for (size_t i = 0; i < cat->n_problems; i++)
        free(cat->problems[i].reason);
    if (cat->priv) {
        for (size_t i = 0; i < cat->priv->n_kept; i++)
            free(cat->priv->kept[i]);
        free(cat->priv->kept);
        free(cat->priv->slots);
        free(cat->priv);
    }
    free(cat->rows);
    free(cat->lines);
    free(cat->problems);
    free(cat);
    *self_p = NULL;
}
