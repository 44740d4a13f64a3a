/* `souk db create`: makes what the configured store needs before the first
 * `souk serve` — on DynamoDB the table and its indexes (an existing table
 * is fine; waits until it is ACTIVE), on SQLite the database and schema. */
#include "cli.h"
#include "souk/error.h"
#include "souk/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_db(souk_config_t *cfg, int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[1], "create") != 0) {
        fprintf(stderr, "usage: souk db create\n");
        return SOUK_EXIT_CONFIG;
    }
    char err[512] = "";
    int rc = store_create(cfg->store, cfg->data_dir, err, sizeof err);
    if (rc != SOUK_OK) {
        fprintf(stderr, "souk db create: %s: %s\n", souk_strerror(rc), err);
        return rc == SOUK_ECONFIG ? SOUK_EXIT_CONFIG : 1;
    }
    if (strcmp(cfg->store, "dynamodb") == 0) {
        const char *prefix = getenv("SOUK_TABLE_PREFIX");
        printf("table %ssouk is ACTIVE\n", prefix ? prefix : "");
    } else {
        printf("%s/souk.db is ready\n", cfg->data_dir);
    }
    return 0;
}
