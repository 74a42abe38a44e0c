/* Steerable kernel basis: the exact solution of
 *     K(g p) = rho_out(g) K(p) rho_in(g)^-1
 * per irrep pair and angular frequency, Gaussian rings, sampling and
 * orthonormalisation on the k x k grid, and assembly into blocks of field
 * pairs (regular fields through the change of basis Q). The mathematics is
 * written out in include/equirelax/steerable.h. */
#include "nn2d/steer_internal.h"
#include "equirelax/steerable.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>

#define TWO_PI 6.28318530717958647692528676655900577
#define PI_D 3.14159265358979323846264338327950288
/* A sampled function whose residual after projection falls below this
 * fraction of its norm is dependent on the grid and dropped. */
#define DROP_TOL 1e-3
/* Largest coefficient space of one (irrep pair, frequency): 2 x 2 x 2. */
#define MAXV 8

/* One raw basis function: ring `ring` times the frequency-m harmonics with
 * coefficients v[(a * dI + b) * hm + h], hm = 1 (m = 0) or 2 (cos, sin). */
typedef struct raw_fn {
    int ring, m;
    double v[MAXV];
} raw_fn;

/* Orthonormal basis of one (out irrep, in irrep) pair. */
typedef struct pair_basis {
    int ready;
    int dO, dI;
    int nraw, n;
    raw_fn *raw;
    double *coef; /* [n, nraw]: element u = sum_r coef[u, r] raw_r */
    double *samp; /* [n, dO, dI, k*k], orthonormal */
} pair_basis;

/* A field as a direct sum of irrep components, rho_field = Q (+) psi Q^T. */
typedef struct field_kind {
    int dim, ncomp;
    const int *comp_ir;  /* irrep index of each component */
    const int *comp_off; /* first coordinate of each component */
    const double *Q;     /* dim x dim, NULL = identity */
} field_kind;

/* Element of a block: components a (out field), b (in field), pair element u. */
typedef struct block_elem {
    int a, b, u;
} block_elem;

struct eqr_steer_basis {
    eqr_group G;
    int k, kk, nrings, max_m;
    double sigma;
    int *ring_M;
    int in_dim, out_dim;
    /* moment-matched sampling (see moment_setup) */
    int point_sampling, mom_max, nmon;
    double *mono;   /* [nmon, kk] monomials x^a y^b (coordinates / (k/2)) */
    double *chol;   /* [nmon, nmon] Cholesky factor of mono mono^T */
    double *radmom; /* [nrings, mom_max + 1] radial moments */
    double *angmom; /* [max_m + 1, 2, nmon] angular moments */
    int nir;
    eqr_irrep *irreps;
    pair_basis *pairs; /* [nir * nir], out irrep major; built on demand */
    double *Q;         /* regular change of basis (finite groups) */
    int *ints;         /* component tables of all field kinds */
    field_kind *kout, *kin; /* per part */
    int nblocks;
    eqr_steer_block *blocks;
    block_elem **elems; /* per block */
    float **bdata;      /* per block */
    int64_t size;
};

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
        action_matrix(G, io, ii, m, eqr_gelem_make(0, TWO_PI / G->n), A);
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
    action_matrix(G, io, ii, m, eqr_gelem_make(1, 0.0), A);
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

