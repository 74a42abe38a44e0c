/* Pooling: max and average over k x k windows of the last two axes, and
 * global average pooling. Every leading axis ([N,C] or [N,C,G]) indexes an
 * independent plane, so planes are spread over the context's threads. */
#include "internal.h"

#include <float.h>
#include <limits.h>

typedef struct pool_dims {
    int64_t planes;
    int H, W, OH, OW, k, s, p;
} pool_dims;

/* Validate x and the window; fill d. 0 (error recorded) if invalid. */
static int pool_check(eqr_ctx *ctx, const char *op, const eqr_tensor *x, int k, int stride,
                      int pad, pool_dims *d) {
    char sx[EQR_SHAPE_BUF];
    if (k < 1 || stride < 1 || pad < 0 || pad >= k) {
        eqr__fail(ctx, EQR_ERR_ARG,
                  "%s: need k >= 1, stride >= 1 and 0 <= pad < k, got k %d, stride %d, pad %d",
                  op, k, stride, pad);
        return 0;
    }
    if (x->ndim < 3) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "%s: x %s must be [N,C,H,W] (pooling the last two axes)",
                  op, EQR_SHAPE(x, sx));
        return 0;
    }
    int64_t H = x->shape[x->ndim - 2], W = x->shape[x->ndim - 1];
    if (H < 1 || W < 1) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "%s: x %s has an empty spatial plane", op, EQR_SHAPE(x, sx));
        return 0;
    }
    if (H + 2 * (int64_t)pad < k || W + 2 * (int64_t)pad < k) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "%s: window %dx%d is larger than the padded input %lldx%lld of x %s",
                  op, k, k, (long long)(H + 2 * (int64_t)pad), (long long)(W + 2 * (int64_t)pad),
                  EQR_SHAPE(x, sx));
        return 0;
    }
    if (H * W > INT_MAX) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "%s: plane of x %s exceeds INT_MAX elements", op,
                  EQR_SHAPE(x, sx));
        return 0;
    }
    d->planes = x->numel / (H * W);
    d->H = (int)H;
    d->W = (int)W;
    d->k = k;
    d->s = stride;
    d->p = pad;
    d->OH = (int)((H + 2 * pad - k) / stride + 1);
    d->OW = (int)((W + 2 * pad - k) / stride + 1);
    return 1;
}

static eqr_tensor *pool_output(eqr_ctx *ctx, const eqr_tensor *x, const pool_dims *d) {
    int64_t shape[EQR_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
    shape[x->ndim - 2] = d->OH;
    shape[x->ndim - 1] = d->OW;
    return eqr__tensor_empty(ctx, x->ndim, shape);
}

static int pool_threads(const eqr_ctx *ctx, int64_t planes) {
    int t = eqr_ctx_threads(ctx);
    return planes >= 2 * (int64_t)t ? t : 1;
}

/* Window of output o clipped to the input: [lo, hi). Pad < k keeps it nonempty. */
static inline void window(int o, int s, int p, int k, int size, int *lo, int *hi) {
    int a = o * s - p, b = a + k;
    *lo = a < 0 ? 0 : a;
    *hi = b > size ? size : b;
}

/* ---- max pooling ---- */

static void maxpool_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *x = n->in[0];
    if (!eqr__needs_grad(x)) return;
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    const int32_t *arg = n->saved;
    const float *gy = n->out->grad;
    const int64_t planes = n->i[0], HW = n->i[1], OP = n->i[2];
    const int t = pool_threads(ctx, planes);
#ifdef _OPENMP
#pragma omp parallel for num_threads(t) schedule(static) if (t > 1)
#endif
    for (int64_t pl = 0; pl < planes; pl++) {
        float *g = gx + pl * HW;
        const int32_t *a = arg + pl * OP;
        const float *dy = gy + pl * OP;
        for (int64_t q = 0; q < OP; q++) g[a[q]] += dy[q];
    }
}

eqr_tensor *eqr_maxpool2d(eqr_ctx *ctx, eqr_tensor *x, int k, int stride, int pad) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    pool_dims d;
    if (!pool_check(ctx, "eqr_maxpool2d", x, k, stride, pad, &d)) return NULL;
    eqr_tensor *y = pool_output(ctx, x, &d);
    if (!y) return NULL;
    const int64_t HW = (int64_t)d.H * d.W, OP = (int64_t)d.OH * d.OW;
    int32_t *arg = eqr__arena_alloc(ctx, (size_t)(d.planes * OP) * sizeof(int32_t));
    if (!arg) return NULL;
    const int t = pool_threads(ctx, d.planes);
    const float *xd = x->data;
    float *yd = y->data;
#ifdef _OPENMP
#pragma omp parallel for num_threads(t) schedule(static) if (t > 1)
#endif
    for (int64_t pl = 0; pl < d.planes; pl++) {
        const float *xp = xd + pl * HW;
        float *yp = yd + pl * OP;
        int32_t *ap = arg + pl * OP;
        for (int oh = 0; oh < d.OH; oh++) {
            int h0, h1;
            window(oh, d.s, d.p, d.k, d.H, &h0, &h1);
            for (int ow = 0; ow < d.OW; ow++) {
                int w0, w1;
                window(ow, d.s, d.p, d.k, d.W, &w0, &w1);
                /* first maximal real cell wins; padding is never looked at */
                int best = h0 * d.W + w0;
                float bv = xp[best];
                for (int ih = h0; ih < h1; ih++) {
                    const float *row = xp + (int64_t)ih * d.W;
                    for (int iw = w0; iw < w1; iw++)
                        if (row[iw] > bv) {
                            bv = row[iw];
                            best = ih * d.W + iw;
                        }
                }
                yp[oh * d.OW + ow] = bv;
                ap[oh * d.OW + ow] = best;
            }
        }
    }
    eqr_tensor *in[1] = {x};
    eqr_node *n = eqr__record(ctx, y, maxpool_backward, 1, in);
    if (n) {
        n->saved = arg;
        n->i[0] = d.planes;
        n->i[1] = HW;
        n->i[2] = OP;
    }
    return y;
}

