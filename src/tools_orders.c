/* The order and ticket tools: place, get, list and cancel orders; open
 * support tickets. Every store call names the calling user, so another
 * user's order is "not found" exactly as a missing one is: the error text
 * is made by one function from the id the caller gave, nothing else.
 *
 * Crash safety, step by step (a retry comes with the same idem_key):
 * - place_order: store_order_place is conditional on the key and returns
 *   the existing order (EEXISTS) to a retry, which then puts the merchant's
 *   notifications (keyed by order id, so once) and records the result.
 * - cancel_order: the status move is the guard for the whole order (a
 *   second cancel finds it cancelled and goes on idempotently); each line's
 *   stock is given back only after a per-line guard row
 *   ("restock:<order>:<line>") was put, so no retry ever gives a line
 *   twice. A crash between one guard and its give loses that one return
 *   (logged): stock is never counted twice, which would oversell.
 * - create_support_ticket: store_ticket_put is conditional on the key, as
 *   store_order_place is. */
#include "tools_priv.h"

#include "souk/error.h"
#include "souk/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ITEM_NAME_MAX_BYTES 200
#define LIST_ORDERS_MAX 20
/* list_orders stops adding orders past this many bytes of JSON */
#define LIST_BUDGET_BYTES (TOOLS_RESULT_MAX - 8 * 1024)
#define PLACE_LINES_MAX 20
#define LINE_QTY_MAX 100

/* ---- the order, as results show it ------------------------------------------ */

static const char *s_str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static json_t *s_item_json(const json_t *it)
{
    json_int_t qty = json_integer_value(json_object_get(it, "qty"));
    json_int_t unit = json_integer_value(json_object_get(it, "unit_cents"));
    char name[ITEM_NAME_MAX_BYTES + 1];
    snprintf(name, sizeof name, "%s", s_str(it, "name"));
    size_t n = strlen(name);
    while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80) /* whole characters only */
        name[--n] = '\0';
    return json_pack("{s:s, s:s, s:I, s:o, s:o}", "product_id", s_str(it, "sku"), "name", name,
                     "quantity", qty, "unit_price", tools_money_json(unit), "line_total",
                     tools_money_json(unit * qty));
}

static json_t *s_order_json(const store_order_t *o)
{
    json_t *stored = json_loads(o->items, 0, NULL);
    json_t *items = json_array();
    size_t i;
    json_t *it;
    json_array_foreach(stored, i, it)
        json_array_append_new(items, s_item_json(it));
    json_decref(stored);
    json_t *doc = json_pack("{s:s, s:s, s:o, s:o, s:s, s:o, s:o}", "order_id", o->order_id,
                            "status", store_order_status_name(o->status), "items", items,
                            "total", tools_money_json(o->total_cents), "currency", o->currency,
                            "created_at", tools_time_json(o->created_ms), "updated_at",
                            tools_time_json(o->updated_ms));
    if (doc && o->note && *o->note)
        json_object_set_new(doc, "note", json_string(o->note));
    return doc;
}

static int s_order_not_found(tools_call_t *c, const char *order_id)
{
    return tools_fail(c, SOUK_ENOTFOUND, "No order '%.64s' was found for this customer.", order_id);
}

/* ---- place_order --------------------------------------------------------------- */

typedef struct {
    store_order_line_t lines[PLACE_LINES_MAX];
    size_t first_index[PLACE_LINES_MAX]; /* where each line first appears in items[] */
    size_t n;
} s_lines_t;

/* items[] -> lines, a product listed twice becoming one line. */
static int s_lines(tools_call_t *c, s_lines_t *l)
{
    json_t *items = json_object_get(c->args, "items");
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        const char *sku = s_str(it, "product_id");
        int64_t qty = (int64_t)json_number_value(json_object_get(it, "quantity"));
        size_t k = 0;
        while (k < l->n && strcmp(l->lines[k].sku, sku) != 0)
            k++;
        if (k == l->n) {
            if (l->n == PLACE_LINES_MAX)
                return tools_fail(c, SOUK_EINVAL, "Invalid arguments for place_order: too many items.");
            l->lines[k] = (store_order_line_t){ .sku = sku, .qty = 0 };
            l->first_index[k] = i;
            l->n++;
        }
        l->lines[k].qty += qty;
        if (l->lines[k].qty > LINE_QTY_MAX)
            return tools_fail(c, SOUK_EINVAL, "Invalid arguments for place_order: items[%zu]: product "
                              "'%.128s' is listed more than once, over %d in all.", i, sku, LINE_QTY_MAX);
    }
    return SOUK_OK;
}

