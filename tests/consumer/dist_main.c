/* Out-of-tree consumer of equirelax_dist (pkg-config equirelax_dist),
 * checked by scripts/check_install.sh under mpirun -np 2: every rank
 * builds one parameter from its own seed, rank 0's value is broadcast, and
 * an all-reduced gradient is the mean over ranks. */
#include <equirelax/dist.h>
#include <equirelax/equirelax.h>
#include <mpi.h>
#include <stdio.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank = 0, ok = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    eqr_ctx *ctx = eqr_ctx_create(&(eqr_ctx_opts){.seed = 1 + (uint64_t)rank});
    int64_t shape[1] = {1};
    eqr_tensor *w = ctx ? eqr_param_create(ctx, "w", 1, shape, 0) : NULL;
    eqr_dist *d = w ? eqr_dist_create(ctx, MPI_COMM_WORLD) : NULL;
    if (d) {
        w->data[0] = (float)(rank + 1); /* rank 0 holds 1 */
        eqr_tensor *loss = eqr_sum_all(ctx, eqr_scale(ctx, w, (float)(rank + 1)));
        if (eqr_dist_broadcast_params(d) == EQR_OK && loss && eqr_backward(ctx, loss) == EQR_OK &&
            eqr_dist_allreduce_grads(d) == EQR_OK) {
            const int n = eqr_dist_num_ranks(d);
            const float want = (float)(n + 1) / 2; /* mean of 1..n */
            ok = w->data[0] == 1.0f && w->grad && w->grad[0] == want;
        }
        if (!ok) fprintf(stderr, "rank %d: %s\n", rank, eqr_error_message(ctx));
        else if (rank == 0) printf("dist consumer OK on %d ranks\n", eqr_dist_num_ranks(d));
        eqr_dist_destroy(d);
    }
    eqr_ctx_destroy(ctx);
    MPI_Finalize();
    return ok ? 0 : 1;
}
