/* EGNN layer (egnn.h): E(3) equivariance under random rotations and
 * translations, permutation equivariance, gradients by finite differences,
 * the relaxed coordinate term (theta = 0 exact, theta > 0 with a random W_r
 * not, equivariant W_r exact and defect 0, closed-form Lie derivative equal
 * to a finite-difference measurement, projection exact), and error paths. */
#include "testutil.h"

#include "equirelax/so3.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define B 3
#define NN 5

typedef struct inputs {
    eqr_tensor *h, *x, *v, *e;
} inputs;

/* Random inputs for F features; e[b,i,j] = q_i q_j like the N-body task. */
static inputs make_inputs(eqr_ctx *ctx, const char *tag, int64_t b, int64_t n, int F, int A) {
    char nm[64];
    inputs in;
    int64_t sh[3] = {b, n, F}, s3[3] = {b, n, 3};
    snprintf(nm, sizeof nm, "%s.h", tag);
    in.h = tu_input(ctx, nm, 3, sh, 1.0f);
    snprintf(nm, sizeof nm, "%s.x", tag);
    in.x = tu_input(ctx, nm, 3, s3, 1.0f);
    snprintf(nm, sizeof nm, "%s.v", tag);
    in.v = tu_input(ctx, nm, 3, s3, 0.5f);
    in.e = NULL;
    if (A > 0) {
        int64_t se[4] = {b, n, n, A};
        snprintf(nm, sizeof nm, "%s.e", tag);
        in.e = tu_input(ctx, nm, 4, se, 1.0f);
        eqr_rng rng;
        eqr_rng_seed(&rng, 99);
        for (int64_t g = 0; g < b; g++) {
            float q[16];
            for (int64_t i = 0; i < n; i++) q[i] = eqr_rng_uniform(&rng) < 0.5f ? -1.0f : 1.0f;
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < n; j++)
                    for (int a = 0; a < A; a++)
                        in.e->data[((g * n + i) * n + j) * A + a] = q[i] * q[j] * (float)(a + 1);
        }
    }
    return in;
}

/* Equivariance bound of EGNN layers (tu_equiv_bound). depth per layer: the
 * edge MLP's input sum (2F + 1 + A <= 11 terms), two hidden sums of 16, the
 * sum over <= NN - 1 neighbours, the node MLP (F + 16 and 16 terms), the
 * coordinate update and the rotation of x: < 96. amp per layer 8: sums of
 * 16 random-sign terms have magnitude sums ~ sqrt(16) = 4 times their value,
 * times ~2 for the relative gain of the coordinate normalisation. Layers
 * add their depths and amps (a layer's error enters the next, whose own
 * gain is in its amp). A broken equivariance is O(0.1 .. 1) (see the
 * relaxed cases), far above. */
#define EGNN_DEPTH 96
static double egnn_bound(int layers) {
    return tu_equiv_bound((int64_t)EGNN_DEPTH * layers, 8.0 * layers);
}

static double rel_err(const float *a, const float *b, int64_t n) {
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return sqrt(d) / fmax(sqrt(s), 1e-30);
}

/* Forward without gradients; outputs copied into caller buffers. */
static void run(eqr_ctx *ctx, eqr_egnn *L, eqr_tensor *h, eqr_tensor *x, eqr_tensor *v,
                eqr_tensor *e, float *ho, float *xo) {
    int ge = eqr_grad_set_enabled(ctx, 0);
    eqr_tensor *th = NULL, *tx = NULL;
    eqr_status st = eqr_egnn_forward(ctx, L, h, x, v, e, ho ? &th : NULL, &tx);
    if (st != EQR_OK) fail_msg("forward: %s", eqr_error_message(ctx));
    if (ho) memcpy(ho, th->data, (size_t)th->numel * sizeof(float));
    memcpy(xo, tx->data, (size_t)tx->numel * sizeof(float));
    eqr_grad_set_enabled(ctx, ge);
}

/* max over `trials` random rotations (+ translations if translate) of the
 * relative errors of h' (invariance) and x' (equivariance; also of the
 * displacement x' - x, the stricter check). */
