/* Helpers shared by the example trainers; see example_common.h. */
#define _POSIX_C_SOURCE 200809L
#include "example_common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The program name of every message; set once by ex_parse_args. */
static const char *prog = "example";

const char *ex_prog(void) {
    return prog;
}

/* ---- command line ---- */

void ex_usage(const ex_flag *flags, FILE *f) {
    fprintf(f, "usage: %s [options]\n", prog);
    for (const ex_flag *fl = flags; fl->name; fl++) {
        char col[64];
        snprintf(col, sizeof col, "%s%s%s", fl->name, fl->arg ? " " : "", fl->arg ? fl->arg : "");
        fprintf(f, "  %-17s %s\n", col, fl->help);
    }
    fprintf(f, "  %-17s %s\n", "--help", "show this help");
}

/* A data-parallel run's rank and size (ex_set_rank), and its exit. */
static int my_rank = 0, n_ranks = 1;
static void (*exit_hook)(int status);

void ex_set_rank(int rank, int size, void (*exit_fn)(int status)) {
    my_rank = rank;
    n_ranks = size;
    exit_hook = exit_fn;
}

int ex_rank(void) { return my_rank; }
int ex_nranks(void) { return n_ranks; }

void ex_exit(int status) {
    fflush(stdout);
    fflush(stderr);
    if (exit_hook) exit_hook(status);
    exit(status);
}

/* "<program>: <message>\n" on stderr ("<program>: rank r/N: <message>" in a
 * data-parallel run, where ranks other than 0 wait 0.3 s first: an error
 * every rank meets is told once, by rank 0, whose exit ends the job). */
static void message(const char *fmt, va_list ap) {
    if (n_ranks > 1 && my_rank != 0) {
        struct timespec d = {0, 300000000L};
        nanosleep(&d, NULL);
    }
    if (n_ranks > 1)
        fprintf(stderr, "%s: rank %d/%d: ", prog, my_rank, n_ranks);
    else
        fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
}

void ex_usage_error(const ex_flag *flags, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    message(fmt, ap);
    va_end(ap);
    if (my_rank == 0) ex_usage(flags, stderr);
    ex_exit(2);
}

void ex_bad_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    message(fmt, ap);
    va_end(ap);
    fprintf(stderr, "run '%s --help' for the options\n", prog);
    ex_exit(2);
}

int ex_relax_kind(const ex_flag *flags, const char *value) {
    static const char *const names[] = {"triangle", "linear", "cosine", "constant"};
    if (!strcmp(value, "off")) return -1;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(value, names[i])) return eqr_sched_kind_parse(value);
    if (!strcmp(value, "early")) return EX_THETA_EARLY;
    if (!strcmp(value, "late")) return EX_THETA_LATE;
    ex_usage_error(flags,
                   "bad value '%s' for --relax: expected off, triangle, linear, cosine, constant, "
                   "early or late", value);
}

int ex_choice(const ex_flag *flags, const char *flag, const char *value,
              const char *const *names) {
    char list[512] = "";
    int n = 0;
    for (; names[n]; n++)
        if (!strcmp(value, names[n])) return n;
    for (int i = 0; i < n; i++) /* "a, b or c" */
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                 i == 0 ? "" : i == n - 1 ? " or " : ", ", names[i]);
    ex_usage_error(flags, "bad value '%s' for %s: expected %s", value, flag, list);
}

eqr_project_mode ex_projection(const ex_flag *flags, const char *value) {
    return ex_choice(flags, "--projection", value, (const char *const[]){"drop", "fold", NULL})
               ? EQR_PROJECT_FOLD
               : EQR_PROJECT_DROP;
}

eqr_penalty_grad ex_penalty_grad(const ex_flag *flags, const char *value) {
    return ex_choice(flags, "--penalty-grad", value,
                     (const char *const[]){"detached", "full", NULL})
               ? EQR_PENALTY_FULL
               : EQR_PENALTY_DETACHED;
}

static int64_t parse_int(const ex_flag *flags, const ex_flag *f, const char *s) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < f->min || v > f->max)
        ex_usage_error(flags, "bad value '%s' for %s: expected an integer in [%lld, %lld]", s,
                       f->name, (long long)f->min, (long long)f->max);
    return v;
}

static float parse_float(const ex_flag *flags, const ex_flag *f, const char *s) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    int below = f->fmin_open ? v <= f->fmin : v < f->fmin;
    if (errno || end == s || *end || !isfinite(v) || below || v > f->fmax)
        ex_usage_error(flags, "bad value '%s' for %s: expected a number in %c%g, %g]", s,
                       f->name, f->fmin_open ? '(' : '[', f->fmin, f->fmax);
    return v;
}

void ex_set_prog(const char *argv0) {
    if (argv0 && *argv0) {
        const char *s = strrchr(argv0, '/');
        prog = s ? s + 1 : argv0;
    }
}

