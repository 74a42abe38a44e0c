/* Ops: pointwise activations (relu, leaky relu, sigmoid, tanh, gelu, silu). */
#include "testutil.h"

#include <math.h>
#include <string.h>

enum { RELU, LEAKY, SIGMOID, TANH, GELU, SILU, NACT };
static const char *const names[NACT] = {"relu", "leaky_relu", "sigmoid", "tanh", "gelu", "silu"};
#define SLOPE 0.1f

static eqr_tensor *apply(eqr_ctx *ctx, int op, eqr_tensor *x) {
    switch (op) {
    case RELU: return eqr_relu(ctx, x);
    case LEAKY: return eqr_leaky_relu(ctx, x, SLOPE);
    case SIGMOID: return eqr_sigmoid(ctx, x);
    case TANH: return eqr_tanh(ctx, x);
    case GELU: return eqr_gelu(ctx, x);
    default: return eqr_silu(ctx, x);
    }
}

static double ref_act(int op, double v) {
    switch (op) {
    case RELU: return v > 0 ? v : 0.0;
    case LEAKY: return v > 0 ? v : (double)SLOPE * v;
    case SIGMOID: return 1.0 / (1.0 + exp(-v));
    case TANH: return tanh(v);
    case GELU: return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
    default: return v / (1.0 + exp(-v));
    }
}

static eqr_tensor *act_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    return apply(ctx, *(int *)user, in[0]);
}

/* Random values pushed at least 0.1 away from the kink at 0. */
static eqr_tensor *input_off_zero(eqr_ctx *ctx, const char *name, int ndim, const int64_t *shape,
                                  float std) {
    eqr_tensor *x = tu_input(ctx, name, ndim, shape, std);
    for (int64_t i = 0; i < x->numel; i++) x->data[i] += x->data[i] >= 0 ? 0.1f : -0.1f;
    return x;
}

static void test_forward(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(21);
    int64_t s[3] = {2, 5, 7};
    eqr_tensor *x = tu_input(ctx, "x", 3, s, 2.0f);
    /* include saturating magnitudes: must stay finite and exact */
    const float big[6] = {-100.0f, -30.0f, -8.0f, 8.0f, 30.0f, 100.0f};
    memcpy(x->data, big, sizeof big);
    double ref[70], mag[70];
    for (int64_t i = 0; i < x->numel; i++) mag[i] = fabs(x->data[i]);
    for (int op = 0; op < NACT; op++) {
        eqr_tensor *y = apply(ctx, op, x);
        assert_non_null(y);
        assert_true(eqr_tensor_same_shape(x, y));
        for (int64_t i = 0; i < x->numel; i++) {
            assert_true(isfinite(y->data[i]));
            ref[i] = ref_act(op, x->data[i]);
        }
        /* exp (the library's sigmoid: <= 3 u), tanh/erf (libm, a few ulp) and a few rounded ops around them;
         * x (1 + erf(x / sqrt 2)) / 2 cancels for x < 0: floor |x| */
        tu_assert_close_rel(names[op], y->data, ref, mag, x->numel, 8);
    }
    /* ndim 0 keeps ndim 0 */
    eqr_tensor *sc = eqr_gelu(ctx, eqr_tensor_scalar(ctx, 1.0f));
    assert_int_equal(sc->ndim, 0);
    double r1 = ref_act(GELU, 1.0);
    tu_assert_close_rel("gelu scalar", sc->data, &r1, NULL, 1, 8);
    eqr_ctx_destroy(ctx);
}

/* act(x) + x: add's backward fills x's gradient before the activation's
 * backward runs, which must add to it rather than overwrite it. */
static eqr_tensor *act_plus_x_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    return eqr_add(ctx, apply(ctx, *(int *)user, in[0]), in[0]);
}

