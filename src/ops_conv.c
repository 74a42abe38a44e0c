/* 2-D convolution, NCHW, as im2col + cblas_sgemm per image.
 *
 * For image n, col_n [C*kh*kw, OH*OW] holds in row (c,i,j) the input pixels
 * that kernel tap (c,i,j) meets at every output position, so
 *   Y_n = W col_n              (W viewed as [O, C*kh*kw])
 *   dW += dY_n col_n^T,  dcol = W^T dY_n, dX_n += col2im(dcol).
 * col is never stored for the whole batch: backward recomputes it per image,
 * and even per image it only exists one tile of output rows at a time
 * (CONV_TILE_FLOATS), each tile feeding its slice of the GEMMs.
 *
 * With horizontal stride 1 (the usual case) the image is first copied into a
 * zero-bordered buffer, and each col row is then a run of plain row copies.
 * Otherwise, for a tap, the output positions that read a real (non-padded)
 * pixel form one interval per axis, computed once per call, and im2col copies
 * whole row runs and zeroes the padded parts with memset. col2im accumulates
 * row runs over the same intervals. There is no bounds check per element.
 * The bias gradient is one sgemv per image (dY_n times a vector of ones).
 *
 * Stride 1 with kh > 1 (every conv of the benchmark model) takes the
 * row-shift path instead (see rowcol_padded): only the kw horizontal shifts
 * of the zero-bordered image are copied, and the kh vertical taps are kh
 * GEMMs of K = C*kw at column offsets into that copy. Against im2col + one
 * GEMM of K = C*kh*kw this made the strict P4CNN step ~8% faster (1 and 2
 * threads, batch 64; batch 1 ~5% faster): ~kh times less copying in im2col /
 * col2im at the same GEMM rate. The stacked norm conv takes it too.
 *
 * Threads: with a context of t > 1 threads and at least t images, the batch
 * is cut into t fixed contiguous chunks run by OpenMP, each with its own col
 * buffer (and, in backward, its own dW/db accumulators, added to the weight
 * gradient in chunk order). Results thus depend only on t, not on timing.
 * Inside that region every BLAS call must be single-threaded, and OpenBLAS's
 * thread count is process-global. It is set to 1 on the first threaded conv
 * and left there, i.e. once per process, not toggled per call: restoring it
 * after each call wakes OpenBLAS's worker threads, which then spin on a core
 * the image threads need (measured: a 3x3 32->64 conv on [64,32,14,14] took
 * 4.8 ms with per-call restore against 2.9 ms with the setting left at 1).
 * So a process with a multi-threaded context runs all BLAS calls
 * single-threaded; its parallelism comes from the library's own threads.
 * With fewer images than threads the images run one after another. */
#include "conv_internal.h"

#include <cblas.h>
#include <limits.h>

/* im2col / col2im are copy and add loops, store-bound, and the library is
 * built for the baseline x86-64 (SSE2, 16-byte moves). On x86-64 with GCC or
 * Clang they are also compiled for AVX2 and AVX-512 and the variant for the
 * running CPU is picked at load time (ifunc). */
#if defined(__x86_64__) && defined(__ELF__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define EQR_COPY_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef EQR_COPY_CLONES
#define EQR_COPY_CLONES
#endif

typedef struct conv_dims {
    int N, C, H, W, O, kh, kw, OH, OW;
    int sh, sw, ph, pw, dh, dw;
    int CK, P;   /* rows (C*kh*kw) and columns (OH*OW) of col */
    int TR;      /* output rows per im2col tile (col holds CK x TR*OW) */
    int direct;  /* 1x1, stride 1, no padding: col_n is x_n itself */
    int rowshift; /* stride 1, kh > 1, padded path: row-shift GEMMs (see rowcol) */
} conv_dims;

/* An image's col is built and consumed in tiles of whole output rows of at
 * most about 2 MB, so a tile is still in cache when the GEMM packs it (and
 * the buffer stays small): measured 4-5% faster on the 5x5 64-channel layer
 * of the benchmark model than one col of 5 MB per image. */
#define CONV_TILE_FLOATS ((size_t)1 << 19)

/* Valid output interval [lo, hi) per tap: hlo/hhi[kh] then wlo/whi[kw]. */
typedef struct conv_runs {
    int *hlo, *hhi, *wlo, *whi;
} conv_runs;

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

