/* SEGNN (segnn.h) and its relaxation (relax.h eqr_relax_segnn): the
 * peer's parameter counts, E(3) equivariance of the whole N-body model
 * (random rotations, parity, translations) strict, relaxed with theta = 0
 * and projected, its breaking with theta > 0, the penalties' zeros,
 * gradients of a small model by finite differences, the TP bias, and
 * argument errors. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { B = 3, NP = 5 };

typedef struct fix {
    eqr_segnn *m;
    eqr_relax *r;
    int64_t b, n;
} fix;

/* Random systems: x ~ N(0, 1), v ~ N(0, 0.5^2), q = +-1. */
static void systems(eqr_ctx *ctx, int64_t b, int64_t n, eqr_tensor **x, eqr_tensor **v,
                    eqr_tensor **q) {
    *x = eqr_tensor_zeros(ctx, 3, (int64_t[]){b, n, 3});
    *v = eqr_tensor_zeros(ctx, 3, (int64_t[]){b, n, 3});
    *q = eqr_tensor_zeros(ctx, 3, (int64_t[]){b, n, 1});
    eqr_tensor_normal(*x, eqr_ctx_rng(ctx), 1.0f);
    eqr_tensor_normal(*v, eqr_ctx_rng(ctx), 0.5f);
    for (int64_t i = 0; i < b * n; i++) (*q)->data[i] = eqr_rng_uniform(eqr_ctx_rng(ctx)) < 0.5f ? -1.0f : 1.0f;
}

/* The measured function: features [v | q] ("1x1o+1x0e") and positions to
 * the predicted displacement (1x1o, translation invariant). */
static eqr_tensor *disp_fn(eqr_ctx *ctx, eqr_tensor *feat, eqr_tensor *pos, void *user) {
    fix *f = user;
    const int64_t N = f->b * f->n;
    eqr_tensor *v = eqr_tensor_zeros(ctx, 3, (int64_t[]){f->b, f->n, 3});
    eqr_tensor *q = eqr_tensor_zeros(ctx, 3, (int64_t[]){f->b, f->n, 1});
    eqr_tensor *x = eqr_tensor_from(ctx, 3, (int64_t[]){f->b, f->n, 3}, pos->data);
    if (!v || !q || !x) return NULL;
    for (int64_t a = 0; a < N; a++) {
        memcpy(v->data + 3 * a, feat->data + 4 * a, 3 * sizeof(float));
        q->data[a] = feat->data[4 * a + 3];
    }
    eqr_tensor *y = eqr_segnn_forward(ctx, f->m, x, v, q);
    return y ? eqr_reshape(ctx, eqr_sub(ctx, y, x), 2, (int64_t[]){N, 3}) : NULL;
}

static double equiv_err(eqr_ctx *ctx, fix *f, int nsamples) {
    eqr_tensor *x, *v, *q;
    systems(ctx, f->b, f->n, &x, &v, &q);
    const int64_t N = f->b * f->n;
    eqr_tensor *feat = eqr_tensor_zeros(ctx, 2, (int64_t[]){N, 4});
    eqr_tensor *pos = eqr_tensor_from(ctx, 2, (int64_t[]){N, 3}, x->data);
    for (int64_t a = 0; a < N; a++) {
        memcpy(feat->data + 4 * a, v->data + 3 * a, 3 * sizeof(float));
        feat->data[4 * a + 3] = q->data[a];
    }
    eqr_irreps in, out;
    assert_int_equal(eqr_irreps_parse(ctx, "1x1o+1x0e", &in), EQR_OK);
    assert_int_equal(eqr_irreps_parse(ctx, "1x1o", &out), EQR_OK);
    double err = -1;
    assert_int_equal(eqr_irreps_equivariance(ctx, disp_fn, f, &in, &out, feat, pos, nsamples,
                                             EQR_EQ_PARITY | EQR_EQ_TRANSLATION, &err),
                     EQR_OK);
    eqr_step_reset(ctx);
    return err;
}

/* Rounding bound of the float32 model's equivariance error
 * (tu_equiv_bound). Each tensor product output sums K <= fan * 3 terms
 * (fan = sum of m1 m2 over its paths, <= 130 for msg1 of 32x0e+32x1o; <= 3
 * CG entries each), so it is within gamma_K of its magnitude sum, which
 * for unit-second-moment products (tensor_product.h) of random sign is
 * ~ sqrt(fan) <= 12 times its value: a relative error <= 12 gamma_400 per
 * product. The chain into an output has 19 products (4 per layer, 4 layers,
 * embedding and two output products); the layers are residual and
 * normalised (gain ~ 1), so their relative errors add: amp = 19 * 12 with
 * depth 400 + 20 (the graph features: centroid, harmonics). This is a
 * bound of the worst case, ~1e-2; the measured error is printed (~2e-6
 * here), and a broken equivariance (theta > 0 below) is O(1). */
