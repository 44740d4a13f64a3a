/* A python3 fake server (a script in tests/fakes) as a child process: started with
 * its arguments, its port read from the first line of its stdout, stopped
 * with SIGTERM. Header-only, for the tests that need one. */
#ifndef SOUK_TEST_FAKE_PROC_H
#define SOUK_TEST_FAKE_PROC_H

#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct {
    pid_t pid;
    int port;
} fake_proc_t;

/* Starts python3 tests/fakes/<script> with args (NULL-terminated, may be
 * NULL). Returns 0, or -1. */
static inline int fake_proc_start(fake_proc_t *f, const char *script, const char *const *args)
{
    const char *src = getenv("SOUK_SRC");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fakes/%s", src ? src : ".", script);
    char *argv[32] = { "python3", path };
    size_t n = 2;
    for (size_t i = 0; args && args[i] && n < 31; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
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
    if (!p)
        return -1;
    if (!fgets(line, sizeof line, p))
        line[0] = '\0';
    fclose(p);
    f->port = atoi(line);
    return f->port > 0 ? 0 : -1;
}

static inline void fake_proc_stop(fake_proc_t *f)
{
    if (f->pid > 0) {
        kill(f->pid, SIGTERM);
        waitpid(f->pid, NULL, 0);
        f->pid = 0;
    }
}

#endif
