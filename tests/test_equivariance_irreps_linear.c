/* Equivariant linear layer between irreps: forward vs a naive double
 * reference, gradcheck, equivariance under random rotations and parity,
 * and the mismatched-irreps error. */
#include "testutil.h"

#include <math.h>
#include <string.h>

static eqr_irreps_linear *g_lin;
static eqr_tensor *f_lin(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    (void)in;
    return eqr_irreps_linear_forward(ctx, g_lin, in[0]);
}

static void test_irreps_linear(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(13);
    eqr_irreps a, b;
    assert_int_equal(eqr_irreps_parse(ctx, "3x0e+2x1o+1x1e+2x2e+1x3o", &a), EQR_OK);
    assert_int_equal(eqr_irreps_parse(ctx, "2x0e+3x1o+1x2e+1x0o", &b), EQR_OK);
    g_lin = eqr_irreps_linear_create(ctx, "lin", &a, &b);
    assert_non_null(g_lin);
    enum { N = 4 };
    int din = (int)eqr_irreps_dim(&a), dout = (int)eqr_irreps_dim(&b);
    int64_t shape[2] = {N, din};
    eqr_tensor *x = tu_input(ctx, "x", 2, shape, 1.0f);
    eqr_tensor *y = eqr_irreps_linear_forward(ctx, g_lin, x);
    assert_non_null(y);
    /* naive reference: block by block from the documented weight layout */
    const float *W = eqr_irreps_linear_weight(g_lin)->data;
    double ref[N * 64], bound[N * 64];
    memset(ref, 0, sizeof ref);
    memset(bound, 0, sizeof bound);
    int64_t woff = 0;
    for (int eb = 0; eb < b.n; eb++) {
        int fan = 0;
        for (int ea = 0; ea < a.n; ea++)
            if (a.e[ea].l == b.e[eb].l && a.e[ea].p == b.e[eb].p) fan += a.e[ea].mul;
        for (int ea = 0; ea < a.n; ea++) {
            if (a.e[ea].l != b.e[eb].l || a.e[ea].p != b.e[eb].p) continue;
            int d = 2 * a.e[ea].l + 1, mu = a.e[ea].mul, mw = b.e[eb].mul;
            int64_t oa = eqr_irreps_offset(&a, ea), ob = eqr_irreps_offset(&b, eb);
            for (int r = 0; r < N; r++)
                for (int w = 0; w < mw; w++)
                    for (int m = 0; m < d; m++)
                        for (int u = 0; u < mu; u++) {
                            double t = W[woff + w * mu + u] * (double)x->data[r * din + oa + u * d + m] / sqrt((double)fan);
                            ref[r * dout + ob + w * d + m] += t;
                            bound[r * dout + ob + w * d + m] += fabs(t);
                        }
            woff += mu * mw;
        }
    }
    assert_int_equal(woff, eqr_irreps_linear_weight(g_lin)->numel);
    /* float sums of k <= 4 terms, each a product and a fan-in scale */
    tu_assert_close_bound("forward", y->data, ref, bound, N * dout, 4 + 2, 1);
    /* the 0o output has no matching input: zero */
    assert_true(y->data[dout - 1] == 0);
    eqr_tensor *in[1] = {x};
    tu_gradcheck(ctx, f_lin, in, 1, NULL, 1e-2, 8 /* sums of <= 4 terms, the fan-in scale */);
    /* equivariance: f(g x) = g f(x) for random rotations, proper and improper */
    eqr_rng *rng = eqr_ctx_rng(ctx);
    for (int it = 0; it < 6; it++) {
        eqr_step_reset(ctx);
        /* a random rotation in double: D^1 of a random axis and angle is R */
        double R[9], axis[3] = {eqr_rng_normal(rng), eqr_rng_normal(rng), eqr_rng_normal(rng)};
        assert_int_equal(eqr_o3_wigner_d_axis_angle(ctx, 1, axis, 3.0 * eqr_rng_uniform(rng), R), EQR_OK);
        int s = (it & 1) ? -1 : 1;
        eqr_tensor *gx = eqr_tensor_zeros(ctx, 2, shape);
        assert_int_equal(eqr_irreps_act(ctx, &a, R, s, x->data, gx->data, N), EQR_OK);
        eqr_tensor *y1 = eqr_irreps_linear_forward(ctx, g_lin, x), *y2 = eqr_irreps_linear_forward(ctx, g_lin, gx);
        float gy[N * 64];
        assert_int_equal(eqr_irreps_act(ctx, &b, R, s, y1->data, gy, N), EQR_OK);
        double d2[N * 64];
        for (int i = 0; i < N * dout; i++) d2[i] = gy[i];
        /* three float passes over sums of <= 7 terms of size ~|x| */
        tu_assert_close("linear equivariance", y2->data, d2, N * dout, 1e-5, 1e-5);
    }
    /* mismatched irreps: clear error naming both */
    int64_t bad[2] = {N, din + 1};
    eqr_tensor *xb = eqr_tensor_zeros(ctx, 2, bad);
    assert_null(eqr_irreps_linear_forward(ctx, g_lin, xb));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "layer 3x0e+2x1o+1x1e+2x2e+1x3o -> 2x0e+3x1o+1x2e+1x0o");
    eqr_irreps_linear_destroy(g_lin);
    eqr_ctx_destroy(ctx);
}

