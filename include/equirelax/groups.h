/* equirelax groups: the planar symmetry groups C_N, D_N, SO(2) and O(2), their
 * elements, real irreducible representations (irreps), the regular
 * representation, direct sums, and their actions on 2D grids, filter banks and
 * feature maps. Knows only core and tensor: nothing here is differentiable.
 *
 * GEOMETRY. An element g = (flip, angle) acts on the plane as
 *     g x = R(angle) F^flip x,
 * R(a) = [[cos a, -sin a], [sin a, cos a]] the counter-clockwise rotation and
 * F = diag(-1, 1) the reflection across the vertical axis (x -> -x): first
 * mirror left-right, then rotate. Hence
 *     (f1, a1) (f2, a2) = (f1 xor f2, a1 + (-1)^f1 a2),
 *     (0, a)^-1 = (0, -a),   (1, a)^-1 = (1, a).
 * Angles are radians, normalised to [0, 2 pi) by the functions below.
 *
 * GRID. Pixel (i, j) (row i, column j) of an H x W grid sits at
 *     x = j - (W - 1) / 2,   y = (H - 1) / 2 - i
 * (y points up: a positive angle turns the image counter-clockwise as
 * displayed; the +90 degree rotation is numpy's rot90, the flip is fliplr).
 * A field f with representation rho transforms as
 *     (g . f)(p) = rho(g) f(g^-1 p),
 * so g1 . (g2 . f) = (g1 g2) . f. Outside the grid f is zero.
 *
 * FINITE GROUPS index their elements: for C_N, index k <-> (0, 2 pi k / N);
 * for D_N, index flip * N + k <-> (flip, 2 pi k / N) (rotations first).
 *
 * REGULAR REPRESENTATION (finite groups): rho_reg(g) e_h = e_{gh}, i.e.
 * (rho_reg(g) v)[h] = v[g^-1 h] with h an element index. Feature maps of
 * regular fields are laid out [N, C * |G|, H, W] (equivalently
 * [N, C, |G|, H, W]) with channel = field * |G| + element index, so
 *     (g . f)[field * |G| + h](p) = f[field * |G| + index(g^-1 h)](g^-1 p).
 *
 * IRREPS are named by (j, freq). 2D irreps of frequency k:
 *     rho(flip, a) = R(k a) M^flip,  M = diag(-1, 1)
 * (so the frequency-1 irrep of O(2) / D_N is exactly the matrix acting on
 * plane vectors (x, y) above). 1D irreps: rho(flip, a) = (-1)^(j flip) for
 * freq 0 (j = 1 is the determinant), and (-1)^(j flip) (-1)^k for the
 * frequency N/2 irreps of C_N / D_N with N even (a = 2 pi k / N).
 * Enumeration order: by frequency, then j:
 *   C_N   : (0,0); 2D freq 1 .. floor((N-1)/2); (0,N/2) if N even.
 *   D_N   : (0,0), (1,0); 2D freq 1 .. floor((N-1)/2); (0,N/2), (1,N/2) if N even.
 *   SO(2) : (0,0); 2D freq 1 .. L.
 *   O(2)  : (0,0), (1,0); 2D freq 1 .. L.
 * The 2D irreps of C_N and SO(2) are irreducible over the reals but of
 * complex type: their commutant is 2-dimensional (eqr_irrep_endo_dim).
 *
 * Pure functions (no context) never allocate and never fail loudly: they
 * document a sentinel return for invalid arguments. Functions that allocate
 * or take tensors take a context and record errors there. */
#ifndef EQUIRELAX_GROUPS_H
#define EQUIRELAX_GROUPS_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- groups */

typedef enum eqr_group_kind {
    EQR_GROUP_CYCLIC = 0,   /* C_N: rotations by multiples of 2 pi / N */
    EQR_GROUP_DIHEDRAL = 1, /* D_N: C_N and N reflections */
    EQR_GROUP_SO2 = 2,      /* all rotations, irreps band-limited to max_freq */
    EQR_GROUP_O2 = 3        /* all rotations and reflections, band-limited */
} eqr_group_kind;

