/* Group convolutions (filter transform): forward against a naive double
 * reference that rotates filter taps with the element's 2x2 matrix; exact
 * equivariance of lifting and group convs and of small models for every
 * element of C1, C2, C4, D1, D2, D4; invariance of a model ending in group
 * max pooling; the documented geometry condition (stride, even kernels);
 * finite-difference gradients through the bank expansion; export to plain
 * conv2d banks; Kaiming init; type and shape errors. */
#include "testutil.h"
#include "equirelax/gconv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Equivariance bound (tu_equiv_bound; the grid action of C4 / D4 is exact,
 * the rotation term only adds margin). One layer here sums <= C k k = 24 * 25
 * = 600 products (regular reps of D4, f = 3, k = 5), with the bias and the
 * filter expansion (<= 64 basis terms per entry) depth < 700, and amp 25 =
 * sqrt(600) for sums of random sign. A stack adds its layers' bounds: each
 * layer's rounding, relative to its output, goes through the later layers
 * with a relative gain ~1 (their own magnitude ratios are in their amps). */
#define EQ_TOL eq_tol(1)
static double eq_tol(int layers) {
    return layers * tu_equiv_bound(700, 25.0);
}

/* random bias (std 0.5) so that its equivariance is tested too */
static eqr_gconv *make(eqr_ctx *ctx, const char *name, const eqr_rep *in, const eqr_rep *out,
                       int k, eqr_conv2d_geom geom) {
    return tu_gconv(ctx, name, in, out, k, geom, 0.5f);
}

static int out_size(int n, int k, int s, int p, int d) { return (n + 2 * p - d * (k - 1) - 1) / s + 1; }

/* Naive double reference of a layer, independent of the grid maps: the tap
 * of W_h at q is W at h^-1 q, computed with h^-1's 2x2 matrix about the
 * filter centre, and the group axis index(h^-1 s) by index arithmetic. */
static void ref_gconv(const eqr_gconv *L, const float *x, int N, int H, int W, double *y,
                      double *mag) {
    const eqr_group *G = eqr_gconv_group(L);
    const int ord = eqr_group_order(G), k = eqr_gconv_kernel_size(L);
    const eqr_conv2d_geom *g = eqr_gconv_geom(L);
    const int lifting = eqr_gconv_get_kind(L) == EQR_GCONV_LIFTING;
    int64_t bs[4];
    eqr_gconv_bank_shape(L, bs);
    const int F = (int)bs[0] / ord, C = (int)bs[1], fin = lifting ? C : C / ord;
    const float *w = eqr_gconv_weight(L)->data;
    const eqr_tensor *bt = eqr_gconv_bias(L);
    const int OH = out_size(H, k, g->stride_h, g->pad_h, g->dil_h);
    const int OW = out_size(W, k, g->stride_w, g->pad_w, g->dil_w);
    int *tap = malloc((size_t)ord * k * k * sizeof(int)), *sp = malloc((size_t)ord * ord * sizeof(int));
    assert_true(tap && sp);
    const double c0 = (k - 1) / 2.0;
    for (int h = 0; h < ord; h++) {
        int hinv = eqr_group_index_inverse(G, h);
        double M[4];
        eqr_gelem_matrix(eqr_group_element(G, hinv), M);
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++) {
                double qx = b - c0, qy = c0 - a;
                double rx = M[0] * qx + M[1] * qy, ry = M[2] * qx + M[3] * qy;
                int a2 = (int)lround(c0 - ry), b2 = (int)lround(rx + c0);
                assert_true(a2 >= 0 && a2 < k && b2 >= 0 && b2 < k);
                tap[(h * k + a) * k + b] = a2 * k + b2;
            }
        for (int s = 0; s < ord; s++) sp[h * ord + s] = eqr_group_index_compose(G, hinv, s);
    }
    for (int n = 0; n < N; n++)
        for (int fo = 0; fo < F; fo++)
            for (int h = 0; h < ord; h++)
                for (int oi = 0; oi < OH; oi++)
                    for (int oj = 0; oj < OW; oj++) {
                        double acc = bt ? bt->data[fo] : 0.0, am = bt ? fabs(bt->data[fo]) : 0.0;
                        for (int c = 0; c < C; c++)
                            for (int a = 0; a < k; a++)
                                for (int b = 0; b < k; b++) {
                                    int ii = oi * g->stride_h - g->pad_h + a * g->dil_h;
                                    int jj = oj * g->stride_w - g->pad_w + b * g->dil_w;
                                    if (ii < 0 || ii >= H || jj < 0 || jj >= W) continue;
                                    int t = tap[(h * k + a) * k + b];
                                    int64_t wi = lifting
                                        ? ((int64_t)fo * fin + c) * k * k + t
                                        : (((int64_t)fo * fin + c / ord) * ord + sp[h * ord + c % ord]) * k * k + t;
                                    double pr = (double)w[wi] * x[(((int64_t)n * C + c) * H + ii) * W + jj];
                                    acc += pr;
                                    am += fabs(pr);
                                }
                        y[(((int64_t)n * F * ord + fo * ord + h) * OH + oi) * OW + oj] = acc;
                        mag[(((int64_t)n * F * ord + fo * ord + h) * OH + oi) * OW + oj] = am;
                    }
    free(tap);
    free(sp);
}

