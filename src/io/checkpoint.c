/* Checkpoints: explicit little-endian serialisation, CRC-32 (zlib), atomic
 * save through PATH.tmp + rename, and loads validated in full before any
 * memory is written.
 *
 * Layout (all integers little-endian, floats as their IEEE-754 bits):
 *   header  : "EQRCKPT1" | u32 version | u32 crc32(payload) | u64 payload bytes
 *   payload : four sections, each  tag[4] | u64 content bytes | content
 *     "PARM" u32 count, per parameter: u32 name_len, name, u32 flags,
 *            u32 ndim, i64 shape[ndim], f32 data[numel]
 *     "OPTM" u32 present; if 1: u32 kind, i64 steps, f32 lr, i64 state_len,
 *            f32 state[state_len]
 *     "RNG " u64 s[4]
 *     "CNTR" u32 n, u64 counters[n]
 */
#define _POSIX_C_SOURCE 200809L
#include "core/internal.h"
#include "equirelax/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define CK_MAGIC "EQRCKPT1"
#define CK_VERSION 1u
#define CK_HEADER 24
#define CK_SECTION 12 /* tag + u64 size */
#define CK_MAX_COUNTERS 64

/* ---- byte order ---- */

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static void put_floats(uint8_t *p, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) put_u32(p + 4 * i, f2u(x[i]));
}
static void get_floats(float *x, const uint8_t *p, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = u2f(get_u32(p + 4 * i));
}

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

static void errstr(int err, char *buf, size_t n) {
    if (strerror_r(err, buf, n) != 0) snprintf(buf, n, "error %d", err);
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

static size_t image_size(const eqr_ctx *ctx, int64_t state_len, int has_opt, int ncounters) {
    size_t n = CK_HEADER + 4 * CK_SECTION;
    n += 4;
    for (int i = 0; i < ctx->nparams; i++) {
        const eqr_param_entry *e = &ctx->params[i];
        n += 4 + strlen(e->name) + 4 + 4 + 8 * (size_t)e->t->ndim + 4 * (size_t)e->t->numel;
    }
    n += 4 + (has_opt ? 4 + 8 + 4 + 8 + 4 * (size_t)state_len : 0);
    n += 32;
    n += 4 + 8 * (size_t)ncounters;
    return n;
}

static void build_image(eqr_ctx *ctx, const eqr_optim *opt, const uint64_t *counters,
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
        int64_t len = eqr_optim_state_len(opt);
        w_u32(&w, (uint32_t)eqr_optim_get_kind(opt));
        w_u64(&w, (uint64_t)eqr_optim_steps(opt));
        w_u32(&w, f2u(eqr_optim_lr(opt)));
        w_u64(&w, (uint64_t)len);
        /* eqr_optim_state only reads here; its accessor is not const */
        w_floats(&w, eqr_optim_state((eqr_optim *)opt), len);
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

/* Best effort: make the rename itself durable. */
static void sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) {
        strcpy(dir, ".");
    } else {
        size_t n = (size_t)(slash - path);
        if (n == 0) n = 1; /* "/file" */
        if (n >= sizeof dir) return;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

eqr_status eqr_checkpoint_save(eqr_ctx *ctx, const char *path, const eqr_optim *opt,
                               const uint64_t *counters, int ncounters) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!path || !*path) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_checkpoint_save: path is empty");
    if (ncounters < 0 || ncounters > CK_MAX_COUNTERS || (ncounters > 0 && !counters))
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "eqr_checkpoint_save: ncounters must be in [0,%d] with a non-NULL "
                         "array, got %d",
                         CK_MAX_COUNTERS, ncounters);
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return eqr__fail(ctx, EQR_ERR_IO, "eqr_checkpoint_save: '%s' is a directory, not a file",
                         path);
    int64_t state_len = opt ? eqr_optim_state_len(opt) : 0;
    size_t size = image_size(ctx, state_len, opt != NULL, ncounters);
    uint8_t *buf = malloc(size);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!buf || !tmp) {
        free(buf);
        free(tmp);
        return eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_checkpoint_save: cannot allocate %zu bytes",
                         size);
    }
    build_image(ctx, opt, counters, ncounters, buf, size);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);

    const char *what = "create";
    int err = 0;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        err = errno;
    } else {
        if (fwrite(buf, 1, size, f) != size) {
            err = errno ? errno : EIO;
            what = "write";
        } else if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
            err = errno;
            what = "flush";
        }
        if (fclose(f) != 0 && !err) {
            err = errno;
            what = "close";
        }
        if (!err && rename(tmp, path) != 0) {
            err = errno;
            what = "rename to final name";
        }
        if (err) remove(tmp);
    }
    free(buf);
    eqr_status st = EQR_OK;
    if (err) {
        char es[128];
        errstr(err, es, sizeof es);
        st = eqr__fail(ctx, EQR_ERR_IO, "eqr_checkpoint_save: cannot %s '%s' (saving '%s'): %s",
                       what, tmp, path, es);
    } else {
        sync_parent_dir(path);
    }
    free(tmp);
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

