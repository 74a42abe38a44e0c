/* Graph ops: gather rows by edge index, scatter-sum / scatter-mean onto
 * nodes; double references, finite-difference gradients, bad indices, empty
 * edge lists, isolated nodes, thread-count independence. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define H 1e-2
#define DEPTH 14 /* scatter sums of <= NE = 12 messages, a product and the mean scale */

/* 7 nodes, 12 edges; node 5 has no edge pointing at it, node 2 has four. */
#define NN 7
#define NE 12
static const int64_t DST[NE] = {0, 2, 1, 2, 3, 4, 2, 6, 0, 2, 3, 1};

/* y[i] = sum or mean of src rows with idx == i, in double; also sum |terms|
 * for the float32 error bound. */
static void scatter_ref(const float *src, const int64_t *idx, int64_t E, int64_t N, int64_t F,
                        int mean, double *ref, double *abs_sum) {
    for (int64_t i = 0; i < N * F; i++) ref[i] = abs_sum[i] = 0.0;
    static int64_t cnt[512];
    assert_true(N <= 512);
    memset(cnt, 0, sizeof cnt);
    for (int64_t e = 0; e < E; e++) {
        cnt[idx[e]]++;
        for (int64_t q = 0; q < F; q++) {
            ref[idx[e] * F + q] += src[e * F + q];
            abs_sum[idx[e] * F + q] += fabs(src[e * F + q]);
        }
    }
    if (mean)
        for (int64_t i = 0; i < N; i++)
            for (int64_t q = 0; q < F; q++) {
                ref[i * F + q] = cnt[i] ? ref[i * F + q] / (double)cnt[i] : 0.0;
                abs_sum[i * F + q] = cnt[i] ? abs_sum[i * F + q] / (double)cnt[i] : 0.0;
            }
}

static void test_gather_forward(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    const int64_t F = 5, sx[2] = {NN, F};
    eqr_tensor *x = tu_input(ctx, "x", 2, sx, 1.0f);
    eqr_tensor *y = eqr_gather_rows(ctx, x, DST, NE);
    assert_non_null(y);
    assert_int_equal(y->ndim, 2);
    assert_int_equal(y->shape[0], NE);
    assert_int_equal(y->shape[1], F);
    for (int64_t e = 0; e < NE; e++) /* a copy: exact */
        for (int64_t q = 0; q < F; q++)
            assert_true(y->data[e * F + q] == x->data[DST[e] * F + q]);
    eqr_ctx_destroy(ctx);
}

static void check_scatter(int mean, int threads) {
    eqr_ctx_opts o = {0};
    o.seed = 2;
    o.threads = threads;
    eqr_ctx *ctx = eqr_ctx_create(&o);
    assert_non_null(ctx);
    const int64_t F = 6, s[2] = {NE, F};
    eqr_tensor *src = tu_input(ctx, "src", 2, s, 1.0f);
    eqr_tensor *y = mean ? eqr_scatter_mean(ctx, src, DST, NN) : eqr_scatter_sum(ctx, src, DST, NN);
    assert_non_null(y);
    assert_int_equal(y->shape[0], NN);
    assert_int_equal(y->shape[1], F);
    double ref[NN * 6], abs_sum[NN * 6];
    scatter_ref(src->data, DST, NE, NN, F, mean, ref, abs_sum);
    /* sums of <= 4 messages, then mean's divide */
    tu_assert_close_bound(mean ? "scatter_mean" : "scatter_sum", y->data, ref, abs_sum, NN * F, 4 + 1, 1);
    for (int64_t q = 0; q < F; q++) assert_true(y->data[5 * F + q] == 0.0f); /* isolated */
    eqr_ctx_destroy(ctx);
}

static void test_scatter_forward(void **state) {
    (void)state;
    check_scatter(0, 1);
    check_scatter(1, 1);
    check_scatter(0, 2);
    check_scatter(1, 2);
}

/* Large enough to be split over threads: the result must not depend on
 * the thread count, bit for bit. */
static void test_thread_independence(void **state) {
    (void)state;
    enum { N = 300, E = 6000, F = 16 };
    static int64_t idx[E];
    for (int64_t e = 0; e < E; e++) idx[e] = (e * 7919 + e / 3) % (N - 3); /* 3 isolated */
    float *res[2][3];
    eqr_ctx *cs[2];
    for (int t = 0; t < 2; t++) {
        eqr_ctx_opts o = {0};
        o.seed = 3;
        o.threads = t + 1;
        eqr_ctx *ctx = cs[t] = eqr_ctx_create(&o);
        assert_non_null(ctx);
        const int64_t s[2] = {E, F}, sx[2] = {N, F};
        eqr_tensor *src = tu_input(ctx, "src", 2, s, 1.0f);
        eqr_tensor *x = tu_input(ctx, "x", 2, sx, 1.0f);
        eqr_tensor *a = eqr_scatter_sum(ctx, src, idx, N);
        eqr_tensor *b = eqr_scatter_mean(ctx, src, idx, N);
        eqr_tensor *g = eqr_gather_rows(ctx, x, idx, E);
        assert_non_null(a);
        assert_non_null(b);
        assert_non_null(g);
        tu_backward_ones(ctx, eqr_add(ctx, eqr_sum_all(ctx, g), eqr_sum_all(ctx, eqr_mul(ctx, b, b))));
        res[t][0] = a->data;
        res[t][1] = x->grad;
        res[t][2] = src->grad;
        if (t == 0) { /* the reference check at this size too */
            static double ref[N * F], abs_sum[N * F];
            scatter_ref(src->data, idx, E, N, F, 0, ref, abs_sum);
            int64_t kmax = 0;
            for (int64_t i = 0; i < N; i++) {
                int64_t k = 0;
                for (int64_t e = 0; e < E; e++) k += idx[e] == i;
                kmax = k > kmax ? k : kmax;
            }
            tu_assert_close_bound("scatter_sum(big)", a->data, ref, abs_sum, N * F, kmax + 1, 1);
        }
    }
    assert_memory_equal(res[0][0], res[1][0], sizeof(float) * N * F);
    assert_memory_equal(res[0][1], res[1][1], sizeof(float) * N * F);
    assert_memory_equal(res[0][2], res[1][2], sizeof(float) * E * F);
    eqr_ctx_destroy(cs[0]);
    eqr_ctx_destroy(cs[1]);
}

