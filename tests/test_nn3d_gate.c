/* Gate nonlinearity: double reference, finite-difference gradients, the
 * unit-second-moment constants by quadrature, equivariance under rotations
 * and parity, layout errors. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define H 1e-2
#define DEPTH 10 /* a sigmoid (series exp, divide) times the gated value */

/* "3x0e" scalars, gated "2x1o + 1x0o + 2x2e" (ng = 5 gates). */
#define NS 3
#define NB 3
static const int64_t MUL[NB] = {2, 1, 2};
static const int LS[NB] = {1, 0, 2};
#define NG 5
#define DG (2 * 3 + 1 + 2 * 5)
#define DIN (NS + NG + DG)
#define DOUT (NS + DG)

static double sig(double z) { return 1.0 / (1.0 + exp(-z)); }

static void gate_ref(const float *x, int64_t N, double *y) {
    for (int64_t r = 0; r < N; r++) {
        const float *xr = x + r * DIN;
        double *yr = y + r * DOUT;
        for (int i = 0; i < NS; i++) yr[i] = EQR_GATE_SILU_NORM * xr[i] * sig(xr[i]);
        int k = 0, off = 0;
        for (int b = 0; b < NB; b++)
            for (int64_t u = 0; u < MUL[b]; u++, k++)
                for (int m = 0; m < 2 * LS[b] + 1; m++, off++)
                    yr[NS + off] = EQR_GATE_SIGMOID_NORM * sig(xr[NS + k]) * xr[NS + NG + off];
    }
}

static eqr_tensor *f_gate(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    return eqr_gate(ctx, in[0], NS, NB, MUL, LS);
}

/* The gate on an intermediate s = 1.5 x whose gradient the gate's backward
 * either creates (stores every entry: *user 0, the square term recorded
 * first so its backward runs last) or adds to (*user 1: recorded after). */
static eqr_tensor *f_gate_mid(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    eqr_tensor *s = eqr_scale(ctx, in[0], 1.5f), *sq = NULL, *g = NULL;
    if (*(int *)user) {
        g = eqr_sum_all(ctx, eqr_gate(ctx, s, NS, NB, MUL, LS));
        sq = eqr_sum_all(ctx, eqr_mul(ctx, s, s));
    } else {
        sq = eqr_sum_all(ctx, eqr_mul(ctx, s, s));
        g = eqr_sum_all(ctx, eqr_gate(ctx, s, NS, NB, MUL, LS));
    }
    return eqr_add(ctx, g, sq);
}

static void test_forward_and_grad(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    const int64_t s[2] = {4, DIN};
    eqr_tensor *x = tu_input(ctx, "x", 2, s, 1.5f);
    eqr_tensor *y = eqr_gate(ctx, x, NS, NB, MUL, LS);
    assert_non_null(y);
    assert_int_equal(y->shape[1], DOUT);
    double ref[4 * DOUT];
    gate_ref(x->data, 4, ref);
    /* the library's sigmoid (<= 3 u, eqr__sigmoid_n) and two products:
     * relative error <= 4 u, no cancellation (sigmoid > 0); 6 u */
    tu_assert_close_rel("gate", y->data, ref, NULL, 4 * DOUT, 6);
    tu_gradcheck(ctx, f_gate, &x, 1, NULL, H, DEPTH);
    for (int order = 0; order < 2; order++) tu_gradcheck(ctx, f_gate_mid, &x, 1, &order, H, DEPTH);
    eqr_ctx_destroy(ctx);
}

/* The constants give unit second moment: Simpson on [-16, 16] in double. */
static void test_second_moment(void **state) {
    (void)state;
    const int n = 32000;
    const double a = -16, h = 32.0 / n;
    double s1 = 0, s2 = 0;
    for (int i = 0; i <= n; i++) {
        const double z = a + i * h, w = (i == 0 || i == n) ? 1 : (i % 2 ? 4 : 2);
        const double p = exp(-z * z / 2) / sqrt(2 * 3.14159265358979323846), sg = sig(z);
        s1 += w * p * pow(EQR_GATE_SILU_NORM * z * sg, 2);
        s2 += w * p * pow(EQR_GATE_SIGMOID_NORM * sg, 2);
    }
    assert_true(fabs(s1 * h / 3 - 1.0) < 1e-12);
    assert_true(fabs(s2 * h / 3 - 1.0) < 1e-12);
}

