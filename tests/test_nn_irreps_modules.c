/* Modules of the irreps layers (module.h): the tensor product (tuple io
 * {x1, x2} -> {y, x2}), irreps batch norm and layer norm, next to the irreps
 * linear and the gate: forwards bit-identical to the layers by hand, tuple
 * stacks, equivariance of each module under random rotations with parity
 * (float32 bounds), the train / eval switch, the summary's types and
 * counts, and the errors (mismatched irreps, wrong tuple arity). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *IN1 = "2x0e+2x1o+1x2e", *IN2 = "1x0e+1x1o", *OUT = "2x0e+2x1o+1x1e+1x2e";

static void assert_same(const eqr_tensor *a, const eqr_tensor *b) {
    assert_non_null(a);
    assert_non_null(b);
    assert_true(eqr_tensor_same_shape(a, b));
    assert_memory_equal(a->data, b->data, (size_t)a->numel * sizeof(float));
}

static void assert_ok(eqr_ctx *ctx) {
    if (eqr_error_status(ctx) != EQR_OK) fail_msg("context error: %s", eqr_error_message(ctx));
}

static eqr_irreps parse(eqr_ctx *ctx, const char *s) {
    eqr_irreps ir;
    if (eqr_irreps_parse(ctx, s, &ir) != EQR_OK) fail_msg("parse %s", s);
    return ir;
}

/* The irreps of [x1, x2] side by side (the equivariance measure takes one
 * input; x1 and x2 transform each by its own irreps). */
static eqr_irreps concat(const eqr_irreps *a, const eqr_irreps *b) {
    eqr_irreps c = *a;
    for (int i = 0; i < b->n; i++) c.e[c.n++] = b->e[i];
    return c;
}

/* A tuple module measured as a function of [x1, x2]. */
typedef struct tmod {
    eqr_module *m;
    int64_t d1, d2;
} tmod;
static eqr_tensor *f_tuple(eqr_ctx *ctx, eqr_tensor *x, eqr_tensor *pos, void *user) {
    (void)pos;
    tmod *t = user;
    eqr_tensor *io[2] = {eqr_slice(ctx, x, 1, 0, t->d1), eqr_slice(ctx, x, 1, t->d1, t->d2)};
    if (eqr_module_forward_n(ctx, t->m, 2, io) != EQR_OK) return NULL;
    return io[0];
}
static eqr_tensor *f_one(eqr_ctx *ctx, eqr_tensor *x, eqr_tensor *pos, void *user) {
    (void)pos;
    return eqr_module_forward(ctx, user, x);
}

/* Rounding structure of a tensor product in1 x in2 -> out (the kernel of
 * tp_internal.h, as test_equivariance_tp.c counts it): *depth = max over
 * output entries of K + max d1 + max d2 + 2 (K = sum m1 m2 of the entry's
 * paths: T = sum_j C x2, Z = sum_i x1 T, one GEMM over K, the add, c_p C
 * rounded), *terms = the most CG terms one output sums. */
static void tp_rounding(const eqr_irreps *a, const eqr_irreps *b, const eqr_irreps *c,
                        int64_t *depth, int64_t *terms) {
    *depth = *terms = 0;
    for (int ic = 0; ic < c->n; ic++) {
        int64_t K = 0, d1m = 0, d2m = 0, n = 0;
        for (int ia = 0; ia < a->n; ia++)
            for (int ib = 0; ib < b->n; ib++) {
                const eqr_irrep_entry A = a->e[ia], B = b->e[ib], O = c->e[ic];
                const int lo = A.l > B.l ? A.l - B.l : B.l - A.l;
                if (A.p * B.p != O.p || O.l < lo || O.l > A.l + B.l) continue;
                K += (int64_t)A.mul * B.mul;
                n += (int64_t)A.mul * B.mul * (2 * A.l + 1) * (2 * B.l + 1);
                d1m = d1m > 2 * A.l + 1 ? d1m : 2 * A.l + 1;
                d2m = d2m > 2 * B.l + 1 ? d2m : 2 * B.l + 1;
            }
        *depth = *depth > K + d1m + d2m + 2 ? *depth : K + d1m + d2m + 2;
        *terms = *terms > n ? *terms : n;
    }
}

