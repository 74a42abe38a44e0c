/* Checkpoints: explicit little-endian serialisation, CRC-32 (zlib), atomic
 * save through PATH.tmp + rename, and loads validated in full (format, then
 * the name matching of load_match.c) before any memory is written.
 *
 * Layout (all integers little-endian, floats as their IEEE-754 bits):
 *   header  : "EQRCKPT1" | u32 version | u32 crc32(payload) | u64 payload bytes
 *   payload : four sections, each  tag[4] | u64 content bytes | content
 *     "PARM" u32 count, per parameter: u32 name_len, name, u32 flags,
 *            u32 ndim, i64 shape[ndim], f32 data[numel]
 *     "OPTM" u32 present; if 1:
 *            version 2: u32 kind, i64 steps, f32 lr, u32 nslots (0..2), then
 *              f32 state[nslots][sum of numel]: slot s of every parameter in
 *              PARM order, packed, so each parameter's moments go with its name
 *            version 1: u32 kind, i64 steps, f32 lr, i64 state_len,
 *              f32 state[state_len]: the optimizer's flat vector, slot s of a
 *              parameter at s * T + offset, offsets 16-float aligned in PARM
 *              order and T the end of the last one (the store's layout then)
 *     "RNG " u64 s[4]
 *     "CNTR" u32 n, u64 counters[n]
 */
#define _POSIX_C_SOURCE 200809L
#include "io/io_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define CK_MAGIC "EQRCKPT1"
#define CK_VERSION 2u    /* written */
#define CK_VERSION_V1 1u /* still read */
#define CK_HEADER 24
#define CK_SECTION 12 /* tag + u64 size */
#define CK_MAX_COUNTERS 64

