/* Supervisor test harness; see sup_harness.h. */
#include "sup_harness.h"

#include "souk/endpoints.h"
#include "souk/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int64_t sh_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *s_bin(void)
{
    const char *bin = getenv("SOUK_BIN");
    return bin ? bin : "build/souk";
}

static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0
        && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Leaves no souk, Twilio or systemd variable of an earlier test behind
 * (but SOUK_BIN and SOUK_SRC, which meson sets for the test). */
static void s_clean_env(void)
{
    for (;;) {
        char *victim = NULL;
        for (char **e = environ; *e && !victim; e++)
            if ((!strncmp(*e, "SOUK_", 5) && strncmp(*e, "SOUK_BIN=", 9)
                 && strncmp(*e, "SOUK_SRC=", 9))
                || !strncmp(*e, "TWILIO_", 7)
                || !strncmp(*e, "NOTIFY_SOCKET=", 14) || !strncmp(*e, "WATCHDOG_", 9))
                victim = strndup(*e, strcspn(*e, "="));
        if (!victim)
            return;
        unsetenv(victim);
        free(victim);
    }
}

static void s_event_destroy(void **item)
{
    souk_msg_t *m = *item;
    if (m) {
        souk_msg_clear(m);
        free(m);
    }
    *item = NULL;
}

int sh_init(sh_t *h, const char *const *env)
{
    memset(h, 0, sizeof *h);
    snprintf(h->dir, sizeof h->dir, "/tmp/sk-XXXXXX");
    if (!mkdtemp(h->dir))
        return -1;
    snprintf(h->log, sizeof h->log, "%s/serve.log", h->dir);
    char run[64], port[16];
    snprintf(run, sizeof run, "%s/run", h->dir);
    snprintf(port, sizeof port, "%d", s_free_port());
    s_clean_env();
    setenv("SOUK_DATA", h->dir, 1);
    setenv("SOUK_PORT", port, 1);
    setenv("SOUK_LISTEN", "lo", 1);
    setenv("TWILIO_AUTH_TOKEN", "0123456789abcdef0123456789abcdef", 1);
    for (const char *const *e = env; e && *e; e++) {
        char *kv = strdup(*e), *eq = strchr(kv, '=');
        if (eq) {
            *eq = '\0';
            setenv(kv, eq + 1, 1);
        }
        free(kv);
    }
    souk_endpoint(h->control, sizeof h->control, run, SOUK_EP_CONTROL, 0);
    souk_endpoint(h->events, sizeof h->events, run, SOUK_EP_EVENTS, 0);
    zsys_handler_set(NULL);
    h->sub = zsock_new(ZMQ_SUB);
    h->ctl = zsock_new(ZMQ_DEALER);
    h->backlog = zlistx_new();
    if (!h->sub || !h->ctl || !h->backlog)
        return -1;
    zlistx_set_destructor(h->backlog, s_event_destroy);
    /* connect before souk binds, retrying fast, to miss as little as possible */
    zsock_set_reconnect_ivl(h->sub, 1);
    zsock_set_reconnect_ivl(h->ctl, 1);
    zsock_set_subscribe(h->sub, "");
    zsock_set_rcvhwm(h->sub, 100000);
    char id[32];
    snprintf(id, sizeof id, "t-%d", (int)getpid());
    zsock_set_identity(h->ctl, id);
    zsock_set_linger(h->ctl, 0);
    zsock_set_linger(h->sub, 0);
    if (zsock_connect(h->sub, "%s", h->events) < 0 || zsock_connect(h->ctl, "%s", h->control) < 0)
        return -1;
    return 0;
}

int sh_start(sh_t *h, bool wait_ready)
{
    h->pid = fork();
    if (h->pid < 0)
        return -1;
    if (h->pid == 0) {
        int fd = open(h->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(s_bin(), "souk", "serve", (char *)NULL);
        _exit(127);
    }
    if (!wait_ready)
        return 0;
    for (int64_t end = sh_now_ms() + 20000; sh_now_ms() < end;) {
        json_t *st = sh_status(h);
        bool ready = st && json_is_true(json_object_get(st, "ready"))
                     && !strcmp(json_string_value(json_object_get(st, "phase")), "running");
        json_decref(st);
        if (ready)
            return sh_sync(h);
        if (waitpid(h->pid, &h->status, WNOHANG) == h->pid) {
            h->pid = 0;
            return -1;
        }
        usleep(20000);
    }
    return -1;
}

static void s_print_log(const sh_t *h)
{
    FILE *f = fopen(h->log, "r");
    if (!f)
        return;
    fprintf(stderr, "---- %s ----\n", h->log);
    char line[1024];
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fclose(f);
}

void sh_fini(sh_t *h, bool show_log)
{
    if (h->pid > 0) {
        kill(h->pid, SIGKILL);
        waitpid(h->pid, &h->status, 0);
        h->pid = 0;
    }
    sh_orphans(3000);
    if (show_log)
        s_print_log(h);
    zsock_destroy(&h->sub);
    zsock_destroy(&h->ctl);
    zlistx_destroy(&h->backlog);
    if (h->dir[0]) {
        char cmd[96];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", h->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", h->dir);
    }
}

int sh_send(sh_t *h, const souk_msg_t *m)
{
    return souk_msg_send(h->ctl, NULL, 0, m, 0);
}

