/* The turn: a user's burst of messages (each within SOUK_DEBOUNCE_MS of the
 * previous one) answered once. The earlier messages are answered MERGED,
 * the last one carries the answer.
 *
 * An answer is made durable in steps that are each idempotent, so a crash
 * between any two is resumed at the next start without doubling anything:
 *   1. opt-out keywords recorded (a repeat changes nothing);
 *   2. the outbox row "r:<last sid>" put as offered (taken: the stored row
 *      is used, so a resumed turn offers the same answer again);
 *   3. the history entry for it (taken: fine);
 *   4. the earlier messages marked merged, the last done (already: fine);
 *   5. REPLY_OFFER to the gateway (an offer made twice gets one verdict).
 * MERGED goes out first: a merged message's answer is the turn's, whenever
 * that comes, and the gateway can answer its request at once. The messages
 * stay "received" in the store until step 4, so a turn cut short by a crash
 * is found again whole, with the same last message and the same key. */
#include "session.h"
#include "souk/agent.h"

#include "souk/error.h"
#include "souk/log.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OPT_IN_TEXT                                                          \
    "You are subscribed again and will get our replies here. Send STOP at "  \
    "any time to stop."

typedef enum { KEYWORD_NONE, KEYWORD_STOP, KEYWORD_START } keyword_t;

/* Twilio's opt-out and opt-in words: the whole message, any case, with
 * surrounding white space. */
static keyword_t s_keyword(const char *body)
{
    static const char *const stop[] = { "STOP", "UNSUBSCRIBE", "CANCEL", "END", "QUIT" };
    static const char *const start[] = { "START", "UNSTOP" };
    while (isspace((unsigned char)*body))
        body++;
    size_t n = strlen(body);
    while (n && isspace((unsigned char)body[n - 1]))
        n--;
    for (size_t i = 0; i < sizeof stop / sizeof *stop; i++)
        if (strlen(stop[i]) == n && strncasecmp(body, stop[i], n) == 0)
            return KEYWORD_STOP;
    for (size_t i = 0; i < sizeof start / sizeof *start; i++)
        if (strlen(start[i]) == n && strncasecmp(body, start[i], n) == 0)
            return KEYWORD_START;
    return KEYWORD_NONE;
}

/* ---- the turn buffer ---------------------------------------------------- */

static void s_msg_free(session_msg_t *m)
{
    free(m->msg_sid);
    free(m->request_id);
    free(m->body);
    memset(m, 0, sizeof *m);
}

int session_turn_add(session_t *self, const char *msg_sid, const char *request_id,
                     const char *body, uint64_t num_media, bool fresh)
{
    if (self->turn_len == SESSION_TURN_MAX)
        return SOUK_EBUSY;
    session_msg_t *m = &self->turn[self->turn_len];
    m->msg_sid = strdup(msg_sid);
    m->request_id = strdup(request_id ? request_id : "");
    m->body = strdup(body ? body : "");
    m->num_media = num_media;
    m->fresh = fresh;
    if (!m->msg_sid || !m->request_id || !m->body) {
        s_msg_free(m);
        return SOUK_ENOMEM;
    }
    int64_t now = souk_now_ms();
    if (self->turn_len == 0)
        self->turn_first_ms = now;
    self->turn_last_ms = now;
    self->turn_len++;
    return SOUK_OK;
}

bool session_turn_has(const session_t *self, const char *msg_sid)
{
    for (size_t i = 0; i < self->turn_len; i++)
        if (strcmp(self->turn[i].msg_sid, msg_sid) == 0)
            return true;
    return false;
}

int64_t session_turn_due(const session_t *self)
{
    if (!self->turn_len)
        return 0;
    int64_t window = self->cfg->debounce_ms;
    int64_t due = self->turn_last_ms + window;
    int64_t cap = self->turn_first_ms + window * SESSION_TURN_AGE_WINDOWS;
    return due < cap ? due : cap;
}

void session_turn_clear(session_t *self)
{
    for (size_t i = 0; i < self->turn_len; i++)
        s_msg_free(&self->turn[i]);
    self->turn_len = 0;
}

/* ---- answering ---------------------------------------------------------- */

/* Records the turn's opt-out keywords in order; returns through *opted_out
 * whether the user ends the turn opted out, through *opted_in whether the
 * turn asked to be opted back in, and copies the other messages to plain. */
static int s_keywords(session_t *self, const session_msg_t *msgs, size_t n, bool *opted_out,
                      bool *opted_in, session_msg_t *plain, size_t *nplain)
{
    *opted_in = false;
    *nplain = 0;
    for (size_t i = 0; i < n; i++) {
        keyword_t k = s_keyword(msgs[i].body);
        if (k == KEYWORD_NONE) {
            plain[(*nplain)++] = msgs[i];
            continue;
        }
        *opted_out = k == KEYWORD_STOP;
        *opted_in |= k == KEYWORD_START;
        int rc = store_user_set_opt_out(self->store, self->waid, *opted_out, souk_wall_ms());
        if (rc != SOUK_OK)
            return rc;
        SLOG_INFO("session.opt", "sid=%s opted_out=%d", msgs[i].msg_sid, *opted_out);
    }
    return SOUK_OK;
}

