/* N-body dynamics with an E(3)-equivariant network, strict or relaxed.
 *
 * Data (nbody.h): 5 charged particles; from positions and velocities at
 * frame 30 and the charges, predict the positions at frame 40. Train on the
 * first --train-size samples, report MSE on the 2000 test samples.
 * Models:
 *   egnn  EGNN's N-body model (egnn.h): |v_i| embedded to --hidden, edge
 *         attribute q_i q_j, --layers EGNN layers with the velocity term.
 *         Relaxed: theta W_r [x_i - c, v_i] on each coordinate update.
 *   vn    vector neurons (vn.h) on x_i - c, v_i, q_i (x_i - c), q_i v_i;
 *         each layer concatenates the mean over the particles, VN-Linear +
 *         VN-LeakyReLU; a final VN-Linear gives the displacement. Relaxed:
 *         every VN-Linear (eqr_relax_vn_linear).
 *   segnn SEGNN's N-body model (segnn.h): hidden (H/2)x0e+(H/2)x1o for
 *         --hidden H or --irreps, attributes of lmax 1. Relaxed as the
 *         paper: theta W_r on both updates of every layer, the
 *         activation-form Lie derivative.
 * --select best: test the best-validation epoch (relaxed: projected), SEGNN's
 * protocol; last (default): the final model. --checkpoint / --resume: the
 * whole run, bit-identically. Adam's rate follows --lr-schedule; theta
 * follows --relax per step (0 on the last but for constant), penalties
 * --lambda-*, options --adaptive / --orthogonal / --wr-scale (relax.h),
 * projected at the end (--projection). The last line is
 *     result test_mse=<f> equiv_err=<f> projected=<0|1> seconds=<f>
 * with equiv_err = sqrt(sum ||f(g.x) - g.f(x)||^2 / sum ||f(x)||^2) over the
 * test set, g a random rotation and translation per batch (velocities
 * rotated only). Exit status: 0 success, 1 runtime error, 2 bad usage. */
#define _POSIX_C_SOURCE 200809L
#include <equirelax/equirelax.h>
#include <equirelax/vn.h>

#include "example_common.h"
#include "ex_dist.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define P EQR_NBODY_PARTICLES
#define MAX_LAYERS 16
#define EVAL_BATCH 500
#define EQUIV_SEED 777u

typedef struct options {
    int64_t layers, hidden, train_size, epochs, threads, batch, stop_after;
    uint64_t seed;
    float lr, wd, lambda_defect, lambda_norm, theta_max, wr_scale;
    const char *relax, *projection, *model, *metrics, *plot, *penalty_grad, *irreps, *select;
    const char *checkpoint, *lr_schedule;
    int resume, vn, segnn, best, adaptive, orthogonal, lr_cosine, test_curve;
    int relax_kind; /* -1 = off, else eqr_sched_kind */
    eqr_project_mode proj;
    eqr_penalty_grad pgrad;
} options;

/* The network is one module container (module.h), net:
 *   egnn   embed, egnn0 .. egnn<L-1> on the tuple (h, x, v, edge_attr);
 *          the prediction is the last layer's x
 *   vn     per layer: cat<l> (the features and their mean over the
 *          particles), vn<l> (VN-Linear), vn<l>.act (VN-LeakyReLU); then
 *          cat<L>, vn<L> giving the displacement; on the features of
 *          model_forward
 *   segnn  the SEGNN module on (x, v, q)
 * Relaxed, every EGNN layer and VN-Linear is replaced by its relaxed module
 * (W_r "<layer>.rel.wr"), the SEGNN by its relaxed self ("segnn.layer<k>.
 * relax<j>.wr"). */
typedef struct model {
    int vn, segnn;
    eqr_module *net;
    eqr_relax *relax; /* NULL when strict */
} model;

/* One batch as tensors. */
typedef struct batch {
    eqr_tensor *hn, *x, *v, *q, *e, *y; /* [B,n,1] [B,n,3] [B,n,3] [B,n,1] [B,n,n,1] [B,n,3] */
} batch;

/* ---- command line ---- */

static ex_flag FLAGS[32];

