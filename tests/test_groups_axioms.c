/* Groups: axioms, irreps (homomorphism, orthogonality, Schur relations),
 * regular representation and its decomposition, direct sums. */
#include "testutil.h"
#include "equirelax/groups.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TWO_PI 6.283185307179586476925286766559

/* ------------------------------------------------------------- helpers */

static void matmul(int n, const double *a, const double *b, double *c) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += a[i * n + k] * b[k * n + j];
            c[i * n + j] = s;
        }
}

static double maxdiff(int n, const double *a, const double *b) {
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

/* max |A A^T - I| */
static double orth_err(int n, const double *a) {
    double m = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += a[i * n + k] * a[j * n + k];
            m = fmax(m, fabs(s - (i == j)));
        }
    return m;
}

/* The finite groups under test. */
static int finite_groups(eqr_group *gs) {
    int k = 0;
    static const int cyc[] = {1, 2, 3, 4, 5, 6, 8};
    static const int dih[] = {1, 2, 3, 4, 5, 6, 8};
    for (size_t i = 0; i < sizeof cyc / sizeof *cyc; i++) gs[k++] = eqr_group_cyclic(cyc[i]);
    for (size_t i = 0; i < sizeof dih / sizeof *dih; i++) gs[k++] = eqr_group_dihedral(dih[i]);
    return k;
}

static const char *gname(const eqr_group *G) {
    static char buf[32];
    return eqr_group_name(G, buf, sizeof buf);
}

/* ------------------------------------------------------------- axioms */

static void test_axioms_finite(void **state) {
    (void)state;
    eqr_group gs[32];
    int ng = finite_groups(gs);
    for (int t = 0; t < ng; t++) {
        const eqr_group *G = &gs[t];
        int n = eqr_group_order(G);
        assert_int_equal(n, G->kind == EQR_GROUP_CYCLIC ? G->n : 2 * G->n);
        eqr_gelem e = eqr_group_identity();
        assert_int_equal(eqr_group_index(G, e), 0);
        int abelian = 1;
        for (int i = 0; i < n; i++) {
            eqr_gelem a = eqr_group_element(G, i);
            assert_int_equal(eqr_group_index(G, a), i);
            assert_true(eqr_group_contains(G, a));
            /* the documented index convention */
            assert_int_equal(a.flip, i / G->n);
            assert_true(fabs(a.angle - TWO_PI * (i % G->n) / G->n) < 1e-12);
            for (int j = 0; j < n; j++)
                if (j != i) assert_false(eqr_group_equal(G, a, eqr_group_element(G, j)));
            /* identity and inverse */
            assert_true(eqr_group_equal(G, eqr_group_compose(G, e, a), a));
            assert_true(eqr_group_equal(G, eqr_group_compose(G, a, e), a));
            eqr_gelem ai = eqr_group_inverse(G, a);
            assert_true(eqr_group_contains(G, ai));
            assert_true(eqr_group_equal(G, eqr_group_compose(G, a, ai), e));
            assert_true(eqr_group_equal(G, eqr_group_compose(G, ai, a), e));
            assert_int_equal(eqr_group_index_inverse(G, i), eqr_group_index(G, ai));
            double ma[4];
            eqr_gelem_matrix(a, ma);
            for (int j = 0; j < n; j++) {
                eqr_gelem b = eqr_group_element(G, j);
                eqr_gelem ab = eqr_group_compose(G, a, b);
                /* closure, and the index table agrees */
                assert_true(eqr_group_contains(G, ab));
                assert_int_equal(eqr_group_index(G, ab), eqr_group_index_compose(G, i, j));
                if (!eqr_group_equal(G, ab, eqr_group_compose(G, b, a))) abelian = 0;
                /* composition is composition of the plane maps */
                double mb[4], mab[4], prod[4];
                eqr_gelem_matrix(b, mb);
                eqr_gelem_matrix(ab, mab);
                matmul(2, ma, mb, prod);
                assert_true(maxdiff(4, prod, mab) < 1e-12);
                for (int k = 0; k < n; k++) {
                    eqr_gelem c = eqr_group_element(G, k);
                    eqr_gelem l = eqr_group_compose(G, ab, c);
                    eqr_gelem r = eqr_group_compose(G, a, eqr_group_compose(G, b, c));
                    assert_true(eqr_group_equal(G, l, r));
                }
            }
        }
        /* C_N and D_1, D_2 are abelian; D_N for N >= 3 is not */
        int expect_abelian = G->kind == EQR_GROUP_CYCLIC || G->n <= 2;
        assert_int_equal(abelian, expect_abelian);
        if (G->kind == EQR_GROUP_DIHEDRAL) { /* F R F = R^-1 */
            eqr_gelem f = eqr_gelem_of(1, 0.0), r = eqr_group_element(G, 1 % G->n);
            eqr_gelem frf = eqr_group_compose(G, f, eqr_group_compose(G, r, f));
            assert_true(eqr_group_equal(G, frf, eqr_group_inverse(G, r)));
        }
    }
    /* the documented product formula: (1, a1)(0, a2) = (1, a1 - a2) */
    eqr_group D4 = eqr_group_dihedral(4);
    eqr_gelem p = eqr_group_compose(&D4, eqr_gelem_of(1, TWO_PI / 4), eqr_gelem_of(0, TWO_PI / 2));
    assert_int_equal(p.flip, 1);
    assert_true(fabs(p.angle - 3 * TWO_PI / 4) < 1e-12);
    /* C_N rejects flips and off-grid angles */
    eqr_group C4 = eqr_group_cyclic(4);
    assert_false(eqr_group_contains(&C4, eqr_gelem_of(1, 0)));
    assert_false(eqr_group_contains(&C4, eqr_gelem_of(0, 0.3)));
    assert_int_equal(eqr_group_index(&C4, eqr_gelem_of(0, 0.3)), -1);
    assert_int_equal(eqr_group_index(&C4, eqr_gelem_of(0, -TWO_PI / 4)), 3);
}