json_t *sh_status(sh_t *h)
{
    souk_msg_t req = { .type = SOUK_MSG_STATUS_REQ }, rep;
    if (sh_send(h, &req) != SOUK_OK)
        return NULL;
    zsock_set_rcvtimeo(h->ctl, 3000);
    json_t *doc = NULL;
    /* skip answers to earlier requests (e.g. KILL) */
    while (!doc && souk_msg_recv(h->ctl, NULL, NULL, &rep, 0, NULL, 0) == SOUK_OK) {
        if (rep.type == SOUK_MSG_STATUS_REP) {
            doc = json_loads(rep.status_rep.json, 0, NULL);
            if (doc && !json_object_get(doc, "actors")) {
                json_decref(doc);
                doc = NULL;
            }
        }
        souk_msg_clear(&rep);
    }
    return doc;
}

json_t *sh_actor(json_t *status, const char *name)
{
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(status, "actors"), i, row)
        if (!strcmp(json_string_value(json_object_get(row, "name")), name))
            return row;
    return NULL;
}

pid_t sh_pid(sh_t *h, const char *name)
{
    json_t *st = sh_status(h);
    json_t *pid = json_object_get(sh_actor(st, name), "pid");
    pid_t out = json_is_integer(pid) ? (pid_t)json_integer_value(pid) : 0;
    json_decref(st);
    return out;
}

int sh_spawn_session(sh_t *h, const char *waid)
{
    souk_msg_t m = { .type = SOUK_MSG_SPAWN_SESSION };
    m.spawn_session.waid = (char *)waid;
    return sh_send(h, &m);
}

static bool s_matches(const souk_msg_t *m, const char *kind, const char *name)
{
    return m->type == SOUK_MSG_EVENT && !strcmp(m->event.kind, kind)
           && (!name || !strcmp(m->event.name, name));
}

/* Moves `m` into `out` (or drops it); `m` is left empty. */
static void s_take(souk_msg_t *m, souk_msg_t *out)
{
    if (out) {
        *out = *m;
        memset(m, 0, sizeof *m);
    } else {
        souk_msg_clear(m);
    }
}

int sh_wait_event(sh_t *h, const char *kind, const char *name, int timeout_ms, souk_msg_t *out)
{
    for (souk_msg_t *m = zlistx_first(h->backlog); m; m = zlistx_next(h->backlog)) {
        if (s_matches(m, kind, name)) {
            s_take(m, out);
            zlistx_delete(h->backlog, zlistx_cursor(h->backlog));
            return 0;
        }
    }
    int64_t end = sh_now_ms() + timeout_ms;
    for (int64_t left; (left = end - sh_now_ms()) > 0;) {
        zsock_set_rcvtimeo(h->sub, (int)left);
        souk_msg_t m;
        int rc = souk_msg_recv(h->sub, NULL, NULL, &m, 0, NULL, 0);
        if (rc == SOUK_EBUSY || rc == SOUK_EIO)
            return -1;
        if (rc != SOUK_OK)
            continue;
        if (s_matches(&m, kind, name)) {
            s_take(&m, out);
            return 0;
        }
        souk_msg_t *keep = malloc(sizeof *keep);
        *keep = m;
        zlistx_add_end(h->backlog, keep);
    }
    return -1;
}

int sh_sync(sh_t *h)
{
    char marker[64];
    snprintf(marker, sizeof marker, "{\"sync\":%lld}", (long long)sh_now_ms());
    for (int64_t end = sh_now_ms() + 10000; sh_now_ms() < end;) {
        souk_msg_t m = { .type = SOUK_MSG_EVENT };
        m.event.kind = "test.sync";
        m.event.name = "test";
        m.event.role = "test";
        m.event.detail = marker;
        if (sh_send(h, &m) != SOUK_OK)
            return -1;
        souk_msg_t got;
        while (sh_wait_event(h, "test.sync", "test", 50, &got) == 0) {
            bool mine = !strcmp(got.event.detail, marker);
            souk_msg_clear(&got);
            if (mine) {
                zlistx_purge(h->backlog);
                return 0;
            }
        }
    }
    return -1;
}

int sh_wait_exit(sh_t *h, int timeout_ms)
{
    for (int64_t end = sh_now_ms() + timeout_ms; h->pid > 0;) {
        if (waitpid(h->pid, &h->status, WNOHANG) == h->pid) {
            h->pid = 0;
            break;
        }
        if (sh_now_ms() >= end)
            return -1;
        usleep(5000);
    }
    if (WIFSIGNALED(h->status))
        return 128 + WTERMSIG(h->status);
    return WEXITSTATUS(h->status);
}

static int s_count_children(void)
{
    DIR *d = opendir("/proc");
    int n = 0;
    pid_t me = getpid();
    for (struct dirent *e; d && (e = readdir(d));) {
        char path[300], buf[512];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        char state;
        int ppid;
        const char *close_paren = strrchr(buf, ')'); /* the name may hold spaces */
        if (close_paren && sscanf(close_paren + 1, " %c %d", &state, &ppid) == 2
            && ppid == me && state != 'Z')
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

int sh_orphans(int timeout_ms)
{
    int64_t end = sh_now_ms() + timeout_ms;
    for (;;) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        int n = s_count_children();
        if (n == 0 || sh_now_ms() >= end)
            return n;
        usleep(10000);
    }
}

int sh_run(char **out, const char *arg, ...)
{
    const char *argv[16] = { "souk" };
    int argc = 1;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && argc < 15; a = va_arg(ap, const char *))
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        execv(s_bin(), (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    char chunk[4096];
    ssize_t n;
    while ((n = read(fds[0], chunk, sizeof chunk)) > 0)
        fwrite(chunk, 1, (size_t)n, mem);
    fclose(mem);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
