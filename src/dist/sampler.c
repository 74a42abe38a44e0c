/* The distributed sampler (dist.h): each rank's contiguous share of each
 * global batch, so N ranks with shares of B / N see, step by step, the
 * samples one process sees with batches of B. */
#include "dist/dist_internal.h"

#include <string.h>

int eqr_dist_batcher_next(eqr_dist *d, eqr_batcher *b, float *x, int32_t *y, int64_t *count) {
    static const char *fn = "eqr_dist_batcher_next";
    if (count) *count = 0;
    if (!d || !b || !b->perm) return 0;
    const int64_t pos = b->pos;
    int64_t k;
    /* advances b (no copy); perm stays this epoch's while it returns 1 */
    if (!eqr_batcher_next(b, NULL, NULL, &k)) return 0;
    if (k < d->size) {
        eqr__fail(d->ctx, EQR_ERR_ARG,
                  "%s: a global batch of %lld samples cannot be shared by %d ranks (make the "
                  "data set's size leave a last batch of at least %d, or use fewer ranks)",
                  fn, (long long)k, d->size, d->size);
        return 0;
    }
    const int64_t lo = k * d->rank / d->size, hi = k * (d->rank + 1) / d->size;
    const eqr_dataset *ds = b->ds;
    const size_t per = (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
    for (int64_t i = lo; i < hi; i++) {
        int64_t s = b->perm[pos + i];
        if (x) memcpy(x + (size_t)(i - lo) * per, ds->x + (size_t)s * per, per * sizeof(float));
        if (y) y[i - lo] = ds->y[s];
    }
    d->local_n = hi - lo;
    d->global_n = k;
    if (count) *count = hi - lo;
    return 1;
}

int eqr_dist_next_batch(void *user, eqr_batcher *b, float *x, int32_t *y, int64_t *count) {
    return eqr_dist_batcher_next(user, b, x, y, count);
}

eqr_status eqr_dist_set_share(eqr_dist *d, int64_t local_n, int64_t global_n) {
    if (!d) return EQR_ERR_ARG;
    if (global_n < d->size || local_n < 1 || local_n > global_n)
        return eqr__fail(d->ctx, EQR_ERR_ARG,
                         "eqr_dist_set_share: a share of %lld of a global batch of %lld on %d "
                         "ranks (need 1 <= share <= global, global >= ranks)",
                         (long long)local_n, (long long)global_n, d->size);
    d->local_n = local_n;
    d->global_n = global_n;
    return EQR_OK;
}
