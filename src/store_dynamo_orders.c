/* The DynamoDB store's orders and tickets (see src/store_dynamo.c for the
 * table and docs/ARCHITECTURE.md for the key design): an idempotency guard
 * item per key, and the placement of an order with single-item conditional
 * writes only, each step idempotent so a retry after a crash at any step
 * resumes it. */
#include "store_dynamo_io.h"
#include "souk/error.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define s_cat ddb_cat
#define s_read ddb_read

#define S_ENUM(kind, it, name, field, rc)                                    \
    do {                                                                     \
        if (kind##_parse(dynamo_get_s(it, name), &(field)) != SOUK_OK)       \
            rc = SOUK_EIO;                                                   \
    } while (0)

/* ---- rows from items -------------------------------------------------------- */

static int s_order_from(const json_t *it, store_order_t *o)
{
    int rc = SOUK_OK;
    *o = (store_order_t) {
        .order_id = ddb_dup(it, "order_id", &rc), .waid = ddb_dup(it, "waid", &rc),
        .items = ddb_dup(it, "lines", &rc), .total_cents = dynamo_get_n(it, "total_cents", 0),
        .currency = ddb_dup(it, "currency", &rc), .note = ddb_dup(it, "note", &rc),
        .idem_key = ddb_dup(it, "idem_key", &rc), .created_ms = dynamo_get_n(it, "created_ms", 0),
        .updated_ms = dynamo_get_n(it, "updated_ms", 0),
    };
    S_ENUM(store_order_status, it, "st", o->status, rc);
    if (rc)
        store_order_clear(o);
    return rc;
}

static int s_ticket_from(const json_t *it, store_ticket_t *t)
{
    int rc = SOUK_OK;
    *t = (store_ticket_t) {
        .ticket_id = ddb_dup(it, "ticket_id", &rc), .waid = ddb_dup(it, "waid", &rc),
        .subject = ddb_dup(it, "subject", &rc), .message = ddb_dup(it, "message", &rc),
        .order_id = ddb_dup(it, "order_id", &rc), .idem_key = ddb_dup(it, "idem_key", &rc),
        .created_ms = dynamo_get_n(it, "created_ms", 0),
        .updated_ms = dynamo_get_n(it, "updated_ms", 0),
    };
    S_ENUM(store_ticket_status, it, "st", t->status, rc);
    if (rc)
        store_ticket_clear(t);
    return rc;
}

static int s_order_from_any(const json_t *it, void *row) { return s_order_from(it, row); }
static int s_ticket_from_any(const json_t *it, void *row) { return s_ticket_from(it, row); }

typedef struct {
    store_order_cb cb;
    void *arg;
} s_order_emit_t;

static int s_order_emit(store_impl_t *h, json_t *it, void *arg)
{
    (void) h;
    s_order_emit_t *e = arg;
    store_order_t o;
    int rc = s_order_from(it, &o);
    if (rc)
        return rc;
    rc = e->cb(&o, e->arg);
    store_order_clear(&o);
    return rc;
}

typedef struct {
    store_ticket_cb cb;
    void *arg;
} s_ticket_emit_t;

static int s_ticket_emit(store_impl_t *h, json_t *it, void *arg)
{
    (void) h;
    s_ticket_emit_t *e = arg;
    store_ticket_t t;
    int rc = s_ticket_from(it, &t);
    if (rc)
        return rc;
    rc = e->cb(&t, e->arg);
    store_ticket_clear(&t);
    return rc;
}

/* ---- orders ---------------------------------------------------------------------------- */

int ddb_order_get(store_impl_t *h, const char *order_id, const char *waid, store_order_t *out)
{
    char pk[600];
    store_order_t o;
    int rc = s_read(h, s_cat(pk, sizeof pk, "ORDER#", order_id), "O", s_order_from_any, &o);
    if (rc)
        return rc;
    if (waid && strcmp(o.waid, waid) != 0) {
        store_order_clear(&o);
        return SOUK_ENOTFOUND;      /* another user's order is simply not found */
    }
    if (out)
        *out = o;
    else
        store_order_clear(&o);
    return SOUK_OK;
}

/* Puts the order item under id, conditioned on the id being free. */
static int s_order_item_put(store_impl_t *h, const store_order_t *o, const char *id)
{
    char pk[600], g1pk[64], tk[48];
    json_t *it = ddb_item(s_cat(pk, sizeof pk, "ORDER#", id), "O");
    dynamo_set(it, "order_id", dynamo_s(id));
    dynamo_set(it, "waid", dynamo_s(o->waid));
    dynamo_set(it, "lines", dynamo_s(o->items));
    dynamo_set(it, "total_cents", dynamo_n(o->total_cents));
    dynamo_set(it, "currency", dynamo_s(o->currency));
    dynamo_set(it, "st", dynamo_s(store_order_status_name(o->status)));
    dynamo_set(it, "note", dynamo_s(o->note));
    dynamo_set(it, "idem_key", dynamo_s(o->idem_key));
    dynamo_set(it, "created_ms", dynamo_n(o->created_ms));
    dynamo_set(it, "updated_ms", dynamo_n(o->created_ms));
    ddb_time_key(tk, sizeof tk, o->created_ms);
    dynamo_set(it, "g1pk", dynamo_s(s_cat(g1pk, sizeof g1pk, "UORD#", o->waid)));
    dynamo_set(it, "g1sk", dynamo_s(tk));
    dynamo_set(it, "g2pk", dynamo_s("ORDERS"));
    dynamo_set(it, "g2sk", dynamo_s(tk));
    return ddb_put(h, it, "attribute_not_exists(pk)", NULL, NULL);
}

/* After a put of item pk found its key taken: SOUK_OK when the item there
 * carries our idem_key (our own earlier attempt, e.g. a write that landed
 * before a 5xx and was sent again), SOUK_ECONFLICT when it is another's. */
static int s_ours(store_impl_t *h, const char *pk, const char *sk, const char *idem_key)
{
    json_t *it;
    int rc = ddb_get(h, pk, sk, &it);
    if (rc == SOUK_ENOTFOUND)
        return SOUK_ECONFLICT;
    if (rc)
        return rc;
    const char *k = dynamo_get_s(it, "idem_key");
    rc = k && strcmp(k, idem_key) == 0 ? SOUK_OK : SOUK_ECONFLICT;
    json_decref(it);
    return rc;
}

/* The guard item of an idempotency key: OIDEM#key (orders) or TIDEM#key
 * (tickets), holding the id it was given and, for orders, the phase. */
static int s_guard_get(store_impl_t *h, const char *pk, char *id, size_t idlen, char *phase,
                       size_t phaselen)
{
    json_t *it;
    int rc = ddb_get(h, pk, "G", &it);
    if (rc)
        return rc;
    snprintf(id, idlen, "%s", dynamo_get_s(it, "gid") ? dynamo_get_s(it, "gid") : "");
    if (phase)
        snprintf(phase, phaselen, "%s", dynamo_get_s(it, "phase") ? dynamo_get_s(it, "phase") : "");
    json_decref(it);
    return SOUK_OK;
}

static int s_guard_put(store_impl_t *h, const char *pk, const char *id, const char *phase)
{
    json_t *it = ddb_item(pk, "G");
    dynamo_set(it, "gid", dynamo_s(id));
    dynamo_set(it, "phase", dynamo_s(phase));
    return ddb_put(h, it, "attribute_not_exists(pk)", NULL, NULL);
}

static int s_guard_move(store_impl_t *h, const char *pk, const char *id, const char *new_id,
                        const char *phase)
{
    return ddb_update(h, pk, "G", "SET gid = :nid, phase = :ph", "gid = :id", NULL,
                      ddb_vals(":nid", dynamo_s(new_id), ":ph", dynamo_s(phase), ":id",
                               dynamo_s(id), NULL), NULL);
}

/* Stores an order as given. The guard OIDEM#idem_key is put first with the
 * id: it makes the key unique, and a retry after a crash between the two
 * puts finds the id and completes the same order. */
int ddb_order_put(store_impl_t *h, const store_order_t *o, store_order_t *out)
{
    char gpk[600], id[64], phase[16];
    s_cat(gpk, sizeof gpk, "OIDEM#", o->idem_key);
    int rc = s_guard_get(h, gpk, id, sizeof id, phase, sizeof phase);
    if (rc == SOUK_OK) {
        rc = ddb_order_get(h, id, NULL, out);
        if (rc != SOUK_ENOTFOUND)
            return rc == SOUK_OK ? SOUK_EEXISTS : rc;
    } else if (rc == SOUK_ENOTFOUND) {
        if (o->order_id)
            snprintf(id, sizeof id, "%s", o->order_id);
        else
            store_make_id("SK", id, sizeof id);
        rc = s_guard_put(h, gpk, id, "placed");
        if (rc == SOUK_ECONFLICT)   /* a racing put of the same key */
            return ddb_order_get(h, id, NULL, out) == SOUK_OK ? SOUK_EEXISTS : SOUK_EBUSY;
        if (rc)
            return rc;
    } else {
        return rc;
    }
    for (int attempt = 0; attempt < DDB_ID_TRIES; attempt++) {
        char pk[600];
        rc = s_order_item_put(h, o, id);
        if (rc == SOUK_ECONFLICT)
            rc = s_ours(h, s_cat(pk, sizeof pk, "ORDER#", id), "O", o->idem_key);
        if (rc != SOUK_ECONFLICT)
            break;
        if (o->order_id) {          /* a given id that is taken: free the key again */
            ddb_delete(h, gpk, "G", "gid = :id", NULL, ddb_vals(":id", dynamo_s(id), NULL));
            return SOUK_ECONFLICT;
        }
        char fresh[16];
        store_make_id("SK", fresh, sizeof fresh);
        rc = s_guard_move(h, gpk, id, fresh, "placed");
        if (rc)
            return rc;
        snprintf(id, sizeof id, "%s", fresh);
    }
    if (rc)
        return rc;
    return ddb_order_get(h, id, NULL, out);
}

/* One line as taken from the catalogue. */
typedef struct {
    char *name, *currency;
    int64_t price;
} s_line_t;

/* The mark a take leaves in the product's `takes` set: the order's key and
 * the line's index (one order may hold the same sku twice). */
static void s_take_mark(char *buf, size_t len, const char *idem_key, size_t line)
{
    snprintf(buf, len, "%s#%zu", idem_key, line);
}

/* Takes line i's stock once: stock -= qty on the condition that there is
 * enough and that this order's mark is not yet in `takes`, which the same
 * write joins. A retry that finds its mark there took it already. */
static int s_line_take(store_impl_t *h, const char *idem_key, size_t i, const store_order_line_t *l,
                       s_line_t *got)
{
    char pk[600], mark[640];
    s_cat(pk, sizeof pk, "PROD#", l->sku);
    s_take_mark(mark, sizeof mark, idem_key, i);
    json_t *it = NULL;
    int rc = ddb_update(h, pk, "P", "SET stock = stock - :q ADD takes :m",
                        "attribute_exists(pk) AND stock >= :q AND NOT contains(takes, :k)", NULL,
                        ddb_vals(":q", dynamo_n(l->qty), ":m", json_pack("{s:[s]}", "SS", mark),
                                 ":k", dynamo_s(mark), NULL), &it);
    if (rc == SOUK_ECONFLICT) {
        rc = ddb_get(h, pk, "P", &it);
        if (rc == SOUK_OK) {
            bool mine = false;
            size_t k;
            json_t *m;
            json_array_foreach(json_object_get(json_object_get(it, "takes"), "SS"), k, m)
                mine = mine || strcmp(json_string_value(m), mark) == 0;
            if (!mine) {
                json_decref(it);
                return SOUK_ESTOCK;
            }
        }
    }
    if (rc)
        return rc;
    got->name = ddb_dup(it, "pname", &rc);
    got->currency = ddb_dup(it, "currency", &rc);
    got->price = dynamo_get_n(it, "price_cents", 0);
    json_decref(it);
    return rc;
}

/* Gives line i back, once: only while its mark is in `takes`. */
static int s_line_give(store_impl_t *h, const char *idem_key, size_t i, const store_order_line_t *l)
{
    char pk[600], mark[640];
    s_take_mark(mark, sizeof mark, idem_key, i);
    int rc = ddb_update(h, s_cat(pk, sizeof pk, "PROD#", l->sku), "P",
                        "SET stock = stock + :q DELETE takes :m", "contains(takes, :k)", NULL,
                        ddb_vals(":q", dynamo_n(l->qty), ":m", json_pack("{s:[s]}", "SS", mark),
                                 ":k", dynamo_s(mark), NULL), NULL);
    return rc == SOUK_ECONFLICT ? SOUK_OK : rc;
}

/* Forgets line i's mark once the order is stored (keeps `takes` small). */
static int s_line_forget(store_impl_t *h, const char *idem_key, size_t i, const store_order_line_t *l)
{
    char pk[600], mark[640];
    s_take_mark(mark, sizeof mark, idem_key, i);
    int rc = ddb_update(h, s_cat(pk, sizeof pk, "PROD#", l->sku), "P", "DELETE takes :m",
                        "attribute_exists(pk)", NULL,
                        ddb_vals(":m", json_pack("{s:[s]}", "SS", mark), NULL), NULL);
    return rc == SOUK_ECONFLICT ? SOUK_OK : rc;
}

static void s_lines_free(s_line_t *got, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(got[i].name);
        free(got[i].currency);
    }
    free(got);
}

