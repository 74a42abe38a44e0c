/* The steerable basis per (out irrep, in irrep) pair: the constraint
 * solved per frequency (fixed space of the group action), the raw ring x
 * harmonic functions and their moment-matched sampling on the k x k grid
 * (steer_internal.h). */
#include "nn2d/steer_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>

/* ------------------------------------------------ small dense algebra */

/* Cyclic Jacobi eigen-decomposition of the symmetric n x n matrix a
 * (destroyed): eigenvalues ev[i], eigenvectors in the columns of v. */
static void jacobi_eig(int n, double *a, double *ev, double *v) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) v[i * n + j] = i == j;
    double fro = 0;
    for (int i = 0; i < n * n; i++) fro += a[i] * a[i];
    for (int sweep = 0; sweep < 64; sweep++) {
        double off = 0;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) off += a[p * n + q] * a[p * n + q];
        if (off <= 1e-32 * fro || off == 0) break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = a[p * n + q];
                if (apq == 0) continue;
                double th = (a[q * n + q] - a[p * n + p]) / (2 * apq);
                double t = (th >= 0 ? 1.0 : -1.0) / (fabs(th) + sqrt(th * th + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int r = 0; r < n; r++) { /* columns p, q */
                    double x = a[r * n + p], y = a[r * n + q];
                    a[r * n + p] = c * x - s * y;
                    a[r * n + q] = s * x + c * y;
                }
                for (int r = 0; r < n; r++) { /* rows p, q */
                    double x = a[p * n + r], y = a[q * n + r];
                    a[p * n + r] = c * x - s * y;
                    a[q * n + r] = s * x + c * y;
                }
                for (int r = 0; r < n; r++) {
                    double x = v[r * n + p], y = v[r * n + q];
                    v[r * n + p] = c * x - s * y;
                    v[r * n + q] = s * x + c * y;
                }
            }
    }
    for (int i = 0; i < n; i++) ev[i] = a[i * n + i];
}

/* M = B^T B for the D x D matrix B. */
static void gram(int D, const double *B, double *M) {
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double s = 0;
            for (int r = 0; r < D; r++) s += B[r * D + i] * B[r * D + j];
            M[i * D + j] = s;
        }
}

/* ------------------------------------------- the constraint per frequency */

/* Action of g on the frequency-m harmonics: (Y_h o g^-1) = sum_h' S[h', h] Y_h'
 * with Y = (cos m phi, sin m phi). g^-1 p has angle phi - a for (0, a) and
 * a + pi - phi for (1, a). */
static void harmonic_action(int m, eqr_gelem g, double *S) {
    if (m == 0) {
        S[0] = 1;
        return;
    }
    if (!g.flip) {
        double c = cos(m * g.angle), s = sin(m * g.angle);
        S[0] = c; S[1] = -s;
        S[2] = s; S[3] = c;
    } else {
        double psi = g.angle + PI_D, c = cos(m * psi), s = sin(m * psi);
        S[0] = c; S[1] = s;
        S[2] = s; S[3] = -c;
    }
}

/* A(g) = psi_o(g) (x) psi_i(g) (x) S_m(g) on coefficients [a, b, h]. */
static void action_matrix(const eqr_group *G, eqr_irrep io, eqr_irrep ii, int m, eqr_gelem g,
                          double *A) {
    double po[4], pi[4], S[4];
    eqr_irrep_matrix(G, io, g, po);
    eqr_irrep_matrix(G, ii, g, pi);
    harmonic_action(m, g, S);
    int dO = io.dim, dI = ii.dim, hm = m ? 2 : 1, D = dO * dI * hm;
    for (int a2 = 0; a2 < dO; a2++)
        for (int b2 = 0; b2 < dI; b2++)
            for (int h2 = 0; h2 < hm; h2++)
                for (int a = 0; a < dO; a++)
                    for (int b = 0; b < dI; b++)
                        for (int h = 0; h < hm; h++)
                            A[((a2 * dI + b2) * hm + h2) * D + (a * dI + b) * hm + h] =
                                po[a2 * dO + a] * pi[b2 * dI + b] * S[h2 * hm + h];
}

