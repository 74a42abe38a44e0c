/* eqr_rlayer_probe: ||f_eq x||, ||W_r x|| and theta ||W_r x|| / ||f_eq x||
 * on the last forward's input, against a double reference (a naive conv /
 * matrix product) within the float error bound; NaN f_eq for a bare term;
 * NaN once the step has been reset; the step's gradients are left as they were. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ||conv(x, w) + b|| in double for stride 1, pad p; *mag = ||conv(|x|, |w|) + |b|||
 * (the magnitudes the float error bound scales with); K terms per output. */
static double conv_norm_ref(const eqr_tensor *x, const eqr_tensor *w, const eqr_tensor *b, int p,
                            double *mag, int64_t *K) {
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t O = w->shape[0], k = w->shape[2];
    double s = 0, m = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t i = 0; i < H; i++)
                for (int64_t j = 0; j < W; j++) {
                    double acc = b ? b->data[o] : 0, am = b ? fabs(b->data[o]) : 0;
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t u = 0; u < k; u++)
                            for (int64_t v = 0; v < k; v++) {
                                int64_t ii = i + u - p, jj = j + v - p;
                                if (ii < 0 || jj < 0 || ii >= H || jj >= W) continue;
                                double a = x->data[((n * C + c) * H + ii) * W + jj];
                                double ww = w->data[((o * C + c) * k + u) * k + v];
                                acc += a * ww;
                                am += fabs(a * ww);
                            }
                    s += acc * acc;
                    m += am * am;
                }
    *mag = sqrt(m);
    *K = C * k * k + 1;
    return sqrt(s);
}

/* |got - ref| <= gamma_K * mag (each output's error is at most gamma_K times
 * its magnitude sum, so the norm's is at most gamma_K * ||magnitudes||)
 * plus the rounding of the norm itself. */
static void assert_norm(const char *what, double got, double ref, double mag, int64_t K) {
    double bound = 2.0 * tu_gamma(K) * mag + 1e-6 * ref;
    print_message("%s: got %.8g ref %.8g bound %.3g\n", what, got, ref, bound);
    assert_true(fabs(got - ref) <= bound);
}

static void test_probe_gconv(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(5);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *T = tu_trivial_rep(ctx, &G, 2), *R = tu_regular_rep(ctx, &G, 2);
    eqr_gconv *g = tu_gconv(ctx, "c1", T, R, 3, EQR_CONV2D(1, 1, 1), 0.5f);
    eqr_relax *r = tu_relax(ctx, "relax", 0.25f, 0.3f, 0, 0.1f, 0);
    eqr_rlayer *l = eqr_relax_gconv(ctx, r, "c1", g, NULL);
    assert_non_null(l);
    eqr_tensor *x = tu_input(ctx, "x", 4, (int64_t[]){3, 2, 6, 6}, 1.0f);
    eqr_tensor *y = eqr_rlayer_forward(ctx, l, x);
    assert_non_null(y);
    tu_backward_ones(ctx, y);
    /* gradients of the step must be untouched by the probe */
    eqr_tensor *wr = eqr_rlayer_wr(l);
    int64_t off = -1;
    for (int i = 0; i < eqr_param_num_tensors(ctx); i++)
        if (eqr_param_at(ctx, i) == wr) off = eqr_param_offset(ctx, i);
    assert_true(off >= 0);
    int64_t total = eqr_param_num_scalars(ctx);
    float *g0 = malloc((size_t)total * sizeof(float));
    memcpy(g0, eqr_param_grad_block(ctx), (size_t)total * sizeof(float));

    eqr_rlayer_probe_stats st;
    assert_int_equal(eqr_rlayer_probe(ctx, l, &st), EQR_OK);
    assert_memory_equal(g0, eqr_param_grad_block(ctx), (size_t)total * sizeof(float));
    free(g0);

    double mag, ref;
    int64_t K;
    eqr_grad_set_enabled(ctx, 0); /* the tape is used: build the bank unrecorded */
    ref = conv_norm_ref(x, eqr_gconv_filter_bank(ctx, g), eqr_gconv_bias_vector(ctx, g), 1, &mag, &K);
    assert_norm("||f_eq x||", st.eq_norm, ref, mag, K);
    double ref_wr = conv_norm_ref(x, wr, NULL, 1, &mag, &K);
    assert_norm("||W_r x||", st.wr_norm, ref_wr, mag, K);
    assert_true(fabs(st.theta - 0.25f) == 0);
    assert_true(fabs(st.share - 0.25 * st.wr_norm / st.eq_norm) <= 1e-12 * st.share);
    assert_true(st.share > 0);

    /* nothing to measure once the step has ended */
    eqr_step_reset(ctx);
    assert_int_equal(eqr_rlayer_probe(ctx, l, &st), EQR_OK);
    assert_true(isnan(st.eq_norm) && isnan(st.wr_norm) && isnan(st.share));
    assert_true(st.theta == 0.25f);
    eqr_relax_destroy(r);
    eqr_gconv_destroy(g);
    eqr_rep_destroy(T);
    eqr_rep_destroy(R);
    eqr_ctx_destroy(ctx);
}

static void test_probe_linear_term(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(6);
    eqr_so3_rep tin = {1, 2}, tout = {0, 1};
    float gin[3 * 49], gout[3 * 9];
    eqr_lie_rep lin, lout;
    assert_int_equal(eqr_so3_rep_lie(ctx, &tin, gin, &lin), EQR_OK);
    assert_int_equal(eqr_so3_rep_lie(ctx, &tout, gout, &lout), EQR_OK);
    eqr_relax *r = tu_relax(ctx, "relax", 0.5f, 0.4f, 0, 0, 0);
    eqr_rlayer *l = eqr_relax_linear(ctx, r, "t", &lin, &lout, NULL);
    assert_non_null(l);
    eqr_tensor *x = tu_input(ctx, "x", 3, (int64_t[]){2, 5, 7}, 1.0f);
    assert_non_null(eqr_rlayer_forward(ctx, l, x));
    eqr_rlayer_probe_stats st;
    assert_int_equal(eqr_rlayer_probe(ctx, l, &st), EQR_OK);
    assert_true(isnan(st.eq_norm) && isnan(st.share));
    const float *w = eqr_rlayer_wr(l)->data;
    double s = 0, m = 0;
    for (int64_t row = 0; row < 10; row++)
        for (int o = 0; o < 3; o++) {
            double acc = 0, am = 0;
            for (int i = 0; i < 7; i++) {
                acc += (double)w[o * 7 + i] * x->data[row * 7 + i];
                am += fabs((double)w[o * 7 + i] * x->data[row * 7 + i]);
            }
            s += acc * acc;
            m += am * am;
        }
    assert_norm("||W_r x|| (bare term)", st.wr_norm, sqrt(s), sqrt(m), 7);
    eqr_relax_destroy(r);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_gconv),
        cmocka_unit_test(test_probe_linear_term),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
