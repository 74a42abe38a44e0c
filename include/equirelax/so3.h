/* equirelax SO(3) / E(3): 3D rotations, their Lie algebra, representations
 * on direct sums of scalars and 3-vectors, and rigid motions of coordinates.
 *
 * CONVENTIONS.
 *   - A rotation is a 3x3 matrix R, row-major in float R[9]
 *     (R[3*i + j] = R_ij); it acts on column vectors, v' = R v.
 *   - A quaternion is q = (w, x, y, z) in float q[4], w the scalar part;
 *     unit quaternions q and -q give the same rotation.
 *   - The so(3) generators are L_a = d/dt R_a(t) at t = 0, R_a(t) the
 *     rotation by angle t about axis a (counter-clockwise seen from +a):
 *         L_x = [[0,0,0],[0,0,-1],[0,1,0]],
 *         L_y = [[0,0,1],[0,0,0],[-1,0,0]],
 *         L_z = [[0,-1,0],[1,0,0],[0,0,0]],
 *     so L_a v = e_a x v and R_a(t) = exp(t L_a).
 *   - A field type eqr_so3_rep {n_scalars, n_vectors} has dimension
 *     n_scalars + 3 n_vectors. LAYOUT of a feature axis of that size: the
 *     scalars first (channels 0 .. n_scalars-1, invariant), then the
 *     vectors, vector k taking the three consecutive channels
 *     n_scalars + 3k + {0, 1, 2} (x, y, z). A vector-neuron feature
 *     [N, C, 3, P] flattened over (C, 3) is exactly type {0, C}.
 *
 * The matrix helpers compute in double internally and never fail; the
 * functions taking a context record an error message (EQR_ERR_ARG /
 * EQR_ERR_SHAPE) and return a status or NULL on bad arguments. The tensor
 * transforms are differentiable ops (gradient to x), so they can be used
 * inside a model as well as for data augmentation and tests. */
#ifndef EQUIRELAX_SO3_H
#define EQUIRELAX_SO3_H

#include "groups.h" /* eqr_lie_rep */

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ matrices */

/* R = identity. */
void eqr_so3_identity(float R[9]);

/* Rotation by angle (radians) about axis (need not be unit length; it is
 * normalised), by Rodrigues' formula. EQR_ERR_ARG if the axis is zero or
 * not finite (R is then left untouched). */
eqr_status eqr_so3_from_axis_angle(eqr_ctx *ctx, const float axis[3], float angle, float R[9]);

/* Exponential map of a rotation vector w (axis * angle): R = exp(w_x L_x +
 * w_y L_y + w_z L_z). w = 0 gives the identity. Never fails. */
void eqr_so3_exp(const float w[3], float R[9]);

/* Rotation of the quaternion q (normalised first). EQR_ERR_ARG if q is zero
 * or not finite. */
eqr_status eqr_so3_from_quat(eqr_ctx *ctx, const float q[4], float R[9]);

/* Unit quaternion of a rotation matrix, sign chosen so that w >= 0 (for a
 * half turn, w = 0, the first nonzero of x, y, z is made positive), so
 * from_quat(to_quat(R)) == R and to_quat(from_quat(q)) == +-q. Uses the
 * numerically stable branch (largest diagonal term). R is assumed to be a
 * rotation; it is not checked. */
void eqr_so3_to_quat(const float R[9], float q[4]);

/* Uniform (Haar) random rotation: a uniform random unit quaternion, from 4
 * normal samples of rng normalised. Optionally also returns it (q may be
 * NULL). Deterministic for a given rng state. */
void eqr_so3_random(eqr_rng *rng, float R[9], float q[4]);

/* C = A B (C may alias A or B). */
void eqr_so3_mul(const float A[9], const float B[9], float C[9]);
/* Rt = R^T, the inverse of a rotation (Rt may alias R). */
void eqr_so3_transpose(const float R[9], float Rt[9]);
/* out = R v (out may alias v). */
void eqr_so3_apply(const float R[9], const float v[3], float out[3]);

/* The three generators L_x, L_y, L_z (see above), consecutive row-major
 * 3x3 matrices: L[9 a + 3 i + j] = (L_a)_ij. */
void eqr_so3_generators(float L[27]);

/* ------------------------------------------------------ representations */

/* A field type of SO(3): n_scalars invariant channels followed by
 * n_vectors 3-vectors (layout above). Plain data; both counts >= 0 and the
 * dimension >= 1. */
typedef struct eqr_so3_rep {
    int n_scalars;
    int n_vectors;
} eqr_so3_rep;

/* Dimension n_scalars + 3 n_vectors, or -1 if the type is invalid (NULL,
 * negative counts, dimension 0 or too large for an int). */
int eqr_so3_rep_dim(const eqr_so3_rep *rep);

/* rho(R): the dim x dim matrix of the type (identity on the scalars, R on
 * each vector block), row-major into M (dim * dim floats). rho is a
 * homomorphism: rho(A B) = rho(A) rho(B). EQR_ERR_ARG on an invalid type. */
eqr_status eqr_so3_rep_matrix(eqr_ctx *ctx, const eqr_so3_rep *rep, const float R[9], float *M);

/* drho(L_a) for a = x, y, z: three dim x dim matrices (zero on the
 * scalars, L_a on each vector block), consecutive in gens (3 * dim * dim
 * floats, caller-owned). EQR_ERR_ARG on an invalid type. */
eqr_status eqr_so3_rep_generators(eqr_ctx *ctx, const eqr_so3_rep *rep, float *gens);

/* The type as an eqr_lie_rep (groups.h) for the Lie-derivative penalty:
 * writes the generators into gens (3 * dim * dim floats, caller-owned,
 * must outlive *out unless the consumer copies them, as eqr_relax_linear
 * does) and sets *out = {dim, 3, gens}. EQR_ERR_ARG on an invalid type. */
eqr_status eqr_so3_rep_lie(eqr_ctx *ctx, const eqr_so3_rep *rep, float *gens, eqr_lie_rep *out);

/* ------------------------------------------------- acting on tensors */

/* rho(R) applied along one axis of x (negative counts from the end), whose
 * size must be the type's dimension: y = rho(R) x there, every other axis
 * untouched. E.g. rep {0, C} on axis 1 of [N, 3C, P], or {s, v} on axis -1
 * of [N, s + 3v]. Differentiable in x. NULL + EQR_ERR_SHAPE if the axis
 * size differs from the dimension (EQR_ERR_ARG for an invalid type/axis). */
eqr_tensor *eqr_so3_rep_act(eqr_ctx *ctx, const eqr_so3_rep *rep, const float R[9],
                            eqr_tensor *x, int axis);

/* Rotate 3-vectors stored along an axis of size 3: y = R x along axis
 * (e.g. axis 2 of vector-neuron features [N, C, 3, P], axis -1 of point
 * coordinates [..., 3]). Differentiable in x. NULL + EQR_ERR_SHAPE if that
 * axis is not of size 3. */
eqr_tensor *eqr_so3_rotate(eqr_ctx *ctx, const float R[9], eqr_tensor *x, int axis);

/* E(3) rigid motion of coordinates stored along an axis of size 3:
 * y = R x + t (t NULL = no translation, R NULL = no rotation). Apply it to
 * positions only; velocities and other vectors get eqr_so3_rotate.
 * Differentiable in x. Errors as eqr_so3_rotate. */
eqr_tensor *eqr_e3_transform(eqr_ctx *ctx, const float R[9], const float t[3], eqr_tensor *x,
                             int axis);

#ifdef __cplusplus
}
#endif
#endif
