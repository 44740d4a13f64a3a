/* The agent's side of the shop's tools (docs/TOOLS.md): arguments built as
 * JSON, idempotency keys for the calls that change state, and results read
 * into typed rows once, here, so the rest of the agent never touches JSON
 * and can only ever show what a tool returned. */
#include "agent_internal.h"

#include "souk/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The tools whose calls change state: they need a key. */
static const char *const s_changing[] = { "place_order", "cancel_order", "create_support_ticket",
                                          NULL };

bool agent_tool_changes_state(const char *tool)
{
    for (int i = 0; tool && s_changing[i]; i++)
        if (strcmp(tool, s_changing[i]) == 0)
            return true;
    return false;
}

int agent_tools_call(agent_tools_t *t, const char *tool, const char *args_json,
                     const char *key_turn, char **result_json, char **error)
{
    *result_json = NULL;
    *error = NULL;
    if (!t || !t->call || !tool || !args_json)
        return SOUK_EINVAL;
    char key[AG_TURN_MAX + 16];
    const char *idem = NULL;
    if (agent_tool_changes_state(tool)) {
        snprintf(key, sizeof key, "%s:%d", key_turn ? key_turn : t->turn_id, ++t->step);
        idem = key;
    }
    t->calls++;
    int rc = t->call(t->arg, tool, args_json, idem, result_json, error);
    if (rc == SOUK_OK && !*result_json)
        rc = SOUK_EPROTO;   /* an error without its code: the agent looks again */
    if (rc != SOUK_OK) {
        free(*result_json);
        *result_json = NULL;
    }
    return rc;
}

/* Calls tool with args (taken) and parses the result into *out. */
static int s_call(ag_turn_t *t, const char *tool, json_t *args, const char *key_turn, json_t **out)
{
    *out = NULL;
    char *text = args ? json_dumps(args, JSON_COMPACT) : NULL;
    json_decref(args);
    if (!text)
        return SOUK_ENOMEM;
    char *result = NULL, *error = NULL;
    int rc = agent_tools_call(&t->tools, tool, text, key_turn, &result, &error);
    free(text);
    free(error);
    if (rc == SOUK_OK) {
        *out = json_loads(result, 0, NULL);
        if (!*out)
            rc = SOUK_EPROTO;
    }
    free(result);
    return rc;
}

static const char *s_str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* Money of a result: a number in units (9.99) into cents. */
static bool s_cents(const json_t *o, const char *key, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1e12)
        return false;
    *out = llround(json_number_value(v) * 100.0);
    return true;
}

static bool s_product(const json_t *o, ag_product_t *p)
{
    memset(p, 0, sizeof *p);
    if (!*s_str(o, "product_id") || !*s_str(o, "name") || !*s_str(o, "currency")
        || !s_cents(o, "price", &p->price_cents))
        return false;
    ag_copy(p->sku, sizeof p->sku, s_str(o, "product_id"));
    ag_copy(p->name, sizeof p->name, s_str(o, "name"));
    ag_copy(p->currency, sizeof p->currency, s_str(o, "currency"));
    json_t *stock = json_object_get(o, "stock");
    json_t *in_stock = json_object_get(o, "in_stock");
    p->in_stock = json_is_boolean(in_stock) ? json_is_true(in_stock)
                : json_is_integer(stock) ? json_integer_value(stock) > 0 : true;
    return true;
}

/* search_products takes 200 characters: the first words that fit. */
#define QUERY_MAX_BYTES 200

int ag_search(ag_turn_t *t, const char *query, int64_t max_cents, int limit, ag_hit_t *hits, int *n)
{
    *n = 0;
    char q[QUERY_MAX_BYTES + 1];
    ag_copy(q, sizeof q, query);
    if (strlen(query) > QUERY_MAX_BYTES) {
        char *space = strrchr(q, ' ');
        if (space && space > q)
            *space = '\0';
    }
    json_t *args = json_pack("{s:s, s:i}", "query", q, "limit", limit);
    if (args && max_cents > 0)
        json_object_set_new(args, "filters",
                            json_pack("{s:f}", "max_price", (double) max_cents / 100.0));
    json_t *r;
    int rc = s_call(t, "search_products", args, NULL, &r);
    if (rc != SOUK_OK)
        return rc;
    size_t i;
    json_t *h;
    json_array_foreach(r, i, h) {
        if (*n == limit)
            break;
        if (!s_product(h, &hits[*n].p))
            continue;
        json_t *score = json_object_get(h, "score");
        hits[*n].score = json_is_number(score) ? (float) json_number_value(score) : 0.f;
        (*n)++;
    }
    json_decref(r);
    return SOUK_OK;
}

