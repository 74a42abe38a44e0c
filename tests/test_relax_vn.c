/* Relaxed VN-Linear (eqr_relax_vn_linear, kind "vn_linear"): exact
 * equivariance at theta = 0, the fused forward, the blockwise Lie
 * derivative (weight and activation form) against the generic closed form
 * and finite differences of rotations, the activation norm, fold vs drop
 * projection, gradients. */
#include "testutil.h"

#include "nn3d/vn_internal.h" /* the kernels, for gradchecks of the penalty terms */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { CI = 3, CO = 4, NB = 3, NP = 5 };
/* Equivariance bound of the relaxed VN-linear when it is equivariant
 * (tu_equiv_bound): W x sums CI terms, theta W_r x 3 CI more, the add:
 * depth 4 CI + 2 < 16; amp sqrt(3 CI) = 3 for random-sign sums. */
#define EQ_TOL tu_equiv_bound(16, 3.0)

typedef struct fixture {
    eqr_ctx *ctx;
    eqr_relax *r;
    eqr_vn_linear *lin;
    eqr_rlayer *rl;
    eqr_tensor *x, *w, *wr;
} fixture;

static void setup(fixture *f, uint64_t seed, const eqr_relax_opts *o) {
    f->ctx = tu_ctx(seed);
    f->r = eqr_relax_create(f->ctx, "relax", o);
    assert_non_null(f->r);
    f->lin = eqr_vn_linear_create(f->ctx, "lin", CI, CO);
    assert_non_null(f->lin);
    f->rl = eqr_relax_vn_linear(f->ctx, f->r, "lin", f->lin, NULL);
    if (!f->rl) fail_msg("relax failed: %s", eqr_error_message(f->ctx));
    f->w = eqr_vn_linear_weight(f->lin);
    f->wr = eqr_rlayer_wr(f->rl);
    assert_ptr_equal(eqr_param_find(f->ctx, "lin.wr"), f->wr);
    assert_int_equal(f->wr->shape[0], 3 * CO);
    assert_int_equal(f->wr->shape[1], 3 * CI);
    int64_t s[4] = {NB, CI, 3, NP};
    f->x = tu_input(f->ctx, "x", 4, s, 1.0f);
}

static void teardown(fixture *f) {
    eqr_relax_destroy(f->r);
    eqr_vn_linear_destroy(f->lin);
    eqr_ctx_destroy(f->ctx);
}

static eqr_relax_opts normal_opts(void) {
    eqr_relax_opts o = {0};
    o.init = EQR_RELAX_INIT_NORMAL;
    o.init_std = 0.5f;
    return o;
}

/* W_r = M (x) I3 for M [CO, CI] */
static void set_kron(eqr_tensor *wr, const float *M) {
    for (int r = 0; r < 3 * CO; r++)
        for (int c = 0; c < 3 * CI; c++)
            wr->data[r * 3 * CI + c] = (r % 3 == c % 3) ? M[(r / 3) * CI + c / 3] : 0.0f;
}

/* ||f(R x) - R f(x)|| / ||f(x)||, max over 10 random rotations, without
 * gradients */
static double equiv_err(fixture *f) {
    int ge = eqr_grad_set_enabled(f->ctx, 0);
    double worst = tu_so3_equiv_err(f->ctx, tu_rlayer_forward, f->rl, f->x, 10, 0);
    eqr_grad_set_enabled(f->ctx, ge);
    return worst;
}

/* reference y = (W (x) I3 + theta W_r) x in double; mag (may be NULL) gets
 * the sum of |terms| (theta times a W_r term: one more rounding, kept in n) */
