/* Data-parallel groups over MPI (dist.h): creation, the collective
 * configuration check, the broadcast of the parameters and the bucketed
 * all-reduce of the gradients. */
#include "dist/dist_internal.h"
#include "equirelax/param.h"

#include <stdlib.h>
#include <string.h>

eqr_status eqr__dist_mpi_fail(eqr_dist *d, const char *fn, const char *what, int rc) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "code %d", rc);
    return eqr__fail(d->ctx, EQR_ERR_STATE, "%s: %s failed on rank %d: %s", fn, what, d->rank,
                     msg);
}

eqr_dist *eqr_dist_create(eqr_ctx *ctx, MPI_Comm comm) {
    static const char *fn = "eqr_dist_create";
    if (!ctx) return NULL; /* collective: runs even with an error recorded */
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin) {
        eqr__fail(ctx, EQR_ERR_STATE, "%s: MPI is %s (call MPI_Init first)", fn,
                  fin ? "finalized" : "not initialised");
        return NULL;
    }
    if (comm == MPI_COMM_NULL) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: comm is MPI_COMM_NULL", fn);
        return NULL;
    }
    eqr_dist *d = eqr__calloc(ctx, fn, 1, sizeof *d);
    if (!d) return NULL;
    d->ctx = ctx;
    d->bucket = EQR_DIST_BUCKET_DEFAULT;
    d->comm = MPI_COMM_NULL;
    int rc = MPI_Comm_dup(comm, &d->comm);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(d->comm, &d->rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(d->comm, &d->size);
    if (rc != MPI_SUCCESS) {
        eqr__dist_mpi_fail(d, fn, "setting up the communicator", rc);
        eqr_dist_destroy(d);
        return NULL;
    }
    return d;
}

void eqr_dist_destroy(eqr_dist *d) {
    if (!d) return;
    if (d->comm != MPI_COMM_NULL) MPI_Comm_free(&d->comm);
    free(d);
}

int eqr_dist_rank(const eqr_dist *d) { return d ? d->rank : -1; }
int eqr_dist_num_ranks(const eqr_dist *d) { return d ? d->size : 0; }

eqr_status eqr_dist_set_bucket(eqr_dist *d, int64_t floats) {
    if (!d) return EQR_ERR_ARG;
    if (floats < 1 || floats > (int64_t)1 << 30)
        return eqr__fail(d->ctx, EQR_ERR_ARG,
                         "eqr_dist_set_bucket: %lld floats, need 1 .. 2^30", (long long)floats);
    d->bucket = floats;
    return EQR_OK;
}

/* ---- the configuration check: FNV-1a over the bytes, min = max over ranks */

static uint64_t fnv(uint64_t h, const void *bytes, size_t n) {
    const unsigned char *p = bytes;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ull;
    return h;
}
static const uint64_t FNV_START = 0xCBF29CE484222325ull;

/* Collective: EQR_ERR_MISMATCH on every rank unless all hold hash h. */
static eqr_status check_hash(eqr_dist *d, const char *fn, uint64_t h, const char *what) {
    /* one all-reduce: min of h and min of ~h (= ~max of h) */
    uint64_t v[2] = {h, ~h}, r[2];
    int rc = MPI_Allreduce(v, r, 2, MPI_UINT64_T, MPI_MIN, d->comm);
    if (rc != MPI_SUCCESS) return eqr__dist_mpi_fail(d, fn, "MPI_Allreduce", rc);
    uint64_t lo = r[0], hi = ~r[1];
    if (lo == hi) return EQR_OK;
    return eqr__fail(d->ctx, EQR_ERR_MISMATCH,
                     "%s: %s differs between the %d ranks (hash %016llx on rank %d; the ranks "
                     "hold %016llx .. %016llx): start every rank with the same settings",
                     fn, what, d->size, (unsigned long long)h, d->rank, (unsigned long long)lo,
                     (unsigned long long)hi);
}

eqr_status eqr_dist_check_same(eqr_dist *d, const void *bytes, size_t n, const char *what) {
    static const char *fn = "eqr_dist_check_same";
    if (!d) return EQR_ERR_ARG;
    /* a bad argument on one rank must not leave the others waiting: every
     * rank still joins the all-reduce, with a hash no other rank can hold */
    int bad = (!bytes && n) || !what;
    uint64_t h = bad ? (uint64_t)d->rank * 0x9E3779B97F4A7C15ull + 1
                     : fnv(fnv(FNV_START, &n, sizeof n), bytes, n);
    eqr_status st = check_hash(d, fn, h, what ? what : "(unnamed)");
    if (bad)
        return eqr__fail(d->ctx, EQR_ERR_ARG, "%s: bytes is NULL with n = %zu or what is NULL",
                         fn, n);
    return st;
}

/* ---- parameters and gradients */

