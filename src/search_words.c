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

int words_set_add_text(words_set_t *self, const char *text)
{
    if (!text)
        return SOUK_OK;
    char w[WORD_MAX + 1];
    const unsigned char *p = (const unsigned char *)text;
    while (*p) {
        size_t len = 0;
        bool letter = false, too_long = false;
        while (*p && ((unsigned)((*p | 32) - 'a') < 26u || (unsigned)(*p - '0') < 10u || *p >= 0x80)) {
            unsigned char c = (*p >= 'A' && *p <= 'Z') ? (unsigned char)(*p + 32) : *p;
            letter = letter || !(c >= '0' && c <= '9');
            if (len < WORD_MAX)
                w[len++] = (char)c;
            else
                too_long = true;
            p++;
        }
        if (len >= WORD_MIN && letter && !too_long && s_add(self, w, len) != SOUK_OK)
            return SOUK_ENOMEM;
        if (*p && !len)
            p++;
    }
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
