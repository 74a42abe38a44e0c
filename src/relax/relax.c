/* Relaxation core (relax.h): the global theta, the list of relaxed layers,
 * the penalties built from their terms, projection and telemetry. The kinds
 * of relaxed layer (relax_conv.c, relax_linear.c, 3D modules) plug in via
 * eqr_rlayer_ops (relax_internal.h). */
#include "relax/relax_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

struct eqr_relax {
    eqr_ctx *ctx;
    char name[EQR_NAME_LEN];
    eqr_relax_opts opts; /* init_std filled in */
    eqr_tensor *theta;   /* "<name>.theta" buffer [1] */
    eqr_rlayer **layers;
    int nlayers, cap;
    eqr_relax_reduce_fn reduce; /* data parallel: sums over ranks (NULL: none) */
    void *reduce_user;
};

/* ------------------------------------------------------------ small ops */

static void ssqrt_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *x = n->in[0], *y = n->out;
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    const float *gy = y->grad;
    /* d sqrt(x)/dx = 1 / (2 sqrt(x)), defined as 0 where x <= 0 so a penalty
     * of an all-zero W_r contributes nothing instead of 0 * inf = NaN. */
    for (int64_t i = 0; i < x->numel; i++)
        if (y->data[i] > 0.0f) gx[i] += gy[i] * 0.5f / y->data[i];
}

eqr_tensor *eqr__ssqrt(eqr_ctx *ctx, eqr_tensor *x) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    eqr_tensor *y = eqr__tensor_empty(ctx, x->ndim, x->shape);
    if (!y) return NULL;
    /* rounding may leave a sum of squares a hair below 0: clamp */
    for (int64_t i = 0; i < x->numel; i++) y->data[i] = x->data[i] > 0.0f ? sqrtf(x->data[i]) : 0.0f;
    eqr__record(ctx, y, ssqrt_backward, 1, &x);
    return y;
}

/* A fresh scalar [1] holding 0 (no gradient). */
static eqr_tensor *zero_scalar(eqr_ctx *ctx) {
    int64_t one = 1;
    return eqr_tensor_zeros(ctx, 1, &one);
}

/* 1 if t (a per-step term) was recorded in the current step: it is the
 * output of a live tape node. Guards against a term left over from a step
 * whose arena was reset without a call to eqr_relax_penalty. */
static int term_live(const eqr_ctx *ctx, const eqr_tensor *t) {
    return t && !ctx->tape_consumed && t->node >= 0 && t->node < ctx->tape_len &&
           ctx->tape[t->node].out == t;
}

/* -------------------------------------------------------- the relaxation */

