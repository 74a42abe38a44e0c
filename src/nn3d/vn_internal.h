/* Kernels and checks shared by the vector-neuron layers (vn.h): the channel
 * mix every VN map reduces to, vector norms, the blockwise so(3) Lie
 * derivative, and x shape handling. Not installed. */
#ifndef EQR_VN_INTERNAL_H
#define EQR_VN_INTERNAL_H

#include "core/internal.h"
#include "equirelax/ops.h"
#include "equirelax/vn.h"

/* y[n] = W x[n] for w [A, B] and x [N, B, Q] -> [N, A, Q] (one sgemm per
 * item). Differentiable in w and x. */
eqr_tensor *eqr__vn_mix(eqr_ctx *ctx, eqr_tensor *w, eqr_tensor *x);

/* W [c_out, c_in] applied to x4 [N, c_in, 3, P] viewed [N, c_in, 3P]:
 * [N, c_out, 3, P]. */
eqr_tensor *eqr__vn_linear4(eqr_ctx *ctx, eqr_tensor *w, eqr_tensor *x4, int c_out);

/* Vector norms sqrt(|x|^2 + eps) over axis 2: [N, C, 3, P] -> [N, C, P].
 * Differentiable (smooth at 0 for eps > 0). */
eqr_tensor *eqr__vn_norm(eqr_ctx *ctx, eqr_tensor *x, float eps);

/* Lie derivatives of a map on flattened vector features, blockwise:
 * w [3A, 3B] -> D [3, 3A, 3B] with D_a = w (I (x) L_a) - (I (x) L_a) w,
 * i.e. B L_a - L_a B on every 3x3 block B. Linear, differentiable. */
eqr_tensor *eqr__vn_lie_blocks(eqr_ctx *ctx, eqr_tensor *w);

/* Check x is [N, channels, 3, P] or [N, channels, 3] (fn names the caller
 * in the message) and return it as a 4-d tensor [N, channels, 3, P] (a
 * view for the 3-d form); NULL with EQR_ERR_SHAPE otherwise. */
eqr_tensor *eqr__vn_view4(eqr_ctx *ctx, const char *fn, eqr_tensor *x, int channels);
/* y4 [N, C', 3, P] back in x's form: a [N, C', 3] view if x was 3-d. */
eqr_tensor *eqr__vn_unview(eqr_ctx *ctx, eqr_tensor *y4, const eqr_tensor *x);

/* Prologue of a VN layer's forward: 0 if the context is in error, x is NULL
 * or layer is NULL (EQR_ERR_ARG recorded, naming fn), else 1. */
int eqr__vn_forward_ok(eqr_ctx *ctx, const char *fn, const void *layer, const eqr_tensor *x);

/* Checks of a create: channels >= 1 (each of n counts), a usable name and
 * free parameter names "<name><suffix>". 0 with EQR_ERR_ARG recorded. */
int eqr__vn_create_ok(eqr_ctx *ctx, const char *fn, const char *name, int n,
                      const int *channels, int nsuffix, const char *const *suffixes);

#endif
