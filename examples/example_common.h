/* Helpers shared by the example trainers: command-line flags, fatal errors,
 * Fashion-MNIST loading, the training epoch and evaluation loops, progress
 * display and timing. Built as a small static library next to the examples;
 * like them it uses only the public equirelax API.
 *
 * Errors end the program the way the examples document it: a bad command
 * line exits with status 2 and the usage on stderr, a runtime error exits
 * with status 1 and "<program>: <message>" on stderr. */
#ifndef EXAMPLE_COMMON_H
#define EXAMPLE_COMMON_H

#include <equirelax/equirelax.h>

#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define EX_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define EX_PRINTF(f, a)
#endif

/* ---- command line ---- */

typedef enum ex_flag_kind {
    EX_INT,    /* int64_t in [min, max] */
    EX_U64,    /* uint64_t in [min, max] (min >= 0) */
    EX_FLOAT,  /* finite float in [fmin, fmax], or (fmin, fmax] with fmin_open */
    EX_STR,    /* non-empty string (points into argv) */
    EX_SWITCH  /* int set to 1; takes no value */
} ex_flag_kind;

/* One flag; a program describes its flags as an array ended by {0}. The
 * usage lists them in array order, then --help (handled by the parser). */
typedef struct ex_flag {
    const char *name;  /* "--epochs" */
    const char *arg;   /* placeholder in the usage ("N", "DIR"); NULL for a switch */
    ex_flag_kind kind;
    void *dst;         /* receives the value; type given by kind */
    int64_t min, max;
    float fmin, fmax;
    int fmin_open;
    const char *help;  /* one line, including the default */
} ex_flag;

/* Table entries; the conditional expressions make the compiler check the
 * type of dst. */
#define EX_FLAG_INT(name, dst, lo, hi, help) \
    {(name), "N", EX_INT, (1 ? (dst) : (int64_t *)0), (lo), (hi), 0, 0, 0, (help)}
#define EX_FLAG_U64(name, dst, lo, hi, help) \
    {(name), "N", EX_U64, (1 ? (dst) : (uint64_t *)0), (lo), (hi), 0, 0, 0, (help)}
#define EX_FLAG_FLOAT(name, dst, lo, hi, help) \
    {(name), "F", EX_FLOAT, (1 ? (dst) : (float *)0), 0, 0, (lo), (hi), 0, (help)}
/* Like EX_FLAG_FLOAT with lo itself excluded. */
#define EX_FLAG_FLOAT_ABOVE(name, dst, lo, hi, help) \
    {(name), "F", EX_FLOAT, (1 ? (dst) : (float *)0), 0, 0, (lo), (hi), 1, (help)}
#define EX_FLAG_STR(name, arg, dst, help) \
    {(name), (arg), EX_STR, (1 ? (dst) : (const char **)0), 0, 0, 0, 0, 0, (help)}
#define EX_FLAG_SWITCH(name, dst, help) \
    {(name), NULL, EX_SWITCH, (1 ? (dst) : (int *)0), 0, 0, 0, 0, 0, (help)}

/* The flags the examples share, spelled, ranged and explained once (one
 * vocabulary); D is the default's text. */
#define EX_FLAG_EPOCHS(dst, D) EX_FLAG_INT("--epochs", dst, 1, 1000000, "training epochs (default " D ")")
#define EX_FLAG_BATCH(dst, D) EX_FLAG_INT("--batch", dst, 1, 100000, "batch size (default " D ")")
/* OPT: the optimizer, e.g. "Adam" */
#define EX_FLAG_LR(dst, OPT, D) \
    EX_FLAG_FLOAT_ABOVE("--lr", dst, 0.0f, 10.0f, OPT " learning rate (default " D ")")
/* decoupled (AdamW) weight decay; 0 keeps plain Adam */
#define EX_FLAG_WD(dst, D) \
    EX_FLAG_FLOAT("--wd", dst, 0.0f, 1.0f, "decoupled (AdamW) weight decay (default " D ")")
