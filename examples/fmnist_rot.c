/* fmnist_rot: the main job of equirelax. Trains a group-equivariant CNN with
 * constraint relaxation on rotated Fashion-MNIST and ends with an exactly
 * equivariant (projected) model.
 *
 * Model on S x S images (width C = --width channels; |G| = 4 for c4, 8 for d4
 * and c8, 1 for none, so every variant has the same channel counts and conv
 * cost; K classes = --classes, default the labels' largest + 1):
 *   conv 1 -> C channels, 5x5 pad 2 + e, ReLU, max-pool 2  [N, C, S'/2, S'/2]
 *   conv C -> 2C channels, 3x3 pad 1, ReLU, max-pool 2     [N, 2C, S'/4, S'/4]
 *   conv 2C -> 4C channels, 3x3 pad 1, ReLU                [N, 4C, S'/4, S'/4]
 *   max over each field's |G| channels, mean over space    [N, 4C/|G|]
 *   linear -> K logits, softmax cross-entropy; Adam
 * (Fashion-MNIST: S = 28, e = 0, maps 14x14 and 7x7, K = 10.) The global
 * mean makes the head independent of S. c4 / d4: lifting + group convs
 * (gconv.h) on regular fields; c8: steerable convs (steerable.h) on regular
 * C8 fields; none: plain convs. Convs have stride 1 and 'same' padding; a
 * 2x2 max-pool of stride 2 is exact only on even sizes (gconv.h's rule
 * (n + 2 pad - dil (k - 1) - 1) % stride == 0 with k = stride = 2), so both
 * pools need even sizes: S' = S + 2e must be a multiple of 4, e = 1 (one
 * extra ring of zero padding in conv 1) when S = 4m + 2, else 0. Then the
 * equivariant models are exactly invariant to the grid-exact elements.
 * Images must be square (a quarter turn maps H x W onto W x H); odd S
 * cannot be padded symmetrically to even and is refused for c4 / d4 / c8
 * before training (the plain CNN takes it, its pools dropping the last row).
 *
 * Relaxation (--relax other than off): every conv of c4 / d4 / c8 carries a
 * term theta * W_r (relax.h), W_r initialised per --wr-init; theta follows
 * the --relax schedule PER OPTIMIZER STEP over all training steps (peak
 * --theta-max), so a decaying schedule reaches theta = 0 exactly after the
 * last step. Loss = cross-entropy + lambda_defect ssqrt(LD) + lambda_norm
 * ssqrt(N). With --relax-form rgconv the convs are relaxed group convs
 * instead (relax.h eqr_relax_rgconv: --rgconv-banks base filters mixed per
 * group element, the deviations of the mixing weights scaled by theta;
 * c4 / d4) and each epoch line adds rg_spread per conv, the largest
 * relative std over g of its mixing weights (before projection). After
 * training the model is projected (--projection) and
 * measured. The learning rate follows --lr-schedule through the same
 * scheduler.
 *
 * Per epoch (stdout): train loss and accuracy, the test accuracy of the
 * PROJECTED model (parameters snapshotted, projected, evaluated, restored),
 * theta at the end of the epoch, the mean penalty per step, LD and N, and
 * the invariance error of the relaxed and of the projected model on the
 * first --equiv-images test images (test figures every --eval-every epochs
 * and after the last). The line shows only what the run has: no theta,
 * penalty, LD or N for a strict run (--relax off, --group none), no test
 * figures between evaluations. The --metrics CSV keeps every column, the
 * fields that do not apply left empty; the --plot SVG skips them. A checkpoint is saved after every epoch; --resume continues
 * from it bit for bit (same thread count). The last line of stdout is
 *     result test_acc=<f> equiv_err=<f> projected=<0|1> seconds=<f> [val_acc=<f>]
 * with equiv_err the largest relative change ||f(g.x) - f(x)|| / ||f(x)||
 * of the final logits over every test image (of --test-size) and every
 * grid-exact element g of the group (c4: 4 rotations; d4: 8 rotations and
 * flips; c8: its 4 rotations by multiples of 90 degrees; none: the 4 C4
 * rotations, the data's symmetry). projected = 1 when the final model is the
 * projection onto the equivariant space (a strict model is its own
 * projection); 0 for --group none. seconds = wall time of this process.
 *
 * Data-parallel (docs/distributed.md): started by mpirun with N > 1
 * processes (and built with equirelax_dist), every rank trains on its share
 * of each global --batch, the gradients averaged over ranks every step; the
 * ranks' flags, data and resumed checkpoint are checked the same before
 * training, rank 0 alone prints and writes files, the checkpoint records N
 * (a resume on another N is refused).
 *
 * Exit status: 0 success, 1 runtime error, 2 bad usage. */
#define _POSIX_C_SOURCE 200809L
#include <equirelax/equirelax.h>

#include "example_common.h"
#include "ex_dist.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define EVAL_BATCH 200
#define EQUIV_BATCH 100
#define TEST_ROT_SEED 20240901u
#define VAL_ROT_SEED 20241203u
#define PI 3.14159265358979323846

/* ---- options ---- */

typedef enum gkind { G_C4, G_D4, G_C8, G_NONE } gkind;