/* zlib's crc32 takes a uInt length: feed large buffers in chunks. */
static uint32_t crc_of(const uint8_t *p, size_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

static const char *kind_name(uint32_t k) {
    switch (k) {
    case EQR_OPTIM_SGD: return "SGD";
    case EQR_OPTIM_ADAM: return "Adam";
    case EQR_OPTIM_ADAMW: return "AdamW";
    }
    return "unknown";
}

/* Optimizer state vectors per parameter element (0, 1 momentum, 2 Adam's m
 * and v), or -1 if the optimizer does not cover the context's current store
 * (created before parameters were added). */
static int opt_slots(const eqr_ctx *ctx, const eqr_optim *opt) {
    int ns = eqr_optim_get_kind(opt) == EQR_OPTIM_SGD ? (eqr_optim_num_state_floats(opt) > 0) : 2;
    if (ctx->ptotal == 0) return eqr_optim_num_state_floats(opt) == 0 ? ns : -1;
    return eqr_optim_num_state_floats(opt) == (int64_t)ns * ctx->ptotal ? ns : -1;
}

/* ---- save ---- */

typedef struct wr {
    uint8_t *p;
    size_t pos;
} wr;

static void w_u32(wr *w, uint32_t v) { put_u32(w->p + w->pos, v); w->pos += 4; }
static void w_u64(wr *w, uint64_t v) { put_u64(w->p + w->pos, v); w->pos += 8; }
static void w_floats(wr *w, const float *x, int64_t n) {
    put_floats(w->p + w->pos, x, n);
    w->pos += (size_t)n * 4;
}
static size_t w_begin(wr *w, const char *tag) {
    memcpy(w->p + w->pos, tag, 4);
    w->pos += CK_SECTION;
    return w->pos;
}
static void w_end(wr *w, size_t start) { put_u64(w->p + start - 8, (uint64_t)(w->pos - start)); }

static size_t image_size(const eqr_ctx *ctx, int nslots, int has_opt, int ncounters) {
    size_t n = CK_HEADER + 4 * CK_SECTION;
    n += 4;
    size_t elems = 0;
    for (int i = 0; i < ctx->nparams; i++) {
        const eqr_param_entry *e = &ctx->params[i];
        n += 4 + strlen(e->name) + 4 + 4 + 8 * (size_t)e->t->ndim + 4 * (size_t)e->t->numel;
        elems += (size_t)e->t->numel;
    }
    n += 4 + (has_opt ? 4 + 8 + 4 + 4 + 4 * (size_t)nslots * elems : 0);
    n += 32;
    n += 4 + 8 * (size_t)ncounters;
    return n;
}

static void build_image(eqr_ctx *ctx, const eqr_optim *opt, int nslots, const uint64_t *counters,
                        int ncounters, uint8_t *buf, size_t size) {
    wr w = {buf, CK_HEADER};
    size_t s = w_begin(&w, "PARM");
    w_u32(&w, (uint32_t)ctx->nparams);
    for (int i = 0; i < ctx->nparams; i++) {
        const eqr_param_entry *e = &ctx->params[i];
        size_t len = strlen(e->name);
        w_u32(&w, (uint32_t)len);
        memcpy(w.p + w.pos, e->name, len);
        w.pos += len;
        w_u32(&w, e->flags);
        w_u32(&w, (uint32_t)e->t->ndim);
        for (int d = 0; d < e->t->ndim; d++) w_u64(&w, (uint64_t)e->t->shape[d]);
        w_floats(&w, ctx->pdata + e->offset, e->t->numel);
    }
    w_end(&w, s);
    s = w_begin(&w, "OPTM");
    w_u32(&w, opt != NULL);
    if (opt) {
        w_u32(&w, (uint32_t)eqr_optim_get_kind(opt));
        w_u64(&w, (uint64_t)eqr_optim_num_steps(opt));
        w_u32(&w, f2u(eqr_optim_lr(opt)));
        w_u32(&w, (uint32_t)nslots);
        /* eqr_optim_state only reads here; its accessor is not const */
        const float *st = eqr_optim_state((eqr_optim *)opt);
        for (int k = 0; k < nslots; k++)
            for (int i = 0; i < ctx->nparams; i++) {
                const eqr_param_entry *e = &ctx->params[i];
                w_floats(&w, st + (int64_t)k * ctx->ptotal + e->offset, e->t->numel);
            }
    }
    w_end(&w, s);
    s = w_begin(&w, "RNG ");
    for (int k = 0; k < 4; k++) w_u64(&w, ctx->rng.s[k]);
    w_end(&w, s);
    s = w_begin(&w, "CNTR");
    w_u32(&w, (uint32_t)ncounters);
    for (int k = 0; k < ncounters; k++) w_u64(&w, counters[k]);
    w_end(&w, s);

    memcpy(buf, CK_MAGIC, 8);
    put_u32(buf + 8, CK_VERSION);
    put_u32(buf + 12, crc_of(buf + CK_HEADER, size - CK_HEADER));
    put_u64(buf + 16, (uint64_t)(size - CK_HEADER));
}

/* The arguments save and load share: a healthy context, a path and
 * ncounters in [0, CK_MAX_COUNTERS] with an array. EQR_OK, or the status
 * (recorded, naming fn). */
static eqr_status check_call(eqr_ctx *ctx, const char *fn, const char *path,
                             const uint64_t *counters, int ncounters) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!path || !*path) return eqr__fail(ctx, EQR_ERR_ARG, "%s: path is empty", fn);
    if (ncounters < 0 || ncounters > CK_MAX_COUNTERS || (ncounters > 0 && !counters))
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "%s: ncounters must be in [0,%d] with a non-NULL array, got %d", fn,
                         CK_MAX_COUNTERS, ncounters);
    return EQR_OK;
}

eqr_status eqr_checkpoint_save(eqr_ctx *ctx, const char *path, const eqr_optim *opt,
                               const uint64_t *counters, int ncounters) {
    static const char *fn = "eqr_checkpoint_save";
    eqr_status st = check_call(ctx, fn, path, counters, ncounters);
    if (st) return st;
    int nslots = opt ? opt_slots(ctx, opt) : 0;
    if (nslots < 0)
        return eqr__fail(ctx, EQR_ERR_STATE,
                         "%s: the optimizer holds %lld state floats, which do not fit the %lld "
                         "of the store (parameters added after it was created)",
                         fn, (long long)eqr_optim_num_state_floats(opt), (long long)ctx->ptotal);
    size_t size = image_size(ctx, nslots, opt != NULL, ncounters);
    uint8_t *buf = malloc(size);
    if (!buf) return eqr__fail(ctx, EQR_ERR_NOMEM, "%s: cannot allocate %zu bytes", fn, size);
    build_image(ctx, opt, nslots, counters, ncounters, buf, size);
    st = eqr__write_atomic_buf(ctx, fn, path, buf, size);
    free(buf);
    return st;
}