static void ref_forward(const fixture *f, double theta, double *ref, double *mag) {
    const float *x = f->x->data, *w = f->w->data, *wr = f->wr->data;
    for (int n = 0; n < NB; n++)
        for (int o = 0; o < CO; o++)
            for (int i = 0; i < 3; i++)
                for (int p = 0; p < NP; p++) {
                    double s = 0, a = 0;
                    for (int c = 0; c < CI; c++) {
                        double t = (double)w[o * CI + c] * x[((n * CI + c) * 3 + i) * NP + p];
                        s += t, a += fabs(t);
                        for (int j = 0; j < 3; j++) {
                            t = theta * wr[(3 * o + i) * 3 * CI + 3 * c + j] * x[((n * CI + c) * 3 + j) * NP + p];
                            s += t, a += fabs(t);
                        }
                    }
                    ref[((n * CO + o) * 3 + i) * NP + p] = s;
                    if (mag) mag[((n * CO + o) * 3 + i) * NP + p] = a;
                }
}

static void test_theta_zero_equivariant(void **state) {
    (void)state;
    eqr_relax_opts o = normal_opts();
    fixture f;
    setup(&f, 21, &o);
    eqr_ctx *ctx = f.ctx;
    eqr_relax_set_theta(f.r, 0.0f);
    eqr_tensor *y = eqr_rlayer_forward(ctx, f.rl, f.x);
    eqr_tensor *yp = eqr_vn_linear_forward(ctx, f.lin, f.x);
    assert_non_null(y);
    assert_non_null(yp);
    assert_memory_equal(y->data, yp->data, (size_t)y->numel * sizeof(float));
    /* W_r takes no part: it gets no gradient */
    eqr_grad_zero(ctx);
    assert_int_equal(eqr_backward(ctx, eqr_sum_all(ctx, y)), EQR_OK);
    for (int64_t i = 0; i < f.wr->numel; i++) assert_true(f.wr->grad[i] == 0.0f);
    eqr_step_reset(ctx);
    double e0 = equiv_err(&f);
    assert_true(e0 <= EQ_TOL);
    /* theta > 0 with a random W_r: fused forward as the reference, not equivariant */
    eqr_relax_set_theta(f.r, 0.5f);
    y = eqr_rlayer_forward(ctx, f.rl, f.x);
    assert_non_null(y);
    double *ref = malloc(sizeof(double) * NB * CO * 3 * NP), *mag = malloc(sizeof(double) * NB * CO * 3 * NP);
    assert_true(ref && mag);
    ref_forward(&f, 0.5, ref, mag);
    /* CI + 3 CI terms (theta scales, the add of the two parts) */
    tu_assert_close_bound("relaxed forward", y->data, ref, mag, y->numel, 4 * CI + 2, 1);
    /* the point-less form [N, C, 3] */
    int64_t s3[3] = {NB, CI, 3};
    eqr_tensor *y3 = eqr_rlayer_forward(ctx, f.rl, eqr_reshape(ctx, eqr_slice(ctx, f.x, 3, 0, 1), 3, s3));
    assert_non_null(y3);
    assert_int_equal(y3->ndim, 3);
    for (int n = 0; n < NB; n++)
        for (int k = 0; k < CO * 3; k++) {
            /* both within the bound of the reference: twice it apart */
            const int64_t r = (n * CO * 3 + k) * NP;
            assert_true(fabs(y3->data[n * CO * 3 + k] - y->data[r]) <=
                        2 * (tu_gamma(4 * CI + 2) * mag[r] + TU_U * fabs(ref[r])));
        }
    free(ref);
    free(mag);
    eqr_step_reset(ctx);
    double e1 = equiv_err(&f);
    print_message("vn_linear relaxed: equivariance error theta=0 %.3g, theta=0.5 %.3g\n", e0, e1);
    assert_true(e1 > 1e-2); /* a threshold, not a tolerance: broken equivariance is O(1) */
    /* W_r = M (x) I3 keeps it equivariant at theta > 0 */
    float M[CO * CI];
    tu_fill_uniform(M, CO * CI, 5);
    set_kron(f.wr, M);
    assert_true(equiv_err(&f) <= EQ_TOL);
    teardown(&f);
}

