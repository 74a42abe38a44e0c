/* Ops: reshape (view), permute, concat, slice (view or copy), gather. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H 1e-2
#define DEPTH 12 /* copies (exact), or one activation (libm, few ulp) */

/* A differentiable-looking input that takes no gradient. */
static eqr_tensor *frozen_input(eqr_ctx *ctx, const char *name, int ndim, const int64_t *shape) {
    eqr_tensor *t = eqr_param_create(ctx, name, ndim, shape, EQR_PARAM_FROZEN);
    assert_non_null(t);
    eqr_tensor_normal(t, eqr_ctx_rng(ctx), 1.0f);
    return t;
}

/* ---- reshape ---- */

static void test_reshape_view(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    int64_t s[3] = {2, 3, 4}, t[2] = {4, -1}, flat[1] = {24};
    eqr_tensor *x = tu_input(ctx, "x", 3, s, 1.0f);
    eqr_tensor *y = eqr_reshape(ctx, x, 2, t);
    assert_non_null(y);
    assert_int_equal(y->ndim, 2);
    assert_int_equal(y->shape[0], 4);
    assert_int_equal(y->shape[1], 6);
    assert_int_equal(y->numel, 24);
    assert_ptr_equal(y->data, x->data);
    assert_ptr_equal(y->base, x);
    assert_int_equal(y->offset, 0);
    assert_true(y->flags & EQR_T_REQUIRES_GRAD);
    assert_false(y->flags & EQR_T_PARAM);
    assert_int_equal(y->node, x->node);
    /* writes through the view reach the parameter */
    y->data[5] = 3.25f;
    assert_true(x->data[5] == 3.25f);
    /* a view of a view points at the root, offsets accumulate */
    eqr_tensor *z = eqr_reshape(ctx, y, 1, flat);
    assert_non_null(z);
    assert_ptr_equal(z->base, x);
    eqr_tensor *zs = eqr_slice(ctx, z, 0, 6, 12);
    assert_non_null(zs);
    assert_ptr_equal(zs->base, x);
    assert_int_equal(zs->offset, 6);
    assert_ptr_equal(zs->data, x->data + 6);
    int64_t t2[2] = {3, 4};
    eqr_tensor *zz = eqr_reshape(ctx, zs, 2, t2);
    assert_non_null(zz);
    assert_ptr_equal(zz->base, x);
    assert_int_equal(zz->offset, 6);
    /* the gradient of a view lands in the parameter's gradient */
    eqr_grad_zero(ctx);
    float seed[12];
    for (int i = 0; i < 12; i++) seed[i] = (float)(i + 1);
    eqr_tensor *sd = eqr_tensor_from(ctx, 2, t2, seed);
    assert_int_equal(eqr_backward_from(ctx, zz, sd), EQR_OK);
    for (int i = 0; i < 24; i++)
        assert_true(x->grad[i] == ((i >= 6 && i < 18) ? (float)(i - 5) : 0.0f));
    eqr_step_reset(ctx);
    /* a view made with recording off takes no gradient */
    int prev = eqr_grad_set_enabled(ctx, 0);
    y = eqr_reshape(ctx, x, 2, t);
    assert_non_null(y);
    assert_false(y->flags & EQR_T_REQUIRES_GRAD);
    eqr_grad_set_enabled(ctx, prev);
    /* scalar <-> [1,1] */
    int64_t one[2] = {1, 1};
    eqr_tensor *sc = eqr_tensor_scalar(ctx, 2.0f);
    eqr_tensor *v = eqr_reshape(ctx, sc, 2, one);
    assert_non_null(v);
    assert_int_equal(v->numel, 1);
    assert_non_null(eqr_reshape(ctx, v, 0, NULL));
    eqr_ctx_destroy(ctx);
}

static eqr_tensor *f_reshape(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    int64_t t[3] = {3, -1, 2};
    return eqr_reshape(ctx, in[0], 3, t);
}

/* x [2,3,4] -> permute {2,0,1} [4,2,3] -> reshape [8,3] -> permute {1,0} [3,8]:
 * a view of an activation between two recorded ops. */
static eqr_tensor *f_perm_reshape_perm(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    int p1[3] = {2, 0, 1}, p2[2] = {1, 0};
    int64_t t[2] = {8, 3};
    eqr_tensor *a = eqr_permute(ctx, in[0], p1);
    eqr_tensor *v = eqr_reshape(ctx, a, 2, t);
    if (v && a) assert_int_equal(v->node, a->node);
    return eqr_permute(ctx, v, p2);
}

