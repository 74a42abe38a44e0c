/* Checkpoint test helpers; see tu_checkpoint.h. */
#include "tu_checkpoint.h"

#include <stdlib.h>
#include <string.h>

const tu_ckpt_spec TU_CKPT_BASE = {"w", 4, EQR_PARAM_NO_DECAY, 0, 0};

eqr_ctx *tu_ckpt_build(uint64_t seed, const tu_ckpt_spec *sp) {
    eqr_ctx *ctx = tu_ctx(seed);
    int64_t ws[2] = {3, sp->wcols}, bs[1] = {4}, fs[2] = {2, 2}, es[1] = {2};
    assert_non_null(tu_input(ctx, sp->wname, 2, ws, 1.0f));
    eqr_tensor *b = eqr_param_create(ctx, "b", 1, bs, sp->bflags);
    eqr_tensor *run = eqr_param_create(ctx, "running_var", 1, bs, EQR_PARAM_BUFFER);
    eqr_tensor *sc = eqr_param_create(ctx, "scale", 0, NULL, 0);
    assert_non_null(b);
    assert_non_null(run);
    assert_non_null(sc);
    eqr_tensor_normal(b, eqr_ctx_rng(ctx), 1.0f);
    eqr_tensor_normal(run, eqr_ctx_rng(ctx), 1.0f);
    sc->data[0] = eqr_rng_normal(eqr_ctx_rng(ctx));
    if (!sp->drop_last) {
        eqr_tensor *fr = eqr_param_create(ctx, "frozen", 2, fs, EQR_PARAM_FROZEN);
        assert_non_null(fr);
        eqr_tensor_normal(fr, eqr_ctx_rng(ctx), 1.0f);
    }
    if (sp->extra) assert_non_null(eqr_param_create(ctx, "extra", 1, es, 0));
    return ctx;
}

/* Optimizer with nonzero state: a few steps on random gradients. */
eqr_optim *tu_ckpt_opt(eqr_ctx *ctx, eqr_optim_kind kind, int nsteps) {
    eqr_optim_opts o = {.kind = kind, .lr = 0.01f, .momentum = kind == EQR_OPTIM_SGD ? 0.9f : 0};
    eqr_optim *opt = eqr_optim_create(ctx, &o);
    assert_non_null(opt);
    eqr_rng r;
    eqr_rng_seed(&r, 77 + (uint64_t)kind);
    float *g = eqr_param_grad_block(ctx);
    for (int s = 0; s < nsteps; s++) {
        for (int64_t i = 0; i < eqr_param_num_scalars(ctx); i++) g[i] = eqr_rng_normal(&r);
        assert_int_equal(eqr_optim_step(opt), EQR_OK);
    }
    eqr_grad_zero(ctx);
    return opt;
}

tu_ckpt_snap tu_ckpt_take_snap(eqr_ctx *ctx, eqr_optim *opt, const uint64_t *counters, int nc) {
    tu_ckpt_snap s;
    memset(&s, 0, sizeof s);
    s.total = eqr_param_num_scalars(ctx);
    s.data = malloc((size_t)s.total * sizeof(float));
    assert_non_null(s.data);
    memcpy(s.data, eqr_param_data_block(ctx), (size_t)s.total * sizeof(float));
    if (opt) {
        s.state_len = eqr_optim_num_state_floats(opt);
        s.state = malloc((size_t)s.state_len * sizeof(float) + 1);
        assert_non_null(s.state);
        if (s.state_len)
            memcpy(s.state, eqr_optim_state(opt), (size_t)s.state_len * sizeof(float));
        s.steps = eqr_optim_num_steps(opt);
        s.lr = eqr_optim_lr(opt);
    }
    s.rng = *eqr_ctx_rng(ctx);
    if (nc) memcpy(s.counters, counters, (size_t)nc * sizeof(uint64_t));
    return s;
}

/* Assert the context/optimizer/counters hold exactly what snapshot s holds. */
void tu_ckpt_assert_snap(const tu_ckpt_snap *s, eqr_ctx *ctx, eqr_optim *opt, const uint64_t *counters,
                         int nc) {
    assert_int_equal(eqr_param_num_scalars(ctx), s->total);
    assert_memory_equal(s->data, eqr_param_data_block(ctx), (size_t)s->total * sizeof(float));
    if (opt) {
        assert_int_equal(eqr_optim_num_state_floats(opt), s->state_len);
        if (s->state_len)
            assert_memory_equal(s->state, eqr_optim_state(opt),
                                (size_t)s->state_len * sizeof(float));
        assert_int_equal(eqr_optim_num_steps(opt), s->steps);
        assert_true(eqr_optim_lr(opt) == s->lr);
    }
    assert_memory_equal(&s->rng, eqr_ctx_rng(ctx), sizeof s->rng);
    if (nc) assert_memory_equal(s->counters, counters, (size_t)nc * sizeof(uint64_t));
}

void tu_ckpt_free_snap(tu_ckpt_snap *s) {
    free(s->data);
    free(s->state);
}

tu_ckpt_target tu_ckpt_make_target(const tu_ckpt_spec *sp, eqr_optim_kind kind) {
    tu_ckpt_target t;
    t.ctx = tu_ckpt_build(99, sp);
    t.opt = tu_ckpt_opt(t.ctx, kind, 1);
    for (int i = 0; i < 3; i++) t.counters[i] = 1000 + (uint64_t)i;
    return t;
}

void tu_ckpt_free_target(tu_ckpt_target *t) {
    eqr_optim_destroy(t->opt);
    eqr_ctx_destroy(t->ctx);
}

/* Load path into t expecting status st with needles in the message, and
 * nothing changed. */
void tu_ckpt_expect_reject(tu_ckpt_target *t, const char *path, int nc, eqr_status st, const char *n1,
                           const char *n2, const char *n3) {
    tu_ckpt_snap s = tu_ckpt_take_snap(t->ctx, t->opt, t->counters, 3);
    eqr_status got = eqr_checkpoint_load(t->ctx, path, t->opt, t->counters, nc);
    if (got != st)
        fail_msg("load of %s: expected %s, got %s (%s)", path, eqr_status_name(st),
                 eqr_status_name(got), eqr_error_message(t->ctx));
    const char *msg = eqr_error_message(t->ctx);
    const char *needles[3] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (needles[i] && !strstr(msg, needles[i]))
            fail_msg("message '%s' lacks '%s'", msg, needles[i]);
    eqr_error_clear(t->ctx);
    tu_ckpt_assert_snap(&s, t->ctx, t->opt, t->counters, 3);
    tu_ckpt_free_snap(&s);
}
