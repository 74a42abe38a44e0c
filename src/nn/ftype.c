/* Field types of modules: constructors, printing, compatibility. */
#include "nn/module_internal.h"

eqr_ftype eqr_ftype_none(void) { return (eqr_ftype){.kind = EQR_FTYPE_NONE}; }
eqr_ftype eqr_ftype_plain(int channels) {
    return (eqr_ftype){.kind = EQR_FTYPE_PLAIN, .channels = channels};
}
eqr_ftype eqr_ftype_rep(const eqr_rep *rep) {
    return rep ? (eqr_ftype){.kind = EQR_FTYPE_REP, .rep = rep} : eqr_ftype_none();
}
eqr_ftype eqr_ftype_irreps(const eqr_irreps *irreps) {
    return irreps ? (eqr_ftype){.kind = EQR_FTYPE_IRREPS, .irreps = irreps} : eqr_ftype_none();
}
eqr_ftype eqr_ftype_vn(int channels) {
    return (eqr_ftype){.kind = EQR_FTYPE_VN, .channels = channels};
}

/* Appends to buf as snprintf would, tracking the full length in *len. */
static void put(char *buf, size_t n, int *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t n, int *len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t at = (size_t)*len;
    int k = vsnprintf(at < n ? buf + at : NULL, at < n ? n - at : 0, fmt, ap);
    va_end(ap);
    if (k > 0) *len += k;
}

int eqr_ftype_str(const eqr_ftype *t, char *buf, size_t n) {
    int len = 0;
    if (buf && n) buf[0] = 0;
    if (!buf) n = 0;
    if (!t) return 0;
    switch (t->kind) {
    case EQR_FTYPE_PLAIN: put(buf, n, &len, "plain(%d)", t->channels); break;
    case EQR_FTYPE_VN: put(buf, n, &len, "vn(%d)", t->channels); break;
    case EQR_FTYPE_IRREPS: {
        char s[1024];
        eqr_irreps_str(t->irreps, s, sizeof s);
        put(buf, n, &len, "%s", s[0] ? s : "0");
        break;
    }
    case EQR_FTYPE_REP: {
        char g[64];
        put(buf, n, &len, "%s[", eqr_group_name(&t->rep->group, g, sizeof g));
        for (int k = 0; k < t->rep->nparts; k++) {
            const eqr_rep_part *p = &t->rep->parts[k];
            char ir[64];
            const char *what = p->kind == EQR_PART_REGULAR ? "regular"
                               : (p->irrep.j == 0 && p->irrep.freq == 0)
                                   ? "trivial"
                                   : eqr_irrep_name(p->irrep, ir, sizeof ir);
            put(buf, n, &len, "%s%s", k ? " + " : "", what);
            if (p->mult > 1) put(buf, n, &len, " x%d", p->mult);
        }
        put(buf, n, &len, "]");
        break;
    }
    default: put(buf, n, &len, "-"); break;
    }
    return len;
}

static int rep_equal(const eqr_rep *a, const eqr_rep *b) {
    if (a == b) return 1;
    if (a->group.kind != b->group.kind || a->group.n != b->group.n ||
        a->group.max_freq != b->group.max_freq || a->nparts != b->nparts)
        return 0;
    for (int k = 0; k < a->nparts; k++) {
        const eqr_rep_part *p = &a->parts[k], *q = &b->parts[k];
        if (p->kind != q->kind || p->mult != q->mult) return 0;
        if (p->kind == EQR_PART_IRREP && (p->irrep.j != q->irrep.j || p->irrep.freq != q->irrep.freq))
            return 0;
    }
    return 1;
}

static int64_t ftype_dim(const eqr_ftype *t) {
    switch (t->kind) {
    case EQR_FTYPE_PLAIN: return t->channels;
    case EQR_FTYPE_REP: return t->rep->dim;
    case EQR_FTYPE_IRREPS: return eqr_irreps_dim(t->irreps);
    default: return -1; /* VN channels are 3-vectors, not plain numbers */
    }
}

int eqr_ftype_compatible(const eqr_ftype *out, const eqr_ftype *in) {
    if (!out || !in || out->kind == EQR_FTYPE_NONE || in->kind == EQR_FTYPE_NONE) return 1;
    if (out->kind == EQR_FTYPE_PLAIN || in->kind == EQR_FTYPE_PLAIN)
        return ftype_dim(out) >= 0 && ftype_dim(out) == ftype_dim(in);
    if (out->kind != in->kind) return 0;
    switch (in->kind) {
    case EQR_FTYPE_VN: return out->channels == in->channels;
    case EQR_FTYPE_REP: return rep_equal(out->rep, in->rep);
    case EQR_FTYPE_IRREPS: return eqr_irreps_equal(out->irreps, in->irreps);
    default: return 1;
    }
}
