/* safetensors export/import (format in safetensors.h). The header parser is
 * a hand-written reader of the fixed shape the format allows (depth <= 3,
 * no recursion), bounded by the header length, with one message per
 * rejected construct naming its byte offset. */
#include "io/io_internal.h"
#include "equirelax/safetensors.h"

#include <stdlib.h>

#define ST_LIBRARY "equirelax 0.1.0" /* tests compare it with EQUIRELAX_VERSION_* */
#define ST_MAX_HEADER 100000000ull   /* the reference implementation's limit */

enum { DT_F32, DT_F16, DT_BF16, DT_F64, DT_OTHER };

static const struct {
    const char *name;
    int size, kind;
} DTYPES[] = {
    {"F32", 4, DT_F32},     {"F16", 2, DT_F16},     {"BF16", 2, DT_BF16},   {"F64", 8, DT_F64},
    {"BOOL", 1, DT_OTHER},  {"U8", 1, DT_OTHER},    {"I8", 1, DT_OTHER},    {"F8_E5M2", 1, DT_OTHER},
    {"F8_E4M3", 1, DT_OTHER}, {"I16", 2, DT_OTHER}, {"U16", 2, DT_OTHER},   {"I32", 4, DT_OTHER},
    {"U32", 4, DT_OTHER},   {"I64", 8, DT_OTHER},   {"U64", 8, DT_OTHER},
};
#define NDTYPES ((int)(sizeof DTYPES / sizeof DTYPES[0]))

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at s[0..n), 0 if invalid (overlong
 * forms, surrogates and code points above U+10FFFF are invalid). */
static int utf8_len(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    int k;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) k = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) k = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) k = 4, cp = c & 0x07;
    else return 0;
    if ((size_t)k > n) return 0;
    for (int i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return k;
}

static int utf8_ok(const char *s) {
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        int k = utf8_len((const uint8_t *)s + i, n - i);
        if (!k) return 0;
        i += (size_t)k;
    }
    return 1;
}

/* ---- export ---- */

/* Appender that only counts when p is NULL (first pass sizes the header). */
typedef struct out {
    uint8_t *p;
    size_t len;
} out;

static void put(out *o, const char *s, size_t n) {
    if (o->p) memcpy(o->p + o->len, s, n);
    o->len += n;
}
static void puts_(out *o, const char *s) { put(o, s, strlen(s)); }
static void put_u(out *o, uint64_t v) {
    char b[24];
    int k = snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    put(o, b, (size_t)k);
}
static void put_str(out *o, const char *s) {
    put(o, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char e[8];
        if (*c == '"' || *c == '\\') {
            e[0] = '\\', e[1] = (char)*c;
            put(o, e, 2);
        } else if (*c < 0x20) {
            snprintf(e, sizeof e, "\\u%04x", *c);
            put(o, e, 6);
        } else {
            put(o, (const char *)c, 1);
        }
    }
    put(o, "\"", 1);
}

static int exported(const eqr_param_entry *e, const eqr_safetensors_opts *o) {
    return !(e->flags & EQR_PARAM_BUFFER) || (o && o->include_buffers);
}

static void header(const eqr_ctx *ctx, const eqr_safetensors_opts *so, out *o) {
    puts_(o, "{\"__metadata__\":{\"library\":\"" ST_LIBRARY "\"");
    for (int k = 0; so && k < so->nmeta; k++) {
        puts_(o, ",");
        put_str(o, so->meta_keys[k]);
        puts_(o, ":");
        put_str(o, so->meta_values[k]);
    }
    puts_(o, "}");
    uint64_t off = 0;
    for (int i = 0; i < ctx->nparams; i++) {
        const eqr_param_entry *e = &ctx->params[i];
        if (!exported(e, so)) continue;
        puts_(o, ",");
        put_str(o, e->name);
        puts_(o, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < e->t->ndim; d++) {
            if (d) puts_(o, ",");
            put_u(o, (uint64_t)e->t->shape[d]);
        }
        puts_(o, "],\"data_offsets\":[");
        put_u(o, off);
        puts_(o, ",");
        off += 4 * (uint64_t)e->t->numel;
        put_u(o, off);
        puts_(o, "]}");
    }
    puts_(o, "}");
    while (o->len % 8) puts_(o, " "); /* the buffer starts 8-byte aligned */
}

