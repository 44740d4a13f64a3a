/* The store on DynamoDB: one table, `${SOUK_TABLE_PREFIX}souk`, keys pk/sk,
 * two sparse GSIs (g1, g2), one for due messages (due) and an LSI on a
 * user's history sequence (recent). The layout, access pattern by access
 * pattern, is in docs/ARCHITECTURE.md ("Store on DynamoDB").
 *
 * What shapes this file:
 * - Single-item conditional writes only (no TransactWriteItems: dynalite and
 *   several DynamoDB-compatible stores lack it). Every uniqueness rule is an
 *   attribute_not_exists put on the item whose key is the unique value; every
 *   state machine step an UpdateItem conditioned on the state it leaves.
 * - A multi-item operation (placing an order) is a sequence of idempotent
 *   steps recorded on a guard item, so a retry after a crash at any step
 *   resumes it (orders and tickets: src/store_dynamo_orders.c).
 * - Reads of one item are strongly consistent; lists read GSIs, which on
 *   DynamoDB are eventually consistent (a fresh item may show up a moment
 *   later), except history, which reads the LSI consistently.
 * - No request at open: a session actor pays nothing until it reads. */
#include "store_dynamo_io.h"
#include "souk/error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define TRIM_EVERY 8            /* history: old entries are deleted every 8th append */

#define s_cat ddb_cat

/* ---- rows from items -------------------------------------------------------- */

static int s_user_from(const json_t *it, store_user_t *u)
{
    int rc = SOUK_OK;
    *u = (store_user_t) {
        .waid = ddb_dup(it, "waid", &rc), .profile_name = ddb_dup(it, "profile_name", &rc),
        .from_addr = ddb_dup(it, "from_addr", &rc), .last_media = ddb_dup(it, "last_media", &rc),
        .first_seen_ms = dynamo_get_n(it, "first_seen_ms", 0),
        .last_seen_ms = dynamo_get_n(it, "last_seen_ms", 0),
        .last_inbound_ms = dynamo_get_n(it, "last_inbound_ms", 0),
        .opted_out = dynamo_get_bool(it, "opted_out"),
        .opt_changed_ms = dynamo_get_n(it, "opt_changed_ms", 0),
    };
    if (rc)
        store_user_clear(u);
    return rc;
}