#define SEGNN_DEPTH 420
#define SEGNN_AMP (19.0 * 12.0)

/* Parameters whose name contains part, summed. */
static int64_t numel_matching(eqr_ctx *ctx, const char *part) {
    int64_t n = 0;
    for (int i = 0; i < eqr_param_num_tensors(ctx); i++)
        if (strstr(eqr_param_name(ctx, i), part)) n += eqr_param_at(ctx, i)->numel;
    return n;
}

static void test_param_counts(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    eqr_segnn *m = eqr_segnn_create(ctx, "segnn", NULL);
    assert_non_null(m);
    /* ../shared/bench/README.md: 147,424 strict; the 8 W_r add 196,608 */
    assert_int_equal(eqr_param_num_scalars(ctx), 147424);
    eqr_relax *r = eqr_relax_create(ctx, "relax", NULL);
    assert_int_equal(eqr_relax_segnn(ctx, r, "segnn", m, NULL), EQR_OK);
    assert_int_equal(numel_matching(ctx, ".relax"), 196608);
    assert_non_null(eqr_param_find(ctx, "segnn.layer3.relax2.wr"));
    tu_assert_error(ctx, eqr_relax_segnn(ctx, r, "segnn", m, NULL), "relaxed twice");
    eqr_relax_destroy(r);
    eqr_segnn_destroy(m);
    eqr_ctx_destroy(ctx);
}

static void test_strict_equivariant(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(2);
    fix f = {.m = eqr_segnn_create(ctx, "segnn", NULL), .b = B, .n = NP};
    assert_non_null(f.m);
    const double err = equiv_err(ctx, &f, 6), bound = tu_equiv_bound(SEGNN_DEPTH, SEGNN_AMP);
    print_message("strict SEGNN: equivariance error %.3g (bound %.3g)\n", err, bound);
    assert_true(err >= 0 && err <= bound);
    eqr_segnn_destroy(f.m);
    eqr_ctx_destroy(ctx);
}

/* Relaxed: theta = 0 with a random W_r is equivariant, theta = 0.5 is not,
 * and the projected model is again. */
static void test_relaxed(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(3);
    fix f = {.m = eqr_segnn_create(ctx, "segnn", &(eqr_segnn_opts){.layers = 2}), .b = B, .n = NP};
    eqr_relax_opts ro = {.init = EQR_RELAX_INIT_NORMAL, .init_std = 0.1f, .lambda_defect = 0.01f,
                         .lambda_norm = 0.01f, .lie_form = EQR_LIE_ACTIVATION};
    f.r = eqr_relax_create(ctx, "relax", &ro);
    assert_int_equal(eqr_relax_segnn(ctx, f.r, "segnn", f.m, NULL), EQR_OK);
    assert_int_equal(eqr_relax_num_layers(f.r), 4);
    const double bound = tu_equiv_bound(SEGNN_DEPTH, SEGNN_AMP);
    const double e0 = equiv_err(ctx, &f, 4);
    eqr_relax_set_theta(f.r, 0.5f);
    const double e1 = equiv_err(ctx, &f, 4);
    assert_int_equal(eqr_relax_project(ctx, f.r, EQR_PROJECT_DROP), EQR_OK);
    const double e2 = equiv_err(ctx, &f, 4);
    print_message("relaxed SEGNN: theta 0 %.3g, theta 0.5 %.3g, projected %.3g (bound %.3g)\n",
                  e0, e1, e2, bound);
    assert_true(e0 <= bound && e2 <= bound);
    assert_true(e1 > 3 * bound);
    eqr_relax_destroy(f.r);
    eqr_segnn_destroy(f.m);
    eqr_ctx_destroy(ctx);
}

/* The Lie-derivative and norm terms: LD = 0 for a W_r that is itself
 * equivariant (W_r2 = c I on the hidden irreps), > 0 for a random one;
 * the penalty's gradient reaches W_r and (detached form) not the TPs. */
