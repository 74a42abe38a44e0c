/* SGD, Adam and AdamW over the parameter store, and gradient clipping.
 * State is indexed by the store's element offsets (alignment gaps included),
 * so every update is a flat loop over one parameter's contiguous range. */
#include "core/internal.h"
#include "equirelax/optim.h"

#include <math.h>
#include <stdlib.h>

struct eqr_optim {
    eqr_ctx *ctx;
    eqr_optim_opts o; /* defaults resolved */
    int64_t steps;
    int nparams;      /* store layout at create: step refuses if it changed */
    int64_t total;
    int64_t state_len;
    float *state;     /* SGD: momentum [total]; Adam/AdamW: m [total], v [total] */
};

static int trainable(unsigned flags) {
    return !(flags & (EQR_PARAM_BUFFER | EQR_PARAM_FROZEN));
}

static int finite_nonneg(float x) { return isfinite(x) && x >= 0.0f; }

static eqr_status check_opts(eqr_ctx *ctx, eqr_optim_opts *o) {
    const char *fn = "eqr_optim_create";
    if (o->kind != EQR_OPTIM_SGD && o->kind != EQR_OPTIM_ADAM && o->kind != EQR_OPTIM_ADAMW)
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: unknown optimizer kind %d", fn, (int)o->kind);
    if (!finite_nonneg(o->lr))
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: lr must be finite and >= 0, got %g", fn,
                         (double)o->lr);
    if (!finite_nonneg(o->weight_decay))
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: weight_decay must be finite and >= 0, got %g", fn,
                         (double)o->weight_decay);
    if (o->kind == EQR_OPTIM_SGD) {
        if (!finite_nonneg(o->momentum) || o->momentum >= 1.0f)
            return eqr__fail(ctx, EQR_ERR_ARG, "%s: momentum must be in [0,1), got %g", fn,
                             (double)o->momentum);
        if (o->nesterov && o->momentum <= 0.0f)
            return eqr__fail(ctx, EQR_ERR_ARG, "%s: nesterov needs momentum > 0", fn);
        return EQR_OK;
    }
    if (o->nesterov)
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: nesterov applies to SGD only", fn);
    if (o->beta1 == 0.0f) o->beta1 = 0.9f;
    if (o->beta2 == 0.0f) o->beta2 = 0.999f;
    if (o->eps == 0.0f) o->eps = 1e-8f;
    if (!finite_nonneg(o->beta1) || o->beta1 >= 1.0f)
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: beta1 must be in [0,1), got %g", fn,
                         (double)o->beta1);
    if (!finite_nonneg(o->beta2) || o->beta2 >= 1.0f)
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: beta2 must be in [0,1), got %g", fn,
                         (double)o->beta2);
    if (!isfinite(o->eps) || o->eps <= 0.0f)
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: eps must be finite and > 0, got %g", fn,
                         (double)o->eps);
    return EQR_OK;
}

eqr_optim *eqr_optim_create(eqr_ctx *ctx, const eqr_optim_opts *opts) {
    if (!eqr__ok(ctx, 0)) return NULL;
    if (!opts) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_optim_create: opts is NULL");
        return NULL;
    }
    eqr_optim_opts o = *opts;
    if (check_opts(ctx, &o) != EQR_OK) return NULL;
    eqr_optim *opt = eqr__calloc(ctx, "eqr_optim_create", 1, sizeof *opt);
    if (!opt) return NULL;
    opt->ctx = ctx;
    opt->o = o;
    opt->nparams = ctx->nparams;
    opt->total = ctx->ptotal;
    if (o.kind == EQR_OPTIM_SGD)
        opt->state_len = o.momentum > 0.0f ? opt->total : 0;
    else
        opt->state_len = 2 * opt->total;
    if (opt->state_len > 0) {
        opt->state = calloc((size_t)opt->state_len, sizeof(float));
        if (!opt->state) {
            eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_optim_create: cannot allocate %lld state floats",
                      (long long)opt->state_len);
            free(opt);
            return NULL;
        }
    }
    return opt;
}