eqr_relax *eqr_relax_create(eqr_ctx *ctx, const char *name, const eqr_relax_opts *opts) {
    static const char *fn = "eqr_relax_create";
    if (!ctx || ctx->status != EQR_OK) return NULL;
    if (!name || !*name || strlen(name) + strlen(".theta") >= EQR_NAME_LEN) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: name '%s' is NULL, empty or too long (need 1..%d characters)",
                  fn, name ? name : "(null)", (int)(EQR_NAME_LEN - 1 - strlen(".theta")));
        return NULL;
    }
    eqr_relax_opts o = opts ? *opts : (eqr_relax_opts){0};
    if (!isfinite(o.theta) || !isfinite(o.lambda_defect) || !isfinite(o.lambda_norm) ||
        !isfinite(o.init_std)) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s(%s): theta, lambdas and init_std must be finite", fn, name);
        return NULL;
    }
    if (o.lambda_defect < 0 || o.lambda_norm < 0) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s(%s): negative penalty weight (lambda_defect %g, lambda_norm %g)",
                  fn, name, o.lambda_defect, o.lambda_norm);
        return NULL;
    }
    if (o.init_std < 0) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s(%s): negative init_std %g", fn, name, o.init_std);
        return NULL;
    }
    if (o.norm_subsample < 0) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s(%s): negative norm_subsample %d", fn, name, o.norm_subsample);
        return NULL;
    }
    if (o.init != EQR_RELAX_INIT_ZERO && o.init != EQR_RELAX_INIT_NORMAL) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s(%s): unknown init %d", fn, name, (int)o.init);
        return NULL;
    }
    if (o.lie_form != EQR_LIE_WEIGHT && o.lie_form != EQR_LIE_ACTIVATION) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s(%s): unknown lie_form %d", fn, name, (int)o.lie_form);
        return NULL;
    }
    if (o.penalty_grad != EQR_PENALTY_DETACHED && o.penalty_grad != EQR_PENALTY_FULL) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s(%s): unknown penalty_grad %d", fn, name, (int)o.penalty_grad);
        return NULL;
    }
    if (!isfinite(o.dual_lr) || !isfinite(o.slack_cost) || o.dual_lr < 0 || o.slack_cost < 0) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s(%s): dual_lr %g and slack_cost %g must be finite and >= 0",
                  fn, name, o.dual_lr, o.slack_cost);
        return NULL;
    }
    if (o.orthogonal != 0 && o.orthogonal != 1) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s(%s): orthogonal must be 0 or 1, got %d", fn, name,
                  o.orthogonal);
        return NULL;
    }
    if (o.adaptive != 0 && o.adaptive != 1) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s(%s): adaptive must be 0 or 1, got %d", fn, name, o.adaptive);
        return NULL;
    }
    if (!isfinite(o.wr_scale) || o.wr_scale < 0) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s(%s): wr_scale %g must be finite and >= 0 (0 = 1)", fn,
                  name, o.wr_scale);
        return NULL;
    }
    if (o.wr_scale == 0) o.wr_scale = 1.0f;
    if (o.init_std == 0) o.init_std = 1e-2f;
    if (o.dual_lr == 0) o.dual_lr = 0.1f;
    char pname[EQR_NAME_LEN];
    snprintf(pname, sizeof pname, "%s.theta", name);
    if (eqr_param_find(ctx, pname)) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: a parameter named '%s' already exists", fn, pname);
        return NULL;
    }
    eqr_relax *r = eqr__calloc(ctx, fn, 1, sizeof *r);
    if (!r) return NULL;
    int64_t one = 1;
    r->theta = eqr_param_create(ctx, pname, 1, &one, EQR_PARAM_BUFFER);
    if (!r->theta) {
        free(r);
        return NULL;
    }
    r->theta->data[0] = o.theta;
    r->ctx = ctx;
    r->opts = o;
    snprintf(r->name, sizeof r->name, "%s", name);
    return r;
}

void eqr_relax_destroy(eqr_relax *r) {
    if (!r) return;
    for (int i = 0; i < r->nlayers; i++) {
        eqr_rlayer *l = r->layers[i];
        if (l->ops->destroy) l->ops->destroy(l->impl);
        free(l);
    }
    free(r->layers);
    free(r);
}

eqr_tensor *eqr_relax_theta(eqr_relax *r) { return r ? r->theta : NULL; }

void eqr_relax_set_theta(eqr_relax *r, float value) {
    if (!r) return;
    r->theta->data[0] = value;
    for (int i = 0; i < r->nlayers; i++)
        if (r->layers[i]->own_theta) r->layers[i]->theta->data[0] = value;
}

const eqr_relax_opts *eqr_relax_get_opts(const eqr_relax *r) { return r ? &r->opts : NULL; }

void eqr_relax_set_lambdas(eqr_relax *r, float lambda_defect, float lambda_norm) {
    if (!r) return;
    /* negative or non-finite weights would flip the penalty: clamp to off */
    r->opts.lambda_defect = lambda_defect > 0 && isfinite(lambda_defect) ? lambda_defect : 0.0f;
    r->opts.lambda_norm = lambda_norm > 0 && isfinite(lambda_norm) ? lambda_norm : 0.0f;
}

void eqr_relax_set_penalty_grad(eqr_relax *r, eqr_penalty_grad mode) {
    if (r && (mode == EQR_PENALTY_DETACHED || mode == EQR_PENALTY_FULL)) r->opts.penalty_grad = mode;
}

