/* Modules of the planar equivariant layers (nn2d): group and steerable
 * convs, field pools, nonlinearities on field types, batch norm. */
#include "nn/module_internal.h"

/* Module over a layer just created (NULL: the create failed and recorded
 * why), its parameters the store entries from p0 on, types in -> out. */
static eqr_module *wrap(eqr_ctx *ctx, const char *fn, const char *name,
                        const eqr_module_ops *ops, void *layer, int p0, const eqr_rep *in,
                        const eqr_rep *out) {
    if (!layer) return NULL;
    eqr_module *m = eqr__module_new(ctx, fn, name, ops, layer, p0, eqr_param_num_tensors(ctx));
    if (m && in && out) eqr_module_set_types(m, &(eqr_ftype){.kind = EQR_FTYPE_REP, .rep = in},
                                             &(eqr_ftype){.kind = EQR_FTYPE_REP, .rep = out});
    return m;
}

static int geom_describe(char *buf, size_t n, const char *what, int k, const eqr_conv2d_geom *g) {
    return snprintf(buf, n, "%s%s%dx%d stride %d pad %d", what, what[0] ? " " : "", k, k,
                    g->stride_h, g->pad_h);
}

/* ---- group conv ---- */

static eqr_tensor *gconv_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    return eqr_gconv_forward(ctx, m->impl, x);
}
static int gconv_describe(const eqr_module *m, char *buf, size_t n) {
    const eqr_gconv *l = m->impl;
    return geom_describe(buf, n, eqr_gconv_get_kind(l) == EQR_GCONV_LIFTING ? "lifting" : "group",
                         eqr_gconv_kernel_size(l), eqr_gconv_geom(l));
}
static void gconv_free(void *l) { eqr_gconv_destroy(l); }
static const eqr_module_ops gconv_ops = {.kind = "gconv", .forward = gconv_fwd,
                                         .destroy = gconv_free, .describe = gconv_describe};

eqr_module *eqr_gconv_module(eqr_ctx *ctx, const char *name, const eqr_rep *in_type,
                             const eqr_rep *out_type, int k, const eqr_gconv_opts *opts) {
    int p0 = eqr_param_num_tensors(ctx);
    return wrap(ctx, __func__, name, &gconv_ops,
                eqr_gconv_create(ctx, name, in_type, out_type, k, opts), p0, in_type, out_type);
}
eqr_gconv *eqr_module_gconv(const eqr_module *m) {
    return m && m->ops == &gconv_ops ? m->impl : NULL;
}

/* ---- steerable conv ---- */

static eqr_tensor *steer_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    return eqr_steer_conv_forward(ctx, m->impl, x);
}
static int steer_describe(const eqr_module *m, char *buf, size_t n) {
    const eqr_steer_conv *l = m->impl;
    char what[40];
    snprintf(what, sizeof what, "%lld basis",
             (long long)eqr_steer_basis_num_elements(eqr_steer_conv_basis(l)));
    return geom_describe(buf, n, what, eqr_steer_conv_kernel_size(l), eqr_steer_conv_geom(l));
}
static void steer_free(void *l) { eqr_steer_conv_destroy(l); }
static const eqr_module_ops steer_ops = {.kind = "steer_conv", .forward = steer_fwd,
                                         .destroy = steer_free, .describe = steer_describe};

eqr_module *eqr_steer_conv_module(eqr_ctx *ctx, const char *name, const eqr_rep *in_type,
                                  const eqr_rep *out_type, int k,
                                  const eqr_steer_conv_opts *opts) {
    int p0 = eqr_param_num_tensors(ctx);
    return wrap(ctx, __func__, name, &steer_ops,
                eqr_steer_conv_create(ctx, name, in_type, out_type, k, opts), p0, in_type,
                out_type);
}
eqr_steer_conv *eqr_module_steer_conv(const eqr_module *m) {
    return m && m->ops == &steer_ops ? m->impl : NULL;
}

/* ---- field pools ---- */

static eqr_tensor *fpool_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    return eqr_field_pool_forward(ctx, m->impl, x);
}
static void fpool_free(void *l) { eqr_field_pool_destroy(l); }
static const eqr_module_ops gpool_ops = {.kind = "group_pool", .forward = fpool_fwd,
                                         .destroy = fpool_free};
static const eqr_module_ops npool_ops = {.kind = "norm_pool", .forward = fpool_fwd,
                                         .destroy = fpool_free};
