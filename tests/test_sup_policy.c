/* The supervisor's restart arithmetic and tree, without processes. */
#include "../supervisor/supervisor.h"

#include "souk/error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static souk_config_t s_cfg(void)
{
    souk_config_t cfg = { 0 };
    cfg.tools = 3;
    cfg.sessions_max = 7;
    cfg.heartbeat_ms = 1000;
    cfg.drain_ms = 5000;
    cfg.restart_max = 5;
    cfg.restart_window_s = 10;
    cfg.quarantine_crashes = 3;
    cfg.quarantine_s = 600;
    return cfg;
}

static void tree_order_and_types(void **state)
{
    (void)state;
    souk_config_t cfg = s_cfg();
    sup_tree_t t;
    sup_tree_init(&t, &cfg);
    const char *names[] = { "sender", "tool-0", "tool-1", "tool-2", "s-", "gateway" };
    assert_int_equal(t.nspecs, 6);
    for (size_t i = 0; i < t.nspecs; i++)
        assert_string_equal(t.specs[i].name, names[i]);
    assert_string_equal(t.specs[2].role, "tool");
    assert_string_equal(t.specs[2].arg, "1");
    assert_int_equal(t.specs[0].restart, SUP_PERMANENT);
    assert_int_equal(t.specs[5].restart, SUP_PERMANENT);
    const sup_spec_t *group = sup_tree_group(&t);
    assert_ptr_equal(group, &t.specs[4]);
    assert_true(group->group);
    assert_int_equal(group->restart, SUP_TRANSIENT);
    assert_string_equal(group->role, "session");
    assert_string_equal(group->tunables, SUP_SESSION_TUNABLES);
    assert_null(t.specs[0].tunables);
    assert_null(t.specs[5].tunables);
    assert_int_equal(t.specs[5].shutdown_ms, 6000); /* the gateway gets the whole drain */
    assert_int_equal(t.sessions_max, 7);
    assert_int_equal(t.hung_after_ms, 3000);
    assert_int_equal(t.intensity_max, 5);
    assert_int_equal(t.intensity_window_ms, 10000);
}

/* The value of GLIBC_TUNABLES in `env`, or NULL; fails if it is there twice. */
static const char *s_tunables(char **env)
{
    const char *found = NULL;
    for (; *env; env++)
        if (!strncmp(*env, "GLIBC_TUNABLES=", 15)) {
            assert_null(found);
            found = *env + 15;
        }
    return found;
}

static void env_tunables_merged(void **state)
{
    (void)state;
    char *plain[] = { "PATH=/usr/bin", "HOME=/root", NULL };
    char **e = sup_env_tuned(plain, "glibc.malloc.tcache_count=0");
    assert_non_null(e);
    assert_string_equal(e[0], "PATH=/usr/bin");
    assert_string_equal(e[1], "HOME=/root");
    assert_string_equal(s_tunables(e), "glibc.malloc.tcache_count=0");
    assert_null(e[3]);
    free(e);

    /* the operator's tunables stay, ours is added */
    char *theirs[] = { "GLIBC_TUNABLES=glibc.malloc.arena_max=2", "A=1", NULL };
    e = sup_env_tuned(theirs, "glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0");
    assert_string_equal(s_tunables(e),
                        "glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0");
    assert_string_equal(e[0], "A=1");
    free(e);

    /* ... and where they set the same tunable, their value wins: a prefix
     * of another name is not the same tunable */
    char *same[] = { "GLIBC_TUNABLES=glibc.malloc.tcache_count=7:glibc.malloc.tcache",
                     NULL };
    e = sup_env_tuned(same, "glibc.malloc.tcache_count=0:glibc.malloc.tcache_max=0");
    assert_string_equal(s_tunables(e),
                        "glibc.malloc.tcache_count=7:glibc.malloc.tcache:glibc.malloc.tcache_max=0");
    free(e);

    char *empty[] = { "GLIBC_TUNABLES=", NULL };
    e = sup_env_tuned(empty, "glibc.malloc.tcache_count=0");
    assert_string_equal(s_tunables(e), "glibc.malloc.tcache_count=0");
    free(e);
}

