/* IO: IDX reader (plain and gzip), datasets, batcher, real Fashion-MNIST. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* ---- helpers to write IDX files ---- */

typedef struct buf {
    unsigned char d[1 << 16];
    size_t n;
} buf;

static void put(buf *b, const void *p, size_t n) {
    assert_true(b->n + n <= sizeof b->d);
    memcpy(b->d + b->n, p, n);
    b->n += n;
}
static void put_u8(buf *b, unsigned v) {
    unsigned char c = (unsigned char)v;
    put(b, &c, 1);
}
static void put_be(buf *b, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; i--) put_u8(b, (unsigned)(v >> (8 * i)) & 0xFF);
}
static void header(buf *b, int type, int ndim, const uint32_t *dims) {
    b->n = 0;
    put_u8(b, 0);
    put_u8(b, 0);
    put_u8(b, (unsigned)type);
    put_u8(b, (unsigned)ndim);
    for (int i = 0; i < ndim; i++) put_be(b, dims[i], 4);
}

static void write_plain(const char *path, const unsigned char *d, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(d, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}
static void write_gz(const char *path, const unsigned char *d, size_t n) {
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    if (n) assert_int_equal(gzwrite(g, d, (unsigned)n), (int)n);
    assert_int_equal(gzclose(g), Z_OK);
}
static void write_file(const char *path, const buf *b, int gz) {
    if (gz)
        write_gz(path, b->d, b->n);
    else
        write_plain(path, b->d, b->n);
}
static size_t slurp(const char *path, unsigned char *d, size_t cap) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(d, 1, cap, f);
    fclose(f);
    return n;
}

/* Reading path must fail with st and a message containing needle (and the
 * path), leaving the output empty. */
static void expect_fail(eqr_ctx *ctx, const char *path, eqr_status st, const char *needle) {
    eqr_idx idx;
    idx.data = (float *)&idx; /* garbage that must be cleared */
    idx.count = 99;
    assert_int_equal(eqr_idx_read(ctx, path, &idx), st);
    assert_null(idx.data);
    assert_int_equal(idx.count, 0);
    assert_int_equal(idx.ndim, 0);
    assert_non_null(strstr(eqr_error_message(ctx), path));
    tu_assert_error(ctx, st, needle);
}

/* ---- reading each type ---- */

typedef struct tcase {
    int type, es, ndim;
    uint32_t dims[EQR_IDX_MAX_DIMS];
    int n;
    uint64_t raw[8];   /* element bit patterns, written big-endian */
    double want[8];
} tcase;

