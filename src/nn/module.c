/* The module interface: creation, ownership, forward, the recursive
 * training switch, parameter listing and the sequential container. */
#include "nn/module_internal.h"

#include <stdlib.h>

static int name_ok(eqr_ctx *ctx, const char *fn, const char *name) {
    if (!name || !name[0]) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: name is NULL or empty", fn);
        return 0;
    }
    if (strlen(name) >= EQR_NAME_LEN) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: name '%.20s...' longer than %d characters", fn, name,
                  EQR_NAME_LEN - 1);
        return 0;
    }
    return 1;
}

eqr_module *eqr__module_new(eqr_ctx *ctx, const char *fn, const char *name,
                            const eqr_module_ops *ops, void *impl, int p0, int p1) {
    eqr_module *m = NULL;
    if (!ctx) goto fail;
    if (!ops || !ops->kind || !(ops->forward || (ops->tuple && ops->forward_n))) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: ops, ops->kind and ops->forward (or ops->tuple and "
                  "ops->forward_n) are required", fn);
        goto fail;
    }
    if (!name_ok(ctx, fn, name ? name : ops->kind)) goto fail;
    m = eqr__calloc(ctx, fn, 1, sizeof *m);
    if (!m) goto fail;
    m->ctx = ctx;
    m->ops = ops;
    m->impl = impl;
    m->training = 1;
    snprintf(m->name, sizeof m->name, "%s", name ? name : ops->kind);
    if (eqr__module_add_params(m, p0, p1) != EQR_OK) {
        eqr_module_destroy(m);
        return NULL;
    }
    return m;
fail:
    if (ops && ops->destroy && impl) ops->destroy(impl);
    return NULL;
}

eqr_status eqr__module_add_params(eqr_module *m, int p0, int p1) {
    if (p1 <= p0) return EQR_OK;
    int *p = realloc(m->params, (size_t)(m->nparams + p1 - p0) * sizeof *p);
    if (!p) return eqr__fail(m->ctx, EQR_ERR_NOMEM, "module '%s': out of memory", m->name);
    m->params = p;
    for (int i = p0; i < p1; i++) m->params[m->nparams++] = i;
    return EQR_OK;
}

eqr_module *eqr_module_create(eqr_ctx *ctx, const char *name, const eqr_module_ops *ops,
                              void *impl) {
    if (ctx && !name_ok(ctx, __func__, name)) {
        if (ops && ops->destroy && impl) ops->destroy(impl);
        return NULL;
    }
    eqr_module *m = eqr__module_new(ctx, __func__, name, ops, impl, 0, 0);
    if (!m) return NULL;
    /* its parameters: the store entries "<name>.*" that exist now */
    size_t len = strlen(m->name);
    for (int i = 0; i < eqr_param_num_tensors(ctx); i++) {
        const char *pn = eqr_param_name(ctx, i);
        if (!strncmp(pn, m->name, len) && pn[len] == '.' && eqr__module_add_params(m, i, i + 1)) {
            eqr_module_destroy(m);
            return NULL;
        }
    }
    return m;
}

static void set_type(eqr_ftype *dst, eqr_irreps *store, const eqr_ftype *src) {
    *dst = *src;
    if (src->kind == EQR_FTYPE_IRREPS) {
        *store = *src->irreps;
        dst->irreps = store;
    }
}

eqr_status eqr_module_set_types(eqr_module *m, const eqr_ftype *in, const eqr_ftype *out) {
    if (!m) return EQR_ERR_ARG;
    if (!in || !out || (in->kind == EQR_FTYPE_REP && !in->rep) ||
        (out->kind == EQR_FTYPE_REP && !out->rep) || (in->kind == EQR_FTYPE_IRREPS && !in->irreps) ||
        (out->kind == EQR_FTYPE_IRREPS && !out->irreps))
        return eqr__fail(m->ctx, EQR_ERR_ARG, "%s: module '%s': a type is NULL or has no rep/irreps",
                         __func__, m->name);
    set_type(&m->in, &m->in_ir, in);
    set_type(&m->out, &m->out_ir, out);
    return EQR_OK;
}