static int moment_setup(eqr_steer_basis *B) {
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
static int pair_build(eqr_steer_basis *B, int io, int ii) {
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
static void pair_eval(const pair_basis *P, double sigma, int u, double x, double y, double *out) {
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

/* -------------------------------------------------------------- types */

/* Validate a type; 0 with EQR_ERR_ARG recorded if it is not usable. */
static int type_ok(eqr_ctx *ctx, const char *fn, const char *which, const eqr_rep *t) {
    char gname[32], iname[48];
    if (!t) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: %s is NULL", fn, which);
        return 0;
    }
    const eqr_group *G = &t->group;
    if (!eqr_group_valid(G) || t->nparts < 1 || !t->parts) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: %s has an invalid group or no parts", fn, which);
        return 0;
    }
    eqr_group_name(G, gname, sizeof gname);
    int64_t dim = 0;
    for (int p = 0; p < t->nparts; p++) {
        const eqr_rep_part *pt = &t->parts[p];
        if (pt->mult < 1) {
            eqr__fail(ctx, EQR_ERR_ARG, "%s: %s part %d has multiplicity %d", fn, which, p, pt->mult);
            return 0;
        }
        if (pt->kind == EQR_PART_REGULAR) {
            if (!eqr_group_is_finite(G)) {
                eqr__fail(ctx, EQR_ERR_ARG,
                          "%s: %s part %d is regular but %s is not finite (use irreps)", fn, which,
                          p, gname);
                return 0;
            }
            dim += (int64_t)eqr_group_order(G) * pt->mult;
        } else if (pt->kind == EQR_PART_IRREP && eqr_irrep_valid(G, pt->irrep)) {
            dim += (int64_t)pt->irrep.dim * pt->mult;
        } else {
            eqr__fail(ctx, EQR_ERR_ARG, "%s: %s part %d (%s) is not an irrep or regular part of %s",
                      fn, which, p, eqr_irrep_name(pt->irrep, iname, sizeof iname), gname);
            return 0;
        }
    }
    if (dim != t->dim) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: %s has dim %d but its parts add up to %lld", fn, which,
                  t->dim, (long long)dim);
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------- create */

void eqr_steer_basis_destroy(eqr_steer_basis *b) {
    if (!b) return;
    if (b->pairs)
        for (int i = 0; i < b->nir * b->nir; i++) {
            free(b->pairs[i].raw);
            free(b->pairs[i].coef);
            free(b->pairs[i].samp);
        }
    if (b->elems)
        for (int i = 0; i < b->nblocks; i++) free(b->elems[i]);
    if (b->bdata)
        for (int i = 0; i < b->nblocks; i++) free(b->bdata[i]);
    free(b->elems);
    free(b->bdata);
    free(b->blocks);
    free(b->pairs);
    free(b->irreps);
    free(b->ring_M);
    free(b->Q);
    free(b->ints);
    free(b->mono);
    free(b->chol);
    free(b->radmom);
    free(b->angmom);
    free(b->kout);
    free(b->kin);
    free(b);
}

/* Field kinds of the parts of t; comp tables carved from *ints. */
static void fill_kinds(const eqr_steer_basis *B, const eqr_rep *t, field_kind *kinds, int **ints,
                       const int *reg_ir, const int *reg_off, int reg_ncomp) {
    for (int p = 0; p < t->nparts; p++) {
        const eqr_rep_part *pt = &t->parts[p];
        field_kind *f = &kinds[p];
        if (pt->kind == EQR_PART_REGULAR) {
            f->dim = eqr_group_order(&B->G);
            f->ncomp = reg_ncomp;
            f->comp_ir = reg_ir;
            f->comp_off = reg_off;
            f->Q = B->Q;
        } else {
            int *tab = *ints;
            *ints += 2;
            tab[0] = eqr_group_irrep_index(&B->G, pt->irrep);
            tab[1] = 0;
            f->dim = pt->irrep.dim;
            f->ncomp = 1;
            f->comp_ir = tab;
            f->comp_off = tab + 1;
            f->Q = NULL;
        }
    }
}

static int part_offset(const eqr_rep *t, int p) {
    int off = 0;
    for (int i = 0; i < p; i++)
        off += t->parts[i].mult *
               (t->parts[i].kind == EQR_PART_REGULAR ? eqr_group_order(&t->group) : t->parts[i].irrep.dim);
    return off;
}

/* Entry (row, col) of a field's change of basis. */
static inline double qval(const field_kind *f, int row, int col) {
    return f->Q ? f->Q[(size_t)row * f->dim + col] : (double)(row == col);
}

/* Build block bi = (po, pi): elements and sampled data. 0 on OOM. */
static int block_build(eqr_steer_basis *B, int bi, const field_kind *fo, const field_kind *fi) {
    int n = 0;
    for (int a = 0; a < fo->ncomp; a++)
        for (int b = 0; b < fi->ncomp; b++) {
            int pidx = fo->comp_ir[a] * B->nir + fi->comp_ir[b];
            if (!B->pairs[pidx].ready && !pair_build(B, fo->comp_ir[a], fi->comp_ir[b])) return 0;
            n += B->pairs[pidx].n;
        }
    int kk = B->kk, dO = fo->dim, dI = fi->dim;
    block_elem *el = malloc((size_t)(n ? n : 1) * sizeof *el);
    float *data = malloc((size_t)(n ? n : 1) * dO * dI * kk * sizeof *data);
    double *T = malloc((size_t)dO * 2 * kk * sizeof *T);
    if (!el || !data || !T) {
        free(el);
        free(data);
        free(T);
        return 0;
    }
    B->elems[bi] = el;
    B->bdata[bi] = data;
    int t = 0;
    for (int a = 0; a < fo->ncomp; a++)
        for (int b = 0; b < fi->ncomp; b++) {
            const pair_basis *P = &B->pairs[fo->comp_ir[a] * B->nir + fi->comp_ir[b]];
            int oa = fo->comp_off[a], ob = fi->comp_off[b], da = P->dO, db = P->dI;
            for (int u = 0; u < P->n; u++, t++) {
                el[t].a = a;
                el[t].b = b;
                el[t].u = u;
                const double *Bu = P->samp + (size_t)u * da * db * kk;
                float *E = data + (size_t)t * dO * dI * kk;
                /* E[o, c, q] = sum Qo[o, oa + al] Bu[al, be, q] Qi[c, ob + be],
                 * in two passes: T[o, be, q] = sum_al Qo[o, oa + al] Bu[al, be, q] */
                for (int o = 0; o < dO; o++)
                    for (int be = 0; be < db; be++) {
                        double *To = T + ((size_t)o * db + be) * kk;
                        for (int q = 0; q < kk; q++) To[q] = 0;
                        for (int al = 0; al < da; al++) {
                            double qo = qval(fo, o, oa + al);
                            if (qo == 0) continue;
                            const double *Bab = Bu + ((size_t)al * db + be) * kk;
                            for (int q = 0; q < kk; q++) To[q] += qo * Bab[q];
                        }
                    }
                for (int o = 0; o < dO; o++)
                    for (int c = 0; c < dI; c++) {
                        float *Eoc = E + ((size_t)o * dI + c) * kk;
                        double q0 = qval(fi, c, ob), q1 = db > 1 ? qval(fi, c, ob + 1) : 0;
                        const double *T0 = T + (size_t)o * db * kk, *T1 = T0 + kk;
                        if (db > 1)
                            for (int q = 0; q < kk; q++) Eoc[q] = (float)(q0 * T0[q] + q1 * T1[q]);
                        else
                            for (int q = 0; q < kk; q++) Eoc[q] = (float)(q0 * T0[q]);
                    }
            }
        }
    free(T);
    B->blocks[bi].n = n;
    B->blocks[bi].basis = data;
    return 1;
}

eqr_steer_basis *eqr__steer_basis_build(eqr_ctx *ctx, const char *fn, const eqr_rep *in_type,
                                        const eqr_rep *out_type, int k,
                                        const eqr_steer_basis_opts *opts) {
    if (!eqr__ok(ctx, 0)) return NULL;
    if (!type_ok(ctx, fn, "in_type", in_type) || !type_ok(ctx, fn, "out_type", out_type)) return NULL;
    if (!eqr__same_group(&in_type->group, &out_type->group)) {
        char g1[32], g2[32];
        eqr__fail(ctx, EQR_ERR_ARG, "%s: in_type is over %s but out_type over %s (different groups)",
                  fn, eqr_group_name(&in_type->group, g1, sizeof g1),
                  eqr_group_name(&out_type->group, g2, sizeof g2));
        return NULL;
    }
    if (k < 1 || k > 255) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: kernel size %d must be in [1, 255]", fn, k);
        return NULL;
    }
    double sigma = opts && opts->sigma != 0 ? opts->sigma : EQR_STEER_SIGMA;
    int cap = opts ? opts->max_freq : 0;
    if (!(sigma > 0) || !isfinite(sigma) || cap < 0) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: basis options need sigma > 0 (got %g) and max_freq >= 0 (got %d)",
                  fn, sigma, cap);
        return NULL;
    }
    eqr_steer_basis *B = calloc(1, sizeof *B);
    if (!B) goto oom;
    const eqr_group *G = &in_type->group;
    B->G = *G;
    B->k = k;
    B->kk = k * k;
    B->sigma = sigma;
    B->in_dim = in_type->dim;
    B->out_dim = out_type->dim;
    B->nrings = (k - 1) / 2 + 1;
    B->ring_M = malloc((size_t)B->nrings * sizeof *B->ring_M);
    if (!B->ring_M) goto oom;
    for (int s = 0; s < B->nrings; s++) {
        int M = 2 * s;
        if (cap > 0 && M > cap) M = cap;
        B->ring_M[s] = M;
        if (M > B->max_m) B->max_m = M;
    }
    B->point_sampling = opts ? opts->point_sampling != 0 : 0;
    B->mom_max = k - 1 < EQR_STEER_MOMENT_MAX ? k - 1 : EQR_STEER_MOMENT_MAX;
    if (B->max_m < B->mom_max) B->mom_max = B->max_m;
    if (!B->point_sampling) {
        int st = moment_setup(B);
        if (st == 0) goto oom;
        if (st < 0) { /* cannot happen for D <= k - 1; kept as a guard */
            eqr_steer_basis_destroy(B);
            eqr__fail(ctx, EQR_ERR_ARG, "%s: moment matrix of the %dx%d grid is singular", fn, k, k);
            return NULL;
        }
    }
    B->nir = eqr_group_num_irreps(G);
    B->irreps = malloc((size_t)B->nir * sizeof *B->irreps);
    B->pairs = calloc((size_t)B->nir * B->nir, sizeof *B->pairs);
    if (!B->irreps || !B->pairs) goto oom;
    for (int i = 0; i < B->nir; i++) B->irreps[i] = eqr_group_irrep(G, i);
    /* regular field decomposition (finite groups) */
    int order = eqr_group_order(G), reg_ncomp = 0;
    for (int i = 0; order && i < B->nir; i++) reg_ncomp += eqr_regular_multiplicity(G, B->irreps[i]);
    int nparts_all = in_type->nparts + out_type->nparts;
    B->ints = malloc((size_t)(2 * nparts_all + 2 * reg_ncomp + 1) * sizeof *B->ints);
    B->kout = malloc((size_t)out_type->nparts * sizeof *B->kout);
    B->kin = malloc((size_t)in_type->nparts * sizeof *B->kin);
    if (!B->ints || !B->kout || !B->kin) goto oom;
    int *reg_ir = B->ints, *reg_off = B->ints + reg_ncomp, *rest = B->ints + 2 * reg_ncomp;
    if (order) {
        B->Q = malloc((size_t)order * order * sizeof *B->Q);
        if (!B->Q) goto oom;
        eqr_regular_change_of_basis(G, B->Q);
        int c = 0, off = 0;
        for (int i = 0; i < B->nir; i++)
            for (int a = 0; a < eqr_regular_multiplicity(G, B->irreps[i]); a++, c++) {
                reg_ir[c] = i;
                reg_off[c] = off;
                off += B->irreps[i].dim;
            }
    }
    fill_kinds(B, out_type, B->kout, &rest, reg_ir, reg_off, reg_ncomp);
    fill_kinds(B, in_type, B->kin, &rest, reg_ir, reg_off, reg_ncomp);
    B->nblocks = out_type->nparts * in_type->nparts;
    B->blocks = calloc((size_t)B->nblocks, sizeof *B->blocks);
    B->elems = calloc((size_t)B->nblocks, sizeof *B->elems);
    B->bdata = calloc((size_t)B->nblocks, sizeof *B->bdata);
    if (!B->blocks || !B->elems || !B->bdata) goto oom;
    int64_t woff = 0;
    for (int po = 0; po < out_type->nparts; po++)
        for (int pi = 0; pi < in_type->nparts; pi++) {
            int bi = po * in_type->nparts + pi;
            eqr_steer_block *bl = &B->blocks[bi];
            bl->out_part = po;
            bl->in_part = pi;
            bl->out_off = part_offset(out_type, po);
            bl->in_off = part_offset(in_type, pi);
            bl->out_mult = out_type->parts[po].mult;
            bl->in_mult = in_type->parts[pi].mult;
            bl->out_fdim = B->kout[po].dim;
            bl->in_fdim = B->kin[pi].dim;
            if (!block_build(B, bi, &B->kout[po], &B->kin[pi])) goto oom;
            bl->weight_off = woff;
            woff += (int64_t)bl->out_mult * bl->in_mult * bl->n;
        }
    B->size = woff;
    return B;
