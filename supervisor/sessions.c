/* The session group: one actor per user (`souk actor session s-<waid> <waid>`),
 * started when the gateway asks with SPAWN_SESSION.
 *
 * - at most one per waid: a request for a live, starting or restarting
 *   session is a no-op; one for a session that is stopping starts it again
 *   once it has exited;
 * - at most sessions_max: at the cap the least recently used idle session
 *   is asked to exit ("evicted") and the new one takes its slot when it has;
 *   with none to evict the request is refused (SESSION_EXIT code -1);
 * - transient: a normal exit is final, a crash is restarted with backoff;
 * - a per-user budget instead of the daemon-wide intensity: more than
 *   quarantine_crashes crashes of one user's session within the window and
 *   the user is quarantined (SESSION_EXIT quarantined=true) for a while.
 *
 * The gateway hears of every end through SESSION_EXIT. */
#include "supervisor.h"

#include "souk/actor.h"
#include "souk/error.h"
#include "souk/log.h"

#include <stdio.h>
#include <string.h>

static void s_budget_destroy(void **item)
{
    sup_budget_t *b = *item;
    if (!b)
        return;
    sup_window_clear(&b->crashes);
    free(b);
    *item = NULL;
}

static void s_child_destroy(void **item)
{
    sup_child_destroy((sup_child_t **)item);
}

int sup_sessions_init(sup_t *sup)
{
    sup->sessions = zhashx_new();
    sup->budgets = zhashx_new();
    if (!sup->sessions || !sup->budgets)
        return SOUK_ENOMEM;
    zhashx_set_destructor(sup->sessions, s_child_destroy);
    zhashx_set_destructor(sup->budgets, s_budget_destroy);
    return SOUK_OK;
}

void sup_sessions_destroy(sup_t *sup)
{
    zhashx_destroy(&sup->sessions);
    zhashx_destroy(&sup->budgets);
}

static sup_budget_t *s_budget(sup_t *sup, const char *waid)
{
    sup_budget_t *b = zhashx_lookup(sup->budgets, waid);
    if (b)
        return b;
    b = calloc(1, sizeof *b);
    if (!b || sup_window_init(&b->crashes, sup->tree.quarantine_crashes) != SOUK_OK) {
        free(b);
        return NULL;
    }
    zhashx_insert(sup->budgets, waid, b);
    return b;
}

bool sup_session_quarantined(sup_t *sup, const char *waid, int64_t now)
{
    sup_budget_t *b = zhashx_lookup(sup->budgets, waid);
    return b && b->until_ms > now;
}

void sup_sessions_purge(sup_t *sup, int64_t now)
{
    zlistx_t *stale = zlistx_new();
    if (!stale)
        return;
    int64_t window = sup->tree.intensity_window_ms;
    for (sup_budget_t *b = zhashx_first(sup->budgets); b; b = zhashx_next(sup->budgets))
        if (b->until_ms <= now && !sup_window_count(&b->crashes, now, window))
            zlistx_add_end(stale, (void *)zhashx_cursor(sup->budgets));
    for (const char *k = zlistx_first(stale); k; k = zlistx_next(stale))
        zhashx_delete(sup->budgets, k);
    zlistx_destroy(&stale);
}

/* Answers the gateway for a session that will not run, and says why. */
static void s_refuse(sup_t *sup, const char *waid, const char *reason, bool quarantined)
{
    char masked[SOUK_CAP_ID + 1], detail[96];
    SLOG_INFO("session.refused", "waid=%s reason=%s",
              sup_mask_waid(waid, masked, sizeof masked), reason);
    sup_send_session_exit(sup, waid, -1, 0, quarantined);
    sup_child_t view = { .spec = sup_tree_group(&sup->tree) };
    snprintf(view.name, sizeof view.name, SUP_SESSION_PREFIX "%s", waid);
    snprintf(detail, sizeof detail, "{\"reason\":\"%s\"}", reason);
    sup_event(sup, "refused", &view, -1, 0, detail);
}

/* The least recently used idle session, or NULL. */
static sup_child_t *s_lru_idle(sup_t *sup)
{
    sup_child_t *best = NULL;
    int64_t best_at = 0;
    for (sup_child_t *c = zhashx_first(sup->sessions); c; c = zhashx_next(sup->sessions)) {
        if (c->state != SUP_READY || c->depth > 0)
            continue;
        int64_t active_at = c->heartbeat_ms ? c->heartbeat_ms - (int64_t)c->idle_ms : c->ready_ms;
        if (!best || active_at < best_at) {
            best = c;
            best_at = active_at;
        }
    }
    return best;
}