eqr_status eqr_safetensors_save(eqr_ctx *ctx, const char *path, const eqr_safetensors_opts *so) {
    static const char *fn = "eqr_safetensors_save";
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!path || !*path) return eqr__fail(ctx, EQR_ERR_ARG, "%s: path is empty", fn);
    if (so && (so->nmeta < 0 || (so->nmeta > 0 && (!so->meta_keys || !so->meta_values))))
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: nmeta must be >= 0 with non-NULL key and value arrays",
                         fn);
    for (int k = 0; so && k < so->nmeta; k++) {
        if (!so->meta_keys[k] || !so->meta_values[k])
            return eqr__fail(ctx, EQR_ERR_ARG, "%s: metadata pair %d has a NULL string", fn, k);
        if (!utf8_ok(so->meta_keys[k]) || !utf8_ok(so->meta_values[k]))
            return eqr__fail(ctx, EQR_ERR_ARG, "%s: metadata pair %d is not UTF-8", fn, k);
        if (strcmp(so->meta_keys[k], "library") == 0)
            return eqr__fail(ctx, EQR_ERR_ARG, "%s: metadata key 'library' is reserved", fn);
        for (int j = 0; j < k; j++)
            if (strcmp(so->meta_keys[j], so->meta_keys[k]) == 0)
                return eqr__fail(ctx, EQR_ERR_ARG, "%s: metadata key '%s' given twice", fn,
                                 so->meta_keys[k]);
    }
    size_t data = 0;
    for (int i = 0; i < ctx->nparams; i++) {
        const eqr_param_entry *e = &ctx->params[i];
        if (!exported(e, so)) continue;
        if (!utf8_ok(e->name))
            return eqr__fail(ctx, EQR_ERR_ARG, "%s: parameter name '%s' is not UTF-8", fn, e->name);
        data += 4 * (size_t)e->t->numel;
    }
    out o = {NULL, 0};
    header(ctx, so, &o);
    size_t hlen = o.len, size = 8 + hlen + data;
    uint8_t *buf = malloc(size);
    if (!buf) return eqr__fail(ctx, EQR_ERR_NOMEM, "%s: cannot allocate %zu bytes", fn, size);
    put_u64(buf, (uint64_t)hlen);
    o = (out){buf + 8, 0};
    header(ctx, so, &o);
    uint8_t *p = buf + 8 + hlen;
    for (int i = 0; i < ctx->nparams; i++) {
        const eqr_param_entry *e = &ctx->params[i];
        if (!exported(e, so)) continue;
        put_floats(p, ctx->pdata + e->offset, e->t->numel);
        p += 4 * (size_t)e->t->numel;
    }
    eqr_status st = eqr__write_atomic_buf(ctx, fn, path, buf, size);
    free(buf);
    return st;
}

/* ---- import: header parser ---- */

typedef struct stinfo {
    int dtype; /* index into DTYPES */
    uint64_t begin, end;
} stinfo;

typedef struct jp {
    eqr_ctx *ctx;
    const char *path;
    const uint8_t *s;
    size_t n, pos;
    eqr__fentry *e;
    stinfo *info;
    int ne, cap;
} jp;