static int s_place_failed(tools_call_t *c, int rc, const s_lines_t *l, size_t bad)
{
    const store_order_line_t *line = bad < l->n ? &l->lines[bad] : NULL;
    size_t at = bad < l->n ? l->first_index[bad] : 0;
    if (rc == SOUK_ENOTFOUND && line)
        return tools_fail(c, rc, "No product with product_id '%.128s' exists (items[%zu]). Nothing "
                          "was ordered.", line->sku, at);
    if (rc == SOUK_ESTOCK && line) {
        store_product_t p = { 0 };
        int g = store_product_get(c->ctx->store, line->sku, &p);
        if (g == SOUK_OK && p.stock <= 0)
            tools_fail(c, rc, "%.200s (product_id %.128s) is out of stock. Nothing was ordered.", p.name,
                       p.sku);
        else if (g == SOUK_OK)
            tools_fail(c, rc, "Not enough stock for %.200s (product_id %.128s): %lld left, %lld asked. "
                       "Nothing was ordered.", p.name, p.sku, (long long)p.stock, (long long)line->qty);
        else
            tools_fail(c, rc, "Not enough stock for product_id %.128s. Nothing was ordered.", line->sku);
        store_product_clear(&p);
        return rc;
    }
    if (rc == SOUK_EINVAL)
        return tools_fail(c, rc, "These products are priced in different currencies: please order "
                          "them separately. Nothing was ordered.");
    return tools_store_fail(c, rc, "order_place");
}

int tools_place_order(tools_call_t *c)
{
    s_lines_t l = { .n = 0 };
    int rc = s_lines(c, &l);
    if (rc != SOUK_OK)
        return rc;
    store_order_request_t req = {
        .waid = c->waid, .idem_key = c->idem, .lines = l.lines, .n_lines = l.n, .now_ms = c->now_ms,
        .note = json_string_value(json_object_get(c->args, "note")),
    };
    store_order_t o = { 0 };
    size_t bad = SIZE_MAX;
    rc = store_order_place(c->ctx->store, &req, &o, &bad);
    if (rc == SOUK_EEXISTS) /* a retry after a crash: the first attempt's order */
        rc = SOUK_OK;
    if (rc != SOUK_OK)
        return s_place_failed(c, rc, &l, bad);
    if (strcmp(o.waid, c->waid) != 0) { /* the key is namespaced by waid: never */
        store_order_clear(&o);
        return tools_fail(c, SOUK_EFORBIDDEN, "This request key belongs to someone else; refused.");
    }
    c->result = s_order_json(&o);
    SLOG_INFO("tools.order_placed", "order=%s lines=%zu total_cents=%lld", o.order_id, l.n,
              (long long)o.total_cents);
    store_order_clear(&o);
    if (!c->result)
        return tools_fail(c, SOUK_ENOMEM, "Out of memory.");
    rc = tools_notify(c, TOOLS_NOTE_ORDER, c->result);
    /* the order stands; a retry with the same key finds it and notifies */
    return rc == SOUK_OK ? SOUK_OK : tools_store_fail(c, rc, "notify");
}

/* ---- get_order, list_orders ------------------------------------------------------- */

int tools_get_order(tools_call_t *c)
{
    const char *id = s_str(c->args, "order_id");
    store_order_t o = { 0 };
    int rc = store_order_get(c->ctx->store, id, c->waid, &o);
    if (rc == SOUK_ENOTFOUND || rc == SOUK_EINVAL)
        return s_order_not_found(c, id);
    if (rc != SOUK_OK)
        return tools_store_fail(c, rc, "order_get");
    c->result = s_order_json(&o);
    store_order_clear(&o);
    return c->result ? SOUK_OK : tools_fail(c, SOUK_ENOMEM, "Out of memory.");
}

typedef struct {
    json_t *orders;
    size_t bytes;
} s_list_t;

static int s_on_order(const store_order_t *o, void *arg)
{
    s_list_t *l = arg;
    json_t *doc = s_order_json(o);
    char *text = doc ? tools_dump(doc) : NULL;
    size_t len = text ? strlen(text) : 0;
    free(text);
    if (!doc || l->bytes + len > LIST_BUDGET_BYTES) {
        json_decref(doc);
        return 1;
    }
    l->bytes += len + 1;
    json_array_append_new(l->orders, doc);
    return json_array_size(l->orders) == LIST_ORDERS_MAX ? 1 : 0;
}

int tools_list_orders(tools_call_t *c)
{
    s_list_t l = { .orders = json_array() };
    int rc = store_order_list_user(c->ctx->store, c->waid, s_on_order, &l);
    if (rc != SOUK_OK) {
        json_decref(l.orders);
        return tools_store_fail(c, rc, "order_list");
    }
    c->result = l.orders;
    return SOUK_OK;
}

/* ---- cancel_order ------------------------------------------------------------------- */

