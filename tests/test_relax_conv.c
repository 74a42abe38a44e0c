/* Relaxed convs (relax.h): theta = 0 gives exact equivariance (every element
 * of C4 and D4 for group convs; the grid-exact elements of C8 and SO(2) for
 * steerable convs) and theta > 0 with a random W_r does not; the fused
 * forward (one conv with bank T(W) + theta W_r) agrees with the unfused
 * conv(x, T(W)) + theta conv(x, W_r) in outputs and in the gradients of W,
 * W_r, bias and x; finite-difference gradients; theta = 0 with penalties
 * off leaves W_r out (NaN W_r gives the plain layer's output bit for bit,
 * same tape, zero gradient); own thetas; argument errors. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Equivariance bound of the relaxed models at theta = 0 or with an
 * equivariant W_r (tu_equiv_bound): per layer, sums of <= C k k = 16 * 9 =
 * 144 products (2 regular fields of D4 into a 3x3 conv; the 5x5 steerable
 * convs sum 2 * 25), the filter expansion and the bias: depth < 200; amp 12
 * = sqrt(144) for random-sign sums; the two-layer model adds its layers'
 * bounds (used for every case). */
#define EQ_TOL (2 * tu_equiv_bound(200, 12.0))
#define HALF_PI 1.5707963267948966192313216916398

/* 3x3, pad 1, bias ~ N(0, 0.25) */
static eqr_gconv *mk_gconv(eqr_ctx *ctx, const char *name, const eqr_rep *in, const eqr_rep *out) {
    return tu_gconv(ctx, name, in, out, 3, EQR_CONV2D(1, 1, 1), 0.5f);
}

static eqr_steer_conv *mk_steer(eqr_ctx *ctx, const char *name, const eqr_rep *in,
                                const eqr_rep *out) {
    eqr_steer_conv_opts o = {0};
    o.geom = EQR_CONV2D(1, 2, 1);
    eqr_steer_conv *L = eqr_steer_conv_create(ctx, name, in, out, 5, &o);
    if (!L) fail_msg("steer %s: %s", name, eqr_error_message(ctx));
    if (eqr_steer_conv_bias(L)) eqr_tensor_normal(eqr_steer_conv_bias(L), eqr_ctx_rng(ctx), 0.5f);
    return L;
}

typedef struct model2 {
    eqr_rlayer *a, *b;
} model2;

static eqr_tensor *fwd2(eqr_ctx *ctx, void *m, eqr_tensor *x) {
    model2 *M = m;
    return eqr_rlayer_forward(ctx, M->b, eqr_relu(ctx, eqr_rlayer_forward(ctx, M->a, x)));
}

/* --------------------------------------------- equivariance at theta = 0 */

/* Over the n elements gs (gs[0] the identity): the largest equivariance
 * error of f at theta = 0 must be <= EQ_TOL and the smallest over g != e
 * at theta = 0.5 must exceed 1e-2 (what: the label printed). */
static void check_theta_sweep(eqr_ctx *ctx, eqr_forward_fn f, void *m, eqr_relax *r,
                              const eqr_rep *in, const eqr_rep *out, const eqr_gelem *gs, int n,
                              eqr_tensor *x, const char *what) {
    double worst0 = 0, least1 = 1e30;
    for (int e = 0; e < n; e++) {
        double err;
        eqr_relax_set_theta(r, 0.0f);
        assert_int_equal(eqr_equivariance_error(ctx, f, m, in, out, gs[e], x, NULL, &err), EQR_OK);
        worst0 = fmax(worst0, err);
        if (e == 0) continue;
        eqr_relax_set_theta(r, 0.5f);
        assert_int_equal(eqr_equivariance_error(ctx, f, m, in, out, gs[e], x, NULL, &err), EQR_OK);
        least1 = fmin(least1, err);
    }
    print_message("relaxed %s: max error theta=0 %.3g, min over g != e theta=0.5 %.3g\n", what,
                  worst0, least1);
    assert_true(worst0 <= EQ_TOL);
    assert_true(least1 > 1e-2);
}

