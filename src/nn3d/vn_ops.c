/* Vector-neuron kernels (vn_internal.h): channel mix, vector norms, the
 * blockwise Lie derivative; and the shape / name checks of the VN layers. */
#include "nn3d/vn_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>

/* C = op(A) op(B) + beta C, row-major; empty sizes are no-ops (BLAS would
 * reject their leading dimensions). */
static void gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                 const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
        if (beta == 0.0f) memset(c, 0, (size_t)(m * n) * sizeof(float));
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)m, (int)n, (int)k, 1.0f, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

/* ---------------------------------------------------------- channel mix */

static void mix_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *w = n->in[0], *x = n->in[1];
    const float *gy = n->out->grad;
    int64_t N = x->shape[0], B = x->shape[1], Q = x->shape[2], A = w->shape[0];
    if (eqr__needs_grad(w)) { /* dW += sum_n dY_n X_n^T */
        float *gw = eqr__grad(ctx, w);
        if (!gw) return;
        for (int64_t i = 0; i < N; i++)
            gemm(0, 1, A, B, Q, gy + i * A * Q, Q, x->data + i * B * Q, Q, 1.0f, gw, B);
    }
    if (eqr__needs_grad(x)) { /* dX_n += W^T dY_n */
        float *gx = eqr__grad(ctx, x);
        if (!gx) return;
        for (int64_t i = 0; i < N; i++)
            gemm(1, 0, B, Q, A, w->data, B, gy + i * A * Q, Q, 1.0f, gx + i * B * Q, Q);
    }
}

eqr_tensor *eqr__vn_mix(eqr_ctx *ctx, eqr_tensor *w, eqr_tensor *x) {
    if (!eqr__ok(ctx, 2, w, x)) return NULL;
    if (w->ndim != 2 || x->ndim != 3 || x->shape[1] != w->shape[1] ||
        w->shape[0] > (1 << 30) || w->shape[1] > (1 << 30) || x->shape[2] > (1 << 30)) {
        char bw[EQR_SHAPE_BUF], bx[EQR_SHAPE_BUF];
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr__vn_mix: w %s and x %s do not fit ([A,B], [N,B,Q])",
                  EQR_SHAPE(w, bw), EQR_SHAPE(x, bx));
        return NULL;
    }
    int64_t N = x->shape[0], B = x->shape[1], Q = x->shape[2], A = w->shape[0];
    int64_t s[3] = {N, A, Q};
    eqr_tensor *y = eqr__tensor_empty(ctx, 3, s);
    if (!y) return NULL;
    for (int64_t i = 0; i < N; i++)
        gemm(0, 0, A, Q, B, w->data, B, x->data + i * B * Q, Q, 0.0f, y->data + i * A * Q, Q);
    eqr_tensor *in[2] = {w, x};
    eqr__record(ctx, y, mix_backward, 2, in);
    return y;
}

/* -------------------------------------------------------- vector norms */

static void norm_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *x = n->in[0], *y = n->out;
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    int64_t NC = x->shape[0] * x->shape[1], P = x->shape[3];
    for (int64_t r = 0; r < NC; r++) {
        const float *xr = x->data + r * 3 * P, *yr = y->data + r * P, *gr = y->grad + r * P;
        float *g = gx + r * 3 * P;
        for (int i = 0; i < 3; i++)
            for (int64_t p = 0; p < P; p++)
                if (yr[p] > 0.0f) g[i * P + p] += gr[p] * xr[i * P + p] / yr[p];
    }
}

eqr_tensor *eqr__vn_norm(eqr_ctx *ctx, eqr_tensor *x, float eps) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    if (x->ndim != 4 || x->shape[2] != 3) {
        char b[EQR_SHAPE_BUF];
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr__vn_norm: x %s is not [N,C,3,P]", EQR_SHAPE(x, b));
        return NULL;
    }
    int64_t NC = x->shape[0] * x->shape[1], P = x->shape[3];
    int64_t s[3] = {x->shape[0], x->shape[1], P};
    eqr_tensor *y = eqr__tensor_empty(ctx, 3, s);
    if (!y) return NULL;
    for (int64_t r = 0; r < NC; r++) {
        const float *x0 = x->data + r * 3 * P, *x1 = x0 + P, *x2 = x1 + P;
        float *yr = y->data + r * P;
        for (int64_t p = 0; p < P; p++)
            yr[p] = sqrtf(x0[p] * x0[p] + x1[p] * x1[p] + x2[p] * x2[p] + eps);
    }
    eqr__record(ctx, y, norm_backward, 1, &x);
    return y;
}

/* ------------------------------------------------- blockwise Lie derivative */

/* D_a[block] = B L_a - L_a B (sign +1), or its adjoint G L_a^T - L_a^T G
 * accumulated (transposed generators), for every 3x3 block. */
