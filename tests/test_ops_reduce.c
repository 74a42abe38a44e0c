/* Ops: reductions (sum, mean, max over an axis; sum_all, mean_all). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { SUM, MEAN, MAX, NRED };
static const char *const names[NRED] = {"sum", "mean", "max"};

static eqr_tensor *apply(eqr_ctx *ctx, int op, eqr_tensor *x, int axis, int keepdim) {
    switch (op) {
    case SUM: return eqr_sum(ctx, x, axis, keepdim);
    case MEAN: return eqr_mean(ctx, x, axis, keepdim);
    default: return eqr_max(ctx, x, axis, keepdim);
    }
}

/* Naive reference on a [2,3,4] tensor over axis ax (0..2), output in
 * row-major order of the remaining axes. */
static void ref_reduce(int op, const float *x, int ax, double *out, double *mag) {
    const int d[3] = {2, 3, 4};
    int o = 0;
    int i0max = ax == 0 ? 1 : d[0], i1max = ax == 1 ? 1 : d[1], i2max = ax == 2 ? 1 : d[2];
    for (int i0 = 0; i0 < i0max; i0++)
        for (int i1 = 0; i1 < i1max; i1++)
            for (int i2 = 0; i2 < i2max; i2++) {
                double acc = op == MAX ? -INFINITY : 0.0, a = 0;
                for (int k = 0; k < d[ax]; k++) {
                    int j[3] = {i0, i1, i2};
                    j[ax] = k;
                    double v = x[(j[0] * 3 + j[1]) * 4 + j[2]];
                    acc = op == MAX ? fmax(acc, v) : acc + v;
                    a += fabs(v);
                }
                mag[o] = op == MAX ? 0 : op == MEAN ? a / d[ax] : a; /* max: exact */
                out[o++] = op == MEAN ? acc / d[ax] : acc;
            }
}

/* Distinct values 0.1 apart in a scrambled order: max has no near-ties
 * within the finite-difference step. */
static void fill_distinct(eqr_tensor *x) {
    for (int64_t i = 0; i < x->numel; i++) x->data[i] = 0.1f * (float)((i * 7) % x->numel) - 1.0f;
}

static void test_forward_axes(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(31);
    int64_t s[3] = {2, 3, 4};
    eqr_tensor *x = tu_input(ctx, "x", 3, s, 1.0f);
    char what[64];
    for (int op = 0; op < NRED; op++)
        for (int axis = -3; axis < 3; axis++)
            for (int keep = 0; keep < 2; keep++) {
                eqr_tensor *y = apply(ctx, op, x, axis, keep);
                if (!y) fail_msg("%s axis %d: %s", names[op], axis, eqr_error_message(ctx));
                int ax = axis < 0 ? axis + 3 : axis;
                /* shape: axis removed, or kept as 1 */
                assert_int_equal(y->ndim, keep ? 3 : 2);
                for (int d = 0, k = 0; d < 3; d++) {
                    if (d == ax && !keep) continue;
                    assert_int_equal(y->shape[k++], d == ax ? 1 : s[d]);
                }
                double ref[12], mag[12];
                ref_reduce(op, x->data, ax, ref, mag);
                snprintf(what, sizeof what, "%s axis %d keep %d", names[op], axis, keep);
                /* a sum of <= 4 terms, and mean's divide */
                tu_assert_close_bound(what, y->data, ref, mag, y->numel, s[ax] + 1, 1);
            }
    /* 1-d without keepdim gives a scalar */
    int64_t s5[1] = {5};
    eqr_tensor *v = eqr_tensor_zeros(ctx, 1, s5);
    for (int i = 0; i < 5; i++) v->data[i] = (float)(i * 3 % 5);
    eqr_tensor *m = eqr_max(ctx, v, 0, 0);
    assert_int_equal(m->ndim, 0);
    assert_true(m->data[0] == 4.0f);
    eqr_tensor *sm = eqr_sum(ctx, v, -1, 0);
    assert_int_equal(sm->ndim, 0);
    assert_true(sm->data[0] == 10.0f);
    eqr_ctx_destroy(ctx);
}

typedef struct rcfg {
    int op, axis, keep;
} rcfg;

static eqr_tensor *red_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    const rcfg *c = user;
    return apply(ctx, c->op, in[0], c->axis, c->keep);
}

/* x + red(x, axis, keepdim): x feeds two nodes and the add's backward runs
 * first, so the reduction's backward must accumulate. */
static eqr_tensor *red_plus_x_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    const rcfg *c = user;
    return eqr_add(ctx, in[0], apply(ctx, c->op, in[0], c->axis, 1));
}

static void test_backward_axes(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(32);
    int64_t s[3] = {2, 3, 4};
    eqr_tensor *x = tu_input(ctx, "x", 3, s, 1.0f);
    fill_distinct(x);
    for (int op = 0; op < NRED; op++)
        for (int axis = -1; axis < 3; axis++) {
            rcfg c = {op, axis, axis & 1};
            tu_gradcheck(ctx, red_fn, &x, 1, &c, 1e-2, 26 /* sums of <= 24 terms */);
            tu_gradcheck(ctx, red_plus_x_fn, &x, 1, &c, 1e-2, 26 /* sums of <= 24 terms, + x */);
        }
    eqr_ctx_destroy(ctx);
}

