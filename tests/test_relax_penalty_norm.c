/* Relaxation penalties (relax.h), the activation norm and the penalty's
 * gradients: the norm against a naive conv, the subsample estimator (equal
 * to exact for m = B, unbiased over a partition of the batch) and its sum
 * over data-parallel ranks (eqr_relax_set_reduce), also for the activation
 * form of the defect; the safe sqrt (finite, zero gradient at W_r = 0);
 * finite-difference gradients of the whole penalty; consumption of per-step
 * terms and stale terms, and where the penalty's gradient goes. The
 * generator defect is in test_relax_penalty_defect.c. */

#include "testutil.h"
#include "tu_relax_penalty.h"
#include "relax/relax_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------ activation norm */

/* sum over images [0, n) of ||conv(x_i, w)||^2, stride 1, pad p, double;
 * iv (may be NULL) gets [lo, hi] bounding the float result: each float
 * output z is within e = gamma_{C k k} sum |x w| of exact (any BLAS
 * kernel), its square is summed in double by eqr_sumsq and rounded once:
 * lo = (1 - gamma_2) sum (|z| - e)+^2, hi = (1 + gamma_2) sum (|z| + e)^2. */
static double naive_norm_iv(const float *x, int n, int C, int H, const float *w, int O, int k, int p,
                            double *iv) {
    const int OH = H + 2 * p - k + 1;
    const double g = tu_gamma((int64_t)C * k * k), g2 = tu_gamma(2);
    double s = 0, lo = 0, hi = 0;
    for (int i = 0; i < n; i++)
        for (int o = 0; o < O; o++)
            for (int a = 0; a < OH; a++)
                for (int b = 0; b < OH; b++) {
                    double acc = 0, m = 0;
                    for (int c = 0; c < C; c++)
                        for (int u = 0; u < k; u++)
                            for (int v = 0; v < k; v++) {
                                int ya = a + u - p, yb = b + v - p;
                                if (ya < 0 || yb < 0 || ya >= H || yb >= H) continue;
                                const double t = (double)x[(((int64_t)i * C + c) * H + ya) * H + yb] *
                                                 w[(((int64_t)o * C + c) * k + u) * k + v];
                                acc += t;
                                m += fabs(t);
                            }
                    s += acc * acc;
                    const double z = fabs(acc), e = g * m, l = z > e ? z - e : 0;
                    lo += l * l;
                    hi += (z + e) * (z + e);
                }
    if (iv) {
        iv[0] = (1 - g2) * lo;
        iv[1] = (1 + g2) * hi;
    }
    return s;
}

/* Assert lo <= v <= hi (what: the label). */
static void assert_in(const char *what, double v, double lo, double hi) {
    if (!(v >= lo && v <= hi)) fail_msg("%s: %.9g outside [%.9g, %.9g]", what, v, lo, hi);
}

