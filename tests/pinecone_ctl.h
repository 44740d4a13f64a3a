/* Tests' handle on tests/fakes/pinecone_fake.py, a local fake of Pinecone's
 * cloud data-plane API (there is no local Pinecone): start it on a free
 * port, point SOUK_VECTOR=pinecone, PINECONE_INDEX_HOST and PINECONE_API_KEY
 * of this process (and so of the processes it starts) at it, read what it
 * saw, script failures, stop it. Assertions are cmocka's. */
#ifndef SOUK_TESTS_PINECONE_CTL_H
#define SOUK_TESTS_PINECONE_CTL_H

#include <jansson.h>
#include <stddef.h>

#define PC_KEY "pc-test-key-0123456789"

/* 0, or -1 when python3 or the script did not start. */
int pc_fake_start(const char *src_dir);
void pc_fake_stop(void);
int pc_fake_port(void);
/* A control request (/_fake/...): the answer parsed (caller decrefs). */
json_t *pc_fake_call(const char *method, const char *path, const char *body);
/* Replaces the fake's script of failures ({"rules": [...]}). */
void pc_fake_script(const char *rules);
/* Requests to path in namespace ns (NULL: any) from request number `from`;
 * *reqs_out (may be NULL) gets every request recorded (caller decrefs). */
int pc_fake_count(const char *path, const char *ns, size_t from, json_t **reqs_out);
/* How many requests the fake has seen. */
size_t pc_fake_requests(void);
/* How many vectors namespace ns holds. */
int pc_fake_vectors(const char *ns);

#endif
