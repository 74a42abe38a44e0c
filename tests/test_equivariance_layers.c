/* Equivariant pooling, nonlinearities and batch norm on field types
 * (include/equirelax/equi_layers.h): equivariance for every element of C4
 * and D4 and the grid-exact elements of C8, SO(2) and O(2); forward against
 * double-precision references; gradients by finite differences; type errors. */
#include "testutil.h"

#include "equirelax/equi_layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846
/* Equivariance bound of the layers checked here (tu_equiv_bound): no conv;
 * the deepest is batch norm, whose statistics sum over N H W = 75 positions
 * times a field's <= 3 components, twice (mean, variance), then the
 * normalisation: depth < 512; pools and norms sum <= 8 entries. amp 8: the
 * centring x - mean (magnitudes over the spread, ~3 for the offset inputs)
 * times the few components a field norm mixes. */
#define EQ_TOL tu_equiv_bound(512, 8.0)
#define NGROUPS 6

static eqr_group group_at(int i) {
    switch (i) {
    case 0: return eqr_group_cyclic(4);
    case 1: return eqr_group_dihedral(4);
    case 2: return eqr_group_cyclic(8);
    case 3: return eqr_group_so2(3);
    case 4: return eqr_group_o2(2);
    default: return eqr_group_cyclic(16);
    }
}

/* ------------------------------------------------------------ types */

/* Field list of a type, walked here independently of the library. */
enum { K_TRIV = 0, K_REG = 1, K_IRR = 2 };
typedef struct flist {
    int n;
    int off[128], dim[128], kind[128];
} flist;

static void walk(const eqr_rep *t, flist *f) {
    int off = 0;
    f->n = 0;
    for (int k = 0; k < t->nparts; k++) {
        const eqr_rep_part *p = &t->parts[k];
        int reg = p->kind == EQR_PART_REGULAR;
        int d = reg ? eqr_group_order(&t->group) : p->irrep.dim;
        int kind = reg ? K_REG : (p->irrep.j == 0 && p->irrep.freq == 0 ? K_TRIV : K_IRR);
        for (int c = 0; c < p->mult; c++) {
            assert_true(f->n < 128);
            f->off[f->n] = off;
            f->dim[f->n] = d;
            f->kind[f->n++] = kind;
            off += d;
        }
    }
    assert_int_equal(off, t->dim);
}

static eqr_rep *make_type(eqr_ctx *ctx, const eqr_group *G, int np, const eqr_rep_part *parts) {
    eqr_rep *t = eqr_rep_create(ctx, G, np, parts);
    if (!t) fail_msg("eqr_rep_create: %s", eqr_error_message(ctx));
    return t;
}

/* trivial x2, the first non-trivial irrep, regular x2 (finite G), then
 * every other non-trivial irrep (2D ones twice). */
static eqr_rep *mixed_type(eqr_ctx *ctx, const eqr_group *G) {
    eqr_rep_part parts[16];
    int np = 0;
    parts[np++] = eqr_part_irrep(eqr_irrep_of(G, 0, 0), 2);
    for (int i = 1; i < eqr_group_num_irreps(G); i++) {
        eqr_irrep ir = eqr_group_irrep(G, i);
        parts[np++] = eqr_part_irrep(ir, ir.dim == 2 ? 2 : 1);
        if (i == 1 && eqr_group_is_finite(G)) parts[np++] = eqr_part_regular(2);
    }
    return make_type(ctx, G, np, parts);
}

/* Fields a pointwise nonlinearity / group pooling accepts: trivial x2 and
 * regular x2 (trivial x3 for continuous groups). */
static eqr_rep *regular_type(eqr_ctx *ctx, const eqr_group *G) {
    eqr_rep_part parts[2] = {eqr_part_irrep(eqr_irrep_of(G, 0, 0), 2), eqr_part_regular(2)};
    if (!eqr_group_is_finite(G)) {
        parts[0].mult = 3;
        return make_type(ctx, G, 1, parts);
    }
    return make_type(ctx, G, 2, parts);
}

/* Gated input: every non-trivial irrep once, regular x1 (finite G) and one
 * trivial field, then K trivial gates, merged into the last trivial part. */
static eqr_rep *gated_type(eqr_ctx *ctx, const eqr_group *G, int *K) {
    eqr_rep_part parts[16];
    int np = 0, k = 0;
    for (int i = 1; i < eqr_group_num_irreps(G); i++, k++)
        parts[np++] = eqr_part_irrep(eqr_group_irrep(G, i), 1);
    if (eqr_group_is_finite(G)) {
        parts[np++] = eqr_part_regular(1);
        k++;
    }
    k++; /* the gated trivial field */
    parts[np++] = eqr_part_irrep(eqr_irrep_of(G, 0, 0), 1 + k);
    *K = k;
    return make_type(ctx, G, np, parts);
}

/* ------------------------------------------------------------ inputs */

static eqr_tensor *rand_x(eqr_ctx *ctx, int C, int N, int H, int W, uint64_t seed) {
    int64_t s[4] = {N, C, H, W};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, s);
    assert_non_null(x);
    eqr_rng r;
    eqr_rng_seed(&r, seed);
    for (int64_t i = 0; i < x->numel; i++) x->data[i] = eqr_rng_normal(&r);
    return x;
}

/* Away from kinks: every value has |v| >= 0.3 (so every field norm >= 0.3)
 * and the channels of each regular field at a pixel are >= 0.2 apart (no
 * ties for max, no zeros for ReLU). */
static void kinkless(const eqr_rep *t, float *x, int N, int S, uint64_t seed) {
    eqr_rng r;
    eqr_rng_seed(&r, seed);
    flist f;
    walk(t, &f);
    for (int64_t i = 0; i < (int64_t)N * t->dim * S; i++) {
        float z = eqr_rng_normal(&r);
        x[i] = z >= 0 ? 0.3f + z : -0.3f + z;
    }
    int perm[64];
    for (int n = 0; n < N; n++)
        for (int k = 0; k < f.n; k++) {
            if (f.kind[k] != K_REG) continue;
            for (int p = 0; p < S; p++) {
                int d = f.dim[k];
                for (int c = 0; c < d; c++) perm[c] = c;
                for (int c = d - 1; c > 0; c--) {
                    int j = (int)eqr_rng_below(&r, (uint64_t)c + 1), t2 = perm[c];
                    perm[c] = perm[j];
                    perm[j] = t2;
                }
                for (int c = 0; c < d; c++)
                    x[((int64_t)n * t->dim + f.off[k] + c) * S + p] =
                        0.5f * (float)perm[c] - 0.25f * (float)d + 0.25f + 0.05f * eqr_rng_normal(&r);
            }
        }
}

/* ------------------------------------------------------ equivariance */

/* Grid-exact elements of G on a square grid: multiples of 90 degrees, with
 * and without flip, that belong to G. */
static int exact_elems(const eqr_group *G, eqr_gelem *e) {
    int n = 0;
    for (int f = 0; f < 2; f++)
        for (int q = 0; q < 4; q++) {
            eqr_gelem g = eqr_gelem_of(f, q * PI / 2);
            if (eqr_group_contains(G, g)) e[n++] = g;
        }
    return n;
}

/* Equivariance error <= EQ_TOL for every grid-exact element (and the max
 * over the whole group when all its elements are grid-exact); the output
 * must not be trivially zero. Returns the largest error. */