static void test_norm_exact(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(400);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *T = tu_trivial_rep(ctx, &G, 1), *R = tu_regular_rep(ctx, &G, 2);
    eqr_gconv *g1 = tu_pen_gconv(ctx, "a", T, R, 3), *g2 = tu_pen_gconv(ctx, "b", R, R, 3);
    eqr_relax *r = tu_relax(ctx, "relax", 0.3f, 0.5f, 0.0f, 2.0f, 0);
    eqr_rlayer *l1 = eqr_relax_gconv(ctx, r, "a", g1, NULL), *l2 = eqr_relax_gconv(ctx, r, "b", g2, NULL);
    eqr_tensor *x = tu_randn(ctx, 3, 1, 6, 6);
    eqr_tensor *h = eqr_relu(ctx, eqr_rlayer_forward(ctx, l1, x));
    assert_non_null(eqr_rlayer_forward(ctx, l2, h));
    double i1[2], i2[2];
    double n1 = naive_norm_iv(x->data, 3, 1, 6, eqr_rlayer_wr(l1)->data, 8, 3, 1, i1);
    double n2 = naive_norm_iv(h->data, 3, 8, 6, eqr_rlayer_wr(l2)->data, 8, 3, 1, i2);
    eqr_rlayer_stats s1, s2;
    assert_int_equal(eqr_rlayer_get_stats(ctx, l1, &s1), EQR_OK);
    assert_int_equal(eqr_rlayer_get_stats(ctx, l2, &s2), EQR_OK);
    double pen = tu_pen_value(eqr_relax_penalty(ctx, r));
    print_message("norm: penalty %.7g, 2 sqrt(N1 + N2) naive %.7g\n", pen, 2 * sqrt(n1 + n2));
    /* the intervals of the two float norms, their float add (u), the sqrt
     * (u) and the exact scale by 2; act_norm: sqrtf of each (u) */
    const double u = TU_U;
    assert_in("norm penalty", pen, 2 * (1 - u) * sqrt((1 - u) * (i1[0] + i2[0])),
              2 * (1 + u) * sqrt((1 + u) * (i1[1] + i2[1])));
    assert_in("act_norm 1", s1.act_norm, (1 - u) * sqrt(i1[0]), (1 + u) * sqrt(i1[1]));
    assert_in("act_norm 2", s2.act_norm, (1 - u) * sqrt(i2[0]), (1 + u) * sqrt(i2[1]));
    /* the penalty consumed the terms: a second call has nothing to add */
    assert_true(tu_pen_value(eqr_relax_penalty(ctx, r)) == 0.0);
    /* a term left from a step whose arena was reset is never used */
    assert_non_null(eqr_rlayer_forward(ctx, l1, x));
    eqr_step_reset(ctx);
    assert_true(tu_pen_value(eqr_relax_penalty(ctx, r)) == 0.0);
    eqr_relax_destroy(r);
    eqr_gconv_destroy(g1);
    eqr_gconv_destroy(g2);
    eqr_rep_destroy(T);
    eqr_rep_destroy(R);
    eqr_ctx_destroy(ctx);
}

/* Two ranks holding the same share: the sum over ranks is twice this one,
 * and each rank's weight in the gradient average is 1/2. */
static eqr_status two_same_ranks(eqr_ctx *ctx, void *user, double *sum, double *inv_weight) {
    (void)ctx;
    *(int *)user += 1;
    *sum *= 2.0;
    *inv_weight = 2.0;
    return EQR_OK;
}
static eqr_status failing_reduce(eqr_ctx *ctx, void *user, double *sum, double *inv_weight) {
    (void)user, (void)sum, (void)inv_weight;
    return eqr__fail(ctx, EQR_ERR_STATE, "the ranks are gone");
}

/* eqr_relax_set_reduce: the activation-norm penalty of the global batch is
 * lambda sqrt(2 N) on two equal ranks, and a rank's gradient (weighted 1/2
 * in the average of two) is sqrt(2) times the single-process one, the
 * gradient of lambda sqrt(2 N) averaged over the ranks; a failing reduce
 * ends the penalty with its error. */