static void test_axioms_continuous(void **state) {
    (void)state;
    eqr_group gs[2] = {eqr_group_so2(3), eqr_group_o2(3)};
    eqr_rng rng;
    eqr_rng_seed(&rng, 7);
    for (int t = 0; t < 2; t++) {
        const eqr_group *G = &gs[t];
        assert_int_equal(eqr_group_order(G), 0);
        assert_false(eqr_group_is_finite(G));
        int nflip = 0;
        eqr_gelem e = eqr_group_identity();
        for (int s = 0; s < 300; s++) {
            eqr_gelem a = eqr_group_sample(G, &rng), b = eqr_group_sample(G, &rng),
                      c = eqr_group_sample(G, &rng);
            nflip += a.flip;
            assert_true(eqr_group_contains(G, a));
            assert_true(a.angle >= 0 && a.angle < TWO_PI);
            eqr_gelem ab = eqr_group_compose(G, a, b);
            assert_true(eqr_group_contains(G, ab));
            assert_true(eqr_group_equal(G, eqr_group_compose(G, e, a), a));
            assert_true(eqr_group_equal(G, eqr_group_compose(G, a, e), a));
            assert_true(eqr_group_equal(G, eqr_group_compose(G, a, eqr_group_inverse(G, a)), e));
            assert_true(eqr_group_equal(G, eqr_group_compose(G, eqr_group_inverse(G, a), a), e));
            assert_true(eqr_group_equal(G, eqr_group_compose(G, ab, c),
                                        eqr_group_compose(G, a, eqr_group_compose(G, b, c))));
            double ma[4], mb[4], mab[4], prod[4];
            eqr_gelem_matrix(a, ma);
            eqr_gelem_matrix(b, mb);
            eqr_gelem_matrix(ab, mab);
            matmul(2, ma, mb, prod);
            assert_true(maxdiff(4, prod, mab) < 1e-12);
        }
        if (G->kind == EQR_GROUP_SO2) {
            assert_int_equal(nflip, 0);
            assert_false(eqr_group_contains(G, eqr_gelem_of(1, 0.2)));
        } else {
            assert_true(nflip > 100 && nflip < 200);
        }
    }
    /* angles are compared modulo 2 pi */
    assert_true(eqr_group_equal(NULL, eqr_gelem_of(0, 1e-12), eqr_gelem_of(0, TWO_PI - 1e-12)));
    assert_false(eqr_group_equal(NULL, eqr_gelem_of(0, 0.0), eqr_gelem_of(0, 1e-6)));
    assert_false(eqr_group_equal(NULL, eqr_gelem_of(0, 0.5), eqr_gelem_of(1, 0.5)));
}

