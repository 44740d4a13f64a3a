/* The supervisor, end to end: a real `souk serve` per test, driven only
 * through signals, the control endpoint and the events stream.
 *
 * Run one test per process: `test_supervisor NAME` (meson registers each
 * NAME as its own test with its own time-out); without NAME, all run in
 * sequence. */
#include "slurp.h"
#include "proc_fd.h"
#include "sup_harness.h"
#include "../supervisor/supervisor.h"

#include "souk/error.h"

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define WAIT_MS 15000 /* generous: the ASan build on a busy 2-core machine */

static const char *const s_base_env[] = { "SOUK_HEARTBEAT_MS=200", NULL };

/* ---- fixtures ------------------------------------------------------------ */

static int s_teardown(void **state);

static int s_setup_with(void **state, const char *const *env, bool start)
{
    sh_t *h = calloc(1, sizeof *h);
    *state = h;
    if (!h || sh_init(h, env) != 0)
        return -1;
    if (start && sh_start(h, true) != 0) {
        fprintf(stderr, "souk serve did not become ready\n");
        s_teardown(state); /* cmocka skips the teardown of a failed setup */
        return -1;
    }
    return 0;
}

static int s_setup(void **state)
{
    return s_setup_with(state, s_base_env, true);
}

static int s_teardown(void **state)
{
    sh_t *h = *state;
    if (h) {
        sh_fini(h, true);
        free(h);
    }
    *state = NULL;
    return 0;
}

/* SIGTERM, exit 0, nothing left behind. */
static void s_stop_cleanly(sh_t *h)
{
    assert_int_equal(kill(h->pid, SIGTERM), 0);
    assert_int_equal(sh_wait_exit(h, WAIT_MS), 0);
    assert_int_equal(sh_orphans(3000), 0);
}

static int64_t s_int(json_t *row, const char *field)
{
    return json_integer_value(json_object_get(row, field));
}

static const char *s_str(json_t *row, const char *field)
{
    const char *s = json_string_value(json_object_get(row, field));
    return s ? s : "";
}

/* ---- restart after kill -9 ----------------------------------------------- */

static void s_kill_and_expect_restart(sh_t *h, const char *name)
{
    pid_t old = sh_pid(h, name);
    assert_true(old > 0);
    assert_int_equal(kill(old, SIGKILL), 0);
    souk_msg_t ev;
    assert_int_equal(sh_wait_event(h, "exited", name, WAIT_MS, &ev), 0);
    assert_int_equal(ev.event.pid, old);
    assert_int_equal(ev.event.signal, SIGKILL);
    souk_msg_clear(&ev);
    assert_int_equal(sh_wait_event(h, "restarted", name, WAIT_MS, &ev), 0);
    pid_t fresh = (pid_t)ev.event.pid;
    assert_true(fresh > 0 && fresh != old);
    souk_msg_clear(&ev);
    assert_int_equal(sh_wait_event(h, "ready", name, WAIT_MS, &ev), 0);
    assert_int_equal(ev.event.pid, fresh);
    souk_msg_clear(&ev);

    json_t *st = sh_status(h);
    json_t *row = sh_actor(st, name);
    assert_non_null(row);
    assert_int_equal(s_int(row, "pid"), fresh);
    assert_int_equal(s_int(row, "restarts"), 1);
    assert_string_equal(s_str(row, "last_exit"), "signal 9");
    assert_string_equal(s_str(row, "state"), "ready");
    assert_true(json_is_true(json_object_get(st, "ready")));
    json_decref(st);
}

static void restart_gateway(void **state)
{
    s_kill_and_expect_restart(*state, "gateway");
    s_stop_cleanly(*state);
}

static void restart_tool(void **state)
{
    s_kill_and_expect_restart(*state, "tool-1");
    s_stop_cleanly(*state);
}

static void restart_sender(void **state)
{
    s_kill_and_expect_restart(*state, "sender");
    s_stop_cleanly(*state);
}

