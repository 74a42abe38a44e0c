/* equirelax steerable convolutions (Weiler & Cesa's E(2)-steerable CNNs) for
 * G in {C_N, D_N, SO(2), O(2)} between any two field types (groups.h): each
 * filter is a learned linear combination of a precomputed basis of
 * equivariant kernels.
 *
 * THE CONSTRAINT. A kernel K: R^2 -> R^{dout x din} gives an equivariant
 * convolution (eqr_conv2d, a cross-correlation on the groups.h grid) iff
 *     K(g p) = rho_out(g) K(p) rho_in(g)^-1     for all g in G, p in R^2.
 * For direct sums the constraint splits into blocks, one per pair (output
 * field, input field), and via the change of basis Q of
 * eqr_regular_change_of_basis a regular field is a direct sum of irreps, so
 * it suffices to solve it for every pair (out irrep psi_o, in irrep psi_i):
 *   - irrep -> irrep block:     K = B
 *   - regular -> irrep blocks:  K = Q_out[:, comp a] B   (per irrep comp a)
 *   - irrep -> regular:         K = B Q_in[:, comp b]^T
 *   - regular -> regular:       K = Q_out[:, a] B Q_in[:, b]^T
 * with B ranging over the basis of the pair (psi_a, psi_b).
 *
 * THE BASIS OF AN IRREP PAIR. In polar coordinates (rho, phi), raw basis
 * functions are a Gaussian ring times a circular harmonic:
 *     K(p) = exp(-(rho - s)^2 / (2 sigma^2)) sum_h v_h Y_h(phi)
 * with Y = (cos m phi, sin m phi) (just 1 for m = 0). Rings s = 0, 1, ...,
 * floor((k - 1) / 2) (pixel units), width sigma = 0.6 by default (any
 * k >= 1; an even k has no centre pixel, and stays exact on the grid with
 * stride 1 and symmetric padding). Ring s
 * carries the frequencies m = 0 .. M(s) with the BAND LIMIT
 *     M(0) = 0,   M(s) = 2 s   (s >= 1),   capped by opts->max_freq if > 0,
 * (about 2 pi s grid samples lie near ring s, so 2 s stays well below their
 * Nyquist limit). For m > 0 the function is defined as 0 at p = 0 (its
 * angular mean), which keeps it equivariant at the centre. The coefficients
 * v (a dout x din matrix per harmonic) solve the constraint EXACTLY: the
 * group acts on the space V_m of frequency-m coefficients by
 *     A(g) = psi_o(g) (x) psi_i(g) (x) S_m(g),
 * S_m the action of g on the harmonics of frequency m, and the solutions are
 * the fixed points of A. They are found numerically per (pair, m) as the null
 * space of a symmetric matrix, whose eigenvalues are exactly separated from
 * zero: for C_N / D_N the rotation r by 2 pi / N, (A(r) - I)^T (A(r) - I)
 * (aliased frequencies m = f_o +- f_i + t N appear by themselves); for
 * SO(2) / O(2) the Lie algebra generator X of A, X^T X (integer-square
 * eigenvalues); for D_N / O(2) the flip (1, 0) then selects the +1
 * eigenspace within it.
 *
 * SAMPLING. The analytic raw functions are sampled at the pixel centres of
 * the k x k grid (pixel (i, j) at x = j - (k-1)/2, y = (k-1)/2 - i, as in
 * groups.h), with a MOMENT CORRECTION (default): point samples of a
 * frequency-m function alias on the square grid (which has only the C4 / D4
 * symmetry) into frequencies m - 4t, and their low-order moments make the
 * filter respond to low derivatives of smooth inputs that the continuous
 * kernel ignores (e.g. a frequency-3 filter picking up the gradient). So the
 * samples of each raw function are changed, per matrix entry, by the
 * smallest amount (grid norm) that makes the discrete moments
 *     sum_q K(q) x_q^a y_q^b,   a + b <= D = min(m, EQR_STEER_MOMENT_MAX, k - 1)
 * equal the continuous moments over the disk |p| <= k/2. This is an
 * orthogonal projection onto a space that grid-exact elements preserve, so
 * exactness on the grid is untouched; it cut the off-grid error of
 * frequency-2 and -3 filters (k = 5, smooth inputs) from 0.37 and 1.7 to
 * 0.06 and 0.13. opts->point_sampling = 1 gives plain point samples.
 * The sampled functions of all rings are then orthonormalised on the grid
 * by Gram-Schmidt (Frobenius inner product over entries and taps); a
 * function whose residual is below 1e-3 of its norm is dropped as dependent
 * on the grid. Each basis element is a linear combination of raw functions:
 * the same combination of the analytic functions is an exact solution,
 * evaluable at any point (eqr_steer_basis_eval), and the sampled filter is
 * its (moment-corrected) sampling.
 *
 * EXAMPLES OF COUNTS (k = 5, 3 rings): SO(2) or O(2) trivial -> trivial: one
 * element per ring (3); SO(2) trivial -> frequency 1: 2 per ring s >= 1 (4);
 * O(2): 1 per ring s >= 1 (2); O(2) trivial -> det irrep (1,0): none.
 *
 * WEIGHTS. One weight per (output field copy, input field copy, basis element
 * of that field pair). The basis is organised in BLOCKS, one per (output
 * part, input part), in order (output part major); block b's weights are the
 * contiguous range [weight_off, weight_off + out_mult * in_mult * n) laid out
 * [out copy, in copy, element]. The filter bank is
 *     bank[out_off + co * out_fdim + a, in_off + ci * in_fdim + c, q]
 *         = sum_t w[weight_off + (co * in_mult + ci) * n + t] basis[t, a, c, q].
 * Every basis element, viewed as a whole [out_dim, in_dim, k, k] bank, has
 * unit norm and they are mutually orthogonal, so the expansion T is an
 * isometry and its adjoint T^T (eqr_steer_basis_project) is the
 * least-squares fit of an arbitrary bank by an equivariant one.
 *
 * COST. Each block's basis is stored dense, n x out_fdim x in_fdim x k^2
 * floats; for regular -> regular that is n |G|^2 k^2 with n about
 * |G| k^2 / 2 (C8, k = 5: 120 elements, 0.8 MB; C16 or D8, k = 7: 448
 * elements, 22.5 MB). Construction (Release, this machine): 10-layer models
 * with 8 regular fields per layer and k = 5 take 4 ms (D4) to 7 ms (C8),
 * printed by tests/test_equivariance_steerable_forward. The expansion costs
 * 2 n * (bank size) flops per call, a few percent of the conv for batches of
 * images.
 *
 * EXACTNESS. On the grid, the layer commutes with every element mapping the
 * pixel grid onto itself (multiples of 90 degrees on square inputs, flips)
 * exactly (float rounding), provided the conv samples symmetrically about the
 * input centre: along each axis (n + 2 pad - dil (k - 1) - 1) % stride == 0
 * (always with stride 1; see eqr_steer_conv_exact_on). Other rotations (C8's
 * 45 degrees, SO(2)) are exact for the analytic kernel but only approximate
 * for sampled kernels acting on pixel images. Measured by
 * tests/test_equivariance_steerable_layer.c (test_off_grid_smooth) and a sweep of
 * 10 seeds: smooth inputs (every channel a sum of 3 Gaussian blobs of width
 * 2.5 px) on 33 x 33 maps, random weights and bias, k = 3, 5, 7, 'same'
 * padding, error ||f(g.x) - g.f(x)|| / ||f(x)|| on the central disk of
 * radius 8.25 px with bilinear rotation of input and output, at C8 / D8 /
 * C16 / C6 off-grid elements and random SO(2) / O(2) angles, for types from
 * single irreps up to all irreps of frequency <= 3 plus a regular field:
 *     moment-corrected sampling (default):  max 0.034
 *     point sampling:                       max 0.53 (frequency >= 2 kernels)
 * The isotropic trivial -> trivial layer alone measures 0.031, so the
 * default stays at the floor set by the bilinear interpolation of the
 * measurement. Tested bound: EQR_STEER_OFFGRID_TOL. Kernels of angular
 * frequency >= 4 (e.g. C8 trivial -> its frequency-4 irrep, k = 5) remain
 * far from equivariant off the grid (relative error ~0.8 on their own; they
 * respond weakly to smooth inputs, so they barely show in mixed types): use
 * opts->max_freq = 3 to exclude them. */
