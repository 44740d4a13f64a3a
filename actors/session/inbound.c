/* INBOUND: a verified message from the gateway. Only this session's user is
 * taken; the message is persisted (its row, the user record, the history)
 * before ACCEPTED goes back, so an acknowledged message is never lost.
 *
 * The row's conditional insert is the durable dedupe. A message already
 * stored is told apart by its state: still received means it is this
 * session's pending work (the gateway lost track of it and delivered it
 * again), so it is accepted again and answered with its turn; done with its
 * reply still offered means its answer can still go inline, so it is
 * offered again; anything else is a duplicate. */
#include "session.h"

#include "souk/error.h"
#include "souk/log.h"
#include "souk/metrics.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Twilio sends at most 10 media per message. */
#define MEDIA_MAX 10

/* One webhook parameter from the gateway's params document, a JSON object
 * of name -> value where a name given several times maps to the array of
 * its values (the first one is taken). Borrowed from `params`; NULL when
 * absent. */
static const char *s_param(const json_t *params, const char *name)
{
    const json_t *v = json_object_get(params, name);
    if (json_is_array(v))
        v = json_array_get(v, 0);
    return json_string_value(v);
}

/* [{"url": ..., "content_type": ...}, ...] from MediaUrlN and
 * MediaContentTypeN; NULL when there is none (caller frees). */
static char *s_media_json(const char *params_text, uint64_t num_media)
{
    if (num_media == 0 || !params_text || !*params_text)
        return NULL;
    json_t *params = json_loads(params_text, 0, NULL);
    json_t *media = json_array();
    char *out = NULL;
    for (uint64_t i = 0; params && media && i < num_media && i < MEDIA_MAX; i++) {
        char name[32];
        snprintf(name, sizeof name, "MediaUrl%llu", (unsigned long long)i);
        const char *url = s_param(params, name);
        snprintf(name, sizeof name, "MediaContentType%llu", (unsigned long long)i);
        const char *type = s_param(params, name);
        if (url)
            json_array_append_new(media, json_pack("{s:s, s:s}", "url", url, "content_type",
                                                   type ? type : ""));
    }
    if (media && json_array_size(media) > 0)
        out = json_dumps(media, JSON_COMPACT);
    json_decref(media);
    json_decref(params);
    return out;
}

int session_inbound_touch(session_t *self, const char *msg_sid, const char *body,
                          const char *profile, const char *from, const char *media_json,
                          int64_t received_ms)
{
    store_user_seen_t seen = {
        .waid = self->waid,
        .profile_name = profile && *profile ? profile : NULL,
        .from_addr = from && *from ? from : NULL,
        .media_json = media_json,
        .inbound = true,
        .now_ms = received_ms,
    };
    int rc = store_user_seen(self->store, &seen);
    if (rc != SOUK_OK)
        return rc;
    if (self->user_known && seen.profile_name) {
        char *p = strdup(seen.profile_name);
        if (p) {
            free(self->profile_name);
            self->profile_name = p;
        } else {
            self->user_known = false; /* read again next turn */
        }
    }
    store_history_t h = {
        .waid = self->waid, .dir = STORE_DIR_IN, .msg_sid = (char *)msg_sid,
        .text = (char *)(body ? body : ""), .ts_ms = received_ms,
    };
    rc = store_history_append(self->store, &h);
    return rc == SOUK_EEXISTS ? SOUK_OK : rc;
}

/* A message this session answers joins the turn. Without the lease
 * (another node's session answers this user: lease.c) the gateway answers
 * the webhook with nothing now, and the holder takes the message up from
 * the store. */
static int s_take(session_t *self, const souk_inbound_t *in, bool fresh, bool *added)
{
    if (!self->lease_held) {
        souk_msg_t m = { .type = SOUK_MSG_DEFER };
        m.defer.msg_sid = in->msg_sid;
        m.defer.text = (char *)"";
        session_send_gateway(self, &m);
        SLOG_INFO("session.left_to_holder", "sid=%s", in->msg_sid);
        return SOUK_OK;
    }
    int rc = session_turn_add(self, in->msg_sid, in->request_id, in->body, in->num_media, fresh);
    *added = rc == SOUK_OK;
    return rc;
}

static void s_accepted(session_t *self, const char *msg_sid, bool duplicate)
{
    souk_msg_t m = { .type = SOUK_MSG_ACCEPTED };
    m.accepted.msg_sid = (char *)msg_sid;
    m.accepted.duplicate = duplicate;
    session_send_gateway(self, &m);
}

