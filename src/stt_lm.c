/* stt_lm: the shop's own language model for pocketsphinx, and the word
 * error rate.
 *
 * Pocketsphinx's generic en-us model knows English at large and shop talk
 * badly; a model trained on what customers of this shop say — the agent's
 * labelled utterances and the catalogue's names, brands and categories —
 * makes "running shoes" far likelier than "running through". It is a
 * bigram model in ARPA text form with absolute discounting and back-off
 * to add-one smoothed unigrams: small (a few thousand words), written in
 * well under a second by `souk import`, and loaded by pocketsphinx in
 * milliseconds. Its dictionary is the subset of CMUdict for its words. */
#include "souk/stt.h"

#include "souk/error.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The utterance set, built in (see meson.build: SOUK_UTTERANCES_TSV). */
__asm__(".section .rodata\n"
        ".global souk_stt_utterances_tsv\n"
        ".type souk_stt_utterances_tsv, @object\n"
        "souk_stt_utterances_tsv:\n"
        ".incbin \"" SOUK_UTTERANCES_TSV "\"\n"
        ".byte 0\n"
        ".previous\n");
extern const char souk_stt_utterances_tsv[];

const char *stt_utterances(void) { return souk_stt_utterances_tsv; }

#define WORD_MAX 40
#define DISCOUNT 0.7
#define BOS 0u  /* <s> */
#define EOS 1u  /* </s> */

typedef struct {
    char **words;               /* id -> word; 0 and 1 are <s> and </s> */
    size_t n_words, cap_words;
    uint32_t *slots;            /* open addressing: id + 1, 0 empty */
    size_t n_slots;
    uint32_t *toks;             /* sentences, each ended by EOS */
    size_t n_toks, cap_toks;
} vocab_t;

struct stt_lm {
    vocab_t v;
};

static uint64_t s_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int s_grow_slots(vocab_t *v)
{
    size_t n = v->n_slots ? v->n_slots * 2 : 4096;
    uint32_t *slots = calloc(n, sizeof *slots);
    if (!slots)
        return SOUK_ENOMEM;
    for (size_t id = 0; id < v->n_words; id++) {
        size_t i = s_hash(v->words[id], strlen(v->words[id])) & (n - 1);
        while (slots[i])
            i = (i + 1) & (n - 1);
        slots[i] = (uint32_t)id + 1;
    }
    free(v->slots);
    v->slots = slots;
    v->n_slots = n;
    return SOUK_OK;
}

/* The id of word (n bytes), added when `add`; -1 when absent (or no memory). */
static long s_id(vocab_t *v, const char *w, size_t n, bool add)
{
    if (add && (v->n_words + 1) * 2 > v->n_slots && s_grow_slots(v) != SOUK_OK)
        return -1;
    if (!v->n_slots)
        return -1;
    size_t i = s_hash(w, n) & (v->n_slots - 1);
    for (; v->slots[i]; i = (i + 1) & (v->n_slots - 1)) {
        const char *c = v->words[v->slots[i] - 1];
        if (strlen(c) == n && memcmp(c, w, n) == 0)
            return (long)v->slots[i] - 1;
    }
    if (!add)
        return -1;
    if (v->n_words == v->cap_words) {
        size_t cap = v->cap_words ? v->cap_words * 2 : 1024;
        char **words = realloc(v->words, cap * sizeof *words);
        if (!words)
            return -1;
        v->words = words;
        v->cap_words = cap;
    }
    char *copy = strndup(w, n);
    if (!copy)
        return -1;
    v->words[v->n_words] = copy;
    v->slots[i] = (uint32_t)++v->n_words;
    return (long)v->n_words - 1;
}

static int s_push(vocab_t *v, uint32_t id)
{
    if (v->n_toks == v->cap_toks) {
        size_t cap = v->cap_toks ? v->cap_toks * 2 : 16384;
        uint32_t *t = realloc(v->toks, cap * sizeof *t);
        if (!t)
            return SOUK_ENOMEM;
        v->toks = t;
        v->cap_toks = cap;
    }
    v->toks[v->n_toks++] = id;
    return SOUK_OK;
}

