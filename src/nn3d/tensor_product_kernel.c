/* Path contraction of the weighted tensor products (tp_internal.h).
 *
 * Paths are grouped: consecutive paths into the same output entry whose
 * weight blocks follow each other (the public layer orders them so: by
 * output entry, then (in1, in2)) share one GEMM. For a group with K = sum
 * of its paths' m1 m2 and rows (n, k), k < d3:
 *   T_p[n][i][k][v] = sum_j C[i, j, k] x2[n, v, j]          (sparse C, per sample)
 *   Z[(n, k), Kp + u m2 + v] = sum_i x1[n, u, i] T_p[n][i][k][v]
 *   Y = Z W_g                  [rows, m3]   (one GEMM, K = the group's fan)
 * and the output block takes Y transposed per sample. Backward: gY from
 * the output block, gW += Z^T gY, gZ = gY W^T (GEMMs), then gx1 from gZ
 * and T, gx2 from gZ, x1 and C. Z and T are recomputed in backward, not
 * stored (a step's arena holds no per-edge intermediates of the TP).
 *
 * Samples are cut into blocks of TP_BLOCK (Z of a block stays in cache);
 * with a context of t > 1 threads the samples are split into t fixed
 * contiguous chunks (OpenMP), each with its own scratch and, for shared
 * weights, its own weight-gradient accumulator added in chunk order: the
 * result depends only on t. All scratch comes from the step arena and is
 * released after the call. */
#include "nn3d/tp_internal.h"

#include <cblas.h>

/* The pair-product loops run over u (m1 floats). The library's baseline is
 * SSE2 (sgemm dispatches on its own); with GCC or Clang on x86-64 the
 * chunk tasks are also compiled for AVX2 + FMA, with everything they call
 * inlined, and picked at run time on CPUs that have both. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(EQR_NO_AVX2)
#define TP_AVX2 1
#endif
#define TP_INLINE static inline __attribute__((always_inline))

/* Eight floats at any float-aligned address (GCC / Clang vector extension;
 * without AVX the compiler splits it into SSE halves). */
typedef float tp_v8 __attribute__((vector_size(32), aligned(4), may_alias));
#define TP_LD(p) (*(const tp_v8 *)(p))
#define TP_ST(p, v) (*(tp_v8 *)(p) = (v))

/* out[u] = (acc ? out[u] : 0) + sum_t coef[t cs] src[t ss + u], u < m: the
 * sum is kept in registers over t (one store per element), zero
 * coefficients (sparse C) are skipped. */
TP_INLINE void lincomb(float *restrict out, const float *coef, int64_t cs, int64_t n,
                       const float *src, int64_t ss, int64_t m, int acc) {
    int64_t u = 0;
    for (; u + 32 <= m; u += 32) {
        tp_v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        if (acc) a0 = TP_LD(out + u), a1 = TP_LD(out + u + 8), a2 = TP_LD(out + u + 16),
                 a3 = TP_LD(out + u + 24);
        for (int64_t t = 0; t < n; t++) {
            const float c = coef[t * cs];
            if (c == 0.0f) continue;
            const float *p = src + t * ss + u;
            a0 += c * TP_LD(p), a1 += c * TP_LD(p + 8), a2 += c * TP_LD(p + 16);
            a3 += c * TP_LD(p + 24);
        }
        TP_ST(out + u, a0), TP_ST(out + u + 8, a1), TP_ST(out + u + 16, a2);
        TP_ST(out + u + 24, a3);
    }
    for (; u + 8 <= m; u += 8) {
        tp_v8 a0 = {0};
        if (acc) a0 = TP_LD(out + u);
        for (int64_t t = 0; t < n; t++) {
            const float c = coef[t * cs];
            if (c != 0.0f) a0 += c * TP_LD(src + t * ss + u);
        }
        TP_ST(out + u, a0);
    }
    for (; u < m; u++) {
        float a = acc ? out[u] : 0.0f;
        for (int64_t t = 0; t < n; t++) a += coef[t * cs] * src[t * ss + u];
        out[u] = a;
    }
}

