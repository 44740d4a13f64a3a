/* vstore: the seam between search and where vectors are kept (souk/vstore.h).
 *
 * The local store is the mapped file itself: its query is vindex_query()
 * and it has nothing to sync, since the index writer already wrote the
 * vectors. One indirect call per query is all the seam costs it. */
#include "souk/vstore.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "souk/error.h"

struct vstore_s {
    const vstore_vtable_t *vt;
    void *impl;
};

static int s_local_query(void *impl, vindex_t *vx, const embed_id_t *id, const float *vec,
                         const vindex_filter_t *f, int k, vindex_hit_t *hits, int *n, char *err,
                         size_t errlen)
{
    (void)impl;
    return vindex_query(vx, id, vec, f, k, hits, n, err, errlen);
}

static const vstore_vtable_t s_local = { .name = "local", .query = s_local_query };

int vstore_new_custom(const vstore_vtable_t *vt, void *impl, vstore_t **out)
{
    vstore_t *self = vt && vt->query && out ? calloc(1, sizeof *self) : NULL;
    if (!self) {
        if (vt && vt->destroy && impl)
            vt->destroy(impl);
        return vt && vt->query && out ? SOUK_ENOMEM : SOUK_EINVAL;
    }
    self->vt = vt;
    self->impl = impl;
    *out = self;
    return SOUK_OK;
}

int vstore_open(const char *spec, vstore_t **out, char *err, size_t errlen)
{
    if (!out)
        return SOUK_EINVAL;
    if (!spec || !*spec)
        spec = getenv("SOUK_VECTOR");
    if (!spec || !*spec || strcmp(spec, "local") == 0)
        return vstore_new_custom(&s_local, NULL, out);
    if (strcmp(spec, "pinecone") == 0)
        return vstore_pinecone_new(out, err, errlen);
    if (err && errlen)
        snprintf(err, errlen, "SOUK_VECTOR=%s: unknown vector store (local or pinecone)", spec);
    return SOUK_EINVAL;
}

void vstore_close(vstore_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vstore_t *self = *self_p;
    if (self->vt->destroy)
        self->vt->destroy(self->impl);
    free(self);
    *self_p = NULL;
}

const char *vstore_name(const vstore_t *self)
{
    return self->vt->name;
}

bool vstore_remote(const vstore_t *self)
{
    return self->vt->sync_add != NULL;
}

int vstore_query(vstore_t *self, vindex_t *vx, const embed_id_t *id, const float *vec,
                 const vindex_filter_t *f, int k, vindex_hit_t *hits, int *n, char *err,
                 size_t errlen)
{
    return self->vt->query(self->impl, vx, id, vec, f, k, hits, n, err, errlen);
}

int vstore_check(vstore_t *self, const embed_id_t *id, char *err, size_t errlen)
{
    return self->vt->check ? self->vt->check(self->impl, id, err, errlen) : SOUK_OK;
}

int vstore_sync_begin(vstore_t *self, const embed_id_t *id, vindex_t *old, char *err,
                      size_t errlen)
{
    return self->vt->sync_begin ? self->vt->sync_begin(self->impl, id, old, err, errlen) : SOUK_OK;
}

int vstore_sync_add(vstore_t *self, const vindex_item_t *item, const float *vec, int dim,
                    char *err, size_t errlen)
{
    return self->vt->sync_add ? self->vt->sync_add(self->impl, item, vec, dim, err, errlen)
                              : SOUK_OK;
}

int vstore_sync_end(vstore_t *self, const embed_id_t *id, size_t products, char *err,
                    size_t errlen)
{
    return self->vt->sync_end ? self->vt->sync_end(self->impl, id, products, err, errlen)
                              : SOUK_OK;
}

void vstore_default_namespace(const char *shop_name, char *out, size_t outlen)
{
    size_t o = 0;
    if (!outlen)
        return;
    for (const unsigned char *p = (const unsigned char *)(shop_name ? shop_name : "");
         *p && o + 1 < outlen; p++) {
        if (isalnum(*p) && *p < 0x80)
            out[o++] = (char)tolower(*p);
        else if (o && out[o - 1] != '-')
            out[o++] = '-';
    }
    while (o && out[o - 1] == '-')
        o--;
    out[o] = '\0';
    if (!o)
        snprintf(out, outlen, "souk");
}
