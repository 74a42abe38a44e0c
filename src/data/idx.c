/* IDX reader (the MNIST file format), gzip-compressed or plain.
 *
 * Layout: two zero bytes, a type code, the number of dimensions, then each
 * dimension as a big-endian uint32, then the elements big-endian. zlib's
 * gzread reads uncompressed files transparently, so one path serves both. */
#define _POSIX_C_SOURCE 200809L
#include "core/internal.h"
#include "equirelax/data.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

/* Largest element count accepted: keeps int64 arithmetic far from overflow
 * and refuses absurd headers before allocating. */
#define EQR_IDX_MAX_COUNT ((int64_t)1 << 31)
#define EQR_IDX_CHUNK ((size_t)1 << 18) /* bytes per read; a multiple of 8 */

static int elem_size(int type) {
    switch (type) {
    case 0x08: case 0x09: return 1;
    case 0x0B: return 2;
    case 0x0C: case 0x0D: return 4;
    case 0x0E: return 8;
    }
    return 0;
}

static uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Convert n big-endian elements of the given type to float. */
static void convert(int type, const unsigned char *src, float *dst, size_t n) {
    switch (type) {
    case 0x08:
        for (size_t i = 0; i < n; i++) dst[i] = (float)src[i];
        break;
    case 0x09:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int8_t)src[i];
        break;
    case 0x0B:
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)(int16_t)(uint16_t)((src[2 * i] << 8) | src[2 * i + 1]);
        break;
    case 0x0C:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int32_t)be32(src + 4 * i);
        break;
    case 0x0D:
        for (size_t i = 0; i < n; i++) {
            uint32_t u = be32(src + 4 * i);
            memcpy(&dst[i], &u, 4);
        }
        break;
    case 0x0E:
        for (size_t i = 0; i < n; i++) {
            uint64_t u = ((uint64_t)be32(src + 8 * i) << 32) | be32(src + 8 * i + 4);
            double d;
            memcpy(&d, &u, 8);
            dst[i] = (float)d;
        }
        break;
    }
}

/* Read up to n bytes; returns the count read (short only at end of input or
 * on error) and sets *zerr to the zlib error state afterwards. */
static size_t read_some(gzFile gz, unsigned char *buf, size_t n, int *zerr) {
    size_t got = 0;
    *zerr = Z_OK;
    while (got < n) {
        size_t want = n - got;
        if (want > EQR_IDX_CHUNK) want = EQR_IDX_CHUNK;
        int r = gzread(gz, buf + got, (unsigned)want);
        if (r > 0) got += (size_t)r;
        if (r < 0 || (size_t)r < want) break;
    }
    gzerror(gz, zerr);
    return got;
}

/* zlib's text for the stream's error, without the "<fd:N>: " it prepends
 * (the stream is opened from a descriptor; the caller names the path). */
static const char *zlib_msg(gzFile gz) {
    int e;
    const char *m = gzerror(gz, &e);
    const char *c = m && strncmp(m, "<fd:", 4) == 0 ? strstr(m, ": ") : NULL;
    if (c) m = c + 2;
    return m && *m ? m : "unknown error";
}

/* Record the error behind a short read: zlib failure, OS failure or a
 * cleanly truncated file. what names the part being read. zlib decodes
 * ahead, so a corrupt stream may surface while reading an earlier part. */
static eqr_status short_read(eqr_ctx *ctx, gzFile gz, const char *path, int zerr,
                             const char *what, long long expected, long long got) {
    if (zerr == Z_ERRNO)
        return eqr__fail(ctx, EQR_ERR_IO, "eqr_idx_read: '%s': read error: %s", path,
                         strerror(errno));
    if (zerr == Z_BUF_ERROR)
        return eqr__fail(ctx, EQR_ERR_FORMAT, "eqr_idx_read: '%s': truncated gzip stream (%s)",
                         path, zlib_msg(gz));
    if (zerr == Z_MEM_ERROR)
        return eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_idx_read: '%s': zlib out of memory", path);
    if (zerr != Z_OK && zerr != Z_STREAM_END)
        return eqr__fail(ctx, EQR_ERR_FORMAT, "eqr_idx_read: '%s': corrupt gzip stream (%s)",
                         path, zlib_msg(gz));
    return eqr__fail(ctx, EQR_ERR_FORMAT, "eqr_idx_read: '%s': truncated: expected %lld bytes of %s, got %lld",
                     path, expected, what, got);
}