/* -------------------------------------------------------------- irreps */

static void test_irrep_enumeration(void **state) {
    (void)state;
    for (int N = 1; N <= 12; N++) {
        eqr_group gs[2] = {eqr_group_cyclic(N), eqr_group_dihedral(N)};
        for (int t = 0; t < 2; t++) {
            const eqr_group *G = &gs[t];
            int even = N % 2 == 0, n2d = (N - 1) / 2;
            int expect = t == 0 ? 1 + n2d + even : 2 + n2d + 2 * even;
            int nir = eqr_group_num_irreps(G);
            assert_int_equal(nir, expect);
            int sum_mult_dim = 0, sum_d2_over_e = 0, prev_f = -1, prev_j = 1;
            for (int i = 0; i < nir; i++) {
                eqr_irrep ir = eqr_group_irrep(G, i);
                assert_true(eqr_irrep_valid(G, ir));
                assert_int_equal(eqr_group_irrep_index(G, ir), i);
                /* ordered by frequency, then j */
                assert_true(ir.freq > prev_f || (ir.freq == prev_f && ir.j > prev_j));
                prev_f = ir.freq;
                prev_j = ir.j;
                int one_d = ir.freq == 0 || 2 * ir.freq == N;
                assert_int_equal(ir.dim, one_d ? 1 : 2);
                eqr_irrep same = eqr_irrep_of(G, ir.j, ir.freq);
                assert_int_equal(same.dim, ir.dim);
                int e = eqr_irrep_endo_dim(G, ir);
                sum_mult_dim += eqr_regular_multiplicity(G, ir) * ir.dim;
                sum_d2_over_e += ir.dim * ir.dim / e;
            }
            /* the regular rep decomposes fully; Burnside over the reals */
            assert_int_equal(sum_mult_dim, eqr_group_order(G));
            assert_int_equal(sum_d2_over_e, eqr_group_order(G));
            assert_int_equal(eqr_group_irrep(G, nir).dim, 0);
        }
    }
    /* D4 in full: (0,0) (1,0) (0,1)2D (0,2) (1,2) */
    eqr_group D4 = eqr_group_dihedral(4);
    static const int d4[5][3] = {{0, 0, 1}, {1, 0, 1}, {0, 1, 2}, {0, 2, 1}, {1, 2, 1}};
    for (int i = 0; i < 5; i++) {
        eqr_irrep ir = eqr_group_irrep(&D4, i);
        assert_int_equal(ir.j, d4[i][0]);
        assert_int_equal(ir.freq, d4[i][1]);
        assert_int_equal(ir.dim, d4[i][2]);
    }
    eqr_group C4 = eqr_group_cyclic(4), so2 = eqr_group_so2(3), o2 = eqr_group_o2(3);
    assert_int_equal(eqr_irrep_of(&C4, 1, 0).dim, 0); /* no det in C_N */
    assert_int_equal(eqr_irrep_of(&C4, 0, 3).dim, 0);
    assert_int_equal(eqr_irrep_of(&D4, 1, 1).dim, 0); /* 2D irreps have j = 0 */
    assert_int_equal(eqr_group_num_irreps(&so2), 4);
    assert_int_equal(eqr_group_num_irreps(&o2), 5);
    assert_int_equal(eqr_irrep_of(&so2, 0, 4).dim, 0); /* beyond the band limit */
    assert_int_equal(eqr_irrep_of(&so2, 0, 3).dim, 2);
    assert_int_equal(eqr_irrep_of(&o2, 1, 0).dim, 1);
    assert_int_equal(eqr_irrep_endo_dim(&so2, eqr_irrep_of(&so2, 0, 2)), 2);
    assert_int_equal(eqr_irrep_endo_dim(&o2, eqr_irrep_of(&o2, 0, 2)), 1);
    eqr_irrep bad = {0, 1, 1}; /* wrong dim */
    assert_false(eqr_irrep_valid(&C4, bad));
    assert_int_equal(eqr_group_irrep_index(&C4, bad), -1);
    char buf[64];
    assert_string_equal(eqr_group_name(&D4, buf, sizeof buf), "D4");
    assert_string_equal(eqr_group_name(&o2, buf, sizeof buf), "O(2)[L=3]");
    assert_string_equal(eqr_irrep_name(eqr_irrep_of(&D4, 1, 2), buf, sizeof buf), "irrep(j=1,f=2)");
}

