/* Private parts of the tools module, shared by src/tools_*.c only:
 * tools_schema.c (the table), tools_validate.c, tools_exec.c (identity,
 * idempotency, dispatch, the product tools), tools_orders.c (the order and
 * ticket tools) and tools_notify.c (merchant notifications). */
#ifndef SOUK_TOOLS_PRIV_H
#define SOUK_TOOLS_PRIV_H

#include "souk/tools.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* The parsed schema of a table entry; static, built once. */
const json_t *tools_schema_of(const tools_def_t *def);

/* One call in progress: what a tool reads and what it answers. A tool
 * returns SOUK_OK with result set (a JSON value, owned), or the code that
 * tools_fail() returns after writing the sentence into error. */
typedef struct {
    tools_ctx_t *ctx;
    const char *waid;
    const char *tool;
    json_t *args;               /* validated */
    const char *idem;           /* the namespaced key, for changing tools; else NULL */
    int64_t now_ms;
    json_t *result;
    char error[512];
} tools_call_t;

/* Records an error (rc < 0) with a printf-style sentence; returns rc. */
int tools_fail(tools_call_t *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A store error that is not a domain answer: busy, i/o, memory. */
int tools_store_fail(tools_call_t *c, int rc, const char *what);

/* A tool's body; tools_schema.c binds each table entry to tools_<name>. */
typedef int (*tools_run_fn)(tools_call_t *c);
tools_run_fn tools_run_of(const tools_def_t *def);

/* ---- tools_exec.c ------------------------------------------------------------ */

int tools_search_products(tools_call_t *c);
int tools_get_product(tools_call_t *c);

/* ---- tools_orders.c ---------------------------------------------------------- */

int tools_place_order(tools_call_t *c);
int tools_get_order(tools_call_t *c);
int tools_list_orders(tools_call_t *c);
int tools_cancel_order(tools_call_t *c);
int tools_create_support_ticket(tools_call_t *c);

/* ---- tools_notify.c ---------------------------------------------------------- */

typedef enum { TOOLS_NOTE_ORDER, TOOLS_NOTE_CANCEL, TOOLS_NOTE_TICKET } tools_note_kind_t;

/* Puts the merchant's notifications of an event (WhatsApp text and webhook
 * document, as configured), keyed so a retry puts nothing twice, and hints
 * the sender. doc is the order or ticket as the tool result shows it.
 * SOUK_OK or a store error. */
int tools_notify(tools_call_t *c, tools_note_kind_t kind, const json_t *doc);

/* "$19.98", "€9.99", "£5.00", else "12.50 CHF". */
void tools_money_text(int64_t cents, const char *currency, char *buf, size_t len);
/* Money as a JSON number in units (9.99). */
json_t *tools_money_json(int64_t cents);
/* ISO 8601 UTC ("2024-05-01T10:00:00Z"). */
json_t *tools_time_json(int64_t ms);
/* Dumps v compactly with money exact to the cent; caller frees. */
char *tools_dump(const json_t *v);

#endif
