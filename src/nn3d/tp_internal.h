/* Internal kernel of the weighted tensor products: a list of "uvw" paths,
 * each a dense coupling tensor C[d1, d2, d3] (the path's Clebsch-Gordan
 * table times its normalisation), contracted as
 *   out[n, off3 + w d3 + k] += sum_{u,v,i,j} W[woff + (u m2 + v) m3 + w]
 *                              C[i, j, k] x1[n, off1 + u d1 + i] x2[n, off2 + v d2 + j]
 * with one GEMM per run of consecutive paths into the same output entry
 * whose weight blocks follow each other (tensor_product_kernel.c). The
 * public layer (irreps, CG, weight store) builds the path list, ordered so. */
#ifndef EQR_TP_INTERNAL_H
#define EQR_TP_INTERNAL_H

#include "core/internal.h"
#include "equirelax/tensor_product.h"

typedef struct eqr__tp_path {
    int64_t off1, m1, off2, m2, off3, m3, woff;
    int d1, d2, d3;
    const float *C; /* [d1][d2][d3], must outlive the step's backward */
} eqr__tp_path;

/* x1 [N, D1], x2 [N, D2], w [nw] shared by all samples or [N, nw] one set
 * per sample (W above then indexed by n too); out [N, D3]
 * (paths into an output entry are summed; entries no path reaches are 0).
 * Path offsets and sizes are trusted (checked by the caller, once). */
eqr_tensor *eqr__tp_forward(eqr_ctx *ctx, eqr_tensor *x1, eqr_tensor *x2, eqr_tensor *w,
                            int npaths, const eqr__tp_path *paths, int64_t D3);

#endif
