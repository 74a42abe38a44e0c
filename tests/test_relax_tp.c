/* Relaxation of irreps modules through eqr_relax_module: the irreps linear
 * module (kind "irreps_linear", fold by Schur through the module path) and
 * the tensor-product module (kind "tp", y = tp(x1, x2) + theta W_r x1):
 * the relaxed forward, equivariance at theta = 0 and its loss at
 * theta > 0, LD exactly 0 on an equivariant W_r, projection (drop exact,
 * fold refused for the product), penalty gradients reaching W_r only, a
 * finite-difference gradcheck of the relaxed product module, containers,
 * and the errors. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *IN1 = "2x0e+2x1o+1x2e+1x1e", *IN2 = "1x0e+1x1o", *OUT = "2x0e+2x1o+1x1e+1x2e";

static eqr_irreps parse(eqr_ctx *ctx, const char *s) {
    eqr_irreps ir;
    if (eqr_irreps_parse(ctx, s, &ir) != EQR_OK) fail_msg("parse %s", s);
    return ir;
}

static void assert_ok(eqr_ctx *ctx) {
    if (eqr_error_status(ctx) != EQR_OK) fail_msg("context error: %s", eqr_error_message(ctx));
}

typedef struct fixture {
    eqr_ctx *ctx;
    eqr_irreps a, b, c, ab;
    int64_t d1, d2, d3;
    eqr_relax *r;
    eqr_module *m; /* the relaxed product module */
    eqr_tp *tp;
    eqr_rlayer *rl;
    eqr_tensor *x1, *x2, *x, *wr;
} fixture;

enum { N = 6 };

static void setup(fixture *f, uint64_t seed, const eqr_relax_opts *o) {
    f->ctx = tu_ctx(seed);
    f->a = parse(f->ctx, IN1);
    f->b = parse(f->ctx, IN2);
    f->c = parse(f->ctx, OUT);
    f->ab = f->a;
    for (int i = 0; i < f->b.n; i++) f->ab.e[f->ab.n++] = f->b.e[i];
    f->d1 = eqr_irreps_dim(&f->a), f->d2 = eqr_irreps_dim(&f->b), f->d3 = eqr_irreps_dim(&f->c);
    f->r = eqr_relax_create(f->ctx, "relax", o);
    assert_non_null(f->r);
    f->m = eqr_relax_module(f->ctx, f->r, NULL, eqr_tp_module(f->ctx, "tp", &f->a, &f->b, &f->c, 1), NULL);
    if (!f->m) fail_msg("relax failed: %s", eqr_error_message(f->ctx));
    f->rl = eqr_module_rlayer(f->m);
    assert_non_null(f->rl);
    f->tp = eqr_module_tp(eqr_module_child(f->m, 0));
    assert_non_null(f->tp);
    f->wr = eqr_rlayer_wr(f->rl);
    assert_ptr_equal(eqr_param_find(f->ctx, "tp.wr"), f->wr);
    assert_int_equal(f->wr->shape[0], f->d3);
    assert_int_equal(f->wr->shape[1], f->d1);
    f->x1 = tu_input(f->ctx, "x1", 2, (int64_t[]){N, f->d1}, 1.0f);
    f->x2 = tu_input(f->ctx, "x2", 2, (int64_t[]){N, f->d2}, 1.0f);
    f->x = tu_input(f->ctx, "x", 2, (int64_t[]){N, f->d1 + f->d2}, 1.0f);
}

static void teardown(fixture *f) {
    eqr_module_destroy(f->m);
    eqr_relax_destroy(f->r);
    eqr_ctx_destroy(f->ctx);
}

static eqr_relax_opts normal_opts(void) {
    eqr_relax_opts o = {0};
    o.init = EQR_RELAX_INIT_NORMAL;
    o.init_std = 0.5f;
    return o;
}

static eqr_tensor *fwd2(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x1, eqr_tensor *x2) {
    eqr_tensor *io[2] = {x1, x2};
    if (eqr_module_forward_n(ctx, m, 2, io) != EQR_OK) return NULL;
    return io[0];
}