static void test_reshape_grad(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(2);
    int64_t s[3] = {2, 3, 4};
    eqr_tensor *x = tu_input(ctx, "x", 3, s, 1.0f);
    eqr_tensor *in[1] = {x};
    tu_gradcheck(ctx, f_reshape, in, 1, NULL, H, DEPTH);
    /* forward of the chain against its index formula */
    eqr_tensor *y = f_perm_reshape_perm(ctx, in, NULL);
    assert_non_null(y);
    assert_int_equal(y->shape[0], 3);
    assert_int_equal(y->shape[1], 8);
    double ref[24];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 8; c++) {
            int flat = c * 3 + r; /* into a [4,2,3] */
            int k = flat / 6, i = (flat / 3) % 2, j = flat % 3;
            ref[r * 8 + c] = x->data[(i * 3 + j) * 4 + k];
        }
    tu_assert_close("perm-reshape-perm", y->data, ref, 24, 0, 0);
    tu_gradcheck(ctx, f_perm_reshape_perm, in, 1, NULL, H, DEPTH);
    eqr_ctx_destroy(ctx);
}

static void test_reshape_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(3);
    int64_t s[3] = {2, 3, 4};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 3, s);
    int64_t bad[2] = {5, 5};
    assert_null(eqr_reshape(ctx, x, 2, bad));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "cannot view [2,3,4]");
    int64_t two[3] = {-1, 2, -1};
    assert_null(eqr_reshape(ctx, x, 3, two));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "at most one -1");
    int64_t nodiv[2] = {5, -1};
    assert_null(eqr_reshape(ctx, x, 2, nodiv));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "[5,-1]");
    int64_t neg[2] = {-2, -12};
    assert_null(eqr_reshape(ctx, x, 2, neg));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "eqr_reshape");
    int64_t seven[7] = {24, 1, 1, 1, 1, 1, 1};
    assert_null(eqr_reshape(ctx, x, 7, seven));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "ndim 7");
    /* a caller's NULL input: EQR_ERR_ARG naming the argument */
    assert_null(eqr_reshape(ctx, NULL, 2, bad));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    eqr_ctx_destroy(ctx);
}

/* ---- permute ---- */

static eqr_tensor *f_permute(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    return eqr_permute(ctx, in[0], (const int *)user);
}

static void test_permute(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(4);
    int64_t s[4] = {2, 3, 4, 5};
    eqr_tensor *x = tu_input(ctx, "x", 4, s, 1.0f);
    int perm[4] = {2, 0, 3, 1};
    eqr_tensor *y = eqr_permute(ctx, x, perm);
    assert_non_null(y);
    int64_t os[4] = {4, 2, 5, 3};
    for (int d = 0; d < 4; d++) assert_int_equal(y->shape[d], os[d]);
    double *ref = malloc(120 * sizeof *ref);
    assert_non_null(ref);
    int64_t idx[4];
    for (idx[0] = 0; idx[0] < 2; idx[0]++)
        for (idx[1] = 0; idx[1] < 3; idx[1]++)
            for (idx[2] = 0; idx[2] < 4; idx[2]++)
                for (idx[3] = 0; idx[3] < 5; idx[3]++) {
                    int64_t o[4];
                    for (int d = 0; d < 4; d++) o[d] = idx[perm[d]];
                    int64_t oi = ((o[0] * os[1] + o[1]) * os[2] + o[2]) * os[3] + o[3];
                    int64_t ii = ((idx[0] * 3 + idx[1]) * 4 + idx[2]) * 5 + idx[3];
                    ref[oi] = x->data[ii];
                }
    tu_assert_close("permute 4d", y->data, ref, 120, 0, 0);
    free(ref);
    tu_gradcheck(ctx, f_permute, &x, 1, perm, H, DEPTH);
    /* last axis kept in place (contiguous rows) and a 2-D transpose */
    int keep[4] = {1, 0, 2, 3};
    tu_gradcheck(ctx, f_permute, &x, 1, keep, H, DEPTH);
    int64_t s2[2] = {3, 7};
    eqr_tensor *m = tu_input(ctx, "m", 2, s2, 1.0f);
    int tr[2] = {1, 0};
    y = eqr_permute(ctx, m, tr);
    assert_non_null(y);
    double rt[21];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 7; j++) rt[j * 3 + i] = m->data[i * 7 + j];
    tu_assert_close("transpose", y->data, rt, 21, 0, 0);
    tu_gradcheck(ctx, f_permute, &m, 1, tr, H, DEPTH);
    eqr_ctx_destroy(ctx);
}

