/* Irreps of O(3): parsing, printing, layout, simplification, sorting and the
 * action of O(3) on irreps-typed feature rows (o3.h). */
#include "groups/o3_internal.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t') p++;
    return p;
}

/* Reads an unsigned decimal (at most 9 digits) at *pp; -1 if none. */
static long read_uint(const char **pp) {
    const char *p = *pp;
    long v = 0;
    int nd = 0;
    while (isdigit((unsigned char)*p)) {
        if (++nd > 9) return -2;
        v = v * 10 + (*p++ - '0');
    }
    if (!nd) return -1;
    *pp = p;
    return v;
}

eqr_status eqr_irreps_parse(eqr_ctx *ctx, const char *s, eqr_irreps *out) {
    if (!ctx) return EQR_ERR_ARG;
    if (!s || !out) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_irreps_parse: NULL string or output");
    eqr_irreps r;
    r.n = 0;
    const char *p = skip_ws(s);
#define BAD(...) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_irreps_parse: \"%s\": " __VA_ARGS__)
    if (!*p) { *out = r; return EQR_OK; }
    for (;;) {
        if (r.n == EQR_IRREPS_MAX) BAD("more than %d entries", s, EQR_IRREPS_MAX);
        p = skip_ws(p);
        long mul = 1, l;
        const char *q = p;
        long a = read_uint(&q);
        if (a == -2) BAD("number too long at position %d", s, (int)(p - s));
        if (a < 0) BAD("expected a multiplicity or degree at position %d", s, (int)(p - s));
        q = skip_ws(q);
        if (*q == 'x') {
            mul = a;
            p = skip_ws(q + 1);
            q = p;
            l = read_uint(&q);
            if (l < 0) BAD("expected a degree l after 'x' at position %d", s, (int)(p - s));
            q = skip_ws(q);
        } else {
            l = a;
        }
        if (l > EQR_O3_LMAX) BAD("degree %ld above %d at position %d", s, l, EQR_O3_LMAX, (int)(p - s));
        if (*q != 'e' && *q != 'o')
            BAD("expected parity 'e' or 'o' at position %d", s, (int)(q - s));
        r.e[r.n].mul = (int)mul;
        r.e[r.n].l = (int)l;
        r.e[r.n].p = *q == 'e' ? 1 : -1;
        r.n++;
        p = skip_ws(q + 1);
        if (!*p) break;
        if (*p != '+') BAD("expected '+' or the end at position %d", s, (int)(p - s));
        p++;
    }
#undef BAD
    *out = r;
    return EQR_OK;
}

int eqr_irreps_str(const eqr_irreps *ir, char *buf, size_t n) {
    size_t len = 0;
    if (n) buf[0] = 0;
    for (int i = 0; i < ir->n; i++) {
        char t[48];
        int k = snprintf(t, sizeof t, "%s%dx%d%c", i ? "+" : "", ir->e[i].mul, ir->e[i].l,
                         ir->e[i].p > 0 ? 'e' : 'o');
        if (len + (size_t)k < n) memcpy(buf + len, t, (size_t)k + 1);
        else if (len < n) { memcpy(buf + len, t, n - 1 - len); buf[n - 1] = 0; }
        len += (size_t)k;
    }
    return (int)len;
}

int64_t eqr_irreps_offset(const eqr_irreps *ir, int i) {
    int64_t o = 0;
    for (int k = 0; k < i && k < ir->n; k++) o += (int64_t)ir->e[k].mul * (2 * ir->e[k].l + 1);
    return o;
}

int64_t eqr_irreps_dim(const eqr_irreps *ir) { return eqr_irreps_offset(ir, ir->n); }

int64_t eqr_irreps_num_irreps(const eqr_irreps *ir) {
    int64_t s = 0;
    for (int k = 0; k < ir->n; k++) s += ir->e[k].mul;
    return s;
}

int eqr_irreps_lmax(const eqr_irreps *ir) {
    int m = -1;
    for (int k = 0; k < ir->n; k++) m = ir->e[k].l > m ? ir->e[k].l : m;
    return m;
}

int eqr_irreps_equal(const eqr_irreps *a, const eqr_irreps *b) {
    if (a->n != b->n) return 0;
    for (int k = 0; k < a->n; k++)
        if (a->e[k].mul != b->e[k].mul || a->e[k].l != b->e[k].l || a->e[k].p != b->e[k].p)
            return 0;
    return 1;
}

void eqr_irreps_simplify(const eqr_irreps *in, eqr_irreps *out) {
    eqr_irreps r;
    r.n = 0;
    for (int k = 0; k < in->n; k++) {
        eqr_irrep_entry e = in->e[k];
        if (e.mul == 0) continue;
        /* a sum past INT_MAX stays two entries (same value, no overflow) */
        if (r.n && r.e[r.n - 1].l == e.l && r.e[r.n - 1].p == e.p &&
            r.e[r.n - 1].mul <= INT_MAX - e.mul)
            r.e[r.n - 1].mul += e.mul;
        else
            r.e[r.n++] = e;
    }
    *out = r;
}

static int key(const eqr_irrep_entry *e) { return 2 * e->l + (e->p < 0); }