static void parse_args(int argc, char **argv, options *o) {
    *o = (options){.layers = 4, .hidden = 64, .train_size = 3000, .epochs = 40, .threads = 1,
                   .batch = 100, .seed = 1, .lr = 5e-4f, .lambda_defect = 0.01f, .wr_scale = 1.0f,
                   .lambda_norm = 0.01f, .theta_max = 1.0f, .relax = "off",
                   .projection = "drop", .model = "egnn", .penalty_grad = "detached",
                   .select = "last", .lr_schedule = "constant"};
    const ex_flag flags[] = {
        EX_FLAG_STR("--model", "egnn|vn|segnn", &o->model,
                    "egnn (EGNN N-body model), vn (vector neurons) or segnn (SEGNN N-body "
                    "model) (default egnn)"),
        EX_FLAG_STR("--irreps", "IRREPS", &o->irreps,
                    "segnn hidden irreps, 0e entries first (default (H/2)x0e+(H/2)x1o)"),
        EX_FLAG_STR("--select", "last|best", &o->select,
                    "test the last epoch's model or the best-validation epoch's (default last)"),
        EX_FLAG_SWITCH("--test-curve", &o->test_curve,
                       "also measure the test MSE after every epoch, for the learning curve "
                       "(reported only: --select best still picks by validation)"),
        EX_FLAG_RELAX(&o->relax, "off"),
        EX_FLAG_INT("--layers", &o->layers, 1, MAX_LAYERS, "message-passing / VN layers (default 4)"),
        EX_FLAG_INT("--hidden", &o->hidden, 1, 4096, "hidden width (default 64)"),
        EX_FLAG_TRAIN_SIZE(&o->train_size, "training samples (beyond 3000: more of the generator's split)", "3000"),
        EX_FLAG_EPOCHS(&o->epochs, "40"),
        EX_FLAG_BATCH(&o->batch, "100"),
        EX_FLAG_LR(&o->lr, "Adam", "0.0005"),
        EX_FLAG_LR_SCHEDULE(&o->lr_schedule, "constant"),
        EX_FLAG_WD(&o->wd, "0: Adam"),
        EX_FLAG_SEED(&o->seed, "initialisation and shuffling; the data are fixed"),
        EX_FLAG_THREADS(&o->threads, "1"),
        EX_FLAG_LAMBDA_DEFECT(&o->lambda_defect),
        EX_FLAG_LAMBDA_NORM(&o->lambda_norm),
        EX_FLAG_THETA_MAX(&o->theta_max),
        EX_FLAG_ADAPTIVE(&o->adaptive),
        EX_FLAG_ORTHOGONAL(&o->orthogonal, " (vn only)"),
        EX_FLAG_WR_SCALE(&o->wr_scale),
        EX_FLAG_PENALTY_GRAD(&o->penalty_grad),
        EX_FLAG_PROJECTION(&o->projection, "drop"),
        EX_FLAG_CHECKPOINT(&o->checkpoint, "parameters, Adam, schedule, records"),
        EX_FLAG_RESUME(&o->resume),
        EX_FLAG_STOP_AFTER(&o->stop_after),
        EX_FLAG_METRICS(&o->metrics),
        EX_FLAG_PLOT(&o->plot, "the training curves"),
        {0}};
    _Static_assert(sizeof flags <= sizeof FLAGS, "FLAGS is too small");
    memcpy(FLAGS, flags, sizeof flags);
    ex_parse_args("nbody", FLAGS, argc, argv);
    const int mk = ex_choice(FLAGS, "--model", o->model,
                             (const char *const[]){"egnn", "vn", "segnn", NULL});
    o->vn = mk == 1;
    o->segnn = mk == 2;
    if (o->irreps && !o->segnn) ex_usage_error(FLAGS, "--irreps is for --model segnn only");
    if (o->segnn && !o->irreps && o->hidden % 2)
        ex_usage_error(FLAGS, "--hidden %lld: segnn needs an even width (or --irreps)",
                       (long long)o->hidden);
    o->best = ex_choice(FLAGS, "--select", o->select, (const char *const[]){"last", "best", NULL});
    o->relax_kind = ex_relax_kind(FLAGS, o->relax);
    o->lr_cosine = ex_choice(FLAGS, "--lr-schedule", o->lr_schedule,
                             (const char *const[]){"constant", "cosine", NULL});
    o->proj = ex_projection(FLAGS, o->projection);
    if ((o->adaptive || o->orthogonal || o->wr_scale != 1.0f) && o->relax_kind < 0)
        ex_usage_error(FLAGS, "--adaptive, --orthogonal and --wr-scale need a relaxation (--relax)");
    if (o->orthogonal && !o->vn)
        ex_usage_error(FLAGS, "--orthogonal: the %s terms have no equivariant layer (vn only)", o->model);
    o->pgrad = ex_penalty_grad(FLAGS, o->penalty_grad);
    ex_check_checkpoint_flags(FLAGS, o->checkpoint, o->resume, o->stop_after, o->epochs);
    ex_check_output(FLAGS, "--metrics", o->metrics);
    ex_check_output(FLAGS, "--plot", o->plot);
}

/* FNV-1a of everything that shapes the training trajectory. */
static uint64_t config_hash(const options *o) {
    char s[640];
    snprintf(s, sizeof s, "%s|%s|%lld|%lld|%lld|%lld|%lld|%llu|%.9g|%.9g|%.9g|%.9g|%d|%d|%d|%d",
             o->model, o->irreps ? o->irreps : "", (long long)o->layers, (long long)o->hidden,
             (long long)o->train_size, (long long)o->epochs, (long long)o->batch,
             (unsigned long long)o->seed, o->lr, o->lambda_defect, o->lambda_norm, o->theta_max,
             o->relax_kind, (int)o->proj, (int)o->pgrad, o->best);
    if (o->adaptive || o->orthogonal || o->wr_scale != 1.0f) /* only when on: old hashes stay */
        snprintf(s + strlen(s), sizeof s - strlen(s), "|%d|%d|%.9g", o->adaptive, o->orthogonal,
                 o->wr_scale);
    if (o->lr_cosine) snprintf(s + strlen(s), sizeof s - strlen(s), "|cos");
    if (o->wd > 0.0f) snprintf(s + strlen(s), sizeof s - strlen(s), "|wd%.9g", o->wd);
    return ex_fnv1a(s);
}

/* ---- batches ---- */

