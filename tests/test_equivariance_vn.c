/* Vector-neuron layers (vn.h): forward against double references, rotation
 * equivariance / invariance under random rotations, gradients, errors. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define NROT 12

/* the layer under test, as one forward function */
typedef struct vn_model {
    int kind; /* 0 linear, 1 leaky, 2 bn, 3 mean pool, 4 max pool, 5 invariant, 6 stack */
    eqr_vn_linear *lin, *lin2;
    eqr_vn_leaky_relu *relu;
    eqr_vn_bn *bn;
    eqr_vn_max_pool *maxp;
    eqr_vn_invariant *inv;
} vn_model;

static eqr_tensor *model_fwd(eqr_ctx *ctx, void *mm, eqr_tensor *x) {
    vn_model *m = mm;
    switch (m->kind) {
    case 0: return eqr_vn_linear_forward(ctx, m->lin, x);
    case 1: return eqr_vn_leaky_relu_forward(ctx, m->relu, x);
    case 2: return eqr_vn_bn_forward(ctx, m->bn, x);
    case 3: return eqr_vn_mean_pool(ctx, x);
    case 4: return eqr_vn_max_pool_forward(ctx, m->maxp, x);
    case 5: return eqr_vn_invariant_forward(ctx, m->inv, x);
    default: { /* linear -> bn -> leaky relu -> linear -> invariant -> mean pool */
        eqr_tensor *h = eqr_vn_linear_forward(ctx, m->lin, x);
        h = eqr_vn_bn_forward(ctx, m->bn, h);
        h = eqr_vn_leaky_relu_forward(ctx, m->relu, h);
        h = eqr_vn_linear_forward(ctx, m->lin2, h);
        h = eqr_vn_invariant_forward(ctx, m->inv, h);
        return eqr_vn_mean_pool(ctx, h);
    }
    }
}

static eqr_tensor *grad_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)in;
    vn_model *m = user;
    return model_fwd(ctx, m, in[0]);
}

/* max over NROT random rotations of ||f(R x) - R f(x)|| / ||f(x)||
 * (invariant: R f(x) replaced by f(x)) */
static double equiv_err(eqr_ctx *ctx, vn_model *m, eqr_tensor *x, int invariant) {
    double worst = tu_so3_equiv_err(ctx, model_fwd, m, x, NROT, invariant);
    print_message("vn kind %d: max relative %s error over %d rotations %.3g\n", m->kind,
                  invariant ? "invariance" : "equivariance", NROT, worst);
    return worst;
}

static eqr_tensor *input(eqr_ctx *ctx, const char *name, int64_t n, int64_t c, int64_t p) {
    int64_t s[4] = {n, c, 3, p};
    return tu_input(ctx, name, 4, s, 1.0f);
}

#define X(x, n, c, i, p) ((double)(x)->data[(((n) * C + (c)) * 3 + (i)) * P + (p)])

