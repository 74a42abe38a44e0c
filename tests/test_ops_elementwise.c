/* Ops: elementwise binary ops with broadcasting, scale, add_scalar. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { ADD, SUB, MUL, DIV, NOPS };
static const char *const names[NOPS] = {"add", "sub", "mul", "div"};

static eqr_tensor *apply(eqr_ctx *ctx, int op, eqr_tensor *a, eqr_tensor *b) {
    switch (op) {
    case ADD: return eqr_add(ctx, a, b);
    case SUB: return eqr_sub(ctx, a, b);
    case MUL: return eqr_mul(ctx, a, b);
    default: return eqr_div(ctx, a, b);
    }
}

static double ref_op(int op, double x, double z) {
    switch (op) {
    case ADD: return x + z;
    case SUB: return x - z;
    case MUL: return x * z;
    default: return x / z;
    }
}

/* Naive broadcasting reference: decompose each output index and map it to
 * each operand, right-aligned, index 0 on size-1 dimensions. */
static void ref_broadcast(int op, const eqr_tensor *a, const eqr_tensor *b, int nd,
                          const int64_t *oshape, double *out) {
    int64_t numel = 1;
    for (int d = 0; d < nd; d++) numel *= oshape[d];
    for (int64_t f = 0; f < numel; f++) {
        int64_t idx[EQR_MAX_DIMS], rem = f;
        for (int d = nd - 1; d >= 0; d--) {
            idx[d] = rem % oshape[d];
            rem /= oshape[d];
        }
        int64_t ia = 0, ib = 0;
        for (int d = 0; d < a->ndim; d++)
            ia = ia * a->shape[d] + (a->shape[d] == 1 ? 0 : idx[nd - a->ndim + d]);
        for (int d = 0; d < b->ndim; d++)
            ib = ib * b->shape[d] + (b->shape[d] == 1 ? 0 : idx[nd - b->ndim + d]);
        out[f] = ref_op(op, a->data[ia], b->data[ib]);
    }
}

typedef struct bcase {
    int na;
    int64_t sa[EQR_MAX_DIMS];
    int nb;
    int64_t sb[EQR_MAX_DIMS];
    int no;
    int64_t so[EQR_MAX_DIMS]; /* expected output shape */
} bcase;

static const bcase cases[] = {
    {3, {2, 3, 4}, 3, {2, 3, 4}, 3, {2, 3, 4}},       /* same shape: flat path */
    {3, {2, 3, 4}, 2, {3, 1}, 3, {2, 3, 4}},          /* column broadcast */
    {1, {4}, 3, {2, 3, 4}, 3, {2, 3, 4}},             /* row broadcast, a smaller */
    {0, {0}, 2, {2, 3}, 2, {2, 3}},                   /* scalar (ndim 0) */
    {2, {2, 3}, 1, {1}, 2, {2, 3}},                   /* [1] broadcast */
    {3, {2, 1, 4}, 2, {3, 1}, 3, {2, 3, 4}},          /* both sides broadcast */
    {2, {5, 1}, 3, {1, 1, 6}, 3, {1, 5, 6}},          /* outer product */
    {1, {3}, 2, {1, 3}, 2, {1, 3}},                   /* equal numel, other ndim */
    {6, {2, 1, 3, 1, 2, 1}, 6, {1, 2, 1, 3, 1, 2}, 6, {2, 2, 3, 3, 2, 2}}, /* 6 dims */
    {0, {0}, 0, {0}, 0, {0}},                         /* scalar + scalar */
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

/* Keep divisors away from zero: |b| in [0.8, ...). */
static void away_from_zero(eqr_tensor *t) {
    for (int64_t i = 0; i < t->numel; i++)
        t->data[i] = t->data[i] >= 0 ? 0.8f + t->data[i] : -0.8f + t->data[i];
}

static eqr_tensor *bin_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    return apply(ctx, *(int *)user, in[0], in[1]);
}

