/* Conv kernels: im2col / col2im, the row-shift GEMMs and the weight
 * regrouping (conv_kernels.h; the design is in ../conv.c). */
#include "ops/kernels/conv_kernels.h"

#include <cblas.h>
#include <limits.h>

#include <cblas.h>
#include <limits.h>

/* eqr__conv_im2col / col2im are copy and add loops, store-bound, and the library is
 * built for the baseline x86-64 (SSE2, 16-byte moves). On x86-64 with GCC or
 * Clang they are also compiled for AVX2 and AVX-512 and the variant for the
 * running CPU is picked at load time (ifunc). EQR_NO_TARGET_CLONES turns this
 * off: clang < 16 names the ifunc "f.ifunc", which calls from other files
 * (declared without the attribute) do not find (fuzz/build.sh sets it). */
#if !defined(EQR_NO_TARGET_CLONES) && defined(__x86_64__) && defined(__ELF__) && \
    defined(__has_attribute)
#if __has_attribute(target_clones)
#define EQR_COPY_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef EQR_COPY_CLONES
#define EQR_COPY_CLONES
#endif



/* Outputs o in [lo, hi) read input o*s + k*d - p inside [0, size). */
static void tap_interval(int size, int out, int s, int p, int d, int k, int *lo, int *hi) {
    int64_t off = (int64_t)k * d - p;
    int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t h = size - 1 - off < 0 ? 0 : (size - 1 - off) / s + 1;
    if (h > out) h = out;
    if (l > h) l = h;
    *lo = (int)l;
    *hi = (int)h;
}

int eqr__conv_runs_init(eqr_ctx *ctx, const conv_dims *d, conv_runs *r) {
    int *buf = eqr__arena_alloc(ctx, (size_t)(2 * d->kh + 2 * d->kw) * sizeof(int));
    if (!buf) return 0;
    r->hlo = buf;
    r->hhi = buf + d->kh;
    r->wlo = buf + 2 * d->kh;
    r->whi = buf + 2 * d->kh + d->kw;
    for (int i = 0; i < d->kh; i++)
        tap_interval(d->H, d->OH, d->sh, d->ph, d->dh, i, &r->hlo[i], &r->hhi[i]);
    for (int j = 0; j < d->kw; j++)
        tap_interval(d->W, d->OW, d->sw, d->pw, d->dw, j, &r->wlo[j], &r->whi[j]);
    return 1;
}

/* Rows [oh0, oh1) of col, i.e. col [CK, (oh1-oh0)*OW], from one image
 * x [C, H, W] (any stride and dilation). */
EQR_COPY_CLONES
void eqr__conv_im2col(const conv_dims *d, const conv_runs *r, const float *x, float *col, int oh0,
            int oh1) {
    const int OW = d->OW, W = d->W, sw = d->sw;
    const size_t cols = (size_t)(oh1 - oh0) * OW;
    float *dst = col;
    for (int c = 0; c < d->C; c++) {
        const float *xc = x + (size_t)c * d->H * W;
        for (int i = 0; i < d->kh; i++) {
            const int h0 = r->hlo[i] > oh0 ? r->hlo[i] : oh0;
            const int h1 = r->hhi[i] < oh1 ? r->hhi[i] : oh1;
            const int ihoff = i * d->dh - d->ph;
            for (int j = 0; j < d->kw; j++, dst += cols) {
                const int w0 = r->wlo[j], w1 = r->whi[j], len = w1 - w0;
                if (len <= 0 || h0 >= h1) {
                    memset(dst, 0, cols * sizeof(float));
                    continue;
                }
                const int iw0 = w0 * sw + j * d->dw - d->pw; /* >= 0 by construction */
                memset(dst, 0, (size_t)(h0 - oh0) * OW * sizeof(float));
                for (int oh = h0; oh < h1; oh++) {
                    float *drow = dst + (size_t)(oh - oh0) * OW;
                    const float *src = xc + (size_t)(oh * d->sh + ihoff) * W + iw0;
                    memset(drow, 0, (size_t)w0 * sizeof(float));
                    if (sw == 1) {
                        memcpy(drow + w0, src, (size_t)len * sizeof(float));
                    } else {
                        float *o = drow + w0;
                        for (int q = 0; q < len; q++) o[q] = src[(size_t)q * sw];
                    }
                    memset(drow + w1, 0, (size_t)(OW - w1) * sizeof(float));
                }
                memset(dst + (size_t)(h1 - oh0) * OW, 0, (size_t)(oh1 - h1) * OW * sizeof(float));
            }
        }
    }
}