static void test_gconv_theta_zero_exact(void **state) {
    (void)state;
    const eqr_group groups[2] = {eqr_group_cyclic(4), eqr_group_dihedral(4)};
    for (int gi = 0; gi < 2; gi++) {
        eqr_ctx *ctx = tu_ctx(11 + gi);
        const eqr_group *G = &groups[gi];
        eqr_rep *T = tu_trivial_rep(ctx, G, 2), *R2 = tu_regular_rep(ctx, G, 2), *R3 = tu_regular_rep(ctx, G, 3);
        eqr_gconv *g1 = mk_gconv(ctx, "l1", T, R2), *g2 = mk_gconv(ctx, "l2", R2, R3);
        eqr_relax *r = tu_relax(ctx, "relax", 0.0f, 0.5f, 0, 0, 0);
        model2 m = {eqr_relax_gconv(ctx, r, "l1", g1, NULL), eqr_relax_gconv(ctx, r, "l2", g2, NULL)};
        assert_non_null(m.a);
        assert_non_null(m.b);
        eqr_tensor *x = tu_randn(ctx, 2, 2, 7, 7);
        eqr_gelem gs[8];
        const int ord = eqr_group_order(G);
        assert_true(ord <= 8);
        for (int e = 0; e < ord; e++) gs[e] = eqr_group_element(G, e);
        check_theta_sweep(ctx, fwd2, &m, r, T, R3, gs, ord, x, gi ? "gconv D4" : "gconv C4");
        eqr_relax_destroy(r);
        eqr_gconv_destroy(g1);
        eqr_gconv_destroy(g2);
        eqr_rep_destroy(T);
        eqr_rep_destroy(R2);
        eqr_rep_destroy(R3);
        eqr_ctx_destroy(ctx);
    }
}

static void test_steer_theta_zero_exact(void **state) {
    (void)state;
    const eqr_group groups[2] = {eqr_group_cyclic(8), eqr_group_so2(3)};
    for (int gi = 0; gi < 2; gi++) {
        eqr_ctx *ctx = tu_ctx(21 + gi);
        const eqr_group *G = &groups[gi];
        const int fin[2] = {0, 1}, fout[3] = {0, 1, 2};
        eqr_rep *in = tu_irreps_rep(ctx, G, 2, fin);
        eqr_rep *out;
        if (gi == 0) {
            eqr_rep_part p[2] = {eqr_part_regular(1), eqr_part_irrep(eqr_irrep_of(G, 0, 2), 1)};
            out = eqr_rep_create(ctx, G, 2, p);
            assert_non_null(out);
        } else {
            out = tu_irreps_rep(ctx, G, 3, fout);
        }
        eqr_steer_conv *s = mk_steer(ctx, "s", in, out);
        eqr_relax *r = tu_relax(ctx, "relax", 0.0f, 0.3f, 0, 0, 0);
        eqr_rlayer *l = eqr_relax_steer_conv(ctx, r, "s", s, NULL);
        assert_non_null(l);
        eqr_tensor *x = tu_randn(ctx, 2, in->dim, 9, 9);
        eqr_gelem gs[4];
        for (int q = 0; q < 4; q++) gs[q] = eqr_gelem_of(0, q * HALF_PI);
        check_theta_sweep(ctx, tu_rlayer_forward, l, r, in, out, gs, 4, x,
                          gi ? "steer SO(2)" : "steer C8");
        eqr_relax_destroy(r);
        eqr_steer_conv_destroy(s);
        eqr_rep_destroy(in);
        eqr_rep_destroy(out);
        eqr_ctx_destroy(ctx);
    }
}

/* A layer with its own theta stays at 0 (exact) while the global one moves;
 * eqr_relax_set_theta then sets both. */