/* The order's items JSON, total and currency from the lines taken. */
static int s_order_build(const store_order_request_t *req, const s_line_t *got, store_order_t *o,
                         size_t *bad_line)
{
    json_t *items = json_array();
    for (size_t i = 0; i < req->n_lines; i++) {
        int64_t line;
        if (!got[i].currency || !got[i].name
            || (o->currency && strcmp(o->currency, got[i].currency) != 0)
            || __builtin_mul_overflow(got[i].price, req->lines[i].qty, &line)
            || __builtin_add_overflow(o->total_cents, line, &o->total_cents)) {
            if (bad_line)
                *bad_line = i;
            json_decref(items);
            return SOUK_EINVAL;
        }
        o->currency = got[i].currency;
        json_array_append_new(items, json_pack("{s:s, s:s, s:I, s:I}", "sku", req->lines[i].sku,
                                               "name", got[i].name, "qty",
                                               (json_int_t) req->lines[i].qty, "unit_cents",
                                               (json_int_t) got[i].price));
    }
    o->items = json_dumps(items, JSON_COMPACT);
    json_decref(items);
    return o->items ? SOUK_OK : SOUK_ENOMEM;
}

/* Places an order with single-item conditional writes only. The steps, each
 * idempotent, and what a retry after a crash at each one does:
 *   1. guard OIDEM#key put {id, phase "taking"} unless it exists. A retry
 *      finds "taking" and resumes with the same id; "placed" is EEXISTS.
 *   2. if the order item already exists (crash after step 4), skip to 5.
 *   3. each line: stock -= qty if stock >= qty and the line's mark is not
 *      in the product's `takes` set, which it joins (s_line_take). Two
 *      buyers of the last item: one condition fails. A retry finds its mark
 *      and does not take twice.
 *      A short or unknown line (or mixed currencies): every line taken is
 *      given back, each only while its mark is there (s_line_give), and
 *      the guard is deleted, so the key is free as after a rollback. A
 *      crash during this leaves the guard "taking": the retry takes the
 *      missing lines again and gives all back again.
 *   4. the order item put unless its id exists (a made id that collides
 *      gets a new one, moved onto the guard first).
 *   5. each line's mark leaves `takes` (s_line_forget), then the guard
 *      becomes "placed". Marks are forgotten only once the order exists,
 *      and step 2 keeps a resumed attempt from taking again after that. */
