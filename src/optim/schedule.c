/* Schedules (pure functions of a position, computed in double) and the
 * scheduler that applies them to an optimizer's learning rate and to
 * one-element tensors such as theta. */
#include "core/internal.h"
#include "equirelax/schedule.h"

#include <math.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

#define SCHED_PI 3.14159265358979323846

static const char *const KIND_NAMES[] = {"constant", "linear", "cosine",  "exp",
                                         "step",     "triangle", "callback"};
#define NKINDS ((int)(sizeof KIND_NAMES / sizeof KIND_NAMES[0]))
/* as the enum spells them, for messages */
static const char *const KIND_UPPER[] = {"CONSTANT", "LINEAR", "COSINE",  "EXP",
                                         "STEP",     "TRIANGLE", "CALLBACK"};

int eqr_sched_kind_parse(const char *name) {
    if (!name) return -1;
    /* "callback" is not parsed: a name alone cannot supply the function */
    for (int k = 0; k < NKINDS; k++)
        if (k != EQR_SCHED_CALLBACK && strcmp(name, KIND_NAMES[k]) == 0) return k;
    return -1;
}

const char *eqr_sched_kind_name(eqr_sched_kind kind) {
    return (int)kind >= 0 && (int)kind < NKINDS ? KIND_NAMES[kind] : "?";
}

static int needs_total(eqr_sched_kind k) {
    return k != EQR_SCHED_CONSTANT && k != EQR_SCHED_CALLBACK;
}

/* Write a problem description into buf; returns 1 (the schedule is bad). */
static int bad(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *buf, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return 1;
}

/* What is wrong with s, written into buf; 0 if it is well formed. */
static int sched_problem(const eqr_schedule *s, char *buf, size_t len) {
    if (!s) return bad(buf, len, "schedule is NULL");
    if ((int)s->kind < 0 || (int)s->kind >= NKINDS)
        return bad(buf, len, "unknown kind %d", (int)s->kind);
    const char *kn = KIND_UPPER[s->kind];
    if (s->unit_steps < 0)
        return bad(buf, len, "unit_steps must be >= 0, got %lld", (long long)s->unit_steps);
    if (s->warmup < 0)
        return bad(buf, len, "warmup must be >= 0, got %lld", (long long)s->warmup);
    if (s->kind == EQR_SCHED_CALLBACK) {
        if (!s->fn) return bad(buf, len, "fn must be set for CALLBACK");
        if (s->warmup > 0)
            return bad(buf, len, "warmup must be 0 for CALLBACK (put it in fn)");
        return 0;
    }
    if (!isfinite(s->start))
        return bad(buf, len, "start must be finite for %s, got %g", kn, (double)s->start);
    if (s->kind != EQR_SCHED_CONSTANT && !isfinite(s->end))
        return bad(buf, len, "end must be finite for %s, got %g", kn, (double)s->end);
    if (needs_total(s->kind)) {
        if (s->total <= 0)
            return bad(buf, len, "total must be > 0 for %s, got %lld", kn,
                            (long long)s->total);
        if (s->warmup >= s->total)
            return bad(buf, len, "warmup (%lld) must be < total (%lld) for %s",
                            (long long)s->warmup, (long long)s->total, kn);
    }
    if (s->kind == EQR_SCHED_TRIANGLE && s->warmup > 0)
        return bad(buf, len, "warmup must be 0 for TRIANGLE (it rises from end already)");
    if (s->kind == EQR_SCHED_EXP || s->kind == EQR_SCHED_STEP) {
        if (!(s->gamma > 0.0f && s->gamma <= 1.0f))
            return bad(buf, len, "gamma must be in (0, 1] for %s, got %g", kn,
                            (double)s->gamma);
    }
    if (s->kind == EQR_SCHED_STEP && s->step_size <= 0)
        return bad(buf, len, "step_size must be > 0 for STEP, got %lld",
                        (long long)s->step_size);
    return 0;
}

