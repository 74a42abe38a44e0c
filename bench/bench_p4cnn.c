/* Benchmark "P4CNN-relax": the model and training step of the PyTorch peer
 * ../shared/bench/p4cnn_reference.py built with equirelax, so the two can be
 * run side by side (bench/compare_p4cnn.sh) and compared as ratios.
 *
 *   bench_p4cnn [--relax 0|1] [--threads T] [--batch B] [--steps S]
 *               [--warmup W] [--norm-subsample M] [--profile]
 *
 * Model (input [B,1,28,28], C4 regular fields, channel = field*4 + rotation):
 *   l1 C4 lifting conv 1 -> 16 fields, 5x5 pad 2, ReLU (every ReLU in place)
 *   l2 C4 group conv 16 -> 16 fields, 5x5 pad 2, ReLU, max-pool 2
 *   l3 C4 group conv 16 -> 32 fields, 3x3 pad 1, ReLU, max-pool 2
 *   l4 C4 group conv 32 -> 32 fields, 3x3 pad 1, ReLU
 *   max over the 4 rotations, mean over space, linear 32 -> 10, softmax CE.
 * Step = zero grads, forward, backward, Adam (lr 1e-3) on fixed random
 * inputs and labels. --relax 1 relaxes l1..l4 (eqr_relax_gconv): theta 0.5,
 * W_r ~ N(0, 1e-2^2), loss = CE + 0.01 ssqrt(sum defect) + 0.01 ssqrt(sum
 * ||W_r x||^2) with the exact norm (as the peer computes it), unless
 * --norm-subsample M asks for the estimate from M images of the batch.
 *
 * Prints, like the peer (median over the timed steps, peak RSS from
 * getrusage):
 *   equirelax relax=R threads=T batch=B ms_per_step=X peak_rss_mb=Y
 * and, for relaxed runs, which norm at the end: " norm=exact", or
 * " norm=est norm_m=M" with --norm-subsample M (< B).
 * --profile adds the median forward / backward / optimizer split of the
 * step and a per-op table: each op of the model run alone (same shapes, own
 * context, input as a leaf that needs a gradient, as inside the model) for
 * its forward and backward time, and for every conv the time of the GEMMs
 * the conv issues run alone with the same shapes; the rest of the conv is
 * im2col / col2im / bias / filter expansion. The library itself is not
 * instrumented: profiling costs nothing when off. */
#define _POSIX_C_SOURCE 200809L
#include <equirelax/equirelax.h>

#include <cblas.h>
#include "bench_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define SIDE 28
#define NCLASS 10

typedef struct options {
    int relax, threads, batch, steps, warmup, norm_subsample, profile;
} options;

typedef struct model {
    eqr_group G;
    eqr_rep *t1, *r16, *r32;
    eqr_gconv *l[4];
    eqr_relax *relax;      /* NULL: strict model */
    eqr_rlayer *rl[4];
    eqr_tensor *fc_w, *fc_b;
} model;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void die_ctx(eqr_ctx *ctx, const char *what) {
    fprintf(stderr, "bench_p4cnn: %s: %s\n", what, eqr_error_message(ctx));
    exit(1);
}

/* ---- model ---- */

static eqr_rep *rep_of(eqr_ctx *ctx, const eqr_group *G, int regular, int mult) {
    eqr_rep_part p = regular ? eqr_part_regular(mult) : eqr_part_irrep(eqr_irrep_of(G, 0, 0), mult);
    return eqr_rep_create(ctx, G, 1, &p);
}