static void test_vn_linear(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(11);
    const int64_t N = 2, C = 3, O = 4, P = 5;
    vn_model m = {.kind = 0};
    m.lin = eqr_vn_linear_create(ctx, "lin", (int)C, (int)O);
    assert_non_null(m.lin);
    eqr_tensor *w = eqr_vn_linear_weight(m.lin);
    assert_ptr_equal(eqr_param_find(ctx, "lin.weight"), w);
    assert_int_equal(w->shape[0], O);
    assert_int_equal(w->shape[1], C);
    assert_int_equal(eqr_vn_linear_in_channels(m.lin), C);
    assert_int_equal(eqr_vn_linear_out_channels(m.lin), O);
    eqr_tensor *x = input(ctx, "x", N, C, P);
    eqr_tensor *y = model_fwd(ctx, &m, x);
    assert_non_null(y);
    assert_int_equal(y->ndim, 4);
    double *ref = malloc(sizeof(double) * N * O * 3 * P), *mag = malloc(sizeof(double) * N * O * 3 * P);
    assert_true(ref && mag);
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
            for (int i = 0; i < 3; i++)
                for (int64_t p = 0; p < P; p++) {
                    double s = 0, a = 0;
                    for (int64_t c = 0; c < C; c++) {
                        s += (double)w->data[o * C + c] * X(x, n, c, i, p);
                        a += fabs((double)w->data[o * C + c] * X(x, n, c, i, p));
                    }
                    ref[((n * O + o) * 3 + i) * P + p] = s;
                    mag[((n * O + o) * 3 + i) * P + p] = a;
                }
    tu_assert_close_bound("vn_linear", y->data, ref, mag, y->numel, C, 1); /* C-term sums */
    /* point-less form [N, C, 3] */
    int64_t s3[3] = {N, C, 3};
    eqr_tensor *x3 = eqr_reshape(ctx, eqr_slice(ctx, x, 3, 0, 1), 3, s3);
    eqr_tensor *y3 = model_fwd(ctx, &m, x3);
    assert_non_null(y3);
    assert_int_equal(y3->ndim, 3);
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
            for (int i = 0; i < 3; i++) {
                int64_t r = ((n * O + o) * 3 + i) * P;
                assert_true(fabs(y3->data[(n * O + o) * 3 + i] - ref[r]) <= tu_gamma(C) * mag[r] + TU_U * fabs(ref[r]));
            }
    free(ref);
    free(mag);
    eqr_step_reset(ctx);
    assert_true(equiv_err(ctx, &m, x, 0) <= tu_equiv_bound(C, sqrt((double)C)) /* C-term sums */);
    eqr_tensor *in[2] = {x, w};
    tu_gradcheck(ctx, grad_fn, in, 2, &m, 1e-2, 32 /* channel sums */);
    eqr_vn_linear_destroy(m.lin);
    eqr_ctx_destroy(ctx);
}

static void test_vn_leaky_relu(void **state) {
    (void)state;
    for (int shared = 0; shared <= 1; shared++) {
        eqr_ctx *ctx = tu_ctx(12 + shared);
        const int64_t N = 2, C = 3, P = 4;
        vn_model m = {.kind = 1};
        eqr_vn_leaky_relu_opts o = {0.2f, shared};
        m.relu = eqr_vn_leaky_relu_create(ctx, "act", (int)C, &o);
        assert_non_null(m.relu);
        eqr_tensor *u = eqr_vn_leaky_relu_weight(m.relu);
        const int64_t D = shared ? 1 : C;
        assert_int_equal(u->shape[0], D);
        eqr_tensor *x = input(ctx, "x", N, C, P);
        eqr_tensor *y = model_fwd(ctx, &m, x);
        assert_non_null(y);
        double *ref = malloc(sizeof(double) * N * C * 3 * P), *mag = malloc(sizeof(double) * N * C * 3 * P);
        assert_true(ref && mag);
        int nneg = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t p = 0; p < P; p++)
                for (int64_t c = 0; c < C; c++) {
                    double k[3] = {0, 0, 0}, km[3] = {0, 0, 0}, dot = 0, kk = 0;
                    int64_t dc = shared ? 0 : c;
                    for (int i = 0; i < 3; i++) {
                        for (int64_t j = 0; j < C; j++) {
                            k[i] += (double)u->data[dc * C + j] * X(x, n, j, i, p);
                            km[i] += fabs((double)u->data[dc * C + j] * X(x, n, j, i, p));
                        }
                        dot += X(x, n, c, i, p) * k[i];
                        kk += k[i] * k[i];
                    }
                    /* first-order error scales: k_i within gamma km_i, so
                     * dot within gamma dm and kk within gamma kkm */
                    double dm = 0, kkm = 0;
                    for (int i = 0; i < 3; i++) {
                        dm += fabs(X(x, n, c, i, p)) * (fabs(k[i]) + km[i]);
                        kkm += fabs(k[i]) * (fabs(k[i]) + 2 * km[i]);
                    }
                    nneg += dot < 0;
                    for (int i = 0; i < 3; i++) {
                        double v = X(x, n, c, i, p), ak = fabs(k[i]), den = kk + 1e-6;
                        if (dot < 0) v -= 0.8 * dot / den * k[i];
                        ref[((n * C + c) * 3 + i) * P + p] = v;
                        /* the branch may flip where |dot| <= gamma dm: a jump of
                         * <= 0.8 gamma dm |k_i| / kk, the first term */
                        mag[((n * C + c) * 3 + i) * P + p] =
                            0.8 * dm * ak / den +
                            (dot < 0 ? fabs(v) + 0.8 * fabs(dot) * ((km[i] + ak) / den + ak * kkm / (den * den)) : 0);
                    }
                }
        assert_true(nneg > 0 && nneg < N * C * P); /* both branches exercised */
        /* C-term sums for k, 3-term dot products, a divide and an update */
        tu_assert_close_bound("vn_leaky_relu", y->data, ref, mag, y->numel, C + 3 + 4, 1);
        /* slope 0: the negative part along k is removed, <y, k> = 0 there */
        free(ref);
        free(mag);
        eqr_step_reset(ctx);
        /* C-term sums for k, dot products of 3 and |k|^2, the update; amp
         * sqrt(3 C): dot products of 3 components of C-term sums */
        assert_true(equiv_err(ctx, &m, x, 0) <= tu_equiv_bound(C + 3 + 3 + 4, sqrt(3.0 * C)));
        eqr_tensor *in[2] = {x, u};
        tu_gradcheck(ctx, grad_fn, in, 2, &m, 2e-3, 16 /* dot products over 3, a projection */);
        eqr_vn_leaky_relu_destroy(m.relu);
        eqr_ctx_destroy(ctx);
    }
}