/* ---- load ---- */

/* Bounded reader over one section's content. */
typedef struct rd {
    const uint8_t *p;
    size_t n, pos;
} rd;

static int r_take(rd *r, size_t k, const uint8_t **out) {
    if (r->n - r->pos < k) return 0;
    *out = r->p + r->pos;
    r->pos += k;
    return 1;
}
static int r_u32(rd *r, uint32_t *v) {
    const uint8_t *q;
    if (!r_take(r, 4, &q)) return 0;
    *v = get_u32(q);
    return 1;
}
static int r_u64(rd *r, uint64_t *v) {
    const uint8_t *q;
    if (!r_take(r, 8, &q)) return 0;
    *v = get_u64(q);
    return 1;
}
/* n floats; returns their bytes (converted later, when applying) */
static int r_floats(rd *r, uint64_t n, const uint8_t **out) {
    if (n > (r->n - r->pos) / 4) return 0;
    return r_take(r, (size_t)n * 4, out);
}

/* A checkpoint file, parsed and bounds-checked; pointers into the image. */
typedef struct ckfile {
    eqr_ctx *ctx;
    const char *path;
    uint32_t version;
    eqr__fentry *e;
    int n;
    int has_opt, nslots;
    uint32_t kind;
    int64_t steps;
    float lr;
    uint64_t rng[4];
    uint32_t ncounters;
    uint64_t counters[CK_MAX_COUNTERS];
} ckfile;

static eqr_status corrupt(ckfile *F, const char *what) {
    return eqr__fail(F->ctx, EQR_ERR_FORMAT, "eqr_checkpoint_load: '%s' is corrupt: %s", F->path,
                     what);
}

#define CK_MIN_ENTRY 13 /* name_len, one name byte, flags, ndim */

static eqr_status parse_params(ckfile *F, rd *r) {
    uint32_t count;
    if (!r_u32(r, &count)) return corrupt(F, "parameter section too short");
    /* bound the allocation by what the section can hold */
    if (count > (r->n - r->pos) / CK_MIN_ENTRY) return corrupt(F, "parameter count too large");
    F->e = calloc(count ? count : 1, sizeof *F->e);
    if (!F->e)
        return eqr__fail(F->ctx, EQR_ERR_NOMEM, "eqr_checkpoint_load: out of memory for %u entries",
                         count);
    for (uint32_t i = 0; i < count; i++) {
        eqr__fentry *e = &F->e[i];
        uint32_t nlen, flags, ndim;
        const uint8_t *nm;
        if (!r_u32(r, &nlen) || nlen == 0 || nlen >= EQR_NAME_LEN || !r_take(r, nlen, &nm))
            return corrupt(F, "bad parameter name");
        memcpy(e->name, nm, nlen);
        e->name[nlen] = '\0';
        if (strlen(e->name) != nlen) return corrupt(F, "bad parameter name");
        if (!r_u32(r, &flags) || !r_u32(r, &ndim) || ndim > EQR_MAX_DIMS)
            return corrupt(F, "bad parameter header");
        e->flags = flags;
        e->ndim = (int)ndim;
        for (uint32_t d = 0; d < ndim; d++) {
            uint64_t v;
            if (!r_u64(r, &v) || v > (uint64_t)INT64_MAX) return corrupt(F, "bad parameter shape");
            e->shape[d] = (int64_t)v;
        }
        e->numel = eqr_shape_num_elements((int)ndim, e->shape);
        if (e->numel < 0 || !r_floats(r, (uint64_t)e->numel, &e->data))
            return corrupt(F, "parameter data truncated");
        F->n = (int)i + 1;
    }
    return EQR_OK;
}