/* rho(a) rho(b) = rho(ab), orthogonal, rho(e) = I, float matches double. */
static void check_irrep_hom(const eqr_group *G, eqr_irrep ir, eqr_gelem a, eqr_gelem b) {
    double ra[4], rb[4], rab[4], prod[4];
    float rf[4];
    int d = ir.dim;
    assert_int_equal(eqr_irrep_matrix(G, ir, a, ra), d);
    assert_int_equal(eqr_irrep_matrix(G, ir, b, rb), d);
    assert_int_equal(eqr_irrep_matrix(G, ir, eqr_group_compose(G, a, b), rab), d);
    matmul(d, ra, rb, prod);
    if (maxdiff(d * d, prod, rab) > 1e-9)
        fail_msg("%s irrep(j=%d,f=%d) not a homomorphism at (%d,%g)(%d,%g)", gname(G), ir.j, ir.freq,
                 a.flip, a.angle, b.flip, b.angle);
    assert_true(orth_err(d, ra) < 1e-12);
    assert_int_equal(eqr_irrep_matrix_f(G, ir, a, rf), d);
    for (int i = 0; i < d * d; i++) assert_true(fabs(rf[i] - ra[i]) < 1e-7);
    assert_true(fabs(eqr_irrep_character(G, ir, a) - (d == 1 ? ra[0] : ra[0] + ra[3])) < 1e-15);
}

static void test_irreps_homomorphism(void **state) {
    (void)state;
    eqr_group gs[32];
    int ng = finite_groups(gs);
    for (int t = 0; t < ng; t++) {
        const eqr_group *G = &gs[t];
        int n = eqr_group_order(G);
        for (int i = 0; i < eqr_group_num_irreps(G); i++) {
            eqr_irrep ir = eqr_group_irrep(G, i);
            double re[4];
            eqr_irrep_matrix(G, ir, eqr_group_identity(), re);
            for (int k = 0; k < ir.dim * ir.dim; k++) assert_true(fabs(re[k] - (k % (ir.dim + 1) == 0)) < 1e-15);
            for (int a = 0; a < n; a++)
                for (int b = 0; b < n; b++)
                    check_irrep_hom(G, ir, eqr_group_element(G, a), eqr_group_element(G, b));
        }
    }
    eqr_rng rng;
    eqr_rng_seed(&rng, 3);
    eqr_group cs[2] = {eqr_group_so2(5), eqr_group_o2(5)};
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < eqr_group_num_irreps(&cs[t]); i++)
            for (int s = 0; s < 100; s++)
                check_irrep_hom(&cs[t], eqr_group_irrep(&cs[t], i), eqr_group_sample(&cs[t], &rng),
                                eqr_group_sample(&cs[t], &rng));
    /* the frequency-1 irrep of O(2) is the plane action itself */
    eqr_group o2 = eqr_group_o2(2);
    for (int s = 0; s < 20; s++) {
        eqr_gelem g = eqr_group_sample(&o2, &rng);
        double r[4], m[4];
        eqr_irrep_matrix(&o2, eqr_irrep_of(&o2, 0, 1), g, r);
        eqr_gelem_matrix(g, m);
        assert_true(maxdiff(4, r, m) < 1e-15);
    }
    /* sentinels: element outside the group, irrep of another group */
    double r[4];
    eqr_group C4 = eqr_group_cyclic(4);
    assert_int_equal(eqr_irrep_matrix(&C4, eqr_irrep_of(&C4, 0, 1), eqr_gelem_of(0, 0.3), r), 0);
    assert_int_equal(eqr_irrep_matrix(&C4, eqr_irrep_of(&C4, 0, 1), eqr_gelem_of(1, 0), r), 0);
    assert_true(isnan(eqr_irrep_character(&C4, eqr_irrep_of(&C4, 0, 1), eqr_gelem_of(0, 0.3))));
}

