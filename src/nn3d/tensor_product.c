/* Fully connected weighted tensor product (tensor_product.h): the path list
 * and the scaled CG tables are built once at creation; a call checks shapes
 * and runs the path kernel (tensor_product_kernel.c). */
#include "nn3d/tp_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

struct eqr_tp {
    eqr_irreps in1, in2, out;
    int npaths;
    eqr__tp_path *paths;
    float *cbuf; /* every path's c_p C, back to back */
    int64_t nweights, d1, d2, d3;
    eqr_tensor *weight;
    eqr_tensor *bias; /* [sum of the 0e output muls] or NULL */
    int nbias;        /* 0e output entries: column offsets and muls */
    int64_t bias_off[EQR_IRREPS_MAX], bias_mul[EQR_IRREPS_MAX];
    double fan[EQR_IRREPS_MAX]; /* per output entry: sum over its paths of m1 m2 */
};

static int allowed(const eqr_irrep_entry *a, const eqr_irrep_entry *b, const eqr_irrep_entry *c) {
    const int lo = a->l > b->l ? a->l - b->l : b->l - a->l;
    return a->p * b->p == c->p && c->l >= lo && c->l <= a->l + b->l && a->mul > 0 && b->mul > 0 &&
           c->mul > 0;
}

void eqr_tp_destroy(eqr_tp *tp) {
    if (!tp) return;
    free(tp->paths);
    free(tp->cbuf);
    free(tp);
}

eqr_status eqr_tp_create(eqr_ctx *ctx, const char *name, const eqr_irreps *in1,
                         const eqr_irreps *in2, const eqr_irreps *out, int internal_weights,
                         eqr_tp **res) {
    if (!ctx) return EQR_ERR_ARG;
    if (res) *res = NULL;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!in1 || !in2 || !out || !res || (internal_weights && !name))
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_tp_create: NULL argument");
    int lmax = 0;
    const eqr_irreps *all[3] = {in1, in2, out};
    for (int s = 0; s < 3; s++) {
        if (all[s]->n < 0 || all[s]->n > EQR_IRREPS_MAX)
            return eqr__fail(ctx, EQR_ERR_ARG, "eqr_tp_create: irreps %d has %d entries", s + 1,
                             all[s]->n);
        const int l = eqr_irreps_lmax(all[s]);
        lmax = l > lmax ? l : lmax;
    }
    eqr_o3_cg_table *cg = eqr_o3_cg_table_create(ctx, lmax);
    if (!cg) return ctx->status;
    eqr_tp *tp = calloc(1, sizeof *tp);
    int cap = in1->n * in2->n * out->n + 1;
    int64_t csize = 0;
    for (int a = 0; a < in1->n; a++)
        for (int b = 0; b < in2->n; b++)
            for (int c = 0; c < out->n; c++)
                if (allowed(&in1->e[a], &in2->e[b], &out->e[c]))
                    csize += (int64_t)(2 * in1->e[a].l + 1) * (2 * in2->e[b].l + 1) *
                             (2 * out->e[c].l + 1);
    if (tp) {
        tp->paths = malloc(sizeof(eqr__tp_path) * (size_t)cap);
        tp->cbuf = malloc(sizeof(float) * (size_t)(csize + 1));
    }
    if (!tp || !tp->paths || !tp->cbuf) {
        eqr_tp_destroy(tp);
        eqr_o3_cg_table_destroy(cg);
        return eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_tp_create: out of memory");
    }
    tp->in1 = *in1, tp->in2 = *in2, tp->out = *out;
    tp->d1 = eqr_irreps_dim(in1), tp->d2 = eqr_irreps_dim(in2), tp->d3 = eqr_irreps_dim(out);
    double *fan = tp->fan; /* per output entry, for the initialisations */
    int64_t woff = 0, cofs = 0;
    for (int c = 0; c < out->n; c++)
        for (int a = 0; a < in1->n; a++)
            for (int b = 0; b < in2->n; b++) {
                const eqr_irrep_entry *A = &in1->e[a], *B = &in2->e[b], *O = &out->e[c];
                if (!allowed(A, B, O)) continue;
                const eqr_o3_cg *C = eqr_o3_cg_table_at(ctx, cg, A->l, B->l, O->l);
                if (!C) break;
                eqr__tp_path *p = &tp->paths[tp->npaths++];
                p->m1 = A->mul, p->d1 = 2 * A->l + 1, p->off1 = eqr_irreps_offset(in1, a);
                p->m2 = B->mul, p->d2 = 2 * B->l + 1, p->off2 = eqr_irreps_offset(in2, b);
                p->m3 = O->mul, p->d3 = 2 * O->l + 1, p->off3 = eqr_irreps_offset(out, c);
                p->woff = woff;
                woff += p->m1 * p->m2 * p->m3;
                const double coef = sqrt((double)p->d3);
                const int64_t nc = (int64_t)p->d1 * p->d2 * p->d3;
                for (int64_t q = 0; q < nc; q++) tp->cbuf[cofs + q] = (float)(coef * C->dense[q]);
                p->C = tp->cbuf + cofs;
                cofs += nc;
                fan[c] += (double)p->m1 * p->m2;
            }
    eqr_o3_cg_table_destroy(cg);
    if (ctx->status != EQR_OK) {
        eqr_tp_destroy(tp);
        return ctx->status;
    }
    tp->nweights = woff;
    if (internal_weights) {
        char pname[EQR_NAME_LEN];
        snprintf(pname, sizeof pname, "%s.weight", name);
        const int64_t sw[1] = {woff > 0 ? woff : 1};
        tp->weight = eqr_param_create(ctx, pname, 1, sw, 0);
        if (!tp->weight) {
            eqr_tp_destroy(tp);
            return ctx->status;
        }
        /* U(-1/sqrt(fan), 1/sqrt(fan)) per output entry's block */
        for (int q = 0; q < tp->npaths; q++) {
            const eqr__tp_path *p = &tp->paths[q];
            int c = 0;
            while (eqr_irreps_offset(out, c) != p->off3) c++;
            const float b = (float)(1.0 / sqrt(fan[c] > 0 ? fan[c] : 1.0));
            eqr_tensor seg = *tp->weight;
            seg.data = tp->weight->data + p->woff;
            seg.numel = p->m1 * p->m2 * p->m3;
            eqr_tensor_uniform(&seg, eqr_ctx_rng(ctx), -b, b);
        }
    }
    *res = tp;
    return EQR_OK;
}

