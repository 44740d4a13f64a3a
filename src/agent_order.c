/* Ordering: from what the customer picked to a confirmation naming the
 * exact items and total (prices fresh from get_product), changes of mind,
 * and placing the order on YES with the confirmation's own key — so one
 * confirmation is at most one order, however often YES arrives.
 * Out of stock is said plainly, with alternatives, at both points. */
#include "agent_internal.h"

#include "souk/error.h"

#include <stdio.h>
#include <string.h>

/* place_order's schema: 1..100 of each item. */
#define QTY_MAX 100

static int64_t s_total(const ag_line_t *lines, int n)
{
    int64_t sum = 0;
    for (int i = 0; i < n; i++)
        sum += lines[i].p.price_cents * lines[i].qty;
    return sum;
}

void ag_confirmation_text(ag_turn_t *t)
{
    const ag_pending_t *pd = &t->st.pending;
    ag_text_t *o = &t->out;
    const char *cur = pd->lines[0].p.currency;
    ag_text_add(o, "Please confirm your order:\n");
    if (pd->n_lines == 1) {
        ag_text_printf(o, "%d \u00d7 ", pd->lines[0].qty);
        ag_text_bold(o, pd->lines[0].p.name);
        ag_text_add(o, " = ");
        ag_text_money(o, s_total(pd->lines, 1), cur);
        ag_text_add(o, "\n");
    } else {
        for (int i = 0; i < pd->n_lines; i++) {
            ag_text_printf(o, "%d. %d \u00d7 ", i + 1, pd->lines[i].qty);
            ag_text_bold(o, pd->lines[i].p.name);
            ag_text_add(o, " \u2014 ");
            ag_text_money(o, s_total(&pd->lines[i], 1), cur);
            ag_text_add(o, "\n");
        }
        ag_text_add(o, "Total: *");
        ag_text_money(o, s_total(pd->lines, pd->n_lines), cur);
        ag_text_add(o, "*\n");
    }
    ag_text_add(o, "Reply YES to confirm or NO to cancel.");
}

static void s_new_pending(ag_turn_t *t)
{
    ag_pending_t *pd = &t->st.pending;
    pd->kind = AG_PENDING_ORDER;
    pd->order_id[0] = '\0';
    pd->since_ms = t->in->now_ms;
    ag_copy(pd->key_turn, sizeof pd->key_turn, t->in->turn_id);
    t->st.want_qty = 0;
}

typedef enum { LINE_OK, LINE_SHORT, LINE_GONE, LINE_TROUBLE } s_line_t;

/* Looks at one product for qty with fresh data (no text). */
static s_line_t s_fetch_line(ag_turn_t *t, const ag_product_t *p, int qty, ag_detail_t *d)
{
    int rc = ag_get_product(t, p->sku, d);
    if (rc == SOUK_ENOTFOUND) {
        d->p = *p;
        d->stock = 0;
        return LINE_GONE;
    }
    if (rc != SOUK_OK)
        return LINE_TROUBLE;
    return d->stock <= 0 ? LINE_GONE : d->stock < qty ? LINE_SHORT : LINE_OK;
}

/* Says what is wrong with a line, offering what can be done instead. */
static void s_say_line(ag_turn_t *t, s_line_t why, const ag_detail_t *d)
{
    switch (why) {
    case LINE_GONE:
        ag_text_add(&t->out, "Sorry, ");
        ag_text_bold(&t->out, d->p.name);
        ag_text_add(&t->out, " is out of stock right now.\n");
        ag_offer_alternatives(t, &d->p);
        break;
    case LINE_SHORT:
        ag_text_printf(&t->out, "Sorry, I only have %lld \u00d7 ", (long long) d->stock);
        ag_text_bold(&t->out, d->p.name);
        ag_text_printf(&t->out, " left. Reply with a quantity up to %lld.", (long long) d->stock);
        t->st.focus = d->p;
        t->st.has_focus = true;
        t->st.pending = (ag_pending_t) { .kind = AG_PENDING_OFFER, .since_ms = t->in->now_ms };
        ag_copy(t->st.pending.key_turn, sizeof t->st.pending.key_turn, t->in->turn_id);
        break;
    case LINE_TROUBLE:
        ag_text_add(&t->out, "Sorry, I can't reach the shop's system right now. Please try again "
                             "in a moment.");
        break;
    case LINE_OK:
        break;
    }
}

