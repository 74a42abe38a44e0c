/* equirelax core: context, status codes, error messages, logging, RNG.
 *
 * Everything the library allocates hangs off an eqr_ctx. The library never
 * prints, exits or aborts: fallible functions return an eqr_status (or NULL)
 * and the context keeps the message of the FIRST error until it is cleared.
 * Once a context is in error, ops do nothing and return NULL, so one check
 * after a forward pass suffices. */
#ifndef EQUIRELAX_CORE_H
#define EQUIRELAX_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum eqr_status {
    EQR_OK = 0,
    EQR_ERR_ARG,      /* invalid argument (NULL, out of range, bad flag) */
    EQR_ERR_SHAPE,    /* tensor shapes do not fit the operation */
    EQR_ERR_NOMEM,    /* allocation failed */
    EQR_ERR_IO,       /* file could not be opened, read or written */
    EQR_ERR_FORMAT,   /* file content is corrupt, truncated or of another version */
    EQR_ERR_MISMATCH, /* file is valid but does not match the model/optimizer */
    EQR_ERR_STATE     /* call not valid in the current state (e.g. backward twice) */
} eqr_status;

/* Short constant name of a status, e.g. "EQR_ERR_SHAPE". Never NULL. */
const char *eqr_status_name(eqr_status s);

typedef enum eqr_log_level {
    EQR_LOG_DEBUG = 0,
    EQR_LOG_INFO = 1,
    EQR_LOG_WARN = 2,
    EQR_LOG_ERROR = 3
} eqr_log_level;

/* Logging callback: the only way the library emits text. msg is valid only
 * during the call. */
typedef void (*eqr_log_fn)(eqr_log_level level, const char *msg, void *user);

/* Explicit random number generator (xoshiro256**). Plain data: copy it to
 * fork a stream, save it to resume. Results never depend on thread count. */
typedef struct eqr_rng {
    uint64_t s[4];
} eqr_rng;

/* Seed a generator; equal seeds give equal streams on every platform. */
void eqr_rng_seed(eqr_rng *rng, uint64_t seed);
/* Next 64 random bits. */
uint64_t eqr_rng_u64(eqr_rng *rng);
/* Uniform float in [0, 1). */
float eqr_rng_uniform(eqr_rng *rng);
/* Standard normal sample (Box-Muller, one sample per two uniforms). */
float eqr_rng_normal(eqr_rng *rng);
/* Uniform integer in [0, n); n must be > 0 (returns 0 otherwise). */
uint64_t eqr_rng_below(eqr_rng *rng, uint64_t n);

typedef struct eqr_ctx eqr_ctx;

/* Options for eqr_ctx_create; zero-initialise and set what you need. */
typedef struct eqr_ctx_opts {
    uint64_t seed;      /* seed of the context RNG (init, dropout) */
    int threads;        /* worker threads for batched kernels (conv over
                           images); 0 or 1 = one. With threads > 1 the first
                           threaded conv sets OpenBLAS to one thread for the
                           whole process (OpenBLAS's setting is global), as
                           splitting images over threads measured faster. */
    size_t arena_bytes; /* initial step-arena size; 0 = 64 MiB. It grows on
                           demand and is coalesced at the next reset, so the
                           steady state does no malloc. */
} eqr_ctx_opts;

/* Create a context; opts may be NULL for defaults. Returns NULL only when
 * memory is exhausted. */
eqr_ctx *eqr_ctx_create(const eqr_ctx_opts *opts);
/* Free the context and everything it owns (tensors, parameters). NULL is ok. */
void eqr_ctx_destroy(eqr_ctx *ctx);

/* Status of the first error since the last eqr_error_clear (EQR_OK if none). */
eqr_status eqr_error_status(const eqr_ctx *ctx);
/* Message of the first error, "" if none. Valid until the error is cleared. */
const char *eqr_error_message(const eqr_ctx *ctx);
/* Forget the recorded error so the context can be used again. */
void eqr_error_clear(eqr_ctx *ctx);

/* Install a logging callback (NULL to silence, the default). Errors are
 * logged at EQR_LOG_ERROR when they are first recorded. */
void eqr_ctx_set_log(eqr_ctx *ctx, eqr_log_fn fn, void *user);

/* Check that path could be written as the library writes files (a
 * temporary file next to it, then a rename), before any work depends on
 * it: not a directory or other non-file, not a read-only file, in an
 * existing writable directory. Creates and changes nothing. EQR_ERR_IO
 * with the message "'<path>': <reason>" (reason e.g. "is a directory,
 * expected a file path", "no such directory '<dir>'"). */
eqr_status eqr_path_writable(eqr_ctx *ctx, const char *path);

/* The context's RNG, used by initialisers and dropout. Saved in checkpoints. */
eqr_rng *eqr_ctx_rng(eqr_ctx *ctx);

/* Number of worker threads the context uses for batched kernels. */
int eqr_ctx_num_threads(const eqr_ctx *ctx);

/* Release all step-scoped memory: activations, their gradients and the tape.
 * Call once per training step after the optimizer update. Tensors created
 * with eqr_tensor_* are invalid afterwards; parameters are kept. */
void eqr_step_reset(eqr_ctx *ctx);

/* Bytes currently in use in / reserved by the step arena (for monitoring). */
size_t eqr_arena_used(const eqr_ctx *ctx);
size_t eqr_arena_reserved(const eqr_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
