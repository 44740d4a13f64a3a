/* souk pinecone: a client of Pinecone's REST data-plane API (libcurl).
 *
 * Talks to one index host (PINECONE_INDEX_HOST, e.g.
 * https://shop-abc123.svc.us-east1-gcp.pinecone.io) in one namespace, with
 * the `Api-Key` and `X-Pinecone-API-Version` headers:
 *   POST /vectors/upsert   {"vectors": [{id, values, metadata}], "namespace"}
 *   POST /query            {"vector", "topK", "filter", "namespace", "includeMetadata"}
 *   POST /vectors/delete   {"ids": [...] | "deleteAll": true, "namespace"}
 *   GET  /vectors/fetch?ids=ID&namespace=NS
 * Upserts are buffered and sent in batches of at most PINECONE_UPSERT_MAX
 * vectors and PINECONE_BODY_MAX bytes (Pinecone's documented limits are 1000
 * vectors and 2 MB per request; the margin covers metadata growth). Deletes
 * by id go in batches of 1000 (the documented limit).
 *
 * 429 and 5xx answers and transport failures are retried with exponential
 * backoff and jitter (PINECONE_RETRIES times); every request has a connect
 * and a total timeout. A query or fetch (what a search waits on) also
 * stops retrying at its budget (PINECONE_QUERY_BUDGET_MS, under the
 * webhook's default reply budget), so a customer's search fails in time
 * instead of holding a tool actor; upserts and deletes (souk import) use
 * every retry. Responses are validated at the edge: a body that is
 * not the documented shape is SOUK_EPROTO with a sentence saying what was
 * wrong, never half-read. The API key is sent as a header and never appears
 * in an error text.
 *
 * Contracts: SOUK_OK or a negative souk/error.h code, with a sentence in
 * pinecone_last_error(): SOUK_ECONFIG (key refused: 401/403), SOUK_EINVAL
 * (request refused: 400, e.g. a dimension the index does not have),
 * SOUK_ENOTFOUND (404), SOUK_EUNAVAIL (429/5xx/network, retries spent),
 * SOUK_EPROTO (malformed response). A handle belongs to one thread. */
#ifndef SOUK_PINECONE_H
#define SOUK_PINECONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define PINECONE_API_VERSION "2025-04"
#define PINECONE_UPSERT_MAX 200            /* vectors per upsert request */
#define PINECONE_BODY_MAX (1536 * 1024)    /* bytes per upsert request */
#define PINECONE_DELETE_MAX 1000           /* ids per delete request */
#define PINECONE_TOPK_MAX 1000
#define PINECONE_RETRIES 4
#define PINECONE_QUERY_BUDGET_MS 2500

typedef struct pinecone_s pinecone_t;

typedef struct {
    const char *host;           /* "https://..." or "host:port" (https assumed) */
    const char *api_key;        /* required */
    const char *ns;             /* namespace; "" is Pinecone's default one */
    int timeout_ms;             /* per request; 0: 10000 */
    int backoff_ms;             /* first retry delay; 0: 200 (doubles, jittered) */
    int query_budget_ms;        /* a query's attempts and waits; 0: PINECONE_QUERY_BUDGET_MS */
} pinecone_opts_t;

/* One query answer; id and metadata belong to the handle and stay valid
 * until the next pinecone_query() or pinecone_destroy(). metadata may be
 * NULL (not asked for, or none). */
typedef struct {
    const char *id;
    float score;
    json_t *metadata;
} pinecone_match_t;

/* What the handle has done, for tests and benchmarks. */
typedef struct {
    uint64_t requests, retries, upsert_requests, upserted;
} pinecone_stats_t;

/* Loads libcurl and checks the options. Caller owns *out. */
int pinecone_new(const pinecone_opts_t *opts, pinecone_t **out, char *err, size_t errlen);
/* Drops unsent upserts; sets *self_p to NULL; NULL or *NULL is a no-op. */
void pinecone_destroy(pinecone_t **self_p);
const char *pinecone_last_error(const pinecone_t *self);
const char *pinecone_namespace(const pinecone_t *self);
void pinecone_stats(const pinecone_t *self, pinecone_stats_t *st);

/* Queues one vector (dim finite floats) with its metadata (a JSON object or
 * NULL; borrowed) for the namespace; sends a batch when the limits are
 * reached. */
int pinecone_upsert_add(pinecone_t *self, const char *id, const float *vec, int dim,
                        const json_t *metadata);
/* Sends what is queued. */
int pinecone_upsert_flush(pinecone_t *self);

/* The top_k (1..PINECONE_TOPK_MAX) nearest vectors to vec in the namespace,
 * best first, restricted by filter (a Pinecone metadata filter; NULL: none).
 * *matches (owned by the handle) and *n get the answer. */
int pinecone_query(pinecone_t *self, const float *vec, int dim, int top_k, const json_t *filter,
                   bool include_metadata, const pinecone_match_t **matches, int *n);

/* Deletes n ids from the namespace (batches of PINECONE_DELETE_MAX). */
int pinecone_delete_ids(pinecone_t *self, const char *const *ids, size_t n);
/* Deletes every vector of namespace ns (NULL: the handle's). A namespace
 * that does not exist (404) is already empty: SOUK_OK. */
int pinecone_delete_all(pinecone_t *self, const char *ns);

/* One vector's metadata from namespace ns (NULL: the handle's): *metadata
 * (caller decrefs) or SOUK_ENOTFOUND. */
int pinecone_fetch(pinecone_t *self, const char *ns, const char *id, json_t **metadata);
/* Upserts one vector into namespace ns at once (not batched). */
int pinecone_put(pinecone_t *self, const char *ns, const char *id, const float *vec, int dim,
                 const json_t *metadata);

#endif