/* weight-form LD in double from the generic closed form (relax.h) */
/* The defect in double from the generator matrices: ld_a = W L_in,a -
 * L_out,a W, S = sum ld^2; *mag = S + 2 sum |ld| m, m = |W| |L_in,a| +
 * |L_out,a| |W| per entry (its float sum within gamma_{3 CI + 3 CO + 1} m,
 * its square within 2 |ld| of that), the scale of the float defect's error:
 * gamma_{n + 3 CI + 3 CO + 1} mag over the n = 27 CO CI squares. */
static double ref_ld(fixture *f, double *mag) {
    eqr_so3_rep rin = {0, CI}, rout = {0, CO};
    const int di = 3 * CI, dn = 3 * CO;
    float *gi = malloc(sizeof(float) * 3 * di * di), *go = malloc(sizeof(float) * 3 * dn * dn);
    assert_true(gi && go);
    eqr_lie_rep li, lo;
    assert_int_equal(eqr_so3_rep_lie(f->ctx, &rin, gi, &li), EQR_OK);
    assert_int_equal(eqr_so3_rep_lie(f->ctx, &rout, go, &lo), EQR_OK);
    const float *W = f->wr->data;
    double S = 0, M = 0;
    for (int a = 0; a < 3; a++)
        for (int r = 0; r < dn; r++)
            for (int c = 0; c < di; c++) {
                double v = 0, m = 0;
                for (int k = 0; k < di; k++) {
                    double t = (double)W[r * di + k] * gi[(a * di + k) * di + c];
                    v += t;
                    m += fabs(t);
                }
                for (int k = 0; k < dn; k++) {
                    double t = (double)go[(a * dn + r) * dn + k] * W[k * di + c];
                    v -= t;
                    m += fabs(t);
                }
                S += v * v;
                M += 2 * fabs(v) * m;
            }
    free(gi), free(go);
    *mag = S + M;
    return S;
}

static double generic_ld(fixture *f) {
    eqr_so3_rep rin = {0, CI}, rout = {0, CO};
    float *gi = malloc(sizeof(float) * 3 * 9 * CI * CI), *go = malloc(sizeof(float) * 3 * 9 * CO * CO),
          *ld = malloc(sizeof(float) * 3 * 9 * CO * CI);
    assert_true(gi && go && ld);
    eqr_lie_rep li, lo;
    assert_int_equal(eqr_so3_rep_lie(f->ctx, &rin, gi, &li), EQR_OK);
    assert_int_equal(eqr_so3_rep_lie(f->ctx, &rout, go, &lo), EQR_OK);
    assert_int_equal(eqr_lie_derivative(f->ctx, f->wr->data, &li, &lo, ld), EQR_OK);
    double s = 0;
    for (int i = 0; i < 3 * 9 * CO * CI; i++) s += (double)ld[i] * ld[i];
    free(gi), free(go), free(ld);
    return s;
}

static float defect_now(fixture *f) {
    eqr_tensor *d = eqr_relax_defect(f->ctx, f->r);
    if (!d) fail_msg("defect failed: %s", eqr_error_message(f->ctx));
    float v = d->data[0];
    eqr_step_reset(f->ctx);
    return v;
}

