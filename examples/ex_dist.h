/* Data-parallel training in the examples (docs/distributed.md): a program
 * started by mpirun with more than one process trains on every rank, each
 * on its share of the same global batches (equirelax_dist), and rank 0
 * alone prints and writes files. Started any other way, or built without
 * MPI (no equirelax_dist; then EX_HAVE_DIST is not defined), it is one
 * process and these calls do nothing.
 *
 * Failures: an error one rank meets is printed by it ("<program>: rank
 * r/N: ...") and ends the job (MPI_Abort: mpirun stops the other ranks);
 * an error every rank meets is printed by rank 0 (the others wait before
 * theirs). Collective checks (ex_dist_same) end every rank cleanly with
 * rank 0's message. Checkpoints are written by rank 0 atomically, so the
 * last one stays intact whichever rank fails. */
#ifndef EX_DIST_H
#define EX_DIST_H

#include "example_common.h"

/* First thing in main: when launched by mpirun (Open MPI's or a PMI
 * launcher's environment) with more than one process, MPI_Init and the
 * rank-aware messages and exits of ex_set_rank. Returns the number of
 * processes (1: a plain run). */
int ex_dist_init(int *argc, char ***argv);
/* The data-parallel group of ctx (after the model is built; dies on an
 * error). Nothing with one process. */
void ex_dist_begin(eqr_ctx *ctx);
/* Collective: unless every rank passes the same n bytes, rank 0 prints
 * "<program>: <what> differs between the N ranks ..." and every rank
 * exits with status. */
void ex_dist_same(const void *bytes, size_t n, const char *what, int status);
/* ex_dist_same of a file's contents (a missing file counts as one
 * content): e.g. the checkpoint a resume reads on every node. */
void ex_dist_same_file(const char *path, const char *what, int status);
/* Rank 0's parameters and buffers on every rank. */
void ex_dist_broadcast(void);
/* Refuse (ex_bad_usage, exit 2) a --batch of batch on n training samples
 * that leaves a global batch, the short last one too, with fewer samples
 * than ranks. Nothing with one process. */
void ex_dist_check_batches(int64_t batch, int64_t n);
/* Before training, collectively: the ranks agree on the settings (a hash of
 * the flags; else exit 2), on the data (a hash; data_what names it in the
 * message; else exit 1) and, with resume_from (NULL: not resuming), on the
 * checkpoint file a resume reads (exit 1); then ex_dist_broadcast. */
void ex_dist_agree(uint64_t settings, uint64_t data, const char *data_what,
                   const char *resume_from);
/* The trainer's hooks: this rank's share of each global batch, gradients
 * averaged over ranks after backward, epoch statistics summed, the
 * relaxation's activation-norm penalty of the global batch (relax may be
 * NULL) and no progress output on ranks other than 0. */
void ex_dist_trainer(eqr_trainer_opts *to, eqr_relax *relax);
/* For a program drawing its own batches (then eqr_trainer_step with the
 * hooks of ex_dist_trainer): this rank's contiguous share [*lo, *lo + *n)
 * of a global batch of k samples (all of it with one process; dies if
 * k < ranks), recorded as the weight of the next gradient all-reduce. */
void ex_dist_share(int64_t k, int64_t *lo, int64_t *n);
/* v[0..n) summed over ranks in place. */
void ex_dist_sum(double *v, int n);
/* Ranks other than 0 send their stdout to /dev/null (rank 0 prints). */
void ex_dist_rank0_stdout(void);
/* Rank 0's note when mpirun stops it because another rank failed (e.g.
 * where the last checkpoint is); printf-style. Nothing with one process. */
void ex_dist_note(const char *fmt, ...) EX_PRINTF(1, 2);
/* ex_dist_note that the checkpoint path, saved after epoch, is intact. */
void ex_dist_note_checkpoint(const char *path, int64_t epoch);
/* End of main: frees the group and finalizes MPI. */
void ex_dist_end(void);
/* 64-bit FNV-1a style hash of n bytes continuing h (start with 0). */
uint64_t ex_hash(uint64_t h, const void *bytes, size_t n);

#endif