/* KILL over control, as an operator's tool would send it. */
static void kill_command(void **state)
{
    sh_t *h = *state;
    pid_t old = sh_pid(h, "tool-0");
    souk_msg_t m = { .type = SOUK_MSG_KILL };
    m.kill.name = "tool-0";
    m.kill.signal = SIGKILL;
    assert_int_equal(sh_send(h, &m), SOUK_OK);
    souk_msg_t ev;
    assert_int_equal(sh_wait_event(h, "exited", "tool-0", WAIT_MS, &ev), 0);
    assert_int_equal(ev.event.pid, old);
    assert_int_equal(ev.event.signal, SIGKILL);
    souk_msg_clear(&ev);
    assert_int_equal(sh_wait_event(h, "ready", "tool-0", WAIT_MS, NULL), 0);
    s_stop_cleanly(h);
}

/* ---- backoff and intensity ----------------------------------------------- */

static int s_setup_backoff(void **state)
{
    static const char *const env[] = { "SOUK_HEARTBEAT_MS=200", "SOUK_RESTART_MAX=50",
                                       "SOUK_RESTART_WINDOW_S=60", NULL };
    return s_setup_with(state, env, true);
}

static int64_t s_detail_int(const char *detail, const char *key)
{
    json_t *doc = json_loads(detail, 0, NULL);
    int64_t v = json_integer_value(json_object_get(doc, key));
    json_decref(doc);
    return v;
}

static void backoff_growth(void **state)
{
    sh_t *h = *state;
    enum { KILLS = 6 };
    int64_t delay[KILLS], gap[KILLS];
    for (int i = 0; i < KILLS; i++) {
        pid_t pid = sh_pid(h, "tool-0");
        assert_true(pid > 0);
        assert_int_equal(kill(pid, SIGKILL), 0);
        souk_msg_t exited, restarted;
        assert_int_equal(sh_wait_event(h, "exited", "tool-0", WAIT_MS, &exited), 0);
        assert_int_equal(sh_wait_event(h, "restarted", "tool-0", WAIT_MS, &restarted), 0);
        delay[i] = s_detail_int(restarted.event.detail, "delay_ms");
        gap[i] = (int64_t)(restarted.event.ts_ms - exited.event.ts_ms);
        print_message("restart %d: delay %lld ms, exited->restarted %lld ms\n", i + 1,
                      (long long)delay[i], (long long)gap[i]);
        souk_msg_clear(&exited);
        souk_msg_clear(&restarted);
        assert_int_equal(sh_wait_event(h, "ready", "tool-0", WAIT_MS, NULL), 0);
    }
    assert_int_equal(delay[0], 0); /* the first restart is immediate */
    for (int i = 1; i < KILLS; i++) {
        assert_true(delay[i] > delay[i - 1]);
        assert_true(gap[i] >= delay[i] - 1); /* the delay really was waited (ms clock) */
    }
    assert_true(delay[KILLS - 1] >= 8 * delay[1]);
    s_stop_cleanly(h);
}

static int s_setup_escalate(void **state)
{
    static const char *const env[] = { "SOUK_HEARTBEAT_MS=200", "SOUK_RESTART_MAX=2",
                                       "SOUK_RESTART_WINDOW_S=60", NULL };
    return s_setup_with(state, env, true);
}

static void intensity_escalates(void **state)
{
    sh_t *h = *state;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(kill(sh_pid(h, "sender"), SIGKILL), 0);
        assert_int_equal(sh_wait_event(h, "ready", "sender", WAIT_MS, NULL), 0);
    }
    assert_int_equal(kill(sh_pid(h, "sender"), SIGKILL), 0);
    souk_msg_t ev;
    assert_int_equal(sh_wait_event(h, "escalated", "sender", WAIT_MS, &ev), 0);
    assert_non_null(strstr(ev.event.detail, "restart intensity"));
    souk_msg_clear(&ev);
    assert_int_equal(sh_wait_exit(h, WAIT_MS), 1);
    assert_int_equal(sh_orphans(3000), 0);
}

/* ---- liveness ------------------------------------------------------------ */

static int s_setup_fast_heartbeat(void **state)
{
    static const char *const env[] = { "SOUK_HEARTBEAT_MS=100", NULL };
    return s_setup_with(state, env, true);
}

