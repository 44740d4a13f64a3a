/* Metrics: the process registry that every actor counts into, and the merge
 * the supervisor uses to add the actors' fragments up; see
 * include/souk/metrics.h. A process holds tens of series, so the registry
 * is an array searched by hash; the merge, which holds the union over
 * every actor, is a hash table. */
#include "souk/metrics.h"
#include "souk/error.h"

#include <czmq.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 320

static const double s_bounds[] = { SOUK_METRIC_BUCKETS };
#define NBOUNDS (sizeof s_bounds / sizeof s_bounds[0])

typedef struct {
    const char *name;
    souk_metric_type_t type;
    const char *help;
} family_t;

#define SOUK_METRIC_T_counter SOUK_METRIC_COUNTER
#define SOUK_METRIC_T_gauge SOUK_METRIC_GAUGE
#define SOUK_METRIC_T_histogram SOUK_METRIC_HISTOGRAM
static const family_t s_families[] = {
#define X(name, type, help) { #name, SOUK_METRIC_T_##type, help },
    SOUK_METRICS(X)
#undef X
};
#define NFAMILIES (sizeof s_families / sizeof s_families[0])

static int s_family(const char *name, size_t len)
{
    for (size_t i = 0; i < NFAMILIES; i++)
        if (strlen(s_families[i].name) == len && memcmp(s_families[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

/* Appends printf output to a growing buffer; false when out of memory. */
typedef struct {
    char *buf;
    size_t len, cap;
    bool failed;
} text_t;

static void s_printf(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_printf(text_t *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if (t->buf && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap ? t->cap * 2 : 4096) + (size_t)n;
        char *b = realloc(t->buf, cap);
        if (!b) {
            t->failed = true;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
}

static char *s_take(text_t *t)
{
    if (t->failed) {
        free(t->buf);
        return NULL;
    }
    if (!t->buf)
        return strdup("");
    return t->buf;
}

/* Integers as integers; everything else with enough digits to round-trip. */
static const char *s_num(double v, char *out, size_t len)
{
    if (isinf(v))
        snprintf(out, len, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(out, len, "%.0f", v);
    else
        snprintf(out, len, "%.9g", v);
    return out;
}

/* ---- the registry --------------------------------------------------------- */

typedef struct {
    char key[KEY_MAX]; /* name{labels} (name alone without labels) */
    size_t name_len;   /* the family name's length within key */
    uint64_t hash;
    int family;
    double value;      /* counter, gauge; histogram: sum */
    uint64_t count;
    uint64_t buckets[NBOUNDS];
} series_t;

static series_t *s_series;
static size_t s_nseries, s_cap;

static uint64_t s_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static bool s_labels_ok(const char *labels)
{
    return strlen(labels) < KEY_MAX / 2 && !strpbrk(labels, "\n{}");
}

static series_t *s_lookup(const char *name, const char *labels, souk_metric_type_t type)
{
    labels = labels ? labels : "";
    int fam = name ? s_family(name, strlen(name)) : -1;
    if (fam < 0 || s_families[fam].type != type || !s_labels_ok(labels))
        return NULL;
    char key[KEY_MAX];
    snprintf(key, sizeof key, *labels ? "%s{%s}" : "%s", name, labels);
    uint64_t h = s_hash(key);
    for (size_t i = 0; i < s_nseries; i++)
        if (s_series[i].hash == h && strcmp(s_series[i].key, key) == 0)
            return &s_series[i];
    if (s_nseries == s_cap) {
        size_t cap = s_cap ? s_cap * 2 : 32;
        series_t *n = realloc(s_series, cap * sizeof *n);
        if (!n)
            return NULL;
        s_series = n;
        s_cap = cap;
    }
    series_t *s = &s_series[s_nseries++];
    memset(s, 0, sizeof *s);
    snprintf(s->key, sizeof s->key, "%s", key);
    s->name_len = strlen(name);
    s->hash = h;
    s->family = fam;
    return s;
}

int souk_metric_add(const char *name, const char *labels, double v)
{
    if (!(v >= 0))
        return SOUK_EINVAL;
    series_t *s = s_lookup(name, labels, SOUK_METRIC_COUNTER);
    if (!s)
        return SOUK_EINVAL;
    s->value += v;
    return SOUK_OK;
}

int souk_metric_set(const char *name, const char *labels, double v)
{
    series_t *s = s_lookup(name, labels, SOUK_METRIC_GAUGE);
    if (!s)
        return SOUK_EINVAL;
    s->value = v;
    return SOUK_OK;
}

int souk_metric_observe(const char *name, const char *labels, double seconds)
{
    series_t *s = s_lookup(name, labels, SOUK_METRIC_HISTOGRAM);
    if (!s || isnan(seconds))
        return SOUK_EINVAL;
    for (size_t i = 0; i < NBOUNDS; i++)
        if (seconds <= s_bounds[i])
            s->buckets[i]++;
    s->count++;
    s->value += seconds;
    return SOUK_OK;
}

/* name_suffix{labels,extra} — labels taken from the series' key. */
static void s_sample(text_t *t, const series_t *s, const char *suffix, const char *extra,
                     double v)
{
    const char *labels = s->key[s->name_len] == '{' ? s->key + s->name_len + 1 : "";
    size_t llen = *labels ? strlen(labels) - 1 : 0; /* without the closing brace */
    char num[40];
    if (!llen && !*extra)
        s_printf(t, "%.*s%s %s\n", (int)s->name_len, s->key, suffix, s_num(v, num, sizeof num));
    else
        s_printf(t, "%.*s%s{%.*s%s%s} %s\n", (int)s->name_len, s->key, suffix, (int)llen, labels,
                 llen && *extra ? "," : "", extra, s_num(v, num, sizeof num));
}

char *souk_metrics_render(void)
{
    text_t t = { 0 };
    for (size_t i = 0; i < s_nseries; i++) {
        const series_t *s = &s_series[i];
        if (s_families[s->family].type != SOUK_METRIC_HISTOGRAM) {
            s_sample(&t, s, "", "", s->value);
            continue;
        }
        char le[48], num[40];
        for (size_t b = 0; b < NBOUNDS; b++) {
            snprintf(le, sizeof le, "le=\"%s\"", s_num(s_bounds[b], num, sizeof num));
            s_sample(&t, s, "_bucket", le, (double)s->buckets[b]);
        }
        s_sample(&t, s, "_bucket", "le=\"+Inf\"", (double)s->count);
        s_sample(&t, s, "_sum", "", s->value);
        s_sample(&t, s, "_count", "", (double)s->count);
    }
    return s_take(&t);
}

void souk_metrics_reset(void)
{
    free(s_series);
    s_series = NULL;
    s_nseries = s_cap = 0;
}

/* ---- the merge -------------------------------------------------------------- */

struct souk_metrics_merge {
    zhashx_t *values; /* series key -> double */
};

static void s_free_value(void **item)
{
    free(*item);
    *item = NULL;
}

souk_metrics_merge_t *souk_metrics_merge_new(void)
{
    souk_metrics_merge_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->values = zhashx_new();
    if (!self->values) {
        free(self);
        return NULL;
    }
    zhashx_set_destructor(self->values, s_free_value);
    return self;
}

void souk_metrics_merge_destroy(souk_metrics_merge_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zhashx_destroy(&(*self_p)->values);
    free(*self_p);
    *self_p = NULL;
}

static const char *const s_hist_suffixes[] = { "_bucket", "_sum", "_count" };

/* What a series is: its family (-1 unknown), the length of its family name,
 * and for a histogram which sample (0 bucket, 1 sum, 2 count; -1 not one). */
static int s_classify(const char *key, size_t *fam_len, int *part)
{
    size_t n = strcspn(key, "{");
    *fam_len = n;
    *part = -1;
    int fam = s_family(key, n);
    if (fam >= 0)
        return fam;
    for (int i = 0; i < 3; i++) {
        size_t sl = strlen(s_hist_suffixes[i]);
        if (n > sl && memcmp(key + n - sl, s_hist_suffixes[i], sl) == 0) {
            fam = s_family(key, n - sl);
            if (fam >= 0 && s_families[fam].type == SOUK_METRIC_HISTOGRAM) {
                *fam_len = n - sl;
                *part = i;
                return fam;
            }
        }
    }
    return -1;
}

static bool s_cumulative(const char *key)
{
    size_t fam_len;
    int part;
    int fam = s_classify(key, &fam_len, &part);
    if (fam >= 0)
        return s_families[fam].type != SOUK_METRIC_GAUGE;
    size_t n = strcspn(key, "{");
    static const char *const suffixes[] = { "_total", "_bucket", "_sum", "_count" };
    for (size_t i = 0; i < 4; i++) {
        size_t sl = strlen(suffixes[i]);
        if (n > sl && memcmp(key + n - sl, suffixes[i], sl) == 0)
            return true;
    }
    return false;
}

static int s_merge_value(souk_metrics_merge_t *self, const char *key, double v)
{
    double *cur = zhashx_lookup(self->values, key);
    if (cur) {
        *cur += v;
        return SOUK_OK;
    }
    cur = malloc(sizeof *cur);
    if (!cur)
        return SOUK_ENOMEM;
    *cur = v;
    if (zhashx_insert(self->values, key, cur) != 0) {
        free(cur);
        return SOUK_ENOMEM;
    }
    return SOUK_OK;
}

int souk_metrics_merge_add(souk_metrics_merge_t *self, const char *fragment, bool cumulative_only)
{
    int added = 0;
    const char *p = fragment ? fragment : "";
    while (*p) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char line[KEY_MAX + 64];
        if (len > 0 && len < sizeof line && *p != '#') {
            memcpy(line, p, len);
            line[len] = '\0';
            char *sp = strrchr(line, ' ');
            char *num_end = NULL;
            double v = sp ? strtod(sp + 1, &num_end) : 0;
            if (sp && sp > line && num_end && *num_end == '\0' && !isnan(v)) {
                *sp = '\0';
                if ((!cumulative_only || s_cumulative(line)) && s_merge_value(self, line, v) == SOUK_OK)
                    added++;
            }
        }
        p += len + (end ? 1 : 0);
    }
    return added;
}

void souk_metrics_merge_fold(souk_metrics_merge_t *self, const souk_metrics_merge_t *other,
                             bool cumulative_only)
{
    zhashx_t *values = other->values;
    for (double *v = zhashx_first(values); v; v = zhashx_next(values)) {
        const char *key = zhashx_cursor(values);
        if (!cumulative_only || s_cumulative(key))
            s_merge_value(self, key, *v);
    }
}

double souk_metrics_merge_get(const souk_metrics_merge_t *self, const char *series)
{
    double *v = zhashx_lookup(self->values, series);
    return v ? *v : 0;
}

/* ---- rendering the merge --------------------------------------------------- */

typedef struct {
    const char *key;
    double value;
    int family;        /* NFAMILIES + for unknown names: sorted by name */
    size_t name_len;   /* family name's length */
    int part;          /* histogram sample, or -1 */
    char base[KEY_MAX]; /* labels without le */
    double le;
} entry_t;

static void s_entry(entry_t *e, const char *key, double v)
{
    e->key = key;
    e->value = v;
    int fam = s_classify(key, &e->name_len, &e->part);
    e->family = fam >= 0 ? fam : (int)NFAMILIES;
    e->le = 0;
    const char *brace = strchr(key, '{');
    snprintf(e->base, sizeof e->base, "%s", brace ? brace + 1 : "");
    char *le = strstr(e->base, "le=\"");
    if (le && (le == e->base || le[-1] == ',')) {
        const char *val = le + 4;
        e->le = strncmp(val, "+Inf", 4) == 0 ? INFINITY : strtod(val, NULL);
        const char *after = strchr(val, '"');
        after = after ? after + 1 : val + strlen(val);
        if (*after == ',')
            after++;
        memmove(le > e->base ? le - 1 : le, after, strlen(after) + 1);
    }
    size_t bl = strlen(e->base);
    if (bl && e->base[bl - 1] == '}')
        e->base[bl - 1] = '\0';
}

static int s_entry_cmp(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    if (x->family != y->family)
        return x->family < y->family ? -1 : 1;
    if (x->family == (int)NFAMILIES) {
        int c = strncmp(x->key, y->key, x->name_len < y->name_len ? y->name_len : x->name_len);
        if (c)
            return c;
    }
    int c = strcmp(x->base, y->base);
    if (c)
        return c;
    if (x->part != y->part)
        return x->part < y->part ? -1 : 1;
    if (x->le != y->le)
        return x->le < y->le ? -1 : 1;
    return strcmp(x->key, y->key);
}

static const char *const s_type_names[] = { "counter", "gauge", "histogram" };

static void s_zero_family(text_t *t, const family_t *f)
{
    if (f->type != SOUK_METRIC_HISTOGRAM) {
        s_printf(t, "%s 0\n", f->name);
        return;
    }
    char num[40];
    for (size_t b = 0; b < NBOUNDS; b++)
        s_printf(t, "%s_bucket{le=\"%s\"} 0\n", f->name, s_num(s_bounds[b], num, sizeof num));
    s_printf(t, "%s_bucket{le=\"+Inf\"} 0\n%s_sum 0\n%s_count 0\n", f->name, f->name, f->name);
}

char *souk_metrics_merge_render(const souk_metrics_merge_t *self)
{
    size_t n = zhashx_size(self->values);
    entry_t *all = n ? calloc(n, sizeof *all) : NULL;
    if (n && !all)
        return NULL;
    size_t i = 0;
    for (double *v = zhashx_first(self->values); v && i < n; v = zhashx_next(self->values))
        s_entry(&all[i++], zhashx_cursor(self->values), *v);
    if (n)
        qsort(all, n, sizeof *all, s_entry_cmp);

    text_t t = { 0 };
    char num[40];
    size_t k = 0;
    for (size_t f = 0; f < NFAMILIES; f++) {
        const family_t *fam = &s_families[f];
        s_printf(&t, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name,
                 s_type_names[fam->type]);
        if (k >= n || all[k].family != (int)f)
            s_zero_family(&t, fam);
        for (; k < n && all[k].family == (int)f; k++)
            s_printf(&t, "%s %s\n", all[k].key, s_num(all[k].value, num, sizeof num));
    }
    /* names outside the table (an older or newer actor): untyped */
    const char *last = NULL;
    size_t last_len = 0;
    for (; k < n; k++) {
        if (!last || last_len != all[k].name_len || strncmp(last, all[k].key, last_len) != 0) {
            last = all[k].key;
            last_len = all[k].name_len;
            s_printf(&t, "# TYPE %.*s untyped\n", (int)last_len, last);
        }
        s_printf(&t, "%s %s\n", all[k].key, s_num(all[k].value, num, sizeof num));
    }
    free(all);
    return s_take(&t);
}