/* -------------------------------------------------------- relaxed layers */

eqr_rlayer *eqr__rlayer_new(eqr_ctx *ctx, eqr_relax *r, const char *name,
                            const eqr_rlayer_ops *ops, void *impl, int ndim,
                            const int64_t *wr_shape, const eqr_rlayer_opts *opts) {
    static const char *fn = "eqr_relax: new relaxed layer";
    eqr_rlayer *l = NULL;
    char pw[EQR_NAME_LEN], pt[EQR_NAME_LEN], pm[EQR_NAME_LEN];
    /* adaptive: every layer has its own (learnable) theta */
    int own = (opts && opts->own_theta) || (r && r->opts.adaptive);
    if (!ctx || ctx->status != EQR_OK) goto fail;
    if (!r || !ops || !ops->forward || !ops->defect || !wr_shape) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: relaxation, ops (forward, defect) and W_r shape are required",
                  fn);
        goto fail;
    }
    if (r->ctx != ctx) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s(%s): the relaxation belongs to another context", fn,
                  name ? name : "(null)");
        goto fail;
    }
    if (opts && opts->kind != EQR_RELAX_KIND_ADDITIVE && opts->kind != EQR_RELAX_KIND_RGCONV) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s(%s): unknown relaxation kind %d in eqr_rlayer_opts", fn,
                  name ? name : "(null)", (int)opts->kind);
        goto fail;
    }
    if (opts && opts->kind == EQR_RELAX_KIND_RGCONV && strcmp(ops->kind, "rgconv") != 0) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s(%s): relaxation kind rgconv (relaxed group conv) "
                  "applies to group convs (gconv) only, not to a layer of kind '%s'", fn,
                  name ? name : "(null)", ops->kind);
        goto fail;
    }
    if (opts && opts->kind == EQR_RELAX_KIND_ADDITIVE && opts->nbanks != 0) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s(%s): nbanks %d is set but the relaxation kind is "
                  "additive (nbanks is for EQR_RELAX_KIND_RGCONV)", fn, name ? name : "(null)",
                  opts->nbanks);
        goto fail;
    }
    if (!name || !*name || strlen(name) + strlen(".theta") >= EQR_NAME_LEN) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: name '%s' is NULL, empty or too long (need 1..%d characters)",
                  fn, name ? name : "(null)", (int)(EQR_NAME_LEN - 1 - strlen(".theta")));
        goto fail;
    }
    const int adaptive = r->opts.adaptive;
    snprintf(pw, sizeof pw, "%s.wr", name);
    snprintf(pt, sizeof pt, "%s.theta", name);
    snprintf(pm, sizeof pm, "%s.mult", name);
    /* check every name first: the store cannot remove a parameter */
    const char *taken = eqr_param_find(ctx, pw) ? pw
                        : own && eqr_param_find(ctx, pt) ? pt
                        : adaptive && eqr_param_find(ctx, pm) ? pm : NULL;
    if (taken) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: a parameter named '%s' already exists", fn, taken);
        goto fail;
    }
    if (eqr__shape_check(ctx, fn, "W_r shape", ndim, wr_shape) < 0) goto fail;
    if (r->nlayers == r->cap) {
        int cap = r->cap ? 2 * r->cap : 8;
        eqr_rlayer **nl = realloc(r->layers, (size_t)cap * sizeof *nl);
        if (!nl) {
            eqr__fail(ctx, EQR_ERR_NOMEM, "%s(%s): out of memory", fn, name);
            goto fail;
        }
        r->layers = nl;
        r->cap = cap;
    }
    l = calloc(1, sizeof *l);
    if (!l) {
        eqr__fail(ctx, EQR_ERR_NOMEM, "%s(%s): out of memory", fn, name);
        goto fail;
    }
    l->wr = eqr_param_create(ctx, pw, ndim, wr_shape, 0);
    if (!l->wr) goto fail;
    if (own) {
        int64_t one = 1;
        l->theta = eqr_param_create(ctx, pt, 1, &one,
                                 adaptive ? EQR_PARAM_NO_DECAY : EQR_PARAM_BUFFER);
        if (!l->theta) goto fail;
        l->theta->data[0] = r->theta->data[0];
        if (adaptive) {
            l->mult = eqr_param_create(ctx, pm, 1, &one, EQR_PARAM_BUFFER);
            if (!l->mult) goto fail;
        }
    } else {
        l->theta = r->theta;
    }
    if (r->opts.init == EQR_RELAX_INIT_NORMAL)
        eqr_tensor_normal(l->wr, eqr_ctx_rng(ctx), r->opts.init_std);
    l->ops = ops;
    l->relax = r;
    snprintf(l->name, sizeof l->name, "%s", name);
    l->own_theta = own;
    l->impl = impl;
    l->last_act_norm = -1.0f;
    r->layers[r->nlayers++] = l;
    return l;
