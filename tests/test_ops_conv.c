/* Ops: conv2d forward against a naive double reference over many geometries,
 * analytic backward against double reference gradients and finite
 * differences, one vs two threads (equal values, deterministic gradients),
 * no arena growth in steady state, and argument errors. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct conv_case {
    int N, C, H, W, O, kh, kw;
    eqr_conv2d_geom g;
    int bias;
    int null_geom; /* pass geom = NULL (g must then be the default) */
} conv_case;

static const conv_case CASES[] = {
    {2, 3, 7, 6, 4, 3, 3, {1, 1, 0, 0, 1, 1}, 1, 1},    /* defaults via NULL geom */
    {2, 3, 9, 7, 5, 3, 3, {2, 2, 1, 1, 1, 1}, 0, 0},    /* stride 2, pad 1, odd sizes */
    {2, 2, 9, 8, 3, 3, 3, {1, 1, 2, 2, 2, 2}, 1, 0},    /* dilation 2 */
    {3, 2, 8, 9, 4, 2, 5, {2, 1, 1, 2, 1, 2}, 1, 0},    /* non-square kernel, mixed axes */
    {2, 4, 5, 6, 3, 1, 1, {0, 0, 0, 0, 0, 0}, 1, 0},    /* 1x1 direct path, zeros mean 1 */
    {2, 4, 7, 7, 3, 1, 1, {2, 2, 0, 0, 1, 1}, 0, 0},    /* 1x1 strided */
    {2, 2, 4, 5, 3, 6, 7, {1, 1, 1, 1, 1, 1}, 1, 0},    /* kernel = padded input: 1x1 out */
    {2, 2, 10, 11, 3, 2, 2, {3, 3, 0, 0, 1, 1}, 1, 0},  /* stride > kernel: skipped pixels */
    {2, 2, 1, 5, 3, 3, 3, {3, 1, 2, 1, 1, 1}, 0, 0},    /* taps that only ever see padding */
    {2, 3, 6, 6, 2, 3, 3, {1, 2, 3, 0, 1, 2}, 1, 0},    /* pad as large as the kernel */
    {3, 1, 28, 28, 16, 5, 5, {1, 1, 2, 2, 1, 1}, 1, 0}, /* first layer of a CNN */
};
#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

typedef struct geo {
    int sh, sw, ph, pw, dh, dw, OH, OW;
} geo;

static geo geometry(const conv_case *c) {
    geo g;
    g.sh = c->g.stride_h ? c->g.stride_h : 1;
    g.sw = c->g.stride_w ? c->g.stride_w : 1;
    g.ph = c->g.pad_h;
    g.pw = c->g.pad_w;
    g.dh = c->g.dil_h ? c->g.dil_h : 1;
    g.dw = c->g.dil_w ? c->g.dil_w : 1;
    g.OH = (c->H + 2 * g.ph - g.dh * (c->kh - 1) - 1) / g.sh + 1;
    g.OW = (c->W + 2 * g.pw - g.dw * (c->kw - 1) - 1) / g.sw + 1;
    return g;
}

/* y and its magnitudes my = |b| + sum |x w| (for the float32 error bound). */
static void ref_forward(const conv_case *c, const float *x, const float *w, const float *b,
                        double *y, double *my) {
    geo g = geometry(c);
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->O; o++)
            for (int oh = 0; oh < g.OH; oh++)
                for (int ow = 0; ow < g.OW; ow++) {
                    double s = b ? b[o] : 0.0, m = fabs(s);
                    for (int ch = 0; ch < c->C; ch++)
                        for (int i = 0; i < c->kh; i++)
                            for (int j = 0; j < c->kw; j++) {
                                int ih = oh * g.sh - g.ph + i * g.dh;
                                int iw = ow * g.sw - g.pw + j * g.dw;
                                if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W) continue;
                                double p = (double)x[((n * c->C + ch) * c->H + ih) * c->W + iw] *
                                           w[((o * c->C + ch) * c->kh + i) * c->kw + j];
                                s += p;
                                m += fabs(p);
                            }
                    y[((n * c->O + o) * g.OH + oh) * g.OW + ow] = s;
                    my[((n * c->O + o) * g.OH + oh) * g.OW + ow] = m;
                }
}

