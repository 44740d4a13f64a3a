/* Calls to the tool actor pool, on behalf of this session's user.
 *
 * The session's one DEALER is connected to every tool actor (ZMQ_IMMEDIATE:
 * only to those whose connection is up), so ZeroMQ spreads calls over the
 * pool. A call waits for its result with a deadline; when a tool actor dies
 * mid-call the deadline passes and the call is sent again, which the
 * round-robin hands to another actor. That is safe because every
 * state-changing tool is idempotent on the key the agent passes.
 *
 * The identity in every call is the session's own WaId, bound at spawn:
 * nothing the user or a model says can change it.
 *
 * The wait is a nested poll on the tools socket alone: a session serves one
 * user, whose next message waits in the gateway socket anyway. Heartbeats go
 * on during the wait so a slow tool does not make the session look hung. */
#include "session.h"
#include "souk/error.h"
#include "souk/log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int s_send_call(session_t *self, const char *call_id, const char *tool, const char *args,
                       const char *idem_key, int64_t deadline_wall_ms)
{
    souk_msg_t m = { .type = SOUK_MSG_TOOL_CALL };
    m.tool_call.call_id = (char *)call_id;
    m.tool_call.waid = self->waid;
    m.tool_call.tool = (char *)tool;
    m.tool_call.args = (char *)(args ? args : "{}");
    m.tool_call.idem_key = (char *)(idem_key ? idem_key : "");
    m.tool_call.deadline_ms = (uint64_t)deadline_wall_ms;
    m.tool_call.request_id = (char *)souk_log_current_request();
    return souk_msg_send(self->tools, NULL, 0, &m, ZMQ_DONTWAIT);
}

/* Heartbeats when *beat (monotonic) is due; returns how long to wait at
 * most before the next one or `until`, whichever comes first. */
static int s_beat(session_t *self, int64_t now, int64_t *beat, int64_t until)
{
    if (now >= *beat) {
        souk_actor_stats_t st = { .handled = self->handled, .depth = 1 };
        souk_actor_heartbeat(self->actor, &st);
        *beat = now + self->cfg->heartbeat_ms;
    }
    int64_t wait = (until < *beat ? until : *beat) - now;
    return (int)(wait > 0 ? wait : 1);
}

/* Sends the call once a tool actor is connected, waiting until `until`
 * (monotonic) for one: with ZMQ_IMMEDIATE a send fails at once while none
 * is — a session that resumes a turn right after its (re)start, before its
 * connections are up, or a pool whose actors are all being restarted. */
static int s_send_when_connected(session_t *self, const char *call_id, const char *tool,
                                 const char *args, const char *idem_key, int64_t until)
{
    int64_t beat = souk_now_ms() + self->cfg->heartbeat_ms;
    for (;;) {
        int rc = s_send_call(self, call_id, tool, args, idem_key,
                             souk_wall_ms() + (until - souk_now_ms()));
        int64_t now = souk_now_ms();
        if (rc != SOUK_EBUSY || now >= until)
            return rc;
        zmq_pollitem_t item = { .socket = zsock_resolve(self->tools), .events = ZMQ_POLLOUT };
        zmq_poll(&item, 1, s_beat(self, now, &beat, until));
    }
}

/* Waits until `until` (monotonic) for the result of call_id; stale results
 * of earlier attempts are dropped. */
static int s_wait_result(session_t *self, const char *call_id, int64_t until, souk_msg_t *out)
{
    zpoller_t *poller = zpoller_new(self->tools, NULL);
    if (!poller)
        return SOUK_ENOMEM;
    int rc = SOUK_ETIMEDOUT;
    int64_t beat = souk_now_ms() + self->cfg->heartbeat_ms;
    while (rc == SOUK_ETIMEDOUT) {
        int64_t now = souk_now_ms();
        if (now >= until)
            break;
        int wait = s_beat(self, now, &beat, until);
        if (!zpoller_wait(poller, wait))
            continue;
        souk_msg_t m;
        char err[128];
        int r = souk_msg_recv(self->tools, NULL, NULL, &m, ZMQ_DONTWAIT, err, sizeof err);
        if (r == SOUK_EBUSY)
            continue;
        if (r != SOUK_OK) {
            SLOG_WARN("session.tool_bad_result", "err=%s reason=\"%s\"", souk_errname(r), err);
            continue;
        }
        if (m.type == SOUK_MSG_TOOL_RESULT && strcmp(m.tool_result.call_id, call_id) == 0) {
            *out = m;
            rc = SOUK_OK;
        } else {
            souk_msg_clear(&m); /* a late answer to an attempt we gave up on */
        }
    }
    zpoller_destroy(&poller);
    return rc;
}

/* A failed call's result is {"code":"ESTOCK","retryable":false}: the code
 * goes back to the agent, which answers each failure differently. */
static int s_take_result(const souk_msg_t *m, char **result_json, char **error)
{
    if (m->tool_result.ok) {
        *result_json = strdup(m->tool_result.result);
        return *result_json ? SOUK_OK : SOUK_ENOMEM;
    }
    json_t *doc = json_loads(m->tool_result.result, 0, NULL);
    int rc = souk_errcode(json_string_value(json_object_get(doc, "code")));
    json_decref(doc);
    *error = strdup(m->tool_result.error);
    return rc == SOUK_OK ? SOUK_EIO : rc;
}

int session_tool_call(session_t *self, const char *tool, const char *args_json,
                      const char *idem_key, char **result_json, char **error)
{
    *result_json = NULL;
    *error = NULL;
    char *with_location = session_media_tool_args(self, tool, args_json);
    if (with_location)
        args_json = with_location;
    int rc = SOUK_EUNAVAIL;
    for (int attempt = 0; attempt < SESSION_TOOL_ATTEMPTS; attempt++) {
        char call_id[96];
        snprintf(call_id, sizeof call_id, "%d-%llu-%d", (int)getpid(),
                 (unsigned long long)++self->tool_calls, attempt);
        int64_t until = souk_now_ms() + SESSION_TOOL_DEADLINE_MS;
        rc = s_send_when_connected(self, call_id, tool, args_json, idem_key, until);
        if (rc == SOUK_OK) {
            souk_msg_t m;
            rc = s_wait_result(self, call_id, until, &m);
            if (rc == SOUK_OK) {
                rc = s_take_result(&m, result_json, error);
                souk_msg_clear(&m);
                free(with_location);
                return rc;
            }
        }
        SLOG_WARN("session.tool_retry", "tool=%s attempt=%d err=%s", tool, attempt,
                  souk_errname(rc));
    }
    free(with_location);
    *error = strdup("the shop's tools are not answering right now");
    return SOUK_EUNAVAIL;
}
