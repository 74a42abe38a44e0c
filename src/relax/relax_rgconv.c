/* Relaxed group convolution (relax.h, eqr_relax_rgconv; Wang, Walters, Yu,
 * ICML 2022): the bank of output orientation h is
 *     K_h = sum_l M[l][h] h.Psi_l,  M[l][h] = a_l + theta Dc[l][h],
 * Dc = D - mean_g D (per row l). Psi_0 is the gconv's own weight, Psi_1 ..
 * Psi_{L-1} the parameter "<name>.psi", a "<name>.mix", D the layer's W_r.
 *
 * The bank is one op (mixbank) over the gconv's gather table T: bank entry b
 * of output channel o = fo |G| + h (h = o mod |G|) reads the weight entry
 * j = T[b] of every base filter,
 *     bank[b] = sum_l M[l][h] Psi_l[j]        (l ascending),
 * so that with M equal over h the entries reading the same j are equal bit
 * for bit: the bank is the plain gconv's bank of sum_l M[l] Psi_l and the
 * layer is exactly as equivariant as the gconv. Its backward:
 *     dPsi_l[j] += sum_{b: T[b] = j} M[l][h(b)] dbank[b],
 *     dM[l][h]  += sum_{b of orientation h} Psi_l[T[b]] dbank[b].
 * The centring op Dc = D - mean_g D is the orthogonal projection onto the
 * rows of zero mean: its adjoint is itself. */
#include "relax/relax_internal.h"
#include "ops/conv_internal.h"
#include "nn2d/equi_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct rg_impl {
    eqr_gconv *g;
    int L, G;
    int64_t wnumel;          /* elements of one base filter */
    int64_t bank_shape[4], bank_numel, row; /* row: entries per output channel */
    const int64_t *bank_idx; /* the gconv's gather table */
    int64_t *mix_idx;        /* [L * G] -> l: a broadcast over g */
    eqr_tensor *psi, *mix;   /* psi NULL for L == 1 */
} rg_impl;

static void rg_destroy(void *p) {
    rg_impl *c = p;
    if (!c) return;
    free(c->mix_idx);
    free(c);
}

/* ------------------------------------------------------------ mixbank */

/* Psi_l's data: the gconv's weight for l = 0, else row l - 1 of psi. */
static const float *psi_data(const rg_impl *c, eqr_tensor *w, eqr_tensor *psi, int l) {
    return l == 0 ? w->data : psi->data + (int64_t)(l - 1) * c->wnumel;
}

static void mixbank_backward(eqr_ctx *ctx, eqr_node *n) {
    const rg_impl *c = n->saved;
    eqr_tensor *M = n->in[0], *w = n->in[1], *psi = n->nin > 2 ? n->in[2] : NULL;
    const float *gy = n->out->grad;
    const int L = c->L, G = c->G;
    const int64_t O = c->bank_shape[0], row = c->row;
    if (eqr__needs_grad(M)) {
        float *gM = eqr__grad(ctx, M);
        if (!gM) return;
        for (int l = 0; l < L; l++) {
            const float *p = psi_data(c, w, psi, l);
            for (int h = 0; h < G; h++) {
                double s = 0.0;
                for (int64_t o = h; o < O; o += G) {
                    const int64_t *ix = c->bank_idx + o * row;
                    const float *g = gy + o * row;
                    for (int64_t e = 0; e < row; e++) s += (double)g[e] * p[ix[e]];
                }
                gM[l * G + h] += (float)s;
            }
        }
    }
    for (int l = 0; l < L; l++) {
        eqr_tensor *t = l == 0 ? w : psi;
        if (!eqr__needs_grad(t)) continue;
        float *gt = eqr__grad(ctx, t);
        if (!gt) return;
        if (l > 0) gt += (int64_t)(l - 1) * c->wnumel;
        for (int64_t o = 0; o < O; o++) {
            const float m = M->data[l * G + (int)(o % G)];
            const int64_t *ix = c->bank_idx + o * row;
            const float *g = gy + o * row;
            for (int64_t e = 0; e < row; e++) gt[ix[e]] += m * g[e];
        }
    }
}

