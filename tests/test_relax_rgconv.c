/* Relaxed group convolution (relax.h, eqr_relax_rgconv): exactly
 * equivariant at init (any theta) and at theta = 0 with unequal weights, not
 * equivariant with unequal weights at theta > 0; projection is exactly
 * equivariant, computes the plain gconv bit for bit and equals the layer of
 * the averaged weights; finite-difference gradients of x, the base filters,
 * the mean weights and the deviations (also through the penalties, and of
 * an adaptive theta); LD on a
 * hand-set case; the report on a hand-set case; checkpoint / resume
 * bit-identical; eqr_relax_module on a container; bad options. */
#include "testutil.h"
#include "tu_tiny_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Equivariance bound (tu_equiv_bound), as in test_relax_conv.c: per layer
 * sums of <= C k k = 16 * 9 = 144 products, the bias, and here the mix of
 * L <= 4 base filters into the bank (L products and sums more): depth <
 * 200; amp 12 = sqrt(144) for random-sign sums; the two-layer model adds
 * its layers' bounds. With weights equal over g the bank is equivariant
 * bit for bit (relax_rgconv.c), so only the convs round differently. */
#define EQ_TOL (2 * tu_equiv_bound(200, 12.0))

static eqr_rlayer_opts rg_opts(int L) {
    return (eqr_rlayer_opts){.kind = EQR_RELAX_KIND_RGCONV, .nbanks = L};
}

typedef struct model2 {
    eqr_rlayer *a, *b;
} model2;

static eqr_tensor *fwd2(eqr_ctx *ctx, void *m, eqr_tensor *x) {
    model2 *M = m;
    return eqr_rlayer_forward(ctx, M->b, eqr_relu(ctx, eqr_rlayer_forward(ctx, M->a, x)));
}

/* Largest equivariance error of f over the group's elements != e. */
static double max_err(eqr_ctx *ctx, eqr_forward_fn f, void *m, const eqr_group *G,
                      const eqr_rep *in, const eqr_rep *out, eqr_tensor *x, double *least) {
    double worst = 0, lo = 1e30;
    for (int e = 1; e < eqr_group_order(G); e++) {
        double err;
        assert_int_equal(eqr_equivariance_error(ctx, f, m, in, out, eqr_group_element(G, e), x,
                                                NULL, &err), EQR_OK);
        worst = fmax(worst, err);
        lo = fmin(lo, err);
    }
    if (least) *least = lo;
    return worst;
}

static void fill_normal(eqr_ctx *ctx, eqr_tensor *t, float std) {
    eqr_tensor_normal(t, eqr_ctx_rng(ctx), std);
}

/* ------------------------------------------------------- equivariance */

static void test_equivariance(void **state) {
    (void)state;
    const eqr_group groups[2] = {eqr_group_cyclic(4), eqr_group_dihedral(4)};
    for (int gi = 0; gi < 2; gi++)
        for (int L = 1; L <= 3; L += 2) {
            eqr_ctx *ctx = tu_ctx(100 + 10 * gi + L);
            const eqr_group *G = &groups[gi];
            eqr_rep *T = tu_trivial_rep(ctx, G, 2), *R2 = tu_regular_rep(ctx, G, 2);
            eqr_gconv *g1 = tu_gconv(ctx, "l1", T, R2, 3, EQR_CONV2D(1, 1, 1), 0.5f);
            eqr_gconv *g2 = tu_gconv(ctx, "l2", R2, R2, 3, EQR_CONV2D(1, 1, 1), 0.5f);
            eqr_relax *r = tu_relax(ctx, "relax", 0.7f, 0.0f, 0, 0, 0);
            eqr_rlayer_opts o = rg_opts(L);
            model2 m = {eqr_relax_gconv(ctx, r, "l1", g1, &o), eqr_relax_gconv(ctx, r, "l2", g2, &o)};
            assert_non_null(m.a);
            assert_non_null(m.b);
            assert_string_equal(eqr_rlayer_kind(m.a), "rgconv");
            eqr_tensor *x = tu_randn(ctx, 2, 2, 7, 7);
            /* init: weights equal over g, exact at theta 0.7 */
            double e_init = max_err(ctx, fwd2, &m, G, T, R2, x, NULL);
            /* unequal weights: exact at theta 0, not at theta 0.5 */
            fill_normal(ctx, eqr_rlayer_wr(m.a), 0.5f);
            fill_normal(ctx, eqr_rlayer_wr(m.b), 0.5f);
            eqr_relax_set_theta(r, 0.0f);
            double e0 = max_err(ctx, fwd2, &m, G, T, R2, x, NULL), least;
            eqr_relax_set_theta(r, 0.5f);
            max_err(ctx, fwd2, &m, G, T, R2, x, &least);
            /* projection: exact again, at the theta it had */
            assert_int_equal(eqr_relax_project(ctx, r, EQR_PROJECT_DROP), EQR_OK);
            eqr_relax_set_theta(r, 0.5f);
            double ep = max_err(ctx, fwd2, &m, G, T, R2, x, NULL);
            print_message("rgconv %s L=%d: init %.3g theta=0 %.3g, theta=0.5 min %.3g, projected "
                          "%.3g (bound %.3g)\n", gi ? "D4" : "C4", L, e_init, e0, least, ep, EQ_TOL);
            assert_true(e_init <= EQ_TOL);
            assert_true(e0 <= EQ_TOL);
            assert_true(least > 1e-2);
            assert_true(ep <= EQ_TOL);
            eqr_relax_destroy(r);
            eqr_gconv_destroy(g1);
            eqr_gconv_destroy(g2);
            eqr_rep_destroy(T);
            eqr_rep_destroy(R2);
            eqr_ctx_destroy(ctx);
        }
}

