/* Private to the DynamoDB store backend (src/store_dynamo*.c): the handle,
 * key names, and the request helpers every access pattern uses. */
#ifndef SOUK_STORE_DYNAMO_IO_H
#define SOUK_STORE_DYNAMO_IO_H

#include "souk/dynamo.h"
#include "souk/store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define DDB_TABLE_MAX 256
#define DDB_PAGE 32             /* items per Query page handed to a list callback */
#define DDB_ID_TRIES 8          /* 5 base32 characters collide now and then */

struct store_impl {
    dynamo_t *ddb;
    char table[DDB_TABLE_MAX];
    int history_keep;
    char errmsg[256];
};

/* Index names, created by store_dynamo_create. */
#define DDB_G1 "gsi1"            /* g1pk/g1sk: pending, offered, a user's orders and tickets, catalogue */
#define DDB_G2 "gsi2"            /* g2pk/g2sk: by Twilio sid, every order, every ticket */
#define DDB_DUE "due"           /* duepk ("queued"|"sending") / duesk (N next_attempt_ms) */
#define DDB_RECENT "recent"     /* LSI on hseq (N): a user's history in order */

/* A sort key that orders as numbers do: zero-padded. */
void ddb_pad(char *buf, size_t len, int64_t n);
/* The wall clock in ns: the tie-break of items written in one millisecond,
 * giving arrival order (SQLite's seq) within one node. */
int64_t ddb_arrival_ns(void);
/* "created#arrival" sort key for lists. */
void ddb_time_key(char *buf, size_t len, int64_t ms);

/* {"pk":{"S":pk},"sk":{"S":sk}} */
json_t *ddb_key(const char *pk, const char *sk);
/* A new item with its key set. */
json_t *ddb_item(const char *pk, const char *sk);
/* Builds {":a": v, ...} from name, value pairs ending with NULL; values are
 * stolen; a NULL value is skipped. */
json_t *ddb_vals(const char *name, ...);

/* Records the client's last error on the handle and returns rc. */
int ddb_err(store_impl_t *h, int rc);
/* Calls op with req (stolen), recording errors on h. */
int ddb_call(store_impl_t *h, const char *op, json_t *req, json_t **resp);

/* GetItem, strongly consistent: SOUK_OK with *item (caller decrefs), or
 * SOUK_ENOTFOUND. */
int ddb_get(store_impl_t *h, const char *pk, const char *sk, json_t **item);
/* PutItem item (stolen) under cond (may be NULL) with vals (stolen, may be
 * NULL) and names (stolen, may be NULL). */
int ddb_put(store_impl_t *h, json_t *item, const char *cond, json_t *names, json_t *vals);
/* UpdateItem; *attrs (may be NULL) receives ALL_NEW. */
int ddb_update(store_impl_t *h, const char *pk, const char *sk, const char *update,
               const char *cond, json_t *names, json_t *vals, json_t **attrs);
/* DeleteItem under cond (may be NULL). */
int ddb_delete(store_impl_t *h, const char *pk, const char *sk, const char *cond, json_t *names,
               json_t *vals);

/* Called once per item of a query; returns as a store list callback does. */
typedef int (*ddb_item_cb)(store_impl_t *h, json_t *item, void *arg);
/* Queries index (NULL: the table) where keycond holds with vals (stolen),
 * forward or backward, a page of `page` items at a time, until the end or
 * `limit` items (0: no limit). Each page is read whole before cb runs, so
 * cb may call the store. */
int ddb_query(store_impl_t *h, const char *index, const char *keycond, json_t *vals, bool forward,
              int page, int limit, ddb_item_cb cb, void *arg);

/* buf = a + b (truncated to len); returns buf. */
char *ddb_cat(char *buf, size_t len, const char *a, const char *b);
/* Reads one item (strongly consistent) into a row with from: SOUK_OK,
 * SOUK_ENOTFOUND or an error. */
int ddb_read(store_impl_t *h, const char *pk, const char *sk,
             int (*from)(const json_t *it, void *row), void *row);

/* Orders and tickets (src/store_dynamo_orders.c): the backend's table
 * entries, with the contracts of souk/store.h. */
int ddb_order_put(store_impl_t *h, const store_order_t *o, store_order_t *out);
int ddb_order_place(store_impl_t *h, const store_order_request_t *req, store_order_t *out,
                    size_t *bad_line);
int ddb_order_get(store_impl_t *h, const char *order_id, const char *waid, store_order_t *out);
int ddb_order_transition(store_impl_t *h, const char *order_id, const char *waid,
                         store_order_status_t to, int64_t now_ms, store_order_t *out);
int ddb_order_list(store_impl_t *h, const char *waid, store_order_cb cb, void *arg);
int ddb_ticket_put(store_impl_t *h, const store_ticket_t *t, store_ticket_t *out);
int ddb_ticket_get(store_impl_t *h, const char *ticket_id, const char *waid, store_ticket_t *out);
int ddb_ticket_close(store_impl_t *h, const char *ticket_id, const char *waid, int64_t now_ms);
int ddb_ticket_list(store_impl_t *h, const char *waid, store_ticket_cb cb, void *arg);

/* A string attribute copied (NULL when absent); sets *rc on no memory. */
char *ddb_dup(const json_t *item, const char *name, int *rc);

#endif
