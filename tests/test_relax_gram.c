/* Penalties of the dense Lie term on a detached input with more rows than
 * input features (relax_linear.c computes them from the Gram matrix
 * C = x^T x there): N and the activation-form LD against the direct sums
 * ||x A^T||^2 in double, exact and subsampled norm, for a bare linear term
 * (x [B, per, d]), a relaxed irreps linear layer and a relaxed tensor
 * product; the gradient into W_r against finite differences and exactly 0
 * into x and the upstream parameters. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { KIND_LINEAR, KIND_IRREPS, KIND_TP };

typedef struct fixture {
    eqr_ctx *ctx;
    int kind;
    eqr_irreps in, out, in2;
    int di, dout, ngen;
    float *gi, *go; /* the term's generators [ngen][d][d], as the layer has them */
    eqr_relax *r;
    eqr_irreps_linear *lin;
    eqr_tp *tp;
    eqr_rlayer *rl;
    eqr_tensor *x, *x2, *u; /* x = x0 U when u (upstream) is set */
} fixture;

static eqr_irreps parse(eqr_ctx *ctx, const char *s) {
    eqr_irreps ir;
    if (eqr_irreps_parse(ctx, s, &ir) != EQR_OK) fail_msg("parse %s", s);
    return ir;
}

/* so(3)'s three generators of ir, then S/2 (parity) when ngen == 4 */
static float *gens(eqr_ctx *ctx, const eqr_irreps *ir, int ngen) {
    const int64_t d = eqr_irreps_dim(ir);
    float *g = calloc((size_t)(4 * d * d), sizeof(float));
    assert_non_null(g);
    assert_int_equal(eqr_irreps_lie_generators(ctx, ir, g), EQR_OK);
    if (ngen == 4)
        for (int i = 0; i < ir->n; i++)
            for (int64_t k = eqr_irreps_offset(ir, i); k < eqr_irreps_offset(ir, i + 1); k++)
                g[(3 * d + k) * d + k] = 0.5f * (float)ir->e[i].p;
    return g;
}

static void setup(fixture *f, int kind, uint64_t seed, int sub) {
    memset(f, 0, sizeof *f);
    f->ctx = tu_ctx(seed);
    f->kind = kind;
    f->in = parse(f->ctx, "2x0e+1x1o+1x1e+2x2e+1x0o");
    f->out = parse(f->ctx, "1x0e+2x1o+1x2e+1x1e");
    f->in2 = parse(f->ctx, "1x0e+1x1o");
    f->di = (int)eqr_irreps_dim(&f->in);
    f->dout = (int)eqr_irreps_dim(&f->out);
    f->ngen = kind == KIND_LINEAR ? 3 : 4;
    f->gi = gens(f->ctx, &f->in, f->ngen);
    f->go = gens(f->ctx, &f->out, f->ngen);
    eqr_relax_opts o = {0};
    o.init = EQR_RELAX_INIT_NORMAL;
    o.init_std = 0.5f;
    o.theta = 0.5f;
    o.lambda_norm = 1.0f;
    o.lambda_defect = 1.0f;
    o.norm_subsample = sub;
    o.lie_form = EQR_LIE_ACTIVATION; /* penalty_grad: detached (default) */
    f->r = eqr_relax_create(f->ctx, "relax", &o);
    assert_non_null(f->r);
    if (kind == KIND_LINEAR) {
        eqr_lie_rep li = {f->di, 3, f->gi}, lo = {f->dout, 3, f->go};
        f->rl = eqr_relax_linear(f->ctx, f->r, "t", &li, &lo, NULL);
    } else if (kind == KIND_IRREPS) {
        f->lin = eqr_irreps_linear_create(f->ctx, "lin", &f->in, &f->out);
        assert_non_null(f->lin);
        f->rl = eqr_relax_irreps_linear(f->ctx, f->r, "lin", f->lin, NULL);
    } else {
        assert_int_equal(eqr_tp_create(f->ctx, "tp", &f->in, &f->in2, &f->out, 1, &f->tp), EQR_OK);
        f->rl = eqr_relax_tp(f->ctx, f->r, "tp", f->tp, NULL);
    }
    if (!f->rl) fail_msg("relax failed: %s", eqr_error_message(f->ctx));
}

static void teardown(fixture *f) {
    eqr_relax_destroy(f->r);
    eqr_irreps_linear_destroy(f->lin);
    eqr_tp_destroy(f->tp);
    eqr_ctx_destroy(f->ctx);
    free(f->gi), free(f->go);
}

