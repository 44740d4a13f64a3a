/* search_words: vocabulary set, speller, and the stopword list.
 *
 * The speller is a bounded edit distance (insert, delete, substitute,
 * transpose) against the catalogue words that share the query word's first
 * letter, a contiguous range of the sorted list found by binary search. */
#include "search_words.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "souk/error.h"
#include "stopwords.h"

/* ---- the set of words ----------------------------------------------------------- */

struct words_set_s {
    char **slots;
    size_t cap, n;
};

int words_set_new(words_set_t **out)
{
    words_set_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOUK_ENOMEM;
    self->cap = 1024;
    self->slots = calloc(self->cap, sizeof *self->slots);
    if (!self->slots) {
        free(self);
        return SOUK_ENOMEM;
    }
    *out = self;
    return SOUK_OK;
}

void words_set_free(words_set_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    words_set_t *self = *self_p;
    for (size_t i = 0; i < self->cap; i++)
        free(self->slots[i]);
    free(self->slots);
    free(self);
    *self_p = NULL;
}

static uint64_t s_hash(const char *w, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)w[i]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

static int s_grow(words_set_t *self)
{
    size_t cap = self->cap * 2;
    char **slots = calloc(cap, sizeof *slots);
    if (!slots)
        return SOUK_ENOMEM;
    for (size_t i = 0; i < self->cap; i++) {
        if (!self->slots[i])
            continue;
        size_t j = s_hash(self->slots[i], strlen(self->slots[i])) & (cap - 1);
        while (slots[j])
            j = (j + 1) & (cap - 1);
        slots[j] = self->slots[i];
    }
    free(self->slots);
    self->slots = slots;
    self->cap = cap;
    return SOUK_OK;
}

static int s_add(words_set_t *self, const char *w, size_t len)
{
    if ((self->n + 1) * 2 > self->cap && s_grow(self) != SOUK_OK)
        return SOUK_ENOMEM;
    size_t j = s_hash(w, len) & (self->cap - 1);
    for (; self->slots[j]; j = (j + 1) & (self->cap - 1))
        if (strncmp(self->slots[j], w, len) == 0 && self->slots[j][len] == '\0')
            return SOUK_OK;
    char *copy = malloc(len + 1);
    if (!copy)
        return SOUK_ENOMEM;
    memcpy(copy, w, len);
    copy[len] = '\0';
    self->slots[j] = copy;
    self->n++;
    return SOUK_OK;
}

size_t words_next(const char **p, char *w)
{
    const unsigned char *s = (const unsigned char *)*p;
    for (;;) {
        while (*s && !((unsigned)((*s | 32) - 'a') < 26u || (unsigned)(*s - '0') < 10u || *s >= 0x80))
            s++;
        size_t len = 0;
        while (*s && ((unsigned)((*s | 32) - 'a') < 26u || (unsigned)(*s - '0') < 10u || *s >= 0x80)) {
            if (len < WORD_MAX)
                w[len++] = (char)((*s >= 'A' && *s <= 'Z') ? *s + 32 : *s);
            s++;
        }
        w[len] = '\0';
        *p = (const char *)s;
        return len;
    }
}

int words_set_add_text(words_set_t *self, const char *text)
{
    char w[WORD_MAX + 1];
    size_t len;
    while (text && (len = words_next(&text, w)) > 0)
        if (len >= WORD_MIN && len < WORD_MAX && strspn(w, "0123456789") < len &&
            s_add(self, w, len) != SOUK_OK)
            return SOUK_ENOMEM;
    return SOUK_OK;
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int words_set_join(const words_set_t *self, char **blob, size_t *len)
{
    char **list = malloc((self->n ? self->n : 1) * sizeof *list);
    if (!list)
        return SOUK_ENOMEM;
    size_t n = 0, total = 0;
    for (size_t i = 0; i < self->cap; i++)
        if (self->slots[i]) {
            list[n++] = self->slots[i];
            total += strlen(self->slots[i]) + 1;
        }
    qsort(list, n, sizeof *list, s_cmp_str);
    char *out = malloc(total ? total : 1), *o = out;
    if (!out) {
        free(list);
        return SOUK_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(list[i]) + 1;
        memcpy(o, list[i], l);
        o += l;
    }
    free(list);
    *blob = out;
    *len = total;
    return SOUK_OK;
}

/* ---- the speller ------------------------------------------------------------------ */

struct speller_s {
    const char **words;
    size_t n;
};

int speller_new(const char *blob, size_t len, speller_t **out)
{
    speller_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOUK_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += blob[i] == '\0';
    self->words = malloc((n ? n : 1) * sizeof *self->words);
    if (!self->words) {
        free(self);
        return SOUK_ENOMEM;
    }
    for (size_t i = 0; i < len; i += strlen(blob + i) + 1)
        self->words[self->n++] = blob + i;
    *out = self;
    return SOUK_OK;
}

void speller_free(speller_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->words);
    free(*self_p);
    *self_p = NULL;
}