/* Lie algebra generator of A for SO(2): d/dtheta A(0, theta) at 0. A 2D irrep
 * of frequency f has generator f J, J = [[0, -1], [1, 0]]; a 1D one 0. */
static void generator_matrix(eqr_irrep io, eqr_irrep ii, int m, double *X) {
    int dO = io.dim, dI = ii.dim, hm = m ? 2 : 1, D = dO * dI * hm;
    double Jo[4] = {0, -1.0 * io.freq, io.freq, 0}, Ji[4] = {0, -1.0 * ii.freq, ii.freq, 0};
    double Js[4] = {0, -1.0 * m, m, 0};
    memset(X, 0, (size_t)D * D * sizeof *X);
    for (int a2 = 0; a2 < dO; a2++)
        for (int b2 = 0; b2 < dI; b2++)
            for (int h2 = 0; h2 < hm; h2++)
                for (int a = 0; a < dO; a++)
                    for (int b = 0; b < dI; b++)
                        for (int h = 0; h < hm; h++) {
                            double x = 0;
                            if (b == b2 && h == h2 && dO == 2) x += Jo[a2 * 2 + a];
                            if (a == a2 && h == h2 && dI == 2) x += Ji[b2 * 2 + b];
                            if (a == a2 && b == b2 && hm == 2) x += Js[h2 * 2 + h];
                            X[((a2 * dI + b2) * hm + h2) * D + (a * dI + b) * hm + h] = x;
                        }
}

/* Orthonormal basis (rows of out, MAXV each) of the coefficients v in V_m
 * with A(g) v = v for all g in G. Returns the count. */
static int fixed_space(const eqr_group *G, eqr_irrep io, eqr_irrep ii, int m, double *out) {
    int D = io.dim * ii.dim * (m ? 2 : 1);
    double A[MAXV * MAXV], M[MAXV * MAXV], V[MAXV * MAXV], ev[MAXV], thr;
    if (eqr_group_is_finite(G)) {
        /* (A(r) - I)^T (A(r) - I) has eigenvalues |e^{2 pi i q / N} - 1|^2:
         * 0 on the fixed space, >= 2 - 2 cos(2 pi / N) elsewhere. */
        action_matrix(G, io, ii, m, eqr_gelem_of(0, TWO_PI / G->n), A);
        for (int i = 0; i < D; i++) A[i * D + i] -= 1.0;
        gram(D, A, M);
        thr = G->n == 1 ? 0.5 : 1.0 - cos(TWO_PI / G->n);
    } else {
        /* X^T X has eigenvalues q^2 for the integer frequencies q of V_m. */
        generator_matrix(io, ii, m, A);
        gram(D, A, M);
        thr = 0.5;
    }
    jacobi_eig(D, M, ev, V);
    double U[MAXV * MAXV];
    int nu = 0;
    for (int c = 0; c < D; c++)
        if (ev[c] < thr) {
            for (int r = 0; r < D; r++) U[nu * MAXV + r] = V[r * D + c];
            nu++;
        }
    if (!eqr_group_has_flips(G) || nu == 0) {
        memcpy(out, U, sizeof U);
        return nu;
    }
    /* The flip maps the rotation-fixed space to itself (F r F = r^-1) and
     * acts there as a symmetric involution: keep its +1 eigenspace. */
    action_matrix(G, io, ii, m, eqr_gelem_of(1, 0.0), A);
    double Fr[MAXV * MAXV], W[MAXV * MAXV], ev2[MAXV];
    for (int i = 0; i < nu; i++)
        for (int j = 0; j < nu; j++) {
            double s = 0;
            for (int r = 0; r < D; r++) {
                double av = 0;
                for (int c = 0; c < D; c++) av += A[r * D + c] * U[j * MAXV + c];
                s += U[i * MAXV + r] * av;
            }
            Fr[i * nu + j] = s;
        }
    jacobi_eig(nu, Fr, ev2, W);
    int nf = 0;
    for (int c = 0; c < nu; c++)
        if (ev2[c] > 0) {
            for (int r = 0; r < D; r++) {
                double s = 0;
                for (int j = 0; j < nu; j++) s += W[j * nu + c] * U[j * MAXV + r];
                out[nf * MAXV + r] = s;
            }
            nf++;
        }
    return nf;
}

