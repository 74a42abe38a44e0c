/* Projection of relaxed models (relax.h): drop and fold both give models
 * that are exactly equivariant (eqr_equivariance_error_max over C4 / D4, the
 * grid-exact elements of C8 for a steerable layer) with W_r = 0 and every
 * theta 0, and that export to plain convs with identical outputs; fold adds
 * theta times the least-squares fit of W_r (group average for group convs,
 * checked against a naive double Reynolds average and by orthogonality of
 * the residual; basis projection for steerable convs); on a trained 2-layer
 * relaxed C4 model fold stays at least as close to the relaxed outputs as
 * drop; a checkpoint round trip restores W_r and theta. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Equivariance bound of the projected models (tu_equiv_bound): per layer,
 * sums of <= C k k = 16 * 9 = 144 products (2 regular fields of D4), the
 * filter expansion and the projection's group average (<= 8 terms) and the
 * bias: depth < 200; amp 12 = sqrt(144) for random-sign sums; two layers
 * add their bounds. */
#define EQ_TOL (2 * tu_equiv_bound(200, 12.0))
#define HALF_PI 1.5707963267948966192313216916398

/* 3x3, pad 1, bias ~ N(0, 0.09) */
static eqr_gconv *mk_gconv(eqr_ctx *ctx, const char *name, const eqr_rep *in, const eqr_rep *out) {
    return tu_gconv(ctx, name, in, out, 3, EQR_CONV2D(1, 1, 1), 0.3f);
}

/* A 2-layer relaxed model: lifting conv, ReLU, group conv. */
typedef struct model {
    eqr_rep *T, *R;
    eqr_gconv *g1, *g2;
    eqr_relax *r;
    eqr_rlayer *l1, *l2;
} model;

static void model_init(eqr_ctx *ctx, model *m, const eqr_group *G, float theta, float std,
                       float lambda) {
    m->T = tu_trivial_rep(ctx, G, 1);
    m->R = tu_regular_rep(ctx, G, 2);
    m->g1 = mk_gconv(ctx, "c1", m->T, m->R);
    m->g2 = mk_gconv(ctx, "c2", m->R, m->R);
    m->r = tu_relax(ctx, "relax", theta, std, lambda, lambda, 0);
    m->l1 = eqr_relax_gconv(ctx, m->r, "c1", m->g1, NULL);
    m->l2 = eqr_relax_gconv(ctx, m->r, "c2", m->g2, NULL);
    assert_non_null(m->l1);
    assert_non_null(m->l2);
}

static void model_free(model *m) {
    eqr_relax_destroy(m->r);
    eqr_gconv_destroy(m->g1);
    eqr_gconv_destroy(m->g2);
    eqr_rep_destroy(m->T);
    eqr_rep_destroy(m->R);
}

static eqr_tensor *model_fwd(eqr_ctx *ctx, void *mm, eqr_tensor *x) {
    model *m = mm;
    return eqr_rlayer_forward(ctx, m->l2, eqr_relu(ctx, eqr_rlayer_forward(ctx, m->l1, x)));
}

/* The exported plain-conv model. */
static eqr_tensor *plain_fwd(eqr_ctx *ctx, model *m, eqr_tensor *x) {
    eqr_gconv *gs[2] = {m->g1, m->g2};
    eqr_tensor *h = x;
    for (int i = 0; i < 2; i++) {
        int64_t bs[4];
        eqr_gconv_bank_shape(gs[i], bs);
        eqr_tensor *w = eqr_tensor_zeros(ctx, 4, bs), *b = eqr_tensor_zeros(ctx, 1, bs);
        assert_int_equal(eqr_gconv_export(ctx, gs[i], w->data, b->data), EQR_OK);
        h = eqr_conv2d(ctx, i ? eqr_relu(ctx, h) : h, w, b, eqr_gconv_geom(gs[i]));
    }
    return h;
}

