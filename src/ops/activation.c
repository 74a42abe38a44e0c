/* Pointwise activations. Backward passes reuse the output where the
 * derivative is a function of it (sigmoid, tanh) and the input otherwise. */
#include "core/internal.h"
#include "equirelax/ops.h"

#include <math.h>

/* Output tensor of x's shape, or NULL when x is NULL / the context is in error. */
static eqr_tensor *unary_out(eqr_ctx *ctx, const char *fn, eqr_tensor *x) {
    if (!eqr__ok_in(ctx, fn, 1, x)) return NULL;
    return eqr__tensor_empty(ctx, x->ndim, x->shape);
}

/* Common backward prologue: input grad buffer (NULL on OOM). */
#define UNARY_BW_BEGIN(nd)                                                          \
    eqr_tensor *x = (nd)->in[0];                                                    \
    float *gx = eqr__grad(ctx, x);                                                  \
    if (!gx) return;                                                                \
    const float *xd = x->data, *yd = (nd)->out->data, *gy = (nd)->out->grad;        \
    int64_t n = x->numel;                                                           \
    (void)xd;                                                                       \
    (void)yd

/* ---- relu / leaky relu (f[0] = negative slope; relu is slope 0) ----
 * Branch-free loops over restrict pointers, so they vectorise (a branch on
 * the sign mispredicts half the time on real activations), cut into one
 * contiguous range per thread for large tensors. Results do not depend on
 * the number of threads: every element is computed alone. */

#define LEAKY_MIN_PER_THREAD (1 << 16)

typedef struct leaky_job {
    const float *x, *gy;
    float *y, *gx;
    float slope;
    int64_t n;
    int parts;
} leaky_job;

static void part_range(const leaky_job *j, int k, int64_t *i0, int64_t *i1) {
    *i0 = j->n * k / j->parts;
    *i1 = j->n * (k + 1) / j->parts;
}

static void leaky_fwd_part(const void *job, int k) {
    const leaky_job *j = job;
    int64_t i0, i1;
    part_range(j, k, &i0, &i1);
    const float *restrict x = j->x;
    float *restrict y = j->y;
    const float s = j->slope;
    /* loads hoisted out of the selects, so the compiler may if-convert */
    if (s == 0.0f) {
        for (int64_t i = i0; i < i1; i++) {
            const float v = x[i];
            y[i] = v > 0.0f ? v : 0.0f;
        }
    } else {
        for (int64_t i = i0; i < i1; i++) {
            const float v = x[i];
            y[i] = v > 0.0f ? v : s * v;
        }
    }
}

static void leaky_bwd_part(const void *job, int k) {
    const leaky_job *j = job;
    int64_t i0, i1;
    part_range(j, k, &i0, &i1);
    const float *restrict x = j->x, *restrict gy = j->gy;
    float *restrict gx = j->gx;
    const float s = j->slope;
    if (s == 0.0f) {
        for (int64_t i = i0; i < i1; i++) {
            const float g = gy[i];
            gx[i] += x[i] > 0.0f ? g : 0.0f;
        }
    } else {
        for (int64_t i = i0; i < i1; i++) {
            const float g = gy[i];
            gx[i] += x[i] > 0.0f ? g : s * g;
        }
    }
}

static int leaky_parts(const eqr_ctx *ctx, int64_t n) {
    int t = eqr_ctx_num_threads(ctx);
    while (t > 1 && n < (int64_t)t * LEAKY_MIN_PER_THREAD) t--;
    return t;
}

static void leaky_backward(eqr_ctx *ctx, eqr_node *nd) {
    UNARY_BW_BEGIN(nd);
    leaky_job j = {xd, gy, NULL, gx, nd->f[0], n, leaky_parts(ctx, n)};
    eqr__parallel(j.parts, leaky_bwd_part, &j);
}

static eqr_tensor *leaky(eqr_ctx *ctx, const char *fn, eqr_tensor *x, float slope) {
    eqr_tensor *y = unary_out(ctx, fn, x);
    if (!y) return NULL;
    leaky_job j = {x->data, NULL, y->data, NULL, slope, x->numel, leaky_parts(ctx, x->numel)};
    eqr__parallel(j.parts, leaky_fwd_part, &j);
    eqr_node *n = eqr__record(ctx, y, leaky_backward, 1, &x);
    if (n) n->f[0] = slope;
    return y;
}