/* sum_u a[u] b[u], u < m. */
TP_INLINE float dot(const float *a, const float *b, int64_t m) {
    tp_v8 s0 = {0}, s1 = {0};
    int64_t u = 0;
    for (; u + 16 <= m; u += 16)
        s0 += TP_LD(a + u) * TP_LD(b + u), s1 += TP_LD(a + u + 8) * TP_LD(b + u + 8);
    for (; u + 8 <= m; u += 8) s0 += TP_LD(a + u) * TP_LD(b + u);
    s0 += s1;
    float r = 0.0f;
    for (; u < m; u++) r += a[u] * b[u];
    for (int l = 0; l < 8; l++) r += s0[l];
    return r;
}

#ifndef TP_BLOCK
#define TP_BLOCK 64
#endif
#define TP_MIN_PER_CHUNK 64

/* A nonzero C[i, j, k] = c; pair: index of (i, k) in its path's pair list. */
typedef struct tp_nz {
    int i, j, k, pair;
    float c;
} tp_nz;

typedef struct tp_group {
    int p0, p1;                   /* paths [p0, p1) */
    int64_t off3, m3, d3, woff, K; /* K: columns of Z */
} tp_group;

/* Per call: groups, per-path column offset in its group's Z and the
 * nonzeros of C. */
typedef struct tp_plan {
    int npaths, ngroups;
    const eqr__tp_path *paths;
    tp_group *groups;
    int64_t *kofs;
    int64_t *tofs; /* per path: offset of its T block within its group's */
    tp_nz **nz;
    int *nnz;
    int **pairs;   /* per path: distinct (i, k) of its nonzeros, as i d3 + k */
    int *npair;
    int ne1;       /* distinct x1 blocks the paths read */
    int64_t *e1;   /* [ne1][3]: off1, m1, d1 */
    int64_t D1;
    /* per-chunk scratch sizes (floats) */
    int64_t zsz, ysz, tsz, accsz;
} tp_plan;