/* Samples idx[0 .. nb) of s (idx NULL: first, first + 1, ...) as tensors. */
static void make_batch(eqr_ctx *ctx, const eqr_nbody_set *s, const int64_t *idx, int64_t first,
                       int64_t nb, batch *b) {
    const int64_t s1[3] = {nb, P, 1}, s3[3] = {nb, P, 3}, se[4] = {nb, P, P, 1};
    eqr_tensor **t[6] = {&b->hn, &b->q, &b->x, &b->v, &b->y, &b->e};
    const int64_t *shape[6] = {s1, s1, s3, s3, s3, se};
    for (int j = 0; j < 6; j++)
        if (!(*t[j] = eqr_tensor_zeros(ctx, j < 5 ? 3 : 4, shape[j]))) ex_die_ctx(ctx, "batch");
    for (int64_t k = 0; k < nb; k++) {
        int64_t i = idx ? idx[k] : first + k;
        memcpy(b->x->data + k * P * 3, s->x + i * P * 3, P * 3 * sizeof(float));
        memcpy(b->v->data + k * P * 3, s->v + i * P * 3, P * 3 * sizeof(float));
        memcpy(b->y->data + k * P * 3, s->y + i * P * 3, P * 3 * sizeof(float));
        for (int a = 0; a < P; a++) {
            const float *va = s->v + (i * P + a) * 3;
            b->hn->data[k * P + a] = sqrtf(va[0] * va[0] + va[1] * va[1] + va[2] * va[2]);
            b->q->data[k * P + a] = s->q[i * P + a];
            for (int c = 0; c < P; c++)
                b->e->data[(k * P + a) * P + c] = s->q[i * P + a] * s->q[i * P + c];
        }
    }
}

/* ---- model ---- */

/* The EGNN model's node embedding, a module of its own: |v_i| [B, n, 1] ->
 * [B, n, H] through "embed.weight" [H, 1] and "embed.bias" [H], both
 * U(-1, 1). */
typedef struct embed { eqr_tensor *w, *b; } embed;

static eqr_tensor *embed_forward(eqr_ctx *ctx, eqr_module *mod, eqr_tensor *hn) {
    const embed *e = eqr_module_impl(mod);
    int64_t s2[2] = {hn->shape[0] * hn->shape[1], 1},
            s3[3] = {hn->shape[0], hn->shape[1], e->w->shape[0]};
    return eqr_reshape(ctx, eqr_linear(ctx, eqr_reshape(ctx, hn, 2, s2), e->w, e->b), 3, s3);
}
static const eqr_module_ops embed_ops = {.kind = "embed", .forward = embed_forward, .destroy = free};

static eqr_module *embed_module(eqr_ctx *ctx, int H) {
    embed *e = malloc(sizeof *e);
    if (!e) ex_die("out of memory");
    e->w = eqr_param_create(ctx, "embed.weight", 2, (int64_t[]){H, 1}, 0);
    e->b = eqr_param_create(ctx, "embed.bias", 1, (int64_t[]){H}, EQR_PARAM_NO_DECAY);
    if (!e->w || !e->b) ex_die_ctx(ctx, "building the model");
    eqr_tensor_uniform(e->w, eqr_ctx_rng(ctx), -1.0f, 1.0f);
    eqr_tensor_uniform(e->b, eqr_ctx_rng(ctx), -1.0f, 1.0f);
    return eqr_module_create(ctx, "embed", &embed_ops, e);
}

/* A VN layer's input: f [B, C, 3, n] and, broadcast over the particles,
 * its mean over them: [B, 2C, 3, n]. Types vn(C) -> vn(2C). */
static eqr_tensor *cat_mean_forward(eqr_ctx *ctx, eqr_module *mod, eqr_tensor *f) {
    (void)mod;
    int64_t sp[4] = {f->shape[0], f->shape[1], 3, 1};
    eqr_tensor *pooled = eqr_reshape(ctx, eqr_vn_mean_pool(ctx, f), 4, sp);
    eqr_tensor *bc = eqr_add(ctx, eqr_tensor_zeros(ctx, 4, f->shape), pooled);
    eqr_tensor *cat[2] = {f, bc};
    return eqr_concat(ctx, cat, 2, 1);
}
static const eqr_module_ops cat_mean_ops = {.kind = "cat_mean", .forward = cat_mean_forward};

static eqr_module *cat_mean_module(eqr_ctx *ctx, int l, int channels) {
    char nm[32];
    snprintf(nm, sizeof nm, "cat%d", l);
    eqr_module *mod = eqr_module_create(ctx, nm, &cat_mean_ops, NULL);
    if (mod)
        eqr_module_set_types(mod, &(eqr_ftype){.kind = EQR_FTYPE_VN, .channels = channels},
                             &(eqr_ftype){.kind = EQR_FTYPE_VN, .channels = 2 * channels});
    return mod;
}

/* mod relaxed under "<its name>.rel" when the model is relaxed. */
static eqr_module *relaxed(eqr_ctx *ctx, const model *m, eqr_module *mod) {
    if (!m->relax || !mod) return mod;
    char nm[80];
    snprintf(nm, sizeof nm, "%s.rel", eqr_module_name(mod));
    mod = eqr_relax_module(ctx, m->relax, nm, mod, NULL);
    if (!mod) ex_die_ctx(ctx, "relaxing the model");
    return mod;
}

/* Modules are created in the order of the former hand-built layers (the
 * order they draw their initial weights and register their parameters), so
 * a seed gives the same model and the same store layout. */
