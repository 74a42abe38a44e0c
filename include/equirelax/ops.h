/* equirelax differentiable ops. Each op computes its output in the step
 * arena and, when gradients are enabled and an input requires grad, records
 * a tape node for its backward.
 *
 * Error contract: an op returns NULL and records a message on the context if
 * an argument is invalid (naming the op and the offending shapes). An op given
 * a NULL input, or called on a context already in error, returns NULL without
 * doing anything, so a whole forward pass can be checked once at the end. */
#ifndef EQUIRELAX_OPS_H
#define EQUIRELAX_OPS_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- elementwise (NumPy broadcasting: shapes are right-aligned, each pair
 * of dimensions must be equal or one of them 1) ---- */
eqr_tensor *eqr_add(eqr_ctx *ctx, eqr_tensor *a, eqr_tensor *b);
eqr_tensor *eqr_sub(eqr_ctx *ctx, eqr_tensor *a, eqr_tensor *b);
eqr_tensor *eqr_mul(eqr_ctx *ctx, eqr_tensor *a, eqr_tensor *b);
eqr_tensor *eqr_div(eqr_ctx *ctx, eqr_tensor *a, eqr_tensor *b);
/* y = s * x */
eqr_tensor *eqr_scale(eqr_ctx *ctx, eqr_tensor *x, float s);
/* y = x + s */
eqr_tensor *eqr_add_scalar(eqr_ctx *ctx, eqr_tensor *x, float s);

/* ---- linear algebra (cblas_sgemm) ---- */
/* [M,K] x [K,N] -> [M,N] */
eqr_tensor *eqr_matmul(eqr_ctx *ctx, eqr_tensor *a, eqr_tensor *b);
/* y = x W^T + b: x [N,in], w [out,in], b [out] or NULL -> [N,out] */
eqr_tensor *eqr_linear(eqr_ctx *ctx, eqr_tensor *x, eqr_tensor *w, eqr_tensor *b);

/* ---- convolution and pooling, NCHW ---- */
typedef struct eqr_conv2d_geom {
    int stride_h, stride_w; /* 0 means 1 */
    int pad_h, pad_w;       /* zero padding on each side */
    int dil_h, dil_w;       /* 0 means 1 */
} eqr_conv2d_geom;
/* Same stride, padding and dilation on both axes. */
#define EQR_CONV2D(stride, pad, dil) \
    ((eqr_conv2d_geom){(stride), (stride), (pad), (pad), (dil), (dil)})

/* x [N,C,H,W], w [O,C,kh,kw], b [O] or NULL; geom NULL = stride 1, no padding.
 * Output [N,O,OH,OW], OH = (H + 2 pad_h - dil_h (kh-1) - 1) / stride_h + 1.
 * im2col + sgemm per image; images are spread over the context's threads. */
eqr_tensor *eqr_conv2d(eqr_ctx *ctx, eqr_tensor *x, eqr_tensor *w, eqr_tensor *b,
                       const eqr_conv2d_geom *geom);
/* Max pooling over k x k windows; padded cells never win. */
eqr_tensor *eqr_maxpool2d(eqr_ctx *ctx, eqr_tensor *x, int k, int stride, int pad);
/* Average pooling; padded cells are not counted in the divisor. */
eqr_tensor *eqr_avgpool2d(eqr_ctx *ctx, eqr_tensor *x, int k, int stride, int pad);
/* Mean over all dimensions after the first two: [N,C,...] -> [N,C]. */
eqr_tensor *eqr_global_avgpool(eqr_ctx *ctx, eqr_tensor *x);

/* ---- activations ---- */
eqr_tensor *eqr_relu(eqr_ctx *ctx, eqr_tensor *x);
eqr_tensor *eqr_leaky_relu(eqr_ctx *ctx, eqr_tensor *x, float slope);
/* ReLU that overwrites x, to save the memory of a second map and of its
 * gradient. The result is a view of x (same storage, and so the same
 * gradient buffer); its backward zeroes that gradient in place where the
 * output is 0. Contract: x must be an intermediate result of this step that
 *   - is consumed by nothing but this call: pass the result on, not x (x's
 *     values are the result's afterwards);
 *   - comes from an op whose backward does not read its own output: conv2d,
 *     the group / steerable / relaxed convs, linear, add, matmul, pooling
 *     are fine; sigmoid, tanh, exp, softmax outputs are not.
 * With recording off (evaluation) it is a plain in-place relu of x.
 * Rejected (NULL, EQR_ERR_ARG, message) when detectable: x a view, a
 * parameter or buffer; with recording on, a tensor that does not require
 * grad (data, a wrapped buffer: use eqr_relu), one not produced by an op
 * recorded in the current step, or one that an op recorded after x already
 * reads; with recording off, a tensor recorded for backward earlier. */