static eqr_status bad(jp *J, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static eqr_status bad(jp *J, const char *fmt, ...) {
    char m[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    return eqr__fail(J->ctx, EQR_ERR_FORMAT,
                     "eqr_safetensors_load: '%s' has a bad header at byte %zu of %zu: %s", J->path,
                     J->pos, J->n, m);
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        eqr_status st_ = (x);                                                                      \
        if (st_) return st_;                                                                       \
    } while (0)

static void ws(jp *J) {
    while (J->pos < J->n && (J->s[J->pos] == ' ' || J->s[J->pos] == '\t' || J->s[J->pos] == '\n' ||
                             J->s[J->pos] == '\r'))
        J->pos++;
}

static eqr_status expect(jp *J, char c) {
    ws(J);
    if (J->pos >= J->n) return bad(J, "the header ends where '%c' is expected", c);
    if (J->s[J->pos] != (uint8_t)c) return bad(J, "'%c' expected", c);
    J->pos++;
    return EQR_OK;
}

/* Is the next non-blank byte c? (consumed if so) */
static int peek(jp *J, char c) {
    ws(J);
    if (J->pos < J->n && J->s[J->pos] == (uint8_t)c) {
        J->pos++;
        return 1;
    }
    return 0;
}

static int hex4(const uint8_t *p, uint32_t *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        *v = *v << 4 | (uint32_t)d;
    }
    return 1;
}

/* A string, decoded into dst[cap] (NUL-terminated; *toolong if it did not
 * fit, dst then holds its start). dst may be NULL (validate only). */
static eqr_status jstr(jp *J, char *dst, size_t cap, int *toolong) {
    TRY(expect(J, '"'));
    size_t len = 0;
    int over = 0;
    for (;;) {
        if (J->pos >= J->n) return bad(J, "unterminated string");
        uint8_t c = J->s[J->pos];
        uint8_t u[4];
        int k = 0;
        if (c == '"') {
            J->pos++;
            break;
        }
        if (c < 0x20) return bad(J, "control character 0x%02x in a string", c);
        if (c == '\\') {
            if (J->pos + 1 >= J->n) return bad(J, "unterminated escape");
            uint8_t e = J->s[J->pos + 1];
            const char *simple = strchr("\"\\/bfnrt", e);
            if (e && simple) {
                static const char map[] = "\"\\/\b\f\n\r\t";
                u[k++] = (uint8_t)map[simple - "\"\\/bfnrt"];
                J->pos += 2;
            } else if (e == 'u') {
                uint32_t cp, lo;
                if (J->pos + 6 > J->n || !hex4(J->s + J->pos + 2, &cp)) return bad(J, "bad \\u escape");
                J->pos += 6;
                if (cp >= 0xDC00 && cp <= 0xDFFF) return bad(J, "unpaired low surrogate in \\u escape");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (J->pos + 6 > J->n || J->s[J->pos] != '\\' || J->s[J->pos + 1] != 'u' ||
                        !hex4(J->s + J->pos + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        return bad(J, "unpaired high surrogate in \\u escape");
                    J->pos += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                if (cp == 0) return bad(J, "NUL character (\\u0000) in a string");
                if (cp < 0x80) u[k++] = (uint8_t)cp;
                else if (cp < 0x800) u[k++] = (uint8_t)(0xC0 | cp >> 6), u[k++] = (uint8_t)(0x80 | (cp & 0x3F));
                else if (cp < 0x10000)
                    u[k++] = (uint8_t)(0xE0 | cp >> 12), u[k++] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)),
                    u[k++] = (uint8_t)(0x80 | (cp & 0x3F));
                else
                    u[k++] = (uint8_t)(0xF0 | cp >> 18), u[k++] = (uint8_t)(0x80 | (cp >> 12 & 0x3F)),
                    u[k++] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)), u[k++] = (uint8_t)(0x80 | (cp & 0x3F));
            } else {
                return bad(J, "bad escape in a string");
            }
        } else {
            k = utf8_len(J->s + J->pos, J->n - J->pos);
            if (!k) return bad(J, "invalid UTF-8 in a string");
            memcpy(u, J->s + J->pos, (size_t)k);
            J->pos += (size_t)k;
        }
        if (dst && !over) {
            if (len + (size_t)k < cap) {
                memcpy(dst + len, u, (size_t)k);
                len += (size_t)k;
            } else {
                over = 1;
            }
        }
    }
    if (dst) dst[len] = '\0';
    if (toolong) *toolong = over;
    return EQR_OK;
}

/* A non-negative integer: digits only, no leading zero, at most 2^63 - 1. */
static eqr_status juint(jp *J, uint64_t *v) {
    ws(J);
    size_t p = J->pos;
    if (p >= J->n || J->s[p] < '0' || J->s[p] > '9')
        return bad(J, "a non-negative integer expected");
    if (J->s[p] == '0' && p + 1 < J->n && J->s[p + 1] >= '0' && J->s[p + 1] <= '9')
        return bad(J, "integer with a leading zero");
    uint64_t x = 0;
    while (p < J->n && J->s[p] >= '0' && J->s[p] <= '9') {
        uint64_t d = (uint64_t)(J->s[p] - '0');
        if (x > ((uint64_t)INT64_MAX - d) / 10) return bad(J, "integer too large");
        x = x * 10 + d;
        p++;
    }
    if (p < J->n && (J->s[p] == '.' || J->s[p] == 'e' || J->s[p] == 'E'))
        return bad(J, "integer expected, not a fraction or exponent");
    J->pos = p;
    *v = x;
    return EQR_OK;
}

