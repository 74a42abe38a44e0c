/* Equivariant linear layer between irreps: forward vs a naive double
 * reference, gradcheck, equivariance under random rotations and parity,
 * and the mismatched-irreps error. */
#include "testutil.h"

#include <math.h>
#include <string.h>

/* out = |layer|(v): the layer's map with every weight (and the fan-in
 * scale) taken in absolute value, applied in double to v >= 0, [n, dim a]
 * -> [n, dim b]: the magnitude sum of the layer's float sums. */
static void lin_abs(const eqr_irreps *a, const eqr_irreps *b, const float *W, int n,
                    const double *v, double *out) {
    int din = (int)eqr_irreps_dim(a), dout = (int)eqr_irreps_dim(b);
    memset(out, 0, sizeof(double) * (size_t)n * dout);
    int64_t woff = 0;
    for (int eb = 0; eb < b->n; eb++) {
        int fan = 0;
        for (int ea = 0; ea < a->n; ea++)
            if (a->e[ea].l == b->e[eb].l && a->e[ea].p == b->e[eb].p) fan += a->e[ea].mul;
        for (int ea = 0; ea < a->n; ea++) {
            if (a->e[ea].l != b->e[eb].l || a->e[ea].p != b->e[eb].p) continue;
            int d = 2 * a->e[ea].l + 1, mu = a->e[ea].mul, mw = b->e[eb].mul;
            int64_t oa = eqr_irreps_offset(a, ea), ob = eqr_irreps_offset(b, eb);
            for (int r = 0; r < n; r++)
                for (int w = 0; w < mw; w++)
                    for (int m = 0; m < d; m++)
                        for (int u = 0; u < mu; u++)
                            out[r * dout + ob + w * d + m] +=
                                fabs(W[woff + w * mu + u]) * v[r * din + oa + u * d + m] / sqrt((double)fan);
            woff += mu * mw;
        }
    }
}

/* v[r, i] replaced by the 2-norm of the irrep block (2l+1 components) it is
 * in: for an orthogonal D, sum_j |D_ij| v_j <= that norm (Cauchy-Schwarz, a
 * row of D has norm 1). */
static void block_norms(const eqr_irreps *ir, int n, double *v) {
    int dim = (int)eqr_irreps_dim(ir);
    for (int r = 0; r < n; r++) {
        int64_t o = 0;
        for (int k = 0; k < ir->n; k++) {
            int d = 2 * ir->e[k].l + 1;
            for (int u = 0; u < ir->e[k].mul; u++, o += d) {
                double s = 0;
                for (int i = 0; i < d; i++) s += v[r * dim + o + i] * v[r * dim + o + i];
                for (int i = 0; i < d; i++) v[r * dim + o + i] = sqrt(s);
            }
        }
    }
}

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
        double d2[N * 64], ax[N * 64], agx[N * 64], m1[N * 64], m2[N * 64];
        for (int i = 0; i < N * dout; i++) d2[i] = gy[i];
        for (int i = 0; i < N * din; i++) {
            ax[i] = fabsf(x->data[i]);
            agx[i] = fabsf(gx->data[i]);
        }
        /* both sides against the exact D_b W x = W D_a x: the action is
         * summed in double and rounded once (u |.|, plus ~1e-15 for D in
         * double); y2 = W gx, sums of <= 4 terms and the fan-in scale: within
         * gamma_6 |W| |gx|, plus |W| u |gx| from gx; gy = D_b y1: u |gy| (the
         * u |ref| of the check) plus |D_b| gamma_6 |W| |x|, <= the block norms
         * of gamma_6 |W| |x|. So gamma_8 of mag = |W| |gx| + blocknorm(|W| |x|) */
        lin_abs(&a, &b, eqr_irreps_linear_weight(g_lin)->data, N, agx, m1);
        lin_abs(&a, &b, eqr_irreps_linear_weight(g_lin)->data, N, ax, m2);
        block_norms(&b, N, m2);
        for (int i = 0; i < N * dout; i++) m1[i] += m2[i];
        tu_assert_close_bound("linear equivariance", y2->data, d2, m1, N * dout, 8, 1);
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
    /* tu_equiv_bound (its gamma_3 rotation terms bound the act, which is
     * rounded once): depth 8 (4-term sums and the fan-in scale of the linear,
     * the mean of 4 positions and its division, the subtraction and add);
     * amp 4: pos - mean cancels the translation t ~ N(0, 1) against positions
     * ~ N(0, 1), |t| + |p| over |p - c| a few */
    const double tol = tu_equiv_bound(8, 4.0);
    if (!(rel >= 0 && rel <= tol)) fail_msg("equivariance error %g > %g", rel, tol);
    assert_memory_equal(keep, x->data, sizeof(float) * x->numel);
    m.broken = 1;
    assert_int_equal(eqr_irreps_equivariance(ctx, f_model, &m, &a, &b, x, pos, 8, all, &rel), EQR_OK);
    assert_true(rel > 1e-2); /* a broken model: far above any rounding (not a rounding bound) */
    /* without translations the absolute position is still rotation-equivariant */
    assert_int_equal(eqr_irreps_equivariance(ctx, f_model, &m, &a, &b, x, pos, 8, EQR_EQ_PARITY, &rel), EQR_OK);
    if (!(rel >= 0 && rel <= tol)) fail_msg("rotation-only error %g > %g", rel, tol);
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
