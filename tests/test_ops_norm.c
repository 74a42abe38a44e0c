/* Ops: batch normalisation (training and evaluation) and dropout. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define H 1e-2
#define DEPTH 70 /* mean and variance over <= 30 values each (2 * 30), sqrt, divide, scale, shift */

/* Double reference of batch norm over [N, C, S] (training: batch
 * statistics, biased variance for y, unbiased for the running update),
 * returns the updated running statistics (rm, rv updated in place).
 * Error-bound scales for tu_assert_close_bound with nsum = M + BN_OPS,
 * M = N S (may be NULL): ymag per output, rmag / rvmag per channel, the
 * last two in-out (they carry the previous updates' error, times 1 - mom).
 * Derivation, G = gamma_{M+BN_OPS}: mu is off by <= G mean|x|, x - mu by
 * <= G (|x| + mean|x|); the variance, by any one- or two-pass formula, by
 * <= G (E[x^2] + mu^2), so 1/sqrt(var + eps) by a relative
 * G ((E[x^2] + mu^2) / (2 (var + eps)) + 1); then the affine step's
 * roundings, G (|y| + |b|). */
#define BN_OPS 10
static void bn_ref(const float *x, int64_t N, int64_t C, int64_t S, const float *g,
                   const float *b, double *rm, double *rv, double mom, double eps, int training,
                   double *y, double *ymag, double *rmag, double *rvmag) {
    const int64_t M = N * S;
    for (int64_t c = 0; c < C; c++) {
        double mu, var, ma = 0, m2 = 0; /* mean |x|, E[x^2] */
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < S; k++) {
                double v = x[(n * C + c) * S + k];
                ma += fabs(v) / (double)M;
                m2 += v * v / (double)M;
            }
        if (training) {
            double s = 0, s2 = 0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t k = 0; k < S; k++) s += x[(n * C + c) * S + k];
            mu = s / (double)(N * S);
            for (int64_t n = 0; n < N; n++)
                for (int64_t k = 0; k < S; k++) {
                    double d = x[(n * C + c) * S + k] - mu;
                    s2 += d * d;
                }
            var = s2 / (double)(N * S);
            if (rm) {
                if (rmag) rmag[c] = (1 - mom) * (rmag[c] + fabs(rm[c])) + mom * ma;
                if (rvmag)
                    rvmag[c] = (1 - mom) * (rvmag[c] + fabs(rv[c])) +
                               mom * (m2 + mu * mu) * (double)M / (double)(M - 1);
                rm[c] = (1 - mom) * rm[c] + mom * mu;
                rv[c] = (1 - mom) * rv[c] + mom * s2 / (double)(N * S - 1);
            }
        } else {
            mu = rm[c];
            var = rv[c];
            ma = fabs(mu); /* exact inputs here: only x - mu rounds */
            m2 = 0;
        }
        double inv = 1.0 / sqrt(var + eps), gc = g ? g[c] : 1.0, bc = b ? b[c] : 0.0;
        double irel = (m2 + mu * mu) / (2 * (var + eps)) + 1;
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < S; k++) {
                int64_t i = (n * C + c) * S + k;
                y[i] = (x[i] - mu) * inv * gc + bc;
                if (ymag)
                    ymag[i] = fabs(gc) * inv * (fabs(x[i]) + ma + fabs(x[i] - mu) * irel) +
                              fabs(y[i]) + fabs(bc);
            }
    }
}

/* Mean of channel c of [N, C, S]. */
static double chan_mean(const float *x, int64_t N, int64_t C, int64_t S, int64_t c) {
    double s = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < S; k++) s += x[(n * C + c) * S + k];
    return s / (double)(N * S);
}

static eqr_tensor *buffer(eqr_ctx *ctx, const char *name, int64_t C, float v0, float dv) {
    int64_t s[1] = {C};
    eqr_tensor *t = eqr_param_create(ctx, name, 1, s, EQR_PARAM_BUFFER);
    assert_non_null(t);
    for (int64_t c = 0; c < C; c++) t->data[c] = v0 + dv * (float)c;
    return t;
}

/* Shift each channel so batch means differ from 0 and from each other. */
static void shift_channels(eqr_tensor *x, float step) {
    int64_t N = x->shape[0], C = x->shape[1], S = x->numel / (N * C);
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t k = 0; k < S; k++) x->data[(n * C + c) * S + k] += step * (float)(c + 1);
}