/* A group is a small value. n = N for C_N / D_N, 0 for SO(2) / O(2).
 * max_freq = L bounds the irreps enumerated for SO(2) / O(2); for C_N / D_N
 * it is set to floor(N / 2) and only informational. */
typedef struct eqr_group {
    eqr_group_kind kind;
    int n;
    int max_freq;
} eqr_group;

/* Largest N accepted for C_N / D_N (keeps element indices in int range). */
#define EQR_GROUP_MAX_N (1 << 20)

/* Value constructors. They never fail; an invalid argument (n < 1, L < 0)
 * gives a group for which eqr_group_valid is 0, rejected by every function
 * taking a context. */
eqr_group eqr_group_cyclic(int n);
eqr_group eqr_group_dihedral(int n);
eqr_group eqr_group_so2(int max_freq);
eqr_group eqr_group_o2(int max_freq);

/* 1 if G is non-NULL and well-formed (1 <= N <= EQR_GROUP_MAX_N for finite
 * groups, L >= 0 for continuous ones). */
int eqr_group_valid(const eqr_group *G);
/* 1 for C_N and D_N, 0 otherwise. */
int eqr_group_is_finite(const eqr_group *G);
/* 1 if G contains reflections (D_N, O(2)). */
int eqr_group_has_flips(const eqr_group *G);
/* Number of elements: N for C_N, 2N for D_N, 0 for continuous or invalid G. */
int eqr_group_order(const eqr_group *G);
/* Name such as "C4", "D6", "SO(2)[L=3]", "O(2)[L=3]" into buf (always
 * NUL-terminated when n > 0); returns buf. */
char *eqr_group_name(const eqr_group *G, char *buf, size_t n);

/* -------------------------------------------------------------- elements */

/* g = R(angle) F^flip, flip in {0, 1}, angle in radians. */
typedef struct eqr_gelem {
    int flip;
    double angle;
} eqr_gelem;

/* Element with the given flip (0 or 1) and angle (normalised to [0, 2 pi)). */
eqr_gelem eqr_gelem_of(int flip, double angle);
/* The identity (0, 0). */
eqr_gelem eqr_group_identity(void);
/* 1 if g is an element of G: flip is 0 for C_N / SO(2), and the angle is a
 * multiple of 2 pi / N (to 1e-9 rad) for C_N / D_N. 0 for invalid G. */
int eqr_group_contains(const eqr_group *G, eqr_gelem g);
/* Product a b (apply b first). For finite groups the angle of the result is
 * snapped to the exact multiple of 2 pi / N when a and b are elements. G may
 * be NULL (plain O(2) arithmetic, no snapping). */
eqr_gelem eqr_group_compose(const eqr_group *G, eqr_gelem a, eqr_gelem b);
/* Inverse a^-1 (snapped for finite groups; G may be NULL, like
 * eqr_group_compose). */
eqr_gelem eqr_group_inverse(const eqr_group *G, eqr_gelem a);
/* 1 if a and b are the same element: equal flips and angles equal modulo
 * 2 pi to 1e-9 rad (G is unused and may be NULL). */
int eqr_group_equal(const eqr_group *G, eqr_gelem a, eqr_gelem b);
/* Element of index i of a finite group (index convention in the file
 * comment); the identity if G is not finite or i is out of [0, order). */
eqr_gelem eqr_group_element(const eqr_group *G, int i);
/* Index of g in a finite group; -1 if G is not finite or g not in G. */
int eqr_group_index(const eqr_group *G, eqr_gelem g);
/* Index of the product / inverse of elements given by index (exact integer
 * arithmetic; the fast path for tables). -1 on invalid arguments. */
int eqr_group_index_compose(const eqr_group *G, int a, int b);
int eqr_group_index_inverse(const eqr_group *G, int a);
/* Uniform random element (Haar measure) of G drawn from rng; identity for an
 * invalid G or NULL rng. */