/* First index whose word is >= w[0..len) (strncmp order). */
static size_t s_lower_bound(const speller_t *self, const char *w, size_t len)
{
    size_t lo = 0, hi = self->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strncmp(self->words[mid], w, len);
        if (c == 0 && self->words[mid][len] == '\0')
            c = 0;
        else if (c == 0)
            c = 1;                             /* longer word sorts after the prefix */
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool speller_known(const speller_t *self, const char *w, size_t len)
{
    size_t i = s_lower_bound(self, w, len);
    return i < self->n && strncmp(self->words[i], w, len) == 0 && self->words[i][len] == '\0';
}

/* Optimal string alignment distance, or max + 1 once it must exceed max. */
static int s_distance(const char *a, size_t la, const char *b, size_t lb, int max)
{
    if ((la > lb ? la - lb : lb - la) > (size_t)max)
        return max + 1;
    int rows[3][WORD_MAX + 2];
    int *pp = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        int best = cur[0];
        for (size_t j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = prev[j] + 1;
            if (cur[j - 1] + 1 < v)
                v = cur[j - 1] + 1;
            if (prev[j - 1] + cost < v)
                v = prev[j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && pp[j - 2] + 1 < v)
                v = pp[j - 2] + 1;
            cur[j] = v;
            best = v < best ? v : best;
        }
        if (best > max)
            return max + 1;
        int *t = pp;
        pp = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

const char *speller_correct(const speller_t *self, const char *w, size_t len)
{
    if (len < 4 || len > WORD_MAX)
        return NULL;
    int max = len >= 8 ? 2 : 1;
    const char *best = NULL;
    int best_d = max + 1;
    for (size_t i = s_lower_bound(self, w, 1); i < self->n && self->words[i][0] == w[0]; i++) {
        const char *cand = self->words[i];
        size_t cl = strlen(cand);
        if (cl < 4)
            continue;
        int d = s_distance(w, len, cand, cl, best_d < max + 1 ? best_d : max);
        if (d < best_d) {
            best_d = d;
            best = cand;
        }
    }
    return best;
}

/* ---- terms and their postings ------------------------------------------------------ */

typedef struct {
    char *stem;                /* NULL: empty slot */
    uint32_t *ids;
    uint32_t n, cap;
} term_t;

struct terms_s {
    term_t *slots;
    size_t cap, n;
    char *terms;               /* what terms_finish made */
    uint32_t *str_off, *term_off, *postings;
};

int terms_new(terms_t **out)
{
    terms_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOUK_ENOMEM;
    self->cap = 1024;
    if (!(self->slots = calloc(self->cap, sizeof *self->slots))) {
        free(self);
        return SOUK_ENOMEM;
    }
    *out = self;
    return SOUK_OK;
}

void terms_free(terms_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    terms_t *self = *self_p;
    for (size_t i = 0; i < self->cap; i++) {
        free(self->slots[i].stem);
        free(self->slots[i].ids);
    }
    free(self->slots);
    free(self->terms);
    free(self->str_off);
    free(self->term_off);
    free(self->postings);
    free(self);
    *self_p = NULL;
}

static int s_terms_grow(terms_t *self)
{
    size_t cap = self->cap * 2;
    term_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return SOUK_ENOMEM;
    for (size_t i = 0; i < self->cap; i++) {
        if (!self->slots[i].stem)
            continue;
        size_t j = s_hash(self->slots[i].stem, strlen(self->slots[i].stem)) & (cap - 1);
        while (slots[j].stem)
            j = (j + 1) & (cap - 1);
        slots[j] = self->slots[i];
    }
    free(self->slots);
    self->slots = slots;
    self->cap = cap;
    return SOUK_OK;
}

static int s_terms_add(terms_t *self, const char *stem, size_t len, uint32_t id)
{
    if ((self->n + 1) * 2 > self->cap && s_terms_grow(self) != SOUK_OK)
        return SOUK_ENOMEM;
    size_t j = s_hash(stem, len) & (self->cap - 1);
    for (; self->slots[j].stem; j = (j + 1) & (self->cap - 1))
        if (strncmp(self->slots[j].stem, stem, len) == 0 && self->slots[j].stem[len] == '\0')
            break;
    term_t *t = &self->slots[j];
    if (!t->stem) {
        if (!(t->stem = malloc(len + 1)))
            return SOUK_ENOMEM;
        memcpy(t->stem, stem, len);
        t->stem[len] = '\0';
        self->n++;
    }
    if (t->n && t->ids[t->n - 1] == id)
        return SOUK_OK;
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? 2 * t->cap : 4;
        uint32_t *ids = realloc(t->ids, cap * sizeof *ids);
        if (!ids)
            return SOUK_ENOMEM;
        t->ids = ids;
        t->cap = cap;
    }
    t->ids[t->n++] = id;
    return SOUK_OK;
}

int terms_add_text(terms_t *self, stemmer_t *stemmer, uint32_t id, const char *text)
{
    char w[WORD_MAX + 1];
    size_t len;
    while (text && (len = words_next(&text, w)) > 0) {
        if (len < 2 || stopword_is(w, len))
            continue;
        size_t sl;
        const char *stem = stemmer_stem(stemmer, w, len, &sl);
        if (s_terms_add(self, stem, sl, id) != SOUK_OK)
            return SOUK_ENOMEM;
    }
    return SOUK_OK;
}

static int s_cmp_term(const void *a, const void *b)
{
    return strcmp((*(term_t *const *)a)->stem, (*(term_t *const *)b)->stem);
}

int terms_finish(terms_t *self, const char **terms, size_t *terms_len, const uint32_t **str_off,
                 const uint32_t **term_off, size_t *n_terms, const uint32_t **postings,
                 size_t *n_postings)
{
    term_t **list = malloc((self->n ? self->n : 1) * sizeof *list);
    if (!list)
        return SOUK_ENOMEM;
    size_t n = 0, chars = 0, ids = 0;
    for (size_t i = 0; i < self->cap; i++)
        if (self->slots[i].stem) {
            list[n++] = &self->slots[i];
            chars += strlen(self->slots[i].stem) + 1;
            ids += self->slots[i].n;
        }
    qsort(list, n, sizeof *list, s_cmp_term);
    self->terms = malloc(chars ? chars : 1);
    self->str_off = malloc((n ? n : 1) * sizeof *self->str_off);
    self->term_off = malloc((n + 1) * sizeof *self->term_off);
    self->postings = malloc((ids ? ids : 1) * sizeof *self->postings);
    if (!self->terms || !self->str_off || !self->term_off || !self->postings || chars > UINT32_MAX ||
        ids > UINT32_MAX) {
        free(list);
        return SOUK_ENOMEM;
    }
    size_t c = 0, p = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(list[i]->stem) + 1;
        memcpy(self->terms + c, list[i]->stem, l);
        self->str_off[i] = (uint32_t)c;
        self->term_off[i] = (uint32_t)p;
        memcpy(self->postings + p, list[i]->ids, list[i]->n * sizeof *self->postings);
        c += l;
        p += list[i]->n;
    }
    self->term_off[n] = (uint32_t)p;
    free(list);
    *terms = self->terms;
    *terms_len = c;
    *str_off = self->str_off;
    *term_off = self->term_off;
    *n_terms = n;
    *postings = self->postings;
    *n_postings = p;
    return SOUK_OK;
}
