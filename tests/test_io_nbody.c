/* N-body generator (nbody.h): forces against hand-computed values, frame
 * bookkeeping, conservation laws with a tiny step, determinism per seed,
 * the prefix property of the splits, and the sanity baselines at the
 * documented levels on the test split. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void test_forces_by_hand(void **state) {
    (void)state;
    /* two like charges 2 apart on the x axis repel with 1/4 */
    double q[2] = {1, 1}, x[6] = {0, 0, 0, 2, 0, 0}, F[6];
    eqr_nbody_forces(2, q, x, 100, F);
    double want[6] = {-0.25, 0, 0, 0.25, 0, 0};
    for (int i = 0; i < 6; i++) assert_true(fabs(F[i] - want[i]) < 1e-15);
    /* opposite charges attract: F_0 points towards particle 1 */
    q[1] = -1;
    eqr_nbody_forces(2, q, x, 100, F);
    assert_true(F[0] > 0.2499 && F[3] < -0.2499);
    /* three particles, oblique: q0 q1 (x0-x1)/r^3 + q0 q2 (x0-x2)/r^3 */
    double q3[3] = {1, -1, 1}, x3[9] = {0.1, 0.2, -0.3, 1.0, -0.5, 0.4, -0.7, 0.9, 1.3}, F3[9];
    eqr_nbody_forces(3, q3, x3, 0, F3);
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < 3; c++) {
            double f = 0;
            for (int j = 0; j < 3; j++) {
                if (j == i) continue;
                double r2 = 0;
                for (int k = 0; k < 3; k++) r2 += pow(x3[3 * i + k] - x3[3 * j + k], 2);
                f += q3[i] * q3[j] * (x3[3 * i + c] - x3[3 * j + c]) / pow(r2, 1.5);
            }
            assert_true(fabs(F3[3 * i + c] - f) < 1e-12);
        }
    /* clipping per component at +-100: distance 0.05 gives 400 */
    double xc[6] = {0, 0, 0, 0.05, 0, 0};
    q[1] = 1;
    eqr_nbody_forces(2, q, xc, 100, F);
    assert_true(F[0] == -100.0 && F[3] == 100.0 && F[1] == 0.0);
    eqr_nbody_forces(2, q, xc, 0, F); /* clip <= 0: none */
    assert_true(fabs(F[0] + 400.0) < 1e-9);
}

static void test_init_state(void **state) {
    (void)state;
    eqr_rng rng;
    eqr_rng_seed(&rng, 7);
    int plus = 0, total = 0;
    double sx = 0, sx2 = 0;
    for (int s = 0; s < 2000; s++) {
        double q[5], x[15], v[15];
        eqr_nbody_init_state(&rng, 5, q, x, v);
        for (int i = 0; i < 5; i++) {
            assert_true(q[i] == 1.0 || q[i] == -1.0);
            plus += q[i] > 0;
            total++;
            double sp = sqrt(v[3 * i] * v[3 * i] + v[3 * i + 1] * v[3 * i + 1] +
                             v[3 * i + 2] * v[3 * i + 2]);
            assert_true(fabs(sp - 0.5) < 1e-12);
        }
        for (int i = 0; i < 15; i++) {
            sx += x[i];
            sx2 += x[i] * x[i];
        }
    }
    assert_true(fabs((double)plus / total - 0.5) < 0.02);
    assert_true(fabs(sx / 30000) < 0.03 && fabs(sx2 / 30000 - 1.0) < 0.04);
}

/* A lone particle moves at constant velocity: frame k is x0 + k * 100 dt v. */
static void test_frames_free_particle(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    double q[1] = {1}, x[3] = {0.5, -1, 2}, v[3] = {0.3, 0.1, -0.2};
    double fx[4 * 3], fv[4 * 3];
    assert_int_equal(eqr_nbody_integrate(ctx, 1, q, x, v, 0.01, 100, 100, 3, fx, fv), EQR_OK);
    for (int k = 0; k <= 3; k++)
        for (int c = 0; c < 3; c++) {
            double want = (c == 0 ? 0.5 : c == 1 ? -1 : 2) + k * 1.0 * fv[c];
            assert_true(fabs(fx[3 * k + c] - want) < 1e-12);
            assert_true(fv[3 * k + c] == fv[c]);
        }
    assert_true(fabs(x[0] - fx[9]) < 1e-15);
    /* bad arguments */
    assert_int_equal(eqr_nbody_integrate(ctx, 1, q, x, v, 0.0, 100, 100, 3, NULL, NULL),
                     EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "dt > 0");
    assert_int_equal(eqr_nbody_integrate(ctx, 1, q, x, v, 0.01, 100, 0, 3, NULL, NULL),
                     EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "frame_steps");
    eqr_ctx_destroy(ctx);
}

