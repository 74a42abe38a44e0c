/* Core: context, errors, RNG, arena, tensors, parameter store, autodiff. */
#include "testutil.h"

#include "core/internal.h" /* eqr__arena_save / eqr__arena_rewind, eqr__sigmoid_n */

#include <math.h>
#include <stdio.h>
#include <string.h>

static void test_rng_deterministic(void **state) {
    (void)state;
    eqr_rng a, b;
    eqr_rng_seed(&a, 42);
    eqr_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) assert_int_equal(eqr_rng_u64(&a), eqr_rng_u64(&b));
    eqr_rng_seed(&b, 43);
    assert_int_not_equal(eqr_rng_u64(&a), eqr_rng_u64(&b));
    /* moments of the normal and uniform samplers */
    double s = 0, s2 = 0, u = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double z = eqr_rng_normal(&a);
        s += z;
        s2 += z * z;
        float x = eqr_rng_uniform(&a);
        assert_true(x >= 0.0f && x < 1.0f);
        u += x;
    }
    assert_true(fabs(s / n) < 0.01);
    assert_true(fabs(s2 / n - 1.0) < 0.02);
    assert_true(fabs(u / n - 0.5) < 0.005);
    for (int i = 0; i < 1000; i++) assert_true(eqr_rng_below(&a, 7) < 7);
}

static void test_error_first_kept(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    int64_t bad[2] = {2, -1};
    assert_null(eqr_tensor_zeros(ctx, 2, bad));
    assert_int_equal(eqr_error_status(ctx), EQR_ERR_SHAPE);
    char first[512];
    strcpy(first, eqr_error_message(ctx));
    /* ops on a context in error do nothing */
    int64_t ok[1] = {3};
    assert_null(eqr_tensor_zeros(ctx, 1, ok));
    assert_string_equal(first, eqr_error_message(ctx));
    eqr_error_clear(ctx);
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    assert_non_null(eqr_tensor_zeros(ctx, 1, ok));
    int64_t seven[7] = {1, 1, 1, 1, 1, 1, 1};
    assert_null(eqr_tensor_zeros(ctx, 7, seven));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "shape");
    eqr_ctx_destroy(ctx);
    eqr_ctx_destroy(NULL);
}

static int nlog;
static void logfn(eqr_log_level l, const char *m, void *u) {
    (void)m;
    if (l == EQR_LOG_ERROR) (*(int *)u)++;
}

static void test_log_callback(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    nlog = 0;
    eqr_ctx_set_log(ctx, logfn, &nlog);
    assert_null(eqr_tensor_wrap(ctx, NULL, 0, NULL));
    assert_int_equal(nlog, 1);
    eqr_ctx_destroy(ctx);
}

static void test_arena_coalesces(void **state) {
    (void)state;
    eqr_ctx_opts o = {0};
    o.arena_bytes = 4096;
    eqr_ctx *ctx = eqr_ctx_create(&o);
    assert_non_null(ctx);
    int64_t s[1] = {10000};
    for (int i = 0; i < 5; i++) assert_non_null(eqr_tensor_zeros(ctx, 1, s));
    size_t grown = eqr_arena_reserved(ctx);
    assert_true(grown > 4096);
    eqr_step_reset(ctx);
    assert_int_equal(eqr_arena_used(ctx), 0);
    /* the same step again fits without growing */
    for (int i = 0; i < 5; i++) assert_non_null(eqr_tensor_zeros(ctx, 1, s));
    assert_int_equal(eqr_arena_reserved(ctx), grown);
    eqr_ctx_destroy(ctx);
}