/* Copy n floats with fixed-size vector moves (memcpy of a constant size is
 * inlined; the last chunk overlaps the previous one). A plain loop would be
 * turned back into a libc memcpy call per row, and the rows here are short
 * (7..28 floats in the benchmark model), so the call dominated eqr__conv_im2col. */
static inline void copy_row(float *restrict d, const float *restrict s, int n) {
    if (n >= 8) {
        int q = 0;
        for (; q + 8 <= n; q += 8) memcpy(d + q, s + q, 8 * sizeof(float));
        if (q < n) memcpy(d + n - 8, s + n - 8, 8 * sizeof(float));
    } else if (n >= 4) {
        memcpy(d, s, 4 * sizeof(float));
        memcpy(d + n - 4, s + n - 4, 4 * sizeof(float));
    } else {
        for (int q = 0; q < n; q++) d[q] = s[q];
    }
}

/* Horizontal stride 1: the image is first copied into a zero-bordered
 * buffer pad [C, H + 2 ph, W + 2 pw] whose borders were zeroed once per
 * call, so every col row is OH plain copies of OW floats: no padding logic
 * and no bounds checks. */
EQR_COPY_CLONES
void eqr__conv_pad_image(const conv_dims *d, const float *x, float *pad) {
    const int Hp = d->H + 2 * d->ph, Wp = d->W + 2 * d->pw;
    for (int c = 0; c < d->C; c++) {
        float *pc = pad + (size_t)c * Hp * Wp + (size_t)d->ph * Wp + d->pw;
        const float *xc = x + (size_t)c * d->H * d->W;
        for (int h = 0; h < d->H; h++) copy_row(pc + (size_t)h * Wp, xc + (size_t)h * d->W, d->W);
    }
}

EQR_COPY_CLONES
static void im2col_padded(const conv_dims *d, const float *pad, float *col, int oh0, int oh1) {
    const int Hp = d->H + 2 * d->ph, Wp = d->W + 2 * d->pw, OW = d->OW;
    const size_t cols = (size_t)(oh1 - oh0) * OW;
    float *dst = col;
    for (int c = 0; c < d->C; c++) {
        const float *pc = pad + (size_t)c * Hp * Wp;
        for (int i = 0; i < d->kh; i++)
            for (int j = 0; j < d->kw; j++, dst += cols) {
                const float *src = pc + (size_t)i * d->dh * Wp + (size_t)j * d->dw;
                for (int oh = oh0; oh < oh1; oh++)
                    copy_row(dst + (size_t)(oh - oh0) * OW, src + (size_t)oh * d->sh * Wp, OW);
            }
    }
}

/* Row-shift layout (stride 1 both ways, kh > 1). Instead of the full col
 * [C*kh*kw, P], only the kw horizontal shifts are materialised, for every
 * padded row the tile needs: rc [C*kw, NR*OW] with row (c, j) holding padded
 * rows oh0 .. oh0+NR-1 of channel c from column j*dw on (NR = tile rows +
 * (kh-1)*dh). With rows of exactly OW floats, vertical tap i is then the
 * column offset i*dh*OW into rc, so the conv is a sum of kh GEMMs of K =
 * C*kw against W_i = w[:, :, i, :] (no thrown-away columns):
 *   Y_tile = sum_i W_i rc[:, i*dh*OW ...],  dW_i += dY_tile rc[:, i*dh*OW ...]^T,
 *   drc[:, i*dh*OW ...] += W_i^T dY_tile, then drc is added back row-wise.
 * Building / scattering rc moves ~kh times fewer floats than eqr__conv_im2col /
 * col2im, and OpenBLAS splits K = C*kh*kw into blocks of a few hundred
 * anyway, so the GEMMs run at the same rate. */
EQR_COPY_CLONES
static void rowcol_padded(const conv_dims *d, const float *pad, float *rc, int oh0, int oh1) {
    const int Hp = d->H + 2 * d->ph, Wp = d->W + 2 * d->pw, OW = d->OW;
    const int nr = oh1 - oh0 + (d->kh - 1) * d->dh;
    const size_t cols = (size_t)nr * OW;
    float *dst = rc;
    for (int c = 0; c < d->C; c++) {
        const float *pc = pad + (size_t)c * Hp * Wp + (size_t)oh0 * Wp;
        for (int j = 0; j < d->kw; j++, dst += cols) {
            const float *src = pc + (size_t)j * d->dw;
            for (int r = 0; r < nr; r++) copy_row(dst + (size_t)r * OW, src + (size_t)r * Wp, OW);
        }
    }
}

/* gx [C, H, W] += the rc-layout gradient drc of tile [oh0, oh1) (padded
 * positions dropped). */
