/* Ops: eqr_relu_inplace.
 *   forward of conv -> relu_inplace -> conv against a naive double
 *     reference, and the result really shares x's storage;
 *   gradients of that chain: bit-identical to the same chain with eqr_relu,
 *     and by finite differences (x, both filter banks, the bias);
 *   gradient reaching the in-place node only through a reshape of its
 *     output (the node's own output has no gradient buffer then), and a
 *     backward started at the in-place output itself;
 *   a relaxed group conv's output through it, against eqr_relu;
 *   one vs two threads give identical bits (large tensor, split);
 *   with recording off: a plain in-place relu, nothing recorded;
 *   rejected inputs: parameter, view, data / wrapped buffer, a recorded
 *     tensor once recording is off, a tensor another op already reads, a
 *     tensor from an earlier step. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static eqr_ctx *mkctx(int threads) {
    eqr_ctx_opts o = {0};
    o.seed = 5;
    o.threads = threads;
    o.arena_bytes = 1 << 20;
    eqr_ctx *ctx = eqr_ctx_create(&o);
    assert_non_null(ctx);
    return ctx;
}

/* ---- the chain y = conv(relu(conv(x, w1, b1)), w2), 3x3 pad 1 ---- */

#define N 2
#define C 2
#define M 3 /* channels after the first conv */
#define O 2
#define S 5

static int g_inplace; /* which relu the chain uses */

static eqr_tensor *chain(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    const eqr_conv2d_geom g = EQR_CONV2D(1, 1, 1);
    eqr_tensor *h = eqr_conv2d(ctx, in[0], in[1], in[2], &g);
    h = g_inplace ? eqr_relu_inplace(ctx, h) : eqr_relu(ctx, h);
    return eqr_conv2d(ctx, h, in[3], NULL, &g);
}

/* Naive double conv 3x3 pad 1 stride 1: x [n,c,S,S], w [o,c,3,3]. ymag
 * gets sum |w| (|x| + xmag) + |b|, the error-bound scale of y when x itself
 * carries an error within gamma * xmag (xmag NULL: exact x). */
static void ref_conv(const double *x, const double *xmag, const float *w, const float *b, int n,
                     int c, int o, double *y, double *ymag) {
    for (int i = 0; i < n; i++)
        for (int q = 0; q < o; q++)
            for (int r = 0; r < S; r++)
                for (int s = 0; s < S; s++) {
                    double acc = b ? b[q] : 0.0, m = b ? fabs(b[q]) : 0.0;
                    for (int p = 0; p < c; p++)
                        for (int u = 0; u < 3; u++)
                            for (int v = 0; v < 3; v++) {
                                int rr = r + u - 1, ss = s + v - 1;
                                if (rr < 0 || rr >= S || ss < 0 || ss >= S) continue;
                                int64_t xi = ((i * c + p) * S + rr) * S + ss;
                                double wv = w[((q * c + p) * 3 + u) * 3 + v];
                                acc += x[xi] * wv;
                                m += fabs(wv) * (fabs(x[xi]) + (xmag ? xmag[xi] : 0));
                            }
                    y[((i * o + q) * S + r) * S + s] = acc;
                    ymag[((i * o + q) * S + r) * S + s] = m;
                }
}

static void make_inputs(eqr_ctx *ctx, eqr_tensor **in) {
    int64_t sx[4] = {N, C, S, S}, s1[4] = {M, C, 3, 3}, sb[1] = {M}, s2[4] = {O, M, 3, 3};
    in[0] = tu_input(ctx, "x", 4, sx, 1.0f);
    in[1] = tu_input(ctx, "w1", 4, s1, 0.5f);
    in[2] = tu_input(ctx, "b1", 1, sb, 0.3f);
    in[3] = tu_input(ctx, "w2", 4, s2, 0.5f);
}

