/* Group convolutions by the filter-transform method (see gconv.h): the bank
 * is one differentiable gather from the weight with indices built here once,
 * followed by one ordinary conv2d. */
#include "nn2d/equi_internal.h"
#include "equirelax/gconv.h"

#include <stdio.h>
#include <stdlib.h>

struct eqr_gconv {
    eqr_gconv_kind kind;
    eqr_group group;
    int order;               /* |G| */
    int in_ch, out_fields;   /* in_type->dim, Fout */
    int k;
    eqr_conv2d_geom geom;    /* stride, dilation >= 1 */
    const eqr_rep *in_type, *out_type;
    eqr_tensor *weight, *bias;
    int64_t bank_shape[4];
    int64_t *bank_idx;       /* bank element -> weight element */
    int64_t *bias_idx;       /* expanded bias element -> bias element */
    char name[EQR_NAME_LEN];
    int64_t warned[2];       /* input size last warned about ({0, 0}: none) */
};

/* Kind of in_type: LIFTING (all trivial), GROUP (all regular), or AUTO with
 * an error message in msg. */
static eqr_gconv_kind input_kind(const eqr_rep *in, char *msg, size_t n) {
    int ntriv = 0, nreg = 0;
    for (int i = 0; i < in->nparts; i++) {
        const eqr_rep_part *p = &in->parts[i];
        if (p->kind == EQR_PART_REGULAR)
            nreg++;
        else if (eqr__part_is_trivial(p))
            ntriv++;
        else {
            char b[48];
            snprintf(msg, n, "in_type part %d is %s: input fields must be all trivial (lifting "
                     "conv) or all regular (group conv)", i, eqr_irrep_name(p->irrep, b, sizeof b));
            return EQR_GCONV_AUTO;
        }
    }
    if (ntriv && nreg) {
        snprintf(msg, n, "in_type mixes %d trivial and %d regular parts: input fields must be "
                 "all trivial (lifting conv) or all regular (group conv)", ntriv, nreg);
        return EQR_GCONV_AUTO;
    }
    return nreg ? EQR_GCONV_GROUP : EQR_GCONV_LIFTING;
}

/* Checks of create that need no allocation; 1 if the layer can be built. */
static int check_types(eqr_ctx *ctx, const eqr_rep *in, const eqr_rep *out, int k,
                       eqr_gconv_kind want, eqr_gconv_kind *kind) {
    char gi[48], go[48];
    const eqr_group *G = &out->group;
    if (!eqr__same_group(&in->group, G)) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_gconv_create: in_type is over %s but out_type over %s",
                  eqr_group_name(&in->group, gi, sizeof gi), eqr_group_name(G, go, sizeof go));
        return 0;
    }
    eqr_group_name(G, go, sizeof go);
    if (!eqr_group_is_finite(G)) {
        eqr__fail(ctx, EQR_ERR_ARG,
                  "eqr_gconv_create: group %s is not finite; the filter-transform group conv "
                  "needs C1, C2, C4, D1, D2 or D4 (use a steerable convolution for %s)", go, go);
        return 0;
    }
    if (k < 1) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_gconv_create: kernel size %d must be >= 1", k);
        return 0;
    }
    for (int i = 0; i < eqr_group_order(G); i++) {
        eqr_gelem g = eqr_group_element(G, i);
        if (!eqr_grid_exact(k, k, g)) {
            eqr__fail(ctx, EQR_ERR_ARG,
                      "eqr_gconv_create: group %s is not exact on the pixel grid (its rotation by "
                      "%.4g degrees does not map pixel centres onto pixel centres); the "
                      "filter-transform group conv supports C1, C2, C4, D1, D2, D4 only: use a "
                      "steerable convolution for %s", go, g.angle * 180.0 / 3.14159265358979323846,
                      go);
            return 0;
        }
    }
    for (int i = 0; i < out->nparts; i++)
        if (out->parts[i].kind != EQR_PART_REGULAR) {
            char b[48];
            eqr__fail(ctx, EQR_ERR_ARG,
                      "eqr_gconv_create: out_type part %d is %s: a group conv produces regular "
                      "fields only", i, eqr_irrep_name(out->parts[i].irrep, b, sizeof b));
            return 0;
        }
    char msg[256];
    *kind = input_kind(in, msg, sizeof msg);
    if (*kind == EQR_GCONV_AUTO) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_gconv_create: %s", msg);
        return 0;
    }
    if (want != EQR_GCONV_AUTO && want != *kind) {
        eqr__fail(ctx, EQR_ERR_ARG,
                  want == EQR_GCONV_LIFTING
                      ? "eqr_gconv_create: a lifting conv needs trivial input fields, but in_type "
                        "has regular fields (use a group conv)"
                      : "eqr_gconv_create: a group conv needs regular input fields, but in_type "
                        "has trivial fields (use a lifting conv)");
        return 0;
    }
    return 1;
}