typedef struct ld {
    eqr_ctx *ctx;
    const char *path;
    eqr_optim *opt;
    uint64_t *counters;
    int ncounters;
    int apply;        /* 0: validate only; 1: write (after a clean validation) */
    int mismatch;     /* first model/optimizer difference found */
    char msg[EQR_ERRMSG_LEN];
} ld;

static eqr_status corrupt(ld *L, const char *what) {
    return eqr__fail(L->ctx, EQR_ERR_FORMAT, "eqr_checkpoint_load: '%s' is corrupt: %s", L->path,
                     what);
}

static void note_mismatch(ld *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_mismatch(ld *L, const char *fmt, ...) {
    if (L->mismatch) return;
    L->mismatch = 1;
    int k = snprintf(L->msg, sizeof L->msg, "eqr_checkpoint_load: '%s' does not match: ", L->path);
    if (k < 0 || (size_t)k >= sizeof L->msg) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->msg + k, sizeof L->msg - (size_t)k, fmt, ap);
    va_end(ap);
}

static eqr_status load_params(ld *L, rd *r) {
    eqr_ctx *ctx = L->ctx;
    uint32_t count;
    if (!r_u32(r, &count)) return corrupt(L, "parameter section too short");
    for (uint32_t i = 0; i < count; i++) {
        uint32_t nlen, flags, ndim;
        const uint8_t *nm, *data;
        char name[EQR_NAME_LEN];
        int64_t shape[EQR_MAX_DIMS];
        if (!r_u32(r, &nlen) || nlen == 0 || nlen >= EQR_NAME_LEN || !r_take(r, nlen, &nm))
            return corrupt(L, "bad parameter name");
        memcpy(name, nm, nlen);
        name[nlen] = '\0';
        if (strlen(name) != nlen) return corrupt(L, "bad parameter name");
        if (!r_u32(r, &flags) || !r_u32(r, &ndim) || ndim > EQR_MAX_DIMS)
            return corrupt(L, "bad parameter header");
        for (uint32_t d = 0; d < ndim; d++) {
            uint64_t v;
            if (!r_u64(r, &v) || v > (uint64_t)INT64_MAX) return corrupt(L, "bad parameter shape");
            shape[d] = (int64_t)v;
        }
        int64_t numel = eqr_shape_numel((int)ndim, shape);
        if (numel < 0 || !r_floats(r, (uint64_t)numel, &data))
            return corrupt(L, "parameter data truncated");

        char fs[EQR_SHAPE_BUF], ms[EQR_SHAPE_BUF];
        eqr_shape_str((int)ndim, shape, fs, sizeof fs);
        if ((int64_t)i >= ctx->nparams) {
            note_mismatch(L, "the file has %u parameters, the model %d: '%s' %s is not in the model",
                          count, ctx->nparams, name, fs);
            continue;
        }
        const eqr_param_entry *e = &ctx->params[i];
        EQR_SHAPE(e->t, ms);
        if (strcmp(name, e->name) != 0)
            note_mismatch(L, "parameter %u is '%s' %s in the file but '%s' %s in the model", i,
                          name, fs, e->name, ms);
        else if ((int)ndim != e->t->ndim ||
                 (ndim && memcmp(shape, e->t->shape, ndim * sizeof(int64_t)) != 0))
            note_mismatch(L, "parameter '%s' has shape %s in the file but %s in the model", name,
                          fs, ms);
        else if (flags != e->flags)
            note_mismatch(L, "parameter '%s' has flags 0x%x in the file but 0x%x in the model",
                          name, flags, e->flags);
        if (L->apply) get_floats(ctx->pdata + e->offset, data, numel);
    }
    if ((int64_t)count < ctx->nparams) {
        char ms[EQR_SHAPE_BUF];
        const eqr_param_entry *e = &ctx->params[count];
        EQR_SHAPE(e->t, ms);
        note_mismatch(L, "the file has %u parameters, the model %d: '%s' %s is not in the file",
                      count, ctx->nparams, e->name, ms);
    }
    return EQR_OK;
}