static void test_vn_relu_projects(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(14);
    const int64_t N = 3, C = 2, P = 3;
    eqr_vn_leaky_relu *r = eqr_vn_leaky_relu_create(ctx, "relu", (int)C, NULL);
    assert_non_null(r);
    eqr_tensor *u = eqr_vn_leaky_relu_weight(r);
    eqr_tensor *x = input(ctx, "x", N, C, P);
    eqr_tensor *y = eqr_vn_leaky_relu_forward(ctx, r, x);
    assert_non_null(y);
    /* VN-ReLU output has <y, k> >= 0 everywhere (up to eps) */
    for (int64_t n = 0; n < N; n++)
        for (int64_t p = 0; p < P; p++)
            for (int64_t c = 0; c < C; c++) {
                double dot = 0, kk = 0, dm = 0, dx = 0;
                for (int i = 0; i < 3; i++) {
                    double k = 0, km = 0;
                    for (int64_t j = 0; j < C; j++) {
                        k += (double)u->data[c * C + j] * X(x, n, j, i, p);
                        km += fabs((double)u->data[c * C + j] * X(x, n, j, i, p));
                    }
                    double yi = y->data[((n * C + c) * 3 + i) * P + p];
                    dot += yi * k;
                    dx += X(x, n, c, i, p) * k;
                    kk += k * k;
                    /* y = x - (<x,k>/|k|^2) k in float: y_i off by ~ gamma
                     * (|x_i| + |y_i|) against exact k, k_i by gamma km */
                    dm += (fabs(X(x, n, c, i, p)) + 2 * fabs(yi)) * (fabs(k) + km);
                }
                /* exactly, <y, k> = min(<x, k>, 0) eps / (|k|^2 + eps), eps = 1e-6 */
                double exact = fmin(dx, 0) * 1e-6 / (kk + 1e-6);
                assert_true(dot >= exact - 4 * tu_gamma(C + 3 + 4) * dm);
            }
    eqr_vn_leaky_relu_destroy(r);
    eqr_ctx_destroy(ctx);
}

