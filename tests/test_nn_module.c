/* Modules (module.h): a sequential forward is bit-identical to calling its
 * layers by hand (planar, VN and irreps stacks, nested containers); the
 * training switch reaches every nested batch norm and dropout; the summary
 * names every layer and counts what the store holds; eqr_relax_module
 * relaxes each relaxable kind (and containers in place) and refuses the
 * others; type mismatches between consecutive layers and NULL arguments
 * are clear errors; user modules; destroy frees everything (run under
 * ASan / LeakSanitizer in an -DEQR_SANITIZE=ON build). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void assert_same(const eqr_tensor *a, const eqr_tensor *b) {
    assert_non_null(a);
    assert_non_null(b);
    assert_true(eqr_tensor_same_shape(a, b));
    assert_memory_equal(a->data, b->data, (size_t)a->numel * sizeof(float));
}

static void assert_ok(eqr_ctx *ctx) {
    if (eqr_error_status(ctx)) fail_msg("unexpected error: %s", eqr_error_message(ctx));
}

/* The C4 stack of the tests: conv, bn, relu, pool, [conv, relu] nested,
 * group pool, mean, linear. */
typedef struct c4net {
    eqr_group G;
    eqr_rep *t1, *r4, *r6;
    eqr_module *net, *inner;
} c4net;

static void c4net_build(eqr_ctx *ctx, c4net *n) {
    n->G = eqr_group_cyclic(4);
    n->t1 = tu_trivial_rep(ctx, &n->G, 1);
    n->r4 = tu_regular_rep(ctx, &n->G, 4);
    n->r6 = tu_regular_rep(ctx, &n->G, 6);
    eqr_gconv_opts same = {.geom = EQR_CONV2D(1, 1, 1)};
    n->inner = eqr_sequential_create(ctx, "inner");
    eqr_sequential_add(n->inner, eqr_gconv_module(ctx, "c2", n->r4, n->r6, 3, &same));
    eqr_sequential_add(n->inner, eqr_activation_module(ctx, "act2", EQR_PW_LEAKY_RELU, 0.1f));
    n->net = eqr_sequential_create(ctx, "net");
    eqr_sequential_add(n->net, eqr_gconv_module(ctx, "c1", n->t1, n->r4, 3, &same));
    eqr_sequential_add(n->net, eqr_field_bn_module(ctx, "bn1", n->r4, NULL));
    eqr_sequential_add(n->net, eqr_relu_module(ctx, NULL));
    eqr_sequential_add(n->net, eqr_maxpool2d_module(ctx, "mp", 2, 2, 0));
    eqr_sequential_add(n->net, n->inner);
    eqr_sequential_add(n->net, eqr_group_pool_module(ctx, "gp", n->r6, EQR_GPOOL_MAX));
    eqr_sequential_add(n->net, eqr_global_avgpool_module(ctx, NULL));
    eqr_sequential_add(n->net, eqr_linear_module(ctx, "fc", 6, 3, 1));
    assert_ok(ctx);
    assert_non_null(n->net);
}

static void c4net_free(c4net *n) {
    eqr_module_destroy(n->net);
    eqr_rep_destroy(n->t1);
    eqr_rep_destroy(n->r4);
    eqr_rep_destroy(n->r6);
}

/* The same forward written out by hand. */
static eqr_tensor *c4net_by_hand(eqr_ctx *ctx, c4net *n, eqr_tensor *x) {
    eqr_module *net = n->net;
    eqr_tensor *h = eqr_gconv_forward(ctx, eqr_module_gconv(eqr_module_child(net, 0)), x);
    h = eqr_field_bn_forward(ctx, eqr_module_field_bn(eqr_module_child(net, 1)), h);
    h = eqr_maxpool2d(ctx, eqr_relu(ctx, h), 2, 2, 0);
    h = eqr_gconv_forward(ctx, eqr_module_gconv(eqr_module_child(n->inner, 0)), h);
    h = eqr_leaky_relu(ctx, h, 0.1f);
    h = eqr_field_pool_forward(ctx, eqr_module_impl(eqr_module_child(net, 5)), h);
    h = eqr_global_avgpool(ctx, h);
    return eqr_linear(ctx, h, eqr_param_find(ctx, "fc.weight"), eqr_param_find(ctx, "fc.bias"));
}

static void test_sequential_equals_by_hand(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    c4net n;
    c4net_build(ctx, &n);
    eqr_tensor *x = tu_randn(ctx, 3, 1, 8, 8);
    eqr_tensor *y = eqr_module_forward(ctx, n.net, x); /* training mode */
    eqr_tensor *ref = c4net_by_hand(ctx, &n, x);
    assert_ok(ctx);
    assert_int_equal(y->shape[1], 3);
    assert_same(y, ref);
    /* evaluation mode too, and the measurement adapter */
    eqr_module_set_training(n.net, 0);
    y = eqr_module_apply(ctx, n.net, x);
    ref = c4net_by_hand(ctx, &n, x);
    assert_same(y, ref);
    c4net_free(&n);
    eqr_ctx_destroy(ctx);
}

