/* The client commands of `souk` (everything but serve and the actors). */
#ifndef SOUK_CLI_H
#define SOUK_CLI_H

#include "souk/config.h"

#include <stdbool.h>

int cli_status(souk_config_t *cfg, int argc, char **argv);
int cli_events(souk_config_t *cfg, int argc, char **argv);
int cli_chat(souk_config_t *cfg, int argc, char **argv);

/* cli/db.c */
int cli_db(souk_config_t *cfg, int argc, char **argv);
/* cli/import.c */
int cli_import(souk_config_t *cfg, int argc, char **argv);
/* cli/merchant.c */
int cli_products(souk_config_t *cfg, int argc, char **argv);
int cli_orders(souk_config_t *cfg, int argc, char **argv);
int cli_tickets(souk_config_t *cfg, int argc, char **argv);
int cli_search(souk_config_t *cfg, int argc, char **argv);
int cli_understand(souk_config_t *cfg, int argc, char **argv);

/* Whether a process listens on an ipc:// endpoint (a stale socket file does
 * not count). */
bool cli_endpoint_alive(const char *endpoint);

#endif