static void model_build(eqr_ctx *ctx, const options *o, model *m) {
    memset(m, 0, sizeof *m);
    m->vn = o->vn;
    m->segnn = o->segnn;
    const int H = (int)o->hidden, L = (int)o->layers;
    char nm[64];
    if (o->relax_kind >= 0) {
        eqr_relax_opts ro = {.theta = o->adaptive ? o->theta_max : 0.0f, .adaptive = o->adaptive,
                             .orthogonal = o->orthogonal, .wr_scale = o->wr_scale,
                             .init = EQR_RELAX_INIT_ZERO,
                             .lambda_defect = o->lambda_defect, .lambda_norm = o->lambda_norm,
                             .penalty_grad = o->pgrad,
                             .lie_form = o->segnn ? EQR_LIE_ACTIVATION : EQR_LIE_WEIGHT};
        m->relax = eqr_relax_create(ctx, "relax", &ro);
        if (!m->relax) ex_die_ctx(ctx, "creating the relaxation");
    }
    eqr_module *net = m->net = eqr_sequential_create(ctx, "net");
    if (o->segnn) {
        char ir[64];
        snprintf(ir, sizeof ir, "%dx0e+%dx1o", H / 2, H / 2);
        eqr_segnn_opts so = {.hidden = o->irreps ? o->irreps : ir, .layers = L};
        eqr_module *seg = eqr_segnn_module(ctx, "segnn", &so);
        if (!seg) ex_die_ctx(ctx, "building the model");
        /* W_r after every equivariant weight: a seed gives the same model either way */
        if (m->relax && !(seg = eqr_relax_module(ctx, m->relax, "segnn", seg, NULL)))
            ex_die_ctx(ctx, "relaxing the model");
        eqr_sequential_add(net, seg);
    } else if (!m->vn) {
        eqr_sequential_add(net, embed_module(ctx, H));
        eqr_egnn_opts go = {.hidden = H, .edge_attr = 1, .velocity = 1};
        for (int l = 0; l < L; l++) {
            snprintf(nm, sizeof nm, "egnn%d", l);
            eqr_sequential_add(net, relaxed(ctx, m, eqr_egnn_module(ctx, nm, H, H, &go)));
        }
    } else {
        int c = 4;
        eqr_vn_leaky_relu_opts ao = {.negative_slope = 0.2f};
        for (int l = 0; l <= L; l++) {
            int cout = l < L ? H : 1;
            snprintf(nm, sizeof nm, "vn%d", l);
            eqr_module *lin = eqr_vn_linear_module(ctx, nm, 2 * c, cout), *act = NULL;
            if (l < L) {
                snprintf(nm, sizeof nm, "vn%d.act", l);
                act = eqr_vn_leaky_relu_module(ctx, nm, cout, &ao);
            }
            lin = relaxed(ctx, m, lin); /* W_r after the activation's parameters */
            eqr_sequential_add(net, cat_mean_module(ctx, l, c));
            eqr_sequential_add(net, lin);
            if (act) eqr_sequential_add(net, act);
            c = cout;
        }
    }
    if (eqr_error_status(ctx)) ex_die_ctx(ctx, "building the model");
}

static void model_free(model *m) {
    eqr_module_destroy(m->net);
    eqr_relax_destroy(m->relax);
}

/* [B, n, 3] -> [B, 1, 3, n] */
static eqr_tensor *to_vn(eqr_ctx *ctx, eqr_tensor *t) {
    const int perm[3] = {0, 2, 1};
    eqr_tensor *u = eqr_permute(ctx, t, perm);
    if (!u) return NULL;
    int64_t s[4] = {u->shape[0], 1, 3, u->shape[2]};
    return eqr_reshape(ctx, u, 4, s);
}

/* Predicted positions [B, n, 3] for inputs x, v (possibly transformed). */
static eqr_tensor *model_forward(eqr_ctx *ctx, model *m, const batch *b, eqr_tensor *x,
                                 eqr_tensor *v) {
    if (m->segnn) {
        eqr_tensor *io[3] = {x, v, b->q};
        return eqr_module_forward_n(ctx, m->net, 3, io) ? NULL : io[0];
    }
    if (!m->vn) {
        eqr_tensor *io[4] = {b->hn, x, v, b->e};
        return eqr_module_forward_n(ctx, m->net, 4, io) ? NULL : io[1];
    }
    eqr_tensor *xc = eqr_sub(ctx, x, eqr_mean(ctx, x, 1, 1));
    eqr_tensor *parts[4] = {to_vn(ctx, xc), to_vn(ctx, v), to_vn(ctx, eqr_mul(ctx, xc, b->q)),
                            to_vn(ctx, eqr_mul(ctx, v, b->q))};
    eqr_tensor *f = eqr_module_forward(ctx, m->net, eqr_concat(ctx, parts, 4, 1)); /* [B, 1, 3, n] */
    if (!f) return NULL;
    int64_t s3[3] = {x->shape[0], 3, P};
    const int perm[3] = {0, 2, 1};
    return eqr_add(ctx, x, eqr_permute(ctx, eqr_reshape(ctx, f, 3, s3), perm));
}

/* ---- evaluation ---- */

/* Over the first n samples of s in batches of EVAL_BATCH, gradients off:
 * equiv 0, the MSE of the predictions; equiv 1, sqrt(sum ||f(g.x) -
 * g.f(x)||^2 / sum ||f(x)||^2) with g = (R, t) random per batch from a
 * fixed seed (velocities rotated only). */
