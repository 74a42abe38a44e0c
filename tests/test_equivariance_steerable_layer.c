/* Steerable convolutions, the layer's equivariance: exact on the grid
 * elements for every case, with stride 2 and padding 0, and within the
 * documented bound off the grid on smooth inputs. The basis is in
 * test_equivariance_steerable_basis.c, the forward reference, export,
 * gradients and errors in test_equivariance_steerable_forward.c. */

#include "testutil.h"
#include "tu_steerable.h"
#include "equirelax/steerable.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------- helpers */

/* Equivariance bound of one steerable conv here (tu_equiv_bound): sums of
 * <= C k k = 16 * 25 = 400 products (C <= 16 input channels, k <= 5), with
 * the bias and the filter expansion from its basis depth < 512; amp 20 =
 * sqrt(400) for sums of random sign. The grid action at multiples of 90
 * degrees is exact; the fibre rotations (cos, sin rounded) are the 3-term
 * (here 2-term) action rounding of the bound. */
#define STEER_TOL tu_equiv_bound(512, 20.0)

static eqr_tensor *fwd(eqr_ctx *ctx, void *model, eqr_tensor *x) {
    return eqr_steer_conv_forward(ctx, (eqr_steer_conv *)model, x);
}

/* Smooth input: every channel a sum of 3 Gaussian blobs (width 2.5 px,
 * centres within 7 px of the middle, N(0,1) amplitudes). */
static eqr_tensor *blobs(eqr_ctx *ctx, int64_t n, int64_t c, int64_t hw) {
    int64_t s[4] = {n, c, hw, hw};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, s);
    assert_non_null(x);
    eqr_rng *rng = eqr_ctx_rng(ctx);
    double mid = 0.5 * (double)(hw - 1);
    for (int64_t p = 0; p < n * c; p++)
        for (int b = 0; b < 3; b++) {
            double cx = mid + 14 * (eqr_rng_uniform(rng) - 0.5), cy = mid + 14 * (eqr_rng_uniform(rng) - 0.5);
            double amp = eqr_rng_normal(rng);
            for (int64_t i = 0; i < hw; i++)
                for (int64_t j = 0; j < hw; j++) {
                    double d2 = (i - cy) * (i - cy) + (j - cx) * (j - cx);
                    x->data[(p * hw + i) * hw + j] += (float)(amp * exp(-d2 / (2 * 2.5 * 2.5)));
                }
        }
    return x;
}

/* Elements of G that map the pixel grid onto itself: rotations by multiples
 * of 90 degrees contained in G, and their flips if G has flips. */
static int grid_elements(const eqr_group *G, eqr_gelem *out) {
    int n = 0;
    for (int f = 0; f <= eqr_group_has_flips(G); f++)
        for (int q = 0; q < 4; q++) {
            eqr_gelem g = eqr_gelem_of(f, q * HALF_PI);
            if (eqr_group_contains(G, g)) out[n++] = g;
        }
    return n;
}

/* Elements of a finite G off the grid (e.g. 45 degrees in C8). */
static int offgrid_elements(const eqr_group *G, eqr_gelem *out) {
    int n = 0;
    for (int i = 0; i < eqr_group_order(G); i++) {
        eqr_gelem g = eqr_group_element(G, i);
        if (!eqr_grid_exact(5, 5, g)) out[n++] = g;
    }
    return n;
}

/* ------------------------------------------------- layer: equivariance */

typedef struct lcase {
    eqr_group G;
    const char *in, *out;
    int k;
} lcase;

