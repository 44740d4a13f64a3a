/* Sender actor: the one consumer of the durable outbox.
 *
 * Replies are written to the outbox (state queued) before anyone tries to
 * send them; this actor sends each due row through Twilio's REST API, or in
 * console mode (no TWILIO_ACCOUNT_SID) to the log and the events stream, and
 * records the outcome. It looks for due rows at start, on every SEND_HINT,
 * every SCAN_MS, and when the next retry or the next send token is due, so a
 * lost hint costs only latency.
 *
 * A send is queued -> sending (a lease: next_attempt_ms = now + 30 s, one
 * attempt counted) -> POST -> sent with Twilio's sid, back to queued with a
 * backoff (429, 5xx, 63018, network errors before the request left), or
 * failed (any other 4xx: Twilio's code and message). The rules (opt-out, the
 * 24-hour window, splitting, backoff, pace) are in outbox.c. Up to
 * SENDER_MAX_INFLIGHT sends are out at once, but at most one per recipient, so a
 * user's replies reach Twilio in the order they became due. Console mode
 * has no number to pace and sends at once.
 *
 * Crashes. A row left in `sending` was being sent by a sender that died, or
 * whose request got no answer: Twilio may or may not have it. It is
 * reconciled with Twilio's list of messages before anything is sent again
 * (reconcile.c, with the residual risk spelled out).
 *
 * One sender per store: the supervisor starts it again only after the old
 * one is reaped, so at start every `sending` row is an orphan and is taken
 * over at once, without waiting for its lease. Later scans take over only
 * rows whose lease ran out.
 *
 * This file is the actor's shape: set-up, the loop, the bus, the scans and
 * the wake-ups; send.c sends, reconcile.c handles orphans. */
#include "sender.h"

#include "souk/curl.h"
#include "souk/endpoints.h"
#include "souk/error.h"
#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/roles.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define SCAN_MS 500
#define SWEEP_MS 2000
#define SWEEP_AGE_MS 10000
#define SWEEP_BATCH 100
/* A user already asked for is asked again only after this: a session that
 * is alive but slow, or a user in quarantine, is not asked every sweep. */
#define SWEEP_REPEAT_MS 30000
#define SWEPT_MAX 10000
#define DUE_BATCH 200
#define STATUS_PATH "/webhooks/whatsapp/status"
#define REQUESTS_MAX 4096 /* request ids remembered from hints */
/* The outbox is counted by state this often, for souk_outbox_messages: a
 * scan of the whole table, so not on every pump (and a scrape never waits
 * for it). */
#define OUTBOX_COUNT_MS 5000

static void s_pump(sender_t *self);

/* ---- helpers shared with send.c and reconcile.c ------------------------------ */

uint32_t sender_random(void)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        r = (uint32_t)souk_now_ms() * 2654435761u;
    return r;
}

int64_t sender_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void sender_count(const char *channel, const char *result, int code, const sender_job_t *job)
{
    char labels[96];
    snprintf(labels, sizeof labels, "channel=\"%s\",result=\"%s\"", channel, result);
    souk_metric_add("souk_sends_total", labels, 1);
    if (code) {
        snprintf(labels, sizeof labels, "code=\"%d\"", code);
        souk_metric_add("souk_send_errors_total", labels, 1);
    }
    if (job && job->started_us) {
        snprintf(labels, sizeof labels, "channel=\"%s\"", channel);
        souk_metric_observe("souk_send_duration_seconds", labels,
                            (double)(sender_now_us() - job->started_us) / 1e6);
    }
}

const char *sender_request_of(sender_t *self, const char *key)
{
    char base[SOUK_CAP_ID + 1];
    snprintf(base, sizeof base, "%.*s", (int)strcspn(key, "#"), key);
    return zhashx_lookup(self->requests, base);
}

static void s_remember_request(sender_t *self, const souk_send_hint_t *h)
{
    if (!*h->request_id || zhashx_lookup(self->requests, h->outbox_key))
        return;
    if (zhashx_size(self->requests) >= REQUESTS_MAX)
        zhashx_purge(self->requests); /* logs lose the id of older rows, nothing else */
    char *copy = strdup(h->request_id);
    if (copy && zhashx_insert(self->requests, h->outbox_key, copy) != 0)
        free(copy);
}

/* Who a row goes to, for one-send-at-a-time per recipient. */
const char *sender_recipient(const store_outbox_t *row)
{
    return row->waid && *row->waid ? row->waid : row->to_addr ? row->to_addr : "";
}

