/* The model summary: a table of modules with their types and parameter
 * counts, into a buffer or the log callback. */
#include "nn/module_internal.h"

#include <inttypes.h>
#include <stdlib.h>

typedef struct sbuf {
    char *buf;
    size_t n;
    int len;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t at = (size_t)b->len;
    int k = vsnprintf(at < b->n ? b->buf + at : NULL, at < b->n ? b->n - at : 0, fmt, ap);
    va_end(ap);
    if (k > 0) b->len += k;
}

/* One row for m (its type input `have` when m passes types through), then
 * its children; returns the type m outputs. */
static eqr_ftype row(sbuf *b, const eqr_module *m, int depth, eqr_ftype have) {
    eqr_ftype in = m->in, out = m->out;
    if (eqr__module_passes_type(m)) in = out = have;
    else if (m->ops == &eqr__sequential_ops && m->in.kind == EQR_FTYPE_NONE) in = have;
    char name[96], kind[48], ti[512], to[512], det[128] = "";
    snprintf(name, sizeof name, "%*s%s", 2 * depth, "", m->name);
    snprintf(kind, sizeof kind, "%s", m->ops->kind);
    eqr_ftype_str(&in, ti, sizeof ti);
    eqr_ftype_str(&out, to, sizeof to);
    if (m->ops->describe) m->ops->describe(m, det, sizeof det);
    int64_t p = 0;
    eqr_module_num_scalars(m, &p, NULL);
    char types[1040];
    snprintf(types, sizeof types, "%s -> %s", ti, to);
    put(b, "%-22s %-14s %-40s %10" PRId64 "%s%s\n", name, kind, types, p, det[0] ? "  " : "", det);
    eqr_ftype cur = in;
    for (int i = 0; i < m->nchild; i++) cur = row(b, m->child[i], depth + 1, cur);
    return out;
}

int eqr_module_summary(eqr_ctx *ctx, const eqr_module *m, char *buf, size_t n) {
    if (!m) {
        if (ctx) eqr__fail(ctx, EQR_ERR_ARG, "%s: argument 'm' is NULL", __func__);
        if (buf && n) buf[0] = 0;
        return -1;
    }
    sbuf b = {buf, buf ? n : 0, 0};
    if (b.n) buf[0] = 0;
    put(&b, "%-22s %-14s %-40s %10s\n", "name", "kind", "in -> out", "params");
    row(&b, m, 0, eqr_ftype_none());
    int64_t p = 0, bu = 0;
    eqr_module_num_scalars(m, &p, &bu);
    int nt = 0;
    for (int i = 0, k = eqr_module_num_params(m); i < k; i++)
        if (!(eqr_param_flags(m->ctx, eqr_module_param_index(m, i)) & EQR_PARAM_BUFFER)) nt++;
    put(&b, "total: %" PRId64 " parameters in %d tensors, %" PRId64 " buffer values\n", p, nt, bu);
    return b.len;
}

eqr_status eqr_module_log_summary(eqr_ctx *ctx, const eqr_module *m, eqr_log_level level) {
    int len = eqr_module_summary(ctx, m, NULL, 0);
    if (len < 0) return EQR_ERR_ARG;
    char *s = malloc((size_t)len + 1);
    if (!s) return eqr__fail(ctx, EQR_ERR_NOMEM, "%s: out of memory", __func__);
    eqr_module_summary(ctx, m, s, (size_t)len + 1);
    for (char *line = s, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        *nl = 0; /* every line of the summary ends with a newline */
        eqr__log(ctx, level, "%s", line);
    }
    free(s);
    return EQR_OK;
}