#define EX_FLAG_LR_SCHEDULE(dst, D) \
    EX_FLAG_STR("--lr-schedule", "S", dst, "constant | cosine (decay to 0 over training) (default " D ")")
#define EX_FLAG_THREADS(dst, D) EX_FLAG_INT("--threads", dst, 1, 256, "worker threads (default " D ")")
/* WHAT: what the seed drives, e.g. "initialisation and shuffling" */
#define EX_FLAG_SEED(dst, WHAT) EX_FLAG_U64("--seed", dst, 0, INT64_MAX, "seed of " WHAT " (default 1)")
/* WHAT: e.g. "training images" */
#define EX_FLAG_TRAIN_SIZE(dst, WHAT, D) \
    EX_FLAG_INT("--train-size", dst, 1, INT64_MAX, "train on the first N " WHAT " (default " D ")")
#define EX_FLAG_TEST_SIZE(dst) \
    EX_FLAG_INT("--test-size", dst, 1, INT64_MAX, "evaluate on the first N test images (default all)")
/* WHEN: e.g. "per-epoch" */
#define EX_FLAG_EQUIV_IMAGES(dst, WHEN, D) \
    EX_FLAG_INT("--equiv-images", dst, 0, INT64_MAX, \
                "test images of the " WHEN " invariance measurement (default " D ")")
#define EX_FLAG_DATA_FMNIST(dst) \
    EX_FLAG_STR("--data", "DIR", dst, "Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)")
/* the run: WHAT the checkpoint holds */
#define EX_FLAG_CHECKPOINT(dst, WHAT) \
    EX_FLAG_STR("--checkpoint", "FILE", dst, "save the run after every epoch (" WHAT ")")
#define EX_FLAG_RESUME(dst) \
    EX_FLAG_SWITCH("--resume", dst, "continue from --checkpoint FILE if it exists (same settings required)")
#define EX_FLAG_STOP_AFTER(dst) \
    EX_FLAG_INT("--stop-after", dst, 1, 1000000, \
                "exit after epoch N without projecting, as if interrupted (resume tests)")
#define EX_FLAG_METRICS(dst) EX_FLAG_STR("--metrics", "FILE", dst, "write per-epoch metrics as CSV")
/* WHAT: the curves drawn */
#define EX_FLAG_PLOT(dst, WHAT) EX_FLAG_STR("--plot", "FILE", dst, "write an SVG of " WHAT " over epochs")
/* relaxation; KINDS: the --relax values beyond off */
#define EX_FLAG_RELAX(dst, D) \
    EX_FLAG_STR("--relax", "KIND", dst, "off | triangle | linear | cosine | constant | early | late: " \
                "strict, or theta's schedule per step (0 at the end but for constant); early and " \
                "late are schedule.h presets (warm-up, cosine to 0 at half / 0.9 of the steps) " \
                "(default " D ")")
#define EX_FLAG_THETA_MAX(dst) \
    EX_FLAG_FLOAT("--theta-max", dst, 0.0f, 1e6f, "peak (triangle) or start value of theta (default 1)")
#define EX_FLAG_ADAPTIVE(dst) \
    EX_FLAG_SWITCH("--adaptive", dst, "adaptive theta (relax.h opts.adaptive, as ACE): per-layer " \
                   "learnable thetas from --theta-max, held to |theta| <= the --relax schedule's " \
                   "value by Lagrange multipliers (use a decaying schedule: linear or cosine)")
/* NOTE: where it applies, e.g. " (vn only)" */
#define EX_FLAG_ORTHOGONAL(dst, NOTE) \
    EX_FLAG_SWITCH("--orthogonal", dst, "orthogonal relaxation (relax.h opts.orthogonal): after " \
                   "every step the equivariant part of each W_r moves into the layer's weights, " \
                   "so annealing theta removes only the non-equivariant part" NOTE)