static double check_equiv(eqr_ctx *ctx, eqr_forward_fn f, void *m, const eqr_rep *in,
                          const eqr_rep *out, eqr_tensor *x, const char *what) {
    char gname[32];
    eqr_group_name(&in->group, gname, sizeof gname);
    eqr_gelem e[8];
    int ne = exact_elems(&in->group, e);
    assert_true(ne >= 4);
    double worst = 0;
    for (int i = 0; i < ne; i++) {
        double err = -1;
        if (eqr_equivariance_error(ctx, f, m, in, out, e[i], x, NULL, &err) != EQR_OK)
            fail_msg("%s on %s: %s", what, gname, eqr_error_message(ctx));
        if (!(err <= EQ_TOL))
            fail_msg("%s on %s: element (flip %d, angle %g): error %.3g", what, gname, e[i].flip,
                     e[i].angle, err);
        if (err > worst) worst = err;
    }
    if (eqr_group_is_finite(&in->group) && ne == eqr_group_order(&in->group)) {
        double err = -1;
        if (eqr_equivariance_error_max(ctx, f, m, in, out, x, NULL, 0, &err) != EQR_OK)
            fail_msg("%s on %s: %s", what, gname, eqr_error_message(ctx));
        if (!(err <= EQ_TOL)) fail_msg("%s on %s: max error %.3g", what, gname, err);
    }
    int prev = eqr_grad_set_enabled(ctx, 0);
    eqr_tensor *y = f(ctx, m, x);
    eqr_grad_set_enabled(ctx, prev);
    if (!y) fail_msg("%s on %s: forward failed: %s", what, gname, eqr_error_message(ctx));
    double nrm = 0;
    for (int64_t i = 0; i < y->numel; i++) nrm += (double)y->data[i] * y->data[i];
    if (!(nrm > 1e-2)) fail_msg("%s on %s: output is (nearly) zero", what, gname);
    return worst;
}

static eqr_tensor *fw_pool(eqr_ctx *c, void *m, eqr_tensor *x) { return eqr_field_pool_forward(c, m, x); }
static eqr_tensor *fw_pw(eqr_ctx *c, void *m, eqr_tensor *x) { return eqr_pointwise_forward(c, m, x); }
static eqr_tensor *fw_nrelu(eqr_ctx *c, void *m, eqr_tensor *x) { return eqr_norm_relu_forward(c, m, x); }
static eqr_tensor *fw_gated(eqr_ctx *c, void *m, eqr_tensor *x) { return eqr_gated_forward(c, m, x); }
static eqr_tensor *fw_bn(eqr_ctx *c, void *m, eqr_tensor *x) { return eqr_field_bn_forward(c, m, x); }
static eqr_tensor *fw_relu(eqr_ctx *c, void *m, eqr_tensor *x) {
    (void)m;
    return eqr_relu(c, x);
}
/* Per-channel batch norm with a scale per channel (m: gamma [C]). */
static eqr_tensor *fw_plain_bn(eqr_ctx *c, void *m, eqr_tensor *x) {
    return eqr_batchnorm(c, x, m, NULL, NULL, NULL, 0.1f, 1e-5f, 1);
}

/* ------------------------------------------------------- references */

/* mode: 0 group pool, 1 norm pool, 2 invariant map; mean: regular fields by
 * mean instead of max. */
/* mag (may be NULL) gets the scale a pooled value can cancel against: for a
 * mean, sum |x| / d; 0 for a max, a norm or a trivial copy (relative error
 * only). */
static void ref_pool(const eqr_rep *t, const float *x, int N, int S, int mode, int mean, double *y,
                     double *mag) {
    flist f;
    walk(t, &f);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < f.n; k++)
            for (int p = 0; p < S; p++) {
                const float *xp = x + ((int64_t)n * t->dim + f.off[k]) * S + p;
                int d = f.dim[k];
                double v, am = 0;
                if (mode == 1 || (mode == 2 && f.kind[k] == K_IRR)) {
                    v = 0;
                    for (int c = 0; c < d; c++) v += (double)xp[c * S] * xp[c * S];
                    v = sqrt(v);
                } else if (f.kind[k] == K_TRIV) {
                    v = xp[0];
                } else if (mean) {
                    v = 0;
                    for (int c = 0; c < d; c++) {
                        v += xp[c * S];
                        am += fabsf(xp[c * S]);
                    }
                    v /= d;
                    am /= d;
                } else {
                    v = xp[0];
                    for (int c = 1; c < d; c++) v = fmax(v, xp[c * S]);
                }
                y[((int64_t)n * f.n + k) * S + p] = v;
                if (mag) mag[((int64_t)n * f.n + k) * S + p] = am;
            }
}

static void ref_norm_relu(const eqr_rep *t, const float *x, const float *bias, int N, int S, double *y) {
    flist f;
    walk(t, &f);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < f.n; k++)
            for (int p = 0; p < S; p++) {
                int64_t at = ((int64_t)n * t->dim + f.off[k]) * S + p;
                double r = 0;
                for (int c = 0; c < f.dim[k]; c++) r += (double)x[at + c * S] * x[at + c * S];
                r = sqrt(r);
                double s = r > 0 ? fmax(r + bias[k], 0.0) / r : 0.0;
                for (int c = 0; c < f.dim[k]; c++) y[at + c * S] = s * x[at + c * S];
            }
}

/* Gated: fields 0..K-1 scaled by sigmoid of the trivial channels that follow
 * them (gate k at channel gate_off + k). */
static void ref_gated(const eqr_rep *t, const float *x, int N, int S, double *y, int *dout) {
    flist f;
    walk(t, &f);
    int K = f.n / 2, go = f.off[K];
    for (int k = K; k < f.n; k++) assert_int_equal(f.kind[k], K_TRIV);
    *dout = go;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            for (int p = 0; p < S; p++) {
                double gt = x[((int64_t)n * t->dim + go + k) * S + p];
                double s = 1.0 / (1.0 + exp(-gt));
                for (int c = 0; c < f.dim[k]; c++)
                    y[((int64_t)n * go + f.off[k] + c) * S + p] =
                        s * x[((int64_t)n * t->dim + f.off[k] + c) * S + p];
            }
}

/* Batch norm reference. w per field, b per centred field (trivial or
 * regular), rm / rv running stats; training updates rm_out / rv_out. */
/* Error-bound scales of ref_bn for tu_assert_close_bound with nsum = n
 * (the largest field's N d S values + BN_OPS), derived as for the plain
 * batch norm (test_ops_norm): mu within G mean|x|, the variance (one or two
 * passes) within G (E[x^2] + mu^2), 1 / sqrt relatively within
 * G ((E[x^2] + mu^2) / (2 (var + eps)) + 1), then the affine step. */
#define BN_OPS 10
typedef struct bn_mag {
    double *y;              /* per output */
    double rm[128], rv[128]; /* per running statistic */
    int64_t n;
} bn_mag;

static void ref_bn(const eqr_rep *t, const float *x, int N, int S, const float *w, const float *b,
                   const float *rm, const float *rv, int training, double eps, double mom,
                   double *y, double *rm_out, double *rv_out, bn_mag *bm) {
    if (bm) bm->n = BN_OPS;
    flist f;
    walk(t, &f);
    int bi = 0;
    for (int k = 0; k < f.n; k++) {
        int centred = f.kind[k] != K_IRR, d = f.dim[k];
        double M = (double)N * d * S, mu = 0, var, ma = 0, m2 = 0;
        for (int n = 0; n < N; n++)
            for (int c = 0; c < d; c++)
                for (int p = 0; p < S; p++) {
                    double v = x[((int64_t)n * t->dim + f.off[k] + c) * S + p];
                    ma += fabs(v) / M, m2 += v * v / M;
                }
        if (bm && training && (int64_t)M + BN_OPS > bm->n) bm->n = (int64_t)M + BN_OPS;
        if (training) {
            if (centred) {
                for (int n = 0; n < N; n++)
                    for (int c = 0; c < d; c++)
                        for (int p = 0; p < S; p++) mu += x[((int64_t)n * t->dim + f.off[k] + c) * S + p];
                mu /= M;
            }
            double ss = 0;
            for (int n = 0; n < N; n++)
                for (int c = 0; c < d; c++)
                    for (int p = 0; p < S; p++) {
                        double v = x[((int64_t)n * t->dim + f.off[k] + c) * S + p] - mu;
                        ss += v * v;
                    }
            var = ss / M;
            if (centred) {
                rm_out[bi] = (1 - mom) * rm[bi] + mom * mu;
                rv_out[k] = (1 - mom) * rv[k] + mom * ss / (M - 1);
                if (bm) {
                    bm->rm[bi] = (1 - mom) * fabs(rm[bi]) + mom * ma;
                    bm->rv[k] = (1 - mom) * fabs(rv[k]) + mom * (m2 + mu * mu) * M / (M - 1);
                }
            } else {
                rv_out[k] = (1 - mom) * rv[k] + mom * var;
                if (bm) bm->rv[k] = (1 - mom) * fabs(rv[k]) + mom * m2;
            }
        } else {
            mu = centred ? rm[bi] : 0.0;
            var = rv[k];
            ma = fabs(mu), m2 = 0; /* exact statistics: only x - mu rounds */
        }
        double a = (w ? w[k] : 1.0) / sqrt(var + eps), sh = centred && b ? b[bi] : 0.0;
        double irel = (m2 + mu * mu) / (2 * (var + eps)) + 1;
        for (int n = 0; n < N; n++)
            for (int c = 0; c < d; c++)
                for (int p = 0; p < S; p++) {
                    int64_t at = ((int64_t)n * t->dim + f.off[k] + c) * S + p;
                    y[at] = a * (x[at] - mu) + sh;
                    if (bm)
                        bm->y[at] = fabs(a) * (fabs(x[at]) + ma + fabs(x[at] - mu) * irel) + fabs(y[at]) + fabs(sh);
                }
        if (centred) bi++;
    }
}

