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

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IMG 784
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

typedef struct model {
    eqr_tensor *c1w, *bn1g, *bn1b, *bn1m, *bn1v;
    eqr_tensor *c2w, *bn2g, *bn2b, *bn2m, *bn2v;
    eqr_tensor *f1w, *f1b, *f2w, *f2b;
    float dropout;
} model;

/* ---- command line ---- */

static const char *prog = "train_fmnist_cnn";

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s [options]\n"
            "  --epochs N        training epochs (default 6)\n"
            "  --batch N         batch size (default 128)\n"
            "  --lr F            peak learning rate of AdamW (default 0.002)\n"
            "  --wd F            decoupled weight decay (default 0.0005)\n"
            "  --threads N       worker threads (default 2)\n"
            "  --seed N          seed of initialisation, dropout and shuffling (default 1)\n"
            "  --train-limit N   train on the first N images only (default all 60000)\n"
            "  --data DIR        Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)\n"
            "  --checkpoint PATH save a checkpoint after every epoch\n"
            "  --resume          continue from --checkpoint if it exists\n"
            "  --stop-after N    stop once epoch N is done (resume later with --resume)\n"
            "  --help            show this help\n",
            prog);
}

static void usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    usage(stderr);
    exit(2);
}

static int64_t parse_int(const char *flag, const char *s, int64_t lo, int64_t hi) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        usage_error("bad value '%s' for %s: expected an integer in [%lld, %lld]", s, flag,
                    (long long)lo, (long long)hi);
    return v;
}

static float parse_float(const char *flag, const char *s, float lo, float hi) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        usage_error("bad value '%s' for %s: expected a number in [%g, %g]", s, flag, lo, hi);
    return v;
}

static void parse_args(int argc, char **argv, options *o) {
    *o = (options){.epochs = 6, .batch = 128, .threads = 2, .seed = 1, .lr = 2e-3f,
                   .wd = 5e-4f, .dropout = 0.3f};
    for (int i = 1; i < argc; i++) {
        char name[64];
        const char *a = argv[i], *val = NULL, *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) != 0) usage_error("unexpected argument '%s'", a);
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        if (len >= sizeof name) usage_error("unknown option '%s'", a);
        memcpy(name, a, len);
        name[len] = '\0';
        if (!strcmp(name, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(name, "--resume")) {
            if (eq) usage_error("--resume takes no value");
            o->resume = 1;
            continue;
        }
        static const char *valued[] = {"--epochs", "--batch", "--lr", "--wd", "--threads", "--seed",
                                       "--train-limit", "--data", "--checkpoint", "--stop-after"};
        int known = 0;
        for (size_t k = 0; k < sizeof valued / sizeof *valued; k++) known |= !strcmp(name, valued[k]);
        if (!known) usage_error("unknown option '%s'", name);
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else
            usage_error("missing value for %s", name);
        if (!strcmp(name, "--epochs")) o->epochs = parse_int(name, val, 1, 100000);
        else if (!strcmp(name, "--batch")) o->batch = parse_int(name, val, 1, 65536);
        else if (!strcmp(name, "--lr")) o->lr = parse_float(name, val, 1e-8f, 10.0f);
        else if (!strcmp(name, "--wd")) o->wd = parse_float(name, val, 0.0f, 1.0f);
        else if (!strcmp(name, "--threads")) o->threads = parse_int(name, val, 1, 256);
        else if (!strcmp(name, "--seed")) o->seed = (uint64_t)parse_int(name, val, 0, INT64_MAX);
        else if (!strcmp(name, "--train-limit")) o->train_limit = parse_int(name, val, 1, INT64_MAX);
        else if (!strcmp(name, "--stop-after")) o->stop_after = parse_int(name, val, 1, 100000);
        else if (!strcmp(name, "--data")) o->data = val;
        else if (!strcmp(name, "--checkpoint")) o->checkpoint = val;
        if ((!strcmp(name, "--data") || !strcmp(name, "--checkpoint")) && !*val)
            usage_error("empty value for %s", name);
    }
    if (o->resume && !o->checkpoint) usage_error("--resume needs --checkpoint PATH");
}