static void test_batchnorm_train_forward(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    int64_t s[4] = {2, 3, 2, 3}, cs[1] = {3};
    eqr_tensor *x = tu_input(ctx, "x", 4, s, 2.0f);
    shift_channels(x, 1.5f);
    eqr_tensor *g = tu_input(ctx, "g", 1, cs, 1.0f), *b = tu_input(ctx, "b", 1, cs, 1.0f);
    eqr_tensor *rm = buffer(ctx, "rm", 3, 0.5f, 0.25f), *rv = buffer(ctx, "rv", 3, 2.0f, -0.5f);
    double drm[3], drv[3], y[36], ym[36], rmag[3] = {0}, rvmag[3] = {0};
    for (int c = 0; c < 3; c++) {
        drm[c] = rm->data[c];
        drv[c] = rv->data[c];
    }
    eqr_tensor *out = eqr_batchnorm(ctx, x, g, b, rm, rv, 0.1f, 1e-5f, 1);
    assert_non_null(out);
    assert_true(eqr_tensor_same_shape(out, x));
    bn_ref(x->data, 2, 3, 6, g->data, b->data, drm, drv, 0.1, 1e-5, 1, y, ym, rmag, rvmag);
    tu_assert_close_bound("bn train", out->data, y, ym, 36, 12 + BN_OPS, 1);
    tu_assert_close_bound("running mean", rm->data, drm, rmag, 3, 12 + BN_OPS, 1);
    tu_assert_close_bound("running var", rv->data, drv, rvmag, 3, 12 + BN_OPS, 1);
    /* the update moved the statistics towards the batch (not a no-op) */
    assert_true(fabs(drm[2] - (0.5 + 0.5)) > 1e-3);
    /* a second step applies the momentum again */
    out = eqr_batchnorm(ctx, x, g, b, rm, rv, 0.1f, 1e-5f, 1);
    assert_non_null(out);
    bn_ref(x->data, 2, 3, 6, g->data, b->data, drm, drv, 0.1, 1e-5, 1, y, ym, rmag, rvmag);
    tu_assert_close_bound("running mean 2", rm->data, drm, rmag, 3, 12 + BN_OPS, 1);
    tu_assert_close_bound("running var 2", rv->data, drv, rvmag, 3, 12 + BN_OPS, 1);
    /* no-grad mode still trains the statistics; no affine parameters */
    int prev = eqr_grad_set_enabled(ctx, 0);
    out = eqr_batchnorm(ctx, x, NULL, NULL, rm, rv, 1.0f, 1e-3f, 1);
    eqr_grad_set_enabled(ctx, prev);
    assert_non_null(out);
    bn_ref(x->data, 2, 3, 6, NULL, NULL, drm, drv, 1.0, 1e-3, 1, y, ym, rmag, rvmag);
    tu_assert_close_bound("bn train no affine", out->data, y, ym, 36, 12 + BN_OPS, 1);
    tu_assert_close_bound("running mean m=1", rm->data, drm, rmag, 3, 12 + BN_OPS, 1);
    tu_assert_close_bound("running var m=1", rv->data, drv, rvmag, 3, 12 + BN_OPS, 1);
    /* 2-D input [N,C] */
    int64_t s2[2] = {5, 3};
    eqr_tensor *x2 = tu_input(ctx, "x2", 2, s2, 1.0f);
    out = eqr_batchnorm(ctx, x2, g, NULL, NULL, NULL, 0.1f, 1e-5f, 1);
    assert_non_null(out);
    double y2[15], ym2[15];
    bn_ref(x2->data, 5, 3, 1, g->data, NULL, NULL, NULL, 0.1, 1e-5, 1, y2, ym2, NULL, NULL);
    tu_assert_close_bound("bn train 2d", out->data, y2, ym2, 15, 5 + BN_OPS, 1);
    eqr_ctx_destroy(ctx);
}

typedef struct {
    int use_affine, training;
    eqr_tensor *rm, *rv;
} bn_args;

static eqr_tensor *f_bn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    const bn_args *a = user;
    return eqr_batchnorm(ctx, in[0], a->use_affine ? in[1] : NULL, a->use_affine ? in[2] : NULL,
                         a->rm, a->rv, 0.1f, 1e-5f, a->training);
}

