/* Groups: actions on grids, filter banks, regular fields and general field
 * types (exact index permutations and bilinear rotation). */
#include "testutil.h"
#include "equirelax/groups.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846
#define TWO_PI (2 * PI)

static eqr_tensor *rand_tensor(eqr_ctx *ctx, int ndim, const int64_t *shape) {
    eqr_tensor *t = eqr_tensor_zeros(ctx, ndim, shape);
    assert_non_null(t);
    eqr_tensor_normal(t, eqr_ctx_rng(ctx), 1.0f);
    return t;
}

static void assert_same(const eqr_tensor *a, const eqr_tensor *b) {
    assert_non_null(a);
    assert_non_null(b);
    assert_true(eqr_tensor_same_shape(a, b));
    assert_memory_equal(a->data, b->data, (size_t)a->numel * sizeof(float));
}

static float maxabs_diff(const eqr_tensor *a, const eqr_tensor *b) {
    float m = 0;
    for (int64_t i = 0; i < a->numel; i++) m = fmaxf(m, fabsf(a->data[i] - b->data[i]));
    return m;
}

/* Largest row sum of |rho(g)| (eqr_rep_matrix, double). */
static double rowsum_max(const eqr_rep *rep, eqr_gelem g) {
    double M[64 * 64], m = 0;
    assert_true(rep->dim <= 64);
    eqr_rep_matrix(rep, g, M);
    for (int i = 0; i < rep->dim; i++) {
        double s = 0;
        for (int j = 0; j < rep->dim; j++) s += fabs(M[i * rep->dim + j]);
        m = fmax(m, s);
    }
    return m;
}

static double maxabs_t(const eqr_tensor *a) {
    double m = 0;
    for (int64_t i = 0; i < a->numel; i++) m = fmax(m, fabs((double)a->data[i]));
    return m;
}

/* Bound on |rho(g) rho(h) x - rho(gh) x| for grid-exact g, h (the spatial
 * moves are permutations, exact): each eqr_rep_act mixes the channels of a
 * block with the float irrep matrix (u per entry) in <= 2-term float sums,
 * gamma_3 of |rho||x|; the inner result's error passes through |rho(g)|. */
static double homo_bound(const eqr_rep *rep, eqr_gelem g, eqr_gelem h, eqr_gelem gh, const eqr_tensor *x) {
    const double a = rowsum_max(rep, g), b = rowsum_max(rep, h), c = rowsum_max(rep, gh), g3 = tu_gamma(3);
    return (g3 * (a * b + a * b * (1 + g3) + c) + 1e-15) * maxabs_t(x) * (1 + TU_U);
}

/* --------------------------------------------------------- exact grid */

/* +90 deg is numpy's rot90 (out[i][j] = in[j][n-1-i]), flip is fliplr. */
static void test_exact_rotation_and_flip(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    for (int n = 5; n <= 6; n++) {
        int64_t s[4] = {2, 3, n, n};
        eqr_tensor *x = rand_tensor(ctx, 4, s);
        eqr_tensor *r = eqr_grid_act(ctx, eqr_gelem_of(0, PI / 2), x);
        eqr_tensor *f = eqr_grid_act(ctx, eqr_gelem_of(1, 0), x);
        assert_non_null(r);
        assert_non_null(f);
        for (int p = 0; p < 6; p++)
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) {
                    const float *xp = x->data + p * n * n;
                    assert_true(r->data[p * n * n + i * n + j] == xp[j * n + (n - 1 - i)]);
                    assert_true(f->data[p * n * n + i * n + j] == xp[i * n + (n - 1 - j)]);
                }
        /* four quarter turns and two flips are the identity */
        eqr_tensor *y = x;
        for (int k = 0; k < 4; k++) y = eqr_grid_act(ctx, eqr_gelem_of(0, PI / 2), y);
        assert_same(y, x);
        assert_same(eqr_grid_act(ctx, eqr_gelem_of(1, 0), f), x);
        /* every reflection is an involution */
        eqr_gelem fr = eqr_gelem_of(1, PI / 2);
        assert_same(eqr_grid_act(ctx, fr, eqr_grid_act(ctx, fr, x)), x);
    }
    /* the identity copies; a 2x3 non-square flip reverses columns */
    int64_t s2[2] = {2, 3};
    float v[6] = {1, 2, 3, 4, 5, 6}, fv[6] = {3, 2, 1, 6, 5, 4}, rv[6] = {6, 5, 4, 3, 2, 1};
    eqr_tensor *x = eqr_tensor_from(ctx, 2, s2, v);
    assert_memory_equal(eqr_grid_act(ctx, eqr_group_identity(), x)->data, v, sizeof v);
    assert_memory_equal(eqr_grid_act(ctx, eqr_gelem_of(1, 0), x)->data, fv, sizeof fv);
    assert_memory_equal(eqr_grid_act(ctx, eqr_gelem_of(0, PI), x)->data, rv, sizeof rv);
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    eqr_ctx_destroy(ctx);
}

