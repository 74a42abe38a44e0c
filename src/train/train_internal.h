/* Internals shared by the training helper's files. Not installed. */
#ifndef EQR_TRAIN_INTERNAL_H
#define EQR_TRAIN_INTERNAL_H

#include "core/internal.h"
#include "equirelax/train.h"

/* Column col of the table copied into scratch (rows doubles); returns it. */
const double *eqr__metrics_col_values(const eqr_metrics *m, int col, double *scratch);

/* The trainer's parts, for the run loop (run.c). */
eqr_ctx *eqr__trainer_ctx(eqr_trainer *t);
eqr_optim *eqr__trainer_optim(eqr_trainer *t);
eqr_scheduler *eqr__trainer_sched(eqr_trainer *t);
eqr_relax *eqr__trainer_relax(eqr_trainer *t);
/* opts.reduce_sums on v[0..n) if set (a data-parallel run), else nothing. */
eqr_status eqr__trainer_reduce(eqr_trainer *t, double *v, int n);
/* Optimizer steps so far (after a resume), for telemetry's step numbers. */
void eqr__trainer_set_steps(eqr_trainer *t, int64_t steps);
/* Replace the epoch table (the trainer owns it). */
void eqr__trainer_set_epochs(eqr_trainer *t, eqr_metrics *m);
/* The equivariance measurement of a run: the user's fn, else (with a
 * group) eqr_invariance_max of the trainer's forward; on the first n
 * images; none when n is 0 or neither is given. */
typedef struct eqr__measure {
    eqr_train_measure_fn fn;
    const eqr_group *invariance;
    int64_t n;
} eqr__measure;
/* Evaluate on ds: mode 0 as is, 1 projected on a copy, 2 projected for
 * good; with a measurement (may be NULL), the equivariance before and
 * after projection (NaN without). */
eqr_status eqr__trainer_eval_projected(eqr_trainer *t, const eqr_dataset *ds, int mode,
                                       const eqr__measure *me, double *loss, double *acc,
                                       double *eq_relaxed, double *eq_projected);

#endif