/* ---- average pooling (divisor = real cells in the window) ---- */

static void avgpool_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *x = n->in[0];
    if (!eqr__needs_grad(x)) return;
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    pool_dims d;
    d.planes = n->i[0];
    d.H = (int)n->i[1];
    d.W = (int)n->i[2];
    d.OH = (int)n->i[3];
    d.OW = (int)n->i[4];
    d.k = (int)n->i[5];
    d.s = (int)n->i[6];
    d.p = (int)n->i[7];
    const float *gy = n->out->grad;
    const int64_t HW = (int64_t)d.H * d.W, OP = (int64_t)d.OH * d.OW;
    const int t = pool_threads(ctx, d.planes);
#ifdef _OPENMP
#pragma omp parallel for num_threads(t) schedule(static) if (t > 1)
#endif
    for (int64_t pl = 0; pl < d.planes; pl++) {
        float *g = gx + pl * HW;
        const float *dy = gy + pl * OP;
        for (int oh = 0; oh < d.OH; oh++) {
            int h0, h1;
            window(oh, d.s, d.p, d.k, d.H, &h0, &h1);
            for (int ow = 0; ow < d.OW; ow++) {
                int w0, w1;
                window(ow, d.s, d.p, d.k, d.W, &w0, &w1);
                const float v = dy[oh * d.OW + ow] / (float)((h1 - h0) * (w1 - w0));
                for (int ih = h0; ih < h1; ih++) {
                    float *row = g + (int64_t)ih * d.W;
                    for (int iw = w0; iw < w1; iw++) row[iw] += v;
                }
            }
        }
    }
}

eqr_tensor *eqr_avgpool2d(eqr_ctx *ctx, eqr_tensor *x, int k, int stride, int pad) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    pool_dims d;
    if (!pool_check(ctx, "eqr_avgpool2d", x, k, stride, pad, &d)) return NULL;
    eqr_tensor *y = pool_output(ctx, x, &d);
    if (!y) return NULL;
    const int64_t HW = (int64_t)d.H * d.W, OP = (int64_t)d.OH * d.OW;
    const int t = pool_threads(ctx, d.planes);
    const float *xd = x->data;
    float *yd = y->data;
#ifdef _OPENMP
#pragma omp parallel for num_threads(t) schedule(static) if (t > 1)
#endif
    for (int64_t pl = 0; pl < d.planes; pl++) {
        const float *xp = xd + pl * HW;
        float *yp = yd + pl * OP;
        for (int oh = 0; oh < d.OH; oh++) {
            int h0, h1;
            window(oh, d.s, d.p, d.k, d.H, &h0, &h1);
            for (int ow = 0; ow < d.OW; ow++) {
                int w0, w1;
                window(ow, d.s, d.p, d.k, d.W, &w0, &w1);
                float s = 0.0f;
                for (int ih = h0; ih < h1; ih++) {
                    const float *row = xp + (int64_t)ih * d.W;
                    for (int iw = w0; iw < w1; iw++) s += row[iw];
                }
                yp[oh * d.OW + ow] = s / (float)((h1 - h0) * (w1 - w0));
            }
        }
    }
    eqr_tensor *in[1] = {x};
    eqr_node *n = eqr__record(ctx, y, avgpool_backward, 1, in);
    if (n) {
        n->i[0] = d.planes;
        n->i[1] = d.H;
        n->i[2] = d.W;
        n->i[3] = d.OH;
        n->i[4] = d.OW;
        n->i[5] = d.k;
        n->i[6] = d.s;
        n->i[7] = d.p;
    }
    return y;
}

/* ---- global average pooling ---- */

static void gap_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *x = n->in[0];
    if (!eqr__needs_grad(x)) return;
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    const float *gy = n->out->grad;
    const int64_t planes = n->i[0], S = n->i[1];
    const float inv = 1.0f / (float)S;
    for (int64_t pl = 0; pl < planes; pl++) {
        const float v = gy[pl] * inv;
        float *g = gx + pl * S;
        for (int64_t q = 0; q < S; q++) g[q] += v;
    }
}

eqr_tensor *eqr_global_avgpool(eqr_ctx *ctx, eqr_tensor *x) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    char sx[EQR_SHAPE_BUF];
    if (x->ndim < 2) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_global_avgpool: x %s must be [N,C,...]", EQR_SHAPE(x, sx));
        return NULL;
    }
    int64_t S = 1;
    for (int i = 2; i < x->ndim; i++) S *= x->shape[i];
    if (S == 0) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_global_avgpool: x %s has no elements to average",
                  EQR_SHAPE(x, sx));
        return NULL;
    }
    int64_t shape[2] = {x->shape[0], x->shape[1]};
    eqr_tensor *y = eqr__tensor_empty(ctx, 2, shape);
    if (!y) return NULL;
    const int64_t planes = shape[0] * shape[1];
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x->data + pl * S;
        double s = 0;
        for (int64_t q = 0; q < S; q++) s += xp[q];
        y->data[pl] = (float)(s / (double)S);
    }
    eqr_tensor *in[1] = {x};
    eqr_node *n = eqr__record(ctx, y, gap_backward, 1, in);
    if (n) {
        n->i[0] = planes;
        n->i[1] = S;
    }
    return y;
}