void eqr_optim_destroy(eqr_optim *opt) {
    if (!opt) return;
    free(opt->state);
    free(opt);
}

/* PyTorch SGD: g += wd*w; buf = mu*buf + g; step = nesterov ? g + mu*buf : buf. */
static void sgd_range(const eqr_optim_opts *o, float wd, float *w, const float *g, float *buf,
                      int64_t n) {
    const float lr = o->lr, mu = o->momentum;
    if (!buf) {
        for (int64_t i = 0; i < n; i++) w[i] -= lr * (g[i] + wd * w[i]);
        return;
    }
    if (o->nesterov) {
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i] + wd * w[i];
            float b = mu * buf[i] + gi;
            buf[i] = b;
            w[i] -= lr * (gi + mu * b);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i] + wd * w[i];
            float b = mu * buf[i] + gi;
            buf[i] = b;
            w[i] -= lr * b;
        }
    }
}

/* Adam with bias correction folded into the step size and the denominator:
 * w -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps). l2 is added to the gradient
 * (Adam); decoupled is applied to w before the update (AdamW). */
static void adam_range(float b1, float b2, float eps, float step_size, float inv_sqrt_bc2,
                       float l2, float decoupled, float *w, const float *g, float *m, float *v,
                       int64_t n) {
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
    for (int64_t i = 0; i < n; i++) {
        float wi = w[i] * decoupled;
        float gi = g[i] + l2 * wi;
        float mi = b1 * m[i] + c1 * gi;
        float vi = b2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] = wi - step_size * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
    }
}

eqr_status eqr_optim_step(eqr_optim *opt) {
    if (!opt) return EQR_ERR_ARG;
    eqr_ctx *ctx = opt->ctx;
    if (ctx->status != EQR_OK) return ctx->status; /* gradients may be garbage */
    if (ctx->nparams != opt->nparams || ctx->ptotal != opt->total)
        return eqr__fail(ctx, EQR_ERR_STATE,
                         "eqr_optim_step: the parameter store changed after the optimizer was "
                         "created (%d params / %lld floats then, %d / %lld now); create the "
                         "optimizer after building the model",
                         opt->nparams, (long long)opt->total, ctx->nparams,
                         (long long)ctx->ptotal);
    const eqr_optim_opts *o = &opt->o;
    float *W = ctx->pdata, *G = ctx->pgrad;
    int64_t t = opt->steps + 1;
    float step_size = 0, inv_sqrt_bc2 = 0;
    if (o->kind != EQR_OPTIM_SGD) {
        double bc1 = 1.0 - pow((double)o->beta1, (double)t);
        double bc2 = 1.0 - pow((double)o->beta2, (double)t);
        step_size = (float)((double)o->lr / bc1);
        inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    }
    for (int p = 0; p < ctx->nparams; p++) {
        const eqr_param_entry *e = &ctx->params[p];
        if (!trainable(e->flags)) continue;
        int64_t off = e->offset, n = e->t->numel;
        float wd = (e->flags & EQR_PARAM_NO_DECAY) ? 0.0f : o->weight_decay;
        switch (o->kind) {
        case EQR_OPTIM_SGD:
            sgd_range(o, wd, W + off, G + off, opt->state ? opt->state + off : NULL, n);
            break;
        case EQR_OPTIM_ADAM:
            adam_range(o->beta1, o->beta2, o->eps, step_size, inv_sqrt_bc2, wd, 1.0f, W + off,
                       G + off, opt->state + off, opt->state + opt->total + off, n);
            break;
        case EQR_OPTIM_ADAMW:
            adam_range(o->beta1, o->beta2, o->eps, step_size, inv_sqrt_bc2, 0.0f,
                       1.0f - o->lr * wd, W + off, G + off, opt->state + off,
                       opt->state + opt->total + off, n);
            break;
        }
    }
    opt->steps = t;
    return EQR_OK;
}