typedef struct tp_saved {
    int npaths;
    const eqr__tp_path *paths;
} tp_saved;

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static int plan_build(eqr_ctx *ctx, int npaths, const eqr__tp_path *p, int64_t D1, tp_plan *pl) {
    pl->npaths = npaths, pl->paths = p, pl->ngroups = 0, pl->D1 = D1;
    pl->groups = eqr__arena_alloc(ctx, sizeof(tp_group) * (size_t)(npaths + 1));
    pl->kofs = eqr__arena_alloc(ctx, sizeof(int64_t) * (size_t)(npaths + 1));
    pl->nz = eqr__arena_alloc(ctx, sizeof(tp_nz *) * (size_t)(npaths + 1));
    pl->nnz = eqr__arena_alloc(ctx, sizeof(int) * (size_t)(npaths + 1));
    pl->tofs = eqr__arena_alloc(ctx, sizeof(int64_t) * (size_t)(npaths + 1));
    pl->e1 = eqr__arena_alloc(ctx, 3 * sizeof(int64_t) * (size_t)(npaths + 1));
    pl->pairs = eqr__arena_alloc(ctx, sizeof(int *) * (size_t)(npaths + 1));
    pl->npair = eqr__arena_alloc(ctx, sizeof(int) * (size_t)(npaths + 1));
    if (!pl->groups || !pl->kofs || !pl->nz || !pl->nnz || !pl->tofs || !pl->e1 || !pl->pairs ||
        !pl->npair)
        return 0;
    pl->zsz = pl->ysz = pl->tsz = pl->accsz = 1;
    pl->ne1 = 0;
    int64_t gt = 0; /* T floats per sample of the current group */
    for (int q = 0; q < npaths; q++) {
        const eqr__tp_path *a = &p[q];
        const int64_t mm = a->m1 * a->m2;
        tp_group *g = pl->ngroups ? &pl->groups[pl->ngroups - 1] : NULL;
        if (!g || g->off3 != a->off3 || g->m3 != a->m3 || g->d3 != a->d3 ||
            g->woff + g->K * g->m3 != a->woff) {
            g = &pl->groups[pl->ngroups++];
            g->p0 = q, g->off3 = a->off3, g->m3 = a->m3, g->d3 = a->d3, g->woff = a->woff;
            g->K = 0;
            gt = 0;
        }
        pl->kofs[q] = g->K;
        pl->tofs[q] = gt;
        g->K += mm;
        gt += (int64_t)a->d1 * a->d3 * a->m2;
        g->p1 = q + 1;
        pl->zsz = max64(pl->zsz, TP_BLOCK * g->d3 * g->K);
        pl->ysz = max64(pl->ysz, TP_BLOCK * g->d3 * g->m3);
        pl->tsz = max64(pl->tsz, TP_BLOCK * gt);
        int seen = 0;
        for (int e = 0; e < pl->ne1; e++) seen |= pl->e1[3 * e] == a->off1;
        if (!seen) {
            pl->e1[3 * pl->ne1] = a->off1, pl->e1[3 * pl->ne1 + 1] = a->m1;
            pl->e1[3 * pl->ne1 + 2] = a->d1;
            pl->ne1++;
        }
        pl->accsz = max64(pl->accsz, (int64_t)a->d1 * a->d3 * a->m2);
        const int64_t nc = (int64_t)a->d1 * a->d2 * a->d3;
        int cnt = 0;
        for (int64_t c = 0; c < nc; c++) cnt += a->C[c] != 0.0f;
        pl->nnz[q] = cnt;
        pl->nz[q] = eqr__arena_alloc(ctx, sizeof(tp_nz) * (size_t)(cnt + 1));
        pl->pairs[q] = eqr__arena_alloc(ctx, sizeof(int) * (size_t)(a->d1 * a->d3 + 1));
        if (!pl->nz[q] || !pl->pairs[q]) return 0;
        cnt = 0;
        pl->npair[q] = 0;
        for (int i = 0; i < a->d1; i++)
            for (int k = 0; k < a->d3; k++) {
                int pair = -1;
                for (int j = 0; j < a->d2; j++) {
                    const float c = a->C[((int64_t)i * a->d2 + j) * a->d3 + k];
                    if (c == 0.0f) continue;
                    if (pair < 0) {
                        pair = pl->npair[q]++;
                        pl->pairs[q][pair] = i * a->d3 + k;
                    }
                    pl->nz[q][cnt++] = (tp_nz){i, j, k, pair, c};
                }
            }
    }
    return 1;
}

typedef struct tp_job {
    const tp_plan *pl;
    const float *x1, *x2, *w;
    int64_t N, D1, D2, D3, ws, nw;
    int chunks;
    float *out;                 /* forward */
    const float *gout;          /* backward */
    float *g1, *g2, *gw, *wacc; /* wacc: chunks - 1 accumulators [nw] */
    int zero1, zero2;           /* g1 / g2 new: each block zeroes its rows first */
    float *scratch;
    int64_t per_chunk; /* scratch floats per chunk */
} tp_job;

/* One chunk's scratch: Z / gZ and Y / gY of a group, T of the group's
 * paths, the block's x1 (and gx1) with each entry of d1 > 1 transposed to
 * [i][u] (entries of d1 = 1 are read and written in place). */
typedef struct tp_buf {
    float *z, *y, *t, *x1t, *g1t, *acc;
    int64_t n0, n1; /* the chunk's samples [n0, n1) */
} tp_buf;

/* each buffer rounded to 16 floats keeps them 64-byte aligned */
static int64_t up16(int64_t n) { return (n + 15) & ~(int64_t)15; }

static int64_t per_chunk_floats(const tp_plan *pl) {
    return up16(pl->zsz) + up16(pl->ysz) + up16(pl->tsz) + 2 * up16(TP_BLOCK * pl->D1) +
           up16(pl->accsz);
}

/* Chunk c's scratch buffers and its range of samples. */
static tp_buf chunk_buf(const tp_job *j, int c) {
    const tp_plan *pl = j->pl;
    float *s = j->scratch + (int64_t)c * j->per_chunk;
    tp_buf b;
    b.z = s, s += up16(pl->zsz);
    b.y = s, s += up16(pl->ysz);
    b.t = s, s += up16(pl->tsz);
    b.x1t = s, s += up16(TP_BLOCK * pl->D1);
    b.g1t = s, s += up16(TP_BLOCK * pl->D1);
    b.acc = s;
    b.n0 = j->N * c / j->chunks;
    b.n1 = j->N * (c + 1) / j->chunks;
    return b;
}