static double dist(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return sqrt(s);
}

/* ------------------------------------------------ drop / fold: exact */

static void test_project_equivariant_exportable(void **state) {
    (void)state;
    const eqr_group groups[2] = {eqr_group_cyclic(4), eqr_group_dihedral(4)};
    for (int gi = 0; gi < 2; gi++)
        for (int mode = 0; mode < 2; mode++) {
            eqr_ctx *ctx = tu_ctx(10 + 2 * gi + mode);
            model m;
            model_init(ctx, &m, &groups[gi], 0.5f, 0.3f, 0.0f);
            eqr_tensor *x = tu_randn(ctx, 2, 1, 7, 7);
            double before, after;
            assert_int_equal(eqr_equivariance_error_max(ctx, model_fwd, &m, m.T, m.R, x, NULL, 0, &before), EQR_OK);
            assert_int_equal(eqr_relax_project(ctx, m.r, (eqr_project_mode)mode), EQR_OK);
            assert_int_equal(eqr_equivariance_error_max(ctx, model_fwd, &m, m.T, m.R, x, NULL, 0, &after), EQR_OK);
            print_message("%s %s: equivariance error relaxed %.3g, projected %.3g\n", gi ? "D4" : "C4",
                          mode ? "fold" : "drop", before, after);
            assert_true(before > 1e-2); /* a threshold: the relaxed model is far from equivariant */
            assert_true(after <= EQ_TOL);
            assert_true(eqr_relax_theta(m.r)->data[0] == 0.0f);
            eqr_rlayer *ls[2] = {m.l1, m.l2};
            for (int i = 0; i < 2; i++) {
                eqr_rlayer_stats st;
                assert_int_equal(eqr_rlayer_get_stats(ctx, ls[i], &st), EQR_OK);
                assert_true(st.theta == 0.0f && st.wr_norm == 0.0f && st.defect == 0.0f);
            }
            eqr_tensor *y = model_fwd(ctx, &m, x), *yp = plain_fwd(ctx, &m, x);
            assert_non_null(y);
            assert_non_null(yp);
            assert_memory_equal(y->data, yp->data, (size_t)y->numel * sizeof(float));
            model_free(&m);
            eqr_ctx_destroy(ctx);
        }
}