/* Energy and momentum with a tiny step and no clipping over a short run. */
static void test_conservation(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    eqr_rng rng;
    for (int s = 0; s < 5; s++) {
        eqr_rng_seed(&rng, 100 + (uint64_t)s);
        double q[5], x[15], v[15], fx[11 * 15], fv[11 * 15];
        eqr_nbody_init_state(&rng, 5, q, x, v);
        double p0[3] = {0, 0, 0};
        for (int i = 0; i < 5; i++)
            for (int c = 0; c < 3; c++) p0[c] += v[3 * i + c];
        double e0 = eqr_nbody_energy(5, q, x, v);
        /* dt 1e-5, 10 frames of 1000 steps: time 0.1 */
        assert_int_equal(eqr_nbody_integrate(ctx, 5, q, x, v, 1e-5, 0, 1000, 10, fx, fv), EQR_OK);
        double worst = 0, moved = 0;
        for (int k = 1; k <= 10; k++) {
            double e = eqr_nbody_energy(5, q, fx + 15 * k, fv + 15 * k);
            worst = fmax(worst, fabs(e - e0));
            for (int i = 0; i < 15; i++) moved = fmax(moved, fabs(fx[15 * k + i] - fx[i]));
        }
        /* the frame velocities trail the positions by half a step: O(dt) */
        assert_true(worst < 1e-3 * fmax(1.0, fabs(e0)));
        assert_true(moved > 0.01); /* the system did move */
        double p1[3] = {0, 0, 0};
        for (int i = 0; i < 5; i++)
            for (int c = 0; c < 3; c++) p1[c] += v[3 * i + c];
        for (int c = 0; c < 3; c++) assert_true(fabs(p1[c] - p0[c]) < 1e-9);
    }
    eqr_ctx_destroy(ctx);
}

static int same_set(const eqr_nbody_set *a, const eqr_nbody_set *b, int64_t n) {
    size_t nv = (size_t)n * 15 * sizeof(float);
    return !memcmp(a->x, b->x, nv) && !memcmp(a->v, b->v, nv) && !memcmp(a->y, b->y, nv) &&
           !memcmp(a->q, b->q, (size_t)n * 5 * sizeof(float));
}

static void test_determinism_and_splits(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    eqr_nbody_set a, b, c, tr, va;
    assert_int_equal(eqr_nbody_generate(ctx, 40, 123, &a), EQR_OK);
    assert_int_equal(eqr_nbody_generate(ctx, 40, 123, &b), EQR_OK);
    assert_int_equal(eqr_nbody_generate(ctx, 20, 124, &c), EQR_OK);
    assert_int_equal(a.n, 40);
    assert_int_equal(a.p, 5);
    assert_true(same_set(&a, &b, 40));
    assert_false(same_set(&a, &c, 20));
    /* a smaller set is a prefix of the larger one */
    eqr_nbody_free(&b);
    assert_int_equal(eqr_nbody_generate(ctx, 15, 123, &b), EQR_OK);
    assert_true(same_set(&a, &b, 15));
    /* the splits use distinct seeds */
    assert_int_equal(eqr_nbody_load_split(ctx, EQR_NBODY_TRAIN, 10, &tr), EQR_OK);
    assert_int_equal(eqr_nbody_load_split(ctx, EQR_NBODY_VAL, 10, &va), EQR_OK);
    assert_false(same_set(&tr, &va, 10));
    assert_true(eqr_nbody_split_seed(EQR_NBODY_TRAIN) != eqr_nbody_split_seed(EQR_NBODY_VAL));
    assert_true(eqr_nbody_split_seed(EQR_NBODY_VAL) != eqr_nbody_split_seed(EQR_NBODY_TEST));
    assert_true(eqr_nbody_split_seed(EQR_NBODY_TRAIN) != eqr_nbody_split_seed(EQR_NBODY_TEST));
    /* sample values are finite and the targets moved */
    double moved = 0;
    for (int64_t i = 0; i < 40 * 15; i++) {
        assert_true(isfinite(a.x[i]) && isfinite(a.v[i]) && isfinite(a.y[i]));
        moved += fabs(a.y[i] - a.x[i]);
    }
    assert_true(moved > 0);
    /* baselines equal a recomputation */
    eqr_nbody_baselines bl;
    assert_int_equal(eqr_nbody_compute_baselines(ctx, &a, &bl), EQR_OK);
    double s0 = 0, s1 = 0;
    for (int64_t i = 0; i < 40 * 15; i++) {
        s0 += pow((double)a.y[i] - a.x[i], 2);
        s1 += pow((double)a.y[i] - a.x[i] - a.v[i], 2);
    }
    assert_true(fabs(bl.no_motion - s0 / 600) < 1e-12 && fabs(bl.const_velocity - s1 / 600) < 1e-12);
    /* errors */
    eqr_nbody_set e;
    assert_int_equal(eqr_nbody_generate(ctx, 0, 1, &e), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "sample count");
    assert_null(e.x);
    assert_int_equal(eqr_nbody_compute_baselines(ctx, &e, &bl), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "eqr_nbody_compute_baselines");
    eqr_nbody_free(&a);
    eqr_nbody_free(&b);
    eqr_nbody_free(&c);
    eqr_nbody_free(&tr);
    eqr_nbody_free(&va);
    eqr_nbody_free(NULL);
    eqr_ctx_destroy(ctx);
}

/* DESIGN.md: on the test split, no motion ~0.27 and constant velocity ~0.11. */
static void test_baselines_documented(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    eqr_nbody_set t;
    assert_int_equal(eqr_nbody_load_split(ctx, EQR_NBODY_TEST, 0, &t), EQR_OK);
    assert_int_equal(t.n, EQR_NBODY_NUM_TEST);
    eqr_nbody_baselines b;
    assert_int_equal(eqr_nbody_compute_baselines(ctx, &t, &b), EQR_OK);
    printf("# test split: no motion %.4f, constant velocity %.4f\n", b.no_motion,
           b.const_velocity);
    assert_true(b.no_motion > 0.24 && b.no_motion < 0.30);
    assert_true(b.const_velocity > 0.095 && b.const_velocity < 0.13);
    eqr_nbody_free(&t);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forces_by_hand),
        cmocka_unit_test(test_init_state),
        cmocka_unit_test(test_frames_free_particle),
        cmocka_unit_test(test_conservation),
        cmocka_unit_test(test_determinism_and_splits),
        cmocka_unit_test(test_baselines_documented),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
