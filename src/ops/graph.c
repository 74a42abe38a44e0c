/* Graph ops (graph.h): gather rows by edge index, scatter-sum / mean by
 * destination. Both reductions (scatter forward, gather backward) go through
 * one CSR (edges grouped by index, stable) built per call in the arena, and
 * one row-reduction kernel that sums each node's rows in edge order. */
#include "core/internal.h"
#include "equirelax/graph.h"
#include "equirelax/ops.h"

#include <stdint.h>

/* Edges grouped by node: the edges of node i are order[ptr[i] .. ptr[i+1]),
 * in increasing edge position. */
typedef struct graph_csr {
    int64_t n, e;
    int64_t *ptr;   /* [n + 1] */
    int64_t *order; /* [e] */
    int64_t *idx;   /* [e], the caller's indices (copied) */
} graph_csr;

/* Rows of work per thread below which splitting does not pay. */
#define GRAPH_MIN_PER_THREAD 16384

/* Check idx[0..E) in [0, N), copy it and build the CSR; NULL on error. */
static graph_csr *csr_build(eqr_ctx *ctx, const char *fn, const int64_t *idx, int64_t E,
                            int64_t N) {
    if (E < 0 || N < 0) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: negative edge count %lld or node count %lld", fn,
                  (long long)E, (long long)N);
        return NULL;
    }
    if (E > 0 && !idx) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: idx is NULL", fn);
        return NULL;
    }
    int64_t lo = 0, hi = -1;
    for (int64_t e = 0; e < E; e++) {
        lo = idx[e] < lo ? idx[e] : lo;
        hi = idx[e] > hi ? idx[e] : hi;
    }
    if (lo < 0 || hi >= N) {
        int64_t at = 0;
        while (idx[at] >= 0 && idx[at] < N) at++;
        eqr__fail(ctx, EQR_ERR_ARG, "%s: idx[%lld] = %lld is outside [0, %lld) (node count)",
                  fn, (long long)at, (long long)idx[at], (long long)N);
        return NULL;
    }
    graph_csr *g = eqr__arena_alloc(ctx, sizeof *g);
    if (!g) return NULL;
    g->n = N;
    g->e = E;
    g->ptr = eqr__arena_calloc(ctx, (size_t)(N + 1) * sizeof(int64_t));
    g->order = eqr__arena_alloc(ctx, (size_t)(E > 0 ? E : 1) * sizeof(int64_t));
    g->idx = eqr__arena_alloc(ctx, (size_t)(E > 0 ? E : 1) * sizeof(int64_t));
    if (!g->ptr || !g->order || !g->idx) return NULL;
    if (E > 0) memcpy(g->idx, idx, (size_t)E * sizeof(int64_t));
    for (int64_t e = 0; e < E; e++) g->ptr[idx[e] + 1]++;
    for (int64_t i = 0; i < N; i++) g->ptr[i + 1] += g->ptr[i];
    /* stable placement: a cursor per node, advanced in edge order */
    int64_t *cur = eqr__arena_alloc(ctx, (size_t)(N > 0 ? N : 1) * sizeof(int64_t));
    if (!cur) return NULL;
    if (N > 0) memcpy(cur, g->ptr, (size_t)N * sizeof(int64_t));
    for (int64_t e = 0; e < E; e++) g->order[cur[idx[e]]++] = e;
    return g;
}

/* out[i, :] (+)= scale_i * sum over the node's edges of rows[e, :], with
 * scale_i = 1 or 1 / count (mean; nodes without edges get 0). */
typedef struct reduce_job {
    const graph_csr *g;
    const float *rows;
    float *out;
    int64_t f;
    int mean, accumulate, parts;
} reduce_job;

static void reduce_part(const void *arg, int k) {
    const reduce_job *j = arg;
    const graph_csr *g = j->g;
    const int64_t f = j->f;
    const int64_t i0 = g->n * k / j->parts, i1 = g->n * (k + 1) / j->parts;
    for (int64_t i = i0; i < i1; i++) {
        float *restrict o = j->out + i * f;
        const int64_t b = g->ptr[i], c = g->ptr[i + 1];
        if (!j->accumulate)
            for (int64_t q = 0; q < f; q++) o[q] = 0.0f;
        if (b == c) continue;
        if (j->mean) { /* forward only, never accumulating: sum, then scale */
            for (int64_t p = b; p < c; p++) {
                const float *restrict r = j->rows + g->order[p] * f;
                for (int64_t q = 0; q < f; q++) o[q] += r[q];
            }
            const float s = 1.0f / (float)(c - b);
            for (int64_t q = 0; q < f; q++) o[q] *= s;
        } else {
            for (int64_t p = b; p < c; p++) {
                const float *restrict r = j->rows + g->order[p] * f;
                for (int64_t q = 0; q < f; q++) o[q] += r[q];
            }
        }
    }
}

static int graph_parts(const eqr_ctx *ctx, int64_t n, int64_t work) {
    int t = eqr_ctx_num_threads(ctx);
    while (t > 1 && work < (int64_t)t * GRAPH_MIN_PER_THREAD) t--;
    if (t > n) t = n > 0 ? (int)n : 1;
    return t;
}

