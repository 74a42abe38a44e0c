/* equirelax vector neurons (Deng et al., "Vector Neurons: A General
 * Framework for SO(3)-Equivariant Networks", ICCV 2021).
 *
 * LAYOUT. A vector-neuron feature is x [N, C, 3, P]: batch, channels, the
 * xyz components, points. Every channel of every point is one 3-vector;
 * a rotation R acts as x[n, c, :, p] -> R x[n, c, :, p] (eqr_so3_rotate
 * with axis 2). Flattened over (C, 3) one point's feature is the SO(3)
 * type {0, C} of so3.h (vector c at entries 3c .. 3c+2). Every layer but
 * the pools also accepts a point-less x [N, C, 3] (treated as P = 1, output
 * likewise without the point axis); the pools need the point axis.
 *
 * LAYERS. Pattern of the library: eqr_vn_xxx_create(ctx, name, ...)
 * registers the parameters "<name>.weight" etc. in the store (initialised
 * from the context RNG), eqr_vn_xxx_forward(ctx, layer, x) returns a new
 * step-arena tensor (NULL + EQR_ERR_SHAPE naming the shapes on a bad x; a
 * NULL x or a context in error: NULL, nothing recorded), eqr_vn_xxx_destroy
 * frees the layer (NULL ok; parameters stay in the store). A create fails
 * (NULL, EQR_ERR_ARG) on channel counts < 1, a NULL/empty/too long name or
 * a parameter name already taken, before registering anything. Forwards are
 * differentiable and allocate only in the step arena.
 *
 * EQUIVARIANCE. VN-Linear, VN-LeakyReLU and VN-BatchNorm commute with
 * rotations, f(R x) = R f(x); the pools are equivariant too ([N, C, 3] out);
 * the invariant layer's output is rotation invariant. The pools are also
 * invariant to the order of the points. */
#ifndef EQUIRELAX_VN_H
#define EQUIRELAX_VN_H

#include "so3.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------- VN-Linear */

/* y[n, o, :, p] = sum_c W[o, c] x[n, c, :, p]: mixes channels, never the
 * xyz components, so it commutes with every rotation (and a bias would
 * not: there is none). "<name>.weight" [c_out, c_in], initialised
 * N(0, 1 / c_in). */
typedef struct eqr_vn_linear eqr_vn_linear;
eqr_vn_linear *eqr_vn_linear_create(eqr_ctx *ctx, const char *name, int c_in, int c_out);
/* x [N, c_in, 3, P] (or [N, c_in, 3]) -> [N, c_out, 3, P]. */
eqr_tensor *eqr_vn_linear_forward(eqr_ctx *ctx, eqr_vn_linear *layer, eqr_tensor *x);
eqr_tensor *eqr_vn_linear_weight(const eqr_vn_linear *layer);
int eqr_vn_linear_in_channels(const eqr_vn_linear *layer);
int eqr_vn_linear_out_channels(const eqr_vn_linear *layer);
void eqr_vn_linear_destroy(eqr_vn_linear *layer);


/* ------------------------------------------------------- VN-LeakyReLU */

/* Options of eqr_vn_leaky_relu_create; zero-initialise for the defaults. */
typedef struct eqr_vn_leaky_relu_opts {
    float negative_slope; /* in [0, 1); 0 = the VN-ReLU (default) */
    int shared;           /* 1: one learned direction for all channels */
} eqr_vn_leaky_relu_opts;

/* VN-LeakyReLU: a learned direction k = U x per channel (U "<name>.weight"
 * [C, C], or [1, C] when shared, N(0, 1 / C)); where <q, k> < 0 the
 * component of q = x along k is removed:
 *     y = x + (1 - slope) * relu(-<x, k>) / (|k|^2 + eps) * k,
 * eps = 1e-6; slope 0 gives the VN-ReLU of the paper. Channel count kept. */
typedef struct eqr_vn_leaky_relu eqr_vn_leaky_relu;
eqr_vn_leaky_relu *eqr_vn_leaky_relu_create(eqr_ctx *ctx, const char *name, int channels,
                                            const eqr_vn_leaky_relu_opts *opts);
eqr_tensor *eqr_vn_leaky_relu_forward(eqr_ctx *ctx, eqr_vn_leaky_relu *layer, eqr_tensor *x);
eqr_tensor *eqr_vn_leaky_relu_weight(const eqr_vn_leaky_relu *layer);
void eqr_vn_leaky_relu_destroy(eqr_vn_leaky_relu *layer);