eqr_gelem eqr_group_sample(const eqr_group *G, eqr_rng *rng);
/* The 2 x 2 matrix of g acting on plane vectors (x, y), row-major:
 * R(angle) F^flip. */
void eqr_gelem_matrix(eqr_gelem g, double m[4]);

/* ----------------------------------------------------------------- irreps */

/* A real irrep, named by (j, freq) as in the file comment; dim is 1 or 2
 * (0 marks "not an irrep"). Build them with eqr_irrep_of or enumerate with
 * eqr_group_irrep. */
typedef struct eqr_irrep {
    int j;
    int freq;
    int dim;
} eqr_irrep;

/* Number of irreps of G (those with freq <= L for SO(2) / O(2)); 0 if G is
 * invalid. */
int eqr_group_num_irreps(const eqr_group *G);
/* The i-th irrep in the enumeration order of the file comment; dim = 0 if i
 * is out of range or G invalid. */
eqr_irrep eqr_group_irrep(const eqr_group *G, int i);
/* The irrep (j, freq) of G with its dimension; dim = 0 if G has no such
 * irrep (for SO(2) / O(2) this includes freq > L). */
eqr_irrep eqr_irrep_of(const eqr_group *G, int j, int freq);
/* Position of ir in the enumeration of G's irreps; -1 if not an irrep of G. */
int eqr_group_irrep_index(const eqr_group *G, eqr_irrep ir);
/* 1 if ir is an irrep of G (including a matching dim). */
int eqr_irrep_valid(const eqr_group *G, eqr_irrep ir);
/* Dimension of the commutant of ir (matrices commuting with every rho(g)):
 * 2 for the 2D irreps of C_N and SO(2) (complex type), 1 otherwise; 0 if
 * invalid. For finite G this equals <chi, chi> = (1/|G|) sum_g chi(g)^2. */
int eqr_irrep_endo_dim(const eqr_group *G, eqr_irrep ir);
/* Fill out (dim x dim, row-major, double) with rho(g). Returns dim, or 0
 * (out untouched) if ir is not an irrep of G or g is not in G. The matrix
 * is orthogonal. */
int eqr_irrep_matrix(const eqr_group *G, eqr_irrep ir, eqr_gelem g, double *out);
/* Same in float. */
int eqr_irrep_matrix_f(const eqr_group *G, eqr_irrep ir, eqr_gelem g, float *out);
/* Character trace(rho(g)); NAN if ir is not an irrep of G or g not in G. */
double eqr_irrep_character(const eqr_group *G, eqr_irrep ir, eqr_gelem g);
/* Name such as "irrep(j=1,f=0)" into buf; returns buf. */
char *eqr_irrep_name(eqr_irrep ir, char *buf, size_t n);

/* ------------------------------------------------ regular representation */

/* Source permutation of rho_reg(g): (rho_reg(g) v)[h] = v[perm[h]], i.e.
 * perm[h] = index(g^-1 h). perm holds order(G) ints. Returns order(G), or
 * 0 if G is not finite or g is not in G. */
int eqr_regular_perm(const eqr_group *G, eqr_gelem g, int *perm);
/* The |G| x |G| permutation matrix rho_reg(g) (row-major double), with
 * rho_reg(g)[index(g h), h] = 1. Returns order(G) or 0 like eqr_regular_perm. */
int eqr_regular_matrix(const eqr_group *G, eqr_gelem g, double *out);
/* Multiplicity of ir in the regular representation of finite G:
 * dim / endo_dim (1 for 1D irreps and the 2D irreps of C_N, 2 for the 2D
 * irreps of D_N); 0 if G is not finite or ir not an irrep of G. */
