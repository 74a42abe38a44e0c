/* Internal batch-norm kernel shared by the equivariant batch norms. Not
 * installed. */
#ifndef EQR_BN_INTERNAL_H
#define EQR_BN_INTERNAL_H

#include "core/internal.h"

/* The grouped batch-norm kernel (bn_grouped.c), shared by the field batch
 * norm (nn2d/equi_norm.c) and the irreps batch norm (nn3d/irreps_norm.c).
 * A stat group is a run of cnt consecutive channels of x viewed as
 * [N, D, HW]: one mean if centred (centre = its index into bias and
 * running_mean, else -1 and no mean is subtracted), one variance (mean
 * square when not centred) over N, the cnt channels and HW, and one scale
 * (weight[s]). Training normalises with the batch statistics (biased) and
 * updates running_mean / running_var (unbiased variance for centred
 * groups, the mean square otherwise) with the momentum; evaluation uses
 * the running buffers. weight and bias may be NULL (scale 1, shift 0). */
typedef struct eqr__bn_group {
    int32_t off, cnt; /* channels [off, off + cnt) */
    int32_t centre;   /* index into bias / running_mean, -1 if not centred */
} eqr__bn_group;

typedef struct eqr__bn {
    const eqr__bn_group *grp;
    int S, B; /* groups, centred groups */
    float eps, momentum;
    eqr_tensor *weight, *bias, *rmean, *rvar;
} eqr__bn;

/* y = the normalised x (same shape), recorded for backward; the backward
 * reads *bn, which must outlive it. The caller has checked the shape and
 * that training has more than one value in each centred group. */
eqr_tensor *eqr__bn_apply(eqr_ctx *ctx, const eqr__bn *bn, eqr_tensor *x, int64_t N, int64_t D,
                          int64_t HW, int training);

#endif
