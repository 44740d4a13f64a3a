/* What the benchmarks in bench/ share: a monotonic clock, and the comparison
 * qsort needs to sort timings for medians and percentiles. Header-only. */
#ifndef SOUK_BENCH_H
#define SOUK_BENCH_H

#include <time.h>

/* CLOCK_MONOTONIC, in seconds. */
static inline double bench_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CLOCK_MONOTONIC, in milliseconds. */
static inline double bench_ms(void)
{
    return bench_seconds() * 1e3;
}

/* Ascending doubles, for qsort. */
static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#endif