static void test_project_steer(void **state) {
    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        eqr_ctx *ctx = tu_ctx(20 + mode);
        eqr_group G = eqr_group_cyclic(8);
        eqr_rep *in = tu_trivial_rep(ctx, &G, 2), *out = tu_regular_rep(ctx, &G, 1);
        eqr_steer_conv_opts so = {0};
        so.geom = EQR_CONV2D(1, 2, 1);
        eqr_steer_conv *s = eqr_steer_conv_create(ctx, "s", in, out, 5, &so);
        assert_non_null(s);
        eqr_tensor_normal(eqr_steer_conv_bias(s), eqr_ctx_rng(ctx), 0.3f);
        eqr_relax *r = tu_relax(ctx, "relax", 0.5f, 0.3f, 0.0f, 0.0f, 0);
        eqr_rlayer *l = eqr_relax_steer_conv(ctx, r, "s", s, NULL);
        assert_non_null(l);
        int64_t bs[4];
        eqr_steer_conv_bank_shape(s, bs);
        const int64_t nb = bs[0] * bs[1] * bs[2] * bs[3];
        float *b0 = malloc((size_t)nb * sizeof(float)), *b1 = malloc((size_t)nb * sizeof(float));
        float *wr = malloc((size_t)nb * sizeof(float));
        memcpy(wr, eqr_rlayer_wr(l)->data, (size_t)nb * sizeof(float));
        const eqr_tensor *wt = eqr_steer_conv_weight(s);
        const int64_t nw = wt->numel;
        float *w0 = malloc((size_t)nw * sizeof(float)), *w1 = malloc((size_t)nw * sizeof(float));
        assert_true(w0 && w1);
        memcpy(w0, wt->data, (size_t)nw * sizeof(float));
        assert_int_equal(eqr_steer_conv_export(ctx, s, b0, NULL), EQR_OK);
        assert_int_equal(eqr_relax_project(ctx, r, (eqr_project_mode)mode), EQR_OK);
        assert_int_equal(eqr_steer_conv_export(ctx, s, b1, NULL), EQR_OK);
        memcpy(w1, wt->data, (size_t)nw * sizeof(float));
        /* fold: b1 - b0 = theta P W_r, i.e. the residual W_r - (b1 - b0) / theta
         * is orthogonal to every basis element; drop: b1 == b0 */
        const eqr_steer_basis *B = eqr_steer_conv_basis(s);
        const int64_t nt = eqr_steer_basis_num_elements(B);
        assert_int_equal(nt, nw);
        float *e = malloc((size_t)(nt * nb) * sizeof(float));
        assert_non_null(e);
        double wn = 0, dn = 0, worst = 0;
        for (int64_t i = 0; i < nb; i++) {
            wn += (double)wr[i] * wr[i];
            dn += ((double)b1[i] - b0[i]) * ((double)b1[i] - b0[i]);
        }
        for (int64_t t = 0; t < nt; t++) assert_int_equal(eqr_steer_basis_sample(B, t, e + t * nb), 1);
        /* Bound on R_t = <W_r - (b1 - b0) / theta, e_t>, 0 in exact arithmetic
         * with an orthonormal basis. With c_t = <W_r, e_t>, w1 - w0 =
         * theta c + delta, |delta_t| <= theta gamma_{n1+1} sum|e_t W_r| (the
         * projection sum, stored) + u |w1 - w0| (the scale) + u |w1| (the
         * add); the exports b = E^T w within gamma_{n2} E^T|w| each; the float
         * basis's Delta = E E^T - I in double: |R_t| <= (|delta_t| +
         * sum_s |Delta_ts||w1_s - w0_s| + <|e_t|, |r0| + |r1|>) / theta. */
        int64_t n1 = 0, n2 = 0;
        double *r01 = calloc((size_t)nb, sizeof(double));
        assert_non_null(r01);
        for (int64_t t = 0; t < nt; t++) {
            int64_t cnt = 0;
            for (int64_t i = 0; i < nb; i++) cnt += e[t * nb + i] != 0;
            if (cnt > n1) n1 = cnt;
        }
        for (int64_t i = 0; i < nb; i++) {
            int64_t cnt = 0;
            for (int64_t t = 0; t < nt; t++) cnt += e[t * nb + i] != 0;
            if (cnt > n2) n2 = cnt;
        }
        for (int64_t i = 0; i < nb; i++)
            for (int64_t t = 0; t < nt; t++)
                r01[i] += tu_gamma(n2) * fabs(e[t * nb + i]) * (fabs(w0[t]) + fabs(w1[t]));
        double worst_ratio = 0;
        for (int64_t t = 0; t < nt; t++) {
            double c = 0, m = 0, er = 0, dl = 0;
            for (int64_t i = 0; i < nb; i++) {
                c += (wr[i] - ((double)b1[i] - b0[i]) / 0.5) * e[t * nb + i];
                m += fabs((double)e[t * nb + i] * wr[i]);
                er += fabs(e[t * nb + i]) * r01[i];
            }
            for (int64_t q = 0; q < nt; q++) {
                double g = 0;
                for (int64_t i = 0; i < nb; i++) g += (double)e[t * nb + i] * e[q * nb + i];
                dl += fabs(g - (t == q)) * fabs((double)w1[q] - w0[q]);
            }
            const double dt = 0.5 * tu_gamma(n1 + 1) * m + TU_U * fabs((double)w1[t] - w0[t]) + TU_U * fabs(w1[t]);
            const double tol = (dt + dl + er) / 0.5 + 1e-12 * sqrt(wn);
            worst = fmax(worst, fabs(c));
            worst_ratio = fmax(worst_ratio, fabs(c) / tol);
        }
        free(r01);
        if (mode == EQR_PROJECT_FOLD) {
            assert_true(dn > 1e-4 * wn); /* a threshold: the fold moved the bank */
            assert_true(worst_ratio <= 1);
        } else {
            assert_true(dn == 0.0);
        }
        eqr_tensor *x = tu_randn(ctx, 2, 2, 9, 9);
        double err = 0;
        for (int q = 1; q < 4; q++) {
            double eg;
            assert_int_equal(eqr_equivariance_error(ctx, tu_rlayer_forward, l, in, out,
                                                    eqr_gelem_of(0, q * HALF_PI), x, NULL, &eg),
                             EQR_OK);
            err = fmax(err, eg);
        }
        assert_true(err <= EQ_TOL);
        eqr_tensor *y = tu_rlayer_forward(ctx, l, x);
        eqr_tensor *w = eqr_tensor_from(ctx, 4, bs, b1), *bb = eqr_tensor_zeros(ctx, 1, bs);
        assert_int_equal(eqr_steer_conv_export(ctx, s, w->data, bb->data), EQR_OK);
        eqr_tensor *yp = eqr_conv2d(ctx, x, w, bb, eqr_steer_conv_geom(s));
        assert_non_null(y);
        assert_non_null(yp);
        assert_memory_equal(y->data, yp->data, (size_t)y->numel * sizeof(float));
        free(b0);
        free(b1);
        free(wr);
        free(e);
        free(w0);
        free(w1);
        eqr_relax_destroy(r);
        eqr_steer_conv_destroy(s);
        eqr_rep_destroy(in);
        eqr_rep_destroy(out);
        eqr_ctx_destroy(ctx);
    }
}

