/* Elementwise binary ops with NumPy broadcasting, and the scalar ops. */
#include "core/internal.h"
#include "equirelax/ops.h"

enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV };
static const char *const op_name[] = {"eqr_add", "eqr_sub", "eqr_mul", "eqr_div"};

/* Broadcast geometry over the output. Operand strides are 0 on broadcast
 * dimensions. Size-1 dimensions are dropped and neighbours merged whenever
 * both operands stay linear across them, so e.g. [2,3,4]+[4] walks as
 * [6,4] and equal shapes walk as one flat row. After this, the innermost
 * strides are each 0 or 1. */
typedef struct bcast {
    int nd;
    int64_t shape[EQR_MAX_DIMS];
    int64_t sa[EQR_MAX_DIMS], sb[EQR_MAX_DIMS];
} bcast;

static int64_t dim_at(const eqr_tensor *t, int nd, int i) {
    int k = t->ndim - nd + i; /* right-aligned */
    return k >= 0 ? t->shape[k] : 1;
}

/* Output shape of a (+) b; returns 0 and the failing dimension (negative,
 * counted from the end) when the shapes do not broadcast. */
static int bcast_shape(const eqr_tensor *a, const eqr_tensor *b, int *nd, int64_t *shape,
                       int *bad) {
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < n; i++) {
        int64_t da = dim_at(a, n, i), db = dim_at(b, n, i);
        if (da != db && da != 1 && db != 1) {
            *bad = i - n;
            return 0;
        }
        shape[i] = da == 1 ? db : da;
    }
    *nd = n;
    return 1;
}

static void bcast_geom(const eqr_tensor *a, const eqr_tensor *b, int n, const int64_t *shape,
                       bcast *g) {
    int64_t ra[EQR_MAX_DIMS], rb[EQR_MAX_DIMS], sa = 1, sb = 1;
    for (int i = n - 1; i >= 0; i--) {
        int64_t da = dim_at(a, n, i), db = dim_at(b, n, i);
        ra[i] = da == 1 ? 0 : sa;
        rb[i] = db == 1 ? 0 : sb;
        sa *= da;
        sb *= db;
    }
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (shape[i] == 1) continue;
        if (m > 0 && g->sa[m - 1] == ra[i] * shape[i] && g->sb[m - 1] == rb[i] * shape[i]) {
            g->shape[m - 1] *= shape[i];
            g->sa[m - 1] = ra[i];
            g->sb[m - 1] = rb[i];
        } else {
            g->shape[m] = shape[i];
            g->sa[m] = ra[i];
            g->sb[m] = rb[i];
            m++;
        }
    }
    if (m == 0) { /* every dimension is 1: one element */
        g->shape[0] = 1;
        g->sa[0] = g->sb[0] = 0;
        m = 1;
    }
    g->nd = m;
}

/* Runs ROW once per innermost row of the geometry; ROW sees the row number
 * r, its length len, the operand offsets oa/ob and inner strides ia/ib. The
 * counter walks the outer dimensions, updating offsets incrementally. */
#define BCAST_WALK(g, ROW)                                                          \
    do {                                                                            \
        int d_ = (g)->nd - 1;                                                       \
        int64_t len = (g)->shape[d_], ia = (g)->sa[d_], ib = (g)->sb[d_];           \
        int64_t rows = 1, idx_[EQR_MAX_DIMS] = {0}, oa = 0, ob = 0;                 \
        for (int k_ = 0; k_ < d_; k_++) rows *= (g)->shape[k_];                     \
        for (int64_t r = 0; r < rows; r++) {                                        \
            ROW;                                                                    \
            for (int k_ = d_ - 1; k_ >= 0; k_--) {                                  \
                oa += (g)->sa[k_];                                                  \
                ob += (g)->sb[k_];                                                  \
                if (++idx_[k_] < (g)->shape[k_]) break;                             \
                oa -= (g)->sa[k_] * (g)->shape[k_];                                 \
                ob -= (g)->sb[k_] * (g)->shape[k_];                                 \
                idx_[k_] = 0;                                                       \
            }                                                                       \
        }                                                                           \
    } while (0)

