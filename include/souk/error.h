/* souk error codes: one map, negative values, libuv style.
 *
 * Every function in souk that can fail returns 0 (SOUK_OK) or one of these
 * negative codes; a function that returns an error has not taken ownership
 * of its inputs and has produced no output. */
#ifndef SOUK_ERROR_H
#define SOUK_ERROR_H

#define SOUK_ERRNO_MAP(XX)                                                   \
    XX(EINVAL,    -1,  "invalid argument")                                   \
    XX(ENOMEM,    -2,  "out of memory")                                      \
    XX(EPROTO,    -3,  "malformed message")                                  \
    XX(EVERSION,  -4,  "unsupported protocol version")                       \
    XX(ETYPE,     -5,  "unknown message type")                               \
    XX(ETOOBIG,   -6,  "frame too large")                                    \
    XX(ENOTFOUND, -7,  "not found")                                          \
    XX(EEXISTS,   -8,  "already exists")                                     \
    XX(ECONFLICT, -9,  "condition failed")                                   \
    XX(EIO,       -10, "i/o error")                                          \
    XX(EBUSY,     -11, "busy")                                               \
    XX(ETIMEDOUT, -12, "timed out")                                          \
    XX(EUNAVAIL,  -13, "unavailable")                                        \
    XX(EFORBIDDEN,-14, "forbidden")                                          \
    XX(ECONFIG,   -15, "configuration error")                                \
    XX(ESTOCK,    -16, "not enough stock")                                   \
    XX(ESTATE,    -17, "not allowed in the current state")

enum {
    SOUK_OK = 0,
#define XX(name, code, text) SOUK_##name = (code),
    SOUK_ERRNO_MAP(XX)
#undef XX
};

/* Static text for an error code; never NULL. */
const char *souk_strerror(int code);
/* Short symbolic name ("ENOTFOUND") for an error code; never NULL. */
const char *souk_errname(int code);

/* The code whose name is `name` ("ENOTFOUND"); SOUK_EIO for an unknown
 * name, so a code lost in transit still reads as a failure. */
int souk_errcode(const char *name);

/* Exit code for a configuration error (sysexits EX_CONFIG): the supervisor
 * does not restart a child that exits with it. */
#define SOUK_EXIT_CONFIG 78
/* Exit code for "a service I need is unreachable" (sysexits EX_TEMPFAIL):
 * a session that cannot reach the store exits with it, its work pending in
 * the gateway and the store; the supervisor restarts it after the back-off
 * without counting a crash against the user (no quarantine for an outage). */
#define SOUK_EXIT_TEMPFAIL 75

#endif
