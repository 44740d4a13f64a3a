/* The features of a message, shared by the build-time trainer and the
 * runtime classifier so both see the same text the same way.
 *
 * Words are lowercased ASCII runs (apostrophes dropped: "what's" → "whats"),
 * accented and non-Latin letters kept; numbers fold to <num> and order ids
 * to <oid> so the model learns "a number" and "an order id", not particular
 * ones; money signs, '?', '#' and each emoji are tokens of their own.
 * Character n-grams of every word make the model tolerant of typos
 * ("sneekers", "lapptop"). */
#include "nlu_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_MAX 32
#define TOKENS_MAX (NLU_TEXT_MAX / 2 + 2)

typedef struct {
    char s[TOKEN_MAX + 1];
    size_t len;
    bool word;                  /* letters or digits: n-grams apply */
} token_t;

typedef struct {
    uint32_t *out;
    size_t n, max;
} sink_t;

uint32_t nlu_hash(const void *data, size_t len, uint32_t seed)
{
    const unsigned char *p = data;
    uint32_t h = 2166136261u ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

void nlu_softmax(double *scores, int n, double temperature)
{
    double max = scores[0], sum = 0;
    for (int i = 1; i < n; i++)
        if (scores[i] > max)
            max = scores[i];
    for (int i = 0; i < n; i++) {
        scores[i] = exp((scores[i] - max) / temperature);
        sum += scores[i];
    }
    for (int i = 0; i < n; i++)
        scores[i] /= sum;
}

void nlu_model_scores(const nlu_model_t *m, const uint32_t *feats, size_t nf,
                      double scores[NLU_INTENT_COUNT])
{
    double sum[NLU_INTENT_COUNT] = { 0 };
    size_t lo = 0;
    for (size_t i = 0; i < nf; i++) {
        /* feats is sorted too: each search starts where the last one ended */
        size_t a = lo, b = m->nkeys;
        while (a < b) {
            size_t mid = a + (b - a) / 2;
            if (m->keys[mid] < feats[i])
                a = mid + 1;
            else
                b = mid;
        }
        lo = a;
        if (a < m->nkeys && m->keys[a] == feats[i])
            for (int c = 0; c < NLU_INTENT_COUNT; c++)
                sum[c] += m->weights[a * NLU_INTENT_COUNT + c];
    }
    double x = nf ? 1.0 / sqrt((double) nf) : 0.0;
    for (int c = 0; c < NLU_INTENT_COUNT; c++)
        scores[c] = m->bias[c] + m->scale * x * sum[c];
}

/* Decodes one UTF-8 sequence at p (n bytes left); returns its length, or 1
 * with cp = 0xFFFD for a broken sequence. */
static size_t s_utf8(const unsigned char *p, size_t n, uint32_t *cp)
{
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    size_t len = p[0] >= 0xF0 ? 4 : p[0] >= 0xE0 ? 3 : p[0] >= 0xC0 ? 2 : 0;
    if (len == 0 || len > n) {
        *cp = 0xFFFD;
        return 1;
    }
    uint32_t c = p[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        c = (c << 6) | (p[i] & 0x3F);
    }
    *cp = c;
    return len;
}

static bool s_is_letter(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9');
    return cp >= 0xC0 && cp < 0x2000 && cp != 0xD7 && cp != 0xF7;
}

/* Joiners, variation selectors, skin tones and keycaps: parts of an emoji
 * that carry no meaning of their own. */
static bool s_is_emoji_part(uint32_t cp)
{
    return cp == 0x200D || cp == 0xFE0F || cp == 0x20E3 || (cp >= 0x1F3FB && cp <= 0x1F3FF);
}

static void s_set(token_t *t, const char *s)
{
    t->len = strlen(s);
    memcpy(t->s, s, t->len + 1);
    t->word = false;
}

static bool s_digits(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return len > 0;
}

/* Five Crockford base32 characters with a digit among them: the tail of an
 * order id as customers type it (a digit tells it from a word). */
static bool s_oid_tail(const char *s, size_t len)
{
    bool digit = false;
    if (len != 5)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] >= '0' && s[i] <= '9')
            digit = true;
        else if (s[i] < 'a' || s[i] > 'z' || s[i] == 'u')
            return false;
    }
    return digit;
}

static size_t s_tokenize(const char *text, token_t *toks, size_t max)
{
    const unsigned char *p = (const unsigned char *) text;
    size_t n = strnlen(text, NLU_TEXT_MAX), i = 0, nt = 0;
    token_t *cur = NULL;
    while (i < n && nt < max) {
        uint32_t cp;
        size_t len = s_utf8(p + i, n - i, &cp);
        if (s_is_letter(cp)) {
            if (!cur) {
                cur = &toks[nt++];
                cur->len = 0;
                cur->word = true;
            }
            if (cur->len + len <= TOKEN_MAX) {
                for (size_t k = 0; k < len; k++) {
                    char c = (char) p[i + k];
                    cur->s[cur->len++] = (c >= 'A' && c <= 'Z') ? (char) (c - 'A' + 'a') : c;
                }
                cur->s[cur->len] = '\0';
            }
        } else if ((cp == '\'' || cp == 0x2019) && cur) {
            /* inside a word: "don't" reads "dont" */
        } else if (!s_is_emoji_part(cp)) {
            cur = NULL;
            if (cp == '$' || cp == 0xA3 || cp == 0x20AC)
                s_set(&toks[nt++], "<cur>");
            else if (cp == '?')
                s_set(&toks[nt++], "<q>");
            else if (cp == '#')
                s_set(&toks[nt++], "#");
            else if (cp >= 0x2000 && cp != 0xFFFD) {
                memcpy(toks[nt].s, p + i, len);
                toks[nt].s[len] = '\0';
                toks[nt].len = len;
                toks[nt++].word = false;
            }
        }
        i += len;
    }
    return nt;
}

