/* Equivariance measurement API (src/equivariance.c): exact maps give ~0,
 * a non-equivariant map gives the error computed independently here in
 * double precision, invariance mode, [N,C] outputs, disk masking, error
 * paths, and the step arena / tape / grad mode left as found. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846
#define HH 6
#define WW 6

/* ---------------------------------------------------------------- models */

/* 3x3 convolution, padding 1 (same size), weight w [C, C, 3, 3]. */
typedef struct conv_model {
    eqr_tensor *w;
} conv_model;

/* Equivariance bound of the 3x3 depthwise convs measured here
 * (tu_equiv_bound): 9-term sums (+ the bias), amp 3 = sqrt(9); a measured
 * error err = ||a - b|| / ||b|| whose a, b are within that bound of their
 * exact values moves by <= (1 + err) times it. */
#define CONV_EQ tu_equiv_bound(10, 3.0)
/* Channel rotations of [N, C] outputs (2x2 blocks, float cos / sin): the
 * action's rounding only. */
#define ACT_EQ tu_equiv_bound(1, 1.0)

static eqr_tensor *fw_conv(eqr_ctx *ctx, void *m, eqr_tensor *x) {
    eqr_conv2d_geom g = EQR_CONV2D(1, 1, 1);
    return eqr_conv2d(ctx, x, ((conv_model *)m)->w, NULL, &g);
}

/* Conv then global average: [N, C]. */
static eqr_tensor *fw_conv_gap(eqr_ctx *ctx, void *m, eqr_tensor *x) {
    return eqr_global_avgpool(ctx, fw_conv(ctx, m, x));
}

/* [N, C, 1, 1] -> [N, C]. */
static eqr_tensor *fw_flatten(eqr_ctx *ctx, void *m, eqr_tensor *x) {
    (void)m;
    int64_t s[2] = {x->shape[0], x->shape[1]};
    return eqr_reshape(ctx, x, 2, s);
}

/* The top-left pixel of every plane: [N, C]. Not invariant. */
static eqr_tensor *fw_corner(eqr_ctx *ctx, void *m, eqr_tensor *x) {
    (void)m;
    int64_t s[2] = {x->shape[0], x->shape[1]};
    eqr_tensor *y = eqr_tensor_zeros(ctx, 2, s);
    if (!y) return NULL;
    int64_t hw = x->shape[2] * x->shape[3];
    for (int64_t i = 0; i < s[0] * s[1]; i++) y->data[i] = x->data[i * hw];
    return y;
}

/* x times a fixed mask that is 1 on a central disk and arbitrary outside. */
typedef struct mask_model {
    float mask[HH * WW];
} mask_model;

static eqr_tensor *fw_mask(eqr_ctx *ctx, void *m, eqr_tensor *x) {
    int64_t s[4] = {1, 1, HH, WW};
    eqr_tensor *mk = eqr_tensor_from(ctx, 4, s, ((mask_model *)m)->mask);
    return eqr_mul(ctx, x, mk);
}

static eqr_tensor *fw_null(eqr_ctx *ctx, void *m, eqr_tensor *x) {
    (void)ctx, (void)m, (void)x;
    return NULL;
}

static eqr_tensor *fw_fail(eqr_ctx *ctx, void *m, eqr_tensor *x) {
    (void)m;
    int64_t s[1] = {-1};
    (void)x;
    return eqr_tensor_zeros(ctx, 1, s); /* records EQR_ERR_SHAPE */
}

/* [N, C, H] (3 dims): not a valid output. */
static eqr_tensor *fw_3d(eqr_ctx *ctx, void *m, eqr_tensor *x) {
    (void)m;
    int64_t s[3] = {x->shape[0], x->shape[1], x->shape[2] * x->shape[3]};
    return eqr_reshape(ctx, x, 3, s);
}

/* Output shape depends on the input values: [N, C] if x[0] > 0 else [N, 2C]. */
static eqr_tensor *fw_shape_changes(eqr_ctx *ctx, void *m, eqr_tensor *x) {
    (void)m;
    int64_t s[2] = {x->shape[0], x->shape[1] * (x->data[0] > 0 ? 1 : 2)};
    return eqr_tensor_zeros(ctx, 2, s);
}

/* Allocates ~2 MiB of scratch (more than the 1 MiB test arena) per call. */
static eqr_tensor *fw_hungry(eqr_ctx *ctx, void *m, eqr_tensor *x) {
    int64_t s[1] = {1 << 19};
    if (!eqr_tensor_zeros(ctx, 1, s)) return NULL;
    return fw_conv(ctx, m, x);
}