/* [u, u, ...] with at most max entries. */
static eqr_status juints(jp *J, uint64_t *v, int max, int *count, const char *what) {
    TRY(expect(J, '['));
    *count = 0;
    if (peek(J, ']')) return EQR_OK;
    do {
        if (*count == max) return bad(J, "%s has more than %d entries", what, max);
        TRY(juint(J, &v[(*count)++]));
    } while (peek(J, ','));
    return expect(J, ']');
}

static eqr_status metadata(jp *J) {
    TRY(expect(J, '{'));
    if (peek(J, '}')) return EQR_OK;
    do {
        TRY(jstr(J, NULL, 0, NULL));
        TRY(expect(J, ':'));
        ws(J);
        if (J->pos >= J->n || J->s[J->pos] != '"') return bad(J, "__metadata__ values must be strings");
        TRY(jstr(J, NULL, 0, NULL));
    } while (peek(J, ','));
    return expect(J, '}');
}

static eqr_status tensor(jp *J, eqr__fentry *e, stinfo *in) {
    int have[3] = {0, 0, 0};
    TRY(expect(J, '{'));
    if (peek(J, '}')) return bad(J, "tensor '%s' has no dtype, shape or data_offsets", e->name);
    do {
        char key[16];
        int tl;
        size_t at = J->pos;
        TRY(jstr(J, key, sizeof key, &tl));
        TRY(expect(J, ':'));
        int which = tl ? -1 : !strcmp(key, "dtype") ? 0 : !strcmp(key, "shape") ? 1
                         : !strcmp(key, "data_offsets") ? 2 : -1;
        if (which < 0) {
            J->pos = at;
            return bad(J, "tensor '%s': unknown key (allowed: dtype, shape, data_offsets)", e->name);
        }
        if (have[which]++) {
            J->pos = at;
            return bad(J, "tensor '%s': key '%s' given twice", e->name, key);
        }
        if (which == 0) {
            char dt[16];
            TRY(jstr(J, dt, sizeof dt, &tl));
            in->dtype = -1;
            for (int k = 0; !tl && k < NDTYPES; k++)
                if (!strcmp(dt, DTYPES[k].name)) in->dtype = k;
            if (in->dtype < 0) return bad(J, "tensor '%s': unknown dtype '%s'", e->name, dt);
        } else if (which == 1) {
            uint64_t v[EQR_MAX_DIMS];
            int nd;
            TRY(juints(J, v, EQR_MAX_DIMS, &nd, "shape"));
            e->ndim = nd;
            for (int d = 0; d < nd; d++) e->shape[d] = (int64_t)v[d];
        } else {
            uint64_t v[2];
            int nv;
            TRY(juints(J, v, 2, &nv, "data_offsets"));
            if (nv != 2) return bad(J, "tensor '%s': data_offsets needs [begin, end]", e->name);
            in->begin = v[0];
            in->end = v[1];
        }
    } while (peek(J, ','));
    TRY(expect(J, '}'));
    if (!have[0] || !have[1] || !have[2])
        return bad(J, "tensor '%s' lacks %s", e->name,
                   !have[0] ? "dtype" : !have[1] ? "shape" : "data_offsets");
    e->numel = eqr_shape_num_elements(e->ndim, e->shape);
    if (e->numel < 0) return bad(J, "tensor '%s': shape too large", e->name);
    uint64_t bytes = (uint64_t)e->numel * (uint64_t)DTYPES[in->dtype].size;
    if (in->end < in->begin || in->end - in->begin != bytes)
        return bad(J, "tensor '%s': data_offsets [%llu, %llu] do not hold %lld %s values (%llu bytes)",
                   e->name, (unsigned long long)in->begin, (unsigned long long)in->end,
                   (long long)e->numel, DTYPES[in->dtype].name, (unsigned long long)bytes);
    return EQR_OK;
}

