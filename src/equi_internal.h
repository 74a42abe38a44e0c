/* Small checks shared by the equivariant layers (gconv, steerable conv,
 * pooling, nonlinearities, batch norm). Not installed. */
#ifndef EQR_EQUI_INTERNAL_H
#define EQR_EQUI_INTERNAL_H

#include "internal.h"
#include "equirelax/groups.h"
#include "equirelax/ops.h"
#include "equirelax/param.h"

#include <stdio.h>

/* 1 for a part of copies of the trivial irrep (0, 0). */
static inline int eqr__part_is_trivial(const eqr_rep_part *p) {
    return p->kind == EQR_PART_IRREP && p->irrep.j == 0 && p->irrep.freq == 0;
}

/* Same group (kind, N, and the band limit of continuous groups; max_freq of
 * C_N / D_N is only informational). */
static inline int eqr__same_group(const eqr_group *a, const eqr_group *b) {
    if (a->kind != b->kind || a->n != b->n) return 0;
    return eqr_group_is_finite(a) || a->max_freq == b->max_freq;
}

/* Layer name check: non-empty and short enough for "<name><suffix>" (the
 * longest parameter suffix, e.g. ".weight") in a parameter name. 0 with
 * EQR_ERR_ARG recorded otherwise. */
static inline int eqr__layer_name_ok(eqr_ctx *ctx, const char *fn, const char *name,
                                     const char *suffix) {
    size_t room = EQR_NAME_LEN - 1 - strlen(suffix);
    if (name && *name && strlen(name) <= room) return 1;
    eqr__fail(ctx, EQR_ERR_ARG, "%s: name '%s' is NULL, empty or too long (need 1..%zu characters)",
              fn, name ? name : "(null)", room);
    return 0;
}

/* 1 if none of the parameters "<name><suffix>" exists yet, so a create
 * fails before registering any of them (the store cannot remove one); 0
 * with EQR_ERR_ARG recorded otherwise. name passed eqr__layer_name_ok. */
static inline int eqr__param_names_free(eqr_ctx *ctx, const char *fn, const char *name, int n,
                                        const char *const *suffixes) {
    for (int i = 0; i < n; i++) {
        char pname[EQR_NAME_LEN];
        snprintf(pname, sizeof pname, "%s%s", name, suffixes[i]);
        if (eqr_param_find(ctx, pname)) {
            eqr__fail(ctx, EQR_ERR_ARG, "%s: a parameter named '%s' already exists", fn, pname);
            return 0;
        }
    }
    return 1;
}

/* Parameter "<name>.<suffix>" of n elements filled with fill (NULL with the
 * error recorded on failure). */
eqr_tensor *eqr__param_filled(eqr_ctx *ctx, const char *name, const char *suffix, int64_t n,
                              unsigned flags, float fill);

/* Validate a conv geometry and fill the defaults (stride, dilation 0 -> 1).
 * 0 with EQR_ERR_ARG recorded if an entry is negative. */
static inline int eqr__conv_geom_fill(eqr_ctx *ctx, const char *fn, eqr_conv2d_geom *g) {
    if (g->stride_h < 0 || g->stride_w < 0 || g->pad_h < 0 || g->pad_w < 0 || g->dil_h < 0 ||
        g->dil_w < 0) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: negative geometry (stride %d,%d pad %d,%d dilation %d,%d)",
                  fn, g->stride_h, g->stride_w, g->pad_h, g->pad_w, g->dil_h, g->dil_w);
        return 0;
    }
    if (!g->stride_h) g->stride_h = 1;
    if (!g->stride_w) g->stride_w = 1;
    if (!g->dil_h) g->dil_h = 1;
    if (!g->dil_w) g->dil_w = 1;
    return 1;
}

/* Span of the sampling along one axis: negative if no output exists, and
 * divisible by the stride iff the samples sit symmetrically about the
 * centre. */
static inline int64_t eqr__conv_span(int n, int k, int pad, int dil) {
    return (int64_t)n + 2 * (int64_t)pad - (int64_t)dil * (k - 1) - 1;
}

/* 1 if a conv with k x k filters and geometry g (defaults filled) commutes
 * with every element of G that maps the pixel grid onto itself, on h x w
 * inputs: the output must exist; a flip (x -> -x) needs a symmetric width
 * axis, a half turn both axes, a quarter turn also a square input with the
 * same geometry on both axes (else the output is not square). */
static inline int eqr__conv_exact_on(const eqr_group *G, const eqr_conv2d_geom *g, int k, int h,
                                     int w) {
    if (h < 1 || w < 1) return 0;
    int64_t sh = eqr__conv_span(h, k, g->pad_h, g->dil_h), sw = eqr__conv_span(w, k, g->pad_w, g->dil_w);
    if (sh < 0 || sw < 0) return 0;
    int ok_h = sh % g->stride_h == 0, ok_w = sw % g->stride_w == 0;
    int finite = eqr_group_is_finite(G);
    int half = !finite || G->n % 2 == 0, quarter = !finite || G->n % 4 == 0;
    if (eqr_group_has_flips(G) && !ok_w) return 0;
    if (half && !(ok_h && ok_w)) return 0;
    if (quarter && (h != w || g->pad_h != g->pad_w || g->stride_h != g->stride_w ||
                    g->dil_h != g->dil_w))
        return 0;
    return 1;
}

/* ---- grouped batch-norm kernel (equi_norm.c), shared by the field batch
 * norm and the irreps batch norm (nn3d/irreps_norm.c) ----
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
