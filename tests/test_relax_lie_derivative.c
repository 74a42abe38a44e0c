/* Relax: the Lie derivative of linear maps of continuous groups. SO(2) /
 * O(2) generators against finite differences of the representation
 * matrices; the closed-form Lie derivative W dA_in - dA_out W against a
 * finite-difference measurement of d/dt rho_out(e^{-tA}) W rho_in(e^{tA}) x
 * (SO(2) field types and an so(3) rep of scalars + 3-vectors). The relaxed
 * linear built on it is in test_relax_lie_layer.c. */

#include "testutil.h"
#include "tu_relax_lie.h"

#include "relax/relax_internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ helpers */

/* O(2), L = 2: trivial, 2 x sign, freq 1, 2 x freq 2 (dim 9). */
static eqr_rep *rep_o2(eqr_ctx *ctx) {
    static const int part[4][3] = {{0, 0, 1}, {1, 0, 2}, {0, 1, 1}, {0, 2, 2}};
    return tu_lie_rep4(ctx, eqr_group_o2(2), part, 9);
}

/* rho(e^{t A_a}) of a test representation, dim x dim row-major double. */
typedef void (*expo_fn)(const void *u, int a, double t, double *M);

static void expo_planar(const void *u, int a, double t, double *M) {
    (void)a;
    assert_int_equal(eqr_rep_matrix((const eqr_rep *)u, eqr_gelem_of(0, t), M),
                     ((const eqr_rep *)u)->dim);
}

/* Rodrigues: e^{tK} = I + sin t K + (1 - cos t) K^2 for K = L_a (K^3 = -K). */
static void expo_so3(const void *u, int a, double t, double *M) {
    const tu_rep3 *r = u;
    int d = tu_rep3_dim(r);
    double K[9], K2[9] = {0}, R[9];
    tu_so3_basis(a, K);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 3; k++) K2[i * 3 + j] += K[i * 3 + k] * K[k * 3 + j];
    for (int i = 0; i < 9; i++) R[i] = (i % 4 == 0 ? 1.0 : 0.0) + sin(t) * K[i] + (1 - cos(t)) * K2[i];
    memset(M, 0, sizeof(double) * (size_t)(d * d));
    for (int s = 0; s < r->ns; s++) M[s * d + s] = 1.0;
    for (int v = 0; v < r->nv; v++) {
        int o = r->ns + 3 * v;
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) M[(o + i) * d + o + j] = R[i * 3 + j];
    }
}

/* y = A x, A [m, n] double, x double */
static void matvec(const double *A, const double *x, int m, int n, double *y) {
    for (int i = 0; i < m; i++) {
        double s = 0;
        for (int j = 0; j < n; j++) s += A[i * n + j] * x[j];
        y[i] = s;
    }
}

/* F(t) = rho_out(e^{-tA}) W rho_in(e^{tA}) x */
static void conj_apply(const float *W, const double *x, int din, int dout, int a, double t,
                       expo_fn ein, const void *uin, expo_fn eout, const void *uout, double *F) {
    double *Mi = malloc(sizeof(double) * (size_t)(din * din));
    double *Mo = malloc(sizeof(double) * (size_t)(dout * dout));
    double *u = malloc(sizeof(double) * (size_t)din), *v = malloc(sizeof(double) * (size_t)dout);
    assert_true(Mi && Mo && u && v);
    ein(uin, a, t, Mi);
    eout(uout, a, -t, Mo);
    matvec(Mi, x, din, din, u);
    for (int i = 0; i < dout; i++) {
        double s = 0;
        for (int j = 0; j < din; j++) s += (double)W[i * din + j] * u[j];
        v[i] = s;
    }
    matvec(Mo, v, dout, dout, F);
    free(Mi), free(Mo), free(u), free(v);
}