static void test_norm_reduced(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(410);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *T = tu_trivial_rep(ctx, &G, 1), *R = tu_regular_rep(ctx, &G, 2);
    eqr_gconv *g1 = tu_pen_gconv(ctx, "a", T, R, 3);
    eqr_relax *r = tu_relax(ctx, "relax", 0.3f, 0.5f, 0.0f, 2.0f, 0);
    eqr_rlayer *l1 = eqr_relax_gconv(ctx, r, "a", g1, NULL);
    int64_t xs[4] = {3, 1, 6, 6}; /* a parameter: outlives the step resets */
    eqr_tensor *x = tu_input(ctx, "x", 4, xs, 1.0f), *wr = eqr_rlayer_wr(l1);
    double pen[2];
    float *grad[2];
    int calls = 0;
    for (int way = 0; way < 2; way++) {
        eqr_relax_set_reduce(r, way ? two_same_ranks : NULL, &calls);
        assert_non_null(eqr_rlayer_forward(ctx, l1, x));
        eqr_tensor *p = eqr_relax_penalty(ctx, r);
        pen[way] = tu_pen_value(p);
        eqr_grad_zero(ctx);
        assert_int_equal(eqr_backward(ctx, p), EQR_OK);
        grad[way] = malloc((size_t)wr->numel * sizeof(float));
        memcpy(grad[way], wr->grad, (size_t)wr->numel * sizeof(float));
        eqr_step_reset(ctx);
    }
    assert_int_equal(calls, 1);
    print_message("reduced norm penalty %.8g, sqrt(2) x local %.8g\n", pen[1], sqrt(2.0) * pen[0]);
    /* value: k + c s in float (k, c rounded from double): a few roundings
     * of numbers <= the penalty */
    assert_true(fabs(pen[1] - sqrt(2.0) * pen[0]) <= 8 * TU_U * pen[1]);
    /* gradient: both are a scalar times the same backward through the conv
     * (sums of 3 x 6 x 6 = 108 products per entry), rounded differently */
    double dd = 0, nn = 0;
    for (int64_t i = 0; i < wr->numel; i++) {
        double e = (double)grad[1][i] - sqrt(2.0) * grad[0][i];
        dd += e * e;
        nn += 2.0 * grad[0][i] * grad[0][i];
    }
    assert_true(nn > 0);
    assert_true(sqrt(dd) <= tu_gamma(2 * 108 + 8) * sqrt(nn));
    eqr_relax_set_reduce(r, failing_reduce, NULL);
    assert_non_null(eqr_rlayer_forward(ctx, l1, x));
    assert_null(eqr_relax_penalty(ctx, r));
    tu_assert_error(ctx, EQR_ERR_STATE, "the ranks are gone");
    free(grad[0]);
    free(grad[1]);
    eqr_relax_destroy(r);
    eqr_gconv_destroy(g1);
    eqr_rep_destroy(T);
    eqr_rep_destroy(R);
    eqr_ctx_destroy(ctx);
}

/* With a reduce and the activation form, the defect penalty is that of the
 * global batch: a group conv's weight-form LD W (the same on every rank)
 * plus a VN layer's activation-form LD A (a sum over this rank's share):
 * lambda sqrt(W + 2 A) on two identical ranks, the conv's W_r gradient
 * scaled by sqrt(W + A) / sqrt(W + 2 A) against the unreduced penalty and
 * the VN's by 2 sqrt(W + A) / sqrt(W + 2 A) (its term is divided by the
 * rank's weight 1/2); one reduce call per penalty term. */