/* -------------------------------------------------------- raw functions */

/* Value of a raw function at (x, y) for every entry (a, b): out[dd]. */
static void raw_eval(const raw_fn *f, int dd, double sigma, double x, double y, double *out) {
    double rho = sqrt(x * x + y * y), d = rho - f->ring;
    double rad = exp(-d * d / (2 * sigma * sigma));
    if (f->m == 0) {
        for (int e = 0; e < dd; e++) out[e] = rad * f->v[e];
        return;
    }
    if (rho < 1e-12) { /* angular mean at the centre */
        for (int e = 0; e < dd; e++) out[e] = 0;
        return;
    }
    double phi = atan2(y, x), c = cos(f->m * phi), s = sin(f->m * phi);
    for (int e = 0; e < dd; e++) out[e] = rad * (f->v[2 * e] * c + f->v[2 * e + 1] * s);
}

/* Pixel-centre coordinates of tap q of a k x k filter. */
static void tap_xy(int k, int q, double *x, double *y) {
    *x = (q % k) - 0.5 * (k - 1);
    *y = 0.5 * (k - 1) - (q / k);
}

/* ------------------------------------------------ moment-matched sampling
 *
 * Point samples of a frequency-m function on the square grid alias: the grid
 * only has the symmetry of C4 / D4, so the samples also carry frequencies
 * m - 4t, whose low-order moments make the filter respond to low derivatives
 * of smooth inputs the continuous kernel ignores. Each raw function's
 * samples are therefore corrected per entry by the smallest change (in the
 * grid inner product) that makes its discrete moments
 *     sum_q K(q) x_q^a y_q^b,  a + b <= D = min(m, EQR_STEER_MOMENT_MAX, k-1)
 * equal the continuous moments over the disk |p| <= k/2. The correction is
 * an orthogonal projection onto the span of the sampled monomials (a space
 * the grid-exact elements preserve) plus equivariant targets, so exact
 * equivariance on the grid is kept. Coordinates are scaled by 2/k for
 * conditioning; the monomials x^a y^b, a + b <= D, are independent on the
 * k x k grid for D <= k - 1. */

/* Monomial index order: by degree d, then a = 0..d (x^a y^(d-a)). */
static int nmon_of(int D) { return (D + 1) * (D + 2) / 2; }

int eqr__steer_moment_setup(eqr_steer_basis *B) {
    int k = B->k, kk = B->kk, D = B->mom_max, n = nmon_of(D), nm = B->max_m + 1;
    B->nmon = n;
    B->mono = malloc((size_t)n * kk * sizeof *B->mono);
    B->chol = malloc((size_t)n * n * sizeof *B->chol);
    B->radmom = malloc((size_t)B->nrings * (D + 1) * sizeof *B->radmom);
    B->angmom = malloc((size_t)nm * 2 * n * sizeof *B->angmom);
    if (!B->mono || !B->chol || !B->radmom || !B->angmom) return 0;
    double c = 0.5 * k, R = 0.5 * k;
    for (int q = 0; q < kk; q++) {
        double x = ((q % k) - 0.5 * (k - 1)) / c, y = (0.5 * (k - 1) - (q / k)) / c;
        for (int d = 0, i = 0; d <= D; d++)
            for (int a = 0; a <= d; a++, i++) B->mono[(size_t)i * kk + q] = pow(x, a) * pow(y, d - a);
    }
    /* Gram matrix and its Cholesky factor (lower, row-major); the factor of
     * the leading block of degree <= D' is the leading block of this one. */
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double s = 0;
            for (int q = 0; q < kk; q++) s += B->mono[(size_t)i * kk + q] * B->mono[(size_t)j * kk + q];
            for (int t = 0; t < j; t++) s -= B->chol[i * n + t] * B->chol[j * n + t];
            if (i == j) {
                if (!(s > 0)) return -1;
                B->chol[i * n + i] = sqrt(s);
            } else {
                B->chol[i * n + j] = s / B->chol[j * n + j];
            }
        }
    /* radial moments int_0^R G_s(r) (r/c)^d r dr (midpoint rule, fine
     * enough for the Gaussian of width sigma) */
    int nr = 64 + (int)(40.0 * R / B->sigma);
    double h = R / nr;
    for (int s = 0; s < B->nrings; s++)
        for (int d = 0; d <= D; d++) B->radmom[s * (D + 1) + d] = 0;
    for (int j = 0; j < nr; j++) {
        double r = (j + 0.5) * h;
        for (int s = 0; s < B->nrings; s++) {
            double dr = r - s, g = exp(-dr * dr / (2 * B->sigma * B->sigma)) * r * h, rp = 1;
            for (int d = 0; d <= D; d++, rp *= r / c) B->radmom[s * (D + 1) + d] += g * rp;
        }
    }
    /* angular moments int Y_h(m phi) cos^a sin^(d-a) dphi: the equispaced
     * rule with na points is exact for trigonometric degree < na */
    int na = 2 * (B->max_m + D) + 4;
    memset(B->angmom, 0, (size_t)nm * 2 * n * sizeof *B->angmom);
    for (int j = 0; j < na; j++) {
        double ph = TWO_PI * j / na, cs = cos(ph), sn = sin(ph), w = TWO_PI / na;
        for (int m = 0; m < nm; m++) {
            double y0 = cos(m * ph), y1 = sin(m * ph);
            for (int d = 0, i = 0; d <= D; d++)
                for (int a = 0; a <= d; a++, i++) {
                    double mon = pow(cs, a) * pow(sn, d - a) * w;
                    B->angmom[((size_t)m * 2 + 0) * n + i] += y0 * mon;
                    B->angmom[((size_t)m * 2 + 1) * n + i] += y1 * mon;
                }
        }
    }
    return 1;
}

