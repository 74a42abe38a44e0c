/* Relaxation terms of linear maps between Lie-algebra representations
 * (relax.h, eqr_relax_linear) and their closed-form Lie derivative.
 *
 * The Lie derivative of f(x) = W x along a generator A is
 *     d/dt [rho_out(e^{-tA}) W rho_in(e^{tA}) x] at t = 0
 *       = (W drho_in(A) - drho_out(A) W) x,
 * so W is equivariant under the connected group exactly when every
 * LD_A = W drho_in(A) - drho_out(A) W vanishes. Rows and columns of W are
 * the out / in coordinates in the representations' own order (no axis
 * permutation anywhere: the paper's code got this wrong). */
#include "relax/relax_internal.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The kind's data is an eqr__lie_pair (relax_internal.h): dimensions and
 * private copies of the generators. Layer kinds that add such a term to an
 * equivariant map (irreps linear layers) reuse it through the eqr__lie_*
 * functions. */
typedef eqr__lie_pair lin_impl;

/* ------------------------------------------------------ closed-form LD */

/* Shared validation of a pair of Lie-algebra representations. */
static eqr_status check_lie_pair(eqr_ctx *ctx, const char *fn, const eqr_lie_rep *in,
                                 const eqr_lie_rep *out) {
    if (!in || !out) return eqr__fail(ctx, EQR_ERR_ARG, "%s: in or out representation is NULL", fn);
    if (in->dim < 1 || out->dim < 1)
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: dims must be >= 1, got in %d and out %d", fn,
                         in->dim, out->dim);
    if (in->ngen < 1 || in->ngen != out->ngen)
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "%s: in and out need the same ngen >= 1, got %d and %d", fn, in->ngen,
                         out->ngen);
    if (!in->gens || !out->gens) return eqr__fail(ctx, EQR_ERR_ARG, "%s: gens is NULL", fn);
    /* every generator block and W itself must stay within int-sized GEMMs */
    const int64_t lim = (int64_t)1 << 30;
    int64_t di = in->dim, dout = out->dim;
    if (di * di > lim / in->ngen || dout * dout > lim / in->ngen || di * dout > lim)
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: dims in %d, out %d with %d generators are too large",
                         fn, in->dim, out->dim, in->ngen);
    return EQR_OK;
}

eqr_status eqr_lie_derivative(eqr_ctx *ctx, const float *W, const eqr_lie_rep *in,
                              const eqr_lie_rep *out, float *out_ld) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!W || !out_ld) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_lie_derivative: W or out_ld is NULL");
    eqr_status st = check_lie_pair(ctx, "eqr_lie_derivative", in, out);
    if (st) return st;
    int64_t di = in->dim, dout = out->dim;
    for (int a = 0; a < in->ngen; a++) {
        const float *gi = in->gens + a * di * di, *go = out->gens + a * dout * dout;
        float *ld = out_ld + a * dout * di;
        /* small dense matrices: plain double loops keep it exact enough */
        for (int64_t r = 0; r < dout; r++)
            for (int64_t c = 0; c < di; c++) {
                double s = 0.0;
                for (int64_t k = 0; k < di; k++) s += (double)W[r * di + k] * gi[k * di + c];
                for (int64_t k = 0; k < dout; k++) s -= (double)go[r * dout + k] * W[k * di + c];
                ld[r * di + c] = (float)s;
            }
    }
    return EQR_OK;
}

/* ------------------------------------------------- the relaxed-layer kind */

/* LD_A = W_r drho_in(A) - drho_out(A) W_r as a differentiable [out, in],
 * one op over the generators' nonzeros (a term W G or G W of an entry has
 * as many products as the generator has nonzeros in its column or row, so
 * an equivariant W gives exactly 0 in float: c g - g c). */
typedef struct ld_job {
    const eqr__lie_nz *gi, *go;
    int64_t ni, no, di, dout;
} ld_job;

