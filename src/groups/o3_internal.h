/* Private helpers shared by the O(3) sources (src/groups/o3_*.c). */
#ifndef EQR_O3_INTERNAL_H
#define EQR_O3_INTERNAL_H

#include "core/internal.h"
#include "equirelax/o3.h"

/* Position inside the degree-l block of the real basis element of order m
 * (-l <= m <= l): l + m, except l = 1 ordered (x, y, z) = (m=1, -1, 0). */
static inline int eqr__o3_pos(int l, int m) {
    if (l == 1) return m == 1 ? 0 : (m == -1 ? 1 : 2);
    return l + m;
}

/* Component-normalised solid harmonics of r (no checks): y[(lmax+1)^2],
 * grad (may be NULL) [(lmax+1)^2][3]. */
void eqr__o3_solid(int lmax, const double r[3], double *y, double *grad);

/* 1 if ir is non-NULL, has 0..EQR_IRREPS_MAX entries, each with mul >= 0,
 * 0 <= l <= EQR_O3_LMAX and p = +-1, and (nonempty) dimension > 0; else 0
 * with EQR_ERR_ARG recorded, the message starting "<fn>: " and naming the
 * first bad entry. For layers given an eqr_irreps built by hand. */
int eqr__irreps_ok(eqr_ctx *ctx, const char *fn, const eqr_irreps *ir, int nonempty);

#endif
