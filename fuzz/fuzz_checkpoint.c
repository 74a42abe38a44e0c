/* libFuzzer harness for eqr_checkpoint_load. Each input is loaded twice as
 * given and twice with its header's payload length and CRC-32 recomputed
 * (so mutations reach the section parser behind the checksum), each time
 * once without and once with an Adam optimizer. Invariants: a failed load
 * returns a status other than OK, sets a message and leaves every parameter,
 * the optimizer's state, steps and learning rate, the context RNG and the
 * counters byte-identical; LeakSanitizer reports leaks. The input goes
 * through a per-process temp file, so the library is fuzzed exactly as
 * shipped (it reads from paths). */
#include "fuzz_common.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define HEADER 24 /* magic, version, CRC-32, payload length */

static eqr_ctx *g_ctx;
static eqr_optim *g_opt;
static char g_path[64];

static void setup(void) {
    g_ctx = fuzz_ctx_new();
    int64_t s1[2] = {3, 4}, s2[1] = {5};
    eqr_tensor *a = eqr_param_create(g_ctx, "w", 2, s1, 0);
    eqr_tensor *b = eqr_param_create(g_ctx, "b", 1, s2, 0);
    if (!a || !b) abort();
    for (int64_t i = 0; i < a->numel; i++) a->data[i] = 0.25f * (float)i - 1.0f;
    for (int64_t i = 0; i < b->numel; i++) b->data[i] = 3.0f - (float)i;
    eqr_optim_opts oo;
    memset(&oo, 0, sizeof oo);
    oo.kind = EQR_OPTIM_ADAM;
    oo.lr = 0.01f;
    g_opt = eqr_optim_create(g_ctx, &oo);
    if (!g_opt) abort();
    float *st = eqr_optim_state(g_opt);
    for (int64_t i = 0; i < eqr_optim_num_state_floats(g_opt); i++) st[i] = 0.5f + (float)i;
    eqr_optim_set_num_steps(g_opt, 3);
    fuzz_path(g_path, sizeof g_path, "ckpt");
}

/* With FUZZ_WRITE_SEED set, write valid checkpoints of the harness model to
 * that path (no optimizer) and to that path with "_adam" inserted before
 * ".ckpt" (with the optimizer), then exit (used by make_corpus.sh). */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    setup();
    const char *seed = getenv("FUZZ_WRITE_SEED");
    if (seed) {
        uint64_t c[2] = {7, 9};
        char p2[512];
        size_t n = strlen(seed);
        if (n < 5 || n > 400) exit(1);
        snprintf(p2, sizeof p2, "%.*s_adam.ckpt", (int)(n - 5), seed);
        exit(eqr_checkpoint_save(g_ctx, seed, NULL, c, 2) == EQR_OK &&
                     eqr_checkpoint_save(g_ctx, p2, g_opt, c, 2) == EQR_OK
                 ? 0
                 : 1);
    }
    return 0;
}

/* Everything a load may write. */
typedef struct snap {
    float *params, *state;
    int64_t steps;
    float lr;
    eqr_rng rng;
} snap;

static void take(snap *s) {
    int64_t n = eqr_param_num_scalars(g_ctx), m = eqr_optim_num_state_floats(g_opt);
    s->params = malloc((size_t)n * sizeof(float));
    s->state = malloc((size_t)m * sizeof(float));
    if (!s->params || !s->state) abort();
    memcpy(s->params, eqr_param_data_block(g_ctx), (size_t)n * sizeof(float));
    memcpy(s->state, eqr_optim_state(g_opt), (size_t)m * sizeof(float));
    s->steps = eqr_optim_num_steps(g_opt);
    s->lr = eqr_optim_lr(g_opt);
    s->rng = *eqr_ctx_rng(g_ctx);
}
static int same(const snap *s) {
    int64_t n = eqr_param_num_scalars(g_ctx), m = eqr_optim_num_state_floats(g_opt);
    float lr = eqr_optim_lr(g_opt);
    return !memcmp(s->params, eqr_param_data_block(g_ctx), (size_t)n * sizeof(float)) &&
           !memcmp(s->state, eqr_optim_state(g_opt), (size_t)m * sizeof(float)) &&
           s->steps == eqr_optim_num_steps(g_opt) && !memcmp(&s->lr, &lr, sizeof lr) &&
           !memcmp(&s->rng, eqr_ctx_rng(g_ctx), sizeof s->rng);
}
static void restore(snap *s) {
    int64_t n = eqr_param_num_scalars(g_ctx), m = eqr_optim_num_state_floats(g_opt);
    memcpy(eqr_param_data_block(g_ctx), s->params, (size_t)n * sizeof(float));
    memcpy(eqr_optim_state(g_opt), s->state, (size_t)m * sizeof(float));
    eqr_optim_set_num_steps(g_opt, s->steps);
    eqr_optim_set_lr(g_opt, s->lr);
    *eqr_ctx_rng(g_ctx) = s->rng;
    free(s->params);
    free(s->state);
}

static void load(const uint8_t *data, size_t size, eqr_optim *opt) {
    fuzz_write(g_path, data, size);
    snap s;
    take(&s);
    uint64_t c[2] = {11, 13};
    eqr_error_clear(g_ctx);
    eqr_status st = eqr_checkpoint_load(g_ctx, g_path, opt, c, 2);
    if (st != EQR_OK) {
        if (!same(&s) || c[0] != 11 || c[1] != 13) {
            fprintf(stderr, "failed load changed the model, optimizer, RNG or counters\n");
            abort();
        }
        const char *m = eqr_error_message(g_ctx);
        if (!m || !m[0]) {
            fprintf(stderr, "error without a message\n");
            abort();
        }
    } else if (eqr_error_status(g_ctx) != EQR_OK) {
        fprintf(stderr, "load returned OK with an error on the context\n");
        abort();
    }
    restore(&s); /* every load starts from the same state */
    unlink(g_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load(data, size, NULL);
    load(data, size, g_opt);
    if (size < HEADER) return 0;
    uint8_t *b = malloc(size);
    if (!b) abort();
    memcpy(b, data, size);
    uint64_t plen = size - HEADER;
    for (int k = 0; k < 8; k++) b[16 + k] = (uint8_t)(plen >> (8 * k));
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), b + HEADER, (uInt)plen);
    for (int k = 0; k < 4; k++) b[12 + k] = (uint8_t)(crc >> (8 * k));
    if (memcmp(b, data, size) != 0) {
        load(b, size, NULL);
        load(b, size, g_opt);
    }
    free(b);
    return 0;
}