/* Apply g to one row: R on each l=1 copy, the orthogonal Q5 on each l=2 copy,
 * parity sign on odd blocks (1o, 0o); scalars and gates are invariant. */
static void act(const float R[9], const double Q5[25], int improper, const float *in, float *out,
                int has_gates) {
    const int base = has_gates ? NS + NG : NS;
    memcpy(out, in, sizeof(float) * (size_t)base);
    int off = base;
    for (int b = 0; b < NB; b++)
        for (int64_t u = 0; u < MUL[b]; u++) {
            const int d = 2 * LS[b] + 1;
            const float p = (improper && (b == 0 || b == 1)) ? -1.0f : 1.0f;
            for (int i = 0; i < d; i++) {
                double acc = 0;
                for (int j = 0; j < d; j++) {
                    double m = d == 1 ? 1.0 : d == 3 ? R[i * 3 + j] : Q5[i * 5 + j];
                    acc += m * in[off + j];
                }
                out[off + i] = (float)(p * acc);
            }
            off += d;
        }
}

static void test_equivariance(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(2);
    const int64_t s[2] = {1, DIN};
    eqr_rng *rng = eqr_ctx_rng(ctx);
    for (int trial = 0; trial < 8; trial++) {
        float R[9], q[4], A[25], gx[DIN], ygx[DOUT], gyx[DOUT];
        eqr_so3_random(rng, R, q);
        /* an orthogonal 5x5 by Gram-Schmidt of random rows, in double */
        double Q5[25];
        tu_fill_uniform(A, 25, 100 + (uint64_t)trial);
        for (int i = 0; i < 5; i++) {
            for (int j = 0; j < 5; j++) Q5[i * 5 + j] = A[i * 5 + j];
            for (int k = 0; k < i; k++) {
                double dot = 0;
                for (int j = 0; j < 5; j++) dot += Q5[i * 5 + j] * Q5[k * 5 + j];
                for (int j = 0; j < 5; j++) Q5[i * 5 + j] -= dot * Q5[k * 5 + j];
            }
            double nr = 0;
            for (int j = 0; j < 5; j++) nr += Q5[i * 5 + j] * Q5[i * 5 + j];
            for (int j = 0; j < 5; j++) Q5[i * 5 + j] /= sqrt(nr);
        }
        eqr_tensor *x = eqr_tensor_zeros(ctx, 2, s);
        eqr_tensor_normal(x, rng, 1.0f);
        act(R, Q5, trial & 1, x->data, gx, 1);
        eqr_tensor *y = eqr_gate(ctx, x, NS, NB, MUL, LS);
        eqr_tensor *y2 = eqr_gate(ctx, eqr_tensor_from(ctx, 2, s, gx), NS, NB, MUL, LS);
        assert_non_null(y);
        assert_non_null(y2);
        act(R, Q5, trial & 1, y->data, gyx, 0);
        memcpy(ygx, y2->data, sizeof ygx);
        /* each side rounds a d-term action sum (d <= 5) and one product:
         * (d + 2) eps |copy norm|, and a copy's norm <= sqrt(d) times its
         * largest component, so 2 sides * 7 sqrt(5) < 32 eps * max |value| */
        double ref[DOUT], mx = 0;
        for (int i = 0; i < DOUT; i++) {
            ref[i] = gyx[i];
            mx = fmax(mx, fabs(gyx[i]));
        }
        tu_assert_close("gate(gx) vs g gate(x)", ygx, ref, DOUT, 32 * FLT_EPSILON * mx, 0);
        eqr_step_reset(ctx);
    }
    eqr_ctx_destroy(ctx);
}

static void test_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(3);
    const int64_t s[2] = {2, DIN + 1};
    eqr_tensor *x = tu_input(ctx, "x", 2, s, 1.0f);
    assert_null(eqr_gate(ctx, x, NS, NB, MUL, LS));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "x must be [N, 25] (3 scalars + 5 gates + 17 gated)");
    assert_null(eqr_gate(ctx, x, NS, NB, NULL, LS));
    tu_assert_error(ctx, EQR_ERR_ARG, "bad layout");
    const int64_t neg[1] = {-1};
    const int l0[1] = {0};
    assert_null(eqr_gate(ctx, x, NS, 1, neg, l0));
    tu_assert_error(ctx, EQR_ERR_ARG, "gated block 0 has mul -1");
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_and_grad),
        cmocka_unit_test(test_second_moment),
        cmocka_unit_test(test_equivariance),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