/* One forward row; the stride cases are split so each loop vectorises. */
#define FWD_ROW_CASES(EXPR)                                                         \
    do {                                                                            \
        if (ia && ib) {                                                             \
            for (int64_t i = 0; i < n; i++) { float x = a[i], z = b[i]; y[i] = EXPR; } \
        } else if (ia) {                                                            \
            float z = b[0];                                                         \
            for (int64_t i = 0; i < n; i++) { float x = a[i]; y[i] = EXPR; }        \
        } else if (ib) {                                                            \
            float x = a[0];                                                         \
            for (int64_t i = 0; i < n; i++) { float z = b[i]; y[i] = EXPR; }        \
        } else {                                                                    \
            float x = a[0], z = b[0];                                               \
            for (int64_t i = 0; i < n; i++) y[i] = EXPR;                            \
        }                                                                           \
    } while (0)

static void fwd_row(int op, int64_t n, const float *a, int64_t ia, const float *b, int64_t ib,
                    float *y) {
    switch (op) {
    case OP_ADD: FWD_ROW_CASES(x + z); break;
    case OP_SUB: FWD_ROW_CASES(x - z); break;
    case OP_MUL: FWD_ROW_CASES(x * z); break;
    default: FWD_ROW_CASES(x / z); break;
    }
}

/* Accumulate into dst (stride sd, 0 = reduce the row into dst[0]) the
 * per-element terms TERM (which may use gy[i], a[i*ia], b[i*ib]). */
#define BWD_ACC(dst, sd, TERM)                                                      \
    do {                                                                            \
        if (sd) {                                                                   \
            for (int64_t i = 0; i < n; i++) (dst)[i] += (TERM);                     \
        } else {                                                                    \
            float s_ = 0.0f;                                                        \
            for (int64_t i = 0; i < n; i++) s_ += (TERM);                           \
            (dst)[0] += s_;                                                         \
        }                                                                           \
    } while (0)

/* One backward row. ga and gb may be NULL (no grad) or alias each other
 * (same tensor on both sides): each loop writes one of them and reads only
 * forward data, so accumulating one after the other is exact. */
static void bwd_row(int op, int64_t n, const float *gy, const float *a, float *ga, int64_t ia,
                    const float *b, float *gb, int64_t ib) {
    switch (op) {
    case OP_ADD:
        if (ga) BWD_ACC(ga, ia, gy[i]);
        if (gb) BWD_ACC(gb, ib, gy[i]);
        break;
    case OP_SUB:
        if (ga) BWD_ACC(ga, ia, gy[i]);
        if (gb) BWD_ACC(gb, ib, -gy[i]);
        break;
    case OP_MUL:
        if (ga) BWD_ACC(ga, ia, gy[i] * b[i * ib]);
        if (gb) BWD_ACC(gb, ib, gy[i] * a[i * ia]);
        break;
    default:
        if (ga) BWD_ACC(ga, ia, gy[i] / b[i * ib]);
        if (gb) BWD_ACC(gb, ib, -gy[i] * a[i * ia] / (b[i * ib] * b[i * ib]));
        break;
    }
}

static void binary_backward(eqr_ctx *ctx, eqr_node *nd) {
    int op = (int)nd->i[0];
    eqr_tensor *a = nd->in[0], *b = nd->in[1], *y = nd->out;
    float *ga = NULL, *gb = NULL;
    if (eqr__needs_grad(a) && !(ga = eqr__grad(ctx, a))) return;
    if (eqr__needs_grad(b) && !(gb = eqr__grad(ctx, b))) return;
    const float *gy = y->grad;
    bcast g;
    bcast_geom(a, b, y->ndim, y->shape, &g);
    const float *ad = a->data, *bd = b->data;
    BCAST_WALK(&g, bwd_row(op, len, gy + r * len, ad + oa, ga ? ga + oa : NULL, ia, bd + ob,
                           gb ? gb + ob : NULL, ib));
}