stt_lm_t *stt_lm_new(void)
{
    stt_lm_t *self = calloc(1, sizeof *self);
    if (self && (s_id(&self->v, "<s>", 3, true) != BOS || s_id(&self->v, "</s>", 4, true) != EOS))
        stt_lm_destroy(&self);
    return self;
}

void stt_lm_destroy(stt_lm_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    stt_lm_t *self = *self_p;
    for (size_t i = 0; i < self->v.n_words; i++)
        free(self->v.words[i]);
    free(self->v.words);
    free(self->v.slots);
    free(self->v.toks);
    free(self);
    *self_p = NULL;
}

/* Next word of text at *p: letters and inner apostrophes, lower-cased into
 * w. Returns its length, 0 at the end. */
static size_t s_word(const char **p, char w[WORD_MAX + 1])
{
    const char *s = *p;
    for (;;) {
        while (*s && !isalpha((unsigned char)*s))
            s++;
        if (!*s) {
            *p = s;
            return 0;
        }
        size_t n = 0;
        bool fits = true;
        while (isalpha((unsigned char)*s) || (*s == '\'' && isalpha((unsigned char)s[1]))) {
            if (n < WORD_MAX)
                w[n++] = (char)tolower((unsigned char)*s);
            else
                fits = false;
            s++;
        }
        if (fits) {
            w[n] = '\0';
            *p = s;
            return n;
        }
    }
}

int stt_lm_add(stt_lm_t *self, const char *text)
{
    char w[WORD_MAX + 1];
    size_t n, added = 0;
    while ((n = s_word(&text, w)) > 0) {
        long id = s_id(&self->v, w, n, true);
        if (id < 0 || s_push(&self->v, (uint32_t)id) != SOUK_OK)
            return SOUK_ENOMEM;
        added++;
    }
    return added ? s_push(&self->v, EOS) : SOUK_OK;
}

int stt_lm_add_tsv(stt_lm_t *self, const char *tsv)
{
    int rc = SOUK_OK;
    while (rc == SOUK_OK && tsv && *tsv) {
        size_t n = strcspn(tsv, "\n");
        const char *tab = memchr(tsv, '\t', n);
        if (*tsv != '#' && tab) {
            char *text = strndup(tab + 1, n - (size_t)(tab + 1 - tsv));
            rc = text ? stt_lm_add(self, text) : SOUK_ENOMEM;
            free(text);
        }
        tsv += n + (tsv[n] == '\n');
    }
    return rc;
}

/* ---- writing ------------------------------------------------------------- */

typedef struct {
    uint64_t key;               /* u * n_words + v, + 1 (0: empty) */
    uint32_t count;
} bigram_t;

typedef struct {
    bigram_t *slots;
    size_t n_slots, n;
} bigrams_t;

static int s_bigram_add(bigrams_t *b, uint64_t key)
{
    if ((b->n + 1) * 2 > b->n_slots) {
        size_t n = b->n_slots ? b->n_slots * 2 : 65536;
        bigram_t *slots = calloc(n, sizeof *slots);
        if (!slots)
            return SOUK_ENOMEM;
        for (size_t i = 0; i < b->n_slots; i++) {
            if (!b->slots[i].key)
                continue;
            size_t j = (b->slots[i].key * 0x9E3779B97F4A7C15ull) >> 20 & (n - 1);
            while (slots[j].key)
                j = (j + 1) & (n - 1);
            slots[j] = b->slots[i];
        }
        free(b->slots);
        b->slots = slots;
        b->n_slots = n;
    }
    size_t j = (key * 0x9E3779B97F4A7C15ull) >> 20 & (b->n_slots - 1);
    while (b->slots[j].key && b->slots[j].key != key)
        j = (j + 1) & (b->n_slots - 1);
    if (!b->slots[j].key) {
        b->slots[j].key = key;
        b->n++;
    }
    b->slots[j].count++;
    return SOUK_OK;
}

