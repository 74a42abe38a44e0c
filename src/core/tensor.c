/* Tensor creation and helpers. */
#include "core/internal.h"

#include <stdio.h>

/* The product of the NONZERO sizes must stay below 2^61, so an empty
 * tensor cannot carry sizes whose products or sums (strides, planes,
 * concatenated axes) overflow int64 inside the ops. */
int64_t eqr_shape_num_elements(int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > EQR_MAX_DIMS) return -1;
    int64_t nz = 1;
    int empty = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] == 0) {
            empty = 1;
            continue;
        }
        if (nz > INT64_MAX / 4 / shape[i]) return -1;
        nz *= shape[i];
    }
    return empty ? 0 : nz;
}

char *eqr_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    if (!buf || n == 0) return buf;
    size_t k = 0;
    buf[0] = '\0';
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

int eqr_tensor_same_shape(const eqr_tensor *a, const eqr_tensor *b) {
    if (!a || !b || a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

int64_t eqr__shape_check(eqr_ctx *ctx, const char *fn, const char *what, int ndim,
                         const int64_t *shape) {
    const int listed = ndim >= 0 && ndim <= EQR_MAX_DIMS && (ndim == 0 || shape);
    int64_t n = listed ? eqr_shape_num_elements(ndim, shape) : -1;
    if (n < 0) {
        char b[EQR_SHAPE_BUF];
        if (listed)
            eqr_shape_str(ndim, shape, b, sizeof b);
        else
            snprintf(b, sizeof b, "with ndim %d%s", ndim, shape ? "" : " and no sizes");
        eqr__fail(ctx, EQR_ERR_SHAPE,
                  "%s: invalid %s %s (at most %d dims, sizes >= 0, nonzero sizes "
                  "multiplying to < 2^61)",
                  fn, what, b, EQR_MAX_DIMS);
    }
    return n;
}

/* Fill the shape fields of t; 0 (error recorded, naming fn) on invalid shapes. */
static int set_shape(eqr_ctx *ctx, const char *fn, eqr_tensor *t, int ndim, const int64_t *shape) {
    int64_t n = eqr__shape_check(ctx, fn, "shape", ndim, shape);
    if (n < 0) return 0;
    t->ndim = ndim;
    for (int i = 0; i < EQR_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 1;
    t->numel = n;
    return 1;
}

static eqr_tensor *tensor_new(eqr_ctx *ctx, const char *fn, int ndim, const int64_t *shape) {
    if (!eqr__ok(ctx, 0)) return NULL;
    eqr_tensor *t = eqr__arena_alloc(ctx, sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->node = -1;
    if (!set_shape(ctx, fn, t, ndim, shape)) return NULL;
    t->data = eqr__arena_alloc(ctx, (size_t)t->numel * sizeof(float));
    return t->data ? t : NULL;
}

eqr_tensor *eqr__tensor_empty(eqr_ctx *ctx, int ndim, const int64_t *shape) {
    return tensor_new(ctx, "tensor", ndim, shape);
}

/* eqr_tensor_from / eqr_tensor_zeros under their own names in errors. */
static eqr_tensor *tensor_fill_new(eqr_ctx *ctx, const char *fn, int ndim, const int64_t *shape,
                                   const float *data) {
    eqr_tensor *t = tensor_new(ctx, fn, ndim, shape);
    if (!t) return NULL;
    if (data)
        memcpy(t->data, data, (size_t)t->numel * sizeof(float));
    else
        memset(t->data, 0, (size_t)t->numel * sizeof(float));
    return t;
}

eqr_tensor *eqr_tensor_from(eqr_ctx *ctx, int ndim, const int64_t *shape, const float *data) {
    return tensor_fill_new(ctx, "eqr_tensor_from", ndim, shape, data);
}

eqr_tensor *eqr_tensor_zeros(eqr_ctx *ctx, int ndim, const int64_t *shape) {
    return tensor_fill_new(ctx, "eqr_tensor_zeros", ndim, shape, NULL);
}

eqr_tensor *eqr_tensor_wrap(eqr_ctx *ctx, float *data, int ndim, const int64_t *shape) {
    if (!eqr__ok(ctx, 0)) return NULL;
    if (!data) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_tensor_wrap: data is NULL");
        return NULL;
    }
    eqr_tensor *t = eqr__arena_alloc(ctx, sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->node = -1;
    if (!set_shape(ctx, "eqr_tensor_wrap", t, ndim, shape)) return NULL;
    t->data = data;
    return t;
}

eqr_tensor *eqr_tensor_scalar(eqr_ctx *ctx, float v) {
    eqr_tensor *t = eqr__tensor_empty(ctx, 0, NULL);
    if (t) t->data[0] = v;
    return t;
}

void eqr_tensor_fill(eqr_tensor *t, float v) {
    if (!t) return;
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = v;
}

void eqr_tensor_normal(eqr_tensor *t, eqr_rng *rng, float std) {
    if (!t || !rng) return;
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = std * eqr_rng_normal(rng);
}

void eqr_tensor_uniform(eqr_tensor *t, eqr_rng *rng, float lo, float hi) {
    if (!t || !rng) return;
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = lo + (hi - lo) * eqr_rng_uniform(rng);
}
