/* Equivariant linear layer between irreps (irreps_nn.h): per matching
 * (l, p) pair of entries a weight block acting on multiplicities only. */
#include "nn3d/irreps_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>


eqr_irreps_linear *eqr_irreps_linear_create(eqr_ctx *ctx, const char *name,
                                            const eqr_irreps *in, const eqr_irreps *out) {
    if (!ctx || eqr_error_status(ctx)) return NULL;
    char pname[EQR_NAME_LEN];
    if (!name || !in || !out || snprintf(pname, sizeof pname, "%s.w", name) >= (int)sizeof pname) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_irreps_linear_create: NULL or too long name/irreps");
        return NULL;
    }
    if (eqr_irreps_dim(in) <= 0 || eqr_irreps_dim(out) <= 0) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_irreps_linear_create: '%s': empty input or output irreps", name);
        return NULL;
    }
    eqr_irreps_linear *L = eqr__calloc(ctx, "eqr_irreps_linear_create", 1, sizeof *L);
    if (!L) return NULL;
    L->in = *in;
    L->out = *out;
    L->din = eqr_irreps_dim(in);
    L->dout = eqr_irreps_dim(out);
    int64_t nw = 0;
    for (int b = 0; b < out->n; b++) {
        int64_t fan = 0;
        for (int a = 0; a < in->n; a++)
            if (in->e[a].l == out->e[b].l && in->e[a].p == out->e[b].p) fan += in->e[a].mul;
        for (int a = 0; a < in->n; a++)
            if (in->e[a].l == out->e[b].l && in->e[a].p == out->e[b].p && in->e[a].mul && out->e[b].mul) {
                lin_path *p = &L->p[L->npaths++];
                p->a = a;
                p->b = b;
                p->woff = nw;
                p->c = 1.0f / sqrtf((float)fan);
                nw += (int64_t)in->e[a].mul * out->e[b].mul;
            }
    }
    int64_t shape[1] = {nw ? nw : 1};
    L->w = eqr_param_create(ctx, pname, 1, shape, 0);
    if (!L->w) { free(L); return NULL; }
    eqr_tensor_normal(L->w, eqr_ctx_rng(ctx), 1.0f);
    return L;
}

void eqr_irreps_linear_destroy(eqr_irreps_linear *layer) { free(layer); }
eqr_tensor *eqr_irreps_linear_weight(const eqr_irreps_linear *layer) { return layer ? layer->w : NULL; }

/* y[n, b-block (w, m)] += c W[w, u] x[n, a-block (u, m)] over paths; the
 * backward applies the transposes. */
static void lin_backward(eqr_ctx *ctx, eqr_node *nd) {
    const eqr_irreps_linear *L = nd->saved;
    eqr_tensor *x = nd->in[0], *w = nd->in[1];
    const float *gy = nd->out->grad;
    float *gx = eqr__needs_grad(x) ? eqr__grad(ctx, x) : NULL;
    float *gw = eqr__needs_grad(w) ? eqr__grad(ctx, w) : NULL;
    if ((eqr__needs_grad(x) && !gx) || (eqr__needs_grad(w) && !gw)) return;
    int64_t n = x->numel / L->din;
    for (int q = 0; q < L->npaths; q++) {
        const lin_path *p = &L->p[q];
        int d = 2 * L->in.e[p->a].l + 1, mu = L->in.e[p->a].mul, mw = L->out.e[p->b].mul;
        int64_t oa = eqr_irreps_offset(&L->in, p->a), ob = eqr_irreps_offset(&L->out, p->b);
        const float *W = w->data + p->woff;
        for (int64_t r = 0; r < n; r++) {
            const float *xr = x->data + r * L->din + oa, *gyr = gy + r * L->dout + ob;
            for (int ww = 0; ww < mw; ww++)
                for (int u = 0; u < mu; u++) {
                    double t = 0;
                    for (int m = 0; m < d; m++) {
                        t += (double)gyr[ww * d + m] * xr[u * d + m];
                        if (gx) gx[r * L->din + oa + u * d + m] += p->c * W[ww * mu + u] * gyr[ww * d + m];
                    }
                    if (gw) gw[p->woff + ww * mu + u] += (float)(p->c * t);
                }
        }
    }
}

eqr_tensor *eqr_irreps_linear_forward(eqr_ctx *ctx, eqr_irreps_linear *L, eqr_tensor *x) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    if (!L) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_irreps_linear_forward: NULL layer");
        return NULL;
    }
    if (x->ndim < 1 || x->shape[x->ndim - 1] != L->din) {
        char bi[256], bo[256], bs[EQR_SHAPE_BUF];
        eqr_irreps_str(&L->in, bi, sizeof bi);
        eqr_irreps_str(&L->out, bo, sizeof bo);
        eqr__fail(ctx, EQR_ERR_SHAPE,
                  "eqr_irreps_linear_forward: x %s must end in %lld, the dim of the input irreps "
                  "(layer %s -> %s)", EQR_SHAPE(x, bs), (long long)L->din, bi, bo);
        return NULL;
    }
    int64_t shape[EQR_MAX_DIMS];
    for (int k = 0; k < x->ndim; k++) shape[k] = x->shape[k];
    shape[x->ndim - 1] = L->dout;
    eqr_tensor *y = eqr_tensor_zeros(ctx, x->ndim, shape);
    if (!y) return NULL;
    int64_t n = x->numel / L->din;
    for (int q = 0; q < L->npaths; q++) {
        const lin_path *p = &L->p[q];
        int d = 2 * L->in.e[p->a].l + 1, mu = L->in.e[p->a].mul, mw = L->out.e[p->b].mul;
        int64_t oa = eqr_irreps_offset(&L->in, p->a), ob = eqr_irreps_offset(&L->out, p->b);
        const float *W = L->w->data + p->woff;
        for (int64_t r = 0; r < n; r++) {
            const float *xr = x->data + r * L->din + oa;
            float *yr = y->data + r * L->dout + ob;
            for (int ww = 0; ww < mw; ww++)
                for (int m = 0; m < d; m++) {
                    float t = 0;
                    for (int u = 0; u < mu; u++) t += W[ww * mu + u] * xr[u * d + m];
                    yr[ww * d + m] += p->c * t;
                }
        }
    }
    eqr_tensor *in[2] = {x, L->w};
    eqr_node *nd = eqr__record(ctx, y, lin_backward, 2, in);
    if (nd) nd->saved = L;
    return y;
}