static eqr_tensor *f_gather(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    return eqr_gather_rows(ctx, in[0], DST, NE);
}
static eqr_tensor *f_sum(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    return eqr_scatter_sum(ctx, in[0], DST, NN);
}
static eqr_tensor *f_mean(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    return eqr_scatter_mean(ctx, in[0], DST, NN);
}
/* a message-passing round: gather, square, scatter-mean */
static eqr_tensor *f_round(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    eqr_tensor *m = eqr_gather_rows(ctx, in[0], DST, NE);
    return eqr_scatter_mean(ctx, eqr_mul(ctx, m, m), DST, NN);
}

static void test_gradcheck(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(4);
    const int64_t sx[2] = {NN, 3}, se[2] = {NE, 3};
    eqr_tensor *x = tu_input(ctx, "x", 2, sx, 1.0f);
    eqr_tensor *m = tu_input(ctx, "m", 2, se, 1.0f);
    tu_gradcheck(ctx, f_gather, &x, 1, NULL, H, DEPTH);
    tu_gradcheck(ctx, f_sum, &m, 1, NULL, H, DEPTH);
    tu_gradcheck(ctx, f_mean, &m, 1, NULL, H, DEPTH);
    tu_gradcheck(ctx, f_round, &x, 1, NULL, H, DEPTH);
    eqr_ctx_destroy(ctx);
}

static void test_empty_edges(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(5);
    const int64_t sx[2] = {4, 3}, se[2] = {0, 3};
    eqr_tensor *x = tu_input(ctx, "x", 2, sx, 1.0f);
    eqr_tensor *g = eqr_gather_rows(ctx, x, NULL, 0);
    assert_non_null(g);
    assert_int_equal(g->shape[0], 0);
    assert_int_equal(g->shape[1], 3);
    eqr_tensor *m = eqr_tensor_zeros(ctx, 2, se);
    eqr_tensor *s = eqr_scatter_sum(ctx, m, NULL, 4);
    eqr_tensor *a = eqr_scatter_mean(ctx, m, NULL, 4);
    assert_non_null(s);
    assert_non_null(a);
    for (int i = 0; i < 12; i++) assert_true(s->data[i] == 0.0f && a->data[i] == 0.0f);
    /* backward through an empty gather leaves x's gradient 0 */
    eqr_tensor *tot = eqr_add(ctx, eqr_sum_all(ctx, eqr_scatter_sum(ctx, g, NULL, 4)), eqr_sum_all(ctx, x));
    tu_backward_ones(ctx, tot);
    for (int i = 0; i < 12; i++) assert_true(x->grad[i] == 1.0f);
    eqr_ctx_destroy(ctx);
}

static void test_bad_indices(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(6);
    const int64_t sx[2] = {NN, 2}, se[2] = {NE, 2}, s3[3] = {NE, 2, 1};
    eqr_tensor *x = tu_input(ctx, "x", 2, sx, 1.0f);
    eqr_tensor *m = tu_input(ctx, "m", 2, se, 1.0f);
    int64_t bad[NE];
    memcpy(bad, DST, sizeof bad);
    bad[9] = NN;
    assert_null(eqr_gather_rows(ctx, x, bad, NE));
    tu_assert_error(ctx, EQR_ERR_ARG, "idx[9] = 7 is outside [0, 7)");
    bad[9] = 2;
    bad[4] = -1;
    assert_null(eqr_scatter_sum(ctx, m, bad, NN));
    tu_assert_error(ctx, EQR_ERR_ARG, "eqr_scatter_sum: idx[4] = -1 is outside [0, 7)");
    assert_null(eqr_scatter_mean(ctx, m, DST, 4));
    tu_assert_error(ctx, EQR_ERR_ARG, "eqr_scatter_mean: idx[5] = 4 is outside [0, 4)");
    assert_null(eqr_scatter_sum(ctx, m, NULL, NN));
    tu_assert_error(ctx, EQR_ERR_ARG, "idx is NULL");
    assert_null(eqr_scatter_sum(ctx, m, DST, -1));
    tu_assert_error(ctx, EQR_ERR_ARG, "negative");
    eqr_tensor *m3 = tu_input(ctx, "m3", 3, s3, 1.0f);
    assert_null(eqr_scatter_sum(ctx, m3, DST, NN));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "must be 2-D");
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gather_forward),      cmocka_unit_test(test_scatter_forward),
        cmocka_unit_test(test_thread_independence), cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_empty_edges),         cmocka_unit_test(test_bad_indices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
