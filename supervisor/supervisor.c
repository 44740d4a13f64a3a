/* `souk serve`: the supervisor process.
 *
 * It holds no business logic (nginx's master, not a worker): it prepares the
 * data folder, binds the control and events endpoints, starts the tree of
 * tree.c in order and then runs one poll loop over three inputs —
 *   control messages (sup_control_drain),
 *   signals through a signalfd: SIGCHLD (reap, restart), SIGTERM/SIGINT (stop),
 *   timers: restart backoffs, start and stop deadlines, the liveness tick and
 *   the systemd watchdog —
 * until the last child is gone. Exit status: 0 after a signal, 1 after an
 * escalation, 78 when a child reported a configuration error. */
#include "supervisor.h"

#include "souk/actor.h"
#include "souk/endpoints.h"
#include "souk/error.h"
#include "souk/log.h"
#include "souk/roles.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- readiness ----------------------------------------------------------- */

void sup_readiness_update(sup_t *sup, bool force)
{
    char waiting[2048] = "";
    size_t off = 0;
    bool all = sup->phase < SUP_PHASE_STOPPING;
    for (size_t i = 0; i < sup->tree.nspecs; i++) {
        sup_child_t *c = sup->kids[i];
        if (!c || c->spec->restart != SUP_PERMANENT || c->state == SUP_READY)
            continue;
        all = false;
        if (off + SOUK_CAP_NAME + 16 < sizeof waiting)
            off += (size_t)snprintf(waiting + off, sizeof waiting - off, "%s%s %s",
                                    off ? ", " : "", c->name, sup_state_name(c->state));
    }
    if (all == sup->all_ready && !force)
        return;
    bool changed = all != sup->all_ready;
    sup->all_ready = all;
    char detail[2100];
    if (sup->phase >= SUP_PHASE_STOPPING)
        snprintf(detail, sizeof detail, "stopping");
    else if (all)
        snprintf(detail, sizeof detail, "every actor is ready");
    else
        snprintf(detail, sizeof detail, "waiting for: %s", waiting);
    souk_msg_t m = { .type = SOUK_MSG_READINESS };
    m.readiness.ready = all;
    m.readiness.detail = detail;
    sup_send_gateway(sup, &m);
    if (!changed)
        return;
    SLOG_INFO("supervisor.readiness", "ready=%s", all ? "true" : "false");
    sup_notify(&sup->notify, "STATUS=%s", detail);
    if (all && !sup->ready_notified) {
        sup_notify(&sup->notify, "READY=1");
        sup->ready_notified = true;
    }
}

/* ---- start-up and shut-down order ---------------------------------------- */

static void s_start_next(sup_t *sup)
{
    for (; sup->cursor < sup->tree.nspecs; sup->cursor++) {
        sup_child_t *c = sup->kids[sup->cursor];
        if (!c || c->state == SUP_READY)
            continue;
        if (c->state == SUP_QUEUED)
            sup_child_start(sup, c);
        return; /* the next one starts when this one is ready */
    }
    sup->phase = SUP_PHASE_RUNNING;
    SLOG_INFO("supervisor.running", "actors=%zu", sup->tree.nspecs - 1);
}

/* Stops every live session; true while any is still alive. */
static bool s_stop_sessions(sup_t *sup, const sup_spec_t *group)
{
    bool alive = false;
    for (sup_child_t *c = zhashx_first(sup->sessions); c; c = zhashx_next(sup->sessions)) {
        if (!c->pid)
            continue;
        alive = true;
        if (c->state != SUP_STOPPING)
            sup_child_stop(sup, c, "shutdown", group->shutdown_ms);
    }
    return alive;
}

static bool s_any_alive(sup_t *sup)
{
    for (size_t i = 0; i < sup->tree.nspecs; i++)
        if (sup->kids[i] && sup->kids[i]->pid)
            return true;
    for (sup_child_t *c = zhashx_first(sup->sessions); c; c = zhashx_next(sup->sessions))
        if (c->pid)
            return true;
    return false;
}

/* Reverse start order, one spec at a time: the gateway, the sessions, the
 * tools, the sender. */
