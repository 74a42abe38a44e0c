/* Equivariant layers on field types (include/equirelax/equi_layers.h),
 * nonlinearities (pointwise, norm-ReLU, gated): equivariance for every
 * element of C4 and D4 and the grid-exact elements of C8, SO(2) and O(2);
 * forward against double-precision references; gradients by finite
 * differences. */

#include "testutil.h"
#include "tu_equi_layers.h"

#include "equirelax/equi_layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void ref_norm_relu(const eqr_rep *t, const float *x, const float *bias, int N, int S, double *y) {
    tu_flist f;
    tu_lay_walk(t, &f);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < f.n; k++)
            for (int p = 0; p < S; p++) {
                int64_t at = ((int64_t)n * t->dim + f.off[k]) * S + p;
                double r = 0;
                for (int c = 0; c < f.dim[k]; c++) r += (double)x[at + c * S] * x[at + c * S];
                r = sqrt(r);
                double s = r > 0 ? fmax(r + bias[k], 0.0) / r : 0.0;
                for (int c = 0; c < f.dim[k]; c++) y[at + c * S] = s * x[at + c * S];
            }
}

/* Gated: fields 0..K-1 scaled by sigmoid of the trivial channels that follow
 * them (gate k at channel gate_off + k). */
static void ref_gated(const eqr_rep *t, const float *x, int N, int S, double *y, int *dout) {
    tu_flist f;
    tu_lay_walk(t, &f);
    int K = f.n / 2, go = f.off[K];
    for (int k = K; k < f.n; k++) assert_int_equal(f.kind[k], K_TRIV);
    *dout = go;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            for (int p = 0; p < S; p++) {
                double gt = x[((int64_t)n * t->dim + go + k) * S + p];
                double s = 1.0 / (1.0 + exp(-gt));
                for (int c = 0; c < f.dim[k]; c++)
                    y[((int64_t)n * go + f.off[k] + c) * S + p] =
                        s * x[((int64_t)n * t->dim + f.off[k] + c) * S + p];
            }
}

/* ===================================================== nonlinearities */

static void test_nonlin_equivariant(void **state) {
    (void)state;
    for (int gi = 0; gi < NGROUPS; gi++) {
        eqr_group G = tu_lay_group(gi);
        eqr_ctx *ctx = tu_ctx(400 + gi);
        eqr_rep *T = tu_lay_mixed_type(ctx, &G), *R = tu_lay_regular_type(ctx, &G);
        int K;
        eqr_rep *Tg = tu_lay_gated_type(ctx, &G, &K);
        eqr_tensor *x = tu_lay_rand_x(ctx, T->dim, 2, 5, 5, 3 + gi), *xr = tu_lay_rand_x(ctx, R->dim, 2, 5, 5, 4 + gi);
        eqr_tensor *xg = tu_lay_rand_x(ctx, Tg->dim, 2, 5, 5, 5 + gi);
        eqr_pointwise_kind kinds[3] = {EQR_PW_RELU, EQR_PW_LEAKY_RELU, EQR_PW_TANH};
        for (int k = 0; k < 3; k++) {
            eqr_pointwise *pw = eqr_pointwise_create(ctx, R, kinds[k], 0.1f);
            assert_non_null(pw);
            assert_ptr_equal(eqr_pointwise_out_type(pw), R);
            tu_lay_check_equiv(ctx, tu_fw_pw, pw, R, R, xr, "pointwise");
            eqr_pointwise_destroy(pw);
        }
        eqr_norm_relu *nr = eqr_norm_relu_create(ctx, "nr", T);
        assert_non_null(nr);
        assert_ptr_equal(eqr_norm_relu_out_type(nr), T);
        tu_lay_random_bias(eqr_norm_relu_bias(nr), 7 + gi);
        tu_lay_check_equiv(ctx, tu_fw_nrelu, nr, T, T, x, "norm-ReLU");
        eqr_gated *ga = eqr_gated_create(ctx, Tg);
        assert_non_null(ga);
        tu_lay_check_equiv(ctx, tu_fw_gated, ga, Tg, eqr_gated_out_type(ga), xg, "gated");
        /* negative control: a pointwise ReLU on irrep fields is not
         * equivariant, and the measurement sees it */
        double err = 0;
        eqr_gelem e[8];
        int ne = tu_lay_exact_elems(&G, e);
        for (int i = 0; i < ne; i++) {
            double ei;
            assert_int_equal(eqr_equivariance_error(ctx, tu_fw_relu, NULL, T, T, e[i], x, NULL, &ei), EQR_OK);
            err = fmax(err, ei);
        }
        assert_true(err > 0.05);
        eqr_norm_relu_destroy(nr);
        eqr_gated_destroy(ga);
        eqr_rep_destroy(T);
        eqr_rep_destroy(R);
        eqr_rep_destroy(Tg);
        eqr_ctx_destroy(ctx);
    }
    eqr_pointwise_destroy(NULL);
    eqr_norm_relu_destroy(NULL);
    eqr_gated_destroy(NULL);
}

