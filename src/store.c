/* The store's front door: picks a backend by name, checks every argument
 * once, and hands valid calls to the backend's table of functions. The
 * rules that do not depend on where the data lives (state machines, enum
 * names, id making) are here too, so every backend applies the same ones. */
#include "souk/store.h"
#include "souk/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* DynamoDB caps a key attribute at 2,048 bytes; stay well inside. */
#define KEY_MAX 512
#define WAID_MAX 32
#define LINE_QTY_MAX 1000000
#define LINES_MAX 100
#define STOCK_QTY_MAX 1000000000
#define DUE_LIMIT_MAX 1000
#define HISTORY_KEEP_MAX 10000

struct store_s {
    const store_backend_t *be;
    store_impl_t *impl;
    int history_keep;
    bool batch;         /* between store_batch_begin and store_batch_end */
};

static const store_backend_t *const s_backends[] = { &store_sqlite_backend, &store_dynamo_backend };

/* ---- enum names ---------------------------------------------------------- */

#define NAME_TABLE(fn, type, map)                                            \
    static const char *const fn##_names[] = { map(NAME_ENTRY) };             \
    const char *fn##_name(type v)                                            \
    {                                                                        \
        size_t i = (size_t) v;                                               \
        return i < sizeof fn##_names / sizeof *fn##_names ? fn##_names[i] : "?"; \
    }                                                                        \
    int fn##_parse(const char *s, type *v)                                   \
    {                                                                        \
        for (size_t i = 0; s && i < sizeof fn##_names / sizeof *fn##_names; i++) \
            if (strcmp(s, fn##_names[i]) == 0) {                             \
                *v = (type) i;                                               \
                return SOUK_OK;                                              \
            }                                                                \
        return SOUK_EINVAL;                                                  \
    }
#define NAME_ENTRY(n, t) t,
NAME_TABLE(store_inbound_state, store_inbound_state_t, STORE_INBOUND_STATE_MAP)
NAME_TABLE(store_dir, store_dir_t, STORE_DIR_MAP)
NAME_TABLE(store_outbox_kind, store_outbox_kind_t, STORE_OUTBOX_KIND_MAP)
NAME_TABLE(store_outbox_state, store_outbox_state_t, STORE_OUTBOX_STATE_MAP)
NAME_TABLE(store_order_status, store_order_status_t, STORE_ORDER_STATUS_MAP)
NAME_TABLE(store_ticket_status, store_ticket_status_t, STORE_TICKET_STATUS_MAP)
#undef NAME_ENTRY

#define VALID_ENUM(v, fn) ((unsigned) (v) < sizeof fn##_names / sizeof *fn##_names)

/* ---- rules shared by every backend --------------------------------------- */

bool store_outbox_can_move(store_outbox_state_t from, store_outbox_state_t to)
{
    switch (from) {
    case STORE_OUTBOX_OFFERED:   return to == STORE_OUTBOX_INLINE || to == STORE_OUTBOX_QUEUED;
    case STORE_OUTBOX_QUEUED:    return to == STORE_OUTBOX_SENDING || to == STORE_OUTBOX_FAILED;
    case STORE_OUTBOX_SENDING:
        return to == STORE_OUTBOX_SENT || to == STORE_OUTBOX_QUEUED || to == STORE_OUTBOX_FAILED;
    case STORE_OUTBOX_SENT:
        return to == STORE_OUTBOX_DELIVERED || to == STORE_OUTBOX_READ
            || to == STORE_OUTBOX_FAILED || to == STORE_OUTBOX_UNDELIVERED;
    case STORE_OUTBOX_DELIVERED: return to == STORE_OUTBOX_READ;
    default:                     return false;
    }
}

store_outbox_state_t store_outbox_after_status(store_outbox_state_t cur, store_outbox_state_t status)
{
    /* Only a message Twilio has (sent, delivered) moves; sent -> delivered
     * -> read is the order of time, failed or undelivered end a sent one.
     * Once delivered, a late failure cannot be true: it is ignored. */
    if (cur != STORE_OUTBOX_SENT && cur != STORE_OUTBOX_DELIVERED)
        return cur;
    switch (status) {
    case STORE_OUTBOX_DELIVERED:   return STORE_OUTBOX_DELIVERED;
    case STORE_OUTBOX_READ:        return STORE_OUTBOX_READ;
    case STORE_OUTBOX_FAILED:
    case STORE_OUTBOX_UNDELIVERED: return cur == STORE_OUTBOX_SENT ? status : cur;
    default:                       return cur;
    }
}

bool store_order_can_move(store_order_status_t from, store_order_status_t to)
{
    if (to == STORE_ORDER_CANCELLED)
        return from == STORE_ORDER_PENDING || from == STORE_ORDER_CONFIRMED;
    /* The forward statuses are declared in their order. */
    return from != STORE_ORDER_CANCELLED && to > from && to <= STORE_ORDER_DELIVERED;
}

void store_make_id(const char *prefix, char *buf, size_t buflen)
{
    static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    uint32_t r;
    if (getrandom(&r, sizeof r, 0) != (ssize_t) sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r = (uint32_t) ts.tv_nsec ^ (uint32_t) ts.tv_sec * 2654435761u;
    }
    char tail[6];
    for (int i = 0; i < 5; i++, r >>= 5)
        tail[i] = alphabet[r & 31];
    tail[5] = '\0';
    snprintf(buf, buflen, "%s-%s", prefix, tail);
}

/* ---- argument checks ------------------------------------------------------ */

static bool s_key_ok(const char *k)
{
    return k && *k && strnlen(k, KEY_MAX + 1) <= KEY_MAX;
}

static bool s_opt_key_ok(const char *k)
{
    return !k || s_key_ok(k);
}

static bool s_waid_ok(const char *w)
{
    if (!w || !*w)
        return false;
    size_t n = 0;
    for (; w[n]; n++)
        if (w[n] < '0' || w[n] > '9' || n >= WAID_MAX)
            return false;
    return true;
}

static bool s_text_ok(const char *s)
{
    return s && *s;
}

static bool s_product_ok(const store_product_t *p)
{
    return s_key_ok(p->sku) && s_text_ok(p->name) && s_text_ok(p->currency)
        && p->price_cents >= 0 && p->stock >= 0 && p->updated_ms >= 0;
}

/* ---- open / close --------------------------------------------------------- */

static int s_fail(char *err, size_t errlen, int rc, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    return rc;
}

static const store_backend_t *s_backend(const char *name, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof s_backends / sizeof *s_backends; i++)
        if (strcmp(s_backends[i]->name, name) == 0)
            return s_backends[i];
    if (err && errlen)
        snprintf(err, errlen, "store backend '%s' is not built in (known: sqlite, dynamodb)", name);
    return NULL;
}

int store_create(const char *backend, const char *data_dir, char *err, size_t errlen)
{
    if (!backend || !s_text_ok(data_dir))
        return s_fail(err, errlen, SOUK_EINVAL, "store_create: backend and data_dir are required");
    const store_backend_t *be = s_backend(backend, err, errlen);
    if (!be)
        return SOUK_EINVAL;
    if (be->create)
        return be->create(data_dir, err, errlen);
    store_t *s = NULL;
    int rc = store_open(backend, data_dir, NULL, &s, err, errlen);
    store_close(&s);
    return rc;
}

int store_batch_begin(store_t *self)
{
    if (!self)
        return SOUK_EINVAL;
    if (self->batch)
        return SOUK_EBUSY;
    int rc = self->be->batch_begin ? self->be->batch_begin(self->impl) : SOUK_OK;
    self->batch = rc == SOUK_OK;
    return rc;
}

int store_batch_end(store_t *self, bool commit)
{
    if (!self || !self->batch)
        return SOUK_EINVAL;
    self->batch = false;
    return self->be->batch_end ? self->be->batch_end(self->impl, commit) : SOUK_OK;
}

int store_ops(const store_t *self, store_ops_t *out)
{
    if (!out)
        return SOUK_EINVAL;
    *out = (store_ops_t) { 0 };
    if (!self)
        return SOUK_EINVAL;
    return self->be->ops ? self->be->ops(self->impl, out) : SOUK_EUNAVAIL;
}

int store_open(const char *backend, const char *data_dir, const store_options_t *opt,
               store_t **out, char *err, size_t errlen)
{
    if (!backend || !s_text_ok(data_dir) || !out)
        return s_fail(err, errlen, SOUK_EINVAL, "store_open: backend, data_dir and out are required");
    store_options_t o = opt ? *opt : (store_options_t) { 0 };
    if (o.cache_kib < 0 || o.cache_kib > 1 << 20 || o.mmap_bytes < 0 || o.busy_timeout_ms < 0
        || o.history_keep < 0 || o.history_keep > HISTORY_KEEP_MAX)
        return s_fail(err, errlen, SOUK_EINVAL, "store_open: option out of range");
    if (!o.cache_kib)
        o.cache_kib = 128;
    if (!o.busy_timeout_ms)
        o.busy_timeout_ms = 5000;
    if (!o.history_keep)
        o.history_keep = 200;

    const store_backend_t *be = s_backend(backend, err, errlen);
    if (!be)
        return SOUK_EINVAL;
    store_t *self = calloc(1, sizeof *self);
    if (!self)
        return s_fail(err, errlen, SOUK_ENOMEM, "store_open: out of memory");
    int rc = be->open(data_dir, &o, &self->impl, err, errlen);
    if (rc != SOUK_OK) {
        free(self);
        return rc;
    }
    self->be = be;
    self->history_keep = o.history_keep;
    *out = self;
    return SOUK_OK;
}

void store_close(store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    store_t *self = *self_p;
    self->be->close(self->impl);
    free(self);
    *self_p = NULL;
}

const char *store_last_error(const store_t *self)
{
    return self ? self->be->last_error(self->impl) : "no store";
}

/* ---- row structs ----------------------------------------------------------- */

#define CLEAR(p, ...)                                                        \
    do {                                                                     \
        if (!(p))                                                            \
            return;                                                          \
        char **fields_[] = { __VA_ARGS__ };                                  \
        for (size_t i_ = 0; i_ < sizeof fields_ / sizeof *fields_; i_++)     \
            free(*fields_[i_]);                                              \
        memset((p), 0, sizeof *(p));                                         \
    } while (0)

void store_user_clear(store_user_t *u)
{
    CLEAR(u, &u->waid, &u->profile_name, &u->from_addr, &u->last_media);
}

void store_inbound_clear(store_inbound_t *m)
{
    CLEAR(m, &m->msg_sid, &m->waid, &m->body, &m->media, &m->params, &m->turn_sid);
}

void store_history_clear(store_history_t *h)
{
    CLEAR(h, &h->waid, &h->msg_sid, &h->text);
}

void store_outbox_clear(store_outbox_t *o)
{
    CLEAR(o, &o->key, &o->waid, &o->to_addr, &o->body, &o->twilio_sid, &o->error_reason);
}

void store_product_clear(store_product_t *p)
{
    CLEAR(p, &p->sku, &p->name, &p->description, &p->currency, &p->category, &p->image_url,
          &p->brand, &p->tags, &p->attrs);
}

void store_order_clear(store_order_t *o)
{
    CLEAR(o, &o->order_id, &o->waid, &o->items, &o->currency, &o->note, &o->idem_key);
}

void store_ticket_clear(store_ticket_t *t)
{
    CLEAR(t, &t->ticket_id, &t->waid, &t->subject, &t->message, &t->order_id, &t->idem_key);
}

/* ---- dispatch ---------------------------------------------------------------
 * Each function: reject what is invalid, then call the backend. */

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond))                                                         \
            return SOUK_EINVAL;                                              \
    } while (0)