EQR_COPY_CLONES
static void rowcol_add(const conv_dims *d, const conv_runs *r, const float *drc, float *gx,
                       int oh0, int oh1) {
    const int OW = d->OW, W = d->W;
    const int nr = oh1 - oh0 + (d->kh - 1) * d->dh;
    const size_t cols = (size_t)nr * OW;
    /* padded rows oh0 + q with an image row: q in [q0, q1) */
    const int q0 = d->ph - oh0 > 0 ? d->ph - oh0 : 0;
    const int q1 = d->ph + d->H - oh0 < nr ? d->ph + d->H - oh0 : nr;
    const float *src = drc;
    for (int c = 0; c < d->C; c++) {
        float *gc = gx + (size_t)c * d->H * W;
        for (int j = 0; j < d->kw; j++, src += cols) {
            const int w0 = r->wlo[j], len = r->whi[j] - w0;
            if (len <= 0) continue;
            const int iw0 = w0 + j * d->dw - d->pw;
            for (int q = q0; q < q1; q++) {
                const float *srow = src + (size_t)q * OW + w0;
                float *g = gc + (size_t)(oh0 + q - d->ph) * W + iw0;
                for (int e = 0; e < len; e++) g[e] += srow[e];
            }
        }
    }
}

/* wp [kh][rows][C*kw] (rows >= O: the stacked conv keeps w and wr in one
 * slab per tap) = w [O][C][kh][kw] regrouped per vertical tap (add = 0), or
 * w += wp regrouped back (add = 1, for dW). Once per conv call, but at batch
 * 1 a generic loop (or a memcpy per kw floats) cost ~5% of the step: the
 * common kw get their own unrolled copies. */
static inline __attribute__((always_inline)) void regroup_kw(const conv_dims *d, float *restrict w,
                                                             float *restrict wp, size_t rows,
                                                             int add, const int kw) {
    const size_t CKW = (size_t)d->C * kw, slab = rows * CKW, step = (size_t)d->kh * kw;
    for (int i = 0; i < d->kh; i++)
        for (int o = 0; o < d->O; o++) {
            float *t = wp + i * slab + o * CKW;
            float *s = w + (size_t)o * d->CK + (size_t)i * kw;
            if (add)
                for (int c = 0; c < d->C; c++)
                    for (int q = 0; q < kw; q++) s[c * step + q] += t[(size_t)c * kw + q];
            else
                for (int c = 0; c < d->C; c++)
                    for (int q = 0; q < kw; q++) t[(size_t)c * kw + q] = s[c * step + q];
        }
}

void eqr__conv_regroup(const conv_dims *d, float *w, float *wp, size_t rows, int add) {
    if (d->kw == 3)
        regroup_kw(d, w, wp, rows, add, 3);
    else if (d->kw == 5)
        regroup_kw(d, w, wp, rows, add, 5);
    else
        regroup_kw(d, w, wp, rows, add, d->kw);
}

/* Floats of one chunk's zero-bordered image buffer (0: general eqr__conv_im2col). */
size_t eqr__conv_pad_floats(const conv_dims *d) {
    if (d->direct || d->sw != 1) return 0;
    const uint64_t hp = (uint64_t)d->H + 2 * (uint64_t)d->ph, wp = (uint64_t)d->W + 2 * (uint64_t)d->pw;
    /* a padding far larger than the image (never worth a copy) takes the
     * general path; this also bounds the size by 4x the input's */
    if (hp * wp > 4 * (uint64_t)d->H * d->W + 64) return 0;
    return (size_t)d->C * (size_t)(hp * wp);
}

/* Rows [oh0, oh1) of col from image x: from pad, which eqr__conv_pad_image has
 * filled with x, when pad is set (the padded path), else from x. */
void eqr__conv_im2col_any(const conv_dims *d, const conv_runs *r, const float *x, const float *pad,
                float *col, int oh0, int oh1) {
    if (pad)
        im2col_padded(d, pad, col, oh0, oh1);
    else
        eqr__conv_im2col(d, r, x, col, oh0, oh1);
}

/* gx [C, H, W] += col2im(dcol) for the output rows [oh0, oh1) that dcol
 * [CK, (oh1-oh0)*OW] holds; padded positions are dropped. */
