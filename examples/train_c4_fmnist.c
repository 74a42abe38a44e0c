/* C4 group CNN (the P4CNN benchmark model of the project) on Fashion-MNIST
 * with every training and test image rotated by a random multiple of 90
 * degrees.
 *
 *   C4 lifting conv 1 -> 16 fields, 5x5 pad 2, ReLU           [N, 64, 28, 28]
 *   C4 group conv 16 -> 16 fields, 5x5 pad 2, ReLU, max-pool 2 [N, 64, 14, 14]
 *   C4 group conv 16 -> 32 fields, 3x3 pad 1, ReLU, max-pool 2 [N, 128, 7, 7]
 *   C4 group conv 32 -> 32 fields, 3x3 pad 1, ReLU             [N, 128, 7, 7]
 *   max over the 4 rotations, mean over space                  [N, 32]
 *   linear 32 -> 10, softmax cross-entropy; Adam
 *
 * Regular fields are laid out channel = field * 4 + rotation. Every conv has
 * stride 1 and 'same' padding, and both max-pools see even sizes (28, 14),
 * so the model is exactly invariant to 90-degree rotations of a 28 x 28
 * input; the program checks this geometry at start-up and measures the
 * invariance of the logits at the end (eqr_equivariance_error_max).
 *
 * Rotations: each training image gets a fixed random quarter turn drawn from
 * --seed; the test images from a fixed seed (the same test set for every
 * run).
 *
 * Exit status: 0 success, 1 runtime error, 2 bad usage. */
#define _POSIX_C_SOURCE 200809L
#include <equirelax/equirelax.h>
#include <equirelax/gconv.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SIDE 28
#define IMG (SIDE * SIDE)
#define EVAL_BATCH 200
#define TEST_ROT_SEED 20240901u

typedef struct options {
    int64_t epochs, batch, threads, train_limit, test_limit, inv_images;
    uint64_t seed;
    float lr;
    const char *data;
} options;

typedef struct model {
    eqr_group G;
    eqr_rep *t1, *r16, *r32;
    eqr_gconv *l1, *l2, *l3, *l4;
    eqr_tensor *fc_w, *fc_b;
} model;

/* ---- command line ---- */

static const char *prog = "train_c4_fmnist";

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s [options]\n"
            "  --epochs N        training epochs (default 5)\n"
            "  --batch N         batch size (default 64)\n"
            "  --lr F            Adam learning rate (default 0.001)\n"
            "  --threads N       worker threads (default 2)\n"
            "  --seed N          seed of initialisation, shuffling and training rotations (default 1)\n"
            "  --train-limit N   train on the first N images only (default all 60000)\n"
            "  --test-limit N    evaluate on the first N test images only (default all 10000)\n"
            "  --inv-images N    test images for the invariance measurement (default 1000)\n"
            "  --data DIR        Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)\n"
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

static void parse_args(int argc, char **argv, options *o) {
    *o = (options){.epochs = 5, .batch = 64, .threads = 2, .seed = 1, .lr = 1e-3f,
                   .inv_images = 1000};
    static const char *valued[] = {"--epochs", "--batch", "--lr", "--threads", "--seed",
                                   "--train-limit", "--test-limit", "--inv-images", "--data"};
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
        else if (!strcmp(name, "--threads")) o->threads = parse_int(name, val, 1, 256);
        else if (!strcmp(name, "--seed")) o->seed = (uint64_t)parse_int(name, val, 0, INT64_MAX);
        else if (!strcmp(name, "--train-limit")) o->train_limit = parse_int(name, val, 1, INT64_MAX);
        else if (!strcmp(name, "--test-limit")) o->test_limit = parse_int(name, val, 1, INT64_MAX);
        else if (!strcmp(name, "--inv-images")) o->inv_images = parse_int(name, val, 0, INT64_MAX);
        else if (!strcmp(name, "--data")) {
            if (!*val) usage_error("empty value for --data");
            o->data = val;
        } else if (!strcmp(name, "--lr")) {
            char *end;
            errno = 0;
            o->lr = strtof(val, &end);
            if (errno || end == val || *end || !(o->lr > 0 && o->lr <= 10))
                usage_error("bad value '%s' for --lr: expected a number in (0, 10]", val);
        }
    }
}

