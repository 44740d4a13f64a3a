/* llm: the model-driven shop assistant's turn (souk/llm.h): the prompt, the
 * tool loop with every call checked against its schema before it runs, the
 * final answer, and the fallback to the built-in agent when the API fails.
 * The path decision (the intent classifier) is in llm_classify.c. */
#include "llm_internal.h"

#include "souk/error.h"
#include "souk/tools.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LLM_STEPS_DEFAULT 6
#define LLM_SHOP_MAX 100
/* A tool result longer than this is cut before the model sees it. */
#define LLM_TOOL_RESULT_MAX (16 * 1024)

struct llm_s {
    openai_t *api;
    char *model;
    char shop[LLM_SHOP_MAX];
    llm_classify_t classify;
    int max_steps;
    json_t *tools;              /* the OpenAI tools array, parsed once */
    llm_stats_t stats;
};

/* ---- the client ----------------------------------------------------------- */

int llm_classify_parse(const char *s, llm_classify_t *out)
{
    static const char *const names[] = { "never", "hybrid", "always" };
    for (int i = 0; s && i < 3; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (llm_classify_t)i;
            return SOUK_OK;
        }
    return SOUK_EINVAL;
}

int llm_new(const llm_options_t *opt, llm_t **out, char *err, size_t errlen)
{
    if (!opt || !out || !opt->model || !*opt->model)
        return SOUK_EINVAL;
    llm_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOUK_ENOMEM;
    openai_options_t o = {
        .base_url = opt->base_url, .api_key = opt->api_key, .timeout_ms = opt->timeout_ms,
        .retries = -1, .tick = opt->tick, .tick_arg = opt->tick_arg, .tick_ms = opt->tick_ms,
    };
    int rc = openai_new(&o, &self->api, err, errlen);
    self->model = strdup(opt->model);
    self->tools = json_loads(tools_schemas_json(), 0, NULL);
    snprintf(self->shop, sizeof self->shop, "%s",
             opt->shop_name && *opt->shop_name ? opt->shop_name : "our shop");
    self->classify = opt->classify;
    self->max_steps = opt->max_steps > 0 ? opt->max_steps : LLM_STEPS_DEFAULT;
    if (rc == SOUK_OK && (!self->model || !json_is_array(self->tools)))
        rc = SOUK_ENOMEM;
    if (rc != SOUK_OK) {
        llm_destroy(&self);
        return rc;
    }
    *out = self;
    return SOUK_OK;
}

void llm_destroy(llm_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    llm_t *self = *self_p;
    openai_destroy(&self->api);
    json_decref(self->tools);
    free(self->model);
    free(self);
    *self_p = NULL;
}

void llm_stats(const llm_t *self, llm_stats_t *out)
{
    *out = self->stats;
}

void llm_stats_add(llm_stats_t *acc, const llm_stats_t *add)
{
    acc->turns += add->turns;
    acc->fallbacks += add->fallbacks;
    acc->calls += add->calls;
    acc->failures += add->failures;
    acc->tokens_in += add->tokens_in;
    acc->tokens_out += add->tokens_out;
    acc->latency_ms += add->latency_ms;
    acc->classify_calls += add->classify_calls;
    acc->classify_saved += add->classify_saved;
    acc->tool_calls += add->tool_calls;
    acc->tool_refused += add->tool_refused;
}

void llm_count_call(llm_t *self, const openai_call_t *c, int rc, llm_turn_info_t *info)
{
    self->stats.calls++;
    self->stats.failures += rc != SOUK_OK;
    self->stats.tokens_in += (uint64_t)c->tokens_in;
    self->stats.tokens_out += (uint64_t)c->tokens_out;
    self->stats.latency_ms += (uint64_t)c->latency_ms;
    if (info) {
        info->tokens_in += c->tokens_in;
        info->tokens_out += c->tokens_out;
        info->latency_ms += c->latency_ms;
    }
}

