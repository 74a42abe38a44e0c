/* equirelax equivariance measurement: how far a layer or model is from
 * commuting with a group element, measured on a given input.
 *
 *     err = || f(g.x) - g.f(x) || / || f(x) ||
 *
 * with g acting on inputs through in_rep and on outputs through out_rep
 * (eqr_rep_act: spatial transform plus the representation on channels).
 * Used by the tests, the relaxation telemetry and the examples. */
#ifndef EQUIRELAX_EQUIVARIANCE_H
#define EQUIRELAX_EQUIVARIANCE_H

#include "data.h"
#include "groups.h"
#include "o3.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A forward pass under test: maps x to an output in the step arena. */
typedef eqr_tensor *(*eqr_forward_fn)(eqr_ctx *ctx, void *model, eqr_tensor *x);

/* Options of a measurement; zero-initialise for the defaults. */
typedef struct eqr_equiv_opts {
    /* Compare only output pixels within disk * min(H, W) / 2 of the centre
     * (0 = every pixel). Off-grid rotations are only meaningful on a central
     * disk of smooth inputs, as the corners leave the grid. */
    double disk;
} eqr_equiv_opts;

/* Relative equivariance error of f at x for element g, written to *err.
 * x is [N, in_rep->dim, H, W]. The output is either [N, out_rep->dim, H', W']
 * or [N, out_rep->dim] (e.g. logits; only rho(g) acts). out_rep NULL means
 * the output must be invariant: f(g.x) is compared with f(x) itself, with no
 * spatial transform (use a trivial out_rep to rotate trivial feature maps).
 * Runs with gradients disabled and leaves the step arena as it found it.
 * The model is left as it was: every parameter and buffer of the context's
 * store (e.g. batch-norm running statistics a training-mode forward updates)
 * and the context RNG are snapshot before and restored bit-identically
 * after, and also between the two forwards, so f(x) and f(g.x) see the same
 * state. The mode is the caller's: a model in training mode is measured with
 * batch statistics (and one dropout mask), in eval mode with running ones.
 * (Snapshot rather than forcing eval: f is the caller's function, the
 * library cannot switch its mode, and a measurement must not pick one.)
 * opts may be NULL. Errors: shapes that do not
 * match the reps, g not in the groups, or a failing forward. */
eqr_status eqr_equivariance_error(eqr_ctx *ctx, eqr_forward_fn f, void *model,
                                  const eqr_rep *in_rep, const eqr_rep *out_rep,
                                  eqr_gelem g, const eqr_tensor *x,
                                  const eqr_equiv_opts *opts, double *err);

/* The largest eqr_equivariance_error over every element of a finite group
 * (the groups of in_rep / out_rep must be finite) or over n_samples random
 * elements (eqr_group_sample from the context RNG) of a continuous one. */
eqr_status eqr_equivariance_error_max(eqr_ctx *ctx, eqr_forward_fn f, void *model,
                                      const eqr_rep *in_rep, const eqr_rep *out_rep,
                                      const eqr_tensor *x, const eqr_equiv_opts *opts,
                                      int n_samples, double *err);

/* Invariance of a classifier on a dataset: the largest per-sample
 *     || f(g.x)_i - f(x)_i || / || f(x)_i ||
 * over the first n samples of ds (forwards of batch samples; 0: 100) and
 * every element g != e of the finite group G that acts exactly on ds's
 * h x w grid (eqr_grid_exact: quarter turns on square images, flips); f's
 * output is [batch, K] (logits). G NULL: C4 (e.g. to show that a plain
 * CNN is not invariant). *err is 0 when no element acts exactly. Leaves
 * the model as it was, as eqr_equivariance_error (store and RNG restored
 * before each forward), without gradients; the mode is the caller's.
 * Errors: NULL f/ds/err, n outside [0, ds->n], an infinite group, an
 * output of another shape, a failing forward. */
eqr_status eqr_invariance_max(eqr_ctx *ctx, eqr_forward_fn f, void *model, const eqr_group *G,
                              const eqr_dataset *ds, int64_t n, int64_t batch, double *err);

/* ------------------------------------------------------ O(3) irreps */

/* Equivariance measurement for irreps-typed functions (single layers or
 * whole models). fn maps features x [N, dim(in)] and optional positions
 * pos [P, 3] (may be NULL) to y [..., dim(out)]. For nsamples random
 * elements g = (s R, t) (Haar R; s = -1 on every other sample if
 * EQR_EQ_PARITY; translation t ~ N(0, 1)^3 added to pos if
 * EQR_EQ_TRANSLATION) it compares fn(g x, s R pos + t) with g fn(x, pos)
 * (y is translation invariant) and returns in *max_rel the largest
 * ||difference|| / max(||g fn(x)||, 1e-30). Runs without recording
 * gradients and releases its scratch; x and pos are left untouched. */
enum { EQR_EQ_PARITY = 1, EQR_EQ_TRANSLATION = 2 };
typedef eqr_tensor *(*eqr_irreps_fn)(eqr_ctx *ctx, eqr_tensor *x, eqr_tensor *pos, void *user);
eqr_status eqr_irreps_equivariance(eqr_ctx *ctx, eqr_irreps_fn fn, void *user,
                                   const eqr_irreps *in, const eqr_irreps *out, eqr_tensor *x,
                                   eqr_tensor *pos, int nsamples, unsigned flags, double *max_rel);

#ifdef __cplusplus
}
#endif
#endif
