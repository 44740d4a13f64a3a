/* llm_classify: the path of a turn before it runs (souk/llm.h, llm_path):
 * the built-in rules first, then, unless the built-in classifier is sure
 * (hybrid) or the model is never asked, one small structured-output call
 * whose JSON schema allows exactly the five intents of souk/nlu.h. */
#include "llm_internal.h"

#include "souk/error.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define CLASSIFY_PROMPT                                                                   \
    "You route WhatsApp messages sent to an online shop. Give the intent of the "        \
    "customer's message: product_search (looking for or asking about products), "        \
    "place_order (wants to buy or order something, or confirms an order), order_status " \
    "(asks about an existing order, its delivery, or cancelling it), support (a "         \
    "complaint, a problem, a refund, or wants a person) or general (greetings, thanks, "  \
    "questions about the shop)."

/* The built-in classifier's intent when it is sure of it. */
static bool s_builtin_sure(const char *text, nlu_intent_t *intent)
{
    nlu_result_t r;
    if (!text || !*text || nlu_classify(text, &r) != SOUK_OK || r.clarify)
        return false;
    *intent = r.intent;
    return true;
}

bool llm_classify_confident(const char *text)
{
    nlu_intent_t intent;
    return s_builtin_sure(text, &intent);
}

static json_t *s_request(const char *model, const char *text)
{
    json_t *names = json_array();
    for (int i = 0; i < NLU_INTENT_COUNT; i++)
        json_array_append_new(names, json_string(nlu_intent_name((nlu_intent_t)i)));
    return json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:f, s:i, s:{s:s, s:{s:s, s:b, s:{"
                     "s:s, s:{s:{s:s, s:o}}, s:[s], s:b}}}}",
                     "model", model, "messages", "role", "system", "content", CLASSIFY_PROMPT,
                     "role", "user", "content", text, "temperature", 0.0, "max_tokens", 20,
                     "response_format", "type", "json_schema", "json_schema", "name", "intent",
                     "strict", 1, "schema", "type", "object", "properties", "intent", "type",
                     "string", "enum", names, "required", "intent", "additionalProperties", 0);
}

int llm_classify_intent(llm_t *self, const char *text, nlu_intent_t *intent)
{
    json_t *req = s_request(llm_model(self), text ? text : "");
    if (!req)
        return SOUK_ENOMEM;
    openai_chat_t r;
    int rc = openai_chat(llm_api(self), req, &r);
    json_decref(req);
    llm_stats_mut(self)->classify_calls++;
    llm_count_call(self, &r.call, rc, NULL);
    if (rc != SOUK_OK)
        return rc;
    /* the structured output is the content, as JSON text */
    json_t *doc = r.content ? json_loads(r.content, JSON_REJECT_DUPLICATES, NULL) : NULL;
    rc = nlu_intent_parse(json_string_value(json_object_get(doc, "intent")), intent);
    if (rc != SOUK_OK)
        rc = SOUK_EPROTO;
    json_decref(doc);
    openai_chat_clear(&r);
    return rc;
}

agent_path_t llm_path(llm_t *self, const char *text, const char *state_json, const char **ack)
{
    *ack = NULL;
    /* a YES to a pending order, a cancellation: the rules know, no call */
    if (agent_path(text, state_json) == AGENT_PATH_ASYNC) {
        *ack = agent_ack(text, state_json);
        return AGENT_PATH_ASYNC;
    }
    llm_classify_t mode = llm_mode(self);
    if (!text || mode == LLM_CLASSIFY_NEVER)
        return AGENT_PATH_SYNC;
    nlu_intent_t intent;
    if (mode == LLM_CLASSIFY_HYBRID && s_builtin_sure(text, &intent))
        llm_stats_mut(self)->classify_saved++;
    else if (llm_classify_intent(self, text, &intent) != SOUK_OK)
        return AGENT_PATH_SYNC;   /* the reply budget still holds: the gateway acknowledges */
    /* the intents whose turn the model may end with a state change */
    switch (intent) {
    case NLU_PLACE_ORDER:
        *ack = "One moment, I'm working on your order\u2026";
        return AGENT_PATH_ASYNC;
    case NLU_SUPPORT:
        *ack = "I'm sorry to hear that. One moment, I'm passing this on to our team\u2026";
        return AGENT_PATH_ASYNC;
    default:
        return AGENT_PATH_SYNC;
    }
}