static double evaluate(eqr_ctx *ctx, model *m, const eqr_nbody_set *s, int64_t n, int equiv) {
    int ge = eqr_grad_set_enabled(ctx, 0);
    eqr_rng rng;
    eqr_rng_seed(&rng, EQUIV_SEED);
    double num = 0, den = 0;
    if (n > s->n) n = s->n;
    for (int64_t i = 0; i < n; i += EVAL_BATCH) {
        int64_t nb = n - i < EVAL_BATCH ? n - i : EVAL_BATCH;
        batch b;
        make_batch(ctx, s, NULL, i, nb, &b);
        float R[9], t[3];
        if (equiv) eqr_so3_random(&rng, R, NULL);
        for (int c = 0; equiv && c < 3; c++) t[c] = eqr_rng_normal(&rng);
        /* p1 against ref: f(g.x) against g.f(x), or f(x) against the targets */
        eqr_tensor *p0 = model_forward(ctx, m, &b, b.x, b.v), *p1 = p0, *ref = b.y;
        if (equiv) {
            eqr_tensor *gx = eqr_e3_transform(ctx, R, t, b.x, 2);
            eqr_tensor *gv = eqr_so3_rotate(ctx, R, b.v, 2);
            p1 = p0 && gx && gv ? model_forward(ctx, m, &b, gx, gv) : NULL;
            ref = eqr_e3_transform(ctx, R, t, p0, 2);
        }
        if (!p1 || !ref) ex_die_ctx(ctx, equiv ? "equivariance measurement" : "evaluation");
        for (int64_t k = 0; k < p0->numel; k++) {
            double d = (double)p1->data[k] - ref->data[k];
            num += d * d;
            den += (double)p0->data[k] * p0->data[k];
        }
        eqr_step_reset(ctx);
    }
    eqr_grad_set_enabled(ctx, ge);
    if (!equiv) return num / (double)(n * P * 3);
    return den > 0 ? sqrt(num / den) : 0.0;
}

/* Sum over relaxed layers of the Lie-derivative defect (weight form) and
 * the mean recorded ||W_r x||. */
static void relax_stats(eqr_ctx *ctx, model *m, double *defect, double *act) {
    *defect = *act = 0;
    int na = 0; /* layers with a recorded norm */
    for (int i = 0; m->relax && i < eqr_relax_num_layers(m->relax); i++) {
        eqr_rlayer_stats st;
        if (eqr_rlayer_get_stats(ctx, eqr_relax_layer(m->relax, i), &st))
            ex_die_ctx(ctx, "relaxation statistics");
        *defect += st.defect;
        if (st.act_norm >= 0) *act += st.act_norm, na++;
    }
    if (na) *act /= na;
}

/* ---- metrics and plot ---- */

/* One epoch's record: NREC values, kept (as floats) in the buffer
 * "nbody.history" too so that checkpoints carry them; a resumed run's
 * records of the epochs before are those floats. */
enum { R_LOSS, R_VAL, R_THETA, R_PEN, R_DEFECT, R_ACT, R_EQUIV, R_SECS, NREC };
typedef double epoch_rec[NREC];

/* The epoch records as a metrics table (train.h), written as CSV and as a
 * chart (log MSE against the constant-velocity baseline, theta),
 * atomically. */
static void write_outputs(eqr_ctx *ctx, const char *csv, const char *svg, const epoch_rec *r,
                          const double *test_mse, int64_t n, const char *title, double base_cv) {
    static const char *const cols[] = {"epoch", "train_loss", "val_mse", "const_velocity_mse",
                                       "theta", "penalty", "defect", "act_norm", "equiv_err",
                                       "seconds", "test_mse"};
    eqr_metrics *m = eqr_metrics_create(ctx, 11, cols);
    for (int64_t e = 0; m && e < n; e++) {
        double v[11] = {(double)(e + 1), r[e][R_LOSS], r[e][R_VAL], base_cv};
        memcpy(v + 4, r[e] + R_THETA, (NREC - R_THETA) * sizeof(double)); /* theta .. secs */
        v[10] = test_mse[e];
        eqr_metrics_add_row(ctx, m, v);
    }
    int with_test = 0; /* the test series only where --test-curve measured it */
    for (int64_t e = 0; e < n; e++) with_test |= !isnan(test_mse[e]);
    const eqr_plot_panel p[2] = {
        {"MSE", 1, {"train_loss", "val_mse", "const_velocity_mse", with_test ? "test_mse" : NULL},
         {"train loss", "val MSE", "constant-velocity baseline", "test MSE"}},
        {"theta", 0, {"theta"}, {0}}};
    if (csv) eqr_metrics_write_csv(ctx, m, csv);
    if (svg) eqr_metrics_write_svg(ctx, m, svg, title, "epoch", p, 2);
    eqr_metrics_destroy(m);
    if (eqr_error_status(ctx) != EQR_OK) ex_die_ctx(ctx, "writing the metrics");
}

/* ---- training ---- */

/* One epoch: the training set shuffled from the run's stream, then per global
 * batch this rank's share, the MSE and the trainer's step (penalty, backward,
 * gradients averaged over ranks, Adam, theta schedule). r gets the train loss
 * (over the global batches), the mean penalty and the mean theta. */