/* The module as a function of [x1, x2] for the equivariance measure. */
typedef struct tmod {
    eqr_module *m;
    int64_t d1, d2;
} tmod;
static eqr_tensor *f_tuple(eqr_ctx *ctx, eqr_tensor *x, eqr_tensor *pos, void *user) {
    (void)pos;
    tmod *t = user;
    return fwd2(ctx, t->m, eqr_slice(ctx, x, 1, 0, t->d1), eqr_slice(ctx, x, 1, t->d1, t->d2));
}
static eqr_tensor *f_one(eqr_ctx *ctx, eqr_tensor *x, eqr_tensor *pos, void *user) {
    (void)pos;
    return eqr_module_forward(ctx, user, x);
}

/* The float32 bound of the product's equivariance error (as
 * test_nn_irreps_modules.c: depth of the kernel + the bias add, amp 2
 * sqrt(terms) for a bilinear sum of `terms` terms of random sign). */
static double tp_bound(const fixture *f) {
    int64_t depth = 0, terms = 0;
    for (int ic = 0; ic < f->c.n; ic++) {
        int64_t K = 0, d1m = 0, d2m = 0, n = 0;
        for (int ia = 0; ia < f->a.n; ia++)
            for (int ib = 0; ib < f->b.n; ib++) {
                const eqr_irrep_entry A = f->a.e[ia], B = f->b.e[ib], O = f->c.e[ic];
                const int lo = A.l > B.l ? A.l - B.l : B.l - A.l;
                if (A.p * B.p != O.p || O.l < lo || O.l > A.l + B.l) continue;
                K += (int64_t)A.mul * B.mul;
                n += (int64_t)A.mul * B.mul * (2 * A.l + 1) * (2 * B.l + 1);
                d1m = d1m > 2 * A.l + 1 ? d1m : 2 * A.l + 1;
                d2m = d2m > 2 * B.l + 1 ? d2m : 2 * B.l + 1;
            }
        depth = depth > K + d1m + d2m + 2 ? depth : K + d1m + d2m + 2;
        terms = terms > n ? terms : n;
    }
    return tu_equiv_bound(depth + 1, 2.0 * sqrt((double)terms));
}

static double tp_equiv(fixture *f) {
    tmod t = {f->m, f->d1, f->d2};
    double rel = -1;
    assert_int_equal(eqr_irreps_equivariance(f->ctx, f_tuple, &t, &f->ab, &f->c, f->x, NULL, 8,
                                             EQR_EQ_PARITY, &rel),
                     EQR_OK);
    return rel;
}

/* W [dout][din] := the dense matrix of a fresh irreps linear in -> out (an
 * equivariant map: blocks c I between entries of equal (l, p)). */
static void equivariant_dense(eqr_ctx *ctx, const char *name, const eqr_irreps *in,
                              const eqr_irreps *out, eqr_tensor *W) {
    eqr_irreps_linear *lin = eqr_irreps_linear_create(ctx, name, in, out);
    assert_non_null(lin);
    const int64_t di = eqr_irreps_dim(in), dout = eqr_irreps_dim(out);
    int ge = eqr_grad_set_enabled(ctx, 0);
    eqr_tensor *e = eqr_tensor_zeros(ctx, 2, (int64_t[]){di, di});
    for (int64_t i = 0; i < di; i++) e->data[i * di + i] = 1.0f;
    eqr_tensor *y = eqr_irreps_linear_forward(ctx, lin, e);
    assert_non_null(y);
    for (int64_t r = 0; r < dout; r++)
        for (int64_t c = 0; c < di; c++) W->data[r * di + c] = y->data[c * dout + r];
    eqr_grad_set_enabled(ctx, ge);
    eqr_step_reset(ctx);
    eqr_irreps_linear_destroy(lin);
}

