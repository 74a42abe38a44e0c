/* Context, errors, logging and the step arena. */
#include "core/internal.h"

#include <cblas.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define EQR_ALIGN 64
#define EQR_DEFAULT_ARENA ((size_t)64 << 20)

const char *eqr_status_name(eqr_status s) {
    switch (s) {
    case EQR_OK: return "EQR_OK";
    case EQR_ERR_ARG: return "EQR_ERR_ARG";
    case EQR_ERR_SHAPE: return "EQR_ERR_SHAPE";
    case EQR_ERR_NOMEM: return "EQR_ERR_NOMEM";
    case EQR_ERR_IO: return "EQR_ERR_IO";
    case EQR_ERR_FORMAT: return "EQR_ERR_FORMAT";
    case EQR_ERR_MISMATCH: return "EQR_ERR_MISMATCH";
    case EQR_ERR_STATE: return "EQR_ERR_STATE";
    }
    return "EQR_ERR_UNKNOWN";
}

static eqr_arena_block *block_new(size_t size) {
    eqr_arena_block *b = aligned_alloc(EQR_ALIGN, EQR_ALIGN + size);
    if (!b) return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

eqr_ctx *eqr_ctx_create(const eqr_ctx_opts *opts) {
    eqr_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return NULL;
    eqr_ctx_opts o = {0};
    if (opts) o = *opts;
    ctx->threads = o.threads > 1 ? o.threads : 1;
    ctx->grad_enabled = 1;
    eqr_rng_seed(&ctx->rng, o.seed);
    size_t sz = o.arena_bytes ? o.arena_bytes : EQR_DEFAULT_ARENA;
    sz = (sz + EQR_ALIGN - 1) / EQR_ALIGN * EQR_ALIGN;
    ctx->arena.head = block_new(sz);
    if (!ctx->arena.head) {
        free(ctx);
        return NULL;
    }
    ctx->arena.total = sz;
    return ctx;
}

static void arena_free_blocks(eqr_arena *a) {
    eqr_arena_block *b = a->head;
    while (b) {
        eqr_arena_block *n = b->next;
        free(b);
        b = n;
    }
    a->head = NULL;
}

void eqr_ctx_destroy(eqr_ctx *ctx) {
    if (!ctx) return;
    arena_free_blocks(&ctx->arena);
    free(ctx->tape);
    for (int i = 0; i < ctx->nparams; i++) free(ctx->params[i].t);
    free(ctx->params);
    free(ctx->pdata);
    free(ctx->pgrad);
    free(ctx);
}

eqr_status eqr_error_status(const eqr_ctx *ctx) { return ctx ? ctx->status : EQR_ERR_ARG; }
const char *eqr_error_message(const eqr_ctx *ctx) { return ctx ? ctx->errmsg : "no context"; }

void eqr_error_clear(eqr_ctx *ctx) {
    if (!ctx) return;
    ctx->status = EQR_OK;
    ctx->errmsg[0] = '\0';
}

void eqr_ctx_set_log(eqr_ctx *ctx, eqr_log_fn fn, void *user) {
    if (!ctx) return;
    ctx->log_fn = fn;
    ctx->log_user = user;
}

eqr_rng *eqr_ctx_rng(eqr_ctx *ctx) { return ctx ? &ctx->rng : NULL; }
int eqr_ctx_num_threads(const eqr_ctx *ctx) { return ctx ? ctx->threads : 1; }

eqr_status eqr__fail(eqr_ctx *ctx, eqr_status st, const char *fmt, ...) {
    if (!ctx) return st;
    if (ctx->status != EQR_OK) return st; /* keep the first error */
    ctx->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->errmsg, sizeof ctx->errmsg, fmt, ap);
    va_end(ap);
    if (ctx->log_fn) ctx->log_fn(EQR_LOG_ERROR, ctx->errmsg, ctx->log_user);
    return st;
}

void *eqr__calloc(eqr_ctx *ctx, const char *fn, size_t n, size_t size) {
    void *p = calloc(n, size);
    if (!p) eqr__fail(ctx, EQR_ERR_NOMEM, "%s: out of memory", fn);
    return p;
}