static eqr_status grow(jp *J) {
    if (J->ne < J->cap) return EQR_OK;
    int cap = J->cap ? 2 * J->cap : 16;
    eqr__fentry *e = realloc(J->e, (size_t)cap * sizeof *e);
    if (e) J->e = e;
    stinfo *in = e ? realloc(J->info, (size_t)cap * sizeof *in) : NULL;
    if (in) J->info = in;
    if (!e || !in)
        return eqr__fail(J->ctx, EQR_ERR_NOMEM, "eqr_safetensors_load: out of memory for %d entries",
                         cap);
    J->cap = cap;
    return EQR_OK;
}

static eqr_status parse_header(jp *J) {
    if (J->n == 0 || J->s[0] != '{') return bad(J, "the header must start with '{'");
    TRY(expect(J, '{'));
    int meta = 0;
    if (!peek(J, '}')) {
        do {
            char name[EQR_NAME_LEN];
            int tl;
            size_t at = J->pos;
            ws(J);
            if (J->pos >= J->n || J->s[J->pos] != '"') return bad(J, "a tensor name (string) expected");
            TRY(jstr(J, name, sizeof name, &tl));
            TRY(expect(J, ':'));
            if (!tl && !strcmp(name, "__metadata__")) {
                if (meta++) {
                    J->pos = at;
                    return bad(J, "__metadata__ given twice");
                }
                TRY(metadata(J));
                continue;
            }
            if (!name[0]) {
                J->pos = at;
                return bad(J, "empty tensor name");
            }
            TRY(grow(J));
            eqr__fentry *e = &J->e[J->ne];
            memset(e, 0, sizeof *e);
            memset(&J->info[J->ne], 0, sizeof J->info[J->ne]);
            memcpy(e->name, name, sizeof name);
            e->toolong = tl;
            TRY(tensor(J, e, &J->info[J->ne]));
            J->ne++;
        } while (peek(J, ','));
        TRY(expect(J, '}'));
    }
    ws(J);
    if (J->pos != J->n) return bad(J, "data after the header's closing '}'");
    return EQR_OK;
}

