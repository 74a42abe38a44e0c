/* Silent misuse (issue 11 item 6): a NULL tensor the caller passed records
 * an error naming the function and the argument; a NULL propagating from an
 * earlier failure stays silent and keeps the first error; optional
 * arguments stay optional; measuring equivariance of a training-mode
 * batch-norm model leaves every parameter and buffer bit-identical; and
 * group / steerable convs warn through the log callback when their geometry
 * breaks exact equivariance: at construction if no input size is exact, at
 * the (plain or relaxed) forward once per breaking input size. */
#include "testutil.h"

#include <math.h>
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
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
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
        if (eqr_error_status(ctx) != EQR_ERR_ARG || strcmp(eqr_error_message(ctx), want) != 0)
            fail_msg("case %d: status %s message '%s', want '%s'", i,
                     eqr_status_name(eqr_error_status(ctx)), eqr_error_message(ctx), want);
        eqr_error_clear(ctx);
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
    assert_int_equal(eqr_error_status(ctx), EQR_ERR_SHAPE);
    char first[512];
    snprintf(first, sizeof first, "%s", eqr_error_message(ctx));
    assert_non_null(strstr(first, "eqr_matmul"));
    for (int i = 0; i < NCASES; i++) {
        assert_null(cases[i].call(ctx, &f));
        assert_int_equal(eqr_error_status(ctx), EQR_ERR_SHAPE);
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
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
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
    m.w = eqr_param_create(ctx, "w", 4, sw, 0);
    m.gamma = eqr_param_create(ctx, "gamma", 1, sc, 0);
    m.beta = eqr_param_create(ctx, "beta", 1, sc, 0);
    m.rm = eqr_param_create(ctx, "rm", 1, sc, EQR_PARAM_BUFFER);
    m.rv = eqr_param_create(ctx, "rv", 1, sc, EQR_PARAM_BUFFER);
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
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
    int np = eqr_param_num_tensors(ctx);
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
    eqr_ctx_set_log(ctx, cap_log, &cap);
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
    /* tu_equiv_bound: 9 products and the bias per output (depth 10, one
     * spare), amp 3 = sqrt(9) for random-sign sums; the grid rotation is exact */
    assert_true(errs[0] <= tu_equiv_bound(11, 3.0));
    assert_true(errs[1] > 1e-2); /* a threshold: the misaligned grid is O(1) off */
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

/* ---- construction-time warning: only a geometry no input size makes exact ---- */

/* Float32 bound on the relative equivariance error of a conv (bank [O, C, k,
 * k], bias [O] or NULL, geometry g, input x [1, C, H, W]) whose exact
 * arithmetic commutes with the group: f(g.x) and g.f(x) sum the same
 * products in other orders, so each output differs by at most
 * 2 gamma_{Ck^2+1} m, m = sum |w| |x| + |b|; relative to ||f(x)||. */
static double conv_equiv_bound(const float *bank, const float *bias, const int64_t bs[4],
                               const eqr_conv2d_geom *g, const eqr_tensor *x) {
    const int64_t C = bs[1], k = bs[2], H = x->shape[2], W = x->shape[3];
    const int64_t OH = (H + 2 * g->pad_h - g->dil_h * (k - 1) - 1) / g->stride_h + 1;
    const int64_t OW = (W + 2 * g->pad_w - g->dil_w * (k - 1) - 1) / g->stride_w + 1;
    double m2 = 0, y2 = 0;
    for (int64_t o = 0; o < bs[0]; o++)
        for (int64_t i = 0; i < OH; i++)
            for (int64_t j = 0; j < OW; j++) {
                double m = bias ? fabs(bias[o]) : 0, y = bias ? bias[o] : 0;
                for (int64_t c = 0; c < C; c++)
                    for (int64_t a = 0; a < k; a++)
                        for (int64_t b = 0; b < k; b++) {
                            int64_t r = i * g->stride_h - g->pad_h + a * g->dil_h;
                            int64_t q = j * g->stride_w - g->pad_w + b * g->dil_w;
                            if (r < 0 || r >= H || q < 0 || q >= W) continue;
                            double wv = bank[((o * C + c) * k + a) * k + b];
                            double xv = x->data[(c * H + r) * W + q];
                            m += fabs(wv * xv);
                            y += wv * xv;
                        }
                m2 += m * m;
                y2 += y * y;
            }
    return 2 * tu_gamma(C * k * k + 1) * sqrt(m2 / y2);
}

static double gconv_bound(eqr_ctx *ctx, const eqr_gconv *L, const eqr_tensor *x) {
    int64_t bs[4];
    eqr_gconv_bank_shape(L, bs);
    float *w = malloc((size_t)(bs[0] * bs[1] * bs[2] * bs[3]) * sizeof(float));
    float *b = malloc((size_t)bs[0] * sizeof(float));
    assert_non_null(w);
    assert_non_null(b);
    assert_int_equal(eqr_gconv_export(ctx, L, w, b), EQR_OK);
    double r = conv_equiv_bound(w, b, bs, eqr_gconv_geom(L), x);
    free(w);
    free(b);
    return r;
}

static double steer_bound(eqr_ctx *ctx, const eqr_steer_conv *L, const eqr_tensor *x) {
    int64_t bs[4];
    eqr_steer_conv_bank_shape(L, bs);
    float *w = malloc((size_t)(bs[0] * bs[1] * bs[2] * bs[3]) * sizeof(float));
    float *b = malloc((size_t)bs[0] * sizeof(float));
    assert_non_null(w);
    assert_non_null(b);
    assert_int_equal(eqr_steer_conv_export(ctx, L, w, b), EQR_OK);
    double r = conv_equiv_bound(w, b, bs, eqr_steer_conv_geom(L), x);
    free(w);
    free(b);
    return r;
}

static eqr_tensor *fw_steer(eqr_ctx *ctx, void *m, eqr_tensor *x) {
    return eqr_steer_conv_forward(ctx, m, x);
}

/* Over groups with and without quarter turns and every geometry with
 * stride, padding and dilation in {1,2} x {0,1} x {1,2} per axis: the
 * create warns exactly when no input size up to 24 x 24 is exact (the rule
 * of eqr_gconv_exact_on), naming the layer and the rule; and such a layer is
 * indeed far from equivariant where its output is square. */
static void test_gconv_never_exact_warns_at_create(void **state) {
    (void)state;
    const eqr_group groups[4] = {eqr_group_cyclic(4), eqr_group_dihedral(4), eqr_group_dihedral(2),
                                 eqr_group_dihedral(1)};
    int nwarned = 0, nquiet = 0;
    for (int gi = 0; gi < 4; gi++) {
        eqr_ctx *ctx = tu_ctx(7 + (uint64_t)gi);
        logcap cap = {0, ""};
        eqr_ctx_set_log(ctx, cap_log, &cap);
        eqr_rep *in = tu_trivial_rep(ctx, &groups[gi], 1), *out = tu_regular_rep(ctx, &groups[gi], 1);
        for (int c = 0; c < 64; c++) {
            eqr_conv2d_geom g = {1 + (c & 1), 1 + (c >> 1 & 1), c >> 2 & 1, c >> 3 & 1,
                                 1 + (c >> 4 & 1), 1 + (c >> 5 & 1)};
            char nm[16];
            snprintf(nm, sizeof nm, "g%d", c);
            int before = cap.warns;
            eqr_gconv *L = tu_gconv(ctx, nm, in, out, 3, g, 0.0f);
            int warned = cap.warns - before, any_exact = 0;
            for (int h = 1; h <= 24 && !any_exact; h++)
                for (int w = 1; w <= 24 && !any_exact; w++) any_exact = eqr_gconv_exact_on(L, h, w);
            assert_int_equal(warned, !any_exact);
            if (warned) {
                assert_non_null(strstr(cap.last, "eqr_gconv_create("));
                assert_non_null(strstr(cap.last, nm));
                assert_non_null(strstr(cap.last, "on any input size"));
                assert_non_null(strstr(cap.last, "same stride, padding and dilation on both axes"));
                nwarned++;
            } else {
                nquiet++;
            }
            eqr_gconv_destroy(L);
        }
        eqr_rep_destroy(in);
        eqr_rep_destroy(out);
        eqr_ctx_destroy(ctx);
    }
    /* both branches taken: C4 / D4 with unequal axes warn, D2 / D1 and stride 2 do not */
    print_message("gconv create: %d geometries warned, %d quiet\n", nwarned, nquiet);
    assert_true(nwarned > 0 && nquiet > 0);

    /* A warned geometry with a square output (k 3, pad 1/2, dilation 1/2:
     * 9x9 -> 9x9) is measurably not C4-equivariant, while the same conv with
     * equal axes is (float rounding, see test_gconv_inexact_warns). */
    eqr_ctx *ctx = tu_ctx(12);
    logcap cap = {0, ""};
    eqr_ctx_set_log(ctx, cap_log, &cap);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *in = tu_trivial_rep(ctx, &G, 1), *out = tu_regular_rep(ctx, &G, 2);
    eqr_gconv *A = tu_gconv(ctx, "skew", in, out, 3, (eqr_conv2d_geom){1, 1, 1, 2, 1, 2}, 0.5f);
    assert_int_equal(cap.warns, 1);
    eqr_gconv *S = tu_gconv(ctx, "even", in, out, 3, EQR_CONV2D(1, 1, 1), 0.5f);
    assert_int_equal(cap.warns, 1);
    eqr_tensor *x = tu_randn(ctx, 1, 1, 9, 9);
    double err_skew, err_even;
    assert_int_equal(eqr_equivariance_error_max(ctx, fw_gconv, A, in, out, x, NULL, 0, &err_skew),
                     EQR_OK);
    assert_int_equal(cap.warns, 2); /* and the forward on 9x9 names the size */
    assert_non_null(strstr(cap.last, "eqr_gconv_forward(skew)"));
    assert_non_null(strstr(cap.last, "9x9"));
    assert_int_equal(eqr_equivariance_error_max(ctx, fw_gconv, S, in, out, x, NULL, 0, &err_even),
                     EQR_OK);
    const double bound = gconv_bound(ctx, S, x), bound_skew = gconv_bound(ctx, A, x);
    print_message("C4 gconv on 9x9, pad 1/2 dil 1/2: %.3g (float bound if it were exact %.3g); "
                  "pad 1 dil 1: %.3g (bound %.3g)\n", err_skew, bound_skew, err_even, bound);
    assert_true(err_even <= bound);
    assert_true(err_skew > 1e3 * bound_skew); /* not rounding: the geometry */
    eqr_gconv_destroy(A);
    eqr_gconv_destroy(S);
    eqr_rep_destroy(in);
    eqr_rep_destroy(out);
    eqr_ctx_destroy(ctx);
}

/* Steerable convs warn alike: at construction for unequal axes under quarter
 * turns; a stride of 2 only at the forward, once per breaking size, and the
 * rule is right (C4, whose elements are all grid-exact). */
static void test_steer_conv_warns(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(13);
    logcap cap = {0, ""};
    eqr_ctx_set_log(ctx, cap_log, &cap);
    eqr_group G = eqr_group_cyclic(4); /* every element grid-exact */
    eqr_rep *in = tu_trivial_rep(ctx, &G, 1), *out = tu_regular_rep(ctx, &G, 2);
    eqr_steer_conv_opts o = {0};
    o.geom = (eqr_conv2d_geom){2, 1, 1, 1, 1, 1};
    eqr_steer_conv *A = eqr_steer_conv_create(ctx, "rows", in, out, 3, &o);
    assert_non_null(A);
    assert_int_equal(cap.warns, 1);
    assert_non_null(strstr(cap.last, "eqr_steer_conv_create(rows)"));
    assert_non_null(strstr(cap.last, "same stride, padding and dilation on both axes"));
    o.geom = EQR_CONV2D(2, 1, 1);
    eqr_steer_conv *D = eqr_steer_conv_create(ctx, "down", in, out, 3, &o);
    assert_non_null(D);
    assert_int_equal(cap.warns, 1); /* depends on the input size: not yet */
    const int sizes[3] = {9, 8, 8};
    const int want[3] = {0, 1, 0}; /* 9 exact; 8 not, warned once */
    double errs[2], bounds[2];
    for (int s = 0; s < 3; s++) {
        int before = cap.warns;
        eqr_tensor *x = tu_randn(ctx, 1, 1, sizes[s], sizes[s]);
        if (s < 2) bounds[s] = steer_bound(ctx, D, x);
        assert_non_null(eqr_steer_conv_forward(ctx, D, x));
        assert_int_equal(cap.warns - before, want[s]);
        assert_int_equal(eqr_steer_conv_exact_on(D, sizes[s], sizes[s]), sizes[s] == 9);
        if (s < 2)
            assert_int_equal(eqr_equivariance_error_max(ctx, fw_steer, D, in, out, x, NULL, 0,
                                                        &errs[s]), EQR_OK);
        eqr_step_reset(ctx);
    }
    assert_non_null(strstr(cap.last, "eqr_steer_conv_forward(down)"));
    assert_non_null(strstr(cap.last, "8x8"));
    assert_non_null(strstr(cap.last, "% stride == 0"));
    /* the accepted size: float rounding; the rejected one: far off */
    print_message("stride-2 C4 steerable conv equivariance error: 9x9 %.3g (bound %.3g), 8x8 "
                  "%.3g (bound if it were exact %.3g)\n", errs[0], bounds[0], errs[1], bounds[1]);
    assert_true(errs[0] <= bounds[0]);
    assert_true(errs[1] > 1e3 * bounds[1]);
    eqr_steer_conv_destroy(A);
    eqr_steer_conv_destroy(D);
    eqr_rep_destroy(in);
    eqr_rep_destroy(out);
    eqr_ctx_destroy(ctx);
}

/* A relaxed group conv warns through eqr_rlayer_forward as the strict one
 * does, sharing its once-per-size memory. */
static void test_relaxed_gconv_warns(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(14);
    logcap cap = {0, ""};
    eqr_ctx_set_log(ctx, cap_log, &cap);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *in = tu_trivial_rep(ctx, &G, 1), *out = tu_regular_rep(ctx, &G, 2);
    eqr_gconv *L = tu_gconv(ctx, "down", in, out, 3, EQR_CONV2D(2, 1, 1), 0.0f);
    eqr_relax *r = tu_relax(ctx, "relax", 0.5f, 0.1f, 0, 0, 0);
    eqr_rlayer *rl = eqr_relax_gconv(ctx, r, "down", L, NULL);
    assert_non_null(rl);
    assert_int_equal(cap.warns, 0);
    eqr_tensor *x8 = tu_randn(ctx, 1, 1, 8, 8), *x10 = tu_randn(ctx, 1, 1, 10, 10);
    for (int rep = 0; rep < 3; rep++) assert_non_null(eqr_rlayer_forward(ctx, rl, x8));
    assert_int_equal(cap.warns, 1);
    assert_non_null(strstr(cap.last, "eqr_rlayer_forward(down)"));
    assert_non_null(strstr(cap.last, "8x8"));
    assert_non_null(eqr_gconv_forward(ctx, L, x8)); /* same layer, same size: said already */
    assert_int_equal(cap.warns, 1);
    assert_non_null(eqr_rlayer_forward(ctx, rl, x10)); /* (10 + 2 - 2 - 1) % 2 != 0 */
    assert_int_equal(cap.warns, 2);
    assert_non_null(strstr(cap.last, "10x10"));
    eqr_relax_destroy(r);
    eqr_gconv_destroy(L);
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
        cmocka_unit_test(test_gconv_never_exact_warns_at_create),
        cmocka_unit_test(test_steer_conv_warns),
        cmocka_unit_test(test_relaxed_gconv_warns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
