/* Steerable convolution layer: weights -> filter bank by the precomputed
 * basis (one differentiable op, GEMMs over the basis blocks), then one
 * eqr_conv2d. See include/equirelax/steerable.h. */
#include "nn2d/steer_internal.h"
#include "equirelax/steerable.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>


struct eqr_steer_conv {
    eqr_steer_basis *basis;
    const eqr_rep *in_type, *out_type;
    eqr_group G;
    int k, in_dim, out_dim;
    eqr_conv2d_geom geom;
    eqr_tensor *weight, *bias;
    int64_t *bias_idx; /* [out_dim]: bias entry of each channel, -1 for none */
    char name[EQR_NAME_LEN];
    int64_t warned[2]; /* input size last warned about ({0, 0}: none) */
};

void eqr_steer_conv_destroy(eqr_steer_conv *layer) {
    if (!layer) return;
    eqr_steer_basis_destroy(layer->basis);
    free(layer->bias_idx);
    free(layer);
}

eqr_steer_conv *eqr_steer_conv_create(eqr_ctx *ctx, const char *name, const eqr_rep *in_type,
                                      const eqr_rep *out_type, int k,
                                      const eqr_steer_conv_opts *opts) {
    static const char *fn = "eqr_steer_conv_create";
    if (!eqr__ok(ctx, 0)) return NULL;
    if (!eqr__layer_name_ok(ctx, fn, name, ".weight")) return NULL;
    eqr_steer_conv_opts o = {0};
    if (opts) o = *opts;
    eqr_conv2d_geom g = o.geom;
    if (!eqr__conv_geom_fill(ctx, fn, &g)) return NULL;
    float gain = o.init_gain != 0 ? o.init_gain : sqrtf(2.0f);

    eqr_steer_basis *B = eqr__steer_basis_build(ctx, fn, in_type, out_type, k, &o.basis);
    if (!B) return NULL;
    if (eqr_steer_basis_num_elements(B) == 0) {
        char gname[32];
        eqr__fail(ctx, EQR_ERR_ARG,
                  "%s(%s): no equivariant %dx%d kernel exists from in_type to out_type over %s "
                  "(basis is empty; try a larger kernel or other field types)",
                  fn, name, k, k, eqr_group_name(&in_type->group, gname, sizeof gname));
        eqr_steer_basis_destroy(B);
        return NULL;
    }
    eqr_steer_conv *L = calloc(1, sizeof *L);
    if (!L) {
        eqr_steer_basis_destroy(B);
        eqr__fail(ctx, EQR_ERR_NOMEM, "%s(%s): out of memory", fn, name);
        return NULL;
    }
    L->basis = B;
    L->in_type = in_type;
    L->out_type = out_type;
    L->G = in_type->group;
    L->k = k;
    L->in_dim = in_type->dim;
    L->out_dim = out_type->dim;
    L->geom = g;
    snprintf(L->name, sizeof L->name, "%s", name);

    /* bias: one per trivial or regular output field */
    int64_t nb = 0;
    for (int p = 0; p < out_type->nparts; p++) {
        const eqr_rep_part *pt = &out_type->parts[p];
        if (pt->kind == EQR_PART_REGULAR || eqr__part_is_trivial(pt)) nb += pt->mult;
    }
    if (o.no_bias) nb = 0;
    static const char *const suffixes[2] = {".weight", ".bias"};
    if (!eqr__param_names_free(ctx, fn, name, nb > 0 ? 2 : 1, suffixes)) goto fail;

    char pname[EQR_NAME_LEN];
    int64_t nw = eqr_steer_basis_num_elements(B);
    snprintf(pname, sizeof pname, "%s.weight", name);
    L->weight = eqr_param_create(ctx, pname, 1, &nw, 0);
    if (!L->weight) goto fail;
    /* Orthonormal basis: sum over the bank of Var = s^2 * size, so this s
     * gives each output channel on average a summed tap variance of gain^2. */
    eqr_tensor_normal(L->weight, eqr_ctx_rng(ctx), gain * sqrtf((float)L->out_dim / (float)nw));

    if (nb > 0) {
        L->bias_idx = malloc((size_t)L->out_dim * sizeof *L->bias_idx);
        if (!L->bias_idx) {
            eqr__fail(ctx, EQR_ERR_NOMEM, "%s(%s): out of memory", fn, name);
            goto fail;
        }
        int64_t c = 0, f = 0;
        for (int p = 0; p < out_type->nparts; p++) {
            const eqr_rep_part *pt = &out_type->parts[p];
            int reg = pt->kind == EQR_PART_REGULAR;
            int fdim = reg ? eqr_group_order(&L->G) : pt->irrep.dim;
            int carries = reg || eqr__part_is_trivial(pt);
            for (int m = 0; m < pt->mult; m++) {
                for (int e = 0; e < fdim; e++) L->bias_idx[c++] = carries ? f : -1;
                if (carries) f++;
            }
        }
        snprintf(pname, sizeof pname, "%s.bias", name);
        L->bias = eqr_param_create(ctx, pname, 1, &nb, EQR_PARAM_NO_DECAY);
        if (!L->bias) goto fail;
    }
    /* size-dependent inexactness is only known at the forward */
    eqr__conv_warn_never_exact(ctx, fn, name, &L->G, &L->geom);
    return L;
fail:
    eqr_steer_conv_destroy(L);
    return NULL;
}

/* ------------------------------------------------------- the expansion op */