static void test_forward_broadcast(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(11);
    char name[32];
    for (int c = 0; c < NCASES; c++) {
        const bcase *bc = &cases[c];
        snprintf(name, sizeof name, "a%d", c);
        eqr_tensor *a = tu_input(ctx, name, bc->na, bc->sa, 1.0f);
        snprintf(name, sizeof name, "b%d", c);
        eqr_tensor *b = tu_input(ctx, name, bc->nb, bc->sb, 1.0f);
        away_from_zero(b);
        for (int op = 0; op < NOPS; op++) {
            eqr_tensor *y = apply(ctx, op, a, b);
            if (!y) fail_msg("case %d %s: %s", c, names[op], eqr_error_message(ctx));
            assert_int_equal(y->ndim, bc->no);
            for (int d = 0; d < bc->no; d++) assert_int_equal(y->shape[d], bc->so[d]);
            double ref[144];
            assert_true(y->numel <= 144);
            ref_broadcast(op, a, b, bc->no, bc->so, ref);
            snprintf(name, sizeof name, "case %d %s", c, names[op]);
            /* one correctly rounded op of float inputs: within u |ref| */
            tu_assert_close_rel(name, y->data, ref, NULL, y->numel, 1);
        }
        eqr_step_reset(ctx);
    }
    eqr_ctx_destroy(ctx);
}

static void test_backward_broadcast(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(12);
    char name[32];
    for (int c = 0; c < NCASES; c++) {
        const bcase *bc = &cases[c];
        snprintf(name, sizeof name, "a%d", c);
        eqr_tensor *a = tu_input(ctx, name, bc->na, bc->sa, 1.0f);
        snprintf(name, sizeof name, "b%d", c);
        eqr_tensor *b = tu_input(ctx, name, bc->nb, bc->sb, 1.0f);
        away_from_zero(b);
        eqr_tensor *in[2] = {a, b};
        for (int op = 0; op < NOPS; op++) {
            tu_gradcheck(ctx, bin_fn, in, 2, &op, 1e-2, 4 /* one op, broadcast */);
        }
    }
    eqr_ctx_destroy(ctx);
}

/* The reduction of broadcast dimensions, checked against exact values:
 * y = a + b with a [2,3,4], b [3,1], seed ones => db[j] = 2 * 4 = 8. */
static void test_broadcast_grad_values(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(13);
    int64_t sa[3] = {2, 3, 4}, sb[2] = {3, 1};
    eqr_tensor *a = tu_input(ctx, "a", 3, sa, 1.0f);
    eqr_tensor *b = tu_input(ctx, "b", 2, sb, 1.0f);
    tu_backward_ones(ctx, eqr_add(ctx, a, b));
    for (int j = 0; j < 3; j++) assert_true(b->grad[j] == 8.0f);
    for (int i = 0; i < 24; i++) assert_true(a->grad[i] == 1.0f);
    eqr_ctx_destroy(ctx);
}

/* A frozen operand gets no gradient and the other still gets its own. */
static void test_one_side_grad(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(14);
    int64_t sa[3] = {2, 3, 4}, sb[1] = {4};
    eqr_tensor *a = tu_input(ctx, "a", 3, sa, 1.0f);
    eqr_tensor *b = eqr_param_create(ctx, "b", 1, sb, EQR_PARAM_FROZEN);
    assert_non_null(b);
    eqr_tensor_normal(b, eqr_ctx_rng(ctx), 1.0f);
    away_from_zero(b);
    eqr_tensor *in[2] = {a, b};
    for (int op = 0; op < NOPS; op++) tu_gradcheck(ctx, bin_fn, in, 2, &op, 1e-2, 4);
    assert_null(b->grad);
    /* and the mirror image: only the broadcast operand is trainable */
    eqr_tensor *c = eqr_param_create(ctx, "c", 3, sa, EQR_PARAM_FROZEN);
    eqr_tensor *d = tu_input(ctx, "d", 1, sb, 1.0f);
    eqr_tensor_normal(c, eqr_ctx_rng(ctx), 1.0f);
    away_from_zero(d);
    eqr_tensor *in2[2] = {c, d};
    for (int op = 0; op < NOPS; op++) tu_gradcheck(ctx, bin_fn, in2, 2, &op, 1e-2, 4);
    eqr_ctx_destroy(ctx);
}

/* ---- the same tensor on both sides: gradients accumulate ---- */

