/* eqr_invariance_max (src/measure/dataset_invariance.c): 0 for an
 * invariant classifier, the error computed independently here in double
 * for a non-invariant one (per sample, the largest over samples and the
 * grid-exact elements), which elements act on non-square images, the store
 * and RNG left as found, and its errors. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S 6 /* square images S x S */

/* f(x) = [sum_p w_p x_p, sum_p x_p] per image: the second entry is
 * invariant, the first is not unless w is. */
typedef struct pix_model {
    eqr_tensor *w; /* [2, H*W] */
    int bump;      /* 1: the forward changes the store (as a BN update) */
} pix_model;

static eqr_tensor *fw(eqr_ctx *ctx, void *mm, eqr_tensor *x) {
    pix_model *m = mm;
    if (m->bump) { /* both undone by the measurement before the next forward */
        m->w->data[0] += 1.0f;
        m->w->data[1] += (float)eqr_rng_uniform(eqr_ctx_rng(ctx));
    }
    int64_t s2[2] = {x->shape[0], x->shape[2] * x->shape[3]};
    return eqr_linear(ctx, eqr_reshape(ctx, x, 2, s2), m->w, NULL);
}

static pix_model model(eqr_ctx *ctx, const char *name, int h, int w, int symmetric) {
    int64_t ws[2] = {2, (int64_t)h * w};
    pix_model m = {eqr_param_create(ctx, name, 2, ws, 0), 0};
    assert_non_null(m.w);
    tu_fill_uniform(m.w->data, h * w, 3);
    for (int p = 0; p < h * w; p++) {
        if (symmetric) m.w->data[p] = 0.5f;
        m.w->data[h * w + p] = 1.0f;
    }
    return m;
}

static void dataset(eqr_dataset *ds, int64_t n, int h, int w) {
    *ds = (eqr_dataset){.n = n, .c = 1, .h = h, .w = w, .classes = 2};
    ds->x = malloc((size_t)(n * h * w) * sizeof(float));
    ds->y = calloc((size_t)n, sizeof(int32_t));
    tu_fill_uniform(ds->x, n * h * w, 7);
    for (int64_t i = 0; i < n * h * w; i++) ds->x[i] = 0.5f * (ds->x[i] + 1.0f); /* [0, 1] */
}

/* Source pixel of output pixel (i, j) under the quarter turn (k = 1..3,
 * counterclockwise, as eqr_grid_act) or the flip j -> w-1-j (k = 4). The
 * test uses only errors over all of C4 or D4, so the direction of the turn
 * does not matter. */
static int src_pixel(int k, int i, int j) {
    switch (k) {
    case 1: return j * S + (S - 1 - i);
    case 2: return (S - 1 - i) * S + (S - 1 - j);
    case 3: return (S - 1 - j) * S + i;
    default: return i * S + (S - 1 - j);
    }
}

/* The expected largest error in double over the 3 rotations (C4) or the
 * 7 non-identity elements of D4 (compositions of turns and the flip), and
 * the largest relative condition of f's entries (sum |w x| / |f|). */
static double expected(const pix_model *m, const eqr_dataset *ds, int d4, double *cond) {
    double worst = 0;
    *cond = 1;
    for (int64_t s = 0; s < ds->n; s++) {
        const float *x = ds->x + s * S * S;
        double f0[2] = {0, 0}, mag = 0;
        for (int p = 0; p < S * S; p++) {
            f0[0] += (double)m->w->data[p] * x[p];
            f0[1] += x[p];
            mag += fabs((double)m->w->data[p] * x[p]);
        }
        if (mag / fabs(f0[0]) > *cond) *cond = mag / fabs(f0[0]);
        for (int flip = 0; flip <= d4; flip++)
            for (int k = 0; k < 4; k++) {
                if (!flip && !k) continue;
                double f1 = 0;
                for (int i = 0; i < S; i++)
                    for (int j = 0; j < S; j++) {
                        int p = i * S + j; /* flip, then turn k */
                        int q = k ? src_pixel(k, i, j) : p;
                        if (flip) q = src_pixel(4, q / S, q % S);
                        f1 += (double)m->w->data[p] * x[q];
                    }
                /* the invariant entry is unchanged: only entry 0 moves */
                double e = fabs(f1 - f0[0]) / sqrt(f0[0] * f0[0] + f0[1] * f0[1]);
                if (e > worst) worst = e;
            }
    }
    return worst;
}

