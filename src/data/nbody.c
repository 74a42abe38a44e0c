/* The charged-particle N-body generator (nbody.h). */
#include "core/internal.h"
#include "equirelax/nbody.h"
#include "equirelax/data.h"

#include <math.h>
#include <stdlib.h>

/* splitmix64 finaliser: decorrelates (seed, k) pairs into generator seeds. */
static uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Standard normal in double precision (Box-Muller on 53-bit uniforms). */
static double normal_d(eqr_rng *rng) {
    double u1 = ((double)(eqr_rng_u64(rng) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(eqr_rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void eqr_nbody_init_state(eqr_rng *rng, int p, double *q, double *x, double *v) {
    for (int i = 0; i < p; i++) q[i] = (eqr_rng_u64(rng) >> 63) ? 1.0 : -1.0;
    for (int i = 0; i < 3 * p; i++) x[i] = normal_d(rng);
    for (int i = 0; i < p; i++) {
        double d[3], nn = 0;
        do { /* a zero draw has no direction: redraw (probability ~0) */
            nn = 0;
            for (int c = 0; c < 3; c++) {
                d[c] = normal_d(rng);
                nn += d[c] * d[c];
            }
        } while (nn == 0);
        double s = EQR_NBODY_SPEED / sqrt(nn);
        for (int c = 0; c < 3; c++) v[3 * i + c] = d[c] * s;
    }
}

void eqr_nbody_forces(int p, const double *q, const double *x, double clip, double *F) {
    for (int i = 0; i < 3 * p; i++) F[i] = 0;
    for (int i = 0; i < p; i++)
        for (int j = i + 1; j < p; j++) {
            double d[3], r2 = 0;
            for (int c = 0; c < 3; c++) {
                d[c] = x[3 * i + c] - x[3 * j + c];
                r2 += d[c] * d[c];
            }
            if (r2 == 0) continue; /* coincident particles: no defined direction */
            double s = q[i] * q[j] / (r2 * sqrt(r2));
            for (int c = 0; c < 3; c++) {
                F[3 * i + c] += s * d[c];
                F[3 * j + c] -= s * d[c];
            }
        }
    if (clip > 0)
        for (int i = 0; i < 3 * p; i++) {
            if (F[i] > clip) F[i] = clip;
            else if (F[i] < -clip) F[i] = -clip;
        }
}

double eqr_nbody_energy(int p, const double *q, const double *x, const double *v) {
    double e = 0;
    for (int i = 0; i < 3 * p; i++) e += 0.5 * v[i] * v[i];
    for (int i = 0; i < p; i++)
        for (int j = i + 1; j < p; j++) {
            double r2 = 0;
            for (int c = 0; c < 3; c++) {
                double d = x[3 * i + c] - x[3 * j + c];
                r2 += d * d;
            }
            e += q[i] * q[j] / sqrt(r2);
        }
    return e;
}

/* The integrator proper; arguments already checked, F has 3p doubles. */
static void integrate(int p, const double *q, double *x, double *v, double dt, double clip,
                      int frame_steps, int nframes, double *fx, double *fv, double *F) {
    int n3 = 3 * p;
    if (fx) memcpy(fx, x, (size_t)n3 * sizeof(double));
    if (fv) memcpy(fv, v, (size_t)n3 * sizeof(double));
    eqr_nbody_forces(p, q, x, clip, F);
    for (int i = 0; i < n3; i++) v[i] += dt * F[i];
    long total = (long)frame_steps * nframes;
    for (long s = 1; s <= total; s++) {
        for (int i = 0; i < n3; i++) x[i] += dt * v[i];
        if (s % frame_steps == 0) {
            long f = s / frame_steps;
            if (fx) memcpy(fx + f * n3, x, (size_t)n3 * sizeof(double));
            if (fv) memcpy(fv + f * n3, v, (size_t)n3 * sizeof(double));
            if (f == nframes) break; /* the last kick would only move v past the frame */
        }
        eqr_nbody_forces(p, q, x, clip, F);
        for (int i = 0; i < n3; i++) v[i] += dt * F[i];
    }
}

eqr_status eqr_nbody_integrate(eqr_ctx *ctx, int p, const double *q, double *x, double *v,
                               double dt, double clip, int frame_steps, int nframes,
                               double *frames_x, double *frames_v) {
    if (!ctx) return EQR_ERR_ARG;
    if (!q || !x || !v)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_nbody_integrate: NULL state array");
    if (p < 1 || !(dt > 0) || frame_steps < 1 || nframes < 0)
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "eqr_nbody_integrate: need p >= 1, dt > 0, frame_steps >= 1, "
                         "nframes >= 0 (got p %d, dt %g, frame_steps %d, nframes %d)",
                         p, dt, frame_steps, nframes);
    double *F = malloc((size_t)p * 3 * sizeof(double));
    if (!F) return eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_nbody_integrate: out of memory");
    integrate(p, q, x, v, dt, clip, frame_steps, nframes, frames_x, frames_v, F);
    free(F);
    return EQR_OK;
}

void eqr_nbody_free(eqr_nbody_set *s) {
    if (!s) return;
    free(s->x);
    free(s->v);
    free(s->q);
    free(s->y);
    memset(s, 0, sizeof *s);
}

eqr_status eqr_nbody_generate(eqr_ctx *ctx, int64_t n, uint64_t seed, eqr_nbody_set *out) {
    if (!ctx) return EQR_ERR_ARG;
    if (!out) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_nbody_generate: NULL output set");
    memset(out, 0, sizeof *out);
    if (n < 1 || n > ((int64_t)1 << 40))
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_nbody_generate: sample count %lld out of range",
                         (long long)n);
    const int p = EQR_NBODY_PARTICLES;
    size_t nv = (size_t)n * p * 3;
    out->x = malloc(nv * sizeof(float));
    out->v = malloc(nv * sizeof(float));
    out->y = malloc(nv * sizeof(float));
    out->q = malloc((size_t)n * p * sizeof(float));
    if (!out->x || !out->v || !out->y || !out->q) {
        eqr_nbody_free(out);
        return eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_nbody_generate: out of memory for %lld samples",
                         (long long)n);
    }
    out->n = n;
    out->p = p;
    double q[EQR_NBODY_PARTICLES], x[3 * EQR_NBODY_PARTICLES], v[3 * EQR_NBODY_PARTICLES];
    double F[3 * EQR_NBODY_PARTICLES];
    double fx[(EQR_NBODY_FRAME_OUT + 1) * 3 * EQR_NBODY_PARTICLES];
    double fv[(EQR_NBODY_FRAME_OUT + 1) * 3 * EQR_NBODY_PARTICLES];
    for (int64_t k = 0; k < n; k++) {
        eqr_rng rng;
        eqr_rng_seed(&rng, mix64(seed ^ mix64((uint64_t)k)));
        eqr_nbody_init_state(&rng, p, q, x, v);
        /* frames 0 .. 40 (the few frames kept are small next to the steps) */
        integrate(p, q, x, v, EQR_NBODY_DT, EQR_NBODY_FORCE_CLIP, EQR_NBODY_FRAME_STEPS,
                  EQR_NBODY_FRAME_OUT, fx, fv, F);
        const double *xin = fx + EQR_NBODY_FRAME_IN * 3 * p, *vin = fv + EQR_NBODY_FRAME_IN * 3 * p;
        for (int i = 0; i < 3 * p; i++) {
            out->x[k * 3 * p + i] = (float)xin[i];
            out->v[k * 3 * p + i] = (float)vin[i];
        }
        for (int i = 0; i < p; i++) out->q[k * p + i] = (float)q[i];
        for (int i = 0; i < 3 * p; i++) out->y[k * 3 * p + i] = (float)x[i];
    }
    return EQR_OK;
}

uint64_t eqr_nbody_split_seed(eqr_nbody_split split) {
    switch (split) {
    case EQR_NBODY_TRAIN: return 0x4E424F4459545231ull; /* "NBODYTR1" */
    case EQR_NBODY_VAL: return 0x4E424F4459564131ull;   /* "NBODYVA1" */
    default: return 0x4E424F4459544531ull;              /* "NBODYTE1" */
    }
}

eqr_status eqr_nbody_load_split(eqr_ctx *ctx, eqr_nbody_split split, int64_t n,
                                eqr_nbody_set *out) {
    if (!ctx) return EQR_ERR_ARG;
    if (split != EQR_NBODY_TRAIN && split != EQR_NBODY_VAL && split != EQR_NBODY_TEST) {
        if (out) memset(out, 0, sizeof *out);
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_nbody_load_split: unknown split %d", (int)split);
    }
    if (n <= 0)
        n = split == EQR_NBODY_TRAIN ? EQR_NBODY_NUM_TRAIN
            : split == EQR_NBODY_VAL ? EQR_NBODY_NUM_VAL
                                     : EQR_NBODY_NUM_TEST;
    return eqr_nbody_generate(ctx, n, eqr_nbody_split_seed(split), out);
}

eqr_status eqr_nbody_compute_baselines(eqr_ctx *ctx, const eqr_nbody_set *s,
                                       eqr_nbody_baselines *out) {
    if (!ctx) return EQR_ERR_ARG;
    if (!s || !out || !s->x || !s->v || !s->y || s->n < 1 || s->p < 1)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_nbody_compute_baselines: empty or NULL set");
    double a = 0, b = 0;
    int64_t m = s->n * s->p * 3;
    for (int64_t i = 0; i < m; i++) {
        double d0 = (double)s->y[i] - s->x[i];
        double d1 = d0 - EQR_NBODY_HORIZON * s->v[i];
        a += d0 * d0;
        b += d1 * d1;
    }
    out->no_motion = a / (double)m;
    out->const_velocity = b / (double)m;
    return EQR_OK;
}
