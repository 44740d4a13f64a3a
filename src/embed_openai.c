/* embed_openai: the "openai" embedder (souk/embed.h) — vectors from the
 * /embeddings endpoint of OPENAI_BASE_URL (OpenAI's, or any compatible
 * server's), model SOUK_EMBED_MODEL at SOUK_EMBED_DIM dimensions.
 *
 * Queries and documents are embedded the same way (the API has no notion
 * of either), in batches of EMBED_OPENAI_BATCH texts per request; the
 * client retries 429/5xx with back-off (souk/openai.h). The identity hashes
 * the model with the dimension, so an index built with one model refuses a
 * query embedded with another. It learns nothing from the catalogue. */
#include "souk/embed.h"

#include "souk/error.h"
#include "souk/openai.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Texts per request: OpenAI takes up to 2048, but a smaller batch keeps a
 * retried request cheap and each answer a few MB at most. */
#define EMBED_OPENAI_BATCH 128
/* An import may wait long for a batch; a query is embedded by a tool actor
 * inside a session's tool call (SESSION_TOOL_DEADLINE_MS, 2 s) and must
 * not block it past its heartbeats. */
#define EMBED_OPENAI_TIMEOUT_MS 60000
#define EMBED_OPENAI_QUERY_TIMEOUT_MS 1500

typedef struct {
    openai_t *api;
    char *model;
    int dim;
    int timeout_ms, query_timeout_ms;
} s_impl_t;

static int s_embed(void *impl, embed_kind_t kind, const char *const *texts, size_t n, float *out)
{
    s_impl_t *self = impl;
    openai_set_timeout(self->api, kind == EMBED_QUERY ? self->query_timeout_ms : self->timeout_ms);
    for (size_t i = 0; i < n; i += EMBED_OPENAI_BATCH) {
        size_t k = n - i < EMBED_OPENAI_BATCH ? n - i : EMBED_OPENAI_BATCH;
        int rc = openai_embed(self->api, self->model, self->dim, texts + i, k, self->dim,
                              out + i * (size_t)self->dim, NULL);
        if (rc != SOUK_OK)
            return rc;
        embed_progress_add(k);
    }
    return SOUK_OK;
}

static void s_destroy(void *impl)
{
    s_impl_t *self = impl;
    openai_destroy(&self->api);
    free(self->model);
    free(self);
}

static const embed_vtable_t s_vtable = {
    .name = "openai", .batch_max = EMBED_OPENAI_BATCH, .embed = s_embed, .destroy = s_destroy,
};

static const char *s_env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

int embed_openai_new(const embed_openai_options_t *opt, embedder_t **out, char *err,
                     size_t errlen)
{
    if (!opt || !out || !opt->model || !*opt->model || opt->dim < 1 || opt->dim > EMBED_DIM_MAX)
        return SOUK_EINVAL;
    s_impl_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOUK_ENOMEM;
    openai_options_t o = {
        .base_url = opt->base_url, .api_key = opt->api_key,
        .timeout_ms = opt->timeout_ms > 0 ? opt->timeout_ms : EMBED_OPENAI_TIMEOUT_MS,
        .retries = opt->retries,
    };
    int rc = openai_new(&o, &self->api, err, errlen);
    self->model = strdup(opt->model);
    self->dim = opt->dim;
    self->timeout_ms = o.timeout_ms;
    self->query_timeout_ms = opt->timeout_ms > 0 && opt->timeout_ms < EMBED_OPENAI_QUERY_TIMEOUT_MS
                                 ? opt->timeout_ms : EMBED_OPENAI_QUERY_TIMEOUT_MS;
    if (rc == SOUK_OK && !self->model)
        rc = SOUK_ENOMEM;
    if (rc != SOUK_OK) {
        s_destroy(self);
        return rc;
    }
    char params[256];
    snprintf(params, sizeof params, "model=%s", opt->model);
    return embed_new_custom(&s_vtable, self, opt->dim, params, out);
}

int embed_openai_from_env(embedder_t **out, char *err, size_t errlen)
{
    const char *dim = s_env("SOUK_EMBED_DIM", "1536");
    char *end;
    long d = strtol(dim, &end, 10);
    if (*end || d < 1 || d > EMBED_DIM_MAX) {
        if (err && errlen)
            snprintf(err, errlen, "embedder: SOUK_EMBED_DIM=%s is not 1..%d", dim, EMBED_DIM_MAX);
        return SOUK_EINVAL;
    }
    embed_openai_options_t opt = {
        .base_url = s_env("OPENAI_BASE_URL", "https://api.openai.com/v1"),
        .api_key = s_env("OPENAI_API_KEY", ""),
        .model = s_env("SOUK_EMBED_MODEL", "text-embedding-3-small"),
        .dim = (int)d, .retries = -1,
    };
    return embed_openai_new(&opt, out, err, errlen);
}