/* ------------------------------------------- fold = least squares */

/* Reynolds average (1/|G|) sum_g g.B of a bank [F*ord, C, k, k], naive in
 * double: taps moved with g^-1's 2x2 matrix about the filter centre, the
 * orientation axes by index arithmetic. */
static void naive_reynolds(const eqr_group *G, const float *B, int O, int C, int k, int lifting,
                           double *out) {
    const int ord = eqr_group_order(G);
    const double c0 = (k - 1) / 2.0;
    memset(out, 0, (size_t)O * C * k * k * sizeof(double));
    for (int gi = 0; gi < ord; gi++) {
        int ginv = eqr_group_index_inverse(G, gi);
        double M[4];
        eqr_gelem_matrix(eqr_group_element(G, ginv), M);
        for (int o = 0; o < O; o++)
            for (int c = 0; c < C; c++)
                for (int a = 0; a < k; a++)
                    for (int b = 0; b < k; b++) {
                        double x = b - c0, y = c0 - a;
                        double sx = M[0] * x + M[1] * y, sy = M[2] * x + M[3] * y;
                        int sb = (int)lround(sx + c0), sa = (int)lround(c0 - sy);
                        int os = o / ord * ord + eqr_group_index_compose(G, ginv, o % ord);
                        int cs = lifting ? c : c / ord * ord + eqr_group_index_compose(G, ginv, c % ord);
                        out[(((int64_t)o * C + c) * k + a) * k + b] +=
                            B[(((int64_t)os * C + cs) * k + sa) * k + sb] / ord;
                    }
    }
}