static eqr_tensor *fwd_layer(eqr_ctx *ctx, void *m, eqr_tensor *x) {
    return eqr_gconv_forward(ctx, (eqr_gconv *)m, x);
}

/* A deliberately non-equivariant map with the same types (a plain conv with
 * a random bank): the measurement must flag it, so the checks can fail. */
typedef struct plain {
    eqr_tensor *w;
    eqr_conv2d_geom g;
} plain;

static eqr_tensor *fwd_plain(eqr_ctx *ctx, void *m, eqr_tensor *x) {
    plain *p = m;
    return eqr_conv2d(ctx, x, p->w, NULL, &p->g);
}

static double equiv_err(eqr_ctx *ctx, eqr_forward_fn f, void *m, const eqr_rep *in,
                        const eqr_rep *out, eqr_tensor *x) {
    double e = -1;
    if (eqr_equivariance_error_max(ctx, f, m, in, out, x, NULL, 0, &e) != EQR_OK)
        fail_msg("equivariance measurement failed: %s", eqr_error_message(ctx));
    return e;
}

/* ---- forward against the double reference ---- */

typedef struct fcase {
    int lifting, cin, fin, fout, k, H, W;
    eqr_conv2d_geom g;
} fcase;

static void test_forward_reference(void **state) {
    (void)state;
    static const fcase cases[] = {
        {1, 2, 0, 3, 3, 7, 7, {1, 1, 1, 1, 1, 1}},
        {1, 1, 0, 2, 5, 9, 8, {1, 1, 2, 2, 1, 1}},
        {0, 0, 2, 3, 3, 6, 6, {1, 1, 1, 1, 1, 1}},
        {0, 0, 2, 2, 4, 8, 7, {1, 1, 0, 0, 1, 1}}, /* even kernel, valid padding */
        {0, 0, 1, 2, 3, 9, 9, {2, 2, 1, 1, 1, 1}}, /* stride 2 */
        {0, 0, 2, 1, 3, 9, 9, {1, 1, 2, 2, 2, 2}}, /* dilation 2 */
    };
    for (int gi = 0; gi < TU_NSMALL_GROUPS; gi++)
        for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
            eqr_ctx *ctx = tu_ctx(100 + gi);
            const fcase *c = &cases[ci];
            eqr_group G = tu_small_group(gi);
            int ord = eqr_group_order(&G);
            eqr_rep *in = c->lifting ? tu_trivial_rep(ctx, &G, c->cin) : tu_regular_rep(ctx, &G, c->fin);
            eqr_rep *out = tu_regular_rep(ctx, &G, c->fout);
            eqr_gconv *L = make(ctx, "g", in, out, c->k, c->g);
            assert_int_equal(eqr_gconv_get_kind(L), c->lifting ? EQR_GCONV_LIFTING : EQR_GCONV_GROUP);
            eqr_tensor *x = tu_randn(ctx, 2, in->dim, c->H, c->W);
            eqr_tensor *y = eqr_gconv_forward(ctx, L, x);
            if (!y) fail_msg("forward: %s", eqr_error_message(ctx));
            int OH = out_size(c->H, c->k, c->g.stride_h, c->g.pad_h, c->g.dil_h);
            int OW = out_size(c->W, c->k, c->g.stride_w, c->g.pad_w, c->g.dil_w);
            assert_int_equal(y->ndim, 4);
            assert_int_equal(y->shape[1], c->fout * ord);
            assert_int_equal(y->shape[2], OH);
            assert_int_equal(y->shape[3], OW);
            double *ref = malloc((size_t)y->numel * sizeof(double));
            double *mag = malloc((size_t)y->numel * sizeof(double));
            assert_true(ref && mag);
            ref_gconv(L, x->data, 2, c->H, c->W, ref, mag);
            /* the filter bank is a permutation of the weights (exact): one
             * sum of in->dim k k products and the bias */
            tu_assert_close_bound("gconv forward", y->data, ref, mag, y->numel, (int64_t)in->dim * c->k * c->k + 1, 1);
            free(ref);
            free(mag);
            eqr_gconv_destroy(L);
            eqr_rep_destroy(in);
            eqr_rep_destroy(out);
            eqr_ctx_destroy(ctx);
        }
}

/* ---- equivariance of single layers ---- */