static uint64_t f32bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static uint64_t f64bits(double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

static void test_read_types(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    tcase cs[6] = {
        {0x08, 1, 2, {2, 3}, 6, {0, 1, 127, 128, 254, 255}, {0, 1, 127, 128, 254, 255}},
        {0x09, 1, 1, {6}, 6, {0x80, 0xFF, 0, 1, 0x7F, 5}, {-128, -1, 0, 1, 127, 5}},
        {0x0B, 2, 2, {3, 2}, 6, {0x8000, 0xFFFF, 0, 1, 300, 0x7FFF}, {-32768, -1, 0, 1, 300, 32767}},
        {0x0C, 4, 3, {2, 2, 1}, 4, {(uint32_t)-2000000, 0xFFFFFFFFu, 0, 16777216}, {-2000000, -1, 0, 16777216}},
        {0x0D, 4, 1, {4}, 4, {0}, {1.5, -0.25, 3.0e38, 1.0e-30}},
        {0x0E, 8, 1, {3}, 3, {0}, {0.1, -2.5, 1.0e10}},
    };
    for (int i = 0; i < 4; i++) cs[4].raw[i] = f32bits((float)cs[4].want[i]);
    for (int i = 0; i < 3; i++) cs[5].raw[i] = f64bits(cs[5].want[i]);
    char path[512];
    tu_tmp_path(path, "types.idx");
    static buf b;
    for (int k = 0; k < 6; k++)
        for (int gz = 0; gz < 2; gz++) {
            const tcase *c = &cs[k];
            header(&b, c->type, c->ndim, c->dims);
            for (int i = 0; i < c->n; i++) put_be(&b, c->raw[i], c->es);
            write_file(path, &b, gz);
            eqr_idx idx;
            if (eqr_idx_read(ctx, path, &idx) != EQR_OK)
                fail_msg("type 0x%02x gz %d: %s", c->type, gz, eqr_error_message(ctx));
            assert_int_equal(idx.type, c->type);
            assert_int_equal(idx.ndim, c->ndim);
            for (int d = 0; d < c->ndim; d++) assert_int_equal(idx.dims[d], c->dims[d]);
            assert_int_equal(idx.count, c->n);
            for (int i = 0; i < c->n; i++)
                if (idx.data[i] != (float)c->want[i])
                    fail_msg("type 0x%02x gz %d element %d: got %.9g want %.9g", c->type, gz, i,
                             idx.data[i], (float)c->want[i]);
            eqr_idx_free(&idx);
            assert_null(idx.data);
        }
    /* the maximum number of dimensions is accepted */
    uint32_t d8[8] = {1, 2, 1, 1, 1, 1, 1, 2};
    header(&b, 0x08, 8, d8);
    for (int i = 0; i < 4; i++) put_u8(&b, (unsigned)(10 + i));
    write_file(path, &b, 1);
    eqr_idx idx;
    assert_int_equal(eqr_idx_read(ctx, path, &idx), EQR_OK);
    assert_int_equal(idx.ndim, 8);
    assert_int_equal(idx.count, 4);
    assert_true(idx.data[3] == 13.0f);
    eqr_idx_free(&idx);
    eqr_idx_free(NULL);
    remove(path);
    eqr_ctx_destroy(ctx);
}

/* ---- header validation ---- */

static void test_reject_header(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    char path[512];
    tu_tmp_path(path, "bad_header.idx");
    static buf b;
    uint32_t d2[2] = {2, 2};
    for (int gz = 0; gz < 2; gz++) {
        header(&b, 0x08, 2, d2);
        b.d[0] = 1; /* magic */
        put_be(&b, 0, 4);
        write_file(path, &b, gz);
        expect_fail(ctx, path, EQR_ERR_FORMAT, "magic");
        header(&b, 0x08, 2, d2);
        b.d[1] = 0x80;
        put_be(&b, 0, 4);
        write_file(path, &b, gz);
        expect_fail(ctx, path, EQR_ERR_FORMAT, "magic");

        header(&b, 0x0A, 2, d2); /* not a type code */
        put_be(&b, 0, 4);
        write_file(path, &b, gz);
        expect_fail(ctx, path, EQR_ERR_FORMAT, "type code 0x0a");
        header(&b, 0x0F, 2, d2);
        put_be(&b, 0, 4);
        write_file(path, &b, gz);
        expect_fail(ctx, path, EQR_ERR_FORMAT, "type code");

        header(&b, 0x08, 0, NULL); /* ndim 0 */
        put_be(&b, 0, 4);
        write_file(path, &b, gz);
        expect_fail(ctx, path, EQR_ERR_FORMAT, "0 dimensions");
        uint32_t d9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
        header(&b, 0x08, 8, d9);
        b.d[3] = 9; /* ndim 9, nine dims present */
        put_be(&b, 1, 4);
        put_u8(&b, 0);
        write_file(path, &b, gz);
        expect_fail(ctx, path, EQR_ERR_FORMAT, "9 dimensions");

        uint32_t dz[3] = {2, 0, 3}; /* zero dimension */
        header(&b, 0x08, 3, dz);
        write_file(path, &b, gz);
        expect_fail(ctx, path, EQR_ERR_FORMAT, "dimension 1 is zero");

        uint32_t dbig[2] = {65536, 32768}; /* exactly 2^31 elements */
        header(&b, 0x08, 2, dbig);
        write_file(path, &b, gz);
        expect_fail(ctx, path, EQR_ERR_FORMAT, "too many elements");
        uint32_t dov[4] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}; /* overflows int64 */
        header(&b, 0x0E, 4, dov);
        write_file(path, &b, gz);
        expect_fail(ctx, path, EQR_ERR_FORMAT, "too many elements");

        /* truncated headers: empty, 2 bytes, dims cut short */
        b.n = 0;
        write_file(path, &b, gz);
        expect_fail(ctx, path, EQR_ERR_FORMAT, "expected 4 bytes of header, got 0");
        header(&b, 0x08, 2, d2);
        b.n = 2;
        write_file(path, &b, gz);
        expect_fail(ctx, path, EQR_ERR_FORMAT, "expected 4 bytes of header, got 2");
        uint32_t d3[3] = {2, 2, 2};
        header(&b, 0x08, 3, d3);
        b.n = 4 + 4 * 2 + 1; /* third dimension incomplete */
        write_file(path, &b, gz);
        expect_fail(ctx, path, EQR_ERR_FORMAT, "expected 12 bytes of header dimensions, got 9");
    }
    remove(path);
    eqr_ctx_destroy(ctx);
}

