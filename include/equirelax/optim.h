/* equirelax optimizers and gradient clipping (learning-rate schedules: an
 * eqr_scheduler of schedule.h drives eqr_optim_set_lr).
 * An optimizer covers every trainable parameter of the context's store
 * (buffers and frozen parameters are skipped) as flat loops over the
 * contiguous blocks. */
#ifndef EQUIRELAX_OPTIM_H
#define EQUIRELAX_OPTIM_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum eqr_optim_kind {
    EQR_OPTIM_SGD = 0,  /* momentum, Nesterov, L2 weight decay added to grad */
    EQR_OPTIM_ADAM = 1, /* L2 weight decay added to grad */
    EQR_OPTIM_ADAMW = 2 /* decoupled weight decay: w -= lr * wd * w */
} eqr_optim_kind;

typedef struct eqr_optim_opts {
    eqr_optim_kind kind;
    float lr;
    float momentum;     /* SGD */
    int nesterov;       /* SGD, needs momentum > 0 */
    float weight_decay; /* not applied to EQR_PARAM_NO_DECAY parameters */
    float beta1, beta2, eps; /* Adam/AdamW; 0 means 0.9, 0.999, 1e-8 */
} eqr_optim_opts;

typedef struct eqr_optim eqr_optim;

/* Create an optimizer over the context's current parameters. Returns NULL on
 * error (recorded on ctx). Adding parameters afterwards makes step fail. */
eqr_optim *eqr_optim_create(eqr_ctx *ctx, const eqr_optim_opts *opts);
void eqr_optim_destroy(eqr_optim *opt);

/* One update with the current gradients and learning rate. */
eqr_status eqr_optim_step(eqr_optim *opt);
void eqr_optim_set_lr(eqr_optim *opt, float lr);
float eqr_optim_lr(const eqr_optim *opt);
/* Updates taken so far (restored by checkpoints). */
int64_t eqr_optim_num_steps(const eqr_optim *opt);

/* Optimizer state for checkpoints: the kind, the step count, and the state
 * floats (momentum, or Adam's m then v), state_len of them. */
eqr_optim_kind eqr_optim_get_kind(const eqr_optim *opt);
int64_t eqr_optim_num_state_floats(const eqr_optim *opt);
float *eqr_optim_state(eqr_optim *opt);
void eqr_optim_set_num_steps(eqr_optim *opt, int64_t steps);

/* Norms of the optimizer's state for one parameter p of its context, for
 * telemetry (e.g. how W_r's Adam moments behave while theta falls): Adam's
 * ||m|| and ||v|| (Frobenius over p's entries), SGD's ||momentum|| in
 * *m_norm and 0 in *v_norm; 0 and 0 for an optimizer without state.
 * EQR_ERR_ARG if p is not a parameter of the store the optimizer covers. */
eqr_status eqr_optim_state_norms(eqr_optim *opt, const eqr_tensor *p, double *m_norm,
                                 double *v_norm);

/* Scale all trainable gradients so their global L2 norm is at most max_norm.
 * Returns the norm before clipping (computed in double). */
float eqr_grad_clip_norm(eqr_ctx *ctx, float max_norm);

#ifdef __cplusplus
}
#endif
#endif
