/* The supervision tree of souk, on one screen.
 *
 * Children start in the order below, each only after the previous one said
 * READY, and stop in the reverse order: the gateway first (it stops taking
 * work and answers what is in flight), then the session group (each session
 * drains its turn), then the tools, then the sender (which flushes what it
 * can; the outbox keeps the rest).
 *
 * Restarts are one_for_one: a crashed child is restarted alone, at once the
 * first time, then after a delay that doubles up to a cap. A child restarted
 * more than `intensity_max` times within `intensity_window_ms` means the
 * fault is not transient: the supervisor stops everything and exits 1, so
 * systemd (or the container runtime) takes over. A child that exits with
 * 78 (configuration error) is not restarted: the supervisor stops and exits 78.
 *
 * Sessions are a dynamic group: one actor per user, started when the gateway
 * asks, capped (the least recently used idle one is asked to make room),
 * exiting by themselves when idle (a normal exit is final). A user whose
 * session keeps crashing is quarantined instead of counting toward the
 * daemon-wide intensity: one bad conversation must not take the shop down.
 * Sessions alone run without glibc's per-thread malloc cache
 * (SUP_SESSION_TUNABLES), so that an idle one can give its heap back. */
#include "supervisor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_add(sup_tree_t *t, const char *name, const char *role, const char *arg,
                  sup_restart_t restart, int64_t shutdown_ms, bool group, const char *tunables)
{
    sup_spec_t *s = &t->specs[t->nspecs++];
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->role, sizeof s->role, "%s", role);
    snprintf(s->arg, sizeof s->arg, "%s", arg);
    s->restart = restart;
    s->shutdown_ms = shutdown_ms;
    s->group = group;
    s->tunables = tunables;
}

void sup_tree_init(sup_tree_t *t, const souk_config_t *cfg)
{
    memset(t, 0, sizeof *t);
    const int64_t grace = 1000;
    const int64_t drain = cfg->drain_ms + grace; /* in-flight work may take the whole drain */

    /*      name          role       arg   restart        shutdown ms   group  glibc tunables */
    s_add(t, "sender",    "sender",  "",   SUP_PERMANENT, 2000 + grace, false, NULL);
    for (int64_t i = 0; i < cfg->tools; i++) {
        char name[SOUK_CAP_NAME + 1], arg[24];
        snprintf(name, sizeof name, "tool-%lld", (long long)i);
        snprintf(arg, sizeof arg, "%lld", (long long)i);
        s_add(t, name,    "tool",    arg,  SUP_PERMANENT, 1000 + grace, false, NULL);
    }
    s_add(t, SUP_SESSION_PREFIX, "session", "", SUP_TRANSIENT, drain, true, SUP_SESSION_TUNABLES);
    s_add(t, SUP_GATEWAY, "gateway", "",   SUP_PERMANENT, drain,        false, NULL);

    t->sessions_max = cfg->sessions_max;            /* SOUK_SESSIONS_MAX */
    t->start_timeout_ms = 10000;
    t->heartbeat_ms = cfg->heartbeat_ms;            /* SOUK_HEARTBEAT_MS */
    t->hung_after_ms = 3 * cfg->heartbeat_ms;
    t->stop_grace_ms = grace;
    t->backoff_base_ms = 10;                        /* 0, 10, 20, 40 ... 5000 ms */
    t->backoff_cap_ms = 5000;
    t->backoff_reset_ms = cfg->restart_window_s * 1000;
    t->intensity_max = cfg->restart_max;            /* SOUK_RESTART_MAX (5) ... */
    t->intensity_window_ms = cfg->restart_window_s * 1000; /* ... in SOUK_RESTART_WINDOW_S (10) */
    t->quarantine_crashes = cfg->quarantine_crashes;       /* SOUK_QUARANTINE_CRASHES */
    t->quarantine_ms = cfg->quarantine_s * 1000;           /* SOUK_QUARANTINE_S */
}

char **sup_env_tuned(char *const *env, const char *tunables)
{
    static const char key[] = "GLIBC_TUNABLES=";
    const size_t klen = sizeof key - 1;
    size_t n = 0, bytes = 0;
    const char *mine = "";
    for (; env[n]; n++) {
        bytes += strlen(env[n]) + 1;
        if (!strncmp(env[n], key, klen))
            mine = env[n] + klen;
    }
    bytes += klen + strlen(mine) + 1 + strlen(tunables) + 1;
    /* one block: the pointers (ours replaces the operator's entry), then the strings */
    char **out = malloc((n + 2) * sizeof *out + bytes);
    if (!out)
        return NULL;
    char *at = (char *)(out + n + 2);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strncmp(env[i], key, klen))
            continue;
        out[k++] = strcpy(at, env[i]);
        at += strlen(at) + 1;
    }
    out[k++] = at;
    at = stpcpy(stpcpy(at, key), mine);
    bool first = !*mine;
    for (const char *t = tunables; *t;) {
        size_t len = strcspn(t, ":"), name = strcspn(t, "=:");
        /* the operator's own setting of this tunable wins */
        bool set = false;
        for (const char *m = mine; *m; m += strcspn(m, ":"), m += *m == ':')
            set |= strcspn(m, "=:") == name && !strncmp(m, t, name);
        if (!set) {
            if (!first)
                *at++ = ':';
            memcpy(at, t, len);
            at += len;
            first = false;
        }
        t += len + (t[len] == ':');
    }
    *at = '\0';
    out[k] = NULL;
    return out;
}

const sup_spec_t *sup_tree_group(const sup_tree_t *t)
{
    for (size_t i = 0; i < t->nspecs; i++)
        if (t->specs[i].group)
            return &t->specs[i];
    return NULL;
}

const char *sup_restart_name(sup_restart_t restart)
{
    switch (restart) {
    case SUP_PERMANENT: return "permanent";
    case SUP_TRANSIENT: return "transient";
    default: return "temporary";
    }
}
