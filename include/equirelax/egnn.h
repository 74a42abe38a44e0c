/* equirelax EGNN layer: E(n)-equivariant message passing (Satorras,
 * Hoogeboom, Welling, "E(n) Equivariant Graph Neural Networks", ICML 2021)
 * on fully connected graphs without self-loops.
 *
 * A batch holds B graphs of n >= 2 nodes each: node features h [B, n, F]
 * (invariant scalars), coordinates x [B, n, 3], optionally velocities
 * v [B, n, 3] and edge attributes e [B, n, n, A] (invariant scalars; entry
 * [b, i, j] belongs to the edge j -> i, the diagonal is ignored). One layer:
 *
 *   m_ij  = phi_e(h_i, h_j, ||x_i - x_j||^2, e_ij)              (j != i)
 *   d_ij  = x_i - x_j, or (x_i - x_j) / (||x_i - x_j|| + eps)   (normalize)
 *   s_ij  = phi_x(m_ij), or range * tanh(phi_x(m_ij))           (bounded)
 *   x_i'  = x_i + C sum_j d_ij s_ij [+ phi_v(h_i) v_i]          (velocity)
 *               [+ theta W_r u_i]                              (relaxed)
 *   h_i'  = h_i + phi_h(h_i, sum_j m_ij)      (residual; without it phi_h(..))
 *
 * phi_e = Linear(2F+1+A -> H), SiLU, Linear(H -> H), SiLU;
 * phi_x = Linear(H -> H), SiLU, Linear(H -> 1, no bias, small init);
 * phi_v = Linear(F -> H), SiLU, Linear(H -> 1);
 * phi_h = Linear(F+H -> H), SiLU, Linear(H -> F').
 * The velocity form is EGNN's N-body model (E_GCL_vel): the velocity term
 * uses the given (input) velocities at every layer; with v given,
 * x_i' - x_i is the updated velocity of EGNN's eq. 7. C defaults to
 * 1 / (n - 1) (the mean over neighbours).
 *
 * Equivariance: h' is invariant and x' is equivariant under rotations,
 * reflections and translations of x (and rotations/reflections of v), and
 * both are equivariant under permutations of the nodes of a graph (with e
 * permuted on both node axes).
 *
 * RELAXATION (relax.h eqr_relax_egnn, through eqr_egnn_set_coord_term). What is relaxed is exactly the coordinate
 * update: the layer gains the term theta W_r u_i with
 *     u_i = [x_i - c, v_i]  (6 numbers; [x_i - c] alone without velocities),
 * c = the centroid of the node's graph, and W_r a dense 3 x 6 (3 x 3)
 * matrix shared by all nodes, made by eqr_relax_linear with input type two
 * 3-vectors (one) and output type one 3-vector (so3.h layout). Because u
 * is translation invariant and W_r is shared by the nodes, the term keeps
 * translation and permutation equivariance and breaks only rotation
 * equivariance; its Lie-derivative penalty sum_a ||W_r drho_in(L_a) -
 * L_a W_r||^2 vanishes exactly on W_r = [a I, b I] (the rotation
 * equivariant maps). The messages, node features and phi_* are never
 * relaxed. Projection (eqr_relax_project) drops the term (fold acts as
 * drop: the equivariant part a (x_i - c) + b v_i has no counterpart among
 * the layer's weights). Parameters: W_r is "<name>.wr", name as given to
 * eqr_relax_egnn; theta is the relaxation's (or the term's own with
 * opts->own_theta). */
#ifndef EQUIRELAX_EGNN_H
#define EQUIRELAX_EGNN_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Options; zero-initialise for the defaults. */
typedef struct eqr_egnn_opts {
    int hidden;          /* width H of the MLPs; 0 = max(F, F') */
    int edge_attr;       /* A, edge attributes per edge; 0 = none */
    int velocity;        /* 1: the velocity term phi_v(h_i) v_i (v required) */
    int normalize;       /* 1: normalised displacements */
    float norm_eps;      /* eps of the normalisation; 0 = 1e-8 */
    int tanh;            /* 1: bounded update range * tanh(phi_x) */
    float coord_range;   /* range of the bounded update; 0 = 1 */
    float coord_scale;   /* C; 0 = 1 / (n - 1) */
    int no_residual;     /* 1: h' = phi_h(...) (required when F' != F) */
} eqr_egnn_opts;

typedef struct eqr_egnn eqr_egnn;

/* New layer with F = in_features node features in and F' = out_features
 * out, registering "<name>.edge1.weight", ".edge1.bias", ".edge2.*",
 * ".coord1.*", ".coord2.weight", ".node1.*", ".node2.*" and, with
 * velocity, ".vel1.*", ".vel2.*" (linear weights [out, in] initialised
 * U(-1/sqrt(in), 1/sqrt(in)) like the biases; coord2 Xavier with gain
 * 0.001, as in the reference). NULL + message on error (features < 1,
 * negative options, residual with F' != F, parameter errors). opts may be
 * NULL. */
eqr_egnn *eqr_egnn_create(eqr_ctx *ctx, const char *name, int in_features, int out_features,
                          const eqr_egnn_opts *opts);
void eqr_egnn_destroy(eqr_egnn *layer);

/* One layer: h [B, n, F], x [B, n, 3], v [B, n, 3] (required with
 * velocity or when relaxed with velocity, otherwise ignored and may be
 * NULL), edge_attr [B, n, n, A] (required iff A > 0). Sets *h_out
 * [B, n, F'] and *x_out [B, n, 3] (either may be NULL if not wanted).
 * Differentiable in h, x, v, edge_attr and the parameters. On error both
 * outputs are NULL and the status is returned (EQR_ERR_SHAPE naming the
 * shapes, n < 2 included). */
eqr_status eqr_egnn_forward(eqr_ctx *ctx, eqr_egnn *layer, eqr_tensor *h, eqr_tensor *x,
                            eqr_tensor *v, eqr_tensor *edge_attr, eqr_tensor **h_out,
                            eqr_tensor **x_out);

/* An extra term of the coordinate update, added to x_i': fn(ctx, user, u)
 * maps u [B, n, 3] = x_i - c (or [B, n, 6] = [x_i - c, v_i] when the term
 * takes the velocities) to [B, n, 3]. This is how relaxation attaches its
 * term from above (relax.h eqr_relax_egnn, see RELAXATION); a user may
 * attach any translation-invariant term the same way. */
typedef eqr_tensor *(*eqr_egnn_term_fn)(eqr_ctx *ctx, void *user, eqr_tensor *u);

/* Attach the coordinate term (fn and user kept by the layer; with_velocity
 * needs a layer made with opts.velocity). EQR_ERR_STATE if the layer has a
 * term already, EQR_ERR_ARG for a NULL fn or a velocity term on a layer
 * without velocities. */
eqr_status eqr_egnn_set_coord_term(eqr_ctx *ctx, eqr_egnn *layer, eqr_egnn_term_fn fn,
                                   void *user, int with_velocity);
/* The attached term's user pointer (e.g. the eqr_rlayer of a relaxed
 * layer), NULL if none. */
void *eqr_egnn_coord_term(const eqr_egnn *layer);
/* 1 if the layer was made with opts.velocity. */
int eqr_egnn_has_velocity(const eqr_egnn *layer);
/* F, F' and H of a layer. */
int eqr_egnn_in_features(const eqr_egnn *layer);
int eqr_egnn_out_features(const eqr_egnn *layer);
int eqr_egnn_hidden(const eqr_egnn *layer);

#ifdef __cplusplus
}
#endif
#endif
