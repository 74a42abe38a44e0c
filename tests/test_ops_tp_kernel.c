/* Tensor-product path kernel (nn3d/tp_internal.h) with arbitrary dense
 * coupling tensors: forward against the explicit double sum over C entries,
 * gradients of x1, x2 and the weights by finite differences, no paths, an
 * output entry no path reaches; weights shared or given per sample. (Equivariance needs the real CG tables and
 * belongs to the public tensor-product layer's tests.) */
#include "testutil.h"

#include "nn3d/tp_internal.h"

#include <math.h>

#define H 1e-2
#define DEPTH (D1 * D2 + 3) /* sums of <= D1 * D2 Clebsch-Gordan terms, each 3 products */

/* blocks (mul, dim) of x1, x2 and out; out's last entry gets no path */
static const int64_t M1[2] = {3, 2}, M2[2] = {1, 2}, M3[4] = {2, 3, 1, 2};
static const int DD1[2] = {1, 3}, DD2[2] = {1, 3}, DD3[4] = {1, 3, 5, 3};
#define D1 9
#define D2 7
#define D3 22
#define NP 6
static const int PI1[NP] = {0, 1, 0, 1, 1, 1}, PI2[NP] = {0, 1, 1, 0, 1, 1},
                 PI3[NP] = {0, 0, 1, 1, 1, 2};

typedef struct fixture {
    eqr__tp_path p[NP];
    float C[NP][75];
    int64_t nw;
} fixture;

static int64_t off_of(const int64_t *m, const int *d, int e) {
    int64_t o = 0;
    for (int q = 0; q < e; q++) o += m[q] * d[q];
    return o;
}

static void make_paths(fixture *f) {
    f->nw = 0;
    for (int q = 0; q < NP; q++) {
        eqr__tp_path *p = &f->p[q];
        p->m1 = M1[PI1[q]];
        p->d1 = DD1[PI1[q]];
        p->off1 = off_of(M1, DD1, PI1[q]);
        p->m2 = M2[PI2[q]];
        p->d2 = DD2[PI2[q]];
        p->off2 = off_of(M2, DD2, PI2[q]);
        p->m3 = M3[PI3[q]];
        p->d3 = DD3[PI3[q]];
        p->off3 = off_of(M3, DD3, PI3[q]);
        p->woff = f->nw;
        f->nw += p->m1 * p->m2 * p->m3;
        tu_fill_uniform(f->C[q], p->d1 * p->d2 * p->d3, 50 + (uint64_t)q);
        p->C = f->C[q];
    }
}

/* explicit sum over every C entry, in double; abs: sum of |terms| */
static void tp_ref(const fixture *f, const float *x1, const float *x2, const float *w0,
                   int64_t wstride, int64_t N, double *ref, double *abs) {
    for (int64_t i = 0; i < N * D3; i++) ref[i] = abs[i] = 0;
    for (int64_t n = 0; n < N; n++)
        for (int q = 0; q < NP; q++) {
            const eqr__tp_path *p = &f->p[q];
            const float *w = w0 + n * wstride;
            for (int64_t u = 0; u < p->m1; u++)
                for (int64_t v = 0; v < p->m2; v++)
                    for (int64_t c = 0; c < p->m3; c++)
                        for (int i = 0; i < p->d1; i++)
                            for (int j = 0; j < p->d2; j++)
                                for (int k = 0; k < p->d3; k++) {
                                    double t = (double)w[p->woff + (u * p->m2 + v) * p->m3 + c] *
                                               p->C[(i * p->d2 + j) * p->d3 + k] *
                                               x1[n * D1 + p->off1 + u * p->d1 + i] *
                                               x2[n * D2 + p->off2 + v * p->d2 + j];
                                    ref[n * D3 + p->off3 + c * p->d3 + k] += t;
                                    abs[n * D3 + p->off3 + c * p->d3 + k] += fabs(t);
                                }
        }
}

static fixture FX;

static eqr_tensor *f_tp(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    const fixture *f = user;
    return eqr__tp_forward(ctx, in[0], in[1], in[2], NP, f->p, D3);
}

static void check_forward(int per_sample) {
    make_paths(&FX);
    eqr_ctx *ctx = tu_ctx(1);
    enum { N = 13 };
    const int64_t s1[2] = {N, D1}, s2[2] = {N, D2}, sw[2] = {N, FX.nw}, sw1[1] = {FX.nw};
    eqr_tensor *x1 = tu_input(ctx, "x1", 2, s1, 1.0f), *x2 = tu_input(ctx, "x2", 2, s2, 1.0f);
    eqr_tensor *w = per_sample ? tu_input(ctx, "w", 2, sw, 1.0f) : tu_input(ctx, "w", 1, sw1, 1.0f);
    eqr_tensor *y = eqr__tp_forward(ctx, x1, x2, w, NP, FX.p, D3);
    assert_non_null(y);
    static double ref[N * D3], abs[N * D3];
    tp_ref(&FX, x1->data, x2->data, w->data, per_sample ? FX.nw : 0, N, ref, abs);
    /* each output sums at most K = 2 paths * m1 m2 d1 d2 (<= 36) products
     * of 4 factors (3 roundings each), in float: gamma_{K+3} sum |terms| */
    tu_assert_close_bound("tp", y->data, ref, abs, N * D3, 2 * 36 + 3, 1);
    for (int64_t n = 0; n < N; n++) /* the entry no path reaches */
        for (int c = 0; c < 6; c++) assert_true(y->data[n * D3 + 16 + c] == 0.0f);
    eqr_ctx_destroy(ctx);
}

static void test_forward(void **state) {
    (void)state;
    check_forward(0);
    check_forward(1);
}

static void test_gradcheck(void **state) {
    (void)state;
    make_paths(&FX);
    eqr_ctx *ctx = tu_ctx(2);
    const int64_t s1[2] = {3, D1}, s2[2] = {3, D2}, sw[1] = {FX.nw}, sw2[2] = {3, FX.nw};
    eqr_tensor *in[3] = {tu_input(ctx, "x1", 2, s1, 1.0f), tu_input(ctx, "x2", 2, s2, 1.0f),
                         tu_input(ctx, "w", 1, sw, 1.0f)};
    tu_gradcheck(ctx, f_tp, in, 3, &FX, H, DEPTH);
    in[2] = tu_input(ctx, "w_per_sample", 2, sw2, 1.0f);
    tu_gradcheck(ctx, f_tp, in, 3, &FX, H, DEPTH);
    eqr_ctx_destroy(ctx);
}

static void test_no_paths(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(3);
    const int64_t s1[2] = {2, D1}, s2[2] = {2, D2}, sw[1] = {1};
    eqr_tensor *x1 = tu_input(ctx, "x1", 2, s1, 1.0f), *x2 = tu_input(ctx, "x2", 2, s2, 1.0f);
    eqr_tensor *w = tu_input(ctx, "w", 1, sw, 1.0f);
    eqr_tensor *y = eqr__tp_forward(ctx, x1, x2, w, 0, NULL, 4);
    assert_non_null(y);
    for (int i = 0; i < 8; i++) assert_true(y->data[i] == 0.0f);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_no_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