int64_t eqr_tp_num_weights(const eqr_tp *tp) { return tp ? tp->nweights : 0; }
int eqr_tp_num_paths(const eqr_tp *tp) { return tp ? tp->npaths : 0; }
const eqr_irreps *eqr_tp_irreps_in1(const eqr_tp *tp) { return tp ? &tp->in1 : NULL; }
const eqr_irreps *eqr_tp_irreps_in2(const eqr_tp *tp) { return tp ? &tp->in2 : NULL; }
const eqr_irreps *eqr_tp_irreps_out(const eqr_tp *tp) { return tp ? &tp->out : NULL; }
eqr_tensor *eqr_tp_weight(const eqr_tp *tp) { return tp ? tp->weight : NULL; }
eqr_tensor *eqr_tp_bias(const eqr_tp *tp) { return tp ? tp->bias : NULL; }

eqr_status eqr_tp_add_bias(eqr_ctx *ctx, eqr_tp *tp, const char *name) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!tp || !name) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_tp_add_bias: NULL argument");
    if (tp->bias) return eqr__fail(ctx, EQR_ERR_STATE, "eqr_tp_add_bias: the product has a bias");
    int64_t nb = 0;
    int ne = 0, ent[EQR_IRREPS_MAX];
    for (int c = 0; c < tp->out.n; c++)
        if (tp->out.e[c].l == 0 && tp->out.e[c].p == 1) {
            ent[ne++] = c;
            nb += tp->out.e[c].mul;
        }
    if (!nb)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_tp_add_bias: the output irreps have no 0e entry");
    char pname[EQR_NAME_LEN];
    snprintf(pname, sizeof pname, "%s.bias", name);
    eqr_tensor *b = eqr_param_create(ctx, pname, 1, &nb, EQR_PARAM_NO_DECAY);
    if (!b) return ctx->status;
    /* U(-1/sqrt(fan), 1/sqrt(fan)) per entry, as its weights (SEGNN) */
    int64_t at = 0;
    for (int k = 0; k < ne; k++) {
        const int c = ent[k];
        const float lim = (float)(1.0 / sqrt(tp->fan[c] > 0 ? tp->fan[c] : 1.0));
        eqr_tensor seg = *b;
        seg.data = b->data + at;
        seg.numel = tp->out.e[c].mul;
        eqr_tensor_uniform(&seg, eqr_ctx_rng(ctx), -lim, lim);
        at += tp->out.e[c].mul;
        tp->bias_off[k] = eqr_irreps_offset(&tp->out, c);
        tp->bias_mul[k] = tp->out.e[c].mul;
    }
    tp->nbias = ne;
    tp->bias = b;
    return EQR_OK;
}

