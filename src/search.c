/* search: a customer's words -> ranked products, from the index file alone.
 *
 * A query goes: pick up a rebuilt index -> take the price words out (a
 * filter) -> take an exact SKU out (ranked first) -> correct misspelt words
 * against the catalogue's vocabulary -> embed what is left -> boost named
 * brands, named categories and the categories whose centroid the query is
 * close to -> ask the vector store (souk/vstore.h: the mapped file, or
 * Pinecone) for the best products under the filters and boosts. The brand and
 * category tables and the speller are derived from the index whenever a new
 * one is mapped, as is the embedder's learnt state. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "souk/error.h"
#include "souk/search.h"
#include "souk/vindex.h"
#include "souk/vstore.h"
#include "search_words.h"
#include "stemmer.h"
#include "stopwords.h"

#define BRAND_BOOST 0.10f
#define CATEGORY_BOOST 0.06f
#define CENTROID_BOOST 0.5f
#define LEX_BOOST 0.2f
#define SKU_SCORE 2.0f
#define STEMS_MAX 8                /* per category name */
#define QUERY_STEMS_MAX 64
#define TEXT_MAX 1024

typedef struct {
    char *norm;                /* " mens shoes " */
    uint64_t stems[STEMS_MAX]; /* significant stems ("shoe") */
    int n_stems;
} cat_t;

struct search_s {
    vindex_t *vx;
    vstore_t *vs;              /* where the nearest-neighbour query goes */
    embedder_t *e;
    embed_id_t id;
    stemmer_t *stemmer;
    bool derived;              /* tables below match the mapped index */
    char **brand_norm;         /* " dolce gabbana " */
    cat_t *cats;
    int n_brands, n_cats;
    float *brand_boost, *cat_boost;
    uint8_t *cat_mask;
    speller_t *speller;
    float *lex;                /* per product: share of the query's stems it holds */
    uint32_t *touched;         /* products with lex != 0 */
    size_t n_touched, n_products;
    float *qvec;
    vindex_hit_t hits[SEARCH_LIMIT_MAX + 1];
    search_info_t info;
    char err[512];
};

/* Words that name who a category is for, not what it holds. */
static const char *const s_generic_stems[] = { "men", "women", "mens", "womens", "accessori" };

/* Lower-case ASCII words separated by single spaces, with a space at each
 * end, into out; returns out. */
static char *s_normalize(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    if (outlen < 3)
        return NULL;
    out[o++] = ' ';
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 2 < outlen; p++) {
        if (isalnum(*p) || *p >= 0x80)
            out[o++] = (char)tolower(*p);
        else if (out[o - 1] != ' ')
            out[o++] = ' ';
    }
    if (out[o - 1] != ' ')
        out[o++] = ' ';
    out[o] = '\0';
    return out;
}

static uint64_t s_stem(search_t *self, const char *w, size_t len)
{
    size_t sl;
    const char *s = stemmer_stem(self->stemmer, w, len, &sl);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < sl; i++)
        h = (h ^ (uint8_t)s[i]) * 0x100000001b3ULL;
    return h;
}

/* Stems of the words of a normalized text; generic ones left out if asked. */
static int s_stems(search_t *self, const char *norm, bool skip_generic, uint64_t *out, int max)
{
    int n = 0;
    uint64_t generic[sizeof s_generic_stems / sizeof s_generic_stems[0]];
    for (size_t g = 0; g < sizeof generic / sizeof generic[0]; g++)
        generic[g] = s_stem(self, s_generic_stems[g], strlen(s_generic_stems[g]));
    for (const char *p = norm; *p && n < max;) {
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, " ");
        if (!len)
            break;
        uint64_t h = s_stem(self, p, len);
        bool skip = false;
        for (size_t g = 0; skip_generic && g < sizeof generic / sizeof generic[0]; g++)
            skip = skip || h == generic[g];
        if (!skip)
            out[n++] = h;
        p += len;
    }
    return n;
}

static void s_free_derived(search_t *self)
{
    for (int b = 0; b < self->n_brands; b++)
        free(self->brand_norm[b]);
    for (int c = 0; c < self->n_cats; c++)
        free(self->cats[c].norm);
    free(self->brand_norm);
    free(self->cats);
    free(self->brand_boost);
    free(self->cat_boost);
    free(self->cat_mask);
    speller_free(&self->speller);
    free(self->lex);
    free(self->touched);
    self->lex = NULL;
    self->touched = NULL;
    self->n_touched = self->n_products = 0;
    self->brand_norm = NULL;
    self->cats = NULL;
    self->brand_boost = self->cat_boost = NULL;
    self->cat_mask = NULL;
    self->n_brands = self->n_cats = 0;
    self->derived = false;
}

