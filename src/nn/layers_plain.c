/* Modules of the plain ops (ops.h): conv2d, linear, activations, pooling,
 * flatten, dropout, batch norm. */
#include "nn/module_internal.h"

#include <stdlib.h>

/* Parameters of a plain layer, and the settings of parameterless ones. */
typedef struct plain {
    eqr_tensor *w, *b, *rm, *rv;
    eqr_conv2d_geom geom;
    int k, stride, pad;
    eqr_pointwise_kind act;
    float f; /* slope, dropout p */
} plain;

static void plain_free(void *p) { free(p); }

/* A module of kind ops owning pl, its parameters the store entries from p0
 * on. NULL on error (pl freed). */
static eqr_module *plain_new(eqr_ctx *ctx, const char *fn, const char *name,
                             const eqr_module_ops *ops, plain *pl, int p0) {
    return eqr__module_new(ctx, fn, name, ops, pl, p0, eqr_param_num_tensors(ctx));
}

static plain *plain_alloc(eqr_ctx *ctx, const char *fn) {
    return eqr__calloc(ctx, fn, 1, sizeof(plain));
}

static int describe_k(const eqr_module *m, char *buf, size_t n) {
    const plain *p = m->impl;
    return snprintf(buf, n, "%dx%d stride %d pad %d", p->k, p->k, p->stride ? p->stride : p->k,
                    p->pad);
}

/* ---- conv2d ---- */

static eqr_tensor *conv_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    plain *p = m->impl;
    return eqr_conv2d(ctx, x, p->w, p->b, &p->geom);
}
static int conv_describe(const eqr_module *m, char *buf, size_t n) {
    const plain *p = m->impl;
    return snprintf(buf, n, "%dx%d stride %d pad %d", p->k, p->k,
                    p->geom.stride_h ? p->geom.stride_h : 1, p->geom.pad_h);
}
static const eqr_module_ops conv_ops = {
    .kind = "conv2d", .forward = conv_fwd, .destroy = plain_free, .describe = conv_describe};

eqr_module *eqr_conv2d_module(eqr_ctx *ctx, const char *name, int c_in, int c_out, int k,
                              const eqr_conv2d_geom *geom, int bias) {
    static const char *const sfx[] = {".weight", ".bias"};
    if (!eqr__ok(ctx, 0) || !eqr__layer_name_ok(ctx, __func__, name, ".weight")) return NULL;
    if (c_in < 1 || c_out < 1 || k < 1) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: channels and k must be >= 1 (got %d -> %d, k %d)",
                  __func__, c_in, c_out, k);
        return NULL;
    }
    if (!eqr__param_names_free(ctx, __func__, name, 2, sfx)) return NULL;
    plain *p = plain_alloc(ctx, __func__);
    if (!p) return NULL;
    if (geom) p->geom = *geom;
    p->k = k;
    int p0 = eqr_param_num_tensors(ctx);
    char pn[EQR_NAME_LEN];
    snprintf(pn, sizeof pn, "%s.weight", name);
    p->w = eqr_param_create(ctx, pn, 4, (int64_t[]){c_out, c_in, k, k}, 0);
    eqr_param_init_kaiming_normal(ctx, p->w, 1.41421356f);
    if (bias) {
        snprintf(pn, sizeof pn, "%s.bias", name);
        p->b = eqr_param_create(ctx, pn, 1, (int64_t[]){c_out}, EQR_PARAM_NO_DECAY);
    }
    eqr_module *m = eqr_error_status(ctx) ? (plain_free(p), NULL)
                                         : plain_new(ctx, __func__, name, &conv_ops, p, p0);
    if (m) eqr_module_set_types(m, &(eqr_ftype){.kind = EQR_FTYPE_PLAIN, .channels = c_in},
                                &(eqr_ftype){.kind = EQR_FTYPE_PLAIN, .channels = c_out});
    return m;
}

/* ---- linear ---- */

static eqr_tensor *linear_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    plain *p = m->impl;
    return eqr_linear(ctx, x, p->w, p->b);
}
static const eqr_module_ops linear_ops = {.kind = "linear", .forward = linear_fwd,
                                          .destroy = plain_free};

