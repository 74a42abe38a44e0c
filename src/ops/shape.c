/* Shape ops. reshape and contiguous slices are views that share storage
 * (and, through eqr__grad, gradient) with their root tensor, so they need no
 * tape node; permute, concat, strided slices and gather copy and record one. */
#include "core/internal.h"
#include "equirelax/ops.h"

/* ---- views ---- */

/* A view of x with a new shape, starting off elements into x's storage.
 * base always points at the root storage tensor, with offset relative to it. */
static eqr_tensor *make_view(eqr_ctx *ctx, eqr_tensor *x, int ndim, const int64_t *shape,
                             int64_t numel, int64_t off) {
    eqr_tensor *t = eqr__arena_alloc(ctx, sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    for (int i = 0; i < EQR_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 1;
    t->numel = numel;
    t->data = x->data + off;
    eqr_tensor *root = x;
    int64_t o = off;
    while (root->base) {
        o += root->offset;
        root = root->base;
    }
    t->base = root;
    t->offset = o;
    /* Like any op output, a view made with recording off takes no gradient. */
    if (ctx->grad_enabled) t->flags = x->flags & EQR_T_REQUIRES_GRAD;
    t->node = x->node;
    return t;
}

eqr_tensor *eqr_reshape(eqr_ctx *ctx, eqr_tensor *x, int ndim, const int64_t *shape) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    char bx[EQR_SHAPE_BUF], bs[EQR_SHAPE_BUF];
    if (ndim < 0 || ndim > EQR_MAX_DIMS || (ndim > 0 && !shape)) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_reshape: invalid target (ndim %d, at most %d dims)",
                  ndim, EQR_MAX_DIMS);
        return NULL;
    }
    int64_t s[EQR_MAX_DIMS];
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (shape[i] == -1 && infer < 0) {
            infer = i;
            s[i] = 1;
        } else if (shape[i] < 0) {
            eqr__fail(ctx, EQR_ERR_SHAPE,
                      "eqr_reshape: bad target shape %s for %s (sizes >= 0, at most one -1)",
                      eqr_shape_str(ndim, shape, bs, sizeof bs), EQR_SHAPE(x, bx));
            return NULL;
        }
    }
    int64_t known = eqr_shape_num_elements(ndim, s);
    if (infer >= 0 && known > 0 && x->numel % known == 0) s[infer] = x->numel / known;
    else if (infer >= 0) known = -1; /* cannot infer: reported below */
    if (known < 0 || eqr_shape_num_elements(ndim, s) != x->numel) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_reshape: cannot view %s (%lld elements) as %s",
                  EQR_SHAPE(x, bx), (long long)x->numel,
                  eqr_shape_str(ndim, shape, bs, sizeof bs));
        return NULL;
    }
    return make_view(ctx, x, ndim, s, x->numel, 0);
}

/* ---- permute ---- */

/* Walk the permuted tensor in row-major order: oshape is its shape and
 * istr[i] the stride in the source of its axis i. acc = 0 copies src into
 * dst (dst row-major); acc = 1 adds dst (row-major) into src (the gradient). */
static void permute_walk(int nd, const int64_t *oshape, const int64_t *istr, float *src,
                         float *dst, int acc) {
    int64_t inner = nd ? oshape[nd - 1] : 1, is = nd ? istr[nd - 1] : 1;
    int64_t rows = 1;
    for (int i = 0; i + 1 < nd; i++) rows *= oshape[i];
    int64_t ctr[EQR_MAX_DIMS] = {0};
    int64_t off = 0; /* source offset of the current row */
    for (int64_t r = 0; r < rows; r++) {
        float *d = dst + r * inner;
        const float *sp = src + off;
        if (!acc) {
            if (is == 1) memcpy(d, sp, (size_t)inner * sizeof(float));
            else
                for (int64_t j = 0; j < inner; j++) d[j] = sp[j * is];
        } else {
            float *g = src + off;
            for (int64_t j = 0; j < inner; j++) g[j * is] += d[j];
        }
        /* odometer over the outer output axes */
        for (int i = nd - 2; i >= 0; i--) {
            off += istr[i];
            if (++ctr[i] < oshape[i]) break;
            off -= istr[i] * oshape[i];
            ctr[i] = 0;
        }
    }
}

