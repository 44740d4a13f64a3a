/* After-sales and conversation: order status, cancellations (confirmed
 * first, only before shipping), complaints and requests for a person as
 * tickets, greetings, thanks, help, and the clarifying question. */
#include "agent_internal.h"

#include "souk/error.h"

#include <stdio.h>
#include <string.h>

#define ORDERS_LISTED 5
#define TICKET_MESSAGE_MAX 1900   /* the tool takes 2,000 characters */

/* The store's statuses in the customer's words: in a sentence, in a list,
 * and after "has already" (why it cannot be cancelled). */
static const struct {
    const char *status, *text, *word, *already;
} s_statuses[] = {
    { "pending", "received \u2014 being prepared", "received", "" },
    { "confirmed", "confirmed \u2014 being prepared", "confirmed", "" },
    { "shipped", "shipped \u2014 on its way \U0001F69A", "shipped", "shipped" },
    { "delivered", "delivered \u2705", "delivered", "been delivered" },
    { "cancelled", "cancelled", "cancelled", "been cancelled" },
};

static const char *s_status(const char *status, int which)
{
    for (size_t i = 0; i < sizeof s_statuses / sizeof *s_statuses; i++)
        if (strcmp(status, s_statuses[i].status) == 0)
            return which == 0 ? s_statuses[i].text
                 : which == 1 ? s_statuses[i].word : s_statuses[i].already;
    return status;
}

static const char *s_status_text(const char *status)
{
    return s_status(status, 0);
}

static bool s_cancellable(const ag_order_t *o)
{
    return strcmp(o->status, "pending") == 0 || strcmp(o->status, "confirmed") == 0;
}

/* "2026-11-24T15:00:00Z" → "24 Nov 2026"; "" when unreadable. */
static void s_date(const char *iso, char *out, size_t cap)
{
    static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                                          "Sep", "Oct", "Nov", "Dec" };
    int y, m, d;
    out[0] = '\0';
    if (sscanf(iso, "%4d-%2d-%2d", &y, &m, &d) == 3 && m >= 1 && m <= 12 && d >= 1 && d <= 31)
        snprintf(out, cap, "%d %s %d", d, months[m - 1], y);
}

void ag_order_text(ag_turn_t *t, const ag_order_t *o)
{
    ag_text_t *out = &t->out;
    int shown = o->n_lines < AG_LINES_MAX ? o->n_lines : AG_LINES_MAX;
    for (int i = 0; i < shown; i++) {
        ag_text_printf(out, "\u2022 %d \u00d7 ", o->lines[i].qty);
        ag_text_bold(out, o->lines[i].p.name);
        ag_text_add(out, " \u2014 ");
        ag_text_money(out, o->lines[i].p.price_cents * o->lines[i].qty, o->currency);
        ag_text_add(out, "\n");
    }
    if (o->n_items > shown)
        ag_text_printf(out, "\u2026and %d more\n", o->n_items - shown);
    ag_text_add(out, "Total: *");
    ag_text_money(out, o->total_cents, o->currency);
    ag_text_add(out, "*");
}

static void s_order_status(ag_turn_t *t, const ag_order_t *o)
{
    char date[32];
    s_date(o->created, date, sizeof date);
    ag_text_add(&t->out, "Order ");
    ag_text_bold(&t->out, o->id);
    ag_text_printf(&t->out, ": %s\n", s_status_text(o->status));
    if (date[0])
        ag_text_printf(&t->out, "Placed %s\n", date);
    ag_order_text(t, o);
    ag_copy(t->st.last_order, sizeof t->st.last_order, o->id);
}

static void s_not_found(ag_turn_t *t, const char *id)
{
    ag_text_printf(&t->out, "I couldn't find order %s on your account. Please check the id "
                            "(it looks like SK- and five letters or digits).", id);
}

static void s_trouble(ag_turn_t *t)
{
    ag_text_add(&t->out, "Sorry, I can't reach the order system right now. Please try again in a "
                         "moment.");
}

/* When the message names an order id: runs `found` on the user's order, or
 * says it is not found (another user's id reads the same) or that the
 * order system is out of reach. Returns whether the message named one. */
static bool s_by_order_id(ag_turn_t *t, void (*found)(ag_turn_t *t, const ag_order_t *o))
{
    const char *id = t->rd.slots.order_id;
    if (!id[0])
        return false;
    ag_order_t o;
    int rc = ag_get_order(t, id, &o);
    if (rc == SOUK_OK)
        found(t, &o);
    else if (rc == SOUK_ENOTFOUND)
        s_not_found(t, id);
    else
        s_trouble(t);
    return true;
}

/* ---- status ---------------------------------------------------------------- */