int ddb_order_place(store_impl_t *h, const store_order_request_t *req, store_order_t *out,
                         size_t *bad_line)
{
    char gpk[600], id[64], phase[16];
    s_cat(gpk, sizeof gpk, "OIDEM#", req->idem_key);
    int rc = s_guard_get(h, gpk, id, sizeof id, phase, sizeof phase);
    if (rc == SOUK_ENOTFOUND) {
        store_make_id("SK", id, sizeof id);
        snprintf(phase, sizeof phase, "taking");
        rc = s_guard_put(h, gpk, id, phase);
        if (rc == SOUK_ECONFLICT)   /* the same request, racing: read what it wrote */
            rc = s_guard_get(h, gpk, id, sizeof id, phase, sizeof phase);
    }
    if (rc)
        return rc;
    if (strcmp(phase, "placed") == 0) {
        rc = ddb_order_get(h, id, NULL, out);
        return rc == SOUK_OK ? SOUK_EEXISTS : rc;
    }
    bool stored = ddb_order_get(h, id, NULL, NULL) == SOUK_OK;
    size_t taken = 0;
    s_line_t *got = calloc(req->n_lines, sizeof *got);
    if (!got)
        return SOUK_ENOMEM;
    store_order_t o = { .waid = (char *) req->waid, .status = STORE_ORDER_PENDING,
                        .note = (char *) req->note, .idem_key = (char *) req->idem_key,
                        .created_ms = req->now_ms };
    for (; !stored && taken < req->n_lines; taken++) {
        rc = s_line_take(h, req->idem_key, taken, &req->lines[taken], &got[taken]);
        if (rc) {
            if (bad_line)
                *bad_line = taken;
            if (rc == SOUK_ENOTFOUND || rc == SOUK_ESTOCK)
                break;
            taken++;        /* an error after the write may have taken it: give back too */
            break;
        }
    }
    if (rc == SOUK_OK && !stored)
        rc = s_order_build(req, got, &o, bad_line);
    for (int attempt = 0; rc == SOUK_OK && !stored && attempt < DDB_ID_TRIES; attempt++) {
        char pk[600];
        rc = s_order_item_put(h, &o, id);
        if (rc == SOUK_ECONFLICT)   /* taken: by our own earlier attempt, or a collision */
            rc = s_ours(h, s_cat(pk, sizeof pk, "ORDER#", id), "O", req->idem_key);
        if (rc != SOUK_ECONFLICT)
            break;
        char fresh[16];
        store_make_id("SK", fresh, sizeof fresh);
        rc = s_guard_move(h, gpk, id, fresh, "taking");
        if (rc == SOUK_OK)
            snprintf(id, sizeof id, "%s", fresh);
        if (rc == SOUK_OK)
            rc = SOUK_ECONFLICT;
    }
    free(o.items);
    if (rc && rc != SOUK_EUNAVAIL && rc != SOUK_EBUSY) {
        /* all or nothing: give back what was taken, free the key */
        int undo = SOUK_OK;
        for (size_t i = 0; i < taken && undo == SOUK_OK; i++)
            undo = s_line_give(h, req->idem_key, i, &req->lines[i]);
        if (undo == SOUK_OK)
            undo = ddb_delete(h, gpk, "G", NULL, NULL, NULL);
        s_lines_free(got, req->n_lines);
        return undo == SOUK_OK ? rc : undo;
    }
    s_lines_free(got, req->n_lines);
    if (rc)
        return rc;  /* unreachable store: the guard stays "taking"; a retry resumes */
    for (size_t i = 0; i < req->n_lines && rc == SOUK_OK; i++)
        rc = s_line_forget(h, req->idem_key, i, &req->lines[i]);
    if (rc == SOUK_OK)
        rc = s_guard_move(h, gpk, id, id, "placed");
    if (rc == SOUK_OK)
        rc = ddb_order_get(h, id, NULL, out);
    return rc == SOUK_OK && stored ? SOUK_EEXISTS : rc;
}