static int s_cmp_bigram(const void *a, const void *b)
{
    uint64_t x = ((const bigram_t *)a)->key, y = ((const bigram_t *)b)->key;
    return x < y ? -1 : x > y;
}

/* Marks the words CMUdict knows and writes their entries to dict. */
static int s_dict(vocab_t *v, const char *model_dir, const char *path, bool *known, char *err,
                  size_t errlen)
{
    char src[512];
    snprintf(src, sizeof src, "%s/cmudict-en-us.dict", model_dir);
    FILE *in = fopen(src, "r");
    if (!in) {
        snprintf(err, errlen, "cannot read %s (package pocketsphinx-en-us)", src);
        return SOUK_EUNAVAIL;
    }
    FILE *out = fopen(path, "w");
    if (!out) {
        fclose(in);
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return SOUK_EIO;
    }
    char line[1024];
    while (fgets(line, sizeof line, in)) {
        size_t n = strcspn(line, " \t(");
        long id = n ? s_id(v, line, n, false) : -1;
        if (id > (long)EOS) {
            known[id] = true;
            fputs(line, out);
        }
    }
    fclose(in);
    if (fclose(out) != 0) {
        snprintf(err, errlen, "cannot write %s", path);
        return SOUK_EIO;
    }
    return SOUK_OK;
}

static int s_arpa(vocab_t *v, const bool *known, const char *path, size_t *words, char *err,
                  size_t errlen)
{
    size_t nw = v->n_words;
    uint32_t *uni = calloc(nw, sizeof *uni);     /* count as a word */
    uint32_t *hist = calloc(nw, sizeof *hist);   /* count as a history */
    uint32_t *types = calloc(nw, sizeof *types); /* distinct followers */
    double *left = calloc(nw, sizeof *left);     /* unigram mass of the followers */
    bigrams_t b = { 0 };
    int rc = uni && hist && types && left ? SOUK_OK : SOUK_ENOMEM;
    uint32_t prev = BOS;
    for (size_t i = 0; rc == SOUK_OK && i < v->n_toks; i++) {
        uint32_t w = v->toks[i];
        if (w != EOS && !known[w])
            continue;           /* a word without a pronunciation: bridged */
        uni[w]++;
        hist[prev]++;
        rc = s_bigram_add(&b, (uint64_t)prev * nw + w + 1);
        prev = w == EOS ? BOS : w;
    }
    uint64_t total = 0, vocab = 1; /* </s> */
    for (size_t w = 2; w < nw; w++)
        if (known[w] && uni[w]) {
            total += uni[w];
            vocab++;
        }
    total += uni[EOS];
    FILE *f = rc == SOUK_OK ? fopen(path, "w") : NULL;
    if (rc == SOUK_OK && !f) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        rc = SOUK_EIO;
    }
    if (rc == SOUK_OK) {
        bigram_t *list = b.slots;
        size_t n = 0;
        for (size_t i = 0; i < b.n_slots; i++)
            if (list[i].key)
                list[n++] = list[i];
        qsort(list, n, sizeof *list, s_cmp_bigram);
        b.n = n;
#define PUNI(w) (((double)uni[w] + 1.0) / ((double)total + (double)vocab))
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)((list[i].key - 1) / nw), w = (uint32_t)((list[i].key - 1) % nw);
            types[u]++;
            left[u] += PUNI(w);
        }
        fprintf(f, "\\data\\\nngram 1=%llu\nngram 2=%zu\n\n\\1-grams:\n",
                (unsigned long long)vocab + 1, n);
        for (size_t w = 0; w < nw; w++) {
            if (w != BOS && w != EOS && !(known[w] && uni[w]))
                continue;
            double bo = 0;
            if (hist[w] && w != EOS) {
                double mass = DISCOUNT * types[w] / hist[w];
                double rest = 1.0 - left[w];
                bo = rest > 1e-9 ? log10(mass / rest) : 0;
            }
            if (w == BOS)
                fprintf(f, "-99.0000 <s> %.4f\n", bo);
            else if (w == EOS)
                fprintf(f, "%.4f </s>\n", log10(PUNI(w)));
            else
                fprintf(f, "%.4f %s %.4f\n", log10(PUNI(w)), v->words[w], bo);
        }
        fprintf(f, "\n\\2-grams:\n");
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)((list[i].key - 1) / nw), w = (uint32_t)((list[i].key - 1) % nw);
            double p = ((double)list[i].count - DISCOUNT) / hist[u];
            fprintf(f, "%.4f %s %s\n", log10(p), v->words[u], v->words[w]);
        }