static void test_forward(void **state) {
    (void)state;
    eqr_ctx *ctx = mkctx(1);
    eqr_tensor *in[4];
    make_inputs(ctx, in);
    const eqr_conv2d_geom g = EQR_CONV2D(1, 1, 1);
    eqr_tensor *h = eqr_conv2d(ctx, in[0], in[1], in[2], &g);
    assert_non_null(h);
    eqr_tensor *r = eqr_relu_inplace(ctx, h);
    assert_non_null(r);
    assert_ptr_equal(r->data, h->data); /* no copy */
    assert_int_equal(r->numel, h->numel);
    eqr_tensor *y = eqr_conv2d(ctx, r, in[3], NULL, &g);
    assert_non_null(y);

    double x[N * C * S * S], a[N * M * S * S], yref[N * O * S * S];
    double amag[N * M * S * S], ymag[N * O * S * S];
    for (int i = 0; i < N * C * S * S; i++) x[i] = in[0]->data[i];
    ref_conv(x, NULL, in[1]->data, in[2]->data, N, C, M, a, amag);
    int neg = 0;
    for (int i = 0; i < N * M * S * S; i++) {
        neg += a[i] < 0;
        a[i] = a[i] > 0 ? a[i] : 0.0;
    }
    assert_true(neg > 10); /* the relu really cuts something */
    /* C*9 products + bias; relu is exact (and only shrinks the error) */
    const int n1 = C * 9 + 1, n2 = M * 9;
    tu_assert_close_bound("relu_inplace values", r->data, a, amag, N * M * S * S, n1, 1);
    /* the second conv on the first's float output: gamma_n2 sum |w2 a| plus
     * sum |w2| gamma_n1 amag, within gamma_{n1+n2} sum |w2| (|a| + amag) */
    ref_conv(a, amag, in[3]->data, NULL, N, M, O, yref, ymag);
    tu_assert_close_bound("chain output", y->data, yref, ymag, N * O * S * S, n1 + n2, 1);
    eqr_ctx_destroy(ctx);
}

/* Gradients of all four inputs after backward with a fixed seed. */
static void chain_grads(int inplace, float *out, int64_t *len) {
    eqr_ctx *ctx = mkctx(1);
    eqr_tensor *in[4];
    make_inputs(ctx, in);
    g_inplace = inplace;
    eqr_tensor *y = chain(ctx, in, NULL);
    assert_non_null(y);
    eqr_tensor *seed = eqr_tensor_from(ctx, y->ndim, y->shape, NULL);
    for (int64_t i = 0; i < seed->numel; i++) seed->data[i] = (float)((i * 7) % 13) / 6.0f - 1.0f;
    assert_int_equal(eqr_backward_from(ctx, y, seed), EQR_OK);
    int64_t k = 0;
    for (int i = 0; i < 4; i++) {
        assert_non_null(in[i]->grad);
        memcpy(out + k, in[i]->grad, (size_t)in[i]->numel * sizeof(float));
        k += in[i]->numel;
    }
    *len = k;
    eqr_ctx_destroy(ctx);
}

static void test_same_grads_as_relu(void **state) {
    (void)state;
    float a[1024], b[1024];
    int64_t na, nb;
    chain_grads(0, a, &na);
    chain_grads(1, b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, (size_t)na * sizeof(float));
}

static void test_gradcheck(void **state) {
    (void)state;
    eqr_ctx *ctx = mkctx(1);
    eqr_tensor *in[4];
    make_inputs(ctx, in);
    g_inplace = 1;
    tu_gradcheck(ctx, chain, in, 4, NULL, 1e-3, 2 * (M * 9 + C * 9 + 2) /* conv, bias, relu, conv */);
    eqr_ctx_destroy(ctx);
}

/* relu_inplace output -> reshape -> max over an axis -> sum: the gradient
 * reaches the root buffer through the reshape only. */