/* ------------------------------------------------------ VN-BatchNorm */

/* Options of eqr_vn_bn_create; zero-initialise for the defaults. */
typedef struct eqr_vn_bn_opts {
    float eps;      /* batch-norm variance epsilon; 0 = 1e-5 */
    float momentum; /* running-statistics rate in (0, 1]; 0 = 0.1 */
} eqr_vn_bn_opts;

/* VN-BatchNorm: the norms n = sqrt(|x|^2 + 1e-8) of the vectors (rotation
 * invariant) are batch-normalised per channel over the batch and points
 * (eqr_batchnorm), and each vector is rescaled to its new norm:
 *     y = x * BN(n) / n.
 * Parameters "<name>.weight" [C] (1), "<name>.bias" [C] (0), buffers
 * "<name>.running_mean" [C] (0) and "<name>.running_var" [C] (1).
 * Training mode (the default) uses batch statistics and needs N * P > 1;
 * evaluation uses the running statistics. */
typedef struct eqr_vn_bn eqr_vn_bn;
eqr_vn_bn *eqr_vn_bn_create(eqr_ctx *ctx, const char *name, int channels,
                            const eqr_vn_bn_opts *opts);
eqr_tensor *eqr_vn_bn_forward(eqr_ctx *ctx, eqr_vn_bn *layer, eqr_tensor *x);
/* 1 = training, 0 = evaluation. */
void eqr_vn_bn_set_training(eqr_vn_bn *layer, int training);
int eqr_vn_bn_training(const eqr_vn_bn *layer);
eqr_tensor *eqr_vn_bn_weight(const eqr_vn_bn *layer);
eqr_tensor *eqr_vn_bn_bias(const eqr_vn_bn *layer);
eqr_tensor *eqr_vn_bn_running_mean(const eqr_vn_bn *layer);
eqr_tensor *eqr_vn_bn_running_var(const eqr_vn_bn *layer);
void eqr_vn_bn_destroy(eqr_vn_bn *layer);

/* ---------------------------------------------------------- pooling */

/* Mean over the points: x [N, C, 3, P] -> [N, C, 3]. No parameters. */
eqr_tensor *eqr_vn_mean_pool(eqr_ctx *ctx, eqr_tensor *x);

/* VN max pool: per channel, the point whose vector has the largest dot
 * product with a learned direction k = U x ("<name>.weight" [C, C],
 * N(0, 1 / C)) is selected: y[n, c, :] = x[n, c, :, p*], p* = argmax_p
 * <x[n, c, :, p], k[n, c, :, p]> (first maximum on ties). The gradient
 * flows to the selected vectors of x; as in the paper, the selection is
 * piecewise constant in U, so U receives no gradient (it stays at its
 * initial value unless set). x [N, C, 3, P] -> [N, C, 3]. */
typedef struct eqr_vn_max_pool eqr_vn_max_pool;
eqr_vn_max_pool *eqr_vn_max_pool_create(eqr_ctx *ctx, const char *name, int channels);
eqr_tensor *eqr_vn_max_pool_forward(eqr_ctx *ctx, eqr_vn_max_pool *layer, eqr_tensor *x);
eqr_tensor *eqr_vn_max_pool_weight(const eqr_vn_max_pool *layer);
void eqr_vn_max_pool_destroy(eqr_vn_max_pool *layer);

/* ---------------------------------------------------- invariant layer */

/* VN invariant layer: a learned equivariant frame of 3 vectors
 * z = W_f x ("<name>.weight" [3, C], N(0, 1 / C), a VN-Linear to 3
 * channels) and the products of x with the transposed frame,
 *     y[n, c, k, p] = <x[n, c, :, p], z[n, k, :, p]>,
 * which do not change when x is rotated (x -> R x gives z -> R z).
 * x [N, C, 3, P] -> [N, C, 3, P] (or [N, C, 3] -> [N, C, 3]); flatten
 * (C, 3) for an invariant feature vector of 3C entries per point. */
typedef struct eqr_vn_invariant eqr_vn_invariant;
eqr_vn_invariant *eqr_vn_invariant_create(eqr_ctx *ctx, const char *name, int channels);
eqr_tensor *eqr_vn_invariant_forward(eqr_ctx *ctx, eqr_vn_invariant *layer, eqr_tensor *x);
eqr_tensor *eqr_vn_invariant_weight(const eqr_vn_invariant *layer);
void eqr_vn_invariant_destroy(eqr_vn_invariant *layer);

#ifdef __cplusplus
}
#endif
#endif