/* Expected <chi, chi>, worked out by hand: the 2D irreps of C_N split over C
 * into two inequivalent characters e^{+ik}, e^{-ik}, giving 2; all other real
 * irreps here are absolutely irreducible, giving 1. */
static int expected_norm(const eqr_group *G, eqr_irrep ir) {
    return (ir.dim == 2 && (G->kind == EQR_GROUP_CYCLIC || G->kind == EQR_GROUP_SO2)) ? 2 : 1;
}

static void test_schur_orthogonality(void **state) {
    (void)state;
    eqr_group gs[32];
    int ng = finite_groups(gs);
    for (int t = 0; t < ng; t++) {
        const eqr_group *G = &gs[t];
        int n = eqr_group_order(G), nir = eqr_group_num_irreps(G);
        for (int i = 0; i < nir; i++)
            for (int j = 0; j < nir; j++) {
                eqr_irrep a = eqr_group_irrep(G, i), b = eqr_group_irrep(G, j);
                double s = 0;
                for (int k = 0; k < n; k++) {
                    eqr_gelem g = eqr_group_element(G, k);
                    /* real orthogonal reps: chi(g^-1) = chi(g) */
                    s += eqr_irrep_character(G, a, g) * eqr_irrep_character(G, b, eqr_group_inverse(G, g));
                }
                s /= n;
                double expect = i == j ? expected_norm(G, a) : 0.0;
                if (fabs(s - expect) > 1e-9)
                    fail_msg("%s <chi_%d, chi_%d> = %g, expected %g", gname(G), i, j, s, expect);
                if (i == j) assert_int_equal(eqr_irrep_endo_dim(G, a), expected_norm(G, a));
                /* matrix-element orthogonality (absolutely irreducible case):
                 * mean rho_a(g)[p,q] rho_b(g)[r,s] = delta / dim */
                if (expected_norm(G, a) == 1 && expected_norm(G, b) == 1) {
                    for (int p = 0; p < a.dim * a.dim; p++)
                        for (int q = 0; q < b.dim * b.dim; q++) {
                            double m = 0, ra[4], rb[4];
                            for (int k = 0; k < n; k++) {
                                eqr_gelem g = eqr_group_element(G, k);
                                eqr_irrep_matrix(G, a, g, ra);
                                eqr_irrep_matrix(G, b, g, rb);
                                m += ra[p] * rb[q];
                            }
                            double e = (i == j && p == q) ? 1.0 / a.dim : 0.0;
                            assert_true(fabs(m / n - e) < 1e-9);
                        }
                }
            }
    }
    /* continuous groups: Haar integral by an equispaced rule (exact for
     * trigonometric polynomials of degree < M) over both flips for O(2) */
    eqr_group cs[2] = {eqr_group_so2(4), eqr_group_o2(4)};
    const int M = 64;
    for (int t = 0; t < 2; t++) {
        const eqr_group *G = &cs[t];
        int nir = eqr_group_num_irreps(G), nf = eqr_group_has_flips(G) ? 2 : 1;
        for (int i = 0; i < nir; i++)
            for (int j = 0; j < nir; j++) {
                eqr_irrep a = eqr_group_irrep(G, i), b = eqr_group_irrep(G, j);
                double s = 0;
                for (int f = 0; f < nf; f++)
                    for (int k = 0; k < M; k++) {
                        eqr_gelem g = eqr_gelem_of(f, TWO_PI * (k + 0.37) / M);
                        s += eqr_irrep_character(G, a, g) * eqr_irrep_character(G, b, g);
                    }
                s /= M * nf;
                double expect = i == j ? expected_norm(G, a) : 0.0;
                if (fabs(s - expect) > 1e-9)
                    fail_msg("%s <chi_%d, chi_%d> = %g, expected %g", gname(G), i, j, s, expect);
            }
    }
}

/* ------------------------------------------------------------ regular */