static void test_layer_equivariance(void **state) {
    (void)state;
    for (int gi = 0; gi < TU_NSMALL_GROUPS; gi++) {
        eqr_ctx *ctx = tu_ctx(200 + gi);
        eqr_group G = tu_small_group(gi);
        eqr_rep *t2 = tu_trivial_rep(ctx, &G, 2), *r3 = tu_regular_rep(ctx, &G, 3);
        eqr_rep *r2 = tu_regular_rep(ctx, &G, 2);
        eqr_gconv *lift = make(ctx, "lift", t2, r3, 5, EQR_CONV2D(1, 2, 1));
        eqr_gconv *lift0 = make(ctx, "lift0", t2, r3, 3, EQR_CONV2D(1, 0, 1));
        eqr_gconv *grp = make(ctx, "grp", r3, r2, 3, EQR_CONV2D(1, 1, 1));
        eqr_gconv *grp0 = make(ctx, "grp0", r3, r2, 5, EQR_CONV2D(1, 0, 1));
        eqr_tensor *x = tu_randn(ctx, 2, 2, 9, 9), *h = tu_randn(ctx, 2, r3->dim, 9, 9);
        double e;
        e = equiv_err(ctx, fwd_layer, lift, t2, r3, x);
        if (e > EQ_TOL) fail_msg("group %d lifting conv: error %g", gi, e);
        e = equiv_err(ctx, fwd_layer, lift0, t2, r3, x);
        if (e > EQ_TOL) fail_msg("group %d lifting conv, pad 0: error %g", gi, e);
        e = equiv_err(ctx, fwd_layer, grp, r3, r2, h);
        if (e > EQ_TOL) fail_msg("group %d group conv: error %g", gi, e);
        e = equiv_err(ctx, fwd_layer, grp0, r3, r2, h);
        if (e > EQ_TOL) fail_msg("group %d group conv, pad 0: error %g", gi, e);
        if (eqr_group_order(&G) > 1) {
            /* the same measurement flags a plain conv with an unconstrained bank */
            int64_t ws[4] = {r2->dim, r3->dim, 3, 3};
            plain p = {eqr_tensor_zeros(ctx, 4, ws), EQR_CONV2D(1, 1, 1)};
            assert_non_null(p.w);
            eqr_tensor_normal(p.w, eqr_ctx_rng(ctx), 0.3f);
            e = equiv_err(ctx, fwd_plain, &p, r3, r2, h);
            if (e < 0.1) fail_msg("group %d: plain conv measured as equivariant (%g)", gi, e);
        }
        eqr_gconv_destroy(lift);
        eqr_gconv_destroy(lift0);
        eqr_gconv_destroy(grp);
        eqr_gconv_destroy(grp0);
        eqr_rep_destroy(t2);
        eqr_rep_destroy(r3);
        eqr_rep_destroy(r2);
        eqr_ctx_destroy(ctx);
    }
}

/* ---- small models ---- */

typedef struct model3 {
    eqr_gconv *l1, *l2, *l3;
    const eqr_group *G;
} model3;

/* lifting, relu, group conv, relu, group conv */
static eqr_tensor *fwd_model3(eqr_ctx *ctx, void *mm, eqr_tensor *x) {
    model3 *m = mm;
    eqr_tensor *h = eqr_relu(ctx, eqr_gconv_forward(ctx, m->l1, x));
    h = eqr_relu(ctx, eqr_gconv_forward(ctx, m->l2, h));
    return eqr_gconv_forward(ctx, m->l3, h);
}

/* lifting, relu, max-pool 2, group conv, relu, group max pool, global mean */
static eqr_tensor *fwd_invariant(eqr_ctx *ctx, void *mm, eqr_tensor *x) {
    model3 *m = mm;
    eqr_tensor *h = eqr_relu(ctx, eqr_gconv_forward(ctx, m->l1, x));
    h = eqr_maxpool2d(ctx, h, 2, 2, 0);
    h = eqr_relu(ctx, eqr_gconv_forward(ctx, m->l2, h));
    if (!h) return NULL;
    int ord = eqr_group_order(m->G);
    int64_t s5[5] = {h->shape[0], h->shape[1] / ord, ord, h->shape[2], h->shape[3]};
    h = eqr_max(ctx, eqr_reshape(ctx, h, 5, s5), 2, 0);
    return eqr_global_avgpool(ctx, h);
}

static void test_model_equivariance(void **state) {
    (void)state;
    for (int gi = 0; gi < TU_NSMALL_GROUPS; gi++) {
        eqr_ctx *ctx = tu_ctx(300 + gi);
        eqr_group G = tu_small_group(gi);
        eqr_rep *t1 = tu_trivial_rep(ctx, &G, 1), *r3 = tu_regular_rep(ctx, &G, 3);
        eqr_rep *r4 = tu_regular_rep(ctx, &G, 4), *r2 = tu_regular_rep(ctx, &G, 2);
        model3 m = {make(ctx, "m.l1", t1, r3, 5, EQR_CONV2D(1, 2, 1)),
                    make(ctx, "m.l2", r3, r4, 3, EQR_CONV2D(1, 1, 1)),
                    make(ctx, "m.l3", r4, r2, 3, EQR_CONV2D(1, 1, 1)), &G};
        eqr_tensor *x = tu_randn(ctx, 2, 1, 11, 11);
        double e = equiv_err(ctx, fwd_model3, &m, t1, r2, x);
        if (e > eq_tol(3)) fail_msg("group %d: 3-layer model error %g", gi, e);

        /* invariant head: even size before the max-pool (12 -> 6) */
        model3 inv = {make(ctx, "inv.l1", t1, r3, 3, EQR_CONV2D(1, 1, 1)),
                      make(ctx, "inv.l2", r3, r4, 3, EQR_CONV2D(1, 1, 1)), NULL, &G};
        eqr_tensor *x12 = tu_randn(ctx, 3, 1, 12, 12);
        e = equiv_err(ctx, fwd_invariant, &inv, t1, NULL, x12);
        if (e > eq_tol(2)) fail_msg("group %d: invariant model error %g", gi, e);
        eqr_tensor *y = fwd_invariant(ctx, &inv, x12);
        assert_non_null(y);
        assert_int_equal(y->ndim, 2);
        assert_int_equal(y->shape[1], 4);
        eqr_gconv_destroy(m.l1);
        eqr_gconv_destroy(m.l2);
        eqr_gconv_destroy(m.l3);
        eqr_gconv_destroy(inv.l1);
        eqr_gconv_destroy(inv.l2);
        eqr_rep_destroy(t1);
        eqr_rep_destroy(r3);
        eqr_rep_destroy(r4);
        eqr_rep_destroy(r2);
        eqr_ctx_destroy(ctx);
    }
}

