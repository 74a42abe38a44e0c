/* Equivariance measurement: ||f(g.x) - g.f(x)|| / ||f(x)||. */
#include "core/internal.h"
#include "equirelax/equivariance.h"

#include <math.h>
#include <string.h>

/* g acting on an output: [N, dim, H, W] via the rep, [N, dim] via rho(g). */
static eqr_tensor *act_out(eqr_ctx *ctx, const eqr_rep *rep, eqr_gelem g, eqr_tensor *y) {
    if (!rep) return y; /* invariance */
    if (y->ndim == 2) {
        int64_t s[4] = {y->shape[0], y->shape[1], 1, 1};
        eqr_tensor *v = eqr_tensor_wrap(ctx, y->data, 4, s);
        eqr_tensor *r = v ? eqr_rep_act(ctx, rep, g, v) : NULL;
        if (r) {
            r->ndim = 2;
            r->shape[2] = r->shape[3] = 1;
        }
        return r;
    }
    return eqr_rep_act(ctx, rep, g, y);
}

/* Over the central disk (all pixels if disk <= 0): num = ||a - b||^2 and
 * den = ||y||^2. The denominator is the untransformed output f(x), as
 * documented: g.f(x) loses the corners (and is smoothed) off the grid. */
static void masked_norms(const eqr_tensor *a, const eqr_tensor *b, const eqr_tensor *y,
                         double disk, double *num, double *den) {
    int64_t h = a->ndim == 4 ? a->shape[2] : 1, w = a->ndim == 4 ? a->shape[3] : 1;
    int64_t planes = a->numel / (h * w);
    double r = disk * (double)(h < w ? h : w) / 2.0, cy = (double)(h - 1) / 2, cx = (double)(w - 1) / 2;
    *num = *den = 0;
    for (int64_t p = 0; p < planes; p++)
        for (int64_t i = 0; i < h; i++)
            for (int64_t j = 0; j < w; j++) {
                if (disk > 0 && (i - cy) * (i - cy) + (j - cx) * (j - cx) > r * r) continue;
                int64_t k = (p * h + i) * w + j;
                double d = (double)a->data[k] - b->data[k];
                *num += d * d;
                *den += (double)y->data[k] * y->data[k];
            }
}

eqr_status eqr_equivariance_error(eqr_ctx *ctx, eqr_forward_fn f, void *model,
                                  const eqr_rep *in_rep, const eqr_rep *out_rep, eqr_gelem g,
                                  const eqr_tensor *x, const eqr_equiv_opts *opts, double *err) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!f || !in_rep || !x || !err)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_equivariance_error: NULL argument %s",
                         !f ? "f" : !in_rep ? "in_rep" : !x ? "x" : "err");
    if (x->ndim != 4 || x->shape[1] != in_rep->dim) {
        char b[EQR_SHAPE_BUF];
        return eqr__fail(ctx, EQR_ERR_SHAPE,
                         "eqr_equivariance_error: input must be [N,%d,H,W] for the input type, got %s",
                         in_rep->dim, EQR_SHAPE(x, b));
    }
    double disk = opts ? opts->disk : 0;
    eqr__arena_mark mark = eqr__arena_save(ctx);
    int prev = eqr_grad_set_enabled(ctx, 0);
    eqr_status st = EQR_OK;
    /* A measurement must leave the model as it was, whatever mode the caller's
     * forward runs in: snapshot the whole parameter store (weights and buffers
     * such as batch-norm running statistics, which a training-mode forward
     * updates) and the context RNG (dropout), restore both before the second
     * forward, so f(x) and f(g.x) see the same state, and at the end. */
    eqr_rng rng0 = ctx->rng;
    size_t pbytes = (size_t)ctx->ptotal * sizeof(float);
    float *psnap = pbytes ? eqr__arena_alloc(ctx, pbytes) : NULL;
    if (pbytes && !psnap) {
        st = ctx->status;
        goto done;
    }
    if (pbytes) memcpy(psnap, ctx->pdata, pbytes);
    eqr_tensor *xin = eqr_tensor_from(ctx, x->ndim, x->shape, x->data);
    eqr_tensor *y = xin ? f(ctx, model, xin) : NULL;
    eqr_tensor *gx = y ? eqr_rep_act(ctx, in_rep, g, x) : NULL;
    if (gx && pbytes) memcpy(ctx->pdata, psnap, pbytes);
    ctx->rng = rng0;
    eqr_tensor *ygx = gx ? f(ctx, model, gx) : NULL;
    if (!ygx) {
        st = ctx->status ? ctx->status
                         : eqr__fail(ctx, EQR_ERR_STATE, "eqr_equivariance_error: forward returned NULL");
        goto done;
    }
    if (y->ndim != 4 && y->ndim != 2) {
        char b[EQR_SHAPE_BUF];
        st = eqr__fail(ctx, EQR_ERR_SHAPE,
                       "eqr_equivariance_error: output must be [N,C,H,W] or [N,C], got %s",
                       EQR_SHAPE(y, b));
        goto done;
    }
    if (!eqr_tensor_same_shape(y, ygx)) {
        char b1[EQR_SHAPE_BUF], b2[EQR_SHAPE_BUF];
        st = eqr__fail(ctx, EQR_ERR_SHAPE,
                       "eqr_equivariance_error: f(x) is %s but f(g.x) is %s", EQR_SHAPE(y, b1),
                       EQR_SHAPE(ygx, b2));
        goto done;
    }
    if (out_rep && y->shape[1] != out_rep->dim) {
        st = eqr__fail(ctx, EQR_ERR_SHAPE,
                       "eqr_equivariance_error: output has %lld channels, output type has %d",
                       (long long)y->shape[1], out_rep->dim);
        goto done;
    }
    eqr_tensor *gy = act_out(ctx, out_rep, g, y);
    if (!gy) {
        st = ctx->status;
        goto done;
    }
    double num, den;
    masked_norms(ygx, gy, y, disk, &num, &den);
    *err = den > 0 ? sqrt(num / den) : sqrt(num);
done:
    if (psnap) memcpy(ctx->pdata, psnap, pbytes);
    ctx->rng = rng0;
    eqr_grad_set_enabled(ctx, prev);
    eqr__arena_rewind(ctx, mark);
    return st;
}

eqr_status eqr_equivariance_error_max(eqr_ctx *ctx, eqr_forward_fn f, void *model,
                                      const eqr_rep *in_rep, const eqr_rep *out_rep,
                                      const eqr_tensor *x, const eqr_equiv_opts *opts,
                                      int n_samples, double *err) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!in_rep || !err)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_equivariance_error_max: NULL argument %s",
                         !in_rep ? "in_rep" : "err");
    const eqr_group *G = &in_rep->group;
    int finite = eqr_group_is_finite(G);
    int n = finite ? eqr_group_order(G) : n_samples;
    if (n < 1)
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "eqr_equivariance_error_max: need n_samples >= 1 for a continuous group");
    double worst = 0;
    for (int i = 0; i < n; i++) {
        eqr_gelem g = finite ? eqr_group_element(G, i) : eqr_group_sample(G, &ctx->rng);
        double e;
        eqr_status st = eqr_equivariance_error(ctx, f, model, in_rep, out_rep, g, x, opts, &e);
        if (st) return st;
        if (e > worst) worst = e;
    }
    *err = worst;
    return EQR_OK;
}