/* ------------------------------------------------------------- helpers */

static void fill_normal(float *v, int64_t n, uint64_t seed) {
    eqr_rng r;
    eqr_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) v[i] = eqr_rng_normal(&r);
}

/* Exact grid action on one H x W plane (square grid, angle q * 90 degrees):
 * out(p) = in(g^-1 p), g = R(q 90) F^flip, so g^-1 p = F^flip R(-q 90) p. */
static void act_plane(const double *in, double *out, int flip, int q) {
    double cx = 0.5 * (WW - 1), cy = 0.5 * (HH - 1);
    double c = cos(-q * PI / 2), s = sin(-q * PI / 2);
    for (int i = 0; i < HH; i++)
        for (int j = 0; j < WW; j++) {
            double X = j - cx, Y = cy - i;
            double X2 = c * X - s * Y, Y2 = s * X + c * Y;
            if (flip) X2 = -X2;
            int jj = (int)lround(X2 + cx), ii = (int)lround(cy - Y2);
            out[i * WW + j] = in[ii * WW + jj];
        }
}

/* Single-plane cross-correlation with a 3x3 kernel, zero padding 1. */
static void conv_plane(const double *x, const double *k, double *y) {
    for (int i = 0; i < HH; i++)
        for (int j = 0; j < WW; j++) {
            double s = 0;
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++) {
                    int ii = i + a - 1, jj = j + b - 1;
                    if (ii >= 0 && ii < HH && jj >= 0 && jj < WW) s += k[a * 3 + b] * x[ii * WW + jj];
                }
            y[i * WW + j] = s;
        }
}

/* A C4 / D4 invariant 3x3 kernel: centre, edge and corner values. */
static void sym_kernel(float *k, float c, float e, float r) {
    float v[9] = {r, e, r, e, c, e, r, e, r};
    memcpy(k, v, sizeof v);
}

/* Depthwise weight [C, C, 3, 3] with kernel k on the diagonal. */
static eqr_tensor *depthwise(eqr_ctx *ctx, const char *name, int C, const float *k) {
    int64_t s[4] = {C, C, 3, 3};
    eqr_tensor *w = eqr_param_create(ctx, name, 4, s, 0);
    assert_non_null(w);
    for (int c = 0; c < C; c++) memcpy(w->data + ((int64_t)c * C + c) * 9, k, 9 * sizeof(float));
    return w;
}

/* Mixed type of G: trivial x2, regular (finite G), every other irrep. */
static eqr_rep *mixed_type(eqr_ctx *ctx, const eqr_group *G) {
    eqr_rep_part parts[16];
    int np = 0;
    parts[np++] = eqr_part_irrep(eqr_irrep_of(G, 0, 0), 2);
    if (eqr_group_is_finite(G)) parts[np++] = eqr_part_regular(1);
    for (int i = 1; i < eqr_group_num_irreps(G); i++) {
        eqr_irrep ir = eqr_group_irrep(G, i);
        parts[np++] = eqr_part_irrep(ir, ir.dim == 2 ? 2 : 1);
    }
    eqr_rep *t = eqr_rep_create(ctx, G, np, parts);
    assert_non_null(t);
    return t;
}

static eqr_rep *trivial_type(eqr_ctx *ctx, const eqr_group *G, int mult) {
    eqr_rep_part p = eqr_part_irrep(eqr_irrep_of(G, 0, 0), mult);
    eqr_rep *t = eqr_rep_create(ctx, G, 1, &p);
    assert_non_null(t);
    return t;
}

/* Independent error of the non-symmetric single-channel conv for an exact
 * element (flip, q): ||conv(g x) - g conv(x)|| / ||conv(x)|| over the pixels
 * within radius r of the centre (r < 0: all). */
static double conv_error_ref(const float *xf, int N, const double *k, int flip, int q, double r) {
    double x[HH * WW], gx[HH * WW], y[HH * WW], gy[HH * WW], ygx[HH * WW];
    double num = 0, den = 0, cy = 0.5 * (HH - 1), cx = 0.5 * (WW - 1);
    for (int n = 0; n < N; n++) {
        for (int p = 0; p < HH * WW; p++) x[p] = xf[n * HH * WW + p];
        conv_plane(x, k, y);
        act_plane(y, gy, flip, q);
        act_plane(x, gx, flip, q);
        conv_plane(gx, k, ygx);
        for (int i = 0; i < HH; i++)
            for (int j = 0; j < WW; j++) {
                if (r >= 0 && (i - cy) * (i - cy) + (j - cx) * (j - cx) > r * r) continue;
                int p = i * WW + j;
                num += (ygx[p] - gy[p]) * (ygx[p] - gy[p]);
                den += y[p] * y[p];
            }
    }
    return sqrt(num / den);
}