eqr_status eqr_schedule_theta_preset(eqr_ctx *ctx, const char *name, float peak,
                                     int64_t total_steps, eqr_schedule *out) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!name || !out)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_schedule_theta_preset: name and out must not be NULL");
    if (!isfinite(peak) || peak < 0)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_schedule_theta_preset: peak %g must be finite and >= 0",
                         peak);
    if (total_steps < 4)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_schedule_theta_preset(%s): %lld steps, need >= 4",
                         name, (long long)total_steps);
    eqr_schedule s = {.start = peak, .end = 0.0f, .unit_steps = 1};
    if (!strcmp(name, "paper")) {
        s.kind = EQR_SCHED_TRIANGLE;
        s.total = total_steps;
    } else if (!strcmp(name, "early") || !strcmp(name, "late")) {
        const int early = name[0] == 'e';
        s.kind = EQR_SCHED_COSINE;
        s.warmup = total_steps / (early ? 20 : 10);
        if (s.warmup < 1) s.warmup = 1;
        s.total = early ? total_steps / 2 : total_steps * 9 / 10;
        if (s.total <= s.warmup) s.total = s.warmup + 1;
    } else {
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_schedule_theta_preset: unknown preset '%s' "
                         "(expected paper, early or late)", name);
    }
    *out = s;
    return EQR_OK;
}

eqr_status eqr_schedule_check(eqr_ctx *ctx, const eqr_schedule *s) {
    if (!ctx) return EQR_ERR_ARG;
    char msg[160];
    if (sched_problem(s, msg, sizeof msg))
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_schedule: %s", msg);
    return EQR_OK;
}

/* Value of a well-formed schedule at unit t >= 0. Each decaying branch
 * returns `end` itself once t reaches total, so the end value is exact. */
static double value_at(const eqr_schedule *s, int64_t t) {
    if (s->kind == EQR_SCHED_CALLBACK) return s->fn(t, s->user);
    const double start = s->start, end = s->end;
    const int64_t w = s->warmup;
    if (t < w) return start * (double)(t + 1) / (double)w;
    const int64_t u = t - w, span = s->total - w;
    switch (s->kind) {
    case EQR_SCHED_CONSTANT:
        return start;
    case EQR_SCHED_LINEAR:
        if (u >= span) return end;
        return start + (end - start) * ((double)u / (double)span);
    case EQR_SCHED_COSINE: {
        if (u >= span) return end;
        double c = cos(SCHED_PI * (double)u / (double)span);
        return end + (start - end) * (1.0 + c) * 0.5;
    }
    case EQR_SCHED_EXP:
        if (u >= span) return end;
        return start * pow((double)s->gamma, (double)u);
    case EQR_SCHED_STEP:
        if (u >= span) return end;
        return start * pow((double)s->gamma, (double)(u / s->step_size));
    case EQR_SCHED_TRIANGLE: {
        const int64_t n = s->total; /* warmup is 0 here */
        if (t >= n) return end;
        if (n % 2 == 0 && t == n / 2) return start;
        double half = 0.5 * (double)n;
        double x = (double)t <= half ? (double)t / half : (double)(n - t) / half;
        return end + (start - end) * x;
    }
    case EQR_SCHED_CALLBACK:
        break;
    }
    return NAN;
}

float eqr_schedule_at(const eqr_schedule *s, int64_t t) {
    char msg[160];
    if (sched_problem(s, msg, sizeof msg)) return NAN;
    return (float)value_at(s, t < 0 ? 0 : t);
}

/* ---- scheduler ---- */

typedef struct sched_target {
    eqr_optim *opt;    /* learning-rate target, or NULL */
    eqr_tensor *value; /* one-element tensor target, or NULL */
    eqr_schedule s;
    float current;     /* last value applied */
} sched_target;

struct eqr_scheduler {
    eqr_ctx *ctx;
    eqr_optim *opt; /* position source, or NULL: own count */
    int64_t count;
    sched_target *t;
    int n, cap;
};

eqr_scheduler *eqr_scheduler_create(eqr_ctx *ctx, eqr_optim *opt) {
    if (!eqr__ok(ctx, 0)) return NULL;
    eqr_scheduler *s = eqr__calloc(ctx, "eqr_scheduler_create", 1, sizeof *s);
    if (!s) return NULL;
    s->ctx = ctx;
    s->opt = opt;
    return s;
}

void eqr_scheduler_destroy(eqr_scheduler *s) {
    if (!s) return;
    free(s->t);
    free(s);
}

int64_t eqr_scheduler_position(const eqr_scheduler *s) {
    if (!s) return 0;
    return s->opt ? eqr_optim_num_steps(s->opt) : s->count;
}

