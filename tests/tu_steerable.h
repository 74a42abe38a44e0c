/* Helpers shared by the steerable-conv tests (test_equivariance_steerable_*.c). */
#ifndef TU_STEERABLE_H
#define TU_STEERABLE_H

#include "testutil.h"

#define TWO_PI 6.283185307179586476925286766559
#define HALF_PI 1.5707963267948966192313216916398

/* Field type from a spec such as "t2 r1 i0,1x2": t<m> trivial x m,
 * r<m> regular x m, i<j>,<f>x<m> irrep (j, f) x m. */
eqr_rep *tu_steer_type(eqr_ctx *ctx, const eqr_group *G, const char *spec);

/* A plain [n, c, h, w] tensor of N(0, std^2) samples from the context RNG. */
eqr_tensor *tu_steer_randn(eqr_ctx *ctx, int64_t n, int64_t c, int64_t h, int64_t w, float std);

#endif
