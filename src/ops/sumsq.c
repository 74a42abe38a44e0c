/* Sum of squares (ops.h eqr_sumsq), deterministic for any thread count. */
#include "core/internal.h"
#include "equirelax/ops.h"
#include "ops/sumsq_internal.h"

/* sum of squares. The sum runs over fixed blocks of SUMSQ_BLOCK elements,
 * each with 8 independent double partial sums (a single dependent chain of
 * double additions ran at ~3 cycles per element); the block sums are added
 * in block order. Blocks are spread over the context's threads for large
 * inputs, and as the blocking does not depend on the thread count, neither
 * does the result. */
#define SUMSQ_BLOCK (1 << 14)
#define SUMSQ_MIN_PER_THREAD (1 << 18)

typedef struct sumsq_job {
    const float *x;
    float *g;       /* backward: gradient to accumulate into */
    float g2;       /* backward: 2 dL/dy */
    double *part;   /* forward: one sum per block */
    int64_t n, nblocks;
    int parts;
} sumsq_job;

double eqr__sumsq8(const float *restrict x, int64_t n) {
    double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) a[j] += (double)x[i + j] * x[i + j];
    for (; i < n; i++) a[i & 7] += (double)x[i] * x[i];
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

static void sumsq_fwd_part(const void *job, int k) {
    const sumsq_job *j = job;
    const int64_t b0 = j->nblocks * k / j->parts, b1 = j->nblocks * (k + 1) / j->parts;
    for (int64_t b = b0; b < b1; b++) {
        const int64_t i0 = b * SUMSQ_BLOCK, len = j->n - i0 < SUMSQ_BLOCK ? j->n - i0 : SUMSQ_BLOCK;
        j->part[b] = eqr__sumsq8(j->x + i0, len);
    }
}

static void sumsq_bwd_part(const void *job, int k) {
    const sumsq_job *j = job;
    const int64_t i0 = j->n * k / j->parts, i1 = j->n * (k + 1) / j->parts;
    const float *restrict x = j->x;
    float *restrict g = j->g;
    const float g2 = j->g2;
    for (int64_t i = i0; i < i1; i++) g[i] += g2 * x[i];
}

static int sumsq_parts(const eqr_ctx *ctx, int64_t n) {
    int t = eqr_ctx_num_threads(ctx);
    while (t > 1 && n < (int64_t)t * SUMSQ_MIN_PER_THREAD) t--;
    return t;
}

static void sumsq_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *x = n->in[0];
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    sumsq_job j = {x->data, gx, 2.0f * n->out->grad[0], NULL, x->numel, 0,
                   sumsq_parts(ctx, x->numel)};
    eqr__parallel(j.parts, sumsq_bwd_part, &j);
}

eqr_tensor *eqr_sumsq(eqr_ctx *ctx, eqr_tensor *x) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    int64_t one = 1;
    eqr_tensor *y = eqr__tensor_empty(ctx, 1, &one);
    if (!y) return NULL;
    const int64_t nb = (x->numel + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
    double *part = nb ? eqr__arena_alloc(ctx, (size_t)nb * sizeof(double)) : NULL;
    if (nb && !part) return NULL;
    sumsq_job j = {x->data, NULL, 0.0f, part, x->numel, nb, sumsq_parts(ctx, x->numel)};
    if (j.parts > nb) j.parts = nb > 0 ? (int)nb : 1;
    if (nb) eqr__parallel(j.parts, sumsq_fwd_part, &j);
    double acc = 0.0; /* double: activation norms sum many terms */
    for (int64_t b = 0; b < nb; b++) acc += part[b];
    y->data[0] = (float)acc;
    eqr__record(ctx, y, sumsq_backward, 1, &x);
    return y;
}

