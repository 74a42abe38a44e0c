/* Graph ops for message passing: gather node rows onto edges and reduce edge
 * rows back onto nodes. They are generic differentiable ops (no group
 * structure); a graph is a list of E edge endpoints idx[e] in [0, N).
 *
 * Determinism: reductions never use atomics. Each call sorts the edges by
 * idx with a stable counting sort (O(E + N), in the step arena, so a step
 * touches no heap) and sums every node's rows in increasing edge order, so
 * results are bitwise identical for any thread count. Rows are spread over
 * the context's threads by node ranges.
 *
 * idx is copied into the step arena (it may be freed after the call). An
 * index outside [0, N) fails with EQR_ERR_ARG naming the index and its
 * position. E = 0 is allowed (gather gives [0, F], scatter gives zeros). */
#ifndef EQUIRELAX_GRAPH_H
#define EQUIRELAX_GRAPH_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[e, :] = x[idx[e], :]: x [N, F], idx[E] -> [E, F]. Backward
 * scatter-sums the edge gradients onto the nodes. */
eqr_tensor *eqr_gather_rows(eqr_ctx *ctx, eqr_tensor *x, const int64_t *idx, int64_t E);

/* out[i, :] = sum_{e: idx[e] = i} src[e, :]: src [E, F] -> [N, F] (rows of
 * nodes with no edge are 0). Backward gathers. */
eqr_tensor *eqr_scatter_sum(eqr_ctx *ctx, eqr_tensor *src, const int64_t *idx, int64_t N);

/* Like eqr_scatter_sum divided by each node's edge count (0 for a node with
 * no edge, as PyTorch's scatter mean). */
eqr_tensor *eqr_scatter_mean(eqr_ctx *ctx, eqr_tensor *src, const int64_t *idx, int64_t N);

#ifdef __cplusplus
}
#endif
#endif
