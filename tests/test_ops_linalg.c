/* Ops: matmul and linear against naive double references, gradients by
 * finite differences and against reference gradients, empty dimensions, and
 * shape errors. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* y[M,N] = op(a) op(b) in double; ta: a is stored [K,M]; tb: b is stored [N,K].
 * mag[M,N] gets sum_k |a_ik b_kj|, the scale of the float32 error bound. */
static void ref_gemm(int ta, int tb, int M, int N, int K, const float *a, const float *b,
                     double *y, double *mag) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0, m = 0;
            for (int k = 0; k < K; k++) {
                double p = (double)(ta ? a[k * M + i] : a[i * K + k]) * (tb ? b[j * K + k] : b[k * N + j]);
                s += p;
                m += fabs(p);
            }
            y[i * N + j] = s;
            mag[i * N + j] = m;
        }
}

static void test_matmul_forward(void **state) {
    (void)state;
    const int sizes[][3] = {{5, 7, 3}, {1, 1, 1}, {64, 128, 96}, {3, 1, 4}};
    for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++) {
        eqr_ctx *ctx = tu_ctx(1);
        int M = sizes[c][0], K = sizes[c][1], N = sizes[c][2];
        int64_t as[2] = {M, K}, bs[2] = {K, N};
        eqr_tensor *a = eqr_tensor_zeros(ctx, 2, as), *b = eqr_tensor_zeros(ctx, 2, bs);
        tu_fill_uniform(a->data, a->numel, 1);
        tu_fill_uniform(b->data, b->numel, 2);
        eqr_tensor *y = eqr_matmul(ctx, a, b);
        assert_non_null(y);
        assert_int_equal(y->ndim, 2);
        assert_int_equal(y->shape[0], M);
        assert_int_equal(y->shape[1], N);
        double *ref = malloc(sizeof(double) * (size_t)(M * N));
        double *mag = malloc(sizeof(double) * (size_t)(M * N));
        assert_non_null(ref);
        assert_non_null(mag);
        ref_gemm(0, 0, M, N, K, a->data, b->data, ref, mag);
        tu_assert_close_bound("matmul", y->data, ref, mag, y->numel, K, 1); /* K-term sums */
        free(mag);
        assert_int_equal(eqr_tape_num_nodes(ctx), 0); /* no input needs grad */
        free(ref);
        eqr_ctx_destroy(ctx);
    }
}

/* Inner dimension 0 gives zeros; other empty dimensions give empty outputs. */
static void test_matmul_empty(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    int64_t as[2] = {3, 0}, bs[2] = {0, 4};
    eqr_tensor *y = eqr_matmul(ctx, eqr_tensor_zeros(ctx, 2, as), eqr_tensor_zeros(ctx, 2, bs));
    assert_non_null(y);
    assert_int_equal(y->numel, 12);
    for (int i = 0; i < 12; i++) assert_true(y->data[i] == 0.0f);
    int64_t a2[2] = {0, 5}, b2[2] = {5, 2};
    y = eqr_matmul(ctx, eqr_tensor_zeros(ctx, 2, a2), eqr_tensor_zeros(ctx, 2, b2));
    assert_non_null(y);
    assert_int_equal(y->numel, 0);
    /* linear with in = 0 is the bias */
    int64_t xs[2] = {2, 0}, ws[2] = {3, 0}, bsz[1] = {3};
    float bias[3] = {1, 2, 3};
    y = eqr_linear(ctx, eqr_tensor_zeros(ctx, 2, xs), eqr_tensor_zeros(ctx, 2, ws),
                   eqr_tensor_from(ctx, 1, bsz, bias));
    assert_non_null(y);
    for (int i = 0; i < 6; i++) assert_true(y->data[i] == bias[i % 3]);
    eqr_ctx_destroy(ctx);
}

static eqr_tensor *f_matmul(eqr_ctx *ctx, eqr_tensor **in, void *u) {
    (void)u;
    return eqr_matmul(ctx, in[0], in[1]);
}

static eqr_tensor *f_linear(eqr_ctx *ctx, eqr_tensor **in, void *u) {
    return eqr_linear(ctx, in[0], in[1], u ? in[2] : NULL);
}

