/* vstore_pinecone: the product vectors in a Pinecone index (souk/vstore.h).
 *
 * A product is one vector whose id is its SKU, with metadata for the
 * filters and answers: sku, name, category, brand, currency (absent ones
 * left out: Pinecone refuses null), price_cents and in_stock. A query asks
 * Pinecone for the best CANDIDATES_MIN-or-more candidates that pass the
 * filters, then re-ranks them with the boosts search computed over the
 * local file (brand, category, exact words) — the same sum vindex_query()
 * makes, over the candidates instead of every product. A candidate whose
 * SKU the local file does not know (an import under way on another node)
 * is left out, and the local file's price and stock are checked again.
 *
 * A query vector with nothing in it (price words alone: "anything under
 * 10 euros") has no direction to search: Pinecone refuses all-zero vectors,
 * and the ranking is then the boosts alone, which the local file's scan
 * answers. */
#include "souk/vstore.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "souk/config.h"
#include "souk/error.h"
#include "souk/pinecone.h"

#define CANDIDATES_MIN 200
#define CANDIDATES_PER_HIT 10
#define MARKER_RECHECK_S 30

typedef struct {
    pinecone_t *pc;
    char marker_ns[512];
    /* check: the marker's embedder, as last fetched */
    char marker[128];
    time_t marker_at;
    /* sync: SKUs of the old index, and of the new one (sorted at the end) */
    char **old_skus, **new_skus;
    size_t n_old, n_new, cap_new;
} pc_t;

static void s_free_skus(char ***skus, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*skus)[i]);
    free(*skus);
    *skus = NULL;
    *n = 0;
}

static void s_destroy(void *impl)
{
    pc_t *self = impl;
    pinecone_destroy(&self->pc);
    s_free_skus(&self->old_skus, &self->n_old);
    s_free_skus(&self->new_skus, &self->n_new);
    free(self);
}

static int s_fail(char *err, size_t errlen, int rc, const char *text)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", text);
    return rc;
}

/* Pinecone out of reach (retries spent) is an I/O failure to search: its
 * SOUK_EUNAVAIL means "no index yet", which callers tell users differently. */
static int s_remote_fail(pc_t *self, char *err, size_t errlen, int rc)
{
    return s_fail(err, errlen, rc == SOUK_EUNAVAIL ? SOUK_EIO : rc, pinecone_last_error(self->pc));
}

/* ---- the embedder marker ---------------------------------------------------------- */

/* The marker's embedder into out ("" when there is no marker). */
static int s_read_marker(pc_t *self, char *out, size_t outlen)
{
    json_t *meta = NULL;
    out[0] = '\0';
    int rc = pinecone_fetch(self->pc, self->marker_ns, VSTORE_MARKER_ID, &meta);
    if (rc == SOUK_ENOTFOUND)
        return SOUK_OK;
    if (rc != SOUK_OK)
        return rc;
    const char *e = json_string_value(json_object_get(meta, "embedder"));
    snprintf(out, outlen, "%s", e ? e : "?");
    json_decref(meta);
    return SOUK_OK;
}

static int s_check(void *impl, const embed_id_t *id, char *err, size_t errlen)
{
    pc_t *self = impl;
    char want[96];
    embed_id_format(id, want, sizeof want);
    time_t now = time(NULL);
    if (!self->marker[0] || strcmp(self->marker, want) != 0 ||
        now - self->marker_at >= MARKER_RECHECK_S) {
        int rc = s_read_marker(self, self->marker, sizeof self->marker);
        if (rc != SOUK_OK)
            return s_remote_fail(self, err, errlen, rc);
        self->marker_at = now;
    }
    if (!self->marker[0]) {
        if (err && errlen)
            snprintf(err, errlen, "no product index in Pinecone namespace %s (run souk import)",
                     pinecone_namespace(self->pc));
        return SOUK_EUNAVAIL;
    }
    if (strcmp(self->marker, want) != 0) {
        if (err && errlen)
            snprintf(err, errlen, "Pinecone namespace %s was built by embedder %s, this search "
                     "embeds with %s: refused (rebuild it with souk import, or search with the "
                     "same embedder)", pinecone_namespace(self->pc), self->marker, want);
        self->marker_at = 0;                   /* ask again next time: it may be rebuilt */
        return SOUK_ECONFIG;
    }
    return SOUK_OK;
}

/* ---- query ---------------------------------------------------------------------------- */

static int s_add_cond(json_t *conds, const char *field, const char *op, json_t *value)
{
    return json_array_append_new(conds, json_pack("{s:{s:o}}", field, op, value));
}