/* --------------------------------------------------------------- tests */

/* A depthwise conv with a symmetric kernel commutes with every element on
 * any type (the same filter per channel commutes with rho(g)). */
static void test_exact_map_zero(void **state) {
    (void)state;
    eqr_group groups[2] = {eqr_group_cyclic(4), eqr_group_dihedral(4)};
    for (int gi = 0; gi < 2; gi++) {
        eqr_ctx *ctx = tu_ctx(1);
        eqr_rep *T = mixed_type(ctx, &groups[gi]);
        float k[9];
        sym_kernel(k, 0.7f, -0.4f, 0.25f);
        conv_model m = {depthwise(ctx, "w", T->dim, k)};
        int64_t s[4] = {2, T->dim, HH, WW};
        eqr_tensor *x = eqr_tensor_zeros(ctx, 4, s);
        fill_normal(x->data, x->numel, 7);
        double err = -1;
        assert_int_equal(eqr_equivariance_error_max(ctx, fw_conv, &m, T, T, x, NULL, 0, &err), EQR_OK);
        assert_true(err >= 0 && err <= CONV_EQ);
        /* each element on its own, and a disk */
        eqr_equiv_opts o = {0.8};
        for (int i = 0; i < eqr_group_order(&groups[gi]); i++) {
            eqr_gelem g = eqr_group_element(&groups[gi], i);
            assert_int_equal(eqr_equivariance_error(ctx, fw_conv, &m, T, T, g, x, &o, &err), EQR_OK);
            assert_true(err <= CONV_EQ);
        }
        eqr_rep_destroy(T);
        eqr_ctx_destroy(ctx);
    }
}

/* A fixed non-symmetric conv: the measured error equals the double-precision
 * value computed here for each element of D4, and the max over the group. */
static void test_nonequivariant_matches_reference(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(2);
    eqr_group D4 = eqr_group_dihedral(4);
    eqr_rep *T = trivial_type(ctx, &D4, 1);
    const float kf[9] = {0.9f, -0.3f, 0.1f, 0.4f, 1.0f, -0.8f, 0.0f, 0.6f, -0.2f};
    double kd[9];
    for (int i = 0; i < 9; i++) kd[i] = kf[i];
    conv_model m = {depthwise(ctx, "w", 1, kf)};
    int64_t s[4] = {3, 1, HH, WW};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, s);
    fill_normal(x->data, x->numel, 11);
    double worst = 0;
    for (int i = 0; i < 8; i++) {
        eqr_gelem g = eqr_group_element(&D4, i);
        int flip = i / 4, q = i % 4;
        double err = -1, ref = conv_error_ref(x->data, 3, kd, flip, q, -1);
        assert_int_equal(eqr_equivariance_error(ctx, fw_conv, &m, T, T, g, x, NULL, &err), EQR_OK);
        if (!(fabs(err - ref) <= (1 + ref) * CONV_EQ))
            fail_msg("element %d: measured %.9g, reference %.9g", i, err, ref);
        if (i > 0) assert_true(ref > 0.1); /* clearly not equivariant */
        if (ref > worst) worst = ref;
    }
    double mx = -1;
    assert_int_equal(eqr_equivariance_error_max(ctx, fw_conv, &m, T, T, x, NULL, 0, &mx), EQR_OK);
    assert_true(fabs(mx - worst) <= (1 + worst) * CONV_EQ);
    /* the identity element gives exactly zero */
    double e0 = -1;
    assert_int_equal(eqr_equivariance_error(ctx, fw_conv, &m, T, T, eqr_group_identity(), x, NULL, &e0),
                     EQR_OK);
    assert_true(e0 == 0.0);
    eqr_rep_destroy(T);
    eqr_ctx_destroy(ctx);
}

/* Disk masking: a mask model wrong only outside the disk measures 0 with the
 * disk and > 0 without; the non-symmetric conv matches the reference on the
 * disk. */