static void test_defect_reduced_activation(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(420);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *T = tu_trivial_rep(ctx, &G, 1), *R = tu_regular_rep(ctx, &G, 2);
    eqr_gconv *g1 = tu_pen_gconv(ctx, "a", T, R, 3);
    eqr_vn_linear *vn = eqr_vn_linear_create(ctx, "vn", 3, 2);
    eqr_relax_opts o = {.theta = 0.3f, .init = EQR_RELAX_INIT_NORMAL, .init_std = 0.5f,
                        .lambda_defect = 2.0f, .lie_form = EQR_LIE_ACTIVATION};
    eqr_relax *r = eqr_relax_create(ctx, "relax", &o);
    eqr_rlayer *lg = eqr_relax_gconv(ctx, r, "a", g1, NULL);
    eqr_rlayer *lv = eqr_relax_vn_linear(ctx, r, "vn", vn, NULL);
    assert_non_null(lg);
    assert_non_null(lv);
    int64_t xs[4] = {3, 1, 6, 6}, vs[4] = {4, 3, 3, 5};
    eqr_tensor *x = tu_input(ctx, "x", 4, xs, 1.0f), *xv = tu_input(ctx, "xv", 4, vs, 1.0f);
    eqr_tensor *wg = eqr_rlayer_wr(lg), *wv = eqr_rlayer_wr(lv);
    double pen[2];
    float *gg[2], *gv[2];
    int calls = 0;
    for (int way = 0; way < 2; way++) {
        eqr_relax_set_reduce(r, way ? two_same_ranks : NULL, &calls);
        assert_non_null(eqr_rlayer_forward(ctx, lg, x));
        assert_non_null(eqr_rlayer_forward(ctx, lv, xv));
        eqr_tensor *p = eqr_relax_penalty(ctx, r);
        pen[way] = tu_pen_value(p);
        eqr_grad_zero(ctx);
        assert_int_equal(eqr_backward(ctx, p), EQR_OK);
        gg[way] = malloc((size_t)wg->numel * sizeof(float));
        gv[way] = malloc((size_t)wv->numel * sizeof(float));
        memcpy(gg[way], wg->grad, (size_t)wg->numel * sizeof(float));
        memcpy(gv[way], wv->grad, (size_t)wv->numel * sizeof(float));
        eqr_step_reset(ctx);
    }
    assert_int_equal(calls, 1); /* the norm is off: one reduce, the defect's */
    eqr_rlayer_stats st;
    assert_int_equal(eqr_rlayer_get_stats(ctx, lg, &st), EQR_OK);
    const double W = st.defect, D0 = (pen[0] / 2.0) * (pen[0] / 2.0), A = D0 - W;
    assert_true(W > 0 && A > 0.05 * D0); /* both kinds of term take part */
    const double want = 2.0 * sqrt(W + 2 * A);
    print_message("reduced activation-form defect penalty %.8g, expected %.8g\n", pen[1], want);
    /* W, A are recovered from float penalties (a few roundings each, the
     * squaring doubles them): 16 u of the penalty */
    assert_true(fabs(pen[1] - want) <= 16 * TU_U * want);
    const double sg = sqrt(W + A) / sqrt(W + 2 * A), sv = 2 * sg;
    double dg = 0, ng = 0, dv = 0, nv = 0;
    for (int64_t i = 0; i < wg->numel; i++) {
        double e = (double)gg[1][i] - sg * gg[0][i];
        dg += e * e;
        ng += sg * sg * gg[0][i] * gg[0][i];
    }
    for (int64_t i = 0; i < wv->numel; i++) {
        double e = (double)gv[1][i] - sv * gv[0][i];
        dv += e * e;
        nv += sv * sv * gv[0][i] * gv[0][i];
    }
    assert_true(ng > 0 && nv > 0);
    /* the same backward scaled by two differently rounded scalars (each a
     * few roundings, plus the error of the recovered W, A): 32 u */
    assert_true(sqrt(dg) <= 32 * TU_U * sqrt(ng));
    assert_true(sqrt(dv) <= 32 * TU_U * sqrt(nv));
    for (int k = 0; k < 2; k++) {
        free(gg[k]);
        free(gv[k]);
    }
    eqr_relax_destroy(r);
    eqr_vn_linear_destroy(vn);
    eqr_gconv_destroy(g1);
    eqr_rep_destroy(T);
    eqr_rep_destroy(R);
    eqr_ctx_destroy(ctx);
}

/* N of one forward of l on x through the penalty (lambda_norm = 1). */
static double norm_of(eqr_ctx *ctx, eqr_relax *r, eqr_rlayer *l, eqr_tensor *x) {
    assert_non_null(eqr_rlayer_forward(ctx, l, x));
    double p = tu_pen_value(eqr_relax_penalty(ctx, r));
    return p * p;
}