int store_user_seen(store_t *self, const store_user_seen_t *seen)
{
    CHECK(self && seen && s_waid_ok(seen->waid) && seen->now_ms >= 0);
    return self->be->user_seen(self->impl, seen);
}

int store_user_get(store_t *self, const char *waid, store_user_t *out)
{
    CHECK(self && s_waid_ok(waid) && out);
    return self->be->user_get(self->impl, waid, out);
}

int store_user_set_opt_out(store_t *self, const char *waid, bool opted_out, int64_t now_ms)
{
    CHECK(self && s_waid_ok(waid) && now_ms >= 0);
    return self->be->user_set_opt_out(self->impl, waid, opted_out, now_ms);
}

int store_inbound_put(store_t *self, const store_inbound_t *in)
{
    CHECK(self && in && s_key_ok(in->msg_sid) && s_waid_ok(in->waid) && in->received_ms >= 0);
    return self->be->inbound_put(self->impl, in);
}

int store_inbound_get(store_t *self, const char *msg_sid, store_inbound_t *out)
{
    CHECK(self && s_key_ok(msg_sid) && out);
    return self->be->inbound_get(self->impl, msg_sid, out);
}

int store_inbound_finish(store_t *self, const char *msg_sid, store_inbound_state_t to,
                         const char *turn_sid)
{
    CHECK(self && s_key_ok(msg_sid) && s_opt_key_ok(turn_sid)
          && (to == STORE_INBOUND_DONE || to == STORE_INBOUND_MERGED));
    return self->be->inbound_finish(self->impl, msg_sid, to, turn_sid);
}