static void test_tp_module(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    eqr_irreps a = parse(ctx, IN1), b = parse(ctx, IN2), c = parse(ctx, OUT);
    const int p0 = eqr_param_num_tensors(ctx);
    eqr_module *m = eqr_tp_module(ctx, "tp", &a, &b, &c, 1);
    assert_non_null(m);
    assert_string_equal(eqr_module_kind(m), "tp");
    eqr_tp *tp = eqr_module_tp(m);
    assert_non_null(tp);
    assert_null(eqr_module_tp(NULL));
    assert_null(eqr_module_irreps_linear(m));
    /* its parameters: the weight and the 0e bias, in the store order */
    assert_int_equal(eqr_module_num_params(m), 2);
    assert_int_equal(eqr_module_param_index(m, 0), p0);
    assert_ptr_equal(eqr_param_at(ctx, p0), eqr_tp_weight(tp));
    assert_ptr_equal(eqr_param_at(ctx, p0 + 1), eqr_tp_bias(tp));
    int64_t np = -1, nb = -1;
    eqr_module_num_scalars(m, &np, &nb);
    assert_int_equal(np, eqr_tp_num_weights(tp) + 2);
    assert_int_equal(nb, 0);
    eqr_ftype ti = eqr_module_in_type(m), to = eqr_module_out_type(m);
    assert_int_equal(ti.kind, EQR_FTYPE_IRREPS);
    assert_true(eqr_irreps_equal(ti.irreps, &a));
    assert_true(eqr_irreps_equal(to.irreps, &c));
    assert_true(eqr_irreps_equal(eqr_tp_irreps_in2(tp), &b));
    /* the tuple forward is the layer's; x2 passes through */
    eqr_tensor *x1 = tu_input(ctx, "x1", 2, (int64_t[]){5, eqr_irreps_dim(&a)}, 1.0f);
    eqr_tensor *x2 = tu_input(ctx, "x2", 2, (int64_t[]){5, eqr_irreps_dim(&b)}, 1.0f);
    eqr_tensor *io[2] = {x1, x2};
    assert_int_equal(eqr_module_forward_n(ctx, m, 2, io), EQR_OK);
    assert_same(io[0], eqr_tp_forward(ctx, tp, x1, x2, NULL));
    assert_ptr_equal(io[1], x2);
    eqr_module_destroy(m);
    eqr_ctx_destroy(ctx);
}

/* {h, attr} through tp -> gate -> tp -> linear equals the layers by hand. */
static void test_tuple_stack(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(2);
    eqr_irreps a = parse(ctx, IN1), b = parse(ctx, IN2), mid = parse(ctx, "3x0e+2x0e+2x1o");
    eqr_irreps sc = parse(ctx, "3x0e"), gated = parse(ctx, "2x1o"), g_out = parse(ctx, "3x0e+2x1o");
    eqr_irreps c = parse(ctx, OUT);
    eqr_module *net = eqr_sequential_create(ctx, "net");
    eqr_sequential_add(net, eqr_tp_module(ctx, "tp1", &a, &b, &mid, 1));
    eqr_sequential_add(net, eqr_gate_module(ctx, NULL, &sc, &gated));
    eqr_sequential_add(net, eqr_tp_module(ctx, "tp2", &g_out, &b, &c, 0));
    eqr_sequential_add(net, eqr_irreps_linear_module(ctx, "lin", &c, &a));
    assert_non_null(net);
    assert_ok(ctx);
    eqr_tensor *h = tu_input(ctx, "h", 2, (int64_t[]){6, eqr_irreps_dim(&a)}, 1.0f);
    eqr_tensor *e = tu_input(ctx, "e", 2, (int64_t[]){6, eqr_irreps_dim(&b)}, 1.0f);
    eqr_tensor *io[2] = {h, e};
    assert_int_equal(eqr_module_forward_n(ctx, net, 2, io), EQR_OK);
    assert_ptr_equal(io[1], e);
    eqr_tensor *r = eqr_tp_forward(ctx, eqr_module_tp(eqr_module_child(net, 0)), h, e, NULL);
    r = eqr_gate(ctx, r, 3, 1, (int64_t[]){2}, (int[]){1});
    r = eqr_tp_forward(ctx, eqr_module_tp(eqr_module_child(net, 2)), r, e, NULL);
    r = eqr_irreps_linear_forward(ctx, eqr_module_irreps_linear(eqr_module_child(net, 3)), r);
    assert_same(io[0], r);
    eqr_ftype t = eqr_module_out_type(net);
    assert_true(eqr_irreps_equal(t.irreps, &a));
    /* the one-tensor forward of a tuple stack is refused by the product */
    assert_null(eqr_module_forward(ctx, net, h));
    tu_assert_error(ctx, EQR_ERR_ARG, "'tp1' (tp) takes (x1, x2)");
    eqr_module_destroy(net);
    eqr_ctx_destroy(ctx);
}