/* Gradients of sum(y * r), and in m (dx, dw, db parts, same layout) their
 * magnitudes sum |terms| for the float32 error bounds. */
typedef struct ref_mag {
    double *dx, *dw, db[64];
} ref_mag;

static void ref_backward(const conv_case *c, const float *x, const float *w, const float *r,
                         double *dx, double *dw, double *db, ref_mag *m) {
    geo g = geometry(c);
    memset(dx, 0, sizeof(double) * (size_t)(c->N * c->C * c->H * c->W));
    memset(dw, 0, sizeof(double) * (size_t)(c->O * c->C * c->kh * c->kw));
    memset(db, 0, sizeof(double) * (size_t)c->O);
    memset(m->dx, 0, sizeof(double) * (size_t)(c->N * c->C * c->H * c->W));
    memset(m->dw, 0, sizeof(double) * (size_t)(c->O * c->C * c->kh * c->kw));
    memset(m->db, 0, sizeof m->db);
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->O; o++)
            for (int oh = 0; oh < g.OH; oh++)
                for (int ow = 0; ow < g.OW; ow++) {
                    double gy = r[((n * c->O + o) * g.OH + oh) * g.OW + ow];
                    db[o] += gy;
                    m->db[o] += fabs(gy);
                    for (int ch = 0; ch < c->C; ch++)
                        for (int i = 0; i < c->kh; i++)
                            for (int j = 0; j < c->kw; j++) {
                                int ih = oh * g.sh - g.ph + i * g.dh;
                                int iw = ow * g.sw - g.pw + j * g.dw;
                                if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W) continue;
                                int xi = ((n * c->C + ch) * c->H + ih) * c->W + iw;
                                int wi = ((o * c->C + ch) * c->kh + i) * c->kw + j;
                                dw[wi] += gy * x[xi];
                                dx[xi] += gy * w[wi];
                                m->dw[wi] += fabs(gy * x[xi]);
                                m->dx[xi] += fabs(gy * w[wi]);
                            }
                }
}

static eqr_ctx *mkctx(int threads) {
    eqr_ctx_opts o = {0};
    o.seed = 7;
    o.threads = threads;
    o.arena_bytes = 1 << 20;
    eqr_ctx *ctx = eqr_ctx_create(&o);
    assert_non_null(ctx);
    return ctx;
}

/* Parameters x, w, (b) of case c filled from fixed seeds. */
typedef struct conv_io {
    eqr_tensor *x, *w, *b;
} conv_io;

static conv_io make_params(eqr_ctx *ctx, const conv_case *c, unsigned wflags) {
    conv_io io = {0};
    int64_t xs[4] = {c->N, c->C, c->H, c->W}, ws[4] = {c->O, c->C, c->kh, c->kw}, bs[1] = {c->O};
    io.x = eqr_param_create(ctx, "x", 4, xs, 0);
    io.w = eqr_param_create(ctx, "w", 4, ws, wflags);
    assert_non_null(io.x);
    assert_non_null(io.w);
    tu_fill_uniform(io.x->data, io.x->numel, 101);
    tu_fill_uniform(io.w->data, io.w->numel, 202);
    if (c->bias) {
        io.b = eqr_param_create(ctx, "b", 1, bs, 0);
        assert_non_null(io.b);
        tu_fill_uniform(io.b->data, io.b->numel, 303);
    }
    return io;
}

static eqr_tensor *run_conv(eqr_ctx *ctx, const conv_case *c, const conv_io *io) {
    return eqr_conv2d(ctx, io->x, io->w, io->b, c->null_geom ? NULL : &c->g);
}