/* Source strides of each output axis for permutation perm of shape. */
static void perm_strides(int nd, const int64_t *shape, const int64_t *perm, int64_t *istr) {
    int64_t st[EQR_MAX_DIMS], s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        st[d] = s;
        s *= shape[d];
    }
    for (int i = 0; i < nd; i++) istr[i] = st[perm[i]];
}

static void permute_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *x = n->in[0];
    if (!eqr__needs_grad(x)) return;
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    int64_t istr[EQR_MAX_DIMS];
    perm_strides(x->ndim, x->shape, n->i, istr);
    permute_walk(x->ndim, n->out->shape, istr, gx, n->out->grad, 1);
}

eqr_tensor *eqr_permute(eqr_ctx *ctx, eqr_tensor *x, const int *perm) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    char bx[EQR_SHAPE_BUF];
    if (!perm && x->ndim > 0) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_permute: perm is NULL");
        return NULL;
    }
    int nd = x->ndim, seen = 0;
    int64_t p[EQR_MAX_DIMS], os[EQR_MAX_DIMS], istr[EQR_MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        if (perm[i] < 0 || perm[i] >= nd || (seen & (1 << perm[i]))) {
            eqr__fail(ctx, EQR_ERR_ARG,
                      "eqr_permute: perm is not a permutation of 0..%d for %s (entry %d is %d)",
                      nd - 1, EQR_SHAPE(x, bx), i, perm[i]);
            return NULL;
        }
        seen |= 1 << perm[i];
        p[i] = perm[i];
        os[i] = x->shape[perm[i]];
    }
    eqr_tensor *out = eqr__tensor_empty(ctx, nd, os);
    if (!out) return NULL;
    perm_strides(nd, x->shape, p, istr);
    permute_walk(nd, os, istr, x->data, out->data, 0);
    eqr_node *n = eqr__record(ctx, out, permute_backward, 1, &x);
    if (n)
        for (int i = 0; i < nd; i++) n->i[i] = p[i];
    return out;
}

/* ---- concat ---- */

/* i: [0] count, [1] outer size, [2] inner size, [3] axis; saved: inputs. */
static void concat_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor **xs = n->saved;
    int cnt = (int)n->i[0], ax = (int)n->i[3];
    int64_t outer = n->i[1], inner = n->i[2];
    int64_t row = n->out->numel / (outer ? outer : 1);
    const float *gy = n->out->grad;
    int64_t at = 0; /* start of input k's chunk inside each output row */
    for (int k = 0; k < cnt; k++) {
        int64_t chunk = xs[k]->shape[ax] * inner;
        if (eqr__needs_grad(xs[k])) { /* an input given twice adds on its second turn */
            int acc;
            float *g = eqr__grad_all(ctx, xs[k], &acc);
            if (!g) return;
            for (int64_t o = 0; o < outer; o++) {
                const float *src = gy + o * row + at;
                float *dst = g + o * chunk;
                if (acc)
                    for (int64_t j = 0; j < chunk; j++) dst[j] += src[j];
                else
                    memcpy(dst, src, (size_t)chunk * sizeof(float));
            }
        }
        at += chunk;
    }
}

