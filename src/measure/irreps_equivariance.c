/* Sampled equivariance error of irreps-typed functions (irreps_nn.h). */
#include "core/internal.h"
#include "equirelax/equivariance.h"
#include "equirelax/so3.h"

#include <math.h>
#include <stdlib.h>

eqr_status eqr_irreps_equivariance(eqr_ctx *ctx, eqr_irreps_fn fn, void *user,
                                   const eqr_irreps *in, const eqr_irreps *out, eqr_tensor *x,
                                   eqr_tensor *pos, int nsamples, unsigned flags, double *max_rel) {
    static const char *f = "eqr_irreps_equivariance";
    if (!ctx) return EQR_ERR_ARG;
    if (eqr_error_status(ctx)) return eqr_error_status(ctx);
    if (!fn || !in || !out || !x || !max_rel || nsamples < 1)
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: NULL argument or nsamples %d < 1", f, nsamples);
    int64_t din = eqr_irreps_dim(in), dout = eqr_irreps_dim(out);
    char b[EQR_SHAPE_BUF];
    if (din <= 0 || dout <= 0 || x->ndim < 1 || x->shape[x->ndim - 1] != din)
        return eqr__fail(ctx, EQR_ERR_SHAPE, "%s: x %s must end in dim(in) = %lld", f, EQR_SHAPE(x, b),
                         (long long)din);
    if (pos && (pos->ndim != 2 || pos->shape[1] != 3))
        return eqr__fail(ctx, EQR_ERR_SHAPE, "%s: pos %s must be [P, 3]", f, EQR_SHAPE(pos, b));
    int ge = ctx->grad_enabled;
    ctx->grad_enabled = 0;
    eqr__arena_mark mk = eqr__arena_save(ctx);
    eqr_status st = EQR_OK;
    double worst = 0;
    eqr_tensor *y0 = fn(ctx, x, pos, user);
    if (!y0 || eqr_error_status(ctx)) { st = eqr_error_status(ctx) ? eqr_error_status(ctx) : EQR_ERR_ARG; goto done; }
    if (y0->shape[y0->ndim - 1] != dout) {
        st = eqr__fail(ctx, EQR_ERR_SHAPE, "%s: fn output %s must end in dim(out) = %lld", f,
                       EQR_SHAPE(y0, b), (long long)dout);
        goto done;
    }
    int64_t ny = y0->numel, nrow = ny / dout;
    float *gy = eqr__arena_alloc(ctx, sizeof(float) * (size_t)ny);
    eqr_tensor *gx = eqr_tensor_zeros(ctx, x->ndim, x->shape);
    eqr_tensor *gp = pos ? eqr_tensor_zeros(ctx, 2, pos->shape) : NULL;
    if (!gy || !gx || (pos && !gp)) { st = eqr_error_status(ctx); goto done; }
    for (int smp = 0; smp < nsamples; smp++) {
        float Rf[9];
        double R[9], t[3] = {0, 0, 0};
        eqr_so3_random(eqr_ctx_rng(ctx), Rf, NULL);
        for (int i = 0; i < 3; i++) { /* re-orthonormalise in double */
            for (int k = 0; k < 3; k++) R[3 * i + k] = Rf[3 * i + k];
            for (int j = 0; j < i; j++) {
                double d = 0;
                for (int k = 0; k < 3; k++) d += R[3 * i + k] * R[3 * j + k];
                for (int k = 0; k < 3; k++) R[3 * i + k] -= d * R[3 * j + k];
            }
            double n = sqrt(R[3 * i] * R[3 * i] + R[3 * i + 1] * R[3 * i + 1] + R[3 * i + 2] * R[3 * i + 2]);
            for (int k = 0; k < 3; k++) R[3 * i + k] /= n;
        }
        int s = ((flags & EQR_EQ_PARITY) && (smp & 1)) ? -1 : 1;
        if (flags & EQR_EQ_TRANSLATION)
            for (int k = 0; k < 3; k++) t[k] = eqr_rng_normal(eqr_ctx_rng(ctx));
        if ((st = eqr_irreps_act(ctx, in, R, s, x->data, gx->data, x->numel / din))) goto done;
        if (pos)
            for (int64_t p = 0; p < pos->shape[0]; p++)
                for (int i = 0; i < 3; i++) {
                    double v = t[i];
                    for (int k = 0; k < 3; k++) v += s * R[3 * i + k] * pos->data[3 * p + k];
                    gp->data[3 * p + i] = (float)v;
                }
        if ((st = eqr_irreps_act(ctx, out, R, s, y0->data, gy, nrow))) goto done;
        eqr__arena_mark m2 = eqr__arena_save(ctx);
        eqr_tensor *y1 = fn(ctx, gx, gp, user);
        if (!y1 || eqr_error_status(ctx) || y1->numel != ny) {
            st = eqr_error_status(ctx) ? eqr_error_status(ctx)
                                     : eqr__fail(ctx, EQR_ERR_SHAPE, "%s: fn output changed size", f);
            goto done;
        }
        double dn = 0, rn = 0;
        for (int64_t i = 0; i < ny; i++) {
            double d = (double)y1->data[i] - gy[i];
            dn += d * d;
            rn += (double)gy[i] * gy[i];
        }
        double rel = sqrt(dn) / fmax(sqrt(rn), 1e-30);
        if (rel > worst) worst = rel;
        eqr__arena_rewind(ctx, m2);
    }
    *max_rel = worst;
done:
    eqr__arena_rewind(ctx, mk);
    ctx->grad_enabled = ge;
    return st;
}
