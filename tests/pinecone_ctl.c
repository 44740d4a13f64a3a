/* Tests' handle on the fake Pinecone (see pinecone_ctl.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_proc.h"
#include "pinecone_ctl.h"

static fake_proc_t s_fake;

int pc_fake_start(const char *src_dir)
{
    const char *args[] = { "--api-key", PC_KEY, NULL };
    if (fake_proc_start_in(&s_fake, src_dir, "pinecone_fake.py", args) != 0)
        return -1;
    char host[64];
    snprintf(host, sizeof host, "http://127.0.0.1:%d", s_fake.port);
    setenv("PINECONE_INDEX_HOST", host, 1);
    setenv("PINECONE_API_KEY", PC_KEY, 1);
    setenv("SOUK_VECTOR", "pinecone", 1);
    return 0;
}

void pc_fake_stop(void)
{
    fake_proc_stop(&s_fake);
}

/* A request to the fake's control endpoints; the answer parsed. */
json_t *pc_fake_call(const char *method, const char *path, const char *body)
{
    json_t *doc = fake_proc_call(&s_fake, method, path, body);
    assert_non_null(doc);
    return doc;
}

void pc_fake_script(const char *rules)
{
    json_decref(pc_fake_call("POST", "/_fake/script", rules));
}

/* Requests to path in namespace ns (NULL: any) since request index `from`. */
int pc_fake_count(const char *path, const char *ns, size_t from, json_t **reqs_out)
{
    json_t *st = pc_fake_call("GET", "/_fake/state", NULL);
    json_t *reqs = json_object_get(st, "requests"), *r;
    size_t i;
    int n = 0;
    json_array_foreach(reqs, i, r) {
        const char *rns = json_string_value(json_object_get(r, "namespace"));
        if (i >= from && strcmp(json_string_value(json_object_get(r, "path")), path) == 0 &&
            (!ns || (rns && strcmp(rns, ns) == 0)))
            n++;
    }
    if (reqs_out)
        *reqs_out = json_incref(reqs);
    json_decref(st);
    return n;
}

size_t pc_fake_requests(void)
{
    json_t *reqs;
    pc_fake_count("/", NULL, 0, &reqs);
    size_t n = json_array_size(reqs);
    json_decref(reqs);
    return n;
}

int pc_fake_vectors(const char *ns)
{
    json_t *st = pc_fake_call("GET", "/_fake/state", NULL);
    json_t *v = json_object_get(json_object_get(st, "namespaces"), ns);
    int n = v ? (int)json_integer_value(v) : 0;
    json_decref(st);
    return n;
}

int pc_fake_port(void)
{
    return s_fake.port;
}
