/* What one GET /metrics costs the supervisor: the fragments of N live
 * actors (a session's registry after some traffic, by default 5,000 of
 * them — SOUK_SESSIONS_MAX) added up and rendered, as sup_metrics_render
 * does. Usage: bench_metrics [N [ROUNDS]]. Prints the median and the worst
 * round in milliseconds, and the sizes. */
#include "bench.h"
#include "souk/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 5000;
    int rounds = argc > 2 ? atoi(argv[2]) : 20;
    /* a session that answered a few messages inline and one later */
    souk_metric_observe("souk_reply_duration_seconds", "path=\"inline\"", 0.04);
    souk_metric_observe("souk_reply_duration_seconds", "path=\"inline\"", 0.3);
    souk_metric_observe("souk_reply_duration_seconds", "path=\"later\"", 4.2);
    souk_metric_add("souk_dedupe_hits_total", "where=\"store\"", 1);
    char *fragment = souk_metrics_render();
    double *t = calloc((size_t)rounds, sizeof *t);
    size_t out_len = 0;
    for (int r = 0; r < rounds; r++) {
        double start = bench_ms();
        souk_metrics_merge_t *m = souk_metrics_merge_new();
        for (int i = 0; i < n; i++)
            souk_metrics_merge_add(m, fragment, false);
        char *text = souk_metrics_merge_render(m);
        out_len = strlen(text);
        free(text);
        souk_metrics_merge_destroy(&m);
        t[r] = bench_ms() - start;
    }
    qsort(t, (size_t)rounds, sizeof *t, bench_cmp_double);
    printf("actors=%d fragment_bytes=%zu exposition_bytes=%zu scrape_ms_p50=%.2f scrape_ms_max=%.2f\n",
           n, strlen(fragment), out_len, t[rounds / 2], t[rounds - 1]);
    free(t);
    free(fragment);
    souk_metrics_reset();
    return 0;
}
