/* Routing: which session gets a user's messages, what is held until it is
 * ready, and how each webhook request is answered — exactly once.
 *
 * A user (WaId) is NEW (never seen: try to send), LIVE (its session took a
 * message or said hello), STARTING (SPAWN_SESSION sent, holding until
 * SESSION_HELLO) or DOWN (idle-exited or exited: the old connection may still
 * linger, so nothing is sent until a new session says hello). A message is
 * held, then in flight (sent, not yet ACCEPTED); a session that exits puts
 * its in-flight messages back at the head of the held queue.
 *
 * A request waits at most the reply budget. All requests share that budget,
 * so the order of arrival is the order of deadlines: one FIFO, one timer.
 * A 200 is what Twilio takes for "delivered" (it retries only a failed
 * connect), so it is given only once a session has stored the message
 * (ACCEPTED): a request whose budget runs out before that is answered 503
 * (not taken), still within the budget, and its message stays held for its
 * session, which answers it by REST when it can.
 * A delivery again of a message still held is answered 503 too: its 200
 * would come before any session stored it, and a gateway killed then
 * would take the message with it.
 * The reply decision is one lookup in `verdicts` in this single-threaded
 * code: an offer that finds its request pending (and within budget) is
 * answered inline; anything else — acknowledged, merged, gone, unknown — gets
 * inline=false, and the same msg_sid always gets the same verdict. */
#include "gateway.h"

#include "souk/error.h"
#include "souk/log.h"
#include "souk/twilio.h"

#include <stdlib.h>
#include <string.h>

#define TEXT_ACK "Got it \xe2\x80\x94 working on it, I'll reply here shortly."
#define TEXT_BUSY "We're receiving a lot of your messages at once \xe2\x80\x94 please wait a moment and try again."
#define TEXT_UNSTORED "message not taken yet, send it again\n"
#define TEXT_APOLOGY "Sorry \xe2\x80\x94 something went wrong on our side and we can't handle your messages right now. Please try again later."

enum { VERDICT_INLINE = 1, VERDICT_REST = 2 };

typedef struct link {
    struct link *prev, *next;
} link_t;

#define CONTAINER(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static void list_init(link_t *l) { l->prev = l->next = l; }
static bool list_empty(const link_t *l) { return l->next == l; }
static bool list_linked(const link_t *n) { return n->next != n; }