static void csr_reduce(const eqr_ctx *ctx, const graph_csr *g, const float *rows, float *out,
                       int64_t f, int mean, int accumulate) {
    reduce_job j = {g, rows, out, f, mean, accumulate,
                    graph_parts(ctx, g->n, (g->e + g->n) * f)};
    eqr__parallel(j.parts, reduce_part, &j);
}

/* out[e, :] (+)= scale(e) * x[idx[e], :]; scale = 1 / count(idx[e]) for mean. */
typedef struct gather_job {
    const graph_csr *g;
    const float *x;
    float *out;
    int64_t f;
    int mean, accumulate, parts;
} gather_job;

static void gather_part(const void *arg, int k) {
    const gather_job *j = arg;
    const graph_csr *g = j->g;
    const int64_t f = j->f;
    const int64_t e0 = g->e * k / j->parts, e1 = g->e * (k + 1) / j->parts;
    for (int64_t e = e0; e < e1; e++) {
        const int64_t i = g->idx[e];
        const float *restrict r = j->x + i * f;
        float *restrict o = j->out + e * f;
        const float s = j->mean ? 1.0f / (float)(g->ptr[i + 1] - g->ptr[i]) : 1.0f;
        if (j->accumulate) {
            if (j->mean)
                for (int64_t q = 0; q < f; q++) o[q] += s * r[q];
            else
                for (int64_t q = 0; q < f; q++) o[q] += r[q];
        } else if (j->mean) {
            for (int64_t q = 0; q < f; q++) o[q] = s * r[q];
        } else {
            memcpy(o, r, (size_t)f * sizeof(float));
        }
    }
}

static void csr_gather(const eqr_ctx *ctx, const graph_csr *g, const float *x, float *out,
                       int64_t f, int mean, int accumulate) {
    gather_job j = {g, x, out, f, mean, accumulate, graph_parts(ctx, g->e, g->e * f)};
    eqr__parallel(j.parts, gather_part, &j);
}

/* Check a 2-D input, return its row width or -1. */
static int64_t rows_of(eqr_ctx *ctx, const char *fn, const char *what, const eqr_tensor *t) {
    if (t->ndim != 2) {
        char b[EQR_SHAPE_BUF];
        eqr__fail(ctx, EQR_ERR_SHAPE, "%s: %s must be 2-D [rows, features], got %s", fn, what,
                  EQR_SHAPE(t, b));
        return -1;
    }
    return t->shape[1];
}

static void gather_rows_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *x = n->in[0];
    if (!eqr__needs_grad(x)) return;
    int acc;
    float *gx = eqr__grad_all(ctx, x, &acc); /* every row: rows without edges get 0 */
    if (!gx) return;
    csr_reduce(ctx, n->saved, n->out->grad, gx, x->shape[1], 0, acc);
}

eqr_tensor *eqr_gather_rows(eqr_ctx *ctx, eqr_tensor *x, const int64_t *idx, int64_t E) {
    static const char fn[] = "eqr_gather_rows";
    if (!eqr__ok(ctx, 1, x)) return NULL;
    const int64_t f = rows_of(ctx, fn, "x", x);
    if (f < 0) return NULL;
    graph_csr *g = csr_build(ctx, fn, idx, E, x->shape[0]);
    if (!g) return NULL;
    const int64_t shape[2] = {E, f};
    eqr_tensor *out = eqr__tensor_empty(ctx, 2, shape);
    if (!out) return NULL;
    csr_gather(ctx, g, x->data, out->data, f, 0, 0);
    eqr_node *n = eqr__record(ctx, out, gather_rows_backward, 1, &x);
    if (n) n->saved = g;
    return out;
}

static void scatter_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *src = n->in[0];
    if (!eqr__needs_grad(src)) return;
    int acc;
    float *gs = eqr__grad_all(ctx, src, &acc); /* every edge row */
    if (!gs) return;
    csr_gather(ctx, n->saved, n->out->grad, gs, src->shape[1], (int)n->i[0], acc);
}

static eqr_tensor *scatter(eqr_ctx *ctx, const char *fn, eqr_tensor *src, const int64_t *idx,
                           int64_t N, int mean) {
    if (!eqr__ok(ctx, 1, src)) return NULL;
    const int64_t f = rows_of(ctx, fn, "src", src);
    if (f < 0) return NULL;
    graph_csr *g = csr_build(ctx, fn, idx, src->shape[0], N);
    if (!g) return NULL;
    const int64_t shape[2] = {N, f};
    eqr_tensor *out = eqr__tensor_empty(ctx, 2, shape);
    if (!out) return NULL;
    csr_reduce(ctx, g, src->data, out->data, f, mean, 0);
    eqr_node *n = eqr__record(ctx, out, scatter_backward, 1, &src);
    if (n) {
        n->saved = g;
        n->i[0] = mean;
    }
    return out;
}

eqr_tensor *eqr_scatter_sum(eqr_ctx *ctx, eqr_tensor *src, const int64_t *idx, int64_t N) {
    return scatter(ctx, "eqr_scatter_sum", src, idx, N, 0);
}

eqr_tensor *eqr_scatter_mean(eqr_ctx *ctx, eqr_tensor *src, const int64_t *idx, int64_t N) {
    return scatter(ctx, "eqr_scatter_mean", src, idx, N, 1);
}
