/* Rows a dead sender left in `sending`: reconcile, then adopt or requeue.
 *
 * A row left in `sending` was being sent by a sender that died (or whose
 * request got no answer): Twilio may or may not have it. Before sending
 * it again we list Twilio's newest messages to that address and, if one with
 * the same body was created after the lease was taken and no row owns its
 * sid, record that sid instead. Residual risk, accepted: a message Twilio
 * accepted but does not list yet, a template send (its stored body is not
 * what Twilio lists), or more than a page of newer messages to the same
 * address, is sent a second time; and an identical body sent to the same
 * address within the clock-skew allowance before the lease could be taken
 * for ours. The list is not filtered by DateSent on purpose: a message
 * Twilio accepted but has not sent yet has no date_sent.
 *
 * A listing that fails is tried again after a backoff (held in memory); a
 * listing Twilio refuses for good (4xx) lets the send itself get Twilio's
 * verdict. In console mode nothing ever left the process: the row simply
 * goes back to queued. So does a webhook row: webhooks are delivered at
 * least once, and carry the row's key for the receiver to drop a repeat. */
#include "sender.h"

#include "souk/error.h"
#include "souk/log.h"
#include "souk/twilio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_PAGE 50

/* Reconciliations that failed: not again before `until` (monotonic). */
typedef struct {
    int64_t until;
    int fails;
} hold_t;

static char *s_dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void s_row_copy(store_outbox_t *dst, const store_outbox_t *src)
{
    *dst = *src;
    dst->key = s_dup(src->key);
    dst->waid = s_dup(src->waid);
    dst->to_addr = s_dup(src->to_addr);
    dst->body = s_dup(src->body);
    dst->twilio_sid = s_dup(src->twilio_sid);
    dst->error_reason = s_dup(src->error_reason);
}

static void s_hold(sender_t *self, const char *key)
{
    hold_t *h = zhashx_lookup(self->holds, key);
    if (!h) {
        h = calloc(1, sizeof *h);
        if (!h)
            return;
        zhashx_insert(self->holds, key, h);
    }
    h->fails++;
    h->until = souk_now_ms() + outbox_backoff_ms(h->fails, sender_random(), -1);
}

/* Twilio does not have it: the row goes back to queued to be sent again. */
static void s_requeue(sender_t *self, sender_job_t *job)
{
    if (job->row.attempts >= OUTBOX_MAX_ATTEMPTS) {
        char reason[300];
        snprintf(reason, sizeof reason, "gave up after %d attempts: %s", job->row.attempts,
                 job->row.error_reason ? job->row.error_reason : "no answer");
        sender_fail_row(self, job->row.key, STORE_OUTBOX_SENDING, job->row.error_code, reason);
        return;
    }
    int64_t now = souk_wall_ms();
    store_outbox_change_t ch = { .next_attempt_ms = now, .now_ms = now };
    if (sender_move(self, job->row.key, STORE_OUTBOX_SENDING, STORE_OUTBOX_QUEUED, &ch, NULL) == SOUK_OK)
        SLOG_INFO("send.reconcile.absent", "key=%s", job->row.key);
}

static void s_adopt(sender_t *self, sender_job_t *job, const outbox_found_t *f)
{
    int64_t now = souk_wall_ms();
    store_outbox_change_t ch = { .twilio_sid = f->sid, .now_ms = now };
    if (sender_move(self, job->row.key, STORE_OUTBOX_SENDING, STORE_OUTBOX_SENT, &ch, NULL) != SOUK_OK)
        return;
    self->sent++;
    SLOG_INFO("send.reconcile.found", "key=%s sid=%s status=%s", job->row.key, f->sid, f->status);
    /* what Twilio already knows about it beyond "sent" */
    store_outbox_state_t st;
    if (store_outbox_state_parse(f->status, &st) == SOUK_OK
        && (st == STORE_OUTBOX_DELIVERED || st == STORE_OUTBOX_READ || st == STORE_OUTBOX_FAILED
            || st == STORE_OUTBOX_UNDELIVERED))
        store_delivery_update(self->store, f->sid, st, f->error_code, now, NULL);
}