eqr_tensor *eqr_concat(eqr_ctx *ctx, eqr_tensor *const *xs, int n, int axis) {
    if (!eqr__ok(ctx, 0)) return NULL;
    if (!xs || n < 1) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_concat: need at least one tensor (got %d)", xs ? n : 0);
        return NULL;
    }
    for (int k = 0; k < n; k++)
        if (!xs[k]) return NULL; /* an upstream op failed */
    char b0[EQR_SHAPE_BUF], bk[EQR_SHAPE_BUF];
    int nd = xs[0]->ndim, ax = eqr__axis(axis, nd);
    if (ax < 0) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_concat: axis %d out of range for %s", axis,
                  EQR_SHAPE(xs[0], b0));
        return NULL;
    }
    int64_t total = 0;
    for (int k = 0; k < n; k++) {
        int ok = xs[k]->ndim == nd;
        for (int d = 0; ok && d < nd; d++) ok = d == ax || xs[k]->shape[d] == xs[0]->shape[d];
        if (!ok) {
            eqr__fail(ctx, EQR_ERR_SHAPE,
                      "eqr_concat: tensor %d has shape %s, incompatible with tensor 0 %s "
                      "(all dimensions but axis %d must agree)",
                      k, EQR_SHAPE(xs[k], bk), EQR_SHAPE(xs[0], b0), ax);
            return NULL;
        }
        /* each size is below 2^61 (eqr_shape_num_elements), so this cannot overflow */
        total += xs[k]->shape[ax];
        if (total > INT64_MAX / 4) {
            eqr__fail(ctx, EQR_ERR_SHAPE,
                      "eqr_concat: axis %d would have a size of 2^61 or more (at tensor %d, %s)",
                      ax, k, EQR_SHAPE(xs[k], bk));
            return NULL;
        }
    }
    int64_t os[EQR_MAX_DIMS], outer = 1, inner = 1;
    for (int d = 0; d < nd; d++) {
        os[d] = d == ax ? total : xs[0]->shape[d];
        if (d < ax) outer *= os[d];
        if (d > ax) inner *= os[d];
    }
    eqr_tensor *out = eqr__tensor_empty(ctx, nd, os);
    if (!out) return NULL;
    float *dst = out->data;
    for (int64_t o = 0; o < outer; o++)
        for (int k = 0; k < n; k++) {
            int64_t chunk = xs[k]->shape[ax] * inner;
            memcpy(dst, xs[k]->data + o * chunk, (size_t)chunk * sizeof(float));
            dst += chunk;
        }
    /* A node holds at most EQR_NODE_MAX_IN inputs; the full list is saved, so
     * for more inputs record only one that needs grad (to trigger recording). */
    eqr_tensor *const *rec = xs;
    int nrec = n;
    if (n > EQR_NODE_MAX_IN) {
        nrec = 1;
        for (int k = 0; k < n; k++)
            if (eqr__needs_grad(xs[k])) {
                rec = xs + k;
                break;
            }
    }
    eqr_node *node = eqr__record(ctx, out, concat_backward, nrec, rec);
    if (node) {
        eqr_tensor **saved = eqr__arena_alloc(ctx, (size_t)n * sizeof *saved);
        if (!saved) return NULL;
        for (int k = 0; k < n; k++) saved[k] = xs[k];
        node->saved = saved;
        node->i[0] = n;
        node->i[1] = outer;
        node->i[2] = inner;
        node->i[3] = ax;
    }
    return out;
}

/* ---- slice ---- */

/* i: [0] outer, [1] axis size, [2] start, [3] len, [4] inner. */
static void slice_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *x = n->in[0];
    if (!eqr__needs_grad(x)) return;
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    int64_t outer = n->i[0], dim = n->i[1], start = n->i[2], len = n->i[3], inner = n->i[4];
    int64_t chunk = len * inner;
    const float *gy = n->out->grad;
    for (int64_t o = 0; o < outer; o++) {
        float *g = gx + (o * dim + start) * inner;
        const float *s = gy + o * chunk;
        for (int64_t j = 0; j < chunk; j++) g[j] += s[j];
    }
}

