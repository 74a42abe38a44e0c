/* Relaxed 2D convs (relax.h): group convs (filter transform) and steerable
 * convs with a relaxation term W_r of the shape of their expanded bank.
 *
 * Forward, fused: y = conv2d(x, T(W) + theta W_r, bias): one conv, whose
 * backward splits the bank gradient into T^*(dBank) for W and theta dBank
 * for W_r. theta == 0 with the norm penalty off leaves W_r out entirely.
 * The exact activation norm ||W_r x||^2 comes from the same conv with W_r
 * stacked under the bank (eqr__conv2d_norm: one im2col / col2im for both;
 * in the default detached form its backward drops the norm rows from dx);
 * the subsampled estimate convolves only its m images of the (detached)
 * x, separately.
 *
 * Defects (LD):
 *   gconv  sum over the generators g of G of ||W_r - g.W_r||^2, g acting on
 *          the whole bank [Fout*|G|, C, k, k]:
 *              (g.B)[fo*|G| + h, i, q] = B[fo*|G| + g^-1 h, i', g^-1 q]
 *          with i' = fi*|G| + g^-1 s for i = fi*|G| + s (group conv) and
 *          i' = i (lifting conv): the filter taps rotate / flip AND the
 *          output (and input) orientation channels permute. The bank T(W)
 *          of the layer is a fixed point of every g (gconv.h), so LD = 0 on
 *          equivariant banks; as the generators generate G, LD = 0 only on
 *          them. One precomputed gather per generator.
 *   steer  ||W_r - P W_r||^2, P = expand o project the orthogonal
 *          projection onto the span of the layer's basis (the basis is
 *          orthonormal, so P is symmetric and is its own adjoint).
 * Fold:
 *   gconv  W += theta / |G| T^*(W_r). T is a gather in which every weight
 *          appears exactly |G| times (once per output orientation h), so
 *          T^* T = |G| I and T^*(B) / |G| is the least-squares fit of B;
 *          T T^* B / |G| is the group (Reynolds) average of B.
 *   steer  W += theta project(W_r), the least-squares fit in the basis. */
#include "relax/relax_internal.h"
#include "ops/conv_internal.h"
#include "nn2d/equi_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct conv_impl {
    eqr_gconv *g;       /* exactly one of g, s is set */
    eqr_steer_conv *s;
    const eqr_conv2d_geom *geom;
    int in_dim;
    int64_t bank_shape[4], bank_numel;
    /* gconv */
    int order, ngen;
    int64_t *gen_idx[2]; /* per generator: bank entry of g.B -> entry of B */
    int64_t *bank_idx;   /* T: bank entry -> weight entry */
    /* steer */
    const eqr_steer_basis *basis;
    int64_t nweights; /* weights of the equivariant layer (both kinds) */
    float *scratch;   /* split: nweights (+ bank_numel for steer) floats */
} conv_impl;

static void impl_destroy(void *p) {
    conv_impl *c = p;
    if (!c) return;
    free(c->gen_idx[0]);
    free(c->gen_idx[1]);
    free(c->bank_idx);
    free(c->scratch);
    free(c);
}

/* ------------------------------------------- steerable projection op */

/* out = expand(project(in)) for one bank; w is scratch of nweights floats. */
static void sproj(const eqr_steer_basis *b, const float *in, float *w, float *out) {
    eqr_steer_basis_project(b, in, w);
    eqr_steer_basis_expand(b, w, out);
}

static void sproj_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *x = n->in[0];
    const eqr_steer_basis *b = n->saved;
    float *gx = eqr__grad(ctx, x);
    float *w = eqr__arena_alloc(ctx, (size_t)n->i[0] * sizeof(float));
    float *t = eqr__arena_alloc(ctx, (size_t)x->numel * sizeof(float));
    if (!gx || !w || !t) return;
    /* P is symmetric: the adjoint is P itself */
    sproj(b, n->out->grad, w, t);
    for (int64_t i = 0; i < x->numel; i++) gx[i] += t[i];
}

static eqr_tensor *sproj_op(eqr_ctx *ctx, const conv_impl *c, eqr_tensor *x) {
    eqr_tensor *y = eqr__tensor_empty(ctx, 4, c->bank_shape);
    float *w = eqr__arena_alloc(ctx, (size_t)c->nweights * sizeof(float));
    if (!y || !w) return NULL;
    sproj(c->basis, x->data, w, y->data);
    eqr_node *n = eqr__record(ctx, y, sproj_backward, 1, &x);
    if (n) {
        n->saved = (void *)c->basis;
        n->i[0] = c->nweights;
    }
    return y;
}

/* ----------------------------------------------------------- the kind */

