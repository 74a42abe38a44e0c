/* Steerable convolutions: the kernel basis (exact constraint at continuous
 * angles, orthonormality, dimension counts), the layer (equivariance on and
 * off the grid, forward against a double reference, gradients, export,
 * projection) and type errors; plus the construction time of a 10-layer
 * model. */
#include "testutil.h"
#include "equirelax/steerable.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TWO_PI 6.283185307179586476925286766559
#define HALF_PI 1.5707963267948966192313216916398

/* ------------------------------------------------------------- helpers */

/* Field type from a spec such as "t2 r1 i0,1x2": t<m> trivial x m,
 * r<m> regular x m, i<j>,<f>x<m> irrep (j, f) x m. */
/* Equivariance bound of one steerable conv here (tu_equiv_bound): sums of
 * <= C k k = 16 * 25 = 400 products (C <= 16 input channels, k <= 5), with
 * the bias and the filter expansion from its basis depth < 512; amp 20 =
 * sqrt(400) for sums of random sign. The grid action at multiples of 90
 * degrees is exact; the fibre rotations (cos, sin rounded) are the 3-term
 * (here 2-term) action rounding of the bound. */
#define STEER_TOL tu_equiv_bound(512, 20.0)

static eqr_rep *type_of(eqr_ctx *ctx, const eqr_group *G, const char *spec) {
    eqr_rep_part parts[8];
    int n = 0;
    const char *s = spec;
    while (*s) {
        if (*s == ' ') {
            s++;
            continue;
        }
        int j = 0, f = 0, m = 0, used = 0;
        if (*s == 't' && sscanf(s, "t%d%n", &m, &used) == 1) {
            parts[n++] = eqr_part_irrep(eqr_irrep_of(G, 0, 0), m);
        } else if (*s == 'r' && sscanf(s, "r%d%n", &m, &used) == 1) {
            parts[n++] = eqr_part_regular(m);
        } else if (*s == 'i' && sscanf(s, "i%d,%dx%d%n", &j, &f, &m, &used) == 3) {
            parts[n++] = eqr_part_irrep(eqr_irrep_of(G, j, f), m);
        } else {
            fail_msg("bad type spec '%s'", spec);
        }
        s += used;
    }
    eqr_rep *r = eqr_rep_create(ctx, G, n, parts);
    if (!r) fail_msg("type '%s': %s", spec, eqr_error_message(ctx));
    return r;
}

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

static eqr_tensor *fwd(eqr_ctx *ctx, void *model, eqr_tensor *x) {
    return eqr_steer_conv_forward(ctx, (eqr_steer_conv *)model, x);
}