void ag_do_status(ag_turn_t *t)
{
    if (s_by_order_id(t, s_order_status))
        return;
    ag_order_t list[ORDERS_LISTED];
    int n = 0;
    if (ag_list_orders(t, list, ORDERS_LISTED, &n) != SOUK_OK) {
        s_trouble(t);
        return;
    }
    if (n == 0) {
        ag_text_add(&t->out, "You don't have any orders yet. What are you looking for?");
        return;
    }
    if (n == 1) {
        s_order_status(t, &list[0]);
        return;
    }
    ag_text_add(&t->out, "Your latest orders:\n");
    for (int i = 0; i < n; i++) {
        char date[32];
        s_date(list[i].created, date, sizeof date);
        ag_text_printf(&t->out, "%d. ", i + 1);
        ag_text_bold(&t->out, list[i].id);
        ag_text_printf(&t->out, " \u2014 %s \u2014 ", s_status(list[i].status, 1));
        ag_text_money(&t->out, list[i].total_cents, list[i].currency);
        if (date[0])
            ag_text_printf(&t->out, " (%s)", date);
        ag_text_add(&t->out, "\n");
    }
    ag_text_add(&t->out, "\nSend me an order id for its details.");
}

/* ---- cancellation ------------------------------------------------------------ */

static void s_ask_cancel(ag_turn_t *t, const ag_order_t *o)
{
    if (strcmp(o->status, "cancelled") == 0) {
        ag_text_add(&t->out, "Order ");
        ag_text_bold(&t->out, o->id);
        ag_text_add(&t->out, " is already cancelled.");
        return;
    }
    if (!s_cancellable(o)) {
        ag_text_add(&t->out, "Order ");
        ag_text_bold(&t->out, o->id);
        ag_text_printf(&t->out, " has already %s, so it can't be cancelled any more. If "
                                "something is wrong with it, tell me what happened and I'll open "
                                "a ticket for the team.", s_status(o->status, 2));
        return;
    }
    ag_pending_t *pd = &t->st.pending;
    *pd = (ag_pending_t) { .kind = AG_PENDING_CANCEL, .since_ms = t->in->now_ms };
    ag_copy(pd->order_id, sizeof pd->order_id, o->id);
    ag_copy(pd->key_turn, sizeof pd->key_turn, t->in->turn_id);
    ag_copy(t->st.last_order, sizeof t->st.last_order, o->id);
    ag_text_add(&t->out, "Cancel order ");
    ag_text_bold(&t->out, o->id);
    ag_text_add(&t->out, "?\n");
    ag_order_text(t, o);
    ag_text_add(&t->out, "\nReply YES to cancel it or NO to keep it.");
}

void ag_do_cancel(ag_turn_t *t)
{
    if (s_by_order_id(t, s_ask_cancel))
        return;
    ag_order_t list[ORDERS_LISTED];
    int n = 0;
    if (ag_list_orders(t, list, ORDERS_LISTED, &n) != SOUK_OK) {
        s_trouble(t);
        return;
    }
    ag_order_t open[ORDERS_LISTED];
    int k = 0;
    for (int i = 0; i < n; i++)
        if (s_cancellable(&list[i]))
            open[k++] = list[i];
    if (k == 0) {
        ag_text_add(&t->out, n ? "None of your orders can still be cancelled: an order can be "
                                 "cancelled only before it ships. If something is wrong, tell me "
                                 "what happened and I'll open a ticket."
                               : "You don't have any orders to cancel.");
        return;
    }
    /* the order just talked about, or the only one */
    for (int i = 0; i < k; i++)
        if (k == 1 || strcmp(open[i].id, t->st.last_order) == 0) {
            s_ask_cancel(t, &open[i]);
            return;
        }
    ag_text_add(&t->out, "Which order do you want to cancel?\n");
    for (int i = 0; i < k; i++) {
        ag_text_printf(&t->out, "%d. ", i + 1);
        ag_text_bold(&t->out, open[i].id);
        ag_text_add(&t->out, " \u2014 ");
        ag_text_money(&t->out, open[i].total_cents, open[i].currency);
        ag_text_add(&t->out, "\n");
    }
    ag_text_printf(&t->out, "\nReply e.g. \u201ccancel %s\u201d.", open[0].id);
}

/* ---- tickets ------------------------------------------------------------------- */

static const struct {
    const char *const *words;
    const char *subject;
} s_subjects[] = {
    { (const char *const[]) { "broken", "broke", "damag*", "cracked", "crushed", "smashed",
                              "shattered", "leak*", "torn", "ripped", "scratched", "dented",
                              "defect*", "faulty", NULL }, "Damaged item" },
    { (const char *const[]) { "wrong", "not what i ordered", NULL }, "Wrong item" },
    { (const char *const[]) { "missing", "never arrived", "never came", "never received",
                              "never got", "didnt arrive", "did not arrive", "stolen",
                              "incomplete", NULL }, "Missing delivery" },
    { (const char *const[]) { "refund*", "money back", "return*", NULL }, "Refund or return" },
    { (const char *const[]) { "charged", "payment", "card", NULL }, "Payment problem" },
};

static const char *s_subject_of(const ag_read_t *rd)
{
    if (rd->handoff)
        return "Customer asked for a person";
    for (size_t i = 0; i < sizeof s_subjects / sizeof *s_subjects; i++)
        if (ag_has_any(rd->norm, s_subjects[i].words))
            return s_subjects[i].subject;
    return "Customer complaint";
}

