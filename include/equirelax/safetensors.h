/* equirelax safetensors export and import of the parameter store: the
 * weights format PyTorch / JAX users read (Hugging Face safetensors):
 *
 *   u64 N (little-endian) | N bytes of JSON header | byte buffer
 *   header: {"__metadata__": {"library": "equirelax X.Y.Z", ...},
 *            "<name>": {"dtype": "F32", "shape": [d0, ...],
 *                       "data_offsets": [begin, end]}, ...}
 *   offsets count from the start of the buffer; values little-endian,
 *   row-major. Writers pad the header with spaces to a multiple of 8 bytes.
 *
 * Export writes every parameter (buffers on request) as F32 under its store
 * name, in store order, atomically (PATH.tmp, fsync, rename).
 *
 * Import validates the whole file before writing anything: header length at
 * most 100 MB and within the file; a strict JSON subset (an object of
 * objects with exactly the keys dtype, shape, data_offsets; non-negative
 * integers without sign, fraction or exponent; UTF-8 strings with the JSON
 * escapes; no duplicate keys; only whitespace after the object);
 * "__metadata__" an object of strings; offsets contiguous from 0 to the end
 * of the file, each of dtype size * element count bytes. Entries are matched
 * to the store by name as checkpoints are (eqr_load_opts: strict, partial,
 * skip patterns, skip_buffers); F32, F16, BF16 and F64 values are
 * converted to float (F64 rounded to nearest), other dtypes are validated
 * but refused for a store entry. No code runs, nothing is allocated beyond
 * what the file holds, and on any error memory is unchanged. */
#ifndef EQUIRELAX_SAFETENSORS_H
#define EQUIRELAX_SAFETENSORS_H

#include "checkpoint.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Options of eqr_safetensors_save; zero-initialise for the defaults. */
typedef struct eqr_safetensors_opts {
    int include_buffers; /* also export EQR_PARAM_BUFFER entries */
    /* Extra "__metadata__" pairs (UTF-8 strings; "library" is reserved). */
    const char *const *meta_keys;
    const char *const *meta_values;
    int nmeta;
} eqr_safetensors_opts;

/* Export the store to path. opts may be NULL. EQR_ERR_ARG for a name or
 * metadata string that is not UTF-8, EQR_ERR_IO if the file cannot be
 * written (path is then untouched). */
eqr_status eqr_safetensors_save(eqr_ctx *ctx, const char *path, const eqr_safetensors_opts *opts);

/* Import path into the store. opts NULL: strict (every stored name in the
 * store with the same shape, every store entry in the file); a file
 * exported without buffers loads strictly with opts->skip_buffers set.
 * report (may be NULL) as for eqr_checkpoint_load_opts. Errors:
 * EQR_ERR_IO, EQR_ERR_FORMAT (malformed file: the message names the byte
 * or the entry), EQR_ERR_MISMATCH (names, shapes, a dtype that is not a
 * float), EQR_ERR_ARG. */
eqr_status eqr_safetensors_load(eqr_ctx *ctx, const char *path, const eqr_load_opts *opts,
                                eqr_load_report *report);

#ifdef __cplusplus
}
#endif
#endif