static void test_norm_estimator(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(500);
    eqr_group G = eqr_group_dihedral(2);
    eqr_rep *T = tu_trivial_rep(ctx, &G, 2), *R = tu_regular_rep(ctx, &G, 2);
    eqr_gconv *g = tu_pen_gconv(ctx, "g", T, R, 3);
    eqr_relax *rex = tu_relax(ctx, "exact", 0.0f, 0.0f, 0.0f, 1.0f, 0);
    eqr_relax *rfull = tu_relax(ctx, "full", 0.0f, 0.0f, 0.0f, 1.0f, 6);
    eqr_relax *rsub = tu_relax(ctx, "sub", 0.0f, 0.0f, 0.0f, 1.0f, 2);
    eqr_rlayer *le = eqr_relax_gconv(ctx, rex, "ge", g, NULL);
    eqr_rlayer *lf = eqr_relax_gconv(ctx, rfull, "gf", g, NULL);
    eqr_rlayer *ls = eqr_relax_gconv(ctx, rsub, "gs", g, NULL);
    assert_non_null(le);
    assert_non_null(lf);
    assert_non_null(ls);
    eqr_tensor *w = eqr_rlayer_wr(le);
    eqr_tensor_normal(w, eqr_ctx_rng(ctx), 0.5f);
    memcpy(eqr_rlayer_wr(lf)->data, w->data, (size_t)w->numel * sizeof(float));
    memcpy(eqr_rlayer_wr(ls)->data, w->data, (size_t)w->numel * sizeof(float));
    const int B = 6, C = 2, H = 5, img = C * H * H;
    eqr_tensor *x = tu_randn(ctx, B, C, H, H);
    double exact = norm_of(ctx, rex, le, x), full = norm_of(ctx, rfull, lf, x);
    /* norm_of squares the float penalty sqrt(N) (u from the sqrt: 2u + u^2
     * relative on the square, taken as gamma_3) */
    double ive[2];
    naive_norm_iv(x->data, B, C, H, w->data, 8, 3, 1, ive);
    const double g3 = tu_gamma(3);
    assert_in("exact norm", exact, (1 - g3) * ive[0], (1 + g3) * ive[1]);
    assert_true(full == exact); /* m = B is the exact mode */
    /* m = 2: B/m times the first two images; over the 3 shifts that bring
     * every pair of the batch first, the estimates average to the exact N */
    double mean = 0, spread = 0;
    int64_t xs[4] = {B, C, H, H};
    for (int s = 0; s < 3; s++) {
        eqr_tensor *xr = eqr_tensor_zeros(ctx, 4, xs);
        for (int i = 0; i < B; i++)
            memcpy(xr->data + (int64_t)i * img, x->data + (int64_t)((i + 2 * s) % B) * img,
                   (size_t)img * sizeof(float));
        double est = norm_of(ctx, rsub, ls, xr);
        /* B / m = 3 times the first two images' float norm (one more rounding) */
        double iv2[2];
        naive_norm_iv(xr->data, 2, C, H, w->data, 8, 3, 1, iv2);
        const double g4 = tu_gamma(4);
        assert_in("subsampled norm", est, 3 * (1 - g4) * iv2[0], 3 * (1 + g4) * iv2[1]);
        mean += est / 3;
        spread = fmax(spread, fabs(est - exact));
    }
    print_message("norm estimator m=2 of B=6: exact %.6g, mean of 3 estimates %.6g, max dev %.3g\n",
                  exact, mean, spread);
    /* the three estimates cover the batch once: their mean lies in the
     * exact norm's interval widened by their roundings (gamma_4 each, the
     * mean's divisions and adds in double) */
    assert_in("mean of the estimates", mean, (1 - tu_gamma(4)) * ive[0], (1 + tu_gamma(4)) * ive[1]);
    assert_true(spread > 1e-3 * exact); /* the estimates differ: it is a real subsample */
    eqr_relax_destroy(rex);
    eqr_relax_destroy(rfull);
    eqr_relax_destroy(rsub);
    eqr_gconv_destroy(g);
    eqr_rep_destroy(T);
    eqr_rep_destroy(R);
    eqr_ctx_destroy(ctx);
}

/* -------------------------------------------------------- safe sqrt */