static void model_build(eqr_ctx *ctx, model *m, const options *o) {
    memset(m, 0, sizeof *m);
    m->G = eqr_group_cyclic(4);
    m->t1 = rep_of(ctx, &m->G, 0, 1);
    m->r16 = rep_of(ctx, &m->G, 1, 16);
    m->r32 = rep_of(ctx, &m->G, 1, 32);
    eqr_gconv_opts k5 = {.geom = EQR_CONV2D(1, 2, 1)}, k3 = {.geom = EQR_CONV2D(1, 1, 1)};
    m->l[0] = eqr_gconv_create(ctx, "l1", m->t1, m->r16, 5, &k5);
    m->l[1] = eqr_gconv_create(ctx, "l2", m->r16, m->r16, 5, &k5);
    m->l[2] = eqr_gconv_create(ctx, "l3", m->r16, m->r32, 3, &k3);
    m->l[3] = eqr_gconv_create(ctx, "l4", m->r32, m->r32, 3, &k3);
    int64_t sw[2] = {NCLASS, 32}, sb[1] = {NCLASS};
    m->fc_w = eqr_param_create(ctx, "fc.weight", 2, sw, 0);
    m->fc_b = eqr_param_create(ctx, "fc.bias", 1, sb, EQR_PARAM_NO_DECAY);
    if (m->fc_w) eqr_param_init_xavier_uniform(ctx, m->fc_w, 1.0f);
    if (o->relax) {
        eqr_relax_opts ro = {.theta = 0.5f, .init = EQR_RELAX_INIT_NORMAL, .init_std = 1e-2f,
                             .lambda_defect = 0.01f, .lambda_norm = 0.01f,
                             .norm_subsample = o->norm_subsample};
        m->relax = eqr_relax_create(ctx, "relax", &ro);
        static const char *const names[4] = {"l1", "l2", "l3", "l4"};
        for (int i = 0; i < 4 && m->relax; i++)
            m->rl[i] = eqr_relax_gconv(ctx, m->relax, names[i], m->l[i], NULL);
    }
    if (eqr_error_status(ctx) != EQR_OK) die_ctx(ctx, "building the model");
}

static void model_free(model *m) {
    eqr_relax_destroy(m->relax);
    for (int i = 0; i < 4; i++) eqr_gconv_destroy(m->l[i]);
    eqr_rep_destroy(m->t1);
    eqr_rep_destroy(m->r16);
    eqr_rep_destroy(m->r32);
}

/* The stages of the forward pass, each a function of the previous output,
 * so that the profile can run every one alone. */
static eqr_tensor *conv_i(eqr_ctx *ctx, model *m, int i, eqr_tensor *x) {
    return m->relax ? eqr_rlayer_forward(ctx, m->rl[i], x) : eqr_gconv_forward(ctx, m->l[i], x);
}
static eqr_tensor *st_conv1(eqr_ctx *c, model *m, eqr_tensor *x) { return conv_i(c, m, 0, x); }
static eqr_tensor *st_conv2(eqr_ctx *c, model *m, eqr_tensor *x) { return conv_i(c, m, 1, x); }
static eqr_tensor *st_conv3(eqr_ctx *c, model *m, eqr_tensor *x) { return conv_i(c, m, 2, x); }
static eqr_tensor *st_conv4(eqr_ctx *c, model *m, eqr_tensor *x) { return conv_i(c, m, 3, x); }
/* In the model every ReLU follows a conv and is its only consumer, so it
 * runs in place (no second map, no second gradient buffer). The profile
 * feeds each op a parameter, which may not be overwritten: plain ReLU there. */
static eqr_tensor *st_relu(eqr_ctx *c, model *m, eqr_tensor *x) {
    (void)m;
    return x && (x->flags & EQR_T_PARAM) ? eqr_relu(c, x) : eqr_relu_inplace(c, x);
}
static eqr_tensor *st_pool(eqr_ctx *c, model *m, eqr_tensor *x) {
    (void)m;
    return eqr_maxpool2d(c, x, 2, 2, 0);
}
/* group max-pool, global average, linear: [B,128,7,7] -> logits [B,10] */
static eqr_tensor *st_head(eqr_ctx *ctx, model *m, eqr_tensor *h) {
    if (!h) return NULL;
    int64_t s5[5] = {h->shape[0], h->shape[1] / 4, 4, h->shape[2], h->shape[3]};
    h = eqr_max(ctx, eqr_reshape(ctx, h, 5, s5), 2, 0);
    h = eqr_global_avgpool(ctx, h);
    return eqr_linear(ctx, h, m->fc_w, m->fc_b);
}

typedef eqr_tensor *(*stage_fn)(eqr_ctx *, model *, eqr_tensor *);
typedef struct stage {
    const char *name;
    stage_fn fn;
    int C, S;   /* input [B, C, S, S] */
    int conv;   /* conv layer index + 1, 0 for other ops */
} stage;

static const stage STAGES[] = {
    {"l1 conv 5x5 1->64", st_conv1, 1, 28, 1},   {"l1 relu", st_relu, 64, 28, 0},
    {"l2 conv 5x5 64->64", st_conv2, 64, 28, 2}, {"l2 relu", st_relu, 64, 28, 0},
    {"l2 maxpool", st_pool, 64, 28, 0},          {"l3 conv 3x3 64->128", st_conv3, 64, 14, 3},
    {"l3 relu", st_relu, 128, 14, 0},            {"l3 maxpool", st_pool, 128, 14, 0},
    {"l4 conv 3x3 128->128", st_conv4, 128, 7, 4}, {"l4 relu", st_relu, 128, 7, 0},
    {"head (gmax,gap,fc)", st_head, 128, 7, 0},
};
#define NSTAGES ((int)(sizeof STAGES / sizeof STAGES[0]))