/* Inputs [B, per, di] (bare term) or [B, di]: rows = B per > di, so the
 * cost test picks the Gram form. */
static void make_inputs(fixture *f, int64_t B, int64_t per, int upstream) {
    int64_t xs[3] = {B, per, f->di}, n = f->kind == KIND_LINEAR ? 3 : 2;
    if (f->kind != KIND_LINEAR) xs[1] = f->di, per = 1;
    assert_true(B * per > f->di);
    if (upstream) {
        int64_t us[2] = {f->di, f->di}, x0s[2] = {B * per, f->di};
        f->u = tu_input(f->ctx, "u", 2, us, 0.3f);
        f->x = tu_input(f->ctx, "x0", 2, x0s, 1.0f); /* x0; x = x0 U^T per forward */
    } else {
        f->x = tu_input(f->ctx, "x", (int)n, xs, 1.0f);
    }
    if (f->kind == KIND_TP) {
        int64_t s2[2] = {B, (int64_t)eqr_irreps_dim(&f->in2)};
        f->x2 = tu_input(f->ctx, "x2", 2, s2, 1.0f);
    }
}

static eqr_tensor *forward(fixture *f) {
    eqr_ctx *ctx = f->ctx;
    eqr_tensor *x = f->u ? eqr_linear(ctx, f->x, f->u, NULL) : f->x;
    if (f->u && f->kind == KIND_LINEAR) {
        int64_t s[3] = {f->x->shape[0] / 2, 2, f->di};
        x = eqr_reshape(ctx, x, 3, s);
    }
    return f->kind == KIND_TP ? eqr_rlayer_forward_tp(ctx, f->rl, x, f->x2)
                              : eqr_rlayer_forward(ctx, f->rl, x);
}

/* Direct sums in double over rows [0, n) of x [*, di] for A [dout, di]:
 * sum_r ||A x_r||^2 and its magnitude sum_r || |A| |x_r| ||^2. */
static void direct(const double *A, const double *absA, const float *x, int64_t n, int di,
                   int dout, double *val, double *mag) {
    for (int64_t r = 0; r < n; r++)
        for (int o = 0; o < dout; o++) {
            double s = 0, m = 0;
            for (int i = 0; i < di; i++) {
                s += A[o * di + i] * x[r * di + i];
                m += absA[o * di + i] * fabs(x[r * di + i]);
            }
            *val += s * s;
            *mag += m * m;
        }
}

/* N over the first m images (of per rows), scaled by B / m, and LD over
 * all rows, against the direct form in double.
 * Bound: C = x^T x in float is a sum of n products per entry, within
 * gamma_n |x|^T |x|; A C adds gamma_di |A| |C|; the sum of A o (A C) is in
 * double and rounded once. So |N_gram - N| <= gamma_{n + di} sum |A| o
 * (|A| |x|^T |x|) = gamma_{n + di} mag, mag = sum_r || |A| |x_r| ||^2. For LD
 * the float LD_a = W Gi - Go W (k <= di + dout products per entry) is within
 * gamma_k M_a, M_a = |W| |Gi| + |Go| |W|, of the exact one, and the form is
 * quadratic in it: (1 + gamma_k)^2 (1 + gamma_{rows + di}) - 1 <=
 * gamma_{rows + di + 2k} with mag over M_a; + ngen for the float adds of the
 * terms. N is read back as sqrtf(N) (stats act_norm), squared here in
 * double: +1 for its rounding (relative, and mag >= N), +1 for the B / m
 * scale. */
