/* SEGNN layers and the N-body model (segnn.h), composed of the tensor
 * product, gate and graph ops; the graph features are computed as data in
 * the step arena. */
#include "core/internal.h"
#include "equirelax/gate.h"
#include "equirelax/graph.h"
#include "equirelax/irreps_nn.h"
#include "equirelax/ops.h"
#include "equirelax/segnn.h"
#include "equirelax/tensor_product.h"

#include <math.h>
#include <stdlib.h>

/* A gated tensor product: TP to [ns + ng scalars | gated], then the gate. */
typedef struct gtp {
    eqr_tp *tp;
    int64_t ns;
    int nb;                           /* gated blocks */
    int64_t mul[EQR_IRREPS_MAX];
    int l[EQR_IRREPS_MAX];
} gtp;

/* out = its leading 0e entries (the scalars), then entries of l > 0. */
static eqr_status split_hidden(eqr_ctx *ctx, const char *fn, const eqr_irreps *out, int64_t *ns,
                               int *first_gated) {
    int i = 0;
    *ns = 0;
    while (i < out->n && out->e[i].l == 0 && out->e[i].p == 1) *ns += out->e[i++].mul;
    *first_gated = i;
    for (int k = i; k < out->n; k++)
        if (out->e[k].l == 0)
            return eqr__fail(ctx, EQR_ERR_ARG, "%s: irreps entry %d (0%c) after the gated ones: "
                             "list the 0e scalars first, then entries of l > 0", fn, k,
                             out->e[k].p == 1 ? 'e' : 'o');
    if (!*ns) return eqr__fail(ctx, EQR_ERR_ARG, "%s: the irreps need a leading 0e entry", fn);
    return EQR_OK;
}

static eqr_status gtp_create(eqr_ctx *ctx, const char *name, const eqr_irreps *in1,
                             const eqr_irreps *in2, const eqr_irreps *out, gtp *g) {
    int fg;
    if (split_hidden(ctx, "eqr_segnn", out, &g->ns, &fg)) return ctx->status;
    eqr_irreps t = {.n = 1};
    int64_t ng = 0;
    g->nb = 0;
    for (int k = fg; k < out->n; k++) {
        t.e[t.n++] = out->e[k];
        g->mul[g->nb] = out->e[k].mul;
        g->l[g->nb++] = out->e[k].l;
        ng += out->e[k].mul;
    }
    t.e[0] = (eqr_irrep_entry){(int)(g->ns + ng), 0, 1};
    if (eqr_tp_create(ctx, name, in1, in2, &t, 1, &g->tp)) return ctx->status;
    return eqr_tp_add_bias(ctx, g->tp, name);
}

static eqr_tensor *gtp_forward(eqr_ctx *ctx, const gtp *g, eqr_tensor *x1, eqr_tensor *x2) {
    eqr_tensor *y = eqr_tp_forward(ctx, g->tp, x1, x2, NULL);
    return y ? eqr_gate(ctx, y, g->ns, g->nb, g->mul, g->l) : NULL;
}

/* a + b as irreps (entries concatenated, not simplified: the flat layout
 * of concat([x_a, x_b])). */
static eqr_status irreps_cat(eqr_ctx *ctx, const eqr_irreps *a, const eqr_irreps *b,
                             eqr_irreps *out) {
    if (a->n + b->n > EQR_IRREPS_MAX)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_segnn: %d + %d irreps entries exceed %d", a->n,
                         b->n, EQR_IRREPS_MAX);
    eqr_irreps r = *a;
    for (int i = 0; i < b->n; i++) r.e[r.n++] = b->e[i];
    *out = r;
    return EQR_OK;
}

/* ------------------------------------------------------------- a layer */

struct eqr_segnn_layer {
    eqr_irreps hidden, attr;
    int add;
    gtp msg1, msg2, upd1;
    eqr_tp *upd2;
    eqr_segnn_term_fn term[2];
    void *user[2];
};

