/* Tensor-product path kernel (nn3d/tp_internal.h) with arbitrary dense
 * coupling tensors: forward against the explicit double sum over C entries,
 * gradients of x1, x2 and the weights by finite differences, no paths, an
 * output entry no path reaches; weights shared or given per sample. (Equivariance needs the real CG tables and
 * belongs to the public tensor-product layer's tests.) */
#include "testutil.h"

#include "nn3d/tp_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* The product of intermediates s1 = 1.5 x1, s2 = 0.5 x2, squared and summed,
 * plus sum(s1^2): recorded before the product (order 0), the kernel creates
 * both input gradients (zeroed a block at a time); recorded after (order
 * 1), it adds to s1's and creates s2's. */
typedef struct mid_args {
    const fixture *f;
    int order;
} mid_args;

static eqr_tensor *f_tp_mid(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    const mid_args *a = user;
    eqr_tensor *s1 = eqr_scale(ctx, in[0], 1.5f), *s2 = eqr_scale(ctx, in[1], 0.5f);
    eqr_tensor *sq = a->order ? NULL : eqr_sum_all(ctx, eqr_mul(ctx, s1, s1));
    eqr_tensor *y = eqr__tp_forward(ctx, s1, s2, in[2], NP, a->f->p, D3);
    if (a->order) sq = eqr_sum_all(ctx, eqr_mul(ctx, s1, s1));
    return eqr_add(ctx, eqr_sum_all(ctx, eqr_mul(ctx, y, y)), sq);
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
    for (int order = 0; order < 2; order++) {
        mid_args a = {&FX, order};
        tu_gradcheck(ctx, f_tp_mid, in, 3, &a, H, 2 * DEPTH + 4);
    }
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

/* ---- wide blocks (the 8- and 32-float vector loops and their tails),
 * m2 = 1 and 2, an output entry reached by two separate path groups,
 * sparse C, many samples on 2 threads (chunks, sample blocks, per-chunk
 * weight-gradient accumulators): forward and all gradients against double
 * references with their float bounds. */
enum { WN = 300, WD1 = 45 * 3 + 9 + 16 * 5, WD2 = 1 + 3 + 2 * 3, WD3 = 7 * 3 + 33 + 5 * 5, WNP = 7 };

typedef struct wide {
    eqr__tp_path p[WNP];
    float C[WNP][75];
    int64_t nw;
} wide;

static void make_wide(wide *f) {
    /* x1 entries (mul, dim): (45,3) (9,1) (16,5); x2: (1,1) (1,3) (2,3);
     * out: (7,3) (33,1) (5,5); path (in1, in2, out), the last one into
     * out 0 again after out 2 */
    static const int64_t m1[3] = {45, 9, 16}, o1[3] = {0, 135, 144};
    static const int e1d[3] = {3, 1, 5};
    static const int64_t m2[3] = {1, 1, 2}, o2[3] = {0, 1, 4};
    static const int e2d[3] = {1, 3, 3};
    static const int64_t m3[3] = {7, 33, 5}, o3[3] = {0, 21, 54};
    static const int e3d[3] = {3, 1, 5};
    static const int pa[WNP] = {0, 1, 0, 2, 1, 2, 0}, pb[WNP] = {1, 0, 2, 1, 1, 0, 0},
                     pc[WNP] = {1, 1, 0, 0, 2, 2, 0};
    f->nw = 0;
    for (int q = 0; q < WNP; q++) {
        eqr__tp_path *p = &f->p[q];
        p->m1 = m1[pa[q]], p->d1 = e1d[pa[q]], p->off1 = o1[pa[q]];
        p->m2 = m2[pb[q]], p->d2 = e2d[pb[q]], p->off2 = o2[pb[q]];
        p->m3 = m3[pc[q]], p->d3 = e3d[pc[q]], p->off3 = o3[pc[q]];
        p->woff = f->nw;
        f->nw += p->m1 * p->m2 * p->m3;
        const int nc = p->d1 * p->d2 * p->d3;
        tu_fill_uniform(f->C[q], nc, 70 + (uint64_t)q);
        for (int c = 0; c < nc; c++) /* a third of C zero, as in sparse CG tables */
            if (c % 3 == 1) f->C[q][c] = 0.0f;
        p->C = f->C[q];
    }
}

/* Double references: y and, for the loss sum(r y), the gradients; mag_*
 * the sums of |terms|, cnt_* the largest number of terms into one element. */
typedef struct wide_ref {
    double y[WN * WD3], my[WN * WD3], g1[WN * WD1], m1[WN * WD1], g2[WN * WD2], m2[WN * WD2];
    double *gw, *mw;
    int64_t cy[WD3], c1[WD1], c2[WD2], cw;
} wide_ref;

static void wide_reference(const wide *f, const float *x1, const float *x2, const float *w,
                           int64_t ws, const float *r, wide_ref *R, int64_t nwt) {
    memset(R->y, 0, sizeof R->y), memset(R->my, 0, sizeof R->my);
    memset(R->g1, 0, sizeof R->g1), memset(R->m1, 0, sizeof R->m1);
    memset(R->g2, 0, sizeof R->g2), memset(R->m2, 0, sizeof R->m2);
    memset(R->cy, 0, sizeof R->cy), memset(R->c1, 0, sizeof R->c1);
    memset(R->c2, 0, sizeof R->c2);
    for (int64_t q = 0; q < nwt; q++) R->gw[q] = R->mw[q] = 0;
    R->cw = 0;
    for (int64_t n = 0; n < WN; n++)
        for (int q = 0; q < WNP; q++) {
            const eqr__tp_path *p = &f->p[q];
            for (int64_t u = 0; u < p->m1; u++)
                for (int64_t v = 0; v < p->m2; v++)
                    for (int64_t c = 0; c < p->m3; c++)
                        for (int i = 0; i < p->d1; i++)
                            for (int j = 0; j < p->d2; j++)
                                for (int k = 0; k < p->d3; k++) {
                                    const int64_t iw = n * ws + p->woff + (u * p->m2 + v) * p->m3 + c;
                                    const int64_t i1 = p->off1 + u * p->d1 + i, i2 = p->off2 + v * p->d2 + j;
                                    const int64_t i3 = p->off3 + c * p->d3 + k;
                                    const double cw = p->C[(i * p->d2 + j) * p->d3 + k];
                                    const double a = x1[n * WD1 + i1], b = x2[n * WD2 + i2];
                                    const double rr = r[n * WD3 + i3], ww = w[iw];
                                    R->y[n * WD3 + i3] += ww * cw * a * b;
                                    R->my[n * WD3 + i3] += fabs(ww * cw * a * b);
                                    R->g1[n * WD1 + i1] += rr * ww * cw * b;
                                    R->m1[n * WD1 + i1] += fabs(rr * ww * cw * b);
                                    R->g2[n * WD2 + i2] += rr * ww * cw * a;
                                    R->m2[n * WD2 + i2] += fabs(rr * ww * cw * a);
                                    R->gw[iw] += rr * cw * a * b;
                                    R->mw[iw] += fabs(rr * cw * a * b);
                                    if (n == 0) R->cy[i3]++, R->c1[i1]++, R->c2[i2]++;
                                }
        }
    /* terms per weight: d1 d2 d3 per sample, times N when shared */
    for (int q = 0; q < WNP; q++) {
        const int64_t t = (int64_t)f->p[q].d1 * f->p[q].d2 * f->p[q].d3 * (ws ? 1 : WN);
        R->cw = R->cw > t ? R->cw : t;
    }
}

static int64_t max_of(const int64_t *c, int n) {
    int64_t m = 0;
    for (int i = 0; i < n; i++) m = m > c[i] ? m : c[i];
    return m;
}

static void check_wide(int per_sample) {
    static wide f;
    make_wide(&f);
    eqr_ctx_opts o = {0};
    o.seed = 9;
    o.threads = 2;
    eqr_ctx *ctx = eqr_ctx_create(&o);
    assert_non_null(ctx);
    const int64_t s1[2] = {WN, WD1}, s2[2] = {WN, WD2}, sw[2] = {WN, f.nw}, sw1[1] = {f.nw};
    eqr_tensor *x1 = tu_input(ctx, "x1", 2, s1, 1.0f), *x2 = tu_input(ctx, "x2", 2, s2, 1.0f);
    eqr_tensor *w = per_sample ? tu_input(ctx, "w", 2, sw, 1.0f) : tu_input(ctx, "w", 1, sw1, 1.0f);
    eqr_tensor *y = eqr__tp_forward(ctx, x1, x2, w, WNP, f.p, WD3);
    assert_non_null(y);
    const int64_t s3[2] = {WN, WD3};
    eqr_tensor *r = eqr_tensor_zeros(ctx, 2, s3);
    assert_non_null(r);
    tu_fill_uniform(r->data, WN * WD3, 99);
    static wide_ref R;
    const int64_t nwt = w->numel;
    R.gw = malloc(sizeof(double) * (size_t)nwt), R.mw = malloc(sizeof(double) * (size_t)nwt);
    assert_non_null(R.gw);
    assert_non_null(R.mw);
    wide_reference(&f, x1->data, x2->data, w->data, per_sample ? f.nw : 0, r->data, &R, nwt);
    /* Every term is a product of 4 (forward; gradients: 4 with r) stored
     * factors summed over at most cnt terms, in any order: gamma_{cnt + 3}
     * (tu_assert_close_bound's c = 1; + the 2 chunks' reduction for the
     * shared weight gradient, and 1 for adding into a zero gradient). */
    tu_assert_close_bound("wide y", y->data, R.y, R.my, WN * WD3, max_of(R.cy, WD3) + 3, 1.0);
    assert_int_equal(eqr_backward_from(ctx, y, r), EQR_OK);
    tu_assert_close_bound("wide gx1", x1->grad, R.g1, R.m1, WN * WD1, max_of(R.c1, WD1) + 4, 1.0);
    tu_assert_close_bound("wide gx2", x2->grad, R.g2, R.m2, WN * WD2, max_of(R.c2, WD2) + 4, 1.0);
    tu_assert_close_bound("wide gw", w->grad, R.gw, R.mw, nwt, R.cw + 6, 1.0);
    free(R.gw);
    free(R.mw);
    eqr_ctx_destroy(ctx);
}

static void test_wide_threads(void **state) {
    (void)state;
    check_wide(0);
    check_wide(1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_no_paths),
        cmocka_unit_test(test_wide_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