#define S_ENUM(kind, it, name, field, rc)                                    \
    do {                                                                     \
        if (kind##_parse(dynamo_get_s(it, name), &(field)) != SOUK_OK)       \
            rc = SOUK_EIO;                                                   \
    } while (0)

static int s_inbound_from(const json_t *it, store_inbound_t *m)
{
    int rc = SOUK_OK;
    *m = (store_inbound_t) {
        .msg_sid = ddb_dup(it, "msg_sid", &rc), .waid = ddb_dup(it, "waid", &rc),
        .body = ddb_dup(it, "body", &rc), .media = ddb_dup(it, "media", &rc),
        .params = ddb_dup(it, "params", &rc), .received_ms = dynamo_get_n(it, "received_ms", 0),
        .turn_sid = ddb_dup(it, "turn_sid", &rc),
    };
    S_ENUM(store_inbound_state, it, "st", m->state, rc);
    if (rc)
        store_inbound_clear(m);
    return rc;
}

static int s_history_from(const json_t *it, store_history_t *e)
{
    int rc = SOUK_OK;
    *e = (store_history_t) {
        .waid = ddb_dup(it, "waid", &rc), .msg_sid = ddb_dup(it, "msg_sid", &rc),
        .text = ddb_dup(it, "txt", &rc), .ts_ms = dynamo_get_n(it, "ts_ms", 0),
    };
    S_ENUM(store_dir, it, "dir", e->dir, rc);
    if (rc)
        store_history_clear(e);
    return rc;
}

static int s_outbox_from(const json_t *it, store_outbox_t *o)
{
    int rc = SOUK_OK;
    *o = (store_outbox_t) {
        .key = ddb_dup(it, "okey", &rc), .waid = ddb_dup(it, "waid", &rc),
        .to_addr = ddb_dup(it, "to_addr", &rc), .body = ddb_dup(it, "body", &rc),
        .twilio_sid = ddb_dup(it, "twilio_sid", &rc),
        .error_code = (int) dynamo_get_n(it, "error_code", 0),
        .error_reason = ddb_dup(it, "error_reason", &rc),
        .attempts = (int) dynamo_get_n(it, "attempts", 0),
        .next_attempt_ms = dynamo_get_n(it, "next_attempt_ms", 0),
        .created_ms = dynamo_get_n(it, "created_ms", 0),
        .updated_ms = dynamo_get_n(it, "updated_ms", 0),
    };
    S_ENUM(store_outbox_kind, it, "kind", o->kind, rc);
    S_ENUM(store_outbox_state, it, "st", o->state, rc);
    if (rc)
        store_outbox_clear(o);
    return rc;
}

static int s_product_from(const json_t *it, store_product_t *p)
{
    int rc = SOUK_OK;
    *p = (store_product_t) {
        .sku = ddb_dup(it, "sku", &rc), .name = ddb_dup(it, "pname", &rc),
        .description = ddb_dup(it, "description", &rc),
        .price_cents = dynamo_get_n(it, "price_cents", 0), .currency = ddb_dup(it, "currency", &rc),
        .category = ddb_dup(it, "category", &rc), .image_url = ddb_dup(it, "image_url", &rc),
        .brand = ddb_dup(it, "brand", &rc), .tags = ddb_dup(it, "tags", &rc),
        .attrs = ddb_dup(it, "attrs", &rc), .stock = dynamo_get_n(it, "stock", 0),
        .updated_ms = dynamo_get_n(it, "updated_ms", 0),
    };
    if (rc)
        store_product_clear(p);
    return rc;
}


/* One list row type: how to read it, free it, and hand it to the caller. */
typedef void (*s_anyfn_t)(void);
typedef struct {
    size_t size;
    int (*from)(const json_t *it, void *row);
    void (*clear)(void *row);
    int (*emit)(const void *row, s_anyfn_t cb, void *arg);
} s_rowtype_t;

#define S_ROWTYPE(name, type, cb_type)                                       \
    static int s_from_##name(const json_t *it, void *row) { return s_##name##_from(it, row); } \
    static void s_clear_##name(void *row) { store_##name##_clear(row); }     \
    static int s_emit_##name(const void *row, s_anyfn_t cb, void *arg)       \
    {                                                                        \
        return ((cb_type) cb)(row, arg);                                     \
    }                                                                        \
    static const s_rowtype_t s_##name##_row = { sizeof(type), s_from_##name, s_clear_##name, \
                                                s_emit_##name };
S_ROWTYPE(inbound, store_inbound_t, store_inbound_cb)
S_ROWTYPE(outbox, store_outbox_t, store_outbox_cb)
S_ROWTYPE(product, store_product_t, store_product_cb)

typedef struct {
    const s_rowtype_t *rt;
    s_anyfn_t cb;
    void *arg;
} s_list_t;

static int s_list_one(store_impl_t *h, json_t *it, void *arg)
{
    (void) h;
    s_list_t *l = arg;
    union {                     /* room for any row type, aligned for each */
        store_inbound_t inbound;
        store_outbox_t outbox;
        store_product_t product;
        store_order_t order;
        store_ticket_t ticket;
    } row;
    int rc = l->rt->from(it, &row);
    if (rc)
        return rc;
    rc = l->rt->emit(&row, l->cb, l->arg);
    l->rt->clear(&row);
    return rc;
}

static int s_list(store_impl_t *h, const char *index, const char *pk_name, const char *pk,
                  bool forward, const s_rowtype_t *rt, s_anyfn_t cb, void *arg)
{
    char cond[64];
    snprintf(cond, sizeof cond, "%s = :pk", pk_name);
    s_list_t l = { rt, cb, arg };
    return ddb_query(h, index, cond, ddb_vals(":pk", dynamo_s(pk), NULL), forward, DDB_PAGE, 0,
                     s_list_one, &l);
}

#define s_read ddb_read

/* ---- users and dialog state --------------------------------------------------- */

static int s_user_seen(store_impl_t *h, const store_user_seen_t *u)
{
    char pk[64], set[512];
    snprintf(set, sizeof set,
             "SET waid = :w, first_seen_ms = if_not_exists(first_seen_ms, :now),"
             " last_seen_ms = :now, last_inbound_ms = %s, opted_out = if_not_exists(opted_out, :f),"
             " opt_changed_ms = if_not_exists(opt_changed_ms, :zero)%s%s%s",
             u->inbound ? ":now" : "if_not_exists(last_inbound_ms, :zero)",
             u->profile_name ? ", profile_name = :pn" : "", u->from_addr ? ", from_addr = :fa" : "",
             u->media_json ? ", last_media = :lm" : "");
    json_t *v = ddb_vals(":w", dynamo_s(u->waid), ":now", dynamo_n(u->now_ms), ":f", dynamo_bool(0),
                         ":zero", dynamo_n(0), ":pn", dynamo_s(u->profile_name),
                         ":fa", dynamo_s(u->from_addr), ":lm", dynamo_s(u->media_json), NULL);
    return ddb_update(h, s_cat(pk, sizeof pk, "U#", u->waid), "PROFILE", set, NULL, NULL, v, NULL);
}

static int s_user_get(store_impl_t *h, const char *waid, store_user_t *out)
{
    char pk[64];
    return s_read(h, s_cat(pk, sizeof pk, "U#", waid), "PROFILE",
                  (int (*)(const json_t *, void *)) s_user_from, out);
}

static int s_user_set_opt_out(store_impl_t *h, const char *waid, bool opted_out, int64_t now_ms)
{
    char pk[64];
    /* The condition makes "only when the value changes" one write: a
     * failed check means it already had that value. */
    int rc = ddb_update(h, s_cat(pk, sizeof pk, "U#", waid), "PROFILE",
                        "SET waid = :w, first_seen_ms = if_not_exists(first_seen_ms, :now),"
                        " last_seen_ms = if_not_exists(last_seen_ms, :now),"
                        " last_inbound_ms = if_not_exists(last_inbound_ms, :zero),"
                        " opted_out = :v, opt_changed_ms = :now",
                        "attribute_not_exists(pk) OR opted_out <> :v", NULL,
                        ddb_vals(":w", dynamo_s(waid), ":now", dynamo_n(now_ms), ":zero",
                                 dynamo_n(0), ":v", dynamo_bool(opted_out), NULL), NULL);
    return rc == SOUK_ECONFLICT ? SOUK_OK : rc;
}

/* One string attribute of one item (the dialog state, an idempotency
 * key's result): SOUK_OK with *out (caller frees), SOUK_ENOTFOUND, or
 * SOUK_EIO for an item without it. */
static int s_get_text(store_impl_t *h, const char *pk, const char *sk, const char *attr,
                      char **out)
{
    json_t *it;
    int rc = ddb_get(h, pk, sk, &it);
    if (rc)
        return rc;
    char *s = ddb_dup(it, attr, &rc);
    json_decref(it);
    if (rc == SOUK_OK && !s)
        rc = SOUK_EIO;
    if (rc == SOUK_OK)
        *out = s;
    return rc;
}

static int s_user_state_get(store_impl_t *h, const char *waid, char **json)
{
    char pk[64];
    return s_get_text(h, s_cat(pk, sizeof pk, "U#", waid), "STATE", "doc", json);
}

static int s_user_state_put(store_impl_t *h, const char *waid, const char *json, int64_t now_ms)
{
    char pk[64];
    json_t *it = ddb_item(s_cat(pk, sizeof pk, "U#", waid), "STATE");
    dynamo_set(it, "doc", dynamo_s(json));
    dynamo_set(it, "updated_ms", dynamo_n(now_ms));
    return ddb_put(h, it, NULL, NULL, NULL);
}

/* ---- inbound ---------------------------------------------------------------- */

static int s_inbound_put(store_impl_t *h, const store_inbound_t *in)
{
    char pk[600], g1pk[64], g1sk[48];
    json_t *it = ddb_item(s_cat(pk, sizeof pk, "M#", in->msg_sid), "M");
    dynamo_set(it, "msg_sid", dynamo_s(in->msg_sid));
    dynamo_set(it, "waid", dynamo_s(in->waid));
    dynamo_set(it, "body", dynamo_s(in->body));
    dynamo_set(it, "media", dynamo_s(in->media));
    dynamo_set(it, "params", dynamo_s(in->params));
    dynamo_set(it, "received_ms", dynamo_n(in->received_ms));
    dynamo_set(it, "st", dynamo_s("received"));
    /* arrival order, not the sender's clock, orders what to resume */
    ddb_pad(g1sk, sizeof g1sk, ddb_arrival_ns());
    dynamo_set(it, "g1pk", dynamo_s(s_cat(g1pk, sizeof g1pk, "PEND#", in->waid)));
    dynamo_set(it, "g1sk", dynamo_s(g1sk));
    /* every pending message by age, for the sweep of orphans (store_inbound_stale) */
    dynamo_set(it, "duepk", dynamo_s("inbound"));
    dynamo_set(it, "duesk", dynamo_n(in->received_ms));
    int rc = ddb_put(h, it, "attribute_not_exists(pk)", NULL, NULL);
    return rc == SOUK_ECONFLICT ? SOUK_EEXISTS : rc;
}

static int s_inbound_get(store_impl_t *h, const char *msg_sid, store_inbound_t *out)
{
    char pk[600];
    return s_read(h, s_cat(pk, sizeof pk, "M#", msg_sid), "M", s_from_inbound, out);
}

static int s_inbound_finish(store_impl_t *h, const char *msg_sid, store_inbound_state_t to,
                            const char *turn_sid)
{
    char pk[600];
    s_cat(pk, sizeof pk, "M#", msg_sid);
    int rc = ddb_update(h, pk, "M", turn_sid ? "SET st = :to, turn_sid = :t REMOVE g1pk, g1sk, duepk, duesk"
                                             : "SET st = :to REMOVE g1pk, g1sk, duepk, duesk",
                        "st = :rec", NULL,
                        ddb_vals(":to", dynamo_s(store_inbound_state_name(to)), ":t",
                                 dynamo_s(turn_sid), ":rec", dynamo_s("received"), NULL), NULL);
    if (rc != SOUK_ECONFLICT)
        return rc;
    json_t *it;
    rc = ddb_get(h, pk, "M", &it);      /* missing, or no longer received */
    if (rc == SOUK_OK)
        json_decref(it);
    return rc == SOUK_OK ? SOUK_ECONFLICT : rc;
}

static int s_inbound_pending(store_impl_t *h, const char *waid, store_inbound_cb cb, void *arg)
{
    char pk[64];
    return s_list(h, DDB_G1, "g1pk", s_cat(pk, sizeof pk, "PEND#", waid), true, &s_inbound_row,
                  (s_anyfn_t) cb, arg);
}

/* Collects distinct users of stale messages, up to a limit. */
typedef struct {
    char **waids;
    int n, limit;
} s_stale_t;

static int s_stale_one(store_impl_t *h, json_t *it, void *arg)
{
    (void) h;
    s_stale_t *st = arg;
    const char *waid = dynamo_get_s(it, "waid");
    if (!waid)
        return 0;
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->waids[i], waid) == 0)
            return 0;
    if (!(st->waids[st->n] = strdup(waid)))
        return SOUK_ENOMEM;
    return ++st->n == st->limit ? 1 : 0;
}

