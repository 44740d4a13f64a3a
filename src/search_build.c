/* search_build: products -> products.vindex, in two passes over the source.
 *
 * Pass one lets the embedder learn the catalogue (the local embedder's
 * document frequencies); pass two embeds each product and hands it with its
 * metadata to the index writer. Products are embedded in batches of the
 * embedder's liking (a cloud embedder wants hundreds per request); a batch
 * copies its products, which the source only lends for one callback.
 *
 * With a remote vector store (SOUK_VECTOR=pinecone, souk/vstore.h) each
 * product written to the file is also sent there, the products the old
 * file had and the new one has not are deleted there, and the store records
 * the embedder, all before the new file replaces the old one: a failure
 * leaves the old file in place and the import is reported failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "souk/error.h"
#include "souk/search.h"
#include "souk/vindex.h"
#include "souk/vstore.h"
#include "search_words.h"

typedef struct {
    embedder_t *e;
    vindex_writer_t *w;
    vstore_t *vs;
    char vs_err[512];          /* why the remote store refused a product */
    size_t batch_max, n;
    store_product_t *rows;     /* copies, when batching */
    embed_doc_t *docs;
    float *vecs;
    int dim;
    words_set_t *words;        /* the catalogue's vocabulary, for spelling */
    terms_t *terms;            /* stems -> products, for exact matching */
    stemmer_t *stemmer;
    int rc;
    size_t bad;                /* products refused by the writer */
    double embed_seconds;
} build_t;

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static embed_doc_t s_doc(const store_product_t *p)
{
    embed_doc_t d = { { 0 } };
    d.field[EMBED_FIELD_NAME] = p->name;
    d.field[EMBED_FIELD_BRAND] = p->brand;
    d.field[EMBED_FIELD_CATEGORY] = p->category;
    d.field[EMBED_FIELD_TAGS] = p->tags;
    d.field[EMBED_FIELD_DESCRIPTION] = p->description;
    d.field[EMBED_FIELD_ATTRS] = p->attrs;
    return d;
}

static int s_fit_one(const store_product_t *p, void *arg)
{
    build_t *b = arg;
    embed_doc_t d = s_doc(p);
    for (int f = 0; f < EMBED_FIELD_COUNT; f++)
        if (words_set_add_text(b->words, d.field[f]) != SOUK_OK)
            return SOUK_ENOMEM;
    return embed_fit_add(b->e, &d, 1);
}

static int s_write(build_t *b, const store_product_t *p, const float *vec)
{
    vindex_item_t item = { .sku = p->sku, .name = p->name, .currency = p->currency,
                           .category = p->category, .brand = p->brand,
                           .price_cents = p->price_cents, .stock = p->stock };
    uint32_t id = (uint32_t)vindex_writer_count(b->w);
    int rc = vindex_writer_add(b->w, &item, vec);
    if (rc == SOUK_EINVAL) {
        b->bad++;                              /* a row the store should not have had */
        return SOUK_OK;
    }
    if (rc == SOUK_OK)
        rc = vstore_sync_add(b->vs, &item, vec, b->dim, b->vs_err, sizeof b->vs_err);
    embed_doc_t d = s_doc(p);
    for (int f = 0; f < EMBED_FIELD_COUNT && rc == SOUK_OK; f++)
        rc = terms_add_text(b->terms, b->stemmer, id, d.field[f]);
    return rc;
}

static int s_flush(build_t *b)
{
    if (!b->n)
        return SOUK_OK;
    double t0 = s_now();
    int rc = embed_docs(b->e, b->docs, b->n, b->vecs);
    b->embed_seconds += s_now() - t0;
    for (size_t i = 0; i < b->n && rc == SOUK_OK; i++)
        rc = s_write(b, &b->rows[i], b->vecs + i * (size_t)b->dim);
    for (size_t i = 0; i < b->n; i++)
        store_product_clear(&b->rows[i]);
    b->n = 0;
    return rc;
}

static char *s_dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int s_copy(const store_product_t *p, store_product_t *c)
{
    *c = *p;
    c->sku = s_dup(p->sku);
    c->name = s_dup(p->name);
    c->description = s_dup(p->description);
    c->currency = s_dup(p->currency);
    c->category = s_dup(p->category);
    c->image_url = NULL;
    c->brand = s_dup(p->brand);
    c->tags = s_dup(p->tags);
    c->attrs = s_dup(p->attrs);
    if ((p->sku && !c->sku) || (p->name && !c->name) || (p->description && !c->description) ||
        (p->currency && !c->currency) || (p->category && !c->category) ||
        (p->brand && !c->brand) || (p->tags && !c->tags) || (p->attrs && !c->attrs)) {
        store_product_clear(c);
        return SOUK_ENOMEM;
    }
    return SOUK_OK;
}

static int s_embed_one(const store_product_t *p, void *arg)
{
    build_t *b = arg;
    if (b->batch_max == 1) {
        embed_doc_t d = s_doc(p);
        double t0 = s_now();
        int rc = embed_docs(b->e, &d, 1, b->vecs);
        b->embed_seconds += s_now() - t0;
        return rc == SOUK_OK ? s_write(b, p, b->vecs) : rc;
    }
    int rc = s_copy(p, &b->rows[b->n]);
    if (rc != SOUK_OK)
        return rc;
    b->docs[b->n] = s_doc(&b->rows[b->n]);
    b->n++;
    return b->n == b->batch_max ? s_flush(b) : SOUK_OK;
}