openai_t *llm_api(llm_t *self) { return self->api; }
const char *llm_model(const llm_t *self) { return self->model; }
llm_stats_t *llm_stats_mut(llm_t *self) { return &self->stats; }
llm_classify_t llm_mode(const llm_t *self) { return self->classify; }

/* ---- the prompt ------------------------------------------------------------ */

char *llm_system_prompt(const char *shop)
{
    char *p = NULL;
    if (asprintf(&p,
        "You are the shop assistant of %s, chatting with a customer on WhatsApp.\n"
        "Rules:\n"
        "- Only products, prices, stock, order ids and totals that a tool returned in this "
        "conversation exist. Never invent a product, a price, a total or an order id; when a "
        "tool has not told you, say you will check, and call it.\n"
        "- Search with search_products before talking about any product.\n"
        "- Before place_order or cancel_order, the customer must have confirmed the exact "
        "items, quantities and total (or the order to cancel) in so many words.\n"
        "- Quote prices and totals exactly as the tool results give them, with the currency.\n"
        "- A complaint, a problem with an order or a request for a person: "
        "create_support_ticket, then give the ticket id.\n"
        "- You only ever see and act for this customer; the tools know who they are. Never "
        "ask for or use a phone number or another customer's details.\n"
        "- WhatsApp formatting: short messages, *bold* for product names, numbered lists for "
        "several products, no Markdown headings, tables or links. At most 1500 characters.\n"
        "- Answer in the customer's language.",
        shop && *shop ? shop : "our shop") < 0)
        return NULL;
    return p;
}

static void s_add(json_t *messages, const char *role, const char *content)
{
    json_array_append_new(messages, json_pack("{s:s, s:s}", "role", role, "content", content));
}

/* The customer's own WhatsApp name, to greet them by it; nobody else's
 * data is ever in the prompt. */
static void s_add_name(json_t *messages, const char *profile_name)
{
    char *msg = NULL;
    if (profile_name && *profile_name && strlen(profile_name) <= 64
        && asprintf(&msg, "The customer's WhatsApp name: %s", profile_name) >= 0)
        s_add(messages, "system", msg);
    free(msg);
}

/* The history, newest kept first, within LLM_HISTORY_TOKENS (about four
 * bytes a token, and a few tokens for each message's framing). */
static void s_add_history(json_t *messages, const llm_input_t *in)
{
    size_t first = in->n_history;
    int budget = LLM_HISTORY_TOKENS;
    while (first > 0) {
        const char *t = in->history[first - 1].text;
        int cost = (int)((t ? strlen(t) : 0) + 3) / 4 + 4;
        if (cost > budget)
            break;
        budget -= cost;
        first--;
    }
    for (size_t i = first; i < in->n_history; i++)
        if (in->history[i].text && *in->history[i].text)
            s_add(messages, in->history[i].from_user ? "user" : "assistant", in->history[i].text);
}

/* ---- the turn ----------------------------------------------------------------- */

typedef struct {
    llm_t *self;
    const llm_input_t *in;
    agent_tools_t tools;
    llm_turn_info_t *info;
    json_t *messages;
    json_t *shown;              /* products of this turn's last search, state format */
    json_t *changes;            /* results of state changes: [{tool, result}] */
    bool searched;
} s_turn_t;

/* The products shown last turn, fetched again: today's price and stock. */
static void s_refetch_shown(s_turn_t *t, json_t *state)
{
    json_t *fresh = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(state, "shown"), i, p) {
        const char *sku = json_string_value(json_object_get(p, "sku"));
        if (!sku || i >= LLM_SHOWN_MAX)
            continue;
        char *args = NULL, *result = NULL, *error = NULL;
        json_t *a = json_pack("{s:s}", "product_id", sku);
        args = a ? json_dumps(a, JSON_COMPACT) : NULL;
        json_decref(a);
        if (args && agent_tools_call(&t->tools, "get_product", args, NULL, &result, &error)
                        == SOUK_OK) {
            json_t *r = json_loads(result, 0, NULL);
            if (json_is_object(r)) {
                json_object_del(r, "description"); /* the model asks for it when needed */
                json_array_append_new(fresh, r);
            } else {
                json_decref(r);
            }
        }
        free(args);
        free(result);
        free(error);
    }
    if (json_array_size(fresh)) {
        char *text = json_dumps(fresh, JSON_COMPACT);
        char *msg = NULL;
        if (text && asprintf(&msg, "The products shown to the customer last time, as the shop "
                                   "has them now (in the order shown): %s", text) >= 0)
            s_add(t->messages, "system", msg);
        free(msg);
        free(text);
    }
    json_decref(fresh);
}