static void test_permute_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(5);
    int64_t s[3] = {2, 3, 4};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 3, s);
    int dup[3] = {0, 0, 1}, range[3] = {0, 1, 3}, neg[3] = {-1, 0, 1};
    assert_null(eqr_permute(ctx, x, dup));
    tu_assert_error(ctx, EQR_ERR_ARG, "not a permutation of 0..2 for [2,3,4]");
    assert_null(eqr_permute(ctx, x, range));
    tu_assert_error(ctx, EQR_ERR_ARG, "entry 2 is 3");
    assert_null(eqr_permute(ctx, x, neg));
    tu_assert_error(ctx, EQR_ERR_ARG, "eqr_permute");
    assert_null(eqr_permute(ctx, x, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "perm is NULL");
    eqr_ctx_destroy(ctx);
}

/* ---- concat ---- */

typedef struct {
    int n, axis;
} concat_args;

static eqr_tensor *f_concat(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    const concat_args *a = user;
    return eqr_concat(ctx, in, a->n, a->axis);
}

/* Naive reference for concatenating along axis 1 of [A, k_i, B] tensors. */
static void concat_ref(eqr_tensor **xs, int n, int64_t A, int64_t B, double *ref) {
    int64_t total = 0;
    for (int k = 0; k < n; k++) total += xs[k]->shape[1];
    for (int64_t a = 0; a < A; a++) {
        int64_t at = 0;
        for (int k = 0; k < n; k++) {
            int64_t K = xs[k]->shape[1];
            for (int64_t j = 0; j < K; j++)
                for (int64_t b = 0; b < B; b++)
                    ref[(a * total + at + j) * B + b] = xs[k]->data[(a * K + j) * B + b];
            at += K;
        }
    }
}

/* concat(s, x, s) of an intermediate s = 2 x: the first turn of s creates its
 * gradient (stores), the second adds to it. */
static eqr_tensor *f_concat_twice(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    eqr_tensor *s = eqr_scale(ctx, in[0], 2.0f);
    eqr_tensor *parts[3] = {s, in[0], s};
    return eqr_concat(ctx, parts, 3, 1);
}

static void test_concat(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(6);
    int64_t sa[3] = {2, 1, 3}, sb[3] = {2, 3, 3}, sc[3] = {2, 2, 3};
    eqr_tensor *in[3] = {tu_input(ctx, "a", 3, sa, 1.0f), tu_input(ctx, "b", 3, sb, 1.0f),
                         frozen_input(ctx, "c", 3, sc)};
    eqr_tensor *y = eqr_concat(ctx, in, 3, 1);
    assert_non_null(y);
    assert_int_equal(y->shape[0], 2);
    assert_int_equal(y->shape[1], 6);
    assert_int_equal(y->shape[2], 3);
    double ref[36];
    concat_ref(in, 3, 2, 3, ref);
    tu_assert_close("concat axis 1", y->data, ref, 36, 0, 0);
    concat_args a1 = {3, 1};
    tu_gradcheck(ctx, f_concat, in, 3, &a1, H, DEPTH);
    assert_null(in[2]->grad); /* frozen input took no gradient */
    tu_gradcheck(ctx, f_concat_twice, in, 1, NULL, H, DEPTH);

    /* more inputs than a tape node holds, along a negative axis */
    eqr_tensor *many[5];
    char name[8];
    int64_t total = 0;
    for (int k = 0; k < 5; k++) {
        int64_t s[2] = {3, k + 1};
        snprintf(name, sizeof name, "m%d", k);
        many[k] = k == 0 ? frozen_input(ctx, name, 2, s) : tu_input(ctx, name, 2, s, 1.0f);
        total += k + 1;
    }
    y = eqr_concat(ctx, many, 5, -1);
    assert_non_null(y);
    assert_int_equal(y->shape[1], total);
    double r5[45];
    concat_ref(many, 5, 3, 1, r5);
    tu_assert_close("concat 5 inputs", y->data, r5, 45, 0, 0);
    concat_args a5 = {5, -1};
    tu_gradcheck(ctx, f_concat, many, 5, &a5, H, DEPTH);
    /* along axis 0 */
    eqr_tensor *two[2] = {many[2], many[2]};
    y = eqr_concat(ctx, two, 2, 0);
    assert_non_null(y);
    assert_int_equal(y->shape[0], 6);
    assert_memory_equal(y->data + 9, many[2]->data, 9 * sizeof(float));
    concat_args a2 = {2, 0}; /* the same input twice: gradients add up */
    tu_gradcheck(ctx, f_concat, two, 2, &a2, H, DEPTH);
    eqr_ctx_destroy(ctx);
}