static eqr_tensor *self_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    return apply(ctx, *(int *)user, in[0], in[0]);
}

/* x used by two nodes: y = x * x + x */
static eqr_tensor *two_nodes_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    return eqr_add(ctx, eqr_mul(ctx, in[0], in[0]), in[0]);
}

/* One operand is a view of a view of the other (shared storage), with
 * size-1 dimensions on both sides: [1,1,5] (op) [3,1,5]. */
static eqr_tensor *view_operand_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    int64_t s3[3] = {3, 1, 5};
    eqr_tensor *v = eqr_reshape(ctx, in[0], 3, s3);
    return apply(ctx, *(int *)user, eqr_slice(ctx, v, 0, 1, 1), v);
}

static void test_same_tensor_twice(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(15);
    int64_t s[2] = {3, 5};
    eqr_tensor *x = tu_input(ctx, "x", 2, s, 1.0f);
    away_from_zero(x);
    for (int op = 0; op < NOPS; op++) tu_gradcheck(ctx, self_fn, &x, 1, &op, 1e-2, 4);
    tu_gradcheck(ctx, two_nodes_fn, &x, 1, NULL, 1e-2, 4);
    for (int op = 0; op < NOPS; op++)
        tu_gradcheck(ctx, view_operand_fn, &x, 1, &op, 1e-2, 4);

    /* exact values: d/dx sum(x*x) = 2x, d/dx sum(x/x) = 0 */
    eqr_grad_zero(ctx);
    eqr_step_reset(ctx);
    eqr_tensor *y = eqr_sum_all(ctx, eqr_mul(ctx, x, x));
    assert_int_equal(eqr_backward(ctx, y), EQR_OK);
    double ref[15];
    for (int i = 0; i < 15; i++) ref[i] = 2.0 * x->data[i];
    tu_assert_close_rel("d sum(x*x)", x->grad, ref, NULL, 15, 1); /* x + x, exact */
    eqr_grad_zero(ctx);
    eqr_step_reset(ctx);
    y = eqr_sum_all(ctx, eqr_div(ctx, x, x));
    assert_int_equal(eqr_backward(ctx, y), EQR_OK);
    /* 1/x - x/x^2: two terms of size 1/|x|, each a few roundings */
    double mag[15];
    for (int i = 0; i < 15; i++) ref[i] = 0.0, mag[i] = 2.0 / fabs(x->data[i]);
    tu_assert_close_rel("d sum(x/x)", x->grad, ref, mag, 15, 3);
    eqr_ctx_destroy(ctx);
}

/* ---- scale and add_scalar ---- */

static eqr_tensor *scale_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    return eqr_scale(ctx, in[0], -2.5f);
}

static eqr_tensor *add_scalar_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    return eqr_add_scalar(ctx, in[0], 0.75f);
}

static eqr_tensor *scalar_plus_x_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    eqr_tensor *y = user ? eqr_add_scalar(ctx, in[0], 0.75f) : eqr_scale(ctx, in[0], -2.5f);
    return eqr_add(ctx, y, in[0]);
}

static void test_scalar_ops(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(16);
    int64_t s[3] = {2, 3, 4};
    eqr_tensor *x = tu_input(ctx, "x", 3, s, 1.0f);
    eqr_tensor *y = eqr_scale(ctx, x, -2.5f);
    eqr_tensor *z = eqr_add_scalar(ctx, x, 0.75f);
    assert_non_null(y);
    assert_non_null(z);
    assert_true(eqr_tensor_same_shape(x, y) && eqr_tensor_same_shape(x, z));
    double ry[24], rz[24];
    for (int i = 0; i < 24; i++) {
        ry[i] = -2.5 * x->data[i];
        rz[i] = x->data[i] + 0.75;
    }
    /* one rounding each */
    tu_assert_close_rel("scale", y->data, ry, NULL, 24, 1);
    tu_assert_close_rel("add_scalar", z->data, rz, NULL, 24, 1);
    tu_gradcheck(ctx, scale_fn, &x, 1, NULL, 1e-2, 4);
    tu_gradcheck(ctx, add_scalar_fn, &x, 1, NULL, 1e-2, 4);
    tu_gradcheck(ctx, scalar_plus_x_fn, &x, 1, NULL, 1e-2, 4);
    tu_gradcheck(ctx, scalar_plus_x_fn, &x, 1, (void *)1, 1e-2, 4);
    /* scalar tensor input keeps ndim 0 */
    eqr_tensor *sc = eqr_scale(ctx, eqr_tensor_scalar(ctx, 3.0f), 2.0f);
    assert_int_equal(sc->ndim, 0);
    assert_true(sc->data[0] == 6.0f);
    eqr_ctx_destroy(ctx);
}