static eqr_tensor *randn(eqr_ctx *ctx, int64_t n, int64_t c, int64_t h, int64_t w, float std) {
    int64_t s[4] = {n, c, h, w};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, s);
    assert_non_null(x);
    eqr_tensor_normal(x, eqr_ctx_rng(ctx), std);
    return x;
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
    eqr_rep *t = type_of(ctx, &G, "t1");
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
    eqr_rep *a = type_of(ctx, &G, in), *b = type_of(ctx, &G, out);
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
        eqr_rep *t = type_of(ctx, &(eqr_group){EQR_GROUP_SO2, 0, 2}, "t1");
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
        eqr_rep *t = type_of(ctx, &G, "t1");
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
        eqr_rep *a = type_of(ctx, &G, "t2 r1"), *b = type_of(ctx, &G, "r3 i0,1x2");
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
        eqr_rep *in = type_of(ctx, &lc->G, lc->in), *out = type_of(ctx, &lc->G, lc->out);
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
        eqr_tensor *x = randn(ctx, 2, in->dim, 9, 9, 1.0f);
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
    eqr_rep *in = type_of(ctx, &G, "r1 t1"), *out = type_of(ctx, &G, "r1 i0,1x1");
    eqr_steer_conv_opts o = {0};
    o.geom = EQR_CONV2D(2, 1, 1);
    eqr_steer_conv *L = eqr_steer_conv_create(ctx, "s2", in, out, 3, &o);
    assert_non_null(L);
    assert_true(eqr_steer_conv_exact_on(L, 9, 9));
    assert_false(eqr_steer_conv_exact_on(L, 8, 8));
    assert_false(eqr_steer_conv_exact_on(L, 9, 11));
    eqr_tensor *x = randn(ctx, 1, in->dim, 9, 9, 1.0f);
    double err;
    for (int i = 0; i < 8; i++) {
        assert_int_equal(eqr_equivariance_error(ctx, fwd, L, in, out, eqr_group_element(&G, i), x, NULL, &err), EQR_OK);
        assert_true(err <= STEER_TOL);
    }
    /* on 8 x 8 the sampling is shifted: equivariance breaks for rotations */
    eqr_tensor *x8 = randn(ctx, 1, in->dim, 8, 8, 1.0f);
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
    eqr_tensor *x2 = randn(ctx, 2, in->dim, 10, 10, 1.0f);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(eqr_equivariance_error(ctx, fwd, L2, in, out, eqr_group_element(&G, i), x2, NULL, &err), EQR_OK);
        assert_true(err <= STEER_TOL);
    }
    /* D1 only flips x -> -x: the height axis need not be symmetric (the
     * same rule as eqr_gconv_exact_on), and the layer is then exact */
    eqr_group D1 = eqr_group_dihedral(1);
    eqr_rep *in1 = type_of(ctx, &D1, "r1 t1"), *out1 = type_of(ctx, &D1, "r1 i1,0x1");
    eqr_steer_conv *L3 = eqr_steer_conv_create(ctx, "d1", in1, out1, 3, &o);
    assert_non_null(L3);
    assert_true(eqr_steer_conv_exact_on(L3, 8, 9));
    assert_false(eqr_steer_conv_exact_on(L3, 9, 8));
    eqr_tensor *x3 = randn(ctx, 1, in1->dim, 8, 9, 1.0f);
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
        eqr_rep *in = type_of(ctx, &lc->G, lc->in), *out = type_of(ctx, &lc->G, lc->out);
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

/* ------------------------------------ layer: forward reference, export */

/* Bias of each output channel under the documented rule, computed from the
 * type independently of the layer. */
static void ref_bias(const eqr_rep *out, const float *b, double *vec) {
    int c = 0, f = 0;
    for (int p = 0; p < out->nparts; p++) {
        const eqr_rep_part *pt = &out->parts[p];
        int reg = pt->kind == EQR_PART_REGULAR;
        int d = eqr_rep_part_dim(out, p);
        int carries = reg || (pt->irrep.j == 0 && pt->irrep.freq == 0);
        for (int m = 0; m < pt->mult; m++) {
            for (int e = 0; e < d; e++) vec[c++] = carries ? b[f] : 0.0;
            f += carries;
        }
    }
}