/* g1 . (g2 . x) == (g1 g2) . x bitwise, for all of D4 on square grids and
 * for the 180-degree / flip subgroup D2 on non-square grids. */
static void test_grid_homomorphism(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(2);
    static const int sizes[4][2] = {{5, 5}, {6, 6}, {4, 7}, {5, 6}};
    for (int t = 0; t < 4; t++) {
        int h = sizes[t][0], w = sizes[t][1];
        eqr_group G = eqr_group_dihedral(h == w ? 4 : 2);
        int n = eqr_group_order(&G);
        int64_t s[3] = {3, h, w};
        eqr_tensor *x = rand_tensor(ctx, 3, s);
        for (int a = 0; a < n; a++) {
            eqr_gelem ga = eqr_group_element(&G, a);
            assert_true(eqr_grid_exact(h, w, ga));
            for (int b = 0; b < n; b++) {
                eqr_gelem gb = eqr_group_element(&G, b);
                eqr_tensor *l = eqr_grid_act(ctx, ga, eqr_grid_act(ctx, gb, x));
                eqr_tensor *r = eqr_grid_act(ctx, eqr_group_compose(&G, ga, gb), x);
                assert_same(l, r);
            }
        }
        if (h != w) assert_false(eqr_grid_exact(h, w, eqr_gelem_of(0, PI / 2)));
        eqr_step_reset(ctx);
    }
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    eqr_ctx_destroy(ctx);
}

/* A unit impulse at p moves to g p, with g p computed by the frequency-1
 * irrep of D4: grid action, plane action and irreps agree. */
static void test_geometry_impulse(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(3);
    eqr_group D4 = eqr_group_dihedral(4);
    eqr_irrep std = eqr_irrep_of(&D4, 0, 1);
    for (int n = 8; n <= 9; n++) {
        int64_t s[2] = {n, n};
        double c = 0.5 * (n - 1);
        int pi = 1, pj = n - 3; /* off-centre, off-diagonal pixel */
        eqr_tensor *x = eqr_tensor_zeros(ctx, 2, s);
        x->data[pi * n + pj] = 1.0f;
        double px = pj - c, py = c - pi;
        for (int a = 0; a < 8; a++) {
            eqr_gelem g = eqr_group_element(&D4, a);
            double m[4];
            assert_int_equal(eqr_irrep_matrix(&D4, std, g, m), 2);
            double qx = m[0] * px + m[1] * py, qy = m[2] * px + m[3] * py;
            int qi = (int)lround(c - qy), qj = (int)lround(qx + c);
            eqr_tensor *y = eqr_grid_act(ctx, g, x);
            for (int k = 0; k < n * n; k++) assert_true(y->data[k] == (k == qi * n + qj ? 1.0f : 0.0f));
        }
    }
    eqr_ctx_destroy(ctx);
}

/* --------------------------------------------------- precomputed maps */

