/* The client commands of `souk` (everything but serve and the actors). */
#ifndef SOUK_CLI_H
#define SOUK_CLI_H

#include "souk/config.h"

int cli_status(souk_config_t *cfg, int argc, char **argv);
int cli_events(souk_config_t *cfg, int argc, char **argv);

#endif