static eqr_tensor *conv_forward(eqr_ctx *ctx, eqr_rlayer *l, eqr_tensor *x) {
    conv_impl *c = l->impl;
    if (x->ndim != 4 || x->shape[1] != c->in_dim) {
        char s[EQR_SHAPE_BUF];
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_rlayer_forward(%s): x has shape %s, expected [N, %d, H, W]",
                  l->name, EQR_SHAPE(x, s), c->in_dim);
        return NULL;
    }
    /* the relaxed layer is exact only where the strict one is (after projection) */
    if (c->g) eqr__gconv_watch_input(ctx, "eqr_rlayer_forward", c->g, x->shape[2], x->shape[3]);
    else eqr__steer_conv_watch_input(ctx, "eqr_rlayer_forward", c->s, x->shape[2], x->shape[3]);
    eqr_tensor *bank = c->g ? eqr_gconv_filter_bank(ctx, c->g) : eqr_steer_conv_filter_bank(ctx, c->s);
    eqr_tensor *bias = c->g ? eqr_gconv_bias_vector(ctx, c->g) : eqr_steer_conv_bias_vector(ctx, c->s);
    if (ctx->status != EQR_OK) return NULL;
    const float th = eqr__rlayer_theta(l);
    if (th != 0.0f) bank = eqr_add(ctx, bank, eqr__rlayer_scale(ctx, l, l->wr));
    if (!eqr__rlayer_wants_norm(ctx, l)) {
        eqr_tensor *y = eqr_conv2d(ctx, x, bank, bias, c->geom);
        return ctx->status == EQR_OK ? y : NULL;
    }
    /* N = ||W_r x||^2 over the first m images, scaled by B / m */
    float sc;
    int64_t rows = eqr__rlayer_norm_rows(l, x->shape[0], &sc);
    if (rows == x->shape[0]) {
        /* exact norm: W_r x from the same conv as y, the banks stacked */
        eqr_tensor *n = NULL;
        eqr_tensor *y = eqr__conv2d_norm(ctx, x, bank, bias, l->wr, c->geom,
                                         eqr__rlayer_detached(l), &n);
        if (n && sc != 1.0f) n = eqr_scale(ctx, n, sc);
        if (y && n) eqr__rlayer_set_norm(l, n);
        return ctx->status == EQR_OK ? y : NULL;
    }
    eqr_tensor *y = eqr_conv2d(ctx, x, bank, bias, c->geom);
    if (y) {
        eqr_tensor *xs = eqr_slice(ctx, eqr__rlayer_penalty_input(ctx, l, x), 0, 0, rows);
        eqr_tensor *n = eqr_sumsq(ctx, eqr_conv2d(ctx, xs, l->wr, NULL, c->geom));
        if (n && sc != 1.0f) n = eqr_scale(ctx, n, sc);
        if (n) eqr__rlayer_set_norm(l, n);
    }
    return ctx->status == EQR_OK ? y : NULL;
}

static eqr_tensor *zero1(eqr_ctx *ctx) {
    int64_t one = 1;
    return eqr_tensor_zeros(ctx, 1, &one);
}

static eqr_tensor *gconv_defect(eqr_ctx *ctx, eqr_rlayer *l) {
    conv_impl *c = l->impl;
    eqr_tensor *sum = NULL;
    for (int k = 0; k < c->ngen; k++) {
        eqr_tensor *gw = eqr__gather(ctx, l->wr, c->gen_idx[k], 4, c->bank_shape);
        eqr_tensor *d = eqr_sumsq(ctx, eqr_sub(ctx, l->wr, gw));
        sum = sum ? eqr_add(ctx, sum, d) : d;
    }
    if (ctx->status != EQR_OK) return NULL;
    return sum ? sum : zero1(ctx); /* C1: every bank is equivariant */
}

static eqr_tensor *steer_defect(eqr_ctx *ctx, eqr_rlayer *l) {
    conv_impl *c = l->impl;
    if (ctx->status != EQR_OK) return NULL;
    return eqr_sumsq(ctx, eqr_sub(ctx, l->wr, sproj_op(ctx, c, l->wr)));
}

/* Orthogonal split, also the fold. gconv: P W_r = T(a), a = T^*(W_r) / |G| (the Reynolds
 * average, file comment): W += theta a, W_r -= T(a). */
static eqr_status gconv_split(eqr_ctx *ctx, eqr_rlayer *l, float theta) {
    (void)ctx;
    conv_impl *c = l->impl;
    float *w = eqr_gconv_weight(c->g)->data, *a = c->scratch, *wr = l->wr->data;
    memset(a, 0, (size_t)c->nweights * sizeof(float));
    for (int64_t b = 0; b < c->bank_numel; b++) a[c->bank_idx[b]] += wr[b];
    const float inv = 1.0f / (float)c->order;
    for (int64_t j = 0; j < c->nweights; j++) {
        a[j] *= inv;
        w[j] += theta * a[j];
    }
    for (int64_t b = 0; b < c->bank_numel; b++) wr[b] -= a[c->bank_idx[b]];
    return EQR_OK;
}

