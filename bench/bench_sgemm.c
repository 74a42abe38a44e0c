/* Large-sgemm reference: the GFLOP/s OpenBLAS reaches on a big square
 * single-precision GEMM, the ceiling the conv benchmarks are compared with.
 *
 *   bench_sgemm [--threads T] [--n N] [--reps R]
 *
 * C [N,N] = A [N,N] B [N,N] with T OpenBLAS threads (default 1, N 2048,
 * R 10). Prints the median and the best over R timed calls after one
 * warm-up:
 *   sgemm threads=T n=N gflops_median=X gflops_best=Y core=NAME */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include "bench_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(void) {
    fprintf(stderr, "usage: bench_sgemm [--threads T] [--n N] [--reps R]\n");
}

int main(int argc, char **argv) {
    int threads = 1, n = 2048, reps = 10;
    for (int i = 1; i < argc; i++) {
        int *dst = NULL;
        if (!strcmp(argv[i], "--threads")) dst = &threads;
        else if (!strcmp(argv[i], "--n")) dst = &n;
        else if (!strcmp(argv[i], "--reps")) dst = &reps;
        if (!dst || i + 1 >= argc) {
            usage();
            return 2;
        }
        *dst = atoi(argv[++i]);
    }
    if (threads < 1 || n < 16 || n > 16384 || reps < 1) {
        usage();
        return 2;
    }
    openblas_set_num_threads(threads);
    size_t nn = (size_t)n * n;
    float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    double *t = malloc((size_t)reps * sizeof *t);
    if (!a || !b || !c || !t) {
        fprintf(stderr, "bench_sgemm: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < nn; i++) {
        a[i] = (float)((i * 7) % 13) * 0.01f - 0.06f;
        b[i] = (float)((i * 5) % 11) * 0.01f - 0.05f;
    }
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        double t0 = bench_now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                    c, n);
        if (r >= 0) t[r] = bench_now_s() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, bench_cmp_double);
    const double flops = 2.0 * n * (double)n * n;
    printf("sgemm threads=%d n=%d gflops_median=%.1f gflops_best=%.1f core=%s\n", threads, n,
           flops / t[reps / 2] * 1e-9, flops / t[0] * 1e-9, openblas_get_corename());
    free(a);
    free(b);
    free(c);
    free(t);
    return 0;
}
