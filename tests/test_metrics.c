/* The metrics library (souk/metrics.h) in process: the registry refuses
 * what the table does not declare, renders samples that parse back, and the
 * merge adds fragments up by series, keeps retired counters but not gauges,
 * and renders a well-ordered exposition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "souk/error.h"
#include "souk/metrics.h"

static int s_reset(void **state)
{
    (void)state;
    souk_metrics_reset();
    return 0;
}

static void registry_refuses_undeclared(void **state)
{
    (void)state;
    assert_int_equal(souk_metric_add("souk_no_such_total", "", 1), SOUK_EINVAL);
    /* the wrong kind for the family */
    assert_int_equal(souk_metric_set("souk_webhook_requests_total", "", 1), SOUK_EINVAL);
    assert_int_equal(souk_metric_add("souk_sessions_live", "", 1), SOUK_EINVAL);
    assert_int_equal(souk_metric_add("souk_webhook_requests_total", "", -1), SOUK_EINVAL);
    assert_int_equal(souk_metric_add("souk_webhook_requests_total", "a=\"1\"\n", 1), SOUK_EINVAL);
    char *text = souk_metrics_render();
    assert_string_equal(text, "");
    free(text);
}

static void registry_renders_samples(void **state)
{
    (void)state;
    assert_int_equal(souk_metric_add("souk_webhook_requests_total", "route=\"/x\",status=\"200\"", 1), 0);
    assert_int_equal(souk_metric_add("souk_webhook_requests_total", "route=\"/x\",status=\"200\"", 2), 0);
    assert_int_equal(souk_metric_set("souk_sessions_live", "", 7), 0);
    assert_int_equal(souk_metric_observe("souk_send_duration_seconds", "channel=\"twilio\"", 0.2), 0);
    assert_int_equal(souk_metric_observe("souk_send_duration_seconds", "channel=\"twilio\"", 20), 0);
    char *text = souk_metrics_render();
    assert_non_null(strstr(text, "souk_webhook_requests_total{route=\"/x\",status=\"200\"} 3\n"));
    assert_non_null(strstr(text, "souk_sessions_live 7\n"));
    assert_non_null(strstr(text, "souk_send_duration_seconds_bucket{channel=\"twilio\",le=\"0.1\"} 0\n"));
    assert_non_null(strstr(text, "souk_send_duration_seconds_bucket{channel=\"twilio\",le=\"0.25\"} 1\n"));
    assert_non_null(strstr(text, "souk_send_duration_seconds_bucket{channel=\"twilio\",le=\"15\"} 1\n"));
    assert_non_null(strstr(text, "souk_send_duration_seconds_bucket{channel=\"twilio\",le=\"30\"} 2\n"));
    assert_non_null(strstr(text, "souk_send_duration_seconds_bucket{channel=\"twilio\",le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(text, "souk_send_duration_seconds_sum{channel=\"twilio\"} 20.2\n"));
    assert_non_null(strstr(text, "souk_send_duration_seconds_count{channel=\"twilio\"} 2\n"));
    free(text);
}

/* Two processes' fragments, one of which exited: its counters stay in the
 * total, its gauge does not. */
static void merge_keeps_retired_counters(void **state)
{
    (void)state;
    souk_metric_add("souk_dedupe_hits_total", "where=\"gateway\"", 4);
    souk_metric_set("souk_actor_queue_depth", "role=\"gateway\"", 9);
    souk_metric_observe("souk_webhook_duration_seconds", "", 0.003);
    char *old = souk_metrics_render();
    souk_metrics_reset(); /* the restarted process */
    souk_metric_add("souk_dedupe_hits_total", "where=\"gateway\"", 1);
    souk_metric_set("souk_actor_queue_depth", "role=\"gateway\"", 2);
    souk_metric_observe("souk_webhook_duration_seconds", "", 2);
    char *now = souk_metrics_render();

    souk_metrics_merge_t *retired = souk_metrics_merge_new();
    assert_true(souk_metrics_merge_add(retired, old, true) > 0);
    souk_metrics_merge_t *m = souk_metrics_merge_new();
    souk_metrics_merge_fold(m, retired, false);
    souk_metrics_merge_add(m, now, false);
    assert_true(souk_metrics_merge_get(m, "souk_dedupe_hits_total{where=\"gateway\"}") == 5);
    assert_true(souk_metrics_merge_get(m, "souk_actor_queue_depth{role=\"gateway\"}") == 2);
    assert_true(souk_metrics_merge_get(m, "souk_webhook_duration_seconds_count") == 2);
    assert_true(souk_metrics_merge_get(m, "souk_webhook_duration_seconds_bucket{le=\"0.005\"}") == 1);
    assert_true(souk_metrics_merge_get(m, "souk_webhook_duration_seconds_bucket{le=\"+Inf\"}") == 2);

    char *text = souk_metrics_merge_render(m);
    assert_non_null(text);
    /* families in table order with HELP and TYPE; one without samples is zero */
    const char *help = strstr(text, "# HELP souk_webhook_requests_total ");
    const char *type = strstr(text, "# TYPE souk_webhook_requests_total counter\n");
    assert_true(help && type && help < type);
    assert_non_null(strstr(text, "\nsouk_webhook_requests_total 0\n"));
    assert_non_null(strstr(text, "\nsouk_llm_tokens_total 0\n"));
    assert_true(strstr(text, "# TYPE souk_webhook_requests_total") < strstr(text, "# TYPE souk_dedupe_hits_total"));
    /* buckets in ascending order of their bound, then _sum and _count */
    const char *b5ms = strstr(text, "souk_webhook_duration_seconds_bucket{le=\"0.005\"} 1\n");
    const char *b1 = strstr(text, "souk_webhook_duration_seconds_bucket{le=\"1\"} 1\n");
    const char *b25 = strstr(text, "souk_webhook_duration_seconds_bucket{le=\"2.5\"} 2\n");
    const char *inf = strstr(text, "souk_webhook_duration_seconds_bucket{le=\"+Inf\"} 2\n");
    const char *sum = strstr(text, "souk_webhook_duration_seconds_sum 2.003\n");
    const char *count = strstr(text, "souk_webhook_duration_seconds_count 2\n");
    assert_true(b5ms && b1 && b25 && inf && sum && count);
    assert_true(b5ms < b1 && b1 < b25 && b25 < inf && inf < sum && sum < count);
    free(text);
    free(old);
    free(now);
    souk_metrics_merge_destroy(&retired);
    souk_metrics_merge_destroy(&m);
    assert_null(m);
}

static void merge_skips_garbage_keeps_unknown(void **state)
{
    (void)state;
    souk_metrics_merge_t *m = souk_metrics_merge_new();
    char *empty = souk_metrics_merge_render(m); /* every family at zero */
    assert_non_null(strstr(empty, "\nsouk_sessions_live 0\n"));
    free(empty);
    int n = souk_metrics_merge_add(m, "no value\n# comment 1\nsouk_x_total{a=\"b\"} 3\n"
                                      "souk_sessions_live nan\nbad line here x\n\n"
                                      "souk_actor_restarts_total{role=\"tool\"} 2", false);
    assert_int_equal(n, 2);
    char *text = souk_metrics_merge_render(m);
    assert_non_null(strstr(text, "souk_actor_restarts_total{role=\"tool\"} 2\n"));
    assert_non_null(strstr(text, "# TYPE souk_x_total untyped\nsouk_x_total{a=\"b\"} 3\n"));
    free(text);
    souk_metrics_merge_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(registry_refuses_undeclared, s_reset),
        cmocka_unit_test_setup(registry_renders_samples, s_reset),
        cmocka_unit_test_setup(merge_keeps_retired_counters, s_reset),
        cmocka_unit_test_setup(merge_skips_garbage_keeps_unknown, s_reset),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    souk_metrics_reset();
    return rc;
}
