/* VN-LeakyReLU (learned direction) and VN-BatchNorm (batch norm of the
 * vector norms), composed from differentiable ops. */
#include "nn3d/vn_internal.h"

#include <math.h>
#include <stdlib.h>

/* ------------------------------------------------------- VN-LeakyReLU */

struct eqr_vn_leaky_relu {
    int channels, dirs; /* dirs = channels, or 1 when shared */
    float slope;
    eqr_tensor *u; /* "<name>.weight" [dirs, channels] */
};

static const char *w_suffix[] = {".weight"};

eqr_vn_leaky_relu *eqr_vn_leaky_relu_create(eqr_ctx *ctx, const char *name, int channels,
                                            const eqr_vn_leaky_relu_opts *opts) {
    static const char *fn = "eqr_vn_leaky_relu_create";
    eqr_vn_leaky_relu_opts o = {0};
    if (opts) o = *opts;
    if (!eqr__vn_create_ok(ctx, fn, name, 1, &channels, 1, w_suffix)) return NULL;
    if (!(o.negative_slope >= 0.0f && o.negative_slope < 1.0f)) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: negative_slope %g must be in [0, 1)", fn,
                  (double)o.negative_slope);
        return NULL;
    }
    eqr_vn_leaky_relu *l = eqr__calloc(ctx, fn, 1, sizeof *l);
    if (!l) return NULL;
    l->channels = channels;
    l->dirs = o.shared ? 1 : channels;
    l->slope = o.negative_slope;
    int64_t s[2] = {l->dirs, channels};
    l->u = eqr__param_filled(ctx, name, ".weight", 2, s, 0, 0.0f);
    if (!l->u) {
        free(l);
        return NULL;
    }
    eqr_tensor_normal(l->u, eqr_ctx_rng(ctx), 1.0f / sqrtf((float)channels));
    return l;
}

eqr_tensor *eqr_vn_leaky_relu_forward(eqr_ctx *ctx, eqr_vn_leaky_relu *layer, eqr_tensor *x) {
    if (!eqr__vn_forward_ok(ctx, "eqr_vn_leaky_relu_forward", layer, x)) return NULL;
    eqr_tensor *x4 = eqr__vn_view4(ctx, "eqr_vn_leaky_relu_forward", x, layer->channels);
    if (!x4) return NULL;
    int64_t N = x4->shape[0], C = layer->channels, P = x4->shape[3];
    int64_t fs[3] = {N, C, 3 * P}, ks[4] = {N, layer->dirs, 3, P};
    /* k = U x: equivariant direction(s) */
    eqr_tensor *k = eqr_reshape(ctx, eqr__vn_mix(ctx, layer->u, eqr_reshape(ctx, x4, 3, fs)), 4, ks);
    /* y = x + (1 - slope) relu(-<x, k>) / (|k|^2 + eps) k */
    eqr_tensor *neg = eqr_relu(ctx, eqr_scale(ctx, eqr_sum(ctx, eqr_mul(ctx, x4, k), 2, 1), -1.0f));
    eqr_tensor *kk = eqr_add_scalar(ctx, eqr_sum(ctx, eqr_mul(ctx, k, k), 2, 1), 1e-6f);
    eqr_tensor *corr = eqr_mul(ctx, eqr_div(ctx, neg, kk), k);
    eqr_tensor *y = eqr_add(ctx, x4, eqr_scale(ctx, corr, 1.0f - layer->slope));
    return eqr__vn_unview(ctx, y, x);
}

eqr_tensor *eqr_vn_leaky_relu_weight(const eqr_vn_leaky_relu *layer) {
    return layer ? layer->u : NULL;
}
void eqr_vn_leaky_relu_destroy(eqr_vn_leaky_relu *layer) { free(layer); }

/* ------------------------------------------------------ VN-BatchNorm */

struct eqr_vn_bn {
    int channels, training;
    float eps, momentum;
    eqr_tensor *weight, *bias, *rmean, *rvar;
};

static const char *bn_suffixes[] = {".weight", ".bias", ".running_mean", ".running_var"};

