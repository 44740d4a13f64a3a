/* souk logging: one line per event on stderr, logfmt or JSON.
 *
 * A line carries ts, level, actor, event, the current request id (when one is
 * set) and the caller's key=value pairs. Callers write the pairs in logfmt
 * (`"sid=%s n=%d"`); a value with spaces is written quoted (`msg=\"%s\"`) —
 * use souk_log_quote() for text that may hold quotes. JSON output is derived
 * from the same pairs. Never pass a secret or an unmasked phone number. */
#ifndef SOUK_LOG_H
#define SOUK_LOG_H

#include <stddef.h>

typedef enum { SOUK_LOG_DEBUG, SOUK_LOG_INFO, SOUK_LOG_WARN, SOUK_LOG_ERROR } souk_log_level_t;

/* Sets the actor name, format ("logfmt"|"json") and minimum level
 * ("debug"|"info"|"warn"|"error"); unknown values keep the defaults
 * (logfmt, info). Safe to call again. */
void souk_log_init(const char *actor, const char *format, const char *level);

/* Sets the request id carried by every following line (NULL clears it). */
void souk_log_request(const char *request_id);
/* The request id set now ("" when none): to pass it on in a message
 * (TOOL_CALL, SEND_HINT), so the next actor's lines carry it too. */
const char *souk_log_current_request(void);

void souk_log(souk_log_level_t level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies `in` into `out` as a quoted logfmt value ("..." with \" and \\
 * escaped, control characters dropped), truncated to fit. Returns out. */
const char *souk_log_quote(const char *in, char *out, size_t outlen);

/* SLOG_, not LOG_: <syslog.h>, which czmq includes, owns LOG_INFO. */
#define SLOG_DEBUG(ev, ...) souk_log(SOUK_LOG_DEBUG, ev, __VA_ARGS__)
#define SLOG_INFO(ev, ...)  souk_log(SOUK_LOG_INFO, ev, __VA_ARGS__)
#define SLOG_WARN(ev, ...)  souk_log(SOUK_LOG_WARN, ev, __VA_ARGS__)
#define SLOG_ERROR(ev, ...) souk_log(SOUK_LOG_ERROR, ev, __VA_ARGS__)

#endif