/* [d][m] <-> [m][d] copies, u < m outer and i < d inner: with d a constant
 * the inner loop unrolls and the u loop vectorises (interleaved loads or
 * stores of d floats); the i-outer order stayed scalar strided accesses. */
TP_INLINE void tr_copy(float *restrict dst, const float *restrict src, int64_t m, int64_t d,
                       int add, int to_dm) { /* to_dm: dst[i m + u] (+)= src[u d + i]; else back */
    const int64_t di = to_dm ? m : 1, du = to_dm ? 1 : d, si = to_dm ? 1 : m, su = to_dm ? d : 1;
    for (int64_t u = 0; u < m; u++)
        for (int64_t i = 0; i < d; i++) {
            if (add) dst[i * di + u * du] += src[i * si + u * su];
            else dst[i * di + u * du] = src[i * si + u * su];
        }
}
/* [d][m] from [m][d] (to_dm, x1 entry to x1t) or back, for d = 3, 5, 7, other. */
TP_INLINE void tr_small(float *dst, const float *src, int64_t m, int64_t d, int add, int to_dm) {
#define TP_TR(D)                                                                                  \
    do {                                                                                          \
        if (to_dm) tr_copy(dst, src, m, D, add, 1);                                               \
        else tr_copy(dst, src, m, D, add, 0);                                                     \
    } while (0)
    switch (d) {
    case 3: TP_TR(3); break;
    case 5: TP_TR(5); break;
    case 7: TP_TR(7); break;
    default: TP_TR(d); break;
    }
#undef TP_TR
}

/* x1t[n D1 + off1 + i m1 + u] = x1[(n0 + n) D1 + off1 + u d1 + i] for the
 * entries of d1 > 1 the paths read (vectorised loops over u want them so). */
TP_INLINE void block_x1t(const tp_job *j, int64_t n0, int64_t nb, float *x1t) {
    const tp_plan *pl = j->pl;
    for (int e = 0; e < pl->ne1; e++) {
        const int64_t off = pl->e1[3 * e], m1 = pl->e1[3 * e + 1], d1 = pl->e1[3 * e + 2];
        if (d1 == 1) continue;
        for (int64_t n = 0; n < nb; n++)
            tr_small(x1t + n * j->D1 + off, j->x1 + (n0 + n) * j->D1 + off, m1, d1, 0, 1);
    }
}

/* x1 of sample n0 + n, path p, as [d1][m1]. */
static inline const float *path_x1(const tp_job *j, const tp_buf *b, const eqr__tp_path *p,
                                   int64_t n0, int64_t n) {
    return p->d1 == 1 ? j->x1 + (n0 + n) * j->D1 + p->off1 : b->x1t + n * j->D1 + p->off1;
}

/* T of every path of group g for the block: path q's T of sample n at
 * t + tofs[q] nb + n (d1 d3 m2), T[(i d3 + k) m2 + v] = sum_j C_ijk x2[v, j]. */
TP_INLINE void group_t(const tp_job *j, const tp_group *g, int64_t n0, int64_t nb, float *t) {
    const tp_plan *pl = j->pl;
    for (int q = g->p0; q < g->p1; q++) {
        const eqr__tp_path *p = &pl->paths[q];
        const int64_t m2 = p->m2, d2 = p->d2, d3 = p->d3, ts = (int64_t)p->d1 * d3 * m2;
        const tp_nz *nz = pl->nz[q];
        float *tq = t + pl->tofs[q] * nb;
        memset(tq, 0, (size_t)(nb * ts) * sizeof(float));
        for (int64_t n = 0; n < nb; n++) {
            const float *b = j->x2 + (n0 + n) * j->D2 + p->off2;
            float *tn = tq + n * ts;
            for (int e = 0; e < pl->nnz[q]; e++) {
                float *tr = tn + ((int64_t)nz[e].i * d3 + nz[e].k) * m2;
                for (int64_t v = 0; v < m2; v++) tr[v] += nz[e].c * b[v * d2 + nz[e].j];
            }
        }
    }
}