/* A linear layer plus the first position's vector relative to the mean
 * position added to the first 1o output: equivariant and translation
 * invariant. The broken variant uses the absolute position (not
 * translation invariant) and, with flip, swaps two 1o components. */
typedef struct { eqr_irreps_linear *lin; int broken; } model;
static eqr_tensor *f_model(eqr_ctx *ctx, eqr_tensor *x, eqr_tensor *pos, void *user) {
    model *m = user;
    eqr_tensor *y = eqr_irreps_linear_forward(ctx, m->lin, x);
    if (!y) return NULL;
    int64_t P = pos->shape[0], dout = y->shape[1];
    float c[3] = {0, 0, 0};
    for (int64_t p = 0; p < P; p++)
        for (int k = 0; k < 3; k++) c[k] += pos->data[3 * p + k] / (float)P;
    for (int64_t r = 0; r < y->shape[0]; r++)
        for (int k = 0; k < 3; k++)
            y->data[r * dout + 2 + k] += pos->data[k] - (m->broken == 1 ? 0 : c[k]);
    if (m->broken == 2)
        for (int64_t r = 0; r < y->shape[0]; r++) {
            float t = y->data[r * dout + 2];
            y->data[r * dout + 2] = y->data[r * dout + 3];
            y->data[r * dout + 3] = t;
        }
    return y;
}

static void test_measure(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(17);
    eqr_irreps a, b;
    eqr_irreps_parse(ctx, "2x0e+2x1o+1x2e+1x1e", &a);
    eqr_irreps_parse(ctx, "2x0e+1x1o+1x2e+1x1e", &b);
    model m = {eqr_irreps_linear_create(ctx, "lin", &a, &b), 0};
    int64_t sx[2] = {5, eqr_irreps_dim(&a)}, sp[2] = {4, 3};
    eqr_tensor *x = tu_input(ctx, "x", 2, sx, 1.0f), *pos = tu_input(ctx, "pos", 2, sp, 1.0f);
    float keep[128];
    memcpy(keep, x->data, sizeof(float) * x->numel);
    double rel = -1;
    unsigned all = EQR_EQ_PARITY | EQR_EQ_TRANSLATION;
    assert_int_equal(eqr_irreps_equivariance(ctx, f_model, &m, &a, &b, x, pos, 8, all, &rel), EQR_OK);
    /* float error of the three passes, relative: a few eps * sqrt(terms) */
    assert_true(rel >= 0 && rel < 1e-5);
    assert_memory_equal(keep, x->data, sizeof(float) * x->numel);
    m.broken = 1;
    assert_int_equal(eqr_irreps_equivariance(ctx, f_model, &m, &a, &b, x, pos, 8, all, &rel), EQR_OK);
    assert_true(rel > 1e-2);
    /* without translations the absolute position is still rotation-equivariant */
    assert_int_equal(eqr_irreps_equivariance(ctx, f_model, &m, &a, &b, x, pos, 8, EQR_EQ_PARITY, &rel), EQR_OK);
    assert_true(rel >= 0 && rel < 1e-5);
    m.broken = 2;
    assert_int_equal(eqr_irreps_equivariance(ctx, f_model, &m, &a, &b, x, pos, 8, 0, &rel), EQR_OK);
    assert_true(rel > 1e-2);
    assert_int_equal(eqr_irreps_equivariance(ctx, f_model, &m, &b, &b, x, pos, 8, 0, &rel), EQR_ERR_SHAPE);
    tu_assert_error(ctx, EQR_ERR_SHAPE, "must end in dim(in)");
    eqr_irreps_linear_destroy(m.lin);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_irreps_linear), cmocka_unit_test(test_measure)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
