/* souk vindex: the product vector index, one file that readers map and share.
 *
 * A writer builds $SOUK_DATA/products.vindex from (product, vector) pairs:
 * each vector is quantized to int8 with its own scale, and beside it the
 * file keeps what filters and answers need without the store: price, stock
 * flag, category and brand ids, and SKU, name and currency in a string
 * table, plus a SKU lookup table, each category's mean vector, the
 * catalogue's words (for spelling) and which products hold each word stem
 * (for exact matching), and the embedder's identity and learnt state. The file is written to a temporary name, fsync'd and renamed over
 * the old one, so a reader sees either the old index or the new one whole.
 *
 * Readers (tool actors, the CLI) map the file read-only: the pages are
 * shared through the page cache. vindex_refresh() costs one stat(): when the
 * file was replaced it maps the new one and verifies it, and on any problem
 * keeps serving the old one. Everything in the file is checked when mapped
 * (sizes, offsets, ids, a checksum of every byte), so a truncated or
 * corrupt file is refused with a sentence saying why, never read past.
 *
 * A query is exact top-k by cosine over the int8 vectors (a sequential scan:
 * memory-bound, ~4 bytes per dimension less than float), restricted by the
 * filters, and refused when its vector comes from another embedder than the
 * one that built the index (SOUK_ECONFIG).
 *
 * Contracts: SOUK_OK or a negative souk/error.h code; err (may be NULL)
 * receives a sentence on error. SOUK_EPROTO: a malformed index file. A
 * handle belongs to one thread. Strings handed out point into the mapping
 * and stay valid until the next vindex_refresh() or vindex_close(). */
#ifndef SOUK_VINDEX_H
#define SOUK_VINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "souk/embed.h"

#define VINDEX_FILE "products.vindex"
#define VINDEX_K_MAX 1000
#define VINDEX_NO_ID 0xffff        /* category or brand id: none */

typedef struct vindex_s vindex_t;
typedef struct vindex_writer_s vindex_writer_t;

/* One product as given to the writer; optional strings may be NULL. */
typedef struct {
    const char *sku;            /* required, unique */
    const char *name;           /* required */
    const char *currency;       /* optional */
    const char *category;       /* optional */
    const char *brand;          /* optional */
    int64_t price_cents;        /* >= 0 */
    int64_t stock;              /* > 0: in stock */
} vindex_item_t;

/* One product as read back; strings are "" when absent. */
typedef struct {
    const char *sku, *name, *currency, *category, *brand;
    int64_t price_cents;
    bool in_stock;
    int category_id, brand_id;  /* -1: none */
} vindex_entry_t;

typedef struct {
    /* n_categories bytes, nonzero for an allowed category; NULL: any. */
    const uint8_t *category_mask;
    int64_t max_price_cents;    /* < 0: no limit */
    bool in_stock_only;
    /* Added to the cosine of a product of that brand / category (arrays of
     * n_brands / n_categories); NULL: none. */
    const float *brand_boost;
    const float *category_boost;
    /* Added to each product's cosine (vindex_count floats); NULL: none. */
    const float *extra;
    /* One product to leave out (an exact SKU hit already shown); -1: none. */
    int64_t exclude_id;
} vindex_filter_t;

typedef struct {
    uint32_t id;
    float score;
} vindex_hit_t;

/* ---- writing ------------------------------------------------------------- */

/* Starts a new index for path (a temporary file beside it). Caller owns *out
 * and ends it with commit or abort. */
int vindex_writer_new(const char *path, const embed_id_t *embedder, vindex_writer_t **out,
                      char *err, size_t errlen);
/* The embedder's learnt state (embed_state_save), copied. */
int vindex_writer_set_state(vindex_writer_t *self, const uint8_t *blob, size_t len);
/* The catalogue's words for spelling correction: sorted (strcmp), each
 * NUL-terminated, copied. SOUK_EINVAL when the last is not terminated. */