static int s_inbound_stale(store_impl_t *h, int64_t before_ms, int limit, store_waid_cb cb,
                           void *arg)
{
    s_stale_t st = { calloc((size_t) limit, sizeof(char *)), 0, limit };
    if (!st.waids)
        return SOUK_ENOMEM;
    int rc = ddb_query(h, DDB_DUE, "duepk = :p AND duesk < :b",
                       ddb_vals(":p", dynamo_s("inbound"), ":b", dynamo_n(before_ms), NULL), true,
                       DDB_PAGE, 0, s_stale_one, &st);
    bool stop = false;
    for (int i = 0; i < st.n; i++) {
        if (rc == SOUK_OK && !stop) {
            int c = cb(st.waids[i], arg);
            if (c < 0)
                rc = c;
            stop = c != 0;
        }
        free(st.waids[i]);
    }
    free(st.waids);
    return rc;
}

/* ---- history ------------------------------------------------------------------ */

static int s_delete_old(store_impl_t *h, json_t *it, void *arg)
{
    (void) arg;
    return ddb_delete(h, dynamo_get_s(it, "pk"), dynamo_get_s(it, "sk"), NULL, NULL, NULL);
}

/* Each entry is its own item (an item is at most 400 KB); the user's
 * counter item numbers them (hseq, the LSI's sort key), and every
 * TRIM_EVERY appends the ones numbered history_keep or more below are
 * deleted, so a user keeps at most history_keep + TRIM_EVERY items and
 * readers never see more than history_keep (store.c caps n). */
