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
 * ssqrt(N). After training the model is projected (--projection) and
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
 *     result test_acc=<f> equiv_err=<f> projected=<0|1> seconds=<f>
 * with equiv_err the largest relative change ||f(g.x) - f(x)|| / ||f(x)||
 * of the final logits over every test image (of --test-size) and every
 * grid-exact element g of the group (c4: 4 rotations; d4: 8 rotations and
 * flips; c8: its 4 rotations by multiples of 90 degrees; none: the 4 C4
 * rotations, the data's symmetry). projected = 1 when the final model is the
 * projection onto the equivariant space (a strict model is its own
 * projection); 0 for --group none. seconds = wall time of this process.
 *
 * Exit status: 0 success, 1 runtime error, 2 bad usage. */
#define _POSIX_C_SOURCE 200809L
#include <equirelax/equirelax.h>

#include "example_common.h"
#include "svg_plot.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define EVAL_BATCH 200
#define EQUIV_BATCH 100
#define TEST_ROT_SEED 20240901u
#define MAX_EPOCHS 10000
#define PI 3.14159265358979323846

/* ---- options ---- */

typedef enum gkind { G_C4, G_D4, G_C8, G_NONE } gkind;

typedef struct options {
    const char *group, *relax, *projection, *rotate, *wr_init, *lr_schedule, *penalty_grad;
    const char *data, *checkpoint, *metrics, *plot;
    int64_t epochs, train_size, test_size, batch, threads, width, norm_subsample, equiv_images;
    int64_t stop_after, eval_every, classes;
    uint64_t seed;
    float lr, theta_max, lambda_defect, lambda_norm;
    int resume;
    /* parsed */
    gkind gk;
    int relax_kind; /* -1 off, else eqr_sched_kind */
    eqr_project_mode proj;
    eqr_penalty_grad pgrad;
    int rotate_cont, wr_normal, lr_cosine;
    int side; /* of the loaded images */
} options;

static int pick(const char *s, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

static void parse_args(int argc, char **argv, options *o) {
    *o = (options){.group = "c4", .relax = "triangle", .projection = "fold", .penalty_grad = "detached", .rotate = "c4",
                   .wr_init = "zero", .lr_schedule = "cosine", .epochs = 3,
                   .batch = 64, .threads = 2, .width = 32,
                   .norm_subsample = 8, .equiv_images = 200, .eval_every = 1, .seed = 1,
                   .lr = 3e-3f,
                   .theta_max = 1.0f, .lambda_defect = 0.01f, .lambda_norm = 0.01f};
    const ex_flag flags[] = {
        EX_FLAG_STR("--group", "G", &o->group,
                    "c4 | d4 (group convs), c8 (steerable convs, regular fields), none (plain "
                    "CNN, same channels) (default c4)"),
        EX_FLAG_STR("--relax", "KIND", &o->relax,
                    "off | triangle | linear | cosine | constant: theta schedule per step "
                    "(default triangle)"),
        EX_FLAG_FLOAT("--theta-max", &o->theta_max, 0.0f, 1e6f,
                      "peak (triangle) or start value of theta (default 1)"),
        EX_FLAG_FLOAT("--lambda-defect", &o->lambda_defect, 0.0f, 1e6f,
                      "weight of the equivariance-defect penalty ssqrt(LD) (default 0.01)"),
        EX_FLAG_FLOAT("--lambda-norm", &o->lambda_norm, 0.0f, 1e6f,
                      "weight of the activation-norm penalty ssqrt(N) (default 0.01)"),
        EX_FLAG_INT("--norm-subsample", &o->norm_subsample, 0, 1 << 20,
                    "estimate the norm penalty from the first N images of each batch, 0 = "
                    "the whole batch (default 8)"),
        EX_FLAG_STR("--wr-init", "I", &o->wr_init,
                    "zero | normal: W_r initialisation (default zero)"),
        EX_FLAG_STR("--penalty-grad", "G", &o->penalty_grad,
                    "detached | full: penalties on the detached input (the paper; W_r only) or "
                    "with their gradient into the earlier layers too (default detached)"),
        EX_FLAG_STR("--projection", "P", &o->projection,
                    "drop | fold: projection at the end and for the per-epoch test accuracy "
                    "(default fold; the same as drop once theta is 0)"),
        EX_FLAG_FLOAT_ABOVE("--lr", &o->lr, 0.0f, 10.0f, "Adam learning rate (default 0.003)"),
        EX_FLAG_STR("--lr-schedule", "S", &o->lr_schedule,
                    "constant | cosine (decay to 0 over training) (default cosine)"),
        EX_FLAG_INT("--batch", &o->batch, 1, 65536, "batch size (default 64)"),
        EX_FLAG_INT("--epochs", &o->epochs, 1, MAX_EPOCHS, "training epochs (default 3)"),
        EX_FLAG_INT("--train-size", &o->train_size, 1, INT64_MAX,
                    "train on the first N training images (default all)"),
        EX_FLAG_INT("--test-size", &o->test_size, 1, INT64_MAX,
                    "evaluate on the first N test images (default all)"),
        EX_FLAG_INT("--width", &o->width, 8, 4096,
                    "channels of the first conv, a multiple of 8; then 2x, 4x (default 32)"),
        EX_FLAG_STR("--rotate", "R", &o->rotate,
                    "c4 (random multiples of 90 degrees) | continuous (random angles, bilinear) "
                    "(default c4)"),
        EX_FLAG_INT("--equiv-images", &o->equiv_images, 0, 10000,
                    "test images for the per-epoch invariance errors (default 200)"),
        EX_FLAG_INT("--eval-every", &o->eval_every, 1, MAX_EPOCHS,
                    "evaluate the projected model every N epochs and after the last (default 1)"),
        EX_FLAG_U64("--seed", &o->seed, 0, INT64_MAX,
                    "seed of initialisation, shuffling and training rotations (default 1)"),
        EX_FLAG_INT("--threads", &o->threads, 1, 256, "worker threads (default 2)"),
        EX_FLAG_STR("--data", "DIR", &o->data,
                    "directory of IDX image files laid out as Fashion-MNIST's, any counts, "
                    "square images of a side 4m or 4m+2 (odd: --group none only) (default "
                    "/usr/share/datasets/fashion-mnist)"),
        EX_FLAG_INT("--classes", &o->classes, 2, 65536,
                    "number of classes (logits), at least the labels' largest + 1 (default "
                    "that)"),
        EX_FLAG_STR("--checkpoint", "FILE", &o->checkpoint,
                    "save a checkpoint after every epoch (W_r, theta, Adam, schedule position)"),
        EX_FLAG_SWITCH("--resume", &o->resume,
                       "continue from --checkpoint FILE if it exists (same settings required)"),
        EX_FLAG_INT("--stop-after", &o->stop_after, 1, MAX_EPOCHS,
                    "exit after epoch N without projecting, as if interrupted (resume tests)"),
        EX_FLAG_STR("--metrics", "FILE", &o->metrics, "write per-epoch metrics as CSV"),
        EX_FLAG_STR("--plot", "FILE", &o->plot,
                    "write an SVG of loss, projected test accuracy, theta, penalties and "
                    "invariance errors over epochs"),
        {0}};
    ex_parse_args("fmnist_rot", flags, argc, argv);

    static const char *const groups[] = {"c4", "d4", "c8", "none"};
    static const char *const rots[] = {"c4", "continuous"};
    static const char *const inits[] = {"zero", "normal"};
    static const char *const lrs[] = {"constant", "cosine"};
    int i;
    if ((i = pick(o->group, groups, 4)) < 0)
        ex_usage_error(flags, "bad value '%s' for --group: expected c4, d4, c8 or none", o->group);
    o->gk = (gkind)i;
    o->relax_kind = ex_relax_kind(flags, o->relax);
    o->proj = ex_projection(flags, o->projection);
    o->pgrad = ex_penalty_grad(flags, o->penalty_grad);
    if ((i = pick(o->rotate, rots, 2)) < 0)
        ex_usage_error(flags, "bad value '%s' for --rotate: expected c4 or continuous", o->rotate);
    o->rotate_cont = i;
    if ((i = pick(o->wr_init, inits, 2)) < 0)
        ex_usage_error(flags, "bad value '%s' for --wr-init: expected zero or normal", o->wr_init);
    o->wr_normal = i;
    if ((i = pick(o->lr_schedule, lrs, 2)) < 0)
        ex_usage_error(flags, "bad value '%s' for --lr-schedule: expected constant or cosine",
                       o->lr_schedule);
    o->lr_cosine = i;
    if (o->width % 8 != 0)
        ex_usage_error(flags, "bad value '%lld' for --width: expected a multiple of 8",
                       (long long)o->width);
    if (o->resume && !o->checkpoint)
        ex_usage_error(flags, "--resume needs --checkpoint FILE");
    if (o->stop_after > o->epochs)
        ex_usage_error(flags, "--stop-after %lld is beyond the last epoch (--epochs %lld)",
                       (long long)o->stop_after, (long long)o->epochs);
    ex_check_output(flags, "--checkpoint", o->checkpoint);
    ex_check_output(flags, "--metrics", o->metrics);
    ex_check_output(flags, "--plot", o->plot);
    if (o->data) {
        struct stat st;
        if (stat(o->data, &st) != 0 || !S_ISDIR(st.st_mode))
            ex_usage_error(flags, "bad value '%s' for --data: no such directory", o->data);
    }
    /* The plain CNN has nothing to relax. */
    if (o->gk == G_NONE) o->relax_kind = -1;
}

/* ---- data: a fixed random rotation per image ---- */

static void rotate_dataset(eqr_ctx *ctx, eqr_dataset *ds, uint64_t seed, int continuous) {
    eqr_grid_map *quarter[4] = {0};
    const int side = ds->h; /* square, checked after loading */
    const int64_t img = (int64_t)side * side;
    float *tmp = malloc((size_t)img * sizeof(float));
    if (!tmp) ex_die("out of memory");
    for (int r = 1; r < 4 && !continuous; r++) {
        quarter[r] = eqr_grid_map_create(ctx, side, side, eqr_gelem_make(0, r * (PI / 2)));
        if (!quarter[r] || !quarter[r]->exact) ex_die_ctx(ctx, "rotating the images");
    }
    eqr_rng rng;
    eqr_rng_seed(&rng, seed);
    for (int64_t i = 0; i < ds->n; i++) {
        float *x = ds->x + i * img;
        if (continuous) {
            double a = 2 * PI * (double)eqr_rng_uniform(&rng);
            eqr_grid_map *m = eqr_grid_map_create(ctx, side, side, eqr_gelem_make(0, a));
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

typedef struct model {
    gkind gk;
    eqr_group G;
    int order;               /* |G|, 1 for the plain CNN */
    int side, extra;         /* input side S, extra padding e of conv 1 */
    int classes;             /* K logits */
    eqr_rep *tin, *reg[3];   /* input type, regular output types */
    eqr_gconv *gc[3];        /* c4, d4 */
    eqr_steer_conv *sc[3];   /* c8 */
    eqr_tensor *w[3], *b[3]; /* none */
    eqr_conv2d_geom geom[3];
    eqr_relax *relax;        /* NULL when strict */
    eqr_rlayer *rl[3];
    eqr_tensor *fc_w, *fc_b;
} model;

static const int ksize[3] = {5, 3, 3};

/* Extra zero padding of conv 1 that makes both pools see even sizes. */
static int extra_pad(int side) { return side % 4 == 2 ? 1 : 0; }

static void model_build(eqr_ctx *ctx, model *m, const options *o, int side, int classes) {
    memset(m, 0, sizeof *m);
    m->gk = o->gk;
    m->side = side;
    m->extra = extra_pad(side);
    m->classes = classes;
    const int64_t ch[3] = {o->width, 2 * o->width, 4 * o->width};
    for (int l = 0; l < 3; l++) m->geom[l] = EQR_CONV2D(1, ksize[l] / 2 + (l ? 0 : m->extra), 1);
    char nm[16];
    if (o->gk == G_NONE) {
        m->order = 1;
        int64_t cin = 1;
        for (int l = 0; l < 3; l++) {
            int64_t ws[4] = {ch[l], cin, ksize[l], ksize[l]}, bs[1] = {ch[l]};
            snprintf(nm, sizeof nm, "c%d.weight", l + 1);
            m->w[l] = eqr_param_new(ctx, nm, 4, ws, 0);
            snprintf(nm, sizeof nm, "c%d.bias", l + 1);
            m->b[l] = eqr_param_new(ctx, nm, 1, bs, EQR_PARAM_NO_DECAY);
            if (!m->w[l] || !m->b[l] || eqr_init_kaiming_normal(ctx, m->w[l], sqrtf(2.0f)))
                ex_die_ctx(ctx, "building the model");
            cin = ch[l];
        }
    } else {
        m->G = o->gk == G_C4 ? eqr_group_cyclic(4)
             : o->gk == G_D4 ? eqr_group_dihedral(4)
                             : eqr_group_cyclic(8);
        m->order = eqr_group_order(&m->G);
        eqr_rep_part triv = eqr_part_irrep(eqr_irrep_of(&m->G, 0, 0), 1);
        m->tin = eqr_rep_create(ctx, &m->G, 1, &triv);
        for (int l = 0; l < 3; l++) {
            eqr_rep_part p = eqr_part_regular((int)(ch[l] / m->order));
            m->reg[l] = eqr_rep_create(ctx, &m->G, 1, &p);
            if (!m->reg[l]) ex_die_ctx(ctx, "building the field types");
        }
        if (!m->tin) ex_die_ctx(ctx, "building the field types");
        for (int l = 0; l < 3; l++) {
            const eqr_rep *in = l == 0 ? m->tin : m->reg[l - 1];
            snprintf(nm, sizeof nm, "c%d", l + 1);
            if (o->gk == G_C8) {
                eqr_steer_conv_opts so = {.geom = m->geom[l]};
                m->sc[l] = eqr_steer_conv_create(ctx, nm, in, m->reg[l], ksize[l], &so);
            } else {
                eqr_gconv_opts go = {.geom = m->geom[l]};
                m->gc[l] = eqr_gconv_create(ctx, nm, in, m->reg[l], ksize[l], &go);
            }
            if (!m->sc[l] && !m->gc[l]) ex_die_ctx(ctx, "building the model");
        }
        if (o->relax_kind >= 0) {
            eqr_relax_opts ro = {.theta = 0.0f,
                                 .init = o->wr_normal ? EQR_RELAX_INIT_NORMAL : EQR_RELAX_INIT_ZERO,
                                 .lambda_defect = o->lambda_defect,
                                 .lambda_norm = o->lambda_norm,
                                 .norm_subsample = (int)o->norm_subsample,
                                 .penalty_grad = o->pgrad};
            m->relax = eqr_relax_create(ctx, "relax", &ro);
            if (!m->relax) ex_die_ctx(ctx, "creating the relaxation");
            for (int l = 0; l < 3; l++) {
                snprintf(nm, sizeof nm, "c%d", l + 1);
                m->rl[l] = m->sc[l] ? eqr_relax_steer_conv(ctx, m->relax, nm, m->sc[l], NULL)
                                    : eqr_relax_gconv(ctx, m->relax, nm, m->gc[l], NULL);
                if (!m->rl[l]) ex_die_ctx(ctx, "relaxing the model");
            }
        }
    }
    int64_t feat = ch[2] / m->order;
    int64_t sw[2] = {classes, feat}, sb[1] = {classes};
    m->fc_w = eqr_param_new(ctx, "fc.weight", 2, sw, 0);
    m->fc_b = eqr_param_new(ctx, "fc.bias", 1, sb, EQR_PARAM_NO_DECAY);
    if (!m->fc_w || !m->fc_b || eqr_init_xavier_uniform(ctx, m->fc_w, 1.0f))
        ex_die_ctx(ctx, "building the model");
}

static void model_free(model *m) {
    eqr_relax_destroy(m->relax);
    for (int l = 0; l < 3; l++) {
        eqr_gconv_destroy(m->gc[l]);
        eqr_steer_conv_destroy(m->sc[l]);
        eqr_rep_destroy(m->reg[l]);
    }
    eqr_rep_destroy(m->tin);
}

/* Every conv exact on its input size and both pools on even sizes: then the
 * equivariant models are exactly invariant to the grid-exact elements. */
static int geometry_exact(const model *m) {
    const int padded = m->side + 2 * m->extra;
    const int sizes[3] = {m->side, padded / 2, padded / 4};
    int ok = padded % 4 == 0;
    for (int l = 0; l < 3; l++) {
        if (m->gc[l]) ok &= eqr_gconv_exact_on(m->gc[l], sizes[l], sizes[l]);
        if (m->sc[l]) ok &= eqr_steer_conv_exact_on(m->sc[l], sizes[l], sizes[l]);
    }
    return ok;
}

static eqr_tensor *conv(eqr_ctx *ctx, model *m, int l, eqr_tensor *x) {
    if (m->rl[l]) return eqr_rlayer_forward(ctx, m->rl[l], x);
    if (m->gc[l]) return eqr_gconv_forward(ctx, m->gc[l], x);
    if (m->sc[l]) return eqr_steer_conv_forward(ctx, m->sc[l], x);
    return eqr_conv2d(ctx, x, m->w[l], m->b[l], &m->geom[l]);
}

/* No training-only behaviour: training is ignored. */
static eqr_tensor *model_forward(eqr_ctx *ctx, void *mm, eqr_tensor *x, int training) {
    model *m = mm;
    (void)training;
    eqr_tensor *h = eqr_maxpool2d(ctx, eqr_relu(ctx, conv(ctx, m, 0, x)), 2, 2, 0);
    h = eqr_maxpool2d(ctx, eqr_relu(ctx, conv(ctx, m, 1, h)), 2, 2, 0);
    h = eqr_relu(ctx, conv(ctx, m, 2, h));
    if (!h) return NULL;
    if (m->order > 1) { /* group max-pool over each regular field */
        int64_t s5[5] = {h->shape[0], h->shape[1] / m->order, m->order, h->shape[2], h->shape[3]};
        h = eqr_max(ctx, eqr_reshape(ctx, h, 5, s5), 2, 0);
    }
    return eqr_linear(ctx, eqr_global_avgpool(ctx, h), m->fc_w, m->fc_b);
}

static eqr_tensor *penalty_hook(eqr_ctx *ctx, void *user) {
    return eqr_relax_penalty(ctx, (eqr_relax *)user);
}

/* ---- invariance measurement ---- */

/* The grid-exact elements of the model's group other than the identity
 * (C4 for the plain CNN). */
static int grid_elements(const model *m, eqr_gelem *out) {
    eqr_group G = m->order > 1 ? m->G : eqr_group_cyclic(4);
    eqr_gelem id = eqr_group_identity();
    int n = 0;
    for (int i = 0; i < eqr_group_order(&G) && n < 16; i++) {
        eqr_gelem g = eqr_group_element(&G, i);
        if (eqr_grid_exact(m->side, m->side, g) && !eqr_group_equal(&G, g, id)) out[n++] = g;
    }
    return n;
}

/* max over the first n images of ds and the grid-exact elements g of
 * ||f(g.x) - f(x)|| / ||f(x)|| per image, f the logits. */
static double max_invariance_error(eqr_ctx *ctx, model *m, const eqr_dataset *ds, int64_t n) {
    eqr_gelem el[16];
    int ne = grid_elements(m, el);
    const int K = m->classes;
    const int64_t img = (int64_t)m->side * m->side;
    float *base = malloc((size_t)EQUIV_BATCH * (size_t)K * sizeof(float));
    if (!base) ex_die("out of memory");
    double worst = 0;
    int prev = eqr_set_grad_enabled(ctx, 0);
    for (int64_t i = 0; i < n; i += EQUIV_BATCH) {
        int64_t b = n - i < EQUIV_BATCH ? n - i : EQUIV_BATCH;
        int64_t shape[4] = {b, 1, m->side, m->side};
        for (int e = -1; e < ne; e++) { /* e = -1: f(x) itself */
            eqr_tensor *x = eqr_tensor_wrap(ctx, ds->x + i * img, 4, shape);
            eqr_tensor *gx = e < 0 ? x : eqr_act_grid(ctx, el[e], x);
            eqr_tensor *y = gx ? model_forward(ctx, m, gx, 0) : NULL;
            if (!y) ex_die_ctx(ctx, "invariance measurement");
            if (e < 0) {
                memcpy(base, y->data, (size_t)(b * K) * sizeof(float));
            } else {
                for (int64_t r = 0; r < b; r++) {
                    double d2 = 0, n2 = 0;
                    for (int k = 0; k < K; k++) {
                        double f0 = base[r * K + k], f1 = y->data[r * K + k];
                        d2 += (f1 - f0) * (f1 - f0);
                        n2 += f0 * f0;
                    }
                    double err = sqrt(d2) / (n2 > 1e-60 ? sqrt(n2) : 1e-30);
                    if (err > worst) worst = err;
                }
            }
            eqr_step_reset(ctx);
        }
    }
    eqr_set_grad_enabled(ctx, prev);
    free(base);
    return worst;
}

/* ---- per-epoch records, CSV and plot ---- */

enum {
    C_EPOCH, C_STEPS, C_LOSS, C_ACC, C_PEN, C_LD, C_N, C_WR, C_THETA, C_LR,
    C_TLOSS, C_TACC, C_EQ_R, C_EQ_P, C_SECS,
    C_WR1, C_WR2, C_WR3, C_AN1, C_AN2, C_AN3, /* per relaxed layer */
    NCOL
};
static const char *const col_names[NCOL] = {
    "epoch", "steps", "train_loss", "train_acc", "penalty", "defect", "act_norm_sq", "wr_norm",
    "theta", "lr", "test_loss_projected", "test_acc_projected", "equiv_err_relaxed",
    "equiv_err_projected", "seconds", "wr_norm_l1", "wr_norm_l2", "wr_norm_l3",
    "act_norm_l1", "act_norm_l2", "act_norm_l3"};

typedef struct rec {
    double v[NCOL];
} rec;

static void write_metrics(const char *path, const rec *r, int64_t n) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        ex_die("--metrics: path too long");
    FILE *f = fopen(tmp, "w");
    if (!f) ex_die("cannot write %s: %s", tmp, strerror(errno));
    for (int c = 0; c < NCOL; c++) fprintf(f, "%s%s", col_names[c], c + 1 < NCOL ? "," : "\n");
    for (int64_t e = 0; e < n; e++)
        for (int c = 0; c < NCOL; c++) { /* empty: does not apply to this run/epoch */
            if (!isnan(r[e].v[c])) fprintf(f, "%.8g", r[e].v[c]);
            fputs(c + 1 < NCOL ? "," : "\n", f);
        }
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        ex_die("cannot write %s: %s", path, strerror(errno));
}

/* Earlier epochs from a metrics file (after --resume); returns how many of
 * the first `done` epochs it found, in order. */
static int64_t read_metrics(const char *path, rec *r, int64_t done) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[2048];
    int64_t n = 0;
    while (n < done && fgets(line, sizeof line, f)) {
        rec x;
        char *p = line, *end;
        int c = 0;
        for (; c < NCOL; c++) {
            x.v[c] = strtod(p, &end);
            if (end == p && (*p == ',' || *p == '\n' || *p == '\0')) x.v[c] = NAN; /* empty */
            else if (end == p) break;
            p = *end == ',' ? end + 1 : end;
        }
        if (c == NCOL && (int64_t)x.v[C_EPOCH] == n + 1) r[n++] = x;
    }
    fclose(f);
    return n;
}

static void write_plot(const char *path, const rec *r, int64_t n, const char *title) {
    double *buf = malloc((size_t)(NCOL * (n > 0 ? n : 1)) * sizeof(double));
    if (!buf) ex_die("out of memory");
    double *col[NCOL];
    for (int c = 0; c < NCOL; c++) {
        col[c] = buf + c * n;
        for (int64_t e = 0; e < n; e++) col[c][e] = r[e].v[c];
    }
    svg_panel p[5] = {
        {"training loss", 0, 1, {{"cross-entropy", col[C_LOSS]}}},
        {"test accuracy of the projected model", 0, 2,
         {{"projected test", col[C_TACC]}, {"train (relaxed)", col[C_ACC]}}},
        {"theta (end of epoch)", 0, 1, {{"theta", col[C_THETA]}}},
        {"penalties", 1, 3,
         {{"mean penalty term", col[C_PEN]}, {"LD", col[C_LD]}, {"N = |W_r x|^2", col[C_N]}}},
        {"invariance error of the logits", 1, 2,
         {{"relaxed", col[C_EQ_R]}, {"projected", col[C_EQ_P]}}}};
    if (svg_plot_write(path, title, "epoch", col[C_EPOCH], (int)n, p, 5) != 0)
        ex_die("cannot write %s: %s", path, strerror(errno));
    free(buf);
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
    uint64_t h = 1469598103934665603u;
    for (const char *p = s; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211u;
    return h;
}

/* ---- evaluation of the projected model ---- */

typedef struct evalres {
    double loss, acc, eq_relaxed, eq_projected;
} evalres;

/* Test loss and accuracy of the projected model and the invariance errors
 * before and after projection. With keep = 0 the parameters are restored
 * afterwards (snapshot of the store's data block); with keep = 1 the model
 * stays projected. */
static evalres evaluate_projected(eqr_ctx *ctx, model *m, const options *o,
                                  const eqr_dataset *test, int64_t equiv_n, int keep) {
    evalres r = {0};
    r.eq_relaxed = equiv_n > 0 ? max_invariance_error(ctx, m, test, equiv_n) : NAN;
    float *snap = NULL, *blk = eqr_param_data_block(ctx);
    int64_t total = eqr_param_total(ctx);
    if (m->relax) {
        if (!keep) {
            snap = malloc((size_t)total * sizeof(float));
            if (!snap) ex_die("out of memory");
            memcpy(snap, blk, (size_t)total * sizeof(float));
        }
        if (eqr_relax_project(ctx, m->relax, o->proj) != EQR_OK) ex_die_ctx(ctx, "projection");
        r.eq_projected = equiv_n > 0 ? max_invariance_error(ctx, m, test, equiv_n) : NAN;
    } else {
        r.eq_projected = r.eq_relaxed;
    }
    ex_evaluate(ctx, model_forward, m, test, EVAL_BATCH, &r.loss, &r.acc);
    if (snap) {
        memcpy(eqr_param_data_block(ctx), snap, (size_t)total * sizeof(float));
        free(snap);
    }
    return r;
}

/* Relaxation telemetry: LD and N = sum ||W_r x||^2 (last recorded forwards)
 * summed over layers, the total ||W_r||, and per layer ||W_r|| and
 * ||W_r x|| (-1: not recorded) into r's per-layer columns. */
static void relax_stats(eqr_ctx *ctx, model *m, rec *r) {
    double *ld = &r->v[C_LD], *nsq = &r->v[C_N], *wr = &r->v[C_WR];
    *ld = *nsq = *wr = NAN;
    for (int l = 0; l < 3; l++) r->v[C_WR1 + l] = r->v[C_AN1 + l] = NAN;
    if (!m->relax) return;
    *ld = *nsq = *wr = 0;
    int prev = eqr_set_grad_enabled(ctx, 0);
    for (int l = 0; l < 3; l++) {
        eqr_rlayer_stats st;
        if (eqr_rlayer_get_stats(ctx, m->rl[l], &st) != EQR_OK) ex_die_ctx(ctx, "relaxation stats");
        *ld += st.defect;
        if (st.act_norm >= 0) *nsq += (double)st.act_norm * st.act_norm;
        *wr += (double)st.wr_norm * st.wr_norm;
        r->v[C_WR1 + l] = st.wr_norm;
        r->v[C_AN1 + l] = st.act_norm;
    }
    *wr = sqrt(*wr);
    eqr_set_grad_enabled(ctx, prev);
    eqr_step_reset(ctx);
}

/* ---- main ---- */

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

int main(int argc, char **argv) {
    double t_start = ex_now();
    options o;
    parse_args(argc, argv, &o);

    eqr_ctx *ctx = ex_ctx_create(o.seed, o.threads);
    eqr_dataset train, test;
    ex_load_fashion_mnist(ctx, o.data, o.train_size, o.test_size, 0, 0, &train, &test);
    check_data(&o, &train);
    train.classes = test.classes = (int)o.classes;
    o.train_size = train.n; /* what the checkpoint settings record */
    rotate_dataset(ctx, &train, o.seed * 2654435761u + 1, o.rotate_cont);
    rotate_dataset(ctx, &test, TEST_ROT_SEED, o.rotate_cont);
    int64_t equiv_n = o.equiv_images < test.n ? o.equiv_images : test.n;

    model m;
    model_build(ctx, &m, &o, o.side, (int)o.classes);
    if (m.order > 1 && !geometry_exact(&m)) ex_die("the model geometry is not exactly invariant");
    eqr_optim *opt = eqr_optim_create(ctx, &(eqr_optim_opts){.kind = EQR_OPTIM_ADAM, .lr = o.lr});
    if (!opt) ex_die_ctx(ctx, "creating the optimizer");
    eqr_batcher bt;
    if (eqr_batcher_init(ctx, &bt, &train, o.batch, 1, o.seed) != EQR_OK)
        ex_die_ctx(ctx, "batcher");

    /* Learning rate and theta per optimizer step over the whole run. */
    const int64_t steps_per_epoch = (train.n + o.batch - 1) / o.batch;
    const int64_t total_steps = steps_per_epoch * o.epochs;
    eqr_scheduler *sched = eqr_scheduler_create(ctx, opt);
    if (!sched) ex_die_ctx(ctx, "creating the scheduler");
    if (o.lr_cosine) {
        eqr_schedule s = {.kind = EQR_SCHED_COSINE, .start = o.lr, .end = 0, .total = total_steps};
        if (eqr_scheduler_add_lr(sched, opt, &s) != EQR_OK)
            ex_die_ctx(ctx, "learning-rate schedule");
    }
    if (m.relax) {
        eqr_schedule s = {.kind = (eqr_sched_kind)o.relax_kind, .start = o.theta_max, .end = 0,
                          .total = total_steps};
        if (eqr_scheduler_add_value(sched, eqr_relax_theta(m.relax), &s) != EQR_OK)
            ex_die_ctx(ctx, "theta schedule");
    }

    rec *hist = calloc((size_t)o.epochs, sizeof(rec));
    if (!hist) ex_die("out of memory");
    int64_t done = 0;
    const uint64_t cfg = config_hash(&o);
    if (o.resume) {
        FILE *f = fopen(o.checkpoint, "rb");
        if (f) {
            fclose(f);
            uint64_t cnt[2];
            if (eqr_checkpoint_load(ctx, o.checkpoint, opt, cnt, 2) != EQR_OK)
                ex_die_ctx(ctx, "loading the checkpoint");
            if (cnt[1] != cfg)
                ex_die("%s was written with other settings (group, relax, lambdas, lr, batch, "
                       "epochs, sizes, rotation or seed differ)",
                       o.checkpoint);
            done = (int64_t)cnt[0];
            if (done > o.epochs) ex_die("%s is past --epochs", o.checkpoint);
            if (eqr_scheduler_sync(sched) != EQR_OK) ex_die_ctx(ctx, "scheduler");
            if (eqr_batcher_seek(ctx, &bt, done, 0) != EQR_OK) ex_die_ctx(ctx, "batcher");
            int64_t got = o.metrics ? read_metrics(o.metrics, hist, done) : 0;
            for (int64_t e = got; e < done; e++) {
                for (int c = 0; c < NCOL; c++) hist[e].v[c] = NAN;
                hist[e].v[C_EPOCH] = (double)(e + 1);
            }
            printf("# resumed from %s after epoch %lld (step %lld)\n", o.checkpoint,
                   (long long)done, (long long)eqr_optim_steps(opt));
        } else {
            printf("# no checkpoint at %s yet: starting fresh\n", o.checkpoint);
        }
    }

    char title[256];
    snprintf(title, sizeof title, "fmnist_rot: %s, relax %s, %s-rotated, %lld images, seed %llu",
             o.group, m.relax ? o.relax : "off", o.rotate, (long long)train.n,
             (unsigned long long)o.seed);
    printf("# %s\n# model: %dx%d images%s, %lld classes, width %lld (channels %lld/%lld/%lld), "
           "%lld parameters incl. W_r; batch %lld, epochs %lld (%lld steps), Adam lr %g (%s), "
           "threads %lld\n",
           title, o.side, o.side, m.extra ? " (conv 1 padded by 1 more)" : "",
           (long long)o.classes, (long long)o.width, (long long)o.width, (long long)(2 * o.width),
           (long long)(4 * o.width), (long long)eqr_param_total(ctx), (long long)o.batch,
           (long long)o.epochs, (long long)total_steps, o.lr, o.lr_schedule,
           (long long)o.threads);
    if (m.relax)
        printf("# relaxation: theta %s peak %g per step, lambda_defect %g, lambda_norm %g "
               "(norm subsample %lld, penalty grad %s), W_r init %s, projection %s\n",
               o.relax, o.theta_max, o.lambda_defect, o.lambda_norm, (long long)o.norm_subsample,
               o.penalty_grad, o.wr_init, o.projection);
    fflush(stdout);

    ex_train tr = {.ctx = ctx, .opt = opt, .sched = sched, .bt = &bt, .forward = model_forward,
                   .model = &m, .epochs = o.epochs, .progress = EX_PROGRESS_BAR};
    if (m.relax && (o.lambda_defect > 0 || o.lambda_norm > 0)) {
        tr.extra_loss = penalty_hook;
        tr.extra_user = m.relax;
    }
    evalres fin = {0};
    int final_done = 0;
    for (int64_t e = done; e < o.epochs; e++) {
        ex_epoch_stats st = ex_train_epoch(&tr, e + 1);
        double t1 = ex_now();
        rec *r = &hist[e];
        r->v[C_EPOCH] = (double)(e + 1);
        r->v[C_STEPS] = (double)eqr_optim_steps(opt);
        r->v[C_LOSS] = st.loss;
        r->v[C_ACC] = st.acc;
        r->v[C_PEN] = tr.extra_loss ? st.extra : NAN;
        relax_stats(ctx, &m, r);
        r->v[C_THETA] = m.relax ? eqr_relax_theta(m.relax)->data[0] : NAN;
        r->v[C_LR] = eqr_optim_lr(opt);
        if (o.checkpoint) {
            uint64_t cnt[2] = {(uint64_t)(e + 1), cfg};
            if (eqr_checkpoint_save(ctx, o.checkpoint, opt, cnt, 2) != EQR_OK)
                ex_die_ctx(ctx, "saving the checkpoint");
        }
        /* The last epoch projects for good (after the checkpoint). */
        int last = e + 1 == o.epochs;
        evalres ev = {NAN, NAN, NAN, NAN};
        if (last || (e + 1) % o.eval_every == 0)
            ev = evaluate_projected(ctx, &m, &o, &test, equiv_n, last);
        if (last) {
            fin = ev;
            final_done = 1;
        }
        r->v[C_TLOSS] = ev.loss;
        r->v[C_TACC] = ev.acc;
        r->v[C_EQ_R] = ev.eq_relaxed;
        r->v[C_EQ_P] = ev.eq_projected;
        r->v[C_SECS] = st.secs;
        ex_progress_clear(&tr);
        /* only the fields this run and epoch have (strict runs: no relaxation) */
        char line[512];
        int k = snprintf(line, sizeof line, "epoch %lld/%lld  loss %.4f  train_acc %.4f",
                         (long long)(e + 1), (long long)o.epochs, st.loss, st.acc);
        if (!isnan(ev.acc))
            k += snprintf(line + k, sizeof line - (size_t)k, "  test_acc(projected) %.4f", ev.acc);
        if (m.relax)
            k += snprintf(line + k, sizeof line - (size_t)k,
                          "  theta %.4f  penalty %.3g  LD %.3g  N %.3g", r->v[C_THETA],
                          r->v[C_PEN], r->v[C_LD], r->v[C_N]);
        if (!isnan(ev.eq_relaxed))
            k += snprintf(line + k, sizeof line - (size_t)k, "  equiv relaxed %.2e projected %.2e",
                          ev.eq_relaxed, ev.eq_projected);
        printf("%s  train %.1fs (%.1f ms/step)  eval %.1fs\n", line, st.secs,
               1e3 * st.secs / (double)(st.steps > 0 ? st.steps : 1), ex_now() - t1);
        fflush(stdout);
        if (o.metrics) write_metrics(o.metrics, hist, e + 1);
        if (o.plot) write_plot(o.plot, hist, e + 1, title);
        if (o.stop_after == e + 1 && !last) {
            printf("# stopped after epoch %lld (--stop-after)\n", (long long)(e + 1));
            goto out;
        }
    }
    if (!final_done) { /* resumed after the last epoch: project and evaluate now */
        fin = evaluate_projected(ctx, &m, &o, &test, equiv_n, 1);
        if (o.metrics) write_metrics(o.metrics, hist, o.epochs);
        if (o.plot) write_plot(o.plot, hist, o.epochs, title);
    }

    /* Final invariance over the whole test set (of --test-size). */
    double t2 = ex_now();
    double equiv = max_invariance_error(ctx, &m, &test, test.n);
    eqr_gelem el[16];
    int ne = grid_elements(&m, el) + 1;
    int projected = m.order > 1;
    printf("# final: %s model, test_acc %.4f on %lld test images; invariance of the logits to "
           "%d grid-exact elements: max relative change %.3g (%.1fs)\n",
           m.relax ? "projected" : (projected ? "strict equivariant" : "plain"), fin.acc,
           (long long)test.n, ne, equiv, ex_now() - t2);
    printf("result test_acc=%.4f equiv_err=%.3e projected=%d seconds=%.1f\n", fin.acc, equiv,
           projected, ex_now() - t_start);
out:
    fflush(stdout);
    free(hist);
    eqr_scheduler_destroy(sched);
    eqr_batcher_free(&bt);
    eqr_optim_destroy(opt);
    model_free(&m);
    eqr_dataset_free(&train);
    eqr_dataset_free(&test);
    eqr_ctx_destroy(ctx);
    return 0;
}
