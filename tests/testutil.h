/* Shared helpers for the cmocka tests: parameter inputs, closeness checks
 * against double references, and central finite-difference gradient checks. */
#ifndef EQR_TESTUTIL_H
#define EQR_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "equirelax/equirelax.h"

/* Fresh context with a fixed seed; asserts it was created. */
eqr_ctx *tu_ctx(uint64_t seed);

/* A trainable parameter filled with N(0, std^2) from the context RNG, used
 * as a differentiable test input. Asserts success. */
eqr_tensor *tu_input(eqr_ctx *ctx, const char *name, int ndim, const int64_t *shape, float std);

/* Fill p[0..n) with U(-1, 1) samples from a generator seeded with seed. */
void tu_fill_uniform(float *p, int64_t n, uint64_t seed);

/* Backpropagate a seed of ones from y (the gradient of sum(y)); asserts
 * success. */
void tu_backward_ones(eqr_ctx *ctx, eqr_tensor *y);

/* Assert |got[i] - ref[i]| <= atol + rtol * max(|got[i]|, |ref[i]|) for all i;
 * on failure prints the first offending index (what) and fails the test. */
void tu_assert_close(const char *what, const float *got, const double *ref, int64_t n,
                     double atol, double rtol);

/* ---- tolerances from float32 error bounds ----
 * A float32 sum of n terms a_k b_k (products rounded too), in ANY order and
 * blocking (any BLAS kernel, any thread split, with or without FMA), is off
 * from the exact sum by at most gamma_n * sum_k |a_k b_k| (Higham, Accuracy
 * and Stability, 3.1), gamma_n = n u / (1 - n u), u = 2^-24. So a reference
 * that accumulates in double both the sum and its magnitude
 * mag = sum_k |a_k b_k| gives a tolerance that no correct kernel can exceed
 * while a missing or wrong term (of size ~ mag / n, far above gamma_n mag
 * for the n used here) still fails.
 * Choosing n: the number of rounded operations on the longest path into one
 * output element (terms of the sum, +1 for a bias added to it, or an upper
 * bound on the count such as C*k*k for a padded conv). Choosing c: 1 for a
 * plain sum of products stored once; add 1 for each further rounded op on
 * the result (e.g. a scale or an activation of it), as gamma_n + k u <=
 * gamma_{n+k}; a bound that is not a plain sum (norms, divisions) says in a
 * comment how its mag and c were derived. */
#define TU_U (1.0 / 16777216.0)

/* gamma_n = n u / (1 - n u), u = 2^-24 (requires n u < 1). */
double tu_gamma(int64_t n);

/* Assert |got[i] - ref[i]| <= c * gamma_nsum * mag[i] + u |ref[i]| + FLT_MIN
 * for all i (u |ref|: rounding the result to float once; FLT_MIN: values
 * below the normal range underflow, e.g. exp(-300) is 0 in float); on
 * failure prints the first offending index, the bound and its parts. */
void tu_assert_close_bound(const char *what, const float *got, const double *ref, const double *mag,
                           int64_t n, int64_t nsum, double c);

/* The function under a gradient check: builds the output from the inputs. */
typedef eqr_tensor *(*tu_fn)(eqr_ctx *ctx, eqr_tensor **in, void *user);

/* Central finite-difference check of d L / d in[k], L = sum_j f(in)_j r_j
 * for a fixed random r, for every element of every input that requires
 * grad. Uses eqr_backward_from, so it depends on no other op. Resets the
 * step arena and zeroes gradients. Fails the test on a mismatch or on any
 * context error.
 * Tolerance, from the error sources of a central difference
 * D(h) = (L(x+h) - L(x-h)) / (x+h - x-h), taken over the step the float
 * input really moved by, L summed in double (products y_j r_j exact):
 *  - truncation: D(h) - L' = h^2 L'''/6 + O(h^4). The third derivative is
 *    read off the data: D(2h) - D(h) = h^2 L'''/2 + O(h^4), three times the
 *    truncation of D(h); |D(2h) - D(h)| is used (a factor 3 of margin for
 *    L''' varying over [x - 2h, x + 2h]).
 *  - rounding of the float forwards: each output y_j is taken to be within
 *    depth * u * s_j of its exact value, s_j = max(|y_j(x+-h)|, max_i |y_i(x)|)
 *    (intermediates of the outputs' scale; depth = the rounded ops on the
 *    longest path into one output, counting n for a sum of n terms as in
 *    tu_gamma). Outputs that come out bit-equal in both forwards cancel
 *    exactly, so R(h) = 2 depth u sum_{j: y_j(x+h) != y_j(x-h)} |r_j| s_j / 2h.
 *    Rounding also enters the truncation estimate, so 2 (R(h) + R(2h)) is
 *    used: |D(h) - L'| <= |D(2h) - D(h)|/3 + (4 R(h) + R(2h))/3 when the
 *    O(h^4) term is small.
 *  - the analytic gradient's own rounding: A = depth * u * (max(|analytic|,
 *    sum_j |r_j (y_j(x+h) - y_j(x-h))| / 2h) + max_j |r_j| s / max_i |x_i|):
 *    the magnitude sum_j |r_j dy_j/dx| of the terms it adds up, plus one
 *    term of the outputs' scale over the input's for terms that cancel in
 *    the total (x - x, x / x: gradient 0, rounded terms of size |r / x|).
 * Check: |D(h) - analytic| <= |D(2h) - D(h)| + 2 (R(h) + R(2h)) + A. A
 * wrong or missing gradient term (of the size of the gradient) stays far
 * above that for smooth f; a kink of f (relu, max) within 2h of x inflates
 * the truncation estimate, as it should, but one within h of x can fail:
 * keep inputs more than 2h away from kinks. */
