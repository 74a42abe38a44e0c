/* The tape and reverse-mode backward. */
#include "core/internal.h"

#include <stdlib.h>

int eqr_grad_set_enabled(eqr_ctx *ctx, int enabled) {
    if (!ctx) return 0;
    int prev = ctx->grad_enabled;
    ctx->grad_enabled = enabled ? 1 : 0;
    return prev;
}

int eqr_grad_enabled(const eqr_ctx *ctx) { return ctx ? ctx->grad_enabled : 0; }
int64_t eqr_tape_num_nodes(const eqr_ctx *ctx) { return ctx ? ctx->tape_len : 0; }

float *eqr__grad(eqr_ctx *ctx, eqr_tensor *t) {
    if (t->grad) return t->grad;
    if (t->base) {
        float *g = eqr__grad(ctx, t->base);
        if (!g) return NULL;
        t->grad = g + t->offset;
        return t->grad;
    }
    t->grad = eqr__arena_calloc(ctx, (size_t)t->numel * sizeof(float));
    return t->grad;
}

float *eqr__grad_all(eqr_ctx *ctx, eqr_tensor *t, int *acc) {
    *acc = t->grad || t->base;
    if (*acc) return eqr__grad(ctx, t);
    t->grad = eqr__arena_alloc(ctx, (size_t)t->numel * sizeof(float));
    return t->grad;
}

eqr_node *eqr__record(eqr_ctx *ctx, eqr_tensor *out, eqr_backward_fn bw, int nin,
                      eqr_tensor *const *in) {
    if (!ctx->grad_enabled || ctx->status != EQR_OK) return NULL;
    int need = 0;
    for (int k = 0; k < nin; k++) need |= eqr__needs_grad(in[k]);
    if (!need) return NULL;
    if (ctx->tape_consumed) {
        eqr__fail(ctx, EQR_ERR_STATE,
                  "autodiff: recording after backward; call eqr_step_reset between steps");
        return NULL;
    }
    if (ctx->tape_len == ctx->tape_cap) {
        int64_t cap = ctx->tape_cap ? 2 * ctx->tape_cap : 256;
        eqr_node *nt = realloc(ctx->tape, (size_t)cap * sizeof *nt);
        if (!nt) {
            eqr__fail(ctx, EQR_ERR_NOMEM, "autodiff: cannot grow the tape to %lld nodes",
                      (long long)cap);
            return NULL;
        }
        ctx->tape = nt;
        ctx->tape_cap = cap;
    }
    eqr_node *n = &ctx->tape[ctx->tape_len];
    memset(n, 0, sizeof *n);
    n->backward = bw;
    n->out = out;
    n->nin = nin;
    for (int k = 0; k < nin; k++) n->in[k] = in[k];
    out->flags |= EQR_T_REQUIRES_GRAD;
    out->node = (int32_t)ctx->tape_len;
    ctx->tape_len++;
    return n;
}

eqr_node *eqr__record_with(eqr_ctx *ctx, eqr_tensor *out, eqr_backward_fn bw, int nin,
                           eqr_tensor *const *in, void *saved, int ni, const int64_t *iv) {
    eqr_node *n = eqr__record(ctx, out, bw, nin, in);
    if (n) {
        n->saved = saved;
        memcpy(n->i, iv, (size_t)ni * sizeof *iv);
    }
    return n;
}

static eqr_status run_backward(eqr_ctx *ctx, eqr_tensor *out, const float *seed) {
    if (ctx->tape_consumed)
        return eqr__fail(ctx, EQR_ERR_STATE,
                         "eqr_backward: this step's tape was already used; call eqr_step_reset");
    if (!eqr__needs_grad(out))
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "eqr_backward: the tensor does not depend on any parameter "
                         "(or was computed with gradients disabled)");
    float *g = eqr__grad(ctx, out);
    if (!g) return ctx->status;
    for (int64_t i = 0; i < out->numel; i++) g[i] += seed ? seed[i] : 1.0f;
    /* The latest node that produced out, a view of it or its root bounds the
     * walk (an in-place op's output is a view whose node is newer than its
     * root's). */
    const eqr_tensor *o = out;
    int64_t last = out->node;
    while (o->base) {
        o = o->base;
        if (o->node > last) last = o->node;
    }
    if (last < 0) { /* a parameter itself: its gradient is the seed */
        ctx->tape_consumed = 1;
        return EQR_OK;
    }
    for (int64_t k = last; k >= 0; k--) {
        eqr_node *n = &ctx->tape[k];
        if (!n->out->grad) {
            /* A node whose output is a view (eqr_relu_inplace) gets its
             * gradient through its root's buffer when a consumer took the
             * gradient of another view of that root (e.g. a reshape). */
            const eqr_tensor *r = n->out;
            while (r->base && !r->grad) r = r->base;
            if (!r->grad) continue; /* nothing flowed into this node */
            if (!eqr__grad(ctx, n->out)) return ctx->status; /* resolves, no allocation */
        }
        n->backward(ctx, n);
        if (ctx->status != EQR_OK) return ctx->status;
    }
    ctx->tape_consumed = 1;
    return EQR_OK;
}

eqr_status eqr_backward(eqr_ctx *ctx, eqr_tensor *loss) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!loss) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_backward: loss is NULL");
    if (loss->numel != 1) {
        char b[EQR_SHAPE_BUF];
        return eqr__fail(ctx, EQR_ERR_SHAPE,
                         "eqr_backward: loss must be a scalar (one element), got shape %s",
                         EQR_SHAPE(loss, b));
    }
    return run_backward(ctx, loss, NULL);
}

eqr_status eqr_backward_from(eqr_ctx *ctx, eqr_tensor *out, const eqr_tensor *seed) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!out || !seed) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_backward_from: NULL tensor");
    if (!eqr_tensor_same_shape(seed, out)) {
        char b1[EQR_SHAPE_BUF], b2[EQR_SHAPE_BUF];
        return eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_backward_from: seed shape %s != output shape %s",
                         EQR_SHAPE(seed, b1), EQR_SHAPE(out, b2));
    }
    return run_backward(ctx, out, seed->data);
}

void eqr_grad_zero(eqr_ctx *ctx) {
    if (!ctx || !ctx->pgrad) return;
    memset(ctx->pgrad, 0, (size_t)ctx->ptotal * sizeof(float));
}
