/* Data-parallel training (dist.h), run by ctest on 2 ranks under mpirun.
 *
 * 2 ranks with shares of 32 of each global batch of 64 take, over 20
 * steps of the tiny relaxed C4 model with Adam, the steps one process
 * takes with batches of 64 (computed on every rank in a context of its
 * own, without MPI): the parameters agree to float summation order (bound
 * below), the ranks stay bit-identical to each other and a rerun is
 * bit-identical. The data set (293 = 4 x 64 + 37) ends each epoch with a
 * short batch shared 18 / 19, which the weighted mean must get right, and
 * the relaxation's activation-norm penalty is that of the global batch. A
 * mismatched configuration, a mismatched model and a global batch smaller
 * than the number of ranks are refused on every rank with a clear message. */
#include "testutil.h"
#include "tu_tiny_model.h"

#include <equirelax/dist.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NDATA = 293, BATCH = 64, STEPS = 20 };
static const uint64_t DATA_SEED = 5, ORDER_SEED = 21;

/* Parameters after STEPS steps: over MPI (d != NULL, each rank's model
 * initialised from its own seed, then rank 0's broadcast) or in one process
 * (d == NULL, whole batches). bucket: floats per all-reduce. */
static float *train(eqr_dist *d, uint64_t init_seed, int64_t bucket, int steps, int by_epoch,
                    int64_t *total, float **init) {
    eqr_ctx *ctx = tu_ctx(init_seed);
    tu_tiny_model m;
    tu_tiny_build(ctx, &m, 0.2f);
    eqr_dist *dd = NULL;
    if (d) {
        dd = eqr_dist_create(ctx, MPI_COMM_WORLD);
        assert_non_null(dd);
        assert_int_equal(eqr_dist_set_bucket(dd, bucket), EQR_OK);
        assert_int_equal(eqr_dist_broadcast_params(dd), EQR_OK);
        /* the activation-norm penalty ssqrt(sum over the batch of ||W_r
         * x||^2) is not a mean over samples: it is summed over the ranks */
        eqr_relax_set_reduce(m.r, eqr_dist_relax_reduce, dd);
    }
    *total = eqr_param_num_scalars(ctx);
    size_t bytes = (size_t)*total * sizeof(float);
    if (init) {
        *init = malloc(bytes);
        memcpy(*init, eqr_param_data_block(ctx), bytes);
    }
    eqr_optim_opts oo = {.kind = EQR_OPTIM_ADAM, .lr = 0.01f};
    eqr_optim *opt = eqr_optim_create(ctx, &oo);
    eqr_trainer_opts to = {.forward = tu_tiny_forward, .model = &m, .opt = opt, .relax = m.r,
                           .after_backward = dd ? eqr_dist_after_backward : NULL,
                           .after_backward_user = dd,
                           .next_batch = by_epoch && dd ? eqr_dist_next_batch : NULL,
                           .next_batch_user = dd};
    eqr_trainer *t = eqr_trainer_create(ctx, &to);
    assert_non_null(t);
    eqr_dataset ds;
    tu_tiny_data(&ds, NDATA, DATA_SEED);
    eqr_batcher bt;
    assert_int_equal(eqr_batcher_init(ctx, &bt, &ds, BATCH, 1, ORDER_SEED), EQR_OK);
    float *x = malloc((size_t)BATCH * 64 * sizeof(float));
    int32_t *y = malloc((size_t)BATCH * sizeof(int32_t));
    int64_t n, short_batches = 0;
    if (by_epoch) { /* eqr_trainer_epoch over the sampler: one epoch */
        eqr_epoch_stats st;
        assert_int_equal(eqr_trainer_epoch(t, &bt, 1, &st), EQR_OK);
        assert_int_equal(st.steps, steps);
        assert_int_equal(st.seen, dd ? 4 * 32 + (37 * (eqr_dist_rank(dd) + 1)) / 2 - (37 * eqr_dist_rank(dd)) / 2 : NDATA);
        short_batches = 1;
    }
    for (int s = by_epoch ? steps : 0; s < steps;) {
        int more = dd ? eqr_dist_batcher_next(dd, &bt, x, y, &n) : eqr_batcher_next(&bt, x, y, &n);
        assert_int_equal(eqr_error_status(ctx), EQR_OK);
        if (!more) continue; /* next epoch */
        short_batches += dd && 2 * n != BATCH;
        int64_t shape[4] = {n, 1, 8, 8};
        eqr_tensor *xt = eqr_tensor_wrap(ctx, x, 4, shape);
        eqr_tensor *loss = eqr_softmax_cross_entropy(ctx, tu_tiny_forward(ctx, &m, xt), y);
        assert_int_equal(eqr_trainer_step(t, loss, n, NULL), EQR_OK);
        s++;
    }
    if (dd) assert_true(short_batches > 0); /* the 18 / 19 shares were met */
    float *out = malloc(bytes);
    memcpy(out, eqr_param_data_block(ctx), bytes);
    free(x);
    free(y);
    eqr_batcher_free(&bt);
    eqr_dataset_free(&ds);
    eqr_trainer_destroy(t);
    eqr_optim_destroy(opt);
    eqr_dist_destroy(dd);
    tu_tiny_free(&m);
    eqr_ctx_destroy(ctx);
    return out;
}