void eqr_module_destroy(eqr_module *m) {
    if (!m) return;
    for (int i = 0; i < m->nchild; i++) eqr_module_destroy(m->child[i]);
    if (m->ops && m->ops->destroy && m->impl) m->ops->destroy(m->impl);
    free(m->child);
    free(m->params);
    free(m);
}

/* The number of entries of a tuple-only module, and the i-th one's name
 * (into buf). */
static int tuple_arity(const char *t) {
    int n = 1;
    for (; *t; t++) n += *t == ',';
    return n;
}
static const char *tuple_entry(const char *t, int i, char *buf, size_t cap) {
    for (; i > 0 && *t; t++) i -= *t == ',';
    while (*t == ' ') t++;
    size_t k = strcspn(t, ",");
    snprintf(buf, cap, "%.*s", (int)(k < cap ? k : cap - 1), t);
    return buf;
}

eqr_tensor *eqr__module_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    if (m->ops->tuple) {
        eqr__fail(ctx, EQR_ERR_ARG, "module '%s' (%s) takes (%s): use eqr_module_forward_n with "
                  "n = %d", m->name, m->ops->kind, m->ops->tuple, tuple_arity(m->ops->tuple));
        return NULL;
    }
    return m->ops->forward(ctx, m, x);
}

eqr_tensor *eqr_module_forward(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    if (!eqr__ok(ctx, 2, m, x)) return NULL;
    return eqr__module_fwd(ctx, m, x);
}

eqr_status eqr__module_fwd_n(eqr_ctx *ctx, eqr_module *m, int n, eqr_tensor **io) {
    const char *t = m->ops->tuple;
    if (t && n != tuple_arity(t))
        return eqr__fail(ctx, EQR_ERR_ARG, "module '%s' (%s): the tuple is (%s), n = %d (got %d)",
                         m->name, m->ops->kind, t, tuple_arity(t), n);
    for (int i = 0; t && i < n; i++) {
        char e[32];
        if (!io[i])
            return eqr__fail(ctx, EQR_ERR_ARG, "module '%s' (%s): io[%d] (%s) is NULL", m->name,
                             m->ops->kind, i, tuple_entry(t, i, e, sizeof e));
    }
    if (m->ops->forward_n) return m->ops->forward_n(ctx, m, n, io);
    io[0] = m->ops->forward(ctx, m, io[0]);
    return io[0] ? EQR_OK : eqr_error_status(ctx);
}

eqr_status eqr_module_forward_n(eqr_ctx *ctx, eqr_module *m, int n, eqr_tensor **io) {
    if (!eqr__ok(ctx, 2, m, io)) return ctx && eqr_error_status(ctx) ? eqr_error_status(ctx) : EQR_ERR_ARG;
    if (n < 1 || !io[0])
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: module '%s': need n >= 1 and io[0] (got n = %d%s)",
                         __func__, m->name, n, n >= 1 ? ", io[0] NULL" : "");
    eqr_status st = eqr__module_fwd_n(ctx, m, n, io);
    if (st != EQR_OK) io[0] = NULL;
    return st;
}

eqr_tensor *eqr_module_apply(eqr_ctx *ctx, void *m, eqr_tensor *x) {
    return eqr_module_forward(ctx, m, x);
}

void eqr_module_set_training(eqr_module *m, int on) {
    if (!m) return;
    m->training = on ? 1 : 0;
    if (m->ops->train) m->ops->train(m, m->training);
    for (int i = 0; i < m->nchild; i++) eqr_module_set_training(m->child[i], on);
}

int eqr_module_training(const eqr_module *m) { return m ? m->training : 0; }
const char *eqr_module_name(const eqr_module *m) { return m ? m->name : NULL; }
const char *eqr_module_kind(const eqr_module *m) { return m ? m->ops->kind : NULL; }
const eqr_module_ops *eqr_module_get_ops(const eqr_module *m) { return m ? m->ops : NULL; }
void *eqr_module_impl(const eqr_module *m) { return m ? m->impl : NULL; }
eqr_ctx *eqr_module_ctx(const eqr_module *m) { return m ? m->ctx : NULL; }
eqr_ftype eqr_module_in_type(const eqr_module *m) { return m ? m->in : eqr_ftype_none(); }
eqr_ftype eqr_module_out_type(const eqr_module *m) { return m ? m->out : eqr_ftype_none(); }
int eqr_module_num_children(const eqr_module *m) { return m ? m->nchild : 0; }
eqr_module *eqr_module_child(const eqr_module *m, int i) {
    return m && i >= 0 && i < m->nchild ? m->child[i] : NULL;
}