static void test_forward_reference_and_export(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(31);
    eqr_group G = eqr_group_dihedral(4);
    eqr_rep *in = type_of(ctx, &G, "t1 r1 i0,1x1"), *out = type_of(ctx, &G, "r2 i1,0x1 t1 i0,1x1");
    eqr_steer_conv_opts o = {0};
    o.geom = EQR_CONV2D(1, 1, 1);
    eqr_steer_conv *L = eqr_steer_conv_create(ctx, "ref", in, out, 3, &o);
    assert_non_null(L);
    const eqr_steer_basis *B = eqr_steer_conv_basis(L);
    eqr_tensor *w = eqr_steer_conv_weight(L), *bias = eqr_steer_conv_bias(L);
    assert_non_null(bias);
    assert_int_equal(bias->numel, 2 + 1); /* two regular fields, one trivial */
    assert_int_equal(w->numel, eqr_steer_basis_num_elements(B));
    eqr_tensor_normal(bias, eqr_ctx_rng(ctx), 1.0f);
    int O = out->dim, C = in->dim, k = 3, H = 7;
    int64_t L1 = (int64_t)O * C * k * k;
    /* bank reference: sum_t w_t basis_t in double */
    double *bank = calloc((size_t)L1, sizeof *bank), *bmag = calloc((size_t)L1, sizeof *bmag);
    float *el = malloc(sizeof(float) * (size_t)L1);
    assert_true(bank && bmag && el);
    for (int64_t t = 0; t < w->numel; t++) {
        assert_true(eqr_steer_basis_sample(B, t, el));
        for (int64_t i = 0; i < L1; i++) {
            bank[i] += (double)w->data[t] * el[i];
            bmag[i] += fabs((double)w->data[t] * el[i]);
        }
    }
    const int64_t nbas = w->numel; /* the bank sums <= nbas basis terms */
    eqr_tensor *fb = eqr_steer_conv_filter_bank(ctx, L);
    assert_non_null(fb);
    assert_int_equal(fb->numel, L1);
    tu_assert_close_bound("bank", fb->data, bank, bmag, L1, nbas, 1);
    /* conv reference with the bias rule */
    double *bv = malloc(sizeof(double) * O);
    ref_bias(out, bias->data, bv);
    eqr_tensor *x = randn(ctx, 2, C, H, H, 1.0f);
    eqr_tensor *y = eqr_steer_conv_forward(ctx, L, x);
    assert_non_null(y);
    assert_int_equal(y->shape[1], O);
    double *ref = malloc(sizeof(double) * 2 * O * H * H), *ymag = malloc(sizeof(double) * 2 * O * H * H);
    assert_true(ref && ymag);
    for (int n = 0; n < 2; n++)
        for (int oc = 0; oc < O; oc++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < H; j++) {
                    double s = bv[oc], m = fabs(bv[oc]);
                    for (int c = 0; c < C; c++)
                        for (int a = 0; a < k; a++)
                            for (int b = 0; b < k; b++) {
                                int ii = i + a - 1, jj = j + b - 1;
                                if (ii < 0 || jj < 0 || ii >= H || jj >= H) continue;
                                int64_t bi = ((oc * C + c) * k + a) * k + b;
                                double xv = x->data[((n * C + c) * H + ii) * H + jj];
                                s += bank[bi] * xv;
                                /* the float bank is within gamma_nbas bmag */
                                m += (fabs(bank[bi]) + bmag[bi]) * fabs(xv);
                            }
                    ref[((n * O + oc) * H + i) * H + j] = s;
                    ymag[((n * O + oc) * H + i) * H + j] = m;
                }
    /* the bank's nb-term sums, then C k k products and the bias */
    const int64_t ny = (int64_t)C * k * k + 1 + nbas;
    tu_assert_close_bound("forward", y->data, ref, ymag, y->numel, ny, 1);
    /* the bias sits on trivial and regular channels only */
    eqr_tensor *bvec = eqr_steer_conv_bias_vector(ctx, L);
    tu_assert_close("bias vector", bvec->data, bv, O, 0, 0);
    /* export: plain conv2d with the exported bank and bias == forward */
    float *we = malloc(sizeof(float) * (size_t)L1), *be = malloc(sizeof(float) * O);
    assert_int_equal(eqr_steer_conv_export(ctx, L, we, be), EQR_OK);
    int64_t ws[4];
    eqr_steer_conv_bank_shape(L, ws);
    eqr_tensor *wt = eqr_tensor_from(ctx, 4, ws, we), *bt = eqr_tensor_from(ctx, 1, ws, be);
    eqr_tensor *y2 = eqr_conv2d(ctx, x, wt, bt, eqr_steer_conv_geom(L));
    assert_non_null(y2);
    double *yd = malloc(sizeof(double) * y->numel);
    for (int64_t i = 0; i < y->numel; i++) yd[i] = y->data[i];
    /* two float paths to the same reference: the sum of both bounds */
    tu_assert_close_bound("export", y2->data, yd, ymag, y->numel, ny, 2);
    free(ymag);
    free(bmag);
    assert_int_equal(eqr_steer_conv_export(ctx, L, NULL, be), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "weight");
    /* accessors */
    assert_int_equal(eqr_steer_conv_kernel_size(L), 3);
    assert_ptr_equal(eqr_steer_conv_in_type(L), in);
    assert_ptr_equal(eqr_steer_conv_out_type(L), out);
    assert_int_equal(eqr_steer_conv_group(L)->kind, EQR_GROUP_DIHEDRAL);
    free(bank);
    free(el);
    free(bv);
    free(ref);
    free(we);
    free(be);
    free(yd);
    eqr_steer_conv_destroy(L);
    /* no bias on request, and none without a trivial or regular output field */
    eqr_steer_conv_opts nb = {0};
    nb.no_bias = 1;
    L = eqr_steer_conv_create(ctx, "nb", in, out, 3, &nb);
    assert_null(eqr_steer_conv_bias(L));
    assert_null(eqr_steer_conv_bias_vector(ctx, L));
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    eqr_steer_conv_destroy(L);
    eqr_rep *vec = type_of(ctx, &G, "i0,1x2 i1,2x1");
    L = eqr_steer_conv_create(ctx, "vec", in, vec, 3, NULL);
    assert_non_null(L);
    assert_null(eqr_steer_conv_bias(L));
    float be2[5] = {9, 9, 9, 9, 9}, *we2 = malloc(sizeof(float) * 5 * C * 9);
    assert_int_equal(eqr_steer_conv_export(ctx, L, we2, be2), EQR_OK);
    for (int i = 0; i < 5; i++) assert_true(be2[i] == 0.0f);
    free(we2);
    eqr_steer_conv_destroy(L);
    eqr_rep_destroy(vec);
    eqr_rep_destroy(in);
    eqr_rep_destroy(out);
    eqr_ctx_destroy(ctx);
}