int ag_get_product(ag_turn_t *t, const char *sku, ag_detail_t *out)
{
    memset(out, 0, sizeof *out);
    json_t *r;
    int rc = s_call(t, "get_product", json_pack("{s:s}", "product_id", sku), NULL, &r);
    if (rc != SOUK_OK)
        return rc;
    if (!s_product(r, &out->p)) {
        json_decref(r);
        return SOUK_EPROTO;
    }
    json_t *stock = json_object_get(r, "stock");
    out->stock = json_is_integer(stock) ? json_integer_value(stock) : out->p.in_stock ? 1 : 0;
    ag_copy(out->brand, sizeof out->brand, s_str(r, "brand"));
    ag_copy(out->description, sizeof out->description, s_str(r, "description"));
    json_t *attrs = json_object_get(r, "attributes");
    ag_copy(out->shipping, sizeof out->shipping, s_str(attrs, "shipping"));
    ag_copy(out->returns, sizeof out->returns, s_str(attrs, "return_policy"));
    ag_copy(out->warranty, sizeof out->warranty, s_str(attrs, "warranty"));
    json_decref(r);
    return SOUK_OK;
}

static bool s_order(const json_t *o, ag_order_t *out)
{
    memset(out, 0, sizeof *out);
    if (!*s_str(o, "order_id") || !s_cents(o, "total", &out->total_cents))
        return false;
    ag_copy(out->id, sizeof out->id, s_str(o, "order_id"));
    ag_copy(out->status, sizeof out->status, s_str(o, "status"));
    ag_copy(out->currency, sizeof out->currency, s_str(o, "currency"));
    ag_copy(out->created, sizeof out->created, s_str(o, "created_at"));
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(o, "items"), i, it) {
        out->n_items++;
        if (out->n_lines == AG_LINES_MAX + 1)
            continue;
        ag_line_t *l = &out->lines[out->n_lines];
        json_t *qty = json_object_get(it, "quantity");
        if (!json_is_integer(qty) || !s_cents(it, "unit_price", &l->p.price_cents))
            continue;
        l->qty = (int) json_integer_value(qty);
        ag_copy(l->p.sku, sizeof l->p.sku, s_str(it, "product_id"));
        ag_copy(l->p.name, sizeof l->p.name, s_str(it, "name"));
        ag_copy(l->p.currency, sizeof l->p.currency, out->currency);
        out->n_lines++;
    }
    return true;
}

static int s_order_call(ag_turn_t *t, const char *tool, json_t *args, const char *key_turn,
                        ag_order_t *out)
{
    json_t *r;
    int rc = s_call(t, tool, args, key_turn, &r);
    if (rc == SOUK_OK && !s_order(r, out))
        rc = SOUK_EPROTO;
    json_decref(r);
    return rc;
}

int ag_get_order(ag_turn_t *t, const char *order_id, ag_order_t *out)
{
    return s_order_call(t, "get_order", json_pack("{s:s}", "order_id", order_id), NULL, out);
}

int ag_list_orders(ag_turn_t *t, ag_order_t *out, int cap, int *n)
{
    *n = 0;
    json_t *r;
    int rc = s_call(t, "list_orders", json_object(), NULL, &r);
    if (rc != SOUK_OK)
        return rc;
    size_t i;
    json_t *o;
    json_array_foreach(r, i, o)
        if (*n < cap && s_order(o, &out[*n]))
            (*n)++;
    json_decref(r);
    return SOUK_OK;
}

int ag_place_order(ag_turn_t *t, const ag_line_t *lines, int n, const char *key_turn,
                   ag_order_t *out)
{
    json_t *items = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(items, json_pack("{s:s, s:i}", "product_id", lines[i].p.sku,
                                               "quantity", lines[i].qty));
    return s_order_call(t, "place_order", json_pack("{s:o}", "items", items), key_turn, out);
}

int ag_cancel_order(ag_turn_t *t, const char *order_id, const char *key_turn, ag_order_t *out)
{
    return s_order_call(t, "cancel_order", json_pack("{s:s}", "order_id", order_id), key_turn,
                        out);
}

int ag_open_ticket(ag_turn_t *t, const char *subject, const char *message, const char *order_id,
                   char id[AG_ID_MAX])
{
    id[0] = '\0';
    json_t *args = json_pack("{s:s, s:s}", "subject", subject, "message", message);
    if (args && order_id && *order_id)
        json_object_set_new(args, "order_id", json_string(order_id));
    json_t *r;
    int rc = s_call(t, "create_support_ticket", args, NULL, &r);
    if (rc == SOUK_OK) {
        ag_copy(id, AG_ID_MAX, s_str(r, "ticket_id"));
        if (!id[0])
            rc = SOUK_EPROTO;
    }
    json_decref(r);
    return rc;
}