/* Z of group g for the block from T and x1 (z[(n d3 + k) K + kofs + u m2 + v]). */
TP_INLINE void group_z(const tp_job *j, const tp_group *g, int64_t n0, int64_t nb,
                       const tp_buf *b) {
    const tp_plan *pl = j->pl;
    const int64_t K = g->K, d3 = g->d3;
    for (int q = g->p0; q < g->p1; q++) {
        const eqr__tp_path *p = &pl->paths[q];
        const int64_t m1 = p->m1, m2 = p->m2, d1 = p->d1, ts = d1 * d3 * m2;
        for (int64_t n = 0; n < nb; n++) {
            const float *t = b->t + pl->tofs[q] * nb + n * ts;
            const float *at = path_x1(j, b, p, n0, n);
            float *z = b->z + n * d3 * K + pl->kofs[q];
            if (m2 == 1) {
                for (int64_t k = 0; k < d3; k++) lincomb(z + k * K, t + k, d3, d1, at, m1, m1, 0);
                continue;
            }
            for (int64_t k = 0; k < d3; k++) {
                float *restrict row = z + k * K;
                for (int64_t u = 0; u < m1 * m2; u++) row[u] = 0.0f;
                for (int64_t i = 0; i < d1; i++) {
                    const float *tv = t + (i * d3 + k) * m2;
                    const float *ai = at + i * m1;
                    for (int64_t u = 0; u < m1; u++)
                        for (int64_t v = 0; v < m2; v++) row[u * m2 + v] += ai[u] * tv[v];
                }
            }
        }
    }
}

/* o[w d3 + k] += y[k m3 + w] (forward) or y[k m3 + w] = o[w d3 + k]. */
TP_INLINE void out_block(float *o, float *y, int64_t m3, int64_t d3, int to_out) {
    if (to_out) tr_small(o, y, m3, d3, 1, 0);
    else tr_small(y, o, m3, d3, 0, 1);
}

TP_INLINE void forward_body(const void *arg, int c) {
    const tp_job *j = arg;
    const tp_plan *pl = j->pl;
    tp_buf b = chunk_buf(j, c);
    for (int64_t n0 = b.n0; n0 < b.n1; n0 += TP_BLOCK) {
        const int64_t nb = b.n1 - n0 < TP_BLOCK ? b.n1 - n0 : TP_BLOCK;
        block_x1t(j, n0, nb, b.x1t);
        /* the output is zeroed here, a block at a time, while it is in cache */
        memset(j->out + n0 * j->D3, 0, (size_t)(nb * j->D3) * sizeof(float));
        for (int gi = 0; gi < pl->ngroups; gi++) {
            const tp_group *g = &pl->groups[gi];
            const int64_t d3 = g->d3, m3 = g->m3, K = g->K;
            group_t(j, g, n0, nb, b.t);
            group_z(j, g, n0, nb, &b);
            /* d3 = 1: Y goes straight into the output block (rows D3 apart) */
            float *y = d3 == 1 ? j->out + n0 * j->D3 + g->off3 : b.y;
            const int64_t ldy = d3 == 1 ? j->D3 : m3, ys = d3 == 1 ? j->D3 : d3 * m3;
            const float beta = d3 == 1 ? 1.0f : 0.0f;
            if (!j->ws)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(nb * d3), (int)m3,
                            (int)K, 1.0f, b.z, (int)K, j->w + g->woff, (int)m3, beta, y,
                            (int)ldy);
            else
                for (int64_t n = 0; n < nb; n++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d3, (int)m3,
                                (int)K, 1.0f, b.z + n * d3 * K, (int)K,
                                j->w + (n0 + n) * j->ws + g->woff, (int)m3, beta, y + n * ys,
                                (int)ldy);
            if (d3 > 1)
                for (int64_t n = 0; n < nb; n++)
                    out_block(j->out + (n0 + n) * j->D3 + g->off3, b.y + n * d3 * m3, m3, d3, 1);
        }
    }
}

