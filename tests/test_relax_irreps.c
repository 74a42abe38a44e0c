/* Relaxed irreps linear layer (eqr_relax_irreps_linear, kind
 * "irreps_linear"): the irreps' so(3) generators, the Lie-derivative and
 * parity defect (zero on equivariant maps, positive otherwise, against a
 * double reference), equivariance at theta = 0 and its loss at theta != 0,
 * fold = the closest equivariant map (against a brute-force projection onto
 * the kernel of the defect), drop, gradients, errors. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *IN = "2x0e+1x1o+1x1e+2x2e+1x0o";
static const char *OUT = "1x0e+2x1o+1x2e+1x1e";
enum { NB = 5, MAXD = 32 };

typedef struct fixture {
    eqr_ctx *ctx;
    eqr_irreps in, out;
    int din, dout;
    eqr_relax *r;
    eqr_irreps_linear *lin;
    eqr_rlayer *rl;
    eqr_tensor *x, *w, *wr;
} fixture;

static void setup(fixture *f, uint64_t seed, const eqr_relax_opts *o) {
    f->ctx = tu_ctx(seed);
    assert_int_equal(eqr_irreps_parse(f->ctx, IN, &f->in), EQR_OK);
    assert_int_equal(eqr_irreps_parse(f->ctx, OUT, &f->out), EQR_OK);
    f->din = (int)eqr_irreps_dim(&f->in);
    f->dout = (int)eqr_irreps_dim(&f->out);
    f->r = eqr_relax_create(f->ctx, "relax", o);
    assert_non_null(f->r);
    f->lin = eqr_irreps_linear_create(f->ctx, "lin", &f->in, &f->out);
    assert_non_null(f->lin);
    f->rl = eqr_relax_irreps_linear(f->ctx, f->r, "lin", f->lin, NULL);
    if (!f->rl) fail_msg("relax failed: %s", eqr_error_message(f->ctx));
    f->w = eqr_irreps_linear_weight(f->lin);
    f->wr = eqr_rlayer_wr(f->rl);
    assert_ptr_equal(eqr_param_find(f->ctx, "lin.wr"), f->wr);
    assert_int_equal(f->wr->shape[0], f->dout);
    assert_int_equal(f->wr->shape[1], f->din);
    int64_t s[2] = {NB, f->din};
    f->x = tu_input(f->ctx, "x", 2, s, 1.0f);
}

static void teardown(fixture *f) {
    eqr_relax_destroy(f->r);
    eqr_irreps_linear_destroy(f->lin);
    eqr_ctx_destroy(f->ctx);
}

static eqr_relax_opts normal_opts(void) {
    eqr_relax_opts o = {0};
    o.init = EQR_RELAX_INIT_NORMAL;
    o.init_std = 0.5f;
    return o;
}

/* The dense matrix [dout][din] of the relaxed layer's forward (column c is
 * the image of the basis vector e_c), without gradients. */
static void dense_of(fixture *f, double *M) {
    int ge = eqr_grad_set_enabled(f->ctx, 0);
    int64_t s[2] = {f->din, f->din};
    eqr_tensor *e = eqr_tensor_zeros(f->ctx, 2, s);
    for (int i = 0; i < f->din; i++) e->data[i * f->din + i] = 1.0f;
    eqr_tensor *y = eqr_rlayer_forward(f->ctx, f->rl, e);
    assert_non_null(y);
    for (int r = 0; r < f->dout; r++)
        for (int c = 0; c < f->din; c++) M[r * f->din + c] = y->data[c * f->dout + r];
    eqr_step_reset(f->ctx);
    eqr_grad_set_enabled(f->ctx, ge);
}

/* Generators in double built here from eqr_o3_generators, independently of
 * eqr_irreps_lie_generators: G [4][d][d], the 4th S/2 (parity signs). */
static void ref_gens(eqr_ctx *ctx, const eqr_irreps *ir, double *G) {
    const int d = (int)eqr_irreps_dim(ir);
    memset(G, 0, sizeof(double) * 4 * (size_t)d * d);
    double J[3 * 81];
    for (int i = 0; i < ir->n; i++) {
        const int l = ir->e[i].l, n = 2 * l + 1;
        assert_int_equal(eqr_o3_generators(ctx, l, J), EQR_OK);
        for (int u = 0; u < ir->e[i].mul; u++) {
            const int o = (int)eqr_irreps_offset(ir, i) + u * n;
            for (int k = 0; k < 3; k++)
                for (int a = 0; a < n; a++)
                    for (int b = 0; b < n; b++) G[(k * d + o + a) * d + o + b] = J[(k * n + a) * n + b];
            for (int a = 0; a < n; a++) G[(3 * d + o + a) * d + o + a] = 0.5 * ir->e[i].p;
        }
    }
}

