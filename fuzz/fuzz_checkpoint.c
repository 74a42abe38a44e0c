/* libFuzzer harness for eqr_checkpoint_load. Invariants checked on every
 * input: a failed load returns a status other than OK, sets a message and
 * leaves every parameter byte-identical. The input goes through a per-process temp file, so the
 * library is fuzzed exactly as shipped (it reads from paths). */
#include <equirelax/equirelax.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static eqr_ctx *g_ctx;
static char g_path[64];

static void setup(void) {
    eqr_ctx_opts o;
    memset(&o, 0, sizeof o);
    g_ctx = eqr_ctx_create(&o);
    int64_t s1[2] = {3, 4}, s2[1] = {5};
    eqr_tensor *a = eqr_param_new(g_ctx, "w", 2, s1, 0);
    eqr_tensor *b = eqr_param_new(g_ctx, "b", 1, s2, 0);
    if (!a || !b) abort();
    for (int64_t i = 0; i < a->numel; i++) a->data[i] = 0.25f * (float)i - 1.0f;
    for (int64_t i = 0; i < b->numel; i++) b->data[i] = 3.0f - (float)i;
    snprintf(g_path, sizeof g_path, "/tmp/eqr_fuzz_ckpt_%d", (int)getpid());
}

/* With FUZZ_WRITE_SEED set, write a valid checkpoint of the harness model
 * to that path (used by make_corpus.sh) and exit. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    setup();
    const char *seed = getenv("FUZZ_WRITE_SEED");
    if (seed) {
        uint64_t c[2] = {7, 9};
        exit(eqr_checkpoint_save(g_ctx, seed, NULL, c, 2) == EQR_OK ? 0 : 1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(g_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    int n = eqr_param_count(g_ctx);
    float *before[8];
    for (int i = 0; i < n; i++) {
        eqr_tensor *t = eqr_param_at(g_ctx, i);
        before[i] = malloc((size_t)t->numel * sizeof(float));
        memcpy(before[i], t->data, (size_t)t->numel * sizeof(float));
    }
    uint64_t c[2] = {0, 0};
    eqr_status st = eqr_checkpoint_load(g_ctx, g_path, NULL, c, 2);
    if (st != EQR_OK && eqr_status_get(g_ctx) == EQR_OK) { fprintf(stderr, "status not recorded\n"); abort(); }
    for (int i = 0; i < n; i++) {
        eqr_tensor *t = eqr_param_at(g_ctx, i);
        if (st != EQR_OK) {
            if (memcmp(before[i], t->data, (size_t)t->numel * sizeof(float)) != 0) {
                fprintf(stderr, "failed load changed parameter %d\n", i);
                abort();
            }
        } else {
            /* restore, so every run starts from the same parameters */
            memcpy(t->data, before[i], (size_t)t->numel * sizeof(float));
        }
        free(before[i]);
    }
    if (st != EQR_OK) {
        const char *m = eqr_error_message(g_ctx);
        if (!m || !m[0]) { fprintf(stderr, "error without a message\n"); abort(); }
        eqr_clear_error(g_ctx); /* or every later load returns at once */
    }
    unlink(g_path);
    return 0;
}
