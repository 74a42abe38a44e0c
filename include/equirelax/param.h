/* equirelax parameter store: every parameter and persistent buffer of the
 * context, with all data in one contiguous block and all gradients in
 * another, so optimizers, zeroing and checkpoints are flat loops.
 *
 * Parameters are identified by unique names (used by checkpoints). Adding a
 * parameter may move the blocks: eqr_tensor structs are updated, but raw
 * float pointers taken earlier become stale. Build the model first. */
#ifndef EQUIRELAX_PARAM_H
#define EQUIRELAX_PARAM_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    EQR_PARAM_NO_DECAY = 1u << 0, /* exclude from weight decay (biases, norms) */
    EQR_PARAM_BUFFER = 1u << 1,   /* persistent state, no gradient, not
                                     optimized (e.g. batch-norm running stats) */
    EQR_PARAM_FROZEN = 1u << 2    /* has no gradient and is not optimized */
};

/* Add a zero-filled parameter named name (unique, <= 63 chars). flags is an
 * or of EQR_PARAM_*. Returns a persistent tensor, NULL on error. */
eqr_tensor *eqr_param_create(eqr_ctx *ctx, const char *name, int ndim,
                          const int64_t *shape, unsigned flags);

/* Find a parameter by name; NULL if none. */
eqr_tensor *eqr_param_find(eqr_ctx *ctx, const char *name);

/* Number of parameters and buffers in the store. */
int eqr_param_num_tensors(const eqr_ctx *ctx);
/* The i-th parameter (creation order), its name and flags; NULL if out of range. */
eqr_tensor *eqr_param_at(eqr_ctx *ctx, int i);
const char *eqr_param_name(const eqr_ctx *ctx, int i);
unsigned eqr_param_flags(const eqr_ctx *ctx, int i);
/* Element offset of the i-th parameter inside the contiguous blocks. */
int64_t eqr_param_offset(const eqr_ctx *ctx, int i);

/* Total elements in the store, and the contiguous blocks themselves. */
int64_t eqr_param_num_scalars(const eqr_ctx *ctx);
float *eqr_param_data_block(eqr_ctx *ctx);
float *eqr_param_grad_block(eqr_ctx *ctx);

/* Initialisers; fan_in/fan_out are computed from the shape as for a conv or
 * linear weight [out, in, k...] (fan_in = in * prod(k), fan_out = out * prod(k)).
 * Kaiming-normal: std = gain / sqrt(fan_in) with gain = sqrt(2) for ReLU.
 * Xavier-uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)). */
eqr_status eqr_param_init_kaiming_normal(eqr_ctx *ctx, eqr_tensor *w, float gain);
eqr_status eqr_param_init_kaiming_uniform(eqr_ctx *ctx, eqr_tensor *w, float gain);
eqr_status eqr_param_init_xavier_uniform(eqr_ctx *ctx, eqr_tensor *w, float gain);
eqr_status eqr_param_init_xavier_normal(eqr_ctx *ctx, eqr_tensor *w, float gain);

#ifdef __cplusplus
}
#endif
#endif