/* At init the relaxed layer computes the strict gconv it wraps: the mean of
 * the base filters is the gconv's weight as created (to the rounding of
 * W + (d_l - mean d) and the mean of L of them: a few u of the filter's
 * scale; 1e-5 of the output's scale is far above that and far below a
 * wrong init, which changes the output by O(1)). */
static void test_init_is_strict(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(7);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *R = tu_regular_rep(ctx, &G, 2);
    eqr_gconv *g = tu_gconv(ctx, "g", R, R, 3, EQR_CONV2D(1, 1, 1), 0.5f);
    eqr_tensor *x = tu_randn(ctx, 1, 8, 6, 6);
    eqr_tensor *y0 = eqr_gconv_forward(ctx, g, x);
    assert_non_null(y0);
    float *ref = malloc((size_t)y0->numel * sizeof(float));
    memcpy(ref, y0->data, (size_t)y0->numel * sizeof(float));
    eqr_relax *r = tu_relax(ctx, "relax", 0.3f, 0.0f, 0, 0, 0);
    eqr_rlayer_opts o = rg_opts(3);
    eqr_rlayer *l = eqr_relax_rgconv(ctx, r, "g", g, &o);
    assert_non_null(l);
    eqr_tensor *y = eqr_rlayer_forward(ctx, l, x);
    assert_non_null(y);
    double dmax = 0, ymax = 0, pd = 0;
    for (int64_t i = 0; i < y->numel; i++) {
        dmax = fmax(dmax, fabs(y->data[i] - ref[i]));
        ymax = fmax(ymax, fabs(ref[i]));
    }
    /* the base filters differ from each other */
    const eqr_tensor *psi = eqr_param_find(ctx, "g.psi"), *W = eqr_gconv_weight(g);
    assert_int_equal(psi->numel, 2 * W->numel);
    for (int64_t j = 0; j < W->numel; j++) pd = fmax(pd, fabs(psi->data[j] - W->data[j]));
    print_message("rgconv init vs strict: max diff %.3g of %.3g; base filters differ by %.3g\n",
                  dmax, ymax, pd);
    assert_true(dmax <= 1e-5 * ymax);
    assert_true(pd > 0.1);
    free(ref);
    eqr_relax_destroy(r);
    eqr_gconv_destroy(g);
    eqr_rep_destroy(R);
    eqr_ctx_destroy(ctx);
}

/* ------------------------------------------------------- projection */

/* Base filters of multiples of 1/8 in [-1, 1] and mean weights of
 * multiples of 1/4: every product and sum of the bank is exact in float, so
 * the bank of the mean weights and the folded gconv's are the same floats
 * however they are summed, and the outputs must be bit-identical. */