/* Gather indices of the bank and the expanded bias (see gconv.h):
 *   lifting: bank[(fo*G + h)*Cin + c][q]          = W[fo][c][src_h(q)]
 *   group:   bank[(fo*G + h)*Fin*G + fi*G + s][q] = W[fo][fi][perm_h(s)][src_h(q)]
 * where src_h(q) = h^-1 q is the grid map of h on the k x k filter grid and
 * perm_h(s) = index(h^-1 s) the regular permutation. */
static int build_indices(eqr_ctx *ctx, eqr_gconv *L) {
    const int G = L->order, k = L->k, kk = k * k, F = L->out_fields, C = L->in_ch;
    const int group = L->kind == EQR_GCONV_GROUP, fin = group ? C / G : C;
    int64_t nbank = (int64_t)F * G * C * kk;
    L->bank_idx = malloc((size_t)nbank * sizeof(int64_t));
    L->bias_idx = malloc((size_t)F * G * sizeof(int64_t));
    int *perm = malloc((size_t)G * sizeof(int));
    if (!L->bank_idx || !L->bias_idx || !perm) {
        free(perm);
        eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_gconv_create: out of memory for the gather indices");
        return 0;
    }
    for (int h = 0; h < G; h++) {
        eqr_gelem g = eqr_group_element(&L->group, h);
        eqr_grid_map *m = eqr_grid_map_create(ctx, k, k, g);
        if (!m) {
            free(perm);
            return 0;
        }
        if (eqr_regular_perm(&L->group, g, perm) != G) {
            eqr_grid_map_destroy(m);
            free(perm);
            eqr__fail(ctx, EQR_ERR_ARG, "eqr_gconv_create: no regular permutation for element %d", h);
            return 0;
        }
        for (int fo = 0; fo < F; fo++) {
            L->bias_idx[fo * G + h] = fo;
            int64_t *row = L->bank_idx + (int64_t)(fo * G + h) * C * kk;
            for (int c = 0; c < C; c++) {
                /* weight element of (fo, input channel c) at tap 0 */
                int64_t base = group ? (((int64_t)fo * fin + c / G) * G + perm[c % G]) * kk
                                     : ((int64_t)fo * fin + c) * kk;
                for (int q = 0; q < kk; q++) row[(int64_t)c * kk + q] = base + m->src[q];
            }
        }
        eqr_grid_map_destroy(m);
    }
    free(perm);
    return 1;
}