/* ---- errors, NULL propagation, tape recording ---- */

static void test_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(17);
    int64_t s23[2] = {2, 3}, s4[1] = {4}, s234[3] = {2, 3, 4}, s32[2] = {3, 2};
    eqr_tensor *a = eqr_tensor_zeros(ctx, 2, s23);
    eqr_tensor *b = eqr_tensor_zeros(ctx, 1, s4);
    for (int op = 0; op < NOPS; op++) {
        assert_null(apply(ctx, op, a, b));
        tu_assert_error(ctx, EQR_ERR_SHAPE, "[2,3] and [4]");
    }
    assert_null(eqr_mul(ctx, eqr_tensor_zeros(ctx, 3, s234), eqr_tensor_zeros(ctx, 2, s32)));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "eqr_mul");

    /* a caller's NULL input: EQR_ERR_ARG naming the argument */
    for (int op = 0; op < NOPS; op++) {
        assert_null(apply(ctx, op, NULL, a));
        tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
        assert_null(apply(ctx, op, a, NULL));
        tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    }
    assert_null(eqr_scale(ctx, NULL, 2.0f));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_null(eqr_add_scalar(ctx, NULL, 2.0f));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_int_equal(eqr_error_status(ctx), EQR_OK);

    /* a context in error: nothing happens, first message kept */
    assert_null(eqr_add(ctx, a, b));
    char first[512];
    strcpy(first, eqr_error_message(ctx));
    assert_null(eqr_add(ctx, a, a));
    assert_null(eqr_scale(ctx, a, 1.0f));
    assert_string_equal(first, eqr_error_message(ctx));
    eqr_error_clear(ctx);

    /* zero-size broadcast is fine and empty */
    int64_t s03[2] = {0, 3}, s3[1] = {3};
    eqr_tensor *e = eqr_add(ctx, eqr_tensor_zeros(ctx, 2, s03), eqr_tensor_zeros(ctx, 1, s3));
    assert_non_null(e);
    assert_int_equal(e->numel, 0);
    assert_int_equal(e->shape[0], 0);
    assert_int_equal(e->shape[1], 3);
    eqr_ctx_destroy(ctx);
}

static void test_tape_recording(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(18);
    int64_t s[2] = {2, 3};
    eqr_tensor *p = tu_input(ctx, "p", 2, s, 1.0f);
    eqr_tensor *c = eqr_tensor_zeros(ctx, 2, s);
    int64_t t0 = eqr_tape_num_nodes(ctx);
    eqr_tensor *y = eqr_add(ctx, c, c); /* no input needs grad */
    assert_int_equal(eqr_tape_num_nodes(ctx), t0);
    assert_false(y->flags & EQR_T_REQUIRES_GRAD);
    y = eqr_mul(ctx, p, c);
    assert_int_equal(eqr_tape_num_nodes(ctx), t0 + 1);
    assert_true(y->flags & EQR_T_REQUIRES_GRAD);
    int prev = eqr_grad_set_enabled(ctx, 0);
    y = eqr_scale(ctx, p, 2.0f);
    assert_int_equal(eqr_tape_num_nodes(ctx), t0 + 1);
    eqr_grad_set_enabled(ctx, prev);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_broadcast),     cmocka_unit_test(test_backward_broadcast),
        cmocka_unit_test(test_broadcast_grad_values), cmocka_unit_test(test_one_side_grad),
        cmocka_unit_test(test_same_tensor_twice),     cmocka_unit_test(test_scalar_ops),
        cmocka_unit_test(test_errors),                cmocka_unit_test(test_tape_recording),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
