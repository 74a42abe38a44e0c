/* Steerable convolutions, the kernel basis: the exact constraint at
 * continuous angles, orthonormality, moment-corrected sampling and the
 * dimension counts. The layer is in test_equivariance_steerable_layer.c
 * (equivariance) and test_equivariance_steerable_forward.c. */

#include "testutil.h"
#include "tu_steerable.h"
#include "equirelax/steerable.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* All irreps of G once, plus one regular copy for a finite G. */
static eqr_rep *all_irreps(eqr_ctx *ctx, const eqr_group *G, int with_regular) {
    eqr_rep_part parts[16];
    int n = eqr_group_num_irreps(G);
    assert_true(n < 15);
    for (int i = 0; i < n; i++) parts[i] = eqr_part_irrep(eqr_group_irrep(G, i), 1);
    if (with_regular && eqr_group_is_finite(G)) parts[n++] = eqr_part_regular(1);
    eqr_rep *r = eqr_rep_create(ctx, G, n, parts);
    assert_non_null(r);
    return r;
}

/* ----------------------------------------------------- basis: constraint */

/* max over t, points and g of |K(g p) - rho_out(g) K(p) rho_in(g)^T|, with
 * the point rotated by gp (= g for the real check). */
static double constraint_error(const eqr_steer_basis *B, const eqr_rep *in, const eqr_rep *out,
                               const eqr_gelem *gs, const eqr_gelem *gp, int ng, eqr_rng *rng) {
    int di = in->dim, dO = out->dim;
    double *K = malloc(sizeof(double) * di * dO), *Kg = malloc(sizeof(double) * di * dO);
    double *ro = malloc(sizeof(double) * dO * dO), *ri = malloc(sizeof(double) * di * di);
    double *tmp = malloc(sizeof(double) * di * dO);
    assert_true(K && Kg && ro && ri && tmp);
    double worst = 0;
    double pts[4][2];
    for (int p = 0; p < 4; p++) {
        double r = 0.3 + 2.5 * eqr_rng_uniform(rng), a = TWO_PI * eqr_rng_uniform(rng);
        pts[p][0] = r * cos(a);
        pts[p][1] = r * sin(a);
    }
    for (int gi = 0; gi < ng; gi++) {
        assert_int_equal(eqr_rep_matrix(out, gs[gi], ro), dO);
        assert_int_equal(eqr_rep_matrix(in, gs[gi], ri), di);
        double M[4];
        eqr_gelem_matrix(gp[gi], M);
        for (int64_t t = 0; t < eqr_steer_basis_num_elements(B); t++)
            for (int p = 0; p < 4; p++) {
                double x = pts[p][0], y = pts[p][1];
                assert_true(eqr_steer_basis_eval(B, t, x, y, K));
                assert_true(eqr_steer_basis_eval(B, t, M[0] * x + M[1] * y, M[2] * x + M[3] * y, Kg));
                /* tmp = K ri^T, then compare ro tmp with Kg */
                for (int a = 0; a < dO; a++)
                    for (int b = 0; b < di; b++) {
                        double s = 0;
                        for (int c = 0; c < di; c++) s += K[a * di + c] * ri[b * di + c];
                        tmp[a * di + b] = s;
                    }
                for (int a = 0; a < dO; a++)
                    for (int b = 0; b < di; b++) {
                        double s = 0;
                        for (int c = 0; c < dO; c++) s += ro[a * dO + c] * tmp[c * di + b];
                        worst = fmax(worst, fabs(s - Kg[a * di + b]));
                    }
            }
    }
    free(K);
    free(Kg);
    free(ro);
    free(ri);
    free(tmp);
    return worst;
}

