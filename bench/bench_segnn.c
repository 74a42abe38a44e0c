/* Benchmark "SEGNN-relax": the training step of the PyTorch peer
 * ../shared/bench/segnn_reference.py built with equirelax (segnn.h), so the
 * two run side by side (bench/compare_segnn.sh) and compare as ratios.
 *
 *   bench_segnn [--relax 0|1] [--threads T] [--batch B] [--steps S]
 *               [--warmup W] [--theta F]
 *
 * Model: the N-body SEGNN (hidden 32x0e+32x1o, 4 layers, attributes lmax
 * 1); B graphs of 5 particles. Step = graph features, forward, MSE against
 * the target, backward, Adam lr 5e-4, on fixed random inputs (speed does
 * not depend on the values). --relax 1: eqr_relax_segnn, theta (0.5),
 * W_r ~ N(0, 1e-4^2), loss = MSE + 0.01 (ssqrt(LD) + ssqrt(N)) with the
 * activation-form Lie derivative and the exact norm on detached inputs,
 * as the peer.
 *
 * Prints, like the peer (median over the timed steps; peak RSS from
 * getrusage):
 *   equirelax-segnn relax=R threads=T batch=B ms_per_step=X peak_rss_mb=Y
 *   cpu_ms_per_step=Z */
#define _POSIX_C_SOURCE 200809L
#include <equirelax/equirelax.h>

#include "bench_util.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define NP 5

typedef struct options {
    int relax, threads, batch, steps, warmup;
    float theta;
} options;

static void die_ctx(eqr_ctx *ctx, const char *what) {
    fprintf(stderr, "bench_segnn: %s: %s\n", what, eqr_error_message(ctx));
    exit(1);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int int_arg(const char *flag, const char *s, int lo) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < lo || v > 1000000) {
        fprintf(stderr, "bench_segnn: bad value '%s' for %s (an integer >= %d)\n", s, flag, lo);
        exit(2);
    }
    return (int)v;
}

static void parse(int argc, char **argv, options *o) {
    *o = (options){.relax = 0, .threads = 1, .batch = 100, .steps = 20, .warmup = 5, .theta = 0.5f};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            printf("usage: bench_segnn [--relax 0|1] [--threads T] [--batch B] [--steps S] "
                   "[--warmup W] [--theta F]\n");
            exit(0);
        }
        if (!v) {
            fprintf(stderr, "bench_segnn: %s needs a value (or unknown flag)\n", a);
            exit(2);
        }
        if (!strcmp(a, "--relax")) o->relax = int_arg(a, v, 0) != 0;
        else if (!strcmp(a, "--threads")) o->threads = int_arg(a, v, 1);
        else if (!strcmp(a, "--batch")) o->batch = int_arg(a, v, 1);
        else if (!strcmp(a, "--steps")) o->steps = int_arg(a, v, 1);
        else if (!strcmp(a, "--warmup")) o->warmup = int_arg(a, v, 0);
        else if (!strcmp(a, "--theta")) o->theta = strtof(v, NULL);
        else {
            fprintf(stderr, "bench_segnn: unknown flag %s (see --help)\n", a);
            exit(2);
        }
        i++;
    }
}

int main(int argc, char **argv) {
    options o;
    parse(argc, argv, &o);
    openblas_set_num_threads(1); /* as the peer: threads are the library's own */
    eqr_ctx *ctx = eqr_ctx_create(&(eqr_ctx_opts){.seed = 1, .threads = o.threads});
    if (!ctx) return 1;
    eqr_segnn *m = eqr_segnn_create(ctx, "segnn", NULL);
    if (!m) die_ctx(ctx, "building the model");
    eqr_relax *r = NULL;
    if (o.relax) {
        eqr_relax_opts ro = {.theta = o.theta, .init = EQR_RELAX_INIT_NORMAL, .init_std = 1e-4f,
                             .lambda_defect = 0.01f, .lambda_norm = 0.01f,
                             .lie_form = EQR_LIE_ACTIVATION};
        r = eqr_relax_create(ctx, "relax", &ro);
        if (!r || eqr_relax_segnn(ctx, r, "segnn", m, NULL)) die_ctx(ctx, "relaxing the model");
    }
    eqr_optim *opt = eqr_optim_create(ctx, &(eqr_optim_opts){.kind = EQR_OPTIM_ADAM, .lr = 5e-4f});
    if (!opt) die_ctx(ctx, "optimizer");
    const int64_t n3 = (int64_t)o.batch * NP * 3;
    float *x = malloc(sizeof(float) * (size_t)n3), *v = malloc(sizeof(float) * (size_t)n3);
    float *y = malloc(sizeof(float) * (size_t)n3), *q = malloc(sizeof(float) * (size_t)(n3 / 3));
    if (!x || !v || !y || !q) return 1;
    eqr_rng *rng = eqr_ctx_rng(ctx);
    for (int64_t i = 0; i < n3; i++) {
        x[i] = eqr_rng_normal(rng);
        v[i] = 0.3f * eqr_rng_normal(rng);
        y[i] = x[i] + 0.5f * v[i];
    }
    for (int64_t i = 0; i < n3 / 3; i++) q[i] = eqr_rng_uniform(rng) < 0.5f ? -1.0f : 1.0f;
    const int64_t s3[3] = {o.batch, NP, 3}, s1[3] = {o.batch, NP, 1};
    double *ms = malloc(sizeof(double) * (size_t)o.steps), *cpu = malloc(sizeof(double) * (size_t)o.steps);
    if (!ms || !cpu) return 1;
    for (int s = 0; s < o.warmup + o.steps; s++) {
        const double t0 = bench_now_s(), c0 = cpu_s();
        eqr_grad_zero(ctx);
        eqr_tensor *pred = eqr_segnn_forward(ctx, m, eqr_tensor_from(ctx, 3, s3, x),
                                             eqr_tensor_from(ctx, 3, s3, v),
                                             eqr_tensor_from(ctx, 3, s1, q));
        eqr_tensor *loss = eqr_mse(ctx, pred, eqr_tensor_from(ctx, 3, s3, y));
        if (r) loss = eqr_add(ctx, loss, eqr_relax_penalty(ctx, r));
        if (!loss || eqr_backward(ctx, loss) || eqr_optim_step(opt)) die_ctx(ctx, "training step");
        eqr_step_reset(ctx);
        if (s >= o.warmup) {
            ms[s - o.warmup] = (bench_now_s() - t0) * 1e3;
            cpu[s - o.warmup] = (cpu_s() - c0) * 1e3;
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("equirelax-segnn relax=%d threads=%d batch=%d ms_per_step=%.2f peak_rss_mb=%.1f "
           "cpu_ms_per_step=%.2f\n", o.relax, o.threads, o.batch, median(ms, o.steps),
           (double)ru.ru_maxrss / 1024.0, median(cpu, o.steps));
    free(ms);
    free(cpu);
    free(x);
    free(v);
    free(y);
    free(q);
    eqr_optim_destroy(opt);
    eqr_relax_destroy(r);
    eqr_segnn_destroy(m);
    eqr_ctx_destroy(ctx);
    return 0;
}