static void test_disk_masking(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(3);
    eqr_group C4 = eqr_group_cyclic(4);
    eqr_rep *T = trivial_type(ctx, &C4, 1);
    const double disk = 0.8, r = disk * HH / 2.0, c = 0.5 * (HH - 1);
    mask_model mm;
    for (int i = 0; i < HH; i++)
        for (int j = 0; j < WW; j++) {
            int in = (i - c) * (i - c) + (j - c) * (j - c) <= r * r;
            mm.mask[i * WW + j] = in ? 1.0f : (float)(0.1 * (i * WW + j) - 1.0);
        }
    int64_t s[4] = {2, 1, HH, WW};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, s);
    fill_normal(x->data, x->numel, 5);
    eqr_equiv_opts o = {disk};
    eqr_gelem g90 = eqr_gelem_of(0, PI / 2);
    double e_disk = -1, e_all = -1;
    assert_int_equal(eqr_equivariance_error(ctx, fw_mask, &mm, T, T, g90, x, &o, &e_disk), EQR_OK);
    assert_int_equal(eqr_equivariance_error(ctx, fw_mask, &mm, T, T, g90, x, NULL, &e_all), EQR_OK);
    assert_true(e_disk == 0); /* x * 1 and a quarter-turn permutation: exact */
    assert_true(e_all > 0.1); /* a threshold: the mask breaks it off the disk */

    const float kf[9] = {0.2f, 0.5f, -0.7f, 0.0f, 1.0f, 0.3f, -0.4f, 0.1f, 0.8f};
    double kd[9];
    for (int i = 0; i < 9; i++) kd[i] = kf[i];
    conv_model m = {depthwise(ctx, "w", 1, kf)};
    for (int q = 1; q < 4; q++) {
        double err = -1, ref = conv_error_ref(x->data, 2, kd, 0, q, r);
        double full = conv_error_ref(x->data, 2, kd, 0, q, -1);
        eqr_gelem g = eqr_gelem_of(0, q * PI / 2);
        assert_int_equal(eqr_equivariance_error(ctx, fw_conv, &m, T, T, g, x, &o, &err), EQR_OK);
        if (!(fabs(err - ref) <= (1 + ref) * CONV_EQ))
            fail_msg("q=%d: disk error %.9g, reference %.9g", q, err, ref);
        assert_true(fabs(ref - full) > 1e-3); /* the disk made a difference */
    }
    eqr_rep_destroy(T);
    eqr_ctx_destroy(ctx);
}

/* Off the grid the denominator is ||f(x)||, not ||g.f(x)|| (which loses the
 * corners): checked against the library's grid action and a double conv. */
