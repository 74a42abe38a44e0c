/* Helpers shared by the relaxation-penalty tests (test_relax_penalty_*.c). */
#ifndef TU_RELAX_PENALTY_H
#define TU_RELAX_PENALTY_H

#include "testutil.h"

/* k x k, "same" padding, the bias left at its init */
eqr_gconv *tu_pen_gconv(eqr_ctx *ctx, const char *name, const eqr_rep *in, const eqr_rep *out,
                        int k);

/* The first element of t; fails the test when t is NULL. */
double tu_pen_value(eqr_tensor *t);

#endif
