/* Irreps batch norm and layer norm (irreps_norm.h). Batch norm builds the
 * group table of the shared grouped batch-norm kernel (equi_norm.c), one
 * group per channel (copy of an irrep); layer norm is its own fused op, as
 * its statistics are per row and its weight varies inside a group. */
#include "core/internal.h"
#include "ops/bn_internal.h"
#include "groups/o3_internal.h"
#include "equirelax/irreps_norm.h"

#include <math.h>
#include <stdlib.h>

/* Centred channels: true scalars only (0o flips sign under parity). */
static int is_scalar(const eqr_irrep_entry *e) { return e->l == 0 && e->p == 1; }

/* Shared create checks: options filled, C and B counted. 0 on error. */
static int norm_setup(eqr_ctx *ctx, const char *fn, const char *name, const eqr_irreps *ir,
                      const eqr_irreps_norm_opts *opts, eqr_irreps_norm_opts *o, int *C, int *B) {
    if (!eqr__ok(ctx, 0)) return 0;
    if (!eqr__layer_name_ok(ctx, fn, name, ".running_mean")) return 0;
    if (!eqr__irreps_ok(ctx, fn, ir, 1)) return 0;
    *o = opts ? *opts : (eqr_irreps_norm_opts){0};
    if (o->eps == 0.0f) o->eps = 1e-5f;
    if (o->momentum == 0.0f) o->momentum = 0.1f;
    if (!(o->eps > 0.0f) || !isfinite(o->eps) || !(o->momentum > 0.0f && o->momentum <= 1.0f)) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: need eps > 0 and momentum in (0, 1] (got %g, %g)", fn,
                  (double)o->eps, (double)o->momentum);
        return 0;
    }
    int64_t c = 0, b = 0;
    for (int i = 0; i < ir->n; i++) {
        c += ir->e[i].mul;
        b += is_scalar(&ir->e[i]) ? ir->e[i].mul : 0;
    }
    if (c > INT32_MAX) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: %lld channels is too many", fn, (long long)c);
        return 0;
    }
    *C = (int)c;
    *B = (int)b;
    return 1;
}

/* x must end in dim(ir): EQR_ERR_SHAPE naming the irreps otherwise. */
static int check_x(eqr_ctx *ctx, const char *fn, const eqr_irreps *ir, int64_t dim,
                   const eqr_tensor *x) {
    if (x->ndim >= 1 && x->shape[x->ndim - 1] == dim) return 1;
    char bi[512], bs[EQR_SHAPE_BUF];
    eqr_irreps_str(ir, bi, sizeof bi);
    eqr__fail(ctx, EQR_ERR_SHAPE, "%s: x %s must end in %lld, the dim of the layer's irreps %s", fn,
              EQR_SHAPE(x, bs), (long long)dim, bi);
    return 0;
}

/* ---------------------------------------------------------- batch norm */

struct eqr_irreps_bn {
    eqr_irreps ir;
    int64_t dim;
    int training;
    eqr__bn bn;
    eqr__bn_group *grp;
};

