/* Linear algebra ops on cblas_sgemm: matmul and linear (fully connected). */
#include "core/internal.h"
#include "equirelax/ops.h"

#include <cblas.h>
#include <limits.h>

/* C = alpha op(A) op(B) + beta C (row-major) that also accepts empty
 * dimensions, which BLAS would reject through its leading-dimension checks. */
static void gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                 const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
        if (beta == 0.0f) memset(c, 0, (size_t)(m * n) * sizeof(float));
        return; /* beta == 1: C unchanged */
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)m, (int)n, (int)k, 1.0f, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

/* BLAS takes int sizes. */
static int dims_fit_int(const eqr_tensor *t) {
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] > INT_MAX) return 0;
    return 1;
}

/* ---- matmul: [M,K] x [K,N] ---- */

static void matmul_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *a = n->in[0], *b = n->in[1];
    const float *gy = n->out->grad;
    int64_t M = a->shape[0], K = a->shape[1], N = b->shape[1];
    if (eqr__needs_grad(a)) { /* dA += dY B^T */
        float *ga = eqr__grad(ctx, a);
        if (!ga) return;
        gemm(0, 1, M, K, N, gy, N, b->data, N, 1.0f, ga, K);
    }
    if (eqr__needs_grad(b)) { /* dB += A^T dY */
        float *gb = eqr__grad(ctx, b);
        if (!gb) return;
        gemm(1, 0, K, N, M, a->data, K, gy, N, 1.0f, gb, N);
    }
}

eqr_tensor *eqr_matmul(eqr_ctx *ctx, eqr_tensor *a, eqr_tensor *b) {
    if (!eqr__ok(ctx, 2, a, b)) return NULL;
    char sa[EQR_SHAPE_BUF], sb[EQR_SHAPE_BUF];
    if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != b->shape[0]) {
        eqr__fail(ctx, EQR_ERR_SHAPE,
                  "eqr_matmul: need a [M,K] and b [K,N] with equal K, got a %s and b %s",
                  EQR_SHAPE(a, sa), EQR_SHAPE(b, sb));
        return NULL;
    }
    if (!dims_fit_int(a) || !dims_fit_int(b)) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_matmul: dimensions of a %s or b %s exceed INT_MAX",
                  EQR_SHAPE(a, sa), EQR_SHAPE(b, sb));
        return NULL;
    }
    int64_t M = a->shape[0], K = a->shape[1], N = b->shape[1];
    int64_t shape[2] = {M, N};
    eqr_tensor *y = eqr__tensor_empty(ctx, 2, shape);
    if (!y) return NULL;
    gemm(0, 0, M, N, K, a->data, K, b->data, N, 0.0f, y->data, N);
    eqr_tensor *in[2] = {a, b};
    eqr__record(ctx, y, matmul_backward, 2, in);
    return y;
}

/* ---- linear: y = x W^T + b ---- */

static void linear_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    const float *gy = n->out->grad;
    int64_t N = x->shape[0], in = x->shape[1], out = w->shape[0];
    if (eqr__needs_grad(x)) { /* dX += dY W */
        float *gx = eqr__grad(ctx, x);
        if (!gx) return;
        gemm(0, 0, N, in, out, gy, out, w->data, in, 1.0f, gx, in);
    }
    if (eqr__needs_grad(w)) { /* dW += dY^T X */
        float *gw = eqr__grad(ctx, w);
        if (!gw) return;
        gemm(1, 0, out, in, N, gy, out, x->data, in, 1.0f, gw, in);
    }
    if (eqr__needs_grad(b)) { /* db += column sums of dY */
        float *gb = eqr__grad(ctx, b);
        if (!gb) return;
        for (int64_t r = 0; r < N; r++) {
            const float *row = gy + r * out;
            for (int64_t o = 0; o < out; o++) gb[o] += row[o];
        }
    }
}

eqr_tensor *eqr_linear(eqr_ctx *ctx, eqr_tensor *x, eqr_tensor *w, eqr_tensor *b) {
    if (!eqr__ok(ctx, 2, x, w)) return NULL;
    char sx[EQR_SHAPE_BUF], sw[EQR_SHAPE_BUF], sbias[EQR_SHAPE_BUF];
    if (x->ndim != 2 || w->ndim != 2 || x->shape[1] != w->shape[1]) {
        eqr__fail(ctx, EQR_ERR_SHAPE,
                  "eqr_linear: need x [N,in] and w [out,in] with equal in, got x %s and w %s",
                  EQR_SHAPE(x, sx), EQR_SHAPE(w, sw));
        return NULL;
    }
    int64_t N = x->shape[0], in = x->shape[1], out = w->shape[0];
    if (b && (b->ndim != 1 || b->shape[0] != out)) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_linear: bias must be [%lld] for w %s, got %s",
                  (long long)out, EQR_SHAPE(w, sw), EQR_SHAPE(b, sbias));
        return NULL;
    }
    if (!dims_fit_int(x) || !dims_fit_int(w)) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_linear: dimensions of x %s or w %s exceed INT_MAX",
                  EQR_SHAPE(x, sx), EQR_SHAPE(w, sw));
        return NULL;
    }
    int64_t shape[2] = {N, out};
    eqr_tensor *y = eqr__tensor_empty(ctx, 2, shape);
    if (!y) return NULL;
    float beta = 0.0f;
    if (b) { /* start every row at the bias and let sgemm add x W^T to it */
        for (int64_t r = 0; r < N; r++) memcpy(y->data + r * out, b->data, (size_t)out * sizeof(float));
        beta = 1.0f;
    }
    gemm(0, 1, N, out, in, x->data, in, w->data, in, beta, y->data, out);
    eqr_tensor *inputs[3] = {x, w, b};
    eqr__record(ctx, y, linear_backward, 3, inputs);
    return y;
}
