/* equirelax reverse-mode autodiff.
 *
 * Every op run while gradients are enabled and with an input that requires
 * grad appends one node to the context's tape. eqr_backward walks the tape in
 * reverse from a scalar. Parameter gradients accumulate across calls until
 * eqr_grad_zero; activation gradients live in the step arena. */
#ifndef EQUIRELAX_AUTODIFF_H
#define EQUIRELAX_AUTODIFF_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Backpropagate from a scalar (numel == 1) tensor: d loss / d loss = 1.
 * Accumulates into the grad of every parameter the loss depends on. A second
 * backward over the same tape in the same step is an EQR_ERR_STATE error. */
eqr_status eqr_backward(eqr_ctx *ctx, eqr_tensor *loss);

/* Like eqr_backward but seeding d loss = seed (same shape as out); out need
 * not be a scalar. Used for vector-Jacobian products. */
eqr_status eqr_backward_from(eqr_ctx *ctx, eqr_tensor *out, const eqr_tensor *seed);

/* Enable (1) or disable (0) tape recording; returns the previous setting.
 * With recording off, ops compute values only (evaluation, no-grad mode). */
int eqr_grad_set_enabled(eqr_ctx *ctx, int enabled);
/* 1 if tape recording is on. */
int eqr_grad_enabled(const eqr_ctx *ctx);

/* Zero the gradients of all parameters in the store. */
void eqr_grad_zero(eqr_ctx *ctx);

/* Number of nodes currently on the tape (for tests and monitoring). */
int64_t eqr_tape_num_nodes(const eqr_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