int ddb_order_transition(store_impl_t *h, const char *order_id, const char *waid,
                              store_order_status_t to, int64_t now_ms, store_order_t *out)
{
    char pk[600];
    s_cat(pk, sizeof pk, "ORDER#", order_id);
    for (int attempt = 0; attempt < 4; attempt++) {
        store_order_t row;
        int rc = ddb_order_get(h, order_id, waid, &row);
        if (rc)
            return rc;
        store_order_status_t from = row.status;
        if (!store_order_can_move(from, to)) {
            if (out)
                *out = row;
            else
                store_order_clear(&row);
            return SOUK_ESTATE;
        }
        store_order_clear(&row);
        json_t *attrs;
        rc = ddb_update(h, pk, "O", "SET st = :to, updated_ms = :now", "st = :from", NULL,
                        ddb_vals(":to", dynamo_s(store_order_status_name(to)), ":now",
                                 dynamo_n(now_ms), ":from",
                                 dynamo_s(store_order_status_name(from)), NULL), &attrs);
        if (rc == SOUK_ECONFLICT)
            continue;       /* moved meanwhile: judge again from what it is now */
        if (rc)
            return rc;
        rc = out ? s_order_from(attrs, out) : SOUK_OK;
        json_decref(attrs);
        return rc;
    }
    return SOUK_EBUSY;
}

