/* Conv2d micro-benchmark: milliseconds and GFLOP/s of eqr_conv2d forward and
 * backward (dX and dW) on a few layer shapes.
 *
 *   bench_conv [--threads T] [--blas-threads B] [--reps R] [--shape I]
 *
 * --threads sets the context's threads: with T > 1 images are spread over T
 * OpenMP threads and the first such conv makes OpenBLAS single-threaded for
 * the process. --blas-threads calls openblas_set_num_threads first (default:
 * OpenBLAS's own setting, OPENBLAS_NUM_THREADS or all cores); it matters for
 * --threads 1, where each per-image GEMM may use BLAS threads.
 * FLOPs count 2 per multiply-add: forward 2*N*O*OH*OW*C*kh*kw, backward twice
 * that. Times are the median and the best over the repetitions after one
 * warm-up; on a shared machine the best is the steadier figure. */
#define _POSIX_C_SOURCE 200809L
#include <equirelax/equirelax.h>

#include <cblas.h>
#include "bench_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct shape {
    const char *name;
    int N, C, H, W, O, k, stride, pad;
} shape;

static const shape SHAPES[] = {
    {"3x3 32->64 on [64,32,14,14] pad 1", 64, 32, 14, 14, 64, 3, 1, 1},
    {"5x5 1->16 on [64,1,28,28] pad 2", 64, 1, 28, 28, 16, 5, 1, 2},
    {"3x3 16->32 on [64,16,28,28] pad 1", 64, 16, 28, 28, 32, 3, 1, 1},
    {"3x3 64->64 on [64,64,7,7] pad 1", 64, 64, 7, 7, 64, 3, 1, 1},
    {"1x1 64->128 on [64,64,14,14]", 64, 64, 14, 14, 128, 1, 1, 0},
    {"3x3 32->64 on [1,32,14,14] pad 1", 1, 32, 14, 14, 64, 3, 1, 1},
};
#define NSHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int run(const shape *s, int threads, int reps, double fwd_ms[2], double bwd_ms[2]) {
    eqr_ctx *ctx = eqr_ctx_create(&(eqr_ctx_opts){.seed = 1, .threads = threads});
    if (!ctx) return 1;
    int64_t xs[4] = {s->N, s->C, s->H, s->W}, ws[4] = {s->O, s->C, s->k, s->k}, bs[1] = {s->O};
    /* x is a parameter so that backward computes dX, as for a hidden layer */
    eqr_tensor *x = eqr_param_create(ctx, "x", 4, xs, 0);
    eqr_tensor *w = eqr_param_create(ctx, "w", 4, ws, 0);
    eqr_tensor *b = eqr_param_create(ctx, "b", 1, bs, 0);
    if (!x || !w || !b) goto fail;
    eqr_tensor_normal(x, eqr_ctx_rng(ctx), 1.0f);
    eqr_param_init_kaiming_normal(ctx, w, 1.414f);
    eqr_conv2d_geom g = EQR_CONV2D(s->stride, s->pad, 1);
    double *tf = malloc(sizeof(double) * (size_t)reps), *tb = malloc(sizeof(double) * (size_t)reps);
    if (!tf || !tb) {
        free(tf);
        free(tb);
        goto fail;
    }
    for (int r = -1; r < reps; r++) { /* r = -1 is the warm-up */
        double t0 = now_ms();
        eqr_tensor *y = eqr_conv2d(ctx, x, w, b, &g);
        double t1 = now_ms();
        eqr_tensor *seed = y ? eqr_tensor_from(ctx, 4, y->shape, NULL) : NULL;
        if (!seed) break;
        eqr_tensor_fill(seed, 1e-3f);
        double t2 = now_ms();
        eqr_backward_from(ctx, y, seed);
        double t3 = now_ms();
        eqr_step_reset(ctx);
        if (r >= 0) {
            tf[r] = t1 - t0;
            tb[r] = t3 - t2;
        }
    }
    if (eqr_error_status(ctx) == EQR_OK) {
        qsort(tf, (size_t)reps, sizeof(double), bench_cmp_double);
        qsort(tb, (size_t)reps, sizeof(double), bench_cmp_double);
        fwd_ms[0] = tf[reps / 2];
        fwd_ms[1] = tf[0];
        bwd_ms[0] = tb[reps / 2];
        bwd_ms[1] = tb[0];
    }
    free(tf);
    free(tb);
fail:
    if (eqr_error_status(ctx) != EQR_OK) {
        fprintf(stderr, "bench_conv: %s\n", eqr_error_message(ctx));
        eqr_ctx_destroy(ctx);
        return 1;
    }
    eqr_ctx_destroy(ctx);
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: bench_conv [--threads T] [--blas-threads B] [--reps R] [--shape I]\n");
    for (int i = 0; i < NSHAPES; i++) fprintf(stderr, "  shape %d: %s\n", i, SHAPES[i].name);
}

int main(int argc, char **argv) {
    int threads = 1, blas = 0, reps = 20, only = -1;
    for (int i = 1; i < argc; i++) {
        int *dst = NULL;
        if (!strcmp(argv[i], "--threads")) dst = &threads;
        else if (!strcmp(argv[i], "--blas-threads")) dst = &blas;
        else if (!strcmp(argv[i], "--reps")) dst = &reps;
        else if (!strcmp(argv[i], "--shape")) dst = &only;
        if (!dst || i + 1 >= argc) {
            usage();
            return 2;
        }
        *dst = atoi(argv[++i]);
    }
    if (threads < 1 || reps < 1 || blas < 0 || only >= NSHAPES) {
        usage();
        return 2;
    }
    if (blas > 0) openblas_set_num_threads(blas);
    printf("context threads %d, OpenBLAS threads %d at start, core %s\n", threads,
           openblas_get_num_threads(), openblas_get_corename());
    printf("%-36s %17s %15s %17s %15s\n", "shape", "fwd ms med/best", "GFLOP/s med/best",
           "bwd ms med/best", "GFLOP/s med/best");
    for (int i = 0; i < NSHAPES; i++) {
        if (only >= 0 && i != only) continue;
        const shape *s = &SHAPES[i];
        int OH = (s->H + 2 * s->pad - s->k) / s->stride + 1;
        int OW = (s->W + 2 * s->pad - s->k) / s->stride + 1;
        double flops = 2.0 * s->N * s->O * OH * OW * (double)s->C * s->k * s->k;
        double f[2] = {0, 0}, b[2] = {0, 0};
        if (run(s, threads, reps, f, b)) return 1;
        printf("%-36s %8.3f %8.3f %7.1f %7.1f %8.3f %8.3f %7.1f %7.1f\n", s->name, f[0], f[1],
               flops / (f[0] * 1e6), flops / (f[1] * 1e6), b[0], b[1], 2 * flops / (b[0] * 1e6),
               2 * flops / (b[1] * 1e6));
    }
    return 0;
}
