/* eqr_trainer_run (train.h): the epochs of a classification run with
 * checkpoints and resume, projected evaluations, the epoch table and its
 * files. */
#include "train/train_internal.h"
#include "equirelax/checkpoint.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const epoch_cols[] = {
    "epoch", "steps", "train_loss", "train_acc", "penalty", "theta", "lr",
    "test_loss_projected", "test_acc_projected", "equiv_err_relaxed", "equiv_err_projected",
    "defect", "act_norm_sq", "wr_norm", "seconds"};
/* seconds last of the fixed columns: everything before it repeats exactly
 * on a rerun or a resume */
enum {
    E_EPOCH, E_STEPS, E_LOSS, E_ACC, E_PEN, E_THETA, E_LR, E_TLOSS, E_TACC, E_EQR, E_EQP,
    E_LD, E_N, E_WR, E_SECS, NEPOCH
};

/* 1 if layer l of relax is a relaxed group conv (it gets a column more). */
static int is_rg(eqr_relax *relax, int l) {
    return !strcmp(eqr_rlayer_kind(eqr_relax_layer(relax, l)), "rgconv");
}

static int num_rg(eqr_relax *relax) {
    int k = 0;
    for (int l = 0; relax && l < eqr_relax_num_layers(relax); l++) k += is_rg(relax, l);
    return k;
}

static eqr_metrics *epoch_table(eqr_ctx *ctx, eqr_relax *relax) {
    int nl = relax ? eqr_relax_num_layers(relax) : 0, n = NEPOCH + 2 * nl + num_rg(relax);
    char(*names)[2 * EQR_NAME_LEN] = calloc((size_t)n, sizeof *names);
    const char **np = calloc((size_t)n, sizeof *np);
    eqr_metrics *m = NULL;
    if (names && np) {
        for (int c = 0; c < NEPOCH; c++) snprintf(names[c], sizeof names[0], "%s", epoch_cols[c]);
        for (int l = 0; l < nl; l++) {
            const char *ln = eqr_rlayer_name(eqr_relax_layer(relax, l));
            snprintf(names[NEPOCH + 2 * l], sizeof names[0], "%s.wr_norm", ln);
            snprintf(names[NEPOCH + 2 * l + 1], sizeof names[0], "%s.act_norm", ln);
        }
        for (int l = 0, k = NEPOCH + 2 * nl; l < nl; l++)
            if (is_rg(relax, l))
                snprintf(names[k++], sizeof names[0], "%s.rg_spread",
                         eqr_rlayer_name(eqr_relax_layer(relax, l)));
        for (int c = 0; c < n; c++) np[c] = names[c];
        m = eqr_metrics_create(ctx, n, np);
    } else {
        eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_trainer_run: out of memory");
    }
    free(names);
    free(np);
    return m;
}

/* The relaxation's state at the end of an epoch into the row. The
 * activation norms (sums over the last batch) are summed over the
 * processes of a data-parallel run (eqr_trainer_opts.reduce_sums): those
 * of the last global batch. */
static eqr_status relax_columns(eqr_trainer *t, eqr_relax *relax, double *row) {
    if (!relax) return EQR_OK;
    eqr_ctx *ctx = eqr__trainer_ctx(t);
    const int nl = eqr_relax_num_layers(relax);
    double ld = 0, nsq = 0, wr = 0;
    double *an = calloc((size_t)(2 * nl + 1), sizeof *an); /* per layer: |W_r x|^2, measured */
    if (!an) return eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_trainer_run: out of memory");
    row[E_THETA] = eqr_relax_theta(relax)->data[0];
    for (int l = 0; l < nl; l++) {
        eqr_rlayer_stats st;
        if (eqr_rlayer_get_stats(ctx, eqr_relax_layer(relax, l), &st) != EQR_OK) {
            free(an);
            return ctx->status;
        }
        ld += st.defect;
        wr += (double)st.wr_norm * st.wr_norm;
        row[NEPOCH + 2 * l] = st.wr_norm;
        if (st.act_norm >= 0) {
            an[2 * l] = (double)st.act_norm * st.act_norm;
            an[2 * l + 1] = 1;
        }
    }
    if (eqr__trainer_reduce(t, an, 2 * nl) != EQR_OK) {
        free(an);
        return ctx->status;
    }
    for (int l = 0; l < nl; l++) {
        if (an[2 * l + 1] > 0) nsq += an[2 * l];
        row[NEPOCH + 2 * l + 1] = an[2 * l + 1] > 0 ? sqrt(an[2 * l]) : NAN;
    }
    free(an);
    /* relaxed group convs: how far their weights moved from equal over g
     * (eqr_rgconv_report.max_rel_spread), before any projection */
    for (int l = 0, k = NEPOCH + 2 * nl; l < nl; l++) {
        if (!is_rg(relax, l)) continue;
        eqr_rgconv_report rep;
        if (eqr_rgconv_get_report(ctx, eqr_relax_layer(relax, l), &rep) != EQR_OK)
            return ctx->status;
        row[k++] = rep.max_rel_spread;
    }
    row[E_LD] = ld;
    row[E_N] = nsq;
    row[E_WR] = sqrt(wr);
    return EQR_OK;
}

