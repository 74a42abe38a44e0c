/* docs/tutorial_d4.md: a relaxed D4 CNN on rotated Fashion-MNIST, built
 * with the module container. Usage:
 *     tutorial_d4 [TRAIN_IMAGES [EPOCHS [DATA_DIR]]]
 * (defaults: 60000 images, 2 epochs, the Debian dataset directory). Exits 0
 * if training lowered the loss and the projected model is D4-invariant to
 * 1e-5; 1 otherwise. */
#include <equirelax/equirelax.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- model ---- */
typedef struct model {
    eqr_rep *t_in, *r8, *r16; /* field types: the image, 8 and 16 regular fields */
    eqr_module *net; eqr_relax *relax;
} model;

/* D4 lifting conv, two group convs, each with batch norm and ReLU (max-pools on the
 * even sizes 28, 14 stay exactly invariant), max over D4, mean over space, linear. */
static int model_build(eqr_ctx *ctx, model *m) {
    eqr_group d4 = eqr_group_dihedral(4);
    eqr_rep_part trivial = eqr_part_irrep(eqr_irrep_of(&d4, 0, 0), 1);
    m->t_in = eqr_rep_create(ctx, &d4, 1, &trivial);
    m->r8 = eqr_rep_create(ctx, &d4, 1, (eqr_rep_part[]){eqr_part_regular(8)});
    m->r16 = eqr_rep_create(ctx, &d4, 1, (eqr_rep_part[]){eqr_part_regular(16)});
    eqr_gconv_opts k5 = {.geom = EQR_CONV2D(1, 2, 1)}, k3 = {.geom = EQR_CONV2D(1, 1, 1)};
    eqr_module *net = m->net = eqr_sequential_create(ctx, "net");
    eqr_sequential_add(net, eqr_gconv_module(ctx, "c1", m->t_in, m->r8, 5, &k5));
    eqr_sequential_add(net, eqr_field_bn_module(ctx, "bn1", m->r8, NULL));
    eqr_sequential_add(net, eqr_relu_module(ctx, NULL));
    eqr_sequential_add(net, eqr_maxpool2d_module(ctx, NULL, 2, 2, 0));
    eqr_sequential_add(net, eqr_gconv_module(ctx, "c2", m->r8, m->r16, 3, &k3));
    eqr_sequential_add(net, eqr_field_bn_module(ctx, "bn2", m->r16, NULL));
    eqr_sequential_add(net, eqr_relu_module(ctx, NULL));
    eqr_sequential_add(net, eqr_maxpool2d_module(ctx, NULL, 2, 2, 0));
    eqr_sequential_add(net, eqr_gconv_module(ctx, "c3", m->r16, m->r16, 3, &k3));
    eqr_sequential_add(net, eqr_field_bn_module(ctx, "bn3", m->r16, NULL)); /* or it can die */
    eqr_sequential_add(net, eqr_relu_module(ctx, NULL));
    eqr_sequential_add(net, eqr_group_pool_module(ctx, NULL, m->r16, EQR_GPOOL_MAX));
    eqr_sequential_add(net, eqr_global_avgpool_module(ctx, NULL));
    eqr_sequential_add(net, eqr_linear_module(ctx, "fc", 16, 10, 1));
    m->relax = eqr_relax_create(ctx, "relax", &(eqr_relax_opts){.theta = 1.0f,
        .lambda_defect = 0.01f, .lambda_norm = 0.01f}); /* y = conv(x) + theta W_r x: */
    m->net = eqr_relax_module(ctx, m->relax, NULL, net, NULL); /* c1, c2, c3 */
    return eqr_error_status(ctx) == EQR_OK ? 0 : -1;
}

static void model_free(model *m) {
    eqr_module_destroy(m->net), eqr_relax_destroy(m->relax);
    eqr_rep_destroy(m->t_in), eqr_rep_destroy(m->r8), eqr_rep_destroy(m->r16);
}
/* ---- end of model ---- */

/* Rotate every image by its own random angle (bilinear, zero outside). */
static int rotate_all(eqr_ctx *ctx, eqr_dataset *ds, uint64_t seed) {
    eqr_rng rng;
    eqr_rng_seed(&rng, seed);
    float *tmp = malloc((size_t)ds->h * ds->w * sizeof *tmp);
    for (int64_t i = 0; tmp && i < ds->n; i++) {
        float *img = ds->x + i * ds->h * ds->w;
        eqr_gelem g = eqr_gelem_of(0, 6.283185307179586 * eqr_rng_uniform(&rng));
        eqr_grid_map *gm = eqr_grid_map_create(ctx, ds->h, ds->w, g);
        if (!gm) break;
        eqr_grid_map_apply(gm, img, tmp, 1);
        memcpy(img, tmp, (size_t)ds->h * ds->w * sizeof *tmp);
        eqr_grid_map_destroy(gm);
    }
    free(tmp);
    return tmp && eqr_error_status(ctx) == EQR_OK ? 0 : -1;
}

