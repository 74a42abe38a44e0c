/* Reductions over one axis (sum, mean, max) and over all elements.
 * An axis reduction views x as [outer, n, inner] with n the reduced axis;
 * the output is [outer, inner] laid out contiguously. */
#include "core/internal.h"
#include "equirelax/ops.h"

#include <math.h>

/* Validate the axis and build the output shape; 0 (error recorded) if bad. */
static int axis_geom(eqr_ctx *ctx, const char *op, const eqr_tensor *x, int axis, int keepdim,
                     int need_nonempty, int64_t *outer, int64_t *n, int64_t *inner, int *ond,
                     int64_t *oshape) {
    char s[EQR_SHAPE_BUF];
    int ax = eqr__axis(axis, x->ndim);
    if (ax < 0) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: axis %d is out of range for shape %s (%d dims)", op, axis,
                  EQR_SHAPE(x, s), x->ndim);
        return 0;
    }
    if (need_nonempty && x->shape[ax] == 0) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "%s: axis %d of shape %s is empty", op, axis,
                  EQR_SHAPE(x, s));
        return 0;
    }
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < ax; i++) *outer *= x->shape[i];
    for (int i = ax + 1; i < x->ndim; i++) *inner *= x->shape[i];
    *n = x->shape[ax];
    int k = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (i != ax)
            oshape[k++] = x->shape[i];
        else if (keepdim)
            oshape[k++] = 1;
    }
    *ond = k;
    return 1;
}

/* ---- sum / mean over an axis: i[0..2] = outer, n, inner; f[0] = scale ---- */

static void sum_axis_backward(eqr_ctx *ctx, eqr_node *nd) {
    eqr_tensor *x = nd->in[0];
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    int64_t outer = nd->i[0], n = nd->i[1], inner = nd->i[2];
    float s = nd->f[0];
    const float *gy = nd->out->grad;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < n; k++) {
            float *g = gx + (o * n + k) * inner;
            const float *gr = gy + o * inner;
            for (int64_t i = 0; i < inner; i++) g[i] += s * gr[i];
        }
}

static eqr_tensor *sum_axis(eqr_ctx *ctx, const char *op, eqr_tensor *x, int axis, int keepdim,
                            int mean) {
    if (!eqr__ok_in(ctx, op, 1, x)) return NULL;
    int64_t outer, n, inner, oshape[EQR_MAX_DIMS];
    int ond;
    if (!axis_geom(ctx, op, x, axis, keepdim, mean, &outer, &n, &inner, &ond, oshape))
        return NULL;
    eqr_tensor *y = eqr__tensor_empty(ctx, ond, oshape);
    if (!y) return NULL;
    float s = mean ? 1.0f / (float)n : 1.0f;
    const float *xd = x->data;
    float *yd = y->data;
    for (int64_t o = 0; o < outer; o++) {
        const float *xr = xd + o * n * inner;
        float *yr = yd + o * inner;
        if (inner == 1) { /* reducing the last axis: one dot-like row */
            double acc = 0.0;
            for (int64_t k = 0; k < n; k++) acc += xr[k];
            yr[0] = (float)(acc * s);
        } else { /* accumulate whole rows so the inner loop stays contiguous */
            for (int64_t i = 0; i < inner; i++) yr[i] = 0.0f;
            for (int64_t k = 0; k < n; k++)
                for (int64_t i = 0; i < inner; i++) yr[i] += xr[k * inner + i];
            if (mean)
                for (int64_t i = 0; i < inner; i++) yr[i] *= s;
        }
    }
    eqr_node *nd = eqr__record(ctx, y, sum_axis_backward, 1, &x);
    if (nd) {
        nd->i[0] = outer;
        nd->i[1] = n;
        nd->i[2] = inner;
        nd->f[0] = s;
    }
    return y;
}

eqr_tensor *eqr_sum(eqr_ctx *ctx, eqr_tensor *x, int axis, int keepdim) {
    return sum_axis(ctx, "eqr_sum", x, axis, keepdim, 0);
}