int store_inbound_pending(store_t *self, const char *waid, store_inbound_cb cb, void *arg)
{
    CHECK(self && s_waid_ok(waid) && cb);
    return self->be->inbound_pending(self->impl, waid, cb, arg);
}

int store_inbound_stale(store_t *self, int64_t before_ms, int limit, store_waid_cb cb, void *arg)
{
    CHECK(self && before_ms >= 0 && limit >= 1 && limit <= DUE_LIMIT_MAX && cb);
    if (!self->be->inbound_stale)
        return SOUK_EUNAVAIL;
    return self->be->inbound_stale(self->impl, before_ms, limit, cb, arg);
}

int store_history_append(store_t *self, const store_history_t *h)
{
    CHECK(self && h && s_waid_ok(h->waid) && VALID_ENUM(h->dir, store_dir)
          && s_opt_key_ok(h->msg_sid) && h->text && h->ts_ms >= 0);
    return self->be->history_append(self->impl, h);
}

int store_history_recent(store_t *self, const char *waid, int n, store_history_cb cb, void *arg)
{
    CHECK(self && s_waid_ok(waid) && n >= 1 && cb);
    if (n > self->history_keep)
        n = self->history_keep;
    return self->be->history_recent(self->impl, waid, n, cb, arg);
}

int store_outbox_put(store_t *self, const store_outbox_t *o, store_outbox_t *existing)
{
    CHECK(self && o && s_key_ok(o->key) && s_text_ok(o->body));
    CHECK(o->waid ? s_waid_ok(o->waid) : s_text_ok(o->to_addr));
    CHECK(VALID_ENUM(o->kind, store_outbox_kind));
    CHECK(o->state == STORE_OUTBOX_OFFERED || o->state == STORE_OUTBOX_QUEUED);
    CHECK(o->next_attempt_ms >= 0 && o->created_ms >= 0);
    return self->be->outbox_put(self->impl, o, existing);
}