eqr_module *eqr_linear_module(eqr_ctx *ctx, const char *name, int in, int out, int bias) {
    static const char *const sfx[] = {".weight", ".bias"};
    if (!eqr__ok(ctx, 0) || !eqr__layer_name_ok(ctx, __func__, name, ".weight")) return NULL;
    if (in < 1 || out < 1) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: sizes must be >= 1 (got %d -> %d)", __func__, in, out);
        return NULL;
    }
    if (!eqr__param_names_free(ctx, __func__, name, 2, sfx)) return NULL;
    plain *p = plain_alloc(ctx, __func__);
    if (!p) return NULL;
    int p0 = eqr_param_num_tensors(ctx);
    char pn[EQR_NAME_LEN];
    snprintf(pn, sizeof pn, "%s.weight", name);
    p->w = eqr_param_create(ctx, pn, 2, (int64_t[]){out, in}, 0);
    eqr_param_init_xavier_uniform(ctx, p->w, 1.0f);
    if (bias) {
        snprintf(pn, sizeof pn, "%s.bias", name);
        p->b = eqr_param_create(ctx, pn, 1, (int64_t[]){out}, EQR_PARAM_NO_DECAY);
    }
    eqr_module *m = eqr_error_status(ctx) ? (plain_free(p), NULL)
                                         : plain_new(ctx, __func__, name, &linear_ops, p, p0);
    if (m) eqr_module_set_types(m, &(eqr_ftype){.kind = EQR_FTYPE_PLAIN, .channels = in},
                                &(eqr_ftype){.kind = EQR_FTYPE_PLAIN, .channels = out});
    return m;
}

/* ---- batch norm of plain channels ---- */

static eqr_tensor *bn_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    plain *p = m->impl;
    return eqr_batchnorm(ctx, x, p->w, p->b, p->rm, p->rv, 0.1f, 1e-5f, m->training);
}
static const eqr_module_ops bn_ops = {.kind = "batchnorm", .forward = bn_fwd,
                                      .destroy = plain_free};

eqr_module *eqr_batchnorm_module(eqr_ctx *ctx, const char *name, int channels) {
    static const char *const sfx[] = {".weight", ".bias", ".running_mean", ".running_var"};
    if (!eqr__ok(ctx, 0) || !eqr__layer_name_ok(ctx, __func__, name, ".running_mean"))
        return NULL;
    if (channels < 1) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: channels must be >= 1 (got %d)", __func__, channels);
        return NULL;
    }
    if (!eqr__param_names_free(ctx, __func__, name, 4, sfx)) return NULL;
    plain *p = plain_alloc(ctx, __func__);
    if (!p) return NULL;
    int p0 = eqr_param_num_tensors(ctx);
    eqr_tensor **t[4] = {&p->w, &p->b, &p->rm, &p->rv};
    const unsigned fl[4] = {EQR_PARAM_NO_DECAY, EQR_PARAM_NO_DECAY, EQR_PARAM_BUFFER,
                            EQR_PARAM_BUFFER};
    for (int i = 0; i < 4; i++) {
        char pn[EQR_NAME_LEN];
        snprintf(pn, sizeof pn, "%s%s", name, sfx[i]);
        *t[i] = eqr_param_create(ctx, pn, 1, (int64_t[]){channels}, fl[i]);
    }
    if (p->w) eqr_tensor_fill(p->w, 1.0f);
    if (p->rv) eqr_tensor_fill(p->rv, 1.0f);
    eqr_module *m = eqr_error_status(ctx) ? (plain_free(p), NULL)
                                         : plain_new(ctx, __func__, name, &bn_ops, p, p0);
    if (m) eqr_module_set_types(m, &(eqr_ftype){.kind = EQR_FTYPE_PLAIN, .channels = channels},
                                &(eqr_ftype){.kind = EQR_FTYPE_PLAIN, .channels = channels});
    return m;
}

/* ---- parameterless, type-keeping ---- */

static eqr_tensor *act_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    plain *p = m->impl;
    switch (p->act) {
    case EQR_PW_RELU: return eqr_relu(ctx, x);
    case EQR_PW_LEAKY_RELU: return eqr_leaky_relu(ctx, x, p->f);
    case EQR_PW_SIGMOID: return eqr_sigmoid(ctx, x);
    case EQR_PW_TANH: return eqr_tanh(ctx, x);
    case EQR_PW_GELU: return eqr_gelu(ctx, x);
    default: return eqr_silu(ctx, x);
    }
}
static const char *const act_names[] = {"relu", "leaky_relu", "sigmoid", "tanh", "gelu", "silu"};
static int act_describe(const eqr_module *m, char *buf, size_t n) {
    const plain *p = m->impl;
    if (p->act == EQR_PW_LEAKY_RELU) return snprintf(buf, n, "leaky_relu slope %g", p->f);
    return snprintf(buf, n, "%s", act_names[p->act]);
}
static const eqr_module_ops act_ops = {.kind = "activation", .forward = act_fwd,
                                       .destroy = plain_free, .describe = act_describe,
                                       .keeps_type = 1};