static void test_nonlin_forward_reference(void **state) {
    (void)state;
    for (int gi = 0; gi < NGROUPS; gi++) {
        eqr_group G = tu_lay_group(gi);
        eqr_ctx *ctx = tu_ctx(500 + gi);
        eqr_rep *T = tu_lay_mixed_type(ctx, &G), *R = tu_lay_regular_type(ctx, &G);
        int K;
        eqr_rep *Tg = tu_lay_gated_type(ctx, &G, &K);
        const int N = 2, H = 3, W = 3, S = H * W;
        /* pointwise ReLU / leaky ReLU */
        eqr_tensor *xr = tu_lay_rand_x(ctx, R->dim, N, H, W, 31);
        eqr_pointwise *pw = eqr_pointwise_create(ctx, R, EQR_PW_LEAKY_RELU, 0.2f);
        eqr_tensor *yr = eqr_pointwise_forward(ctx, pw, xr);
        assert_non_null(yr);
        double *ref = tu_dalloc(xr->numel);
        for (int64_t i = 0; i < xr->numel; i++) ref[i] = xr->data[i] > 0 ? xr->data[i] : 0.2 * xr->data[i];
        /* x or 0.2f x: one rounding, and 0.2f is within u of 0.2 */
        tu_assert_close_rel("leaky relu", yr->data, ref, NULL, xr->numel, 2);
        free(ref);
        eqr_pointwise_destroy(pw);
        /* norm-ReLU, including an exactly zero field */
        eqr_norm_relu *nr = eqr_norm_relu_create(ctx, "nr", T);
        eqr_tensor *b = eqr_norm_relu_bias(nr);
        tu_flist f;
        tu_lay_walk(T, &f);
        assert_int_equal(b->ndim, 1);
        assert_int_equal(b->shape[0], f.n);
        for (int64_t i = 0; i < b->numel; i++) assert_true(b->data[i] == 0.0f);
        assert_ptr_equal(eqr_param_find(ctx, "nr.bias"), b);
        tu_lay_random_bias(b, 9);
        eqr_tensor *x = tu_lay_rand_x(ctx, T->dim, N, H, W, 32);
        for (int c = 0; c < f.dim[f.n - 1]; c++) x->data[(f.off[f.n - 1] + c) * S + 4] = 0.0f;
        eqr_tensor *y = eqr_norm_relu_forward(ctx, nr, x);
        assert_non_null(y);
        ref = tu_dalloc(x->numel);
        ref_norm_relu(T, x->data, b->data, N, S, ref);
        /* y = max(r + b, 0) / r x, r the norm of d <= 8 values: r within
         * e = gamma_8 / 2 + u < 5u relative; r + b, where it cancels, within
         * |r| e + u |r + b|, i.e. e |x| + u |y| once times x / r; the division
         * and the product 2u |y| more: 16 u (|y| + |x|) holds with margin */
        double *mx = tu_dalloc(x->numel);
        for (int64_t i = 0; i < x->numel; i++) mx[i] = fabsf(x->data[i]);
        tu_assert_close_rel("norm-relu", y->data, ref, mx, x->numel, 16);
        free(mx);
        free(ref);
        /* gated */
        eqr_gated *ga = eqr_gated_create(ctx, Tg);
        const eqr_rep *go = eqr_gated_out_type(ga);
        tu_flist fg;
        tu_lay_walk(Tg, &fg);
        assert_int_equal(fg.n, 2 * K);
        eqr_tensor *xg = tu_lay_rand_x(ctx, Tg->dim, N, H, W, 33);
        eqr_tensor *yg = eqr_gated_forward(ctx, ga, xg);
        assert_non_null(yg);
        int dout;
        ref = tu_dalloc((int64_t)N * Tg->dim * S);
        ref_gated(Tg, xg->data, N, S, ref, &dout);
        assert_int_equal(go->dim, dout);
        assert_int_equal(yg->shape[1], dout);
        /* the output type is the gated fields: same parts, the trivial part
         * cut down to the one gated trivial field */
        tu_flist fo;
        tu_lay_walk(go, &fo);
        assert_int_equal(fo.n, K);
        for (int k = 0; k < K; k++) {
            assert_int_equal(fo.off[k], fg.off[k]);
            assert_int_equal(fo.kind[k], fg.kind[k]);
        }
        /* sigmoid(g) x: the library's sigmoid (<= 3 u, eqr__sigmoid_n,
         * no cancellation) and a product, relative only: 8 u */
        tu_assert_close_rel("gated", yg->data, ref, NULL, (int64_t)N * dout * S, 8);
        free(ref);
        eqr_norm_relu_destroy(nr);
        eqr_gated_destroy(ga);
        eqr_rep_destroy(T);
        eqr_rep_destroy(R);
        eqr_rep_destroy(Tg);
        eqr_ctx_destroy(ctx);
    }
}