static void test_projection_function(void **state) {
    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        eqr_ctx *ctx = tu_ctx(40 + mode);
        eqr_group G = eqr_group_dihedral(4);
        eqr_rep *T = tu_trivial_rep(ctx, &G, 1), *R = tu_regular_rep(ctx, &G, 2);
        eqr_gconv *g = tu_gconv(ctx, "g", T, R, 3, EQR_CONV2D(1, 1, 1), 0.5f);
        eqr_relax *r = tu_relax(ctx, "relax", 0.6f, 0.5f, 0, 0, 0);
        eqr_rlayer_opts o = rg_opts(3);
        eqr_rlayer *l = eqr_relax_rgconv(ctx, r, "g", g, &o);
        assert_non_null(l);
        eqr_tensor *W = eqr_gconv_weight(g), *psi = eqr_param_find(ctx, "g.psi"),
                   *mix = eqr_param_find(ctx, "g.mix");
        assert_non_null(psi);
        assert_non_null(mix);
        eqr_rng *rng = eqr_ctx_rng(ctx);
        for (int64_t j = 0; j < W->numel; j++) W->data[j] = (float)((int)eqr_rng_below(rng, 17) - 8) / 8;
        for (int64_t j = 0; j < psi->numel; j++)
            psi->data[j] = (float)((int)eqr_rng_below(rng, 17) - 8) / 8;
        const float a[3] = {0.75f, -0.5f, 1.25f};
        memcpy(mix->data, a, sizeof a);
        eqr_tensor *x = tu_randn(ctx, 2, 1, 6, 6);
        /* not equivariant before (theta 0.6, random deviations) */
        double least;
        max_err(ctx, tu_rlayer_forward, l, &G, T, R, x, &least);
        assert_true(least > 1e-2);
        /* the averaged-weights layer: theta = 0 */
        eqr_relax_set_theta(r, 0.0f);
        eqr_tensor *y = eqr_rlayer_forward(ctx, l, x);
        assert_non_null(y);
        float *ref = malloc((size_t)y->numel * sizeof(float));
        memcpy(ref, y->data, (size_t)y->numel * sizeof(float));
        eqr_relax_set_theta(r, 0.6f);
        assert_int_equal(eqr_relax_project(ctx, r, mode ? EQR_PROJECT_FOLD : EQR_PROJECT_DROP),
                         EQR_OK);
        assert_true(eqr_rlayer_theta(l)->data[0] == 0.0f);
        assert_true(mix->data[0] == 1.0f && mix->data[1] == 0.0f && mix->data[2] == 0.0f);
        eqr_rgconv_report rep;
        assert_int_equal(eqr_rgconv_get_report(ctx, l, &rep), EQR_OK);
        assert_true(rep.max_rel_spread == 0.0f);
        eqr_tensor *yr = eqr_rlayer_forward(ctx, l, x), *yg = eqr_gconv_forward(ctx, g, x);
        assert_non_null(yr);
        assert_non_null(yg);
        assert_memory_equal(yr->data, ref, (size_t)y->numel * sizeof(float));
        assert_memory_equal(yg->data, ref, (size_t)y->numel * sizeof(float));
        /* the plain gconv alone is exactly equivariant */
        double ep = max_err(ctx, tu_rlayer_forward, l, &G, T, R, x, NULL);
        assert_true(ep <= EQ_TOL);
        free(ref);
        eqr_relax_destroy(r);
        eqr_gconv_destroy(g);
        eqr_rep_destroy(T);
        eqr_rep_destroy(R);
        eqr_ctx_destroy(ctx);
    }
}

/* ------------------------------------------------------- gradients */

