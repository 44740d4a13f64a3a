/* souk store: the durable state, as access patterns.
 *
 * Every operation reads or writes items by key (a user's waid, a message sid,
 * an outbox key, an order id...) with a condition, the way DynamoDB works:
 * single-item conditional writes, queries on one key, no joins, no
 * multi-item transactions assumed. The embedded backend is SQLite
 * ("sqlite": $SOUK_DATA/souk.db, WAL); "dynamodb" implements the same
 * operations. Many processes open their own handle on the same
 * data at once; a handle belongs to one thread and must not cross fork()
 * (open it in the child).
 *
 * Contracts, once for the whole module:
 * - Functions return SOUK_OK or a negative code of souk/error.h. Bad input
 *   (NULL, empty key, a waid that is not digits, negative quantity, unknown
 *   enum) is SOUK_EINVAL and touches nothing. SOUK_EBUSY: the data stayed
 *   locked by other writers past the busy timeout; nothing was written.
 * - A conditional put that finds its key taken returns SOUK_EEXISTS and, when
 *   the caller passes a place for it, the row already stored, so a retry
 *   carries on idempotently. That is the one case an error produces output.
 * - Row structs own their strings (malloc'd); store_<x>_clear frees them and
 *   zeroes the struct. On SOUK_OK (and EEXISTS/ESTATE where stated) the
 *   caller owns *out; *out is overwritten, not freed, so clear it before reuse.
 *   Input structs are only read; string fields that are "optional" may be NULL.
 * - Lists call cb once per row, in the stated order. The row is valid during
 *   the call only. Rows are handed over a page at a time with no statement
 *   open, so cb may call the store on the same handle. cb returning > 0
 *   stops the list (the call returns SOUK_OK); returning < 0 stops it and
 *   the call returns that value. A list is not a snapshot: rows written
 *   during it may or may not appear.
 * - Times are int64 milliseconds since the epoch, given by the caller.
 *
 * The DynamoDB backend ("dynamodb": src/store_dynamo.c, one table
 * ${SOUK_TABLE_PREFIX}souk made by `souk db create`) keeps the same
 * contract with single-item conditional writes; its key design, access
 * pattern by access pattern, is in docs/ARCHITECTURE.md. Where it differs:
 * lists read GSIs, eventually consistent on DynamoDB; product_upsert is
 * idempotent but not atomic; SOUK_EUNAVAIL when the endpoint cannot be
 * reached and SOUK_EBUSY when throttled, both after retries. */
#ifndef SOUK_STORE_H
#define SOUK_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store_s store_t;

/* ---- enums: one table each; names are the stored (and Twilio's) words --- */

#define STORE_INBOUND_STATE_MAP(XX)                                          \
    XX(RECEIVED, "received") XX(DONE, "done") XX(MERGED, "merged")
#define STORE_DIR_MAP(XX) XX(IN, "in") XX(OUT, "out")
#define STORE_OUTBOX_KIND_MAP(XX) XX(REPLY, "reply") XX(NOTIFY, "notify")
#define STORE_OUTBOX_STATE_MAP(XX)                                           \
    XX(OFFERED, "offered") XX(INLINE, "inline") XX(QUEUED, "queued")         \
    XX(SENDING, "sending") XX(SENT, "sent") XX(DELIVERED, "delivered")       \
    XX(READ, "read") XX(FAILED, "failed") XX(UNDELIVERED, "undelivered")
#define STORE_ORDER_STATUS_MAP(XX)                                           \
    XX(PENDING, "pending") XX(CONFIRMED, "confirmed") XX(SHIPPED, "shipped") \
    XX(DELIVERED, "delivered") XX(CANCELLED, "cancelled")
#define STORE_TICKET_STATUS_MAP(XX) XX(OPEN, "open") XX(CLOSED, "closed")