static void test_tp_forward(void **state) {
    (void)state;
    eqr_relax_opts o = normal_opts();
    fixture f;
    setup(&f, 1, &o);
    eqr_ctx *ctx = f.ctx;
    assert_string_equal(eqr_module_kind(f.m), "relaxed");
    assert_string_equal(eqr_module_kind(eqr_module_child(f.m, 0)), "tp");
    assert_string_equal(eqr_rlayer_name(f.rl), "tp");
    eqr_ftype ti = eqr_module_in_type(f.m), to = eqr_module_out_type(f.m);
    assert_true(eqr_irreps_equal(ti.irreps, &f.a));
    assert_true(eqr_irreps_equal(to.irreps, &f.c));
    /* theta = 0: the product alone, bit for bit */
    eqr_tensor *y = fwd2(ctx, f.m, f.x1, f.x2), *y0 = eqr_tp_forward(ctx, f.tp, f.x1, f.x2, NULL);
    assert_non_null(y);
    assert_memory_equal(y->data, y0->data, sizeof(float) * (size_t)y->numel);
    /* theta != 0: + theta W_r x1 (one rounding of the add, the scale and a
     * d1-term dot product in float: gamma_{d1 + 2} of the magnitudes) */
    const float theta = 0.7f;
    eqr_relax_set_theta(f.r, theta);
    y = fwd2(ctx, f.m, f.x1, f.x2);
    assert_non_null(y);
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < f.d3; k++) {
            double t = 0, mag = 0;
            for (int64_t j = 0; j < f.d1; j++) {
                t += (double)f.wr->data[k * f.d1 + j] * f.x1->data[n * f.d1 + j];
                mag += fabs((double)f.wr->data[k * f.d1 + j] * f.x1->data[n * f.d1 + j]);
            }
            const double ref = y0->data[n * f.d3 + k] + theta * t;
            const double tol = tu_gamma(f.d1 + 2) * (fabs(y0->data[n * f.d3 + k]) + theta * mag);
            if (!(fabs(y->data[n * f.d3 + k] - ref) <= tol))
                fail_msg("relaxed tp [%lld, %lld]: %.9g vs %.9g (bound %.3g)", (long long)n,
                         (long long)k, (double)y->data[n * f.d3 + k], ref, tol);
        }
    /* the one-call API: eqr_rlayer_forward_tp is the module's forward */
    eqr_tensor *y2 = eqr_rlayer_forward_tp(ctx, f.rl, f.x1, f.x2);
    assert_memory_equal(y->data, y2->data, sizeof(float) * (size_t)y->numel);
    /* probe: ||tp(x1, x2)|| and ||W_r x1|| of the last forward */
    eqr_rlayer_probe_stats ps;
    assert_int_equal(eqr_rlayer_probe(ctx, f.rl, &ps), EQR_OK);
    double n0 = 0;
    for (int64_t i = 0; i < y0->numel; i++) n0 += (double)y0->data[i] * y0->data[i];
    assert_true(fabs(ps.eq_norm - sqrt(n0)) <= 1e-5 * ps.eq_norm);
    assert_true(ps.wr_norm > 0 && ps.share > 0);
    /* the summary: the relaxed module holds the product's parameters and W_r */
    char s[2048];
    assert_true(eqr_module_summary(ctx, f.m, s, sizeof s) > 0);
    print_message("%s", s);
    char want[256];
    snprintf(want, sizeof want, "%-22s %-14s %-40s %10lld  tp + theta W_r, theta 0.7\n", "tp",
             "relaxed", "2x0e+2x1o+1x2e+1x1e -> 2x0e+2x1o+1x1e+1x2e",
             (long long)(eqr_tp_num_weights(f.tp) + 2 + f.d3 * f.d1));
    if (!strstr(s, want)) fail_msg("no line \"%s\" in\n%s", want, s);
    teardown(&f);
}

static void test_tp_equivariance_and_projection(void **state) {
    (void)state;
    eqr_relax_opts o = normal_opts();
    fixture f;
    setup(&f, 2, &o);
    eqr_ctx *ctx = f.ctx;
    const double tol = tp_bound(&f);
    double rel = tp_equiv(&f);
    print_message("relaxed tp, theta 0: equivariance error %.3g (bound %.3g)\n", rel, tol);
    if (!(rel >= 0 && rel <= tol)) fail_msg("theta 0: %g > %g", rel, tol);
    eqr_relax_set_theta(f.r, 0.7f);
    rel = tp_equiv(&f);
    print_message("relaxed tp, theta 0.7: %.3g\n", rel);
    assert_true(rel > 1e-2); /* far above rounding: the term is not equivariant */
    /* fold is refused, naming the layer; nothing is projected */
    float wr0 = f.wr->data[3];
    assert_int_equal(eqr_relax_project(ctx, f.r, EQR_PROJECT_FOLD), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "relaxed tensor product 'tp' cannot be folded");
    assert_true(f.wr->data[3] == wr0);
    assert_true(eqr_rlayer_theta(f.rl)->data[0] == 0.7f);
    /* drop: W_r = 0, theta = 0, the product alone bit for bit: exactly the
     * equivariant layer */
    assert_int_equal(eqr_relax_project(ctx, f.r, EQR_PROJECT_DROP), EQR_OK);
    for (int64_t i = 0; i < f.wr->numel; i++) assert_true(f.wr->data[i] == 0.0f);
    eqr_tensor *y = fwd2(ctx, f.m, f.x1, f.x2), *y0 = eqr_tp_forward(ctx, f.tp, f.x1, f.x2, NULL);
    assert_memory_equal(y->data, y0->data, sizeof(float) * (size_t)y->numel);
    rel = tp_equiv(&f);
    if (!(rel >= 0 && rel <= tol)) fail_msg("projected: %g > %g", rel, tol);
    /* fold of a layer whose theta is 0 is no fold at all: accepted */
    assert_int_equal(eqr_relax_project(ctx, f.r, EQR_PROJECT_FOLD), EQR_OK);
    teardown(&f);
}