static eqr_tensor *binary(eqr_ctx *ctx, int op, eqr_tensor *a, eqr_tensor *b) {
    if (!eqr__ok_in(ctx, op_name[op], 2, a, b)) return NULL;
    int nd = 0, bad = 0;
    int64_t shape[EQR_MAX_DIMS];
    if (!bcast_shape(a, b, &nd, shape, &bad)) {
        char s1[EQR_SHAPE_BUF], s2[EQR_SHAPE_BUF];
        eqr__fail(ctx, EQR_ERR_SHAPE,
                  "%s: shapes %s and %s do not broadcast (dimension %d: %lld vs %lld)",
                  op_name[op], EQR_SHAPE(a, s1), EQR_SHAPE(b, s2), bad,
                  (long long)a->shape[a->ndim + bad], (long long)b->shape[b->ndim + bad]);
        return NULL;
    }
    eqr_tensor *y = eqr__tensor_empty(ctx, nd, shape);
    if (!y) return NULL;
    if (y->numel > 0) {
        if (a->numel == y->numel && b->numel == y->numel) {
            /* equal element counts after broadcasting = same layout */
            fwd_row(op, y->numel, a->data, 1, b->data, 1, y->data);
        } else {
            bcast g;
            bcast_geom(a, b, nd, shape, &g);
            const float *ad = a->data, *bd = b->data;
            float *yd = y->data;
            BCAST_WALK(&g, fwd_row(op, len, ad + oa, ia, bd + ob, ib, yd + r * len));
        }
    }
    eqr_tensor *in[2] = {a, b};
    eqr_node *n = eqr__record(ctx, y, binary_backward, 2, in);
    if (n) n->i[0] = op;
    return y;
}

eqr_tensor *eqr_add(eqr_ctx *ctx, eqr_tensor *a, eqr_tensor *b) { return binary(ctx, OP_ADD, a, b); }
eqr_tensor *eqr_sub(eqr_ctx *ctx, eqr_tensor *a, eqr_tensor *b) { return binary(ctx, OP_SUB, a, b); }
eqr_tensor *eqr_mul(eqr_ctx *ctx, eqr_tensor *a, eqr_tensor *b) { return binary(ctx, OP_MUL, a, b); }
eqr_tensor *eqr_div(eqr_ctx *ctx, eqr_tensor *a, eqr_tensor *b) { return binary(ctx, OP_DIV, a, b); }

/* ---- scalar ops: y = s x (f[0] = s) and y = x + s ---- */

static void scale_backward(eqr_ctx *ctx, eqr_node *nd) {
    eqr_tensor *x = nd->in[0];
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    const float *gy = nd->out->grad;
    float s = nd->f[0];
    for (int64_t i = 0; i < x->numel; i++) gx[i] += s * gy[i];
}

static eqr_tensor *scalar_op(eqr_ctx *ctx, const char *fn, eqr_tensor *x, float mul,
                             float add) {
    if (!eqr__ok_in(ctx, fn, 1, x)) return NULL;
    eqr_tensor *y = eqr__tensor_empty(ctx, x->ndim, x->shape);
    if (!y) return NULL;
    const float *xd = x->data;
    float *yd = y->data;
    for (int64_t i = 0; i < x->numel; i++) yd[i] = mul * xd[i] + add;
    eqr_node *n = eqr__record(ctx, y, scale_backward, 1, &x);
    if (n) n->f[0] = mul;
    return y;
}

eqr_tensor *eqr_scale(eqr_ctx *ctx, eqr_tensor *x, float s) { return scalar_op(ctx, __func__, x, s, 0.0f); }

eqr_tensor *eqr_add_scalar(eqr_ctx *ctx, eqr_tensor *x, float s) {
    return scalar_op(ctx, __func__, x, 1.0f, s);
}