/* vindex_filter_t -> Pinecone's metadata filter; NULL when out of memory. */
static json_t *s_filter(vindex_t *vx, const vindex_filter_t *f)
{
    json_t *conds = json_array();
    if (!conds || !f)
        return conds ? json_pack("{}") : NULL;
    if (f->max_price_cents >= 0)
        s_add_cond(conds, "price_cents", "$lte", json_integer(f->max_price_cents));
    if (f->in_stock_only)
        s_add_cond(conds, "in_stock", "$eq", json_true());
    if (f->category_mask) {
        json_t *names = json_array();
        for (int c = 0; names && c < vindex_category_count(vx); c++)
            if (f->category_mask[c])
                json_array_append_new(names, json_string(vindex_category_name(vx, c)));
        s_add_cond(conds, "category", "$in", names);
    }
    vindex_entry_t e;
    if (f->exclude_id >= 0 && vindex_entry(vx, (uint32_t)f->exclude_id, &e) == SOUK_OK)
        s_add_cond(conds, "sku", "$ne", json_string(e.sku));
    size_t n = json_array_size(conds);
    json_t *out = n == 0 ? json_object() : n == 1 ? json_incref(json_array_get(conds, 0))
                                                  : json_pack("{s:O}", "$and", conds);
    json_decref(conds);
    return out;
}

static bool s_passes(const vindex_entry_t *e, const vindex_filter_t *f)
{
    return !f || (!(f->in_stock_only && !e->in_stock) &&
                  !(f->max_price_cents >= 0 && e->price_cents > f->max_price_cents) &&
                  !(f->category_mask && (e->category_id < 0 || !f->category_mask[e->category_id])));
}

static int s_cmp_hit(const void *a, const void *b)
{
    const vindex_hit_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int s_query(void *impl, vindex_t *vx, const embed_id_t *id, const float *vec,
                   const vindex_filter_t *f, int k, vindex_hit_t *hits, int *n, char *err,
                   size_t errlen)
{
    pc_t *self = impl;
    if (!vx || !id || !vec || !hits || !n || k < 1 || k > VINDEX_K_MAX)
        return SOUK_EINVAL;
    *n = 0;
    bool any = false;
    for (int d = 0; d < id->dim && !any; d++)
        any = vec[d] != 0;
    if (!any)
        return vindex_query(vx, id, vec, f, k, hits, n, err, errlen);
    int top_k = k * CANDIDATES_PER_HIT < CANDIDATES_MIN ? CANDIDATES_MIN : k * CANDIDATES_PER_HIT;
    if (top_k > PINECONE_TOPK_MAX)
        top_k = PINECONE_TOPK_MAX;
    json_t *filter = s_filter(vx, f);
    if (!filter)
        return s_fail(err, errlen, SOUK_ENOMEM, "pinecone: out of memory");
    const pinecone_match_t *m;
    int nm;
    int rc = pinecone_query(self->pc, vec, id->dim, top_k, filter, false, &m, &nm);
    json_decref(filter);
    if (rc != SOUK_OK)
        return s_remote_fail(self, err, errlen, rc);
    vindex_hit_t *all = malloc(((size_t)nm + 1) * sizeof *all);
    if (!all)
        return s_fail(err, errlen, SOUK_ENOMEM, "pinecone: out of memory");
    int got = 0;
    for (int i = 0; i < nm; i++) {
        uint32_t pid;
        vindex_entry_t e;
        if (vindex_find_sku(vx, m[i].id, strlen(m[i].id), &pid) != SOUK_OK ||
            vindex_entry(vx, pid, &e) != SOUK_OK || !s_passes(&e, f) ||
            (f && (int64_t)pid == f->exclude_id))
            continue;
        float score = m[i].score;
        if (f && f->brand_boost && e.brand_id >= 0)
            score += f->brand_boost[e.brand_id];
        if (f && f->category_boost && e.category_id >= 0)
            score += f->category_boost[e.category_id];
        if (f && f->extra)
            score += f->extra[pid];
        all[got++] = (vindex_hit_t){ .id = pid, .score = score };
    }
    qsort(all, (size_t)got, sizeof *all, s_cmp_hit);
    *n = got < k ? got : k;
    memcpy(hits, all, (size_t)*n * sizeof *hits);
    free(all);
    return SOUK_OK;
}

/* ---- sync (souk import) ------------------------------------------------------------ */

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int s_sync_begin(void *impl, const embed_id_t *id, vindex_t *old, char *err, size_t errlen)
{
    pc_t *self = impl;
    s_free_skus(&self->old_skus, &self->n_old);
    s_free_skus(&self->new_skus, &self->n_new);
    self->cap_new = 0;
    char was[128], want[96];
    int rc = s_read_marker(self, was, sizeof was);
    if (rc != SOUK_OK)
        return s_fail(err, errlen, rc, pinecone_last_error(self->pc));
    if (strcmp(was, embed_id_format(id, want, sizeof want)) != 0) {
        /* another embedder's vectors are not comparable: start empty */
        rc = pinecone_delete_all(self->pc, NULL);
        return rc == SOUK_OK ? SOUK_OK : s_fail(err, errlen, rc, pinecone_last_error(self->pc));
    }
    size_t n = old && vindex_ready(old) ? vindex_count(old) : 0;
    self->old_skus = calloc(n + 1, sizeof *self->old_skus);
    if (!self->old_skus)
        return SOUK_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        vindex_entry_t e;
        if (vindex_entry(old, (uint32_t)i, &e) == SOUK_OK &&
            !(self->old_skus[self->n_old++] = strdup(e.sku)))
            return SOUK_ENOMEM;
    }
    return SOUK_OK;
}

