/* Tool actor: one of a pool of stateless processes that run the shop's tools
 * for session actors. It binds its own ROUTER (tool-N); every session
 * connects a DEALER to each tool actor, so ZeroMQ spreads calls over the pool
 * and a call to a dead actor is retried by the session on another one (with
 * the same idem_key, so a state change is never made twice).
 *
 * One call at a time: TOOL_CALL{call_id, waid, tool, args, idem_key,
 * deadline_ms} runs through tools_exec (src/tools_exec.c: identity,
 * validation, idempotency, the tools) and is answered with
 * TOOL_RESULT{call_id, ok, result, error} to the caller's routing id. When
 * ok is false, error is a sentence and result is {"code", "retryable"}.
 * deadline_ms is epoch milliseconds (0: none); a call already past it is
 * answered with ETIMEDOUT without being run, since its caller has given up.
 *
 * Merchant notifications are outbox rows the tools put; each one is hinted
 * to the sender (SEND_HINT on its PULL endpoint), whose periodic scan also
 * finds any hint that was lost. */
#include "souk/actor.h"
#include "souk/endpoints.h"
#include "souk/error.h"
#include "souk/log.h"
#include "souk/roles.h"
#include "souk/search.h"
#include "souk/store.h"
#include "souk/metrics.h"
#include "souk/tools.h"
#include "souk/twilio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A broken or missing index is looked for again at most this often. */
#define SEARCH_REOPEN_MS 1000
#define STORE_CACHE_KIB 2048

typedef struct {
    souk_config_t *cfg;
    souk_actor_t *actor;
    zsock_t *router;       /* tool-N: session DEALERs */
    zsock_t *sender;       /* PUSH: SEND_HINT */
    store_t *store;
    search_t *search;
    int64_t search_tried_ms;
    tools_ctx_t ctx;
    uint64_t handled, failed, late;
    int64_t last_ms;
} self_t;

static void s_hint(const char *outbox_key, void *arg)
{
    self_t *self = arg;
    souk_msg_t m = { .type = SOUK_MSG_SEND_HINT };
    m.send_hint.outbox_key = (char *)outbox_key;
    m.send_hint.request_id = (char *)souk_log_current_request();
    int rc = souk_msg_send(zsock_resolve(self->sender), NULL, 0, &m, ZMQ_DONTWAIT);
    if (rc != SOUK_OK) /* the sender's scan finds the row anyway */
        SLOG_WARN("tool.hint", "key=%s err=%s", outbox_key, souk_errname(rc));
}

static void s_open_search(self_t *self)
{
    int64_t now = souk_now_ms();
    if (self->search || (self->search_tried_ms && now - self->search_tried_ms < SEARCH_REOPEN_MS))
        return;
    self->search_tried_ms = now;
    char err[256];
    int rc = search_open(self->cfg->data_dir, NULL, &self->search, err, sizeof err);
    if (rc != SOUK_OK) {
        SLOG_WARN("tool.search_open", "err=%s detail=\"%s\"", souk_errname(rc), err);
        self->search = NULL;
    }
    self->ctx.search = self->search;
}

static void s_answer(self_t *self, const void *id, size_t idlen, const char *call_id, bool ok,
                     const char *result, const char *error)
{
    souk_msg_t r = { .type = SOUK_MSG_TOOL_RESULT };
    r.tool_result.call_id = (char *)call_id;
    r.tool_result.ok = ok;
    r.tool_result.result = (char *)(result ? result : "");
    r.tool_result.error = (char *)(error ? error : "");
    int rc = souk_msg_send(zsock_resolve(self->router), id, idlen, &r, ZMQ_DONTWAIT);
    if (rc != SOUK_OK) /* the caller went away: it retries elsewhere, with the same key */
        SLOG_WARN("tool.reply", "call=%s err=%s", call_id, souk_errname(rc));
}

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* One call's figures: the tool name is a label only when it is a word
 * (a model may name anything). */
static void s_count(const char *tool, bool ok, int64_t start_us)
{
    size_t n = strlen(tool);
    bool word = n > 0 && n < 48 && strspn(tool, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
    char labels[96];
    snprintf(labels, sizeof labels, "tool=\"%s\",result=\"%s\"", word ? tool : "other",
             ok ? "ok" : "error");
    souk_metric_add("souk_tool_calls_total", labels, 1);
    snprintf(labels, sizeof labels, "tool=\"%s\"", word ? tool : "other");
    souk_metric_observe("souk_tool_call_duration_seconds", labels,
                        (double)(s_now_us() - start_us) / 1e6);
}

static void s_run_call(self_t *self, const void *id, size_t idlen, const souk_tool_call_t *call);

static void s_handle_call(self_t *self, const void *id, size_t idlen, const souk_tool_call_t *call)
{
    /* the session's request id: this call's lines belong to that message */
    souk_log_request(*call->request_id ? call->request_id : NULL);
    s_run_call(self, id, idlen, call);
    souk_log_request(NULL);
}

static void s_run_call(self_t *self, const void *id, size_t idlen, const souk_tool_call_t *call)
{
    int64_t start_us = s_now_us();
    char masked[48];
    twilio_mask_phone(call->waid, masked, sizeof masked);
    int64_t start = souk_now_ms();
    if (call->deadline_ms && (uint64_t)souk_wall_ms() > call->deadline_ms) {
        self->late++;
        char *code = tools_error_json(SOUK_ETIMEDOUT);
        s_answer(self, id, idlen, call->call_id, false, code,
                 "The call's deadline passed before it could run; nothing was done.");
        free(code);
        SLOG_INFO("tool.late", "call=%s tool=%s user=%s", call->call_id, call->tool, masked);
        s_count(call->tool, false, start_us);
        return;
    }
    if (strcmp(call->tool, "search_products") == 0)
        s_open_search(self);
    char *result = NULL, *error = NULL;
    int rc = tools_exec(&self->ctx, call->waid, call->tool, call->args, call->idem_key, &result, &error);
    s_count(call->tool, rc == SOUK_OK, start_us);
    if (rc == SOUK_OK) {
        s_answer(self, id, idlen, call->call_id, true, result, "");
    } else {
        self->failed++;
        char *code = tools_error_json(rc);
        s_answer(self, id, idlen, call->call_id, false, code, error ? error : souk_strerror(rc));
        free(code);
    }
    char q[256];
    SLOG_INFO("tool.call", "call=%s tool=%s user=%s ok=%s err=%s ms=%lld%s%s", call->call_id,
              call->tool, masked, rc == SOUK_OK ? "yes" : "no", rc == SOUK_OK ? "-" : souk_errname(rc),
              (long long)(souk_now_ms() - start), rc == SOUK_OK ? "" : " reason=",
              rc == SOUK_OK ? "" : souk_log_quote(error, q, sizeof q));
    free(result);
    free(error);
}

static int s_on_call(zloop_t *loop, zsock_t *sock, void *arg)
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
    if (m.type == SOUK_MSG_TOOL_CALL)
        s_handle_call(self, id, idlen, &m.tool_call);
    else
        SLOG_WARN("tool.unexpected", "type=%s", souk_msg_name(m.type));
    self->handled++;
    self->last_ms = souk_now_ms();
    souk_msg_clear(&m);
    return 0;
}