/* Closed form (eqr_lie_derivative) applied to random x against the central
 * difference of F(t) at 0, for every generator. Returns the largest
 * |closed - fd| over its bound (<= 1: they agree), the bound per output i:
 *  - the closed form sums in double and rounds each LD entry once: u |LD| |x|;
 *  - truncation: (F(h) - F(-h)) / 2h - F'(0) = h^2 F^(3)(0) / 6 + ..., and
 *    |F^(3)| <= L^3(|W|) |x| with L(V) = |A_out| V + V |A_in| (exponentials
 *    of the generators near t = 0: factor 1 + 1e-6 for h = 1e-4, row sums
 *    of |A| < 10 here);
 *  - F in double: 16 eps (|W| |x|)_i (rotations of norm 1, sums of <= 20
 *    terms) on each side, over 2h. */
static double fd_lie_check(eqr_ctx *ctx, const float *W, const eqr_lie_rep *in,
                           const eqr_lie_rep *out, expo_fn ein, const void *uin, expo_fn eout,
                           const void *uout, uint64_t seed) {
    int din = in->dim, dout = out->dim, ng = in->ngen;
    float *ld = malloc(sizeof(float) * (size_t)(ng * din * dout));
    float *xf = malloc(sizeof(float) * (size_t)din);
    double *x = malloc(sizeof(double) * (size_t)din);
    double *Fp = malloc(sizeof(double) * (size_t)dout), *Fm = malloc(sizeof(double) * (size_t)dout);
    assert_true(ld && xf && x && Fp && Fm);
    assert_int_equal(eqr_lie_derivative(ctx, W, in, out, ld), EQR_OK);
    tu_fill_uniform(xf, din, seed);
    for (int i = 0; i < din; i++) x[i] = xf[i];
    const double h = 1e-4;
    double worst = 0, maxval = 0;
    double *V = malloc(sizeof(double) * (size_t)(din * dout)), *V2 = malloc(sizeof(double) * (size_t)(din * dout));
    assert_true(V && V2);
    for (int a = 0; a < ng; a++) {
        conj_apply(W, x, din, dout, a, h, ein, uin, eout, uout, Fp);
        conj_apply(W, x, din, dout, a, -h, ein, uin, eout, uout, Fm);
        const float *gi = in->gens + (size_t)a * din * din, *go = out->gens + (size_t)a * dout * dout;
        for (int i = 0; i < din * dout; i++) V[i] = fabs(W[i]);
        for (int it = 0; it < 3; it++) {
            for (int r = 0; r < dout; r++)
                for (int c = 0; c < din; c++) {
                    double s = 0;
                    for (int k = 0; k < dout; k++) s += fabs(go[r * dout + k]) * V[k * din + c];
                    for (int k = 0; k < din; k++) s += V[r * din + k] * fabs(gi[k * din + c]);
                    V2[r * din + c] = s;
                }
            memcpy(V, V2, sizeof(double) * (size_t)(din * dout));
        }
        for (int i = 0; i < dout; i++) {
            double c = 0, cm = 0, t3 = 0, wx = 0;
            for (int j = 0; j < din; j++) {
                c += (double)ld[(size_t)a * dout * din + i * din + j] * x[j];
                cm += fabs((double)ld[(size_t)a * dout * din + i * din + j] * x[j]);
                t3 += V[i * din + j] * fabs(x[j]);
                wx += fabs(W[i * din + j] * x[j]);
            }
            double fd = (Fp[i] - Fm[i]) / (2 * h);
            const double tol = TU_U * cm + h * h / 6 * (1 + 1e-6) * t3 + 2 * 16 * DBL_EPSILON * wx / (2 * h);
            worst = fmax(worst, fabs(c - fd) / tol);
            maxval = fmax(maxval, fabs(c));
        }
    }
    free(ld), free(xf), free(x), free(Fp), free(Fm), free(V), free(V2);
    assert_true(maxval > 0.1); /* a random W is far from equivariant */
    return worst;
}

/* out = |g|^3 for g [d, d] (entrywise absolute values, matrix cube). */
static void abs_cube(const float *g, int d, double *out) {
    double *t = malloc(sizeof(double) * (size_t)(d * d));
    assert_non_null(t);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += fabs(g[i * d + k]) * fabs(g[k * d + j]);
            t[i * d + j] = s;
        }
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += t[i * d + k] * fabs(g[k * d + j]);
            out[i * d + j] = s;
        }
    free(t);
}