static void check_values(fixture *f, int64_t B, int64_t per, int sub) {
    eqr_ctx *ctx = f->ctx;
    const int di = f->di, dout = f->dout, ng = f->ngen;
    const int64_t rows = B * per, m = sub > 0 && sub < B ? sub : B;
    const double scale = (double)B / (double)m;
    eqr_step_reset(ctx);
    assert_non_null(forward(f));
    eqr_tensor *ld = eqr_relax_defect(ctx, f->r);
    assert_non_null(ld);
    eqr_rlayer_stats st;
    assert_int_equal(eqr_rlayer_get_stats(ctx, f->rl, &st), EQR_OK);
    const float *wf = eqr_rlayer_wr(f->rl)->data, *x = f->x->data;
    double *W = malloc(sizeof(double) * (size_t)(dout * di)), *aW = malloc(sizeof(double) * (size_t)(dout * di));
    double *L = malloc(sizeof(double) * (size_t)(dout * di)), *M = malloc(sizeof(double) * (size_t)(dout * di));
    assert_true(W && aW && L && M);
    for (int i = 0; i < dout * di; i++) W[i] = wf[i], aW[i] = fabs(W[i]);
    double nref = 0, nmag = 0, lref = 0, lmag = 0;
    direct(W, aW, x, m * per, di, dout, &nref, &nmag);
    nref *= scale, nmag *= scale;
    for (int a = 0; a < ng; a++) {
        const float *gi = f->gi + (int64_t)a * di * di, *go = f->go + (int64_t)a * dout * dout;
        for (int r = 0; r < dout; r++)
            for (int c = 0; c < di; c++) {
                double s = 0, t = 0;
                for (int q = 0; q < di; q++) s += W[r * di + q] * gi[q * di + c], t += aW[r * di + q] * fabs(gi[q * di + c]);
                for (int q = 0; q < dout; q++) s -= go[r * dout + q] * W[q * di + c], t += fabs(go[r * dout + q]) * aW[q * di + c];
                L[r * di + c] = s, M[r * di + c] = t;
            }
        direct(L, M, x, rows, di, dout, &lref, &lmag);
    }
    const int64_t k = di + dout, nn = m * per + di + 2, nl = rows + di + 2 * k + ng;
    /* a dropped row (~ value / rows) stays far above the bounds */
    assert_true(tu_gamma(nn) * nmag < 0.1 * nref / (double)(m * per));
    assert_true(tu_gamma(nl) * lmag < 0.1 * lref / (double)rows);
    const float got_n = st.act_norm * st.act_norm; /* rounded once more: in nn */
    tu_assert_close_bound("norm N", &got_n, &nref, &nmag, 1, nn + 1, 1);
    tu_assert_close_bound("activation LD", ld->data, &lref, &lmag, 1, nl, 1);
    eqr_step_reset(ctx);
    free(W), free(aW), free(L), free(M);
}

static void test_gram_values(void **state) {
    (void)state;
    /* sub: 0 exact; 4 of 12 images (more rows than di: Gram N from the
     * first rows' C); 1 (fewer rows than di: direct N, Gram LD) */
    const int subs[3] = {0, 4, 1};
    for (int kind = 0; kind < 3; kind++)
        for (int s = 0; s < 3; s++) {
            fixture f;
            setup(&f, kind, 100 + 3 * kind + s, subs[s]);
            const int64_t B = kind == KIND_LINEAR ? 12 : 40, per = kind == KIND_LINEAR ? 3 : 1;
            make_inputs(&f, B, per, 0);
            check_values(&f, B, per, subs[s]);
            teardown(&f);
        }
}

static eqr_tensor *pen_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)in;
    fixture *f = user;
    (void)forward(f);
    return eqr_sum_all(ctx, eqr_relax_penalty(ctx, f->r));
}

static int all_zero(const eqr_tensor *t) {
    if (!t->grad) return 1;
    for (int64_t i = 0; i < t->numel; i++)
        if (t->grad[i] != 0.0f) return 0;
    return 1;
}

/* Penalty gradient: into W_r equal to FD, exactly 0 into x0, the upstream
 * U (and x2 / the product's or layer's weights: the penalty never sees them). */
static void test_gram_gradients(void **state) {
    (void)state;
    for (int kind = 0; kind < 3; kind++)
        for (int sub = 0; sub < 2; sub++) {
            fixture f;
            setup(&f, kind, 200 + 2 * kind + sub, sub ? 15 : 0);
            const int64_t B = kind == KIND_LINEAR ? 20 : 40, per = kind == KIND_LINEAR ? 2 : 1;
            make_inputs(&f, B, per, 1);
            eqr_ctx *ctx = f.ctx;
            eqr_tensor *wr = eqr_rlayer_wr(f.rl);
            eqr_step_reset(ctx);
            eqr_grad_zero(ctx);
            eqr_tensor *loss = pen_fn(ctx, NULL, &f);
            assert_non_null(loss);
            assert_int_equal(eqr_backward(ctx, loss), EQR_OK);
            assert_false(all_zero(wr));
            assert_true(all_zero(f.x));
            assert_true(all_zero(f.u));
            if (f.x2) assert_true(all_zero(f.x2));
            if (f.lin) assert_true(all_zero(eqr_irreps_linear_weight(f.lin)));
            if (f.tp) assert_true(all_zero(eqr_tp_weight(f.tp)));
            eqr_step_reset(ctx);
            tu_gradcheck_recorded(ctx, pen_fn, &wr, 1, &f, 21, 1e-2,
                                  512 /* upstream linear, C over the rows, A C, the sums */);
            teardown(&f);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_gram_values),
                                       cmocka_unit_test(test_gram_gradients)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