fail:
    free(l);
    if (ops && ops->destroy) ops->destroy(impl);
    return NULL;
}

float eqr__rlayer_theta(const eqr_rlayer *l) {
    const float s = l->relax->opts.wr_scale;
    return s == 1.0f ? l->theta->data[0] : s * l->theta->data[0];
}

eqr_tensor *eqr__rlayer_scale(eqr_ctx *ctx, const eqr_rlayer *l, eqr_tensor *t) {
    /* a learnable theta takes its gradient through the product */
    if (l->mult && eqr__needs_grad(l->theta) && ctx->grad_enabled) {
        const float s = l->relax->opts.wr_scale;
        eqr_tensor *y = eqr_mul(ctx, t, l->theta);
        return s == 1.0f ? y : eqr_scale(ctx, y, s);
    }
    return eqr_scale(ctx, t, eqr__rlayer_theta(l));
}

int eqr__rlayer_wants_norm(eqr_ctx *ctx, const eqr_rlayer *l) {
    return ctx->grad_enabled && l->relax->opts.lambda_norm > 0;
}

int eqr__rlayer_active(eqr_ctx *ctx, const eqr_rlayer *l) {
    const eqr_relax_opts *o = &l->relax->opts;
    return eqr__rlayer_theta(l) != 0.0f || eqr__rlayer_wants_norm(ctx, l) ||
           (ctx->grad_enabled && o->lambda_defect > 0 && o->lie_form == EQR_LIE_ACTIVATION);
}

int eqr__rlayer_detached(const eqr_rlayer *l) {
    return l->relax->opts.penalty_grad == EQR_PENALTY_DETACHED;
}

eqr_tensor *eqr__rlayer_penalty_input(eqr_ctx *ctx, const eqr_rlayer *l, eqr_tensor *x) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    if (!eqr__rlayer_detached(l)) return x;
    /* same data, no tape link: the penalty's gradient stops here */
    return eqr_tensor_wrap(ctx, x->data, x->ndim, x->shape);
}

void eqr__rlayer_set_norm(eqr_rlayer *l, eqr_tensor *n) {
    l->norm_term = n;
    if (n) l->last_act_norm = sqrtf(n->data[0] > 0 ? n->data[0] : 0.0f);
}

int64_t eqr__rlayer_norm_rows(const eqr_rlayer *l, int64_t n, float *scale) {
    int64_t m = l->relax->opts.norm_subsample;
    if (m <= 0 || m >= n) {
        if (scale) *scale = 1.0f;
        return n;
    }
    if (scale) *scale = (float)((double)n / (double)m);
    return m;
}

/* ------------------------------------------------------------- penalties */

/* a + b where either may be NULL (NULL + NULL = NULL). */
static eqr_tensor *add_opt(eqr_ctx *ctx, eqr_tensor *a, eqr_tensor *b) {
    if (!a) return b;
    if (!b) return a;
    return eqr_add(ctx, a, b);
}