static void test_sequential_vn_irreps(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(2);
    eqr_module *vn = eqr_sequential_create(ctx, "vn");
    eqr_sequential_add(vn, eqr_vn_linear_module(ctx, "l1", 3, 5));
    eqr_sequential_add(vn, eqr_vn_leaky_relu_module(ctx, "a1", 5,
                                                    &(eqr_vn_leaky_relu_opts){.negative_slope = 0.2f}));
    eqr_sequential_add(vn, eqr_vn_bn_module(ctx, "bn", 5, NULL));
    eqr_sequential_add(vn, eqr_vn_mean_pool_module(ctx, NULL));
    eqr_sequential_add(vn, eqr_vn_linear_module(ctx, "l2", 5, 2));
    assert_ok(ctx);
    eqr_tensor *x = tu_input(ctx, "x", 4, (int64_t[]){2, 3, 3, 6}, 1.0f);
    eqr_module_set_training(vn, 0);
    eqr_tensor *y = eqr_module_forward(ctx, vn, x);
    eqr_tensor *h = eqr_vn_linear_forward(ctx, eqr_module_vn_linear(eqr_module_child(vn, 0)), x);
    h = eqr_vn_leaky_relu_forward(ctx, eqr_module_impl(eqr_module_child(vn, 1)), h);
    h = eqr_vn_bn_forward(ctx, eqr_module_vn_bn(eqr_module_child(vn, 2)), h);
    h = eqr_vn_linear_forward(ctx, eqr_module_vn_linear(eqr_module_child(vn, 4)),
                              eqr_vn_mean_pool(ctx, h));
    assert_same(y, h);
    eqr_ftype t = eqr_module_out_type(vn);
    assert_int_equal(t.kind, EQR_FTYPE_VN);
    assert_int_equal(t.channels, 2);

    eqr_irreps in, mid, sc, gated;
    assert_int_equal(eqr_irreps_parse(ctx, "4x0e+2x1o", &in), EQR_OK);
    assert_int_equal(eqr_irreps_parse(ctx, "3x0e+2x0e+2x1o", &mid), EQR_OK);
    assert_int_equal(eqr_irreps_parse(ctx, "3x0e", &sc), EQR_OK);
    assert_int_equal(eqr_irreps_parse(ctx, "2x1o", &gated), EQR_OK);
    eqr_module *ir = eqr_sequential_create(ctx, "ir");
    eqr_sequential_add(ir, eqr_irreps_linear_module(ctx, "il", &in, &mid));
    eqr_sequential_add(ir, eqr_gate_module(ctx, NULL, &sc, &gated));
    assert_ok(ctx);
    eqr_tensor *xi = tu_input(ctx, "xi", 2, (int64_t[]){5, 10}, 1.0f);
    y = eqr_module_forward(ctx, ir, xi);
    h = eqr_irreps_linear_forward(ctx, eqr_module_irreps_linear(eqr_module_child(ir, 0)), xi);
    h = eqr_gate(ctx, h, 3, 1, (int64_t[]){2}, (int[]){1});
    assert_same(y, h);
    char s[128];
    t = eqr_module_out_type(ir);
    eqr_ftype_str(&t, s, sizeof s);
    assert_string_equal(s, "3x0e+2x1o");
    /* a gate whose input does not match the linear's output is refused */
    eqr_irreps wrong;
    eqr_irreps_parse(ctx, "2x0e+2x0e+2x1o", &wrong);
    eqr_module *ir2 = eqr_sequential_create(ctx, "ir2");
    assert_int_equal(eqr_sequential_add(ir2, eqr_irreps_linear_module(ctx, "il2", &in, &wrong)), EQR_OK);
    assert_int_equal(eqr_sequential_add(ir2, eqr_gate_module(ctx, NULL, &sc, &gated)), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "'il2' (irreps_linear) gives 2x0e+2x0e+2x1o");
    assert_int_equal(eqr_module_num_children(ir2), 1); /* the refused gate is freed */
    eqr_module_destroy(ir2);
    eqr_module_destroy(vn);
    eqr_module_destroy(ir);
    eqr_ctx_destroy(ctx);
}