static void test_offgrid_denominator(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(4);
    eqr_group SO2 = eqr_group_so2(2);
    eqr_rep *T = trivial_type(ctx, &SO2, 1);
    const float kf[9] = {0.2f, 0.5f, -0.7f, 0.0f, 1.0f, 0.3f, -0.4f, 0.1f, 0.8f};
    double kd[9];
    for (int i = 0; i < 9; i++) kd[i] = kf[i];
    conv_model m = {depthwise(ctx, "w", 1, kf)};
    int64_t s[4] = {1, 1, HH, WW};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, s);
    fill_normal(x->data, x->numel, 9);
    eqr_gelem g = eqr_gelem_of(0, 0.5);
    double err = -1;
    assert_int_equal(eqr_equivariance_error(ctx, fw_conv, &m, T, T, g, x, NULL, &err), EQR_OK);
    /* reference: y = conv(x), ygx = conv(g.x), gy = g.y, all pixels */
    double xd[HH * WW], y[HH * WW], gxd[HH * WW], ygx[HH * WW];
    for (int p = 0; p < HH * WW; p++) xd[p] = x->data[p];
    conv_plane(xd, kd, y);
    eqr_tensor *gx = eqr_grid_act(ctx, g, x);
    assert_non_null(gx);
    for (int p = 0; p < HH * WW; p++) gxd[p] = gx->data[p];
    conv_plane(gxd, kd, ygx);
    eqr_tensor *yt = eqr_tensor_zeros(ctx, 4, s);
    for (int p = 0; p < HH * WW; p++) yt->data[p] = (float)y[p];
    eqr_tensor *gy = eqr_grid_act(ctx, g, yt);
    assert_non_null(gy);
    double num = 0, den = 0, den_gy = 0;
    for (int p = 0; p < HH * WW; p++) {
        num += (ygx[p] - gy->data[p]) * (ygx[p] - gy->data[p]);
        den += y[p] * y[p];
        den_gy += (double)gy->data[p] * gy->data[p];
    }
    double ref = sqrt(num / den);
    /* the library's float paths against these: f(g.x) within ea = gamma_9
     * conv(|g.x|, |k|) (9 products, any kernel); f(x) within ey = gamma_9
     * conv(|x|, |k|) of y, and float(y) within u |y|; the grid action is a
     * convex (bilinear) combination rounded in float (weights and 4-term sum,
     * gamma_8 of act(|y|)), so g.f(x) is within eb = act(ey + u|y|) +
     * 2 gamma_8 act(|y|). The norms (in double) move by at most ||ea + eb||
     * and ||ey||: err in [(N - E) / (D + Ey), (N + E) / (D - Ey)]. */
    {
        double ax[HH * WW], akd[9], agx[HH * WW], mk[HH * WW], mgx[HH * WW];
        for (int p = 0; p < HH * WW; p++) ax[p] = fabs(xd[p]), agx[p] = fabs(gxd[p]);
        for (int i = 0; i < 9; i++) akd[i] = fabs(kd[i]);
        conv_plane(ax, akd, mk);
        conv_plane(agx, akd, mgx);
        const double g9 = tu_gamma(9), g8 = tu_gamma(8);
        eqr_tensor *t1 = eqr_tensor_zeros(ctx, 4, s), *t2 = eqr_tensor_zeros(ctx, 4, s);
        for (int p = 0; p < HH * WW; p++) {
            t1->data[p] = (float)((g9 * mk[p] + TU_U * fabs(y[p])) * (1 + 1e-6)); /* rounded up */
            t2->data[p] = (float)(fabs(y[p]) * (1 + 1e-6));
        }
        eqr_tensor *a1 = eqr_grid_act(ctx, g, t1), *a2 = eqr_grid_act(ctx, g, t2);
        assert_true(a1 && a2);
        double E = 0, Ey = 0;
        for (int p = 0; p < HH * WW; p++) {
            const double e = g9 * mgx[p] + (a1->data[p] + 2 * g8 * a2->data[p]) * (1 + 1e-6);
            E += e * e;
            Ey += g9 * mk[p] * g9 * mk[p];
        }
        E = sqrt(E), Ey = sqrt(Ey);
        const double N = sqrt(num), D = sqrt(den), lo = (N - E) / (D + Ey), hi = (N + E) / (D - Ey);
        if (!(err >= lo && err <= hi))
            fail_msg("off-grid error %.9g outside [%.9g, %.9g] (reference %.9g)", err, lo, hi, ref);
    }
    assert_true(fabs(sqrt(num / den_gy) - ref) > 1e-2 * ref); /* the two norms differ here */
    eqr_rep_destroy(T);
    eqr_ctx_destroy(ctx);
}

/* Invariance mode (out_rep NULL) on [N, C] outputs. */
static void test_invariance_mode(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(5);
    eqr_group D4 = eqr_group_dihedral(4);
    eqr_rep *T = trivial_type(ctx, &D4, 2);
    float k[9];
    sym_kernel(k, 1.0f, 0.3f, -0.5f);
    conv_model m = {depthwise(ctx, "w", 2, k)};
    int64_t s[4] = {2, 2, HH, WW};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, s);
    fill_normal(x->data, x->numel, 13);
    double err = -1;
    assert_int_equal(eqr_equivariance_error_max(ctx, fw_conv_gap, &m, T, NULL, x, NULL, 0, &err), EQR_OK);
    assert_true(err <= CONV_EQ);
    /* the top-left pixel is not invariant: after a +90 rotation it is the
     * former top-right pixel x[0, W-1] */
    eqr_gelem g90 = eqr_gelem_of(0, PI / 2);
    assert_int_equal(eqr_equivariance_error(ctx, fw_corner, NULL, T, NULL, g90, x, NULL, &err), EQR_OK);
    double num = 0, den = 0;
    for (int pl = 0; pl < 4; pl++) {
        double a = x->data[pl * HH * WW + 0], b = x->data[pl * HH * WW + WW - 1];
        num += (b - a) * (b - a);
        den += a * a;
    }
    double ref = sqrt(num / den);
    /* the corner pixels are moved exactly, and the measure and this
     * reference both sum in double: agreement to double rounding */
    if (!(fabs(err - ref) <= 64 * DBL_EPSILON * ref)) fail_msg("corner: measured %.9g, reference %.9g", err, ref);
    assert_true(ref > 0.1);
    /* flip: the top-left pixel becomes the former top-right too */
    assert_int_equal(
        eqr_equivariance_error(ctx, fw_corner, NULL, T, NULL, eqr_gelem_of(1, 0), x, NULL, &err), EQR_OK);
    assert_true(fabs(err - ref) <= 64 * DBL_EPSILON * ref); /* as above */
    eqr_rep_destroy(T);
    eqr_ctx_destroy(ctx);
}