static eqr_status parse_optim(ckfile *F, rd *r) {
    uint32_t present, kind, lrbits;
    uint64_t steps;
    if (!r_u32(r, &present) || present > 1) return corrupt(F, "bad optimizer section");
    if (!present) return EQR_OK;
    if (!r_u32(r, &kind) || kind > EQR_OPTIM_ADAMW || !r_u64(r, &steps) ||
        steps > (uint64_t)INT64_MAX || !r_u32(r, &lrbits))
        return corrupt(F, "bad optimizer section");
    float lr = u2f(lrbits);
    if (!(isfinite(lr) && lr >= 0.0f)) return corrupt(F, "bad optimizer learning rate");
    /* per entry: element offset of its slot 0 inside the state, and the slot stride */
    uint64_t total = 0, nslots;
    const uint8_t *data;
    if (F->version == CK_VERSION_V1) {
        uint64_t len;
        for (int j = 0; j < F->n; j++) total = (total + 15) / 16 * 16 + (uint64_t)F->e[j].numel;
        if (!r_u64(r, &len) || !r_floats(r, len, &data)) return corrupt(F, "bad optimizer section");
        if (len == 0)
            nslots = 0;
        else if (total > 0 && len % total == 0 && len / total <= 2)
            nslots = len / total;
        else
            return corrupt(F, "optimizer state does not fit the parameters");
    } else {
        uint32_t ns;
        for (int j = 0; j < F->n; j++) total += (uint64_t)F->e[j].numel;
        if (!r_u32(r, &ns) || ns > 2 || (total && ns > ((r->n - r->pos) / 4) / total) ||
            !r_floats(r, ns * total, &data))
            return corrupt(F, "bad optimizer section");
        nslots = ns;
    }
    uint64_t off = 0;
    for (int j = 0; j < F->n; j++) {
        if (F->version == CK_VERSION_V1) off = (off + 15) / 16 * 16;
        for (uint64_t k = 0; k < nslots; k++) F->e[j].slot[k] = data + 4 * (k * total + off);
        off += (uint64_t)F->e[j].numel;
    }
    F->has_opt = 1;
    F->nslots = (int)nslots;
    F->kind = kind;
    F->steps = (int64_t)steps;
    F->lr = lr;
    return EQR_OK;
}

static eqr_status parse_rng(ckfile *F, rd *r) {
    for (int k = 0; k < 4; k++)
        if (!r_u64(r, &F->rng[k])) return corrupt(F, "RNG section too short");
    return EQR_OK;
}

static eqr_status parse_counters(ckfile *F, rd *r) {
    if (!r_u32(r, &F->ncounters) || F->ncounters > CK_MAX_COUNTERS)
        return corrupt(F, "bad counter section");
    for (uint32_t k = 0; k < F->ncounters; k++)
        if (!r_u64(r, &F->counters[k])) return corrupt(F, "counter section too short");
    return EQR_OK;
}

typedef eqr_status (*section_fn)(ckfile *F, rd *r);

static eqr_status parse(ckfile *F, const uint8_t *payload, size_t n) {
    static const char *const tags[4] = {"PARM", "OPTM", "RNG ", "CNTR"};
    static const section_fn fns[4] = {parse_params, parse_optim, parse_rng, parse_counters};
    rd top = {payload, n, 0};
    for (int s = 0; s < 4; s++) {
        const uint8_t *tag, *body;
        uint64_t len;
        char what[96];
        if (!r_take(&top, 4, &tag) || memcmp(tag, tags[s], 4) != 0 || !r_u64(&top, &len) ||
            len > top.n - top.pos || !r_take(&top, (size_t)len, &body)) {
            snprintf(what, sizeof what, "section '%s' missing or truncated", tags[s]);
            return corrupt(F, what);
        }
        rd r = {body, (size_t)len, 0};
        eqr_status st = fns[s](F, &r);
        if (st) return st;
        if (r.pos != r.n) {
            snprintf(what, sizeof what, "section '%s' has %zu unexpected bytes", tags[s],
                     r.n - r.pos);
            return corrupt(F, what);
        }
    }
    if (top.pos != top.n) return corrupt(F, "unexpected data after the last section");
    return EQR_OK;
}