static int runs_init(eqr_ctx *ctx, const conv_dims *d, conv_runs *r) {
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
static void im2col(const conv_dims *d, const conv_runs *r, const float *x, float *col, int oh0,
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
 * (7..28 floats in the benchmark model), so the call dominated im2col. */
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
static void pad_image(const conv_dims *d, const float *x, float *pad) {
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
 * Building / scattering rc moves ~kh times fewer floats than im2col /
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

static void regroup(const conv_dims *d, float *w, float *wp, size_t rows, int add) {
    if (d->kw == 3)
        regroup_kw(d, w, wp, rows, add, 3);
    else if (d->kw == 5)
        regroup_kw(d, w, wp, rows, add, 5);
    else
        regroup_kw(d, w, wp, rows, add, d->kw);
}

/* Floats of one chunk's zero-bordered image buffer (0: general im2col). */
static size_t pad_floats(const conv_dims *d) {
    if (d->direct || d->sw != 1) return 0;
    const uint64_t hp = (uint64_t)d->H + 2 * (uint64_t)d->ph, wp = (uint64_t)d->W + 2 * (uint64_t)d->pw;
    /* a padding far larger than the image (never worth a copy) takes the
     * general path; this also bounds the size by 4x the input's */
    if (hp * wp > 4 * (uint64_t)d->H * d->W + 64) return 0;
    return (size_t)d->C * (size_t)(hp * wp);
}

/* Rows [oh0, oh1) of col from image x: from pad, which pad_image has
 * filled with x, when pad is set (the padded path), else from x. */
static void im2col_any(const conv_dims *d, const conv_runs *r, const float *x, const float *pad,
                       float *col, int oh0, int oh1) {
    if (pad)
        im2col_padded(d, pad, col, oh0, oh1);
    else
        im2col(d, r, x, col, oh0, oh1);
}

/* gx [C, H, W] += col2im(dcol) for the output rows [oh0, oh1) that dcol
 * [CK, (oh1-oh0)*OW] holds; padded positions are dropped. */
EQR_COPY_CLONES
static void col2im_add(const conv_dims *d, const conv_runs *r, const float *dcol, float *gx,
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

static void sgemm_rm(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b,
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
static void rs_forward(const conv_dims *d, const float *pad, float *rc, int oh0, int oh1, int M,
                       const float *wp, int srows, float beta, float *y, int ldy) {
    const int ckw = d->C * d->kw, ld = rs_ld(d, oh0, oh1), cols = (oh1 - oh0) * d->OW;
    rowcol_padded(d, pad, rc, oh0, oh1);
    for (int i = 0; i < d->kh; i++)
        sgemm_rm(0, 0, M, cols, ckw, wp + (size_t)i * srows * ckw, ckw,
                 rc + (size_t)i * d->dh * d->OW, ld, i ? 1.0f : beta, y, ldy);
}

/* dW_i += dY_tile rc_i^T */
static void rs_dw(const conv_dims *d, const float *pad, float *rc, int oh0, int oh1, int M,
                  const float *dy, int ldy, float *dw, int srows) {
    const int ckw = d->C * d->kw, ld = rs_ld(d, oh0, oh1), cols = (oh1 - oh0) * d->OW;
    rowcol_padded(d, pad, rc, oh0, oh1);
    for (int i = 0; i < d->kh; i++)
        sgemm_rm(0, 1, M, ckw, cols, dy, ldy, rc + (size_t)i * d->dh * d->OW, ld, 1.0f,
                 dw + (size_t)i * srows * ckw, ckw);
}

/* drc = sum_i W_i^T dY_tile at offset i*dh*OW (the first GEMM writes
 * columns [0, cols), the rest start at 0), then added back into gx. */
static void rs_dx(const conv_dims *d, const conv_runs *r, float *rc, int oh0, int oh1, int M,
                  const float *wp, int srows, const float *dy, int ldy, float *gx) {
    const int ckw = d->C * d->kw, ld = rs_ld(d, oh0, oh1), cols = (oh1 - oh0) * d->OW;
    for (int c = 0; c < ckw; c++)
        memset(rc + (size_t)c * ld + cols, 0, (size_t)(ld - cols) * sizeof(float));
    for (int i = 0; i < d->kh; i++)
        sgemm_rm(1, 0, ckw, cols, M, wp + (size_t)i * srows * ckw, ckw, dy, ldy,
                 i ? 1.0f : 0.0f, rc + (size_t)i * d->dh * d->OW, ld);
    rowcol_add(d, r, rc, gx, oh0, oh1);
}

/* Number of image chunks (= OpenMP threads) for a batch of N. */
static int conv_chunks(const eqr_ctx *ctx, int N) {
    int t = eqr_ctx_threads(ctx);
#ifndef _OPENMP
    t = 1;
#endif
    return (t > 1 && N >= t) ? t : 1;
}

/* eqr__blas_single (internal.h): set once per process, see the top. */
void eqr__blas_single(int chunks) {
    if (chunks > 1 && openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

static void chunk_range(int N, int chunks, int k, int *n0, int *n1) {
    *n0 = (int)((int64_t)N * k / chunks);
    *n1 = (int)((int64_t)N * (k + 1) / chunks);
}

static void fill_dims(conv_dims *d, const eqr_tensor *x, const eqr_tensor *w, const int *g) {
    d->N = (int)x->shape[0];
    d->C = (int)x->shape[1];
    d->H = (int)x->shape[2];
    d->W = (int)x->shape[3];
    d->O = (int)w->shape[0];
    d->kh = (int)w->shape[2];
    d->kw = (int)w->shape[3];
    d->sh = g[0];
    d->sw = g[1];
    d->ph = g[2];
    d->pw = g[3];
    d->dh = g[4];
    d->dw = g[5];
    d->OH = (d->H + 2 * d->ph - d->dh * (d->kh - 1) - 1) / d->sh + 1;
    d->OW = (d->W + 2 * d->pw - d->dw * (d->kw - 1) - 1) / d->sw + 1;
    d->CK = d->C * d->kh * d->kw;
    d->P = d->OH * d->OW;
    d->direct = d->kh == 1 && d->kw == 1 && d->sh == 1 && d->sw == 1 && d->ph == 0 && d->pw == 0;
    /* balanced tiles of at most CONV_TILE_FLOATS (or one row) */
    const size_t row = (size_t)d->CK * (d->OW > 0 ? d->OW : 1);
    const size_t maxrows = row >= CONV_TILE_FLOATS ? 1 : CONV_TILE_FLOATS / row;
    const size_t ntiles = d->OH > 0 ? ((size_t)d->OH + maxrows - 1) / maxrows : 1;
    d->TR = d->OH > 0 ? (int)(((size_t)d->OH + ntiles - 1) / ntiles) : 1;
    d->rowshift = d->sh == 1 && d->sw == 1 && d->kh > 1 && pad_floats(d) > 0;
    if (d->rowshift && d->OH > 0) { /* tiles of rc of at most CONV_TILE_FLOATS */
        const size_t rrow = (size_t)d->C * d->kw * d->OW, halo = (size_t)(d->kh - 1) * d->dh;
        const size_t fit = CONV_TILE_FLOATS / rrow;
        const size_t mr = fit > halo ? fit - halo : 1;
        const size_t nt = ((size_t)d->OH + mr - 1) / mr;
        d->TR = (int)(((size_t)d->OH + nt - 1) / nt);
    }
}

/* What a conv node keeps for backward: the tap intervals and, on the
 * row-shift path, the regrouped weights of the forward (else NULL). */
typedef struct conv_saved {
    const conv_runs *r;
    const float *wp;
} conv_saved;

/* Floats of one chunk's col buffer: one tile of col, or of rc (rowcol). */
static size_t col_floats(const conv_dims *d) {
    size_t n = (size_t)d->CK * d->TR * d->OW;
    if (d->rowshift) {
        size_t m = (size_t)d->C * d->kw * ((size_t)d->TR + (size_t)(d->kh - 1) * d->dh) * d->OW;
        if (m > n) n = m;
    }
    return n;
}

/* Forward of one chunk of images, with the chunk's own col buffer. */
typedef struct conv_fwd_job {
    const conv_dims *d;
    const conv_runs *r;
    int chunks;
    const float *x, *w, *b;
    float *y, *cols, *pads;
    const float *wp; /* rowshift_weights(w) on the row-shift path */
} conv_fwd_job;

static void conv_forward_chunk(const void *job, int k) {
    const conv_fwd_job *j = job;
    const conv_dims *d = j->d;
    const size_t xs = (size_t)d->C * d->H * d->W, ys = (size_t)d->O * d->P;
    int n0, n1;
    chunk_range(d->N, j->chunks, k, &n0, &n1);
    float *col = j->cols ? j->cols + (size_t)k * col_floats(d) : NULL;
    float *pad = j->pads ? j->pads + (size_t)k * pad_floats(d) : NULL;
    for (int n = n0; n < n1; n++) {
        const float *xn = j->x + (size_t)n * xs;
        float *yn = j->y + (size_t)n * ys;
        float beta = 0.0f;
        if (j->b) { /* rows start at the bias; sgemm adds W col on top */
            for (int o = 0; o < d->O; o++) {
                float *row = yn + (size_t)o * d->P;
                for (int p = 0; p < d->P; p++) row[p] = j->b[o];
            }
            beta = 1.0f;
        }
        if (d->direct) {
            sgemm_rm(0, 0, d->O, d->P, d->CK, j->w, d->CK, xn, d->P, beta, yn, d->P);
            continue;
        }
        if (pad) pad_image(d, xn, pad);
        for (int oh0 = 0; oh0 < d->OH; oh0 += d->TR) { /* Y[:, tile] = W col_tile */
            const int oh1 = oh0 + d->TR < d->OH ? oh0 + d->TR : d->OH, cols = (oh1 - oh0) * d->OW;
            if (d->rowshift) {
                rs_forward(d, pad, col, oh0, oh1, d->O, j->wp, d->O, beta, yn + (size_t)oh0 * d->OW,
                           d->P);
                continue;
            }
            im2col_any(d, j->r, xn, pad, col, oh0, oh1);
            sgemm_rm(0, 0, d->O, cols, d->CK, j->w, d->CK, col, cols, beta, yn + (size_t)oh0 * d->OW,
                     d->P);
        }
    }
}

/* Backward of one chunk: its own col buffer and, with several chunks, its
 * own dW / db accumulators (reduced afterwards in chunk order). */
typedef struct conv_bwd_job {
    const conv_dims *d;
    const conv_runs *r;
    int chunks;
    const float *x, *w, *gy;
    float *gx, *gw, *gb, *cols, *wacc, *bacc, *pads;
    const float *ones; /* P ones, for the bias gradient */
    const float *wp;   /* row-shift path: rowshift_weights(w); wacc is then */
                       /* per chunk in its [kh][O][C*kw] layout */
} conv_bwd_job;

static void conv_backward_chunk(const void *job, int k) {
    const conv_bwd_job *j = job;
    const conv_dims *d = j->d;
    const size_t xs = (size_t)d->C * d->H * d->W, ys = (size_t)d->O * d->P;
    const size_t wsz = (size_t)d->O * d->CK;
    int n0, n1;
    chunk_range(d->N, j->chunks, k, &n0, &n1);
    float *col = j->cols ? j->cols + (size_t)k * col_floats(d) : NULL;
    float *pad = j->pads ? j->pads + (size_t)k * pad_floats(d) : NULL;
    float *dw = (j->chunks > 1 || d->rowshift) ? (j->wacc ? j->wacc + (size_t)k * wsz : NULL)
                                               : j->gw;
    float *db = j->chunks > 1 ? (j->bacc ? j->bacc + (size_t)k * d->O : NULL) : j->gb;
    for (int n = n0; n < n1; n++) {
        const float *xn = j->x + (size_t)n * xs;
        const float *dyn = j->gy + (size_t)n * ys;
        if (db) /* db += dY_n 1 (a scalar loop here cost a quarter of col2im) */
            cblas_sgemv(CblasRowMajor, CblasNoTrans, d->O, d->P, 1.0f, dyn, d->P, j->ones, 1,
                        1.0f, db, 1);
        float *gxn = j->gx ? j->gx + (size_t)n * xs : NULL;
        if (d->direct) { /* col_n is x_n itself, dcol is dX_n */
            if (dw) sgemm_rm(0, 1, d->O, d->CK, d->P, dyn, d->P, xn, d->P, 1.0f, dw, d->CK);
            if (gxn) sgemm_rm(1, 0, d->CK, d->P, d->O, j->w, d->CK, dyn, d->P, 1.0f, gxn, d->P);
            continue;
        }
        if (dw && pad) pad_image(d, xn, pad);
        for (int oh0 = 0; oh0 < d->OH; oh0 += d->TR) {
            const int oh1 = oh0 + d->TR < d->OH ? oh0 + d->TR : d->OH, cols = (oh1 - oh0) * d->OW;
            const float *dyt = dyn + (size_t)oh0 * d->OW; /* dY_n[:, tile], row stride P */
            if (d->rowshift) {
                if (dw) rs_dw(d, pad, col, oh0, oh1, d->O, dyt, d->P, dw, d->O);
                if (gxn) rs_dx(d, j->r, col, oh0, oh1, d->O, j->wp, d->O, dyt, d->P, gxn);
                continue;
            }
            if (dw) { /* dW [O,CK] += dY_tile col_tile^T */
                im2col_any(d, j->r, xn, pad, col, oh0, oh1);
                sgemm_rm(0, 1, d->O, d->CK, cols, dyt, d->P, col, cols, 1.0f, dw, d->CK);
            }
            if (gxn) { /* dcol_tile = W^T dY_tile (col is free now), scattered back */
                sgemm_rm(1, 0, d->CK, cols, d->O, j->w, d->CK, dyt, d->P, 0.0f, col, cols);
                col2im_add(d, j->r, col, gxn, oh0, oh1);
            }
        }
    }
}

static void conv_backward(eqr_ctx *ctx, eqr_node *node) {
    eqr_tensor *xt = node->in[0], *wt = node->in[1], *bt = node->in[2];
    int g[6];
    for (int k = 0; k < 6; k++) g[k] = (int)node->i[k];
    conv_dims d;
    fill_dims(&d, xt, wt, g);
    const conv_saved *sv = node->saved;
    const conv_runs *r = sv->r;
    const float *gy = node->out->grad;
    const int need_x = eqr__needs_grad(xt), need_w = eqr__needs_grad(wt);
    const int need_b = eqr__needs_grad(bt);

    /* All arena work happens here, before any thread starts. */
    float *gx = NULL, *gw = NULL, *gb = NULL;
    if (need_x && !(gx = eqr__grad(ctx, xt))) return;
    if (need_w && !(gw = eqr__grad(ctx, wt))) return;
    if (need_b && !(gb = eqr__grad(ctx, bt))) return;
    const int chunks = conv_chunks(ctx, d.N);
    const size_t wsz = (size_t)d.O * d.CK;
    const eqr__arena_mark mark = eqr__arena_save(ctx);
    float *cols = NULL, *wacc = NULL, *bacc = NULL;
    if ((need_w || need_x) && !d.direct && d.N > 0) {
        cols = eqr__arena_alloc(ctx, (size_t)chunks * col_floats(&d) * sizeof(float));
        if (!cols) return;
    }
    float *pads = NULL, *ones = NULL;
    if (need_b) {
        if (!(ones = eqr__arena_alloc(ctx, (size_t)d.P * sizeof(float)))) return;
        for (int p = 0; p < d.P; p++) ones[p] = 1.0f;
    }
    if (need_w && pad_floats(&d) && d.N > 0 &&
        !(pads = eqr__arena_calloc(ctx, (size_t)chunks * pad_floats(&d) * sizeof(float))))
        return;
    const float *wp = sv->wp; /* regrouped in forward */
    if (d.rowshift && chunks == 1 && need_w && d.N > 0 &&
        !(wacc = eqr__arena_calloc(ctx, wsz * sizeof(float))))
        return;
    if (chunks > 1) { /* per-chunk accumulators, reduced in chunk order */
        if (need_w && !(wacc = eqr__arena_calloc(ctx, (size_t)chunks * wsz * sizeof(float))))
            return;
        if (need_b && !(bacc = eqr__arena_calloc(ctx, (size_t)chunks * d.O * sizeof(float))))
            return;
    }
    eqr__blas_single(chunks);
    conv_bwd_job job = {&d, r, chunks, xt->data, wt->data, gy, gx, gw, gb, cols, wacc, bacc, pads,
                        ones, wp};
    eqr__parallel(chunks, conv_backward_chunk, &job);

    for (int k = 0; k < chunks && (chunks > 1 || d.rowshift); k++) {
        if (wacc) {
            const float *a = wacc + (size_t)k * wsz;
            if (d.rowshift)
                regroup(&d, gw, (float *)a, (size_t)d.O, 1);
            else
                for (size_t q = 0; q < wsz; q++) gw[q] += a[q];
        }
        if (bacc) {
            const float *a = bacc + (size_t)k * d.O;
            for (int o = 0; o < d.O; o++) gb[o] += a[o];
        }
    }
    eqr__scratch_release(ctx, mark);
}

/* Checks shared by the conv ops: shapes of x, w, b and the geometry (fn
 * names the op in messages). Fills g (stride, pad, dilation with 0 -> 1) and
 * d. 0 with the error recorded on bad arguments. */
static int conv_setup(eqr_ctx *ctx, const char *fn, const eqr_tensor *x, const eqr_tensor *w,
                      const eqr_tensor *b, const eqr_conv2d_geom *geom, int *g, conv_dims *d) {
    char sx[EQR_SHAPE_BUF], sw[EQR_SHAPE_BUF], sb[EQR_SHAPE_BUF];
    eqr_conv2d_geom gm = geom ? *geom : (eqr_conv2d_geom){1, 1, 0, 0, 1, 1};
    if (gm.stride_h < 0 || gm.stride_w < 0 || gm.dil_h < 0 || gm.dil_w < 0 || gm.pad_h < 0 ||
        gm.pad_w < 0) {
        eqr__fail(ctx, EQR_ERR_ARG,
                  "%s: stride (%d,%d) and dilation (%d,%d) must be >= 0 (0 means 1), "
                  "padding (%d,%d) >= 0", fn,
                  gm.stride_h, gm.stride_w, gm.dil_h, gm.dil_w, gm.pad_h, gm.pad_w);
        return 0;
    }
    g[0] = gm.stride_h ? gm.stride_h : 1;
    g[1] = gm.stride_w ? gm.stride_w : 1;
    g[2] = gm.pad_h;
    g[3] = gm.pad_w;
    g[4] = gm.dil_h ? gm.dil_h : 1;
    g[5] = gm.dil_w ? gm.dil_w : 1;
    if (x->ndim != 4 || w->ndim != 4) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "%s: need x [N,C,H,W] and w [O,C,kh,kw], got x %s and w %s", fn,
                  EQR_SHAPE(x, sx), EQR_SHAPE(w, sw));
        return 0;
    }
    if (x->shape[1] != w->shape[1]) {
        eqr__fail(ctx, EQR_ERR_SHAPE,
                  "%s: x %s has %lld channels but w %s expects %lld", fn,
                  EQR_SHAPE(x, sx), (long long)x->shape[1], EQR_SHAPE(w, sw),
                  (long long)w->shape[1]);
        return 0;
    }
    if (w->shape[0] < 1 || w->shape[1] < 1 || w->shape[2] < 1 || w->shape[3] < 1) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "%s: w %s must have nonzero dimensions", fn,
                  EQR_SHAPE(w, sw));
        return 0;
    }
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0])) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "%s: bias must be [%lld] for w %s, got %s", fn,
                  (long long)w->shape[0], EQR_SHAPE(w, sw), EQR_SHAPE(b, sb));
        return 0;
    }
    /* Extent of the dilated kernel against the padded input, in 64 bits. */
    int64_t ekh = (int64_t)g[4] * (w->shape[2] - 1) + 1, ekw = (int64_t)g[5] * (w->shape[3] - 1) + 1;
    int64_t phh = x->shape[2] + 2 * (int64_t)g[2], pww = x->shape[3] + 2 * (int64_t)g[3];
    if (ekh > phh || ekw > pww) {
        eqr__fail(ctx, EQR_ERR_SHAPE,
                  "%s: kernel %s with dilation (%d,%d) spans %lldx%lld, larger than the "
                  "padded input %lldx%lld of x %s", fn,
                  EQR_SHAPE(w, sw), g[4], g[5], (long long)ekh, (long long)ekw, (long long)phh,
                  (long long)pww, EQR_SHAPE(x, sx));
        return 0;
    }
    int64_t OH = (phh - ekh) / g[0] + 1, OW = (pww - ekw) / g[1] + 1;
    int64_t CK = w->shape[1] * w->shape[2] * w->shape[3];
    int64_t lim = INT_MAX;
    if (phh > lim || pww > lim || ekh > lim || ekw > lim || CK > lim || OH * OW > lim ||
        x->shape[0] > lim || w->shape[0] > lim) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "%s: sizes of x %s / w %s exceed INT_MAX", fn,
                  EQR_SHAPE(x, sx), EQR_SHAPE(w, sw));
        return 0;
    }
    fill_dims(d, x, w, g);
    /* CK and P are each below 2^31, so their product is exact, but the byte
     * count of the col buffers (per thread) could wrap size_t */
    if (!d->direct && (uint64_t)d->CK * (uint64_t)d->P > SIZE_MAX / 8 / sizeof(float) / 64) {
        eqr__fail(ctx, EQR_ERR_NOMEM, "%s: im2col buffer of %d x %d floats is too large", fn,
                  d->CK, d->P);
        return 0;
    }
    return 1;
}