/* Running statistics change in training mode only, at every depth. */
static void test_training_switch(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(3);
    eqr_group G = eqr_group_dihedral(2);
    eqr_rep *r2 = tu_regular_rep(ctx, &G, 2);
    eqr_module *deep = eqr_sequential_create(ctx, "deep");
    eqr_sequential_add(deep, eqr_field_bn_module(ctx, "fbn", r2, NULL));
    eqr_sequential_add(deep, eqr_dropout_module(ctx, "drop", 0.5f));
    eqr_module *mid = eqr_sequential_create(ctx, "mid");
    eqr_sequential_add(mid, deep);
    eqr_sequential_add(mid, eqr_batchnorm_module(ctx, "bn", 8));
    eqr_module *net = eqr_sequential_create(ctx, "net");
    eqr_sequential_add(net, mid);
    assert_ok(ctx);
    eqr_tensor *x = tu_randn(ctx, 4, 8, 3, 3);
    const char *bufs[] = {"fbn.running_mean", "fbn.running_var", "bn.running_mean",
                          "bn.running_var"};
    float before[4][8];
    for (int mode = 1; mode >= 0; mode--) {
        eqr_module_set_training(net, mode);
        assert_int_equal(eqr_module_training(deep), mode);
        assert_int_equal(eqr_field_bn_training(eqr_module_field_bn(eqr_module_child(deep, 0))),
                         mode);
        for (int b = 0; b < 4; b++) {
            eqr_tensor *t = eqr_param_find(ctx, bufs[b]);
            memcpy(before[b], t->data, (size_t)t->numel * sizeof(float));
        }
        eqr_tensor *y = eqr_module_forward(ctx, net, x);
        assert_ok(ctx);
        for (int b = 0; b < 4; b++) {
            eqr_tensor *t = eqr_param_find(ctx, bufs[b]);
            int same = !memcmp(before[b], t->data, (size_t)t->numel * sizeof(float));
            if (same == mode) fail_msg("%s %s in mode %d", bufs[b], same ? "unchanged" : "changed", mode);
        }
        /* dropout: the identity in evaluation only (p = 0.5 zeroes some of
         * the 288 values in training) */
        eqr_tensor *d = eqr_module_forward(ctx, eqr_module_child(deep, 1), x);
        int zeros = 0;
        for (int64_t i = 0; i < d->numel; i++) zeros += d->data[i] == 0.0f;
        if (mode) assert_true(zeros > 0);
        else assert_memory_equal(d->data, x->data, (size_t)x->numel * sizeof(float));
        assert_non_null(y);
    }
    eqr_module_destroy(net);
    eqr_rep_destroy(r2);
    eqr_ctx_destroy(ctx);
}

typedef struct logbuf {
    char text[8192];
    size_t len;
} logbuf;
static void log_cb(eqr_log_level level, const char *msg, void *user) {
    logbuf *b = user;
    assert_int_equal(level, EQR_LOG_INFO);
    b->len += (size_t)snprintf(b->text + b->len, sizeof b->text - b->len, "%s\n", msg);
}

static void test_summary(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(4);
    c4net n;
    c4net_build(ctx, &n);
    char buf[8192];
    int len = eqr_module_summary(ctx, n.net, buf, sizeof buf);
    assert_true(len > 0 && (size_t)len == strlen(buf));
    const char *names[] = {"net", "c1", "bn1", "relu", "mp", "inner", "c2", "act2", "gp",
                           "global_avgpool", "fc"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strstr(buf, names[i])) fail_msg("summary lacks '%s':\n%s", names[i], buf);
    assert_non_null(strstr(buf, "C4[trivial] -> C4[regular x4]"));
    assert_non_null(strstr(buf, "C4[regular x6] -> C4[trivial x6]"));
    /* every store entry belongs to the model: the totals are the store's */
    int64_t p = 0, b = 0;
    int nt = 0;
    for (int i = 0; i < eqr_param_num_tensors(ctx); i++) {
        if (eqr_param_flags(ctx, i) & EQR_PARAM_BUFFER)
            b += eqr_param_at(ctx, i)->numel;
        else
            p += eqr_param_at(ctx, i)->numel, nt++;
    }
    char want[128];
    snprintf(want, sizeof want, "total: %lld parameters in %d tensors, %lld buffer values",
             (long long)p, nt, (long long)b);
    if (!strstr(buf, want)) fail_msg("summary lacks '%s':\n%s", want, buf);
    /* 4 fields x 1 x 9 + 4 (c1), 6 x 4 x 4 x 9 + 6 (c2), 4 + 4 (bn1), 18 + 3 (fc) */
    assert_int_equal(p, 40 + 870 + 8 + 21);
    int64_t mp = 0, mb = 0;
    eqr_module_num_scalars(n.net, &mp, &mb);
    assert_int_equal(mp, p);
    assert_int_equal(mb, b);
    assert_int_equal(eqr_module_num_params(n.net), eqr_param_num_tensors(ctx));
    /* truncation: the full length is returned, the buffer terminated */
    char small[40];
    assert_int_equal(eqr_module_summary(ctx, n.net, small, sizeof small), len);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_int_equal(eqr_module_summary(ctx, n.net, NULL, 0), len);
    /* the log callback gets the same text, line by line */
    logbuf lb = {{0}, 0};
    eqr_ctx_set_log(ctx, log_cb, &lb);
    assert_int_equal(eqr_module_log_summary(ctx, n.net, EQR_LOG_INFO), EQR_OK);
    eqr_ctx_set_log(ctx, NULL, NULL);
    assert_string_equal(lb.text, buf);
    assert_int_equal(eqr_module_summary(ctx, NULL, buf, sizeof buf), -1);
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");
    c4net_free(&n);
    eqr_ctx_destroy(ctx);
}

