/* Ops: the fast paths added for the training benchmark, each against a
 * naive double-precision reference:
 *   relu / leaky relu on tensors large enough to be split over threads
 *     (values and gradients; one and two threads give identical bits);
 *   max-pool 2x2 stride 2 (its own loop) on even and odd sizes with many
 *     ties (first maximal cell wins, in values and in gradient routing),
 *     and every pooling kind split over two threads (same bits as one);
 *   conv2d with horizontal stride 1 (zero-bordered image copy + row copies
 *     of every length class: >= 8 floats not a multiple of 8, 4..7, < 4),
 *     with a vertical stride 2 and dilation, forward and the backward of x,
 *     w and the bias (bias gradient by sgemv), one and two threads; and
 *     convs whose col is built in several tiles of output rows, by both
 *     im2col paths. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static eqr_ctx *mkctx(int threads) {
    eqr_ctx_opts o = {0};
    o.seed = 11;
    o.threads = threads;
    o.arena_bytes = 1 << 20;
    eqr_ctx *ctx = eqr_ctx_create(&o);
    assert_non_null(ctx);
    return ctx;
}

/* A parameter of the given shape filled from data. */
static eqr_tensor *param_from(eqr_ctx *ctx, const char *name, int ndim, const int64_t *shape,
                              const float *data) {
    eqr_tensor *t = eqr_param_create(ctx, name, ndim, shape, 0);
    assert_non_null(t);
    memcpy(t->data, data, (size_t)t->numel * sizeof(float));
    return t;
}

/* ---- relu / leaky relu over threads ---- */

#define ACT_N (3 * 50000) /* above two threads' minimum share */

static void run_act(int threads, float slope, const float *xv, const float *rv, float *y_out,
                    float *g_out) {
    eqr_ctx *ctx = mkctx(threads);
    int64_t s[2] = {3, 50000};
    eqr_tensor *x = param_from(ctx, "x", 2, s, xv);
    eqr_tensor *y = slope == 0.0f ? eqr_relu(ctx, x) : eqr_leaky_relu(ctx, x, slope);
    assert_non_null(y);
    memcpy(y_out, y->data, ACT_N * sizeof(float));
    eqr_tensor *seed = eqr_tensor_from(ctx, 2, s, rv);
    assert_int_equal(eqr_backward_from(ctx, y, seed), EQR_OK);
    memcpy(g_out, x->grad, ACT_N * sizeof(float));
    eqr_ctx_destroy(ctx);
}

static void test_relu_threads(void **state) {
    (void)state;
    float *xv = malloc(ACT_N * sizeof(float)), *rv = malloc(ACT_N * sizeof(float));
    float *y[2], *g[2];
    double *ry = malloc(ACT_N * sizeof(double)), *rg = malloc(ACT_N * sizeof(double));
    for (int k = 0; k < 2; k++) {
        y[k] = malloc(ACT_N * sizeof(float));
        g[k] = malloc(ACT_N * sizeof(float));
    }
    tu_fill_uniform(xv, ACT_N, 3);
    tu_fill_uniform(rv, ACT_N, 4);
    xv[0] = 0.0f; /* the kink itself: relu'(0) = slope */
    const float slopes[2] = {0.0f, 0.1f};
    for (int si = 0; si < 2; si++) {
        const double s = slopes[si];
        for (int i = 0; i < ACT_N; i++) {
            ry[i] = xv[i] > 0 ? xv[i] : s * xv[i];
            rg[i] = xv[i] > 0 ? rv[i] : s * rv[i];
        }
        for (int t = 1; t <= 2; t++) {
            run_act(t, slopes[si], xv, rv, y[t - 1], g[t - 1]);
            /* one float32 product (slope * x) each: at most one rounding, u |ref| */
            tu_assert_close("leaky forward", y[t - 1], ry, ACT_N, 0.0, TU_U);
            tu_assert_close("leaky backward", g[t - 1], rg, ACT_N, 0.0, TU_U);
        }
        assert_memory_equal(y[0], y[1], ACT_N * sizeof(float));
        assert_memory_equal(g[0], g[1], ACT_N * sizeof(float));
    }
    for (int k = 0; k < 2; k++) {
        free(y[k]);
        free(g[k]);
    }
    free(xv), free(rv), free(ry), free(rg);
}