/* ---- the documented geometry condition ---- */

typedef struct gcase {
    int gi, lifting, k, H, W;
    eqr_conv2d_geom g;
    int exact;
} gcase;

static void test_geometry_condition(void **state) {
    (void)state;
    static const gcase cases[] = {
        /* stride 2, k 3, pad 1: (n + 2 - 2 - 1) % 2 == 0 iff n odd */
        {2, 1, 3, 9, 9, {2, 2, 1, 1, 1, 1}, 1},
        {2, 1, 3, 8, 8, {2, 2, 1, 1, 1, 1}, 0},
        {5, 0, 3, 9, 9, {2, 2, 1, 1, 1, 1}, 1},
        {5, 0, 3, 10, 10, {2, 2, 1, 1, 1, 1}, 0},
        /* stride 2, k 2, pad 0: exact on even sizes */
        {2, 0, 2, 8, 8, {2, 2, 0, 0, 1, 1}, 1},
        /* stride 1: any kernel and padding, even ones included */
        {2, 0, 4, 8, 8, {1, 1, 0, 0, 1, 1}, 1},
        {5, 0, 2, 7, 7, {1, 1, 1, 1, 1, 1}, 1},
        {5, 1, 4, 9, 9, {1, 1, 3, 3, 1, 1}, 1},
        {2, 0, 3, 10, 10, {1, 1, 2, 2, 2, 2}, 1},
        /* flips only (D1) move only the width axis: an asymmetric height is fine */
        {3, 0, 3, 8, 9, {2, 2, 1, 1, 1, 1}, 1},
        /* ... but the 180 degree rotation of C2 moves both */
        {1, 0, 3, 8, 9, {2, 2, 1, 1, 1, 1}, 0},
        /* 90 degree rotations need a square input */
        {2, 0, 3, 9, 7, {1, 1, 1, 1, 1, 1}, 0},
        {4, 0, 3, 9, 7, {1, 1, 1, 1, 1, 1}, 1},
        /* ... and the same geometry on both axes, else the output is not square */
        {2, 0, 3, 9, 9, {1, 1, 1, 0, 1, 1}, 0},
        {5, 1, 3, 9, 9, {1, 3, 1, 1, 1, 1}, 0},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        const gcase *c = &cases[ci];
        eqr_ctx *ctx = tu_ctx(400 + ci);
        eqr_group G = tu_small_group(c->gi);
        eqr_rep *in = c->lifting ? tu_trivial_rep(ctx, &G, 2) : tu_regular_rep(ctx, &G, 2);
        eqr_rep *out = tu_regular_rep(ctx, &G, 2);
        eqr_gconv *L = make(ctx, "geo", in, out, c->k, c->g);
        if (eqr_gconv_exact_on(L, c->H, c->W) != c->exact)
            fail_msg("case %zu: eqr_gconv_exact_on says %d", ci, !c->exact);
        if (c->H == c->W || G.n % 4 != 0) {
            /* measure it (the group action needs a square grid for 90 degrees) */
            eqr_tensor *x = tu_randn(ctx, 2, in->dim, c->H, c->W);
            double e = equiv_err(ctx, fwd_layer, L, in, out, x);
            if (c->exact && e > EQ_TOL) fail_msg("case %zu: exact geometry, error %g", ci, e);
            if (!c->exact && e < 0.05) fail_msg("case %zu: inexact geometry, error only %g", ci, e);
        }
        eqr_gconv_destroy(L);
        eqr_rep_destroy(in);
        eqr_rep_destroy(out);
        eqr_ctx_destroy(ctx);
    }
}

/* ---- gradients through the expansion ---- */

static eqr_tensor *grad_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    return eqr_gconv_forward(ctx, (eqr_gconv *)user, in[2]);
}