/* bank[b] = sum_l M[l][h(b)] Psi_l[T[b]] for M [L, G]; w / psi may be
 * detached views (then no gradient flows into the base filters). */
static eqr_tensor *mixbank(eqr_ctx *ctx, const rg_impl *c, eqr_tensor *M, eqr_tensor *w,
                           eqr_tensor *psi) {
    if (!eqr__ok_in(ctx, "eqr_rlayer_forward", 2, M, w)) return NULL;
    if (c->L > 1 && !psi) return NULL; /* a failed view: error recorded */
    eqr_tensor *y = eqr__tensor_empty(ctx, 4, c->bank_shape);
    if (!y) return NULL;
    const int L = c->L, G = c->G;
    const int64_t O = c->bank_shape[0], row = c->row;
    for (int64_t o = 0; o < O; o++) {
        const int h = (int)(o % G);
        const int64_t *ix = c->bank_idx + o * row;
        float *out = y->data + o * row;
        const float m0 = M->data[h];
        const float *p0 = w->data;
        for (int64_t e = 0; e < row; e++) out[e] = m0 * p0[ix[e]];
        for (int l = 1; l < L; l++) {
            const float m = M->data[l * G + h];
            const float *p = psi->data + (int64_t)(l - 1) * c->wnumel;
            for (int64_t e = 0; e < row; e++) out[e] += m * p[ix[e]];
        }
    }
    eqr_tensor *in[3] = {M, w, psi};
    eqr_node *nd = eqr__record(ctx, y, mixbank_backward, L > 1 ? 3 : 2, in);
    if (nd) nd->saved = (void *)c;
    return y;
}

/* ------------------------------------------------------------- centring */

static void centre_rows(const float *x, float *y, int L, int G) {
    for (int l = 0; l < L; l++) {
        double s = 0.0;
        for (int g = 0; g < G; g++) s += x[l * G + g];
        const float m = (float)(s / G);
        for (int g = 0; g < G; g++) y[l * G + g] = x[l * G + g] - m;
    }
}

static void centre_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *x = n->in[0];
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    const int L = (int)x->shape[0], G = (int)x->shape[1];
    for (int l = 0; l < L; l++) {
        double s = 0.0;
        for (int g = 0; g < G; g++) s += n->out->grad[l * G + g];
        const double m = s / G;
        for (int g = 0; g < G; g++) gx[l * G + g] += (float)(n->out->grad[l * G + g] - m);
    }
}

/* D - mean over g of each row, for D [L, G]. */
static eqr_tensor *centre(eqr_ctx *ctx, eqr_tensor *D) {
    if (!eqr__ok_in(ctx, "eqr_rlayer_forward", 1, D)) return NULL;
    eqr_tensor *y = eqr__tensor_empty(ctx, 2, D->shape);
    if (!y) return NULL;
    centre_rows(D->data, y->data, (int)D->shape[0], (int)D->shape[1]);
    eqr__record(ctx, y, centre_backward, 1, &D);
    return y;
}

/* ----------------------------------------------------------- the kind */

/* A view of t's data that takes no gradient (NULL for NULL t). */
static eqr_tensor *detached(eqr_ctx *ctx, eqr_tensor *t) {
    return t ? eqr_tensor_wrap(ctx, t->data, t->ndim, t->shape) : NULL;
}

static eqr_tensor *mean_weights(eqr_ctx *ctx, const rg_impl *c) {
    int64_t s[2] = {c->L, c->G};
    return eqr__gather(ctx, c->mix, c->mix_idx, 2, s);
}

