/* souk bus protocol: every message type and its fields, defined once.
 *
 * SOUK_MESSAGES lists the types; SOUK_FIELDS_<name> lists each type's fields
 * in wire order. The enum, the C structs, the names, the msgpack codec, the
 * validation and the round-trip tests all expand from these two tables, so a
 * field added here is carried everywhere.
 *
 * Wire form: one ZeroMQ frame holding a msgpack array
 *     [version, type, field1, field2, ...]
 * with exactly one element per field, in table order. Decoding rejects an
 * unknown version or type, a missing, extra or mistyped field, a string over
 * its length cap or not valid UTF-8, trailing bytes, and any frame over
 * SOUK_FRAME_MAX, with an error code and a message — never a crash.
 *
 * Field kinds: u64, i64, bool, str (UTF-8 text, NUL-free, capped at the
 * given number of bytes). A message with no natural field carries `ts`. */
#ifndef SOUK_PROTO_H
#define SOUK_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SOUK_PROTO_VERSION 1
#define SOUK_FRAME_MAX (256 * 1024)

/* Caps for string fields (bytes). */
#define SOUK_CAP_NAME   64   /* actor names, roles, kinds */
#define SOUK_CAP_ID     128  /* MessageSids, keys, request ids, waids */
#define SOUK_CAP_TEXT   (64 * 1024)  /* bodies, JSON documents */
#define SOUK_CAP_DOC    (192 * 1024) /* status and metrics documents */

/*  X(ENUM, name, direction and purpose) */
#define SOUK_MESSAGES(X)                                                     \
    /* control: actor <-> supervisor (control ROUTER) */                    \
    X(HELLO,         hello,         "actor -> supervisor: I exist")          \
    X(READY,         ready,         "actor -> supervisor: binds/connects done") \
    X(HEARTBEAT,     heartbeat,     "actor -> supervisor: alive, with counters") \
    X(STOP,          stop,          "supervisor -> actor: drain and exit")   \
    X(SPAWN_SESSION, spawn_session, "gateway -> supervisor: start a session") \
    X(SESSION_EXIT,  session_exit,  "supervisor -> gateway: a session ended") \
    X(READINESS,     readiness,     "supervisor -> gateway: all permanent ready?") \
    X(STATUS_REQ,    status_req,    "client -> supervisor: status please")   \
    X(STATUS_REP,    status_rep,    "supervisor -> client: status document") \
    X(KILL,          kill,          "client -> supervisor: signal an actor") \
    X(EVENT,         event,         "anyone -> supervisor -> events PUB")    \
    /* channel: gateway <-> session (sessions ROUTER) */                    \
    X(SESSION_HELLO, session_hello, "session -> gateway: ready for messages") \
    X(INBOUND,       inbound,       "gateway -> session: a verified message") \
    X(ACCEPTED,      accepted,      "session -> gateway: persisted (or dup)") \
    X(MERGED,        merged,        "session -> gateway: answered in a later turn") \
    X(DEFER,         defer,         "session -> gateway: acknowledge now (empty text: with nothing), answer later") \
    X(REPLY_OFFER,   reply_offer,   "session -> gateway: answer is ready")   \
    X(REPLY_VERDICT, reply_verdict, "gateway -> session: inline or REST")    \
    X(INLINE_ACK,    inline_ack,    "session -> gateway: inline recorded, write it") \
    X(IDLE,          idle,          "session -> gateway: may I exit?")       \
    X(IDLE_OK,       idle_ok,       "gateway -> session: yes / no")          \
    /* sender (PULL) */                                                      \
    X(SEND_HINT,     send_hint,     "anyone -> sender: outbox row is due")   \
    X(DELIVERY,      delivery,      "gateway -> sender: status callback")    \
    /* tools (ROUTER per tool actor) */                                      \
    X(TOOL_CALL,     tool_call,     "session -> tool: run one tool")         \
    X(TOOL_RESULT,   tool_result,   "tool -> session: its result")          \
    /* metrics: gateway (or any client) <-> supervisor (control ROUTER) */   \
    X(METRICS_REQ,   metrics_req,   "client -> supervisor: metrics please")  \
    X(METRICS_REP,   metrics_rep,   "supervisor -> client: Prometheus text")

