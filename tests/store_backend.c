/* See store_backend.h. */
#include "store_backend.h"
#include "dynalite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int test_store_start(test_store_t *s)
{
    memset(s, 0, sizeof *s);
    const char *b = getenv("SOUK_TEST_STORE");
    snprintf(s->backend, sizeof s->backend, "%s", b && *b ? b : "sqlite");
    if (strcmp(s->backend, "dynamodb") == 0) {
        /* dynalite's endpoint, the store and a fresh table go in the
         * environment, which every souk serve started after inherits */
        if (dynalite_start() != 0 || dynalite_fresh_table() != 0)
            return -1;
        s->server = 1;
        return 0;
    }
    if (strcmp(s->backend, "sqlite") != 0) {
        fprintf(stderr, "store_backend: unknown SOUK_TEST_STORE=%s\n", s->backend);
        return -1;
    }
    snprintf(s->dir, sizeof s->dir, "/tmp/sk-db-XXXXXX");
    if (!mkdtemp(s->dir))
        return -1;
    snprintf(s->vars[0], sizeof s->vars[0], "SOUK_STORE_DIR=%s", s->dir);
    s->env[0] = s->vars[0];
    return 0;
}

void test_store_stop(test_store_t *s)
{
    if (s->server) {
        dynalite_stop();
        s->server = 0;
    }
    if (s->dir[0] && !getenv("HARNESS_KEEP")) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "store_backend: could not remove %s\n", s->dir);
    }
}
