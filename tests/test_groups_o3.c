/* O(3): irreps strings and layout, real spherical harmonics, generators,
 * Wigner-D, Clebsch-Gordan (o3.h). All maths is double; unless stated, the
 * tolerance 1e-10 is far above the rounding of these short double
 * computations (~1e-16 per operation over < 1e4 operations, the exponential's
 * 18 terms and squarings included) and far below the O(1) error a wrong
 * sign, order or convention gives. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-10
static const double PI = 3.14159265358979323846;

static double urand(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((*s >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1;
}
static void rand_rot(uint64_t *s, double R[9], double w[3]) {
    double v[3] = {urand(s), urand(s), urand(s)}, a = PI * urand(s), n = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    for (int k = 0; k < 3; k++) w[k] = v[k] / n * a;
    /* Rodrigues */
    double x = v[0] / n, y = v[1] / n, z = v[2] / n, c = cos(a), sn = sin(a), t = 1 - c;
    double M[9] = {t * x * x + c, t * x * y - sn * z, t * x * z + sn * y,
                   t * x * y + sn * z, t * y * y + c, t * y * z - sn * x,
                   t * x * z - sn * y, t * y * z + sn * x, t * z * z + c};
    memcpy(R, M, sizeof M);
}
static void matmul(const double *A, const double *B, double *C, int n) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double t = 0;
            for (int k = 0; k < n; k++) t += A[i * n + k] * B[k * n + j];
            C[i * n + j] = t;
        }
}
static void matvec(const double *A, const double *x, double *y, int n) {
    for (int i = 0; i < n; i++) {
        double t = 0;
        for (int k = 0; k < n; k++) t += A[i * n + k] * x[k];
        y[i] = t;
    }
}
static double maxdiff(const double *a, const double *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}
#define CHECK(what, e, tol) do { double e_ = (e); if (!(e_ <= (tol))) fail_msg("%s: error %g > %g", what, e_, (double)(tol)); } while (0)

/* ------------------------------------------------------------- irreps */

static void test_irreps_parse(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    eqr_irreps ir, s;
    char buf[128];
    assert_int_equal(eqr_irreps_parse(ctx, " 32x0e + 32x1o+8x2e ", &ir), EQR_OK);
    assert_int_equal(ir.n, 3);
    eqr_irreps_str(&ir, buf, sizeof buf);
    assert_string_equal(buf, "32x0e+32x1o+8x2e");
    assert_int_equal(eqr_irreps_dim(&ir), 32 + 96 + 40);
    assert_int_equal(eqr_irreps_offset(&ir, 2), 128);
    assert_int_equal(eqr_irreps_num_irreps(&ir), 72);
    assert_int_equal(eqr_irreps_lmax(&ir), 2);
    assert_int_equal(eqr_irreps_parse(ctx, "0e", &ir), EQR_OK);
    assert_true(ir.n == 1 && ir.e[0].mul == 1 && ir.e[0].l == 0 && ir.e[0].p == 1);
    assert_int_equal(eqr_irreps_parse(ctx, "2x1o+3x1o+1x4e+0x2e+2x4e+5o", &ir), EQR_OK);
    assert_int_equal(eqr_irreps_dim(&ir), 2 * 3 + 3 * 3 + 9 + 2 * 9 + 11);
    eqr_irreps_simplify(&ir, &s);
    eqr_irreps_str(&s, buf, sizeof buf);
    assert_string_equal(buf, "5x1o+3x4e+1x5o");
    /* multiplicities summing past INT_MAX stay separate entries (fuzz_irreps:
     * the merge once overflowed int) */
    assert_int_equal(eqr_irreps_parse(ctx, "999999999x0e+999999999x0e+999999999x0e+0x1o+2x0e", &ir), EQR_OK);
    eqr_irreps_simplify(&ir, &s);
    eqr_irreps_str(&s, buf, sizeof buf);
    assert_string_equal(buf, "1999999998x0e+1000000001x0e");
    assert_int_equal(eqr_irreps_num_irreps(&s), 3 * 999999999LL + 2);
    int perm[8];
    assert_int_equal(eqr_irreps_parse(ctx, "1x2o+1x0o+3x1e+1x0e+1x2e", &ir), EQR_OK);
    eqr_irreps_sort(&ir, &s, perm);
    eqr_irreps_str(&s, buf, sizeof buf);
    assert_string_equal(buf, "1x0e+1x0o+3x1e+1x2e+1x2o");
    assert_int_equal(perm[0], 3);
    assert_int_equal(perm[4], 0);
    assert_int_equal(eqr_irreps_parse(ctx, "", &ir), EQR_OK);
    assert_int_equal(ir.n, 0);
    /* small buffers are truncated and terminated, the needed length returned */
    eqr_irreps_parse(ctx, "32x0e+32x1o", &ir);
    assert_int_equal(eqr_irreps_str(&ir, buf, 6), 11);
    assert_string_equal(buf, "32x0e");
    /* bad strings: message names the problem and the position */
    struct { const char *s, *needle; } bad[] = {
        {"32x0e+", "expected a multiplicity or degree at position 6"},
        {"32y0e", "expected parity 'e' or 'o' at position 2"},
        {"3x1", "expected parity 'e' or 'o' at position 3"},
        {"3x e", "expected a degree l after 'x' at position 3"},
        {"1e 2e", "expected '+' or the end at position 3"},
        {"x1e", "expected a multiplicity or degree at position 0"},
        {"1x99e", "degree 99 above"},
        {"1234567890x0e", "number too long"},
    };
    eqr_irreps keep = ir;
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        assert_int_equal(eqr_irreps_parse(ctx, bad[k].s, &ir), EQR_ERR_ARG);
        tu_assert_error(ctx, EQR_ERR_ARG, bad[k].needle);
        assert_true(eqr_irreps_equal(&ir, &keep)); /* untouched */
    }
    eqr_ctx_destroy(ctx);
}