int eqr_regular_multiplicity(const eqr_group *G, eqr_irrep ir);
/* Orthogonal change of basis Q (|G| x |G|, row-major double) with
 *     rho_reg(g) = Q (direct sum of rho_i(g)) Q^T,
 * the irreps in enumeration order, each repeated eqr_regular_multiplicity
 * times (the representation eqr_rep_regular_decomposition returns). Built
 * from matrix entries: the columns of copy a of irrep i are
 * Q[h, c] = sqrt(dim_i / |G|) rho_i(h)[c, a]. Returns order(G), or 0 if G
 * is not finite. */
int eqr_regular_change_of_basis(const eqr_group *G, double *Q);

/* --------------------------------------- representations (direct sums) */

typedef enum eqr_part_kind {
    EQR_PART_IRREP = 0,  /* mult copies of an irrep */
    EQR_PART_REGULAR = 1 /* mult copies of the regular rep (finite G only) */
} eqr_part_kind;

/* One summand: mult consecutive copies of an irrep or of the regular rep. */
typedef struct eqr_rep_part {
    eqr_part_kind kind;
    eqr_irrep irrep; /* used when kind == EQR_PART_IRREP */
    int mult;        /* >= 1 */
} eqr_rep_part;

/* A direct sum of parts, in order: a vector of the rep is the concatenation
 * of the parts' vectors, each part the concatenation of its mult copies
 * (for regular copies: copy * |G| + element index). Fields are read-only. */
typedef struct eqr_rep {
    eqr_group group;
    int nparts;
    eqr_rep_part *parts;
    int dim; /* total dimension */
} eqr_rep;

/* Part constructors (values; validated by eqr_rep_create). */
eqr_rep_part eqr_part_irrep(eqr_irrep ir, int mult);
eqr_rep_part eqr_part_regular(int mult);

/* New representation of G, the direct sum of parts[0..nparts-1] (copied).
 * NULL with EQR_ERR_ARG recorded if G is invalid, nparts < 1, a part is not
 * an irrep of G, is regular for a continuous G, or has mult < 1; NULL with
 * EQR_ERR_NOMEM if allocation fails. Free with eqr_rep_destroy. */
eqr_rep *eqr_rep_create(eqr_ctx *ctx, const eqr_group *G, int nparts,
                        const eqr_rep_part *parts);
/* The decomposition of the regular representation of finite G: every irrep
 * once as a part, with multiplicity eqr_regular_multiplicity (matches
 * eqr_regular_change_of_basis). NULL (EQR_ERR_ARG) if G is not finite. */
eqr_rep *eqr_rep_regular_decomposition(eqr_ctx *ctx, const eqr_group *G);
/* Free a representation; NULL is ok. */
void eqr_rep_destroy(eqr_rep *rep);
/* Dimension of one copy of part k (irrep dim or |G|); 0 if k out of range. */
int eqr_rep_part_dim(const eqr_rep *rep, int k);
/* Offset of part k's first coordinate in the rep's vectors; -1 if k out of
 * range (k == nparts gives rep->dim). */
int eqr_rep_part_offset(const eqr_rep *rep, int k);
/* Fill out (dim x dim, row-major) with the block-diagonal rho(g). Returns
 * rep->dim, or 0 if rep is NULL or g is not in its group. */
int eqr_rep_matrix(const eqr_rep *rep, eqr_gelem g, double *out);
int eqr_rep_matrix_f(const eqr_rep *rep, eqr_gelem g, float *out);
/* Character trace(rho(g)); NAN if rep is NULL or g is not in its group. */
double eqr_rep_character(const eqr_rep *rep, eqr_gelem g);

/* ------------------------------------------------------ actions on grids */

/* Precomputed spatial action of one element on an h x w grid:
 *     out[p] = sum over taps of wt * in[idx]   (out = g . in, zero outside).
 * exact = 1 when the element maps pixel centres onto pixel centres (angle a
 * multiple of 180 degrees, or of 90 degrees on a square grid; flips always
 * qualify): then out[p] = in[src[p]] and src is a permutation of 0..h*w-1
 * (idx, wt are NULL). Otherwise bilinear interpolation at g^-1 p: four taps
 * per output pixel, idx[4p + t], wt[4p + t]; taps outside the grid have
 * weight 0 and index 0 (src is NULL). Fields are read-only. */