static void ld_backward(eqr_ctx *ctx, eqr_node *nd) {
    eqr_tensor *w = nd->in[0];
    if (!eqr__needs_grad(w)) return;
    float *gw = eqr__grad(ctx, w);
    if (!gw) return;
    const ld_job *j = nd->saved;
    const float *g = nd->out->grad;
    const int64_t di = j->di;
    /* d(W G)/dW: dW[r, i] += dLD[r, c] G[i, c]; d(G W)/dW: dW[k, c] -= G[i, k] dLD[i, c] */
    for (int64_t e = 0; e < j->ni; e++) {
        const eqr__lie_nz z = j->gi[e];
        for (int64_t r = 0; r < j->dout; r++) gw[r * di + z.r] += g[r * di + z.c] * z.v;
    }
    for (int64_t e = 0; e < j->no; e++) {
        const eqr__lie_nz z = j->go[e];
        for (int64_t c = 0; c < di; c++) gw[z.c * di + c] -= z.v * g[z.r * di + c];
    }
}

static eqr_tensor *ld_matrix(eqr_ctx *ctx, eqr_rlayer *l, const lin_impl *im, int a) {
    const int64_t di = im->in_dim, dout = im->out_dim, shape[2] = {dout, di};
    eqr_tensor *y = eqr_tensor_zeros(ctx, 2, shape);
    ld_job *j = eqr__arena_alloc(ctx, sizeof *j);
    if (!y || !j) return NULL;
    *j = (ld_job){im->nz + im->in_off[a], im->nz + im->out_off[a],
                  im->in_off[a + 1] - im->in_off[a], im->out_off[a + 1] - im->out_off[a], di, dout};
    const float *w = l->wr->data;
    for (int64_t e = 0; e < j->ni; e++) {
        const eqr__lie_nz z = j->gi[e];
        for (int64_t r = 0; r < dout; r++) y->data[r * di + z.c] += w[r * di + z.r] * z.v;
    }
    for (int64_t e = 0; e < j->no; e++) {
        const eqr__lie_nz z = j->go[e];
        for (int64_t c = 0; c < di; c++) y->data[z.r * di + c] -= z.v * w[z.c * di + c];
    }
    eqr_node *nd = eqr__record(ctx, y, ld_backward, 1, &l->wr);
    if (nd) nd->saved = j;
    return ctx->status == EQR_OK ? y : NULL;
}

/* sum(t * t) as a [1] tensor that is the output of its own tape node
 * (relax.c checks a recorded term is live by that). */
static eqr_tensor *sqnorm(eqr_ctx *ctx, eqr_tensor *t) { return eqr_sumsq(ctx, t); }

eqr_tensor *eqr__lie_defect(eqr_ctx *ctx, eqr_rlayer *l, const eqr__lie_pair *im) {
    if (!eqr__ok(ctx, 1, l)) return NULL;
    eqr_tensor *total = NULL;
    for (int a = 0; a < im->ngen; a++) {
        eqr_tensor *s = sqnorm(ctx, ld_matrix(ctx, l, im, a));
        total = total ? eqr_add(ctx, total, s) : s;
    }
    return total;
}

/* ------------------------------------------------------------ Gram form */

/* On a detached penalty input xp [n, di] (no gradient flows into it) every
 * penalty term is a quadratic form of the Gram matrix C = xp^T xp:
 *     ||xp A^T||^2 = tr(A C A^T) = sum(A o (A C)),
 * A = W_r (norm) or LD_a (Lie derivative). C costs n di^2 / 2 once (SYRK);
 * a term then costs di^2 dout and its backward (dA = 2 A C, C symmetric)
 * reuses the forward's product, where the direct form pays 2 n di dout per
 * term (its GEMM and the W-side backward GEMM). */

/* 1 if k terms over n rows are cheaper in Gram form (have_c: C is paid for
 * already). n <= di stays direct; so does n beyond BLAS's int. */
static int gram_pays(int64_t n, int64_t di, int64_t dout, int64_t k, int have_c) {
    if (n <= di || n > INT_MAX) return 0;
    const double direct = 2.0 * (double)k * (double)n * (double)di * (double)dout;
    const double gram = (have_c ? 0.0 : 0.5 * (double)n * (double)di * (double)(di + 1)) +
                        (double)k * (double)di * (double)di * (double)dout;
    return gram < direct;
}