/* Loads the embedder's state from a newly mapped index and derives the
 * brand and category tables. */
static int s_derive(search_t *self)
{
    s_free_derived(self);
    embed_id_t built;
    vindex_embedder(self->vx, &built);
    if (embed_id_equal(&built, &self->id)) {
        const uint8_t *blob;
        size_t len;
        vindex_state(self->vx, &blob, &len);
        int rc = embed_state_load(self->e, blob, len);
        if (rc != SOUK_OK) {
            snprintf(self->err, sizeof self->err, "index: embedder state unreadable (%s)",
                     souk_strerror(rc));
            return rc;
        }
    }
    int nb = vindex_brand_count(self->vx), nc = vindex_category_count(self->vx);
    self->brand_norm = calloc((size_t)nb + 1, sizeof *self->brand_norm);
    self->cats = calloc((size_t)nc + 1, sizeof *self->cats);
    self->brand_boost = calloc((size_t)nb + 1, sizeof *self->brand_boost);
    self->cat_boost = calloc((size_t)nc + 1, sizeof *self->cat_boost);
    self->cat_mask = calloc((size_t)nc + 1, 1);
    if (!self->brand_norm || !self->cats || !self->brand_boost || !self->cat_boost ||
        !self->cat_mask) {
        s_free_derived(self);
        return SOUK_ENOMEM;
    }
    const char *words;
    size_t words_len;
    vindex_words(self->vx, &words, &words_len);
    if (speller_new(words, words_len, &self->speller) != SOUK_OK)
        return SOUK_ENOMEM;
    self->n_products = vindex_count(self->vx);
    self->lex = calloc(self->n_products + 1, sizeof *self->lex);
    self->touched = malloc((self->n_products + 1) * sizeof *self->touched);
    if (!self->lex || !self->touched)
        return SOUK_ENOMEM;
    char buf[512];
    for (; self->n_brands < nb; self->n_brands++) {
        s_normalize(vindex_brand_name(self->vx, self->n_brands), buf, sizeof buf);
        if (!(self->brand_norm[self->n_brands] = strdup(buf)))
            return SOUK_ENOMEM;
    }
    for (; self->n_cats < nc; self->n_cats++) {
        cat_t *c = &self->cats[self->n_cats];
        s_normalize(vindex_category_name(self->vx, self->n_cats), buf, sizeof buf);
        if (!(c->norm = strdup(buf)))
            return SOUK_ENOMEM;
        c->n_stems = s_stems(self, buf, true, c->stems, STEMS_MAX);
    }
    self->derived = true;
    return SOUK_OK;
}

int search_open_index(const char *index_path, embedder_t *embedder, search_t **out, char *err,
                      size_t errlen)
{
    if (!index_path || !embedder || !out) {
        embed_destroy(&embedder);
        return SOUK_EINVAL;
    }
    search_t *self = calloc(1, sizeof *self);
    if (!self) {
        embed_destroy(&embedder);
        return SOUK_ENOMEM;
    }
    self->e = embedder;
    embed_identity(embedder, &self->id);
    self->qvec = malloc((size_t)self->id.dim * sizeof *self->qvec);
    int rc = self->qvec ? stemmer_new(&self->stemmer) : SOUK_ENOMEM;
    if (rc == SOUK_EUNAVAIL) {
        if (err && errlen)
            snprintf(err, errlen, "search: libstemmer is not installed (libstemmer0d)");
        rc = SOUK_ECONFIG;
    }
    if (rc == SOUK_OK)
        rc = vstore_open(NULL, &self->vs, err, errlen);
    if (rc == SOUK_OK)
        rc = vindex_open(index_path, VINDEX_ALLOW_MISSING, &self->vx, err, errlen);
    if (rc == SOUK_OK && vindex_ready(self->vx))
        rc = s_derive(self);
    if (rc != SOUK_OK) {
        if (err && errlen && rc == SOUK_ENOMEM)
            snprintf(err, errlen, "search: out of memory");
        search_close(&self);
        return rc;
    }
    *out = self;
    return SOUK_OK;
}

int search_open(const char *data_dir, const char *embedder_spec, search_t **out, char *err,
                size_t errlen)
{
    if (!data_dir || !*data_dir || !out)
        return SOUK_EINVAL;
    embedder_t *e;
    int rc = embed_new(embedder_spec, &e, err, errlen);
    if (rc != SOUK_OK)
        return rc;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", data_dir, VINDEX_FILE);
    return search_open_index(path, e, out, err, errlen);
}

