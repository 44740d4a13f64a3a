/* The dialog state: what the agent showed and what waits for an answer,
 * kept by the session between turns as a small JSON document (a few KB at
 * most: every list and string in it is bounded).
 *
 * The document also carries the turn that wrote it and the state that turn
 * started from ("prev"): a turn run again after a crash, whose new state
 * was already saved, starts from the same place as the first time and so
 * makes the same decisions, the same tool keys and the same reply. */
#include "agent_internal.h"

#include <stdlib.h>
#include <string.h>

#define STATE_VERSION 1

void ag_copy(char *dst, size_t cap, const char *src)
{
    if (!cap)
        return;
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char) src[n] & 0xC0) == 0x80)
            n--;
    }
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

void ag_state_init(ag_state_t *st)
{
    memset(st, 0, sizeof *st);
}

bool ag_pending_live(const ag_state_t *st, int64_t now_ms)
{
    if (st->pending.kind == AG_PENDING_NONE)
        return false;
    return now_ms <= 0 || st->pending.since_ms <= 0
        || now_ms - st->pending.since_ms <= AGENT_PENDING_TTL_MS;
}

void ag_state_show(ag_state_t *st, const ag_product_t *items, int n, const char *query,
                   int64_t max_cents)
{
    if (n > AGENT_LIST_MAX)
        n = AGENT_LIST_MAX;
    memmove(st->shown, items, (size_t) n * sizeof *items);
    st->n_shown = n;
    ag_copy(st->query, sizeof st->query, query ? query : "");
    st->query_max_cents = max_cents;
    st->query_score = 0.f;
    /* "it" is the product of a one-item list, and nothing of a longer one */
    st->has_focus = n == 1;
    if (n == 1)
        st->focus = items[0];
}

/* ---- JSON ------------------------------------------------------------------ */

static const char *const s_pending_names[] = { "", "order", "cancel", "offer" };

static json_t *s_product_json(const ag_product_t *p)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:b}", "sku", p->sku, "name", p->name, "cents",
                     (json_int_t) p->price_cents, "cur", p->currency, "stock", p->in_stock);
}

static bool s_product_read(const json_t *o, ag_product_t *p)
{
    const char *sku = json_string_value(json_object_get(o, "sku"));
    const char *name = json_string_value(json_object_get(o, "name"));
    const char *cur = json_string_value(json_object_get(o, "cur"));
    json_t *cents = json_object_get(o, "cents");
    if (!sku || !*sku || !name || !cur || !json_is_integer(cents) || json_integer_value(cents) < 0)
        return false;
    memset(p, 0, sizeof *p);
    ag_copy(p->sku, sizeof p->sku, sku);
    ag_copy(p->name, sizeof p->name, name);
    ag_copy(p->currency, sizeof p->currency, cur);
    p->price_cents = json_integer_value(cents);
    p->in_stock = json_is_true(json_object_get(o, "stock"));
    return true;
}

json_t *ag_state_to_json(const ag_state_t *st)
{
    json_t *o = json_pack("{s:i, s:i}", "v", STATE_VERSION, "turns", st->turns);
    if (!o)
        return NULL;
    if (st->n_shown) {
        json_t *a = json_array();
        for (int i = 0; i < st->n_shown; i++)
            json_array_append_new(a, s_product_json(&st->shown[i]));
        json_object_set_new(o, "shown", a);
    }
    if (st->query[0])
        json_object_set_new(o, "query", json_string(st->query));
    if (st->query_max_cents > 0)
        json_object_set_new(o, "query_max", json_integer(st->query_max_cents));
    if (st->query_score > 0.f)
        json_object_set_new(o, "query_score", json_real(st->query_score));
    if (st->has_focus)
        json_object_set_new(o, "focus", s_product_json(&st->focus));
    const ag_pending_t *pd = &st->pending;
    if (pd->kind != AG_PENDING_NONE) {
        json_t *p = json_pack("{s:s, s:s, s:I}", "kind", s_pending_names[pd->kind], "key",
                              pd->key_turn, "since", (json_int_t) pd->since_ms);
        if (pd->n_lines) {
            json_t *a = json_array();
            for (int i = 0; i < pd->n_lines; i++) {
                json_t *l = s_product_json(&pd->lines[i].p);
                json_object_set_new(l, "qty", json_integer(pd->lines[i].qty));
                json_array_append_new(a, l);
            }
            json_object_set_new(p, "lines", a);
        }
        if (pd->order_id[0])
            json_object_set_new(p, "order_id", json_string(pd->order_id));
        json_object_set_new(o, "pending", p);
    }
    if (st->want_qty)
        json_object_set_new(o, "want_qty", json_integer(st->want_qty));
    if (st->last_order[0])
        json_object_set_new(o, "last_order", json_string(st->last_order));
    if (st->clarify_streak)
        json_object_set_new(o, "clarify_streak", json_integer(st->clarify_streak));
    return o;
}

