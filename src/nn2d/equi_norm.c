/* Equivariant batch normalisation on field types. Each stat group is a run of
 * consecutive channels sharing one mean (centred groups: trivial channels and
 * regular fields) or none (irrep fields, normalised by their mean square),
 * one variance and one scale; see include/equirelax/equi_layers.h. The
 * kernel (eqr__bn_apply, ops/bn_internal.h) only sees the group table, so the
 * irreps batch norm (nn3d/irreps_norm.c) runs on it too. */
#include "nn2d/equi_internal.h"
#include "ops/bn_internal.h"
#include "equirelax/equi_layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef eqr__bn_group bn_group;

struct eqr_field_bn {
    const eqr_rep *type;
    int min_centred; /* channels of the smallest centred group (0 if none) */
    bn_group *grp;
    int training;
    eqr__bn bn; /* groups, options and parameters for the kernel */
};


eqr_field_bn *eqr_field_bn_create(eqr_ctx *ctx, const char *name, const eqr_rep *in_type,
                                  const eqr_field_bn_opts *opts) {
    if (!eqr__ok(ctx, 0)) return NULL;
    if (!in_type) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_field_bn_create: NULL input type");
        return NULL;
    }
    if (!eqr__layer_name_ok(ctx, "eqr_field_bn_create", name, ".running_mean")) return NULL;
    eqr_field_bn_opts o = opts ? *opts : (eqr_field_bn_opts){0};
    if (o.eps == 0.0f) o.eps = 1e-5f;
    if (o.momentum == 0.0f) o.momentum = 0.1f;
    if (!(o.eps > 0.0f) || !isfinite(o.eps) || !(o.momentum > 0.0f && o.momentum <= 1.0f)) {
        eqr__fail(ctx, EQR_ERR_ARG,
                  "eqr_field_bn_create: need eps > 0 and momentum in (0, 1] (got %g, %g)",
                  (double)o.eps, (double)o.momentum);
        return NULL;
    }
    int S = 0, B = 0;
    for (int k = 0; k < in_type->nparts; k++) {
        const eqr_rep_part *p = &in_type->parts[k];
        int c = eqr__part_is_trivial(p) || p->kind == EQR_PART_REGULAR;
        S += p->mult;
        B += c ? p->mult : 0;
    }
    /* the parameters this layer registers, in an order where absent ones come last */
    const char *suffixes[4] = {".running_var", ".running_mean", ".weight", ".bias"};
    int nparams = 1 + (B > 0);
    if (!o.no_affine) {
        suffixes[nparams++] = ".weight";
        if (B > 0) suffixes[nparams++] = ".bias";
    }
    if (!eqr__param_names_free(ctx, "eqr_field_bn_create", name, nparams, suffixes)) return NULL;
    eqr_field_bn *l = calloc(1, sizeof *l);
    bn_group *grp = calloc((size_t)S, sizeof *grp);
    if (!l || !grp) {
        free(l);
        free(grp);
        eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_field_bn_create: out of memory");
        return NULL;
    }
    int s = 0, b = 0;
    for (int k = 0; k < in_type->nparts; k++) {
        const eqr_rep_part *p = &in_type->parts[k];
        int d = eqr_rep_part_dim(in_type, k), off = eqr_rep_part_offset(in_type, k);
        int c = eqr__part_is_trivial(p) || p->kind == EQR_PART_REGULAR;
        for (int m = 0; m < p->mult; m++, s++) {
            grp[s].off = off + m * d;
            grp[s].cnt = d;
            grp[s].centre = c ? b++ : -1;
            if (c && (l->min_centred == 0 || d < l->min_centred)) l->min_centred = d;
        }
    }
    l->type = in_type;
    l->grp = grp;
    l->training = 1;
    eqr__bn *bn = &l->bn;
    bn->grp = grp;
    bn->S = S;
    bn->B = B;
    bn->eps = o.eps;
    bn->momentum = o.momentum;
    if (!o.no_affine) {
        bn->weight = eqr__param_filled(ctx, name, "weight", S, EQR_PARAM_NO_DECAY, 1.0f);
        if (B > 0) bn->bias = eqr__param_filled(ctx, name, "bias", B, EQR_PARAM_NO_DECAY, 0.0f);
    }
    if (B > 0) bn->rmean = eqr__param_filled(ctx, name, "running_mean", B, EQR_PARAM_BUFFER, 0.0f);
    bn->rvar = eqr__param_filled(ctx, name, "running_var", S, EQR_PARAM_BUFFER, 1.0f);
    if (ctx->status != EQR_OK) {
        eqr_field_bn_destroy(l);
        return NULL;
    }
    return l;
}

void eqr_field_bn_set_training(eqr_field_bn *l, int training) {
    if (l) l->training = training ? 1 : 0;
}
int eqr_field_bn_training(const eqr_field_bn *l) { return l ? l->training : 0; }
const eqr_rep *eqr_field_bn_out_type(const eqr_field_bn *l) { return l ? l->type : NULL; }
int eqr_field_bn_num_groups(const eqr_field_bn *l) { return l ? l->bn.S : 0; }
int eqr_field_bn_num_centred(const eqr_field_bn *l) { return l ? l->bn.B : 0; }
eqr_tensor *eqr_field_bn_weight(const eqr_field_bn *l) { return l ? l->bn.weight : NULL; }
eqr_tensor *eqr_field_bn_bias(const eqr_field_bn *l) { return l ? l->bn.bias : NULL; }
eqr_tensor *eqr_field_bn_running_mean(const eqr_field_bn *l) { return l ? l->bn.rmean : NULL; }
eqr_tensor *eqr_field_bn_running_var(const eqr_field_bn *l) { return l ? l->bn.rvar : NULL; }

void eqr_field_bn_destroy(eqr_field_bn *l) {
    if (!l) return;
    free(l->grp);
    free(l);
}

eqr_tensor *eqr_field_bn_forward(eqr_ctx *ctx, eqr_field_bn *l, eqr_tensor *x) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    if (!l) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_field_bn_forward: NULL layer");
        return NULL;
    }
    const int64_t D = l->type->dim;
    char bx[EQR_SHAPE_BUF];
    if (x->ndim < 2 || x->shape[1] != D) {
        eqr__fail(ctx, EQR_ERR_SHAPE,
                  "eqr_field_bn_forward: x %s must be [N,%lld,...] (input type dim %lld)",
                  EQR_SHAPE(x, bx), (long long)D, (long long)D);
        return NULL;
    }
    int64_t N = x->shape[0], HW = 1;
    for (int d = 2; d < x->ndim; d++) HW *= x->shape[d];
    const int training = l->training;
    if (training && l->bn.B > 0 && N * HW * l->min_centred < 2) {
        eqr__fail(ctx, EQR_ERR_SHAPE,
                  "eqr_field_bn_forward: training needs more than one value per centred group "
                  "(trivial channel or regular field), x is %s", EQR_SHAPE(x, bx));
        return NULL;
    }
    return eqr__bn_apply(ctx, &l->bn, x, N, D, HW, training);
}