/* gx1 (g1t: [d1][m1]) and gx2 of one sample and path from gZ (gz at the
 * path's column), T and x1 (at: [d1][m1]). */
TP_INLINE void path_grad_x(const eqr__tp_path *p, const tp_nz *nz, int nnz, const int *pairs,
                           int npair, int64_t K,
                           const float *t, const float *at, const float *gz, float *g1t,
                           float *g2, float *acc) {
    const int64_t m1 = p->m1, m2 = p->m2, d1 = p->d1, d2 = p->d2, d3 = p->d3;
    if (g1t) /* g1t[i m1 + u] += sum_{k,v} T[i][k][v] gz[k K + u m2 + v] */
        for (int64_t i = 0; i < d1; i++) {
            float *restrict gi = g1t + i * m1;
            if (m2 == 1) {
                lincomb(gi, t + i * d3, 1, d3, gz, K, m1, 1);
                continue;
            }
            for (int64_t k = 0; k < d3; k++) {
                const float *tv = t + (i * d3 + k) * m2;
                const float *gk = gz + k * K;
                for (int64_t u = 0; u < m1; u++) {
                    float a = 0.0f;
                    for (int64_t v = 0; v < m2; v++) a += tv[v] * gk[u * m2 + v];
                    gi[u] += a;
                }
            }
        }
    if (!g2) return;
    /* g2[v d2 + j] += sum_{(i,j,k)} C_ijk P[(i,k)][v], P = sum_u x1[u, i] gz[k K + u m2 + v]:
     * one P per distinct (i, k), shared by the j of that pair */
    if (m2 == 1) {
        for (int e = 0; e < npair; e++)
            acc[e] = dot(at + (pairs[e] / d3) * m1, gz + (pairs[e] % d3) * K, m1);
        for (int e = 0; e < nnz; e++) g2[nz[e].j] += nz[e].c * acc[nz[e].pair];
        return;
    }
    for (int e = 0; e < npair; e++) {
        const float *ai = at + (pairs[e] / d3) * m1, *gk = gz + (pairs[e] % d3) * K;
        float *restrict pe = acc + (int64_t)e * m2;
        for (int64_t v = 0; v < m2; v++) pe[v] = 0.0f;
        for (int64_t u = 0; u < m1; u++)
            for (int64_t v = 0; v < m2; v++) pe[v] += ai[u] * gk[u * m2 + v];
    }
    for (int e = 0; e < nnz; e++)
        for (int64_t v = 0; v < m2; v++)
            g2[v * d2 + nz[e].j] += nz[e].c * acc[(int64_t)nz[e].pair * m2 + v];
}