/* Forward pass and loss of one step. */
static eqr_tensor *model_loss(eqr_ctx *ctx, model *m, eqr_tensor *x, const int32_t *labels) {
    eqr_tensor *h = x;
    for (int s = 0; s < NSTAGES; s++) h = STAGES[s].fn(ctx, m, h);
    eqr_tensor *loss = eqr_softmax_cross_entropy(ctx, h, labels);
    if (m->relax) loss = eqr_add(ctx, loss, eqr_relax_penalty(ctx, m->relax));
    return loss;
}

/* ---- the timed training step ---- */

typedef struct step_times {
    double fwd, bwd, opt, total, cpu;
} step_times;

/* CPU time of the process (all threads), to see past other processes'
 * load on a shared machine. */
static double cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static void train_step(eqr_ctx *ctx, model *m, eqr_optim *opt, eqr_tensor *x,
                       const int32_t *labels, step_times *t) {
    double c0 = cpu_ms(), t0 = now_ms();
    eqr_grad_zero(ctx);
    eqr_tensor *loss = model_loss(ctx, m, x, labels);
    double t1 = now_ms();
    if (!loss || eqr_backward(ctx, loss) != EQR_OK) die_ctx(ctx, "training step");
    double t2 = now_ms();
    if (eqr_optim_step(opt) != EQR_OK) die_ctx(ctx, "optimizer step");
    eqr_step_reset(ctx);
    double t3 = now_ms();
    *t = (step_times){t1 - t0, t2 - t1, t3 - t2, t3 - t0, cpu_ms() - c0};
}

/* ---- profile: each op alone ---- */

/* The GEMMs eqr_conv2d issues for one conv layer (src/ops_conv.c), run
 * alone on this thread for `images` images: per image and tile of TR output
 * rows (tiles of at most 2^19 col floats, balanced, as there), forward
 * Y_t = W col_t; backward dW += dY_t col_t^T and dcol_t = W^T dY_t (no dX
 * for l1, whose input is the data). Same shapes, transposes and strides. */
static void conv_gemms(int images, int C, int S, int O, int k, double *fwd_ms, double *bwd_ms,
                       int reps) {
    const int P = S * S, CK = C * k * k;
    const long maxrows = (long)CK * S >= (1L << 19) ? 1 : (1L << 19) / ((long)CK * S);
    const long ntiles = (S + maxrows - 1) / maxrows;
    const int TR = (int)((S + ntiles - 1) / ntiles);
    float *w = calloc((size_t)O * CK, sizeof(float)), *col = calloc((size_t)CK * P, sizeof(float));
    float *y = calloc((size_t)O * P, sizeof(float)), *dw = calloc((size_t)O * CK, sizeof(float));
    double *tf = malloc(sizeof(double) * (size_t)reps), *tb = malloc(sizeof(double) * (size_t)reps);
    if (!w || !col || !y || !dw || !tf || !tb) {
        fprintf(stderr, "bench_p4cnn: out of memory\n");
        exit(1);
    }
    for (int r = -1; r < reps; r++) {
        double t0 = now_ms();
        for (int n = 0; n < images; n++)
            for (int oh0 = 0; oh0 < S; oh0 += TR) {
                const int cols = (oh0 + TR < S ? TR : S - oh0) * S;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, O, cols, CK, 1.0f, w, CK,
                            col, cols, 0.0f, y + (size_t)oh0 * S, P);
            }
        double t1 = now_ms();
        for (int n = 0; n < images; n++)
            for (int oh0 = 0; oh0 < S; oh0 += TR) {
                const int cols = (oh0 + TR < S ? TR : S - oh0) * S;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, O, CK, cols, 1.0f,
                            y + (size_t)oh0 * S, P, col, cols, 1.0f, dw, CK);
                if (C > 1)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CK, cols, O, 1.0f, w, CK,
                                y + (size_t)oh0 * S, P, 0.0f, col, cols);
            }
        double t2 = now_ms();
        if (r >= 0) {
            tf[r] = t1 - t0;
            tb[r] = t2 - t1;
        }
    }
    *fwd_ms = median(tf, reps);
    *bwd_ms = median(tb, reps);
    free(w), free(col), free(y), free(dw), free(tf), free(tb);
}

