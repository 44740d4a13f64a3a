/* The gateway actor's private contracts, shared by its files.
 *
 *   gateway.c  the actor: sockets, the libwebsockets loop, timers, the bus
 *   http.c     the HTTP edge: routes, limits, validation, answers
 *   routing.c  per-user state: live/starting/down sessions, held and
 *              in-flight messages, pending requests and their budgets,
 *              verdicts — pure logic behind gw_routing_ops_t
 *   recent.c   bounded "recently seen" maps (MessageSid dedupe, verdicts)
 *   metrics.c  GET /metrics (asks the supervisor) and the request counters
 *   console.c  the web console (/console): its door, page and websocket;
 *              console_chat.c, console_feed.c behind console.h
 *
 * Everything runs on one thread, in libwebsockets' loop: the reply decision
 * for a message (inline or REST) is taken exactly once, in routing.c. */
#ifndef SOUK_GATEWAY_H
#define SOUK_GATEWAY_H

#include "souk/lws.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "souk/actor.h"
#include "souk/config.h"
#include "souk/proto.h"

/* ---- limits ---------------------------------------------------------------- */

#define GW_BODY_MAX (64 * 1024)        /* webhook bodies over this: 413 */
#define GW_DEDUPE_MAX 100000           /* MessageSids remembered for dedupe */
#define GW_VERDICTS_MAX 100000         /* reply verdicts remembered */
#define GW_HELD_PER_USER 64            /* held + in flight per user, then "busy" */
#define GW_HELD_TOTAL 200000           /* held + in flight over all users */
#define GW_SPAWN_RETRY_MS 2000         /* SPAWN_SESSION again when no hello came, */
#define GW_SPAWN_RETRY_MAX_MS 30000    /* ... doubling up to this */
#define GW_TICK_MS 250                 /* housekeeping: spawn retries, sweeps */
#define GW_USER_FORGET_MS 30000        /* a down, empty user record is dropped after */
#define GW_CONFIRM_WAIT_MS 2000        /* an inline answer waits this long for INLINE_ACK */
#define GW_SID_MAX 64                  /* MessageSid: 1..64 letters and digits */
#define GW_REQUEST_ID_LEN 32           /* "<8 hex>-<hex counter>" and its NUL */
#define GW_METRICS_WAIT_MS 2000        /* GET /metrics waits this long for the supervisor */

/* ---- recent: a bounded map of short keys to small values --------------------
 * Remembers the last `cap` keys inserted; inserting one more forgets the
 * oldest. Keys are copied. */
typedef struct gw_recent gw_recent_t;

gw_recent_t *gw_recent_new(size_t cap);
void gw_recent_destroy(gw_recent_t **self_p);
/* Value stored for key, or 0 when the key is not remembered. */
int gw_recent_get(const gw_recent_t *self, const char *key);
/* Remembers key → value (value != 0); an existing key keeps its place in
 * the eviction order and takes the new value. SOUK_OK or SOUK_ENOMEM. */
int gw_recent_put(gw_recent_t *self, const char *key, int value);
size_t gw_recent_size(const gw_recent_t *self);

/* ---- routing ----------------------------------------------------------------- */

typedef struct gw_routing gw_routing_t;
typedef struct gw_request gw_request_t;

/* A verified inbound message, as parsed at the HTTP edge (all borrowed). */
typedef struct {
    const char *request_id;
    const char *msg_sid;
    const char *waid;
    const char *from;
    const char *profile;
    const char *body;
    uint64_t num_media;
    const char *params; /* every form parameter, as a JSON object */
    uint64_t received_ms;
} gw_inbound_t;

/* How an HTTP request is answered. `body` is borrowed for the call. */
typedef struct {
    int status;
    const char *content_type;
    const char *body;
    size_t len;
    /* X-Souk-Answer: how the final reply to this message travels — "inline"
     * (this response), "later" (an acknowledgement now, the reply through
     * the sender) or "none" (a duplicate, or answered with a later message
     * of the same turn). NULL: no header (errors, probes). */
    const char *carries;
} gw_answer_t;

/* What routing needs from the world; `arg` is gw_routing_new's. */
typedef struct {
    /* One encoded INBOUND frame to the session whose routing id is waid:
     * SOUK_OK, SOUK_EUNAVAIL (no such peer), SOUK_EBUSY (queue full). */
    int (*deliver)(void *arg, const char *waid, const void *frame, size_t len);
    /* A message to the session `waid` (REPLY_VERDICT, IDLE_OK). */
    int (*to_session)(void *arg, const char *waid, const souk_msg_t *m);
    /* A message to the supervisor (SPAWN_SESSION). */
    int (*to_supervisor)(void *arg, const souk_msg_t *m);
    /* The answer to the HTTP request `http` (gw_routing_inbound's handle);
     * after this call routing forgets the handle. */
    void (*answer)(void *arg, void *http, const gw_answer_t *a);
} gw_routing_ops_t;

