/* equirelax tensors: float32, row-major, contiguous, up to 6 dimensions,
 * batch first (feature maps are [N,C,H,W] or [N,C,G,H,W]).
 *
 * Lifetimes: tensors made by eqr_tensor_* and by ops live in the context's
 * step arena and are freed by eqr_step_reset. Parameters (param.h) persist.
 * Views (reshape, batch slices) share data and gradient with their base. */
#ifndef EQUIRELAX_TENSOR_H
#define EQUIRELAX_TENSOR_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EQR_MAX_DIMS 6

enum {
    EQR_T_REQUIRES_GRAD = 1u << 0, /* gradients flow into this tensor */
    EQR_T_PARAM = 1u << 1,         /* lives in the parameter store */
    EQR_T_BUFFER = 1u << 2         /* persistent state without gradient */
};

/* Fields are read-only for users except the contents of data (and grad). */
typedef struct eqr_tensor {
    float *data;                   /* numel floats, contiguous row-major */
    float *grad;                   /* same layout; NULL until needed */
    int64_t shape[EQR_MAX_DIMS];   /* unused trailing entries are 1 */
    int ndim;                      /* 0 (scalar) .. EQR_MAX_DIMS */
    int64_t numel;
    uint32_t flags;                /* EQR_T_* */
    int32_t node;                  /* producing tape node, -1 for leaves */
    struct eqr_tensor *base;       /* view: tensor whose storage it shares */
    int64_t offset;                /* view: element offset into base */
} eqr_tensor;

/* New zero-filled tensor in the step arena. NULL on error (recorded). */
eqr_tensor *eqr_tensor_zeros(eqr_ctx *ctx, int ndim, const int64_t *shape);
/* New tensor filled from data (copied); data may be NULL for zeros. */
eqr_tensor *eqr_tensor_from(eqr_ctx *ctx, int ndim, const int64_t *shape,
                            const float *data);
/* Tensor over a caller-owned buffer (not copied, not freed). The buffer must
 * outlive the step. Such a tensor never requires grad. */
eqr_tensor *eqr_tensor_wrap(eqr_ctx *ctx, float *data, int ndim,
                            const int64_t *shape);
/* Scalar tensor holding v. */
eqr_tensor *eqr_tensor_scalar(eqr_ctx *ctx, float v);

/* Fill every element with v. */
void eqr_tensor_fill(eqr_tensor *t, float v);
/* Fill with N(0, std^2) / U(lo, hi) samples from rng. */
void eqr_tensor_normal(eqr_tensor *t, eqr_rng *rng, float std);
void eqr_tensor_uniform(eqr_tensor *t, eqr_rng *rng, float lo, float hi);

/* Element count of a shape; -1 if a dimension is negative or the product
 * of the nonzero sizes reaches 2^61 (also for empty shapes, so that sums and
 * products of sizes never overflow int64). */
int64_t eqr_shape_num_elements(int ndim, const int64_t *shape);
/* 1 if a and b have the same shape. */
int eqr_tensor_same_shape(const eqr_tensor *a, const eqr_tensor *b);
/* Format a shape as "[2,3,4]" into buf (always NUL-terminated); returns buf. */
char *eqr_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
