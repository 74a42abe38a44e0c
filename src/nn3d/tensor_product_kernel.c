/* Path contraction of the weighted tensor products (tp_internal.h).
 * Per path, with X2 the x2 block as [N m2, d2] and Cr[j, i d3 + k] = C[i,j,k]:
 *   T = X2 Cr                        [N m2, d1 d3]   (GEMM)
 *   Z[n k, u m2 + v] = sum_i x1[n,u,i] T[n v, i d3 + k]   (pair products)
 *   Y = Z W_p                        [N d3, m3]      (GEMM)
 * and the output block takes Y transposed per sample. Backward runs the
 * same steps transposed: gW += Z^T gY, gZ = gY W^T, then gx1 and gT from gZ,
 * and gX2 = gT Cr^T. Z and T are recomputed in backward, not stored. */
#include "nn3d/tp_internal.h"

#include <cblas.h>

typedef struct tp_saved {
    int npaths;
    const eqr__tp_path *paths;
} tp_saved;

/* Per-path scratch: contiguous X2 block, Cr, T, Z, Y. */
typedef struct tp_scratch {
    float *x2, *cr, *t, *z, *y;
} tp_scratch;

static int scratch_alloc(eqr_ctx *ctx, int64_t N, int npaths, const eqr__tp_path *p,
                         tp_scratch *s) {
    int64_t bx2 = 1, bcr = 1, bt = 1, bz = 1, by = 1;
    for (int q = 0; q < npaths; q++) {
        const int64_t d1 = p[q].d1, d2 = p[q].d2, d3 = p[q].d3;
        bx2 = bx2 > N * p[q].m2 * d2 ? bx2 : N * p[q].m2 * d2;
        bcr = bcr > d1 * d2 * d3 ? bcr : d1 * d2 * d3;
        bt = bt > N * p[q].m2 * d1 * d3 ? bt : N * p[q].m2 * d1 * d3;
        bz = bz > N * d3 * p[q].m1 * p[q].m2 ? bz : N * d3 * p[q].m1 * p[q].m2;
        by = by > N * d3 * p[q].m3 ? by : N * d3 * p[q].m3;
    }
    s->x2 = eqr__arena_alloc(ctx, (size_t)bx2 * sizeof(float));
    s->cr = eqr__arena_alloc(ctx, (size_t)bcr * sizeof(float));
    s->t = eqr__arena_alloc(ctx, (size_t)bt * sizeof(float));
    s->z = eqr__arena_alloc(ctx, (size_t)bz * sizeof(float));
    s->y = eqr__arena_alloc(ctx, (size_t)by * sizeof(float));
    return s->x2 && s->cr && s->t && s->z && s->y;
}

/* T and Z of one path into the scratch. */
static void path_tz(const eqr__tp_path *p, int64_t N, const float *x1, int64_t D1,
                    const float *x2, int64_t D2, tp_scratch *s) {
    const int64_t m1 = p->m1, m2 = p->m2, d1 = p->d1, d2 = p->d2, d3 = p->d3;
    for (int64_t n = 0; n < N; n++)
        memcpy(s->x2 + n * m2 * d2, x2 + n * D2 + p->off2, (size_t)(m2 * d2) * sizeof(float));
    for (int64_t i = 0; i < d1; i++)
        for (int64_t j = 0; j < d2; j++)
            for (int64_t k = 0; k < d3; k++)
                s->cr[j * d1 * d3 + i * d3 + k] = p->C[(i * d2 + j) * d3 + k];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(N * m2), (int)(d1 * d3),
                (int)d2, 1.0f, s->x2, (int)d2, s->cr, (int)(d1 * d3), 0.0f, s->t, (int)(d1 * d3));
    const int64_t mm = m1 * m2;
    for (int64_t n = 0; n < N; n++) {
        const float *a = x1 + n * D1 + p->off1;
        const float *t = s->t + n * m2 * d1 * d3;
        float *z = s->z + n * d3 * mm;
        for (int64_t k = 0; k < d3; k++)
            for (int64_t u = 0; u < m1; u++)
                for (int64_t v = 0; v < m2; v++) {
                    float acc = 0.0f;
                    for (int64_t i = 0; i < d1; i++) acc += a[u * d1 + i] * t[(v * d1 + i) * d3 + k];
                    z[k * mm + u * m2 + v] = acc;
                }
    }
}

/* Y = Z W (forward), gW += Z^T gY, gZ = gY W^T for one path; the weights are
 * one [mm, m3] block shared by all samples (w 1-D) or one per sample (w
 * [N, nw]: a small GEMM per sample). */
static void w_apply(int64_t N, int64_t d3, int64_t mm, int64_t m3, const float *w, int64_t wstride,
                    const float *z, float *y) {
    if (!wstride) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(N * d3), (int)m3, (int)mm,
                    1.0f, z, (int)mm, w, (int)m3, 0.0f, y, (int)m3);
        return;
    }
    for (int64_t n = 0; n < N; n++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d3, (int)m3, (int)mm, 1.0f,
                    z + n * d3 * mm, (int)mm, w + n * wstride, (int)m3, 0.0f, y + n * d3 * m3,
                    (int)m3);
}

static void w_grad(int64_t N, int64_t d3, int64_t mm, int64_t m3, float *gw, int64_t wstride,
                   const float *z, const float *gy) {
    if (!wstride) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)mm, (int)m3, (int)(N * d3),
                    1.0f, z, (int)mm, gy, (int)m3, 1.0f, gw, (int)m3);
        return;
    }
    for (int64_t n = 0; n < N; n++)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)mm, (int)m3, (int)d3, 1.0f,
                    z + n * d3 * mm, (int)mm, gy + n * d3 * m3, (int)m3, 1.0f, gw + n * wstride,
                    (int)m3);
}

