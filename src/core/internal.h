/* Internal definitions of the core layer, shared by every source file of the
 * library (each layer includes it first). Not installed. It sees only the
 * core's public headers: a source file includes the public headers of the
 * other layers it uses itself. */
#ifndef EQR_INTERNAL_H
#define EQR_INTERNAL_H

#include "equirelax/core.h"
#include "equirelax/tensor.h"
#include "equirelax/autodiff.h"
#include "equirelax/param.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define EQR_ERRMSG_LEN 512
#define EQR_NAME_LEN 64

/* Step arena: a list of blocks; reset coalesces them into one. */
typedef struct eqr_arena_block {
    struct eqr_arena_block *next;
    size_t size, used;
    /* data follows, 64-byte aligned */
} eqr_arena_block;

typedef struct eqr_arena {
    eqr_arena_block *head; /* current block (newest first) */
    size_t total;          /* bytes reserved over all blocks */
    size_t used;           /* bytes handed out since reset */
} eqr_arena;

struct eqr_node;
/* Backward of one node: read n->out->grad, accumulate into inputs' grads. */
typedef void (*eqr_backward_fn)(eqr_ctx *ctx, struct eqr_node *n);

#define EQR_NODE_MAX_IN 4
typedef struct eqr_node {
    eqr_backward_fn backward;
    eqr_tensor *out;
    eqr_tensor *in[EQR_NODE_MAX_IN];
    int nin;
    void *saved;      /* op-specific data in the arena */
    float f[4];       /* op scalars */
    int64_t i[8];     /* op integers */
} eqr_node;

typedef struct eqr_param_entry {
    char name[EQR_NAME_LEN];
    unsigned flags;
    int64_t offset;
    eqr_tensor *t; /* malloc'd, stable address */
} eqr_param_entry;

struct eqr_ctx {
    eqr_status status;
    char errmsg[EQR_ERRMSG_LEN];
    eqr_log_fn log_fn;
    void *log_user;
    eqr_rng rng;
    int threads;
    int grad_enabled;
    eqr_arena arena;
    /* tape: grows with malloc, kept across steps */
    eqr_node *tape;
    int64_t tape_len, tape_cap;
    int tape_consumed; /* backward already ran on this tape */
    uint64_t step_id;  /* eqr_step_reset calls so far: tells a stale arena pointer */
    /* parameter store */
    eqr_param_entry *params;
    int nparams, params_cap;
    float *pdata, *pgrad;
    int64_t ptotal, pcap;
};

/* Record an error (only the first one is kept) and pass it to the logging
 * callback. Returns st. */