static void test_defect(void **state) {
    (void)state;
    eqr_relax_opts o = normal_opts();
    fixture f;
    setup(&f, 22, &o);
    eqr_ctx *ctx = f.ctx;
    /* equivariant W_r: exactly zero */
    float M[CO * CI];
    tu_fill_uniform(M, CO * CI, 6);
    set_kron(f.wr, M);
    assert_true(defect_now(&f) == 0.0f);
    eqr_rlayer_stats st;
    assert_int_equal(eqr_rlayer_get_stats(ctx, f.rl, &st), EQR_OK);
    assert_true(st.defect == 0.0f);
    /* random W_r: positive, equal to the generic closed form */
    tu_fill_uniform(f.wr->data, f.wr->numel, 7);
    double g = generic_ld(&f);
    float d = defect_now(&f);
    print_message("vn_linear LD random W_r: blockwise %.6g, generic %.6g\n", (double)d, g);
    assert_true(g > 1.0);
    /* both against the double reference at the bound of ref_ld (the generic
     * path sums its float squares in double: within that bound too); the
     * bound stays below one dropped square, ~S / n */
    double dmag, dref = ref_ld(&f, &dmag);
    const int64_t nld = 27 * CO * CI, nb = nld + 3 * CI + 3 * CO + 1;
    assert_true(tu_gamma(nb) * dmag < 0.5 * dref / (double)nld);
    float gf = (float)g;
    tu_assert_close_bound("blockwise defect", &d, &dref, &dmag, 1, nb, 1);
    tu_assert_close_bound("generic defect", &gf, &dref, &dmag, 1, nb, 1);
    /* and equal to a finite-difference measurement of the same quantity:
     * D_a = d/dt rho_out(e^{-t L_a}) W_r rho_in(e^{t L_a}) at 0 */
    const float e[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
    const float h = 1e-2f;
    double fd_ld = 0;
    int64_t rows = 3 * CO, cols = 3 * CI;
    for (int a = 0; a < 3; a++) {
        float Rp[9], Rm[9];
        assert_int_equal(eqr_so3_from_axis_angle(ctx, e[a], h, Rp), EQR_OK);
        assert_int_equal(eqr_so3_from_axis_angle(ctx, e[a], -h, Rm), EQR_OK);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) {
                /* (Rout^T(t) W Rin(t))[r, c] blockwise, t = +h and -h */
                double v[2];
                for (int sgn = 0; sgn < 2; sgn++) {
                    const float *R = sgn ? Rm : Rp;
                    int64_t ob = r / 3, i = r % 3, ci = c / 3, j = c % 3;
                    double s = 0;
                    for (int k = 0; k < 3; k++)
                        for (int l = 0; l < 3; l++)
                            s += (double)R[3 * k + i] * f.wr->data[(3 * ob + k) * cols + 3 * ci + l] *
                                 R[3 * l + j];
                    v[sgn] = s;
                }
                double dd = (v[0] - v[1]) / (2.0 * h);
                fd_ld += dd * dd;
            }
    }
    /* central differences, step h: truncation O(h^2) of the derivative,
     * ~1e-4 relative here; not a rounding bound */
    assert_true(fabs(fd_ld - g) <= 1e-3 * g);
    assert_int_equal(eqr_rlayer_get_stats(ctx, f.rl, &st), EQR_OK);
    float sd = (float)st.defect;
    tu_assert_close_bound("stats defect", &sd, &dref, &dmag, 1, nb, 1); /* as the defect */
    teardown(&f);
}

/* sum_a ||D_a x||^2 over the batch, D_a from the blockwise kernel */
static eqr_tensor *lie_act_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    int64_t fs[3] = {NB, 3 * CI, NP}, ds[2] = {3 * CO, 3 * CI};
    eqr_tensor *d = eqr__vn_lie_blocks(ctx, in[1]), *xf = eqr_reshape(ctx, in[0], 3, fs), *tot = NULL;
    for (int a = 0; a < 3; a++) {
        eqr_tensor *s = eqr_sumsq(ctx, eqr__vn_mix(ctx, eqr_reshape(ctx, eqr_slice(ctx, d, 0, a, 1), 2, ds), xf));
        tot = tot ? eqr_add(ctx, tot, s) : s;
    }
    return tot;
}