static void test_own_theta(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(31);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *T = tu_trivial_rep(ctx, &G, 1), *R = tu_regular_rep(ctx, &G, 1);
    eqr_gconv *g1 = mk_gconv(ctx, "a", T, R), *g2 = mk_gconv(ctx, "b", T, R);
    eqr_relax *r = tu_relax(ctx, "relax", 0.0f, 0.5f, 0, 0, 0);
    eqr_rlayer_opts lo = {.own_theta = 1};
    eqr_rlayer *la = eqr_relax_gconv(ctx, r, "a", g1, &lo), *lb = eqr_relax_gconv(ctx, r, "b", g2, NULL);
    assert_non_null(la);
    assert_non_null(lb);
    assert_ptr_equal(eqr_param_find(ctx, "a.theta"), eqr_rlayer_theta(la));
    assert_ptr_equal(eqr_relax_theta(r), eqr_rlayer_theta(lb));
    assert_ptr_equal(eqr_param_find(ctx, "a.wr"), eqr_rlayer_wr(la));
    assert_int_equal(eqr_relax_num_layers(r), 2);
    assert_ptr_equal(eqr_relax_layer(r, 1), lb);
    assert_null(eqr_relax_layer(r, 2));
    assert_string_equal(eqr_rlayer_name(la), "a");
    eqr_relax_theta(r)->data[0] = 0.7f; /* as a scheduler would */
    eqr_tensor *x = tu_randn(ctx, 1, 1, 7, 7);
    double ea, eb;
    eqr_gelem g = eqr_group_element(&G, 1);
    assert_int_equal(eqr_equivariance_error(ctx, tu_rlayer_forward, la, T, R, g, x, NULL, &ea), EQR_OK);
    assert_int_equal(eqr_equivariance_error(ctx, tu_rlayer_forward, lb, T, R, g, x, NULL, &eb), EQR_OK);
    assert_true(ea <= EQ_TOL);
    assert_true(eb > 1e-2); /* a threshold: theta 0.7 breaks equivariance at O(1) */
    eqr_relax_set_theta(r, 0.25f);
    assert_true(eqr_rlayer_theta(la)->data[0] == 0.25f && eqr_relax_theta(r)->data[0] == 0.25f);
    eqr_relax_destroy(r);
    eqr_gconv_destroy(g1);
    eqr_gconv_destroy(g2);
    eqr_rep_destroy(T);
    eqr_rep_destroy(R);
    eqr_ctx_destroy(ctx);
}

/* --------------------------------------------------- fused vs unfused */

typedef struct fused_case {
    eqr_gconv *g;
    eqr_steer_conv *s;
    eqr_rlayer *l;
} fused_case;

static eqr_tensor *unfused(eqr_ctx *ctx, fused_case *c, eqr_tensor *x, float theta) {
    eqr_tensor *y = c->g ? eqr_gconv_forward(ctx, c->g, x) : eqr_steer_conv_forward(ctx, c->s, x);
    const eqr_conv2d_geom *geom = c->g ? eqr_gconv_geom(c->g) : eqr_steer_conv_geom(c->s);
    return eqr_add(ctx, y, eqr_scale(ctx, eqr_conv2d(ctx, x, eqr_rlayer_wr(c->l), NULL, geom), theta));
}

/* Outputs and the gradients of W, W_r, bias and x of sum(y * seed). */
static void run_grads(eqr_ctx *ctx, fused_case *c, eqr_tensor *x, float theta, int fused,
                      float *out, float **grads, eqr_tensor **ts, int nts) {
    eqr_grad_zero(ctx);
    eqr_step_reset(ctx);
    eqr_tensor *y = fused ? eqr_rlayer_forward(ctx, c->l, x) : unfused(ctx, c, x, theta);
    if (!y) fail_msg("forward: %s", eqr_error_message(ctx));
    float *r = malloc((size_t)y->numel * sizeof(float));
    tu_fill_uniform(r, y->numel, 99);
    eqr_tensor *seed = eqr_tensor_from(ctx, y->ndim, y->shape, r);
    assert_int_equal(eqr_backward_from(ctx, y, seed), EQR_OK);
    memcpy(out, y->data, (size_t)y->numel * sizeof(float));
    for (int i = 0; i < nts; i++) memcpy(grads[i], ts[i]->grad, (size_t)ts[i]->numel * sizeof(float));
    free(r);
}

