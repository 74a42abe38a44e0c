/* The training helper (train.h): one step, one classification epoch,
 * evaluation of the model as it is or projected, and per-step telemetry. */
#define _POSIX_C_SOURCE 200809L
#include "train/train_internal.h"
#include "equirelax/ops.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

/* Per relaxed layer columns of the step table, in this order. */
static const char *const layer_cols[] = {"share", "eq_norm", "wr_x_norm", "wr_norm", "adam_m",
                                         "adam_v"};
enum { NLAYER_COLS = 6 };
static const char *const base_cols[] = {"step", "epoch", "loss", "penalty", "theta", "lr"};
enum { NBASE = 6 };
static const char *const probe_cols[] = {"probe_loss", "probe_acc", "probe_loss_projected",
                                         "probe_acc_projected", "projection_jump"};
enum { NPROBE = 5 };

struct eqr_trainer {
    eqr_ctx *ctx;
    eqr_trainer_opts o;
    eqr_metrics *steps;
    int nl;           /* relaxed layers covered by the step table */
    double *row;      /* one step-table row */
    float *snap;      /* parameter snapshot for projected evaluations */
    int64_t snap_len;
    int64_t nsteps;   /* optimizer steps taken through this trainer */
    int64_t epoch;    /* the epoch running, for telemetry */
    eqr_metrics *epochs; /* the table of the last eqr_trainer_run */
    float *xb;        /* batch buffers of eqr_trainer_epoch */
    int32_t *yb;
    int64_t xb_len, yb_len;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

eqr_trainer *eqr_trainer_create(eqr_ctx *ctx, const eqr_trainer_opts *opts) {
    static const char *fn = "eqr_trainer_create";
    if (!eqr__ok(ctx, 1, opts)) return NULL;
    if ((!opts->forward && !opts->module) || !opts->opt) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: opts.forward (or opts.module) and opts.opt are required",
                  fn);
        return NULL;
    }
    if (opts->module && (opts->forward || opts->model || opts->set_mode)) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: opts.module replaces forward, model and set_mode "
                  "(give either)", fn);
        return NULL;
    }
    if (opts->telemetry_every < 0 || opts->epochs < 0 || opts->eval_batch < 0 ||
        !(opts->clip_norm >= 0)) {
        eqr__fail(ctx, EQR_ERR_ARG,
                  "%s: telemetry_every, epochs, eval_batch and clip_norm must be >= 0", fn);
        return NULL;
    }
    eqr_trainer *t = eqr__calloc(ctx, fn, 1, sizeof *t);
    if (!t) return NULL;
    t->ctx = ctx;
    t->o = *opts;
    if (t->o.module) {
        t->o.forward = eqr_module_apply;
        t->o.model = t->o.module;
    }
    if (!t->o.eval_batch) t->o.eval_batch = 256;
    t->nl = t->o.relax ? eqr_relax_num_layers(t->o.relax) : 0;
    int ncols = NBASE + NLAYER_COLS * t->nl + (t->o.probe ? NPROBE : 0);
    char(*names)[2 * EQR_NAME_LEN] = calloc((size_t)ncols, sizeof *names);
    const char **np = calloc((size_t)ncols, sizeof *np);
    t->row = calloc((size_t)ncols, sizeof *t->row);
    if (!names || !np || !t->row) {
        eqr__fail(ctx, EQR_ERR_NOMEM, "%s: out of memory", fn);
    } else {
        int c = 0;
        for (int i = 0; i < NBASE; i++) snprintf(names[c++], sizeof names[0], "%s", base_cols[i]);
        for (int l = 0; l < t->nl; l++)
            for (int i = 0; i < NLAYER_COLS; i++)
                snprintf(names[c++], sizeof names[0], "%s.%s",
                         eqr_rlayer_name(eqr_relax_layer(t->o.relax, l)), layer_cols[i]);
        for (int i = 0; t->o.probe && i < NPROBE; i++)
            snprintf(names[c++], sizeof names[0], "%s", probe_cols[i]);
        for (int i = 0; i < ncols; i++) np[i] = names[i];
        t->steps = eqr_metrics_create(ctx, ncols, np);
    }
    free(names);
    free(np);
    if (!t->steps) {
        eqr_trainer_destroy(t);
        return NULL;
    }
    return t;
}

void eqr_trainer_destroy(eqr_trainer *t) {
    if (!t) return;
    eqr_metrics_destroy(t->steps);
    eqr_metrics_destroy(t->epochs);
    free(t->row);
    free(t->snap);
    free(t->xb);
    free(t->yb);
    free(t);
}

