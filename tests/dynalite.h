/* Tests on DynamoDB: dynalite (npm, installed in tests/node_modules by
 * scripts/setup) started on 127.0.0.1 on a free port, and one fresh table
 * per test through SOUK_TABLE_PREFIX. Both are set in the environment, so
 * processes the test forks or execs (souk serve, its actors, the CLI) use
 * the same DynamoDB. */
#ifndef SOUK_TEST_DYNALITE_H
#define SOUK_TEST_DYNALITE_H

#include <stdbool.h>
#include <sys/types.h>

/* The backend a test run is for: $SOUK_TEST_STORE, "sqlite" when unset. */
const char *dynalite_backend(void);
/* When the backend is "dynamodb": starts dynalite (found from
 * SOUK_SRC_DIR or $SOUK_SRC) and sets DYNAMODB_ENDPOINT, SOUK_STORE and
 * dummy AWS credentials; returns 0, 1 when there is no node.js at all
 * (the caller skips: exit 77), or -1 with a message on stderr (node.js but
 * no dynalite: run scripts/setup). Does nothing for sqlite. */
int dynalite_start(void);
/* As dynalite_start, with its data on disk (a temporary folder), so that
 * dynalite_kill and dynalite_restart play an outage that loses nothing. */
int dynalite_start_persistent(void);
/* Kills dynalite (SIGKILL): DynamoDB is unreachable until dynalite_restart,
 * which starts it again on the same port and data; 0 or -1. */
void dynalite_kill(void);
int dynalite_restart(void);
/* Stops the dynalite this process started (by its pid), removes its data. */
void dynalite_stop(void);
/* When the backend is "dynamodb": sets a new SOUK_TABLE_PREFIX and creates
 * the table in it (store_create); 0 or -1. */
int dynalite_fresh_table(void);

#endif