static void test_regular_rep(void **state) {
    (void)state;
    eqr_group gs[32];
    int ng = finite_groups(gs);
    for (int t = 0; t < ng; t++) {
        const eqr_group *G = &gs[t];
        int n = eqr_group_order(G);
        double *A = malloc(sizeof(double) * n * n), *B = malloc(sizeof(double) * n * n),
               *AB = malloc(sizeof(double) * n * n), *P = malloc(sizeof(double) * n * n);
        int *perm = malloc(sizeof(int) * n);
        for (int a = 0; a < n; a++) {
            eqr_gelem ga = eqr_group_element(G, a);
            assert_int_equal(eqr_regular_matrix(G, ga, A), n);
            assert_int_equal(eqr_regular_perm(G, ga, perm), n);
            double tr = 0;
            for (int h = 0; h < n; h++) {
                /* rho_reg(g) e_h = e_{gh}: column h is e_{index(g h)} */
                int gh = eqr_group_index(G, eqr_group_compose(G, ga, eqr_group_element(G, h)));
                for (int r = 0; r < n; r++) assert_true(A[r * n + h] == (r == gh ? 1.0 : 0.0));
                /* (rho v)[h] = v[perm[h]], perm[h] = index(g^-1 h) */
                int gih = eqr_group_index(G, eqr_group_compose(G, eqr_group_inverse(G, ga), eqr_group_element(G, h)));
                assert_int_equal(perm[h], gih);
                assert_true(A[h * n + perm[h]] == 1.0);
                tr += A[h * n + h];
            }
            assert_true(tr == (a == 0 ? n : 0));
            for (int b = 0; b < n; b++) {
                eqr_gelem gb = eqr_group_element(G, b);
                eqr_regular_matrix(G, gb, B);
                eqr_regular_matrix(G, eqr_group_compose(G, ga, gb), AB);
                matmul(n, A, B, P);
                assert_true(maxdiff(n * n, P, AB) == 0.0);
            }
        }
        free(A), free(B), free(AB), free(P), free(perm);
    }
    eqr_group so2 = eqr_group_so2(2);
    int perm[4];
    assert_int_equal(eqr_regular_perm(&so2, eqr_group_identity(), perm), 0);
}

/* Block-diagonal direct sum of the irreps of G with the multiplicities
 * expected from theory (2D irreps: once in C_N, twice in D_N). */
static void test_blockdiag(const eqr_group *G, eqr_gelem g, double *D, int n) {
    memset(D, 0, sizeof(double) * n * n);
    int off = 0;
    for (int i = 0; i < eqr_group_num_irreps(G); i++) {
        eqr_irrep ir = eqr_group_irrep(G, i);
        int mult = ir.dim == 2 && G->kind == EQR_GROUP_DIHEDRAL ? 2 : 1;
        assert_int_equal(eqr_regular_multiplicity(G, ir), mult);
        double r[4];
        eqr_irrep_matrix(G, ir, g, r);
        for (int c = 0; c < mult; c++, off += ir.dim)
            for (int p = 0; p < ir.dim; p++)
                for (int q = 0; q < ir.dim; q++) D[(off + p) * n + off + q] = r[p * ir.dim + q];
    }
    assert_int_equal(off, n);
}

static void test_regular_decomposition(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    eqr_group gs[32];
    int ng = finite_groups(gs);
    for (int t = 0; t < ng; t++) {
        const eqr_group *G = &gs[t];
        int n = eqr_group_order(G);
        size_t nn = (size_t)n * n;
        double *Q = malloc(sizeof(double) * nn), *D = malloc(sizeof(double) * nn),
               *R = malloc(sizeof(double) * nn), *T = malloc(sizeof(double) * nn),
               *QT = malloc(sizeof(double) * nn), *Dl = malloc(sizeof(double) * nn);
        assert_int_equal(eqr_regular_change_of_basis(G, Q), n);
        assert_true(orth_err(n, Q) < 1e-12); /* Q Q^T = I, square => orthogonal */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) QT[j * n + i] = Q[i * n + j];
        assert_true(orth_err(n, QT) < 1e-12);
        eqr_rep *dec = eqr_rep_regular_decomposition(ctx, G);
        assert_non_null(dec);
        assert_int_equal(dec->dim, n);
        for (int a = 0; a < n; a++) {
            eqr_gelem g = eqr_group_element(G, a);
            test_blockdiag(G, g, D, n);
            assert_int_equal(eqr_rep_matrix(dec, g, Dl), n);
            assert_true(maxdiff((int)nn, D, Dl) == 0.0);
            eqr_regular_matrix(G, g, R);
            matmul(n, Q, D, T);
            matmul(n, T, QT, D);
            if (maxdiff((int)nn, D, R) > 1e-9) fail_msg("%s: Q D(g) Q^T != rho_reg(g) at g=%d", gname(G), a);
            assert_true(fabs(eqr_rep_character(dec, g) - (a == 0 ? n : 0)) < 1e-9);
        }
        eqr_rep_destroy(dec);
        free(Q), free(D), free(R), free(T), free(QT), free(Dl);
    }
    eqr_ctx_destroy(ctx);
}

