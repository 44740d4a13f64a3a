/* The tools' one table: names, descriptions and parameter schemas.
 *
 * Each schema is JSON text assembled at compile time from the J_* macros
 * below, so a schema reads as a list of fields with their bounds and what
 * they mean to a model. The OpenAI `tools` array, the validator's schemas,
 * docs/TOOLS.md and the dispatch to each tool's body (tools_<name>) are all
 * derived from TOOLS_TABLE; nothing else names a tool or a field. Descriptions hold no double quote or backslash (they
 * are pasted into JSON strings as they are). */
#include "tools_priv.h"

#include "souk/error.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define J_DESC(d) "\"description\":\"" d "\""
#define J_STR(d, lo, hi) \
    "{\"type\":\"string\",\"minLength\":" #lo ",\"maxLength\":" #hi "," J_DESC(d) "}"
#define J_INT(d, lo, hi) \
    "{\"type\":\"integer\",\"minimum\":" #lo ",\"maximum\":" #hi "," J_DESC(d) "}"
#define J_NUM(d, lo, hi) \
    "{\"type\":\"number\",\"minimum\":" #lo ",\"maximum\":" #hi "," J_DESC(d) "}"
#define J_BOOL(d) "{\"type\":\"boolean\"," J_DESC(d) "}"
#define J_ARR(d, lo, hi, items) \
    "{\"type\":\"array\",\"minItems\":" #lo ",\"maxItems\":" #hi "," J_DESC(d) ",\"items\":" items "}"
/* props: J_PROP(...) "," J_PROP(...); required: "\"a\",\"b\"" or "" */
#define J_OBJ(props, required)                                                              \
    "{\"type\":\"object\",\"properties\":{" props "},\"required\":[" required "],"          \
    "\"additionalProperties\":false}"
#define J_OBJ_D(d, props, required)                                                         \
    "{\"type\":\"object\"," J_DESC(d) ",\"properties\":{" props "},\"required\":[" required "]," \
    "\"additionalProperties\":false}"
#define J_PROP(name, schema) "\"" name "\":" schema
#define J_REQ(name) "\"" name "\""

#define ORDER_ID J_STR("The order id, as the customer or a previous result gave it (like SK-7K3Q9)", 1, 64)