eqr_tensor *eqr_conv2d(eqr_ctx *ctx, eqr_tensor *x, eqr_tensor *w, eqr_tensor *b,
                       const eqr_conv2d_geom *geom) {
    if (!eqr__ok(ctx, 2, x, w)) return NULL;
    int g[6];
    conv_dims d;
    if (!conv_setup(ctx, "eqr_conv2d", x, w, b, geom, g, &d)) return NULL;
    int64_t shape[4] = {d.N, d.O, d.OH, d.OW};
    eqr_tensor *y = eqr__tensor_empty(ctx, 4, shape);
    if (!y) return NULL;
    conv_runs *r = eqr__arena_alloc(ctx, sizeof *r);
    conv_saved *sv = eqr__arena_alloc(ctx, sizeof *sv);
    if (!r || !sv || !runs_init(ctx, &d, r)) return NULL;
    float *wp = NULL; /* kept for backward, so allocated before the scratch mark */
    if (d.rowshift && d.N > 0) {
        if (!(wp = eqr__arena_alloc(ctx, (size_t)d.O * d.CK * sizeof(float)))) return NULL;
        regroup(&d, w->data, wp, (size_t)d.O, 0);
    }
    *sv = (conv_saved){r, wp};
    const int chunks = conv_chunks(ctx, d.N);
    const eqr__arena_mark mark = eqr__arena_save(ctx);
    float *cols = NULL;
    if (!d.direct && d.N > 0) {
        cols = eqr__arena_alloc(ctx, (size_t)chunks * col_floats(&d) * sizeof(float));
        if (!cols) return NULL;
    }
    float *pads = NULL;
    if (pad_floats(&d) && d.N > 0 &&
        !(pads = eqr__arena_calloc(ctx, (size_t)chunks * pad_floats(&d) * sizeof(float))))
        return NULL;
    eqr__blas_single(chunks);
    conv_fwd_job job = {&d, r, chunks, x->data, w->data, b ? b->data : NULL, y->data, cols, pads,
                        wp};
    eqr__parallel(chunks, conv_forward_chunk, &job);
    eqr__scratch_release(ctx, mark);

    eqr_tensor *in[3] = {x, w, b};
    eqr_node *n = eqr__record(ctx, y, conv_backward, 3, in);
    if (n) {
        n->saved = sv;
        for (int k = 0; k < 6; k++) n->i[k] = g[k];
    }
    return y;
}