static void test_activation_form_and_norm(void **state) {
    (void)state;
    eqr_relax_opts o = normal_opts();
    o.lambda_defect = 0.3f;
    o.lambda_norm = 0.2f;
    o.lie_form = EQR_LIE_ACTIVATION;
    fixture f;
    setup(&f, 23, &o);
    eqr_ctx *ctx = f.ctx;
    eqr_relax_set_theta(f.r, 0.25f);
    /* references in double: D_a x and W_r x */
    float L[27];
    eqr_so3_generators(L);
    /* with magnitudes: |v| summed over the terms of each value v, and for a
     * sum of squares S = sum v^2 whose v are within e_v = gamma_k m_v of
     * exact: the squares move by 2 |v| e_v + e_v^2, eqr_sumsq sums them in
     * double (error ~1e-15 S) and rounds once (u S), float adds follow; so
     * mag = S + 2 sum |v| m_v + gamma_k sum m_v^2 with n = k + 1 + adds + 1
     * (the double sum) */
    double act = 0, nrm = 0, actm = 0, nrmm = 0, actq = 0, nrmq = 0;
    int64_t cols = 3 * CI;
    const float *wr = f.wr->data, *x = f.x->data;
    for (int n = 0; n < NB; n++)
        for (int p = 0; p < NP; p++)
            for (int64_t r = 0; r < 3 * CO; r++) {
                double z = 0, zm = 0, da[3] = {0, 0, 0}, dm[3] = {0, 0, 0};
                for (int64_t c = 0; c < cols; c++) {
                    double xv = x[(n * cols + c) * NP + p];
                    z += wr[r * cols + c] * xv;
                    zm += fabs(wr[r * cols + c] * xv);
                    /* D_a[r, c] = sum_k W[r, 3ci+k] L[k, j] - sum_k L[i, k] W[3o+k, c] */
                    int64_t o3 = r - r % 3, i = r % 3, c3 = c - c % 3, j = c % 3;
                    for (int a = 0; a < 3; a++) {
                        double s = 0, sm = 0;
                        for (int k = 0; k < 3; k++) {
                            s += wr[r * cols + c3 + k] * L[9 * a + 3 * k + j] -
                                 L[9 * a + 3 * i + k] * wr[(o3 + k) * cols + c];
                            sm += fabs(wr[r * cols + c3 + k] * L[9 * a + 3 * k + j]) +
                                  fabs(L[9 * a + 3 * i + k] * wr[(o3 + k) * cols + c]);
                        }
                        da[a] += s * xv;
                        dm[a] += sm * fabs(xv);
                    }
                }
                nrm += z * z;
                nrmm += 2 * fabs(z) * zm;
                nrmq += zm * zm;
                for (int a = 0; a < 3; a++) {
                    act += da[a] * da[a];
                    actm += 2 * fabs(da[a]) * dm[a];
                    actq += dm[a] * dm[a];
                }
            }
    eqr_tensor *y = eqr_rlayer_forward(ctx, f.rl, f.x);
    assert_non_null(y);
    eqr_tensor *d = eqr_relax_defect(ctx, f.r);
    assert_non_null(d);
    /* D_a x: the 6-term generator blocks, then 3 CI products summed (k);
     * the sum of squares rounded, the 3 generators and the layers added: n
     * below; the norm: 3 CI products (k), the sum of squares rounded */
    const int64_t kact = 6 + 3 * CI, knrm = 3 * CI, nact = kact + 1 + 3 + 1, nnrm = knrm + 2;
    actm += act + tu_gamma(kact) * actq;
    nrmm += nrm + tu_gamma(knrm) * nrmq;
    assert_true(tu_gamma(nact) * actm < 0.5 * act / (NB * NP * 3 * CO * 3)); /* below one dropped square */
    tu_assert_close_bound("activation defect", d->data, &act, &actm, 1, nact, 1);
    eqr_tensor *pen = eqr_relax_penalty(ctx, f.r);
    assert_non_null(pen);
    /* lambda ssqrt(S): |sqrt(S~) - sqrt(S)| <= |S~ - S| / sqrt(S), then the
     * sqrt, the scale and the add round once each */
    const double ea = tu_gamma(nact) * actm, en = tu_gamma(nnrm) * nrmm;
    const double pref = 0.3f * sqrt(act) + 0.2f * sqrt(nrm);
    const double perr = 0.3f * (ea / sqrt(act) + 2 * TU_U * sqrt(act)) +
                        0.2f * (en / sqrt(nrm) + 2 * TU_U * sqrt(nrm)) + TU_U * pref;
    if (!(fabs(pen->data[0] - pref) <= perr)) fail_msg("penalty %.9g vs %.9g (bound %.3g)", pen->data[0], pref, perr);
    eqr_rlayer_stats st;
    assert_int_equal(eqr_rlayer_get_stats(ctx, f.rl, &st), EQR_OK);
    assert_true(fabs(st.act_norm - sqrt(nrm)) <= en / sqrt(nrm) + TU_U * sqrt(nrm));
    eqr_step_reset(ctx);

    /* subsampled norm: first m = 1 item times NB */
    eqr_relax_destroy(f.r);
    eqr_relax_opts o2 = o;
    o2.lambda_defect = 0;
    o2.norm_subsample = 1;
    f.r = eqr_relax_create(ctx, "relax2", &o2);
    assert_non_null(f.r);
    float keep[3 * CO * 3 * CI];
    memcpy(keep, f.wr->data, sizeof keep);
    f.rl = eqr_relax_vn_linear(ctx, f.r, "lin2", f.lin, NULL);
    assert_non_null(f.rl);
    f.wr = eqr_rlayer_wr(f.rl);
    memcpy(f.wr->data, keep, sizeof keep);
    double n0 = 0, n0m = 0, n0q = 0;
    for (int p = 0; p < NP; p++)
        for (int64_t r = 0; r < 3 * CO; r++) {
            double z = 0, zm = 0;
            for (int64_t c = 0; c < cols; c++) {
                z += (double)keep[r * cols + c] * x[c * NP + p];
                zm += fabs((double)keep[r * cols + c] * x[c * NP + p]);
            }
            n0 += z * z;
            n0m += 2 * fabs(z) * zm;
            n0q += zm * zm;
        }
    n0m += n0 + tu_gamma(3 * CI) * n0q;
    y = eqr_rlayer_forward(ctx, f.rl, f.x);
    pen = eqr_relax_penalty(ctx, f.r);
    assert_non_null(pen);
    /* the first item's norm (3 CI products, the rounded sum of squares)
     * times NB (one more rounding), then sqrt and scale as above */
    const double s0 = sqrt(NB * n0), e0 = NB * tu_gamma(3 * CI + 4) * n0m;
    assert_true(fabs(pen->data[0] - 0.2f * s0) <= 0.2f * (e0 / s0 + 2 * TU_U * s0));
    eqr_step_reset(ctx);
    /* the activation-form term from the kernels: gradient check */
    eqr_tensor *in[2] = {f.x, f.wr};
    tu_gradcheck(ctx, lie_act_fn, in, 2, NULL, 1e-2, 256 /* VN layer, generator actions, penalty sums */);
    teardown(&f);
}

