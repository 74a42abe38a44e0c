/* Image classification datasets from IDX files (Fashion-MNIST), and a batch
 * iterator whose shuffling depends only on (seed, epoch). */
#include "core/internal.h"
#include "equirelax/data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define FMNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define FMNIST_HINT "install the Debian package dataset-fashion-mnist, or pass the directory holding the files"

static eqr_status entry_status(eqr_ctx *ctx) {
    if (!ctx) return EQR_ERR_ARG;
    return ctx->status;
}

eqr_status eqr_dataset_load_idx(eqr_ctx *ctx, const char *images_path, const char *labels_path,
                                int classes, eqr_dataset *out) {
    if (out) memset(out, 0, sizeof *out);
    eqr_status st = entry_status(ctx);
    if (st != EQR_OK) return st;
    if (!images_path || !labels_path || !out)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_dataset_load_idx: %s is NULL",
                         !images_path ? "images_path" : !labels_path ? "labels_path" : "out");
    if (classes < 0)
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "eqr_dataset_load_idx: classes = %d, must be >= 1 (or 0: from the labels)",
                         classes);

    eqr_idx img, lab;
    st = eqr_idx_read(ctx, images_path, &img);
    if (st != EQR_OK) return st;
    st = eqr_idx_read(ctx, labels_path, &lab);
    if (st != EQR_OK) {
        eqr_idx_free(&img);
        return st;
    }
    if (img.type != 0x08 || img.ndim != 3) {
        st = eqr__fail(ctx, EQR_ERR_FORMAT,
                       "eqr_dataset_load_idx: '%s': expected unsigned byte images [n,h,w], got type 0x%02x with %d dimensions",
                       images_path, img.type, img.ndim);
        goto fail;
    }
    if (lab.type != 0x08 || lab.ndim != 1) {
        st = eqr__fail(ctx, EQR_ERR_FORMAT,
                       "eqr_dataset_load_idx: '%s': expected unsigned byte labels [n], got type 0x%02x with %d dimensions",
                       labels_path, lab.type, lab.ndim);
        goto fail;
    }
    if (img.dims[0] != lab.dims[0]) {
        st = eqr__fail(ctx, EQR_ERR_FORMAT,
                       "eqr_dataset_load_idx: %lld images in '%s' but %lld labels in '%s'",
                       (long long)img.dims[0], images_path, (long long)lab.dims[0], labels_path);
        goto fail;
    }
    int64_t n = img.dims[0];
    if (classes == 0) /* u8 labels: the largest one + 1, at most 256 */
        for (int64_t i = 0; i < n; i++)
            if (lab.data[i] >= (float)classes) classes = (int)lab.data[i] + 1;
    for (int64_t i = 0; i < n; i++)
        if (lab.data[i] >= (float)classes) {
            st = eqr__fail(ctx, EQR_ERR_FORMAT,
                           "eqr_dataset_load_idx: '%s': label %d of sample %lld is outside [0, %d)",
                           labels_path, (int)lab.data[i], (long long)i, classes);
            goto fail;
        }
    int32_t *y = malloc((size_t)n * sizeof *y);
    if (!y) {
        st = eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_dataset_load_idx: cannot allocate %lld labels", (long long)n);
        goto fail;
    }
    for (int64_t i = 0; i < n; i++) y[i] = (int32_t)lab.data[i];
    /* the image buffer becomes the dataset's, scaled in place */
    const float s = 1.0f / 255.0f;
    for (int64_t i = 0; i < img.count; i++) img.data[i] *= s;
    out->n = n;
    out->c = 1;
    out->h = (int)img.dims[1];
    out->w = (int)img.dims[2];
    out->classes = classes;
    out->x = img.data;
    out->y = y;
    eqr_idx_free(&lab);
    return EQR_OK;
fail:
    eqr_idx_free(&img);
    eqr_idx_free(&lab);
    return st;
}

/* dir/name.gz, or dir/name when only the uncompressed file exists. Returns
 * 0, or the errno of opening the .gz file (whose path is then in buf). */
static int find_file(char *buf, size_t n, const char *dir, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
    FILE *f = fopen(buf, "rb");
    int found_plain = f != NULL;
    if (f) fclose(f);
    /* the compressed file wins when both exist */
    snprintf(buf, n, "%s/%s.gz", dir, name);
    errno = 0;
    f = fopen(buf, "rb");
    if (f) {
        fclose(f);
        return 0;
    }
    int err = errno ? errno : ENOENT;
    if (found_plain) {
        snprintf(buf, n, "%s/%s", dir, name);
        return 0;
    }
    return err;
}