/* How gw_routing_inbound disposed of a message. */
typedef enum {
    GW_ROUTED,    /* routed; the answer comes later through ops->answer */
    GW_DUPLICATE, /* MessageSid seen recently: answer <Response/> now */
    GW_BUSY,      /* too many messages held for this user: answer "busy" */
    GW_APOLOGY,   /* user quarantined: answer the apology */
    GW_FAILED,    /* could not encode (too large once encoded) */
} gw_disposition_t;

/* budget_ms: how long a request waits for its reply; quarantine_ms: how
 * long a quarantined user gets the apology. Caller owns the result. */
gw_routing_t *gw_routing_new(const gw_routing_ops_t *ops, void *arg, int64_t budget_ms,
                             int64_t quarantine_ms);
void gw_routing_destroy(gw_routing_t **self_p);

/* Whether msg_sid was routed recently (a repeat is answered <Response/>). */
bool gw_routing_seen(const gw_routing_t *self, const char *msg_sid);
/* Whether msg_sid is held or in flight for waid: no session has stored it
 * yet, so a delivery of it again must not be answered 200. */
bool gw_routing_unstored(gw_routing_t *self, const char *waid, const char *msg_sid);

/* A verified webhook. `http` is the caller's handle for the request; with
 * GW_ROUTED, *req receives routing's handle (for gw_routing_request_gone).
 * Every other disposition has created nothing: the caller answers now. */
gw_disposition_t gw_routing_inbound(gw_routing_t *self, const gw_inbound_t *in, void *http,
                                    gw_request_t **req, int64_t now_ms);
/* The HTTP connection of a routed request closed before it was answered:
 * its reply, when offered, goes out through the sender. */
void gw_routing_request_gone(gw_routing_t *self, gw_request_t *req);

/* Messages from session `peer` (its routing id). */
void gw_routing_session_hello(gw_routing_t *self, const char *peer, int64_t now_ms);
void gw_routing_accepted(gw_routing_t *self, const char *peer, const char *msg_sid,
                         bool duplicate, int64_t now_ms);
void gw_routing_merged(gw_routing_t *self, const char *peer, const char *msg_sid,
                       int64_t now_ms);
void gw_routing_offer(gw_routing_t *self, const char *peer, const char *msg_sid,
                      const char *outbox_key, const char *body, int64_t now_ms);
/* INLINE_ACK: the session recorded the inline verdict (ok) and the
 * proposed answer may be written now; or (!ok) its reply already goes out
 * through the sender, and the request is answered empty. */
void gw_routing_inline_ack(gw_routing_t *self, const char *peer, const char *msg_sid, bool ok,
                           int64_t now_ms);
/* The session takes the slow path for msg_sid (a change to an order, a
 * ticket, a voice note): answer the request now with `text` as the
 * acknowledgement; the reply, when offered, goes out through the sender. */
void gw_routing_defer(gw_routing_t *self, const char *peer, const char *msg_sid,
                      const char *text, int64_t now_ms);
void gw_routing_idle(gw_routing_t *self, const char *peer, const char *waid, int64_t now_ms);
/* From the supervisor: the session of waid ended, or (refused) was not
 * started (SESSION_EXIT with code -1). */
void gw_routing_session_exit(gw_routing_t *self, const char *waid, bool quarantined,
                             bool refused, int64_t now_ms);

/* Answers every request whose budget ran out by now (acknowledgement). */
void gw_routing_expire(gw_routing_t *self, int64_t now_ms);
/* Deadline of the oldest pending request (monotonic ms), or -1. */
int64_t gw_routing_next_deadline(const gw_routing_t *self);
/* Housekeeping: spawn retries, delivery retries, forgetting idle users. */
void gw_routing_tick(gw_routing_t *self, int64_t now_ms);
/* Draining: from now on a request whose message no session has accepted is
 * answered 503 at its deadline instead of being acknowledged (nobody will
 * start a session for it). */
void gw_routing_set_draining(gw_routing_t *self);
/* The drain deadline: answers every pending request now. */
void gw_routing_answer_all(gw_routing_t *self, int64_t now_ms);

size_t gw_routing_pending(const gw_routing_t *self); /* requests waiting */
size_t gw_routing_held(const gw_routing_t *self);    /* messages held or in flight */

/* ---- metrics (metrics.c) ---------------------------------------------------------- */

typedef struct gw_metrics gw_metrics_t;
typedef struct gw gw_t;

gw_metrics_t *gw_metrics_new(gw_t *gw);
/* Only after lws_context_destroy. */
void gw_metrics_destroy(gw_metrics_t **self_p);
/* GET /metrics on `http`: answered (gw_http_answer) when the supervisor's
 * METRICS_REP comes, or 503 after GW_METRICS_WAIT_MS. */
