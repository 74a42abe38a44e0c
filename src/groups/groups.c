/* Planar groups C_N, D_N, SO(2), O(2): elements, irreps, regular rep.
 * Conventions (element = R(angle) F^flip, F = diag(-1, 1), index orders,
 * irrep enumeration) are documented in include/equirelax/groups.h. */
#include "core/internal.h"
#include "equirelax/groups.h"

#include <math.h>
#include <stdio.h>

#define TWO_PI 6.28318530717958647692528676655900577
#define ANG_TOL 1e-9

/* ---------------------------------------------------------------- groups */

eqr_group eqr_group_cyclic(int n) {
    eqr_group G = {EQR_GROUP_CYCLIC, n, n > 0 ? n / 2 : 0};
    return G;
}

eqr_group eqr_group_dihedral(int n) {
    eqr_group G = {EQR_GROUP_DIHEDRAL, n, n > 0 ? n / 2 : 0};
    return G;
}

eqr_group eqr_group_so2(int max_freq) {
    eqr_group G = {EQR_GROUP_SO2, 0, max_freq};
    return G;
}

eqr_group eqr_group_o2(int max_freq) {
    eqr_group G = {EQR_GROUP_O2, 0, max_freq};
    return G;
}

int eqr_group_is_finite(const eqr_group *G) {
    return G && (G->kind == EQR_GROUP_CYCLIC || G->kind == EQR_GROUP_DIHEDRAL);
}

int eqr_group_has_flips(const eqr_group *G) {
    return G && (G->kind == EQR_GROUP_DIHEDRAL || G->kind == EQR_GROUP_O2);
}

int eqr_group_valid(const eqr_group *G) {
    if (!G) return 0;
    switch (G->kind) {
    case EQR_GROUP_CYCLIC:
    case EQR_GROUP_DIHEDRAL: return G->n >= 1 && G->n <= EQR_GROUP_MAX_N;
    case EQR_GROUP_SO2:
    case EQR_GROUP_O2: return G->max_freq >= 0;
    }
    return 0;
}

int eqr_group_order(const eqr_group *G) {
    if (!eqr_group_valid(G) || !eqr_group_is_finite(G)) return 0;
    return G->kind == EQR_GROUP_CYCLIC ? G->n : 2 * G->n;
}

char *eqr_group_name(const eqr_group *G, char *buf, size_t n) {
    if (!buf || n == 0) return buf;
    if (!eqr_group_valid(G)) {
        snprintf(buf, n, "<invalid group>");
        return buf;
    }
    switch (G->kind) {
    case EQR_GROUP_CYCLIC: snprintf(buf, n, "C%d", G->n); break;
    case EQR_GROUP_DIHEDRAL: snprintf(buf, n, "D%d", G->n); break;
    case EQR_GROUP_SO2: snprintf(buf, n, "SO(2)[L=%d]", G->max_freq); break;
    case EQR_GROUP_O2: snprintf(buf, n, "O(2)[L=%d]", G->max_freq); break;
    }
    return buf;
}

/* -------------------------------------------------------------- elements */

static double wrap_angle(double a) {
    a = fmod(a, TWO_PI);
    if (a < 0) a += TWO_PI;
    if (a >= TWO_PI) a -= TWO_PI; /* -tiny + 2 pi rounds to 2 pi */
    return a;
}

/* Rotation index k with angle = 2 pi k / n (mod 2 pi), or -1 if off-grid. */
static int rot_index(double angle, int n) {
    if (!isfinite(angle)) return -1;
    double a = wrap_angle(angle);
    double t = a * n / TWO_PI;
    double k = floor(t + 0.5);
    if (fabs(a - k * TWO_PI / n) > ANG_TOL) return -1;
    long kk = (long)k % n;
    return (int)kk;
}

eqr_gelem eqr_gelem_of(int flip, double angle) {
    eqr_gelem g = {flip, wrap_angle(angle)};
    return g;
}

eqr_gelem eqr_group_identity(void) {
    eqr_gelem g = {0, 0.0};
    return g;
}

int eqr_group_index(const eqr_group *G, eqr_gelem g) {
    if (!eqr_group_valid(G) || !eqr_group_is_finite(G)) return -1;
    if (g.flip != 0 && g.flip != 1) return -1;
    if (g.flip && G->kind == EQR_GROUP_CYCLIC) return -1;
    int k = rot_index(g.angle, G->n);
    if (k < 0) return -1;
    return g.flip * G->n + k;
}

int eqr_group_contains(const eqr_group *G, eqr_gelem g) {
    if (!eqr_group_valid(G)) return 0;
    if (eqr_group_is_finite(G)) return eqr_group_index(G, g) >= 0;
    if (g.flip != 0 && g.flip != 1) return 0;
    if (!isfinite(g.angle)) return 0;
    return G->kind == EQR_GROUP_O2 || g.flip == 0;
}