/* ---- payload size, gzip corruption, missing file ---- */

static void test_reject_payload(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    char path[512];
    tu_tmp_path(path, "bad_payload.idx");
    static buf b;
    uint32_t d[2] = {2, 3};
    for (int gz = 0; gz < 2; gz++) {
        header(&b, 0x0C, 2, d); /* 6 x i32 = 24 bytes */
        for (int i = 0; i < 5; i++) put_be(&b, (uint64_t)i, 4);
        write_file(path, &b, gz);
        expect_fail(ctx, path, EQR_ERR_FORMAT, "truncated: expected 24 bytes of data, got 20");
        header(&b, 0x0C, 2, d);
        for (int i = 0; i < 5; i++) put_be(&b, (uint64_t)i, 4);
        put_u8(&b, 7); /* not even a whole element */
        write_file(path, &b, gz);
        expect_fail(ctx, path, EQR_ERR_FORMAT, "truncated: expected 24 bytes of data, got 21");
        header(&b, 0x0C, 2, d);
        write_file(path, &b, gz); /* header only */
        expect_fail(ctx, path, EQR_ERR_FORMAT, "truncated: expected 24 bytes of data, got 0");
        header(&b, 0x0C, 2, d);
        put_be(&b, 5, 3); /* less than one element: nothing converted (fuzz_idx found
                           * the NULL + 0 this once computed under clang's UBSan) */
        write_file(path, &b, gz);
        expect_fail(ctx, path, EQR_ERR_FORMAT, "truncated: expected 24 bytes of data, got 3");

        header(&b, 0x0C, 2, d);
        for (int i = 0; i < 6; i++) put_be(&b, (uint64_t)i, 4);
        put_u8(&b, 0); /* one byte too many */
        write_file(path, &b, gz);
        expect_fail(ctx, path, EQR_ERR_FORMAT, "trailing bytes");
        header(&b, 0x0C, 2, d);
        for (int i = 0; i < 7; i++) put_be(&b, (uint64_t)i, 4);
        write_file(path, &b, gz);
        expect_fail(ctx, path, EQR_ERR_FORMAT, "trailing bytes");
    }
    /* a valid file of the same shape reads fine (the checks are not
     * rejecting everything) */
    header(&b, 0x0C, 2, d);
    for (int i = 0; i < 6; i++) put_be(&b, (uint64_t)i, 4);
    write_file(path, &b, 1);
    eqr_idx idx;
    assert_int_equal(eqr_idx_read(ctx, path, &idx), EQR_OK);
    assert_true(idx.data[5] == 5.0f);
    eqr_idx_free(&idx);
    remove(path);
    eqr_ctx_destroy(ctx);
}

