/* Parameter store: contiguous data and gradient blocks. */
#include "core/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void rebind(eqr_ctx *ctx) {
    for (int i = 0; i < ctx->nparams; i++) {
        eqr_param_entry *e = &ctx->params[i];
        e->t->data = ctx->pdata + e->offset;
        e->t->grad = (e->flags & (EQR_PARAM_BUFFER | EQR_PARAM_FROZEN)) ? NULL
                                                                       : ctx->pgrad + e->offset;
    }
}

eqr_tensor *eqr_param_find(eqr_ctx *ctx, const char *name) {
    if (!ctx || !name) return NULL;
    for (int i = 0; i < ctx->nparams; i++)
        if (strcmp(ctx->params[i].name, name) == 0) return ctx->params[i].t;
    return NULL;
}

eqr_tensor *eqr_param_create(eqr_ctx *ctx, const char *name, int ndim, const int64_t *shape,
                          unsigned flags) {
    if (!eqr__ok(ctx, 0)) return NULL;
    if (!name || !*name || strlen(name) >= EQR_NAME_LEN) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_param_create: name must have 1..%d characters",
                  EQR_NAME_LEN - 1);
        return NULL;
    }
    if (flags & ~(unsigned)(EQR_PARAM_NO_DECAY | EQR_PARAM_BUFFER | EQR_PARAM_FROZEN)) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_param_create(%s): unknown flags 0x%x", name, flags);
        return NULL;
    }
    if (eqr_param_find(ctx, name)) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_param_create: a parameter named '%s' already exists", name);
        return NULL;
    }
    char fn[EQR_NAME_LEN + 16];
    snprintf(fn, sizeof fn, "eqr_param_create(%s)", name);
    int64_t n = eqr__shape_check(ctx, fn, "shape", ndim, shape);
    if (n < 0) return NULL;
    /* keep each parameter 16-float aligned inside the blocks */
    int64_t off = (ctx->ptotal + 15) / 16 * 16;
    int64_t need = off + n;
    if (need > ctx->pcap) {
        int64_t cap = ctx->pcap ? ctx->pcap : 4096;
        while (cap < need) cap *= 2;
        float *d = realloc(ctx->pdata, (size_t)cap * sizeof(float));
        if (d) ctx->pdata = d;
        float *g = d ? realloc(ctx->pgrad, (size_t)cap * sizeof(float)) : NULL;
        if (g) ctx->pgrad = g;
        if (!d || !g) {
            rebind(ctx);
            eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_param_create(%s): out of memory", name);
            return NULL;
        }
        ctx->pcap = cap;
    }
    if (ctx->nparams == ctx->params_cap) {
        int cap = ctx->params_cap ? 2 * ctx->params_cap : 32;
        eqr_param_entry *p = realloc(ctx->params, (size_t)cap * sizeof *p);
        if (!p) {
            rebind(ctx);
            eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_param_create(%s): out of memory", name);
            return NULL;
        }
        ctx->params = p;
        ctx->params_cap = cap;
    }
    eqr_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        rebind(ctx);
        eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_param_create(%s): out of memory", name);
        return NULL;
    }
    t->ndim = ndim;
    for (int i = 0; i < EQR_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 1;
    t->numel = n;
    t->node = -1;
    t->flags = EQR_T_PARAM;
    if (flags & EQR_PARAM_BUFFER)
        t->flags |= EQR_T_BUFFER;
    else if (!(flags & EQR_PARAM_FROZEN))
        t->flags |= EQR_T_REQUIRES_GRAD;
    eqr_param_entry *e = &ctx->params[ctx->nparams++];
    memset(e, 0, sizeof *e);
    strcpy(e->name, name);
    e->flags = flags;
    e->offset = off;
    e->t = t;
    /* zero the alignment gap and the new parameter */
    memset(ctx->pdata + ctx->ptotal, 0, (size_t)(need - ctx->ptotal) * sizeof(float));
    memset(ctx->pgrad + ctx->ptotal, 0, (size_t)(need - ctx->ptotal) * sizeof(float));
    ctx->ptotal = need;
    rebind(ctx);
    return t;
}

int eqr_param_num_tensors(const eqr_ctx *ctx) { return ctx ? ctx->nparams : 0; }

static int in_range(const eqr_ctx *ctx, int i) { return ctx && i >= 0 && i < ctx->nparams; }