static void check_output_shape(const conv_case *c, const eqr_tensor *y) {
    geo g = geometry(c);
    assert_int_equal(y->ndim, 4);
    assert_int_equal(y->shape[0], c->N);
    assert_int_equal(y->shape[1], c->O);
    assert_int_equal(y->shape[2], g.OH);
    assert_int_equal(y->shape[3], g.OW);
}

static void test_forward_reference(void **state) {
    (void)state;
    for (int ci = 0; ci < NCASES; ci++) {
        const conv_case *c = &CASES[ci];
        float *y1 = NULL;
        for (int threads = 1; threads <= 2; threads++) {
            eqr_ctx *ctx = mkctx(threads);
            conv_io io = make_params(ctx, c, 0);
            eqr_tensor *y = run_conv(ctx, c, &io);
            if (!y) fail_msg("case %d: %s", ci, eqr_error_message(ctx));
            check_output_shape(c, y);
            double *ref = malloc(sizeof(double) * (size_t)y->numel);
            double *mag = malloc(sizeof(double) * (size_t)y->numel);
            assert_non_null(ref);
            assert_non_null(mag);
            ref_forward(c, io.x->data, io.w->data, io.b ? io.b->data : NULL, ref, mag);
            /* a float32 sum of C*kh*kw products (+ the bias) in any order */
            tu_assert_close_bound("conv2d forward", y->data, ref, mag, y->numel,
                                  (int64_t)c->C * c->kh * c->kw + 1, 1);
            /* again on an exact-size malloc'd input, so ASan sees stray reads */
            float *xcopy = malloc(sizeof(float) * (size_t)io.x->numel);
            assert_non_null(xcopy);
            memcpy(xcopy, io.x->data, sizeof(float) * (size_t)io.x->numel);
            eqr_tensor *yw = eqr_conv2d(ctx, eqr_tensor_wrap(ctx, xcopy, 4, io.x->shape), io.w,
                                        io.b, c->null_geom ? NULL : &c->g);
            assert_non_null(yw);
            assert_memory_equal(yw->data, y->data, sizeof(float) * (size_t)y->numel);
            free(xcopy);
            if (threads == 1) {
                y1 = malloc(sizeof(float) * (size_t)y->numel);
                assert_non_null(y1);
                memcpy(y1, y->data, sizeof(float) * (size_t)y->numel);
            } else { /* two threads compute the same values */
                /* each within gamma_n mag of the exact sum, so within twice
                 * that (+ u|y1| for y1's own rounding) of each other */
                for (int64_t i = 0; i < y->numel; i++) ref[i] = y1[i];
                tu_assert_close_bound("conv2d threads=2 vs 1", y->data, ref, mag, y->numel,
                                      (int64_t)c->C * c->kh * c->kw + 1, 2);
            }
            free(ref);
            free(mag);
            eqr_ctx_destroy(ctx);
        }
        free(y1);
    }
}

/* Backward of sum(y * r) with params; grads compared to the double reference.
 * Returns copies of the gradients (dw then db) for determinism checks. */