static void test_ssqrt_zero(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(600);
    /* the op itself */
    int64_t one = 1;
    eqr_tensor *z = eqr_param_create(ctx, "z", 1, &one, 0), *f = eqr_param_create(ctx, "f", 1, &one, 0);
    f->data[0] = 4.0f;
    eqr_tensor *y = eqr_add(ctx, eqr__ssqrt(ctx, z), eqr__ssqrt(ctx, f));
    assert_true(y->data[0] == 2.0f);
    tu_backward_ones(ctx, y);
    assert_true(z->grad[0] == 0.0f);
    assert_true(f->grad[0] == 0.25f); /* 1 / (2 sqrt 4): exact in float */
    eqr_step_reset(ctx);

    /* the penalty of a zero-initialised W_r: finite gradients, and the same
     * as without penalties (its gradient at W_r = 0 is 0) */
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *T = tu_trivial_rep(ctx, &G, 1), *R = tu_regular_rep(ctx, &G, 2);
    eqr_gconv *g = tu_pen_gconv(ctx, "g", T, R, 3);
    eqr_relax *r = tu_relax(ctx, "relax", 0.5f, 0.0f, 0.01f, 0.01f, 0);
    eqr_rlayer *l = eqr_relax_gconv(ctx, r, "g", g, NULL);
    assert_non_null(l);
    int64_t xs[4] = {2, 1, 6, 6};
    eqr_tensor *x = tu_input(ctx, "x", 4, xs, 1.0f);
    eqr_tensor *wr = eqr_rlayer_wr(l);
    float *ref = malloc((size_t)wr->numel * sizeof(float));
    for (int pass = 0; pass < 2; pass++) {
        eqr_relax_set_lambdas(r, pass ? 0.0f : 0.01f, pass ? 0.0f : 0.01f);
        eqr_grad_zero(ctx);
        eqr_step_reset(ctx);
        eqr_tensor *loss = eqr_add(ctx, eqr_sum_all(ctx, eqr_rlayer_forward(ctx, l, x)),
                                   eqr_sum_all(ctx, eqr_relax_penalty(ctx, r)));
        assert_non_null(loss);
        assert_int_equal(eqr_backward(ctx, loss), EQR_OK);
        double nrm = 0;
        for (int64_t i = 0; i < wr->numel; i++) {
            assert_true(isfinite(wr->grad[i]));
            nrm += fabs(wr->grad[i]);
        }
        assert_true(nrm > 0); /* theta * dBank */
        for (int64_t i = 0; i < x->numel; i++) assert_true(isfinite(x->grad[i]));
        if (pass == 0)
            memcpy(ref, wr->grad, (size_t)wr->numel * sizeof(float));
        else
            assert_memory_equal(ref, wr->grad, (size_t)wr->numel * sizeof(float));
    }
    free(ref);
    eqr_relax_destroy(r);
    eqr_gconv_destroy(g);
    eqr_rep_destroy(T);
    eqr_rep_destroy(R);
    eqr_ctx_destroy(ctx);
}

/* ------------------------------------------------ penalty gradients */

typedef struct pen_case {
    eqr_relax *r;
    eqr_rlayer *l;
} pen_case;

static eqr_tensor *pen_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    pen_case *c = user;
    eqr_tensor *y = eqr_rlayer_forward(ctx, c->l, in[0]);
    /* the layer output too, so x, W, W_r all meet the check */
    return eqr_add(ctx, eqr_scale(ctx, eqr_sum_all(ctx, y), 0.01f), eqr_sum_all(ctx, eqr_relax_penalty(ctx, c->r)));
}

static void test_penalty_gradcheck(void **state) {
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        eqr_ctx *ctx = tu_ctx(700 + kind);
        eqr_group G = eqr_group_cyclic(4), S = eqr_group_so2(2);
        eqr_rep *in = NULL, *out = NULL;
        eqr_gconv *g = NULL;
        eqr_steer_conv *s = NULL;
        pen_case c;
        c.r = tu_relax(ctx, "relax", 0.4f, 0.5f, 0.3f, 0.7f, 1);
        eqr_relax_set_penalty_grad(c.r, EQR_PENALTY_FULL); /* x gets the norm's gradient */
        if (kind == 0) {
            in = tu_regular_rep(ctx, &G, 1);
            out = tu_regular_rep(ctx, &G, 1);
            g = tu_pen_gconv(ctx, "g", in, out, 3);
            c.l = eqr_relax_gconv(ctx, c.r, "g", g, NULL);
        } else {
            const int f1[1] = {1}, f2[2] = {0, 2};
            in = tu_irreps_rep(ctx, &S, 1, f1);
            out = tu_irreps_rep(ctx, &S, 2, f2);
            eqr_steer_conv_opts so = {0};
            so.geom = EQR_CONV2D(1, 1, 1);
            s = eqr_steer_conv_create(ctx, "s", in, out, 3, &so);
            assert_non_null(s);
            c.l = eqr_relax_steer_conv(ctx, c.r, "s", s, NULL);
        }
        assert_non_null(c.l);
        int64_t xs[4] = {2, in->dim, 4, 4};
        eqr_tensor *ins[3] = {tu_input(ctx, "x", 4, xs, 1.0f), eqr_rlayer_wr(c.l),
                              g ? eqr_gconv_weight(g) : eqr_steer_conv_weight(s)};
        /* the norm term is recorded only with gradients on */
        tu_gradcheck_recorded(ctx, pen_fn, ins, 3, &c, 7, 1e-2, 512 /* conv sums, basis sums, penalty sums over all weights */);
        eqr_relax_destroy(c.r);
        eqr_gconv_destroy(g);
        eqr_steer_conv_destroy(s);
        eqr_rep_destroy(in);
        eqr_rep_destroy(out);
        eqr_ctx_destroy(ctx);
    }
}