static void e3_errors(eqr_ctx *ctx, eqr_egnn *L, const inputs *in, int translate, int trials,
                      double *eh, double *ex, double *ed) {
    const int64_t nx = in->x->numel, nh = in->h->numel * eqr_egnn_out_features(L) /
                                               eqr_egnn_in_features(L);
    float h0[4096], x0[1024], h1[4096], x1[1024], gx0[1024], d0[1024], d1[1024];
    assert_true(nh <= 4096 && nx <= 1024);
    run(ctx, L, in->h, in->x, in->v, in->e, h0, x0);
    eqr_rng rng;
    eqr_rng_seed(&rng, 2024);
    *eh = *ex = *ed = 0;
    for (int k = 0; k < trials; k++) {
        float R[9], t[3] = {0, 0, 0};
        eqr_so3_random(&rng, R, NULL);
        if (translate)
            for (int c = 0; c < 3; c++) t[c] = 2.0f * eqr_rng_normal(&rng);
        eqr_tensor *gx = eqr_e3_transform(ctx, R, t, in->x, 2);
        eqr_tensor *gv = eqr_so3_rotate(ctx, R, in->v, 2);
        assert_non_null(gx);
        assert_non_null(gv);
        run(ctx, L, in->h, gx, gv, in->e, h1, x1);
        for (int64_t i = 0; i < nx / 3; i++) {
            eqr_so3_apply(R, x0 + 3 * i, gx0 + 3 * i);
            float dd[3] = {x0[3 * i] - in->x->data[3 * i], x0[3 * i + 1] - in->x->data[3 * i + 1],
                           x0[3 * i + 2] - in->x->data[3 * i + 2]};
            eqr_so3_apply(R, dd, d0 + 3 * i);
            for (int c = 0; c < 3; c++) {
                gx0[3 * i + c] += t[c];
                d1[3 * i + c] = x1[3 * i + c] - gx->data[3 * i + c];
            }
        }
        *eh = fmax(*eh, rel_err(h1, h0, nh));
        *ex = fmax(*ex, rel_err(x1, gx0, nx));
        *ed = fmax(*ed, rel_err(d1, d0, nx));
        eqr_step_reset(ctx);
    }
}

/* Set the coordinate head to O(1) weights, so that the displacement is not
 * dominated by the velocity term or vanishingly small (the reference init
 * uses gain 0.001). */
static void boost_coord_head(eqr_ctx *ctx, const char *name) {
    char nm[96];
    snprintf(nm, sizeof nm, "%s.coord2.weight", name);
    eqr_tensor *w = eqr_param_find(ctx, nm);
    assert_non_null(w);
    eqr_tensor_normal(w, eqr_ctx_rng(ctx), 0.5f);
}

static void test_e3_equivariance(void **state) {
    (void)state;
    struct {
        int velocity, normalize, tanh, no_residual, A, Fo;
    } cfg[] = {{1, 0, 0, 0, 1, 4}, {0, 0, 0, 0, 0, 4}, {1, 1, 1, 0, 2, 4}, {0, 1, 0, 1, 1, 6}};
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        eqr_ctx *ctx = tu_ctx(10 + c);
        eqr_egnn_opts o = {.hidden = 16, .edge_attr = cfg[c].A, .velocity = cfg[c].velocity,
                           .normalize = cfg[c].normalize, .tanh = cfg[c].tanh,
                           .no_residual = cfg[c].no_residual};
        eqr_egnn *L = eqr_egnn_create(ctx, "g", 4, cfg[c].Fo, &o);
        assert_non_null(L);
        boost_coord_head(ctx, "g");
        inputs in = make_inputs(ctx, "in", B, NN, 4, cfg[c].A);
        double eh, ex, ed;
        e3_errors(ctx, L, &in, 1, 8, &eh, &ex, &ed);
        printf("# config %zu: rel err h' %.2e, x' %.2e, displacement %.2e\n", c, eh, ex, ed);
        assert_true(eh <= egnn_bound(1) && ex <= egnn_bound(1) && ed <= egnn_bound(1));
        /* the displacement is substantial, so the check means something */
        float x0[B * NN * 3];
        run(ctx, L, in.h, in.x, in.v, in.e, NULL, x0);
        double dn = 0;
        for (int i = 0; i < B * NN * 3; i++) dn += fabs(x0[i] - in.x->data[i]);
        assert_true(dn / (B * NN * 3) > 0.05);
        eqr_egnn_destroy(L);
        eqr_ctx_destroy(ctx);
    }
}