static void test_two_ranks_match_one_process(void **state) {
    eqr_dist *world = *state;
    int rank = eqr_dist_rank(world);
    int64_t total, t2, t3;
    float *init_ref, *init_dist;
    float *ref = train(NULL, 7, 0, STEPS, 0, &total, &init_ref);
    /* rank 1 starts from other weights: the broadcast must replace them */
    float *dist = train(world, 7 + 100 * (uint64_t)rank, 7, STEPS, 0, &t2, &init_dist);
    float *again = train(world, 7 + 100 * (uint64_t)rank, 7, STEPS, 0, &t3, NULL);
    assert_true(total == t2 && total == t3);
    size_t bytes = (size_t)total * sizeof(float);
    assert_memory_equal(init_ref, init_dist, bytes);
    assert_memory_equal(dist, again, bytes); /* rerun on 2 ranks: bit-identical */

    /* the ranks hold the same parameters, bit for bit */
    eqr_ctx *ctx = tu_ctx(1);
    eqr_dist *d = eqr_dist_create(ctx, MPI_COMM_WORLD);
    assert_int_equal(eqr_dist_check_same(d, dist, bytes, "the trained parameters"), EQR_OK);

    double dd = 0, nn = 0, moved = 0;
    for (int64_t i = 0; i < total; i++) {
        double e = (double)dist[i] - ref[i];
        dd += e * e;
        nn += (double)ref[i] * ref[i];
        moved += ((double)ref[i] - init_ref[i]) * ((double)ref[i] - init_ref[i]);
    }
    double rel = sqrt(dd / nn);
    print_message("rank %d: %lld parameters, ||p_2ranks - p_1proc|| / ||p_1proc|| = %.3g "
                  "(training moved them by %.3g relative)\n",
                  rank, (long long)total, rel, sqrt(moved / nn));
    assert_true(sqrt(moved / nn) > 1e-2); /* the comparison is not of untrained models */
    /* Bound: the runs differ only in the order of float sums (a gradient
     * entry sums m = 4096 = 64 x 8 x 8 products in one process, two sums of
     * 2048 and one add over 2 ranks), so each step's gradients differ by
     * rounding errors of typical size sqrt(m) u relative (the statistical
     * form of gamma_m, whose worst case m u is never approached by
     * independent roundings). Adam's step lr m / sqrt(v) moves by at most
     * about twice that relative change of g times lr per entry, so after
     * STEPS steps the entries are apart by at most 2 STEPS lr sqrt(m) u,
     * taken relative to their rms size (~6e-6 here; measured ~6e-8). */
    const double lr = 0.01, m_sum = 4096.0;
    double rms = sqrt(nn / (double)total);
    double bound = 2.0 * STEPS * lr * sqrt(m_sum) * TU_U / rms;
    print_message("rank %d: bound %.3g (rms parameter %.3g)\n", rank, bound, rms);
    assert_true(rel <= bound);
    eqr_dist_destroy(d);
    eqr_ctx_destroy(ctx);
    free(ref);
    free(dist);
    free(again);
    free(init_ref);
    free(init_dist);
}

/* eqr_trainer_epoch with opts.next_batch = eqr_dist_next_batch takes the
 * steps of the hand-written loop over eqr_dist_batcher_next, bit for bit
 * (one epoch: 4 batches of 64 and one of 37). */
static void test_trainer_epoch_over_sampler(void **state) {
    eqr_dist *world = *state;
    uint64_t seed = 7 + 100 * (uint64_t)eqr_dist_rank(world);
    int64_t n1, n2;
    float *hand = train(world, seed, EQR_DIST_BUCKET_DEFAULT, 5, 0, &n1, NULL);
    float *epoch = train(world, seed, EQR_DIST_BUCKET_DEFAULT, 5, 1, &n2, NULL);
    assert_true(n1 == n2);
    assert_memory_equal(hand, epoch, (size_t)n1 * sizeof(float));
    free(hand);
    free(epoch);
}