static void test_fold_least_squares(void **state) {
    (void)state;
    const eqr_group groups[2] = {eqr_group_cyclic(4), eqr_group_dihedral(4)};
    for (int gi = 0; gi < 2; gi++)
        for (int lifting = 0; lifting < 2; lifting++) {
            eqr_ctx *ctx = tu_ctx(30 + 2 * gi + lifting);
            const eqr_group *G = &groups[gi];
            eqr_rep *in = lifting ? tu_trivial_rep(ctx, G, 2) : tu_regular_rep(ctx, G, 2);
            eqr_rep *out = tu_regular_rep(ctx, G, 1);
            eqr_gconv *g = mk_gconv(ctx, "g", in, out);
            eqr_relax *r = tu_relax(ctx, "relax", 0.5f, 1.0f, 0.0f, 0.0f, 0);
            eqr_rlayer *l = eqr_relax_gconv(ctx, r, "g", g, NULL);
            assert_non_null(l);
            int64_t bs[4];
            eqr_gconv_bank_shape(g, bs);
            const int O = (int)bs[0], C = (int)bs[1], k = 3;
            const int64_t nb = (int64_t)O * C * k * k;
            float *b0 = malloc((size_t)nb * sizeof(float)), *b1 = malloc((size_t)nb * sizeof(float));
            float *wr = malloc((size_t)nb * sizeof(float)), *tv = malloc((size_t)nb * sizeof(float));
            double *rey = malloc((size_t)nb * sizeof(double)), *got = malloc((size_t)nb * sizeof(double));
            memcpy(wr, eqr_rlayer_wr(l)->data, (size_t)nb * sizeof(float));
            naive_reynolds(G, wr, O, C, k, lifting, rey);
            assert_int_equal(eqr_gconv_export(ctx, g, b0, NULL), EQR_OK);
            assert_int_equal(eqr_relax_project(ctx, r, EQR_PROJECT_FOLD), EQR_OK);
            assert_int_equal(eqr_gconv_export(ctx, g, b1, NULL), EQR_OK);
            double rn = 0;
            for (int64_t i = 0; i < nb; i++) {
                got[i] = ((double)b1[i] - b0[i]) / 0.5;
                rn += rey[i] * rey[i];
            }
            /* T(dW) / theta is the group average of W_r. The fold adds the
             * |G| products (theta / |G|) W_r (theta / |G| exact: a power of 2)
             * into each weight one by one and the export copies weights, so
             * each entry of b1 - b0 is within gamma_{|G| + 1} (|b0| + theta
             * mean(|W_r|)) of theta times the average; got divides by theta. */
            const int ord = eqr_group_order(G);
            float *awr = malloc((size_t)nb * sizeof(float));
            double *rabs = malloc((size_t)nb * sizeof(double)), *tol = malloc((size_t)nb * sizeof(double));
            assert_true(awr && rabs && tol);
            for (int64_t i = 0; i < nb; i++) awr[i] = fabsf(wr[i]);
            naive_reynolds(G, awr, O, C, k, lifting, rabs);
            for (int64_t i = 0; i < nb; i++) {
                tol[i] = tu_gamma(ord + 1) * (fabs(b0[i]) + 0.5 * rabs[i]) / 0.5 + 1e-15 * rabs[i];
                if (!(fabs(got[i] - rey[i]) <= tol[i]))
                    fail_msg("fold entry %lld: %.9g vs Reynolds %.9g (bound %.3g)", (long long)i, got[i], rey[i], tol[i]);
            }
            /* ... and the residual W_r - fit is orthogonal to every
             * equivariant bank T(v) (random v): least squares */
            eqr_tensor *w = eqr_gconv_weight(g);
            float *wsave = malloc((size_t)w->numel * sizeof(float));
            memcpy(wsave, w->data, (size_t)w->numel * sizeof(float));
            for (int trial = 0; trial < 3; trial++) {
                eqr_tensor_normal(w, eqr_ctx_rng(ctx), 1.0f);
                assert_int_equal(eqr_gconv_export(ctx, g, tv, NULL), EQR_OK);
                double dot = 0, tn = 0, resn = 0, dbound = 0;
                for (int64_t i = 0; i < nb; i++) {
                    double res = wr[i] - got[i];
                    dot += res * tv[i];
                    tn += (double)tv[i] * tv[i];
                    resn += res * res;
                    dbound += tol[i] * fabs(tv[i]);
                }
                assert_true(resn > 1e-2 * rn); /* a threshold: W_r was not equivariant */
                /* <W_r - Reynolds(W_r), T(v)> = 0 for the exactly equivariant
                 * export T(v) (a gather); got is within tol of the average */
                assert_true(fabs(dot) <= dbound + 1e-12 * sqrt(tn * resn));
            }
            memcpy(w->data, wsave, (size_t)w->numel * sizeof(float));
            free(wsave);
            free(awr);
            free(rabs);
            free(tol);
            free(b0);
            free(b1);
            free(wr);
            free(tv);
            free(rey);
            free(got);
            eqr_relax_destroy(r);
            eqr_gconv_destroy(g);
            eqr_rep_destroy(in);
            eqr_rep_destroy(out);
            eqr_ctx_destroy(ctx);
        }
}

