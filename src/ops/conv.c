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
#include "ops/conv_internal.h"
#include "ops/kernels/conv_kernels.h"

#include <cblas.h>
#include <limits.h>

/* Number of image chunks (= OpenMP threads) for a batch of N. */
int eqr__conv_chunks(const eqr_ctx *ctx, int N) {
    int t = eqr_ctx_num_threads(ctx);
#ifndef _OPENMP
    t = 1;
#endif
    return (t > 1 && N >= t) ? t : 1;
}

conv_chunk eqr__conv_chunk(const conv_dims *d, int chunks, int k, float *cols, float *pads) {
    conv_chunk c;
    c.xs = (size_t)d->C * d->H * d->W;
    c.ys = (size_t)d->O * d->P;
    c.n0 = (int)((int64_t)d->N * k / chunks);
    c.n1 = (int)((int64_t)d->N * (k + 1) / chunks);
    c.col = cols ? cols + (size_t)k * eqr__conv_col_floats(d) : NULL;
    c.pad = pads ? pads + (size_t)k * eqr__conv_pad_floats(d) : NULL;
    return c;
}

void eqr__conv_fill_dims(conv_dims *d, const eqr_tensor *x, const eqr_tensor *w, const int *g) {
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
    d->rowshift = d->sh == 1 && d->sw == 1 && d->kh > 1 && eqr__conv_pad_floats(d) > 0;
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
size_t eqr__conv_col_floats(const conv_dims *d) {
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
    const conv_chunk ch = eqr__conv_chunk(d, j->chunks, k, j->cols, j->pads);
    float *col = ch.col, *pad = ch.pad;
    for (int n = ch.n0; n < ch.n1; n++) {
        const float *xn = j->x + (size_t)n * ch.xs;
        float *yn = j->y + (size_t)n * ch.ys;
        float beta = 0.0f;
        if (j->b) { /* rows start at the bias; sgemm adds W col on top */
            for (int o = 0; o < d->O; o++) {
                float *row = yn + (size_t)o * d->P;
                for (int p = 0; p < d->P; p++) row[p] = j->b[o];
            }
            beta = 1.0f;
        }
        if (d->direct) {
            eqr__conv_sgemm_rm(0, 0, d->O, d->P, d->CK, j->w, d->CK, xn, d->P, beta, yn, d->P);
            continue;
        }
        if (pad) eqr__conv_pad_image(d, xn, pad);
        for (int oh0 = 0; oh0 < d->OH; oh0 += d->TR) { /* Y[:, tile] = W col_tile */
            const int oh1 = oh0 + d->TR < d->OH ? oh0 + d->TR : d->OH, cols = (oh1 - oh0) * d->OW;
            if (d->rowshift) {
                eqr__conv_rs_forward(d, pad, col, oh0, oh1, d->O, j->wp, d->O, beta, yn + (size_t)oh0 * d->OW,
                           d->P);
                continue;
            }
            eqr__conv_im2col_any(d, j->r, xn, pad, col, oh0, oh1);
            eqr__conv_sgemm_rm(0, 0, d->O, cols, d->CK, j->w, d->CK, col, cols, beta, yn + (size_t)oh0 * d->OW,
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
    const conv_chunk ch = eqr__conv_chunk(d, j->chunks, k, j->cols, j->pads);
    float *col = ch.col, *pad = ch.pad;
    const size_t wsz = (size_t)d->O * d->CK;
    float *dw = (j->chunks > 1 || d->rowshift) ? (j->wacc ? j->wacc + (size_t)k * wsz : NULL)
                                               : j->gw;
    float *db = j->chunks > 1 ? (j->bacc ? j->bacc + (size_t)k * d->O : NULL) : j->gb;
    for (int n = ch.n0; n < ch.n1; n++) {
        const float *xn = j->x + (size_t)n * ch.xs;
        const float *dyn = j->gy + (size_t)n * ch.ys;
        if (db) /* db += dY_n 1 (a scalar loop here cost a quarter of col2im) */
            cblas_sgemv(CblasRowMajor, CblasNoTrans, d->O, d->P, 1.0f, dyn, d->P, j->ones, 1,
                        1.0f, db, 1);
        float *gxn = j->gx ? j->gx + (size_t)n * ch.xs : NULL;
        if (d->direct) { /* col_n is x_n itself, dcol is dX_n */
            if (dw) eqr__conv_sgemm_rm(0, 1, d->O, d->CK, d->P, dyn, d->P, xn, d->P, 1.0f, dw, d->CK);
            if (gxn) eqr__conv_sgemm_rm(1, 0, d->CK, d->P, d->O, j->w, d->CK, dyn, d->P, 1.0f, gxn, d->P);
            continue;
        }
        if (dw && pad) eqr__conv_pad_image(d, xn, pad);
        for (int oh0 = 0; oh0 < d->OH; oh0 += d->TR) {
            const int oh1 = oh0 + d->TR < d->OH ? oh0 + d->TR : d->OH, cols = (oh1 - oh0) * d->OW;
            const float *dyt = dyn + (size_t)oh0 * d->OW; /* dY_n[:, tile], row stride P */
            if (d->rowshift) {
                if (dw) eqr__conv_rs_dw(d, pad, col, oh0, oh1, d->O, dyt, d->P, dw, d->O);
                if (gxn) eqr__conv_rs_dx(d, j->r, col, oh0, oh1, d->O, j->wp, d->O, dyt, d->P, gxn);
                continue;
            }
            if (dw) { /* dW [O,CK] += dY_tile col_tile^T */
                eqr__conv_im2col_any(d, j->r, xn, pad, col, oh0, oh1);
                eqr__conv_sgemm_rm(0, 1, d->O, d->CK, cols, dyt, d->P, col, cols, 1.0f, dw, d->CK);
            }
            if (gxn) { /* dcol_tile = W^T dY_tile (col is free now), scattered back */
                eqr__conv_sgemm_rm(1, 0, d->CK, cols, d->O, j->w, d->CK, dyt, d->P, 0.0f, col, cols);
                eqr__conv_col2im_add(d, j->r, col, gxn, oh0, oh1);
            }
        }
    }
}

static void conv_backward(eqr_ctx *ctx, eqr_node *node) {
    eqr_tensor *xt = node->in[0], *wt = node->in[1], *bt = node->in[2];
    int g[6];
    for (int k = 0; k < 6; k++) g[k] = (int)node->i[k];
    conv_dims d;
    eqr__conv_fill_dims(&d, xt, wt, g);
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
    const int chunks = eqr__conv_chunks(ctx, d.N);
    const size_t wsz = (size_t)d.O * d.CK;
    const eqr__arena_mark mark = eqr__arena_save(ctx);
    float *cols = NULL, *wacc = NULL, *bacc = NULL;
    if ((need_w || need_x) && !d.direct && d.N > 0) {
        cols = eqr__arena_alloc(ctx, (size_t)chunks * eqr__conv_col_floats(&d) * sizeof(float));
        if (!cols) return;
    }
    float *pads = NULL, *ones = NULL;
    if (need_b) {
        if (!(ones = eqr__arena_alloc(ctx, (size_t)d.P * sizeof(float)))) return;
        for (int p = 0; p < d.P; p++) ones[p] = 1.0f;
    }
    if (need_w && eqr__conv_pad_floats(&d) && d.N > 0 &&
        !(pads = eqr__arena_calloc(ctx, (size_t)chunks * eqr__conv_pad_floats(&d) * sizeof(float))))
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
                eqr__conv_regroup(&d, gw, (float *)a, (size_t)d.O, 1);
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
int eqr__conv_setup(eqr_ctx *ctx, const char *fn, const eqr_tensor *x, const eqr_tensor *w,
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
    eqr__conv_fill_dims(d, x, w, g);
    /* CK and P are each below 2^31, so their product is exact, but the byte
     * count of the col buffers (per thread) could wrap size_t */
    if (!d->direct && (uint64_t)d->CK * (uint64_t)d->P > SIZE_MAX / 8 / sizeof(float) / 64) {
        eqr__fail(ctx, EQR_ERR_NOMEM, "%s: eqr__conv_im2col buffer of %d x %d floats is too large", fn,
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
    if (!eqr__conv_setup(ctx, "eqr_conv2d", x, w, b, geom, g, &d)) return NULL;
    int64_t shape[4] = {d.N, d.O, d.OH, d.OW};
    eqr_tensor *y = eqr__tensor_empty(ctx, 4, shape);
    if (!y) return NULL;
    conv_runs *r = eqr__arena_alloc(ctx, sizeof *r);
    conv_saved *sv = eqr__arena_alloc(ctx, sizeof *sv);
    if (!r || !sv || !eqr__conv_runs_init(ctx, &d, r)) return NULL;
    float *wp = NULL; /* kept for backward, so allocated before the scratch mark */
    if (d.rowshift && d.N > 0) {
        if (!(wp = eqr__arena_alloc(ctx, (size_t)d.O * d.CK * sizeof(float)))) return NULL;
        eqr__conv_regroup(&d, w->data, wp, (size_t)d.O, 0);
    }
    *sv = (conv_saved){r, wp};
    const int chunks = eqr__conv_chunks(ctx, d.N);
    const eqr__arena_mark mark = eqr__arena_save(ctx);
    float *cols = NULL;
    if (!d.direct && d.N > 0) {
        cols = eqr__arena_alloc(ctx, (size_t)chunks * eqr__conv_col_floats(&d) * sizeof(float));
        if (!cols) return NULL;
    }
    float *pads = NULL;
    if (eqr__conv_pad_floats(&d) && d.N > 0 &&
        !(pads = eqr__arena_calloc(ctx, (size_t)chunks * eqr__conv_pad_floats(&d) * sizeof(float))))
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
