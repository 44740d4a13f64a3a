/* The sender actor's private parts, shared by its three files: sender.c (the
 * actor: set-up, loop, bus, scans, wake-ups), send.c (a due row: decide,
 * take, send through Twilio or to the console, record the answer) and
 * reconcile.c (rows a dead sender left in `sending`). Nothing outside
 * actors/sender/ includes it. */
#ifndef SENDER_SENDER_H
#define SENDER_SENDER_H

#include "outbox.h"
#include "twilio_rest.h"

#include "souk/actor.h"
#include "souk/config.h"
#include "souk/store.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

/* Requests out at once (and connections to Twilio). */
#define SENDER_MAX_INFLIGHT 32
/* Pending wake-ups (retries, send tokens); beyond this the latest are
 * dropped and the periodic scan finds their rows instead. */
#define SENDER_WAKES_MAX 64

typedef struct sender_s sender_t;

/* A request in flight for one outbox row: a send, or a reconciliation. */
typedef struct {
    sender_t *self;
    store_outbox_t row;      /* the row as it was when the request started */
    outbox_plan_t plan;
    char *expect;            /* reconciliation: the free-form body a send carried */
    bool holds_recipient;    /* a send: its recipient is in self->busy */
    int64_t started_us;      /* the request left (monotonic), for the send-time histogram */
} sender_job_t;

struct sender_s {
    souk_config_t *cfg;
    souk_actor_t *actor;
    zsock_t *pull;
    zloop_t *loop;
    store_t *store;
    twilio_rest_t *rest;     /* NULL: console mode */
    twilio_rest_t *web;      /* webhook rows' POSTs, in either mode */
    outbox_rules_t rules;
    char *status_url;
    zhashx_t *jobs;          /* outbox key -> sender_job_t */
    zhashx_t *busy;          /* recipient (waid or to_addr) with a send out -> sender_job_t */
    zhashx_t *holds;         /* outbox key -> when to try reconciling it again */
    zhashx_t *requests;      /* outbox key -> request id from its SEND_HINT, for logs (bounded) */
    outbox_bucket_t bucket;
    int64_t wakes[SENDER_WAKES_MAX]; /* monotonic ms, ascending */
    int nwakes;
    int wake_timer;          /* one-shot zloop timer for wakes[0]; -1 none */
    int64_t wake_at;
    bool pumping, pump_again, paced_out, started, stopping;
    uint64_t sent, depth;
    int64_t last_ms;
    int64_t swept_ms;        /* monotonic: the last look for orphaned messages; 0: none yet */
    zhashx_t *swept;         /* waid -> when its session was last asked for (monotonic ms) */
    int64_t counted_ms;      /* the outbox was last counted by state (monotonic) */
};

/* ---- sender.c -------------------------------------------------------------- */

/* Scan again in ms (monotonic; at least 1). */
void sender_wake_in(sender_t *self, int64_t ms);
/* One conditional move of a row; logged when it does not happen. */
int sender_move(sender_t *self, const char *key, store_outbox_state_t from, store_outbox_state_t to,
                const store_outbox_change_t *change, store_outbox_t *out);
/* from -> failed with Twilio's code (or ours) and a reason, logged. */
void sender_fail_row(sender_t *self, const char *key, store_outbox_state_t from, int code,
                     const char *reason);
/* A request came back: forget it, free it, and look for more work. */
void sender_job_done(sender_t *self, sender_job_t *job);
void sender_job_free(sender_job_t *job);
/* Who a row goes to (its waid, else its to_addr): one send out per recipient. */
const char *sender_recipient(const store_outbox_t *row);
uint32_t sender_random(void);
/* The request id a SEND_HINT brought for key (its parts share it), or NULL. */
const char *sender_request_of(sender_t *self, const char *key);
/* Counts one send's outcome: souk_sends_total, souk_send_errors_total by
 * code (when code != 0) and, when job is not NULL, the send time. */
void sender_count(const char *channel, const char *result, int code, const sender_job_t *job);
int64_t sender_now_us(void);

/* ---- send.c --------------------------------------------------------------- */

/* A due queued row: fail it, leave it (waiting for its previous part, or
 * for a send token), or take it (queued -> sending) and send it. */
void sender_dispatch(sender_t *self, const store_outbox_t *row);

/* ---- reconcile.c ------------------------------------------------------------ */

/* store_outbox_due callback for `sending` rows whose lease ran out: starts
 * the reconciliation of each one not already in hand. */
int sender_take_over(const store_outbox_t *row, void *arg);

#endif
