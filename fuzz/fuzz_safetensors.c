/* libFuzzer harness for eqr_safetensors_load, strict and partial. Invariants
 * checked on every input: a failed load returns a status other than OK,
 * sets a message and leaves every parameter byte-identical; a successful
 * strict load loaded every entry. The input goes through a per-process temp
 * file, so the library is fuzzed exactly as shipped (it reads from paths). */
#include "fuzz_common.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static eqr_ctx *g_ctx;
static char g_path[64];

static void setup(void) {
    g_ctx = fuzz_ctx_new();
    int64_t s1[2] = {3, 4}, s2[1] = {5};
    eqr_tensor *a = eqr_param_create(g_ctx, "w", 2, s1, 0);
    eqr_tensor *b = eqr_param_create(g_ctx, "b", 1, s2, 0);
    eqr_tensor *c = eqr_param_create(g_ctx, "s", 0, NULL, EQR_PARAM_BUFFER);
    if (!a || !b || !c) abort();
    for (int64_t i = 0; i < a->numel; i++) a->data[i] = 0.25f * (float)i - 1.0f;
    for (int64_t i = 0; i < b->numel; i++) b->data[i] = 3.0f - (float)i;
    c->data[0] = 0.5f;
    fuzz_path(g_path, sizeof g_path, "st");
}

/* With FUZZ_WRITE_SEED set, export the harness model (buffers included) to
 * that path (used by make_corpus_safetensors.sh) and exit. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    setup();
    const char *seed = getenv("FUZZ_WRITE_SEED");
    if (seed) {
        eqr_safetensors_opts so = {.include_buffers = 1};
        exit(eqr_safetensors_save(g_ctx, seed, &so) == EQR_OK ? 0 : 1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write(g_path, data, size);
    int n = eqr_param_num_tensors(g_ctx);
    size_t bytes = (size_t)eqr_param_num_scalars(g_ctx) * sizeof(float);
    float *before = malloc(bytes);
    memcpy(before, eqr_param_data_block(g_ctx), bytes);
    const char *pat[1] = {"*.theta"};
    for (int mode = 0; mode < 2; mode++) {
        eqr_load_opts lo = {.mode = mode ? EQR_LOAD_PARTIAL : EQR_LOAD_STRICT, .skip = pat, .nskip = 1};
        eqr_load_report rep;
        eqr_status st = eqr_safetensors_load(g_ctx, g_path, &lo, &rep);
        if (st != EQR_OK) {
            const char *m = eqr_error_message(g_ctx);
            if (!m || !m[0]) { fprintf(stderr, "error without a message\n"); abort(); }
            if (memcmp(before, eqr_param_data_block(g_ctx), bytes) != 0) {
                fprintf(stderr, "failed load changed the store\n");
                abort();
            }
            eqr_error_clear(g_ctx); /* or every later load returns at once */
        } else {
            if (mode == 0 && rep.loaded != n) { fprintf(stderr, "strict load left entries\n"); abort(); }
            /* restore, so every run starts from the same parameters */
            memcpy(eqr_param_data_block(g_ctx), before, bytes);
        }
    }
    free(before);
    unlink(g_path);
    return 0;
}