void eqr_optim_set_lr(eqr_optim *opt, float lr) {
    if (!opt) return;
    if (!finite_nonneg(lr)) {
        eqr__fail(opt->ctx, EQR_ERR_ARG, "eqr_optim_set_lr: lr must be finite and >= 0, got %g",
                  (double)lr);
        return;
    }
    opt->o.lr = lr;
}

float eqr_optim_lr(const eqr_optim *opt) { return opt ? opt->o.lr : 0.0f; }
int64_t eqr_optim_num_steps(const eqr_optim *opt) { return opt ? opt->steps : 0; }
eqr_optim_kind eqr_optim_get_kind(const eqr_optim *opt) {
    return opt ? opt->o.kind : EQR_OPTIM_SGD;
}
int64_t eqr_optim_num_state_floats(const eqr_optim *opt) { return opt ? opt->state_len : 0; }
float *eqr_optim_state(eqr_optim *opt) { return opt ? opt->state : NULL; }

void eqr_optim_set_num_steps(eqr_optim *opt, int64_t steps) {
    if (!opt) return;
    if (steps < 0) {
        eqr__fail(opt->ctx, EQR_ERR_ARG, "eqr_optim_set_num_steps: steps must be >= 0, got %lld",
                  (long long)steps);
        return;
    }
    opt->steps = steps;
}

float eqr_grad_clip_norm(eqr_ctx *ctx, float max_norm) {
    if (!ctx) return 0.0f;
    if (!(max_norm >= 0.0f)) { /* also catches NaN */
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_grad_clip_norm: max_norm must be >= 0, got %g",
                  (double)max_norm);
        return 0.0f;
    }
    double ss = 0.0;
    for (int p = 0; p < ctx->nparams; p++) {
        const eqr_param_entry *e = &ctx->params[p];
        if (!trainable(e->flags)) continue;
        const float *g = ctx->pgrad + e->offset;
        for (int64_t i = 0, n = e->t->numel; i < n; i++) ss += (double)g[i] * g[i];
    }
    double norm = sqrt(ss);
    /* Leave non-finite gradients alone: the caller sees the returned norm. */
    if (isfinite(norm) && norm > max_norm) {
        /* the 1e-6 keeps the clipped norm at or below max_norm despite rounding */
        float s = (float)(max_norm / (norm + 1e-6));
        for (int p = 0; p < ctx->nparams; p++) {
            const eqr_param_entry *e = &ctx->params[p];
            if (!trainable(e->flags)) continue;
            float *g = ctx->pgrad + e->offset;
            for (int64_t i = 0, n = e->t->numel; i < n; i++) g[i] *= s;
        }
    }
    return (float)norm;
}

eqr_status eqr_optim_state_norms(eqr_optim *opt, const eqr_tensor *p, double *m_norm,
                                 double *v_norm) {
    if (!opt) return EQR_ERR_ARG;
    eqr_ctx *ctx = opt->ctx;
    if (!eqr__ok(ctx, 3, p, m_norm, v_norm)) return ctx->status;
    int64_t off = -1;
    for (int i = 0; i < ctx->nparams && i < opt->nparams; i++)
        if (ctx->params[i].t == p) off = ctx->params[i].offset;
    if (off < 0)
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "eqr_optim_state_norms: the tensor is not a parameter the optimizer covers");
    double m = 0, v = 0;
    if (opt->state_len > 0) {
        const float *sm = opt->state + off;
        const float *sv = opt->state_len > opt->total ? opt->state + opt->total + off : NULL;
        for (int64_t k = 0; k < p->numel; k++) {
            m += (double)sm[k] * sm[k];
            if (sv) v += (double)sv[k] * sv[k];
        }
    }
    *m_norm = sqrt(m);
    *v_norm = sqrt(v);
    return EQR_OK;
}
