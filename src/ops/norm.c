/* Batch normalisation and dropout. */
#include "core/internal.h"
#include "equirelax/ops.h"

#include <math.h>

/* ---- batch norm ---- */

/* Row reductions with 8 float lanes, so they vectorise without fast-math;
 * callers add the per-row results in double. */
#define BN_LANES 8

static double row_sum(const float *v, int64_t n) {
    float acc[BN_LANES] = {0};
    int64_t k = 0;
    for (; k + BN_LANES <= n; k += BN_LANES)
        for (int l = 0; l < BN_LANES; l++) acc[l] += v[k + l];
    double s = 0;
    for (; k < n; k++) s += v[k];
    for (int l = 0; l < BN_LANES; l++) s += acc[l];
    return s;
}

static double row_sqdev(const float *v, int64_t n, float mu) {
    float acc[BN_LANES] = {0};
    int64_t k = 0;
    for (; k + BN_LANES <= n; k += BN_LANES)
        for (int l = 0; l < BN_LANES; l++) acc[l] += (v[k + l] - mu) * (v[k + l] - mu);
    double s = 0;
    for (; k < n; k++) s += (double)(v[k] - mu) * (v[k] - mu);
    for (int l = 0; l < BN_LANES; l++) s += acc[l];
    return s;
}

/* sum(g) and sum(g * (x - mu)) over a row. */
static void row_gsums(const float *g, const float *x, int64_t n, float mu, double *sg,
                      double *sgx) {
    float a[BN_LANES] = {0}, b[BN_LANES] = {0};
    int64_t k = 0;
    for (; k + BN_LANES <= n; k += BN_LANES)
        for (int l = 0; l < BN_LANES; l++) {
            a[l] += g[k + l];
            b[l] += g[k + l] * (x[k + l] - mu);
        }
    for (; k < n; k++) {
        *sg += g[k];
        *sgx += (double)g[k] * (x[k] - mu);
    }
    for (int l = 0; l < BN_LANES; l++) {
        *sg += a[l];
        *sgx += b[l];
    }
}

/* 0 (error recorded) unless v is NULL or a [C] vector. */
static int bn_vec_ok(eqr_ctx *ctx, const eqr_tensor *v, const char *what, const eqr_tensor *x) {
    if (!v || (v->ndim == 1 && v->shape[0] == x->shape[1])) return 1;
    char bv[EQR_SHAPE_BUF], bx[EQR_SHAPE_BUF];
    eqr__fail(ctx, EQR_ERR_SHAPE,
              "eqr_batchnorm: %s has shape %s, expected [%lld] (channels of x %s)", what,
              EQR_SHAPE(v, bv), (long long)x->shape[1], EQR_SHAPE(x, bx));
    return 0;
}

/* in: x, gamma, beta (either may be NULL); i: [0] N, [1] C, [2] S (elements
 * per image and channel), [3] training; saved: mean[C] then invstd[C]. */
static void bn_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *x = n->in[0], *gamma = n->in[1], *beta = n->in[2];
    int64_t N = n->i[0], C = n->i[1], S = n->i[2], M = N * S;
    int training = (int)n->i[3];
    const float *mean = n->saved, *istd = mean + C, *gy = n->out->grad;
    float *gx = NULL, *gg = NULL, *gb = NULL;
    if (eqr__needs_grad(x) && !(gx = eqr__grad(ctx, x))) return;
    if (eqr__needs_grad(gamma) && !(gg = eqr__grad(ctx, gamma))) return;
    if (eqr__needs_grad(beta) && !(gb = eqr__grad(ctx, beta))) return;
    for (int64_t c = 0; c < C; c++) {
        const float mu = mean[c], is = istd[c];
        double sdy = 0, sdyx = 0;
        for (int64_t b = 0; b < N; b++)
            row_gsums(gy + (b * C + c) * S, x->data + (b * C + c) * S, S, mu, &sdy, &sdyx);
        sdyx *= is; /* sum(dy * xhat) */
        if (gg) gg[c] += (float)sdyx;
        if (gb) gb[c] += (float)sdy;
        if (!gx) continue;
        const float a = (gamma ? gamma->data[c] : 1.0f) * is;
        /* Training: the batch mean and variance depend on x too, which
         * subtracts the mean of dy and its projection on xhat. */
        const float k1 = training ? (float)(sdy / (double)M) : 0.0f;
        const float k2 = training ? (float)(sdyx / (double)M) * is : 0.0f;
        for (int64_t b = 0; b < N; b++) {
            const float *xp = x->data + (b * C + c) * S, *gp = gy + (b * C + c) * S;
            float *g = gx + (b * C + c) * S;
            for (int64_t k = 0; k < S; k++) g[k] += a * (gp[k] - k1 - (xp[k] - mu) * k2);
        }
    }
}

