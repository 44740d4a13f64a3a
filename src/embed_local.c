/* embed_local: the offline embedder, feature hashing with meaning added.
 *
 * A text becomes a bag of weighted features, hashed with a sign into `dim`
 * buckets and L2-normalised (the "hashing trick"):
 *   - word stems (Snowball english, libstemmer) and stem bigrams;
 *   - character 3..5-grams of each word with boundary marks, so a typo
 *     ("mascra", "iphon") still shares most features with the word;
 *   - concepts: WordNet synsets of the word's first senses and their direct
 *     hypernyms (sneaker and running shoe are both kinds of shoe; a laptop
 *     and a notebook computer are both portable computers), WordNet
 *     collocations of two words ("running shoes", "notebook computer"), and
 *     a short shop-domain synonym list for what WordNet 3.0 lacks
 *     (smartphones) or links only loosely (sit -> seats);
 *   - a product is the weighted sum of its fields' unit vectors (name,
 *     category, description, brand, tags, attributes), so a long
 *     description cannot drown what the name and category say it is;
 *   - term frequency damped, and each feature weighed by the square root of
 *     its inverse document frequency, learnt from the catalogue at index
 *     build (fit) and stored in the index (state) so queries are weighed
 *     alike. A query feature no product has is dropped: it only adds noise;
 *   - each feature goes to HASH_COPIES buckets, so one unlucky collision
 *     with a heavy feature of another text moves a score a little, not a lot.
 * Misspelt words are also corrected against the catalogue's vocabulary by
 * search (search_words.c) before the query reaches the embedder.
 * Everything is deterministic: the same text gives the same vector on every
 * machine with the same WordNet files (their sizes are in the identity). */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "souk/embed.h"
#include "souk/error.h"
#include "stemmer.h"
#include "stopwords.h"
#include "wordnet.h"

#define IDF_BITS 18
#define IDF_SLOTS (1u << IDF_BITS)
#define IDF_SCALE 16.0f
#define FIT_SAMPLE_STEP 100000     /* docs sampled before the sampling stride doubles */
#define DOC_SLOTS 8192             /* distinct features kept per text (power of two) */
#define DOC_MAX_FEATURES (DOC_SLOTS / 2)
#define TOKEN_MAX 40
#define HASH_COPIES 4
#define HASH_COPY_WEIGHT (1.0f / 2.0f)  /* 1 / sqrt(HASH_COPIES) */
#define CACHE_MAX_ENTRIES (1u << 22)

/* Feature weights, relative to a word stem. */
#define W_WORD 1.0f
#define W_BIGRAM 0.6f
#define W_NGRAM 0.2f
#define W_SENSE 0.55f              /* first sense; sense k gets W_SENSE / (k + 1) */
#define W_HYPERNYM 0.5f            /* times the sense's weight */
#define W_COLLOCATION 0.8f
#define W_DOMAIN 1.0f
#define W_DOMAIN_PHRASE 2.0f       /* two words naming one thing say more than either */

/* Each field's share of a product's vector (its unit vector's coefficient). */
static const float s_field_mix[EMBED_FIELD_COUNT] = {
    [EMBED_FIELD_NAME] = 1.0f, [EMBED_FIELD_BRAND] = 0.5f, [EMBED_FIELD_CATEGORY] = 0.8f,
    [EMBED_FIELD_TAGS] = 0.5f, [EMBED_FIELD_DESCRIPTION] = 0.7f, [EMBED_FIELD_ATTRS] = 0.3f,
};

/* Shop-domain synonym groups: each line is one concept. Words are stemmed
 * at start-up, so one form of each is enough. */
