/* Relaxation of irreps linear layers (relax.h): the relaxed-layer
 * kind "irreps_linear" (relax_internal.h). The dense term, its penalties and
 * their gradients are the Lie-term machinery of eqr_relax_linear
 * (relax_linear.c) run on the irreps' generators; this file adds the
 * generators, the equivariant layer around the term and the Schur fold,
 * and the kind "tp": the same term on x1 beside a tensor product. */
#include "relax/relax_internal.h"
#include "nn3d/irreps_internal.h"
#include "groups/o3_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Both kinds' impl starts with the term's generators (3 so(3) generators
 * + the parity term S/2): the defect, ||W_r x|| and destroy are shared. */
typedef struct lie_impl {
    eqr__lie_pair *lie;
} lie_impl;

static eqr_tensor *lie_impl_defect(eqr_ctx *ctx, eqr_rlayer *l) {
    if (!eqr__ok(ctx, 1, l)) return NULL;
    return eqr__lie_defect(ctx, l, ((lie_impl *)l->impl)->lie);
}
static double lie_impl_wr_norm(eqr_ctx *ctx, eqr_rlayer *l, eqr_tensor *x) {
    const int64_t d = ((lie_impl *)l->impl)->lie->in_dim, fs[2] = {x->numel / d, d};
    return eqr__norm_of(ctx, eqr_linear(ctx, eqr_reshape(ctx, x, 2, fs), l->wr, NULL));
}
static void lie_impl_destroy(void *impl) {
    if (impl) free(((lie_impl *)impl)->lie);
    free(impl);
}

typedef struct irr_impl {
    lie_impl base;
    eqr_irreps_linear *layer;
} irr_impl;

static eqr_tensor *irr_forward(eqr_ctx *ctx, eqr_rlayer *l, eqr_tensor *x) {
    if (!eqr__ok(ctx, 2, l, x)) return NULL;
    irr_impl *im = l->impl;
    eqr_tensor *y = eqr_irreps_linear_forward(ctx, im->layer, x); /* checks x's shape */
    if (!y || !eqr__rlayer_active(ctx, l)) return y;
    eqr_tensor *t = eqr__lie_forward(ctx, l, im->base.lie, x);
    if (!t) return NULL;
    return eqr__rlayer_theta(l) != 0.0f ? eqr_add(ctx, y, t) : y;
}

/* Orthogonal split: per path and copies, the d x d block's part tr(B)/d I
 * moves to W (as c W I, so W += theta tr(B) / (d c)) and leaves W_r. */
static eqr_status irr_split(eqr_ctx *ctx, eqr_rlayer *l, float theta) {
    (void)ctx;
    const eqr_irreps_linear *L = ((irr_impl *)l->impl)->layer;
    float *wr = l->wr->data, *w = L->w->data;
    for (int q = 0; q < L->npaths; q++) {
        const lin_path *p = &L->p[q];
        const int d = 2 * L->in.e[p->a].l + 1, mu = L->in.e[p->a].mul, mw = L->out.e[p->b].mul;
        const int64_t oa = eqr_irreps_offset(&L->in, p->a), ob = eqr_irreps_offset(&L->out, p->b);
        for (int ww = 0; ww < mw; ww++)
            for (int u = 0; u < mu; u++) {
                float *blk = wr + (ob + ww * d) * L->din + oa + u * d;
                double tr = 0;
                for (int m = 0; m < d; m++) tr += blk[m * L->din + m];
                w[p->woff + ww * mu + u] += (float)((double)theta * tr / ((double)d * p->c));
                const float t = (float)(tr / d);
                for (int m = 0; m < d; m++) blk[m * L->din + m] -= t;
            }
    }
    return EQR_OK;
}

/* ||linear(x)|| and ||W_r x|| (telemetry). */
static eqr_status irr_probe(eqr_ctx *ctx, eqr_rlayer *l, eqr_tensor *x, double *eq, double *wr) {
    *eq = eqr__norm_of(ctx, eqr_irreps_linear_forward(ctx, ((irr_impl *)l->impl)->layer, x));
    *wr = lie_impl_wr_norm(ctx, l, x);
    return ctx->status;
}