/* Each module under 8 random rotations (every other one with parity). */
static void test_equivariance(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(3);
    eqr_irreps a = parse(ctx, IN1), b = parse(ctx, IN2), c = parse(ctx, OUT);
    eqr_irreps ab = concat(&a, &b);
    enum { N = 6 };
    const int64_t d1 = eqr_irreps_dim(&a), d2 = eqr_irreps_dim(&b);
    eqr_tensor *x = tu_input(ctx, "x", 2, (int64_t[]){N, d1 + d2}, 1.0f);
    eqr_tensor *xa = tu_input(ctx, "xa", 2, (int64_t[]){N, d1}, 1.0f);
    /* shift the 0e inputs of the norms away from 0 (a mean to subtract) */
    for (int64_t r = 0; r < N; r++) xa->data[r * d1] += 2.0f;
    double rel = -1, tol;
    int64_t depth, terms;

    /* tensor product: tp_rounding's depth, +1 for the bias add; amp: the
     * product is bilinear (a relative perturbation of x1 and of x2 each
     * reaches the output: 2) and sums `terms` CG terms of random sign, whose
     * magnitude sum is ~sqrt(terms) times the value */
    tmod t = {eqr_tp_module(ctx, "tp", &a, &b, &c, 1), d1, d2};
    assert_non_null(t.m);
    tp_rounding(&a, &b, &c, &depth, &terms);
    tol = tu_equiv_bound(depth + 1, 2.0 * sqrt((double)terms));
    assert_int_equal(eqr_irreps_equivariance(ctx, f_tuple, &t, &ab, &c, x, NULL, 8, EQR_EQ_PARITY, &rel),
                     EQR_OK);
    print_message("tp module: equivariance error %.3g (bound %.3g)\n", rel, tol);
    if (!(rel >= 0 && rel <= tol)) fail_msg("tp module: equivariance error %g > %g", rel, tol);

    /* irreps linear: sums of at most 2 inputs' copies and the fan-in scale
     * (depth 2 + 2 + 1), amp sqrt(2 (2l+1)) <= sqrt(10) of a random-sign sum */
    eqr_module *lin = eqr_irreps_linear_module(ctx, "lin", &a, &c);
    tol = tu_equiv_bound(5, sqrt(10.0));
    assert_int_equal(eqr_irreps_equivariance(ctx, f_one, lin, &a, &c, xa, NULL, 8, EQR_EQ_PARITY, &rel),
                     EQR_OK);
    print_message("irreps_linear module: %.3g (bound %.3g)\n", rel, tol);
    if (!(rel >= 0 && rel <= tol)) fail_msg("irreps_linear module: %g > %g", rel, tol);

    /* norms: the statistic of a channel sums N (2l+1) <= 30 squares (batch)
     * or mul (2l+1) <= 6 (layer), then the mean, eps, sqrt, division and the
     * affine map (8 more); amp 4: the 0e centring x - mean cancels a mean of
     * 2 against values ~ N(2, 1) */
    eqr_module *bn = eqr_irreps_bn_module(ctx, "bn", &a, NULL);
    eqr_module *ln = eqr_irreps_ln_module(ctx, "ln", &a, NULL);
    assert_non_null(bn);
    assert_non_null(ln);
    for (int mode = 1; mode >= 0; mode--) {
        eqr_module_set_training(bn, mode);
        tol = tu_equiv_bound(N * 5 + 8, 4.0);
        assert_int_equal(
            eqr_irreps_equivariance(ctx, f_one, bn, &a, &a, xa, NULL, 8, EQR_EQ_PARITY, &rel), EQR_OK);
        print_message("irreps_bn module (%s): %.3g (bound %.3g)\n", mode ? "train" : "eval", rel, tol);
        if (!(rel >= 0 && rel <= tol)) fail_msg("irreps_bn module: %g > %g", rel, tol);
    }
    tol = tu_equiv_bound(6 + 8, 4.0);
    assert_int_equal(eqr_irreps_equivariance(ctx, f_one, ln, &a, &a, xa, NULL, 8, EQR_EQ_PARITY, &rel),
                     EQR_OK);
    print_message("irreps_ln module: %.3g (bound %.3g)\n", rel, tol);
    if (!(rel >= 0 && rel <= tol)) fail_msg("irreps_ln module: %g > %g", rel, tol);
    eqr_module_destroy(t.m);
    eqr_module_destroy(lin);
    eqr_module_destroy(bn);
    eqr_module_destroy(ln);
    eqr_ctx_destroy(ctx);
}