void sender_job_free(sender_job_t *job)
{
    store_outbox_clear(&job->row);
    outbox_plan_clear(&job->plan);
    free(job->expect);
    free(job);
}

static int s_on_end(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop; (void)timer_id; (void)arg;
    return -1;
}

static int s_on_wake(zloop_t *loop, int timer_id, void *arg);

/* Keeps one timer, for the earliest pending wake-up. */
static void s_arm(sender_t *self)
{
    if (self->wake_timer >= 0 && self->nwakes && self->wake_at == self->wakes[0])
        return;
    if (self->wake_timer >= 0)
        zloop_timer_end(self->loop, self->wake_timer);
    self->wake_timer = -1;
    if (!self->nwakes)
        return;
    int64_t now = souk_now_ms(), next = self->wakes[0];
    self->wake_timer = zloop_timer(self->loop, (size_t)(next > now ? next - now : 1), 1, s_on_wake, self);
    self->wake_at = next;
}

static int s_on_wake(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    sender_t *self = arg;
    if (timer_id != self->wake_timer)
        return 0; /* ended in this pass of the loop, but it fired anyway */
    self->wake_timer = -1;
    int64_t now = souk_now_ms();
    int due = 0;
    while (due < self->nwakes && self->wakes[due] <= now)
        due++;
    memmove(self->wakes, self->wakes + due, (size_t)(self->nwakes - due) * sizeof *self->wakes);
    self->nwakes -= due;
    s_pump(self);
    s_arm(self);
    return 0;
}

/* Pump again in ms (monotonic; at least 1), merging with a wake-up already
 * planned within 2 ms after it. */
void sender_wake_in(sender_t *self, int64_t ms)
{
    int64_t at = souk_now_ms() + (ms < 1 ? 1 : ms);
    int i = 0;
    while (i < self->nwakes && self->wakes[i] < at)
        i++;
    if (i < self->nwakes && self->wakes[i] - at <= 2)
        return;
    if (self->nwakes == SENDER_WAKES_MAX) {
        if (i == SENDER_WAKES_MAX)
            return;
        self->nwakes--;
    }
    memmove(self->wakes + i + 1, self->wakes + i, (size_t)(self->nwakes - i) * sizeof *self->wakes);
    self->wakes[i] = at;
    self->nwakes++;
    s_arm(self);
}

/* One conditional move of a row, logged when it does not happen. */
int sender_move(sender_t *self, const char *key, store_outbox_state_t from, store_outbox_state_t to,
                  const store_outbox_change_t *change, store_outbox_t *out)
{
    int rc = store_outbox_transition(self->store, key, from, to, change, out);
    if (rc != SOUK_OK)
        SLOG_WARN("send.move", "key=%s from=%s to=%s err=%s detail=\"%s\"", key,
                  store_outbox_state_name(from), store_outbox_state_name(to), souk_errname(rc),
                  rc == SOUK_EBUSY || rc == SOUK_EIO ? store_last_error(self->store) : "");
    return rc;
}

void sender_fail_row(sender_t *self, const char *key, store_outbox_state_t from, int code,
                       const char *reason)
{
    store_outbox_change_t ch = { .error_code = code, .error_reason = reason, .now_ms = souk_wall_ms() };
    char q[300];
    if (sender_move(self, key, from, STORE_OUTBOX_FAILED, &ch, NULL) == SOUK_OK)
        SLOG_INFO("send.failed", "key=%s code=%d reason=%s", key, code,
                  souk_log_quote(reason, q, sizeof q));
}

void sender_job_done(sender_t *self, sender_job_t *job)
{
    if (job->holds_recipient)
        zhashx_delete(self->busy, sender_recipient(&job->row));
    zhashx_delete(self->jobs, job->row.key);
    sender_job_free(job);
    if (self->stopping) {
        if (zhashx_size(self->jobs) == 0)
            zloop_timer(self->loop, 1, 1, s_on_end, self);
        return;
    }
    /* one scan for all the requests that finished in this pass of the loop */
    sender_wake_in(self, 0);
}

/* ---- scans ------------------------------------------------------------------------------- */

static int s_on_due(const store_outbox_t *row, void *arg)
{
    sender_t *self = arg;
    self->depth++;
    if (self->paced_out || zhashx_lookup(self->jobs, row->key)
        || zhashx_lookup(self->busy, sender_recipient(row)))
        return 0;
    twilio_rest_t *client = outbox_is_webhook(row) ? self->web : self->rest;
    if (client && twilio_rest_inflight(client) >= SENDER_MAX_INFLIGHT)
        return 0;
    sender_dispatch(self, row);
    return 0;
}

