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

/* The function under a gradient check: builds the output from the inputs. */
typedef eqr_tensor *(*tu_fn)(eqr_ctx *ctx, eqr_tensor **in, void *user);

/* Central finite-difference check of d sum(f(in) * r) / d in[k] for a fixed
 * random r, for every element of every input that requires grad, with step h
 * and tolerance atol + rtol * max(|analytic|, |numeric|). Uses
 * eqr_backward_from, so it depends on no other op. Resets the step arena and
 * zeroes gradients. Fails the test on a mismatch or on any context error. */
void tu_gradcheck(eqr_ctx *ctx, tu_fn f, eqr_tensor **in, int nin, void *user,
                  double h, double atol, double rtol);

/* Assert the context is in error with status st and a message containing
 * needle (may be NULL), then clear the error. */
void tu_assert_error(eqr_ctx *ctx, eqr_status st, const char *needle);

/* Path of a scratch file name under the test temp dir (EQR_TEST_TMPDIR or
 * /tmp), unique per process; buf must hold 512 bytes. */
char *tu_tmp_path(char *buf, const char *name);

#endif
