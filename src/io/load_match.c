/* Name matching of file entries to the parameter store, shared by the
 * checkpoint and safetensors readers so both follow one set of rules. File
 * names are sorted once (qsort) and looked up with bsearch: a hostile file
 * with many entries costs n log n, not n * m. */
#include "io/io_internal.h"

#include <stdlib.h>

#define LIST_MAX 3 /* names listed per category in an error message */

static int skip_one(const char *pat, const char *name) {
    size_t lp = strlen(pat), ln = strlen(name);
    if (lp == 1 && pat[0] == '*') return 1;
    if (lp > 0 && pat[0] == '*') return ln >= lp - 1 && strcmp(name + ln - (lp - 1), pat + 1) == 0;
    if (lp > 0 && pat[lp - 1] == '*') return strncmp(name, pat, lp - 1) == 0;
    return strcmp(name, pat) == 0;
}

static int skipped(const eqr_load_opts *o, const char *name) {
    for (int k = 0; o && k < o->nskip; k++)
        if (skip_one(o->skip[k], name)) return 1;
    return 0;
}

eqr_status eqr__load_opts_check(eqr_ctx *ctx, const char *fn, const eqr_load_opts *o) {
    if (!o) return EQR_OK;
    if (o->mode != EQR_LOAD_STRICT && o->mode != EQR_LOAD_PARTIAL)
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: unknown load mode %d", fn, (int)o->mode);
    if (o->nskip < 0 || (o->nskip > 0 && !o->skip))
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: nskip must be >= 0 with a non-NULL skip array, got %d",
                         fn, o->nskip);
    for (int k = 0; k < o->nskip; k++)
        if (!o->skip[k] || !o->skip[k][0])
            return eqr__fail(ctx, EQR_ERR_ARG, "%s: skip pattern %d is NULL or empty", fn, k);
    return EQR_OK;
}

eqr_status eqr__load_begin(eqr_ctx *ctx, const char *fn, const char *path,
                           const eqr_load_opts *o, eqr_load_report *rep, uint8_t **buf,
                           size_t *n) {
    eqr_status st = eqr__load_opts_check(ctx, fn, o);
    if (st) return st;
    if (rep) memset(rep, 0, sizeof *rep);
    return eqr__slurp(ctx, fn, path, buf, n);
}

static int cmp_entry(const void *a, const void *b) {
    const eqr__fentry *x = *(const eqr__fentry *const *)a, *y = *(const eqr__fentry *const *)b;
    return strcmp(x->name, y->name);
}

/* Bounded appender for messages. */
typedef struct sb {
    char *p;
    size_t n, len;
} sb;

