/* tests/fakes/openai_fake.py run from a test: start, script, read what it
 * was asked. The fake stands in for the OpenAI API, a cloud service that
 * cannot run here; it follows the documented contract. */
#ifndef SOUK_TEST_OPENAI_FAKE_H
#define SOUK_TEST_OPENAI_FAKE_H

#include "fake_proc.h"

#include <jansson.h>

#define FAKE_KEY "sk-test-0123456789"

typedef struct {
    fake_proc_t proc;
    char base_url[64];     /* http://127.0.0.1:PORT/v1 */
} openai_fake_t;

/* Starts the fake (SOUK_SRC/tests/fakes/openai_fake.py) with FAKE_KEY.
 * Returns 0, or -1. */
int openai_fake_start(openai_fake_t *f);
void openai_fake_stop(openai_fake_t *f);
/* Replaces the script: rules_json is {"rules": [...]}. Returns 0 or -1. */
int openai_fake_script(openai_fake_t *f, const char *rules_json);
int openai_fake_reset(openai_fake_t *f);
/* Every request so far: [{path, kind, body, authorised, ts}]; NULL on
 * failure. Caller decrefs. */
json_t *openai_fake_requests(openai_fake_t *f);
/* How many requests of kind ("chat", "classify", "embeddings"). */
int openai_fake_count(openai_fake_t *f, const char *kind);

#endif