static void test_matmul_grad(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(2);
    int64_t as[2] = {4, 5}, bs[2] = {5, 3};
    eqr_tensor *in[2] = {tu_input(ctx, "a", 2, as, 1.0f), tu_input(ctx, "b", 2, bs, 1.0f)};
    tu_gradcheck(ctx, f_matmul, in, 2, NULL, 1e-2, 6 /* 5-term sums */);
    /* a @ a (both inputs the same tensor): gradients add up */
    int64_t ss[2] = {3, 3};
    eqr_tensor *sq[2];
    sq[0] = sq[1] = tu_input(ctx, "s", 2, ss, 1.0f);
    tu_gradcheck(ctx, f_matmul, sq, 2, NULL, 1e-2, 6);
    eqr_ctx_destroy(ctx);
}

/* Larger sizes: analytic gradients against double references. */
static void test_matmul_grad_reference(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(3);
    const int M = 33, K = 70, N = 41;
    int64_t as[2] = {M, K}, bs[2] = {K, N}, ys[2] = {M, N};
    eqr_tensor *a = tu_input(ctx, "a", 2, as, 1.0f), *b = tu_input(ctx, "b", 2, bs, 1.0f);
    eqr_tensor *y = eqr_matmul(ctx, a, b);
    assert_non_null(y);
    float *r = malloc(sizeof(float) * M * N);
    assert_non_null(r);
    tu_fill_uniform(r, M * N, 9);
    eqr_grad_zero(ctx);
    assert_int_equal(eqr_backward_from(ctx, y, eqr_tensor_from(ctx, 2, ys, r)), EQR_OK);
    double *ga = malloc(sizeof(double) * M * K), *gb = malloc(sizeof(double) * K * N);
    double *ma = malloc(sizeof(double) * M * K), *mb = malloc(sizeof(double) * K * N);
    assert_non_null(ga);
    assert_non_null(gb);
    assert_non_null(ma);
    assert_non_null(mb);
    /* dA = R B^T: B^T stored [N,K] is b read with tb */
    ref_gemm(0, 1, M, K, N, r, b->data, ga, ma);
    /* dB = A^T R */
    ref_gemm(1, 0, K, N, M, a->data, r, gb, mb);
    /* sums of N and M terms, added once into zeroed gradients */
    tu_assert_close_bound("matmul dA", a->grad, ga, ma, M * K, N + 1, 1);
    tu_assert_close_bound("matmul dB", b->grad, gb, mb, K * N, M + 1, 1);
    free(ga);
    free(gb);
    free(ma);
    free(mb);
    free(r);
    eqr_ctx_destroy(ctx);
}

static void test_linear_forward(void **state) {
    (void)state;
    for (int with_bias = 0; with_bias <= 1; with_bias++) {
        eqr_ctx *ctx = tu_ctx(4);
        const int N = 6, IN = 9, OUT = 4;
        int64_t xs[2] = {N, IN}, ws[2] = {OUT, IN}, bs[1] = {OUT};
        eqr_tensor *x = eqr_tensor_zeros(ctx, 2, xs), *w = eqr_tensor_zeros(ctx, 2, ws);
        eqr_tensor *b = with_bias ? eqr_tensor_zeros(ctx, 1, bs) : NULL;
        tu_fill_uniform(x->data, x->numel, 5);
        tu_fill_uniform(w->data, w->numel, 6);
        if (b) tu_fill_uniform(b->data, b->numel, 7);
        eqr_tensor *y = eqr_linear(ctx, x, w, b);
        assert_non_null(y);
        assert_int_equal(y->shape[0], N);
        assert_int_equal(y->shape[1], OUT);
        double ref[6 * 4], mag[6 * 4];
        ref_gemm(0, 1, N, OUT, IN, x->data, w->data, ref, mag);
        if (b)
            for (int i = 0; i < N * OUT; i++) ref[i] += b->data[i % OUT], mag[i] += fabs(b->data[i % OUT]);
        /* IN products + the bias */
        tu_assert_close_bound("linear", y->data, ref, mag, N * OUT, IN + 1, 1);
        eqr_ctx_destroy(ctx);
    }
}

