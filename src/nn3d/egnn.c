/* EGNN layer (egnn.h): edge MLP on invariants, coordinate update along the
 * relative positions, node update; optional extra coordinate term (how relaxation attaches).
 *
 * Edges of a batch are enumerated graph by graph, receiver i major, sender
 * j != i minor: edge (b, i, j) has index ((b n + i)(n - 1) + j - [j > i]).
 * The n - 1 edges of a receiver are thus consecutive, so aggregation over
 * senders is a reshape [B n, n - 1, D] and a sum over axis 1. */
#include "core/internal.h"
#include "equirelax/egnn.h"
#include "equirelax/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct egnn_lin {
    eqr_tensor *w, *b;
} egnn_lin;

struct eqr_egnn {
    char name[EQR_NAME_LEN];
    int F, Fo, H, A;
    eqr_egnn_opts o;
    egnn_lin e1, e2, c1, c2, n1, n2, v1, v2;
    eqr_egnn_term_fn term; /* extra coordinate term (relaxation) or NULL */
    void *term_user;
    int term_vel;          /* the term's input includes the velocities */
};

/* ---- internal op: row gather y[k] = x[idx[k]] (rows of width D) ---- */

static void rows_backward(eqr_ctx *ctx, eqr_node *nd) {
    eqr_tensor *x = nd->in[0];
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    const int64_t *idx = nd->saved;
    const int64_t m = nd->i[0], D = nd->i[1];
    const float *gy = nd->out->grad;
    for (int64_t k = 0; k < m; k++) {
        float *dst = gx + idx[k] * D;
        const float *src = gy + k * D;
        for (int64_t c = 0; c < D; c++) dst[c] += src[c];
    }
}

/* x [R, D] (contiguous), idx m entries in [0, R) built by this file. */
static eqr_tensor *rows_gather(eqr_ctx *ctx, eqr_tensor *x, const int64_t *idx, int64_t m) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    const int64_t D = x->shape[1];
    int64_t shape[2] = {m, D};
    eqr_tensor *y = eqr__tensor_empty(ctx, 2, shape);
    if (!y) return NULL;
    for (int64_t k = 0; k < m; k++)
        memcpy(y->data + k * D, x->data + idx[k] * D, (size_t)D * sizeof(float));
    eqr_node *nd = eqr__record(ctx, y, rows_backward, 1, &x);
    if (nd) {
        nd->saved = (void *)(uintptr_t)idx; /* arena, lives until the step reset */
        nd->i[0] = m;
        nd->i[1] = D;
    }
    return y;
}

/* ---- internal op: y = 1 / (sqrt(s) + eps) for s >= 0 ----
 * dy/ds = -y^2 / (2 sqrt(s)); defined as 0 at s = 0 (coincident nodes),
 * where the true slope is infinite. */

static void invnorm_backward(eqr_ctx *ctx, eqr_node *nd) {
    eqr_tensor *s = nd->in[0];
    float *gs = eqr__grad(ctx, s);
    if (!gs) return;
    const float *y = nd->out->data, *gy = nd->out->grad;
    for (int64_t k = 0; k < s->numel; k++) {
        float r = sqrtf(s->data[k]);
        if (r > 0.0f) gs[k] += -gy[k] * y[k] * y[k] / (2.0f * r);
    }
}

static eqr_tensor *inv_norm(eqr_ctx *ctx, eqr_tensor *s, float eps) {
    if (!eqr__ok(ctx, 1, s)) return NULL;
    eqr_tensor *y = eqr__tensor_empty(ctx, s->ndim, s->shape);
    if (!y) return NULL;
    for (int64_t k = 0; k < s->numel; k++) {
        float v = s->data[k];
        y->data[k] = 1.0f / (sqrtf(v > 0.0f ? v : 0.0f) + eps);
    }
    eqr__record(ctx, y, invnorm_backward, 1, &s);
    return y;
}

/* ---- construction ---- */

static const char *const LIN_NAMES[8] = {"edge1", "edge2", "coord1", "coord2",
                                         "node1", "node2", "vel1",  "vel2"};