/* ---------------------------------------------------- spherical harmonics */

static double legendre(int l, double x) {
    double p0 = 1, p1 = x;
    if (l == 0) return 1;
    for (int k = 2; k <= l; k++) { double p = ((2 * k - 1) * x * p1 - (k - 1) * p0) / k; p0 = p1; p1 = p; }
    return p1;
}

static void test_sh(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(2);
    enum { L = 6, ND = (L + 1) * (L + 1) };
    double y[ND], ya[ND], yb[ND], g[3 * ND];
    uint64_t s = 7;
    /* peer's explicit l <= 2 (component) on a unit vector */
    double u[3] = {0.48, -0.6, 0.64};
    assert_int_equal(eqr_o3_sh(ctx, 2, EQR_SH_COMPONENT, 1, u, y, NULL), EQR_OK);
    double x = u[0], yy = u[1], z = u[2], s3 = sqrt(3.0), s15 = sqrt(15.0), s5 = sqrt(5.0);
    double ref[9] = {1, s3 * x, s3 * yy, s3 * z, s15 * x * yy, s15 * yy * z,
                     s5 / 2 * (2 * z * z - x * x - yy * yy), s15 * x * z, s15 / 2 * (x * x - yy * yy)};
    CHECK("explicit l<=2", maxdiff(y, ref, 9), TOL);
    for (int it = 0; it < 20; it++) {
        double a[3] = {urand(&s), urand(&s), urand(&s)}, b[3] = {urand(&s), urand(&s), urand(&s)};
        double na = sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2]), nb = sqrt(b[0] * b[0] + b[1] * b[1] + b[2] * b[2]);
        eqr_o3_sh(ctx, L, EQR_SH_COMPONENT, 1, a, ya, NULL);
        eqr_o3_sh(ctx, L, EQR_SH_COMPONENT, 1, b, yb, NULL);
        double dot = (a[0] * b[0] + a[1] * b[1] + a[2] * b[2]) / (na * nb);
        for (int l = 0; l <= L; l++) {
            double sum = 0, n2 = 0;
            for (int i = l * l; i < (l + 1) * (l + 1); i++) { sum += ya[i] * yb[i]; n2 += ya[i] * ya[i]; }
            CHECK("addition theorem", fabs(sum - (2 * l + 1) * legendre(l, dot)), TOL * (2 * l + 1));
            CHECK("component norm", fabs(n2 - (2 * l + 1)), TOL * (2 * l + 1));
        }
        /* other normalisations and the unnormalised solid harmonics */
        double yn[ND], yi[ND], ys[ND];
        eqr_o3_sh(ctx, L, EQR_SH_NORM, 1, a, yn, NULL);
        eqr_o3_sh(ctx, L, EQR_SH_INTEGRAL, 1, a, yi, NULL);
        eqr_o3_sh(ctx, L, EQR_SH_COMPONENT, 0, a, ys, NULL);
        for (int l = 0; l <= L; l++)
            for (int i = l * l; i < (l + 1) * (l + 1); i++) {
                CHECK("norm", fabs(yn[i] * sqrt(2 * l + 1.0) - ya[i]), TOL);
                CHECK("integral", fabs(yi[i] * sqrt(4 * PI) - ya[i]), TOL);
                CHECK("solid", fabs(ys[i] - pow(na, l) * ya[i]), TOL * pow(na, l));
            }
        /* parity */
        double m[3] = {-a[0], -a[1], -a[2]};
        eqr_o3_sh(ctx, L, EQR_SH_COMPONENT, 1, m, yb, NULL);
        for (int l = 0; l <= L; l++)
            for (int i = l * l; i < (l + 1) * (l + 1); i++)
                CHECK("parity", fabs(yb[i] - ((l & 1) ? -1 : 1) * ya[i]), TOL);
        /* gradient by central differences (error O(h^2 |Y'''|) ~ 1e-7) */
        for (int nz = 0; nz < 2; nz++) {
            eqr_o3_sh(ctx, L, EQR_SH_COMPONENT, nz, a, y, g);
            for (int k = 0; k < 3; k++) {
                double ap[3] = {a[0], a[1], a[2]}, am[3] = {a[0], a[1], a[2]}, h = 1e-5;
                ap[k] += h;
                am[k] -= h;
                eqr_o3_sh(ctx, L, EQR_SH_COMPONENT, nz, ap, ya, NULL);
                eqr_o3_sh(ctx, L, EQR_SH_COMPONENT, nz, am, yb, NULL);
                for (int i = 0; i < ND; i++)
                    CHECK("sh gradient", fabs(g[3 * i + k] - (ya[i] - yb[i]) / (2 * h)),
                          1e-5 * (1 + fabs(g[3 * i + k])) / (na * na));
            }
        }
    }
    /* along an axis and at 0: finite */
    double ax[3] = {0, 0, 2}, zero[3] = {0, 0, 0};
    eqr_o3_sh(ctx, L, EQR_SH_COMPONENT, 1, ax, y, g);
    for (int i = 0; i < ND; i++) assert_true(isfinite(y[i]) && isfinite(g[3 * i]) && isfinite(g[3 * i + 2]));
    CHECK("z axis l=1", fabs(y[3] - sqrt(3.0)), TOL);
    eqr_o3_sh(ctx, L, EQR_SH_COMPONENT, 1, zero, y, g);
    assert_true(y[0] == 1 && y[1] == 0 && g[0] == 0);
    assert_int_equal(eqr_o3_sh(ctx, -1, EQR_SH_COMPONENT, 1, ax, y, g), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "lmax -1");
    eqr_ctx_destroy(ctx);
}