static const eqr_plot_panel panels[5] = {
    {"training loss", 0, {"train_loss"}, {"cross-entropy"}},
    {"test accuracy of the projected model", 0, {"test_acc_projected", "train_acc"},
     {"projected test", "train (relaxed)"}},
    {"theta (end of epoch)", 0, {"theta"}, {0}},
    {"penalties", 1, {"penalty", "defect", "act_norm_sq"},
     {"mean penalty term", "LD", "N = |W_r x|^2"}},
    {"invariance error", 1, {"equiv_err_relaxed", "equiv_err_projected"},
     {"relaxed", "projected"}}};

/* The step table's chart: per relaxed layer (up to 4) the share
 * theta |W_r x| / |f_eq x|, |W_r| and W_r's Adam ||m||; theta; the probe
 * accuracies relaxed and projected and the jump at projection. */
static eqr_status write_steps_svg(eqr_trainer *t, const eqr_run_opts *o) {
    eqr_ctx *ctx = eqr__trainer_ctx(t);
    eqr_metrics *st = eqr_trainer_steps(t);
    eqr_relax *relax = eqr__trainer_relax(t);
    int nl = relax ? eqr_relax_num_layers(relax) : 0;
    if (nl > EQR_PLOT_MAX_SERIES) nl = EQR_PLOT_MAX_SERIES;
    char names[3][EQR_PLOT_MAX_SERIES][2 * EQR_NAME_LEN];
    eqr_plot_panel p[6] = {{"share theta |W_r x| / |f_eq x|", 1, {0}, {0}},
                           {"|W_r|", 1, {0}, {0}},
                           {"Adam |m| of W_r", 1, {0}, {0}},
                           {"theta", 0, {"theta"}, {0}},
                           {"probe accuracy", 0, {"probe_acc", "probe_acc_projected"},
                            {"relaxed", "projected"}},
                           {"accuracy jump at projection", 0, {"projection_jump"}, {0}}};
    static const char *const what[3] = {"share", "wr_norm", "adam_m"};
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < nl; l++) {
            snprintf(names[k][l], sizeof names[k][l], "%s.%s",
                     eqr_rlayer_name(eqr_relax_layer(relax, l)), what[k]);
            p[k].cols[l] = names[k][l];
        }
    const int first = nl > 0 ? 0 : 3, have_probe = eqr_metrics_find(st, "probe_acc") >= 0;
    const int n = (have_probe ? 6 : 4) - first;
    return eqr_metrics_write_svg(ctx, st, o->steps_svg, o->title ? o->title : "", "step",
                                 p + first, n);
}

static eqr_status write_files(eqr_trainer *t, const eqr_run_opts *o) {
    eqr_ctx *ctx = eqr__trainer_ctx(t);
    eqr_metrics *ep = eqr_trainer_epochs(t);
    if (o->metrics_csv && eqr_metrics_write_csv(ctx, ep, o->metrics_csv)) return ctx->status;
    if (o->steps_csv && eqr_metrics_write_csv(ctx, eqr_trainer_steps(t), o->steps_csv))
        return ctx->status;
    if (o->plot_svg && eqr_metrics_write_svg(ctx, ep, o->plot_svg, o->title ? o->title : "",
                                             "epoch", panels, 5))
        return ctx->status;
    if (o->steps_svg && write_steps_svg(t, o) != EQR_OK) return ctx->status;
    return EQR_OK;
}