static double *dalloc(int64_t n) {
    double *p = malloc((size_t)n * sizeof *p);
    assert_non_null(p);
    return p;
}

/* ========================================================= pooling */

static void test_pools_equivariant(void **state) {
    (void)state;
    for (int gi = 0; gi < NGROUPS; gi++) {
        eqr_group G = group_at(gi);
        eqr_ctx *ctx = tu_ctx(100 + gi);
        eqr_rep *T = mixed_type(ctx, &G), *R = regular_type(ctx, &G);
        flist ft;
        walk(T, &ft);
        eqr_tensor *x = rand_x(ctx, T->dim, 2, 5, 5, 1 + gi), *xr = rand_x(ctx, R->dim, 2, 5, 5, 2 + gi);
        eqr_field_pool *np = eqr_norm_pool_create(ctx, T);
        eqr_field_pool *imx = eqr_invariant_map_create(ctx, T, EQR_GPOOL_MAX);
        eqr_field_pool *imn = eqr_invariant_map_create(ctx, T, EQR_GPOOL_MEAN);
        eqr_field_pool *gmx = eqr_group_pool_create(ctx, R, EQR_GPOOL_MAX);
        eqr_field_pool *gmn = eqr_group_pool_create(ctx, R, EQR_GPOOL_MEAN);
        assert_non_null(np);
        assert_non_null(imx);
        assert_non_null(imn);
        assert_non_null(gmx);
        assert_non_null(gmn);
        /* output types: one trivial field per input field */
        const eqr_rep *o = eqr_field_pool_out_type(np);
        assert_int_equal(o->dim, ft.n);
        assert_int_equal(o->nparts, 1);
        assert_int_equal(o->parts[0].irrep.freq, 0);
        assert_int_equal(o->parts[0].irrep.j, 0);
        assert_int_equal(eqr_field_pool_out_type(imx)->dim, ft.n);
        check_equiv(ctx, fw_pool, np, T, eqr_field_pool_out_type(np), x, "norm pool");
        check_equiv(ctx, fw_pool, imx, T, eqr_field_pool_out_type(imx), x, "invariant map (max)");
        check_equiv(ctx, fw_pool, imn, T, eqr_field_pool_out_type(imn), x, "invariant map (mean)");
        check_equiv(ctx, fw_pool, gmx, R, eqr_field_pool_out_type(gmx), xr, "group pool (max)");
        check_equiv(ctx, fw_pool, gmn, R, eqr_field_pool_out_type(gmn), xr, "group pool (mean)");
        /* invariant outputs: after a global average the logits are invariant */
        eqr_field_pool_destroy(np);
        eqr_field_pool_destroy(imx);
        eqr_field_pool_destroy(imn);
        eqr_field_pool_destroy(gmx);
        eqr_field_pool_destroy(gmn);
        eqr_rep_destroy(T);
        eqr_rep_destroy(R);
        eqr_ctx_destroy(ctx);
    }
    eqr_field_pool_destroy(NULL);
}

static void test_pools_forward_reference(void **state) {
    (void)state;
    for (int gi = 0; gi < NGROUPS; gi++) {
        eqr_group G = group_at(gi);
        eqr_ctx *ctx = tu_ctx(200 + gi);
        eqr_rep *T = mixed_type(ctx, &G), *R = regular_type(ctx, &G);
        const int N = 2, H = 3, W = 4, S = H * W;
        struct {
            const eqr_rep *t;
            int mode, mean;
        } cases[5] = {{T, 1, 0}, {T, 2, 0}, {T, 2, 1}, {R, 0, 0}, {R, 0, 1}};
        for (int c = 0; c < 5; c++) {
            const eqr_rep *t = cases[c].t;
            eqr_gpool_mode md = cases[c].mean ? EQR_GPOOL_MEAN : EQR_GPOOL_MAX;
            eqr_field_pool *l = cases[c].mode == 0   ? eqr_group_pool_create(ctx, t, md)
                                : cases[c].mode == 1 ? eqr_norm_pool_create(ctx, t)
                                                     : eqr_invariant_map_create(ctx, t, md);
            assert_non_null(l);
            eqr_tensor *x = rand_x(ctx, t->dim, N, H, W, 10 + c);
            eqr_tensor *y = eqr_field_pool_forward(ctx, l, x);
            assert_non_null(y);
            int O = eqr_field_pool_out_type(l)->dim;
            assert_int_equal(y->ndim, 4);
            assert_int_equal(y->shape[0], N);
            assert_int_equal(y->shape[1], O);
            assert_int_equal(y->shape[2], H);
            assert_int_equal(y->shape[3], W);
            double *ref = dalloc((int64_t)N * O * S), *mag = dalloc((int64_t)N * O * S);
            ref_pool(t, x->data, N, S, cases[c].mode, cases[c].mean, ref, mag);
            /* fields of d <= |G| = 8 values: a mean is a d-term sum and a
             * division (gamma_8 of sum |x| / d, + u); a norm a d-term sum of
             * squares (relative gamma_8), its sqrt (half that, + u); a max
             * or a copy is exact: c = 10 */
            tu_assert_close_rel("pool", y->data, ref, mag, (int64_t)N * O * S, 10);
            /* [N, C] inputs (no spatial axes) work too */
            int64_t s2[2] = {N * S, t->dim};
            eqr_tensor *xv = eqr_tensor_zeros(ctx, 2, s2);
            for (int n = 0; n < N * S; n++)
                for (int k = 0; k < t->dim; k++) xv->data[n * t->dim + k] = x->data[k * S + n % S];
            eqr_tensor *yv = eqr_field_pool_forward(ctx, l, xv);
            assert_non_null(yv);
            assert_int_equal(yv->ndim, 2);
            double *refv = dalloc((int64_t)N * S * O);
            ref_pool(t, xv->data, N * S, 1, cases[c].mode, cases[c].mean, refv, mag);
            tu_assert_close_rel("pool [N,C]", yv->data, refv, mag, (int64_t)N * S * O, 10); /* as above */
            free(ref);
            free(mag);
            free(refv);
            eqr_field_pool_destroy(l);
        }
        eqr_rep_destroy(T);
        eqr_rep_destroy(R);
        eqr_ctx_destroy(ctx);
    }
}

static eqr_tensor *gc_pool(eqr_ctx *ctx, eqr_tensor **in, void *u) {
    return eqr_field_pool_forward(ctx, u, in[0]);
}