/* The answer to msgs, or NULL through *body for none; the media's note
 * (media.c) comes first. */
/* What the turn needs of the user record: from memory on one node, else
 * from the store (session.h). */
static int s_user(session_t *self)
{
    if (self->user_known && !self->cfg->multi_node)
        return SOUK_OK;
    store_user_t user = { 0 };
    int rc = store_user_get(self->store, self->waid, &user);
    if (rc != SOUK_OK && rc != SOUK_ENOTFOUND)
        return rc;
    free(self->profile_name);
    self->profile_name = user.profile_name;
    user.profile_name = NULL;
    self->opted_out = user.opted_out;
    self->user_known = true;
    store_user_clear(&user);
    return SOUK_OK;
}

static int s_compute(session_t *self, const session_msg_t *msgs, size_t n,
                     const session_media_t *media, char **body)
{
    int rc = s_user(self);
    if (rc != SOUK_OK)
        return rc;
    bool opted_out = self->opted_out, opted_in;
    session_msg_t plain[SESSION_TURN_MAX];
    size_t nplain;
    rc = s_keywords(self, msgs, n, &opted_out, &opted_in, plain, &nplain);
    if (rc == SOUK_OK)
        self->opted_out = opted_out;
    else
        self->user_known = false;
    *body = NULL;
    if (rc == SOUK_OK && !opted_out) {
        session_turn_t turn = {
            .waid = self->waid, .profile_name = self->profile_name, .msgs = plain,
            .n = nplain, .store = self->store, .turn_sid = msgs[n - 1].msg_sid,
            .session = self,
        };
        char *text = media->note ? session_turn_text(plain, nplain) : NULL;
        if (media->note && text && !*text)
            *body = strdup("");     /* only media: the note is the answer */
        else
            *body = opted_in ? strdup(OPT_IN_TEXT) : session_answer(&turn);
        free(text);
        if (*body)
            *body = session_media_reply(media, *body);
        if (!*body)
            rc = SOUK_ENOMEM;
        else if (!**body) {
            free(*body);
            *body = NULL;
        }
    }
    return rc;
}

/* Steps 2 and 3: the reply in the outbox and the history. *row receives
 * the stored row (the one already there, after a crash). */
static int s_store_reply(session_t *self, const char *key, const char *body, store_outbox_t *row)
{
    int64_t now = souk_wall_ms();
    store_outbox_t o = {
        .key = (char *)key, .waid = self->waid, .body = (char *)body,
        .kind = STORE_KIND_REPLY, .state = STORE_OUTBOX_OFFERED, .created_ms = now,
    };
    int rc = store_outbox_put(self->store, &o, row);
    if (rc == SOUK_OK) {
        /* the row is what was put: no need to read it back */
        *row = o;
        row->key = strdup(key);
        row->waid = strdup(self->waid);
        row->body = strdup(body);
        if (!row->key || !row->waid || !row->body)
            rc = SOUK_ENOMEM;
    } else if (rc == SOUK_EEXISTS) {
        rc = SOUK_OK;
    }
    if (rc != SOUK_OK)
        return rc;
    store_history_t h = {
        .waid = self->waid, .dir = STORE_DIR_OUT, .msg_sid = (char *)key,
        .text = row->body, .ts_ms = now,
    };
    rc = store_history_append(self->store, &h);
    return rc == SOUK_EEXISTS ? SOUK_OK : rc;
}

static int s_finish(session_t *self, const char *msg_sid, store_inbound_state_t to,
                    const char *turn_sid)
{
    int rc = store_inbound_finish(self->store, msg_sid, to, turn_sid);
    return rc == SOUK_ECONFLICT ? SOUK_OK : rc; /* finished before a crash */
}

/* A turn that will place or cancel an order or open a ticket is
 * acknowledged at once (DEFER: the gateway answers the webhook with the
 * acknowledgement); its answer then goes through the outbox and the sender.
 * Decided from the text and the dialog state alone, before the agent runs. */
static void s_defer_if_async(session_t *self, const session_msg_t *msgs, size_t n,
                             const char *turn_sid)
{
    if (strcmp(self->cfg->agent, "echo") == 0)
        return; /* the echo answers at once, whatever is said */
    char *text = session_turn_text(msgs, n), *state = NULL;
    int rc = text ? store_user_state_get(self->store, self->waid, &state) : SOUK_ENOMEM;
    const char *ack = NULL;
    if ((rc == SOUK_OK || rc == SOUK_ENOTFOUND)
        && session_answer_path(self, text, state, &ack) == AGENT_PATH_ASYNC) {
        souk_msg_t m = { .type = SOUK_MSG_DEFER };
        m.defer.msg_sid = (char *)turn_sid;
        m.defer.text = (char *)ack;
        session_send_gateway(self, &m);
    }
    free(state);
    free(text);
}

/* Answers one turn (msgs in arrival order); see the top of the file. A
 * voice note's transcript is added to its message's body here. */