int eqr_module_num_params(const eqr_module *m) {
    if (!m) return 0;
    int n = m->nparams;
    for (int i = 0; i < m->nchild; i++) n += eqr_module_num_params(m->child[i]);
    return n;
}

int eqr_module_param_index(const eqr_module *m, int i) {
    if (!m || i < 0) return -1;
    if (i < m->nparams) return m->params[i];
    i -= m->nparams;
    for (int c = 0; c < m->nchild; c++) {
        int n = eqr_module_num_params(m->child[c]);
        if (i < n) return eqr_module_param_index(m->child[c], i);
        i -= n;
    }
    return -1;
}

void eqr_module_num_scalars(const eqr_module *m, int64_t *params, int64_t *buffers) {
    int64_t p = 0, b = 0;
    for (int i = 0, n = eqr_module_num_params(m); i < n; i++) {
        int k = eqr_module_param_index(m, i);
        eqr_tensor *t = eqr_param_at(m->ctx, k);
        if (!t) continue;
        if (eqr_param_flags(m->ctx, k) & EQR_PARAM_BUFFER)
            b += t->numel;
        else
            p += t->numel;
    }
    if (params) *params = p;
    if (buffers) *buffers = b;
}

int eqr__module_passes_type(const eqr_module *m) {
    return m->ops->keeps_type || (m->ops == &eqr__sequential_ops && !m->typed);
}

eqr_status eqr__module_adopt(eqr_module *m, eqr_module *child) {
    if (m->nchild == m->cap) {
        int cap = m->cap ? 2 * m->cap : 4;
        eqr_module **c = realloc(m->child, (size_t)cap * sizeof *c);
        if (!c) return eqr__fail(m->ctx, EQR_ERR_NOMEM, "module '%s': out of memory", m->name);
        m->child = c;
        m->cap = cap;
    }
    m->child[m->nchild++] = child;
    child->in_container = 1;
    return EQR_OK;
}

/* ------------------------------------------------------------ sequential */

static eqr_tensor *seq_forward(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x) {
    for (int i = 0; i < m->nchild && x; i++) x = eqr__module_fwd(ctx, m->child[i], x);
    return x;
}

static eqr_status seq_forward_n(eqr_ctx *ctx, eqr_module *m, int n, eqr_tensor **io) {
    eqr_status st = EQR_OK;
    for (int i = 0; i < m->nchild && st == EQR_OK; i++) st = eqr__module_fwd_n(ctx, m->child[i], n, io);
    return st;
}

const eqr_module_ops eqr__sequential_ops = {.kind = "sequential", .forward = seq_forward,
                                            .forward_n = seq_forward_n};

eqr_module *eqr_sequential_create(eqr_ctx *ctx, const char *name) {
    if (ctx && !name_ok(ctx, __func__, name)) return NULL;
    return eqr__module_new(ctx, __func__, name, &eqr__sequential_ops, NULL, 0, 0);
}

/* Recompute a sequential's resolved types from its children. */
static void seq_retype(eqr_module *s) {
    s->in = s->out = eqr_ftype_none();
    s->typed = 0;
    for (int i = 0; i < s->nchild; i++) {
        const eqr_module *c = s->child[i];
        if (eqr__module_passes_type(c)) continue;
        if (!s->typed) set_type(&s->in, &s->in_ir, &c->in);
        set_type(&s->out, &s->out_ir, &c->out);
        s->typed = 1;
    }
}

/* The type flowing into position i of s, and the child that made it. */
static eqr_ftype seq_type_at(const eqr_module *s, int i, const eqr_module **from) {
    *from = NULL;
    for (int k = i - 1; k >= 0; k--)
        if (!eqr__module_passes_type(s->child[k])) {
            *from = s->child[k];
            return s->child[k]->out;
        }
    return eqr_ftype_none();
}