static void test_vn_bn(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(15);
    const int64_t N = 3, C = 2, P = 4;
    vn_model m = {.kind = 2};
    m.bn = eqr_vn_bn_create(ctx, "bn", (int)C, NULL);
    assert_non_null(m.bn);
    assert_int_equal(eqr_vn_bn_training(m.bn), 1);
    eqr_tensor *g = eqr_vn_bn_weight(m.bn), *b = eqr_vn_bn_bias(m.bn);
    assert_ptr_equal(eqr_param_find(ctx, "bn.running_var"), eqr_vn_bn_running_var(m.bn));
    assert_ptr_equal(eqr_param_find(ctx, "bn.running_mean"), eqr_vn_bn_running_mean(m.bn));
    g->data[0] = 1.5f, g->data[1] = 0.7f, b->data[0] = 0.3f, b->data[1] = 1.1f;
    eqr_tensor *x = input(ctx, "x", N, C, P);
    eqr_tensor *y = model_fwd(ctx, &m, x);
    assert_non_null(y);
    /* error scales (first order, G = gamma_{M+10}): |v| within gamma_4 |v|;
     * mu within G mean|v|; the variance (any formula) within G (E|v|^2 +
     * mu^2), so 1/sd relatively within G ((E|v|^2 + mu^2) / (2 var) + 1);
     * bn within G bm = (|g| / sd) (|v| + mu + ||v| - mu| (...)) + |bn| + |b|;
     * y_i = x_i bn / |v| within G (|x_i| / |v| bm + 3 |y_i|) */
    double *ref = malloc(sizeof(double) * N * C * 3 * P), rvar[2], rvm[2];
    double *mag = malloc(sizeof(double) * N * C * 3 * P);
    assert_true(ref && mag);
    for (int64_t c = 0; c < C; c++) {
        double s = 0, s2 = 0, M = (double)(N * P);
        for (int64_t n = 0; n < N; n++)
            for (int64_t p = 0; p < P; p++) {
                double nn = sqrt(pow(X(x, n, c, 0, p), 2) + pow(X(x, n, c, 1, p), 2) + pow(X(x, n, c, 2, p), 2));
                s += nn, s2 += nn * nn;
            }
        double mu = s / M, var = s2 / M - mu * mu;
        rvar[c] = 0.9 + 0.1 * var * M / (M - 1);
        rvm[c] = 0.9 + 0.1 * (s2 / M + mu * mu) * M / (M - 1);
        double irel = (s2 / M + mu * mu) / (2 * var) + 1, sd = sqrt(var + 1e-5);
        for (int64_t n = 0; n < N; n++)
            for (int64_t p = 0; p < P; p++) {
                double nn = sqrt(pow(X(x, n, c, 0, p), 2) + pow(X(x, n, c, 1, p), 2) + pow(X(x, n, c, 2, p), 2));
                double bn = (nn - mu) / sqrt(var + 1e-5) * g->data[c] + b->data[c];
                double bm = fabs(g->data[c]) / sd * (nn + mu + fabs(nn - mu) * irel) + fabs(bn) + fabs(b->data[c]);
                for (int i = 0; i < 3; i++) {
                    int64_t r = ((n * C + c) * 3 + i) * P + p;
                    ref[r] = X(x, n, c, i, p) * bn / nn;
                    mag[r] = fabs(X(x, n, c, i, p)) / nn * bm + 3 * fabs(ref[r]);
                }
            }
    }
    const int64_t nsum = N * P + 10;
    tu_assert_close_bound("vn_bn train", y->data, ref, mag, y->numel, nsum, 1);
    for (int c = 0; c < 2; c++)
        assert_true(fabs(eqr_vn_bn_running_var(m.bn)->data[c] - rvar[c]) <= tu_gamma(nsum) * rvm[c]);
    free(ref);
    free(mag);
    eqr_step_reset(ctx);
    /* norms of 3, batch sums of M = N P, the normalisation; amp 8: the
     * centring |v| - mu (magnitudes |v| + mu over the spread sd, ~3 for
     * norms of Gaussian vectors) times the 3 components of the rescale */
    assert_true(equiv_err(ctx, &m, x, 0) <= tu_equiv_bound(nsum, 8));
    eqr_tensor *in[3] = {x, g, b};
    tu_gradcheck(ctx, grad_fn, in, 3, &m, 1e-2, 64 /* norms, batch mean and variance sums */);
    /* evaluation mode: running statistics, still equivariant */
    eqr_vn_bn_set_training(m.bn, 0);
    assert_int_equal(eqr_vn_bn_training(m.bn), 0);
    eqr_tensor *rm = eqr_vn_bn_running_mean(m.bn), *rv = eqr_vn_bn_running_var(m.bn);
    y = model_fwd(ctx, &m, x);
    assert_non_null(y);
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < P; p++) {
                double nn = sqrt(pow(X(x, n, c, 0, p), 2) + pow(X(x, n, c, 1, p), 2) + pow(X(x, n, c, 2, p), 2));
                double bn = (nn - rm->data[c]) / sqrt(rv->data[c] + 1e-5) * g->data[c] + b->data[c];
                double r0 = X(x, n, c, 0, p) * bn / nn, sd = sqrt(rv->data[c] + 1e-5);
                /* as in training with fixed statistics: no batch sums */
                double bm = fabs(g->data[c]) / sd * (2 * nn + fabs(rm->data[c])) + fabs(bn) + fabs(b->data[c]);
                double r0m = fabs(X(x, n, c, 0, p)) / nn * bm + 3 * fabs(r0);
                assert_true(fabs(y->data[((n * C + c) * 3) * P + p] - r0) <= tu_gamma(10) * r0m);
            }
    eqr_step_reset(ctx);
    assert_true(equiv_err(ctx, &m, x, 0) <= tu_equiv_bound(10, 8));
    tu_gradcheck(ctx, grad_fn, in, 3, &m, 1e-2, 64);
    eqr_vn_bn_destroy(m.bn);
    eqr_ctx_destroy(ctx);
}