static void check_grads(int gi, int lifting, eqr_conv2d_geom geom) {
    eqr_ctx *ctx = tu_ctx(500 + gi);
    eqr_group G = tu_small_group(gi);
    eqr_rep *in = lifting ? tu_trivial_rep(ctx, &G, 2) : tu_regular_rep(ctx, &G, 2);
    eqr_rep *out = tu_regular_rep(ctx, &G, 2);
    eqr_gconv *L = make(ctx, "gc", in, out, 3, geom);
    int64_t xs[4] = {1, in->dim, 5, 5};
    eqr_tensor *x = tu_input(ctx, "x", 4, xs, 1.0f);
    eqr_tensor *ins[3] = {eqr_gconv_weight(L), eqr_gconv_bias(L), x};
    tu_gradcheck(ctx, grad_fn, ins, 3, L, 1e-2, in->dim * 9 + ins[0]->numel + 2 /* conv sum, the filter basis sum, bias */);
    eqr_gconv_destroy(L);
    eqr_rep_destroy(in);
    eqr_rep_destroy(out);
    eqr_ctx_destroy(ctx);
}

static void test_gradcheck(void **state) {
    (void)state;
    check_grads(2, 1, EQR_CONV2D(1, 1, 1)); /* C4 lifting */
    check_grads(2, 0, EQR_CONV2D(1, 1, 1)); /* C4 group */
    check_grads(5, 1, EQR_CONV2D(2, 1, 1)); /* D4 lifting, stride 2 */
    check_grads(5, 0, EQR_CONV2D(1, 0, 1)); /* D4 group, valid */
}

/* The gradient of the weight is the transposed expansion of the bank's
 * gradient: each weight element receives the sum of its |G| copies. */
static void test_bank_gradient_sums_copies(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(550);
    eqr_group G = eqr_group_dihedral(4);
    eqr_rep *in = tu_regular_rep(ctx, &G, 2), *out = tu_regular_rep(ctx, &G, 3);
    eqr_gconv *L = make(ctx, "bk", in, out, 3, EQR_CONV2D(1, 1, 1));
    eqr_tensor *bank = eqr_gconv_filter_bank(ctx, L);
    assert_non_null(bank);
    int64_t bs[4];
    eqr_gconv_bank_shape(L, bs);
    for (int i = 0; i < 4; i++) assert_int_equal(bank->shape[i], bs[i]);
    assert_int_equal(bs[0], 24);
    assert_int_equal(bs[1], 16);
    eqr_tensor *seed = eqr_tensor_zeros(ctx, 4, bank->shape);
    eqr_tensor_fill(seed, 1.0f);
    eqr_grad_zero(ctx);
    assert_int_equal(eqr_backward_from(ctx, bank, seed), EQR_OK);
    eqr_tensor *w = eqr_gconv_weight(L);
    for (int64_t i = 0; i < w->numel; i++) assert_float_equal(w->grad[i], 8.0f, 0.0f);
    eqr_tensor *bv = eqr_gconv_bias_vector(ctx, L);
    assert_non_null(bv);
    assert_int_equal(bv->numel, 24);
    for (int i = 0; i < 24; i++) assert_float_equal(bv->data[i], eqr_gconv_bias(L)->data[i / 8], 0.0f);
    eqr_gconv_destroy(L);
    eqr_rep_destroy(in);
    eqr_rep_destroy(out);
    eqr_ctx_destroy(ctx);
}

/* ---- export ---- */

static float *export_bank(eqr_ctx *ctx, const eqr_gconv *L, float **bias, eqr_tensor **wt,
                          eqr_tensor **bt) {
    int64_t bs[4];
    eqr_gconv_bank_shape(L, bs);
    float *w = malloc((size_t)(bs[0] * bs[1] * bs[2] * bs[3]) * sizeof(float));
    *bias = malloc((size_t)bs[0] * sizeof(float));
    assert_true(w && *bias);
    assert_int_equal(eqr_gconv_export(ctx, L, w, *bias), EQR_OK);
    *wt = eqr_tensor_wrap(ctx, w, 4, bs);
    *bt = eqr_tensor_wrap(ctx, *bias, 1, bs);
    assert_true(*wt && *bt);
    return w;
}

/* y = layer L applied to x (by any path) against ref_gconv: one sum of
 * C k k products and the bias per output (the bank is a permutation of the
 * weights, exact), so gamma_{C k k + 1} of its magnitude sum. */
static void assert_layer(const char *what, const eqr_gconv *L, const eqr_tensor *x,
                         const eqr_tensor *y) {
    assert_true(x && y && x->ndim == 4);
    double *ref = malloc((size_t)y->numel * sizeof(double));
    double *mag = malloc((size_t)y->numel * sizeof(double));
    assert_true(ref && mag);
    ref_gconv(L, x->data, (int)x->shape[0], (int)x->shape[2], (int)x->shape[3], ref, mag);
    const int k = eqr_gconv_kernel_size(L);
    tu_assert_close_bound(what, y->data, ref, mag, y->numel, x->shape[1] * k * k + 1, 1);
    free(ref);
    free(mag);
}