eqr_vn_bn *eqr_vn_bn_create(eqr_ctx *ctx, const char *name, int channels,
                            const eqr_vn_bn_opts *opts) {
    static const char *fn = "eqr_vn_bn_create";
    eqr_vn_bn_opts o = {0};
    if (opts) o = *opts;
    if (!eqr__vn_create_ok(ctx, fn, name, 1, &channels, 4, bn_suffixes)) return NULL;
    if (!(o.eps >= 0.0f) || !(o.momentum >= 0.0f && o.momentum <= 1.0f)) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: eps %g must be >= 0 and momentum %g in [0, 1]", fn,
                  (double)o.eps, (double)o.momentum);
        return NULL;
    }
    eqr_vn_bn *l = eqr__calloc(ctx, fn, 1, sizeof *l);
    if (!l) return NULL;
    l->channels = channels;
    l->training = 1;
    l->eps = o.eps > 0.0f ? o.eps : 1e-5f;
    l->momentum = o.momentum > 0.0f ? o.momentum : 0.1f;
    int64_t s = channels;
    l->weight = eqr__param_filled(ctx, name, ".weight", 1, &s, EQR_PARAM_NO_DECAY, 1.0f);
    l->bias = eqr__param_filled(ctx, name, ".bias", 1, &s, EQR_PARAM_NO_DECAY, 0.0f);
    l->rmean = eqr__param_filled(ctx, name, ".running_mean", 1, &s, EQR_PARAM_BUFFER, 0.0f);
    l->rvar = eqr__param_filled(ctx, name, ".running_var", 1, &s, EQR_PARAM_BUFFER, 1.0f);
    if (!l->weight || !l->bias || !l->rmean || !l->rvar) {
        free(l);
        return NULL;
    }
    return l;
}

eqr_tensor *eqr_vn_bn_forward(eqr_ctx *ctx, eqr_vn_bn *layer, eqr_tensor *x) {
    if (!eqr__vn_forward_ok(ctx, "eqr_vn_bn_forward", layer, x)) return NULL;
    eqr_tensor *x4 = eqr__vn_view4(ctx, "eqr_vn_bn_forward", x, layer->channels);
    if (!x4) return NULL;
    if (layer->training && x4->shape[0] * x4->shape[3] < 2) {
        char b[EQR_SHAPE_BUF];
        eqr__fail(ctx, EQR_ERR_SHAPE,
                  "eqr_vn_bn_forward: training needs more than one vector per channel, x is %s",
                  EQR_SHAPE(x, b));
        return NULL;
    }
    /* invariant norms [N, C, P] -> batch norm -> rescale each vector */
    eqr_tensor *n = eqr__vn_norm(ctx, x4, 1e-8f);
    eqr_tensor *b = eqr_batchnorm(ctx, n, layer->weight, layer->bias, layer->rmean, layer->rvar,
                                  layer->momentum, layer->eps, layer->training);
    int64_t rs[4] = {x4->shape[0], layer->channels, 1, x4->shape[3]};
    eqr_tensor *ratio = eqr_reshape(ctx, eqr_div(ctx, b, n), 4, rs);
    return eqr__vn_unview(ctx, eqr_mul(ctx, x4, ratio), x);
}

void eqr_vn_bn_set_training(eqr_vn_bn *layer, int training) {
    if (layer) layer->training = training != 0;
}
int eqr_vn_bn_training(const eqr_vn_bn *layer) { return layer ? layer->training : 0; }
eqr_tensor *eqr_vn_bn_weight(const eqr_vn_bn *layer) { return layer ? layer->weight : NULL; }
eqr_tensor *eqr_vn_bn_bias(const eqr_vn_bn *layer) { return layer ? layer->bias : NULL; }
eqr_tensor *eqr_vn_bn_running_mean(const eqr_vn_bn *layer) { return layer ? layer->rmean : NULL; }
eqr_tensor *eqr_vn_bn_running_var(const eqr_vn_bn *layer) { return layer ? layer->rvar : NULL; }
void eqr_vn_bn_destroy(eqr_vn_bn *layer) { free(layer); }