void search_close(search_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    search_t *self = *self_p;
    s_free_derived(self);
    vindex_close(&self->vx);
    vstore_close(&self->vs);
    embed_destroy(&self->e);
    stemmer_free(&self->stemmer);
    free(self->qvec);
    free(self);
    *self_p = NULL;
}

const char *search_last_error(const search_t *self)
{
    return self && self->err[0] ? self->err : "ok";
}

const search_info_t *search_last_info(const search_t *self)
{
    return &self->info;
}

/* ---- one query ------------------------------------------------------------- */

/* Removes [from, to) from text (in place), keeping one space. */
static void s_cut(char *text, size_t from, size_t to)
{
    memmove(text + from + 1, text + to, strlen(text + to) + 1);
    text[from] = ' ';
}

/* Finds an exact SKU among the words of text and removes it. */
static int s_take_sku(search_t *self, char *text, uint32_t *id)
{
    size_t len = strlen(text);
    while (len && isspace((unsigned char)text[len - 1]))
        len--;
    const char *s = text + strspn(text, " \t\n");
    if (len > (size_t)(s - text) && vindex_find_sku(self->vx, s, len - (size_t)(s - text), id) == SOUK_OK) {
        text[0] = '\0';
        return 1;
    }
    static const char *const edge = " \t\n,;:!?()[]\"'";
    for (char *p = text; *p;) {
        p += strspn(p, " \t\n");
        size_t wl = strcspn(p, " \t\n");
        size_t a = strspn(p, edge), b = wl;
        while (b > a && strchr(edge + 3, p[b - 1]))
            b--;
        if (b > a + 2 && vindex_find_sku(self->vx, p + a, b - a, id) == SOUK_OK) {
            s_cut(text, (size_t)(p - text), (size_t)(p - text) + wl);
            return 1;
        }
        p += wl;
    }
    return 0;
}

/* Appends to text the catalogue word nearest to each word no product has
 * ("mascra" -> "mascra mascara"); the original stays for the embedder's
 * own n-gram matching. */
static void s_correct(search_t *self, char *text, size_t cap)
{
    char norm[TEXT_MAX + 2], add[TEXT_MAX];
    size_t alen = 0;
    s_normalize(text, norm, sizeof norm);
    for (char *p = norm + 1; *p;) {
        size_t len = strcspn(p, " ");
        bool digits = strcspn(p, "0123456789") < len;
        if (len >= 4 && !digits && !stopword_is(p, len) &&
            !speller_known(self->speller, p, len)) {
            const char *fix = speller_correct(self->speller, p, len);
            size_t fl = fix ? strlen(fix) : 0;
            if (fix && alen + fl + 1 < sizeof add) {
                add[alen++] = ' ';
                memcpy(add + alen, fix, fl);
                alen += fl;
                self->info.corrections++;
            }
        }
        p += len;
        p += strspn(p, " ");
    }
    add[alen] = '\0';
    size_t tl = strlen(text);
    if (alen && tl + alen < cap)
        memcpy(text + tl, add, alen + 1);
}

/* Exact matching: each product gets LEX_BOOST times the IDF-weighted share
 * of the query's word stems that its texts hold. A colour that only an
 * attribute mentions, or a model number, then counts for what it is, not
 * only for where the hashing put it. Returns whether any product got one. */
static bool s_lexical(search_t *self, const char *text)
{
    for (size_t i = 0; i < self->n_touched; i++)
        self->lex[self->touched[i]] = 0;
    self->n_touched = 0;
    char w[WORD_MAX + 1], seen[TEXT_MAX] = "";
    size_t len, seen_len = 0;
    float total = 0;
    while ((len = words_next(&text, w)) > 0) {
        if (len < 2 || stopword_is(w, len))
            continue;
        size_t sl;
        const char *stem = stemmer_stem(self->stemmer, w, len, &sl);
        const uint32_t *ids;
        size_t n;
        char key[WORD_MAX + 3];
        snprintf(key, sizeof key, " %.*s ", (int)sl, stem);
        if (strstr(seen, key) || vindex_term_postings(self->vx, stem, sl, &ids, &n) != SOUK_OK)
            continue;
        if (seen_len + strlen(key) < sizeof seen)
            seen_len += (size_t)snprintf(seen + seen_len, sizeof seen - seen_len, "%s", key);
        float weight = logf(1.0f + (float)self->n_products / (float)n);
        total += weight;
        for (size_t i = 0; i < n; i++) {
            if (self->lex[ids[i]] == 0)
                self->touched[self->n_touched++] = ids[i];
            self->lex[ids[i]] += weight;
        }
    }
    for (size_t i = 0; i < self->n_touched; i++)
        self->lex[self->touched[i]] *= LEX_BOOST / total;
    return self->n_touched > 0;
}