static void test_pools_gradcheck(void **state) {
    (void)state;
    int gis[2] = {1, 4}; /* D4 (regular fields) and O(2) */
    for (int q = 0; q < 2; q++) {
        eqr_group G = group_at(gis[q]);
        eqr_ctx *ctx = tu_ctx(300 + q);
        eqr_rep *T = mixed_type(ctx, &G), *R = regular_type(ctx, &G);
        const int N = 2, H = 2, W = 3;
        eqr_field_pool *ls[5] = {eqr_norm_pool_create(ctx, T), eqr_invariant_map_create(ctx, T, EQR_GPOOL_MAX),
                                 eqr_invariant_map_create(ctx, T, EQR_GPOOL_MEAN),
                                 eqr_group_pool_create(ctx, R, EQR_GPOOL_MAX),
                                 eqr_group_pool_create(ctx, R, EQR_GPOOL_MEAN)};
        for (int c = 0; c < 5; c++) {
            assert_non_null(ls[c]);
            const eqr_rep *t = c < 3 ? T : R;
            char name[16];
            snprintf(name, sizeof name, "x%d", c);
            int64_t s[4] = {N, t->dim, H, W};
            eqr_tensor *x = tu_input(ctx, name, 4, s, 1.0f);
            kinkless(t, x->data, N, H * W, 40 + c);
            tu_gradcheck(ctx, gc_pool, &x, 1, ls[c], 1e-2, 16 /* pooling over <= |G| = 8 entries, a scale */);
            eqr_field_pool_destroy(ls[c]);
        }
        eqr_rep_destroy(T);
        eqr_rep_destroy(R);
        eqr_ctx_destroy(ctx);
    }
}

/* ===================================================== nonlinearities */

static void random_bias(eqr_tensor *b, uint64_t seed) {
    eqr_rng r;
    eqr_rng_seed(&r, seed);
    for (int64_t i = 0; i < b->numel; i++) b->data[i] = -1.0f + 1.5f * eqr_rng_uniform(&r);
}

static void test_nonlin_equivariant(void **state) {
    (void)state;
    for (int gi = 0; gi < NGROUPS; gi++) {
        eqr_group G = group_at(gi);
        eqr_ctx *ctx = tu_ctx(400 + gi);
        eqr_rep *T = mixed_type(ctx, &G), *R = regular_type(ctx, &G);
        int K;
        eqr_rep *Tg = gated_type(ctx, &G, &K);
        eqr_tensor *x = rand_x(ctx, T->dim, 2, 5, 5, 3 + gi), *xr = rand_x(ctx, R->dim, 2, 5, 5, 4 + gi);
        eqr_tensor *xg = rand_x(ctx, Tg->dim, 2, 5, 5, 5 + gi);
        eqr_pointwise_kind kinds[3] = {EQR_PW_RELU, EQR_PW_LEAKY_RELU, EQR_PW_TANH};
        for (int k = 0; k < 3; k++) {
            eqr_pointwise *pw = eqr_pointwise_create(ctx, R, kinds[k], 0.1f);
            assert_non_null(pw);
            assert_ptr_equal(eqr_pointwise_out_type(pw), R);
            check_equiv(ctx, fw_pw, pw, R, R, xr, "pointwise");
            eqr_pointwise_destroy(pw);
        }
        eqr_norm_relu *nr = eqr_norm_relu_create(ctx, "nr", T);
        assert_non_null(nr);
        assert_ptr_equal(eqr_norm_relu_out_type(nr), T);
        random_bias(eqr_norm_relu_bias(nr), 7 + gi);
        check_equiv(ctx, fw_nrelu, nr, T, T, x, "norm-ReLU");
        eqr_gated *ga = eqr_gated_create(ctx, Tg);
        assert_non_null(ga);
        check_equiv(ctx, fw_gated, ga, Tg, eqr_gated_out_type(ga), xg, "gated");
        /* negative control: a pointwise ReLU on irrep fields is not
         * equivariant, and the measurement sees it */
        double err = 0;
        eqr_gelem e[8];
        int ne = exact_elems(&G, e);
        for (int i = 0; i < ne; i++) {
            double ei;
            assert_int_equal(eqr_equivariance_error(ctx, fw_relu, NULL, T, T, e[i], x, NULL, &ei), EQR_OK);
            err = fmax(err, ei);
        }
        assert_true(err > 0.05);
        eqr_norm_relu_destroy(nr);
        eqr_gated_destroy(ga);
        eqr_rep_destroy(T);
        eqr_rep_destroy(R);
        eqr_rep_destroy(Tg);
        eqr_ctx_destroy(ctx);
    }
    eqr_pointwise_destroy(NULL);
    eqr_norm_relu_destroy(NULL);
    eqr_gated_destroy(NULL);
}

static void test_nonlin_forward_reference(void **state) {
    (void)state;
    for (int gi = 0; gi < NGROUPS; gi++) {
        eqr_group G = group_at(gi);
        eqr_ctx *ctx = tu_ctx(500 + gi);
        eqr_rep *T = mixed_type(ctx, &G), *R = regular_type(ctx, &G);
        int K;
        eqr_rep *Tg = gated_type(ctx, &G, &K);
        const int N = 2, H = 3, W = 3, S = H * W;
        /* pointwise ReLU / leaky ReLU */
        eqr_tensor *xr = rand_x(ctx, R->dim, N, H, W, 31);
        eqr_pointwise *pw = eqr_pointwise_create(ctx, R, EQR_PW_LEAKY_RELU, 0.2f);
        eqr_tensor *yr = eqr_pointwise_forward(ctx, pw, xr);
        assert_non_null(yr);
        double *ref = dalloc(xr->numel);
        for (int64_t i = 0; i < xr->numel; i++) ref[i] = xr->data[i] > 0 ? xr->data[i] : 0.2 * xr->data[i];
        /* x or 0.2f x: one rounding, and 0.2f is within u of 0.2 */
        tu_assert_close_rel("leaky relu", yr->data, ref, NULL, xr->numel, 2);
        free(ref);
        eqr_pointwise_destroy(pw);
        /* norm-ReLU, including an exactly zero field */
        eqr_norm_relu *nr = eqr_norm_relu_create(ctx, "nr", T);
        eqr_tensor *b = eqr_norm_relu_bias(nr);
        flist f;
        walk(T, &f);
        assert_int_equal(b->ndim, 1);
        assert_int_equal(b->shape[0], f.n);
        for (int64_t i = 0; i < b->numel; i++) assert_true(b->data[i] == 0.0f);
        assert_ptr_equal(eqr_param_find(ctx, "nr.bias"), b);
        random_bias(b, 9);
        eqr_tensor *x = rand_x(ctx, T->dim, N, H, W, 32);
        for (int c = 0; c < f.dim[f.n - 1]; c++) x->data[(f.off[f.n - 1] + c) * S + 4] = 0.0f;
        eqr_tensor *y = eqr_norm_relu_forward(ctx, nr, x);
        assert_non_null(y);
        ref = dalloc(x->numel);
        ref_norm_relu(T, x->data, b->data, N, S, ref);
        /* y = max(r + b, 0) / r x, r the norm of d <= 8 values: r within
         * e = gamma_8 / 2 + u < 5u relative; r + b, where it cancels, within
         * |r| e + u |r + b|, i.e. e |x| + u |y| once times x / r; the division
         * and the product 2u |y| more: 16 u (|y| + |x|) holds with margin */
        double *mx = dalloc(x->numel);
        for (int64_t i = 0; i < x->numel; i++) mx[i] = fabsf(x->data[i]);
        tu_assert_close_rel("norm-relu", y->data, ref, mx, x->numel, 16);
        free(mx);
        free(ref);
        /* gated */
        eqr_gated *ga = eqr_gated_create(ctx, Tg);
        const eqr_rep *go = eqr_gated_out_type(ga);
        flist fg;
        walk(Tg, &fg);
        assert_int_equal(fg.n, 2 * K);
        eqr_tensor *xg = rand_x(ctx, Tg->dim, N, H, W, 33);
        eqr_tensor *yg = eqr_gated_forward(ctx, ga, xg);
        assert_non_null(yg);
        int dout;
        ref = dalloc((int64_t)N * Tg->dim * S);
        ref_gated(Tg, xg->data, N, S, ref, &dout);
        assert_int_equal(go->dim, dout);
        assert_int_equal(yg->shape[1], dout);
        /* the output type is the gated fields: same parts, the trivial part
         * cut down to the one gated trivial field */
        flist fo;
        walk(go, &fo);
        assert_int_equal(fo.n, K);
        for (int k = 0; k < K; k++) {
            assert_int_equal(fo.off[k], fg.off[k]);
            assert_int_equal(fo.kind[k], fg.kind[k]);
        }
        /* sigmoid(g) x: exp (a few ulp), 1 + e^-g (no cancellation: both
         * positive), a division and a product, relative only: 8 u */
        tu_assert_close_rel("gated", yg->data, ref, NULL, (int64_t)N * dout * S, 8);
        free(ref);
        eqr_norm_relu_destroy(nr);
        eqr_gated_destroy(ga);
        eqr_rep_destroy(T);
        eqr_rep_destroy(R);
        eqr_rep_destroy(Tg);
        eqr_ctx_destroy(ctx);
    }
}