static void test_linear_grad(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(5);
    int64_t xs[2] = {3, 5}, ws[2] = {4, 5}, bs[1] = {4};
    eqr_tensor *in[3] = {tu_input(ctx, "x", 2, xs, 1.0f), tu_input(ctx, "w", 2, ws, 1.0f),
                         tu_input(ctx, "b", 1, bs, 1.0f)};
    tu_gradcheck(ctx, f_linear, in, 3, (void *)1, 1e-2, 7 /* 5 terms + bias */);
    tu_gradcheck(ctx, f_linear, in, 2, NULL, 1e-2, 7);
    eqr_ctx_destroy(ctx);

    /* reference gradients on a larger layer, weights only (x is data) */
    ctx = tu_ctx(6);
    const int N = 20, IN = 50, OUT = 30;
    int64_t xs2[2] = {N, IN}, ws2[2] = {OUT, IN}, bs2[1] = {OUT}, ys[2] = {N, OUT};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 2, xs2);
    tu_fill_uniform(x->data, x->numel, 8);
    eqr_tensor *w = tu_input(ctx, "w", 2, ws2, 1.0f), *b = tu_input(ctx, "b", 1, bs2, 1.0f);
    eqr_tensor *y = eqr_linear(ctx, x, w, b);
    assert_non_null(y);
    float *r = malloc(sizeof(float) * N * OUT);
    assert_non_null(r);
    tu_fill_uniform(r, N * OUT, 10);
    eqr_grad_zero(ctx);
    assert_int_equal(eqr_backward_from(ctx, y, eqr_tensor_from(ctx, 2, ys, r)), EQR_OK);
    assert_null(x->grad);
    double *gw = malloc(sizeof(double) * OUT * IN), gb[30] = {0}, mb[30] = {0};
    double *mw = malloc(sizeof(double) * OUT * IN);
    assert_non_null(gw);
    assert_non_null(mw);
    ref_gemm(1, 0, OUT, IN, N, r, x->data, gw, mw); /* dW = R^T X */
    for (int i = 0; i < N * OUT; i++) gb[i % OUT] += r[i], mb[i % OUT] += fabs(r[i]);
    /* both sums of N terms, added once into zeroed gradients */
    tu_assert_close_bound("linear dW", w->grad, gw, mw, OUT * IN, N + 1, 1);
    tu_assert_close_bound("linear db", b->grad, gb, mb, OUT, N + 1, 1);
    free(gw);
    free(mw);
    free(r);
    eqr_ctx_destroy(ctx);
}