static const char *const s_domain_groups[] = {
    "phone smartphone cellphone cellular iphone android handset",
    "laptop notebook macbook ultrabook chromebook zenbook matebook computer",
    "tablet ipad",
    "sit seat seating chair sofa couch armchair stool bench recliner",
    "bed mattress bedroom sleep",
    "shoe sneaker trainer footwear boot sandal heel cleat loafer",
    "sneaker trainer running_shoe gym_shoe tennis_shoe jogger",
    "lipstick lip makeup cosmetic mascara eyeshadow eyeliner foundation blush nail beauty",
    "perfume fragrance cologne scent parfum eau",
    "watch wristwatch timepiece chronograph smartwatch",
    "headphone earphone earbud airpods headset earpod",
    "speaker soundbar",
    "tv television",
    "fridge refrigerator",
    "bag handbag purse tote backpack clutch",
    "shirt tshirt tee blouse top",
    "dress gown frock",
    "sunglasses shades eyewear glasses",
    "jewellery jewelry necklace ring earring bracelet pendant",
    "motorcycle motorbike bike scooter sportbike",
    "car vehicle automobile suv sedan",
    "charger charging cable adapter powerbank",
    "pan pot wok cookware skillet saucepan",
    "drink beverage juice soda",
    "fruit kiwi lemon strawberry mulberry berry",
    "vegetable veggie cucumber potato onion pepper",
    "meat beef chicken steak",
    "lotion moisturizer moisturiser soap skincare",
    "waterproof watertight",
    "lamp lighting",
    "decoration decor ornament",
    "cheap budget affordable inexpensive",
};
#define DOMAIN_GROUPS (sizeof s_domain_groups / sizeof s_domain_groups[0])

typedef struct {
    uint64_t h;
    float w;
} concept_t;

typedef struct {
    uint64_t key_hash;         /* 0: empty slot */
    uint32_t key_off, concept_off;
    uint16_t key_len, n_concepts;
    uint64_t stem_hash;
    uint8_t stop;
} cache_entry_t;

typedef struct {
    int dim;
    stemmer_t *stemmer;
    wordnet_t *wn;             /* NULL: no WordNet concepts */
    /* domain groups: stem hash -> group, linear (looked up once per word) */
    uint64_t *domain_stem;
    uint16_t *domain_group;
    size_t n_domain;
    /* word and collocation cache */
    cache_entry_t *cache;
    size_t cache_cap, cache_n;
    char *keys;
    size_t keys_len, keys_cap;
    concept_t *concepts;
    size_t concepts_len, concepts_cap;
    /* features of the text being embedded */
    uint64_t fh[DOC_SLOTS];
    float fw[DOC_SLOTS];
    uint32_t fstamp[DOC_SLOTS];
    uint16_t fused[DOC_MAX_FEATURES];
    uint32_t stamp;
    size_t n_used;
    /* inverse document frequencies */
    float *field_vec;          /* one field's vector, while embedding a product */
    uint8_t *idf;              /* IDF_SLOTS; NULL: not fitted (all 1) */
    float idf_weight[256];     /* a feature's factor by its quantized IDF */
    float *df;                 /* while fitting */
    uint64_t fit_seen, fit_sampled, fit_stride, n_docs;
} local_t;

static inline int isalnum_ascii(unsigned c)
{
    return ((c | 32) >= 'a' && (c | 32) <= 'z') || (c >= '0' && c <= '9');
}

/* ---- hashing ------------------------------------------------------------ */

static inline uint64_t s_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint64_t s_hash(char type, const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)(uint8_t)type;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 0x100000001b3ULL;
    return s_mix(h) | 1;       /* never 0: 0 marks an empty cache slot */
}

static uint64_t s_hash2(char type, uint64_t a, uint64_t b)
{
    return s_mix(a * 0x9e3779b97f4a7c15ULL + b + (uint64_t)(uint8_t)type) | 1;
}

/* ---- stems -------------------------------------------------- */

static uint64_t s_stem_hash(local_t *L, const char *w, size_t len)
{
    size_t sl;
    const char *st = stemmer_stem(L->stemmer, w, len, &sl);
    return s_hash('w', st, sl);
}

/* ---- the cache of what a word (or a "a_b" collocation) contributes ------- */

static int s_push_concept(local_t *L, uint64_t h, float w)
{
    if (L->concepts_len == L->concepts_cap) {
        size_t cap = L->concepts_cap ? 2 * L->concepts_cap : 4096;
        concept_t *c = realloc(L->concepts, cap * sizeof *c);
        if (!c)
            return SOUK_ENOMEM;
        L->concepts = c;
        L->concepts_cap = cap;
    }
    L->concepts[L->concepts_len++] = (concept_t){ h, w };
    return SOUK_OK;
}

