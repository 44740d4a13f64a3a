/* Running one tool call: identity, validation, idempotency, dispatch; and
 * the two product tools.
 *
 * The order of checks is the contract of tools.h: the waid first (nothing
 * is looked at without one), then the arguments against the schema (an
 * invalid call changes nothing), then, for a state-changing tool, the
 * idem_key: a key already answered returns the stored first result. The
 * stored key is namespaced by user and tool ("t:<waid>:<tool>:<key>"), so
 * one user's key can never reach another user's result or order. */
#include "tools_priv.h"

#include "souk/actor.h"
#include "souk/error.h"
#include "souk/log.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAID_MAX_DIGITS 20
#define SEARCH_DEFAULT_LIMIT 5
#define SEARCH_MAX_LIMIT 20
/* get_product: long free text is cut so a result always fits TOOL_RESULT */
#define DESCRIPTION_MAX_BYTES 4000
#define ATTR_VALUE_MAX_BYTES 1000
#define ATTRS_MAX 40

int tools_fail(tools_call_t *c, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
    return rc;
}

int tools_store_fail(tools_call_t *c, int rc, const char *what)
{
    SLOG_WARN("tools.store", "tool=%s what=\"%s\" err=%s detail=\"%s\"", c->tool, what,
              souk_errname(rc), store_last_error(c->ctx->store));
    if (rc == SOUK_EBUSY)
        return tools_fail(c, rc, "The shop is busy right now; please try again in a moment.");
    return tools_fail(c, rc, "Something went wrong on the shop's side (%s); please try again.",
                      souk_strerror(rc));
}

bool tools_waid_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = strspn(s, "0123456789");
    return n >= 1 && n <= WAID_MAX_DIGITS && s[n] == '\0';
}

static bool s_idem_key_valid(const char *k)
{
    if (!k || !*k || strlen(k) > TOOLS_IDEM_KEY_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)k; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            return false;
    return true;
}

bool tools_error_retryable(int rc)
{
    return rc == SOUK_EBUSY || rc == SOUK_EIO || rc == SOUK_ENOMEM || rc == SOUK_ETIMEDOUT;
}

char *tools_error_json(int rc)
{
    json_t *doc = json_pack("{s:s, s:b}", "code", souk_errname(rc), "retryable",
                            tools_error_retryable(rc));
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return text;
}

/* ---- search_products ------------------------------------------------------------ */

static json_t *s_search_hit(tools_call_t *c, const search_hit_t *h, bool in_stock_only)
{
    /* price and stock from the store: the index may be a moment older */
    store_product_t p = { 0 };
    int rc = store_product_get(c->ctx->store, h->sku, &p);
    if (rc != SOUK_OK || (in_stock_only && p.stock <= 0)) {
        store_product_clear(&p);
        return NULL;
    }
    json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:I, s:o}", "product_id", p.sku, "name", p.name,
                          "price", tools_money_json(p.price_cents), "currency", p.currency,
                          "stock", (json_int_t)p.stock, "score",
                          json_real(round((double)h->score * 1000.0) / 1000.0));
    store_product_clear(&p);
    return o;
}

int tools_search_products(tools_call_t *c)
{
    if (!c->ctx->search)
        return tools_fail(c, SOUK_EUNAVAIL, "Product search is not available right now.");
    json_t *filters = json_object_get(c->args, "filters");
    json_t *limit = json_object_get(c->args, "limit");
    int n_want = limit ? (int)json_number_value(limit) : SEARCH_DEFAULT_LIMIT;
    json_t *max_price = json_object_get(filters, "max_price");
    search_filters_t f = {
        .category = json_string_value(json_object_get(filters, "category")),
        .max_price_cents = max_price ? llround(json_number_value(max_price) * 100.0) : 0,
        .in_stock_only = json_is_true(json_object_get(filters, "in_stock")),
    };
    if (max_price && f.max_price_cents == 0) /* "at most 0": only what is free */
        f.max_price_cents = -1;
    search_hit_t hits[SEARCH_MAX_LIMIT];
    int n = 0, rc = SOUK_OK;
    if (f.max_price_cents >= 0)
        rc = search_query(c->ctx->search, json_string_value(json_object_get(c->args, "query")), &f,
                          n_want, hits, &n);
    if (rc == SOUK_EUNAVAIL)
        return tools_fail(c, rc, "Product search is not available yet: the shop has no catalogue.");
    if (rc != SOUK_OK) {
        SLOG_WARN("tools.search", "err=%s detail=\"%s\"", souk_errname(rc),
                  search_last_error(c->ctx->search));
        return tools_fail(c, rc, "Product search failed (%s).", souk_strerror(rc));
    }
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        json_t *o = s_search_hit(c, &hits[i], f.in_stock_only);
        if (o)
            json_array_append_new(arr, o);
    }
    c->result = arr;
    return SOUK_OK;
}

/* ---- get_product ---------------------------------------------------------------- */

/* A copy of s cut to at most max bytes at a character boundary, with "…". */
static json_t *s_cut(const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len <= max)
        return json_string(s);
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    char *t = malloc(max + 4);
    if (!t)
        return NULL;
    memcpy(t, s, max);
    memcpy(t + max, "\xE2\x80\xA6", 4);
    json_t *j = json_string(t);
    free(t);
    return j;
}

/* The free attributes, text values cut; NULL when there are none. */
static json_t *s_attributes(const char *attrs_json)
{
    json_t *in = attrs_json ? json_loads(attrs_json, 0, NULL) : NULL;
    if (!json_is_object(in) || json_object_size(in) == 0) {
        json_decref(in);
        return json_object();
    }
    json_t *out = json_object();
    const char *k;
    json_t *v;
    size_t n = 0;
    json_object_foreach(in, k, v) {
        if (n++ == ATTRS_MAX)
            break;
        json_object_set_new(out, k, json_is_string(v) ? s_cut(json_string_value(v), ATTR_VALUE_MAX_BYTES)
                                                      : json_incref(v));
    }
    json_decref(in);
    return out;
}