/* ---- max-pool 2x2 stride 2 ---- */

static void check_maxpool2(int threads, int N, int C, int H, int W) {
    eqr_ctx *ctx = mkctx(threads);
    int64_t s[4] = {N, C, H, W};
    const int64_t n = (int64_t)N * C * H * W;
    float *xv = malloc((size_t)n * sizeof(float));
    tu_fill_uniform(xv, n, 5);
    for (int64_t i = 0; i < n; i++) xv[i] = roundf(xv[i] * 1.4f); /* -1, 0, 1: many ties */
    eqr_tensor *x = param_from(ctx, "x", 4, s, xv);
    eqr_tensor *y = eqr_maxpool2d(ctx, x, 2, 2, 0);
    assert_non_null(y);
    const int OH = (H - 2) / 2 + 1, OW = (W - 2) / 2 + 1;
    assert_int_equal(y->shape[2], OH);
    assert_int_equal(y->shape[3], OW);
    const int64_t no = (int64_t)N * C * OH * OW;
    double *ry = malloc((size_t)no * sizeof(double)), *rg = calloc((size_t)n, sizeof(double));
    float *rv = malloc((size_t)no * sizeof(float));
    tu_fill_uniform(rv, no, 6);
    for (int64_t pl = 0; pl < (int64_t)N * C; pl++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                int64_t best = -1;
                for (int i = 0; i < 2; i++) /* row-major scan, first maximum wins */
                    for (int j = 0; j < 2; j++) {
                        int64_t q = pl * H * W + (int64_t)(2 * oh + i) * W + 2 * ow + j;
                        if (best < 0 || xv[q] > xv[best]) best = q;
                    }
                int64_t o = (pl * OH + oh) * OW + ow;
                ry[o] = xv[best];
                rg[best] += rv[o];
            }
    tu_assert_close("maxpool2 forward", y->data, ry, no, 0.0, 0.0);
    int64_t so[4] = {N, C, OH, OW};
    assert_int_equal(eqr_backward_from(ctx, y, eqr_tensor_from(ctx, 4, so, rv)), EQR_OK);
    tu_assert_close("maxpool2 backward", x->grad, rg, n, 0.0, 0.0);
    free(xv), free(ry), free(rg), free(rv);
    eqr_ctx_destroy(ctx);
}

/* Pooling of a tensor large enough to be split over two threads gives the
 * bits of one thread, values and gradients, for every kind of window. */
static void pool_run(int threads, int is_max, int k, int st, int pad, const float *xv,
                     float **y, float **g, int64_t *ny) {
    eqr_ctx *ctx = mkctx(threads);
    int64_t s[4] = {4, 16, 64, 64};
    eqr_tensor *x = param_from(ctx, "x", 4, s, xv);
    eqr_tensor *out = is_max ? eqr_maxpool2d(ctx, x, k, st, pad) : eqr_avgpool2d(ctx, x, k, st, pad);
    assert_non_null(out);
    *ny = out->numel;
    *y = malloc((size_t)out->numel * sizeof(float));
    *g = malloc((size_t)x->numel * sizeof(float));
    memcpy(*y, out->data, (size_t)out->numel * sizeof(float));
    float *rv = malloc((size_t)out->numel * sizeof(float));
    tu_fill_uniform(rv, out->numel, 12);
    assert_int_equal(eqr_backward_from(ctx, out, eqr_tensor_from(ctx, 4, out->shape, rv)), EQR_OK);
    memcpy(*g, x->grad, (size_t)x->numel * sizeof(float));
    free(rv);
    eqr_ctx_destroy(ctx);
}

