/* Representations shared by the Lie-derivative tests (test_relax_lie_*.c):
 * SO(2) field types and an so(3) rep of scalars + 3-vectors. */
#ifndef TU_RELAX_LIE_H
#define TU_RELAX_LIE_H

#include "testutil.h"

/* A type of G with four irrep parts, part[k] = {j, freq, mult}; asserts
 * its dimension. */
eqr_rep *tu_lie_rep4(eqr_ctx *ctx, eqr_group G, const int part[4][3], int dim);

/* SO(2), L = 3: 2 trivial, 2 x freq 1, freq 2, freq 3 (dim 10). */
eqr_rep *tu_lie_so2_a(eqr_ctx *ctx);

/* SO(2), L = 3: trivial, freq 1, 2 x freq 2, freq 3 (dim 9). */
eqr_rep *tu_lie_so2_b(eqr_ctx *ctx);

/* so(3) on ns scalars followed by nv 3-vectors: generators L_a with
 * (L_a)_{jk} = -eps_{ajk} (L_z = d/dt of the rotation about z). */
typedef struct tu_rep3 {
    int ns, nv;
} tu_rep3;

int tu_rep3_dim(const tu_rep3 *r);

/* The so(3) basis element L_a, 3 x 3 row-major. */
void tu_so3_basis(int a, double L[9]);

/* The three generators of r, g [3, d, d] (d = tu_rep3_dim(r)). */
void tu_rep3_gens(const tu_rep3 *r, float *g);

/* max_i |v[i]| */
double tu_max_abs(const float *v, int64_t n);

#endif