static int s_history_append(store_impl_t *h, const store_history_t *e)
{
    char pk[64], sk[640], seqs[24];
    s_cat(pk, sizeof pk, "U#", e->waid);
    const char *dir = store_dir_name(e->dir);
    int rc;
    if (e->msg_sid) {
        /* the dedupe: the key is (dir, sid); checked first so that a repeat
         * does not burn a sequence number (the put's condition still holds
         * against a racing writer) */
        snprintf(sk, sizeof sk, "H#%s#%s", dir, e->msg_sid);
        json_t *old;
        rc = ddb_get(h, pk, sk, &old);
        if (rc == SOUK_OK) {
            json_decref(old);
            return SOUK_EEXISTS;
        }
        if (rc != SOUK_ENOTFOUND)
            return rc;
    }
    json_t *seq_attrs;
    rc = ddb_update(h, pk, "HSEQ", "ADD cnt :one", NULL, NULL, ddb_vals(":one", dynamo_n(1), NULL),
                    &seq_attrs);
    if (rc)
        return rc;
    int64_t seq = dynamo_get_n(seq_attrs, "cnt", 0);
    json_decref(seq_attrs);
    if (!e->msg_sid) {
        ddb_pad(seqs, sizeof seqs, seq);
        snprintf(sk, sizeof sk, "H#-#%s", seqs);
    }
    json_t *it = ddb_item(pk, sk);
    dynamo_set(it, "waid", dynamo_s(e->waid));
    dynamo_set(it, "dir", dynamo_s(dir));
    dynamo_set(it, "msg_sid", dynamo_s(e->msg_sid));
    dynamo_set(it, "txt", dynamo_s(e->text));
    dynamo_set(it, "ts_ms", dynamo_n(e->ts_ms));
    dynamo_set(it, "hseq", dynamo_n(seq));
    rc = ddb_put(h, it, "attribute_not_exists(pk)", NULL, NULL);
    if (rc == SOUK_ECONFLICT)
        return SOUK_EEXISTS;
    if (rc || seq % TRIM_EVERY != 0 || seq <= h->history_keep)
        return rc;
    /* best effort: an entry left over is trimmed by the next round */
    ddb_query(h, DDB_RECENT, "pk = :pk AND hseq <= :cut",
              ddb_vals(":pk", dynamo_s(pk), ":cut", dynamo_n(seq - h->history_keep), NULL), true,
              DDB_PAGE, 0, s_delete_old, NULL);
    return SOUK_OK;
}

typedef struct {
    json_t *items;              /* newest first, as queried */
} s_recent_t;

static int s_recent_keep(store_impl_t *h, json_t *it, void *arg)
{
    (void) h;
    json_array_append(((s_recent_t *) arg)->items, it);
    return 0;
}

static int s_history_recent(store_impl_t *h, const char *waid, int n, store_history_cb cb, void *arg)
{
    char pk[64];
    s_recent_t r = { json_array() };
    int rc = ddb_query(h, DDB_RECENT, "pk = :pk AND hseq > :zero",
                       ddb_vals(":pk", dynamo_s(s_cat(pk, sizeof pk, "U#", waid)), ":zero",
                                dynamo_n(0), NULL),
                       false, n < 100 ? n : 100, n, s_recent_keep, &r);
    for (size_t i = json_array_size(r.items); rc == SOUK_OK && i-- > 0;) {
        store_history_t e;
        rc = s_history_from(json_array_get(r.items, i), &e);
        if (rc)
            break;
        int c = cb(&e, arg);
        store_history_clear(&e);
        if (c)
            rc = c < 0 ? c : SOUK_OK;
        if (c)
            break;
    }
    json_decref(r.items);
    return rc;
}

/* ---- outbox ----------------------------------------------------------------------- */

static int s_outbox_get(store_impl_t *h, const char *key, store_outbox_t *out)
{
    char pk[600];
    return s_read(h, s_cat(pk, sizeof pk, "O#", key), "O", s_from_outbox, out);
}

static int s_outbox_put(store_impl_t *h, const store_outbox_t *o, store_outbox_t *existing)
{
    char pk[600], g1pk[64], g1sk[48];
    json_t *it = ddb_item(s_cat(pk, sizeof pk, "O#", o->key), "O");
    dynamo_set(it, "okey", dynamo_s(o->key));
    dynamo_set(it, "waid", dynamo_s(o->waid));
    dynamo_set(it, "to_addr", dynamo_s(o->to_addr));
    dynamo_set(it, "body", dynamo_s(o->body));
    dynamo_set(it, "kind", dynamo_s(store_outbox_kind_name(o->kind)));
    dynamo_set(it, "st", dynamo_s(store_outbox_state_name(o->state)));
    dynamo_set(it, "attempts", dynamo_n(0));
    dynamo_set(it, "error_code", dynamo_n(0));
    dynamo_set(it, "next_attempt_ms", dynamo_n(o->next_attempt_ms));
    dynamo_set(it, "created_ms", dynamo_n(o->created_ms));
    dynamo_set(it, "updated_ms", dynamo_n(o->created_ms));
    if (o->state == STORE_OUTBOX_OFFERED) {
        ddb_pad(g1sk, sizeof g1sk, ddb_arrival_ns());
        dynamo_set(it, "g1pk", dynamo_s(s_cat(g1pk, sizeof g1pk, "OFF#", o->waid ? o->waid : "-")));
        dynamo_set(it, "g1sk", dynamo_s(g1sk));
    } else {
        dynamo_set(it, "duepk", dynamo_s("queued"));
        dynamo_set(it, "duesk", dynamo_n(o->next_attempt_ms));
    }
    int rc = ddb_put(h, it, "attribute_not_exists(pk)", NULL, NULL);
    if (rc != SOUK_ECONFLICT)
        return rc;
    if (!existing)
        return SOUK_EEXISTS;
    rc = s_outbox_get(h, o->key, existing);
    return rc == SOUK_OK ? SOUK_EEXISTS : rc;
}

static int s_first_outbox(store_impl_t *h, json_t *it, void *arg)
{
    (void) h;
    int rc = s_outbox_from(it, arg);
    return rc ? rc : 1;
}

static int s_outbox_get_by_sid(store_impl_t *h, const char *twilio_sid, store_outbox_t *out)
{
    char pk[600];
    store_outbox_t row = { 0 };
    int rc = ddb_query(h, DDB_G2, "g2pk = :pk",
                       ddb_vals(":pk", dynamo_s(s_cat(pk, sizeof pk, "SID#", twilio_sid)), NULL),
                       true, 1, 1, s_first_outbox, &row);
    if (rc == SOUK_OK && !row.key)
        return SOUK_ENOTFOUND;
    if (rc == SOUK_OK)
        *out = row;
    return rc;
}

typedef struct {
    store_outbox_state_t state;
    int code;
    int64_t ts;
    json_t *events;
} s_fold_t;

static int s_fold_keep(store_impl_t *h, json_t *it, void *arg)
{
    (void) h;
    json_array_append(((s_fold_t *) arg)->events, it);
    return 0;
}