static void test_concat_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(7);
    int64_t s1[2] = {2, 3}, s2[2] = {3, 3}, s3[3] = {2, 3, 1};
    eqr_tensor *a = eqr_tensor_zeros(ctx, 2, s1), *b = eqr_tensor_zeros(ctx, 2, s2),
               *c = eqr_tensor_zeros(ctx, 3, s3);
    eqr_tensor *ab[2] = {a, b}, *ac[2] = {a, c}, *an[2] = {a, NULL};
    assert_non_null(eqr_concat(ctx, ab, 2, 0)); /* rows may differ along axis 0 */
    assert_null(eqr_concat(ctx, ab, 2, 1));
    tu_assert_error(ctx, EQR_ERR_SHAPE,
                    "tensor 1 has shape [3,3], incompatible with tensor 0 [2,3]");
    assert_null(eqr_concat(ctx, ac, 2, 0));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "[2,3,1]");
    assert_null(eqr_concat(ctx, ab, 2, 2));
    tu_assert_error(ctx, EQR_ERR_ARG, "axis 2 out of range");
    assert_null(eqr_concat(ctx, ab, 0, 0));
    tu_assert_error(ctx, EQR_ERR_ARG, "at least one");
    assert_null(eqr_concat(ctx, NULL, 2, 0));
    tu_assert_error(ctx, EQR_ERR_ARG, "eqr_concat");
    assert_null(eqr_concat(ctx, an, 2, 0)); /* failed upstream op: silent */
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    /* empty tensors may have huge sizes on the concatenated axis: their sum
     * must be checked, not overflow (8 * 2^60 = 2^63) */
    int64_t huge[2] = {0, (int64_t)1 << 60};
    eqr_tensor *e = eqr_tensor_zeros(ctx, 2, huge);
    assert_non_null(e);
    eqr_tensor *es[8] = {e, e, e, e, e, e, e, e};
    assert_null(eqr_concat(ctx, es, 8, 1));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "eqr_concat: axis 1 would have");
    eqr_ctx_destroy(ctx);
}

/* ---- slice ---- */

typedef struct {
    int axis;
    int64_t start, len;
} slice_args;

static eqr_tensor *f_slice(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    const slice_args *a = user;
    return eqr_slice(ctx, in[0], a->axis, a->start, a->len);
}

/* permute(slice(permute(x))): a batch-slice view of an activation. */
static eqr_tensor *f_slice_of_activation(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    int p[3] = {2, 0, 1}, q[3] = {1, 2, 0};
    eqr_tensor *a = eqr_permute(ctx, in[0], p); /* [4,2,3] */
    eqr_tensor *v = eqr_slice(ctx, a, 0, 1, 2);
    if (v) assert_ptr_equal(v->base, a);
    return eqr_permute(ctx, v, q);
}

