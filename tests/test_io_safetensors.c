/* safetensors: round trip of the store (names needing JSON escapes, scalars,
 * empty tensors, buffers on request, NaN/inf/-0 bits); the exact bytes the
 * format specifies; a hand-written file with F16/BF16/F64; every class of
 * malformed header refused with the store unchanged; name matching as for
 * checkpoints. With arguments it is the C side of safetensors_check.py,
 * the independent reader:
 *   test_io_safetensors export DIR      writes DIR/c.safetensors and DIR/c.dump
 *   test_io_safetensors import FILE DUMP loads FILE strictly into a store
 *                                        built from DUMP and compares bits. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <equirelax/safetensors.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static void write_all(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* u64 length + header + buffer, as one file */
static void write_st(const char *path, const char *hdr, const void *data, size_t ndata) {
    size_t h = strlen(hdr);
    unsigned char *b = malloc(8 + h + ndata + 1);
    assert_non_null(b);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, hdr, h);
    if (ndata) memcpy(b + 8 + h, data, ndata);
    write_all(path, b, 8 + h + ndata);
    free(b);
}

/* ---- the model of the round trip ---- */

static const char *const NAMES[5] = {"conv.weight", "q\"uote\\back", "\xc3\xa9t\xc3\xa9.w",
                                     "ctl\x01x", "bn.running_mean"};

static eqr_ctx *build(uint64_t seed) {
    eqr_ctx *ctx = tu_ctx(seed);
    int64_t s0[4] = {2, 3, 1, 2}, s1[1] = {5}, s3[2] = {0, 3}, s4[1] = {3};
    assert_non_null(eqr_param_create(ctx, NAMES[0], 4, s0, 0));
    assert_non_null(eqr_param_create(ctx, NAMES[1], 1, s1, EQR_PARAM_NO_DECAY));
    assert_non_null(eqr_param_create(ctx, NAMES[2], 0, NULL, EQR_PARAM_FROZEN));
    assert_non_null(eqr_param_create(ctx, NAMES[3], 2, s3, 0));
    assert_non_null(eqr_param_create(ctx, NAMES[4], 1, s4, EQR_PARAM_BUFFER));
    for (int i = 0; i < eqr_param_num_tensors(ctx); i++)
        eqr_tensor_normal(eqr_param_at(ctx, i), eqr_ctx_rng(ctx), 1.0f);
    float *w = eqr_param_at(ctx, 0)->data; /* bit patterns a text format would lose */
    w[0] = -0.0f;
    w[1] = from_bits(0x7FC01234u); /* NaN with a payload */
    w[2] = from_bits(0xFF800000u); /* -inf */
    w[3] = from_bits(0x00000001u); /* smallest subnormal */
    return ctx;
}

static float *copy_block(eqr_ctx *ctx) {
    size_t n = (size_t)eqr_param_num_scalars(ctx) * sizeof(float);
    float *c = malloc(n + 1);
    assert_non_null(c);
    memcpy(c, eqr_param_data_block(ctx), n);
    return c;
}

static void assert_entry_bits(eqr_ctx *a, eqr_ctx *b, int i) {
    eqr_tensor *x = eqr_param_at(a, i), *y = eqr_param_at(b, i);
    assert_int_equal(x->numel, y->numel);
    if (x->numel) assert_memory_equal(x->data, y->data, (size_t)x->numel * sizeof(float));
}