static eqr_tensor *gc_pw(eqr_ctx *ctx, eqr_tensor **in, void *u) { return eqr_pointwise_forward(ctx, u, in[0]); }
static eqr_tensor *gc_nrelu(eqr_ctx *ctx, eqr_tensor **in, void *u) { return eqr_norm_relu_forward(ctx, u, in[0]); }
static eqr_tensor *gc_gated(eqr_ctx *ctx, eqr_tensor **in, void *u) { return eqr_gated_forward(ctx, u, in[0]); }

/* Move each field's norm away from 0 and from -bias (the kinks). */
static void away_from_norm_kinks(const eqr_rep *t, float *x, const float *bias, int N, int S) {
    flist f;
    walk(t, &f);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < f.n; k++)
            for (int p = 0; p < S; p++) {
                float *xp = x + ((int64_t)n * t->dim + f.off[k]) * S + p;
                double r = 0;
                for (int c = 0; c < f.dim[k]; c++) r += (double)xp[c * S] * xp[c * S];
                r = sqrt(r);
                if (r >= 0.3 && fabs(r + bias[k]) >= 0.2) continue;
                double want = fmax(0.3, -bias[k] + 0.3), sc = r > 0 ? want / r : 0;
                if (r == 0) xp[0] = (float)want;
                for (int c = 0; c < f.dim[k]; c++) xp[c * S] = (float)(xp[c * S] * (r > 0 ? sc : 1));
            }
}

static void test_nonlin_gradcheck(void **state) {
    (void)state;
    int gis[2] = {0, 3}; /* C4 and SO(2) */
    for (int q = 0; q < 2; q++) {
        eqr_group G = group_at(gis[q]);
        eqr_ctx *ctx = tu_ctx(600 + q);
        eqr_rep *T = mixed_type(ctx, &G), *R = regular_type(ctx, &G);
        int K;
        eqr_rep *Tg = gated_type(ctx, &G, &K);
        const int N = 2, H = 2, W = 2, S = H * W;
        /* norm-ReLU: x and bias; half the biases make inactive fields */
        eqr_norm_relu *nr = eqr_norm_relu_create(ctx, "nr", T);
        eqr_tensor *b = eqr_norm_relu_bias(nr);
        for (int64_t i = 0; i < b->numel; i++) b->data[i] = i % 2 ? 0.2f : -0.5f - 0.1f * (float)i;
        int64_t s[4] = {N, T->dim, H, W};
        eqr_tensor *in[2] = {tu_input(ctx, "x", 4, s, 1.0f), b};
        away_from_norm_kinks(T, in[0]->data, b->data, N, S);
        tu_gradcheck(ctx, gc_nrelu, in, 2, nr, 3e-3, 16 /* field norm, sqrt, relu of it, divide, scale */);
        /* the inactive pixels exist, so the relu branch is exercised */
        eqr_tensor *y = eqr_norm_relu_forward(ctx, nr, in[0]);
        int zeros = 0;
        for (int64_t i = 0; i < y->numel; i++) zeros += y->data[i] == 0.0f;
        assert_true(zeros > 0 && zeros < y->numel / 2);
        eqr_step_reset(ctx);
        /* gated */
        eqr_gated *ga = eqr_gated_create(ctx, Tg);
        int64_t sg[4] = {N, Tg->dim, H, W};
        eqr_tensor *xg = tu_input(ctx, "xg", 4, sg, 1.0f);
        tu_gradcheck(ctx, gc_gated, &xg, 1, ga, 1e-2, 12 /* a sigmoid gate times the field */);
        /* pointwise */
        eqr_pointwise_kind kinds[2] = {EQR_PW_RELU, EQR_PW_SILU};
        for (int k = 0; k < 2; k++) {
            eqr_pointwise *pw = eqr_pointwise_create(ctx, R, kinds[k], 0.0f);
            char name[8];
            snprintf(name, sizeof name, "xr%d", k);
            int64_t sr[4] = {N, R->dim, H, W};
            eqr_tensor *xr = tu_input(ctx, name, 4, sr, 1.0f);
            kinkless(R, xr->data, N, S, 50 + k);
            tu_gradcheck(ctx, gc_pw, &xr, 1, pw, 1e-2, 10 /* one activation */);
            eqr_pointwise_destroy(pw);
        }
        eqr_norm_relu_destroy(nr);
        eqr_gated_destroy(ga);
        eqr_rep_destroy(T);
        eqr_rep_destroy(R);
        eqr_rep_destroy(Tg);
        eqr_ctx_destroy(ctx);
    }
}

/* ======================================================== batch norm */

static void randomise_bn(eqr_field_bn *bn, uint64_t seed) {
    eqr_rng r;
    eqr_rng_seed(&r, seed);
    eqr_tensor *w = eqr_field_bn_weight(bn), *b = eqr_field_bn_bias(bn);
    for (int64_t i = 0; w && i < w->numel; i++) w->data[i] = 0.5f + eqr_rng_uniform(&r);
    for (int64_t i = 0; b && i < b->numel; i++) b->data[i] = eqr_rng_normal(&r);
}

static void randomise_running(eqr_field_bn *bn, uint64_t seed) {
    eqr_rng r;
    eqr_rng_seed(&r, seed);
    eqr_tensor *m = eqr_field_bn_running_mean(bn), *v = eqr_field_bn_running_var(bn);
    for (int64_t i = 0; m && i < m->numel; i++) m->data[i] = eqr_rng_normal(&r);
    for (int64_t i = 0; i < v->numel; i++) v->data[i] = 0.3f + 2.0f * eqr_rng_uniform(&r);
}

/* Input with a distinct offset per channel, so centring matters. */
static eqr_tensor *offset_x(eqr_ctx *ctx, const eqr_rep *t, int N, int H, int W, uint64_t seed) {
    eqr_tensor *x = rand_x(ctx, t->dim, N, H, W, seed);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < t->dim; c++)
            for (int p = 0; p < H * W; p++) x->data[((int64_t)n * t->dim + c) * H * W + p] += 0.3f * (float)c - 1.0f;
    return x;
}

