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

#include "example_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    eqr_module *net, *conv[4]; /* conv[l]: the group convs inside net */
} model;

/* ---- command line ---- */

static void parse_args(int argc, char **argv, options *o) {
    *o = (options){.epochs = 5, .batch = 64, .threads = 2, .seed = 1, .lr = 1e-3f,
                   .inv_images = 1000};
    const ex_flag flags[] = {
        EX_FLAG_EPOCHS(&o->epochs, "5"),
        EX_FLAG_BATCH(&o->batch, "64"),
        EX_FLAG_LR(&o->lr, "Adam", "0.001"),
        EX_FLAG_THREADS(&o->threads, "2"),
        EX_FLAG_SEED(&o->seed, "initialisation, shuffling and training rotations"),
        EX_FLAG_TRAIN_SIZE(&o->train_limit, "training images", "all"),
        EX_FLAG_TEST_SIZE(&o->test_limit),
        EX_FLAG_EQUIV_IMAGES(&o->inv_images, "final", "1000"),
        EX_FLAG_DATA_FMNIST(&o->data),
        {0}};
    ex_parse_args("train_c4_fmnist", flags, argc, argv);
}

/* ---- data: a fixed random quarter turn per image ---- */

static int rotate_dataset(eqr_ctx *ctx, eqr_dataset *ds, uint64_t seed, int64_t counts[4]) {
    eqr_grid_map *maps[4] = {0};
    float *tmp = malloc(IMG * sizeof(float));
    int ok = tmp != NULL;
    for (int r = 0; r < 4 && ok; r++) {
        maps[r] = eqr_grid_map_create(ctx, SIDE, SIDE, eqr_gelem_of(0, r * 1.57079632679489661923));
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

/* Modules are created in the order of the parameters they draw from the
 * context RNG (l1..l4, fc), so the initialisation matches the seed's. */
static int model_build(eqr_ctx *ctx, model *m) {
    memset(m, 0, sizeof *m);
    m->G = eqr_group_cyclic(4);
    m->t1 = rep_of(ctx, &m->G, 0, 1);
    m->r16 = rep_of(ctx, &m->G, 1, 16);
    m->r32 = rep_of(ctx, &m->G, 1, 32);
    if (!m->t1 || !m->r16 || !m->r32) return -1;
    const eqr_rep *in[4] = {m->t1, m->r16, m->r16, m->r32};
    const eqr_rep *out[4] = {m->r16, m->r16, m->r32, m->r32};
    const int k[4] = {5, 5, 3, 3};
    m->net = eqr_sequential_create(ctx, "net");
    for (int l = 0; l < 4; l++) {
        char nm[4];
        snprintf(nm, sizeof nm, "l%d", l + 1);
        eqr_gconv_opts go = {.geom = EQR_CONV2D(1, k[l] / 2, 1)};
        m->conv[l] = eqr_gconv_module(ctx, nm, in[l], out[l], k[l], &go);
        eqr_sequential_add(m->net, m->conv[l]);
        eqr_sequential_add(m->net, eqr_relu_module(ctx, NULL));
        if (l == 1 || l == 2) eqr_sequential_add(m->net, eqr_maxpool2d_module(ctx, NULL, 2, 2, 0));
    }
    eqr_sequential_add(m->net, eqr_group_pool_module(ctx, NULL, m->r32, EQR_GPOOL_MAX));
    eqr_sequential_add(m->net, eqr_global_avgpool_module(ctx, NULL));
    eqr_sequential_add(m->net, eqr_linear_module(ctx, "fc", 32, 10, 1));
    return eqr_error_status(ctx) == EQR_OK ? 0 : -1;
}

static void model_free(model *m) {
    eqr_module_destroy(m->net);
    eqr_rep_destroy(m->t1);
    eqr_rep_destroy(m->r16);
    eqr_rep_destroy(m->r32);
}

/* Each conv exact on its input size, each max-pool on an even size: then
 * the whole model is exactly C4-invariant. Prints the check; 0 if it holds. */
static int check_geometry(const model *m) {
    int s = SIDE, ok = 1;
    ok &= eqr_gconv_exact_on(eqr_module_gconv(m->conv[0]), s, s);
    ok &= eqr_gconv_exact_on(eqr_module_gconv(m->conv[1]), s, s);
    ok &= s % 2 == 0; /* pool 1 on 28 x 28 */
    s /= 2;
    ok &= eqr_gconv_exact_on(eqr_module_gconv(m->conv[2]), s, s);
    ok &= s % 2 == 0; /* pool 2 on 14 x 14 */
    s /= 2;
    ok &= eqr_gconv_exact_on(eqr_module_gconv(m->conv[3]), s, s);
    printf("# geometry: convs stride 1 'same', max-pools on 28x28 and 14x14 (even) -> %s\n",
           ok ? "exactly C4-invariant" : "NOT exact");
    return ok ? 0 : -1;
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
        if (!x || eqr_equivariance_error_max(ctx, eqr_module_apply, m->net, m->t1, NULL, x, NULL, 0, &e))
            ex_die_ctx(ctx, "invariance measurement");
        if (e > *worst) *worst = e;
        *mean += e;
        eqr_step_reset(ctx);
    }
    if (n > 0) *mean /= (double)n;
}

/* ---- main ---- */

int main(int argc, char **argv) {
    options o;
    parse_args(argc, argv, &o);

    eqr_ctx *ctx = ex_ctx_create(o.seed, o.threads);
    eqr_dataset train, test;
    ex_load_fashion_mnist(ctx, o.data, o.train_limit, o.test_limit, SIDE, 10, &train, &test);
    if (o.inv_images > test.n) o.inv_images = test.n;
    int64_t rtrain[4] = {0}, rtest[4] = {0};
    if (rotate_dataset(ctx, &train, o.seed * 2654435761u + 1, rtrain) ||
        rotate_dataset(ctx, &test, TEST_ROT_SEED, rtest))
        ex_die_ctx(ctx, "rotating the images");

    model m;
    if (model_build(ctx, &m)) ex_die_ctx(ctx, "building the model");
    if (check_geometry(&m)) ex_die("the model geometry is not exactly invariant");
    eqr_optim *opt = eqr_optim_create(ctx, &(eqr_optim_opts){.kind = EQR_OPTIM_ADAM, .lr = o.lr});
    if (!opt) ex_die_ctx(ctx, "creating the optimizer");
    eqr_batcher bt;
    if (eqr_batcher_init(ctx, &bt, &train, o.batch, 1, o.seed) != EQR_OK) ex_die_ctx(ctx, "batcher");

    printf("# C4 P4CNN on rotated Fashion-MNIST: train %lld images (quarter turns 0/90/180/270: "
           "%lld/%lld/%lld/%lld), test %lld (%lld/%lld/%lld/%lld)\n",
           (long long)train.n, (long long)rtrain[0], (long long)rtrain[1], (long long)rtrain[2],
           (long long)rtrain[3], (long long)test.n, (long long)rtest[0], (long long)rtest[1],
           (long long)rtest[2], (long long)rtest[3]);
    printf("# batch %lld, epochs %lld, Adam lr %g, threads %lld, seed %llu, %lld parameters\n",
           (long long)o.batch, (long long)o.epochs, o.lr, (long long)o.threads,
           (unsigned long long)o.seed, (long long)eqr_param_num_scalars(ctx));
    fflush(stdout);

    ex_progress_style tenths = EX_PROGRESS_TENTHS;
    eqr_trainer *tr = eqr_trainer_create(ctx, &(eqr_trainer_opts){
        .module = m.net, .opt = opt, .epochs = o.epochs,
        .eval_batch = EVAL_BATCH, .progress = ex_progress, .progress_user = &tenths});
    if (!tr) ex_die_ctx(ctx, "creating the trainer");
    double test_loss = 0, test_acc = 0, train_secs = 0;
    for (int64_t e = 0; e < o.epochs; e++) {
        eqr_epoch_stats st;
        if (eqr_trainer_epoch(tr, &bt, e + 1, &st) != EQR_OK) ex_die_ctx(ctx, "training");
        train_secs += st.secs;
        double t1 = ex_now();
        if (eqr_trainer_evaluate(tr, &test, 0, &test_loss, &test_acc) != EQR_OK)
            ex_die_ctx(ctx, "evaluation");
        double t_eval = ex_now() - t1;
        printf("epoch %lld/%lld  train_loss %.4f  train_acc %.4f  test_loss %.4f  test_acc %.4f  "
               "train %.1fs (%.1f ms/step)  eval %.1fs\n",
               (long long)(e + 1), (long long)o.epochs, st.loss, st.acc, test_loss, test_acc,
               st.secs, 1e3 * st.secs / (double)st.steps, t_eval);
        fflush(stdout);
    }
    double t2 = ex_now(), inv_max = 0, inv_mean = 0;
    measure_invariance(ctx, &m, &test, o.inv_images, &inv_max, &inv_mean);
    printf("# final test_acc %.4f  test_loss %.4f  mean train time %.1f s/epoch\n", test_acc,
           test_loss, train_secs / (double)o.epochs);
    printf("# logit invariance to 90-degree rotations over %lld test images x 4 rotations: "
           "max relative change %.3g, mean of per-image max %.3g (%.1fs)\n",
           (long long)o.inv_images, inv_max, inv_mean, ex_now() - t2);

    eqr_trainer_destroy(tr);
    eqr_batcher_free(&bt);
    eqr_optim_destroy(opt);
    model_free(&m);
    eqr_dataset_free(&train);
    eqr_dataset_free(&test);
    eqr_ctx_destroy(ctx);
    return 0;
}
