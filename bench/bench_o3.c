/* Construction cost of the O(3) tables: the CG table for lmax 3 and the
 * paths (with their CG tensors) of a tensor product
 * 128x0e+64x1o+32x2e x (0e+1o+2e+3o) -> 128x0e+64x1o+32x2e.
 *   ./bench/bench_o3 [--reps 50]
 * Prints the median and best time in ms (target: < 50 ms). */
#define _POSIX_C_SOURCE 199309L
#include "equirelax/equirelax.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}
static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int reps = 50;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--reps")) reps = atoi(argv[++i]);
    if (reps < 1) reps = 1;
    eqr_ctx *ctx = eqr_ctx_create(NULL);
    eqr_irreps in, sh, out;
    eqr_irreps_parse(ctx, "128x0e+64x1o+32x2e", &in);
    eqr_irreps_parse(ctx, "0e+1o+2e+3o", &sh);
    out = in;
    double *t = malloc(sizeof(double) * reps);
    int npaths = 0;
    long nnz = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        eqr_o3_cg_table *tab = eqr_o3_cg_table_create(ctx, 3);
        npaths = 0;
        nnz = 0;
        for (int a = 0; a < in.n; a++)
            for (int b = 0; b < sh.n; b++)
                for (int c = 0; c < out.n; c++) {
                    const eqr_irrep_entry *x = &in.e[a], *y = &sh.e[b], *z = &out.e[c];
                    if (x->p * y->p != z->p) continue;
                    const eqr_o3_cg *cg = eqr_o3_cg_table_at(ctx, tab, x->l, y->l, z->l);
                    if (!cg) continue;
                    npaths++;
                    nnz += cg->nnz;
                }
        eqr_o3_cg_table_destroy(tab);
        t[r] = now_ms() - t0;
    }
    if (eqr_error_status(ctx)) {
        fprintf(stderr, "bench_o3: %s\n", eqr_error_message(ctx));
        return 1;
    }
    qsort(t, reps, sizeof(double), cmp);
    printf("bench_o3 cg_table_lmax=3 layer=128x0e+64x1o+32x2e paths=%d cg_nnz=%ld reps=%d "
           "median_ms=%.3f best_ms=%.3f\n", npaths, nnz, reps, t[reps / 2], t[0]);
    free(t);
    eqr_ctx_destroy(ctx);
    return 0;
}