static void s_scan(sender_t *self)
{
    /* At start every `sending` row is an orphan (see the top of the file);
     * unless other nodes' senders share the store and may be sending them. */
    int64_t lease_end = self->started || self->cfg->multi_node ? souk_wall_ms() : INT64_MAX;
    self->started = true;
    int rc = store_outbox_due(self->store, STORE_OUTBOX_SENDING, lease_end, DUE_BATCH, sender_take_over, self);
    if (rc != SOUK_OK)
        SLOG_WARN("scan.sending", "err=%s", souk_errname(rc));
    self->depth = 0;
    self->paced_out = false;
    rc = store_outbox_due(self->store, STORE_OUTBOX_QUEUED, souk_wall_ms(), DUE_BATCH, s_on_due, self);
    if (rc != SOUK_OK)
        SLOG_WARN("scan.queued", "err=%s detail=\"%s\"", souk_errname(rc), store_last_error(self->store));
}

static void s_pump(sender_t *self)
{
    if (self->stopping)
        return;
    if (self->pumping) {
        self->pump_again = true;
        return;
    }
    self->pumping = true;
    do {
        self->pump_again = false;
        s_scan(self);
    } while (self->pump_again && !self->stopping);
    self->pumping = false;
}

/* Messages nobody is answering: their session died with its node (or
 * souk was killed whole), and only the user's next message would start it
 * again. Asking the supervisor for the user's session is enough: it
 * resumes the pending work, and a request for a live session is a no-op.
 * At start on a single node every pending message is such an orphan;
 * otherwise one still pending after SWEEP_AGE_MS, or after two leases with
 * several nodes (whose holders may be alive elsewhere, at our start too). */
static int s_on_stale(const char *waid, void *arg)
{
    sender_t *self = arg;
    int64_t now = souk_now_ms(), *asked = zhashx_lookup(self->swept, waid);
    if (asked && now - *asked < SWEEP_REPEAT_MS)
        return 0;
    if (!asked) {
        if (zhashx_size(self->swept) >= SWEPT_MAX)
            zhashx_purge(self->swept);
        if (!(asked = malloc(sizeof *asked)))
            return 0;
        zhashx_insert(self->swept, waid, asked);
    }
    *asked = now;
    souk_msg_t m = { .type = SOUK_MSG_SPAWN_SESSION };
    m.spawn_session.waid = (char *)waid;
    char masked[40];
    twilio_mask_phone(waid, masked, sizeof masked);
    SLOG_INFO("sweep.orphan", "waid=%s", masked);
    souk_actor_send(self->actor, &m);
    return 0;
}

static void s_sweep(sender_t *self)
{
    int64_t now = souk_now_ms();
    if (self->swept_ms && now - self->swept_ms < SWEEP_MS)
        return;
    int64_t age = self->cfg->multi_node ? 2 * self->cfg->lease_ms : SWEEP_AGE_MS;
    /* at start on one node, nobody else can be answering them: all of them */
    bool all = !self->swept_ms && !self->cfg->multi_node;
    int64_t before = all ? souk_wall_ms() : souk_wall_ms() - age;
    self->swept_ms = now;
    int rc = store_inbound_stale(self->store, before, SWEEP_BATCH, s_on_stale, self);
    if (rc != SOUK_OK)
        SLOG_WARN("sweep", "err=%s", souk_errname(rc));
}

static void s_count_outbox(sender_t *self)
{
    int64_t now = souk_now_ms();
    if (self->counted_ms && now - self->counted_ms < OUTBOX_COUNT_MS)
        return;
    self->counted_ms = now;
    int64_t counts[STORE_OUTBOX_STATES];
    if (store_outbox_count(self->store, counts) != SOUK_OK)
        return;
    for (int i = 0; i < STORE_OUTBOX_STATES; i++) {
        char labels[48];
        snprintf(labels, sizeof labels, "state=\"%s\"", store_outbox_state_name((store_outbox_state_t)i));
        souk_metric_set("souk_outbox_messages", labels, (double)counts[i]);
    }
}

static int s_on_scan(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop; (void)timer_id;
    s_pump(arg);
    s_sweep(arg);
    s_count_outbox(arg);
    return 0;
}

/* ---- bus -------------------------------------------------------------------------------- */