static eqr_status load_optim(ld *L, rd *r) {
    uint32_t present, kind, lrbits;
    uint64_t steps, len;
    const uint8_t *data = NULL;
    if (!r_u32(r, &present) || present > 1) return corrupt(L, "bad optimizer section");
    if (!present) {
        if (L->opt) note_mismatch(L, "the file holds no optimizer state but an optimizer was given");
        return EQR_OK;
    }
    if (!r_u32(r, &kind) || kind > EQR_OPTIM_ADAMW || !r_u64(r, &steps) ||
        steps > (uint64_t)INT64_MAX || !r_u32(r, &lrbits) || !r_u64(r, &len) ||
        !r_floats(r, len, &data))
        return corrupt(L, "bad optimizer section");
    float lr = u2f(lrbits);
    if (!(isfinite(lr) && lr >= 0.0f)) return corrupt(L, "bad optimizer learning rate");
    eqr_optim *opt = L->opt;
    if (!opt) return EQR_OK; /* caller does not want optimizer state */
    if (kind != (uint32_t)eqr_optim_get_kind(opt))
        note_mismatch(L, "the file holds %s optimizer state but the optimizer is %s",
                      kind_name(kind), kind_name((uint32_t)eqr_optim_get_kind(opt)));
    else if ((int64_t)len != eqr_optim_state_len(opt))
        note_mismatch(L, "the file holds %llu optimizer state floats but the optimizer has %lld",
                      (unsigned long long)len, (long long)eqr_optim_state_len(opt));
    if (L->apply) {
        get_floats(eqr_optim_state(opt), data, (int64_t)len);
        eqr_optim_set_steps(opt, (int64_t)steps);
        eqr_optim_set_lr(opt, lr);
    }
    return EQR_OK;
}

static eqr_status load_rng(ld *L, rd *r) {
    uint64_t s[4];
    for (int k = 0; k < 4; k++)
        if (!r_u64(r, &s[k])) return corrupt(L, "RNG section too short");
    if (L->apply) memcpy(L->ctx->rng.s, s, sizeof s);
    return EQR_OK;
}

static eqr_status load_counters(ld *L, rd *r) {
    uint32_t n;
    if (!r_u32(r, &n) || n > CK_MAX_COUNTERS) return corrupt(L, "bad counter section");
    uint64_t v[CK_MAX_COUNTERS];
    for (uint32_t k = 0; k < n; k++)
        if (!r_u64(r, &v[k])) return corrupt(L, "counter section too short");
    if ((int)n != L->ncounters)
        note_mismatch(L, "the file holds %u counters but %d were requested", n, L->ncounters);
    if (L->apply)
        for (uint32_t k = 0; k < n; k++) L->counters[k] = v[k];
    return EQR_OK;
}

typedef eqr_status (*section_fn)(ld *L, rd *r);

