/* Gate nonlinearity on irreps-typed features (e3nn / SEGNN style), as one
 * fused differentiable op.
 *
 * Input x [N, ns + ng + dim_gated], laid out [scalars | gates | gated]:
 *   - ns scalars (0e) -> c_silu * silu(s);
 *   - ng gate scalars, one per gated irrep copy, in order;
 *   - the gated irreps: n_blocks entries of mul[b] copies of an l[b] irrep
 *     (2 l[b] + 1 components each, flat e3nn layout u * (2l+1) + m), so
 *     ng = sum_b mul[b]; copy k is multiplied by c_sig * sigmoid(gate_k).
 * Output [N, ns + dim_gated] = [scalars | gated].
 * c_silu = 1.67653..., c_sig = 1.84622... are 1 / sqrt(E[f(z)^2]) for
 * z ~ N(0, 1) (unit second moment), by quadrature; the gates are invariant
 * scalars, so the op is O(3)-equivariant whatever the irreps' parities (a
 * gate must itself be 0e for parity, which the caller's irreps ensure).
 * n_blocks = 0 gives a plain normalised SiLU on all ns columns. */
#ifndef EQUIRELAX_GATE_H
#define EQUIRELAX_GATE_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EQR_GATE_SILU_NORM 1.6765324703310969
#define EQR_GATE_SIGMOID_NORM 1.8462285453386131

eqr_tensor *eqr_gate(eqr_ctx *ctx, eqr_tensor *x, int64_t ns, int n_blocks,
                     const int64_t *mul, const int *l);

#ifdef __cplusplus
}
#endif
#endif