static void test_export(void **state) {
    (void)state;
    for (int gi = 2; gi < TU_NSMALL_GROUPS; gi += 3) { /* C4, D4 */
        eqr_ctx *ctx = tu_ctx(600 + gi);
        eqr_group G = tu_small_group(gi);
        eqr_rep *t1 = tu_trivial_rep(ctx, &G, 1), *r3 = tu_regular_rep(ctx, &G, 3);
        eqr_rep *r4 = tu_regular_rep(ctx, &G, 4), *r2 = tu_regular_rep(ctx, &G, 2);
        model3 m = {make(ctx, "e.l1", t1, r3, 5, EQR_CONV2D(1, 2, 1)),
                    make(ctx, "e.l2", r3, r4, 3, EQR_CONV2D(2, 1, 1)),
                    NULL, &G};
        eqr_gconv_opts nb = {.geom = EQR_CONV2D(1, 1, 1), .no_bias = 1};
        m.l3 = eqr_gconv_create(ctx, "e.l3", r4, r2, 3, &nb);
        assert_non_null(m.l3);
        assert_null(eqr_gconv_bias(m.l3));
        assert_null(eqr_gconv_bias_vector(ctx, m.l3));
        assert_int_equal(eqr_error_status(ctx), EQR_OK);
        eqr_tensor *x = tu_randn(ctx, 2, 1, 11, 11);
        eqr_tensor *y = fwd_model3(ctx, &m, x);
        assert_non_null(y);
        /* the same model as plain convs with the exported banks */
        float *b1, *b2, *b3;
        eqr_tensor *w1t, *b1t, *w2t, *b2t, *w3t, *b3t;
        float *w1 = export_bank(ctx, m.l1, &b1, &w1t, &b1t);
        float *w2 = export_bank(ctx, m.l2, &b2, &w2t, &b2t);
        float *w3 = export_bank(ctx, m.l3, &b3, &w3t, &b3t);
        for (int i = 0; i < r2->dim; i++) assert_float_equal(b3[i], 0.0f, 0.0f);
        /* every layer of both stacks against the layer's double reference on
         * that stack's own input (a bound per output, whatever the kernel) */
        eqr_tensor *z1 = eqr_conv2d(ctx, x, w1t, b1t, eqr_gconv_geom(m.l1));
        eqr_tensor *y1 = eqr_gconv_forward(ctx, m.l1, x);
        assert_true(z1 && y1);
        assert_layer("export l1 (conv2d)", m.l1, x, z1);
        assert_layer("export l1 (gconv)", m.l1, x, y1);
        eqr_tensor *h = eqr_relu(ctx, z1), *hg = eqr_relu(ctx, y1);
        eqr_tensor *z2 = eqr_conv2d(ctx, h, w2t, b2t, eqr_gconv_geom(m.l2));
        eqr_tensor *y2 = eqr_gconv_forward(ctx, m.l2, hg);
        assert_layer("export l2 (conv2d)", m.l2, h, z2);
        assert_layer("export l2 (gconv)", m.l2, hg, y2);
        h = eqr_relu(ctx, z2);
        hg = eqr_relu(ctx, y2);
        eqr_tensor *yp = eqr_conv2d(ctx, h, w3t, NULL, eqr_gconv_geom(m.l3));
        assert_non_null(yp);
        assert_layer("export l3 (conv2d)", m.l3, h, yp);
        eqr_tensor *y3 = eqr_gconv_forward(ctx, m.l3, hg); /* fwd_model3's last layer */
        assert_layer("export l3 (gconv)", m.l3, hg, y3);
        assert_true(eqr_tensor_same_shape(yp, y));
        /* and the exported bank is the differentiable bank */
        eqr_tensor *bank = eqr_gconv_filter_bank(ctx, m.l2);
        assert_non_null(bank);
        for (int64_t i = 0; i < bank->numel; i++) assert_float_equal(bank->data[i], w2[i], 0.0f);
        free(w1);
        free(w2);
        free(w3);
        free(b1);
        free(b2);
        free(b3);
        eqr_gconv_destroy(m.l1);
        eqr_gconv_destroy(m.l2);
        eqr_gconv_destroy(m.l3);
        eqr_rep_destroy(t1);
        eqr_rep_destroy(r3);
        eqr_rep_destroy(r4);
        eqr_rep_destroy(r2);
        eqr_ctx_destroy(ctx);
    }
}

/* ---- initialisation ---- */

static double std_of(const eqr_tensor *t) {
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        s += t->data[i];
        s2 += (double)t->data[i] * t->data[i];
    }
    double m = s / (double)t->numel;
    return sqrt(s2 / (double)t->numel - m * m);
}