static const eqr_rlayer_ops irr_ops = {.kind = "irreps_linear", .forward = irr_forward,
                                       .defect = lie_impl_defect, .fold = irr_split,
                                       .split = irr_split, .probe = irr_probe,
                                       .destroy = lie_impl_destroy};

/* The four "generators" of one side: so(3)'s three, then S/2 (S the
 * parity signs), whose commutator term is the parity defect. */
static float *side_generators(eqr_ctx *ctx, const eqr_irreps *ir) {
    const int64_t dim = eqr_irreps_dim(ir);
    float *g = malloc(sizeof(float) * (size_t)(4 * dim * dim));
    if (!g) {
        eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_relax_irreps_linear: out of memory for the generators");
        return NULL;
    }
    if (eqr_irreps_lie_generators(ctx, ir, g)) {
        free(g);
        return NULL;
    }
    float *s = g + 3 * dim * dim;
    memset(s, 0, sizeof(float) * (size_t)(dim * dim));
    for (int i = 0; i < ir->n; i++)
        for (int64_t k = eqr_irreps_offset(ir, i); k < eqr_irreps_offset(ir, i + 1); k++)
            s[k * dim + k] = 0.5f * (float)ir->e[i].p;
    return g;
}

/* The Lie pair of a dense W_r from irreps in to irreps out (both sides'
 * generators); NULL with the error recorded. */
static eqr__lie_pair *irreps_lie_pair(eqr_ctx *ctx, const char *fn, const eqr_irreps *in,
                                      const eqr_irreps *out) {
    const int64_t din = eqr_irreps_dim(in), dout = eqr_irreps_dim(out);
    if (din > 4096 || dout > 4096) { /* W_r and 4 generators per side are dense */
        eqr__fail(ctx, EQR_ERR_ARG, "%s: dims %lld -> %lld too large for a dense W_r (<= 4096)", fn,
                  (long long)din, (long long)dout);
        return NULL;
    }
    float *gi = side_generators(ctx, in);
    float *go = gi ? side_generators(ctx, out) : NULL;
    eqr__lie_pair *p = NULL;
    if (go) {
        eqr_lie_rep rin = {(int)din, 4, gi}, rout = {(int)dout, 4, go};
        p = eqr__lie_pair_new(ctx, fn, &rin, &rout);
    }
    free(gi);
    free(go);
    return p;
}

eqr_rlayer *eqr_relax_irreps_linear(eqr_ctx *ctx, eqr_relax *relax, const char *name,
                                    eqr_irreps_linear *layer, const eqr_rlayer_opts *opts) {
    static const char fn[] = "eqr_relax_irreps_linear";
    if (!ctx || ctx->status != EQR_OK) return NULL;
    if (!relax || !layer) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: relaxation or layer is NULL", fn);
        return NULL;
    }
    irr_impl *im = eqr__calloc(ctx, fn, 1, sizeof *im);
    if (!im) return NULL;
    im->layer = layer;
    if (!(im->base.lie = irreps_lie_pair(ctx, fn, &layer->in, &layer->out))) {
        free(im);
        return NULL;
    }
    int64_t shape[2] = {layer->dout, layer->din};
    return eqr__rlayer_new(ctx, relax, name, &irr_ops, im, 2, shape, opts);
}

/* ------------------------------------------------ relaxed tensor product */

/* y = tp(x1, x2) + theta W_r x1: the term is the irreps-linear one on x1's
 * side (same generators, penalties and defect), the equivariant part the
 * product. */
typedef struct tpr_impl {
    lie_impl base;
    eqr_tp *tp;
    eqr_tensor *last_x2; /* x2 of the last forward (with the layer's last_x) */
} tpr_impl;