static void hung_actor_replaced(void **state)
{
    sh_t *h = *state;
    pid_t old = sh_pid(h, "tool-0");
    assert_int_equal(kill(old, SIGSTOP), 0);
    souk_msg_t ev;
    assert_int_equal(sh_wait_event(h, "hung", "tool-0", WAIT_MS, &ev), 0);
    assert_int_equal(ev.event.pid, old);
    assert_non_null(strstr(ev.event.detail, "silent"));
    souk_msg_clear(&ev);
    assert_int_equal(sh_wait_event(h, "exited", "tool-0", WAIT_MS, &ev), 0);
    assert_int_equal(ev.event.signal, SIGKILL);
    souk_msg_clear(&ev);
    assert_int_equal(sh_wait_event(h, "ready", "tool-0", WAIT_MS, &ev), 0);
    assert_true((pid_t)ev.event.pid != old);
    souk_msg_clear(&ev);
    json_t *st = sh_status(h);
    assert_int_equal(s_int(sh_actor(st, "tool-0"), "restarts"), 1);
    json_decref(st);
    s_stop_cleanly(h);
}

/* ---- the session group --------------------------------------------------- */

static int s_setup_cap2(void **state)
{
    static const char *const env[] = { "SOUK_HEARTBEAT_MS=200", "SOUK_SESSIONS_MAX=2", NULL };
    return s_setup_with(state, env, true);
}

static int64_t s_sessions_live(sh_t *h)
{
    json_t *st = sh_status(h);
    int64_t n = s_int(st, "sessions_live");
    json_decref(st);
    return n;
}

/* Whether process `pid` was started with `var` (NAME=value) in its environment. */
static bool s_environ_has(pid_t pid, const char *var)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    size_t len = 0;
    char *env = slurp(path, &len);
    assert_non_null(env);
    bool found = false;
    for (size_t at = 0; at < len && !found; at += strlen(env + at) + 1)
        found = !strncmp(env + at, var, strlen(var));
    free(env);
    return found;
}

static void sessions_dedupe_and_cap(void **state)
{
    sh_t *h = *state;
    assert_int_equal(sh_spawn_session(h, "15550000001"), SOUK_OK);
    assert_int_equal(sh_wait_event(h, "ready", "s-15550000001", WAIT_MS, NULL), 0);
    /* sessions alone run without glibc's per-thread malloc cache */
    assert_true(s_environ_has(sh_pid(h, "s-15550000001"), "GLIBC_TUNABLES=" SUP_SESSION_TUNABLES));
    assert_false(s_environ_has(sh_pid(h, "gateway"), "GLIBC_TUNABLES=" SUP_SESSION_TUNABLES));
    assert_int_equal(sh_spawn_session(h, "15550000001"), SOUK_OK); /* already live */
    assert_int_equal(sh_sync(h), 0);
    assert_int_equal(s_sessions_live(h), 1);

    assert_int_equal(sh_spawn_session(h, "15550000002"), SOUK_OK);
    assert_int_equal(sh_wait_event(h, "ready", "s-15550000002", WAIT_MS, NULL), 0);
    assert_int_equal(s_sessions_live(h), 2);

    /* at the cap: one of the two idle sessions makes room */
    assert_int_equal(sh_spawn_session(h, "15550000003"), SOUK_OK);
    souk_msg_t ev;
    assert_int_equal(sh_wait_event(h, "stopping", NULL, WAIT_MS, &ev), 0);
    assert_non_null(strstr(ev.event.detail, "evicted"));
    char victim[64];
    snprintf(victim, sizeof victim, "%s", ev.event.name);
    assert_true(!strcmp(victim, "s-15550000001") || !strcmp(victim, "s-15550000002"));
    souk_msg_clear(&ev);
    assert_int_equal(sh_wait_event(h, "exited", victim, WAIT_MS, &ev), 0);
    assert_int_equal(ev.event.code, 0);
    assert_int_equal(ev.event.signal, 0);
    souk_msg_clear(&ev);
    assert_int_equal(sh_wait_event(h, "ready", "s-15550000003", WAIT_MS, NULL), 0);

    json_t *st = sh_status(h);
    assert_int_equal(s_int(st, "sessions_live"), 2);
    assert_null(sh_actor(st, victim)); /* a normal exit is final */
    assert_string_equal(s_str(sh_actor(st, "s-15550000003"), "state"), "ready");
    assert_string_equal(s_str(sh_actor(st, "s-15550000003"), "role"), "session");
    json_decref(st);
    s_stop_cleanly(h);
}

static int s_setup_cap1(void **state)
{
    static const char *const env[] = { "SOUK_HEARTBEAT_MS=200", "SOUK_SESSIONS_MAX=1",
                                       "SOUK_DRAIN_MS=0", NULL };
    return s_setup_with(state, env, true);
}

