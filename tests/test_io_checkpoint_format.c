/* Checkpoints, the file itself: round trip of parameters, buffers,
 * optimizer state, RNG and counters; the documented byte layout; corrupt
 * and mismatched files rejected with memory unchanged; failed saves leave
 * nothing behind. Loading by name is in test_io_checkpoint_byname.c,
 * resuming training in test_io_checkpoint_resume.c. */

#define _POSIX_C_SOURCE 200809L
#include "testutil.h"
#include "tu_checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a small model with every kind of store entry ---- */

static int exists(const char *path) { return access(path, F_OK) == 0; }

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static void write_all(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void test_roundtrip(void **state) {
    (void)state;
    char path[512], tmp[600];
    tu_tmp_path(path, "roundtrip.ckpt");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    const eqr_optim_kind kinds[3] = {EQR_OPTIM_SGD, EQR_OPTIM_ADAM, EQR_OPTIM_ADAMW};
    for (int k = 0; k < 3; k++) {
        eqr_ctx *a = tu_ckpt_build(1, &TU_CKPT_BASE);
        eqr_optim *oa = tu_ckpt_opt(a, kinds[k], 3);
        eqr_optim_set_lr(oa, 0.0123f);
        for (int i = 0; i < 5; i++) eqr_rng_u64(eqr_ctx_rng(a)); /* RNG moved past its seed */
        uint64_t ca[3] = {7, 123456789012345ull, UINT64_MAX};
        assert_int_equal(eqr_checkpoint_save(a, path, oa, ca, 3), EQR_OK);
        assert_true(exists(path));
        assert_false(exists(tmp));
        tu_ckpt_snap sa = tu_ckpt_take_snap(a, oa, ca, 3);

        /* a model built from another seed holds other values everywhere */
        eqr_ctx *b = tu_ckpt_build(2, &TU_CKPT_BASE);
        eqr_optim *ob = tu_ckpt_opt(b, kinds[k], 1);
        uint64_t cb[3] = {0, 0, 0};
        tu_ckpt_snap sb = tu_ckpt_take_snap(b, ob, cb, 3);
        assert_memory_not_equal(sa.data, sb.data, (size_t)sa.total * sizeof(float));
        assert_int_equal(eqr_checkpoint_load(b, path, ob, cb, 3), EQR_OK);
        tu_ckpt_assert_snap(&sa, b, ob, cb, 3); /* params, buffers, frozen, state, steps, lr, RNG */
        assert_int_equal(eqr_optim_num_steps(ob), 3);
        tu_ckpt_free_snap(&sb);
        tu_ckpt_free_snap(&sa);
        eqr_optim_destroy(ob);
        eqr_ctx_destroy(b);
        eqr_optim_destroy(oa);
        eqr_ctx_destroy(a);
    }
    /* without optimizer or counters; and saving over an existing checkpoint */
    eqr_ctx *a = tu_ckpt_build(3, &TU_CKPT_BASE);
    assert_int_equal(eqr_checkpoint_save(a, path, NULL, NULL, 0), EQR_OK);
    assert_false(exists(tmp));
    tu_ckpt_snap sa = tu_ckpt_take_snap(a, NULL, NULL, 0);
    eqr_ctx *b = tu_ckpt_build(4, &TU_CKPT_BASE);
    assert_int_equal(eqr_checkpoint_load(b, path, NULL, NULL, 0), EQR_OK);
    tu_ckpt_assert_snap(&sa, b, NULL, NULL, 0);
    tu_ckpt_free_snap(&sa);
    /* a file with optimizer state loads into a model without optimizer */
    eqr_optim *oa = tu_ckpt_opt(a, EQR_OPTIM_ADAM, 2);
    assert_int_equal(eqr_checkpoint_save(a, path, oa, NULL, 0), EQR_OK);
    sa = tu_ckpt_take_snap(a, NULL, NULL, 0);
    assert_int_equal(eqr_checkpoint_load(b, path, NULL, NULL, 0), EQR_OK);
    tu_ckpt_assert_snap(&sa, b, NULL, NULL, 0);
    tu_ckpt_free_snap(&sa);
    eqr_optim_destroy(oa);
    eqr_ctx_destroy(b);
    eqr_ctx_destroy(a);
    remove(path);
}

/* The documented on-disk layout, byte for byte: little-endian whatever the
 * host, so checkpoints move between machines. */
static void test_byte_layout(void **state) {
    (void)state;
    char path[512];
    tu_tmp_path(path, "layout.ckpt");
    eqr_ctx *ctx = tu_ctx(5);
    int64_t s[1] = {2};
    eqr_tensor *w = eqr_param_create(ctx, "w", 1, s, EQR_PARAM_NO_DECAY);
    assert_non_null(w);
    w->data[0] = 1.0f;  /* 0x3F800000 */
    w->data[1] = -2.0f; /* 0xC0000000 */
    eqr_rng *r = eqr_ctx_rng(ctx);
    r->s[0] = 0x0102030405060708ull;
    r->s[1] = r->s[2] = r->s[3] = 0;
    const uint64_t cnt[1] = {0x1122334455667788ull};
    assert_int_equal(eqr_checkpoint_save(ctx, path, NULL, cnt, 1), EQR_OK);
    size_t n;
    unsigned char *b = read_all(path, &n);
    static const unsigned char want[] = {
        'E', 'Q', 'R', 'C', 'K', 'P', 'T', '1', 2, 0, 0, 0, /* magic, version 2 */
        0, 0, 0, 0, /* crc32 (not compared) */
        129, 0, 0, 0, 0, 0, 0, 0, /* payload bytes */
        'P', 'A', 'R', 'M', 33, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* section, 1 param */
        1, 0, 0, 0, 'w', 1, 0, 0, 0, 1, 0, 0, 0, /* name "w", NO_DECAY, ndim 1 */
        2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0, /* shape [2], data */
        'O', 'P', 'T', 'M', 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* no optimizer */
        'R', 'N', 'G', ' ', 32, 0, 0, 0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1, /* s[0] */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        'C', 'N', 'T', 'R', 12, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* one counter */
        0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
    };
    assert_int_equal(n, sizeof want);
    memset(b + 12, 0, 4);
    assert_memory_equal(b, want, n);
    free(b);

    /* optimizer state: slot-major, each parameter's floats packed in PARM
     * order (the store's alignment gap between "w" and "v" is not saved) */
    int64_t s1[1] = {1};
    eqr_tensor *v = eqr_param_create(ctx, "v", 1, s1, 0);
    assert_non_null(v);
    v->data[0] = 0.5f; /* 0x3F000000 */
    eqr_optim_opts oo = {.kind = EQR_OPTIM_SGD, .lr = 1.0f, .momentum = 0.5f};
    eqr_optim *opt = eqr_optim_create(ctx, &oo);
    assert_non_null(opt);
    float *st = eqr_optim_state(opt);
    assert_int_equal(eqr_optim_num_state_floats(opt), eqr_param_num_scalars(ctx));
    st[eqr_param_offset(ctx, 0)] = 2.0f;     /* 0x40000000 */
    st[eqr_param_offset(ctx, 0) + 1] = 4.0f; /* 0x40800000 */
    st[eqr_param_offset(ctx, 1)] = -1.0f;    /* 0xBF800000 */
    eqr_optim_set_num_steps(opt, 3);
    assert_int_equal(eqr_checkpoint_save(ctx, path, opt, NULL, 0), EQR_OK);
    b = read_all(path, &n);
    static const unsigned char optm[] = {
        'O', 'P', 'T', 'M', 36, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 36 bytes, present */
        0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x3F,   /* SGD, 3 steps, lr 1 */
        1, 0, 0, 0,                                             /* one slot (momentum) */
        0, 0, 0, 0x40, 0, 0, 0x80, 0x40, 0, 0, 0x80, 0xBF,      /* w[0], w[1], v[0] */
        'R', 'N', 'G', ' '};
    /* header, PARM tag/size/count, then "w" (29 bytes) and "v" (25 bytes) */
    size_t at = 24 + 12 + 4 + 29 + 25;
    assert_true(n > at + sizeof optm);
    assert_memory_equal(b + at, optm, sizeof optm);
    free(b);
    eqr_optim_destroy(opt);
    eqr_ctx_destroy(ctx);
    remove(path);
}

static void save_reference(char *path) {
    tu_tmp_path(path, "ref.ckpt");
    eqr_ctx *a = tu_ckpt_build(1, &TU_CKPT_BASE);
    eqr_optim *oa = tu_ckpt_opt(a, EQR_OPTIM_ADAM, 2);
    uint64_t c[3] = {1, 2, 3};
    assert_int_equal(eqr_checkpoint_save(a, path, oa, c, 3), EQR_OK);
    eqr_optim_destroy(oa);
    eqr_ctx_destroy(a);
}

static void test_corrupt_rejected(void **state) {
    (void)state;
    char ref[512], bad[512];
    save_reference(ref);
    tu_tmp_path(bad, "bad.ckpt");
    size_t n;
    unsigned char *img = read_all(ref, &n);
    unsigned char *cp = malloc(n + 1);
    assert_non_null(cp);
    tu_ckpt_target t = tu_ckpt_make_target(&TU_CKPT_BASE, EQR_OPTIM_ADAM);

    /* the untouched file loads (so the rejections below are due to the damage) */
    write_all(bad, img, n);
    tu_ckpt_target t2 = tu_ckpt_make_target(&TU_CKPT_BASE, EQR_OPTIM_ADAM);
    assert_int_equal(eqr_checkpoint_load(t2.ctx, bad, t2.opt, t2.counters, 3), EQR_OK);
    tu_ckpt_free_target(&t2);

    /* truncated at several lengths, down to empty */
    const size_t lens[] = {0, 5, 8, 12, 23, 24, 40, n / 2, n - 4, n - 1};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        write_all(bad, img, lens[i]);
        tu_ckpt_expect_reject(&t, bad, 3, EQR_ERR_FORMAT, "truncated", bad, NULL);
    }
    /* one extra byte */
    memcpy(cp, img, n);
    cp[n] = 0;
    write_all(bad, cp, n + 1);
    tu_ckpt_expect_reject(&t, bad, 3, EQR_ERR_FORMAT, "oversized", NULL, NULL);
    /* a flipped byte anywhere in the payload (parameter data, optimizer
     * state, RNG, counters) fails the checksum */
    const size_t pos[] = {24, 40, n / 3, n / 2, n - 40, n - 1};
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++) {
        memcpy(cp, img, n);
        cp[pos[i]] ^= 0x10;
        write_all(bad, cp, n);
        tu_ckpt_expect_reject(&t, bad, 3, EQR_ERR_FORMAT, "checksum", NULL, NULL);
    }
    /* a flipped checksum itself */
    memcpy(cp, img, n);
    cp[13] ^= 0x01;
    write_all(bad, cp, n);
    tu_ckpt_expect_reject(&t, bad, 3, EQR_ERR_FORMAT, "checksum", NULL, NULL);
    /* bad magic */
    memcpy(cp, img, n);
    memcpy(cp, "EQRCKPT0", 8);
    write_all(bad, cp, n);
    tu_ckpt_expect_reject(&t, bad, 3, EQR_ERR_FORMAT, "magic", NULL, NULL);
    /* another format version (version is a u32 at offset 8) */
    memcpy(cp, img, n);
    cp[8] = 3;
    write_all(bad, cp, n);
    tu_ckpt_expect_reject(&t, bad, 3, EQR_ERR_FORMAT, "version 3", NULL, NULL);
    memcpy(cp, img, n);
    cp[8] = 0;
    write_all(bad, cp, n);
    tu_ckpt_expect_reject(&t, bad, 3, EQR_ERR_FORMAT, "version 0", NULL, NULL);
    /* a file that is not there */
    char none[512];
    tu_tmp_path(none, "does_not_exist.ckpt");
    tu_ckpt_expect_reject(&t, none, 3, EQR_ERR_IO, "cannot open", none, NULL);

    tu_ckpt_free_target(&t);
    free(cp);
    free(img);
    remove(bad);
    remove(ref);
}

