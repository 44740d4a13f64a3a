/* Sending one due outbox row; see sender.c for the whole picture.
 *
 * outbox_plan decides (fail, wait, or send free-form or the template); a
 * send takes the row (queued -> sending, the lease), then either writes it
 * to the log and the events stream (console mode) or posts it to Twilio and
 * records the answer: sent with the sid, queued again after a backoff, or
 * failed with Twilio's code and message. A webhook row (outbox.h) is POSTed
 * to its URL instead, in either mode, unpaced. */
#include "sender.h"

#include "souk/error.h"
#include "souk/log.h"
#include "souk/twilio.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An outbound event's detail must fit the EVENT frame's text cap. */
#define EVENT_BODY_MAX (SOUK_CAP_TEXT - 1024)

static const char *s_mask(const char *to, char *buf, size_t len)
{
    twilio_mask_phone(to, buf, len);
    return buf;
}

static void s_console_send(sender_t *self, const store_outbox_t *row, const outbox_plan_t *plan)
{
    const char *text = plan->body ? plan->body : row->body;
    char masked[64], q[2048];
    SLOG_INFO("send.console", "key=%s to=%s chars=%zu template=%s", row->key,
              s_mask(plan->to, masked, sizeof masked), outbox_utf16_len(text),
              plan->content_vars ? "yes" : "no");
    SLOG_DEBUG("send.console.body", "key=%s body=%s", row->key, souk_log_quote(text, q, sizeof q));
    /* souk chat shows what would have gone out from this event */
    size_t tlen = strlen(text);
    if (tlen > EVENT_BODY_MAX)
        for (tlen = EVENT_BODY_MAX; tlen > 0 && ((unsigned char)text[tlen] & 0xC0) == 0x80; tlen--)
            ;
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s%}", "waid", row->waid ? row->waid : "", "to",
                            plan->to, "key", row->key, "body", text, tlen);
    char *detail = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!detail || souk_actor_event(self->actor, "outbound", detail) != SOUK_OK)
        SLOG_WARN("send.console.event", "key=%s", row->key);
    free(detail);
    char sid[48];
    snprintf(sid, sizeof sid, "console-%08x%08x%08x", sender_random(), sender_random(), sender_random());
    store_outbox_change_t ch = { .twilio_sid = sid, .now_ms = souk_wall_ms() };
    if (sender_move(self, row->key, STORE_OUTBOX_SENDING, STORE_OUTBOX_SENT, &ch, NULL) == SOUK_OK) {
        self->sent++;
        sender_count("console", "sent", 0, NULL);
    }
    self->last_ms = souk_now_ms();
    /* the next part of a split body is due now, and this scan may not see it */
    if (plan->nparts > 1 || strchr(row->key, '#'))
        self->pump_again = true;
}

static void s_retry_later(sender_t *self, sender_job_t *job, const outbox_result_t *r)
{
    int attempts = job->row.attempts;
    if (attempts >= OUTBOX_MAX_ATTEMPTS) {
        char reason[300];
        snprintf(reason, sizeof reason, "gave up after %d attempts: %s", attempts, r->reason);
        sender_fail_row(self, job->row.key, STORE_OUTBOX_SENDING, r->code, reason);
        return;
    }
    int64_t delay = outbox_backoff_ms(attempts, sender_random(), r->retry_after_ms);
    int64_t now = souk_wall_ms();
    store_outbox_change_t ch = {
        .error_code = r->code, .error_reason = r->reason, .next_attempt_ms = now + delay, .now_ms = now,
    };
    char q[300];
    if (sender_move(self, job->row.key, STORE_OUTBOX_SENDING, STORE_OUTBOX_QUEUED, &ch, NULL) == SOUK_OK)
        SLOG_INFO("send.retry", "key=%s attempt=%d code=%d delay_ms=%lld reason=%s", job->row.key,
                  attempts, r->code, (long long)delay, souk_log_quote(r->reason, q, sizeof q));
    /* a little late rather than early: the row must be due when we look */
    sender_wake_in(self, delay + 5);
}

