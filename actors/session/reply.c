/* Offers and verdicts: the session offers a stored answer (REPLY_OFFER) and
 * the gateway, which alone knows whether the webhook request still waits,
 * decides: inline (it writes the answer into its TwiML) or not (the sender
 * sends it through Twilio's REST API). The session records the verdict on
 * the outbox row — offered -> inline, or offered -> queued plus a SEND_HINT
 * — and that conditional transition is what makes a repeated verdict
 * harmless.
 *
 * An offer without a verdict (the gateway died with it) is made again
 * after the reply budget and a grace period, backing off, and at once when
 * the gateway's socket comes back: the new gateway answers inline=false for
 * a request it never saw. */
#include "session.h"

#include "souk/error.h"
#include "souk/log.h"
#include "souk/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t s_first_wait(const session_t *self)
{
    return self->cfg->reply_budget_ms + SESSION_REOFFER_GRACE_MS;
}

static session_offer_t **s_find(session_t *self, const char *key)
{
    session_offer_t **p = &self->offers;
    while (*p && strcmp((*p)->key, key) != 0)
        p = &(*p)->next;
    return p;
}

static void s_drop(session_offer_t **p)
{
    session_offer_t *o = *p;
    *p = o->next;
    free(o->key);
    free(o->msg_sid);
    free(o->request_id);
    free(o);
}

/* Waits for a verdict on key (again): due after the first wait. */
static void s_track(session_t *self, const char *msg_sid, const char *key)
{
    session_offer_t **p = s_find(self, key);
    session_offer_t *o = *p;
    if (!o) {
        o = calloc(1, sizeof *o);
        if (o) {
            o->key = strdup(key);
            o->msg_sid = strdup(msg_sid);
            o->request_id = strdup(souk_log_current_request());
            o->received_ms = self->turn_received_ms;
        }
        if (!o || !o->key || !o->msg_sid || !o->request_id) {
            /* only latency is lost: the next start offers it again */
            if (o) {
                free(o->key);
                free(o->msg_sid);
                free(o->request_id);
                free(o);
            }
            SLOG_ERROR("session.offer_untracked", "key=%s err=ENOMEM", key);
            return;
        }
        *p = o;
    }
    o->wait_ms = s_first_wait(self);
    o->due_ms = souk_now_ms() + o->wait_ms;
}

static void s_send_offer(session_t *self, const char *msg_sid, const char *key, const char *body)
{
    souk_msg_t m = { .type = SOUK_MSG_REPLY_OFFER };
    m.reply_offer.msg_sid = (char *)msg_sid;
    m.reply_offer.outbox_key = (char *)key;
    m.reply_offer.body = (char *)body;
    session_send_gateway(self, &m);
}

void session_reply_offer(session_t *self, const char *msg_sid, const char *key, const char *body)
{
    s_send_offer(self, msg_sid, key, body);
    s_track(self, msg_sid, key);
}

void session_reply_none(session_t *self, const char *msg_sid)
{
    s_send_offer(self, msg_sid, "", "");
}

static void s_hint(session_t *self, const char *key)
{
    souk_msg_t m = { .type = SOUK_MSG_SEND_HINT };
    m.send_hint.outbox_key = (char *)key;
    m.send_hint.request_id = (char *)souk_log_current_request();
    /* the sender scans the outbox too: a lost hint costs latency only */
    int rc = souk_msg_send(self->sender, NULL, 0, &m, ZMQ_DONTWAIT);
    if (rc != SOUK_OK)
        SLOG_DEBUG("session.hint_lost", "key=%s err=%s", key, souk_errname(rc));
}

/* Whether key is an outbox row of this user: a verdict for anything else
 * is a gateway's mistake and changes nothing. */
static bool s_ours(session_t *self, const char *key)
{
    store_outbox_t row = { 0 };
    bool ours = store_outbox_get(self->store, key, &row) == SOUK_OK && row.waid
                && strcmp(row.waid, self->waid) == 0;
    store_outbox_clear(&row);
    return ours;
}

/* INLINE_ACK: the inline verdict is recorded (ok), so the gateway may
 * write the answer; or not (the reply already goes by REST). */
static void s_inline_ack(session_t *self, const char *msg_sid, bool ok)
{
    souk_msg_t m = { .type = SOUK_MSG_INLINE_ACK };
    m.inline_ack.msg_sid = (char *)msg_sid;
    m.inline_ack.ok = ok;
    session_send_gateway(self, &m);
}

/* A resend of a message whose inline answer never reached Twilio (the
 * gateway died before writing it) came too late for the reply budget: the
 * recorded answer goes out through the sender instead, as a row of its own
 * (inline is terminal), keyed so that a further resend adds nothing. */
static void s_send_again(session_t *self, const store_outbox_t *inline_row)
{
    char key[SOUK_CAP_ID + 8];
    snprintf(key, sizeof key, "%s+again", inline_row->key);
    int64_t now = souk_wall_ms();
    store_outbox_t again = { .key = key, .waid = self->waid, .body = inline_row->body,
                             .kind = STORE_KIND_REPLY, .state = STORE_OUTBOX_QUEUED,
                             .next_attempt_ms = now, .created_ms = now };
    int rc = store_outbox_put(self->store, &again, NULL);
    SLOG_INFO("session.reply_again", "key=%s result=%s", key, souk_errname(rc));
    if (rc == SOUK_OK || rc == SOUK_EEXISTS)
        s_hint(self, key);
}