#define EX_FLAG_WR_SCALE(dst) \
    EX_FLAG_FLOAT_ABOVE("--wr-scale", dst, 0.0f, 1e6f, "the term is theta * wr_scale * W_r x " \
                        "(relax.h opts.wr_scale): with Adam, W_r's effect learns wr_scale times " \
                        "faster (default 1)")
#define EX_FLAG_LAMBDA_DEFECT(dst) \
    EX_FLAG_FLOAT("--lambda-defect", dst, 0.0f, 1e6f, \
                  "weight of the equivariance-defect (Lie-derivative) penalty ssqrt(LD) (default 0.01)")
#define EX_FLAG_LAMBDA_NORM(dst) \
    EX_FLAG_FLOAT("--lambda-norm", dst, 0.0f, 1e6f, \
                  "weight of the activation-norm penalty ssqrt(N) (default 0.01)")
#define EX_FLAG_PENALTY_GRAD(dst) \
    EX_FLAG_STR("--penalty-grad", "G", dst, "detached | full: penalties on the detached input " \
                "(the paper; W_r only) or with their gradient into the earlier layers too " \
                "(default detached)")
#define EX_FLAG_PROJECTION(dst, D) \
    EX_FLAG_STR("--projection", "P", dst, "drop | fold: projection at the end of a relaxed run " \
                "(default " D ")")

/* Parse "--flag value", "--flag=value" and switches into the flags' dst
 * (flags not given keep their values: set the defaults first). --help
 * prints the usage on stdout and exits 0; anything wrong exits 2. Also sets
 * the program name of all messages: the base name of argv[0], or
 * default_name without one. */
void ex_parse_args(const char *default_name, const ex_flag *flags, int argc, char **argv);
/* "usage: <program> [options]" and one line per flag, to f. */
void ex_usage(const ex_flag *flags, FILE *f);
/* "<program>: <message>" and the usage on stderr, exit 2 (for checks that
 * involve several flags, after ex_parse_args). */
_Noreturn void ex_usage_error(const ex_flag *flags, const char *fmt, ...) EX_PRINTF(2, 3);
/* "<program>: <message>" and a pointer to --help on stderr, exit 2: a flag
 * value that only the loaded data shows to be wrong (e.g. too few classes). */
_Noreturn void ex_bad_usage(const char *fmt, ...) EX_PRINTF(1, 2);

/* The flags the relaxed examples share. --relax: "off" gives -1, otherwise
 * the theta schedule kind (triangle, linear, cosine, constant);
 * --projection: drop | fold. A bad value is a usage error (exit status 2). */
/* --relax: -1 for off, an eqr_sched_kind, or one of the presets of
 * eqr_schedule_theta_preset below (schedule.h). */
enum { EX_THETA_EARLY = 100, EX_THETA_LATE = 101 };
int ex_relax_kind(const ex_flag *flags, const char *value);
/* The index of value in names (ended by NULL), the choices of flag; else a
 * usage error "bad value '<value>' for <flag>: expected a, b or c". */
int ex_choice(const ex_flag *flags, const char *flag, const char *value,
              const char *const *names);
eqr_project_mode ex_projection(const ex_flag *flags, const char *value);
/* --penalty-grad: detached (the paper: penalties shape W_r only) | full. */
eqr_penalty_grad ex_penalty_grad(const ex_flag *flags, const char *value);

/* ---- runtime errors and timing ---- */

/* A data-parallel run (ex_dist.h): this process's rank of size. Messages
 * then read "<program>: rank r/N: ..." (ranks other than 0 wait 0.3 s
 * before theirs, so an error all ranks meet is told by rank 0 first), the
 * usage is printed by rank 0 only, and every exit goes through exit_fn
 * (e.g. MPI_Abort for a failure, MPI_Finalize for status 0). */
void ex_set_rank(int rank, int size, void (*exit_fn)(int status));
int ex_rank(void);   /* 0 outside a data-parallel run */
int ex_nranks(void); /* 1 outside a data-parallel run */
/* Flush stdout and stderr and end the process with status (through the
 * exit_fn of ex_set_rank if set). */