/* -------------------------------------- fold vs drop on a trained model */

static void test_fold_closer_than_drop(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(40);
    eqr_group G = eqr_group_cyclic(4);
    model m;
    model_init(ctx, &m, &G, 0.5f, 1e-2f, 0.01f);
    eqr_optim_opts oo = {0};
    oo.kind = EQR_OPTIM_ADAM;
    oo.lr = 1e-2f;
    eqr_optim *opt = eqr_optim_create(ctx, &oo);
    assert_non_null(opt);
    const int B = 8, HW = 7, steps = 40;
    int64_t xs[4] = {B, 1, HW, HW}, ys[4] = {B, 8, HW, HW};
    const int64_t nx = (int64_t)B * HW * HW, ny = nx * 8;
    float *xd = malloc((size_t)nx * sizeof(float)), *yd = malloc((size_t)ny * sizeof(float));
    tu_fill_uniform(xd, nx, 1);
    tu_fill_uniform(yd, ny, 2); /* a target with no symmetry */
    double first = 0, last = 0;
    for (int s = 0; s < steps; s++) {
        eqr_step_reset(ctx);
        eqr_grad_zero(ctx);
        eqr_tensor *x = eqr_tensor_from(ctx, 4, xs, xd), *y = eqr_tensor_from(ctx, 4, ys, yd);
        eqr_tensor *task = eqr_mse(ctx, model_fwd(ctx, &m, x), y);
        eqr_tensor *loss = eqr_add(ctx, task, eqr_sum_all(ctx, eqr_relax_penalty(ctx, m.r)));
        assert_non_null(loss);
        assert_int_equal(eqr_backward(ctx, loss), EQR_OK);
        assert_int_equal(eqr_optim_step(opt), EQR_OK);
        if (s == 0) first = task->data[0];
        last = task->data[0];
    }
    assert_true(last < first);
    eqr_step_reset(ctx);
    eqr_tensor *x = eqr_tensor_from(ctx, 4, xs, xd);
    int prev = eqr_grad_set_enabled(ctx, 0);
    eqr_tensor *yr = model_fwd(ctx, &m, x);
    assert_non_null(yr);
    const int64_t total = eqr_param_num_scalars(ctx);
    float *saved = malloc((size_t)total * sizeof(float));
    memcpy(saved, eqr_param_data_block(ctx), (size_t)total * sizeof(float));
    double d[2], err[2];
    for (int mode = 0; mode < 2; mode++) {
        memcpy(eqr_param_data_block(ctx), saved, (size_t)total * sizeof(float));
        assert_int_equal(eqr_relax_project(ctx, m.r, (eqr_project_mode)mode), EQR_OK);
        eqr_tensor *yp = model_fwd(ctx, &m, x);
        assert_non_null(yp);
        d[mode] = dist(yr->data, yp->data, ny);
        assert_int_equal(eqr_equivariance_error_max(ctx, model_fwd, &m, m.T, m.R, x, NULL, 0, &err[mode]), EQR_OK);
        assert_true(err[mode] <= EQ_TOL);
    }
    eqr_grad_set_enabled(ctx, prev);
    double yn = 0;
    for (int64_t i = 0; i < ny; i++) yn += (double)yr->data[i] * yr->data[i];
    yn = sqrt(yn);
    print_message("trained C4 model (%d Adam steps, theta 0.5, loss %.4f -> %.4f): "
                  "||f_relaxed - f_proj|| drop %.4f, fold %.4f (||f_relaxed|| %.4f)\n",
                  steps, first, last, d[0], d[1], yn);
    assert_true(d[1] <= d[0]);
    free(saved);
    free(xd);
    free(yd);
    eqr_optim_destroy(opt);
    model_free(&m);
    eqr_ctx_destroy(ctx);
}

