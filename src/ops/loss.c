/* Losses with scalar outputs, averaged over the batch / elements. */
#include "core/internal.h"
#include "equirelax/ops.h"

#include <math.h>

/* ---- softmax cross-entropy ----
 * loss = mean_n (lse_n - x[n, y_n]), lse_n = log sum_k exp x[n,k], computed
 * as m + log sum exp(x - m) with m the row max. Backward needs softmax =
 * exp((x - m) - l), l = log sum exp(x - m); saving m and l per row (2N
 * floats) instead of the probabilities (N*K) keeps the saved state small,
 * and keeping them apart keeps full precision when |m| is large. */
typedef struct xent_saved {
    int32_t *labels; /* copy, so the caller's array may go away */
    float *ml;       /* per row: max, log-sum-exp offset */
} xent_saved;

static void xent_backward(eqr_ctx *ctx, eqr_node *nd) {
    eqr_tensor *x = nd->in[0];
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    const xent_saved *sv = nd->saved;
    int64_t N = x->shape[0], K = x->shape[1];
    float g = nd->out->grad[0] / (float)N;
    for (int64_t r = 0; r < N; r++) {
        const float *xr = x->data + r * K;
        float *gr = gx + r * K;
        float m = sv->ml[2 * r], l = sv->ml[2 * r + 1];
        for (int64_t k = 0; k < K; k++) gr[k] += g * expf((xr[k] - m) - l);
        gr[sv->labels[r]] -= g;
    }
}

eqr_tensor *eqr_softmax_cross_entropy(eqr_ctx *ctx, eqr_tensor *logits, const int32_t *labels) {
    static const char op[] = "eqr_softmax_cross_entropy";
    if (!eqr__ok(ctx, 1, logits)) return NULL;
    char s[EQR_SHAPE_BUF];
    if (!labels) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: labels is NULL", op);
        return NULL;
    }
    if (logits->ndim != 2 || logits->shape[0] < 1 || logits->shape[1] < 1) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "%s: logits must be [N,K] with N, K >= 1, got %s", op,
                  EQR_SHAPE(logits, s));
        return NULL;
    }
    int64_t N = logits->shape[0], K = logits->shape[1];
    for (int64_t r = 0; r < N; r++)
        if (labels[r] < 0 || labels[r] >= K) {
            eqr__fail(ctx, EQR_ERR_ARG, "%s: labels[%lld] = %d is out of range [0,%lld) for logits %s",
                      op, (long long)r, (int)labels[r], (long long)K, EQR_SHAPE(logits, s));
            return NULL;
        }
    eqr_tensor *y = eqr__tensor_empty(ctx, 0, NULL);
    float *ml = eqr__arena_alloc(ctx, (size_t)N * 2 * sizeof *ml);
    if (!y || !ml) return NULL;
    double total = 0.0;
    for (int64_t r = 0; r < N; r++) {
        const float *xr = logits->data + r * K;
        float m = xr[0];
        for (int64_t k = 1; k < K; k++) m = xr[k] > m ? xr[k] : m;
        double se = 0.0;
        for (int64_t k = 0; k < K; k++) se += exp((double)xr[k] - m);
        double l = log(se);
        ml[2 * r] = m;
        ml[2 * r + 1] = (float)l;
        total += (m + l) - xr[labels[r]];
    }
    y->data[0] = (float)(total / (double)N);
    eqr_node *nd = eqr__record(ctx, y, xent_backward, 1, &logits);
    if (nd) {
        xent_saved *sv = eqr__arena_alloc(ctx, sizeof *sv);
        int32_t *lab = eqr__arena_alloc(ctx, (size_t)N * sizeof *lab);
        if (!sv || !lab) return NULL;
        memcpy(lab, labels, (size_t)N * sizeof *lab);
        sv->labels = lab;
        sv->ml = ml;
        nd->saved = sv;
    }
    return y;
}

/* ---- mean squared error ---- */

static void mse_backward(eqr_ctx *ctx, eqr_node *nd) {
    eqr_tensor *a = nd->in[0], *b = nd->in[1];
    float *ga = NULL, *gb = NULL;
    if (eqr__needs_grad(a) && !(ga = eqr__grad(ctx, a))) return;
    if (eqr__needs_grad(b) && !(gb = eqr__grad(ctx, b))) return;
    float c = 2.0f * nd->out->grad[0] / (float)a->numel;
    const float *ad = a->data, *bd = b->data;
    /* separate loops: ga and gb alias when a and b are the same tensor */
    if (ga)
        for (int64_t i = 0; i < a->numel; i++) ga[i] += c * (ad[i] - bd[i]);
    if (gb)
        for (int64_t i = 0; i < a->numel; i++) gb[i] -= c * (ad[i] - bd[i]);
}

eqr_tensor *eqr_mse(eqr_ctx *ctx, eqr_tensor *a, eqr_tensor *b) {
    if (!eqr__ok(ctx, 2, a, b)) return NULL;
    char s1[EQR_SHAPE_BUF], s2[EQR_SHAPE_BUF];
    if (!eqr_tensor_same_shape(a, b)) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_mse: shapes %s and %s differ", EQR_SHAPE(a, s1),
                  EQR_SHAPE(b, s2));
        return NULL;
    }
    if (a->numel == 0) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_mse: tensors of shape %s are empty", EQR_SHAPE(a, s1));
        return NULL;
    }
    eqr_tensor *y = eqr__tensor_empty(ctx, 0, NULL);
    if (!y) return NULL;
    double acc = 0.0;
    for (int64_t i = 0; i < a->numel; i++) {
        double d = (double)a->data[i] - b->data[i];
        acc += d * d;
    }
    y->data[0] = (float)(acc / (double)a->numel);
    eqr_tensor *in[2] = {a, b};
    eqr__record(ctx, y, mse_backward, 2, in);
    return y;
}
