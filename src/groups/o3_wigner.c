/* so(3) generators of every degree in the real basis, and Wigner-D matrices
 * as their exponential (o3.h conventions). */
#include "groups/o3_internal.h"

#include <math.h>
#include <stdlib.h>

/* Solve M X = B for SPD M [n][n] (overwritten by its Cholesky factor), B
 * [n][m] overwritten by X. Returns 0 if M is not positive definite. */
static int chol_solve(double *M, int n, double *B, int m) {
    for (int j = 0; j < n; j++) {
        double s = M[j * n + j];
        for (int k = 0; k < j; k++) s -= M[j * n + k] * M[j * n + k];
        if (!(s > 0)) return 0;
        M[j * n + j] = sqrt(s);
        for (int i = j + 1; i < n; i++) {
            double t = M[i * n + j];
            for (int k = 0; k < j; k++) t -= M[i * n + k] * M[j * n + k];
            M[i * n + j] = t / M[j * n + j];
        }
    }
    for (int c = 0; c < m; c++) {
        for (int i = 0; i < n; i++) { /* L y = b */
            double t = B[i * m + c];
            for (int k = 0; k < i; k++) t -= M[i * n + k] * B[k * m + c];
            B[i * m + c] = t / M[i * n + i];
        }
        for (int i = n - 1; i >= 0; i--) { /* L^T x = y */
            double t = B[i * m + c];
            for (int k = i + 1; k < n; k++) t -= M[k * n + i] * B[k * m + c];
            B[i * m + c] = t / M[i * n + i];
        }
    }
    return 1;
}

eqr_status eqr_o3_generators(eqr_ctx *ctx, int l, double *J) {
    if (!ctx) return EQR_ERR_ARG;
    if (l < 0 || l > EQR_O3_LMAX || !J)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_o3_generators: l %d (0..%d), J %p", l, EQR_O3_LMAX,
                         (void *)J);
    int d = 2 * l + 1, S = 2 * d + 4, nd = eqr_sh_dim(l), off = l * l;
    double *Y = malloc(sizeof(double) * (size_t)d * S), *G = malloc(sizeof(double) * 3u * d * S);
    double *y = malloc(sizeof(double) * nd), *g = malloc(sizeof(double) * 3u * nd);
    double *M = malloc(sizeof(double) * (size_t)d * d), *B = malloc(sizeof(double) * 3u * d * d);
    if (!Y || !G || !y || !g || !M || !B) {
        free(Y); free(G); free(y); free(g); free(M); free(B);
        return eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_o3_generators: out of memory (l %d)", l);
    }
    /* fixed points on the sphere: a golden-angle spiral, slightly offset
     * from the poles */
    for (int s = 0; s < S; s++) {
        double z = 1 - (2.0 * s + 1) / S, rho = sqrt(1 - z * z), ph = 2.399963229728653 * s + 0.3;
        double u[3] = {rho * cos(ph), rho * sin(ph), z};
        eqr__o3_solid(l, u, y, g);
        for (int a = 0; a < 3; a++) {
            /* L_a u = e_a x u */
            double v[3] = {0, 0, 0};
            if (a == 0) { v[1] = -u[2]; v[2] = u[1]; }
            if (a == 1) { v[0] = u[2]; v[2] = -u[0]; }
            if (a == 2) { v[0] = -u[1]; v[1] = u[0]; }
            for (int i = 0; i < d; i++) {
                const double *gi = g + 3 * (off + i);
                G[((size_t)a * d + i) * S + s] = gi[0] * v[0] + gi[1] * v[1] + gi[2] * v[2];
            }
        }
        for (int i = 0; i < d; i++) Y[(size_t)i * S + s] = y[off + i];
    }
    /* J_a = G_a Y^T (Y Y^T)^-1:  (Y Y^T) J_a^T = Y G_a^T */
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double t = 0;
            for (int s = 0; s < S; s++) t += Y[(size_t)i * S + s] * Y[(size_t)j * S + s];
            M[i * d + j] = t;
        }
    for (int i = 0; i < d; i++)
        for (int a = 0; a < 3; a++)
            for (int j = 0; j < d; j++) {
                double t = 0;
                for (int s = 0; s < S; s++)
                    t += Y[(size_t)i * S + s] * G[((size_t)a * d + j) * S + s];
                B[(size_t)i * 3 * d + a * d + j] = t;
            }
    int ok = chol_solve(M, d, B, 3 * d);
    if (ok)
        for (int a = 0; a < 3; a++)
            for (int i = 0; i < d; i++)
                for (int j = 0; j < d; j++) {
                    double v = B[(size_t)j * 3 * d + a * d + i];
                    J[(size_t)a * d * d + i * d + j] = fabs(v) < 1e-12 ? 0 : v;
                }
    free(Y); free(G); free(y); free(g); free(M); free(B);
    if (!ok) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_o3_generators: singular fit at l %d", l);
    return EQR_OK;
}