static void test_bn_equivariant(void **state) {
    (void)state;
    for (int gi = 0; gi < NGROUPS; gi++) {
        eqr_group G = group_at(gi);
        eqr_ctx *ctx = tu_ctx(700 + gi);
        eqr_rep *T = mixed_type(ctx, &G);
        eqr_field_bn *bn = eqr_field_bn_create(ctx, "bn", T, NULL);
        assert_non_null(bn);
        assert_ptr_equal(eqr_field_bn_out_type(bn), T);
        assert_int_equal(eqr_field_bn_training(bn), 1);
        randomise_bn(bn, 3);
        eqr_tensor *x = offset_x(ctx, T, 3, 5, 5, 8 + gi);
        check_equiv(ctx, fw_bn, bn, T, T, x, "batch norm (train)");
        eqr_field_bn_set_training(bn, 0);
        assert_int_equal(eqr_field_bn_training(bn), 0);
        randomise_running(bn, 4);
        check_equiv(ctx, fw_bn, bn, T, T, x, "batch norm (eval)");
        /* negative control: per-channel batch norm is not equivariant on
         * regular fields once its affine scale differs along the group axis */
        if (eqr_group_is_finite(&G)) {
            eqr_rep *R = regular_type(ctx, &G);
            eqr_tensor *xr = offset_x(ctx, R, 3, 5, 5, 9);
            int64_t sc[1] = {R->dim};
            eqr_tensor *gamma = eqr_tensor_zeros(ctx, 1, sc);
            for (int c = 0; c < R->dim; c++) gamma->data[c] = 0.5f + 0.1f * (float)c;
            double err = 0, e;
            eqr_gelem el[8];
            int ne = exact_elems(&G, el);
            for (int i = 0; i < ne; i++) {
                assert_int_equal(eqr_equivariance_error(ctx, fw_plain_bn, gamma, R, R, el[i], xr, NULL, &e), EQR_OK);
                err = fmax(err, e);
            }
            assert_true(err > 1e-2);
            eqr_rep_destroy(R);
        }
        eqr_field_bn_destroy(bn);
        eqr_rep_destroy(T);
        eqr_ctx_destroy(ctx);
    }
    eqr_field_bn_destroy(NULL);
}

static void test_bn_forward_reference(void **state) {
    (void)state;
    for (int gi = 0; gi < NGROUPS; gi++) {
        eqr_group G = group_at(gi);
        eqr_ctx *ctx = tu_ctx(800 + gi);
        eqr_rep *T = mixed_type(ctx, &G);
        flist f;
        walk(T, &f);
        int B = 0;
        for (int k = 0; k < f.n; k++) B += f.kind[k] != K_IRR;
        eqr_field_bn_opts o = {1e-3f, 0.25f, 0};
        eqr_field_bn *bn = eqr_field_bn_create(ctx, "bn", T, &o);
        assert_non_null(bn);
        assert_int_equal(eqr_field_bn_num_groups(bn), f.n);
        assert_int_equal(eqr_field_bn_num_centred(bn), B);
        eqr_tensor *w = eqr_field_bn_weight(bn), *b = eqr_field_bn_bias(bn);
        eqr_tensor *rm = eqr_field_bn_running_mean(bn), *rv = eqr_field_bn_running_var(bn);
        assert_ptr_equal(eqr_param_find(ctx, "bn.weight"), w);
        assert_ptr_equal(eqr_param_find(ctx, "bn.bias"), b);
        assert_ptr_equal(eqr_param_find(ctx, "bn.running_mean"), rm);
        assert_ptr_equal(eqr_param_find(ctx, "bn.running_var"), rv);
        assert_int_equal(w->shape[0], f.n);
        assert_int_equal(b->shape[0], B);
        assert_int_equal(rm->shape[0], B);
        assert_int_equal(rv->shape[0], f.n);
        assert_false(rm->flags & EQR_T_REQUIRES_GRAD);
        assert_false(rv->flags & EQR_T_REQUIRES_GRAD);
        for (int k = 0; k < f.n; k++) assert_true(w->data[k] == 1.0f && rv->data[k] == 1.0f);
        for (int k = 0; k < B; k++) assert_true(b->data[k] == 0.0f && rm->data[k] == 0.0f);
        randomise_bn(bn, 5);
        const int N = 3, H = 3, W = 2, S = H * W;
        eqr_tensor *x = offset_x(ctx, T, N, H, W, 21);
        float rm0[128], rv0[128];
        memcpy(rm0, rm->data, (size_t)B * sizeof(float));
        memcpy(rv0, rv->data, (size_t)f.n * sizeof(float));
        double *ref = dalloc(x->numel), rmr[128], rvr[128];
        bn_mag bm = {dalloc(x->numel), {0}, {0}, 0};
        ref_bn(T, x->data, N, S, w->data, b->data, rm0, rv0, 1, 1e-3, 0.25, ref, rmr, rvr, &bm);
        eqr_tensor *y = eqr_field_bn_forward(ctx, bn, x);
        assert_non_null(y);
        tu_assert_close_bound("bn train", y->data, ref, bm.y, x->numel, bm.n, 1);
        tu_assert_close_bound("running mean", rm->data, rmr, bm.rm, B, bm.n, 1);
        tu_assert_close_bound("running var", rv->data, rvr, bm.rv, f.n, bm.n, 1);
        /* evaluation with the running statistics */
        eqr_field_bn_set_training(bn, 0);
        randomise_running(bn, 6);
        memcpy(rm0, rm->data, (size_t)B * sizeof(float));
        memcpy(rv0, rv->data, (size_t)f.n * sizeof(float));
        ref_bn(T, x->data, N, S, w->data, b->data, rm0, rv0, 0, 1e-3, 0.25, ref, rmr, rvr, &bm);
        y = eqr_field_bn_forward(ctx, bn, x);
        assert_non_null(y);
        tu_assert_close_bound("bn eval", y->data, ref, bm.y, x->numel, bm.n, 1);
        assert_memory_equal(rm->data, rm0, (size_t)B * sizeof(float)); /* untouched in eval */
        assert_memory_equal(rv->data, rv0, (size_t)f.n * sizeof(float));
        /* no_affine: no weight or bias parameters, scale 1 and shift 0 */
        eqr_field_bn_opts na = {0};
        na.no_affine = 1;
        eqr_field_bn *bn2 = eqr_field_bn_create(ctx, "bn2", T, &na);
        assert_non_null(bn2);
        assert_null(eqr_field_bn_weight(bn2));
        assert_null(eqr_field_bn_bias(bn2));
        assert_null(eqr_param_find(ctx, "bn2.weight"));
        assert_non_null(eqr_param_find(ctx, "bn2.running_var"));
        memcpy(rm0, eqr_field_bn_running_mean(bn2)->data, (size_t)B * sizeof(float));
        memcpy(rv0, eqr_field_bn_running_var(bn2)->data, (size_t)f.n * sizeof(float));
        ref_bn(T, x->data, N, S, NULL, NULL, rm0, rv0, 1, 1e-5, 0.1, ref, rmr, rvr, &bm);
        y = eqr_field_bn_forward(ctx, bn2, x);
        assert_non_null(y);
        tu_assert_close_bound("bn no affine", y->data, ref, bm.y, x->numel, bm.n, 1);
        tu_assert_close_bound("running var (defaults)", eqr_field_bn_running_var(bn2)->data, rvr, bm.rv, f.n, bm.n, 1);
        free(ref);
        free(bm.y);
        eqr_field_bn_destroy(bn);
        eqr_field_bn_destroy(bn2);
        eqr_rep_destroy(T);
        eqr_ctx_destroy(ctx);
    }
}

/* A type of irrep fields only has no centred group: no bias, no running mean. */
static void test_bn_irreps_only(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(850);
    eqr_group G = eqr_group_so2(2);
    eqr_rep_part p[2] = {eqr_part_irrep(eqr_irrep_of(&G, 0, 1), 2), eqr_part_irrep(eqr_irrep_of(&G, 0, 2), 1)};
    eqr_rep *T = make_type(ctx, &G, 2, p);
    eqr_field_bn *bn = eqr_field_bn_create(ctx, "bn", T, NULL);
    assert_non_null(bn);
    assert_int_equal(eqr_field_bn_num_groups(bn), 3);
    assert_int_equal(eqr_field_bn_num_centred(bn), 0);
    assert_null(eqr_field_bn_bias(bn));
    assert_null(eqr_field_bn_running_mean(bn));
    /* one value per field is enough without centring */
    eqr_tensor *x = rand_x(ctx, T->dim, 1, 1, 1, 3);
    eqr_tensor *y = eqr_field_bn_forward(ctx, bn, x);
    assert_non_null(y);
    double ref[6], rm[1], rv[3], ym[6];
    float rv0[3] = {1, 1, 1};
    bn_mag bm = {ym, {0}, {0}, 0};
    ref_bn(T, x->data, 1, 1, eqr_field_bn_weight(bn)->data, NULL, NULL, rv0, 1, 1e-5, 0.1, ref, rm, rv, &bm);
    assert_int_equal(T->dim, 6);
    tu_assert_close_bound("bn irreps", y->data, ref, ym, T->dim, bm.n, 1);
    eqr_field_bn_destroy(bn);
    eqr_rep_destroy(T);
    eqr_ctx_destroy(ctx);
}

