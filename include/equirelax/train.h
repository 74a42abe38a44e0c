/* equirelax training helper: the loop every example and user shares.
 *
 * A trainer drives one model with one optimizer (and optionally a scheduler
 * and a relaxation): eqr_trainer_step takes a step's loss and does the rest
 * (relaxation penalty, backward, telemetry, clipping, optimizer and
 * scheduler steps, step reset); eqr_trainer_epoch runs a classification
 * epoch over a batcher; eqr_trainer_evaluate evaluates the model as it is
 * or projected (the relaxation dropped or folded on a copy of the
 * parameters, which are restored afterwards) in one call.
 *
 * Telemetry: every telemetry_every optimizer steps the trainer appends a
 * row to its step table (eqr_trainer_steps): step, epoch, task loss,
 * penalty, theta, learning rate and, per relaxed layer <l>, theta ||W_r x||
 * / ||f_eq x|| (eqr_rlayer_probe), ||W_r||, and ||m||, ||v|| of W_r's Adam
 * moments; with a probe dataset, also the loss and accuracy of the relaxed
 * and of the projected model on it and the jump at projection (measured
 * on the model the step starts from).
 *
 * Metrics tables (eqr_metrics) hold named columns of doubles (NaN = empty)
 * and are written as CSV and as SVG line charts, atomically (a reader or a
 * kill -9 sees the old file or the new one). Progress goes to a callback,
 * or to the context's log callback at EQR_LOG_INFO; the library prints
 * nothing. */
#ifndef EQUIRELAX_TRAIN_H
#define EQUIRELAX_TRAIN_H

#include "data.h"
#include "equivariance.h"
#include "module.h"
#include "optim.h"
#include "relax.h"
#include "schedule.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------- metrics tables */

typedef struct eqr_metrics eqr_metrics;

/* A table with ncols named columns (names copied; unique, non-empty,
 * without commas, quotes or line breaks). NULL on error (recorded). */
eqr_metrics *eqr_metrics_create(eqr_ctx *ctx, int ncols, const char *const *names);
void eqr_metrics_destroy(eqr_metrics *m);
int eqr_metrics_num_cols(const eqr_metrics *m);
int64_t eqr_metrics_num_rows(const eqr_metrics *m);
const char *eqr_metrics_col_name(const eqr_metrics *m, int col);
/* Index of the column called name, -1 if none. */
int eqr_metrics_find(const eqr_metrics *m, const char *name);
/* Append a row of ncols values (NaN: empty). */
eqr_status eqr_metrics_add_row(eqr_ctx *ctx, eqr_metrics *m, const double *values);
/* Value at (row, col); NaN out of range. */
double eqr_metrics_at(const eqr_metrics *m, int64_t row, int col);
/* Keep the first rows rows (e.g. on resume, the steps before the
 * checkpoint). */
void eqr_metrics_truncate(eqr_metrics *m, int64_t rows);
/* Write the table as CSV (a header line, then one line per row, %.9g,
 * empty fields for NaN), atomically. */
eqr_status eqr_metrics_write_csv(eqr_ctx *ctx, const eqr_metrics *m, const char *path);
/* Replace the rows by those of a CSV file this table wrote (on resume).
 * The header must name the same columns in the same order; a malformed
 * line is an error naming its number. On any error the table is left as it
 * was. Reads at most what the file holds. */
eqr_status eqr_metrics_read_csv(eqr_ctx *ctx, eqr_metrics *m, const char *path);

#define EQR_PLOT_MAX_SERIES 4
/* One panel of a chart: up to 4 columns drawn against the x column. */
typedef struct eqr_plot_panel {
    const char *title;
    int log_y;                                /* 1: logarithmic y axis */
    const char *cols[EQR_PLOT_MAX_SERIES];    /* column names; NULL ends the list */
    const char *labels[EQR_PLOT_MAX_SERIES];  /* legend (NULL: the column name) */
} eqr_plot_panel;

/* Write an SVG chart of npanels panels (two per row) over the column x_col,
 * atomically. Empty (NaN) values are skipped, the line joins the finite
 * neighbours; on a log axis values <= 0 sit at the panel's smallest
 * positive value. EQR_ERR_ARG naming an unknown column. */
eqr_status eqr_metrics_write_svg(eqr_ctx *ctx, const eqr_metrics *m, const char *path,
                                 const char *title, const char *x_col,
                                 const eqr_plot_panel *panels, int npanels);

/* ---------------------------------------------------------------- trainer */

typedef struct eqr_trainer eqr_trainer;

/* Switch the model's training behaviour (batch norm, dropout). */
typedef void (*eqr_train_mode_fn)(void *model, int training);