/* Remembers a search's products in the built-in agent's state format, so a
 * follow-up ("the second one") reads them whichever agent answers it. */
static void s_note_search(s_turn_t *t, const char *result)
{
    json_t *r = json_loads(result, 0, NULL), *shown = json_array();
    size_t i;
    json_t *h;
    json_array_foreach(r, i, h) {
        json_t *price = json_object_get(h, "price");
        const char *sku = json_string_value(json_object_get(h, "product_id"));
        const char *name = json_string_value(json_object_get(h, "name"));
        const char *cur = json_string_value(json_object_get(h, "currency"));
        json_t *stock = json_object_get(h, "stock");
        if (json_array_size(shown) == AGENT_LIST_MAX || !sku || !name || !cur
            || !json_is_number(price))
            continue;
        json_array_append_new(shown, json_pack("{s:s, s:s, s:I, s:s, s:b}", "sku", sku,
            "name", name, "cents", (json_int_t)(json_number_value(price) * 100.0 + 0.5),
            "cur", cur, "stock", !json_is_integer(stock) || json_integer_value(stock) > 0));
    }
    json_decref(r);
    json_decref(t->shown);
    t->shown = shown;
    t->searched = true;
}

/* Runs one tool call of the model; the content of the "tool" message. */
static char *s_run_tool(s_turn_t *t, const openai_tool_call_t *c)
{
    char err[256];
    json_t *args = NULL;
    t->self->stats.tool_calls++;
    /* checked here, before anything runs: an unknown tool, a field the
     * schema does not name (a user id), a wrong type */
    if (tools_validate_args(c->name, c->arguments, &args, err, sizeof err) != SOUK_OK) {
        t->self->stats.tool_refused++;
        t->info->refused++;
        json_t *e = json_pack("{s:s, s:s}", "error", err, "code", "EINVAL");
        char *s = json_dumps(e, JSON_COMPACT);
        json_decref(e);
        return s;
    }
    char *text = json_dumps(args, JSON_COMPACT);
    json_decref(args);
    char *result = NULL, *error = NULL;
    int rc = text ? agent_tools_call(&t->tools, c->name, text, NULL, &result, &error) : SOUK_ENOMEM;
    free(text);
    if (rc == SOUK_OK) {
        if (strcmp(c->name, "search_products") == 0)
            s_note_search(t, result);
        if (agent_tool_changes_state(c->name)) {
            json_t *r = json_loads(result, 0, NULL);
            json_array_append_new(t->changes, json_pack("{s:s, s:o}", "tool", c->name, "result",
                                                        r ? r : json_null()));
        }
        if (strlen(result) > LLM_TOOL_RESULT_MAX)
            result[LLM_TOOL_RESULT_MAX] = '\0'; /* cut JSON still reads as text to a model */
        return result;
    }
    json_t *e = json_pack("{s:s, s:s}", "error", error ? error : souk_strerror(rc), "code",
                          souk_errname(rc));
    free(error);
    char *s = e ? json_dumps(e, JSON_COMPACT) : NULL;
    json_decref(e);
    return s;
}