/* ---- conv with a stacked norm bank (conv_internal.h) ----
 * Wc = [w; wr] is [2O, CK]; per image and tile, T = Wc col is [2O, cols]:
 * its first O rows (+ bias) are y's tile, the last O rows R's. Backward
 * stacks S = [dY; 2 dnorm R] per tile: dWc += S col^T, dcol = Wc^T S. */

typedef struct convn_saved {
    conv_runs *r;
    const float *rmap; /* R [N, O, P] */
    float *wc;         /* [2O, CK] stacked banks, as used in forward */
    float *wcp;        /* row-shift path: [kh][2O][C*kw], both banks regrouped */
    eqr_tensor *y;
    float ds;          /* dL/dnorm, set by the norm node's backward */
    int detach_x;      /* 1: the norm's gradient does not reach x */
} convn_saved;

/* Sum of squares of n floats in double, 8 independent partial sums. */
static double sumsq8(const float *restrict x, size_t n) {
    double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) a[j] += (double)x[i + j] * x[i + j];
    for (; i < n; i++) a[i & 7] += (double)x[i] * x[i];
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* Floats of one chunk's [2O, tile] buffer. */
static size_t stack_floats(const conv_dims *d) { return (size_t)2 * d->O * d->TR * d->OW; }

/* col of tile [oh0, oh1) and its row stride: x_n itself for a direct conv. */
static const float *tile_col(const conv_dims *d, const conv_runs *r, const float *xn,
                             const float *pad, float *col, int oh0, int oh1, int *ld) {
    if (d->direct) {
        *ld = d->P;
        return xn + (size_t)oh0 * d->OW;
    }
    *ld = (oh1 - oh0) * d->OW;
    im2col_any(d, r, xn, pad, col, oh0, oh1);
    return col;
}