static eqr_tensor *gc_bn(eqr_ctx *ctx, eqr_tensor **in, void *u) { return eqr_field_bn_forward(ctx, u, in[0]); }

static void test_bn_gradcheck(void **state) {
    (void)state;
    int gis[2] = {1, 4}; /* D4 and O(2) */
    for (int q = 0; q < 2; q++) {
        eqr_group G = group_at(gis[q]);
        eqr_ctx *ctx = tu_ctx(900 + q);
        eqr_rep *T = mixed_type(ctx, &G);
        eqr_field_bn *bn = eqr_field_bn_create(ctx, "bn", T, NULL);
        randomise_bn(bn, 7);
        const int N = 2, H = 2, W = 2;
        int64_t s[4] = {N, T->dim, H, W};
        eqr_tensor *in[3] = {tu_input(ctx, "x", 4, s, 1.0f), eqr_field_bn_weight(bn), eqr_field_bn_bias(bn)};
        for (int64_t i = 0; i < in[0]->numel; i++) in[0]->data[i] += 0.5f;
        tu_gradcheck(ctx, gc_bn, in, 3, bn, 1e-2, 2 * N * H * W * T->dim + 10 /* mean and variance sums, sqrt, divide, affine */);
        eqr_field_bn_set_training(bn, 0);
        randomise_running(bn, 8);
        tu_gradcheck(ctx, gc_bn, in, 3, bn, 1e-2, 2 * N * H * W * T->dim + 10);
        eqr_field_bn_destroy(bn);
        eqr_rep_destroy(T);
        eqr_ctx_destroy(ctx);
    }
}

/* ============================================================ errors */