static void test_grid_map(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(4);
    /* exact: a permutation, equal to the tensor action */
    eqr_gelem g = eqr_gelem_of(1, 3 * PI / 2);
    eqr_grid_map *m = eqr_grid_map_create(ctx, 6, 6, g);
    assert_non_null(m);
    assert_true(m->exact);
    assert_null(m->idx);
    char seen[36] = {0};
    for (int p = 0; p < 36; p++) {
        assert_true(m->src[p] >= 0 && m->src[p] < 36);
        seen[m->src[p]]++;
    }
    for (int p = 0; p < 36; p++) assert_int_equal(seen[p], 1);
    int64_t s[3] = {4, 6, 6};
    eqr_tensor *x = rand_tensor(ctx, 3, s);
    float out[4 * 36];
    eqr_grid_map_apply(m, x->data, out, 4);
    assert_memory_equal(out, eqr_grid_act(ctx, g, x)->data, sizeof out);
    eqr_grid_map_destroy(m);
    /* bilinear: 4 taps in the grid, weights in [0,1] summing to 1 inside */
    m = eqr_grid_map_create(ctx, 9, 9, eqr_gelem_of(0, 0.3));
    assert_non_null(m);
    assert_false(m->exact);
    assert_null(m->src);
    for (int i = 0; i < 9; i++)
        for (int j = 0; j < 9; j++) {
            float sum = 0;
            for (int t = 0; t < 4; t++) {
                float wt = m->wt[4 * (i * 9 + j) + t];
                assert_true(wt >= 0.0f && wt <= 1.0f);
                assert_true(m->idx[4 * (i * 9 + j) + t] >= 0 && m->idx[4 * (i * 9 + j) + t] < 81);
                sum += wt;
            }
            double r2 = (i - 4.0) * (i - 4.0) + (j - 4.0) * (j - 4.0);
            /* the double weights sum to 1 (to 4 eps), each rounds to float
             * (u in all), the float sum of 4 adds gamma_3 */
            if (r2 <= 9.0) assert_true(fabsf(sum - 1.0f) <= TU_U + tu_gamma(3) * (1 + TU_U) + 1e-15);
        }
    eqr_grid_map_destroy(m);
    eqr_grid_map_destroy(NULL);
    /* errors */
    assert_null(eqr_grid_map_create(ctx, 0, 5, g));
    tu_assert_error(ctx, EQR_ERR_ARG, "grid 0 x 5");
    assert_null(eqr_grid_map_create(ctx, 5, 5, eqr_gelem_of(2, 0.0)));
    tu_assert_error(ctx, EQR_ERR_ARG, "flip");
    eqr_gelem nan_g = {0, NAN};
    assert_null(eqr_grid_map_create(ctx, 5, 5, nan_g));
    tu_assert_error(ctx, EQR_ERR_ARG, "finite angle");
    eqr_ctx_destroy(ctx);
}

/* ------------------------------------------------------------ bilinear */

/* Gaussian bump of width sigma centred at (cx, cy) in grid coordinates. */
static double bump(double x, double y, double cx, double cy, double sigma) {
    double dx = x - cx, dy = y - cy;
    return exp(-(dx * dx + dy * dy) / (2 * sigma * sigma));
}

/* Max error of g . f against the analytic f(g^-1 p) on the disk of radius R
 * (or against f(g p) when wrong_way, to prove the check can fail). */
static double bump_error(eqr_ctx *ctx, int n, eqr_gelem g, double R, int wrong_way) {
    const double cx0 = 5.0, cy0 = -3.0, sigma = 2.5, c = 0.5 * (n - 1);
    int64_t s[2] = {n, n};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 2, s);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) x->data[i * n + j] = (float)bump(j - c, c - i, cx0, cy0, sigma);
    eqr_tensor *y = eqr_grid_act(ctx, g, x);
    assert_non_null(y);
    double m[4];
    eqr_gelem_matrix(wrong_way ? g : eqr_group_inverse(NULL, g), m);
    double err = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double px = j - c, py = c - i;
            if (px * px + py * py > R * R) continue;
            double qx = m[0] * px + m[1] * py, qy = m[2] * px + m[3] * py;
            err = fmax(err, fabs(y->data[i * n + j] - bump(qx, qy, cx0, cy0, sigma)));
        }
    return err;
}