static eqr_tensor *defect_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)in;
    return eqr_relax_defect(ctx, (eqr_relax *)user);
}

/* The penalties alone (norm + activation-form LD) of one forward. */
static eqr_tensor *vn_pen_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    fixture *f = user;
    (void)in;
    (void)eqr_rlayer_forward(ctx, f->rl, f->x);
    return eqr_sum_all(ctx, eqr_relax_penalty(ctx, f->r));
}

/* Detached (default): the penalties' gradient into x is exactly 0 and into
 * W_r equals FD; full: x gets a nonzero gradient equal to FD. */
static void test_penalty_grad_reach(void **state) {
    (void)state;
    for (int full = 0; full < 2; full++) {
        eqr_relax_opts o = normal_opts();
        o.theta = 0.6f;
        o.lambda_norm = 0.5f;
        o.lambda_defect = 0.5f;
        o.lie_form = EQR_LIE_ACTIVATION;
        o.penalty_grad = full ? EQR_PENALTY_FULL : EQR_PENALTY_DETACHED;
        fixture f;
        setup(&f, 60 + full, &o);
        eqr_ctx *ctx = f.ctx;
        eqr_step_reset(ctx);
        eqr_grad_zero(ctx);
        eqr_tensor *loss = vn_pen_fn(ctx, NULL, &f);
        assert_non_null(loss);
        assert_int_equal(eqr_backward(ctx, loss), EQR_OK);
        int xzero = 1, wrzero = 1;
        for (int64_t i = 0; i < f.x->numel; i++) xzero &= f.x->grad[i] == 0.0f;
        for (int64_t i = 0; i < f.wr->numel; i++) wrzero &= f.wr->grad[i] == 0.0f;
        assert_false(wrzero);
        assert_int_equal(xzero, !full);
        eqr_tensor *in[2] = {f.wr, f.x};
        tu_gradcheck_recorded(ctx, vn_pen_fn, in, full ? 2 : 1, &f, 13, 1e-2, 256);
        teardown(&f);
    }
}

