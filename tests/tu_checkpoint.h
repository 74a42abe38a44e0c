/* The small model and snapshot helpers shared by the checkpoint tests
 * (test_io_checkpoint_*.c). */
#ifndef TU_CHECKPOINT_H
#define TU_CHECKPOINT_H

#include "testutil.h"

/* ---- a small model with every kind of store entry ---- */

typedef struct tu_ckpt_spec {
    const char *wname;  /* name of the weight */
    int64_t wcols;      /* its second dimension */
    unsigned bflags;    /* flags of the bias */
    int extra;          /* add one more parameter at the end */
    int drop_last;      /* leave out the last parameter */
} tu_ckpt_spec;

/* The model of the reference file. */
extern const tu_ckpt_spec TU_CKPT_BASE;

/* The model of spec sp: w, b, running_var (buffer), scale and frozen, drawn
 * from seed. */
eqr_ctx *tu_ckpt_build(uint64_t seed, const tu_ckpt_spec *sp);

/* Optimizer with nonzero state: a few steps on random gradients. */
eqr_optim *tu_ckpt_opt(eqr_ctx *ctx, eqr_optim_kind kind, int nsteps);

/* Everything a load may write, copied. */
typedef struct tu_ckpt_snap {
    float *data, *state;
    int64_t total, state_len, steps;
    float lr;
    eqr_rng rng;
    uint64_t counters[8];
} tu_ckpt_snap;

tu_ckpt_snap tu_ckpt_take_snap(eqr_ctx *ctx, eqr_optim *opt, const uint64_t *counters, int nc);

/* Assert the context/optimizer/counters hold exactly what snapshot s holds. */
void tu_ckpt_assert_snap(const tu_ckpt_snap *s, eqr_ctx *ctx, eqr_optim *opt, const uint64_t *counters,
                         int nc);

void tu_ckpt_free_snap(tu_ckpt_snap *s);

/* A target model, optimizer and counters that differ from the saved ones. */
typedef struct tu_ckpt_target {
    eqr_ctx *ctx;
    eqr_optim *opt;
    uint64_t counters[3];
} tu_ckpt_target;

tu_ckpt_target tu_ckpt_make_target(const tu_ckpt_spec *sp, eqr_optim_kind kind);

void tu_ckpt_free_target(tu_ckpt_target *t);

/* Load path into t expecting status st with needles in the message, and
 * nothing changed. */
void tu_ckpt_expect_reject(tu_ckpt_target *t, const char *path, int nc, eqr_status st, const char *n1,
                           const char *n2, const char *n3);

#endif