/* XX(name, changes_state, description, parameters) */
#define TOOLS_TABLE(XX)                                                                     \
    XX(search_products, false,                                                              \
       "Search the shop's catalogue for products matching what the customer describes: "    \
       "kinds of product, uses, names, brands or SKUs, in their own words (typos are fine). " \
       "Returns up to limit products, best first, each with its product_id, name, price, "   \
       "currency, stock and a relevance score. Only products returned by a tool exist: "     \
       "never mention any other product or price.",                                          \
       J_OBJ(J_PROP("query", J_STR("What the customer is looking for, in their words, "      \
                                   "e.g. running shoes or a red lipstick under 20", 1, 200)) "," \
             J_PROP("filters", J_OBJ_D("Optional filters",                                    \
                 J_PROP("category", J_STR("Only this category, e.g. beauty or smartphones", 1, 64)) "," \
                 J_PROP("max_price", J_NUM("Only products priced at most this much, in the " \
                                           "shop's currency", 0, 100000000)) ","              \
                 J_PROP("in_stock", J_BOOL("Only products that are in stock now")), "")) "," \
             J_PROP("limit", J_INT("How many products to return; 5 when not given", 1, 20)), \
             J_REQ("query")))                                                                \
    XX(get_product, false,                                                                  \
       "Get everything the shop knows about one product: name, description, price, stock, " \
       "brand, category and free attributes such as warranty, shipping or return policy. "   \
       "Use it to answer questions about a product the customer is looking at.",             \
       J_OBJ(J_PROP("product_id", J_STR("The product_id of a product a search returned", 1, 128)), \
             J_REQ("product_id")))                                                           \
    XX(place_order, true,                                                                   \
       "Place an order for the customer. Call it only once the customer has confirmed the " \
       "exact items, quantities and total. Prices and the total are set by the shop, not by " \
       "you, and stock is checked and reserved. Returns the order: order_id, items with "    \
       "unit prices, total, currency and status.",                                           \
       J_OBJ(J_PROP("items", J_ARR("The products to order, each once", 1, 20,                 \
                 J_OBJ(J_PROP("product_id", J_STR("The product_id of a product a search returned", 1, 128)) "," \
                       J_PROP("quantity", J_INT("How many of it", 1, 100)),                   \
                       J_REQ("product_id") "," J_REQ("quantity")))) ","                      \
             J_PROP("note", J_STR("The customer's note for the shop, e.g. a delivery "         \
                                  "instruction", 1, 500)),                                   \
             J_REQ("items")))                                                                \
    XX(get_order, false,                                                                    \
       "Get one of the customer's orders by its id: items, total, status and times. An id " \
       "that is not one of this customer's orders is not found.",                             \
       J_OBJ(J_PROP("order_id", ORDER_ID), J_REQ("order_id")))                               \
    XX(list_orders, false,                                                                  \
       "List the customer's orders, newest first (the latest 20), each with its items, "    \
       "total, currency, status and time.",                                                   \
       J_OBJ("", ""))                                                                        \
    XX(cancel_order, true,                                                                  \
       "Cancel one of the customer's orders. Possible only before it has shipped; the "     \
       "stock is given back. Call it only once the customer has confirmed they want this "   \
       "order cancelled.",                                                                   \
       J_OBJ(J_PROP("order_id", ORDER_ID), J_REQ("order_id")))                               \
    XX(create_support_ticket, true,                                                         \
       "Open a support ticket for the shop's team with the customer's complaint, problem "  \
       "or request, optionally about one of their orders. Returns the ticket_id to give "    \
       "the customer.",                                                                      \
       J_OBJ(J_PROP("subject", J_STR("A short summary, e.g. Damaged parcel", 1, 120)) ","     \
             J_PROP("message", J_STR("What the customer reports or asks, in full", 1, 2000)) "," \
             J_PROP("order_id", ORDER_ID),                                                   \
             J_REQ("subject") "," J_REQ("message")))

static const tools_def_t s_defs[] = {
#define XX(name, changes, desc, params) { #name, changes, desc, params },
    TOOLS_TABLE(XX)
#undef XX
};
#define NDEFS (sizeof s_defs / sizeof s_defs[0])

static const tools_run_fn s_runs[] = {
#define XX(name, changes, desc, params) tools_##name,
    TOOLS_TABLE(XX)
#undef XX
};

/* Derived once: parsed schemas and the OpenAI array. */
static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static json_t *s_parsed[NDEFS];
static char *s_openai;

static void s_build(void)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < NDEFS; i++) {
        json_error_t e;
        s_parsed[i] = json_loads(s_defs[i].parameters, JSON_REJECT_DUPLICATES, &e);
        if (!s_parsed[i]) {
            /* a typo in the table: tests catch it; never reached in a release */
            fprintf(stderr, "tools: schema of %s: %s\n", s_defs[i].name, e.text);
            abort();
        }
        json_array_append_new(arr, json_pack("{s:s, s:{s:s, s:s, s:O}}", "type", "function",
                                             "function", "name", s_defs[i].name, "description",
                                             s_defs[i].description, "parameters", s_parsed[i]));
    }
    s_openai = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
}

const tools_def_t *tools_defs(size_t *n)
{
    if (n)
        *n = NDEFS;
    return s_defs;
}

const tools_def_t *tools_find(const char *name)
{
    for (size_t i = 0; name && i < NDEFS; i++)
        if (strcmp(s_defs[i].name, name) == 0)
            return &s_defs[i];
    return NULL;
}

tools_run_fn tools_run_of(const tools_def_t *def)
{
    return s_runs[def - s_defs];
}

const json_t *tools_schema_of(const tools_def_t *def)
{
    pthread_once(&s_once, s_build);
    return s_parsed[def - s_defs];
}

const char *tools_schemas_json(void)
{
    pthread_once(&s_once, s_build);
    return s_openai;
}

/* ---- docs/TOOLS.md ------------------------------------------------------------ */