TP_INLINE void backward_body(const void *arg, int c) {
    const tp_job *j = arg;
    const tp_plan *pl = j->pl;
    tp_buf b = chunk_buf(j, c);
    /* shared weights: chunk 0 adds into the gradient, the others into their own */
    float *gw = j->gw && !j->ws && c > 0 ? j->wacc + (int64_t)(c - 1) * j->nw : j->gw;
    for (int64_t n0 = b.n0; n0 < b.n1; n0 += TP_BLOCK) {
        const int64_t nb = b.n1 - n0 < TP_BLOCK ? b.n1 - n0 : TP_BLOCK;
        block_x1t(j, n0, nb, b.x1t);
        if (j->g1) memset(b.g1t, 0, (size_t)(nb * j->D1) * sizeof(float));
        if (j->zero1) memset(j->g1 + n0 * j->D1, 0, (size_t)(nb * j->D1) * sizeof(float));
        if (j->zero2) memset(j->g2 + n0 * j->D2, 0, (size_t)(nb * j->D2) * sizeof(float));
        for (int gi = 0; gi < pl->ngroups; gi++) {
            const tp_group *g = &pl->groups[gi];
            const int64_t d3 = g->d3, m3 = g->m3, K = g->K;
            /* gY[(n, k), w]: for d3 = 1 the output gradient block itself */
            const float *gy = d3 == 1 ? j->gout + n0 * j->D3 + g->off3 : b.y;
            const int64_t ldy = d3 == 1 ? j->D3 : m3, ys = d3 == 1 ? j->D3 : d3 * m3;
            if (d3 > 1)
                for (int64_t n = 0; n < nb; n++)
                    out_block((float *)j->gout + (n0 + n) * j->D3 + g->off3, b.y + n * d3 * m3,
                              m3, d3, 0);
            group_t(j, g, n0, nb, b.t);
            if (gw) {
                group_z(j, g, n0, nb, &b);
                if (!j->ws)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)m3,
                                (int)(nb * d3), 1.0f, b.z, (int)K, gy, (int)ldy, 1.0f,
                                gw + g->woff, (int)m3);
                else
                    for (int64_t n = 0; n < nb; n++)
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)m3,
                                    (int)d3, 1.0f, b.z + n * d3 * K, (int)K, gy + n * ys,
                                    (int)ldy, 1.0f, gw + (n0 + n) * j->ws + g->woff, (int)m3);
            }
            if (!j->g1 && !j->g2) continue;
            /* gZ = gY W^T overwrites Z */
            if (!j->ws)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(nb * d3), (int)K,
                            (int)m3, 1.0f, gy, (int)ldy, j->w + g->woff, (int)m3, 0.0f, b.z,
                            (int)K);
            else
                for (int64_t n = 0; n < nb; n++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)d3, (int)K,
                                (int)m3, 1.0f, gy + n * ys, (int)ldy,
                                j->w + (n0 + n) * j->ws + g->woff, (int)m3, 0.0f,
                                b.z + n * d3 * K, (int)K);
            for (int q = g->p0; q < g->p1; q++) {
                const eqr__tp_path *p = &pl->paths[q];
                const int64_t ts = (int64_t)p->d1 * d3 * p->m2;
                for (int64_t n = 0; n < nb; n++) {
                    float *g1t = NULL;
                    if (j->g1)
                        g1t = p->d1 == 1 ? j->g1 + (n0 + n) * j->D1 + p->off1
                                         : b.g1t + n * j->D1 + p->off1;
                    path_grad_x(p, pl->nz[q], pl->nnz[q], pl->pairs[q], pl->npair[q], K, b.t + pl->tofs[q] * nb + n * ts,
                                path_x1(j, &b, p, n0, n), b.z + n * d3 * K + pl->kofs[q], g1t,
                                j->g2 ? j->g2 + (n0 + n) * j->D2 + p->off2 : NULL, b.acc);
                }
            }
        }
        if (j->g1) /* g1t back to the [u][i] layout */
            for (int e = 0; e < pl->ne1; e++) {
                const int64_t off = pl->e1[3 * e], m1 = pl->e1[3 * e + 1], d1 = pl->e1[3 * e + 2];
                if (d1 == 1) continue;
                for (int64_t n = 0; n < nb; n++)
                    tr_small(j->g1 + (n0 + n) * j->D1 + off, b.g1t + n * j->D1 + off, m1, d1, 1,
                             0);
            }
    }
}

static void forward_base(const void *arg, int c) { forward_body(arg, c); }
static void backward_base(const void *arg, int c) { backward_body(arg, c); }
#ifdef TP_AVX2
__attribute__((target("avx2,fma"))) static void forward_avx2(const void *arg, int c) {
    forward_body(arg, c);
}
__attribute__((target("avx2,fma"))) static void backward_avx2(const void *arg, int c) {
    backward_body(arg, c);
}
#endif

/* The chunk task for this CPU. */
static eqr__task_fn tp_task(int backward) {
#ifdef TP_AVX2
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return backward ? backward_avx2 : forward_avx2;
#endif
    return backward ? backward_base : forward_base;
}

/* Chunks (= threads used) for N samples. */
static int tp_chunks(const eqr_ctx *ctx, int64_t N) {
    int t = eqr_ctx_num_threads(ctx);
#ifndef _OPENMP
    t = 1;
#endif
    while (t > 1 && N < (int64_t)t * TP_MIN_PER_CHUNK) t--;
    return t > 1 ? t : 1;
}