/* Parse and validate the header; fills out's type, ndim, dims and count. */
static eqr_status read_header(eqr_ctx *ctx, gzFile gz, const char *path, eqr_idx *out) {
    unsigned char h[4 * EQR_IDX_MAX_DIMS];
    int zerr;
    size_t got = read_some(gz, h, 4, &zerr);
    if (got < 4) return short_read(ctx, gz, path, zerr, "header", 4, (long long)got);
    if (h[0] != 0 || h[1] != 0)
        return eqr__fail(ctx, EQR_ERR_FORMAT,
                         "eqr_idx_read: '%s': bad magic 0x%02x%02x (an IDX file starts with two zero bytes)",
                         path, h[0], h[1]);
    int type = h[2], ndim = h[3];
    if (!elem_size(type))
        return eqr__fail(ctx, EQR_ERR_FORMAT,
                         "eqr_idx_read: '%s': unknown element type code 0x%02x "
                         "(expected 0x08, 0x09, 0x0B, 0x0C, 0x0D or 0x0E)", path, type);
    if (ndim < 1 || ndim > EQR_IDX_MAX_DIMS)
        return eqr__fail(ctx, EQR_ERR_FORMAT,
                         "eqr_idx_read: '%s': %d dimensions, expected 1 to %d", path, ndim,
                         EQR_IDX_MAX_DIMS);
    got = read_some(gz, h, (size_t)(4 * ndim), &zerr);
    if (got < (size_t)(4 * ndim))
        return short_read(ctx, gz, path, zerr, "header dimensions", 4 * ndim, (long long)got);
    int64_t count = 1;
    for (int d = 0; d < ndim; d++) {
        int64_t v = be32(h + 4 * d);
        if (v == 0)
            return eqr__fail(ctx, EQR_ERR_FORMAT, "eqr_idx_read: '%s': dimension %d is zero", path, d);
        /* count < 2^31 and v < 2^32 before the product: it cannot overflow */
        count *= v;
        if (count >= EQR_IDX_MAX_COUNT)
            return eqr__fail(ctx, EQR_ERR_FORMAT,
                             "eqr_idx_read: '%s': too many elements (limit %lld)", path,
                             (long long)EQR_IDX_MAX_COUNT);
        out->dims[d] = v;
    }
    out->type = type;
    out->ndim = ndim;
    out->count = count;
    return EQR_OK;
}

/* Make room for at least need elements in out->data (*cap of them now),
 * doubling up to the announced count: the buffer grows only with data that
 * was actually read, so a lying header costs nothing. */
static int grow(eqr_idx *out, int64_t need, int64_t *cap) {
    if (need <= *cap) return 1;
    int64_t c = *cap ? *cap : 1;
    while (c < need) c *= 2;
    if (c > out->count) c = out->count;
    float *p = realloc(out->data, (size_t)c * sizeof(float));
    if (!p) return 0;
    out->data = p;
    *cap = c;
    return 1;
}

/* Read the payload into out->data (allocated here), then require the end.
 * file_size bounds a plain file's payload before anything is allocated. */
static eqr_status read_payload(eqr_ctx *ctx, gzFile gz, const char *path, int64_t file_size,
                               eqr_idx *out) {
    int es = elem_size(out->type);
    long long expected = (long long)out->count * es;
    long long header = 4 + 4LL * out->ndim;
    if (gzdirect(gz) && header + expected > file_size)
        return eqr__fail(ctx, EQR_ERR_FORMAT,
                         "eqr_idx_read: '%s': truncated: expected %lld bytes of data, got %lld",
                         path, expected, file_size > header ? (long long)file_size - header : 0);
    unsigned char *buf = malloc(EQR_IDX_CHUNK);
    int64_t cap = 0;
    eqr_status st = EQR_OK;
    if (!buf) {
        st = eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_idx_read: '%s': cannot allocate a read buffer", path);
        goto done;
    }
    long long done_bytes = 0;
    int zerr = Z_OK;
    while (done_bytes < expected) {
        size_t want = (size_t)(expected - done_bytes);
        if (want > EQR_IDX_CHUNK) want = EQR_IDX_CHUNK;
        size_t got = read_some(gz, buf, want, &zerr);
        int64_t have = done_bytes / es, more = (int64_t)(got / (size_t)es);
        if (more) { /* none yet: out->data may still be NULL (no NULL + 0) */
            if (!grow(out, have + more, &cap)) {
                st = eqr__fail(ctx, EQR_ERR_NOMEM,
                               "eqr_idx_read: '%s': cannot allocate %lld elements", path,
                               (long long)(have + more));
                goto done;
            }
            convert(out->type, buf, out->data + have, (size_t)more);
        }
        done_bytes += (long long)got;
        if (got < want) {
            st = short_read(ctx, gz, path, zerr, "data", expected, done_bytes);
            goto done;
        }
    }
    /* One more byte: must be end of input. This also makes zlib verify the
     * gzip trailer (CRC and length). */
    size_t extra = read_some(gz, buf, 1, &zerr);
    if (zerr != Z_OK && zerr != Z_STREAM_END) {
        st = short_read(ctx, gz, path, zerr, "data", expected, expected);
        goto done;
    }
    if (extra) {
        st = eqr__fail(ctx, EQR_ERR_FORMAT,
                       "eqr_idx_read: '%s': trailing bytes after the %lld bytes of data", path,
                       expected);
        goto done;
    }
done:
    free(buf);
    return st;
}

eqr_status eqr_idx_read(eqr_ctx *ctx, const char *path, eqr_idx *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!path || !out) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_idx_read: NULL %s", path ? "out" : "path");
    int fd;
    int64_t file_size;
    eqr_status st = eqr__open_regular(ctx, "eqr_idx_read", path, &fd, &file_size);
    if (st != EQR_OK) return st;
    errno = 0;
    gzFile gz = gzdopen(fd, "rb"); /* owns fd from here */
    if (!gz) {
        close(fd);
        return eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_idx_read: '%s': zlib out of memory", path);
    }
    gzbuffer(gz, 1u << 17);
    st = read_header(ctx, gz, path, out);
    if (st == EQR_OK) st = read_payload(ctx, gz, path, file_size, out);
    gzclose_r(gz);
    if (st != EQR_OK) eqr_idx_free(out);
    return st;
}

void eqr_idx_free(eqr_idx *idx) {
    if (!idx) return;
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}
