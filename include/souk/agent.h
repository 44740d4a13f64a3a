/* souk agent: the built-in shop assistant, one turn at a time.
 *
 * The session actor hands it a turn (the user's debounced messages joined,
 * the dialog state it kept from the last turn, and a way to call the shop's
 * tools) and gets back the reply, the new dialog state, and whether the turn
 * changed anything (an order placed or cancelled, a ticket opened).
 *
 * What it knows of the shop it learns from tool results in this turn and
 * from what it showed before (kept in the dialog state): every product name,
 * price, total and order id in a reply comes from a tool result. It never
 * places or cancels an order without a YES to a confirmation that names the
 * exact items and total.
 *
 * Identity: the tool callback injects the user's identity (the session's
 * own binding, or a test's); the agent never passes one and never reads one
 * from the text. An order id of another user is simply "not found".
 *
 * Idempotency: every state-changing call carries the key "<turn>:<step>".
 * For placing and cancelling, <turn> is the turn that asked for the YES, so
 * one confirmation can never become two orders, whether the YES turn is run
 * again after a crash or the user says YES twice. A ticket's <turn> is the
 * turn that asked for it.
 *
 * Pure computation besides the tool calls: no globals, no I/O; an agent_t
 * belongs to one thread. Replies never exceed AGENT_REPLY_MAX bytes. */
#ifndef SOUK_AGENT_H
#define SOUK_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One WhatsApp message (Twilio refuses longer bodies). */
#define AGENT_REPLY_MAX 1600
/* Products listed in one reply. */
#define AGENT_LIST_MAX 5
/* A confirmation waits this long for its YES (or NO). */
#define AGENT_PENDING_TTL_MS (60 * 60 * 1000)

/* Runs one tool for the bound user: the session sends TOOL_CALL to the tool
 * actor pool, tests call tools_exec (souk/tools.h). idem_key is NULL for a
 * tool that does not change state. Returns SOUK_OK with *result_json, or
 * the tool's souk/error.h code (SOUK_ENOTFOUND, SOUK_ESTOCK, SOUK_ESTATE,
 * ... as tools_exec returns it; TOOL_RESULT carries it as {"code":"ESTOCK"})
 * with *error (may stay NULL); the agent frees both with free(). SOUK_OK
 * without a result counts as an error whose code was lost: the agent then
 * finds the cause with read-only tools. */
typedef int (*agent_tool_fn)(void *arg, const char *tool, const char *args_json,
                             const char *idem_key, char **result_json, char **error);

/* ---- tool plumbing, shared with other agents ---------------------------- */

/* One turn's tool calls: the callback, and the key maker for state changes. */
typedef struct {
    agent_tool_fn call;
    void *arg;
    const char *turn_id;        /* keys are "<turn_id>:<step>" */
    int step;                   /* the last step used; start at 0 */
    int calls;                  /* calls made, for metrics */
} agent_tools_t;

/* Calls tool with args_json. A tool that changes state (place_order,
 * cancel_order, create_support_ticket) gets the idem key "<key_turn>:<step>"
 * with the next step; key_turn NULL means t->turn_id. Same contract as
 * agent_tool_fn otherwise. */
int agent_tools_call(agent_tools_t *t, const char *tool, const char *args_json,
                     const char *key_turn, char **result_json, char **error);
/* Whether the tool named changes state (needs a key; the acknowledged path). */
bool agent_tool_changes_state(const char *tool);

/* ---- routing ------------------------------------------------------------ */

typedef enum {
    AGENT_PATH_SYNC,            /* read-only: answer inline */
    AGENT_PATH_ASYNC,           /* will place/cancel an order or open a ticket */
} agent_path_t;

/* Decided before the agent runs, from the text and the dialog state alone
 * (no tool call, no allocation that outlives it): ASYNC when the turn
 * will (or may) change state — YES to a pending order or cancellation, a
 * cancellation request, a complaint, a request for a person. NULL text is
 * SYNC; NULL state is a new conversation. */
agent_path_t agent_path(const char *text, const char *state_json);
/* The acknowledgement for an ASYNC turn ("One moment, I'm placing your
 * order…"), fitting what the turn will do. Static text. */
const char *agent_ack(const char *text, const char *state_json);

/* ---- turns -------------------------------------------------------------- */

typedef struct agent_s agent_t;

typedef struct {
    const char *shop_name;      /* "Souk Demo Shop"; NULL: "our shop" */
} agent_options_t;

/* opt may be NULL. NULL when out of memory. Caller owns the agent. */
agent_t *agent_new(const agent_options_t *opt);
/* Frees the agent and sets *self_p to NULL; NULL or *NULL is a no-op. */
void agent_destroy(agent_t **self_p);

typedef struct {
    const char *waid;           /* the bound user: required, never shown */
    const char *profile_name;   /* WhatsApp's ProfileName; may be NULL */
    const char *text;           /* the turn's messages joined with "\n" */
    const char *turn_id;        /* the MessageSid that carries the answer */
    const char *state_json;     /* from the last turn; NULL for a new user */
    agent_tool_fn call_tool;
    void *tool_arg;
    const char *shop_name;      /* NULL: the agent's option */
    int64_t now_ms;             /* wall clock, for confirmation expiry; 0: none */
} agent_input_t;

typedef struct {
    char *reply;                /* UTF-8, 1..AGENT_REPLY_MAX bytes */
    char *state_json;           /* to keep for the next turn */
    bool changed;               /* an order placed or cancelled, a ticket opened */
    const char *action;         /* what the turn did, for logs: "search", "confirm"… */
    int tool_calls;
} agent_output_t;

/* Runs one turn. SOUK_OK with *out filled (the caller frees it with
 * agent_output_clear) — tool failures are answered, not returned;
 * SOUK_EINVAL for a missing field; SOUK_ENOMEM. A state_json that cannot
 * be read starts a fresh conversation. Running the same turn_id again with
 * the same input (a crash before the reply was stored) gives the same tool
 * keys, so nothing is ordered twice; with the state it produced the first
 * time it runs from the state before it, so the reply is the same too. */
int agent_turn(agent_t *self, const agent_input_t *in, agent_output_t *out);
void agent_output_clear(agent_output_t *out);

#endif
