/* search_store: builds the product index from the store (for souk import).
 *
 * Kept apart from search_build.c so that code which only searches does not
 * link the store. */
#include <stdio.h>

#include "souk/error.h"
#include "souk/search.h"
#include "souk/vindex.h"

static int s_each(void *src, store_product_cb cb, void *cb_arg)
{
    return store_product_each(src, cb, cb_arg);
}

int search_build_index(store_t *store, const char *data_dir, const char *embedder_spec,
                       search_build_stats_t *st, char *err, size_t errlen)
{
    if (!store || !data_dir || !*data_dir)
        return SOUK_EINVAL;
    embedder_t *e;
    int rc = embed_new(embedder_spec, &e, err, errlen);
    if (rc != SOUK_OK)
        return rc;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", data_dir, VINDEX_FILE);
    rc = search_build(path, e, s_each, store, st, err, errlen);
    embed_destroy(&e);
    return rc;
}