void ex_parse_args(const char *default_name, const ex_flag *flags, int argc, char **argv) {
    prog = default_name;
    if (argc > 0) ex_set_prog(argv[0]);
    for (int i = 1; i < argc; i++) {
        char name[64];
        const char *a = argv[i], *val = NULL, *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) != 0) ex_usage_error(flags, "unexpected argument '%s'", a);
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        if (len >= sizeof name) ex_usage_error(flags, "unknown option '%s'", a);
        memcpy(name, a, len);
        name[len] = '\0';
        if (!strcmp(name, "--help")) {
            ex_usage(flags, stdout);
            ex_exit(0);
        }
        const ex_flag *f = flags;
        while (f->name && strcmp(f->name, name) != 0) f++;
        if (!f->name) ex_usage_error(flags, "unknown option '%s'", name);
        if (f->kind == EX_SWITCH) {
            if (eq) ex_usage_error(flags, "%s takes no value", name);
            *(int *)f->dst = 1;
            continue;
        }
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else
            ex_usage_error(flags, "missing value for %s", name);
        switch (f->kind) {
        case EX_INT: *(int64_t *)f->dst = parse_int(flags, f, val); break;
        case EX_U64: *(uint64_t *)f->dst = (uint64_t)parse_int(flags, f, val); break;
        case EX_FLOAT: *(float *)f->dst = parse_float(flags, f, val); break;
        case EX_STR:
            if (!*val) ex_usage_error(flags, "empty value for %s", name);
            *(const char **)f->dst = val;
            break;
        case EX_SWITCH: break;
        }
    }
}

/* ---- runtime errors and timing ---- */

void ex_check_output(const ex_flag *flags, const char *flag, const char *path) {
    if (!path || my_rank != 0) return; /* in a data-parallel run rank 0 alone writes */
    eqr_ctx *ctx = eqr_ctx_create(&(eqr_ctx_opts){.seed = 1});
    if (!ctx) ex_die("out of memory");
    if (eqr_path_writable(ctx, path) != EQR_OK) {
        /* the library's "'<path>': <reason>", as "bad value '<path>' for <flag>: <reason>" */
        char reason[1024];
        const char *m = eqr_error_message(ctx);
        size_t n = strlen(path);
        if (m[0] == '\'' && !strncmp(m + 1, path, n) && !strncmp(m + 1 + n, "': ", 3)) m += n + 4;
        snprintf(reason, sizeof reason, "%s", m);
        eqr_ctx_destroy(ctx);
        ex_usage_error(flags, "bad value '%s' for %s: %s", path, flag, reason);
    }
    eqr_ctx_destroy(ctx);
}

void ex_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    message(fmt, ap);
    va_end(ap);
    ex_exit(1);
}

void ex_die_ctx(eqr_ctx *ctx, const char *what) {
    ex_die("%s: %s", what, eqr_error_message(ctx));
}

void ex_check_checkpoint_flags(const ex_flag *flags, const char *checkpoint, int resume,
                               int64_t stop_after, int64_t epochs) {
    const char *arg = "FILE"; /* the placeholder of the flags' --checkpoint */
    for (const ex_flag *f = flags; f->name; f++)
        if (!strcmp(f->name, "--checkpoint") && f->arg) arg = f->arg;
    if (resume && !checkpoint) ex_usage_error(flags, "--resume needs --checkpoint %s", arg);
    if (stop_after > epochs)
        ex_usage_error(flags, "--stop-after %lld is beyond the last epoch (--epochs %lld)",
                       (long long)stop_after, (long long)epochs);
    ex_check_output(flags, "--checkpoint", checkpoint);
}