/* ------------------------------------------------------- checkpoints */

static void test_checkpoint_roundtrip(void **state) {
    (void)state;
    char path[512];
    tu_tmp_path(path, "relax.ckpt");
    eqr_ctx *ctx = tu_ctx(50);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *T = tu_trivial_rep(ctx, &G, 1), *R = tu_regular_rep(ctx, &G, 1);
    eqr_gconv *g1 = mk_gconv(ctx, "a", T, R), *g2 = mk_gconv(ctx, "b", R, R);
    eqr_relax *r = tu_relax(ctx, "relax", 0.3f, 0.5f, 0.0f, 0.0f, 0);
    eqr_rlayer_opts own = {.own_theta = 1};
    eqr_rlayer *la = eqr_relax_gconv(ctx, r, "a", g1, &own), *lb = eqr_relax_gconv(ctx, r, "b", g2, NULL);
    assert_non_null(la);
    assert_non_null(lb);
    eqr_rlayer_theta(la)->data[0] = 0.2f;
    eqr_tensor *wa = eqr_rlayer_wr(la), *wb = eqr_rlayer_wr(lb);
    float *sa = malloc((size_t)wa->numel * sizeof(float)), *sb = malloc((size_t)wb->numel * sizeof(float));
    memcpy(sa, wa->data, (size_t)wa->numel * sizeof(float));
    memcpy(sb, wb->data, (size_t)wb->numel * sizeof(float));
    assert_int_equal(eqr_checkpoint_save(ctx, path, NULL, NULL, 0), EQR_OK);
    assert_int_equal(eqr_relax_project(ctx, r, EQR_PROJECT_DROP), EQR_OK);
    assert_true(wa->data[0] == 0.0f && eqr_relax_theta(r)->data[0] == 0.0f);
    assert_int_equal(eqr_checkpoint_load(ctx, path, NULL, NULL, 0), EQR_OK);
    assert_memory_equal(wa->data, sa, (size_t)wa->numel * sizeof(float));
    assert_memory_equal(wb->data, sb, (size_t)wb->numel * sizeof(float));
    assert_true(eqr_relax_theta(r)->data[0] == 0.3f);
    assert_true(eqr_rlayer_theta(la)->data[0] == 0.2f);
    remove(path);
    free(sa);
    free(sb);
    eqr_relax_destroy(r);
    eqr_gconv_destroy(g1);
    eqr_gconv_destroy(g2);
    eqr_rep_destroy(T);
    eqr_rep_destroy(R);
    eqr_ctx_destroy(ctx);
}

/* The projected model (the same gconvs, no eqr_relax: no "*.wr" and no
 * "*.theta" in its store) loads the relaxed model's checkpoint: a strict
 * load refuses it naming the relaxation entries, skip patterns and a
 * partial load take the gconv weights. */