static void test_basis_constraint_continuous(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(11);
    eqr_group groups[] = {eqr_group_cyclic(4), eqr_group_dihedral(4), eqr_group_cyclic(8),
                          eqr_group_dihedral(6), eqr_group_cyclic(3), eqr_group_dihedral(1),
                          eqr_group_cyclic(1), eqr_group_cyclic(2), eqr_group_dihedral(2),
                          eqr_group_dihedral(3), eqr_group_so2(3), eqr_group_o2(3)};
    for (size_t gi = 0; gi < sizeof groups / sizeof *groups; gi++) {
        const eqr_group *G = &groups[gi];
        char gname[32];
        eqr_group_name(G, gname, sizeof gname);
        eqr_rep *T = all_irreps(ctx, G, 1);
        eqr_steer_basis *B = eqr_steer_basis_create(ctx, T, T, 5, NULL);
        assert_non_null(B);
        assert_true(eqr_steer_basis_num_elements(B) > 0);
        /* every element of a finite group; 12 random rotations (and flips) of
         * a continuous one, at points off the grid */
        eqr_gelem gs[32];
        int ng = 0;
        if (eqr_group_is_finite(G)) {
            for (int i = 0; i < eqr_group_order(G); i++) gs[ng++] = eqr_group_element(G, i);
        } else {
            for (int i = 0; i < 12; i++) gs[ng++] = eqr_group_sample(G, eqr_ctx_rng(ctx));
            gs[ng++] = eqr_gelem_of(0, 0.123456);
        }
        double err = constraint_error(B, T, T, gs, gs, ng, eqr_ctx_rng(ctx));
        if (err > 1e-9) fail_msg("%s: basis violates the constraint by %g", gname, err);
        /* the check detects a wrong kernel: rotate the point by g r instead
         * of g (r = a small extra rotation) */
        eqr_gelem gw[32];
        for (int i = 0; i < ng; i++) gw[i] = eqr_group_compose(NULL, gs[i], eqr_gelem_of(0, 0.3));
        double bad = constraint_error(B, T, T, gs, gw, ng, eqr_ctx_rng(ctx));
        if (!(bad > 1e-2)) fail_msg("%s: constraint check blind (%g)", gname, bad);
        eqr_steer_basis_destroy(B);
        eqr_rep_destroy(T);
    }
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    eqr_ctx_destroy(ctx);
}

/* ---------------------------------------------- basis: orthonormal, counts */

/* Orthonormal samples; with point sampling they are the analytic function
 * at the pixel centres, with the moment correction close to it (relative
 * Frobenius difference over the whole basis below max_rel). */
static void check_orthonormal(const eqr_steer_basis *B, int points, double max_rel) {
    int64_t n = eqr_steer_basis_num_elements(B);
    int k = eqr_steer_basis_kernel_size(B), dO = eqr_steer_basis_out_dim(B), di = eqr_steer_basis_in_dim(B);
    int64_t L = (int64_t)dO * di * k * k;
    float *S = malloc(sizeof(float) * (size_t)(n * L));
    double *K = malloc(sizeof(double) * (size_t)(dO * di));
    assert_true(S && K);
    double diff = 0, norm = 0;
    for (int64_t t = 0; t < n; t++) {
        assert_true(eqr_steer_basis_sample(B, t, S + t * L));
        for (int q = 0; q < k * k; q++) {
            double x = (q % k) - 0.5 * (k - 1), y = 0.5 * (k - 1) - q / k;
            assert_true(eqr_steer_basis_eval(B, t, x, y, K));
            for (int e = 0; e < dO * di; e++) {
                double sv = S[t * L + (int64_t)e * k * k + q];
                /* point samples: the double value rounded to float once */
                if (points && fabs(K[e] - sv) > TU_U * fabs(K[e]) + 1e-15)
                    fail_msg("element %lld: sample %g != eval %g", (long long)t, sv, K[e]);
                diff += (K[e] - sv) * (K[e] - sv);
                norm += sv * sv;
            }
        }
    }
    if (!points) {
        print_message("moment-corrected samples differ from point values by %.3f (relative)\n",
                      sqrt(diff / norm));
        if (!(sqrt(diff / norm) < max_rel)) fail_msg("sampling far from the analytic basis: %g", sqrt(diff / norm));
    }
    /* the basis is orthonormal in double and rounded to float entry by
     * entry (relative u each): <S_a, S_b> - delta_ab is within
     * (2u + u^2) sum |S_a||S_b| / (1 - u)^2 (<= ~2u by Cauchy-Schwarz), plus
     * the double orthonormalisation (1e-12) */
    double worst = 0;
    for (int64_t a = 0; a < n; a++)
        for (int64_t b = a; b < n; b++) {
            double s = 0, m = 0;
            for (int64_t i = 0; i < L; i++) {
                s += (double)S[a * L + i] * S[b * L + i];
                m += fabs((double)S[a * L + i] * S[b * L + i]);
            }
            const double tol = (2 * TU_U + TU_U * TU_U) / ((1 - TU_U) * (1 - TU_U)) * m + 1e-12;
            worst = fmax(worst, fabs(s - (a == b)) / tol);
        }
    if (worst > 1) fail_msg("basis not orthonormal: max |G - I| = %g of its bound", worst);
    assert_false(eqr_steer_basis_sample(B, n, S));
    assert_false(eqr_steer_basis_eval(B, -1, 0, 0, K));
    free(S);
    free(K);
}

