/* Relaxation of modules through one call (eqr_relax_module): dispatch on
 * the module's kind to the relaxed layer of that kind, or relax every
 * relaxable module inside a container in place. */
#include "nn/module_internal.h"
#include "relax/relax_internal.h"

static eqr_tensor *relaxed_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    return eqr_rlayer_forward(ctx, m->impl, x);
}
static int relaxed_describe(const eqr_module *m, char *buf, size_t n) {
    const eqr_tensor *t = eqr_rlayer_theta(m->impl);
    const char *k = eqr_rlayer_kind(m->impl);
    if (k && !strcmp(k, "rgconv"))
        return snprintf(buf, n, "gconv as relaxed group conv (mixing weights a + theta D), theta %g",
                        t ? t->data[0] : 0.0);
    return snprintf(buf, n, "%s + theta W_r, theta %g", m->nchild ? m->child[0]->ops->kind : "?",
                    t ? t->data[0] : 0.0);
}
/* impl is the relaxed layer, owned by the relaxation. */
static const eqr_module_ops relaxed_ops = {.kind = "relaxed", .forward = relaxed_fwd,
                                           .describe = relaxed_describe};

/* EGNN and SEGNN carry their terms inside (hooks): the relaxed module runs
 * the layer's own tuple forward. */
static eqr_tensor *relaxed_child_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    return eqr__module_fwd(ctx, m->child[0], x);
}
static eqr_status relaxed_child_fwd_n(eqr_ctx *ctx, eqr_module *m, int n, eqr_tensor **io) {
    return eqr__module_fwd_n(ctx, m->child[0], n, io);
}
static const eqr_module_ops relaxed_hook_ops = {.kind = "relaxed", .forward = relaxed_child_fwd,
                                                .forward_n = relaxed_child_fwd_n,
                                                .describe = relaxed_describe};

/* A tensor product takes (x1, x2): the relaxed module maps io[0] with the
 * relaxed product and passes x2 through, as the product's module. */
static eqr_status relaxed_tp_fwd_n(eqr_ctx *ctx, eqr_module *m, int n, eqr_tensor **io) {
    (void)n;
    io[0] = eqr_rlayer_forward_tp(ctx, m->impl, io[0], io[1]);
    return io[0] ? EQR_OK : eqr_error_status(ctx);
}
static const eqr_module_ops relaxed_tp_ops = {.kind = "relaxed", .tuple = "x1, x2",
                                              .forward_n = relaxed_tp_fwd_n,
                                              .describe = relaxed_describe};

eqr_rlayer *eqr_module_rlayer(const eqr_module *m) {
    return m && (m->ops == &relaxed_ops || m->ops == &relaxed_hook_ops ||
                 m->ops == &relaxed_tp_ops)
               ? m->impl
               : NULL;
}

static const char relaxable[] =
    "gconv, steer_conv, vn_linear, irreps_linear, tp, egnn, segnn, or a container holding one";