static void test_checkpoint_into_projected_model(void **state) {
    (void)state;
    char path[512];
    tu_tmp_path(path, "relax_proj.ckpt");
    eqr_ctx *ctx = tu_ctx(51);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *T = tu_trivial_rep(ctx, &G, 1), *R = tu_regular_rep(ctx, &G, 1);
    eqr_gconv *g1 = mk_gconv(ctx, "a", T, R), *g2 = mk_gconv(ctx, "b", R, R);
    eqr_relax *r = tu_relax(ctx, "relax", 0.3f, 0.5f, 0.0f, 0.0f, 0);
    eqr_rlayer_opts own = {.own_theta = 1};
    assert_non_null(eqr_relax_gconv(ctx, r, "a", g1, &own));
    assert_non_null(eqr_relax_gconv(ctx, r, "b", g2, NULL));
    assert_int_equal(eqr_checkpoint_save(ctx, path, NULL, NULL, 0), EQR_OK);

    eqr_ctx *pc = tu_ctx(52);
    eqr_rep *T2 = tu_trivial_rep(pc, &G, 1), *R2 = tu_regular_rep(pc, &G, 1);
    eqr_gconv *p1 = mk_gconv(pc, "a", T2, R2), *p2 = mk_gconv(pc, "b", R2, R2);
    int np = eqr_param_num_tensors(pc);
    assert_true(np >= 2 && np < eqr_param_num_tensors(ctx));
    float *before = malloc((size_t)eqr_param_num_scalars(pc) * sizeof(float));
    assert_non_null(before);
    memcpy(before, eqr_param_data_block(pc), (size_t)eqr_param_num_scalars(pc) * sizeof(float));
    assert_int_equal(eqr_checkpoint_load(pc, path, NULL, NULL, 0), EQR_ERR_MISMATCH);
    tu_assert_error(pc, EQR_ERR_MISMATCH, "'a.wr'");
    assert_memory_equal(before, eqr_param_data_block(pc), (size_t)eqr_param_num_scalars(pc) * sizeof(float));

    const char *relax_names[] = {"*.wr", "*.theta"};
    eqr_load_opts lo = {.skip = relax_names, .nskip = 2};
    for (int mode = 0; mode < 2; mode++) {
        memcpy(eqr_param_data_block(pc), before, (size_t)eqr_param_num_scalars(pc) * sizeof(float));
        eqr_load_report rep;
        eqr_load_opts o = mode ? (eqr_load_opts){.mode = EQR_LOAD_PARTIAL} : lo;
        if (eqr_checkpoint_load_opts(pc, path, NULL, NULL, 0, &o, &rep) != EQR_OK)
            fail_msg("projected load (%s): %s", mode ? "partial" : "skip", eqr_error_message(pc));
        assert_int_equal(rep.loaded, np);
        assert_int_equal(rep.missing, 0);
        /* a.wr, a.theta, b.wr, relax.theta */
        assert_int_equal(mode ? rep.unexpected : rep.skipped, eqr_param_num_tensors(ctx) - np);
        for (int i = 0; i < np; i++) {
            eqr_tensor *t = eqr_param_at(pc, i), *u = eqr_param_find(ctx, eqr_param_name(pc, i));
            assert_non_null(u);
            assert_memory_equal(t->data, u->data, (size_t)t->numel * sizeof(float));
        }
    }
    assert_memory_not_equal(before, eqr_param_data_block(pc), (size_t)eqr_param_num_scalars(pc) * sizeof(float));
    free(before);
    remove(path);
    eqr_gconv_destroy(p1);
    eqr_gconv_destroy(p2);
    eqr_rep_destroy(T2);
    eqr_rep_destroy(R2);
    eqr_ctx_destroy(pc);
    eqr_relax_destroy(r);
    eqr_gconv_destroy(g1);
    eqr_gconv_destroy(g2);
    eqr_rep_destroy(T);
    eqr_rep_destroy(R);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_project_equivariant_exportable),
        cmocka_unit_test(test_project_steer),
        cmocka_unit_test(test_fold_least_squares),
        cmocka_unit_test(test_fold_closer_than_drop),
        cmocka_unit_test(test_checkpoint_roundtrip),
        cmocka_unit_test(test_checkpoint_into_projected_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