void eqr_segnn_layer_destroy(eqr_segnn_layer *L) {
    if (!L) return;
    eqr_tp_destroy(L->msg1.tp);
    eqr_tp_destroy(L->msg2.tp);
    eqr_tp_destroy(L->upd1.tp);
    eqr_tp_destroy(L->upd2);
    free(L);
}

eqr_segnn_layer *eqr_segnn_layer_create(eqr_ctx *ctx, const char *name, const eqr_irreps *hidden,
                                        const eqr_irreps *attr, int add) {
    static const char fn[] = "eqr_segnn_layer_create";
    if (!ctx || ctx->status != EQR_OK) return NULL;
    if (!name || !hidden || !attr) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: NULL argument", fn);
        return NULL;
    }
    if (add < 0) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: add = %d edge scalars must be >= 0", fn, add);
        return NULL;
    }
    int64_t ns;
    int fg;
    if (split_hidden(ctx, fn, hidden, &ns, &fg)) return NULL;
    eqr_segnn_layer *L = eqr__calloc(ctx, fn, 1, sizeof *L);
    if (!L) return NULL;
    L->hidden = *hidden, L->attr = *attr, L->add = add;
    eqr_irreps hh, msg_in, extra = {.n = add ? 1 : 0, .e = {{add, 0, 1}}};
    char nm[EQR_NAME_LEN];
    int bad = irreps_cat(ctx, hidden, hidden, &hh) || irreps_cat(ctx, &hh, &extra, &msg_in);
    /* creation order = parameter order = the peer's */
    snprintf(nm, sizeof nm, "%s.msg1", name);
    bad = bad || gtp_create(ctx, nm, &msg_in, attr, hidden, &L->msg1);
    snprintf(nm, sizeof nm, "%s.msg2", name);
    bad = bad || gtp_create(ctx, nm, hidden, attr, hidden, &L->msg2);
    snprintf(nm, sizeof nm, "%s.upd1", name);
    bad = bad || gtp_create(ctx, nm, &hh, attr, hidden, &L->upd1);
    snprintf(nm, sizeof nm, "%s.upd2", name);
    bad = bad || eqr_tp_create(ctx, nm, hidden, attr, hidden, 1, &L->upd2) ||
          eqr_tp_add_bias(ctx, L->upd2, nm);
    if (bad) {
        eqr_segnn_layer_destroy(L);
        return NULL;
    }
    return L;
}

eqr_tensor *eqr_segnn_layer_forward(eqr_ctx *ctx, eqr_segnn_layer *L, eqr_tensor *h,
                                    eqr_tensor *edge_attr, eqr_tensor *node_attr,
                                    eqr_tensor *add, const int64_t *src, const int64_t *dst,
                                    int64_t E) {
    static const char fn[] = "eqr_segnn_layer_forward";
    if (!eqr__ok(ctx, 4, L, h, edge_attr, node_attr)) return NULL;
    const int64_t dh = eqr_irreps_dim(&L->hidden), da = eqr_irreps_dim(&L->attr);
    char b1[EQR_SHAPE_BUF], b2[EQR_SHAPE_BUF], b3[EQR_SHAPE_BUF];
    const int64_t N = h->ndim == 2 ? h->shape[0] : -1;
    if (h->ndim != 2 || h->shape[1] != dh || edge_attr->ndim != 2 || edge_attr->shape[0] != E ||
        edge_attr->shape[1] != da || node_attr->ndim != 2 || node_attr->shape[0] != N ||
        node_attr->shape[1] != da) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "%s: h %s, edge_attr %s, node_attr %s must be [N, %lld], "
                  "[%lld, %lld], [N, %lld]", fn, EQR_SHAPE(h, b1), EQR_SHAPE(edge_attr, b2),
                  EQR_SHAPE(node_attr, b3), (long long)dh, (long long)E, (long long)da,
                  (long long)da);
        return NULL;
    }
    if ((L->add > 0) != (add != NULL) ||
        (add && (add->ndim != 2 || add->shape[0] != E || add->shape[1] != L->add))) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "%s: add must be [%lld, %d]%s", fn, (long long)E, L->add,
                  L->add ? "" : " (or NULL: the layer takes no edge scalars)");
        return NULL;
    }
    eqr_tensor *parts[3] = {eqr_gather_rows(ctx, h, dst, E), eqr_gather_rows(ctx, h, src, E), add};
    eqr_tensor *m = eqr_concat(ctx, parts, add ? 3 : 2, 1);
    m = gtp_forward(ctx, &L->msg1, m, edge_attr);
    m = gtp_forward(ctx, &L->msg2, m, edge_attr);
    eqr_tensor *hm[2] = {h, eqr_scatter_sum(ctx, m, dst, N)};
    eqr_tensor *x = eqr_concat(ctx, hm, 2, 1);
    eqr_tensor *u = gtp_forward(ctx, &L->upd1, x, node_attr);
    if (u && L->term[0]) u = eqr_add(ctx, u, L->term[0](ctx, L->user[0], x));
    eqr_tensor *dv = eqr_tp_forward(ctx, L->upd2, u, node_attr, NULL);
    if (dv && L->term[1]) dv = eqr_add(ctx, dv, L->term[1](ctx, L->user[1], u));
    return dv ? eqr_add(ctx, h, dv) : NULL;
}

