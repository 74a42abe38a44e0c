/* Modules of the 3D layers (nn3d): vector neurons, irreps linear maps,
 * tensor products (a tuple forward: x1, x2), irreps batch / layer norm, the
 * gate, EGNN (a tuple forward: h, x, v, edge attributes) and the N-body
 * SEGNN (a tuple forward: x, v, q). */
#include "equirelax/gate.h"
#include "equirelax/segnn.h"
#include "nn/module_internal.h"

#include <stdio.h>

#include <stdlib.h>

static eqr_module *wrap_vn(eqr_ctx *ctx, const char *fn, const char *name,
                           const eqr_module_ops *ops, void *layer, int p0, int c_in, int c_out) {
    if (!layer) return NULL;
    eqr_module *m = eqr__module_new(ctx, fn, name, ops, layer, p0, eqr_param_num_tensors(ctx));
    if (m) {
        eqr_ftype in = eqr_ftype_vn(c_in), out = c_out > 0 ? eqr_ftype_vn(c_out) : eqr_ftype_none();
        eqr_module_set_types(m, &in, &out);
    }
    return m;
}

#define VN_OPS(id, kindname, type, fwd, destroy_fn)                                   \
    static eqr_tensor *id##_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {         \
        return fwd(ctx, (type *)m->impl, x);                                          \
    }                                                                                 \
    static void id##_free(void *l) { destroy_fn(l); }                                 \
    static const eqr_module_ops id##_ops = {.kind = kindname, .forward = id##_fwd,    \
                                            .destroy = id##_free}

VN_OPS(vlin, "vn_linear", eqr_vn_linear, eqr_vn_linear_forward, eqr_vn_linear_destroy);
VN_OPS(vlrelu, "vn_leaky_relu", eqr_vn_leaky_relu, eqr_vn_leaky_relu_forward,
       eqr_vn_leaky_relu_destroy);
VN_OPS(vmax, "vn_max_pool", eqr_vn_max_pool, eqr_vn_max_pool_forward, eqr_vn_max_pool_destroy);
VN_OPS(vinv, "vn_invariant", eqr_vn_invariant, eqr_vn_invariant_forward,
       eqr_vn_invariant_destroy);

eqr_module *eqr_vn_linear_module(eqr_ctx *ctx, const char *name, int c_in, int c_out) {
    int p0 = eqr_param_num_tensors(ctx);
    return wrap_vn(ctx, __func__, name, &vlin_ops, eqr_vn_linear_create(ctx, name, c_in, c_out),
                   p0, c_in, c_out);
}
eqr_vn_linear *eqr_module_vn_linear(const eqr_module *m) {
    return m && m->ops == &vlin_ops ? m->impl : NULL;
}
eqr_module *eqr_vn_leaky_relu_module(eqr_ctx *ctx, const char *name, int channels,
                                     const eqr_vn_leaky_relu_opts *opts) {
    int p0 = eqr_param_num_tensors(ctx);
    return wrap_vn(ctx, __func__, name, &vlrelu_ops,
                   eqr_vn_leaky_relu_create(ctx, name, channels, opts), p0, channels, channels);
}
eqr_module *eqr_vn_max_pool_module(eqr_ctx *ctx, const char *name, int channels) {
    int p0 = eqr_param_num_tensors(ctx);
    return wrap_vn(ctx, __func__, name, &vmax_ops, eqr_vn_max_pool_create(ctx, name, channels),
                   p0, channels, channels);
}
eqr_module *eqr_vn_invariant_module(eqr_ctx *ctx, const char *name, int channels) {
    int p0 = eqr_param_num_tensors(ctx);
    return wrap_vn(ctx, __func__, name, &vinv_ops, eqr_vn_invariant_create(ctx, name, channels),
                   p0, channels, 0);
}

/* VN batch norm follows the training switch. */
static eqr_tensor *vbn_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    return eqr_vn_bn_forward(ctx, m->impl, x);
}
static void vbn_train(eqr_module *m, int on) { eqr_vn_bn_set_training(m->impl, on); }
static void vbn_free(void *l) { eqr_vn_bn_destroy(l); }
static const eqr_module_ops vbn_ops = {.kind = "vn_bn", .forward = vbn_fwd, .train = vbn_train,
                                       .destroy = vbn_free};