static eqr_tensor *rg_forward(eqr_ctx *ctx, eqr_rlayer *l, eqr_tensor *x) {
    rg_impl *c = l->impl;
    if (x->ndim != 4 || x->shape[1] != c->bank_shape[1]) {
        char s[EQR_SHAPE_BUF];
        eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_rlayer_forward(%s): x has shape %s, expected [N, %lld, H, W]",
                  l->name, EQR_SHAPE(x, s), (long long)c->bank_shape[1]);
        return NULL;
    }
    eqr__gconv_watch_input(ctx, "eqr_rlayer_forward", c->g, x->shape[2], x->shape[3]);
    eqr_tensor *W = eqr_gconv_weight(c->g);
    const eqr_conv2d_geom *geom = eqr_gconv_geom(c->g);
    const float th = eqr__rlayer_theta(l);
    const int norm = eqr__rlayer_wants_norm(ctx, l);
    eqr_tensor *M = mean_weights(ctx, c);
    eqr_tensor *Dc = th != 0.0f || norm ? centre(ctx, l->wr) : NULL;
    if (th != 0.0f) M = eqr_add(ctx, M, eqr__rlayer_scale(ctx, l, Dc));
    eqr_tensor *bank = mixbank(ctx, c, M, W, c->psi);
    eqr_tensor *bias = eqr_gconv_bias_vector(ctx, c->g);
    if (ctx->status != EQR_OK) return NULL;
    if (!norm) {
        eqr_tensor *y = eqr_conv2d(ctx, x, bank, bias, geom);
        return ctx->status == EQR_OK ? y : NULL;
    }
    /* N = ||W_r x||^2, W_r the deviation bank; in the detached form (the
     * default) of the detached base filters too, so N shapes D only */
    const int det = eqr__rlayer_detached(l);
    eqr_tensor *wrb = det ? mixbank(ctx, c, Dc, detached(ctx, W), detached(ctx, c->psi))
                          : mixbank(ctx, c, Dc, W, c->psi);
    if (!wrb) return NULL;
    float sc;
    int64_t rows = eqr__rlayer_norm_rows(l, x->shape[0], &sc);
    eqr_tensor *y, *n = NULL;
    if (rows == x->shape[0]) {
        y = eqr__conv2d_norm(ctx, x, bank, bias, wrb, geom, det, &n);
    } else {
        y = eqr_conv2d(ctx, x, bank, bias, geom);
        eqr_tensor *xs = eqr_slice(ctx, eqr__rlayer_penalty_input(ctx, l, x), 0, 0, rows);
        n = eqr_sumsq(ctx, eqr_conv2d(ctx, xs, wrb, NULL, geom));
    }
    if (n && sc != 1.0f) n = eqr_scale(ctx, n, sc);
    if (y && n) eqr__rlayer_set_norm(l, n);
    return ctx->status == EQR_OK ? y : NULL;
}

static eqr_tensor *rg_defect(eqr_ctx *ctx, eqr_rlayer *l) {
    return eqr_sumsq(ctx, centre(ctx, l->wr));
}

/* Psi_0 <- sum_l a_l Psi_l (the order of mixbank, so the bank is the one of
 * the mean weights bit for bit), a <- (1, 0, .., 0). theta is unused: the
 * deviation bank's group average is 0. */
static eqr_status rg_fold(eqr_ctx *ctx, eqr_rlayer *l, float theta) {
    (void)ctx;
    (void)theta;
    rg_impl *c = l->impl;
    float *w = eqr_gconv_weight(c->g)->data, *a = c->mix->data;
    for (int64_t j = 0; j < c->wnumel; j++) {
        float acc = a[0] * w[j];
        for (int k = 1; k < c->L; k++) acc += a[k] * c->psi->data[(int64_t)(k - 1) * c->wnumel + j];
        w[j] = acc;
    }
    a[0] = 1.0f;
    for (int k = 1; k < c->L; k++) a[k] = 0.0f;
    return EQR_OK;
}

static eqr_status rg_probe(eqr_ctx *ctx, eqr_rlayer *l, eqr_tensor *x, double *eq, double *wr) {
    rg_impl *c = l->impl;
    eqr_tensor *W = eqr_gconv_weight(c->g);
    const eqr_conv2d_geom *geom = eqr_gconv_geom(c->g);
    eqr_tensor *bank = mixbank(ctx, c, mean_weights(ctx, c), W, c->psi);
    eqr_tensor *wrb = mixbank(ctx, c, centre(ctx, l->wr), W, c->psi);
    eqr_tensor *bias = eqr_gconv_bias_vector(ctx, c->g);
    *eq = eqr__norm_of(ctx, eqr_conv2d(ctx, x, bank, bias, geom));
    *wr = eqr__norm_of(ctx, eqr_conv2d(ctx, x, wrb, NULL, geom));
    return ctx->status;
}

