/* The session actor's private parts, shared by its files (no other actor
 * includes this header):
 *
 *   session.c  the actor: sockets, the one zloop, bus dispatch, timers,
 *              idle exit, drain on STOP / SIGTERM
 *   inbound.c  INBOUND: refuse another user's, persist, then ACCEPTED
 *   turn.c     the debounced turn: MERGED, opt-out keywords, the durable
 *              steps of an answer, resume after a crash
 *   reply.c    offers waiting for the gateway's verdict, verdicts, re-offers
 *   answer.c   what the session says: the built-in agent, the LLM agent
 *              (SOUK_LLM=openai) with the built-in one as its fallback, or
 *              the echo text
 *   lease.c    several nodes: which session answers a user
 *   media.c    voice notes to text, a word on other media, locations
 *
 * Everything runs on the loop's one thread. What waits on the network
 * keeps the actor heartbeating meanwhile: tool calls and model calls in a
 * nested wait that ticks, and a voice note's download and transcription on
 * a worker thread that touches no socket and no store. */
#ifndef SOUK_SESSION_H
#define SOUK_SESSION_H

#include "souk/actor.h"
#include "souk/config.h"
#include "souk/llm.h"
#include "souk/proto.h"
#include "souk/store.h"
#include "souk/twilio.h"

#include <stdbool.h>
#include <stdint.h>

/* A turn holds at most this many messages: a user who never pauses still
 * gets an answer every TURN_MAX messages, and after a crash the pending
 * messages are exactly one turn. */
#define SESSION_TURN_MAX 16
/* Nor does a turn wait longer than this many debounce windows. */
#define SESSION_TURN_AGE_WINDOWS 4
/* How long to wait for IDLE_OK before deciding alone. */
#define SESSION_IDLE_WAIT_MS 3000
/* Without a verdict, an offer is made again after the reply budget plus
 * this; the wait doubles up to SESSION_REOFFER_MAX_MS. */
#define SESSION_REOFFER_GRACE_MS 2000
#define SESSION_REOFFER_MAX_MS 30000
/* A tool call waits this long for its result, then is sent again (to
 * another tool actor) up to SESSION_TOOL_ATTEMPTS times in all. */
#define SESSION_TOOL_DEADLINE_MS 2000
#define SESSION_TOOL_ATTEMPTS 3

/* One message of the current turn, as accepted. */
typedef struct {
    char *msg_sid;
    char *request_id;     /* the gateway's, for logs; "" on resume */
    char *body;
    uint64_t num_media;
    bool fresh;           /* stored by this session just now: nothing of its turn is stored yet */
} session_msg_t;

/* An offer the gateway has not given its verdict on yet. */
typedef struct session_offer {
    struct session_offer *next;
    char *key;            /* outbox key, "r:<msg_sid>" */
    char *msg_sid;
    char *request_id;     /* the turn's, so the verdict's lines (and the sender's) carry it */
    int64_t received_ms;  /* wall: the turn's last message arrived; 0 on resume */
    int64_t due_ms;       /* monotonic: offer again then */
    int64_t wait_ms;      /* current re-offer interval */
} session_offer_t;

typedef struct {
    const souk_config_t *cfg;
    char waid[TWILIO_WAID_MAX_DIGITS + 1];
    char masked[TWILIO_WAID_MAX_DIGITS + 8]; /* the waid as logs may show it */
    souk_actor_t *actor;
    store_t *store;       /* NULL while idle on one node: session_wake */
    int64_t store_used_ms; /* monotonic: the store was last asked for */
    int64_t trim_due_ms;  /* monotonic: give freed memory back then; 0: not due */
    zsock_t *gateway;     /* DEALER, identity = waid, to the sessions ROUTER */
    zsock_t *sender;      /* PUSH to the sender's PULL; NULL while idle */
    zsock_t *tools;       /* DEALER connected to every tool actor; NULL while idle */
    zsock_t *monitor;     /* PAIR: socket events of `gateway` */
    zloop_t *loop;
    int timer_id;         /* the one wake-up timer; -1 when none */
    int64_t timer_due;    /* monotonic time it fires */

    session_msg_t turn[SESSION_TURN_MAX];
    size_t turn_len;
    int64_t turn_received_ms; /* wall: the current turn's last message arrived (metrics) */
    int64_t turn_first_ms, turn_last_ms; /* monotonic */

    session_offer_t *offers;

    uint64_t handled;     /* INBOUND messages handled */
    uint64_t tool_calls;  /* for unique call ids */
    int64_t last_msg_ms;  /* monotonic: the last message (heartbeat idle_ms) */
    int64_t idle_from_ms; /* monotonic: idle since, for asking to exit */
    int64_t idle_asked_ms; /* IDLE sent at; 0: not asked */
    bool gateway_lost;    /* disconnected since the last connect */
    bool draining;
    int64_t drain_deadline_ms;
    int exit_code;        /* 0, or 1 after a failure that ends the loop */

    /* several nodes (cfg->multi_node): the user's lease, see lease.c */
    bool lease_held;      /* this session answers the user (always, single node) */
    int64_t lease_due_ms; /* monotonic: renew (held) or try again (not held) */
    int64_t poll_due_ms;  /* monotonic: look for messages other nodes stored */
    /* The user record as the turn needs it, kept between turns on one node
     * (this session is its only writer there); with several nodes it is
     * read each turn, another node's session may have changed it. */
    bool user_known;
    bool opted_out;
    char *profile_name;
    llm_t *llm;           /* SOUK_LLM=openai: made on the first turn, kept (its connection too) */
    bool llm_broken;      /* it could not be made: the built-in agent answers */
    int64_t llm_beat_ms;  /* monotonic: the next heartbeat due during a model call */
} session_t;