eqr_tensor *eqr_relu_inplace(eqr_ctx *ctx, eqr_tensor *x);
eqr_tensor *eqr_sigmoid(eqr_ctx *ctx, eqr_tensor *x);
eqr_tensor *eqr_tanh(eqr_ctx *ctx, eqr_tensor *x);
/* Exact GELU: x * Phi(x) with the normal CDF via erf. */
eqr_tensor *eqr_gelu(eqr_ctx *ctx, eqr_tensor *x);
/* SiLU (swish): x * sigmoid(x). */
eqr_tensor *eqr_silu(eqr_ctx *ctx, eqr_tensor *x);

/* ---- losses (scalar outputs, mean over the batch) ---- */
/* logits [N,K], labels[N] in [0,K) (copied). Numerically stable log-softmax. */
eqr_tensor *eqr_softmax_cross_entropy(eqr_ctx *ctx, eqr_tensor *logits,
                                      const int32_t *labels);
/* mean((a - b)^2) over all elements; shapes must match. */
eqr_tensor *eqr_mse(eqr_ctx *ctx, eqr_tensor *a, eqr_tensor *b);

/* ---- reductions; axis may be negative (counted from the end) ---- */
eqr_tensor *eqr_sum(eqr_ctx *ctx, eqr_tensor *x, int axis, int keepdim);
/* Sum of squares of all entries as a scalar [1], accumulated in double in
 * fixed blocks so the result does not depend on the thread count;
 * differentiable (d/dx = 2 x). Cheaper than eqr_mul + eqr_sum_all. */
eqr_tensor *eqr_sumsq(eqr_ctx *ctx, eqr_tensor *x);
eqr_tensor *eqr_mean(eqr_ctx *ctx, eqr_tensor *x, int axis, int keepdim);
/* Max over an axis; the gradient goes to the first maximal element. */
eqr_tensor *eqr_max(eqr_ctx *ctx, eqr_tensor *x, int axis, int keepdim);
/* Sum / mean of all elements -> scalar. */
eqr_tensor *eqr_sum_all(eqr_ctx *ctx, eqr_tensor *x);
eqr_tensor *eqr_mean_all(eqr_ctx *ctx, eqr_tensor *x);

/* ---- shape ops ---- */
/* View with a new shape of equal numel; one dimension may be -1 (inferred). */
eqr_tensor *eqr_reshape(eqr_ctx *ctx, eqr_tensor *x, int ndim, const int64_t *shape);
/* Copy with axes reordered: out.shape[i] = x.shape[perm[i]]. */
eqr_tensor *eqr_permute(eqr_ctx *ctx, eqr_tensor *x, const int *perm);
/* Concatenate n tensors along axis; other dimensions must agree. */
eqr_tensor *eqr_concat(eqr_ctx *ctx, eqr_tensor *const *xs, int n, int axis);
/* Elements [start, start+len) along axis. A view when it is contiguous
 * (every dimension before axis is 1, e.g. a batch slice), else a copy. */
eqr_tensor *eqr_slice(eqr_ctx *ctx, eqr_tensor *x, int axis, int64_t start, int64_t len);
/* out.flat[i] = idx[i] == -1 ? 0 : x.flat[idx[i]], out shape given. idx has
 * numel(shape) entries, is NOT copied and must stay valid until backward
 * (precompute it once, e.g. for filter expansion). Backward scatter-adds. */
eqr_tensor *eqr_gather(eqr_ctx *ctx, eqr_tensor *x, const int64_t *idx,
                       int ndim, const int64_t *shape);

/* ---- normalisation and regularisation ---- */
/* Batch norm over axis 1 of x [N,C,...]: statistics over all other axes.
 * gamma, beta [C] or NULL (scale 1, shift 0). Training: normalise with batch
 * statistics and update running_mean/var (if given) as
 * r = (1 - momentum) r + momentum * batch_stat (unbiased variance).
 * Evaluation (training = 0): normalise with the running statistics, which
 * are then required. */
eqr_tensor *eqr_batchnorm(eqr_ctx *ctx, eqr_tensor *x, eqr_tensor *gamma,
                          eqr_tensor *beta, eqr_tensor *running_mean,
                          eqr_tensor *running_var, float momentum, float eps,
                          int training);
/* Inverted dropout: zero each element with probability p and scale the rest
 * by 1/(1-p), drawing from the context RNG. Identity when training == 0. */
eqr_tensor *eqr_dropout(eqr_ctx *ctx, eqr_tensor *x, float p, int training);

#ifdef __cplusplus
}
#endif
#endif