static void profile(const options *o) {
    eqr_ctx *ctx = eqr_ctx_create(&(eqr_ctx_opts){.seed = 7, .threads = o->threads});
    if (!ctx) exit(1);
    model m;
    model_build(ctx, &m, o);
    eqr_tensor *in[NSTAGES];
    for (int s = 0; s < NSTAGES; s++) {
        char name[32];
        snprintf(name, sizeof name, "profile.in%d", s);
        int64_t sh[4] = {o->batch, STAGES[s].C, STAGES[s].S, STAGES[s].S};
        /* a parameter, so its gradient is computed as for a hidden layer;
         * l1's input is the data and needs none */
        in[s] = s == 0 ? NULL : eqr_param_create(ctx, name, 4, sh, 0);
        if (s && in[s]) eqr_tensor_normal(in[s], eqr_ctx_rng(ctx), 1.0f);
    }
    int64_t xs[4] = {o->batch, 1, SIDE, SIDE};
    float *xdata = malloc(sizeof(float) * (size_t)o->batch * SIDE * SIDE);
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)o->batch);
    double *tf = malloc(sizeof(double) * (size_t)o->steps), *tb = malloc(sizeof(double) * (size_t)o->steps);
    if (!xdata || !labels || !tf || !tb) exit(1);
    for (int i = 0; i < o->batch * SIDE * SIDE; i++) xdata[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    for (int i = 0; i < o->batch; i++) labels[i] = i % NCLASS;
    printf("# profile: each op alone, median of %d runs (ms); GEMM = the conv's GEMMs alone on "
           "one thread for %s images\n", o->steps, o->threads > 1 ? "B/T" : "B");
    printf("# %-22s %9s %9s   %9s %9s\n", "op", "forward", "backward", "fwd GEMM", "bwd GEMM");
    double sum_f = 0, sum_b = 0;
    for (int s = 0; s < NSTAGES; s++) {
        const stage *st = &STAGES[s];
        for (int r = -1; r < o->steps; r++) {
            eqr_tensor *x = s == 0 ? eqr_tensor_wrap(ctx, xdata, 4, xs) : in[s];
            double t0 = now_ms();
            eqr_tensor *y = st->fn(ctx, &m, x);
            if (s == NSTAGES - 1) y = eqr_softmax_cross_entropy(ctx, y, labels);
            double t1 = now_ms();
            if (m.relax) eqr_relax_penalty(ctx, m.relax); /* consume the norm term, untimed */
            eqr_tensor *seed = y ? eqr_tensor_from(ctx, y->ndim, y->shape, NULL) : NULL;
            if (!seed) die_ctx(ctx, st->name);
            eqr_tensor_fill(seed, 1e-3f);
            double t2 = now_ms();
            if (eqr_backward_from(ctx, y, seed) != EQR_OK) die_ctx(ctx, st->name);
            double t3 = now_ms();
            eqr_step_reset(ctx);
            if (r >= 0) {
                tf[r] = t1 - t0;
                tb[r] = t3 - t2;
            }
        }
        double f = median(tf, o->steps), b = median(tb, o->steps);
        sum_f += f;
        sum_b += b;
        if (st->conv) {
            static const int OUT[4] = {64, 64, 128, 128}, K[4] = {5, 5, 3, 3};
            const int li = st->conv - 1, images = (o->batch + o->threads - 1) / o->threads;
            double gf, gb;
            conv_gemms(images, st->C, st->S, OUT[li], K[li], &gf, &gb, o->steps);
            printf("  %-22s %9.3f %9.3f   %9.3f %9.3f\n", st->name, f, b, gf, gb);
        } else {
            printf("  %-22s %9.3f %9.3f\n", st->name, f, b);
        }
    }
    printf("  %-22s %9.3f %9.3f\n", "sum of ops", sum_f, sum_b);
    free(xdata), free(labels), free(tf), free(tb);
    model_free(&m);
    eqr_ctx_destroy(ctx);
}

/* ---- main ---- */

static void usage(void) {
    fprintf(stderr, "usage: bench_p4cnn [--relax 0|1] [--threads T] [--batch B] [--steps S] "
                    "[--warmup W] [--norm-subsample M] [--profile]\n");
    exit(2);
}