static void test_roundtrip(void **state) {
    (void)state;
    char path[512], tmp[600];
    tu_tmp_path(path, "rt.safetensors");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    eqr_ctx *a = build(1);
    const char *mk[1] = {"note"}, *mv[1] = {"a \"quoted\"\nline"};
    eqr_safetensors_opts so = {.meta_keys = mk, .meta_values = mv, .nmeta = 1};
    assert_int_equal(eqr_safetensors_save(a, path, &so), EQR_OK);
    assert_int_equal(access(tmp, F_OK), -1);

    /* without buffers: a strict load needs skip_buffers; the buffer stays */
    eqr_ctx *b = build(2);
    float *buf_before = copy_block(b);
    assert_int_equal(eqr_safetensors_load(b, path, NULL, NULL), EQR_ERR_MISMATCH);
    tu_assert_error(b, EQR_ERR_MISMATCH, "'bn.running_mean' [3]");
    assert_memory_equal(buf_before, eqr_param_data_block(b), (size_t)eqr_param_num_scalars(b) * 4);
    eqr_load_opts lo = {.skip_buffers = 1};
    eqr_load_report rep;
    if (eqr_safetensors_load(b, path, &lo, &rep) != EQR_OK)
        fail_msg("load: %s", eqr_error_message(b));
    for (int i = 0; i < 4; i++) assert_entry_bits(a, b, i);
    assert_memory_equal(eqr_param_at(b, 4)->data, buf_before + eqr_param_offset(b, 4), 3 * 4);
    assert_int_equal(rep.loaded, 4);
    assert_int_equal(rep.skipped, 1);
    assert_int_equal(rep.missing + rep.unexpected, 0);
    free(buf_before);

    /* with buffers: strict load restores everything */
    so.include_buffers = 1;
    assert_int_equal(eqr_safetensors_save(a, path, &so), EQR_OK);
    eqr_ctx *c = build(3);
    assert_int_equal(eqr_safetensors_load(c, path, NULL, &rep), EQR_OK);
    for (int i = 0; i < 5; i++) assert_entry_bits(a, c, i);
    assert_int_equal(rep.loaded, 5);
    eqr_ctx_destroy(c);
    eqr_ctx_destroy(b);
    eqr_ctx_destroy(a);
    remove(path);
}