/* Two stacked layers (the model shape of the N-body example). */
static void test_stack_equivariance(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(3);
    eqr_egnn_opts o = {.hidden = 8, .edge_attr = 1, .velocity = 1};
    eqr_egnn *L1 = eqr_egnn_create(ctx, "l1", 4, 4, &o), *L2 = eqr_egnn_create(ctx, "l2", 4, 4, &o);
    assert_non_null(L1);
    assert_non_null(L2);
    boost_coord_head(ctx, "l1");
    boost_coord_head(ctx, "l2");
    inputs in = make_inputs(ctx, "in", B, NN, 4, 1);
    eqr_rng rng;
    eqr_rng_seed(&rng, 5);
    float out0[B * NN * 3], R[9], t[3] = {1.5f, -2.0f, 0.7f};
    eqr_grad_set_enabled(ctx, 0);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) eqr_so3_random(&rng, R, NULL);
        eqr_tensor *x = pass ? eqr_e3_transform(ctx, R, t, in.x, 2) : in.x;
        eqr_tensor *v = pass ? eqr_so3_rotate(ctx, R, in.v, 2) : in.v;
        eqr_tensor *h1, *x1, *x2;
        assert_int_equal(eqr_egnn_forward(ctx, L1, in.h, x, v, in.e, &h1, &x1), EQR_OK);
        assert_int_equal(eqr_egnn_forward(ctx, L2, h1, x1, v, in.e, NULL, &x2), EQR_OK);
        if (pass == 0) {
            memcpy(out0, x2->data, sizeof out0);
        } else {
            float want[B * NN * 3];
            for (int i = 0; i < B * NN; i++) {
                eqr_so3_apply(R, out0 + 3 * i, want + 3 * i);
                for (int c = 0; c < 3; c++) want[3 * i + c] += t[c];
            }
            double e = rel_err(x2->data, want, B * NN * 3);
            printf("# two layers: rel err %.2e\n", e);
            assert_true(e <= egnn_bound(2));
        }
    }
    eqr_egnn_destroy(L1);
    eqr_egnn_destroy(L2);
    eqr_ctx_destroy(ctx);
}