/* ---- session.c ---------------------------------------------------------- */

/* Brings back what an idle session gave back (session.c): the store
 * handle, the sender and tool links; notes the use. SOUK_OK, store_open's
 * error (logged) or SOUK_EIO. */
int session_wake(session_t *self);
/* Sends `m` to the gateway; logs a failure. */
int session_send_gateway(session_t *self, const souk_msg_t *m);
/* Arms the one timer for the earliest thing that is due. */
void session_schedule(session_t *self);
/* Whether the session still owes anything: a turn or an unanswered offer. */
bool session_busy(const session_t *self);
/* The store failed where going on could lose or double a message: logs it
 * and ends the loop with exit code 1. The supervisor restarts the session,
 * which resumes from the store, and the gateway delivers again what was
 * not acknowledged. */
void session_fail(session_t *self, const char *what, int rc);

/* ---- inbound.c ---------------------------------------------------------- */

/* Handles one INBOUND (the caller clears `in` afterwards). */
void session_inbound_handle(session_t *self, const souk_inbound_t *in);
/* The idempotent rest of persisting a message after its row: the user
 * record and the history entry. profile, from and media_json may be NULL
 * (kept as stored). Returns SOUK_OK or the store's error. */
int session_inbound_touch(session_t *self, const char *msg_sid, const char *body,
                          const char *profile, const char *from, const char *media_json,
                          int64_t received_ms);

/* ---- turn.c ------------------------------------------------------------- */

/* Adds an accepted message to the current turn (copies what it needs).
 * Returns SOUK_OK or SOUK_ENOMEM. */
int session_turn_add(session_t *self, const char *msg_sid, const char *request_id,
                     const char *body, uint64_t num_media, bool fresh);
/* Whether `msg_sid` is in the current turn. */
bool session_turn_has(const session_t *self, const char *msg_sid);
/* Monotonic time the current turn is due; 0 when there is no turn. */
int64_t session_turn_due(const session_t *self);
/* Runs the current turn to its REPLY_OFFER and empties it. */
void session_turn_run(session_t *self);
/* Start-up: answers the messages a crash left pending, as turns. */
int session_turn_resume(session_t *self);
/* Frees the turn's messages. */
void session_turn_clear(session_t *self);

/* Adds to the current turn the pending messages it lacks: those another
 * node stored while this session held the lease. Returns SOUK_OK or the
 * store's error; *added (may be NULL) counts them. */
int session_turn_adopt(session_t *self, size_t *added);

/* ---- lease.c ------------------------------------------------------------ */

/* With several nodes on one store, one session at a time answers a user:
 * the one holding the lease "session#<waid>" (a conditional write with an
 * expiry, renewed while it lives). A session without it stores and
 * acknowledges the user's messages and leaves them to the holder, which
 * picks them up from the store; it takes the lease over when the holder's
 * node dies (the lease expires). On one node the lease is never taken and
 * the session always answers. */

/* Start-up: takes the lease if it can. */
void session_lease_start(session_t *self);
/* Monotonic time of the next lease chore (renew, retry, poll); 0: none. */
int64_t session_lease_due(const session_t *self);
/* Timer: renews or tries again; the holder adopts what other nodes stored,
 * and a session that just took the lease over resumes the user's pending
 * work. */