/* The bytes the format prescribes for one tensor "w" = [1, -2]. */
static void test_byte_exact(void **state) {
    (void)state;
    char path[512];
    tu_tmp_path(path, "exact.safetensors");
    eqr_ctx *ctx = tu_ctx(5);
    int64_t s[1] = {2};
    eqr_tensor *w = eqr_param_create(ctx, "w", 1, s, 0);
    assert_non_null(w);
    w->data[0] = 1.0f;
    w->data[1] = -2.0f;
    assert_int_equal(eqr_safetensors_save(ctx, path, NULL), EQR_OK);
    size_t n;
    unsigned char *b = read_all(path, &n);
    assert_non_null(b);
    char lib[64];
    snprintf(lib, sizeof lib, "equirelax %d.%d.%d", EQUIRELAX_VERSION_MAJOR,
             EQUIRELAX_VERSION_MINOR, EQUIRELAX_VERSION_PATCH);
    assert_string_equal(lib, "equirelax 0.1.0"); /* the literal below */
    static const char hdr[] = "{\"__metadata__\":{\"library\":\"equirelax 0.1.0\"},"
                              "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"
                              "     "; /* 99 bytes + 5 spaces: the buffer starts 8-aligned */
    static const unsigned char head[8] = {104, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned char data[8] = {0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0};
    assert_int_equal(sizeof hdr - 1, 104);
    assert_int_equal(n, 8 + 104 + 8);
    assert_memory_equal(b, head, 8);
    assert_memory_equal(b + 8, hdr, 104);
    assert_memory_equal(b + 112, data, 8);
    free(b);

    /* a hand-written file: other whitespace, offsets not in key order, the
     * float dtypes converted exactly (F64 0.1 rounds to the float nearest) */
    static const char h2[] =
        "{ \"c\" : {\"data_offsets\": [14, 22], \"dtype\": \"F64\", \"shape\": [1]},\n"
        "  \"a\": {\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]},\r\n"
        "\t\"b\": {\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[6,14]},"
        " \"__metadata__\": {\"format\": \"pt\", \"\\u00e9\\ud83d\\ude00\": \"x\"} }";
    unsigned char d2[22] = {0x00, 0x3C,  /* F16 1.0 */
                            0x01, 0x00,  /* F16 smallest subnormal 2^-24 */
                            0x00, 0xFC,  /* F16 -inf */
                            0x80, 0x3F, 0x00, 0xC0, 0x49, 0x40, 0x00, 0x80}; /* BF16 1, -2, pi~, -0 */
    double tenth = 0.1;
    memcpy(d2 + 14, &tenth, 8); /* host is little-endian (x86-64/aarch64) */
    write_st(path, h2, d2, sizeof d2);
    eqr_ctx *c2 = tu_ctx(6);
    int64_t s3[1] = {3}, s22[2] = {2, 2}, s1[1] = {1};
    eqr_tensor *ta = eqr_param_create(c2, "a", 1, s3, 0), *tb = eqr_param_create(c2, "b", 2, s22, 0),
               *tc = eqr_param_create(c2, "c", 1, s1, 0);
    assert_non_null(tc);
    if (eqr_safetensors_load(c2, path, NULL, NULL) != EQR_OK)
        fail_msg("hand-written file: %s", eqr_error_message(c2));
    assert_true(ta->data[0] == 1.0f);
    assert_true(ta->data[1] == 5.9604644775390625e-8f);
    assert_int_equal(bits(ta->data[2]), 0xFF800000u);
    assert_true(tb->data[0] == 1.0f && tb->data[1] == -2.0f);
    assert_int_equal(bits(tb->data[2]), 0x40490000u);
    assert_int_equal(bits(tb->data[3]), 0x80000000u);
    assert_true(tc->data[0] == (float)0.1);
    eqr_ctx_destroy(c2);
    eqr_ctx_destroy(ctx);
    remove(path);
}

/* ---- malformed files ---- */

typedef struct bad_case {
    const char *hdr;
    size_t ndata;   /* buffer bytes after the header */
    const char *needle;
} bad_case;

/* The store: "a" [2] and "b" scalar; a valid file has 12 buffer bytes. */
#define OK_A "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
#define OK_B "\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[8,12]}"

static const bad_case BAD[] = {
    {"", 12, "start with '{'"},
    {" {" OK_A "," OK_B "}", 12, "start with '{'"},
    {"[" OK_A "]", 12, "start with '{'"},
    {"{" OK_A "," OK_B, 12, "ends where '}'"},
    {"{" OK_A "," OK_B ",}", 12, "tensor name (string) expected"},
    {"{" OK_A "," OK_B "}x", 12, "after the header's closing"},
    {"{" OK_A "," OK_B "}{}", 12, "after the header's closing"},
    {"{" OK_A " " OK_B "}", 12, "'}' expected"},
    {"{\"a\" " "{}}", 12, "':' expected"},
    {"{\"a\xff\":{}}", 12, "invalid UTF-8"},
    {"{\"a\xc0\x80\":{}}", 12, "invalid UTF-8"},         /* overlong NUL */
    {"{\"a\xed\xa0\x80\":{}}", 12, "invalid UTF-8"},     /* UTF-8 surrogate */
    {"{\"a\x01\":{}}", 12, "control character"},
    {"{\"a\\q\":{}}", 12, "bad escape"},
    {"{\"a\\u12\":{}}", 12, "bad \\u escape"},
    {"{\"a\\ud800\":{}}", 12, "unpaired high surrogate"},
    {"{\"a\\udc00\":{}}", 12, "unpaired low surrogate"},
    {"{\"a\\u0000\":{}}", 12, "NUL"},
    {"{\"a", 12, "unterminated string"},
    {"{\"\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4, "empty tensor name"},
    {"{\"a\":[]}", 12, "'{' expected"},
    {"{\"a\":{}}", 12, "has no dtype"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 12, "lacks data_offsets"},
    {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "lacks dtype"},
    {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "lacks shape"},
    {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
     "given twice"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1}}", 8, "unknown key"},
    {"{\"a\":{\"dtype\":\"F31\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype 'F31'"},
    {"{\"a\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "'\"' expected"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, "'[' expected"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "non-negative integer"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, "fraction"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2e0],\"data_offsets\":[0,8]}}", 8, "exponent"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", 8, "leading zero"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,],\"data_offsets\":[0,8]}}", 8, "non-negative integer"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", 8,
     "too large"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
     "more than 6"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
     "shape too large"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "[begin, end]"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8, "more than 2"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "do not hold"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "do not hold 2 F32"},
    {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "do not hold 2 F16"},
    {"{" OK_A "," OK_B "}", 16, "cover only 12 bytes of the buffer but it has 16"},
    {"{" OK_A "," OK_B "}", 8, "need 12 bytes"},
    {"{" OK_A ",\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[12,16]}}", 16, "(gap)"},
    {"{" OK_A ",\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[4,8]}}", 8, "(overlap)"},
    {"{" OK_A ",\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 8, "(overlap)"},
    {"{\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[4,8]}}", 8, "(gap)"},
    {"{" OK_A ",\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16,
     "'a' appears twice"},
    {"{\"__metadata__\":{},\"__metadata__\":{}," OK_A "," OK_B "}", 12, "__metadata__ given twice"},
    {"{\"__metadata__\":{\"k\":1}," OK_A "," OK_B "}", 12, "values must be strings"},
    {"{\"__metadata__\":{\"k\":{\"x\":\"y\"}}," OK_A "," OK_B "}", 12, "values must be strings"},
    {"{\"__metadata__\":[]," OK_A "," OK_B "}", 12, "'{' expected"},
};

typedef struct store {
    eqr_ctx *ctx;
    eqr_tensor *a, *b;
} store;

static store mk_store(void) {
    store s;
    s.ctx = tu_ctx(7);
    int64_t s2[1] = {2};
    s.a = eqr_param_create(s.ctx, "a", 1, s2, 0);
    s.b = eqr_param_create(s.ctx, "b", 0, NULL, 0);
    assert_non_null(s.b);
    s.a->data[0] = 11.0f;
    s.a->data[1] = 12.0f;
    s.b->data[0] = 13.0f;
    return s;
}

static void expect_refused(store *s, const char *path, eqr_status want, const char *needle) {
    float a0 = s->a->data[0], a1 = s->a->data[1], b0 = s->b->data[0];
    eqr_status got = eqr_safetensors_load(s->ctx, path, NULL, NULL);
    if (got != want)
        fail_msg("expected %s, got %s (%s)", eqr_status_name(want), eqr_status_name(got),
                 eqr_error_message(s->ctx));
    if (!strstr(eqr_error_message(s->ctx), needle))
        fail_msg("message '%s' lacks '%s'", eqr_error_message(s->ctx), needle);
    eqr_error_clear(s->ctx);
    assert_true(s->a->data[0] == a0 && s->a->data[1] == a1 && s->b->data[0] == b0);
}

static void test_malformed_refused(void **state) {
    (void)state;
    char path[512];
    tu_tmp_path(path, "bad.safetensors");
    store s = mk_store();
    unsigned char data[32];
    for (int i = 0; i < 32; i++) data[i] = (unsigned char)(0x40 + i);
    /* the valid file loads (so the refusals below come from the damage) */
    write_st(path, "{" OK_A "," OK_B "}", data, 12);
    assert_int_equal(eqr_safetensors_load(s.ctx, path, NULL, NULL), EQR_OK);
    for (size_t k = 0; k < sizeof BAD / sizeof BAD[0]; k++) {
        s.a->data[0] = 11.0f;
        write_st(path, BAD[k].hdr, data, BAD[k].ndata);
        print_message("case %zu\n", k);
        expect_refused(&s, path, EQR_ERR_FORMAT, BAD[k].needle);
    }
    /* the header length itself: short file, beyond the file, beyond 100 MB */
    write_all(path, "\x05\0\0", 3);
    expect_refused(&s, path, EQR_ERR_FORMAT, "truncated");
    unsigned char len[8 + 4] = {0xFF, 0xFF, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
    write_all(path, len, sizeof len);
    expect_refused(&s, path, EQR_ERR_FORMAT, "announces a 65535-byte header");
    len[0] = 0x01, len[1] = 0xE1, len[2] = 0xF5, len[3] = 0x05; /* 100000001 */
    write_all(path, len, sizeof len);
    expect_refused(&s, path, EQR_ERR_FORMAT, "limit 100000000");
    len[0] = 0xFF, len[1] = len[2] = len[3] = 0xFF;
    len[7] = 0xFF; /* 2^64 - ish */
    write_all(path, len, sizeof len);
    expect_refused(&s, path, EQR_ERR_FORMAT, "limit");
    /* not there / a directory */
    char none[512];
    tu_tmp_path(none, "none.safetensors");
    expect_refused(&s, none, EQR_ERR_IO, "cannot open");
    eqr_ctx_destroy(s.ctx);
    remove(path);
}

static void test_matching(void **state) {
    (void)state;
    char path[512];
    tu_tmp_path(path, "match.safetensors");
    store s = mk_store();
    unsigned char data[40] = {0};
    /* shape mismatch: refused in both modes */
    write_st(path,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[12,16]}}",
             data, 16);
    expect_refused(&s, path, EQR_ERR_MISMATCH, "'a' [3] in the file, [2] in the model");
    eqr_load_opts part = {.mode = EQR_LOAD_PARTIAL};
    assert_int_equal(eqr_safetensors_load(s.ctx, path, &part, NULL), EQR_ERR_MISMATCH);
    eqr_error_clear(s.ctx);
    assert_true(s.a->data[0] == 11.0f && s.b->data[0] == 13.0f);
    /* an integer dtype for a store entry: refused; for another name: validated, not read */
    write_st(path,
             "{\"a\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[8,12]}}",
             data, 12);
    expect_refused(&s, path, EQR_ERR_MISMATCH, "'a' as I32");
    float one = 1.0f;
    memcpy(data + 16, &one, 4);
    write_st(path,
             "{\"pos\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[16,20]},"
             "\"averyveryveryveryveryveryveryveryveryveryveryveryveryverylongname.weight\":"
             "{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[20,20]}}",
             data, 20);
    expect_refused(&s, path, EQR_ERR_MISMATCH, "1 not in the file: 'a' [2]");
    eqr_load_report rep;
    assert_int_equal(eqr_safetensors_load(s.ctx, path, &part, &rep), EQR_OK);
    assert_true(s.b->data[0] == 1.0f && s.a->data[0] == 11.0f);
    assert_int_equal(rep.loaded, 1);
    assert_int_equal(rep.missing, 1);
    assert_int_equal(rep.unexpected, 2);
    assert_string_equal(rep.missing_names[0], "a");
    assert_string_equal(rep.unexpected_names[0], "pos");
    assert_non_null(strstr(rep.unexpected_names[1], "averyvery"));
    eqr_ctx_destroy(s.ctx);
    remove(path);
}

static void test_save_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(8);
    int64_t s1[1] = {1};
    assert_non_null(eqr_param_create(ctx, "bad\xff", 1, s1, 0));
    char path[512];
    tu_tmp_path(path, "save.safetensors");
    assert_int_equal(eqr_safetensors_save(ctx, path, NULL), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "not UTF-8");
    assert_int_equal(access(path, F_OK), -1);
    eqr_ctx_destroy(ctx);
    ctx = tu_ctx(8);
    assert_non_null(eqr_param_create(ctx, "ok", 1, s1, 0));
    const char *k[1] = {"library"}, *v[1] = {"x"};
    eqr_safetensors_opts o = {.meta_keys = k, .meta_values = v, .nmeta = 1};
    assert_int_equal(eqr_safetensors_save(ctx, path, &o), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "reserved");
    assert_int_equal(eqr_safetensors_save(ctx, "/nonexistent-eqr-dir/x.safetensors", NULL), EQR_ERR_IO);
    tu_assert_error(ctx, EQR_ERR_IO, "No such file");
    assert_int_equal(eqr_safetensors_save(ctx, "", NULL), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "path");
    eqr_ctx_destroy(ctx);
}

