/* Pooling: max and average over k x k windows of the last two axes, and
 * global average pooling. Every leading axis ([N,C] or [N,C,G]) indexes an
 * independent plane, so planes are spread over the context's threads. */
#include "core/internal.h"
#include "equirelax/ops.h"

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

/* Threads for a pooling call: one unless every thread gets at least two
 * planes and 64 Ki input cells; a parallel region costs more than pooling a
 * small tensor (e.g. one image) takes, and makes the threads of OpenMP and of
 * a multi-threaded BLAS compete for the cores. */
static int pool_threads(const eqr_ctx *ctx, const pool_dims *d) {
    const int64_t t = eqr_ctx_num_threads(ctx), cells = d->planes * d->H * d->W;
    return d->planes >= 2 * t && cells >= t * ((int64_t)1 << 16) ? (int)t : 1;
}

/* One pooling call, kept in the arena as the node's saved data. Window of
 * output cell (oh, ow): rows [hlo[oh], hhi[oh]) x columns [wlo[ow], whi[ow])
 * of the input plane, clipped to it (pad < k keeps it nonempty), computed
 * once per call. arg (max pooling only) holds each output's winning input
 * cell; average pooling divides by the real cells of the window. */
typedef struct pool_job {
    pool_dims d;
    int threads;
    int *hlo, *hhi, *wlo, *whi;
    int32_t *arg;      /* NULL: average pooling */
    const float *x;    /* forward: input, output */
    float *y;
    const float *gy;   /* backward: output gradient, input gradient */
    float *gx;
} pool_job;

static void window_table(int out, int s, int p, int k, int size, int *lo, int *hi) {
    for (int o = 0; o < out; o++) {
        int a = o * s - p, b = a + k;
        lo[o] = a < 0 ? 0 : a;
        hi[o] = b > size ? size : b;
    }
}

/* Planes [pl0, pl1) of task k of n. */
static void plane_range(int64_t planes, int n, int k, int64_t *pl0, int64_t *pl1) {
    *pl0 = planes * k / n;
    *pl1 = planes * (k + 1) / n;
}

/* One plane; is_max is a constant at each call site, so the compiler emits
 * a separate loop nest for max and for average pooling. */
static inline void pool_plane(const pool_job *j, int is_max, const float *xp, float *yp,
                              int32_t *ap) {
    const int OH = j->d.OH, OW = j->d.OW, W = j->d.W;
    const int *hlo = j->hlo, *hhi = j->hhi, *wlo = j->wlo, *whi = j->whi;
    for (int oh = 0; oh < OH; oh++) {
        const int h0 = hlo[oh], h1 = hhi[oh];
        for (int ow = 0; ow < OW; ow++) {
            const int w0 = wlo[ow], w1 = whi[ow], q = oh * OW + ow;
            if (is_max) { /* first maximal real cell wins; padding is never looked at */
                int best = h0 * W + w0;
                float bv = xp[best];
                for (int ih = h0; ih < h1; ih++) {
                    const float *row = xp + (int64_t)ih * W;
                    for (int iw = w0; iw < w1; iw++)
                        if (row[iw] > bv) {
                            bv = row[iw];
                            best = ih * W + iw;
                        }
                }
                yp[q] = bv;
                ap[q] = best;
            } else {
                float s = 0.0f;
                for (int ih = h0; ih < h1; ih++) {
                    const float *row = xp + (int64_t)ih * W;
                    for (int iw = w0; iw < w1; iw++) s += row[iw];
                }
                yp[q] = s / (float)((h1 - h0) * (w1 - w0));
            }
        }
    }
}

/* Max pooling with 2x2 windows, stride 2, no padding (the common case):
 * the window table is not needed and the four cells are compared in the
 * order of pool_plane (row-major, first maximal cell wins), so the results,
 * ties included, are those of the general loop. */
static void maxpool2_plane(const pool_job *j, const float *xp, float *yp, int32_t *ap) {
    const int OH = j->d.OH, OW = j->d.OW, W = j->d.W;
    for (int oh = 0; oh < OH; oh++) {
        const float *r0 = xp + (int64_t)2 * oh * W, *r1 = r0 + W;
        const int base = 2 * oh * W;
        float *yr = yp + (int64_t)oh * OW;
        int32_t *ar = ap + (int64_t)oh * OW;
        for (int ow = 0; ow < OW; ow++) {
            const int c = 2 * ow;
            float bv = r0[c];
            int best = base + c;
            if (r0[c + 1] > bv) bv = r0[c + 1], best = base + c + 1;
            if (r1[c] > bv) bv = r1[c], best = base + W + c;
            if (r1[c + 1] > bv) bv = r1[c + 1], best = base + W + c + 1;
            yr[ow] = bv;
            ar[ow] = best;
        }
    }
}