#define STORE_ENUM_(prefix, name, text) prefix##name,
#define XX(n, t) STORE_ENUM_(STORE_INBOUND_, n, t)
typedef enum { STORE_INBOUND_STATE_MAP(XX) } store_inbound_state_t;
#undef XX
#define XX(n, t) STORE_ENUM_(STORE_DIR_, n, t)
typedef enum { STORE_DIR_MAP(XX) } store_dir_t;
#undef XX
#define XX(n, t) STORE_ENUM_(STORE_KIND_, n, t)
typedef enum { STORE_OUTBOX_KIND_MAP(XX) } store_outbox_kind_t;
#undef XX
#define XX(n, t) STORE_ENUM_(STORE_OUTBOX_, n, t)
typedef enum { STORE_OUTBOX_STATE_MAP(XX) } store_outbox_state_t;
#undef XX
#define XX(n, t) STORE_ENUM_(STORE_ORDER_, n, t)
typedef enum { STORE_ORDER_STATUS_MAP(XX) } store_order_status_t;
#undef XX
#define XX(n, t) STORE_ENUM_(STORE_TICKET_, n, t)
typedef enum { STORE_TICKET_STATUS_MAP(XX) } store_ticket_status_t;
#undef XX

/* Name of a value ("queued"); "?" for a value out of range. */
const char *store_inbound_state_name(store_inbound_state_t v);
const char *store_dir_name(store_dir_t v);
const char *store_outbox_kind_name(store_outbox_kind_t v);
const char *store_outbox_state_name(store_outbox_state_t v);
const char *store_order_status_name(store_order_status_t v);
const char *store_ticket_status_name(store_ticket_status_t v);
/* Parses a name into *v: SOUK_OK, or SOUK_EINVAL for an unknown word. */
int store_inbound_state_parse(const char *s, store_inbound_state_t *v);
int store_dir_parse(const char *s, store_dir_t *v);
int store_outbox_kind_parse(const char *s, store_outbox_kind_t *v);
int store_outbox_state_parse(const char *s, store_outbox_state_t *v);
int store_order_status_parse(const char *s, store_order_status_t *v);
int store_ticket_status_parse(const char *s, store_ticket_status_t *v);

/* ---- open / close ------------------------------------------------------ */

typedef struct {
    int cache_kib;        /* page cache of this handle; 0: 128, about 270 KiB of heap in all
                           * for a session actor; tools and the CLI may ask for more */
    int64_t mmap_bytes;   /* memory-mapped reads; 0: off (mapped pages count against the actor) */
    int busy_timeout_ms;  /* longest wait for the write lock before SOUK_EBUSY; 0: 5000 */
    int history_keep;     /* history entries kept per user; 0: 200 */
} store_options_t;

/* Opens backend "sqlite" or "dynamodb" on data_dir (created if missing;
 * sqlite keeps data_dir/souk.db and its writers' queue souk.db.lock, mode
 * 0600), bringing the schema up to date; safe when many processes open at
 * once. opt may be NULL. On error writes a sentence to err (may be NULL):
 * SOUK_EINVAL unknown backend, SOUK_ECONFIG data written by a newer souk,
 * SOUK_EIO, SOUK_EBUSY. */
int store_open(const char *backend, const char *data_dir, const store_options_t *opt,
               store_t **out, char *err, size_t errlen);
/* Creates what the backend needs before any store_open: for "dynamodb"
 * the table and its indexes (an existing table is fine; waits until it is
 * ACTIVE), for "sqlite" the database file and schema. `souk db create`. */
int store_create(const char *backend, const char *data_dir, char *err, size_t errlen);
/* Closes the handle and sets *self_p to NULL; NULL or *NULL is a no-op. */
void store_close(store_t **self_p);
/* Text of the backend's last error on this handle, for logs; never NULL,
 * valid until the next call on the handle. */
const char *store_last_error(const store_t *self);

/* Requests this handle made, what DynamoDB bills: reads (GetItem, Query)
 * and writes (PutItem, UpdateItem, DeleteItem, each item of a batch), with
 * the capacity units the service reported. */
typedef struct {
    uint64_t requests, retries, reads, writes;
    double read_units, write_units;
} store_ops_t;
/* SOUK_OK, or SOUK_EUNAVAIL (zeroes) for a backend that does not count
 * (sqlite). */