/* ---- the C side of tests/safetensors_check.py ---- */

static void hex_name(FILE *f, const char *s) {
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) fprintf(f, "%02x", *c);
}

static int mode_export(const char *dir) {
    char path[1024], dump[1024];
    snprintf(path, sizeof path, "%s/c.safetensors", dir);
    snprintf(dump, sizeof dump, "%s/c.dump", dir);
    eqr_ctx *ctx = build(11);
    eqr_safetensors_opts so = {.include_buffers = 1};
    if (eqr_safetensors_save(ctx, path, &so) != EQR_OK) {
        fprintf(stderr, "%s\n", eqr_error_message(ctx));
        return 1;
    }
    FILE *f = fopen(dump, "w");
    if (!f) return 1;
    fprintf(f, "library equirelax %d.%d.%d\n", EQUIRELAX_VERSION_MAJOR, EQUIRELAX_VERSION_MINOR,
            EQUIRELAX_VERSION_PATCH);
    for (int i = 0; i < eqr_param_num_tensors(ctx); i++) {
        eqr_tensor *t = eqr_param_at(ctx, i);
        hex_name(f, eqr_param_name(ctx, i));
        fprintf(f, " %d", t->ndim);
        for (int d = 0; d < t->ndim; d++) fprintf(f, " %lld", (long long)t->shape[d]);
        fprintf(f, " %lld", (long long)t->numel);
        for (int64_t e = 0; e < t->numel; e++) fprintf(f, " %08x", bits(t->data[e]));
        fprintf(f, "\n");
    }
    fclose(f);
    eqr_ctx_destroy(ctx);
    return 0;
}