static void s_bounds(const json_t *s, char *buf, size_t len)
{
    const char *type = json_string_value(json_object_get(s, "type"));
    json_t *lo = json_object_get(s, "minimum"), *hi = json_object_get(s, "maximum");
    if (!lo) {
        lo = json_object_get(s, strcmp(type, "array") == 0 ? "minItems" : "minLength");
        hi = json_object_get(s, strcmp(type, "array") == 0 ? "maxItems" : "maxLength");
    }
    const char *unit = strcmp(type, "string") == 0 ? " characters"
                     : strcmp(type, "array") == 0 ? " items" : "";
    if (lo && hi)
        snprintf(buf, len, "%.15g..%.15g%s", json_number_value(lo), json_number_value(hi), unit);
    else
        buf[0] = '\0';
}

static void s_doc_fields(FILE *out, const json_t *obj, const char *prefix)
{
    const json_t *props = json_object_get(obj, "properties");
    const json_t *req = json_object_get(obj, "required");
    const char *name;
    json_t *s;
    json_object_foreach((json_t *)props, name, s) {
        bool required = false;
        size_t i;
        json_t *r;
        json_array_foreach(req, i, r)
            required = required || strcmp(json_string_value(r), name) == 0;
        const char *type = json_string_value(json_object_get(s, "type"));
        char bounds[64];
        s_bounds(s, bounds, sizeof bounds);
        fprintf(out, "| `%s%s` | %s | %s | %s | %s |\n", prefix, name, type,
                required ? "yes" : "no", bounds,
                json_string_value(json_object_get(s, "description")));
        char sub[128];
        if (strcmp(type, "object") == 0) {
            snprintf(sub, sizeof sub, "%s%s.", prefix, name);
            s_doc_fields(out, s, sub);
        } else if (strcmp(type, "array") == 0
                   && json_object_get(json_object_get(s, "items"), "properties")) {
            snprintf(sub, sizeof sub, "%s%s[].", prefix, name);
            s_doc_fields(out, json_object_get(s, "items"), sub);
        }
    }
}

void tools_docs_markdown(void *fp)
{
    FILE *out = fp;
    pthread_once(&s_once, s_build);
    fprintf(out, "# Tools\n\n"
                 "Generated from the table in `src/tools_schema.c` (a test keeps this file in step:\n"
                 "`SOUK_WRITE_DOCS=1 build/tests/test_tools` rewrites it). The same schemas go to a\n"
                 "model as OpenAI function tools. The user is never an argument: the session passes\n"
                 "the user's WhatsApp id beside the call, and any field not listed here is refused.\n"
                 "State-changing tools need an idempotency key; a retried call with the same key gets\n"
                 "the first result. Money is a number in the currency's units (9.99) beside its\n"
                 "currency; prices and totals always come from the store.\n\n"
                 "Over the bus, a session sends `TOOL_CALL{call_id, waid, tool, args, idem_key,\n"
                 "deadline_ms}` to a tool actor (`deadline_ms`: epoch milliseconds, 0 for none; a\n"
                 "call already past it is not run) and gets `TOOL_RESULT{call_id, ok, result, error}`.\n"
                 "When `ok` is false, `error` is a sentence for the model and `result` is\n"
                 "`{\"code\": \"ENOTFOUND\", \"retryable\": false}`; the codes: `EFORBIDDEN` (no valid\n"
                 "user), `EINVAL` (unknown tool, invalid arguments, no idempotency key), `ENOTFOUND`,\n"
                 "`ESTOCK` (nothing was ordered), `ESTATE` (the order has shipped), `EUNAVAIL` (no\n"
                 "search index yet), `ETIMEDOUT` (past the deadline: not run); `EBUSY`, `EIO` and\n"
                 "`ENOMEM` are retryable with the same idempotency key.\n");
    for (size_t i = 0; i < NDEFS; i++) {
        fprintf(out, "\n## `%s`%s\n\n%s\n\n", s_defs[i].name,
                s_defs[i].changes_state ? " (changes state: needs an idempotency key)" : "",
                s_defs[i].description);
        if (json_object_size(json_object_get(s_parsed[i], "properties")) == 0) {
            fprintf(out, "No arguments.\n");
            continue;
        }
        fprintf(out, "| field | type | required | bounds | meaning |\n|---|---|---|---|---|\n");
        s_doc_fields(out, s_parsed[i], "");
    }
}