eqr_metrics *eqr_trainer_steps(eqr_trainer *t) { return t ? t->steps : NULL; }
eqr_metrics *eqr_trainer_epochs(eqr_trainer *t) { return t ? t->epochs : NULL; }
eqr_ctx *eqr__trainer_ctx(eqr_trainer *t) { return t->ctx; }
eqr_status eqr__trainer_reduce(eqr_trainer *t, double *v, int n) {
    return t->o.reduce_sums ? t->o.reduce_sums(t->ctx, t->o.reduce_sums_user, v, n) : EQR_OK;
}
eqr_optim *eqr__trainer_optim(eqr_trainer *t) { return t->o.opt; }
eqr_scheduler *eqr__trainer_sched(eqr_trainer *t) { return t->o.sched; }
eqr_relax *eqr__trainer_relax(eqr_trainer *t) { return t->o.relax; }
void eqr__trainer_set_steps(eqr_trainer *t, int64_t steps) { t->nsteps = steps; }
void eqr__trainer_set_epochs(eqr_trainer *t, eqr_metrics *m) {
    eqr_metrics_destroy(t->epochs);
    t->epochs = m;
}

static void set_mode(const eqr_trainer *t, int training) {
    if (t->o.module) eqr_module_set_training(t->o.module, training);
    if (t->o.set_mode) t->o.set_mode(t->o.model, training);
}

static int64_t count_correct(const eqr_tensor *logits, const int32_t *y) {
    int64_t n = logits->shape[0], k = logits->shape[1], c = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *r = logits->data + i * k;
        int64_t best = 0;
        for (int64_t j = 1; j < k; j++)
            if (r[j] > r[best]) best = j;
        c += best == y[i];
    }
    return c;
}

/* Loss and accuracy over ds as the model is now (evaluation mode, no
 * gradients); the step arena is reset after each batch. */
static eqr_status evaluate_plain(eqr_trainer *t, const eqr_dataset *ds, double *loss,
                                 double *acc) {
    eqr_ctx *ctx = t->ctx;
    const int64_t img = (int64_t)ds->c * ds->h * ds->w, batch = t->o.eval_batch;
    int prev = eqr_grad_set_enabled(ctx, 0);
    set_mode(t, 0);
    double lsum = 0;
    int64_t correct = 0;
    for (int64_t i = 0; i < ds->n && ctx->status == EQR_OK; i += batch) {
        int64_t b = ds->n - i < batch ? ds->n - i : batch;
        int64_t shape[4] = {b, ds->c, ds->h, ds->w};
        eqr_tensor *x = eqr_tensor_wrap(ctx, ds->x + i * img, 4, shape);
        eqr_tensor *logits = x ? t->o.forward(ctx, t->o.model, x) : NULL;
        eqr_tensor *l = eqr_softmax_cross_entropy(ctx, logits, ds->y + i);
        if (l) {
            lsum += (double)l->data[0] * (double)b;
            correct += count_correct(logits, ds->y + i);
        }
        eqr_step_reset(ctx);
    }
    set_mode(t, 1);
    eqr_grad_set_enabled(ctx, prev);
    *loss = ds->n > 0 ? lsum / (double)ds->n : NAN;
    *acc = ds->n > 0 ? (double)correct / (double)ds->n : NAN;
    return ctx->status;
}

/* The equivariance measurement in evaluation mode, without gradients. */
static eqr_status measure(eqr_trainer *t, const eqr__measure *me, const eqr_dataset *ds,
                          double *err) {
    *err = NAN;
    if (!me || (!me->fn && !me->invariance) || me->n <= 0) return EQR_OK;
    int prev = eqr_grad_set_enabled(t->ctx, 0);
    set_mode(t, 0);
    eqr_status st = me->fn ? me->fn(t->ctx, t->o.model, ds, me->n, err)
                           : eqr_invariance_max(t->ctx, t->o.forward, t->o.model, me->invariance,
                                                ds, me->n, 0, err);
    set_mode(t, 1);
    eqr_grad_set_enabled(t->ctx, prev);
    eqr_step_reset(t->ctx);
    return st;
}

eqr_status eqr__trainer_eval_projected(eqr_trainer *t, const eqr_dataset *ds, int mode,
                                       const eqr__measure *me, double *loss, double *acc,
                                       double *eq_relaxed, double *eq_projected) {
    static const char *fn = "eqr_trainer_evaluate";
    eqr_ctx *ctx = t->ctx;
    if (measure(t, me, ds, eq_relaxed) != EQR_OK) return ctx->status;
    if (!t->o.relax || mode == 0) {
        *eq_projected = *eq_relaxed;
        return evaluate_plain(t, ds, loss, acc);
    }
    int64_t total = eqr_param_num_scalars(ctx);
    float *blk = eqr_param_data_block(ctx);
    if (mode == 1) { /* on a copy: snapshot the store (weights, W_r, theta, BN stats) */
        if (t->snap_len < total) {
            float *s = realloc(t->snap, (size_t)total * sizeof(float));
            if (!s)
                return eqr__fail(ctx, EQR_ERR_NOMEM, "%s: cannot snapshot %lld parameters", fn,
                                 (long long)total);
            t->snap = s;
            t->snap_len = total;
        }
        memcpy(t->snap, blk, (size_t)total * sizeof(float));
    }
    eqr_status st = eqr_relax_project(ctx, t->o.relax, t->o.project);
    if (st == EQR_OK) st = measure(t, me, ds, eq_projected);
    if (st == EQR_OK) st = evaluate_plain(t, ds, loss, acc);
    if (mode == 1) memcpy(blk, t->snap, (size_t)total * sizeof(float));
    return st;
}

