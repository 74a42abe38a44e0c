/* Silent misuse (issue 11 item 6): a NULL tensor the caller passed records
 * an error naming the function and the argument; a NULL propagating from an
 * earlier failure stays silent and keeps the first error; optional
 * arguments stay optional; and measuring equivariance of a training-mode
 * batch-norm model leaves every parameter and buffer bit-identical. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fixture {
    eqr_tensor *x, *w, *m, *v4; /* [2,3] x, [4,3] w, [3,3] m, [1,3,4,4] image */
    eqr_gconv *gc;
    eqr_rep *in, *out; /* the conv's field types, owned by the fixture */
} fixture;

/* One public op called with exactly one of its required inputs NULL. */
typedef struct op_case {
    const char *fn, *arg;
    eqr_tensor *(*call)(eqr_ctx *ctx, fixture *f);
} op_case;

static eqr_tensor *c_add_a(eqr_ctx *c, fixture *f) { return eqr_add(c, NULL, f->x); }
static eqr_tensor *c_mul_b(eqr_ctx *c, fixture *f) { return eqr_mul(c, f->x, NULL); }
static eqr_tensor *c_scale(eqr_ctx *c, fixture *f) { (void)f; return eqr_scale(c, NULL, 2.0f); }
static eqr_tensor *c_adds(eqr_ctx *c, fixture *f) { (void)f; return eqr_add_scalar(c, NULL, 1.0f); }
static eqr_tensor *c_matmul(eqr_ctx *c, fixture *f) { return eqr_matmul(c, f->m, NULL); }
static eqr_tensor *c_lin_w(eqr_ctx *c, fixture *f) { return eqr_linear(c, f->x, NULL, NULL); }
static eqr_tensor *c_lin_x(eqr_ctx *c, fixture *f) { return eqr_linear(c, NULL, f->w, NULL); }
static eqr_tensor *c_relu(eqr_ctx *c, fixture *f) { (void)f; return eqr_relu(c, NULL); }
static eqr_tensor *c_sigm(eqr_ctx *c, fixture *f) { (void)f; return eqr_sigmoid(c, NULL); }
static eqr_tensor *c_sum(eqr_ctx *c, fixture *f) { (void)f; return eqr_sum_all(c, NULL); }
static eqr_tensor *c_mean(eqr_ctx *c, fixture *f) { (void)f; return eqr_mean_all(c, NULL); }
static eqr_tensor *c_mse(eqr_ctx *c, fixture *f) { return eqr_mse(c, f->x, NULL); }
static eqr_tensor *c_maxp(eqr_ctx *c, fixture *f) { (void)f; return eqr_maxpool2d(c, NULL, 2, 2, 0); }
static eqr_tensor *c_avgp(eqr_ctx *c, fixture *f) { (void)f; return eqr_avgpool2d(c, NULL, 2, 2, 0); }
static eqr_tensor *c_conv(eqr_ctx *c, fixture *f) {
    eqr_conv2d_geom g = EQR_CONV2D(1, 1, 1);
    return eqr_conv2d(c, f->v4, NULL, NULL, &g);
}
static eqr_tensor *c_reshape(eqr_ctx *c, fixture *f) {
    (void)f;
    int64_t s[1] = {6};
    return eqr_reshape(c, NULL, 1, s);
}
static eqr_tensor *c_gconv_x(eqr_ctx *c, fixture *f) { return eqr_gconv_forward(c, f->gc, NULL); }
static eqr_tensor *c_gconv_l(eqr_ctx *c, fixture *f) { return eqr_gconv_forward(c, NULL, f->v4); }