/* Magnitudes of the four gradients of sum(y * r) (r as run_grads draws it),
 * in double, for fused and unfused paths alike. T: the linear map from the
 * layer's weight (bias) to the bank (bias vector), read off column by column
 * by exporting unit weights (exact: one nonzero term per entry), |T| its
 * absolute values. With B = |T| |W| + theta |W_r| (the bank's magnitude) and
 * sums over the conv's taps:
 *  - bank gradient dB = sum_{n,p} r x over n1 = N OH OW terms, magB = sum |r||x|;
 *  - dW = T^T dB: <= ncol more terms, mag |T|^T magB; n = n1 + ncol + 2
 *    (the accumulate into the zeroed gradient, one spare);
 *  - dW_r = theta dB (fused) or conv(x, theta r) (unfused): mag theta magB,
 *    n = n1 + 3 (the scale, the accumulate, one spare);
 *  - dbias = Tb^T sum r: mag |Tb|^T sum |r|, n = n1 + ncolb + 2;
 *  - dx = conv^T(r, bank) (fused) or the sum of the two convs' (unfused):
 *    O k k terms of |r| B each, the bank itself nrow + 2 roundings off (the
 *    basis sum, theta W_r, the add), n = O k k + nrow + 4.
 * gn[k] gets n. Caller frees gm[k]. */
static void grad_mags(eqr_ctx *ctx, fused_case *c, eqr_tensor *x, float theta, eqr_tensor **ts,
                      double **gm, int64_t *gn) {
    int64_t bs[4];
    if (c->g) eqr_gconv_bank_shape(c->g, bs); else eqr_steer_conv_bank_shape(c->s, bs);
    const eqr_conv2d_geom *geom = c->g ? eqr_gconv_geom(c->g) : eqr_steer_conv_geom(c->s);
    const int64_t O = bs[0], C = bs[1], K = bs[2], nb = O * C * K * K;
    const int64_t N = x->shape[0], H = x->shape[2], W = x->shape[3];
    const int64_t OH = (H + 2 * geom->pad_h - geom->dil_h * (K - 1) - 1) / geom->stride_h + 1;
    const int64_t OW = (W + 2 * geom->pad_w - geom->dil_w * (K - 1) - 1) / geom->stride_w + 1;
    eqr_tensor *w = ts[0], *b = ts[2];
    const int64_t nw = w->numel, nbias = b->numel;
    float *bank = malloc((size_t)nb * sizeof(float)), *bv = malloc((size_t)O * sizeof(float));
    double *T = calloc((size_t)(nb * nw), sizeof(double)), *Tb = calloc((size_t)(O * nbias), sizeof(double));
    float *w0 = malloc((size_t)(nw + nbias) * sizeof(float));
    assert_true(bank && bv && T && Tb && w0);
    memcpy(w0, w->data, (size_t)nw * sizeof(float));
    memcpy(w0 + nw, b->data, (size_t)nbias * sizeof(float));
    int64_t ncol = 0, ncolb = 0, nrow = 0;
    for (int64_t j = 0; j < nw + nbias; j++) {
        memset(w->data, 0, (size_t)nw * sizeof(float));
        memset(b->data, 0, (size_t)nbias * sizeof(float));
        if (j < nw) w->data[j] = 1; else b->data[j - nw] = 1;
        assert_int_equal(c->g ? eqr_gconv_export(ctx, c->g, bank, bv) : eqr_steer_conv_export(ctx, c->s, bank, bv),
                         EQR_OK);
        int64_t cnt = 0;
        if (j < nw) {
            for (int64_t i = 0; i < nb; i++) cnt += (T[i * nw + j] = fabsf(bank[i])) != 0;
            if (cnt > ncol) ncol = cnt;
        } else {
            for (int64_t i = 0; i < O; i++) cnt += (Tb[i * nbias + j - nw] = fabsf(bv[i])) != 0;
            if (cnt > ncolb) ncolb = cnt;
        }
    }
    memcpy(w->data, w0, (size_t)nw * sizeof(float));
    memcpy(b->data, w0 + nw, (size_t)nbias * sizeof(float));
    double *B = calloc((size_t)nb, sizeof(double)), *mB = calloc((size_t)nb, sizeof(double));
    double *mbo = calloc((size_t)O, sizeof(double));
    const float *wr = eqr_rlayer_wr(c->l)->data;
    assert_true(B && mB && mbo);
    for (int64_t i = 0; i < nb; i++) {
        int64_t cnt = 0;
        for (int64_t j = 0; j < nw; j++) {
            B[i] += T[i * nw + j] * fabsf(w->data[j]);
            cnt += T[i * nw + j] != 0;
        }
        B[i] += theta * fabsf(wr[i]);
        if (cnt > nrow) nrow = cnt;
    }
    float *r = malloc((size_t)(N * O * OH * OW) * sizeof(float));
    assert_non_null(r);
    tu_fill_uniform(r, N * O * OH * OW, 99);
    for (int k = 0; k < 4; k++) gm[k] = calloc((size_t)ts[k]->numel, sizeof(double));
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    const double ar = fabsf(r[((n * O + o) * OH + oh) * OW + ow]);
                    mbo[o] += ar;
                    for (int64_t ci = 0; ci < C; ci++)
                        for (int64_t ki = 0; ki < K; ki++)
                            for (int64_t kj = 0; kj < K; kj++) {
                                const int64_t ih = oh * geom->stride_h - geom->pad_h + ki * geom->dil_h;
                                const int64_t iw = ow * geom->stride_w - geom->pad_w + kj * geom->dil_w;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                const int64_t bi = ((o * C + ci) * K + ki) * K + kj, xi = ((n * C + ci) * H + ih) * W + iw;
                                mB[bi] += ar * fabsf(x->data[xi]);
                                gm[3][xi] += ar * B[bi];
                            }
                }
    for (int64_t j = 0; j < nw; j++)
        for (int64_t i = 0; i < nb; i++) gm[0][j] += T[i * nw + j] * mB[i];
    for (int64_t i = 0; i < nb; i++) gm[1][i] = theta * mB[i];
    for (int64_t j = 0; j < nbias; j++)
        for (int64_t o = 0; o < O; o++) gm[2][j] += Tb[o * nbias + j] * mbo[o];
    const int64_t n1 = N * OH * OW;
    gn[0] = n1 + ncol + 2;
    gn[1] = n1 + 3;
    gn[2] = n1 + ncolb + 2;
    gn[3] = O * K * K + nrow + 4;
    free(bank);
    free(bv);
    free(T);
    free(Tb);
    free(w0);
    free(B);
    free(mB);
    free(mbo);
    free(r);
}