static float *backward_once(const conv_case *c, int threads, int steps) {
    eqr_ctx *ctx = mkctx(threads);
    conv_io io = make_params(ctx, c, 0);
    geo g = geometry(c);
    int64_t ny = (int64_t)c->N * c->O * g.OH * g.OW;
    float *r = malloc(sizeof(float) * (size_t)ny);
    assert_non_null(r);
    tu_fill_uniform(r, ny, 404);
    eqr_grad_zero(ctx);
    size_t reserved = 0;
    for (int s = 0; s < steps; s++) { /* parameter grads accumulate across steps */
        eqr_tensor *y = run_conv(ctx, c, &io);
        assert_non_null(y);
        eqr_tensor *seed = eqr_tensor_from(ctx, 4, y->shape, r);
        assert_non_null(seed);
        assert_int_equal(eqr_backward_from(ctx, y, seed), EQR_OK);
        eqr_step_reset(ctx);
        if (s == 1) reserved = eqr_arena_reserved(ctx);
        if (s > 1) assert_int_equal(eqr_arena_reserved(ctx), reserved); /* no growth */
    }
    int64_t nx = io.x->numel, nw = io.w->numel;
    double *dx = malloc(sizeof(double) * (size_t)nx), *dw = malloc(sizeof(double) * (size_t)nw);
    double db[64];
    ref_mag m = {malloc(sizeof(double) * (size_t)nx), malloc(sizeof(double) * (size_t)nw), {0}};
    assert_non_null(dx);
    assert_non_null(dw);
    assert_non_null(m.dx);
    assert_non_null(m.dw);
    ref_backward(c, io.x->data, io.w->data, r, dx, dw, db, &m);
    for (int64_t i = 0; i < nx; i++) dx[i] *= steps, m.dx[i] *= steps;
    for (int64_t i = 0; i < nw; i++) dw[i] *= steps, m.dw[i] *= steps;
    for (int o = 0; o < c->O; o++) db[o] *= steps, m.db[o] *= steps;
    /* steps accumulated float32 sums: dx of at most O*kh*kw products each,
     * dw and db of N*OH*OW; steps times as many terms in all */
    const int64_t nkx = (int64_t)steps * c->O * c->kh * c->kw, nkw = (int64_t)steps * c->N * g.OH * g.OW;
    tu_assert_close_bound("conv2d dx", io.x->grad, dx, m.dx, nx, nkx, 1);
    tu_assert_close_bound("conv2d dw", io.w->grad, dw, m.dw, nw, nkw, 1);
    if (io.b) tu_assert_close_bound("conv2d db", io.b->grad, db, m.db, c->O, nkw, 1);
    free(m.dx);
    free(m.dw);
    float *copy = malloc(sizeof(float) * (size_t)(nx + nw + c->O));
    assert_non_null(copy);
    memcpy(copy, io.x->grad, sizeof(float) * (size_t)nx);
    memcpy(copy + nx, io.w->grad, sizeof(float) * (size_t)nw);
    if (io.b)
        memcpy(copy + nx + nw, io.b->grad, sizeof(float) * (size_t)c->O);
    else
        memset(copy + nx + nw, 0, sizeof(float) * (size_t)c->O);
    free(dx);
    free(dw);
    free(r);
    eqr_ctx_destroy(ctx);
    return copy;
}

static void test_backward_reference(void **state) {
    (void)state;
    for (int ci = 0; ci < NCASES; ci++) {
        const conv_case *c = &CASES[ci];
        float *g1 = backward_once(c, 1, 1);
        float *g2a = backward_once(c, 2, 1);
        float *g2b = backward_once(c, 2, 1);
        int64_t n = (int64_t)c->N * c->C * c->H * c->W + (int64_t)c->O * c->C * c->kh * c->kw + c->O;
        /* deterministic for a given thread count */
        assert_memory_equal(g2a, g2b, sizeof(float) * (size_t)n);
        free(g1);
        free(g2a);
        free(g2b);
    }
    /* gradients accumulate over steps, and the arena stops growing */
    free(backward_once(&CASES[3], 2, 3));
    free(backward_once(&CASES[1], 1, 3));
}