eqr_status eqr_segnn_layer_set_term(eqr_ctx *ctx, eqr_segnn_layer *L, int which,
                                    eqr_segnn_term_fn fn, void *user) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!L || !fn || which < 0 || which > 1)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_segnn_layer_set_term: NULL layer or fn, or which "
                         "= %d is not 0 (u) or 1 (the update of h)", which);
    if (L->term[which])
        return eqr__fail(ctx, EQR_ERR_STATE, "eqr_segnn_layer_set_term: term %d is attached "
                         "already (relaxed twice?)", which);
    L->term[which] = fn;
    L->user[which] = user;
    return EQR_OK;
}

void *eqr_segnn_layer_term(const eqr_segnn_layer *L, int which) {
    return L && which >= 0 && which <= 1 ? L->user[which] : NULL;
}

const eqr_irreps *eqr_segnn_layer_hidden(const eqr_segnn_layer *L) { return L ? &L->hidden : NULL; }

/* ------------------------------------------------------ the N-body model */

#define SEGNN_MAX_LAYERS 64

struct eqr_segnn {
    eqr_irreps hidden, attr;
    int nl, lmax;
    eqr_tp *embed, *out2;
    gtp out1;
    eqr_segnn_layer *layer[SEGNN_MAX_LAYERS];
};

void eqr_segnn_destroy(eqr_segnn *m) {
    if (!m) return;
    eqr_tp_destroy(m->embed);
    eqr_tp_destroy(m->out1.tp);
    eqr_tp_destroy(m->out2);
    for (int k = 0; k < m->nl; k++) eqr_segnn_layer_destroy(m->layer[k]);
    free(m);
}

