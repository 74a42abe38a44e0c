/* bench_dist: the cost of data parallelism for the main job's model, the
 * relaxed C4 CNN of examples/fmnist_rot.c (c4, --width W, triangle
 * relaxation, lambda_defect = lambda_norm = 0.01, norm subsample 0), on
 * synthetic 28x28 images. Per optimizer step it times, on every rank:
 *   step       the whole step (forward, penalties, backward, all-reduce,
 *              Adam) of this rank's share of the global batch;
 *   wait       an MPI_Barrier right after backward: the ranks' imbalance
 *              (on a shared, noisy machine mostly other load);
 *   allreduce  eqr_dist_allreduce_grads after that barrier: the gradient
 *              block's sum over ranks alone (bytes = 4 x parameters).
 * Then the all-reduce alone, outside training: the gradient block's size
 * and one double (the latency term). Rank 0 prints medians over --steps
 * steps (after 3 warm-up steps) and a machine-readable line.
 *   mpirun --oversubscribe -np 2 ./build/bench/bench_dist --width 32 --batch 64 --steps 30 */
#define _POSIX_C_SOURCE 200809L
#include <equirelax/dist.h>
#include <equirelax/equirelax.h>

#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct timing {
    eqr_dist *d;
    double wait, reduce;
} timing;