oom:
    eqr_steer_basis_destroy(B);
    eqr__fail(ctx, EQR_ERR_NOMEM, "%s: out of memory building the steerable basis", fn);
    return NULL;
}

eqr_steer_basis *eqr_steer_basis_create(eqr_ctx *ctx, const eqr_rep *in_type,
                                        const eqr_rep *out_type, int k,
                                        const eqr_steer_basis_opts *opts) {
    return eqr__steer_basis_build(ctx, "eqr_steer_basis_create", in_type, out_type, k, opts);
}

/* ----------------------------------------------------------- accessors */

int64_t eqr_steer_basis_size(const eqr_steer_basis *b) { return b ? b->size : 0; }
int eqr_steer_basis_kernel_size(const eqr_steer_basis *b) { return b ? b->k : 0; }
int eqr_steer_basis_out_dim(const eqr_steer_basis *b) { return b ? b->out_dim : 0; }
int eqr_steer_basis_in_dim(const eqr_steer_basis *b) { return b ? b->in_dim : 0; }
int eqr_steer_basis_num_rings(const eqr_steer_basis *b) { return b ? b->nrings : 0; }
int eqr_steer_basis_num_blocks(const eqr_steer_basis *b) { return b ? b->nblocks : 0; }

int eqr_steer_basis_ring(const eqr_steer_basis *b, int s, double *radius, int *max_freq) {
    if (!b || s < 0 || s >= b->nrings) return 0;
    if (radius) *radius = s;
    if (max_freq) *max_freq = b->ring_M[s];
    return 1;
}