static void test_penalties(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(4);
    eqr_segnn *m = eqr_segnn_create(ctx, "s", &(eqr_segnn_opts){.layers = 1, .hidden = "4x0e+4x1o"});
    eqr_relax_opts ro = {.lambda_defect = 1.0f, .lambda_norm = 1.0f, .lie_form = EQR_LIE_ACTIVATION};
    eqr_relax *r = eqr_relax_create(ctx, "relax", &ro);
    assert_int_equal(eqr_relax_segnn(ctx, r, "s", m, NULL), EQR_OK);
    eqr_relax_set_theta(r, 0.3f);
    eqr_tensor *w1 = eqr_param_find(ctx, "s.layer0.relax1.wr");
    eqr_tensor *w2 = eqr_param_find(ctx, "s.layer0.relax2.wr");
    assert_non_null(w1);
    assert_non_null(w2);
    const int64_t d = 16; /* 4 + 4 * 3 */
    assert_int_equal(w2->shape[0], d);
    assert_int_equal(w2->shape[1], d);
    /* W_r2 = 0.7 I, W_r1 = [0.2 I, -0.4 I]: equivariant maps */
    memset(w1->data, 0, sizeof(float) * (size_t)w1->numel);
    memset(w2->data, 0, sizeof(float) * (size_t)w2->numel);
    for (int64_t i = 0; i < d; i++) {
        w2->data[i * d + i] = 0.7f;
        w1->data[i * 2 * d + i] = 0.2f;
        w1->data[i * 2 * d + d + i] = -0.4f;
    }
    eqr_tensor *x, *v, *q;
    systems(ctx, 2, NP, &x, &v, &q);
    eqr_tensor *y = eqr_segnn_forward(ctx, m, x, v, q);
    assert_non_null(y);
    eqr_tensor *ld = eqr_relax_defect(ctx, r);
    assert_non_null(ld);
    assert_true(ld->data[0] == 0.0f); /* (c I) G x - G (c I) x: the same float products */
    eqr_relax_penalty(ctx, r);
    eqr_step_reset(ctx);
    /* random W_r: LD > 0, and the penalty's gradient reaches W_r only */
    eqr_tensor_normal(w1, eqr_ctx_rng(ctx), 0.1f);
    eqr_tensor_normal(w2, eqr_ctx_rng(ctx), 0.1f);
    eqr_grad_zero(ctx);
    systems(ctx, 2, NP, &x, &v, &q); /* the reset freed the last ones */
    y = eqr_segnn_forward(ctx, m, x, v, q);
    eqr_tensor *pen = eqr_relax_penalty(ctx, r);
    if (!pen) fail_msg("penalty: %s", eqr_error_message(ctx));
    assert_true(pen->data[0] > 0.0f);
    assert_int_equal(eqr_backward(ctx, pen), EQR_OK);
    double gw = 0, gtp = 0;
    for (int64_t i = 0; i < w1->numel; i++) gw += fabs(w1->grad ? w1->grad[i] : 0.0f);
    eqr_tensor *tw = eqr_param_find(ctx, "s.layer0.upd1.weight");
    assert_non_null(tw);
    for (int64_t i = 0; i < tw->numel; i++) gtp += fabs(tw->grad ? tw->grad[i] : 0.0f);
    assert_true(gw > 0);
    assert_true(gtp == 0); /* the penalties see the detached input */
    eqr_step_reset(ctx);
    eqr_relax_destroy(r);
    eqr_segnn_destroy(m);
    eqr_ctx_destroy(ctx);
}

/* Gradients of a small relaxed SEGNN w.r.t. every parameter (TP weights,
 * biases, W_r) by central differences of sum(y * r). */
typedef struct gfix {
    eqr_segnn *m;
    float x[18], v[18], q[6]; /* 2 systems of 3 (the step arena is reset between calls) */
} gfix;

static eqr_tensor *grad_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)in;
    gfix *g = user;
    return eqr_segnn_forward(ctx, g->m, eqr_tensor_from(ctx, 3, (int64_t[]){2, 3, 3}, g->x),
                             eqr_tensor_from(ctx, 3, (int64_t[]){2, 3, 3}, g->v),
                             eqr_tensor_from(ctx, 3, (int64_t[]){2, 3, 1}, g->q));
}