typedef struct options {
    const char *group, *relax, *projection, *rotate, *wr_init, *lr_schedule, *penalty_grad;
    const char *relax_form;
    int64_t rg_banks;
    const char *data, *checkpoint, *metrics, *plot, *steps, *steps_plot;
    int64_t epochs, train_size, test_size, val_size, batch, threads, width, norm_subsample, equiv_images;
    int64_t stop_after, eval_every, classes, telemetry, probe_images;
    uint64_t seed;
    float lr, theta_max, lambda_defect, lambda_norm, dual_lr, slack_cost, wr_scale;
    int adaptive, orthogonal;
    int resume;
    /* parsed */
    gkind gk;
    int relax_kind; /* -1 off, else eqr_sched_kind */
    eqr_project_mode proj;
    eqr_penalty_grad pgrad;
    int rotate_cont, wr_normal, lr_cosine;
    int rgconv; /* --relax-form rgconv */
    int side; /* of the loaded images */
} options;

static void parse_args(int argc, char **argv, options *o) {
    *o = (options){.group = "c4", .relax = "triangle", .projection = "fold", .penalty_grad = "detached", .rotate = "c4",
                   .relax_form = "auto", .rg_banks = 4,
                   .wr_init = "zero", .lr_schedule = "cosine", .epochs = 3,
                   .batch = 64, .threads = 2, .width = 32,
                   .norm_subsample = 8, .equiv_images = 200, .eval_every = 1, .seed = 1,
                   .probe_images = 500,
                   .lr = 3e-3f,
                   .theta_max = 1.0f, .lambda_defect = 0.01f, .lambda_norm = 0.01f,
                   .dual_lr = 0.1f, .wr_scale = 1.0f};
    const ex_flag flags[] = {
        EX_FLAG_STR("--group", "G", &o->group,
                    "c4 | d4 (group convs), c8 (steerable convs, regular fields), none (plain "
                    "CNN, same channels) (default c4)"),
        EX_FLAG_RELAX(&o->relax, "triangle"),
        EX_FLAG_STR("--relax-form", "F", &o->relax_form,
                    "additive (f_eq + theta W_r, the paper) | rgconv (relaxed group conv, Wang "
                    "et al. 2022: --rgconv-banks base filters mixed per group element; c4 / d4 "
                    "only) | auto: rgconv for c4 / d4 unless an additive-only option (--orthogonal, "
                    "--wr-scale, --wr-init normal, --telemetry) is given, else additive, and "
                    "additive with --orthogonal for c8; the recipes validation picked in "
                    "docs/results_relax.md (default auto)"),
        EX_FLAG_INT("--rgconv-banks", &o->rg_banks, 1, EQR_RGCONV_MAX_BANKS,
                    "rgconv: number L of base filters per conv (default 4)"),
        EX_FLAG_THETA_MAX(&o->theta_max),
        EX_FLAG_ADAPTIVE(&o->adaptive),
        EX_FLAG_ORTHOGONAL(&o->orthogonal, ""),
        EX_FLAG_WR_SCALE(&o->wr_scale),
        EX_FLAG_FLOAT_ABOVE("--dual-lr", &o->dual_lr, 0.0f, 1e6f,
                            "adaptive: step size of the multipliers' dual ascent (default 0.1)"),
        EX_FLAG_FLOAT("--slack-cost", &o->slack_cost, 0.0f, 1e6f,
                      "adaptive: resilient slack s = slack_cost * multiplier, 0 = hard "
                      "(default 0)"),
        EX_FLAG_LAMBDA_DEFECT(&o->lambda_defect),
        EX_FLAG_LAMBDA_NORM(&o->lambda_norm),
        EX_FLAG_INT("--norm-subsample", &o->norm_subsample, 0, 1 << 20,
                    "estimate the norm penalty from the first N images of each batch, 0 = "
                    "the whole batch (default 8)"),
        EX_FLAG_STR("--wr-init", "I", &o->wr_init,
                    "zero | normal: W_r initialisation (default zero)"),
        EX_FLAG_PENALTY_GRAD(&o->penalty_grad),
        EX_FLAG_STR("--projection", "P", &o->projection,
                    "drop | fold: projection at the end and for the per-epoch test accuracy "
                    "(default fold; the same as drop once theta is 0)"),
        EX_FLAG_LR(&o->lr, "Adam", "0.003"),
        EX_FLAG_LR_SCHEDULE(&o->lr_schedule, "cosine"),
        EX_FLAG_BATCH(&o->batch, "64"),
        EX_FLAG_EPOCHS(&o->epochs, "3"),
        EX_FLAG_TRAIN_SIZE(&o->train_size, "training images", "all"),
        EX_FLAG_TEST_SIZE(&o->test_size),
        EX_FLAG_INT("--val-size", &o->val_size, 1, INT64_MAX, "hold out the last N training "
                    "images, rotated as the test set; the result line gains val_acc= (default none)"),
        EX_FLAG_INT("--width", &o->width, 8, 4096,
                    "channels of the first conv, a multiple of 8; then 2x, 4x (default 32)"),
        EX_FLAG_STR("--rotate", "R", &o->rotate,
                    "c4 (random multiples of 90 degrees) | continuous (random angles, bilinear) "
                    "(default c4)"),
        EX_FLAG_EQUIV_IMAGES(&o->equiv_images, "per-epoch", "200"),
        EX_FLAG_INT("--eval-every", &o->eval_every, 1, 1000000,
                    "evaluate the projected model every N epochs and after the last (default 1)"),
        EX_FLAG_SEED(&o->seed, "initialisation, shuffling and training rotations"),
        EX_FLAG_THREADS(&o->threads, "2"),
        EX_FLAG_STR("--data", "DIR", &o->data,
                    "directory of IDX image files laid out as Fashion-MNIST's, any counts, "
                    "square images of a side 4m or 4m+2 (odd: --group none only) (default "
                    "/usr/share/datasets/fashion-mnist)"),
        EX_FLAG_INT("--classes", &o->classes, 2, 65536,
                    "number of classes (logits), at least the labels' largest + 1 (default "
                    "that)"),
        EX_FLAG_CHECKPOINT(&o->checkpoint, "W_r, theta, Adam, schedule position"),
        EX_FLAG_RESUME(&o->resume),
        EX_FLAG_STOP_AFTER(&o->stop_after),
        EX_FLAG_METRICS(&o->metrics),
        EX_FLAG_STR("--steps", "FILE", &o->steps,
                    "write the per-step telemetry (--telemetry) as CSV"),
        EX_FLAG_STR("--steps-plot", "FILE", &o->steps_plot,
                    "write an SVG chart of the per-step telemetry (--telemetry)"),
        EX_FLAG_INT("--telemetry", &o->telemetry, 0, INT64_MAX,
                    "every N optimizer steps record theta |W_r x| / |f_eq x| per layer, |W_r|, "
                    "W_r's Adam moments and the loss and accuracy of the relaxed and the "
                    "projected model on --probe-images test images; 0 = off (default 0)"),
        EX_FLAG_INT("--probe-images", &o->probe_images, 0, 10000,
                    "test images of the telemetry's probe evaluations (default 500)"),
        EX_FLAG_PLOT(&o->plot, "loss, projected test accuracy, theta, penalties and invariance errors"),
        {0}};
    ex_parse_args("fmnist_rot", flags, argc, argv);

    o->gk = (gkind)ex_choice(flags, "--group", o->group,
                             (const char *const[]){"c4", "d4", "c8", "none", NULL});
    o->relax_kind = ex_relax_kind(flags, o->relax);
    o->rgconv = ex_choice(flags, "--relax-form", o->relax_form,
                          (const char *const[]){"additive", "rgconv", "auto", NULL});
    if (o->rgconv == 2) { /* auto: what validation picked per group (docs/results_relax.md) */
        o->rgconv = (o->gk == G_C4 || o->gk == G_D4) && o->relax_kind >= 0 && !o->orthogonal &&
                    o->wr_scale == 1.0f && strcmp(o->wr_init, "normal") && !o->telemetry;
        if (o->gk == G_C8 && o->relax_kind >= 0) o->orthogonal = 1;
    }
    if (o->rgconv && (o->gk == G_C8 || o->gk == G_NONE))
        ex_usage_error(flags, "--relax-form rgconv needs group convs: --group c4 or d4 (got %s)",
                       o->group);
    if (o->rgconv && o->relax_kind < 0)
        ex_usage_error(flags, "--relax-form rgconv needs a relaxation (--relax triangle, "
                       "linear, ...)");
    if (o->adaptive && o->relax_kind < 0)
        ex_usage_error(flags, "--adaptive needs a relaxation (--relax linear, cosine, ...)");
    if (o->orthogonal && o->relax_kind < 0)
        ex_usage_error(flags, "--orthogonal needs a relaxation (--relax triangle, ...)");
    o->proj = ex_projection(flags, o->projection);
    o->pgrad = ex_penalty_grad(flags, o->penalty_grad);
    o->rotate_cont = ex_choice(flags, "--rotate", o->rotate,
                               (const char *const[]){"c4", "continuous", NULL});
    o->wr_normal = ex_choice(flags, "--wr-init", o->wr_init,
                             (const char *const[]){"zero", "normal", NULL});
    o->lr_cosine = ex_choice(flags, "--lr-schedule", o->lr_schedule,
                             (const char *const[]){"constant", "cosine", NULL});
    if (o->width % 8 != 0)
        ex_usage_error(flags, "bad value '%lld' for --width: expected a multiple of 8",
                       (long long)o->width);
    ex_check_checkpoint_flags(flags, o->checkpoint, o->resume, o->stop_after, o->epochs);
    ex_check_output(flags, "--metrics", o->metrics);
    ex_check_output(flags, "--plot", o->plot);
    ex_check_output(flags, "--steps", o->steps);
    ex_check_output(flags, "--steps-plot", o->steps_plot);
    if ((o->steps || o->steps_plot) && !o->telemetry)
        ex_usage_error(flags, "--steps and --steps-plot need --telemetry N");
    if (o->data) {
        struct stat st;
        if (stat(o->data, &st) != 0 || !S_ISDIR(st.st_mode))
            ex_usage_error(flags, "bad value '%s' for --data: no such directory", o->data);
    }
    /* The plain CNN has nothing to relax. */
    if (o->gk == G_NONE) o->relax_kind = -1;
}