static void check_fused(eqr_ctx *ctx, fused_case *c, eqr_tensor *x, float theta, const char *what) {
    eqr_tensor *ts[4] = {c->g ? eqr_gconv_weight(c->g) : eqr_steer_conv_weight(c->s), eqr_rlayer_wr(c->l),
                         c->g ? eqr_gconv_bias(c->g) : eqr_steer_conv_bias(c->s), x};
    const char *names[4] = {"dW", "dW_r", "dbias", "dx"};
    eqr_step_reset(ctx);
    eqr_tensor *y0 = eqr_rlayer_forward(ctx, c->l, x);
    assert_non_null(y0);
    int64_t ny = y0->numel;
    float *o1 = malloc((size_t)ny * sizeof(float)), *o2 = malloc((size_t)ny * sizeof(float));
    float *g1[4], *g2[4];
    for (int i = 0; i < 4; i++) {
        g1[i] = malloc((size_t)ts[i]->numel * sizeof(float));
        g2[i] = malloc((size_t)ts[i]->numel * sizeof(float));
    }
    run_grads(ctx, c, x, theta, 1, o1, g1, ts, 4);
    run_grads(ctx, c, x, theta, 0, o2, g2, ts, 4);
    double *ref = malloc((size_t)ny * sizeof(double)), *mag = malloc((size_t)ny * sizeof(double));
    assert_true(ref && mag);
    for (int64_t i = 0; i < ny; i++) ref[i] = o2[i];
    /* both paths sum the same products x (W + theta W_r) and the bias:
     * mag = conv(|x|, |W| + theta |W_r|) + |b| (a float sum of positive
     * terms, raised by its own gamma_n to bound the exact one); fused:
     * n + 2 roundings (the W + theta W_r bank), unfused: n + 2 (the scale and
     * the add), so they are within 2 gamma_{n+2} mag of each other */
    {
        int64_t bs[4];
        if (c->g) eqr_gconv_bank_shape(c->g, bs); else eqr_steer_conv_bank_shape(c->s, bs);
        const int64_t nw = bs[0] * bs[1] * bs[2] * bs[3], n = bs[1] * bs[2] * bs[3] + 1;
        eqr_tensor *A = eqr_tensor_zeros(ctx, 4, bs), *bb = eqr_tensor_zeros(ctx, 1, bs);
        eqr_tensor *X = eqr_tensor_zeros(ctx, x->ndim, x->shape);
        assert_true(A && bb && X);
        assert_int_equal(c->g ? eqr_gconv_export(ctx, c->g, A->data, bb->data)
                              : eqr_steer_conv_export(ctx, c->s, A->data, bb->data), EQR_OK);
        const float *wr = eqr_rlayer_wr(c->l)->data;
        for (int64_t i = 0; i < nw; i++) A->data[i] = fabsf(A->data[i]) + theta * fabsf(wr[i]);
        for (int64_t i = 0; i < bs[0]; i++) bb->data[i] = fabsf(bb->data[i]);
        for (int64_t i = 0; i < x->numel; i++) X->data[i] = fabsf(x->data[i]);
        int prev = eqr_grad_set_enabled(ctx, 0);
        eqr_tensor *m = eqr_conv2d(ctx, X, A, bb, c->g ? eqr_gconv_geom(c->g) : eqr_steer_conv_geom(c->s));
        eqr_grad_set_enabled(ctx, prev);
        assert_non_null(m);
        assert_int_equal(m->numel, ny);
        for (int64_t i = 0; i < ny; i++) mag[i] = m->data[i] * (1 + tu_gamma(n + 2));
        tu_assert_close_bound(what, o1, ref, mag, ny, n + 2, 2);
    }
    free(ref);
    free(mag);
    double *gm[4];
    int64_t gn[4];
    grad_mags(ctx, c, x, theta, ts, gm, gn);
    for (int k = 0; k < 4; k++) {
        double *rg = malloc((size_t)ts[k]->numel * sizeof(double)), nrm = 0;
        for (int64_t i = 0; i < ts[k]->numel; i++) {
            rg[i] = g2[k][i];
            nrm += rg[i] * rg[i];
        }
        assert_true(nrm > 0); /* every gradient is exercised */
        /* both paths within gamma_n of the same magnitude sums: 2 of them */
        tu_assert_close_bound(names[k], g1[k], rg, gm[k], ts[k]->numel, gn[k], 2);
        free(rg);
        free(gm[k]);
        free(g1[k]);
        free(g2[k]);
    }
    free(o1);
    free(o2);
}