eqr_tensor *eqr_slice(eqr_ctx *ctx, eqr_tensor *x, int axis, int64_t start, int64_t len) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    char bx[EQR_SHAPE_BUF];
    int ax = eqr__axis(axis, x->ndim);
    if (ax < 0) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_slice: axis %d out of range for %s", axis,
                  EQR_SHAPE(x, bx));
        return NULL;
    }
    int64_t dim = x->shape[ax];
    if (start < 0 || len < 0 || start > dim - len) {
        eqr__fail(ctx, EQR_ERR_SHAPE,
                  "eqr_slice: range [%lld, %lld) is outside axis %d of %s", (long long)start,
                  (long long)(start + len), ax, EQR_SHAPE(x, bx));
        return NULL;
    }
    int64_t os[EQR_MAX_DIMS], outer = 1, inner = 1;
    for (int d = 0; d < x->ndim; d++) {
        os[d] = d == ax ? len : x->shape[d];
        if (d < ax) outer *= os[d];
        if (d > ax) inner *= os[d];
    }
    if (outer == 1) return make_view(ctx, x, x->ndim, os, len * inner, start * inner);
    eqr_tensor *out = eqr__tensor_empty(ctx, x->ndim, os);
    if (!out) return NULL;
    int64_t chunk = len * inner;
    for (int64_t o = 0; o < outer; o++)
        memcpy(out->data + o * chunk, x->data + (o * dim + start) * inner,
               (size_t)chunk * sizeof(float));
    eqr__record_with(ctx, out, slice_backward, 1, &x, NULL, 5,
                     (const int64_t[]){outer, dim, start, len, inner});
    return out;
}

/* ---- gather ---- */

/* saved: the caller's index array (kept valid by the caller until backward). */
static void gather_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *x = n->in[0];
    if (!eqr__needs_grad(x)) return;
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    const int64_t *idx = n->saved;
    const float *gy = n->out->grad;
    int64_t m = n->out->numel;
    for (int64_t i = 0; i < m; i++) {
        int64_t j = idx[i];
        if (j >= 0) gx[j] += gy[i];
    }
}

eqr_tensor *eqr_gather(eqr_ctx *ctx, eqr_tensor *x, const int64_t *idx, int ndim,
                       const int64_t *shape) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    char bx[EQR_SHAPE_BUF];
    if (!idx) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_gather: idx is NULL");
        return NULL;
    }
    int64_t m = eqr__shape_check(ctx, "eqr_gather", "output shape", ndim, shape);
    if (m < 0) return NULL;
    /* Validate with a branch-free min/max pass so the gather loops need no
     * per-element checks; locate the culprit only on the error path. */
    int64_t lo = 0, hi = -1;
    for (int64_t i = 0; i < m; i++) {
        lo = idx[i] < lo ? idx[i] : lo;
        hi = idx[i] > hi ? idx[i] : hi;
    }
    if (lo < -1 || hi >= x->numel) {
        int64_t at = 0;
        while (idx[at] >= -1 && idx[at] < x->numel) at++;
        eqr__fail(ctx, EQR_ERR_ARG,
                  "eqr_gather: idx[%lld] = %lld is outside [-1, %lld) for input %s",
                  (long long)at, (long long)idx[at], (long long)x->numel, EQR_SHAPE(x, bx));
        return NULL;
    }
    return eqr__gather(ctx, x, idx, ndim, shape);
}

eqr_tensor *eqr__gather(eqr_ctx *ctx, eqr_tensor *x, const int64_t *idx, int ndim,
                        const int64_t *shape) {
    eqr_tensor *out = eqr__tensor_empty(ctx, ndim, shape);
    if (!out) return NULL;
    const int64_t m = out->numel;
    const float *xd = x->data;
    float *o = out->data;
    for (int64_t i = 0; i < m; i++) {
        int64_t j = idx[i];
        o[i] = j >= 0 ? xd[j] : 0.0f;
    }
    eqr_node *n = eqr__record(ctx, out, gather_backward, 1, &x);
    if (n) n->saved = (void *)(uintptr_t)idx; /* read-only in backward */
    return out;
}