int store_outbox_get(store_t *self, const char *key, store_outbox_t *out)
{
    CHECK(self && s_key_ok(key) && out);
    return self->be->outbox_get(self->impl, key, out);
}

int store_outbox_get_by_sid(store_t *self, const char *twilio_sid, store_outbox_t *out)
{
    CHECK(self && s_key_ok(twilio_sid) && out);
    return self->be->outbox_get_by_sid(self->impl, twilio_sid, out);
}

int store_outbox_transition(store_t *self, const char *key, store_outbox_state_t expected,
                            store_outbox_state_t to, const store_outbox_change_t *change,
                            store_outbox_t *out)
{
    CHECK(self && s_key_ok(key) && VALID_ENUM(expected, store_outbox_state)
          && VALID_ENUM(to, store_outbox_state));
    CHECK(!change || (s_opt_key_ok(change->twilio_sid) && change->next_attempt_ms >= 0
                      && change->now_ms >= 0));
    if (!store_outbox_can_move(expected, to))
        return SOUK_ESTATE;
    return self->be->outbox_transition(self->impl, key, expected, to, change, out);
}

int store_outbox_due(store_t *self, store_outbox_state_t state, int64_t now_ms, int limit,
                     store_outbox_cb cb, void *arg)
{
    CHECK(self && (state == STORE_OUTBOX_QUEUED || state == STORE_OUTBOX_SENDING) && cb);
    CHECK(limit >= 1 && limit <= DUE_LIMIT_MAX);
    return self->be->outbox_due(self->impl, state, now_ms, limit, cb, arg);
}