static int s_answer(session_t *self, session_msg_t *msgs, size_t n)
{
    const char *turn_sid = msgs[n - 1].msg_sid;
    char key[SOUK_CAP_ID + 3];
    snprintf(key, sizeof key, "r:%s", turn_sid);
    for (size_t i = 0; i + 1 < n; i++) {
        souk_msg_t m = { .type = SOUK_MSG_MERGED };
        m.merged.msg_sid = msgs[i].msg_sid;
        m.merged.into_sid = (char *)turn_sid;
        session_send_gateway(self, &m);
    }
    store_outbox_t row = { 0 };
    char *body = NULL;
    /* an answer stored before a crash is the answer; it is not made twice
     * (a message this session has just stored has none) */
    int rc = msgs[n - 1].fresh ? SOUK_ENOTFOUND : store_outbox_get(self->store, key, &row);
    bool computed = rc == SOUK_ENOTFOUND;
    if (computed) {
        session_media_t media;
        rc = session_media_prepare(self, msgs, n, turn_sid, &media);
        if (rc == SOUK_OK && !media.deferred)
            s_defer_if_async(self, msgs, n, turn_sid);
        if (rc == SOUK_OK)
            rc = s_compute(self, msgs, n, &media, &body);
        session_media_clear(&media);
    }
    /* steps 2 to 4 in one batch: one commit */
    bool batch = false;
    if (rc == SOUK_OK) {
        rc = store_batch_begin(self->store);
        batch = rc == SOUK_OK;
    }
    if (rc == SOUK_OK && computed && body)
        rc = s_store_reply(self, key, body, &row);
    for (size_t i = 0; rc == SOUK_OK && i + 1 < n; i++)
        rc = s_finish(self, msgs[i].msg_sid, STORE_INBOUND_MERGED, turn_sid);
    if (rc == SOUK_OK)
        rc = s_finish(self, turn_sid, STORE_INBOUND_DONE, turn_sid);
    if (batch) {
        int end = store_batch_end(self->store, rc == SOUK_OK);
        if (rc == SOUK_OK)
            rc = end;
    }
    if (rc == SOUK_OK) {
        SLOG_INFO("session.turn", "sid=%s messages=%zu reply=%s", turn_sid, n,
                  !row.key ? "none" : store_outbox_state_name(row.state));
        if (row.key && row.state == STORE_OUTBOX_OFFERED)
            session_reply_offer(self, turn_sid, row.key, row.body);
        else
            session_reply_none(self, turn_sid); /* nothing, or already inline or queued */
    }
    free(body);
    store_outbox_clear(&row);
    return rc;
}

void session_turn_run(session_t *self)
{
    if (!self->turn_len)
        return;
    souk_log_request(self->turn[self->turn_len - 1].request_id);
    int rc = s_answer(self, self->turn, self->turn_len);
    session_turn_clear(self);
    if (rc != SOUK_OK)
        session_fail(self, "turn", rc);
}

/* ---- resume ------------------------------------------------------------- */

static uint64_t s_media_count(const char *media_json)
{
    if (!media_json)
        return 0;
    json_t *media = json_loads(media_json, 0, NULL);
    uint64_t n = json_is_array(media) ? json_array_size(media) : 1;
    json_decref(media);
    return n;
}

static int s_resume_one(const store_inbound_t *m, void *arg)
{
    session_t *self = arg;
    if (session_turn_has(self, m->msg_sid))
        return 0;
    int rc = session_inbound_touch(self, m->msg_sid, m->body, NULL, NULL, NULL, m->received_ms);
    if (rc == SOUK_OK && self->turn_len == SESSION_TURN_MAX) {
        rc = s_answer(self, self->turn, self->turn_len);
        session_turn_clear(self);
    }
    if (rc == SOUK_OK)
        rc = session_turn_add(self, m->msg_sid, "", m->body, s_media_count(m->media), false);
    return rc;
}

int session_turn_resume(session_t *self)
{
    souk_log_request("resume");
    int rc = store_inbound_pending(self->store, self->waid, s_resume_one, self);
    size_t n = self->turn_len;
    if (rc == SOUK_OK && n) {
        SLOG_INFO("session.resume", "pending=%zu last=%s", n, self->turn[n - 1].msg_sid);
        rc = s_answer(self, self->turn, n);
    }
    session_turn_clear(self);
    souk_log_request(NULL);
    if (rc != SOUK_OK)
        SLOG_ERROR("session.resume_failed", "err=%s store=\"%s\"", souk_errname(rc),
                   store_last_error(self->store));
    return rc;
}

int session_turn_adopt(session_t *self, size_t *added)
{
    size_t before = self->turn_len;
    int rc = store_inbound_pending(self->store, self->waid, s_resume_one, self);
    /* a full turn answered on the way counts its messages too */
    size_t n = self->turn_len >= before ? self->turn_len - before : self->turn_len;
    if (added)
        *added = n;
    if (rc == SOUK_OK && n)
        SLOG_INFO("session.adopted", "messages=%zu turn=%zu", n, self->turn_len);
    return rc;
}
