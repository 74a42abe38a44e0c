/* equirelax normalisation layers on O(3) irreps-typed features: batch norm
 * (statistics over the batch, running statistics for evaluation) and layer
 * norm (statistics per sample).
 *
 * THE SPLIT (e3nn's BatchNorm with component normalisation). A copy u of an
 * entry (l, p) of the irreps is one CHANNEL of 2l+1 components.
 *   - Scalars 0e are centred: y = w (x - mean) / sqrt(var + eps) + b.
 *   - Every other channel (l > 0, and the pseudo-scalars 0o, which change
 *     sign under parity) is only scaled, by its mean squared component:
 *     y = w x / sqrt(mean(x_m^2) + eps). Subtracting a mean or adding a
 *     bias would break equivariance there.
 * The affine weight w is one per channel (shared by its 2l+1 components),
 * the bias one per 0e channel.
 *
 * LAYOUT. x is [..., dim(irreps)] in the flat layout of o3.h; every leading
 * axis is a batch axis. The output has the shape of x and its irreps.
 * Forward returns a new step-arena tensor, differentiable in x and in the
 * parameters (NULL with the error recorded on bad input); the backward reads
 * the layer, so a layer must outlive the backward of the step that used it.
 * A create fails with EQR_ERR_ARG, registering nothing, on a bad name, a
 * NULL, empty (dimension 0) or invalid irreps (an entry with mul < 0, l
 * outside 0..EQR_O3_LMAX or p not +-1), a parameter name already taken or
 * bad options. Forward fails with EQR_ERR_SHAPE, naming the layer's irreps,
 * if the last axis of x is not dim(irreps). */
#ifndef EQUIRELAX_IRREPS_NORM_H
#define EQUIRELAX_IRREPS_NORM_H

#include "o3.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Options of both layers; zero-initialise (or pass NULL) for the defaults. */
typedef struct eqr_irreps_norm_opts {
    float eps;      /* added to the variance / mean square; 0 = 1e-5 */
    float momentum; /* batch norm's running-statistics rate in (0, 1]; 0 = 0.1 */
    int no_affine;  /* 1: no learned weight or bias */
} eqr_irreps_norm_opts;

/* ---------------------------------------------------------- batch norm */

/* Irreps batch normalisation. Statistics per channel over every row of x
 * (all leading axes) and, for l > 0, the channel's 2l+1 components (the
 * mean squared component). Training (the default mode) normalises with the
 * batch statistics (biased variance) and updates the running statistics
 * r = (1 - momentum) r + momentum * batch_stat, the unbiased variance for
 * 0e channels (as eqr_field_bn and PyTorch; e3nn keeps the biased one) and
 * the mean square for the others; evaluation normalises with the running
 * statistics. Parameters, C = number of channels (sum of mul), B = number
 * of 0e channels, both in layout order:
 *   "<name>.weight"       [C] initialised to 1 (unless no_affine)
 *   "<name>.bias"         [B] initialised to 0 (unless no_affine or B = 0)
 *   "<name>.running_mean" [B] EQR_PARAM_BUFFER, 0 (absent if B = 0)
 *   "<name>.running_var"  [C] EQR_PARAM_BUFFER, 1
 * The buffers live in the parameter store, so checkpoints carry them. */
typedef struct eqr_irreps_bn eqr_irreps_bn;
eqr_irreps_bn *eqr_irreps_bn_create(eqr_ctx *ctx, const char *name, const eqr_irreps *irreps,
                                    const eqr_irreps_norm_opts *opts);
/* x [..., dim] -> same shape. Training needs at least one row, and more
 * than one with a 0e channel (EQR_ERR_SHAPE otherwise): a variance of one
 * value is 0. */
eqr_tensor *eqr_irreps_bn_forward(eqr_ctx *ctx, eqr_irreps_bn *layer, eqr_tensor *x);
/* 1 = training (batch statistics, running update), 0 = evaluation. */
void eqr_irreps_bn_set_training(eqr_irreps_bn *layer, int training);
int eqr_irreps_bn_training(const eqr_irreps_bn *layer);
/* The layer's irreps (a copy it owns); NULL if layer is NULL. */
const eqr_irreps *eqr_irreps_bn_irreps(const eqr_irreps_bn *layer);
/* Parameter tensors (NULL when absent). */
eqr_tensor *eqr_irreps_bn_weight(const eqr_irreps_bn *layer);
eqr_tensor *eqr_irreps_bn_bias(const eqr_irreps_bn *layer);
eqr_tensor *eqr_irreps_bn_running_mean(const eqr_irreps_bn *layer);
eqr_tensor *eqr_irreps_bn_running_var(const eqr_irreps_bn *layer);
/* Free the layer (its parameters stay in the store); NULL is ok. */
void eqr_irreps_bn_destroy(eqr_irreps_bn *layer);

/* ---------------------------------------------------------- layer norm */

/* Irreps layer normalisation: per row of x and per ENTRY of the irreps
 * (not merged with other entries of the same (l, p): simplify the irreps
 * first for that), statistics over the entry's mul channels: for 0e the
 * mean and the (biased) variance of the mul values, otherwise the mean
 * squared component over mul (2l+1) values. No running statistics, the same
 * in training and evaluation. Parameters (C, B as for batch norm):
 *   "<name>.weight" [C] initialised to 1 (unless no_affine)
 *   "<name>.bias"   [B] initialised to 0 (unless no_affine or B = 0)
 * opts->momentum is ignored. An entry 1x0e normalises to its bias. */
typedef struct eqr_irreps_ln eqr_irreps_ln;
eqr_irreps_ln *eqr_irreps_ln_create(eqr_ctx *ctx, const char *name, const eqr_irreps *irreps,
                                    const eqr_irreps_norm_opts *opts);
/* x [..., dim] -> same shape. */
eqr_tensor *eqr_irreps_ln_forward(eqr_ctx *ctx, eqr_irreps_ln *layer, eqr_tensor *x);
const eqr_irreps *eqr_irreps_ln_irreps(const eqr_irreps_ln *layer);
eqr_tensor *eqr_irreps_ln_weight(const eqr_irreps_ln *layer);
eqr_tensor *eqr_irreps_ln_bias(const eqr_irreps_ln *layer);
void eqr_irreps_ln_destroy(eqr_irreps_ln *layer);

#ifdef __cplusplus
}
#endif

#endif
