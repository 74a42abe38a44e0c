/* Orthogonal relaxation (relax.h opts.orthogonal, eqr_relax_orthogonalize)
 * and the term's scale (opts.wr_scale):
 * for every kind that folds (group conv, lifting conv, steerable conv,
 * VN-Linear, irreps linear) the split W += theta P W_r, W_r -= P W_r
 *   - leaves the layer's effective map f_eq + theta W_r unchanged (checked
 *     on the map itself: the filter bank, or the matrix, to a bound from
 *     the split's roundings),
 *   - leaves no equivariant part in W_r (a second split moves nothing
 *     beyond rounding: a missing subtraction would move theta P W_r again),
 * and the trainer applies it after every step when opts.orthogonal is set. */
#include "testutil.h"
#include "tu_tiny_model.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define THETA 0.7f

static float *copy_of(const eqr_tensor *t) {
    float *p = malloc((size_t)t->numel * sizeof(float));
    assert_non_null(p);
    memcpy(p, t->data, (size_t)t->numel * sizeof(float));
    return p;
}

static double max_abs(const float *p, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)p[i]));
    return m;
}

static double norm2(const float *p, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)p[i] * p[i];
    return sqrt(s);
}

/* The map bank0 + theta wr0 equals bank1 + theta wr1 entrywise within
 * c u (|bank0| + |bank1| + theta (|wr0| + |wr1|)) + extra: each of W' and
 * W_r' carries one rounding of the split (the shared a cancels exactly),
 * the test's products add one more; extra covers an inexact bank (steer). */
static void assert_same_map(const char *what, const float *b0, const float *w0, const float *b1,
                            const float *w1, int64_t n, double extra) {
    for (int64_t i = 0; i < n; i++) {
        double m0 = (double)b0[i] + THETA * (double)w0[i], m1 = (double)b1[i] + THETA * (double)w1[i];
        double mag = fabs(b0[i]) + fabs(b1[i]) + THETA * (fabs(w0[i]) + fabs(w1[i]));
        double tol = 4 * TU_U * mag + extra;
        if (!(fabs(m1 - m0) <= tol))
            fail_msg("%s: map entry %lld changed by %.3g (bound %.3g)", what, (long long)i,
                     fabs(m1 - m0), tol);
    }
}

/* ------------------------------------------------------- group convs */

static void test_split_gconv(void **state) {
    (void)state;
    const eqr_group groups[2] = {eqr_group_cyclic(4), eqr_group_dihedral(4)};
    for (int gi = 0; gi < 2; gi++)
        for (int lifting = 0; lifting < 2; lifting++) {
            eqr_ctx *ctx = tu_ctx(70 + 2 * gi + lifting);
            const eqr_group *G = &groups[gi];
            const int ord = eqr_group_order(G);
            eqr_rep *in = lifting ? tu_trivial_rep(ctx, G, 2) : tu_regular_rep(ctx, G, 2);
            eqr_rep *out = tu_regular_rep(ctx, G, 2);
            eqr_gconv *g = tu_gconv(ctx, "g", in, out, 3, EQR_CONV2D(1, 1, 1), 0.3f);
            eqr_relax *r = tu_relax(ctx, "relax", THETA, 1.0f, 0.0f, 0.0f, 0);
            eqr_rlayer *l = eqr_relax_gconv(ctx, r, "g", g, NULL);
            assert_non_null(l);
            int64_t bs[4];
            eqr_gconv_bank_shape(g, bs);
            const int64_t nb = bs[0] * bs[1] * bs[2] * bs[3];
            eqr_tensor *w = eqr_gconv_weight(g), *wr = eqr_rlayer_wr(l);
            float *b0 = malloc((size_t)nb * sizeof(float)), *b1 = malloc((size_t)nb * sizeof(float));
            float *wr0 = copy_of(wr);
            assert_int_equal(eqr_gconv_export(ctx, g, b0, NULL), EQR_OK);
            assert_int_equal(eqr_relax_orthogonalize(ctx, r), EQR_OK);
            assert_int_equal(eqr_gconv_export(ctx, g, b1, NULL), EQR_OK);
            assert_same_map("gconv", b0, wr0, b1, wr->data, nb, 0.0);
            /* something moved: W_r had an equivariant part */
            double moved = 0;
            for (int64_t i = 0; i < nb; i++) moved = fmax(moved, fabs((double)b1[i] - b0[i]));
            assert_true(moved > 1e-2 * max_abs(wr0, nb));
            /* nothing left to move: the orbit average of W_r' is the
             * rounding of |G| subtractions of a (each <= u |W_r|) and of a
             * itself (gamma_|G| of the orbit's |W_r|) */
            float *w1 = copy_of(w);
            assert_int_equal(eqr_relax_orthogonalize(ctx, r), EQR_OK);
            const double tol = THETA * (tu_gamma(ord) + 3 * TU_U) * max_abs(wr0, nb) +
                               TU_U * max_abs(w1, w->numel);
            for (int64_t j = 0; j < w->numel; j++)
                if (!(fabs((double)w->data[j] - w1[j]) <= tol))
                    fail_msg("gconv second split moved weight %lld by %.3g (bound %.3g)",
                             (long long)j, fabs((double)w->data[j] - w1[j]), tol);
            free(w1);
            free(b0);
            free(b1);
            free(wr0);
            eqr_relax_destroy(r);
            eqr_gconv_destroy(g);
            eqr_rep_destroy(in);
            eqr_rep_destroy(out);
            eqr_ctx_destroy(ctx);
        }
}