/* LD: exactly 0 on an equivariant W_r (weight and activation form), the
 * irreps-linear kind's value on any W_r (same term on x1's irreps). */
static void test_tp_defect(void **state) {
    (void)state;
    for (int form = 0; form < 2; form++) {
        eqr_relax_opts o = normal_opts();
        o.lambda_defect = 1.0f;
        o.lie_form = form ? EQR_LIE_ACTIVATION : EQR_LIE_WEIGHT;
        fixture f;
        setup(&f, 3 + form, &o);
        eqr_ctx *ctx = f.ctx;
        eqr_relax_set_theta(f.r, 0.5f);
        /* a random W_r is penalised */
        assert_non_null(fwd2(ctx, f.m, f.x1, f.x2));
        eqr_tensor *ld = eqr_relax_defect(ctx, f.r);
        assert_non_null(ld);
        const float ld_random = ld->data[0];
        assert_true(ld_random > 1e-2f);
        /* the same W_r on an irreps linear a -> c gives the same LD */
        eqr_relax *r2 = eqr_relax_create(ctx, "relax2", &o);
        eqr_irreps_linear *lin = eqr_irreps_linear_create(ctx, "lin", &f.a, &f.c);
        eqr_rlayer *rl2 = eqr_relax_irreps_linear(ctx, r2, "lin", lin, NULL);
        assert_non_null(rl2);
        memcpy(eqr_rlayer_wr(rl2)->data, f.wr->data, sizeof(float) * (size_t)f.wr->numel);
        eqr_relax_set_theta(r2, 0.5f);
        assert_non_null(eqr_rlayer_forward(ctx, rl2, f.x1));
        eqr_tensor *ld2 = eqr_relax_defect(ctx, r2);
        assert_true(ld2->data[0] == ld_random);
        eqr_step_reset(ctx);
        /* an equivariant W_r: exactly 0, in float too */
        equivariant_dense(ctx, "eqmap", &f.a, &f.c, f.wr);
        assert_non_null(fwd2(ctx, f.m, f.x1, f.x2));
        ld = eqr_relax_defect(ctx, f.r);
        assert_true(ld->data[0] == 0.0f);
        eqr_rlayer_stats st;
        assert_int_equal(eqr_rlayer_get_stats(ctx, f.rl, &st), EQR_OK);
        assert_true(st.defect == 0.0f && st.wr_norm > 0);
        eqr_step_reset(ctx);
        eqr_relax_destroy(r2);
        eqr_irreps_linear_destroy(lin);
        teardown(&f);
    }
}

static eqr_tensor *pen_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)in;
    fixture *f = user;
    if (!fwd2(ctx, f->m, f->x1, f->x2)) return NULL;
    return eqr_sum_all(ctx, eqr_relax_penalty(ctx, f->r));
}

/* Detached penalties (the default): their gradient reaches W_r only, not
 * x1, x2 nor the product's weights; it matches central differences. The
 * full form (an ablation) sends it into x1 too, never into x2 or the
 * product's weights, which the penalties do not read. */
