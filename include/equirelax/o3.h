/* equirelax O(3): irreps, real Wigner-D matrices, real Clebsch-Gordan
 * coefficients and real spherical harmonics, in double precision. This is
 * groups-level maths: it knows nothing of layers or tensors.
 *
 * CONVENTIONS (shared with ../shared/bench/segnn_reference.py so numbers
 * compare):
 *   - An irrep of O(3) is (l, p), l >= 0, parity p = +1 "e" or -1 "o".
 *     Irreps "32x0e+32x1o" are a direct sum; the flat feature layout is
 *     entry after entry, entry i a block [mul_i, 2l_i+1], index u*(2l+1)+m.
 *   - Real basis of degree l: the real spherical harmonics without the
 *     Condon-Shortley phase, ordered m = -l .. l (m < 0 ~ sin(|m| phi),
 *     m > 0 ~ cos(m phi)), EXCEPT l = 1, ordered (x, y, z) so D^1(R) = R.
 *     l = 2 is (xy, yz, 3z^2 - r^2, xz, x^2 - y^2) up to positive factors.
 *   - so(3) generators L_k with (L_k)_ij = -eps_kij (so3.h); J^l_k is the
 *     degree-l action, d/dt Y^l(exp(t L_k) u) = J^l_k Y^l(u) at t = 0, and
 *     D^l(R) = exp(sum_k w_k J^l_k) for R = exp(sum_k w_k L_k), so
 *     Y^l(R u) = D^l(R) Y^l(u). [J_x, J_y] = J_z (cyclic).
 *   - An improper element g = -R (R a rotation) acts on entry (l, p) as
 *     p D^l(R).
 *   - Clebsch-Gordan C[l1,l2,l3], a [2l1+1][2l2+1][2l3+1] tensor with
 *     z_k = sum_ij C_ijk x_i y_j equivariant (z transforms by D^l3 when x, y
 *     do by D^l1, D^l2); ||C||_F = 1; sign: the first entry (row-major
 *     order i, j, k) with |C| > 1e-9 is positive. Zero unless
 *     |l1 - l2| <= l3 <= l1 + l2.
 *   - Spherical harmonics "component": ||Y^l(u)||^2 = 2l+1 for |u| = 1
 *     (Y^0 = 1, Y^1 = sqrt(3) u); "norm": component / sqrt(2l+1);
 *     "integral": component / sqrt(4 pi). */
#ifndef EQUIRELAX_O3_H
#define EQUIRELAX_O3_H

#include "core.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- irreps */

#define EQR_IRREPS_MAX 64 /* entries of one irreps value */
#define EQR_O3_LMAX 32    /* largest degree any function here accepts */

/* One entry: mul copies of the irrep (l, p). */
typedef struct eqr_irrep_entry {
    int mul, l, p; /* mul >= 0, 0 <= l <= EQR_O3_LMAX, p = +1 or -1 */
} eqr_irrep_entry;

/* A direct sum of irreps: plain data, copy by value. */
typedef struct eqr_irreps {
    int n;
    eqr_irrep_entry e[EQR_IRREPS_MAX];
} eqr_irreps;

/* Parse "32x0e+32x1o+8x2e" ("0e" means 1x0e; spaces anywhere between
 * tokens; "" is the empty sum). EQR_ERR_ARG on a bad string, naming the
 * problem and its (0-based) position; out is untouched then. */
eqr_status eqr_irreps_parse(eqr_ctx *ctx, const char *s, eqr_irreps *out);
/* Print as "32x0e+32x1o" into buf (size n, always terminated). Returns the
 * length the full string needs (as snprintf). */
int eqr_irreps_str(const eqr_irreps *ir, char *buf, size_t n);
/* Total dimension sum mul (2l+1). */
int64_t eqr_irreps_dim(const eqr_irreps *ir);
/* Offset of entry i in the flat layout (i == n gives the dimension). */
int64_t eqr_irreps_offset(const eqr_irreps *ir, int i);
/* Sum of the multiplicities; largest l (-1 if empty). */
int64_t eqr_irreps_num_irreps(const eqr_irreps *ir);
int eqr_irreps_lmax(const eqr_irreps *ir);
/* Equal as lists of entries. */
int eqr_irreps_equal(const eqr_irreps *a, const eqr_irreps *b);
/* Merge consecutive entries of equal (l, p), drop mul 0 (out may alias).
 * Entries whose merged mul would exceed INT_MAX stay separate. */
void eqr_irreps_simplify(const eqr_irreps *in, eqr_irreps *out);
/* Stable sort of the entries by l, then e before o (out may alias in);
 * perm (may be NULL, length in->n) receives perm[new] = old. */
void eqr_irreps_sort(const eqr_irreps *in, eqr_irreps *out, int *perm);

/* Action of the O(3) element g = s R (R a rotation, R[9] row-major double,
 * s = +1 proper or -1 improper) on n feature rows x [n, dim] (float): y =
 * block-diag(p^(s<0) D^l(R)) x per row. y may not alias x. EQR_ERR_ARG on
 * a bad s or an irreps with l > EQR_O3_LMAX. */
eqr_status eqr_irreps_act(eqr_ctx *ctx, const eqr_irreps *ir, const double R[9], int s,
                          const float *x, float *y, int64_t n);

/* ----------------------------------------------------------- Wigner-D */

