/* equirelax schedules: one interface for every value a training loop anneals
 * (the learning rate, the relaxation strength theta, ...).
 *
 * An eqr_schedule is a pure function of a position t (0-based), so resuming
 * needs only the position. An eqr_scheduler drives several scheduled
 * targets (an optimizer's learning rate, one-element tensors such as theta)
 * and is stepped once per optimizer step, next to eqr_optim_step:
 *
 *     eqr_optim_step(opt);
 *     eqr_scheduler_step(sched);   // sets every target for the next step
 *
 * A schedule counts in UNITS of unit_steps optimizer steps (1 = per step,
 * steps_per_epoch = per epoch): its value at optimizer step s is
 * value(floor(s / unit_steps)).
 *
 * Every decaying kind reaches `end` EXACTLY at t = total and stays there
 * (TRIANGLE and the decays use end = 0 by default when zero-initialised).
 * So a theta schedule with total = the number of training steps (unit 1)
 * has theta = 0 exactly once the last step is taken: the trained model is
 * then the projected (exactly equivariant) one. */
#ifndef EQUIRELAX_SCHEDULE_H
#define EQUIRELAX_SCHEDULE_H

#include "optim.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum eqr_sched_kind {
    EQR_SCHED_CONSTANT = 0, /* start for every t (the paper's "no schedule") */
    EQR_SCHED_LINEAR = 1,   /* start -> end linearly over [0, total] */
    EQR_SCHED_COSINE = 2,   /* end + (start - end)(1 + cos(pi t / total)) / 2 */
    EQR_SCHED_EXP = 3,      /* start * gamma^t for t < total, then end */
    EQR_SCHED_STEP = 4,     /* start * gamma^floor(t / step_size) for t < total, then end */
    EQR_SCHED_TRIANGLE = 5, /* end -> start (peak) at total/2 -> end at total, linear */
    EQR_SCHED_CALLBACK = 6  /* fn(t, user) for every t */
} eqr_sched_kind;

/* A user schedule: the value at position t. */
typedef float (*eqr_sched_fn)(int64_t t, void *user);

/* Zero-initialise and set what the kind needs. Linear warm-up applies to
 * every kind but TRIANGLE and CALLBACK (warmup must be 0 for those): for
 * t < warmup the value is start * (t + 1) / warmup, and the kind's own clock
 * then starts at warmup (t' = t - warmup, total' = total - warmup; kinds
 * with a total need warmup < total), so `end` is still reached at t = total. */
typedef struct eqr_schedule {
    eqr_sched_kind kind;
    float start;       /* initial value; the peak for TRIANGLE */
    float end;         /* final value (decaying kinds and TRIANGLE), usually 0 */
    int64_t total;     /* length in units; > 0 for every kind but CONSTANT, CALLBACK */
    int64_t warmup;    /* warm-up units (0 = none) */
    float gamma;       /* EXP, STEP: factor per unit / per step_size units, in (0, 1] */
    int64_t step_size; /* STEP: units per decay */
    int64_t unit_steps; /* optimizer steps per unit; 0 or 1 = per step */
    eqr_sched_fn fn;   /* CALLBACK */
    void *user;        /* CALLBACK */
} eqr_schedule;

/* Value of the schedule at position t (in units; t < 0 counts as 0).
 * Returns NAN for an invalid schedule (see eqr_schedule_check). */
float eqr_schedule_at(const eqr_schedule *s, int64_t t);

/* EQR_OK if s is well formed, else EQR_ERR_ARG with a message naming the
 * field (e.g. "eqr_schedule: total must be > 0 for LINEAR"). */
eqr_status eqr_schedule_check(eqr_ctx *ctx, const eqr_schedule *s);

/* Parse a schedule kind name ("constant", "linear", "cosine", "exp",
 * "step", "triangle"); returns -1 for an unknown name. */
int eqr_sched_kind_parse(const char *name);
/* Name of a kind (static string), "?" if unknown. */
const char *eqr_sched_kind_name(eqr_sched_kind kind);

/* Budget-aware theta schedules: the shape as fractions of the training's
 * total number of optimizer steps T, so one name serves any budget.
 *   "paper"  TRIANGLE: 0 -> peak at T/2 -> 0 at T (the paper's).
 *   "early"  COSINE with a linear warm-up over the first 5% of T (at least
 *            1 step), at 0 from T/2 on: the second half trains the exact
 *            equivariant model, which then needs no projection jump.
 *   "late"   COSINE, warm-up 10%, at 0 from 0.9 T (a short settle).
 * Fractions round down to whole steps; T must be >= 4 (each phase at least
 * one step). Fills *out (unit: one optimizer step). EQR_ERR_ARG for an
 * unknown name, T < 4 or a peak that is not finite and >= 0. */
eqr_status eqr_schedule_theta_preset(eqr_ctx *ctx, const char *name, float peak,
                                     int64_t total_steps, eqr_schedule *out);

typedef struct eqr_scheduler eqr_scheduler;

/* New scheduler. Its position is the optimizer's step count
 * (eqr_optim_num_steps), so a checkpoint that restores the optimizer restores
 * the schedule exactly; call eqr_scheduler_sync after loading. With
 * opt == NULL it keeps its own count (eqr_scheduler_seek to restore).
 * NULL on error (recorded). */
eqr_scheduler *eqr_scheduler_create(eqr_ctx *ctx, eqr_optim *opt);
void eqr_scheduler_destroy(eqr_scheduler *s);

/* Drive the learning rate of opt with sched (copied). Sets it at once for
 * the current position. EQR_ERR_ARG for a bad schedule or NULL opt. */
eqr_status eqr_scheduler_add_lr(eqr_scheduler *s, eqr_optim *opt, const eqr_schedule *sched);

/* Drive the one-element tensor target (e.g. eqr_relax_theta) with sched
 * (copied). Sets it at once. The tensor must outlive the scheduler. */
eqr_status eqr_scheduler_add_value(eqr_scheduler *s, eqr_tensor *target,
                                   const eqr_schedule *sched);

/* Advance by one optimizer step and set every target for the new position.
 * With an optimizer the position is re-read from it (so this only applies
 * the values: call it right after eqr_optim_step). */
eqr_status eqr_scheduler_step(eqr_scheduler *s);

/* Set every target for the current position (after a checkpoint load). */
eqr_status eqr_scheduler_sync(eqr_scheduler *s);

/* Current position in optimizer steps; set it (own count only, or it also
 * sets the optimizer's step count) and apply the values. */
int64_t eqr_scheduler_position(const eqr_scheduler *s);
eqr_status eqr_scheduler_seek(eqr_scheduler *s, int64_t step);

/* Current value of target i (in order of adding, learning rates included). */
float eqr_scheduler_value(const eqr_scheduler *s, int i);

#ifdef __cplusplus
}
#endif
#endif