typedef struct convn_fwd_job {
    const conv_dims *d;
    const conv_runs *r;
    int chunks;
    const float *x, *wc, *b;
    float *y, *rmap, *cols, *pads, *stacks;
    double *part;
    const float *wcp;
} convn_fwd_job;

static void convn_forward_chunk(const void *job, int k) {
    const convn_fwd_job *j = job;
    const conv_dims *d = j->d;
    const size_t xs = (size_t)d->C * d->H * d->W, ys = (size_t)d->O * d->P;
    int n0, n1;
    chunk_range(d->N, j->chunks, k, &n0, &n1);
    float *col = j->cols ? j->cols + (size_t)k * col_floats(d) : NULL;
    float *pad = j->pads ? j->pads + (size_t)k * pad_floats(d) : NULL;
    float *t = j->stacks + (size_t)k * stack_floats(d);
    for (int n = n0; n < n1; n++) {
        const float *xn = j->x + (size_t)n * xs;
        float *yn = j->y + (size_t)n * ys, *rn = j->rmap + (size_t)n * ys;
        if (pad) pad_image(d, xn, pad);
        for (int oh0 = 0; oh0 < d->OH; oh0 += d->TR) {
            const int oh1 = oh0 + d->TR < d->OH ? oh0 + d->TR : d->OH, cols = (oh1 - oh0) * d->OW;
            if (d->rowshift) { /* as the plain conv, with M = 2O */
                rs_forward(d, pad, col, oh0, oh1, 2 * d->O, j->wcp, 2 * d->O, 0.0f, t, cols);
            } else {
                int ld;
                const float *c = tile_col(d, j->r, xn, pad, col, oh0, oh1, &ld);
                sgemm_rm(0, 0, 2 * d->O, cols, d->CK, j->wc, d->CK, c, ld, 0.0f, t, cols);
            }
            const size_t off = (size_t)oh0 * d->OW;
            for (int o = 0; o < d->O; o++) {
                const float *src = t + (size_t)o * cols, bo = j->b ? j->b[o] : 0.0f;
                float *dst = yn + (size_t)o * d->P + off;
                for (int p = 0; p < cols; p++) dst[p] = src[p] + bo;
                memcpy(rn + (size_t)o * d->P + off, t + (size_t)(d->O + o) * cols,
                       (size_t)cols * sizeof(float));
            }
        }
        j->part[n] = sumsq8(rn, ys);
    }
}