/* Boosts brands and categories the text names; counts them into info. */
static void s_named(search_t *self, const char *norm)
{
    memset(self->brand_boost, 0, (size_t)self->n_brands * sizeof *self->brand_boost);
    memset(self->cat_boost, 0, (size_t)self->n_cats * sizeof *self->cat_boost);
    for (int b = 0; b < self->n_brands; b++) {
        if (strlen(self->brand_norm[b]) > 3 && strstr(norm, self->brand_norm[b])) {
            self->brand_boost[b] = BRAND_BOOST;
            self->info.brands_named++;
        }
    }
    uint64_t q[QUERY_STEMS_MAX];
    int nq = s_stems(self, norm, false, q, QUERY_STEMS_MAX);
    for (int c = 0; c < self->n_cats; c++) {
        const cat_t *cat = &self->cats[c];
        int hit = 0;
        for (int i = 0; i < cat->n_stems; i++)
            for (int j = 0; j < nq; j++)
                if (cat->stems[i] == q[j]) {
                    hit++;
                    break;
                }
        if (cat->n_stems && hit == cat->n_stems) {
            self->cat_boost[c] = CATEGORY_BOOST;
            self->info.categories_named++;
        }
    }
}

/* Boosts the categories the query is about: a category's centroid averages
 * the noise of single products away, so "phone" finds the smartphones
 * category even where one phone's own vector says little. */
static void s_centroid_boosts(search_t *self)
{
    for (int c = 0; c < self->n_cats; c++) {
        const float *v = vindex_category_centroid(self->vx, c);
        float dot = 0;
        for (int d = 0; v && d < self->id.dim; d++)
            dot += v[d] * self->qvec[d];
        if (dot > 0)
            self->cat_boost[c] += CENTROID_BOOST * dot;
    }
}

/* The category filter as a mask; returns how many categories it allows. */
static int s_category_mask(search_t *self, const char *want)
{
    char norm[512];
    s_normalize(want, norm, sizeof norm);
    memset(self->cat_mask, 0, (size_t)self->n_cats);
    for (int c = 0; c < self->n_cats; c++)
        if (strcmp(self->cats[c].norm, norm) == 0) {
            self->cat_mask[c] = 1;
            return 1;
        }
    uint64_t w[QUERY_STEMS_MAX];
    int nw = s_stems(self, norm, true, w, QUERY_STEMS_MAX), allowed = 0;
    for (int c = 0; c < self->n_cats && nw; c++) {
        const cat_t *cat = &self->cats[c];
        int hit = 0;
        for (int j = 0; j < nw; j++)
            for (int i = 0; i < cat->n_stems; i++)
                if (cat->stems[i] == w[j]) {
                    hit++;
                    break;
                }
        if (hit == nw) {
            self->cat_mask[c] = 1;
            allowed++;
        }
    }
    return allowed;
}

static bool s_passes(const vindex_entry_t *e, const vindex_filter_t *f)
{
    return !(f->in_stock_only && !e->in_stock) &&
           !(f->max_price_cents >= 0 && e->price_cents > f->max_price_cents) &&
           !(f->category_mask && (e->category_id < 0 || !f->category_mask[e->category_id]));
}

static void s_hit(const vindex_entry_t *e, float score, bool exact, search_hit_t *h)
{
    *h = (search_hit_t){ .sku = e->sku, .name = e->name, .currency = e->currency,
                         .category = e->category, .brand = e->brand,
                         .price_cents = e->price_cents, .in_stock = e->in_stock,
                         .score = score, .exact_sku = exact };
}