const eqr_steer_block *eqr_steer_basis_block(const eqr_steer_basis *b, int i) {
    return b && i >= 0 && i < b->nblocks ? &b->blocks[i] : NULL;
}

/* Block, copy pair and element of weight t. */
static int locate(const eqr_steer_basis *b, int64_t t, int *bi, int *co, int *ci, int *e) {
    if (!b || t < 0 || t >= b->size) return 0;
    for (int i = 0; i < b->nblocks; i++) {
        const eqr_steer_block *bl = &b->blocks[i];
        int64_t len = (int64_t)bl->out_mult * bl->in_mult * bl->n;
        if (t < bl->weight_off || t >= bl->weight_off + len) continue;
        int64_t loc = t - bl->weight_off;
        *bi = i;
        *e = (int)(loc % bl->n);
        *ci = (int)((loc / bl->n) % bl->in_mult);
        *co = (int)(loc / ((int64_t)bl->n * bl->in_mult));
        return 1;
    }
    return 0;
}

int eqr_steer_basis_eval(const eqr_steer_basis *b, int64_t t, double x, double y, double *out) {
    int bi, co, ci, e;
    if (!out || !locate(b, t, &bi, &co, &ci, &e)) return 0;
    const eqr_steer_block *bl = &b->blocks[bi];
    const field_kind *fo = &b->kout[bl->out_part], *fi = &b->kin[bl->in_part];
    const block_elem *el = &b->elems[bi][e];
    const pair_basis *P = &b->pairs[fo->comp_ir[el->a] * b->nir + fi->comp_ir[el->b]];
    double Bu[4];
    pair_eval(P, b->sigma, el->u, x, y, Bu);
    memset(out, 0, (size_t)b->out_dim * b->in_dim * sizeof *out);
    int oa = fo->comp_off[el->a], ob = fi->comp_off[el->b];
    for (int o = 0; o < fo->dim; o++)
        for (int c = 0; c < fi->dim; c++) {
            double s = 0;
            for (int al = 0; al < P->dO; al++)
                for (int be = 0; be < P->dI; be++)
                    s += qval(fo, o, oa + al) * Bu[al * P->dI + be] * qval(fi, c, ob + be);
            int row = bl->out_off + co * fo->dim + o, col = bl->in_off + ci * fi->dim + c;
            out[(size_t)row * b->in_dim + col] = s;
        }
    return 1;
}