static void test_fused_matches_unfused(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(41);
    eqr_group G = eqr_group_dihedral(4), C8 = eqr_group_cyclic(8);
    eqr_rep *R1 = tu_regular_rep(ctx, &G, 1), *R2 = tu_regular_rep(ctx, &G, 2);
    const int fin[2] = {0, 1};
    eqr_rep *sin = tu_irreps_rep(ctx, &C8, 2, fin), *sout = tu_regular_rep(ctx, &C8, 1);
    eqr_gconv *g = mk_gconv(ctx, "g", R1, R2);
    eqr_steer_conv *s = mk_steer(ctx, "s", sin, sout);
    eqr_relax *r = tu_relax(ctx, "relax", 0.7f, 0.3f, 0, 0, 0);
    fused_case cg = {g, NULL, eqr_relax_gconv(ctx, r, "g", g, NULL)};
    fused_case cs = {NULL, s, eqr_relax_steer_conv(ctx, r, "s", s, NULL)};
    assert_non_null(cg.l);
    assert_non_null(cs.l);
    int64_t xs1[4] = {2, R1->dim, 6, 6}, xs2[4] = {2, sin->dim, 7, 7};
    eqr_tensor *x1 = tu_input(ctx, "x1", 4, xs1, 1.0f), *x2 = tu_input(ctx, "x2", 4, xs2, 1.0f);
    check_fused(ctx, &cg, x1, 0.7f, "gconv fused output");
    check_fused(ctx, &cs, x2, 0.7f, "steer fused output");
    eqr_relax_destroy(r);
    eqr_gconv_destroy(g);
    eqr_steer_conv_destroy(s);
    eqr_rep_destroy(R1);
    eqr_rep_destroy(R2);
    eqr_rep_destroy(sin);
    eqr_rep_destroy(sout);
    eqr_ctx_destroy(ctx);
}

/* ------------------------------------------------------------ gradients */