static void test_slice_view(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(8);
    int64_t s[3] = {4, 3, 2};
    eqr_tensor *x = tu_input(ctx, "x", 3, s, 1.0f);
    eqr_tensor *y = eqr_slice(ctx, x, 0, 1, 2);
    assert_non_null(y);
    assert_ptr_equal(y->base, x);
    assert_int_equal(y->offset, 6);
    assert_ptr_equal(y->data, x->data + 6);
    assert_int_equal(y->shape[0], 2);
    assert_int_equal(y->numel, 12);
    assert_true(y->flags & EQR_T_REQUIRES_GRAD);
    assert_int_equal(eqr_tape_num_nodes(ctx), 0); /* views record nothing */
    slice_args a = {0, 1, 2};
    eqr_tensor *in[1] = {x};
    tu_gradcheck(ctx, f_slice, in, 1, &a, H, DEPTH);
    /* leading dimensions of size 1 still give a view */
    int64_t s1[3] = {1, 6, 2};
    eqr_tensor *w = tu_input(ctx, "w", 3, s1, 1.0f);
    y = eqr_slice(ctx, w, 1, 2, 3);
    assert_non_null(y);
    assert_ptr_equal(y->data, w->data + 4);
    assert_ptr_equal(y->base, w);
    /* a view of an activation, between two recorded ops */
    eqr_tensor *r = eqr_slice(ctx, x, 0, 0, 4); /* the whole tensor */
    assert_non_null(r);
    assert_ptr_equal(r->data, x->data);
    assert_int_equal(r->numel, x->numel);
    int64_t s2[3] = {2, 3, 4};
    eqr_tensor *x2 = tu_input(ctx, "x2", 3, s2, 1.0f);
    in[0] = x2;
    y = f_slice_of_activation(ctx, in, NULL);
    assert_non_null(y);
    double ref[12];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 2; k++)
                ref[(i * 3 + j) * 2 + k] = x2->data[(i * 3 + j) * 4 + k + 1];
    tu_assert_close("slice of activation", y->data, ref, 12, 0, 0);
    tu_gradcheck(ctx, f_slice_of_activation, in, 1, NULL, H, DEPTH);
    eqr_ctx_destroy(ctx);
}

static void test_slice_copy(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(9);
    int64_t s[3] = {2, 5, 3};
    eqr_tensor *x = tu_input(ctx, "x", 3, s, 1.0f);
    eqr_tensor *y = eqr_slice(ctx, x, 1, 1, 3);
    assert_non_null(y);
    assert_null(y->base);
    assert_int_equal(y->shape[1], 3);
    double ref[18];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 3; k++) ref[(i * 3 + j) * 3 + k] = x->data[(i * 5 + j + 1) * 3 + k];
    tu_assert_close("slice axis 1", y->data, ref, 18, 0, 0);
    slice_args a = {1, 1, 3};
    tu_gradcheck(ctx, f_slice, &x, 1, &a, H, DEPTH);
    slice_args b = {-1, 2, 1};
    y = f_slice(ctx, &x, &b);
    assert_non_null(y);
    assert_int_equal(y->ndim, 3);
    assert_int_equal(y->shape[2], 1);
    for (int i = 0; i < 10; i++) assert_true(y->data[i] == x->data[i * 3 + 2]);
    tu_gradcheck(ctx, f_slice, &x, 1, &b, H, DEPTH);
    eqr_ctx_destroy(ctx);
}

static void test_slice_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(10);
    int64_t s[3] = {4, 3, 2};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 3, s);
    assert_null(eqr_slice(ctx, x, 0, 3, 2));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "range [3, 5) is outside axis 0 of [4,3,2]");
    assert_null(eqr_slice(ctx, x, 1, -1, 2));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "outside axis 1");
    assert_null(eqr_slice(ctx, x, 2, 0, -1));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "eqr_slice");
    assert_null(eqr_slice(ctx, x, 3, 0, 1));
    tu_assert_error(ctx, EQR_ERR_ARG, "axis 3 out of range for [4,3,2]");
    eqr_ctx_destroy(ctx);
}

/* ---- gather ---- */

typedef struct {
    const int64_t *idx;
    int ndim;
    const int64_t *shape;
} gather_args;

static eqr_tensor *f_gather(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    const gather_args *a = user;
    return eqr_gather(ctx, in[0], a->idx, a->ndim, a->shape);
}

