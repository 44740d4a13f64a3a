/* What the session says: the built-in agent's reply (souk/agent.h), with
 * the user's dialog state loaded from the store before the turn and saved
 * after it — before the reply goes to the outbox, so a crash in between
 * re-runs the turn from the state it started from (the agent recognises its
 * own turn id) with the same tool keys: nothing is ordered twice. */
#include "session.h"
#include "souk/agent.h"
#include "souk/error.h"
#include "souk/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The agent's tool callback: the tool actor pool, as this session's user. */
static int s_call_tool(void *arg, const char *tool, const char *args_json, const char *idem_key,
                       char **result_json, char **error)
{
    return session_tool_call(arg, tool, args_json, idem_key, result_json, error);
}

char *session_turn_text(const session_msg_t *msgs, size_t n)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].body || !*msgs[i].body)
            continue;
        fprintf(f, "%s%s", first ? "" : "\n", msgs[i].body);
        first = false;
    }
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

char *session_answer(const session_turn_t *turn)
{
    if (strcmp(turn->session->cfg->agent, "echo") == 0)
        return session_answer_echo(turn);
    char *text = session_turn_text(turn->msgs, turn->n), *state = NULL, *reply = NULL;
    int rc = text ? store_user_state_get(turn->store, turn->waid, &state) : SOUK_ENOMEM;
    if (rc != SOUK_OK && rc != SOUK_ENOTFOUND) {
        free(text);
        return NULL;        /* the session fails and runs the turn again */
    }
    agent_t *agent = agent_new(&(agent_options_t) { .shop_name = turn->session->cfg->shop_name });
    agent_input_t in = {
        .waid = turn->waid, .profile_name = turn->profile_name, .text = text,
        .turn_id = turn->turn_sid, .state_json = state, .call_tool = s_call_tool,
        .tool_arg = turn->session, .now_ms = souk_wall_ms(),
    };
    agent_output_t out = { 0 };
    if (agent && agent_turn(agent, &in, &out) == SOUK_OK
        && store_user_state_put(turn->store, turn->waid, out.state_json, souk_wall_ms())
               == SOUK_OK) {
        SLOG_INFO("session.agent", "action=%s changed=%d tools=%d", out.action, out.changed,
                  out.tool_calls);
        reply = out.reply;
        out.reply = NULL;
    }
    agent_output_clear(&out);
    agent_destroy(&agent);
    free(state);
    free(text);
    return reply;
}