/* ---- data: a validation split, a fixed random rotation per image ---- */

/* val = a copy of the last o->val_size images of the full training set;
 * train keeps its first --train-size (or all the others). */
static void split_val(const options *o, eqr_dataset *train, eqr_dataset *val) {
    const int64_t n = train->n, nv = o->val_size, nt = o->train_size ? o->train_size : n - nv;
    if (nv >= n)
        ex_bad_usage("--val-size %lld leaves none of the %lld training images for training",
                     (long long)nv, (long long)n);
    if (nt + nv > n)
        ex_bad_usage("--val-size %lld with %lld training images leaves %lld for training, "
                     "fewer than --train-size %lld: the two must not overlap", (long long)nv,
                     (long long)n, (long long)(n - nv), (long long)nt);
    const int64_t img = (int64_t)train->c * train->h * train->w;
    *val = *train;
    val->n = nv;
    val->x = malloc((size_t)(nv * img) * sizeof(float));
    val->y = malloc((size_t)nv * sizeof(int32_t));
    if (!val->x || !val->y) ex_die("out of memory for the validation set");
    memcpy(val->x, train->x + (n - nv) * img, (size_t)(nv * img) * sizeof(float));
    memcpy(val->y, train->y + (n - nv), (size_t)nv * sizeof(int32_t));
    eqr_dataset_truncate(train, nt);
}