eqr_status eqr_trainer_evaluate(eqr_trainer *t, const eqr_dataset *ds, int projected,
                                double *loss, double *acc) {
    if (!t) return EQR_ERR_ARG;
    eqr_ctx *ctx = t->ctx;
    if (!eqr__ok(ctx, 3, ds, loss, acc)) return ctx->status;
    if (projected < 0 || projected > 2)
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "eqr_trainer_evaluate: projected must be 0, 1 or 2, got %d", projected);
    double e1, e2;
    return eqr__trainer_eval_projected(t, ds, projected, NULL, loss, acc, &e1, &e2);
}

/* The per-layer and base columns of this step, before the optimizer moves
 * anything (the probes need this step's inputs, still in the arena). */
static void telemetry_layers(eqr_trainer *t, double loss, double pen) {
    eqr_ctx *ctx = t->ctx;
    double *r = t->row;
    r[0] = (double)t->nsteps + 1;
    r[1] = (double)t->epoch;
    r[2] = loss;
    r[3] = pen;
    r[4] = t->o.relax ? eqr_relax_theta(t->o.relax)->data[0] : NAN;
    r[5] = eqr_optim_lr(t->o.opt);
    for (int l = 0; l < t->nl; l++) {
        double *c = r + NBASE + NLAYER_COLS * l;
        eqr_rlayer *rl = eqr_relax_layer(t->o.relax, l);
        eqr_rlayer_probe_stats ps;
        for (int i = 0; i < NLAYER_COLS; i++) c[i] = NAN;
        if (eqr_rlayer_probe(ctx, rl, &ps) == EQR_OK) { /* NaN if it did not run */
            c[0] = ps.share;
            c[1] = ps.eq_norm;
            c[2] = ps.wr_norm;
        }
        eqr_tensor *wr = eqr_rlayer_wr(rl);
        double s = 0;
        for (int64_t k = 0; k < wr->numel; k++) s += (double)wr->data[k] * wr->data[k];
        c[3] = sqrt(s);
        eqr_optim_state_norms(t->o.opt, wr, &c[4], &c[5]);
    }
}

eqr_status eqr_trainer_step(eqr_trainer *t, eqr_tensor *loss, int64_t n, double *penalty) {
    if (!t) return EQR_ERR_ARG;
    eqr_ctx *ctx = t->ctx;
    if (!eqr__ok(ctx, 1, loss)) return ctx->status;
    if (loss->numel != 1)
        return eqr__fail(ctx, EQR_ERR_SHAPE, "eqr_trainer_step: the loss must be a scalar [1]");
    (void)n;
    eqr_tensor *total = loss, *pen = NULL;
    if (t->o.relax) {
        pen = eqr_relax_penalty(ctx, t->o.relax);
        total = eqr_add(ctx, loss, pen);
    }
    double pv = pen ? (double)pen->data[0] : 0.0, lv = (double)loss->data[0];
    if (penalty) *penalty = pv;
    eqr_grad_zero(ctx);
    if (!total || eqr_backward(ctx, total) != EQR_OK) return ctx->status;
    if (t->o.after_backward) {
        eqr_status st = t->o.after_backward(ctx, t->o.after_backward_user);
        if (st != EQR_OK)
            return ctx->status != EQR_OK
                       ? ctx->status
                       : eqr__fail(ctx, st, "eqr_trainer_step: after_backward failed (%s)",
                                   eqr_status_name(st));
    }
    /* Telemetry runs before the update, so that a failure in it leaves the
     * step not taken (all or nothing): the layer probes need this step's
     * inputs, and the probe evaluations (which reset the arena per batch;
     * the gradients live in the store) see the model the step started
     * from. */
    if (t->o.telemetry_every > 0 && (t->nsteps + 1) % t->o.telemetry_every == 0) {
        telemetry_layers(t, lv, pv);
        if (t->o.probe) {
            double *p = t->row + NBASE + NLAYER_COLS * t->nl;
            if (evaluate_plain(t, t->o.probe, &p[0], &p[1]) != EQR_OK) return ctx->status;
            if (t->o.relax) {
                if (eqr_trainer_evaluate(t, t->o.probe, 1, &p[2], &p[3]) != EQR_OK)
                    return ctx->status;
            } else {
                p[2] = p[0];
                p[3] = p[1];
            }
            p[4] = p[3] - p[1];
        }
        if (eqr_metrics_add_row(ctx, t->steps, t->row) != EQR_OK) return ctx->status;
    }
    if (t->o.clip_norm > 0) eqr_grad_clip_norm(ctx, t->o.clip_norm);
    if (eqr_optim_step(t->o.opt) != EQR_OK) return ctx->status;
    if (t->o.sched && eqr_scheduler_step(t->o.sched) != EQR_OK) return ctx->status;
    /* adaptive theta's dual ascent against the new bound; orthogonal split */
    if (t->o.relax && eqr_relax_after_step(ctx, t->o.relax) != EQR_OK) return ctx->status;
    t->nsteps++;
    eqr_step_reset(ctx);
    return ctx->status;
}