static void s_on_list_reply(const twilio_reply_t *reply, void *arg)
{
    sender_job_t *job = arg;
    sender_t *self = job->self;
    const char *key = job->row.key;
    if (reply->curl_code == 0 && reply->status == 200) {
        outbox_found_t f;
        int rc = outbox_find_sent(self->store, reply->body, reply->len, job->plan.to, job->expect,
                                  job->row.updated_ms, &f);
        if (rc == SOUK_OK || rc == SOUK_ENOTFOUND) {
            zhashx_delete(self->holds, key);
            if (rc == SOUK_OK)
                s_adopt(self, job, &f);
            else
                s_requeue(self, job);
        } else {
            SLOG_WARN("send.reconcile", "key=%s err=%s", key, souk_errname(rc));
            s_hold(self, key);
        }
    } else if (reply->curl_code == 0 && reply->status >= 400 && reply->status < 500
               && reply->status != 429) {
        /* Listing is refused for good (credentials, permissions): let the
         * send itself get Twilio's verdict rather than hold the row forever. */
        SLOG_WARN("send.reconcile.refused", "key=%s status=%ld", key, reply->status);
        zhashx_delete(self->holds, key);
        s_requeue(self, job);
    } else {
        char q[300];
        SLOG_WARN("send.reconcile.retry", "key=%s status=%ld err=%s", key, reply->status,
                  souk_log_quote(reply->error, q, sizeof q));
        s_hold(self, key);
    }
    sender_job_done(self, job);
}

/* What a free-form send of this row carried: the body, or its first part. */
static char *s_sent_body(const char *body)
{
    if (outbox_utf16_len(body) <= TWILIO_BODY_MAX_CHARS)
        return strdup(body);
    char **parts = NULL;
    size_t n = 0;
    char *first = NULL;
    if (outbox_split(body, &parts, &n) == SOUK_OK && n > 0)
        first = strdup(parts[0]);
    twilio_split_free(&parts, n);
    return first;
}

static void s_start_reconcile(sender_t *self, const store_outbox_t *row)
{
    sender_job_t *job = calloc(1, sizeof *job);
    if (!job)
        return;
    job->self = self;
    s_row_copy(&job->row, row);
    int rc = outbox_plan(self->store, &self->rules, row, souk_wall_ms(), &job->plan);
    if (rc == SOUK_OK) {
        job->expect = s_sent_body(row->body);
        rc = twilio_rest_list(self->rest, job->plan.to, self->cfg->twilio_whatsapp_from, LIST_PAGE,
                              s_on_list_reply, job);
    }
    if (rc != SOUK_OK) {
        SLOG_WARN("send.reconcile.start", "key=%s err=%s", row->key, souk_errname(rc));
        s_hold(self, row->key);
        sender_job_free(job);
        return;
    }
    SLOG_INFO("send.reconcile", "key=%s attempts=%d", row->key, row->attempts);
    zhashx_insert(self->jobs, job->row.key, job);
}

int sender_take_over(const store_outbox_t *row, void *arg)
{
    sender_t *self = arg;
    if (zhashx_lookup(self->jobs, row->key))
        return 0;
    hold_t *h = zhashx_lookup(self->holds, row->key);
    if (h && h->until > souk_now_ms())
        return 0;
    if (!self->rest || outbox_is_webhook(row)) {
        /* console mode: nothing left the process, so nothing to reconcile;
         * a webhook: delivered at least once, its key lets the receiver drop a repeat */
        int64_t now = souk_wall_ms();
        store_outbox_change_t ch = { .next_attempt_ms = now, .now_ms = now };
        sender_move(self, row->key, STORE_OUTBOX_SENDING, STORE_OUTBOX_QUEUED, &ch, NULL);
        return 0;
    }
    if (twilio_rest_inflight(self->rest) >= SENDER_MAX_INFLIGHT)
        return 1;
    s_start_reconcile(self, row);
    return 0;
}