static void test_pool_threads(void **state) {
    (void)state;
    const int64_t n = 4 * 16 * 64 * 64;
    float *xv = malloc((size_t)n * sizeof(float));
    tu_fill_uniform(xv, n, 13);
    static const int kinds[4][4] = {{1, 2, 2, 0}, {1, 3, 2, 1}, {0, 2, 2, 0}, {0, 3, 1, 1}};
    for (int i = 0; i < 4; i++) {
        float *y[2], *g[2];
        int64_t ny[2];
        for (int t = 0; t < 2; t++)
            pool_run(t + 1, kinds[i][0], kinds[i][1], kinds[i][2], kinds[i][3], xv, &y[t], &g[t], &ny[t]);
        assert_int_equal(ny[0], ny[1]);
        assert_memory_equal(y[0], y[1], (size_t)ny[0] * sizeof(float));
        assert_memory_equal(g[0], g[1], (size_t)n * sizeof(float));
        for (int t = 0; t < 2; t++) {
            free(y[t]);
            free(g[t]);
        }
    }
    free(xv);
}

static void test_maxpool2(void **state) {
    (void)state;
    for (int t = 1; t <= 2; t++) {
        check_maxpool2(t, 2, 3, 8, 10);
        check_maxpool2(t, 2, 3, 7, 9); /* odd: the last row and column are never read */
        check_maxpool2(t, 4, 16, 64, 66); /* large enough for two threads */
    }
}

/* ---- conv2d, horizontal stride 1 ---- */

typedef struct cv {
    int N, C, H, W, O, k, sh, ph, pw, dil, sw;
} cv;

static void check_conv(const cv *c, int threads) {
    eqr_ctx *ctx = mkctx(threads);
    const int OH = (c->H + 2 * c->ph - c->dil * (c->k - 1) - 1) / c->sh + 1;
    const int sw = c->sw ? c->sw : 1;
    const int OW = (c->W + 2 * c->pw - c->dil * (c->k - 1) - 1) / sw + 1;
    int64_t xs[4] = {c->N, c->C, c->H, c->W}, ws[4] = {c->O, c->C, c->k, c->k}, bs[1] = {c->O};
    const int64_t nx = (int64_t)c->N * c->C * c->H * c->W, nw = (int64_t)c->O * c->C * c->k * c->k;
    const int64_t ny = (int64_t)c->N * c->O * OH * OW;
    float *xv = malloc((size_t)nx * sizeof(float)), *wv = malloc((size_t)nw * sizeof(float));
    float bv[16], *rv = malloc((size_t)ny * sizeof(float));
    tu_fill_uniform(xv, nx, 7);
    tu_fill_uniform(wv, nw, 8);
    tu_fill_uniform(bv, c->O, 9);
    tu_fill_uniform(rv, ny, 10);
    eqr_tensor *x = param_from(ctx, "x", 4, xs, xv), *w = param_from(ctx, "w", 4, ws, wv);
    eqr_tensor *b = param_from(ctx, "b", 1, bs, bv);
    eqr_conv2d_geom g = {c->sh, sw, c->ph, c->pw, c->dil, c->dil};
    eqr_tensor *y = eqr_conv2d(ctx, x, w, b, &g);
    assert_non_null(y);
    assert_int_equal(y->shape[2], OH);
    assert_int_equal(y->shape[3], OW);
    double *ry = calloc((size_t)ny, sizeof(double)), *gx = calloc((size_t)nx, sizeof(double));
    double *gw = calloc((size_t)nw, sizeof(double)), gb[16] = {0};
    /* magnitudes sum |a_k b_k| of every sum, for the float32 error bounds */
    double *my = calloc((size_t)ny, sizeof(double)), *mx = calloc((size_t)nx, sizeof(double));
    double *mw = calloc((size_t)nw, sizeof(double)), mb[16] = {0};
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->O; o++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    const int64_t yi = (((int64_t)n * c->O + o) * OH + oh) * OW + ow;
                    double s = bv[o], m = fabs(bv[o]);
                    gb[o] += rv[yi];
                    mb[o] += fabs(rv[yi]);
                    for (int ci = 0; ci < c->C; ci++)
                        for (int i = 0; i < c->k; i++)
                            for (int j = 0; j < c->k; j++) {
                                int ih = oh * c->sh + i * c->dil - c->ph, iw = ow * sw + j * c->dil - c->pw;
                                if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W) continue;
                                int64_t xi = (((int64_t)n * c->C + ci) * c->H + ih) * c->W + iw;
                                int64_t wi = (((int64_t)o * c->C + ci) * c->k + i) * c->k + j;
                                s += (double)wv[wi] * xv[xi];
                                m += fabs((double)wv[wi] * xv[xi]);
                                gx[xi] += (double)wv[wi] * rv[yi];
                                mx[xi] += fabs((double)wv[wi] * rv[yi]);
                                gw[wi] += (double)xv[xi] * rv[yi];
                                mw[wi] += fabs((double)xv[xi] * rv[yi]);
                            }
                    ry[yi] = s;
                    my[yi] = m;
                }
    /* float32 sums in any order: y of C*k*k products + the bias, dx of at
     * most O*k*k products, dw and db of N*OH*OW terms (testutil.h) */
    tu_assert_close_bound("conv forward", y->data, ry, my, ny, (int64_t)c->C * c->k * c->k + 1, 1);
    int64_t ys[4] = {c->N, c->O, OH, OW};
    assert_int_equal(eqr_backward_from(ctx, y, eqr_tensor_from(ctx, 4, ys, rv)), EQR_OK);
    tu_assert_close_bound("conv dx", x->grad, gx, mx, nx, (int64_t)c->O * c->k * c->k, 1);
    tu_assert_close_bound("conv dw", w->grad, gw, mw, nw, (int64_t)c->N * OH * OW, 1);
    tu_assert_close_bound("conv db", b->grad, gb, mb, c->O, (int64_t)c->N * OH * OW, 1);
    free(xv), free(wv), free(rv), free(ry), free(gx), free(gw), free(my), free(mx), free(mw);
    eqr_ctx_destroy(ctx);
}