static void test_vn_pools(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(16);
    const int64_t N = 2, C = 3, P = 6;
    vn_model mean = {.kind = 3}, mx = {.kind = 4};
    mx.maxp = eqr_vn_max_pool_create(ctx, "pool", (int)C);
    assert_non_null(mx.maxp);
    eqr_tensor *u = eqr_vn_max_pool_weight(mx.maxp);
    assert_ptr_equal(eqr_param_find(ctx, "pool.weight"), u);
    eqr_tensor *x = input(ctx, "x", N, C, P);
    eqr_tensor *ym = model_fwd(ctx, &mean, x), *yx = model_fwd(ctx, &mx, x);
    assert_non_null(ym);
    assert_non_null(yx);
    assert_int_equal(ym->ndim, 3);
    assert_int_equal(yx->ndim, 3);
    double rm[2 * 3 * 3], rx[2 * 3 * 3], mm[2 * 3 * 3];
    int picked[6] = {0};
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            int64_t best = -1;
            double bv = -INFINITY;
            for (int64_t p = 0; p < P; p++) {
                double dot = 0;
                for (int i = 0; i < 3; i++) {
                    double k = 0;
                    for (int64_t j = 0; j < C; j++) k += (double)u->data[c * C + j] * X(x, n, j, i, p);
                    dot += k * X(x, n, c, i, p);
                }
                if (dot > bv) bv = dot, best = p;
            }
            picked[best] = 1;
            for (int i = 0; i < 3; i++) {
                double s = 0, a = 0;
                for (int64_t p = 0; p < P; p++) s += X(x, n, c, i, p), a += fabs(X(x, n, c, i, p));
                rm[(n * C + c) * 3 + i] = s / P;
                mm[(n * C + c) * 3 + i] = a / P;
                rx[(n * C + c) * 3 + i] = X(x, n, c, i, best);
            }
        }
    int distinct = 0;
    for (int p = 0; p < 6; p++) distinct += picked[p];
    assert_true(distinct > 1); /* not always the same point */
    /* mean: P terms and a divide; max: copies of the selected vector, exact */
    tu_assert_close_bound("vn_mean_pool", ym->data, rm, mm, 18, P + 1, 1);
    tu_assert_close("vn_max_pool", yx->data, rx, 18, 0, 0);
    /* invariant to the order of the points: reverse them */
    int64_t perm_idx[2 * 3 * 3 * 6];
    for (int64_t r = 0; r < N * C * 3; r++)
        for (int64_t p = 0; p < P; p++) perm_idx[r * P + p] = r * P + (P - 1 - p);
    eqr_tensor *xp = eqr_gather(ctx, x, perm_idx, 4, x->shape);
    eqr_tensor *ymp = model_fwd(ctx, &mean, xp), *yxp = model_fwd(ctx, &mx, xp);
    assert_non_null(ymp);
    assert_non_null(yxp);
    tu_assert_close_bound("mean pool permuted", ymp->data, rm, mm, 18, P + 1, 1);
    tu_assert_close("max pool permuted", yxp->data, rx, 18, 0, 0);
    eqr_step_reset(ctx);
    /* mean: P-term sums of random sign; max: a selection by the norms
     * (3-term sums of squares, away from ties), then an exact copy */
    assert_true(equiv_err(ctx, &mean, x, 0) <= tu_equiv_bound(P + 1, sqrt((double)P)));
    assert_true(equiv_err(ctx, &mx, x, 0) <= tu_equiv_bound(3 + C, 1));
    tu_gradcheck(ctx, grad_fn, &x, 1, &mean, 1e-2, 16 /* pooling over the points */);
    /* max: gradient to the selected vectors only (U gets none) */
    tu_gradcheck(ctx, grad_fn, &x, 1, &mx, 1e-3, 16);
    eqr_vn_max_pool_destroy(mx.maxp);
    eqr_ctx_destroy(ctx);
}