static eqr_tensor *via_view(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    const eqr_conv2d_geom g = EQR_CONV2D(1, 1, 1);
    eqr_tensor *h = eqr_conv2d(ctx, in[0], in[1], in[2], &g);
    h = g_inplace ? eqr_relu_inplace(ctx, h) : eqr_relu(ctx, h);
    int64_t s3[3] = {N, M, S * S};
    return eqr_max(ctx, eqr_reshape(ctx, h, 3, s3), 2, 0);
}

static void test_through_view(void **state) {
    (void)state;
    float g[2][256];
    for (int v = 0; v < 2; v++) {
        eqr_ctx *ctx = mkctx(1);
        eqr_tensor *in[4];
        make_inputs(ctx, in);
        g_inplace = v;
        eqr_tensor *y = via_view(ctx, in, NULL);
        assert_non_null(y);
        eqr_tensor *seed = eqr_tensor_from(ctx, y->ndim, y->shape, NULL);
        eqr_tensor_fill(seed, 1.0f);
        assert_int_equal(eqr_backward_from(ctx, y, seed), EQR_OK);
        memcpy(g[v], in[1]->grad, (size_t)in[1]->numel * sizeof(float));
        memcpy(g[v] + in[1]->numel, in[0]->grad, (size_t)in[0]->numel * sizeof(float));
        eqr_ctx_destroy(ctx);
    }
    assert_memory_equal(g[0], g[1], (M * C * 9 + N * C * S * S) * sizeof(float));
    eqr_ctx *ctx = mkctx(1);
    eqr_tensor *in[4];
    make_inputs(ctx, in);
    g_inplace = 1;
    tu_gradcheck(ctx, via_view, in, 3, NULL, 1e-2, 2 * (M * 9 + C * 9 + 2));
    eqr_ctx_destroy(ctx);
}

/* Backward started at the in-place output itself (its node is newer than
 * its root's). */
static void test_backward_from_output(void **state) {
    (void)state;
    eqr_ctx *ctx = mkctx(1);
    eqr_tensor *in[4];
    make_inputs(ctx, in);
    const eqr_conv2d_geom g = EQR_CONV2D(1, 1, 1);
    eqr_tensor *h = eqr_conv2d(ctx, in[0], in[1], in[2], &g);
    eqr_tensor *r = eqr_relu_inplace(ctx, h);
    assert_non_null(r);
    eqr_tensor *seed = eqr_tensor_from(ctx, r->ndim, r->shape, NULL);
    eqr_tensor_fill(seed, 1.0f);
    assert_int_equal(eqr_backward_from(ctx, r, seed), EQR_OK);
    /* d sum(relu(h)) / d b1[m] = number of positive cells of channel m */
    for (int m = 0; m < M; m++) {
        double cnt = 0;
        for (int i = 0; i < N; i++)
            for (int p = 0; p < S * S; p++) cnt += r->data[(i * M + m) * S * S + p] > 0.0f;
        assert_true(cnt > 0);
        assert_true(in[2]->grad[m] == (float)cnt); /* a float sum of ones (< 2^24): exact */
    }
    eqr_ctx_destroy(ctx);
}

/* A relaxed group conv (fused bank, norm penalty on) through the in-place
 * relu: same gradients as through eqr_relu. */