eqr_tensor *eqr_relu(eqr_ctx *ctx, eqr_tensor *x) { return leaky(ctx, __func__, x, 0.0f); }
eqr_tensor *eqr_leaky_relu(eqr_ctx *ctx, eqr_tensor *x, float slope) {
    return leaky(ctx, __func__, x, slope);
}

/* ---- in-place relu (ops.h has the contract) ----
 * The output y is a view of x, so x's gradient buffer is y's: when the
 * backward runs, it holds dL/dy and nothing else (x has no other consumer,
 * and consumers of x recorded later read y's values, so their gradient is
 * dL/dy too). Masking it in place turns it into dL/dx for x's producer,
 * whose node comes earlier on the tape. y > 0 exactly where x was > 0. */

typedef struct mask_job {
    const float *y;
    float *g;
    int64_t n;
    int parts;
} mask_job;

static void mask_part(const void *job, int k) {
    const mask_job *j = job;
    const int64_t i0 = j->n * k / j->parts, i1 = j->n * (k + 1) / j->parts;
    const float *restrict y = j->y;
    float *restrict g = j->g;
    for (int64_t i = i0; i < i1; i++) {
        const float v = g[i];
        g[i] = y[i] > 0.0f ? v : 0.0f;
    }
}

static void relu_inplace_backward(eqr_ctx *ctx, eqr_node *nd) {
    float *g = eqr__grad(ctx, nd->out); /* x's buffer */
    if (!g) return;
    const int64_t n = nd->out->numel;
    mask_job j = {nd->out->data, g, n, leaky_parts(ctx, n)};
    eqr__parallel(j.parts, mask_part, &j);
}

static void relu_inplace_fwd_part(const void *job, int k) {
    const mask_job *j = job;
    const int64_t i0 = j->n * k / j->parts, i1 = j->n * (k + 1) / j->parts;
    float *restrict x = j->g;
    for (int64_t i = i0; i < i1; i++) {
        const float v = x[i];
        x[i] = v > 0.0f ? v : 0.0f;
    }
}

eqr_tensor *eqr_relu_inplace(eqr_ctx *ctx, eqr_tensor *x) {
    static const char *fn = "eqr_relu_inplace";
    if (!eqr__ok(ctx, 1, x)) return NULL;
    if (x->base) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: x is a view (reshape / slice); pass the op output "
                  "itself", fn);
        return NULL;
    }
    if (x->flags & (EQR_T_PARAM | EQR_T_BUFFER)) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: x is a parameter or buffer; only intermediate "
                  "results may be overwritten", fn);
        return NULL;
    }
    const int rec = ctx->grad_enabled;
    if (rec != eqr__needs_grad(x)) {
        eqr__fail(ctx, EQR_ERR_ARG, rec ? "%s: x does not require grad (data or a wrapped buffer?); "
                  "use eqr_relu" : "%s: x was recorded for backward but recording is off now; "
                  "use eqr_relu", fn);
        return NULL;
    }
    /* Recording off (evaluation): a plain in-place relu, nothing to record. */
    if (rec && (ctx->tape_consumed || x->node < 0 || x->node >= ctx->tape_len ||
                ctx->tape[x->node].out != x)) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: x is not the output of an op recorded in this step", fn);
        return NULL;
    }
    /* An op recorded after x that reads x (or a view of it) would see the
     * overwritten values in its backward. */
    for (int64_t k = rec ? x->node + 1 : ctx->tape_len; k < ctx->tape_len; k++) {
        const eqr_node *nd = &ctx->tape[k];
        for (int i = 0; i < nd->nin; i++) {
            const eqr_tensor *in = nd->in[i];
            if (in && (in == x || in->base == x)) {
                eqr__fail(ctx, EQR_ERR_ARG, "%s: x is already an input of another op (tape "
                          "node %lld); it must have no other consumer", fn, (long long)k);
                return NULL;
            }
        }
    }
    eqr_tensor *y = eqr__arena_alloc(ctx, sizeof *y);
    if (!y) return NULL;
    *y = *x;
    y->grad = NULL;
    y->base = x;
    y->offset = 0;
    mask_job j = {NULL, x->data, x->numel, leaky_parts(ctx, x->numel)};
    eqr__parallel(j.parts, relu_inplace_fwd_part, &j);
    if (rec) eqr__record(ctx, y, relu_inplace_backward, 1, &x);
    return ctx->status == EQR_OK ? y : NULL;
}