static void test_basis_orthonormal(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(12);
    eqr_group groups[] = {eqr_group_cyclic(4), eqr_group_dihedral(4), eqr_group_cyclic(8),
                          eqr_group_so2(2), eqr_group_o2(3)};
    int ks[] = {3, 5, 4, 5, 7};
    for (size_t gi = 0; gi < sizeof groups / sizeof *groups; gi++) {
        eqr_rep *T = all_irreps(ctx, &groups[gi], 1);
        for (int pts = 0; pts < 2; pts++) {
            eqr_steer_basis_opts o = {0};
            o.point_sampling = pts;
            eqr_steer_basis *B = eqr_steer_basis_create(ctx, T, T, ks[gi], &o);
            assert_non_null(B);
            check_orthonormal(B, pts, 0.5);
            eqr_steer_basis_destroy(B);
        }
        eqr_rep_destroy(T);
    }
    eqr_ctx_destroy(ctx);
}

/* Moment-corrected sampling: for SO(2) trivial -> frequency f every raw
 * function has frequency f, so every element's discrete moments of order
 * <= f equal the continuous moments over the disk |p| <= k/2 of its
 * analytic function (computed here by polar quadrature of eval). Point
 * samples do not have this property (the check is not blind). */
static double moment_mismatch(const eqr_steer_basis *B, int order) {
    int k = eqr_steer_basis_kernel_size(B), kk = k * k;
    int64_t n = eqr_steer_basis_num_elements(B);
    float S[2 * 81];
    double K[2], worst = 0, R = 0.5 * k;
    const int NR = 400, NA = 64;
    for (int64_t t = 0; t < n; t++) {
        assert_true(eqr_steer_basis_sample(B, t, S));
        double cont[2][64] = {{0}}, disc[2][64] = {{0}}, scale = 0;
        for (int ir = 0; ir < NR; ir++)
            for (int ia = 0; ia < NA; ia++) {
                double r = (ir + 0.5) * R / NR, ph = TWO_PI * ia / NA, x = r * cos(ph), y = r * sin(ph);
                double dA = r * (R / NR) * (TWO_PI / NA);
                assert_true(eqr_steer_basis_eval(B, t, x, y, K));
                for (int d = 0, i = 0; d <= order; d++)
                    for (int a = 0; a <= d; a++, i++)
                        for (int e = 0; e < 2; e++) cont[e][i] += K[e] * pow(x, a) * pow(y, d - a) * dA;
            }
        for (int q = 0; q < kk; q++) {
            double x = (q % k) - 0.5 * (k - 1), y = 0.5 * (k - 1) - q / k;
            for (int d = 0, i = 0; d <= order; d++)
                for (int a = 0; a <= d; a++, i++)
                    for (int e = 0; e < 2; e++) disc[e][i] += S[e * kk + q] * pow(x, a) * pow(y, d - a);
        }
        for (int i = 0; i < (order + 1) * (order + 2) / 2; i++)
            for (int e = 0; e < 2; e++) scale = fmax(scale, fabs(cont[e][i]));
        for (int i = 0; i < (order + 1) * (order + 2) / 2; i++)
            for (int e = 0; e < 2; e++) worst = fmax(worst, fabs(cont[e][i] - disc[e][i]) / scale);
    }
    return worst;
}

static void test_moment_sampling(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(14);
    eqr_group G = eqr_group_so2(3);
    eqr_rep *t = tu_steer_type(ctx, &G, "t1");
    for (int k = 5; k <= 7; k += 2)
        for (int f = 1; f <= 3; f++) {
            eqr_rep_part p = eqr_part_irrep(eqr_irrep_of(&G, 0, f), 1);
            eqr_rep *v = eqr_rep_create(ctx, &G, 1, &p);
            eqr_steer_basis_opts o = {0};
            eqr_steer_basis *B = eqr_steer_basis_create(ctx, t, v, k, &o);
            assert_true(eqr_steer_basis_num_elements(B) > 0);
            double mm = moment_mismatch(B, f);
            /* a quadrature tolerance: the polar midpoint rule's O((R/NR)^2)
             * error (~1e-4 relative), not rounding */
            if (!(mm < 1e-4)) fail_msg("k=%d f=%d: moments of the samples off by %g", k, f, mm);
            eqr_steer_basis_destroy(B);
            o.point_sampling = 1;
            B = eqr_steer_basis_create(ctx, t, v, k, &o);
            double mp = moment_mismatch(B, f);
            print_message("moments k=%d f=%d: corrected %.1e, point samples %.1e\n", k, f, mm, mp);
            if (!(mp > 1e-2)) fail_msg("k=%d f=%d: point samples match moments (%g)?", k, f, mp);
            eqr_steer_basis_destroy(B);
            eqr_rep_destroy(v);
        }
    eqr_rep_destroy(t);
    eqr_ctx_destroy(ctx);
}