_Noreturn void ex_exit(int status);

const char *ex_prog(void);
/* The program name of the messages: the base name of argv0 (NULL or "":
 * unchanged). ex_parse_args sets it too. */
void ex_set_prog(const char *argv0);
/* Refuse (as a usage error, exit 2) an output path given to flag that could
 * not be written: a directory or other non-file, a read-only file, or a
 * parent directory that is missing or not writable. Checked before any
 * work so a bad path never costs an epoch; creates and changes nothing
 * (the library's eqr_path_writable, in the flag's words). NULL (flag not
 * given) passes, and so does every path on the ranks other than 0 of a
 * data-parallel run (they write nothing; the path may not exist there). */
void ex_check_output(const ex_flag *flags, const char *flag, const char *path);
/* The checkpoint flags of the trainers: --resume needs --checkpoint, the
 * --stop-after epoch must be within --epochs (usage errors otherwise), and
 * the checkpoint path must be writable (ex_check_output). */
void ex_check_checkpoint_flags(const ex_flag *flags, const char *checkpoint, int resume,
                               int64_t stop_after, int64_t epochs);
/* "<program>: <message>" on stderr, exit 1. */
_Noreturn void ex_die(const char *fmt, ...) EX_PRINTF(1, 2);
/* "<program>: <what>: <context error message>" on stderr, exit 1. */
_Noreturn void ex_die_ctx(eqr_ctx *ctx, const char *what);

/* 64-bit FNV-1a of the string s: the examples' hash of the settings a
 * checkpoint records. */
uint64_t ex_fnv1a(const char *s);

/* Monotonic clock in seconds. */
double ex_now(void);
/* s rounded to whole seconds as "m:ss", or "h:mm:ss" from an hour on. */
void ex_fmt_dur(char *buf, size_t n, double s);

/* ---- setup ---- */

/* Context with the given seed and worker threads; dies when out of memory. */
eqr_ctx *ex_ctx_create(uint64_t seed, int64_t threads);
/* Both splits of an IDX image dataset in Fashion-MNIST's layout from dir
 * (NULL = the default directory), any counts; each cut to its first limit
 * images when limit > 0. Dies unless both splits have the same image size,
 * side x side when side > 0, and at most max_classes classes when
 * max_classes > 0 (both splits get the larger class count). */
void ex_load_fashion_mnist(eqr_ctx *ctx, const char *dir, int64_t train_limit,
                           int64_t test_limit, int side, int max_classes, eqr_dataset *train,
                           eqr_dataset *test);

/* ---- training: the library's trainer (train.h) with these helpers ---- */

/* How progress shows on stderr. */
typedef enum ex_progress_style {
    /* On a terminal a bar redrawn in place; otherwise a line with the ETA at
     * the first batch, after every tenth of the epoch and at its end. */
    EX_PROGRESS_BAR,
    /* A line after every tenth of the epoch, none at its end. */
    EX_PROGRESS_TENTHS
} ex_progress_style;

/* An eqr_progress_fn for eqr_trainer_opts.progress; user points to an
 * ex_progress_style (NULL: EX_PROGRESS_BAR). */
void ex_progress(void *user, const eqr_progress *p);
/* On a terminal, replace the progress bar by a note, or clear it (before
 * printing a line of results); otherwise do nothing. */
void ex_progress_note(const char *fmt, ...) EX_PRINTF(1, 2);
void ex_progress_clear(void);

/* A scheduler over total optimizer steps: a cosine learning rate from
 * lr_cosine_start to 0 (lr_cosine_start < 0: constant rate) and, with a
 * relaxation, its theta on the eqr_sched_kind theta_kind from theta_max to
 * 0. Dies on an error. */
eqr_scheduler *ex_schedules(eqr_ctx *ctx, eqr_optim *opt, float lr_cosine_start,
                            eqr_relax *relax, int theta_kind, float theta_max, int64_t total);

#endif