static void test_gradcheck(void **state) {
    (void)state;
    for (int lift = 0; lift < 2; lift++) {
        eqr_ctx *ctx = tu_ctx(60 + lift);
        eqr_group G = eqr_group_cyclic(4);
        eqr_rep *in = lift ? tu_trivial_rep(ctx, &G, 2) : tu_regular_rep(ctx, &G, 1);
        eqr_rep *out = tu_regular_rep(ctx, &G, 1);
        eqr_gconv *g = tu_gconv(ctx, "g", in, out, 3, EQR_CONV2D(1, 1, 1), 0.5f);
        eqr_relax *r = tu_relax(ctx, "relax", 0.7f, 0.5f, 0, 0, 0);
        eqr_rlayer_opts o = rg_opts(2);
        eqr_rlayer *l = eqr_relax_rgconv(ctx, r, "g", g, &o);
        assert_non_null(l);
        int64_t xs[4] = {1, in->dim, 5, 5};
        eqr_tensor *ins[6] = {tu_input(ctx, "x", 4, xs, 1.0f), eqr_gconv_weight(g),
                              eqr_param_find(ctx, "g.psi"), eqr_param_find(ctx, "g.mix"),
                              eqr_rlayer_wr(l), eqr_gconv_bias(g)};
        /* conv sum (<= 4 * 9 terms), the bank's mix of 2, the weights'
         * centring over 4 and their sum, the bias */
        tu_gradcheck(ctx, tu_rlayer_fn, ins, 6, l, 1e-2, 4 * 9 + 2 * 2 + 4 + 2 + 2);
        eqr_relax_destroy(r);
        eqr_gconv_destroy(g);
        eqr_rep_destroy(in);
        eqr_rep_destroy(out);
        eqr_ctx_destroy(ctx);
    }
}

/* Adaptive theta (relax.h opts.adaptive): the layer's learnable theta gets
 * its gradient through the deviations' scale. */
static void test_adaptive_theta_gradcheck(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(70);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *R = tu_regular_rep(ctx, &G, 1);
    eqr_gconv *g = tu_gconv(ctx, "g", R, R, 3, EQR_CONV2D(1, 1, 1), 0.5f);
    eqr_relax_opts ro = {.theta = 0.6f, .adaptive = 1, .init = EQR_RELAX_INIT_NORMAL, .init_std = 0.5f};
    eqr_relax *r = eqr_relax_create(ctx, "relax", &ro);
    assert_non_null(r);
    eqr_rlayer_opts o = rg_opts(2);
    eqr_rlayer *l = eqr_relax_rgconv(ctx, r, "g", g, &o);
    assert_non_null(l);
    eqr_tensor *th = eqr_param_find(ctx, "g.theta");
    assert_ptr_equal(th, eqr_rlayer_theta(l));
    assert_true(th->flags & EQR_T_REQUIRES_GRAD);
    int64_t xs[4] = {1, 4, 5, 5};
    eqr_tensor *ins[3] = {tu_input(ctx, "x", 4, xs, 1.0f), th, eqr_rlayer_wr(l)};
    tu_gradcheck(ctx, tu_rlayer_fn, ins, 3, l, 1e-2, 4 * 9 + 2 * 2 + 4 + 2 + 2);
    eqr_relax_destroy(r);
    eqr_gconv_destroy(g);
    eqr_rep_destroy(R);
    eqr_ctx_destroy(ctx);
}

typedef struct pen_case {
    eqr_relax *r;
    eqr_rlayer *l;
} pen_case;

static eqr_tensor *pen_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    pen_case *c = user;
    eqr_tensor *y = eqr_rlayer_forward(ctx, c->l, in[0]);
    return eqr_add(ctx, eqr_scale(ctx, eqr_sum_all(ctx, y), 0.01f),
                   eqr_sum_all(ctx, eqr_relax_penalty(ctx, c->r)));
}