static void test_conv_rows(void **state) {
    (void)state;
    static const cv cases[] = {
        {3, 5, 13, 13, 4, 3, 1, 1, 1, 1, 1}, /* rows of 13: two chunks of 8, overlapping */
        {2, 3, 9, 6, 5, 5, 1, 2, 2, 1, 1},   /* rows of 6 (4..7 path) */
        {2, 2, 8, 7, 3, 3, 2, 1, 0, 2, 1},   /* vertical stride 2, dilation 2, rows of 3 */
        {4, 3, 12, 20, 6, 3, 1, 0, 2, 1, 1}, /* pad on one axis only, rows of 20 */
        /* the model's 5x5 64-channel layer: row-shift path (stride 1), rc
         * of 320 x 32*28 floats in one tile */
        {2, 64, 28, 28, 3, 5, 1, 2, 2, 1, 1},
        /* the same with horizontal stride 2 (general im2col): 2 tiles */
        {2, 64, 28, 28, 3, 5, 1, 2, 2, 1, 2},
        /* row-shift path in 4 tiles of 16 rows (rc rows of 64*5*64 floats),
         * each reading a 4-row halo below it */
        {1, 64, 64, 64, 2, 5, 1, 2, 2, 1, 1},
        /* row-shift path with dilation 2 (taps 2 rows apart, 8-row halo):
         * 3 tiles of 16 rows */
        {1, 64, 48, 64, 2, 5, 1, 4, 4, 2, 1},
        /* row-shift path with a single input channel (K = kw = 3) */
        {3, 1, 10, 9, 4, 3, 1, 1, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int t = 1; t <= 2; t++) check_conv(&cases[i], t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relu_threads),
        cmocka_unit_test(test_maxpool2),
        cmocka_unit_test(test_pool_threads),
        cmocka_unit_test(test_conv_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