void eqr_irreps_sort(const eqr_irreps *in, eqr_irreps *out, int *perm) {
    int idx[EQR_IRREPS_MAX];
    for (int k = 0; k < in->n; k++) idx[k] = k;
    for (int k = 1; k < in->n; k++) { /* stable insertion sort */
        int v = idx[k], j = k;
        while (j > 0 && key(&in->e[idx[j - 1]]) > key(&in->e[v])) { idx[j] = idx[j - 1]; j--; }
        idx[j] = v;
    }
    eqr_irreps r;
    r.n = in->n;
    for (int k = 0; k < in->n; k++) r.e[k] = in->e[idx[k]];
    if (perm)
        for (int k = 0; k < in->n; k++) perm[k] = idx[k];
    *out = r;
}

eqr_status eqr_irreps_act(eqr_ctx *ctx, const eqr_irreps *ir, const double R[9], int s,
                          const float *x, float *y, int64_t n) {
    if (!ctx) return EQR_ERR_ARG;
    if (!ir || !R || !x || !y || n < 0 || (s != 1 && s != -1))
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_irreps_act: bad arguments (s %d must be +-1, n %lld)",
                         s, (long long)n);
    int lmax = eqr_irreps_lmax(ir);
    if (lmax < 0) return EQR_OK;
    double *Ds = malloc(sizeof(double) * (size_t)(lmax + 1) * (2 * lmax + 1) * (2 * lmax + 1));
    if (!Ds) return eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_irreps_act: out of memory");
    size_t stride = (size_t)(2 * lmax + 1) * (2 * lmax + 1);
    double w[3];
    eqr_o3_rotvec(R, w);
    for (int l = 0; l <= lmax; l++) {
        eqr_status st = eqr_o3_wigner_d_w(ctx, l, w, Ds + l * stride);
        if (st) { free(Ds); return st; }
    }
    int64_t dim = eqr_irreps_dim(ir);
    for (int64_t row = 0; row < n; row++) {
        const float *xr = x + row * dim;
        float *yr = y + row * dim;
        int64_t o = 0;
        for (int k = 0; k < ir->n; k++) {
            int l = ir->e[k].l, d = 2 * l + 1;
            double sg = (s < 0 && ir->e[k].p < 0) ? -1 : 1;
            const double *D = Ds + l * stride;
            for (int u = 0; u < ir->e[k].mul; u++, o += d)
                for (int i = 0; i < d; i++) {
                    double t = 0;
                    for (int j = 0; j < d; j++) t += D[i * d + j] * xr[o + j];
                    yr[o + i] = (float)(sg * t);
                }
        }
    }
    free(Ds);
    return EQR_OK;
}

int eqr__irreps_ok(eqr_ctx *ctx, const char *fn, const eqr_irreps *ir, int nonempty) {
    if (!ir) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: NULL irreps", fn);
        return 0;
    }
    if (ir->n < 0 || ir->n > EQR_IRREPS_MAX) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: irreps with %d entries (0..%d)", fn, ir->n, EQR_IRREPS_MAX);
        return 0;
    }
    for (int i = 0; i < ir->n; i++) {
        const eqr_irrep_entry *e = &ir->e[i];
        if (e->mul < 0 || e->l < 0 || e->l > EQR_O3_LMAX || (e->p != 1 && e->p != -1)) {
            eqr__fail(ctx, EQR_ERR_ARG,
                      "%s: irreps entry %d is mul %d, l %d, p %d (need mul >= 0, l in 0..%d, p = +-1)",
                      fn, i, e->mul, e->l, e->p, EQR_O3_LMAX);
            return 0;
        }
    }
    if (nonempty && eqr_irreps_dim(ir) == 0) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: empty irreps (dimension 0)", fn);
        return 0;
    }
    return 1;
}

eqr_status eqr_irreps_lie_generators(eqr_ctx *ctx, const eqr_irreps *ir, float *gens) {
    static const char fn[] = "eqr_irreps_lie_generators";
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!eqr__irreps_ok(ctx, fn, ir, 1)) return ctx->status;
    if (!gens) return eqr__fail(ctx, EQR_ERR_ARG, "%s: gens is NULL", fn);
    const int64_t dim = eqr_irreps_dim(ir);
    memset(gens, 0, sizeof(float) * (size_t)(3 * dim * dim));
    const int lmax = eqr_irreps_lmax(ir);
    double *J = malloc(sizeof(double) * 3 * (size_t)(2 * lmax + 1) * (2 * lmax + 1));
    if (!J) return eqr__fail(ctx, EQR_ERR_NOMEM, "%s: out of memory", fn);
    for (int i = 0; i < ir->n; i++) {
        const int l = ir->e[i].l, d = 2 * l + 1;
        if (l == 0 || ir->e[i].mul == 0) continue; /* scalars: J = 0 */
        eqr_status st = eqr_o3_generators(ctx, l, J);
        if (st) {
            free(J);
            return st;
        }
        for (int u = 0; u < ir->e[i].mul; u++) {
            const int64_t o = eqr_irreps_offset(ir, i) + (int64_t)u * d;
            for (int k = 0; k < 3; k++)
                for (int r = 0; r < d; r++)
                    for (int c = 0; c < d; c++)
                        gens[(k * dim + o + r) * dim + o + c] = (float)J[(k * d + r) * d + c];
        }
    }
    free(J);
    return EQR_OK;
}