eqr_gelem eqr_group_element(const eqr_group *G, int i) {
    int order = eqr_group_order(G);
    if (i < 0 || i >= order) return eqr_group_identity();
    eqr_gelem g = {i / G->n, TWO_PI * (i % G->n) / G->n};
    return g;
}

int eqr_group_index_compose(const eqr_group *G, int a, int b) {
    int order = eqr_group_order(G);
    if (a < 0 || b < 0 || a >= order || b >= order) return -1;
    int n = G->n;
    int fa = a / n, ka = a % n, fb = b / n, kb = b % n;
    int k = fa ? (ka - kb + n) % n : (ka + kb) % n;
    return (fa ^ fb) * n + k;
}

int eqr_group_index_inverse(const eqr_group *G, int a) {
    int order = eqr_group_order(G);
    if (a < 0 || a >= order) return -1;
    int n = G->n;
    if (a >= n) return a; /* reflections are involutions */
    return (n - a) % n;
}

eqr_gelem eqr_group_compose(const eqr_group *G, eqr_gelem a, eqr_gelem b) {
    if (eqr_group_is_finite(G)) {
        int ia = eqr_group_index(G, a), ib = eqr_group_index(G, b);
        if (ia >= 0 && ib >= 0) return eqr_group_element(G, eqr_group_index_compose(G, ia, ib));
    }
    eqr_gelem r = {(a.flip != 0) ^ (b.flip != 0),
                   wrap_angle(a.angle + (a.flip ? -b.angle : b.angle))};
    return r;
}

eqr_gelem eqr_group_inverse(const eqr_group *G, eqr_gelem a) {
    if (eqr_group_is_finite(G)) {
        int ia = eqr_group_index(G, a);
        if (ia >= 0) return eqr_group_element(G, eqr_group_index_inverse(G, ia));
    }
    eqr_gelem r = {a.flip != 0, a.flip ? wrap_angle(a.angle) : wrap_angle(-a.angle)};
    return r;
}

int eqr_group_equal(const eqr_group *G, eqr_gelem a, eqr_gelem b) {
    (void)G;
    if ((a.flip != 0) != (b.flip != 0)) return 0;
    double d = wrap_angle(a.angle - b.angle);
    return d < ANG_TOL || TWO_PI - d < ANG_TOL;
}