/* Synsets of the first senses of `lemma` in pos, and their hypernyms. */
static void s_wordnet_concepts(local_t *L, wordnet_pos_t pos, const char *lemma, size_t len,
                               int max_senses, float weight)
{
    uint32_t senses[4], hyper[4];
    int n = wordnet_senses(L->wn, pos, lemma, len, senses, max_senses);
    for (int k = 0; k < n; k++) {
        float w = weight / (float)(k + 1);
        s_push_concept(L, s_hash2('s', pos, senses[k]), w);
        if (pos == WORDNET_ADJ)
            continue;
        int nh = wordnet_hypernyms(L->wn, pos, senses[k], hyper, 4);
        for (int j = 0; j < nh; j++)
            s_push_concept(L, s_hash2('s', pos, hyper[j]), w * W_HYPERNYM);
    }
}

static void s_word_concepts(local_t *L, const char *w, size_t len, uint64_t stem_hash)
{
    for (size_t i = 0; i < L->n_domain; i++)
        if (L->domain_stem[i] == stem_hash)
            s_push_concept(L, s_hash2('d', 0, L->domain_group[i]), W_DOMAIN);
    if (!L->wn || len < 3 || strpbrk(w, "0123456789"))
        return;
    static const int max_senses[WORDNET_POS_COUNT] = { 3, 1, 1 };
    static const float pos_weight[WORDNET_POS_COUNT] = { 1.0f, 0.5f, 0.5f };
    for (int pos = 0; pos < WORDNET_POS_COUNT; pos++) {
        char forms[256];
        if (wordnet_base_forms(L->wn, (wordnet_pos_t)pos, w, len, forms, sizeof forms) > 0)
            s_wordnet_concepts(L, (wordnet_pos_t)pos, forms, strlen(forms), max_senses[pos],
                               W_SENSE * pos_weight[pos]);
    }
}

static void s_collocation_concepts(local_t *L, const char *w, size_t len)
{
    const char *us = memchr(w, '_', len);
    if (us) {
        uint64_t a = s_stem_hash(L, w, (size_t)(us - w));
        uint64_t h = s_hash2('b', a, s_stem_hash(L, us + 1, len - (size_t)(us - w) - 1));
        for (size_t i = 0; i < L->n_domain; i++)
            if (L->domain_stem[i] == h)
                s_push_concept(L, s_hash2('d', 0, L->domain_group[i]), W_DOMAIN_PHRASE);
    }
    if (!L->wn)
        return;
    char forms[256];
    if (wordnet_base_forms(L->wn, WORDNET_NOUN, w, len, forms, sizeof forms) > 0)
        s_wordnet_concepts(L, WORDNET_NOUN, forms, strlen(forms), 2, W_COLLOCATION);
}

static void s_cache_clear(local_t *L)
{
    memset(L->cache, 0, L->cache_cap * sizeof *L->cache);
    L->cache_n = L->keys_len = L->concepts_len = 0;
}

static int s_cache_grow(local_t *L)
{
    size_t cap = L->cache_cap ? 2 * L->cache_cap : 8192;
    if (cap > 2 * CACHE_MAX_ENTRIES) {
        s_cache_clear(L);
        return SOUK_OK;
    }
    cache_entry_t *c = calloc(cap, sizeof *c);
    if (!c)
        return SOUK_ENOMEM;
    for (size_t i = 0; i < L->cache_cap; i++) {
        if (!L->cache[i].key_hash)
            continue;
        size_t j = L->cache[i].key_hash & (cap - 1);
        while (c[j].key_hash)
            j = (j + 1) & (cap - 1);
        c[j] = L->cache[i];
    }
    free(L->cache);
    L->cache = c;
    L->cache_cap = cap;
    return SOUK_OK;
}