/* Only the inputs that need a gradient get one. */
static void test_partial_grads(void **state) {
    (void)state;
    const conv_case *c = &CASES[1];
    geo g = geometry(c);
    int64_t ny = (int64_t)c->N * c->O * g.OH * g.OW;
    float *r = malloc(sizeof(float) * (size_t)ny);
    assert_non_null(r);
    tu_fill_uniform(r, ny, 404);
    double *dx = malloc(sizeof(double) * (size_t)(c->N * c->C * c->H * c->W));
    double *dw = malloc(sizeof(double) * (size_t)(c->O * c->C * c->kh * c->kw));
    double db[64];
    ref_mag m = {malloc(sizeof(double) * (size_t)(c->N * c->C * c->H * c->W)),
                 malloc(sizeof(double) * (size_t)(c->O * c->C * c->kh * c->kw)), {0}};
    assert_non_null(dx);
    assert_non_null(dw);
    assert_non_null(m.dx);
    assert_non_null(m.dw);
    const int64_t nkx = (int64_t)c->O * c->kh * c->kw, nkw = (int64_t)c->N * g.OH * g.OW;
    for (int threads = 1; threads <= 2; threads++) {
        /* x a plain tensor: only dW */
        eqr_ctx *ctx = mkctx(threads);
        conv_io io = make_params(ctx, c, 0);
        eqr_tensor *xp = eqr_tensor_from(ctx, 4, io.x->shape, io.x->data);
        eqr_tensor *y = eqr_conv2d(ctx, xp, io.w, NULL, &c->g);
        assert_non_null(y);
        eqr_tensor *seed = eqr_tensor_from(ctx, 4, y->shape, r);
        assert_int_equal(eqr_backward_from(ctx, y, seed), EQR_OK);
        assert_null(xp->grad);
        ref_backward(c, io.x->data, io.w->data, r, dx, dw, db, &m);
        tu_assert_close_bound("dw only", io.w->grad, dw, m.dw, io.w->numel, nkw, 1);
        eqr_ctx_destroy(ctx);

        /* w frozen: only dX */
        ctx = mkctx(threads);
        io = make_params(ctx, c, EQR_PARAM_FROZEN);
        y = eqr_conv2d(ctx, io.x, io.w, NULL, &c->g);
        assert_non_null(y);
        seed = eqr_tensor_from(ctx, 4, y->shape, r);
        assert_int_equal(eqr_backward_from(ctx, y, seed), EQR_OK);
        assert_null(io.w->grad);
        tu_assert_close_bound("dx only", io.x->grad, dx, m.dx, io.x->numel, nkx, 1);
        eqr_ctx_destroy(ctx);
    }
    free(m.dx);
    free(m.dw);
    free(dx);
    free(dw);
    free(r);
}

typedef struct gc_user {
    eqr_conv2d_geom g;
} gc_user;

static eqr_tensor *gc_conv(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    gc_user *u = user;
    return eqr_conv2d(ctx, in[0], in[1], in[2], &u->g);
}

static void gradcheck_case(int threads, int N, int C, int H, int W, int O, int kh, int kw,
                           eqr_conv2d_geom g) {
    eqr_ctx *ctx = mkctx(threads);
    int64_t xs[4] = {N, C, H, W}, ws[4] = {O, C, kh, kw}, bs[1] = {O};
    eqr_tensor *in[3] = {tu_input(ctx, "x", 4, xs, 1.0f), tu_input(ctx, "w", 4, ws, 1.0f),
                         tu_input(ctx, "b", 1, bs, 1.0f)};
    gc_user u = {g};
    tu_gradcheck(ctx, gc_conv, in, 3, &u, 1e-2, C * kh * kw + 1 /* one sum per output, + bias */);
    eqr_ctx_destroy(ctx);
}

static void test_gradcheck(void **state) {
    (void)state;
    gradcheck_case(1, 2, 2, 5, 5, 3, 3, 3, EQR_CONV2D(1, 0, 1));
    gradcheck_case(1, 2, 2, 6, 5, 3, 3, 3, EQR_CONV2D(2, 1, 1));
    gradcheck_case(1, 1, 2, 7, 7, 2, 3, 3, EQR_CONV2D(1, 1, 2));
    gradcheck_case(1, 2, 2, 5, 6, 2, 2, 3, ((eqr_conv2d_geom){1, 2, 1, 0, 2, 1}));
    gradcheck_case(1, 2, 3, 4, 4, 2, 1, 1, EQR_CONV2D(1, 0, 1)); /* direct 1x1 */
    gradcheck_case(2, 3, 2, 5, 5, 2, 3, 3, EQR_CONV2D(1, 1, 1)); /* chunks of 1 and 2 images */
    gradcheck_case(2, 3, 2, 4, 4, 2, 1, 1, EQR_CONV2D(1, 0, 1)); /* direct 1x1, threaded */
}