static void rotate_dataset(eqr_ctx *ctx, eqr_dataset *ds, uint64_t seed, int continuous) {
    eqr_grid_map *quarter[4] = {0};
    const int side = ds->h; /* square, checked after loading */
    const int64_t img = (int64_t)side * side;
    float *tmp = malloc((size_t)img * sizeof(float));
    if (!tmp) ex_die("out of memory");
    for (int r = 1; r < 4 && !continuous; r++) {
        quarter[r] = eqr_grid_map_create(ctx, side, side, eqr_gelem_of(0, r * (PI / 2)));
        if (!quarter[r] || !quarter[r]->exact) ex_die_ctx(ctx, "rotating the images");
    }
    eqr_rng rng;
    eqr_rng_seed(&rng, seed);
    for (int64_t i = 0; i < ds->n; i++) {
        float *x = ds->x + i * img;
        if (continuous) {
            double a = 2 * PI * (double)eqr_rng_uniform(&rng);
            eqr_grid_map *m = eqr_grid_map_create(ctx, side, side, eqr_gelem_of(0, a));
            if (!m) ex_die_ctx(ctx, "rotating the images");
            eqr_grid_map_apply(m, x, tmp, 1);
            eqr_grid_map_destroy(m);
        } else {
            int r = (int)eqr_rng_below(&rng, 4);
            if (r == 0) continue;
            eqr_grid_map_apply(quarter[r], x, tmp, 1);
        }
        memcpy(x, tmp, (size_t)img * sizeof(float));
    }
    for (int r = 0; r < 4; r++) eqr_grid_map_destroy(quarter[r]);
    free(tmp);
}

/* ---- model ---- */

/* Three convs (C4/D4 group convs, C8 steerable convs, or plain ones) with
 * ReLUs and two max-pools, the max over each regular field, the mean over
 * space and a linear head; relaxed convs when a relaxation is asked for. */
typedef struct model {
    int order;             /* |G|, 1 for the plain CNN */
    int side, extra;       /* input side S, extra padding e of conv 1 */
    eqr_group G;           /* C4 for the plain CNN (its invariance check) */
    eqr_rep *tin, *reg[3]; /* input type, regular output types */
    eqr_module *net;
    eqr_module *conv[3];   /* the convs inside net (relaxed or not) */
    eqr_relax *relax;      /* NULL when strict */
} model;

static const int ksize[3] = {5, 3, 3};

/* Extra zero padding of conv 1 that makes both pools see even sizes. */
static int extra_pad(int side) { return side % 4 == 2 ? 1 : 0; }

static eqr_module *conv_module(eqr_ctx *ctx, model *m, gkind gk, int l, int64_t cin,
                               int64_t cout) {
    char nm[8];
    snprintf(nm, sizeof nm, "c%d", l + 1);
    eqr_conv2d_geom geom = EQR_CONV2D(1, ksize[l] / 2 + (l ? 0 : m->extra), 1);
    if (gk == G_NONE) return eqr_conv2d_module(ctx, nm, (int)cin, (int)cout, ksize[l], &geom, 1);
    const eqr_rep *in = l == 0 ? m->tin : m->reg[l - 1];
    if (gk == G_C8)
        return eqr_steer_conv_module(ctx, nm, in, m->reg[l], ksize[l],
                                     &(eqr_steer_conv_opts){.geom = geom});
    return eqr_gconv_module(ctx, nm, in, m->reg[l], ksize[l], &(eqr_gconv_opts){.geom = geom});
}