/* The entry for word w (collocation: is_pair, w = "a_b"); NULL on ENOMEM. */
static const cache_entry_t *s_lookup(local_t *L, const char *w, size_t len, int is_pair)
{
    uint64_t kh = s_hash(is_pair ? 'p' : 'k', w, len);
    if (L->cache_cap) {
        for (size_t j = kh & (L->cache_cap - 1);; j = (j + 1) & (L->cache_cap - 1)) {
            cache_entry_t *e = &L->cache[j];
            if (!e->key_hash)
                break;
            if (e->key_hash == kh && e->key_len == len && memcmp(L->keys + e->key_off, w, len) == 0)
                return e;
        }
    }
    if ((L->cache_n + 1) * 2 > L->cache_cap && s_cache_grow(L) != SOUK_OK)
        return NULL;
    if (L->keys_len + len > L->keys_cap) {
        size_t cap = L->keys_cap ? 2 * L->keys_cap : 65536;
        while (cap < L->keys_len + len)
            cap *= 2;
        char *k = realloc(L->keys, cap);
        if (!k)
            return NULL;
        L->keys = k;
        L->keys_cap = cap;
    }
    cache_entry_t e = { .key_hash = kh, .key_off = (uint32_t)L->keys_len, .key_len = (uint16_t)len,
                        .concept_off = (uint32_t)L->concepts_len };
    memcpy(L->keys + L->keys_len, w, len);
    L->keys_len += len;
    if (is_pair) {
        s_collocation_concepts(L, w, len);
    } else {
        e.stop = (uint8_t)stopword_is(w, len);
        e.stem_hash = s_stem_hash(L, w, len);
        if (!e.stop)
            s_word_concepts(L, w, len, e.stem_hash);
    }
    e.n_concepts = (uint16_t)(L->concepts_len - e.concept_off);
    size_t j = kh & (L->cache_cap - 1);
    while (L->cache[j].key_hash)
        j = (j + 1) & (L->cache_cap - 1);
    L->cache[j] = e;
    L->cache_n++;
    return &L->cache[j];
}

/* ---- the features of one text -------------------------------------------- */

static void s_features_begin(local_t *L)
{
    if (++L->stamp == 0) {
        memset(L->fstamp, 0, sizeof L->fstamp);
        L->stamp = 1;
    }
    L->n_used = 0;
}

static void s_feature(local_t *L, uint64_t h, float w)
{
    for (size_t j = h & (DOC_SLOTS - 1);; j = (j + 1) & (DOC_SLOTS - 1)) {
        if (L->fstamp[j] != L->stamp) {
            if (L->n_used == DOC_MAX_FEATURES)
                return;
            L->fstamp[j] = L->stamp;
            L->fh[j] = h;
            L->fw[j] = w;
            L->fused[L->n_used++] = (uint16_t)j;
            return;
        }
        if (L->fh[j] == h) {
            L->fw[j] += w;
            return;
        }
    }
}

static void s_ngrams(local_t *L, const char *w, size_t len, float weight)
{
    char padded[TOKEN_MAX + 2];
    padded[0] = '<';
    memcpy(padded + 1, w, len);
    padded[len + 1] = '>';
    size_t plen = len + 2;
    for (size_t n = 3; n <= 5; n++)
        for (size_t i = 0; i + n <= plen; i++)
            s_feature(L, s_hash((char)('0' + n), padded + i, n), weight);
}

/* Tokens: runs of ASCII letters and digits (lower-cased) and UTF-8 bytes. */
static size_t s_next_token(const char **p, char *tok)
{
    const unsigned char *s = (const unsigned char *)*p;
    for (;;) {
        while (*s && !(isalnum_ascii(*s) || *s >= 0x80))
            s++;
        size_t len = 0;
        while (*s && (isalnum_ascii(*s) || *s >= 0x80)) {
            if (len < TOKEN_MAX)
                tok[len++] = (char)((*s >= 'A' && *s <= 'Z') ? *s + 32 : *s);
            s++;
        }
        *p = (const char *)s;
        if (len == 0 || len > 1 || (tok[0] >= '0' && tok[0] <= '9')) {
            tok[len] = '\0';
            return len;
        }
    }
}

/* ngrams: 0 none, 1 every word, 2 only words the catalogue does not know
 * (a query: a known word needs no typo rescue, and its n-grams would only
 * dilute the words and concepts that carry the meaning). */
static bool s_known(const local_t *L, uint64_t h)
{
    return L->idf && L->idf[(h >> 32) & (IDF_SLOTS - 1)];
}

