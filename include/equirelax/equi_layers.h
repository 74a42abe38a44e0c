/* equirelax equivariant layers on field types (other than convolutions):
 * pooling to invariant fields, equivariant nonlinearities and equivariant
 * batch normalisation.
 *
 * FIELD TYPES. A field type is an eqr_rep (groups.h): a direct sum of parts,
 * each mult copies of an irrep or of the regular representation. One copy is
 * one FIELD: a trivial field has 1 channel, an irrep field 1 or 2, a regular
 * field |G|. A feature map of type T is [N, T->dim, ...] (usually
 * [N, T->dim, H, W]; any number of trailing spatial axes, including none, is
 * accepted), its channels laid out as in groups.h: parts in order, copies
 * consecutive, regular copy channels = copy * |G| + element index.
 *
 * TYPES AND OWNERSHIP. Every layer keeps a pointer to the caller's input
 * type, which must outlive the layer. Layers whose output type differs from
 * the input type (pools, gated) build and OWN their output type: it is valid
 * until the layer is destroyed (eqr_xxx_out_type). Layers that keep the type
 * (pointwise, norm-ReLU, batch norm) return the caller's input type.
 * Types are checked at construction (EQR_ERR_ARG with a message naming the
 * offending part); forward checks x is [N, in_type->dim, ...] (EQR_ERR_SHAPE).
 *
 * FORWARD. Each forward returns a new step-arena tensor (NULL with the error
 * recorded on bad input; NULL x or a context in error: NULL, nothing
 * recorded) and is differentiable. The backward of a forward reads tables the
 * layer owns, so a layer must outlive the backward of the step that used it.
 * Forward allocates nothing beyond the step arena.
 *
 * Equivariance: every layer here commutes with eqr_rep_act of its input and
 * output types for all elements acting exactly on the grid (90 degree
 * rotations on square maps, flips); the pools and the invariant map give
 * trivial (invariant per pixel) output fields. */
#ifndef EQUIRELAX_EQUI_LAYERS_H
#define EQUIRELAX_EQUI_LAYERS_H

#include "groups.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ pooling */

/* How a regular field is reduced over its group axis. */
typedef enum eqr_gpool_mode {
    EQR_GPOOL_MAX = 0, /* max over the |G| channels (gradient to the first max) */
    EQR_GPOOL_MEAN = 1 /* mean over the |G| channels */
} eqr_gpool_mode;

/* A pooling layer from fields to trivial fields; no parameters. Its output
 * type is one trivial part with one copy per output channel, owned by the
 * layer. */
typedef struct eqr_field_pool eqr_field_pool;

/* Group pooling: each regular field -> one trivial field (max or mean over
 * its group axis); trivial fields are passed through unchanged. Any other
 * irrep part is rejected (use eqr_norm_pool_create or
 * eqr_invariant_map_create). */
eqr_field_pool *eqr_group_pool_create(eqr_ctx *ctx, const eqr_rep *in_type, eqr_gpool_mode mode);

/* Norm pooling: every field (of any kind) -> its Euclidean norm over the
 * field's channels, a trivial field. For a 1D field that is |x|. The
 * gradient at a zero field is taken as 0. */
eqr_field_pool *eqr_norm_pool_create(eqr_ctx *ctx, const eqr_rep *in_type);

/* Invariant map of any type: trivial fields kept, regular fields pooled by
 * mode, every other irrep field (including the 1D non-trivial ones) replaced
 * by its norm. One trivial output field per input field, in order. */
eqr_field_pool *eqr_invariant_map_create(eqr_ctx *ctx, const eqr_rep *in_type,
                                         eqr_gpool_mode mode);

/* [N, in_type->dim, ...] -> [N, out_type->dim, ...]. */
eqr_tensor *eqr_field_pool_forward(eqr_ctx *ctx, eqr_field_pool *layer, eqr_tensor *x);
/* Output type (owned by the layer); NULL if layer is NULL. */
const eqr_rep *eqr_field_pool_out_type(const eqr_field_pool *layer);
/* Free the layer and its output type; NULL is ok. */
void eqr_field_pool_destroy(eqr_field_pool *layer);

/* ----------------------------------------------------- nonlinearities */

/* Pointwise functions (ops.h activations). */
typedef enum eqr_pointwise_kind {
    EQR_PW_RELU = 0,
    EQR_PW_LEAKY_RELU = 1, /* slope from the create call */
    EQR_PW_SIGMOID = 2,
    EQR_PW_TANH = 3,
    EQR_PW_GELU = 4,
    EQR_PW_SILU = 5
} eqr_pointwise_kind;

/* Pointwise nonlinearity applied to every channel. Equivariant only on
 * trivial and regular fields (the group permutes channels), so any other
 * irrep part is rejected at construction. Output type = input type. */
typedef struct eqr_pointwise eqr_pointwise;
eqr_pointwise *eqr_pointwise_create(eqr_ctx *ctx, const eqr_rep *in_type, eqr_pointwise_kind kind,
                                    float slope);
eqr_tensor *eqr_pointwise_forward(eqr_ctx *ctx, eqr_pointwise *layer, eqr_tensor *x);
const eqr_rep *eqr_pointwise_out_type(const eqr_pointwise *layer);
void eqr_pointwise_destroy(eqr_pointwise *layer);