static const eqr_rlayer_ops rg_ops = {.kind = "rgconv", .forward = rg_forward,
                                      .defect = rg_defect, .fold = rg_fold, .probe = rg_probe,
                                      .destroy = rg_destroy, .fold_always = 1};

/* ------------------------------------------------------ construction */

/* Psi_l = W + delta_l, delta_l ~ N(0, rms(W)^2) centred over l (so the mean
 * of the Psi_l is W): Psi_0 in W itself, the others in psi. */
static eqr_status init_bases(eqr_ctx *ctx, rg_impl *c) {
    if (c->L == 1) return EQR_OK;
    const int L = c->L;
    float *w = eqr_gconv_weight(c->g)->data, *psi = c->psi->data;
    double ss = 0.0;
    for (int64_t j = 0; j < c->wnumel; j++) ss += (double)w[j] * w[j];
    const float s = (float)sqrt(ss / (double)c->wnumel);
    float d[EQR_RGCONV_MAX_BANKS];
    eqr_rng *rng = eqr_ctx_rng(ctx);
    for (int64_t j = 0; j < c->wnumel; j++) {
        double m = 0.0;
        for (int k = 0; k < L; k++) {
            d[k] = s * eqr_rng_normal(rng);
            m += d[k];
        }
        m /= L;
        for (int k = 1; k < L; k++) psi[(int64_t)(k - 1) * c->wnumel + j] = w[j] + (float)(d[k] - m);
        w[j] += (float)(d[0] - m);
    }
    return EQR_OK;
}

eqr_rlayer *eqr_relax_rgconv(eqr_ctx *ctx, eqr_relax *r, const char *name, eqr_gconv *layer,
                             const eqr_rlayer_opts *opts) {
    static const char *fn = "eqr_relax_rgconv";
    if (!ctx || ctx->status != EQR_OK) return NULL;
    if (!r || !layer || !opts) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: relaxation, layer and opts (for nbanks) must not be NULL", fn);
        return NULL;
    }
    if (!name || !*name) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: name is NULL or empty", fn);
        return NULL;
    }
    if (opts->nbanks < 1 || opts->nbanks > EQR_RGCONV_MAX_BANKS) {
        eqr__fail(ctx, EQR_ERR_ARG,
                  "%s(%s): nbanks %d: the number of filter banks L of a relaxed group conv must "
                  "be in 1..%d (e.g. 2)", fn, name, opts->nbanks, EQR_RGCONV_MAX_BANKS);
        return NULL;
    }
    if (opts->kind != EQR_RELAX_KIND_RGCONV) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s(%s): opts->kind must be EQR_RELAX_KIND_RGCONV", fn, name);
        return NULL;
    }
    const int L = opts->nbanks;
    char pp[EQR_NAME_LEN], pm[EQR_NAME_LEN];
    if (strlen(name) + strlen(".theta") >= EQR_NAME_LEN) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: name '%s' is too long (at most %d characters)", fn, name,
                  (int)(EQR_NAME_LEN - 1 - strlen(".theta")));
        return NULL;
    }
    snprintf(pp, sizeof pp, "%s.psi", name);
    snprintf(pm, sizeof pm, "%s.mix", name);
    /* every name first: the store cannot remove a parameter */
    const char *taken = eqr_param_find(ctx, pm) ? pm : L > 1 && eqr_param_find(ctx, pp) ? pp : NULL;
    if (taken) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: a parameter named '%s' already exists", fn, taken);
        return NULL;
    }
    const int G = eqr_group_order(eqr_gconv_group(layer));
    rg_impl *c = calloc(1, sizeof *c);
    if (c) c->mix_idx = malloc((size_t)L * (size_t)G * sizeof(int64_t));
    if (!c || !c->mix_idx) {
        rg_destroy(c);
        eqr__fail(ctx, EQR_ERR_NOMEM, "%s: out of memory", fn);
        return NULL;
    }
    c->g = layer;
    c->L = L;
    c->G = G;
    eqr_gconv_bank_shape(layer, c->bank_shape);
    c->bank_numel = c->bank_shape[0] * c->bank_shape[1] * c->bank_shape[2] * c->bank_shape[3];
    c->row = c->bank_shape[1] * c->bank_shape[2] * c->bank_shape[3];
    c->bank_idx = eqr__gconv_bank_index(layer);
    eqr_tensor *W = eqr_gconv_weight(layer);
    c->wnumel = W->numel;
    for (int i = 0; i < L * c->G; i++) c->mix_idx[i] = i / c->G;
    int64_t dshape[2] = {L, c->G};
    eqr_rlayer *rl = eqr__rlayer_new(ctx, r, name, &rg_ops, c, 2, dshape, opts);
    if (!rl) return NULL; /* c destroyed */
    int64_t one = L;
    c->mix = eqr_param_create(ctx, pm, 1, &one, EQR_PARAM_NO_DECAY);
    if (c->mix && L > 1) {
        int64_t ps[EQR_MAX_DIMS];
        ps[0] = L - 1;
        for (int d = 0; d < W->ndim; d++) ps[d + 1] = W->shape[d];
        c->psi = eqr_param_create(ctx, pp, W->ndim + 1, ps, 0);
    }
    if (!c->mix || (L > 1 && !c->psi)) return NULL; /* recorded; r owns c */
    for (int k = 0; k < L; k++) c->mix->data[k] = 1.0f / (float)L;
    if (init_bases(ctx, c) != EQR_OK) return NULL;
    return rl;
}

