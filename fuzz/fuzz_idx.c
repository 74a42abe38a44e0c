/* libFuzzer harness for eqr_idx_read, plain and gzip. The first input byte
 * picks how the rest reaches the reader:
 *   mode % 3 == 0: written as is (a plain IDX file, or a raw gzip stream);
 *   mode % 3 == 1: gzip-compressed by the harness (valid stream);
 *   mode % 3 == 2: gzip-compressed, then damaged (tail cut or a byte flipped,
 *                  chosen by mode >> 2).
 * Whenever the decoded bytes are known (every mode but a raw gzip stream),
 * the harness decodes them itself and requires the reader to agree exactly:
 * success iff the bytes are a well-formed IDX array, and then the same type,
 * dims and element values. Always: a failure has a non-OK status, a message
 * and an empty *out; a success has 1..8 nonzero dims whose product is count.
 * LeakSanitizer reports anything the reader leaks. */
#include "fuzz_common.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static eqr_ctx *g_ctx;
static char g_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_ctx = fuzz_ctx_new();
    fuzz_path(g_path, sizeof g_path, "idx");
    return 0;
}

static void die(const char *what) { fuzz_fail("fuzz_idx", g_ctx, what); }

static int esize(int t) {
    return t == 0x08 || t == 0x09 ? 1 : t == 0x0B ? 2 : t == 0x0C || t == 0x0D ? 4 : t == 0x0E ? 8 : 0;
}
static uint64_t be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

/* The reference decoder: 1 if r[0..n) is a well-formed IDX array (within
 * the reader's documented element limit, 2^31). */
static int well_formed(const uint8_t *r, size_t n) {
    if (n < 4 || r[0] || r[1] || !esize(r[2]) || r[3] < 1 || r[3] > EQR_IDX_MAX_DIMS) return 0;
    size_t h = 4 + 4 * (size_t)r[3];
    if (n < h) return 0;
    uint64_t count = 1;
    for (int d = 0; d < r[3]; d++) {
        uint64_t v = be(r + 4 + 4 * d, 4);
        if (!v) return 0;
        count *= v;
        if (count >= (1ull << 31)) return 0;
    }
    return n - h == count * (uint64_t)esize(r[2]);
}

static float elem(int t, const uint8_t *p) {
    uint64_t u = be(p, esize(t));
    switch (t) {
    case 0x08: return (float)(uint8_t)u;
    case 0x09: return (float)(int8_t)(uint8_t)u;
    case 0x0B: return (float)(int16_t)(uint16_t)u;
    case 0x0C: return (float)(int32_t)(uint32_t)u;
    case 0x0D: { uint32_t w = (uint32_t)u; float f; memcpy(&f, &w, 4); return f; }
    default: { double d; memcpy(&d, &u, 8); return (float)d; }
    }
}

static void check_against(const eqr_idx *x, eqr_status st, const uint8_t *r, size_t n) {
    int ok = well_formed(r, n);
    if (ok != (st == EQR_OK)) die(ok ? "a well-formed IDX array was refused" : "a malformed IDX array was accepted");
    if (!ok) return;
    if (x->type != r[2] || x->ndim != r[3]) die("type or ndim differ from the header");
    for (int d = 0; d < x->ndim; d++)
        if ((uint64_t)x->dims[d] != be(r + 4 + 4 * d, 4)) die("dims differ from the header");
    const uint8_t *p = r + 4 + 4 * x->ndim;
    int es = esize(x->type);
    for (int64_t i = 0; i < x->count; i++) {
        float want = elem(x->type, p + (size_t)i * es);
        if (memcmp(&want, &x->data[i], sizeof want) != 0) die("an element was decoded wrongly");
    }
}

/* gzip-compress in[0..n) into a malloc'd buffer; *outn gets its length. */
static uint8_t *gzip(const uint8_t *in, size_t n, int level, size_t *outn) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    size_t cap = deflateBound(&z, (uLong)n) + 32;
    uint8_t *out = malloc(cap);
    if (!out) abort();
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
    *outn = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0];
    const uint8_t *raw = data + 1;
    size_t rawn = size - 1;
    uint8_t *file = (uint8_t *)raw, *z = NULL;
    size_t filen = rawn;
    int known = !(rawn >= 2 && raw[0] == 0x1f && raw[1] == 0x8b);
    if (mode % 3) {
        z = gzip(raw, rawn, (mode >> 2) % 10, &filen);
        file = z;
        known = 1;
        if (mode % 3 == 2) {
            int k = mode >> 2;
            if (k % 2 == 0) {
                size_t cut = (size_t)k / 2 + 1;
                filen = filen > cut ? filen - cut : 0;
            } else {
                z[((size_t)k * 7919u) % filen] ^= (uint8_t)(1u << (k % 8));
                /* a flip in the gzip header's mtime/xfl/os bytes changes
                 * nothing decoded; anywhere else the stream must fail or
                 * still decode to raw (CRC-32 guarded) */
            }
        }
    }
    fuzz_write(g_path, file, filen);

    eqr_error_clear(g_ctx);
    eqr_idx x;
    memset(&x, 0xA5, sizeof x); /* garbage the reader must overwrite */
    eqr_status st = eqr_idx_read(g_ctx, g_path, &x);
    if (st != EQR_OK) {
        const char *m = eqr_error_message(g_ctx);
        if (!m || !m[0]) die("error without a message");
        if (eqr_error_status(g_ctx) != st) die("returned status differs from the context's");
        if (x.data || x.count || x.ndim) die("failed read left a non-empty result");
    } else {
        if (x.ndim < 1 || x.ndim > EQR_IDX_MAX_DIMS || !esize(x.type)) die("bad ndim or type");
        int64_t c = 1;
        for (int d = 0; d < x.ndim; d++) {
            if (x.dims[d] <= 0) die("non-positive dimension");
            c *= x.dims[d];
        }
        if (c != x.count || !x.data) die("count is not the product of dims, or no data");
        /* touch every element (ASan checks the buffer is count floats) */
        volatile float s = 0;
        for (int64_t i = 0; i < x.count; i++) s += x.data[i] * 0.0f;
        (void)s;
    }
    /* a damaged stream may fail where raw is well formed; otherwise the
     * verdict and the values must be the reference decoder's */
    if (known && (st == EQR_OK || mode % 3 != 2)) check_against(&x, st, raw, rawn);
    eqr_idx_free(&x);
    free(z);
    unlink(g_path);
    return 0;
}