static void test_reject_gzip(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    char path[512];
    tu_tmp_path(path, "corrupt.idx.gz");
    static buf b;
    static unsigned char raw[1 << 16];
    uint32_t d[1] = {20000};
    header(&b, 0x08, 1, d);
    eqr_rng rng;
    eqr_rng_seed(&rng, 5);
    for (int i = 0; i < 20000; i++) put_u8(&b, (unsigned)eqr_rng_below(&rng, 16)); /* compressible */
    write_file(path, &b, 1);
    size_t n = slurp(path, raw, sizeof raw);
    if (n <= 200 || n >= 20000) {
        fail_msg("unexpected gzip size %zu", n);
        return;
    }
    eqr_idx idx;
    assert_int_equal(eqr_idx_read(ctx, path, &idx), EQR_OK);
    assert_int_equal(idx.count, 20000);
    eqr_idx_free(&idx);

    /* damaged deflate data in the middle of the stream */
    static unsigned char bad[1 << 16];
    memcpy(bad, raw, n);
    for (size_t i = n / 2; i < n / 2 + 16; i++) bad[i] ^= 0xA5;
    write_plain(path, bad, n);
    expect_fail(ctx, path, EQR_ERR_FORMAT, "corrupt gzip stream");

    /* first deflate block with the reserved block type 3 */
    memcpy(bad, raw, n);
    assert_int_equal(bad[3], 0); /* no optional gzip header fields: data at 10 */
    bad[10] |= 0x06;
    write_plain(path, bad, n);
    expect_fail(ctx, path, EQR_ERR_FORMAT, "corrupt gzip stream (invalid block type)");

    /* wrong CRC in the trailer: the data decodes but the check fails */
    memcpy(bad, raw, n);
    bad[n - 8] ^= 0x01;
    write_plain(path, bad, n);
    expect_fail(ctx, path, EQR_ERR_FORMAT, "corrupt gzip stream");

    /* compressed stream cut short */
    write_plain(path, raw, n / 2);
    expect_fail(ctx, path, EQR_ERR_FORMAT, "truncated gzip stream");

    /* gzip magic followed by an invalid header */
    memcpy(bad, raw, n);
    bad[2] = 0x07; /* compression method other than deflate */
    write_plain(path, bad, n);
    expect_fail(ctx, path, EQR_ERR_FORMAT, "corrupt gzip stream");
    remove(path);
    eqr_ctx_destroy(ctx);
}

static void test_missing_and_state(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    char path[512];
    tu_tmp_path(path, "does_not_exist.idx.gz");
    remove(path);
    expect_fail(ctx, path, EQR_ERR_IO, "No such file");
    /* a directory opens but cannot be read */
    char dir[512];
    strcpy(dir, path);
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] != '/') len--;
    dir[len - 1] = '\0'; /* the temp directory itself */
    expect_fail(ctx, dir, EQR_ERR_IO, "is a directory, not a regular file");
    /* NULL arguments */
    eqr_idx idx;
    assert_int_equal(eqr_idx_read(ctx, NULL, &idx), EQR_ERR_ARG);
    assert_null(idx.data);
    tu_assert_error(ctx, EQR_ERR_ARG, "path");
    assert_int_equal(eqr_idx_read(NULL, path, &idx), EQR_ERR_ARG);
    /* a context already in error does nothing and keeps its first message */
    int64_t badshape[1] = {-1};
    assert_null(eqr_tensor_zeros(ctx, 1, badshape));
    assert_int_equal(eqr_idx_read(ctx, path, &idx), EQR_ERR_SHAPE);
    assert_null(idx.data);
    assert_null(strstr(eqr_error_message(ctx), "does_not_exist"));
    eqr_error_clear(ctx);
    eqr_ctx_destroy(ctx);
}

/* ---- datasets ---- */

static void write_images(const char *path, int n, int h, int w, unsigned seed) {
    static buf b;
    uint32_t d[3] = {(uint32_t)n, (uint32_t)h, (uint32_t)w};
    header(&b, 0x08, 3, d);
    for (int i = 0; i < n * h * w; i++) put_u8(&b, (i * 37u + seed) & 0xFF);
    write_file(path, &b, 1);
}
static void write_labels(const char *path, int n, const unsigned char *lab) {
    static buf b;
    uint32_t d[1] = {(uint32_t)n};
    header(&b, 0x08, 1, d);
    put(&b, lab, (size_t)n);
    write_file(path, &b, 0);
}