static void test_vn_invariant(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(17);
    const int64_t N = 2, C = 3, P = 4;
    vn_model m = {.kind = 5};
    m.inv = eqr_vn_invariant_create(ctx, "inv", (int)C);
    assert_non_null(m.inv);
    eqr_tensor *wf = eqr_vn_invariant_weight(m.inv);
    assert_int_equal(wf->shape[0], 3);
    assert_int_equal(wf->shape[1], C);
    eqr_tensor *x = input(ctx, "x", N, C, P);
    eqr_tensor *y = model_fwd(ctx, &m, x);
    assert_non_null(y);
    assert_int_equal(y->shape[1], C);
    assert_int_equal(y->shape[2], 3);
    double *ref = malloc(sizeof(double) * N * C * 3 * P), *mag = malloc(sizeof(double) * N * C * 3 * P);
    assert_true(ref && mag);
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int k = 0; k < 3; k++)
                for (int64_t p = 0; p < P; p++) {
                    double s = 0, a = 0;
                    for (int i = 0; i < 3; i++) {
                        double z = 0;
                        for (int64_t j = 0; j < C; j++) {
                            z += (double)wf->data[k * C + j] * X(x, n, j, i, p);
                            a += fabs((double)wf->data[k * C + j] * X(x, n, j, i, p) * X(x, n, c, i, p));
                        }
                        s += X(x, n, c, i, p) * z;
                    }
                    ref[((n * C + c) * 3 + k) * P + p] = s;
                    mag[((n * C + c) * 3 + k) * P + p] = a;
                }
    /* z = W x (C terms), then <x, z> (3 terms): sum |w x x| bounds both */
    tu_assert_close_bound("vn_invariant", y->data, ref, mag, y->numel, C + 3, 1);
    free(ref);
    free(mag);
    eqr_step_reset(ctx);
    assert_true(equiv_err(ctx, &m, x, 1) <= tu_equiv_bound(C + 3, sqrt(3.0 * C)));
    /* and it is not simply equivariant (a test that could not fail otherwise) */
    assert_true(equiv_err(ctx, &m, x, 0) > 1e-2);
    eqr_tensor *in[2] = {x, wf};
    tu_gradcheck(ctx, grad_fn, in, 2, &m, 1e-2, 32);
    eqr_vn_invariant_destroy(m.inv);
    eqr_ctx_destroy(ctx);
}

static void test_vn_stack_invariant(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(18);
    vn_model m = {.kind = 6};
    m.lin = eqr_vn_linear_create(ctx, "l1", 2, 6);
    m.bn = eqr_vn_bn_create(ctx, "bn", 6, NULL);
    m.relu = eqr_vn_leaky_relu_create(ctx, "act", 6, &(eqr_vn_leaky_relu_opts){0.1f, 0});
    m.lin2 = eqr_vn_linear_create(ctx, "l2", 6, 4);
    m.inv = eqr_vn_invariant_create(ctx, "inv", 4);
    assert_true(m.lin && m.bn && m.relu && m.lin2 && m.inv);
    eqr_tensor *x = input(ctx, "x", 3, 2, 8);
    double e = equiv_err(ctx, &m, x, 1);
    /* linear 2 -> 6, bn over 3 x 8, VN-ReLU, linear 6 -> 4, invariant:
     * depths 2 + (24 + 10) + 13 + 6 + 7 < 64; amps add (each layer's error
     * enters the next): sqrt 2 + 8 + sqrt 18 + sqrt 6 + sqrt 12 < 20 */
    assert_true(e <= tu_equiv_bound(64, 20));
    eqr_vn_linear_destroy(m.lin), eqr_vn_linear_destroy(m.lin2);
    eqr_vn_bn_destroy(m.bn), eqr_vn_leaky_relu_destroy(m.relu), eqr_vn_invariant_destroy(m.inv);
    eqr_ctx_destroy(ctx);
}