/* The training switch reaches the batch norm inside a container: batch
 * statistics and a running update in training, the running statistics in
 * evaluation; the layer norm is the same in both. */
static void test_train_eval(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(4);
    eqr_irreps a = parse(ctx, IN1);
    eqr_module *net = eqr_sequential_create(ctx, "net");
    eqr_sequential_add(net, eqr_irreps_bn_module(ctx, "bn", &a, NULL));
    eqr_sequential_add(net, eqr_irreps_ln_module(ctx, "ln", &a, NULL));
    assert_non_null(net);
    eqr_irreps_bn *bn = eqr_module_irreps_bn(eqr_module_child(net, 0));
    eqr_irreps_ln *ln = eqr_module_irreps_ln(eqr_module_child(net, 1));
    assert_non_null(bn);
    assert_non_null(ln);
    assert_null(eqr_module_irreps_bn(eqr_module_child(net, 1)));
    assert_string_equal(eqr_module_kind(eqr_module_child(net, 0)), "irreps_bn");
    assert_string_equal(eqr_module_kind(eqr_module_child(net, 1)), "irreps_ln");
    const int64_t d = eqr_irreps_dim(&a);
    eqr_tensor *x = tu_input(ctx, "x", 2, (int64_t[]){7, d}, 1.0f);
    eqr_tensor *rv = eqr_irreps_bn_running_var(bn);
    float keep[64];
    memcpy(keep, rv->data, sizeof(float) * (size_t)rv->numel);
    assert_int_equal(eqr_irreps_bn_training(bn), 1);
    eqr_tensor *y = eqr_module_forward(ctx, net, x);
    assert_non_null(y);
    assert_true(memcmp(keep, rv->data, sizeof(float) * (size_t)rv->numel) != 0); /* updated */
    eqr_module_set_training(net, 0);
    assert_int_equal(eqr_irreps_bn_training(bn), 0);
    assert_int_equal(eqr_module_training(eqr_module_child(net, 1)), 0);
    memcpy(keep, rv->data, sizeof(float) * (size_t)rv->numel);
    y = eqr_module_forward(ctx, net, x);
    assert_memory_equal(keep, rv->data, sizeof(float) * (size_t)rv->numel); /* not updated */
    /* by hand with the layer in evaluation mode */
    eqr_tensor *r = eqr_irreps_ln_forward(ctx, ln, eqr_irreps_bn_forward(ctx, bn, x));
    assert_same(y, r);
    /* evaluation takes a single row (training refuses it: a 0e variance) */
    eqr_tensor *x1 = eqr_slice(ctx, x, 0, 0, 1);
    assert_non_null(eqr_module_forward(ctx, net, x1));
    eqr_module_set_training(net, 1);
    assert_int_equal(eqr_irreps_bn_training(bn), 1);
    assert_null(eqr_module_forward(ctx, net, x1));
    tu_assert_error(ctx, EQR_ERR_SHAPE, NULL);
    eqr_module_destroy(net);
    eqr_ctx_destroy(ctx);
}

