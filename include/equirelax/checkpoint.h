/* equirelax checkpoints: parameters and buffers (by name), optimizer state,
 * step counters, the context RNG and caller counters (epoch, batch, ...).
 *
 * Format: little-endian, magic "EQRCKPT1", format version, section sizes,
 * CRC-32 of everything after the header. Saving writes PATH.tmp, flushes it
 * to disk and renames it over PATH, so a crash never leaves a half-written
 * checkpoint in place. Loading validates the whole file (size, magic,
 * version, checksum, names, shapes, optimizer kind) before touching memory:
 * on any error nothing in the context or optimizer changes. */
#ifndef EQUIRELAX_CHECKPOINT_H
#define EQUIRELAX_CHECKPOINT_H

#include "optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Save to path. opt may be NULL (no optimizer state). counters[ncounters]
 * are caller values stored verbatim (ncounters <= 64, may be 0). */
eqr_status eqr_checkpoint_save(eqr_ctx *ctx, const char *path, const eqr_optim *opt,
                               const uint64_t *counters, int ncounters);

/* Load from path into the context's parameters, the RNG, opt (if not NULL;
 * the file must then hold state for the same optimizer kind and size) and
 * counters (ncounters must equal the number saved). */
eqr_status eqr_checkpoint_load(eqr_ctx *ctx, const char *path, eqr_optim *opt,
                               uint64_t *counters, int ncounters);

#ifdef __cplusplus
}
#endif
#endif