/* One epoch's statistics through eqr_trainer_epoch: over the sampler with
 * reduce_sums = eqr_dist_sum (d != NULL) or in one process. */
static eqr_epoch_stats epoch_stats(eqr_dist *world, int dist) {
    eqr_ctx *ctx = tu_ctx(7);
    tu_tiny_model m;
    tu_tiny_build(ctx, &m, 0.2f);
    eqr_dist *d = dist ? eqr_dist_create(ctx, MPI_COMM_WORLD) : NULL;
    if (d) eqr_relax_set_reduce(m.r, eqr_dist_relax_reduce, d);
    eqr_optim_opts oo = {.kind = EQR_OPTIM_ADAM, .lr = 0.01f};
    eqr_optim *opt = eqr_optim_create(ctx, &oo);
    eqr_trainer_opts to = {.forward = tu_tiny_forward, .model = &m, .opt = opt, .relax = m.r,
                           .after_backward = d ? eqr_dist_after_backward : NULL,
                           .after_backward_user = d, .next_batch = d ? eqr_dist_next_batch : NULL,
                           .next_batch_user = d, .reduce_sums = d ? eqr_dist_sum : NULL,
                           .reduce_sums_user = d};
    eqr_trainer *t = eqr_trainer_create(ctx, &to);
    eqr_dataset ds;
    tu_tiny_data(&ds, NDATA, DATA_SEED);
    eqr_batcher bt;
    assert_int_equal(eqr_batcher_init(ctx, &bt, &ds, BATCH, 1, ORDER_SEED), EQR_OK);
    eqr_epoch_stats st;
    assert_int_equal(eqr_trainer_epoch(t, &bt, 1, &st), EQR_OK);
    (void)world;
    eqr_batcher_free(&bt);
    eqr_dataset_free(&ds);
    eqr_trainer_destroy(t);
    eqr_optim_destroy(opt);
    eqr_dist_destroy(d);
    tu_tiny_free(&m);
    eqr_ctx_destroy(ctx);
    return st;
}

/* eqr_dist_sum sums over ranks; with it the trainer's epoch statistics are
 * the global batches' (the same on both ranks, one process's to float
 * tolerance); eqr_dist_set_share refuses impossible shares. */