#ifndef EQUIRELAX_STEERABLE_H
#define EQUIRELAX_STEERABLE_H

#include "groups.h"
#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bound on the relative equivariance error of a steerable conv at off-grid
 * group elements for smooth inputs, as measured by the test described in
 * the file comment. */
#define EQR_STEER_OFFGRID_TOL 0.05

/* Default ring width (pixels). */
#define EQR_STEER_SIGMA 0.6

/* Highest moment order matched by the moment-corrected sampling. */
#define EQR_STEER_MOMENT_MAX 6

/* ------------------------------------------------------------------ basis */

/* Options of the basis; zero-initialise for the defaults. */
typedef struct eqr_steer_basis_opts {
    double sigma; /* Gaussian ring width in pixels; 0 = EQR_STEER_SIGMA */
    int max_freq; /* cap on every ring's band limit M(s); 0 = no cap */
    int point_sampling; /* 1: plain point samples, no moment correction */
} eqr_steer_basis_opts;

/* One block of the basis: the kernels between the fields of output part
 * out_part and input part in_part. Read-only. basis holds n orthonormal
 * elements [n, out_fdim, in_fdim, k, k] (one field pair; n may be 0). */
typedef struct eqr_steer_block {
    int out_part, in_part;   /* part indices in out_type / in_type */
    int out_off, in_off;     /* channel offset of the parts */
    int out_mult, in_mult;   /* copies (fields) in the parts */
    int out_fdim, in_fdim;   /* channels of one field */
    int n;                   /* basis elements per field pair */
    int64_t weight_off;      /* first weight of the block */
    const float *basis;      /* [n, out_fdim, in_fdim, k, k] */
} eqr_steer_block;