void ag_do_ticket(ag_turn_t *t)
{
    /* no id: a complaint (or "my order") is about the order talked about
     * last, which a tool gave; the reply names it, so a wrong guess shows */
    bool about_last = t->rd.my_order || (t->rd.complaint && !t->rd.handoff);
    const char *order_id = t->rd.slots.order_id[0] ? t->rd.slots.order_id
                         : about_last && t->st.last_order[0] ? t->st.last_order : NULL;
    char subject[120];
    if (order_id)
        snprintf(subject, sizeof subject, "%s (order %s)", s_subject_of(&t->rd), order_id);
    else
        snprintf(subject, sizeof subject, "%s", s_subject_of(&t->rd));
    char message[TICKET_MESSAGE_MAX + 1];
    ag_copy(message, sizeof message, t->in->text[0] ? t->in->text : subject);
    char id[AG_ID_MAX];
    int rc = ag_open_ticket(t, subject, message, order_id, id);
    bool unknown_order = false;
    ag_order_t o;
    /* a failure without its code: unless the order is visibly theirs, the
     * ticket goes without it rather than not at all */
    if (rc != SOUK_OK && rc != SOUK_ENOTFOUND && order_id)
        rc = ag_get_order(t, order_id, &o) != SOUK_OK ? SOUK_ENOTFOUND : rc;
    if (rc == SOUK_ENOTFOUND && order_id) {
        /* not an order of theirs: the ticket still goes, without it */
        unknown_order = true;
        snprintf(subject, sizeof subject, "%s", s_subject_of(&t->rd));
        rc = ag_open_ticket(t, subject, message, NULL, id);
    }
    if (rc != SOUK_OK) {
        ag_text_add(&t->out, "Sorry, I couldn't reach the team's system just now. Please send "
                             "that again in a minute and I'll pass it on.");
        return;
    }
    t->changed = true;
    if (t->rd.handoff && !t->rd.complaint)
        ag_text_add(&t->out, "Sure. ");
    else
        ag_text_add(&t->out, "I'm sorry about that. ");
    if (unknown_order)
        ag_text_printf(&t->out, "I couldn't find order %s on your account, but ", order_id);
    ag_text_add(&t->out, unknown_order ? "I've opened ticket " : "I've opened ticket ");
    ag_text_bold(&t->out, id);
    if (order_id && !unknown_order) {
        ag_text_add(&t->out, " for order ");
        ag_text_bold(&t->out, order_id);
        ag_copy(t->st.last_order, sizeof t->st.last_order, order_id);
    }
    ag_text_printf(&t->out, "; a person from %s will get back to you here.", t->shop);
}

/* ---- small talk ------------------------------------------------------------------ */

#define HELP_LINES                                                                         \
    "1. Find products \u2014 \u201crunning shoes under 50\u201d\n"                         \
    "2. Order \u2014 pick from a list (\u201c#2\u201d, \u201c2 of the first\u201d), then "   \
    "reply YES\n"                                                                          \
    "3. Check an order \u2014 \u201cwhere is my order?\u201d\n"                             \
    "4. Cancel \u2014 \u201ccancel my order\u201d (before it ships)\n"                      \
    "5. Problems or a person \u2014 \u201cmy parcel arrived damaged\u201d, \u201ctalk to a " \
    "human\u201d"

static void s_hello(ag_turn_t *t)
{
    if (t->name[0])
        ag_text_printf(&t->out, "Hi %s! \U0001F44B ", t->name);
    else
        ag_text_add(&t->out, "Hi! \U0001F44B ");
}

void ag_do_small_talk(ag_turn_t *t)
{
    switch (t->act) {
    case AG_ACT_GREET:
        s_hello(t);
        ag_text_printf(&t->out, "Welcome to %s. I can help you find products, place an order, "
                                "check an order or reach our team. What are you looking for "
                                "today?", t->shop);
        break;
    case AG_ACT_THANKS:
        ag_text_printf(&t->out, "You're welcome%s%s! Anything else I can help with?",
                       t->name[0] ? ", " : "", t->name);
        break;
    case AG_ACT_BYE:
        ag_text_printf(&t->out, "Thanks for stopping by%s%s! Message me anytime.",
                       t->name[0] ? ", " : "", t->name);
        break;
    default:
        if (t->rd.help)
            ag_text_printf(&t->out, "Here's what I can do at %s:\n" HELP_LINES, t->shop);
        else if (t->rd.question)
            ag_text_add(&t->out, "I can't answer that one myself \u2014 reply \u201chuman\u201d "
                                 "and a person from the shop will. I can find products, place an "
                                 "order, check or cancel an order.");
        else
            ag_text_add(&t->out, "Anything I can help with? I can find products, place an "
                                 "order, check an order, or get you a person from the shop.");
        break;
    }
}

void ag_do_clarify(ag_turn_t *t)
{
    t->act = AG_ACT_CLARIFY;
    t->st.clarify_streak++;
    if (t->st.clarify_streak >= 2) {
        ag_text_add(&t->out, "Sorry, I still didn't get that. Here's what I can do:\n" HELP_LINES);
        return;
    }
    ag_text_add(&t->out, "Sorry, I didn't quite get that. Do you want to find a product, check "
                         "an order, or talk to support?");
}