/* Appends the assistant's tool calls and their results to the messages. */
static void s_tool_round(s_turn_t *t, const openai_chat_t *r)
{
    json_t *calls = json_array();
    for (size_t i = 0; i < r->n_tool_calls; i++)
        json_array_append_new(calls, json_pack("{s:s, s:s, s:{s:s, s:s}}", "id",
            r->tool_calls[i].id, "type", "function", "function", "name", r->tool_calls[i].name,
            "arguments", r->tool_calls[i].arguments));
    json_array_append_new(t->messages, json_pack("{s:s, s:n, s:o}", "role", "assistant",
                                                 "content", "tool_calls", calls));
    for (size_t i = 0; i < r->n_tool_calls; i++) {
        char *content = s_run_tool(t, &r->tool_calls[i]);
        json_array_append_new(t->messages, json_pack("{s:s, s:s, s:s}", "role", "tool",
            "tool_call_id", r->tool_calls[i].id, "content", content ? content : "{}"));
        free(content);
    }
}

static const char *s_str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* What the state changes of the turn did, from their results alone. */
static void s_changes_text(const json_t *changes, FILE *f)
{
    size_t i;
    json_t *c;
    json_array_foreach(changes, i, c) {
        const char *tool = s_str(c, "tool");
        json_t *r = json_object_get(c, "result");
        json_t *total = json_object_get(r, "total");
        if (strcmp(tool, "place_order") == 0)
            fprintf(f, "Your order %s is placed: total %.2f %s.", s_str(r, "order_id"),
                    json_number_value(total), s_str(r, "currency"));
        else if (strcmp(tool, "cancel_order") == 0)
            fprintf(f, "Your order %s is cancelled.", s_str(r, "order_id"));
        else
            fprintf(f, "Your request is with our team: ticket %s.", s_str(r, "ticket_id"));
        fputc(i + 1 < json_array_size(changes) ? '\n' : ' ', f);
    }
}

/* Text that fits one WhatsApp message, cut on a character boundary. */
static char *s_fit(char *text)
{
    size_t n = strlen(text);
    if (n <= AGENT_REPLY_MAX)
        return text;
    n = AGENT_REPLY_MAX - 3;
    while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
        n--;
    memcpy(text + n, "\u2026", 3);
    text[n + 3] = '\0';
    return text;
}

/* The model's reply, checked against the state changes: the order id and
 * the total of each must be in it as the tool gave them, else the facts
 * are written in from the results. */
