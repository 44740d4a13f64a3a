/* souk search: product search for customers' words.
 *
 * Combines the semantic index (souk/vindex.h, vectors from souk/embed.h)
 * with exact matching where exact matching knows better:
 *   - a word of the query that is a product's SKU puts that product first;
 *   - price words ("under 20 dollars", "below $50", "less than 30",
 *     "cheaper than 10 euros", "max 100") become a maximum-price filter and
 *     leave the text that is embedded;
 *   - a brand named in the query boosts that brand's products, and the
 *     words of a category ("shoes" for mens-shoes) boost that category, as
 *     does a category whose products' mean vector is close to the query;
 *   - a word no product has is corrected to the nearest catalogue word
 *     ("mascra" -> mascara) before embedding;
 *   - products holding the query's word stems in any text (name,
 *     description, tags, free attributes) get up to 0.2 added, by the
 *     IDF-weighted share of the stems they hold: an exact word counts
 *     whatever the hashing did with it.
 * Answers come from the index file alone (SKU, name, price, currency,
 * category, brand, stock flag): a search makes no store round trip.
 *
 * The index is built by search_build() (souk import calls
 * search_build_index()) and picked up by open handles at their next query.
 * The nearest-neighbour step goes to the vector store SOUK_VECTOR names
 * (souk/vstore.h): the mapped file itself, or Pinecone, which search_build()
 * then also fills; either way the answers are the same fields.
 *
 * Contracts: SOUK_OK or a negative souk/error.h code; a sentence for the
 * last error in search_last_error(). A handle belongs to one thread. */
#ifndef SOUK_SEARCH_H
#define SOUK_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "souk/embed.h"
#include "souk/store.h"

#define SEARCH_LIMIT_MAX 100

typedef struct search_s search_t;

/* A zeroed struct filters nothing. */
typedef struct {
    /* A category's name (any case; '-' and ' ' alike), or words naming
     * categories ("shoes": mens-shoes and womens-shoes). NULL: any. An
     * unknown category matches nothing. */
    const char *category;
    int64_t max_price_cents;    /* 0: no limit */
    bool in_stock_only;
    float min_score;            /* semantic hits scoring at or below are dropped */
} search_filters_t;

typedef struct {
    /* Point into the index mapping: valid until the next search_query() or
     * search_close() on the handle. Absent strings are "". */
    const char *sku, *name, *currency, *category, *brand;
    int64_t price_cents;
    bool in_stock;
    float score;                /* cosine (+ boosts); an exact SKU scores 2 */
    bool exact_sku;
} search_hit_t;

/* What the last query made of the text, for `souk search` and the agent. */
typedef struct {
    int64_t max_price_cents;    /* the limit applied (filter and text); 0: none */
    char semantic_text[512];    /* what was embedded, corrections appended */
    int corrections;            /* misspelt words corrected ("mascra": mascara) */
    int brands_named, categories_named;
    uint64_t index_generation;
} search_info_t;

/* Opens search over data_dir/products.vindex with the embedder of spec
 * (embed_new(); NULL: SOUK_EMBEDDER or "local"). A missing index is not an
 * error here: queries answer SOUK_EUNAVAIL until `souk import` writes one.
 * SOUK_EPROTO for a corrupt index. Caller owns *out. */
int search_open(const char *data_dir, const char *embedder_spec, search_t **out, char *err,
                size_t errlen);
/* The same over an index path and an embedder, which the handle takes
 * (destroyed with it, also when this call fails). */
int search_open_index(const char *index_path, embedder_t *embedder, search_t **out, char *err,
                      size_t errlen);
/* Closes and sets *self_p to NULL; NULL or *NULL is a no-op. */
void search_close(search_t **self_p);
const char *search_last_error(const search_t *self);
const search_info_t *search_last_info(const search_t *self);

/* The best `limit` (1..SEARCH_LIMIT_MAX) products for text, best first, into
 * hits (room for limit); *n gets how many. f may be NULL. Picks up a rebuilt
 * index first. SOUK_EUNAVAIL: no index yet; SOUK_ECONFIG: the index was
 * built by another embedder. */
int search_query(search_t *self, const char *text, const search_filters_t *f, int limit,
                 search_hit_t *hits, int *n);

/* Finds a price limit in text. "under", "below", "less than", "cheaper
 * than", "lower than" are strict ("under 20" is at most 19.99); "max",
 * "maximum", "at most", "up to", "no more than", "within", "budget",
 * "... or less" are inclusive. Currency signs and words ($, €, £, dollars,
 * bucks, euros, pounds, usd, eur, gbp) are accepted and ignored; "1,299.50",
 * "19,99" and "2k" are numbers. Returns 1 and sets *max_cents when found,
 * 0 when not, SOUK_EINVAL. rest (may be NULL) receives the text without the
 * price words, trimmed. */
int search_parse_price_limit(const char *text, int64_t *max_cents, char *rest, size_t restlen);

/* ---- building the index -------------------------------------------------- */

/* Calls cb once per product, like store_product_each(); may be called twice. */
typedef int (*search_each_fn)(void *src, store_product_cb cb, void *cb_arg);

typedef struct {
    size_t products;
    double fit_seconds, embed_seconds, total_seconds;
} search_build_stats_t;

/* Builds the index at index_path from every product `each` gives: one pass
 * for the embedder to learn the catalogue, one to embed and write. The old
 * index stays in place until the new one is complete (atomic rename). With
 * SOUK_VECTOR=pinecone the products are also upserted there and the ones
 * the old index had and the new one has not are deleted, before the rename
 * (a Pinecone failure fails the build and keeps the old file).
 * st may be NULL. The embedder stays the caller's. */
int search_build(const char *index_path, embedder_t *embedder, search_each_fn each, void *src,
                 search_build_stats_t *st, char *err, size_t errlen);
/* search_build over the store's products into data_dir/products.vindex with
 * the embedder of spec (NULL: SOUK_EMBEDDER or "local"). */
int search_build_index(store_t *store, const char *data_dir, const char *embedder_spec,
                       search_build_stats_t *st, char *err, size_t errlen);

#endif
