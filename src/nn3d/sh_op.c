/* The differentiable spherical-harmonics op eqr_sh (irreps_nn.h): forward
 * in double per row, the Jacobian dy/dr saved for the backward. */
#include "core/internal.h"
#include "equirelax/o3.h"

#include <stdlib.h>

static void sh_backward(eqr_ctx *ctx, eqr_node *nd) {
    eqr_tensor *r = nd->in[0];
    float *gr = eqr__grad(ctx, r);
    if (!gr) return;
    const float *gy = nd->out->grad, *J = nd->saved;
    int64_t n = r->shape[0], m = nd->i[0];
    for (int64_t row = 0; row < n; row++)
        for (int k = 0; k < 3; k++) {
            double t = 0;
            for (int64_t i = 0; i < m; i++) t += (double)gy[row * m + i] * J[(row * m + i) * 3 + k];
            gr[row * 3 + k] += (float)t;
        }
}

eqr_tensor *eqr_sh(eqr_ctx *ctx, eqr_tensor *r, int lmax, eqr_sh_norm norm, int normalize) {
    if (!eqr__ok(ctx, 1, r)) return NULL;
    char buf[EQR_SHAPE_BUF];
    if (r->ndim != 2 || r->shape[1] != 3) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_sh: r must be [N, 3], got %s", EQR_SHAPE(r, buf));
        return NULL;
    }
    if (lmax < 0 || lmax > EQR_O3_LMAX || norm < EQR_SH_COMPONENT || norm > EQR_SH_INTEGRAL) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_sh: lmax %d (0..%d) or norm %d invalid", lmax, EQR_O3_LMAX,
                  (int)norm);
        return NULL;
    }
    int m = eqr_sh_dim(lmax);
    int64_t n = r->shape[0], shape[2] = {n, m};
    eqr_tensor *y = eqr__tensor_empty(ctx, 2, shape);
    if (!y) return NULL;
    int rec = ctx->grad_enabled && eqr__needs_grad(r);
    float *J = rec ? eqr__arena_alloc(ctx, sizeof(float) * (size_t)(n * m * 3)) : NULL;
    if (rec && !J) return NULL;
    double *v = malloc(sizeof(double) * (size_t)m * 4);
    if (!v) {
        eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_sh: out of memory");
        return NULL;
    }
    double *g = v + m;
    for (int64_t row = 0; row < n; row++) {
        const float *p = r->data + 3 * row;
        double rr[3] = {p[0], p[1], p[2]};
        eqr_o3_sh(ctx, lmax, norm, normalize, rr, v, rec ? g : NULL);
        for (int i = 0; i < m; i++) y->data[row * m + i] = (float)v[i];
        if (rec)
            for (int i = 0; i < 3 * m; i++) J[row * m * 3 + i] = (float)g[i];
    }
    free(v);
    eqr_node *nd = eqr__record(ctx, y, sh_backward, 1, &r);
    if (nd) {
        nd->saved = J;
        nd->i[0] = m;
    }
    return y;
}