/* ---- data: a fixed random quarter turn per image ---- */

static int rotate_dataset(eqr_ctx *ctx, eqr_dataset *ds, uint64_t seed, int64_t counts[4]) {
    eqr_grid_map *maps[4] = {0};
    float *tmp = malloc(IMG * sizeof(float));
    int ok = tmp != NULL;
    for (int r = 0; r < 4 && ok; r++) {
        maps[r] = eqr_grid_map_create(ctx, SIDE, SIDE, eqr_gelem_make(0, r * 1.57079632679489661923));
        ok = maps[r] && maps[r]->exact;
    }
    eqr_rng rng;
    eqr_rng_seed(&rng, seed);
    for (int64_t i = 0; ok && i < ds->n; i++) {
        int r = (int)eqr_rng_below(&rng, 4);
        counts[r]++;
        if (r == 0) continue;
        float *img = ds->x + i * IMG;
        eqr_grid_map_apply(maps[r], img, tmp, 1);
        memcpy(img, tmp, IMG * sizeof(float));
    }
    for (int r = 0; r < 4; r++) eqr_grid_map_destroy(maps[r]);
    free(tmp);
    return ok ? 0 : -1;
}

/* ---- model ---- */

static eqr_rep *rep_of(eqr_ctx *ctx, const eqr_group *G, int regular, int mult) {
    eqr_rep_part p = regular ? eqr_part_regular(mult) : eqr_part_irrep(eqr_irrep_of(G, 0, 0), mult);
    return eqr_rep_create(ctx, G, 1, &p);
}

static int model_build(eqr_ctx *ctx, model *m) {
    memset(m, 0, sizeof *m);
    m->G = eqr_group_cyclic(4);
    m->t1 = rep_of(ctx, &m->G, 0, 1);
    m->r16 = rep_of(ctx, &m->G, 1, 16);
    m->r32 = rep_of(ctx, &m->G, 1, 32);
    if (!m->t1 || !m->r16 || !m->r32) return -1;
    eqr_gconv_opts k5 = {.geom = EQR_CONV2D(1, 2, 1)}, k3 = {.geom = EQR_CONV2D(1, 1, 1)};
    m->l1 = eqr_gconv_create(ctx, "l1", m->t1, m->r16, 5, &k5);
    m->l2 = eqr_gconv_create(ctx, "l2", m->r16, m->r16, 5, &k5);
    m->l3 = eqr_gconv_create(ctx, "l3", m->r16, m->r32, 3, &k3);
    m->l4 = eqr_gconv_create(ctx, "l4", m->r32, m->r32, 3, &k3);
    int64_t sw[2] = {10, 32}, sb[1] = {10};
    m->fc_w = eqr_param_new(ctx, "fc.weight", 2, sw, 0);
    m->fc_b = eqr_param_new(ctx, "fc.bias", 1, sb, EQR_PARAM_NO_DECAY);
    if (!m->l1 || !m->l2 || !m->l3 || !m->l4 || !m->fc_w || !m->fc_b) return -1;
    return eqr_init_xavier_uniform(ctx, m->fc_w, 1.0f) == EQR_OK ? 0 : -1;
}

static void model_free(model *m) {
    eqr_gconv_destroy(m->l1);
    eqr_gconv_destroy(m->l2);
    eqr_gconv_destroy(m->l3);
    eqr_gconv_destroy(m->l4);
    eqr_rep_destroy(m->t1);
    eqr_rep_destroy(m->r16);
    eqr_rep_destroy(m->r32);
}

/* Each conv exact on its input size, each max-pool on an even size: then
 * the whole model is exactly C4-invariant. Prints the check; 0 if it holds. */
static int check_geometry(const model *m) {
    int s = SIDE, ok = 1;
    ok &= eqr_gconv_exact_on(m->l1, s, s);
    ok &= eqr_gconv_exact_on(m->l2, s, s);
    ok &= s % 2 == 0; /* pool 1 on 28 x 28 */
    s /= 2;
    ok &= eqr_gconv_exact_on(m->l3, s, s);
    ok &= s % 2 == 0; /* pool 2 on 14 x 14 */
    s /= 2;
    ok &= eqr_gconv_exact_on(m->l4, s, s);
    printf("# geometry: convs stride 1 'same', max-pools on 28x28 and 14x14 (even) -> %s\n",
           ok ? "exactly C4-invariant" : "NOT exact");
    return ok ? 0 : -1;
}

