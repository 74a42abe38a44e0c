/* Shared by the io readers (checkpoints, safetensors): the entries a file
 * holds, matched to the parameter store by name, with one set of rules and
 * messages for strict and partial loads. */
#ifndef EQR_IO_INTERNAL_H
#define EQR_IO_INTERNAL_H

#include "core/internal.h"
#include "equirelax/checkpoint.h"

/* Little-endian byte order and float bits, whatever the host. */

static inline void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static inline uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static inline uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline void put_floats(uint8_t *p, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) put_u32(p + 4 * i, f2u(x[i]));
}
static inline void get_floats(float *x, const uint8_t *p, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = u2f(get_u32(p + 4 * i));
}

/* One named tensor of a file, parsed and bounds-checked; data points into
 * the file image (its encoding is the reader's business). */
typedef struct eqr__fentry {
    char name[EQR_NAME_LEN];
    int ndim;
    int64_t shape[EQR_MAX_DIMS];
    int64_t numel;
    unsigned flags;          /* store flags, if the format has them */
    const uint8_t *data;     /* numel values */
    const uint8_t *slot[2];  /* checkpoints: optimizer state, numel floats per slot */
    int toolong;             /* the file's name is longer than a store name can be:
                                name holds its start, it never matches */
    int store;               /* matched store index, -1 if none (set by eqr__match) */
    int skip;                /* left out by a skip pattern or skip_buffers (eqr__match) */
} eqr__fentry;

/* Match the file's entries f[0..nf) to the context's store by name.
 * fn/path name the caller and file in messages; check_flags: the format
 * stores flags, which strict loads then require equal. Fails with
 * EQR_ERR_FORMAT on a duplicate name, EQR_ERR_MISMATCH on a shape
 * difference (either mode) or, in strict mode, on a name present on one
 * side only or a flags difference; the message lists the first few of each.
 * On success f[j].store and to_file[i] (nparams entries: the file entry for
 * store entry i, -1 if none) say what to copy, and rep (if not NULL) holds
 * the counts and first names; rep is filled on failure too. Nothing of the
 * store is written here. */
eqr_status eqr__match(eqr_ctx *ctx, const char *fn, const char *path, eqr__fentry *f, int nf,
                      const eqr_load_opts *o, int check_flags, int *to_file,
                      eqr_load_report *rep);

/* Argument check of load options (NULL is a strict load). */
eqr_status eqr__load_opts_check(eqr_ctx *ctx, const char *fn, const eqr_load_opts *o);

/* Start of a load: check the options, zero the report, read the file. */
eqr_status eqr__load_begin(eqr_ctx *ctx, const char *fn, const char *path,
                           const eqr_load_opts *o, eqr_load_report *rep, uint8_t **buf,
                           size_t *n);

/* After a successful load: the partial-load summary to the log callback
 * (INFO) and every missing / unexpected / skipped name to opts->on_name. */
void eqr__match_report(eqr_ctx *ctx, const char *fn, const char *path, const eqr__fentry *f,
                       int nf, const eqr_load_opts *o, const int *to_file,
                       const eqr_load_report *rep);

#endif