/* steer: P W_r = expand(a), a = project(W_r). */
static eqr_status steer_split(eqr_ctx *ctx, eqr_rlayer *l, float theta) {
    (void)ctx;
    conv_impl *c = l->impl;
    float *a = c->scratch, *pb = c->scratch + c->nweights, *wr = l->wr->data;
    float *w = eqr_steer_conv_weight(c->s)->data;
    sproj(c->basis, wr, a, pb);
    for (int64_t i = 0; i < c->nweights; i++) w[i] += theta * a[i];
    for (int64_t b = 0; b < c->bank_numel; b++) wr[b] -= pb[b];
    return EQR_OK;
}

/* f_eq x = conv(x, bank) + bias and W_r x = conv(x, W_r), apart. */
static eqr_status conv_probe(eqr_ctx *ctx, eqr_rlayer *l, eqr_tensor *x, double *eq,
                             double *wr) {
    conv_impl *c = l->impl;
    eqr_tensor *bank = c->g ? eqr_gconv_filter_bank(ctx, c->g) : eqr_steer_conv_filter_bank(ctx, c->s);
    eqr_tensor *bias = c->g ? eqr_gconv_bias_vector(ctx, c->g) : eqr_steer_conv_bias_vector(ctx, c->s);
    *eq = eqr__norm_of(ctx, eqr_conv2d(ctx, x, bank, bias, c->geom));
    *wr = eqr__norm_of(ctx, eqr_conv2d(ctx, x, l->wr, NULL, c->geom));
    return ctx->status;
}

static const eqr_rlayer_ops gconv_ops = {.kind = "gconv", .forward = conv_forward,
                                         .defect = gconv_defect, .fold = gconv_split,
                                         .split = gconv_split, .probe = conv_probe, .destroy = impl_destroy};
static const eqr_rlayer_ops steer_ops = {.kind = "steer_conv", .forward = conv_forward,
                                         .defect = steer_defect, .fold = steer_split,
                                         .split = steer_split, .probe = conv_probe, .destroy = impl_destroy};

/* ------------------------------------------------------ construction */

/* Gather index of the action of g on the whole bank (file comment). */
static int64_t *build_gen_idx(eqr_ctx *ctx, const conv_impl *c, int group, eqr_gelem g) {
    const eqr_group *G = eqr_gconv_group(c->g);
    const int ord = c->order, k = (int)c->bank_shape[3], kk = k * k;
    const int64_t O = c->bank_shape[0], C = c->bank_shape[1];
    int64_t *idx = malloc((size_t)c->bank_numel * sizeof(int64_t));
    int *perm = malloc((size_t)ord * sizeof(int));
    eqr_grid_map *m = eqr_grid_map_create(ctx, k, k, g);
    if (!idx || !perm || !m || eqr_regular_perm(G, g, perm) != ord) {
        if (ctx->status == EQR_OK)
            eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_relax_gconv: cannot build the defect indices "
                      "(out of memory)");
        free(idx);
        free(perm);
        eqr_grid_map_destroy(m);
        return NULL;
    }
    for (int64_t o = 0; o < O; o++) {
        int64_t os = o / ord * ord + perm[o % ord];
        for (int64_t i = 0; i < C; i++) {
            int64_t is = group ? i / ord * ord + perm[i % ord] : i;
            int64_t *row = idx + (o * C + i) * kk, src = (os * C + is) * kk;
            for (int q = 0; q < kk; q++) row[q] = src + m->src[q];
        }
    }
    free(perm);
    eqr_grid_map_destroy(m);
    return idx;
}

/* T as a gather index, by the formula of gconv.h:
 *   bank[fo*|G| + h, fi*|G| + s, q] = W[fo, fi, h^-1 s, h^-1 q]  (group)
 *   bank[fo*|G| + h, c, q]          = W[fo, c, h^-1 q]          (lifting). */
