/* What the session says: the built-in agent's reply (souk/agent.h), or
 * with SOUK_LLM=openai the LLM agent's (souk/llm.h, the built-in agent its
 * fallback), with
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

/* History entries read for the model (the LLM trims them to its token budget). */
#define ANSWER_HISTORY_MAX 24

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

/* ---- the LLM agent ------------------------------------------------------- */

/* Called by the model client while it waits: the session keeps beating, so a
 * long model call does not make it look hung. */
static void s_tick(void *arg)
{
    session_t *self = arg;
    int64_t now = souk_now_ms();
    if (now < self->llm_beat_ms)
        return;
    souk_actor_stats_t st = { .handled = self->handled, .depth = 1 };
    souk_actor_heartbeat(self->actor, &st);
    self->llm_beat_ms = now + self->cfg->heartbeat_ms / 2;
}

/* The session's LLM client, made on first use; NULL with SOUK_LLM=builtin or
 * when it cannot be made (logged once: the built-in agent answers). */
static llm_t *s_llm(session_t *self)
{
    const souk_config_t *cfg = self->cfg;
    if (self->llm || self->llm_broken || strcmp(cfg->agent, "builtin") != 0
        || strcmp(cfg->llm, "openai") != 0)
        return self->llm;
    llm_options_t opt = {
        .base_url = cfg->openai_base_url, .api_key = cfg->openai_api_key,
        .model = cfg->llm_model, .timeout_ms = (int)cfg->llm_timeout_ms,
        .max_steps = (int)cfg->llm_max_steps, .shop_name = cfg->shop_name,
        .tick = s_tick, .tick_arg = self,
        .tick_ms = (int)(cfg->heartbeat_ms / 4 > 5 ? cfg->heartbeat_ms / 4 : 5),
    };
    char err[256] = "";
    int rc = llm_classify_parse(cfg->llm_classify, &opt.classify);
    if (rc == SOUK_OK)
        rc = llm_new(&opt, &self->llm, err, sizeof err);
    if (rc != SOUK_OK) {
        self->llm_broken = true;
        SLOG_ERROR("session.llm_unavailable", "err=%s reason=\"%s\"", souk_errname(rc), err);
    }
    return self->llm;
}

agent_path_t session_answer_path(session_t *self, const char *text, const char *state_json,
                                 const char **ack)
{
    llm_t *llm = strcmp(self->cfg->agent, "echo") == 0 ? NULL : s_llm(self);
    agent_path_t path;
    if (llm) {
        self->llm_beat_ms = 0;
        path = llm_path(llm, text, state_json, ack);
    } else {
        path = agent_path(text, state_json);
        *ack = path == AGENT_PATH_ASYNC ? agent_ack(text, state_json) : NULL;
    }
    if (path == AGENT_PATH_ASYNC && !*ack)
        *ack = "One moment, please\u2026";
    return path;
}

void session_llm_stats(const session_t *self, llm_stats_t *out)
{
    if (self->llm)
        llm_stats(self->llm, out);
    else
        memset(out, 0, sizeof *out);
}

typedef struct {
    const session_turn_t *turn;
    llm_history_t items[ANSWER_HISTORY_MAX];
    char *texts[ANSWER_HISTORY_MAX];
    size_t n;
} s_history_t;

/* Earlier messages only: the turn's own are the user's message. */
static int s_history_add(const store_history_t *h, void *arg)
{
    s_history_t *hist = arg;
    for (size_t i = 0; h->msg_sid && i < hist->turn->n; i++)
        if (strcmp(h->msg_sid, hist->turn->msgs[i].msg_sid) == 0)
            return 0;
    if (hist->n == ANSWER_HISTORY_MAX || !h->text)
        return 0;
    hist->texts[hist->n] = strdup(h->text);
    if (!hist->texts[hist->n])
        return SOUK_ENOMEM;
    hist->items[hist->n] = (llm_history_t) { .from_user = h->dir == STORE_DIR_IN,
                                             .text = hist->texts[hist->n] };
    hist->n++;
    return 0;
}

static void s_log_llm(const session_t *self, const agent_output_t *out, const llm_turn_info_t *i)
{
    llm_stats_t st;
    llm_stats(self->llm, &st);
    SLOG_INFO("session.llm", "action=%s changed=%d tools=%d fallback=%d steps=%d refused=%d "
              "tokens_in=%lld tokens_out=%lld latency_ms=%lld user_calls=%llu user_tokens_in=%llu "
              "user_tokens_out=%llu user_saved=%llu user_fallbacks=%llu",
              out->action ? out->action : "?", out->changed, out->tool_calls, i->fallback,
              i->steps, i->refused, (long long)i->tokens_in, (long long)i->tokens_out,
              (long long)i->latency_ms, (unsigned long long)st.calls,
              (unsigned long long)st.tokens_in, (unsigned long long)st.tokens_out,
              (unsigned long long)st.classify_saved, (unsigned long long)st.fallbacks);
}

/* One turn of the LLM agent; SOUK_OK with *out, or the agents' error. */
static int s_llm_turn(const session_turn_t *turn, llm_t *llm, agent_t *agent,
                      const agent_input_t *in, agent_output_t *out)
{
    s_history_t hist = { .turn = turn };
    int rc = store_history_recent(turn->store, turn->waid, ANSWER_HISTORY_MAX, s_history_add,
                                  &hist);
    if (rc == SOUK_OK) {
        llm_input_t lin = { .in = *in, .history = hist.items, .n_history = hist.n };
        llm_turn_info_t info;
        turn->session->llm_beat_ms = 0;
        rc = llm_turn(llm, agent, &lin, out, &info);
        if (info.error != SOUK_OK) {
            char why[200];
            SLOG_WARN("session.llm_failed", "err=%s fallback=%d reason=%s",
                      souk_errname(info.error), info.fallback,
                      souk_log_quote(info.why, why, sizeof why));
        }
        if (rc == SOUK_OK)
            s_log_llm(turn->session, out, &info);
    }
    for (size_t i = 0; i < hist.n; i++)
        free(hist.texts[i]);
    return rc;
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
    llm_t *llm = s_llm(turn->session);
    rc = !agent ? SOUK_ENOMEM
       : llm ? s_llm_turn(turn, llm, agent, &in, &out)
             : agent_turn(agent, &in, &out);
    if (rc == SOUK_OK
        && store_user_state_put(turn->store, turn->waid, out.state_json, souk_wall_ms())
               == SOUK_OK) {
        if (!llm)
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