int ddb_order_list(store_impl_t *h, const char *waid, store_order_cb cb, void *arg)
{
    char pk[64];
    s_order_emit_t e = { cb, arg };
    if (waid)
        return ddb_query(h, DDB_G1, "g1pk = :pk",
                         ddb_vals(":pk", dynamo_s(s_cat(pk, sizeof pk, "UORD#", waid)), NULL), false,
                         DDB_PAGE, 0, s_order_emit, &e);
    return ddb_query(h, DDB_G2, "g2pk = :pk", ddb_vals(":pk", dynamo_s("ORDERS"), NULL), false,
                     DDB_PAGE, 0, s_order_emit, &e);
}

/* ---- tickets --------------------------------------------------------------------------- */

int ddb_ticket_get(store_impl_t *h, const char *ticket_id, const char *waid, store_ticket_t *out)
{
    char pk[600];
    store_ticket_t t;
    int rc = s_read(h, s_cat(pk, sizeof pk, "TICKET#", ticket_id), "T", s_ticket_from_any, &t);
    if (rc)
        return rc;
    if (waid && strcmp(t.waid, waid) != 0) {
        store_ticket_clear(&t);
        return SOUK_ENOTFOUND;
    }
    if (out)
        *out = t;
    else
        store_ticket_clear(&t);
    return SOUK_OK;
}