static void test_summary(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(5);
    eqr_irreps a = parse(ctx, IN1), b = parse(ctx, IN2), c = parse(ctx, OUT);
    eqr_module *net = eqr_sequential_create(ctx, "net");
    eqr_sequential_add(net, eqr_tp_module(ctx, "tp", &a, &b, &c, 1));
    eqr_sequential_add(net, eqr_irreps_bn_module(ctx, "bn", &c, NULL));
    eqr_sequential_add(net, eqr_irreps_ln_module(ctx, "ln", &c, NULL));
    eqr_sequential_add(net, eqr_irreps_linear_module(ctx, "lin", &c, &a));
    assert_non_null(net);
    const int64_t nw = eqr_tp_num_weights(eqr_module_tp(eqr_module_child(net, 0)));
    /* channels of OUT: C = 2 + 2 + 1 + 1 = 6, 0e channels B = 2 */
    const int64_t tp_p = nw + 2, bn_p = 6 + 2, ln_p = 6 + 2;
    const int64_t lin_p = eqr_irreps_linear_weight(eqr_module_irreps_linear(eqr_module_child(net, 3)))->numel;
    assert_int_equal(lin_p, 2 * 2 + 2 * 2 + 1 * 1); /* 0e, 1o and 2e blocks of OUT -> IN1 */
    char s[4096];
    int len = eqr_module_summary(ctx, net, s, sizeof s);
    assert_true(len > 0 && len < (int)sizeof s);
    print_message("%s", s);
    char want[256];
    snprintf(want, sizeof want, "%-22s %-14s %-40s %10lld  x2 1x0e+1x1o, ", "  tp", "tp",
             "2x0e+2x1o+1x2e -> 2x0e+2x1o+1x1e+1x2e", (long long)tp_p);
    if (!strstr(s, want)) fail_msg("no line \"%s\" in\n%s", want, s);
    snprintf(want, sizeof want, "%-22s %-14s %-40s %10lld\n", "  bn", "irreps_bn",
             "2x0e+2x1o+1x1e+1x2e -> 2x0e+2x1o+1x1e+1x2e", (long long)bn_p);
    if (!strstr(s, want)) fail_msg("no line \"%s\" in\n%s", want, s);
    snprintf(want, sizeof want, "%-22s %-14s %-40s %10lld\n", "  ln", "irreps_ln",
             "2x0e+2x1o+1x1e+1x2e -> 2x0e+2x1o+1x1e+1x2e", (long long)ln_p);
    if (!strstr(s, want)) fail_msg("no line \"%s\" in\n%s", want, s);
    snprintf(want, sizeof want, "%-22s %-14s %-40s %10lld\n", "net", "sequential",
             "2x0e+2x1o+1x2e -> 2x0e+2x1o+1x2e", (long long)(tp_p + bn_p + ln_p + lin_p));
    if (!strstr(s, want)) fail_msg("no line \"%s\" in\n%s", want, s);
    /* tensors: tp weight + bias, bn weight + bias, ln weight + bias, lin w;
     * buffers: bn running mean [2] and var [6] */
    snprintf(want, sizeof want, "total: %lld parameters in 7 tensors, 8 buffer values\n",
             (long long)(tp_p + bn_p + ln_p + lin_p));
    if (!strstr(s, want)) fail_msg("no line \"%s\" in\n%s", want, s);
    eqr_module_destroy(net);
    eqr_ctx_destroy(ctx);
}

