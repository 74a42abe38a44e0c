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

/* Equivariant linear map between irreps (Schur's lemma): one weight matrix
 * [mul_out, mul_in] per pair (input entry, output entry) of equal (l, p),
 * all in one parameter "<name>.w" (paths in order of output entry, then
 * input entry; each block row-major [w][u]), initialised N(0, 1). Output
 * entry b is y_b = sum_a W_ab x_a / sqrt(fan_in_b), fan_in_b the summed
 * multiplicity of its matching inputs (so unit-variance inputs give
 * unit-variance outputs); an output entry with no matching input is 0.
 * EQR_ERR_ARG on a bad name or empty/invalid irreps. */
typedef struct eqr_irreps_linear eqr_irreps_linear;
eqr_irreps_linear *eqr_irreps_linear_create(eqr_ctx *ctx, const char *name,
                                            const eqr_irreps *in, const eqr_irreps *out);
void eqr_irreps_linear_destroy(eqr_irreps_linear *layer);
/* x [N, dim(in)] -> [N, dim(out)]; EQR_ERR_SHAPE (naming both irreps) if
 * x's last axis is not dim(in). Differentiable in x and the weight. */
eqr_tensor *eqr_irreps_linear_forward(eqr_ctx *ctx, eqr_irreps_linear *layer, eqr_tensor *x);
eqr_tensor *eqr_irreps_linear_weight(const eqr_irreps_linear *layer);


#ifdef __cplusplus
}
#endif

#endif