eqr_segnn *eqr_segnn_create(eqr_ctx *ctx, const char *name, const eqr_segnn_opts *opts) {
    static const char fn[] = "eqr_segnn_create";
    if (!ctx || ctx->status != EQR_OK) return NULL;
    eqr_segnn_opts o = opts ? *opts : (eqr_segnn_opts){0};
    if (!name) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: name is NULL", fn);
        return NULL;
    }
    if (o.layers < 0 || o.layers > SEGNN_MAX_LAYERS || o.lmax_attr < 0 || o.lmax_attr > 8) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: layers = %d must be in [0, %d] and lmax_attr = %d in "
                  "[0, 8] (0: the defaults 4 and 1)", fn, o.layers, SEGNN_MAX_LAYERS, o.lmax_attr);
        return NULL;
    }
    eqr_segnn *m = eqr__calloc(ctx, fn, 1, sizeof *m);
    if (!m) return NULL;
    m->lmax = o.lmax_attr ? o.lmax_attr : 1;
    const int nl = o.layers ? o.layers : 4;
    eqr_irreps in, out;
    int bad = eqr_irreps_parse(ctx, o.hidden ? o.hidden : "32x0e+32x1o", &m->hidden) ||
              eqr_irreps_parse(ctx, "2x1o+1x0e", &in) || eqr_irreps_parse(ctx, "1x1o", &out);
    int64_t ns;
    int fg;
    bad = bad || split_hidden(ctx, fn, &m->hidden, &ns, &fg); /* before any parameter */
    m->attr.n = m->lmax + 1; /* the harmonics' irreps 1x0e+1x1o+1x2e+... */
    for (int l = 0; l <= m->lmax; l++) m->attr.e[l] = (eqr_irrep_entry){1, l, l % 2 ? -1 : 1};
    char nm[EQR_NAME_LEN];
    snprintf(nm, sizeof nm, "%s.embed", name);
    bad = bad || eqr_tp_create(ctx, nm, &in, &m->attr, &m->hidden, 1, &m->embed) ||
          eqr_tp_add_bias(ctx, m->embed, nm);
    for (int k = 0; !bad && k < nl; k++) {
        snprintf(nm, sizeof nm, "%s.layer%d", name, k);
        m->layer[k] = eqr_segnn_layer_create(ctx, nm, &m->hidden, &m->attr, 2);
        bad = !m->layer[k];
        m->nl = k + 1;
    }
    snprintf(nm, sizeof nm, "%s.out1", name);
    bad = bad || gtp_create(ctx, nm, &m->hidden, &m->attr, &m->hidden, &m->out1);
    snprintf(nm, sizeof nm, "%s.out2", name);
    bad = bad || eqr_tp_create(ctx, nm, &m->hidden, &m->attr, &out, 1, &m->out2);
    if (bad) {
        eqr_segnn_destroy(m);
        return NULL;
    }
    return m;
}

int eqr_segnn_num_layers(const eqr_segnn *m) { return m ? m->nl : 0; }
eqr_segnn_layer *eqr_segnn_layer_at(const eqr_segnn *m, int k) {
    return m && k >= 0 && k < m->nl ? m->layer[k] : NULL;
}

/* The graph of B systems of n particles: edges j -> i, i != j, grouped by
 * target i (the peer's order); features as data (no tape). */
typedef struct graph_feats {
    int64_t E, *src, *dst;
    eqr_tensor *h0, *add, *rel, *vel;
} graph_feats;

static eqr_status build_graph(eqr_ctx *ctx, const float *x, const float *v, const float *q,
                              int64_t B, int64_t n, graph_feats *g) {
    const int64_t N = B * n, E = B * n * (n - 1);
    g->E = E;
    g->src = eqr__arena_alloc(ctx, sizeof(int64_t) * (size_t)E);
    g->dst = eqr__arena_alloc(ctx, sizeof(int64_t) * (size_t)E);
    g->h0 = eqr_tensor_zeros(ctx, 2, (int64_t[]){N, 7});
    g->add = eqr_tensor_zeros(ctx, 2, (int64_t[]){E, 2});
    g->rel = eqr_tensor_zeros(ctx, 2, (int64_t[]){E, 3});
    g->vel = eqr_tensor_zeros(ctx, 2, (int64_t[]){N, 3});
    if (!g->src || !g->dst || !g->h0 || !g->add || !g->rel || !g->vel) return ctx->status;
    int64_t e = 0;
    for (int64_t b = 0; b < B; b++) {
        double c[3] = {0, 0, 0};
        for (int64_t i = 0; i < n; i++)
            for (int d = 0; d < 3; d++) c[d] += x[(b * n + i) * 3 + d];
        for (int64_t i = 0; i < n; i++) {
            const int64_t a = b * n + i;
            float *h = g->h0->data + a * 7;
            double vv = 0;
            for (int d = 0; d < 3; d++) {
                h[d] = (float)(x[a * 3 + d] - c[d] / (double)n);
                h[3 + d] = v[a * 3 + d];
                g->vel->data[a * 3 + d] = v[a * 3 + d];
                vv += (double)v[a * 3 + d] * v[a * 3 + d];
            }
            h[6] = (float)sqrt(vv);
            for (int64_t j = 0; j < n; j++) {
                if (j == i) continue;
                const int64_t s = b * n + j;
                g->src[e] = s, g->dst[e] = a;
                double r2 = 0;
                for (int d = 0; d < 3; d++) {
                    const float r = x[s * 3 + d] - x[a * 3 + d];
                    g->rel->data[e * 3 + d] = r;
                    r2 += (double)r * r;
                }
                g->add->data[e * 2] = (float)r2;
                g->add->data[e * 2 + 1] = q[a] * q[s];
                e++;
            }
        }
    }
    return EQR_OK;
}

