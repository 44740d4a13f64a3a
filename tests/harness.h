/* End-to-end test harness: a real `souk serve` in its own data folder on a
 * free loopback port, webhooks signed exactly as Twilio signs them, the
 * events stream, and `souk status --json`.
 *
 * Every function asserts nothing itself; it returns what happened so the
 * test states its expectations. Phone numbers here are test numbers. */
#ifndef SOUK_TEST_HARNESS_H
#define SOUK_TEST_HARNESS_H

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "souk/proto.h"

#define HARNESS_TOKEN "0123456789abcdef0123456789abcdef"
#define HARNESS_PUBLIC_URL "https://shop.example.org"

typedef struct {
    char data[64];         /* /tmp/sk-XXXXXX */
    char run[96];
    int port;
    pid_t pid;             /* souk serve */
    int exit_status;       /* after harness_stop: the wait status */
    zsock_t *events;       /* SUB to the events endpoint */
    char log_path[128];
} harness_t;

typedef struct {
    long status;           /* HTTP status; 0 when the request failed */
    char answer[16];       /* X-Souk-Answer: inline | later | none */
    char *body;            /* response body (caller frees with harness_reply_clear) */
    char *message;         /* text of the first TwiML <Message>, unescaped, or NULL */
} harness_reply_t;

/* Starts souk serve with the harness's variables (SOUK_AGENT=echo among
 * them) plus `env` ("K=V",
 * NULL-terminated; may be NULL), waits for /readyz = 200 (up to 20 s).
 * Returns 0, or -1 with the server's log tail on stderr. */
int harness_start(harness_t *h, const char *const *env);

/* Makes h's fresh data folder (h->data, run, log_path) without starting
 * anything, so a test can prepare it (`souk import`, harness_cli) first.
 * Returns 0, or -1. */
int harness_prepare(harness_t *h);
/* harness_start on the folder harness_prepare made (h->data kept). */
int harness_start_prepared(harness_t *h, const char *const *env);

/* SIGTERM, waits (up to 20 s, then SIGKILL); records the exit status,
 * removes the data folder unless keep is set. Returns the exit code, or
 * -1 if it had to be killed. */
int harness_stop(harness_t *h, bool keep);

/* Waits up to timeout_ms for child `pid` to exit (pidfd, no polling) and
 * reaps it. Returns 0 with *status, or -1 on time-out. */
int harness_wait_exit(pid_t pid, int timeout_ms, int *status);

/* Sends one signed text message from WaId `waid` (digits) with MessageSid
 * `sid` (NULL: a fresh one, written back when sid_out is given). */
int harness_send(harness_t *h, const char *waid, const char *name, const char *text,
                 const char *sid, char sid_out[35], harness_reply_t *out);

/* POSTs a raw body to `path` with the given content type and signature
 * (NULL: no header) — for bad-input tests. */
int harness_post_raw(harness_t *h, const char *path, const char *content_type, const char *body,
                     const char *signature, harness_reply_t *out);

/* Signature of a form body over SOUK_PUBLIC_URL + path, as Twilio makes it. */
int harness_sign(const char *path, const char *form_body, char out[64]);

void harness_reply_clear(harness_reply_t *r);

/* Makes sure h->events is joined to the events stream. harness_start
 * connects before souk has bound it and ZeroMQ retries only after its
 * reconnect interval, so the events of the first moment after /readyz can
 * be missed; this connects a fresh subscriber now that the endpoint exists,
 * waits for its handshake (up to timeout_ms) and puts it in h->events.
 * Returns 0, or -1 (h->events left as it was). */
int harness_events_join(harness_t *h, int timeout_ms);

/* Waits for an event of `kind` (and, when not NULL, whose name starts with
 * name_prefix) for up to timeout_ms. Returns 0 with *out filled (caller
 * clears), or -1 on time-out. */
int harness_wait_event(harness_t *h, const char *kind, const char *name_prefix, int timeout_ms,
                       souk_msg_t *out);

/* Waits for an "outbound" event addressed to waid; *body gets the text
 * (caller frees). Returns 0, or -1 on time-out. */
int harness_wait_outbound(harness_t *h, const char *waid, int timeout_ms, char **body);

/* `souk status --json` of this instance, parsed; NULL on failure. */
json_t *harness_status(harness_t *h);
/* pid of the actor named `name` from status, or 0. */
pid_t harness_actor_pid(harness_t *h, const char *name);

/* Runs `souk ARGS` (ARGS as a shell would split them) with SOUK_DATA =
 * h->data; its stderr is appended to <data>/cli.log. Returns the exit code
 * (-1 when it did not run) and, when out is not NULL, its stdout in *out
 * (caller frees). Works with or without a running souk serve. */
int harness_cli(harness_t *h, const char *args, char **out);
/* The stdout of a successful `souk ARGS` parsed as JSON (`orders --json`,
 * `tickets --json`, `products --json`); NULL on failure. Caller decrefs. */
json_t *harness_cli_json(harness_t *h, const char *args);

/* GET path from the gateway; returns the HTTP status (0: no answer), *body
 * and, when ctype is not NULL, *ctype (caller frees both). */
long harness_get(harness_t *h, const char *path, char **body, char **ctype);
/* The value of one series ("souk_x_total{a=\"b\"}") in a Prometheus
 * exposition; -1 when absent. */
double harness_metric_value(const char *text, const char *series);
/* One scrape of GET /metrics: the series' value, or -1. */
double harness_metric(harness_t *h, const char *series);
/* Scrapes until the series reaches `want` (actors' counts ride on their
 * heartbeats) or timeout_ms passes; returns the last value seen. */
double harness_metric_await(harness_t *h, const char *series, double want, int timeout_ms);

/* Path of the souk binary under test (SOUK_BIN). */
const char *harness_bin(void);

#endif
