/* souk tools: the shop's seven tools, as a model and the tool actors see them.
 *
 * One table (src/tools_schema.c) defines every tool once: its name, whether
 * it changes state, its description and its parameters as a JSON schema.
 * From it follow the OpenAI `tools` array given to a model
 * (tools_schemas_json), the validation of every call (tools_validate_args),
 * the reference docs/TOOLS.md (tools_docs_markdown; a test keeps the file in
 * step) and the dispatch in tools_exec.
 *
 *   search_products(query, filters?{category?, max_price?, in_stock?}, limit?)
 *   get_product(product_id)
 *   place_order(items[{product_id, quantity}], note?)        changes state
 *   get_order(order_id)
 *   list_orders()
 *   cancel_order(order_id)                                   changes state
 *   create_support_ticket(subject, message, order_id?)       changes state
 *
 * Identity is never an argument. The caller (the session actor, from its own
 * binding, never from a model) passes the user's waid beside the arguments;
 * no schema has a user field and any field a schema does not name is
 * refused. A user only ever sees or changes their own orders and tickets:
 * another user's order id gets exactly the error a missing one gets.
 *
 * Idempotency: a state-changing call needs an idem_key (the session's
 * message + step). The same key from the same user for the same tool gets
 * the first call's result, whatever happened in between (a crash after the
 * order was stored and before the result was recorded included): the store's
 * order and ticket puts are conditional on the key, and notifications and
 * stock returns are keyed too. A call that fails changes nothing it would
 * have to undo, and is not recorded: the same key may be tried again.
 *
 * Money in results is a JSON number in the currency's units with at most two
 * decimals (9.99), always beside its currency. Prices and totals come from
 * the store, never from the arguments. Times are ISO 8601 UTC. */
#ifndef SOUK_TOOLS_H
#define SOUK_TOOLS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "souk/search.h"
#include "souk/store.h"

/* Longest result or error text tools_exec produces: it fits TOOL_RESULT. */
#define TOOLS_RESULT_MAX (60 * 1024)
/* Longest arguments text accepted. */
#define TOOLS_ARGS_MAX (32 * 1024)
/* idem_key: 1..TOOLS_IDEM_KEY_MAX printable bytes. */
#define TOOLS_IDEM_KEY_MAX 128

/* ---- the table --------------------------------------------------------------- */

typedef struct {
    const char *name;           /* "place_order" */
    bool changes_state;         /* needs an idem_key; the acknowledged path */
    const char *description;    /* for the model: when to call it, what it returns */
    const char *parameters;     /* JSON schema of the arguments (an object) */
} tools_def_t;

/* Every tool, in table order; *n (may be NULL) gets the count. Static. */
const tools_def_t *tools_defs(size_t *n);
/* The tool named name, or NULL. */
const tools_def_t *tools_find(const char *name);

/* The OpenAI `tools` array: [{"type":"function","function":{"name",
 * "description","parameters"}}, ...] as compact JSON text. Static, built
 * once; thread-safe. */
const char *tools_schemas_json(void);

/* Writes the reference of every tool (docs/TOOLS.md) as Markdown to out
 * (a FILE *). */
void tools_docs_markdown(void *out);

/* ---- validation -------------------------------------------------------------- */

/* Validates doc against schema, for the subset the table uses: type
 * object (properties, required, additionalProperties false), string
 * (minLength, maxLength, counted in characters), integer and number
 * (minimum, maximum; 2.0 is an integer), boolean, array (items, minItems,
 * maxItems), enum, and description anywhere. SOUK_OK, or SOUK_EINVAL with
 * the first problem in err, naming its path: "items[1].quantity: must be an
 * integer between 1 and 100". A schema keyword outside the subset is itself
 * an error (SOUK_ECONFIG), so the table cannot promise what is not checked. */
int tools_validate(const json_t *schema, const json_t *doc, char *err, size_t errlen);

/* Parses args_json (NULL or "" is {}; duplicate keys refused) and validates
 * it against tool's schema. SOUK_OK with *args (caller json_decref), or
 * SOUK_EINVAL with a sentence in err (unknown tool, not JSON, invalid). */
int tools_validate_args(const char *tool, const char *args_json, json_t **args, char *err,
                        size_t errlen);

/* ---- execution --------------------------------------------------------------- */

/* Called once for each outbox row a tool put (a merchant notification), so
 * the sender can be told at once (SEND_HINT). */
typedef void(tools_hint_fn)(const char *outbox_key, void *arg);

/* What the tools run against; every pointer is borrowed. */
typedef struct {
    store_t *store;                  /* required */
    search_t *search;                /* NULL: search_products answers unavailable */
    const char *merchant_whatsapp;   /* "+14155550100", "whatsapp:+…" or digits; NULL/"": none */
    const char *merchant_webhook;    /* http(s) URL for JSON POSTs; NULL/"": none */
    tools_hint_fn *hint;             /* may be NULL */
    void *hint_arg;
} tools_ctx_t;

/* Runs one call for user waid (digits, 1..20 of them): identity checked,
 * then the arguments validated, then (for a state-changing tool) the
 * idem_key looked up, then the tool run. SOUK_OK with *result_json (JSON
 * text, caller frees), or a negative code with *error (a sentence for the
 * user's agent, caller frees); the other pointer is set to NULL.
 *   SOUK_EFORBIDDEN  no valid waid: nothing looked at
 *   SOUK_EINVAL      unknown tool, invalid arguments, missing idem_key
 *   SOUK_ENOTFOUND   no such product, or no such order of this user
 *   SOUK_ESTOCK      not enough stock: nothing was ordered
 *   SOUK_ESTATE      the order can no longer be cancelled (shipped)
 *   SOUK_EUNAVAIL    no search index yet
 *   SOUK_ECONFIG     the index was built by another embedder
 *   SOUK_EBUSY, SOUK_EIO, SOUK_ENOMEM: transient; retry with the same key
 * Never crashes on any input. */
int tools_exec(tools_ctx_t *ctx, const char *waid, const char *tool, const char *args_json,
               const char *idem_key, char **result_json, char **error);

/* Whether an error of tools_exec may go away when the call is retried (with
 * the same idem_key). */
bool tools_error_retryable(int rc);

/* A TOOL_RESULT that is not ok carries, besides its error sentence, this
 * JSON in `result`: {"code":"ESTOCK","retryable":false}. Caller frees. */
char *tools_error_json(int rc);

/* Whether s is a waid: digits only, 1..20 of them. */
bool tools_waid_valid(const char *s);

#endif