/* Projection: the adjoint of the expansion; least-squares fit. */
static void test_projection(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(32);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *in = type_of(ctx, &G, "r1 t1"), *out = type_of(ctx, &G, "r1 i0,1x1");
    eqr_steer_basis *B = eqr_steer_basis_create(ctx, in, out, 3, NULL);
    int64_t n = eqr_steer_basis_num_elements(B), L1 = (int64_t)out->dim * in->dim * 9;
    float *w = malloc(sizeof(float) * n), *w2 = malloc(sizeof(float) * n);
    float *bank = malloc(sizeof(float) * L1), *bank2 = malloc(sizeof(float) * L1);
    eqr_rng rng;
    eqr_rng_seed(&rng, 5);
    for (int64_t i = 0; i < n; i++) w[i] = eqr_rng_normal(&rng);
    eqr_steer_basis_expand(B, w, bank);
    eqr_steer_basis_project(B, bank, w2);
    double *wd = malloc(sizeof(double) * n), *mg = malloc(sizeof(double) * n);
    float *Sm = malloc(sizeof(float) * (size_t)(n * L1)); /* the float samples, [n, L1] */
    assert_true(wd && mg && Sm);
    for (int64_t t = 0; t < n; t++) assert_true(eqr_steer_basis_sample(B, t, Sm + t * L1));
    /* |S_t| . |S_s|, the scale of the float samples' Gram error (2 u of it) */
    double *GA = malloc(sizeof(double) * (size_t)(n * n));
    assert_non_null(GA);
    for (int64_t a = 0; a < n; a++)
        for (int64_t b = 0; b < n; b++) {
            double g = 0;
            for (int64_t i = 0; i < L1; i++) g += fabs((double)Sm[a * L1 + i] * Sm[b * L1 + i]);
            GA[a * n + b] = g;
        }
    /* w2 = S (S^T w): the projection sums L1 terms S_ti bank_i (magnitude
     * sum_i |S_ti| |bank_i|), the bank n terms w_s S_si, each within
     * gamma_n sum_s |w_s S_si|, carried by |S_t| (magnitude sum_s |w_s|
     * |S_t|.|S_s|, which also scales the float samples' Gram error 2u):
     * gamma_L1 m1 + gamma_{n + 2} m2, passed as gamma_L1 of m1 + m2 scaled */
    for (int64_t t = 0; t < n; t++) {
        double m1 = 0, m2 = 0;
        for (int64_t i = 0; i < L1; i++) m1 += fabs((double)Sm[t * L1 + i] * bank[i]);
        for (int64_t q = 0; q < n; q++) m2 += fabs((double)w[q]) * GA[t * n + q];
        wd[t] = w[t];
        mg[t] = m1 + m2 * tu_gamma(n + 2) / tu_gamma(L1);
    }
    tu_assert_close_bound("project(expand(w))", w2, wd, mg, n, L1, 1);
    /* a random bank: its residual after the fit is orthogonal to every
     * element, and the fit is an equivariant bank (grid check on a conv) */
    for (int64_t i = 0; i < L1; i++) bank[i] = eqr_rng_normal(&rng);
    eqr_steer_basis_project(B, bank, w2);
    eqr_steer_basis_expand(B, w2, bank2);
    /* <bank - bank2, S_t> (in double; bank - bank2 exact in double): bank2 =
     * sum_s w2_s S_s within gamma_n of sum_s |w2_s| |S_s|, seen through S_t:
     * A_t = sum_s |w2_s| |S_t|.|S_s| (which also bounds the float samples'
     * Gram error, 2u A_t); w2_s within gamma_L1 of sum_j |S_sj| |bank_j|,
     * seen through S_s . S_t: B_t. c 3 gamma_{L1 + n} (A_t + B_t) */
    double *pm = malloc(sizeof(double) * n);
    assert_non_null(pm);
    for (int64_t q = 0; q < n; q++) {
        pm[q] = 0;
        for (int64_t j = 0; j < L1; j++) pm[q] += fabs((double)Sm[q * L1 + j] * bank[j]);
    }
    for (int64_t t = 0; t < n; t++) {
        double s = 0, A = 0, Bt = 0;
        for (int64_t i = 0; i < L1; i++) s += ((double)bank[i] - bank2[i]) * Sm[t * L1 + i];
        for (int64_t q = 0; q < n; q++) {
            A += fabs((double)w2[q]) * GA[t * n + q];
            Bt += GA[t * n + q] * pm[q];
        }
        const double tol = 3 * tu_gamma(L1 + n) * (A + Bt);
        if (!(fabs(s) <= tol)) fail_msg("residual . S_%lld = %g > %g", (long long)t, s, tol);
    }
    free(pm);
    free(GA);
    free(Sm);
    free(mg);
    free(w);
    free(w2);
    free(bank);
    free(bank2);
    free(wd);
    eqr_steer_basis_destroy(B);
    eqr_rep_destroy(in);
    eqr_rep_destroy(out);
    eqr_ctx_destroy(ctx);
}