/* Correct the samples w [dd, kk] of raw function f (see above). */
static void moment_match(const eqr_steer_basis *B, const raw_fn *f, int dd, double *w) {
    int D = f->m < B->mom_max ? f->m : B->mom_max, n = nmon_of(D), N = B->nmon, kk = B->kk;
    int hm = f->m ? 2 : 1;
    double r[64];
    for (int e = 0; e < dd; e++) {
        const double *we = w + (size_t)e * kk;
        for (int d = 0, i = 0; d <= D; d++)
            for (int a = 0; a <= d; a++, i++) {
                double ang = f->v[e * hm] * B->angmom[((size_t)f->m * 2) * N + i];
                if (hm == 2) ang += f->v[e * hm + 1] * B->angmom[((size_t)f->m * 2 + 1) * N + i];
                double target = B->radmom[f->ring * (B->mom_max + 1) + d] * ang, disc = 0;
                const double *mi = B->mono + (size_t)i * kk;
                for (int q = 0; q < kk; q++) disc += mi[q] * we[q];
                r[i] = target - disc;
            }
        /* solve (L L^T) z = r with the leading n x n block of L */
        for (int i = 0; i < n; i++) {
            double s = r[i];
            for (int t = 0; t < i; t++) s -= B->chol[i * N + t] * r[t];
            r[i] = s / B->chol[i * N + i];
        }
        for (int i = n - 1; i >= 0; i--) {
            double s = r[i];
            for (int t = i + 1; t < n; t++) s -= B->chol[t * N + i] * r[t];
            r[i] = s / B->chol[i * N + i];
        }
        double *wm = w + (size_t)e * kk;
        for (int i = 0; i < n; i++) {
            const double *mi = B->mono + (size_t)i * kk;
            for (int q = 0; q < kk; q++) wm[q] += r[i] * mi[q];
        }
    }
}

/* Solve, sample and orthonormalise the basis of irrep pair (io, ii).
 * 0 on allocation failure (nothing leaked; P untouched). */