typedef struct convn_bwd_job {
    const conv_dims *d;
    const conv_runs *r;
    int chunks, need_w, detach_x;
    const float *x, *wc, *gy, *rmap, *ones;
    float two_ds;
    float *gx, *gb, *wacc, *bacc, *cols, *pads, *stacks;
    const float *wcp;
} convn_bwd_job;

static void convn_backward_chunk(const void *job, int k) {
    const convn_bwd_job *j = job;
    const conv_dims *d = j->d;
    const size_t xs = (size_t)d->C * d->H * d->W, ys = (size_t)d->O * d->P;
    int n0, n1;
    chunk_range(d->N, j->chunks, k, &n0, &n1);
    float *col = j->cols ? j->cols + (size_t)k * col_floats(d) : NULL;
    float *pad = j->pads ? j->pads + (size_t)k * pad_floats(d) : NULL;
    float *st = j->stacks + (size_t)k * stack_floats(d);
    float *dw = j->need_w ? j->wacc + (size_t)k * 2 * d->O * d->CK : NULL;
    float *db = j->chunks > 1 ? (j->bacc ? j->bacc + (size_t)k * d->O : NULL) : j->gb;
    for (int n = n0; n < n1; n++) {
        const float *xn = j->x + (size_t)n * xs;
        const float *dyn = j->gy + (size_t)n * ys, *rn = j->rmap + (size_t)n * ys;
        if (db)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, d->O, d->P, 1.0f, dyn, d->P, j->ones, 1,
                        1.0f, db, 1);
        float *gxn = j->gx ? j->gx + (size_t)n * xs : NULL;
        if (dw && pad) pad_image(d, xn, pad);
        for (int oh0 = 0; oh0 < d->OH; oh0 += d->TR) {
            const int oh1 = oh0 + d->TR < d->OH ? oh0 + d->TR : d->OH, cols = (oh1 - oh0) * d->OW;
            const size_t off = (size_t)oh0 * d->OW;
            if (d->rowshift) {
                /* S = dY (two_ds == 0: exactly the plain conv's GEMMs, whose
                 * W_i are the first O rows of each slab of wcp) or [dY; 2 dnorm R] */
                const int m = j->two_ds == 0.0f ? d->O : 2 * d->O;
                const float *sm = dyn + off;
                int lds = d->P;
                if (m > d->O) {
                    for (int o = 0; o < d->O; o++) {
                        memcpy(st + (size_t)o * cols, dyn + (size_t)o * d->P + off,
                               (size_t)cols * sizeof(float));
                        const float *src = rn + (size_t)o * d->P + off;
                        float *dst = st + (size_t)(d->O + o) * cols;
                        for (int p = 0; p < cols; p++) dst[p] = j->two_ds * src[p];
                    }
                    sm = st;
                    lds = cols;
                }
                if (dw) rs_dw(d, pad, col, oh0, oh1, m, sm, lds, dw, 2 * d->O);
                /* detached norm: dx from dY alone, the first O rows of each slab */
                if (gxn && j->detach_x)
                    rs_dx(d, j->r, col, oh0, oh1, d->O, j->wcp, 2 * d->O, dyn + off, d->P, gxn);
                else if (gxn)
                    rs_dx(d, j->r, col, oh0, oh1, m, j->wcp, 2 * d->O, sm, lds, gxn);
                continue;
            }
            if (j->two_ds == 0.0f) {
                /* no gradient through the norm (unused, lambda 0, or W_r = 0
                 * under the safe sqrt): the plain conv's GEMMs, half the work */
                if (dw) {
                    int ld;
                    const float *c = tile_col(d, j->r, xn, pad, col, oh0, oh1, &ld);
                    sgemm_rm(0, 1, d->O, d->CK, cols, dyn + off, d->P, c, ld, 1.0f, dw, d->CK);
                }
                if (gxn && d->direct) {
                    sgemm_rm(1, 0, d->CK, cols, d->O, j->wc, d->CK, dyn + off, d->P, 1.0f,
                             gxn + off, d->P);
                } else if (gxn) {
                    sgemm_rm(1, 0, d->CK, cols, d->O, j->wc, d->CK, dyn + off, d->P, 0.0f, col,
                             cols);
                    col2im_add(d, j->r, col, gxn, oh0, oh1);
                }
                continue;
            }
            for (int o = 0; o < d->O; o++) { /* S = [dY; 2 dnorm R] for this tile */
                memcpy(st + (size_t)o * cols, dyn + (size_t)o * d->P + off,
                       (size_t)cols * sizeof(float));
                const float *src = rn + (size_t)o * d->P + off;
                float *dst = st + (size_t)(d->O + o) * cols;
                for (int p = 0; p < cols; p++) dst[p] = j->two_ds * src[p];
            }
            if (dw) {
                int ld;
                const float *c = tile_col(d, j->r, xn, pad, col, oh0, oh1, &ld);
                sgemm_rm(0, 1, 2 * d->O, d->CK, cols, st, cols, c, ld, 1.0f, dw, d->CK);
            }
            if (gxn) {
                /* detached norm: dcol = w^T dY (w's O rows of Wc), else Wc^T S */
                const int m = j->detach_x ? d->O : 2 * d->O;
                const float *sm = j->detach_x ? dyn + off : st;
                const int lds = j->detach_x ? d->P : cols;
                if (d->direct) {
                    sgemm_rm(1, 0, d->CK, cols, m, j->wc, d->CK, sm, lds, 1.0f, gxn + off, d->P);
                } else {
                    sgemm_rm(1, 0, d->CK, cols, m, j->wc, d->CK, sm, lds, 0.0f, col, cols);
                    col2im_add(d, j->r, col, gxn, oh0, oh1);
                }
            }
        }
    }
}