/* Checks one product for qty against fresh data; on a problem says so.
 * *line gets the product as get_product has it now. */
static s_line_t s_check_line(ag_turn_t *t, const ag_product_t *p, int qty, ag_line_t *line)
{
    ag_detail_t d;
    s_line_t why = s_fetch_line(t, p, qty, &d);
    if (why != LINE_OK)
        s_say_line(t, why, &d);
    else
        *line = (ag_line_t) { .p = d.p, .qty = qty };
    return why;
}

/* Adds line to lines (n of them, room for AG_LINES_MAX), merging a repeat
 * of the same product. False when full. */
static bool s_add_line(ag_line_t *lines, int *n, const ag_line_t *line)
{
    for (int i = 0; i < *n; i++)
        if (strcmp(lines[i].p.sku, line->p.sku) == 0) {
            lines[i].qty += line->qty;
            lines[i].p = line->p;
            return true;
        }
    if (*n == AG_LINES_MAX)
        return false;
    lines[(*n)++] = *line;
    return true;
}

static void s_nothing_to_order(ag_turn_t *t)
{
    if (t->rd.slots.confirm == NLU_CONFIRM_YES)
        ag_text_add(&t->out, "There's nothing waiting for your confirmation right now. ");
    if (t->st.n_shown) {
        ag_text_add(&t->out, "Which one would you like?\n");
        ag_text_products(&t->out, t->st.shown, t->st.n_shown);
        ag_text_add(&t->out, "\nReply e.g. \u201c#2\u201d or \u201c2 of #1\u201d.");
    } else
        ag_text_add(&t->out, "What would you like to order? Tell me the product, e.g. "
                             "\u201c2 mascaras\u201d.");
}

/* Resolves one part to a product; on failure says why (showing the
 * candidates when several fit) and returns false. */
static bool s_part_product(ag_turn_t *t, const ag_part_t *part, int qty, ag_product_t *p)
{
    bool ambiguous = false;
    if (ag_resolve(t, part->ref, part->ref_index, part->query, p, &ambiguous))
        return true;
    if (ambiguous) {
        ag_text_add(&t->out, "Which one do you mean?\n");
        ag_text_products(&t->out, t->st.shown, t->st.n_shown);
        ag_text_add(&t->out, "\nReply e.g. \u201c#2\u201d.");
        t->st.want_qty = qty;
        t->st.has_focus = false;
        return false;
    }
    if (part->ref == NLU_REF_INDEX && t->st.n_shown)
        ag_text_printf(&t->out, "I only showed %d item%s \u2014 which one do you mean? Reply "
                                "e.g. \u201c#1\u201d.",
                       t->st.n_shown, t->st.n_shown == 1 ? "" : "s");
    else if (part->ref != NLU_REF_NONE && part->ref != NLU_REF_DESCRIBED)
        ag_text_add(&t->out, "Which product do you mean? Tell me what you're looking for, "
                             "e.g. \u201cred lipstick\u201d.");
    else {
        char q[NLU_QUERY_MAX];
        ag_copy(q, sizeof q, part->query);
        for (char *c = q; *c; c++)
            if (*c == '*' || *c == '_' || *c == '~')
                *c = ' ';
        ag_text_printf(&t->out, "Sorry, I couldn't find \u201c%s\u201d in our shop, so I "
                                "haven't added it. Try other words, or ask me to search.", q);
    }
    return false;
}