static void test_batchnorm_train_grad(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(2);
    int64_t s[3] = {3, 2, 4}, cs[1] = {2};
    eqr_tensor *x = tu_input(ctx, "x", 3, s, 1.0f);
    shift_channels(x, 0.7f);
    eqr_tensor *g = tu_input(ctx, "g", 1, cs, 1.0f), *b = tu_input(ctx, "b", 1, cs, 1.0f);
    g->data[0] = 1.3f; /* away from 0 so dx is not tiny */
    g->data[1] = -0.8f;
    eqr_tensor *in[3] = {x, g, b};
    bn_args a = {1, 1, buffer(ctx, "rm", 2, 0.0f, 0.0f), buffer(ctx, "rv", 2, 1.0f, 0.0f)};
    tu_gradcheck(ctx, f_bn, in, 3, &a, H, DEPTH);
    /* through the batch statistics the gradient of sum(y) w.r.t. x is zero;
     * a backward that ignored them would give gamma * invstd instead */
    eqr_grad_zero(ctx);
    eqr_step_reset(ctx);
    tu_backward_ones(ctx, f_bn(ctx, in, &a));
    /* dx = g inv (1 - mean(1) - xh mean(xh * 1)): terms of size |g| inv and
     * |g| inv |xh| mean|xh|, each from sums of M = 12 terms, cancelling */
    double zero[24] = {0}, xh[24], zmag[24], xhmax = 0;
    bn_ref(x->data, 3, 2, 4, NULL, NULL, NULL, NULL, 0.1, 1e-5, 1, xh, NULL, NULL, NULL);
    for (int i = 0; i < 24; i++) xhmax = fmax(xhmax, fabs(xh[i]));
    for (int i = 0; i < 24; i++) {
        int c = (i / 4) % 2;
        double inv = fabs(xh[i]) > 0 ? fabs(xh[i] / ((double)x->data[i] - chan_mean(x->data, 3, 2, 4, c))) : 0;
        zmag[i] = fabs(g->data[c]) * inv * (2 + 2 * fabs(xh[i]) * xhmax);
    }
    tu_assert_close_bound("sum(y) grad", x->grad, zero, zmag, 24, 12 + BN_OPS, 1);
    eqr_step_reset(ctx);
    /* 4-D, no affine parameters, no running statistics */
    int64_t s4[4] = {2, 3, 2, 2};
    eqr_tensor *x4 = tu_input(ctx, "x4", 4, s4, 1.5f);
    bn_args a2 = {0, 1, NULL, NULL};
    tu_gradcheck(ctx, f_bn, &x4, 1, &a2, H, DEPTH);
    /* rows longer than the 8-lane reductions (S = 15), forward and backward */
    int64_t s5[4] = {2, 2, 3, 5};
    eqr_tensor *x5 = tu_input(ctx, "x5", 4, s5, 1.0f);
    shift_channels(x5, -2.0f);
    eqr_tensor *y5 = eqr_batchnorm(ctx, x5, g, b, NULL, NULL, 0.1f, 1e-5f, 1);
    assert_non_null(y5);
    double r5[60], m5[60];
    bn_ref(x5->data, 2, 2, 15, g->data, b->data, NULL, NULL, 0.1, 1e-5, 1, r5, m5, NULL, NULL);
    tu_assert_close_bound("bn train S=15", y5->data, r5, m5, 60, 30 + BN_OPS, 1);
    in[0] = x5;
    tu_gradcheck(ctx, f_bn, in, 3, &a, H, DEPTH);
    eqr_ctx_destroy(ctx);
}

static void test_batchnorm_eval(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(3);
    int64_t s[3] = {2, 3, 4}, cs[1] = {3};
    eqr_tensor *x = tu_input(ctx, "x", 3, s, 1.0f);
    eqr_tensor *g = tu_input(ctx, "g", 1, cs, 1.0f), *b = tu_input(ctx, "b", 1, cs, 1.0f);
    eqr_tensor *rm = buffer(ctx, "rm", 3, -0.3f, 0.4f), *rv = buffer(ctx, "rv", 3, 0.5f, 0.75f);
    double drm[3], drv[3], y[24], ym[24];
    for (int c = 0; c < 3; c++) {
        drm[c] = rm->data[c];
        drv[c] = rv->data[c];
    }
    eqr_tensor *out = eqr_batchnorm(ctx, x, g, b, rm, rv, 0.1f, 1e-5f, 0);
    assert_non_null(out);
    bn_ref(x->data, 2, 3, 4, g->data, b->data, drm, drv, 0.1, 1e-5, 0, y, ym, NULL, NULL);
    tu_assert_close_bound("bn eval", out->data, y, ym, 24, BN_OPS, 1);
    /* evaluation leaves the running statistics alone */
    tu_assert_close("eval rm unchanged", rm->data, drm, 3, 0, 0);
    tu_assert_close("eval rv unchanged", rv->data, drv, 3, 0, 0);
    eqr_tensor *in[3] = {x, g, b};
    bn_args a = {1, 0, rm, rv};
    tu_gradcheck(ctx, f_bn, in, 3, &a, H, DEPTH);
    /* in evaluation the gradient of sum(y) is gamma / sqrt(rv + eps) */
    eqr_grad_zero(ctx);
    eqr_step_reset(ctx);
    tu_backward_ones(ctx, f_bn(ctx, in, &a));
    double gx[24];
    for (int i = 0; i < 24; i++) gx[i] = g->data[(i / 4) % 3] / sqrt(drv[(i / 4) % 3] + 1e-5);
    /* rv + eps, sqrt, divide (or multiply by 1/sqrt), times g, added once */
    tu_assert_close_rel("eval grad", x->grad, gx, NULL, 24, 5);
    eqr_step_reset(ctx);
    eqr_ctx_destroy(ctx);
}