static void test_values(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    eqr_dataset ds;
    dataset(&ds, 9, S, S);
    for (int d4 = 0; d4 <= 1; d4++) {
        pix_model m = model(ctx, d4 ? "w4" : "w1", S, S, 0);
        eqr_group G = d4 ? eqr_group_dihedral(4) : eqr_group_cyclic(4);
        double err = -1, cond;
        /* batch 4 over 9 samples: a short last batch */
        assert_int_equal(eqr_invariance_max(ctx, fw, &m, &G, &ds, 9, 4, &err), EQR_OK);
        double want = expected(&m, &ds, d4, &cond);
        /* Each float32 entry is a sum of S*S products, within
         * gamma_{S*S} * cond of its exact value relative to itself; the
         * ratio of two such (numerator a difference of entries near f0)
         * moves by <= 4 gamma cond (1 + want) in absolute terms. */
        double tol = 4 * tu_gamma(S * S + 2) * cond * (1 + want);
        assert_true(want > 0.01);
        if (fabs(err - want) > tol) fail_msg("d4=%d: got %.9g, expected %.9g (tol %.3g)", d4, err, want, tol);
        /* G NULL is C4 */
        if (!d4) {
            double e2 = -1;
            assert_int_equal(eqr_invariance_max(ctx, fw, &m, NULL, &ds, 9, 0, &e2), EQR_OK);
            assert_true(fabs(e2 - want) <= tol);
        }
        /* an invariant model: both entries exactly sums of the same
         * values in another order, within 2 gamma_{S*S} of each other */
        pix_model sym = model(ctx, d4 ? "s4" : "s1", S, S, 1);
        assert_int_equal(eqr_invariance_max(ctx, fw, &sym, &G, &ds, 9, 0, &err), EQR_OK);
        assert_true(err <= 2 * tu_gamma(S * S + 1));
    }
    eqr_dataset_free(&ds);
    eqr_ctx_destroy(ctx);
}

/* On a 4 x 6 image only the half turn (and, for D4, the flips) act
 * exactly: a model invariant to exactly those gives 0, a model that is not
 * gives > 0; C1 (no element besides e) gives 0. */
static void test_non_square(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(2);
    eqr_dataset ds;
    dataset(&ds, 5, 4, 6);
    pix_model m = model(ctx, "w", 4, 6, 0);
    /* w invariant under the half turn: w(i, j) = w(3-i, 5-j) */
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 6; j++) m.w->data[i * 6 + j] = m.w->data[(3 - i) * 6 + (5 - j)];
    eqr_group c4 = eqr_group_cyclic(4), d4 = eqr_group_dihedral(4), c1 = eqr_group_cyclic(1);
    double err = -1;
    assert_int_equal(eqr_invariance_max(ctx, fw, &m, &c4, &ds, 5, 0, &err), EQR_OK);
    assert_true(err <= 2 * tu_gamma(25));
    assert_int_equal(eqr_invariance_max(ctx, fw, &m, &d4, &ds, 5, 0, &err), EQR_OK);
    assert_true(err > 0.01); /* the flips move the non-symmetric w */
    assert_int_equal(eqr_invariance_max(ctx, fw, &m, &c1, &ds, 5, 0, &err), EQR_OK);
    assert_true(err == 0);
    eqr_dataset_free(&ds);
    eqr_ctx_destroy(ctx);
}

/* A forward that changes the store (as a training-mode batch norm) and
 * draws from the RNG: every forward sees the starting state, and the
 * measurement leaves both as they were. */
static void test_state_restored(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(3);
    eqr_dataset ds;
    dataset(&ds, 6, S, S);
    pix_model m = model(ctx, "w", S, S, 1);
    float w0 = m.w->data[0];
    eqr_rng before = *eqr_ctx_rng(ctx);
    m.bump = 1;
    double err = -1;
    assert_int_equal(eqr_invariance_max(ctx, fw, &m, NULL, &ds, 6, 2, &err), EQR_OK);
    assert_true(m.w->data[0] == w0);
    assert_memory_equal(&before, eqr_ctx_rng(ctx), sizeof before);
    /* Every forward saw the same bumped weights: the same measurement of a
     * model holding them (and not bumping) gives bit for bit the same. */
    eqr_rng r = before;
    float w1 = m.w->data[1];
    m.w->data[0] = w0 + 1.0f;
    m.w->data[1] = w1 + (float)eqr_rng_uniform(&r);
    m.bump = 0;
    double want = -1;
    assert_int_equal(eqr_invariance_max(ctx, fw, &m, NULL, &ds, 6, 2, &want), EQR_OK);
    assert_true(want > 0.01);
    assert_true(err == want);
    eqr_dataset_free(&ds);
    eqr_ctx_destroy(ctx);
}

static eqr_tensor *fw_bad_shape(eqr_ctx *ctx, void *mm, eqr_tensor *x) {
    (void)mm;
    return x; /* [N, 1, H, W], not [N, K] */
}

static void test_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(4);
    eqr_dataset ds;
    dataset(&ds, 3, S, S);
    pix_model m = model(ctx, "w", S, S, 0);
    double err;
    eqr_group so2 = eqr_group_so2(4);
    tu_assert_error(ctx, eqr_invariance_max(ctx, NULL, &m, NULL, &ds, 3, 0, &err), "NULL argument f");
    tu_assert_error(ctx, eqr_invariance_max(ctx, fw, &m, NULL, NULL, 3, 0, &err), "NULL argument ds");
    tu_assert_error(ctx, eqr_invariance_max(ctx, fw, &m, NULL, &ds, 4, 0, &err), "0 <= n <= 3");
    tu_assert_error(ctx, eqr_invariance_max(ctx, fw, &m, NULL, &ds, 2, -1, &err), "batch >= 0");
    tu_assert_error(ctx, eqr_invariance_max(ctx, fw, &m, &so2, &ds, 3, 0, &err), "must be finite");
    tu_assert_error(ctx, eqr_invariance_max(ctx, fw_bad_shape, &m, NULL, &ds, 3, 0, &err),
                    "the output must be [3, K]");
    eqr_dataset_free(&ds);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_non_square),
        cmocka_unit_test(test_state_restored),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