eqr_gconv *eqr_gconv_create(eqr_ctx *ctx, const char *name, const eqr_rep *in_type,
                            const eqr_rep *out_type, int k, const eqr_gconv_opts *opts) {
    if (!ctx || ctx->status != EQR_OK) return NULL;
    if (!in_type || !out_type) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_gconv_create: in_type and out_type must not be NULL");
        return NULL;
    }
    if (!eqr__layer_name_ok(ctx, "eqr_gconv_create", name, ".weight")) return NULL;
    eqr_gconv_opts o = opts ? *opts : (eqr_gconv_opts){0};
    static const char *const suffixes[2] = {".weight", ".bias"};
    if (!eqr__param_names_free(ctx, "eqr_gconv_create", name, o.no_bias ? 1 : 2, suffixes))
        return NULL;
    if (o.kind != EQR_GCONV_AUTO && o.kind != EQR_GCONV_LIFTING && o.kind != EQR_GCONV_GROUP) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_gconv_create(%s): unknown kind %d", name, (int)o.kind);
        return NULL;
    }
    eqr_gconv_kind kind;
    if (!eqr__conv_geom_fill(ctx, "eqr_gconv_create", &o.geom) || !check_types(ctx, in_type, out_type, k, o.kind, &kind))
        return NULL;

    eqr_gconv *L = eqr__calloc(ctx, "eqr_gconv_create", 1, sizeof *L);
    if (!L) return NULL;
    L->kind = kind;
    L->group = out_type->group;
    L->order = eqr_group_order(&L->group);
    L->in_ch = in_type->dim;
    L->out_fields = out_type->dim / L->order;
    L->k = k;
    L->geom = o.geom;
    L->in_type = in_type;
    L->out_type = out_type;
    snprintf(L->name, sizeof L->name, "%s", name);
    L->bank_shape[0] = (int64_t)L->out_fields * L->order;
    L->bank_shape[1] = L->in_ch;
    L->bank_shape[2] = L->bank_shape[3] = k;
    if (!build_indices(ctx, L)) {
        eqr_gconv_destroy(L);
        return NULL;
    }

    char pname[EQR_NAME_LEN];
    const int G = L->order;
    int64_t ws[5] = {L->out_fields, kind == EQR_GCONV_GROUP ? L->in_ch / G : L->in_ch, G, k, k};
    int wdim = 5;
    if (kind == EQR_GCONV_LIFTING) {
        ws[2] = ws[3] = k;
        wdim = 4;
    }
    snprintf(pname, sizeof pname, "%s.weight", name);
    L->weight = eqr_param_create(ctx, pname, wdim, ws, 0);
    if (L->weight && !o.no_bias) {
        int64_t bs[1] = {L->out_fields};
        snprintf(pname, sizeof pname, "%s.bias", name);
        L->bias = eqr_param_create(ctx, pname, 1, bs, EQR_PARAM_NO_DECAY);
    }
    if (!L->weight || (!o.no_bias && !L->bias)) {
        eqr_gconv_destroy(L);
        return NULL;
    }
    /* fan_in of one expanded output channel: in channels * k^2, which is what
     * the weight's shape [Fout, Cin, k, k] / [Fout, Fin, G, k, k] gives. */
    const float gain = o.init_gain > 0 ? o.init_gain : 1.41421356237f;
    if (eqr_param_init_kaiming_normal(ctx, L->weight, gain) != EQR_OK) {
        eqr_gconv_destroy(L);
        return NULL;
    }
    /* size-dependent inexactness is only known at the forward */
    eqr__conv_warn_never_exact(ctx, "eqr_gconv_create", name, &L->group, &L->geom);
    return L;
}

eqr_tensor *eqr_gconv_filter_bank(eqr_ctx *ctx, eqr_gconv *layer) {
    if (!ctx || ctx->status != EQR_OK) return NULL;
    if (!layer) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_gconv_filter_bank: layer is NULL");
        return NULL;
    }
    /* indices built by build_indices, in range by construction */
    return eqr__gather(ctx, layer->weight, layer->bank_idx, 4, layer->bank_shape);
}

eqr_tensor *eqr_gconv_bias_vector(eqr_ctx *ctx, eqr_gconv *layer) {
    if (!ctx || ctx->status != EQR_OK) return NULL;
    if (!layer) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_gconv_bias_vector: layer is NULL");
        return NULL;
    }
    if (!layer->bias) return NULL;
    int64_t s[1] = {layer->bank_shape[0]};
    return eqr__gather(ctx, layer->bias, layer->bias_idx, 1, s);
}