int store_ops(const store_t *self, store_ops_t *out);

/* ---- batches --------------------------------------------------------------
 * Several primitives as one unit of work where the backend can: on SQLite
 * one transaction (one write lock and one commit instead of one each, the
 * hot path's main cost with hundreds of writing processes); each primitive
 * keeps its own all-or-nothing inside it. On DynamoDB each primitive is
 * durable at once, as without a batch: a batch is only ever made of
 * primitives that are idempotent one by one, so a crash in the middle is
 * resumed like a crash between two of them.
 *
 * store_batch_begin: SOUK_OK, SOUK_EBUSY (a batch is open on this handle
 * already) or the backend's error taking the write lock. Until the batch
 * ends nothing is visible to other handles; keep it short (no network, no
 * model, no user code between the two calls).
 * store_batch_end: commit true makes everything durable (SOUK_OK, or the
 * commit's error, everything then undone); false undoes every primitive
 * since the begin. After a primitive in the batch fails with SOUK_EIO the
 * backend may have undone the batch already: ending it with commit true
 * then says SOUK_EIO. */
int store_batch_begin(store_t *self);
int store_batch_end(store_t *self, bool commit);

/* ---- users (by waid) ---------------------------------------------------- */

typedef struct {
    char *waid;                 /* digits only */
    char *profile_name;         /* optional */
    char *from_addr;            /* "whatsapp:+..."; optional */
    char *last_media;           /* JSON text of the last media URLs received; optional */
    int64_t first_seen_ms, last_seen_ms;
    int64_t last_inbound_ms;    /* opens the 24-hour window; 0: never */
    bool opted_out;
    int64_t opt_changed_ms;     /* 0: never changed */
} store_user_t;
void store_user_clear(store_user_t *u);

typedef struct {
    const char *waid;
    const char *profile_name;   /* NULL keeps the stored one */
    const char *from_addr;      /* NULL keeps */
    const char *media_json;     /* NULL keeps last_media */
    bool inbound;               /* a message from the user: also sets last_inbound_ms */
    int64_t now_ms;             /* becomes last_seen_ms (and first_seen_ms for a new user) */
} store_user_seen_t;

/* Creates the user on first sight, else updates the given fields. */
int store_user_seen(store_t *self, const store_user_seen_t *seen);
/* SOUK_ENOTFOUND for an unknown waid. */
int store_user_get(store_t *self, const char *waid, store_user_t *out);
/* Records an opt-out (STOP) or opt-in; creates an unknown user, because a
 * STOP must be honoured whoever sends it. opt_changed_ms moves only when the
 * value changes. */
int store_user_set_opt_out(store_t *self, const char *waid, bool opted_out, int64_t now_ms);

/* ---- dialog state (by waid) ---------------------------------------------- */

#define STORE_USER_STATE_MAX (64 * 1024)

/* The agent's dialog state: one JSON document per user, opaque to the store,
 * at most STORE_USER_STATE_MAX bytes. *json: caller frees with free().
 * SOUK_ENOTFOUND when none was ever put (a new conversation). */
int store_user_state_get(store_t *self, const char *waid, char **json);
/* Replaces the user's state (last writer wins: one session owns a user). */
int store_user_state_put(store_t *self, const char *waid, const char *json, int64_t now_ms);

/* ---- inbound messages (by msg_sid; pending by waid) --------------------- */

typedef struct {
    char *msg_sid;
    char *waid;
    char *body;                 /* optional */
    char *media;                /* JSON text; optional */
    char *params;               /* JSON text of every webhook parameter; optional */
    int64_t received_ms;
    store_inbound_state_t state;
    char *turn_sid;             /* msg_sid of the turn that answered it; optional */
} store_inbound_t;
void store_inbound_clear(store_inbound_t *m);
typedef int (*store_inbound_cb)(const store_inbound_t *m, void *arg);

/* Stores a message as received (in->state and turn_sid are ignored).
 * SOUK_EEXISTS when msg_sid is already stored: the durable dedupe. */