/* Hash of the store's layout: what must agree before blocks are exchanged. */
static uint64_t layout_hash(eqr_ctx *ctx) {
    int np = eqr_param_num_tensors(ctx);
    int64_t total = eqr_param_num_scalars(ctx);
    uint64_t h = fnv(fnv(FNV_START, &np, sizeof np), &total, sizeof total);
    for (int i = 0; i < np; i++) {
        const char *name = eqr_param_name(ctx, i);
        const eqr_tensor *p = eqr_param_at(ctx, i);
        unsigned fl = eqr_param_flags(ctx, i);
        int64_t off = eqr_param_offset(ctx, i);
        h = fnv(h, name, strlen(name) + 1);
        h = fnv(h, &p->ndim, sizeof p->ndim);
        h = fnv(h, p->shape, (size_t)p->ndim * sizeof p->shape[0]);
        h = fnv(h, &fl, sizeof fl);
        h = fnv(h, &off, sizeof off);
    }
    return h;
}

eqr_status eqr_dist_broadcast_params(eqr_dist *d) {
    static const char *fn = "eqr_dist_broadcast_params";
    if (!d) return EQR_ERR_ARG;
    eqr_ctx *ctx = d->ctx;
    if (check_hash(d, fn, layout_hash(ctx), "the parameter store (names, shapes, flags)") !=
        EQR_OK)
        return ctx->status;
    int64_t total = eqr_param_num_scalars(ctx);
    float *blk = eqr_param_data_block(ctx);
    for (int64_t i = 0; i < total; i += d->bucket) {
        int n = (int)(total - i < d->bucket ? total - i : d->bucket);
        int rc = MPI_Bcast(blk + i, n, MPI_FLOAT, 0, d->comm);
        if (rc != MPI_SUCCESS) return eqr__dist_mpi_fail(d, fn, "MPI_Bcast", rc);
    }
    return EQR_OK;
}

eqr_status eqr_dist_allreduce_grads(eqr_dist *d) {
    static const char *fn = "eqr_dist_allreduce_grads";
    if (!d) return EQR_ERR_ARG;
    eqr_ctx *ctx = d->ctx;
    int64_t total = eqr_param_num_scalars(ctx);
    float *g = eqr_param_grad_block(ctx);
    if (total > 0 && !g)
        return eqr__fail(ctx, EQR_ERR_STATE, "%s: the store has no gradient block", fn);
    /* weight n_r / k as size * n_r / k times the plain mean: exactly 1 with
     * equal shares, so then no multiply touches the gradients */
    const int64_t nr = d->local_n, k = d->global_n;
    const int weighted = k > 0 && nr * d->size != k;
    const float w = weighted ? (float)((double)nr * d->size / (double)k) : 1.0f; /* n_r N / k */
    const float inv = 1.0f / (float)d->size;
    for (int64_t i = 0; i < total; i += d->bucket) {
        int n = (int)(total - i < d->bucket ? total - i : d->bucket);
        float *b = g + i;
        if (weighted)
            for (int j = 0; j < n; j++) b[j] *= w;
        int rc = MPI_Allreduce(MPI_IN_PLACE, b, n, MPI_FLOAT, MPI_SUM, d->comm);
        if (rc != MPI_SUCCESS) return eqr__dist_mpi_fail(d, fn, "MPI_Allreduce", rc);
        for (int j = 0; j < n; j++) b[j] *= inv;
    }
    return EQR_OK;
}

eqr_status eqr_dist_after_backward(eqr_ctx *ctx, void *user) {
    eqr_dist *d = user;
    if (!d || d->ctx != ctx)
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "eqr_dist_after_backward: user must be the eqr_dist of this context");
    return eqr_dist_allreduce_grads(d);
}

eqr_status eqr_dist_relax_reduce(eqr_ctx *ctx, void *user, double *sum, double *inv_weight) {
    static const char *fn = "eqr_dist_relax_reduce";
    eqr_dist *d = user;
    if (!d || d->ctx != ctx)
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: user must be the eqr_dist of this context", fn);
    int rc = MPI_Allreduce(MPI_IN_PLACE, sum, 1, MPI_DOUBLE, MPI_SUM, d->comm);
    if (rc != MPI_SUCCESS) return eqr__dist_mpi_fail(d, fn, "MPI_Allreduce", rc);
    /* the weight of eqr_dist_allreduce_grads: n_r / k, else 1 / size */
    *inv_weight = d->global_n > 0 && d->local_n > 0 ? (double)d->global_n / (double)d->local_n
                                                    : (double)d->size;
    return EQR_OK;
}

eqr_status eqr_dist_sum(eqr_ctx *ctx, void *user, double *v, int n) {
    static const char *fn = "eqr_dist_sum";
    eqr_dist *d = user;
    if (!d || d->ctx != ctx || n < 0 || (n > 0 && !v))
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "%s: user must be the eqr_dist of this context, v n >= 0 doubles", fn);
    if (n == 0) return EQR_OK;
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, d->comm);
    if (rc != MPI_SUCCESS) return eqr__dist_mpi_fail(d, fn, "MPI_Allreduce", rc);
    return EQR_OK;
}