static void model_build(eqr_ctx *ctx, model *m, const options *o, int side, int classes) {
    memset(m, 0, sizeof *m);
    m->side = side;
    m->extra = extra_pad(side);
    m->order = 1;
    m->G = eqr_group_cyclic(4); /* the plain CNN is measured against C4 */
    const int64_t ch[3] = {o->width, 2 * o->width, 4 * o->width};
    if (o->gk != G_NONE) {
        m->G = o->gk == G_C4 ? eqr_group_cyclic(4)
             : o->gk == G_D4 ? eqr_group_dihedral(4)
                             : eqr_group_cyclic(8);
        m->order = eqr_group_order(&m->G);
        eqr_rep_part triv = eqr_part_irrep(eqr_irrep_of(&m->G, 0, 0), 1);
        m->tin = eqr_rep_create(ctx, &m->G, 1, &triv);
        for (int l = 0; l < 3; l++) {
            eqr_rep_part p = eqr_part_regular((int)(ch[l] / m->order));
            m->reg[l] = eqr_rep_create(ctx, &m->G, 1, &p);
        }
    }
    m->net = eqr_sequential_create(ctx, "net");
    for (int l = 0; l < 3; l++) {
        m->conv[l] = conv_module(ctx, m, o->gk, l, l ? ch[l - 1] : 1, ch[l]);
        eqr_sequential_add(m->net, m->conv[l]);
        eqr_sequential_add(m->net, eqr_relu_module(ctx, NULL));
        if (l < 2) eqr_sequential_add(m->net, eqr_maxpool2d_module(ctx, NULL, 2, 2, 0));
    }
    if (m->order > 1)
        eqr_sequential_add(m->net, eqr_group_pool_module(ctx, NULL, m->reg[2], EQR_GPOOL_MAX));
    eqr_sequential_add(m->net, eqr_global_avgpool_module(ctx, NULL));
    if (o->relax_kind >= 0 && o->gk != G_NONE) {
        /* adaptive: the layers' thetas start at the peak (a theta of 0 with
         * W_r = 0 would have no gradient), the schedule bounds them */
        eqr_relax_opts ro = {.theta = o->adaptive ? o->theta_max : 0.0f,
                             .adaptive = o->adaptive, .dual_lr = o->dual_lr,
                             .orthogonal = o->orthogonal, .wr_scale = o->wr_scale,
                             .slack_cost = o->slack_cost,
                             .init = o->wr_normal ? EQR_RELAX_INIT_NORMAL : EQR_RELAX_INIT_ZERO,
                             .lambda_defect = o->lambda_defect,
                             .lambda_norm = o->lambda_norm,
                             .norm_subsample = (int)o->norm_subsample,
                             .penalty_grad = o->pgrad};
        m->relax = eqr_relax_create(ctx, "relax", &ro);
        eqr_rlayer_opts lo = {.kind = o->rgconv ? EQR_RELAX_KIND_RGCONV : EQR_RELAX_KIND_ADDITIVE,
                              .nbanks = o->rgconv ? (int)o->rg_banks : 0};
        m->net = eqr_relax_module(ctx, m->relax, NULL, m->net, &lo); /* c1, c2, c3 */
    }
    /* after the relaxation: the parameter store's order (c1..c3, W_r, fc) */
    eqr_sequential_add(m->net, eqr_linear_module(ctx, "fc", (int)(ch[2] / m->order), classes, 1));
    if (eqr_error_status(ctx) != EQR_OK) ex_die_ctx(ctx, "building the model");
}

static void model_free(model *m) {
    eqr_module_destroy(m->net);
    eqr_relax_destroy(m->relax);
    for (int l = 0; l < 3; l++) eqr_rep_destroy(m->reg[l]);
    eqr_rep_destroy(m->tin);
}

/* Every conv exact on its input size and both pools on even sizes: then the
 * equivariant models are exactly invariant to the grid-exact elements. */
static int geometry_exact(const model *m) {
    const int padded = m->side + 2 * m->extra;
    const int sizes[3] = {m->side, padded / 2, padded / 4};
    int ok = padded % 4 == 0;
    for (int l = 0; l < 3; l++) {
        const eqr_gconv *gc = eqr_module_gconv(m->conv[l]);
        const eqr_steer_conv *sc = eqr_module_steer_conv(m->conv[l]);
        if (gc) ok &= eqr_gconv_exact_on(gc, sizes[l], sizes[l]);
        if (sc) ok &= eqr_steer_conv_exact_on(sc, sizes[l], sizes[l]);
    }
    return ok;
}

/* ---- checkpoint settings check ---- */