int store_outbox_count(store_t *self, int64_t counts[STORE_OUTBOX_STATES])
{
    CHECK(self && counts);
    memset(counts, 0, sizeof(int64_t) * STORE_OUTBOX_STATES);
    if (!self->be->outbox_count)
        return SOUK_EUNAVAIL;
    return self->be->outbox_count(self->impl, counts);
}

int store_outbox_offered(store_t *self, const char *waid, store_outbox_cb cb, void *arg)
{
    CHECK(self && s_waid_ok(waid) && cb);
    return self->be->outbox_offered(self->impl, waid, cb, arg);
}

int store_outbox_list_all(store_t *self, store_outbox_cb cb, void *arg)
{
    CHECK(self && cb);
    if (!self->be->outbox_list)
        return SOUK_EUNAVAIL;
    return self->be->outbox_list(self->impl, cb, arg);
}

int store_delivery_update(store_t *self, const char *twilio_sid, store_outbox_state_t status,
                          int error_code, int64_t ts_ms, store_outbox_state_t *state)
{
    CHECK(self && s_key_ok(twilio_sid) && ts_ms >= 0);
    CHECK(status == STORE_OUTBOX_QUEUED || status == STORE_OUTBOX_SENDING
          || status == STORE_OUTBOX_SENT || status == STORE_OUTBOX_DELIVERED
          || status == STORE_OUTBOX_READ || status == STORE_OUTBOX_FAILED
          || status == STORE_OUTBOX_UNDELIVERED);
    return self->be->delivery_update(self->impl, twilio_sid, status, error_code, ts_ms, state);
}

int store_user_state_get(store_t *self, const char *waid, char **json)
{
    CHECK(self && s_waid_ok(waid) && json);
    return self->be->user_state_get(self->impl, waid, json);
}

int store_user_state_put(store_t *self, const char *waid, const char *json, int64_t now_ms)
{
    CHECK(self && s_waid_ok(waid) && s_text_ok(json) && now_ms >= 0
          && strnlen(json, STORE_USER_STATE_MAX + 1) <= STORE_USER_STATE_MAX);
    return self->be->user_state_put(self->impl, waid, json, now_ms);
}

int store_idem_get(store_t *self, const char *key, char **result_json)
{
    CHECK(self && s_key_ok(key) && result_json);
    return self->be->idem_get(self->impl, key, result_json);
}

int store_idem_put(store_t *self, const char *key, const char *result_json, int64_t now_ms,
                   char **stored_json)
{
    CHECK(self && s_key_ok(key) && result_json && now_ms >= 0);
    return self->be->idem_put(self->impl, key, result_json, now_ms, stored_json);
}

int store_product_upsert(store_t *self, const store_product_t *rows, size_t n, size_t *bad)
{
    CHECK(self && rows && n >= 1);
    for (size_t i = 0; i < n; i++)
        if (!s_product_ok(&rows[i])) {
            if (bad)
                *bad = i;
            return SOUK_EINVAL;
        }
    return self->be->product_upsert(self->impl, rows, n, bad);
}

int store_product_get(store_t *self, const char *sku, store_product_t *out)
{
    CHECK(self && s_key_ok(sku) && out);
    return self->be->product_get(self->impl, sku, out);
}

int store_product_each(store_t *self, store_product_cb cb, void *arg)
{
    CHECK(self && cb);
    return self->be->product_each(self->impl, cb, arg);
}

int store_product_count(store_t *self, int64_t *count)
{
    CHECK(self && count);
    return self->be->product_count(self->impl, count);
}

int store_product_take(store_t *self, const char *sku, int64_t qty)
{
    CHECK(self && s_key_ok(sku) && qty >= 1 && qty <= STOCK_QTY_MAX);
    return self->be->product_take(self->impl, sku, qty);
}

int store_product_give(store_t *self, const char *sku, int64_t qty)
{
    CHECK(self && s_key_ok(sku) && qty >= 1 && qty <= STOCK_QTY_MAX);
    return self->be->product_give(self->impl, sku, qty);
}

int store_order_put(store_t *self, const store_order_t *o, store_order_t *out)
{
    CHECK(self && o && s_opt_key_ok(o->order_id) && s_waid_ok(o->waid) && s_text_ok(o->items));
    CHECK(o->total_cents >= 0 && s_text_ok(o->currency) && s_key_ok(o->idem_key));
    CHECK(VALID_ENUM(o->status, store_order_status) && o->created_ms >= 0);
    return self->be->order_put(self->impl, o, out);
}