static eqr_status check_header(eqr_ctx *ctx, const char *path, const uint8_t *b, size_t n,
                               uint32_t *version) {
    const char *fn = "eqr_checkpoint_load";
    if (n < 8)
        return eqr__fail(ctx, EQR_ERR_FORMAT, "%s: '%s' is truncated (%zu bytes, no header)", fn,
                         path, n);
    if (memcmp(b, CK_MAGIC, 8) != 0)
        return eqr__fail(ctx, EQR_ERR_FORMAT,
                         "%s: '%s' is not an equirelax checkpoint (bad magic)", fn, path);
    if (n < CK_HEADER)
        return eqr__fail(ctx, EQR_ERR_FORMAT, "%s: '%s' is truncated (%zu bytes, header needs %d)",
                         fn, path, n, CK_HEADER);
    uint32_t ver = get_u32(b + 8);
    if (ver != CK_VERSION && ver != CK_VERSION_V1)
        return eqr__fail(ctx, EQR_ERR_FORMAT,
                         "%s: '%s' has unsupported format version %u (this library reads %u and "
                         "%u)",
                         fn, path, ver, CK_VERSION_V1, CK_VERSION);
    uint64_t plen = get_u64(b + 16);
    if (plen != (uint64_t)(n - CK_HEADER))
        return eqr__fail(ctx, EQR_ERR_FORMAT,
                         "%s: '%s' is %s: header announces %llu payload bytes, file holds %zu",
                         fn, path, plen > (uint64_t)(n - CK_HEADER) ? "truncated" : "oversized",
                         (unsigned long long)plen, n - CK_HEADER);
    uint32_t want = get_u32(b + 12), got = crc_of(b + CK_HEADER, n - CK_HEADER);
    if (want != got)
        return eqr__fail(ctx, EQR_ERR_FORMAT,
                         "%s: '%s' is corrupt: bad checksum (stored 0x%08x, computed 0x%08x)", fn,
                         path, want, got);
    *version = ver;
    return EQR_OK;
}

/* Optimizer and counters against what the caller passed. */
static eqr_status check_rest(ckfile *F, eqr_optim *opt, int ncounters) {
    const char *pre = "eqr_checkpoint_load: '%s' does not match: ";
    char p[EQR_ERRMSG_LEN];
    snprintf(p, sizeof p, pre, F->path);
    eqr_ctx *ctx = F->ctx;
    if (opt) {
        uint32_t k = (uint32_t)eqr_optim_get_kind(opt);
        int ns = opt_slots(ctx, opt);
        if (!F->has_opt)
            return eqr__fail(ctx, EQR_ERR_MISMATCH,
                             "%sthe file holds no optimizer state but an optimizer was given", p);
        if (F->kind != k)
            return eqr__fail(ctx, EQR_ERR_MISMATCH,
                             "%sthe file holds %s optimizer state but the optimizer is %s", p,
                             kind_name(F->kind), kind_name(k));
        if (ns < 0)
            return eqr__fail(ctx, EQR_ERR_MISMATCH,
                             "%sthe optimizer holds %lld state floats, which do not fit the %lld "
                             "of the store (parameters added after it was created)",
                             p, (long long)eqr_optim_num_state_floats(opt), (long long)ctx->ptotal);
        if (F->nslots != ns)
            return eqr__fail(ctx, EQR_ERR_MISMATCH,
                             "%sthe file holds %d optimizer state vectors (momentum or moments) "
                             "but the optimizer %d",
                             p, F->nslots, ns);
    }
    if ((int)F->ncounters != ncounters)
        return eqr__fail(ctx, EQR_ERR_MISMATCH, "%sthe file holds %u counters but %d were requested",
                         p, F->ncounters, ncounters);
    return EQR_OK;
}