int store_inbound_put(store_t *self, const store_inbound_t *in);
/* SOUK_ENOTFOUND when unknown. */
int store_inbound_get(store_t *self, const char *msg_sid, store_inbound_t *out);
/* received -> done | merged (to must be one of those), recording turn_sid
 * (optional). SOUK_ENOTFOUND; SOUK_ECONFLICT when it is no longer received. */
int store_inbound_finish(store_t *self, const char *msg_sid, store_inbound_state_t to,
                         const char *turn_sid);
/* The user's messages still received (not done), in arrival order: what to
 * resume after a crash. */
int store_inbound_pending(store_t *self, const char *waid, store_inbound_cb cb, void *arg);

/* ---- conversation history (by waid) -------------------------------------- */

typedef struct {
    char *waid;
    store_dir_t dir;
    char *msg_sid;              /* dedupe key (inbound sid, outbox key); optional: NULL never dedupes */
    char *text;
    int64_t ts_ms;
} store_history_t;
void store_history_clear(store_history_t *h);
typedef int (*store_history_cb)(const store_history_t *h, void *arg);

/* Appends one entry (its own row/item) and trims the user's oldest beyond
 * history_keep. SOUK_EEXISTS when (msg_sid, dir) is already there, so a
 * resumed turn does not repeat itself. */
int store_history_append(store_t *self, const store_history_t *h);
/* The user's last n entries (n >= 1; more than history_keep gives
 * history_keep), oldest first. */
int store_history_recent(store_t *self, const char *waid, int n, store_history_cb cb, void *arg);

/* ---- outbox: durable replies (by key; due; offered by waid; by Twilio sid) */

typedef struct {
    char *key;                  /* "r:<inbound sid>", "m:<order id>"... */
    char *waid;                 /* a user's reply; optional when to_addr is set */
    char *to_addr;              /* another address (merchant); optional when waid is set */
    char *body;
    store_outbox_kind_t kind;
    store_outbox_state_t state;
    char *twilio_sid;           /* optional */
    int error_code;             /* Twilio's; 0: none */
    char *error_reason;         /* optional */
    int attempts;
    int64_t next_attempt_ms, created_ms, updated_ms;
} store_outbox_t;
void store_outbox_clear(store_outbox_t *o);
typedef int (*store_outbox_cb)(const store_outbox_t *o, void *arg);

/* Fields a transition may set; a zeroed struct changes the state only. */
typedef struct {
    const char *twilio_sid;     /* NULL: keep */
    int error_code;             /* 0: keep */
    const char *error_reason;   /* NULL: keep */
    bool count_attempt;         /* attempts += 1 */
    int64_t next_attempt_ms;    /* 0: keep */
    int64_t now_ms;             /* becomes updated_ms; 0: keep */
} store_outbox_change_t;

/* The state machine, in one place:
 *   offered -> inline | queued          (the gateway's verdict)
 *   queued  -> sending | failed
 *   sending -> sent | queued (retry) | failed
 *   sent    -> delivered | read | failed | undelivered
 *   delivered -> read
 * inline, read, failed and undelivered are terminal. */
bool store_outbox_can_move(store_outbox_state_t from, store_outbox_state_t to);
/* State after a delivery status callback `status` reaches a message in
 * `cur`: callbacks arrive out of order, so a state is never left for an
 * earlier one and terminal states are never left. */
store_outbox_state_t store_outbox_after_status(store_outbox_state_t cur, store_outbox_state_t status);

/* Puts a new message (state offered or queued; attempts 0; updated_ms =
 * created_ms). SOUK_EEXISTS when key is taken, the stored row in *existing
 * (may be NULL). */
int store_outbox_put(store_t *self, const store_outbox_t *o, store_outbox_t *existing);
/* SOUK_ENOTFOUND when unknown. */
int store_outbox_get(store_t *self, const char *key, store_outbox_t *out);
/* SOUK_ENOTFOUND when no message carries that Twilio sid. */
int store_outbox_get_by_sid(store_t *self, const char *twilio_sid, store_outbox_t *out);
/* Moves key from `expected` to `to`, applying change (may be NULL).
 * SOUK_ESTATE when expected -> to is not an edge of the machine;
 * SOUK_ENOTFOUND; SOUK_ECONFLICT when the state is not `expected`. When the
 * change records a Twilio sid, status callbacks that came before it are
 * applied too. *out (may be NULL) receives the row after the call, also on
 * SOUK_ECONFLICT. */
