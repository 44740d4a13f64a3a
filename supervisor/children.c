/* One child's life: fork + exec, the messages that move it from starting to
 * ready, liveness, stop, exit and restart.
 *
 *   state      event                     next
 *   queued     its turn in the sequence  starting (fork + exec)
 *   starting   READY after HELLO         ready
 *   starting   start timeout             hung (SIGKILL)
 *   ready      silent 3 heartbeats       hung (SIGKILL)
 *   any        stop (shut-down, evict)   stopping (STOP, SIGKILL at the deadline)
 *   any        exit                      backoff / starting (restart), exited, or escalate
 *   backoff    its delay has passed      starting */
#include "supervisor.h"

#include "souk/actor.h"
#include "souk/error.h"
#include "souk/log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *sup_state_name(sup_state_t state)
{
    static const char *const names[] = {
        [SUP_QUEUED] = "starting", [SUP_STARTING] = "starting", [SUP_READY] = "ready",
        [SUP_STOPPING] = "stopping", [SUP_BACKOFF] = "backoff", [SUP_HUNG] = "hung",
        [SUP_EXITED] = "exited",
    };
    return names[state];
}

sup_child_t *sup_child_new(const sup_spec_t *spec, const char *name, const char *arg,
                           const sup_tree_t *tree)
{
    sup_child_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (sup_window_init(&c->window, tree->intensity_max) != SOUK_OK) {
        free(c);
        return NULL;
    }
    c->spec = spec;
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->arg, sizeof c->arg, "%s", arg);
    c->state = SUP_QUEUED;
    return c;
}

void sup_child_destroy(sup_child_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sup_window_clear(&(*self_p)->window);
    free((*self_p)->metrics);
    free(*self_p);
    *self_p = NULL;
}

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void s_pid_key(pid_t pid, char key[16])
{
    snprintf(key, 16, "%d", (int)pid);
}

/* fork(2) without glibc's atfork handlers (czmq registers one that touches
 * its state in the child): between fork and exec only system calls run. */
static pid_t s_fork_raw(void)
{
    return (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
}

/* In the child: default signals, an empty mask, death with the supervisor,
 * its own process group, no inherited descriptor but stdio, then exec.
 * Async-signal-safe calls only. */
static void s_exec_child(const char *exe, char *const argv[], char *const envp[],
                         pid_t supervisor)
{
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL); /* EINVAL for SIGKILL, SIGSTOP and glibc's own: fine */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* PDEATHSIG fires when the parent dies from here on; if it died before,
     * we were reparented and must not run on. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != supervisor)
        _exit(1);
    /* its own process group: a terminal's Ctrl-C reaches the supervisor
     * alone, which then stops the actors in order */
    setpgid(0, 0);
    close_range(3, ~0U, 0); /* belt and braces: every descriptor is CLOEXEC already */
    execve(exe, argv, envp);
    _exit(127);
}

void sup_child_set_deadline(sup_t *sup, sup_child_t *c, int64_t at)
{
    c->deadline_ms = at;
    if (at && (!sup->next_deadline_ms || at < sup->next_deadline_ms))
        sup->next_deadline_ms = at;
}

int sup_child_start(sup_t *sup, sup_child_t *c)
{
    char *argv[] = { "souk", "actor", (char *)c->spec->role, c->name,
                     c->arg[0] ? c->arg : NULL, NULL };
    int64_t now = souk_now_ms();
    char **envp = sup->envs[c->spec - sup->tree.specs];
    pid_t pid = s_fork_raw();
    if (pid == 0)
        s_exec_child(sup->exe, argv, envp ? envp : environ, sup->pid);
    if (pid < 0) {
        char masked[SOUK_CAP_NAME + 1];
        SLOG_ERROR("actor.fork_failed", "name=%s err=\"%s\"",
                   sup_mask_name(c->name, masked, sizeof masked), strerror(errno));
        c->state = SUP_BACKOFF;
        c->backoff_ms = sup_backoff_next(&sup->tree, c->backoff_ms);
        sup_child_set_deadline(sup, c, now + c->backoff_ms);
        return SOUK_EIO;
    }
    bool restart = c->exited_once;
    c->pid = pid;
    c->state = SUP_STARTING;
    c->hello = c->killed = false;
    c->forked_ms = c->seen_ms = now;
    c->forked_us = s_now_us();
    c->forked_wall_ms = souk_wall_ms();
    c->ready_ms = c->ready_wall_ms = c->heartbeat_ms = 0;
    c->handled = c->depth = c->idle_ms = 0;
    sup_child_set_deadline(sup, c, now + sup->tree.start_timeout_ms);
    char key[16];
    s_pid_key(pid, key);
    zhashx_update(sup->by_pid, key, c);
    if (restart) {
        c->restarts++;
        char detail[96];
        snprintf(detail, sizeof detail, "{\"restarts\":%lld,\"delay_ms\":%lld}",
                 (long long)c->restarts, (long long)c->backoff_delay_ms);
        sup_event(sup, "restarted", c, 0, 0, detail);
    } else {
        sup_event(sup, "started", c, 0, 0, "");
    }
    return SOUK_OK;
}