eqr_status eqr_checkpoint_load_opts(eqr_ctx *ctx, const char *path, eqr_optim *opt,
                                    uint64_t *counters, int ncounters, const eqr_load_opts *opts,
                                    eqr_load_report *report) {
    static const char *fn = "eqr_checkpoint_load";
    eqr_status st = check_call(ctx, fn, path, counters, ncounters);
    if (st) return st;
    uint8_t *buf = NULL;
    size_t n = 0;
    st = eqr__load_begin(ctx, fn, path, opts, report, &buf, &n);
    if (st) return st;
    ckfile F;
    memset(&F, 0, sizeof F);
    F.ctx = ctx;
    F.path = path;
    int *to_file = NULL;
    eqr_load_report rep;
    st = check_header(ctx, path, buf, n, &F.version);
    if (!st) st = parse(&F, buf + CK_HEADER, n - CK_HEADER);
    if (!st) {
        to_file = malloc((size_t)(ctx->nparams > 0 ? ctx->nparams : 1) * sizeof *to_file);
        if (!to_file) st = eqr__fail(ctx, EQR_ERR_NOMEM, "%s: out of memory", fn);
    }
    if (!st) {
        st = eqr__match(ctx, fn, path, F.e, F.n, opts, 1, to_file, &rep);
        if (report) *report = rep;
    }
    if (!st) st = check_rest(&F, opt, ncounters);
    if (!st) {
        /* everything checked: now write parameters, optimizer, RNG, counters */
        float *state = opt ? eqr_optim_state(opt) : NULL;
        for (int i = 0; i < ctx->nparams; i++) {
            if (to_file[i] < 0) continue;
            const eqr_param_entry *e = &ctx->params[i];
            const eqr__fentry *fe = &F.e[to_file[i]];
            get_floats(ctx->pdata + e->offset, fe->data, fe->numel);
            for (int k = 0; opt && k < F.nslots; k++)
                get_floats(state + (int64_t)k * ctx->ptotal + e->offset, fe->slot[k], fe->numel);
        }
        if (opt) {
            eqr_optim_set_num_steps(opt, F.steps);
            eqr_optim_set_lr(opt, F.lr);
        }
        memcpy(ctx->rng.s, F.rng, sizeof F.rng);
        for (uint32_t k = 0; k < F.ncounters; k++) counters[k] = F.counters[k];
        eqr__match_report(ctx, fn, path, F.e, F.n, opts, to_file, &rep);
    }
    free(to_file);
    free(F.e);
    free(buf);
    return st;
}

eqr_status eqr_checkpoint_load(eqr_ctx *ctx, const char *path, eqr_optim *opt,
                               uint64_t *counters, int ncounters) {
    return eqr_checkpoint_load_opts(ctx, path, opt, counters, ncounters, NULL, NULL);
}

eqr_status eqr_checkpoint_counters(eqr_ctx *ctx, const char *path, uint64_t *counters, int max,
                                   int *ncounters) {
    static const char *fn = "eqr_checkpoint_counters";
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!path || !*path || !ncounters || max < 0 || (max > 0 && !counters))
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "%s: need a path, ncounters and room for max >= 0 counters", fn);
    *ncounters = 0;
    uint8_t *buf = NULL;
    size_t n = 0;
    eqr_status st = eqr__load_begin(ctx, fn, path, NULL, NULL, &buf, &n);
    if (st) return st;
    ckfile F;
    memset(&F, 0, sizeof F);
    F.ctx = ctx;
    F.path = path;
    st = check_header(ctx, path, buf, n, &F.version);
    if (!st) st = parse(&F, buf + CK_HEADER, n - CK_HEADER);
    if (!st && (int)F.ncounters > max)
        st = eqr__fail(ctx, EQR_ERR_ARG, "%s: '%s' holds %u counters, room for %d", fn, path,
                       F.ncounters, max);
    if (!st) {
        for (uint32_t k = 0; k < F.ncounters; k++) counters[k] = F.counters[k];
        *ncounters = (int)F.ncounters;
    }
    free(F.e);
    free(buf);
    return st;
}