/* Folds numbers and order ids ("sk-7k3q9", "sk7k3q9", "sk 7k3q9"). */
static size_t s_fold(token_t *toks, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++, o++) {
        token_t *t = &toks[i];
        if (t->len == 2 && memcmp(t->s, "sk", 2) == 0 && i + 1 < n
            && s_oid_tail(toks[i + 1].s, toks[i + 1].len)) {
            i++;
            s_set(t, "<oid>");
        } else if (t->len == 7 && memcmp(t->s, "sk", 2) == 0 && s_oid_tail(t->s + 2, 5)) {
            s_set(t, "<oid>");
        } else if (s_digits(t->s, t->len)) {
            s_set(t, "<num>");
        }
        if (o != i)
            toks[o] = *t;
    }
    return o;
}

static void s_emit(sink_t *sink, char kind, const char *a, size_t alen, const char *b, size_t blen)
{
    char buf[2 * TOKEN_MAX + 8];
    size_t len = 0;
    if (sink->n >= sink->max || alen > TOKEN_MAX || blen > TOKEN_MAX)
        return;
    buf[len++] = kind;
    memcpy(buf + len, a, alen);
    len += alen;
    if (b) {
        buf[len++] = '\x01';
        memcpy(buf + len, b, blen);
        len += blen;
    }
    sink->out[sink->n++] = nlu_hash(buf, len, 0);
}

static void s_char_grams(sink_t *sink, const token_t *t)
{
    char padded[TOKEN_MAX + 3];
    size_t len = t->len + 2;
    padded[0] = '^';
    memcpy(padded + 1, t->s, t->len);
    padded[len - 1] = '$';
    for (size_t g = 3; g <= 4; g++)
        for (size_t i = 0; i + g <= len; i++)
            s_emit(sink, (char) ('0' + g), padded + i, g, NULL, 0);
}

uint32_t nlu_class_feature(const char *class_name)
{
    char buf[64];
    int len = snprintf(buf, sizeof buf, "K%s", class_name);
    return nlu_hash(buf, len > 0 && (size_t) len < sizeof buf ? (size_t) len : 0, 0);
}

static int s_cmp_word(const void *key, const void *elem)
{
    return strcmp(key, *(const char *const *) elem);
}

static bool s_lexicon_find(const nlu_lexicon_t *lex, const char *w, uint32_t *feature)
{
    const char *const *hit = lex->n ? bsearch(w, lex->words, lex->n, sizeof *lex->words, s_cmp_word) : NULL;
    if (hit)
        *feature = lex->features[hit - lex->words];
    return hit != NULL;
}

/* The class of a word, of its singular ("shoes", "boxes", "strawberries")
 * or of its plural ("juicer" when the list says "juicers"). */
static void s_lexicon_emit(sink_t *sink, const nlu_lexicon_t *lex, const token_t *t)
{
    char w[TOKEN_MAX + 2];
    uint32_t feature;
    size_t n = t->len;
    memcpy(w, t->s, n + 1);
    bool found = s_lexicon_find(lex, w, &feature);
    if (!found && n > 3 && w[n - 1] == 's') {
        w[n - 1] = '\0';
        found = s_lexicon_find(lex, w, &feature);
        if (!found && w[n - 2] == 'e') {
            w[n - 2] = '\0';
            found = s_lexicon_find(lex, w, &feature);
            if (!found && w[n - 3] == 'i') {
                memcpy(w + n - 3, "y", 2);
                found = s_lexicon_find(lex, w, &feature);
            }
        }
    } else if (!found && n > 2) {
        memcpy(w + n, "s", 2);
        found = s_lexicon_find(lex, w, &feature);
    }
    if (found && sink->n < sink->max)
        sink->out[sink->n++] = feature;
}

static int s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return (x > y) - (x < y);
}

static const char *s_length_bucket(size_t n)
{
    return n <= 1 ? "1" : n == 2 ? "2" : n == 3 ? "3" : n <= 5 ? "4-5" : n <= 9 ? "6-9" : "10+";
}

size_t nlu_features(const nlu_lexicon_t *lex, const char *text, uint32_t *out, size_t max)
{
    token_t toks[TOKENS_MAX];
    sink_t sink = { out, 0, max };
    size_t n = s_fold(toks, s_tokenize(text, toks, TOKENS_MAX));
    const char *bucket = s_length_bucket(n);
    s_emit(&sink, 'L', bucket, strlen(bucket), NULL, 0);
    for (size_t i = 0; i <= n; i++) {
        const char *prev = i ? toks[i - 1].s : "<s>";
        size_t prevlen = i ? toks[i - 1].len : 3;
        const char *cur = i < n ? toks[i].s : "</s>";
        size_t curlen = i < n ? toks[i].len : 4;
        s_emit(&sink, 'b', prev, prevlen, cur, curlen);
        if (i == n)
            break;
        s_emit(&sink, 'w', toks[i].s, toks[i].len, NULL, 0);
        if (toks[i].word) {
            s_char_grams(&sink, &toks[i]);
            s_lexicon_emit(&sink, lex, &toks[i]);
        }
    }
    qsort(out, sink.n, sizeof *out, s_cmp_u32);
    size_t u = 0;
    for (size_t i = 0; i < sink.n; i++)
        if (u == 0 || out[u - 1] != out[i])
            out[u++] = out[i];
    return u;
}