static const lcase layer_cases[] = {
    {{EQR_GROUP_CYCLIC, 4, 2}, "t1", "r2", 3},
    {{EQR_GROUP_CYCLIC, 4, 2}, "r2", "r2", 5},
    {{EQR_GROUP_CYCLIC, 4, 2}, "i0,1x1 i0,2x1", "i0,1x2 t1", 5},
    {{EQR_GROUP_CYCLIC, 4, 2}, "t1 r1 i0,1x1", "r1 t2 i0,2x1 i0,1x1", 3},
    {{EQR_GROUP_DIHEDRAL, 4, 2}, "t2", "r2", 3},
    {{EQR_GROUP_DIHEDRAL, 4, 2}, "r2", "r1", 5},
    {{EQR_GROUP_DIHEDRAL, 4, 2}, "i1,0x1 i0,1x1", "i0,1x1 i1,2x1 t1", 5},
    {{EQR_GROUP_DIHEDRAL, 4, 2}, "t1 r1 i0,1x1", "r1 i1,0x1 i0,1x2 t1", 3},
    {{EQR_GROUP_DIHEDRAL, 4, 2}, "t1 i0,1x1", "r1 i1,2x1", 4}, /* even k */
    {{EQR_GROUP_CYCLIC, 8, 4}, "t1", "r2", 5},
    {{EQR_GROUP_CYCLIC, 8, 4}, "r1", "r2", 5},
    {{EQR_GROUP_CYCLIC, 8, 4}, "i0,1x1 i0,3x1", "i0,2x1 i0,4x1 t1", 5},
    {{EQR_GROUP_CYCLIC, 8, 4}, "t1 r1 i0,3x1", "r1 t1 i0,1x1", 5},
    {{EQR_GROUP_DIHEDRAL, 8, 4}, "t1 i1,0x1", "r1 i0,3x1", 5},
    {{EQR_GROUP_CYCLIC, 16, 8}, "t1", "r1", 5},
    {{EQR_GROUP_CYCLIC, 16, 8}, "r1 i0,5x1", "r1 t1", 5},
    {{EQR_GROUP_SO2, 0, 3}, "t1", "i0,1x2 t1", 5},
    {{EQR_GROUP_SO2, 0, 3}, "i0,1x1 i0,2x1", "i0,3x1 t1 i0,1x1", 5},
    {{EQR_GROUP_SO2, 0, 3}, "t2 i0,1x1", "i0,2x1 t1", 3},
    {{EQR_GROUP_O2, 0, 3}, "t1", "i0,1x1 t1 i0,2x1", 5},
    {{EQR_GROUP_O2, 0, 3}, "i1,0x1 i0,1x1", "i0,1x1 i1,0x1 i0,3x1", 5},
    {{EQR_GROUP_O2, 0, 3}, "t1 i0,2x1", "i0,1x2 t1", 7},
};

static void test_layer_grid_exact(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(21);
    for (size_t c = 0; c < sizeof layer_cases / sizeof *layer_cases; c++) {
        const lcase *lc = &layer_cases[c];
        char gname[32];
        eqr_group_name(&lc->G, gname, sizeof gname);
        eqr_rep *in = tu_steer_type(ctx, &lc->G, lc->in), *out = tu_steer_type(ctx, &lc->G, lc->out);
        char name[32];
        snprintf(name, sizeof name, "L%zu", c);
        eqr_steer_conv_opts o = {0};
        o.geom = EQR_CONV2D(1, lc->k / 2, 1);
        eqr_steer_conv *L = eqr_steer_conv_create(ctx, name, in, out, lc->k, &o);
        if (!L) fail_msg("%s %s -> %s: %s", gname, lc->in, lc->out, eqr_error_message(ctx));
        assert_true(eqr_steer_conv_exact_on(L, 9, 9));
        /* a non-zero bias must not break equivariance */
        eqr_tensor *b = eqr_steer_conv_bias(L);
        if (b) eqr_tensor_normal(b, eqr_ctx_rng(ctx), 1.0f);
        eqr_tensor *x = tu_steer_randn(ctx, 2, in->dim, 9, 9, 1.0f);
        eqr_gelem gs[8];
        int ng = grid_elements(&lc->G, gs);
        assert_true(ng == (eqr_group_has_flips(&lc->G) ? 8 : 4));
        for (int i = 0; i < ng; i++) {
            double err = -1;
            if (eqr_equivariance_error(ctx, fwd, L, in, out, gs[i], x, NULL, &err) != EQR_OK)
                fail_msg("%s: %s", gname, eqr_error_message(ctx));
            if (!(err <= STEER_TOL))
                fail_msg("%s %s -> %s, element (flip %d, %g rad): error %g", gname, lc->in, lc->out,
                         gs[i].flip, gs[i].angle, err);
        }
        /* non-vacuous: the same output read with a wrong output type (all
         * channels taken as trivial fields) is not equivariant */
        if (out->dim > 1 && c % 4 == 1) {
            eqr_rep_part tp = eqr_part_irrep(eqr_irrep_of(&lc->G, 0, 0), out->dim);
            eqr_rep *wrong = eqr_rep_create(ctx, &lc->G, 1, &tp);
            double worst = 0, err;
            for (int i = 0; i < ng; i++) {
                assert_int_equal(eqr_equivariance_error(ctx, fwd, L, in, wrong, gs[i], x, NULL, &err), EQR_OK);
                worst = fmax(worst, err);
            }
            if (!(worst > 1e-2)) fail_msg("%s: wrong output type not detected (%g)", gname, worst);
            eqr_rep_destroy(wrong);
        }
        eqr_step_reset(ctx);
        eqr_steer_conv_destroy(L);
        eqr_rep_destroy(in);
        eqr_rep_destroy(out);
    }
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    eqr_ctx_destroy(ctx);
}

