/* Real Clebsch-Gordan coefficients: Racah's formula for the complex ones,
 * the complex-to-real change of basis of o3.h, Frobenius normalisation and
 * a deterministic sign; and a caller-owned table of them. */
#include "groups/o3_internal.h"

#include <complex.h>
#include <math.h>
#include <stdlib.h>

#define NLF (4 * EQR_O3_LMAX + 8)

static void log_fact(double *lf) {
    lf[0] = 0;
    for (int n = 1; n < NLF; n++) lf[n] = lf[n - 1] + log((double)n);
}

/* <j1 m1 j2 m2 | J M> (Condon-Shortley), M = m1 + m2 assumed. */
static double cg_complex(const double *lf, int j1, int m1, int j2, int m2, int J, int M) {
    if (abs(m1) > j1 || abs(m2) > j2 || abs(M) > J) return 0;
    double pre = 0.5 * (log(2.0 * J + 1) + lf[J + j1 - j2] + lf[J - j1 + j2] + lf[j1 + j2 - J] -
                        lf[j1 + j2 + J + 1] + lf[J + M] + lf[J - M] + lf[j1 - m1] + lf[j1 + m1] +
                        lf[j2 - m2] + lf[j2 + m2]);
    double s = 0;
    for (int k = 0; k <= j1 + j2 - J; k++) {
        int a = j1 - m1 - k, b = j2 + m2 - k, c = J - j2 + m1 + k, d = J - j1 - m2 + k;
        if (a < 0 || b < 0 || c < 0 || d < 0) continue;
        double t = exp(pre - lf[k] - lf[j1 + j2 - J - k] - lf[a] - lf[b] - lf[c] - lf[d]);
        s += (k & 1) ? -t : t;
    }
    return s;
}

/* Row of the complex-to-real matrix U (real = U complex) for the real
 * element of order mr: up to 2 (complex m, coefficient) pairs. Complex Y
 * with the Condon-Shortley phase, real Y without it:
 *   m > 0: ((-1)^m Y^m + Y^-m)/sqrt2;  m < 0: i (Y^m - (-1)^m Y^-m)/sqrt2. */
static int u_row(int mr, int *mc, double complex *c) {
    const double h = 0.70710678118654752440;
    if (mr == 0) { mc[0] = 0; c[0] = 1; return 1; }
    int a = abs(mr);
    double sg = (a & 1) ? -1 : 1;
    if (mr > 0) { mc[0] = a; c[0] = sg * h; mc[1] = -a; c[1] = h; }
    else { mc[0] = -a; c[0] = I * h; mc[1] = a; c[1] = -I * sg * h; }
    return 2;
}

eqr_status eqr_o3_cg_dense(eqr_ctx *ctx, int l1, int l2, int l3, double *C) {
    if (!ctx) return EQR_ERR_ARG;
    if (l1 < 0 || l2 < 0 || l3 < 0 || l1 > EQR_O3_LMAX || l2 > EQR_O3_LMAX || l3 > EQR_O3_LMAX || !C)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_o3_cg_dense: l (%d, %d, %d) must be in 0..%d, C %p",
                         l1, l2, l3, EQR_O3_LMAX, (void *)C);
    int d1 = 2 * l1 + 1, d2 = 2 * l2 + 1, d3 = 2 * l3 + 1;
    size_t n = (size_t)d1 * d2 * d3;
    for (size_t i = 0; i < n; i++) C[i] = 0;
    if (l3 < abs(l1 - l2) || l3 > l1 + l2) return EQR_OK;
    double complex *Z = malloc(sizeof(double complex) * n);
    if (!Z) return eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_o3_cg_dense: out of memory");
    for (size_t i = 0; i < n; i++) Z[i] = 0;
    double lf[NLF];
    log_fact(lf);
    /* C_ijk = sum U3[k,m3] CG(m1,m2,m3) conj(U1[i,m1]) conj(U2[j,m2]) */
    for (int r1 = -l1; r1 <= l1; r1++) {
        int mc1[2], n1, i = eqr__o3_pos(l1, r1);
        double complex c1[2];
        n1 = u_row(r1, mc1, c1);
        for (int r2 = -l2; r2 <= l2; r2++) {
            int mc2[2], n2, j = eqr__o3_pos(l2, r2);
            double complex c2[2];
            n2 = u_row(r2, mc2, c2);
            for (int a = 0; a < n1; a++)
                for (int b = 0; b < n2; b++) {
                    int m3 = mc1[a] + mc2[b];
                    if (abs(m3) > l3) continue;
                    double cg = cg_complex(lf, l1, mc1[a], l2, mc2[b], l3, m3);
                    if (cg == 0) continue;
                    double complex f = cg * conj(c1[a]) * conj(c2[b]);
                    for (int sr = -1; sr <= 1; sr += 2) {
                        int r3 = sr * abs(m3);
                        if (m3 == 0 && sr > 0) break;
                        int mc3[2];
                        double complex c3[2];
                        int n3 = u_row(r3, mc3, c3);
                        for (int c = 0; c < n3; c++)
                            if (mc3[c] == m3)
                                Z[((size_t)i * d2 + j) * d3 + eqr__o3_pos(l3, r3)] += c3[c] * f;
                    }
                }
        }
    }
    double nr = 0, ni = 0;
    for (size_t q = 0; q < n; q++) { nr += creal(Z[q]) * creal(Z[q]); ni += cimag(Z[q]) * cimag(Z[q]); }
    int im = ni > nr;
    double nrm = sqrt(im ? ni : nr), sign = 0;
    for (size_t q = 0; q < n; q++) {
        double v = (im ? cimag(Z[q]) : creal(Z[q])) / nrm;
        C[q] = fabs(v) < 1e-14 ? 0 : v;
        if (sign == 0 && fabs(v) > 1e-9) sign = v > 0 ? 1 : -1;
    }
    for (size_t q = 0; q < n; q++) C[q] *= sign;
    free(Z);
    return EQR_OK;
}

