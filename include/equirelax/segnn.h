/* equirelax SEGNN: steerable E(3)-equivariant message passing on O(3)
 * irreps (Brandstetter, Hesselink, van der Pol, Bekkers, Welling,
 * "Geometric and Physical Quantities Improve E(3) Equivariant Message
 * Passing", ICLR 2022), and its N-body model, as
 * ../shared/bench/segnn_reference.py (same irreps, paths, weight order,
 * normalisations, gate constants and graph features).
 *
 * Building blocks (tensor_product.h, gate.h, graph.h):
 *   TP(x, a)      fully connected weighted tensor product with a bias on its
 *                 0e outputs;
 *   GTP(x, a)     TP to [scalars | one gate per gated copy | gated], then the
 *                 gate (SiLU on the scalars, sigmoid gates on l > 0).
 * One layer, on node features h [N, dim H], edge attributes a_ij, node
 * attributes a_i and invariant edge scalars e_ij [E, dim add]:
 *   m_ij = GTP2(GTP1([h_i, h_j, e_ij], a_ij), a_ij)    (edge j -> i)
 *   m_i  = sum_j m_ij
 *   u    = GTP3([h_i, m_i], a_i)        [+ term 1 of [h_i, m_i]]
 *   h_i' = h_i + TP4(u, a_i)            [+ term 2 of u]
 * The hidden irreps H must list their 0e entries first (the gate's
 * scalars), then entries of l > 0 (the gated ones).
 *
 * The N-body model: per graph of n particles (all directed edges j -> i,
 * i != j, grouped by target), a_ij = SH_{<= lmax_attr}(x_j - x_i)
 * ("integral" normalisation, of the unit vector), a_i = mean_j a_ij +
 * SH(v_i) with its 0e component set to 1, e_ij = (|x_j - x_i|^2, q_i q_j),
 * input h = (x_i - centroid, v_i, |v_i|) as 2x1o+1x0e; embedding TP(h, a_i)
 * -> H; the layers; output GTP(h, a_i) -> H, TP(., a_i) -> 1x1o; the
 * prediction is x_i + output. Equivariant under rotations, reflections and
 * translations of x (with v rotated and reflected) and permutations of a
 * graph's particles. Gradients flow to the parameters, not to x, v, q (the
 * graph features are data).
 *
 * RELAXATION (relax.h eqr_relax_segnn): each layer carries optional terms
 * added to u and to the update of h (the paper's relaxed SEGNN puts
 * theta W_r there, a dense map of the flat irreps vector); they attach
 * through eqr_segnn_layer_set_term, as EGNN's coordinate term. */
#ifndef EQUIRELAX_SEGNN_H
#define EQUIRELAX_SEGNN_H

#include "o3.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------- one layer */

typedef struct eqr_segnn_layer eqr_segnn_layer;

/* New layer with hidden irreps hidden, attributes attr (edge and node
 * alike) and add invariant edge scalars (the 0e count of the messages'
 * extra input; 0 = none). Registers "<name>.msg1", ".msg2", ".upd1",
 * ".upd2" tensor products (".weight", ".bias"). NULL + message on error
 * (hidden not 0e entries then l > 0 ones, no 0e entry, add < 0,
 * parameter errors). */
eqr_segnn_layer *eqr_segnn_layer_create(eqr_ctx *ctx, const char *name, const eqr_irreps *hidden,
                                        const eqr_irreps *attr, int add);
void eqr_segnn_layer_destroy(eqr_segnn_layer *layer);

/* h [N, dim hidden], edge_attr [E, dim attr], node_attr [N, dim attr],
 * add [E, add] (NULL iff add = 0); edge e runs src[e] -> dst[e] (indices in
 * [0, N), kept until the backward). Returns h' [N, dim hidden]; NULL on
 * error (EQR_ERR_SHAPE naming the shapes). */
eqr_tensor *eqr_segnn_layer_forward(eqr_ctx *ctx, eqr_segnn_layer *layer, eqr_tensor *h,
                                    eqr_tensor *edge_attr, eqr_tensor *node_attr,
                                    eqr_tensor *add, const int64_t *src, const int64_t *dst,
                                    int64_t E);

/* An extra term of an update: fn(ctx, user, x) maps x [N, d_in] to
 * [N, dim hidden], added to u (which = 0; x = [h, m], d_in = 2 dim hidden)
 * or to the update of h (which = 1; x = u, d_in = dim hidden). */
typedef eqr_tensor *(*eqr_segnn_term_fn)(eqr_ctx *ctx, void *user, eqr_tensor *x);
/* Attach term which (0 or 1). EQR_ERR_STATE if it is attached already,
 * EQR_ERR_ARG for a bad which or a NULL fn. */
eqr_status eqr_segnn_layer_set_term(eqr_ctx *ctx, eqr_segnn_layer *layer, int which,
                                    eqr_segnn_term_fn fn, void *user);
/* The user pointer of term which (NULL if none). */
void *eqr_segnn_layer_term(const eqr_segnn_layer *layer, int which);
/* The layer's hidden irreps. */
const eqr_irreps *eqr_segnn_layer_hidden(const eqr_segnn_layer *layer);

/* --------------------------------------------------------- N-body model */

/* Options; zero-initialise for the defaults. */
typedef struct eqr_segnn_opts {
    const char *hidden; /* hidden irreps; NULL = "32x0e+32x1o" (SEGNN's
                           weight-balanced choice for 64 features) */
    int layers;         /* message-passing layers; 0 = 4 */
    int lmax_attr;      /* degree of the attributes' harmonics; 0 = 1 */
} eqr_segnn_opts;

typedef struct eqr_segnn eqr_segnn;

/* New N-body SEGNN: registers "<name>.embed", "<name>.layer<k>.*",
 * "<name>.out1", "<name>.out2" (all drawn from the context RNG in that
 * order). NULL + message on error. opts may be NULL. */
eqr_segnn *eqr_segnn_create(eqr_ctx *ctx, const char *name, const eqr_segnn_opts *opts);
void eqr_segnn_destroy(eqr_segnn *m);

/* x, v [B, n, 3] positions and velocities, q [B, n, 1] charges, n >= 2:
 * predicted positions [B, n, 3]. NULL on error (EQR_ERR_SHAPE). */
eqr_tensor *eqr_segnn_forward(eqr_ctx *ctx, eqr_segnn *m, eqr_tensor *x, eqr_tensor *v,
                              eqr_tensor *q);

int eqr_segnn_num_layers(const eqr_segnn *m);
eqr_segnn_layer *eqr_segnn_layer_at(const eqr_segnn *m, int k); /* NULL out of range */

#ifdef __cplusplus
}
#endif
#endif