static void train_epoch(eqr_ctx *ctx, model *m, eqr_trainer *tr, const eqr_nbody_set *train,
                        int64_t batch_size, eqr_rng *shuf, int64_t *order, double *r) {
    const int64_t n = train->n, steps = (n + batch_size - 1) / batch_size;
    for (int64_t i = 0; i < n; i++) order[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)eqr_rng_below(shuf, (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    double loss_sum = 0, pen_sum = 0, theta_sum = 0;
    for (int64_t s = 0; s < steps; s++) {
        int64_t lo = s * batch_size, nb = n - lo < batch_size ? n - lo : batch_size;
        int64_t sl, sn; /* this rank's share of the global batch (all with one) */
        ex_dist_share(nb, &sl, &sn);
        if (m->relax) theta_sum += eqr_relax_theta(m->relax)->data[0];
        batch b;
        make_batch(ctx, train, order + lo + sl, 0, sn, &b);
        eqr_tensor *loss = eqr_mse(ctx, model_forward(ctx, m, &b, b.x, b.v), b.y);
        const double lv = loss ? loss->data[0] : NAN; /* the step releases loss */
        double pen;
        if (eqr_trainer_step(tr, loss, sn, &pen) != EQR_OK) ex_die_ctx(ctx, "training step");
        if (!isfinite(lv)) ex_die("training diverged (loss %g)", lv);
        loss_sum += lv * (double)sn;
        pen_sum += pen * (double)nb; /* the penalty is the global batch's */
    }
    ex_dist_sum(&loss_sum, 1); /* over the global batches */
    r[R_LOSS] = loss_sum / (double)n;
    r[R_PEN] = pen_sum / (double)n;
    r[R_THETA] = m->relax ? theta_sum / (double)steps : 0.0;
}

/* The run's place as the checkpoint's counters: config hash, epochs done, the
 * shuffling stream, the best epoch and its validation MSE (bits); on more than
 * one rank also their number (C_RANKS; a single-process checkpoint has none). */
enum { C_CONFIG, C_EPOCH, C_SHUF, C_BEST = C_SHUF + 4, C_BESTVAL, NCOUNT, C_RANKS = NCOUNT };
typedef struct run_pos {
    int64_t epoch, best_epoch; /* epochs done; the best one so far (--select best) */
    double best_val;           /* its validation MSE at theta 0 */
    eqr_rng shuf;              /* the shuffling stream */
} run_pos;

static void save_run(eqr_ctx *ctx, const options *o, eqr_optim *opt, const run_pos *p) {
    uint64_t cnt[NCOUNT + 1] = {[C_CONFIG] = config_hash(o), [C_EPOCH] = (uint64_t)p->epoch,
                                [C_BEST] = (uint64_t)p->best_epoch,
                                [C_RANKS] = (uint64_t)ex_nranks()};
    memcpy(cnt + C_SHUF, p->shuf.s, sizeof p->shuf.s);
    memcpy(cnt + C_BESTVAL, &p->best_val, sizeof p->best_val);
    if (eqr_checkpoint_save(ctx, o->checkpoint, opt, cnt, ex_nranks() > 1 ? NCOUNT + 1 : NCOUNT))
        ex_die_ctx(ctx, "saving the checkpoint");
    ex_dist_note_checkpoint(o->checkpoint, p->epoch);
}

/* --resume with an existing checkpoint: the store, Adam and *p from it
 * (refused if written by another number of processes or other settings);
 * returns 1. Otherwise 0. */
static int resume_run(eqr_ctx *ctx, const options *o, eqr_optim *opt, run_pos *p) {
    if (!o->resume || access(o->checkpoint, F_OK) != 0) return 0;
    const int nranks = ex_nranks();
    uint64_t cnt[NCOUNT + 1];
    int nc = 0;
    if (eqr_checkpoint_counters(ctx, o->checkpoint, cnt, NCOUNT + 1, &nc))
        ex_die_ctx(ctx, "resuming");
    const uint64_t file_ranks = nc == NCOUNT + 1 ? cnt[C_RANKS] : 1;
    if (file_ranks != (uint64_t)nranks)
        ex_die("%s was written by a run on %llu process%s, this run has %d: resume it on "
               "%llu (a resume on another number of processes is refused)", o->checkpoint,
               (unsigned long long)file_ranks, file_ranks == 1 ? "" : "es", nranks,
               (unsigned long long)file_ranks);
    if (eqr_checkpoint_load(ctx, o->checkpoint, opt, cnt, nc))
        ex_die_ctx(ctx, "resuming (a checkpoint of this program with the same model?)");
    if (cnt[C_CONFIG] != config_hash(o))
        ex_die("%s was written with other settings; give the same flags to resume",
               o->checkpoint);
    p->epoch = (int64_t)cnt[C_EPOCH];
    memcpy(p->shuf.s, cnt + C_SHUF, sizeof p->shuf.s);
    p->best_epoch = (int64_t)cnt[C_BEST];
    memcpy(&p->best_val, cnt + C_BESTVAL, sizeof p->best_val);
    return 1;
}

/* ---- main ---- */

/* Data-parallel runs: the ranks' data must agree. */
static uint64_t set_hash(const eqr_nbody_set *s, uint64_t h) {
    const size_t n3 = (size_t)s->n * (size_t)s->p * 3 * sizeof(float);
    h = ex_hash(ex_hash(h, &s->n, sizeof s->n), s->x, n3);
    h = ex_hash(ex_hash(h, s->v, n3), s->y, n3);
    return ex_hash(h, s->q, (size_t)s->n * (size_t)s->p * sizeof(float));
}

int main(int argc, char **argv) {
    /* under mpirun with N > 1 processes: data-parallel (each rank its share
     * of every global --batch), rank 0 prints and writes */
    const int nranks = ex_dist_init(&argc, &argv), rank0 = ex_rank() == 0;
    ex_dist_rank0_stdout();
    options o;
    parse_args(argc, argv, &o);
    double t_start = ex_now();
    eqr_ctx *ctx = ex_ctx_create(o.seed, o.threads);

    eqr_nbody_set train, val, test, *sets[3] = {&train, &val, &test};
    eqr_nbody_baselines btr, bva, bte, *bases[3] = {&btr, &bva, &bte};
    for (int i = 0; i < 3; i++) /* the train, val and test splits */
        if (eqr_nbody_load_split(ctx, (eqr_nbody_split)i, i ? 0 : o.train_size, sets[i]))
            ex_die_ctx(ctx, "generating the data");
    for (int i = 0; i < 3; i++)
        if (eqr_nbody_compute_baselines(ctx, sets[i], bases[i])) ex_die_ctx(ctx, "baselines");
    printf("# N-body (5 charged particles, frame 30 -> 40): train %lld, val %lld, test %lld "
           "(generated in %.1fs)\n",
           (long long)train.n, (long long)val.n, (long long)test.n, ex_now() - t_start);
    printf("# baselines MSE  no motion: train %.4f val %.4f test %.4f | constant velocity: "
           "train %.4f val %.4f test %.4f\n",
           btr.no_motion, bva.no_motion, bte.no_motion, btr.const_velocity, bva.const_velocity,
           bte.const_velocity);

    model m;
    model_build(ctx, &o, &m);
    /* The run's own state as buffers, so that a checkpoint carries it: the
     * per-epoch records and (--select best) the best epoch's copy of the
     * model's part of the store (parameters and buffers, theta included). */
    const int64_t nmodel = eqr_param_num_scalars(ctx);
    eqr_tensor *hist = eqr_param_create(ctx, "nbody.history", 2, (int64_t[]){o.epochs, NREC},
                                     EQR_PARAM_BUFFER);
    eqr_tensor *best = o.best ? eqr_param_create(ctx, "nbody.best", 1, &nmodel, EQR_PARAM_BUFFER)
                              : NULL;
    float *snap = malloc(sizeof(float) * (size_t)nmodel);
    if (!hist || (o.best && !best) || !snap) ex_die_ctx(ctx, "run state");
    eqr_optim *opt = eqr_optim_create(
        ctx, &(eqr_optim_opts){.kind = o.wd > 0.0f ? EQR_OPTIM_ADAMW : EQR_OPTIM_ADAM, .lr = o.lr,
                               .weight_decay = o.wd});
    if (!opt) ex_die_ctx(ctx, "creating the optimizer");
    const int64_t total_steps = (train.n + o.batch - 1) / o.batch * o.epochs;
    /* data-parallel: same settings and data on every rank, rank 0's
     * parameters everywhere (then the trainer's hooks: gradients averaged,
     * the norm penalty of the global batch) */
    ex_dist_begin(ctx);
    ex_dist_check_batches(o.batch, train.n);
    char ds[64]; /* the settings every rank must share */
    snprintf(ds, sizeof ds, "%016llx|%lld|%d|%d", (unsigned long long)config_hash(&o),
             (long long)o.stop_after, o.resume, o.checkpoint != NULL);
    ex_dist_agree(ex_hash(0, ds, strlen(ds)), set_hash(&test, set_hash(&val, set_hash(&train, 0))),
                  "the data set (train, val and test systems)", o.resume ? o.checkpoint : NULL);
    eqr_scheduler *sch = m.relax || o.lr_cosine ? ex_schedules(ctx, opt, o.lr_cosine ? o.lr : -1,
                          m.relax, o.relax_kind, o.theta_max, total_steps) : NULL;
    printf("# model %s, %lld layers, hidden %lld, %s, %lld parameters (incl. buffers)\n",
           o.model, (long long)o.layers, (long long)o.hidden, m.relax ? "relaxed" : "strict",
           (long long)nmodel);
    if (m.relax)
        printf("# relax: schedule %s per step over %lld steps, theta_max %g, lambda_defect %g, "
               "lambda_norm %g, penalty grad %s, projection %s\n",
               o.relax, (long long)total_steps, o.theta_max, o.lambda_defect, o.lambda_norm,
               o.penalty_grad, o.projection);
    printf("# %s lr %g (%s), batch %lld, epochs %lld, seed %llu, threads %lld\n",
           o.wd > 0.0f ? "AdamW" : "Adam", o.lr,
           o.lr_schedule, (long long)o.batch, (long long)o.epochs, (unsigned long long)o.seed, (long long)o.threads);
    if (nranks > 1)
        printf("# data-parallel on %d ranks: global batch %lld, gradients averaged over ranks "
               "every step\n", nranks, (long long)o.batch);
    fflush(stdout);
    /* the step is the library's: the trainer owns Adam, the schedule, the
     * relaxation and the data-parallel hooks */
    eqr_trainer_opts to = {.module = m.net, .opt = opt, .sched = sch, .relax = m.relax,
                           .epochs = o.epochs};
    ex_dist_trainer(&to, m.relax);
    eqr_trainer *tr = eqr_trainer_create(ctx, &to);
    if (!tr) ex_die_ctx(ctx, "creating the trainer");

    epoch_rec *rec = calloc((size_t)o.epochs, sizeof *rec);
    /* --test-curve's test MSE per epoch, NaN (an empty CSV cell) when not
     * measured; not in the checkpoint, so a resumed run's earlier epochs
     * have none */
    double *tcurve = malloc((size_t)o.epochs * sizeof(double));
    int64_t *order = malloc((size_t)train.n * sizeof(int64_t));
    if (!rec || !tcurve || !order) ex_die("out of memory");
    for (int64_t e = 0; e < o.epochs; e++) tcurve[e] = NAN;
    run_pos pos = {.best_val = INFINITY};
    eqr_rng_seed(&pos.shuf, o.seed * 0x9E3779B97F4A7C15ull + 17);
    const int64_t equiv_n = val.n < 500 ? val.n : 500;
    if (resume_run(ctx, &o, opt, &pos)) {
        for (int64_t e = 0; e < pos.epoch; e++)
            for (int k = 0; k < NREC; k++) rec[e][k] = hist->data[e * NREC + k];
        if (sch && eqr_scheduler_sync(sch)) ex_die_ctx(ctx, "theta schedule");
        printf("# resumed from %s after epoch %lld\n", o.checkpoint, (long long)pos.epoch);
    }
    for (int64_t e = pos.epoch; e < o.epochs; e++) {
        double t0 = ex_now(), *r = rec[e];
        train_epoch(ctx, &m, tr, &train, o.batch, &pos.shuf, order, r);
        r[R_VAL] = evaluate(ctx, &m, &val, val.n, 0);
        if (o.test_curve) tcurve[e] = evaluate(ctx, &m, &test, test.n, 0);
        relax_stats(ctx, &m, &r[R_DEFECT], &r[R_ACT]);
        r[R_EQUIV] = evaluate(ctx, &m, &val, equiv_n, 1);
        if (o.best) {
            double vs = r[R_VAL];
            if (m.relax) { /* projected (W_r dropped, every theta 0) on a copy of the store */
                memcpy(snap, eqr_param_data_block(ctx), sizeof(float) * (size_t)nmodel);
                if (eqr_relax_project(ctx, m.relax, EQR_PROJECT_DROP)) ex_die_ctx(ctx, "projection");
                vs = evaluate(ctx, &m, &val, val.n, 0);
                memcpy(eqr_param_data_block(ctx), snap, sizeof(float) * (size_t)nmodel);
            }
            if (vs < pos.best_val) {
                pos.best_val = vs;
                pos.best_epoch = e + 1;
                memcpy(best->data, eqr_param_data_block(ctx), sizeof(float) * (size_t)nmodel);
            }
            if (m.relax) printf("# epoch %lld val_mse at theta 0: %.5f\n", (long long)(e + 1), vs);
        }
        r[R_SECS] = ex_now() - t0;
        printf("epoch %lld/%lld  train_loss %.5f  val_mse %.5f  theta %.4f  penalty %.4g  "
               "defect %.4g  act_norm %.4g  equiv_err %.3g  %.1fs\n",
               (long long)(e + 1), (long long)o.epochs, r[R_LOSS], r[R_VAL], r[R_THETA],
               r[R_PEN], r[R_DEFECT], r[R_ACT], r[R_EQUIV], r[R_SECS]);
        if (o.test_curve) printf("# epoch %lld test_mse %.5f\n", (long long)(e + 1), tcurve[e]);
        fflush(stdout);
        for (int k = 0; k < NREC; k++) hist->data[e * NREC + k] = (float)r[k];
        pos.epoch = e + 1;
        if (o.checkpoint && rank0) save_run(ctx, &o, opt, &pos);
        if (o.stop_after == e + 1) {
            printf("# stopped after epoch %lld (--stop-after): resume with --resume\n",
                   (long long)(e + 1));
            goto done;
        }
    }

    if (o.best) {
        memcpy(eqr_param_data_block(ctx), best->data, sizeof(float) * (size_t)nmodel);
        printf("# selected epoch %lld (best val_mse at theta 0: %.5f)\n",
               (long long)pos.best_epoch, pos.best_val);
    }
    const int projected = m.relax != NULL;
    if (m.relax) {
        double before = evaluate(ctx, &m, &test, test.n, 0);
        printf("# before projection: theta %g, test_mse %.5f\n",
               eqr_relax_theta(m.relax)->data[0], before);
        if (eqr_relax_project(ctx, m.relax, o.proj)) ex_die_ctx(ctx, "projection");
    }
    double test_mse = evaluate(ctx, &m, &test, test.n, 0);
    double equiv = evaluate(ctx, &m, &test, test.n, 1);
    printf("# test_mse %.5f (baselines: no motion %.4f, constant velocity %.4f)%s\n", test_mse,
           bte.no_motion, bte.const_velocity, projected ? " after projection" : "");
    if (rank0 && (o.metrics || o.plot)) {
        char title[256];
        snprintf(title, sizeof title, "nbody %s %s, %lld layers, train %lld, seed %llu",
                 o.model, m.relax ? o.relax : "strict", (long long)o.layers,
                 (long long)train.n, (unsigned long long)o.seed);
        write_outputs(ctx, o.metrics, o.plot, rec, tcurve, o.epochs, title, bva.const_velocity);
    }
    printf("result test_mse=%.6f equiv_err=%.3g projected=%d seconds=%.1f\n", test_mse, equiv,
           projected, ex_now() - t_start);

done:
    free(rec);
    free(tcurve);
    free(order);
    free(snap);
    eqr_trainer_destroy(tr);
    eqr_scheduler_destroy(sch);
    eqr_optim_destroy(opt);
    model_free(&m);
    eqr_nbody_free(&train);
    eqr_nbody_free(&val);
    eqr_nbody_free(&test);
    eqr_ctx_destroy(ctx);
    ex_dist_end();
    return 0;
}