static void test_bilinear_gaussian(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(5);
    static const double angles[] = {0.05, 0.1, 0.35, 0.8, 2.5, 4.0};
    double worst = 0;
    for (int n = 40; n <= 41; n++)
        for (int f = 0; f < 2; f++)
            for (size_t a = 0; a < sizeof angles / sizeof *angles; a++) {
                eqr_gelem g = eqr_gelem_of(f, angles[a]);
                assert_false(eqr_grid_exact(n, n, g));
                double e = bump_error(ctx, n, g, 15.0, 0);
                worst = fmax(worst, e);
                /* leading bilinear error: (s(1-s) |f_xx| + t(1-t) |f_yy|) / 2
                 * <= (1/4)(2/sigma^2)/2 = 1/(4 sigma^2) = 0.04 for sigma = 2.5 */
                if (e > 0.04) fail_msg("n=%d flip=%d angle=%g: max error %g > 0.04", n, f, angles[a], e);
                /* the opposite rotation direction is clearly wrong */
                if (f == 0 && angles[a] > 0.3) assert_true(bump_error(ctx, n, g, 15.0, 1) > 0.3);
                eqr_step_reset(ctx);
            }
    print_message("bilinear gaussian (sigma 2.5): worst max error on r<=15 disk = %.4f\n", worst);
    /* exact elements through the same check have no error at all */
    /* (bump <= 1 rounded to float once; the double matrix of pi/2 moves q by 1e-16) */
    assert_true(bump_error(ctx, 41, eqr_gelem_of(1, PI / 2), 15.0, 0) <= TU_U + 1e-14);
    eqr_ctx_destroy(ctx);
}

/* Just off a quarter turn the bilinear path must agree with the exact path:
 * the two code paths share one convention. */
static void test_bilinear_matches_exact(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(6);
    for (int n = 6; n <= 7; n++) {
        int64_t s[3] = {2, n, n};
        eqr_tensor *x = rand_tensor(ctx, 3, s);
        for (int f = 0; f < 2; f++)
            for (int q = 0; q < 4; q++) {
                eqr_gelem ge = eqr_gelem_of(f, q * PI / 2), gb = eqr_gelem_of(f, q * PI / 2 + 1e-6);
                assert_true(eqr_grid_exact(n, n, ge));
                assert_false(eqr_grid_exact(n, n, gb));
                eqr_tensor *ye = eqr_grid_act(ctx, ge, x), *yb = eqr_grid_act(ctx, gb, x);
                /* the 1e-6 turn moves each source point by d <= 1e-6 r (r <=
                 * sqrt(2) (n - 1) / 2) on each axis: the bilinear weights move
                 * <= 2 d off the exact tap, the value by <= 4 d max|x|; then
                 * the float weights and 4-term sum (gamma_5 max|x|) */
                const double mx = maxabs_t(x), d = 1e-6 * sqrt(2.0) * (n - 1) / 2;
                assert_true(maxabs_diff(ye, yb) <= (4 * d + tu_gamma(5)) * mx * (1 + TU_U));
            }
    }
    eqr_ctx_destroy(ctx);
}

/* -------------------------------------------------------- filter banks */

static void test_filters(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(7);
    eqr_group D4 = eqr_group_dihedral(4);
    for (int k = 3; k <= 4; k++) {
        int64_t s[4] = {4, 3, k, k};
        eqr_tensor *w = rand_tensor(ctx, 4, s);
        eqr_tensor *r = eqr_filters_act(ctx, eqr_gelem_of(0, PI / 2), w);
        assert_non_null(r);
        for (int p = 0; p < 12; p++)
            for (int i = 0; i < k; i++)
                for (int j = 0; j < k; j++)
                    assert_true(r->data[(p * k + i) * k + j] == w->data[(p * k + j) * k + (k - 1 - i)]);
        for (int a = 0; a < 8; a++)
            for (int b = 0; b < 8; b++) {
                eqr_gelem ga = eqr_group_element(&D4, a), gb = eqr_group_element(&D4, b);
                assert_same(eqr_filters_act(ctx, ga, eqr_filters_act(ctx, gb, w)),
                            eqr_filters_act(ctx, eqr_group_compose(&D4, ga, gb), w));
            }
    }
    int64_t bad[4] = {2, 2, 3, 4};
    assert_null(eqr_filters_act(ctx, eqr_group_identity(), eqr_tensor_zeros(ctx, 4, bad)));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "[2,2,3,4]");
    eqr_ctx_destroy(ctx);
}

/* ------------------------------------------------------ regular fields */