int store_order_place(store_t *self, const store_order_request_t *req, store_order_t *out,
                      size_t *bad_line)
{
    CHECK(self && req && s_waid_ok(req->waid) && s_key_ok(req->idem_key) && req->now_ms >= 0);
    CHECK(req->lines && req->n_lines >= 1 && req->n_lines <= LINES_MAX);
    for (size_t i = 0; i < req->n_lines; i++) {
        const store_order_line_t *l = &req->lines[i];
        if (!s_key_ok(l->sku) || l->qty < 1 || l->qty > LINE_QTY_MAX) {
            if (bad_line)
                *bad_line = i;
            return SOUK_EINVAL;
        }
    }
    return self->be->order_place(self->impl, req, out, bad_line);
}

int store_order_get(store_t *self, const char *order_id, const char *waid, store_order_t *out)
{
    CHECK(self && s_key_ok(order_id) && s_waid_ok(waid) && out);
    return self->be->order_get(self->impl, order_id, waid, out);
}

int store_order_lookup(store_t *self, const char *order_id, store_order_t *out)
{
    CHECK(self && s_key_ok(order_id) && out);
    return self->be->order_get(self->impl, order_id, NULL, out);
}

int store_order_transition(store_t *self, const char *order_id, const char *waid,
                           store_order_status_t to, int64_t now_ms, store_order_t *out)
{
    CHECK(self && s_key_ok(order_id) && s_waid_ok(waid) && now_ms >= 0);
    CHECK(VALID_ENUM(to, store_order_status));
    return self->be->order_transition(self->impl, order_id, waid, to, now_ms, out);
}

int store_order_list_user(store_t *self, const char *waid, store_order_cb cb, void *arg)
{
    CHECK(self && s_waid_ok(waid) && cb);
    return self->be->order_list(self->impl, waid, cb, arg);
}

int store_order_list_all(store_t *self, store_order_cb cb, void *arg)
{
    CHECK(self && cb);
    return self->be->order_list(self->impl, NULL, cb, arg);
}

int store_ticket_put(store_t *self, const store_ticket_t *t, store_ticket_t *out)
{
    CHECK(self && t && s_opt_key_ok(t->ticket_id) && s_waid_ok(t->waid));
    CHECK(s_text_ok(t->subject) && t->message && s_opt_key_ok(t->order_id));
    CHECK(s_key_ok(t->idem_key) && t->created_ms >= 0);
    return self->be->ticket_put(self->impl, t, out);
}

int store_ticket_get(store_t *self, const char *ticket_id, const char *waid, store_ticket_t *out)
{
    CHECK(self && s_key_ok(ticket_id) && s_waid_ok(waid) && out);
    return self->be->ticket_get(self->impl, ticket_id, waid, out);
}

int store_ticket_close(store_t *self, const char *ticket_id, const char *waid, int64_t now_ms)
{
    CHECK(self && s_key_ok(ticket_id) && s_waid_ok(waid) && now_ms >= 0);
    return self->be->ticket_close(self->impl, ticket_id, waid, now_ms);
}

int store_ticket_list_user(store_t *self, const char *waid, store_ticket_cb cb, void *arg)
{
    CHECK(self && s_waid_ok(waid) && cb);
    return self->be->ticket_list(self->impl, waid, cb, arg);
}

int store_ticket_list_all(store_t *self, store_ticket_cb cb, void *arg)
{
    CHECK(self && cb);
    return self->be->ticket_list(self->impl, NULL, cb, arg);
}

int store_lease_acquire(store_t *self, const char *name, const char *owner, int64_t ttl_ms,
                        int64_t now_ms)
{
    CHECK(self && s_key_ok(name) && s_key_ok(owner) && ttl_ms >= 1 && now_ms >= 0);
    return self->be->lease_acquire(self->impl, name, owner, ttl_ms, now_ms);
}

int store_lease_release(store_t *self, const char *name, const char *owner)
{
    CHECK(self && s_key_ok(name) && s_key_ok(owner));
    return self->be->lease_release(self->impl, name, owner);
}
