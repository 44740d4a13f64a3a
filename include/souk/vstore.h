/* souk vstore: where a search's nearest-neighbour query goes, behind a vtable.
 *
 * SOUK_VECTOR picks the store: "local" (the default) scans the mapped
 * products.vindex (souk/vindex.h) itself; "pinecone" (src/vstore_pinecone.c)
 * keeps the vectors in a Pinecone index (souk/pinecone.h) at
 * PINECONE_INDEX_HOST, in the namespace SOUK_PINECONE_NAMESPACE (default:
 * the shop's name as a slug, from SOUK_SHOP_NAME), and asks it.
 *
 * Either way products.vindex is written by `souk import`: it holds what
 * search needs beside the vectors (SKU table, prices and stock for answers,
 * category centroids, the catalogue's words and stems, the embedder's learnt
 * state), so a query makes one Pinecone request and no store round trip.
 * A remote store answers candidates (ids are SKUs, filtered by price, stock
 * and category in Pinecone's metadata filter); the boosts search adds
 * (brands, categories, exact words) re-rank them locally, so both stores
 * answer through the same contract: vstore_query() is vindex_query().
 *
 * A remote index records the embedder that built it in a marker vector (in
 * the namespace "<ns>:souk-index"); vstore_check() refuses a query embedder
 * that differs (SOUK_ECONFIG), as the local file does.
 *
 * Contracts: SOUK_OK or a negative souk/error.h code; err (may be NULL)
 * receives a sentence. SOUK_EUNAVAIL means what it means to search: no
 * index yet; a remote store out of reach (retries spent) is SOUK_EIO, a
 * timeout SOUK_ETIMEDOUT. A handle belongs to one thread. */
#ifndef SOUK_VSTORE_H
#define SOUK_VSTORE_H

#include <stdbool.h>
#include <stddef.h>

#include "souk/embed.h"
#include "souk/vindex.h"

#define VSTORE_MARKER_ID "souk-index"
#define VSTORE_MARKER_SUFFIX ":souk-index"

typedef struct vstore_s vstore_t;

/* What an implementation fills in; impl is its own handle. */
typedef struct {
    const char *name;
    /* vindex_query()'s contract; vx is the mapped local index (ids, metadata
     * and the boosts' tables refer to it). */
    int (*query)(void *impl, vindex_t *vx, const embed_id_t *id, const float *vec,
                 const vindex_filter_t *f, int k, vindex_hit_t *hits, int *n, char *err,
                 size_t errlen);
    /* Whether the store was built by embedder id; NULL: the file says. */
    int (*check)(void *impl, const embed_id_t *id, char *err, size_t errlen);
    /* Building (souk import); NULL: the local file is all there is. begin
     * is told the old index (NULL if none) to learn what may vanish; add
     * sends each product; end deletes what vanished and records id. */
    int (*sync_begin)(void *impl, const embed_id_t *id, vindex_t *old, char *err, size_t errlen);
    int (*sync_add)(void *impl, const vindex_item_t *item, const float *vec, int dim, char *err,
                    size_t errlen);
    int (*sync_end)(void *impl, const embed_id_t *id, size_t products, char *err, size_t errlen);
    void (*destroy)(void *impl);
} vstore_vtable_t;

/* The store spec names ("local", "pinecone"; NULL or "": SOUK_VECTOR, then
 * "local"), configured from the environment. SOUK_EINVAL for an unknown
 * spec, SOUK_ECONFIG for a missing variable. Caller owns *out. */
int vstore_open(const char *spec, vstore_t **out, char *err, size_t errlen);
/* Takes impl (destroyed through vt->destroy, also when this fails). */
int vstore_new_custom(const vstore_vtable_t *vt, void *impl, vstore_t **out);
/* Sets *self_p to NULL; NULL or *NULL is a no-op. */
void vstore_close(vstore_t **self_p);
const char *vstore_name(const vstore_t *self);
/* Whether the vectors live outside products.vindex. */
bool vstore_remote(const vstore_t *self);

int vstore_query(vstore_t *self, vindex_t *vx, const embed_id_t *id, const float *vec,
                 const vindex_filter_t *f, int k, vindex_hit_t *hits, int *n, char *err,
                 size_t errlen);
int vstore_check(vstore_t *self, const embed_id_t *id, char *err, size_t errlen);
int vstore_sync_begin(vstore_t *self, const embed_id_t *id, vindex_t *old, char *err,
                      size_t errlen);
int vstore_sync_add(vstore_t *self, const vindex_item_t *item, const float *vec, int dim,
                    char *err, size_t errlen);
int vstore_sync_end(vstore_t *self, const embed_id_t *id, size_t products, char *err,
                    size_t errlen);

/* The default namespace for a shop name: the name's ASCII letters and
 * digits in lower case, each run of anything else one '-' ("Souk Demo
 * Shop" -> "souk-demo-shop"); "souk" for a name with neither. */
void vstore_default_namespace(const char *shop_name, char *out, size_t outlen);

/* Built-in implementations. */
int vstore_pinecone_new(vstore_t **out, char *err, size_t errlen);

#endif