static void test_gradcheck(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(5);
    gfix g = {.m = eqr_segnn_create(ctx, "s", &(eqr_segnn_opts){.layers = 1, .hidden = "2x0e+1x1o"})};
    assert_non_null(g.m);
    eqr_relax_opts ro = {.init = EQR_RELAX_INIT_NORMAL, .init_std = 0.3f};
    eqr_relax *r = eqr_relax_create(ctx, "relax", &ro);
    assert_int_equal(eqr_relax_segnn(ctx, r, "s", g.m, NULL), EQR_OK);
    eqr_relax_set_theta(r, 0.5f);
    eqr_tensor *x, *v, *q;
    systems(ctx, 2, 3, &x, &v, &q);
    memcpy(g.x, x->data, sizeof g.x);
    memcpy(g.v, v->data, sizeof g.v);
    memcpy(g.q, q->data, sizeof g.q);
    eqr_step_reset(ctx);
    /* every parameter with a gradient (theta is a buffer) */
    eqr_tensor *in[64];
    int nin = 0;
    for (int i = 0; i < eqr_param_num_tensors(ctx) && nin < 64; i++) {
        eqr_tensor *t = eqr_param_at(ctx, i);
        if (t->flags & EQR_T_REQUIRES_GRAD) in[nin++] = t;
    }
    assert_true(nin >= 12);
    /* depth: the longest chain of sums (tensor products of fan <= 12 times
     * <= 3 CG terms, 7 of them, and the gates) < 300 */
    tu_gradcheck(ctx, grad_fn, in, nin, &g, 1e-2, 300);
    eqr_relax_destroy(r);
    eqr_segnn_destroy(g.m);
    eqr_ctx_destroy(ctx);
}

/* The bias of eqr_tp_add_bias sits on the 0e outputs only: with zero
 * inputs the product is exactly the bias there and 0 elsewhere. */
static void test_tp_bias(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(6);
    eqr_irreps a, out;
    assert_int_equal(eqr_irreps_parse(ctx, "2x0e+1x1o", &a), EQR_OK);
    assert_int_equal(eqr_irreps_parse(ctx, "3x0e+2x1o+1x0e", &out), EQR_OK);
    eqr_tp *tp = NULL;
    assert_int_equal(eqr_tp_create(ctx, "tp", &a, &a, &out, 1, &tp), EQR_OK);
    assert_int_equal(eqr_tp_add_bias(ctx, tp, "tp"), EQR_OK);
    eqr_tensor *b = eqr_tp_bias(tp);
    assert_non_null(b);
    assert_int_equal(b->numel, 4);
    eqr_tensor *z = eqr_tensor_zeros(ctx, 2, (int64_t[]){2, 5});
    eqr_tensor *y = eqr_tp_forward(ctx, tp, z, z, NULL);
    assert_non_null(y);
    const float want[10] = {b->data[0], b->data[1], b->data[2], 0, 0, 0, 0, 0, 0, b->data[3]};
    for (int r = 0; r < 2; r++) assert_memory_equal(y->data + 10 * r, want, sizeof want);
    tu_assert_error(ctx, eqr_tp_add_bias(ctx, tp, "tp"), "has a bias");
    eqr_irreps o1;
    assert_int_equal(eqr_irreps_parse(ctx, "1x1o", &o1), EQR_OK);
    eqr_tp *tp2 = NULL;
    assert_int_equal(eqr_tp_create(ctx, "tp2", &a, &a, &o1, 1, &tp2), EQR_OK);
    tu_assert_error(ctx, eqr_tp_add_bias(ctx, tp2, "tp2"), "no 0e entry");
    eqr_step_reset(ctx);
    eqr_tp_destroy(tp);
    eqr_tp_destroy(tp2);
    eqr_ctx_destroy(ctx);
}

static void test_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(7);
    assert_null(eqr_segnn_create(ctx, "s", &(eqr_segnn_opts){.hidden = "4x1o+4x0e"}));
    tu_assert_error(ctx, EQR_ERR_ARG, "list the 0e scalars first");
    assert_null(eqr_segnn_create(ctx, "s", &(eqr_segnn_opts){.hidden = "4x1o"}));
    tu_assert_error(ctx, EQR_ERR_ARG, "leading 0e");
    assert_null(eqr_segnn_create(ctx, "s", &(eqr_segnn_opts){.layers = -1}));
    tu_assert_error(ctx, EQR_ERR_ARG, "layers = -1");
    eqr_segnn *m = eqr_segnn_create(ctx, "s", &(eqr_segnn_opts){.layers = 1, .hidden = "2x0e+1x1o"});
    assert_non_null(m);
    eqr_tensor *x = eqr_tensor_zeros(ctx, 3, (int64_t[]){2, 4, 3});
    eqr_tensor *q = eqr_tensor_zeros(ctx, 3, (int64_t[]){2, 4, 2});
    assert_null(eqr_segnn_forward(ctx, m, x, x, q));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "[B, n, 1]");
    eqr_step_reset(ctx);
    eqr_segnn_destroy(m);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_param_counts), cmocka_unit_test(test_strict_equivariant),
        cmocka_unit_test(test_relaxed),      cmocka_unit_test(test_penalties),
        cmocka_unit_test(test_gradcheck),    cmocka_unit_test(test_tp_bias),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