eqr_tensor *eqr_param_at(eqr_ctx *ctx, int i) { return in_range(ctx, i) ? ctx->params[i].t : NULL; }
const char *eqr_param_name(const eqr_ctx *ctx, int i) {
    return in_range(ctx, i) ? ctx->params[i].name : NULL;
}
unsigned eqr_param_flags(const eqr_ctx *ctx, int i) {
    return in_range(ctx, i) ? ctx->params[i].flags : 0;
}
int64_t eqr_param_offset(const eqr_ctx *ctx, int i) {
    return in_range(ctx, i) ? ctx->params[i].offset : -1;
}
int64_t eqr_param_num_scalars(const eqr_ctx *ctx) { return ctx ? ctx->ptotal : 0; }
float *eqr_param_data_block(eqr_ctx *ctx) { return ctx ? ctx->pdata : NULL; }
float *eqr_param_grad_block(eqr_ctx *ctx) { return ctx ? ctx->pgrad : NULL; }

/* fan_in / fan_out of a weight [out, in, k...]; a vector counts as [out]. */
static eqr_status fans(eqr_ctx *ctx, const eqr_tensor *w, const char *fn, double *fi, double *fo) {
    if (!eqr__ok(ctx, 1, w)) return ctx ? (ctx->status ? ctx->status : EQR_ERR_ARG) : EQR_ERR_ARG;
    if (w->ndim < 2)
        return eqr__fail(ctx, EQR_ERR_SHAPE, "%s: weight needs at least 2 dims [out,in,...], has %d",
                         fn, w->ndim);
    double rf = 1;
    for (int i = 2; i < w->ndim; i++) rf *= (double)w->shape[i];
    *fi = (double)w->shape[1] * rf;
    *fo = (double)w->shape[0] * rf;
    if (*fi <= 0 || *fo <= 0) {
        char b[EQR_SHAPE_BUF];
        return eqr__fail(ctx, EQR_ERR_SHAPE, "%s: weight %s is empty", fn, EQR_SHAPE(w, b));
    }
    return EQR_OK;
}

eqr_status eqr_param_init_kaiming_normal(eqr_ctx *ctx, eqr_tensor *w, float gain) {
    double fi = 0, fo = 0;
    eqr_status st = fans(ctx, w, "eqr_param_init_kaiming_normal", &fi, &fo);
    if (st) return st;
    eqr_tensor_normal(w, &ctx->rng, (float)(gain / sqrt(fi)));
    return EQR_OK;
}

/* w ~ U(-a, a), a = gain sqrt(c / fan) with fan = fan_in, or fan_in + fan_out
 * where both_fans (fn names the public function in messages). */
static eqr_status init_uniform(eqr_ctx *ctx, eqr_tensor *w, const char *fn, float gain, double c,
                               int both_fans) {
    double fi = 0, fo = 0;
    eqr_status st = fans(ctx, w, fn, &fi, &fo);
    if (st) return st;
    float a = (float)(gain * sqrt(c / (both_fans ? fi + fo : fi)));
    eqr_tensor_uniform(w, &ctx->rng, -a, a);
    return EQR_OK;
}

eqr_status eqr_param_init_kaiming_uniform(eqr_ctx *ctx, eqr_tensor *w, float gain) {
    return init_uniform(ctx, w, "eqr_param_init_kaiming_uniform", gain, 3.0, 0);
}

eqr_status eqr_param_init_xavier_uniform(eqr_ctx *ctx, eqr_tensor *w, float gain) {
    return init_uniform(ctx, w, "eqr_param_init_xavier_uniform", gain, 6.0, 1);
}

eqr_status eqr_param_init_xavier_normal(eqr_ctx *ctx, eqr_tensor *w, float gain) {
    double fi = 0, fo = 0;
    eqr_status st = fans(ctx, w, "eqr_param_init_xavier_normal", &fi, &fo);
    if (st) return st;
    eqr_tensor_normal(w, &ctx->rng, (float)(gain * sqrt(2.0 / (fi + fo))));
    return EQR_OK;
}

eqr_tensor *eqr__param_filled(eqr_ctx *ctx, const char *name, const char *suffix, int ndim,
                              const int64_t *shape, unsigned flags, float fill) {
    char pname[EQR_NAME_LEN];
    snprintf(pname, sizeof pname, "%s%s", name, suffix);
    eqr_tensor *t = eqr_param_create(ctx, pname, ndim, shape, flags);
    if (t) eqr_tensor_fill(t, fill);
    return t;
}