static void test_init(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(700);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *t1 = tu_trivial_rep(ctx, &G, 1), *r16 = tu_regular_rep(ctx, &G, 16);
    eqr_rep *r64 = tu_regular_rep(ctx, &G, 64);
    eqr_gconv *gc = eqr_gconv_create(ctx, "gc", r16, r16, 5, NULL);
    eqr_gconv *lc = eqr_gconv_create(ctx, "lc", t1, r64, 5, NULL);
    eqr_gconv_opts o1 = {.init_gain = 1.0f};
    eqr_gconv *g1 = eqr_gconv_create(ctx, "g1", r16, r16, 5, &o1);
    assert_true(gc && lc && g1);
    /* parameters are registered under the layer's name with the documented shapes */
    eqr_tensor *w = eqr_param_find(ctx, "gc.weight");
    assert_ptr_equal(w, eqr_gconv_weight(gc));
    assert_int_equal(w->ndim, 5);
    assert_int_equal(w->shape[0], 16);
    assert_int_equal(w->shape[1], 16);
    assert_int_equal(w->shape[2], 4);
    assert_int_equal(w->shape[3], 5);
    assert_ptr_equal(eqr_param_find(ctx, "gc.bias"), eqr_gconv_bias(gc));
    assert_int_equal(eqr_gconv_bias(gc)->numel, 16);
    assert_int_equal(eqr_gconv_weight(lc)->ndim, 4);
    assert_int_equal(eqr_gconv_weight(lc)->shape[1], 1);
    /* Kaiming: fan_in = Fin |G| k^2 (group) and Cin k^2 (lifting) */
    double sg = std_of(w), sl = std_of(eqr_gconv_weight(lc)), s1 = std_of(eqr_gconv_weight(g1));
    double eg = sqrt(2.0 / (16 * 4 * 25)), el = sqrt(2.0 / 25), e1 = sqrt(1.0 / (16 * 4 * 25));
    if (fabs(sg / eg - 1) > 0.03) fail_msg("group conv std %g, expected %g", sg, eg);
    if (fabs(sl / el - 1) > 0.08) fail_msg("lifting conv std %g, expected %g", sl, el);
    if (fabs(s1 / e1 - 1) > 0.03) fail_msg("gain 1 std %g, expected %g", s1, e1);
    for (int i = 0; i < 16; i++) assert_float_equal(eqr_gconv_bias(gc)->data[i], 0.0f, 0.0f);
    assert_ptr_equal(eqr_gconv_in_type(gc), r16);
    assert_ptr_equal(eqr_gconv_out_type(lc), r64);
    assert_int_equal(eqr_gconv_group(gc)->n, 4);
    eqr_gconv_destroy(gc);
    eqr_gconv_destroy(lc);
    eqr_gconv_destroy(g1);
    eqr_gconv_destroy(NULL);
    eqr_rep_destroy(t1);
    eqr_rep_destroy(r16);
    eqr_rep_destroy(r64);
    eqr_ctx_destroy(ctx);
}

/* ---- errors ---- */