/* A steerable kernel basis for in_type -> out_type with k x k filters. */
typedef struct eqr_steer_basis eqr_steer_basis;

/* Solve and sample the basis (see the file comment). opts may be NULL.
 * The basis copies what it needs of the types (it keeps no pointer to them).
 * Errors (NULL, message recorded): EQR_ERR_ARG if a type is NULL or invalid,
 * the two types have different groups (kind, N or band limit L), a regular
 * part belongs to a continuous group, k < 1, sigma < 0 or max_freq < 0;
 * EQR_ERR_NOMEM on allocation failure. A basis with no element at all is
 * valid here (eqr_steer_basis_num_elements == 0); the conv layer rejects it. */
eqr_steer_basis *eqr_steer_basis_create(eqr_ctx *ctx, const eqr_rep *in_type,
                                        const eqr_rep *out_type, int k,
                                        const eqr_steer_basis_opts *opts);
/* Free a basis; NULL is ok. */
void eqr_steer_basis_destroy(eqr_steer_basis *b);

/* Total number of basis elements (= weights of a layer); 0 for NULL. */
int64_t eqr_steer_basis_num_elements(const eqr_steer_basis *b);
/* Kernel size k, out_type->dim and in_type->dim; 0 for NULL. */
int eqr_steer_basis_kernel_size(const eqr_steer_basis *b);
int eqr_steer_basis_out_dim(const eqr_steer_basis *b);
int eqr_steer_basis_in_dim(const eqr_steer_basis *b);
/* Number of rings, and the radius (pixels) and band limit of ring s;
 * returns 0 (outputs untouched) if s is out of range. */