/* Ties: the whole gradient goes to the first maximal element. */
static void test_max_ties_and_nan(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(33);
    int64_t s[2] = {2, 4};
    eqr_tensor *x = tu_input(ctx, "x", 2, s, 1.0f);
    const float v[8] = {1, 3, 3, 2, /* row 2 */ 5, 0, 5, 5};
    memcpy(x->data, v, sizeof v);
    eqr_tensor *y = eqr_max(ctx, x, 1, 0);
    assert_true(y->data[0] == 3.0f && y->data[1] == 5.0f);
    eqr_tensor *seed = eqr_tensor_zeros(ctx, 1, (int64_t[]){2});
    seed->data[0] = 2.0f;
    seed->data[1] = -1.0f;
    assert_int_equal(eqr_backward_from(ctx, y, seed), EQR_OK);
    const double want[8] = {0, 2, 0, 0, -1, 0, 0, 0};
    tu_assert_close("max ties", x->grad, want, 8, 0.0, 0.0);
    /* ties along a non-last axis */
    eqr_grad_zero(ctx);
    eqr_step_reset(ctx);
    y = eqr_max(ctx, x, 0, 1); /* columns: (1,5) (3,0) (3,5) (2,5) */
    assert_int_equal(eqr_backward(ctx, eqr_sum_all(ctx, y)), EQR_OK);
    const double want0[8] = {0, 1, 0, 0, 1, 0, 1, 1};
    tu_assert_close("max axis 0", x->grad, want0, 8, 0.0, 0.0);
    /* NaN propagates instead of being skipped */
    eqr_step_reset(ctx);
    eqr_tensor *t = eqr_tensor_zeros(ctx, 1, (int64_t[]){3});
    t->data[0] = 1.0f;
    t->data[1] = NAN;
    t->data[2] = 2.0f;
    assert_true(isnan(eqr_max(ctx, t, 0, 0)->data[0]));
    eqr_ctx_destroy(ctx);
}

static eqr_tensor *sum_all_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    return eqr_sum_all(ctx, in[0]);
}
static eqr_tensor *mean_all_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    return eqr_mean_all(ctx, in[0]);
}

static eqr_tensor *all_plus_x_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    eqr_tensor *s = user ? eqr_mean_all(ctx, in[0]) : eqr_sum_all(ctx, in[0]);
    return eqr_add(ctx, in[0], s);
}

static void test_all(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(34);
    int64_t s[4] = {2, 3, 2, 5};
    eqr_tensor *x = tu_input(ctx, "x", 4, s, 1.0f);
    double acc = 0, mag = 0;
    for (int64_t i = 0; i < x->numel; i++) acc += x->data[i], mag += fabs(x->data[i]);
    eqr_tensor *a = eqr_sum_all(ctx, x), *m = eqr_mean_all(ctx, x);
    assert_int_equal(a->ndim, 0);
    assert_int_equal(m->ndim, 0);
    assert_int_equal(a->numel, 1);
    double ra = acc, rm = acc / 60.0, mm = mag / 60.0;
    /* 60 terms; mean: and a divide (or a scale by a rounded 1/60: 2) */
    tu_assert_close_bound("sum_all", a->data, &ra, &mag, 1, 60, 1);
    tu_assert_close_bound("mean_all", m->data, &rm, &mm, 1, 62, 1);
    tu_gradcheck(ctx, sum_all_fn, &x, 1, NULL, 1e-2, 61 /* 60 terms */);
    tu_gradcheck(ctx, mean_all_fn, &x, 1, NULL, 1e-2, 62 /* 60 terms, a scale */);
    tu_gradcheck(ctx, all_plus_x_fn, &x, 1, NULL, 1e-2, 62);
    tu_gradcheck(ctx, all_plus_x_fn, &x, 1, (void *)1, 1e-2, 62);
    /* a scalar input */
    eqr_tensor *sc = eqr_mean_all(ctx, eqr_tensor_scalar(ctx, -2.0f));
    assert_true(sc->ndim == 0 && sc->data[0] == -2.0f);
    eqr_ctx_destroy(ctx);
}

static void test_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(35);
    int64_t s[3] = {2, 3, 4};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 3, s);
    const int bad_axes[2] = {3, -4};
    for (int op = 0; op < NRED; op++)
        for (int k = 0; k < 2; k++) {
            assert_null(apply(ctx, op, x, bad_axes[k], 0));
            tu_assert_error(ctx, EQR_ERR_ARG, "axis");
        }
    /* a scalar has no axis */
    assert_null(eqr_sum(ctx, eqr_tensor_scalar(ctx, 1.0f), 0, 0));
    tu_assert_error(ctx, EQR_ERR_ARG, "shape []");
    /* max / mean over an empty axis have no value */
    int64_t s0[2] = {0, 3};
    eqr_tensor *e = eqr_tensor_zeros(ctx, 2, s0);
    assert_null(eqr_max(ctx, e, 0, 0));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "empty");
    assert_null(eqr_mean(ctx, e, 0, 0));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "empty");
    assert_null(eqr_mean_all(ctx, e));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "empty");
    /* ... while an empty sum is 0 */
    eqr_tensor *z = eqr_sum(ctx, e, 0, 0);
    assert_true(z && z->numel == 3 && z->data[0] == 0.0f);
    /* a caller's NULL input: EQR_ERR_ARG naming the argument */
    for (int op = 0; op < NRED; op++) {
        assert_null(apply(ctx, op, NULL, 0, 0));
        tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    }
    assert_null(eqr_sum_all(ctx, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_null(eqr_mean_all(ctx, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_axes),     cmocka_unit_test(test_backward_axes),
        cmocka_unit_test(test_max_ties_and_nan), cmocka_unit_test(test_all),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
