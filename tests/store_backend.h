/* The store a multi-process test runs souk on, chosen by SOUK_TEST_STORE:
 * "sqlite" (default: a shared SQLite folder) or "dynamodb" (dynalite, a
 * real DynamoDB implementation from npm, started on 127.0.0.1 here).
 * env lists the "K=V" settings that point souk at it (NULL-terminated). */
#ifndef SOUK_TEST_STORE_BACKEND_H
#define SOUK_TEST_STORE_BACKEND_H

#include <stdbool.h>

typedef struct {
    char backend[16];
    char dir[64];          /* sqlite: the shared folder */
    bool server;           /* dynamodb: dynalite started here */
    char vars[4][160];
    const char *env[5];
} test_store_t;

/* Returns 0, or -1 with the reason on stderr. */
int test_store_start(test_store_t *s);
/* Stops what test_store_start started and removes its files. */
void test_store_stop(test_store_t *s);

#endif