eqr_tensor *eqr_batchnorm(eqr_ctx *ctx, eqr_tensor *x, eqr_tensor *gamma, eqr_tensor *beta,
                          eqr_tensor *running_mean, eqr_tensor *running_var, float momentum,
                          float eps, int training) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    char bx[EQR_SHAPE_BUF];
    if (x->ndim < 2) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_batchnorm: x must be [N,C,...], got %s",
                  EQR_SHAPE(x, bx));
        return NULL;
    }
    if (!bn_vec_ok(ctx, gamma, "gamma", x) || !bn_vec_ok(ctx, beta, "beta", x) ||
        !bn_vec_ok(ctx, running_mean, "running_mean", x) ||
        !bn_vec_ok(ctx, running_var, "running_var", x))
        return NULL;
    if (!(eps >= 0.0f) || !isfinite(eps) || !(momentum >= 0.0f && momentum <= 1.0f)) {
        eqr__fail(ctx, EQR_ERR_ARG,
                  "eqr_batchnorm: need eps >= 0 and momentum in [0, 1] (got eps %g, momentum %g)",
                  (double)eps, (double)momentum);
        return NULL;
    }
    if ((running_mean == NULL) != (running_var == NULL)) {
        eqr__fail(ctx, EQR_ERR_ARG,
                  "eqr_batchnorm: running_mean and running_var must be given together");
        return NULL;
    }
    if (!training && !running_mean) {
        eqr__fail(ctx, EQR_ERR_ARG,
                  "eqr_batchnorm: evaluation (training = 0) needs running_mean and running_var");
        return NULL;
    }
    int64_t N = x->shape[0], C = x->shape[1], S = 1;
    for (int d = 2; d < x->ndim; d++) S *= x->shape[d];
    int64_t M = N * S;
    if (training && M < 2) {
        eqr__fail(ctx, EQR_ERR_SHAPE,
                  "eqr_batchnorm: training needs more than one value per channel, x is %s",
                  EQR_SHAPE(x, bx));
        return NULL;
    }
    eqr_tensor *out = eqr__tensor_empty(ctx, x->ndim, x->shape);
    float *stats = out ? eqr__arena_alloc(ctx, (size_t)(2 * C + 1) * sizeof(float)) : NULL;
    if (!stats) return NULL;
    float *mean = stats, *istd = stats + C;
    for (int64_t c = 0; c < C; c++) {
        double mu, var;
        if (training) {
            double s = 0, s2 = 0;
            for (int64_t b = 0; b < N; b++) s += row_sum(x->data + (b * C + c) * S, S);
            mu = s / (double)M;
            for (int64_t b = 0; b < N; b++)
                s2 += row_sqdev(x->data + (b * C + c) * S, S, (float)mu);
            var = s2 / (double)M; /* biased: normalises the batch */
            if (running_mean) {
                float *rm = running_mean->data + c, *rv = running_var->data + c;
                *rm = (float)((1.0 - momentum) * *rm + momentum * mu);
                *rv = (float)((1.0 - momentum) * *rv + momentum * (s2 / (double)(M - 1)));
            }
        } else {
            mu = running_mean->data[c];
            var = running_var->data[c];
        }
        mean[c] = (float)mu;
        istd[c] = (float)(1.0 / sqrt(var + eps));
        /* y = a x + b with a = gamma * invstd, b = beta - mean * a */
        const float a = (gamma ? gamma->data[c] : 1.0f) * istd[c];
        const float sh = (beta ? beta->data[c] : 0.0f) - mean[c] * a;
        for (int64_t b = 0; b < N; b++) {
            const float *xp = x->data + (b * C + c) * S;
            float *yp = out->data + (b * C + c) * S;
            for (int64_t k = 0; k < S; k++) yp[k] = a * xp[k] + sh;
        }
    }
    eqr_tensor *in[3] = {x, gamma, beta};
    eqr__record_with(ctx, out, bn_backward, 3, in, stats, 4,
                     (const int64_t[]){N, C, S, training ? 1 : 0});
    return out;
}

/* ---- dropout ---- */

/* saved: per-element multiplier, 0 or 1 / (1 - p). */
static void dropout_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *x = n->in[0];
    if (!eqr__needs_grad(x)) return;
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    const float *mask = n->saved, *gy = n->out->grad;
    for (int64_t i = 0; i < x->numel; i++) gx[i] += gy[i] * mask[i];
}

eqr_tensor *eqr_dropout(eqr_ctx *ctx, eqr_tensor *x, float p, int training) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    if (!(p >= 0.0f && p < 1.0f)) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_dropout: p must be in [0, 1), got %g", (double)p);
        return NULL;
    }
    if (!training || p == 0.0f) return x;
    eqr_tensor *out = eqr__tensor_empty(ctx, x->ndim, x->shape);
    float *mask = out ? eqr__arena_alloc(ctx, (size_t)x->numel * sizeof(float)) : NULL;
    if (!mask) return NULL;
    const float scale = 1.0f / (1.0f - p);
    eqr_rng *rng = &ctx->rng;
    for (int64_t i = 0; i < x->numel; i++) {
        mask[i] = eqr_rng_uniform(rng) >= p ? scale : 0.0f;
        out->data[i] = x->data[i] * mask[i];
    }
    eqr_node *n = eqr__record(ctx, out, dropout_backward, 1, &x);
    if (n) n->saved = mask;
    return out;
}