static void test_regular_fields(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(8);
    eqr_group gs[2] = {eqr_group_cyclic(4), eqr_group_dihedral(4)};
    for (int t = 0; t < 2; t++)
        for (int n = 5; n <= 6; n++) {
            const eqr_group *G = &gs[t];
            int order = eqr_group_order(G), C = 3;
            int64_t s[4] = {2, C * order, n, n};
            eqr_tensor *x = rand_tensor(ctx, 4, s);
            int64_t hw = n * n;
            for (int a = 0; a < order; a++) {
                eqr_gelem g = eqr_group_element(G, a);
                eqr_tensor *y = eqr_regular_act(ctx, G, g, x);
                assert_non_null(y);
                /* out[b, c|G| + h] = spatial(g)(in[b, c|G| + index(g^-1 h)]) */
                eqr_tensor *sp = eqr_grid_act(ctx, g, x);
                eqr_gelem gi = eqr_group_inverse(G, g);
                for (int b = 0; b < 2; b++)
                    for (int c = 0; c < C; c++)
                        for (int h = 0; h < order; h++) {
                            int src = eqr_group_index(G, eqr_group_compose(G, gi, eqr_group_element(G, h)));
                            const float *want = sp->data + ((b * C + c) * order + src) * hw;
                            const float *got = y->data + ((b * C + c) * order + h) * hw;
                            assert_memory_equal(got, want, hw * sizeof(float));
                        }
                /* the [N, C, |G|, H, W] layout is the same memory */
                int64_t s5[5] = {2, C, order, n, n};
                eqr_tensor *x5 = eqr_tensor_from(ctx, 5, s5, x->data);
                eqr_tensor *y5 = eqr_regular_act(ctx, G, g, x5);
                assert_non_null(y5);
                assert_memory_equal(y5->data, y->data, (size_t)y->numel * sizeof(float));
                for (int b = 0; b < order; b++) {
                    eqr_gelem gb = eqr_group_element(G, b);
                    assert_same(eqr_regular_act(ctx, G, g, eqr_regular_act(ctx, G, gb, x)),
                                eqr_regular_act(ctx, G, eqr_group_compose(G, g, gb), x));
                }
            }
            eqr_step_reset(ctx);
        }
    /* C8 on a 7x7 grid: its grid-exact elements (multiples of 90 degrees) */
    eqr_group C8 = eqr_group_cyclic(8);
    int64_t s[4] = {1, 16, 7, 7};
    eqr_tensor *x = rand_tensor(ctx, 4, s);
    for (int a = 0; a < 8; a += 2)
        for (int b = 0; b < 8; b += 2) {
            eqr_gelem ga = eqr_group_element(&C8, a), gb = eqr_group_element(&C8, b);
            assert_same(eqr_regular_act(ctx, &C8, ga, eqr_regular_act(ctx, &C8, gb, x)),
                        eqr_regular_act(ctx, &C8, eqr_group_compose(&C8, ga, gb), x));
        }
    eqr_ctx_destroy(ctx);
}

/* ------------------------------------------------- general field types */

