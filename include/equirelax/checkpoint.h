/* equirelax checkpoints: parameters and buffers (by name), optimizer state,
 * step counters, the context RNG and caller counters (epoch, batch, ...).
 *
 * Format: little-endian, magic "EQRCKPT1", format version, section sizes,
 * CRC-32 of everything after the header. Saving writes PATH.tmp, flushes it
 * to disk and renames it over PATH, so a crash never leaves a half-written
 * checkpoint in place. Loading validates the whole file (size, magic,
 * version, checksum, names, shapes, optimizer kind) before touching memory:
 * on any error nothing in the context or optimizer changes.
 *
 * Entries are matched BY NAME (not by position): a model whose parameters
 * were created in another order loads the same file. Each matched entry must
 * have the same shape. A strict load (the default) also requires the two
 * sides to hold the same set of names (and flags); a partial load copies the
 * intersection and leaves the rest of the store as it was. Optimizer state
 * (SGD momentum, Adam's m and v) is stored per parameter and follows the
 * same matching (entries a partial load leaves out keep their state too);
 * steps, learning rate, RNG and counters are restored whole.
 *
 * A projected model (built without its eqr_relax objects, so without the
 * "<layer>.wr" and "<relax>.theta" entries) loads a checkpoint of the relaxed
 * model with skip patterns, keeping every other name strict:
 *     const char *relax_names[] = {"*.wr", "*.theta"};
 *     eqr_load_opts lo = {.skip = relax_names, .nskip = 2};
 *     eqr_checkpoint_load_opts(ctx, path, NULL, NULL, 0, &lo, NULL);
 * or with .mode = EQR_LOAD_PARTIAL, which also reports what was left out.
 *
 * Versions: files of format version 1 (written before name matching, with
 * one flat optimizer state vector) still load, by name; version 2 is written.
 * Other versions are refused with a message naming the version. */
#ifndef EQUIRELAX_CHECKPOINT_H
#define EQUIRELAX_CHECKPOINT_H

#include "optim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum eqr_load_mode {
    EQR_LOAD_STRICT = 0, /* same names on both sides, same shapes and flags */
    EQR_LOAD_PARTIAL = 1 /* load the names both sides hold; shapes must still agree */
} eqr_load_mode;

/* Why a name was not loaded (eqr_load_opts.on_name). */
typedef enum eqr_load_event {
    EQR_LOAD_MISSING = 0,    /* in the store, not in the file: kept as it was */
    EQR_LOAD_UNEXPECTED = 1, /* in the file, not in the store: not read */
    EQR_LOAD_SKIPPED = 2     /* matched a skip pattern (either side): not read */
} eqr_load_event;

typedef void (*eqr_load_name_fn)(eqr_load_event what, const char *name, void *user);

/* Options of a load; zero-initialise for a strict load. */
typedef struct eqr_load_opts {
    eqr_load_mode mode;
    /* Names to leave out on both sides, in either mode: "*.wr" matches a
     * suffix, "head.*" a prefix, "*" everything, anything else exactly. */
    const char *const *skip;
    int nskip;
    /* Nonzero: the store's buffers (EQR_PARAM_BUFFER, e.g. batch-norm
     * running statistics) are neither expected in the file nor loaded, as
     * for a safetensors export without buffers. Counted as skipped. */
    int skip_buffers;
    /* Called once per name not loaded, after a successful load (may be NULL). */
    eqr_load_name_fn on_name;
    void *user;
} eqr_load_opts;

#define EQR_LOAD_REPORT_NAMES 4
/* What a load did (also filled when it fails, to say why). Names are the
 * first few in store order (missing) or file order (unexpected). */
typedef struct eqr_load_report {
    int loaded;     /* store entries written from the file */
    int missing;    /* store entries not in the file */
    int unexpected; /* file entries not in the store */
    int skipped;    /* entries (of either side) matching a skip pattern */
    int mismatched; /* names on both sides with other shapes (always an error) */
    char missing_names[EQR_LOAD_REPORT_NAMES][64];
    char unexpected_names[EQR_LOAD_REPORT_NAMES][64];
} eqr_load_report;

/* Save to path. opt may be NULL (no optimizer state). counters[ncounters]
 * are caller values stored verbatim (ncounters <= 64, may be 0). */
eqr_status eqr_checkpoint_save(eqr_ctx *ctx, const char *path, const eqr_optim *opt,
                               const uint64_t *counters, int ncounters);

/* Strict load from path into the context's parameters, the RNG, opt (if not
 * NULL; the file must then hold state for the same optimizer kind) and
 * counters (ncounters must equal the number saved). Same as
 * eqr_checkpoint_load_opts with opts and report NULL. */
eqr_status eqr_checkpoint_load(eqr_ctx *ctx, const char *path, eqr_optim *opt,
                               uint64_t *counters, int ncounters);

/* The caller counters of the checkpoint at path (validated as a load
 * does), without loading anything: up to max into counters, their number
 * into *ncounters. EQR_ERR_ARG if the file holds more than max. */
eqr_status eqr_checkpoint_counters(eqr_ctx *ctx, const char *path, uint64_t *counters, int max,
                                   int *ncounters);

/* Load with options (NULL: strict) and an optional report. A partial load
 * also logs its summary at EQR_LOG_INFO through the log callback. Errors:
 * EQR_ERR_IO (cannot read), EQR_ERR_FORMAT (corrupt, truncated, other
 * version), EQR_ERR_MISMATCH (names, shapes, flags, optimizer, counters),
 * EQR_ERR_ARG; nothing in memory changes on any of them. */
eqr_status eqr_checkpoint_load_opts(eqr_ctx *ctx, const char *path, eqr_optim *opt,
                                    uint64_t *counters, int ncounters,
                                    const eqr_load_opts *opts, eqr_load_report *report);

#ifdef __cplusplus
}
#endif
#endif