/* Stride 2 and padding 0: exact where the sampling is symmetric. */
static void test_layer_geometry(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(22);
    eqr_group G = eqr_group_dihedral(4);
    eqr_rep *in = tu_steer_type(ctx, &G, "r1 t1"), *out = tu_steer_type(ctx, &G, "r1 i0,1x1");
    eqr_steer_conv_opts o = {0};
    o.geom = EQR_CONV2D(2, 1, 1);
    eqr_steer_conv *L = eqr_steer_conv_create(ctx, "s2", in, out, 3, &o);
    assert_non_null(L);
    assert_true(eqr_steer_conv_exact_on(L, 9, 9));
    assert_false(eqr_steer_conv_exact_on(L, 8, 8));
    assert_false(eqr_steer_conv_exact_on(L, 9, 11));
    eqr_tensor *x = tu_steer_randn(ctx, 1, in->dim, 9, 9, 1.0f);
    double err;
    for (int i = 0; i < 8; i++) {
        assert_int_equal(eqr_equivariance_error(ctx, fwd, L, in, out, eqr_group_element(&G, i), x, NULL, &err), EQR_OK);
        assert_true(err <= STEER_TOL);
    }
    /* on 8 x 8 the sampling is shifted: equivariance breaks for rotations */
    eqr_tensor *x8 = tu_steer_randn(ctx, 1, in->dim, 8, 8, 1.0f);
    double worst = 0;
    for (int i = 0; i < 8; i++) {
        assert_int_equal(eqr_equivariance_error(ctx, fwd, L, in, out, eqr_group_element(&G, i), x8, NULL, &err), EQR_OK);
        worst = fmax(worst, err);
    }
    assert_true(worst > 1e-2);
    /* padding 0, k = 5 */
    eqr_steer_conv_opts o2 = {0};
    eqr_steer_conv *L2 = eqr_steer_conv_create(ctx, "p0", in, out, 5, &o2);
    assert_non_null(L2);
    eqr_tensor *x2 = tu_steer_randn(ctx, 2, in->dim, 10, 10, 1.0f);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(eqr_equivariance_error(ctx, fwd, L2, in, out, eqr_group_element(&G, i), x2, NULL, &err), EQR_OK);
        assert_true(err <= STEER_TOL);
    }
    /* D1 only flips x -> -x: the height axis need not be symmetric (the
     * same rule as eqr_gconv_exact_on), and the layer is then exact */
    eqr_group D1 = eqr_group_dihedral(1);
    eqr_rep *in1 = tu_steer_type(ctx, &D1, "r1 t1"), *out1 = tu_steer_type(ctx, &D1, "r1 i1,0x1");
    eqr_steer_conv *L3 = eqr_steer_conv_create(ctx, "d1", in1, out1, 3, &o);
    assert_non_null(L3);
    assert_true(eqr_steer_conv_exact_on(L3, 8, 9));
    assert_false(eqr_steer_conv_exact_on(L3, 9, 8));
    eqr_tensor *x3 = tu_steer_randn(ctx, 1, in1->dim, 8, 9, 1.0f);
    assert_int_equal(eqr_equivariance_error(ctx, fwd, L3, in1, out1, eqr_group_element(&D1, 1), x3, NULL, &err), EQR_OK);
    assert_true(err <= STEER_TOL);
    eqr_steer_conv_destroy(L);
    eqr_steer_conv_destroy(L2);
    eqr_steer_conv_destroy(L3);
    eqr_rep_destroy(in);
    eqr_rep_destroy(out);
    eqr_rep_destroy(in1);
    eqr_rep_destroy(out1);
    eqr_ctx_destroy(ctx);
}