/* --------------------------------------------------------- direct sums */

static void test_rep_direct_sum(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    eqr_group D4 = eqr_group_dihedral(4);
    eqr_irrep triv = eqr_irrep_of(&D4, 0, 0), f1 = eqr_irrep_of(&D4, 0, 1), s2 = eqr_irrep_of(&D4, 1, 2);
    eqr_rep_part parts[4] = {eqr_part_irrep(triv, 2), eqr_part_irrep(f1, 1), eqr_part_regular(2),
                             eqr_part_irrep(s2, 1)};
    eqr_rep *rep = eqr_rep_create(ctx, &D4, 4, parts);
    assert_non_null(rep);
    const int D = 2 + 2 + 16 + 1;
    assert_int_equal(rep->dim, D);
    static const int offs[5] = {0, 2, 4, 20, 21};
    for (int k = 0; k <= 4; k++) assert_int_equal(eqr_rep_part_offset(rep, k), offs[k]);
    assert_int_equal(eqr_rep_part_dim(rep, 2), 8);
    assert_int_equal(eqr_rep_part_offset(rep, 5), -1);
    double A[21 * 21], B[21 * 21], AB[21 * 21], P[21 * 21], E[21 * 21], reg[64], r[4];
    float Af[21 * 21];
    for (int a = 0; a < 8; a++) {
        eqr_gelem ga = eqr_group_element(&D4, a);
        assert_int_equal(eqr_rep_matrix(rep, ga, A), D);
        /* expected block structure, built by hand */
        memset(E, 0, sizeof E);
        E[0] = E[1 * D + 1] = 1.0;
        eqr_irrep_matrix(&D4, f1, ga, r);
        E[2 * D + 2] = r[0], E[2 * D + 3] = r[1], E[3 * D + 2] = r[2], E[3 * D + 3] = r[3];
        eqr_regular_matrix(&D4, ga, reg);
        for (int c = 0; c < 2; c++)
            for (int p = 0; p < 8; p++)
                for (int q = 0; q < 8; q++) E[(4 + 8 * c + p) * D + 4 + 8 * c + q] = reg[p * 8 + q];
        eqr_irrep_matrix(&D4, s2, ga, r);
        E[20 * D + 20] = r[0];
        assert_true(maxdiff(D * D, A, E) == 0.0);
        assert_true(orth_err(D, A) < 1e-12);
        assert_int_equal(eqr_rep_matrix_f(rep, ga, Af), D);
        for (int i = 0; i < D * D; i++) assert_true(fabs(Af[i] - A[i]) < 1e-7);
        double chi = 2 + eqr_irrep_character(&D4, f1, ga) + 2 * (a == 0 ? 8 : 0) + eqr_irrep_character(&D4, s2, ga);
        assert_true(fabs(eqr_rep_character(rep, ga) - chi) < 1e-12);
        for (int b = 0; b < 8; b++) {
            eqr_gelem gb = eqr_group_element(&D4, b);
            eqr_rep_matrix(rep, gb, B);
            eqr_rep_matrix(rep, eqr_group_compose(&D4, ga, gb), AB);
            matmul(D, A, B, P);
            assert_true(maxdiff(D * D, P, AB) < 1e-12);
        }
    }
    eqr_rep_destroy(rep);
    /* continuous: sampled homomorphism */
    eqr_group o2 = eqr_group_o2(3);
    eqr_rep_part cp[3] = {eqr_part_irrep(eqr_irrep_of(&o2, 0, 2), 3), eqr_part_irrep(eqr_irrep_of(&o2, 1, 0), 1),
                          eqr_part_irrep(eqr_irrep_of(&o2, 0, 3), 1)};
    rep = eqr_rep_create(ctx, &o2, 3, cp);
    assert_non_null(rep);
    assert_int_equal(rep->dim, 9);
    eqr_rng rng;
    eqr_rng_seed(&rng, 11);
    for (int s = 0; s < 50; s++) {
        eqr_gelem a = eqr_group_sample(&o2, &rng), b = eqr_group_sample(&o2, &rng);
        eqr_rep_matrix(rep, a, A);
        eqr_rep_matrix(rep, b, B);
        eqr_rep_matrix(rep, eqr_group_compose(&o2, a, b), AB);
        matmul(9, A, B, P);
        assert_true(maxdiff(81, P, AB) < 1e-9);
    }
    eqr_rep_destroy(rep);
    eqr_rep_destroy(NULL);
    eqr_ctx_destroy(ctx);
}

