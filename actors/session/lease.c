/* Which session answers a user when several nodes share the store (see
 * session.h). The lease is a store item with an owner and an expiry,
 * written conditionally: free, expired or already ours. The owner is the
 * node, not the process, so a session restarted on the same node takes its
 * user back at once, while another node waits for the expiry.
 *
 * The holder renews at a third of the lease and looks for messages other
 * nodes stored for its user every poll interval; a session without the
 * lease tries again at a quarter of it. Safety does not rest on the lease:
 * if two sessions ever answer one message (a holder stalled past its
 * expiry), the reply is the outbox row keyed by the MessageSid and the
 * tools' idempotency keys, written conditionally, so the user still gets
 * one reply and one order. The lease keeps the work in one place and the
 * turns in order. */
#include "session.h"

#include "souk/error.h"
#include "souk/log.h"

#include <stdio.h>

/* How often the holder looks for messages stored by other nodes: the extra
 * latency of a message that reached another node first. */
#define LEASE_POLL_MS 500

static void s_name(const session_t *self, char *buf, size_t len)
{
    snprintf(buf, len, "session#%s", self->waid);
}

static int s_acquire(session_t *self)
{
    char name[64];
    s_name(self, name, sizeof name);
    return store_lease_acquire(self->store, name, self->cfg->node_id, self->cfg->lease_ms,
                               souk_wall_ms());
}

static void s_plan(session_t *self, int64_t now)
{
    int64_t ttl = self->cfg->lease_ms;
    self->lease_due_ms = now + (self->lease_held ? ttl / 3 : ttl / 4);
    self->poll_due_ms = self->lease_held ? now + LEASE_POLL_MS : 0;
}

void session_lease_start(session_t *self)
{
    if (!self->cfg->multi_node) {
        self->lease_held = true;
        return;
    }
    int rc = s_acquire(self);
    self->lease_held = rc == SOUK_OK;
    SLOG_INFO("session.lease", "held=%d node=%s err=%s", self->lease_held, self->cfg->node_id,
              rc == SOUK_OK ? "" : souk_errname(rc));
    s_plan(self, souk_now_ms());
}

int64_t session_lease_due(const session_t *self)
{
    if (!self->cfg->multi_node)
        return 0;
    if (self->poll_due_ms && self->poll_due_ms < self->lease_due_ms)
        return self->poll_due_ms;
    return self->lease_due_ms;
}

/* The holder: anything stored for the user by another node joins the turn. */
static void s_poll(session_t *self)
{
    size_t added = 0;
    int rc = session_turn_adopt(self, &added);
    if (rc != SOUK_OK) {
        SLOG_WARN("session.adopt_failed", "err=%s", souk_errname(rc));
        return;
    }
    if (added && (self->cfg->debounce_ms == 0 || self->turn_len == SESSION_TURN_MAX))
        session_turn_run(self);
}

void session_lease_tick(session_t *self)
{
    if (!self->cfg->multi_node || self->draining)
        return;
    int64_t now = souk_now_ms();
    if (now >= self->lease_due_ms) {
        bool was = self->lease_held;
        int rc = s_acquire(self);
        if (rc == SOUK_OK || rc == SOUK_ECONFLICT) {
            self->lease_held = rc == SOUK_OK;
            if (was != self->lease_held)
                SLOG_INFO("session.lease", "held=%d node=%s", self->lease_held,
                          self->cfg->node_id);
            s_plan(self, now);
            /* taken over: what the last holder left offered or pending */
            if (!was && self->lease_held
                && (session_reply_resume(self) != SOUK_OK || session_turn_resume(self) != SOUK_OK))
                session_fail(self, "resume", SOUK_EIO);
        } else {
            /* the store is away: keep what we believe, try again soon */
            SLOG_WARN("session.lease_failed", "err=%s", souk_errname(rc));
            self->lease_due_ms = now + LEASE_POLL_MS;
        }
    }
    if (self->lease_held && self->poll_due_ms && now >= self->poll_due_ms) {
        self->poll_due_ms = now + LEASE_POLL_MS;
        s_poll(self);
    }
}

void session_lease_end(session_t *self)
{
    if (!self->cfg->multi_node || !self->lease_held || !self->store)
        return;
    char name[64];
    s_name(self, name, sizeof name);
    int rc = store_lease_release(self->store, name, self->cfg->node_id);
    SLOG_INFO("session.lease_released", "err=%s", rc == SOUK_OK ? "" : souk_errname(rc));
    self->lease_held = false;
}