static void test_batchnorm_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(4);
    int64_t s[3] = {2, 3, 5}, s1[1] = {3}, s4[1] = {4}, s23[2] = {1, 3};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 3, s);
    eqr_tensor_uniform(x, eqr_ctx_rng(ctx), -1, 1);
    eqr_tensor *g3 = eqr_tensor_zeros(ctx, 1, s1), *g4 = eqr_tensor_zeros(ctx, 1, s4);
    eqr_tensor *rm = buffer(ctx, "rm", 3, 0.25f, 0.0f), *rv = buffer(ctx, "rv", 3, 1.0f, 0.0f);
    eqr_tensor *rv4 = buffer(ctx, "rv4", 4, 1.0f, 0.0f);
    assert_null(eqr_batchnorm(ctx, x, g4, NULL, rm, rv, 0.1f, 1e-5f, 1));
    tu_assert_error(ctx, EQR_ERR_SHAPE,
                    "gamma has shape [4], expected [3] (channels of x [2,3,5])");
    assert_null(eqr_batchnorm(ctx, x, g3, g4, rm, rv, 0.1f, 1e-5f, 1));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "beta has shape [4]");
    assert_null(eqr_batchnorm(ctx, x, NULL, NULL, rm, rv4, 0.1f, 1e-5f, 1));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "running_var has shape [4]");
    /* failed calls leave the running statistics untouched */
    for (int c = 0; c < 3; c++) {
        assert_true(rm->data[c] == 0.25f);
        assert_true(rv->data[c] == 1.0f);
    }
    assert_null(eqr_batchnorm(ctx, x, NULL, NULL, NULL, NULL, 0.1f, 1e-5f, 0));
    tu_assert_error(ctx, EQR_ERR_ARG,
                    "evaluation (training = 0) needs running_mean and running_var");
    assert_null(eqr_batchnorm(ctx, x, NULL, NULL, rm, NULL, 0.1f, 1e-5f, 1));
    tu_assert_error(ctx, EQR_ERR_ARG, "together");
    assert_null(eqr_batchnorm(ctx, g3, NULL, NULL, NULL, NULL, 0.1f, 1e-5f, 1));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "must be [N,C,...], got [3]");
    eqr_tensor *one = eqr_tensor_zeros(ctx, 2, s23);
    assert_null(eqr_batchnorm(ctx, one, NULL, NULL, NULL, NULL, 0.1f, 1e-5f, 1));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "more than one value per channel");
    assert_non_null(eqr_batchnorm(ctx, one, NULL, NULL, rm, rv, 0.1f, 1e-5f, 0)); /* eval ok */
    assert_null(eqr_batchnorm(ctx, x, NULL, NULL, rm, rv, 1.5f, 1e-5f, 1));
    tu_assert_error(ctx, EQR_ERR_ARG, "momentum");
    assert_null(eqr_batchnorm(ctx, x, NULL, NULL, rm, rv, 0.1f, -1.0f, 1));
    tu_assert_error(ctx, EQR_ERR_ARG, "eps");
    assert_null(eqr_batchnorm(ctx, NULL, NULL, NULL, rm, rv, 0.1f, 1e-5f, 1));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    eqr_ctx_destroy(ctx);
}

/* ---- dropout ---- */

