/* Plain CNN on Fashion-MNIST with the public equirelax API.
 *
 *   conv3x3(1->32, pad 1) + BN + ReLU + maxpool 2      -> [N,32,14,14]
 *   conv3x3(32->64, pad 1) + BN + ReLU + maxpool 2     -> [N,64,7,7]
 *   linear(3136->128) + ReLU + dropout(0.3)
 *   linear(128->10), softmax cross-entropy
 *
 * AdamW with a short warm-up and cosine decay per step. With --checkpoint the
 * run is saved after every epoch; --resume continues from it, bit-identically
 * (parameters, optimizer state, RNG, and the batcher position as counters).
 *
 * Exit status: 0 success, 1 runtime error (data, checkpoint), 2 bad usage. */
#define _POSIX_C_SOURCE 200809L
#include <equirelax/equirelax.h>

#include "example_common.h"

#include <math.h>
#include <stdio.h>
#include <unistd.h>

#define EVAL_BATCH 250
#define CKPT_TAG 0x31304E43464D4E46ull /* "FNMFCN01" little-endian tag */
#define NCOUNTERS 8

typedef struct options {
    int64_t epochs, batch, train_limit, threads, stop_after;
    uint64_t seed;
    float lr, wd, dropout;
    const char *data, *checkpoint;
    int resume;
} options;

/* ---- command line ---- */

static void parse_args(int argc, char **argv, options *o) {
    *o = (options){.epochs = 6, .batch = 128, .threads = 2, .seed = 1, .lr = 2e-3f,
                   .wd = 5e-4f, .dropout = 0.3f};
    const ex_flag flags[] = {
        EX_FLAG_EPOCHS(&o->epochs, "6"),
        EX_FLAG_BATCH(&o->batch, "128"),
        EX_FLAG_LR(&o->lr, "peak AdamW", "0.002"),
        EX_FLAG_WD(&o->wd, "0.0005"),
        EX_FLAG_THREADS(&o->threads, "2"),
        EX_FLAG_SEED(&o->seed, "initialisation, dropout and shuffling"),
        EX_FLAG_TRAIN_SIZE(&o->train_limit, "training images", "all"),
        EX_FLAG_DATA_FMNIST(&o->data),
        EX_FLAG_CHECKPOINT(&o->checkpoint, "parameters, AdamW, schedule position"),
        EX_FLAG_RESUME(&o->resume),
        EX_FLAG_STOP_AFTER(&o->stop_after),
        {0}};
    ex_parse_args("train_fmnist_cnn", flags, argc, argv);
    ex_check_checkpoint_flags(flags, o->checkpoint, o->resume, o->stop_after, o->epochs);
}

/* ---- model ---- */

/* Logits [N,10] for images [N,1,28,28]; batch norm and dropout follow the
 * trainer's train/eval switch. Modules are created in the order of the
 * parameters they draw from the context RNG (conv1, conv2, fc1, fc2), so a
 * seed gives the same initialisation as ever. NULL on error. */
static eqr_module *model_build(eqr_ctx *ctx, float dropout) {
    const eqr_conv2d_geom geom = EQR_CONV2D(1, 1, 1);
    eqr_module *net = eqr_sequential_create(ctx, "net");
    for (int l = 0; l < 2; l++) {
        char conv[8], bn[8];
        snprintf(conv, sizeof conv, "conv%d", l + 1);
        snprintf(bn, sizeof bn, "bn%d", l + 1);
        eqr_sequential_add(net, eqr_conv2d_module(ctx, conv, l ? 32 : 1, l ? 64 : 32, 3, &geom, 0));
        eqr_sequential_add(net, eqr_batchnorm_module(ctx, bn, l ? 64 : 32));
        eqr_sequential_add(net, eqr_relu_module(ctx, NULL));
        eqr_sequential_add(net, eqr_maxpool2d_module(ctx, NULL, 2, 2, 0));
    }
    eqr_sequential_add(net, eqr_flatten_module(ctx, NULL));
    /* fc1 is Kaiming-initialised (it feeds a ReLU), not the module's Xavier:
     * the Xavier draws are undone so that the RNG stream stays as it was. */
    eqr_rng before = *eqr_ctx_rng(ctx);
    eqr_module *fc1 = eqr_linear_module(ctx, "fc1", 64 * 7 * 7, 128, 1);
    *eqr_ctx_rng(ctx) = before;
    if (fc1) eqr_param_init_kaiming_normal(ctx, eqr_param_find(ctx, "fc1.weight"), sqrtf(2.0f));
    eqr_sequential_add(net, fc1);
    eqr_sequential_add(net, eqr_relu_module(ctx, NULL));
    eqr_sequential_add(net, eqr_dropout_module(ctx, NULL, dropout));
    eqr_sequential_add(net, eqr_linear_module(ctx, "fc2", 128, 10, 1));
    if (eqr_error_status(ctx) == EQR_OK) return net;
    eqr_module_destroy(net);
    return NULL;
}