/* [N, C] outputs with a representation: rho(g) acts on the channels, for
 * any angle of SO(2) (a 1x1 input rotates exactly). Declaring the wrong
 * output rep gives the independently computed error. */
static void test_vector_outputs(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(6);
    eqr_group SO2 = eqr_group_so2(3);
    eqr_rep_part p1[2] = {eqr_part_irrep(eqr_irrep_of(&SO2, 0, 0), 1),
                          eqr_part_irrep(eqr_irrep_of(&SO2, 0, 1), 2)};
    eqr_rep_part p2[2] = {eqr_part_irrep(eqr_irrep_of(&SO2, 0, 0), 1),
                          eqr_part_irrep(eqr_irrep_of(&SO2, 0, 2), 2)};
    assert_int_equal(p1[1].irrep.dim, 2);
    assert_int_equal(p2[1].irrep.dim, 2);
    eqr_rep *T1 = eqr_rep_create(ctx, &SO2, 2, p1), *T2 = eqr_rep_create(ctx, &SO2, 2, p2);
    assert_non_null(T1);
    assert_non_null(T2);
    int64_t s[4] = {3, 5, 1, 1};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, s);
    fill_normal(x->data, x->numel, 17);
    double err = -1;
    assert_int_equal(eqr_equivariance_error_max(ctx, fw_flatten, NULL, T1, T1, x, NULL, 10, &err), EQR_OK);
    assert_true(err <= ACT_EQ);
    /* claiming frequency 2 for a frequency-1 output */
    const double a = 0.7;
    assert_int_equal(
        eqr_equivariance_error(ctx, fw_flatten, NULL, T1, T2, eqr_gelem_of(0, a), x, NULL, &err), EQR_OK);
    double num = 0, den = 0;
    for (int n = 0; n < 3; n++)
        for (int v = 0; v < 2; v++) { /* two frequency-1 vectors per sample */
            double u0 = x->data[n * 5 + 1 + 2 * v], u1 = x->data[n * 5 + 2 + 2 * v];
            double r1x = cos(a) * u0 - sin(a) * u1, r1y = sin(a) * u0 + cos(a) * u1;
            double r2x = cos(2 * a) * u0 - sin(2 * a) * u1, r2y = sin(2 * a) * u0 + cos(2 * a) * u1;
            num += (r1x - r2x) * (r1x - r2x) + (r1y - r2y) * (r1y - r2y);
            den += u0 * u0 + u1 * u1;
        }
    for (int n = 0; n < 3; n++) den += (double)x->data[n * 5] * x->data[n * 5];
    double ref = sqrt(num / den);
    if (!(fabs(err - ref) <= (1 + ref) * ACT_EQ)) fail_msg("vector: measured %.9g, reference %.9g", err, ref);
    assert_true(ref > 0.1);
    eqr_rep_destroy(T1);
    eqr_rep_destroy(T2);
    eqr_ctx_destroy(ctx);
}

/* The max over random samples of a continuous group equals the max of the
 * individual errors at the elements the context RNG yields. */
static void test_max_continuous_samples(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(7);
    eqr_group O2 = eqr_group_o2(2);
    eqr_rep *T = trivial_type(ctx, &O2, 1);
    const float kf[9] = {0.2f, 0.5f, -0.7f, 0.0f, 1.0f, 0.3f, -0.4f, 0.1f, 0.8f};
    conv_model m = {depthwise(ctx, "w", 1, kf)};
    int64_t s[4] = {1, 1, HH, WW};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, s);
    fill_normal(x->data, x->numel, 19);
    eqr_rng saved = *eqr_ctx_rng(ctx);
    double mx = -1;
    assert_int_equal(eqr_equivariance_error_max(ctx, fw_conv, &m, T, T, x, NULL, 5, &mx), EQR_OK);
    eqr_rng r = saved;
    double worst = 0;
    for (int i = 0; i < 5; i++) {
        eqr_gelem g = eqr_group_sample(&O2, &r);
        double e;
        assert_int_equal(eqr_equivariance_error(ctx, fw_conv, &m, T, T, g, x, NULL, &e), EQR_OK);
        if (e > worst) worst = e;
    }
    assert_true(worst > 0.05);
    assert_true(mx == worst);
    eqr_rep_destroy(T);
    eqr_ctx_destroy(ctx);
}