eqr_module *eqr_vn_bn_module(eqr_ctx *ctx, const char *name, int channels,
                             const eqr_vn_bn_opts *opts) {
    int p0 = eqr_param_num_tensors(ctx);
    return wrap_vn(ctx, __func__, name, &vbn_ops, eqr_vn_bn_create(ctx, name, channels, opts), p0,
                   channels, channels);
}
eqr_vn_bn *eqr_module_vn_bn(const eqr_module *m) {
    return m && m->ops == &vbn_ops ? m->impl : NULL;
}

/* The mean pool has no layer object; it keeps vn(C). */
static eqr_tensor *vmean_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    return eqr_vn_mean_pool(ctx, x);
}
static const eqr_module_ops vmean_ops = {.kind = "vn_mean_pool", .forward = vmean_fwd,
                                         .keeps_type = 1};
eqr_module *eqr_vn_mean_pool_module(eqr_ctx *ctx, const char *name) {
    if (!eqr__ok(ctx, 0)) return NULL;
    return eqr__module_new(ctx, __func__, name, &vmean_ops, NULL, 0, 0);
}

/* ---- irreps linear ---- */

static eqr_tensor *ilin_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    return eqr_irreps_linear_forward(ctx, m->impl, x);
}
static void ilin_free(void *l) { eqr_irreps_linear_destroy(l); }
static const eqr_module_ops ilin_ops = {.kind = "irreps_linear", .forward = ilin_fwd,
                                        .destroy = ilin_free};
eqr_module *eqr_irreps_linear_module(eqr_ctx *ctx, const char *name, const eqr_irreps *in,
                                     const eqr_irreps *out) {
    int p0 = eqr_param_num_tensors(ctx);
    eqr_irreps_linear *l = eqr_irreps_linear_create(ctx, name, in, out);
    if (!l) return NULL;
    eqr_module *m = eqr__module_new(ctx, __func__, name, &ilin_ops, l, p0, eqr_param_num_tensors(ctx));
    if (m) eqr_module_set_types(m, &(eqr_ftype){.kind = EQR_FTYPE_IRREPS, .irreps = in},
                                &(eqr_ftype){.kind = EQR_FTYPE_IRREPS, .irreps = out});
    return m;
}
eqr_irreps_linear *eqr_module_irreps_linear(const eqr_module *m) {
    return m && m->ops == &ilin_ops ? m->impl : NULL;
}

/* ---- tensor product: io = {x1, x2} -> {y, x2} ---- */

static eqr_status tp_fwd_n(eqr_ctx *ctx, eqr_module *m, int n, eqr_tensor **io) {
    (void)n;
    io[0] = eqr_tp_forward(ctx, m->impl, io[0], io[1], NULL);
    return io[0] ? EQR_OK : eqr_error_status(ctx);
}
static int tp_describe(const eqr_module *m, char *buf, size_t n) {
    const eqr_tp *tp = m->impl;
    char ir[256];
    eqr_irreps_str(eqr_tp_irreps_in2(tp), ir, sizeof ir);
    return snprintf(buf, n, "x2 %s, %d paths%s", ir, eqr_tp_num_paths(tp),
                    eqr_tp_bias(tp) ? ", bias" : "");
}
static void tp_free(void *tp) { eqr_tp_destroy(tp); }
static const eqr_module_ops tp_ops = {.kind = "tp", .tuple = "x1, x2", .forward_n = tp_fwd_n,
                                      .destroy = tp_free, .describe = tp_describe};

eqr_module *eqr_tp_module(eqr_ctx *ctx, const char *name, const eqr_irreps *in1,
                          const eqr_irreps *in2, const eqr_irreps *out, int bias) {
    if (!eqr__ok(ctx, 0)) return NULL;
    int p0 = eqr_param_num_tensors(ctx);
    eqr_tp *tp = NULL;
    if (eqr_tp_create(ctx, name, in1, in2, out, 1, &tp) != EQR_OK) return NULL;
    if (bias && eqr_tp_add_bias(ctx, tp, name) != EQR_OK) {
        eqr_tp_destroy(tp);
        return NULL;
    }
    eqr_module *m = eqr__module_new(ctx, __func__, name, &tp_ops, tp, p0, eqr_param_num_tensors(ctx));
    if (m) eqr_module_set_types(m, &(eqr_ftype){.kind = EQR_FTYPE_IRREPS, .irreps = in1},
                                &(eqr_ftype){.kind = EQR_FTYPE_IRREPS, .irreps = out});
    return m;
}
eqr_tp *eqr_module_tp(const eqr_module *m) { return m && m->ops == &tp_ops ? m->impl : NULL; }