void sup_child_stop(sup_t *sup, sup_child_t *c, const char *reason, int64_t shutdown_ms)
{
    if (!c->pid)
        return;
    int64_t drain = shutdown_ms - sup->tree.stop_grace_ms;
    souk_msg_t m = { .type = SOUK_MSG_STOP };
    m.stop.reason = (char *)reason;
    m.stop.drain_ms = (uint64_t)(drain > 0 ? drain : 0);
    int rc = souk_msg_send(sup->control, c->name, strlen(c->name), &m, ZMQ_DONTWAIT);
    if (rc != SOUK_OK) {
        /* not connected yet (or gone): the actor's signal fd turns SIGTERM
         * into the same stop, and before that SIGTERM simply ends it */
        SLOG_DEBUG("actor.stop_by_signal", "pid=%d err=%s", (int)c->pid, souk_errname(rc));
        kill(c->pid, SIGTERM);
    }
    c->state = SUP_STOPPING;
    sup_child_set_deadline(sup, c, souk_now_ms() + shutdown_ms);
    char detail[128];
    snprintf(detail, sizeof detail, "{\"reason\":\"%s\",\"drain_ms\":%llu}", reason,
             (unsigned long long)m.stop.drain_ms);
    sup_event(sup, "stopping", c, 0, 0, detail);
}

void sup_child_kill(sup_child_t *c)
{
    if (c->pid && !c->killed && kill(c->pid, SIGKILL) == 0)
        c->killed = true;
}

void sup_child_schedule_restart(sup_t *sup, sup_child_t *c)
{
    int64_t now = souk_now_ms();
    /* a child that stayed up a whole window starts its backoff afresh */
    if (c->ready_ms && now - c->ready_ms >= sup->tree.backoff_reset_ms)
        c->backoff_ms = 0;
    int64_t delay = c->backoff_ms;
    c->backoff_ms = sup_backoff_next(&sup->tree, delay);
    c->backoff_delay_ms = delay;
    if (delay == 0) {
        sup_child_start(sup, c);
        return;
    }
    c->state = SUP_BACKOFF;
    sup_child_set_deadline(sup, c, now + delay);
}

/* A restart that would exceed the intensity ends the supervisor instead. */
static void s_restart_or_escalate(sup_t *sup, sup_child_t *c)
{
    int64_t n = sup_window_add(&c->window, souk_now_ms(), sup->tree.intensity_window_ms);
    if (n <= sup->tree.intensity_max) {
        sup_child_schedule_restart(sup, c);
        return;
    }
    char detail[160];
    snprintf(detail, sizeof detail,
             "{\"reason\":\"restart intensity\",\"restarts\":%lld,\"window_s\":%lld}",
             (long long)n, (long long)(sup->tree.intensity_window_ms / 1000));
    sup_event(sup, "escalated", c, 0, 0, detail);
    c->state = SUP_EXITED;
    sup_shutdown(sup, "escalated", 1);
}