static void test_tp_penalty_grad(void **state) {
    (void)state;
    for (int full = 0; full < 2; full++) {
        eqr_relax_opts o = normal_opts();
        o.theta = 0.6f;
        o.lambda_norm = 0.5f;
        o.lambda_defect = 0.5f;
        o.lie_form = EQR_LIE_ACTIVATION;
        o.penalty_grad = full ? EQR_PENALTY_FULL : EQR_PENALTY_DETACHED;
        fixture f;
        setup(&f, 5 + 10 * full, &o);
        eqr_ctx *ctx = f.ctx;
        eqr_grad_zero(ctx);
        eqr_tensor *loss = pen_fn(ctx, NULL, &f);
        assert_non_null(loss);
        assert_int_equal(eqr_backward(ctx, loss), EQR_OK);
        eqr_tensor *others[4] = {f.x2, eqr_tp_weight(f.tp), eqr_tp_bias(f.tp), f.x1};
        int nonzero[4] = {0, 0, 0, 0}, wrzero = 1;
        for (int k = 0; k < 4; k++)
            if (others[k]->grad)
                for (int64_t i = 0; i < others[k]->numel; i++) nonzero[k] |= others[k]->grad[i] != 0.0f;
        for (int64_t i = 0; i < f.wr->numel; i++) wrzero &= f.wr->grad[i] == 0.0f;
        assert_false(wrzero);
        assert_false(nonzero[0] || nonzero[1] || nonzero[2]);
        assert_int_equal(nonzero[3], full);
        eqr_step_reset(ctx);
        eqr_tensor *in[2] = {f.wr, f.x1};
        tu_gradcheck_recorded(ctx, pen_fn, in, full ? 2 : 1, &f, 17, 1e-2, 256);
        teardown(&f);
    }
}

static eqr_tensor *mod_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    return fwd2(ctx, user, in[0], in[1]);
}

/* Central differences of the relaxed product module in x1, x2, the
 * product's weight and bias and W_r (theta 0.6). */
static void test_tp_gradcheck(void **state) {
    (void)state;
    eqr_relax_opts o = normal_opts();
    o.theta = 0.6f;
    fixture f;
    setup(&f, 6, &o);
    eqr_ctx *ctx = f.ctx;
    eqr_tensor *x1 = tu_input(ctx, "gx1", 2, (int64_t[]){2, f.d1}, 1.0f);
    eqr_tensor *x2 = tu_input(ctx, "gx2", 2, (int64_t[]){2, f.d2}, 1.0f);
    eqr_tensor *in[5] = {x1, x2, eqr_tp_weight(f.tp), eqr_tp_bias(f.tp), f.wr};
    /* depth: the product's kernel (a few dozen sums) plus W_r x1's d1 */
    tu_gradcheck(ctx, mod_fn, in, 5, f.m, 1e-2, 256);
    teardown(&f);
}

/* The irreps linear module through eqr_relax_module: forward, equivariance,
 * fold (Schur, through the module path) and drop. */
