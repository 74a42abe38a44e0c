/* Internal conv ops shared with the relaxed layers. Not installed. */
#ifndef EQR_CONV_INTERNAL_H
#define EQR_CONV_INTERNAL_H

#include "core/internal.h"
#include "equirelax/ops.h"

/* y = conv2d(x, w, b, geom) and *norm = ||conv2d(x, wr, geom)||^2 (a [1]
 * tensor), computed as ONE conv with the banks stacked along the output
 * channels, so both share every im2col, the GEMM packing and, in backward,
 * the col2im: dcol = [w; wr]^T [dY; 2 dnorm R]. w and wr must have the same
 * shape; R = conv2d(x, wr) is kept for backward (no gradient buffer of its
 * own). The norm is summed in double per image and the images in order, so
 * it does not depend on the thread count. Gradients flow into x, w, b and wr
 * (wr only from the norm); with detach_x the norm's gradient skips x (the
 * norm of the detached x: dcol = w^T dY only, the cheaper GEMM). The norm is recorded as its own node after y's;
 * its backward hands dL/dnorm to y's node. NULL (error recorded) on bad
 * arguments, with *norm set to NULL. */
eqr_tensor *eqr__conv2d_norm(eqr_ctx *ctx, eqr_tensor *x, eqr_tensor *w, eqr_tensor *b,
                             eqr_tensor *wr, const eqr_conv2d_geom *geom, int detach_x,
                             eqr_tensor **norm);

#endif