static void pool_forward_task(const void *job, int k) {
    const pool_job *j = job;
    const int64_t HW = (int64_t)j->d.H * j->d.W, OP = (int64_t)j->d.OH * j->d.OW;
    const int two = j->d.k == 2 && j->d.s == 2 && j->d.p == 0;
    int64_t pl0, pl1;
    plane_range(j->d.planes, j->threads, k, &pl0, &pl1);
    for (int64_t pl = pl0; pl < pl1; pl++) {
        if (j->arg && two)
            maxpool2_plane(j, j->x + pl * HW, j->y + pl * OP, j->arg + pl * OP);
        else if (j->arg)
            pool_plane(j, 1, j->x + pl * HW, j->y + pl * OP, j->arg + pl * OP);
        else
            pool_plane(j, 0, j->x + pl * HW, j->y + pl * OP, NULL);
    }
}

/* Max pooling backward: all of dy goes to the winning cell. */
static void maxpool_backward_task(const void *job, int k) {
    const pool_job *j = job;
    const int64_t HW = (int64_t)j->d.H * j->d.W, OP = (int64_t)j->d.OH * j->d.OW;
    int64_t pl0, pl1;
    plane_range(j->d.planes, j->threads, k, &pl0, &pl1);
    for (int64_t pl = pl0; pl < pl1; pl++) {
        float *g = j->gx + pl * HW;
        const float *dy = j->gy + pl * OP;
        const int32_t *a = j->arg + pl * OP;
        for (int64_t q = 0; q < OP; q++) g[a[q]] += dy[q];
    }
}

/* Average pooling backward: dy / window size to every real cell. */
static void avgpool_backward_task(const void *job, int k) {
    const pool_job *j = job;
    const int64_t HW = (int64_t)j->d.H * j->d.W, OP = (int64_t)j->d.OH * j->d.OW;
    const int OH = j->d.OH, OW = j->d.OW, W = j->d.W;
    int64_t pl0, pl1;
    plane_range(j->d.planes, j->threads, k, &pl0, &pl1);
    for (int64_t pl = pl0; pl < pl1; pl++) {
        float *g = j->gx + pl * HW;
        const float *dy = j->gy + pl * OP;
        for (int oh = 0; oh < OH; oh++) {
            const int h0 = j->hlo[oh], h1 = j->hhi[oh];
            for (int ow = 0; ow < OW; ow++) {
                const int w0 = j->wlo[ow], w1 = j->whi[ow];
                const float v = dy[oh * OW + ow] / (float)((h1 - h0) * (w1 - w0));
                for (int ih = h0; ih < h1; ih++) {
                    float *row = g + (int64_t)ih * W;
                    for (int iw = w0; iw < w1; iw++) row[iw] += v;
                }
            }
        }
    }
}

static void pool_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *x = n->in[0];
    if (!eqr__needs_grad(x)) return;
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    pool_job *j = n->saved;
    j->gx = gx;
    j->gy = n->out->grad;
    j->threads = pool_threads(ctx, &j->d);
    eqr__parallel(j->threads, j->arg ? maxpool_backward_task : avgpool_backward_task, j);
}

/* Max (is_max) or average pooling over k x k windows of the last two axes. */
static eqr_tensor *pool2d(eqr_ctx *ctx, const char *op, eqr_tensor *x, int k, int stride, int pad,
                          int is_max) {
    if (!eqr__ok_in(ctx, op, 1, x)) return NULL;
    pool_dims d;
    if (!pool_check(ctx, op, x, k, stride, pad, &d)) return NULL;
    int64_t shape[EQR_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
    shape[x->ndim - 2] = d.OH;
    shape[x->ndim - 1] = d.OW;
    eqr_tensor *y = eqr__tensor_empty(ctx, x->ndim, shape);
    pool_job *j = y ? eqr__arena_alloc(ctx, sizeof *j) : NULL;
    int *tab = j ? eqr__arena_alloc(ctx, 2 * (size_t)(d.OH + d.OW) * sizeof *tab) : NULL;
    if (!tab) return NULL;
    memset(j, 0, sizeof *j);
    j->d = d;
    j->hlo = tab;
    j->hhi = tab + d.OH;
    j->wlo = tab + 2 * d.OH;
    j->whi = tab + 2 * d.OH + d.OW;
    window_table(d.OH, d.s, d.p, d.k, d.H, j->hlo, j->hhi);
    window_table(d.OW, d.s, d.p, d.k, d.W, j->wlo, j->whi);
    if (is_max) {
        const size_t nout = (size_t)(d.planes * d.OH * d.OW);
        if (!(j->arg = eqr__arena_alloc(ctx, nout * sizeof *j->arg))) return NULL;
    }
    j->x = x->data;
    j->y = y->data;
    j->threads = pool_threads(ctx, &d);
    eqr__parallel(j->threads, pool_forward_task, j);
    eqr_node *n = eqr__record(ctx, y, pool_backward, 1, &x);
    if (n) n->saved = j;
    return y;
}

eqr_tensor *eqr_maxpool2d(eqr_ctx *ctx, eqr_tensor *x, int k, int stride, int pad) {
    return pool2d(ctx, "eqr_maxpool2d", x, k, stride, pad, 1);
}

eqr_tensor *eqr_avgpool2d(eqr_ctx *ctx, eqr_tensor *x, int k, int stride, int pad) {
    return pool2d(ctx, "eqr_avgpool2d", x, k, stride, pad, 0);
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