static void s_stop_next(sup_t *sup)
{
    for (; !sup->hurry && sup->cursor > 0; sup->cursor--) {
        const sup_spec_t *spec = &sup->tree.specs[sup->cursor - 1];
        sup_child_t *c = sup->kids[sup->cursor - 1];
        if (spec->group) {
            if (s_stop_sessions(sup, spec))
                return;
        } else if (c->pid) {
            if (c->state != SUP_STOPPING)
                sup_child_stop(sup, c, "shutdown", spec->shutdown_ms);
            return;
        }
    }
    if (!s_any_alive(sup))
        sup->phase = SUP_PHASE_DONE;
}

void sup_sequence_step(sup_t *sup)
{
    if (sup->phase == SUP_PHASE_STARTING)
        s_start_next(sup);
    else if (sup->phase == SUP_PHASE_STOPPING)
        s_stop_next(sup);
}

/* Pending restarts will not happen now; sessions without a process go. */
static void s_cancel_restarts(sup_t *sup)
{
    for (size_t i = 0; i < sup->tree.nspecs; i++) {
        sup_child_t *c = sup->kids[i];
        if (c && !c->pid) {
            c->state = SUP_EXITED;
            c->deadline_ms = 0;
        }
    }
    zlistx_t *idle = zlistx_new();
    for (sup_child_t *c = zhashx_first(sup->sessions); c; c = zhashx_next(sup->sessions))
        if (!c->pid)
            zlistx_add_end(idle, c->name);
    for (const char *name = zlistx_first(idle); name; name = zlistx_next(idle)) {
        sup_child_t *c = zhashx_lookup(sup->sessions, name);
        sup_send_session_exit(sup, c->arg, -1, 0, false);
        zhashx_delete(sup->sessions, name);
    }
    zlistx_destroy(&idle);
}

/* Second signal: whatever is left gets STOP with no drain, SIGKILL after the
 * grace; a third: SIGKILL now. */
static void s_hurry(sup_t *sup)
{
    int64_t now = souk_now_ms(), grace = sup->tree.stop_grace_ms;
    bool kill_now = sup->hurry;
    sup->hurry = true;
    SLOG_WARN("supervisor.hurry", "kill_now=%s", kill_now ? "true" : "false");
    zlistx_t *all = zlistx_new();
    for (size_t i = 0; i < sup->tree.nspecs; i++)
        if (sup->kids[i] && sup->kids[i]->pid)
            zlistx_add_end(all, sup->kids[i]);
    for (sup_child_t *c = zhashx_first(sup->sessions); c; c = zhashx_next(sup->sessions))
        if (c->pid)
            zlistx_add_end(all, c);
    for (sup_child_t *c = zlistx_first(all); c; c = zlistx_next(all)) {
        if (kill_now)
            sup_child_kill(c);
        else if (c->state != SUP_STOPPING)
            sup_child_stop(sup, c, "shutdown", grace);
        else if (c->deadline_ms > now + grace)
            sup_child_set_deadline(sup, c, now + grace);
    }
    zlistx_destroy(&all);
}

void sup_shutdown(sup_t *sup, const char *reason, int exit_code)
{
    if (exit_code > sup->exit_code)
        sup->exit_code = exit_code;
    if (sup->phase >= SUP_PHASE_STOPPING) {
        s_hurry(sup);
        return;
    }
    SLOG_INFO("supervisor.stopping", "reason=\"%s\" exit=%d", reason, sup->exit_code);
    sup->phase = SUP_PHASE_STOPPING;
    sup->cursor = sup->tree.nspecs;
    sup_notify(&sup->notify, "STOPPING=1\nSTATUS=stopping: %s", reason);
    char detail[128];
    snprintf(detail, sizeof detail, "{\"reason\":\"%s\"}", reason);
    sup_event(sup, "stopping", NULL, sup->exit_code, 0, detail);
    s_cancel_restarts(sup);
    sup_readiness_update(sup, false);
    s_stop_next(sup);
}

/* ---- signals and reaping ------------------------------------------------- */

static int s_signal_fd(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    /* blocked before ZeroMQ starts its threads, so they inherit the mask */
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

static void s_reap(sup_t *sup)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        sup_child_t *c = sup_child_by_pid(sup, pid);
        if (c)
            sup_child_exited(sup, c, status);
    }
    sup_readiness_update(sup, false);
    sup_sequence_step(sup);
}

