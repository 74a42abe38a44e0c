/* Shared by the steerable-basis files (steer_basis.c: types, blocks,
 * expansion; steer_pair.c: the per irrep pair bases and the sampling) and
 * steer_conv.c. Not installed. */
#ifndef EQR_STEER_INTERNAL_H
#define EQR_STEER_INTERNAL_H

#include "nn2d/equi_internal.h"
#include "equirelax/steerable.h"

/* The basis builder behind eqr_steer_basis_create; errors name fn. */
eqr_steer_basis *eqr__steer_basis_build(eqr_ctx *ctx, const char *fn, const eqr_rep *in_type,
                                        const eqr_rep *out_type, int k,
                                        const eqr_steer_basis_opts *opts);

/* ---- the basis (steer_basis.c) and its irrep-pair parts (steer_pair.c) ---- */

#define TWO_PI 6.28318530717958647692528676655900577
#define PI_D 3.14159265358979323846264338327950288
/* A sampled function whose residual after projection falls below this
 * fraction of its norm is dependent on the grid and dropped. */
#define DROP_TOL 1e-3
/* Largest coefficient space of one (irrep pair, frequency): 2 x 2 x 2. */
#define MAXV 8

/* One raw basis function: ring `ring` times the frequency-m harmonics with
 * coefficients v[(a * dI + b) * hm + h], hm = 1 (m = 0) or 2 (cos, sin). */
typedef struct raw_fn {
    int ring, m;
    double v[MAXV];
} raw_fn;

/* Orthonormal basis of one (out irrep, in irrep) pair. */
typedef struct pair_basis {
    int ready;
    int dO, dI;
    int nraw, n;
    raw_fn *raw;
    double *coef; /* [n, nraw]: element u = sum_r coef[u, r] raw_r */
    double *samp; /* [n, dO, dI, k*k], orthonormal */
} pair_basis;

/* A field as a direct sum of irrep components, rho_field = Q (+) psi Q^T. */
typedef struct field_kind {
    int dim, ncomp;
    const int *comp_ir;  /* irrep index of each component */
    const int *comp_off; /* first coordinate of each component */
    const double *Q;     /* dim x dim, NULL = identity */
} field_kind;

/* Element of a block: components a (out field), b (in field), pair element u. */
typedef struct block_elem {
    int a, b, u;
} block_elem;

struct eqr_steer_basis {
    eqr_group G;
    int k, kk, nrings, max_m;
    double sigma;
    int *ring_M;
    int in_dim, out_dim;
    /* moment-matched sampling (see moment_setup) */
    int point_sampling, mom_max, nmon;
    double *mono;   /* [nmon, kk] monomials x^a y^b (coordinates / (k/2)) */
    double *chol;   /* [nmon, nmon] Cholesky factor of mono mono^T */
    double *radmom; /* [nrings, mom_max + 1] radial moments */
    double *angmom; /* [max_m + 1, 2, nmon] angular moments */
    int nir;
    eqr_irrep *irreps;
    pair_basis *pairs; /* [nir * nir], out irrep major; built on demand */
    double *Q;         /* regular change of basis (finite groups) */
    int *ints;         /* component tables of all field kinds */
    field_kind *kout, *kin; /* per part */
    int nblocks;
    eqr_steer_block *blocks;
    block_elem **elems; /* per block */
    float **bdata;      /* per block */
    int64_t size;
};

/* Moment-matched sampling tables of B (steer_pair.c): 1 done, 0 on
 * allocation failure, -1 if the monomials are dependent on the grid. */
int eqr__steer_moment_setup(eqr_steer_basis *B);
/* Build the orthonormal basis of the (out irrep io, in irrep ii) pair on
 * demand; 0 on failure. */
int eqr__steer_pair_build(eqr_steer_basis *B, int io, int ii);
/* Element u of a pair basis at (x, y): dO x dI values into out. */
void eqr__steer_pair_eval(const pair_basis *P, double sigma, int u, double x, double y, double *out);

#endif