int store_outbox_transition(store_t *self, const char *key, store_outbox_state_t expected,
                            store_outbox_state_t to, const store_outbox_change_t *change,
                            store_outbox_t *out);
/* Messages in `state` (queued: to send; sending: a send whose lease,
 * next_attempt_ms, ran out, i.e. the sender died mid-send) with
 * next_attempt_ms <= now_ms, oldest first, at most limit (1..1000). */
int store_outbox_due(store_t *self, store_outbox_state_t state, int64_t now_ms, int limit,
                     store_outbox_cb cb, void *arg);
/* How many messages are in each state (counts indexed by
 * store_outbox_state_t, zeroed first), for metrics. SOUK_EUNAVAIL when the
 * backend cannot count cheaply. */
#define STORE_OUTBOX_STATES (STORE_OUTBOX_UNDELIVERED + 1)
int store_outbox_count(store_t *self, int64_t counts[STORE_OUTBOX_STATES]);
/* The user's messages still offered (waiting for the gateway's verdict). */
int store_outbox_offered(store_t *self, const char *waid, store_outbox_cb cb, void *arg);
/* Every message, newest first (the web console's view); stop early from cb.
 * SOUK_EUNAVAIL when the backend has no such list. */
int store_outbox_list_all(store_t *self, store_outbox_cb cb, void *arg);

/* A Twilio status callback: status is sent, delivered, read, failed or
 * undelivered (queued and sending are recorded and change nothing).
 * SOUK_EEXISTS for a repeat of (sid, status); SOUK_ENOTFOUND when no
 * message has that sid yet (the event is kept and applied when the sid is
 * recorded). *state (may be NULL) receives the message's resulting state
 * on SOUK_OK and SOUK_EEXISTS. */
int store_delivery_update(store_t *self, const char *twilio_sid, store_outbox_state_t status,
                          int error_code, int64_t ts_ms, store_outbox_state_t *state);

/* ---- idempotency keys ----------------------------------------------------- */

/* *result_json: the stored result, caller frees with free(). SOUK_ENOTFOUND. */
int store_idem_get(store_t *self, const char *key, char **result_json);
/* Stores the first result of a state-changing call. SOUK_EEXISTS when key
 * is taken, the stored result in *stored_json (may be NULL; free()). */
int store_idem_put(store_t *self, const char *key, const char *result_json, int64_t now_ms,
                   char **stored_json);

/* ---- products (by sku) ----------------------------------------------------- */

typedef struct {
    char *sku, *name;
    char *description;          /* optional */
    int64_t price_cents;        /* >= 0 */
    char *currency;             /* "EUR" */
    char *category, *image_url, *brand;  /* optional */
    char *tags;                 /* JSON array text; optional */
    char *attrs;                /* JSON object text of free attributes; optional */
    int64_t stock;              /* >= 0 */
    int64_t updated_ms;
} store_product_t;
void store_product_clear(store_product_t *p);
typedef int (*store_product_cb)(const store_product_t *p, void *arg);

/* Inserts or replaces n products, all or nothing. A bad row is SOUK_EINVAL
 * with its index in *bad (may be NULL), and nothing is written. On SQLite
 * one transaction, which every other writer waits for (50,000 rows: 0.12 s
 * here); on DynamoDB 25 rows a BatchWriteItem: a crash leaves some written
 * (run the import again: it is idempotent), and a row replaces the whole
 * product item. */
int store_product_upsert(store_t *self, const store_product_t *rows, size_t n, size_t *bad);
/* SOUK_ENOTFOUND when unknown. */
int store_product_get(store_t *self, const char *sku, store_product_t *out);
/* Every product, in no stated order. */
int store_product_each(store_t *self, store_product_cb cb, void *arg);
int store_product_count(store_t *self, int64_t *count);
/* stock -= qty (qty >= 1) only if stock >= qty: stock is never negative.
 * SOUK_ESTOCK when short, SOUK_ENOTFOUND. */