static void test_permutation(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(4);
    const int F = 3, A = 1;
    eqr_egnn_opts o = {.hidden = 8, .edge_attr = A, .velocity = 1, .normalize = 1};
    eqr_egnn *L = eqr_egnn_create(ctx, "p", F, F, &o);
    assert_non_null(L);
    boost_coord_head(ctx, "p");
    inputs in = make_inputs(ctx, "in", B, NN, F, A);
    /* a different permutation per graph */
    int perm[B][NN] = {{2, 0, 4, 1, 3}, {4, 3, 2, 1, 0}, {1, 2, 3, 4, 0}};
    int64_t s3[3] = {B, NN, 3}, sh[3] = {B, NN, F}, se[4] = {B, NN, NN, A};
    eqr_tensor *ph = eqr_tensor_zeros(ctx, 3, sh), *px = eqr_tensor_zeros(ctx, 3, s3);
    eqr_tensor *pv = eqr_tensor_zeros(ctx, 3, s3), *pe = eqr_tensor_zeros(ctx, 4, se);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < NN; i++) {
            int pi = perm[b][i]; /* new node i is old node pi */
            for (int f = 0; f < F; f++) ph->data[(b * NN + i) * F + f] = in.h->data[(b * NN + pi) * F + f];
            for (int c = 0; c < 3; c++) {
                px->data[(b * NN + i) * 3 + c] = in.x->data[(b * NN + pi) * 3 + c];
                pv->data[(b * NN + i) * 3 + c] = in.v->data[(b * NN + pi) * 3 + c];
            }
            for (int j = 0; j < NN; j++)
                pe->data[(b * NN + i) * NN + j] = in.e->data[(b * NN + pi) * NN + perm[b][j]];
        }
    float h0[B * NN * 3], x0[B * NN * 3], h1[B * NN * 3], x1[B * NN * 3];
    float hw[B * NN * 3], xw[B * NN * 3];
    run(ctx, L, in.h, in.x, in.v, in.e, h0, x0);
    run(ctx, L, ph, px, pv, pe, h1, x1);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < NN; i++)
            for (int c = 0; c < 3; c++) {
                hw[(b * NN + i) * 3 + c] = h0[(b * NN + perm[b][i]) * 3 + c];
                xw[(b * NN + i) * 3 + c] = x0[(b * NN + perm[b][i]) * 3 + c];
            }
    double eh = rel_err(h1, hw, B * NN * 3), ex = rel_err(x1, xw, B * NN * 3);
    printf("# permutation: rel err h' %.2e, x' %.2e\n", eh, ex);
    /* permuted nodes: the same sums in another order, no rotation */
    assert_true(eh <= egnn_bound(1) && ex <= egnn_bound(1));
    /* and the graphs of a batch do not interact: graph 0 alone gives the same */
    eqr_tensor *h0v = eqr_slice(ctx, in.h, 0, 0, 1), *x0v = eqr_slice(ctx, in.x, 0, 0, 1);
    eqr_tensor *v0v = eqr_slice(ctx, in.v, 0, 0, 1), *e0v = eqr_slice(ctx, in.e, 0, 0, 1);
    float hs[NN * 3], xs[NN * 3];
    run(ctx, L, h0v, x0v, v0v, e0v, hs, xs);
    /* alone, a graph's sums may be blocked differently: 2 amp gamma_depth */
    const double eb = 2 * 8.0 * tu_gamma(EGNN_DEPTH);
    assert_true(rel_err(xs, x0, NN * 3) <= eb && rel_err(hs, h0, NN * 3) <= eb);
    eqr_egnn_destroy(L);
    eqr_ctx_destroy(ctx);
}

/* ---- gradients ---- */

typedef struct gc_user {
    eqr_egnn *L;
    int has_e;
} gc_user;

/* [h' | x'] concatenated on the feature axis. */
static eqr_tensor *gc_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    gc_user *u = user;
    eqr_tensor *ho, *xo;
    if (eqr_egnn_forward(ctx, u->L, in[0], in[1], in[2], u->has_e ? in[3] : NULL, &ho, &xo))
        return NULL;
    eqr_tensor *parts[2] = {ho, xo};
    return eqr_concat(ctx, parts, 2, 2);
}