/* Sum of LD over layers, NULL if there are no layers. */
static eqr_tensor *defect_sum(eqr_ctx *ctx, eqr_relax *r) {
    eqr_tensor *sum = NULL;
    for (int i = 0; i < r->nlayers && ctx->status == EQR_OK; i++) {
        eqr_rlayer *l = r->layers[i];
        /* a layer that recorded the activation form of its Lie derivative
         * this step contributes it in place of its weight form */
        eqr_tensor *t = term_live(ctx, l->lie_act_term) ? l->lie_act_term : l->ops->defect(ctx, l);
        if (!t) return NULL;
        sum = add_opt(ctx, sum, t);
    }
    return sum;
}

eqr_tensor *eqr_relax_defect(eqr_ctx *ctx, eqr_relax *r) {
    if (!ctx || ctx->status != EQR_OK) return NULL;
    if (!r) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_relax_defect: relaxation is NULL");
        return NULL;
    }
    eqr_tensor *s = defect_sum(ctx, r);
    if (ctx->status != EQR_OK) return NULL;
    return s ? s : zero_scalar(ctx);
}

static void consume_terms(eqr_relax *r) {
    for (int i = 0; i < r->nlayers; i++) {
        r->layers[i]->norm_term = NULL;
        r->layers[i]->lie_act_term = NULL;
    }
}

void eqr_relax_set_reduce(eqr_relax *r, eqr_relax_reduce_fn fn, void *user) {
    if (!r) return;
    r->reduce = fn;
    r->reduce_user = user;
}

/* lam * ssqrt(D) of the global batch, D = rep + S with rep a term that is
 * the same on every rank (weight-form defects; NULL: 0) and S the sum over
 * ranks of this rank's batch term loc (activation norms or activation-form
 * defects; NULL: 0). Its value is that on every rank; its gradient is
 * c = lam / (2 sqrt D) times rep's plus c / w times loc's, w this rank's
 * weight in the gradient average, so that the weighted mean over ranks is
 * the gradient of lam ssqrt(D). Collective (the reduce is), so it is
 * called on every rank alike, also with nothing local. */
static eqr_tensor *reduced_root(eqr_ctx *ctx, eqr_relax *r, double lam, eqr_tensor *rep,
                                eqr_tensor *loc) {
    double s = loc ? (double)loc->data[0] : 0.0, S = s, inv_w = 1.0;
    eqr_status st = r->reduce(ctx, r->reduce_user, &S, &inv_w);
    if (st != EQR_OK) {
        if (ctx->status == EQR_OK)
            eqr__fail(ctx, st, "eqr_relax_penalty(%s): the reduce callback failed", r->name);
        return NULL;
    }
    const double rv = rep ? (double)rep->data[0] : 0.0, D = rv + S;
    const double root = D > 0 ? sqrt(D) : 0.0, c = root > 0 ? lam * 0.5 / root : 0.0;
    eqr_tensor *k = zero_scalar(ctx);
    if (!k) return NULL;
    k->data[0] = (float)(lam * root - c * rv - c * inv_w * s);
    eqr_tensor *out = k;
    if (rep) out = eqr_add(ctx, out, eqr_scale(ctx, rep, (float)c));
    if (loc) out = eqr_add(ctx, out, eqr_scale(ctx, loc, (float)(c * inv_w)));
    return out;
}