static void test_rep_act_finite(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(9);
    eqr_group D4 = eqr_group_dihedral(4);
    eqr_irrep triv = eqr_irrep_of(&D4, 0, 0), det = eqr_irrep_of(&D4, 1, 0), f1 = eqr_irrep_of(&D4, 0, 1),
              s2 = eqr_irrep_of(&D4, 1, 2);
    eqr_rep_part parts[5] = {eqr_part_irrep(triv, 1), eqr_part_irrep(det, 1), eqr_part_irrep(f1, 2),
                             eqr_part_regular(1), eqr_part_irrep(s2, 1)};
    eqr_rep *rep = eqr_rep_create(ctx, &D4, 5, parts);
    assert_non_null(rep);
    assert_int_equal(rep->dim, 15);
    for (int n = 5; n <= 6; n++) {
        int64_t s[4] = {2, 15, n, n}, hw = n * n;
        eqr_tensor *x = rand_tensor(ctx, 4, s);
        for (int a = 0; a < 8; a++) {
            eqr_gelem g = eqr_group_element(&D4, a);
            eqr_tensor *y = eqr_rep_act(ctx, rep, g, x);
            eqr_tensor *sp = eqr_grid_act(ctx, g, x);
            assert_non_null(y);
            /* reference: out(p) = rho(g) [spatially transformed x](p) */
            double R[15 * 15];
            assert_int_equal(eqr_rep_matrix(rep, g, R), 15);
            for (int b = 0; b < 2; b++)
                for (int c = 0; c < 15; c++)
                    for (int64_t q = 0; q < hw; q++) {
                        double ref = 0, mag = 0;
                        for (int d = 0; d < 15; d++) {
                            ref += R[c * 15 + d] * sp->data[(b * 15 + d) * hw + q];
                            mag += fabs(R[c * 15 + d] * sp->data[(b * 15 + d) * hw + q]);
                        }
                        /* the float irrep entries (u) in <= 2-term float sums */
                        assert_true(fabs(y->data[(b * 15 + c) * hw + q] - ref) <= tu_gamma(3) * mag + 1e-15);
                    }
            /* the regular part equals eqr_regular_act on its channels */
            int64_t sr[4] = {2, 8, n, n};
            eqr_tensor *xr = eqr_tensor_zeros(ctx, 4, sr);
            for (int b = 0; b < 2; b++) memcpy(xr->data + b * 8 * hw, x->data + (b * 15 + 6) * hw, 8 * hw * sizeof(float));
            eqr_tensor *yr = eqr_regular_act(ctx, &D4, g, xr);
            for (int b = 0; b < 2; b++)
                assert_memory_equal(yr->data + b * 8 * hw, y->data + (b * 15 + 6) * hw, 8 * hw * sizeof(float));
            for (int b2 = 0; b2 < 8; b2++) {
                eqr_gelem gb = eqr_group_element(&D4, b2);
                eqr_tensor *l = eqr_rep_act(ctx, rep, g, eqr_rep_act(ctx, rep, gb, x));
                eqr_tensor *r = eqr_rep_act(ctx, rep, eqr_group_compose(&D4, g, gb), x);
                assert_true(maxabs_diff(l, r) <= homo_bound(rep, g, gb, eqr_group_compose(&D4, g, gb), x));
            }
        }
        eqr_step_reset(ctx);
    }
    eqr_rep_destroy(rep);
    eqr_ctx_destroy(ctx);
}

/* Smooth fields of SO(2) / O(2) irreps at off-grid angles: g . f against the
 * analytic rho(g) f(g^-1 p) on the central disk. f = bump * fixed vector. */
static void test_rep_act_continuous(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(10);
    eqr_group gs[2] = {eqr_group_so2(3), eqr_group_o2(3)};
    const int n = 41;
    const double c = 0.5 * (n - 1), sigma = 3.0, bx = 4.0, by = 6.0, R = 15.0;
    const double vec[5] = {0.7, -1.2, 0.4, 0.9, -0.5};
    for (int t = 0; t < 2; t++) {
        const eqr_group *G = &gs[t];
        eqr_rep_part parts[3] = {eqr_part_irrep(eqr_irrep_of(G, 0, 2), 1), eqr_part_irrep(eqr_irrep_of(G, 0, 1), 1),
                                 eqr_part_irrep(eqr_irrep_of(G, G->kind == EQR_GROUP_O2, 0), 1)};
        eqr_rep *rep = eqr_rep_create(ctx, G, 3, parts);
        assert_non_null(rep);
        int64_t s[4] = {1, 5, n, n}, hw = n * n;
        eqr_tensor *x = eqr_tensor_zeros(ctx, 4, s);
        for (int k = 0; k < 5; k++)
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) x->data[k * hw + i * n + j] = (float)(vec[k] * bump(j - c, c - i, bx, by, sigma));
        eqr_rng rng;
        eqr_rng_seed(&rng, 99);
        double worst = 0;
        for (int sidx = 0; sidx < 6; sidx++) {
            eqr_gelem g = eqr_group_sample(G, &rng);
            eqr_tensor *y = eqr_rep_act(ctx, rep, g, x);
            assert_non_null(y);
            double M[25], mi[4];
            eqr_rep_matrix(rep, g, M);
            eqr_gelem_matrix(eqr_group_inverse(G, g), mi);
            double rv[5];
            for (int a = 0; a < 5; a++) {
                rv[a] = 0;
                for (int b = 0; b < 5; b++) rv[a] += M[a * 5 + b] * vec[b];
            }
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) {
                    double px = j - c, py = c - i;
                    if (px * px + py * py > R * R) continue;
                    double f = bump(mi[0] * px + mi[1] * py, mi[2] * px + mi[3] * py, bx, by, sigma);
                    for (int k = 0; k < 5; k++) worst = fmax(worst, fabs(y->data[k * hw + i * n + j] - rv[k] * f));
                }
        }
        /* bilinear error of a unit bump <= 1/(4 sigma^2); rho(g) keeps each
         * block's norm, the largest block norm of vec is |(0.7,-1.2)| */
        double tol = hypot(0.7, 1.2) / (4 * sigma * sigma);
        /* plus rounding: x = float(vec bump) (u), the float bilinear weights
         * and sum (gamma_5), the irrep mixing (gamma_3), of <= sum |vec| */
        tol += tu_gamma(9) * (0.7 + 1.2 + 0.4 + 0.9 + 0.5);
        print_message("%s field action: max error %.4f (bound %.4f)\n", G->kind == EQR_GROUP_SO2 ? "SO(2)" : "O(2)",
                      worst, tol);
        if (worst > tol) fail_msg("field action: max error %g > %g", worst, tol);
        /* grid-exact elements of a continuous group: exact homomorphism */
        eqr_gelem q1 = eqr_gelem_of(G->kind == EQR_GROUP_O2, PI / 2), q2 = eqr_gelem_of(0, PI);
        assert_true(maxabs_diff(eqr_rep_act(ctx, rep, q1, eqr_rep_act(ctx, rep, q2, x)),
                                eqr_rep_act(ctx, rep, eqr_group_compose(G, q1, q2), x)) <=
                    homo_bound(rep, q1, q2, eqr_group_compose(G, q1, q2), x));
        eqr_rep_destroy(rep);
        eqr_step_reset(ctx);
    }
    eqr_ctx_destroy(ctx);
}