static void relaxed_grads(int inplace, float *out, int64_t *len) {
    eqr_ctx *ctx = mkctx(1);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *rin = tu_regular_rep(ctx, &G, 1), *rout = tu_regular_rep(ctx, &G, 2);
    eqr_gconv *gc = tu_gconv(ctx, "g", rin, rout, 3, EQR_CONV2D(1, 1, 1), 0.2f);
    eqr_relax *rx = tu_relax(ctx, "rx", 0.5f, 0.1f, 0.1f, 0.1f, 0);
    eqr_rlayer *rl = eqr_relax_gconv(ctx, rx, "g", gc, NULL);
    assert_non_null(rl);
    int64_t sx[4] = {2, 4, 6, 6};
    eqr_tensor *x = tu_input(ctx, "x", 4, sx, 1.0f);
    eqr_tensor *h = eqr_rlayer_forward(ctx, rl, x);
    assert_non_null(h);
    h = inplace ? eqr_relu_inplace(ctx, h) : eqr_relu(ctx, h);
    assert_non_null(h);
    eqr_tensor *loss = eqr_add(ctx, eqr_sum_all(ctx, eqr_mul(ctx, h, h)), eqr_relax_penalty(ctx, rx));
    assert_non_null(loss);
    assert_int_equal(eqr_backward(ctx, loss), EQR_OK);
    *len = 0;
    for (int i = 0; i < eqr_param_num_tensors(ctx); i++) {
        eqr_tensor *p = eqr_param_at(ctx, i);
        if (!p->grad) continue;
        memcpy(out + *len, p->grad, (size_t)p->numel * sizeof(float));
        *len += p->numel;
    }
    assert_true(*len > 0);
    eqr_relax_destroy(rx);
    eqr_gconv_destroy(gc);
    eqr_rep_destroy(rin);
    eqr_rep_destroy(rout);
    eqr_ctx_destroy(ctx);
}

static void test_relaxed_conv(void **state) {
    (void)state;
    static float a[8192], b[8192];
    int64_t na, nb;
    relaxed_grads(0, a, &na);
    relaxed_grads(1, b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, (size_t)na * sizeof(float));
}

/* ---- threads: a tensor large enough to be split ---- */

#define BIG_C 4
#define BIG_S 128 /* 2 x 4 x 128 x 128 = 131072 elements */

static void big_run(int threads, float *vals, float *grad) {
    eqr_ctx *ctx = mkctx(threads);
    int64_t sx[4] = {2, 1, BIG_S, BIG_S}, sw[4] = {BIG_C, 1, 1, 1};
    eqr_tensor *x = tu_input(ctx, "x", 4, sx, 1.0f);
    eqr_tensor *w = tu_input(ctx, "w", 4, sw, 1.0f);
    eqr_tensor *h = eqr_relu_inplace(ctx, eqr_conv2d(ctx, x, w, NULL, NULL));
    assert_non_null(h);
    memcpy(vals, h->data, (size_t)h->numel * sizeof(float));
    eqr_tensor *seed = eqr_tensor_from(ctx, h->ndim, h->shape, NULL);
    for (int64_t i = 0; i < seed->numel; i++) seed->data[i] = (float)(i % 17) - 8.0f;
    assert_int_equal(eqr_backward_from(ctx, h, seed), EQR_OK);
    /* the masked gradient is the conv output's buffer */
    const float *gh = h->grad;
    assert_non_null(gh);
    memcpy(grad, gh, (size_t)h->numel * sizeof(float));
    for (int64_t i = 0; i < h->numel; i++)
        assert_true(grad[i] == (vals[i] > 0.0f ? seed->data[i] : 0.0f));
    eqr_ctx_destroy(ctx);
}

static void test_threads(void **state) {
    (void)state;
    const size_t n = 2 * BIG_C * BIG_S * BIG_S;
    float *v1 = malloc(n * sizeof(float)), *v2 = malloc(n * sizeof(float));
    float *g1 = malloc(n * sizeof(float)), *g2 = malloc(n * sizeof(float));
    assert_non_null(v1);
    assert_non_null(v2);
    assert_non_null(g1);
    assert_non_null(g2);
    big_run(1, v1, g1);
    big_run(2, v2, g2);
    assert_memory_equal(v1, v2, n * sizeof(float));
    assert_memory_equal(g1, g2, n * sizeof(float));
    free(v1), free(v2), free(g1), free(g2);
}

/* ---- rejected inputs ---- */

