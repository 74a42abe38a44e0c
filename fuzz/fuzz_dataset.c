/* libFuzzer harness for eqr_dataset_load_idx (an image and a label IDX
 * file) and one epoch of the batcher over what it loads.
 * Input: byte 0 = flags (bit 0: gzip the image file, bit 1: gzip the label
 * file, bits 2-3: classes 0 (from the labels), 10, 3 or 1, bits 4-6: batch
 * size - 1, bit 7: shuffle), bytes 1-2 = image file length (little endian,
 * cut to what is there), then the image file, then the label file.
 * Invariants: a failure has a non-OK status, a message and an empty
 * dataset; a success has n >= 1 images of 1 x h x w (h, w >= 1) with values
 * in [0, 1], labels in [0, classes) (classes = the largest label + 1 when
 * asked for 0, else the one given), and a batcher epoch visits each sample
 * exactly once with the labels of the dataset. */
#include "fuzz_common.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static eqr_ctx *g_ctx;
static char g_img[64], g_lab[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_ctx = fuzz_ctx_new();
    fuzz_path(g_img, sizeof g_img, "ds_img");
    fuzz_path(g_lab, sizeof g_lab, "ds_lab");
    return 0;
}

static void die(const char *what) { fuzz_fail("fuzz_dataset", g_ctx, what); }

static void put(const char *path, const uint8_t *d, size_t n, int gz) {
    if (gz) {
        gzFile g = gzopen(path, "wb");
        if (!g) abort();
        if (n && gzwrite(g, d, (unsigned)n) != (int)n) abort();
        if (gzclose(g) != Z_OK) abort();
        return;
    }
    fuzz_write(path, d, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    int fl = data[0];
    size_t in = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    if (in > size) in = size;
    put(g_img, data, in, fl & 1);
    put(g_lab, data + in, size - in, fl & 2);
    static const int cls[4] = {0, 10, 3, 1};
    int classes = cls[(fl >> 2) & 3];

    eqr_error_clear(g_ctx);
    eqr_dataset ds;
    memset(&ds, 0xA5, sizeof ds);
    eqr_status st = eqr_dataset_load_idx(g_ctx, g_img, g_lab, classes, &ds);
    if (st != EQR_OK) {
        if (!eqr_error_message(g_ctx)[0]) die("error without a message");
        if (ds.x || ds.y || ds.n) die("failed load left a non-empty dataset");
        goto out;
    }
    if (ds.n < 1 || ds.c != 1 || ds.h < 1 || ds.w < 1 || !ds.x || !ds.y) die("bad dataset shape");
    if (ds.classes < 1 || ds.classes > 256 || (classes && ds.classes != classes))
        die("bad class count");
    int32_t maxl = -1;
    for (int64_t i = 0; i < ds.n; i++) {
        if (ds.y[i] < 0 || ds.y[i] >= ds.classes) die("label out of range");
        if (ds.y[i] > maxl) maxl = ds.y[i];
    }
    if (!classes && maxl + 1 != ds.classes) die("classes is not the largest label + 1");
    int64_t pix = (int64_t)ds.h * ds.w;
    for (int64_t i = 0; i < ds.n * pix; i++)
        if (!(ds.x[i] >= 0.0f && ds.x[i] <= 1.0f)) die("pixel outside [0, 1]");

    int64_t batch = ((fl >> 4) & 7) + 1;
    eqr_batcher b;
    if (eqr_batcher_init(g_ctx, &b, &ds, batch, fl >> 7, 42) != EQR_OK) die("batcher_init failed");
    float *x = malloc((size_t)(batch * pix) * sizeof *x);
    int32_t *y = malloc((size_t)batch * sizeof *y);
    unsigned char *seen = calloc((size_t)ds.n, 1);
    if (!x || !y || !seen) abort();
    int64_t count, total = 0;
    while (eqr_batcher_next(&b, x, y, &count)) {
        if (count < 1 || count > batch) die("batch size out of range");
        for (int64_t k = 0; k < count; k++) {
            /* find the sample by its pixels and label: the batch must copy it */
            int64_t i = b.perm[total + k];
            if (i < 0 || i >= ds.n || seen[i]++) die("sample visited twice or out of range");
            if (y[k] != ds.y[i] || memcmp(x + k * pix, ds.x + i * pix, (size_t)pix * sizeof *x))
                die("batch does not hold the sample");
        }
        total += count;
    }
    if (total != ds.n) die("an epoch did not visit every sample");
    free(x);
    free(y);
    free(seen);
    eqr_batcher_free(&b);
    eqr_dataset_free(&ds);
out:
    unlink(g_img);
    unlink(g_lab);
    return 0;
}