/* ---- model ---- */

static eqr_tensor *param(eqr_ctx *ctx, const char *name, int ndim, const int64_t *shape,
                         unsigned flags) {
    return eqr_param_new(ctx, name, ndim, shape, flags);
}

static int model_build(eqr_ctx *ctx, model *m, float dropout) {
    const unsigned nd = EQR_PARAM_NO_DECAY, buf = EQR_PARAM_BUFFER;
    int64_t s_c1[4] = {32, 1, 3, 3}, s_c2[4] = {64, 32, 3, 3}, s32[1] = {32}, s64[1] = {64};
    int64_t s_f1[2] = {128, 64 * 7 * 7}, s128[1] = {128}, s_f2[2] = {10, 128}, s10[1] = {10};
    m->dropout = dropout;
    m->c1w = param(ctx, "conv1.weight", 4, s_c1, 0);
    m->bn1g = param(ctx, "bn1.gamma", 1, s32, nd);
    m->bn1b = param(ctx, "bn1.beta", 1, s32, nd);
    m->bn1m = param(ctx, "bn1.running_mean", 1, s32, buf);
    m->bn1v = param(ctx, "bn1.running_var", 1, s32, buf);
    m->c2w = param(ctx, "conv2.weight", 4, s_c2, 0);
    m->bn2g = param(ctx, "bn2.gamma", 1, s64, nd);
    m->bn2b = param(ctx, "bn2.beta", 1, s64, nd);
    m->bn2m = param(ctx, "bn2.running_mean", 1, s64, buf);
    m->bn2v = param(ctx, "bn2.running_var", 1, s64, buf);
    m->f1w = param(ctx, "fc1.weight", 2, s_f1, 0);
    m->f1b = param(ctx, "fc1.bias", 1, s128, nd);
    m->f2w = param(ctx, "fc2.weight", 2, s_f2, 0);
    m->f2b = param(ctx, "fc2.bias", 1, s10, nd);
    if (eqr_status_get(ctx) != EQR_OK) return -1;
    const float relu_gain = sqrtf(2.0f);
    eqr_init_kaiming_normal(ctx, m->c1w, relu_gain);
    eqr_init_kaiming_normal(ctx, m->c2w, relu_gain);
    eqr_init_kaiming_normal(ctx, m->f1w, relu_gain);
    eqr_init_xavier_uniform(ctx, m->f2w, 1.0f);
    eqr_tensor_fill(m->bn1g, 1.0f);
    eqr_tensor_fill(m->bn2g, 1.0f);
    eqr_tensor_fill(m->bn1v, 1.0f);
    eqr_tensor_fill(m->bn2v, 1.0f);
    return eqr_status_get(ctx) == EQR_OK ? 0 : -1;
}

static eqr_tensor *conv_block(eqr_ctx *ctx, eqr_tensor *x, eqr_tensor *w, eqr_tensor *g,
                              eqr_tensor *b, eqr_tensor *rm, eqr_tensor *rv, int training) {
    const eqr_conv2d_geom geom = EQR_CONV2D(1, 1, 1);
    eqr_tensor *h = eqr_conv2d(ctx, x, w, NULL, &geom);
    h = eqr_batchnorm(ctx, h, g, b, rm, rv, 0.1f, 1e-5f, training);
    h = eqr_relu(ctx, h);
    return eqr_maxpool2d(ctx, h, 2, 2, 0);
}