static void test_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = mkctx(1);
    int64_t xs[4] = {2, 3, 5, 5}, ws[4] = {4, 3, 3, 3}, wbad[4] = {4, 2, 3, 3};
    int64_t x3[3] = {3, 5, 5}, bs[1] = {4}, bbad[1] = {3}, b2[2] = {4, 1};
    int64_t wbig[4] = {4, 3, 6, 3};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, xs), *w = eqr_tensor_zeros(ctx, 4, ws);
    eqr_tensor *b = eqr_tensor_zeros(ctx, 1, bs);
    assert_non_null(eqr_conv2d(ctx, x, w, b, NULL));

    assert_null(eqr_conv2d(ctx, eqr_tensor_zeros(ctx, 3, x3), w, b, NULL));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "[N,C,H,W]");
    assert_null(eqr_conv2d(ctx, x, eqr_tensor_zeros(ctx, 4, wbad), NULL, NULL));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "channels");
    assert_null(eqr_conv2d(ctx, x, eqr_tensor_zeros(ctx, 4, wbig), NULL, NULL));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "larger than the padded input");
    /* the same kernel fits once padded, and dilation can make it too large again */
    assert_non_null(eqr_conv2d(ctx, x, eqr_tensor_zeros(ctx, 4, wbig), NULL,
                               &(eqr_conv2d_geom){1, 1, 1, 0, 1, 1}));
    assert_null(eqr_conv2d(ctx, x, w, NULL, &(eqr_conv2d_geom){1, 1, 0, 0, 3, 1}));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "dilation");
    assert_null(eqr_conv2d(ctx, x, w, eqr_tensor_zeros(ctx, 1, bbad), NULL));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "bias");
    assert_null(eqr_conv2d(ctx, x, w, eqr_tensor_zeros(ctx, 2, b2), NULL));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "bias");
    assert_null(eqr_conv2d(ctx, x, w, b, &(eqr_conv2d_geom){-1, 1, 0, 0, 1, 1}));
    tu_assert_error(ctx, EQR_ERR_ARG, "stride");
    assert_null(eqr_conv2d(ctx, x, w, b, &(eqr_conv2d_geom){1, 1, 0, -1, 1, 1}));
    tu_assert_error(ctx, EQR_ERR_ARG, "padding");
    assert_null(eqr_conv2d(ctx, x, w, b, &(eqr_conv2d_geom){1, 1, 0, 0, 1, -2}));
    tu_assert_error(ctx, EQR_ERR_ARG, "dilation");

    /* a caller's NULL input: EQR_ERR_ARG naming the argument */
    assert_null(eqr_conv2d(ctx, NULL, w, b, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_null(eqr_conv2d(ctx, x, NULL, b, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    /* a context in error does nothing and keeps the first message */
    assert_null(eqr_conv2d(ctx, x, eqr_tensor_zeros(ctx, 4, wbad), NULL, NULL));
    assert_null(eqr_conv2d(ctx, x, w, b, NULL));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "channels");
    eqr_ctx_destroy(ctx);
}

/* An empty batch gives an empty output and a backward that does nothing. */
static void test_empty_batch(void **state) {
    (void)state;
    eqr_ctx *ctx = mkctx(2);
    int64_t xs[4] = {0, 2, 5, 5}, ws[4] = {3, 2, 3, 3};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, xs);
    eqr_tensor *w = tu_input(ctx, "w", 4, ws, 1.0f);
    eqr_tensor *y = eqr_conv2d(ctx, x, w, NULL, &EQR_CONV2D(1, 1, 1));
    assert_non_null(y);
    assert_int_equal(y->numel, 0);
    assert_int_equal(y->shape[2], 5);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_reference), cmocka_unit_test(test_backward_reference),
        cmocka_unit_test(test_partial_grads),     cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_errors),            cmocka_unit_test(test_empty_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