eqr_status eqr_fashion_mnist_load(eqr_ctx *ctx, const char *dir, int train, eqr_dataset *out) {
    if (out) memset(out, 0, sizeof *out);
    eqr_status st = entry_status(ctx);
    if (st != EQR_OK) return st;
    if (!out) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_fashion_mnist_load: NULL out");
    if (!dir) dir = FMNIST_DEFAULT_DIR;
    const char *pre = train ? "train" : "t10k";
    char ipath[1024], lpath[1024], name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", pre);
    int err = find_file(ipath, sizeof ipath, dir, name);
    if (err)
        return eqr__fail(ctx, EQR_ERR_IO, "eqr_fashion_mnist_load: cannot open '%s': %s (" FMNIST_HINT ")",
                         ipath, strerror(err));
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", pre);
    err = find_file(lpath, sizeof lpath, dir, name);
    if (err)
        return eqr__fail(ctx, EQR_ERR_IO, "eqr_fashion_mnist_load: cannot open '%s': %s (" FMNIST_HINT ")",
                         lpath, strerror(err));
    return eqr_dataset_load_idx(ctx, ipath, lpath, 0, out);
}

void eqr_dataset_truncate(eqr_dataset *ds, int64_t n) {
    if (ds && n >= 0 && n < ds->n) ds->n = n;
}

void eqr_dataset_free(eqr_dataset *ds) {
    if (!ds) return;
    free(ds->x);
    free(ds->y);
    memset(ds, 0, sizeof *ds);
}

/* ---- batcher ---- */

/* Seed of epoch e's permutation: a strong mix of (seed, e), so neighbouring
 * seeds and epochs give unrelated orders. */
static uint64_t epoch_seed(uint64_t seed, int64_t epoch) {
    uint64_t z = seed ^ ((uint64_t)epoch * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull);
    z = (z ^ (z >> 33)) * 0xFF51AFD7ED558CCDull;
    z = (z ^ (z >> 33)) * 0xC4CEB9FE1A85EC53ull;
    return z ^ (z >> 33);
}

static void build_perm(eqr_batcher *b) {
    int64_t n = b->ds->n;
    for (int64_t i = 0; i < n; i++) b->perm[i] = i;
    if (!b->shuffle) return;
    eqr_rng rng;
    eqr_rng_seed(&rng, epoch_seed(b->seed, b->epoch));
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)eqr_rng_below(&rng, (uint64_t)i + 1);
        int64_t t = b->perm[i];
        b->perm[i] = b->perm[j];
        b->perm[j] = t;
    }
}

eqr_status eqr_batcher_init(eqr_ctx *ctx, eqr_batcher *b, const eqr_dataset *ds, int64_t batch,
                            int shuffle, uint64_t seed) {
    if (b) memset(b, 0, sizeof *b);
    eqr_status st = entry_status(ctx);
    if (st != EQR_OK) return st;
    if (!b || !ds)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_batcher_init: %s is NULL", !b ? "b" : "ds");
    if (batch < 1) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_batcher_init: batch = %lld, must be >= 1", (long long)batch);
    if (ds->n < 1 || !ds->x || !ds->y)
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "eqr_batcher_init: empty dataset (n = %lld, x %s, y %s)",
                         (long long)ds->n, ds->x ? "set" : "NULL", ds->y ? "set" : "NULL");
    b->perm = malloc((size_t)ds->n * sizeof *b->perm);
    if (!b->perm)
        return eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_batcher_init: cannot allocate %lld indices", (long long)ds->n);
    b->ds = ds;
    b->batch = batch;
    b->shuffle = shuffle != 0;
    b->seed = seed;
    build_perm(b);
    return EQR_OK;
}

int eqr_batcher_next(eqr_batcher *b, float *x, int32_t *y, int64_t *count) {
    if (count) *count = 0;
    if (!b || !b->perm) return 0;
    const eqr_dataset *ds = b->ds;
    if (b->pos >= ds->n) {
        b->epoch++;
        b->pos = 0;
        build_perm(b);
        return 0;
    }
    int64_t k = ds->n - b->pos;
    if (k > b->batch) k = b->batch;
    size_t per = (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
    for (int64_t i = 0; i < k; i++) {
        int64_t s = b->perm[b->pos + i];
        if (x) memcpy(x + (size_t)i * per, ds->x + (size_t)s * per, per * sizeof(float));
        if (y) y[i] = ds->y[s];
    }
    b->pos += k;
    if (count) *count = k;
    return 1;
}

eqr_status eqr_batcher_seek(eqr_ctx *ctx, eqr_batcher *b, int64_t epoch, int64_t pos) {
    eqr_status st = entry_status(ctx);
    if (st != EQR_OK) return st;
    if (!b || !b->perm) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_batcher_seek: batcher not initialised");
    if (epoch < 0 || pos < 0 || pos > b->ds->n)
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "eqr_batcher_seek: position (epoch %lld, index %lld) out of range (epoch >= 0, 0 <= index <= %lld)",
                         (long long)epoch, (long long)pos, (long long)b->ds->n);
    if (epoch != b->epoch) {
        b->epoch = epoch;
        build_perm(b);
    }
    b->pos = pos;
    return EQR_OK;
}

void eqr_batcher_free(eqr_batcher *b) {
    if (!b) return;
    free(b->perm);
    memset(b, 0, sizeof *b);
}