/* EQR_ERR_ARG naming both layers if child cannot follow position i - 1
 * (nor, if next, precede the child at position i). */
static eqr_status seq_check(const eqr_module *s, int i, const eqr_module *c, const char *fn) {
    if (eqr__module_passes_type(c)) return EQR_OK;
    const eqr_module *prev;
    eqr_ftype have = seq_type_at(s, i, &prev);
    char a[512], b[512];
    if (!eqr_ftype_compatible(&have, &c->in)) {
        eqr_ftype_str(&have, a, sizeof a);
        eqr_ftype_str(&c->in, b, sizeof b);
        return eqr__fail(s->ctx, EQR_ERR_ARG,
                         "%s: in '%s', layer '%s' (%s) gives %s but the next layer '%s' (%s) "
                         "expects %s",
                         fn, s->name, prev->name, prev->ops->kind, a, c->name, c->ops->kind, b);
    }
    return EQR_OK;
}

eqr_status eqr_sequential_add(eqr_module *seq, eqr_module *child) {
    eqr_ctx *ctx = seq ? seq->ctx : child ? child->ctx : NULL;
    eqr_status st = EQR_OK;
    if (!seq) {
        st = EQR_ERR_ARG;
        if (ctx) eqr__fail(ctx, st, "%s: argument 'seq' is NULL", __func__);
    } else if (eqr_error_status(ctx) != EQR_OK) {
        st = eqr_error_status(ctx);
    } else if (!child) {
        st = eqr__fail(ctx, EQR_ERR_ARG, "%s: argument 'child' is NULL", __func__);
    } else if (seq->ops != &eqr__sequential_ops) {
        st = eqr__fail(ctx, EQR_ERR_ARG, "%s: '%s' is a %s, not a sequential", __func__, seq->name,
                       seq->ops->kind);
    } else if (child == seq || child->in_container) {
        st = eqr__fail(ctx, EQR_ERR_ARG, "%s: '%s' is %s", __func__, child->name,
                       child == seq ? "the container itself" : "already inside a container");
        child = NULL; /* not ours to free */
    } else if ((st = seq_check(seq, seq->nchild, child, __func__)) == EQR_OK &&
               (st = eqr__module_adopt(seq, child)) == EQR_OK) {
        seq_retype(seq);
        return EQR_OK;
    }
    eqr_module_destroy(child);
    return st;
}

eqr_module *eqr_module_replace_child(eqr_module *parent, int i, eqr_module *m) {
    eqr_ctx *ctx = parent ? parent->ctx : m ? m->ctx : NULL;
    if (!parent || !m || parent->ops != &eqr__sequential_ops || i < 0 || i >= parent->nchild ||
        m->in_container) {
        if (ctx && eqr_error_status(ctx) == EQR_OK)
            eqr__fail(ctx, EQR_ERR_ARG,
                      "%s: need a sequential, a child index in range and a module of no container",
                      __func__);
        if (m && !m->in_container) eqr_module_destroy(m);
        return NULL;
    }
    eqr_module *old = parent->child[i];
    /* check m between its neighbours: before it the types up to i, after
     * it the next type-defining child */
    eqr_status st = seq_check(parent, i, m, __func__);
    if (st == EQR_OK && !eqr__module_passes_type(m))
        for (int k = i + 1; k < parent->nchild; k++)
            if (!eqr__module_passes_type(parent->child[k])) {
                if (!eqr_ftype_compatible(&m->out, &parent->child[k]->in)) {
                    char a[512], b[512];
                    eqr_ftype_str(&m->out, a, sizeof a);
                    eqr_ftype_str(&parent->child[k]->in, b, sizeof b);
                    st = eqr__fail(ctx, EQR_ERR_ARG,
                                   "%s: in '%s', layer '%s' (%s) gives %s but the next layer '%s' "
                                   "(%s) expects %s",
                                   __func__, parent->name, m->name, m->ops->kind, a,
                                   parent->child[k]->name, parent->child[k]->ops->kind, b);
                }
                break;
            }
    if (st != EQR_OK) {
        eqr_module_destroy(m);
        return NULL;
    }
    parent->child[i] = m;
    m->in_container = 1;
    old->in_container = 0;
    seq_retype(parent);
    return old;
}
