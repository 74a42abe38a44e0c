/* Pointwise activations. Backward passes reuse the output where the
 * derivative is a function of it (sigmoid, tanh) and the input otherwise. */
#include "internal.h"

#include <math.h>

/* Output tensor of x's shape, or NULL when x is NULL / the context is in error. */
static eqr_tensor *unary_out(eqr_ctx *ctx, eqr_tensor *x) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
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

static float sigmoidf(float v) {
    /* exp of a non-positive argument only, so no overflow for large |v| */
    if (v >= 0.0f) return 1.0f / (1.0f + expf(-v));
    float e = expf(v);
    return e / (1.0f + e);
}

/* ---- relu / leaky relu (f[0] = negative slope; relu is slope 0) ---- */

static void leaky_backward(eqr_ctx *ctx, eqr_node *nd) {
    UNARY_BW_BEGIN(nd);
    float s = nd->f[0];
    for (int64_t i = 0; i < n; i++) gx[i] += xd[i] > 0.0f ? gy[i] : s * gy[i];
}

static eqr_tensor *leaky(eqr_ctx *ctx, eqr_tensor *x, float slope) {
    eqr_tensor *y = unary_out(ctx, x);
    if (!y) return NULL;
    const float *xd = x->data;
    float *yd = y->data;
    for (int64_t i = 0; i < x->numel; i++) yd[i] = xd[i] > 0.0f ? xd[i] : slope * xd[i];
    eqr_node *n = eqr__record(ctx, y, leaky_backward, 1, &x);
    if (n) n->f[0] = slope;
    return y;
}

eqr_tensor *eqr_relu(eqr_ctx *ctx, eqr_tensor *x) { return leaky(ctx, x, 0.0f); }
eqr_tensor *eqr_leaky_relu(eqr_ctx *ctx, eqr_tensor *x, float slope) {
    return leaky(ctx, x, slope);
}

/* ---- sigmoid: dy/dx = y (1 - y) ---- */

static void sigmoid_backward(eqr_ctx *ctx, eqr_node *nd) {
    UNARY_BW_BEGIN(nd);
    for (int64_t i = 0; i < n; i++) gx[i] += gy[i] * yd[i] * (1.0f - yd[i]);
}

eqr_tensor *eqr_sigmoid(eqr_ctx *ctx, eqr_tensor *x) {
    eqr_tensor *y = unary_out(ctx, x);
    if (!y) return NULL;
    for (int64_t i = 0; i < x->numel; i++) y->data[i] = sigmoidf(x->data[i]);
    eqr__record(ctx, y, sigmoid_backward, 1, &x);
    return y;
}

/* ---- tanh: dy/dx = 1 - y^2 ---- */

static void tanh_backward(eqr_ctx *ctx, eqr_node *nd) {
    UNARY_BW_BEGIN(nd);
    for (int64_t i = 0; i < n; i++) gx[i] += gy[i] * (1.0f - yd[i] * yd[i]);
}

eqr_tensor *eqr_tanh(eqr_ctx *ctx, eqr_tensor *x) {
    eqr_tensor *y = unary_out(ctx, x);
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
    eqr_tensor *y = unary_out(ctx, x);
    if (!y) return NULL;
    for (int64_t i = 0; i < x->numel; i++) {
        float v = x->data[i];
        y->data[i] = 0.5f * v * (1.0f + erff(v * EQR_SQRT1_2));
    }
    eqr__record(ctx, y, gelu_backward, 1, &x);
    return y;
}

/* ---- SiLU: y = x s(x), dy/dx = s (1 + x (1 - s)) ---- */

static void silu_backward(eqr_ctx *ctx, eqr_node *nd) {
    UNARY_BW_BEGIN(nd);
    for (int64_t i = 0; i < n; i++) {
        float s = sigmoidf(xd[i]);
        gx[i] += gy[i] * s * (1.0f + xd[i] * (1.0f - s));
    }
}

eqr_tensor *eqr_silu(eqr_ctx *ctx, eqr_tensor *x) {
    eqr_tensor *y = unary_out(ctx, x);
    if (!y) return NULL;
    for (int64_t i = 0; i < x->numel; i++) y->data[i] = x->data[i] * sigmoidf(x->data[i]);
    eqr__record(ctx, y, silu_backward, 1, &x);
    return y;
}