#undef PUNI
        fprintf(f, "\n\\end\\\n");
        if (fclose(f) != 0) {
            snprintf(err, errlen, "cannot write %s", path);
            rc = SOUK_EIO;
        }
        if (words)
            *words = vocab - 1;
    }
    free(b.slots);
    free(uni);
    free(hist);
    free(types);
    free(left);
    return rc;
}

int stt_lm_write(stt_lm_t *self, const char *dir, const char *model_dir, size_t *words,
                 char *err, size_t errlen)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot make %s: %s", dir, strerror(errno));
        return SOUK_EIO;
    }
    bool *known = calloc(self->v.n_words, sizeof *known);
    if (!known)
        return SOUK_ENOMEM;
    char dict[512], lm[512], tmp[520];
    snprintf(dict, sizeof dict, "%s/" STT_SHOP_DICT, dir);
    snprintf(lm, sizeof lm, "%s/" STT_SHOP_LM, dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", lm);
    /* the dictionary first, then the model renamed into place: a session
     * that loads the model finds every word of it in the dictionary */
    int rc = s_dict(&self->v, model_dir ? model_dir : STT_DEFAULT_MODEL_DIR, dict, known, err,
                    errlen);
    if (rc == SOUK_OK)
        rc = s_arpa(&self->v, known, tmp, words, err, errlen);
    if (rc == SOUK_OK && rename(tmp, lm) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", lm, strerror(errno));
        rc = SOUK_EIO;
    }
    free(known);
    return rc;
}

/* ---- word error rate ------------------------------------------------------ */

static size_t s_words(const char *text, char (**out)[WORD_MAX + 1])
{
    size_t n = 0, cap = 16;
    char (*w)[WORD_MAX + 1] = malloc(cap * sizeof *w);
    while (w && text) {
        if (n == cap) {
            char (*more)[WORD_MAX + 1] = realloc(w, (cap *= 2) * sizeof *w);
            if (!more)
                break;
            w = more;
        }
        if (!s_word(&text, w[n]))
            break;
        n++;
    }
    *out = w;
    return w ? n : 0;
}

double stt_wer(const char *ref, const char *hyp, size_t *edits, size_t *words)
{
    char (*r)[WORD_MAX + 1], (*h)[WORD_MAX + 1];
    size_t nr = s_words(ref, &r), nh = s_words(hyp, &h);
    size_t *row = malloc((nh + 1) * sizeof *row);
    size_t d = nr > nh ? nr : nh;
    if (row && r && h) {
        for (size_t j = 0; j <= nh; j++)
            row[j] = j;
        for (size_t i = 1; i <= nr; i++) {
            size_t diag = row[0];
            row[0] = i;
            for (size_t j = 1; j <= nh; j++) {
                size_t up = row[j];
                size_t best = diag + (strcmp(r[i - 1], h[j - 1]) != 0);
                if (up + 1 < best)
                    best = up + 1;
                if (row[j - 1] + 1 < best)
                    best = row[j - 1] + 1;
                diag = up;
                row[j] = best;
            }
        }
        d = row[nh];
    }
    free(row);
    free(r);
    free(h);
    if (edits)
        *edits = d;
    if (words)
        *words = nr;
    return nr ? (double)d / (double)nr : (nh ? 1.0 : 0.0);
}