int store_product_take(store_t *self, const char *sku, int64_t qty);
/* stock += qty (qty >= 1). SOUK_ENOTFOUND. */
int store_product_give(store_t *self, const char *sku, int64_t qty);

/* ---- orders (by id and owner; by owner; all) ---------------------------- */

typedef struct {
    char *order_id;             /* "SK-7K3Q9"; NULL on put: the store makes one */
    char *waid;                 /* the owner */
    char *items;                /* JSON [{sku, name, qty, unit_cents}] */
    int64_t total_cents;
    char *currency;
    store_order_status_t status;
    char *note;                 /* optional */
    char *idem_key;
    int64_t created_ms, updated_ms;
} store_order_t;
void store_order_clear(store_order_t *o);
typedef int (*store_order_cb)(const store_order_t *o, void *arg);

typedef struct {
    const char *sku;
    int64_t qty;                /* 1..1000000 */
} store_order_line_t;

typedef struct {
    const char *waid;
    const char *idem_key;       /* the same request retried places nothing new */
    const char *note;           /* optional */
    const store_order_line_t *lines;
    size_t n_lines;             /* 1..100 */
    int64_t now_ms;
} store_order_request_t;

/* pending -> confirmed -> shipped -> delivered (a step may be skipped);
 * cancelled only from pending or confirmed. */
bool store_order_can_move(store_order_status_t from, store_order_status_t to);

/* Stores an order as given (created_ms = updated_ms = o->created_ms); makes
 * its id when o->order_id is NULL. SOUK_EEXISTS when idem_key was used, the
 * stored order in *out; SOUK_ECONFLICT when a given order_id is taken.
 * *out (may be NULL) receives the stored order. */
int store_order_put(store_t *self, const store_order_t *o, store_order_t *out);
/* Places an order: takes each line's stock and stores the order (pending,
 * its items, total and currency from the catalogue) together, all or
 * nothing. SOUK_EEXISTS when idem_key was used (nothing taken again; the
 * order in *out); SOUK_ESTOCK or SOUK_ENOTFOUND for line *bad_line (may be
 * NULL); SOUK_EINVAL when lines mix currencies.
 * SQLite: one transaction. DynamoDB: a guard item per idem_key, then for
 * each line an UpdateItem on the product, stock -= qty conditioned on
 * stock >= qty and on the line's mark not yet in the product's set of
 * takes, which it joins (a retry finds its mark and does not take twice);
 * then the order put; on a short line the lines already taken are given
 * back, conditioned on the mark being in the set, which it leaves (the
 * steps: docs/ARCHITECTURE.md). */
int store_order_place(store_t *self, const store_order_request_t *req, store_order_t *out,
                      size_t *bad_line);
/* The order, only if it belongs to waid: another user's order is
 * SOUK_ENOTFOUND, like a missing one. */
int store_order_get(store_t *self, const char *order_id, const char *waid, store_order_t *out);
/* The order whoever owns it: for the merchant's CLI only, never on a user's
 * behalf. SOUK_ENOTFOUND. */
int store_order_lookup(store_t *self, const char *order_id, store_order_t *out);
/* Moves the user's order to `to`. SOUK_ENOTFOUND (missing or not waid's);
 * SOUK_ESTATE when the current status cannot move there (also when it is
 * there already). *out (may be NULL) receives the order after the call,
 * also on SOUK_ESTATE. */
int store_order_transition(store_t *self, const char *order_id, const char *waid,
                           store_order_status_t to, int64_t now_ms, store_order_t *out);
/* The user's orders, newest first. */
int store_order_list_user(store_t *self, const char *waid, store_order_cb cb, void *arg);
/* Every order, newest first: the merchant's view. */
int store_order_list_all(store_t *self, store_order_cb cb, void *arg);

/* ---- support tickets (by id and owner; by owner; all) ------------------- */