static int s_by_ts(const void *a, const void *b)
{
    int64_t x = dynamo_get_n(*(json_t *const *) a, "ts_ms", 0);
    int64_t y = dynamo_get_n(*(json_t *const *) b, "ts_ms", 0);
    return x < y ? -1 : x > y;
}

/* Applies the status callbacks that came before the sid was recorded: the
 * delivery events are items under DLV#sid, folded in time order. */
static int s_outbox_fold(store_impl_t *h, const char *key, const char *sid, store_outbox_state_t from)
{
    char pk[600], okpk[600];
    s_fold_t f = { from, 0, 0, json_array() };
    int rc = ddb_query(h, NULL, "pk = :pk",
                       ddb_vals(":pk", dynamo_s(s_cat(pk, sizeof pk, "DLV#", sid)), NULL), true,
                       DDB_PAGE, 0, s_fold_keep, &f);
    size_t n = json_array_size(f.events);
    json_t **ev = calloc(n ? n : 1, sizeof *ev);
    for (size_t i = 0; ev && i < n; i++)
        ev[i] = json_array_get(f.events, i);
    if (ev)
        qsort(ev, n, sizeof *ev, s_by_ts);
    for (size_t i = 0; ev && rc == SOUK_OK && i < n; i++) {
        store_outbox_state_t status;
        if (store_outbox_state_parse(dynamo_get_s(ev[i], "st"), &status) != SOUK_OK)
            continue;
        store_outbox_state_t next = store_outbox_after_status(f.state, status);
        if (next != f.state && (next == STORE_OUTBOX_FAILED || next == STORE_OUTBOX_UNDELIVERED))
            f.code = (int) dynamo_get_n(ev[i], "error_code", 0);
        f.state = next;
        f.ts = dynamo_get_n(ev[i], "ts_ms", 0);
    }
    if (!ev)
        rc = SOUK_ENOMEM;
    free(ev);
    json_decref(f.events);
    if (rc == SOUK_OK && f.state != from)
        rc = ddb_update(h, s_cat(okpk, sizeof okpk, "O#", key), "O",
                        f.code ? "SET st = :st, error_code = :c, updated_ms = :ts"
                               : "SET st = :st, updated_ms = :ts",
                        "st = :from", NULL,
                        ddb_vals(":st", dynamo_s(store_outbox_state_name(f.state)), ":c",
                                 f.code ? dynamo_n(f.code) : NULL, ":ts", dynamo_n(f.ts), ":from",
                                 dynamo_s(store_outbox_state_name(from)), NULL), NULL);
    return rc;
}

static int s_outbox_transition(store_impl_t *h, const char *key, store_outbox_state_t expected,
                               store_outbox_state_t to, const store_outbox_change_t *change,
                               store_outbox_t *out)
{
    static const store_outbox_change_t none = { 0 };
    const store_outbox_change_t *c = change ? change : &none;
    char pk[600], sidpk[600], set[600], remove[64] = "";
    s_cat(pk, sizeof pk, "O#", key);
    /* the due index holds queued and sending messages by next_attempt_ms;
     * the offered list those still offered */
    bool due = to == STORE_OUTBOX_QUEUED || to == STORE_OUTBOX_SENDING;
    snprintf(set, sizeof set, "SET st = :to%s%s%s%s%s%s%s",
             c->twilio_sid ? ", twilio_sid = :sid, g2pk = :sidpk, g2sk = :key" : "",
             c->error_code ? ", error_code = :ec" : "", c->error_reason ? ", error_reason = :er" : "",
             c->count_attempt ? ", attempts = attempts + :one" : "",
             c->next_attempt_ms > 0 ? ", next_attempt_ms = :na" : "",
             c->now_ms > 0 ? ", updated_ms = :now" : "",
             !due ? "" : c->next_attempt_ms > 0 ? ", duepk = :to, duesk = :na"
                                                : ", duepk = :to, duesk = next_attempt_ms");
    snprintf(remove, sizeof remove, "%s%s", due ? "" : " REMOVE duepk, duesk",
             expected == STORE_OUTBOX_OFFERED ? (due ? " REMOVE g1pk, g1sk" : ", g1pk, g1sk") : "");
    strncat(set, remove, sizeof set - strlen(set) - 1);
    json_t *v = ddb_vals(":to", dynamo_s(store_outbox_state_name(to)),
                         ":exp", dynamo_s(store_outbox_state_name(expected)),
                         ":sid", dynamo_s(c->twilio_sid),
                         ":sidpk", c->twilio_sid ? dynamo_s(s_cat(sidpk, sizeof sidpk, "SID#",
                                                                  c->twilio_sid)) : NULL,
                         ":key", c->twilio_sid ? dynamo_s(key) : NULL,
                         ":ec", c->error_code ? dynamo_n(c->error_code) : NULL,
                         ":er", dynamo_s(c->error_reason),
                         ":one", c->count_attempt ? dynamo_n(1) : NULL,
                         ":na", c->next_attempt_ms > 0 ? dynamo_n(c->next_attempt_ms) : NULL,
                         ":now", c->now_ms > 0 ? dynamo_n(c->now_ms) : NULL, NULL);
    json_t *attrs = NULL;
    int rc = ddb_update(h, pk, "O", set, "st = :exp", NULL, v, &attrs);
    bool moved = rc == SOUK_OK;
    if (rc != SOUK_OK && rc != SOUK_ECONFLICT)
        return rc;
    store_outbox_t row;
    if (moved && !c->twilio_sid) {
        /* the row as written: no read after (DynamoDB bills every read) */
        rc = out ? s_outbox_from(attrs, out) : SOUK_OK;
        json_decref(attrs);
        return rc;
    }
    json_decref(attrs);
    if (moved)
        rc = s_outbox_fold(h, key, c->twilio_sid, to);
    if (rc != SOUK_OK && rc != SOUK_ECONFLICT)
        return rc;
    rc = s_outbox_get(h, key, &row);
    if (rc)
        return rc;
    if (out)
        *out = row;
    else
        store_outbox_clear(&row);
    return moved ? SOUK_OK : SOUK_ECONFLICT;
}

