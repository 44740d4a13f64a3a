/* Every ZeroMQ endpoint souk uses, named in one place.
 *
 * All are ipc sockets under <data>/run/ so that two souk instances with
 * different data folders never meet. Who binds, who connects and which
 * messages flow is in docs/ARCHITECTURE.md (the socket map).
 *
 *   endpoint   bound by     pattern           connected by
 *   control    supervisor   ROUTER            every actor (DEALER, id = actor name), CLI
 *   events     supervisor   PUB               `souk events`, `souk chat`, monitors
 *   sessions   gateway      ROUTER            session actors (DEALER, id = WaId)
 *   sender     sender       PULL              gateway, sessions, tools (PUSH)
 *   tool       tool actor N ROUTER            session actors (DEALER, one to every tool)
 */
#ifndef SOUK_ENDPOINTS_H
#define SOUK_ENDPOINTS_H

#include <stddef.h>

typedef enum {
    SOUK_EP_CONTROL,
    SOUK_EP_EVENTS,
    SOUK_EP_SESSIONS,
    SOUK_EP_SENDER,
    SOUK_EP_TOOL,
} souk_endpoint_t;

/* Writes the endpoint ("ipc:///.../run/control") into buf; `index` selects
 * the tool actor for SOUK_EP_TOOL and is ignored otherwise. Returns buf. */
const char *souk_endpoint(char *buf, size_t len, const char *run_dir, souk_endpoint_t which,
                          int index);

/* Socket options shared by every bus socket: bounded LINGER so a dying
 * actor never hangs on exit, deliberate high-water marks. */
#define SOUK_LINGER_MS 200
#define SOUK_HWM_CONTROL 100000  /* heartbeats of thousands of sessions */
#define SOUK_HWM_DEFAULT 10000

#endif