/* ------------------------------------------------------ steerable conv */

static void test_split_steer(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(80);
    eqr_group G = eqr_group_cyclic(8);
    eqr_rep *in = tu_trivial_rep(ctx, &G, 2), *out = tu_regular_rep(ctx, &G, 1);
    eqr_steer_conv_opts so = {0};
    so.geom = EQR_CONV2D(1, 2, 1);
    eqr_steer_conv *s = eqr_steer_conv_create(ctx, "s", in, out, 5, &so);
    assert_non_null(s);
    eqr_relax *r = tu_relax(ctx, "relax", THETA, 0.3f, 0.0f, 0.0f, 0);
    eqr_rlayer *l = eqr_relax_steer_conv(ctx, r, "s", s, NULL);
    assert_non_null(l);
    int64_t bs[4];
    eqr_steer_conv_bank_shape(s, bs);
    const int64_t nb = bs[0] * bs[1] * bs[2] * bs[3];
    eqr_tensor *w = eqr_steer_conv_weight(s), *wr = eqr_rlayer_wr(l);
    const int64_t nw = w->numel;
    float *b0 = malloc((size_t)nb * sizeof(float)), *b1 = malloc((size_t)nb * sizeof(float));
    float *wr0 = copy_of(wr), *w0 = copy_of(w);
    assert_int_equal(eqr_steer_conv_export(ctx, s, b0, NULL), EQR_OK);
    assert_int_equal(eqr_relax_orthogonalize(ctx, r), EQR_OK);
    assert_int_equal(eqr_steer_conv_export(ctx, s, b1, NULL), EQR_OK);
    /* The basis is orthonormal: a bank entry is a sum of nw coefficients
     * times one row of the basis matrix, whose 2-norm is <= 1, so
     * expanding W in float errs by <= gamma_nw ||W||_2 (Cauchy-Schwarz);
     * both exports, and the split's rounding of W' (u ||W'||_2). The
     * projection's own error is shared by W' and W_r' and cancels. */
    const double extra = (2 * tu_gamma(nw) + TU_U) * (norm2(w0, nw) + norm2(w->data, nw)) +
                         THETA * tu_gamma(nb + nw) * norm2(wr0, nb);
    assert_same_map("steer", b0, wr0, b1, wr->data, nb, extra);
    double moved = 0;
    for (int64_t i = 0; i < nw; i++) moved = fmax(moved, fabs((double)w->data[i] - w0[i]));
    assert_true(moved > 1e-2 * max_abs(wr0, nb));
    /* second split: project(W_r') is the projection of the first split's
     * rounding, <= (gamma_nb + gamma_nw + u) ||W_r||_2 per coefficient */
    float *w1 = copy_of(w);
    assert_int_equal(eqr_relax_orthogonalize(ctx, r), EQR_OK);
    const double tol = THETA * (tu_gamma(nb) + tu_gamma(nw) + TU_U) * 2 * norm2(wr0, nb) +
                       TU_U * max_abs(w1, nw);
    for (int64_t j = 0; j < nw; j++)
        if (!(fabs((double)w->data[j] - w1[j]) <= tol))
            fail_msg("steer second split moved weight %lld by %.3g (bound %.3g)", (long long)j,
                     fabs((double)w->data[j] - w1[j]), tol);
    free(w1);
    free(w0);
    free(b0);
    free(b1);
    free(wr0);
    eqr_relax_destroy(r);
    eqr_steer_conv_destroy(s);
    eqr_rep_destroy(in);
    eqr_rep_destroy(out);
    eqr_ctx_destroy(ctx);
}