static eqr_tensor *gc_pw(eqr_ctx *ctx, eqr_tensor **in, void *u) { return eqr_pointwise_forward(ctx, u, in[0]); }
static eqr_tensor *gc_nrelu(eqr_ctx *ctx, eqr_tensor **in, void *u) { return eqr_norm_relu_forward(ctx, u, in[0]); }
static eqr_tensor *gc_gated(eqr_ctx *ctx, eqr_tensor **in, void *u) { return eqr_gated_forward(ctx, u, in[0]); }

/* Move each field's norm away from 0 and from -bias (the kinks). */
static void away_from_norm_kinks(const eqr_rep *t, float *x, const float *bias, int N, int S) {
    tu_flist f;
    tu_lay_walk(t, &f);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < f.n; k++)
            for (int p = 0; p < S; p++) {
                float *xp = x + ((int64_t)n * t->dim + f.off[k]) * S + p;
                double r = 0;
                for (int c = 0; c < f.dim[k]; c++) r += (double)xp[c * S] * xp[c * S];
                r = sqrt(r);
                if (r >= 0.3 && fabs(r + bias[k]) >= 0.2) continue;
                double want = fmax(0.3, -bias[k] + 0.3), sc = r > 0 ? want / r : 0;
                if (r == 0) xp[0] = (float)want;
                for (int c = 0; c < f.dim[k]; c++) xp[c * S] = (float)(xp[c * S] * (r > 0 ? sc : 1));
            }
}

static void test_nonlin_gradcheck(void **state) {
    (void)state;
    int gis[2] = {0, 3}; /* C4 and SO(2) */
    for (int q = 0; q < 2; q++) {
        eqr_group G = tu_lay_group(gis[q]);
        eqr_ctx *ctx = tu_ctx(600 + q);
        eqr_rep *T = tu_lay_mixed_type(ctx, &G), *R = tu_lay_regular_type(ctx, &G);
        int K;
        eqr_rep *Tg = tu_lay_gated_type(ctx, &G, &K);
        const int N = 2, H = 2, W = 2, S = H * W;
        /* norm-ReLU: x and bias; half the biases make inactive fields */
        eqr_norm_relu *nr = eqr_norm_relu_create(ctx, "nr", T);
        eqr_tensor *b = eqr_norm_relu_bias(nr);
        for (int64_t i = 0; i < b->numel; i++) b->data[i] = i % 2 ? 0.2f : -0.5f - 0.1f * (float)i;
        int64_t s[4] = {N, T->dim, H, W};
        eqr_tensor *in[2] = {tu_input(ctx, "x", 4, s, 1.0f), b};
        away_from_norm_kinks(T, in[0]->data, b->data, N, S);
        tu_gradcheck(ctx, gc_nrelu, in, 2, nr, 3e-3, 16 /* field norm, sqrt, relu of it, divide, scale */);
        /* the inactive pixels exist, so the relu branch is exercised */
        eqr_tensor *y = eqr_norm_relu_forward(ctx, nr, in[0]);
        int zeros = 0;
        for (int64_t i = 0; i < y->numel; i++) zeros += y->data[i] == 0.0f;
        assert_true(zeros > 0 && zeros < y->numel / 2);
        eqr_step_reset(ctx);
        /* gated */
        eqr_gated *ga = eqr_gated_create(ctx, Tg);
        int64_t sg[4] = {N, Tg->dim, H, W};
        eqr_tensor *xg = tu_input(ctx, "xg", 4, sg, 1.0f);
        tu_gradcheck(ctx, gc_gated, &xg, 1, ga, 1e-2, 12 /* a sigmoid gate times the field */);
        /* pointwise */
        eqr_pointwise_kind kinds[2] = {EQR_PW_RELU, EQR_PW_SILU};
        for (int k = 0; k < 2; k++) {
            eqr_pointwise *pw = eqr_pointwise_create(ctx, R, kinds[k], 0.0f);
            char name[8];
            snprintf(name, sizeof name, "xr%d", k);
            int64_t sr[4] = {N, R->dim, H, W};
            eqr_tensor *xr = tu_input(ctx, name, 4, sr, 1.0f);
            tu_lay_kinkless(R, xr->data, N, S, 50 + k);
            tu_gradcheck(ctx, gc_pw, &xr, 1, pw, 1e-2, 10 /* one activation */);
            eqr_pointwise_destroy(pw);
        }
        eqr_norm_relu_destroy(nr);
        eqr_gated_destroy(ga);
        eqr_rep_destroy(T);
        eqr_rep_destroy(R);
        eqr_rep_destroy(Tg);
        eqr_ctx_destroy(ctx);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nonlin_equivariant),
        cmocka_unit_test(test_nonlin_forward_reference),
        cmocka_unit_test(test_nonlin_gradcheck),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