static int s_outbox_due(store_impl_t *h, store_outbox_state_t state, int64_t now_ms, int limit,
                        store_outbox_cb cb, void *arg)
{
    s_list_t l = { &s_outbox_row, (s_anyfn_t) cb, arg };
    return ddb_query(h, DDB_DUE, "duepk = :st AND duesk <= :now",
                     ddb_vals(":st", dynamo_s(store_outbox_state_name(state)), ":now",
                              dynamo_n(now_ms), NULL),
                     true, limit < DDB_PAGE ? limit : DDB_PAGE, limit, s_list_one, &l);
}

static int s_outbox_offered(store_impl_t *h, const char *waid, store_outbox_cb cb, void *arg)
{
    char pk[64];
    return s_list(h, DDB_G1, "g1pk", s_cat(pk, sizeof pk, "OFF#", waid), true, &s_outbox_row,
                  (s_anyfn_t) cb, arg);
}

static int s_delivery_update(store_impl_t *h, const char *sid, store_outbox_state_t status,
                             int error_code, int64_t ts_ms, store_outbox_state_t *state)
{
    char pk[600], okpk[600];
    json_t *ev = ddb_item(s_cat(pk, sizeof pk, "DLV#", sid), store_outbox_state_name(status));
    dynamo_set(ev, "st", dynamo_s(store_outbox_state_name(status)));
    dynamo_set(ev, "error_code", dynamo_n(error_code));
    dynamo_set(ev, "ts_ms", dynamo_n(ts_ms));
    int rc = ddb_put(h, ev, "attribute_not_exists(pk)", NULL, NULL);
    if (rc != SOUK_OK && rc != SOUK_ECONFLICT)
        return rc;
    bool repeat = rc == SOUK_ECONFLICT;
    for (int attempt = 0; attempt < 4; attempt++) {
        store_outbox_t row;
        rc = s_outbox_get_by_sid(h, sid, &row);
        if (rc)
            return rc;      /* ENOTFOUND: the event is kept for s_outbox_fold */
        store_outbox_state_t next = repeat ? row.state : store_outbox_after_status(row.state, status);
        if (next != row.state) {
            bool failed = next == STORE_OUTBOX_FAILED || next == STORE_OUTBOX_UNDELIVERED;
            rc = ddb_update(h, s_cat(okpk, sizeof okpk, "O#", row.key), "O",
                            failed ? "SET st = :st, error_code = :c, updated_ms = :ts"
                                   : "SET st = :st, updated_ms = :ts",
                            "st = :cur", NULL,
                            ddb_vals(":st", dynamo_s(store_outbox_state_name(next)), ":c",
                                     failed ? dynamo_n(error_code) : NULL, ":ts", dynamo_n(ts_ms),
                                     ":cur", dynamo_s(store_outbox_state_name(row.state)), NULL),
                            NULL);
        }
        store_outbox_clear(&row);
        if (rc == SOUK_ECONFLICT)
            continue;       /* another callback moved it meanwhile: read again */
        if (rc)
            return rc;
        if (state)
            *state = next;
        return repeat ? SOUK_EEXISTS : SOUK_OK;
    }
    return SOUK_EBUSY;
}

/* ---- idempotency keys -------------------------------------------------------------- */

static int s_idem_get(store_impl_t *h, const char *key, char **result_json)
{
    char pk[600];
    return s_get_text(h, s_cat(pk, sizeof pk, "IDEM#", key), "I", "result", result_json);
}

static int s_idem_put(store_impl_t *h, const char *key, const char *result_json, int64_t now_ms,
                      char **stored_json)
{
    char pk[600];
    json_t *it = ddb_item(s_cat(pk, sizeof pk, "IDEM#", key), "I");
    dynamo_set(it, "result", dynamo_s(result_json));
    dynamo_set(it, "created_ms", dynamo_n(now_ms));
    int rc = ddb_put(h, it, "attribute_not_exists(pk)", NULL, NULL);
    if (rc != SOUK_ECONFLICT)
        return rc;
    if (!stored_json)
        return SOUK_EEXISTS;
    rc = s_idem_get(h, key, stored_json);
    return rc == SOUK_OK ? SOUK_EEXISTS : rc;
}

/* ---- products ------------------------------------------------------------------------ */

static json_t *s_product_item(const store_product_t *p)
{
    char pk[600];
    json_t *it = ddb_item(s_cat(pk, sizeof pk, "PROD#", p->sku), "P");
    dynamo_set(it, "sku", dynamo_s(p->sku));
    dynamo_set(it, "pname", dynamo_s(p->name));
    dynamo_set(it, "description", dynamo_s(p->description));
    dynamo_set(it, "price_cents", dynamo_n(p->price_cents));
    dynamo_set(it, "currency", dynamo_s(p->currency));
    dynamo_set(it, "category", dynamo_s(p->category));
    dynamo_set(it, "image_url", dynamo_s(p->image_url));
    dynamo_set(it, "brand", dynamo_s(p->brand));
    dynamo_set(it, "tags", dynamo_s(p->tags));
    dynamo_set(it, "attrs", dynamo_s(p->attrs));
    dynamo_set(it, "stock", dynamo_n(p->stock));
    dynamo_set(it, "updated_ms", dynamo_n(p->updated_ms));
    dynamo_set(it, "g1pk", dynamo_s("CATALOG"));
    dynamo_set(it, "g1sk", dynamo_s(p->sku));
    return it;
}

/* Writes 25 items a request (BatchWriteItem's cap), sending back what the
 * service left unprocessed (it does so when throttled) after a pause. */
