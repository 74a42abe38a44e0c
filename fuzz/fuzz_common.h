/* What every libFuzzer harness here shares: a context with the default
 * options, a scratch file per process, writing an input to it, and a
 * failure report that aborts (libFuzzer then keeps the input). */
#ifndef EQR_FUZZ_COMMON_H
#define EQR_FUZZ_COMMON_H

#include <equirelax/equirelax.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static eqr_ctx *fuzz_ctx_new(void) {
    eqr_ctx_opts o;
    memset(&o, 0, sizeof o);
    eqr_ctx *ctx = eqr_ctx_create(&o);
    if (!ctx) abort();
    return ctx;
}

/* "/tmp/eqr_fuzz_<tag>_<pid>" into buf. */
static void fuzz_path(char *buf, size_t n, const char *tag) {
    snprintf(buf, n, "/tmp/eqr_fuzz_%s_%d", tag, (int)getpid());
}

static void fuzz_write(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
}

static void fuzz_fail(const char *harness, eqr_ctx *ctx, const char *what) {
    fprintf(stderr, "%s: %s (message: '%s')\n", harness, what, eqr_error_message(ctx));
    abort();
}

#endif