static void backoff_doubles_to_cap(void **state)
{
    (void)state;
    souk_config_t cfg = s_cfg();
    sup_tree_t t;
    sup_tree_init(&t, &cfg);
    int64_t d = 0;
    const int64_t want[] = { 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5000, 5000 };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        d = sup_backoff_next(&t, d);
        assert_int_equal(d, want[i]);
    }
}

static void window_counts_recent(void **state)
{
    (void)state;
    sup_window_t w;
    assert_int_equal(sup_window_init(&w, 2), SOUK_OK);
    assert_int_equal(sup_window_count(&w, 0, 10000), 0);
    assert_int_equal(sup_window_add(&w, 1000, 10000), 1);
    assert_int_equal(sup_window_add(&w, 2000, 10000), 2);
    assert_int_equal(sup_window_add(&w, 3000, 10000), 3);
    assert_int_equal(sup_window_add(&w, 4000, 10000), 3); /* holds max + 1 */
    assert_int_equal(sup_window_add(&w, 13500, 10000), 2); /* 1000..3000 fell out */
    assert_int_equal(sup_window_count(&w, 40000, 10000), 0);
    sup_window_clear(&w);
}

static void exit_verdicts(void **state)
{
    (void)state;
    assert_int_equal(sup_exit_verdict(SUP_PERMANENT, 0, 0, false), SUP_EXIT_RESTART);
    assert_int_equal(sup_exit_verdict(SUP_PERMANENT, 1, 0, false), SUP_EXIT_RESTART);
    assert_int_equal(sup_exit_verdict(SUP_PERMANENT, 0, 9, true), SUP_EXIT_FINAL);
    assert_int_equal(sup_exit_verdict(SUP_TRANSIENT, 0, 0, false), SUP_EXIT_FINAL);
    assert_int_equal(sup_exit_verdict(SUP_TRANSIENT, 2, 0, false), SUP_EXIT_RESTART);
    assert_int_equal(sup_exit_verdict(SUP_TRANSIENT, 0, 11, false), SUP_EXIT_RESTART);
    assert_int_equal(sup_exit_verdict(SUP_TEMPORARY, 1, 0, false), SUP_EXIT_FINAL);
    assert_int_equal(sup_exit_verdict(SUP_PERMANENT, SOUK_EXIT_CONFIG, 0, false), SUP_EXIT_CONFIG);
    assert_int_equal(sup_exit_verdict(SUP_TRANSIENT, SOUK_EXIT_CONFIG, 0, false), SUP_EXIT_CONFIG);
    assert_int_equal(sup_exit_verdict(SUP_PERMANENT, SOUK_EXIT_CONFIG, 0, true), SUP_EXIT_FINAL);
    char text[32];
    assert_string_equal(sup_exit_text(0, 9, text, sizeof text), "signal 9");
    assert_string_equal(sup_exit_text(78, 0, text, sizeof text), "exit 78");
}

static void phone_numbers_masked(void **state)
{
    (void)state;
    char out[80];
    assert_string_equal(sup_mask_waid("15550100200", out, sizeof out), "155******00");
    assert_string_equal(sup_mask_name("s-15550100200", out, sizeof out), "s-155******00");
    assert_string_equal(sup_mask_name("gateway", out, sizeof out), "gateway");
    assert_string_equal(sup_mask_waid("1234", out, sizeof out), "***");
    assert_true(sup_waid_valid("15550100200"));
    assert_false(sup_waid_valid(""));
    assert_false(sup_waid_valid("1555 0100"));
    assert_false(sup_waid_valid("../etc"));
    assert_false(sup_waid_valid("1234567890123456789012345678901234567890123456789"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tree_order_and_types),
        cmocka_unit_test(env_tunables_merged),
        cmocka_unit_test(backoff_doubles_to_cap),
        cmocka_unit_test(window_counts_recent),
        cmocka_unit_test(exit_verdicts),
        cmocka_unit_test(phone_numbers_masked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