int eqr_steer_basis_num_rings(const eqr_steer_basis *b);
int eqr_steer_basis_ring(const eqr_steer_basis *b, int s, double *radius, int *max_freq);
/* Blocks: out_type->nparts * in_type->nparts of them, output part major;
 * NULL if i is out of range. */
int eqr_steer_basis_num_blocks(const eqr_steer_basis *b);
const eqr_steer_block *eqr_steer_basis_block(const eqr_steer_basis *b, int i);

/* Evaluate basis element t (0 <= t < size), as a full kernel, at the point
 * (x, y) of the plane (pixel units, y up): out is out_dim x in_dim, row-major,
 * zero outside the element's field pair. This is the analytic function whose
 * sampling (point samples at the pixel centres with point_sampling, else
 * moment-corrected) is the filter. Returns 1, or 0 (out untouched) for a
 * NULL argument or t out of range. */
int eqr_steer_basis_eval(const eqr_steer_basis *b, int64_t t, double x, double y, double *out);
/* Basis element t as a full filter bank [out_dim, in_dim, k, k] (floats).
 * Returns 1, or 0 (out untouched) like eqr_steer_basis_eval. */
int eqr_steer_basis_sample(const eqr_steer_basis *b, int64_t t, float *out);

/* Filter bank [out_dim, in_dim, k, k] of weights w[size] (overwritten). */
void eqr_steer_basis_expand(const eqr_steer_basis *b, const float *w, float *bank);
/* Adjoint of the expansion: w[t] = <bank, element t> (overwritten). As the
 * basis is orthonormal this is the least-squares equivariant fit of bank,
 * and expand(project(bank)) == bank for an equivariant bank in its span. */
void eqr_steer_basis_project(const eqr_steer_basis *b, const float *bank, float *w);

/* ------------------------------------------------------------------ layer */

/* Options of eqr_steer_conv_create; zero-initialise for the defaults (the
 * same as NULL): stride 1, no padding, dilation 1, with bias, weight std
 * from the gain sqrt(2), default basis options. */
typedef struct eqr_steer_conv_opts {
    eqr_conv2d_geom geom;       /* stride / padding / dilation (ops.h) */
    int no_bias;                /* 1: no bias parameter */
    float init_gain;            /* 0 = sqrt(2) (ReLU); see eqr_steer_conv_create */
    eqr_steer_basis_opts basis; /* ring width and frequency cap */
} eqr_steer_conv_opts;

/* A steerable conv layer (opaque). */
typedef struct eqr_steer_conv eqr_steer_conv;

/* New steerable conv in_type -> out_type with k x k filters. Builds the basis
 * once, here. Registers "<name>.weight" of shape [size] (layout in the file
 * comment), drawn N(0, s^2) with s = gain * sqrt(out_dim / size), which gives
 * every output channel on average sum over its taps of Var = gain^2 (He
 * initialisation), and, unless opts->no_bias, "<name>.bias" (zeros,
 * EQR_PARAM_NO_DECAY) with one value per output field that may carry a bias:
 * each trivial field (irrep (0,0)) and each regular field (shared over its
 * |G| channels: the trivial component). If out_type has no such field, no
 * bias parameter is created. The layer keeps pointers to in_type and
 * out_type only to hand them back; it never reads them after this call.
 * opts may be NULL.
 * Errors (NULL, message recorded): those of eqr_steer_basis_create (e.g.
 * "different groups", a regular part of a continuous group); EQR_ERR_ARG if
 * no equivariant kernel exists at all for the types (e.g. O(2) trivial ->
 * det irrep; a larger k may help), the geometry has a negative entry, or
 * name is NULL / empty / too long; errors of eqr_param_create. Logs a warning
 * (no error) if the geometry is exact on no input size: with 90-degree
 * rotations, a stride, padding or dilation that differs between the axes
 * (WARNINGS in gconv.h). */
eqr_steer_conv *eqr_steer_conv_create(eqr_ctx *ctx, const char *name, const eqr_rep *in_type,
                                      const eqr_rep *out_type, int k,
                                      const eqr_steer_conv_opts *opts);