eqr_status eqr_trainer_epoch(eqr_trainer *t, eqr_batcher *bt, int64_t epoch,
                             eqr_epoch_stats *out) {
    static const char *fn = "eqr_trainer_epoch";
    if (!t) return EQR_ERR_ARG;
    eqr_ctx *ctx = t->ctx;
    if (!eqr__ok(ctx, 2, bt, out)) return ctx->status;
    const eqr_dataset *ds = bt->ds;
    const int64_t img = (int64_t)ds->c * ds->h * ds->w;
    if (t->xb_len < bt->batch * img || t->yb_len < bt->batch) {
        free(t->xb);
        free(t->yb);
        t->xb = malloc((size_t)(bt->batch * img) * sizeof(float));
        t->yb = malloc((size_t)bt->batch * sizeof(int32_t));
        t->xb_len = t->xb ? bt->batch * img : 0;
        t->yb_len = t->yb ? bt->batch : 0;
        if (!t->xb || !t->yb)
            return eqr__fail(ctx, EQR_ERR_NOMEM, "%s: cannot allocate a batch of %lld", fn,
                             (long long)bt->batch);
    }
    t->epoch = epoch;
    set_mode(t, 1);
    const double t0 = now_s();
    double lsum = 0, psum = 0;
    int64_t seen = 0, correct = 0, steps = 0, cnt, next_log = ds->n / 10;
    while (t->o.next_batch ? t->o.next_batch(t->o.next_batch_user, bt, t->xb, t->yb, &cnt)
                           : eqr_batcher_next(bt, t->xb, t->yb, &cnt)) {
        int64_t shape[4] = {cnt, ds->c, ds->h, ds->w};
        eqr_tensor *x = eqr_tensor_wrap(ctx, t->xb, 4, shape);
        eqr_tensor *logits = x ? t->o.forward(ctx, t->o.model, x) : NULL;
        eqr_tensor *loss = eqr_softmax_cross_entropy(ctx, logits, t->yb);
        if (!loss) return ctx->status;
        double lv = (double)loss->data[0], pv;
        correct += count_correct(logits, t->yb);
        if (eqr_trainer_step(t, loss, cnt, &pv) != EQR_OK) return ctx->status;
        lsum += lv * (double)cnt;
        psum += pv;
        seen += cnt;
        steps++;
        double el = now_s() - t0, rate = el > 0 ? (double)seen / el : 0;
        eqr_progress p = {epoch, t->o.epochs, seen, ds->n, lsum / (double)seen,
                          (double)correct / (double)seen, rate,
                          rate > 0 ? (double)(ds->n - seen) / rate : 0};
        if (t->o.progress) {
            t->o.progress(t->o.progress_user, &p);
        } else if (seen >= next_log || seen >= ds->n) {
            next_log += ds->n / 10 > 0 ? ds->n / 10 : 1;
            eqr__log(ctx, EQR_LOG_INFO,
                     "epoch %lld/%lld  %lld/%lld  %.0f samples/s  loss %.4f  acc %.4f",
                     (long long)epoch, (long long)t->o.epochs, (long long)seen,
                     (long long)ds->n, rate, p.loss, p.acc);
        }
    }
    if (ctx->status != EQR_OK) return ctx->status; /* next_batch failed */
    if (t->o.reduce_sums) { /* the global batches' statistics */
        double v[3] = {lsum, (double)correct, (double)seen};
        if (t->o.reduce_sums(ctx, t->o.reduce_sums_user, v, 3) != EQR_OK) return ctx->status;
        lsum = v[0];
        correct = (int64_t)v[1];
        seen = (int64_t)v[2];
    }
    out->seen = seen;
    out->steps = steps;
    out->loss = seen ? lsum / (double)seen : NAN;
    out->acc = seen ? (double)correct / (double)seen : NAN;
    out->penalty = steps ? psum / (double)steps : 0;
    out->secs = now_s() - t0;
    return ctx->status;
}