/* L(W)_k = W Gi_k - Go_k W for W [dout][din] (k = 0..3), and its adjoint
 * L^*(V) = sum_k V Gi_k^T - Go_k^T V. */
static void lie_apply(const double *W, const double *Gi, const double *Go, int di, int dout,
                      double *LW) {
    for (int k = 0; k < 4; k++)
        for (int r = 0; r < dout; r++)
            for (int c = 0; c < di; c++) {
                double s = 0;
                for (int q = 0; q < di; q++) s += W[r * di + q] * Gi[(k * di + q) * di + c];
                for (int q = 0; q < dout; q++) s -= Go[(k * dout + r) * dout + q] * W[q * di + c];
                LW[(k * dout + r) * di + c] = s;
            }
}
static void lie_adjoint(const double *V, const double *Gi, const double *Go, int di, int dout,
                        double *out) {
    memset(out, 0, sizeof(double) * (size_t)dout * di);
    for (int k = 0; k < 4; k++)
        for (int r = 0; r < dout; r++)
            for (int c = 0; c < di; c++) {
                double s = 0;
                for (int q = 0; q < di; q++) s += V[(k * dout + r) * di + q] * Gi[(k * di + c) * di + q];
                for (int q = 0; q < dout; q++) s -= Go[(k * dout + q) * dout + r] * V[(k * dout + q) * di + c];
                out[r * di + c] += s;
            }
}
static double sumsq(const double *v, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += v[i] * v[i];
    return s;
}

/* The equivariant maps are the kernel of L (the connected group through its
 * generators, parity through S). Richardson iteration W <- W - eta L^* L W
 * moves only within range(L^*) = ker(L)^perp and shrinks that component, so
 * it converges to the orthogonal projection of W0 onto ker(L). eta =
 * 1 / (sum_k (|Gi_k| + |Go_k|)^2) with spectral norms l (so(3)) and 1/2
 * (parity) bounds L^* L's largest eigenvalue; its smallest nonzero one is
 * >= 1 (Casimir values L(L+1) >= 2, the parity term 1), so 60 / eta steps
 * reach rounding level. */
static void brute_projection(const double *W0, const double *Gi, const double *Go, int di,
                             int dout, int lmax, double *P) {
    const double eta = 1.0 / (3.0 * (2.0 * lmax) * (2.0 * lmax) + 1.0);
    double *LW = malloc(sizeof(double) * 4 * (size_t)dout * di), *g = malloc(sizeof(double) * (size_t)dout * di);
    assert_non_null(LW);
    assert_non_null(g);
    memcpy(P, W0, sizeof(double) * (size_t)dout * di);
    const int steps = (int)(60.0 / eta);
    for (int it = 0; it < steps; it++) {
        lie_apply(P, Gi, Go, di, dout, LW);
        lie_adjoint(LW, Gi, Go, di, dout, g);
        for (int i = 0; i < dout * di; i++) P[i] -= eta * g[i];
    }
    lie_apply(P, Gi, Go, di, dout, LW);
    /* double iteration: converged to its own rounding level (1e-10 of |W0|), not a float bound */
    assert_true(sumsq(LW, 4 * (int64_t)dout * di) < 1e-20 * sumsq(W0, (int64_t)dout * di));
    free(LW);
    free(g);
}