void ag_do_order(ag_turn_t *t)
{
    ag_state_t *st = &t->st;
    const ag_read_t *rd = &t->rd;
    bool single = rd->n_parts == 1;
    const ag_part_t *p0 = &rd->parts[0];

    /* "yes" / "2" to "Want it?" (details, a one-item list, short stock):
     * the product in focus */
    ag_part_t focus_part = { 0 };
    if (single && p0->ref == NLU_REF_NONE && !p0->query[0]) {
        bool offered = st->pending.kind == AG_PENDING_OFFER && st->has_focus;
        if (!offered || (rd->slots.confirm != NLU_CONFIRM_YES && !rd->bare_qty)) {
            if (rd->bare_qty && st->want_qty)   /* "which one?" is still open */
                st->want_qty = p0->qty;
            s_nothing_to_order(t);
            return;
        }
        focus_part = (ag_part_t) { .qty = p0->qty, .ref = NLU_REF_THAT };
        p0 = &focus_part;
    }

    bool adding = rd->add && st->pending.kind == AG_PENDING_ORDER;
    ag_line_t lines[AG_LINES_MAX];
    int n = 0;
    if (adding) {
        n = st->pending.n_lines;
        memcpy(lines, st->pending.lines, sizeof lines);
    }
    for (int i = 0; i < rd->n_parts; i++) {
        const ag_part_t *part = i == 0 ? p0 : &rd->parts[i];
        int qty = part->qty > 0 ? part->qty : single && st->want_qty ? st->want_qty : 1;
        ag_product_t p;
        ag_line_t line;
        if (!s_part_product(t, part, qty, &p))
            return;
        if (qty > QTY_MAX) {
            ag_text_printf(&t->out, "I can take at most %d \u00d7 ", QTY_MAX);
            ag_text_bold(&t->out, p.name);
            ag_text_printf(&t->out, " in one order. Reply with a quantity up to %d.", QTY_MAX);
            st->focus = p;
            st->has_focus = true;
            st->pending = (ag_pending_t) { .kind = AG_PENDING_OFFER, .since_ms = t->in->now_ms };
            ag_copy(st->pending.key_turn, sizeof st->pending.key_turn, t->in->turn_id);
            return;
        }
        if (s_check_line(t, &p, qty, &line) != LINE_OK)
            return;
        if (!s_add_line(lines, &n, &line)) {
            ag_text_printf(&t->out, "I can take at most %d different items in one order.",
                           AG_LINES_MAX);
            return;
        }
        if (lines[0].p.currency[0] && strcmp(line.p.currency, lines[0].p.currency) != 0) {
            ag_text_add(&t->out, "These items are priced in different currencies: please order "
                                 "them separately.");
            return;
        }
    }
    memcpy(st->pending.lines, lines, sizeof lines);
    st->pending.n_lines = n;
    s_new_pending(t);
    st->focus = lines[n - 1].p;
    st->has_focus = true;
    if (adding)
        ag_text_add(&t->out, "Added. ");
    ag_confirmation_text(t);
}

/* "actually make it three": the pending order with a new quantity. */
void ag_do_change(ag_turn_t *t)
{
    ag_pending_t *pd = &t->st.pending;
    int qty = t->rd.slots.quantity;
    if (qty > QTY_MAX) {
        ag_text_printf(&t->out, "I can take at most %d of one item in an order.\n", QTY_MAX);
        ag_confirmation_text(t);
        return;
    }
    /* which line: the one the words name, else the last one added */
    int which = pd->n_lines - 1;
    for (int i = 0; t->rd.slots.query[0] && i < pd->n_lines; i++)
        if (ag_name_match(pd->lines[i].p.name, t->rd.slots.query))
            which = i;
    ag_pending_t before = *pd;
    ag_line_t fresh;
    s_line_t why = s_check_line(t, &before.lines[which].p, qty, &fresh);
    if (why == LINE_SHORT || why == LINE_TROUBLE) {
        t->st.pending = before;     /* the confirmation given still stands */
        ag_text_add(&t->out, "\n\n");
        ag_confirmation_text(t);
        return;
    }
    if (why == LINE_GONE) {
        pd->kind = AG_PENDING_NONE;
        return;
    }
    pd->lines[which] = fresh;
    s_new_pending(t);
    ag_text_add(&t->out, "Updated. ");
    ag_confirmation_text(t);
}

/* place_order failed with rc. The stock is looked at again whatever rc
 * says (a tool pool that lost the code says little), so a short line is
 * always named; only a failure with no visible cause keeps the
 * confirmation, whose key makes YES again safe. */
