/* Timing helpers shared by the benchmark programs (header only). */
#ifndef EQR_BENCH_UTIL_H
#define EQR_BENCH_UTIL_H

#include <time.h>

/* Monotonic wall-clock time in seconds. */
static inline double bench_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* qsort comparator for doubles, ascending (medians of timed reps). */
static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
