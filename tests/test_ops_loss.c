/* Ops: softmax cross-entropy and mean squared error. */
#include "testutil.h"

#include <math.h>
#include <string.h>

/* Double reference: mean_n (log sum_k exp x[n,k] - x[n,y_n]) and its
 * gradient (softmax - onehot) / N. Error-bound scales (may be NULL):
 * *mag = mean_n (|log s_n| + |x[n,y_n] - m_n| + 1), the terms of the stable
 * form log s - (x_y - m) (m the row max, s = sum_k exp(x_k - m); the 1:
 * log of a sum with relative error d is off by ~d); gmag[n,k] =
 * p_k (|x_k - m| + 1) / N, as exp(x_k - m) carries the rounding of x_k - m
 * (u |x_k - m|) as a relative error, and the - onehot cancels p_k ~ 1. */
static double ref_xent(const float *x, const int32_t *lab, int N, int K, double *grad, double *mag,
                       double *gmag) {
    double total = 0, mtot = 0;
    for (int n = 0; n < N; n++) {
        double m = -INFINITY;
        for (int k = 0; k < K; k++) m = fmax(m, x[n * K + k]);
        double se = 0;
        for (int k = 0; k < K; k++) se += exp(x[n * K + k] - m);
        double lse = m + log(se);
        total += lse - x[n * K + lab[n]];
        mtot += fabs(log(se)) + fabs(x[n * K + lab[n]] - m) + 1;
        if (grad)
            for (int k = 0; k < K; k++) {
                double p = exp(x[n * K + k] - lse);
                grad[n * K + k] = (p - (k == lab[n])) / N;
                gmag[n * K + k] = p * (fabs(x[n * K + k] - m) + 1) / N;
            }
    }
    if (mag) *mag = mtot / N;
    return total / N;
}

static const int32_t labels[5] = {3, 0, 6, 6, 2};

static eqr_tensor *xent_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    return eqr_softmax_cross_entropy(ctx, in[0], user);
}

/* xent(x) + mean_all(x): mean_all's backward writes x's gradient first. */
static eqr_tensor *xent_plus_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    eqr_tensor *l = eqr_softmax_cross_entropy(ctx, in[0], user);
    return eqr_add(ctx, l, eqr_mean_all(ctx, in[0]));
}

static void test_xent_forward_backward(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(41);
    int64_t s[2] = {5, 7};
    eqr_tensor *x = tu_input(ctx, "x", 2, s, 2.0f);
    eqr_tensor *y = eqr_softmax_cross_entropy(ctx, x, labels);
    assert_non_null(y);
    assert_int_equal(y->ndim, 0);
    double mag, ref = ref_xent(x->data, labels, 5, 7, NULL, &mag, NULL);
    /* K = 7 exps summed, log, subtract, then a mean of N = 5 */
    tu_assert_close_bound("xent", y->data, &ref, &mag, 1, 7 + 5 + 8, 1);
    tu_gradcheck(ctx, xent_fn, &x, 1, (void *)labels, 1e-2, 24 /* logsumexp over 7 (7 terms + exp, log, sub), mean of 5 */);
    tu_gradcheck(ctx, xent_plus_fn, &x, 1, (void *)labels, 1e-2, 25);
    eqr_ctx_destroy(ctx);
}

/* Huge logits: the log-sum-exp must not overflow; the labels are copied so
 * changing the caller's array after the forward does not change backward. */
static void test_xent_stable_and_copied(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(42);
    int64_t s[2] = {3, 4};
    eqr_tensor *x = tu_input(ctx, "x", 2, s, 1.0f);
    const float v[12] = {1000, 999, -1000, 0, -500, -501, -499, -800, 88, 90, 89.5f, 0};
    memcpy(x->data, v, sizeof v);
    int32_t lab[3] = {1, 2, 0};
    const int32_t orig[3] = {1, 2, 0};
    eqr_tensor *y = eqr_softmax_cross_entropy(ctx, x, lab);
    assert_non_null(y);
    assert_true(isfinite(y->data[0]));
    double grad[12], gmag[12], mag;
    double ref = ref_xent(x->data, orig, 3, 4, grad, &mag, gmag);
    tu_assert_close_bound("xent big", y->data, &ref, &mag, 1, 4 + 3 + 8, 1);
    lab[0] = 3;
    lab[1] = 3;
    lab[2] = 3;
    assert_int_equal(eqr_backward(ctx, y), EQR_OK);
    for (int i = 0; i < 12; i++) assert_true(isfinite(x->grad[i]));
    /* the sum of K = 4 exps, a divide (or exp of x - lse), - onehot, / N */
    tu_assert_close_bound("xent grad", x->grad, grad, gmag, 12, 4 + 6, 1);
    eqr_ctx_destroy(ctx);
}