static eqr_tensor *model_forward(eqr_ctx *ctx, void *mm, eqr_tensor *x) {
    model *m = mm;
    eqr_tensor *h = eqr_relu(ctx, eqr_gconv_forward(ctx, m->l1, x));
    h = eqr_relu(ctx, eqr_gconv_forward(ctx, m->l2, h));
    h = eqr_maxpool2d(ctx, h, 2, 2, 0);
    h = eqr_relu(ctx, eqr_gconv_forward(ctx, m->l3, h));
    h = eqr_maxpool2d(ctx, h, 2, 2, 0);
    h = eqr_relu(ctx, eqr_gconv_forward(ctx, m->l4, h));
    if (!h) return NULL;
    int64_t s5[5] = {h->shape[0], h->shape[1] / 4, 4, h->shape[2], h->shape[3]};
    h = eqr_max(ctx, eqr_reshape(ctx, h, 5, s5), 2, 0); /* group max-pool */
    h = eqr_global_avgpool(ctx, h);
    return eqr_linear(ctx, h, m->fc_w, m->fc_b);
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

static void die_ctx(eqr_ctx *ctx, const char *what) {
    fprintf(stderr, "%s: %s: %s\n", prog, what, eqr_error_message(ctx));
    exit(1);
}

static void evaluate(eqr_ctx *ctx, model *m, const eqr_dataset *ds, double *loss, double *acc) {
    int prev = eqr_set_grad_enabled(ctx, 0);
    double lsum = 0;
    int64_t correct = 0;
    for (int64_t i = 0; i < ds->n; i += EVAL_BATCH) {
        int64_t b = ds->n - i < EVAL_BATCH ? ds->n - i : EVAL_BATCH;
        int64_t shape[4] = {b, 1, SIDE, SIDE};
        eqr_tensor *x = eqr_tensor_wrap(ctx, ds->x + i * IMG, 4, shape);
        eqr_tensor *logits = model_forward(ctx, m, x);
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

/* Invariance of the logits to the four rotations, per test image:
 * max over g of ||f(g.x) - f(x)|| / ||f(x)|| (out_rep NULL = invariance).
 * Reports the max and the mean over images. */
static void measure_invariance(eqr_ctx *ctx, model *m, const eqr_dataset *ds, int64_t n,
                               double *worst, double *mean) {
    *worst = *mean = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t shape[4] = {1, 1, SIDE, SIDE};
        eqr_tensor *x = eqr_tensor_wrap(ctx, ds->x + i * IMG, 4, shape);
        double e;
        if (!x || eqr_equivariance_error_max(ctx, model_forward, m, m->t1, NULL, x, NULL, 0, &e))
            die_ctx(ctx, "invariance measurement");
        if (e > *worst) *worst = e;
        *mean += e;
        eqr_step_reset(ctx);
    }
    if (n > 0) *mean /= (double)n;
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
    if (train.c != 1 || train.h != SIDE || train.w != SIDE) {
        fprintf(stderr, "%s: expected 1x28x28 images\n", prog);
        return 1;
    }
    if (o.train_limit > 0 && o.train_limit < train.n) eqr_dataset_truncate(&train, o.train_limit);
    if (o.test_limit > 0 && o.test_limit < test.n) eqr_dataset_truncate(&test, o.test_limit);
    if (o.inv_images > test.n) o.inv_images = test.n;
    int64_t rtrain[4] = {0}, rtest[4] = {0};
    if (rotate_dataset(ctx, &train, o.seed * 2654435761u + 1, rtrain) ||
        rotate_dataset(ctx, &test, TEST_ROT_SEED, rtest))
        die_ctx(ctx, "rotating the images");

    model m;
    if (model_build(ctx, &m)) die_ctx(ctx, "building the model");
    if (check_geometry(&m)) {
        fprintf(stderr, "%s: the model geometry is not exactly invariant\n", prog);
        return 1;
    }
    eqr_optim *opt = eqr_optim_create(ctx, &(eqr_optim_opts){.kind = EQR_OPTIM_ADAM, .lr = o.lr});
    if (!opt) die_ctx(ctx, "creating the optimizer");
    eqr_batcher bt;
    if (eqr_batcher_init(ctx, &bt, &train, o.batch, 1, o.seed) != EQR_OK) die_ctx(ctx, "batcher");

    printf("# C4 P4CNN on rotated Fashion-MNIST: train %lld images (quarter turns 0/90/180/270: "
           "%lld/%lld/%lld/%lld), test %lld (%lld/%lld/%lld/%lld)\n",
           (long long)train.n, (long long)rtrain[0], (long long)rtrain[1], (long long)rtrain[2],
           (long long)rtrain[3], (long long)test.n, (long long)rtest[0], (long long)rtest[1],
           (long long)rtest[2], (long long)rtest[3]);
    printf("# batch %lld, epochs %lld, Adam lr %g, threads %lld, seed %llu, %lld parameters\n",
           (long long)o.batch, (long long)o.epochs, o.lr, (long long)o.threads,
           (unsigned long long)o.seed, (long long)eqr_param_total(ctx));
    fflush(stdout);

    float *xb = malloc((size_t)o.batch * IMG * sizeof(float));
    int32_t *yb = malloc((size_t)o.batch * sizeof(int32_t));
    if (!xb || !yb) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    double test_loss = 0, test_acc = 0, train_secs = 0;
    for (int64_t e = 0; e < o.epochs; e++) {
        double t0 = now(), lsum = 0;
        int64_t seen = 0, correct = 0, cnt, next = train.n / 10;
        while (eqr_batcher_next(&bt, xb, yb, &cnt)) {
            int64_t shape[4] = {cnt, 1, SIDE, SIDE};
            eqr_tensor *x = eqr_tensor_wrap(ctx, xb, 4, shape);
            eqr_tensor *logits = model_forward(ctx, &m, x);
            eqr_tensor *loss = eqr_softmax_cross_entropy(ctx, logits, yb);
            eqr_zero_grad(ctx);
            if (!loss || eqr_backward(ctx, loss) != EQR_OK) die_ctx(ctx, "training step");
            if (eqr_optim_step(opt) != EQR_OK) die_ctx(ctx, "optimizer step");
            lsum += (double)loss->data[0] * (double)cnt;
            correct += count_correct(logits, yb);
            seen += cnt;
            eqr_step_reset(ctx);
            if (seen >= next && seen < train.n) {
                double el = now() - t0;
                fprintf(stderr, "epoch %lld/%lld  %lld/%lld  %.0f img/s  loss %.4f  acc %.4f\n",
                        (long long)(e + 1), (long long)o.epochs, (long long)seen, (long long)train.n,
                        (double)seen / el, lsum / (double)seen, (double)correct / (double)seen);
                next += train.n / 10 > 0 ? train.n / 10 : 1;
            }
        }
        double t_train = now() - t0;
        train_secs += t_train;
        double t1 = now();
        evaluate(ctx, &m, &test, &test_loss, &test_acc);
        double t_eval = now() - t1;
        printf("epoch %lld/%lld  train_loss %.4f  train_acc %.4f  test_loss %.4f  test_acc %.4f  "
               "train %.1fs (%.1f ms/step)  eval %.1fs\n",
               (long long)(e + 1), (long long)o.epochs, lsum / (double)seen,
               (double)correct / (double)seen, test_loss, test_acc, t_train,
               1e3 * t_train / (double)((train.n + o.batch - 1) / o.batch), t_eval);
        fflush(stdout);
    }
    double t2 = now(), inv_max = 0, inv_mean = 0;
    measure_invariance(ctx, &m, &test, o.inv_images, &inv_max, &inv_mean);
    printf("# final test_acc %.4f  test_loss %.4f  mean train time %.1f s/epoch\n", test_acc,
           test_loss, train_secs / (double)o.epochs);
    printf("# logit invariance to 90-degree rotations over %lld test images x 4 rotations: "
           "max relative change %.3g, mean of per-image max %.3g (%.1fs)\n",
           (long long)o.inv_images, inv_max, inv_mean, now() - t2);

    free(xb);
    free(yb);
    eqr_batcher_free(&bt);
    eqr_optim_destroy(opt);
    model_free(&m);
    eqr_dataset_free(&train);
    eqr_dataset_free(&test);
    eqr_ctx_destroy(ctx);
    return 0;
}