static void convn_backward(eqr_ctx *ctx, eqr_node *node) {
    eqr_tensor *xt = node->in[0], *wt = node->in[1], *bt = node->in[2], *wrt = node->in[3];
    const convn_saved *sv = node->saved;
    int g[6];
    for (int k = 0; k < 6; k++) g[k] = (int)node->i[k];
    conv_dims d;
    fill_dims(&d, xt, wt, g);
    const float *gy = node->out->grad;
    const int need_x = eqr__needs_grad(xt), need_w = eqr__needs_grad(wt);
    const int need_b = eqr__needs_grad(bt), need_wr = eqr__needs_grad(wrt);
    float *gx = NULL, *gw = NULL, *gb = NULL, *gwr = NULL;
    if (need_x && !(gx = eqr__grad(ctx, xt))) return;
    if (need_w && !(gw = eqr__grad(ctx, wt))) return;
    if (need_b && !(gb = eqr__grad(ctx, bt))) return;
    if (need_wr && !(gwr = eqr__grad(ctx, wrt))) return;
    if (d.N == 0) return;
    const int chunks = conv_chunks(ctx, d.N), any_w = need_w || need_wr;
    const size_t wsz = (size_t)d.O * d.CK;
    const eqr__arena_mark mark = eqr__arena_save(ctx);
    float *cols = NULL, *pads = NULL, *ones = NULL, *wacc = NULL, *bacc = NULL;
    float *stacks = eqr__arena_alloc(ctx, (size_t)chunks * stack_floats(&d) * sizeof(float));
    if (!stacks) return;
    if ((any_w || need_x) && !d.direct &&
        !(cols = eqr__arena_alloc(ctx, (size_t)chunks * col_floats(&d) * sizeof(float))))
        return;
    if (any_w && pad_floats(&d) &&
        !(pads = eqr__arena_calloc(ctx, (size_t)chunks * pad_floats(&d) * sizeof(float))))
        return;
    if (need_b) {
        if (!(ones = eqr__arena_alloc(ctx, (size_t)d.P * sizeof(float)))) return;
        for (int p = 0; p < d.P; p++) ones[p] = 1.0f;
        if (chunks > 1 && !(bacc = eqr__arena_calloc(ctx, (size_t)chunks * d.O * sizeof(float))))
            return;
    }
    if (any_w && !(wacc = eqr__arena_calloc(ctx, (size_t)chunks * 2 * wsz * sizeof(float))))
        return;
    eqr__blas_single(chunks);
    convn_bwd_job job = {&d, sv->r, chunks, any_w, sv->detach_x, xt->data, sv->wc, gy, sv->rmap, ones,
                         2.0f * sv->ds, gx, gb, wacc, bacc, cols, pads, stacks, sv->wcp};
    eqr__parallel(chunks, convn_backward_chunk, &job);
    for (int k = 0; k < chunks; k++) { /* in chunk order: independent of timing */
        if (wacc && d.rowshift) { /* [kh][2O][C*kw]: w's rows, then wr's, per slab */
            float *a = wacc + (size_t)k * 2 * wsz;
            if (gw) regroup(&d, gw, a, 2 * (size_t)d.O, 1);
            if (gwr) regroup(&d, gwr, a + (size_t)d.O * d.C * d.kw, 2 * (size_t)d.O, 1);
        } else if (wacc) {
            const float *a = wacc + (size_t)k * 2 * wsz;
            if (gw)
                for (size_t q = 0; q < wsz; q++) gw[q] += a[q];
            if (gwr)
                for (size_t q = 0; q < wsz; q++) gwr[q] += a[wsz + q];
        }
        if (bacc) {
            const float *a = bacc + (size_t)k * d.O;
            for (int o = 0; o < d.O; o++) gb[o] += a[o];
        }
    }
    eqr__scratch_release(ctx, mark);
}