static void test_dataset_load(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    char ip[512], lp[512];
    tu_tmp_path(ip, "ds_images.gz");
    tu_tmp_path(lp, "ds_labels");
    write_images(ip, 3, 2, 4, 11);
    unsigned char lab[4] = {0, 9, 4, 3};
    write_labels(lp, 3, lab);
    eqr_dataset ds;
    assert_int_equal(eqr_dataset_load_idx(ctx, ip, lp, 10, &ds), EQR_OK);
    assert_int_equal(ds.n, 3);
    assert_int_equal(ds.c, 1);
    assert_int_equal(ds.h, 2);
    assert_int_equal(ds.w, 4);
    assert_int_equal(ds.classes, 10);
    double ref[24];
    for (int i = 0; i < 24; i++) ref[i] = ((i * 37u + 11) & 0xFF) / 255.0;
    /* byte / 255 (or byte * (1 / 255)): <= 2 roundings */
    tu_assert_close_rel("images", ds.x, ref, NULL, 24, 2);
    for (int i = 0; i < 3; i++) assert_int_equal(ds.y[i], lab[i]);
    eqr_dataset_truncate(&ds, 5); /* larger than n: no change */
    assert_int_equal(ds.n, 3);
    eqr_dataset_truncate(&ds, 2);
    assert_int_equal(ds.n, 2);
    eqr_dataset_free(&ds);
    assert_null(ds.x);
    eqr_dataset_free(NULL);

    /* label outside [0, classes) */
    assert_int_equal(eqr_dataset_load_idx(ctx, ip, lp, 9, &ds), EQR_ERR_FORMAT);
    assert_null(ds.x);
    assert_null(ds.y);
    tu_assert_error(ctx, EQR_ERR_FORMAT, "label 9 of sample 1 is outside [0, 9)");
    assert_int_equal(eqr_dataset_load_idx(ctx, ip, lp, -1, &ds), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "classes");
    /* classes = 0: from the labels (largest 9 -> 10) */
    assert_int_equal(eqr_dataset_load_idx(ctx, ip, lp, 0, &ds), EQR_OK);
    assert_int_equal(ds.classes, 10);
    eqr_dataset_free(&ds);

    /* counts disagree */
    write_labels(lp, 4, lab);
    assert_int_equal(eqr_dataset_load_idx(ctx, ip, lp, 10, &ds), EQR_ERR_FORMAT);
    assert_null(ds.x);
    tu_assert_error(ctx, EQR_ERR_FORMAT, "3 images");

    /* images that are not [n,h,w] bytes, labels that are not [n] */
    assert_int_equal(eqr_dataset_load_idx(ctx, lp, lp, 10, &ds), EQR_ERR_FORMAT);
    tu_assert_error(ctx, EQR_ERR_FORMAT, "[n,h,w]");
    write_labels(lp, 3, lab);
    assert_int_equal(eqr_dataset_load_idx(ctx, ip, ip, 10, &ds), EQR_ERR_FORMAT);
    tu_assert_error(ctx, EQR_ERR_FORMAT, "labels [n]");

    /* a broken labels file after a good images file leaks nothing */
    write_plain(lp, (const unsigned char *)"\0\0\x08\x01\0\0", 6);
    assert_int_equal(eqr_dataset_load_idx(ctx, ip, lp, 10, &ds), EQR_ERR_FORMAT);
    assert_null(ds.x);
    tu_assert_error(ctx, EQR_ERR_FORMAT, "header");

    remove(ip);
    remove(lp);
    assert_int_equal(eqr_dataset_load_idx(ctx, ip, lp, 10, &ds), EQR_ERR_IO);
    tu_assert_error(ctx, EQR_ERR_IO, ip);

    /* Fashion-MNIST from a directory without the files: hint at the package */
    char dir[512];
    tu_tmp_path(dir, "no_such_dir");
    assert_int_equal(eqr_fashion_mnist_load(ctx, dir, 0, &ds), EQR_ERR_IO);
    assert_null(ds.x);
    tu_assert_error(ctx, EQR_ERR_IO, "install the Debian package dataset-fashion-mnist");
    eqr_ctx_destroy(ctx);
}