static void s_on_send_reply(const twilio_reply_t *reply, void *arg)
{
    sender_job_t *job = arg;
    sender_t *self = job->self;
    outbox_result_t r;
    outbox_classify(reply, &r);
    static const char *const results[] = { [OUTBOX_SENT] = "sent", [OUTBOX_FAIL] = "failed",
                                           [OUTBOX_RETRY] = "retry", [OUTBOX_UNKNOWN] = "unknown" };
    sender_count("twilio", results[r.kind], r.code, job);
    souk_log_request(sender_request_of(self, job->row.key));
    char masked[64], q[300];
    self->last_ms = souk_now_ms();
    switch (r.kind) {
    case OUTBOX_SENT: {
        store_outbox_change_t ch = { .twilio_sid = r.sid, .now_ms = souk_wall_ms() };
        if (sender_move(self, job->row.key, STORE_OUTBOX_SENDING, STORE_OUTBOX_SENT, &ch, NULL) == SOUK_OK) {
            self->sent++;
            SLOG_INFO("send.sent", "key=%s sid=%s to=%s attempt=%d", job->row.key, r.sid,
                      s_mask(job->plan.to, masked, sizeof masked), job->row.attempts);
        }
        break;
    }
    case OUTBOX_FAIL:
        sender_fail_row(self, job->row.key, STORE_OUTBOX_SENDING, r.code, r.reason);
        break;
    case OUTBOX_RETRY:
        s_retry_later(self, job, &r);
        break;
    case OUTBOX_UNKNOWN:
        /* Left in sending: when the lease runs out the row is reconciled
         * with Twilio's list before anything is sent again. */
        SLOG_WARN("send.unknown", "key=%s reason=%s", job->row.key,
                  souk_log_quote(r.reason, q, sizeof q));
        break;
    }
    souk_log_request(NULL);
    sender_job_done(self, job);
}

static void s_on_webhook_reply(const twilio_reply_t *reply, void *arg)
{
    sender_job_t *job = arg;
    sender_t *self = job->self;
    outbox_result_t r;
    outbox_classify_webhook(reply, &r);
    self->last_ms = souk_now_ms();
    sender_count("webhook", r.kind == OUTBOX_SENT ? "sent" : r.kind == OUTBOX_FAIL ? "failed" : "retry",
                 r.kind == OUTBOX_SENT ? 0 : r.code, job);
    if (r.kind == OUTBOX_SENT) {
        store_outbox_change_t ch = { .now_ms = souk_wall_ms() };
        if (sender_move(self, job->row.key, STORE_OUTBOX_SENDING, STORE_OUTBOX_SENT, &ch, NULL) == SOUK_OK) {
            self->sent++;
            SLOG_INFO("send.webhook", "key=%s status=%ld attempt=%d", job->row.key, reply->status,
                      job->row.attempts);
        }
    } else if (r.kind == OUTBOX_FAIL) {
        sender_fail_row(self, job->row.key, STORE_OUTBOX_SENDING, r.code, r.reason);
    } else {
        s_retry_later(self, job, &r);
    }
    sender_job_done(self, job);
}

static int s_post(sender_t *self, sender_job_t *job)
{
    if (outbox_is_webhook(&job->row))
        return twilio_rest_post_json(self->web, job->plan.to, job->plan.body, job->row.key,
                                     s_on_webhook_reply, job);
    const outbox_plan_t *p = &job->plan;
    twilio_form_t *form = twilio_form_new();
    int rc = form ? SOUK_OK : SOUK_ENOMEM;
    if (rc == SOUK_OK)
        rc = twilio_form_add(form, "To", p->to);
    if (rc == SOUK_OK)
        rc = twilio_form_add(form, "From", self->cfg->twilio_whatsapp_from);
    if (rc == SOUK_OK && p->content_vars) {
        rc = twilio_form_add(form, "ContentSid", self->rules.template_sid);
        if (rc == SOUK_OK)
            rc = twilio_form_add(form, "ContentVariables", p->content_vars);
    } else if (rc == SOUK_OK) {
        rc = twilio_form_add(form, "Body", p->body);
    }
    if (rc == SOUK_OK)
        rc = twilio_form_add(form, "StatusCallback", self->status_url);
    if (rc == SOUK_OK)
        rc = twilio_rest_send(self->rest, form, s_on_send_reply, job);
    twilio_form_free(&form);
    return rc;
}