eqr_tensor *eqr_relax_penalty(eqr_ctx *ctx, eqr_relax *r) {
    if (!ctx || ctx->status != EQR_OK) return NULL;
    if (!r) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_relax_penalty: relaxation is NULL");
        return NULL;
    }
    eqr_tensor *pen = NULL;
    if (r->opts.lambda_defect > 0 && r->reduce && r->opts.lie_form == EQR_LIE_ACTIVATION) {
        /* activation-form terms are sums over this rank's share: reduce */
        eqr_tensor *rep = NULL, *loc = NULL;
        for (int i = 0; i < r->nlayers && ctx->status == EQR_OK; i++) {
            eqr_rlayer *l = r->layers[i];
            if (term_live(ctx, l->lie_act_term)) loc = add_opt(ctx, loc, l->lie_act_term);
            else rep = add_opt(ctx, rep, l->ops->defect(ctx, l));
        }
        if (ctx->status == EQR_OK)
            pen = add_opt(ctx, pen, reduced_root(ctx, r, r->opts.lambda_defect, rep, loc));
    } else if (r->opts.lambda_defect > 0) {
        eqr_tensor *ld = defect_sum(ctx, r);
        if (ld) pen = eqr_scale(ctx, eqr__ssqrt(ctx, ld), r->opts.lambda_defect);
    }
    if (r->opts.lambda_norm > 0 && ctx->status == EQR_OK) {
        eqr_tensor *ns = NULL;
        for (int i = 0; i < r->nlayers; i++)
            if (term_live(ctx, r->layers[i]->norm_term)) ns = add_opt(ctx, ns, r->layers[i]->norm_term);
        if (r->reduce) {
            pen = add_opt(ctx, pen, reduced_root(ctx, r, r->opts.lambda_norm, NULL, ns));
        } else if (ns) {
            pen = add_opt(ctx, pen, eqr_scale(ctx, eqr__ssqrt(ctx, ns), r->opts.lambda_norm));
        }
    }
    if (r->opts.adaptive && ctx->status == EQR_OK)
        for (int i = 0; i < r->nlayers; i++) {
            /* mult_i |theta_i|: gradient mult_i sign(theta_i) (0 at 0) */
            eqr_rlayer *l = r->layers[i];
            const float th = l->theta->data[0], m = l->mult->data[0];
            if (m == 0.0f || th == 0.0f) continue;
            eqr_tensor *c = zero_scalar(ctx);
            if (!c) break;
            c->data[0] = th > 0 ? m : -m;
            pen = add_opt(ctx, pen, eqr_mul(ctx, l->theta, c));
        }
    consume_terms(r);
    if (ctx->status != EQR_OK) return NULL;
    if (!pen) return zero_scalar(ctx);
    int64_t one = 1;
    return pen->ndim == 1 ? pen : eqr_reshape(ctx, pen, 1, &one);
}

eqr_status eqr_relax_dual_step(eqr_ctx *ctx, eqr_relax *r) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!r) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_relax_dual_step: relaxation is NULL");
    if (!r->opts.adaptive) return EQR_OK;
    const double eps = fabs((double)r->theta->data[0]);
    for (int i = 0; i < r->nlayers; i++) {
        eqr_rlayer *l = r->layers[i];
        const double m = l->mult->data[0];
        const double g = fabs((double)l->theta->data[0]) - eps - (double)r->opts.slack_cost * m;
        const double nm = m + (double)r->opts.dual_lr * g;
        l->mult->data[0] = nm > 0 ? (float)nm : 0.0f;
    }
    return EQR_OK;
}

eqr_status eqr_relax_orthogonalize(eqr_ctx *ctx, eqr_relax *r) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!r) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_relax_orthogonalize: relaxation is NULL");
    for (int i = 0; i < r->nlayers; i++) {
        eqr_rlayer *l = r->layers[i];
        if (l->ops->split && l->ops->split(ctx, l, eqr__rlayer_theta(l)) != EQR_OK)
            return ctx->status;
    }
    return EQR_OK;
}

eqr_status eqr_relax_after_step(eqr_ctx *ctx, eqr_relax *r) {
    if (eqr_relax_dual_step(ctx, r) != EQR_OK) return ctx->status;
    return r->opts.orthogonal ? eqr_relax_orthogonalize(ctx, r) : EQR_OK;
}

eqr_tensor *eqr_rlayer_multiplier(const eqr_rlayer *l) { return l ? l->mult : NULL; }

/* ------------------------------------------------------------ projection */