/* ----------------------------------------------------- (1) generators */

/* A = rho'(0) by central differences of eqr_rep_matrix, and e^{tA} = rho(t)
 * at a finite angle (Taylor series), for SO(2) and O(2) types. */
static void test_generators_match_fd(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    eqr_rep *reps[3] = {tu_lie_so2_a(ctx), tu_lie_so2_b(ctx), rep_o2(ctx)};
    for (int k = 0; k < 3; k++) {
        int d = reps[k]->dim;
        float *g = malloc(sizeof(float) * (size_t)(d * d));
        double *P = malloc(sizeof(double) * (size_t)(d * d)), *Mm = malloc(sizeof(double) * (size_t)(d * d));
        double *E = calloc((size_t)(d * d), sizeof(double)), *T = malloc(sizeof(double) * (size_t)(d * d));
        double *T2 = malloc(sizeof(double) * (size_t)(d * d));
        assert_true(g && P && Mm && E && T && T2);
        assert_int_equal(eqr_rep_lie_generator(ctx, reps[k], g), EQR_OK);
        const double h = 1e-5;
        eqr_rep_matrix(reps[k], eqr_gelem_of(0, h), P);
        eqr_rep_matrix(reps[k], eqr_gelem_of(0, -h), Mm);
        /* bound: g rounded to float (u |g|), truncation h^2/6 |g|^3 (times
         * 1 + 1e-9 for the higher terms at h = 1e-5), the double matrices
         * (entries <= 1, cos/sin within 4 eps) over 2h */
        double *g3 = malloc(sizeof(double) * (size_t)(d * d));
        assert_non_null(g3);
        abs_cube(g, d, g3);
        for (int i = 0; i < d * d; i++) {
            const double tol = TU_U * fabs(g[i]) + h * h / 6 * (1 + 1e-9) * g3[i] + 8 * DBL_EPSILON / (2 * h);
            if (!(fabs(g[i] - (P[i] - Mm[i]) / (2 * h)) <= tol))
                fail_msg("generator entry %d: %g vs %g", i, g[i], (P[i] - Mm[i]) / (2 * h));
        }
        free(g3);
        assert_true(tu_max_abs(g, d * d) >= 1.0); /* not the zero matrix */
        /* e^{tA} by its series equals rho(rotation by t) */
        const double t = 0.9;
        for (int i = 0; i < d * d; i++) T[i] = (i % (d + 1) == 0) ? 1.0 : 0.0;
        for (int i = 0; i < d * d; i++) E[i] = T[i];
        for (int n = 1; n < 60; n++) {
            for (int i = 0; i < d; i++)
                for (int j = 0; j < d; j++) {
                    double s = 0;
                    for (int l = 0; l < d; l++) s += T[i * d + l] * g[l * d + j];
                    T2[i * d + j] = s * t / n;
                }
            for (int i = 0; i < d * d; i++) T[i] = T2[i], E[i] += T2[i];
        }
        eqr_rep_matrix(reps[k], eqr_gelem_of(0, t), P);
        /* double arithmetic (series and cos/sin, ~1e-15 of e^{t|A|}): a
         * double-level threshold, not a float bound */
        for (int i = 0; i < d * d; i++) assert_true(fabs(E[i] - P[i]) < 1e-9);
        free(g), free(P), free(Mm), free(E), free(T), free(T2);
    }
    for (int k = 0; k < 3; k++) eqr_rep_destroy(reps[k]);
    eqr_ctx_destroy(ctx);
}

/* ----------------------------------------------- (2) closed form vs FD */