static void test_linear_module(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(7);
    eqr_irreps a = parse(ctx, IN1), c = parse(ctx, OUT);
    eqr_relax_opts o = normal_opts();
    eqr_relax *r = eqr_relax_create(ctx, "relax", &o);
    eqr_module *m = eqr_relax_module(ctx, r, NULL, eqr_irreps_linear_module(ctx, "lin", &a, &c), NULL);
    assert_non_null(m);
    assert_string_equal(eqr_module_kind(m), "relaxed");
    eqr_rlayer *rl = eqr_module_rlayer(m);
    eqr_irreps_linear *lin = eqr_module_irreps_linear(eqr_module_child(m, 0));
    assert_non_null(rl);
    assert_non_null(lin);
    eqr_tensor *wr = eqr_rlayer_wr(rl), *w = eqr_irreps_linear_weight(lin);
    assert_ptr_equal(eqr_param_find(ctx, "lin.wr"), wr);
    eqr_tensor *x = tu_input(ctx, "x", 2, (int64_t[]){N, eqr_irreps_dim(&a)}, 1.0f);
    /* the linear module's bound (test_nn_irreps_modules.c) */
    const double tol = tu_equiv_bound(5, sqrt(10.0));
    double rel = -1;
    assert_int_equal(eqr_irreps_equivariance(ctx, f_one, m, &a, &c, x, NULL, 8, EQR_EQ_PARITY, &rel), EQR_OK);
    print_message("relaxed irreps_linear, theta 0: %.3g (bound %.3g)\n", rel, tol);
    if (!(rel >= 0 && rel <= tol)) fail_msg("theta 0: %g > %g", rel, tol);
    eqr_tensor *y0 = eqr_irreps_linear_forward(ctx, lin, x), *y = eqr_module_forward(ctx, m, x);
    assert_memory_equal(y->data, y0->data, sizeof(float) * (size_t)y->numel);
    eqr_relax_set_theta(r, 0.7f);
    y = eqr_module_forward(ctx, m, x);
    eqr_tensor *y1 = eqr_rlayer_forward(ctx, rl, x);
    assert_memory_equal(y->data, y1->data, sizeof(float) * (size_t)y->numel);
    assert_int_equal(eqr_irreps_equivariance(ctx, f_one, m, &a, &c, x, NULL, 8, EQR_EQ_PARITY, &rel), EQR_OK);
    print_message("relaxed irreps_linear, theta 0.7: %.3g\n", rel);
    assert_true(rel > 1e-2);
    /* fold of a generic W_r: the weights change, the result is equivariant */
    float *w0 = malloc(sizeof(float) * (size_t)w->numel);
    memcpy(w0, w->data, sizeof(float) * (size_t)w->numel);
    assert_int_equal(eqr_relax_project(ctx, r, EQR_PROJECT_FOLD), EQR_OK);
    assert_true(memcmp(w0, w->data, sizeof(float) * (size_t)w->numel) != 0);
    assert_int_equal(eqr_irreps_equivariance(ctx, f_one, m, &a, &c, x, NULL, 8, EQR_EQ_PARITY, &rel), EQR_OK);
    print_message("relaxed irreps_linear, folded: %.3g\n", rel);
    if (!(rel >= 0 && rel <= tol)) fail_msg("folded: %g > %g", rel, tol);
    /* fold of an equivariant W_r keeps the function: W_r's c I blocks go
     * into the weights (y = W x + theta W_r x before, (W + theta c) x after;
     * each output within gamma_{2 d} of its magnitudes on both sides) */
    eqr_relax_set_theta(r, 0.7f);
    equivariant_dense(ctx, "eqmap", &a, &c, wr);
    eqr_tensor *yb = eqr_module_forward(ctx, m, x);
    float *keep = malloc(sizeof(float) * (size_t)yb->numel);
    memcpy(keep, yb->data, sizeof(float) * (size_t)yb->numel);
    double mag = 0;
    for (int64_t i = 0; i < yb->numel; i++) mag = fmax(mag, fabs(keep[i]));
    assert_int_equal(eqr_relax_project(ctx, r, EQR_PROJECT_FOLD), EQR_OK);
    eqr_tensor *ya = eqr_module_forward(ctx, m, x);
    double worst = 0;
    for (int64_t i = 0; i < ya->numel; i++) worst = fmax(worst, fabs(ya->data[i] - keep[i]));
    print_message("fold of an equivariant W_r: max change %.3g (max |y| %.3g)\n", worst, mag);
    /* magnitude sums: |W| |x| + theta |W_r| |x| over <= 2 copies of <= 5
     * components, a few times max |y| for random signs: 8 max |y| */
    assert_true(worst <= tu_gamma(2 * 2 * 5 + 4) * 8 * mag);
    /* drop restores the plain layer */
    eqr_relax_set_theta(r, 0.7f);
    assert_int_equal(eqr_relax_project(ctx, r, EQR_PROJECT_DROP), EQR_OK);
    y0 = eqr_irreps_linear_forward(ctx, lin, x);
    y = eqr_module_forward(ctx, m, x);
    assert_memory_equal(y->data, y0->data, sizeof(float) * (size_t)y->numel);
    /* probe of the irreps-linear kind */
    eqr_rlayer_probe_stats ps;
    assert_int_equal(eqr_rlayer_probe(ctx, rl, &ps), EQR_OK);
    assert_true(ps.eq_norm > 0 && ps.wr_norm == 0);
    free(w0);
    free(keep);
    eqr_module_destroy(m);
    eqr_relax_destroy(r);
    eqr_ctx_destroy(ctx);
}

/* A container: every product and linear inside is relaxed in place; the
 * tuple forward runs through the relaxed modules. */
