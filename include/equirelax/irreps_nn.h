/* equirelax layers and ops on O(3) irreps-typed features (built on o3.h). */
#ifndef EQUIRELAX_IRREPS_NN_H
#define EQUIRELAX_IRREPS_NN_H

#include "o3.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Real spherical harmonics of degrees 0..lmax of each row of r [N, 3]:
 * y [N, (lmax+1)^2], degree l at column l^2, in the o3.h basis and the
 * chosen normalisation; normalize != 0 takes r/|r| (a row r = 0 gives
 * Y^0 and zeros, with zero gradient, so an isolated point or a self-edge
 * stays finite). Differentiable w.r.t. r; computed in double, stored in
 * float (the gradient is exact along the axes: no angles are formed). The
 * irreps of y are 1x0e+1x1o+1x2e+... (parity (-1)^l). */
eqr_tensor *eqr_sh(eqr_ctx *ctx, eqr_tensor *r, int lmax, eqr_sh_norm norm, int normalize);

#ifdef __cplusplus
}
#endif

#endif