static void parse(int argc, char **argv, options *o) {
    *o = (options){.relax = 0, .threads = 1, .batch = 64, .steps = 10, .warmup = 3};
    for (int i = 1; i < argc; i++) {
        int *dst = NULL;
        if (!strcmp(argv[i], "--profile")) {
            o->profile = 1;
            continue;
        }
        if (!strcmp(argv[i], "--relax")) dst = &o->relax;
        else if (!strcmp(argv[i], "--threads")) dst = &o->threads;
        else if (!strcmp(argv[i], "--batch")) dst = &o->batch;
        else if (!strcmp(argv[i], "--steps")) dst = &o->steps;
        else if (!strcmp(argv[i], "--warmup")) dst = &o->warmup;
        else if (!strcmp(argv[i], "--norm-subsample")) dst = &o->norm_subsample;
        if (!dst || i + 1 >= argc) usage();
        char *end;
        long v = strtol(argv[++i], &end, 10);
        if (*end || v < 0 || v > 1000000) usage();
        *dst = (int)v;
    }
    if (o->relax > 1 || o->threads < 1 || o->batch < 1 || o->steps < 1) usage();
}

int main(int argc, char **argv) {
    options o;
    parse(argc, argv, &o);
    /* as the peer's torch.set_num_threads: T threads in all, so BLAS calls
     * made outside the library's own thread chunks get T threads too */
    openblas_set_num_threads(o.threads);
    eqr_ctx *ctx = eqr_ctx_create(&(eqr_ctx_opts){.seed = 1, .threads = o.threads});
    if (!ctx) return 1;
    model m;
    model_build(ctx, &m, &o);
    eqr_optim *opt = eqr_optim_create(ctx, &(eqr_optim_opts){.kind = EQR_OPTIM_ADAM, .lr = 1e-3f});
    if (!opt) die_ctx(ctx, "creating the optimizer");

    /* fixed random inputs and labels: speed does not depend on the values */
    const int64_t xs[4] = {o.batch, 1, SIDE, SIDE};
    float *xdata = malloc(sizeof(float) * (size_t)o.batch * SIDE * SIDE);
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)o.batch);
    step_times *t = malloc(sizeof(step_times) * (size_t)o.steps);
    double *v = malloc(sizeof(double) * (size_t)o.steps);
    if (!xdata || !labels || !t || !v) return 1;
    eqr_rng rng;
    eqr_rng_seed(&rng, 2);
    eqr_tensor xt = {.data = xdata, .shape = {o.batch, 1, SIDE, SIDE}, .ndim = 4,
                     .numel = (int64_t)o.batch * SIDE * SIDE};
    eqr_tensor_normal(&xt, &rng, 1.0f);
    for (int i = 0; i < o.batch; i++) labels[i] = (int32_t)eqr_rng_below(&rng, NCLASS);

    for (int s = -o.warmup; s < o.steps; s++) {
        eqr_tensor *x = eqr_tensor_wrap(ctx, xdata, 4, xs);
        if (!x) die_ctx(ctx, "input");
        step_times st;
        train_step(ctx, &m, opt, x, labels, &st);
        if (s >= 0) t[s] = st;
    }
    for (int s = 0; s < o.steps; s++) v[s] = t[s].total;
    const double ms = median(v, o.steps);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    /* relaxed runs add which activation norm they computed at the end of
     * the line: the exact one (as the peer) or the estimate from M images */
    char norm[48] = "";
    if (o.relax && o.norm_subsample > 0 && o.norm_subsample < o.batch)
        snprintf(norm, sizeof norm, " norm=est norm_m=%d", o.norm_subsample);
    else if (o.relax)
        snprintf(norm, sizeof norm, " norm=exact");
    printf("equirelax relax=%d threads=%d batch=%d ms_per_step=%.2f peak_rss_mb=%.0f%s\n", o.relax,
           o.threads, o.batch, ms, (double)ru.ru_maxrss / 1024.0, norm);
    if (o.profile) {
        double f[4];
        for (int k = 0; k < 4; k++) {
            for (int s = 0; s < o.steps; s++)
                v[s] = k == 0 ? t[s].fwd : k == 1 ? t[s].bwd : k == 2 ? t[s].opt : t[s].cpu;
            f[k] = median(v, o.steps);
        }
        printf("# step split (median ms): forward %.3f  backward %.3f  adam+reset %.3f; "
               "CPU time %.3f ms/step (all threads); arena %.1f MB reserved; OpenBLAS core %s, "
               "%d threads\n",
               f[0], f[1], f[2], f[3], (double)eqr_arena_reserved(ctx) / 1048576.0,
               openblas_get_corename(), openblas_get_num_threads());
    }
    eqr_optim_destroy(opt);
    model_free(&m);
    eqr_ctx_destroy(ctx);
    if (o.profile) profile(&o);
    free(xdata), free(labels), free(t), free(v);
    return 0;
}