/* ---- checkpoint ---- */

/* Restore the run saved at o->checkpoint; returns the number of epochs done. */
static int64_t resume(eqr_ctx *ctx, const options *o, eqr_optim *opt, eqr_batcher *bt,
                      int64_t train_n) {
    uint64_t c[NCOUNTERS];
    if (eqr_checkpoint_load(ctx, o->checkpoint, opt, c, NCOUNTERS) != EQR_OK)
        ex_die_ctx(ctx, "resuming");
    if (c[0] != CKPT_TAG) ex_die("'%s' is not a checkpoint of this program", o->checkpoint);
    if (c[4] != (uint64_t)o->batch || c[5] != (uint64_t)train_n || c[6] != o->seed)
        ex_die("'%s' was made with --batch %llu, %llu training images, --seed %llu; "
               "resume with the same values",
               o->checkpoint, (unsigned long long)c[4], (unsigned long long)c[5],
               (unsigned long long)c[6]);
    if (c[7] != (uint64_t)o->epochs)
        fprintf(stderr, "%s: note: checkpoint planned %llu epochs, now %lld: the learning-rate "
                        "schedule changes\n", ex_prog(), (unsigned long long)c[7],
                (long long)o->epochs);
    if (eqr_batcher_seek(ctx, bt, (int64_t)c[2], (int64_t)c[3]) != EQR_OK)
        ex_die_ctx(ctx, "restoring the batch position");
    return (int64_t)c[1];
}

/* ---- main ---- */