eqr_tensor *eqr_segnn_forward(eqr_ctx *ctx, eqr_segnn *m, eqr_tensor *x, eqr_tensor *v,
                              eqr_tensor *q) {
    static const char fn[] = "eqr_segnn_forward";
    if (!eqr__ok(ctx, 4, m, x, v, q)) return NULL;
    char b1[EQR_SHAPE_BUF], b2[EQR_SHAPE_BUF], b3[EQR_SHAPE_BUF];
    if (x->ndim != 3 || x->shape[2] != 3 || x->shape[1] < 2 || v->ndim != 3 ||
        q->ndim != 3 || v->shape[0] != x->shape[0] || v->shape[1] != x->shape[1] ||
        v->shape[2] != 3 || q->shape[0] != x->shape[0] || q->shape[1] != x->shape[1] ||
        q->shape[2] != 1) {
        eqr__fail(ctx, EQR_ERR_SHAPE, "%s: x %s, v %s, q %s must be [B, n, 3], [B, n, 3], "
                  "[B, n, 1] with n >= 2", fn, EQR_SHAPE(x, b1), EQR_SHAPE(v, b2),
                  EQR_SHAPE(q, b3));
        return NULL;
    }
    const int64_t B = x->shape[0], n = x->shape[1], N = B * n;
    graph_feats g;
    if (build_graph(ctx, x->data, v->data, q->data, B, n, &g)) return NULL;
    /* attributes are data: computed without the tape */
    const int rec = eqr_grad_enabled(ctx);
    eqr_grad_set_enabled(ctx, 0);
    eqr_tensor *ea = eqr_sh(ctx, g.rel, m->lmax, EQR_SH_INTEGRAL, 1);
    eqr_tensor *na = eqr_add(ctx, eqr_scatter_mean(ctx, ea, g.dst, N),
                             eqr_sh(ctx, g.vel, m->lmax, EQR_SH_INTEGRAL, 1));
    eqr_grad_set_enabled(ctx, rec);
    if (!na) return NULL;
    const int64_t da = na->shape[1];
    for (int64_t a = 0; a < N; a++) na->data[a * da] = 1.0f; /* SEGNN: 0e attribute 1 */

    eqr_tensor *h = eqr_tp_forward(ctx, m->embed, g.h0, na, NULL);
    for (int k = 0; k < m->nl; k++)
        h = eqr_segnn_layer_forward(ctx, m->layer[k], h, ea, na, g.add, g.src, g.dst, g.E);
    h = gtp_forward(ctx, &m->out1, h, na);
    h = eqr_tp_forward(ctx, m->out2, h, na, NULL);
    eqr_tensor *xf = eqr_reshape(ctx, x, 2, (int64_t[]){N, 3});
    eqr_tensor *y = eqr_add(ctx, xf, h);
    return y ? eqr_reshape(ctx, y, 3, x->shape) : NULL;
}