static void test_mismatch_rejected(void **state) {
    (void)state;
    char ref[512];
    save_reference(ref);
    /* other shape: message names the parameter and both shapes */
    tu_ckpt_spec s = TU_CKPT_BASE;
    s.wcols = 5;
    tu_ckpt_target t = tu_ckpt_make_target(&s, EQR_OPTIM_ADAM);
    tu_ckpt_expect_reject(&t, ref, 3, EQR_ERR_MISMATCH, "'w'", "[3,4]", "[3,5]");
    tu_ckpt_free_target(&t);
    /* other name */
    s = TU_CKPT_BASE;
    s.wname = "weight";
    t = tu_ckpt_make_target(&s, EQR_OPTIM_ADAM);
    tu_ckpt_expect_reject(&t, ref, 3, EQR_ERR_MISMATCH, "'w'", "'weight'", NULL);
    tu_ckpt_free_target(&t);
    /* other flags */
    s = TU_CKPT_BASE;
    s.bflags = 0;
    t = tu_ckpt_make_target(&s, EQR_OPTIM_ADAM);
    tu_ckpt_expect_reject(&t, ref, 3, EQR_ERR_MISMATCH, "'b'", "flags", NULL);
    tu_ckpt_free_target(&t);
    /* a parameter the file lacks, and one the model lacks */
    s = TU_CKPT_BASE;
    s.extra = 1;
    t = tu_ckpt_make_target(&s, EQR_OPTIM_ADAM);
    tu_ckpt_expect_reject(&t, ref, 3, EQR_ERR_MISMATCH, "'extra'", "not in the file", NULL);
    tu_ckpt_free_target(&t);
    s = TU_CKPT_BASE;
    s.drop_last = 1;
    t = tu_ckpt_make_target(&s, EQR_OPTIM_ADAM);
    tu_ckpt_expect_reject(&t, ref, 3, EQR_ERR_MISMATCH, "'frozen'", "not in the model", NULL);
    tu_ckpt_free_target(&t);
    /* other optimizer kind */
    t = tu_ckpt_make_target(&TU_CKPT_BASE, EQR_OPTIM_SGD);
    tu_ckpt_expect_reject(&t, ref, 3, EQR_ERR_MISMATCH, "Adam", "SGD", NULL);
    tu_ckpt_free_target(&t);
    t = tu_ckpt_make_target(&TU_CKPT_BASE, EQR_OPTIM_ADAMW);
    tu_ckpt_expect_reject(&t, ref, 3, EQR_ERR_MISMATCH, "Adam ", "AdamW", NULL);
    tu_ckpt_free_target(&t);
    /* other counter count */
    t = tu_ckpt_make_target(&TU_CKPT_BASE, EQR_OPTIM_ADAM);
    tu_ckpt_expect_reject(&t, ref, 2, EQR_ERR_MISMATCH, "counters", NULL, NULL);
    /* optimizer requested but the file has none */
    char noopt[512];
    tu_tmp_path(noopt, "noopt.ckpt");
    eqr_ctx *a = tu_ckpt_build(1, &TU_CKPT_BASE);
    uint64_t c[3] = {1, 2, 3};
    assert_int_equal(eqr_checkpoint_save(a, noopt, NULL, c, 3), EQR_OK);
    eqr_ctx_destroy(a);
    tu_ckpt_expect_reject(&t, noopt, 3, EQR_ERR_MISMATCH, "no optimizer state", NULL, NULL);
    /* bad arguments */
    assert_int_equal(eqr_checkpoint_load(t.ctx, ref, t.opt, NULL, 3), EQR_ERR_ARG);
    tu_assert_error(t.ctx, EQR_ERR_ARG, "ncounters");
    assert_int_equal(eqr_checkpoint_load(t.ctx, ref, t.opt, t.counters, 65), EQR_ERR_ARG);
    tu_assert_error(t.ctx, EQR_ERR_ARG, "ncounters");
    tu_ckpt_free_target(&t);
    remove(noopt);
    remove(ref);
}

