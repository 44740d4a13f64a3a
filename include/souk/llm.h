/* souk llm: the shop assistant as a language model with the shop's tools,
 * over the OpenAI chat completions API (souk/openai.h), with the built-in
 * agent (souk/agent.h) as its fallback.
 *
 * A turn: the system prompt (the shop's name and rules: never invent a
 * product, price or order id; WhatsApp formatting), the recent history
 * (bounded by an estimate of tokens, not by a count of messages), the
 * products shown last turn fetched again (get_product: today's price and
 * stock, not the remembered ones), the user's message; then up to
 * max_steps model calls, each of which may call tools, and the final text.
 *
 * Identity stays out of the model: the tools' JSON schemas have no user
 * parameter, every call goes through the same agent_tool_fn callback the
 * built-in agent uses (the session injects its own bound user), and the
 * arguments the model writes are validated against the tool's schema here,
 * before the call: an unknown tool, a field the schema does not name (a
 * "user_id", say) or a wrong type goes back to the model as an error
 * result, and the tool never runs. State-changing calls carry the
 * idempotency key "<turn>:<step>" (agent_tools_call), so a re-run turn does
 * not order twice.
 *
 * Prices and totals the model may quote come only from tool results in its
 * context; after a state change, the reply's order id and total are checked
 * against the tool's result, and a reply that misquotes them is replaced
 * by one written from the result.
 *
 * When the API fails or times out: a turn that changed nothing is answered
 * by the built-in agent (the same input); a turn that already changed
 * state gets a reply written from the tool results, or a clear apology.
 *
 * Path: llm_path() decides, before the turn runs, whether it is answered
 * inline or acknowledged first (souk/agent.h's agent_path). With
 * classify "always" a small structured-output call (the five intents of
 * souk/nlu.h) decides; "hybrid" makes that call only when the built-in
 * classifier is unsure (and counts the calls saved); "never" uses the
 * built-in rules alone. The built-in rules' ASYNC (a YES to a pending
 * order, a cancellation) always stands.
 *
 * Counters (llm_stats_t) are kept per client: a session actor has one
 * client, so its counters are its user's; llm_stats_add sums them.
 * An llm_t belongs to one thread. */
#ifndef SOUK_LLM_H
#define SOUK_LLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "souk/agent.h"
#include "souk/nlu.h"
#include "souk/openai.h"

/* The history given to the model: at most this many estimated tokens. */
#define LLM_HISTORY_TOKENS 1500
/* Products of the last turn fetched again for a follow-up. */
#define LLM_SHOWN_MAX AGENT_LIST_MAX

typedef struct llm_s llm_t;

typedef enum { LLM_CLASSIFY_NEVER, LLM_CLASSIFY_HYBRID, LLM_CLASSIFY_ALWAYS } llm_classify_t;

typedef struct {
    const char *base_url;       /* OPENAI_BASE_URL */
    const char *api_key;        /* OPENAI_API_KEY; may be NULL/"" */
    const char *model;          /* "gpt-4o-mini" */
    llm_classify_t classify;
    int timeout_ms;             /* per model call, retries included */
    int max_steps;              /* model calls per turn; 0: 6 */
    const char *shop_name;      /* NULL: "our shop" */
    openai_tick_fn *tick;       /* called while waiting; may be NULL */
    void *tick_arg;
    int tick_ms;
} llm_options_t;

/* What the metrics read. */
typedef struct {
    uint64_t turns;             /* turns run */
    uint64_t fallbacks;         /* turns the built-in agent answered */
    uint64_t calls;             /* model calls (agent steps + classifications) */
    uint64_t failures;          /* model calls that failed */
    uint64_t tokens_in, tokens_out;
    uint64_t latency_ms;        /* summed over model calls */
    uint64_t classify_calls;    /* classifications asked of the model */
    uint64_t classify_saved;    /* ... skipped because the built-in one was sure */
    uint64_t tool_calls, tool_refused; /* refused: not run (bad arguments, unknown tool) */
} llm_stats_t;

/* "always" / "hybrid" / "never" into *out; SOUK_EINVAL otherwise. */
int llm_classify_parse(const char *s, llm_classify_t *out);

/* SOUK_OK with *out (caller destroys), or openai_new's errors with err. */
int llm_new(const llm_options_t *opt, llm_t **out, char *err, size_t errlen);
void llm_destroy(llm_t **self_p);
void llm_stats(const llm_t *self, llm_stats_t *out);
/* acc += add, field by field. */
void llm_stats_add(llm_stats_t *acc, const llm_stats_t *add);

/* One entry of the conversation so far, oldest first. */
typedef struct {
    bool from_user;
    const char *text;
} llm_history_t;

typedef struct {
    agent_input_t in;           /* as for agent_turn (state_json included) */
    const llm_history_t *history; /* earlier messages, oldest first; the turn's own excluded */
    size_t n_history;
} llm_input_t;

/* What the turn did besides agent_output_t. */
typedef struct {
    bool fallback;              /* the built-in agent answered */
    int steps;                  /* model calls in the turn */
    int refused;                /* tool calls refused */
    int64_t tokens_in, tokens_out, latency_ms;
    int error;                  /* the API's failure that ended the loop; SOUK_OK when none */
    char why[160];              /* its sentence (no secret, no user text) */
} llm_turn_info_t;

/* Runs one turn; same contract as agent_turn (out freed with
 * agent_output_clear). fallback is the built-in agent to use when the API
 * fails (required). info may be NULL. */
int llm_turn(llm_t *self, agent_t *fallback, const llm_input_t *in, agent_output_t *out,
             llm_turn_info_t *info);

/* The path of a turn (see the top). *ack gets the acknowledgement text for
 * ASYNC (static), NULL for SYNC. */
agent_path_t llm_path(llm_t *self, const char *text, const char *state_json, const char **ack);

/* The structured-output classification alone (one model call): SOUK_OK
 * with *intent, or the API's error. */
int llm_classify_intent(llm_t *self, const char *text, nlu_intent_t *intent);

/* Whether the hybrid mode would skip the model for text (the built-in
 * classifier is sure). Pure; what the benchmark counts. */
bool llm_classify_confident(const char *text);

/* The system prompt for shop (caller frees); exposed for tests. */
char *llm_system_prompt(const char *shop);

#endif