void sup_child_exited(sup_t *sup, sup_child_t *c, int status)
{
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    bool stop_requested = c->state == SUP_STOPPING;
    char key[16], detail[96], text[32];
    snprintf(detail, sizeof detail, "{\"last_exit\":\"%s\",\"uptime_ms\":%lld}",
             sup_exit_text(code, sig, text, sizeof text),
             (long long)(souk_now_ms() - c->forked_ms));
    sup_event(sup, "exited", c, code, sig, detail);
    s_pid_key(c->pid, key);
    zhashx_delete(sup->by_pid, key);
    sup_metrics_retire(sup, c);
    c->pid = 0;
    c->deadline_ms = 0;
    c->exited_once = true;
    c->last_code = code;
    c->last_signal = sig;

    if (c->spec->group) {
        sup_session_exited(sup, c, code, sig, stop_requested);
        return;
    }
    if (sup->phase == SUP_PHASE_STOPPING) {
        c->state = SUP_EXITED;
        return;
    }
    switch (sup_exit_verdict(c->spec->restart, code, sig, stop_requested)) {
    case SUP_EXIT_RESTART:
        s_restart_or_escalate(sup, c);
        break;
    case SUP_EXIT_CONFIG:
        SLOG_ERROR("actor.config_error", "name=%s reason=\"exit 78: not restarted, stopping souk\"",
                   c->name);
        sup_event(sup, "escalated", c, code, 0, "{\"reason\":\"configuration error\"}");
        c->state = SUP_EXITED;
        sup_shutdown(sup, "configuration error", SOUK_EXIT_CONFIG);
        break;
    case SUP_EXIT_FINAL:
        c->state = SUP_EXITED;
        break;
    }
}

static void s_on_ready(sup_t *sup, sup_child_t *c, int64_t now)
{
    c->state = SUP_READY;
    c->ready_ms = now;
    c->ready_wall_ms = souk_wall_ms();
    c->deadline_ms = 0;
    char detail[64];
    snprintf(detail, sizeof detail, "{\"spawn_to_ready_us\":%lld}",
             (long long)(s_now_us() - c->forked_us));
    sup_event(sup, "ready", c, 0, 0, detail);
    if (c->spec->group)
        return;
    sup_readiness_update(sup, strcmp(c->name, SUP_GATEWAY) == 0);
    sup_sequence_step(sup);
}

void sup_child_message(sup_t *sup, sup_child_t *c, const souk_msg_t *m)
{
    int64_t now = souk_now_ms();
    switch (m->type) {
    case SOUK_MSG_HELLO:
        if ((pid_t)m->hello.pid == c->pid && c->pid)
            c->hello = true;
        else
            SLOG_DEBUG("control.stale_hello", "pid=%llu", (unsigned long long)m->hello.pid);
        break;
    case SOUK_MSG_READY:
        if (c->hello && c->state == SUP_STARTING)
            s_on_ready(sup, c, now);
        break;
    case SOUK_MSG_HEARTBEAT:
        c->handled = m->heartbeat.handled;
        c->depth = m->heartbeat.depth;
        c->idle_ms = m->heartbeat.idle_ms;
        c->heartbeat_ms = now;
        /* a heartbeat still queued from a process reaped since must not
         * bring back counts already folded into the retired totals */
        if (c->pid && c->hello)
            sup_metrics_heartbeat(c, m->heartbeat.metrics);
        break;
    default:
        break;
    }
}

void sup_child_check(sup_t *sup, sup_child_t *c, int64_t now)
{
    if (c->deadline_ms && now >= c->deadline_ms) {
        c->deadline_ms = 0;
        switch (c->state) {
        case SUP_BACKOFF:
            sup_child_start(sup, c);
            return;
        case SUP_STARTING:
            c->state = SUP_HUNG;
            sup_event(sup, "hung", c, 0, 0, "{\"reason\":\"start timeout\"}");
            sup_child_kill(c);
            return;
        case SUP_STOPPING:
            SLOG_WARN("actor.stop_timeout", "pid=%d: SIGKILL", (int)c->pid);
            sup_child_kill(c);
            return;
        default:
            break;
        }
    }
    if (c->state == SUP_READY && now - c->seen_ms > sup->tree.hung_after_ms) {
        char detail[64];
        snprintf(detail, sizeof detail, "{\"reason\":\"silent\",\"silent_ms\":%lld}",
                 (long long)(now - c->seen_ms));
        c->state = SUP_HUNG;
        sup_event(sup, "hung", c, 0, 0, detail);
        sup_child_kill(c);
        sup_readiness_update(sup, false);
    }
}

sup_child_t *sup_child_find(sup_t *sup, const char *name)
{
    if (strncmp(name, SUP_SESSION_PREFIX, strlen(SUP_SESSION_PREFIX)) == 0)
        return zhashx_lookup(sup->sessions, name);
    for (size_t i = 0; i < sup->tree.nspecs; i++)
        if (sup->kids[i] && strcmp(sup->kids[i]->name, name) == 0)
            return sup->kids[i];
    return NULL;
}

sup_child_t *sup_child_by_pid(sup_t *sup, pid_t pid)
{
    char key[16];
    s_pid_key(pid, key);
    return zhashx_lookup(sup->by_pid, key);
}