static int cmp_off(const void *a, const void *b) {
    const stinfo *x = *(const stinfo *const *)a, *y = *(const stinfo *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Offsets tile [0, buffer) exactly: sorted, each starting where the
 * previous ended, the last ending at the end of the file. */
static eqr_status check_offsets(jp *J, uint64_t buffer) {
    const stinfo **ix = malloc((size_t)(J->ne > 0 ? J->ne : 1) * sizeof *ix);
    if (!ix) return eqr__fail(J->ctx, EQR_ERR_NOMEM, "eqr_safetensors_load: out of memory");
    for (int j = 0; j < J->ne; j++) ix[j] = &J->info[j];
    qsort(ix, (size_t)J->ne, sizeof *ix, cmp_off);
    uint64_t at = 0;
    eqr_status st = EQR_OK;
    for (int j = 0; j < J->ne && !st; j++) {
        const eqr__fentry *e = &J->e[ix[j] - J->info];
        if (ix[j]->begin != at)
            st = eqr__fail(J->ctx, EQR_ERR_FORMAT,
                           "eqr_safetensors_load: '%s' is corrupt: tensor '%s' starts at byte %llu "
                           "of the buffer, where %llu was expected (%s)",
                           J->path, e->name, (unsigned long long)ix[j]->begin, (unsigned long long)at,
                           ix[j]->begin < at ? "overlap" : "gap");
        at = ix[j]->end;
    }
    if (!st && at != buffer)
        st = eqr__fail(J->ctx, EQR_ERR_FORMAT,
                       "eqr_safetensors_load: '%s' is corrupt: the tensors %s %llu bytes of the "
                       "buffer but it has %llu",
                       J->path, at > buffer ? "need" : "cover only", (unsigned long long)at,
                       (unsigned long long)buffer);
    free(ix);
    return st;
}

static float half_to_float(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, ex = (h >> 10) & 0x1F, m = h & 0x3FF, u;
    if (ex == 0x1F) {
        u = s | 0x7F800000u | m << 13; /* inf / nan */
    } else if (ex) {
        u = s | (ex + 112) << 23 | m << 13;
    } else if (!m) {
        u = s;
    } else { /* subnormal: m * 2^-24, exact in float */
        float f = (float)m * 5.9604644775390625e-8f;
        return s ? -f : f;
    }
    return u2f(u);
}

static void convert(float *dst, const uint8_t *p, int64_t n, int kind) {
    switch (kind) {
    case DT_F32: get_floats(dst, p, n); break;
    case DT_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = half_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        break;
    case DT_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = u2f((uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16);
        break;
    case DT_F64:
        for (int64_t i = 0; i < n; i++) {
            uint64_t u = get_u64(p + 8 * i);
            double d;
            memcpy(&d, &u, 8);
            dst[i] = (float)d;
        }
        break;
    }
}

eqr_status eqr_safetensors_load(eqr_ctx *ctx, const char *path, const eqr_load_opts *opts,
                                eqr_load_report *report) {
    static const char *fn = "eqr_safetensors_load";
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!path || !*path) return eqr__fail(ctx, EQR_ERR_ARG, "%s: path is empty", fn);
    uint8_t *buf = NULL;
    size_t n = 0;
    eqr_status st = eqr__load_begin(ctx, fn, path, opts, report, &buf, &n);
    if (st) return st;
    jp J = {ctx, path, NULL, 0, 0, NULL, NULL, 0, 0};
    int *to_file = NULL;
    uint64_t hlen = n >= 8 ? get_u64(buf) : 0;
    if (n < 8)
        st = eqr__fail(ctx, EQR_ERR_FORMAT, "%s: '%s' is truncated (%zu bytes, the header length needs 8)",
                       fn, path, n);
    else if (hlen > ST_MAX_HEADER)
        st = eqr__fail(ctx, EQR_ERR_FORMAT, "%s: '%s' announces a %llu-byte header (limit %llu)", fn,
                       path, (unsigned long long)hlen, ST_MAX_HEADER);
    else if (hlen > n - 8)
        st = eqr__fail(ctx, EQR_ERR_FORMAT,
                       "%s: '%s' is truncated: it announces a %llu-byte header, the file holds %zu "
                       "bytes after the length",
                       fn, path, (unsigned long long)hlen, n - 8);
    if (!st) {
        J.s = buf + 8;
        J.n = (size_t)hlen;
        st = parse_header(&J);
    }
    if (!st) st = check_offsets(&J, (uint64_t)(n - 8 - hlen));
    if (!st) {
        for (int j = 0; j < J.ne; j++) J.e[j].data = buf + 8 + hlen + J.info[j].begin;
        to_file = malloc((size_t)(ctx->nparams > 0 ? ctx->nparams : 1) * sizeof *to_file);
        if (!to_file) st = eqr__fail(ctx, EQR_ERR_NOMEM, "%s: out of memory", fn);
    }
    eqr_load_report rep;
    if (!st) {
        st = eqr__match(ctx, fn, path, J.e, J.ne, opts, 0, to_file, &rep);
        if (report) *report = rep;
    }
    for (int i = 0; !st && i < ctx->nparams; i++) {
        if (to_file[i] < 0) continue;
        const stinfo *in = &J.info[to_file[i]];
        if (DTYPES[in->dtype].kind == DT_OTHER)
            st = eqr__fail(ctx, EQR_ERR_MISMATCH,
                           "%s: '%s' stores '%s' as %s; the store holds floats (F32, F16, BF16 and "
                           "F64 are read)",
                           fn, path, ctx->params[i].name, DTYPES[in->dtype].name);
    }
    if (!st) {
        for (int i = 0; i < ctx->nparams; i++) {
            if (to_file[i] < 0) continue;
            const eqr__fentry *fe = &J.e[to_file[i]];
            convert(ctx->pdata + ctx->params[i].offset, fe->data, fe->numel,
                    DTYPES[J.info[to_file[i]].dtype].kind);
        }
        eqr__match_report(ctx, fn, path, J.e, J.ne, opts, to_file, &rep);
    }
    free(to_file);
    free(J.e);
    free(J.info);
    free(buf);
    return st;
}
