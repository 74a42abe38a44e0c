/* IO: readers bounded by their input. Headers that announce more than the
 * file holds are reported as truncated without allocating what they claim
 * (run under an address-space limit a few hundred MB above the process's
 * size, so a header-sized allocation would fail and show up in the message);
 * directories and FIFOs are refused by name; IDX datasets of any counts and
 * image size load; a checkpoint save killed with SIGKILL at random moments
 * leaves the previous or the new checkpoint, whole. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* ---- writing small files ---- */

static size_t idx_header(unsigned char *b, int type, int ndim, const uint32_t *dims) {
    size_t n = 0;
    b[n++] = 0;
    b[n++] = 0;
    b[n++] = (unsigned char)type;
    b[n++] = (unsigned char)ndim;
    for (int d = 0; d < ndim; d++)
        for (int k = 3; k >= 0; k--) b[n++] = (unsigned char)(dims[d] >> (8 * k));
    return n;
}

static void write_bytes(const char *path, const unsigned char *d, size_t n, int gz) {
    if (gz) {
        gzFile g = gzopen(path, "wb");
        assert_non_null(g);
        if (n) assert_int_equal(gzwrite(g, d, (unsigned)n), (int)n);
        assert_int_equal(gzclose(g), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        if (n) assert_int_equal(fwrite(d, 1, n, f), n);
        assert_int_equal(fclose(f), 0);
    }
}

static void expect_idx_fail(eqr_ctx *ctx, const char *path, eqr_status st, const char *needle) {
    eqr_idx idx;
    assert_int_equal(eqr_idx_read(ctx, path, &idx), st);
    assert_null(idx.data);
    assert_non_null(strstr(eqr_error_message(ctx), path));
    tu_assert_error(ctx, st, needle);
}

/* ---- headers that lie ---- */

static void test_idx_lying_headers(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    char path[512];
    static unsigned char b[400000];
    for (int gz = 0; gz < 2; gz++) {
        tu_tmp_path(path, gz ? "lie.idx.gz" : "lie.idx");
        /* 13 bytes announcing 46000 x 46000 bytes (8.5 GB as floats) */
        uint32_t d2[2] = {46000, 46000};
        size_t n = idx_header(b, 0x08, 2, d2);
        b[n++] = 7;
        assert_int_equal(n, 13);
        write_bytes(path, b, n, gz);
        expect_idx_fail(ctx, path, EQR_ERR_FORMAT,
                        "truncated: expected 2116000000 bytes of data, got 1");
        /* 8 bytes announcing 2^31 - 1 doubles (17 GB) */
        uint32_t d1[1] = {2147483647u};
        n = idx_header(b, 0x0E, 1, d1);
        assert_int_equal(n, 8);
        write_bytes(path, b, n, gz);
        expect_idx_fail(ctx, path, EQR_ERR_FORMAT,
                        "truncated: expected 17179869176 bytes of data, got 0");
        /* real data, far less than announced: memory follows the data */
        n = idx_header(b, 0x08, 2, d2);
        memset(b + n, 3, 300000);
        write_bytes(path, b, n + 300000, gz);
        expect_idx_fail(ctx, path, EQR_ERR_FORMAT,
                        "truncated: expected 2116000000 bytes of data, got 300000");
    }
    /* a gzip stream cut in the middle: truncated, not out of memory */
    uint32_t d2[2] = {46000, 46000};
    size_t n = idx_header(b, 0x08, 2, d2);
    for (size_t i = 0; i < 300000; i++) b[n + i] = (unsigned char)(i * 2654435761u >> 13);
    tu_tmp_path(path, "cut.idx.gz");
    write_bytes(path, b, n + 300000, 1);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static unsigned char z[400000];
    size_t zn = fread(z, 1, sizeof z, f);
    fclose(f);
    write_bytes(path, z, zn / 2, 0);
    expect_idx_fail(ctx, path, EQR_ERR_FORMAT, "truncated");
    remove(path);
    /* the same header with all its data reads (the checks above are not
     * refusing everything): 3 x 5 bytes */
    uint32_t ds[2] = {3, 5};
    n = idx_header(b, 0x08, 2, ds);
    for (int i = 0; i < 15; i++) b[n + i] = (unsigned char)i;
    tu_tmp_path(path, "ok.idx");
    write_bytes(path, b, n + 15, 0);
    eqr_idx idx;
    assert_int_equal(eqr_idx_read(ctx, path, &idx), EQR_OK);
    assert_int_equal(idx.count, 15);
    assert_true(idx.data[14] == 14.0f);
    eqr_idx_free(&idx);
    remove(path);
    eqr_ctx_destroy(ctx);
}

static void test_checkpoint_lying_header(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    eqr_tensor *w = eqr_param_create(ctx, "w", 1, (int64_t[]){4}, 0);
    assert_non_null(w);
    for (int i = 0; i < 4; i++) w->data[i] = (float)i;
    char path[512];
    tu_tmp_path(path, "lie.ckpt");
    assert_int_equal(eqr_checkpoint_save(ctx, path, NULL, NULL, 0), EQR_OK);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char img[4096];
    size_t n = fread(img, 1, sizeof img, f);
    fclose(f);
    assert_true(n > 24 && n < sizeof img);
    /* payload length claimed: 2^62 bytes, the file keeps its 24-byte header */
    for (int i = 0; i < 8; i++) img[16 + i] = (unsigned char)(i == 7 ? 0x40 : 0);
    write_bytes(path, img, 24, 0);
    assert_int_equal(eqr_checkpoint_load(ctx, path, NULL, NULL, 0), EQR_ERR_FORMAT);
    tu_assert_error(ctx, EQR_ERR_FORMAT, "truncated");
    for (int i = 0; i < 4; i++) assert_true(w->data[i] == (float)i);
    remove(path);
    eqr_ctx_destroy(ctx);
}

/* ---- paths that are not files ---- */

static void test_not_regular(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    eqr_tensor *w = eqr_param_create(ctx, "w", 1, (int64_t[]){2}, 0);
    assert_non_null(w);
    char dir[512], fifo[512], tmp[600];
    tu_tmp_path(dir, "d.ckpt");
    assert_int_equal(mkdir(dir, 0700), 0);
    expect_idx_fail(ctx, dir, EQR_ERR_IO, "is a directory");
    assert_int_equal(eqr_checkpoint_load(ctx, dir, NULL, NULL, 0), EQR_ERR_IO);
    tu_assert_error(ctx, EQR_ERR_IO, "is a directory");
    assert_int_equal(eqr_checkpoint_save(ctx, dir, NULL, NULL, 0), EQR_ERR_IO);
    tu_assert_error(ctx, EQR_ERR_IO, "is a directory");
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    assert_int_not_equal(access(tmp, F_OK), 0); /* nothing written */
    assert_int_equal(rmdir(dir), 0);
    /* a FIFO without a writer: refused at once, not a hang */
    tu_tmp_path(fifo, "fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    expect_idx_fail(ctx, fifo, EQR_ERR_IO, "not a regular file");
    assert_int_equal(eqr_checkpoint_load(ctx, fifo, NULL, NULL, 0), EQR_ERR_IO);
    tu_assert_error(ctx, EQR_ERR_IO, "not a regular file");
    remove(fifo);
    eqr_ctx_destroy(ctx);
}

/* ---- datasets of any size ---- */

static void write_split(const char *dir, const char *pre, int n, int h, int w,
                        const unsigned char *lab, int gz_images, int gz_labels) {
    static unsigned char b[1 << 16];
    char path[1024];
    uint32_t di[3] = {(uint32_t)n, (uint32_t)h, (uint32_t)w}, dl[1] = {(uint32_t)n};
    size_t k = idx_header(b, 0x08, 3, di);
    for (int i = 0; i < n * h * w; i++) b[k + (size_t)i] = (unsigned char)((i * 53 + n) & 0xFF);
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte%s", dir, pre, gz_images ? ".gz" : "");
    write_bytes(path, b, k + (size_t)(n * h * w), gz_images);
    k = idx_header(b, 0x08, 1, dl);
    memcpy(b + k, lab, (size_t)n);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte%s", dir, pre, gz_labels ? ".gz" : "");
    write_bytes(path, b, k + (size_t)n, gz_labels);
}

static void test_dataset_any_counts(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    char dir[512];
    tu_tmp_path(dir, "anyds");
    assert_int_equal(mkdir(dir, 0700), 0);
    const unsigned char ltr[7] = {0, 4, 2, 1, 4, 3, 0}, lte[3] = {2, 0, 1};
    write_split(dir, "train", 7, 12, 10, ltr, 1, 0);
    write_split(dir, "t10k", 3, 12, 10, lte, 0, 1);
    eqr_dataset tr, te;
    assert_int_equal(eqr_fashion_mnist_load(ctx, dir, 1, &tr), EQR_OK);
    assert_int_equal(eqr_fashion_mnist_load(ctx, dir, 0, &te), EQR_OK);
    assert_int_equal(tr.n, 7);
    assert_int_equal(te.n, 3);
    assert_int_equal(tr.h, 12);
    assert_int_equal(tr.w, 10);
    assert_int_equal(te.h, 12);
    assert_int_equal(tr.classes, 5); /* largest label 4 */
    assert_int_equal(te.classes, 3);
    for (int i = 0; i < 7; i++) assert_int_equal(tr.y[i], ltr[i]);
    for (int i = 0; i < 7 * 120; i++)
        assert_true(tr.x[i] == (float)((i * 53 + 7) & 0xFF) * (1.0f / 255.0f));
    /* a batcher covers the odd count: batches of 3, 3, 1 */
    eqr_batcher bt;
    assert_int_equal(eqr_batcher_init(ctx, &bt, &tr, 3, 1, 5), EQR_OK);
    float x[3 * 120];
    int32_t y[3];
    int64_t cnt, total = 0, nb = 0;
    while (eqr_batcher_next(&bt, x, y, &cnt)) {
        total += cnt;
        nb++;
    }
    assert_int_equal(total, 7);
    assert_int_equal(nb, 3);
    eqr_batcher_free(&bt);
    eqr_dataset_free(&tr);
    eqr_dataset_free(&te);

    /* what is really wrong is still refused: counts that disagree */
    char ip[1024], lp[1024];
    snprintf(ip, sizeof ip, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(lp, sizeof lp, "%s/t10k-labels-idx1-ubyte.gz", dir);
    assert_int_equal(eqr_dataset_load_idx(ctx, ip, lp, 0, &tr), EQR_ERR_FORMAT);
    tu_assert_error(ctx, EQR_ERR_FORMAT, "7 images");
    /* labels outside the given class count */
    snprintf(lp, sizeof lp, "%s/train-labels-idx1-ubyte", dir);
    assert_int_equal(eqr_dataset_load_idx(ctx, ip, lp, 4, &tr), EQR_ERR_FORMAT);
    tu_assert_error(ctx, EQR_ERR_FORMAT, "label 4 of sample 1 is outside [0, 4)");
    assert_int_equal(eqr_dataset_load_idx(ctx, ip, lp, 5, &tr), EQR_OK);
    eqr_dataset_free(&tr);
    const char *names[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte",
                            "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte.gz"};
    for (int i = 0; i < 4; i++) {
        snprintf(ip, sizeof ip, "%s/%s", dir, names[i]);
        remove(ip);
    }
    rmdir(dir);
    eqr_ctx_destroy(ctx);
}

/* ---- kill -9 during saves ---- */

enum { KN = 1 << 18 }; /* 1 MB of parameters: a save takes a while */

static void fill(eqr_tensor *w, int k) {
    for (int64_t i = 0; i < KN; i++) w->data[i] = (float)k + (float)(i & 7);
}

static void test_kill_during_save(void **state) {
    (void)state;
    char path[512];
    tu_tmp_path(path, "kill.ckpt");
    eqr_ctx *ctx = tu_ctx(1);
    eqr_tensor *w = eqr_param_create(ctx, "w", 1, (int64_t[]){KN}, 0);
    assert_non_null(w);
    fill(w, 0);
    assert_int_equal(eqr_checkpoint_save(ctx, path, NULL, (uint64_t[]){0}, 1), EQR_OK);
    eqr_rng r;
    eqr_rng_seed(&r, 99);
    int64_t last_seen = 0;
    for (int round = 0; round < 12; round++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) { /* child: save states k = 1, 2, ... until killed */
            for (int k = 1;; k++) {
                fill(w, k);
                if (eqr_checkpoint_save(ctx, path, NULL, (uint64_t[]){(uint64_t)k}, 1) != EQR_OK)
                    _exit(3);
            }
        }
        struct timespec ts = {0, (long)(2000 + eqr_rng_below(&r, 30000)) * 1000};
        nanosleep(&ts, NULL);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFSIGNALED(st)); /* killed, not a failed save */
        /* the checkpoint in place is whole and consistent */
        uint64_t k = 99;
        fill(w, -1);
        assert_int_equal(eqr_checkpoint_load(ctx, path, NULL, &k, 1), EQR_OK);
        for (int64_t i = 0; i < KN; i++) assert_true(w->data[i] == (float)k + (float)(i & 7));
        if ((int64_t)k > last_seen) last_seen = (int64_t)k;
    }
    print_message("kill -9 rounds: all loads whole; latest state seen %lld\n",
                  (long long)last_seen);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    remove(tmp);
    remove(path);
    eqr_ctx_destroy(ctx);
}

/* Limit the address space to the current size + 512 MB, so an allocation of
 * what a lying header claims (GBs) fails and would be reported as such.
 * ASan reserves terabytes of shadow memory: no limit there (the messages
 * are still checked). */
static void limit_address_space(void) {
#ifndef UNDER_ASAN
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (!f) return;
    if (fscanf(f, "%lu", &pages) != 1) pages = 0;
    fclose(f);
    if (!pages) return;
    rlim_t lim = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)512 << 20);
    struct rlimit rl = {lim, lim};
    if (setrlimit(RLIMIT_AS, &rl) == 0)
        print_message("address space limited to %lu MB\n", (unsigned long)(lim >> 20));
#endif
}

int main(void) {
    limit_address_space();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_lying_headers),
        cmocka_unit_test(test_checkpoint_lying_header),
        cmocka_unit_test(test_not_regular),
        cmocka_unit_test(test_dataset_any_counts),
        cmocka_unit_test(test_kill_during_save),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