/* Both penalties (exact and subsampled N), the base filters detached in N. */
static void test_penalty_gradcheck(void **state) {
    (void)state;
    for (int sub = 0; sub < 2; sub++) {
        eqr_ctx *ctx = tu_ctx(80 + sub);
        eqr_group G = eqr_group_cyclic(4);
        eqr_rep *R = tu_regular_rep(ctx, &G, 1);
        eqr_gconv *g = tu_gconv(ctx, "g", R, R, 3, EQR_CONV2D(1, 1, 1), 0.5f);
        pen_case c;
        c.r = tu_relax(ctx, "relax", 0.4f, 0.5f, 0.3f, 0.7f, sub);
        eqr_relax_set_penalty_grad(c.r, EQR_PENALTY_FULL); /* x, Psi get the norm's gradient */
        eqr_rlayer_opts o = rg_opts(2);
        c.l = eqr_relax_rgconv(ctx, c.r, "g", g, &o);
        assert_non_null(c.l);
        int64_t xs[4] = {2, 4, 4, 4};
        eqr_tensor *ins[5] = {tu_input(ctx, "x", 4, xs, 1.0f), eqr_rlayer_wr(c.l),
                              eqr_gconv_weight(g), eqr_param_find(ctx, "g.psi"),
                              eqr_param_find(ctx, "g.mix")};
        tu_gradcheck_recorded(ctx, pen_fn, ins, 5, &c, 7, 1e-2, 512);
        /* detached (the default): the penalty alone trains D only */
        eqr_relax_set_penalty_grad(c.r, EQR_PENALTY_DETACHED);
        eqr_grad_zero(ctx);
        eqr_step_reset(ctx);
        assert_non_null(eqr_rlayer_forward(ctx, c.l, ins[0]));
        eqr_tensor *pen = eqr_relax_penalty(ctx, c.r);
        assert_non_null(pen);
        assert_true(pen->data[0] > 0.0f);
        assert_int_equal(eqr_backward(ctx, pen), EQR_OK);
        float gd = 0, go = 0;
        for (int k = 0; k < 5; k++) {
            const eqr_tensor *t = ins[k];
            for (int64_t j = 0; t->grad && j < t->numel; j++) {
                if (k == 1) gd = fmaxf(gd, fabsf(t->grad[j]));
                else go = fmaxf(go, fabsf(t->grad[j]));
            }
        }
        assert_true(gd > 0.0f);
        assert_true(go == 0.0f);
        eqr_relax_destroy(c.r);
        eqr_gconv_destroy(g);
        eqr_rep_destroy(R);
        eqr_ctx_destroy(ctx);
    }
}

/* ------------------------------------------------- LD and the report */

static void test_report_and_defect(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(3);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *T = tu_trivial_rep(ctx, &G, 1), *R = tu_regular_rep(ctx, &G, 1);
    eqr_gconv *g = tu_gconv(ctx, "g", T, R, 3, EQR_CONV2D(1, 1, 1), 0.0f);
    eqr_relax *r = tu_relax(ctx, "relax", 0.5f, 0.0f, 0, 0, 0);
    eqr_rlayer_opts o = rg_opts(2);
    eqr_rlayer *l = eqr_relax_rgconv(ctx, r, "g", g, &o);
    assert_non_null(l);
    eqr_rgconv_report rep;
    assert_int_equal(eqr_rgconv_get_report(ctx, l, &rep), EQR_OK);
    assert_int_equal(rep.nbanks, 2);
    assert_int_equal(rep.order, 4);
    assert_true(rep.mean[0] == 0.5f && rep.mean[1] == 0.5f); /* 1/L */
    assert_true(rep.max_rel_spread == 0.0f);
    /* hand-set: a = (0.5, -0.25), D rows (1, 2, 3, 4) and (7, 7, 7, 7) */
    eqr_tensor *mix = eqr_param_find(ctx, "g.mix"), *D = eqr_rlayer_wr(l);
    mix->data[0] = 0.5f;
    mix->data[1] = -0.25f;
    const float d[8] = {1, 2, 3, 4, 7, 7, 7, 7};
    memcpy(D->data, d, sizeof d);
    assert_int_equal(eqr_rgconv_get_report(ctx, l, &rep), EQR_OK);
    /* row 0: deviations (-1.5, -0.5, 0.5, 1.5), variance 5/4 */
    const double sd = sqrt(1.25);
    assert_true(fabs(rep.spread[0] - sd) <= 1e-6 * sd);
    assert_true(fabs(rep.rel_spread[0] - sd / 0.5) <= 1e-6 * sd);
    assert_true(rep.spread[1] == 0.0f && rep.rel_spread[1] == 0.0f);
    assert_true(rep.mean[0] == 0.5f && rep.mean[1] == -0.25f);
    assert_true(fabs(rep.max_rel_spread - sd / 0.5) <= 1e-6 * sd);
    assert_true(fabs(rep.eff_max_rel_spread - 0.5 * sd / 0.5) <= 1e-6 * sd);
    assert_true(rep.theta == 0.5f);
    float w[8];
    const float w1[8] = {-1.0f, 0.0f, 1.0f, 2.0f, -0.25f, -0.25f, -0.25f, -0.25f};
    const float we[8] = {-0.25f, 0.25f, 0.75f, 1.25f, -0.25f, -0.25f, -0.25f, -0.25f};
    assert_int_equal(eqr_rgconv_weights(ctx, l, 0, w), EQR_OK);
    assert_memory_equal(w, w1, sizeof w);
    assert_int_equal(eqr_rgconv_weights(ctx, l, 1, w), EQR_OK);
    assert_memory_equal(w, we, sizeof w);
    /* LD = sum of squared deviations = 5, the stats agree */
    eqr_tensor *ld = eqr_relax_defect(ctx, r);
    assert_non_null(ld);
    assert_true(ld->data[0] == 5.0f);
    eqr_rlayer_stats st;
    assert_int_equal(eqr_rlayer_get_stats(ctx, l, &st), EQR_OK);
    assert_true(st.defect == 5.0f);
    /* a zero mean with a spread: infinite relative spread */
    mix->data[0] = 0.0f;
    assert_int_equal(eqr_rgconv_get_report(ctx, l, &rep), EQR_OK);
    assert_true(isinf(rep.rel_spread[0]));
    /* a layer of another kind */
    eqr_gconv *g2 = tu_gconv(ctx, "g2", T, R, 3, EQR_CONV2D(1, 1, 1), 0.0f);
    eqr_rlayer *l2 = eqr_relax_gconv(ctx, r, "g2", g2, NULL);
    assert_non_null(l2);
    assert_string_equal(eqr_rlayer_kind(l2), "gconv");
    assert_int_equal(eqr_rgconv_get_report(ctx, l2, &rep), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "not a relaxed group conv");
    eqr_relax_destroy(r);
    eqr_gconv_destroy(g);
    eqr_gconv_destroy(g2);
    eqr_rep_destroy(T);
    eqr_rep_destroy(R);
    eqr_ctx_destroy(ctx);
}