/* y = conv2d(x, bank, bias) for x [N, in_dim, H, W]: [N, out_dim, OH, OW].
 * Differentiable in x, the weight and the bias. NULL with EQR_ERR_SHAPE if x
 * is not 4-D with in_dim channels; NULL with EQR_ERR_ARG if layer is NULL;
 * NULL x or a context in error: NULL, nothing recorded. Allocates only in
 * the step arena. The layer must outlive the backward of the step. Logs a
 * warning, once per input size, if the layer is not exact on H x W
 * (eqr_steer_conv_exact_on; WARNINGS in gconv.h): stride > 1 is checked
 * here, not at construction, as it depends on the input size. */
eqr_tensor *eqr_steer_conv_forward(eqr_ctx *ctx, eqr_steer_conv *layer, eqr_tensor *x);

/* The filter bank [out_dim, in_dim, k, k] as a step-arena tensor,
 * differentiable in the weight (one op: basis expansion by GEMM; its
 * backward is eqr_steer_basis_project). NULL on error. */
eqr_tensor *eqr_steer_conv_filter_bank(eqr_ctx *ctx, eqr_steer_conv *layer);
/* The bias vector [out_dim] (zero on channels that carry no bias),
 * differentiable in "<name>.bias"; NULL without an error if the layer has no
 * bias parameter. */
eqr_tensor *eqr_steer_conv_bias_vector(eqr_ctx *ctx, eqr_steer_conv *layer);

/* Write the layer as a plain conv: weight gets the bank (out_dim * in_dim *
 * k * k floats, [O, C, k, k]) and bias, if not NULL, the bias vector (out_dim
 * floats; zeros without a bias parameter). Then eqr_conv2d(x, weight, bias,
 * eqr_steer_conv_geom(layer)) equals eqr_steer_conv_forward(x). No gradient
 * is recorded and the arena is not used. EQR_ERR_ARG if layer or weight is
 * NULL. */
eqr_status eqr_steer_conv_export(eqr_ctx *ctx, const eqr_steer_conv *layer, float *weight,
                                 float *bias);

/* 1 if the layer is exactly equivariant (for its group's elements that map
 * the grid onto itself) on H x W inputs: the condition of the file comment
 * on the axes those elements move (flips: the width; half turns: both),
 * plus H == W and the same stride, padding and dilation on both axes if the
 * group has rotations by 90 degrees (SO(2), O(2), C_N / D_N with 4 | N).
 * 0 otherwise (including sizes too small for the kernel, or a NULL layer).
 * The same rule as eqr_gconv_exact_on. */
int eqr_steer_conv_exact_on(const eqr_steer_conv *layer, int h, int w);

/* Accessors; NULL / 0 for a NULL layer. */
const eqr_steer_basis *eqr_steer_conv_basis(const eqr_steer_conv *layer);
const eqr_group *eqr_steer_conv_group(const eqr_steer_conv *layer);
const eqr_rep *eqr_steer_conv_in_type(const eqr_steer_conv *layer);
const eqr_rep *eqr_steer_conv_out_type(const eqr_steer_conv *layer);
eqr_tensor *eqr_steer_conv_weight(const eqr_steer_conv *layer);
eqr_tensor *eqr_steer_conv_bias(const eqr_steer_conv *layer); /* NULL if no bias */
/* The conv geometry with defaults filled in (stride and dilation >= 1). */
const eqr_conv2d_geom *eqr_steer_conv_geom(const eqr_steer_conv *layer);
int eqr_steer_conv_kernel_size(const eqr_steer_conv *layer);
/* Shape of the bank [out_dim, in_dim, k, k] into shape[4]. */
void eqr_steer_conv_bank_shape(const eqr_steer_conv *layer, int64_t shape[4]);

/* Free the layer and its basis. Its parameters stay in the context's store.
 * NULL is ok. */
void eqr_steer_conv_destroy(eqr_steer_conv *layer);

#ifdef __cplusplus
}
#endif
#endif
