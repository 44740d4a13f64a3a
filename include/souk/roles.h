/* Entry points of the processes in the one `souk` binary.
 *
 * The CLI dispatches `souk serve` to the supervisor and the internal
 * `souk actor ROLE NAME [ARG]` (what the supervisor execs) to a role. Each
 * returns the process exit code: 0 for a normal exit, SOUK_EXIT_CONFIG for a
 * configuration error (not restarted in a loop), anything else is a crash. */
#ifndef SOUK_ROLES_H
#define SOUK_ROLES_H

#include "souk/config.h"

/* `souk serve`: runs the supervision tree in the foreground. */
int supervisor_main(souk_config_t *cfg, const char *self_exe);

/* Actor roles; `name` is the actor's unique name, `arg` its role argument
 * (the WaId for a session, the pool index for a tool actor) or NULL. */
int gateway_main(souk_config_t *cfg, const char *name, const char *arg);
int session_main(souk_config_t *cfg, const char *name, const char *arg);
int tools_main(souk_config_t *cfg, const char *name, const char *arg);
int sender_main(souk_config_t *cfg, const char *name, const char *arg);

#endif