static const eqr_module_ops imap_ops = {.kind = "invariant_map", .forward = fpool_fwd,
                                        .destroy = fpool_free};

static eqr_module *fpool(eqr_ctx *ctx, const char *fn, const char *name,
                         const eqr_module_ops *ops, eqr_field_pool *l, const eqr_rep *in) {
    return wrap(ctx, fn, name, ops, l, eqr_param_num_tensors(ctx), in, eqr_field_pool_out_type(l));
}
eqr_module *eqr_group_pool_module(eqr_ctx *ctx, const char *name, const eqr_rep *in_type,
                                  eqr_gpool_mode mode) {
    return fpool(ctx, __func__, name, &gpool_ops, eqr_group_pool_create(ctx, in_type, mode),
                 in_type);
}
eqr_module *eqr_norm_pool_module(eqr_ctx *ctx, const char *name, const eqr_rep *in_type) {
    return fpool(ctx, __func__, name, &npool_ops, eqr_norm_pool_create(ctx, in_type), in_type);
}
eqr_module *eqr_invariant_map_module(eqr_ctx *ctx, const char *name, const eqr_rep *in_type,
                                     eqr_gpool_mode mode) {
    return fpool(ctx, __func__, name, &imap_ops, eqr_invariant_map_create(ctx, in_type, mode),
                 in_type);
}

/* ---- nonlinearities ---- */

static eqr_tensor *pw_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    return eqr_pointwise_forward(ctx, m->impl, x);
}
static void pw_free(void *l) { eqr_pointwise_destroy(l); }
static const eqr_module_ops pw_ops = {.kind = "pointwise", .forward = pw_fwd, .destroy = pw_free};
eqr_module *eqr_pointwise_module(eqr_ctx *ctx, const char *name, const eqr_rep *in_type,
                                 eqr_pointwise_kind kind, float slope) {
    return wrap(ctx, __func__, name, &pw_ops, eqr_pointwise_create(ctx, in_type, kind, slope),
                eqr_param_num_tensors(ctx), in_type, in_type);
}

static eqr_tensor *nrelu_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    return eqr_norm_relu_forward(ctx, m->impl, x);
}
static void nrelu_free(void *l) { eqr_norm_relu_destroy(l); }
static const eqr_module_ops nrelu_ops = {.kind = "norm_relu", .forward = nrelu_fwd,
                                         .destroy = nrelu_free};
eqr_module *eqr_norm_relu_module(eqr_ctx *ctx, const char *name, const eqr_rep *in_type) {
    int p0 = eqr_param_num_tensors(ctx);
    return wrap(ctx, __func__, name, &nrelu_ops, eqr_norm_relu_create(ctx, name, in_type), p0,
                in_type, in_type);
}

static eqr_tensor *gated_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    return eqr_gated_forward(ctx, m->impl, x);
}
static void gated_free(void *l) { eqr_gated_destroy(l); }
static const eqr_module_ops gated_ops = {.kind = "gated", .forward = gated_fwd,
                                         .destroy = gated_free};
eqr_module *eqr_gated_module(eqr_ctx *ctx, const char *name, const eqr_rep *in_type) {
    eqr_gated *l = eqr_gated_create(ctx, in_type);
    return wrap(ctx, __func__, name, &gated_ops, l, eqr_param_num_tensors(ctx), in_type,
                eqr_gated_out_type(l));
}

/* ---- batch norm ---- */

static eqr_tensor *fbn_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    return eqr_field_bn_forward(ctx, m->impl, x);
}
static void fbn_train(eqr_module *m, int on) { eqr_field_bn_set_training(m->impl, on); }
static void fbn_free(void *l) { eqr_field_bn_destroy(l); }
static const eqr_module_ops fbn_ops = {.kind = "field_bn", .forward = fbn_fwd, .train = fbn_train,
                                       .destroy = fbn_free};
eqr_module *eqr_field_bn_module(eqr_ctx *ctx, const char *name, const eqr_rep *in_type,
                                const eqr_field_bn_opts *opts) {
    int p0 = eqr_param_num_tensors(ctx);
    return wrap(ctx, __func__, name, &fbn_ops, eqr_field_bn_create(ctx, name, in_type, opts), p0,
                in_type, in_type);
}
eqr_field_bn *eqr_module_field_bn(const eqr_module *m) {
    return m && m->ops == &fbn_ops ? m->impl : NULL;
}
