/* Internals shared by the dist layer's files. Not installed. */
#ifndef EQR_DIST_INTERNAL_H
#define EQR_DIST_INTERNAL_H

#include "core/internal.h"
#include "equirelax/dist.h"

struct eqr_dist {
    eqr_ctx *ctx;
    MPI_Comm comm;  /* our duplicate, errors returned */
    int rank, size;
    int64_t bucket;
    /* the share of the last eqr_dist_batcher_next: local and global sizes
     * (0: none yet, equal weights) */
    int64_t local_n, global_n;
};

/* Record an MPI error rc of the call named what in fn. */
eqr_status eqr__dist_mpi_fail(eqr_dist *d, const char *fn, const char *what, int rc);

#endif
