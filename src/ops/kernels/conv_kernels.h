/* The conv kernels and drivers shared by the conv op (conv.c) and the
 * stacked norm conv (conv_norm.c): geometry, im2col / col2im, the row-shift
 * GEMMs, GEMM packing and the thread chunking (the design is in conv.c).
 * Not installed. */
#ifndef EQR_CONV_KERNELS_H
#define EQR_CONV_KERNELS_H

#include "core/internal.h"
#include "equirelax/ops.h"

typedef struct conv_dims {
    int N, C, H, W, O, kh, kw, OH, OW;
    int sh, sw, ph, pw, dh, dw;
    int CK, P;   /* rows (C*kh*kw) and columns (OH*OW) of col */
    int TR;      /* output rows per eqr__conv_im2col tile (col holds CK x TR*OW) */
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

/* Kernels (kernels/conv_kernels.c): the valid tap intervals of d; im2col
 * of output rows [oh0, oh1) from x (or from the zero-bordered copy pad);
 * col2im accumulation into gx; weight regrouping for the row-shift path;
 * row-major sgemm; the row-shift forward / dW / dx GEMMs. */
int eqr__conv_runs_init(eqr_ctx *ctx, const conv_dims *d, conv_runs *r);
void eqr__conv_im2col(const conv_dims *d, const conv_runs *r, const float *x, float *col, int oh0,
            int oh1);
void eqr__conv_pad_image(const conv_dims *d, const float *x, float *pad);
void eqr__conv_regroup(const conv_dims *d, float *w, float *wp, size_t rows, int add);
size_t eqr__conv_pad_floats(const conv_dims *d);
void eqr__conv_im2col_any(const conv_dims *d, const conv_runs *r, const float *x, const float *pad,
                float *col, int oh0, int oh1);
void eqr__conv_col2im_add(const conv_dims *d, const conv_runs *r, const float *dcol, float *gx,
                int oh0, int oh1);
void eqr__conv_sgemm_rm(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b,
              int ldb, float beta, float *c, int ldc);
void eqr__conv_rs_forward(const conv_dims *d, const float *pad, float *rc, int oh0, int oh1, int M,
                const float *wp, int srows, float beta, float *y, int ldy);
void eqr__conv_rs_dw(const conv_dims *d, const float *pad, float *rc, int oh0, int oh1, int M,
           const float *dy, int ldy, float *dw, int srows);
void eqr__conv_rs_dx(const conv_dims *d, const conv_runs *r, float *rc, int oh0, int oh1, int M,
           const float *wp, int srows, const float *dy, int ldy, float *gx);

/* Drivers (conv.c): the fixed chunking of a batch over the context's
 * threads (BLAS single-threaded inside: eqr__blas_single), the
 * geometry of a call, col buffer sizes, and argument checks (fn names the
 * public function in messages; 0 with the error recorded). */
int eqr__conv_chunks(const eqr_ctx *ctx, int N);

/* What chunk k of a batch split into chunks works on: images [n0, n1), the
 * floats of one image of x (xs) and of y (ys), and the chunk's own slices of
 * the per-chunk col and pad buffers (NULL where the buffer is NULL). */
typedef struct conv_chunk {
    size_t xs, ys;
    int n0, n1;
    float *col, *pad;
} conv_chunk;
conv_chunk eqr__conv_chunk(const conv_dims *d, int chunks, int k, float *cols, float *pads);
void eqr__conv_fill_dims(conv_dims *d, const eqr_tensor *x, const eqr_tensor *w, const int *g);
size_t eqr__conv_col_floats(const conv_dims *d);
int eqr__conv_setup(eqr_ctx *ctx, const char *fn, const eqr_tensor *x, const eqr_tensor *w,
               const eqr_tensor *b, const eqr_conv2d_geom *geom, int *g, conv_dims *d);

#endif