static int s_int(const json_t *o, const char *key, int lo, int hi)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        return 0;
    json_int_t n = json_integer_value(v);
    return n < lo ? lo : n > hi ? hi : (int) n;
}

static void s_pending_from_json(ag_pending_t *pd, const json_t *p)
{
    const char *kind = json_string_value(json_object_get(p, "kind"));
    const char *key = json_string_value(json_object_get(p, "key"));
    int k = 0;
    for (int i = 1; kind && i < (int) (sizeof s_pending_names / sizeof *s_pending_names); i++)
        if (strcmp(kind, s_pending_names[i]) == 0)
            k = i;
    if (!k || !key || !*key)
        return;
    ag_pending_t r = { .kind = (ag_pending_kind_t) k };
    ag_copy(r.key_turn, sizeof r.key_turn, key);
    json_t *since = json_object_get(p, "since");
    r.since_ms = json_is_integer(since) ? json_integer_value(since) : 0;
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(p, "lines"), i, l) {
        if (r.n_lines == AG_LINES_MAX)
            break;
        ag_line_t *line = &r.lines[r.n_lines];
        line->qty = s_int(l, "qty", 0, 100000);
        if (line->qty > 0 && s_product_read(l, &line->p))
            r.n_lines++;
    }
    ag_copy(r.order_id, sizeof r.order_id, json_string_value(json_object_get(p, "order_id")));
    bool ok = (r.kind == AG_PENDING_ORDER && r.n_lines > 0)
           || (r.kind == AG_PENDING_CANCEL && r.order_id[0]) || r.kind == AG_PENDING_OFFER;
    if (ok)
        *pd = r;
}

void ag_state_from_json(ag_state_t *st, const json_t *o)
{
    ag_state_init(st);
    if (!json_is_object(o) || s_int(o, "v", 0, 1000) != STATE_VERSION)
        return;
    st->turns = s_int(o, "turns", 0, 1 << 30);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(o, "shown"), i, v) {
        if (st->n_shown == AGENT_LIST_MAX)
            break;
        if (s_product_read(v, &st->shown[st->n_shown]))
            st->n_shown++;
    }
    ag_copy(st->query, sizeof st->query, json_string_value(json_object_get(o, "query")));
    json_t *max = json_object_get(o, "query_max");
    st->query_max_cents = json_is_integer(max) && json_integer_value(max) > 0
                        ? json_integer_value(max) : 0;
    json_t *score = json_object_get(o, "query_score");
    st->query_score = json_is_number(score) && json_number_value(score) > 0
                    && json_number_value(score) < 10 ? (float) json_number_value(score) : 0.f;
    st->has_focus = s_product_read(json_object_get(o, "focus"), &st->focus);
    s_pending_from_json(&st->pending, json_object_get(o, "pending"));
    if (st->pending.kind == AG_PENDING_OFFER && !st->has_focus)
        st->pending.kind = AG_PENDING_NONE;
    st->want_qty = s_int(o, "want_qty", 0, 100000);
    ag_copy(st->last_order, sizeof st->last_order,
            json_string_value(json_object_get(o, "last_order")));
    st->clarify_streak = s_int(o, "clarify_streak", 0, 100);
}

void ag_state_load(ag_state_t *st, const char *state_json, const char *turn_id)
{
    ag_state_init(st);
    if (!state_json)
        return;
    json_t *o = json_loads(state_json, JSON_REJECT_DUPLICATES, NULL);
    const char *turn = json_string_value(json_object_get(o, "turn"));
    json_t *from = o;
    if (turn && turn_id && strcmp(turn, turn_id) == 0)
        from = json_object_get(o, "prev");  /* null: the turn started a conversation */
    ag_state_from_json(st, from);
    json_decref(o);
}

char *ag_state_save(const ag_state_t *st, const char *state_json_in, const char *turn_id)
{
    json_t *o = ag_state_to_json(st);
    if (!o)
        return NULL;
    json_object_set_new(o, "turn", json_string(turn_id));
    /* The state this turn started from, one level deep: a re-run of this
     * turn finds it here (a re-run's input is this very document). */
    json_t *in = state_json_in ? json_loads(state_json_in, JSON_REJECT_DUPLICATES, NULL) : NULL;
    json_t *prev = NULL;
    if (json_is_object(in)) {
        const char *turn = json_string_value(json_object_get(in, "turn"));
        if (turn && turn_id && strcmp(turn, turn_id) == 0)
            prev = json_incref(json_object_get(in, "prev"));
        else {
            prev = json_incref(in);
            json_object_del(prev, "prev");
        }
    }
    json_object_set_new(o, "prev", prev ? prev : json_null());
    json_decref(in);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}