/* Norm-ReLU: each field f (any kind; meant for irrep fields) becomes
 *     f * relu(|f| + b) / |f|,
 * |f| the Euclidean norm over the field's channels at a pixel and b a learned
 * bias per field, parameter "<name>.bias" of shape [number of fields]
 * (EQR_PARAM_NO_DECAY, initialised to 0). A zero field maps to zero with zero
 * gradient. Equivariant because every rho(g) is orthogonal. Output type =
 * input type. */
typedef struct eqr_norm_relu eqr_norm_relu;
eqr_norm_relu *eqr_norm_relu_create(eqr_ctx *ctx, const char *name, const eqr_rep *in_type);
eqr_tensor *eqr_norm_relu_forward(eqr_ctx *ctx, eqr_norm_relu *layer, eqr_tensor *x);
const eqr_rep *eqr_norm_relu_out_type(const eqr_norm_relu *layer);
/* The bias parameter [fields]. */
eqr_tensor *eqr_norm_relu_bias(const eqr_norm_relu *layer);
void eqr_norm_relu_destroy(eqr_norm_relu *layer);

/* Gated nonlinearity: y_k = sigmoid(gate_k) * f_k for each gated field f_k.
 * INPUT LAYOUT: the input type lists its F fields (counting each copy, in
 * order) and must have an even number of fields 2K: the first K are the
 * gated fields (any kind), the last K are their gates, which must all be
 * trivial fields; gate k (channel gate_offset + k) gates field k. E.g.
 * [irrep(1) x 3, regular x 1, trivial x 4]: three vector fields and one
 * regular field gated by the 4 trivial channels at the end. Parts may be
 * split between gated fields and gates ([trivial x 6] = 3 trivial fields
 * gated by 3 trivial gates). The output type is the gated fields alone
 * (owned by the layer): [N, gate_offset, ...]. */
typedef struct eqr_gated eqr_gated;
eqr_gated *eqr_gated_create(eqr_ctx *ctx, const eqr_rep *in_type);
eqr_tensor *eqr_gated_forward(eqr_ctx *ctx, eqr_gated *layer, eqr_tensor *x);
const eqr_rep *eqr_gated_out_type(const eqr_gated *layer);
void eqr_gated_destroy(eqr_gated *layer);

/* ---------------------------------------------------------- batch norm */

/* Options of eqr_field_bn_create; zero-initialise for the defaults. */
typedef struct eqr_field_bn_opts {
    float eps;      /* added to the variance; 0 = 1e-5 */
    float momentum; /* running-statistics update rate in (0, 1]; 0 = 0.1 */
    int no_affine;  /* 1: no learned scale or bias */
} eqr_field_bn_opts;

/* Equivariant batch normalisation. Statistics are kept per STAT GROUP:
 *   - each trivial channel: one group (mean and variance, scale and bias),
 *     i.e. ordinary batch norm;
 *   - each regular field: one group over its |G| channels (mean and
 *     variance over N, |G| and the spatial axes; one scale and one bias
 *     shared by the field's channels);
 *   - each other irrep field (1D non-trivial or 2D): one group, NOT centred:
 *     y = w * f / sqrt(s + eps) with s the mean of f_c^2 over N, the field's
 *     channels and the spatial axes (the mean squared norm per channel); one
 *     scale and no bias (a bias would break equivariance).
 * Training (the default mode) normalises with batch statistics and updates
 * the running statistics r = (1 - momentum) r + momentum * batch_stat
 * (unbiased variance for centred groups, plain mean square otherwise);
 * evaluation uses the running statistics.
 * Parameters, in stat-group order (S groups, B of them centred):
 *   "<name>.weight"       [S] scale, initialised to 1 (unless no_affine)
 *   "<name>.bias"         [B] initialised to 0 (unless no_affine or B = 0)
 *   "<name>.running_mean" [B] EQR_PARAM_BUFFER, 0 (absent if B = 0)
 *   "<name>.running_var"  [S] EQR_PARAM_BUFFER, 1 (mean square for irreps)
 * Output type = input type. */
typedef struct eqr_field_bn eqr_field_bn;
eqr_field_bn *eqr_field_bn_create(eqr_ctx *ctx, const char *name, const eqr_rep *in_type,
                                  const eqr_field_bn_opts *opts);
/* Training needs more than one value in a centred group. */
eqr_tensor *eqr_field_bn_forward(eqr_ctx *ctx, eqr_field_bn *layer, eqr_tensor *x);
/* 1 = training (batch statistics, running update), 0 = evaluation. */
void eqr_field_bn_set_training(eqr_field_bn *layer, int training);
int eqr_field_bn_training(const eqr_field_bn *layer);
const eqr_rep *eqr_field_bn_out_type(const eqr_field_bn *layer);
/* Number of stat groups S and of centred groups B. */
int eqr_field_bn_num_groups(const eqr_field_bn *layer);
int eqr_field_bn_num_centred(const eqr_field_bn *layer);
/* Parameter tensors (NULL when absent). */
eqr_tensor *eqr_field_bn_weight(const eqr_field_bn *layer);
eqr_tensor *eqr_field_bn_bias(const eqr_field_bn *layer);
eqr_tensor *eqr_field_bn_running_mean(const eqr_field_bn *layer);
eqr_tensor *eqr_field_bn_running_var(const eqr_field_bn *layer);
void eqr_field_bn_destroy(eqr_field_bn *layer);

#ifdef __cplusplus
}
#endif
#endif
