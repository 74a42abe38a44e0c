/* equirelax N-body data: the charged-particle system used by EGNN / SEGNN,
 * generated in code (see DESIGN.md, "Data").
 *
 * One system: 5 particles with charges +1 or -1 (probability 1/2 each),
 * positions ~ N(0, 1) per coordinate, velocities of norm 0.5 in a uniformly
 * random direction. Particle i feels F_i = sum_j q_i q_j (x_i - x_j) / |x_i -
 * x_j|^3 (unit masses; like charges repel), each component of F_i clipped
 * to [-100, 100]. Integration with dt = 0.001, leapfrog style:
 *
 *     frame 0 = the initial state (x, v);  v += dt F(x)       (first kick)
 *     for step s = 1, 2, ...:  x += dt v;
 *                              if s % 100 == 0: frame s/100 = (x, v)
 *                              v += dt F(x)
 *
 * so a frame's velocity is the one that produced its last drift (half a
 * step behind the positions, as in the reference generator). No box, no
 * noise. Task: from positions and velocities at frame 30 plus the charges,
 * predict the positions at frame 40 (1000 steps = time 1.0 later); only the
 * first 4000 steps are simulated. Simulation runs in double precision; the
 * sets store float32.
 *
 * Splits: train / val / test come from three distinct fixed seeds; sample k
 * of a split is drawn from its own generator seeded from (split seed, k), so
 * a smaller set is a prefix of the larger one (the 500-sample training set is
 * the first 500 of the 3000) and generation is independent of the order.
 * Sizes 3000 / 2000 / 2000 by default. */
#ifndef EQUIRELAX_NBODY_H
#define EQUIRELAX_NBODY_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EQR_NBODY_PARTICLES 5
#define EQR_NBODY_DT 0.001
#define EQR_NBODY_FRAME_STEPS 100
#define EQR_NBODY_FORCE_CLIP 100.0
#define EQR_NBODY_SPEED 0.5
#define EQR_NBODY_FRAME_IN 30
#define EQR_NBODY_FRAME_OUT 40
/* Time between the input and the target frame: 10 frames * 100 * dt. */
#define EQR_NBODY_HORIZON 1.0
#define EQR_NBODY_NUM_TRAIN 3000
#define EQR_NBODY_NUM_VAL 2000
#define EQR_NBODY_NUM_TEST 2000

typedef enum eqr_nbody_split {
    EQR_NBODY_TRAIN = 0,
    EQR_NBODY_VAL = 1,
    EQR_NBODY_TEST = 2
} eqr_nbody_split;

/* A set of n samples of p particles; arrays are malloc'd, row-major. */
typedef struct eqr_nbody_set {
    int64_t n;
    int p;        /* particles per system (5) */
    float *x;     /* [n, p, 3] positions at frame 30 (input) */
    float *v;     /* [n, p, 3] velocities at frame 30 (input) */
    float *q;     /* [n, p] charges, +1 or -1 (input) */
    float *y;     /* [n, p, 3] positions at frame 40 (target) */
} eqr_nbody_set;

/* Draw the initial state of one system of p particles from rng: charges
 * q[p] first, then positions x[p*3], then velocities v[p*3]. */
void eqr_nbody_init_state(eqr_rng *rng, int p, double *q, double *x, double *v);

/* Force on every particle for positions x[p*3], charges q[p]: writes
 * F[p*3], each component clipped to [-clip, clip] (clip <= 0: no clip). */
void eqr_nbody_forces(int p, const double *q, const double *x, double clip, double *F);

/* Total energy 0.5 sum |v_i|^2 + sum_{i<j} q_i q_j / |x_i - x_j|. */
double eqr_nbody_energy(int p, const double *q, const double *x, const double *v);

/* Integrate one system in place from its initial state (frame 0) with step
 * dt, forces clipped at clip, frame_steps steps per frame, up to frame
 * nframes: frames_x / frames_v (each (nframes + 1) * p * 3 doubles, or
 * NULL) receive frames 0 .. nframes. x, v end as frame nframes' state.
 * EQR_ERR_ARG for p < 1, dt <= 0, frame_steps < 1 or nframes < 0. */
eqr_status eqr_nbody_integrate(eqr_ctx *ctx, int p, const double *q, double *x, double *v,
                               double dt, double clip, int frame_steps, int nframes,
                               double *frames_x, double *frames_v);

/* Generate n samples of the standard task from seed (sample k uses a
 * generator seeded from (seed, k)). *out is filled (free with
 * eqr_nbody_free); on error it is left empty. EQR_ERR_ARG for n < 1. */
eqr_status eqr_nbody_generate(eqr_ctx *ctx, int64_t n, uint64_t seed, eqr_nbody_set *out);

/* The fixed seed of a split (three distinct values). */
uint64_t eqr_nbody_split_seed(eqr_nbody_split split);

/* The first n samples of a standard split (n <= 0: its full size,
 * 3000 / 2000 / 2000). */
eqr_status eqr_nbody_load_split(eqr_ctx *ctx, eqr_nbody_split split, int64_t n,
                                eqr_nbody_set *out);

void eqr_nbody_free(eqr_nbody_set *s);

/* Sanity baselines on a set: MSE (mean over samples, particles and
 * coordinates) of predicting no motion (y = x) and constant velocity
 * (y = x + EQR_NBODY_HORIZON * v). Computed in double precision. */
typedef struct eqr_nbody_baselines {
    double no_motion;
    double const_velocity;
} eqr_nbody_baselines;
eqr_status eqr_nbody_compute_baselines(eqr_ctx *ctx, const eqr_nbody_set *s,
                                       eqr_nbody_baselines *out);

#ifdef __cplusplus
}
#endif
#endif