/* Uniform double in [0, 1) with 53 random bits. */
static double rng_unit(eqr_rng *rng) {
    return (double)(eqr_rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
}

eqr_gelem eqr_group_sample(const eqr_group *G, eqr_rng *rng) {
    if (!rng || !eqr_group_valid(G)) return eqr_group_identity();
    if (eqr_group_is_finite(G))
        return eqr_group_element(G, (int)eqr_rng_below(rng, (uint64_t)eqr_group_order(G)));
    eqr_gelem g = {0, 0.0};
    if (G->kind == EQR_GROUP_O2) g.flip = (int)(eqr_rng_u64(rng) >> 63);
    g.angle = wrap_angle(TWO_PI * rng_unit(rng));
    return g;
}

void eqr_gelem_matrix(eqr_gelem g, double m[4]) {
    double c = cos(g.angle), s = sin(g.angle);
    if (g.flip) { /* R F with F = diag(-1, 1) negates the first column */
        m[0] = -c; m[1] = -s;
        m[2] = -s; m[3] = c;
    } else {
        m[0] = c; m[1] = -s;
        m[2] = s; m[3] = c;
    }
}

/* ----------------------------------------------------------------- irreps */

/* Highest irrep frequency of a valid G. */
static int max_freq(const eqr_group *G) {
    return eqr_group_is_finite(G) ? G->n / 2 : G->max_freq;
}

/* Dimension of irrep (j, freq) of G, 0 if there is none. */
static int irrep_dim(const eqr_group *G, int j, int freq) {
    if (!eqr_group_valid(G) || freq < 0 || freq > max_freq(G) || (j != 0 && j != 1)) return 0;
    int one_d = freq == 0 || (eqr_group_is_finite(G) && 2 * freq == G->n);
    if (!one_d) return j == 0 ? 2 : 0;
    return (j == 0 || eqr_group_has_flips(G)) ? 1 : 0;
}

int eqr_group_num_irreps(const eqr_group *G) {
    if (!eqr_group_valid(G)) return 0;
    int count = 0, L = max_freq(G);
    for (int f = 0; f <= L; f++)
        for (int j = 0; j < 2; j++) count += irrep_dim(G, j, f) > 0;
    return count;
}

eqr_irrep eqr_group_irrep(const eqr_group *G, int i) {
    eqr_irrep none = {0, 0, 0};
    if (!eqr_group_valid(G) || i < 0) return none;
    int L = max_freq(G);
    for (int f = 0; f <= L; f++)
        for (int j = 0; j < 2; j++) {
            int d = irrep_dim(G, j, f);
            if (d > 0 && i-- == 0) {
                eqr_irrep ir = {j, f, d};
                return ir;
            }
        }
    return none;
}

eqr_irrep eqr_irrep_of(const eqr_group *G, int j, int freq) {
    eqr_irrep ir = {j, freq, irrep_dim(G, j, freq)};
    return ir;
}

int eqr_irrep_valid(const eqr_group *G, eqr_irrep ir) {
    return ir.dim > 0 && irrep_dim(G, ir.j, ir.freq) == ir.dim;
}

int eqr_group_irrep_index(const eqr_group *G, eqr_irrep ir) {
    if (!eqr_irrep_valid(G, ir)) return -1;
    int idx = 0;
    for (int f = 0; f <= ir.freq; f++)
        for (int j = 0; j < 2; j++) {
            if (f == ir.freq && j == ir.j) return idx;
            idx += irrep_dim(G, j, f) > 0;
        }
    return -1;
}

int eqr_irrep_endo_dim(const eqr_group *G, eqr_irrep ir) {
    if (!eqr_irrep_valid(G, ir)) return 0;
    return (ir.dim == 2 && !eqr_group_has_flips(G)) ? 2 : 1;
}

int eqr_irrep_matrix(const eqr_group *G, eqr_irrep ir, eqr_gelem g, double *out) {
    if (!out || !eqr_irrep_valid(G, ir) || !eqr_group_contains(G, g)) return 0;
    int finite = eqr_group_is_finite(G);
    int k = finite ? rot_index(g.angle, G->n) : 0;
    if (ir.dim == 1) {
        double v = (ir.j && g.flip) ? -1.0 : 1.0;
        if (ir.freq > 0 && (k & 1)) v = -v; /* freq N/2: (-1)^k */
        out[0] = v;
        return 1;
    }
    /* Reduce freq * k modulo N first so that large frequencies stay exact. */
    double phi = finite ? TWO_PI * (double)(((long long)ir.freq * k) % G->n) / G->n
                        : ir.freq * g.angle;
    double c = cos(phi), s = sin(phi);
    if (g.flip) {
        out[0] = -c; out[1] = -s;
        out[2] = -s; out[3] = c;
    } else {
        out[0] = c; out[1] = -s;
        out[2] = s; out[3] = c;
    }
    return 2;
}

int eqr_irrep_matrix_f(const eqr_group *G, eqr_irrep ir, eqr_gelem g, float *out) {
    double m[4];
    int d = out ? eqr_irrep_matrix(G, ir, g, m) : 0;
    for (int i = 0; i < d * d; i++) out[i] = (float)m[i];
    return d;
}

double eqr_irrep_character(const eqr_group *G, eqr_irrep ir, eqr_gelem g) {
    double m[4];
    int d = eqr_irrep_matrix(G, ir, g, m);
    if (d == 0) return NAN;
    return d == 1 ? m[0] : m[0] + m[3];
}

char *eqr_irrep_name(eqr_irrep ir, char *buf, size_t n) {
    if (buf && n > 0) snprintf(buf, n, "irrep(j=%d,f=%d)", ir.j, ir.freq);
    return buf;
}

/* ------------------------------------------------ regular representation */

int eqr_regular_perm(const eqr_group *G, eqr_gelem g, int *perm) {
    int ig = eqr_group_index(G, g);
    if (!perm || ig < 0) return 0;
    int order = eqr_group_order(G), inv = eqr_group_index_inverse(G, ig);
    for (int h = 0; h < order; h++) perm[h] = eqr_group_index_compose(G, inv, h);
    return order;
}

int eqr_regular_matrix(const eqr_group *G, eqr_gelem g, double *out) {
    int ig = eqr_group_index(G, g);
    if (!out || ig < 0) return 0;
    int n = eqr_group_order(G);
    memset(out, 0, (size_t)n * (size_t)n * sizeof *out);
    for (int h = 0; h < n; h++) out[(size_t)eqr_group_index_compose(G, ig, h) * n + h] = 1.0;
    return n;
}

int eqr_regular_multiplicity(const eqr_group *G, eqr_irrep ir) {
    if (!eqr_group_is_finite(G) || !eqr_irrep_valid(G, ir)) return 0;
    return ir.dim / eqr_irrep_endo_dim(G, ir);
}

int eqr_regular_change_of_basis(const eqr_group *G, double *Q) {
    int n = eqr_group_order(G);
    if (!Q || n == 0) return 0;
    int nir = eqr_group_num_irreps(G), col = 0;
    for (int i = 0; i < nir; i++) {
        eqr_irrep ir = eqr_group_irrep(G, i);
        int d = ir.dim, mult = eqr_regular_multiplicity(G, ir);
        double scale = sqrt((double)d / n);
        for (int a = 0; a < mult; a++, col += d)
            for (int h = 0; h < n; h++) {
                double m[4];
                eqr_irrep_matrix(G, ir, eqr_group_element(G, h), m);
                for (int c = 0; c < d; c++) Q[(size_t)h * n + col + c] = scale * m[c * d + a];
            }
    }
    return n;
}
