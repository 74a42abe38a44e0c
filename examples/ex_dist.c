/* Data-parallel glue of the examples; see ex_dist.h. */
#define _POSIX_C_SOURCE 200809L
#include "ex_dist.h"

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef EX_HAVE_DIST
#include <equirelax/dist.h>
#endif

uint64_t ex_hash(uint64_t h, const void *bytes, size_t n) {
    const unsigned char *p = bytes;
    if (!h) h = 0xCBF29CE484222325ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { /* a word at a time: data sets are large */
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001B3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ull;
    return h;
}

void ex_dist_check_batches(int64_t batch, int64_t n) {
    const int nranks = ex_nranks();
    const int64_t last = n % batch;
    if (nranks > 1 && (batch < nranks || (last > 0 && last < nranks)))
        ex_bad_usage("--batch %lld on %lld training samples leaves a global batch of %lld, "
                     "fewer than the %d ranks: change --batch or --train-size, or use fewer "
                     "ranks", (long long)batch, (long long)n,
                     (long long)(batch < nranks ? batch : last), nranks);
}

void ex_dist_agree(uint64_t settings, uint64_t data, const char *data_what,
                   const char *resume_from) {
    ex_dist_same(&settings, sizeof settings, "the training configuration (command-line flags)", 2);
    ex_dist_same(&data, sizeof data, data_what, 1);
    if (resume_from)
        ex_dist_same_file(resume_from, "the checkpoint file to resume from (missing or different "
                          "on some node: it must be the same file on every node, e.g. on a "
                          "shared file system)", 1);
    ex_dist_broadcast();
}

static void no_progress(void *user, const eqr_progress *p) {
    (void)user;
    (void)p;
}

/* What a rank stopped by a signal says (async-signal-safe: written by one
 * write(2) of a buffer prepared beforehand). */
static char term_msg[1024];
static size_t term_len;
static char term_note[600];

static void set_term_msg(void) {
    int k = snprintf(term_msg, sizeof term_msg,
                     "%s: rank %d/%d: terminated (another rank failed, see its message or "
                     "mpirun's, or the job was stopped)%s%s\n",
                     ex_prog(), ex_rank(), ex_nranks(), term_note[0] ? "; " : "", term_note);
    term_len = k < 0 ? 0 : (size_t)k < sizeof term_msg ? (size_t)k : sizeof term_msg - 1;
}

static void on_term(int sig) {
    (void)sig;
    if (term_len) {
        ssize_t w = write(STDERR_FILENO, term_msg, term_len);
        (void)w;
    }
    _exit(1);
}

void ex_dist_note(const char *fmt, ...) {
    if (ex_nranks() <= 1) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(term_note, sizeof term_note, fmt, ap);
    va_end(ap);
    sigset_t blk, old;
    sigemptyset(&blk);
    sigaddset(&blk, SIGTERM);
    sigprocmask(SIG_BLOCK, &blk, &old);
    set_term_msg();
    sigprocmask(SIG_SETMASK, &old, NULL);
}

void ex_dist_note_checkpoint(const char *path, int64_t epoch) {
    ex_dist_note("the last checkpoint, %s after epoch %lld, is intact: rerun with --resume to "
                 "continue", path, (long long)epoch);
}

#ifdef EX_HAVE_DIST

static eqr_dist *grp;
static eqr_ctx *grp_ctx;
static int agreed; /* the exit is one every rank takes (a collective check) */

static void dist_exit(int status) {
    if (status == 0 || agreed) {
        eqr_dist_destroy(grp);
        grp = NULL;
        MPI_Finalize();
        return; /* ex_exit exits */
    }
    MPI_Abort(MPI_COMM_WORLD, status);
}

int ex_dist_init(int *argc, char ***argv) {
    const char *s = getenv("OMPI_COMM_WORLD_SIZE");
    if (!s) s = getenv("PMI_SIZE");
    if (!s || atoi(s) <= 1) return 1;
    int rank = 0, size = 1;
    if (*argc > 0) ex_set_prog((*argv)[0]);
    if (MPI_Init(argc, argv) != MPI_SUCCESS) ex_die("MPI_Init failed");
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    ex_set_rank(rank, size, dist_exit);
    /* mpirun stops the other ranks with SIGTERM when one fails: rank 0
     * says so (and where the last checkpoint is) */
    if (rank == 0) {
        set_term_msg();
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_term;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
    }
    return size;
}

void ex_dist_begin(eqr_ctx *ctx) {
    if (ex_nranks() <= 1) return;
    grp_ctx = ctx;
    grp = eqr_dist_create(ctx, MPI_COMM_WORLD);
    if (!grp) ex_die_ctx(ctx, "setting up data-parallel training");
}

void ex_dist_same(const void *bytes, size_t n, const char *what, int status) {
    if (!grp) return;
    if (eqr_dist_check_same(grp, bytes, n, what) == EQR_OK) return;
    if (eqr_error_status(grp_ctx) == EQR_ERR_MISMATCH) {
        if (ex_rank() == 0) fprintf(stderr, "%s: %s\n", ex_prog(), eqr_error_message(grp_ctx));
        agreed = 1;
        ex_exit(status);
    }
    ex_die_ctx(grp_ctx, "checking the ranks agree");
}

void ex_dist_same_file(const char *path, const char *what, int status) {
    if (!grp) return;
    uint64_t h = 0x6d697373696e67ull; /* "missing" */
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (f) {
        unsigned char buf[1 << 16];
        size_t k;
        h = 0;
        while ((k = fread(buf, 1, sizeof buf, f)) > 0) h = ex_hash(h, buf, k);
        fclose(f);
    }
    ex_dist_same(&h, sizeof h, what, status);
}

void ex_dist_broadcast(void) {
    if (grp && eqr_dist_broadcast_params(grp) != EQR_OK)
        ex_die_ctx(grp_ctx, "broadcasting the initial parameters");
}

void ex_dist_share(int64_t k, int64_t *lo, int64_t *n) {
    const int64_t r = ex_rank(), N = ex_nranks();
    *lo = k * r / N;
    *n = k * (r + 1) / N - *lo;
    if (grp && eqr_dist_set_share(grp, *n, k) != EQR_OK) ex_die_ctx(grp_ctx, "sharing a batch");
}

void ex_dist_sum(double *v, int n) {
    if (grp && eqr_dist_sum(grp_ctx, grp, v, n) != EQR_OK)
        ex_die_ctx(grp_ctx, "summing over ranks");
}

void ex_dist_rank0_stdout(void) {
    if (ex_nranks() > 1 && ex_rank() != 0 && !freopen("/dev/null", "w", stdout))
        ex_die("cannot send rank %d's stdout to /dev/null", ex_rank());
}

void ex_dist_trainer(eqr_trainer_opts *to, eqr_relax *relax) {
    if (!grp) return;
    to->next_batch = eqr_dist_next_batch;
    to->next_batch_user = grp;
    to->after_backward = eqr_dist_after_backward;
    to->after_backward_user = grp;
    to->reduce_sums = eqr_dist_sum;
    to->reduce_sums_user = grp;
    if (relax) eqr_relax_set_reduce(relax, eqr_dist_relax_reduce, grp);
    if (ex_rank() != 0) {
        to->progress = no_progress;
        to->progress_user = NULL;
    }
}

void ex_dist_end(void) {
    if (ex_nranks() <= 1) return;
    eqr_dist_destroy(grp);
    grp = NULL;
    MPI_Finalize();
}

#else /* built without MPI: one process */

int ex_dist_init(int *argc, char ***argv) {
    /* N copies of one process would each train and write the same files */
    const char *s = getenv("OMPI_COMM_WORLD_SIZE");
    if (!s) s = getenv("PMI_SIZE");
    if (s && atoi(s) > 1) {
        if (*argc > 0) ex_set_prog((*argv)[0]);
        ex_die("started by mpirun with %s processes, but built without MPI (no "
               "equirelax_dist): install MPI and rebuild, or run one process", s);
    }
    return 1;
}
void ex_dist_begin(eqr_ctx *ctx) { (void)ctx; }
void ex_dist_same(const void *bytes, size_t n, const char *what, int status) {
    (void)bytes, (void)n, (void)what, (void)status;
}
void ex_dist_same_file(const char *path, const char *what, int status) {
    (void)path, (void)what, (void)status;
}
void ex_dist_broadcast(void) {}
void ex_dist_share(int64_t k, int64_t *lo, int64_t *n) {
    *lo = 0;
    *n = k;
}
void ex_dist_sum(double *v, int n) { (void)v, (void)n; }
void ex_dist_rank0_stdout(void) {}
void ex_dist_trainer(eqr_trainer_opts *to, eqr_relax *relax) {
    (void)to, (void)relax, (void)no_progress;
}
void ex_dist_end(void) { (void)on_term; }

#endif
