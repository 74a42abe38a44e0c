/* equirelax data: gzipped (or plain) IDX files, datasets of images with
 * integer labels, and a batch iterator with seeded shuffling. */
#ifndef EQUIRELAX_DATA_H
#define EQUIRELAX_DATA_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EQR_IDX_MAX_DIMS 8

/* An IDX array with every element converted to float. */
typedef struct eqr_idx {
    int type;                        /* 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64 */
    int ndim;
    int64_t dims[EQR_IDX_MAX_DIMS];
    int64_t count;                   /* product of dims */
    float *data;                     /* malloc'd; free with eqr_idx_free */
} eqr_idx;

/* Read an IDX file (gzip-compressed or not). Validates the magic, the type
 * code, the number and size of dimensions, and that the payload has exactly
 * the announced size. Memory grows with the data actually read (a plain
 * file's header is checked against its size first), so a truncated or lying
 * header is reported as such, never as a huge allocation. Directories and
 * other non-regular files are refused. On error *out is left empty and a
 * message recorded. */
eqr_status eqr_idx_read(eqr_ctx *ctx, const char *path, eqr_idx *out);
void eqr_idx_free(eqr_idx *idx);

/* Images [n, c, h, w] scaled to [0,1] and labels in [0, classes). */
typedef struct eqr_dataset {
    int64_t n;
    int c, h, w;
    int classes;
    float *x;       /* n * c * h * w */
    int32_t *y;     /* n */
} eqr_dataset;

/* Load an image IDX file ([n,h,w] u8, any n, h, w) and a label IDX file
 * ([n] u8) into a dataset; counts must agree and labels lie in
 * [0, classes). classes = 0 takes the largest label + 1. */
eqr_status eqr_dataset_load_idx(eqr_ctx *ctx, const char *images_path,
                                const char *labels_path, int classes,
                                eqr_dataset *out);
/* One split of an IDX dataset laid out as Fashion-MNIST's files in dir
 * (NULL = /usr/share/datasets/fashion-mnist, the Debian package
 * dataset-fashion-mnist): train = 1 reads train-{images-idx3,labels-idx1}-
 * ubyte[.gz], 0 reads t10k-*. Any counts and image sizes load (the caller
 * checks what its model needs); classes come from the labels. */
eqr_status eqr_fashion_mnist_load(eqr_ctx *ctx, const char *dir, int train,
                                  eqr_dataset *out);
/* Keep only the first n samples (n <= ds->n). */
void eqr_dataset_truncate(eqr_dataset *ds, int64_t n);
void eqr_dataset_free(eqr_dataset *ds);

/* Batch iterator. The order of epoch e is a permutation drawn from
 * (seed, e) alone, so the position (epoch, index) is the whole state. */
typedef struct eqr_batcher {
    const eqr_dataset *ds;
    int64_t batch;
    int shuffle;
    uint64_t seed;
    int64_t epoch;  /* current epoch, from 0 */
    int64_t pos;    /* next sample index within the epoch order */
    int64_t *perm;  /* order of the current epoch */
} eqr_batcher;

/* Initialise b over ds with the given batch size (the last batch of an epoch
 * may be smaller). b keeps a pointer to ds: keep ds alive and do not
 * truncate it while b is in use. */
eqr_status eqr_batcher_init(eqr_ctx *ctx, eqr_batcher *b, const eqr_dataset *ds,
                            int64_t batch, int shuffle, uint64_t seed);
/* Copy the next batch into x (batch*c*h*w floats) and y; *count gets its
 * size. Returns 1 while the epoch has batches, 0 at its end, after which the
 * batcher has moved to the next epoch. */
int eqr_batcher_next(eqr_batcher *b, float *x, int32_t *y, int64_t *count);
/* Jump to (epoch, pos), e.g. after loading a checkpoint. */
eqr_status eqr_batcher_seek(eqr_ctx *ctx, eqr_batcher *b, int64_t epoch, int64_t pos);
void eqr_batcher_free(eqr_batcher *b);

#ifdef __cplusplus
}
#endif
#endif