static void s_text_features(local_t *L, const char *text, float fw, int ngrams)
{
    char tok[TOKEN_MAX + 1], prev[TOKEN_MAX + 1], pair[2 * TOKEN_MAX + 2];
    size_t len, prev_len = 0;
    uint64_t prev_stem = 0;
    const char *p = text;
    while ((len = s_next_token(&p, tok)) > 0) {
        const cache_entry_t *e = s_lookup(L, tok, len, 0);
        if (!e)
            return;
        if (e->stop) {
            prev_len = 0;
            continue;
        }
        uint64_t stem = e->stem_hash;
        size_t off = e->concept_off, nc = e->n_concepts;
        s_feature(L, stem, W_WORD * fw);
        if (ngrams && strspn(tok, "0123456789") != len && (ngrams == 1 || !s_known(L, stem)))
            s_ngrams(L, tok, len, W_NGRAM * fw);
        for (size_t i = 0; i < nc; i++)
            s_feature(L, L->concepts[off + i].h, L->concepts[off + i].w * fw);
        if (prev_len) {
            s_feature(L, s_hash2('b', prev_stem, stem), W_BIGRAM * fw);
            memcpy(pair, prev, prev_len);
            pair[prev_len] = '_';
            memcpy(pair + prev_len + 1, tok, len + 1);
            const cache_entry_t *c = s_lookup(L, pair, prev_len + 1 + len, 1);
            for (size_t i = 0; c && i < c->n_concepts; i++)
                s_feature(L, L->concepts[c->concept_off + i].h,
                          L->concepts[c->concept_off + i].w * fw);
        }
        memcpy(prev, tok, len + 1);
        prev_len = len;
        prev_stem = stem;
    }
}

static void s_doc_features(local_t *L, const embed_doc_t *doc)
{
    s_features_begin(L);
    for (int f = 0; f < EMBED_FIELD_COUNT; f++)
        if (doc->field[f])
            s_text_features(L, doc->field[f], 1.0f, f < EMBED_FIELD_DESCRIPTION);
}

static void s_normalize(float *v, int dim)
{
    double norm = 0;
    for (int d = 0; d < dim; d++)
        norm += (double)v[d] * v[d];
    if (norm > 0) {
        float inv = (float)(1.0 / sqrt(norm));
        for (int d = 0; d < dim; d++)
            v[d] *= inv;
    }
}

/* Weighs the collected features and hashes them into out (dim floats). */
static void s_features_to_vector(local_t *L, int query, float *out)
{
    memset(out, 0, (size_t)L->dim * sizeof *out);
    for (size_t i = 0; i < L->n_used; i++) {
        size_t j = L->fused[i];
        uint64_t h = L->fh[j];
        float w = L->fw[j];
        w = w <= 1.0f ? w : 1.0f + logf(w);
        if (L->idf) {
            uint8_t q = L->idf[(h >> 32) & (IDF_SLOTS - 1)];
            if (!q && query)
                continue;
            w *= L->idf_weight[q];
        }
        /* HASH_COPIES buckets per feature: one unlucky collision with a
         * heavy feature of another text then moves a score a little, not a lot */
        w *= HASH_COPY_WEIGHT;
        for (int c = 0; c < HASH_COPIES; c++, h = s_mix(h + 0x9e3779b97f4a7c15ULL)) {
            uint32_t bucket = (uint32_t)(((h & 0xffffffffULL) * (uint64_t)L->dim) >> 32);
            out[bucket] += (h >> 63) ? -w : w;
        }
    }
    s_normalize(out, L->dim);
}

/* ---- the vtable ------------------------------------------------------------ */

static int s_embed(void *impl, embed_kind_t kind, const char *const *texts, size_t n, float *out)
{
    local_t *L = impl;
    for (size_t i = 0; i < n; i++) {
        s_features_begin(L);
        if (texts[i])
            s_text_features(L, texts[i], 1.0f, kind == EMBED_QUERY ? 2 : 1);
        s_features_to_vector(L, kind == EMBED_QUERY, out + i * (size_t)L->dim);
    }
    return SOUK_OK;
}

/* A product is the weighted sum of its fields' unit vectors: a long
 * description cannot drown what the name and the category say it is. */