int eqr__steer_pair_build(eqr_steer_basis *B, int io, int ii) {
    pair_basis *P = &B->pairs[io * B->nir + ii];
    eqr_irrep ro = B->irreps[io], ri = B->irreps[ii];
    int dd = ro.dim * ri.dim, kk = B->kk, L = dd * kk, nm = B->max_m + 1;
    double *fix = malloc((size_t)nm * MAXV * MAXV * sizeof *fix);
    int *nfix = malloc((size_t)nm * sizeof *nfix);
    if (!fix || !nfix) goto oom_fix;
    for (int m = 0; m < nm; m++) nfix[m] = fixed_space(&B->G, ro, ri, m, fix + (size_t)m * MAXV * MAXV);
    int nraw = 0;
    for (int s = 0; s < B->nrings; s++)
        for (int m = 0; m <= B->ring_M[s]; m++) nraw += nfix[m];
    raw_fn *raw = malloc((size_t)(nraw ? nraw : 1) * sizeof *raw);
    double *smp = malloc((size_t)(nraw ? nraw : 1) * L * sizeof *smp);
    double *coef = malloc((size_t)(nraw ? nraw : 1) * (nraw ? nraw : 1) * sizeof *coef);
    double *w = malloc((size_t)L * sizeof *w), *c = malloc((size_t)(nraw ? nraw : 1) * sizeof *c);
    if (!raw || !smp || !coef || !w || !c) goto oom;
    int r = 0;
    for (int s = 0; s < B->nrings; s++)
        for (int m = 0; m <= B->ring_M[s]; m++)
            for (int t = 0; t < nfix[m]; t++, r++) {
                raw[r].ring = s;
                raw[r].m = m;
                memcpy(raw[r].v, fix + ((size_t)m * MAXV + t) * MAXV, sizeof raw[r].v);
            }
    /* Modified Gram-Schmidt (two passes) on the samples, tracking each kept
     * element as a combination of raw functions. smp's first n rows are
     * overwritten by the orthonormal elements as they are accepted. */
    int n = 0;
    for (r = 0; r < nraw; r++) {
        double val[4];
        for (int q = 0; q < kk; q++) {
            double x, y;
            tap_xy(B->k, q, &x, &y);
            raw_eval(&raw[r], dd, B->sigma, x, y, val);
            for (int e = 0; e < dd; e++) w[e * kk + q] = val[e];
        }
        if (!B->point_sampling) moment_match(B, &raw[r], dd, w);
        for (int j = 0; j < nraw; j++) c[j] = j == r;
        double n0 = 0;
        for (int i = 0; i < L; i++) n0 += w[i] * w[i];
        n0 = sqrt(n0);
        if (!(n0 > 1e-150)) continue;
        for (int pass = 0; pass < 2; pass++)
            for (int t = 0; t < n; t++) {
                const double *qt = smp + (size_t)t * L;
                double d = 0;
                for (int i = 0; i < L; i++) d += w[i] * qt[i];
                for (int i = 0; i < L; i++) w[i] -= d * qt[i];
                for (int j = 0; j < nraw; j++) c[j] -= d * coef[(size_t)t * nraw + j];
            }
        double nr = 0;
        for (int i = 0; i < L; i++) nr += w[i] * w[i];
        nr = sqrt(nr);
        if (nr < DROP_TOL * n0) continue;
        for (int i = 0; i < L; i++) smp[(size_t)n * L + i] = w[i] / nr;
        for (int j = 0; j < nraw; j++) coef[(size_t)n * nraw + j] = c[j] / nr;
        n++;
    }
    free(w);
    free(c);
    free(fix);
    free(nfix);
    P->dO = ro.dim;
    P->dI = ri.dim;
    P->nraw = nraw;
    P->n = n;
    P->raw = raw;
    P->coef = coef;
    P->samp = smp;
    P->ready = 1;
    return 1;
oom:
    free(raw);
    free(smp);
    free(coef);
    free(w);
    free(c);
oom_fix:
    free(fix);
    free(nfix);
    return 0;
}

/* Pair element u at (x, y): out[dO * dI]. */
void eqr__steer_pair_eval(const pair_basis *P, double sigma, int u, double x, double y, double *out) {
    int dd = P->dO * P->dI;
    double val[4];
    for (int e = 0; e < dd; e++) out[e] = 0;
    const double *cu = P->coef + (size_t)u * P->nraw;
    for (int r = 0; r < P->nraw; r++) {
        if (cu[r] == 0) continue;
        raw_eval(&P->raw[r], dd, sigma, x, y, val);
        for (int e = 0; e < dd; e++) out[e] += cu[r] * val[e];
    }
}