/* ---- batcher ---- */

enum { BN = 50, BB = 7 };

static void make_ds(eqr_dataset *ds, int64_t n) {
    ds->n = n;
    ds->c = 1;
    ds->h = 1;
    ds->w = 2;
    ds->classes = (int)n;
    ds->x = malloc((size_t)n * 2 * sizeof(float));
    ds->y = malloc((size_t)n * sizeof(int32_t));
    assert_non_null(ds->x);
    assert_non_null(ds->y);
    for (int64_t i = 0; i < n; i++) {
        ds->x[2 * i] = (float)i;
        ds->x[2 * i + 1] = -(float)i - 0.5f;
        ds->y[i] = (int32_t)i;
    }
}

/* Run `epochs` epochs and store the visited labels in seq (epochs * BN).
 * Checks batch sizes, x/y agreement and the end-of-epoch protocol. */
static void run_epochs(eqr_batcher *b, int epochs, int32_t *seq) {
    float x[BB * 2];
    int32_t y[BB];
    int64_t cnt;
    for (int e = 0; e < epochs; e++) {
        int64_t start = b->epoch;
        int k = 0, nb = 0;
        while (eqr_batcher_next(b, x, y, &cnt)) {
            int64_t expect = BN - k < BB ? BN - k : BB;
            assert_int_equal(cnt, expect);
            for (int i = 0; i < cnt; i++) {
                assert_true(x[2 * i] == (float)y[i]);
                assert_true(x[2 * i + 1] == -(float)y[i] - 0.5f);
                seq[e * BN + k++] = y[i];
            }
            nb++;
        }
        assert_int_equal(cnt, 0);
        assert_int_equal(k, BN);
        assert_int_equal(nb, (BN + BB - 1) / BB);
        assert_int_equal(b->epoch, start + 1);
        assert_int_equal(b->pos, 0);
    }
}

static int is_perm(const int32_t *s, int n) {
    int seen[BN] = {0};
    for (int i = 0; i < n; i++) {
        if (s[i] < 0 || s[i] >= n || seen[s[i]]) return 0;
        seen[s[i]] = 1;
    }
    return 1;
}

static void test_batcher(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    eqr_dataset ds;
    make_ds(&ds, BN);
    eqr_batcher a, b;
    static int32_t sa[3 * BN], sb[3 * BN], sc[3 * BN];
    assert_int_equal(eqr_batcher_init(ctx, &a, &ds, BB, 1, 77), EQR_OK);
    run_epochs(&a, 3, sa);
    for (int e = 0; e < 3; e++) assert_true(is_perm(sa + e * BN, BN));
    /* shuffled: not the identity, and epochs differ */
    int ident = 1;
    for (int i = 0; i < BN; i++) ident &= sa[i] == i;
    assert_false(ident);
    assert_true(memcmp(sa, sa + BN, BN * sizeof(int32_t)) != 0);
    assert_true(memcmp(sa + BN, sa + 2 * BN, BN * sizeof(int32_t)) != 0);

    /* equal seeds reproduce, other seeds differ */
    assert_int_equal(eqr_batcher_init(ctx, &b, &ds, BB, 1, 77), EQR_OK);
    run_epochs(&b, 3, sb);
    assert_memory_equal(sa, sb, sizeof sa);
    eqr_batcher_free(&b);
    assert_int_equal(eqr_batcher_init(ctx, &b, &ds, BB, 1, 78), EQR_OK);
    run_epochs(&b, 1, sb);
    assert_true(memcmp(sa, sb, BN * sizeof(int32_t)) != 0);
    eqr_batcher_free(&b);

    /* seek reproduces the sequence from any position, including mid-batch
     * positions and the end of an epoch */
    int64_t pos[4][2] = {{1, 14}, {0, 10}, {2, 0}, {1, BN}};
    assert_int_equal(eqr_batcher_init(ctx, &b, &ds, BB, 1, 77), EQR_OK);
    for (int t = 0; t < 4; t++) {
        assert_int_equal(eqr_batcher_seek(ctx, &b, pos[t][0], pos[t][1]), EQR_OK);
        int64_t k = pos[t][0] * BN + pos[t][1];
        float x[BB * 2];
        int32_t y[BB];
        int64_t cnt;
        while (k < 3 * BN) {
            if (!eqr_batcher_next(&b, x, y, &cnt)) continue;
            for (int i = 0; i < cnt; i++) assert_int_equal(y[i], sa[k++]);
        }
        assert_int_equal(k, 3 * BN);
    }
    /* bad seeks */
    assert_int_equal(eqr_batcher_seek(ctx, &b, 0, BN + 1), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "out of range");
    assert_int_equal(eqr_batcher_seek(ctx, &b, -1, 0), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "out of range");
    eqr_batcher_free(&b);
    eqr_batcher_free(&a);
    eqr_batcher_free(NULL);

    /* no shuffling: identity order every epoch, y may be NULL */
    assert_int_equal(eqr_batcher_init(ctx, &b, &ds, BB, 0, 77), EQR_OK);
    run_epochs(&b, 2, sc);
    for (int i = 0; i < 2 * BN; i++) assert_int_equal(sc[i], i % BN);
    float x[BB * 2];
    int64_t cnt;
    assert_int_equal(eqr_batcher_next(&b, x, NULL, &cnt), 1);
    assert_int_equal(cnt, BB);
    eqr_batcher_free(&b);

    /* bad arguments */
    assert_int_equal(eqr_batcher_init(ctx, &b, &ds, 0, 1, 1), EQR_ERR_ARG);
    assert_null(b.perm);
    tu_assert_error(ctx, EQR_ERR_ARG, "batch");
    eqr_dataset empty = {0};
    assert_int_equal(eqr_batcher_init(ctx, &b, &empty, 4, 1, 1), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "empty");
    assert_int_equal(eqr_batcher_next(&b, x, NULL, &cnt), 0);
    eqr_dataset_free(&ds);
    eqr_ctx_destroy(ctx);
}