static int job_scratch(eqr_ctx *ctx, tp_job *j) {
    j->per_chunk = per_chunk_floats(j->pl);
    j->scratch = eqr__arena_alloc(ctx, (size_t)(j->per_chunk * j->chunks) * sizeof(float));
    return j->scratch != NULL;
}

static void tp_backward(eqr_ctx *ctx, eqr_node *nd) {
    eqr_tensor *x1 = nd->in[0], *x2 = nd->in[1], *w = nd->in[2];
    const tp_saved *sv = nd->saved;
    const int64_t N = x1->shape[0];
    /* new input gradients are zeroed by the kernel, block by block (x1 and x2
     * the same tensor: the second sees the first's buffer and adds) */
    int acc1 = 1, acc2 = 1;
    float *g1 = eqr__needs_grad(x1) ? eqr__grad_all(ctx, x1, &acc1) : NULL;
    float *g2 = eqr__needs_grad(x2) ? eqr__grad_all(ctx, x2, &acc2) : NULL;
    float *gw = eqr__needs_grad(w) ? eqr__grad(ctx, w) : NULL;
    if (ctx->status != EQR_OK || N == 0 || (!g1 && !g2 && !gw)) return;
    const eqr__arena_mark mark = eqr__arena_save(ctx);
    tp_plan pl;
    if (!plan_build(ctx, sv->npaths, sv->paths, x1->shape[1], &pl)) return;
    tp_job j = {&pl, x1->data, x2->data, w->data, N, x1->shape[1], x2->shape[1],
                nd->out->shape[1], w->ndim == 2 ? w->shape[1] : 0, w->numel, tp_chunks(ctx, N),
                NULL, nd->out->grad, g1, g2, gw, NULL, !acc1, !acc2, NULL, 0};
    if (!job_scratch(ctx, &j)) return;
    if (gw && !j.ws && j.chunks > 1 &&
        !(j.wacc = eqr__arena_calloc(ctx, (size_t)(j.nw * (j.chunks - 1)) * sizeof(float))))
        return;
    eqr__blas_single(j.chunks);
    eqr__parallel(j.chunks, tp_task(1), &j);
    for (int c = 1; c < j.chunks && j.wacc; c++) {
        const float *a = j.wacc + (int64_t)(c - 1) * j.nw;
        for (int64_t q = 0; q < j.nw; q++) gw[q] += a[q];
    }
    eqr__scratch_release(ctx, mark);
}

eqr_tensor *eqr__tp_forward(eqr_ctx *ctx, eqr_tensor *x1, eqr_tensor *x2, eqr_tensor *w,
                            int npaths, const eqr__tp_path *paths, int64_t D3) {
    const int64_t N = x1->shape[0];
    const int64_t shape[2] = {N, D3};
    eqr_tensor *out = eqr__tensor_empty(ctx, 2, shape);
    if (!out) return NULL;
    if (npaths == 0) memset(out->data, 0, (size_t)out->numel * sizeof(float));
    if (N > 0 && npaths > 0) {
        const eqr__arena_mark mark = eqr__arena_save(ctx);
        tp_plan pl;
        if (!plan_build(ctx, npaths, paths, x1->shape[1], &pl)) return NULL;
        tp_job j = {&pl, x1->data, x2->data, w->data, N, x1->shape[1], x2->shape[1], D3,
                    w->ndim == 2 ? w->shape[1] : 0, w->numel, tp_chunks(ctx, N), out->data,
                    NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, 0};
        if (!job_scratch(ctx, &j)) return NULL;
        eqr__blas_single(j.chunks);
        eqr__parallel(j.chunks, tp_task(0), &j);
        eqr__scratch_release(ctx, mark);
    }
    eqr_tensor *in[3] = {x1, x2, w};
    eqr_node *n = eqr__record(ctx, out, tp_backward, 3, in);
    if (n) {
        tp_saved *sv = eqr__arena_alloc(ctx, sizeof *sv);
        if (!sv) return NULL;
        sv->npaths = npaths;
        sv->paths = paths;
        n->saved = sv;
    }
    return out;
}