static void test_sum_share_epoch_stats(void **state) {
    eqr_dist *world = *state;
    int rank = eqr_dist_rank(world);
    eqr_ctx *ctx = tu_ctx(3);
    eqr_dist *d = eqr_dist_create(ctx, MPI_COMM_WORLD);
    double v[2] = {rank + 1.0, 10.0};
    assert_int_equal(eqr_dist_sum(ctx, d, v, 2), EQR_OK);
    assert_true(v[0] == 3.0 && v[1] == 20.0);
    tu_assert_error(ctx, eqr_dist_sum(ctx, NULL, v, 2), "user must be the eqr_dist");
    assert_int_equal(eqr_dist_set_share(d, 32, 64), EQR_OK);
    tu_assert_error(ctx, eqr_dist_set_share(d, 0, 64), "a share of 0 of a global batch of 64");
    tu_assert_error(ctx, eqr_dist_set_share(d, 1, 1), "on 2 ranks");
    eqr_dist_destroy(d);
    eqr_ctx_destroy(ctx);

    eqr_epoch_stats two = epoch_stats(world, 1), one = epoch_stats(world, 0);
    assert_int_equal(two.seen, NDATA);
    assert_int_equal(two.steps, one.steps);
    double both[3] = {two.loss, two.acc, two.penalty}, lo[3], hi[3];
    MPI_Allreduce(both, lo, 3, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(both, hi, 3, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    assert_memory_equal(lo, hi, sizeof lo); /* the same on both ranks */
    print_message("epoch loss 2 ranks %.9g, one process %.9g; acc %.4f / %.4f\n", two.loss,
                  one.loss, two.acc, one.acc);
    assert_true(fabs(two.loss - one.loss) <= 1e-5 * fabs(one.loss));
    assert_true(fabs(two.penalty - one.penalty) <= 1e-5 * fabs(one.penalty) + 1e-9);
    assert_true(two.acc == one.acc);
}

static void test_mismatch_refused(void **state) {
    eqr_dist *world = *state;
    int rank = eqr_dist_rank(world);
    eqr_ctx *ctx = tu_ctx(3);
    eqr_dist *d = eqr_dist_create(ctx, MPI_COMM_WORLD);
    assert_non_null(d);
    assert_int_equal(eqr_dist_num_ranks(d), 2);
    struct {
        int64_t batch;
        uint64_t seed;
    } cfg = {64, 21};
    assert_int_equal(eqr_dist_check_same(d, &cfg, sizeof cfg, "the settings"), EQR_OK);
    if (rank == 1) cfg.seed = 22;
    eqr_dist_check_same(d, &cfg, sizeof cfg, "the settings (batch, seed)");
    tu_assert_error(ctx, EQR_ERR_MISMATCH, "the settings (batch, seed) differs between the 2 ranks");

    /* a model with one parameter more on rank 1 */
    tu_tiny_model m;
    tu_tiny_build(ctx, &m, 0.2f);
    if (rank == 1) {
        int64_t s[1] = {3};
        assert_non_null(eqr_param_create(ctx, "extra", 1, s, 0));
    }
    eqr_dist_broadcast_params(d);
    tu_assert_error(ctx, EQR_ERR_MISMATCH, "the parameter store");

    /* a global batch of 1 cannot be shared by 2 ranks */
    eqr_dataset ds;
    tu_tiny_data(&ds, 5, 1);
    eqr_batcher bt;
    assert_int_equal(eqr_batcher_init(ctx, &bt, &ds, 1, 0, 0), EQR_OK);
    float x[64];
    int32_t y;
    int64_t n;
    assert_int_equal(eqr_dist_batcher_next(d, &bt, x, &y, &n), 0);
    tu_assert_error(ctx, EQR_ERR_ARG, "cannot be shared by 2 ranks");
    tu_assert_error(ctx, eqr_dist_set_bucket(d, 0), "need 1");
    eqr_batcher_free(&bt);
    eqr_dataset_free(&ds);
    tu_tiny_free(&m);
    eqr_dist_destroy(d);
    eqr_ctx_destroy(ctx);
}

static void test_sampler_shares(void **state) {
    eqr_dist *world = *state;
    int rank = eqr_dist_rank(world);
    eqr_ctx *ctx = tu_ctx(4);
    eqr_dist *d = eqr_dist_create(ctx, MPI_COMM_WORLD);
    eqr_dataset ds;
    tu_tiny_data(&ds, 11, 2);
    for (int64_t i = 0; i < ds.n; i++) ds.y[i] = (int32_t)i; /* labels name the samples */
    eqr_batcher a, b;
    assert_int_equal(eqr_batcher_init(ctx, &a, &ds, 4, 1, 9), EQR_OK);
    assert_int_equal(eqr_batcher_init(ctx, &b, &ds, 4, 1, 9), EQR_OK);
    int32_t ya[4], yb[4];
    int64_t na, nb, seen = 0;
    for (int e = 0; e < 2; e++) {
        while (eqr_batcher_next(&a, NULL, ya, &na)) {
            assert_int_equal(eqr_dist_batcher_next(d, &b, NULL, yb, &nb), 1);
            int64_t lo = na * rank / 2, hi = na * (rank + 1) / 2;
            assert_int_equal(nb, hi - lo);
            assert_memory_equal(yb, ya + lo, (size_t)nb * sizeof(int32_t));
            seen += nb;
        }
        assert_int_equal(eqr_dist_batcher_next(d, &b, NULL, yb, &nb), 0);
        assert_int_equal(b.epoch, a.epoch);
    }
    /* 11 = 4 + 4 + 3 per epoch: rank 0 gets 2 + 2 + 1, rank 1 2 + 2 + 2 */
    assert_int_equal(seen, rank == 0 ? 10 : 12);
    eqr_batcher_free(&a);
    eqr_batcher_free(&b);
    eqr_dataset_free(&ds);
    eqr_dist_destroy(d);
    eqr_ctx_destroy(ctx);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    eqr_ctx *ctx = tu_ctx(0);
    eqr_dist *world = eqr_dist_create(ctx, MPI_COMM_WORLD);
    if (!world || eqr_dist_num_ranks(world) != 2) {
        fprintf(stderr, "test_dist_train: run on 2 ranks (mpirun -np 2)\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(test_sampler_shares, world),
        cmocka_unit_test_prestate(test_two_ranks_match_one_process, world),
        cmocka_unit_test_prestate(test_trainer_epoch_over_sampler, world),
        cmocka_unit_test_prestate(test_mismatch_refused, world),
        cmocka_unit_test_prestate(test_sum_share_epoch_stats, world),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    eqr_dist_destroy(world);
    eqr_ctx_destroy(ctx);
    MPI_Finalize();
    return rc;
}