void session_lease_tick(session_t *self);
/* Exit: gives the lease back so another node need not wait for it. */
void session_lease_end(session_t *self);

/* ---- reply.c ------------------------------------------------------------ */

/* Sends REPLY_OFFER for an outbox row and waits for its verdict. */
void session_reply_offer(session_t *self, const char *msg_sid, const char *key,
                         const char *body);
/* Sends the empty REPLY_OFFER: "nothing to say to this message" (the
 * gateway answers <Response/>, no verdict follows). */
void session_reply_none(session_t *self, const char *msg_sid);
/* Records the gateway's verdict. */
void session_reply_verdict(session_t *self, const souk_reply_verdict_t *v);
/* Offers again whatever is due (or everything, when `all`). */
void session_reply_reoffer(session_t *self, bool all);
/* Start-up: offers again the rows a crash left offered. */
int session_reply_resume(session_t *self);
/* Monotonic time the next re-offer is due; 0 when none is waiting. */
int64_t session_reply_due(const session_t *self);
/* Frees the list of waiting offers. */
void session_reply_clear(session_t *self);

/* ---- tools_client.c ---------------------------------------------------- */

/* Runs one tool for this session's user (its WaId, never the caller's
 * choice) on the tool pool and waits for the result, retrying on another
 * tool actor when one does not answer in time (the agent_tool_fn contract
 * of souk/agent.h): SOUK_OK with *result_json, or the tool's error code
 * (SOUK_ENOTFOUND, SOUK_ESTOCK …) with *error, its sentence; SOUK_EUNAVAIL
 * with *error when no tool actor answered. The caller frees both. */
int session_tool_call(session_t *self, const char *tool, const char *args_json,
                      const char *idem_key, char **result_json, char **error);

/* ---- media.c ------------------------------------------------------------ */

/* What a turn's media came to: a note said before the answer (or alone),
 * and whether the turn was acknowledged already (DEFER sent). */
typedef struct {
    char *note;
    bool deferred;
} session_media_t;

/* Looks at the media and locations of the turn's messages: a voice note is
 * acknowledged (DEFER), transcribed, and its transcript appended to that
 * message's body; the rest become notes. Heartbeats while it waits.
 * Returns SOUK_OK (a failed download or transcription is a note, not an
 * error) or the store's error; *m is the caller's to clear. */
int session_media_prepare(session_t *self, session_msg_t *msgs, size_t n, const char *turn_sid,
                          session_media_t *m);
/* The turn's reply: the note, then the agent's reply (taken; may be NULL
 * or ""). Returns a malloc'd text, or NULL when out of memory. */
char *session_media_reply(const session_media_t *m, char *reply);
void session_media_clear(session_media_t *m);
/* The history text of a location message ("📍 Location: lat,lon address"),
 * from its webhook parameters (JSON); NULL when it carries none. */
char *session_media_history_text(const char *params_json);
/* The arguments of a tool call with the user's newest location since
 * their last order added to place_order's note (the delivery address);
 * NULL to use args_json as it is. Caller frees. */
char *session_media_tool_args(session_t *self, const char *tool, const char *args_json);

/* ---- answer.c ----------------------------------------------------------- */

/* What a turn hands to the answer: the user's messages, oldest first. */
typedef struct {
    const char *waid;
    const char *profile_name;    /* may be NULL */
    const session_msg_t *msgs;
    size_t n;
    store_t *store;              /* for an answer that reads history or stock */
    const char *turn_sid;        /* the MessageSid that carries the answer */
    session_t *session;          /* for tool calls (session_tool_call) */
} session_turn_t;

/* The turn's messages as one text, one line each (empty ones left out).
 * Caller frees; NULL when out of memory. */
char *session_turn_text(const session_msg_t *msgs, size_t n);

/* The reply to a turn. Returns a malloc'd UTF-8 text the caller frees, ""
 * for "say nothing", or NULL when out of memory. */
char *session_answer(const session_turn_t *turn);
/* The path of a turn about to run (the model's classifier with
 * SOUK_LLM=openai, else agent_path) and, for ASYNC, the acknowledgement. */
agent_path_t session_answer_path(session_t *self, const char *text, const char *state_json,
                                 const char **ack);
/* This user's LLM counters (zero without the LLM agent). */
void session_llm_stats(const session_t *self, llm_stats_t *out);
/* answer_echo.c: the help text that echoes the turn (SOUK_AGENT=echo). */
char *session_answer_echo(const session_turn_t *turn);

#endif
