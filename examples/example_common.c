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

/* "<program>: <message>\n" on stderr. */
static void message(const char *fmt, va_list ap) {
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
}

void ex_usage_error(const ex_flag *flags, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    message(fmt, ap);
    va_end(ap);
    ex_usage(flags, stderr);
    exit(2);
}

void ex_bad_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    message(fmt, ap);
    va_end(ap);
    fprintf(stderr, "run '%s --help' for the options\n", prog);
    exit(2);
}

int ex_relax_kind(const ex_flag *flags, const char *value) {
    static const char *const names[] = {"triangle", "linear", "cosine", "constant"};
    if (!strcmp(value, "off")) return -1;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(value, names[i])) return eqr_sched_kind_parse(value);
    ex_usage_error(flags,
                   "bad value '%s' for --relax: expected off, triangle, linear, cosine or constant",
                   value);
}

eqr_project_mode ex_projection(const ex_flag *flags, const char *value) {
    if (!strcmp(value, "drop")) return EQR_PROJECT_DROP;
    if (!strcmp(value, "fold")) return EQR_PROJECT_FOLD;
    ex_usage_error(flags, "bad value '%s' for --projection: expected drop or fold", value);
}

eqr_penalty_grad ex_penalty_grad(const ex_flag *flags, const char *value) {
    if (!strcmp(value, "detached")) return EQR_PENALTY_DETACHED;
    if (!strcmp(value, "full")) return EQR_PENALTY_FULL;
    ex_usage_error(flags, "bad value '%s' for --penalty-grad: expected detached or full", value);
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

void ex_parse_args(const char *default_name, const ex_flag *flags, int argc, char **argv) {
    prog = default_name;
    if (argc > 0 && argv[0] && *argv[0]) {
        const char *s = strrchr(argv[0], '/');
        prog = s ? s + 1 : argv[0];
    }
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
            exit(0);
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
    if (!path) return;
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode))
            ex_usage_error(flags, "bad value '%s' for %s: is a directory, expected a file path",
                           path, flag);
        if (!S_ISREG(sb.st_mode))
            ex_usage_error(flags, "bad value '%s' for %s: not a regular file", path, flag);
        if (access(path, W_OK) != 0)
            ex_usage_error(flags, "bad value '%s' for %s: the file is not writable (%s)", path,
                           flag, strerror(errno));
    }
    /* files are written next to their final name (a .tmp, then a rename):
     * the parent directory must exist and take new files */
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        strcpy(dir, ".");
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        if (n >= sizeof dir) ex_usage_error(flags, "bad value for %s: path too long", flag);
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        ex_usage_error(flags, "bad value '%s' for %s: no such directory '%s'", path, flag, dir);
    if (access(dir, W_OK | X_OK) != 0)
        ex_usage_error(flags, "bad value '%s' for %s: directory '%s' is not writable (%s)", path,
                       flag, dir, strerror(errno));
}

void ex_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    message(fmt, ap);
    va_end(ap);
    exit(1);
}

void ex_die_ctx(eqr_ctx *ctx, const char *what) {
    ex_die("%s: %s", what, eqr_error_message(ctx));
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

typedef struct progress {
    int tty; /* bar redrawn in place */
    int64_t epoch, epochs;
    double t0, last;   /* epoch start, last redraw */
    int64_t total;     /* samples in the epoch */
    int64_t next_line; /* sample count of the next printed line */
} progress;

static int bar_on_tty(const ex_train *t) {
    return t->progress == EX_PROGRESS_BAR && isatty(STDERR_FILENO);
}

static void progress_update(const ex_train *t, progress *p, int64_t done, double loss,
                            double acc) {
    double now = ex_now(), el = now - p->t0;
    int end = done >= p->total;
    double rate = el > 0 ? (double)done / el : 0;
    int64_t step = p->total / 10 > 0 ? p->total / 10 : 1;
    if (t->progress == EX_PROGRESS_TENTHS) {
        if (done >= p->next_line && !end) {
            p->next_line += step;
            fprintf(stderr, "epoch %lld/%lld  %lld/%lld  %.0f img/s  loss %.4f  acc %.4f\n",
                    (long long)p->epoch, (long long)p->epochs, (long long)done,
                    (long long)p->total, rate, loss, acc);
        }
        return;
    }
    char eta[32];
    ex_fmt_dur(eta, sizeof eta, rate > 0 ? (double)(p->total - done) / rate : 0);
    if (p->tty) {
        if (!end && now - p->last < 0.2) return;
        p->last = now;
        enum { W = 30 };
        char bar[W + 1];
        int fill = (int)((double)W * (double)done / (double)p->total);
        for (int i = 0; i < W; i++) bar[i] = i < fill ? '#' : '.';
        bar[W] = '\0';
        fprintf(stderr, "\r\033[Kepoch %lld/%lld [%s] %lld/%lld  %.0f img/s  ETA %s  loss %.4f  acc %.4f",
                (long long)p->epoch, (long long)p->epochs, bar, (long long)done,
                (long long)p->total, rate, eta, loss, acc);
        fflush(stderr);
    } else if (done >= p->next_line || end) {
        p->next_line += step;
        fprintf(stderr, "epoch %lld/%lld  %lld/%lld  %.0f img/s  ETA %s  loss %.4f  acc %.4f\n",
                (long long)p->epoch, (long long)p->epochs, (long long)done, (long long)p->total,
                rate, eta, loss, acc);
    }
}

void ex_progress_note(const ex_train *t, const char *fmt, ...) {
    if (!bar_on_tty(t)) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "\r\033[K");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}