static void sessions_refused_at_cap(void **state)
{
    sh_t *h = *state;
    assert_int_equal(sh_spawn_session(h, "15550000011"), SOUK_OK);
    assert_int_equal(sh_wait_event(h, "ready", "s-15550000011", WAIT_MS, NULL), 0);
    pid_t a = sh_pid(h, "s-15550000011");
    assert_int_equal(kill(a, SIGSTOP), 0); /* it cannot leave before its stop deadline */
    assert_int_equal(sh_spawn_session(h, "15550000012"), SOUK_OK);
    souk_msg_t ev;
    assert_int_equal(sh_wait_event(h, "stopping", "s-15550000011", WAIT_MS, &ev), 0);
    assert_non_null(strstr(ev.event.detail, "evicted"));
    souk_msg_clear(&ev);
    assert_int_equal(sh_spawn_session(h, "15550000013"), SOUK_OK);
    assert_int_equal(sh_wait_event(h, "refused", "s-15550000013", WAIT_MS, &ev), 0);
    assert_non_null(strstr(ev.event.detail, "cap"));
    assert_int_equal(ev.event.code, -1);
    souk_msg_clear(&ev);
    /* the stopped one is killed at its deadline; the waiting one gets its slot */
    assert_int_equal(sh_wait_event(h, "exited", "s-15550000011", WAIT_MS, &ev), 0);
    assert_int_equal(ev.event.signal, SIGKILL);
    souk_msg_clear(&ev);
    assert_int_equal(sh_wait_event(h, "ready", "s-15550000012", WAIT_MS, NULL), 0);
    assert_int_equal(s_sessions_live(h), 1);
    s_stop_cleanly(h);
}

static int s_setup_quarantine(void **state)
{
    /* RESTART_MAX=1: were session crashes counted daemon-wide, souk would stop */
    static const char *const env[] = { "SOUK_HEARTBEAT_MS=200", "SOUK_QUARANTINE_CRASHES=2",
                                       "SOUK_RESTART_MAX=1", NULL };
    return s_setup_with(state, env, true);
}

static void session_crash_quarantine(void **state)
{
    sh_t *h = *state;
    const char *name = "s-15550000021";
    assert_int_equal(sh_spawn_session(h, "15550000021"), SOUK_OK);
    assert_int_equal(sh_wait_event(h, "ready", name, WAIT_MS, NULL), 0);
    for (int crash = 1; crash <= 2; crash++) { /* transient: a crash is restarted */
        assert_int_equal(kill(sh_pid(h, name), SIGKILL), 0);
        assert_int_equal(sh_wait_event(h, "restarted", name, WAIT_MS, NULL), 0);
        assert_int_equal(sh_wait_event(h, "ready", name, WAIT_MS, NULL), 0);
    }
    assert_int_equal(kill(sh_pid(h, name), SIGKILL), 0);
    souk_msg_t ev;
    assert_int_equal(sh_wait_event(h, "quarantined", name, WAIT_MS, &ev), 0);
    souk_msg_clear(&ev);
    assert_int_equal(sh_sync(h), 0);
    json_t *st = sh_status(h);
    assert_null(sh_actor(st, name));
    assert_int_equal(s_int(st, "quarantined"), 1);
    assert_string_equal(s_str(st, "phase"), "running");
    json_decref(st);
    /* the user is answered with an apology, not a session */
    assert_int_equal(sh_spawn_session(h, "15550000021"), SOUK_OK);
    assert_int_equal(sh_wait_event(h, "refused", name, WAIT_MS, &ev), 0);
    assert_non_null(strstr(ev.event.detail, "quarantined"));
    souk_msg_clear(&ev);
    /* other users are served */
    assert_int_equal(sh_spawn_session(h, "15550000022"), SOUK_OK);
    assert_int_equal(sh_wait_event(h, "ready", "s-15550000022", WAIT_MS, NULL), 0);
    s_stop_cleanly(h);
}

static int s_setup_idle(void **state)
{
    static const char *const env[] = { "SOUK_HEARTBEAT_MS=200", "SOUK_SESSION_IDLE_S=1", NULL };
    return s_setup_with(state, env, true);
}