static void test_rep_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    eqr_group C4 = eqr_group_cyclic(4), so2 = eqr_group_so2(2), bad = eqr_group_cyclic(0);
    assert_false(eqr_group_valid(&bad));
    assert_false(eqr_group_valid(NULL));
    assert_int_equal(eqr_group_order(&bad), 0);
    assert_int_equal(eqr_group_num_irreps(&bad), 0);
    eqr_group badL = eqr_group_o2(-1);
    assert_false(eqr_group_valid(&badL));
    eqr_group D4 = eqr_group_dihedral(4);
    eqr_rep_part det = eqr_part_irrep(eqr_irrep_of(&D4, 1, 0), 1);
    assert_null(eqr_rep_create(ctx, &C4, 1, &det));
    tu_assert_error(ctx, EQR_ERR_ARG, "not an irrep of C4");
    eqr_rep_part reg = eqr_part_regular(1);
    assert_null(eqr_rep_create(ctx, &so2, 1, &reg));
    tu_assert_error(ctx, EQR_ERR_ARG, "not finite");
    eqr_rep_part zero = eqr_part_irrep(eqr_irrep_of(&C4, 0, 0), 0);
    assert_null(eqr_rep_create(ctx, &C4, 1, &zero));
    tu_assert_error(ctx, EQR_ERR_ARG, "multiplicity");
    assert_null(eqr_rep_create(ctx, &bad, 1, &reg));
    tu_assert_error(ctx, EQR_ERR_ARG, "invalid group");
    assert_null(eqr_rep_create(ctx, &C4, 0, &reg));
    tu_assert_error(ctx, EQR_ERR_ARG, "at least one part");
    assert_null(eqr_rep_regular_decomposition(ctx, &so2));
    tu_assert_error(ctx, EQR_ERR_ARG, "C_N or D_N");
    /* a context in error does nothing */
    eqr_rep_create(ctx, &C4, 1, &zero);
    assert_null(eqr_rep_create(ctx, &C4, 1, &reg));
    tu_assert_error(ctx, EQR_ERR_ARG, "multiplicity");
    /* element outside the group */
    eqr_rep *r = eqr_rep_create(ctx, &C4, 1, &reg);
    assert_non_null(r);
    double m[16];
    assert_int_equal(eqr_rep_matrix(r, eqr_gelem_of(0, 0.1), m), 0);
    assert_true(isnan(eqr_rep_character(r, eqr_gelem_of(1, 0))));
    eqr_rep_destroy(r);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_axioms_finite),
        cmocka_unit_test(test_axioms_continuous),
        cmocka_unit_test(test_irrep_enumeration),
        cmocka_unit_test(test_irreps_homomorphism),
        cmocka_unit_test(test_schur_orthogonality),
        cmocka_unit_test(test_regular_rep),
        cmocka_unit_test(test_regular_decomposition),
        cmocka_unit_test(test_rep_direct_sum),
        cmocka_unit_test(test_rep_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