/* FNV-1a of everything that shapes the training trajectory. */
static uint64_t config_hash(const options *o) {
    char s[512];
    snprintf(s, sizeof s, "%d|%d|%.9g|%.9g|%.9g|%lld|%d|%.9g|%d|%lld|%lld|%lld|%lld|%d|%llu|%d|%lld",
             (int)o->gk, o->relax_kind, o->theta_max, o->lambda_defect, o->lambda_norm,
             (long long)o->norm_subsample, o->wr_normal, o->lr, o->lr_cosine, (long long)o->batch,
             (long long)o->epochs, (long long)o->train_size, (long long)o->width, o->rotate_cont,
             (unsigned long long)o->seed, o->side, (long long)o->classes);
    if (o->rgconv) /* appended only when on: other runs keep their hash */
        snprintf(s + strlen(s), sizeof s - strlen(s), "|rgconv|%lld", (long long)o->rg_banks);
    if (o->adaptive) /* appended only when on: other runs keep their hash */
        snprintf(s + strlen(s), sizeof s - strlen(s), "|adaptive|%.9g|%.9g", o->dual_lr,
                 o->slack_cost);
    if (o->orthogonal) snprintf(s + strlen(s), sizeof s - strlen(s), "|orthogonal");
    if (o->wr_scale != 1.0f) snprintf(s + strlen(s), sizeof s - strlen(s), "|wr%.9g", o->wr_scale);
    return ex_fnv1a(s);
}

/* Everything the ranks of a data-parallel run must agree on: the
 * trajectory's settings (config_hash) and the flags that decide what every
 * rank does when (a rank stopping, resuming or evaluating alone would leave
 * the others waiting). Threads and output paths may differ: only rank 0
 * writes, and the averaged gradients keep the parameters identical. */
static uint64_t settings_hash(const options *o, int64_t test_n) {
    char s[256];
    snprintf(s, sizeof s, "%016llx|%d|%d|%d|%lld|%lld|%lld|%lld|%lld|%lld|%d",
             (unsigned long long)config_hash(o), (int)o->proj, (int)o->pgrad, o->resume,
             (long long)o->stop_after, (long long)test_n, (long long)o->eval_every,
             (long long)o->equiv_images, (long long)o->telemetry, (long long)o->probe_images,
             o->checkpoint != NULL);
    return ex_hash(0, s, strlen(s));
}

