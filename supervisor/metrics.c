/* The actors' metrics, added up for `GET /metrics`.
 *
 * Every actor sends its registry's samples with each heartbeat
 * (souk/metrics.h); the supervisor keeps the latest fragment per live
 * process and nothing else. A scrape (METRICS_REQ from the gateway, over
 * control) adds up, by series: the counters of processes that have exited
 * (folded into `retired` once, when each is reaped, so a restart never makes
 * a total go down), every live process's last fragment, and the
 * supervisor's own figures — restarts and hangs by role counted as they
 * happen, live sessions, hung actors and queue depths read from the tree.
 * So a scrape costs one pass over the live actors and no message to any of
 * them; the figures are at most one heartbeat old. */
#include "supervisor.h"

#include "souk/actor.h"
#include "souk/error.h"
#include "souk/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const s_roles[] = { "gateway", "session", "tool", "sender" };

int sup_metrics_init(sup_t *sup)
{
    sup->retired = souk_metrics_merge_new();
    if (!sup->retired)
        return SOUK_ENOMEM;
    /* every role shows up at zero, so a rate() has a starting point */
    for (size_t i = 0; i < sizeof s_roles / sizeof s_roles[0]; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "role=\"%s\"", s_roles[i]);
        souk_metric_add("souk_actor_restarts_total", labels, 0);
        souk_metric_add("souk_actor_hung_total", labels, 0);
    }
    return SOUK_OK;
}

void sup_metrics_destroy(sup_t *sup)
{
    souk_metrics_merge_destroy(&sup->retired);
}

void sup_metrics_heartbeat(sup_child_t *c, const char *fragment)
{
    if (!fragment || !*fragment)
        return;
    if (c->metrics && strcmp(c->metrics, fragment) == 0)
        return;
    char *copy = strdup(fragment);
    if (!copy)
        return; /* keep the older one */
    free(c->metrics);
    c->metrics = copy;
}

void sup_metrics_retire(sup_t *sup, sup_child_t *c)
{
    if (c->metrics && sup->retired)
        souk_metrics_merge_add(sup->retired, c->metrics, true);
    free(c->metrics);
    c->metrics = NULL;
}

void sup_metrics_event(const char *kind, const sup_child_t *c)
{
    if (!c)
        return;
    const char *name = !strcmp(kind, "restarted") ? "souk_actor_restarts_total"
                     : !strcmp(kind, "hung")      ? "souk_actor_hung_total"
                                                  : NULL;
    if (!name)
        return;
    char labels[SOUK_CAP_NAME + 16];
    snprintf(labels, sizeof labels, "role=\"%s\"", c->spec->role);
    souk_metric_add(name, labels, 1);
}

typedef struct {
    double alive, depth;
} role_sum_t;

static void s_add_child(souk_metrics_merge_t *m, const sup_child_t *c, role_sum_t *sums,
                        double *hung)
{
    if (c->metrics)
        souk_metrics_merge_add(m, c->metrics, false);
    *hung += c->state == SUP_HUNG;
    for (size_t i = 0; i < sizeof s_roles / sizeof s_roles[0]; i++)
        if (!strcmp(c->spec->role, s_roles[i]) && c->pid) {
            sums[i].alive++;
            sums[i].depth += (double)c->depth;
        }
}

char *sup_metrics_render(sup_t *sup)
{
    souk_metrics_merge_t *m = souk_metrics_merge_new();
    if (!m)
        return NULL;
    int64_t now = souk_now_ms();
    role_sum_t sums[sizeof s_roles / sizeof s_roles[0]] = { 0 };
    double hung = 0, quarantined = 0;
    souk_metrics_merge_fold(m, sup->retired, false);
    for (size_t i = 0; i < sup->tree.nspecs; i++)
        if (sup->kids[i])
            s_add_child(m, sup->kids[i], sums, &hung);
    for (sup_child_t *c = zhashx_first(sup->sessions); c; c = zhashx_next(sup->sessions))
        s_add_child(m, c, sums, &hung);
    for (sup_budget_t *b = zhashx_first(sup->budgets); b; b = zhashx_next(sup->budgets))
        quarantined += b->until_ms > now;

    souk_metric_set("souk_sessions_live", "", (double)zhashx_size(sup->sessions));
    souk_metric_set("souk_quarantined_users", "", quarantined);
    souk_metric_set("souk_actors_hung", "", hung);
    for (size_t i = 0; i < sizeof s_roles / sizeof s_roles[0]; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "role=\"%s\"", s_roles[i]);
        souk_metric_set("souk_actors", labels, sums[i].alive);
        souk_metric_set("souk_actor_queue_depth", labels, sums[i].depth);
    }
    char *own = souk_metrics_render();
    souk_metrics_merge_add(m, own, false);
    free(own);
    char *text = souk_metrics_merge_render(m);
    souk_metrics_merge_destroy(&m);
    return text;
}