static void s_place_failed(ag_turn_t *t, int rc)
{
    ag_pending_t *pd = &t->st.pending;
    if (rc == SOUK_EINVAL || rc == SOUK_EFORBIDDEN) {
        ag_text_add(&t->out, "Sorry, I couldn't place this order, and nothing was ordered. "
                             "Please order again, or reply \u201chuman\u201d for help.");
        pd->kind = AG_PENDING_NONE;
        return;
    }
    ag_pending_t was = *pd;
    for (int i = 0; i < was.n_lines; i++) {
        ag_detail_t d;
        s_line_t why = s_fetch_line(t, &was.lines[i].p, was.lines[i].qty, &d);
        if (why == LINE_GONE || why == LINE_SHORT) {
            pd->kind = AG_PENDING_NONE;
            ag_text_add(&t->out, "Nothing was ordered. ");
            s_say_line(t, why, &d);
            return;
        }
    }
    if (rc == SOUK_ESTOCK || rc == SOUK_ENOTFOUND) {
        pd->kind = AG_PENDING_NONE;
        ag_text_add(&t->out, "Nothing was ordered: the stock changed while you were deciding. "
                             "Please order again.");
        return;
    }
    ag_text_add(&t->out, "Sorry, I couldn't reach the shop's system just now. Reply YES again "
                         "in a moment to place the order \u2014 it will only be placed once.");
}

static void s_cancelled(ag_turn_t *t, const ag_order_t *o)
{
    t->changed = true;
    ag_copy(t->st.last_order, sizeof t->st.last_order, o->id);
    t->st.pending.kind = AG_PENDING_NONE;
    ag_text_add(&t->out, "\u2705 Order ");
    ag_text_bold(&t->out, o->id);
    ag_text_add(&t->out, " is cancelled. Anything else I can help with?");
}

/* cancel_order failed with rc: the order as it is now tells why. */
static void s_cancel_failed(ag_turn_t *t, int rc)
{
    ag_pending_t *pd = &t->st.pending;
    ag_order_t o;
    int got = rc == SOUK_ENOTFOUND ? rc : ag_get_order(t, pd->order_id, &o);
    if (got == SOUK_ENOTFOUND) {
        ag_text_printf(&t->out, "I couldn't find order %s on your account.", pd->order_id);
        pd->kind = AG_PENDING_NONE;
    } else if (got == SOUK_OK && strcmp(o.status, "cancelled") == 0) {
        s_cancelled(t, &o);     /* an earlier attempt went through */
    } else if (got == SOUK_OK && strcmp(o.status, "pending") != 0
               && strcmp(o.status, "confirmed") != 0) {
        ag_text_printf(&t->out, "Sorry, order %s has already %s, so it can't be cancelled any "
                                "more. If something is wrong with it, tell me what happened and "
                                "I'll open a ticket for the team.", o.id,
                       strcmp(o.status, "delivered") == 0 ? "been delivered" : "shipped");
        pd->kind = AG_PENDING_NONE;
    } else {
        ag_text_add(&t->out, "Sorry, I couldn't reach the shop's system just now. Reply YES "
                             "again in a moment to cancel the order.");
    }
}

void ag_do_confirm(ag_turn_t *t)
{
    ag_pending_t *pd = &t->st.pending;
    ag_order_t o;
    if (pd->kind == AG_PENDING_CANCEL) {
        int rc = ag_cancel_order(t, pd->order_id, pd->key_turn, &o);
        if (rc == SOUK_OK)
            s_cancelled(t, &o);
        else
            s_cancel_failed(t, rc);
        return;
    }
    int rc = ag_place_order(t, pd->lines, pd->n_lines, pd->key_turn, &o);
    if (rc != SOUK_OK) {
        s_place_failed(t, rc);
        return;
    }
    t->changed = true;
    pd->kind = AG_PENDING_NONE;
    ag_copy(t->st.last_order, sizeof t->st.last_order, o.id);
    ag_text_add(&t->out, "\u2705 Your order ");
    ag_text_bold(&t->out, o.id);
    ag_text_add(&t->out, " is placed!\n");
    ag_order_text(t, &o);
    ag_text_add(&t->out, "\nThank you! Ask \u201cwhere is my order\u201d anytime.");
}

void ag_do_decline(ag_turn_t *t)
{
    ag_pending_t *pd = &t->st.pending;
    switch (ag_pending_live(&t->st, t->in->now_ms) ? pd->kind : AG_PENDING_NONE) {
    case AG_PENDING_ORDER:
        ag_text_add(&t->out, "No problem \u2014 I haven't ordered anything. Anything else I can "
                             "help with?");
        break;
    case AG_PENDING_CANCEL:
        ag_text_printf(&t->out, "OK \u2014 order %s stays as it is.", pd->order_id);
        break;
    default:
        ag_text_add(&t->out, "OK! Anything else I can help with?");
        break;
    }
    pd->kind = AG_PENDING_NONE;
    t->st.want_qty = 0;
}