static void test_xent_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(43);
    int64_t s[2] = {4, 5};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 2, s);
    int32_t lab[4] = {0, 4, 5, 1};
    assert_null(eqr_softmax_cross_entropy(ctx, x, lab));
    tu_assert_error(ctx, EQR_ERR_ARG, "labels[2] = 5");
    lab[2] = 0;
    lab[3] = -1;
    assert_null(eqr_softmax_cross_entropy(ctx, x, lab));
    tu_assert_error(ctx, EQR_ERR_ARG, "labels[3] = -1");
    assert_null(eqr_softmax_cross_entropy(ctx, x, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "labels");
    int64_t s1[1] = {5};
    assert_null(eqr_softmax_cross_entropy(ctx, eqr_tensor_zeros(ctx, 1, s1), lab));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "[5]");
    int64_t s0[2] = {0, 5};
    assert_null(eqr_softmax_cross_entropy(ctx, eqr_tensor_zeros(ctx, 2, s0), lab));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "[0,5]");
    /* a caller's NULL input: EQR_ERR_ARG naming the argument */
    assert_null(eqr_softmax_cross_entropy(ctx, NULL, lab));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    lab[3] = 2;
    eqr_tensor *y = eqr_softmax_cross_entropy(ctx, x, lab);
    assert_non_null(y);
    double r = log(5.0), rmag = log(5.0) + 1; /* zero logits: uniform softmax */
    tu_assert_close_bound("xent uniform", y->data, &r, &rmag, 1, 5 + 4 + 8, 1);
    eqr_ctx_destroy(ctx);
}

/* ---- mse ---- */

static eqr_tensor *mse_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    return eqr_mse(ctx, in[0], in[1]);
}

static eqr_tensor *mse_self_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    /* mse(x, 2x) = mean(x^2): x reaches the loss along two paths */
    return eqr_mse(ctx, in[0], eqr_scale(ctx, in[0], 2.0f));
}

/* mse(a, b) + mean_all(a) + mean_all(b): both inputs already hold
 * gradient when mse's backward runs. */
static eqr_tensor *mse_plus_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    eqr_tensor *l = eqr_mse(ctx, in[0], in[1]);
    return eqr_add(ctx, eqr_add(ctx, l, eqr_mean_all(ctx, in[0])), eqr_mean_all(ctx, in[1]));
}

static void test_mse(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(44);
    int64_t s[3] = {2, 3, 4};
    eqr_tensor *a = tu_input(ctx, "a", 3, s, 1.0f);
    eqr_tensor *b = tu_input(ctx, "b", 3, s, 1.0f);
    eqr_tensor *y = eqr_mse(ctx, a, b);
    assert_non_null(y);
    assert_int_equal(y->ndim, 0);
    double acc = 0;
    for (int i = 0; i < 24; i++) acc += ((double)a->data[i] - b->data[i]) * ((double)a->data[i] - b->data[i]);
    double ref = acc / 24;
    /* 24 rounded differences squared (positive terms: mag = ref), summed, / 24 */
    tu_assert_close_bound("mse", y->data, &ref, &ref, 1, 24 + 3, 1);
    eqr_tensor *in[2] = {a, b};
    tu_gradcheck(ctx, mse_fn, in, 2, NULL, 1e-2, 27 /* diff, square, sum of 24, scale */);
    tu_gradcheck(ctx, mse_self_fn, &a, 1, NULL, 1e-2, 27);
    tu_gradcheck(ctx, mse_plus_fn, in, 2, NULL, 1e-2, 28);
    /* same tensor on both sides: zero loss, zero gradient */
    eqr_grad_zero(ctx);
    eqr_step_reset(ctx);
    y = eqr_mse(ctx, a, a);
    assert_true(y->data[0] == 0.0f);
    assert_int_equal(eqr_backward(ctx, y), EQR_OK);
    for (int i = 0; i < 24; i++) assert_true(a->grad[i] == 0.0f);
    eqr_ctx_destroy(ctx);
}

static void test_mse_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(45);
    int64_t s23[2] = {2, 3}, s32[2] = {3, 2}, s6[1] = {6};
    eqr_tensor *a = eqr_tensor_zeros(ctx, 2, s23);
    assert_null(eqr_mse(ctx, a, eqr_tensor_zeros(ctx, 2, s32)));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "[2,3] and [3,2]");
    assert_null(eqr_mse(ctx, a, eqr_tensor_zeros(ctx, 1, s6))); /* no broadcasting either */
    tu_assert_error(ctx, EQR_ERR_SHAPE, "eqr_mse");
    assert_null(eqr_mse(ctx, a, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_null(eqr_mse(ctx, NULL, a));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xent_forward_backward), cmocka_unit_test(test_xent_stable_and_copied),
        cmocka_unit_test(test_xent_errors),           cmocka_unit_test(test_mse),
        cmocka_unit_test(test_mse_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
