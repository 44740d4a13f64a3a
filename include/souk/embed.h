/* souk embedders: text -> unit vector, behind one vtable.
 *
 * An embedder turns a query or a product into a float vector of `dim`
 * components with L2 norm 1 (or 0 for a text with nothing to embed), so the
 * cosine of two texts is the dot product of their vectors. Implementations:
 * "local" (src/embed_local.c: offline, deterministic, the default) and
 * "openai" (src/embed_openai.c: the /embeddings API of OPENAI_BASE_URL, its
 * identity the model and the dimension); both sit behind embed_vtable_t, and
 * anything else can be wrapped with embed_new_custom().
 *
 * An embedder has an identity: its name, its dimension and a hash of every
 * parameter that changes its vectors (model, n-gram ranges, dictionaries...).
 * A vector index records the identity of the embedder that built it and
 * refuses queries embedded by another one (souk/vindex.h).
 *
 * Some embedders learn from the catalogue they index (the local one learns
 * inverse document frequencies): embed_fit_add() sees every product before
 * the products are embedded, embed_fit_end() fixes what was learnt, and
 * embed_state_save() gives it as bytes that the index stores, so a query-side
 * embedder loads it with embed_state_load() and embeds queries the same way.
 *
 * Contracts: functions return SOUK_OK or a negative souk/error.h code. A
 * handle belongs to one thread. Outputs are n * dim floats, row by row. */
#ifndef SOUK_EMBED_H
#define SOUK_EMBED_H

#include <stddef.h>
#include <stdint.h>

#define EMBED_NAME_MAX 32          /* bytes of a name, NUL included */
#define EMBED_DIM_MAX 4096

typedef struct embedder_s embedder_t;

/* Queries and documents may be embedded differently (asymmetric models). */
typedef enum { EMBED_QUERY, EMBED_DOCUMENT } embed_kind_t;

/* The parts of a product an embedder may weigh differently; NULL: absent. */
typedef enum {
    EMBED_FIELD_NAME,
    EMBED_FIELD_BRAND,
    EMBED_FIELD_CATEGORY,
    EMBED_FIELD_TAGS,           /* free text (a JSON array's words are fine) */
    EMBED_FIELD_DESCRIPTION,
    EMBED_FIELD_ATTRS,          /* free attributes: warranty, shipping... */
    EMBED_FIELD_COUNT
} embed_field_t;

typedef struct {
    const char *field[EMBED_FIELD_COUNT];
} embed_doc_t;

/* What an embedder's identity is made of; compared as a whole. */
typedef struct {
    char name[EMBED_NAME_MAX];
    int dim;
    uint64_t params_hash;
} embed_id_t;

/* The interface an implementation fills in; impl is its own handle. */
typedef struct {
    const char *name;
    size_t batch_max;           /* texts per embed call that suit it (>= 1) */
    /* Writes n unit vectors to out (n * dim floats). */
    int (*embed)(void *impl, embed_kind_t kind, const char *const *texts, size_t n, float *out);
    /* Optional: documents with their fields; without it embed_docs() joins
     * the fields into one text and calls embed(EMBED_DOCUMENT). */
    int (*embed_docs)(void *impl, const embed_doc_t *docs, size_t n, float *out);
    /* Optional learning from the catalogue; see the top of this file. */
    int (*fit_add)(void *impl, const embed_doc_t *docs, size_t n);
    int (*fit_end)(void *impl);
    /* Optional: the learnt state as bytes (*blob malloc'd, caller frees) and back. */
    int (*state_save)(void *impl, uint8_t **blob, size_t *len);
    int (*state_load)(void *impl, const uint8_t *blob, size_t len);
    void (*destroy)(void *impl);
} embed_vtable_t;

/* Makes an embedder from a spec: "local" or "local:DIM" (DIM 64..4096,
 * default 384), or "openai" (embed_openai_from_env); NULL or "" reads
 * SOUK_EMBEDDER and falls back to "local".
 * Writes a sentence to err (may be NULL) on error: SOUK_EINVAL unknown
 * spec, SOUK_ECONFIG, SOUK_ENOMEM. Caller owns *out. */
int embed_new(const char *spec, embedder_t **out, char *err, size_t errlen);
/* Wraps an implementation: the embedder takes ownership of impl (destroyed
 * through vt->destroy, also when this call fails). params is any text that
 * names the parameters (hashed into the identity). */
int embed_new_custom(const embed_vtable_t *vt, void *impl, int dim, const char *params,
                     embedder_t **out);
/* Destroys and sets *self_p to NULL; NULL or *NULL is a no-op. */
void embed_destroy(embedder_t **self_p);

const char *embed_name(const embedder_t *self);
int embed_dim(const embedder_t *self);
void embed_identity(const embedder_t *self, embed_id_t *id);
/* Whether two identities are the same embedder. */
int embed_id_equal(const embed_id_t *a, const embed_id_t *b);
/* "local/256/5e1f0c2d9a7b3e11" into buf, for messages; returns buf. */
const char *embed_id_format(const embed_id_t *id, char *buf, size_t buflen);
/* Texts per call that suit the implementation. */
size_t embed_batch_max(const embedder_t *self);

/* n texts -> n unit vectors in out (n * dim floats). NULL texts are empty. */
int embed_texts(embedder_t *self, embed_kind_t kind, const char *const *texts, size_t n,
                float *out);
/* n products -> n unit vectors in out. */
int embed_docs(embedder_t *self, const embed_doc_t *docs, size_t n, float *out);

/* Learning from the catalogue (no-ops for embedders that learn nothing). */
int embed_fit_add(embedder_t *self, const embed_doc_t *docs, size_t n);
int embed_fit_end(embedder_t *self);
/* *blob = NULL, *len = 0 for an embedder without state; caller frees *blob. */
int embed_state_save(embedder_t *self, uint8_t **blob, size_t *len);
/* SOUK_EPROTO for a state this embedder cannot read. */
int embed_state_load(embedder_t *self, const uint8_t *blob, size_t len);

/* A process-wide observer of long embedding runs, for a command's progress
 * bar (souk import): fn(done, arg) runs after each batch a remote embedder
 * has embedded, done counting texts since the observer was set. NULL
 * clears it. Set it before the run, from the thread that embeds. */
typedef void(embed_progress_fn)(size_t done, void *arg);
void embed_progress_set(embed_progress_fn *fn, void *arg);
/* For implementations: n more texts embedded. */
void embed_progress_add(size_t n);

/* Built-in implementations, for embed_new(). */
int embed_local_new(int dim, const char *wordnet_dir, embedder_t **out, char *err, size_t errlen);

typedef struct {
    const char *base_url;       /* "https://api.openai.com/v1" */
    const char *api_key;        /* may be NULL or "" */
    const char *model;          /* "text-embedding-3-small" */
    int dim;                    /* asked of the API as `dimensions`, 1..EMBED_DIM_MAX */
    int timeout_ms;             /* per batch, retries included; 0: 60 s (queries: 1.5 s at most) */
    int retries;                /* < 0: the client's default */
} embed_openai_options_t;

/* The /embeddings embedder; errors as openai_new (souk/openai.h). Its calls
 * return the client's errors (SOUK_EUNAVAIL, SOUK_EPROTO…). */
int embed_openai_new(const embed_openai_options_t *opt, embedder_t **out, char *err,
                     size_t errlen);
/* The same from OPENAI_BASE_URL, OPENAI_API_KEY, SOUK_EMBED_MODEL and
 * SOUK_EMBED_DIM (the defaults of souk/config.h). */
int embed_openai_from_env(embedder_t **out, char *err, size_t errlen);

#endif
