/* Equivariant batch normalisation on field types. Each stat group is a run of
 * consecutive channels sharing one mean (centred groups: trivial channels and
 * regular fields) or none (irrep fields, normalised by their mean square),
 * one variance and one scale; see include/equirelax/equi_layers.h. The
 * kernel (eqr__bn_apply, equi_internal.h) only sees the group table, so the
 * irreps batch norm (nn3d/irreps_norm.c) runs on it too. */
#include "equi_internal.h"
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

eqr_tensor *eqr__param_filled(eqr_ctx *ctx, const char *name, const char *suffix, int64_t n,
                              unsigned flags, float fill) {
    char pname[EQR_NAME_LEN];
    snprintf(pname, sizeof pname, "%s.%s", name, suffix);
    eqr_tensor *t = eqr_param_new(ctx, pname, 1, &n, flags);
    if (t) eqr_tensor_fill(t, fill);
    return t;
}

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
        const bn_group *g = &l->grp[s];
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
        const bn_group *g = &l->grp[s];
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
    eqr_node *nd = eqr__record(ctx, out, group_bn_backward, 3, in);
    if (nd) {
        nd->saved = sv;
        nd->i[0] = N;
        nd->i[1] = HW;
        nd->i[2] = D;
        nd->i[3] = training;
    }
    return out;
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