static void test_gather(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(11);
    int64_t s[2] = {3, 4}, os[2] = {2, 5};
    eqr_tensor *x = tu_input(ctx, "x", 2, s, 1.0f);
    /* duplicates (scatter-add in backward), -1 (zero) and an unused element */
    const int64_t idx[10] = {0, 5, 5, -1, 11, 3, 3, 3, -1, 7};
    eqr_tensor *y = eqr_gather(ctx, x, idx, 2, os);
    assert_non_null(y);
    assert_int_equal(y->shape[0], 2);
    assert_int_equal(y->shape[1], 5);
    double ref[10];
    for (int i = 0; i < 10; i++) ref[i] = idx[i] >= 0 ? x->data[idx[i]] : 0.0;
    tu_assert_close("gather", y->data, ref, 10, 0, 0);
    gather_args a = {idx, 2, os};
    tu_gradcheck(ctx, f_gather, &x, 1, &a, H, DEPTH);
    /* exact gradient: counts of each source index for a ones seed */
    eqr_grad_zero(ctx);
    y = eqr_gather(ctx, x, idx, 2, os);
    eqr_tensor *ones = eqr_tensor_zeros(ctx, 2, os);
    eqr_tensor_fill(ones, 1.0f);
    assert_int_equal(eqr_backward_from(ctx, y, ones), EQR_OK);
    double cnt[12] = {0};
    for (int i = 0; i < 10; i++)
        if (idx[i] >= 0) cnt[idx[i]] += 1;
    tu_assert_close("gather grad counts", x->grad, cnt, 12, 0, 0);
    eqr_step_reset(ctx);
    /* a larger filter-expansion-like gather (every 3x3 filter in 4 rotations) */
    int64_t ws[3] = {8, 3, 3}, es[4] = {8, 4, 3, 3};
    eqr_tensor *w = tu_input(ctx, "w", 3, ws, 1.0f);
    int64_t *ei = malloc(288 * sizeof *ei);
    assert_non_null(ei);
    for (int f = 0; f < 8; f++)
        for (int r = 0; r < 4; r++)
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++) {
                    int si = i, sj = j;
                    for (int q = 0; q < r; q++) {
                        int t = si;
                        si = 2 - sj;
                        sj = t;
                    }
                    ei[((f * 4 + r) * 3 + i) * 3 + j] = (f * 3 + si) * 3 + sj;
                }
    gather_args e = {ei, 4, es};
    y = f_gather(ctx, &w, &e);
    assert_non_null(y);
    /* independent check: rotation 1 is out[i][j] = w[2-j][i], rotation 2 is
     * out[i][j] = w[2-i][2-j] */
    for (int f = 0; f < 8; f++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
                assert_true(y->data[((f * 4 + 0) * 3 + i) * 3 + j] == w->data[(f * 3 + i) * 3 + j]);
                assert_true(y->data[((f * 4 + 1) * 3 + i) * 3 + j] ==
                            w->data[(f * 3 + 2 - j) * 3 + i]);
                assert_true(y->data[((f * 4 + 2) * 3 + i) * 3 + j] ==
                            w->data[(f * 3 + 2 - i) * 3 + 2 - j]);
            }
    double re[288];
    for (int i = 0; i < 288; i++) re[i] = w->data[ei[i]];
    tu_assert_close("expansion", y->data, re, 288, 0, 0);
    tu_gradcheck(ctx, f_gather, &w, 1, &e, H, DEPTH);
    free(ei);
    eqr_ctx_destroy(ctx);
}

static void test_gather_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(12);
    int64_t s[2] = {3, 4}, os[1] = {3};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 2, s);
    const int64_t high[3] = {0, 12, 1}, low[3] = {0, -1, -2}, ok[3] = {11, -1, 0};
    assert_null(eqr_gather(ctx, x, high, 1, os));
    tu_assert_error(ctx, EQR_ERR_ARG, "idx[1] = 12 is outside [-1, 12) for input [3,4]");
    assert_null(eqr_gather(ctx, x, low, 1, os));
    tu_assert_error(ctx, EQR_ERR_ARG, "idx[2] = -2");
    assert_null(eqr_gather(ctx, x, NULL, 1, os));
    tu_assert_error(ctx, EQR_ERR_ARG, "idx is NULL");
    int64_t bad[1] = {-3};
    assert_null(eqr_gather(ctx, x, ok, 1, bad));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "eqr_gather");
    eqr_tensor *y = eqr_gather(ctx, x, ok, 1, os);
    assert_non_null(y);
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reshape_view),   cmocka_unit_test(test_reshape_grad),
        cmocka_unit_test(test_reshape_errors), cmocka_unit_test(test_permute),
        cmocka_unit_test(test_permute_errors), cmocka_unit_test(test_concat),
        cmocka_unit_test(test_concat_errors),  cmocka_unit_test(test_slice_view),
        cmocka_unit_test(test_slice_copy),     cmocka_unit_test(test_slice_errors),
        cmocka_unit_test(test_gather),         cmocka_unit_test(test_gather_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
