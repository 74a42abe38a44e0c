/* equirelax relaxation of irreps layers (relax.h's interface): an irreps
 * linear layer plus a dense term theta W_r over the whole irreps vector. */
#ifndef EQUIRELAX_IRREPS_RELAX_H
#define EQUIRELAX_IRREPS_RELAX_H

#include "irreps_nn.h"
#include "relax.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The so(3) generators of the action of SO(3) on irreps-typed features:
 * three dim x dim row-major matrices (gens holds 3 dim^2 floats, dim =
 * dim(ir)), block-diagonal with the o3.h blocks J^l_x, J^l_y, J^l_z on each
 * copy (zero on scalars), so D(exp(sum_k w_k L_k)) = exp(sum_k w_k G_k).
 * Parity is not in the Lie algebra (see eqr_irreps_linear_relax).
 * EQR_ERR_ARG on an invalid or empty irreps or NULL gens. */
eqr_status eqr_irreps_lie_generators(eqr_ctx *ctx, const eqr_irreps *ir, float *gens);

/* Relax an irreps linear layer in -> out: registers "<name>.wr"
 * [dim(out), dim(in)], a dense map of the flat feature vectors (row = output
 * index, column = input index, the o3.h layout), and returns a relaxed
 * layer of kind "irreps_linear" whose forward (eqr_rlayer_forward, the x
 * shapes of eqr_irreps_linear_forward) is
 *     y = irreps_linear(x) + theta W_r x
 * (the layer alone when theta == 0: W_r untouched unless a penalty needs
 * W_r x). Penalties, as for eqr_relax_linear:
 *   LD = sum_k ||W_r G^in_k - G^out_k W_r||^2 over the three so(3)
 *        generators above, plus the PARITY term ||(W_r S_in - S_out W_r)/2||^2
 *        (S = diag of each entry's parity p): the squared norm of the blocks
 *        of W_r between entries of opposite parity, which the Lie derivative
 *        cannot see (parity is not connected to the identity); it equals
 *        ||W_r - P(W_r)||^2 / 4 for the parity action P(W) = S_out W S_in.
 *        Weight form, or activation form ||(...) x||^2 over the batch when
 *        the relaxation's opts.lie_form says so;
 *   N  = ||W_r x||^2 over the batch (or its first opts.norm_subsample rows
 *        of the leading axis, scaled).
 * Both are exactly 0 (in float too) for a W_r that is itself an irreps
 * linear map (blocks c I between entries of equal (l, p)).
 * Fold projection adds theta times the equivariant part of W_r to the
 * layer's weights: by Schur's lemma the equivariant maps between copy u of
 * input entry a and copy w of output entry b are c I when (l, p) agree and 0
 * otherwise, and the least-squares c of a block B is tr(B) / (2l+1), so
 * weight [w][u] of path (a, b) grows by theta tr(B) / ((2l+1) c_b), c_b the
 * layer's 1/sqrt(fan_in). This is the orthogonal (Frobenius) projection of
 * W_r onto the equivariant maps: the closest one. Blocks of W_r with no
 * matching pair are dropped. The layer stays owned by the caller and must
 * outlive the relaxed layer. NULL on error (recorded). */
eqr_rlayer *eqr_irreps_linear_relax(eqr_ctx *ctx, eqr_relax *relax, const char *name,
                                    eqr_irreps_linear *layer, const eqr_rlayer_opts *opts);

#ifdef __cplusplus
}
#endif

#endif