uint64_t ex_fnv1a(const char *s) {
    uint64_t h = 1469598103934665603u;
    for (const char *p = s; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211u;
    return h;
}

double ex_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void ex_fmt_dur(char *buf, size_t n, double s) {
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

/* ---- setup ---- */

eqr_ctx *ex_ctx_create(uint64_t seed, int64_t threads) {
    eqr_ctx *ctx = eqr_ctx_create(&(eqr_ctx_opts){.seed = seed, .threads = (int)threads});
    if (!ctx) ex_die("out of memory");
    return ctx;
}

void ex_load_fashion_mnist(eqr_ctx *ctx, const char *dir, int64_t train_limit,
                           int64_t test_limit, int side, int max_classes, eqr_dataset *train,
                           eqr_dataset *test) {
    const char *where = dir ? dir : "the default Fashion-MNIST directory";
    if (eqr_fashion_mnist_load(ctx, dir, 1, train) != EQR_OK)
        ex_die_ctx(ctx, "loading training data");
    if (eqr_fashion_mnist_load(ctx, dir, 0, test) != EQR_OK) ex_die_ctx(ctx, "loading test data");
    if (train->h != test->h || train->w != test->w)
        ex_die("%s: training images are %dx%d but test images %dx%d", where, train->h, train->w,
               test->h, test->w);
    if (side > 0 && (train->h != side || train->w != side))
        ex_die("%s holds %dx%d images; this model takes %dx%d", where, train->h, train->w, side,
               side);
    int classes = train->classes > test->classes ? train->classes : test->classes;
    if (max_classes > 0 && classes > max_classes)
        ex_die("%s has labels up to %d; this model has %d classes", where, classes - 1,
               max_classes);
    train->classes = test->classes = classes;
    if (train_limit > 0) eqr_dataset_truncate(train, train_limit);
    if (test_limit > 0) eqr_dataset_truncate(test, test_limit);
}

/* ---- progress ---- */

static struct {
    double last;       /* last redraw */
    int64_t next_line; /* sample count of the next printed line */
    int64_t epoch;
    int drawn;         /* a bar is on the terminal line */
} pstate;

static int on_tty(void) { return isatty(STDERR_FILENO); }

void ex_progress(void *user, const eqr_progress *p) {
    const ex_progress_style style = user ? *(const ex_progress_style *)user : EX_PROGRESS_BAR;
    const int end = p->done >= p->total;
    const int64_t step = p->total / 10 > 0 ? p->total / 10 : 1;
    if (p->epoch != pstate.epoch) { /* a new epoch */
        pstate.epoch = p->epoch;
        pstate.next_line = style == EX_PROGRESS_TENTHS ? step : 0;
        pstate.last = 0;
    }
    if (style == EX_PROGRESS_TENTHS) {
        if (p->done >= pstate.next_line && !end) {
            pstate.next_line += step;
            fprintf(stderr, "epoch %lld/%lld  %lld/%lld  %.0f img/s  loss %.4f  acc %.4f\n",
                    (long long)p->epoch, (long long)p->epochs, (long long)p->done,
                    (long long)p->total, p->rate, p->loss, p->acc);
        }
        return;
    }
    char eta[32];
    ex_fmt_dur(eta, sizeof eta, p->eta);
    if (on_tty()) {
        double now = ex_now();
        if (!end && now - pstate.last < 0.2) return;
        pstate.last = now;
        enum { W = 30 };
        char bar[W + 1];
        int fill = (int)((double)W * (double)p->done / (double)p->total);
        for (int i = 0; i < W; i++) bar[i] = i < fill ? '#' : '.';
        bar[W] = '\0';
        fprintf(stderr, "\r\033[Kepoch %lld/%lld [%s] %lld/%lld  %.0f img/s  ETA %s  loss %.4f  acc %.4f",
                (long long)p->epoch, (long long)p->epochs, bar, (long long)p->done,
                (long long)p->total, p->rate, eta, p->loss, p->acc);
        fflush(stderr);
        pstate.drawn = 1;
    } else if (p->done >= pstate.next_line || end) {
        pstate.next_line += step;
        fprintf(stderr, "epoch %lld/%lld  %lld/%lld  %.0f img/s  ETA %s  loss %.4f  acc %.4f\n",
                (long long)p->epoch, (long long)p->epochs, (long long)p->done,
                (long long)p->total, p->rate, eta, p->loss, p->acc);
    }
}

void ex_progress_note(const char *fmt, ...) {
    if (!on_tty()) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "\r\033[K");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
    pstate.drawn = 1;
}

void ex_progress_clear(void) {
    if (!pstate.drawn) return;
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
    pstate.drawn = 0;
}

/* ---- schedules ---- */

eqr_scheduler *ex_schedules(eqr_ctx *ctx, eqr_optim *opt, float lr_cosine_start,
                            eqr_relax *relax, int theta_kind, float theta_max, int64_t total) {
    eqr_scheduler *sched = eqr_scheduler_create(ctx, opt);
    if (!sched) ex_die_ctx(ctx, "creating the scheduler");
    if (lr_cosine_start >= 0) {
        eqr_schedule s = {.kind = EQR_SCHED_COSINE, .start = lr_cosine_start, .end = 0,
                          .total = total};
        if (eqr_scheduler_add_lr(sched, opt, &s) != EQR_OK)
            ex_die_ctx(ctx, "learning-rate schedule");
    }
    if (relax) {
        eqr_schedule s = {.kind = (eqr_sched_kind)theta_kind, .start = theta_max, .end = 0,
                          .total = total};
        if (theta_kind >= EX_THETA_EARLY &&
            eqr_schedule_theta_preset(ctx, theta_kind == EX_THETA_EARLY ? "early" : "late",
                                      theta_max, total, &s) != EQR_OK)
            ex_die_ctx(ctx, "theta schedule");
        if (eqr_scheduler_add_value(sched, eqr_relax_theta(relax), &s) != EQR_OK)
            ex_die_ctx(ctx, "theta schedule");
    }
    return sched;
}
