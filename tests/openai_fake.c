/* Runs tests/fakes/openai_fake.py for a test (see openai_fake.h). */
#include "openai_fake.h"

#include <stdio.h>
#include <string.h>

int openai_fake_start(openai_fake_t *f)
{
    memset(f, 0, sizeof *f);
    const char *args[] = { "--key", FAKE_KEY, NULL };
    if (fake_proc_start(&f->proc, "openai_fake.py", args) != 0)
        return -1;
    snprintf(f->base_url, sizeof f->base_url, "http://127.0.0.1:%d/v1", f->proc.port);
    return 0;
}

void openai_fake_stop(openai_fake_t *f)
{
    fake_proc_stop(&f->proc);
}

int openai_fake_script(openai_fake_t *f, const char *rules_json)
{
    json_t *r = fake_proc_call(&f->proc, "POST", "/_fake/script", rules_json);
    json_decref(r);
    return r ? 0 : -1;
}

int openai_fake_reset(openai_fake_t *f)
{
    json_t *r = fake_proc_call(&f->proc, "POST", "/_fake/reset", "{}");
    json_decref(r);
    return r ? 0 : -1;
}

json_t *openai_fake_requests(openai_fake_t *f)
{
    json_t *r = fake_proc_call(&f->proc, "GET", "/_fake/requests", NULL);
    json_t *list = json_incref(json_object_get(r, "requests"));
    json_decref(r);
    return list;
}

int openai_fake_count(openai_fake_t *f, const char *kind)
{
    json_t *list = openai_fake_requests(f);
    int n = 0;
    size_t i;
    json_t *r;
    json_array_foreach(list, i, r)
        n += strcmp(json_string_value(json_object_get(r, "kind")), kind) == 0;
    json_decref(list);
    return list ? n : -1;
}