static void lie_blocks_apply(const float *w, int64_t A, int64_t B, int adjoint, float *d) {
    float L[27];
    eqr_so3_generators(L);
    int64_t cols = 3 * B, plane = 3 * A * cols;
    for (int a = 0; a < 3; a++) {
        float M[9];
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) M[3 * i + j] = adjoint ? L[9 * a + 3 * j + i] : L[9 * a + 3 * i + j];
        for (int64_t o = 0; o < A; o++)
            for (int64_t c = 0; c < B; c++) {
                /* adjoint: input is plane a of the gradient, output the w gradient */
                const float *src = adjoint ? w + a * plane : w;
                float *dst = adjoint ? d : d + a * plane;
                float blk[9], res[9];
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++) blk[3 * i + j] = src[(3 * o + i) * cols + 3 * c + j];
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++) {
                        float s = 0.0f;
                        for (int k = 0; k < 3; k++) s += blk[3 * i + k] * M[3 * k + j] - M[3 * i + k] * blk[3 * k + j];
                        res[3 * i + j] = s;
                    }
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++) {
                        float *t = &dst[(3 * o + i) * cols + 3 * c + j];
                        *t = adjoint ? *t + res[3 * i + j] : res[3 * i + j];
                    }
            }
    }
}

static void lie_blocks_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *w = n->in[0];
    float *gw = eqr__grad(ctx, w);
    if (!gw) return;
    lie_blocks_apply(n->out->grad, w->shape[0] / 3, w->shape[1] / 3, 1, gw);
}

eqr_tensor *eqr__vn_lie_blocks(eqr_ctx *ctx, eqr_tensor *w) {
    if (!eqr__ok(ctx, 1, w)) return NULL;
    if (w->ndim != 2 || w->shape[0] % 3 || w->shape[1] % 3) {
        char b[EQR_SHAPE_BUF];
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr__vn_lie_blocks: w %s is not [3A,3B]", EQR_SHAPE(w, b));
        return NULL;
    }
    int64_t s[3] = {3, w->shape[0], w->shape[1]};
    eqr_tensor *d = eqr__tensor_empty(ctx, 3, s);
    if (!d) return NULL;
    lie_blocks_apply(w->data, w->shape[0] / 3, w->shape[1] / 3, 0, d->data);
    eqr__record(ctx, d, lie_blocks_backward, 1, &w);
    return d;
}

/* --------------------------------------------------------------- checks */

eqr_tensor *eqr__vn_view4(eqr_ctx *ctx, const char *fn, eqr_tensor *x, int channels) {
    if ((x->ndim == 4 || x->ndim == 3) && x->shape[1] == channels && x->shape[2] == 3) {
        if (x->ndim == 4) return x;
        int64_t s[4] = {x->shape[0], channels, 3, 1};
        return eqr_reshape(ctx, x, 4, s);
    }
    char b[EQR_SHAPE_BUF];
    eqr__fail(ctx, EQR_ERR_SHAPE, "%s: x %s must be [N, %d, 3, P] or [N, %d, 3] (vector features)",
              fn, EQR_SHAPE(x, b), channels, channels);
    return NULL;
}

eqr_tensor *eqr__vn_unview(eqr_ctx *ctx, eqr_tensor *y4, const eqr_tensor *x) {
    if (!y4 || x->ndim == 4) return y4;
    int64_t s[3] = {y4->shape[0], y4->shape[1], 3};
    return eqr_reshape(ctx, y4, 3, s);
}

int eqr__vn_forward_ok(eqr_ctx *ctx, const char *fn, const void *layer, const eqr_tensor *x) {
    if (!eqr__ok_in(ctx, fn, 1, x)) return 0;
    if (!layer) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: layer is NULL", fn);
        return 0;
    }
    return 1;
}

int eqr__vn_create_ok(eqr_ctx *ctx, const char *fn, const char *name, int n,
                      const int *channels, int nsuffix, const char *const *suffixes) {
    if (!ctx || ctx->status != EQR_OK) return 0;
    for (int i = 0; i < n; i++)
        if (channels[i] < 1 || channels[i] > (1 << 24)) {
            eqr__fail(ctx, EQR_ERR_ARG, "%s: channel count %d out of range (1 .. 2^24)", fn,
                      channels[i]);
            return 0;
        }
    size_t longest = 0;
    int li = 0;
    for (int i = 0; i < nsuffix; i++)
        if (strlen(suffixes[i]) > longest) longest = strlen(suffixes[i]), li = i;
    if (!eqr__layer_name_ok(ctx, fn, name, nsuffix ? suffixes[li] : "")) return 0;
    return eqr__param_names_free(ctx, fn, name, nsuffix, suffixes);
}

