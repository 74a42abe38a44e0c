/* The grouped batch-norm kernel (ops/bn_internal.h): one mean (centred
 * groups) or none, one variance and one scale per run of channels. */
#include "ops/bn_internal.h"

#include <math.h>
#include <stdlib.h>

/* Node data: in = x, weight, bias (either may be NULL); i: [0] N, [1] HW,
 * [2] D, [3] training; saved: the kernel's groups and the statistics. */
typedef struct bn_saved {
    const eqr__bn *l;
    float *mean, *istd;
} bn_saved;

/* Per group with a = w * istd, M values, xc = x - mean:
 *   dw = istd * sum(g xc),  db = sum(g),
 *   dx = a (g - [centred] sum(g)/M - xc istd^2 sum(g xc)/M)   (training),
 *   dx = a g                                                 (evaluation). */
static void group_bn_backward(eqr_ctx *ctx, eqr_node *nd) {
    eqr_tensor *x = nd->in[0], *w = nd->in[1], *bias = nd->in[2];
    const bn_saved *sv = nd->saved;
    const eqr__bn *l = sv->l;
    int64_t N = nd->i[0], HW = nd->i[1], D = nd->i[2];
    int training = (int)nd->i[3];
    float *gx = NULL, *gw = NULL, *gb = NULL;
    if (eqr__needs_grad(x) && !(gx = eqr__grad(ctx, x))) return;
    if (eqr__needs_grad(w) && !(gw = eqr__grad(ctx, w))) return;
    if (eqr__needs_grad(bias) && !(gb = eqr__grad(ctx, bias))) return;
    const float *gy = nd->out->grad;
    for (int s = 0; s < l->S; s++) {
        const eqr__bn_group *g = &l->grp[s];
        const int64_t len = (int64_t)g->cnt * HW;
        const double M = (double)(N * len);
        const float mu = sv->mean[s], is = sv->istd[s];
        double sg = 0, sgx = 0;
        for (int64_t n = 0; n < N; n++) {
            const float *xp = x->data + (n * D + g->off) * HW, *gp = gy + (n * D + g->off) * HW;
            for (int64_t k = 0; k < len; k++) {
                sg += gp[k];
                sgx += (double)gp[k] * (xp[k] - mu);
            }
        }
        if (gw) gw[s] += (float)(sgx * is);
        if (gb && g->centre >= 0) gb[g->centre] += (float)sg;
        if (!gx) continue;
        const float a = (w ? w->data[s] : 1.0f) * is;
        const float k1 = (training && g->centre >= 0) ? (float)(sg / M) : 0.0f;
        const float k2 = training ? (float)(sgx / M) * is * is : 0.0f;
        for (int64_t n = 0; n < N; n++) {
            const float *xp = x->data + (n * D + g->off) * HW, *gp = gy + (n * D + g->off) * HW;
            float *gxp = gx + (n * D + g->off) * HW;
            for (int64_t k = 0; k < len; k++) gxp[k] += a * (gp[k] - k1 - (xp[k] - mu) * k2);
        }
    }
}

eqr_tensor *eqr__bn_apply(eqr_ctx *ctx, const eqr__bn *l, eqr_tensor *x, int64_t N, int64_t D,
                          int64_t HW, int training) {
    eqr_tensor *out = eqr__tensor_empty(ctx, x->ndim, x->shape);
    bn_saved *sv = out ? eqr__arena_alloc(ctx, sizeof *sv) : NULL;
    float *stats = sv ? eqr__arena_alloc(ctx, 2 * (size_t)l->S * sizeof *stats) : NULL;
    if (!stats) return NULL;
    sv->l = l;
    sv->mean = stats;
    sv->istd = stats + l->S;
    const float mom = l->momentum;
    for (int s = 0; s < l->S; s++) {
        const eqr__bn_group *g = &l->grp[s];
        const int64_t len = (int64_t)g->cnt * HW;
        const double M = (double)(N * len);
        double mu = 0, var;
        if (training) {
            if (g->centre >= 0) {
                double sum = 0;
                for (int64_t n = 0; n < N; n++) {
                    const float *xp = x->data + (n * D + g->off) * HW;
                    for (int64_t k = 0; k < len; k++) sum += xp[k];
                }
                mu = sum / M;
            }
            double ss = 0;
            for (int64_t n = 0; n < N; n++) {
                const float *xp = x->data + (n * D + g->off) * HW;
                for (int64_t k = 0; k < len; k++) ss += ((double)xp[k] - mu) * ((double)xp[k] - mu);
            }
            var = ss / M; /* biased: normalises the batch */
            float *rv = l->rvar->data + s;
            if (g->centre >= 0) {
                float *rm = l->rmean->data + g->centre;
                *rm = (float)((1.0 - mom) * *rm + mom * mu);
                *rv = (float)((1.0 - mom) * *rv + mom * (ss / (M - 1.0)));
            } else {
                *rv = (float)((1.0 - mom) * *rv + mom * var);
            }
        } else {
            mu = g->centre >= 0 ? l->rmean->data[g->centre] : 0.0;
            var = l->rvar->data[s];
        }
        sv->mean[s] = (float)mu;
        sv->istd[s] = (float)(1.0 / sqrt(var + l->eps));
        /* y = a x + sh with a = w * istd, sh = b - mean * a */
        const float a = (l->weight ? l->weight->data[s] : 1.0f) * sv->istd[s];
        const float sh = (g->centre >= 0 && l->bias ? l->bias->data[g->centre] : 0.0f) -
                         sv->mean[s] * a;
        for (int64_t n = 0; n < N; n++) {
            const float *xp = x->data + (n * D + g->off) * HW;
            float *yp = out->data + (n * D + g->off) * HW;
            for (int64_t k = 0; k < len; k++) yp[k] = a * xp[k] + sh;
        }
    }
    eqr_tensor *in[3] = {x, l->weight, l->bias};
    eqr__record_with(ctx, out, group_bn_backward, 3, in, sv, 4,
                     (const int64_t[]){N, HW, D, training});
    return out;
}