static void list_push_back(link_t *head, link_t *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static void list_push_front(link_t *head, link_t *n) { list_push_back(head->next, n); }

static void list_remove(link_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    list_init(n);
}

typedef enum { USER_NEW, USER_LIVE, USER_STARTING, USER_DOWN } user_state_t;

static const char *const s_state_names[] = { "new", "live", "starting", "down" };

typedef struct {
    link_t link; /* in its user's held or in-flight queue */
    char sid[GW_SID_MAX + 1];
    char *frame; /* encoded INBOUND */
    size_t len;
} msg_t;

typedef struct {
    char waid[SOUK_CAP_ID + 1];
    char masked[SOUK_CAP_ID + 1]; /* for logs */
    user_state_t state;
    link_t held, inflight;  /* msg_t, in arrival order */
    size_t nmsgs;           /* held + in flight */
    link_t requests;        /* its pending gw_request_t */
    size_t nrequests;
    link_t wait_link;       /* in routing.waiting while held is not empty */
    link_t down_link;       /* in routing.down while DOWN */
    int64_t spawn_ms;       /* last SPAWN_SESSION */
    int64_t spawn_wait_ms;  /* until the next one, doubling while no hello */
    int64_t down_ms;
    int64_t quarantine_until_ms;
} user_t;

struct gw_request {
    link_t user_link;      /* in user->requests */
    link_t deadline_link;  /* in routing.deadlines */
    char sid[GW_SID_MAX + 1];
    char request_id[GW_REQUEST_ID_LEN];
    user_t *user;
    void *http;
    int64_t deadline_ms;
    bool accepted;         /* a session persisted its message */
    char *proposed;        /* the inline answer (TwiML) awaiting INLINE_ACK; in proposals */
};

struct gw_routing {
    gw_routing_ops_t ops;
    void *arg;
    int64_t budget_ms, quarantine_ms;
    zhashx_t *users;       /* waid → user_t, owned */
    zhashx_t *requests;    /* msg_sid → gw_request_t, pending ones */
    gw_recent_t *seen;     /* MessageSids routed recently */
    gw_recent_t *verdicts; /* msg_sid → VERDICT_* */
    link_t deadlines;      /* pending requests, oldest first */
    link_t proposals;      /* requests whose inline answer awaits INLINE_ACK, oldest first */
    link_t waiting;        /* users with held messages */
    link_t down;           /* DOWN users, longest down first */
    size_t npending, nmsgs;
    bool draining;
    char *twiml_empty, *twiml_ack, *twiml_busy, *twiml_apology;
};

/* ---- users --------------------------------------------------------------- */

static void s_msg_free(msg_t *m)
{
    free(m->frame);
    free(m);
}

static void s_user_free(void **item)
{
    user_t *u = *item;
    if (!u)
        return;
    while (!list_empty(&u->held)) {
        msg_t *m = CONTAINER(u->held.next, msg_t, link);
        list_remove(&m->link);
        s_msg_free(m);
    }
    while (!list_empty(&u->inflight)) {
        msg_t *m = CONTAINER(u->inflight.next, msg_t, link);
        list_remove(&m->link);
        s_msg_free(m);
    }
    if (list_linked(&u->wait_link))
        list_remove(&u->wait_link);
    if (list_linked(&u->down_link))
        list_remove(&u->down_link);
    free(u);
    *item = NULL;
}

static user_t *s_user(gw_routing_t *self, const char *waid, bool create)
{
    user_t *u = zhashx_lookup(self->users, waid);
    if (u || !create || strlen(waid) > SOUK_CAP_ID)
        return u;
    u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    strcpy(u->waid, waid);
    twilio_mask_phone(waid, u->masked, sizeof u->masked);
    list_init(&u->held);
    list_init(&u->inflight);
    list_init(&u->requests);
    list_init(&u->wait_link);
    list_init(&u->down_link);
    if (zhashx_insert(self->users, waid, u) != 0) {
        free(u);
        return NULL;
    }
    return u;
}

static void s_set_state(gw_routing_t *self, user_t *u, user_state_t state, int64_t now_ms)
{
    if (u->state == USER_DOWN && list_linked(&u->down_link))
        list_remove(&u->down_link);
    u->state = state;
    if (state == USER_DOWN) {
        u->down_ms = now_ms;
        list_push_back(&self->down, &u->down_link);
    }
}

/* Keeps `waiting` = the users with held messages. */
static void s_update_waiting(gw_routing_t *self, user_t *u)
{
    bool has_held = !list_empty(&u->held);
    if (has_held && !list_linked(&u->wait_link))
        list_push_back(&self->waiting, &u->wait_link);
    else if (!has_held && list_linked(&u->wait_link))
        list_remove(&u->wait_link);
}

static void s_spawn(gw_routing_t *self, user_t *u, bool retry, int64_t now_ms)
{
    souk_msg_t m = { .type = SOUK_MSG_SPAWN_SESSION };
    m.spawn_session.waid = u->waid;
    int rc = self->ops.to_supervisor(self->arg, &m);
    if (rc != SOUK_OK)
        SLOG_WARN("gateway.spawn_failed", "waid=%s err=%s", u->masked, souk_errname(rc));
    else
        SLOG_DEBUG("gateway.spawn", "waid=%s", u->masked);
    u->spawn_ms = now_ms;
    u->spawn_wait_ms = !retry ? GW_SPAWN_RETRY_MS
                     : u->spawn_wait_ms * 2 < GW_SPAWN_RETRY_MAX_MS ? u->spawn_wait_ms * 2
                     : GW_SPAWN_RETRY_MAX_MS;
    s_set_state(self, u, USER_STARTING, now_ms);
}

/* Sends held messages in order while the session takes them; a session
 * that is not there is asked for (again, when retry). */
static void s_flush(gw_routing_t *self, user_t *u, bool retry, int64_t now_ms)
{
    while (!list_empty(&u->held)) {
        msg_t *m = CONTAINER(u->held.next, msg_t, link);
        int rc = self->ops.deliver(self->arg, u->waid, m->frame, m->len);
        if (rc == SOUK_OK) {
            list_remove(&m->link);
            list_push_back(&u->inflight, &m->link);
            if (u->state != USER_LIVE)
                s_set_state(self, u, USER_LIVE, now_ms);
            continue;
        }
        if (rc == SOUK_EUNAVAIL)
            s_spawn(self, u, retry, now_ms);
        else if (rc != SOUK_EBUSY)
            SLOG_WARN("gateway.deliver_failed", "waid=%s err=%s", u->masked, souk_errname(rc));
        break; /* EBUSY and errors: the tick retries */
    }
    s_update_waiting(self, u);
}

static msg_t *s_take_msg(link_t *queue, const char *sid)
{
    for (link_t *l = queue->next; l != queue; l = l->next) {
        msg_t *m = CONTAINER(l, msg_t, link);
        if (strcmp(m->sid, sid) == 0) {
            list_remove(&m->link);
            return m;
        }
    }
    return NULL;
}

/* ACCEPTED, MERGED or an offer: the session has this message. */
static void s_settle_msg(gw_routing_t *self, user_t *u, const char *sid)
{
    msg_t *m = s_take_msg(&u->inflight, sid);
    if (!m)
        return;
    s_msg_free(m);
    u->nmsgs--;
    self->nmsgs--;
}

/* ---- requests -------------------------------------------------------------- */

static void s_request_forget(gw_routing_t *self, gw_request_t *r, int verdict)
{
    if (gw_recent_put(self->verdicts, r->sid, verdict) != SOUK_OK)
        SLOG_WARN("gateway.verdict_lost", "sid=%s", r->sid);
    zhashx_delete(self->requests, r->sid);
    list_remove(&r->user_link);
    list_remove(&r->deadline_link);
    r->user->nrequests--;
    self->npending--;
    free(r->proposed);
    free(r);
}

static void s_answer_twiml(gw_routing_t *self, void *http, const char *twiml, const char *carries)
{
    gw_answer_t a = { 200, "text/xml", twiml, strlen(twiml), carries };
    self->ops.answer(self->arg, http, &a);
}

static void s_answer_text(gw_routing_t *self, void *http, int status, const char *text)
{
    gw_answer_t a = { status, "text/plain; charset=utf-8", text, strlen(text), NULL };
    self->ops.answer(self->arg, http, &a);
}

/* Answers r with a TwiML document that is not the reply itself; a later
 * offer for it goes out through the sender. */
static void s_request_close(gw_routing_t *self, gw_request_t *r, const char *twiml, const char *why,
                            const char *carries)
{
    souk_log_request(r->request_id);
    SLOG_INFO("gateway.answered", "sid=%s waid=%s how=%s", r->sid, r->user->masked, why);
    souk_log_request(NULL);
    s_answer_twiml(self, r->http, twiml, carries);
    s_request_forget(self, r, VERDICT_REST);
}

/* Writes a proposed inline answer: confirmed by INLINE_ACK, or unconfirmed
 * when the session went quiet (it may have recorded the verdict; a
 * re-offer gets the remembered inline verdict, so it is written once). */
static void s_proposal_write(gw_routing_t *self, gw_request_t *r, const char *why)
{
    souk_log_request(r->request_id);
    SLOG_INFO("gateway.answered", "sid=%s waid=%s how=%s", r->sid, r->user->masked, why);
    souk_log_request(NULL);
    s_answer_twiml(self, r->http, r->proposed, "inline");
    s_request_forget(self, r, VERDICT_INLINE);
}

/* The budget ran out, or the drain deadline came. */
static void s_request_expire(gw_routing_t *self, gw_request_t *r)
{
    if (!r->accepted) {
        /* no 200 for a message no session has stored (see the top) */
        souk_log_request(r->request_id);
        SLOG_WARN("gateway.unaccepted", "sid=%s waid=%s stopping=%d", r->sid, r->user->masked,
                  self->draining);
        souk_log_request(NULL);
        s_answer_text(self, r->http, 503,
                      self->draining ? "shutting down: message not taken, send it again\n"
                                     : "message not taken in time, send it again\n");
        s_request_forget(self, r, VERDICT_REST);
        return;
    }
    s_request_close(self, r, self->twiml_ack, "ack", "later");
}

/* ---- lifecycle -------------------------------------------------------------- */

gw_routing_t *gw_routing_new(const gw_routing_ops_t *ops, void *arg, int64_t budget_ms,
                             int64_t quarantine_ms)
{
    gw_routing_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->ops = *ops;
    self->arg = arg;
    self->budget_ms = budget_ms;
    self->quarantine_ms = quarantine_ms;
    list_init(&self->deadlines);
    list_init(&self->proposals);
    list_init(&self->waiting);
    list_init(&self->down);
    self->users = zhashx_new();
    self->requests = zhashx_new();
    self->seen = gw_recent_new(GW_DEDUPE_MAX);
    self->verdicts = gw_recent_new(GW_VERDICTS_MAX);
    self->twiml_empty = twilio_twiml_empty();
    self->twiml_ack = twilio_twiml_message(TEXT_ACK);
    self->twiml_busy = twilio_twiml_message(TEXT_BUSY);
    self->twiml_apology = twilio_twiml_message(TEXT_APOLOGY);
    if (!self->users || !self->requests || !self->seen || !self->verdicts || !self->twiml_empty
        || !self->twiml_ack || !self->twiml_busy || !self->twiml_apology) {
        gw_routing_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->users, s_user_free);
    return self;
}

void gw_routing_destroy(gw_routing_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_routing_t *self = *self_p;
    link_t *lists[] = { &self->deadlines, &self->proposals };
    for (size_t i = 0; i < 2; i++)
        while (!list_empty(lists[i])) {
            gw_request_t *r = CONTAINER(lists[i]->next, gw_request_t, deadline_link);
            list_remove(&r->deadline_link);
            free(r->proposed);
            free(r);
        }
    zhashx_destroy(&self->requests);
    zhashx_destroy(&self->users);
    gw_recent_destroy(&self->seen);
    gw_recent_destroy(&self->verdicts);
    free(self->twiml_empty);
    free(self->twiml_ack);
    free(self->twiml_busy);
    free(self->twiml_apology);
    free(self);
    *self_p = NULL;
}

/* ---- from the HTTP edge ------------------------------------------------------- */

static msg_t *s_encode(const gw_inbound_t *in)
{
    souk_msg_t m = { .type = SOUK_MSG_INBOUND };
    m.inbound.request_id = (char *)in->request_id;
    m.inbound.msg_sid = (char *)in->msg_sid;
    m.inbound.waid = (char *)in->waid;
    m.inbound.from = (char *)in->from;
    m.inbound.profile = (char *)in->profile;
    m.inbound.body = (char *)in->body;
    m.inbound.num_media = in->num_media;
    m.inbound.params = (char *)in->params;
    m.inbound.received_ms = in->received_ms;
    msg_t *msg = calloc(1, sizeof *msg);
    if (!msg || souk_msg_encode(&m, &msg->frame, &msg->len) != SOUK_OK) {
        free(msg);
        return NULL;
    }
    snprintf(msg->sid, sizeof msg->sid, "%s", in->msg_sid);
    list_init(&msg->link);
    return msg;
}

bool gw_routing_seen(const gw_routing_t *self, const char *msg_sid)
{
    return gw_recent_get(self->seen, msg_sid) || zhashx_lookup(self->requests, msg_sid);
}

static bool s_listed(const link_t *head, const char *msg_sid)
{
    for (const link_t *l = head->next; l != head; l = l->next)
        if (strcmp(CONTAINER(l, const msg_t, link)->sid, msg_sid) == 0)
            return true;
    return false;
}

bool gw_routing_unstored(gw_routing_t *self, const char *waid, const char *msg_sid)
{
    const user_t *u = waid ? s_user(self, waid, false) : NULL;
    return u && (s_listed(&u->held, msg_sid) || s_listed(&u->inflight, msg_sid));
}

gw_disposition_t gw_routing_inbound(gw_routing_t *self, const gw_inbound_t *in, void *http,
                                    gw_request_t **req, int64_t now_ms)
{
    *req = NULL;
    if (gw_routing_seen(self, in->msg_sid)) {
        if (gw_routing_unstored(self, in->waid, in->msg_sid)) {
            s_answer_text(self, http, 503, TEXT_UNSTORED);
            return GW_BUSY;
        }
        s_answer_twiml(self, http, self->twiml_empty, "none");
        return GW_DUPLICATE;
    }
    user_t *u = s_user(self, in->waid, true);
    if (!u) {
        s_answer_text(self, http, 500, "out of memory\n");
        return GW_FAILED;
    }
    if (u->quarantine_until_ms > now_ms) {
        s_answer_twiml(self, http, self->twiml_apology, "inline");
        return GW_APOLOGY;
    }
    if (u->nmsgs >= GW_HELD_PER_USER || self->nmsgs >= GW_HELD_TOTAL) {
        s_answer_twiml(self, http, self->twiml_busy, "inline");
        return GW_BUSY;
    }
    msg_t *m = s_encode(in);
    gw_request_t *r = calloc(1, sizeof *r);
    if (!m || !r || zhashx_insert(self->requests, in->msg_sid, r) != 0) {
        if (m)
            s_msg_free(m);
        free(r);
        s_answer_text(self, http, 413, "message too large once encoded\n");
        return GW_FAILED;
    }
    snprintf(r->sid, sizeof r->sid, "%s", in->msg_sid);
    snprintf(r->request_id, sizeof r->request_id, "%s", in->request_id);
    r->user = u;
    r->http = http;
    r->deadline_ms = now_ms + self->budget_ms;
    list_push_back(&u->requests, &r->user_link);
    list_push_back(&self->deadlines, &r->deadline_link);
    u->nrequests++;
    self->npending++;
    gw_recent_put(self->seen, in->msg_sid, 1);

    list_push_back(&u->held, &m->link);
    u->nmsgs++;
    self->nmsgs++;
    switch (u->state) {
    case USER_NEW:
    case USER_LIVE: s_flush(self, u, false, now_ms); break;
    case USER_DOWN: s_spawn(self, u, false, now_ms); break;
    case USER_STARTING: break;
    }
    s_update_waiting(self, u);
    *req = r;
    return GW_ROUTED;
}

void gw_routing_request_gone(gw_routing_t *self, gw_request_t *req)
{
    souk_log_request(req->request_id);
    SLOG_INFO("gateway.client_gone", "sid=%s waid=%s", req->sid, req->user->masked);
    souk_log_request(NULL);
    s_request_forget(self, req, VERDICT_REST);
}

/* ---- from sessions ------------------------------------------------------------- */

void gw_routing_session_hello(gw_routing_t *self, const char *peer, int64_t now_ms)
{
    user_t *u = s_user(self, peer, true);
    if (!u)
        return;
    SLOG_DEBUG("gateway.session_hello", "waid=%s was=%s held=%zu", u->masked,
              s_state_names[u->state], u->nmsgs);
    u->quarantine_until_ms = 0;
    s_set_state(self, u, USER_LIVE, now_ms);
    s_flush(self, u, false, now_ms);
}

/* The pending request for sid, if it belongs to peer's user. */
static gw_request_t *s_request_of(gw_routing_t *self, user_t *u, const char *sid)
{
    gw_request_t *r = zhashx_lookup(self->requests, sid);
    if (r && r->user != u) {
        SLOG_ERROR("gateway.cross_talk", "sid=%s owner=%s peer=%s", sid, r->user->masked,
                  u ? u->masked : "?");
        return NULL;
    }
    return r;
}

void gw_routing_accepted(gw_routing_t *self, const char *peer, const char *msg_sid,
                         bool duplicate, int64_t now_ms)
{
    (void)now_ms;
    user_t *u = s_user(self, peer, false);
    if (!u)
        return;
    s_settle_msg(self, u, msg_sid);
    gw_request_t *r = s_request_of(self, u, msg_sid);
    if (!r)
        return;
    if (duplicate)
        s_request_close(self, r, self->twiml_empty, "duplicate", "none");
    else
        r->accepted = true;
}

void gw_routing_merged(gw_routing_t *self, const char *peer, const char *msg_sid, int64_t now_ms)
{
    (void)now_ms;
    user_t *u = s_user(self, peer, false);
    if (u)
        s_settle_msg(self, u, msg_sid);
    gw_request_t *r = u ? s_request_of(self, u, msg_sid) : NULL;
    if (r)
        s_request_close(self, r, self->twiml_empty, "merged", "none");
    else if (!gw_recent_get(self->verdicts, msg_sid))
        gw_recent_put(self->verdicts, msg_sid, VERDICT_REST);
}

void gw_routing_defer(gw_routing_t *self, const char *peer, const char *msg_sid,
                      const char *text, int64_t now_ms)
{
    gw_routing_expire(self, now_ms);
    user_t *u = s_user(self, peer, false);
    if (u)
        s_settle_msg(self, u, msg_sid);
    gw_request_t *r = u ? s_request_of(self, u, msg_sid) : NULL;
    if (!r) { /* answered already (budget, restart): the reply goes by REST anyway */
        if (!gw_recent_get(self->verdicts, msg_sid))
            gw_recent_put(self->verdicts, msg_sid, VERDICT_REST);
        return;
    }
    if (!text || !*text) { /* another node's session answers: say nothing now */
        s_request_close(self, r, self->twiml_empty, "elsewhere", "later");
        return;
    }
    char *twiml = twilio_twiml_message(text);
    s_request_close(self, r, twiml ? twiml : self->twiml_ack, "deferred", "later");
    free(twiml);
}

void gw_routing_offer(gw_routing_t *self, const char *peer, const char *msg_sid,
                      const char *outbox_key, const char *body, int64_t now_ms)
{
    /* a request whose budget is over by now is acknowledged first, whether
     * or not its timer has fired yet */
    gw_routing_expire(self, now_ms);
    user_t *u = s_user(self, peer, false);
    if (u)
        s_settle_msg(self, u, msg_sid);
    if (!*outbox_key) {
        /* nothing to say (a STOP): answer empty, and no verdict is owed */
        gw_request_t *quiet = u ? s_request_of(self, u, msg_sid) : NULL;
        if (quiet)
            s_request_close(self, quiet, self->twiml_empty, "silent", "none");
        return;
    }
    gw_request_t *r = NULL;
    int verdict = gw_recent_get(self->verdicts, msg_sid);
    if (!verdict) {
        r = u ? s_request_of(self, u, msg_sid) : NULL;
        verdict = r ? VERDICT_INLINE : VERDICT_REST;
        if (!r)
            gw_recent_put(self->verdicts, msg_sid, VERDICT_REST);
    }
    /* An inline answer is written only once the session has recorded the
     * inline verdict (INLINE_ACK): a gateway that dies in between has
     * written nothing, Twilio saw no 200, and a resend of the message gets
     * the recorded answer again. Writing first would let a reply go out
     * inline while the verdict is still in ZeroMQ's queue, and the session,
     * never hearing it, would send the same reply again by REST. */
    souk_msg_t v = { .type = SOUK_MSG_REPLY_VERDICT };
    v.reply_verdict.msg_sid = (char *)msg_sid;
    v.reply_verdict.outbox_key = (char *)outbox_key;
    v.reply_verdict.inline_ = verdict == VERDICT_INLINE;
    int rc = self->ops.to_session(self->arg, peer, &v);
    if (rc != SOUK_OK)
        SLOG_WARN("gateway.verdict_unsent", "sid=%s err=%s", msg_sid, souk_errname(rc));
    if (!r || r->proposed)
        return;
    r->proposed = twilio_twiml_message(body);
    if (!r->proposed) {
        s_answer_text(self, r->http, 500, "out of memory\n");
        s_request_forget(self, r, VERDICT_INLINE);
        return;
    }
    gw_recent_put(self->verdicts, msg_sid, VERDICT_INLINE);
    list_remove(&r->deadline_link);
    r->deadline_ms = now_ms + GW_CONFIRM_WAIT_MS;
    list_push_back(&self->proposals, &r->deadline_link);
}

void gw_routing_inline_ack(gw_routing_t *self, const char *peer, const char *msg_sid, bool ok,
                           int64_t now_ms)
{
    (void)now_ms;
    user_t *u = s_user(self, peer, false);
    gw_request_t *r = u ? s_request_of(self, u, msg_sid) : NULL;
    if (!r || !r->proposed)
        return;
    if (ok)
        s_proposal_write(self, r, "inline");
    else /* the reply already goes out through the sender */
        s_request_close(self, r, self->twiml_empty, "rest_already", "none");
}

void gw_routing_idle(gw_routing_t *self, const char *peer, const char *waid, int64_t now_ms)
{
    bool ok = false;
    user_t *u = NULL;
    if (strcmp(peer, waid) == 0) {
        u = s_user(self, peer, true);
        ok = u && u->nmsgs == 0;
    } else {
        SLOG_WARN("gateway.idle_mismatch", "peer_len=%zu", strlen(peer));
    }
    if (ok && u->state != USER_DOWN)
        s_set_state(self, u, USER_DOWN, now_ms);
    souk_msg_t m = { .type = SOUK_MSG_IDLE_OK };
    m.idle_ok.waid = (char *)peer;
    m.idle_ok.ok = ok;
    self->ops.to_session(self->arg, peer, &m);
}

/* ---- from the supervisor ------------------------------------------------------- */

void gw_routing_session_exit(gw_routing_t *self, const char *waid, bool quarantined,
                             bool refused, int64_t now_ms)
{
    user_t *u = s_user(self, waid, quarantined);
    if (!u)
        return;
    /* un-accepted messages go back to the head of the queue, in order */
    while (!list_empty(&u->inflight)) {
        link_t *last = u->inflight.prev;
        list_remove(last);
        list_push_front(&u->held, last);
    }
    SLOG_INFO("gateway.session_exit", "waid=%s quarantined=%d refused=%d held=%zu", u->masked,
              quarantined, refused, u->nmsgs);
    if (quarantined) {
        u->quarantine_until_ms = now_ms + self->quarantine_ms;
        while (!list_empty(&u->requests))
            s_request_close(self, CONTAINER(u->requests.next, gw_request_t, user_link),
                            self->twiml_apology, "apology", "inline");
        while (!list_empty(&u->held)) {
            msg_t *m = CONTAINER(u->held.next, msg_t, link);
            SLOG_WARN("gateway.dropped_quarantined", "sid=%s waid=%s", m->sid, u->masked);
            list_remove(&m->link);
            s_msg_free(m);
            u->nmsgs--;
            self->nmsgs--;
        }
        s_set_state(self, u, USER_DOWN, now_ms);
    } else if (u->nmsgs > 0 && refused) {
        /* the supervisor would not start it now (at the cap, stopping):
         * keep holding, and let the tick ask again, backing off */
        if (u->state != USER_STARTING || !u->spawn_wait_ms) {
            u->spawn_wait_ms = GW_SPAWN_RETRY_MS;
            s_set_state(self, u, USER_STARTING, now_ms);
        }
        u->spawn_ms = now_ms;
    } else if (u->nmsgs > 0) {
        s_spawn(self, u, false, now_ms);
    } else {
        s_set_state(self, u, USER_DOWN, now_ms);
    }
    s_update_waiting(self, u);
}

/* ---- time ------------------------------------------------------------------------ */

void gw_routing_expire(gw_routing_t *self, int64_t now_ms)
{
    while (!list_empty(&self->deadlines)) {
        gw_request_t *r = CONTAINER(self->deadlines.next, gw_request_t, deadline_link);
        if (r->deadline_ms > now_ms)
            break;
        s_request_expire(self, r);
    }
    while (!list_empty(&self->proposals)) {
        gw_request_t *r = CONTAINER(self->proposals.next, gw_request_t, deadline_link);
        if (r->deadline_ms > now_ms)
            break;
        s_proposal_write(self, r, "inline_unconfirmed");
    }
}

int64_t gw_routing_next_deadline(const gw_routing_t *self)
{
    int64_t next = -1;
    const link_t *lists[] = { &self->deadlines, &self->proposals };
    for (size_t i = 0; i < 2; i++) {
        if (list_empty(lists[i]))
            continue;
        int64_t d = CONTAINER(lists[i]->next, gw_request_t, deadline_link)->deadline_ms;
        if (next < 0 || d < next)
            next = d;
    }
    return next;
}

void gw_routing_tick(gw_routing_t *self, int64_t now_ms)
{
    link_t *l = self->waiting.next;
    while (l != &self->waiting) {
        user_t *u = CONTAINER(l, user_t, wait_link);
        l = l->next; /* s_flush may unlink u */
        bool starting = u->state == USER_STARTING || u->state == USER_DOWN;
        if (starting && now_ms - u->spawn_ms < u->spawn_wait_ms)
            continue;
        if (starting)
            SLOG_WARN("gateway.spawn_retry", "waid=%s held=%zu", u->masked, u->nmsgs);
        /* try the routing id first: a session whose hello we never saw (it
         * raced its predecessor's SESSION_EXIT) takes them; else ask again */
        s_flush(self, u, starting, now_ms);
    }
    while (!list_empty(&self->down)) {
        user_t *u = CONTAINER(self->down.next, user_t, down_link);
        if (now_ms - u->down_ms < GW_USER_FORGET_MS)
            break;
        list_remove(&u->down_link);
        if (u->nmsgs == 0 && u->nrequests == 0 && u->quarantine_until_ms <= now_ms) {
            zhashx_delete(self->users, u->waid);
        } else {
            u->down_ms = now_ms;
            list_push_back(&self->down, &u->down_link);
        }
    }
}

void gw_routing_set_draining(gw_routing_t *self) { self->draining = true; }

void gw_routing_answer_all(gw_routing_t *self, int64_t now_ms)
{
    (void)now_ms;
    while (!list_empty(&self->deadlines))
        s_request_expire(self, CONTAINER(self->deadlines.next, gw_request_t, deadline_link));
    while (!list_empty(&self->proposals))
        s_proposal_write(self, CONTAINER(self->proposals.next, gw_request_t, deadline_link),
                         "inline_at_stop");
}

size_t gw_routing_pending(const gw_routing_t *self) { return self->npending; }
size_t gw_routing_held(const gw_routing_t *self) { return self->nmsgs; }