eqr_module *eqr_activation_module(eqr_ctx *ctx, const char *name, eqr_pointwise_kind kind,
                                  float slope) {
    if (!eqr__ok(ctx, 0)) return NULL;
    if ((int)kind < 0 || kind > EQR_PW_SILU) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: unknown activation kind %d", __func__, (int)kind);
        return NULL;
    }
    plain *p = plain_alloc(ctx, __func__);
    if (!p) return NULL;
    p->act = kind;
    p->f = slope;
    return plain_new(ctx, __func__, name ? name : act_names[kind], &act_ops, p,
                     eqr_param_num_tensors(ctx));
}

eqr_module *eqr_relu_module(eqr_ctx *ctx, const char *name) {
    return eqr_activation_module(ctx, name, EQR_PW_RELU, 0.0f);
}

static eqr_tensor *maxpool_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    plain *p = m->impl;
    return eqr_maxpool2d(ctx, x, p->k, p->stride, p->pad);
}
static eqr_tensor *avgpool_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    plain *p = m->impl;
    return eqr_avgpool2d(ctx, x, p->k, p->stride, p->pad);
}
static const eqr_module_ops maxpool_ops = {.kind = "maxpool2d", .forward = maxpool_fwd,
                                           .destroy = plain_free, .describe = describe_k,
                                           .keeps_type = 1};
static const eqr_module_ops avgpool_ops = {.kind = "avgpool2d", .forward = avgpool_fwd,
                                           .destroy = plain_free, .describe = describe_k,
                                           .keeps_type = 1};

static eqr_module *pool_new(eqr_ctx *ctx, const char *fn, const char *name,
                            const eqr_module_ops *ops, int k, int stride, int pad) {
    if (!eqr__ok_in(ctx, fn, 0)) return NULL;
    if (k < 1 || stride < 0 || pad < 0) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: need k >= 1, stride >= 0, pad >= 0 (got %d, %d, %d)", fn,
                  k, stride, pad);
        return NULL;
    }
    plain *p = plain_alloc(ctx, fn);
    if (!p) return NULL;
    p->k = k;
    p->stride = stride;
    p->pad = pad;
    return plain_new(ctx, fn, name, ops, p, eqr_param_num_tensors(ctx));
}

eqr_module *eqr_maxpool2d_module(eqr_ctx *ctx, const char *name, int k, int stride, int pad) {
    return pool_new(ctx, __func__, name, &maxpool_ops, k, stride, pad);
}
eqr_module *eqr_avgpool2d_module(eqr_ctx *ctx, const char *name, int k, int stride, int pad) {
    return pool_new(ctx, __func__, name, &avgpool_ops, k, stride, pad);
}

static eqr_tensor *gap_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    return eqr_global_avgpool(ctx, x);
}
static const eqr_module_ops gap_ops = {.kind = "global_avgpool", .forward = gap_fwd,
                                       .keeps_type = 1};
eqr_module *eqr_global_avgpool_module(eqr_ctx *ctx, const char *name) {
    if (!eqr__ok(ctx, 0)) return NULL;
    return eqr__module_new(ctx, __func__, name, &gap_ops, NULL, 0, 0);
}

static eqr_tensor *flatten_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    return eqr_reshape(ctx, x, 2, (int64_t[]){x->shape[0], -1});
}
static const eqr_module_ops flatten_ops = {.kind = "flatten", .forward = flatten_fwd};
eqr_module *eqr_flatten_module(eqr_ctx *ctx, const char *name) {
    if (!eqr__ok(ctx, 0)) return NULL;
    return eqr__module_new(ctx, __func__, name, &flatten_ops, NULL, 0, 0);
}

static eqr_tensor *dropout_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    plain *p = m->impl;
    return eqr_dropout(ctx, x, p->f, m->training);
}
static int dropout_describe(const eqr_module *m, char *buf, size_t n) {
    return snprintf(buf, n, "p %g", ((const plain *)m->impl)->f);
}
static const eqr_module_ops dropout_ops = {.kind = "dropout", .forward = dropout_fwd,
                                           .destroy = plain_free, .describe = dropout_describe,
                                           .keeps_type = 1};
eqr_module *eqr_dropout_module(eqr_ctx *ctx, const char *name, float p) {
    if (!eqr__ok(ctx, 0)) return NULL;
    if (!(p >= 0.0f && p < 1.0f)) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: p must be in [0, 1) (got %g)", __func__, p);
        return NULL;
    }
    plain *pl = plain_alloc(ctx, __func__);
    if (!pl) return NULL;
    pl->f = p;
    return plain_new(ctx, __func__, name, &dropout_ops, pl, eqr_param_num_tensors(ctx));
}