/* The message is stored already: see the top of the file. */
static int s_handle_known(session_t *self, const souk_inbound_t *in, const char *media,
                          int64_t received_ms, bool *added)
{
    store_inbound_t row = { 0 };
    store_outbox_t out = { 0 };
    int rc = store_inbound_get(self->store, in->msg_sid, &row);
    if (rc == SOUK_ENOTFOUND) {
        s_accepted(self, in->msg_sid, true); /* gone since: long answered */
        return SOUK_OK;
    }
    if (rc != SOUK_OK)
        return rc;
    if (strcmp(row.waid, self->waid) != 0) {
        SLOG_WARN("session.inbound_sid_taken", "sid=%s reason=\"stored for another user\"",
                  in->msg_sid);
        s_accepted(self, in->msg_sid, true);
    } else if (row.state == STORE_INBOUND_RECEIVED) {
        char *location = session_media_history_text(in->params);
        rc = session_inbound_touch(self, in->msg_sid, location ? location : in->body, in->profile,
                                   in->from, media, received_ms);
        free(location);
        if (rc == SOUK_OK) {
            SLOG_INFO("session.inbound_pending_again", "sid=%s", in->msg_sid);
            s_accepted(self, in->msg_sid, false);
            if (!session_turn_has(self, in->msg_sid))
                rc = s_take(self, in, false, added);
        }
    } else {
        char key[SOUK_CAP_ID + 3];
        snprintf(key, sizeof key, "r:%s", in->msg_sid);
        /* A reply still offered is offered again; so is one recorded
         * inline: Twilio delivers a message again only when it got no
         * answer, so that inline answer never reached it (the gateway died
         * after the verdict and before writing it). */
        bool offered = row.state == STORE_INBOUND_DONE
                       && store_outbox_get(self->store, key, &out) == SOUK_OK
                       && (out.state == STORE_OUTBOX_OFFERED || out.state == STORE_OUTBOX_INLINE);
        SLOG_INFO("session.inbound_duplicate", "sid=%s state=%s reoffer=%d", in->msg_sid,
                  store_inbound_state_name(row.state), offered);
        s_accepted(self, in->msg_sid, !offered);
        if (!offered)
            souk_metric_add("souk_dedupe_hits_total", "where=\"store\"", 1);
        if (offered)
            session_reply_offer(self, in->msg_sid, out.key, out.body);
    }
    store_outbox_clear(&out);
    store_inbound_clear(&row);
    return rc;
}

void session_inbound_handle(session_t *self, const souk_inbound_t *in)
{
    souk_log_request(in->request_id);
    if (strcmp(in->waid, self->waid) != 0) {
        char other[TWILIO_WAID_MAX_DIGITS + 8];
        twilio_mask_phone(in->waid, other, sizeof other);
        SLOG_WARN("session.inbound_refused", "sid=%s waid=%s reason=\"another user's message\"",
                  in->msg_sid, other);
        return;
    }
    if (!*in->msg_sid) {
        SLOG_WARN("session.inbound_refused", "reason=\"no MessageSid\"");
        return;
    }
    self->last_msg_ms = self->idle_from_ms = souk_now_ms();
    self->idle_asked_ms = 0;
    self->handled++;
    int64_t received_ms = in->received_ms ? (int64_t)in->received_ms : souk_wall_ms();
    char *media = s_media_json(in->params, in->num_media);
    store_inbound_t row = {
        .msg_sid = in->msg_sid, .waid = in->waid, .body = in->body, .media = media,
        .params = in->params, .received_ms = received_ms,
    };
    /* a location goes into the history as text: the next order's delivery
     * address is found there (media.c) */
    char *location = session_media_history_text(in->params);
    /* the row, the user record and the history in one batch: one commit,
     * and ACCEPTED only once it is durable */
    int rc = store_batch_begin(self->store);
    if (rc == SOUK_OK) {
        rc = store_inbound_put(self->store, &row);
        if (rc == SOUK_OK)
            rc = session_inbound_touch(self, in->msg_sid, location ? location : in->body,
                                       in->profile, in->from, media, received_ms);
        int end = store_batch_end(self->store, rc == SOUK_OK);
        if (rc == SOUK_OK)
            rc = end;
    }
    free(location);
    bool added = false;
    if (rc == SOUK_EEXISTS) {
        rc = s_handle_known(self, in, media, received_ms, &added);
    } else if (rc == SOUK_OK) {
        char from[SOUK_CAP_ID + 1];
        twilio_mask_phone(in->from, from, sizeof from);
        SLOG_INFO("session.accepted", "sid=%s from=%s media=%llu len=%zu", in->msg_sid, from,
                  (unsigned long long)in->num_media, strlen(in->body));
        s_accepted(self, in->msg_sid, false);
        rc = s_take(self, in, true, &added);
    }
    free(media);
    if (added)
        self->turn_received_ms = received_ms;
    if (rc != SOUK_OK) {
        /* not acknowledged, or acknowledged and pending in the store: the
         * restarted session (or the gateway's delivery again) takes it up */
        session_fail(self, "inbound", rc);
        return;
    }
    if (added && (self->cfg->debounce_ms == 0 || self->turn_len == SESSION_TURN_MAX))
        session_turn_run(self);
}