/* A session already stopping that nobody waits for: its slot is free soon. */
static sup_child_t *s_freeing_slot(sup_t *sup, const char *waid, bool *already)
{
    sup_child_t *found = NULL;
    *already = false;
    for (sup_child_t *c = zhashx_first(sup->sessions); c; c = zhashx_next(sup->sessions)) {
        if (strcmp(c->pending, waid) == 0)
            *already = true;
        if (c->state == SUP_STOPPING && !c->pending[0] && !c->respawn && !found)
            found = c;
    }
    return found;
}

static void s_spawn(sup_t *sup, const char *waid, const char *name)
{
    sup_child_t *c = sup_child_new(sup_tree_group(&sup->tree), name, waid, &sup->tree);
    if (!c) {
        s_refuse(sup, waid, "out of memory", false);
        return;
    }
    zhashx_insert(sup->sessions, name, c);
    sup_child_start(sup, c);
}

void sup_session_request(sup_t *sup, const char *waid)
{
    if (!sup_waid_valid(waid)) {
        SLOG_WARN("session.bad_waid", "len=%zu", strlen(waid));
        return;
    }
    if (sup->phase >= SUP_PHASE_STOPPING) {
        s_refuse(sup, waid, "stopping", false);
        return;
    }
    if (sup_session_quarantined(sup, waid, souk_now_ms())) {
        s_refuse(sup, waid, "quarantined", true);
        return;
    }
    char name[SOUK_CAP_NAME + 1];
    snprintf(name, sizeof name, SUP_SESSION_PREFIX "%s", waid);
    sup_child_t *c = zhashx_lookup(sup->sessions, name);
    if (c) {
        if (c->state == SUP_STOPPING)
            c->respawn = true;
        return;
    }
    if ((int64_t)zhashx_size(sup->sessions) < sup->tree.sessions_max) {
        s_spawn(sup, waid, name);
        return;
    }
    bool already;
    sup_child_t *victim = s_freeing_slot(sup, waid, &already);
    if (already)
        return;
    if (!victim) {
        victim = s_lru_idle(sup);
        if (victim)
            sup_child_stop(sup, victim, "evicted", victim->spec->shutdown_ms);
    }
    if (!victim) {
        s_refuse(sup, waid, "cap", false);
        return;
    }
    snprintf(victim->pending, sizeof victim->pending, "%s", waid);
}

/* Counts a crash against the user's budget; true when it ends in quarantine. */
static bool s_charge(sup_t *sup, sup_child_t *c, int64_t now)
{
    sup_budget_t *b = s_budget(sup, c->arg);
    if (!b)
        return false;
    int64_t n = sup_window_add(&b->crashes, now, sup->tree.intensity_window_ms);
    if (n <= sup->tree.quarantine_crashes)
        return false;
    b->until_ms = now + sup->tree.quarantine_ms;
    char detail[96], masked[SOUK_CAP_ID + 1];
    snprintf(detail, sizeof detail, "{\"crashes\":%lld,\"quarantine_s\":%lld}", (long long)n,
             (long long)(sup->tree.quarantine_ms / 1000));
    SLOG_WARN("session.quarantined", "waid=%s crashes=%lld",
              sup_mask_waid(c->arg, masked, sizeof masked), (long long)n);
    sup_event(sup, "quarantined", c, 0, 0, detail);
    return true;
}

void sup_session_exited(sup_t *sup, sup_child_t *c, int code, int sig, bool stop_requested)
{
    int64_t now = souk_now_ms();
    bool stopping = sup->phase >= SUP_PHASE_STOPPING;
    sup_verdict_t verdict = sup_exit_verdict(c->spec->restart, code, sig, stop_requested);
    if (verdict == SUP_EXIT_CONFIG && !stopping) {
        sup_send_session_exit(sup, c->arg, code, sig, false);
        sup_event(sup, "escalated", c, code, 0, "{\"reason\":\"configuration error\"}");
        sup_shutdown(sup, "configuration error", SOUK_EXIT_CONFIG);
        zhashx_delete(sup->sessions, c->name);
        return;
    }
    bool crash = verdict == SUP_EXIT_RESTART && !stopping;
    /* a store outage is restarted after the back-off but charged to no one */
    bool quarantined = crash && !(code == SOUK_EXIT_TEMPFAIL && !sig) && s_charge(sup, c, now);
    sup_send_session_exit(sup, c->arg, code, sig, quarantined);
    if (crash && !quarantined) {
        sup_child_schedule_restart(sup, c);
        return;
    }
    char pending[SOUK_CAP_ID + 1], waid[SOUK_CAP_ID + 1];
    snprintf(pending, sizeof pending, "%s", c->pending);
    snprintf(waid, sizeof waid, "%s", c->arg);
    bool respawn = c->respawn && !quarantined;
    zhashx_delete(sup->sessions, c->name); /* frees c */
    if (stopping)
        return;
    if (pending[0])
        sup_session_request(sup, pending);
    if (respawn)
        sup_session_request(sup, waid);
}