static int mode_import(const char *path, const char *dump) {
    FILE *f = fopen(dump, "r");
    if (!f) return 1;
    eqr_ctx *ctx = tu_ctx(12);
    char hex[200];
    int nd, bad = 0, count = 0;
    static uint32_t want[64][64];
    while (fscanf(f, "%199s %d", hex, &nd) == 2) {
        char name[100] = {0};
        for (size_t i = 0; 2 * i + 1 < strlen(hex) && i < 99; i++) {
            unsigned v;
            sscanf(hex + 2 * i, "%2x", &v);
            name[i] = (char)v;
        }
        int64_t shape[6];
        long long x, numel;
        for (int d = 0; d < nd; d++) {
            if (fscanf(f, "%lld", &x) != 1) return 1;
            shape[d] = x;
        }
        if (fscanf(f, "%lld", &numel) != 1 || numel > 64 || count >= 64) return 1;
        for (long long e = 0; e < numel; e++)
            if (fscanf(f, "%x", &want[count][e]) != 1) return 1;
        if (!eqr_param_create(ctx, name, nd, shape, 0)) {
            fprintf(stderr, "%s\n", eqr_error_message(ctx));
            return 1;
        }
        count++;
    }
    fclose(f);
    if (eqr_safetensors_load(ctx, path, NULL, NULL) != EQR_OK) {
        fprintf(stderr, "import: %s\n", eqr_error_message(ctx));
        return 1;
    }
    for (int i = 0; i < count; i++) {
        eqr_tensor *t = eqr_param_at(ctx, i);
        for (int64_t e = 0; e < t->numel; e++)
            if (bits(t->data[e]) != want[i][e]) {
                fprintf(stderr, "'%s'[%lld]: %08x, expected %08x\n", eqr_param_name(ctx, i),
                        (long long)e, bits(t->data[e]), want[i][e]);
                bad = 1;
            }
    }
    printf("imported %d tensors from %s: %s\n", count, path, bad ? "MISMATCH" : "all bits equal");
    eqr_ctx_destroy(ctx);
    return bad;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "export")) return mode_export(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "import")) return mode_import(argv[2], argv[3]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_byte_exact),
        cmocka_unit_test(test_malformed_refused),
        cmocka_unit_test(test_matching),
        cmocka_unit_test(test_save_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