/* ----------------------------------------------------- generators and D */

static void test_wigner(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(3);
    uint64_t s = 11;
    enum { L = 5, DM = 2 * L + 1 };
    static double J[3 * DM * DM], A[DM * DM], B[DM * DM], C[DM * DM], D1[DM * DM], D2[DM * DM], D3[DM * DM];
    /* J^1 = L_k of so3.h */
    assert_int_equal(eqr_o3_generators(ctx, 1, J), EQR_OK);
    double Lref[27] = {0, 0, 0, 0, 0, -1, 0, 1, 0, 0, 0, 1, 0, 0, 0, -1, 0, 0, 0, -1, 0, 1, 0, 0, 0, 0, 0};
    CHECK("J^1 = L", maxdiff(J, Lref, 27), TOL);
    for (int l = 0; l <= L; l++) {
        int d = 2 * l + 1, dd = d * d;
        assert_int_equal(eqr_o3_generators(ctx, l, J), EQR_OK);
        for (int a = 0; a < 3; a++) { /* [J_a, J_b] = J_c, antisymmetric */
            int b = (a + 1) % 3, c = (a + 2) % 3;
            matmul(J + a * dd, J + b * dd, A, d);
            matmul(J + b * dd, J + a * dd, B, d);
            for (int i = 0; i < dd; i++) C[i] = A[i] - B[i];
            CHECK("commutator", maxdiff(C, J + c * dd, dd), TOL * d * d);
            for (int i = 0; i < d; i++)
                for (int j = 0; j < d; j++)
                    CHECK("antisymmetric", fabs(J[a * dd + i * d + j] + J[a * dd + j * d + i]), TOL * d);
        }
        for (int it = 0; it < 5; it++) {
            double R1[9], R2[9], R12[9], w[3];
            rand_rot(&s, R1, w);
            rand_rot(&s, R2, w);
            matmul(R1, R2, R12, 3);
            assert_int_equal(eqr_o3_wigner_d(ctx, l, R1, D1), EQR_OK);
            assert_int_equal(eqr_o3_wigner_d(ctx, l, R2, D2), EQR_OK);
            assert_int_equal(eqr_o3_wigner_d(ctx, l, R12, D3), EQR_OK);
            matmul(D1, D2, A, d);
            CHECK("homomorphism", maxdiff(A, D3, dd), TOL * d * d);
            for (int i = 0; i < d; i++) /* orthogonal: D D^T = I */
                for (int j = 0; j < d; j++) {
                    double t = 0;
                    for (int k = 0; k < d; k++) t += D1[i * d + k] * D1[j * d + k];
                    CHECK("orthogonal", fabs(t - (i == j)), TOL * d);
                }
            if (l == 1) CHECK("D^1 = R", maxdiff(D1, R1, 9), TOL);
            /* Y(R u) = D Y(u) */
            double u[3] = {urand(&s), urand(&s), urand(&s)}, Ru[3], yu[64], yr[64], dy[DM];
            matvec(R1, u, Ru, 3);
            eqr_o3_sh(ctx, l, EQR_SH_COMPONENT, 1, u, yu, NULL);
            eqr_o3_sh(ctx, l, EQR_SH_COMPONENT, 1, Ru, yr, NULL);
            matvec(D1, yu + l * l, dy, d);
            CHECK("Y(Ru) = D Y(u)", maxdiff(dy, yr + l * l, d), TOL * d);
            /* quaternion and axis-angle agree with the matrix */
            double q[4] = {urand(&s), urand(&s), urand(&s), urand(&s)}, Rq[9];
            double n = sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
            double qw = q[0] / n, qx = q[1] / n, qy = q[2] / n, qz = q[3] / n;
            double M[9] = {1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qw * qz), 2 * (qx * qz + qw * qy),
                           2 * (qx * qy + qw * qz), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qw * qx),
                           2 * (qx * qz - qw * qy), 2 * (qy * qz + qw * qx), 1 - 2 * (qx * qx + qy * qy)};
            memcpy(Rq, M, sizeof M);
            eqr_o3_wigner_d_quat(ctx, l, q, D2);
            eqr_o3_wigner_d(ctx, l, Rq, D3);
            CHECK("quat = matrix", maxdiff(D2, D3, dd), TOL * d);
            double an = sqrt(w[0] * w[0] + w[1] * w[1] + w[2] * w[2]);
            eqr_o3_wigner_d_axis_angle(ctx, l, w, an, D2);
            eqr_o3_wigner_d(ctx, l, R2, D3);
            CHECK("axis-angle = matrix", maxdiff(D2, D3, dd), TOL * d);
        }
    }
    /* half turn: the log is ambiguous, D must not be */
    double Rh[9] = {1, 0, 0, 0, -1, 0, 0, 0, -1};
    eqr_o3_wigner_d(ctx, 1, Rh, D1);
    CHECK("half turn", maxdiff(D1, Rh, 9), TOL);
    double bad[9] = {1, 0, 0, 0, 1, 0, 0, 0, -1};
    assert_int_equal(eqr_o3_wigner_d(ctx, 2, bad, D1), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "not a rotation");
    eqr_ctx_destroy(ctx);
}