static void test_action_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(11);
    eqr_group C4 = eqr_group_cyclic(4), so2 = eqr_group_so2(2);
    int64_t s[4] = {1, 7, 5, 5}, s1[1] = {5};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, s);
    assert_null(eqr_regular_act(ctx, &so2, eqr_group_identity(), x));
    tu_assert_error(ctx, EQR_ERR_ARG, "no regular representation");
    assert_null(eqr_regular_act(ctx, &C4, eqr_group_identity(), x));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "not a multiple of |C4| = 4");
    int64_t s8[4] = {1, 8, 5, 5};
    eqr_tensor *x8 = eqr_tensor_zeros(ctx, 4, s8);
    assert_null(eqr_regular_act(ctx, &C4, eqr_gelem_of(0, 0.3), x8));
    tu_assert_error(ctx, EQR_ERR_ARG, "not in C4");
    assert_null(eqr_regular_act(ctx, &C4, eqr_gelem_of(1, 0), x8));
    tu_assert_error(ctx, EQR_ERR_ARG, "not in C4");
    eqr_rep_part p = eqr_part_regular(1);
    eqr_rep *rep = eqr_rep_create(ctx, &C4, 1, &p);
    assert_null(eqr_rep_act(ctx, rep, eqr_group_identity(), x8));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "channel axis 8 != representation dim 4");
    assert_null(eqr_rep_act(ctx, rep, eqr_gelem_of(0, 1.0), x8));
    tu_assert_error(ctx, EQR_ERR_ARG, "not in C4");
    assert_null(eqr_grid_act(ctx, eqr_group_identity(), eqr_tensor_zeros(ctx, 1, s1)));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "at least 2 dims");
    assert_null(eqr_grid_act(ctx, eqr_gelem_of(3, 0), x));
    tu_assert_error(ctx, EQR_ERR_ARG, "flip");
    /* a caller's NULL input: EQR_ERR_ARG naming the argument */
    assert_null(eqr_grid_act(ctx, eqr_group_identity(), NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_null(eqr_rep_act(ctx, NULL, eqr_group_identity(), x));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    eqr_rep_destroy(rep);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_rotation_and_flip),
        cmocka_unit_test(test_grid_homomorphism),
        cmocka_unit_test(test_geometry_impulse),
        cmocka_unit_test(test_grid_map),
        cmocka_unit_test(test_bilinear_gaussian),
        cmocka_unit_test(test_bilinear_matches_exact),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_regular_fields),
        cmocka_unit_test(test_rep_act_finite),
        cmocka_unit_test(test_rep_act_continuous),
        cmocka_unit_test(test_action_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