static int s_ticket_item_put(store_impl_t *h, const store_ticket_t *t, const char *id)
{
    char pk[600], g1pk[64], tk[48];
    json_t *it = ddb_item(s_cat(pk, sizeof pk, "TICKET#", id), "T");
    dynamo_set(it, "ticket_id", dynamo_s(id));
    dynamo_set(it, "waid", dynamo_s(t->waid));
    dynamo_set(it, "subject", dynamo_s(t->subject));
    dynamo_set(it, "message", dynamo_s(t->message));
    dynamo_set(it, "order_id", dynamo_s(t->order_id));
    dynamo_set(it, "st", dynamo_s("open"));
    dynamo_set(it, "idem_key", dynamo_s(t->idem_key));
    dynamo_set(it, "created_ms", dynamo_n(t->created_ms));
    dynamo_set(it, "updated_ms", dynamo_n(t->created_ms));
    ddb_time_key(tk, sizeof tk, t->created_ms);
    dynamo_set(it, "g1pk", dynamo_s(s_cat(g1pk, sizeof g1pk, "UTK#", t->waid)));
    dynamo_set(it, "g1sk", dynamo_s(tk));
    dynamo_set(it, "g2pk", dynamo_s("TICKETS"));
    dynamo_set(it, "g2sk", dynamo_s(tk));
    return ddb_put(h, it, "attribute_not_exists(pk)", NULL, NULL);
}