typedef struct {
    char *ticket_id;            /* "TK-4F2M8"; NULL on put: the store makes one */
    char *waid;
    char *subject, *message;
    char *order_id;             /* optional; must be an order of waid */
    store_ticket_status_t status;
    char *idem_key;
    int64_t created_ms, updated_ms;
} store_ticket_t;
void store_ticket_clear(store_ticket_t *t);
typedef int (*store_ticket_cb)(const store_ticket_t *t, void *arg);

/* Stores a ticket (status open). SOUK_EEXISTS when idem_key was used, the
 * stored ticket in *out (may be NULL); SOUK_ENOTFOUND when order_id is not
 * an order of waid; SOUK_ECONFLICT when a given ticket_id is taken. */
int store_ticket_put(store_t *self, const store_ticket_t *t, store_ticket_t *out);
/* Only if it belongs to waid, as for orders. */
int store_ticket_get(store_t *self, const char *ticket_id, const char *waid, store_ticket_t *out);
/* open -> closed. SOUK_ENOTFOUND; SOUK_ESTATE when already closed. */
int store_ticket_close(store_t *self, const char *ticket_id, const char *waid, int64_t now_ms);
/* Newest first. */
int store_ticket_list_user(store_t *self, const char *waid, store_ticket_cb cb, void *arg);
int store_ticket_list_all(store_t *self, store_ticket_cb cb, void *arg);

/* Users with a message still `received` since before before_ms: work whose
 * session died with it (a whole node or souk killed), which nobody will pick
 * up until the user writes again. Calls cb once per user (each at most
 * once per call), at most `limit` users (1..1000), in no set order. */
typedef int (*store_waid_cb)(const char *waid, void *arg);
int store_inbound_stale(store_t *self, int64_t before_ms, int limit, store_waid_cb cb, void *arg);

/* ---- leases (multi-node ownership of a name, e.g. a user's session) ----- */

/* Takes or renews `name` for owner until now_ms + ttl_ms (ttl_ms >= 1) if it
 * is free, expired or already owner's. SOUK_ECONFLICT when another owner
 * holds it. */
int store_lease_acquire(store_t *self, const char *name, const char *owner, int64_t ttl_ms,
                        int64_t now_ms);
/* Frees name if owner holds it; SOUK_ECONFLICT otherwise. */
int store_lease_release(store_t *self, const char *name, const char *owner);

/* ---- backends: implemented by src/store_<name>.c, used by src/store.c ----
 * store.c checks every argument before calling; a backend may rely on
 * valid input and on the contracts above. */