static void s_on_signals(sup_t *sup)
{
    struct signalfd_siginfo si;
    bool child = false;
    while (read(sup->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD) {
            child = true;
            continue;
        }
        sup->signals++;
        sup_shutdown(sup, si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM", 0);
    }
    if (child)
        s_reap(sup);
}

/* ---- timers -------------------------------------------------------------- */

/* The watchdog is fed only while the liveness checks pass. */
static bool s_children_heartbeat(sup_t *sup, int64_t now)
{
    for (size_t i = 0; i < sup->tree.nspecs; i++) {
        sup_child_t *c = sup->kids[i];
        if (!c || c->spec->restart != SUP_PERMANENT)
            continue;
        if (c->state == SUP_HUNG
            || (c->state == SUP_READY && now - c->seen_ms > sup->tree.hung_after_ms))
            return false;
    }
    return true;
}

static void s_scan(sup_t *sup, int64_t now)
{
    int64_t next = 0;
    for (size_t i = 0; i < sup->tree.nspecs; i++) {
        sup_child_t *c = sup->kids[i];
        if (!c)
            continue;
        sup_child_check(sup, c, now);
        if (c->deadline_ms && (!next || c->deadline_ms < next))
            next = c->deadline_ms;
    }
    for (sup_child_t *c = zhashx_first(sup->sessions); c; c = zhashx_next(sup->sessions)) {
        sup_child_check(sup, c, now);
        if (c->deadline_ms && (!next || c->deadline_ms < next))
            next = c->deadline_ms;
    }
    sup->next_deadline_ms = next;
}

static void s_timers(sup_t *sup, int64_t now)
{
    bool tick = now >= sup->tick_at_ms;
    if (tick || (sup->next_deadline_ms && now >= sup->next_deadline_ms))
        s_scan(sup, now);
    if (tick) {
        sup_sessions_purge(sup, now);
        sup->tick_at_ms = now + (sup->tree.heartbeat_ms / 2 > 10 ? sup->tree.heartbeat_ms / 2 : 10);
    }
    if (sup->notify.watchdog_ms && now >= sup->watchdog_at_ms) {
        if (s_children_heartbeat(sup, now))
            sup_notify(&sup->notify, "WATCHDOG=1");
        sup->watchdog_at_ms = now + sup->notify.watchdog_ms;
    }
    sup_sequence_step(sup);
}

static int64_t s_next_wake(sup_t *sup)
{
    int64_t wake = sup->tick_at_ms;
    if (sup->next_deadline_ms && sup->next_deadline_ms < wake)
        wake = sup->next_deadline_ms;
    if (sup->notify.watchdog_ms && sup->watchdog_at_ms < wake)
        wake = sup->watchdog_at_ms;
    return wake;
}

static void s_loop(sup_t *sup)
{
    void *control = zsock_resolve(sup->control);
    while (sup->phase != SUP_PHASE_DONE) {
        int64_t timeout = s_next_wake(sup) - souk_now_ms();
        zmq_pollitem_t items[] = {
            { control, 0, ZMQ_POLLIN, 0 },
            { NULL, sup->sigfd, ZMQ_POLLIN, 0 },
        };
        if (zmq_poll(items, 2, timeout > 0 ? (long)timeout : 0) < 0 && zmq_errno() != EINTR) {
            SLOG_ERROR("supervisor.poll", "err=\"%s\"", zmq_strerror(zmq_errno()));
            sup->exit_code = 1;
            return;
        }
        if (items[1].revents & ZMQ_POLLIN)
            s_on_signals(sup);
        if (items[0].revents & ZMQ_POLLIN)
            sup_control_drain(sup);
        s_timers(sup, souk_now_ms());
    }
}

/* ---- set-up -------------------------------------------------------------- */

/* One supervisor per data folder: a second one would steal the sockets. */
static int s_lock(const souk_config_t *cfg)
{
    char path[512];
    snprintf(path, sizeof path, "%s/supervisor.lock", cfg->run_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "souk: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char pid[32] = "";
        ssize_t n = read(fd, pid, sizeof pid - 1);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        fprintf(stderr, "souk: already running with SOUK_DATA=%s (pid %s)\n", cfg->data_dir, pid);
        close(fd);
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || write(fd, pid, (size_t)n) != n)
        SLOG_WARN("supervisor.lock_write", "err=\"%s\"", strerror(errno));
    return fd;
}

/* No descriptor may reach an actor but stdio. Ours are created close-on-exec
 * (ZeroMQ's too); this also covers what our own parent let us inherit. */
static void s_cloexec_audit(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        int fd = atoi(e->d_name);
        if (fd <= 2 || fd == dirfd(d))
            continue;
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC)) {
            SLOG_DEBUG("supervisor.fd_inherited", "fd=%d: close-on-exec now", fd);
            fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        }
    }
    closedir(d);
}

