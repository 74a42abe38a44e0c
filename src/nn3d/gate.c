/* Gate nonlinearity (gate.h): normalised SiLU on scalars, normalised sigmoid
 * gates multiplying the components of each gated irrep copy. One fused pass
 * forward and one backward; the layout is checked once per call. */
#include "core/internal.h"
#include "equirelax/gate.h"

#include <math.h>

typedef struct gate_layout {
    int64_t ns, ng, dg, din, dout;
    int nb;
    int64_t *mul; /* [nb] */
    int *d;       /* [nb] components per copy */
    float *sig;   /* [N, ns + ng]: sigmoid of the scalars and gates, kept from
                     the forward so the backward needs no exp */
} gate_layout;

/* The row loops are written so that the compiler can keep them tight: the
 * sigmoids of a row in one contiguous (vectorised) pass, and each gated block's
 * component count a compile-time constant (D = 1, 3, 5 are the cases that
 * occur: l <= 2). GATE_INLINE copies of the block loops are made per D. */
#define GATE_INLINE static inline __attribute__((always_inline))

/* y[u D + m] = c2 sg[u] v[u D + m] over mul copies of D components */
GATE_INLINE void gated_fwd(int64_t mul, int D, float c2, const float *restrict sg,
                           const float *restrict v, float *restrict y) {
    for (int64_t u = 0; u < mul; u++) {
        const float g = c2 * sg[u];
        for (int m = 0; m < D; m++) y[u * D + m] = g * v[u * D + m];
    }
}

/* dv (+)= c2 sg gv, dgate[u] (+)= c2 sg (1 - sg) <gv, v> over the copies
 * (acc 0: store) */
GATE_INLINE void gated_bwd(int64_t mul, int D, float c2, const float *restrict sg,
                           const float *restrict v, const float *restrict gv,
                           float *restrict dgate, float *restrict dv, int acc) {
    for (int64_t u = 0; u < mul; u++) {
        const float g = c2 * sg[u];
        float dot = 0.0f;
        for (int m = 0; m < D; m++) {
            dot += gv[u * D + m] * v[u * D + m];
            dv[u * D + m] = (acc ? dv[u * D + m] : 0.0f) + g * gv[u * D + m];
        }
        dgate[u] = (acc ? dgate[u] : 0.0f) + g * (1.0f - sg[u]) * dot;
    }
}

static void block_fwd(int64_t mul, int D, float c2, const float *sg, const float *v, float *y) {
    switch (D) {
    case 1: gated_fwd(mul, 1, c2, sg, v, y); break;
    case 3: gated_fwd(mul, 3, c2, sg, v, y); break;
    case 5: gated_fwd(mul, 5, c2, sg, v, y); break;
    default: gated_fwd(mul, D, c2, sg, v, y);
    }
}

static void block_bwd(int64_t mul, int D, float c2, const float *sg, const float *v,
                      const float *gv, float *dgate, float *dv, int acc) {
    switch (D) {
    case 1: gated_bwd(mul, 1, c2, sg, v, gv, dgate, dv, acc); break;
    case 3: gated_bwd(mul, 3, c2, sg, v, gv, dgate, dv, acc); break;
    case 5: gated_bwd(mul, 5, c2, sg, v, gv, dgate, dv, acc); break;
    default: gated_bwd(mul, D, c2, sg, v, gv, dgate, dv, acc);
    }
}

static void gate_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *x = n->in[0];
    if (!eqr__needs_grad(x)) return;
    int acc; /* every entry of gx is stored: scalars, gates and gated parts */
    float *gx = eqr__grad_all(ctx, x, &acc);
    if (!gx) return;
    const gate_layout *L = n->saved;
    const float c1 = (float)EQR_GATE_SILU_NORM, c2 = (float)EQR_GATE_SIGMOID_NORM;
    const int64_t N = x->shape[0], ns = L->ns, ng = L->ng, din = L->din, dout = L->dout;
    const float *gy = n->out->grad;
    for (int64_t r = 0; r < N; r++) {
        const float *restrict xr = x->data + r * din, *restrict gr = gy + r * dout;
        const float *restrict sr = L->sig + r * (ns + ng);
        float *restrict dx = gx + r * din;
        for (int64_t i = 0; i < ns; i++) /* d/ds of c1 s sigmoid(s) */
            dx[i] = (acc ? dx[i] : 0.0f) + c1 * sr[i] * (1.0f + xr[i] * (1.0f - sr[i])) * gr[i];
        int64_t k = 0, off = 0;
        for (int b = 0; b < L->nb; b++) {
            block_bwd(L->mul[b], L->d[b], c2, sr + ns + k, xr + ns + ng + off, gr + ns + off,
                      dx + ns + k, dx + ns + ng + off, acc);
            k += L->mul[b];
            off += L->mul[b] * L->d[b];
        }
    }
}