int vindex_writer_set_words(vindex_writer_t *self, const char *words, size_t len);
/* The products' word stems and, for each, the ids of the products holding
 * it: n_terms stems, stem i at terms + str_off[i] (sorted by strcmp), its
 * ids postings[term_off[i] .. term_off[i + 1]) ascending, ids as added.
 * Borrowed: the arrays must stay valid until commit. */
int vindex_writer_set_terms(vindex_writer_t *self, const char *terms, size_t terms_len,
                            const uint32_t *str_off, const uint32_t *term_off, size_t n_terms,
                            const uint32_t *postings, size_t n_postings);
/* Appends a product and its vector (embed_dim floats). SOUK_EINVAL for a
 * missing sku or name, a negative price, a non-finite vector. */
int vindex_writer_add(vindex_writer_t *self, const vindex_item_t *item, const float *vec);
size_t vindex_writer_count(const vindex_writer_t *self);
/* Writes the rest, fsyncs and renames over path (atomic), fsyncs the
 * directory; destroys the writer and sets *self_p to NULL in every case. */
int vindex_writer_commit(vindex_writer_t **self_p, char *err, size_t errlen);
/* Removes the temporary file; NULL or *NULL is a no-op. */
void vindex_writer_abort(vindex_writer_t **self_p);

/* ---- reading ------------------------------------------------------------- */

enum { VINDEX_ALLOW_MISSING = 1 };

/* Maps the index at path and verifies it. SOUK_ENOTFOUND when there is no
 * file, unless flags has VINDEX_ALLOW_MISSING: then the handle opens empty
 * and a later vindex_refresh() maps the file once it appears. */
int vindex_open(const char *path, int flags, vindex_t **out, char *err, size_t errlen);
/* Unmaps and sets *self_p to NULL; NULL or *NULL is a no-op. */
void vindex_close(vindex_t **self_p);
/* Maps the file again if it was replaced (*changed = true, may be NULL).
 * On an error the previous mapping stays in use and the same file is not
 * verified again until it changes. */
int vindex_refresh(vindex_t *self, bool *changed, char *err, size_t errlen);
/* Whether a file is mapped. */
bool vindex_ready(const vindex_t *self);

size_t vindex_count(const vindex_t *self);
uint64_t vindex_generation(const vindex_t *self);
/* Identity of the embedder that built the mapped index (zeroed if none). */
void vindex_embedder(const vindex_t *self, embed_id_t *id);
/* The catalogue's words (vindex_writer_set_words) in the mapping. */
void vindex_words(const vindex_t *self, const char **words, size_t *len);
/* The embedder's learnt state in the mapping (may be empty). */
void vindex_state(const vindex_t *self, const uint8_t **blob, size_t *len);
int vindex_category_count(const vindex_t *self);
const char *vindex_category_name(const vindex_t *self, int id);
/* The mean of the category's vectors, normalized (embed_dim floats): what
 * the category is about, averaged over its products. NULL for a bad id. */
const float *vindex_category_centroid(const vindex_t *self, int id);
int vindex_brand_count(const vindex_t *self);
const char *vindex_brand_name(const vindex_t *self, int id);

/* The ids (ascending) of the products holding stem[0..len); SOUK_ENOTFOUND. */
int vindex_term_postings(const vindex_t *self, const char *stem, size_t len, const uint32_t **ids,
                         size_t *n);

/* SOUK_ENOTFOUND for an id out of range. */
int vindex_entry(const vindex_t *self, uint32_t id, vindex_entry_t *out);
/* The product whose SKU equals sku[0..len) ignoring ASCII case. SOUK_ENOTFOUND. */
int vindex_find_sku(const vindex_t *self, const char *sku, size_t len, uint32_t *id);

/* Top k (1..VINDEX_K_MAX) products for a unit query vector from embedder,
 * best first, into hits (room for k); *n gets how many. f may be NULL.
 * SOUK_ECONFIG when embedder is not the index's; SOUK_EUNAVAIL without a
 * mapped file. */
int vindex_query(vindex_t *self, const embed_id_t *embedder, const float *vec,
                 const vindex_filter_t *f, int k, vindex_hit_t *hits, int *n, char *err,
                 size_t errlen);

#endif
