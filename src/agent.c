/* The built-in agent's turn: load the dialog state, read the message,
 * decide (the same decision agent_path() made for the session), act through
 * the tools, and hand back the reply and the state to keep.
 *
 * A pending question survives an aside (a policy question, a greeting, a
 * clarifying question) with a reminder, and is dropped when the customer
 * moves on (a new search, an order status, a ticket), so a later YES never
 * confirms something they have stopped looking at. */
#include "agent_internal.h"

#include "souk/error.h"

#include <stdlib.h>
#include <string.h>

#define SHOP_NAME_MAX 100
#define TURN_ID_MAX 120

struct agent_s {
    char shop[SHOP_NAME_MAX];
};

agent_t *agent_new(const agent_options_t *opt)
{
    agent_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    ag_copy(self->shop, sizeof self->shop,
            opt && opt->shop_name && *opt->shop_name ? opt->shop_name : "our shop");
    return self;
}

void agent_destroy(agent_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

void agent_output_clear(agent_output_t *out)
{
    if (!out)
        return;
    free(out->reply);
    free(out->state_json);
    *out = (agent_output_t) { 0 };
}

/* ---- routing -------------------------------------------------------------------- */

static ag_act_t s_route(const char *text, const char *state_json, ag_pending_kind_t *pending)
{
    ag_state_t *st = malloc(sizeof *st);
    ag_read_t *rd = malloc(sizeof *rd);
    ag_act_t act = AG_ACT_CLARIFY;
    *pending = AG_PENDING_NONE;
    if (st && rd) {
        /* no clock: a pure function of its inputs (an expired confirmation
         * costs an acknowledgement, never a wrong action) */
        ag_state_load(st, state_json, NULL);
        ag_read(text, rd);
        act = ag_decide(rd, st, 0);
        *pending = st->pending.kind;
    }
    free(st);
    free(rd);
    return act;
}

agent_path_t agent_path(const char *text, const char *state_json)
{
    if (!text)
        return AGENT_PATH_SYNC;
    ag_pending_kind_t pending;
    return ag_act_async(s_route(text, state_json, &pending)) ? AGENT_PATH_ASYNC
                                                               : AGENT_PATH_SYNC;
}

const char *agent_ack(const char *text, const char *state_json)
{
    if (!text)
        return NULL;
    ag_pending_kind_t pending;
    switch (s_route(text, state_json, &pending)) {
    case AG_ACT_CONFIRM:
        return pending == AG_PENDING_CANCEL ? "One moment, I'm cancelling your order\u2026"
                                            : "One moment, I'm placing your order\u2026";
    case AG_ACT_CANCEL:
        return "One moment, I'm looking up your order\u2026";
    case AG_ACT_TICKET:
        return "I'm sorry to hear that. One moment, I'm passing this on to our team\u2026";
    case AG_ACT_HANDOFF:
        return "One moment, I'm getting a person from the shop for you\u2026";
    default:
        return NULL;
    }
}

/* ---- the turn --------------------------------------------------------------------- */

/* Before acting: what happens to a pending question. */
static void s_settle_pending(ag_turn_t *t)
{
    ag_state_t *st = &t->st;
    if (!ag_pending_live(st, t->in->now_ms))
        st->pending.kind = AG_PENDING_NONE;
    switch (t->act) {
    case AG_ACT_SEARCH: case AG_ACT_REFINE: case AG_ACT_SIMILAR: case AG_ACT_STATUS:
    case AG_ACT_CANCEL: case AG_ACT_TICKET: case AG_ACT_HANDOFF: case AG_ACT_BYE:
        st->pending.kind = AG_PENDING_NONE;
        st->want_qty = 0;
        break;
    case AG_ACT_ORDER:
        if (st->pending.kind == AG_PENDING_CANCEL)
            st->pending.kind = AG_PENDING_NONE;
        break;
    default:
        break;
    }
}

/* After an aside: the question still waiting. */
static void s_remind(ag_turn_t *t)
{
    const ag_pending_t *pd = &t->st.pending;
    if (pd->kind != AG_PENDING_ORDER && pd->kind != AG_PENDING_CANCEL)
        return;
    ag_text_trim(&t->out);
    if (pd->kind == AG_PENDING_ORDER) {
        ag_text_add(&t->out, "\n\n");
        ag_confirmation_text(t);
    } else
        ag_text_printf(&t->out, "\n\nReply YES to cancel order %s or NO to keep it.",
                       pd->order_id);
}

static void s_act(ag_turn_t *t)
{
    switch (t->act) {
    case AG_ACT_CONFIRM: ag_do_confirm(t); break;
    case AG_ACT_DECLINE: ag_do_decline(t); break;
    case AG_ACT_CHANGE: ag_do_change(t); break;
    case AG_ACT_ORDER: ag_do_order(t); break;
    case AG_ACT_SEARCH: ag_do_search(t); break;
    case AG_ACT_REFINE: ag_do_refine(t); break;
    case AG_ACT_SIMILAR: ag_do_similar(t); break;
    case AG_ACT_DETAIL: ag_do_detail(t); s_remind(t); break;
    case AG_ACT_POLICY: ag_do_policy(t); s_remind(t); break;
    case AG_ACT_STATUS: ag_do_status(t); break;
    case AG_ACT_CANCEL: ag_do_cancel(t); break;
    case AG_ACT_TICKET: case AG_ACT_HANDOFF: ag_do_ticket(t); break;
    case AG_ACT_CLARIFY: ag_do_clarify(t); s_remind(t); break;
    default: ag_do_small_talk(t); s_remind(t); break;
    }
}

static bool s_input_ok(const agent_input_t *in)
{
    return in && in->waid && *in->waid && in->text && in->turn_id && *in->turn_id
        && strlen(in->turn_id) <= TURN_ID_MAX && in->call_tool;
}

int agent_turn(agent_t *self, const agent_input_t *in, agent_output_t *out)
{
    if (!self || !out || !s_input_ok(in))
        return SOUK_EINVAL;
    *out = (agent_output_t) { 0 };
    ag_turn_t *t = calloc(1, sizeof *t);
    if (!t)
        return SOUK_ENOMEM;
    t->in = in;
    t->shop = in->shop_name && *in->shop_name ? in->shop_name : self->shop;
    ag_first_name(in->profile_name, t->name, sizeof t->name);
    ag_state_load(&t->st, in->state_json, in->turn_id);
    ag_read(in->text, &t->rd);
    t->tools = (agent_tools_t) { .call = in->call_tool, .arg = in->tool_arg,
                                 .turn_id = in->turn_id };
    t->act = ag_decide(&t->rd, &t->st, in->now_ms);
    s_settle_pending(t);

    bool hello = t->rd.greeting && t->act != AG_ACT_GREET;
    if (hello)
        ag_text_add(&t->out, t->name[0] ? "Hi " : "Hi!\n");
    if (hello && t->name[0])
        ag_text_printf(&t->out, "%s!\n", t->name);
    s_act(t);
    if (t->act != AG_ACT_CLARIFY)
        t->st.clarify_streak = 0;
    t->st.turns++;

    int rc = SOUK_OK;
    out->reply = ag_text_finish(&t->out);
    out->state_json = ag_state_save(&t->st, in->state_json, in->turn_id);
    if (!out->reply || !out->state_json) {
        agent_output_clear(out);
        rc = SOUK_ENOMEM;
    } else {
        out->changed = t->changed;
        out->action = ag_act_name(t->act);
        out->tool_calls = t->tools.calls;
    }
    free(t);
    return rc;
}