eqr_status eqr__fail(eqr_ctx *ctx, eqr_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* calloc(n, size); when it fails, records EQR_ERR_NOMEM "<fn>: out of
 * memory" (fn names the public function) and returns NULL. */
void *eqr__calloc(eqr_ctx *ctx, const char *fn, size_t n, size_t size);

/* Pass a formatted message to the context's log callback at level (nothing
 * if none is set); never touches the error state. */
void eqr__log(eqr_ctx *ctx, eqr_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Open path for reading (fn names the caller in messages). Refuses
 * directories and other non-regular files; *fd gets the descriptor and
 * *size the file's size in bytes, the bound on what a reader may allocate. */
eqr_status eqr__open_regular(eqr_ctx *ctx, const char *fn, const char *path, int *fd,
                             int64_t *size);

/* Write path atomically: w streams the content into f (returns 0, or -1
 * with errno set). It goes to "<path>.tmp", is flushed and fsynced, renamed
 * over path and the directory synced, so a reader (or a kill -9) sees the
 * old file or the new one, never a part. On failure the temporary file is
 * removed, path is untouched and the error reads "<fn>: cannot <step>
 * '<path>.tmp' (saving '<path>'): <reason>"; a path naming a directory is
 * refused. */
typedef int (*eqr__write_fn)(FILE *f, void *user);
eqr_status eqr__write_atomic(eqr_ctx *ctx, const char *fn, const char *path, eqr__write_fn w,
                             void *user);

/* eqr__write_atomic of a buffer. */
eqr_status eqr__write_atomic_buf(eqr_ctx *ctx, const char *fn, const char *path,
                                 const uint8_t *buf, size_t size);

/* Read the whole regular file at path into *out (malloc'd, *len bytes and a
 * NUL after them). The buffer is sized from fstat, never from the content,
 * and a file that changes size while read is refused. */
eqr_status eqr__slurp(eqr_ctx *ctx, const char *fn, const char *path, uint8_t **out,
                      size_t *len);

/* 64-byte aligned arena allocation; NULL (error recorded) on failure. */
void *eqr__arena_alloc(eqr_ctx *ctx, size_t bytes);
void *eqr__arena_calloc(eqr_ctx *ctx, size_t bytes);

/* Arena position, to release scratch allocations made after it (e.g. by a
 * measurement that must leave the step's tensors alone). Rewinding also
 * drops the tape nodes recorded since the mark, as they point at the freed
 * tensors. No backward may run in between: it would give older tensors
 * gradient buffers in the released memory. */
typedef struct eqr__arena_mark {
    eqr_arena_block *head;
    size_t head_used, used;
    int64_t tape_len;
} eqr__arena_mark;
eqr__arena_mark eqr__arena_save(const eqr_ctx *ctx);
void eqr__arena_rewind(eqr_ctx *ctx, eqr__arena_mark m);

/* Give an op's scratch allocated since m back to the arena, so the next op
 * reuses the same memory instead of touching new pages. Only when no block
 * was chained after the mark (rewinding would free it, and a block freed
 * every step would mean a malloc every step); in the coalesced arena of
 * later steps it always rewinds. Nothing allocated after m may outlive the
 * call. */
void eqr__scratch_release(eqr_ctx *ctx, eqr__arena_mark m);

/* Element count of a shape, or -1 with EQR_ERR_SHAPE recorded as
 * "<fn>: invalid <what> [sizes] (...)" if ndim, shape or the count is bad. */
int64_t eqr__shape_check(eqr_ctx *ctx, const char *fn, const char *what, int ndim,
                         const int64_t *shape);

/* New uninitialised arena tensor (data not zeroed). */
eqr_tensor *eqr__tensor_empty(eqr_ctx *ctx, int ndim, const int64_t *shape);

/* Gradient buffer of t, allocated zeroed in the arena on first use. Views
 * resolve to their base's buffer. NULL on allocation failure. */
float *eqr__grad(eqr_ctx *ctx, eqr_tensor *t);
/* eqr__grad for a backward that stores every element of t's gradient: a
 * buffer new to this backward is left unzeroed and *acc = 0 (store, do not
 * add); *acc = 1 when earlier contributions are there to add to (or t is a
 * view). Saves the zeroing pass of the large activation gradients. */
float *eqr__grad_all(eqr_ctx *ctx, eqr_tensor *t, int *acc);

/* Does t take part in autodiff? */
static inline int eqr__needs_grad(const eqr_tensor *t) {
    return t && (t->flags & EQR_T_REQUIRES_GRAD);
}

/* Common op prologue: 0 if the context is in error or any of the n required
 * inputs is NULL. A NULL met on a context in error is an earlier op's failure
 * propagating and stays silent (the first error is kept); a NULL on a healthy
 * context came from the caller (e.g. a mistyped eqr_param_find) and records
 * EQR_ERR_ARG "<fn>: argument '<name>' is NULL". fn is the public function
 * named in the message and names the stringified "n, a, b" argument list.
 * Optional inputs (a NULL bias) are simply not passed. Use eqr__ok in a
 * public entry point (it names __func__), eqr__ok_in in a shared helper that
 * knows which public function it serves. */
int eqr__ok_at(eqr_ctx *ctx, const char *fn, const char *names, int n, ...);
#define eqr__ok(ctx, ...) eqr__ok_at((ctx), __func__, #__VA_ARGS__, __VA_ARGS__)
#define eqr__ok_in(ctx, fn, ...) eqr__ok_at((ctx), (fn), #__VA_ARGS__, __VA_ARGS__)

/* s[i] = 1 / (1 + exp(-x[i])), i < n, vectorised: the one sigmoid of the
 * library's kernels (vmath.c). Within 3 u (u = 2^-24) relative of the exact
 * value down to 1e-37 (2.48 u the worst over 2e9 floats in [-90, 90]), 1
 * above x = 87 and 0 below x = -89. */
void eqr__sigmoid_n(const float *restrict x, float *restrict s, int64_t n);

/* If recording is on and any input needs grad, mark out as requiring grad
 * and append a node; returns it (NULL if nothing recorded, or on error).
 * Ops fill saved/f/i fields of the returned node. */
eqr_node *eqr__record(eqr_ctx *ctx, eqr_tensor *out, eqr_backward_fn bw,
                      int nin, eqr_tensor *const *in);
/* eqr__record, then the node's saved pointer and integers i[0 .. ni) = iv
 * (ni <= 8). */
eqr_node *eqr__record_with(eqr_ctx *ctx, eqr_tensor *out, eqr_backward_fn bw, int nin,
                           eqr_tensor *const *in, void *saved, int ni, const int64_t *iv);

/* Run fn(arg, k) for k = 0 .. n-1, on n OpenMP threads when n > 1 (one task
 * per thread), directly on the caller's thread when n == 1. A one-thread
 * OpenMP region is never entered: libgomp allocates (and frees) a team for
 * every such region, which would make each training step touch the heap. */
typedef void (*eqr__task_fn)(const void *arg, int k);
void eqr__parallel(int n, eqr__task_fn fn, const void *arg);

/* Before a parallel region of chunks > 1 that calls BLAS: make OpenBLAS
 * single-threaded (its thread count is process-global; set once and left,
 * as restoring it per call wakes its spinning workers; core.c). */
void eqr__blas_single(int chunks);

/* eqr_gather without its checks, for index tables a layer built and
 * validated once at construction (x non-NULL, shape valid, every idx in
 * [-1, x->numel)), so a step does not rescan them. */
eqr_tensor *eqr__gather(eqr_ctx *ctx, eqr_tensor *x, const int64_t *idx, int ndim,
                        const int64_t *shape);

/* Normalise a possibly negative axis; -1 if out of range. */
static inline int eqr__axis(int axis, int ndim) {
    if (axis < 0) axis += ndim;
    return (axis >= 0 && axis < ndim) ? axis : -1;
}

/* Format t's shape into the caller's array char buf[EQR_SHAPE_BUF]. */
#define EQR_SHAPE_BUF 96
#define EQR_SHAPE(t, buf) eqr_shape_str((t)->ndim, (t)->shape, (buf), sizeof(buf))

/* Layer name check: non-empty and short enough for "<name><suffix>" (the
 * longest parameter suffix, e.g. ".weight") in a parameter name. 0 with
 * EQR_ERR_ARG recorded otherwise. */
static inline int eqr__layer_name_ok(eqr_ctx *ctx, const char *fn, const char *name,
                                     const char *suffix) {
    size_t room = EQR_NAME_LEN - 1 - strlen(suffix);
    if (name && *name && strlen(name) <= room) return 1;
    eqr__fail(ctx, EQR_ERR_ARG, "%s: name '%s' is NULL, empty or too long (need 1..%zu characters)",
              fn, name ? name : "(null)", room);
    return 0;
}

/* 1 if none of the parameters "<name><suffix>" exists yet, so a create
 * fails before registering any of them (the store cannot remove one); 0
 * with EQR_ERR_ARG recorded otherwise. name passed eqr__layer_name_ok. */
static inline int eqr__param_names_free(eqr_ctx *ctx, const char *fn, const char *name, int n,
                                        const char *const *suffixes) {
    for (int i = 0; i < n; i++) {
        char pname[EQR_NAME_LEN];
        snprintf(pname, sizeof pname, "%s%s", name, suffixes[i]);
        if (eqr_param_find(ctx, pname)) {
            eqr__fail(ctx, EQR_ERR_ARG, "%s: a parameter named '%s' already exists", fn, pname);
            return 0;
        }
    }
    return 1;
}

/* Parameter "<name><suffix>" (suffix e.g. ".weight") of the given shape,
 * every entry fill (NULL with the error recorded on failure). */
eqr_tensor *eqr__param_filled(eqr_ctx *ctx, const char *name, const char *suffix, int ndim,
                              const int64_t *shape, unsigned flags, float fill);

#endif