/* c0 + x^T x for x [n, di] (c0 NULL: 0) as a full symmetric [di, di] in the
 * arena; NULL on error (recorded). */
static float *gram_of(eqr_ctx *ctx, const float *x, int64_t n, int64_t di, const float *c0) {
    float *c = eqr__arena_alloc(ctx, sizeof(float) * (size_t)(di * di));
    if (!c) return NULL;
    if (c0) memcpy(c, c0, sizeof(float) * (size_t)(di * di));
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)di, (int)n, 1.0f, x, (int)di,
                c0 ? 1.0f : 0.0f, c, (int)di);
    for (int64_t i = 0; i < di; i++) /* SYRK wrote the upper triangle only */
        for (int64_t j = i + 1; j < di; j++) c[j * di + i] = c[i * di + j];
    return c;
}

static void quad_backward(eqr_ctx *ctx, eqr_node *nd) {
    eqr_tensor *a = nd->in[0];
    if (!eqr__needs_grad(a)) return;
    float *ga = eqr__grad(ctx, a);
    if (!ga) return;
    const float *p = nd->saved, g2 = 2.0f * nd->out->grad[0];
    for (int64_t i = 0; i < a->numel; i++) ga[i] += g2 * p[i];
}

/* sum(a o (a C)) for a [dout, di] and a symmetric C [di, di], as a [1]
 * tensor that is the output of its own tape node (like sqnorm); the
 * product is summed in double. */
static eqr_tensor *gram_quad(eqr_ctx *ctx, eqr_tensor *a, const float *c) {
    if (!a || !c || ctx->status != EQR_OK) return NULL;
    const int64_t dout = a->shape[0], di = a->shape[1], one = 1;
    eqr_tensor *y = eqr_tensor_zeros(ctx, 1, &one);
    float *p = eqr__arena_alloc(ctx, sizeof(float) * (size_t)(dout * di));
    if (!y || !p) return NULL;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)dout, (int)di, (int)di, 1.0f,
                a->data, (int)di, c, (int)di, 0.0f, p, (int)di);
    double s[4] = {0, 0, 0, 0};
    int64_t i = 0, n = a->numel;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++) s[j] += (double)a->data[i + j] * p[i + j];
    for (; i < n; i++) s[0] += (double)a->data[i] * p[i];
    const double v = (s[0] + s[1]) + (s[2] + s[3]);
    y->data[0] = v > 0.0 ? (float)v : 0.0f; /* C is PSD: a negative value is rounding */
    eqr_node *nd = eqr__record(ctx, y, quad_backward, 1, &a);
    if (nd) nd->saved = p;
    return ctx->status == EQR_OK ? y : NULL;
}

/* theta W_r x for x [..., in_dim]; records N (subsample rule over the
 * leading dim) and the activation-form LD (always over every row of x).
 * Each forward replaces the layer's recorded terms: a layer applied twice in
 * one step is penalised on its last call only. On a detached penalty input
 * the terms are computed from x's Gram matrix when that is cheaper (same
 * values up to rounding, gradients into W_r only). */