static void test_lie_derivative_matches_fd_so2(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(2);
    eqr_rep *ra = tu_lie_so2_a(ctx), *rb = tu_lie_so2_b(ctx), *ro = rep_o2(ctx);
    float ga[100], gb[81], go[81], W[100];
    assert_int_equal(eqr_rep_lie_generator(ctx, ra, ga), EQR_OK);
    assert_int_equal(eqr_rep_lie_generator(ctx, rb, gb), EQR_OK);
    assert_int_equal(eqr_rep_lie_generator(ctx, ro, go), EQR_OK);
    eqr_lie_rep la = {10, 1, ga}, lb = {9, 1, gb}, lo = {9, 1, go};
    double worst = 0;
    for (uint64_t s = 0; s < 3; s++) {
        tu_fill_uniform(W, 90, 10 + s); /* a -> b: W [9, 10] */
        worst = fmax(worst, fd_lie_check(ctx, W, &la, &lb, expo_planar, ra, expo_planar, rb, 20 + s));
        tu_fill_uniform(W, 90, 30 + s); /* b -> a: W [10, 9] */
        worst = fmax(worst, fd_lie_check(ctx, W, &lb, &la, expo_planar, rb, expo_planar, ra, 40 + s));
        tu_fill_uniform(W, 100, 50 + s); /* a -> a */
        worst = fmax(worst, fd_lie_check(ctx, W, &la, &la, expo_planar, ra, expo_planar, ra, 60 + s));
        tu_fill_uniform(W, 81, 70 + s); /* O(2) -> O(2), rotations */
        worst = fmax(worst, fd_lie_check(ctx, W, &lo, &lo, expo_planar, ro, expo_planar, ro, 80 + s));
    }
    printf("SO(2)/O(2): max |closed - FD| / its bound = %.3g\n", worst);
    assert_true(worst <= 1);

    /* the check has teeth: transposed generators (the other rotation sense,
     * i.e. scrambled axes) disagree with the measurement */
    float gat[100], gbt[81];
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 10; j++) gat[i * 10 + j] = ga[j * 10 + i];
    for (int i = 0; i < 9; i++)
        for (int j = 0; j < 9; j++) gbt[i * 9 + j] = gb[j * 9 + i];
    eqr_lie_rep lat = {10, 1, gat}, lbt = {9, 1, gbt};
    tu_fill_uniform(W, 90, 10);
    double bad = fd_lie_check(ctx, W, &lat, &lbt, expo_planar, ra, expo_planar, rb, 20);
    assert_true(bad > 1e3); /* far outside the bound */
    eqr_rep_destroy(ra), eqr_rep_destroy(rb), eqr_rep_destroy(ro);
    eqr_ctx_destroy(ctx);
}

static void test_lie_derivative_matches_fd_so3(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(3);
    tu_rep3 ri = {2, 2}, ro = {1, 3}; /* dims 8 and 10 */
    float gi[3 * 64], go[3 * 100], W[80];
    tu_rep3_gens(&ri, gi);
    tu_rep3_gens(&ro, go);
    /* the hand-written generators are the derivatives of the Rodrigues maps */
    double P[100], M[100];
    for (int a = 0; a < 3; a++) {
        expo_so3(&ro, a, 1e-5, P);
        expo_so3(&ro, a, -1e-5, M);
        double g3[100];
        abs_cube(go + a * 100, 10, g3);
        for (int i = 0; i < 100; i++) /* as in test_generators_match_fd */
            assert_true(fabs(go[a * 100 + i] - (P[i] - M[i]) / 2e-5) <=
                        TU_U * fabs(go[a * 100 + i]) + 1e-10 / 6 * (1 + 1e-9) * g3[i] + 8 * DBL_EPSILON / 2e-5);
    }
    eqr_lie_rep li = {8, 3, gi}, lo = {10, 3, go};
    double worst = 0;
    for (uint64_t s = 0; s < 3; s++) {
        tu_fill_uniform(W, 80, 100 + s);
        worst = fmax(worst, fd_lie_check(ctx, W, &li, &lo, expo_so3, &ri, expo_so3, &ro, 200 + s));
        worst = fmax(worst, fd_lie_check(ctx, W, &lo, &li, expo_so3, &ro, expo_so3, &ri, 300 + s));
    }
    printf("so(3) scalars+vectors: max |closed - FD| / its bound = %.3g\n", worst);
    assert_true(worst <= 1);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generators_match_fd),
        cmocka_unit_test(test_lie_derivative_matches_fd_so2),
        cmocka_unit_test(test_lie_derivative_matches_fd_so3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