void gw_metrics_scrape(gw_metrics_t *self, void *http);
/* The connection of a waiting scrape closed. */
void gw_metrics_gone(gw_metrics_t *self, void *http);
/* METRICS_REP from the supervisor. */
void gw_metrics_reply(gw_metrics_t *self, const char *text);
/* One answered request: souk_webhook_requests_total, and for a webhook the
 * answer-time histogram since started_us (gw_metrics_now_us). */
void gw_metrics_request_done(const char *route, int status, int64_t started_us, bool webhook);
int64_t gw_metrics_now_us(void);

/* ---- the actor ------------------------------------------------------------------- */

struct gw {
    souk_config_t *cfg;
    souk_actor_t *actor;
    zsock_t *sessions;         /* ROUTER, bound: session actors */
    zsock_t *sender;           /* PUSH, connected: DELIVERY */
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    gw_routing_t *routing;

    const char *token;         /* TWILIO_AUTH_TOKEN: never logged */
    char sign_base[512];       /* public URL without a trailing '/' */
    char *twiml_empty;         /* <Response/>, built once */
    size_t twiml_empty_len;

    bool ready;                /* the supervisor's last READINESS */
    char ready_detail[256];
    bool draining;             /* STOP or SIGTERM seen */
    bool done;                 /* leave the loop */
    bool drain_hard;           /* the drain deadline passed once already */
    bool signalled;            /* SIGTERM/SIGINT seen */
    int exit_code;
    int64_t drain_deadline_ms;
    struct lws *in_wsi;        /* the connection whose callback is running */
    size_t unwritten;          /* answers decided but not yet written */
    bool in_after_event;       /* gw_after_event is running */
    int64_t budget_armed_ms;   /* deadline sul_budget is set for, or -1 */

    uint64_t handled;          /* webhooks answered */
    uint64_t request_seq;
    char request_prefix[12];
    int64_t last_handled_ms;

    lws_sorted_usec_list_t sul_heartbeat, sul_budget, sul_tick, sul_drain, sul_pump;
    gw_metrics_t *metrics;     /* GET /metrics */
    struct gw_console *console; /* NULL: SOUK_CONSOLE_TOKEN unset, the console is off */
};

/* http.c */
extern const struct lws_protocols gw_http_protocol;
/* Decided answer for a request (ops->answer); written when lws can. */
void gw_http_answer(gw_t *gw, void *http, const gw_answer_t *a);

/* gateway.c: called by http.c after each HTTP event. */
void gw_after_event(gw_t *gw);
/* A fresh request id (NUL-terminated, < GW_REQUEST_ID_LEN bytes). */
void gw_request_id(gw_t *gw, char out[GW_REQUEST_ID_LEN]);
/* STOP or SIGTERM: stop taking webhooks, drain until drain_ms. */
void gw_begin_drain(gw_t *gw, const char *reason, int64_t drain_ms);

/* ---- console.c: the web console --------------------------------------------------
 * /console (the page), /console/ws (its websocket, protocol "souk-console")
 * and /console/media/<id> (voice notes uploaded from the page). Everything
 * but media needs SOUK_CONSOLE_TOKEN, presented once as ?token= (answered
 * with an HttpOnly SameSite=Strict cookie) or as that cookie: otherwise 401.
 * Messages typed in the page go through gw_routing_inbound like a verified
 * webhook; answers come back through gw_console_answer. */
typedef struct gw_console gw_console_t;

#define GW_CONSOLE_PROTOCOLS 2 /* entries gw_console_protocols fills */
/* The console's lws protocols (its websocket, its bus sockets), for the
 * context's table. */
void gw_console_protocols(struct lws_protocols *out);
/* After the vhost exists: opens the console's bus links when the token is
 * set (gw->console stays NULL when it is not). -1 on failure. */
int gw_console_start(gw_t *gw);
void gw_console_stop(gw_t *gw);
/* Whether path is the console's (answered by gw_console_http). */
bool gw_console_path(const char *path);

/* A console HTTP answer; body is the caller's to free. */
typedef struct {
    int status;
    const char *content_type;
    char *body;
    size_t len;
    char set_cookie[200];  /* "" or a Set-Cookie value */
    char location[64];     /* "" or a Location value */
} gw_console_http_t;
/* A GET under /console. */
void gw_console_http(gw_t *gw, struct lws *wsi, const char *path, gw_console_http_t *out);
/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: 0 lets a console websocket through;
 * 1 after answering 401/404 itself. */
int gw_console_confirm_upgrade(gw_t *gw, struct lws *wsi);
/* Routing's answer for `http`: true when it was a console request (and is
 * now answered), false when it is an HTTP request's. */
bool gw_console_answer(gw_t *gw, void *http, const gw_answer_t *a);

#endif