static int s_sync_add(void *impl, const vindex_item_t *item, const float *vec, int dim, char *err,
                      size_t errlen)
{
    pc_t *self = impl;
    if (self->n_new == self->cap_new) {
        size_t cap = self->cap_new ? self->cap_new * 2 : 256;
        char **p = realloc(self->new_skus, cap * sizeof *p);
        if (!p)
            return SOUK_ENOMEM;
        self->new_skus = p;
        self->cap_new = cap;
    }
    if (!(self->new_skus[self->n_new] = strdup(item->sku)))
        return SOUK_ENOMEM;
    self->n_new++;
    json_t *meta = json_pack("{s:s,s:s,s:I,s:b}", "sku", item->sku, "name", item->name,
                             "price_cents", (json_int_t)item->price_cents, "in_stock",
                             item->stock > 0);
    if (!meta)
        return SOUK_ENOMEM;
    if (item->category && *item->category)
        json_object_set_new(meta, "category", json_string(item->category));
    if (item->brand && *item->brand)
        json_object_set_new(meta, "brand", json_string(item->brand));
    if (item->currency && *item->currency)
        json_object_set_new(meta, "currency", json_string(item->currency));
    int rc = pinecone_upsert_add(self->pc, item->sku, vec, dim, meta);
    json_decref(meta);
    return rc == SOUK_OK ? SOUK_OK : s_fail(err, errlen, rc, pinecone_last_error(self->pc));
}

static int s_sync_end(void *impl, const embed_id_t *id, size_t products, char *err, size_t errlen)
{
    pc_t *self = impl;
    int rc = pinecone_upsert_flush(self->pc);
    /* what the old index had and the new one has not vanished from the shop */
    if (self->n_new)
        qsort(self->new_skus, self->n_new, sizeof *self->new_skus, s_cmp_str);
    size_t gone = 0;
    for (size_t i = 0; rc == SOUK_OK && i < self->n_old; i++)
        if (!self->n_new || !bsearch(&self->old_skus[i], self->new_skus, self->n_new,
                                     sizeof *self->new_skus, s_cmp_str))
            self->old_skus[gone++] = self->old_skus[i];
        else
            free(self->old_skus[i]);
    if (rc == SOUK_OK) {
        self->n_old = gone;
        rc = pinecone_delete_ids(self->pc, (const char *const *)self->old_skus, gone);
    }
    if (rc == SOUK_OK) {
        char name[96];
        float *one = calloc((size_t)id->dim, sizeof *one);
        json_t *meta = json_pack("{s:s,s:I,s:I}", "embedder", embed_id_format(id, name, sizeof name),
                                 "products", (json_int_t)products, "built_at",
                                 (json_int_t)time(NULL));
        if (one && meta) {
            one[0] = 1.0f;                         /* Pinecone refuses an all-zero vector */
            rc = pinecone_put(self->pc, self->marker_ns, VSTORE_MARKER_ID, one, id->dim, meta);
        } else {
            rc = SOUK_ENOMEM;
        }
        free(one);
        json_decref(meta);
    }
    s_free_skus(&self->old_skus, &self->n_old);
    s_free_skus(&self->new_skus, &self->n_new);
    self->marker_at = 0;
    return rc == SOUK_OK ? SOUK_OK : s_fail(err, errlen, rc, pinecone_last_error(self->pc));
}

static const vstore_vtable_t s_vt = {
    .name = "pinecone", .query = s_query, .check = s_check, .sync_begin = s_sync_begin,
    .sync_add = s_sync_add, .sync_end = s_sync_end, .destroy = s_destroy,
};

/* SOUK_SHOP_NAME as the process sees it: the environment, else the table's
 * default (souk_config_load does not export defaults). */
static const char *s_shop_name(void)
{
    const char *set = getenv("SOUK_SHOP_NAME");
    if (set)
        return set;
#define V(env, kind, field, def, lo, hi, help)                               \
    if (strcmp(#env, "SOUK_SHOP_NAME") == 0)                                 \
        return def;
    SOUK_CONFIG_VARS(V)
#undef V
    return "";
}

int vstore_pinecone_new(vstore_t **out, char *err, size_t errlen)
{
    char ns[256];
    const char *set = getenv("SOUK_PINECONE_NAMESPACE");
    if (set && *set)
        snprintf(ns, sizeof ns, "%s", set);
    else
        vstore_default_namespace(s_shop_name(), ns, sizeof ns);
    pinecone_opts_t o = { .host = getenv("PINECONE_INDEX_HOST"),
                          .api_key = getenv("PINECONE_API_KEY"), .ns = ns };
    pc_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOUK_ENOMEM;
    snprintf(self->marker_ns, sizeof self->marker_ns, "%s%s", ns, VSTORE_MARKER_SUFFIX);
    int rc = pinecone_new(&o, &self->pc, err, errlen);
    if (rc != SOUK_OK) {
        s_destroy(self);
        return rc;
    }
    return vstore_new_custom(&s_vt, self, out);
}