/* Where an epoch is. */
typedef struct eqr_progress {
    int64_t epoch, epochs;  /* epoch counts from 1; epochs as planned */
    int64_t done, total;    /* samples of this epoch */
    double loss, acc;       /* running means over the epoch so far */
    double rate;            /* samples per second */
    double eta;             /* seconds left in the epoch */
} eqr_progress;
/* Called after every step of eqr_trainer_epoch. */
typedef void (*eqr_progress_fn)(void *user, const eqr_progress *p);

typedef struct eqr_trainer_opts {
    eqr_forward_fn forward;      /* logits [N, classes] for x [N, C, H, W] (or module) */
    void *model;                 /* handed to forward and set_mode */
    eqr_train_mode_fn set_mode;  /* NULL: the model has no train/eval behaviour */
    /* A model built with the container (module.h), in place of the three
     * above (which must then be NULL): forward is eqr_module_apply, the
     * mode eqr_module_set_training. */
    eqr_module *module;
    eqr_optim *opt;              /* required */
    eqr_scheduler *sched;        /* stepped after each optimizer step; NULL: none */
    eqr_relax *relax;            /* NULL: strict training */
    eqr_project_mode project;    /* how projected evaluations project */
    float clip_norm;             /* > 0: clip the gradient norm to it */
    int64_t epochs;              /* the planned number, for progress */
    int64_t telemetry_every;     /* a step-table row every k steps; 0: none */
    const eqr_dataset *probe;    /* telemetry's held-out images (NULL: none) */
    int64_t eval_batch;          /* evaluation batch size; 0: 256 */
    eqr_progress_fn progress;    /* NULL: the log callback, every tenth of an epoch */
    void *progress_user;
    /* Called by eqr_trainer_step right after backward, before telemetry,
     * clipping and the optimizer, with the step's gradients in the store's
     * gradient block (e.g. eqr_dist_after_backward all-reduces them over
     * ranks). An error it returns ends the step. NULL: none. */
    eqr_status (*after_backward)(eqr_ctx *ctx, void *user);
    void *after_backward_user;
    /* Draws eqr_trainer_epoch's batches in place of eqr_batcher_next (same
     * contract; an error it records ends the epoch), e.g.
     * eqr_dist_next_batch: this rank's share of each global batch, the
     * epoch's statistics then being this rank's. NULL: eqr_batcher_next. */
    int (*next_batch)(void *user, eqr_batcher *b, float *x, int32_t *y, int64_t *count);
    void *next_batch_user;
    /* Sums n doubles in place over the processes of a data-parallel run
     * (e.g. eqr_dist_sum); eqr_trainer_epoch passes its task-loss sum,
     * correct count and sample count through it at the end of an epoch, so
     * its statistics are those of the global batches. An error it returns
     * ends the epoch. NULL: this process's own. */
    eqr_status (*reduce_sums)(eqr_ctx *ctx, void *user, double *v, int n);
    void *reduce_sums_user;
} eqr_trainer_opts;

/* NULL on error (recorded): a missing forward or optimizer. The step
 * table's per-layer columns are those of the relaxation's layers now. */
eqr_trainer *eqr_trainer_create(eqr_ctx *ctx, const eqr_trainer_opts *opts);
void eqr_trainer_destroy(eqr_trainer *t);

/* One optimizer step for this step's task loss (a scalar [1] over n
 * samples, from forwards since the last step reset): adds the relaxation's
 * penalty, runs backward, calls opts.after_backward if set, records
 * telemetry if due, clips, steps the
 * optimizer, the scheduler and (adaptive theta) the relaxation's dual
 * step, and ends the step (eqr_step_reset: the
 * step's tensors are released). *penalty (may be NULL) gets the penalty's
 * value (0 without relaxation). Telemetry (the layer probes and the probe
 * set's evaluations, on the model the step starts from) runs before the
 * update, so any error leaves the step not taken: parameters, optimizer
 * and scheduler as they were (clear the error and retry the step). */
eqr_status eqr_trainer_step(eqr_trainer *t, eqr_tensor *loss, int64_t n, double *penalty);

/* Summary of one epoch. */
typedef struct eqr_epoch_stats {
    int64_t seen, steps;
    double loss, acc;  /* mean task loss and accuracy over the epoch's samples */
    double penalty;    /* mean penalty per step */
    double secs;       /* wall time */
} eqr_epoch_stats;

/* One classification epoch over the batcher's next epoch (epoch counts
 * from 1, for progress and telemetry): per batch the forward in training
 * mode, softmax cross-entropy and eqr_trainer_step. */
eqr_status eqr_trainer_epoch(eqr_trainer *t, eqr_batcher *bt, int64_t epoch,
                             eqr_epoch_stats *out);

/* Mean softmax cross-entropy and accuracy over ds, gradients off, model in
 * evaluation mode (restored to training mode afterwards if set_mode is
 * given). projected = 1: on the projected model (with a relaxation;
 * parameters and buffers are snapshot and restored, so training goes on
 * unchanged); projected = 2: project and keep the model projected (the end
 * of training). Without a relaxation projected is ignored. */