/* F(kind, field, cap) — cap is the byte limit for str, ignored otherwise. */
#define SOUK_FIELDS_hello(F)                                                 \
    F(str, name, SOUK_CAP_NAME) F(str, role, SOUK_CAP_NAME) F(u64, pid, 0)
#define SOUK_FIELDS_ready(F) F(str, name, SOUK_CAP_NAME)
#define SOUK_FIELDS_heartbeat(F)                                             \
    F(str, name, SOUK_CAP_NAME) F(u64, handled, 0) F(u64, depth, 0)          \
    F(u64, idle_ms, 0) F(str, metrics, SOUK_CAP_DOC)
#define SOUK_FIELDS_stop(F) F(str, reason, SOUK_CAP_NAME) F(u64, drain_ms, 0)
#define SOUK_FIELDS_spawn_session(F) F(str, waid, SOUK_CAP_ID)
#define SOUK_FIELDS_session_exit(F)                                          \
    F(str, waid, SOUK_CAP_ID) F(i64, code, 0) F(i64, signal, 0)              \
    F(bool, quarantined, 0)
#define SOUK_FIELDS_readiness(F) F(bool, ready, 0) F(str, detail, SOUK_CAP_TEXT)
#define SOUK_FIELDS_status_req(F) F(u64, ts, 0)
#define SOUK_FIELDS_status_rep(F) F(str, json, SOUK_CAP_DOC)
#define SOUK_FIELDS_kill(F) F(str, name, SOUK_CAP_NAME) F(i64, signal, 0)
#define SOUK_FIELDS_event(F)                                                 \
    F(u64, ts_ms, 0) F(str, kind, SOUK_CAP_NAME) F(str, name, SOUK_CAP_NAME) \
    F(str, role, SOUK_CAP_NAME) F(u64, pid, 0) F(i64, code, 0)               \
    F(i64, signal, 0) F(str, detail, SOUK_CAP_TEXT)
#define SOUK_FIELDS_session_hello(F) F(str, waid, SOUK_CAP_ID) F(u64, pid, 0)
#define SOUK_FIELDS_inbound(F)                                               \
    F(str, request_id, SOUK_CAP_ID) F(str, msg_sid, SOUK_CAP_ID)             \
    F(str, waid, SOUK_CAP_ID) F(str, from, SOUK_CAP_ID)                      \
    F(str, profile, SOUK_CAP_ID) F(str, body, SOUK_CAP_TEXT)                 \
    F(u64, num_media, 0) F(str, params, SOUK_CAP_TEXT)                       \
    F(u64, received_ms, 0)
#define SOUK_FIELDS_accepted(F) F(str, msg_sid, SOUK_CAP_ID) F(bool, duplicate, 0)
#define SOUK_FIELDS_merged(F) F(str, msg_sid, SOUK_CAP_ID) F(str, into_sid, SOUK_CAP_ID)
#define SOUK_FIELDS_defer(F) F(str, msg_sid, SOUK_CAP_ID) F(str, text, SOUK_CAP_TEXT)
#define SOUK_FIELDS_reply_offer(F)                                           \
    F(str, msg_sid, SOUK_CAP_ID) F(str, outbox_key, SOUK_CAP_ID)             \
    F(str, body, SOUK_CAP_TEXT)
#define SOUK_FIELDS_reply_verdict(F)                                         \
    F(str, msg_sid, SOUK_CAP_ID) F(str, outbox_key, SOUK_CAP_ID)             \
    F(bool, inline_, 0)
#define SOUK_FIELDS_inline_ack(F) F(str, msg_sid, SOUK_CAP_ID) F(bool, ok, 0)
#define SOUK_FIELDS_idle(F) F(str, waid, SOUK_CAP_ID)
#define SOUK_FIELDS_idle_ok(F) F(str, waid, SOUK_CAP_ID) F(bool, ok, 0)
#define SOUK_FIELDS_send_hint(F)                                             \
    F(str, outbox_key, SOUK_CAP_ID) F(str, request_id, SOUK_CAP_ID)
#define SOUK_FIELDS_delivery(F)                                              \
    F(str, message_sid, SOUK_CAP_ID) F(str, status, SOUK_CAP_NAME)           \
    F(i64, error_code, 0) F(u64, ts_ms, 0) F(str, request_id, SOUK_CAP_ID)