void eqr__log(eqr_ctx *ctx, eqr_log_level level, const char *fmt, ...) {
    if (!ctx || !ctx->log_fn) return;
    char msg[EQR_ERRMSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ctx->log_fn(level, msg, ctx->log_user);
}

void *eqr__arena_alloc(eqr_ctx *ctx, size_t bytes) {
    eqr_arena *a = &ctx->arena;
    if (bytes > SIZE_MAX / 2) { /* rounding up below (and block headers) would overflow */
        eqr__fail(ctx, EQR_ERR_NOMEM, "step arena: request of %zu bytes is too large", bytes);
        return NULL;
    }
    size_t need = (bytes + EQR_ALIGN - 1) / EQR_ALIGN * EQR_ALIGN;
    if (need == 0) need = EQR_ALIGN;
    eqr_arena_block *b = a->head;
    if (!b || b->size - b->used < need) {
        size_t sz = need > a->total ? need : a->total; /* grow geometrically */
        eqr_arena_block *nb = block_new(sz);
        if (!nb) {
            eqr__fail(ctx, EQR_ERR_NOMEM, "step arena: cannot allocate %zu bytes", sz);
            return NULL;
        }
        nb->next = b;
        a->head = nb;
        a->total += sz;
        b = nb;
    }
    void *p = (char *)b + EQR_ALIGN + b->used;
    b->used += need;
    a->used += need;
    return p;
}

void *eqr__arena_calloc(eqr_ctx *ctx, size_t bytes) {
    void *p = eqr__arena_alloc(ctx, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void eqr_step_reset(eqr_ctx *ctx) {
    if (!ctx) return;
    eqr_arena *a = &ctx->arena;
    if (a->head && a->head->next) {
        /* Several blocks were needed: replace them by one that holds them all,
         * so the next steps fit without allocating. */
        size_t total = a->total;
        arena_free_blocks(a);
        a->head = block_new(total);
        if (!a->head) {
            a->total = 0;
            eqr__fail(ctx, EQR_ERR_NOMEM, "step arena: cannot allocate %zu bytes", total);
        }
    }
    if (a->head) a->head->used = 0;
    a->used = 0;
    ctx->tape_len = 0;
    ctx->tape_consumed = 0;
    ctx->step_id++;
}

size_t eqr_arena_used(const eqr_ctx *ctx) { return ctx ? ctx->arena.used : 0; }
size_t eqr_arena_reserved(const eqr_ctx *ctx) { return ctx ? ctx->arena.total : 0; }

/* Copy the k-th (0-based) top-level comma-separated entry of a stringified
 * argument list into buf, trimmed; commas inside brackets do not split. */
static void arg_name(const char *names, int k, char *buf, size_t cap) {
    const char *p = names;
    int depth = 0;
    while (*p && k > 0) {
        if (*p == '(' || *p == '[') depth++;
        else if ((*p == ')' || *p == ']') && depth > 0) depth--;
        else if (*p == ',' && depth == 0) k--;
        p++;
    }
    while (*p == ' ') p++;
    size_t len = 0;
    depth = 0;
    while (p[len] && !(p[len] == ',' && depth == 0)) {
        if (p[len] == '(' || p[len] == '[') depth++;
        else if ((p[len] == ')' || p[len] == ']') && depth > 0) depth--;
        len++;
    }
    while (len > 0 && p[len - 1] == ' ') len--;
    if (len >= cap) len = cap - 1;
    memcpy(buf, p, len);
    buf[len] = '\0';
}

int eqr__ok_at(eqr_ctx *ctx, const char *fn, const char *names, int n, ...) {
    if (!ctx || ctx->status != EQR_OK) return 0;
    va_list ap;
    va_start(ap, n);
    int bad = -1;
    for (int i = 0; i < n; i++)
        if (!va_arg(ap, const void *) && bad < 0) bad = i;
    va_end(ap);
    if (bad < 0) return 1;
    char name[EQR_NAME_LEN];
    arg_name(names, bad + 1, name, sizeof name); /* entry 0 is the count */
    eqr__fail(ctx, EQR_ERR_ARG, "%s: argument '%s' is NULL", fn, name);
    return 0;
}

void eqr__parallel(int n, eqr__task_fn fn, const void *arg) {
    if (n <= 1) {
        if (n == 1) fn(arg, 0);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel for num_threads(n) schedule(static, 1)
#endif
    for (int k = 0; k < n; k++) fn(arg, k);
}

eqr__arena_mark eqr__arena_save(const eqr_ctx *ctx) {
    eqr__arena_mark m = {ctx->arena.head, ctx->arena.head ? ctx->arena.head->used : 0,
                         ctx->arena.used, ctx->tape_len};
    return m;
}

void eqr__arena_rewind(eqr_ctx *ctx, eqr__arena_mark m) {
    eqr_arena *a = &ctx->arena;
    while (a->head && a->head != m.head) { /* blocks chained after the mark */
        eqr_arena_block *b = a->head;
        a->head = b->next;
        a->total -= b->size;
        free(b);
    }
    if (a->head) a->head->used = m.head_used;
    a->used = m.used;
    if (ctx->tape_len > m.tape_len) ctx->tape_len = m.tape_len;
}

/* Set once and left: restoring OpenBLAS's thread count after each call
 * wakes its spinning workers, which then take a core from the library's own
 * threads (a 3x3 32->64 conv on [64,32,14,14]: 4.8 ms with per-call restore,
 * 2.9 ms with the setting left at 1). */
void eqr__blas_single(int chunks) {
    if (chunks > 1 && openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

void eqr__scratch_release(eqr_ctx *ctx, eqr__arena_mark m) {
    if (ctx->status == EQR_OK && ctx->arena.head == m.head) eqr__arena_rewind(ctx, m);
}