static void test_type_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1000);
    eqr_group C4 = eqr_group_cyclic(4);
    eqr_rep *T = mixed_type(ctx, &C4), *R = regular_type(ctx, &C4);
    eqr_irrep triv = eqr_irrep_of(&C4, 0, 0), vec = eqr_irrep_of(&C4, 0, 1), sgn = eqr_irrep_of(&C4, 0, 2);
    assert_int_equal(vec.dim, 2);
    assert_int_equal(sgn.dim, 1);

    /* pointwise on irreps, including the 1D sign irrep */
    assert_null(eqr_pointwise_create(ctx, T, EQR_PW_RELU, 0));
    tu_assert_error(ctx, EQR_ERR_ARG, "only equivariant on trivial and regular");
    eqr_rep_part ps[2] = {eqr_part_irrep(triv, 1), eqr_part_irrep(sgn, 1)};
    eqr_rep *Ts = make_type(ctx, &C4, 2, ps);
    assert_null(eqr_pointwise_create(ctx, Ts, EQR_PW_TANH, 0));
    tu_assert_error(ctx, EQR_ERR_ARG, "part 1");
    assert_null(eqr_pointwise_create(ctx, R, (eqr_pointwise_kind)99, 0));
    tu_assert_error(ctx, EQR_ERR_ARG, "unknown nonlinearity");
    /* group pooling of irreps */
    assert_null(eqr_group_pool_create(ctx, T, EQR_GPOOL_MAX));
    tu_assert_error(ctx, EQR_ERR_ARG, "group pooling");
    assert_null(eqr_group_pool_create(ctx, R, (eqr_gpool_mode)7));
    tu_assert_error(ctx, EQR_ERR_ARG, "mode");
    assert_null(eqr_invariant_map_create(ctx, R, (eqr_gpool_mode)-1));
    tu_assert_error(ctx, EQR_ERR_ARG, "mode");
    /* gated layouts */
    eqr_rep_part p1 = eqr_part_irrep(triv, 3);
    eqr_rep *Todd = make_type(ctx, &C4, 1, &p1);
    assert_null(eqr_gated_create(ctx, Todd));
    tu_assert_error(ctx, EQR_ERR_ARG, "has 3 fields");
    eqr_rep_part p2[2] = {eqr_part_irrep(triv, 2), eqr_part_irrep(vec, 2)}; /* gates must come last */
    eqr_rep *Tgates_first = make_type(ctx, &C4, 2, p2);
    assert_null(eqr_gated_create(ctx, Tgates_first));
    tu_assert_error(ctx, EQR_ERR_ARG, "must be trivial");
    eqr_rep_part p3[2] = {eqr_part_irrep(vec, 1), eqr_part_regular(1)};
    eqr_rep *Treg_gate = make_type(ctx, &C4, 2, p3);
    assert_null(eqr_gated_create(ctx, Treg_gate));
    tu_assert_error(ctx, EQR_ERR_ARG, "regular");
    eqr_rep_part p4[3] = {eqr_part_irrep(vec, 1), eqr_part_irrep(triv, 1), eqr_part_irrep(sgn, 1)};
    eqr_rep *Tsgn_gate = make_type(ctx, &C4, 3, p4); /* 3 fields: odd */
    assert_null(eqr_gated_create(ctx, Tsgn_gate));
    tu_assert_error(ctx, EQR_ERR_ARG, "2K");
    eqr_rep_part p5[3] = {eqr_part_irrep(vec, 2), eqr_part_irrep(triv, 1), eqr_part_irrep(sgn, 1)};
    eqr_rep *Tsgn_gate2 = make_type(ctx, &C4, 3, p5); /* the sign irrep cannot gate */
    assert_null(eqr_gated_create(ctx, Tsgn_gate2));
    tu_assert_error(ctx, EQR_ERR_ARG, "must be trivial");
    /* NULL types, names and layers */
    assert_null(eqr_norm_pool_create(ctx, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");
    assert_null(eqr_gated_create(ctx, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");
    assert_null(eqr_norm_relu_create(ctx, NULL, T));
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");
    assert_null(eqr_field_bn_create(ctx, "bn", NULL, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");
    assert_null(eqr_pointwise_create(ctx, NULL, EQR_PW_RELU, 0));
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");
    /* parameter names */
    eqr_norm_relu *nr = eqr_norm_relu_create(ctx, "nr", T);
    assert_non_null(nr);
    assert_null(eqr_norm_relu_create(ctx, "nr", T));
    tu_assert_error(ctx, EQR_ERR_ARG, "already exists");
    char longname[80];
    memset(longname, 'a', 70);
    longname[70] = '\0';
    assert_null(eqr_field_bn_create(ctx, longname, T, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "too long");
    assert_null(eqr_norm_relu_create(ctx, longname, T));
    tu_assert_error(ctx, EQR_ERR_ARG, "too long");
    assert_null(eqr_norm_relu_create(ctx, "", T)); /* like the convs: no empty names */
    tu_assert_error(ctx, EQR_ERR_ARG, "empty");
    assert_null(eqr_field_bn_create(ctx, "", T, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "empty");
    /* batch-norm options and sizes */
    eqr_field_bn_opts bad = {1e-5f, 1.5f, 0};
    assert_null(eqr_field_bn_create(ctx, "bnx", T, &bad));
    tu_assert_error(ctx, EQR_ERR_ARG, "momentum");
    bad.momentum = 0.1f;
    bad.eps = -1.0f;
    assert_null(eqr_field_bn_create(ctx, "bnx", T, &bad));
    tu_assert_error(ctx, EQR_ERR_ARG, "eps");
    assert_null(eqr_param_find(ctx, "bnx.weight")); /* nothing registered */
    int64_t one = 1; /* a clash on the last parameter registers none of them */
    assert_non_null(eqr_param_create(ctx, "bnd.running_var", 1, &one, 0));
    assert_null(eqr_field_bn_create(ctx, "bnd", T, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "already exists");
    assert_null(eqr_param_find(ctx, "bnd.weight"));
    eqr_field_bn *bn = eqr_field_bn_create(ctx, "bn", T, NULL);
    assert_non_null(bn);
    eqr_tensor *x1 = rand_x(ctx, T->dim, 1, 1, 1, 1);
    assert_null(eqr_field_bn_forward(ctx, bn, x1));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "more than one value");
    /* a regular field is one centred group of |G| values: a single [1, |G|]
     * sample is enough, and is normalised over its group axis */
    eqr_rep_part rp = eqr_part_regular(2);
    eqr_rep *Rr = make_type(ctx, &C4, 1, &rp);
    eqr_field_bn *bnr = eqr_field_bn_create(ctx, "bnr", Rr, NULL);
    assert_non_null(bnr);
    int64_t sr[2] = {1, Rr->dim};
    eqr_tensor *xr = eqr_tensor_zeros(ctx, 2, sr);
    for (int c = 0; c < Rr->dim; c++) xr->data[c] = (float)(c * c % 5) - 1.5f;
    eqr_tensor *yr = eqr_field_bn_forward(ctx, bnr, xr);
    assert_non_null(yr);
    for (int f = 0; f < 2; f++) {
        double m = 0, v = 0, mu = 0, ax = 0, ay = 0, amx = 0;
        for (int c = 0; c < 4; c++) {
            m += yr->data[4 * f + c] / 4.0;
            mu += xr->data[4 * f + c] / 4.0;
            ax += fabsf(xr->data[4 * f + c]) / 4.0;
            ay += fabsf(yr->data[4 * f + c]) / 4.0;
        }
        for (int c = 0; c < 4; c++) v += (yr->data[4 * f + c] - m) * (yr->data[4 * f + c] - m) / 4.0;
        for (int c = 0; c < 4; c++) amx += fabs(xr->data[4 * f + c] - mu) / 4.0;
        /* y = (x - mu) / sd: the float mu is within gamma_4 ax (+ u), which
         * 1 / sd = ay / amx carries to every y; each y is a few roundings
         * (the centring, 1 / sqrt, the product) of itself: 8 u ay */
        const double tm = 8 * TU_U * (ay + ay * ax / amx);
        if (!(fabs(m) <= tm)) fail_msg("regular field %d: mean %g > %g", f, m, tm);
        /* the variance is var / (var + eps), eps the default 1e-5, below 1
         * by ~eps / var: a property threshold, not a rounding bound */
        assert_true(fabs(v - 1.0) < 1e-3);
    }
    eqr_field_bn_destroy(bnr);
    eqr_rep_destroy(Rr);

    /* channel count mismatch in every forward */
    eqr_field_pool *np = eqr_norm_pool_create(ctx, T);
    eqr_pointwise *pw = eqr_pointwise_create(ctx, R, EQR_PW_RELU, 0);
    int K;
    eqr_rep *Tg = gated_type(ctx, &C4, &K);
    eqr_gated *ga = eqr_gated_create(ctx, Tg);
    assert_non_null(np);
    assert_non_null(pw);
    assert_non_null(ga);
    eqr_tensor *xT = rand_x(ctx, T->dim + 1, 1, 3, 3, 2), *xR = rand_x(ctx, R->dim - 1, 1, 3, 3, 3);
    eqr_tensor *xG = rand_x(ctx, Tg->dim + 2, 1, 3, 3, 4);
    char want[32];
    snprintf(want, sizeof want, "must be [N,%d,...]", T->dim);
    assert_null(eqr_field_pool_forward(ctx, np, xT));
    tu_assert_error(ctx, EQR_ERR_SHAPE, want);
    assert_null(eqr_norm_relu_forward(ctx, nr, xT));
    tu_assert_error(ctx, EQR_ERR_SHAPE, want);
    assert_null(eqr_field_bn_forward(ctx, bn, xT));
    tu_assert_error(ctx, EQR_ERR_SHAPE, want);
    assert_null(eqr_pointwise_forward(ctx, pw, xR));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "must be [N,");
    assert_null(eqr_gated_forward(ctx, ga, xG));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "must be [N,");
    int64_t s1[1] = {T->dim};
    eqr_tensor *xflat = eqr_tensor_zeros(ctx, 1, s1);
    assert_null(eqr_field_pool_forward(ctx, np, xflat));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "must be [N,");
    /* NULL layer: error; NULL input: nothing recorded */
    eqr_tensor *xok = rand_x(ctx, T->dim, 1, 3, 3, 5);
    assert_null(eqr_field_pool_forward(ctx, NULL, xok));
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL layer");
    assert_null(eqr_field_bn_forward(ctx, NULL, xok));
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL layer");
    assert_null(eqr_norm_relu_forward(ctx, nr, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_null(eqr_gated_forward(ctx, ga, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    assert_null(eqr_field_pool_out_type(NULL));

    eqr_field_pool_destroy(np);
    eqr_pointwise_destroy(pw);
    eqr_gated_destroy(ga);
    eqr_norm_relu_destroy(nr);
    eqr_field_bn_destroy(bn);
    eqr_rep *reps[9] = {T, R, Ts, Todd, Tgates_first, Treg_gate, Tsgn_gate, Tsgn_gate2, Tg};
    for (int i = 0; i < 9; i++) eqr_rep_destroy(reps[i]);
    eqr_ctx_destroy(ctx);
}

/* A small equivariant block chained end to end (BN -> gated / norm-ReLU ->
 * invariant map), with a backward through all of it. */
typedef struct block {
    eqr_field_bn *bn;
    eqr_norm_relu *nr;
    eqr_field_pool *inv;
} block;

static eqr_tensor *fw_block(eqr_ctx *c, void *m, eqr_tensor *x) {
    block *b = m;
    return eqr_field_pool_forward(c, b->inv, eqr_norm_relu_forward(c, b->nr, eqr_field_bn_forward(c, b->bn, x)));
}

static void test_chain(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1100);
    eqr_group D4 = eqr_group_dihedral(4);
    eqr_rep *T = mixed_type(ctx, &D4);
    block b = {eqr_field_bn_create(ctx, "bn", T, NULL), eqr_norm_relu_create(ctx, "nr", T),
               eqr_invariant_map_create(ctx, T, EQR_GPOOL_MAX)};
    assert_non_null(b.bn);
    assert_non_null(b.nr);
    assert_non_null(b.inv);
    random_bias(eqr_norm_relu_bias(b.nr), 3);
    eqr_tensor *x = offset_x(ctx, T, 2, 6, 6, 4);
    check_equiv(ctx, fw_block, &b, T, eqr_field_pool_out_type(b.inv), x, "BN -> norm-ReLU -> invariant map");
    eqr_tensor *y = fw_block(ctx, &b, x);
    assert_non_null(y);
    assert_int_equal(eqr_backward(ctx, eqr_sum_all(ctx, y)), EQR_OK);
    double gn = 0;
    eqr_tensor *w = eqr_field_bn_weight(b.bn);
    for (int64_t i = 0; i < w->numel; i++) gn += fabs(w->grad[i]);
    assert_true(gn > 0);
    eqr_field_bn_destroy(b.bn);
    eqr_norm_relu_destroy(b.nr);
    eqr_field_pool_destroy(b.inv);
    eqr_rep_destroy(T);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pools_equivariant),
        cmocka_unit_test(test_pools_forward_reference),
        cmocka_unit_test(test_pools_gradcheck),
        cmocka_unit_test(test_nonlin_equivariant),
        cmocka_unit_test(test_nonlin_forward_reference),
        cmocka_unit_test(test_nonlin_gradcheck),
        cmocka_unit_test(test_bn_equivariant),
        cmocka_unit_test(test_bn_forward_reference),
        cmocka_unit_test(test_bn_irreps_only),
        cmocka_unit_test(test_bn_gradcheck),
        cmocka_unit_test(test_type_errors),
        cmocka_unit_test(test_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