static void test_container(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(8);
    eqr_irreps a = parse(ctx, IN1), b = parse(ctx, IN2), mid = parse(ctx, "3x0e+2x0e+2x1o");
    eqr_irreps sc = parse(ctx, "3x0e"), gated = parse(ctx, "2x1o"), g = parse(ctx, "3x0e+2x1o");
    eqr_relax *r = eqr_relax_create(ctx, "relax", NULL);
    eqr_module *net = eqr_sequential_create(ctx, "net");
    eqr_sequential_add(net, eqr_tp_module(ctx, "tp1", &a, &b, &mid, 1));
    eqr_sequential_add(net, eqr_gate_module(ctx, NULL, &sc, &gated));
    eqr_sequential_add(net, eqr_irreps_bn_module(ctx, "bn", &g, NULL));
    eqr_sequential_add(net, eqr_irreps_linear_module(ctx, "lin", &g, &a));
    assert_non_null(net);
    eqr_tensor *h = tu_input(ctx, "h", 2, (int64_t[]){N, eqr_irreps_dim(&a)}, 1.0f);
    eqr_tensor *e = tu_input(ctx, "e", 2, (int64_t[]){N, eqr_irreps_dim(&b)}, 1.0f);
    eqr_tensor *y0 = fwd2(ctx, net, h, e);
    assert_non_null(y0);
    float keep[N * 32];
    memcpy(keep, y0->data, sizeof(float) * (size_t)y0->numel);
    eqr_step_reset(ctx);
    eqr_module *rn = eqr_relax_module(ctx, r, NULL, net, NULL);
    assert_ptr_equal(rn, net);
    assert_int_equal(eqr_relax_num_layers(r), 2);
    assert_string_equal(eqr_module_kind(eqr_module_child(net, 0)), "relaxed");
    assert_string_equal(eqr_module_kind(eqr_module_child(net, 2)), "irreps_bn");
    assert_string_equal(eqr_module_kind(eqr_module_child(net, 3)), "relaxed");
    assert_non_null(eqr_param_find(ctx, "tp1.wr"));
    assert_non_null(eqr_param_find(ctx, "lin.wr"));
    /* theta 0: the same function, bit for bit (the batch norm saw the same
     * batch: its running statistics moved, its output did not) */
    eqr_tensor *y = fwd2(ctx, net, h, e);
    assert_non_null(y);
    assert_memory_equal(keep, y->data, sizeof(float) * (size_t)y->numel);
    assert_ok(ctx);
    eqr_module_destroy(net);
    eqr_relax_destroy(r);
    eqr_ctx_destroy(ctx);
}

