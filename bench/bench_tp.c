/* Tensor-product throughput: forward + backward of the uvw path kernel for
 * SEGNN's shapes and for lmax 2 and 3, in GFLOP/s.
 *
 *   bench_tp [--threads T] [--n N] [--reps R]
 *
 * Shapes (mul 32 per irrep of x1 and out, one copy per irrep of x2; every
 * l1 x l2 -> l3 with |l1-l2| <= l3 <= l1+l2 and p1 p2 = p3 whose l3, p3 is
 * in the output):
 *   segnn: 32x0e+32x1o x 1x0e+1x1o -> 32x0e+32x1o
 *   lmax2: 32x0e+32x1o+32x2e x 1x0e+1x1o+1x2e -> same as x1
 *   lmax3: 32x0e+32x1o+32x2e+32x3o x 1x0e+1x1o+1x2e+1x3o -> same as x1
 * N (default 2000) samples (edges), shared weights. The coupling tensors are
 * dense random [d1, d2, d3] stand-ins for the CG tables: the kernel's cost
 * does not depend on their values. FLOPs counted: per path forward
 * 2 N (m2 d2 d1 d3 + d3 m1 m2 d1 + d3 m1 m2 m3), backward twice that plus
 * the recomputed forward GEMMs (counted once as forward: 3x forward total).
 * Prints one line per shape:
 *   tp shape=S n=N paths=P ms_fwd_bwd=X gflops=Y */
#define _POSIX_C_SOURCE 200809L
#include "equirelax/equirelax.h"
#include "nn3d/tp_internal.h"

#include "bench_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* irreps with mul m for l = 0..lmax, parity (-1)^l */
static int64_t dim_of(int lmax, int64_t m) {
    int64_t d = 0;
    for (int l = 0; l <= lmax; l++) d += m * (2 * l + 1);
    return d;
}

static int build_paths(int lmax, int64_t m, eqr__tp_path *p, float *cbuf, int64_t *nw,
                       double *flops) {
    int np = 0;
    int64_t woff = 0, cofs = 0;
    *flops = 0;
    for (int l3 = 0; l3 <= lmax; l3++)
        for (int l1 = 0; l1 <= lmax; l1++)
            for (int l2 = 0; l2 <= lmax; l2++) {
                const int lo = l1 > l2 ? l1 - l2 : l2 - l1;
                if (l3 < lo || l3 > l1 + l2 || ((l1 + l2 + l3) & 1)) continue;
                eqr__tp_path *q = &p[np++];
                q->m1 = m, q->d1 = 2 * l1 + 1, q->off1 = dim_of(l1 - 1, m);
                q->m2 = 1, q->d2 = 2 * l2 + 1, q->off2 = dim_of(l2 - 1, 1);
                q->m3 = m, q->d3 = 2 * l3 + 1, q->off3 = dim_of(l3 - 1, m);
                q->woff = woff;
                woff += q->m1 * q->m2 * q->m3;
                const int64_t nc = (int64_t)q->d1 * q->d2 * q->d3;
                for (int64_t c = 0; c < nc; c++) cbuf[cofs + c] = (float)((c * 37 % 11) - 5) / 7.0f;
                q->C = cbuf + cofs;
                cofs += nc;
                *flops += 2.0 * ((double)q->m2 * q->d2 * q->d1 * q->d3 +
                                 (double)q->d3 * q->m1 * q->m2 * q->d1 +
                                 (double)q->d3 * q->m1 * q->m2 * q->m3);
            }
    *nw = woff;
    return np;
}

int main(int argc, char **argv) {
    int threads = 1, n = 2000, reps = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--n")) n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_tp [--threads T] [--n N] [--reps R]\n");
            return 2;
        }
    }
    static const char *names[3] = {"segnn", "lmax2", "lmax3"};
    for (int s = 0; s < 3; s++) {
        const int lmax = s + 1;
        eqr_ctx_opts o = {0};
        o.seed = 1;
        o.threads = threads;
        eqr_ctx *ctx = eqr_ctx_create(&o);
        static eqr__tp_path paths[256];
        static float cbuf[1 << 16];
        int64_t nw;
        double fl;
        const int np = build_paths(lmax, 32, paths, cbuf, &nw, &fl);
        const int64_t D1 = dim_of(lmax, 32), D2 = dim_of(lmax, 1);
        const int64_t s1[2] = {n, D1}, s2[2] = {n, D2}, sw[1] = {nw};
        eqr_tensor *x1 = eqr_param_new(ctx, "x1", 2, s1, 0);
        eqr_tensor *x2 = eqr_param_new(ctx, "x2", 2, s2, 0);
        eqr_tensor *w = eqr_param_new(ctx, "w", 1, sw, 0);
        if (!x1 || !x2 || !w) {
            fprintf(stderr, "bench_tp: %s\n", eqr_error_message(ctx));
            return 1;
        }
        eqr_tensor_normal(x1, eqr_ctx_rng(ctx), 1.0f);
        eqr_tensor_normal(x2, eqr_ctx_rng(ctx), 1.0f);
        eqr_tensor_normal(w, eqr_ctx_rng(ctx), 0.1f);
        double *t = malloc(sizeof(double) * (size_t)(reps + 1));
        for (int r = 0; r <= reps; r++) {
            eqr_step_reset(ctx);
            const double t0 = bench_now_s();
            eqr_tensor *y = eqr__tp_forward(ctx, x1, x2, w, np, paths, D1);
            eqr_tensor *loss = eqr_sum_all(ctx, y);
            if (!loss || eqr_backward(ctx, loss) != EQR_OK) {
                fprintf(stderr, "bench_tp: %s\n", eqr_error_message(ctx));
                return 1;
            }
            t[r] = bench_now_s() - t0;
        }
        qsort(t + 1, (size_t)reps, sizeof(double), bench_cmp_double);
        const double med = t[1 + reps / 2];
        printf("tp shape=%s n=%d paths=%d ms_fwd_bwd=%.3f gflops=%.2f\n", names[s], n, np,
               med * 1e3, 3.0 * fl * n / med * 1e-9);
        free(t);
        eqr_ctx_destroy(ctx);
    }
    return 0;
}
