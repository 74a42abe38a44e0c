/* equirelax data-parallel training over MPI (the optional library
 * equirelax_dist; the core library knows nothing of MPI).
 *
 * Every rank builds the same model in its own context; then
 *   eqr_dist_create          one per context, over a communicator;
 *   eqr_dist_check_same      refuses ranks whose settings differ;
 *   eqr_dist_broadcast_params  rank 0's parameters and buffers everywhere;
 *   eqr_dist_batcher_next    each rank's contiguous share of each global
 *                            batch of an eqr_batcher (global batch size);
 *   eqr_dist_next_batch      the same as eqr_trainer_opts.next_batch;
 *   eqr_dist_after_backward  as eqr_trainer_opts.after_backward: the
 *                            gradients averaged over ranks before clipping
 *                            and the optimizer, so every rank takes the same
 *                            step and the parameters stay identical;
 *   eqr_dist_sum             as eqr_trainer_opts.reduce_sums: the epoch
 *                            statistics of the global batches;
 *   eqr_dist_set_share       the share weights for a loop drawing its own
 *                            batches.
 *
 * Loss scaling: each rank's loss is the mean over its local share. With
 * equal shares (the global batch a multiple of the number of ranks) the
 * mean of the ranks' gradients is the gradient of the global batch mean.
 * With unequal shares (a short last batch) each rank's gradient is weighted
 * by its share's size over the global batch's, which is again the global
 * mean; the relaxation's defect penalty (weight form), the same on every
 * rank, keeps weight 1. Its activation-norm penalty, a function of the sum
 * over the batch, needs eqr_relax_set_reduce(relax, eqr_dist_relax_reduce,
 * d) to be that of the global batch. A global batch with fewer samples than
 * ranks is refused.
 *
 * Determinism: gradients are summed by MPI_Allreduce in fixed-size buckets
 * of the contiguous gradient block, so a rerun with the same number of
 * ranks (and the same MPI library and placement) is bit-identical; against
 * one process the result differs only by the order of float summation.
 *
 * Files: only rank 0 should write metrics, charts and checkpoints (pass
 * NULL paths on the other ranks, and the checkpoint with
 * eqr_run_opts.checkpoint_read_only for a resume); every rank computes the
 * same numbers. eqr_run_opts.ranks records the number of ranks in the
 * checkpoint; a resume on another number is refused.
 * Errors follow the library's rule: a status and a message on the context,
 * on every rank alike for the collective checks. MPI errors on the
 * library's own duplicate of the communicator are returned, not fatal. */
#ifndef EQUIRELAX_DIST_H
#define EQUIRELAX_DIST_H

#include <mpi.h>

#include "train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eqr_dist eqr_dist;

/* Gradient floats per all-reduce call unless eqr_dist_set_bucket says
 * otherwise (4 MiB). */
#define EQR_DIST_BUCKET_DEFAULT ((int64_t)1 << 20)

/* A data-parallel group over comm (MPI must be initialised; collective:
 * every rank of comm calls it). The library works on a duplicate of comm.
 * NULL on error (recorded). */
eqr_dist *eqr_dist_create(eqr_ctx *ctx, MPI_Comm comm);
/* Collective (frees the duplicate communicator). */
void eqr_dist_destroy(eqr_dist *d);
/* This process's rank and the number of ranks. */
int eqr_dist_rank(const eqr_dist *d);
int eqr_dist_num_ranks(const eqr_dist *d);
/* Floats per all-reduce / broadcast call (>= 1; the same on every rank). */
eqr_status eqr_dist_set_bucket(eqr_dist *d, int64_t floats);

/* Collective: EQR_ERR_MISMATCH on every rank, with a message naming what,
 * unless all ranks pass the same n bytes (compared through a 64-bit hash:
 * its minimum and maximum over ranks must agree). */
eqr_status eqr_dist_check_same(eqr_dist *d, const void *bytes, size_t n, const char *what);

/* Collective: checks that every rank's parameter store has the same layout
 * (names, shapes, flags, offsets), then copies rank 0's whole data block
 * (parameters and buffers, eqr_param_data_block) to every rank. */
eqr_status eqr_dist_broadcast_params(eqr_dist *d);

/* Collective: replaces each rank's gradient block (eqr_param_grad_block)
 * by the weighted mean over ranks (weights of the last
 * eqr_dist_batcher_next, else 1 / size), bucket by bucket. */
eqr_status eqr_dist_allreduce_grads(eqr_dist *d);

/* eqr_dist_allreduce_grads with the signature of
 * eqr_trainer_opts.after_backward (user: the eqr_dist). */
eqr_status eqr_dist_after_backward(eqr_ctx *ctx, void *user);

/* eqr_relax_reduce_fn for eqr_relax_set_reduce(relax, eqr_dist_relax_reduce,
 * d): sums *sum over ranks (MPI_Allreduce in double) and gives 1 / the
 * weight eqr_dist_allreduce_grads applies to this rank. */
eqr_status eqr_dist_relax_reduce(eqr_ctx *ctx, void *user, double *sum, double *inv_weight);

/* Collective: sums v[0..n) over ranks in place (MPI_Allreduce in double),
 * with the signature of eqr_trainer_opts.reduce_sums (user: the eqr_dist),
 * so eqr_trainer_epoch's loss and accuracy are the global batches'. */
eqr_status eqr_dist_sum(eqr_ctx *ctx, void *user, double *v, int n);

/* The distributed sampler. b is a batcher over the whole data set with the
 * global batch size, the same (seed, shuffle, position) on every rank.
 * Takes b's next global batch of k samples and copies this rank's
 * contiguous share, samples [k * rank / size, k * (rank + 1) / size) of it,
 * into x and y (room for ceil(b->batch / size) samples); *count gets the
 * share's size. Returns 1 while the epoch has batches, 0 at its end (b then
 * moves to the next epoch, as eqr_batcher_next) or on error (recorded:
 * a global batch smaller than the number of ranks). Records the share's
 * weight for eqr_dist_allreduce_grads. */
int eqr_dist_batcher_next(eqr_dist *d, eqr_batcher *b, float *x, int32_t *y, int64_t *count);

/* For a loop drawing its own batches (not from an eqr_batcher): this
 * rank's share local_n of a global batch of global_n samples, the weight
 * eqr_dist_allreduce_grads and eqr_dist_relax_reduce then apply (as
 * eqr_dist_batcher_next records it). The shares over ranks must sum to
 * global_n; EQR_ERR_ARG unless 1 <= local_n <= global_n and global_n >=
 * the number of ranks. */
eqr_status eqr_dist_set_share(eqr_dist *d, int64_t local_n, int64_t global_n);

/* eqr_dist_batcher_next with the signature of eqr_trainer_opts.next_batch
 * (user: the eqr_dist), so eqr_trainer_epoch and eqr_trainer_run train on
 * this rank's shares. */
int eqr_dist_next_batch(void *user, eqr_batcher *b, float *x, int32_t *y, int64_t *count);

#ifdef __cplusplus
}
#endif

#endif