eqr_irreps_bn *eqr_irreps_bn_create(eqr_ctx *ctx, const char *name, const eqr_irreps *irreps,
                                    const eqr_irreps_norm_opts *opts) {
    static const char fn[] = "eqr_irreps_bn_create";
    eqr_irreps_norm_opts o;
    int C, B;
    if (!norm_setup(ctx, fn, name, irreps, opts, &o, &C, &B)) return NULL;
    const char *suffixes[4] = {".running_var", ".running_mean", ".weight", ".bias"};
    int np = 1 + (B > 0);
    if (!o.no_affine) {
        suffixes[np++] = ".weight";
        if (B > 0) suffixes[np++] = ".bias";
    }
    if (!eqr__param_names_free(ctx, fn, name, np, suffixes)) return NULL;
    eqr_irreps_bn *L = calloc(1, sizeof *L);
    eqr__bn_group *grp = calloc((size_t)C, sizeof *grp);
    if (!L || !grp) {
        free(L);
        free(grp);
        eqr__fail(ctx, EQR_ERR_NOMEM, "%s: out of memory", fn);
        return NULL;
    }
    int s = 0, b = 0;
    for (int i = 0; i < irreps->n; i++) {
        const eqr_irrep_entry *e = &irreps->e[i];
        const int d = 2 * e->l + 1;
        const int64_t off = eqr_irreps_offset(irreps, i);
        for (int u = 0; u < e->mul; u++, s++) {
            grp[s].off = (int32_t)(off + (int64_t)u * d);
            grp[s].cnt = d;
            grp[s].centre = is_scalar(e) ? b++ : -1;
        }
    }
    L->ir = *irreps;
    L->dim = eqr_irreps_dim(irreps);
    L->training = 1;
    L->grp = grp;
    L->bn = (eqr__bn){.grp = grp, .S = C, .B = B, .eps = o.eps, .momentum = o.momentum};
    if (!o.no_affine) {
        L->bn.weight = eqr__param_filled(ctx, name, ".weight", 1, (int64_t[]){C},
                                         EQR_PARAM_NO_DECAY, 1.0f);
        if (B > 0) L->bn.bias = eqr__param_filled(ctx, name, ".bias", 1, (int64_t[]){B},
                                                  EQR_PARAM_NO_DECAY, 0.0f);
    }
    if (B > 0) L->bn.rmean = eqr__param_filled(ctx, name, ".running_mean", 1, (int64_t[]){B},
                                               EQR_PARAM_BUFFER, 0.0f);
    L->bn.rvar = eqr__param_filled(ctx, name, ".running_var", 1, (int64_t[]){C},
                                   EQR_PARAM_BUFFER, 1.0f);
    if (ctx->status != EQR_OK) {
        eqr_irreps_bn_destroy(L);
        return NULL;
    }
    return L;
}

eqr_tensor *eqr_irreps_bn_forward(eqr_ctx *ctx, eqr_irreps_bn *L, eqr_tensor *x) {
    static const char fn[] = "eqr_irreps_bn_forward";
    if (!eqr__ok(ctx, 1, x)) return NULL;
    if (!L) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: NULL layer", fn);
        return NULL;
    }
    if (!check_x(ctx, fn, &L->ir, L->dim, x)) return NULL;
    const int64_t N = x->numel / L->dim;
    /* batch statistics of no values would be 0/0 in the running buffers */
    if (L->training && (N < 1 || (L->bn.B > 0 && N < 2))) {
        char bs[EQR_SHAPE_BUF];
        eqr__fail(ctx, EQR_ERR_SHAPE,
                  "%s: training needs a row (more than one with 0e channels), x is %s", fn,
                  EQR_SHAPE(x, bs));
        return NULL;
    }
    return eqr__bn_apply(ctx, &L->bn, x, N, L->dim, 1, L->training);
}

void eqr_irreps_bn_set_training(eqr_irreps_bn *L, int training) {
    if (L) L->training = training ? 1 : 0;
}
int eqr_irreps_bn_training(const eqr_irreps_bn *L) { return L ? L->training : 0; }
const eqr_irreps *eqr_irreps_bn_irreps(const eqr_irreps_bn *L) { return L ? &L->ir : NULL; }
eqr_tensor *eqr_irreps_bn_weight(const eqr_irreps_bn *L) { return L ? L->bn.weight : NULL; }
eqr_tensor *eqr_irreps_bn_bias(const eqr_irreps_bn *L) { return L ? L->bn.bias : NULL; }
eqr_tensor *eqr_irreps_bn_running_mean(const eqr_irreps_bn *L) { return L ? L->bn.rmean : NULL; }
eqr_tensor *eqr_irreps_bn_running_var(const eqr_irreps_bn *L) { return L ? L->bn.rvar : NULL; }

void eqr_irreps_bn_destroy(eqr_irreps_bn *L) {
    if (!L) return;
    free(L->grp);
    free(L);
}

