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

static inline float sigm(float z) { return 1.0f / (1.0f + expf(-z)); }

static void gate_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *x = n->in[0];
    if (!eqr__needs_grad(x)) return;
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    const gate_layout *L = n->saved;
    const float c1 = (float)EQR_GATE_SILU_NORM, c2 = (float)EQR_GATE_SIGMOID_NORM;
    const int64_t N = x->shape[0];
    const float *gy = n->out->grad;
    for (int64_t r = 0; r < N; r++) {
        const float *xr = x->data + r * L->din, *gr = gy + r * L->dout;
        const float *sr = L->sig + r * (L->ns + L->ng);
        float *dx = gx + r * L->din;
        for (int64_t i = 0; i < L->ns; i++) {
            const float s = xr[i], sg = sr[i];
            dx[i] += c1 * sg * (1.0f + s * (1.0f - sg)) * gr[i];
        }
        const float *v = xr + L->ns + L->ng;
        float *dgate = dx + L->ns, *dv = dx + L->ns + L->ng;
        const float *gv = gr + L->ns;
        int64_t k = 0, off = 0;
        for (int b = 0; b < L->nb; b++)
            for (int64_t u = 0; u < L->mul[b]; u++, k++) {
                const float sg = sr[L->ns + k], g = c2 * sg;
                float dot = 0.0f;
                for (int m = 0; m < L->d[b]; m++, off++) {
                    dot += gv[off] * v[off];
                    dv[off] += g * gv[off];
                }
                dgate[k] += c2 * sg * (1.0f - sg) * dot;
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
    for (int64_t r = 0; r < N; r++) {
        const float *xr = x->data + r * L->din;
        float *yr = y->data + r * L->dout;
        float *sr = L->sig ? L->sig + r * (ns + L->ng) : NULL;
        for (int64_t i = 0; i < ns; i++) {
            const float sg = sigm(xr[i]);
            yr[i] = c1 * xr[i] * sg;
            if (sr) sr[i] = sg;
        }
        const float *gates = xr + ns, *v = xr + ns + L->ng;
        float *yv = yr + ns;
        int64_t k = 0, off = 0;
        for (int b = 0; b < n_blocks; b++)
            for (int64_t u = 0; u < L->mul[b]; u++, k++) {
                const float sg = sigm(gates[k]), g = c2 * sg;
                if (sr) sr[ns + k] = sg;
                for (int m = 0; m < L->d[b]; m++, off++) yv[off] = g * v[off];
            }
    }
    eqr_node *n = eqr__record(ctx, y, gate_backward, 1, &x);
    if (n) n->saved = L;
    return y;
}