static eqr_status make_lin(eqr_ctx *ctx, const char *name, const char *part, int out, int in,
                           int bias, egnn_lin *l) {
    char buf[160];
    int64_t sw[2] = {out, in}, sb[1] = {out};
    snprintf(buf, sizeof buf, "%s.%s.weight", name, part);
    l->w = eqr_param_create(ctx, buf, 2, sw, 0);
    if (!l->w) return eqr_error_status(ctx);
    float a = 1.0f / sqrtf((float)in);
    eqr_tensor_uniform(l->w, eqr_ctx_rng(ctx), -a, a);
    l->b = NULL;
    if (!bias) return EQR_OK;
    snprintf(buf, sizeof buf, "%s.%s.bias", name, part);
    l->b = eqr_param_create(ctx, buf, 1, sb, EQR_PARAM_NO_DECAY);
    if (!l->b) return eqr_error_status(ctx);
    eqr_tensor_uniform(l->b, eqr_ctx_rng(ctx), -a, a);
    return EQR_OK;
}

eqr_egnn *eqr_egnn_create(eqr_ctx *ctx, const char *name, int in_features, int out_features,
                          const eqr_egnn_opts *opts) {
    if (!ctx || eqr_error_status(ctx) != EQR_OK) return NULL;
    eqr_egnn_opts o = opts ? *opts : (eqr_egnn_opts){0};
    if (!name || !name[0] || strlen(name) > EQR_NAME_LEN - 16) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_egnn_create: name must be 1..%d characters",
                  EQR_NAME_LEN - 16);
        return NULL;
    }
    if (in_features < 1 || out_features < 1 || o.hidden < 0 || o.edge_attr < 0 ||
        o.norm_eps < 0 || o.coord_range < 0 || o.coord_scale < 0 || !isfinite(o.norm_eps) ||
        !isfinite(o.coord_range) || !isfinite(o.coord_scale)) {
        eqr__fail(ctx, EQR_ERR_ARG,
                  "eqr_egnn_create: %s: need features >= 1 (got in %d, out %d) and "
                  "non-negative finite options (hidden %d, edge_attr %d, norm_eps %g, "
                  "coord_range %g, coord_scale %g)",
                  name, in_features, out_features, o.hidden, o.edge_attr, o.norm_eps,
                  o.coord_range, o.coord_scale);
        return NULL;
    }
    if (!o.no_residual && in_features != out_features) {
        eqr__fail(ctx, EQR_ERR_ARG,
                  "eqr_egnn_create: %s: the residual node update needs in_features == "
                  "out_features (got %d -> %d); set no_residual",
                  name, in_features, out_features);
        return NULL;
    }
    /* every name free before the first registration: no partial layer */
    for (int k = 0; k < 8; k++) {
        if (k >= 6 && !o.velocity) break;
        for (int b = 0; b < 2; b++) {
            char buf[160];
            snprintf(buf, sizeof buf, "%s.%s.%s", name, LIN_NAMES[k], b ? "bias" : "weight");
            if (eqr_param_find(ctx, buf)) {
                eqr__fail(ctx, EQR_ERR_ARG, "eqr_egnn_create: parameter %s already exists", buf);
                return NULL;
            }
        }
    }
    eqr_egnn *l = eqr__calloc(ctx, "eqr_egnn_create", 1, sizeof *l);
    if (!l) return NULL;
    if (o.norm_eps == 0) o.norm_eps = 1e-8f;
    if (o.coord_range == 0) o.coord_range = 1.0f;
    snprintf(l->name, sizeof l->name, "%s", name);
    l->F = in_features;
    l->Fo = out_features;
    l->H = o.hidden > 0 ? o.hidden : (in_features > out_features ? in_features : out_features);
    l->A = o.edge_attr;
    l->o = o;
    const int F = l->F, H = l->H;
    eqr_status st = make_lin(ctx, name, "edge1", H, 2 * F + 1 + l->A, 1, &l->e1);
    if (!st) st = make_lin(ctx, name, "edge2", H, H, 1, &l->e2);
    if (!st) st = make_lin(ctx, name, "coord1", H, H, 1, &l->c1);
    if (!st) st = make_lin(ctx, name, "coord2", 1, H, 0, &l->c2);
    if (!st) st = eqr_param_init_xavier_uniform(ctx, l->c2.w, 0.001f);
    if (!st) st = make_lin(ctx, name, "node1", H, F + H, 1, &l->n1);
    if (!st) st = make_lin(ctx, name, "node2", l->Fo, H, 1, &l->n2);
    if (!st && o.velocity) st = make_lin(ctx, name, "vel1", H, F, 1, &l->v1);
    if (!st && o.velocity) st = make_lin(ctx, name, "vel2", 1, H, 1, &l->v2);
    if (st) {
        free(l);
        return NULL;
    }
    return l;
}