static void test_vn_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(19);
    assert_null(eqr_vn_linear_create(ctx, "l", 0, 3));
    tu_assert_error(ctx, EQR_ERR_ARG, "channel count 0");
    assert_null(eqr_vn_linear_create(ctx, "", 2, 3));
    tu_assert_error(ctx, EQR_ERR_ARG, "name");
    eqr_vn_linear *l = eqr_vn_linear_create(ctx, "l", 2, 3);
    assert_non_null(l);
    assert_null(eqr_vn_linear_create(ctx, "l", 2, 3));
    tu_assert_error(ctx, EQR_ERR_ARG, "'l.weight' already exists");
    assert_null(eqr_vn_leaky_relu_create(ctx, "a", 2, &(eqr_vn_leaky_relu_opts){1.0f, 0}));
    tu_assert_error(ctx, EQR_ERR_ARG, "negative_slope");
    assert_null(eqr_vn_bn_create(ctx, "b", 2, &(eqr_vn_bn_opts){-1.0f, 0}));
    tu_assert_error(ctx, EQR_ERR_ARG, "eps");
    int np = eqr_param_num_tensors(ctx);
    eqr_vn_bn *bn = eqr_vn_bn_create(ctx, "bn", 3, NULL);
    eqr_vn_leaky_relu *act = eqr_vn_leaky_relu_create(ctx, "act", 3, NULL);
    eqr_vn_max_pool *mp = eqr_vn_max_pool_create(ctx, "mp", 3);
    eqr_vn_invariant *inv = eqr_vn_invariant_create(ctx, "inv", 3);
    assert_true(bn && act && mp && inv);
    assert_int_equal(eqr_param_num_tensors(ctx), np + 7);

    int64_t s_bad_c[4] = {2, 4, 3, 5}, s_bad_3[4] = {2, 2, 2, 5}, s2[2] = {2, 6};
    eqr_tensor *xc = eqr_tensor_zeros(ctx, 4, s_bad_c), *x3 = eqr_tensor_zeros(ctx, 4, s_bad_3),
               *x2 = eqr_tensor_zeros(ctx, 2, s2);
    assert_null(eqr_vn_linear_forward(ctx, l, xc));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "x [2,4,3,5] must be [N, 2, 3, P]");
    assert_null(eqr_vn_linear_forward(ctx, l, x3));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "[2,2,2,5]");
    assert_null(eqr_vn_linear_forward(ctx, l, x2));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "eqr_vn_linear_forward");
    assert_null(eqr_vn_leaky_relu_forward(ctx, act, x3));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "eqr_vn_leaky_relu_forward");
    assert_null(eqr_vn_bn_forward(ctx, bn, xc));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "eqr_vn_bn_forward");
    int64_t one[4] = {1, 3, 3, 1};
    assert_null(eqr_vn_bn_forward(ctx, bn, eqr_tensor_zeros(ctx, 4, one)));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "more than one vector");
    assert_null(eqr_vn_max_pool_forward(ctx, mp, xc));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "eqr_vn_max_pool_forward");
    assert_null(eqr_vn_invariant_forward(ctx, inv, x3));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "eqr_vn_invariant_forward");
    assert_null(eqr_vn_mean_pool(ctx, x2));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "eqr_vn_mean_pool");
    assert_null(eqr_vn_linear_forward(ctx, NULL, x3));
    tu_assert_error(ctx, EQR_ERR_ARG, "layer is NULL");
    /* a caller's NULL input: EQR_ERR_ARG naming the argument */
    assert_null(eqr_vn_linear_forward(ctx, l, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    eqr_vn_linear_destroy(l), eqr_vn_bn_destroy(bn), eqr_vn_leaky_relu_destroy(act);
    eqr_vn_max_pool_destroy(mp), eqr_vn_invariant_destroy(inv);
    eqr_vn_linear_destroy(NULL), eqr_vn_bn_destroy(NULL), eqr_vn_leaky_relu_destroy(NULL);
    eqr_vn_max_pool_destroy(NULL), eqr_vn_invariant_destroy(NULL);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vn_linear),        cmocka_unit_test(test_vn_leaky_relu),
        cmocka_unit_test(test_vn_relu_projects), cmocka_unit_test(test_vn_bn),
        cmocka_unit_test(test_vn_pools),         cmocka_unit_test(test_vn_invariant),
        cmocka_unit_test(test_vn_stack_invariant), cmocka_unit_test(test_vn_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