static void expand_backward(eqr_ctx *ctx, eqr_node *n) {
    const eqr_steer_basis *B = n->saved;
    eqr_tensor *w = n->in[0];
    if (!eqr__needs_grad(w)) return;
    float *g = eqr__grad(ctx, w);
    float *tmp = g ? eqr__arena_alloc(ctx, (size_t)w->numel * sizeof *tmp) : NULL;
    if (!tmp) return;
    eqr_steer_basis_project(B, n->out->grad, tmp);
    for (int64_t i = 0; i < w->numel; i++) g[i] += tmp[i];
}

void eqr_steer_conv_bank_shape(const eqr_steer_conv *layer, int64_t shape[4]) {
    if (!shape) return;
    shape[0] = layer ? layer->out_dim : 0;
    shape[1] = layer ? layer->in_dim : 0;
    shape[2] = shape[3] = layer ? layer->k : 0;
}

eqr_tensor *eqr_steer_conv_filter_bank(eqr_ctx *ctx, eqr_steer_conv *layer) {
    if (!eqr__ok(ctx, 0)) return NULL;
    if (!layer) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_steer_conv_filter_bank: layer is NULL");
        return NULL;
    }
    int64_t shape[4];
    eqr_steer_conv_bank_shape(layer, shape);
    eqr_tensor *out = eqr__tensor_empty(ctx, 4, shape);
    if (!out) return NULL;
    eqr_steer_basis_expand(layer->basis, layer->weight->data, out->data);
    eqr_node *n = eqr__record(ctx, out, expand_backward, 1, &layer->weight);
    if (n) n->saved = (void *)(uintptr_t)layer->basis; /* read-only in backward */
    return out;
}

eqr_tensor *eqr_steer_conv_bias_vector(eqr_ctx *ctx, eqr_steer_conv *layer) {
    if (!eqr__ok(ctx, 0)) return NULL;
    if (!layer) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_steer_conv_bias_vector: layer is NULL");
        return NULL;
    }
    if (!layer->bias) return NULL;
    int64_t n = layer->out_dim;
    return eqr__gather(ctx, layer->bias, layer->bias_idx, 1, &n); /* built at create */
}

eqr_tensor *eqr_steer_conv_forward(eqr_ctx *ctx, eqr_steer_conv *layer, eqr_tensor *x) {
    if (!eqr__ok(ctx, 2, layer, x)) return NULL;
    if (x->ndim != 4 || x->shape[1] != layer->in_dim) {
        char sb[EQR_SHAPE_BUF];
        eqr__fail(ctx, EQR_ERR_SHAPE,
                  "eqr_steer_conv_forward: x %s must be [N, %d, H, W] (in_type has %d channels)",
                  EQR_SHAPE(x, sb), layer->in_dim, layer->in_dim);
        return NULL;
    }
    eqr__steer_conv_watch_input(ctx, "eqr_steer_conv_forward", layer, x->shape[2], x->shape[3]);
    eqr_tensor *bank = eqr_steer_conv_filter_bank(ctx, layer);
    eqr_tensor *b = layer->bias ? eqr_steer_conv_bias_vector(ctx, layer) : NULL;
    if (!bank || (layer->bias && !b)) return NULL;
    return eqr_conv2d(ctx, x, bank, b, &layer->geom);
}

void eqr__steer_conv_watch_input(eqr_ctx *ctx, const char *fn, eqr_steer_conv *layer, int64_t h,
                                 int64_t w) {
    eqr__conv_watch_input(ctx, fn, layer->name, &layer->G, &layer->geom, layer->k, h, w,
                          layer->warned);
}

eqr_status eqr_steer_conv_export(eqr_ctx *ctx, const eqr_steer_conv *layer, float *weight,
                                 float *bias) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!layer || !weight)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_steer_conv_export: layer and weight must not be NULL");
    eqr_steer_basis_expand(layer->basis, layer->weight->data, weight);
    if (bias)
        for (int o = 0; o < layer->out_dim; o++)
            bias[o] = layer->bias && layer->bias_idx[o] >= 0 ? layer->bias->data[layer->bias_idx[o]] : 0.0f;
    return EQR_OK;
}

int eqr_steer_conv_exact_on(const eqr_steer_conv *layer, int h, int w) {
    return layer ? eqr__conv_exact_on(&layer->G, &layer->geom, layer->k, h, w) : 0;
}

/* ------------------------------------------------------------ accessors */

const eqr_steer_basis *eqr_steer_conv_basis(const eqr_steer_conv *layer) {
    return layer ? layer->basis : NULL;
}
const eqr_group *eqr_steer_conv_group(const eqr_steer_conv *layer) { return layer ? &layer->G : NULL; }
const eqr_rep *eqr_steer_conv_in_type(const eqr_steer_conv *layer) { return layer ? layer->in_type : NULL; }
const eqr_rep *eqr_steer_conv_out_type(const eqr_steer_conv *layer) {
    return layer ? layer->out_type : NULL;
}
eqr_tensor *eqr_steer_conv_weight(const eqr_steer_conv *layer) { return layer ? layer->weight : NULL; }
eqr_tensor *eqr_steer_conv_bias(const eqr_steer_conv *layer) { return layer ? layer->bias : NULL; }
const eqr_conv2d_geom *eqr_steer_conv_geom(const eqr_steer_conv *layer) {
    return layer ? &layer->geom : NULL;
}
int eqr_steer_conv_kernel_size(const eqr_steer_conv *layer) { return layer ? layer->k : 0; }