static void sb_add(sb *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sb *s, const char *fmt, ...) {
    if (s->len + 1 >= s->n) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(s->p + s->len, s->n - s->len, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    s->len += (size_t)k;
    if (s->len >= s->n) s->len = s->n - 1;
}

static void keep_name(char (*dst)[64], int count, const char *name) {
    if (count < EQR_LOAD_REPORT_NAMES) snprintf(dst[count], 64, "%.63s", name);
}

/* One category of a message: "N <what>: 'a' [2], 'b' [3], ...; " */
typedef struct cat {
    sb s;
    char buf[EQR_ERRMSG_LEN];
    int n;
} cat;

static void cat_add(cat *c, const char *name, int ndim, const int64_t *shape, const char *extra) {
    if (c->n++ >= LIST_MAX) return;
    char sh[EQR_SHAPE_BUF];
    eqr_shape_str(ndim, shape, sh, sizeof sh);
    sb_add(&c->s, "%s'%s' %s%s", c->n > 1 ? ", " : "", name, sh, extra ? extra : "");
}

static void cat_flush(sb *m, const cat *c, const char *what) {
    if (!c->n) return;
    sb_add(m, "%d %s: %s%s; ", c->n, what, c->buf, c->n > LIST_MAX ? ", ..." : "");
}

static void cat_init(cat *c) {
    c->s = (sb){c->buf, sizeof c->buf, 0};
    c->buf[0] = '\0';
    c->n = 0;
}

eqr_status eqr__match(eqr_ctx *ctx, const char *fn, const char *path, eqr__fentry *f, int nf,
                      const eqr_load_opts *o, int check_flags, int *to_file,
                      eqr_load_report *rep) {
    eqr_load_report r;
    memset(&r, 0, sizeof r);
    int strict = !o || o->mode == EQR_LOAD_STRICT;
    eqr__fentry **idx = malloc((size_t)(nf > 0 ? nf : 1) * sizeof *idx);
    if (!idx) return eqr__fail(ctx, EQR_ERR_NOMEM, "%s: out of memory matching %d names", fn, nf);
    int ni = 0; /* names that can match (not too long) */
    for (int j = 0; j < nf; j++) {
        f[j].store = -1;
        f[j].skip = 0;
        if (!f[j].toolong) idx[ni++] = &f[j];
    }
    qsort(idx, (size_t)ni, sizeof *idx, cmp_entry);
    for (int j = 1; j < ni; j++)
        if (strcmp(idx[j - 1]->name, idx[j]->name) == 0) {
            eqr_status st = eqr__fail(ctx, EQR_ERR_FORMAT, "%s: '%s' is corrupt: the name '%s' appears twice",
                                      fn, path, idx[j]->name);
            free(idx);
            if (rep) *rep = r;
            return st;
        }
    cat local[4]; /* missing, unexpected, shape, flags */
    cat *cs[4] = {&local[0], &local[1], &local[2], &local[3]};
    for (int k = 0; k < 4; k++) cat_init(cs[k]);
    for (int i = 0; i < ctx->nparams; i++) {
        const eqr_param_entry *e = &ctx->params[i];
        to_file[i] = -1;
        eqr__fentry key, *kp = &key, **hit;
        memcpy(key.name, e->name, sizeof key.name);
        hit = bsearch(&kp, idx, (size_t)ni, sizeof *idx, cmp_entry);
        if (o && o->skip_buffers && (e->flags & EQR_PARAM_BUFFER)) {
            r.skipped++;
            if (hit) (*hit)->store = -3; /* the file's copy is skipped too */
            continue;
        }
        if (skipped(o, e->name)) {
            r.skipped++;
            continue;
        }
        if (!hit) {
            keep_name(r.missing_names, r.missing, e->name);
            r.missing++;
            cat_add(cs[0], e->name, e->t->ndim, e->t->shape, NULL);
            continue;
        }
        eqr__fentry *fe = *hit;
        fe->store = -2; /* seen: not unexpected, whatever follows */
        if (fe->ndim != e->t->ndim ||
            (fe->ndim && memcmp(fe->shape, e->t->shape, (size_t)fe->ndim * sizeof(int64_t)) != 0)) {
            char ms[EQR_SHAPE_BUF + 32], sh[EQR_SHAPE_BUF];
            snprintf(ms, sizeof ms, " in the file, %s in the model", EQR_SHAPE(e->t, sh));
            r.mismatched++;
            cat_add(cs[2], e->name, fe->ndim, fe->shape, ms);
            continue;
        }
        if (strict && check_flags && fe->flags != e->flags) {
            char fs[64];
            snprintf(fs, sizeof fs, " flags 0x%x in the file, 0x%x in the model", fe->flags, e->flags);
            cat_add(cs[3], e->name, fe->ndim, fe->shape, fs);
            continue;
        }
        fe->store = i;
        to_file[i] = (int)(fe - f);
        r.loaded++;
    }
    for (int j = 0; j < nf; j++) {
        if (f[j].store == -2) f[j].store = -1;
        else if (f[j].store >= 0) continue;
        else if (f[j].store == -3 || (!f[j].toolong && skipped(o, f[j].name))) {
            f[j].store = -1;
            f[j].skip = 1;
            r.skipped++;
        }
        else {
            char nm[EQR_NAME_LEN + 4];
            snprintf(nm, sizeof nm, "%s%s", f[j].name, f[j].toolong ? "..." : "");
            keep_name(r.unexpected_names, r.unexpected, nm);
            r.unexpected++;
            cat_add(cs[1], nm, f[j].ndim, f[j].shape, NULL);
        }
    }
    free(idx);
    if (rep) *rep = r;
    int fail = cs[2]->n || cs[3]->n || (strict && (cs[0]->n || cs[1]->n));
    if (!fail) return EQR_OK;
    for (int j = 0; j < nf; j++) f[j].store = -1;
    for (int i = 0; i < ctx->nparams; i++) to_file[i] = -1;
    char msg[EQR_ERRMSG_LEN];
    sb m = {msg, sizeof msg, 0};
    msg[0] = '\0';
    sb_add(&m, "%s: '%s' does not match the model: ", fn, path);
    cat_flush(&m, cs[2], "with other shapes");
    cat_flush(&m, cs[3], "with other flags");
    if (strict) {
        cat_flush(&m, cs[0], "not in the file");
        cat_flush(&m, cs[1], "not in the model");
        if (cs[0]->n || cs[1]->n) sb_add(&m, "a partial load or skip patterns load the rest");
    }
    if (m.len >= 2 && msg[m.len - 2] == ';') msg[m.len - 2] = '\0';
    return eqr__fail(ctx, EQR_ERR_MISMATCH, "%s", msg);
}

void eqr__match_report(eqr_ctx *ctx, const char *fn, const char *path, const eqr__fentry *f,
                       int nf, const eqr_load_opts *o, const int *to_file,
                       const eqr_load_report *rep) {
    if (!o) return;
    if (o->mode == EQR_LOAD_PARTIAL || rep->skipped) {
        char msg[EQR_ERRMSG_LEN];
        sb m = {msg, sizeof msg, 0};
        msg[0] = '\0';
        sb_add(&m, "%s: '%s': loaded %d; %d not in the file (kept)", fn, path, rep->loaded,
               rep->missing);
        for (int k = 0; k < rep->missing && k < EQR_LOAD_REPORT_NAMES; k++)
            sb_add(&m, "%s'%s'", k ? ", " : ": ", rep->missing_names[k]);
        sb_add(&m, "; %d not in the model (not read)", rep->unexpected);
        for (int k = 0; k < rep->unexpected && k < EQR_LOAD_REPORT_NAMES; k++)
            sb_add(&m, "%s'%s'", k ? ", " : ": ", rep->unexpected_names[k]);
        sb_add(&m, "; %d skipped by pattern", rep->skipped);
        eqr__log(ctx, EQR_LOG_INFO, "%s", msg);
    }
    if (!o->on_name) return;
    for (int i = 0; i < ctx->nparams; i++) {
        const char *name = ctx->params[i].name;
        if (to_file[i] >= 0) continue;
        int skip = skipped(o, name) || (o->skip_buffers && (ctx->params[i].flags & EQR_PARAM_BUFFER));
        o->on_name(skip ? EQR_LOAD_SKIPPED : EQR_LOAD_MISSING, name, o->user);
    }
    for (int j = 0; j < nf; j++) {
        if (f[j].store >= 0) continue;
        o->on_name(f[j].skip ? EQR_LOAD_SKIPPED : EQR_LOAD_UNEXPECTED, f[j].name, o->user);
    }
}