struct eqr_o3_cg_table {
    int lmax;
    eqr_o3_cg *e; /* (lmax+1)^3, index (l1 (lmax+1) + l2)(lmax+1) + l3 */
};

void eqr_o3_cg_table_destroy(eqr_o3_cg_table *t) {
    if (!t) return;
    if (t->e) {
        int n = (t->lmax + 1) * (t->lmax + 1) * (t->lmax + 1);
        for (int q = 0; q < n; q++) {
            free((void *)t->e[q].dense);
            free((void *)t->e[q].dense_f);
            free((void *)t->e[q].idx);
            free((void *)t->e[q].val);
        }
    }
    free(t->e);
    free(t);
}

eqr_o3_cg_table *eqr_o3_cg_table_create(eqr_ctx *ctx, int lmax) {
    if (!ctx) return NULL;
    if (lmax < 0 || lmax > EQR_O3_LMAX) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_o3_cg_table_create: lmax %d must be in 0..%d", lmax,
                  EQR_O3_LMAX);
        return NULL;
    }
    eqr_o3_cg_table *t = calloc(1, sizeof *t);
    int L = lmax + 1;
    if (t) t->e = calloc((size_t)L * L * L, sizeof(eqr_o3_cg));
    if (!t || !t->e) {
        eqr_o3_cg_table_destroy(t);
        eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_o3_cg_table_create: out of memory");
        return NULL;
    }
    t->lmax = lmax;
    for (int l1 = 0; l1 <= lmax; l1++)
        for (int l2 = 0; l2 <= lmax; l2++)
            for (int l3 = abs(l1 - l2); l3 <= lmax && l3 <= l1 + l2; l3++) {
                eqr_o3_cg *c = &t->e[(l1 * L + l2) * L + l3];
                c->l1 = l1; c->l2 = l2; c->l3 = l3;
                c->d1 = 2 * l1 + 1; c->d2 = 2 * l2 + 1; c->d3 = 2 * l3 + 1;
                size_t n = (size_t)c->d1 * c->d2 * c->d3;
                double *D = malloc(sizeof(double) * n);
                float *F = malloc(sizeof(float) * n);
                c->dense = D;
                c->dense_f = F;
                if (!D || !F || eqr_o3_cg_dense(ctx, l1, l2, l3, D)) goto fail;
                int nnz = 0;
                for (size_t q = 0; q < n; q++) { F[q] = (float)D[q]; nnz += D[q] != 0; }
                int32_t *idx = malloc(sizeof(int32_t) * 3 * (size_t)(nnz ? nnz : 1));
                double *val = malloc(sizeof(double) * (size_t)(nnz ? nnz : 1));
                c->idx = idx;
                c->val = val;
                if (!idx || !val) goto fail;
                c->nnz = nnz;
                int z = 0;
                for (size_t q = 0; q < n; q++)
                    if (D[q] != 0) {
                        idx[3 * z] = (int32_t)(q / ((size_t)c->d2 * c->d3));
                        idx[3 * z + 1] = (int32_t)(q / c->d3 % c->d2);
                        idx[3 * z + 2] = (int32_t)(q % c->d3);
                        val[z++] = D[q];
                    }
            }
    return t;
fail:
    eqr_o3_cg_table_destroy(t);
    if (!eqr_error_status(ctx)) eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_o3_cg_table_create: out of memory");
    return NULL;
}

int eqr_o3_cg_table_lmax(const eqr_o3_cg_table *t) { return t ? t->lmax : -1; }

const eqr_o3_cg *eqr_o3_cg_table_at(eqr_ctx *ctx, const eqr_o3_cg_table *t, int l1, int l2, int l3) {
    if (!ctx) return NULL;
    if (!t || l1 < 0 || l2 < 0 || l3 < 0 || l1 > t->lmax || l2 > t->lmax || l3 > t->lmax) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_o3_cg_table_at: (%d, %d, %d) outside the table (lmax %d)", l1,
                  l2, l3, t ? t->lmax : -1);
        return NULL;
    }
    if (l3 < abs(l1 - l2) || l3 > l1 + l2) return NULL;
    int L = t->lmax + 1;
    return &t->e[(l1 * L + l2) * L + l3];
}