/* The three generators J^l_x, J^l_y, J^l_z of degree l, consecutive
 * row-major (2l+1)^2 blocks of J (3 (2l+1)^2 doubles). Real antisymmetric;
 * J^1_k = L_k. Computed by a least-squares fit of the derivative of Y^l on
 * fixed points (exact up to rounding, ~1e-13). */
eqr_status eqr_o3_generators(eqr_ctx *ctx, int l, double *J);
/* D^l of the rotation vector w (axis * angle): exp(sum_k w_k J^l_k), by
 * scaling and squaring. D holds (2l+1)^2 doubles, row-major. */
eqr_status eqr_o3_wigner_d_w(eqr_ctx *ctx, int l, const double w[3], double *D);
/* D^l of a rotation matrix (R row-major; EQR_ERR_ARG unless R R^T = I and
 * det R = 1 to 1e-6), of a quaternion (w, x, y, z; normalised first;
 * EQR_ERR_ARG if zero), of an axis (normalised; nonzero) and angle. */
eqr_status eqr_o3_wigner_d(eqr_ctx *ctx, int l, const double R[9], double *D);
eqr_status eqr_o3_wigner_d_quat(eqr_ctx *ctx, int l, const double q[4], double *D);
eqr_status eqr_o3_wigner_d_axis_angle(eqr_ctx *ctx, int l, const double axis[3], double angle,
                                      double *D);
/* Rotation vector w (|w| <= pi) of a rotation matrix, via the quaternion. */
void eqr_o3_rotvec(const double R[9], double w[3]);

/* ------------------------------------------------------ Clebsch-Gordan */

/* Dense real CG tensor C[l1,l2,l3] (conventions above) into C
 * [(2l1+1)(2l2+1)(2l3+1)] doubles, index (i (2l2+1) + j)(2l3+1) + k; all
 * zeros if the triangle rule fails. From Racah's formula and the
 * complex-to-real change of basis; entries below 1e-14 set to exactly 0. */
eqr_status eqr_o3_cg_dense(eqr_ctx *ctx, int l1, int l2, int l3, double *C);

/* One cached CG tensor: dense (double and float) and its nonzero entries. */
typedef struct eqr_o3_cg {
    int l1, l2, l3, d1, d2, d3; /* d = 2l+1 */
    const double *dense;        /* [d1][d2][d3] */
    const float *dense_f;       /* the same in float */
    int nnz;                    /* nonzero entries, row-major order */
    const int32_t *idx;         /* [nnz][3]: i, j, k */
    const double *val;          /* [nnz] */
} eqr_o3_cg;

/* A table the caller owns holding every CG tensor with l1, l2, l3 <= lmax
 * (built at creation; read-only afterwards, so threads may share it). */
typedef struct eqr_o3_cg_table eqr_o3_cg_table;
eqr_o3_cg_table *eqr_o3_cg_table_create(eqr_ctx *ctx, int lmax);
void eqr_o3_cg_table_destroy(eqr_o3_cg_table *t);
int eqr_o3_cg_table_lmax(const eqr_o3_cg_table *t);
/* The tensor for (l1, l2, l3), or NULL if the triangle rule fails (a valid
 * answer, no error) or an l exceeds the table's lmax (EQR_ERR_ARG). */
const eqr_o3_cg *eqr_o3_cg_table_at(eqr_ctx *ctx, const eqr_o3_cg_table *t, int l1, int l2, int l3);

/* --------------------------------------------------- spherical harmonics */

typedef enum eqr_sh_norm {
    EQR_SH_COMPONENT = 0, /* ||Y^l(u)||^2 = 2l+1 */
    EQR_SH_NORM,          /* ||Y^l(u)||^2 = 1 */
    EQR_SH_INTEGRAL       /* orthonormal on the sphere: component / sqrt(4 pi) */
} eqr_sh_norm;

/* Number of values of degrees 0..lmax: (lmax+1)^2. */
static inline int eqr_sh_dim(int lmax) { return (lmax + 1) * (lmax + 1); }

/* Y^0 .. Y^lmax of r (double) into y [(lmax+1)^2], degree l at offset l^2.
 * normalize != 0: of r/|r| (r = 0 gives Y^0 and zeros for l > 0);
 * normalize == 0: the solid harmonics |r|^l Y^l(r/|r|), polynomials of r.
 * grad (may be NULL) receives dy/dr [(lmax+1)^2][3] (at r = 0 with
 * normalize, zero). Stable along the axes (no angles are formed). */
eqr_status eqr_o3_sh(eqr_ctx *ctx, int lmax, eqr_sh_norm norm, int normalize, const double r[3],
                     double *y, double *grad);

/* The so(3) generators of the action of SO(3) on irreps-typed features:
 * three dim x dim row-major matrices (gens holds 3 dim^2 floats, dim =
 * dim(ir)), block-diagonal with the o3.h blocks J^l_x, J^l_y, J^l_z on each
 * copy (zero on scalars), so D(exp(sum_k w_k L_k)) = exp(sum_k w_k G_k).
 * Parity is not in the Lie algebra (see eqr_relax_irreps_linear, relax.h).
 * EQR_ERR_ARG on an invalid or empty irreps or NULL gens. */
eqr_status eqr_irreps_lie_generators(eqr_ctx *ctx, const eqr_irreps *ir, float *gens);

#ifdef __cplusplus
}
#endif

#endif