/* --------------------------------------------------------- gradients */

static eqr_tensor *gc_forward(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    return eqr_steer_conv_forward(ctx, (eqr_steer_conv *)user, in[2]);
}

static eqr_tensor *gc_bank(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)in;
    return eqr_steer_conv_filter_bank(ctx, (eqr_steer_conv *)user);
}

static void test_gradcheck(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(41);
    struct {
        eqr_group G;
        const char *in, *out;
    } cs[] = {
        {eqr_group_cyclic(4), "t1 r1", "r1 i0,1x1 t1"},
        {eqr_group_o2(2), "t1 i0,1x1", "i0,1x1 t1 i1,0x1"},
    };
    for (int c = 0; c < 2; c++) {
        eqr_rep *in = type_of(ctx, &cs[c].G, cs[c].in), *out = type_of(ctx, &cs[c].G, cs[c].out);
        char name[16];
        snprintf(name, sizeof name, "g%d", c);
        eqr_steer_conv_opts o = {0};
        o.geom = EQR_CONV2D(1, 1, 1);
        eqr_steer_conv *L = eqr_steer_conv_create(ctx, name, in, out, 3, &o);
        assert_non_null(L);
        eqr_tensor *b = eqr_steer_conv_bias(L);
        assert_non_null(b);
        eqr_tensor_normal(b, eqr_ctx_rng(ctx), 0.5f);
        snprintf(name, sizeof name, "gx%d", c);
        int64_t xs[4] = {1, in->dim, 4, 4};
        eqr_tensor *x = tu_input(ctx, name, 4, xs, 1.0f);
        eqr_tensor *ins[3] = {eqr_steer_conv_weight(L), b, x};
        tu_gradcheck(ctx, gc_forward, ins, 3, L, 1e-2, in->dim * 9 + ins[0]->numel + 2 /* conv sum, the filter basis sum, bias */);
        tu_gradcheck(ctx, gc_bank, ins, 1, L, 1e-2, ins[0]->numel + 2 /* the filter basis sum */);
        eqr_steer_conv_destroy(L);
        eqr_rep_destroy(in);
        eqr_rep_destroy(out);
    }
    eqr_ctx_destroy(ctx);
}