static void session_idle_exit(void **state)
{
    sh_t *h = *state;
    const char *name = "s-15550000031";
    assert_int_equal(sh_spawn_session(h, "15550000031"), SOUK_OK);
    assert_int_equal(sh_wait_event(h, "ready", name, WAIT_MS, NULL), 0);
    souk_msg_t ev;
    if (sh_wait_event(h, "exited", name, 8000, &ev) != 0) {
        print_message("the session actor does not exit when idle (yet): skipped\n");
        s_stop_cleanly(h);
        skip();
    }
    assert_int_equal(ev.event.code, 0);
    assert_int_equal(ev.event.signal, 0);
    souk_msg_clear(&ev);
    /* transient: a normal exit is final */
    assert_int_equal(sh_wait_event(h, "restarted", name, 1000, NULL), -1);
    assert_int_equal(s_sessions_live(h), 0);
    s_stop_cleanly(h);
}

/* A configuration error (exit 78) is not restarted in a loop: souk stops
 * and exits 78. Triggered through the sender, which exits 78 when
 * TWILIO_ACCOUNT_SID is set without TWILIO_WHATSAPP_FROM. */
static int s_setup_config_error(void **state)
{
    static const char *const env[] = { "SOUK_HEARTBEAT_MS=200",
                                       "TWILIO_ACCOUNT_SID=AC00000000000000000000000000000000",
                                       NULL };
    return s_setup_with(state, env, false);
}

static void config_error_stops_souk(void **state)
{
    sh_t *h = *state;
    assert_int_equal(sh_start(h, false), 0);
    int code = sh_wait_exit(h, WAIT_MS);
    if (code == -1) {
        print_message("the sender accepts this configuration now: skipped\n");
        skip();
    }
    assert_int_equal(code, 78);
    /* the log, not the events: souk may be gone before the subscription is */
    char *log = slurp(h->log, NULL);
    assert_non_null(log);
    assert_non_null(strstr(log, "event=actor.exited name=sender"));
    assert_non_null(strstr(log, "exit 78"));
    assert_non_null(strstr(log, "event=actor.escalated name=sender"));
    assert_null(strstr(log, "event=actor.restarted name=sender"));
    free(log);
    assert_int_equal(sh_orphans(3000), 0);
}

/* ---- shut-down ----------------------------------------------------------- */

static void shutdown_in_order(void **state)
{
    sh_t *h = *state;
    assert_int_equal(sh_spawn_session(h, "15550000041"), SOUK_OK);
    assert_int_equal(sh_wait_event(h, "ready", "s-15550000041", WAIT_MS, NULL), 0);
    assert_int_equal(sh_sync(h), 0);
    assert_int_equal(kill(h->pid, SIGTERM), 0);
    const char *order[] = { "gateway", "s-15550000041", "tool-1", "tool-0", "sender" };
    souk_msg_t ev;
    assert_int_equal(sh_wait_event(h, "stopping", "supervisor", WAIT_MS, &ev), 0);
    souk_msg_clear(&ev);
    /* each is asked to stop only once the one before has exited */
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        assert_int_equal(sh_wait_event(h, "stopping", order[i], WAIT_MS, &ev), 0);
        assert_non_null(strstr(ev.event.detail, "shutdown"));
        uint64_t asked = ev.event.ts_ms;
        souk_msg_clear(&ev);
        assert_int_equal(sh_wait_event(h, "exited", order[i], WAIT_MS, &ev), 0);
        assert_true(ev.event.ts_ms >= asked);
        souk_msg_clear(&ev);
        if (i + 1 < sizeof order / sizeof order[0]) {
            /* the next one was not asked before this exit */
            assert_int_equal(sh_wait_event(h, "stopping", order[i + 1], 0, NULL), -1);
        }
    }
    assert_int_equal(sh_wait_exit(h, WAIT_MS), 0);
    assert_int_equal(sh_orphans(3000), 0);
}

static int s_setup_long_drain(void **state)
{
    static const char *const env[] = { "SOUK_HEARTBEAT_MS=200", "SOUK_DRAIN_MS=30000", NULL };
    return s_setup_with(state, env, true);
}

