/* Actions of planar group elements on grids, filter banks and feature maps.
 * Grid coordinates and the field convention (g.f)(p) = rho(g) f(g^-1 p) are
 * documented in include/equirelax/groups.h. */
#include "core/internal.h"
#include "equirelax/groups.h"

#include <math.h>
#include <stdlib.h>

#define HALF_PI 1.57079632679489661923132169163975144
#define ANG_TOL 1e-9

/* Number of quarter turns (0..3) if angle is a multiple of 90 degrees, else -1. */
static int quarter_turns(double angle) {
    if (!isfinite(angle)) return -1;
    double t = angle / HALF_PI, k = floor(t + 0.5);
    if (fabs(angle - k * HALF_PI) > ANG_TOL) return -1;
    return (int)fmod(fmod(k, 4.0) + 4.0, 4.0);
}

static int elem_ok(eqr_gelem g) {
    return (g.flip == 0 || g.flip == 1) && isfinite(g.angle);
}

int eqr_grid_exact(int h, int w, eqr_gelem g) {
    if (!elem_ok(g) || h < 1 || w < 1) return 0;
    int q = quarter_turns(g.angle);
    return q >= 0 && (q % 2 == 0 || h == w);
}

/* Exact map: src[p] = pixel at g^-1 p, in doubled integer coordinates
 * X = 2j - (W-1), Y = (H-1) - 2i so half-pixel centres stay integers. */
static void fill_exact(eqr_grid_map *m) {
    int H = m->h, W = m->w, q = quarter_turns(m->g.angle), f = m->g.flip;
    int qi = f ? q : (4 - q) % 4; /* g^-1 = (f, -angle) or (1, angle) */
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            int X = 2 * j - (W - 1), Y = (H - 1) - 2 * i;
            if (f) X = -X;
            for (int r = 0; r < qi; r++) {
                int t = X;
                X = -Y;
                Y = t;
            }
            m->src[(size_t)i * W + j] = (int32_t)((size_t)((H - 1 - Y) / 2) * W + (size_t)((X + W - 1) / 2));
        }
}

/* Snap values within 1e-9 of an integer, so near-grid samples get 0/1 weights. */
static double snap(double v) {
    double r = floor(v + 0.5);
    return fabs(v - r) < 1e-9 ? r : v;
}

static void fill_bilinear(eqr_grid_map *m) {
    int H = m->h, W = m->w;
    eqr_gelem gi = eqr_group_inverse(NULL, m->g);
    double M[4];
    eqr_gelem_matrix(gi, M);
    double cx = 0.5 * (W - 1), cy = 0.5 * (H - 1);
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            double x = j - cx, y = cy - i;
            double fj = snap(M[0] * x + M[1] * y + cx);
            double fi = snap(cy - (M[2] * x + M[3] * y));
            double i0 = floor(fi), j0 = floor(fj), di = fi - i0, dj = fj - j0;
            size_t p = (size_t)i * W + j;
            for (int t = 0; t < 4; t++) {
                int a = t >> 1, b = t & 1;
                double ii = i0 + a, jj = j0 + b;
                double wgt = (a ? di : 1.0 - di) * (b ? dj : 1.0 - dj);
                int inside = ii >= 0 && ii < H && jj >= 0 && jj < W && wgt != 0.0;
                m->idx[4 * p + t] = inside ? (int32_t)((int64_t)ii * W + (int64_t)jj) : 0;
                m->wt[4 * p + t] = inside ? (float)wgt : 0.0f;
            }
        }
}

/* Lay out a map and its tables in one block of bytes (from malloc or the
 * arena), then fill it. */
static size_t map_bytes(int h, int w, int exact) {
    size_t hw = (size_t)h * (size_t)w;
    size_t head = (sizeof(eqr_grid_map) + 63) / 64 * 64;
    return head + (exact ? hw * sizeof(int32_t) : hw * 4 * (sizeof(int32_t) + sizeof(float)));
}

static eqr_grid_map *map_init(void *block, int h, int w, eqr_gelem g) {
    eqr_grid_map *m = block;
    size_t hw = (size_t)h * (size_t)w;
    char *tables = (char *)block + (sizeof(eqr_grid_map) + 63) / 64 * 64;
    m->h = h;
    m->w = w;
    m->g = g;
    m->exact = eqr_grid_exact(h, w, g);
    if (m->exact) {
        m->src = (int32_t *)tables;
        m->idx = NULL;
        m->wt = NULL;
        fill_exact(m);
    } else {
        m->src = NULL;
        m->idx = (int32_t *)tables;
        m->wt = (float *)(tables + hw * 4 * sizeof(int32_t));
        fill_bilinear(m);
    }
    return m;
}

/* Validate (h, w, g); 0 with EQR_ERR_ARG recorded if invalid. */
static int map_args_ok(eqr_ctx *ctx, const char *fn, int h, int w, eqr_gelem g) {
    if (h < 1 || w < 1 || (int64_t)h * w > INT32_MAX) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: grid %d x %d must have 1 <= h, w and h*w < 2^31", fn, h, w);
        return 0;
    }
    if (!elem_ok(g)) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: element (flip %d, angle %g) needs flip in {0,1} and a finite angle",
                  fn, g.flip, g.angle);
        return 0;
    }
    return 1;
}