static void test_errors(void **state) {
    (void)state;
    eqr_relax_opts o = normal_opts();
    fixture f;
    setup(&f, 9, &o);
    eqr_ctx *ctx = f.ctx;
    /* the relaxed product takes (x1, x2) */
    assert_null(eqr_module_forward(ctx, f.m, f.x1));
    tu_assert_error(ctx, EQR_ERR_ARG,
                    "module 'tp' (relaxed) takes (x1, x2): use eqr_module_forward_n with n = 2");
    eqr_tensor *io[3] = {f.x1, f.x2, f.x2};
    assert_int_equal(eqr_module_forward_n(ctx, f.m, 3, io), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "the tuple is (x1, x2), n = 2 (got 3)");
    eqr_tensor *io_null[2] = {f.x1, NULL};
    assert_int_equal(eqr_module_forward_n(ctx, f.m, 2, io_null), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "module 'tp' (relaxed): io[1] (x2) is NULL");
    assert_null(eqr_rlayer_forward(ctx, f.rl, f.x1));
    tu_assert_error(ctx, EQR_ERR_ARG, "relaxed tensor product 'tp' takes (x1, x2)");
    assert_null(eqr_rlayer_forward_tp(ctx, f.rl, f.x2, f.x1));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "must be [N, 16] and [N, 4]");
    /* eqr_rlayer_forward_tp on another kind */
    eqr_irreps_linear *lin = eqr_irreps_linear_create(ctx, "lin", &f.a, &f.c);
    eqr_rlayer *rl2 = eqr_relax_irreps_linear(ctx, f.r, "lin", lin, NULL);
    assert_non_null(rl2);
    assert_null(eqr_rlayer_forward_tp(ctx, rl2, f.x1, f.x2));
    tu_assert_error(ctx, EQR_ERR_ARG, "layer 'lin' is not a relaxed tensor product");
    /* relaxed twice; a product with external weights; nothing relaxable */
    assert_null(eqr_relax_module(ctx, f.r, NULL, f.m, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "module 'tp' is relaxed already");
    f.m = NULL; /* destroyed by the failed call */
    eqr_tp *ext;
    assert_int_equal(eqr_tp_create(ctx, "ext", &f.a, &f.b, &f.c, 0, &ext), EQR_OK);
    assert_null(eqr_relax_tp(ctx, f.r, "ext", ext, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "external (per-sample) weights");
    eqr_tp_destroy(ext);
    eqr_irreps sc = parse(ctx, "2x0e");
    eqr_module *s = eqr_sequential_create(ctx, "s");
    eqr_sequential_add(s, eqr_irreps_bn_module(ctx, "bn", &sc, NULL));
    eqr_sequential_add(s, eqr_irreps_ln_module(ctx, "ln", &sc, NULL));
    assert_null(eqr_relax_module(ctx, f.r, NULL, s, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "holds no module that can be relaxed (relaxable: gconv, "
                    "steer_conv, vn_linear, irreps_linear, tp,");
    assert_null(eqr_relax_module(ctx, f.r, NULL, eqr_irreps_bn_module(ctx, "bn2", &sc, NULL), NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "module 'bn2' is of kind 'irreps_bn', which cannot be relaxed");
    eqr_irreps_linear_destroy(lin);
    teardown(&f);
}

/* The usage example of docs/o3_irreps.md ("Modules and relaxation through
 * one call"), as written there between the marked lines. */
static void test_doc_example(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(10);
    eqr_tensor *x = tu_input(ctx, "x", 2, (int64_t[]){N, 20}, 1.0f);
    eqr_tensor *y_sh = tu_input(ctx, "y_sh", 2, (int64_t[]){N, 9}, 1.0f);
    /* ---- from the doc ---- */
    eqr_irreps h, sh, mid, sc, gated, g;
    eqr_irreps_parse(ctx, "8x0e+4x1o", &h);
    eqr_irreps_parse(ctx, "1x0e+1x1o+1x2e", &sh);     /* x2: eqr_sh of the edges */
    eqr_irreps_parse(ctx, "8x0e+4x0e+4x1o", &mid);    /* scalars + gates + gated */
    eqr_irreps_parse(ctx, "8x0e", &sc);
    eqr_irreps_parse(ctx, "4x1o", &gated);
    eqr_irreps_parse(ctx, "8x0e+4x1o", &g);
    eqr_module *net = eqr_sequential_create(ctx, "net");
    eqr_sequential_add(net, eqr_tp_module(ctx, "tp1", &h, &sh, &mid, 1));
    eqr_sequential_add(net, eqr_gate_module(ctx, NULL, &sc, &gated));
    eqr_sequential_add(net, eqr_irreps_bn_module(ctx, "bn", &g, NULL));
    eqr_sequential_add(net, eqr_irreps_linear_module(ctx, "lin", &g, &h)); /* a type mismatch: EQR_ERR_ARG naming both layers */
    eqr_relax *r = eqr_relax_create(ctx, "relax", &(eqr_relax_opts){.lambda_defect = 1e-2f});
    net = eqr_relax_module(ctx, r, NULL, net, NULL);  /* tp1 and lin relaxed in place */
    eqr_tensor *io[2] = {x, y_sh};                    /* [N, 20], [N, 9] */
    eqr_module_forward_n(ctx, net, 2, io);            /* io[0]: [N, 20], io[1]: y_sh */
    /* ... train with eqr_relax_penalty, anneal theta ... */
    eqr_relax_project(ctx, r, EQR_PROJECT_DROP);      /* FOLD: EQR_ERR_ARG naming 'tp1' */
    eqr_module_set_training(net, 0);                  /* bn: running statistics */
    /* ---- end ---- */
    assert_ok(ctx);
    assert_non_null(io[0]);
    assert_int_equal(io[0]->shape[0], N);
    assert_int_equal(io[0]->shape[1], 20);
    assert_ptr_equal(io[1], y_sh);
    assert_int_equal(eqr_relax_num_layers(r), 2);
    eqr_relax_set_theta(r, 0.5f);
    assert_int_equal(eqr_relax_project(ctx, r, EQR_PROJECT_FOLD), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "'tp1' cannot be folded");
    eqr_module_destroy(net);
    eqr_relax_destroy(r);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tp_forward),
        cmocka_unit_test(test_tp_equivariance_and_projection),
        cmocka_unit_test(test_tp_defect),
        cmocka_unit_test(test_tp_penalty_grad),
        cmocka_unit_test(test_tp_gradcheck),
        cmocka_unit_test(test_linear_module),
        cmocka_unit_test(test_container),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_doc_example),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