/* Backward adds into existing gradients (x, w, b of linear; a, b of matmul). */
static void test_grad_accumulates(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(7);
    int64_t xs[2] = {4, 6}, ws[2] = {5, 6}, bs[1] = {5}, ms[2] = {5, 3};
    eqr_tensor *x = tu_input(ctx, "x", 2, xs, 1.0f), *w = tu_input(ctx, "w", 2, ws, 1.0f);
    eqr_tensor *b = tu_input(ctx, "b", 1, bs, 1.0f), *m = tu_input(ctx, "m", 2, ms, 1.0f);
    int64_t total = eqr_param_num_scalars(ctx);
    double *once = malloc(sizeof(double) * (size_t)total);
    assert_non_null(once);
    eqr_grad_zero(ctx);
    for (int step = 0; step < 2; step++) {
        eqr_tensor *y = eqr_matmul(ctx, eqr_linear(ctx, x, w, b), m);
        assert_non_null(y);
        eqr_tensor *seed = eqr_tensor_from(ctx, 2, y->shape, NULL);
        tu_fill_uniform(seed->data, seed->numel, 11);
        assert_int_equal(eqr_backward_from(ctx, y, seed), EQR_OK);
        eqr_step_reset(ctx);
        const float *g = eqr_param_grad_block(ctx);
        for (int64_t i = 0; i < total; i++) once[i] = step == 0 ? 2.0 * g[i] : once[i];
    }
    /* the bound: a backward accumulating into the gradient may round the sum
     * g1 + g2 inside its kernel (beta = 1), so got and 2 g1 are each within
     * gamma of the terms' magnitude. The model is multilinear, so the same
     * backward on |x|, |w|, |b|, |m| with seed |r| gives each gradient's
     * magnitude sum (positive float sums, raised by their gamma); the longest
     * path is 6 + 1 terms of y1 then 4 of the batch, or 3 then 5 (+ the
     * accumulation): <= 17; c 2: the two sides */
    float *got = malloc(sizeof(float) * (size_t)total);
    double *mag = malloc(sizeof(double) * (size_t)total);
    assert_true(got && mag);
    memcpy(got, eqr_param_grad_block(ctx), sizeof(float) * (size_t)total);
    eqr_tensor *ps[4] = {x, w, b, m};
    for (int k = 0; k < 4; k++)
        for (int64_t i = 0; i < ps[k]->numel; i++) ps[k]->data[i] = fabsf(ps[k]->data[i]);
    eqr_grad_zero(ctx);
    {
        eqr_tensor *y = eqr_matmul(ctx, eqr_linear(ctx, x, w, b), m);
        assert_non_null(y);
        eqr_tensor *seed = eqr_tensor_from(ctx, 2, y->shape, NULL);
        tu_fill_uniform(seed->data, seed->numel, 11);
        for (int64_t i = 0; i < seed->numel; i++) seed->data[i] = fabsf(seed->data[i]);
        assert_int_equal(eqr_backward_from(ctx, y, seed), EQR_OK);
        eqr_step_reset(ctx);
    }
    const float *ag = eqr_param_grad_block(ctx);
    for (int64_t i = 0; i < total; i++) mag[i] = 2.0 * ag[i] * (1 + tu_gamma(17));
    tu_assert_close_bound("accumulated grads", got, once, mag, total, 17, 2);
    free(got);
    free(mag);
    free(once);
    eqr_ctx_destroy(ctx);
}

static void test_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    int64_t s23[2] = {2, 3}, s43[2] = {4, 3}, s34[2] = {3, 4}, s3[1] = {3}, s4[1] = {4};
    int64_t s234[3] = {2, 3, 4};
    eqr_tensor *a = eqr_tensor_zeros(ctx, 2, s23), *b = eqr_tensor_zeros(ctx, 2, s43);
    assert_null(eqr_matmul(ctx, a, b));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "[4,3]");
    assert_null(eqr_matmul(ctx, eqr_tensor_zeros(ctx, 3, s234), eqr_tensor_zeros(ctx, 2, s43)));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "eqr_matmul");
    assert_null(eqr_matmul(ctx, a, eqr_tensor_zeros(ctx, 1, s3)));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "eqr_matmul");
    assert_non_null(eqr_matmul(ctx, a, eqr_tensor_zeros(ctx, 2, s34)));

    /* linear: x [2,3], w must be [out,3], bias [out] */
    assert_null(eqr_linear(ctx, a, eqr_tensor_zeros(ctx, 2, s34), NULL));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "eqr_linear");
    assert_null(eqr_linear(ctx, a, b, eqr_tensor_zeros(ctx, 1, s3)));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "bias");
    assert_null(eqr_linear(ctx, a, b, eqr_tensor_zeros(ctx, 2, s23)));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "bias");
    assert_null(eqr_linear(ctx, eqr_tensor_zeros(ctx, 1, s3), b, NULL));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "eqr_linear");
    assert_non_null(eqr_linear(ctx, a, b, eqr_tensor_zeros(ctx, 1, s4)));

    /* a caller's NULL input: EQR_ERR_ARG naming the argument */
    assert_null(eqr_matmul(ctx, NULL, b));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_null(eqr_linear(ctx, a, NULL, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    assert_null(eqr_matmul(ctx, a, b));
    assert_null(eqr_linear(ctx, a, b, NULL));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "eqr_matmul");
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_forward), cmocka_unit_test(test_matmul_empty),
        cmocka_unit_test(test_matmul_grad),    cmocka_unit_test(test_matmul_grad_reference),
        cmocka_unit_test(test_linear_forward), cmocka_unit_test(test_linear_grad),
        cmocka_unit_test(test_grad_accumulates), cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