static void run_gradcheck(uint64_t seed, const eqr_egnn_opts *o, int relax) {
    eqr_ctx *ctx = tu_ctx(seed);
    const int F = 2;
    inputs in = make_inputs(ctx, "in", 2, 3, F, o->edge_attr);
    /* keep nodes apart: the normalisation has a kink at coincident nodes */
    for (int i = 0; i < 18; i++) in.x->data[i] *= 1.5f;
    eqr_egnn *L = eqr_egnn_create(ctx, "gc", F, F, o);
    assert_non_null(L);
    boost_coord_head(ctx, "gc");
    eqr_relax *r = NULL;
    if (relax) {
        eqr_relax_opts ro = {.theta = 0.7f, .init = EQR_RELAX_INIT_NORMAL, .init_std = 0.5f};
        r = eqr_relax_create(ctx, "rx", &ro);
        assert_non_null(r);
        assert_non_null(eqr_relax_egnn(ctx, r, "gc.rel", L, NULL));
    }
    eqr_tensor *all[64];
    int n = 0;
    all[n++] = in.h;
    all[n++] = in.x;
    all[n++] = in.v;
    all[n++] = in.e ? in.e : in.h; /* placeholder slot when there is no e */
    for (int i = 0; i < eqr_param_num_tensors(ctx) && n < 64; i++) {
        eqr_tensor *p = eqr_param_at(ctx, i);
        if (p == in.h || p == in.x || p == in.v || p == in.e) continue;
        all[n++] = p;
    }
    gc_user u = {L, o->edge_attr > 0};
    tu_gradcheck(ctx, gc_fn, all, n, &u, 1e-2, 256 /* edge and node MLPs, sums over the neighbours, the normalisation */);
    if (relax) {
        /* W_r received a gradient */
        eqr_tensor *wr = eqr_rlayer_wr((eqr_rlayer *)eqr_egnn_coord_term(L));
        double g = 0;
        for (int64_t i = 0; i < wr->numel; i++) g += fabs(wr->grad[i]);
        assert_true(g > 0);
    }
    eqr_relax_destroy(r);
    eqr_egnn_destroy(L);
    eqr_ctx_destroy(ctx);
}

static void test_gradcheck(void **state) {
    (void)state;
    eqr_egnn_opts plain = {.hidden = 3, .edge_attr = 1, .velocity = 1};
    run_gradcheck(21, &plain, 0);
    eqr_egnn_opts bounded = {.hidden = 3, .edge_attr = 0, .velocity = 0, .normalize = 1,
                             .tanh = 1, .coord_range = 2.0f, .coord_scale = 0.3f};
    run_gradcheck(22, &bounded, 0);
    eqr_egnn_opts rel = {.hidden = 3, .edge_attr = 1, .velocity = 1, .normalize = 1};
    run_gradcheck(23, &rel, 1);
}

/* ---- relaxation ---- */

/* x' of the relaxed model at rotated inputs, rotated back:
 * y(t) = R(t)^T f_x(R(t) x, R(t) v) with R(t) = exp(t L_a). */
static void rotated_back(eqr_ctx *ctx, eqr_egnn *L, const inputs *in, int a, float t, float *y) {
    float w[3] = {0, 0, 0}, R[9], Rt[9], x1[B * NN * 3];
    w[a] = t;
    eqr_so3_exp(w, R);
    eqr_so3_transpose(R, Rt);
    eqr_tensor *gx = eqr_so3_rotate(ctx, R, in->x, 2), *gv = eqr_so3_rotate(ctx, R, in->v, 2);
    run(ctx, L, in->h, gx, gv, in->e, NULL, x1);
    for (int i = 0; i < B * NN; i++) eqr_so3_apply(Rt, x1 + 3 * i, y + 3 * i);
    eqr_step_reset(ctx);
}