/* ---------------------------------------------------------- layer norm */

struct eqr_irreps_ln {
    eqr_irreps ir;
    int64_t dim;
    float eps;
    int64_t choff[EQR_IRREPS_MAX], boff[EQR_IRREPS_MAX]; /* first channel / 0e channel of entry */
    eqr_tensor *weight, *bias;
};

eqr_irreps_ln *eqr_irreps_ln_create(eqr_ctx *ctx, const char *name, const eqr_irreps *irreps,
                                    const eqr_irreps_norm_opts *opts) {
    static const char fn[] = "eqr_irreps_ln_create";
    eqr_irreps_norm_opts o;
    int C, B;
    if (!norm_setup(ctx, fn, name, irreps, opts, &o, &C, &B)) return NULL;
    const char *suffixes[2] = {".weight", ".bias"};
    if (!o.no_affine && !eqr__param_names_free(ctx, fn, name, 1 + (B > 0), suffixes)) return NULL;
    eqr_irreps_ln *L = eqr__calloc(ctx, fn, 1, sizeof *L);
    if (!L) return NULL;
    L->ir = *irreps;
    L->dim = eqr_irreps_dim(irreps);
    L->eps = o.eps;
    int64_t c = 0, b = 0;
    for (int i = 0; i < irreps->n; i++) {
        L->choff[i] = c;
        L->boff[i] = is_scalar(&irreps->e[i]) ? b : -1;
        c += irreps->e[i].mul;
        b += is_scalar(&irreps->e[i]) ? irreps->e[i].mul : 0;
    }
    if (!o.no_affine) {
        L->weight = eqr__param_filled(ctx, name, ".weight", 1, (int64_t[]){C},
                                      EQR_PARAM_NO_DECAY, 1.0f);
        if (B > 0) L->bias = eqr__param_filled(ctx, name, ".bias", 1, (int64_t[]){B},
                                               EQR_PARAM_NO_DECAY, 0.0f);
    }
    if (ctx->status != EQR_OK) {
        free(L);
        return NULL;
    }
    return L;
}

/* Saved per (row, entry): the mean (0 unless 0e) and 1/sqrt(var + eps). */
typedef struct ln_saved {
    const eqr_irreps_ln *L;
    double *mean, *istd; /* [rows][n] */
} ln_saved;

/* Per row and entry, with g' = w_u g and xh = (x - mean) istd over the M
 * values: dx = istd (g' - [0e] mean(g') - xh mean(g' xh)), dw_u = sum g xh,
 * db_u = sum g. */
static void ln_backward(eqr_ctx *ctx, eqr_node *nd) {
    const ln_saved *sv = nd->saved;
    const eqr_irreps_ln *L = sv->L;
    eqr_tensor *x = nd->in[0], *w = nd->in[1], *bias = nd->in[2];
    float *gx = NULL, *gw = NULL, *gb = NULL;
    if (eqr__needs_grad(x) && !(gx = eqr__grad(ctx, x))) return;
    if (eqr__needs_grad(w) && !(gw = eqr__grad(ctx, w))) return;
    if (eqr__needs_grad(bias) && !(gb = eqr__grad(ctx, bias))) return;
    const float *gy = nd->out->grad;
    const int64_t rows = x->numel / L->dim, n = L->ir.n;
    for (int64_t r = 0; r < rows; r++)
        for (int i = 0; i < n; i++) {
            const eqr_irrep_entry *e = &L->ir.e[i];
            if (!e->mul) continue;
            const int d = 2 * e->l + 1;
            const int64_t off = r * L->dim + eqr_irreps_offset(&L->ir, i), M = (int64_t)e->mul * d;
            const float *xp = x->data + off, *gp = gy + off;
            const double mu = sv->mean[r * n + i], is = sv->istd[r * n + i];
            double sg = 0, sgx = 0;
            for (int u = 0; u < e->mul; u++) {
                const double wu = w ? w->data[L->choff[i] + u] : 1.0;
                double cg = 0, cgx = 0;
                for (int m = 0; m < d; m++) {
                    const double xh = (xp[u * d + m] - mu) * is;
                    cg += gp[u * d + m];
                    cgx += gp[u * d + m] * xh;
                }
                if (gw) gw[L->choff[i] + u] += (float)cgx;
                if (gb && L->boff[i] >= 0) gb[L->boff[i] + u] += (float)cg;
                sg += wu * cg;
                sgx += wu * cgx;
            }
            if (!gx) continue;
            const double k1 = L->boff[i] >= 0 ? sg / (double)M : 0.0, k2 = sgx / (double)M;
            for (int u = 0; u < e->mul; u++) {
                const double wu = w ? w->data[L->choff[i] + u] : 1.0;
                for (int m = 0; m < d; m++) {
                    const double xh = (xp[u * d + m] - mu) * is;
                    gx[off + u * d + m] += (float)(is * (wu * gp[u * d + m] - k1 - xh * k2));
                }
            }
        }
}