static void test_irreps_act(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(4);
    eqr_irreps ir;
    assert_int_equal(eqr_irreps_parse(ctx, "2x0e+1x0o+2x1o+1x1e+1x2e+1x3o+1x4e", &ir), EQR_OK);
    int dim = (int)eqr_irreps_dim(&ir);
    float x[2 * 64], y[2 * 64], z[2 * 64];
    tu_fill_uniform(x, 2 * dim, 5);
    uint64_t s = 3;
    double R[9], w[3], R1[9], R12[9];
    rand_rot(&s, R, w);
    rand_rot(&s, R1, w);
    matmul(R, R1, R12, 3);
    /* action is a homomorphism on O(3): (-R)(-R1) = R R1 */
    assert_int_equal(eqr_irreps_act(ctx, &ir, R1, -1, x, y, 2), EQR_OK);
    assert_int_equal(eqr_irreps_act(ctx, &ir, R, -1, y, z, 2), EQR_OK);
    assert_int_equal(eqr_irreps_act(ctx, &ir, R12, 1, x, y, 2), EQR_OK);
    /* float rounding of two stored passes: ~3 eps * sum |D||x| <= 3 eps * sqrt(9) */
    double e = 0;
    for (int i = 0; i < 2 * dim; i++) e = fmax(e, fabs((double)z[i] - y[i]));
    CHECK("act homomorphism", e, 3 * 1.2e-7 * 9);
    /* inversion alone: sign p on each entry; l = 1 block of the rotation is R */
    double I3[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    eqr_irreps_act(ctx, &ir, I3, -1, x, y, 1);
    assert_true(y[0] == x[0] && y[2] == -x[2] && y[3] == -x[3] && y[9] == x[9]);
    eqr_irreps_act(ctx, &ir, R, 1, x, y, 1);
    for (int i = 0; i < 3; i++) {
        double t = R[3 * i] * x[3] + R[3 * i + 1] * x[4] + R[3 * i + 2] * x[5];
        CHECK("l=1 block is R", fabs(y[3 + i] - t), 1e-6);
    }
    assert_int_equal(eqr_irreps_act(ctx, &ir, R, 0, x, y, 1), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "s 0 must be +-1");
    eqr_ctx_destroy(ctx);
}

/* ------------------------------------------------------- Clebsch-Gordan */

static void test_cg(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(5);
    enum { L = 4, DM = 2 * L + 1 };
    eqr_o3_cg_table *t = eqr_o3_cg_table_create(ctx, L);
    assert_non_null(t);
    uint64_t s = 21;
    static double D1[DM * DM], D2[DM * DM], D3[DM * DM], Cs[DM * DM * DM];
    double R[9], w[3];
    for (int l1 = 0; l1 <= L; l1++)
        for (int l2 = 0; l2 <= L; l2++)
            for (int l3 = 0; l3 <= L; l3++) {
                const eqr_o3_cg *c = eqr_o3_cg_table_at(ctx, t, l1, l2, l3);
                assert_int_equal(eqr_error_status(ctx), EQR_OK);
                int d1 = 2 * l1 + 1, d2 = 2 * l2 + 1, d3 = 2 * l3 + 1, n = d1 * d2 * d3;
                if (l3 < abs(l1 - l2) || l3 > l1 + l2) { /* selection rule */
                    assert_null(c);
                    eqr_o3_cg_dense(ctx, l1, l2, l3, Cs);
                    for (int q = 0; q < n; q++) assert_true(Cs[q] == 0);
                    continue;
                }
                assert_non_null(c);
                const double *C = c->dense;
                double f = 0;
                int first = -1, nnz = 0;
                for (int q = 0; q < n; q++) {
                    f += C[q] * C[q];
                    if (first < 0 && fabs(C[q]) > 1e-9) first = q;
                    nnz += C[q] != 0;
                    assert_true(fabs(C[q] - c->dense_f[q]) <= 6e-8 * fabs(C[q]));
                }
                CHECK("frobenius", fabs(f - 1), TOL);
                assert_true(first >= 0 && C[first] > 0); /* sign rule */
                assert_int_equal(nnz, c->nnz);
                for (int z = 0; z < c->nnz; z++)
                    assert_true(c->val[z] == C[(c->idx[3 * z] * d2 + c->idx[3 * z + 1]) * d3 + c->idx[3 * z + 2]]);
                /* orthogonality: sum_ij C_ijk C_ijk' = delta / d3, and 0 across l3 */
                for (int l4 = abs(l1 - l2); l4 <= l1 + l2 && l4 <= L; l4++) {
                    const double *E = eqr_o3_cg_table_at(ctx, t, l1, l2, l4)->dense;
                    int d4 = 2 * l4 + 1;
                    for (int k = 0; k < d3; k++)
                        for (int k2 = 0; k2 < d4; k2++) {
                            double sum = 0;
                            for (int ij = 0; ij < d1 * d2; ij++) sum += C[ij * d3 + k] * E[ij * d4 + k2];
                            CHECK("orthogonality", fabs(sum - (l4 == l3 && k == k2 ? 1.0 / d3 : 0)), TOL);
                        }
                }
                /* symmetry: swapping the inputs gives +-C */
                eqr_o3_cg_dense(ctx, l2, l1, l3, Cs);
                double sp = 0, sm = 0;
                for (int i = 0; i < d1; i++)
                    for (int j = 0; j < d2; j++)
                        for (int k = 0; k < d3; k++) {
                            double a = C[(i * d2 + j) * d3 + k], b = Cs[(j * d1 + i) * d3 + k];
                            sp = fmax(sp, fabs(a - b));
                            sm = fmax(sm, fabs(a + b));
                        }
                CHECK("swap symmetry", fmin(sp, sm), TOL);
                /* intertwining for random rotations: C(D1 x, D2 y) = D3 C(x, y) */
                for (int it = 0; it < 3; it++) {
                    rand_rot(&s, R, w);
                    eqr_o3_wigner_d(ctx, l1, R, D1);
                    eqr_o3_wigner_d(ctx, l2, R, D2);
                    eqr_o3_wigner_d(ctx, l3, R, D3);
                    double x[DM], y[DM], xr[DM], yr[DM], z[DM], zr[DM], dz[DM];
                    for (int i = 0; i < d1; i++) x[i] = urand(&s);
                    for (int j = 0; j < d2; j++) y[j] = urand(&s);
                    matvec(D1, x, xr, d1);
                    matvec(D2, y, yr, d2);
                    for (int k = 0; k < d3; k++) {
                        double a = 0, b = 0;
                        for (int i = 0; i < d1; i++)
                            for (int j = 0; j < d2; j++) {
                                a += C[(i * d2 + j) * d3 + k] * x[i] * y[j];
                                b += C[(i * d2 + j) * d3 + k] * xr[i] * yr[j];
                            }
                        z[k] = a;
                        zr[k] = b;
                    }
                    matvec(D3, z, dz, d3);
                    CHECK("intertwining", maxdiff(dz, zr, d3), TOL * d1 * d2);
                }
            }
    /* 1 x 1 -> 1 is the cross product (x, y, z basis), up to the norm */
    const eqr_o3_cg *c = eqr_o3_cg_table_at(ctx, t, 1, 1, 1);
    double k6 = 1 / sqrt(6.0);
    CHECK("cross product", fabs(c->dense[(0 * 3 + 1) * 3 + 2] - k6) + fabs(c->dense[(1 * 3 + 0) * 3 + 2] + k6), TOL);
    assert_null(eqr_o3_cg_table_at(ctx, t, 1, 5, 1));
    tu_assert_error(ctx, EQR_ERR_ARG, "outside the table");
    eqr_o3_cg_table_destroy(t);
    eqr_o3_cg_table_destroy(NULL);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_irreps_parse), cmocka_unit_test(test_sh),
        cmocka_unit_test(test_wigner), cmocka_unit_test(test_irreps_act),
        cmocka_unit_test(test_cg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