/* ---- irreps batch norm (follows the training switch) and layer norm ---- */

static eqr_tensor *ibn_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    return eqr_irreps_bn_forward(ctx, m->impl, x);
}
static void ibn_train(eqr_module *m, int on) { eqr_irreps_bn_set_training(m->impl, on); }
static void ibn_free(void *l) { eqr_irreps_bn_destroy(l); }
static const eqr_module_ops ibn_ops = {.kind = "irreps_bn", .forward = ibn_fwd,
                                       .train = ibn_train, .destroy = ibn_free};
static eqr_tensor *iln_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    return eqr_irreps_ln_forward(ctx, m->impl, x);
}
static void iln_free(void *l) { eqr_irreps_ln_destroy(l); }
static const eqr_module_ops iln_ops = {.kind = "irreps_ln", .forward = iln_fwd,
                                       .destroy = iln_free};

static eqr_module *wrap_irreps(eqr_ctx *ctx, const char *fn, const char *name,
                               const eqr_module_ops *ops, void *layer, int p0,
                               const eqr_irreps *ir) {
    if (!layer) return NULL;
    eqr_module *m = eqr__module_new(ctx, fn, name, ops, layer, p0, eqr_param_num_tensors(ctx));
    if (m) {
        eqr_ftype t = eqr_ftype_irreps(ir);
        eqr_module_set_types(m, &t, &t);
    }
    return m;
}
eqr_module *eqr_irreps_bn_module(eqr_ctx *ctx, const char *name, const eqr_irreps *irreps,
                                 const eqr_irreps_norm_opts *opts) {
    int p0 = eqr_param_num_tensors(ctx);
    eqr_irreps_bn *l = eqr_irreps_bn_create(ctx, name, irreps, opts);
    return wrap_irreps(ctx, __func__, name, &ibn_ops, l, p0, eqr_irreps_bn_irreps(l));
}
eqr_module *eqr_irreps_ln_module(eqr_ctx *ctx, const char *name, const eqr_irreps *irreps,
                                 const eqr_irreps_norm_opts *opts) {
    int p0 = eqr_param_num_tensors(ctx);
    eqr_irreps_ln *l = eqr_irreps_ln_create(ctx, name, irreps, opts);
    return wrap_irreps(ctx, __func__, name, &iln_ops, l, p0, eqr_irreps_ln_irreps(l));
}
eqr_irreps_bn *eqr_module_irreps_bn(const eqr_module *m) {
    return m && m->ops == &ibn_ops ? m->impl : NULL;
}
eqr_irreps_ln *eqr_module_irreps_ln(const eqr_module *m) {
    return m && m->ops == &iln_ops ? m->impl : NULL;
}

/* ---- gate ---- */

typedef struct gate {
    int64_t ns;
    int nb;
    int64_t mul[EQR_IRREPS_MAX];
    int l[EQR_IRREPS_MAX];
} gate;

static eqr_tensor *gate_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    const gate *g = m->impl;
    return eqr_gate(ctx, x, g->ns, g->nb, g->mul, g->l);
}
static void gate_free(void *g) { free(g); }
static const eqr_module_ops gate_ops = {.kind = "gate", .forward = gate_fwd, .destroy = gate_free};

eqr_module *eqr_gate_module(eqr_ctx *ctx, const char *name, const eqr_irreps *scalars,
                            const eqr_irreps *gated) {
    if (!eqr__ok(ctx, 2, scalars, gated)) return NULL;
    eqr_irreps in = {0}, out = {0};
    int64_t ng = eqr_irreps_num_irreps(gated);
    if (scalars->n + gated->n + 1 > EQR_IRREPS_MAX) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: too many irreps entries (%d + %d + 1 > %d)", __func__,
                  scalars->n, gated->n, EQR_IRREPS_MAX);
        return NULL;
    }
    for (int i = 0; i < scalars->n; i++)
        if (scalars->e[i].l != 0 || scalars->e[i].p != 1) {
            eqr__fail(ctx, EQR_ERR_ARG, "%s: scalar entry %d is %dx%d%c, not 0e", __func__, i,
                      scalars->e[i].mul, scalars->e[i].l, scalars->e[i].p > 0 ? 'e' : 'o');
            return NULL;
        }
    gate *g = eqr__calloc(ctx, __func__, 1, sizeof *g);
    if (!g) return NULL;
    g->ns = eqr_irreps_dim(scalars);
    g->nb = gated->n;
    for (int i = 0; i < gated->n; i++) {
        g->mul[i] = gated->e[i].mul;
        g->l[i] = gated->e[i].l;
    }
    /* in = scalars + ng x 0e + gated; out = scalars + gated */
    for (int i = 0; i < scalars->n; i++) in.e[in.n++] = out.e[out.n++] = scalars->e[i];
    if (ng > 0) in.e[in.n++] = (eqr_irrep_entry){.mul = (int)ng, .l = 0, .p = 1};
    for (int i = 0; i < gated->n; i++) in.e[in.n++] = out.e[out.n++] = gated->e[i];
    eqr_module *m = eqr__module_new(ctx, __func__, name, &gate_ops, g, 0, 0);
    if (m) eqr_module_set_types(m, &(eqr_ftype){.kind = EQR_FTYPE_IRREPS, .irreps = &in},
                                &(eqr_ftype){.kind = EQR_FTYPE_IRREPS, .irreps = &out});
    return m;
}