/* Off-grid elements on smooth inputs, central disk: within the documented
 * tolerance (and measured: the figures are printed). */
static void test_off_grid_smooth(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(23);
    static const lcase cases[] = {
        {{EQR_GROUP_CYCLIC, 8, 4}, "t1", "r1", 5},
        {{EQR_GROUP_CYCLIC, 8, 4}, "r1 i0,1x1", "r1 t1", 5},
        {{EQR_GROUP_DIHEDRAL, 8, 4}, "t1 i1,0x1", "r1 i0,3x1", 5},
        {{EQR_GROUP_CYCLIC, 16, 8}, "t1", "r1", 5},
        {{EQR_GROUP_SO2, 0, 3}, "t1", "i0,1x1 t1 i0,2x1", 5},
        {{EQR_GROUP_SO2, 0, 3}, "i0,1x1 t1", "i0,3x1 i0,1x1", 5},
        {{EQR_GROUP_O2, 0, 3}, "t1 i0,2x1", "i0,1x1 i1,0x1 t1", 5},
        {{EQR_GROUP_CYCLIC, 8, 4}, "t1 i0,1x1 i0,2x1 i0,3x1 r1", "t1 i0,1x1 i0,2x1 i0,3x1 r1", 5},
        {{EQR_GROUP_CYCLIC, 6, 3}, "t1 i0,1x1 r1", "i0,2x1 r1", 7},
    };
    eqr_equiv_opts eo = {0.5};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const lcase *lc = &cases[c];
        char gname[32], name[16];
        eqr_group_name(&lc->G, gname, sizeof gname);
        eqr_rep *in = tu_steer_type(ctx, &lc->G, lc->in), *out = tu_steer_type(ctx, &lc->G, lc->out);
        snprintf(name, sizeof name, "O%zu", c);
        eqr_steer_conv_opts o = {0};
        o.geom = EQR_CONV2D(1, lc->k / 2, 1);
        eqr_steer_conv *L = eqr_steer_conv_create(ctx, name, in, out, lc->k, &o);
        assert_non_null(L);
        eqr_tensor *x = blobs(ctx, 1, in->dim, 33);
        eqr_gelem gs[40];
        int ng;
        if (eqr_group_is_finite(&lc->G)) {
            ng = offgrid_elements(&lc->G, gs);
        } else {
            ng = 0;
            for (int i = 0; i < 8; i++) gs[ng++] = eqr_group_sample(&lc->G, eqr_ctx_rng(ctx));
        }
        double worst = 0, err;
        for (int i = 0; i < ng; i++) {
            assert_int_equal(eqr_equivariance_error(ctx, fwd, L, in, out, gs[i], x, &eo, &err), EQR_OK);
            worst = fmax(worst, err);
        }
        print_message("off-grid %-12s %-18s -> %-22s max rel error %.4f over %d elements\n", gname, lc->in,
                      lc->out, worst, ng);
        if (!(worst <= EQR_STEER_OFFGRID_TOL))
            fail_msg("%s off-grid error %g > %g", gname, worst, EQR_STEER_OFFGRID_TOL);
        if (c == 7) {
            /* the moment correction matters: point samples are far worse */
            o.basis.point_sampling = 1;
            eqr_steer_conv *P = eqr_steer_conv_create(ctx, "pts", in, out, lc->k, &o);
            assert_non_null(P);
            double pw = 0;
            for (int i = 0; i < ng; i++) {
                assert_int_equal(eqr_equivariance_error(ctx, fwd, P, in, out, gs[i], x, &eo, &err), EQR_OK);
                pw = fmax(pw, err);
            }
            print_message("  same type with point sampling: %.4f\n", pw);
            assert_true(pw > 3 * worst);
            eqr_steer_conv_destroy(P);
        }
        eqr_step_reset(ctx);
        eqr_steer_conv_destroy(L);
        eqr_rep_destroy(in);
        eqr_rep_destroy(out);
    }
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layer_grid_exact),
        cmocka_unit_test(test_layer_geometry),
        cmocka_unit_test(test_off_grid_smooth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
