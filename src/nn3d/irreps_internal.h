/* Layout of the irreps linear layer (irreps_linear.c), shared with its
 * relaxation (irreps_relax.c), which folds into its weight blocks. */
#ifndef EQR_IRREPS_INTERNAL_H
#define EQR_IRREPS_INTERNAL_H

#include "core/internal.h"
#include "equirelax/irreps_nn.h"

typedef struct {
    int a, b;         /* input entry, output entry */
    int64_t woff;     /* offset of the [mul_b][mul_a] block in the weight */
    float c;          /* 1/sqrt(fan_in_b) */
} lin_path;

struct eqr_irreps_linear {
    eqr_irreps in, out;
    int64_t din, dout;
    int npaths;
    lin_path p[EQR_IRREPS_MAX * EQR_IRREPS_MAX];
    eqr_tensor *w;
};

#endif