static void test_save_errors(void **state) {
    (void)state;
    eqr_ctx *a = tu_ckpt_build(1, &TU_CKPT_BASE);
    eqr_optim *oa = tu_ckpt_opt(a, EQR_OPTIM_ADAM, 1);
    /* directory does not exist */
    const char *p = "/nonexistent-eqr-dir/sub/x.ckpt";
    assert_int_equal(eqr_checkpoint_save(a, p, oa, NULL, 0), EQR_ERR_IO);
    tu_assert_error(a, EQR_ERR_IO, "/nonexistent-eqr-dir/sub/x.ckpt");
    assert_int_equal(eqr_checkpoint_save(a, p, oa, NULL, 0), EQR_ERR_IO);
    tu_assert_error(a, EQR_ERR_IO, "No such file or directory");
    /* the target is a directory: the tmp file is written, the rename fails,
     * and the tmp file is removed */
    char dir[512], tmp[600];
    tu_tmp_path(dir, "ckdir");
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    assert_int_equal(eqr_checkpoint_save(a, dir, oa, NULL, 0), EQR_ERR_IO);
    tu_assert_error(a, EQR_ERR_IO, dir);
    assert_false(exists(tmp));
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    rmdir(dir);
    /* bad arguments */
    char path[512];
    tu_tmp_path(path, "args.ckpt");
    uint64_t c[1] = {0};
    assert_int_equal(eqr_checkpoint_save(a, path, oa, c, 65), EQR_ERR_ARG);
    tu_assert_error(a, EQR_ERR_ARG, "ncounters");
    assert_int_equal(eqr_checkpoint_save(a, path, oa, NULL, 1), EQR_ERR_ARG);
    tu_assert_error(a, EQR_ERR_ARG, "ncounters");
    assert_int_equal(eqr_checkpoint_save(a, "", oa, NULL, 0), EQR_ERR_ARG);
    tu_assert_error(a, EQR_ERR_ARG, "path");
    assert_false(exists(path));
    eqr_optim_destroy(oa);
    eqr_ctx_destroy(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_byte_layout),
        cmocka_unit_test(test_corrupt_rejected),
        cmocka_unit_test(test_mismatch_rejected),
        cmocka_unit_test(test_save_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
