/* Tool actor: one of a pool of stateless processes that run the shop's tools
 * for session actors. It binds its own ROUTER (tool-N); every session
 * connects a DEALER to each tool actor, so ZeroMQ spreads calls over the pool
 * and a call to a dead actor is retried by the session on another one. */
#include "souk/actor.h"
#include "souk/endpoints.h"
#include "souk/error.h"
#include "souk/log.h"
#include "souk/roles.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    souk_actor_t *actor;
    zsock_t *router;
    uint64_t handled;
    int64_t last_ms;
} self_t;

static int s_handle_call(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    self_t *self = arg;
    unsigned char id[256];
    size_t idlen = sizeof id;
    souk_msg_t m;
    char err[128];
    int rc = souk_msg_recv(sock, id, &idlen, &m, ZMQ_DONTWAIT, err, sizeof err);
    if (rc == SOUK_EBUSY)
        return 0;
    if (rc != SOUK_OK) {
        SLOG_WARN("tool.bad_message", "err=%s reason=\"%s\"", souk_errname(rc), err);
        return 0;
    }
    if (m.type == SOUK_MSG_TOOL_CALL) {
        souk_msg_t r = { .type = SOUK_MSG_TOOL_RESULT };
        r.tool_result.call_id = m.tool_call.call_id;
        r.tool_result.ok = false;
        r.tool_result.result = "";
        r.tool_result.error = "unknown tool";
        souk_msg_send(sock, id, idlen, &r, ZMQ_DONTWAIT);
        self->handled++;
        self->last_ms = souk_now_ms();
    }
    souk_msg_clear(&m);
    return 0;
}

static int s_on_stop(const char *reason, uint64_t drain_ms, void *arg)
{
    (void)reason; (void)drain_ms; (void)arg;
    return -1; /* stateless: nothing to drain */
}

static void s_stats(souk_actor_stats_t *st, void *arg)
{
    self_t *self = arg;
    st->handled = self->handled;
    st->idle_ms = (uint64_t)(souk_now_ms() - self->last_ms);
}

int tools_main(souk_config_t *cfg, const char *name, const char *arg)
{
    self_t self = { .last_ms = souk_now_ms() };
    int index = arg ? atoi(arg) : 0;
    self.actor = souk_actor_new(name, "tool", cfg);
    if (!self.actor)
        return 1;
    char ep[512];
    souk_endpoint(ep, sizeof ep, cfg->run_dir, SOUK_EP_TOOL, index);
    self.router = zsock_new(ZMQ_ROUTER);
    zsock_set_linger(self.router, SOUK_LINGER_MS);
    zsock_set_router_mandatory(self.router, 1);
    if (zsock_bind(self.router, "%s", ep) < 0) {
        SLOG_ERROR("tool.bind", "endpoint=%s", ep);
        zsock_destroy(&self.router);
        souk_actor_destroy(&self.actor);
        return 1;
    }
    souk_actor_monitor(self.actor, self.router, "tool");
    zloop_t *loop = zloop_new();
    souk_actor_handlers_t h = { .on_stop = s_on_stop, .stats = s_stats, .arg = &self };
    souk_actor_attach(self.actor, loop, &h);
    zloop_reader(loop, self.router, s_handle_call, &self);
    souk_actor_ready(self.actor);
    zloop_start(loop);
    zloop_destroy(&loop);
    zsock_destroy(&self.router);
    souk_actor_destroy(&self.actor);
    return 0;
}