static void second_signal_shortens_drain(void **state)
{
    sh_t *h = *state;
    pid_t gateway = sh_pid(h, "gateway");
    assert_int_equal(kill(gateway, SIGSTOP), 0); /* a gateway that never finishes draining */
    assert_int_equal(kill(h->pid, SIGTERM), 0);
    assert_int_equal(sh_wait_event(h, "stopping", "gateway", WAIT_MS, NULL), 0);
    assert_int_equal(sh_wait_exit(h, 500), -1); /* still draining */
    int64_t t0 = sh_now_ms();
    assert_int_equal(kill(h->pid, SIGTERM), 0);
    assert_int_equal(sh_wait_exit(h, WAIT_MS), 0);
    int64_t took = sh_now_ms() - t0;
    print_message("second SIGTERM to exit: %lld ms\n", (long long)took);
    assert_true(took < 10000);
    assert_int_equal(sh_orphans(3000), 0);
}

static void sigkill_leaves_no_orphan(void **state)
{
    sh_t *h = *state;
    assert_int_equal(sh_spawn_session(h, "15550000051"), SOUK_OK);
    assert_int_equal(sh_wait_event(h, "ready", "s-15550000051", WAIT_MS, NULL), 0);
    assert_int_equal(kill(h->pid, SIGKILL), 0);
    assert_int_equal(sh_wait_exit(h, WAIT_MS), 128 + SIGKILL);
    assert_int_equal(sh_orphans(5000), 0);
}

/* ---- readiness, status, events ------------------------------------------- */

static int s_setup_unstarted(void **state)
{
    return s_setup_with(state, s_base_env, false);
}

static void readiness_order(void **state)
{
    sh_t *h = *state;
    assert_int_equal(sh_start(h, false), 0);
    const char *order[] = { "sender", "tool-0", "tool-1", "gateway" };
    enum { N = 4 };
    /* the events that arrive come in start order (the first may be missed
     * while the subscription connects); the gateway's always arrives */
    int last = -1;
    for (;;) {
        souk_msg_t ev;
        assert_int_equal(sh_wait_event(h, "ready", NULL, WAIT_MS, &ev), 0);
        int at = -1;
        for (int i = 0; i < N; i++)
            if (!strcmp(ev.event.name, order[i]))
                at = i;
        souk_msg_clear(&ev);
        assert_true(at > last);
        last = at;
        if (at == N - 1)
            break;
    }
    /* and the status document proves each started only after the one before was ready */
    json_t *st = sh_status(h);
    for (int i = 1; i < N; i++) {
        json_t *prev = sh_actor(st, order[i - 1]), *cur = sh_actor(st, order[i]);
        assert_true(s_int(prev, "ready_at_ms") <= s_int(cur, "started_at_ms"));
    }
    assert_true(json_is_true(json_object_get(st, "ready")));
    json_decref(st);
    s_stop_cleanly(h);
}

static void status_cli_reflects_restart(void **state)
{
    sh_t *h = *state;
    char *out = NULL;
    assert_int_equal(sh_run(&out, "status", "--json", NULL), 0);
    json_t *doc = json_loads(out, 0, NULL);
    free(out);
    assert_non_null(doc);
    const char *fields[] = { "name", "role", "pid", "state", "restarts", "uptime_s", "rss_kb",
                             "last_exit" };
    size_t i;
    json_t *row;
    assert_int_equal(json_array_size(json_object_get(doc, "actors")), 4);
    json_array_foreach(json_object_get(doc, "actors"), i, row) {
        for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
            assert_non_null(json_object_get(row, fields[f]));
        assert_true(json_is_null(json_object_get(row, "last_exit")));
        assert_true(s_int(row, "rss_kb") > 0);
    }
    pid_t old = (pid_t)s_int(sh_actor(doc, "tool-0"), "pid");
    json_decref(doc);

    assert_int_equal(kill(old, SIGKILL), 0);
    assert_int_equal(sh_wait_event(h, "ready", "tool-0", WAIT_MS, NULL), 0);
    assert_int_equal(sh_run(&out, "status", "--json", NULL), 0);
    doc = json_loads(out, 0, NULL);
    free(out);
    row = sh_actor(doc, "tool-0");
    assert_non_null(row);
    assert_int_equal(s_int(row, "restarts"), 1);
    assert_string_equal(s_str(row, "last_exit"), "signal 9");
    assert_true(s_int(row, "pid") > 0 && s_int(row, "pid") != old);
    json_decref(doc);

    assert_int_equal(sh_run(&out, "status", NULL), 0);
    assert_non_null(strstr(out, "tool-0"));
    assert_non_null(strstr(out, "signal 9"));
    free(out);

    s_stop_cleanly(h);
    assert_int_equal(sh_run(&out, "status", NULL), 3); /* not running */
    free(out);
}