/* ------------------------------------------------------------ errors */

static void test_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(51);
    eqr_group C4 = eqr_group_cyclic(4), D4 = eqr_group_dihedral(4), S = eqr_group_so2(2),
              O = eqr_group_o2(2);
    eqr_rep *a = type_of(ctx, &C4, "r1"), *b = type_of(ctx, &D4, "r1");
    assert_null(eqr_steer_conv_create(ctx, "e1", a, b, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "different groups");
    assert_null(eqr_steer_basis_create(ctx, a, b, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "different groups");
    eqr_rep *s2 = type_of(ctx, &S, "t1"), *s3 = type_of(ctx, &(eqr_group){EQR_GROUP_SO2, 0, 3}, "t1");
    assert_null(eqr_steer_conv_create(ctx, "e2", s2, s3, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "different groups");
    /* a regular part of SO(2), built by hand (eqr_rep_create refuses it) */
    eqr_rep_part rp = eqr_part_regular(1);
    eqr_rep bad = {S, 1, &rp, 4};
    assert_null(eqr_steer_conv_create(ctx, "e3", &bad, s2, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "regular");
    /* an irrep that is not of the group (frequency 3 > L = 2) */
    eqr_rep_part ip = eqr_part_irrep((eqr_irrep){0, 3, 2}, 1);
    eqr_rep bad2 = {S, 1, &ip, 2};
    assert_null(eqr_steer_conv_create(ctx, "e4", s2, &bad2, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "out_type");
    /* no kernel at all: O(2) trivial -> det */
    eqr_rep *ot = type_of(ctx, &O, "t1"), *od = type_of(ctx, &O, "i1,0x1");
    assert_null(eqr_steer_conv_create(ctx, "e5", ot, od, 5, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "no equivariant");
    assert_null(eqr_param_find(ctx, "e5.weight"));
    /* kernel size, geometry, names, basis options */
    assert_null(eqr_steer_conv_create(ctx, "e6", a, a, 0, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "kernel size");
    eqr_steer_conv_opts o = {0};
    o.geom.pad_h = -1;
    assert_null(eqr_steer_conv_create(ctx, "e7", a, a, 3, &o));
    tu_assert_error(ctx, EQR_ERR_ARG, "negative");
    assert_null(eqr_steer_conv_create(ctx, NULL, a, a, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "name");
    eqr_steer_conv_opts o2 = {0};
    o2.basis.sigma = -1;
    assert_null(eqr_steer_conv_create(ctx, "e8", a, a, 3, &o2));
    tu_assert_error(ctx, EQR_ERR_ARG, "sigma");
    assert_null(eqr_steer_conv_create(ctx, "e9", NULL, a, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "in_type");
    /* duplicate name */
    eqr_steer_conv *L = eqr_steer_conv_create(ctx, "dup", a, a, 3, NULL);
    assert_non_null(L);
    assert_null(eqr_steer_conv_create(ctx, "dup", a, a, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "already exists");
    /* forward: wrong channel count, wrong rank, NULL layer, NULL x */
    eqr_tensor *x = randn(ctx, 1, 5, 6, 6, 1.0f);
    assert_null(eqr_steer_conv_forward(ctx, L, x));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "[N, 4, H, W]");
    int64_t s3d[3] = {4, 6, 6};
    assert_null(eqr_steer_conv_forward(ctx, L, eqr_tensor_zeros(ctx, 3, s3d)));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "eqr_steer_conv_forward");
    assert_null(eqr_steer_conv_forward(ctx, NULL, x));
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");
    assert_null(eqr_steer_conv_forward(ctx, L, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    /* NULL-safe accessors and destroy */
    assert_int_equal(eqr_steer_basis_num_elements(NULL), 0);
    assert_null(eqr_steer_conv_weight(NULL));
    assert_false(eqr_steer_conv_exact_on(NULL, 5, 5));
    eqr_steer_conv_destroy(NULL);
    eqr_steer_basis_destroy(NULL);
    eqr_steer_conv_destroy(L);
    eqr_rep_destroy(a);
    eqr_rep_destroy(b);
    eqr_rep_destroy(s2);
    eqr_rep_destroy(s3);
    eqr_rep_destroy(ot);
    eqr_rep_destroy(od);
    eqr_ctx_destroy(ctx);
}

/* ------------------------------------------------- construction time */

static double now(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Build 10-layer models (the basis is solved once per layer, at create)
 * and report the time. The bound is loose (sanitizer / debug builds); in
 * Release these models take a few milliseconds. */
/* Builds three 10-layer models and prints the construction time (a
 * measurement, not a timed assertion: speed goals are for benchmarks). */
static void test_construction_time(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(61);
    struct {
        eqr_group G;
        const char *first, *hidden;
        int k;
    } ms[] = {
        {eqr_group_cyclic(8), "t1", "r8", 5},
        {eqr_group_dihedral(4), "t1", "r8", 5},
        {eqr_group_so2(3), "t1", "t4 i0,1x4 i0,2x4 i0,3x4", 5},
    };
    for (int mi = 0; mi < 3; mi++) {
        eqr_rep *first = type_of(ctx, &ms[mi].G, ms[mi].first), *hid = type_of(ctx, &ms[mi].G, ms[mi].hidden);
        eqr_steer_conv *Ls[10];
        double t0 = now();
        int64_t nw = 0;
        for (int l = 0; l < 10; l++) {
            char name[16];
            snprintf(name, sizeof name, "m%d_%d", mi, l);
            Ls[l] = eqr_steer_conv_create(ctx, name, l == 0 ? first : hid, l == 9 ? first : hid, ms[mi].k, NULL);
            assert_non_null(Ls[l]);
            nw += eqr_steer_basis_num_elements(eqr_steer_conv_basis(Ls[l]));
        }
        double dt = now() - t0;
        char gname[32];
        print_message("10-layer %s model (%s hidden, k=%d, %lld weights): built in %.1f ms\n",
                      eqr_group_name(&ms[mi].G, gname, sizeof gname), ms[mi].hidden, ms[mi].k,
                      (long long)nw, 1e3 * dt);
        for (int l = 0; l < 10; l++) eqr_steer_conv_destroy(Ls[l]);
        eqr_rep_destroy(first);
        eqr_rep_destroy(hid);
    }
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basis_constraint_continuous),
        cmocka_unit_test(test_basis_orthonormal),
        cmocka_unit_test(test_basis_counts),
        cmocka_unit_test(test_moment_sampling),
        cmocka_unit_test(test_layer_grid_exact),
        cmocka_unit_test(test_layer_geometry),
        cmocka_unit_test(test_off_grid_smooth),
        cmocka_unit_test(test_forward_reference_and_export),
        cmocka_unit_test(test_projection),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_construction_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