/* As ddb_order_put, with the guard TIDEM#idem_key. */
int ddb_ticket_put(store_impl_t *h, const store_ticket_t *t, store_ticket_t *out)
{
    char gpk[600], id[64];
    s_cat(gpk, sizeof gpk, "TIDEM#", t->idem_key);
    int rc = s_guard_get(h, gpk, id, sizeof id, NULL, 0);
    if (rc == SOUK_OK) {
        rc = ddb_ticket_get(h, id, NULL, out);
        if (rc != SOUK_ENOTFOUND)
            return rc == SOUK_OK ? SOUK_EEXISTS : rc;
    } else if (rc != SOUK_ENOTFOUND) {
        return rc;
    } else {
        if (t->order_id && (rc = ddb_order_get(h, t->order_id, t->waid, NULL)) != SOUK_OK)
            return rc;
        if (t->ticket_id)
            snprintf(id, sizeof id, "%s", t->ticket_id);
        else
            store_make_id("TK", id, sizeof id);
        rc = s_guard_put(h, gpk, id, "placed");
        if (rc == SOUK_ECONFLICT)
            return ddb_ticket_get(h, id, NULL, out) == SOUK_OK ? SOUK_EEXISTS : SOUK_EBUSY;
        if (rc)
            return rc;
    }
    for (int attempt = 0; attempt < DDB_ID_TRIES; attempt++) {
        char pk[600];
        rc = s_ticket_item_put(h, t, id);
        if (rc == SOUK_ECONFLICT)
            rc = s_ours(h, s_cat(pk, sizeof pk, "TICKET#", id), "T", t->idem_key);
        if (rc != SOUK_ECONFLICT)
            break;
        if (t->ticket_id) {
            ddb_delete(h, gpk, "G", "gid = :id", NULL, ddb_vals(":id", dynamo_s(id), NULL));
            return SOUK_ECONFLICT;
        }
        char fresh[16];
        store_make_id("TK", fresh, sizeof fresh);
        rc = s_guard_move(h, gpk, id, fresh, "placed");
        if (rc)
            return rc;
        snprintf(id, sizeof id, "%s", fresh);
    }
    if (rc)
        return rc;
    return ddb_ticket_get(h, id, NULL, out);
}

int ddb_ticket_close(store_impl_t *h, const char *ticket_id, const char *waid, int64_t now_ms)
{
    char pk[600];
    int rc = ddb_update(h, s_cat(pk, sizeof pk, "TICKET#", ticket_id), "T",
                        "SET st = :closed, updated_ms = :now",
                        "attribute_exists(pk) AND waid = :w AND st = :open", NULL,
                        ddb_vals(":closed", dynamo_s("closed"), ":now", dynamo_n(now_ms), ":w",
                                 dynamo_s(waid), ":open", dynamo_s("open"), NULL), NULL);
    if (rc != SOUK_ECONFLICT)
        return rc;
    rc = ddb_ticket_get(h, ticket_id, waid, NULL);
    return rc == SOUK_OK ? SOUK_ESTATE : rc;
}

int ddb_ticket_list(store_impl_t *h, const char *waid, store_ticket_cb cb, void *arg)
{
    char pk[64];
    s_ticket_emit_t e = { cb, arg };
    if (waid)
        return ddb_query(h, DDB_G1, "g1pk = :pk",
                         ddb_vals(":pk", dynamo_s(s_cat(pk, sizeof pk, "UTK#", waid)), NULL), false,
                         DDB_PAGE, 0, s_ticket_emit, &e);
    return ddb_query(h, DDB_G2, "g2pk = :pk", ddb_vals(":pk", dynamo_s("TICKETS"), NULL), false,
                     DDB_PAGE, 0, s_ticket_emit, &e);
}