static const op_case cases[] = {
    {"eqr_add", "a", c_add_a},         {"eqr_mul", "b", c_mul_b},
    {"eqr_scale", "x", c_scale},       {"eqr_add_scalar", "x", c_adds},
    {"eqr_matmul", "b", c_matmul},     {"eqr_linear", "w", c_lin_w},
    {"eqr_linear", "x", c_lin_x},      {"eqr_relu", "x", c_relu},
    {"eqr_sigmoid", "x", c_sigm},      {"eqr_sum_all", "x", c_sum},
    {"eqr_mean_all", "x", c_mean},     {"eqr_mse", "b", c_mse},
    {"eqr_maxpool2d", "x", c_maxp},    {"eqr_avgpool2d", "x", c_avgp},
    {"eqr_conv2d", "w", c_conv},       {"eqr_reshape", "x", c_reshape},
    {"eqr_gconv_forward", "x", c_gconv_x}, {"eqr_gconv_forward", "layer", c_gconv_l},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

static void free_fixture(fixture *f) {
    eqr_gconv_destroy(f->gc);
    eqr_rep_destroy(f->in);
    eqr_rep_destroy(f->out);
}

static void make_fixture(eqr_ctx *ctx, fixture *f) {
    int64_t sx[2] = {2, 3}, sw[2] = {4, 3}, sm[2] = {3, 3};
    f->x = tu_input(ctx, "x", 2, sx, 1.0f);
    f->w = tu_input(ctx, "w", 2, sw, 1.0f);
    f->m = tu_input(ctx, "m", 2, sm, 1.0f);
    eqr_group G = eqr_group_cyclic(4);
    f->in = tu_trivial_rep(ctx, &G, 3);
    f->out = tu_regular_rep(ctx, &G, 1);
    f->gc = tu_gconv(ctx, "gc", f->in, f->out, 3, EQR_CONV2D(1, 1, 1), 0.0f);
    f->v4 = tu_randn(ctx, 1, 3, 4, 4);
    assert_int_equal(eqr_status_get(ctx), EQR_OK);
}

/* A caller's NULL: EQR_ERR_ARG "<fn>: argument '<arg>' is NULL". */
static void test_user_null_names_argument(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    fixture f;
    make_fixture(ctx, &f);
    for (int i = 0; i < NCASES; i++) {
        assert_null(cases[i].call(ctx, &f));
        char want[128];
        snprintf(want, sizeof want, "%s: argument '%s' is NULL", cases[i].fn, cases[i].arg);
        if (eqr_status_get(ctx) != EQR_ERR_ARG || strcmp(eqr_error_message(ctx), want) != 0)
            fail_msg("case %d: status %s message '%s', want '%s'", i,
                     eqr_status_name(eqr_status_get(ctx)), eqr_error_message(ctx), want);
        eqr_clear_error(ctx);
    }
    free_fixture(&f);
    eqr_ctx_destroy(ctx);
}

/* The motivating case: a mistyped parameter name. */
static void test_mistyped_param_find(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(2);
    fixture f;
    make_fixture(ctx, &f);
    eqr_tensor *w = eqr_param_find(ctx, "fc1.weigth");
    assert_null(w);
    assert_null(eqr_linear(ctx, f.x, w, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "eqr_linear: argument 'w' is NULL");
    free_fixture(&f);
    eqr_ctx_destroy(ctx);
}

/* After a failed op, NULLs propagate silently and the first message stays. */
static void test_null_after_failure_keeps_first(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(3);
    fixture f;
    make_fixture(ctx, &f);
    int64_t bad[2] = {5, 7};
    eqr_tensor *other = eqr_tensor_zeros(ctx, 2, bad);
    eqr_tensor *y = eqr_matmul(ctx, f.x, other); /* [2,3] x [5,7]: fails */
    assert_null(y);
    assert_int_equal(eqr_status_get(ctx), EQR_ERR_SHAPE);
    char first[512];
    snprintf(first, sizeof first, "%s", eqr_error_message(ctx));
    assert_non_null(strstr(first, "eqr_matmul"));
    for (int i = 0; i < NCASES; i++) {
        assert_null(cases[i].call(ctx, &f));
        assert_int_equal(eqr_status_get(ctx), EQR_ERR_SHAPE);
        assert_string_equal(eqr_error_message(ctx), first);
    }
    free_fixture(&f);
    eqr_ctx_destroy(ctx);
}

/* Optional arguments stay optional: a NULL bias is no error. */
static void test_optional_null_allowed(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(4);
    fixture f;
    make_fixture(ctx, &f);
    assert_non_null(eqr_linear(ctx, f.x, f.w, NULL));
    int64_t sw[4] = {2, 3, 3, 3};
    eqr_tensor *cw = tu_input(ctx, "cw", 4, sw, 1.0f);
    eqr_conv2d_geom g = EQR_CONV2D(1, 1, 1);
    assert_non_null(eqr_conv2d(ctx, f.v4, cw, NULL, &g));
    int64_t sb[2] = {2, 3};
    eqr_tensor *bx = tu_input(ctx, "bx", 2, sb, 1.0f);
    assert_non_null(eqr_batchnorm(ctx, bx, NULL, NULL, NULL, NULL, 0.1f, 1e-5f, 1));
    assert_int_equal(eqr_status_get(ctx), EQR_OK);
    free_fixture(&f);
    eqr_ctx_destroy(ctx);
}

/* ---- equivariance measurement leaves the model as it was ---- */

typedef struct bn_model {
    eqr_tensor *w, *gamma, *beta, *rm, *rv;
} bn_model;

/* 3x3 conv then training-mode batch norm (updates rm / rv) then dropout. */
static eqr_tensor *fw_bn(eqr_ctx *ctx, void *mv, eqr_tensor *x) {
    bn_model *m = mv;
    eqr_conv2d_geom g = EQR_CONV2D(1, 1, 1);
    eqr_tensor *y = eqr_conv2d(ctx, x, m->w, NULL, &g);
    y = eqr_batchnorm(ctx, y, m->gamma, m->beta, m->rm, m->rv, 0.1f, 1e-5f, 1);
    return eqr_dropout(ctx, y, 0.25f, 1);
}

static void test_measure_leaves_bn_stats(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(5);
    bn_model m;
    int64_t sw[4] = {2, 1, 3, 3}, sc[1] = {2};
    m.w = eqr_param_new(ctx, "w", 4, sw, 0);
    m.gamma = eqr_param_new(ctx, "gamma", 1, sc, 0);
    m.beta = eqr_param_new(ctx, "beta", 1, sc, 0);
    m.rm = eqr_param_new(ctx, "rm", 1, sc, EQR_PARAM_BUFFER);
    m.rv = eqr_param_new(ctx, "rv", 1, sc, EQR_PARAM_BUFFER);
    assert_int_equal(eqr_status_get(ctx), EQR_OK);
    tu_fill_uniform(m.w->data, m.w->numel, 11);
    for (int i = 0; i < 2; i++) {
        m.gamma->data[i] = 1.0f + 0.5f * (float)i;
        m.beta->data[i] = 0.25f;
        m.rm->data[i] = 0.125f;
        m.rv->data[i] = 2.0f;
    }
    eqr_tensor *x = tu_randn(ctx, 2, 1, 6, 6);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *rep = tu_trivial_rep(ctx, &G, 1);
    eqr_rep *orep = tu_trivial_rep(ctx, &G, 2);
    int np = eqr_param_count(ctx);
    int64_t total = 0;
    for (int i = 0; i < np; i++) total += eqr_param_at(ctx, i)->numel;
    float *before = malloc((size_t)total * sizeof(float));
    assert_non_null(before);
    for (int i = 0, o = 0; i < np; i++) {
        eqr_tensor *p = eqr_param_at(ctx, i);
        memcpy(before + o, p->data, (size_t)p->numel * sizeof(float));
        o += (int)p->numel;
    }
    eqr_rng rng0 = *eqr_ctx_rng(ctx);
    /* the forward really does change the running stats (test can fail) */
    assert_non_null(fw_bn(ctx, &m, x));
    assert_true(memcmp(m.rm->data, before + m.w->numel + 4, 2 * sizeof(float)) != 0);
    memcpy(m.rm->data, before + m.w->numel + 4, 2 * sizeof(float));
    memcpy(m.rv->data, before + m.w->numel + 6, 2 * sizeof(float));
    *eqr_ctx_rng(ctx) = rng0;
    double err = -1;
    eqr_gelem g = eqr_group_element(&G, 1);
    assert_int_equal(eqr_equivariance_error(ctx, fw_bn, &m, rep, orep, g, x, NULL, &err), EQR_OK);
    assert_true(err >= 0);
    for (int i = 0, o = 0; i < np; i++) {
        eqr_tensor *p = eqr_param_at(ctx, i);
        if (memcmp(before + o, p->data, (size_t)p->numel * sizeof(float)) != 0)
            fail_msg("param %d changed by the measurement", i);
        o += (int)p->numel;
    }
    assert_memory_equal(eqr_ctx_rng(ctx), &rng0, sizeof rng0);
    /* the max over the group as well (it draws nothing for a finite group) */
    assert_int_equal(eqr_equivariance_error_max(ctx, fw_bn, &m, rep, orep, x, NULL, 0, &err),
                     EQR_OK);
    for (int i = 0, o = 0; i < np; i++) {
        eqr_tensor *p = eqr_param_at(ctx, i);
        if (memcmp(before + o, p->data, (size_t)p->numel * sizeof(float)) != 0)
            fail_msg("param %d changed by the max measurement", i);
        o += (int)p->numel;
    }
    free(before);
    eqr_rep_destroy(rep);
    eqr_rep_destroy(orep);
    eqr_ctx_destroy(ctx);
}

/* ---- group conv geometry that breaks exact equivariance: one warning ---- */

typedef struct logcap {
    int warns;
    char last[512];
} logcap;

static void cap_log(eqr_log_level level, const char *msg, void *user) {
    logcap *c = user;
    if (level == EQR_LOG_WARN) {
        c->warns++;
        snprintf(c->last, sizeof c->last, "%s", msg);
    }
}

static eqr_tensor *fw_gconv(eqr_ctx *ctx, void *m, eqr_tensor *x) {
    return eqr_gconv_forward(ctx, m, x);
}

static void test_gconv_inexact_warns(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(6);
    logcap cap = {0, ""};
    eqr_set_log(ctx, cap_log, &cap);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *in = tu_trivial_rep(ctx, &G, 1), *out = tu_regular_rep(ctx, &G, 2);
    eqr_gconv *L = tu_gconv(ctx, "down", in, out, 3, EQR_CONV2D(2, 1, 1), 0.5f);
    /* sizes the rule accepts (9: (9+2-2-1)%2 == 0) and rejects (8) */
    const int sizes[2] = {9, 8};
    double errs[2];
    for (int s = 0; s < 2; s++) {
        int before = cap.warns;
        eqr_tensor *x = tu_randn(ctx, 1, 1, sizes[s], sizes[s]);
        for (int rep = 0; rep < 3; rep++) assert_non_null(eqr_gconv_forward(ctx, L, x));
        int want = eqr_gconv_exact_on(L, sizes[s], sizes[s]) ? 0 : 1;
        assert_int_equal(cap.warns - before, want); /* once per size, not per step */
        assert_int_equal(eqr_equivariance_error_max(ctx, fw_gconv, L, in, out, x, NULL, 0,
                                                    &errs[s]), EQR_OK);
        eqr_step_reset(ctx);
    }
    assert_true(eqr_gconv_exact_on(L, 9, 9));
    assert_false(eqr_gconv_exact_on(L, 8, 8));
    assert_non_null(strstr(cap.last, "down"));
    assert_non_null(strstr(cap.last, "% stride == 0"));
    assert_non_null(strstr(cap.last, "8x8"));
    /* the rule is right: accepted size exact to float rounding, rejected far off */
    print_message("stride-2 C4 gconv equivariance error: 9x9 %.3g, 8x8 %.3g\n", errs[0], errs[1]);
    assert_true(errs[0] < 1e-5);
    assert_true(errs[1] > 1e-2);
    /* a stride-1 conv never warns */
    eqr_gconv *S = tu_gconv(ctx, "same", in, out, 3, EQR_CONV2D(1, 1, 1), 0.0f);
    int before = cap.warns;
    assert_non_null(eqr_gconv_forward(ctx, S, tu_randn(ctx, 1, 1, 8, 8)));
    assert_int_equal(cap.warns, before);
    eqr_gconv_destroy(L);
    eqr_gconv_destroy(S);
    eqr_rep_destroy(in);
    eqr_rep_destroy(out);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_null_names_argument),
        cmocka_unit_test(test_mistyped_param_find),
        cmocka_unit_test(test_null_after_failure_keeps_first),
        cmocka_unit_test(test_optional_null_allowed),
        cmocka_unit_test(test_measure_leaves_bn_stats),
        cmocka_unit_test(test_gconv_inexact_warns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