static void events_cli_prints_json_lines(void **state)
{
    sh_t *h = *state;
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    pid_t cli = fork();
    if (cli == 0) {
        dup2(fds[1], 1);
        execl(getenv("SOUK_BIN"), "souk", "events", "--count", "2", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    /* keep producing events until the CLI, once subscribed, has printed two */
    char buf[8192] = "";
    size_t len = 0;
    for (int64_t end = sh_now_ms() + WAIT_MS; sh_now_ms() < end;) {
        assert_int_equal(sh_sync(h), 0);
        ssize_t n = read(fds[0], buf + len, sizeof buf - 1 - len);
        if (n == 0)
            break; /* the CLI exited */
        if (n > 0)
            len += (size_t)n;
    }
    buf[len] = '\0';
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(cli, &status, 0), cli);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    int lines = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        json_t *ev = json_loads(line, 0, NULL);
        assert_non_null(ev);
        const char *keys[] = { "ts_ms", "kind", "name", "role", "pid", "code", "signal", "detail" };
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            assert_non_null(json_object_get(ev, keys[k]));
        assert_string_equal(s_str(ev, "kind"), "test.sync");
        json_decref(ev);
    }
    assert_int_equal(lines, 2);
    s_stop_cleanly(h);
}

static void events_for_each_lifecycle_change(void **state)
{
    sh_t *h = *state;
    const char *name = "s-15550000061";
    assert_int_equal(sh_spawn_session(h, "15550000061"), SOUK_OK);
    const char *kinds[] = { "started", "ready" };
    for (size_t i = 0; i < 2; i++) {
        souk_msg_t ev;
        assert_int_equal(sh_wait_event(h, kinds[i], name, WAIT_MS, &ev), 0);
        assert_string_equal(ev.event.role, "session");
        assert_true(ev.event.pid > 0);
        assert_true(ev.event.ts_ms > 0);
        souk_msg_clear(&ev);
    }
    assert_int_equal(kill(sh_pid(h, name), SIGKILL), 0);
    assert_int_equal(sh_wait_event(h, "exited", name, WAIT_MS, NULL), 0);
    assert_int_equal(sh_wait_event(h, "restarted", name, WAIT_MS, NULL), 0);
    assert_int_equal(sh_wait_event(h, "ready", name, WAIT_MS, NULL), 0);
    assert_int_equal(kill(h->pid, SIGTERM), 0);
    assert_int_equal(sh_wait_event(h, "stopping", "supervisor", WAIT_MS, NULL), 0);
    assert_int_equal(sh_wait_event(h, "stopping", name, WAIT_MS, NULL), 0);
    assert_int_equal(sh_wait_event(h, "exited", name, WAIT_MS, NULL), 0);
    assert_int_equal(sh_wait_event(h, "exited", "sender", WAIT_MS, NULL), 0);
    assert_int_equal(sh_wait_exit(h, WAIT_MS), 0);
    assert_int_equal(sh_orphans(3000), 0);
}

/* ---- systemd notify ------------------------------------------------------ */

static int s_bind_notify(const char *path, bool abstract)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    size_t len = strlen(path);
    memcpy(a.sun_path, path, len);
    if (abstract)
        a.sun_path[0] = '\0';
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + !abstract);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, alen) < 0)
        return -1;
    struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Waits for a datagram holding the line `want`. */
static bool s_notified(int fd, const char *want, int timeout_ms)
{
    for (int64_t end = sh_now_ms() + timeout_ms; sh_now_ms() < end;) {
        char buf[1024];
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
            if (!strcmp(line, want))
                return true;
    }
    return false;
}