static int64_t count(eqr_ctx *ctx, eqr_group G, const char *in, const char *out, int k) {
    eqr_rep *a = tu_steer_type(ctx, &G, in), *b = tu_steer_type(ctx, &G, out);
    eqr_steer_basis *B = eqr_steer_basis_create(ctx, a, b, k, NULL);
    assert_non_null(B);
    int64_t n = eqr_steer_basis_num_elements(B);
    eqr_steer_basis_destroy(B);
    eqr_rep_destroy(a);
    eqr_rep_destroy(b);
    return n;
}

static void test_basis_counts(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(13);
    for (int k = 1; k <= 9; k += 2) {
        int rings = (k - 1) / 2 + 1;
        eqr_rep *t = tu_steer_type(ctx, &(eqr_group){EQR_GROUP_SO2, 0, 2}, "t1");
        eqr_steer_basis *B = eqr_steer_basis_create(ctx, t, t, k, NULL);
        assert_int_equal(eqr_steer_basis_num_rings(B), rings);
        double r;
        int M;
        for (int s = 0; s < rings; s++) {
            assert_true(eqr_steer_basis_ring(B, s, &r, &M));
            assert_true(r == s);
            assert_int_equal(M, 2 * s);
        }
        assert_false(eqr_steer_basis_ring(B, rings, &r, &M));
        eqr_steer_basis_destroy(B);
        eqr_rep_destroy(t);
        /* isotropic kernels: one per ring, for SO(2) and O(2) */
        assert_int_equal(count(ctx, eqr_group_so2(2), "t1", "t1", k), rings);
        assert_int_equal(count(ctx, eqr_group_o2(2), "t1", "t1", k), rings);
        /* trivial -> frequency 1: (cos, sin) pair per ring s >= 1 for SO(2),
         * one for O(2); none to the det irrep of O(2) */
        assert_int_equal(count(ctx, eqr_group_so2(2), "t1", "i0,1x1", k), 2 * (rings - 1));
        assert_int_equal(count(ctx, eqr_group_o2(2), "t1", "i0,1x1", k), rings - 1);
        assert_int_equal(count(ctx, eqr_group_o2(2), "t1", "i1,0x1", k), 0);
    }
    /* C4 invariant kernels on 5 x 5: ring 0: 1; ring 1 (M = 2): m = 0;
     * ring 2 (M = 4): m = 0 and the aliased cos 4 phi, sin 4 phi */
    assert_int_equal(count(ctx, eqr_group_cyclic(4), "t1", "t1", 5), 5);
    /* frequency cap: only isotropic kernels left */
    {
        eqr_group G = eqr_group_cyclic(4);
        eqr_rep *t = tu_steer_type(ctx, &G, "t1");
        eqr_steer_basis_opts o = {0};
        o.max_freq = 1;
        eqr_steer_basis *B = eqr_steer_basis_create(ctx, t, t, 5, &o);
        assert_int_equal(eqr_steer_basis_num_elements(B), 3);
        eqr_steer_basis_destroy(B);
        eqr_rep_destroy(t);
    }
    /* multiplicities multiply the weights; blocks are laid out as documented */
    {
        eqr_group G = eqr_group_dihedral(4);
        eqr_rep *a = tu_steer_type(ctx, &G, "t2 r1"), *b = tu_steer_type(ctx, &G, "r3 i0,1x2");
        eqr_steer_basis *B = eqr_steer_basis_create(ctx, a, b, 3, NULL);
        assert_int_equal(eqr_steer_basis_num_blocks(B), 4);
        int64_t off = 0;
        for (int i = 0; i < 4; i++) {
            const eqr_steer_block *bl = eqr_steer_basis_block(B, i);
            assert_int_equal(bl->out_part, i / 2);
            assert_int_equal(bl->in_part, i % 2);
            assert_int_equal(bl->weight_off, off);
            off += (int64_t)bl->out_mult * bl->in_mult * bl->n;
        }
        assert_int_equal(off, eqr_steer_basis_num_elements(B));
        assert_null(eqr_steer_basis_block(B, 4));
        /* regular -> regular on D4 with k = 3 matches the sum over the irrep
         * components (D4's 2D irrep twice) of the pair counts */
        const eqr_steer_block *rr = eqr_steer_basis_block(B, 1);
        assert_int_equal(rr->out_fdim, 8);
        assert_int_equal(rr->in_fdim, 8);
        assert_int_equal(rr->n, count(ctx, G, "r1", "r1", 3));
        eqr_steer_basis_destroy(B);
        eqr_rep_destroy(a);
        eqr_rep_destroy(b);
    }
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basis_constraint_continuous),
        cmocka_unit_test(test_basis_orthonormal),
        cmocka_unit_test(test_basis_counts),
        cmocka_unit_test(test_moment_sampling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