static void z_grad(int64_t N, int64_t d3, int64_t mm, int64_t m3, const float *w, int64_t wstride,
                   const float *gy, float *gz) {
    if (!wstride) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(N * d3), (int)mm, (int)m3,
                    1.0f, gy, (int)m3, w, (int)m3, 0.0f, gz, (int)mm);
        return;
    }
    for (int64_t n = 0; n < N; n++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)d3, (int)mm, (int)m3, 1.0f,
                    gy + n * d3 * m3, (int)m3, w + n * wstride, (int)m3, 0.0f, gz + n * d3 * mm,
                    (int)mm);
}

static void tp_backward(eqr_ctx *ctx, eqr_node *nd) {
    eqr_tensor *x1 = nd->in[0], *x2 = nd->in[1], *w = nd->in[2];
    const tp_saved *sv = nd->saved;
    const int64_t N = x1->shape[0], D1 = x1->shape[1], D2 = x2->shape[1], D3 = nd->out->shape[1];
    float *g1 = eqr__needs_grad(x1) ? eqr__grad(ctx, x1) : NULL;
    float *g2 = eqr__needs_grad(x2) ? eqr__grad(ctx, x2) : NULL;
    float *gw = eqr__needs_grad(w) ? eqr__grad(ctx, w) : NULL;
    if (ctx->status != EQR_OK) return;
    tp_scratch s;
    if (!scratch_alloc(ctx, N, sv->npaths, sv->paths, &s)) return;
    const float *gout = nd->out->grad;
    const int64_t ws = w->ndim == 2 ? w->shape[1] : 0;
    for (int q = 0; q < sv->npaths; q++) {
        const eqr__tp_path *p = &sv->paths[q];
        const int64_t m1 = p->m1, m2 = p->m2, m3 = p->m3, d1 = p->d1, d2 = p->d2, d3 = p->d3;
        const int64_t mm = m1 * m2;
        path_tz(p, N, x1->data, D1, x2->data, D2, &s);
        /* gY[(n,k), w] from the output block */
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < d3; k++)
                for (int64_t c = 0; c < m3; c++)
                    s.y[(n * d3 + k) * m3 + c] = gout[n * D3 + p->off3 + c * d3 + k];
        if (gw) w_grad(N, d3, mm, m3, gw + p->woff, ws, s.z, s.y);
        if (!g1 && !g2) continue;
        /* gZ = gY W^T overwrites Z */
        z_grad(N, d3, mm, m3, w->data + p->woff, ws, s.y, s.z);
        for (int64_t n = 0; n < N; n++) {
            const float *a = x1->data + n * D1 + p->off1;
            float *t = s.t + n * m2 * d1 * d3;
            const float *gz = s.z + n * d3 * mm;
            if (g1) {
                float *ga = g1 + n * D1 + p->off1;
                /* k outermost: gz is read contiguously */
                for (int64_t k = 0; k < d3; k++)
                    for (int64_t u = 0; u < m1; u++)
                        for (int64_t v = 0; v < m2; v++) {
                            const float g = gz[k * mm + u * m2 + v];
                            for (int64_t i = 0; i < d1; i++)
                                ga[u * d1 + i] += g * t[(v * d1 + i) * d3 + k];
                        }
            }
            if (g2) /* gT overwrites T (its forward values are no longer needed) */
                for (int64_t v = 0; v < m2; v++)
                    for (int64_t i = 0; i < d1; i++)
                        for (int64_t k = 0; k < d3; k++) {
                            float acc = 0.0f;
                            for (int64_t u = 0; u < m1; u++) acc += gz[k * mm + u * m2 + v] * a[u * d1 + i];
                            t[(v * d1 + i) * d3 + k] = acc;
                        }
        }
        if (g2) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(N * m2), (int)d2,
                        (int)(d1 * d3), 1.0f, s.t, (int)(d1 * d3), s.cr, (int)(d1 * d3), 0.0f,
                        s.x2, (int)d2);
            for (int64_t n = 0; n < N; n++) {
                float *gb = g2 + n * D2 + p->off2;
                const float *src = s.x2 + n * m2 * d2;
                for (int64_t c = 0; c < m2 * d2; c++) gb[c] += src[c];
            }
        }
    }
}

eqr_tensor *eqr__tp_forward(eqr_ctx *ctx, eqr_tensor *x1, eqr_tensor *x2, eqr_tensor *w,
                            int npaths, const eqr__tp_path *paths, int64_t D3) {
    const int64_t N = x1->shape[0], D1 = x1->shape[1], D2 = x2->shape[1];
    const int64_t shape[2] = {N, D3}, ws = w->ndim == 2 ? w->shape[1] : 0;
    eqr_tensor *out = eqr_tensor_zeros(ctx, 2, shape);
    if (!out) return NULL;
    tp_scratch s;
    if (N > 0 && !scratch_alloc(ctx, N, npaths, paths, &s)) return NULL;
    for (int q = 0; q < npaths && N > 0; q++) {
        const eqr__tp_path *p = &paths[q];
        const int64_t mm = p->m1 * p->m2, d3 = p->d3, m3 = p->m3;
        path_tz(p, N, x1->data, D1, x2->data, D2, &s);
        w_apply(N, d3, mm, m3, w->data + p->woff, ws, s.z, s.y);
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < d3; k++)
                for (int64_t c = 0; c < m3; c++)
                    out->data[n * D3 + p->off3 + c * d3 + k] += s.y[(n * d3 + k) * m3 + c];
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