eqr_tensor *eqr__lie_forward(eqr_ctx *ctx, eqr_rlayer *l, const eqr__lie_pair *im, eqr_tensor *x) {
    if (!eqr__ok(ctx, 2, l, x)) return NULL;
    char sx[EQR_SHAPE_BUF];
    if (x->ndim < 1 || x->shape[x->ndim - 1] != im->in_dim) {
        eqr__fail(ctx, EQR_ERR_SHAPE,
                  "eqr_rlayer_forward: linear relaxation '%s' needs x [..., %d], got %s", l->name,
                  im->in_dim, EQR_SHAPE(x, sx));
        return NULL;
    }
    int64_t oshape[EQR_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) oshape[i] = x->shape[i];
    oshape[x->ndim - 1] = im->out_dim;
    int64_t rows = x->numel / im->in_dim;

    const eqr_relax_opts *o = eqr_relax_get_opts(l->relax);
    float theta = eqr__rlayer_theta(l);
    int want_norm = eqr__rlayer_wants_norm(ctx, l);
    int want_lie = eqr_grad_enabled(ctx) && o && o->lambda_defect > 0.0f &&
                   o->lie_form == EQR_LIE_ACTIVATION;
    if (rows == 0) want_norm = want_lie = 0; /* nothing to measure */
    /* theta == 0 and no penalty: W_r takes no part (and gets no gradient) */
    if (theta == 0.0f && !want_norm && !want_lie) return eqr_tensor_zeros(ctx, x->ndim, oshape);

    int64_t fs[2] = {rows, im->in_dim};
    eqr_tensor *xf = eqr_reshape(ctx, x, 2, fs);
    /* leading dim = batch for the norm estimator; a 1-D x is one image */
    int64_t batch = x->ndim >= 2 ? x->shape[0] : 1;
    int64_t per = batch > 0 ? rows / batch : 0; /* rows of one image */
    float nscale = 1.0f;
    int64_t m = want_norm ? eqr__rlayer_norm_rows(l, batch, &nscale) : batch;

    /* the penalties' input: xf, or detached (default) so that they reach W_r only */
    eqr_tensor *xp = (want_norm || want_lie) ? eqr__rlayer_penalty_input(ctx, l, xf) : xf;
    eqr_tensor *y = NULL; /* W_r x, [rows, out] */
    if (theta != 0.0f || (want_norm && m >= batch && xp == xf)) y = eqr_linear(ctx, xf, l->wr, NULL);
    eqr_tensor *res = theta != 0.0f ? eqr_reshape(ctx, eqr__rlayer_scale(ctx, l, y), x->ndim, oshape)
                                    : eqr_tensor_zeros(ctx, x->ndim, oshape);
    /* Gram form on a detached input where it is cheaper: one C for the LD
     * (all rows) and, for a subsampled norm, one over its first m images
     * (the LD's C continues from it, so both cost one pass over xp) */
    const int64_t di = im->in_dim, dout = im->out_dim, nrows = m * per;
    const int glie = want_lie && xp != xf && gram_pays(rows, di, dout, im->ngen, 0);
    const int gnorm = want_norm && xp != xf && gram_pays(nrows, di, dout, 1, glie);
    const float *c_norm = NULL, *c_all = NULL;
    if ((glie || gnorm) && xp) {
        const int64_t n1 = gnorm ? nrows : rows;
        const float *c1 = gram_of(ctx, xp->data, n1, di, NULL);
        c_norm = gnorm ? c1 : NULL;
        c_all = !glie || !c1 ? NULL
                : n1 == rows ? c1
                             : gram_of(ctx, xp->data + n1 * di, rows - n1, di, c1);
    }
    if (want_norm) {
        /* exact: all of W_r x; estimate: the first m images, scaled by B / m.
         * The task's W_r x is reused only when the penalty input is x itself. */
        eqr_tensor *n;
        if (gnorm) {
            n = gram_quad(ctx, l->wr, c_norm);
        } else {
            eqr_tensor *ys = y && xp == xf && m >= batch ? y
                             : y && xp == xf ? eqr_slice(ctx, y, 0, 0, nrows)
                             : m >= batch ? eqr_linear(ctx, xp, l->wr, NULL)
                                          : eqr_linear(ctx, eqr_slice(ctx, xp, 0, 0, nrows), l->wr, NULL);
            n = sqnorm(ctx, ys);
        }
        if (nscale != 1.0f) n = eqr_scale(ctx, n, nscale);
        if (n) eqr__rlayer_set_norm(l, n);
    }
    if (want_lie) {
        /* sum_A ||x LD_A^T||^2 over every row of the batch (exact) */
        eqr_tensor *total = NULL;
        for (int a = 0; a < im->ngen; a++) {
            eqr_tensor *ld = ld_matrix(ctx, l, im, a);
            eqr_tensor *s = glie ? gram_quad(ctx, ld, c_all) : sqnorm(ctx, eqr_linear(ctx, xp, ld, NULL));
            total = total ? eqr_add(ctx, total, s) : s;
        }
        if (total) l->lie_act_term = total;
    }
    return ctx->status == EQR_OK ? res : NULL;
}