/* ------------------------------------------------------------ telemetry */

static const rg_impl *rg_of(eqr_ctx *ctx, const char *fn, const eqr_rlayer *l) {
    if (!l || l->ops != &rg_ops) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: layer '%s' is not a relaxed group conv (kind %s)", fn,
                  l ? l->name : "(null)", l ? l->ops->kind : "none");
        return NULL;
    }
    return l->impl;
}

eqr_status eqr_rgconv_weights(eqr_ctx *ctx, const eqr_rlayer *l, int effective, float *out) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!out) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_rgconv_weights: out is NULL");
    const rg_impl *c = rg_of(ctx, "eqr_rgconv_weights", l);
    if (!c) return ctx->status;
    const float th = effective ? eqr__rlayer_theta(l) : 1.0f;
    centre_rows(l->wr->data, out, c->L, c->G);
    for (int i = 0; i < c->L * c->G; i++) out[i] = c->mix->data[i / c->G] + th * out[i];
    return EQR_OK;
}

eqr_status eqr_rgconv_get_report(eqr_ctx *ctx, const eqr_rlayer *l, eqr_rgconv_report *out) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!out) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_rgconv_get_report: out is NULL");
    const rg_impl *c = rg_of(ctx, "eqr_rgconv_get_report", l);
    if (!c) return ctx->status;
    memset(out, 0, sizeof *out);
    out->nbanks = c->L;
    out->order = c->G;
    out->theta = l->theta->data[0];
    const float *D = l->wr->data;
    for (int k = 0; k < c->L; k++) {
        /* w[k][g] = a_k + D[k][g] - mean D[k]: mean a_k, spread that of D */
        double m = 0.0, v = 0.0;
        for (int g = 0; g < c->G; g++) m += D[k * c->G + g];
        m /= c->G;
        for (int g = 0; g < c->G; g++) v += (D[k * c->G + g] - m) * (D[k * c->G + g] - m);
        const double a = c->mix->data[k], sd = sqrt(v / c->G);
        out->mean[k] = (float)a;
        out->spread[k] = (float)sd;
        out->rel_spread[k] = sd == 0.0 ? 0.0f : a == 0.0 ? INFINITY : (float)(sd / fabs(a));
        if (out->rel_spread[k] > out->max_rel_spread) out->max_rel_spread = out->rel_spread[k];
    }
    out->eff_max_rel_spread = out->theta == 0.0f ? 0.0f : fabsf(out->theta) * out->max_rel_spread;
    return EQR_OK;
}