static void test_generators(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(40);
    eqr_irreps ir;
    assert_int_equal(eqr_irreps_parse(ctx, "1x0e+1x1o+1x2e+1x3o", &ir), EQR_OK);
    const int d = (int)eqr_irreps_dim(&ir);
    float *G = malloc(sizeof(float) * 3 * (size_t)d * d);
    double *Gd = malloc(sizeof(double) * 4 * (size_t)d * d);
    assert_int_equal(eqr_irreps_lie_generators(ctx, &ir, G), EQR_OK);
    ref_gens(ctx, &ir, Gd);
    for (int i = 0; i < 3 * d * d; i++) assert_true(G[i] == (float)Gd[i]);
    /* the 1o block is so3.h's L_k, (L_k)_ij = -eps_kij */
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
                int e = (k == i || i == j || j == k) ? 0 : ((k + 1) % 3 == i ? 1 : -1);
                assert_true(G[(k * d + 1 + i) * d + 1 + j] == (float)-e);
            }
    /* they generate the action: (D(e^{tL_k}) - D(e^{-tL_k})) x / 2t -> G_k x */
    float x[16], yp[16], ym[16];
    tu_fill_uniform(x, d, 3);
    const double t = 1e-3;
    for (int k = 0; k < 3; k++) {
        double w[3] = {0, 0, 0}, R[9];
        w[k] = t;
        assert_int_equal(eqr_o3_wigner_d_w(ctx, 1, w, R), EQR_OK);
        assert_int_equal(eqr_irreps_act(ctx, &ir, R, 1, x, yp, 1), EQR_OK);
        w[k] = -t;
        assert_int_equal(eqr_o3_wigner_d_w(ctx, 1, w, R), EQR_OK);
        assert_int_equal(eqr_irreps_act(ctx, &ir, R, 1, x, ym, 1), EQR_OK);
        /* |G|^3 |x| for the truncation bound */
        double a1[16], a2[16], a3[16];
        for (int i = 0; i < d; i++) {
            a1[i] = 0;
            for (int j = 0; j < d; j++) a1[i] += fabs(Gd[(k * d + i) * d + j] * x[j]);
        }
        for (int i = 0; i < d; i++) {
            a2[i] = 0;
            for (int j = 0; j < d; j++) a2[i] += fabs(Gd[(k * d + i) * d + j]) * a1[j];
        }
        for (int i = 0; i < d; i++) {
            a3[i] = 0;
            for (int j = 0; j < d; j++) a3[i] += fabs(Gd[(k * d + i) * d + j]) * a2[j];
        }
        for (int i = 0; i < d; i++) {
            double gx = 0;
            for (int j = 0; j < d; j++) gx += Gd[(k * d + i) * d + j] * x[j];
            /* (D(t) - D(-t)) / 2t - G = sum_k t^2k G^(2k+1) / (2k+1)!, so the
             * truncation is <= (t^2/6)(1 + t^2 |G|^2) |G|^3 |x| (row sums of |G| < 10);
             * the act sums in double and rounds y once: u (|yp| + |ym|) / 2t
             * (plus double rounding of D, 1e-12 of |x| at most) */
            const double tol = t * t / 6 * (1 + 100 * t * t) * a3[i] +
                               TU_U * (fabs(yp[i]) + fabs(ym[i])) / (2 * t) + 1e-12 * a1[i] + 1e-12;
            if (fabs((yp[i] - ym[i]) / (2 * t) - gx) > tol)
                fail_msg("generator %d row %d: %g vs %g", k, i, (yp[i] - ym[i]) / (2 * t), gx);
        }
    }
    ir.e[0].p = 2;
    assert_int_equal(eqr_irreps_lie_generators(ctx, &ir, G), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "irreps entry 0");
    free(G);
    free(Gd);
    eqr_ctx_destroy(ctx);
}

/* W_r := the dense matrix of another irreps linear map in -> out. */
static void set_equivariant(fixture *f, uint64_t seed) {
    eqr_irreps_linear *e = eqr_irreps_linear_create(f->ctx, seed == 1 ? "e1" : "e2", &f->in, &f->out);
    assert_non_null(e);
    int64_t s[2] = {f->din, f->din};
    int ge = eqr_grad_set_enabled(f->ctx, 0);
    eqr_tensor *id = eqr_tensor_zeros(f->ctx, 2, s);
    for (int i = 0; i < f->din; i++) id->data[i * f->din + i] = 1.0f;
    eqr_tensor *y = eqr_irreps_linear_forward(f->ctx, e, id);
    assert_non_null(y);
    for (int r = 0; r < f->dout; r++)
        for (int c = 0; c < f->din; c++) f->wr->data[r * f->din + c] = y->data[c * f->dout + r];
    eqr_step_reset(f->ctx);
    eqr_grad_set_enabled(f->ctx, ge);
    eqr_irreps_linear_destroy(e);
}