/* The row is ours (sending): post it. If it cannot even be posted, fail it
 * when no retry could help, else leave it for its lease to bring back. */
static void s_start_send(sender_t *self, store_outbox_t *row, outbox_plan_t *plan)
{
    sender_job_t *job = calloc(1, sizeof *job);
    if (job) {
        job->self = self;
        job->row = *row;
        job->plan = *plan;
        job->started_us = sender_now_us();
        memset(row, 0, sizeof *row);
        memset(plan, 0, sizeof *plan);
    }
    int rc = job ? s_post(self, job) : SOUK_ENOMEM;
    if (rc == SOUK_OK) {
        zhashx_insert(self->jobs, job->row.key, job);
        job->holds_recipient = zhashx_insert(self->busy, sender_recipient(&job->row), job) == 0;
        return;
    }
    const char *key = job ? job->row.key : row->key;
    SLOG_WARN("send.post", "key=%s err=%s", key, souk_errname(rc));
    if (rc == SOUK_EINVAL) {
        /* the form cannot carry it (not UTF-8): no retry will change that */
        sender_fail_row(self, key, STORE_OUTBOX_SENDING, 0, "cannot encode the message");
    } else {
        /* out of memory, most likely: the lease brings it back for another try */
        SLOG_WARN("send.deferred", "key=%s", key);
    }
    if (job)
        sender_job_free(job);
}

/* A due queued row: fail it, leave it, or take it (queued -> sending) and send. */
static void s_dispatch(sender_t *self, const store_outbox_t *row);

void sender_dispatch(sender_t *self, const store_outbox_t *row)
{
    /* the message's request id, when a hint brought it: its lines carry it */
    souk_log_request(sender_request_of(self, row->key));
    s_dispatch(self, row);
    souk_log_request(NULL);
}

static void s_dispatch(sender_t *self, const store_outbox_t *row)
{
    int64_t now = souk_wall_ms();
    outbox_plan_t plan;
    int rc = outbox_plan(self->store, &self->rules, row, now, &plan);
    if (rc != SOUK_OK) {
        SLOG_WARN("send.plan", "key=%s err=%s", row->key, souk_errname(rc));
        return;
    }
    if (plan.kind == OUTBOX_PLAN_FAIL) {
        sender_count(outbox_is_webhook(row) ? "webhook" : self->rest ? "twilio" : "console",
                     "failed", plan.error_code, NULL);
        sender_fail_row(self, row->key, STORE_OUTBOX_QUEUED, plan.error_code, plan.reason);
    }
    if (plan.kind != OUTBOX_PLAN_SEND) {
        outbox_plan_clear(&plan);
        return;
    }
    bool webhook = outbox_is_webhook(row);
    if (self->rest && !webhook) {
        int64_t wait = outbox_bucket_take(&self->bucket, souk_now_ms());
        if (wait > 0) {
            self->paced_out = true;
            sender_wake_in(self, wait);
            outbox_plan_clear(&plan);
            return;
        }
    }
    store_outbox_t cur = { 0 };
    store_outbox_change_t ch = { .count_attempt = true, .next_attempt_ms = now + OUTBOX_LEASE_MS, .now_ms = now };
    rc = outbox_put_parts(self->store, row, &plan, now);
    if (rc != SOUK_OK)
        SLOG_WARN("send.parts", "key=%s parts=%zu err=%s", row->key, plan.nparts, souk_errname(rc));
    else
        rc = sender_move(self, row->key, STORE_OUTBOX_QUEUED, STORE_OUTBOX_SENDING, &ch, &cur);
    if (rc == SOUK_OK && !self->rest && !webhook)
        s_console_send(self, &cur, &plan);
    else if (rc == SOUK_OK)
        s_start_send(self, &cur, &plan);
    store_outbox_clear(&cur);
    outbox_plan_clear(&plan);
}