eqr_tensor *eqr_mean(eqr_ctx *ctx, eqr_tensor *x, int axis, int keepdim) {
    return sum_axis(ctx, "eqr_mean", x, axis, keepdim, 1);
}

/* ---- max over an axis: saved = argmax index along the axis per output ---- */

static void max_backward(eqr_ctx *ctx, eqr_node *nd) {
    eqr_tensor *x = nd->in[0];
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    int64_t outer = nd->i[0], n = nd->i[1], inner = nd->i[2];
    const int64_t *arg = nd->saved;
    const float *gy = nd->out->grad;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t j = o * inner + i;
            gx[(o * n + arg[j]) * inner + i] += gy[j];
        }
}

eqr_tensor *eqr_max(eqr_ctx *ctx, eqr_tensor *x, int axis, int keepdim) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    int64_t outer, n, inner, oshape[EQR_MAX_DIMS];
    int ond;
    if (!axis_geom(ctx, "eqr_max", x, axis, keepdim, 1, &outer, &n, &inner, &ond, oshape))
        return NULL;
    eqr_tensor *y = eqr__tensor_empty(ctx, ond, oshape);
    if (!y) return NULL;
    int64_t *arg = eqr__arena_alloc(ctx, (size_t)(y->numel > 0 ? y->numel : 1) * sizeof *arg);
    if (!arg) return NULL;
    const float *xd = x->data;
    float *yd = y->data;
    for (int64_t o = 0; o < outer; o++) {
        const float *xr = xd + o * n * inner;
        float *yr = yd + o * inner;
        int64_t *ar = arg + o * inner;
        for (int64_t i = 0; i < inner; i++) {
            yr[i] = xr[i];
            ar[i] = 0;
        }
        /* strict '>' keeps the first maximum; a NaN wins once so it propagates */
        for (int64_t k = 1; k < n; k++)
            for (int64_t i = 0; i < inner; i++) {
                float v = xr[k * inner + i];
                if (v > yr[i] || (isnan(v) && !isnan(yr[i]))) {
                    yr[i] = v;
                    ar[i] = k;
                }
            }
    }
    eqr__record_with(ctx, y, max_backward, 1, &x, arg, 3, (const int64_t[]){outer, n, inner});
    return y;
}

/* ---- sum / mean of all elements -> scalar; f[0] = scale ---- */

static void all_backward(eqr_ctx *ctx, eqr_node *nd) {
    eqr_tensor *x = nd->in[0];
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    float g = nd->out->grad[0] * nd->f[0];
    for (int64_t i = 0; i < x->numel; i++) gx[i] += g;
}

static eqr_tensor *reduce_all(eqr_ctx *ctx, eqr_tensor *x, int mean) {
    if (!eqr__ok_in(ctx, mean ? "eqr_mean_all" : "eqr_sum_all", 1, x)) return NULL;
    if (mean && x->numel == 0) {
        char s[EQR_SHAPE_BUF];
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_mean_all: tensor of shape %s is empty", EQR_SHAPE(x, s));
        return NULL;
    }
    eqr_tensor *y = eqr__tensor_empty(ctx, 0, NULL);
    if (!y) return NULL;
    /* double: losses sum many terms; eight independent lanes so the adds
     * do not wait on each other (fixed order: the same sum every run) */
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0}, acc = 0.0;
    int64_t i = 0;
    for (; i + 8 <= x->numel; i += 8)
        for (int l = 0; l < 8; l++) lane[l] += x->data[i + l];
    for (; i < x->numel; i++) acc += x->data[i];
    acc += ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    double s = mean ? 1.0 / (double)x->numel : 1.0;
    y->data[0] = (float)(acc * s);
    eqr_node *nd = eqr__record(ctx, y, all_backward, 1, &x);
    if (nd) nd->f[0] = (float)s;
    return y;
}

eqr_tensor *eqr_sum_all(eqr_ctx *ctx, eqr_tensor *x) { return reduce_all(ctx, x, 0); }
eqr_tensor *eqr_mean_all(eqr_ctx *ctx, eqr_tensor *x) { return reduce_all(ctx, x, 1); }
