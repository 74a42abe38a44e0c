/* The sum-of-squares kernel shared by eqr_sumsq (sumsq.c) and the stacked
 * norm conv (conv_norm.c). Not installed. */
#ifndef EQR_SUMSQ_INTERNAL_H
#define EQR_SUMSQ_INTERNAL_H

#include <stdint.h>

/* Sum of squares of n floats in double, with 8 independent partial sums
 * added in a fixed order: the same result wherever it is called. */
double eqr__sumsq8(const float *restrict x, int64_t n);

#endif