static eqr_tensor *tpr_forward(eqr_ctx *ctx, eqr_rlayer *l, eqr_tensor *x) {
    (void)x;
    eqr__fail(ctx, EQR_ERR_ARG, "eqr_rlayer_forward: relaxed tensor product '%s' takes (x1, x2): "
              "use eqr_rlayer_forward_tp or its module's eqr_module_forward_n", l->name);
    return NULL;
}

/* Refused: see eqr_relax_tp in relax.h. */
static eqr_status tpr_fold(eqr_ctx *ctx, eqr_rlayer *l, float theta) {
    (void)theta;
    return eqr__fail(ctx, EQR_ERR_ARG,
                     "eqr_relax_project: relaxed tensor product '%s' cannot be folded: its term "
                     "theta W_r x1 is linear in x1 alone and the product is bilinear in (x1, x2), "
                     "so no weights of it equal the term's equivariant part; project with "
                     "EQR_PROJECT_DROP (or set this layer's theta to 0 first)",
                     l->name);
}

static eqr_status tpr_probe(eqr_ctx *ctx, eqr_rlayer *l, eqr_tensor *x, double *eq, double *wr) {
    tpr_impl *im = l->impl;
    *eq = im->last_x2 ? eqr__norm_of(ctx, eqr_tp_forward(ctx, im->tp, x, im->last_x2, NULL)) : NAN;
    *wr = lie_impl_wr_norm(ctx, l, x);
    return ctx->status;
}

static const eqr_rlayer_ops tpr_ops = {.kind = "tp", .forward = tpr_forward,
                                       .defect = lie_impl_defect, .fold = tpr_fold,
                                       .probe = tpr_probe, .destroy = lie_impl_destroy};

eqr_tensor *eqr_rlayer_forward_tp(eqr_ctx *ctx, eqr_rlayer *l, eqr_tensor *x1, eqr_tensor *x2) {
    if (!eqr__ok(ctx, 2, x1, x2)) return NULL;
    if (!l || l->ops != &tpr_ops) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_rlayer_forward_tp: layer %s%s%s is not a relaxed tensor "
                  "product", l ? "'" : "", l ? l->name : "NULL", l ? "'" : "");
        return NULL;
    }
    tpr_impl *im = l->impl;
    l->last_x = x1;
    l->last_x_step = ctx->step_id;
    im->last_x2 = x2;
    eqr_tensor *y = eqr_tp_forward(ctx, im->tp, x1, x2, NULL); /* checks the shapes */
    if (!y || !eqr__rlayer_active(ctx, l)) return y;
    eqr_tensor *t = eqr__lie_forward(ctx, l, im->base.lie, x1);
    if (!t) return NULL;
    return eqr__rlayer_theta(l) != 0.0f ? eqr_add(ctx, y, t) : y;
}

eqr_rlayer *eqr_relax_tp(eqr_ctx *ctx, eqr_relax *relax, const char *name, eqr_tp *tp,
                         const eqr_rlayer_opts *opts) {
    static const char fn[] = "eqr_relax_tp";
    if (!ctx || ctx->status != EQR_OK) return NULL;
    if (!relax || !tp) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: relaxation or tensor product is NULL", fn);
        return NULL;
    }
    if (!eqr_tp_weight(tp)) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: '%s': the product has external (per-sample) weights; "
                  "only a product with internal weights can be relaxed", fn, name ? name : "?");
        return NULL;
    }
    const eqr_irreps *in = eqr_tp_irreps_in1(tp), *out = eqr_tp_irreps_out(tp);
    const int64_t din = eqr_irreps_dim(in), dout = eqr_irreps_dim(out);
    tpr_impl *im = eqr__calloc(ctx, fn, 1, sizeof *im);
    if (!im) return NULL;
    im->tp = tp;
    if (!(im->base.lie = irreps_lie_pair(ctx, fn, in, out))) {
        free(im);
        return NULL;
    }
    int64_t shape[2] = {dout, din};
    return eqr__rlayer_new(ctx, relax, name, &tpr_ops, im, 2, shape, opts);
}
