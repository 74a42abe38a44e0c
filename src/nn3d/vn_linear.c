/* VN-Linear: channel mixing of vector features (its relaxation is
 * relax/relax_vn.c). */
#include "nn3d/vn_internal.h"

#include <math.h>
#include <stdlib.h>

struct eqr_vn_linear {
    int c_in, c_out;
    eqr_tensor *w; /* "<name>.weight" [c_out, c_in] */
};

static const char *lin_suffixes[] = {".weight"};

eqr_vn_linear *eqr_vn_linear_create(eqr_ctx *ctx, const char *name, int c_in, int c_out) {
    static const char *fn = "eqr_vn_linear_create";
    int ch[2] = {c_in, c_out};
    if (!eqr__vn_create_ok(ctx, fn, name, 2, ch, 1, lin_suffixes)) return NULL;
    eqr_vn_linear *l = eqr__calloc(ctx, fn, 1, sizeof *l);
    if (!l) return NULL;
    int64_t s[2] = {c_out, c_in};
    l->c_in = c_in, l->c_out = c_out;
    l->w = eqr__param_filled(ctx, name, ".weight", 2, s, 0, 0.0f);
    if (!l->w) {
        free(l);
        return NULL;
    }
    eqr_tensor_normal(l->w, eqr_ctx_rng(ctx), 1.0f / sqrtf((float)c_in));
    return l;
}

eqr_tensor *eqr__vn_linear4(eqr_ctx *ctx, eqr_tensor *w, eqr_tensor *x4, int c_out) {
    int64_t N = x4->shape[0], P = x4->shape[3];
    int64_t fs[3] = {N, x4->shape[1], 3 * P}, os[4] = {N, c_out, 3, P};
    return eqr_reshape(ctx, eqr__vn_mix(ctx, w, eqr_reshape(ctx, x4, 3, fs)), 4, os);
}

eqr_tensor *eqr_vn_linear_forward(eqr_ctx *ctx, eqr_vn_linear *layer, eqr_tensor *x) {
    if (!eqr__vn_forward_ok(ctx, "eqr_vn_linear_forward", layer, x)) return NULL;
    eqr_tensor *x4 = eqr__vn_view4(ctx, "eqr_vn_linear_forward", x, layer->c_in);
    if (!x4) return NULL;
    return eqr__vn_unview(ctx, eqr__vn_linear4(ctx, layer->w, x4, layer->c_out), x);
}

eqr_tensor *eqr_vn_linear_weight(const eqr_vn_linear *layer) { return layer ? layer->w : NULL; }
int eqr_vn_linear_in_channels(const eqr_vn_linear *layer) { return layer ? layer->c_in : 0; }
int eqr_vn_linear_out_channels(const eqr_vn_linear *layer) { return layer ? layer->c_out : 0; }
void eqr_vn_linear_destroy(eqr_vn_linear *layer) { free(layer); }