static void test_error_paths(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(8);
    eqr_group C4 = eqr_group_cyclic(4), SO2 = eqr_group_so2(1);
    eqr_rep *T = trivial_type(ctx, &C4, 2), *T3 = trivial_type(ctx, &C4, 3);
    eqr_rep *Ts = trivial_type(ctx, &SO2, 2);
    float k[9];
    sym_kernel(k, 1.0f, 0.5f, 0.25f);
    conv_model m = {depthwise(ctx, "w", 2, k)};
    int64_t s[4] = {1, 2, HH, WW}, s3[4] = {1, 3, HH, WW}, s2[2] = {1, 2};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, s);
    fill_normal(x->data, x->numel, 23);
    eqr_tensor *x3 = eqr_tensor_zeros(ctx, 4, s3), *xv = eqr_tensor_zeros(ctx, 2, s2);
    eqr_gelem g = eqr_gelem_of(0, PI / 2);
    double err = 123;

    /* wrong input channels / rank */
    assert_int_equal(eqr_equivariance_error(ctx, fw_conv, &m, T, T, g, x3, NULL, &err), EQR_ERR_SHAPE);
    tu_assert_error(ctx, EQR_ERR_SHAPE, "input must be [N,2,H,W]");
    assert_int_equal(eqr_equivariance_error(ctx, fw_conv, &m, T, T, g, xv, NULL, &err), EQR_ERR_SHAPE);
    tu_assert_error(ctx, EQR_ERR_SHAPE, "input");
    assert_int_equal(eqr_equivariance_error_max(ctx, fw_conv, &m, T3, T, x, NULL, 0, &err), EQR_ERR_SHAPE);
    tu_assert_error(ctx, EQR_ERR_SHAPE, "input");
    /* output channels do not match the output type */
    assert_int_equal(eqr_equivariance_error(ctx, fw_conv, &m, T, T3, g, x, NULL, &err), EQR_ERR_SHAPE);
    tu_assert_error(ctx, EQR_ERR_SHAPE, "output type has 3");
    /* outputs of the wrong rank, or of a shape that depends on the input */
    assert_int_equal(eqr_equivariance_error(ctx, fw_3d, NULL, T, T, g, x, NULL, &err), EQR_ERR_SHAPE);
    tu_assert_error(ctx, EQR_ERR_SHAPE, "[N,C,H,W] or [N,C]");
    eqr_tensor *xs = eqr_tensor_zeros(ctx, 4, s);
    for (int64_t i = 0; i < xs->numel; i++) xs->data[i] = (float)(i % 7) - 3.0f; /* x[0] < 0 */
    xs->data[WW - 1] = 1.0f; /* after +90 the first pixel is positive */
    assert_int_equal(eqr_equivariance_error(ctx, fw_shape_changes, NULL, T, NULL, g, xs, NULL, &err),
                     EQR_ERR_SHAPE);
    tu_assert_error(ctx, EQR_ERR_SHAPE, "f(g.x)");
    /* element not in the group */
    assert_int_equal(eqr_equivariance_error(ctx, fw_conv, &m, T, T, eqr_gelem_of(0, PI / 4), x, NULL, &err),
                     EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "not in C4");
    assert_int_equal(eqr_equivariance_error(ctx, fw_conv, &m, T, T, eqr_gelem_of(1, 0), x, NULL, &err),
                     EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "not in");
    /* failing forwards */
    assert_int_equal(eqr_equivariance_error(ctx, fw_null, NULL, T, T, g, x, NULL, &err), EQR_ERR_STATE);
    tu_assert_error(ctx, EQR_ERR_STATE, "forward returned NULL");
    assert_int_equal(eqr_equivariance_error(ctx, fw_fail, NULL, T, T, g, x, NULL, &err), EQR_ERR_SHAPE);
    tu_assert_error(ctx, EQR_ERR_SHAPE, NULL);
    /* NULL arguments */
    assert_int_equal(eqr_equivariance_error(ctx, NULL, &m, T, T, g, x, NULL, &err), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");
    assert_int_equal(eqr_equivariance_error(ctx, fw_conv, &m, NULL, T, g, x, NULL, &err), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");
    assert_int_equal(eqr_equivariance_error(ctx, fw_conv, &m, T, T, g, x, NULL, NULL), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");
    assert_int_equal(eqr_equivariance_error(NULL, fw_conv, &m, T, T, g, x, NULL, &err), EQR_ERR_ARG);
    assert_int_equal(eqr_equivariance_error_max(ctx, fw_conv, &m, NULL, T, x, NULL, 0, &err), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");
    /* continuous group without samples */
    int64_t s1[4] = {1, 2, 1, 1};
    eqr_tensor *x1 = eqr_tensor_zeros(ctx, 4, s1);
    assert_int_equal(eqr_equivariance_error_max(ctx, fw_flatten, NULL, Ts, Ts, x1, NULL, 0, &err), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "n_samples");
    assert_true(err == 123); /* untouched on every error */
    /* a context already in error does nothing */
    {
        int64_t bad[1] = {-1};
        assert_null(eqr_tensor_zeros(ctx, 1, bad));
        assert_int_equal(eqr_equivariance_error(ctx, fw_conv, &m, T, T, g, x, NULL, &err), EQR_ERR_SHAPE);
        assert_true(err == 123);
        eqr_error_clear(ctx);
    }
    eqr_rep_destroy(T);
    eqr_rep_destroy(T3);
    eqr_rep_destroy(Ts);
    eqr_ctx_destroy(ctx);
}

/* The step arena (used and reserved bytes, earlier tensors), the tape and the
 * grad mode are as before the call, on success and on error, even when the
 * forward makes the arena grow. */
static void test_arena_left_as_found(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(9);
    eqr_group C4 = eqr_group_cyclic(4);
    eqr_rep *T = trivial_type(ctx, &C4, 1), *T3 = trivial_type(ctx, &C4, 3);
    const float kf[9] = {0.2f, 0.5f, -0.7f, 0.0f, 1.0f, 0.3f, -0.4f, 0.1f, 0.8f};
    conv_model m = {depthwise(ctx, "w", 1, kf)};
    int64_t s[4] = {2, 1, HH, WW};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, s);
    fill_normal(x->data, x->numel, 29);
    /* a recorded op before the call: the tape has one node */
    eqr_tensor *y0 = eqr_conv2d(ctx, x, m.w, NULL, &EQR_CONV2D(1, 1, 1));
    assert_non_null(y0);
    int64_t tape = eqr_tape_num_nodes(ctx);
    assert_int_equal(tape, 1);
    float *copy = malloc((size_t)y0->numel * sizeof(float));
    memcpy(copy, y0->data, (size_t)y0->numel * sizeof(float));
    size_t used = eqr_arena_used(ctx), reserved = eqr_arena_reserved(ctx);
    double err;
    for (int trial = 0; trial < 3; trial++) {
        eqr_status st;
        if (trial == 0)
            st = eqr_equivariance_error_max(ctx, fw_conv, &m, T, T, x, NULL, 0, &err);
        else if (trial == 1)
            st = eqr_equivariance_error_max(ctx, fw_hungry, &m, T, T, x, NULL, 0, &err);
        else
            st = eqr_equivariance_error(ctx, fw_hungry, &m, T, T3, eqr_group_identity(), x, NULL, &err);
        if (trial < 2) {
            assert_int_equal(st, EQR_OK);
            assert_true(err > 0.05);
        } else {
            assert_int_equal(st, EQR_ERR_SHAPE);
            eqr_error_clear(ctx);
        }
        assert_int_equal(eqr_arena_used(ctx), used);
        assert_int_equal(eqr_arena_reserved(ctx), reserved);
        assert_int_equal(eqr_tape_num_nodes(ctx), tape);
        assert_int_equal(eqr_grad_enabled(ctx), 1);
        assert_memory_equal(y0->data, copy, (size_t)y0->numel * sizeof(float));
    }
    /* grad mode off is restored too */
    eqr_grad_set_enabled(ctx, 0);
    assert_int_equal(eqr_equivariance_error_max(ctx, fw_conv, &m, T, T, x, NULL, 0, &err), EQR_OK);
    assert_int_equal(eqr_grad_enabled(ctx), 0);
    eqr_grad_set_enabled(ctx, 1);
    /* the earlier tape still backpropagates */
    eqr_tensor *l = eqr_sum_all(ctx, y0);
    assert_int_equal(eqr_backward(ctx, l), EQR_OK);
    free(copy);
    eqr_rep_destroy(T);
    eqr_rep_destroy(T3);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_map_zero),
        cmocka_unit_test(test_nonequivariant_matches_reference),
        cmocka_unit_test(test_disk_masking),
        cmocka_unit_test(test_offgrid_denominator),
        cmocka_unit_test(test_invariance_mode),
        cmocka_unit_test(test_vector_outputs),
        cmocka_unit_test(test_max_continuous_samples),
        cmocka_unit_test(test_error_paths),
        cmocka_unit_test(test_arena_left_as_found),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