/* The relaxed module of leaf m (owned: destroyed on error). */
static eqr_module *relax_leaf(eqr_ctx *ctx, eqr_relax *r, const char *name, eqr_module *m,
                              const eqr_rlayer_opts *opts) {
    const char *fn = "eqr_relax_module";
    const char *nm = name ? name : m->name;
    int p0 = eqr_param_num_tensors(ctx);
    eqr_rlayer *rl = NULL;
    if (opts && opts->kind == EQR_RELAX_KIND_RGCONV && !eqr_module_gconv(m) && !eqr_module_rlayer(m))
        eqr__fail(ctx, EQR_ERR_ARG,
                  "%s: module '%s' is of kind '%s'; relaxation kind rgconv (relaxed group conv) "
                  "applies to gconv modules only", fn, m->name, m->ops->kind);
    else if (eqr_module_gconv(m))
        rl = eqr_relax_gconv(ctx, r, nm, eqr_module_gconv(m), opts);
    else if (eqr_module_steer_conv(m))
        rl = eqr_relax_steer_conv(ctx, r, nm, eqr_module_steer_conv(m), opts);
    else if (eqr_module_vn_linear(m))
        rl = eqr_relax_vn_linear(ctx, r, nm, eqr_module_vn_linear(m), opts);
    else if (eqr_module_irreps_linear(m))
        rl = eqr_relax_irreps_linear(ctx, r, nm, eqr_module_irreps_linear(m), opts);
    else if (eqr_module_tp(m))
        rl = eqr_relax_tp(ctx, r, nm, eqr_module_tp(m), opts);
    else if (eqr_module_egnn(m))
        rl = eqr_relax_egnn(ctx, r, nm, eqr_module_egnn(m), opts);
    else if (eqr_module_segnn(m)) { /* two terms per layer; the module keeps the first */
        const int first = eqr_relax_num_layers(r);
        if (!eqr_relax_segnn(ctx, r, nm, eqr_module_segnn(m), opts))
            rl = eqr_relax_layer(r, first);
    } else if (eqr_module_rlayer(m))
        eqr__fail(ctx, EQR_ERR_ARG, "%s: module '%s' is relaxed already", fn, m->name);
    else
        eqr__fail(ctx, EQR_ERR_ARG,
                  "%s: module '%s' is of kind '%s', which cannot be relaxed (relaxable: %s)", fn,
                  m->name, m->ops->kind, relaxable);
    const eqr_module_ops *ops = eqr_module_egnn(m) || eqr_module_segnn(m) ? &relaxed_hook_ops
                                : eqr_module_tp(m)                         ? &relaxed_tp_ops
                                                                           : &relaxed_ops;
    eqr_module *w = rl ? eqr__module_new(ctx, fn, nm, ops, rl, p0, eqr_param_num_tensors(ctx)) : NULL;
    if (!w || eqr__module_adopt(w, m) != EQR_OK) {
        eqr_module_destroy(w);
        eqr_module_destroy(m);
        return NULL;
    }
    w->in = m->in;
    w->out = m->out;
    w->in_ir = m->in_ir;
    w->out_ir = m->out_ir;
    if (w->in.kind == EQR_FTYPE_IRREPS) w->in.irreps = &w->in_ir;
    if (w->out.kind == EQR_FTYPE_IRREPS) w->out.irreps = &w->out_ir;
    w->training = m->training;
    return w;
}

static int is_relaxable(const eqr_module *m) {
    return eqr_module_gconv(m) || eqr_module_steer_conv(m) || eqr_module_vn_linear(m) ||
           eqr_module_irreps_linear(m) || eqr_module_tp(m) || eqr_module_egnn(m) ||
           eqr_module_segnn(m);
}

/* Relax every relaxable module inside container s in place; returns how
 * many, or -1 on error (the failed child slot is then empty). */
static int relax_inside(eqr_ctx *ctx, eqr_relax *r, eqr_module *s, const eqr_rlayer_opts *opts) {
    int n = 0;
    for (int i = 0; i < s->nchild; i++) {
        eqr_module *c = s->child[i];
        if (c->ops == &eqr__sequential_ops) {
            int k = relax_inside(ctx, r, c, opts);
            if (k < 0) return -1;
            n += k;
        } else if (is_relaxable(c)) {
            c->in_container = 0;
            s->child[i] = NULL;
            eqr_module *w = relax_leaf(ctx, r, NULL, c, opts);
            if (!w) return -1;
            s->child[i] = w;
            w->in_container = 1;
            n++;
        }
    }
    return n;
}

eqr_module *eqr_relax_module(eqr_ctx *ctx, eqr_relax *r, const char *name, eqr_module *m,
                             const eqr_rlayer_opts *opts) {
    if (m && m->in_container) { /* owned elsewhere: not ours to destroy */
        if (eqr__ok(ctx, 0))
            eqr__fail(ctx, EQR_ERR_ARG, "%s: module '%s' is inside a container (relax the "
                      "container, or the module before adding it)", __func__, m->name);
        return NULL;
    }
    if (!eqr__ok(ctx, 2, r, m)) {
        eqr_module_destroy(m);
        return NULL;
    }
    if (m->ops != &eqr__sequential_ops) return relax_leaf(ctx, r, name, m, opts);
    int n = relax_inside(ctx, r, m, opts);
    if (n == 0)
        eqr__fail(ctx, EQR_ERR_ARG, "%s: container '%s' holds no module that can be relaxed "
                  "(relaxable: %s)", __func__, m->name, relaxable);
    if (n <= 0) {
        eqr_module_destroy(m);
        return NULL;
    }
    return m;
}