/* Load the checkpoint and the tables of a resumed run; *done = its epochs
 * (0 if there is no checkpoint yet). */
static eqr_status resume(eqr_trainer *t, const eqr_run_opts *o, int64_t *done) {
    static const char *fn = "eqr_trainer_run";
    eqr_ctx *ctx = eqr__trainer_ctx(t);
    *done = 0;
    FILE *f = fopen(o->checkpoint, "rb");
    if (!f) return EQR_OK; /* nothing to resume yet */
    fclose(f);
    /* the number of processes first, before anything is loaded */
    uint64_t cnt[3];
    int nc = 0;
    if (eqr_checkpoint_counters(ctx, o->checkpoint, cnt, 3, &nc) != EQR_OK) return ctx->status;
    const uint64_t file_ranks = nc == 3 ? cnt[2] : 1, ranks = o->ranks > 1 ? (uint64_t)o->ranks : 1;
    if (nc < 2)
        return eqr__fail(ctx, EQR_ERR_MISMATCH, "%s: %s holds %d counters, not a checkpoint of "
                         "eqr_trainer_run", fn, o->checkpoint, nc);
    if (file_ranks != ranks)
        return eqr__fail(ctx, EQR_ERR_MISMATCH,
                         "%s: %s was written by a run on %llu process%s, this run has %llu: "
                         "resume it on %llu (a resume on another number of processes would not "
                         "continue bit for bit and is refused)",
                         fn, o->checkpoint, (unsigned long long)file_ranks,
                         file_ranks == 1 ? "" : "es", (unsigned long long)ranks,
                         (unsigned long long)file_ranks);
    if (eqr_checkpoint_load(ctx, o->checkpoint, eqr__trainer_optim(t), cnt, nc) != EQR_OK)
        return ctx->status;
    if (cnt[1] != o->config)
        return eqr__fail(ctx, EQR_ERR_MISMATCH,
                         "%s: %s was written with other settings (config %016llx, this run "
                         "%016llx)", fn, o->checkpoint, (unsigned long long)cnt[1],
                         (unsigned long long)o->config);
    if (cnt[0] > (uint64_t)o->epochs)
        return eqr__fail(ctx, EQR_ERR_MISMATCH, "%s: %s holds %llu epochs, past the %lld planned",
                         fn, o->checkpoint, (unsigned long long)cnt[0], (long long)o->epochs);
    *done = (int64_t)cnt[0];
    eqr_scheduler *sched = eqr__trainer_sched(t);
    if (sched && eqr_scheduler_sync(sched) != EQR_OK) return ctx->status;
    if (eqr_batcher_seek(ctx, o->train, *done, 0) != EQR_OK) return ctx->status;
    eqr__trainer_set_steps(t, eqr_optim_num_steps(eqr__trainer_optim(t)));
    /* the tables as far as the checkpoint; lost or unreadable files start empty */
    eqr_metrics *ep = eqr_trainer_epochs(t), *st = eqr_trainer_steps(t);
    if (o->metrics_csv && eqr_metrics_read_csv(ctx, ep, o->metrics_csv) != EQR_OK)
        eqr_error_clear(ctx);
    if (o->steps_csv && eqr_metrics_read_csv(ctx, st, o->steps_csv) != EQR_OK) eqr_error_clear(ctx);
    int64_t r = 0;
    while (r < eqr_metrics_num_rows(ep) && eqr_metrics_at(ep, r, E_EPOCH) <= (double)*done) r++;
    eqr_metrics_truncate(ep, r);
    r = 0;
    while (r < eqr_metrics_num_rows(st) &&
           eqr_metrics_at(st, r, 0) <= (double)eqr_optim_num_steps(eqr__trainer_optim(t)))
        r++;
    eqr_metrics_truncate(st, r);
    eqr__log(ctx, EQR_LOG_INFO, "resumed from %s after epoch %lld (step %lld)", o->checkpoint,
             (long long)*done, (long long)eqr_optim_num_steps(eqr__trainer_optim(t)));
    return EQR_OK;
}