/* ---------------------------------------------------------- VN-Linear */

static void test_split_vn(void **state) {
    (void)state;
    const int CI = 3, CO = 4;
    eqr_ctx *ctx = tu_ctx(90);
    eqr_relax_opts o = {.init = EQR_RELAX_INIT_NORMAL, .init_std = 0.5f, .theta = THETA};
    eqr_relax *r = eqr_relax_create(ctx, "relax", &o);
    eqr_vn_linear *lin = eqr_vn_linear_create(ctx, "lin", CI, CO);
    eqr_rlayer *l = eqr_relax_vn_linear(ctx, r, "lin", lin, NULL);
    assert_non_null(l);
    eqr_tensor *w = eqr_vn_linear_weight(lin), *wr = eqr_rlayer_wr(l);
    const int64_t n = (int64_t)9 * CI * CO;
    /* the map as a dense [3 CO, 3 CI] matrix: W (x) I3 (+ theta W_r) */
    float *m0 = calloc((size_t)n, sizeof(float)), *m1 = calloc((size_t)n, sizeof(float));
    float *wr0 = copy_of(wr);
    for (int k = 0; k < 2; k++) {
        float *m = k ? m1 : m0;
        if (k) assert_int_equal(eqr_relax_orthogonalize(ctx, r), EQR_OK);
        for (int oc = 0; oc < CO; oc++)
            for (int c = 0; c < CI; c++)
                for (int i = 0; i < 3; i++) m[(3 * oc + i) * 3 * CI + 3 * c + i] = w->data[oc * CI + c];
    }
    assert_same_map("vn", m0, wr0, m1, wr->data, n, 0.0);
    /* every 3x3 block of W_r' is traceless up to the rounding of
     * b_ii - t (u |b_ii| each) and of t = fl(tr / 3) (gamma_4 of sum |b_ii|) */
    for (int oc = 0; oc < CO; oc++)
        for (int c = 0; c < CI; c++) {
            double tr = 0, mag = 0, tr0 = 0;
            for (int i = 0; i < 3; i++) {
                tr += wr->data[(3 * oc + i) * 3 * CI + 3 * c + i];
                tr0 += wr0[(3 * oc + i) * 3 * CI + 3 * c + i];
                mag += fabs(wr0[(3 * oc + i) * 3 * CI + 3 * c + i]);
            }
            assert_true(fabs(tr) <= (tu_gamma(4) + 3 * TU_U) * mag);
            assert_true(fabs(tr0) > (tu_gamma(4) + 3 * TU_U) * mag || mag == 0);
        }
    free(m0);
    free(m1);
    free(wr0);
    eqr_relax_destroy(r);
    eqr_vn_linear_destroy(lin);
    eqr_ctx_destroy(ctx);
}

/* ------------------------------------------------------ irreps linear */