eqr_status eqr_relax_project(eqr_ctx *ctx, eqr_relax *r, eqr_project_mode mode) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!r) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_relax_project: relaxation is NULL");
    if (mode != EQR_PROJECT_DROP && mode != EQR_PROJECT_FOLD)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_relax_project: unknown mode %d", (int)mode);
    /* fold everything first so that a failure leaves every W_r in place */
    for (int i = 0; i < r->nlayers; i++) {
        eqr_rlayer *l = r->layers[i];
        float th = eqr__rlayer_theta(l);
        if (!l->ops->fold) continue;
        if (!l->ops->fold_always && (mode != EQR_PROJECT_FOLD || th == 0.0f)) continue;
        eqr_status st = l->ops->fold(ctx, l, th);
        if (st != EQR_OK) return st;
    }
    for (int i = 0; i < r->nlayers; i++) {
        eqr_rlayer *l = r->layers[i];
        memset(l->wr->data, 0, (size_t)l->wr->numel * sizeof(float));
        l->theta->data[0] = 0.0f;
    }
    r->theta->data[0] = 0.0f;
    consume_terms(r);
    return EQR_OK;
}

/* ------------------------------------------------------------- telemetry */

int eqr_relax_num_layers(const eqr_relax *r) { return r ? r->nlayers : 0; }

eqr_rlayer *eqr_relax_layer(eqr_relax *r, int i) {
    return r && i >= 0 && i < r->nlayers ? r->layers[i] : NULL;
}

const char *eqr_rlayer_name(const eqr_rlayer *l) { return l ? l->name : NULL; }
const char *eqr_rlayer_kind(const eqr_rlayer *l) { return l ? l->ops->kind : NULL; }
eqr_tensor *eqr_rlayer_wr(const eqr_rlayer *l) { return l ? l->wr : NULL; }
eqr_tensor *eqr_rlayer_theta(const eqr_rlayer *l) { return l ? l->theta : NULL; }

eqr_tensor *eqr_rlayer_forward(eqr_ctx *ctx, eqr_rlayer *l, eqr_tensor *x) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    if (!l) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_rlayer_forward: layer is NULL");
        return NULL;
    }
    l->last_x = x;
    l->last_x_step = ctx->step_id;
    return l->ops->forward(ctx, l, x);
}

double eqr__norm_of(eqr_ctx *ctx, eqr_tensor *t) {
    eqr_tensor *s = t ? eqr_sumsq(ctx, t) : NULL;
    return s ? sqrt((double)s->data[0]) : NAN;
}

eqr_status eqr_rlayer_probe(eqr_ctx *ctx, eqr_rlayer *l, eqr_rlayer_probe_stats *out) {
    if (!ctx) return EQR_ERR_ARG;
    if (!eqr__ok(ctx, 2, l, out)) return ctx->status;
    out->theta = l->theta->data[0];
    out->eq_norm = out->wr_norm = out->share = NAN;
    if (!l->last_x || l->last_x_step != ctx->step_id) return EQR_OK; /* not run this step */
    eqr__arena_mark m = eqr__arena_save(ctx);
    int ge = eqr_grad_set_enabled(ctx, 0);
    double eq = NAN, wr = NAN;
    eqr_status st = l->ops->probe(ctx, l, l->last_x, &eq, &wr);
    eqr_grad_set_enabled(ctx, ge);
    eqr__arena_rewind(ctx, m);
    if (st != EQR_OK) return st;
    out->eq_norm = eq;
    out->wr_norm = wr;
    out->share = eq > 0 ? fabs(out->theta) * wr / eq : NAN;
    return EQR_OK;
}

eqr_status eqr_rlayer_get_stats(eqr_ctx *ctx, eqr_rlayer *l, eqr_rlayer_stats *stats) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!l || !stats) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_rlayer_get_stats: NULL layer or stats");
    double s = 0.0;
    for (int64_t i = 0; i < l->wr->numel; i++) s += (double)l->wr->data[i] * l->wr->data[i];
    stats->theta = l->theta->data[0];
    stats->wr_norm = (float)sqrt(s);
    stats->act_norm = l->last_act_norm;
    /* evaluate LD without touching the tape or the step's tensors */
    eqr__arena_mark m = eqr__arena_save(ctx);
    int ge = eqr_grad_set_enabled(ctx, 0);
    eqr_tensor *d = l->ops->defect(ctx, l);
    stats->defect = d ? d->data[0] : NAN;
    eqr_grad_set_enabled(ctx, ge);
    eqr__arena_rewind(ctx, m);
    return ctx->status;
}