void eqr_egnn_destroy(eqr_egnn *layer) { free(layer); }

void *eqr_egnn_coord_term(const eqr_egnn *layer) { return layer ? layer->term_user : NULL; }
int eqr_egnn_has_velocity(const eqr_egnn *layer) { return layer ? layer->o.velocity != 0 : 0; }
int eqr_egnn_in_features(const eqr_egnn *layer) { return layer ? layer->F : 0; }
int eqr_egnn_out_features(const eqr_egnn *layer) { return layer ? layer->Fo : 0; }
int eqr_egnn_hidden(const eqr_egnn *layer) { return layer ? layer->H : 0; }

eqr_status eqr_egnn_set_coord_term(eqr_ctx *ctx, eqr_egnn *layer, eqr_egnn_term_fn fn,
                                   void *user, int with_velocity) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!layer || !fn)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_egnn_set_coord_term: layer or fn is NULL");
    if (layer->term)
        return eqr__fail(ctx, EQR_ERR_STATE,
                         "eqr_egnn_set_coord_term: layer %s already has a coordinate term "
                         "(already relaxed?)", layer->name);
    if (with_velocity && !layer->o.velocity)
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "eqr_egnn_set_coord_term: layer %s has no velocities for the term",
                         layer->name);
    layer->term = fn;
    layer->term_user = user;
    layer->term_vel = with_velocity != 0;
    return EQR_OK;
}

/* ---- forward ---- */

static eqr_tensor *mlp2(eqr_ctx *ctx, eqr_tensor *x, const egnn_lin *a, const egnn_lin *b,
                        int act_out) {
    eqr_tensor *y = eqr_linear(ctx, eqr_silu(ctx, eqr_linear(ctx, x, a->w, a->b)), b->w, b->b);
    return act_out ? eqr_silu(ctx, y) : y;
}

static int shape_is(const eqr_tensor *t, int ndim, const int64_t *s) {
    if (t->ndim != ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != s[i]) return 0;
    return 1;
}