/* A bare term has no f_eq of its own (the caller adds it to its map). */
static eqr_status lin_probe(eqr_ctx *ctx, eqr_rlayer *l, eqr_tensor *x, double *eq, double *wr) {
    eqr__lie_pair *im = l->impl;
    int64_t fs[2] = {x->numel / im->in_dim, im->in_dim};
    *eq = NAN;
    *wr = eqr__norm_of(ctx, eqr_linear(ctx, eqr_reshape(ctx, x, 2, fs), l->wr, NULL));
    return ctx->status;
}

static eqr_tensor *lin_forward(eqr_ctx *ctx, eqr_rlayer *l, eqr_tensor *x) {
    return eqr__lie_forward(ctx, l, l ? l->impl : NULL, x);
}
static eqr_tensor *lin_defect(eqr_ctx *ctx, eqr_rlayer *l) {
    return eqr__lie_defect(ctx, l, l ? l->impl : NULL);
}
static void lin_destroy(void *impl) { free(impl); }

/* no fold: no equivariant layer to fold into, projection acts as drop */
static const eqr_rlayer_ops lin_ops = {.kind = "linear", .forward = lin_forward,
                                       .defect = lin_defect, .probe = lin_probe,
                                       .destroy = lin_destroy};

/* Append the nonzeros of n generators [n][d][d] to nz at *k; off[a] =
 * start of generator a. */
static void add_nonzeros(const float *g, int n, int64_t d, eqr__lie_nz *nz, int64_t *k,
                         int64_t *off) {
    for (int a = 0; a < n; a++) {
        off[a] = *k;
        for (int64_t r = 0; r < d; r++)
            for (int64_t c = 0; c < d; c++)
                if (g[(a * d + r) * d + c] != 0.0f)
                    nz[(*k)++] = (eqr__lie_nz){(int32_t)r, (int32_t)c, g[(a * d + r) * d + c]};
    }
    off[n] = *k;
}

eqr__lie_pair *eqr__lie_pair_new(eqr_ctx *ctx, const char *fn, const eqr_lie_rep *in,
                                 const eqr_lie_rep *out) {
    if (check_lie_pair(ctx, fn, in, out)) return NULL;
    int64_t di = in->dim, dout = out->dim, ng = in->ngen, nnz = 0;
    for (int64_t i = 0; i < ng * di * di; i++) nnz += in->gens[i] != 0.0f;
    for (int64_t i = 0; i < ng * dout * dout; i++) nnz += out->gens[i] != 0.0f;
    lin_impl *im = malloc(sizeof *im + (size_t)(2 * (ng + 1)) * sizeof(int64_t) +
                          (size_t)(nnz + 1) * sizeof(eqr__lie_nz));
    if (!im) {
        eqr__fail(ctx, EQR_ERR_NOMEM, "%s: out of memory for the generators", fn);
        return NULL;
    }
    im->in_dim = in->dim;
    im->out_dim = out->dim;
    im->ngen = in->ngen;
    im->in_off = (int64_t *)(im + 1);
    im->out_off = im->in_off + ng + 1;
    im->nz = (eqr__lie_nz *)(im->out_off + ng + 1);
    int64_t k = 0;
    add_nonzeros(in->gens, (int)ng, di, im->nz, &k, im->in_off);
    add_nonzeros(out->gens, (int)ng, dout, im->nz, &k, im->out_off);
    return im;
}

eqr_rlayer *eqr_relax_linear(eqr_ctx *ctx, eqr_relax *r, const char *name,
                             const eqr_lie_rep *in, const eqr_lie_rep *out,
                             const eqr_rlayer_opts *opts) {
    if (!ctx || ctx->status != EQR_OK) return NULL;
    if (!r) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_relax_linear: relaxation is NULL");
        return NULL;
    }
    lin_impl *im = eqr__lie_pair_new(ctx, "eqr_relax_linear", in, out);
    if (!im) return NULL;
    int64_t shape[2] = {out->dim, in->dim};
    return eqr__rlayer_new(ctx, r, name, &lin_ops, im, 2, shape, opts);
}