static void test_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(800);
    eqr_group C4 = eqr_group_cyclic(4), D4 = eqr_group_dihedral(4), C8 = eqr_group_cyclic(8);
    eqr_group SO2 = eqr_group_so2(3), C3 = eqr_group_cyclic(3);
    eqr_rep *t1 = tu_trivial_rep(ctx, &C4, 1), *r2 = tu_regular_rep(ctx, &C4, 2);
    eqr_rep *r3 = tu_regular_rep(ctx, &C4, 3), *d2 = tu_regular_rep(ctx, &D4, 2);
    eqr_rep *c8t = tu_trivial_rep(ctx, &C8, 1), *c8r = tu_regular_rep(ctx, &C8, 2);
    eqr_rep *c3t = tu_trivial_rep(ctx, &C3, 1), *c3r = tu_regular_rep(ctx, &C3, 2);
    eqr_rep_part sp = eqr_part_irrep(eqr_irrep_of(&SO2, 0, 0), 1);
    eqr_rep *so2t = eqr_rep_create(ctx, &SO2, 1, &sp);
    eqr_rep_part vp = eqr_part_irrep(eqr_irrep_of(&C4, 0, 1), 1);
    eqr_rep *vec = eqr_rep_create(ctx, &C4, 1, &vp);
    eqr_rep_part mixed_p[2] = {eqr_part_irrep(eqr_irrep_of(&C4, 0, 0), 1), eqr_part_regular(1)};
    eqr_rep *mixed = eqr_rep_create(ctx, &C4, 2, mixed_p);
    assert_true(so2t && vec && mixed);

    /* non-exact and continuous groups point to the steerable conv */
    assert_null(eqr_gconv_create(ctx, "a", c8t, c8r, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "steerable");
    assert_null(eqr_gconv_create(ctx, "a", c3t, c3r, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "C3");
    assert_null(eqr_gconv_create(ctx, "a", so2t, so2t, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "not finite");
    /* group mismatch */
    assert_null(eqr_gconv_create(ctx, "a", r2, d2, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "D4");
    /* output must be regular */
    assert_null(eqr_gconv_create(ctx, "a", t1, vec, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "out_type part 0");
    /* input must be all trivial or all regular */
    assert_null(eqr_gconv_create(ctx, "a", vec, r2, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "in_type part 0");
    assert_null(eqr_gconv_create(ctx, "a", mixed, r2, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "mixes");
    /* explicit kind must fit in_type */
    eqr_gconv_opts lift = {.kind = EQR_GCONV_LIFTING}, grp = {.kind = EQR_GCONV_GROUP};
    assert_null(eqr_gconv_create(ctx, "a", r2, r3, 3, &lift));
    tu_assert_error(ctx, EQR_ERR_ARG, "lifting conv needs trivial");
    assert_null(eqr_gconv_create(ctx, "a", t1, r3, 3, &grp));
    tu_assert_error(ctx, EQR_ERR_ARG, "group conv needs regular");
    eqr_gconv_opts badkind = {.kind = (eqr_gconv_kind)7};
    assert_null(eqr_gconv_create(ctx, "a", t1, r3, 3, &badkind));
    tu_assert_error(ctx, EQR_ERR_ARG, "kind");
    /* kernel, geometry, names, NULL types */
    assert_null(eqr_gconv_create(ctx, "a", t1, r3, 0, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "kernel size");
    eqr_gconv_opts neg = {.geom = EQR_CONV2D(1, -1, 1)};
    assert_null(eqr_gconv_create(ctx, "a", t1, r3, 3, &neg));
    tu_assert_error(ctx, EQR_ERR_ARG, "negative");
    assert_null(eqr_gconv_create(ctx, "", t1, r3, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "name");
    assert_null(eqr_gconv_create(ctx, NULL, t1, r3, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "name");
    assert_null(eqr_gconv_create(ctx, "a", NULL, r3, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");
    /* none of the failures registered parameters */
    assert_int_equal(eqr_param_num_tensors(ctx), 0);

    eqr_gconv *L = eqr_gconv_create(ctx, "lift", t1, r3, 3, NULL);
    eqr_gconv *G = eqr_gconv_create(ctx, "grp", r3, r2, 3, NULL);
    assert_true(L && G);
    assert_null(eqr_gconv_create(ctx, "lift", t1, r3, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "already exists");
    /* lifting conv given regular fields, group conv given the wrong field count */
    eqr_tensor *xr = tu_randn(ctx, 1, 12, 7, 7);
    assert_null(eqr_gconv_forward(ctx, L, xr));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "[N,1,H,W]");
    eqr_tensor *x2 = tu_randn(ctx, 1, 8, 7, 7);
    assert_null(eqr_gconv_forward(ctx, G, x2));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "[N,12,H,W]");
    int64_t s3[3] = {12, 7, 7};
    eqr_tensor *x3 = eqr_tensor_zeros(ctx, 3, s3);
    assert_null(eqr_gconv_forward(ctx, G, x3));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "[12,7,7]");
    /* input smaller than the kernel: the conv reports it */
    eqr_gconv_opts valid = {.geom = EQR_CONV2D(1, 0, 1)};
    eqr_gconv *V = eqr_gconv_create(ctx, "valid", t1, r3, 5, &valid);
    assert_non_null(V);
    eqr_tensor *tiny = tu_randn(ctx, 1, 1, 3, 3);
    assert_null(eqr_gconv_forward(ctx, V, tiny));
    assert_int_not_equal(eqr_error_status(ctx), EQR_OK);
    eqr_error_clear(ctx);
    assert_int_equal(eqr_gconv_exact_on(V, 3, 3), 0);
    /* NULL arguments */
    assert_null(eqr_gconv_forward(ctx, L, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    assert_null(eqr_gconv_forward(ctx, NULL, xr));
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");
    assert_int_equal(eqr_gconv_export(ctx, L, NULL, NULL), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");
    assert_null(eqr_gconv_filter_bank(ctx, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");

    eqr_gconv_destroy(L);
    eqr_gconv_destroy(G);
    eqr_gconv_destroy(V);
    eqr_rep *reps[] = {t1, r2, r3, d2, c8t, c8r, c3t, c3r, so2t, vec, mixed};
    for (size_t i = 0; i < sizeof reps / sizeof *reps; i++) eqr_rep_destroy(reps[i]);
    eqr_ctx_destroy(ctx);
}

/* max_freq of C_N / D_N is only informational: a hand-written group value
 * and eqr_group_cyclic(N) are the same group. */
static void test_group_literal(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(900);
    eqr_group lit = {EQR_GROUP_CYCLIC, 4, 0}, C4 = eqr_group_cyclic(4);
    eqr_rep *t = tu_trivial_rep(ctx, &lit, 1), *r = tu_regular_rep(ctx, &C4, 2);
    assert_int_equal(t->group.max_freq, 2); /* normalised by eqr_rep_create */
    eqr_gconv *L = eqr_gconv_create(ctx, "lit", t, r, 3, NULL);
    if (!L) fail_msg("%s", eqr_error_message(ctx));
    eqr_gconv_destroy(L);
    eqr_rep_destroy(t);
    eqr_rep_destroy(r);
    eqr_ctx_destroy(ctx);
}

/* A name clash on the bias is found before the weight is registered: a
 * failed create leaves the store as it was. */
static void test_no_partial_registration(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(901);
    eqr_group C4 = eqr_group_cyclic(4);
    eqr_rep *t = tu_trivial_rep(ctx, &C4, 1), *r = tu_regular_rep(ctx, &C4, 1);
    int64_t one = 1;
    assert_non_null(eqr_param_create(ctx, "g.bias", 1, &one, 0));
    assert_null(eqr_gconv_create(ctx, "g", t, r, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "already exists");
    assert_null(eqr_param_find(ctx, "g.weight"));
    assert_int_equal(eqr_param_num_tensors(ctx), 1);
    eqr_rep_destroy(t);
    eqr_rep_destroy(r);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_reference),
        cmocka_unit_test(test_layer_equivariance),
        cmocka_unit_test(test_model_equivariance),
        cmocka_unit_test(test_geometry_condition),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_bank_gradient_sums_copies),
        cmocka_unit_test(test_export),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_group_literal),
        cmocka_unit_test(test_no_partial_registration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