/* Walk the payload; with L->apply == 0 only validates. */
static eqr_status walk(ld *L, const uint8_t *payload, size_t n) {
    static const char *const tags[4] = {"PARM", "OPTM", "RNG ", "CNTR"};
    static const section_fn fns[4] = {load_params, load_optim, load_rng, load_counters};
    rd top = {payload, n, 0};
    for (int s = 0; s < 4; s++) {
        const uint8_t *tag, *body;
        uint64_t len;
        char what[96];
        if (!r_take(&top, 4, &tag) || memcmp(tag, tags[s], 4) != 0 || !r_u64(&top, &len) ||
            len > top.n - top.pos || !r_take(&top, (size_t)len, &body)) {
            snprintf(what, sizeof what, "section '%s' missing or truncated", tags[s]);
            return corrupt(L, what);
        }
        rd r = {body, (size_t)len, 0};
        eqr_status st = fns[s](L, &r);
        if (st) return st;
        if (r.pos != r.n) {
            snprintf(what, sizeof what, "section '%s' has %zu unexpected bytes", tags[s],
                     r.n - r.pos);
            return corrupt(L, what);
        }
    }
    if (top.pos != top.n) return corrupt(L, "unexpected data after the last section");
    return EQR_OK;
}

/* Read the whole file; EQR_ERR_IO with the reason on failure. The buffer
 * is sized from fstat of a regular file (never from the header), and a file
 * that changes size while being read is refused. */
static eqr_status slurp(eqr_ctx *ctx, const char *path, uint8_t **out, size_t *len) {
    char es[128];
    int fd;
    int64_t sz;
    eqr_status st = eqr__open_regular(ctx, "eqr_checkpoint_load", path, &fd, &sz);
    if (st) return st;
    uint8_t *buf = malloc((size_t)sz + 1);
    if (!buf) {
        close(fd);
        return eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_checkpoint_load: cannot allocate %lld bytes for '%s'",
                         (long long)sz, path);
    }
    size_t got = 0;
    int err = 0;
    /* one byte past the size: a file that grew is caught too */
    while (got < (size_t)sz + 1) {
        ssize_t r = read(fd, buf + got, (size_t)sz + 1 - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) err = errno;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (err || got != (size_t)sz) {
        if (err)
            errstr(err, es, sizeof es);
        else
            snprintf(es, sizeof es, "file %s while reading", got < (size_t)sz ? "shrank" : "grew");
        free(buf);
        return eqr__fail(ctx, EQR_ERR_IO, "eqr_checkpoint_load: cannot read '%s': %s", path, es);
    }
    *out = buf;
    *len = (size_t)sz;
    return EQR_OK;
}

static eqr_status check_header(eqr_ctx *ctx, const char *path, const uint8_t *b, size_t n) {
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
    if (ver != CK_VERSION)
        return eqr__fail(ctx, EQR_ERR_FORMAT,
                         "%s: '%s' has unsupported format version %u (this library reads %u)", fn,
                         path, ver, CK_VERSION);
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
    return EQR_OK;
}

eqr_status eqr_checkpoint_load(eqr_ctx *ctx, const char *path, eqr_optim *opt,
                               uint64_t *counters, int ncounters) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!path || !*path) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_checkpoint_load: path is empty");
    if (ncounters < 0 || ncounters > CK_MAX_COUNTERS || (ncounters > 0 && !counters))
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "eqr_checkpoint_load: ncounters must be in [0,%d] with a non-NULL "
                         "array, got %d",
                         CK_MAX_COUNTERS, ncounters);
    uint8_t *buf = NULL;
    size_t n = 0;
    eqr_status st = slurp(ctx, path, &buf, &n);
    if (st) return st;
    st = check_header(ctx, path, buf, n);
    ld L = {ctx, path, opt, counters, ncounters, 0, 0, {0}};
    if (!st) st = walk(&L, buf + CK_HEADER, n - CK_HEADER);
    if (!st && L.mismatch) st = eqr__fail(ctx, EQR_ERR_MISMATCH, "%s", L.msg);
    if (!st) {
        /* everything checked: now write parameters, optimizer, RNG, counters */
        L.apply = 1;
        st = walk(&L, buf + CK_HEADER, n - CK_HEADER);
    }
    free(buf);
    return st;
}