static void test_params_contiguous(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    int64_t s1[2] = {3, 4}, s2[1] = {5};
    eqr_tensor *a = eqr_param_create(ctx, "a", 2, s1, 0);
    eqr_tensor *b = eqr_param_create(ctx, "b", 1, s2, EQR_PARAM_NO_DECAY);
    eqr_tensor *c = eqr_param_create(ctx, "c", 1, s2, EQR_PARAM_BUFFER);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_null(eqr_param_create(ctx, "a", 1, s2, 0));
    tu_assert_error(ctx, EQR_ERR_ARG, "already exists");
    assert_int_equal(eqr_param_num_tensors(ctx), 3);
    assert_ptr_equal(eqr_param_find(ctx, "b"), b);
    float *blk = eqr_param_data_block(ctx);
    assert_ptr_equal(a->data, blk + eqr_param_offset(ctx, 0));
    assert_ptr_equal(b->data, blk + eqr_param_offset(ctx, 1));
    assert_ptr_equal(b->grad, eqr_param_grad_block(ctx) + eqr_param_offset(ctx, 1));
    assert_null(c->grad);
    assert_true(a->flags & EQR_T_REQUIRES_GRAD);
    assert_false(c->flags & EQR_T_REQUIRES_GRAD);
    /* growth keeps the values */
    a->data[5] = 7.0f;
    char name[16];
    int64_t big[1] = {100000};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "big%d", i);
        assert_non_null(eqr_param_create(ctx, name, 1, big, 0));
    }
    assert_true(a->data[5] == 7.0f);
    assert_ptr_equal(a->data, eqr_param_data_block(ctx) + eqr_param_offset(ctx, 0));
    eqr_ctx_destroy(ctx);
}

static void test_init_statistics(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(3);
    int64_t s[4] = {64, 32, 3, 3};
    eqr_tensor *w = eqr_param_create(ctx, "w", 4, s, 0);
    assert_int_equal(eqr_param_init_kaiming_normal(ctx, w, sqrtf(2.0f)), EQR_OK);
    double v = 0;
    for (int64_t i = 0; i < w->numel; i++) v += (double)w->data[i] * w->data[i];
    v /= (double)w->numel;
    assert_true(fabs(v - 2.0 / 288.0) < 0.1 * 2.0 / 288.0);
    assert_int_equal(eqr_param_init_xavier_uniform(ctx, w, 1.0f), EQR_OK);
    double a = sqrt(6.0 / (288 + 576));
    double mx = 0;
    for (int64_t i = 0; i < w->numel; i++) mx = fmax(mx, fabs(w->data[i]));
    assert_true(mx <= a && mx > 0.95 * a);
    int64_t s1[1] = {3};
    eqr_tensor *v1 = eqr_param_create(ctx, "v", 1, s1, 0);
    assert_int_equal(eqr_param_init_kaiming_normal(ctx, v1, 1.0f), EQR_ERR_SHAPE);
    eqr_error_clear(ctx);
    eqr_ctx_destroy(ctx);
}

static void test_backward_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    int64_t s[1] = {3};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 1, s);
    assert_int_equal(eqr_backward(ctx, x), EQR_ERR_SHAPE);
    tu_assert_error(ctx, EQR_ERR_SHAPE, "scalar");
    eqr_tensor *c = eqr_tensor_scalar(ctx, 1.0f);
    assert_int_equal(eqr_backward(ctx, c), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "does not depend");
    assert_int_equal(eqr_backward(ctx, NULL), EQR_ERR_ARG);
    eqr_error_clear(ctx);
    /* the seed of eqr_backward_from must have the output's shape, not just
     * its element count */
    int64_t s23[2] = {2, 3}, s6[1] = {6}, s32[2] = {3, 2};
    eqr_tensor *p = tu_input(ctx, "p", 2, s23, 1.0f);
    eqr_tensor *y = eqr_scale(ctx, p, 2.0f);
    assert_int_equal(eqr_backward_from(ctx, y, eqr_tensor_zeros(ctx, 1, s6)), EQR_ERR_SHAPE);
    tu_assert_error(ctx, EQR_ERR_SHAPE, "seed shape [6] != output shape [2,3]");
    assert_int_equal(eqr_backward_from(ctx, y, eqr_tensor_zeros(ctx, 2, s32)), EQR_ERR_SHAPE);
    tu_assert_error(ctx, EQR_ERR_SHAPE, "seed shape [3,2] != output shape [2,3]");
    assert_int_equal(eqr_backward_from(ctx, y, eqr_tensor_zeros(ctx, 2, s23)), EQR_OK);
    eqr_ctx_destroy(ctx);
}

