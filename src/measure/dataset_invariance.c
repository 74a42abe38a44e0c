/* Invariance of a classifier's outputs on a dataset, per sample (what the
 * examples report as equiv_err and the trainer's per-epoch columns). */
#include "core/internal.h"
#include "equirelax/equivariance.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The grid-exact elements of G on h x w other than the identity. */
static int exact_elements(const eqr_group *G, int h, int w, eqr_gelem *out, int cap) {
    eqr_gelem id = eqr_group_identity();
    int n = 0;
    for (int i = 0; i < eqr_group_order(G) && n < cap; i++) {
        eqr_gelem g = eqr_group_element(G, i);
        if (eqr_grid_exact(h, w, g) && !eqr_group_equal(G, g, id)) out[n++] = g;
    }
    return n;
}

/* The largest per-row relative distance of y from base ([b, K] each). */
static double worst_row(const float *base, const eqr_tensor *y, int64_t b, int64_t K) {
    double worst = 0;
    for (int64_t r = 0; r < b; r++) {
        double d2 = 0, n2 = 0;
        for (int64_t k = 0; k < K; k++) {
            double f0 = base[r * K + k], f1 = y->data[r * K + k];
            d2 += (f1 - f0) * (f1 - f0);
            n2 += f0 * f0;
        }
        double e = n2 > 0 ? sqrt(d2 / n2) : sqrt(d2);
        if (e > worst) worst = e;
    }
    return worst;
}

eqr_status eqr_invariance_max(eqr_ctx *ctx, eqr_forward_fn f, void *model, const eqr_group *G,
                              const eqr_dataset *ds, int64_t n, int64_t batch, double *err) {
    static const char *fn = "eqr_invariance_max";
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!f || !ds || !err)
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: NULL argument %s", fn,
                         !f ? "f" : !ds ? "ds" : "err");
    if (n < 0 || n > ds->n || batch < 0 || (n > 0 && !ds->x))
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: need 0 <= n <= %lld samples and batch >= 0, "
                         "got n %lld, batch %lld", fn, (long long)ds->n, (long long)n,
                         (long long)batch);
    eqr_group c4 = eqr_group_cyclic(4);
    if (!G) G = &c4;
    if (!eqr_group_is_finite(G))
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: the group must be finite (its grid-exact "
                         "elements are used)", fn);
    if (batch == 0) batch = 100;
    eqr_gelem el[64];
    int ne = exact_elements(G, ds->h, ds->w, el, 64);
    *err = 0;
    if (ne == 0 || n == 0) return EQR_OK;
    const int64_t per = (int64_t)ds->c * ds->h * ds->w;
    eqr__arena_mark mark = eqr__arena_save(ctx);
    int prev = eqr_grad_set_enabled(ctx, 0);
    /* Leave the model as it was (see eqr_equivariance_error): the store and
     * the RNG are restored before every forward and at the end. */
    eqr_rng rng0 = ctx->rng;
    size_t pbytes = (size_t)ctx->ptotal * sizeof(float);
    float *psnap = pbytes ? eqr__arena_alloc(ctx, pbytes) : NULL;
    float *base = NULL;
    double worst = 0;
    eqr_status st = EQR_OK;
    if (pbytes && !psnap) {
        st = ctx->status;
        goto done;
    }
    if (pbytes) memcpy(psnap, ctx->pdata, pbytes);
    eqr__arena_mark inner = eqr__arena_save(ctx);
    int64_t K = -1;
    for (int64_t i = 0; i < n && st == EQR_OK; i += batch) {
        int64_t b = n - i < batch ? n - i : batch;
        int64_t shape[4] = {b, ds->c, ds->h, ds->w};
        for (int e = -1; e < ne; e++) { /* e = -1: f(x), the reference */
            if (pbytes) memcpy(ctx->pdata, psnap, pbytes);
            ctx->rng = rng0;
            eqr_tensor *x = eqr_tensor_from(ctx, 4, shape, ds->x + i * per);
            eqr_tensor *gx = x && e >= 0 ? eqr_grid_act(ctx, el[e], x) : x;
            eqr_tensor *y = gx ? f(ctx, model, gx) : NULL;
            if (!y) {
                st = ctx->status ? ctx->status
                                 : eqr__fail(ctx, EQR_ERR_STATE, "%s: forward returned NULL", fn);
                break;
            }
            if (y->ndim != 2 || y->shape[0] != b || (K >= 0 && y->shape[1] != K)) {
                char s[EQR_SHAPE_BUF];
                st = eqr__fail(ctx, EQR_ERR_SHAPE, "%s: the output must be [%lld, K] (K fixed), "
                               "got %s", fn, (long long)b, EQR_SHAPE(y, s));
                break;
            }
            if (K < 0) {
                K = y->shape[1];
                base = malloc((size_t)(batch * K) * sizeof(float));
                if (!base) {
                    st = eqr__fail(ctx, EQR_ERR_NOMEM, "%s: cannot allocate %lld outputs", fn,
                                   (long long)(batch * K));
                    break;
                }
            }
            if (e < 0)
                memcpy(base, y->data, (size_t)(b * K) * sizeof(float));
            else {
                double w = worst_row(base, y, b, K);
                if (w > worst) worst = w;
            }
            eqr__arena_rewind(ctx, inner);
        }
    }
    if (st == EQR_OK) *err = worst;
done:
    free(base);
    if (psnap) memcpy(ctx->pdata, psnap, pbytes);
    ctx->rng = rng0;
    eqr_grad_set_enabled(ctx, prev);
    eqr__arena_rewind(ctx, mark);
    return st;
}