void tu_gradcheck(eqr_ctx *ctx, tu_fn f, eqr_tensor **in, int nin, void *user,
                  double h, double depth);

/* Assert |got[i] - ref[i]| <= c u (|ref[i]| + mag[i]) for all i: results a
 * few roundings (c) away from a double reference. mag (NULL: all 0) is the
 * scale of the terms a result is made of where it can cancel (a sum or
 * difference, 1 + erf(x) for x < 0, 1 - sigmoid(x)); products, quotients
 * and monotone functions of one value have relative error only. FLT_MIN
 * is added for underflow, as in tu_assert_close_bound. */
void tu_assert_close_rel(const char *what, const float *got, const double *ref, const double *mag,
                         int64_t n, double c);

/* Assert the context is in error with status st and a message containing
 * needle (may be NULL), then clear the error. */
void tu_assert_error(eqr_ctx *ctx, eqr_status st, const char *needle);

/* Path of a scratch file name under the test temp dir (EQR_TEST_TMPDIR or
 * /tmp), unique per process; buf must hold 512 bytes. */
char *tu_tmp_path(char *buf, const char *name);

/* ---- helpers shared by the equivariance and relaxation tests ---- */

/* Number of groups tu_small_group enumerates. */
#define TU_NSMALL_GROUPS 6

/* The i-th of C1, C2, C4, D1, D2, D4 (i >= 5 gives D4). */
eqr_group tu_small_group(int i);

/* c copies of G's trivial irrep; asserts success. */
eqr_rep *tu_trivial_rep(eqr_ctx *ctx, const eqr_group *G, int c);

/* f copies of G's regular representation; asserts success. */
eqr_rep *tu_regular_rep(eqr_ctx *ctx, const eqr_group *G, int f);

/* One copy each of G's irreps (j = 0) of the n (<= 4) given frequencies;
 * asserts success. */
eqr_rep *tu_irreps_rep(eqr_ctx *ctx, const eqr_group *G, int n, const int *freqs);

/* A plain (non-trainable) [n, c, h, w] tensor of N(0, 1) samples from the
 * context RNG; asserts success. */
eqr_tensor *tu_randn(eqr_ctx *ctx, int n, int c, int h, int w);

/* Group conv in -> out, k x k, with geometry geom; a bias (if any) is
 * filled with N(0, bias_std^2) from the context RNG when bias_std > 0.
 * Asserts success. */
eqr_gconv *tu_gconv(eqr_ctx *ctx, const char *name, const eqr_rep *in, const eqr_rep *out, int k,
                    eqr_conv2d_geom geom, float bias_std);

/* Relaxation set with global theta, W_r ~ N(0, std^2) (zero when std <= 0),
 * the given penalty weights and norm subsample; asserts success. */
eqr_relax *tu_relax(eqr_ctx *ctx, const char *name, float theta, float std, float lambda_defect,
                    float lambda_norm, int norm_subsample);

/* eqr_forward_fn of one relaxed layer (model = the eqr_rlayer). */
eqr_tensor *tu_rlayer_forward(eqr_ctx *ctx, void *layer, eqr_tensor *x);

/* tu_fn of one relaxed layer (user = the eqr_rlayer) applied to in[0]. */
eqr_tensor *tu_rlayer_fn(eqr_ctx *ctx, eqr_tensor **in, void *user);

/* Max over nrot rotations R drawn from the context RNG of
 * ||f(R x) - R f(x)|| / ||f(x)|| (R f(x) replaced by f(x) when invariant),
 * rotating axis 2 of x and f(x); resets the step arena after each. */
double tu_so3_equiv_err(eqr_ctx *ctx, eqr_forward_fn f, void *model, eqr_tensor *x, int nrot,
                        int invariant);

/* Bound on the relative equivariance error ||f(R x) - R f(x)|| / ||f(x)|| of
 * a float32 f that is exactly equivariant for an orthogonal R applied in
 * float (the measure of tu_so3_equiv_err). In exact arithmetic the two
 * sides are equal; in float:
 *  - R x rounds a 3-term sum per component: off by <= gamma_3 sum_j |R_ij x_j|
 *    <= sqrt(3) gamma_3 |x| (rows of R have norm 1), an input perturbation
 *    that f carries to its output with relative gain amp;
 *  - f on each side: every output within gamma_depth of its magnitude sum
 *    (depth as for tu_gamma: the rounded ops on the longest path), whose
 *    norm is at most amp ||f(x)||;
 *  - R f(x): sqrt(3) gamma_3 ||f(x)|| again.
 * So err <= sqrt(3) gamma_3 (amp + 1) + 2 amp gamma_depth. amp is the ratio
 * of magnitude sums to values and the relative condition of f: 1 for an
 * orthogonal map; sqrt(n) for sums of n terms of random sign (the sum is
 * ~ sqrt(n) times smaller than its magnitude); products over layers for a
 * deep f. Each caller says how it chose depth and amp. */
double tu_equiv_bound(int64_t depth, double amp);

/* Like tu_gradcheck, but the finite-difference forwards run with gradients
 * ENABLED (for terms recorded only then, e.g. relaxation penalties), the
 * output weights r are U(-1, 1) from tu_fill_uniform(seed), and every
 * input must have a gradient. */
void tu_gradcheck_recorded(eqr_ctx *ctx, tu_fn f, eqr_tensor **in, int nin, void *user,
                           uint64_t seed, double h, double depth);

#endif