/* ---- sigmoid: dy/dx = y (1 - y) ---- */

static void sigmoid_backward(eqr_ctx *ctx, eqr_node *nd) {
    UNARY_BW_BEGIN(nd);
    for (int64_t i = 0; i < n; i++) gx[i] += gy[i] * yd[i] * (1.0f - yd[i]);
}

eqr_tensor *eqr_sigmoid(eqr_ctx *ctx, eqr_tensor *x) {
    eqr_tensor *y = unary_out(ctx, __func__, x);
    if (!y) return NULL;
    eqr__sigmoid_n(x->data, y->data, x->numel);
    eqr__record(ctx, y, sigmoid_backward, 1, &x);
    return y;
}

/* ---- tanh: dy/dx = 1 - y^2 ---- */

static void tanh_backward(eqr_ctx *ctx, eqr_node *nd) {
    UNARY_BW_BEGIN(nd);
    for (int64_t i = 0; i < n; i++) gx[i] += gy[i] * (1.0f - yd[i] * yd[i]);
}

eqr_tensor *eqr_tanh(eqr_ctx *ctx, eqr_tensor *x) {
    eqr_tensor *y = unary_out(ctx, __func__, x);
    if (!y) return NULL;
    for (int64_t i = 0; i < x->numel; i++) y->data[i] = tanhf(x->data[i]);
    eqr__record(ctx, y, tanh_backward, 1, &x);
    return y;
}

/* ---- GELU (exact): y = x Phi(x), dy/dx = Phi(x) + x phi(x) ---- */

#define EQR_SQRT1_2 0.70710678118654752440f
#define EQR_INV_SQRT_2PI 0.39894228040143267794f

static void gelu_backward(eqr_ctx *ctx, eqr_node *nd) {
    UNARY_BW_BEGIN(nd);
    for (int64_t i = 0; i < n; i++) {
        float v = xd[i];
        float cdf = 0.5f * (1.0f + erff(v * EQR_SQRT1_2));
        float pdf = EQR_INV_SQRT_2PI * expf(-0.5f * v * v);
        gx[i] += gy[i] * (cdf + v * pdf);
    }
}

eqr_tensor *eqr_gelu(eqr_ctx *ctx, eqr_tensor *x) {
    eqr_tensor *y = unary_out(ctx, __func__, x);
    if (!y) return NULL;
    for (int64_t i = 0; i < x->numel; i++) {
        float v = x->data[i];
        y->data[i] = 0.5f * v * (1.0f + erff(v * EQR_SQRT1_2));
    }
    eqr__record(ctx, y, gelu_backward, 1, &x);
    return y;
}

/* ---- SiLU: y = x s(x), dy/dx = s (1 + x (1 - s)) ---- */

#define SILU_CHUNK 256 /* sigmoids recomputed a stack chunk at a time */

static void silu_backward(eqr_ctx *ctx, eqr_node *nd) {
    UNARY_BW_BEGIN(nd);
    float s[SILU_CHUNK];
    for (int64_t i0 = 0; i0 < n; i0 += SILU_CHUNK) {
        const int64_t m = n - i0 < SILU_CHUNK ? n - i0 : SILU_CHUNK;
        eqr__sigmoid_n(xd + i0, s, m);
        for (int64_t i = 0; i < m; i++)
            gx[i0 + i] += gy[i0 + i] * s[i] * (1.0f + xd[i0 + i] * (1.0f - s[i]));
    }
}

eqr_tensor *eqr_silu(eqr_ctx *ctx, eqr_tensor *x) {
    eqr_tensor *y = unary_out(ctx, __func__, x);
    if (!y) return NULL;
    eqr__sigmoid_n(x->data, y->data, x->numel);
    for (int64_t i = 0; i < x->numel; i++) y->data[i] *= x->data[i];
    eqr__record(ctx, y, silu_backward, 1, &x);
    return y;
}