eqr_status eqr_o3_wigner_d_w(eqr_ctx *ctx, int l, const double w[3], double *D) {
    if (!ctx) return EQR_ERR_ARG;
    if (l < 0 || l > EQR_O3_LMAX || !w || !D)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_o3_wigner_d: l %d (0..%d), w %p, D %p", l,
                         EQR_O3_LMAX, (const void *)w, (void *)D);
    if (!isfinite(w[0]) || !isfinite(w[1]) || !isfinite(w[2]))
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_o3_wigner_d: rotation is not finite");
    int d = 2 * l + 1;
    size_t dd = (size_t)d * d;
    double *buf = malloc(sizeof(double) * dd * 6);
    if (!buf) return eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_o3_wigner_d: out of memory (l %d)", l);
    double *J = buf, *A = buf + 3 * dd, *T = A + dd, *P = T + dd;
    eqr_status st = eqr_o3_generators(ctx, l, J);
    if (st) { free(buf); return st; }
    double nrm = fabs(w[0]) + fabs(w[1]) + fabs(w[2]); /* bounds ||A|| up to l */
    int sq = 0;
    while (nrm * (l + 1) > 0.25) { nrm *= 0.5; sq++; }
    double sc = ldexp(1.0, -sq);
    for (size_t i = 0; i < dd; i++) A[i] = sc * (w[0] * J[i] + w[1] * J[dd + i] + w[2] * J[2 * dd + i]);
    /* Taylor: D = sum A^k / k!, term T */
    for (size_t i = 0; i < dd; i++) D[i] = T[i] = (i % (d + 1) == 0);
    for (int k = 1; k <= 18; k++) {
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) {
                double t = 0;
                for (int m = 0; m < d; m++) t += T[i * d + m] * A[m * d + j];
                P[i * d + j] = t / k;
            }
        for (size_t i = 0; i < dd; i++) { T[i] = P[i]; D[i] += P[i]; }
    }
    for (int s = 0; s < sq; s++) {
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) {
                double t = 0;
                for (int m = 0; m < d; m++) t += D[i * d + m] * D[m * d + j];
                P[i * d + j] = t;
            }
        for (size_t i = 0; i < dd; i++) D[i] = P[i];
    }
    free(buf);
    return EQR_OK;
}

static void quat_rotvec(const double q[4], double w[3]) {
    double s = q[0] < 0 ? -1 : 1, v = sqrt(q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
    if (v == 0) { w[0] = w[1] = w[2] = 0; return; }
    double ang = 2 * atan2(v, s * q[0]);
    for (int k = 0; k < 3; k++) w[k] = s * q[k + 1] / v * ang;
}

void eqr_o3_rotvec(const double R[9], double w[3]) {
    double q[4], tr = R[0] + R[4] + R[8];
    if (tr > 0) {
        double s = 2 * sqrt(1 + tr);
        q[0] = s / 4; q[1] = (R[7] - R[5]) / s; q[2] = (R[2] - R[6]) / s; q[3] = (R[3] - R[1]) / s;
    } else if (R[0] > R[4] && R[0] > R[8]) {
        double s = 2 * sqrt(1 + R[0] - R[4] - R[8]);
        q[0] = (R[7] - R[5]) / s; q[1] = s / 4; q[2] = (R[1] + R[3]) / s; q[3] = (R[2] + R[6]) / s;
    } else if (R[4] > R[8]) {
        double s = 2 * sqrt(1 + R[4] - R[0] - R[8]);
        q[0] = (R[2] - R[6]) / s; q[1] = (R[1] + R[3]) / s; q[2] = s / 4; q[3] = (R[5] + R[7]) / s;
    } else {
        double s = 2 * sqrt(1 + R[8] - R[0] - R[4]);
        q[0] = (R[3] - R[1]) / s; q[1] = (R[2] + R[6]) / s; q[2] = (R[5] + R[7]) / s; q[3] = s / 4;
    }
    quat_rotvec(q, w);
}

eqr_status eqr_o3_wigner_d(eqr_ctx *ctx, int l, const double R[9], double *D) {
    if (!ctx) return EQR_ERR_ARG;
    if (!R) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_o3_wigner_d: R is NULL");
    double e = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            double s = 0;
            for (int k = 0; k < 3; k++) s += R[3 * i + k] * R[3 * j + k];
            e = fmax(e, fabs(s - (i == j)));
        }
    double det = R[0] * (R[4] * R[8] - R[5] * R[7]) - R[1] * (R[3] * R[8] - R[5] * R[6]) +
                 R[2] * (R[3] * R[7] - R[4] * R[6]);
    if (!(e < 1e-6) || !(fabs(det - 1) < 1e-6))
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "eqr_o3_wigner_d: R is not a rotation (|R R^T - I| = %g, det = %g)", e, det);
    double w[3];
    eqr_o3_rotvec(R, w);
    return eqr_o3_wigner_d_w(ctx, l, w, D);
}

eqr_status eqr_o3_wigner_d_quat(eqr_ctx *ctx, int l, const double q[4], double *D) {
    if (!ctx) return EQR_ERR_ARG;
    double n = q ? sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]) : 0;
    if (!(n > 0) || !isfinite(n))
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_o3_wigner_d_quat: quaternion is zero or not finite");
    double u[4] = {q[0] / n, q[1] / n, q[2] / n, q[3] / n}, w[3];
    quat_rotvec(u, w);
    return eqr_o3_wigner_d_w(ctx, l, w, D);
}

eqr_status eqr_o3_wigner_d_axis_angle(eqr_ctx *ctx, int l, const double axis[3], double angle,
                                      double *D) {
    if (!ctx) return EQR_ERR_ARG;
    double n = axis ? sqrt(axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2]) : 0;
    if (!(n > 0) || !isfinite(n) || !isfinite(angle))
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "eqr_o3_wigner_d_axis_angle: axis is zero or not finite, or angle not finite");
    double w[3] = {axis[0] / n * angle, axis[1] / n * angle, axis[2] / n * angle};
    return eqr_o3_wigner_d_w(ctx, l, w, D);
}