static int s_product_upsert(store_impl_t *h, const store_product_t *rows, size_t n, size_t *bad)
{
    int rc = SOUK_OK;
    for (size_t at = 0; at < n && rc == SOUK_OK; at += 25) {
        json_t *list = json_array();
        for (size_t i = at; i < n && i < at + 25; i++)
            json_array_append_new(list, json_pack("{s:{s:o}}", "PutRequest", "Item",
                                                  s_product_item(&rows[i])));
        json_t *req = json_pack("{s:{s:o}}", "RequestItems", h->table, list);
        for (int round = 0; req && rc == SOUK_OK; round++) {
            json_t *resp;
            rc = ddb_call(h, "BatchWriteItem", req, &resp);
            if (rc)
                break;
            json_t *left = json_object_get(resp, "UnprocessedItems");
            if (!json_object_size(left)) {
                json_decref(resp);
                break;
            }
            if (round >= 8) {
                json_decref(resp);
                rc = ddb_err(h, SOUK_EBUSY);
                break;
            }
            req = json_pack("{s:O}", "RequestItems", left);
            json_decref(resp);
            struct timespec d = { 0, (long) (20 << round) * 1000000L };
            nanosleep(&d, NULL);
        }
        if (rc && bad)
            *bad = at;
    }
    return rc;
}

static int s_product_get(store_impl_t *h, const char *sku, store_product_t *out)
{
    char pk[600];
    return s_read(h, s_cat(pk, sizeof pk, "PROD#", sku), "P", s_from_product, out);
}

static int s_product_each(store_impl_t *h, store_product_cb cb, void *arg)
{
    return s_list(h, DDB_G1, "g1pk", "CATALOG", true, &s_product_row, (s_anyfn_t) cb, arg);
}

static int s_product_count(store_impl_t *h, int64_t *count)
{
    json_t *start = NULL;
    int64_t n = 0;
    int rc = SOUK_OK;
    do {
        json_t *req = json_pack("{s:s, s:s, s:s, s:{s:{s:s}}, s:s}", "TableName", h->table,
                                "IndexName", DDB_G1, "KeyConditionExpression", "g1pk = :pk",
                                "ExpressionAttributeValues", ":pk", "S", "CATALOG", "Select", "COUNT");
        if (start)
            json_object_set_new(req, "ExclusiveStartKey", start);
        json_t *resp;
        rc = ddb_call(h, "Query", req, &resp);
        if (rc)
            break;
        n += json_integer_value(json_object_get(resp, "Count"));
        start = json_incref(json_object_get(resp, "LastEvaluatedKey"));
        json_decref(resp);
    } while (start);
    if (rc == SOUK_OK)
        *count = n;
    return rc;
}

/* Tells a failed take apart: SOUK_ENOTFOUND, or SOUK_ESTOCK. */
static int s_why_not_taken(store_impl_t *h, const char *pk)
{
    json_t *it;
    int rc = ddb_get(h, pk, "P", &it);
    if (rc == SOUK_OK)
        json_decref(it);
    return rc == SOUK_OK ? SOUK_ESTOCK : rc;
}

static int s_product_take(store_impl_t *h, const char *sku, int64_t qty)
{
    char pk[600];
    s_cat(pk, sizeof pk, "PROD#", sku);
    int rc = ddb_update(h, pk, "P", "SET stock = stock - :q", "attribute_exists(pk) AND stock >= :q",
                        NULL, ddb_vals(":q", dynamo_n(qty), NULL), NULL);
    return rc == SOUK_ECONFLICT ? s_why_not_taken(h, pk) : rc;
}

static int s_product_give(store_impl_t *h, const char *sku, int64_t qty)
{
    char pk[600];
    int rc = ddb_update(h, s_cat(pk, sizeof pk, "PROD#", sku), "P", "SET stock = stock + :q",
                        "attribute_exists(pk)", NULL, ddb_vals(":q", dynamo_n(qty), NULL), NULL);
    return rc == SOUK_ECONFLICT ? SOUK_ENOTFOUND : rc;
}

/* ---- leases ------------------------------------------------------------------------------ */

/* One conditional put: free, expired, or already ours. The caller's clock
 * decides expiry, so nodes need roughly synchronised clocks (NTP); the
 * ttl should dwarf their skew. */
static int s_lease_acquire(store_impl_t *h, const char *name, const char *owner, int64_t ttl_ms,
                           int64_t now_ms)
{
    char pk[600];
    json_t *it = ddb_item(s_cat(pk, sizeof pk, "LEASE#", name), "L");
    dynamo_set(it, "lowner", dynamo_s(owner));
    dynamo_set(it, "expires_ms", dynamo_n(now_ms + ttl_ms));
    return ddb_put(h, it, "attribute_not_exists(pk) OR lowner = :o OR expires_ms <= :now", NULL,
                   ddb_vals(":o", dynamo_s(owner), ":now", dynamo_n(now_ms), NULL));
}

static int s_lease_release(store_impl_t *h, const char *name, const char *owner)
{
    char pk[600];
    return ddb_delete(h, s_cat(pk, sizeof pk, "LEASE#", name), "L", "lowner = :o", NULL,
                      ddb_vals(":o", dynamo_s(owner), NULL));
}

/* ---- open, close, create, counters ------------------------------------------------------- */

static int s_table_name(char *buf, size_t len, char *err, size_t errlen)
{
    const char *prefix = getenv("SOUK_TABLE_PREFIX");
    if (!prefix)
        prefix = "";
    if ((size_t) snprintf(buf, len, "%ssouk", prefix) >= len || strlen(buf) > 255) {
        if (err && errlen)
            snprintf(err, errlen, "SOUK_TABLE_PREFIX is too long");
        return SOUK_ECONFIG;
    }
    for (const char *c = buf; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')
              || *c == '_' || *c == '-' || *c == '.')) {
            if (err && errlen)
                snprintf(err, errlen, "SOUK_TABLE_PREFIX: only letters, digits, _ - and .");
            return SOUK_ECONFIG;
        }
    return SOUK_OK;
}

static void s_close(store_impl_t *h)
{
    if (!h)
        return;
    dynamo_close(&h->ddb);
    free(h);
}

/* A handle on the table, without a request. */
static int s_connect(const store_options_t *opt, store_impl_t **out, char *err, size_t errlen)
{
    store_impl_t *h = calloc(1, sizeof *h);
    if (!h)
        return SOUK_ENOMEM;
    h->history_keep = opt->history_keep;
    int rc = s_table_name(h->table, sizeof h->table, err, errlen);
    if (rc == SOUK_OK)
        rc = dynamo_open(&h->ddb, err, errlen);
    if (rc) {
        s_close(h);
        return rc;
    }
    *out = h;
    return SOUK_OK;
}