static void test_split_irreps(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(95);
    eqr_irreps in, out;
    assert_int_equal(eqr_irreps_parse(ctx, "2x0e+1x1o+2x2e+1x0o", &in), EQR_OK);
    assert_int_equal(eqr_irreps_parse(ctx, "1x0e+2x1o+1x2e+1x1e", &out), EQR_OK);
    const int din = (int)eqr_irreps_dim(&in), dout = (int)eqr_irreps_dim(&out);
    eqr_relax_opts o = {.init = EQR_RELAX_INIT_NORMAL, .init_std = 0.5f, .theta = THETA};
    eqr_relax *r = eqr_relax_create(ctx, "relax", &o);
    eqr_irreps_linear *lin = eqr_irreps_linear_create(ctx, "lin", &in, &out);
    eqr_rlayer *l = eqr_relax_irreps_linear(ctx, r, "lin", lin, NULL);
    assert_non_null(l);
    eqr_tensor *wr = eqr_rlayer_wr(l);
    /* M_eq from the layer on the unit vectors: each output is one product
     * c W (exact to 2u), so M is known to 2u |M| */
    const int64_t n = (int64_t)din * dout;
    float *m[2], *wr0 = copy_of(wr);
    int64_t xs[2] = {din, din};
    int prev = eqr_grad_set_enabled(ctx, 0);
    for (int k = 0; k < 2; k++) {
        if (k) assert_int_equal(eqr_relax_orthogonalize(ctx, r), EQR_OK);
        eqr_step_reset(ctx);
        eqr_tensor *x = eqr_tensor_zeros(ctx, 2, xs);
        for (int j = 0; j < din; j++) x->data[(int64_t)j * din + j] = 1.0f;
        eqr_tensor *y = eqr_irreps_linear_forward(ctx, lin, x); /* [din, dout]: y[j] = M e_j */
        assert_non_null(y);
        m[k] = malloc((size_t)n * sizeof(float));
        for (int j = 0; j < din; j++)
            for (int i = 0; i < dout; i++) m[k][(int64_t)i * din + j] = y->data[(int64_t)j * dout + i];
    }
    eqr_grad_set_enabled(ctx, prev);
    assert_same_map("irreps", m[0], wr0, m[1], wr->data, n, 0.0);
    /* W_r' has no equivariant part: a second split moves M_eq by at most
     * theta (d + 3) u max|W_r| per entry (the trace of a d-block of
     * W_r' is the rounding of d subtractions and of t = fl(tr / d)) */
    assert_int_equal(eqr_relax_orthogonalize(ctx, r), EQR_OK);
    eqr_step_reset(ctx);
    prev = eqr_grad_set_enabled(ctx, 0);
    eqr_tensor *x = eqr_tensor_zeros(ctx, 2, xs);
    for (int j = 0; j < din; j++) x->data[(int64_t)j * din + j] = 1.0f;
    eqr_tensor *y = eqr_irreps_linear_forward(ctx, lin, x);
    eqr_grad_set_enabled(ctx, prev);
    assert_non_null(y);
    const double tol = THETA * (tu_gamma(5 + 1) + 3 * TU_U) * 5 * max_abs(wr0, n);
    for (int j = 0; j < din; j++)
        for (int i = 0; i < dout; i++) {
            double d = fabs((double)y->data[(int64_t)j * dout + i] - m[1][(int64_t)i * din + j]);
            double t = tol + 4 * TU_U * fabs(m[1][(int64_t)i * din + j]);
            if (!(d <= t)) fail_msg("irreps second split moved M[%d][%d] by %.3g (bound %.3g)", i, j, d, t);
        }
    free(m[0]);
    free(m[1]);
    free(wr0);
    eqr_relax_destroy(r);
    eqr_irreps_linear_destroy(lin);
    eqr_ctx_destroy(ctx);
}

/* ------------------------------------------------ through the trainer */

/* A relaxation with opts.orthogonal trained by eqr_trainer: after every
 * step W_r has no equivariant part (a split moves nothing), and without the
 * option it does have one. */
static void test_trainer_orthogonal(void **state) {
    (void)state;
    for (int orth = 0; orth < 2; orth++) {
        eqr_ctx *ctx = tu_ctx(99);
        tu_tiny_model m;
        tu_tiny_build(ctx, &m, 0.5f);
        eqr_relax_destroy(m.r);
        eqr_relax_opts ro = {.theta = 0.5f, .lambda_norm = 0.01f, .orthogonal = orth};
        m.r = eqr_relax_create(ctx, "relax2", &ro);
        assert_non_null(m.r);
        m.rl = eqr_relax_gconv(ctx, m.r, "c2", m.g, NULL);
        assert_non_null(m.rl);
        eqr_dataset ds;
        tu_tiny_data(&ds, 64, 3);
        eqr_optim_opts oo = {.kind = EQR_OPTIM_ADAM, .lr = 1e-2f};
        eqr_optim *opt = eqr_optim_create(ctx, &oo);
        eqr_batcher bt;
        assert_int_equal(eqr_batcher_init(ctx, &bt, &ds, 16, 1, 5), EQR_OK);
        eqr_trainer_opts to = {.opt = opt, .relax = m.r, .forward = tu_tiny_forward, .model = &m};
        eqr_trainer *t = eqr_trainer_create(ctx, &to);
        if (!t) fail_msg("trainer: %s", eqr_error_message(ctx));
        eqr_epoch_stats st;
        if (eqr_trainer_epoch(t, &bt, 1, &st) != EQR_OK) fail_msg("epoch: %s", eqr_error_message(ctx));
        eqr_tensor *w = eqr_gconv_weight(m.g), *wr = eqr_rlayer_wr(m.rl);
        float *w1 = copy_of(w);
        assert_int_equal(eqr_relax_orthogonalize(ctx, m.r), EQR_OK);
        double moved = 0;
        for (int64_t j = 0; j < w->numel; j++) moved = fmax(moved, fabs((double)w->data[j] - w1[j]));
        const double tol = 0.5 * (tu_gamma(4) + 3 * TU_U) * max_abs(wr->data, wr->numel) +
                           TU_U * max_abs(w1, w->numel);
        print_message("orthogonal %d: a split after training moves W by %.3g (rounding bound %.3g)\n",
                      orth, moved, tol);
        if (orth) assert_true(moved <= tol);
        else assert_true(moved > 100 * tol);
        free(w1);
        eqr_trainer_destroy(t);
        eqr_optim_destroy(opt);
        eqr_batcher_free(&bt);
        eqr_dataset_free(&ds);
        tu_tiny_free(&m);
        eqr_ctx_destroy(ctx);
    }
}

