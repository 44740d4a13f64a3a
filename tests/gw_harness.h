/* Test harness for the gateway actor: runs `$SOUK_BIN actor gateway gateway`
 * alone, with the test playing everyone around it.
 *
 *   supervisor  a ROUTER bound at the control endpoint (HELLO, READY,
 *               SPAWN_SESSION in; READINESS, SESSION_EXIT, STOP out)
 *   sender      a PULL bound at the sender endpoint (DELIVERY in)
 *   sessions    DEALERs with identity = WaId connected to the gateway's
 *               sessions ROUTER (gwh_session)
 *   Twilio      raw HTTP/1.1 over loopback, signed with the test token
 *
 * Every wait is a poll with a timeout; nothing sleeps for a fixed time. */
#ifndef SOUK_TEST_GW_HARNESS_H
#define SOUK_TEST_GW_HARNESS_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "souk/proto.h"
#include "souk/twilio.h"

#define GWH_TOKEN "test-token-0123456789abcdef"
#define GWH_PUBLIC_URL "https://shop.example.com"

typedef struct {
    char dir[64];          /* data folder */
    char run[96];          /* its run/ */
    char log[128];         /* the gateway's stderr */
    int port;
    pid_t pid;
    zsock_t *control;      /* the fake supervisor */
    zsock_t *sender;       /* the fake sender */
} gwh_t;

/* Starts a gateway with the harness defaults (SOUK_REPLY_BUDGET_MS=2000,
 * SOUK_LOG_LEVEL=debug …) overridden by `env` ("NAME=value", NULL-ended,
 * may be NULL), and waits for its READY. 0 on success. */
int gwh_start(gwh_t *h, const char *const *env);
/* Sends sig (0: none) and waits up to timeout_ms for the exit; returns the
 * wait status, or -1 on timeout (then the gateway is killed). */
int gwh_wait_exit(gwh_t *h, int sig, int timeout_ms);
/* Stops the gateway if it runs, closes sockets, removes the data folder. */
void gwh_stop(gwh_t *h);

/* Next message of `type` from the gateway on the control link (others,
 * like heartbeats, are skipped). 0 and *out filled (souk_msg_clear it), or
 * -1 on timeout. */
int gwh_control_recv(gwh_t *h, souk_msg_type_t type, int timeout_ms, souk_msg_t *out);
int gwh_control_send(gwh_t *h, const souk_msg_t *m);
/* Sends READINESS{ready} and waits until /readyz agrees. */
int gwh_set_ready(gwh_t *h, bool ready);

/* A fake session actor for waid. With hello, sends SESSION_HELLO and waits
 * until the gateway has handled it (messages that arrive meanwhile are
 * dropped: use it for sessions that hold nothing yet). Caller destroys it. */
zsock_t *gwh_session(gwh_t *h, const char *waid, bool hello);
int gwh_hello(zsock_t *s, const char *waid);
/* Next message from the gateway on a session DEALER (any type when type
 * is SOUK_MSG_NONE; other types are dropped). 0 or -1 on timeout. */
int gwh_session_recv(zsock_t *s, souk_msg_type_t type, int timeout_ms, souk_msg_t *out);
int gwh_session_send(zsock_t *s, const souk_msg_t *m);
/* Convenience senders for the session side. */
int gwh_accept(zsock_t *s, const char *sid, bool duplicate);
int gwh_offer(zsock_t *s, const char *sid, const char *body);

/* ---- HTTP ---------------------------------------------------------------- */

typedef struct {
    int status;
    char headers[2048];
    char *body;            /* NUL-terminated, caller frees (gwh_resp_clear) */
    size_t body_len;
} gwh_resp_t;

/* Opens a connection and writes `raw` (all of it). Returns the fd or -1. */
int gwh_http_send(gwh_t *h, const char *raw, size_t len);
/* Reads one response from fd (Content-Length framed) within timeout_ms.
 * 0 or -1. Does not close fd. */
int gwh_http_read(int fd, int timeout_ms, gwh_resp_t *r);
void gwh_resp_clear(gwh_resp_t *r);
/* One request, one response, connection closed: status or -1. */
int gwh_http(gwh_t *h, const char *raw, gwh_resp_t *r);
int gwh_get(gwh_t *h, const char *path, gwh_resp_t *r);

/* A typical inbound form: MessageSid, AccountSid, From, To, Body,
 * NumMedia=0, ProfileName, WaId. Caller frees. */
twilio_form_t *gwh_form(const char *sid, const char *waid, const char *body);
/* A POST of `form` to path (with query, as sent) signed for sign_url
 * (NULL: GWH_PUBLIC_URL + path); signature NULL → computed, "" → none.
 * host NULL → "localhost". extra: more header lines ("A: b\r\n") or NULL.
 * Caller frees the request. */
char *gwh_post(const char *path, const twilio_form_t *form, const char *sign_url,
               const char *signature, const char *host, const char *extra, size_t *len);
/* Posts the inbound webhook for form, signed properly; returns the fd. */
int gwh_webhook(gwh_t *h, const twilio_form_t *form);

/* Milliseconds on the monotonic clock. */
long long gwh_now_ms(void);

#endif