int tools_get_product(tools_call_t *c)
{
    const char *id = json_string_value(json_object_get(c->args, "product_id"));
    store_product_t p = { 0 };
    int rc = store_product_get(c->ctx->store, id, &p);
    if (rc == SOUK_ENOTFOUND || rc == SOUK_EINVAL)
        return tools_fail(c, SOUK_ENOTFOUND, "No product with product_id '%.128s' exists.", id);
    if (rc != SOUK_OK)
        return tools_store_fail(c, rc, "product_get");
    json_t *tags = p.tags ? json_loads(p.tags, 0, NULL) : NULL;
    json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:I, s:b}", "product_id", p.sku, "name", p.name,
                          "price", tools_money_json(p.price_cents), "currency", p.currency,
                          "stock", (json_int_t)p.stock, "in_stock", p.stock > 0);
    if (p.description && *p.description)
        json_object_set_new(o, "description", s_cut(p.description, DESCRIPTION_MAX_BYTES));
    if (p.category && *p.category)
        json_object_set_new(o, "category", json_string(p.category));
    if (p.brand && *p.brand)
        json_object_set_new(o, "brand", json_string(p.brand));
    if (p.image_url && *p.image_url)
        json_object_set_new(o, "image_url", s_cut(p.image_url, 1000));
    if (json_is_array(tags) && json_array_size(tags))
        json_object_set(o, "tags", tags);
    json_object_set_new(o, "attributes", s_attributes(p.attrs));
    json_decref(tags);
    store_product_clear(&p);
    c->result = o;
    return SOUK_OK;
}

/* ---- running a call ----------------------------------------------------------------- */

/* A stored first result for this key: SOUK_OK with it in *stored, else ENOTFOUND. */
static int s_idem_lookup(tools_call_t *c, char **stored)
{
    int rc = store_idem_get(c->ctx->store, c->idem, stored);
    if (rc != SOUK_OK && rc != SOUK_ENOTFOUND)
        return tools_store_fail(c, rc, "idem_get");
    return rc;
}

/* Runs the tool; for a changing tool records its first result, and if
 * another attempt recorded one first, answers that. */
static int s_run(tools_call_t *c, tools_run_fn fn, char **result_json)
{
    int rc = fn(c);
    if (rc != SOUK_OK)
        return rc;
    char *text = tools_dump(c->result);
    if (!text)
        return tools_fail(c, SOUK_ENOMEM, "Out of memory.");
    if (strlen(text) > TOOLS_RESULT_MAX) {
        free(text);
        return tools_fail(c, SOUK_ETOOBIG, "The answer of %s is too large to send.", c->tool);
    }
    if (c->idem) {
        char *first = NULL;
        rc = store_idem_put(c->ctx->store, c->idem, text, c->now_ms, &first);
        if (rc == SOUK_EEXISTS && first) {
            free(text);
            text = first;
        } else if (rc != SOUK_OK) {
            /* the change is made and keyed: a retry finds it and records this */
            SLOG_WARN("tools.idem_put", "tool=%s err=%s", c->tool, souk_errname(rc));
            free(first);
        }
    }
    *result_json = text;
    return SOUK_OK;
}

int tools_exec(tools_ctx_t *ctx, const char *waid, const char *tool, const char *args_json,
               const char *idem_key, char **result_json, char **error)
{
    *result_json = NULL;
    *error = NULL;
    tools_call_t c = { .ctx = ctx, .waid = waid, .tool = tool ? tool : "", .now_ms = souk_wall_ms() };
    char *key = NULL;
    const tools_def_t *def = tools_find(tool);
    tools_run_fn fn = def ? tools_run_of(def) : NULL;
    int rc;
    if (!ctx || !ctx->store)
        rc = tools_fail(&c, SOUK_EINVAL, "The tools are not set up.");
    else if (!tools_waid_valid(waid))
        rc = tools_fail(&c, SOUK_EFORBIDDEN, "This request carries no valid user identity; refused.");
    else if (!fn)
        rc = tools_fail(&c, SOUK_EINVAL, "There is no tool named '%.64s'.", c.tool);
    else
        rc = tools_validate_args(def->name, args_json, &c.args, c.error, sizeof c.error);
    if (rc == SOUK_OK && def->changes_state) {
        if (!s_idem_key_valid(idem_key))
            rc = tools_fail(&c, SOUK_EINVAL, "%s changes the shop's state and needs an idempotency key "
                            "(1..%d printable characters); refused.", def->name, TOOLS_IDEM_KEY_MAX);
        else if (asprintf(&key, "t:%s:%s:%s", waid, def->name, idem_key) < 0)
            key = NULL, rc = tools_fail(&c, SOUK_ENOMEM, "Out of memory.");
        c.idem = key;
    }
    bool answered = false; /* by the first result stored under the key */
    if (rc == SOUK_OK && c.idem) {
        rc = s_idem_lookup(&c, result_json);
        answered = rc == SOUK_OK;
        if (rc == SOUK_ENOTFOUND)
            rc = SOUK_OK;
    }
    if (rc == SOUK_OK && !answered)
        rc = s_run(&c, fn, result_json);
    if (rc != SOUK_OK) {
        free(*result_json);
        *result_json = NULL;
        *error = strdup(*c.error ? c.error : souk_strerror(rc));
    }
    json_decref(c.args);
    json_decref(c.result);
    free(key);
    return rc;
}