/* ---- EGNN: (h, x, v, e) -> (h', x', v, e) ---- */

static eqr_status egnn_fwd_n(eqr_ctx *ctx, eqr_module *m, int n, eqr_tensor **io) {
    (void)n;
    return eqr_egnn_forward(ctx, m->impl, io[0], io[1], io[2], io[3], &io[0], &io[1]);
}
static int egnn_describe(const eqr_module *m, char *buf, size_t n) {
    const eqr_egnn *l = m->impl;
    return snprintf(buf, n, "%d -> %d features, hidden %d%s%s", eqr_egnn_in_features(l),
                    eqr_egnn_out_features(l), eqr_egnn_hidden(l),
                    eqr_egnn_has_velocity(l) ? ", velocity" : "",
                    eqr_egnn_coord_term(l) ? ", coordinate term" : "");
}
static void egnn_free(void *l) { eqr_egnn_destroy(l); }
static const eqr_module_ops egnn_ops = {.kind = "egnn", .tuple = "h, x, v, edge_attr",
                                        .forward_n = egnn_fwd_n, .destroy = egnn_free,
                                        .describe = egnn_describe};

eqr_module *eqr_egnn_module(eqr_ctx *ctx, const char *name, int in_features, int out_features,
                            const eqr_egnn_opts *opts) {
    int p0 = eqr_param_num_tensors(ctx);
    eqr_egnn *l = eqr_egnn_create(ctx, name, in_features, out_features, opts);
    return l ? eqr__module_new(ctx, __func__, name, &egnn_ops, l, p0, eqr_param_num_tensors(ctx)) : NULL;
}
eqr_egnn *eqr_module_egnn(const eqr_module *m) {
    return m && m->ops == &egnn_ops ? m->impl : NULL;
}

/* The N-body SEGNN: io = {x, v, q} -> {predicted x, v, q}. */
static eqr_status segnn_fwd_n(eqr_ctx *ctx, eqr_module *m, int n, eqr_tensor **io) {
    (void)n;
    io[0] = eqr_segnn_forward(ctx, m->impl, io[0], io[1], io[2]);
    return io[0] ? EQR_OK : eqr_error_status(ctx);
}
static int segnn_describe(const eqr_module *m, char *buf, size_t n) {
    const eqr_segnn *s = m->impl;
    char ir[128];
    eqr_irreps_str(eqr_segnn_layer_hidden(eqr_segnn_layer_at(s, 0)), ir, sizeof ir);
    return snprintf(buf, n, "N-body SEGNN, %d layers, hidden %s%s", eqr_segnn_num_layers(s), ir,
                    eqr_segnn_layer_term(eqr_segnn_layer_at(s, 0), 0) ? ", update terms" : "");
}
static void segnn_free(void *s) { eqr_segnn_destroy(s); }
static const eqr_module_ops segnn_ops = {.kind = "segnn", .tuple = "x, v, q",
                                         .forward_n = segnn_fwd_n, .destroy = segnn_free,
                                         .describe = segnn_describe};

eqr_module *eqr_segnn_module(eqr_ctx *ctx, const char *name, const eqr_segnn_opts *opts) {
    int p0 = eqr_param_num_tensors(ctx);
    eqr_segnn *s = eqr_segnn_create(ctx, name, opts);
    return s ? eqr__module_new(ctx, __func__, name, &segnn_ops, s, p0, eqr_param_num_tensors(ctx)) : NULL;
}
eqr_segnn *eqr_module_segnn(const eqr_module *m) {
    return m && m->ops == &segnn_ops ? m->impl : NULL;
}