static int64_t *build_bank_idx(eqr_ctx *ctx, const conv_impl *c, int group) {
    const eqr_group *G = eqr_gconv_group(c->g);
    const int ord = c->order, k = (int)c->bank_shape[3], kk = k * k;
    const int64_t O = c->bank_shape[0], C = c->bank_shape[1], fin = group ? C / ord : C;
    int64_t *idx = malloc((size_t)c->bank_numel * sizeof(int64_t));
    int *perm = malloc((size_t)ord * sizeof(int));
    if (!idx || !perm) {
        free(idx);
        free(perm);
        eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_relax_gconv: out of memory for the fold indices");
        return NULL;
    }
    for (int h = 0; h < ord; h++) {
        eqr_gelem e = eqr_group_element(G, h);
        eqr_grid_map *m = eqr_grid_map_create(ctx, k, k, e);
        if (!m || eqr_regular_perm(G, e, perm) != ord) {
            if (ctx->status == EQR_OK)
                eqr__fail(ctx, EQR_ERR_ARG, "eqr_relax_gconv: no action of element %d", h);
            eqr_grid_map_destroy(m);
            free(idx);
            free(perm);
            return NULL;
        }
        for (int64_t fo = 0; fo < O / ord; fo++)
            for (int64_t i = 0; i < C; i++) {
                int64_t base = group ? ((fo * fin + i / ord) * ord + perm[i % ord]) * kk
                                     : (fo * fin + i) * kk;
                int64_t *row = idx + ((fo * ord + h) * C + i) * kk;
                for (int q = 0; q < kk; q++) row[q] = base + m->src[q];
            }
        eqr_grid_map_destroy(m);
    }
    free(perm);
    return idx;
}

/* A zeroed conv_impl for the relaxed wrapper fn of a layer; NULL with the
 * error recorded if the context is in error, r or layer is NULL, or out of
 * memory. */
/* The impl of a relaxed group conv g or steerable conv s (one given): the
 * layer, its geometry, its bank's shape [out, in, kh, kw] and size. */
static conv_impl *impl_new(eqr_ctx *ctx, const char *fn, const eqr_relax *r, eqr_gconv *g,
                           eqr_steer_conv *s) {
    if (!ctx || ctx->status != EQR_OK) return NULL;
    if (!r || !(g || s)) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: relaxation and layer must not be NULL", fn);
        return NULL;
    }
    conv_impl *c = eqr__calloc(ctx, fn, 1, sizeof(conv_impl));
    if (!c) return NULL;
    c->g = g;
    c->s = s;
    c->geom = g ? eqr_gconv_geom(g) : eqr_steer_conv_geom(s);
    if (g) eqr_gconv_bank_shape(g, c->bank_shape);
    else eqr_steer_conv_bank_shape(s, c->bank_shape);
    c->bank_numel = c->bank_shape[0] * c->bank_shape[1] * c->bank_shape[2] * c->bank_shape[3];
    c->in_dim = (int)c->bank_shape[1];
    return c;
}

eqr_rlayer *eqr_relax_gconv(eqr_ctx *ctx, eqr_relax *r, const char *name, eqr_gconv *layer,
                            const eqr_rlayer_opts *opts) {
    if (opts && opts->kind == EQR_RELAX_KIND_RGCONV) return eqr_relax_rgconv(ctx, r, name, layer, opts);
    conv_impl *c = impl_new(ctx, "eqr_relax_gconv", r, layer, NULL);
    if (!c) return NULL;
    const eqr_group *G = eqr_gconv_group(layer);
    c->order = eqr_group_order(G);
    const int group = eqr_gconv_get_kind(layer) == EQR_GCONV_GROUP;
    /* generators: the smallest rotation (if any) and, for D_N, the flip */
    eqr_gelem gens[2];
    if (G->n > 1) gens[c->ngen++] = eqr_group_element(G, 1);
    if (eqr_group_has_flips(G)) gens[c->ngen++] = eqr_group_element(G, G->n);
    for (int i = 0; i < c->ngen; i++)
        if (!(c->gen_idx[i] = build_gen_idx(ctx, c, group, gens[i]))) break;
    if (ctx->status == EQR_OK) c->bank_idx = build_bank_idx(ctx, c, group);
    c->nweights = eqr_gconv_weight(layer)->numel;
    if (ctx->status == EQR_OK && !(c->scratch = malloc((size_t)c->nweights * sizeof(float))))
        eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_relax_gconv: out of memory");
    if (ctx->status != EQR_OK) {
        impl_destroy(c);
        return NULL;
    }
    return eqr__rlayer_new(ctx, r, name, &gconv_ops, c, 4, c->bank_shape, opts);
}

eqr_rlayer *eqr_relax_steer_conv(eqr_ctx *ctx, eqr_relax *r, const char *name,
                                 eqr_steer_conv *layer, const eqr_rlayer_opts *opts) {
    conv_impl *c = impl_new(ctx, "eqr_relax_steer_conv", r, NULL, layer);
    if (!c) return NULL;
    c->basis = eqr_steer_conv_basis(layer);
    c->nweights = eqr_steer_basis_num_elements(c->basis);
    if (!(c->scratch = malloc((size_t)(c->nweights + c->bank_numel) * sizeof(float)))) {
        impl_destroy(c);
        eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_relax_steer_conv: out of memory");
        return NULL;
    }
    return eqr__rlayer_new(ctx, r, name, &steer_ops, c, 4, c->bank_shape, opts);
}