static void test_backward(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(22);
    int64_t s[2] = {4, 6};
    eqr_tensor *x = input_off_zero(ctx, "x", 2, s, 1.5f);
    for (int op = 0; op < NACT; op++) {
        tu_gradcheck(ctx, act_fn, &x, 1, &op, 1e-2, 10 /* libm exp/tanh/erf (few ulp) and a few ops around them */);
        tu_gradcheck(ctx, act_plus_x_fn, &x, 1, &op, 1e-2, 11);
    }
    eqr_ctx_destroy(ctx);
}

/* Gradients at saturating inputs are finite and match the closed forms. */
static void test_backward_saturated(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(23);
    int64_t s[1] = {4};
    eqr_tensor *x = tu_input(ctx, "x", 1, s, 1.0f);
    const float v[4] = {-100.0f, -20.0f, 20.0f, 100.0f};
    memcpy(x->data, v, sizeof v);
    for (int op = 0; op < NACT; op++) {
        eqr_grad_zero(ctx);
        eqr_step_reset(ctx);
        eqr_tensor *y = eqr_sum_all(ctx, apply(ctx, op, x));
        assert_int_equal(eqr_backward(ctx, y), EQR_OK);
        double ref[4];
        for (int i = 0; i < 4; i++) {
            assert_true(isfinite(x->grad[i]));
            double sg = 1.0 / (1.0 + exp(-(double)v[i]));
            double d;
            switch (op) {
            case RELU: d = v[i] > 0; break;
            case LEAKY: d = v[i] > 0 ? 1.0 : SLOPE; break;
            case SIGMOID: d = sg * (1 - sg); break;
            case TANH: d = 1 - tanh(v[i]) * tanh(v[i]); break;
            case GELU:
                d = 0.5 * (1 + erf(v[i] / sqrt(2.0))) + v[i] * exp(-0.5 * v[i] * v[i]) / sqrt(2 * 3.14159265358979323846);
                break;
            default: d = sg * (1 + v[i] * (1 - sg)); break;
            }
            ref[i] = d;
        }
        /* the closed forms add terms of size <= 1 (sigmoid, 1 - sigmoid,
         * (1 + erf) / 2) that cancel at saturation: floor 1 */
        const double one[4] = {1, 1, 1, 1};
        tu_assert_close_rel(names[op], x->grad, ref, one, 4, 8);
    }
    eqr_ctx_destroy(ctx);
}

/* relu(x) - relu(-x) = x: the two uses of x accumulate into one gradient of 1. */
static void test_accumulate(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(24);
    int64_t s[1] = {9};
    eqr_tensor *x = input_off_zero(ctx, "x", 1, s, 1.0f);
    eqr_tensor *neg = eqr_relu(ctx, eqr_scale(ctx, x, -1.0f));
    eqr_tensor *y = eqr_sum_all(ctx, eqr_sub(ctx, eqr_relu(ctx, x), neg));
    assert_int_equal(eqr_backward(ctx, y), EQR_OK);
    double ones[9];
    for (int i = 0; i < 9; i++) ones[i] = 1.0;
    tu_assert_close("relu(x)-relu(-x)", x->grad, ones, 9, 0.0, 0.0);
    eqr_ctx_destroy(ctx);
}

static void test_null_and_error_state(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(25);
    for (int op = 0; op < NACT; op++) {
        assert_null(apply(ctx, op, NULL));
        tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    }
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    int64_t s[1] = {3};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 1, s);
    int64_t bad[1] = {-1};
    assert_null(eqr_tensor_zeros(ctx, 1, bad));
    char first[512];
    strcpy(first, eqr_error_message(ctx));
    for (int op = 0; op < NACT; op++) assert_null(apply(ctx, op, x));
    assert_string_equal(first, eqr_error_message(ctx));
    eqr_error_clear(ctx);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward),    cmocka_unit_test(test_backward),
        cmocka_unit_test(test_backward_saturated), cmocka_unit_test(test_accumulate),
        cmocka_unit_test(test_null_and_error_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