eqr_tensor *eqr_gate(eqr_ctx *ctx, eqr_tensor *x, int64_t ns, int n_blocks, const int64_t *mul,
                     const int *l) {
    static const char fn[] = "eqr_gate";
    if (!eqr__ok(ctx, 1, x)) return NULL;
    if (ns < 0 || n_blocks < 0 || (n_blocks > 0 && (!mul || !l))) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: bad layout (ns %lld, n_blocks %d, mul/l %s)", fn,
                  (long long)ns, n_blocks, (n_blocks > 0 && (!mul || !l)) ? "NULL" : "given");
        return NULL;
    }
    gate_layout *L = eqr__arena_alloc(ctx, sizeof *L);
    if (!L) return NULL;
    L->ns = ns;
    L->nb = n_blocks;
    L->ng = L->dg = 0;
    L->mul = eqr__arena_alloc(ctx, sizeof(int64_t) * (size_t)(n_blocks + 1));
    L->d = eqr__arena_alloc(ctx, sizeof(int) * (size_t)(n_blocks + 1));
    if (!L->mul || !L->d) return NULL;
    for (int b = 0; b < n_blocks; b++) {
        if (mul[b] < 0 || l[b] < 0 || l[b] > 1000) {
            eqr__fail(ctx, EQR_ERR_ARG, "%s: gated block %d has mul %lld, l %d", fn, b,
                      (long long)mul[b], l[b]);
            return NULL;
        }
        L->mul[b] = mul[b];
        L->d[b] = 2 * l[b] + 1;
        L->ng += mul[b];
        L->dg += mul[b] * L->d[b];
    }
    L->din = ns + L->ng + L->dg;
    L->dout = ns + L->dg;
    if (x->ndim != 2 || x->shape[1] != L->din) {
        char b[EQR_SHAPE_BUF];
        eqr__fail(ctx, EQR_ERR_SHAPE,
                  "%s: x must be [N, %lld] (%lld scalars + %lld gates + %lld gated), got %s", fn,
                  (long long)L->din, (long long)ns, (long long)L->ng, (long long)L->dg,
                  EQR_SHAPE(x, b));
        return NULL;
    }
    const int64_t N = x->shape[0], shape[2] = {N, L->dout};
    eqr_tensor *y = eqr__tensor_empty(ctx, 2, shape);
    if (!y) return NULL;
    const int rec = eqr_grad_enabled(ctx) && eqr__needs_grad(x);
    L->sig = rec ? eqr__arena_alloc(ctx, sizeof(float) * (size_t)(N * (ns + L->ng) + 1)) : NULL;
    if (rec && !L->sig) return NULL;
    const float c1 = (float)EQR_GATE_SILU_NORM, c2 = (float)EQR_GATE_SIGMOID_NORM;
    const int64_t ns_ng = ns + L->ng;
    /* without a recording the row's sigmoids go to a scratch row */
    float *tmp = L->sig ? NULL : eqr__arena_alloc(ctx, sizeof(float) * (size_t)(ns_ng + 1));
    if (!L->sig && !tmp) return NULL;
    for (int64_t r = 0; r < N; r++) {
        const float *restrict xr = x->data + r * L->din;
        float *restrict yr = y->data + r * L->dout;
        float *restrict sr = L->sig ? L->sig + r * ns_ng : tmp;
        eqr__sigmoid_n(xr, sr, ns_ng);
        for (int64_t i = 0; i < ns; i++) yr[i] = c1 * xr[i] * sr[i];
        int64_t k = 0, off = 0;
        for (int b = 0; b < n_blocks; b++) {
            block_fwd(L->mul[b], L->d[b], c2, sr + ns + k, xr + ns_ng + off, yr + ns + off);
            k += L->mul[b];
            off += L->mul[b] * L->d[b];
        }
    }
    eqr_node *n = eqr__record(ctx, y, gate_backward, 1, &x);
    if (n) n->saved = L;
    return y;
}