eqr_tensor *eqr_gconv_forward(eqr_ctx *ctx, eqr_gconv *layer, eqr_tensor *x) {
    if (!eqr__ok(ctx, 2, layer, x)) return NULL;
    if (x->ndim != 4 || x->shape[1] != layer->in_ch) {
        char bx[EQR_SHAPE_BUF], gn[48];
        eqr__fail(ctx, EQR_ERR_SHAPE,
                  "eqr_gconv_forward(%s): this %s %s conv expects input [N,%d,H,W] (%s fields of "
                  "in_type), got %s",
                  layer->name, eqr_group_name(&layer->group, gn, sizeof gn),
                  layer->kind == EQR_GCONV_LIFTING ? "lifting" : "group", layer->in_ch,
                  layer->kind == EQR_GCONV_LIFTING ? "trivial" : "regular", EQR_SHAPE(x, bx));
        return NULL;
    }
    eqr__gconv_watch_input(ctx, "eqr_gconv_forward", layer, x->shape[2], x->shape[3]);
    eqr_tensor *bank = eqr_gconv_filter_bank(ctx, layer);
    eqr_tensor *b = layer->bias ? eqr_gconv_bias_vector(ctx, layer) : NULL;
    if (!bank || (layer->bias && !b)) return NULL;
    return eqr_conv2d(ctx, x, bank, b, &layer->geom);
}

void eqr__gconv_watch_input(eqr_ctx *ctx, const char *fn, eqr_gconv *layer, int64_t h,
                            int64_t w) {
    eqr__conv_watch_input(ctx, fn, layer->name, &layer->group, &layer->geom, layer->k, h, w,
                          layer->warned);
}

eqr_status eqr_gconv_export(eqr_ctx *ctx, const eqr_gconv *layer, float *weight, float *bias) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!layer || !weight)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_gconv_export: layer and weight must not be NULL");
    const float *w = layer->weight->data;
    int64_t n = layer->bank_shape[0] * layer->bank_shape[1] * layer->bank_shape[2] *
                layer->bank_shape[3];
    for (int64_t i = 0; i < n; i++) weight[i] = w[layer->bank_idx[i]];
    if (bias)
        for (int64_t i = 0; i < layer->bank_shape[0]; i++)
            bias[i] = layer->bias ? layer->bias->data[layer->bias_idx[i]] : 0.0f;
    return EQR_OK;
}

const int64_t *eqr__gconv_bank_index(const eqr_gconv *layer) {
    return layer ? layer->bank_idx : NULL;
}

int eqr_gconv_exact_on(const eqr_gconv *layer, int h, int w) {
    return layer ? eqr__conv_exact_on(&layer->group, &layer->geom, layer->k, h, w) : 0;
}

eqr_gconv_kind eqr_gconv_get_kind(const eqr_gconv *layer) {
    return layer ? layer->kind : EQR_GCONV_AUTO;
}
const eqr_group *eqr_gconv_group(const eqr_gconv *layer) { return layer ? &layer->group : NULL; }
const eqr_rep *eqr_gconv_in_type(const eqr_gconv *layer) { return layer ? layer->in_type : NULL; }
const eqr_rep *eqr_gconv_out_type(const eqr_gconv *layer) { return layer ? layer->out_type : NULL; }
eqr_tensor *eqr_gconv_weight(const eqr_gconv *layer) { return layer ? layer->weight : NULL; }
eqr_tensor *eqr_gconv_bias(const eqr_gconv *layer) { return layer ? layer->bias : NULL; }
const eqr_conv2d_geom *eqr_gconv_geom(const eqr_gconv *layer) { return layer ? &layer->geom : NULL; }
int eqr_gconv_kernel_size(const eqr_gconv *layer) { return layer ? layer->k : 0; }

void eqr_gconv_bank_shape(const eqr_gconv *layer, int64_t shape[4]) {
    for (int i = 0; i < 4; i++) shape[i] = layer ? layer->bank_shape[i] : 0;
}

void eqr_gconv_destroy(eqr_gconv *layer) {
    if (!layer) return;
    free(layer->bank_idx);
    free(layer->bias_idx);
    free(layer);
}
