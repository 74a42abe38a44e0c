/* Fully connected weighted tensor product of O(3) irreps (o3.h), trainable:
 *   out[w, k] = sum_paths c_p sum_{u,v,i,j} W[u, v, w] C_ijk x1[u, i] x2[v, j]
 * over every "uvw" path in1 entry (l1, p1) x in2 entry (l2, p2) -> out entry
 * (l3, p3) with |l1 - l2| <= l3 <= l1 + l2 and p1 p2 = p3 (output entries
 * no path reaches stay 0: the output irreps filter the paths).
 *
 * Normalisation (e3nn "element" fan-in, SEGNN's convention, as
 * ../shared/bench/segnn_reference.py): fan(out entry) = sum over its paths
 * of mul1 mul2; c_p = sqrt(2 l3 + 1); internal weights start
 * U(-1/sqrt(fan), 1/sqrt(fan)), so each output component has second moment
 * about 1 for unit inputs (the same function as e3nn's c = sqrt(d3 / fan)
 * with N(0, 1) weights). No bias unless eqr_tp_add_bias adds one on the
 * 0e outputs (as SEGNN's O3TensorProduct).
 *
 * Weights: flat, ordered by output entry, then (in1 entry, in2 entry), then
 * [u][v][w] (the peer's order). Internal: one parameter "<name>.weight" in
 * the store. External: given per call as [N, nweights], one set per sample
 * (e.g. a radial MLP of edge lengths, as TFN / NequIP). Computed per
 * output entry as one GEMM of the pair products of all its paths with
 * their weights (K = fan), the pair products from the sparse CG tables;
 * samples run in blocks, split over the context's threads; scratch comes
 * from the step arena (no heap use in steady state). */
#ifndef EQUIRELAX_TENSOR_PRODUCT_H
#define EQUIRELAX_TENSOR_PRODUCT_H

#include "o3.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eqr_tp eqr_tp;

/* Build the paths and CG tables (name: parameter prefix, used only with
 * internal_weights != 0; the weights are drawn from the context RNG). *out
 * is NULL on error (EQR_ERR_ARG naming the problem). */
eqr_status eqr_tp_create(eqr_ctx *ctx, const char *name, const eqr_irreps *in1,
                         const eqr_irreps *in2, const eqr_irreps *out, int internal_weights,
                         eqr_tp **tp);
void eqr_tp_destroy(eqr_tp *tp);
/* Number of weights (per sample when external); number of paths. */
int64_t eqr_tp_num_weights(const eqr_tp *tp);
int eqr_tp_num_paths(const eqr_tp *tp);
/* The product's irreps (copies it owns: x1's, x2's and the output's);
 * NULL if tp is NULL. */
const eqr_irreps *eqr_tp_irreps_in1(const eqr_tp *tp);
const eqr_irreps *eqr_tp_irreps_in2(const eqr_tp *tp);
const eqr_irreps *eqr_tp_irreps_out(const eqr_tp *tp);
/* The internal weight parameter (NULL if external). */
eqr_tensor *eqr_tp_weight(const eqr_tp *tp);
/* Add a learned bias to every 0e output channel (0e is invariant, so the
 * product stays equivariant): registers "<name>.bias" [sum of the 0e
 * output muls] (no weight decay), entry c's part drawn U(-1/sqrt(fan_c),
 * 1/sqrt(fan_c)) from the context RNG as its weights. EQR_ERR_ARG if the
 * output has no 0e entry, EQR_ERR_STATE if there is a bias already. */
eqr_status eqr_tp_add_bias(eqr_ctx *ctx, eqr_tp *tp, const char *name);
/* The bias parameter (NULL if none). */
eqr_tensor *eqr_tp_bias(const eqr_tp *tp);

/* x1 [N, dim in1], x2 [N, dim in2], w NULL (internal) or [N, nweights]
 * -> [N, dim out]. */
eqr_tensor *eqr_tp_forward(eqr_ctx *ctx, const eqr_tp *tp, eqr_tensor *x1, eqr_tensor *x2,
                           eqr_tensor *w);

#ifdef __cplusplus
}
#endif
#endif