/* ------------------------------------------------------ bad options */

static void test_bad_options(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(5);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *T = tu_trivial_rep(ctx, &G, 1), *R = tu_regular_rep(ctx, &G, 1);
    eqr_gconv *g = tu_gconv(ctx, "g", T, R, 3, EQR_CONV2D(1, 1, 1), 0.0f);
    eqr_relax *r = tu_relax(ctx, "relax", 0.5f, 0.0f, 0, 0, 0);
    const int bad[3] = {0, -1, EQR_RGCONV_MAX_BANKS + 1};
    for (int i = 0; i < 3; i++) {
        eqr_rlayer_opts o = rg_opts(bad[i]);
        assert_null(eqr_relax_gconv(ctx, r, "g", g, &o));
        tu_assert_error(ctx, EQR_ERR_ARG, "number of filter banks L");
    }
    assert_null(eqr_relax_rgconv(ctx, r, "g", g, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "opts");
    eqr_rlayer_opts add = {.nbanks = 2};
    assert_null(eqr_relax_gconv(ctx, r, "g", g, &add));
    tu_assert_error(ctx, EQR_ERR_ARG, "nbanks 2 is set but the relaxation kind is additive");
    eqr_rlayer_opts unk = {.kind = (eqr_relax_kind)7};
    assert_null(eqr_relax_gconv(ctx, r, "g", g, &unk));
    tu_assert_error(ctx, EQR_ERR_ARG, "unknown relaxation kind");
    assert_int_equal(eqr_relax_num_layers(r), 0);
    /* a module of another kind, relaxed as rgconv */
    eqr_steer_conv_opts so = {0};
    so.geom = EQR_CONV2D(1, 1, 1);
    eqr_module *sm = eqr_steer_conv_module(ctx, "s", T, R, 3, &so);
    assert_non_null(sm);
    eqr_rlayer_opts o = rg_opts(2);
    assert_null(eqr_relax_module(ctx, r, NULL, sm, &o));
    tu_assert_error(ctx, EQR_ERR_ARG, "applies to gconv modules only");
    /* a good one still works after the refusals */
    eqr_rlayer *l = eqr_relax_gconv(ctx, r, "g", g, &o);
    assert_non_null(l);
    assert_null(eqr_relax_rgconv(ctx, r, "g", g, &o)); /* names taken */
    tu_assert_error(ctx, EQR_ERR_ARG, "already exists");
    eqr_relax_destroy(r);
    eqr_gconv_destroy(g);
    eqr_rep_destroy(T);
    eqr_rep_destroy(R);
    eqr_ctx_destroy(ctx);
}

/* eqr_relax_module on a container of gconv modules. */
static void test_module(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(9);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *T = tu_trivial_rep(ctx, &G, 1), *R = tu_regular_rep(ctx, &G, 2);
    eqr_gconv_opts go = {.geom = EQR_CONV2D(1, 1, 1)};
    eqr_module *net = eqr_sequential_create(ctx, "net");
    eqr_sequential_add(net, eqr_gconv_module(ctx, "c1", T, R, 3, &go));
    eqr_sequential_add(net, eqr_relu_module(ctx, NULL));
    eqr_sequential_add(net, eqr_gconv_module(ctx, "c2", R, R, 3, &go));
    eqr_relax *r = tu_relax(ctx, "relax", 0.5f, 0.0f, 0.01f, 0.01f, 0);
    eqr_rlayer_opts o = rg_opts(2);
    net = eqr_relax_module(ctx, r, NULL, net, &o);
    if (!net) fail_msg("%s", eqr_error_message(ctx));
    assert_int_equal(eqr_relax_num_layers(r), 2);
    for (int i = 0; i < 2; i++) assert_string_equal(eqr_rlayer_kind(eqr_relax_layer(r, i)), "rgconv");
    assert_non_null(eqr_param_find(ctx, "c2.psi"));
    eqr_tensor *x = tu_randn(ctx, 2, 1, 6, 6);
    /* random deviations: not equivariant; projected: exactly */
    for (int i = 0; i < 2; i++) fill_normal(ctx, eqr_rlayer_wr(eqr_relax_layer(r, i)), 0.5f);
    double least;
    max_err(ctx, eqr_module_apply, net, &G, T, R, x, &least);
    assert_true(least > 1e-2);
    assert_int_equal(eqr_relax_project(ctx, r, EQR_PROJECT_FOLD), EQR_OK);
    assert_true(max_err(ctx, eqr_module_apply, net, &G, T, R, x, NULL) <= EQ_TOL);
    eqr_module_destroy(net);
    eqr_relax_destroy(r);
    eqr_rep_destroy(T);
    eqr_rep_destroy(R);
    eqr_ctx_destroy(ctx);
}

/* ------------------------------------------------- checkpoint / resume */

static void tiny_rgconv(eqr_ctx *ctx, tu_tiny_model *m) {
    eqr_group G = eqr_group_cyclic(4);
    m->in = tu_trivial_rep(ctx, &G, 1);
    m->out = tu_regular_rep(ctx, &G, 3);
    m->g = tu_gconv(ctx, "c1", m->in, m->out, 3, EQR_CONV2D(1, 1, 1), 0.1f);
    m->r = tu_relax(ctx, "relax", 0.0f, 0.0f, 0.01f, 0.01f, 0);
    eqr_rlayer_opts o = rg_opts(2);
    m->rl = eqr_relax_gconv(ctx, m->r, "c1", m->g, &o);
    assert_non_null(m->rl);
    m->head = eqr_param_create(ctx, "head", 2, (int64_t[]){2, 12}, 0);
    eqr_param_init_xavier_uniform(ctx, m->head, 1.0f);
    m->bias = eqr_param_create(ctx, "head.bias", 1, (int64_t[]){2}, EQR_PARAM_NO_DECAY);
}

/* 8 epochs of a triangle theta; with stop_resume, saved after epoch 4 and
 * everything rebuilt in a fresh context (another seed) and loaded. */
static float *train(int stop_resume, const char *ckpt, int64_t *total, float *spread) {
    eqr_ctx *ctx = tu_ctx(5);
    tu_tiny_model m;
    tiny_rgconv(ctx, &m);
    eqr_optim *opt = eqr_optim_create(ctx, &(eqr_optim_opts){.kind = EQR_OPTIM_ADAM, .lr = 0.02f});
    eqr_scheduler *sch = eqr_scheduler_create(ctx, opt);
    eqr_schedule s = {.kind = EQR_SCHED_TRIANGLE, .start = 1.0f, .end = 0.0f, .total = 40,
                      .unit_steps = 1};
    assert_int_equal(eqr_scheduler_add_value(sch, eqr_relax_theta(m.r), &s), EQR_OK);
    eqr_dataset train;
    tu_tiny_data(&train, 80, 7);
    eqr_batcher bt;
    assert_int_equal(eqr_batcher_init(ctx, &bt, &train, 16, 1, 3), EQR_OK);
    eqr_trainer_opts to = {.forward = tu_tiny_forward, .model = &m, .opt = opt, .sched = sch,
                           .relax = m.r, .epochs = 8};
    eqr_trainer *t = eqr_trainer_create(ctx, &to);
    assert_non_null(t);
    eqr_epoch_stats st;
    for (int e = 0; e < 8; e++) {
        if (stop_resume && e == 4) {
            uint64_t c[1] = {(uint64_t)e};
            assert_int_equal(eqr_checkpoint_save(ctx, ckpt, opt, c, 1), EQR_OK);
            eqr_trainer_destroy(t);
            eqr_batcher_free(&bt);
            eqr_scheduler_destroy(sch);
            eqr_optim_destroy(opt);
            tu_tiny_free(&m);
            eqr_ctx_destroy(ctx);
            ctx = tu_ctx(99);
            tiny_rgconv(ctx, &m);
            opt = eqr_optim_create(ctx, &(eqr_optim_opts){.kind = EQR_OPTIM_ADAM, .lr = 0.02f});
            sch = eqr_scheduler_create(ctx, opt);
            assert_int_equal(eqr_scheduler_add_value(sch, eqr_relax_theta(m.r), &s), EQR_OK);
            assert_int_equal(eqr_checkpoint_load(ctx, ckpt, opt, c, 1), EQR_OK);
            assert_int_equal(eqr_scheduler_sync(sch), EQR_OK);
            assert_int_equal(eqr_batcher_init(ctx, &bt, &train, 16, 1, 3), EQR_OK);
            assert_int_equal(eqr_batcher_seek(ctx, &bt, e, 0), EQR_OK);
            to.forward = tu_tiny_forward, to.model = &m, to.opt = opt, to.sched = sch, to.relax = m.r;
            t = eqr_trainer_create(ctx, &to);
            assert_non_null(t);
        }
        assert_int_equal(eqr_trainer_epoch(t, &bt, e + 1, &st), EQR_OK);
    }
    eqr_rgconv_report rep;
    assert_int_equal(eqr_rgconv_get_report(ctx, m.rl, &rep), EQR_OK);
    *spread = rep.max_rel_spread;
    *total = eqr_param_num_scalars(ctx);
    float *out = malloc(sizeof(float) * (size_t)*total);
    memcpy(out, eqr_param_data_block(ctx), sizeof(float) * (size_t)*total);
    eqr_trainer_destroy(t);
    eqr_batcher_free(&bt);
    eqr_dataset_free(&train);
    eqr_scheduler_destroy(sch);
    eqr_optim_destroy(opt);
    tu_tiny_free(&m);
    eqr_ctx_destroy(ctx);
    return out;
}

static void test_resume(void **state) {
    (void)state;
    char ckpt[512];
    tu_tmp_path(ckpt, "rgconv.ckpt");
    int64_t n0, n1;
    float s0, s1;
    float *a = train(0, ckpt, &n0, &s0), *b = train(1, ckpt, &n1, &s1);
    print_message("rgconv training: max relative spread of the weights over g %.3g\n", s0);
    assert_true(s0 > 0.0f); /* the data moved the weights apart */
    assert_int_equal(n0, n1);
    assert_memory_equal(a, b, sizeof(float) * (size_t)n0);
    assert_true(s0 == s1);
    free(a);
    free(b);
    remove(ckpt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equivariance),      cmocka_unit_test(test_init_is_strict),
        cmocka_unit_test(test_projection_function), cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_penalty_gradcheck), cmocka_unit_test(test_adaptive_theta_gradcheck),
        cmocka_unit_test(test_report_and_defect),
        cmocka_unit_test(test_bad_options),       cmocka_unit_test(test_module),
        cmocka_unit_test(test_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
