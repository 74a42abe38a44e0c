/* VN pooling over points (mean; max along a learned direction) and the VN
 * invariant layer (products with a learned equivariant frame). */
#include "nn3d/vn_internal.h"

#include <math.h>
#include <stdlib.h>

eqr_tensor *eqr_vn_mean_pool(eqr_ctx *ctx, eqr_tensor *x) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    if (x->ndim != 4 || x->shape[2] != 3 || x->shape[3] < 1) {
        char b[EQR_SHAPE_BUF];
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_vn_mean_pool: x %s must be [N, C, 3, P] with P >= 1",
                  EQR_SHAPE(x, b));
        return NULL;
    }
    return eqr_mean(ctx, x, 3, 0);
}

/* A layer with one [rows, channels] weight "<name>.weight", N(0, 1 / C). */
typedef struct vn_dir_layer {
    int channels;
    eqr_tensor *w;
} vn_dir_layer;

static const char *w_suffix[] = {".weight"};

static vn_dir_layer *dir_layer_create(eqr_ctx *ctx, const char *fn, const char *name,
                                      int channels, int rows_is_three) {
    if (!eqr__vn_create_ok(ctx, fn, name, 1, &channels, 1, w_suffix)) return NULL;
    vn_dir_layer *l = eqr__calloc(ctx, fn, 1, sizeof *l);
    if (!l) return NULL;
    l->channels = channels;
    int64_t s[2] = {rows_is_three ? 3 : channels, channels};
    l->w = eqr__param_filled(ctx, name, ".weight", 2, s, 0, 0.0f);
    if (!l->w) {
        free(l);
        return NULL;
    }
    eqr_tensor_normal(l->w, eqr_ctx_rng(ctx), 1.0f / sqrtf((float)channels));
    return l;
}

/* ------------------------------------------------------------ max pool */

struct eqr_vn_max_pool {
    vn_dir_layer d;
};

eqr_vn_max_pool *eqr_vn_max_pool_create(eqr_ctx *ctx, const char *name, int channels) {
    vn_dir_layer *d = dir_layer_create(ctx, "eqr_vn_max_pool_create", name, channels, 0);
    return (eqr_vn_max_pool *)d; /* d is the first (only) member */
}

eqr_tensor *eqr_vn_max_pool_forward(eqr_ctx *ctx, eqr_vn_max_pool *layer, eqr_tensor *x) {
    if (!eqr__vn_forward_ok(ctx, "eqr_vn_max_pool_forward", layer, x)) return NULL;
    int C = layer->d.channels;
    if (x->ndim != 4 || x->shape[1] != C || x->shape[2] != 3 || x->shape[3] < 1) {
        char b[EQR_SHAPE_BUF];
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_vn_max_pool_forward: x %s must be [N, %d, 3, P], P >= 1",
                  EQR_SHAPE(x, b), C);
        return NULL;
    }
    int64_t N = x->shape[0], P = x->shape[3];
    /* the selection is piecewise constant: compute k = U x without a tape */
    int ge = eqr_grad_set_enabled(ctx, 0);
    int64_t fs[3] = {N, C, 3 * P};
    eqr_tensor *k = eqr__vn_mix(ctx, layer->d.w, eqr_reshape(ctx, x, 3, fs));
    eqr_grad_set_enabled(ctx, ge);
    int64_t *idx = k ? eqr__arena_alloc(ctx, (size_t)(N * C * 3) * sizeof(int64_t)) : NULL;
    if (!idx) return NULL;
    for (int64_t r = 0; r < N * C; r++) {
        const float *xr = x->data + r * 3 * P, *kr = k->data + r * 3 * P;
        int64_t best = 0;
        float bv = -INFINITY;
        for (int64_t p = 0; p < P; p++) {
            float v = xr[p] * kr[p] + xr[P + p] * kr[P + p] + xr[2 * P + p] * kr[2 * P + p];
            if (v > bv) bv = v, best = p;
        }
        for (int i = 0; i < 3; i++) idx[3 * r + i] = r * 3 * P + i * P + best;
    }
    int64_t os[3] = {N, C, 3};
    return eqr__gather(ctx, x, idx, 3, os);
}

eqr_tensor *eqr_vn_max_pool_weight(const eqr_vn_max_pool *layer) {
    return layer ? layer->d.w : NULL;
}
void eqr_vn_max_pool_destroy(eqr_vn_max_pool *layer) { free(layer); }

/* ----------------------------------------------------- invariant layer */

struct eqr_vn_invariant {
    vn_dir_layer d;
};

eqr_vn_invariant *eqr_vn_invariant_create(eqr_ctx *ctx, const char *name, int channels) {
    vn_dir_layer *d = dir_layer_create(ctx, "eqr_vn_invariant_create", name, channels, 1);
    return (eqr_vn_invariant *)d;
}

eqr_tensor *eqr_vn_invariant_forward(eqr_ctx *ctx, eqr_vn_invariant *layer, eqr_tensor *x) {
    if (!eqr__vn_forward_ok(ctx, "eqr_vn_invariant_forward", layer, x)) return NULL;
    int64_t C = layer->d.channels;
    eqr_tensor *x4 = eqr__vn_view4(ctx, "eqr_vn_invariant_forward", x, (int)C);
    if (!x4) return NULL;
    int64_t N = x4->shape[0], P = x4->shape[3];
    int64_t fs[3] = {N, C, 3 * P}, zs[5] = {N, 1, 3, 3, P}, xs[5] = {N, C, 1, 3, P};
    /* frame z[n, k, :, p] (3 equivariant vectors), y[n, c, k, p] = <x_c, z_k> */
    eqr_tensor *z = eqr_reshape(ctx, eqr__vn_mix(ctx, layer->d.w, eqr_reshape(ctx, x4, 3, fs)), 5, zs);
    eqr_tensor *prod = eqr_mul(ctx, eqr_reshape(ctx, x4, 5, xs), z); /* [N, C, 3(k), 3(i), P] */
    return eqr__vn_unview(ctx, eqr_sum(ctx, prod, 3, 0), x);
}

eqr_tensor *eqr_vn_invariant_weight(const eqr_vn_invariant *layer) {
    return layer ? layer->d.w : NULL;
}
void eqr_vn_invariant_destroy(eqr_vn_invariant *layer) { free(layer); }