/* Each relaxable kind: the relaxed module's forward is eqr_rlayer_forward
 * (at theta = 0 the plain layer's, bit for bit; with theta W_r != 0 it
 * differs), it owns W_r, and kinds without a relaxed form are refused. */
static void test_relax_module_kinds(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(5);
    eqr_relax *r = tu_relax(ctx, "relax", 0.0f, 0.1f, 0.0f, 0.0f, 0);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *t1 = tu_trivial_rep(ctx, &G, 1), *r2 = tu_regular_rep(ctx, &G, 2);
    eqr_module *mods[3] = {
        eqr_gconv_module(ctx, "g", t1, r2, 3, NULL),
        eqr_steer_conv_module(ctx, "s", t1, r2, 3, NULL),
        eqr_vn_linear_module(ctx, "v", 2, 3),
    };
    eqr_tensor *xs[3] = {tu_randn(ctx, 2, 1, 7, 7), tu_randn(ctx, 2, 1, 7, 7),
                         tu_input(ctx, "xv", 4, (int64_t[]){2, 2, 3, 4}, 1.0f)};
    const char *wr[3] = {"g.wr", "s.wr", "rv.wr"};
    assert_ok(ctx);
    for (int k = 0; k < 3; k++) {
        eqr_tensor *plain = eqr_module_forward(ctx, mods[k], xs[k]);
        eqr_ftype tin = eqr_module_in_type(mods[k]);
        int np = eqr_module_num_params(mods[k]);
        eqr_module *rm = eqr_relax_module(ctx, r, k == 2 ? "rv" : NULL, mods[k], NULL);
        assert_ok(ctx);
        assert_string_equal(eqr_module_kind(rm), "relaxed");
        assert_ptr_equal(eqr_module_child(rm, 0), mods[k]);
        eqr_ftype rin = eqr_module_in_type(rm);
        assert_true(eqr_ftype_compatible(&tin, &rin) && rin.kind == tin.kind);
        eqr_rlayer *rl = eqr_module_rlayer(rm);
        assert_non_null(rl);
        assert_ptr_equal(eqr_rlayer_wr(rl), eqr_param_find(ctx, wr[k]));
        assert_int_equal(eqr_module_num_params(rm), np + 1); /* + W_r */
        assert_same(eqr_module_forward(ctx, rm, xs[k]), plain); /* theta 0 */
        assert_same(eqr_module_forward(ctx, rm, xs[k]), eqr_rlayer_forward(ctx, rl, xs[k]));
        eqr_relax_set_theta(r, 0.5f);
        eqr_tensor *y = eqr_module_forward(ctx, rm, xs[k]);
        assert_same(y, eqr_rlayer_forward(ctx, rl, xs[k]));
        assert_memory_not_equal(y->data, plain->data, (size_t)y->numel * sizeof(float));
        eqr_relax_set_theta(r, 0.0f);
        /* relaxing twice is refused (and frees the module) */
        assert_null(eqr_relax_module(ctx, r, "again", rm, NULL));
        tu_assert_error(ctx, EQR_ERR_ARG, "relaxed already");
    }
    assert_int_equal(eqr_relax_num_layers(r), 3);
    /* kinds without a relaxed form */
    eqr_module *no[3] = {eqr_linear_module(ctx, "fc", 4, 2, 1), eqr_relu_module(ctx, NULL),
                         eqr_field_bn_module(ctx, "bn", r2, NULL)};
    const char *kinds[3] = {"'linear'", "'activation'", "'field_bn'"};
    for (int k = 0; k < 3; k++) {
        assert_null(eqr_relax_module(ctx, r, NULL, no[k], NULL));
        tu_assert_error(ctx, EQR_ERR_ARG, kinds[k]);
    }
    eqr_module *fc = eqr_linear_module(ctx, "fc2", 4, 2, 1);
    assert_null(eqr_relax_module(ctx, r, NULL, fc, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "module 'fc2' is of kind 'linear', which cannot be relaxed");
    assert_null(eqr_relax_module(ctx, NULL, NULL, eqr_relu_module(ctx, NULL), NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "'r' is NULL");
    assert_null(eqr_relax_module(ctx, r, NULL, NULL, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "'m' is NULL");
    /* a container without anything relaxable */
    eqr_module *plain_seq = eqr_sequential_create(ctx, "empty");
    eqr_sequential_add(plain_seq, eqr_relu_module(ctx, NULL));
    assert_null(eqr_relax_module(ctx, r, NULL, plain_seq, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "holds no module that can be relaxed");
    assert_int_equal(eqr_relax_num_layers(r), 3);
    eqr_relax_destroy(r);
    eqr_rep_destroy(t1);
    eqr_rep_destroy(r2);
    eqr_ctx_destroy(ctx);
}

/* A container is relaxed in place: every conv at any depth, the forward
 * unchanged at theta = 0, the summary shows the relaxed rows. */
static void test_relax_container(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(6);
    c4net n;
    c4net_build(ctx, &n);
    eqr_relax *r = tu_relax(ctx, "relax", 0.0f, 0.1f, 0.01f, 0.01f, 0);
    eqr_module_set_training(n.net, 0);
    eqr_tensor *x = tu_randn(ctx, 2, 1, 8, 8);
    eqr_tensor *y0 = eqr_module_forward(ctx, n.net, x);
    eqr_module *net = eqr_relax_module(ctx, r, NULL, n.net, NULL);
    assert_ok(ctx);
    assert_ptr_equal(net, n.net);
    assert_int_equal(eqr_relax_num_layers(r), 2);
    assert_string_equal(eqr_module_kind(eqr_module_child(net, 0)), "relaxed");
    assert_string_equal(eqr_module_kind(eqr_module_child(n.inner, 0)), "relaxed");
    assert_non_null(eqr_param_find(ctx, "c1.wr"));
    assert_non_null(eqr_param_find(ctx, "c2.wr"));
    eqr_grad_set_enabled(ctx, 0); /* no penalty terms recorded */
    assert_same(eqr_module_forward(ctx, net, x), y0);
    eqr_grad_set_enabled(ctx, 1);
    /* the relaxed model's parameters include W_r; the relaxation's global
     * theta is no module's */
    int64_t p = 0, mp = 0;
    for (int i = 0; i < eqr_param_num_tensors(ctx); i++)
        if (!(eqr_param_flags(ctx, i) & EQR_PARAM_BUFFER)) p += eqr_param_at(ctx, i)->numel;
    eqr_module_num_scalars(net, &mp, NULL);
    assert_int_equal(mp, p);
    assert_int_equal(eqr_module_num_params(net), eqr_param_num_tensors(ctx) - 1);
    char buf[8192];
    eqr_module_summary(ctx, net, buf, sizeof buf);
    assert_non_null(strstr(buf, "relaxed"));
    /* the relaxed module trains: a step moves W_r */
    eqr_module_set_training(net, 1);
    eqr_relax_set_theta(r, 0.5f);
    eqr_tensor *loss = eqr_add(ctx, eqr_sum_all(ctx, eqr_module_forward(ctx, net, x)),
                               eqr_sum_all(ctx, eqr_relax_penalty(ctx, r)));
    assert_int_equal(eqr_backward(ctx, loss), EQR_OK);
    eqr_tensor *wr = eqr_param_find(ctx, "c2.wr");
    int moved = 0;
    for (int64_t i = 0; i < wr->numel; i++) moved |= wr->grad[i] != 0.0f;
    assert_true(moved);
    eqr_relax_destroy(r);
    c4net_free(&n);
    eqr_ctx_destroy(ctx);
}

/* Mismatched types between consecutive layers, NULLs and misuse. */
static void test_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(7);
    eqr_group G = eqr_group_cyclic(4), D = eqr_group_dihedral(4);
    eqr_rep *t1 = tu_trivial_rep(ctx, &G, 1), *r4 = tu_regular_rep(ctx, &G, 4);
    eqr_rep *r3 = tu_regular_rep(ctx, &G, 3), *d4 = tu_regular_rep(ctx, &D, 4);
    eqr_module *s = eqr_sequential_create(ctx, "s");
    assert_int_equal(eqr_sequential_add(s, eqr_gconv_module(ctx, "a", t1, r4, 3, NULL)), EQR_OK);
    assert_int_equal(eqr_sequential_add(s, eqr_relu_module(ctx, NULL)), EQR_OK);
    /* regular x4 into a layer expecting regular x3, through the relu */
    assert_int_equal(eqr_sequential_add(s, eqr_gconv_module(ctx, "b", r3, r3, 3, NULL)), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG,
                    "in 's', layer 'a' (gconv) gives C4[regular x4] but the next layer 'b' "
                    "(gconv) expects C4[regular x3]");
    /* another group... */
    assert_int_equal(eqr_sequential_add(s, eqr_field_bn_module(ctx, "bn", d4, NULL)), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "expects D4[regular x4]");
    /* ...and plain channels of the wrong size */
    assert_int_equal(eqr_sequential_add(s, eqr_linear_module(ctx, "fc", 15, 2, 1)), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "'fc' (linear) expects plain(15)");
    assert_int_equal(eqr_sequential_add(s, eqr_global_avgpool_module(ctx, NULL)), EQR_OK);
    assert_int_equal(eqr_sequential_add(s, eqr_linear_module(ctx, "fc16", 16, 2, 1)), EQR_OK);
    /* VN channels */
    eqr_module *v = eqr_sequential_create(ctx, "v");
    assert_int_equal(eqr_sequential_add(v, eqr_vn_linear_module(ctx, "v1", 2, 3)), EQR_OK);
    assert_int_equal(eqr_sequential_add(v, eqr_vn_bn_module(ctx, "vbn", 4, NULL)), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "'v1' (vn_linear) gives vn(3) but the next layer 'vbn'");
    eqr_module_destroy(v);
    /* NULLs and misuse */
    assert_int_equal(eqr_sequential_add(s, NULL), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "'child' is NULL");
    assert_int_equal(eqr_sequential_add(NULL, eqr_relu_module(ctx, NULL)), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "'seq' is NULL");
    assert_int_equal(eqr_sequential_add(s, s), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "the container itself");
    assert_int_equal(eqr_sequential_add(s, eqr_module_child(s, 0)), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "already inside a container");
    eqr_module *relu = eqr_relu_module(ctx, NULL);
    assert_int_equal(eqr_sequential_add(relu, eqr_relu_module(ctx, NULL)), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "not a sequential");
    eqr_tensor *x = tu_randn(ctx, 1, 1, 5, 5);
    assert_null(eqr_module_forward(ctx, NULL, x));
    tu_assert_error(ctx, EQR_ERR_ARG, "'m' is NULL");
    assert_null(eqr_module_forward(ctx, s, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "'x' is NULL");
    /* a forward of the wrong shape is the layer's error */
    assert_null(eqr_module_forward(ctx, s, tu_randn(ctx, 1, 2, 5, 5)));
    tu_assert_error(ctx, EQR_ERR_SHAPE, NULL);
    assert_null(eqr_module_create(ctx, "u", NULL, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "ops");
    assert_null(eqr_sequential_create(ctx, ""));
    tu_assert_error(ctx, EQR_ERR_ARG, "empty");
    assert_null(eqr_conv2d_module(ctx, "c", 0, 2, 3, NULL, 1));
    tu_assert_error(ctx, EQR_ERR_ARG, ">= 1");
    assert_null(eqr_dropout_module(ctx, NULL, 1.0f));
    tu_assert_error(ctx, EQR_ERR_ARG, "[0, 1)");
    /* a context in error: the child is freed, the error kept */
    eqr_module *c = eqr_relu_module(ctx, NULL);
    eqr_conv2d_module(ctx, "c", 0, 2, 3, NULL, 1); /* puts ctx in error */
    assert_int_equal(eqr_sequential_add(s, c), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, ">= 1");
    /* replace_child checks both neighbours */
    eqr_module *old = eqr_module_replace_child(s, 0, eqr_gconv_module(ctx, "a2", t1, r3, 3, NULL));
    assert_null(old);
    tu_assert_error(ctx, EQR_ERR_ARG, "'a2' (gconv) gives C4[regular x3]");
    old = eqr_module_replace_child(s, 0, eqr_gconv_module(ctx, "a3", t1, r4, 5, NULL));
    assert_non_null(old);
    assert_string_equal(eqr_module_name(old), "a");
    eqr_module_destroy(old);
    eqr_module_destroy(relu);
    eqr_module_destroy(s);
    eqr_rep_destroy(t1);
    eqr_rep_destroy(r4);
    eqr_rep_destroy(r3);
    eqr_rep_destroy(d4);
    eqr_ctx_destroy(ctx);
}

/* A user-defined module: y = scale * x with a parameter "<name>.scale". */
static int user_destroyed;
static void user_free(void *p) {
    user_destroyed++;
    free(p);
}
static eqr_tensor *user_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    return eqr_mul(ctx, x, *(eqr_tensor **)eqr_module_impl(m));
}
static int user_describe(const eqr_module *m, char *buf, size_t n) {
    return snprintf(buf, n, "user scale");
}
/* A tuple-only user module: io = {a, b} -> {a + b, b}. */
static eqr_status pair_fwd(eqr_ctx *ctx, eqr_module *m, int n, eqr_tensor **io) {
    (void)m;
    (void)n;
    io[0] = eqr_add(ctx, io[0], io[1]);
    return io[0] ? EQR_OK : eqr_error_status(ctx);
}
static const eqr_module_ops user_ops = {.kind = "scale", .forward = user_fwd,
                                        .destroy = user_free, .describe = user_describe,
                                        .keeps_type = 1};

static void test_user_module(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(8);
    eqr_tensor **impl = malloc(sizeof *impl);
    *impl = eqr_param_create(ctx, "sc.scale", 1, (int64_t[]){1}, 0);
    (*impl)->data[0] = 3.0f;
    eqr_param_create(ctx, "scx.other", 1, (int64_t[]){2}, 0); /* not sc's */
    user_destroyed = 0;
    eqr_module *u = eqr_module_create(ctx, "sc", &user_ops, impl);
    assert_non_null(u);
    assert_int_equal(eqr_module_num_params(u), 1);
    assert_string_equal(eqr_param_name(ctx, eqr_module_param_index(u, 0)), "sc.scale");
    eqr_module *net = eqr_sequential_create(ctx, "net");
    eqr_sequential_add(net, eqr_linear_module(ctx, "fc", 4, 3, 0));
    eqr_sequential_add(net, u);
    assert_ok(ctx);
    eqr_tensor *x = tu_randn(ctx, 2, 4, 1, 1);
    x = eqr_reshape(ctx, x, 2, (int64_t[]){2, 4});
    eqr_tensor *y = eqr_module_forward(ctx, net, x);
    eqr_tensor *ref = eqr_scale(ctx, eqr_linear(ctx, x, eqr_param_find(ctx, "fc.weight"), NULL), 3.0f);
    assert_same(y, ref);
    char buf[2048];
    eqr_module_summary(ctx, net, buf, sizeof buf);
    assert_non_null(strstr(buf, "user scale"));
    assert_non_null(strstr(buf, "total: 13 parameters in 2 tensors"));
    eqr_module_destroy(net);
    assert_int_equal(user_destroyed, 1);
    /* a failing create frees impl too */
    assert_null(eqr_module_create(ctx, NULL, &user_ops, malloc(8)));
    tu_assert_error(ctx, EQR_ERR_ARG, "name");
    assert_int_equal(user_destroyed, 2);
    /* tuple-only: no single forward needed; arity and entries checked for it */
    static const eqr_module_ops pair_ops = {.kind = "pair", .tuple = "a, b", .forward_n = pair_fwd};
    static const eqr_module_ops no_fwd = {.kind = "nofwd", .forward_n = pair_fwd};
    assert_null(eqr_module_create(ctx, "nf", &no_fwd, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "ops->forward (or ops->tuple and ops->forward_n)");
    eqr_module *pm = eqr_module_create(ctx, "pm", &pair_ops, NULL);
    assert_non_null(pm);
    eqr_tensor *x2 = eqr_scale(ctx, x, 2.0f), *pio[2] = {x, x2};
    assert_int_equal(eqr_module_forward_n(ctx, pm, 2, pio), EQR_OK);
    assert_same(pio[0], eqr_add(ctx, x, x2));
    assert_ptr_equal(pio[1], x2);
    assert_null(eqr_module_forward(ctx, pm, x));
    tu_assert_error(ctx, EQR_ERR_ARG, "module 'pm' (pair) takes (a, b): use eqr_module_forward_n with n = 2");
    assert_int_equal(eqr_module_forward_n(ctx, pm, 1, pio), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "module 'pm' (pair): the tuple is (a, b), n = 2 (got 1)");
    eqr_tensor *pnull[2] = {x, NULL};
    assert_int_equal(eqr_module_forward_n(ctx, pm, 2, pnull), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "module 'pm' (pair): io[1] (b) is NULL");
    eqr_module_destroy(pm);
    eqr_ctx_destroy(ctx);
}

/* EGNN through the tuple forward: a stack equals the layers by hand, a
 * one-tensor module maps io[0], a single tensor is refused, and the stack
 * is relaxed in one call (the coordinate-term hook). */
static void test_egnn_tuple(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(9);
    eqr_egnn_opts go = {.hidden = 8, .edge_attr = 1, .velocity = 1};
    eqr_module *net = eqr_sequential_create(ctx, "gnn");
    eqr_sequential_add(net, eqr_egnn_module(ctx, "g1", 4, 4, &go));
    eqr_sequential_add(net, eqr_activation_module(ctx, NULL, EQR_PW_TANH, 0));
    eqr_sequential_add(net, eqr_egnn_module(ctx, "g2", 4, 4, &go));
    assert_ok(ctx);
    eqr_tensor *h = tu_input(ctx, "h", 3, (int64_t[]){2, 5, 4}, 1.0f);
    eqr_tensor *x = tu_input(ctx, "x", 3, (int64_t[]){2, 5, 3}, 1.0f);
    eqr_tensor *v = tu_input(ctx, "v", 3, (int64_t[]){2, 5, 3}, 1.0f);
    eqr_tensor *e = tu_input(ctx, "e", 4, (int64_t[]){2, 5, 5, 1}, 1.0f);
    eqr_tensor *io[4] = {h, x, v, e};
    assert_int_equal(eqr_module_forward_n(ctx, net, 4, io), EQR_OK);
    eqr_tensor *h1, *x1, *h2, *x2;
    eqr_egnn_forward(ctx, eqr_module_egnn(eqr_module_child(net, 0)), h, x, v, e, &h1, &x1);
    eqr_egnn_forward(ctx, eqr_module_egnn(eqr_module_child(net, 2)), eqr_tanh(ctx, h1), x1, v, e,
                     &h2, &x2);
    assert_ok(ctx);
    assert_same(io[0], h2);
    assert_same(io[1], x2);
    assert_ptr_equal(io[2], v);
    assert_ptr_equal(io[3], e);
    /* refusals */
    assert_null(eqr_module_forward(ctx, net, h));
    tu_assert_error(ctx, EQR_ERR_ARG, "use eqr_module_forward_n");
    eqr_tensor *io3[3] = {h, x, v};
    assert_int_equal(eqr_module_forward_n(ctx, net, 3, io3), EQR_ERR_ARG);
    assert_null(io3[0]);
    tu_assert_error(ctx, EQR_ERR_ARG, "n = 4 (got 3)");
    assert_int_equal(eqr_module_forward_n(ctx, net, 0, io), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "n >= 1");
    /* relaxed in one call: theta 0 leaves the forward unchanged */
    eqr_relax *r = tu_relax(ctx, "relax", 0.0f, 0.1f, 0.0f, 0.0f, 0);
    net = eqr_relax_module(ctx, r, NULL, net, NULL);
    assert_ok(ctx);
    assert_int_equal(eqr_relax_num_layers(r), 2);
    assert_non_null(eqr_param_find(ctx, "g2.wr"));
    assert_ptr_equal(eqr_egnn_coord_term(eqr_module_egnn(eqr_module_child(eqr_module_child(net, 2), 0))),
                     eqr_module_rlayer(eqr_module_child(net, 2)));
    eqr_tensor *io2[4] = {h, x, v, e};
    assert_int_equal(eqr_module_forward_n(ctx, net, 4, io2), EQR_OK);
    assert_same(io2[1], x2);
    eqr_relax_set_theta(r, 0.5f);
    eqr_tensor *io4[4] = {h, x, v, e};
    assert_int_equal(eqr_module_forward_n(ctx, net, 4, io4), EQR_OK);
    assert_memory_not_equal(io4[1]->data, x2->data, (size_t)x2->numel * sizeof(float));
    eqr_module_destroy(net);
    eqr_relax_destroy(r);
    eqr_ctx_destroy(ctx);
}

/* SEGNN through the tuple forward: the module equals the model called
 * directly, a single tensor is refused, and one call relaxes it (two terms
 * per layer through the hooks; theta 0 leaves it unchanged). */
static void test_segnn_tuple(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(10);
    eqr_segnn_opts so = {.hidden = "4x0e+2x1o", .layers = 2};
    eqr_module *m = eqr_segnn_module(ctx, "sg", &so);
    assert_ok(ctx);
    eqr_tensor *x = tu_input(ctx, "x", 3, (int64_t[]){2, 4, 3}, 1.0f);
    eqr_tensor *v = tu_input(ctx, "v", 3, (int64_t[]){2, 4, 3}, 1.0f);
    eqr_tensor *q = tu_input(ctx, "q", 3, (int64_t[]){2, 4, 1}, 1.0f);
    eqr_tensor *io[3] = {x, v, q};
    assert_int_equal(eqr_module_forward_n(ctx, m, 3, io), EQR_OK);
    eqr_tensor *ref = eqr_segnn_forward(ctx, eqr_module_segnn(m), x, v, q);
    assert_same(io[0], ref);
    assert_ptr_equal(io[1], v);
    assert_null(eqr_module_forward(ctx, m, x));
    tu_assert_error(ctx, EQR_ERR_ARG, "use eqr_module_forward_n");
    eqr_tensor *io2[2] = {x, v};
    assert_int_equal(eqr_module_forward_n(ctx, m, 2, io2), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "n = 3 (got 2)");
    char buf[512];
    eqr_module_summary(ctx, m, buf, sizeof buf);
    assert_non_null(strstr(buf, "N-body SEGNN, 2 layers, hidden 4x0e+2x1o"));
    eqr_relax *r = tu_relax(ctx, "relax", 0.0f, 0.1f, 0.0f, 0.0f, 0);
    m = eqr_relax_module(ctx, r, NULL, m, NULL);
    assert_ok(ctx);
    assert_int_equal(eqr_relax_num_layers(r), 4);
    assert_non_null(eqr_param_find(ctx, "sg.layer1.relax2.wr"));
    assert_ptr_equal(eqr_module_rlayer(m), eqr_relax_layer(r, 0));
    eqr_tensor *io3[3] = {x, v, q};
    assert_int_equal(eqr_module_forward_n(ctx, m, 3, io3), EQR_OK);
    assert_same(io3[0], ref);
    eqr_relax_set_theta(r, 0.5f);
    eqr_tensor *io4[3] = {x, v, q};
    assert_int_equal(eqr_module_forward_n(ctx, m, 3, io4), EQR_OK);
    assert_memory_not_equal(io4[0]->data, ref->data, (size_t)ref->numel * sizeof(float));
    assert_null(eqr_relax_module(ctx, r, NULL, m, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "relaxed already");
    eqr_relax_destroy(r);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequential_equals_by_hand),
        cmocka_unit_test(test_sequential_vn_irreps),
        cmocka_unit_test(test_training_switch),
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_relax_module_kinds),
        cmocka_unit_test(test_relax_container),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_user_module),
        cmocka_unit_test(test_egnn_tuple),
        cmocka_unit_test(test_segnn_tuple),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