static eqr_status timed_reduce(eqr_ctx *ctx, void *user) {
    timing *tm = user;
    double t0 = MPI_Wtime();
    MPI_Barrier(MPI_COMM_WORLD);
    double t1 = MPI_Wtime();
    eqr_status st = eqr_dist_allreduce_grads(tm->d);
    double t2 = MPI_Wtime();
    tm->wait = t1 - t0;
    tm->reduce = t2 - t1;
    (void)ctx;
    return st;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void die(eqr_ctx *ctx, const char *what) {
    fprintf(stderr, "bench_dist: %s: %s\n", what, ctx ? eqr_error_message(ctx) : "");
    MPI_Abort(MPI_COMM_WORLD, 1);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int width = 32, batch = 64, steps = 30, threads = 1;
    long long bucket = EQR_DIST_BUCKET_DEFAULT;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--width")) width = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--bucket")) bucket = atoll(argv[i + 1]);
        else {
            if (!rank) fprintf(stderr, "usage: bench_dist [--width W] [--batch B] [--steps S] "
                                       "[--threads T] [--bucket FLOATS]\n");
            MPI_Finalize();
            return 2;
        }
    }
    if (width < 8 || width % 4 || batch < size || steps < 1) {
        if (!rank) fprintf(stderr, "bench_dist: need width >= 8 (multiple of 4), batch >= ranks\n");
        MPI_Finalize();
        return 2;
    }
    eqr_ctx *ctx = eqr_ctx_create(&(eqr_ctx_opts){.seed = 1, .threads = threads});
    if (!ctx) die(NULL, "out of memory");

    /* the model of fmnist_rot --group c4 (relaxed) on 28x28 images */
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep_part triv = eqr_part_irrep(eqr_irrep_of(&G, 0, 0), 1);
    eqr_rep *tin = eqr_rep_create(ctx, &G, 1, &triv), *reg[3];
    const int ch[3] = {width, 2 * width, 4 * width}, ks[3] = {5, 3, 3};
    for (int l = 0; l < 3; l++) {
        eqr_rep_part p = eqr_part_regular(ch[l] / 4);
        reg[l] = eqr_rep_create(ctx, &G, 1, &p);
    }
    eqr_module *net = eqr_sequential_create(ctx, "net");
    for (int l = 0; l < 3; l++) {
        char nm[8];
        snprintf(nm, sizeof nm, "c%d", l + 1);
        eqr_conv2d_geom geom = EQR_CONV2D(1, ks[l] / 2, 1);
        eqr_sequential_add(net, eqr_gconv_module(ctx, nm, l ? reg[l - 1] : tin, reg[l], ks[l],
                                                 &(eqr_gconv_opts){.geom = geom}));
        eqr_sequential_add(net, eqr_relu_module(ctx, NULL));
        if (l < 2) eqr_sequential_add(net, eqr_maxpool2d_module(ctx, NULL, 2, 2, 0));
    }
    eqr_sequential_add(net, eqr_group_pool_module(ctx, NULL, reg[2], EQR_GPOOL_MAX));
    eqr_sequential_add(net, eqr_global_avgpool_module(ctx, NULL));
    eqr_relax_opts ro = {.theta = 0.5f, .lambda_defect = 0.01f, .lambda_norm = 0.01f};
    eqr_relax *relax = eqr_relax_create(ctx, "relax", &ro);
    net = eqr_relax_module(ctx, relax, NULL, net, NULL);
    eqr_sequential_add(net, eqr_linear_module(ctx, "fc", ch[2] / 4, 10, 1));
    eqr_optim *opt = eqr_optim_create(ctx, &(eqr_optim_opts){.kind = EQR_OPTIM_ADAM, .lr = 1e-3f});
    if (eqr_error_status(ctx) != EQR_OK || !opt) die(ctx, "building the model");

    eqr_dist *d = eqr_dist_create(ctx, MPI_COMM_WORLD);
    if (!d || eqr_dist_set_bucket(d, bucket) != EQR_OK || eqr_dist_broadcast_params(d) != EQR_OK)
        die(ctx, "setting up");
    eqr_relax_set_reduce(relax, eqr_dist_relax_reduce, d);
    timing tm = {d, 0, 0};
    eqr_trainer *tr = eqr_trainer_create(ctx, &(eqr_trainer_opts){
        .module = net, .opt = opt, .relax = relax, .after_backward = timed_reduce,
        .after_backward_user = &tm});
    if (!tr) die(ctx, "trainer");

    /* synthetic images: this rank's share of each global batch */
    const int64_t lo = (int64_t)batch * rank / size, n = (int64_t)batch * (rank + 1) / size - lo;
    float *x = malloc((size_t)n * 784 * sizeof(float));
    int32_t *y = malloc((size_t)n * sizeof(int32_t));
    if (!x || !y) die(NULL, "out of memory");
    eqr_rng rng;
    eqr_rng_seed(&rng, 7 + (uint64_t)rank);
    const int warm = 3, total = warm + steps;
    double *st = malloc(sizeof(double) * 3 * (size_t)total);
    for (int s = 0; s < total; s++) {
        for (int64_t i = 0; i < n * 784; i++) x[i] = eqr_rng_uniform(&rng);
        for (int64_t i = 0; i < n; i++) y[i] = (int32_t)eqr_rng_below(&rng, 10);
        if (eqr_dist_set_share(d, n, batch) != EQR_OK) die(ctx, "share");
        double t0 = MPI_Wtime();
        int64_t shape[4] = {n, 1, 28, 28};
        eqr_tensor *xt = eqr_tensor_wrap(ctx, x, 4, shape);
        eqr_tensor *loss = eqr_softmax_cross_entropy(ctx, eqr_module_apply(ctx, net, xt), y);
        if (!loss || eqr_trainer_step(tr, loss, n, NULL) != EQR_OK) die(ctx, "step");
        st[3 * s] = MPI_Wtime() - t0;
        st[3 * s + 1] = tm.wait;
        st[3 * s + 2] = tm.reduce;
    }
    /* rank 0 reports the slowest rank's figures per step */
    double *mx = malloc(sizeof(double) * 3 * (size_t)total);
    MPI_Reduce(st, mx, 3 * total, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);

    /* the all-reduce alone: the gradient block's size, and one double */
    const int64_t np = eqr_param_num_scalars(ctx);
    float *buf = calloc((size_t)np, sizeof(float));
    const int reps = 40;
    double *ta = malloc(sizeof(double) * reps), *tl = malloc(sizeof(double) * reps * 5);
    for (int r = 0; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)np, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        ta[r] = MPI_Wtime() - t0;
    }
    for (int r = 0; r < reps * 5; r++) {
        double v = 1;
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        tl[r] = MPI_Wtime() - t0;
    }
    if (rank == 0) {
        double s1[1024], s2[1024], s3[1024];
        int k = steps < 1024 ? steps : 1024;
        for (int i = 0; i < k; i++) {
            s1[i] = mx[3 * (warm + i)];
            s2[i] = mx[3 * (warm + i) + 1];
            s3[i] = mx[3 * (warm + i) + 2];
        }
        double step = median(s1, k), wait = median(s2, k), red = median(s3, k);
        double alone = median(ta, reps), lat = median(tl, reps * 5);
        double bytes = 4.0 * (double)np;
        printf("# bench_dist: relaxed C4 fmnist_rot model, width %d, %lld parameters (incl. W_r "
               "and theta), %d ranks, global batch %d (%lld per rank), %d threads per rank, "
               "%d steps after %d warm-up\n", width, (long long)np, size, batch, (long long)n,
               threads, k, warm);
        printf("# per step (medians of the slowest rank): step %.2f ms, barrier wait %.2f ms, "
               "gradient all-reduce %.3f ms = %.1f%% of the step; bytes reduced per step %.0f "
               "(%.2f MB) + 8 (the norm penalty's sum)\n", 1e3 * step, 1e3 * wait, 1e3 * red,
               100 * red / step, bytes, bytes / 1e6);
        printf("# all-reduce alone: %.0f bytes %.3f ms (bus bandwidth 2(N-1)/N x bytes / t = "
               "%.2f GB/s), 8 bytes %.1f us\n", bytes, 1e3 * alone,
               2.0 * (size - 1) / size * bytes / alone / 1e9, 1e6 * lat);
        printf("bench_dist ranks=%d params=%lld bytes=%.0f step_ms=%.3f wait_ms=%.3f "
               "allreduce_ms=%.4f share=%.4f alone_ms=%.4f latency_us=%.2f\n", size,
               (long long)np, bytes, 1e3 * step, 1e3 * wait, 1e3 * red, red / step,
               1e3 * alone, 1e6 * lat);
    }
    free(buf);
    free(ta);
    free(tl);
    free(st);
    free(mx);
    free(x);
    free(y);
    eqr_trainer_destroy(tr);
    eqr_dist_destroy(d);
    eqr_optim_destroy(opt);
    eqr_module_destroy(net);
    eqr_relax_destroy(relax);
    for (int l = 0; l < 3; l++) eqr_rep_destroy(reg[l]);
    eqr_rep_destroy(tin);
    eqr_ctx_destroy(ctx);
    MPI_Finalize();
    return 0;
}