eqr_grid_map *eqr_grid_map_create(eqr_ctx *ctx, int h, int w, eqr_gelem g) {
    if (!eqr__ok(ctx, 0) || !map_args_ok(ctx, "eqr_grid_map_create", h, w, g)) return NULL;
    g = eqr_gelem_of(g.flip, g.angle);
    void *block = malloc(map_bytes(h, w, eqr_grid_exact(h, w, g)));
    if (!block) {
        eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_grid_map_create: out of memory for a %d x %d map", h, w);
        return NULL;
    }
    return map_init(block, h, w, g);
}

void eqr_grid_map_destroy(eqr_grid_map *m) { free(m); }

/* Step-arena map (for the tensor-level actions). */
static eqr_grid_map *map_arena(eqr_ctx *ctx, const char *fn, int64_t h64, int64_t w64, eqr_gelem g) {
    int h = h64 > INT32_MAX ? 0 : (int)h64, w = w64 > INT32_MAX ? 0 : (int)w64;
    if (!map_args_ok(ctx, fn, h, w, g)) return NULL;
    g = eqr_gelem_of(g.flip, g.angle);
    void *block = eqr__arena_alloc(ctx, map_bytes(h, w, eqr_grid_exact(h, w, g)));
    return block ? map_init(block, h, w, g) : NULL;
}

static void apply_plane(const eqr_grid_map *m, const float *in, float *out) {
    size_t hw = (size_t)m->h * (size_t)m->w;
    if (m->exact) {
        const int32_t *src = m->src;
        for (size_t p = 0; p < hw; p++) out[p] = in[src[p]];
    } else {
        const int32_t *ix = m->idx;
        const float *wt = m->wt;
        for (size_t p = 0; p < hw; p++, ix += 4, wt += 4)
            out[p] = wt[0] * in[ix[0]] + wt[1] * in[ix[1]] + wt[2] * in[ix[2]] + wt[3] * in[ix[3]];
    }
}

void eqr_grid_map_apply(const eqr_grid_map *m, const float *in, float *out, int64_t nplanes) {
    if (!m || !in || !out) return;
    size_t hw = (size_t)m->h * (size_t)m->w;
    for (int64_t p = 0; p < nplanes; p++) apply_plane(m, in + (size_t)p * hw, out + (size_t)p * hw);
}

/* ------------------------------------------------------- tensor actions */

/* Output tensor shaped like x; NULL on error. */
static eqr_tensor *like(eqr_ctx *ctx, const eqr_tensor *x) {
    return eqr__tensor_empty(ctx, x->ndim, x->shape);
}

eqr_tensor *eqr_grid_act(eqr_ctx *ctx, eqr_gelem g, const eqr_tensor *x) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    char sb[EQR_SHAPE_BUF];
    if (x->ndim < 2) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_grid_act: x %s needs at least 2 dims [..., H, W]", EQR_SHAPE(x, sb));
        return NULL;
    }
    eqr_tensor *out = like(ctx, x);
    if (!out || x->numel == 0) return out;
    int64_t h = x->shape[x->ndim - 2], w = x->shape[x->ndim - 1];
    eqr_grid_map *m = map_arena(ctx, "eqr_grid_act", h, w, g);
    if (!m) return NULL;
    eqr_grid_map_apply(m, x->data, out->data, x->numel / (h * w));
    return out;
}

eqr_tensor *eqr_filters_act(eqr_ctx *ctx, eqr_gelem g, const eqr_tensor *w) {
    if (!eqr__ok(ctx, 1, w)) return NULL;
    char sb[EQR_SHAPE_BUF];
    if (w->ndim < 2 || w->shape[w->ndim - 1] != w->shape[w->ndim - 2]) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_filters_act: filter bank %s must be [..., k, k]", EQR_SHAPE(w, sb));
        return NULL;
    }
    return eqr_grid_act(ctx, g, w);
}

/* Check x is [..., K, H, W] with ndim >= 3; returns K or -1 (error recorded). */
static int64_t field_axis(eqr_ctx *ctx, const char *fn, const eqr_tensor *x) {
    char sb[EQR_SHAPE_BUF];
    if (x->ndim < 3) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "%s: x %s needs at least 3 dims [..., channels, H, W]", fn,
                  EQR_SHAPE(x, sb));
        return -1;
    }
    return x->shape[x->ndim - 3];
}

/* Regular block: nfields fields of |G| planes each starting at in / out;
 * out plane h = map(in plane perm[h]). */
static void act_regular_block(const eqr_grid_map *m, const int *perm, int order, int64_t nfields,
                              const float *in, float *out) {
    size_t hw = (size_t)m->h * (size_t)m->w;
    for (int64_t f = 0; f < nfields; f++) {
        size_t base = (size_t)f * (size_t)order * hw;
        for (int h = 0; h < order; h++) apply_plane(m, in + base + (size_t)perm[h] * hw, out + base + (size_t)h * hw);
    }
}

