/* The conv with a stacked norm bank (conv_internal.h eqr__conv2d_norm). */
#include "ops/conv_internal.h"
#include "ops/kernels/conv_kernels.h"
#include "ops/sumsq_internal.h"

#include <cblas.h>
#include <math.h>

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
    eqr__conv_im2col_any(d, r, xn, pad, col, oh0, oh1);
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
    const conv_chunk ch = eqr__conv_chunk(d, j->chunks, k, j->cols, j->pads);
    float *col = ch.col, *pad = ch.pad;
    float *t = j->stacks + (size_t)k * stack_floats(d);
    for (int n = ch.n0; n < ch.n1; n++) {
        const float *xn = j->x + (size_t)n * ch.xs;
        float *yn = j->y + (size_t)n * ch.ys, *rn = j->rmap + (size_t)n * ch.ys;
        if (pad) eqr__conv_pad_image(d, xn, pad);
        for (int oh0 = 0; oh0 < d->OH; oh0 += d->TR) {
            const int oh1 = oh0 + d->TR < d->OH ? oh0 + d->TR : d->OH, cols = (oh1 - oh0) * d->OW;
            if (d->rowshift) { /* as the plain conv, with M = 2O */
                eqr__conv_rs_forward(d, pad, col, oh0, oh1, 2 * d->O, j->wcp, 2 * d->O, 0.0f, t, cols);
            } else {
                int ld;
                const float *c = tile_col(d, j->r, xn, pad, col, oh0, oh1, &ld);
                eqr__conv_sgemm_rm(0, 0, 2 * d->O, cols, d->CK, j->wc, d->CK, c, ld, 0.0f, t, cols);
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
        j->part[n] = eqr__sumsq8(rn, (int64_t)ch.ys);
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
    const conv_chunk ch = eqr__conv_chunk(d, j->chunks, k, j->cols, j->pads);
    float *col = ch.col, *pad = ch.pad;
    float *st = j->stacks + (size_t)k * stack_floats(d);
    float *dw = j->need_w ? j->wacc + (size_t)k * 2 * d->O * d->CK : NULL;
    float *db = j->chunks > 1 ? (j->bacc ? j->bacc + (size_t)k * d->O : NULL) : j->gb;
    for (int n = ch.n0; n < ch.n1; n++) {
        const float *xn = j->x + (size_t)n * ch.xs;
        const float *dyn = j->gy + (size_t)n * ch.ys, *rn = j->rmap + (size_t)n * ch.ys;
        if (db)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, d->O, d->P, 1.0f, dyn, d->P, j->ones, 1,
                        1.0f, db, 1);
        float *gxn = j->gx ? j->gx + (size_t)n * ch.xs : NULL;
        if (dw && pad) eqr__conv_pad_image(d, xn, pad);
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
                if (dw) eqr__conv_rs_dw(d, pad, col, oh0, oh1, m, sm, lds, dw, 2 * d->O);
                /* detached norm: dx from dY alone, the first O rows of each slab */
                if (gxn && j->detach_x)
                    eqr__conv_rs_dx(d, j->r, col, oh0, oh1, d->O, j->wcp, 2 * d->O, dyn + off, d->P, gxn);
                else if (gxn)
                    eqr__conv_rs_dx(d, j->r, col, oh0, oh1, m, j->wcp, 2 * d->O, sm, lds, gxn);
                continue;
            }
            if (j->two_ds == 0.0f) {
                /* no gradient through the norm (unused, lambda 0, or W_r = 0
                 * under the safe sqrt): the plain conv's GEMMs, half the work */
                if (dw) {
                    int ld;
                    const float *c = tile_col(d, j->r, xn, pad, col, oh0, oh1, &ld);
                    eqr__conv_sgemm_rm(0, 1, d->O, d->CK, cols, dyn + off, d->P, c, ld, 1.0f, dw, d->CK);
                }
                if (gxn && d->direct) {
                    eqr__conv_sgemm_rm(1, 0, d->CK, cols, d->O, j->wc, d->CK, dyn + off, d->P, 1.0f,
                             gxn + off, d->P);
                } else if (gxn) {
                    eqr__conv_sgemm_rm(1, 0, d->CK, cols, d->O, j->wc, d->CK, dyn + off, d->P, 0.0f, col,
                             cols);
                    eqr__conv_col2im_add(d, j->r, col, gxn, oh0, oh1);
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
                eqr__conv_sgemm_rm(0, 1, 2 * d->O, d->CK, cols, st, cols, c, ld, 1.0f, dw, d->CK);
            }
            if (gxn) {
                /* detached norm: dcol = w^T dY (w's O rows of Wc), else Wc^T S */
                const int m = j->detach_x ? d->O : 2 * d->O;
                const float *sm = j->detach_x ? dyn + off : st;
                const int lds = j->detach_x ? d->P : cols;
                if (d->direct) {
                    eqr__conv_sgemm_rm(1, 0, d->CK, cols, m, j->wc, d->CK, sm, lds, 1.0f, gxn + off, d->P);
                } else {
                    eqr__conv_sgemm_rm(1, 0, d->CK, cols, m, j->wc, d->CK, sm, lds, 0.0f, col, cols);
                    eqr__conv_col2im_add(d, j->r, col, gxn, oh0, oh1);
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
    eqr__conv_fill_dims(&d, xt, wt, g);
    const float *gy = node->out->grad;
    const int need_x = eqr__needs_grad(xt), need_w = eqr__needs_grad(wt);
    const int need_b = eqr__needs_grad(bt), need_wr = eqr__needs_grad(wrt);
    float *gx = NULL, *gw = NULL, *gb = NULL, *gwr = NULL;
    if (need_x && !(gx = eqr__grad(ctx, xt))) return;
    if (need_w && !(gw = eqr__grad(ctx, wt))) return;
    if (need_b && !(gb = eqr__grad(ctx, bt))) return;
    if (need_wr && !(gwr = eqr__grad(ctx, wrt))) return;
    if (d.N == 0) return;
    const int chunks = eqr__conv_chunks(ctx, d.N), any_w = need_w || need_wr;
    const size_t wsz = (size_t)d.O * d.CK;
    const eqr__arena_mark mark = eqr__arena_save(ctx);
    float *cols = NULL, *pads = NULL, *ones = NULL, *wacc = NULL, *bacc = NULL;
    float *stacks = eqr__arena_alloc(ctx, (size_t)chunks * stack_floats(&d) * sizeof(float));
    if (!stacks) return;
    if ((any_w || need_x) && !d.direct &&
        !(cols = eqr__arena_alloc(ctx, (size_t)chunks * eqr__conv_col_floats(&d) * sizeof(float))))
        return;
    if (any_w && eqr__conv_pad_floats(&d) &&
        !(pads = eqr__arena_calloc(ctx, (size_t)chunks * eqr__conv_pad_floats(&d) * sizeof(float))))
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
            if (gw) eqr__conv_regroup(&d, gw, a, 2 * (size_t)d.O, 1);
            if (gwr) eqr__conv_regroup(&d, gwr, a + (size_t)d.O * d.C * d.kw, 2 * (size_t)d.O, 1);
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
    if (!eqr__conv_setup(ctx, fn, x, w, b, geom, g, &d)) return NULL;
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
    if (!y || !s || !sv || !r || !rmap || !wc || !part || !eqr__conv_runs_init(ctx, &d, r)) return NULL;
    memcpy(wc, w->data, wsz * sizeof(float));
    memcpy(wc + wsz, wr->data, wsz * sizeof(float));
    float *wcp = NULL;
    if (d.rowshift && d.N > 0) {
        if (!(wcp = eqr__arena_alloc(ctx, 2 * wsz * sizeof(float)))) return NULL;
        eqr__conv_regroup(&d, w->data, wcp, 2 * (size_t)d.O, 0);
        eqr__conv_regroup(&d, wr->data, wcp + (size_t)d.O * d.C * d.kw, 2 * (size_t)d.O, 0);
    }
    *sv = (convn_saved){r, rmap, wc, wcp, y, 0.0f, detach_x != 0};
    double acc = 0.0;
    if (d.N > 0) {
        const int chunks = eqr__conv_chunks(ctx, d.N);
        const eqr__arena_mark mark = eqr__arena_save(ctx);
        float *cols = NULL, *pads = NULL;
        float *stacks = eqr__arena_alloc(ctx, (size_t)chunks * stack_floats(&d) * sizeof(float));
        if (!stacks) return NULL;
        if (!d.direct && !(cols = eqr__arena_alloc(ctx, (size_t)chunks * eqr__conv_col_floats(&d) * sizeof(float))))
            return NULL;
        if (eqr__conv_pad_floats(&d) &&
            !(pads = eqr__arena_calloc(ctx, (size_t)chunks * eqr__conv_pad_floats(&d) * sizeof(float))))
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
