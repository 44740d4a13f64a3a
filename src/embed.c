/* embed: the embedder handle around an implementation's vtable.
 *
 * Holds the identity (name, dimension, parameter hash) that indexes record,
 * chooses an implementation from a spec, and supplies the defaults for the
 * optional parts of the vtable. */
#include "souk/embed.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "souk/error.h"

/* 384 int8 components: hashing noise low enough for concept matches, and a
 * scan of 100,000 products in about 1.5 ms. */
#define EMBED_LOCAL_DIM 384

struct embedder_s {
    const embed_vtable_t *vt;
    void *impl;
    embed_id_t id;
};

static void s_err(char *err, size_t errlen, const char *msg, const char *arg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s%s", msg, arg ? arg : "");
}

/* FNV-1a then a final avalanche: stable across builds and machines. */
static uint64_t s_hash_text(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

int embed_new_custom(const embed_vtable_t *vt, void *impl, int dim, const char *params,
                     embedder_t **out)
{
    if (!vt || !vt->embed || !vt->name || !out || dim < 1 || dim > EMBED_DIM_MAX ||
        strlen(vt->name) >= EMBED_NAME_MAX) {
        if (vt && vt->destroy && impl)
            vt->destroy(impl);
        return SOUK_EINVAL;
    }
    embedder_t *self = calloc(1, sizeof *self);
    if (!self) {
        if (vt->destroy && impl)
            vt->destroy(impl);
        return SOUK_ENOMEM;
    }
    self->vt = vt;
    self->impl = impl;
    snprintf(self->id.name, sizeof self->id.name, "%s", vt->name);
    self->id.dim = dim;
    char text[512];
    snprintf(text, sizeof text, "%s|%d|%s", vt->name, dim, params ? params : "");
    self->id.params_hash = s_hash_text(text);
    *out = self;
    return SOUK_OK;
}

int embed_new(const char *spec, embedder_t **out, char *err, size_t errlen)
{
    if (!out)
        return SOUK_EINVAL;
    if (!spec || !*spec)
        spec = getenv("SOUK_EMBEDDER");
    if (!spec || !*spec)
        spec = "local";
    if (strncmp(spec, "local", 5) == 0 && (spec[5] == '\0' || spec[5] == ':')) {
        int dim = EMBED_LOCAL_DIM;
        if (spec[5] == ':') {
            char *end;
            long d = strtol(spec + 6, &end, 10);
            if (*end || d < 64 || d > EMBED_DIM_MAX) {
                s_err(err, errlen, "embedder: bad dimension in ", spec);
                return SOUK_EINVAL;
            }
            dim = (int)d;
        }
        const char *wn = getenv("SOUK_WORDNET_DIR");
        return embed_local_new(dim, wn && *wn ? wn : "/usr/share/wordnet", out, err, errlen);
    }
    if (strcmp(spec, "openai") == 0)
        return embed_openai_from_env(out, err, errlen);
    s_err(err, errlen, "embedder: unknown embedder ", spec);
    return SOUK_EINVAL;
}

/* One observer per process: an import embeds from its one thread. */
static embed_progress_fn *s_progress;
static void *s_progress_arg;
static size_t s_progress_done;

void embed_progress_set(embed_progress_fn *fn, void *arg)
{
    s_progress = fn;
    s_progress_arg = arg;
    s_progress_done = 0;
}

void embed_progress_add(size_t n)
{
    s_progress_done += n;
    if (s_progress)
        s_progress(s_progress_done, s_progress_arg);
}

void embed_destroy(embedder_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    embedder_t *self = *self_p;
    if (self->vt->destroy && self->impl)
        self->vt->destroy(self->impl);
    free(self);
    *self_p = NULL;
}

const char *embed_name(const embedder_t *self)
{
    return self->id.name;
}

int embed_dim(const embedder_t *self)
{
    return self->id.dim;
}

void embed_identity(const embedder_t *self, embed_id_t *id)
{
    *id = self->id;
}

int embed_id_equal(const embed_id_t *a, const embed_id_t *b)
{
    return strncmp(a->name, b->name, EMBED_NAME_MAX) == 0 && a->dim == b->dim &&
           a->params_hash == b->params_hash;
}

const char *embed_id_format(const embed_id_t *id, char *buf, size_t buflen)
{
    snprintf(buf, buflen, "%.*s/%d/%016" PRIx64, EMBED_NAME_MAX - 1, id->name, id->dim,
             id->params_hash);
    return buf;
}

size_t embed_batch_max(const embedder_t *self)
{
    return self->vt->batch_max ? self->vt->batch_max : 1;
}

int embed_texts(embedder_t *self, embed_kind_t kind, const char *const *texts, size_t n,
                float *out)
{
    if (!self || (n && (!texts || !out)))
        return SOUK_EINVAL;
    return n ? self->vt->embed(self->impl, kind, texts, n, out) : SOUK_OK;
}

/* "name. brand. category. tags. description. attrs" for embedders that take
 * plain text only. Caller frees. */
static char *s_join_fields(const embed_doc_t *doc)
{
    size_t len = 1;
    for (int f = 0; f < EMBED_FIELD_COUNT; f++)
        if (doc->field[f])
            len += strlen(doc->field[f]) + 2;
    char *text = malloc(len), *p = text;
    if (!text)
        return NULL;
    for (int f = 0; f < EMBED_FIELD_COUNT; f++) {
        if (!doc->field[f] || !*doc->field[f])
            continue;
        if (p != text) {
            memcpy(p, ". ", 2);
            p += 2;
        }
        size_t l = strlen(doc->field[f]);
        memcpy(p, doc->field[f], l);
        p += l;
    }
    *p = '\0';
    return text;
}

int embed_docs(embedder_t *self, const embed_doc_t *docs, size_t n, float *out)
{
    if (!self || (n && (!docs || !out)))
        return SOUK_EINVAL;
    if (n == 0)
        return SOUK_OK;
    if (self->vt->embed_docs)
        return self->vt->embed_docs(self->impl, docs, n, out);
    char **texts = calloc(n, sizeof *texts);
    int rc = texts ? SOUK_OK : SOUK_ENOMEM;
    for (size_t i = 0; i < n && rc == SOUK_OK; i++)
        if (!(texts[i] = s_join_fields(&docs[i])))
            rc = SOUK_ENOMEM;
    if (rc == SOUK_OK)
        rc = self->vt->embed(self->impl, EMBED_DOCUMENT, (const char *const *)texts, n, out);
    for (size_t i = 0; texts && i < n; i++)
        free(texts[i]);
    free(texts);
    return rc;
}

int embed_fit_add(embedder_t *self, const embed_doc_t *docs, size_t n)
{
    if (!self || (n && !docs))
        return SOUK_EINVAL;
    return self->vt->fit_add && n ? self->vt->fit_add(self->impl, docs, n) : SOUK_OK;
}

int embed_fit_end(embedder_t *self)
{
    if (!self)
        return SOUK_EINVAL;
    return self->vt->fit_end ? self->vt->fit_end(self->impl) : SOUK_OK;
}

int embed_state_save(embedder_t *self, uint8_t **blob, size_t *len)
{
    if (!self || !blob || !len)
        return SOUK_EINVAL;
    *blob = NULL;
    *len = 0;
    return self->vt->state_save ? self->vt->state_save(self->impl, blob, len) : SOUK_OK;
}

int embed_state_load(embedder_t *self, const uint8_t *blob, size_t len)
{
    if (!self || (len && !blob))
        return SOUK_EINVAL;
    if (!self->vt->state_load)
        return len ? SOUK_EPROTO : SOUK_OK;
    return self->vt->state_load(self->impl, blob, len);
}
