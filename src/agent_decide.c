/* What to do with a message, given the dialog state: one function that
 * both agent_path() (before the turn, to choose the acknowledged path) and
 * agent_turn() use, so the path promised is the path taken.
 *
 * The order of the checks is the policy: an answer to a pending question
 * first (YES / NO / "make it three"), then problems and people (a
 * complaint is never mistaken for a search), then orders by id, policy
 * questions, small talk, shopping, and a clarifying question when the
 * classifier is unsure and nothing concrete was said. */
#include "agent_internal.h"

#include <string.h>

static const struct {
    const char *name;
    bool async;
} s_acts[] = {
#define XX(name, text, async) { text, async },
    AG_ACTIONS(XX)
#undef XX
};

const char *ag_act_name(ag_act_t a)
{
    return (unsigned) a < AG_ACT_COUNT ? s_acts[a].name : "?";
}

bool ag_act_async(ag_act_t a)
{
    return (unsigned) a < AG_ACT_COUNT && s_acts[a].async;
}

static bool s_names_product(const ag_read_t *rd)
{
    return rd->slots.query[0] || rd->slots.ref != NLU_REF_NONE;
}

/* An answer to "Reply YES to confirm or NO to cancel". */
static bool s_pending_answer(const ag_read_t *rd, const ag_state_t *st, ag_act_t *act)
{
    const nlu_slots_t *s = &rd->slots;
    switch (st->pending.kind) {
    case AG_PENDING_ORDER:
        if (s->quantity > 0 && (s->change || rd->bare_qty || (!s_names_product(rd) && !rd->add)))
            *act = AG_ACT_CHANGE;
        else if (s->confirm == NLU_CONFIRM_YES && !s->change && !s->cancel_order)
            *act = AG_ACT_CONFIRM;
        else if ((s->confirm == NLU_CONFIRM_NO || s->cancel_order) && !s->order_id[0]
                 && !s_names_product(rd))
            *act = AG_ACT_DECLINE;
        else if (rd->add && s_names_product(rd))
            *act = AG_ACT_ORDER;
        else
            return false;
        return true;
    case AG_PENDING_CANCEL: {
        bool same = !s->order_id[0] || strcmp(s->order_id, st->pending.order_id) == 0;
        if (s->confirm == NLU_CONFIRM_YES && same)
            *act = AG_ACT_CONFIRM;
        else if (s->cancel_order && same && s->confirm != NLU_CONFIRM_NO)
            *act = AG_ACT_CONFIRM;
        else if (s->confirm == NLU_CONFIRM_NO && !s_names_product(rd))
            *act = AG_ACT_DECLINE;
        else
            return false;
        return true;
    }
    case AG_PENDING_OFFER:
        if ((s->confirm == NLU_CONFIRM_YES || rd->bare_qty) && !s->query[0])
            *act = AG_ACT_ORDER;
        else if (s->confirm == NLU_CONFIRM_NO && !s_names_product(rd))
            *act = AG_ACT_DECLINE;
        else
            return false;
        return true;
    default:
        return false;
    }
}

static ag_act_t s_small_talk(const ag_read_t *rd)
{
    if (rd->thanks)
        return AG_ACT_THANKS;
    if (rd->bye)
        return AG_ACT_BYE;
    if (rd->greeting)
        return AG_ACT_GREET;
    return AG_ACT_HELP;
}

ag_act_t ag_decide(const ag_read_t *rd, const ag_state_t *st, int64_t now_ms)
{
    const nlu_slots_t *s = &rd->slots;
    nlu_intent_t intent = rd->nlu.intent;
    bool sure = !rd->nlu.clarify;
    ag_act_t act;

    if (ag_pending_live(st, now_ms) && s_pending_answer(rd, st, &act))
        return act;

    if (rd->handoff)
        return AG_ACT_HANDOFF;
    if (rd->complaint || (intent == NLU_SUPPORT && sure))
        return AG_ACT_TICKET;
    if (s->cancel_order || (rd->cancel_words && intent == NLU_ORDER_STATUS))
        return AG_ACT_CANCEL;
    if (s->order_id[0] || (intent == NLU_ORDER_STATUS && sure))
        return AG_ACT_STATUS;
    if (rd->policy && (intent != NLU_PLACE_ORDER || !sure))
        return AG_ACT_POLICY;

    bool product_words = s_names_product(rd) && !rd->help;
    if ((intent == NLU_GENERAL && sure && !rd->ask_sell) || (!product_words && !rd->bare_qty
        && (rd->greeting || rd->thanks || rd->bye || rd->help)))
        return s_small_talk(rd);
    if (s->confirm == NLU_CONFIRM_NO && !product_words)
        return AG_ACT_DECLINE;

    bool shown = st->n_shown > 0 || st->has_focus;
    if (rd->similar && (s->ref != NLU_REF_NONE || shown || s->query[0]))
        return AG_ACT_SIMILAR;
    if (rd->detail && (s->ref != NLU_REF_NONE || s->query[0] || st->has_focus))
        return AG_ACT_DETAIL;
    /* "which is the cheapest?": a question about a shown one, not an order */
    if (s->ref != NLU_REF_NONE && shown && rd->question && !rd->order_verb)
        return AG_ACT_DETAIL;
    if (s->refine != NLU_REFINE_NONE)
        return AG_ACT_REFINE;
    if (intent == NLU_PLACE_ORDER && !rd->ask_sell
        && (sure || (s->quantity > 0 && s->query[0]) || s->ref != NLU_REF_NONE))
        return AG_ACT_ORDER;
    if ((s->ref != NLU_REF_NONE && shown) || (rd->bare_qty && (st->has_focus || st->want_qty)))
        return AG_ACT_ORDER;
    if ((intent == NLU_PRODUCT_SEARCH && sure) || (rd->ask_sell && s->query[0]))
        return AG_ACT_SEARCH;
    /* unsure, but with product words: a search can still tell (and finds
     * nothing for gibberish, which then gets the clarifying question) */
    if (s->query[0] && (intent == NLU_PRODUCT_SEARCH || intent == NLU_PLACE_ORDER
                        || rd->nlu.runner_up == NLU_PRODUCT_SEARCH))
        return AG_ACT_SEARCH;
    return AG_ACT_CLARIFY;
}