#define SOUK_FIELDS_tool_call(F)                                             \
    F(str, call_id, SOUK_CAP_ID) F(str, waid, SOUK_CAP_ID)                   \
    F(str, tool, SOUK_CAP_NAME) F(str, args, SOUK_CAP_TEXT)                  \
    F(str, idem_key, SOUK_CAP_ID) F(u64, deadline_ms, 0)                    \
    F(str, request_id, SOUK_CAP_ID)
#define SOUK_FIELDS_tool_result(F)                                           \
    F(str, call_id, SOUK_CAP_ID) F(bool, ok, 0) F(str, result, SOUK_CAP_TEXT) \
    F(str, error, SOUK_CAP_TEXT)
#define SOUK_FIELDS_metrics_req(F) F(u64, ts, 0)
#define SOUK_FIELDS_metrics_rep(F) F(str, text, SOUK_CAP_DOC)

typedef enum {
    SOUK_MSG_NONE = 0,
#define X(ENUM, name, doc) SOUK_MSG_##ENUM,
    SOUK_MESSAGES(X)
#undef X
    SOUK_MSG_COUNT
} souk_msg_type_t;

#define SOUK_CTYPE_u64  uint64_t
#define SOUK_CTYPE_i64  int64_t
#define SOUK_CTYPE_bool bool
#define SOUK_CTYPE_str  char *

#define SOUK_FIELD_DECL(kind, field, cap) SOUK_CTYPE_##kind field;
#define X(ENUM, name, doc) \
    typedef struct { SOUK_FIELDS_##name(SOUK_FIELD_DECL) } souk_##name##_t;
SOUK_MESSAGES(X)
#undef X
#undef SOUK_FIELD_DECL

/* A decoded (or to-be-encoded) message: `type` selects the union member of
 * the same name, e.g. m.type == SOUK_MSG_INBOUND → m.inbound.body. */
typedef struct {
    souk_msg_type_t type;
    union {
#define X(ENUM, name, doc) souk_##name##_t name;
        SOUK_MESSAGES(X)
#undef X
    };
} souk_msg_t;

/* "inbound" for SOUK_MSG_INBOUND; "?" for anything else. */
const char *souk_msg_name(souk_msg_type_t type);

/* Encodes `m` into a fresh buffer. NULL strings encode as "". On success the
 * caller owns *buf (free()). Fails with SOUK_EINVAL for an unknown type or a
 * string over its cap or not valid UTF-8, SOUK_ETOOBIG over SOUK_FRAME_MAX. */
int souk_msg_encode(const souk_msg_t *m, char **buf, size_t *len);

/* Decodes one frame into `out` (zeroed first). On success the caller owns
 * the strings in `out` and releases them with souk_msg_clear(). On error
 * `out` holds nothing to free, and if `err` is not NULL it receives a short
 * reason ("field 3 (body): expected str"). */
int souk_msg_decode(const void *buf, size_t len, souk_msg_t *out,
                    char *err, size_t errlen);

/* Frees the strings of a decoded message and zeroes it; safe to repeat. */
void souk_msg_clear(souk_msg_t *m);

/* Sends `m` as one frame on a ZeroMQ socket (raw libzmq or czmq zsock_t),
 * preceded by the routing id frame when `id` is not NULL (ROUTER sockets).
 * `flags` are zmq_send flags (ZMQ_DONTWAIT). Returns SOUK_OK, or an error:
 * SOUK_EUNAVAIL when a ROUTER_MANDATORY peer is unknown (EHOSTUNREACH),
 * SOUK_EBUSY when the HWM is reached under ZMQ_DONTWAIT, SOUK_EIO else. */
int souk_msg_send(void *sock, const void *id, size_t idlen,
                  const souk_msg_t *m, int flags);

/* Receives one message. For ROUTER sockets pass `id`/`idlen` (capacity in,
 * length out) to get the peer's routing id; else NULL. Returns SOUK_OK with
 * `out` owned by the caller (souk_msg_clear), SOUK_EBUSY when nothing is
 * waiting under ZMQ_DONTWAIT, SOUK_EIO on a socket error, or a decode error
 * (the bad frame is consumed, so the caller can log and go on). */
int souk_msg_recv(void *sock, void *id, size_t *idlen, souk_msg_t *out,
                  int flags, char *err, size_t errlen);

/* Whether `s` (len bytes) is well-formed UTF-8 without NUL bytes. */
bool souk_utf8_valid(const char *s, size_t len);

#endif