/* The bias added in place to y, the kernel's fresh output (its backward
 * does not read y): the result is a view of y, so the gradient passes
 * through in y's own buffer and the node only accumulates the bias's. */
static void bias_backward(eqr_ctx *ctx, eqr_node *nd) {
    const eqr_tp *tp = nd->saved;
    if (!eqr__needs_grad(nd->in[1])) return;
    const float *g = eqr__grad(ctx, nd->out); /* y's buffer */
    float *gb = eqr__grad(ctx, nd->in[1]);
    if (!g || !gb) return;
    const int64_t n = nd->out->shape[0], d = nd->out->shape[1];
    for (int e = 0, at = 0; e < tp->nbias; at += (int)tp->bias_mul[e++]) {
        const int64_t off = tp->bias_off[e], m = tp->bias_mul[e];
        for (int64_t r = 0; r < n; r++)
            for (int64_t k = 0; k < m; k++) gb[at + k] += g[r * d + off + k];
    }
}

static eqr_tensor *add_bias(eqr_ctx *ctx, const eqr_tp *tp, eqr_tensor *y) {
    const int64_t n = y->shape[0], d = y->shape[1];
    for (int e = 0, at = 0; e < tp->nbias; at += (int)tp->bias_mul[e++]) {
        const int64_t off = tp->bias_off[e], m = tp->bias_mul[e];
        const float *b = tp->bias->data + at;
        for (int64_t r = 0; r < n; r++)
            for (int64_t k = 0; k < m; k++) y->data[r * d + off + k] += b[k];
    }
    if (!ctx->grad_enabled || (!eqr__needs_grad(y) && !eqr__needs_grad(tp->bias))) return y;
    eqr_tensor *out = eqr__arena_alloc(ctx, sizeof *out);
    if (!out) return NULL;
    *out = *y;
    out->grad = NULL;
    out->base = y;
    out->offset = 0;
    eqr_tensor *in[2] = {y, tp->bias};
    eqr_node *nd = eqr__record(ctx, out, bias_backward, 2, in);
    if (nd) nd->saved = (void *)tp;
    return ctx->status == EQR_OK ? out : NULL;
}

eqr_tensor *eqr_tp_forward(eqr_ctx *ctx, const eqr_tp *tp, eqr_tensor *x1, eqr_tensor *x2,
                           eqr_tensor *w) {
    static const char fn[] = "eqr_tp_forward";
    if (!eqr__ok(ctx, 3, tp, x1, x2)) return NULL;
    char b1[EQR_SHAPE_BUF], b2[EQR_SHAPE_BUF], bw[EQR_SHAPE_BUF];
    if (x1->ndim != 2 || x2->ndim != 2 || x1->shape[1] != tp->d1 || x2->shape[1] != tp->d2 ||
        x1->shape[0] != x2->shape[0]) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "%s: x1 %s and x2 %s must be [N, %lld] and [N, %lld]", fn,
                  EQR_SHAPE(x1, b1), EQR_SHAPE(x2, b2), (long long)tp->d1, (long long)tp->d2);
        return NULL;
    }
    if (!w) {
        w = tp->weight;
        if (!w) {
            eqr__fail(ctx, EQR_ERR_ARG, "%s: external weights [N, %lld] required", fn,
                      (long long)tp->nweights);
            return NULL;
        }
    } else if (w->ndim != 2 || w->shape[0] != x1->shape[0] || w->shape[1] != tp->nweights) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "%s: weights %s must be [%lld, %lld]", fn, EQR_SHAPE(w, bw),
                  (long long)x1->shape[0], (long long)tp->nweights);
        return NULL;
    }
    eqr_tensor *y = eqr__tp_forward(ctx, x1, x2, w, tp->npaths, tp->paths, tp->d3);
    return y && tp->bias ? add_bias(ctx, tp, y) : y;
}