eqr_status eqr_trainer_run(eqr_trainer *t, const eqr_run_opts *o, eqr_run_result *out) {
    static const char *fn = "eqr_trainer_run";
    if (!t) return EQR_ERR_ARG;
    eqr_ctx *ctx = eqr__trainer_ctx(t);
    if (!eqr__ok(ctx, 2, o, out)) return ctx->status;
    if (!o->train || !o->test || o->epochs < 1 || o->eval_every < 0 || o->measure_n < 0 ||
        o->stop_after < 0 || o->stop_after >= o->epochs + (o->stop_after == 0))
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "%s: need train, test and epochs >= 1; eval_every, measure_n >= 0; "
                         "stop_after in [0, epochs)", fn);
    if (o->resume && !o->checkpoint)
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: resume needs a checkpoint path", fn);
    const char *outs[5] = {o->checkpoint, o->metrics_csv, o->steps_csv, o->plot_svg,
                           o->steps_svg};
    for (int i = o->checkpoint_read_only ? 1 : 0; i < 5; i++)
        if (outs[i] && eqr_path_writable(ctx, outs[i]) != EQR_OK) return ctx->status;
    eqr_relax *relax = eqr__trainer_relax(t);
    eqr_metrics *ep = epoch_table(ctx, relax);
    if (!ep) return ctx->status;
    eqr__trainer_set_epochs(t, ep);
    const int ncols = eqr_metrics_num_cols(ep);
    double *row = malloc((size_t)ncols * sizeof(double));
    if (!row) return eqr__fail(ctx, EQR_ERR_NOMEM, "%s: out of memory", fn);
    *out = (eqr_run_result){0};
    out->test_loss = out->test_acc = NAN;
    int64_t done = 0;
    eqr_status st = o->resume ? resume(t, o, &done) : EQR_OK;
    out->resumed_after = done;
    const eqr__measure me = {o->measure, o->invariance,
                             o->measure_n < o->test->n ? o->measure_n : o->test->n};
    for (int64_t e = done; st == EQR_OK && e < o->epochs; e++) {
        eqr_epoch_stats es;
        if ((st = eqr_trainer_epoch(t, o->train, e + 1, &es)) != EQR_OK) break;
        for (int c = 0; c < ncols; c++) row[c] = NAN;
        row[E_EPOCH] = (double)(e + 1);
        row[E_STEPS] = (double)eqr_optim_num_steps(eqr__trainer_optim(t));
        row[E_LOSS] = es.loss;
        row[E_ACC] = es.acc;
        row[E_PEN] = relax ? es.penalty : NAN;
        row[E_LR] = eqr_optim_lr(eqr__trainer_optim(t));
        row[E_SECS] = es.secs;
        if ((st = relax_columns(t, relax, row)) != EQR_OK) break;
        if (o->checkpoint && !o->checkpoint_read_only) {
            uint64_t cnt[3] = {(uint64_t)(e + 1), o->config, (uint64_t)o->ranks};
            if ((st = eqr_checkpoint_save(ctx, o->checkpoint, eqr__trainer_optim(t), cnt,
                                          o->ranks > 1 ? 3 : 2)))
                break;
        }
        int last = e + 1 == o->epochs;
        if (last || (o->eval_every > 0 && (e + 1) % o->eval_every == 0)) {
            st = eqr__trainer_eval_projected(t, o->test, last ? 2 : 1, &me,
                                             &row[E_TLOSS], &row[E_TACC], &row[E_EQR],
                                             &row[E_EQP]);
            if (st != EQR_OK) break;
            if (last) {
                out->test_loss = row[E_TLOSS];
                out->test_acc = row[E_TACC];
            }
        }
        if ((st = eqr_metrics_add_row(ctx, ep, row)) != EQR_OK) break;
        out->epochs_done = e + 1;
        if ((st = write_files(t, o)) != EQR_OK) break;
        if (o->on_epoch) o->on_epoch(o->user, ep, eqr_metrics_num_rows(ep) - 1);
        if (o->stop_after == e + 1 && !last) {
            out->stopped = 1;
            break;
        }
    }
    if (st == EQR_OK && done == o->epochs) { /* resumed after the last epoch */
        double eqr_, eqp;
        st = eqr__trainer_eval_projected(t, o->test, 2, &me, &out->test_loss,
                                         &out->test_acc, &eqr_, &eqp);
        out->epochs_done = done;
        if (st == EQR_OK) st = write_files(t, o);
    }
    out->projected = relax != NULL && !out->stopped;
    free(row);
    return st;
}
