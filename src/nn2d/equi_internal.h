/* Small checks shared by the equivariant layers (gconv, steerable conv,
 * pooling, nonlinearities, batch norm). Not installed. */
#ifndef EQR_EQUI_INTERNAL_H
#define EQR_EQUI_INTERNAL_H

#include "core/internal.h"
#include "equirelax/gconv.h"
#include "equirelax/groups.h"
#include "equirelax/ops.h"
#include "equirelax/param.h"
#include "equirelax/steerable.h"

#include <limits.h>
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

/* 1 if G has quarter turns (C4, D4, C8, SO(2), ...), whose exactness needs
 * the same geometry on both axes. */
static inline int eqr__conv_has_quarter(const eqr_group *G) {
    return !eqr_group_is_finite(G) || G->n % 4 == 0;
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
    int half = !finite || G->n % 2 == 0, quarter = eqr__conv_has_quarter(G);
    if (eqr_group_has_flips(G) && !ok_w) return 0;
    if (half && !(ok_h && ok_w)) return 0;
    if (quarter && (h != w || g->pad_h != g->pad_w || g->stride_h != g->stride_w ||
                    g->dil_h != g->dil_w))
        return 0;
    return 1;
}

/* At construction: warn (EQR_LOG_WARN) when no input size can make a conv of
 * geometry g (defaults filled) exact under G, i.e. quarter turns with a
 * stride, padding or dilation that differs between the axes. Any other
 * geometry is exact on the sizes n = dil (k - 1) + 1 - 2 pad (mod stride),
 * so it is left to eqr__conv_watch_input at the forward. 1 if it warned. */
static inline int eqr__conv_warn_never_exact(eqr_ctx *ctx, const char *fn, const char *name,
                                             const eqr_group *G, const eqr_conv2d_geom *g) {
    if (!eqr__conv_has_quarter(G) ||
        (g->stride_h == g->stride_w && g->pad_h == g->pad_w && g->dil_h == g->dil_w))
        return 0;
    char gn[48];
    eqr__log(ctx, EQR_LOG_WARN,
             "%s(%s): never exactly equivariant, on any input size: the 90-degree rotations of "
             "%s need the same stride, padding and dilation on both axes (stride %d/%d, pad "
             "%d/%d, dil %d/%d); see EXACTNESS OF THE GEOMETRY in gconv.h",
             fn, name, eqr_group_name(G, gn, sizeof gn), g->stride_h, g->stride_w, g->pad_h,
             g->pad_w, g->dil_h, g->dil_w);
    return 1;
}

/* At the forward: warn (EQR_LOG_WARN) when the conv is not exact on h x w
 * inputs, naming the layer and the rule; once per input size, warned[2]
 * holding the size last warned about ({0, 0} at first). */
static inline void eqr__conv_watch_input(eqr_ctx *ctx, const char *fn, const char *name,
                                         const eqr_group *G, const eqr_conv2d_geom *g, int k,
                                         int64_t h, int64_t w, int64_t warned[2]) {
    if ((h == warned[0] && w == warned[1]) || h > INT_MAX || w > INT_MAX ||
        eqr__conv_exact_on(G, g, k, (int)h, (int)w))
        return;
    warned[0] = h;
    warned[1] = w;
    eqr__log(ctx, EQR_LOG_WARN,
             "%s(%s): not exactly equivariant on %lldx%lld inputs: along each axis of size n the "
             "sampling grid must be symmetric about the centre, (n + 2*pad - dil*(k-1) - 1) %% "
             "stride == 0 (k %d, stride %d/%d, pad %d/%d, dil %d/%d); with 90-degree rotations "
             "also H == W and equal geometry on both axes",
             fn, name, (long long)h, (long long)w, k, g->stride_h, g->stride_w, g->pad_h,
             g->pad_w, g->dil_h, g->dil_w);
}

/* eqr__conv_watch_input for a layer's h x w input, with the layer's own
 * once-per-size memory (shared by its plain and relaxed forwards); fn names
 * the calling function in the message. */
/* The gather table of the layer's bank (gconv.h): bank entry -> weight
 * entry, eqr_gconv_bank_shape's element count of them, valid while the
 * layer lives. */
const int64_t *eqr__gconv_bank_index(const eqr_gconv *layer);
void eqr__gconv_watch_input(eqr_ctx *ctx, const char *fn, eqr_gconv *layer, int64_t h,
                            int64_t w);
void eqr__steer_conv_watch_input(eqr_ctx *ctx, const char *fn, eqr_steer_conv *layer, int64_t h,
                                 int64_t w);

#endif