void ex_progress_clear(const ex_train *t) {
    if (!bar_on_tty(t)) return;
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
}

/* ---- training and evaluation ---- */

static int64_t count_correct(const eqr_tensor *logits, const int32_t *y) {
    int64_t n = logits->shape[0], k = logits->shape[1], c = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *r = logits->data + i * k;
        int64_t best = 0;
        for (int64_t j = 1; j < k; j++)
            if (r[j] > r[best]) best = j;
        c += best == y[i];
    }
    return c;
}

ex_epoch_stats ex_train_epoch(const ex_train *t, int64_t epoch) {
    eqr_ctx *ctx = t->ctx;
    const eqr_dataset *ds = t->bt->ds;
    const int64_t img = (int64_t)ds->c * ds->h * ds->w;
    float *xb = malloc((size_t)(t->bt->batch * img) * sizeof(float));
    int32_t *yb = malloc((size_t)t->bt->batch * sizeof(int32_t));
    if (!xb || !yb) ex_die("out of memory");
    progress p = {.tty = bar_on_tty(t), .epoch = epoch, .epochs = t->epochs, .t0 = ex_now(),
                  .total = ds->n};
    if (t->progress == EX_PROGRESS_TENTHS) p.next_line = ds->n / 10;
    double lsum = 0, esum = 0;
    int64_t seen = 0, correct = 0, steps = 0, cnt;
    while (eqr_batcher_next(t->bt, xb, yb, &cnt)) {
        int64_t shape[4] = {cnt, ds->c, ds->h, ds->w};
        eqr_tensor *x = eqr_tensor_wrap(ctx, xb, 4, shape);
        eqr_tensor *logits = x ? t->forward(ctx, t->model, x, 1) : NULL;
        eqr_tensor *loss = eqr_softmax_cross_entropy(ctx, logits, yb), *total = loss;
        if (loss && t->extra_loss) {
            eqr_tensor *extra = t->extra_loss(ctx, t->extra_user);
            total = eqr_add(ctx, loss, extra);
            if (total) esum += (double)extra->data[0];
        }
        eqr_zero_grad(ctx);
        if (!total || eqr_backward(ctx, total) != EQR_OK) ex_die_ctx(ctx, "training step");
        if (eqr_optim_step(t->opt) != EQR_OK) ex_die_ctx(ctx, "optimizer step");
        if (t->sched && eqr_scheduler_step(t->sched) != EQR_OK) ex_die_ctx(ctx, "scheduler step");
        lsum += (double)loss->data[0] * (double)cnt;
        correct += count_correct(logits, yb);
        seen += cnt;
        steps++;
        eqr_step_reset(ctx);
        progress_update(t, &p, seen, lsum / (double)seen, (double)correct / (double)seen);
    }
    ex_epoch_stats st = {.seen = seen, .steps = steps, .secs = ex_now() - p.t0};
    st.loss = lsum / (double)seen;
    st.acc = (double)correct / (double)seen;
    st.extra = steps > 0 ? esum / (double)steps : 0;
    free(xb);
    free(yb);
    return st;
}

void ex_evaluate(eqr_ctx *ctx, ex_forward_fn forward, void *model, const eqr_dataset *ds,
                 int64_t batch, double *loss, double *acc) {
    const int64_t img = (int64_t)ds->c * ds->h * ds->w;
    int prev = eqr_set_grad_enabled(ctx, 0);
    double lsum = 0;
    int64_t correct = 0;
    for (int64_t i = 0; i < ds->n; i += batch) {
        int64_t b = ds->n - i < batch ? ds->n - i : batch;
        int64_t shape[4] = {b, ds->c, ds->h, ds->w};
        eqr_tensor *x = eqr_tensor_wrap(ctx, ds->x + i * img, 4, shape);
        eqr_tensor *logits = x ? forward(ctx, model, x, 0) : NULL;
        eqr_tensor *l = eqr_softmax_cross_entropy(ctx, logits, ds->y + i);
        if (!l) ex_die_ctx(ctx, "evaluation");
        lsum += (double)l->data[0] * (double)b;
        correct += count_correct(logits, ds->y + i);
        eqr_step_reset(ctx);
    }
    eqr_set_grad_enabled(ctx, prev);
    *loss = lsum / (double)ds->n;
    *acc = (double)correct / (double)ds->n;
}