/* Logits [N,10] for images x [N,1,28,28]; NULL on error (on the context). */
static eqr_tensor *model_forward(eqr_ctx *ctx, const model *m, eqr_tensor *x, int training) {
    if (!x) return NULL;
    const int64_t flat[2] = {x->shape[0], -1};
    eqr_tensor *h = conv_block(ctx, x, m->c1w, m->bn1g, m->bn1b, m->bn1m, m->bn1v, training);
    h = conv_block(ctx, h, m->c2w, m->bn2g, m->bn2b, m->bn2m, m->bn2v, training);
    h = eqr_reshape(ctx, h, 2, flat);
    h = eqr_relu(ctx, eqr_linear(ctx, h, m->f1w, m->f1b));
    h = eqr_dropout(ctx, h, m->dropout, training);
    return eqr_linear(ctx, h, m->f2w, m->f2b);
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

/* ---- reporting ---- */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void fmt_dur(char *buf, size_t n, double s) {
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

typedef struct progress {
    int tty;
    double t0, last;
    int64_t total;      /* samples in the epoch */
    int64_t next_line;  /* non-tty: sample count of the next printed line */
} progress;

static void progress_update(progress *p, int64_t epoch, int64_t epochs, int64_t done,
                            double loss, double acc) {
    double t = now(), el = t - p->t0;
    int end = done >= p->total;
    double rate = el > 0 ? (double)done / el : 0;
    char eta[32];
    fmt_dur(eta, sizeof eta, rate > 0 ? (double)(p->total - done) / rate : 0);
    if (p->tty) {
        if (!end && t - p->last < 0.2) return;
        p->last = t;
        enum { W = 30 };
        char bar[W + 1];
        int fill = (int)((double)W * (double)done / (double)p->total);
        for (int i = 0; i < W; i++) bar[i] = i < fill ? '#' : '.';
        bar[W] = '\0';
        fprintf(stderr, "\r\033[Kepoch %lld/%lld [%s] %lld/%lld  %.0f img/s  ETA %s  loss %.4f  acc %.4f",
                (long long)epoch, (long long)epochs, bar, (long long)done, (long long)p->total,
                rate, eta, loss, acc);
        fflush(stderr);
    } else if (done >= p->next_line || end) {
        p->next_line += p->total / 10 > 0 ? p->total / 10 : 1;
        fprintf(stderr, "epoch %lld/%lld  %lld/%lld  %.0f img/s  ETA %s  loss %.4f  acc %.4f\n",
                (long long)epoch, (long long)epochs, (long long)done, (long long)p->total, rate,
                eta, loss, acc);
    }
}

static void progress_clear(const progress *p) {
    if (p->tty) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
}

static void die_ctx(eqr_ctx *ctx, const char *what) {
    fprintf(stderr, "%s: %s: %s\n", prog, what, eqr_error_message(ctx));
    exit(1);
}

/* Test loss and accuracy: gradients off, batch norm and dropout in eval mode. */
static void evaluate(eqr_ctx *ctx, const model *m, const eqr_dataset *ds, double *loss,
                     double *acc) {
    int prev = eqr_set_grad_enabled(ctx, 0);
    double lsum = 0;
    int64_t correct = 0;
    for (int64_t i = 0; i < ds->n; i += EVAL_BATCH) {
        int64_t b = ds->n - i < EVAL_BATCH ? ds->n - i : EVAL_BATCH;
        int64_t shape[4] = {b, 1, 28, 28};
        eqr_tensor *x = eqr_tensor_wrap(ctx, ds->x + i * IMG, 4, shape);
        eqr_tensor *logits = model_forward(ctx, m, x, 0);
        eqr_tensor *l = eqr_softmax_cross_entropy(ctx, logits, ds->y + i);
        if (!l) die_ctx(ctx, "evaluation");
        lsum += (double)l->data[0] * (double)b;
        correct += count_correct(logits, ds->y + i);
        eqr_step_reset(ctx);
    }
    eqr_set_grad_enabled(ctx, prev);
    *loss = lsum / (double)ds->n;
    *acc = (double)correct / (double)ds->n;
}

/* ---- main ---- */

int main(int argc, char **argv) {
    if (argc > 0 && argv[0] && *argv[0]) {
        const char *s = strrchr(argv[0], '/');
        prog = s ? s + 1 : argv[0];
    }
    options o;
    parse_args(argc, argv, &o);

    eqr_ctx *ctx = eqr_ctx_create(&(eqr_ctx_opts){.seed = o.seed, .threads = (int)o.threads});
    if (!ctx) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    eqr_dataset train, test;
    if (eqr_fashion_mnist_load(ctx, o.data, 1, &train) != EQR_OK) die_ctx(ctx, "loading training data");
    if (eqr_fashion_mnist_load(ctx, o.data, 0, &test) != EQR_OK) die_ctx(ctx, "loading test data");
    if (o.train_limit > 0) eqr_dataset_truncate(&train, o.train_limit);

    model m;
    if (model_build(ctx, &m, o.dropout)) die_ctx(ctx, "building the model");
    eqr_optim *opt = eqr_optim_create(ctx, &(eqr_optim_opts){.kind = EQR_OPTIM_ADAMW, .lr = o.lr,
                                                             .weight_decay = o.wd});
    if (!opt) die_ctx(ctx, "creating the optimizer");
    eqr_batcher bt;
    if (eqr_batcher_init(ctx, &bt, &train, o.batch, 1, o.seed) != EQR_OK) die_ctx(ctx, "batcher");

    const int64_t steps_per_epoch = (train.n + o.batch - 1) / o.batch;
    int64_t warmup = steps_per_epoch / 2 < 100 ? steps_per_epoch / 2 : 100;
    const eqr_lr_schedule sched = {.kind = EQR_LR_COSINE, .base_lr = o.lr, .warmup_steps = warmup,
                                   .total_steps = o.epochs * steps_per_epoch, .min_lr = 0.0f};

    int64_t first_epoch = 0;
    if (o.resume && access(o.checkpoint, F_OK) == 0) {
        uint64_t c[NCOUNTERS];
        if (eqr_checkpoint_load(ctx, o.checkpoint, opt, c, NCOUNTERS) != EQR_OK)
            die_ctx(ctx, "resuming");
        if (c[0] != CKPT_TAG) {
            fprintf(stderr, "%s: '%s' is not a checkpoint of this program\n", prog, o.checkpoint);
            return 1;
        }
        if (c[4] != (uint64_t)o.batch || c[5] != (uint64_t)train.n || c[6] != o.seed) {
            fprintf(stderr,
                    "%s: '%s' was made with --batch %llu, %llu training images, --seed %llu; "
                    "resume with the same values\n",
                    prog, o.checkpoint, (unsigned long long)c[4], (unsigned long long)c[5],
                    (unsigned long long)c[6]);
            return 1;
        }
        if (c[7] != (uint64_t)o.epochs)
            fprintf(stderr, "%s: note: checkpoint planned %llu epochs, now %lld: the learning-rate "
                            "schedule changes\n", prog, (unsigned long long)c[7], (long long)o.epochs);
        first_epoch = (int64_t)c[1];
        if (eqr_batcher_seek(ctx, &bt, (int64_t)c[2], (int64_t)c[3]) != EQR_OK)
            die_ctx(ctx, "restoring the batch position");
        printf("# resumed from %s after epoch %lld (optimizer step %lld)\n", o.checkpoint,
               (long long)first_epoch, (long long)eqr_optim_steps(opt));
    } else if (o.resume) {
        printf("# no checkpoint at %s yet: starting from scratch\n", o.checkpoint);
    }

    printf("# train %lld images, test %lld, batch %lld, epochs %lld, AdamW lr %g wd %g, "
           "cosine over %lld steps, threads %lld, seed %llu, %lld parameters\n",
           (long long)train.n, (long long)test.n, (long long)o.batch, (long long)o.epochs,
           o.lr, o.wd, (long long)sched.total_steps, (long long)o.threads,
           (unsigned long long)o.seed, (long long)eqr_param_total(ctx));
    fflush(stdout);

    float *xb = malloc((size_t)o.batch * IMG * sizeof(float));
    int32_t *yb = malloc((size_t)o.batch * sizeof(int32_t));
    if (!xb || !yb) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    const int tty = isatty(STDERR_FILENO);
    double test_loss = 0, test_acc = 0, best_acc = -1, t_start = now();
    int64_t best_epoch = 0;
    const int64_t last = o.stop_after > 0 && o.stop_after < o.epochs ? o.stop_after : o.epochs;
    for (int64_t e = first_epoch; e < last; e++) {
        progress pr = {.tty = tty, .t0 = now(), .total = train.n};
        double lsum = 0;
        int64_t seen = 0, correct = 0, cnt;
        while (eqr_batcher_next(&bt, xb, yb, &cnt)) {
            int64_t shape[4] = {cnt, 1, 28, 28};
            eqr_tensor *x = eqr_tensor_wrap(ctx, xb, 4, shape);
            eqr_tensor *logits = model_forward(ctx, &m, x, 1);
            eqr_tensor *loss = eqr_softmax_cross_entropy(ctx, logits, yb);
            eqr_zero_grad(ctx);
            if (!loss || eqr_backward(ctx, loss) != EQR_OK) die_ctx(ctx, "training step");
            eqr_optim_set_lr(opt, eqr_lr_at(&sched, eqr_optim_steps(opt)));
            if (eqr_optim_step(opt) != EQR_OK) die_ctx(ctx, "optimizer step");
            lsum += (double)loss->data[0] * (double)cnt;
            correct += count_correct(logits, yb);
            seen += cnt;
            eqr_step_reset(ctx);
            progress_update(&pr, e + 1, o.epochs, seen, lsum / (double)seen,
                            (double)correct / (double)seen);
        }
        double t_train = now() - pr.t0;
        if (tty) fprintf(stderr, "\r\033[Kepoch %lld/%lld evaluating on %lld test images...",
                         (long long)(e + 1), (long long)o.epochs, (long long)test.n);
        double t_eval0 = now();
        evaluate(ctx, &m, &test, &test_loss, &test_acc);
        double t_eval = now() - t_eval0;
        progress_clear(&pr);
        if (test_acc > best_acc) {
            best_acc = test_acc;
            best_epoch = e + 1;
        }
        printf("epoch %lld/%lld  train_loss %.4f  train_acc %.4f  test_loss %.4f  test_acc %.4f  "
               "lr %.2e  time %.1fs (train %.1fs, eval %.1fs)\n",
               (long long)(e + 1), (long long)o.epochs, lsum / (double)seen,
               (double)correct / (double)seen, test_loss, test_acc,
               (double)eqr_optim_lr(opt), t_train + t_eval, t_train, t_eval);
        fflush(stdout);
        if (o.checkpoint) {
            uint64_t c[NCOUNTERS] = {CKPT_TAG, (uint64_t)(e + 1), (uint64_t)bt.epoch,
                                     (uint64_t)bt.pos, (uint64_t)o.batch, (uint64_t)train.n,
                                     o.seed, (uint64_t)o.epochs};
            if (eqr_checkpoint_save(ctx, o.checkpoint, opt, c, NCOUNTERS) != EQR_OK)
                die_ctx(ctx, "saving the checkpoint");
        }
    }
    if (first_epoch >= last) {
        evaluate(ctx, &m, &test, &test_loss, &test_acc);
        printf("# nothing to train: the checkpoint is at epoch %lld\n", (long long)first_epoch);
    }
    char total[32];
    fmt_dur(total, sizeof total, now() - t_start);
    printf("# final test_acc %.4f (eval mode, gradients off)", test_acc);
    if (best_acc >= 0) printf("; best %.4f after epoch %lld", best_acc, (long long)best_epoch);
    printf("; wall time %s\n", total);

    free(xb);
    free(yb);
    eqr_batcher_free(&bt);
    eqr_optim_destroy(opt);
    eqr_dataset_free(&train);
    eqr_dataset_free(&test);
    eqr_ctx_destroy(ctx);
    return 0;
}