static uint64_t data_hash(const eqr_dataset *ds, uint64_t h) {
    const size_t per = (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
    h = ex_hash(h, &ds->n, sizeof ds->n);
    h = ex_hash(h, ds->x, (size_t)ds->n * per * sizeof(float));
    return ex_hash(h, ds->y, (size_t)ds->n * sizeof(int32_t));
}

/* Refuse, before any training, images the model cannot take (see the file
 * comment) and a --classes below the labels'; fill o->side and o->classes. */
static void check_data(options *o, const eqr_dataset *train) {
    const char *where = o->data ? o->data : "the default Fashion-MNIST directory";
    const int h = train->h, w = train->w;
    if (h != w)
        ex_die("%s holds %dx%d images; this model needs square images (it is trained on and "
               "measured under quarter turns, which map HxW onto WxH)", where, h, w);
    if (o->gk != G_NONE && h % 2 != 0)
        ex_die("%s holds %dx%d images; the %s model is exactly equivariant only when both 2x2 "
               "max-pools of stride 2 see even sizes (gconv.h: (n + 2 pad - dil (k-1) - 1) %% "
               "stride == 0), so it needs a side of 4m or 4m+2 (the latter padded by 1); an odd "
               "side cannot be padded symmetrically to even: pad or crop the images, or use "
               "--group none", where, h, w, o->group);
    if (h + 2 * extra_pad(h) < 4)
        ex_die("%s holds %dx%d images; this model needs a side of at least 4 (two 2x2 "
               "max-pools)", where, h, w);
    o->side = h;
    if (o->classes == 0) o->classes = train->classes;
    else if (o->classes < train->classes)
        ex_bad_usage("bad value '%lld' for --classes: the labels in %s go up to %d (%d classes)",
                     (long long)o->classes, where, train->classes - 1, train->classes);
}

/* The epoch line: only what the run has (no theta or penalties for a strict
 * run, no test figures between evaluations). */
static void print_epoch(void *user, const eqr_metrics *ep, int64_t r) {
    const options *o = user;
#define V(name) eqr_metrics_at(ep, r, eqr_metrics_find(ep, name))
    char line[512];
    int k = snprintf(line, sizeof line, "epoch %lld/%lld  loss %.4f  train_acc %.4f",
                     (long long)V("epoch"), (long long)o->epochs, V("train_loss"), V("train_acc"));
    if (!isnan(V("test_acc_projected")))
        k += snprintf(line + k, sizeof line - (size_t)k, "  test_acc(projected) %.4f",
                      V("test_acc_projected"));
    if (!isnan(V("theta")))
        k += snprintf(line + k, sizeof line - (size_t)k,
                      "  theta %.4f  penalty %.3g  LD %.3g  N %.3g", V("theta"), V("penalty"),
                      V("defect"), V("act_norm_sq"));
    if (!isnan(V("equiv_err_relaxed")))
        k += snprintf(line + k, sizeof line - (size_t)k, "  equiv relaxed %.2e projected %.2e",
                      V("equiv_err_relaxed"), V("equiv_err_projected"));
    if (o->rgconv) /* how far each conv's mixing weights moved from equal over g */
        k += snprintf(line + k, sizeof line - (size_t)k, "  rg_spread c1 %.3g c2 %.3g c3 %.3g",
                      V("c1.rg_spread"), V("c2.rg_spread"), V("c3.rg_spread"));
    double steps = r > 0 ? V("steps") - eqr_metrics_at(ep, r - 1, 1) : V("steps");
    ex_progress_clear();
    printf("%s  train %.1fs (%.1f ms/step)\n", line, V("seconds"),
           1e3 * V("seconds") / (steps > 0 ? steps : 1));
    if (o->checkpoint) /* what rank 0 says if another rank fails */
        ex_dist_note_checkpoint(o->checkpoint, (int64_t)V("epoch"));
#undef V
    fflush(stdout);
}

static void print_header(const options *o, const model *m, eqr_ctx *ctx, int64_t n,
                         int64_t steps, const char *title) {
    if (ex_nranks() > 1)
        printf("# data-parallel on %d ranks: global batch %lld, %lld-%lld samples per rank, "
               "gradients averaged over ranks every step\n", ex_nranks(), (long long)o->batch,
               (long long)(o->batch / ex_nranks()),
               (long long)((o->batch + ex_nranks() - 1) / ex_nranks()));
    printf("# %s\n# model: %dx%d images%s, %lld classes, width %lld (channels %lld/%lld/%lld), "
           "%lld parameters incl. W_r; batch %lld, epochs %lld (%lld steps), Adam lr %g (%s), "
           "threads %lld\n",
           title, o->side, o->side, m->extra ? " (conv 1 padded by 1 more)" : "",
           (long long)o->classes, (long long)o->width, (long long)o->width,
           (long long)(2 * o->width), (long long)(4 * o->width), (long long)eqr_param_num_scalars(ctx),
           (long long)o->batch, (long long)o->epochs, (long long)steps, o->lr, o->lr_schedule,
           (long long)o->threads);
    (void)n;
    if (m->relax)
        printf("# relaxation: theta %s peak %g per step, lambda_defect %g, lambda_norm %g "
               "(norm subsample %lld, penalty grad %s), W_r init %s, projection %s\n",
               o->relax, o->theta_max, o->lambda_defect, o->lambda_norm,
               (long long)o->norm_subsample, o->penalty_grad, o->wr_init, o->projection);
    if (m->relax && o->rgconv)
        printf("# relaxed group convs (--relax-form rgconv): %lld base filters per conv, mixed "
               "per group element by a_l + theta (D[l][g] - mean_g D[l]); W_r = D; projection "
               "folds sum_l a_l Psi_l into each gconv\n", (long long)o->rg_banks);
    if (m->relax && o->orthogonal)
        printf("# orthogonal relaxation (--orthogonal): after each step the equivariant part "
               "of theta W_r moves into the layer's equivariant weights\n");
    if (m->relax && o->adaptive)
        printf("# adaptive theta: per-layer learnable thetas from %g, bound = the schedule above, "
               "dual lr %g, slack cost %g\n", o->theta_max, o->dual_lr, o->slack_cost);
    fflush(stdout);
}

/* The data: both splits loaded (a --val-size split off the end of the
 * training images), checked for the model, given o->classes classes and
 * rotated once each (the test and validation sets from fixed seeds). */
static void load_data(eqr_ctx *ctx, options *o, eqr_dataset *train, eqr_dataset *test,
                      eqr_dataset *val) {
    *val = (eqr_dataset){0};
    ex_load_fashion_mnist(ctx, o->data, o->val_size ? 0 : o->train_size, o->test_size, 0, 0,
                          train, test);
    if (o->val_size) split_val(o, train, val);
    check_data(o, train);
    train->classes = test->classes = val->classes = (int)o->classes;
    o->train_size = train->n; /* what the checkpoint settings record */
    rotate_dataset(ctx, train, o->seed * 2654435761u + 1, o->rotate_cont);
    rotate_dataset(ctx, test, TEST_ROT_SEED, o->rotate_cont);
    if (val->n) rotate_dataset(ctx, val, VAL_ROT_SEED, o->rotate_cont);
}

/* Data-parallel: the ranks must agree on settings, data and the checkpoint
 * a resume reads, before rank 0's parameters go everywhere. */
static void dist_agree(const options *o, const eqr_dataset *train, const eqr_dataset *test) {
    ex_dist_check_batches(o->batch, train->n);
    ex_dist_agree(settings_hash(o, test->n), data_hash(test, data_hash(train, 0)),
                  "the data set (train and test images and labels after rotation)",
                  o->resume ? o->checkpoint : NULL);
}

/* After the run (rank 0): the resume note, then either the stop note or
 * the final model's invariance over the whole test set (of --test-size),
 * its accuracy on the validation set if any and the result line. */
static void print_result(eqr_ctx *ctx, const options *o, const model *m, eqr_trainer *tr,
                         const eqr_run_result *res, const eqr_dataset *test,
                         const eqr_dataset *val, int64_t steps_per_epoch, double t_start) {
    if (res->resumed_after > 0)
        printf("# resumed from %s after epoch %lld (step %lld)\n", o->checkpoint,
               (long long)res->resumed_after, (long long)(res->resumed_after * steps_per_epoch));
    if (res->stopped) {
        printf("# stopped after epoch %lld (--stop-after)\n", (long long)res->epochs_done);
        return;
    }
    double t2 = ex_now(), equiv = NAN;
    if (eqr_invariance_max(ctx, eqr_module_apply, m->net, &m->G, test, test->n, EQUIV_BATCH,
                           &equiv) != EQR_OK)
        ex_die_ctx(ctx, "invariance measurement");
    int projected = m->order > 1;
    printf("# final: %s model, test_acc %.4f on %lld test images; invariance of the logits "
           "to the grid-exact elements of %s: max relative change %.3g (%.1fs)\n",
           m->relax ? "projected" : (projected ? "strict equivariant" : "plain"),
           res->test_acc, (long long)test->n, projected ? o->group : "c4", equiv, ex_now() - t2);
    char vbuf[32] = "";
    if (val->n) { /* the final (projected) model on the held-out training images */
        double vloss, vacc;
        if (eqr_trainer_evaluate(tr, val, 0, &vloss, &vacc) != EQR_OK)
            ex_die_ctx(ctx, "validation");
        snprintf(vbuf, sizeof vbuf, " val_acc=%.4f", vacc);
    }
    printf("result test_acc=%.4f equiv_err=%.3e projected=%d seconds=%.1f%s\n", res->test_acc,
           equiv, projected, ex_now() - t_start, vbuf);
}

/* ---- main ---- */

int main(int argc, char **argv) {
    double t_start = ex_now();
    /* under mpirun with N > 1 processes: data-parallel, rank 0 prints */
    const int nranks = ex_dist_init(&argc, &argv), rank0 = ex_rank() == 0;
    options o;
    parse_args(argc, argv, &o);
    eqr_ctx *ctx = ex_ctx_create(o.seed, o.threads);
    eqr_dataset train, test, val;
    load_data(ctx, &o, &train, &test, &val);

    model m;
    model_build(ctx, &m, &o, o.side, (int)o.classes);
    if (m.order > 1 && !geometry_exact(&m)) ex_die("the model geometry is not exactly invariant");
    eqr_optim *opt = eqr_optim_create(ctx, &(eqr_optim_opts){.kind = EQR_OPTIM_ADAM, .lr = o.lr});
    eqr_batcher bt;
    if (!opt || eqr_batcher_init(ctx, &bt, &train, o.batch, 1, o.seed) != EQR_OK)
        ex_die_ctx(ctx, "setting up training");
    const int64_t steps_per_epoch = (train.n + o.batch - 1) / o.batch;
    eqr_scheduler *sched = ex_schedules(ctx, opt, o.lr_cosine ? o.lr : -1, m.relax,
                                        o.relax_kind, o.theta_max, steps_per_epoch * o.epochs);
    ex_dist_begin(ctx);
    dist_agree(&o, &train, &test);
    char title[256];
    snprintf(title, sizeof title, "fmnist_rot: %s, relax %s, %s-rotated, %lld images, seed %llu",
             o.group, m.relax ? o.relax : "off", o.rotate, (long long)train.n,
             (unsigned long long)o.seed);
    if (rank0) print_header(&o, &m, ctx, train.n, steps_per_epoch * o.epochs, title);
    eqr_dataset probe = test; /* telemetry's view of the first test images */
    if (probe.n > o.probe_images) probe.n = o.probe_images;

    eqr_trainer_opts to = {
        .module = m.net, .opt = opt, .sched = sched, .relax = m.relax,
        .project = o.proj, .epochs = o.epochs, .eval_batch = EVAL_BATCH,
        .telemetry_every = o.telemetry, .probe = o.probe_images > 0 ? &probe : NULL,
        .progress = ex_progress};
    ex_dist_trainer(&to, m.relax); /* shares, averaged gradients, global statistics */
    eqr_trainer *tr = eqr_trainer_create(ctx, &to);
    /* ranks other than 0 read the checkpoint on resume and write nothing */
    eqr_run_opts ro = {.train = &bt, .test = &test, .epochs = o.epochs,
                       .eval_every = o.eval_every, .invariance = &m.G,
                       .measure_n = o.equiv_images, .checkpoint = o.checkpoint,
                       .resume = o.resume, .config = config_hash(&o), .stop_after = o.stop_after,
                       .metrics_csv = rank0 ? o.metrics : NULL,
                       .steps_csv = rank0 ? o.steps : NULL, .plot_svg = rank0 ? o.plot : NULL,
                       .steps_svg = rank0 ? o.steps_plot : NULL, .title = title,
                       .on_epoch = rank0 ? print_epoch : NULL, .user = &o,
                       .ranks = nranks, .checkpoint_read_only = !rank0};
    eqr_run_result res;
    if (!tr || eqr_trainer_run(tr, &ro, &res) != EQR_OK) ex_die_ctx(ctx, "training");
    /* the result is rank 0's to measure and print */
    if (rank0) print_result(ctx, &o, &m, tr, &res, &test, &val, steps_per_epoch, t_start);
    fflush(stdout);
    eqr_trainer_destroy(tr);
    eqr_scheduler_destroy(sched);
    eqr_batcher_free(&bt);
    eqr_optim_destroy(opt);
    model_free(&m);
    eqr_dataset_free(&train);
    eqr_dataset_free(&test);
    if (val.n) eqr_dataset_free(&val);
    eqr_ctx_destroy(ctx);
    ex_dist_end();
    return 0;
}