static void test_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = mkctx(1);
    eqr_tensor *in[4];
    make_inputs(ctx, in);
    const eqr_conv2d_geom g = EQR_CONV2D(1, 1, 1);

    assert_null(eqr_relu_inplace(ctx, in[0]));
    tu_assert_error(ctx, EQR_ERR_ARG, "parameter");

    eqr_tensor *h = eqr_conv2d(ctx, in[0], in[1], in[2], &g);
    int64_t flat[1] = {h->numel};
    assert_null(eqr_relu_inplace(ctx, eqr_reshape(ctx, h, 1, flat)));
    tu_assert_error(ctx, EQR_ERR_ARG, "view");

    int64_t s[2] = {2, 3};
    eqr_tensor *d = eqr_tensor_from(ctx, 2, s, NULL);
    assert_null(eqr_relu_inplace(ctx, d));
    tu_assert_error(ctx, EQR_ERR_ARG, "require grad");
    float buf[6] = {1, -1, 2, -2, 3, -3};
    assert_null(eqr_relu_inplace(ctx, eqr_tensor_wrap(ctx, buf, 2, s)));
    tu_assert_error(ctx, EQR_ERR_ARG, "require grad");
    assert_true(buf[1] == -1.0f); /* untouched */

    eqr_grad_set_enabled(ctx, 0);
    assert_null(eqr_relu_inplace(ctx, h)); /* recorded earlier, recording now off */
    tu_assert_error(ctx, EQR_ERR_ARG, "recording is off");
    assert_null(eqr_relu_inplace(ctx, in[0])); /* parameters also with recording off */
    tu_assert_error(ctx, EQR_ERR_ARG, "parameter");
    /* evaluation: a plain in-place relu of an op output */
    eqr_tensor *ng = eqr_conv2d(ctx, in[0], in[1], in[2], &g);
    assert_non_null(ng);
    float *copy = malloc((size_t)ng->numel * sizeof(float));
    assert_non_null(copy);
    memcpy(copy, ng->data, (size_t)ng->numel * sizeof(float));
    eqr_tensor *nr = eqr_relu_inplace(ctx, ng);
    assert_non_null(nr);
    assert_ptr_equal(nr->data, ng->data);
    assert_false(nr->flags & EQR_T_REQUIRES_GRAD);
    for (int64_t i = 0; i < ng->numel; i++) assert_true(nr->data[i] == (copy[i] > 0 ? copy[i] : 0.0f));
    free(copy);
    int64_t tape = eqr_tape_num_nodes(ctx);
    eqr_grad_set_enabled(ctx, 1);
    assert_int_equal(eqr_tape_num_nodes(ctx), tape);

    /* h already read by an op recorded after it */
    eqr_tensor *h2 = eqr_conv2d(ctx, in[0], in[1], in[2], &g);
    assert_non_null(eqr_mul(ctx, h2, h2));
    float before = h2->data[0];
    assert_null(eqr_relu_inplace(ctx, h2));
    tu_assert_error(ctx, EQR_ERR_ARG, "other consumer");
    assert_true(h2->data[0] == before);
    /* ... also through a view */
    eqr_tensor *h3 = eqr_conv2d(ctx, in[0], in[1], in[2], &g);
    assert_non_null(eqr_sum_all(ctx, eqr_reshape(ctx, h3, 1, flat)));
    assert_null(eqr_relu_inplace(ctx, h3));
    tu_assert_error(ctx, EQR_ERR_ARG, "other consumer");

    /* a result of an earlier step */
    eqr_tensor *old = eqr_conv2d(ctx, in[0], in[1], in[2], &g);
    eqr_tensor *seed = eqr_tensor_from(ctx, old->ndim, old->shape, NULL);
    assert_int_equal(eqr_backward_from(ctx, old, seed), EQR_OK);
    assert_null(eqr_relu_inplace(ctx, old));
    tu_assert_error(ctx, EQR_ERR_ARG, "this step");

    assert_null(eqr_relu_inplace(ctx, NULL));
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_same_grads_as_relu),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_through_view),
        cmocka_unit_test(test_backward_from_output),
        cmocka_unit_test(test_relaxed_conv),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