int main(int argc, char **argv) {
    int64_t n_train = argc > 1 ? atoll(argv[1]) : 60000, epochs = argc > 2 ? atoll(argv[2]) : 2;
    const char *dir = argc > 3 ? argv[3] : NULL;
    eqr_ctx *ctx = eqr_ctx_create(&(eqr_ctx_opts){.seed = 1});
    eqr_dataset train = {0};
    model m = {0};
    if (!ctx || n_train < 1 || epochs < 1) return 1;
    eqr_fashion_mnist_load(ctx, dir, 1, &train);
    if (eqr_error_status(ctx) == EQR_OK && n_train < train.n) eqr_dataset_truncate(&train, n_train);
    if (eqr_error_status(ctx) || rotate_all(ctx, &train, 2) || model_build(ctx, &m)) {
        fprintf(stderr, "setup: %s\n", eqr_error_message(ctx));
        return 1;
    }
    char summary[8192];
    eqr_module_summary(ctx, m.net, summary, sizeof summary);
    fputs(summary, stdout);

    /* Adam; theta decays linearly from 1 to exactly 0 at the last step. The
     * trainer's step adds the relaxation's penalty to the task loss, runs
     * backward, the optimizer and the schedule, and resets the step. */
    const int64_t batch = 32, steps = epochs * ((train.n + batch - 1) / batch);
    eqr_optim *opt = eqr_optim_create(ctx, &(eqr_optim_opts){.kind = EQR_OPTIM_ADAM, .lr = 3e-3f});
    eqr_scheduler *sched = eqr_scheduler_create(ctx, opt);
    eqr_schedule lin = {.kind = EQR_SCHED_LINEAR, .start = 1.0f, .total = steps};
    eqr_scheduler_add_value(sched, eqr_relax_theta(m.relax), &lin);
    eqr_trainer *tr = eqr_trainer_create(ctx, &(eqr_trainer_opts){
        .module = m.net, .opt = opt, .sched = sched, .relax = m.relax, .epochs = epochs,
        .eval_batch = batch});
    eqr_batcher bt;
    eqr_batcher_init(ctx, &bt, &train, batch, 1, 3);
    float *xb = malloc((size_t)batch * 28 * 28 * sizeof *xb);
    int32_t yb[32];
    double first = 0, last = 0;
    for (int64_t step = 0, cnt; step < steps && xb && !eqr_error_status(ctx); step++) {
        if (!eqr_batcher_next(&bt, xb, yb, &cnt)) eqr_batcher_next(&bt, xb, yb, &cnt);
        eqr_tensor *x = eqr_tensor_wrap(ctx, xb, 4, (int64_t[]){cnt, 1, 28, 28});
        eqr_tensor *task = eqr_softmax_cross_entropy(ctx, eqr_module_forward(ctx, m.net, x), yb);
        float loss = task ? task->data[0] : 0;
        if (!task || eqr_trainer_step(tr, task, cnt, NULL)) break;
        if (step < 5) first += loss / 5;
        if (step >= steps - 5) last += loss / 5;
        if (step % 100 == 0 || step == steps - 1)
            printf("step %lld/%lld  loss %.4f  theta %.3f\n", (long long)step, (long long)steps,
                   loss, eqr_relax_theta(m.relax)->data[0]);
    }

    /* Project (theta is 0 now: fold = drop) and measure the invariance of
     * the logits over the 8 elements of D4, in evaluation mode. */
    eqr_relax_project(ctx, m.relax, EQR_PROJECT_FOLD);
    eqr_module_set_training(m.net, 0);
    eqr_step_reset(ctx);
    double err = 1, test_loss = 0, acc = 0;
    int64_t ne = train.n < 16 ? train.n : 16;
    eqr_tensor *xe = eqr_tensor_from(ctx, 4, (int64_t[]){ne, 1, 28, 28}, train.x);
    eqr_equivariance_error_max(ctx, eqr_module_apply, m.net, m.t_in, NULL, xe, NULL, 0, &err);
    /* Accuracy of the projected model on rotated test images. */
    eqr_dataset test = {0};
    if (eqr_fashion_mnist_load(ctx, dir, 0, &test) == EQR_OK) {
        eqr_dataset_truncate(&test, test.n < n_train ? test.n : n_train);
        if (rotate_all(ctx, &test, 4) == 0) eqr_trainer_evaluate(tr, &test, 0, &test_loss, &acc);
    }
    printf("loss first %.4f last %.4f; projected model: theta %g, D4 invariance error %.3g, "
           "test accuracy %.4f (%lld images)\n", first, last, eqr_relax_theta(m.relax)->data[0],
           err, acc, (long long)test.n);
    int ok = eqr_error_status(ctx) == EQR_OK && last < first && err <= 1e-5 &&
             eqr_relax_theta(m.relax)->data[0] == 0.0f;
    if (eqr_error_status(ctx)) fprintf(stderr, "error: %s\n", eqr_error_message(ctx));

    free(xb);
    eqr_trainer_destroy(tr);
    eqr_batcher_free(&bt);
    eqr_scheduler_destroy(sched);
    eqr_optim_destroy(opt);
    model_free(&m);
    eqr_dataset_free(&train);
    eqr_dataset_free(&test);
    eqr_ctx_destroy(ctx);
    return ok ? 0 : 1;
}
