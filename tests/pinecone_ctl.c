/* Tests' handle on the fake Pinecone (see pinecone_ctl.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "souk/curl.h"
#include "souk/error.h"
#include "pinecone_ctl.h"

extern char **environ;

static pid_t s_fake_pid;
static int s_fake_port;

int pc_fake_start(const char *src_dir)
{
    char script[1024];
    snprintf(script, sizeof script, "%s/tests/fakes/pinecone_fake.py", src_dir);
    int out[2];
    if (pipe(out) < 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    char *argv[] = { "python3", script, "--api-key", PC_KEY, NULL };
    int rc = posix_spawnp(&s_fake_pid, "python3", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    FILE *p = rc == 0 ? fdopen(out[0], "r") : NULL;
    char line[64] = "";
    if (!p) {
        close(out[0]);
        return -1;
    }
    if (!fgets(line, sizeof line, p))
        line[0] = '\0';
    fclose(p);
    s_fake_port = atoi(line);
    if (s_fake_port <= 0)
        return -1;
    char host[64];
    snprintf(host, sizeof host, "http://127.0.0.1:%d", s_fake_port);
    setenv("PINECONE_INDEX_HOST", host, 1);
    setenv("PINECONE_API_KEY", PC_KEY, 1);
    setenv("SOUK_VECTOR", "pinecone", 1);
    return 0;
}

void pc_fake_stop(void)
{
    if (s_fake_pid > 0) {
        kill(s_fake_pid, SIGTERM);
        waitpid(s_fake_pid, NULL, 0);
        s_fake_pid = 0;
    }
}

static size_t s_collect(char *data, size_t size, size_t n, void *arg)
{
    return fwrite(data, size, n, arg) * size;
}

/* A request to the fake's control endpoints; the answer parsed. */
json_t *pc_fake_call(const char *method, const char *path, const char *body)
{
    char url[128], *buf = NULL;
    size_t len = 0;
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s_fake_port, path);
    assert_int_equal(souk_curl_load(NULL, 0), SOUK_OK);
    FILE *mem = open_memstream(&buf, &len);
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (body)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, mem);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 10L);
    CURLcode cc = curl_easy_perform(e);
    curl_easy_cleanup(e);
    fclose(mem);
    json_t *doc = cc == CURLE_OK ? json_loads(buf, 0, NULL) : NULL;
    free(buf);
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
    return s_fake_port;
}