static void s_handle_delivery(sender_t *self, const souk_delivery_t *d)
{
    store_outbox_state_t st;
    bool known = store_outbox_state_parse(d->status, &st) == SOUK_OK
        && st != STORE_OUTBOX_OFFERED && st != STORE_OUTBOX_INLINE;
    char labels[48];
    snprintf(labels, sizeof labels, "status=\"%s\"", known ? d->status : "other");
    souk_metric_add("souk_delivery_updates_total", labels, 1);
    if (!known) {
        SLOG_INFO("delivery.ignored", "sid=%s status=%s", d->message_sid, d->status);
        return;
    }
    store_outbox_state_t now_state = st;
    int64_t ts = d->ts_ms ? (int64_t)d->ts_ms : souk_wall_ms();
    int rc = store_delivery_update(self->store, d->message_sid, st, (int)d->error_code, ts, &now_state);
    if (rc == SOUK_OK || rc == SOUK_EEXISTS)
        SLOG_DEBUG("delivery", "sid=%s status=%s state=%s repeat=%s", d->message_sid, d->status,
                   store_outbox_state_name(now_state), rc == SOUK_EEXISTS ? "yes" : "no");
    else if (rc == SOUK_ENOTFOUND)
        SLOG_INFO("delivery.early", "sid=%s status=%s", d->message_sid, d->status);
    else
        SLOG_WARN("delivery", "sid=%s status=%s err=%s", d->message_sid, d->status, souk_errname(rc));
}

static int s_on_pull(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    sender_t *self = arg;
    bool hint = false;
    for (int i = 0; i < 1000; i++) {
        souk_msg_t m;
        char err[128];
        int rc = souk_msg_recv(sock, NULL, NULL, &m, ZMQ_DONTWAIT, err, sizeof err);
        if (rc == SOUK_EBUSY)
            break;
        if (rc != SOUK_OK) {
            SLOG_WARN("sender.bad_message", "err=%s reason=\"%s\"", souk_errname(rc), err);
            if (rc == SOUK_EIO)
                break;
            continue;
        }
        if (m.type == SOUK_MSG_SEND_HINT) {
            hint = true;
            s_remember_request(self, &m.send_hint);
        }
        else if (m.type == SOUK_MSG_DELIVERY) {
            souk_log_request(*m.delivery.request_id ? m.delivery.request_id : NULL);
            s_handle_delivery(self, &m.delivery);
            souk_log_request(NULL);
        }
        else
            SLOG_WARN("sender.unexpected", "type=%s", souk_msg_name(m.type));
        souk_msg_clear(&m);
    }
    if (hint)
        s_pump(self);
    return 0;
}

static int s_on_stop(const char *reason, uint64_t drain_ms, void *arg)
{
    sender_t *self = arg;
    size_t inflight = zhashx_size(self->jobs);
    SLOG_INFO("sender.stop", "reason=%s inflight=%zu", reason, inflight);
    if (self->stopping || inflight == 0)
        return -1;
    self->stopping = true;
    uint64_t ms = drain_ms ? drain_ms : (uint64_t)self->cfg->drain_ms;
    if (ms == 0)
        return -1;
    /* what does not finish in time stays `sending`: the next start reconciles it */
    zloop_timer(self->loop, (size_t)ms, 1, s_on_end, self);
    return 0;
}

static void s_stats(souk_actor_stats_t *st, void *arg)
{
    sender_t *self = arg;
    st->handled = self->sent;
    st->depth = self->depth;
    st->idle_ms = (uint64_t)(souk_now_ms() - self->last_ms);
}

/* ---- set-up ------------------------------------------------------------------------------ */

static void s_hold_free(void **item)
{
    free(*item);
    *item = NULL;
}