static void test_gradients(void **state) {
    (void)state;
    eqr_relax_opts o = normal_opts();
    fixture f;
    setup(&f, 24, &o);
    eqr_ctx *ctx = f.ctx;
    eqr_relax_set_theta(f.r, 0.6f);
    eqr_tensor *in[3] = {f.x, f.w, f.wr};
    tu_gradcheck(ctx, tu_rlayer_fn, in, 3, f.rl, 1e-2, 256);
    tu_gradcheck(ctx, defect_fn, in + 2, 1, f.r, 1e-2, 256);
    /* the norm penalty through forward + penalty (recorded only with
     * gradients on): central differences on a few entries of W_r */
    eqr_relax_set_lambdas(f.r, 0.0f, 0.5f);
    eqr_grad_zero(ctx);
    assert_non_null(eqr_rlayer_forward(ctx, f.rl, f.x));
    eqr_tensor *pen = eqr_relax_penalty(ctx, f.r);
    assert_non_null(pen);
    assert_int_equal(eqr_backward(ctx, pen), EQR_OK);
    eqr_step_reset(ctx);
    for (int k = 0; k < 12; k++) {
        int64_t i = (k * 37) % f.wr->numel;
        float w0 = f.wr->data[i];
        double v[2];
        for (int s = 0; s < 2; s++) {
            f.wr->data[i] = w0 + (s ? -1e-2f : 1e-2f);
            eqr_rlayer_forward(ctx, f.rl, f.x);
            eqr_tensor *p = eqr_relax_penalty(ctx, f.r);
            assert_non_null(p);
            v[s] = p->data[0];
            eqr_step_reset(ctx);
        }
        f.wr->data[i] = w0;
        /* a finite-difference check at step 1e-2: the tolerance covers the
         * O(h^2) truncation of the sqrt's curvature, not rounding */
        double num = (v[0] - v[1]) / 2e-2, ana = f.wr->grad[i];
        if (fabs(num - ana) > 1e-3 + 1e-2 * fmax(fabs(num), fabs(ana)))
            fail_msg("norm penalty grad %lld: analytic %g numeric %g", (long long)i, ana, num);
    }
    /* W_r = 0 (the default init): penalties finite, gradients finite */
    memset(f.wr->data, 0, (size_t)f.wr->numel * sizeof(float));
    eqr_relax_set_lambdas(f.r, 0.1f, 0.1f);
    eqr_grad_zero(ctx);
    assert_non_null(eqr_rlayer_forward(ctx, f.rl, f.x));
    pen = eqr_relax_penalty(ctx, f.r);
    assert_non_null(pen);
    assert_int_equal(eqr_backward(ctx, pen), EQR_OK);
    for (int64_t i = 0; i < f.wr->numel; i++) assert_true(isfinite(f.wr->grad[i]));
    eqr_step_reset(ctx);
    teardown(&f);
}