static void test_defect(void **state) {
    (void)state;
    eqr_relax_opts o = normal_opts();
    o.lambda_defect = 1.0f;
    fixture f;
    setup(&f, 41, &o);
    eqr_ctx *ctx = f.ctx;
    const int di = f.din, dout = f.dout;
    double *Gi = malloc(sizeof(double) * 4 * di * di), *Go = malloc(sizeof(double) * 4 * dout * dout);
    double *W = malloc(sizeof(double) * dout * di), *LW = malloc(sizeof(double) * 4 * dout * di);
    ref_gens(ctx, &f.in, Gi);
    ref_gens(ctx, &f.out, Go);
    /* random W_r: positive, equal to the double reference */
    for (int i = 0; i < dout * di; i++) W[i] = f.wr->data[i];
    lie_apply(W, Gi, Go, di, dout, LW);
    double ref = sumsq(LW, 4 * (int64_t)dout * di);
    /* magnitude of each LD entry (|W||Gi| + |Go||W|), then for the sum of
     * squares S = sum v^2 of values within gamma_k m_v: mag = S + 2 sum |v|
     * m_v + gamma_k sum m_v^2 (the squares' first- and second-order errors;
     * eqr_sumsq sums them in double and rounds once) */
    double mag = ref;
    {
        double *AW = malloc(sizeof(double) * dout * di), *AGi = malloc(sizeof(double) * 4 * di * di),
               *AGo = malloc(sizeof(double) * 4 * dout * dout), *M = malloc(sizeof(double) * 4 * dout * di);
        assert_true(AW && AGi && AGo && M);
        for (int i = 0; i < dout * di; i++) AW[i] = fabs(W[i]);
        for (int i = 0; i < 4 * di * di; i++) AGi[i] = fabs(Gi[i]);
        for (int i = 0; i < 4 * dout * dout; i++) AGo[i] = -fabs(Go[i]); /* lie_apply subtracts */
        lie_apply(AW, AGi, AGo, di, dout, M);
        for (int i = 0; i < 4 * dout * di; i++)
            mag += 2 * fabs(LW[i]) * M[i] + tu_gamma(di + dout + 1) * M[i] * M[i];
        free(AW), free(AGi), free(AGo), free(M);
    }
    /* per entry: the float generator values (rounded once) times W_r, <= di +
     * dout products summed (k = di + dout + 1); the sum of squares rounded,
     * the 4 generators added, one for the double sum: n below; one dropped
     * square (~S / count) stays far above it */
    const int64_t nld = di + dout + 1 + 6;
    assert_true(tu_gamma(nld) * mag < 0.5 * ref / (4.0 * dout * di));
    eqr_tensor *ld = eqr_relax_defect(ctx, f.r);
    assert_non_null(ld);
    assert_true(ref > 1.0);
    tu_assert_close_bound("weight-form defect", ld->data, &ref, &mag, 1, nld, 1);
    eqr_rlayer_stats st;
    assert_int_equal(eqr_rlayer_get_stats(ctx, f.rl, &st), EQR_OK);
    float sd = (float)st.defect;
    tu_assert_close_bound("stats defect", &sd, &ref, &mag, 1, nld, 1); /* the same sum */
    eqr_step_reset(ctx);
    /* an irreps linear map: exactly 0, in both forms (every entry of
     * W G - G W is one product c J computed twice the same way) */
    set_equivariant(&f, 1);
    ld = eqr_relax_defect(ctx, f.r);
    assert_non_null(ld);
    assert_true(ld->data[0] == 0.0f);
    eqr_step_reset(ctx);
    o.lie_form = EQR_LIE_ACTIVATION;
    fixture g;
    setup(&g, 42, &o);
    set_equivariant(&g, 2);
    assert_non_null(eqr_rlayer_forward(g.ctx, g.rl, g.x));
    ld = eqr_relax_defect(g.ctx, g.r);
    assert_non_null(ld);
    assert_true(ld->data[0] == 0.0f);
    eqr_step_reset(g.ctx);
    /* a parity-breaking map, 1o -> 1e as the identity: invisible to the
     * Lie derivative, caught by the parity term: exactly ||I_3||^2 = 3 */
    memset(g.wr->data, 0, sizeof(float) * (size_t)g.wr->numel);
    for (int m = 0; m < 3; m++) g.wr->data[(12 + m) * di + 2 + m] = 1.0f; /* out 1e at 12, in 1o at 2 */
    assert_non_null(eqr_rlayer_forward(g.ctx, g.rl, g.x));
    ld = eqr_relax_defect(g.ctx, g.r);
    double xs = 0; /* activation form: ||(W S - S W)/2 x||^2 = sum over rows of |x_1o|^2 */
    for (int n = 0; n < NB; n++)
        for (int m = 0; m < 3; m++) xs += pow(g.x->data[n * di + 2 + m], 2);
    /* LD entries are exact (1 * -1/2 - 1/2 * 1, the so(3) terms c g - g c =
     * 0) and so is LD x (one nonzero term per row): only the sum of squares
     * (in double, rounded once) and the 4 generator adds round */
    tu_assert_close_bound("parity defect", ld->data, &xs, &xs, 1, 6, 1);
    eqr_step_reset(g.ctx);
    teardown(&g);
    /* the weight form of the same map */
    memset(f.wr->data, 0, sizeof(float) * (size_t)f.wr->numel);
    for (int m = 0; m < 3; m++) f.wr->data[(12 + m) * di + 2 + m] = 1.0f;
    ld = eqr_relax_defect(ctx, f.r);
    assert_true(ld->data[0] == 3.0f);
    eqr_step_reset(ctx);
    free(Gi), free(Go), free(W), free(LW);
    teardown(&f);
}

