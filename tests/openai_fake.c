/* Runs tests/fakes/openai_fake.py for a test (see openai_fake.h). */
#include "openai_fake.h"

#include <curl/curl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int openai_fake_start(openai_fake_t *f)
{
    memset(f, 0, sizeof *f);
    const char *src = getenv("SOUK_SRC");
    char script[1024];
    snprintf(script, sizeof script, "%s/tests/fakes/openai_fake.py", src ? src : ".");
    int out[2];
    if (pipe(out) < 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    char *argv[] = { "python3", script, "--key", FAKE_KEY, NULL };
    int rc = posix_spawnp(&f->pid, "python3", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (rc != 0) {
        close(out[0]);
        return -1;
    }
    FILE *p = fdopen(out[0], "r");
    char line[64] = "";
    if (!p || !fgets(line, sizeof line, p))
        return -1;
    fclose(p);
    f->port = atoi(line);
    snprintf(f->base_url, sizeof f->base_url, "http://127.0.0.1:%d/v1", f->port);
    return f->port > 0 ? 0 : -1;
}

void openai_fake_stop(openai_fake_t *f)
{
    if (f->pid > 0) {
        kill(f->pid, SIGTERM);
        waitpid(f->pid, NULL, 0);
        f->pid = 0;
    }
}

static size_t s_collect(char *data, size_t size, size_t n, void *arg)
{
    fwrite(data, size, n, arg);
    return size * n;
}

static json_t *s_call(openai_fake_t *f, const char *method, const char *path, const char *body)
{
    char url[256], *buf = NULL;
    size_t len = 0;
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", f->port, path);
    FILE *mem = open_memstream(&buf, &len);
    CURL *e = curl_easy_init();
    if (!mem || !e) {
        if (mem)
            fclose(mem);
        free(buf);
        return NULL;
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (body)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, mem);
    CURLcode c = curl_easy_perform(e);
    curl_easy_cleanup(e);
    fclose(mem);
    json_t *doc = c == CURLE_OK ? json_loads(buf, 0, NULL) : NULL;
    free(buf);
    return doc;
}

int openai_fake_script(openai_fake_t *f, const char *rules_json)
{
    json_t *r = s_call(f, "POST", "/_fake/script", rules_json);
    json_decref(r);
    return r ? 0 : -1;
}

int openai_fake_reset(openai_fake_t *f)
{
    json_t *r = s_call(f, "POST", "/_fake/reset", "{}");
    json_decref(r);
    return r ? 0 : -1;
}

json_t *openai_fake_requests(openai_fake_t *f)
{
    json_t *r = s_call(f, "GET", "/_fake/requests", NULL);
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