static int s_setup(sup_t *sup)
{
    sup_tree_init(&sup->tree, sup->cfg);
    for (size_t i = 0; i < sup->tree.nspecs; i++) {
        const sup_spec_t *spec = &sup->tree.specs[i];
        if (spec->group)
            continue;
        sup->kids[i] = sup_child_new(spec, spec->name, spec->arg, &sup->tree);
        if (!sup->kids[i])
            return SOUK_ENOMEM;
    }
    sup->by_pid = zhashx_new();
    if (!sup->by_pid || sup_sessions_init(sup) != SOUK_OK || sup_metrics_init(sup) != SOUK_OK)
        return SOUK_ENOMEM;
    int rc = sup_control_bind(sup);
    if (rc != SOUK_OK)
        return rc;
    sup_notify_init(&sup->notify);
    /* once, after the notify variables are gone: the environment is the
     * same for every start of a role */
    for (size_t i = 0; i < sup->tree.nspecs; i++) {
        const char *tunables = sup->tree.specs[i].tunables;
        if (tunables && !(sup->envs[i] = sup_env_tuned(environ, tunables)))
            return SOUK_ENOMEM;
    }
    s_cloexec_audit();
    return SOUK_OK;
}

static void s_teardown(sup_t *sup)
{
    for (size_t i = 0; i < sup->tree.nspecs; i++) {
        sup_child_destroy(&sup->kids[i]);
        free(sup->envs[i]);
    }
    sup_sessions_destroy(sup);
    sup_metrics_destroy(sup);
    zhashx_destroy(&sup->by_pid);
    zsock_destroy(&sup->control);
    zsock_destroy(&sup->events);
    sup_notify_close(&sup->notify);
    if (sup->sigfd >= 0)
        close(sup->sigfd);
    if (sup->lockfd >= 0)
        close(sup->lockfd);
}

int supervisor_main(souk_config_t *cfg, const char *self_exe)
{
    char err[512];
    if (souk_config_prepare_data(cfg, err, sizeof err) != SOUK_OK) {
        fprintf(stderr, "souk: configuration error: %s\n", err);
        return SOUK_EXIT_CONFIG;
    }
    /* the value stays in its file: a secret never reaches the log, even a
     * development one (souk chat and the tests read the file) */
    if (cfg->token_generated)
        fprintf(stderr, "souk: no TWILIO_AUTH_TOKEN: using the development token in %s/dev-token\n",
                cfg->data_dir);
    souk_log_init("supervisor", cfg->log_format, cfg->log_level);
    sup_t sup = { .cfg = cfg, .exe = self_exe, .pid = getpid(), .sigfd = -1, .lockfd = -1 };
    sup.started_ms = souk_now_ms();
    sup.started_wall_ms = souk_wall_ms();
    sup.lockfd = s_lock(cfg);
    if (sup.lockfd < 0)
        return 1;
    sup.sigfd = s_signal_fd();
    zsys_handler_set(NULL); /* czmq would swallow SIGTERM; the signal fd has it */
    zsys_set_linger(SOUK_LINGER_MS);
    if (sup.sigfd < 0 || s_setup(&sup) != SOUK_OK) {
        fprintf(stderr, "souk: cannot start the supervisor (see the log above)\n");
        s_teardown(&sup);
        return 1;
    }
    SLOG_INFO("supervisor.start", "pid=%d data=%s tools=%lld sessions_max=%lld", (int)sup.pid,
              cfg->data_dir, (long long)cfg->tools, (long long)cfg->sessions_max);
    sup_notify(&sup.notify, "STATUS=starting");
    sup.tick_at_ms = souk_now_ms();
    sup.watchdog_at_ms = souk_now_ms();
    sup_sequence_step(&sup);
    s_loop(&sup);
    SLOG_INFO("supervisor.exit", "code=%d", sup.exit_code);
    s_teardown(&sup);
    return sup.exit_code;
}