typedef struct eqr_grid_map {
    int h, w;
    int exact;
    eqr_gelem g;
    int32_t *src;
    int32_t *idx;
    float *wt;
} eqr_grid_map;

/* 1 if the action of g on an h x w grid is an exact pixel permutation (see
 * eqr_grid_map). */
int eqr_grid_exact(int h, int w, eqr_gelem g);
/* Precompute the action of g on h x w grids (persistent; for layers that
 * reuse it). NULL with EQR_ERR_ARG if h, w < 1, h * w >= 2^31, or g has a
 * flip not in {0, 1} or a non-finite angle; EQR_ERR_NOMEM on allocation
 * failure. Free with eqr_grid_map_destroy. */
eqr_grid_map *eqr_grid_map_create(eqr_ctx *ctx, int h, int w, eqr_gelem g);
/* Free a grid map; NULL is ok. */
void eqr_grid_map_destroy(eqr_grid_map *m);
/* Apply m to nplanes consecutive h x w planes: out = g . in. in and out must
 * not overlap. Hot path: no checks beyond NULL. */
void eqr_grid_map_apply(const eqr_grid_map *m, const float *in, float *out,
                        int64_t nplanes);

/* The following return a NEW step-arena tensor of x's shape (no gradient is
 * tracked), or NULL with the error recorded (NULL x or a context in error:
 * NULL, nothing recorded). Grid and element checks give EQR_ERR_ARG, shape
 * mismatches EQR_ERR_SHAPE. */

/* Spatial action on the last two dimensions of x ([..., H, W], ndim >= 2):
 * every plane transformed as a scalar field. */
eqr_tensor *eqr_grid_act(eqr_ctx *ctx, eqr_gelem g, const eqr_tensor *x);
/* Spatial action on a filter bank [..., k, k] (square last two dimensions,
 * ndim >= 2; e.g. [Cout, Cin, k, k]): each filter rotated / flipped about
 * its centre like an image. Channel axes are not permuted. */
eqr_tensor *eqr_filters_act(eqr_ctx *ctx, eqr_gelem g, const eqr_tensor *w);
/* Action on regular fields of finite G: x is [..., C * |G|, H, W]
 * (ndim >= 3, e.g. [N, C*|G|, H, W] or [N, C, |G|, H, W]) with the layout
 * of the file comment; spatial transform plus permutation of the group axis
 * by rho_reg(g). g must be in G. */
eqr_tensor *eqr_regular_act(eqr_ctx *ctx, const eqr_group *G, eqr_gelem g,
                            const eqr_tensor *x);
/* Action on a feature map of any representation: x is [..., rep->dim, H, W]
 * (ndim >= 3); out(p) = rho(g) x(g^-1 p) per pixel, rho the block-diagonal
 * matrix of rep (regular parts permute, irreps mix their channels).
 * g must be in rep's group. */
eqr_tensor *eqr_rep_act(eqr_ctx *ctx, const eqr_rep *rep, eqr_gelem g,
                        const eqr_tensor *x);

/* ------------------------------------------------ Lie algebra form */

/* A representation given by its Lie algebra: ngen generators
 * drho(A_i), each dim x dim, row-major, consecutive in gens. */
typedef struct eqr_lie_rep {
    int dim;
    int ngen;
    const float *gens; /* ngen * dim * dim floats, kept by the caller */
} eqr_lie_rep;

/* Generators of a field type of SO(2) or O(2): the derivative at
 * 0 of the rotation by angle t, block-diagonal (frequency-m irrep block
 * [[0, -m], [m, 0]], zero for trivial/sign parts). Writes dim*dim floats
 * into gens. EQR_ERR_ARG for a group without a continuous rotation part. */
eqr_status eqr_rep_lie_generator(eqr_ctx *ctx, const eqr_rep *rep, float *gens);

#ifdef __cplusplus
}
#endif
#endif