static int s_embed_docs(void *impl, const embed_doc_t *docs, size_t n, float *out)
{
    local_t *L = impl;
    for (size_t i = 0; i < n; i++) {
        float *v = out + i * (size_t)L->dim;
        memset(v, 0, (size_t)L->dim * sizeof *v);
        for (int f = 0; f < EMBED_FIELD_COUNT; f++) {
            if (!docs[i].field[f] || !*docs[i].field[f])
                continue;
            s_features_begin(L);
            s_text_features(L, docs[i].field[f], 1.0f, f < EMBED_FIELD_DESCRIPTION);
            s_features_to_vector(L, 0, L->field_vec);
            for (int d = 0; d < L->dim; d++)
                v[d] += s_field_mix[f] * L->field_vec[d];
        }
        s_normalize(v, L->dim);
    }
    return SOUK_OK;
}

/* The square root of the IDF, not the IDF: a meaning shared by a whole
 * category (every smartphone is a phone) must still count next to a word
 * that only one product happens to use. Slot 0 (a feature the fit never
 * saw, on the document side) gets the largest IDF. */
static void s_idf_weights(local_t *L)
{
    L->idf_weight[0] = sqrtf(logf((float)L->n_docs + 1.0f) + 1.0f);
    for (int q = 1; q < 256; q++)
        L->idf_weight[q] = sqrtf((float)q / IDF_SCALE);
}

/* Counts document frequencies on a sample whose stride doubles every
 * FIT_SAMPLE_STEP sampled docs; a sampled doc counts for `stride` docs. */
static int s_fit_add(void *impl, const embed_doc_t *docs, size_t n)
{
    local_t *L = impl;
    if (!L->df) {
        L->df = calloc(IDF_SLOTS, sizeof *L->df);
        if (!L->df)
            return SOUK_ENOMEM;
        L->fit_stride = 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (L->fit_seen++ % L->fit_stride)
            continue;
        s_doc_features(L, &docs[i]);
        for (size_t k = 0; k < L->n_used; k++)
            L->df[(L->fh[L->fused[k]] >> 32) & (IDF_SLOTS - 1)] += (float)L->fit_stride;
        if (++L->fit_sampled % FIT_SAMPLE_STEP == 0)
            L->fit_stride *= 2;
    }
    return SOUK_OK;
}

static int s_fit_end(void *impl)
{
    local_t *L = impl;
    if (!L->idf && !(L->idf = malloc(IDF_SLOTS)))
        return SOUK_ENOMEM;
    L->n_docs = L->fit_seen;
    for (size_t s = 0; s < IDF_SLOTS; s++) {
        float df = L->df ? L->df[s] : 0;
        if (df <= 0) {
            L->idf[s] = 0;
            continue;
        }
        float v = logf(((float)L->n_docs + 1.0f) / (df + 0.5f)) * IDF_SCALE + 0.5f;
        L->idf[s] = (uint8_t)(v < 1 ? 1 : v > 255 ? 255 : v);
    }
    free(L->df);
    L->df = NULL;
    L->fit_seen = L->fit_sampled = 0;
    s_idf_weights(L);
    return SOUK_OK;
}

#define STATE_MAGIC "SKIDF001"
#define STATE_HEAD 24              /* magic, u32 slots, u32 zero, u64 docs */

static int s_state_save(void *impl, uint8_t **blob, size_t *len)
{
    local_t *L = impl;
    if (!L->idf)
        return SOUK_OK;
    uint8_t *b = malloc(STATE_HEAD + IDF_SLOTS);
    if (!b)
        return SOUK_ENOMEM;
    uint32_t slots = IDF_SLOTS, zero = 0;
    memcpy(b, STATE_MAGIC, 8);
    memcpy(b + 8, &slots, 4);
    memcpy(b + 12, &zero, 4);
    memcpy(b + 16, &L->n_docs, 8);
    memcpy(b + STATE_HEAD, L->idf, IDF_SLOTS);
    *blob = b;
    *len = STATE_HEAD + IDF_SLOTS;
    return SOUK_OK;
}

