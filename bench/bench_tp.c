/* Tensor-product throughput: forward + backward of the public layer as a
 * user runs it (eqr_tp_forward with internal weights, a sum, eqr_backward
 * for x1, x2 and the weights), for SEGNN's shapes and for lmax 2 and 3.
 *
 *   bench_tp [--threads T] [--n N] [--reps R] [--shape segnn|lmax2|lmax3]
 *
 * Shapes (the irreps strings are what eqr_tp_create gets; every allowed
 * l1 x l2 -> l3 path whose output irrep is listed):
 *   segnn: 32x0e+32x1o x 1x0e+1x1o -> 32x0e+32x1o
 *   lmax2: 32x0e+32x1o+32x2e x 1x0e+1x1o+1x2e -> same as x1
 *   lmax3: 32x0e+32x1o+32x2e+32x3o x 1x0e+1x1o+1x2e+1x3o -> same as x1
 * N (default 2000) samples (edges), internal (shared) weights, as the
 * PyTorch peer of bench/compare_tp.sh. FLOPs counted as for dense coupling
 * tensors, per path forward 2 N (m2 d2 d1 d3 + d3 m1 m2 d1 + d3 m1 m2 m3)
 * and forward + backward 3x that (the real CG tables are sparse, so this
 * overstates the work of the small contractions a little). Each rep resets
 * the step (as a training loop does). Prints one line per shape, with the
 * median wall time and the median process CPU time of a rep (the latter
 * does not count time the process waits for a core on a loaded machine;
 * with T > 1 it sums the threads):
 *   tp shape=S n=N paths=P threads=T ms_fwd_bwd=X gflops=Y cpu_ms_fwd_bwd=Z */
#define _POSIX_C_SOURCE 200809L
#include "equirelax/equirelax.h"

#include "bench_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double flops_of(const eqr_irreps *a, const eqr_irreps *b, const eqr_irreps *c) {
    double f = 0;
    for (int ic = 0; ic < c->n; ic++)
        for (int ia = 0; ia < a->n; ia++)
            for (int ib = 0; ib < b->n; ib++) {
                const eqr_irrep_entry A = a->e[ia], B = b->e[ib], O = c->e[ic];
                const int lo = A.l > B.l ? A.l - B.l : B.l - A.l;
                if (A.p * B.p != O.p || O.l < lo || O.l > A.l + B.l) continue;
                const double d1 = 2 * A.l + 1, d2 = 2 * B.l + 1, d3 = 2 * O.l + 1;
                f += 2.0 * (B.mul * d2 * d1 * d3 + d3 * A.mul * B.mul * d1 +
                            d3 * A.mul * B.mul * O.mul);
            }
    return f;
}

/* CPU time of the process (all its threads), in seconds. */
static double cpu_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int fail(eqr_ctx *ctx) {
    fprintf(stderr, "bench_tp: %s\n", eqr_error_message(ctx));
    return 1;
}

int main(int argc, char **argv) {
    int threads = 1, n = 2000, reps = 20;
    const char *only = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--n")) n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--shape")) only = argv[i + 1];
        else {
            fprintf(stderr, "usage: bench_tp [--threads T] [--n N] [--reps R] [--shape S]\n");
            return 2;
        }
    }
    if (n < 1 || reps < 1 || threads < 1) {
        fprintf(stderr, "bench_tp: --n, --reps and --threads must be >= 1\n");
        return 2;
    }
    static const char *names[3] = {"segnn", "lmax2", "lmax3"};
    static const char *s1[3] = {"32x0e+32x1o", "32x0e+32x1o+32x2e", "32x0e+32x1o+32x2e+32x3o"};
    static const char *s2[3] = {"1x0e+1x1o", "1x0e+1x1o+1x2e", "1x0e+1x1o+1x2e+1x3o"};
    for (int s = 0; s < 3; s++) {
        if (only && strcmp(only, names[s])) continue;
        eqr_ctx_opts o = {0};
        o.seed = 1;
        o.threads = threads;
        eqr_ctx *ctx = eqr_ctx_create(&o);
        if (!ctx) {
            fprintf(stderr, "bench_tp: no context\n");
            return 1;
        }
        eqr_irreps a, b;
        eqr_tp *tp = NULL;
        if (eqr_irreps_parse(ctx, s1[s], &a) != EQR_OK || eqr_irreps_parse(ctx, s2[s], &b) != EQR_OK ||
            eqr_tp_create(ctx, "tp", &a, &b, &a, 1, &tp) != EQR_OK)
            return fail(ctx);
        const int64_t sh1[2] = {n, eqr_irreps_dim(&a)}, sh2[2] = {n, eqr_irreps_dim(&b)};
        eqr_tensor *x1 = eqr_param_create(ctx, "x1", 2, sh1, 0);
        eqr_tensor *x2 = eqr_param_create(ctx, "x2", 2, sh2, 0);
        if (!x1 || !x2) return fail(ctx);
        eqr_tensor_normal(x1, eqr_ctx_rng(ctx), 1.0f);
        eqr_tensor_normal(x2, eqr_ctx_rng(ctx), 1.0f);
        double *t = malloc(sizeof(double) * (size_t)(reps + 1));
        double *tc = malloc(sizeof(double) * (size_t)(reps + 1));
        if (!t || !tc) return 1;
        for (int r = 0; r <= reps; r++) {
            eqr_step_reset(ctx);
            const double t0 = bench_now_s(), c0 = cpu_now_s();
            eqr_tensor *y = eqr_tp_forward(ctx, tp, x1, x2, NULL);
            eqr_tensor *loss = eqr_sum_all(ctx, y);
            if (!loss || eqr_backward(ctx, loss) != EQR_OK) return fail(ctx);
            t[r] = bench_now_s() - t0;
            tc[r] = cpu_now_s() - c0;
        }
        qsort(t + 1, (size_t)reps, sizeof(double), bench_cmp_double);
        qsort(tc + 1, (size_t)reps, sizeof(double), bench_cmp_double);
        const double med = t[1 + reps / 2];
        printf("tp shape=%s n=%d paths=%d threads=%d ms_fwd_bwd=%.3f gflops=%.2f "
               "cpu_ms_fwd_bwd=%.3f\n",
               names[s], n, eqr_tp_num_paths(tp), threads, med * 1e3,
               3.0 * flops_of(&a, &b, &a) * n / med * 1e-9, tc[1 + reps / 2] * 1e3);
        free(t);
        free(tc);
        eqr_tp_destroy(tp);
        eqr_ctx_destroy(ctx);
    }
    return 0;
}