static void test_dropout_forward(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(5);
    int64_t s[2] = {100, 200};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 2, s);
    eqr_tensor_uniform(x, eqr_ctx_rng(ctx), 0.5f, 1.5f); /* never 0 */
    const float p = 0.3f, scale = 1.0f / (1.0f - p);
    eqr_rng_seed(eqr_ctx_rng(ctx), 99);
    eqr_tensor *y = eqr_dropout(ctx, x, p, 1);
    assert_non_null(y);
    assert_ptr_not_equal(y, x);
    int64_t zeros = 0;
    double sum = 0;
    for (int64_t i = 0; i < x->numel; i++) {
        if (y->data[i] == 0.0f) zeros++;
        /* x * scale or x / (1 - p): within 3 roundings of x * scale */
        else assert_true(fabsf(y->data[i] - x->data[i] * scale) <= 3 * TU_U * fabsf(y->data[i]));
        sum += y->data[i] - x->data[i];
    }
    /* statistical bounds at 4 standard deviations (a false alarm ~6e-5 per
     * check for a random seed): frac is binomial, sd sqrt(p (1 - p) / n);
     * y - x = x (mask / (1 - p) - 1) has mean 0 and variance E[x^2] p / (1 - p) */
    double n = (double)x->numel, frac = (double)zeros / n, ex2 = 0;
    for (int64_t i = 0; i < x->numel; i++) ex2 += (double)x->data[i] * x->data[i] / n;
    assert_true(fabs(frac - p) < 4 * sqrt(p * (1 - p) / n));
    assert_true(fabs(sum / n) < 4 * sqrt(ex2 * p / (1 - p) / n)); /* unbiased in expectation */
    /* equal seeds give equal masks; the next call draws a new one */
    eqr_rng_seed(eqr_ctx_rng(ctx), 99);
    eqr_tensor *y2 = eqr_dropout(ctx, x, p, 1);
    assert_memory_equal(y->data, y2->data, (size_t)x->numel * sizeof(float));
    eqr_tensor *y3 = eqr_dropout(ctx, x, p, 1);
    assert_memory_not_equal(y->data, y3->data, (size_t)x->numel * sizeof(float));
    /* identity when evaluating or when p == 0 */
    assert_ptr_equal(eqr_dropout(ctx, x, p, 0), x);
    assert_ptr_equal(eqr_dropout(ctx, x, 0.0f, 1), x);
    eqr_ctx_destroy(ctx);
}

static eqr_tensor *f_dropout(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    eqr_rng_seed(eqr_ctx_rng(ctx), 777); /* the same mask in every forward */
    return eqr_dropout(ctx, in[0], 0.4f, 1);
}

static void test_dropout_grad(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(6);
    int64_t s[3] = {4, 5, 6};
    eqr_tensor *x = tu_input(ctx, "x", 3, s, 1.0f);
    tu_gradcheck(ctx, f_dropout, &x, 1, NULL, H, DEPTH);
    /* the gradient is the mask: 0 where dropped, 1/(1-p) where kept */
    eqr_grad_zero(ctx);
    eqr_tensor *y = f_dropout(ctx, &x, NULL);
    tu_backward_ones(ctx, y);
    int dropped = 0;
    double ref[120];
    for (int i = 0; i < 120; i++) {
        dropped += y->data[i] == 0.0f;
        ref[i] = y->data[i] == 0.0f ? 0.0 : 1.0 / (1.0 - 0.4f);
    }
    assert_true(dropped > 20 && dropped < 100);
    /* 1 / (1 - p) in float: <= 3 roundings */
    tu_assert_close_rel("dropout grad", x->grad, ref, NULL, 120, 3);
    eqr_step_reset(ctx);
    eqr_ctx_destroy(ctx);
}

static void test_dropout_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(7);
    int64_t s[1] = {4};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 1, s);
    assert_null(eqr_dropout(ctx, x, 1.0f, 1));
    tu_assert_error(ctx, EQR_ERR_ARG, "p must be in [0, 1), got 1");
    assert_null(eqr_dropout(ctx, x, -0.1f, 0));
    tu_assert_error(ctx, EQR_ERR_ARG, "eqr_dropout");
    assert_null(eqr_dropout(ctx, x, NAN, 1));
    tu_assert_error(ctx, EQR_ERR_ARG, "eqr_dropout");
    assert_null(eqr_dropout(ctx, NULL, 0.5f, 1));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batchnorm_train_forward), cmocka_unit_test(test_batchnorm_train_grad),
        cmocka_unit_test(test_batchnorm_eval),          cmocka_unit_test(test_batchnorm_errors),
        cmocka_unit_test(test_dropout_forward),         cmocka_unit_test(test_dropout_grad),
        cmocka_unit_test(test_dropout_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