static int s_on_stop(const char *reason, uint64_t drain_ms, void *arg)
{
    (void)reason; (void)drain_ms; (void)arg;
    return -1; /* a call runs to its end inside one handler: nothing to drain */
}

static void s_stats(souk_actor_stats_t *st, void *arg)
{
    self_t *self = arg;
    st->handled = self->handled;
    st->idle_ms = (uint64_t)(souk_now_ms() - self->last_ms);
}

/* Binds, connects and opens everything; 0, 1 or SOUK_EXIT_CONFIG. */
static int s_open(self_t *self, int index)
{
    souk_config_t *cfg = self->cfg;
    char ep[512], err[256];
    souk_endpoint(ep, sizeof ep, cfg->run_dir, SOUK_EP_TOOL, index);
    self->router = zsock_new(ZMQ_ROUTER);
    if (!self->router)
        return 1;
    zsock_set_linger(self->router, SOUK_LINGER_MS);
    zsock_set_router_mandatory(self->router, 1);
    zsock_set_sndhwm(self->router, SOUK_HWM_DEFAULT);
    zsock_set_rcvhwm(self->router, SOUK_HWM_DEFAULT);
    if (zsock_bind(self->router, "%s", ep) < 0) {
        SLOG_ERROR("tool.bind", "endpoint=%s", ep);
        return 1;
    }
    souk_endpoint(ep, sizeof ep, cfg->run_dir, SOUK_EP_SENDER, 0);
    self->sender = zsock_new(ZMQ_PUSH);
    if (!self->sender)
        return 1;
    zsock_set_linger(self->sender, SOUK_LINGER_MS);
    zsock_set_sndhwm(self->sender, SOUK_HWM_DEFAULT);
    if (zsock_connect(self->sender, "%s", ep) < 0) {
        SLOG_ERROR("tool.connect", "endpoint=%s", ep);
        return 1;
    }
    /* a call waits for the write lock well within the hung-actor limit (3 heartbeats) */
    int64_t busy = 2 * cfg->heartbeat_ms;
    store_options_t opt = { .cache_kib = STORE_CACHE_KIB,
                            .busy_timeout_ms = (int)(busy < 200 ? 200 : busy > 5000 ? 5000 : busy) };
    int rc = store_open(cfg->store, cfg->store_dir, &opt, &self->store, err, sizeof err);
    if (rc != SOUK_OK) {
        SLOG_ERROR("tool.store", "err=%s detail=\"%s\"", souk_errname(rc), err);
        return rc == SOUK_ECONFIG || rc == SOUK_EINVAL ? SOUK_EXIT_CONFIG : 1;
    }
    self->ctx = (tools_ctx_t){
        .store = self->store, .merchant_whatsapp = cfg->merchant_whatsapp,
        .merchant_webhook = cfg->merchant_webhook, .hint = s_hint, .hint_arg = self,
    };
    s_open_search(self);
    return 0;
}

int tools_main(souk_config_t *cfg, const char *name, const char *arg)
{
    self_t self = { .cfg = cfg, .last_ms = souk_now_ms() };
    int index = arg ? atoi(arg) : 0;
    self.actor = souk_actor_new(name, "tool", cfg);
    if (!self.actor)
        return 1;
    zloop_t *loop = zloop_new();
    int rc = loop ? s_open(&self, index) : 1;
    if (rc == 0) {
        souk_actor_monitor(self.actor, self.router, "tool");
        souk_actor_handlers_t h = { .on_stop = s_on_stop, .stats = s_stats, .arg = &self };
        if (souk_actor_attach(self.actor, loop, &h) != SOUK_OK
            || zloop_reader(loop, self.router, s_on_call, &self) < 0)
            rc = 1;
    }
    if (rc == 0) {
        souk_actor_ready(self.actor);
        SLOG_INFO("tool.ready", "index=%d search=%s", index, self.search ? "yes" : "no");
        zloop_start(loop);
    }
    zloop_destroy(&loop);
    search_close(&self.search);
    store_close(&self.store);
    zsock_destroy(&self.sender);
    zsock_destroy(&self.router);
    souk_actor_destroy(&self.actor);
    return rc;
}