static int s_refresh(search_t *self)
{
    bool changed;
    char err[512];
    int rc = vindex_refresh(self->vx, &changed, err, sizeof err);
    if (!vindex_ready(self->vx)) {
        snprintf(self->err, sizeof self->err, "%s", err);
        return rc == SOUK_ENOTFOUND || rc == SOUK_OK ? SOUK_EUNAVAIL : rc;
    }
    if (changed || !self->derived) {
        rc = s_derive(self);
        if (rc != SOUK_OK)
            return rc;
    }
    embed_id_t built;
    vindex_embedder(self->vx, &built);
    if (!embed_id_equal(&built, &self->id)) {
        char a[96], b[96];
        snprintf(self->err, sizeof self->err,
                 "index built by embedder %s, this search embeds with %s: refused (rebuild the "
                 "index with souk import, or search with the same embedder)",
                 embed_id_format(&built, a, sizeof a), embed_id_format(&self->id, b, sizeof b));
        return SOUK_ECONFIG;
    }
    return vstore_check(self->vs, &self->id, self->err, sizeof self->err);
}

/* Embeds work and scans the index with vf, named brands and categories
 * boosted, into hits; *got counts them (hits already there included). */
static int s_semantic(search_t *self, const char *work, vindex_filter_t *vf,
                      const search_filters_t *f, int limit, search_hit_t *hits, int *got)
{
    int rc = embed_texts(self->e, EMBED_QUERY, &work, 1, self->qvec);
    if (rc != SOUK_OK) {
        snprintf(self->err, sizeof self->err, "search: embedding the query failed (%s)",
                 souk_strerror(rc));
        return rc;
    }
    bool words = false;                        /* anything the catalogue knows */
    for (int d = 0; d < self->id.dim && !words; d++)
        words = self->qvec[d] != 0;
    bool filtering = vf->max_price_cents >= 0 || vf->in_stock_only || vf->category_mask;
    if (*got == limit || (!words && (*got || !filtering)))
        return SOUK_OK;                        /* nothing to rank by */
    char norm[TEXT_MAX + 2];
    s_normalize(work, norm, sizeof norm);
    s_named(self, norm);
    if (words)
        s_centroid_boosts(self);
    vf->brand_boost = self->brand_boost;
    vf->category_boost = self->cat_boost;
    if (words && s_lexical(self, work))
        vf->extra = self->lex;
    int found;
    rc = vstore_query(self->vs, self->vx, &self->id, self->qvec, vf, limit - *got, self->hits,
                      &found, self->err, sizeof self->err);
    for (int i = 0; rc == SOUK_OK && i < found; i++) {
        vindex_entry_t e;
        if (words && self->hits[i].score <= f->min_score)
            break;
        if (vindex_entry(self->vx, self->hits[i].id, &e) == SOUK_OK)
            s_hit(&e, self->hits[i].score, false, &hits[(*got)++]);
    }
    return rc;
}

int search_query(search_t *self, const char *text, const search_filters_t *f, int limit,
                 search_hit_t *hits, int *n)
{
    if (!self || !text || !hits || !n || limit < 1 || limit > SEARCH_LIMIT_MAX)
        return SOUK_EINVAL;
    *n = 0;
    self->err[0] = '\0';
    memset(&self->info, 0, sizeof self->info);
    int rc = s_refresh(self);
    if (rc != SOUK_OK)
        return rc;
    self->info.index_generation = vindex_generation(self->vx);
    search_filters_t none = { 0 };
    if (!f)
        f = &none;
    vindex_filter_t vf = { .max_price_cents = f->max_price_cents > 0 ? f->max_price_cents : -1,
                           .in_stock_only = f->in_stock_only, .exclude_id = -1 };
    if (f->category) {
        if (s_category_mask(self, f->category) == 0)
            return SOUK_OK;                    /* no such category: nothing matches */
        vf.category_mask = self->cat_mask;
    }
    char work[TEXT_MAX];
    int64_t limit_cents;
    if (search_parse_price_limit(text, &limit_cents, work, sizeof work) == 1 &&
        (vf.max_price_cents < 0 || limit_cents < vf.max_price_cents))
        vf.max_price_cents = limit_cents;
    self->info.max_price_cents = vf.max_price_cents >= 0 ? vf.max_price_cents : 0;

    int got = 0;
    uint32_t sku_id;
    vindex_entry_t e;
    if (s_take_sku(self, work, &sku_id) && vindex_entry(self->vx, sku_id, &e) == SOUK_OK &&
        s_passes(&e, &vf)) {
        s_hit(&e, SKU_SCORE, true, &hits[got++]);
        vf.exclude_id = sku_id;
    }
    s_correct(self, work, sizeof work);
    snprintf(self->info.semantic_text, sizeof self->info.semantic_text, "%s",
             work + strspn(work, " "));
    rc = s_semantic(self, work, &vf, f, limit, hits, &got);
    *n = rc == SOUK_OK ? got : 0;
    return rc;
}