/* The norm's node: its gradient is consumed by y's node (recorded before it,
 * so run after it); make sure y's node runs even if y got no gradient. */
static void convn_norm_backward(eqr_ctx *ctx, eqr_node *node) {
    convn_saved *sv = node->saved;
    sv->ds += node->out->grad[0];
    (void)eqr__grad(ctx, sv->y);
}

eqr_tensor *eqr__conv2d_norm(eqr_ctx *ctx, eqr_tensor *x, eqr_tensor *w, eqr_tensor *b,
                             eqr_tensor *wr, const eqr_conv2d_geom *geom, int detach_x,
                             eqr_tensor **norm) {
    static const char *fn = "eqr_conv2d (stacked norm bank)";
    if (norm) *norm = NULL;
    if (!eqr__ok(ctx, 3, x, w, wr)) return NULL;
    if (!norm) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: norm output pointer is NULL", fn);
        return NULL;
    }
    int g[6];
    conv_dims d;
    if (!conv_setup(ctx, fn, x, w, b, geom, g, &d)) return NULL;
    if (!eqr_tensor_same_shape(w, wr)) {
        char s1[EQR_SHAPE_BUF], s2[EQR_SHAPE_BUF];
        eqr__fail(ctx, EQR_ERR_SHAPE, "%s: wr %s must have w's shape %s", fn, EQR_SHAPE(wr, s1),
                  EQR_SHAPE(w, s2));
        return NULL;
    }
    int64_t shape[4] = {d.N, d.O, d.OH, d.OW}, one = 1;
    const size_t wsz = (size_t)d.O * d.CK, ys = (size_t)d.N * d.O * d.P;
    eqr_tensor *y = eqr__tensor_empty(ctx, 4, shape), *s = eqr__tensor_empty(ctx, 1, &one);
    convn_saved *sv = eqr__arena_alloc(ctx, sizeof *sv);
    conv_runs *r = eqr__arena_alloc(ctx, sizeof *r);
    float *rmap = eqr__arena_alloc(ctx, ys * sizeof(float));
    float *wc = eqr__arena_alloc(ctx, 2 * wsz * sizeof(float));
    double *part = eqr__arena_alloc(ctx, (size_t)(d.N ? d.N : 1) * sizeof(double));
    if (!y || !s || !sv || !r || !rmap || !wc || !part || !runs_init(ctx, &d, r)) return NULL;
    memcpy(wc, w->data, wsz * sizeof(float));
    memcpy(wc + wsz, wr->data, wsz * sizeof(float));
    float *wcp = NULL;
    if (d.rowshift && d.N > 0) {
        if (!(wcp = eqr__arena_alloc(ctx, 2 * wsz * sizeof(float)))) return NULL;
        regroup(&d, w->data, wcp, 2 * (size_t)d.O, 0);
        regroup(&d, wr->data, wcp + (size_t)d.O * d.C * d.kw, 2 * (size_t)d.O, 0);
    }
    *sv = (convn_saved){r, rmap, wc, wcp, y, 0.0f, detach_x != 0};
    double acc = 0.0;
    if (d.N > 0) {
        const int chunks = conv_chunks(ctx, d.N);
        const eqr__arena_mark mark = eqr__arena_save(ctx);
        float *cols = NULL, *pads = NULL;
        float *stacks = eqr__arena_alloc(ctx, (size_t)chunks * stack_floats(&d) * sizeof(float));
        if (!stacks) return NULL;
        if (!d.direct && !(cols = eqr__arena_alloc(ctx, (size_t)chunks * col_floats(&d) * sizeof(float))))
            return NULL;
        if (pad_floats(&d) &&
            !(pads = eqr__arena_calloc(ctx, (size_t)chunks * pad_floats(&d) * sizeof(float))))
            return NULL;
        eqr__blas_single(chunks);
        convn_fwd_job job = {&d, r, chunks, x->data, wc, b ? b->data : NULL, y->data, rmap,
                             cols, pads, stacks, part, wcp};
        eqr__parallel(chunks, convn_forward_chunk, &job);
        eqr__scratch_release(ctx, mark);
        for (int n = 0; n < d.N; n++) acc += part[n];
    }
    s->data[0] = (float)acc;
    eqr_tensor *in[4] = {x, w, b, wr};
    eqr_node *n = eqr__record(ctx, y, convn_backward, 4, in);
    if (n) {
        n->saved = sv;
        for (int k = 0; k < 6; k++) n->i[k] = g[k];
        eqr_node *m = eqr__record(ctx, s, convn_norm_backward, 4, in);
        if (m) m->saved = sv;
    }
    *norm = s;
    return ctx->status == EQR_OK ? y : NULL;
}