eqr_status eqr_trainer_evaluate(eqr_trainer *t, const eqr_dataset *ds, int projected,
                                double *loss, double *acc);

/* The step table (telemetry rows), owned by the trainer. */
eqr_metrics *eqr_trainer_steps(eqr_trainer *t);

/* ------------------------------------------------------------- the run */

/* An equivariance measurement of the model on the first n images of ds
 * (e.g. the largest relative change of the logits under the grid-exact
 * elements of its group), written to *err. */
typedef eqr_status (*eqr_train_measure_fn)(eqr_ctx *ctx, void *model, const eqr_dataset *ds,
                                           int64_t n, double *err);
/* Called after each epoch with the epoch table and the epoch's row. */
typedef void (*eqr_epoch_fn)(void *user, const eqr_metrics *epochs, int64_t row);

/* What eqr_trainer_run does around the epochs; zero-initialise. */
typedef struct eqr_run_opts {
    eqr_batcher *train;           /* required */
    const eqr_dataset *test;      /* required: the projected evaluations */
    int64_t epochs;               /* required, >= 1 */
    int64_t eval_every;           /* evaluate projected every k epochs; 0: after the last only */
    eqr_train_measure_fn measure; /* the equivariance columns' measurement; NULL: invariance */
    const eqr_group *invariance;  /* measure NULL: eqr_invariance_max of forward's logits under
                                   * this group's grid-exact elements; NULL too: no columns */
    int64_t measure_n;            /* images of test the measurement uses (0: no columns) */
    const char *checkpoint;       /* saved after every epoch; NULL: none */
    int resume;                   /* continue from the checkpoint if it exists */
    uint64_t config;              /* hash of the settings: a checkpoint with another is refused */
    int64_t stop_after;           /* stop after this epoch (before the last); 0: run all */
    const char *metrics_csv;      /* the epoch table, rewritten after every epoch */
    const char *steps_csv;        /* the step table, likewise */
    const char *plot_svg;         /* a chart of the epoch table, likewise */
    const char *steps_svg;        /* a chart of the step table, likewise */
    const char *title;            /* of the chart */
    eqr_epoch_fn on_epoch;        /* NULL: none */
    void *user;
    /* Data-parallel runs: the number of processes (0 or 1: one). Above 1
     * it is recorded in the checkpoint (a third counter), and a resume from
     * a checkpoint written by another number of processes (one without it:
     * 1) is refused with EQR_ERR_MISMATCH naming both counts. */
    int64_t ranks;
    /* Nonzero: the checkpoint is read on resume but never written (the
     * ranks other than 0 of a data-parallel run; pass NULL for the other
     * files there). */
    int checkpoint_read_only;
} eqr_run_opts;

typedef struct eqr_run_result {
    int64_t resumed_after;  /* epochs a resumed checkpoint held; 0 for a fresh run */
    int64_t epochs_done;    /* the last epoch trained */
    int stopped;            /* 1 if stop_after ended the run early (nothing projected) */
    int projected;          /* 1 if the final model is the projected one (a relaxation) */
    double test_loss, test_acc; /* of the final model on test (NaN if stopped) */
} eqr_run_result;

/* Train for the remaining epochs: each epoch eqr_trainer_epoch, an
 * epoch-table row (epoch, steps, train_loss, train_acc, penalty, theta, lr,
 * test_loss_projected, test_acc_projected, equiv_err_relaxed,
 * equiv_err_projected, defect, act_norm_sq, wr_norm, seconds and per
 * relaxed layer <l>.wr_norm and <l>.act_norm, then per relaxed group conv
 * <l>.rg_spread, its eqr_rgconv_report max_rel_spread at the end of the
 * epoch, before any projection; empty where not measured),
 * the checkpoint (counters: the epoch and config), the projected
 * evaluation when due, the files and on_epoch. After the last epoch the
 * model is projected for good (after its checkpoint, which keeps the
 * relaxed model) and evaluated. With resume, a checkpoint at opts.checkpoint
 * is loaded (with the optimizer, the scheduler re-synced, the batcher moved
 * to the next epoch, the tables re-read from their files and cut to the
 * checkpoint); one written with another config or past epochs is refused;
 * a resumed run that had finished its epochs only projects and evaluates.
 * Output paths are checked before the first epoch. The epoch table is
 * eqr_trainer_epochs afterwards. */
eqr_status eqr_trainer_run(eqr_trainer *t, const eqr_run_opts *opts, eqr_run_result *out);

/* The epoch table of the last eqr_trainer_run (NULL before one). */
eqr_metrics *eqr_trainer_epochs(eqr_trainer *t);

#ifdef __cplusplus
}
#endif

#endif