static void test_relaxed(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(6);
    eqr_egnn_opts o = {.hidden = 8, .edge_attr = 1, .velocity = 1};
    eqr_egnn *L = eqr_egnn_create(ctx, "r", 4, 4, &o);
    assert_non_null(L);
    boost_coord_head(ctx, "r");
    eqr_relax_opts ro = {.theta = 0.0f, .init = EQR_RELAX_INIT_NORMAL, .init_std = 0.5f};
    eqr_relax *rx = eqr_relax_create(ctx, "relax", &ro);
    assert_non_null(rx);
    eqr_rlayer *rl = eqr_relax_egnn(ctx, rx, "r.rel", L, NULL);
    assert_non_null(rl);
    assert_ptr_equal((eqr_rlayer *)eqr_egnn_coord_term(L), rl);
    eqr_tensor *wr = eqr_rlayer_wr(rl);
    assert_int_equal(wr->ndim, 2);
    assert_int_equal(wr->shape[0], 3);
    assert_int_equal(wr->shape[1], 6);
    /* relaxing twice is refused */
    assert_null(eqr_relax_egnn(ctx, rx, "r.rel2", L, NULL));
    tu_assert_error(ctx, EQR_ERR_STATE, "already relaxed");
    inputs in = make_inputs(ctx, "in", B, NN, 4, 1);
    double eh, ex, ed;

    /* theta = 0: exactly equivariant whatever W_r is */
    e3_errors(ctx, L, &in, 1, 6, &eh, &ex, &ed);
    printf("# relaxed, theta 0: rel err x' %.2e, displacement %.2e\n", ex, ed);
    assert_true(eh <= egnn_bound(1) && ex <= egnn_bound(1) && ed <= egnn_bound(1));

    /* theta > 0, random W_r: not rotation equivariant, still translation
     * equivariant (u is centred) */
    eqr_relax_set_theta(rx, 0.5f);
    e3_errors(ctx, L, &in, 1, 6, &eh, &ex, &ed);
    printf("# relaxed, theta 0.5: rel err x' %.2e, displacement %.2e\n", ex, ed);
    assert_true(ed > 1e-2);
    assert_true(eh <= egnn_bound(1)); /* h' does not see the relaxed term */
    {
        float x0[B * NN * 3], x1[B * NN * 3], t[3] = {3.0f, -1.0f, 2.0f};
        run(ctx, L, in.h, in.x, in.v, in.e, NULL, x0);
        eqr_tensor *tx = eqr_e3_transform(ctx, NULL, t, in.x, 2);
        run(ctx, L, in.h, tx, in.v, in.e, NULL, x1);
        for (int i = 0; i < B * NN * 3; i++) x0[i] += t[i % 3];
        assert_true(rel_err(x1, x0, B * NN * 3) <= egnn_bound(1)); /* x + t rounds like R x */
        eqr_step_reset(ctx);
    }
    /* the defect is positive for a random W_r */
    eqr_tensor *d = eqr_relax_defect(ctx, rx);
    assert_non_null(d);
    assert_true(d->data[0] > 1e-2);
    eqr_step_reset(ctx);

    /* closed-form Lie derivative == finite-difference measurement:
     * d/dt R(t)^T f_x(R(t) .) at 0 = theta (W_r drho_in(L_a) - L_a W_r) u_i */
    {
        eqr_so3_rep tin = {0, 2}, tout = {0, 1};
        float gin[3 * 36], gout[27], ld[3 * 18];
        eqr_lie_rep lin, lout;
        assert_int_equal(eqr_so3_rep_lie(ctx, &tin, gin, &lin), EQR_OK);
        assert_int_equal(eqr_so3_rep_lie(ctx, &tout, gout, &lout), EQR_OK);
        assert_int_equal(eqr_lie_derivative(ctx, wr->data, &lin, &lout, ld), EQR_OK);
        for (int a = 0; a < 3; a++) {
            float yp[B * NN * 3], ym[B * NN * 3], fd[B * NN * 3];
            double want[B * NN * 3];
            const float t = 1e-2f;
            rotated_back(ctx, L, &in, a, t, yp);
            rotated_back(ctx, L, &in, a, -t, ym);
            for (int i = 0; i < B * NN * 3; i++) fd[i] = (yp[i] - ym[i]) / (2 * t);
            for (int b = 0; b < B; b++) {
                double cen[3] = {0, 0, 0};
                for (int i = 0; i < NN; i++)
                    for (int c = 0; c < 3; c++) cen[c] += in.x->data[(b * NN + i) * 3 + c] / NN;
                for (int i = 0; i < NN; i++) {
                    double u[6];
                    for (int c = 0; c < 3; c++) {
                        u[c] = in.x->data[(b * NN + i) * 3 + c] - cen[c];
                        u[3 + c] = in.v->data[(b * NN + i) * 3 + c];
                    }
                    for (int r = 0; r < 3; r++) {
                        double s = 0;
                        for (int c = 0; c < 6; c++) s += ld[a * 18 + r * 6 + c] * u[c];
                        want[(b * NN + i) * 3 + r] = 0.5 * s;
                    }
                }
            }
            /* a finite-difference check at t = 1e-2 through the whole EGNN:
             * the tolerance is the O(t^2) truncation of its nonlinear
             * rotation dependence (plus u |y| / 2t ~ 3e-6 |y| of rounding),
             * not a rounding bound */
            tu_assert_close("lie derivative", fd, want, B * NN * 3, 2e-3, 2e-2);
        }
    }

    /* an equivariant W_r = [a I, b I]: defect 0 and exact at theta > 0 */
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 6; c++) wr->data[r * 6 + c] = c == r ? 0.8f : c == r + 3 ? -0.6f : 0.0f;
    d = eqr_relax_defect(ctx, rx);
    assert_non_null(d);
    assert_true(fabsf(d->data[0]) < 1e-10f);
    eqr_step_reset(ctx);
    e3_errors(ctx, L, &in, 1, 6, &eh, &ex, &ed);
    printf("# relaxed, equivariant W_r, theta 0.5: rel err displacement %.2e\n", ed);
    assert_true(ex <= egnn_bound(1) && ed <= egnn_bound(1));

    /* random again, then project: exactly equivariant, W_r and theta zero */
    eqr_tensor_normal(wr, eqr_ctx_rng(ctx), 0.5f);
    e3_errors(ctx, L, &in, 1, 2, &eh, &ex, &ed);
    assert_true(ed > 1e-2);
    assert_int_equal(eqr_relax_project(ctx, rx, EQR_PROJECT_DROP), EQR_OK);
    e3_errors(ctx, L, &in, 1, 6, &eh, &ex, &ed);
    printf("# projected: rel err x' %.2e, displacement %.2e\n", ex, ed);
    assert_true(eh <= egnn_bound(1) && ex <= egnn_bound(1) && ed <= egnn_bound(1));
    for (int64_t i = 0; i < wr->numel; i++) assert_true(wr->data[i] == 0.0f);
    assert_true(eqr_relax_theta(rx)->data[0] == 0.0f);
    /* fold acts as drop for this term */
    eqr_tensor_normal(wr, eqr_ctx_rng(ctx), 0.5f);
    eqr_relax_set_theta(rx, 0.3f);
    assert_int_equal(eqr_relax_project(ctx, rx, EQR_PROJECT_FOLD), EQR_OK);
    e3_errors(ctx, L, &in, 1, 3, &eh, &ex, &ed);
    assert_true(ex <= egnn_bound(1) && ed <= egnn_bound(1));

    eqr_relax_destroy(rx);
    eqr_egnn_destroy(L);
    eqr_ctx_destroy(ctx);
}

