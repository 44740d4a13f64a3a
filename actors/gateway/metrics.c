/* GET /metrics, and the gateway's own counts of the requests it answers.
 *
 * The figures live in the supervisor, which adds up every actor's
 * heartbeat fragments (supervisor/metrics.c). A scrape sends one
 * METRICS_REQ over the control link and the request waits — without
 * blocking the loop, like a webhook waiting for its reply — for the
 * METRICS_REP; scrapes that arrive meanwhile share that answer. No reply
 * within GW_METRICS_WAIT_MS (the supervisor is busy or gone): 503. */
#include "gateway.h"

#include "souk/error.h"
#include "souk/log.h"
#include "souk/metrics.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAITING_MAX 16

struct gw_metrics {
    gw_t *gw;
    void *waiting[WAITING_MAX]; /* HTTP requests waiting for the METRICS_REP */
    size_t nwaiting;
    bool asked;                 /* METRICS_REQ out, no reply yet */
    lws_sorted_usec_list_t sul_wait;
};

int64_t gw_metrics_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

gw_metrics_t *gw_metrics_new(gw_t *gw)
{
    gw_metrics_t *self = calloc(1, sizeof *self);
    if (self)
        self->gw = gw;
    return self;
}

void gw_metrics_destroy(gw_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    /* after lws_context_destroy (which closes the waiting connections, and
     * owned the timer list): nothing to cancel any more */
    free(*self_p);
    *self_p = NULL;
}

static void s_answer_all(gw_metrics_t *self, int status, const char *ctype, const char *text)
{
    gw_answer_t a = { status, ctype, text, strlen(text), NULL };
    size_t n = self->nwaiting;
    self->nwaiting = 0;
    self->asked = false;
    lws_sul_cancel(&self->sul_wait);
    for (size_t i = 0; i < n; i++)
        gw_http_answer(self->gw, self->waiting[i], &a);
}

static void s_wait_over(lws_sorted_usec_list_t *sul)
{
    gw_metrics_t *self = lws_container_of(sul, gw_metrics_t, sul_wait);
    SLOG_WARN("gateway.metrics_timeout", "waiting=%zu", self->nwaiting);
    s_answer_all(self, 503, "text/plain; charset=utf-8", "metrics unavailable: no answer from the supervisor\n");
    gw_after_event(self->gw);
}

void gw_metrics_scrape(gw_metrics_t *self, void *http)
{
    if (self->nwaiting == WAITING_MAX) {
        gw_answer_t a = { 503, "text/plain; charset=utf-8", "too many scrapes at once\n", 25, NULL };
        gw_http_answer(self->gw, http, &a);
        return;
    }
    self->waiting[self->nwaiting++] = http;
    if (self->asked)
        return;
    souk_msg_t m = { .type = SOUK_MSG_METRICS_REQ };
    m.metrics_req.ts = (uint64_t)souk_wall_ms();
    int rc = souk_actor_send(self->gw->actor, &m);
    if (rc != SOUK_OK) {
        SLOG_WARN("gateway.metrics_unsent", "err=%s", souk_errname(rc));
        s_answer_all(self, 503, "text/plain; charset=utf-8", "metrics unavailable: supervisor unreachable\n");
        return;
    }
    self->asked = true;
    lws_sul_schedule(self->gw->ctx, 0, &self->sul_wait, s_wait_over,
                     (lws_usec_t)GW_METRICS_WAIT_MS * LWS_US_PER_MS);
}

void gw_metrics_gone(gw_metrics_t *self, void *http)
{
    for (size_t i = 0; i < self->nwaiting; i++)
        if (self->waiting[i] == http) {
            self->waiting[i] = self->waiting[--self->nwaiting];
            return;
        }
}

void gw_metrics_reply(gw_metrics_t *self, const char *text)
{
    if (!self->nwaiting) {
        self->asked = false;
        return;
    }
    if (!text || !*text)
        s_answer_all(self, 503, "text/plain; charset=utf-8", "metrics unavailable\n");
    else
        s_answer_all(self, 200, SOUK_METRICS_CONTENT_TYPE, text);
}

void gw_metrics_request_done(const char *route, int status, int64_t started_us, bool webhook)
{
    char labels[128];
    snprintf(labels, sizeof labels, "route=\"%s\",status=\"%d\"", route, status);
    souk_metric_add("souk_webhook_requests_total", labels, 1);
    if (!webhook || !started_us)
        return;
    snprintf(labels, sizeof labels, "route=\"%s\"", route);
    souk_metric_observe("souk_webhook_duration_seconds", labels,
                        (double)(gw_metrics_now_us() - started_us) / 1e6);
}
