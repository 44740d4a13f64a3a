/* A python3 fake server as a child process, and requests to its control
 * endpoints (see fake_proc.h). */
#include "fake_proc.h"

#include "souk/curl.h"

#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int fake_proc_start_in(fake_proc_t *f, const char *src_dir, const char *script,
                       const char *const *args)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fakes/%s", src_dir ? src_dir : ".", script);
    char *argv[32] = { "python3", path };
    size_t n = 2;
    for (size_t i = 0; args && args[i] && n < 31; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    f->pid = 0;
    f->port = 0;
    int out[2];
    if (pipe(out) < 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    int rc = posix_spawnp(&f->pid, "python3", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (rc != 0) {
        close(out[0]);
        f->pid = 0;
        return -1;
    }
    FILE *p = fdopen(out[0], "r");
    char line[64] = "";
    if (!p) {
        close(out[0]);
        return -1;
    }
    if (!fgets(line, sizeof line, p)) /* the fake prints its port first */
        line[0] = '\0';
    fclose(p);
    f->port = atoi(line);
    return f->port > 0 ? 0 : -1;
}

int fake_proc_start(fake_proc_t *f, const char *script, const char *const *args)
{
    return fake_proc_start_in(f, getenv("SOUK_SRC"), script, args);
}

void fake_proc_stop(fake_proc_t *f)
{
    if (f->pid > 0) {
        kill(f->pid, SIGTERM);
        waitpid(f->pid, NULL, 0);
        f->pid = 0;
    }
}

static size_t s_collect(char *data, size_t size, size_t n, void *arg)
{
    return fwrite(data, size, n, arg) * size;
}

json_t *fake_proc_call(const fake_proc_t *f, const char *method, const char *path,
                       const char *json_body)
{
    return fake_proc_call_ms(f, method, path, json_body, 10000);
}

json_t *fake_proc_call_ms(const fake_proc_t *f, const char *method, const char *path,
                          const char *json_body, long timeout_ms)
{
    if (souk_curl_load(NULL, 0) != 0)
        return NULL;
    char url[256], *buf = NULL;
    size_t len = 0;
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", f->port, path);
    FILE *mem = open_memstream(&buf, &len);
    if (!mem)
        return NULL;
    CURL *e = curl_easy_init();
    CURLcode cc = CURLE_FAILED_INIT;
    long status = 0;
    if (e) {
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        if (json_body)
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, json_body);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_collect);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, mem);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        cc = curl_easy_perform(e);
        if (cc == CURLE_OK)
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(e);
    }
    fclose(mem);
    json_t *doc = cc == CURLE_OK && status == 200 ? json_loads(buf, 0, NULL) : NULL;
    free(buf);
    return doc;
}