/* Without velocities the relaxed input is x_i - c alone: W_r [3, 3]. */
static void test_relaxed_no_velocity(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(7);
    eqr_egnn_opts o = {.hidden = 8};
    eqr_egnn *L = eqr_egnn_create(ctx, "nv", 4, 4, &o);
    assert_non_null(L);
    boost_coord_head(ctx, "nv");
    eqr_relax_opts ro = {.theta = 0.4f, .init = EQR_RELAX_INIT_NORMAL, .init_std = 0.5f};
    eqr_relax *rx = eqr_relax_create(ctx, "relax", &ro);
    eqr_rlayer *rl = eqr_relax_egnn(ctx, rx, "nv.rel", L, NULL);
    assert_non_null(rl);
    assert_int_equal(eqr_rlayer_wr(rl)->shape[1], 3);
    inputs in = make_inputs(ctx, "in", B, NN, 4, 0);
    double eh, ex, ed;
    e3_errors(ctx, L, &in, 1, 3, &eh, &ex, &ed);
    assert_true(ed > 1e-2);
    assert_int_equal(eqr_relax_project(ctx, rx, EQR_PROJECT_DROP), EQR_OK);
    e3_errors(ctx, L, &in, 1, 3, &eh, &ex, &ed);
    printf("# no velocity, projected: rel err x' %.2e, displacement %.2e\n", ex, ed);
    assert_true(ex <= egnn_bound(1) && ed <= egnn_bound(1));
    /* v may be NULL here */
    float x0[B * NN * 3];
    run(ctx, L, in.h, in.x, NULL, NULL, NULL, x0);
    eqr_relax_destroy(rx);
    eqr_egnn_destroy(L);
    eqr_ctx_destroy(ctx);
}