int eqr_steer_basis_sample(const eqr_steer_basis *b, int64_t t, float *out) {
    int bi, co, ci, e;
    if (!out || !locate(b, t, &bi, &co, &ci, &e)) return 0;
    const eqr_steer_block *bl = &b->blocks[bi];
    int kk = b->kk, dO = bl->out_fdim, dI = bl->in_fdim;
    memset(out, 0, (size_t)b->out_dim * b->in_dim * kk * sizeof *out);
    const float *E = bl->basis + (size_t)e * dO * dI * kk;
    for (int o = 0; o < dO; o++) {
        size_t row = (size_t)(bl->out_off + co * dO + o);
        memcpy(out + (row * b->in_dim + bl->in_off + (size_t)ci * dI) * kk, E + (size_t)o * dI * kk,
               (size_t)dI * kk * sizeof *out);
    }
    return 1;
}

/* ----------------------------------------------- expansion and adjoint */

/* Per block and output row (co, a): the row segment of the bank over the
 * block's input part is [in_mult, in_fdim * kk] = w[co] [in_mult, n] times
 * E[:, a] [n, in_fdim * kk] (row stride out_fdim * in_fdim * kk): one GEMM
 * writing straight into the bank. */
void eqr_steer_basis_expand(const eqr_steer_basis *b, const float *w, float *bank) {
    if (!b || !w || !bank) return;
    size_t rowlen = (size_t)b->in_dim * b->kk;
    for (int i = 0; i < b->nblocks; i++) {
        const eqr_steer_block *bl = &b->blocks[i];
        int seg = bl->in_fdim * b->kk, mi = bl->in_mult, n = bl->n;
        for (int co = 0; co < bl->out_mult; co++)
            for (int a = 0; a < bl->out_fdim; a++) {
                float *C = bank + (size_t)(bl->out_off + co * bl->out_fdim + a) * rowlen +
                           (size_t)bl->in_off * b->kk;
                if (n == 0) {
                    memset(C, 0, (size_t)mi * seg * sizeof *C);
                    continue;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mi, seg, n, 1.0f,
                            w + bl->weight_off + (int64_t)co * mi * n, n, bl->basis + (size_t)a * seg,
                            bl->out_fdim * seg, 0.0f, C, seg);
            }
    }
}

void eqr_steer_basis_project(const eqr_steer_basis *b, const float *bank, float *w) {
    if (!b || !w || !bank) return;
    size_t rowlen = (size_t)b->in_dim * b->kk;
    for (int i = 0; i < b->nblocks; i++) {
        const eqr_steer_block *bl = &b->blocks[i];
        int seg = bl->in_fdim * b->kk, mi = bl->in_mult, n = bl->n;
        if (n == 0) continue;
        for (int co = 0; co < bl->out_mult; co++) {
            float *Wc = w + bl->weight_off + (int64_t)co * mi * n;
            for (int a = 0; a < bl->out_fdim; a++) {
                const float *A = bank + (size_t)(bl->out_off + co * bl->out_fdim + a) * rowlen +
                                 (size_t)bl->in_off * b->kk;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mi, n, seg, 1.0f, A, seg,
                            bl->basis + (size_t)a * seg, bl->out_fdim * seg, a == 0 ? 0.0f : 1.0f, Wc,
                            n);
            }
        }
    }
}