EQR_COPY_CLONES
void eqr__conv_col2im_add(const conv_dims *d, const conv_runs *r, const float *dcol, float *gx,
                int oh0, int oh1) {
    const int OW = d->OW, W = d->W, sw = d->sw;
    const size_t cols = (size_t)(oh1 - oh0) * OW;
    const float *src = dcol;
    for (int c = 0; c < d->C; c++) {
        float *gc = gx + (size_t)c * d->H * W;
        for (int i = 0; i < d->kh; i++) {
            const int h0 = r->hlo[i] > oh0 ? r->hlo[i] : oh0;
            const int h1 = r->hhi[i] < oh1 ? r->hhi[i] : oh1;
            const int ihoff = i * d->dh - d->ph;
            for (int j = 0; j < d->kw; j++, src += cols) {
                const int w0 = r->wlo[j], w1 = r->whi[j], len = w1 - w0;
                if (len <= 0) continue;
                const int iw0 = w0 * sw + j * d->dw - d->pw;
                for (int oh = h0; oh < h1; oh++) {
                    const float *srow = src + (size_t)(oh - oh0) * OW + w0;
                    float *g = gc + (size_t)(oh * d->sh + ihoff) * W + iw0;
                    if (sw == 1) {
                        for (int q = 0; q < len; q++) g[q] += srow[q];
                    } else {
                        for (int q = 0; q < len; q++) g[(size_t)q * sw] += srow[q];
                    }
                }
            }
        }
    }
}

void eqr__conv_sgemm_rm(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b,
              int ldb, float beta, float *c, int ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m,
                n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
}

/* The three row-shift GEMM stages of one tile of output rows [oh0, oh1),
 * shared by the plain and the stacked (norm) conv. The weights are kh slabs
 * of srows rows x C*kw (slab i = W_i), of which the first M rows are used;
 * dY / Y tiles have row stride ldy. */
static int rs_ld(const conv_dims *d, int oh0, int oh1) {
    return (oh1 - oh0 + (d->kh - 1) * d->dh) * d->OW;
}

/* Y_tile = beta Y_tile + sum_i W_i rc_i */
void eqr__conv_rs_forward(const conv_dims *d, const float *pad, float *rc, int oh0, int oh1, int M,
                const float *wp, int srows, float beta, float *y, int ldy) {
    const int ckw = d->C * d->kw, ld = rs_ld(d, oh0, oh1), cols = (oh1 - oh0) * d->OW;
    rowcol_padded(d, pad, rc, oh0, oh1);
    for (int i = 0; i < d->kh; i++)
        eqr__conv_sgemm_rm(0, 0, M, cols, ckw, wp + (size_t)i * srows * ckw, ckw,
                 rc + (size_t)i * d->dh * d->OW, ld, i ? 1.0f : beta, y, ldy);
}

/* dW_i += dY_tile rc_i^T */
void eqr__conv_rs_dw(const conv_dims *d, const float *pad, float *rc, int oh0, int oh1, int M,
           const float *dy, int ldy, float *dw, int srows) {
    const int ckw = d->C * d->kw, ld = rs_ld(d, oh0, oh1), cols = (oh1 - oh0) * d->OW;
    rowcol_padded(d, pad, rc, oh0, oh1);
    for (int i = 0; i < d->kh; i++)
        eqr__conv_sgemm_rm(0, 1, M, ckw, cols, dy, ldy, rc + (size_t)i * d->dh * d->OW, ld, 1.0f,
                 dw + (size_t)i * srows * ckw, ckw);
}

/* drc = sum_i W_i^T dY_tile at offset i*dh*OW (the first GEMM writes
 * columns [0, cols), the rest start at 0), then added back into gx. */
void eqr__conv_rs_dx(const conv_dims *d, const conv_runs *r, float *rc, int oh0, int oh1, int M,
           const float *wp, int srows, const float *dy, int ldy, float *gx) {
    const int ckw = d->C * d->kw, ld = rs_ld(d, oh0, oh1), cols = (oh1 - oh0) * d->OW;
    for (int c = 0; c < ckw; c++)
        memset(rc + (size_t)c * ld + cols, 0, (size_t)(ld - cols) * sizeof(float));
    for (int i = 0; i < d->kh; i++)
        eqr__conv_sgemm_rm(1, 0, ckw, cols, M, wp + (size_t)i * srows * ckw, ckw, dy, ldy,
                 i ? 1.0f : 0.0f, rc + (size_t)i * d->dh * d->OW, ld);
    rowcol_add(d, r, rc, gx, oh0, oh1);
}

/* Give the scratch allocated since m (col / pad buffers, per-chunk
 * accumulators) back to the arena, so the next conv reuses the same memory
 * instead of touching new pages: the scratch would otherwise stay live until
 * the step ends. Only when no block was chained after the mark (rewinding
 * would free it, and a block freed every step would mean a malloc every
 * step); then the next steps, in the coalesced arena, rewind. Nothing
 * allocated after the mark may outlive the call. */