static int s_open(const char *data_dir, const store_options_t *opt, store_impl_t **out, char *err,
                  size_t errlen)
{
    /* the store lives in the table; the folder still holds the node's own
     * files (search index, sockets), as with SQLite */
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
        if (err && errlen)
            snprintf(err, errlen, "cannot create %s: %s", data_dir, strerror(errno));
        return SOUK_EIO;
    }
    return s_connect(opt, out, err, errlen);
}

static const char *s_last_error(const store_impl_t *h)
{
    return h->errmsg[0] ? h->errmsg : "no error";
}

static int s_ops(const store_impl_t *h, store_ops_t *out)
{
    dynamo_stats_t s;
    dynamo_stats(h->ddb, &s);
    *out = (store_ops_t) { .requests = s.requests, .retries = s.retries, .reads = s.reads,
                           .writes = s.writes, .read_units = s.read_units,
                           .write_units = s.write_units };
    return SOUK_OK;
}

static json_t *s_gsi(const char *name, const char *pk, const char *sk)
{
    return json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:{s:s}}", "IndexName", name, "KeySchema",
                     "AttributeName", pk, "KeyType", "HASH", "AttributeName", sk, "KeyType", "RANGE",
                     "Projection", "ProjectionType", "ALL");
}

/* The table and its indexes; an existing table is fine. Waits (up to two
 * minutes) for it to be ACTIVE. On-demand billing: no capacity to plan. */
static int s_create(const char *data_dir, char *err, size_t errlen)
{
    (void) data_dir;
    store_impl_t *h = NULL;
    store_options_t opt = { .history_keep = 200 };
    int rc = s_connect(&opt, &h, err, errlen);
    if (rc)
        return rc;
    json_t *req = json_pack("{s:s, s:s, s:[{s:s,s:s},{s:s,s:s}], s:[]}", "TableName", h->table,
                            "BillingMode", "PAY_PER_REQUEST", "KeySchema", "AttributeName", "pk",
                            "KeyType", "HASH", "AttributeName", "sk", "KeyType", "RANGE",
                            "AttributeDefinitions");
    static const char *const defs[][2] = { { "pk", "S" }, { "sk", "S" }, { "g1pk", "S" },
                                           { "g1sk", "S" }, { "g2pk", "S" }, { "g2sk", "S" },
                                           { "duepk", "S" }, { "duesk", "N" }, { "hseq", "N" } };
    for (size_t i = 0; i < sizeof defs / sizeof *defs; i++)
        json_array_append_new(json_object_get(req, "AttributeDefinitions"),
                              json_pack("{s:s, s:s}", "AttributeName", defs[i][0], "AttributeType",
                                        defs[i][1]));
    json_object_set_new(req, "GlobalSecondaryIndexes",
                        json_pack("[o, o, o]", s_gsi(DDB_G1, "g1pk", "g1sk"),
                                  s_gsi(DDB_G2, "g2pk", "g2sk"), s_gsi(DDB_DUE, "duepk", "duesk")));
    json_object_set_new(req, "LocalSecondaryIndexes",
                        json_pack("[o]", s_gsi(DDB_RECENT, "pk", "hseq")));
    rc = ddb_call(h, "CreateTable", req, NULL);
    if (rc == SOUK_EEXISTS)     /* ResourceInUseException: it exists already */
        rc = SOUK_OK;
    for (int i = 0; rc == SOUK_OK && i < 1200; i++) {
        json_t *resp;
        rc = ddb_call(h, "DescribeTable", json_pack("{s:s}", "TableName", h->table), &resp);
        if (rc)
            break;
        const char *st = json_string_value(json_object_get(json_object_get(resp, "Table"),
                                                           "TableStatus"));
        bool active = st && strcmp(st, "ACTIVE") == 0;
        json_decref(resp);
        if (active)
            break;
        if (i == 1199)
            rc = SOUK_ETIMEDOUT;
        struct timespec d = { 0, 100000000 };
        nanosleep(&d, NULL);
    }
    if (rc && err && errlen)
        snprintf(err, errlen, "creating table %s at %s: %s", h->table, dynamo_endpoint(h->ddb),
                 h->errmsg[0] ? h->errmsg : souk_strerror(rc));
    s_close(h);
    return rc;
}

const store_backend_t store_dynamo_backend = {
    .name = "dynamodb",
    .open = s_open,
    .close = s_close,
    .last_error = s_last_error,
    .create = s_create,
    .ops = s_ops,
    .user_seen = s_user_seen,
    .user_get = s_user_get,
    .user_set_opt_out = s_user_set_opt_out,
    .inbound_put = s_inbound_put,
    .inbound_get = s_inbound_get,
    .inbound_finish = s_inbound_finish,
    .inbound_pending = s_inbound_pending,
    .inbound_stale = s_inbound_stale,
    .history_append = s_history_append,
    .history_recent = s_history_recent,
    .outbox_put = s_outbox_put,
    .outbox_get = s_outbox_get,
    .outbox_get_by_sid = s_outbox_get_by_sid,
    .outbox_transition = s_outbox_transition,
    .outbox_due = s_outbox_due,
    .outbox_offered = s_outbox_offered,
    .delivery_update = s_delivery_update,
    .idem_get = s_idem_get,
    .idem_put = s_idem_put,
    .product_upsert = s_product_upsert,
    .product_get = s_product_get,
    .product_each = s_product_each,
    .product_count = s_product_count,
    .product_take = s_product_take,
    .product_give = s_product_give,
    .order_put = ddb_order_put,
    .order_place = ddb_order_place,
    .order_get = ddb_order_get,
    .order_transition = ddb_order_transition,
    .order_list = ddb_order_list,
    .ticket_put = ddb_ticket_put,
    .ticket_get = ddb_ticket_get,
    .ticket_close = ddb_ticket_close,
    .ticket_list = ddb_ticket_list,
    .lease_acquire = s_lease_acquire,
    .lease_release = s_lease_release,
    .user_state_get = s_user_state_get,
    .user_state_put = s_user_state_put,
};