eqr_tensor *eqr_regular_act(eqr_ctx *ctx, const eqr_group *G, eqr_gelem g, const eqr_tensor *x) {
    if (!eqr__ok(ctx, 2, G, x)) return NULL;
    char sb[EQR_SHAPE_BUF], gname[32];
    if (!eqr_group_valid(G) || !eqr_group_is_finite(G)) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_regular_act: group %s has no regular representation (need C_N or D_N)",
                  eqr_group_name(G, gname, sizeof gname));
        return NULL;
    }
    eqr_group_name(G, gname, sizeof gname);
    if (!eqr_group_contains(G, g)) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_regular_act: element (flip %d, angle %g) is not in %s", g.flip,
                  g.angle, gname);
        return NULL;
    }
    int64_t K = field_axis(ctx, "eqr_regular_act", x);
    if (K < 0) return NULL;
    int order = eqr_group_order(G);
    if (K % order != 0) {
        eqr__fail(ctx, EQR_ERR_SHAPE,
                  "eqr_regular_act: x %s: channel axis %lld is not a multiple of |%s| = %d", EQR_SHAPE(x, sb),
                  (long long)K, gname, order);
        return NULL;
    }
    eqr_tensor *out = like(ctx, x);
    if (!out || x->numel == 0) return out;
    int64_t h = x->shape[x->ndim - 2], w = x->shape[x->ndim - 1];
    eqr_grid_map *m = map_arena(ctx, "eqr_regular_act", h, w, g);
    int *perm = eqr__arena_alloc(ctx, (size_t)order * sizeof *perm);
    if (!m || !perm) return NULL;
    eqr_regular_perm(G, g, perm);
    act_regular_block(m, perm, order, x->numel / (h * w * order), x->data, out->data);
    return out;
}

eqr_tensor *eqr_rep_act(eqr_ctx *ctx, const eqr_rep *rep, eqr_gelem g, const eqr_tensor *x) {
    if (!eqr__ok(ctx, 2, rep, x)) return NULL;
    char sb[EQR_SHAPE_BUF], gname[32];
    const eqr_group *G = &rep->group;
    if (!eqr_group_contains(G, g)) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_rep_act: element (flip %d, angle %g) is not in %s", g.flip, g.angle,
                  eqr_group_name(G, gname, sizeof gname));
        return NULL;
    }
    int64_t K = field_axis(ctx, "eqr_rep_act", x);
    if (K < 0) return NULL;
    if (K != rep->dim) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_rep_act: x %s: channel axis %lld != representation dim %d",
                  EQR_SHAPE(x, sb), (long long)K, rep->dim);
        return NULL;
    }
    eqr_tensor *out = like(ctx, x);
    if (!out || x->numel == 0) return out;
    int64_t h = x->shape[x->ndim - 2], w = x->shape[x->ndim - 1];
    size_t hw = (size_t)(h * w);
    int order = eqr_group_order(G);
    eqr_grid_map *m = map_arena(ctx, "eqr_rep_act", h, w, g);
    int *perm = order ? eqr__arena_alloc(ctx, (size_t)order * sizeof *perm) : NULL;
    float *tmp = eqr__arena_alloc(ctx, 2 * hw * sizeof *tmp);
    if (!m || (order && !perm) || !tmp) return NULL;
    if (order) eqr_regular_perm(G, g, perm);
    int64_t nbatch = x->numel / (K * (int64_t)hw);
    for (int64_t b = 0; b < nbatch; b++) {
        const float *xin = x->data + (size_t)b * (size_t)K * hw;
        float *xo = out->data + (size_t)b * (size_t)K * hw;
        for (int k = 0; k < rep->nparts; k++) {
            const eqr_rep_part *p = &rep->parts[k];
            const float *pin = xin + (size_t)eqr_rep_part_offset(rep, k) * hw;
            float *pout = xo + (size_t)eqr_rep_part_offset(rep, k) * hw;
            if (p->kind == EQR_PART_REGULAR) {
                act_regular_block(m, perm, order, p->mult, pin, pout);
                continue;
            }
            float r[4];
            int d = eqr_irrep_matrix_f(G, p->irrep, g, r);
            for (int c = 0; c < p->mult; c++) {
                const float *ci = pin + (size_t)c * d * hw;
                float *co = pout + (size_t)c * d * hw;
                if (d == 1) {
                    apply_plane(m, ci, co);
                    if (r[0] != 1.0f)
                        for (size_t q = 0; q < hw; q++) co[q] *= r[0];
                } else {
                    apply_plane(m, ci, tmp);
                    apply_plane(m, ci + hw, tmp + hw);
                    for (size_t q = 0; q < hw; q++) {
                        float u = tmp[q], v = tmp[hw + q];
                        co[q] = r[0] * u + r[1] * v;
                        co[hw + q] = r[2] * u + r[3] * v;
                    }
                }
            }
        }
    }
    return out;
}