static int s_state_load(void *impl, const uint8_t *blob, size_t len)
{
    local_t *L = impl;
    uint32_t slots;
    if (len == 0) {
        free(L->idf);
        L->idf = NULL;
        L->n_docs = 0;
        return SOUK_OK;
    }
    if (len != STATE_HEAD + IDF_SLOTS || memcmp(blob, STATE_MAGIC, 8) != 0)
        return SOUK_EPROTO;
    memcpy(&slots, blob + 8, 4);
    if (slots != IDF_SLOTS)
        return SOUK_EPROTO;
    if (!L->idf && !(L->idf = malloc(IDF_SLOTS)))
        return SOUK_ENOMEM;
    memcpy(&L->n_docs, blob + 16, 8);
    memcpy(L->idf, blob + STATE_HEAD, IDF_SLOTS);
    s_idf_weights(L);
    return SOUK_OK;
}

static void s_destroy(void *impl)
{
    local_t *L = impl;
    stemmer_free(&L->stemmer);
    wordnet_close(&L->wn);
    free(L->domain_stem);
    free(L->domain_group);
    free(L->cache);
    free(L->keys);
    free(L->concepts);
    free(L->field_vec);
    free(L->idf);
    free(L->df);
    free(L);
}

static const embed_vtable_t s_local_vtable = {
    .name = "local",
    .batch_max = 64,
    .embed = s_embed,
    .embed_docs = s_embed_docs,
    .fit_add = s_fit_add,
    .fit_end = s_fit_end,
    .state_save = s_state_save,
    .state_load = s_state_load,
    .destroy = s_destroy,
};

/* Domain members are words, or two words joined by '_' (matched as a bigram). */
static int s_domain_init(local_t *L)
{
    size_t cap = 0;
    for (size_t g = 0; g < DOMAIN_GROUPS; g++)
        for (const char *p = s_domain_groups[g]; *p; p++)
            cap += *p == ' ';
    cap += DOMAIN_GROUPS;
    L->domain_stem = malloc(cap * sizeof *L->domain_stem);
    L->domain_group = malloc(cap * sizeof *L->domain_group);
    if (!L->domain_stem || !L->domain_group)
        return SOUK_ENOMEM;
    for (size_t g = 0; g < DOMAIN_GROUPS; g++) {
        for (const char *p = s_domain_groups[g]; *p && L->n_domain < cap;) {
            size_t len = strcspn(p, " ");
            const char *us = memchr(p, '_', len);
            uint64_t h;
            if (us) {
                uint64_t a = s_stem_hash(L, p, (size_t)(us - p));
                h = s_hash2('b', a, s_stem_hash(L, us + 1, len - (size_t)(us - p) - 1));
            } else {
                h = s_stem_hash(L, p, len);
            }
            L->domain_stem[L->n_domain] = h;
            L->domain_group[L->n_domain++] = (uint16_t)g;
            p += len;
            p += strspn(p, " ");
        }
    }
    return SOUK_OK;
}

int embed_local_new(int dim, const char *wordnet_dir, embedder_t **out, char *err, size_t errlen)
{
    if (!out || dim < 1 || dim > EMBED_DIM_MAX)
        return SOUK_EINVAL;
    local_t *L = calloc(1, sizeof *L);
    if (!L)
        return SOUK_ENOMEM;
    L->dim = dim;
    L->field_vec = malloc((size_t)dim * sizeof *L->field_vec);
    int rc = L->field_vec ? stemmer_new(&L->stemmer) : SOUK_ENOMEM;
    if (rc == SOUK_OK)
        rc = s_domain_init(L);
    if (rc != SOUK_OK) {
        s_destroy(L);
        if (err && errlen)
            snprintf(err, errlen, "embedder local: %s",
                     rc == SOUK_EUNAVAIL ? "libstemmer is not installed (libstemmer0d)"
                                         : "out of memory");
        return rc == SOUK_EUNAVAIL ? SOUK_ECONFIG : rc;
    }
    if (wordnet_dir && *wordnet_dir)
        wordnet_open(wordnet_dir, &L->wn);      /* optional: without it, no WordNet concepts */
    char params[256];
    snprintf(params, sizeof params, "v1 ngram=3-5 stem=english idf=%d domain=%zu %s", IDF_BITS,
             DOMAIN_GROUPS, L->wn ? wordnet_identity(L->wn) : "wn:none");
    return embed_new_custom(&s_local_vtable, L, dim, params, out);
}