static void test_projection(void **state) {
    (void)state;
    eqr_relax_opts o = normal_opts();
    o.init_std = 0.1f;
    fixture f;
    setup(&f, 25, &o);
    eqr_ctx *ctx = f.ctx;
    const float theta = 0.7f;
    eqr_relax_set_theta(f.r, theta);
    /* W_r with a large equivariant part: A (x) I3 + the small random init */
    float A[CO * CI];
    tu_fill_uniform(A, CO * CI, 8);
    for (int r = 0; r < 3 * CO; r++)
        for (int c = r % 3; c < 3 * CI; c += 3) f.wr->data[r * 3 * CI + c] += A[(r / 3) * CI + c / 3];
    /* expected folded W: W + theta tr(block) / 3 */
    double wexp[CO * CI], wmag[CO * CI];
    for (int a = 0; a < CO; a++)
        for (int c = 0; c < CI; c++) {
            double tr = 0;
            for (int i = 0; i < 3; i++) tr += f.wr->data[(3 * a + i) * 3 * CI + 3 * c + i];
            wexp[a * CI + c] = f.w->data[a * CI + c] + theta * tr / 3;
            wmag[a * CI + c] = fabs(theta * tr / 3);
        }
    int64_t total = eqr_param_num_scalars(ctx);
    float *saved = malloc(sizeof(float) * total);
    assert_non_null(saved);
    memcpy(saved, eqr_param_data_block(ctx), sizeof(float) * total);
    int ge = eqr_grad_set_enabled(ctx, 0);
    eqr_tensor *y = eqr_rlayer_forward(ctx, f.rl, f.x);
    assert_non_null(y);
    int64_t n = y->numel;
    double *yrel = malloc(sizeof(double) * n);
    for (int64_t i = 0; i < n; i++) yrel[i] = y->data[i];
    eqr_step_reset(ctx);
    double dist[2], err[2];
    for (int mode = 0; mode < 2; mode++) {
        memcpy(eqr_param_data_block(ctx), saved, sizeof(float) * total);
        assert_int_equal(eqr_relax_project(ctx, f.r, mode ? EQR_PROJECT_FOLD : EQR_PROJECT_DROP), EQR_OK);
        assert_true(eqr_relax_theta(f.r)->data[0] == 0.0f);
        for (int64_t i = 0; i < f.wr->numel; i++) assert_true(f.wr->data[i] == 0.0f);
        /* the fold rounds theta tr / 3 (summed in double) to float, then adds
         * it to W in float: 2 roundings, the added term's size can cancel */
        if (mode) tu_assert_close_rel("folded W", f.w->data, wexp, wmag, CO * CI, 2);
        y = eqr_rlayer_forward(ctx, f.rl, f.x);
        assert_non_null(y);
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += pow(y->data[i] - yrel[i], 2);
        dist[mode] = sqrt(s);
        eqr_step_reset(ctx);
        err[mode] = equiv_err(&f);
        assert_true(err[mode] <= EQ_TOL);
    }
    print_message("vn_linear projection: ||y_proj - y_relaxed|| drop %.4g, fold %.4g; equiv err %.2g / %.2g\n",
                  dist[0], dist[1], err[0], err[1]);
    assert_true(dist[1] < 0.5 * dist[0]);
    eqr_grad_set_enabled(ctx, ge);
    free(saved), free(yrel);
    teardown(&f);
}

static void test_errors(void **state) {
    (void)state;
    eqr_relax_opts o = normal_opts();
    fixture f;
    setup(&f, 26, &o);
    eqr_ctx *ctx = f.ctx;
    assert_null(eqr_relax_vn_linear(ctx, f.r, "other", NULL, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");
    assert_null(eqr_relax_vn_linear(ctx, f.r, "lin", f.lin, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "'lin.wr' already exists");
    int64_t s[4] = {2, CI + 1, 3, 4};
    assert_null(eqr_rlayer_forward(ctx, f.rl, eqr_tensor_zeros(ctx, 4, s)));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "vn_linear");
    assert_int_equal(eqr_relax_num_layers(f.r), 1);
    teardown(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_theta_zero_equivariant),
        cmocka_unit_test(test_defect),
        cmocka_unit_test(test_activation_form_and_norm),
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_penalty_grad_reach),
        cmocka_unit_test(test_projection),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
