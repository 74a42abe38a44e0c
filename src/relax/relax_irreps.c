/* Relaxation of irreps linear layers (relax.h): the relaxed-layer
 * kind "irreps_linear" (relax_internal.h). The dense term, its penalties and
 * their gradients are the Lie-term machinery of eqr_relax_linear
 * (relax_linear.c) run on the irreps' generators; this file adds the
 * generators, the equivariant layer around the term and the Schur fold. */
#include "relax/relax_internal.h"
#include "nn3d/irreps_internal.h"
#include "groups/o3_internal.h"

#include <stdlib.h>
#include <string.h>


typedef struct irr_impl {
    eqr_irreps_linear *layer;
    eqr__lie_pair *lie; /* 3 so(3) generators + the parity term S/2 */
} irr_impl;

static eqr_tensor *irr_forward(eqr_ctx *ctx, eqr_rlayer *l, eqr_tensor *x) {
    if (!eqr__ok(ctx, 2, l, x)) return NULL;
    irr_impl *im = l->impl;
    eqr_tensor *y = eqr_irreps_linear_forward(ctx, im->layer, x); /* checks x's shape */
    if (!y || !eqr__rlayer_active(ctx, l)) return y;
    eqr_tensor *t = eqr__lie_forward(ctx, l, im->lie, x);
    if (!t) return NULL;
    return eqr__rlayer_theta(l) != 0.0f ? eqr_add(ctx, y, t) : y;
}

static eqr_tensor *irr_defect(eqr_ctx *ctx, eqr_rlayer *l) {
    if (!eqr__ok(ctx, 1, l)) return NULL;
    return eqr__lie_defect(ctx, l, ((irr_impl *)l->impl)->lie);
}

/* Schur: per path (a, b) and copies (w, u), W[w][u] += theta tr(B) /
 * (d c_b) with B the d x d block of W_r (least squares by c I). */
static eqr_status irr_fold(eqr_ctx *ctx, eqr_rlayer *l, float theta) {
    (void)ctx;
    const eqr_irreps_linear *L = ((irr_impl *)l->impl)->layer;
    const float *wr = l->wr->data;
    float *w = L->w->data;
    for (int q = 0; q < L->npaths; q++) {
        const lin_path *p = &L->p[q];
        const int d = 2 * L->in.e[p->a].l + 1, mu = L->in.e[p->a].mul, mw = L->out.e[p->b].mul;
        const int64_t oa = eqr_irreps_offset(&L->in, p->a), ob = eqr_irreps_offset(&L->out, p->b);
        for (int ww = 0; ww < mw; ww++)
            for (int u = 0; u < mu; u++) {
                double tr = 0;
                for (int m = 0; m < d; m++) tr += wr[(ob + ww * d + m) * L->din + oa + u * d + m];
                w[p->woff + ww * mu + u] += (float)((double)theta * tr / ((double)d * p->c));
            }
    }
    return EQR_OK;
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

static void irr_destroy(void *impl) {
    irr_impl *im = impl;
    if (im) free(im->lie);
    free(im);
}

static const eqr_rlayer_ops irr_ops = {
    .kind = "irreps_linear",
    .forward = irr_forward,
    .defect = irr_defect,
    .fold = irr_fold,
    .split = irr_split,
    .destroy = irr_destroy,
};

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

eqr_rlayer *eqr_relax_irreps_linear(eqr_ctx *ctx, eqr_relax *relax, const char *name,
                                    eqr_irreps_linear *layer, const eqr_rlayer_opts *opts) {
    static const char fn[] = "eqr_relax_irreps_linear";
    if (!ctx || ctx->status != EQR_OK) return NULL;
    if (!relax || !layer) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: relaxation or layer is NULL", fn);
        return NULL;
    }
    if (layer->din > 4096 || layer->dout > 4096) { /* W_r and 4 generators per side are dense */
        eqr__fail(ctx, EQR_ERR_ARG, "%s: dims %lld -> %lld too large for a dense W_r (<= 4096)", fn,
                  (long long)layer->din, (long long)layer->dout);
        return NULL;
    }
    float *gi = side_generators(ctx, &layer->in);
    float *go = gi ? side_generators(ctx, &layer->out) : NULL;
    irr_impl *im = go ? calloc(1, sizeof *im) : NULL;
    if (go && !im) eqr__fail(ctx, EQR_ERR_NOMEM, "%s: out of memory", fn);
    if (im) {
        eqr_lie_rep rin = {(int)layer->din, 4, gi}, rout = {(int)layer->dout, 4, go};
        im->layer = layer;
        im->lie = eqr__lie_pair_new(ctx, fn, &rin, &rout);
    }
    free(gi);
    free(go);
    if (!im || !im->lie) {
        free(im);
        return NULL;
    }
    int64_t shape[2] = {layer->dout, layer->din};
    return eqr__rlayer_new(ctx, relax, name, &irr_ops, im, 2, shape, opts);
}