/* wr_scale s: the term is theta s W_r x, so (theta, s) = (0.25, 4) gives
 * the outputs and gradients of (1, 1) bit for bit (0.25 * 4 = 1 exactly),
 * for a relaxed group conv and a relaxed VN-Linear. */
static void test_wr_scale(void **state) {
    (void)state;
    float *y[2], *g[2];
    int64_t ny = 0, ng = 0;
    for (int k = 0; k < 2; k++) {
        eqr_ctx *ctx = tu_ctx(123);
        eqr_group G = eqr_group_cyclic(4);
        eqr_rep *in = tu_trivial_rep(ctx, &G, 1), *out = tu_regular_rep(ctx, &G, 2);
        eqr_gconv *gc = tu_gconv(ctx, "g", in, out, 3, EQR_CONV2D(1, 1, 1), 0.3f);
        eqr_relax_opts o = {.theta = k ? 0.25f : 1.0f, .wr_scale = k ? 4.0f : 0.0f,
                            .init = EQR_RELAX_INIT_NORMAL, .init_std = 0.5f, .lambda_norm = 0.1f};
        eqr_relax *r = eqr_relax_create(ctx, "relax", &o);
        eqr_rlayer *l = eqr_relax_gconv(ctx, r, "g", gc, NULL);
        assert_non_null(l);
        eqr_rlayer_stats st;
        assert_int_equal(eqr_rlayer_get_stats(ctx, l, &st), EQR_OK);
        assert_true(st.theta == o.theta); /* stats report theta itself */
        eqr_tensor *x = tu_randn(ctx, 2, 1, 6, 6);
        eqr_tensor *f = eqr_rlayer_forward(ctx, l, x);
        eqr_tensor *loss = eqr_add(ctx, eqr_sum_all(ctx, eqr_mul(ctx, f, f)),
                                   eqr_sum_all(ctx, eqr_relax_penalty(ctx, r)));
        assert_int_equal(eqr_backward(ctx, loss), EQR_OK);
        ny = f->numel;
        ng = eqr_rlayer_wr(l)->numel;
        y[k] = copy_of(f);
        g[k] = malloc((size_t)ng * sizeof(float));
        memcpy(g[k], eqr_rlayer_wr(l)->grad, (size_t)ng * sizeof(float));
        eqr_relax_destroy(r);
        eqr_gconv_destroy(gc);
        eqr_rep_destroy(in);
        eqr_rep_destroy(out);
        eqr_ctx_destroy(ctx);
    }
    assert_memory_equal(y[0], y[1], (size_t)ny * sizeof(float));
    assert_memory_equal(g[0], g[1], (size_t)ng * sizeof(float));
    for (int k = 0; k < 2; k++) {
        free(y[k]);
        free(g[k]);
    }
    eqr_ctx *ctx = tu_ctx(1);
    eqr_relax_opts bad = {.wr_scale = -1.0f};
    assert_null(eqr_relax_create(ctx, "relax", &bad));
    tu_assert_error(ctx, EQR_ERR_ARG, "wr_scale -1 must be finite and >= 0");
    eqr_ctx_destroy(ctx);
}

static void test_bad_option(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    eqr_relax_opts o = {.orthogonal = 2};
    assert_null(eqr_relax_create(ctx, "relax", &o));
    tu_assert_error(ctx, EQR_ERR_ARG, "orthogonal must be 0 or 1");
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_gconv),   cmocka_unit_test(test_split_steer),
        cmocka_unit_test(test_split_vn),      cmocka_unit_test(test_split_irreps),
        cmocka_unit_test(test_trainer_orthogonal), cmocka_unit_test(test_wr_scale),
        cmocka_unit_test(test_bad_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