/* eqr__arena_rewind frees the tensors made after the mark; the tape nodes
 * recorded after it point at them and must go too, or a later backward
 * runs them on reused memory. */
static void test_arena_rewind_drops_tape(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    int64_t s[1] = {4};
    eqr_tensor *p = tu_input(ctx, "p", 1, s, 1.0f);
    eqr_tensor *a = eqr_scale(ctx, p, 2.0f);
    const int64_t tape = eqr_tape_num_nodes(ctx);
    const size_t used = eqr_arena_used(ctx);
    eqr__arena_mark m = eqr__arena_save(ctx);
    assert_non_null(eqr_mul(ctx, a, a));
    assert_int_equal(eqr_tape_num_nodes(ctx), tape + 1);
    eqr__arena_rewind(ctx, m);
    assert_int_equal(eqr_arena_used(ctx), used);
    assert_int_equal(eqr_tape_num_nodes(ctx), tape);
    /* the step goes on over the tensors made before the mark */
    assert_int_equal(eqr_backward(ctx, eqr_sum_all(ctx, a)), EQR_OK);
    for (int i = 0; i < 4; i++) assert_true(p->grad[i] == 2.0f);
    eqr_ctx_destroy(ctx);
}

/* The nonzero sizes must multiply to below 2^61 even when another size is
 * 0, so that products and sums of sizes (strides, planes, concatenated
 * axes) taken by ops cannot overflow int64. */
static void test_shape_limits(void **state) {
    (void)state;
    const int64_t t40 = (int64_t)1 << 40, t30 = (int64_t)1 << 30, t62 = (int64_t)1 << 62;
    int64_t a[3] = {0, t40, t40}, b[2] = {0, t62}, c[2] = {t62, 0}, d[3] = {t30, 0, t30};
    assert_int_equal(eqr_shape_num_elements(3, a), -1); /* nonzero sizes multiply to 2^80 */
    assert_int_equal(eqr_shape_num_elements(2, b), -1);
    assert_int_equal(eqr_shape_num_elements(2, c), -1);
    assert_int_equal(eqr_shape_num_elements(3, d), 0); /* 2^60: empty but valid */
    eqr_ctx *ctx = tu_ctx(1);
    assert_null(eqr_tensor_zeros(ctx, 3, a));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "eqr_tensor_zeros: invalid shape [0,");
    eqr_tensor *t = eqr_tensor_zeros(ctx, 3, d);
    assert_non_null(t);
    assert_int_equal(t->numel, 0);
    eqr_ctx_destroy(ctx);
}

/* The vectorised sigmoid against the double formula: 3 u relative wherever
 * the value is a normal float above 1e-37 (the documented bound: 2.48 u
 * measured, ~2 u of the series and its Horner steps plus the sum and the
 * division), exactly 1 above 87, at most 1e-37 below -86; the tail of an
 * array whose length is not a multiple of the vector width included. */
static void test_sigmoid_n(void **state) {
    (void)state;
    enum { N = 200003 };
    static float x[N], s[N];
    for (int i = 0; i < N; i++) x[i] = -95.0f + 190.0f * (float)i / (N - 1);
    const float special[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 87.0f, -88.7f, 88.8f, -1e30f, 1e30f};
    memcpy(x, special, sizeof special);
    eqr__sigmoid_n(x, s, N);
    const double u = ldexp(1.0, -24);
    for (int i = 0; i < N; i++) {
        const double r = 1.0 / (1.0 + exp(-(double)x[i]));
        if (x[i] > 87.0f) assert_true(s[i] == 1.0f);
        else if (r >= 1e-37) assert_true(fabs(s[i] - r) <= 3 * u * r);
        else assert_true(s[i] >= 0.0f && s[i] <= 1e-37f);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_deterministic), cmocka_unit_test(test_error_first_kept),
        cmocka_unit_test(test_log_callback),      cmocka_unit_test(test_arena_coalesces),
        cmocka_unit_test(test_params_contiguous), cmocka_unit_test(test_init_statistics),
        cmocka_unit_test(test_backward_errors), cmocka_unit_test(test_shape_limits),
        cmocka_unit_test(test_arena_rewind_drops_tape), cmocka_unit_test(test_sigmoid_n),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