static void s_verdict(session_t *self, const souk_reply_verdict_t *v, session_offer_t **p);

void session_reply_verdict(session_t *self, const souk_reply_verdict_t *v)
{
    const char *key = v->outbox_key;
    if (!*key)
        return;
    session_offer_t **p = s_find(self, key);
    /* the message's request id follows the verdict to the sender */
    souk_log_request(*p ? (*p)->request_id : NULL);
    if (*p && (*p)->received_ms) {
        double s = (double)(souk_wall_ms() - (*p)->received_ms) / 1000.0;
        souk_metric_observe("souk_reply_duration_seconds",
                            v->inline_ ? "path=\"inline\"" : "path=\"later\"", s > 0 ? s : 0);
    }
    s_verdict(self, v, p);
    souk_log_request(NULL);
}

static void s_verdict(session_t *self, const souk_reply_verdict_t *v, session_offer_t **p)
{
    const char *key = v->outbox_key;
    if (!*p && !s_ours(self, key)) {
        SLOG_WARN("session.verdict_refused", "key=%s reason=\"not this user's\"", key);
        return;
    }
    int64_t now = souk_wall_ms();
    store_outbox_change_t change = { .now_ms = now };
    store_outbox_t row = { 0 };
    int rc;
    if (v->inline_) {
        rc = store_outbox_transition(self->store, key, STORE_OUTBOX_OFFERED, STORE_OUTBOX_INLINE,
                                     &change, &row);
        /* inline already: a resend of a message whose inline answer never
         * reached Twilio, or a repeated verdict. Either way the gateway may
         * write it. Any other state: the reply goes by REST already. */
        if (rc == SOUK_OK || rc == SOUK_ECONFLICT)
            s_inline_ack(self, v->msg_sid, rc == SOUK_OK || row.state == STORE_OUTBOX_INLINE);
    } else {
        change.next_attempt_ms = now;
        rc = store_outbox_transition(self->store, key, STORE_OUTBOX_OFFERED, STORE_OUTBOX_QUEUED,
                                     &change, &row);
        /* queued already: a crash may have come between the two steps */
        if (rc == SOUK_OK || (rc == SOUK_ECONFLICT && row.state == STORE_OUTBOX_QUEUED))
            s_hint(self, key);
        else if (rc == SOUK_ECONFLICT && row.state == STORE_OUTBOX_INLINE && *p)
            s_send_again(self, &row); /* only for an offer we made again */
    }
    if (rc == SOUK_OK || rc == SOUK_ECONFLICT || rc == SOUK_ENOTFOUND) {
        SLOG_INFO("session.verdict", "key=%s inline=%d result=%s", key, v->inline_,
                  rc == SOUK_OK ? "recorded" : souk_errname(rc));
        if (*p)
            s_drop(p);
    } else {
        /* stays offered: the re-offer gets the same verdict and retries */
        SLOG_ERROR("session.verdict_failed", "key=%s err=%s store=\"%s\"", key, souk_errname(rc),
                   store_last_error(self->store));
    }
    store_outbox_clear(&row);
}

void session_reply_reoffer(session_t *self, bool all)
{
    int64_t now = souk_now_ms();
    session_offer_t **p = &self->offers;
    while (*p) {
        session_offer_t *o = *p;
        if (!all && o->due_ms > now) {
            p = &o->next;
            continue;
        }
        store_outbox_t row = { 0 };
        int rc = store_outbox_get(self->store, o->key, &row);
        if (rc == SOUK_ENOTFOUND || (rc == SOUK_OK && row.state != STORE_OUTBOX_OFFERED)) {
            s_drop(p); /* decided meanwhile */
            store_outbox_clear(&row);
            continue;
        }
        if (rc == SOUK_OK) {
            SLOG_INFO("session.reoffer", "key=%s", o->key);
            s_send_offer(self, o->msg_sid, o->key, row.body);
        }
        o->wait_ms = all ? s_first_wait(self)
                         : (o->wait_ms * 2 < SESSION_REOFFER_MAX_MS ? o->wait_ms * 2
                                                                    : SESSION_REOFFER_MAX_MS);
        o->due_ms = now + o->wait_ms;
        store_outbox_clear(&row);
        p = &o->next;
    }
}

static int s_resume_one(const store_outbox_t *o, void *arg)
{
    session_t *self = arg;
    const char *msg_sid = strncmp(o->key, "r:", 2) == 0 ? o->key + 2 : o->key;
    SLOG_INFO("session.resume_offer", "key=%s", o->key);
    session_reply_offer(self, msg_sid, o->key, o->body);
    return 0;
}

int session_reply_resume(session_t *self)
{
    int rc = store_outbox_offered(self->store, self->waid, s_resume_one, self);
    if (rc != SOUK_OK)
        SLOG_ERROR("session.resume_failed", "what=offers err=%s store=\"%s\"", souk_errname(rc),
                   store_last_error(self->store));
    return rc;
}

int64_t session_reply_due(const session_t *self)
{
    int64_t due = 0;
    for (const session_offer_t *o = self->offers; o; o = o->next)
        if (!due || o->due_ms < due)
            due = o->due_ms;
    return due;
}

void session_reply_clear(session_t *self)
{
    while (self->offers)
        s_drop(&self->offers);
}