typedef struct store_impl store_impl_t;     /* each backend's own handle */
typedef struct {
    const char *name;
    int (*open)(const char *data_dir, const store_options_t *opt, store_impl_t **out,
                char *err, size_t errlen);
    void (*close)(store_impl_t *h);
    const char *(*last_error)(const store_impl_t *h);
    int (*create)(const char *data_dir, char *err, size_t errlen);  /* NULL: open does it */
    int (*ops)(const store_impl_t *h, store_ops_t *out);            /* NULL: not counted */
    /* NULL both: every primitive is durable on its own (store_batch_*) */
    int (*batch_begin)(store_impl_t *h);
    int (*batch_end)(store_impl_t *h, bool commit);
    int (*user_seen)(store_impl_t *h, const store_user_seen_t *seen);
    int (*user_get)(store_impl_t *h, const char *waid, store_user_t *out);
    int (*user_set_opt_out)(store_impl_t *h, const char *waid, bool opted_out, int64_t now_ms);
    int (*inbound_put)(store_impl_t *h, const store_inbound_t *in);
    int (*inbound_get)(store_impl_t *h, const char *msg_sid, store_inbound_t *out);
    int (*inbound_finish)(store_impl_t *h, const char *msg_sid, store_inbound_state_t to,
                          const char *turn_sid);
    int (*inbound_pending)(store_impl_t *h, const char *waid, store_inbound_cb cb, void *arg);
    int (*inbound_stale)(store_impl_t *h, int64_t before_ms, int limit, store_waid_cb cb,
                         void *arg);
    int (*history_append)(store_impl_t *h, const store_history_t *e);
    int (*history_recent)(store_impl_t *h, const char *waid, int n, store_history_cb cb, void *arg);
    int (*outbox_put)(store_impl_t *h, const store_outbox_t *o, store_outbox_t *existing);
    int (*outbox_get)(store_impl_t *h, const char *key, store_outbox_t *out);
    int (*outbox_get_by_sid)(store_impl_t *h, const char *twilio_sid, store_outbox_t *out);
    int (*outbox_transition)(store_impl_t *h, const char *key, store_outbox_state_t expected,
                             store_outbox_state_t to, const store_outbox_change_t *change,
                             store_outbox_t *out);
    int (*outbox_due)(store_impl_t *h, store_outbox_state_t state, int64_t now_ms, int limit,
                      store_outbox_cb cb, void *arg);
    int (*outbox_offered)(store_impl_t *h, const char *waid, store_outbox_cb cb, void *arg);
    int (*outbox_list)(store_impl_t *h, store_outbox_cb cb, void *arg); /* optional */
    int (*delivery_update)(store_impl_t *h, const char *twilio_sid, store_outbox_state_t status,
                           int error_code, int64_t ts_ms, store_outbox_state_t *state);
    int (*idem_get)(store_impl_t *h, const char *key, char **result_json);
    int (*idem_put)(store_impl_t *h, const char *key, const char *result_json, int64_t now_ms,
                    char **stored_json);
    int (*product_upsert)(store_impl_t *h, const store_product_t *rows, size_t n, size_t *bad);
    int (*product_get)(store_impl_t *h, const char *sku, store_product_t *out);
    int (*product_each)(store_impl_t *h, store_product_cb cb, void *arg);
    int (*product_count)(store_impl_t *h, int64_t *count);
    int (*product_take)(store_impl_t *h, const char *sku, int64_t qty);
    int (*product_give)(store_impl_t *h, const char *sku, int64_t qty);
    int (*order_put)(store_impl_t *h, const store_order_t *o, store_order_t *out);
    int (*order_place)(store_impl_t *h, const store_order_request_t *req, store_order_t *out,
                       size_t *bad_line);
    /* waid NULL: no owner check (store_order_lookup) */
    int (*order_get)(store_impl_t *h, const char *order_id, const char *waid, store_order_t *out);
    int (*order_transition)(store_impl_t *h, const char *order_id, const char *waid,
                            store_order_status_t to, int64_t now_ms, store_order_t *out);
    /* waid NULL: every user's */
    int (*order_list)(store_impl_t *h, const char *waid, store_order_cb cb, void *arg);
    int (*ticket_put)(store_impl_t *h, const store_ticket_t *t, store_ticket_t *out);
    int (*ticket_get)(store_impl_t *h, const char *ticket_id, const char *waid, store_ticket_t *out);
    int (*ticket_close)(store_impl_t *h, const char *ticket_id, const char *waid, int64_t now_ms);
    /* waid NULL: every user's */
    int (*ticket_list)(store_impl_t *h, const char *waid, store_ticket_cb cb, void *arg);
    int (*lease_acquire)(store_impl_t *h, const char *name, const char *owner, int64_t ttl_ms,
                         int64_t now_ms);
    int (*lease_release)(store_impl_t *h, const char *name, const char *owner);
    int (*user_state_get)(store_impl_t *h, const char *waid, char **json);
    int (*user_state_put)(store_impl_t *h, const char *waid, const char *json, int64_t now_ms);
    /* optional (NULL: SOUK_EUNAVAIL) */
    int (*outbox_count)(store_impl_t *h, int64_t counts[STORE_OUTBOX_STATES]);
} store_backend_t;

extern const store_backend_t store_sqlite_backend;
extern const store_backend_t store_dynamo_backend;

/* Writes a fresh id, prefix + "-" + 5 characters of Crockford base32
 * ("SK-7K3Q9"), into buf (at least 16 bytes); for backends. */
void store_make_id(const char *prefix, char *buf, size_t buflen);

#endif