eqr_status eqr_egnn_forward(eqr_ctx *ctx, eqr_egnn *L, eqr_tensor *h, eqr_tensor *x,
                            eqr_tensor *v, eqr_tensor *edge_attr, eqr_tensor **h_out,
                            eqr_tensor **x_out) {
    if (h_out) *h_out = NULL;
    if (x_out) *x_out = NULL;
    if (!ctx) return EQR_ERR_ARG;
    if (eqr_error_status(ctx) != EQR_OK) return eqr_error_status(ctx);
    if (!L || !h || !x)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_egnn_forward: NULL layer, h or x");
    const int need_v = L->o.velocity || (L->term && L->term_vel);
    char bh[EQR_SHAPE_BUF], bx[EQR_SHAPE_BUF], bv[EQR_SHAPE_BUF], be[EQR_SHAPE_BUF];
    if (h->ndim != 3 || h->shape[2] != L->F || h->shape[1] < 2 || h->shape[0] < 1)
        return eqr__fail(ctx, EQR_ERR_SHAPE,
                         "eqr_egnn_forward: %s: h must be [B, n, %d] with n >= 2, got %s",
                         L->name, L->F, EQR_SHAPE(h, bh));
    const int64_t B = h->shape[0], n = h->shape[1], N = B * n, E = N * (n - 1);
    const int64_t s3[3] = {B, n, 3}, s4[4] = {B, n, n, L->A};
    if (!shape_is(x, 3, s3))
        return eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_egnn_forward: %s: x must be [%lld, %lld, 3] "
                         "for h %s, got %s", L->name, (long long)B, (long long)n,
                         EQR_SHAPE(h, bh), EQR_SHAPE(x, bx));
    if (need_v && (!v || !shape_is(v, 3, s3))) {
        if (!v) snprintf(bv, sizeof bv, "NULL");
        else EQR_SHAPE(v, bv);
        return eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_egnn_forward: %s: velocities v must be "
                         "[%lld, %lld, 3], got %s", L->name, (long long)B, (long long)n, bv);
    }
    if (L->A > 0 && (!edge_attr || !shape_is(edge_attr, 4, s4))) {
        if (!edge_attr) snprintf(be, sizeof be, "NULL");
        else EQR_SHAPE(edge_attr, be);
        return eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_egnn_forward: %s: edge_attr must be "
                         "[%lld, %lld, %lld, %d], got %s", L->name, (long long)B, (long long)n,
                         (long long)n, L->A, be);
    }

    /* edge tables (step arena: they must live until backward) */
    int64_t *src = eqr__arena_alloc(ctx, (size_t)E * sizeof(int64_t) * (L->A > 0 ? 3 : 2));
    if (!src) return eqr_error_status(ctx);
    int64_t *dst = src + E, *eix = src + 2 * E;
    for (int64_t r = 0, e = 0; r < N; r++) {
        int64_t base = r - r % n, i = r % n;
        for (int64_t j = 0; j < n; j++) {
            if (j == i) continue;
            src[e] = r;
            dst[e] = base + j;
            if (L->A > 0) eix[e] = r * n + j;
            e++;
        }
    }

    const int64_t sN3[2] = {N, 3}, sNF[2] = {N, L->F};
    eqr_tensor *xv = eqr_reshape(ctx, x, 2, sN3), *hv = eqr_reshape(ctx, h, 2, sNF);
    eqr_tensor *vv = need_v ? eqr_reshape(ctx, v, 2, sN3) : NULL;
    eqr_tensor *rel = eqr_sub(ctx, rows_gather(ctx, xv, src, E), rows_gather(ctx, xv, dst, E));
    eqr_tensor *d2 = eqr_sum(ctx, eqr_mul(ctx, rel, rel), 1, 1); /* [E, 1] */
    eqr_tensor *parts[4] = {rows_gather(ctx, hv, src, E), rows_gather(ctx, hv, dst, E), d2, NULL};
    if (L->A > 0) {
        const int64_t sA[2] = {N * n, L->A};
        parts[3] = rows_gather(ctx, eqr_reshape(ctx, edge_attr, 2, sA), eix, E);
    }
    eqr_tensor *m = mlp2(ctx, eqr_concat(ctx, parts, L->A > 0 ? 4 : 3, 1), &L->e1, &L->e2, 1);

    if (x_out) {
        eqr_tensor *phi = mlp2(ctx, m, &L->c1, &L->c2, 0); /* [E, 1] */
        if (L->o.tanh) phi = eqr_scale(ctx, eqr_tanh(ctx, phi), L->o.coord_range);
        eqr_tensor *dir = L->o.normalize ? eqr_mul(ctx, rel, inv_norm(ctx, d2, L->o.norm_eps)) : rel;
        const int64_t sAgg[3] = {N, n - 1, 3};
        eqr_tensor *agg = eqr_sum(ctx, eqr_reshape(ctx, eqr_mul(ctx, dir, phi), 3, sAgg), 1, 0);
        float C = L->o.coord_scale > 0 ? L->o.coord_scale : 1.0f / (float)(n - 1);
        eqr_tensor *xo = eqr_add(ctx, xv, eqr_scale(ctx, agg, C));
        if (L->o.velocity) {
            eqr_tensor *s = mlp2(ctx, hv, &L->v1, &L->v2, 0); /* [N, 1] */
            xo = eqr_add(ctx, xo, eqr_mul(ctx, s, vv));
        }
        if (L->term) {
            /* u_i = [x_i - centroid, v_i]: translation invariant. Kept as
             * [B, n, .] so the norm estimator subsamples whole graphs. */
            eqr_tensor *u = eqr_sub(ctx, x, eqr_mean(ctx, x, 1, 1));
            if (L->term_vel) {
                eqr_tensor *uv[2] = {u, v};
                u = eqr_concat(ctx, uv, 2, 2);
            }
            xo = eqr_add(ctx, xo, eqr_reshape(ctx, L->term(ctx, L->term_user, u), 2, sN3));
        }
        *x_out = eqr_reshape(ctx, xo, 3, s3);
    }
    if (h_out) {
        const int64_t sM[3] = {N, n - 1, L->H}, sO[3] = {B, n, L->Fo};
        eqr_tensor *pn[2] = {hv, eqr_sum(ctx, eqr_reshape(ctx, m, 3, sM), 1, 0)};
        eqr_tensor *ho = mlp2(ctx, eqr_concat(ctx, pn, 2, 1), &L->n1, &L->n2, 0);
        if (!L->o.no_residual) ho = eqr_add(ctx, hv, ho);
        *h_out = eqr_reshape(ctx, ho, 3, sO);
    }
    eqr_status st = eqr_error_status(ctx);
    if (st != EQR_OK) {
        if (h_out) *h_out = NULL;
        if (x_out) *x_out = NULL;
    }
    return st;
}