/* ------------------------------------------- where the penalty's gradient goes */

/* An upstream group conv "up" feeding the relaxed layer; the loss is the
 * penalty alone, so every gradient below is the penalty's. */
typedef struct reach_case {
    eqr_relax *r;
    eqr_rlayer *l;
    eqr_gconv *up;
    eqr_tensor *x; /* the network input (also in[0] of the full-form check) */
} reach_case;

static eqr_tensor *reach_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    reach_case *c = user;
    (void)in;
    (void)eqr_rlayer_forward(ctx, c->l, eqr_gconv_forward(ctx, c->up, c->x));
    return eqr_sum_all(ctx, eqr_relax_penalty(ctx, c->r));
}

static int all_zero(const eqr_tensor *t) {
    for (int64_t i = 0; i < t->numel; i++)
        if (t->grad[i] != 0.0f) return 0;
    return 1;
}

/* Detached (default): the penalty's gradient into x and into the upstream
 * layer is exactly 0 (no tape link, not a small number), and into W_r it is
 * the finite-difference gradient. Full: the upstream layer gets a nonzero
 * gradient, equal to FD. Exact stacked norm (subsample 0) and estimator
 * (subsample 1 of 2 images), with the activation norm only. */
static void test_penalty_grad_reach(void **state) {
    (void)state;
    for (int sub = 0; sub < 2; sub++)
        for (int full = 0; full < 2; full++) {
            eqr_ctx *ctx = tu_ctx(900 + 2 * sub + full);
            eqr_group G = eqr_group_cyclic(4);
            eqr_rep *R = tu_regular_rep(ctx, &G, 1);
            reach_case c;
            c.up = tu_pen_gconv(ctx, "up", R, R, 3);
            eqr_gconv *g = tu_pen_gconv(ctx, "g", R, R, 3);
            c.r = tu_relax(ctx, "relax", 0.4f, 0.5f, 0.0f, 0.7f, sub);
            assert_int_equal(eqr_relax_get_opts(c.r)->penalty_grad, EQR_PENALTY_DETACHED);
            if (full) eqr_relax_set_penalty_grad(c.r, EQR_PENALTY_FULL);
            c.l = eqr_relax_gconv(ctx, c.r, "g", g, NULL);
            assert_non_null(c.l);
            int64_t xs[4] = {2, R->dim, 5, 5};
            eqr_tensor *x = c.x = tu_input(ctx, "x", 4, xs, 1.0f);
            eqr_tensor *wu = eqr_gconv_weight(c.up), *wr = eqr_rlayer_wr(c.l);
            eqr_step_reset(ctx);
            eqr_grad_zero(ctx);
            eqr_tensor *loss = reach_fn(ctx, NULL, &c);
            assert_non_null(loss);
            assert_true(loss->data[0] > 0.0f);
            assert_int_equal(eqr_backward(ctx, loss), EQR_OK);
            assert_false(all_zero(wr));
            if (!full) {
                assert_true(all_zero(wu));
                assert_true(all_zero(x));
                eqr_tensor *ins[1] = {wr};
                tu_gradcheck_recorded(ctx, reach_fn, ins, 1, &c, 11, 1e-2, 512);
            } else {
                assert_false(all_zero(wu));
                assert_false(all_zero(x));
                eqr_tensor *ins[3] = {x, wu, wr};
                tu_gradcheck_recorded(ctx, reach_fn, ins, 3, &c, 11, 1e-2, 512);
            }
            eqr_relax_destroy(c.r);
            eqr_gconv_destroy(g);
            eqr_gconv_destroy(c.up);
            eqr_rep_destroy(R);
            eqr_ctx_destroy(ctx);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_norm_exact),
        cmocka_unit_test(test_norm_reduced),
        cmocka_unit_test(test_defect_reduced_activation),
        cmocka_unit_test(test_norm_estimator),
        cmocka_unit_test(test_ssqrt_zero),
        cmocka_unit_test(test_penalty_gradcheck),
        cmocka_unit_test(test_penalty_grad_reach),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