static eqr_tensor *f_model(eqr_ctx *ctx, eqr_tensor *x, eqr_tensor *pos, void *user) {
    (void)pos;
    return eqr_rlayer_forward(ctx, user, x);
}

static double equiv(fixture *f) {
    double rel = -1;
    assert_int_equal(eqr_irreps_equivariance(f->ctx, f_model, f->rl, &f->in, &f->out, f->x, NULL, 8,
                                             EQR_EQ_PARITY, &rel),
                     EQR_OK);
    return rel;
}

static void test_forward_and_projection(void **state) {
    (void)state;
    eqr_relax_opts o = normal_opts();
    fixture f;
    setup(&f, 43, &o);
    eqr_ctx *ctx = f.ctx;
    const int di = f.din, dout = f.dout;
    /* theta = 0: the layer alone, equivariant. tu_equiv_bound (its gamma_3
     * rotation terms bound the act, rounded once): depth 4 (sums of <= 2
     * terms per path, the fan-in scale, one spare), amp 2 ~ sqrt(2) for
     * 2-term random-sign sums; the same after the fold below */
    const double eq_tol = tu_equiv_bound(4, 2.0);
    assert_true(equiv(&f) <= eq_tol);
    const float theta = 0.7f;
    eqr_relax_set_theta(f.r, theta);
    /* the forward is the layer plus theta W_r x */
    double *D0 = malloc(sizeof(double) * dout * di), *D1 = malloc(sizeof(double) * dout * di);
    double *W = malloc(sizeof(double) * dout * di), *P = malloc(sizeof(double) * dout * di);
    double *Gi = malloc(sizeof(double) * 4 * di * di), *Go = malloc(sizeof(double) * 4 * dout * dout);
    eqr_relax_set_theta(f.r, 0);
    dense_of(&f, D0);
    eqr_relax_set_theta(f.r, theta);
    dense_of(&f, D1);
    for (int i = 0; i < dout * di; i++) {
        /* both sides: the layer's entry rounded once, then the add of theta
         * W_r (its product and the sum rounded): 3 u of the parts */
        const double want = D0[i] + (double)theta * f.wr->data[i];
        if (fabs(D1[i] - want) > 3 * TU_U * (fabs(D0[i]) + fabs(theta * f.wr->data[i])) + 1e-30)
            fail_msg("relaxed forward entry %d: %g vs %g", i, D1[i], want);
    }
    assert_true(equiv(&f) > 1e-2); /* a threshold: broken equivariance is O(1) */
    /* fold: the dense map grows by theta P(W_r), P the brute-force projection */
    for (int i = 0; i < dout * di; i++) W[i] = f.wr->data[i];
    ref_gens(ctx, &f.in, Gi);
    ref_gens(ctx, &f.out, Go);
    brute_projection(W, Gi, Go, di, dout, 2, P);
    int64_t total = eqr_param_num_scalars(ctx);
    float *saved = malloc(sizeof(float) * total);
    memcpy(saved, eqr_param_data_block(ctx), sizeof(float) * total);
    assert_int_equal(eqr_relax_project(ctx, f.r, EQR_PROJECT_FOLD), EQR_OK);
    assert_true(eqr_relax_theta(f.r)->data[0] == 0.0f);
    for (int64_t i = 0; i < f.wr->numel; i++) assert_true(f.wr->data[i] == 0.0f);
    dense_of(&f, D1);
    double dfold = 0, ddrop = 0;
    for (int i = 0; i < dout * di; i++) {
        const double want = D0[i] + (double)theta * P[i];
        /* the folded weight rounded once, the forward's scale c_b once, and
         * D0 once: 3 u of the parts (P converged to rounding level) */
        if (fabs(D1[i] - want) > 3 * TU_U * (fabs(D0[i]) + fabs(D1[i])) + 1e-12)
            fail_msg("folded map entry %d: %.9g vs brute force %.9g", i, D1[i], want);
        dfold += pow(D1[i] - (D0[i] + theta * W[i]), 2);
        ddrop += pow(theta * W[i], 2);
    }
    /* exactly equivariant afterwards, and closer to the relaxed map than drop */
    assert_true(equiv(&f) <= eq_tol);
    assert_true(dfold < ddrop);
    /* the kernel is not trivial here: the fold moved the weights */
    assert_true(ddrop - dfold > 1e-2 * ddrop);
    /* drop: the layer as it was */
    memcpy(eqr_param_data_block(ctx), saved, sizeof(float) * total);
    assert_int_equal(eqr_relax_project(ctx, f.r, EQR_PROJECT_DROP), EQR_OK);
    dense_of(&f, D1);
    for (int i = 0; i < dout * di; i++) assert_true(D1[i] == D0[i]);
    free(saved), free(D0), free(D1), free(W), free(P), free(Gi), free(Go);
    teardown(&f);
}