static void test_gradcheck(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(51);
    eqr_group G = eqr_group_cyclic(4), S = eqr_group_so2(2);
    eqr_rep *R = tu_regular_rep(ctx, &G, 1);
    const int fin[1] = {1}, fout[2] = {0, 2};
    eqr_rep *sin = tu_irreps_rep(ctx, &S, 1, fin), *sout = tu_irreps_rep(ctx, &S, 2, fout);
    eqr_gconv *g = mk_gconv(ctx, "g", R, R);
    eqr_steer_conv_opts so = {0};
    so.geom = EQR_CONV2D(1, 1, 1);
    eqr_steer_conv *s = eqr_steer_conv_create(ctx, "s", sin, sout, 3, &so);
    assert_non_null(s);
    eqr_relax *r = tu_relax(ctx, "relax", 0.6f, 0.5f, 0, 0, 0);
    eqr_rlayer *lg = eqr_relax_gconv(ctx, r, "g", g, NULL), *ls = eqr_relax_steer_conv(ctx, r, "s", s, NULL);
    assert_non_null(lg);
    assert_non_null(ls);
    int64_t xs1[4] = {1, 4, 5, 5}, xs2[4] = {1, 2, 5, 5};
    eqr_tensor *in1[4] = {tu_input(ctx, "x1", 4, xs1, 1.0f), eqr_gconv_weight(g), eqr_rlayer_wr(lg),
                          eqr_gconv_bias(g)};
    tu_gradcheck(ctx, tu_rlayer_fn, in1, 4, lg, 1e-2, 4 * 9 + in1[1]->numel + in1[2]->numel + 2 /* conv sum, basis sums of W and W_r, bias */);
    eqr_tensor *in2[4] = {tu_input(ctx, "x2", 4, xs2, 1.0f), eqr_steer_conv_weight(s),
                          eqr_rlayer_wr(ls), eqr_steer_conv_bias(s)};
    tu_gradcheck(ctx, tu_rlayer_fn, in2, in2[3] ? 4 : 3, ls, 1e-2, 2 * 9 + in2[1]->numel + in2[2]->numel + 2);
    eqr_relax_destroy(r);
    eqr_gconv_destroy(g);
    eqr_steer_conv_destroy(s);
    eqr_rep_destroy(R);
    eqr_rep_destroy(sin);
    eqr_rep_destroy(sout);
    eqr_ctx_destroy(ctx);
}

/* ------------------------------------------ theta = 0 costs nothing */

static void test_theta_zero_untouched(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(61);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *T = tu_trivial_rep(ctx, &G, 1), *R = tu_regular_rep(ctx, &G, 2);
    eqr_gconv *g = mk_gconv(ctx, "g", T, R);
    eqr_relax_opts o = {0};
    o.lambda_norm = 0.5f; /* off below via set_lambdas, on in no-grad mode */
    eqr_relax *r = eqr_relax_create(ctx, "relax", &o);
    eqr_rlayer *l = eqr_relax_gconv(ctx, r, "g", g, NULL);
    assert_non_null(l);
    eqr_tensor *wr = eqr_rlayer_wr(l);
    for (int64_t i = 0; i < wr->numel; i++) wr->data[i] = NAN; /* any use would show */
    int64_t xs[4] = {2, 1, 6, 6};
    eqr_tensor *x = tu_input(ctx, "x", 4, xs, 1.0f);

    eqr_step_reset(ctx);
    eqr_tensor *yp = eqr_gconv_forward(ctx, g, x);
    assert_non_null(yp);
    int64_t tape_plain = eqr_tape_num_nodes(ctx), n = yp->numel;
    float *plain = malloc((size_t)n * sizeof(float));
    memcpy(plain, yp->data, (size_t)n * sizeof(float));

    /* penalties off, gradients on */
    eqr_relax_set_lambdas(r, 0.0f, 0.0f);
    eqr_grad_zero(ctx);
    eqr_step_reset(ctx);
    eqr_tensor *y = eqr_rlayer_forward(ctx, l, x);
    assert_non_null(y);
    assert_int_equal(eqr_tape_num_nodes(ctx), tape_plain);
    assert_memory_equal(y->data, plain, (size_t)n * sizeof(float));
    eqr_tensor *pen = eqr_relax_penalty(ctx, r);
    assert_non_null(pen);
    assert_true(pen->numel == 1 && pen->data[0] == 0.0f);
    assert_false(pen->flags & EQR_T_REQUIRES_GRAD);
    assert_int_equal(eqr_tape_num_nodes(ctx), tape_plain);
    tu_backward_ones(ctx, y);
    for (int64_t i = 0; i < wr->numel; i++) assert_true(wr->grad[i] == 0.0f);

    /* norm penalty on but no gradients (evaluation): still untouched */
    eqr_relax_set_lambdas(r, 0.0f, 0.5f);
    eqr_step_reset(ctx);
    int prev = eqr_grad_set_enabled(ctx, 0);
    y = eqr_rlayer_forward(ctx, l, x);
    eqr_grad_set_enabled(ctx, prev);
    assert_non_null(y);
    assert_memory_equal(y->data, plain, (size_t)n * sizeof(float));
    eqr_rlayer_stats st;
    assert_int_equal(eqr_rlayer_get_stats(ctx, l, &st), EQR_OK);
    assert_true(st.act_norm == -1.0f && st.theta == 0.0f);

    free(plain);
    eqr_relax_destroy(r);
    eqr_gconv_destroy(g);
    eqr_rep_destroy(T);
    eqr_rep_destroy(R);
    eqr_ctx_destroy(ctx);
}