eqr_tensor *eqr_irreps_ln_forward(eqr_ctx *ctx, eqr_irreps_ln *L, eqr_tensor *x) {
    static const char fn[] = "eqr_irreps_ln_forward";
    if (!eqr__ok(ctx, 1, x)) return NULL;
    if (!L) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: NULL layer", fn);
        return NULL;
    }
    if (!check_x(ctx, fn, &L->ir, L->dim, x)) return NULL;
    const int64_t rows = x->numel / L->dim, n = L->ir.n;
    eqr_tensor *y = eqr__tensor_empty(ctx, x->ndim, x->shape);
    ln_saved *sv = y ? eqr__arena_alloc(ctx, sizeof *sv) : NULL;
    double *st = sv ? eqr__arena_alloc(ctx, 2 * (size_t)(rows * n) * sizeof *st + 1) : NULL;
    if (!st) return NULL;
    sv->L = L;
    sv->mean = st;
    sv->istd = st + rows * n;
    for (int64_t r = 0; r < rows; r++)
        for (int i = 0; i < n; i++) {
            const eqr_irrep_entry *e = &L->ir.e[i];
            const int d = 2 * e->l + 1;
            const int64_t off = r * L->dim + eqr_irreps_offset(&L->ir, i), M = (int64_t)e->mul * d;
            const float *xp = x->data + off;
            double mu = 0, ss = 0;
            if (L->boff[i] >= 0) {
                for (int64_t k = 0; k < M; k++) mu += xp[k];
                mu = M ? mu / (double)M : 0.0;
            }
            for (int64_t k = 0; k < M; k++) ss += (xp[k] - mu) * (xp[k] - mu);
            const double is = 1.0 / sqrt((M ? ss / (double)M : 0.0) + L->eps);
            sv->mean[r * n + i] = mu;
            sv->istd[r * n + i] = is;
            for (int u = 0; u < e->mul; u++) {
                const double a = (L->weight ? L->weight->data[L->choff[i] + u] : 1.0) * is;
                const double b = L->bias && L->boff[i] >= 0 ? L->bias->data[L->boff[i] + u] : 0.0;
                for (int m = 0; m < d; m++)
                    y->data[off + u * d + m] = (float)(a * (xp[u * d + m] - mu) + b);
            }
        }
    eqr_tensor *in[3] = {x, L->weight, L->bias};
    eqr_node *nd = eqr__record(ctx, y, ln_backward, 3, in);
    if (nd) nd->saved = sv;
    return y;
}

const eqr_irreps *eqr_irreps_ln_irreps(const eqr_irreps_ln *L) { return L ? &L->ir : NULL; }
eqr_tensor *eqr_irreps_ln_weight(const eqr_irreps_ln *L) { return L ? L->weight : NULL; }
eqr_tensor *eqr_irreps_ln_bias(const eqr_irreps_ln *L) { return L ? L->bias : NULL; }
void eqr_irreps_ln_destroy(eqr_irreps_ln *L) { free(L); }