static eqr_tensor *defect_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)in;
    return eqr_relax_defect(ctx, (eqr_relax *)user);
}
static eqr_tensor *pen_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    fixture *f = user;
    (void)in;
    (void)eqr_rlayer_forward(ctx, f->rl, f->x);
    return eqr_sum_all(ctx, eqr_relax_penalty(ctx, f->r));
}

static void test_gradients(void **state) {
    (void)state;
    eqr_relax_opts o = normal_opts();
    fixture f;
    setup(&f, 44, &o);
    eqr_ctx *ctx = f.ctx;
    eqr_relax_set_theta(f.r, 0.6f);
    eqr_tensor *in[3] = {f.x, f.w, f.wr};
    tu_gradcheck(ctx, tu_rlayer_fn, in, 3, f.rl, 1e-2, 256 /* layer, W_r x, sums over the vector */);
    tu_gradcheck(ctx, defect_fn, in + 2, 1, f.r, 1e-2, 256 /* generator products, sums of squares */);
    teardown(&f);
    /* the penalties (norm + activation-form LD) of one forward, into W_r */
    o.theta = 0.6f;
    o.lambda_norm = 0.5f;
    o.lambda_defect = 0.5f;
    o.lie_form = EQR_LIE_ACTIVATION;
    setup(&f, 45, &o);
    eqr_tensor *wr[1] = {f.wr};
    tu_gradcheck_recorded(f.ctx, pen_fn, wr, 1, &f, 13, 1e-2, 256);
    teardown(&f);
}

static void test_errors(void **state) {
    (void)state;
    eqr_relax_opts o = normal_opts();
    fixture f;
    setup(&f, 46, &o);
    eqr_ctx *ctx = f.ctx;
    assert_null(eqr_relax_irreps_linear(ctx, f.r, "x2", NULL, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "relaxation or layer is NULL");
    assert_null(eqr_relax_irreps_linear(ctx, f.r, "lin", f.lin, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "lin.wr");
    int64_t s[2] = {2, f.din + 1};
    assert_null(eqr_rlayer_forward(ctx, f.rl, eqr_tensor_zeros(ctx, 2, s)));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "layer 2x0e+1x1o+1x1e+2x2e+1x0o -> 1x0e+2x1o+1x2e+1x1e");
    assert_int_equal(eqr_irreps_lie_generators(ctx, &f.in, NULL), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "gens is NULL");
    teardown(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generators), cmocka_unit_test(test_defect),
        cmocka_unit_test(test_forward_and_projection), cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_errors)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