int main(int argc, char **argv) {
    options o;
    parse_args(argc, argv, &o);

    eqr_ctx *ctx = ex_ctx_create(o.seed, o.threads);
    eqr_dataset train, test;
    ex_load_fashion_mnist(ctx, o.data, o.train_limit, 0, 28, 10, &train, &test);

    eqr_module *net = model_build(ctx, o.dropout);
    if (!net) ex_die_ctx(ctx, "building the model");
    eqr_optim *opt = eqr_optim_create(ctx, &(eqr_optim_opts){.kind = EQR_OPTIM_ADAMW, .lr = o.lr,
                                                             .weight_decay = o.wd});
    if (!opt) ex_die_ctx(ctx, "creating the optimizer");
    eqr_batcher bt;
    if (eqr_batcher_init(ctx, &bt, &train, o.batch, 1, o.seed) != EQR_OK) ex_die_ctx(ctx, "batcher");

    const int64_t steps_per_epoch = (train.n + o.batch - 1) / o.batch;
    int64_t warmup = steps_per_epoch / 2 < 100 ? steps_per_epoch / 2 : 100;
    const eqr_schedule cosine = {.kind = EQR_SCHED_COSINE, .start = o.lr, .end = 0.0f,
                                 .warmup = warmup, .total = o.epochs * steps_per_epoch};
    eqr_scheduler *sched = eqr_scheduler_create(ctx, opt);
    if (!sched || eqr_scheduler_add_lr(sched, opt, &cosine) != EQR_OK)
        ex_die_ctx(ctx, "learning-rate schedule");

    int64_t first_epoch = 0;
    if (o.resume && access(o.checkpoint, F_OK) == 0) {
        first_epoch = resume(ctx, &o, opt, &bt, train.n);
        printf("# resumed from %s after epoch %lld (optimizer step %lld)\n", o.checkpoint,
               (long long)first_epoch, (long long)eqr_optim_num_steps(opt));
        if (eqr_scheduler_sync(sched) != EQR_OK) ex_die_ctx(ctx, "learning-rate schedule");
    } else if (o.resume) {
        printf("# no checkpoint at %s yet: starting from scratch\n", o.checkpoint);
    }

    printf("# train %lld images, test %lld, batch %lld, epochs %lld, AdamW lr %g wd %g, "
           "cosine over %lld steps, threads %lld, seed %llu, %lld parameters\n",
           (long long)train.n, (long long)test.n, (long long)o.batch, (long long)o.epochs,
           o.lr, o.wd, (long long)cosine.total, (long long)o.threads,
           (unsigned long long)o.seed, (long long)eqr_param_num_scalars(ctx));
    fflush(stdout);

    eqr_trainer *tr = eqr_trainer_create(ctx, &(eqr_trainer_opts){
        .module = net, .opt = opt,
        .sched = sched, .epochs = o.epochs, .eval_batch = EVAL_BATCH, .progress = ex_progress});
    if (!tr) ex_die_ctx(ctx, "creating the trainer");
    double test_loss = 0, test_acc = 0, best_acc = -1, t_start = ex_now();
    int64_t best_epoch = 0;
    const int64_t last = o.stop_after > 0 && o.stop_after < o.epochs ? o.stop_after : o.epochs;
    for (int64_t e = first_epoch; e < last; e++) {
        eqr_epoch_stats st;
        if (eqr_trainer_epoch(tr, &bt, e + 1, &st) != EQR_OK) ex_die_ctx(ctx, "training");
        ex_progress_note("epoch %lld/%lld evaluating on %lld test images...",
                         (long long)(e + 1), (long long)o.epochs, (long long)test.n);
        double t_eval0 = ex_now();
        if (eqr_trainer_evaluate(tr, &test, 0, &test_loss, &test_acc) != EQR_OK)
            ex_die_ctx(ctx, "evaluation");
        double t_eval = ex_now() - t_eval0;
        ex_progress_clear();
        if (test_acc > best_acc) {
            best_acc = test_acc;
            best_epoch = e + 1;
        }
        printf("epoch %lld/%lld  train_loss %.4f  train_acc %.4f  test_loss %.4f  test_acc %.4f  "
               "lr %.2e  time %.1fs (train %.1fs, eval %.1fs)\n",
               (long long)(e + 1), (long long)o.epochs, st.loss, st.acc, test_loss, test_acc,
               (double)eqr_optim_lr(opt), st.secs + t_eval, st.secs, t_eval);
        fflush(stdout);
        if (o.checkpoint) {
            uint64_t c[NCOUNTERS] = {CKPT_TAG, (uint64_t)(e + 1), (uint64_t)bt.epoch,
                                     (uint64_t)bt.pos, (uint64_t)o.batch, (uint64_t)train.n,
                                     o.seed, (uint64_t)o.epochs};
            if (eqr_checkpoint_save(ctx, o.checkpoint, opt, c, NCOUNTERS) != EQR_OK)
                ex_die_ctx(ctx, "saving the checkpoint");
        }
    }
    if (first_epoch >= last) {
        if (eqr_trainer_evaluate(tr, &test, 0, &test_loss, &test_acc) != EQR_OK)
            ex_die_ctx(ctx, "evaluation");
        printf("# nothing to train: the checkpoint is at epoch %lld\n", (long long)first_epoch);
    }
    char total[32];
    ex_fmt_dur(total, sizeof total, ex_now() - t_start);
    printf("# final test_acc %.4f (eval mode, gradients off)", test_acc);
    if (best_acc >= 0) printf("; best %.4f after epoch %lld", best_acc, (long long)best_epoch);
    printf("; wall time %s\n", total);

    eqr_trainer_destroy(tr);
    eqr_batcher_free(&bt);
    eqr_scheduler_destroy(sched);
    eqr_optim_destroy(opt);
    eqr_module_destroy(net);
    eqr_dataset_free(&train);
    eqr_dataset_free(&test);
    eqr_ctx_destroy(ctx);
    return 0;
}