/* Gives back each line's stock once, whatever retries come: see the top. */
static int s_restock(tools_call_t *c, const store_order_t *o)
{
    json_t *items = json_loads(o->items, 0, NULL);
    size_t i;
    json_t *it;
    int rc = SOUK_OK;
    json_array_foreach(items, i, it) {
        const char *sku = s_str(it, "sku");
        json_int_t qty = json_integer_value(json_object_get(it, "qty"));
        char key[160], guard[320];
        snprintf(key, sizeof key, "restock:%s:%zu", o->order_id, i);
        json_t *g = json_pack("{s:s, s:I}", "product_id", sku, "quantity", qty);
        char *gtext = g ? json_dumps(g, JSON_COMPACT) : NULL;
        json_decref(g);
        snprintf(guard, sizeof guard, "%s", gtext ? gtext : "{}");
        free(gtext);
        rc = store_idem_put(c->ctx->store, key, guard, c->now_ms, NULL);
        if (rc == SOUK_EEXISTS) { /* given back by an earlier attempt */
            rc = SOUK_OK;
            continue;
        }
        if (rc != SOUK_OK)
            break;
        int g_rc = qty > 0 ? store_product_give(c->ctx->store, sku, qty) : SOUK_OK;
        if (g_rc != SOUK_OK) /* guarded already: never retried, so say it loudly */
            SLOG_ERROR("tools.restock_lost", "order=%s sku=%s qty=%lld err=%s", o->order_id, sku,
                       (long long)qty, souk_errname(g_rc));
    }
    json_decref(items);
    return rc;
}

int tools_cancel_order(tools_call_t *c)
{
    const char *id = s_str(c->args, "order_id");
    store_order_t o = { 0 };
    int rc = store_order_transition(c->ctx->store, id, c->waid, STORE_ORDER_CANCELLED, c->now_ms, &o);
    if (rc == SOUK_ENOTFOUND || rc == SOUK_EINVAL)
        return s_order_not_found(c, id);
    bool already = rc == SOUK_ESTATE && o.status == STORE_ORDER_CANCELLED;
    if (rc == SOUK_ESTATE && !already) {
        tools_fail(c, rc, "Order %s is already %s and can no longer be cancelled; a support ticket "
                   "can arrange a return.", o.order_id, store_order_status_name(o.status));
        store_order_clear(&o);
        return rc;
    }
    if (rc != SOUK_OK && !already)
        return tools_store_fail(c, rc, "order_transition");
    rc = s_restock(c, &o);
    if (rc == SOUK_OK) {
        c->result = s_order_json(&o);
        if (c->result && already)
            json_object_set_new(c->result, "already_cancelled", json_true());
        rc = c->result ? tools_notify(c, TOOLS_NOTE_CANCEL, c->result) : SOUK_ENOMEM;
    }
    if (rc == SOUK_OK && !already)
        SLOG_INFO("tools.order_cancelled", "order=%s", o.order_id);
    store_order_clear(&o);
    return rc == SOUK_OK ? SOUK_OK : tools_store_fail(c, rc, "cancel");
}

/* ---- create_support_ticket ------------------------------------------------------------ */

int tools_create_support_ticket(tools_call_t *c)
{
    const char *order_id = json_string_value(json_object_get(c->args, "order_id"));
    store_ticket_t t = {
        .waid = (char *)c->waid, .subject = (char *)s_str(c->args, "subject"),
        .message = (char *)s_str(c->args, "message"), .order_id = (char *)order_id,
        .idem_key = (char *)c->idem, .created_ms = c->now_ms,
    };
    store_ticket_t out = { 0 };
    int rc = store_ticket_put(c->ctx->store, &t, &out);
    if (rc == SOUK_EEXISTS)
        rc = SOUK_OK;
    if (rc == SOUK_ENOTFOUND)
        return s_order_not_found(c, order_id ? order_id : "");
    if (rc != SOUK_OK)
        return tools_store_fail(c, rc, "ticket_put");
    c->result = json_pack("{s:s, s:s, s:s, s:s, s:o}", "ticket_id", out.ticket_id, "status",
                          store_ticket_status_name(out.status), "subject", out.subject, "message",
                          out.message, "created_at", tools_time_json(out.created_ms));
    if (c->result && out.order_id && *out.order_id)
        json_object_set_new(c->result, "order_id", json_string(out.order_id));
    SLOG_INFO("tools.ticket_opened", "ticket=%s", out.ticket_id);
    store_ticket_clear(&out);
    if (!c->result)
        return tools_fail(c, SOUK_ENOMEM, "Out of memory.");
    rc = tools_notify(c, TOOLS_NOTE_TICKET, c->result);
    return rc == SOUK_OK ? SOUK_OK : tools_store_fail(c, rc, "notify");
}