static void test_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(6);
    eqr_irreps a = parse(ctx, IN1), b = parse(ctx, IN2), c = parse(ctx, OUT);
    eqr_irreps odd = parse(ctx, "2x1o");
    eqr_module *m = eqr_tp_module(ctx, "tp", &a, &b, &c, 0);
    assert_non_null(m);
    eqr_tensor *x1 = tu_input(ctx, "x1", 2, (int64_t[]){3, eqr_irreps_dim(&a)}, 1.0f);
    eqr_tensor *x2 = tu_input(ctx, "x2", 2, (int64_t[]){3, eqr_irreps_dim(&b)}, 1.0f);
    /* wrong arity: one tensor, one or three in the tuple, a NULL x2 */
    assert_null(eqr_module_forward(ctx, m, x1));
    tu_assert_error(ctx, EQR_ERR_ARG, "module 'tp' (tp) takes (x1, x2): use eqr_module_forward_n");
    eqr_tensor *io[3] = {x1, x2, x2};
    assert_int_equal(eqr_module_forward_n(ctx, m, 1, io), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "the tuple is (x1, x2), n = 2 (got 1)");
    io[0] = x1;
    assert_int_equal(eqr_module_forward_n(ctx, m, 3, io), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "n = 2 (got 3)");
    assert_null(io[0]);
    io[0] = x1;
    io[1] = NULL;
    assert_int_equal(eqr_module_forward_n(ctx, m, 2, io), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "io[1] (x2) is NULL");
    /* x1 and x2 swapped: the product's shape error */
    io[0] = x2;
    io[1] = x1;
    assert_int_equal(eqr_module_forward_n(ctx, m, 2, io), EQR_ERR_SHAPE);
    tu_assert_error(ctx, EQR_ERR_SHAPE, "must be [N, 13] and [N, 4]");
    eqr_module_destroy(m);
    /* mismatched irreps between modules: a product after a linear of other irreps */
    eqr_module *s = eqr_sequential_create(ctx, "s");
    eqr_sequential_add(s, eqr_irreps_linear_module(ctx, "lin", &a, &c));
    assert_int_equal(eqr_sequential_add(s, eqr_tp_module(ctx, "tp2", &a, &b, &c, 0)), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG,
                    "layer 'lin' (irreps_linear) gives 2x0e+2x1o+1x1e+1x2e but the next layer 'tp2' "
                    "(tp) expects 2x0e+2x1o+1x2e");
    eqr_module_destroy(s);
    s = eqr_sequential_create(ctx, "s2");
    eqr_sequential_add(s, eqr_tp_module(ctx, "tp3", &a, &b, &c, 0));
    assert_int_equal(eqr_sequential_add(s, eqr_irreps_bn_module(ctx, "bn", &a, NULL)), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "but the next layer 'bn' (irreps_bn) expects 2x0e+2x1o+1x2e");
    eqr_module_destroy(s);
    /* a bias needs a 0e output; a product needs a name (its weights) */
    assert_null(eqr_tp_module(ctx, "tp4", &a, &b, &odd, 1));
    tu_assert_error(ctx, EQR_ERR_ARG, "no 0e entry");
    assert_null(eqr_tp_module(ctx, NULL, &a, &b, &c, 0));
    tu_assert_error(ctx, EQR_ERR_ARG, NULL);
    assert_null(eqr_tp_module(ctx, "tp5", NULL, &b, &c, 0));
    tu_assert_error(ctx, EQR_ERR_ARG, NULL);
    /* norms: a taken name, an input not ending in dim */
    assert_null(eqr_irreps_ln_module(ctx, "tp", &a, NULL)); /* "tp.weight" is the product's */
    tu_assert_error(ctx, EQR_ERR_ARG, NULL);
    eqr_module *bn = eqr_irreps_bn_module(ctx, "bn6", &b, NULL);
    assert_non_null(bn);
    assert_null(eqr_module_forward(ctx, bn, x1));
    tu_assert_error(ctx, EQR_ERR_SHAPE, NULL);
    eqr_module_destroy(bn);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tp_module),   cmocka_unit_test(test_tuple_stack),
        cmocka_unit_test(test_equivariance), cmocka_unit_test(test_train_eval),
        cmocka_unit_test(test_summary),     cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