/* --------------------------------------------------------------- errors */

static void test_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(71);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *T = tu_trivial_rep(ctx, &G, 1), *R = tu_regular_rep(ctx, &G, 1);
    eqr_gconv *g = mk_gconv(ctx, "g", T, R);
    eqr_relax_opts o = {0};
    o.lambda_norm = -1.0f;
    assert_null(eqr_relax_create(ctx, "bad", &o));
    tu_assert_error(ctx, EQR_ERR_ARG, "lambda");
    o.lambda_norm = 0;
    o.norm_subsample = -2;
    assert_null(eqr_relax_create(ctx, "bad", &o));
    tu_assert_error(ctx, EQR_ERR_ARG, "norm_subsample");
    o.norm_subsample = 0;
    o.init_std = -1;
    assert_null(eqr_relax_create(ctx, "bad", &o));
    tu_assert_error(ctx, EQR_ERR_ARG, "init_std");
    assert_null(eqr_relax_create(ctx, "", NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "name");
    assert_null(eqr_param_find(ctx, "bad.theta"));

    eqr_relax *r = eqr_relax_create(ctx, "relax", NULL);
    assert_non_null(r);
    assert_null(eqr_relax_create(ctx, "relax", NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "already exists");
    assert_null(eqr_relax_gconv(ctx, r, "g", NULL, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");
    eqr_rlayer *l = eqr_relax_gconv(ctx, r, "g", g, NULL);
    assert_non_null(l);
    int64_t ws[4];
    eqr_gconv_bank_shape(g, ws);
    assert_true(eqr_rlayer_wr(l)->ndim == 4 && eqr_rlayer_wr(l)->shape[0] == ws[0] &&
                eqr_rlayer_wr(l)->shape[1] == ws[1] && eqr_rlayer_wr(l)->shape[3] == 3);
    assert_null(eqr_relax_gconv(ctx, r, "g", g, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "g.wr");
    assert_int_equal(eqr_relax_num_layers(r), 1);

    eqr_tensor *x = tu_randn(ctx, 1, 4, 5, 5); /* regular fields into a lifting conv */
    assert_null(eqr_rlayer_forward(ctx, l, x));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "expected [N, 1, H, W]");
    assert_null(eqr_rlayer_forward(ctx, NULL, x));
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");
    assert_null(eqr_rlayer_forward(ctx, l, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    assert_int_equal(eqr_relax_project(ctx, r, (eqr_project_mode)7), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "mode");
    eqr_relax_destroy(NULL);
    eqr_relax_destroy(r);
    eqr_gconv_destroy(g);
    eqr_rep_destroy(T);
    eqr_rep_destroy(R);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gconv_theta_zero_exact),
        cmocka_unit_test(test_steer_theta_zero_exact),
        cmocka_unit_test(test_own_theta),
        cmocka_unit_test(test_fused_matches_unfused),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_theta_zero_untouched),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