/* ---- the real Fashion-MNIST files, when installed ---- */

static void check_split(eqr_ctx *ctx, int train, int64_t n) {
    eqr_dataset ds;
    if (eqr_fashion_mnist_load(ctx, NULL, train, &ds) != EQR_OK)
        fail_msg("fashion-mnist %s: %s", train ? "train" : "test", eqr_error_message(ctx));
    assert_int_equal(ds.n, n);
    assert_int_equal(ds.c, 1);
    assert_int_equal(ds.h, 28);
    assert_int_equal(ds.w, 28);
    assert_int_equal(ds.classes, 10);
    int64_t hist[10] = {0};
    for (int64_t i = 0; i < n; i++) {
        assert_true(ds.y[i] >= 0 && ds.y[i] < 10);
        hist[ds.y[i]]++;
    }
    for (int k = 0; k < 10; k++) assert_int_equal(hist[k], n / 10);
    double mn = 1, mx = 0, mean = 0;
    for (int64_t i = 0; i < n * 784; i++) {
        mn = fmin(mn, ds.x[i]);
        mx = fmax(mx, ds.x[i]);
        mean += ds.x[i];
    }
    mean /= (double)(n * 784);
    assert_true(mn == 0.0 && mx == 1.0);
    /* Fashion-MNIST's mean pixel is about 0.286 */
    assert_true(fabs(mean - 0.286) < 0.01);
    eqr_dataset_free(&ds);
}

static void test_fashion_mnist_real(void **state) {
    (void)state;
    if (access("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", R_OK) != 0) {
        print_message("fashion-mnist not installed; skipped\n");
        skip();
    }
    eqr_ctx *ctx = tu_ctx(1);
    check_split(ctx, 0, 10000);
    check_split(ctx, 1, 60000);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_types),
        cmocka_unit_test(test_reject_header),
        cmocka_unit_test(test_reject_payload),
        cmocka_unit_test(test_reject_gzip),
        cmocka_unit_test(test_missing_and_state),
        cmocka_unit_test(test_dataset_load),
        cmocka_unit_test(test_batcher),
        cmocka_unit_test(test_fashion_mnist_real),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