static void s_notify_protocol(void **state, bool abstract)
{
    sh_t *h = *state;
    char path[96], env[128];
    if (abstract)
        snprintf(path, sizeof path, "@souk-test-%d", (int)getpid());
    else
        snprintf(path, sizeof path, "%s/notify", h->dir);
    int fd = s_bind_notify(path, abstract);
    assert_true(fd >= 0);
    snprintf(env, sizeof env, "%s", path);
    setenv("NOTIFY_SOCKET", env, 1);
    setenv("WATCHDOG_USEC", "200000", 1);
    assert_int_equal(sh_start(h, false), 0);
    assert_true(s_notified(fd, "READY=1", WAIT_MS));
    assert_true(s_notified(fd, "WATCHDOG=1", 2000));
    assert_true(s_notified(fd, "WATCHDOG=1", 2000));
    assert_int_equal(kill(h->pid, SIGTERM), 0);
    assert_true(s_notified(fd, "STOPPING=1", WAIT_MS));
    assert_int_equal(sh_wait_exit(h, WAIT_MS), 0);
    assert_int_equal(sh_orphans(3000), 0);
    close(fd);
}

static void notify_path(void **state)
{
    s_notify_protocol(state, false);
}

static void notify_abstract(void **state)
{
    s_notify_protocol(state, true);
}

/* ---- descriptors and exclusivity ----------------------------------------- */

static void actors_inherit_no_descriptor(void **state)
{
    sh_t *h = *state;
    int leak[2];
    assert_int_equal(pipe(leak), 0); /* not close-on-exec: souk serve inherits it */
    assert_int_equal(sh_start(h, true), 0);
    char pipe_name[64], lock[96];
    struct stat st;
    assert_int_equal(fstat(leak[0], &st), 0);
    snprintf(pipe_name, sizeof pipe_name, "pipe:[%lu]", (unsigned long)st.st_ino);
    snprintf(lock, sizeof lock, "%s/run/supervisor.lock", h->dir);
    assert_true(proc_has_fd_to(h->pid, pipe_name));
    assert_true(proc_has_fd_to(h->pid, lock));
    const char *names[] = { "sender", "tool-0", "tool-1", "gateway" };
    for (size_t i = 0; i < 4; i++) {
        pid_t pid = sh_pid(h, names[i]);
        assert_true(pid > 0);
        assert_false(proc_has_fd_to(pid, pipe_name));
        assert_false(proc_has_fd_to(pid, lock));
    }
    /* and every descriptor of the supervisor is close-on-exec */
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fdinfo", (int)h->pid);
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));) {
        if (atoi(e->d_name) <= 2)
            continue;
        char path[340], line[128];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        unsigned long flags = 0;
        while (f && fgets(line, sizeof line, f))
            sscanf(line, "flags: %lo", &flags);
        if (f)
            fclose(f);
        assert_true(flags & O_CLOEXEC);
    }
    closedir(d);
    close(leak[0]);
    close(leak[1]);
    s_stop_cleanly(h);
}

static void second_instance_refused(void **state)
{
    sh_t *h = *state;
    char *out = NULL;
    assert_int_equal(sh_run(&out, "serve", NULL), 1);
    free(out);
    json_t *st = sh_status(h); /* the first one is untouched */
    assert_non_null(st);
    assert_true(json_is_true(json_object_get(st, "ready")));
    json_decref(st);
    s_stop_cleanly(h);
}

/* ---- runner -------------------------------------------------------------- */

#define T(fn, setup) cmocka_unit_test_setup_teardown(fn, setup, s_teardown)

int main(int argc, char **argv)
{
    /* orphans of souk are re-parented to us, where they can be counted */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        T(restart_gateway, s_setup),
        T(restart_tool, s_setup),
        T(restart_sender, s_setup),
        T(kill_command, s_setup),
        T(backoff_growth, s_setup_backoff),
        T(intensity_escalates, s_setup_escalate),
        T(config_error_stops_souk, s_setup_config_error),
        T(hung_actor_replaced, s_setup_fast_heartbeat),
        T(sessions_dedupe_and_cap, s_setup_cap2),
        T(sessions_refused_at_cap, s_setup_cap1),
        T(session_crash_quarantine, s_setup_quarantine),
        T(session_idle_exit, s_setup_idle),
        T(shutdown_in_order, s_setup),
        T(second_signal_shortens_drain, s_setup_long_drain),
        T(sigkill_leaves_no_orphan, s_setup),
        T(readiness_order, s_setup_unstarted),
        T(status_cli_reflects_restart, s_setup),
        T(events_cli_prints_json_lines, s_setup),
        T(events_for_each_lifecycle_change, s_setup),
        T(notify_path, s_setup_unstarted),
        T(notify_abstract, s_setup_unstarted),
        T(actors_inherit_no_descriptor, s_setup_unstarted),
        T(second_instance_refused, s_setup),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