/* Compute and set target i for optimizer step pos. */
static eqr_status apply_one(eqr_scheduler *s, sched_target *tg, int64_t pos) {
    int64_t unit = tg->s.unit_steps > 1 ? tg->s.unit_steps : 1;
    int64_t t = pos / unit;
    double v = value_at(&tg->s, t);
    if (tg->opt) {
        if (!(isfinite(v) && v >= 0.0))
            return eqr__fail(s->ctx, EQR_ERR_ARG,
                             "eqr_scheduler: the %s learning-rate schedule gives %g at step %lld "
                             "(must be finite and >= 0)",
                             eqr_sched_kind_name(tg->s.kind), v, (long long)pos);
        tg->current = (float)v;
        eqr_optim_set_lr(tg->opt, tg->current);
    } else {
        if (!isfinite(v))
            return eqr__fail(s->ctx, EQR_ERR_ARG,
                             "eqr_scheduler: the %s schedule gives %g at step %lld (must be "
                             "finite)",
                             eqr_sched_kind_name(tg->s.kind), v, (long long)pos);
        tg->current = (float)v;
        tg->value->data[0] = tg->current;
    }
    return EQR_OK;
}

static eqr_status apply_all(eqr_scheduler *s) {
    if (s->ctx->status != EQR_OK) return s->ctx->status;
    int64_t pos = eqr_scheduler_position(s);
    for (int i = 0; i < s->n; i++) {
        eqr_status st = apply_one(s, &s->t[i], pos);
        if (st != EQR_OK) return st;
    }
    return EQR_OK;
}

static eqr_status add_target(eqr_scheduler *s, const char *fn, eqr_optim *opt, eqr_tensor *value,
                             const eqr_schedule *sched) {
    eqr_ctx *ctx = s->ctx;
    if (ctx->status != EQR_OK) return ctx->status;
    char msg[160];
    if (sched_problem(sched, msg, sizeof msg))
        return eqr__fail(ctx, EQR_ERR_ARG, "%s: %s", fn, msg);
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 4;
        sched_target *nt = realloc(s->t, (size_t)cap * sizeof *nt);
        if (!nt) return eqr__fail(ctx, EQR_ERR_NOMEM, "%s: out of memory", fn);
        s->t = nt;
        s->cap = cap;
    }
    sched_target *tg = &s->t[s->n];
    *tg = (sched_target){.opt = opt, .value = value, .s = *sched};
    eqr_status st = apply_one(s, tg, eqr_scheduler_position(s));
    if (st == EQR_OK) s->n++; /* a target whose first value is bad is not kept */
    return st;
}

eqr_status eqr_scheduler_add_lr(eqr_scheduler *s, eqr_optim *opt, const eqr_schedule *sched) {
    if (!s) return EQR_ERR_ARG;
    if (!opt) return eqr__fail(s->ctx, EQR_ERR_ARG, "eqr_scheduler_add_lr: opt is NULL");
    return add_target(s, "eqr_scheduler_add_lr", opt, NULL, sched);
}

eqr_status eqr_scheduler_add_value(eqr_scheduler *s, eqr_tensor *target,
                                   const eqr_schedule *sched) {
    if (!s) return EQR_ERR_ARG;
    if (!target || !target->data)
        return eqr__fail(s->ctx, EQR_ERR_ARG, "eqr_scheduler_add_value: target is NULL");
    if (target->numel != 1)
        return eqr__fail(s->ctx, EQR_ERR_ARG,
                         "eqr_scheduler_add_value: target must have one element, it has %lld",
                         (long long)target->numel);
    return add_target(s, "eqr_scheduler_add_value", NULL, target, sched);
}

eqr_status eqr_scheduler_step(eqr_scheduler *s) {
    if (!s) return EQR_ERR_ARG;
    if (s->ctx->status != EQR_OK) return s->ctx->status;
    if (!s->opt) s->count++;
    return apply_all(s);
}

eqr_status eqr_scheduler_sync(eqr_scheduler *s) {
    if (!s) return EQR_ERR_ARG;
    return apply_all(s);
}

eqr_status eqr_scheduler_seek(eqr_scheduler *s, int64_t step) {
    if (!s) return EQR_ERR_ARG;
    if (s->ctx->status != EQR_OK) return s->ctx->status;
    if (step < 0)
        return eqr__fail(s->ctx, EQR_ERR_ARG, "eqr_scheduler_seek: step must be >= 0, got %lld",
                         (long long)step);
    if (s->opt)
        eqr_optim_set_num_steps(s->opt, step);
    else
        s->count = step;
    return apply_all(s);
}

float eqr_scheduler_value(const eqr_scheduler *s, int i) {
    if (!s || i < 0 || i >= s->n) return NAN;
    return s->t[i].current;
}