/* The remote store, told what the old index held (what may vanish). */
static int s_open_store(build_t *b, const char *index_path, char *err, size_t errlen)
{
    int rc = vstore_open(NULL, &b->vs, err, errlen);
    if (rc != SOUK_OK || !vstore_remote(b->vs))
        return rc;
    embed_id_t id;
    embed_identity(b->e, &id);
    vindex_t *old = NULL;
    if (vindex_open(index_path, 0, &old, NULL, 0) != SOUK_OK)
        old = NULL;                            /* none or unreadable: nothing known to delete */
    rc = vstore_sync_begin(b->vs, &id, old, err, errlen);
    vindex_close(&old);
    return rc;
}

/* The index writer, given the embedder's learnt state and the words. */
static int s_open_writer(build_t *b, const char *index_path, char *err, size_t errlen)
{
    embed_id_t id;
    embed_identity(b->e, &id);
    int rc = vindex_writer_new(index_path, &id, &b->w, err, errlen);
    if (rc == SOUK_OK)
        rc = s_open_store(b, index_path, b->vs_err, sizeof b->vs_err);
    uint8_t *state = NULL;
    size_t state_len = 0;
    if (rc == SOUK_OK)
        rc = embed_state_save(b->e, &state, &state_len);
    if (rc == SOUK_OK)
        rc = vindex_writer_set_state(b->w, state, state_len);
    free(state);
    char *words = NULL;
    size_t words_len = 0;
    if (rc == SOUK_OK)
        rc = words_set_join(b->words, &words, &words_len);
    if (rc == SOUK_OK)
        rc = vindex_writer_set_words(b->w, words, words_len);
    free(words);
    words_set_free(&b->words);
    return rc;
}

/* Hands the postings to the writer; they stay in b->terms until commit. */
static int s_set_terms(build_t *b)
{
    const char *terms;
    const uint32_t *str_off, *term_off, *postings;
    size_t terms_len, n_terms, n_postings;
    int rc = terms_finish(b->terms, &terms, &terms_len, &str_off, &term_off, &n_terms, &postings,
                          &n_postings);
    if (rc == SOUK_OK)
        rc = vindex_writer_set_terms(b->w, terms, terms_len, str_off, term_off, n_terms, postings,
                                     n_postings);
    return rc;
}

static void s_build_free(build_t *b)
{
    vindex_writer_abort(&b->w);
    vstore_close(&b->vs);
    for (size_t i = 0; i < b->n; i++)
        store_product_clear(&b->rows[i]);
    words_set_free(&b->words);
    terms_free(&b->terms);
    stemmer_free(&b->stemmer);
    free(b->vecs);
    free(b->rows);
    free(b->docs);
}

int search_build(const char *index_path, embedder_t *embedder, search_each_fn each, void *src,
                 search_build_stats_t *st, char *err, size_t errlen)
{
    if (!index_path || !embedder || !each)
        return SOUK_EINVAL;
    double t0 = s_now();
    build_t b = { .e = embedder, .dim = embed_dim(embedder) };
    b.batch_max = embed_batch_max(embedder);
    b.vecs = malloc(b.batch_max * (size_t)b.dim * sizeof *b.vecs);
    b.rows = calloc(b.batch_max, sizeof *b.rows);
    b.docs = calloc(b.batch_max, sizeof *b.docs);
    int rc = b.vecs && b.rows && b.docs ? words_set_new(&b.words) : SOUK_ENOMEM;
    if (rc == SOUK_OK)
        rc = terms_new(&b.terms);
    if (rc == SOUK_OK)
        rc = stemmer_new(&b.stemmer);
    const char *stage = "learning the catalogue";
    if (rc == SOUK_OK)
        rc = each(src, s_fit_one, &b);
    if (rc == SOUK_OK)
        rc = embed_fit_end(embedder);
    double t1 = s_now();
    if (rc == SOUK_OK) {
        stage = "opening the index";
        rc = s_open_writer(&b, index_path, err, errlen);
    }
    if (rc == SOUK_OK) {
        stage = "embedding the products";
        rc = each(src, s_embed_one, &b);
    }
    if (rc == SOUK_OK)
        rc = s_flush(&b);
    if (rc == SOUK_OK)
        rc = s_set_terms(&b);
    size_t written = b.w ? vindex_writer_count(b.w) : 0;
    if (rc == SOUK_OK) {
        stage = "sending the vectors";
        embed_id_t id;
        embed_identity(embedder, &id);
        rc = vstore_sync_end(b.vs, &id, written, b.vs_err, sizeof b.vs_err);
    }
    if (rc == SOUK_OK)
        rc = vindex_writer_commit(&b.w, err, errlen);
    else if (err && errlen && b.vs_err[0])
        snprintf(err, errlen, "search index: %s failed: %s", stage, b.vs_err);
    else if (err && errlen && rc != SOUK_EIO)
        snprintf(err, errlen, "search index: %s failed: %s", stage, souk_strerror(rc));
    s_build_free(&b);
    if (st) {
        st->products = written;
        st->fit_seconds = t1 - t0;
        st->embed_seconds = b.embed_seconds;
        st->total_seconds = s_now() - t0;
    }
    return rc;
}