/* ---- errors ---- */

static void test_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(8);
    eqr_egnn_opts o = {.hidden = 4, .edge_attr = 1, .velocity = 1};
    assert_null(eqr_egnn_create(ctx, "a", 3, 5, &o));
    tu_assert_error(ctx, EQR_ERR_ARG, "residual");
    assert_null(eqr_egnn_create(ctx, "a", 0, 3, &o));
    tu_assert_error(ctx, EQR_ERR_ARG, "features >= 1");
    eqr_egnn_opts bad = {.hidden = -1};
    assert_null(eqr_egnn_create(ctx, "a", 3, 3, &bad));
    tu_assert_error(ctx, EQR_ERR_ARG, "hidden -1");
    assert_null(eqr_egnn_create(ctx, "", 3, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "name");
    int before = eqr_param_num_tensors(ctx);
    assert_int_equal(before, 0); /* nothing registered by the failures */
    eqr_egnn *L = eqr_egnn_create(ctx, "a", 3, 3, &o);
    assert_non_null(L);
    assert_int_equal(eqr_egnn_hidden(L), 4);
    int after = eqr_param_num_tensors(ctx);
    assert_null(eqr_egnn_create(ctx, "a", 3, 3, &o));
    tu_assert_error(ctx, EQR_ERR_ARG, "already exists");
    assert_int_equal(eqr_param_num_tensors(ctx), after);

    inputs in = make_inputs(ctx, "in", 2, 4, 3, 1);
    eqr_tensor *ho = (eqr_tensor *)1, *xo = (eqr_tensor *)1;
    int64_t s2[3] = {2, 4, 2}, s1[3] = {2, 1, 3}, sh1[3] = {2, 1, 3}, sh[3] = {2, 4, 4};
    eqr_tensor *x2 = eqr_tensor_zeros(ctx, 3, s2);
    assert_int_equal(eqr_egnn_forward(ctx, L, in.h, x2, in.v, in.e, &ho, &xo), EQR_ERR_SHAPE);
    assert_null(ho);
    assert_null(xo);
    tu_assert_error(ctx, EQR_ERR_SHAPE, "x must be [2, 4, 3]");
    assert_int_equal(eqr_egnn_forward(ctx, L, in.h, in.x, NULL, in.e, &ho, &xo), EQR_ERR_SHAPE);
    tu_assert_error(ctx, EQR_ERR_SHAPE, "velocities");
    assert_int_equal(eqr_egnn_forward(ctx, L, in.h, in.x, in.v, NULL, &ho, &xo), EQR_ERR_SHAPE);
    tu_assert_error(ctx, EQR_ERR_SHAPE, "edge_attr");
    eqr_tensor *hw = eqr_tensor_zeros(ctx, 3, sh);
    assert_int_equal(eqr_egnn_forward(ctx, L, hw, in.x, in.v, in.e, &ho, &xo), EQR_ERR_SHAPE);
    tu_assert_error(ctx, EQR_ERR_SHAPE, "h must be [B, n, 3]");
    eqr_tensor *h1 = eqr_tensor_zeros(ctx, 3, sh1), *x1 = eqr_tensor_zeros(ctx, 3, s1);
    assert_int_equal(eqr_egnn_forward(ctx, L, h1, x1, x1, NULL, &ho, &xo), EQR_ERR_SHAPE);
    tu_assert_error(ctx, EQR_ERR_SHAPE, "n >= 2");
    assert_int_equal(eqr_egnn_forward(ctx, L, NULL, in.x, in.v, in.e, &ho, &xo), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");
    eqr_egnn_destroy(L);
    eqr_egnn_destroy(NULL);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_e3_equivariance),  cmocka_unit_test(test_stack_equivariance),
        cmocka_unit_test(test_permutation),      cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_relaxed),          cmocka_unit_test(test_relaxed_no_velocity),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