static char *s_final_reply(s_turn_t *t, const char *content)
{
    bool ok = true;
    size_t i;
    json_t *c;
    json_array_foreach(t->changes, i, c) {
        json_t *r = json_object_get(c, "result");
        const char *id = strcmp(s_str(c, "tool"), "create_support_ticket") == 0
                             ? s_str(r, "ticket_id") : s_str(r, "order_id");
        char total[32] = "";
        if (json_is_number(json_object_get(r, "total")))
            snprintf(total, sizeof total, "%.2f", json_number_value(json_object_get(r, "total")));
        if ((*id && !strstr(content, id)) || (strcmp(s_str(c, "tool"), "place_order") == 0
                                              && !strstr(content, total)))
            ok = false;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    if (ok)
        fputs(content, f);
    else
        s_changes_text(t->changes, f);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return s_fit(text);
}

/* The state for the next turn: the one given, with this turn's search as
 * "shown" and no question pending (the built-in agent's YES must never
 * confirm something the model's turn has moved past). */
static char *s_state_out(s_turn_t *t, json_t *state)
{
    json_t *o = json_is_object(state) ? json_deep_copy(state) : json_pack("{s:i}", "v", 1);
    if (!o)
        return NULL;
    json_object_del(o, "pending");
    json_object_del(o, "prev");
    json_object_set_new(o, "turn", json_string(t->in->in.turn_id));
    if (t->searched)
        json_object_set(o, "shown", t->shown);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static json_t *s_request(s_turn_t *t, bool last)
{
    return json_pack("{s:s, s:O, s:O, s:s, s:f}", "model", t->self->model, "messages",
                     t->messages, "tools", t->self->tools, "tool_choice", last ? "none" : "auto",
                     "temperature", 0.2);
}

/* The loop: SOUK_OK with *content (caller frees), or the API's error. */
static int s_loop(s_turn_t *t, char **content)
{
    *content = NULL;
    for (int step = 0; step < t->self->max_steps; step++) {
        json_t *req = s_request(t, step == t->self->max_steps - 1);
        if (!req)
            return SOUK_ENOMEM;
        openai_chat_t r;
        int rc = openai_chat(t->self->api, req, &r);
        json_decref(req);
        t->info->steps++;
        llm_count_call(t->self, &r.call, rc, t->info);
        if (rc != SOUK_OK)
            return rc;
        if (r.n_tool_calls && step < t->self->max_steps - 1) {
            s_tool_round(t, &r);
            openai_chat_clear(&r);
            continue;
        }
        *content = r.content && *r.content ? r.content : NULL;
        if (*content)
            r.content = NULL;
        openai_chat_clear(&r);
        return *content ? SOUK_OK : SOUK_EPROTO;
    }
    return SOUK_EPROTO;
}

static int s_fallback(llm_t *self, agent_t *fallback, const llm_input_t *in, agent_output_t *out,
                      llm_turn_info_t *info)
{
    self->stats.fallbacks++;
    info->fallback = true;
    return agent_turn(fallback, &in->in, out);
}

/* After an API failure with state already changed: the facts from the
 * results (never a second attempt at the change), or an apology. */
static int s_apologise(s_turn_t *t, agent_output_t *out)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return SOUK_ENOMEM;
    s_changes_text(t->changes, f);
    fputs("Sorry, I could not finish my answer just now: please write again in a moment.", f);
    if (fclose(f) != 0) {
        free(text);
        return SOUK_ENOMEM;
    }
    out->reply = s_fit(text);
    return SOUK_OK;
}

int llm_turn(llm_t *self, agent_t *fallback, const llm_input_t *in, agent_output_t *out,
             llm_turn_info_t *info)
{
    llm_turn_info_t dummy;
    info = info ? info : &dummy;
    memset(info, 0, sizeof *info);
    if (!self || !fallback || !in || !out || !in->in.waid || !in->in.text || !in->in.turn_id
        || !in->in.call_tool)
        return SOUK_EINVAL;
    *out = (agent_output_t) { 0 };
    self->stats.turns++;
    s_turn_t t = {
        .self = self, .in = in, .info = info, .messages = json_array(), .changes = json_array(),
        .tools = { .call = in->in.call_tool, .arg = in->in.tool_arg, .turn_id = in->in.turn_id },
    };
    json_t *state = in->in.state_json ? json_loads(in->in.state_json, 0, NULL) : NULL;
    char *prompt = llm_system_prompt(in->in.shop_name && *in->in.shop_name ? in->in.shop_name
                                                                           : self->shop);
    int rc = prompt && t.messages && t.changes ? SOUK_OK : SOUK_ENOMEM;
    if (rc == SOUK_OK) {
        s_add(t.messages, "system", prompt);
        s_add_name(t.messages, in->in.profile_name);
        s_add_history(t.messages, in);
        s_refetch_shown(&t, state);
        s_add(t.messages, "user", in->in.text);
        char *content = NULL;
        rc = s_loop(&t, &content);
        if (rc != SOUK_OK) {
            info->error = rc;
            snprintf(info->why, sizeof info->why, "%s",
                     *openai_last_error(self->api) ? openai_last_error(self->api)
                                                   : "the model gave no answer");
        }
        bool changed = json_array_size(t.changes) > 0;
        if (rc == SOUK_OK)
            out->reply = s_final_reply(&t, content);
        else if (rc != SOUK_ENOMEM && changed)
            rc = s_apologise(&t, out);
        else if (rc != SOUK_ENOMEM)
            rc = s_fallback(self, fallback, in, out, info);
        free(content);
        if (rc == SOUK_OK && !info->fallback) {
            out->state_json = s_state_out(&t, state);
            out->changed = changed;
            out->action = changed ? "llm_change" : "llm";
            out->tool_calls = t.tools.calls;
            if (!out->reply || !out->state_json) {
                agent_output_clear(out);
                rc = SOUK_ENOMEM;
            }
        }
    }
    free(prompt);
    json_decref(state);
    json_decref(t.messages);
    json_decref(t.changes);
    json_decref(t.shown);
    return rc;
}
