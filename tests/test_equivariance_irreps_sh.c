/* The differentiable spherical-harmonics op eqr_sh: values against the
 * double function, gradient by central differences, equivariance
 * Y(R r) = D(R) Y(r) in float, finite at r = 0 and on the axes. */
#include "testutil.h"

#include <math.h>
#include <string.h>

enum { N = 7, L = 3, M = (L + 1) * (L + 1) };

static eqr_tensor *f_sh(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    return eqr_sh(ctx, in[0], L, EQR_SH_COMPONENT, 1);
}
static eqr_tensor *f_sh_raw(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    return eqr_sh(ctx, in[0], L, EQR_SH_INTEGRAL, 0);
}

static void test_sh_op(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(9);
    int64_t shape[2] = {N, 3};
    eqr_tensor *r = tu_input(ctx, "r", 2, shape, 1.0f);
    r->data[0] = 0; r->data[1] = 0; r->data[2] = 1.5f; /* along z */
    eqr_tensor *y = eqr_sh(ctx, r, L, EQR_SH_COMPONENT, 1);
    assert_non_null(y);
    double ref[N * M], v[M];
    for (int i = 0; i < N; i++) {
        double rr[3] = {r->data[3 * i], r->data[3 * i + 1], r->data[3 * i + 2]};
        eqr_o3_sh(ctx, L, EQR_SH_COMPONENT, 1, rr, v, NULL);
        memcpy(ref + i * M, v, sizeof v);
    }
    /* one float rounding of values bounded by sqrt(2l+1) <= sqrt(7) */
    tu_assert_close_rel("sh forward", y->data, ref, NULL, N * M, 2); /* + the double reference's own error */
    /* finite differences in float: step 1e-2, error O(h^2 |Y'''|) + eps/h */
    eqr_tensor *in[1] = {r};
    tu_gradcheck(ctx, f_sh, in, 1, NULL, 1e-2, 24 /* degree <= L recurrences, the normalisation */);
    tu_gradcheck(ctx, f_sh_raw, in, 1, NULL, 1e-2, 24);
    /* equivariance in float: sh(R r) vs D(R) sh(r) */
    eqr_step_reset(ctx);
    double R[9];
    double ax[3] = {0.3, -0.5, 0.8};
    eqr_o3_wigner_d_axis_angle(ctx, 1, ax, 2.1, R);
    int64_t sh2[2] = {N, 3};
    eqr_tensor *rr = eqr_tensor_zeros(ctx, 2, sh2);
    for (int i = 0; i < N; i++)
        for (int a = 0; a < 3; a++) {
            double t = 0;
            for (int b = 0; b < 3; b++) t += R[3 * a + b] * r->data[3 * i + b];
            rr->data[3 * i + a] = (float)t;
        }
    eqr_tensor *y1 = eqr_sh(ctx, r, L, EQR_SH_COMPONENT, 1), *y2 = eqr_sh(ctx, rr, L, EQR_SH_COMPONENT, 1);
    eqr_irreps ir;
    assert_int_equal(eqr_irreps_parse(ctx, "0e+1o+2e+3o", &ir), EQR_OK);
    float dy[N * M];
    assert_int_equal(eqr_irreps_act(ctx, &ir, R, 1, y1->data, dy, N), EQR_OK);
    double d2[N * M];
    for (int i = 0; i < N * M; i++) d2[i] = dy[i];
    /* Y is computed in double and rounded once (u |Y|) on each side; R r,
     * rounded to float, moves by <= u |r| (2-norm), which moves the unit
     * direction by u and Y^l_m by <= sqrt(l (l+1) (2l+1)) u (the addition
     * theorem: sum_m |grad Y^l_m|^2 on the sphere in component normalisation);
     * D acts on the rounded y1 (u |D||y1|) in double and rounds (u |dy|) */
    for (int l = 0, o = 0; l <= L; o += 2 * l + 1, l++) {
        const int d = 2 * l + 1;
        double D[49];
        assert_int_equal(eqr_o3_wigner_d_axis_angle(ctx, l, ax, 2.1, D), EQR_OK);
        for (int i = 0; i < N; i++)
            for (int m = 0; m < d; m++) {
                double dm = 0;
                for (int j = 0; j < d; j++) dm += fabs(D[m * d + j] * y1->data[i * M + o + j]);
                const int64_t k = (int64_t)i * M + o + m;
                const double tol = TU_U * (fabs(y2->data[k]) + sqrt(l * (l + 1.0) * (2 * l + 1)) + dm + fabs(d2[k])) + 1e-12;
                if (!(fabs(y2->data[k] - d2[k]) <= tol))
                    fail_msg("sh equivariance row %d l %d m %d: %.9g vs %.9g (bound %.3g)", i, l, m, y2->data[k], d2[k], tol);
            }
    }
    /* r = 0 row: Y^0 = 1, rest 0, zero gradient */
    eqr_step_reset(ctx);
    memset(r->data, 0, 3 * sizeof(float));
    y = eqr_sh(ctx, r, L, EQR_SH_COMPONENT, 1);
    assert_true(y->data[0] == 1 && y->data[1] == 0);
    int64_t bad[2] = {N, 2};
    eqr_tensor *b = eqr_tensor_zeros(ctx, 2, bad);
    assert_null(eqr_sh(ctx, b, L, EQR_SH_COMPONENT, 1));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "r must be [N, 3]");
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_sh_op)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