static int s_open(sender_t *self, souk_config_t *cfg)
{
    char ep[512], err[256];
    souk_endpoint(ep, sizeof ep, cfg->run_dir, SOUK_EP_SENDER, 0);
    self->pull = zsock_new(ZMQ_PULL);
    if (self->pull) {
        zsock_set_linger(self->pull, SOUK_LINGER_MS);
        zsock_set_rcvhwm(self->pull, SOUK_HWM_DEFAULT);
    }
    if (!self->pull || zsock_bind(self->pull, "%s", ep) < 0) {
        SLOG_ERROR("sender.bind", "endpoint=%s", ep);
        return 1;
    }
    int rc = store_open(cfg->store, cfg->store_dir, NULL, &self->store, err, sizeof err);
    if (rc != SOUK_OK) {
        SLOG_ERROR("sender.store", "err=%s detail=\"%s\"", souk_errname(rc), err);
        return rc == SOUK_ECONFIG || rc == SOUK_EINVAL ? SOUK_EXIT_CONFIG : 1;
    }
    size_t ulen = strlen(cfg->public_url);
    while (ulen > 0 && cfg->public_url[ulen - 1] == '/')
        ulen--;
    if (asprintf(&self->status_url, "%.*s" STATUS_PATH, (int)ulen, cfg->public_url) < 0) {
        self->status_url = NULL;
        return 1;
    }
    self->jobs = zhashx_new();
    self->busy = zhashx_new();
    self->holds = zhashx_new();
    self->requests = zhashx_new();
    self->swept = zhashx_new();
    if (!self->jobs || !self->busy || !self->holds || !self->requests || !self->swept)
        return 1;
    zhashx_set_destructor(self->holds, s_hold_free);
    zhashx_set_destructor(self->requests, s_hold_free);
    zhashx_set_destructor(self->swept, s_hold_free);
    self->web = twilio_rest_new(self->loop, NULL, NULL, NULL, SENDER_MAX_INFLIGHT);
    if (!self->web)
        return 1;
    if (!*cfg->twilio_account_sid) {
        SLOG_INFO("sender.console", "reason=\"no TWILIO_ACCOUNT_SID: replies go to the log and the events stream\"");
        return 0;
    }
    if (!*cfg->twilio_whatsapp_from || !*cfg->twilio_auth_token) {
        SLOG_ERROR("sender.config", "reason=\"TWILIO_ACCOUNT_SID is set: TWILIO_WHATSAPP_FROM and TWILIO_AUTH_TOKEN are needed too\"");
        return SOUK_EXIT_CONFIG;
    }
    self->rest = twilio_rest_new(self->loop, cfg->twilio_api_base, cfg->twilio_account_sid,
                                 cfg->twilio_auth_token, SENDER_MAX_INFLIGHT);
    return self->rest ? 0 : 1;
}

static void s_close(sender_t *self)
{
    twilio_rest_destroy(&self->rest); /* no callbacks after this */
    twilio_rest_destroy(&self->web);
    if (self->jobs) {
        for (sender_job_t *job = zhashx_first(self->jobs); job; job = zhashx_next(self->jobs))
            sender_job_free(job);
        zhashx_destroy(&self->jobs);
    }
    zhashx_destroy(&self->busy);
    zhashx_destroy(&self->holds);
    zhashx_destroy(&self->requests);
    zhashx_destroy(&self->swept);
    store_close(&self->store);
    free(self->status_url);
    zsock_destroy(&self->pull);
    zloop_destroy(&self->loop);
    souk_actor_destroy(&self->actor);
}

int sender_main(souk_config_t *cfg, const char *name, const char *arg)
{
    (void)arg;
    sender_t self = { .cfg = cfg, .wake_timer = -1, .last_ms = souk_now_ms() };
    self.rules.template_sid = cfg->twilio_template_sid;
    outbox_bucket_init(&self.bucket, (int)cfg->send_rate, souk_now_ms());
    char err[256];
    if (souk_curl_load(err, sizeof err) != SOUK_OK) {
        SLOG_ERROR("sender.curl", "err=EUNAVAIL detail=\"%s\"", err);
        return SOUK_EXIT_CONFIG; /* no restart can install a library */
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    self.actor = souk_actor_new(name, "sender", cfg);
    self.loop = zloop_new();
    int rc = self.actor && self.loop ? s_open(&self, cfg) : 1;
    if (rc == 0) {
        souk_actor_monitor(self.actor, self.pull, "sender");
        souk_actor_handlers_t h = { .on_stop = s_on_stop, .stats = s_stats, .arg = &self };
        if (souk_actor_attach(self.actor, self.loop, &h) != SOUK_OK
            || zloop_reader(self.loop, self.pull, s_on_pull, &self) < 0
            || zloop_timer(self.loop, SCAN_MS, 0, s_on_scan, &self) < 0)
            rc = 1;
    }
    if (rc == 0) {
        zloop_reader_set_tolerant(self.loop, self.pull);
        souk_actor_ready(self.actor);
        SLOG_INFO("sender.ready", "mode=%s rate=%lld", self.rest ? "twilio" : "console",
                  (long long)cfg->send_rate);
        sender_wake_in(&self, 0);
        zloop_start(self.loop);
    }
    s_close(&self);
    curl_global_cleanup();
    return rc;
}
