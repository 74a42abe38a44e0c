/* SO(3) / E(3): rotation matrices, quaternions, generators, scalar+vector
 * types and their action on tensors (so3.h). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const double PI = 3.14159265358979323846;

/* max |R R^T - I| and det R, in double */
static void ortho_det(const float R[9], double *err, double *det) {
    double e = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            double s = 0;
            for (int k = 0; k < 3; k++) s += (double)R[3 * i + k] * R[3 * j + k];
            e = fmax(e, fabs(s - (i == j)));
        }
    *err = e;
    *det = R[0] * ((double)R[4] * R[8] - (double)R[5] * R[7]) -
           R[1] * ((double)R[3] * R[8] - (double)R[5] * R[6]) +
           R[2] * ((double)R[3] * R[7] - (double)R[4] * R[6]);
}

static void assert_rotation(const float R[9]) {
    double e, d;
    ortho_det(R, &e, &d);
    /* every constructor here computes R in double and rounds each entry once
     * (relative u, |R_ij| <= 1): (R R^T)_ij moves by <= (2u + u^2) |R_i||R_j|
     * = 2u + u^2 (unit rows), det by <= tr(|adj R| |dR|) + O(u^2) <= 3u +
     * 10 u^2 (adj R = R^T, sum R_ij^2 = 3); 1e-14 for the double arithmetic */
    if (!(e <= (2 + TU_U) * TU_U + 1e-14 && fabs(d - 1) <= (3 + 10 * TU_U) * TU_U + 1e-14))
        fail_msg("not a rotation: |RR^T-I| %g det %g", e, d);
}

static double maxdiff(const float *a, const float *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static double maxabs(const float *a, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}

static void test_rotations_orthogonal(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    eqr_rng *rng = eqr_ctx_rng(ctx);
    float R[9], q[4];
    for (int t = 0; t < 200; t++) {
        eqr_so3_random(rng, R, q);
        assert_rotation(R);
        float axis[3] = {eqr_rng_normal(rng), eqr_rng_normal(rng), eqr_rng_normal(rng)};
        float ang = (float)(4 * PI * (eqr_rng_uniform(rng) - 0.5));
        assert_int_equal(eqr_so3_from_axis_angle(ctx, axis, ang, R), EQR_OK);
        assert_rotation(R);
        /* exp of the rotation vector is the same rotation */
        double n = sqrt((double)axis[0] * axis[0] + (double)axis[1] * axis[1] +
                        (double)axis[2] * axis[2]);
        float w[3];
        for (int i = 0; i < 3; i++) w[i] = (float)(axis[i] / n * ang);
        float E[9];
        eqr_so3_exp(w, E);
        /* w rounded to float moves the rotation vector by <= u |ang| (2-norm),
         * which moves each entry of R by at most that (|d exp| <= |dw|); both
         * R and E round once (u) */
        assert_true(maxdiff(E, R, 9) <= TU_U * (fabs(ang) + 2) + 1e-14);
        /* the axis is fixed */
        float v[3];
        eqr_so3_apply(R, axis, v);
        /* R a (in double from float R, each entry off by u) is within
         * u sum_j |R_ij a_j| <= u |a| of a, then rounded once: <= 2u |a| + u^2 */
        assert_true(maxdiff(v, axis, 3) <= (2 + 2 * TU_U) * TU_U * n + 1e-14 * n);
        float Q[9];
        assert_int_equal(eqr_so3_from_quat(ctx, (float[4]){2 * q[0], 2 * q[1], 2 * q[2], 2 * q[3]}, Q),
                         EQR_OK);
        assert_rotation(Q);
    }
    /* a quarter turn about z maps e_x to e_y, about x maps e_y to e_z: to
     * the float angle's offset from pi/2 (cos of it) plus one rounding */
    const double qt = fabs(PI / 2 - (double)(float)(PI / 2)) + TU_U + 1e-15;
    assert_int_equal(eqr_so3_from_axis_angle(ctx, (float[3]){0, 0, 3}, (float)(PI / 2), R), EQR_OK);
    float v[3];
    eqr_so3_apply(R, (float[3]){1, 0, 0}, v);
    assert_true(maxdiff(v, (float[3]){0, 1, 0}, 3) <= qt);
    assert_int_equal(eqr_so3_from_axis_angle(ctx, (float[3]){1, 0, 0}, (float)(PI / 2), R), EQR_OK);
    eqr_so3_apply(R, (float[3]){0, 1, 0}, v);
    assert_true(maxdiff(v, (float[3]){0, 0, 1}, 3) <= qt);
    /* exp(0) = I; mul and transpose: R R^T = I */
    float I[9], Rt[9], P[9];
    eqr_so3_exp((float[3]){0, 0, 0}, P);
    eqr_so3_identity(I);
    assert_true(maxdiff(P, I, 9) == 0);
    eqr_so3_transpose(R, Rt);
    eqr_so3_mul(R, Rt, P);
    /* R R^T of the float R is within 2u + u^2 of I (as in assert_rotation),
     * the product rounds once more */
    assert_true(maxdiff(P, I, 9) <= (3 + 2 * TU_U) * TU_U + 1e-14);
    eqr_ctx_destroy(ctx);
}

/* Bounds of the quaternion round trip. R = fl(R*) for a rotation R*
 * (entries off by <= u). eqr_so3_to_quat (double) divides by s = 4 |q_k|
 * >= 2 (Shepperd's branch: the largest component, >= 1/2): s moves by
 * <= 3u, each unnormalised component by <= 2.5u, so its direction by <=
 * 5u (2-norm; the normalisation removes the radial part), 12u with the
 * second-order terms and the float output's rounding (QT_DQ). Each entry
 * 2(q_a q_b +- q_c q_d) or 1 - 2(q_a^2 + q_b^2) of a rotation has a gradient
 * of 2-norm <= 4 in q: R from a quaternion off by QT_DQ is off by 4 QT_DQ,
 * plus two roundings (QT_DR). */
#define QT_DQ (12 * TU_U)
#define QT_DR (4 * QT_DQ + 2 * TU_U + 1e-14)

static void test_quaternion_round_trip(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(2);
    eqr_rng *rng = eqr_ctx_rng(ctx);
    float R[9], q[4], q2[4], R2[9];
    for (int t = 0; t < 500; t++) {
        eqr_so3_random(rng, R, q);
        eqr_so3_to_quat(R, q2);
        double s = q2[0] * q[0] + q2[1] * q[1] + q2[2] * q[2] + q2[3] * q[3];
        /* same up to sign: |q2|, |q| within 2u, u of 1 and ||q2 -+ q|| <=
         * QT_DQ + u, so |<q2, q>| = (|q2|^2 + |q|^2 - ||q2 -+ q||^2) / 2 is
         * within 2u + 100 u^2 of 1 */
        assert_true(fabs(fabs(s) - 1) <= (2 + 100 * TU_U) * TU_U + 1e-15);
        assert_true(q2[0] >= 0);
        assert_int_equal(eqr_so3_from_quat(ctx, q2, R2), EQR_OK);
        assert_true(maxdiff(R, R2, 9) <= QT_DR);
    }
    /* half turns (trace -1, w = 0) and the identity take the other branches */
    const float axes[4][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, -2, 2}};
    /* float(pi) and float(pi/2) are off by da, dh: w = cos(angle / 2) */
    const double da = fabs(PI - (double)(float)PI), dh = fabs(PI / 2 - (double)(float)(PI / 2));
    for (int a = 0; a < 4; a++) {
        assert_int_equal(eqr_so3_from_axis_angle(ctx, axes[a], (float)PI, R), EQR_OK);
        eqr_so3_to_quat(R, q2);
        assert_true(fabs(q2[0]) <= da / 2 + QT_DQ);
        assert_int_equal(eqr_so3_from_quat(ctx, q2, R2), EQR_OK);
        assert_true(maxdiff(R, R2, 9) <= QT_DR);
        /* the vector part is along the axis */
        double n = sqrt(axes[a][0] * axes[a][0] + axes[a][1] * axes[a][1] + axes[a][2] * axes[a][2]);
        double dot = (q2[1] * axes[a][0] + q2[2] * axes[a][1] + q2[3] * axes[a][2]) / n;
        assert_true(fabs(fabs(dot) - 1) <= QT_DQ + TU_U + da * da);
    }
    eqr_so3_identity(R);
    eqr_so3_to_quat(R, q2);
    assert_true(maxdiff(q2, (float[4]){1, 0, 0, 0}, 4) == 0);
    /* known: 90 degrees about z = (cos 45, 0, 0, sin 45) */
    assert_int_equal(eqr_so3_from_axis_angle(ctx, (float[3]){0, 0, 1}, (float)(PI / 2), R), EQR_OK);
    eqr_so3_to_quat(R, q2);
    float h = (float)sqrt(0.5);
    assert_true(maxdiff(q2, (float[4]){h, 0, 0, h}, 4) <= dh / 2 + QT_DQ + TU_U);
    eqr_ctx_destroy(ctx);
}

static void test_rep_homomorphism(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(3);
    eqr_rng *rng = eqr_ctx_rng(ctx);
    eqr_so3_rep rep = {2, 3};
    int d = eqr_so3_rep_dim(&rep);
    assert_int_equal(d, 11);
    float *A = malloc(sizeof(float) * d * d), *B = malloc(sizeof(float) * d * d),
          *C = malloc(sizeof(float) * d * d);
    assert_non_null(A), assert_non_null(B), assert_non_null(C);
    for (int t = 0; t < 20; t++) {
        float Ra[9], Rb[9], Rab[9];
        eqr_so3_random(rng, Ra, NULL);
        eqr_so3_random(rng, Rb, NULL);
        eqr_so3_mul(Ra, Rb, Rab);
        assert_int_equal(eqr_so3_rep_matrix(ctx, &rep, Ra, A), EQR_OK);
        assert_int_equal(eqr_so3_rep_matrix(ctx, &rep, Rb, B), EQR_OK);
        assert_int_equal(eqr_so3_rep_matrix(ctx, &rep, Rab, C), EQR_OK);
        double e = 0, o = 0;
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) {
                double s = 0, p = 0;
                for (int k = 0; k < d; k++) {
                    s += (double)A[i * d + k] * B[k * d + j];
                    p += (double)A[i * d + k] * A[j * d + k];
                }
                e = fmax(e, fabs(s - C[i * d + j]));
                o = fmax(o, fabs(p - (i == j)));
            }
        /* the rep matrices copy R (1 and R blocks): A B in double vs C =
         * fl(Ra Rb) (one rounding of entries <= 1), A A^T within 2u + u^2 */
        assert_true(e <= TU_U + 1e-15);
        assert_true(o <= (2 + TU_U) * TU_U + 1e-14);
    }
    /* the layout: scalars untouched, vector k at channels 2 + 3k */
    float R[9];
    eqr_so3_random(rng, R, NULL);
    assert_int_equal(eqr_so3_rep_matrix(ctx, &rep, R, A), EQR_OK);
    assert_true(A[0] == 1 && A[1] == 0 && A[d + 1] == 1);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) assert_true(A[(5 + i) * d + 5 + j] == R[3 * i + j]);
    assert_true(A[2 * d + 5] == 0);
    free(A), free(B), free(C);
    eqr_ctx_destroy(ctx);
}

static void test_generators_finite_difference(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(4);
    float L[27];
    eqr_so3_generators(L);
    const float e[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
    const float h = 1e-3f;
    for (int a = 0; a < 3; a++) {
        float Rp[9], Rm[9], fd[9];
        assert_int_equal(eqr_so3_from_axis_angle(ctx, e[a], h, Rp), EQR_OK);
        assert_int_equal(eqr_so3_from_axis_angle(ctx, e[a], -h, Rm), EQR_OK);
        for (int i = 0; i < 9; i++) fd[i] = (float)(((double)Rp[i] - Rm[i]) / (2.0 * h));
        /* finite differences at h: R(+-h) in double rounded once (entries
         * <= 1: u each), so u / h from rounding; truncation h^2/6 |L|^3 with
         * |L|^3 = |L| (entries <= 1) for these 2x2 rotation blocks (the
         * rep's generators below too); fd itself rounded to float (u) */
        const double fd_tol = TU_U / h + (double)h * h / 6 * (1 + (double)h * h) + TU_U + 1e-12;
        assert_true(maxdiff(fd, L + 9 * a, 9) <= fd_tol);
        /* L_a v = e_a x v */
        float v[3] = {0.3f, -1.2f, 0.7f}, Lv[3], cr[3];
        eqr_so3_apply(L + 9 * a, v, Lv);
        cr[0] = e[a][1] * v[2] - e[a][2] * v[1];
        cr[1] = e[a][2] * v[0] - e[a][0] * v[2];
        cr[2] = e[a][0] * v[1] - e[a][1] * v[0];
        assert_true(maxdiff(Lv, cr, 3) == 0); /* 0 / +-1 entries: exact */
    }
    /* commutator [L_x, L_y] = L_z (the so(3) bracket) */
    float xy[9], yx[9], c[9];
    eqr_so3_mul(L, L + 9, xy);
    eqr_so3_mul(L + 9, L, yx);
    for (int i = 0; i < 9; i++) c[i] = xy[i] - yx[i];
    assert_true(maxdiff(c, L + 18, 9) == 0);
    /* rep generators = finite differences of the rep matrix */
    eqr_so3_rep rep = {1, 2};
    int d = eqr_so3_rep_dim(&rep);
    float *g = malloc(sizeof(float) * 3 * d * d), *Mp = malloc(sizeof(float) * d * d),
          *Mm = malloc(sizeof(float) * d * d);
    assert_non_null(g), assert_non_null(Mp), assert_non_null(Mm);
    eqr_lie_rep lr;
    assert_int_equal(eqr_so3_rep_lie(ctx, &rep, g, &lr), EQR_OK);
    assert_int_equal(lr.dim, d);
    assert_int_equal(lr.ngen, 3);
    assert_ptr_equal(lr.gens, g);
    for (int a = 0; a < 3; a++) {
        float Rp[9], Rm[9];
        assert_int_equal(eqr_so3_from_axis_angle(ctx, e[a], h, Rp), EQR_OK);
        assert_int_equal(eqr_so3_from_axis_angle(ctx, e[a], -h, Rm), EQR_OK);
        assert_int_equal(eqr_so3_rep_matrix(ctx, &rep, Rp, Mp), EQR_OK);
        assert_int_equal(eqr_so3_rep_matrix(ctx, &rep, Rm, Mm), EQR_OK);
        for (int i = 0; i < d * d; i++) {
            double fd = ((double)Mp[i] - Mm[i]) / (2.0 * h);
            if (fabs(fd - g[a * d * d + i]) > TU_U / h + (double)h * h / 6 * (1 + (double)h * h) + 1e-12) fail_msg("gen %d entry %d: %g vs %g", a, i, fd,
                                                             (double)g[a * d * d + i]);
        }
    }
    /* the Lie derivative (relax.h) of an equivariant map W = [[s, 0], [0, M (x) I3]]
     * is zero, of a generic map it is not */
    eqr_so3_rep out = {2, 1};
    int dout = eqr_so3_rep_dim(&out);
    float *go = malloc(sizeof(float) * 3 * dout * dout), *W = calloc((size_t)(dout * d), sizeof(float)),
          *ld = malloc(sizeof(float) * 3 * dout * d);
    assert_non_null(go), assert_non_null(W), assert_non_null(ld);
    eqr_lie_rep lo;
    assert_int_equal(eqr_so3_rep_lie(ctx, &out, go, &lo), EQR_OK);
    W[0 * d + 0] = 0.7f, W[1 * d + 0] = -1.3f; /* scalar -> scalars */
    for (int i = 0; i < 3; i++) W[(2 + i) * d + 1 + i] = 0.4f, W[(2 + i) * d + 4 + i] = -2.0f;
    assert_int_equal(eqr_lie_derivative(ctx, W, &lr, &lo, ld), EQR_OK);
    assert_true(maxabs(ld, 3 * dout * d) == 0);
    W[2 * d + 0] = 0.5f; /* scalar -> a vector component: not equivariant */
    assert_int_equal(eqr_lie_derivative(ctx, W, &lr, &lo, ld), EQR_OK);
    assert_true(maxabs(ld, 3 * dout * d) > 0.1);
    free(g), free(Mp), free(Mm), free(go), free(W), free(ld);
    eqr_ctx_destroy(ctx);
}

static void test_uniform_sampling(void **state) {
    (void)state;
    eqr_rng rng;
    eqr_rng_seed(&rng, 7);
    const int n = 20000;
    double mean[9] = {0}, sq[9] = {0};
    float R[9];
    for (int t = 0; t < n; t++) {
        eqr_so3_random(&rng, R, NULL);
        for (int i = 0; i < 9; i++) mean[i] += R[i], sq[i] += (double)R[i] * R[i];
    }
    /* Haar measure: E[R] = 0, E[R_ij^2] = 1/3 (std of the mean ~ 0.004) */
    for (int i = 0; i < 9; i++) {
        assert_true(fabs(mean[i] / n) < 0.02);
        assert_true(fabs(sq[i] / n - 1.0 / 3.0) < 0.02);
    }
    /* the rotation angle has density (1 - cos a) / pi: P(a < pi/2) = 1/2 - 1/pi */
    int small = 0;
    for (int t = 0; t < n; t++) {
        eqr_so3_random(&rng, R, NULL);
        double c = (R[0] + R[4] + R[8] - 1) / 2;
        small += acos(fmax(-1.0, fmin(1.0, c))) < PI / 2;
    }
    assert_true(fabs((double)small / n - (0.5 - 1 / PI)) < 0.015);
    /* deterministic for a given state */
    eqr_rng a, b;
    eqr_rng_seed(&a, 9), eqr_rng_seed(&b, 9);
    float Ra[9], Rb[9];
    eqr_so3_random(&a, Ra, NULL), eqr_so3_random(&b, Rb, NULL);
    assert_memory_equal(Ra, Rb, sizeof Ra);
}

/* ---- tensor actions ---- */

typedef struct act_case {
    eqr_so3_rep rep;
    float R[9], t[3];
    int axis, kind; /* 0 rep_act, 1 rotate, 2 e3 */
} act_case;

static eqr_tensor *act_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    act_case *c = user;
    if (c->kind == 0) return eqr_so3_rep_act(ctx, &c->rep, c->R, in[0], c->axis);
    if (c->kind == 1) return eqr_so3_rotate(ctx, c->R, in[0], c->axis);
    return eqr_e3_transform(ctx, c->R, c->t, in[0], c->axis);
}

static void test_tensor_actions(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(5);
    eqr_rng *rng = eqr_ctx_rng(ctx);
    act_case c = {{2, 2}, {0}, {0.5f, -1.0f, 2.0f}, 1, 0};
    eqr_so3_random(rng, c.R, NULL);
    int d = eqr_so3_rep_dim(&c.rep);
    float M[64];
    assert_int_equal(eqr_so3_rep_matrix(ctx, &c.rep, c.R, M), EQR_OK);
    int64_t s[3] = {2, d, 3};
    eqr_tensor *x = tu_input(ctx, "x", 3, s, 1.0f);
    eqr_tensor *y = act_fn(ctx, &x, &c);
    assert_non_null(y);
    double ref[2 * 8 * 3], mag[2 * 8 * 3];
    for (int n = 0; n < 2; n++)
        for (int i = 0; i < d; i++)
            for (int p = 0; p < 3; p++) {
                double acc = 0, a = 0;
                for (int j = 0; j < d; j++) {
                    acc += (double)M[i * d + j] * x->data[(n * d + j) * 3 + p];
                    a += fabs((double)M[i * d + j] * x->data[(n * d + j) * 3 + p]);
                }
                ref[(n * d + i) * 3 + p] = acc;
                mag[(n * d + i) * 3 + p] = a;
            }
    tu_assert_close_bound("rep_act", y->data, ref, mag, y->numel, d, 1); /* d-term sums */
    tu_gradcheck(ctx, act_fn, &x, 1, &c, 1e-2, 8 /* d-term matrix-vector sums */);

    /* points [5, 3] on the last axis: rotate, then rigid motion */
    int64_t ps[2] = {5, 3};
    eqr_tensor *p = tu_input(ctx, "p", 2, ps, 1.0f);
    for (int kind = 1; kind <= 2; kind++) {
        c.kind = kind, c.axis = -1;
        y = act_fn(ctx, &p, &c);
        assert_non_null(y);
        double r[15], rm[15];
        for (int i = 0; i < 5; i++)
            for (int a = 0; a < 3; a++) {
                double acc = kind == 2 ? c.t[a] : 0, am = kind == 2 ? fabs(c.t[a]) : 0;
                for (int b = 0; b < 3; b++) {
                    acc += (double)c.R[3 * a + b] * p->data[3 * i + b];
                    am += fabs((double)c.R[3 * a + b] * p->data[3 * i + b]);
                }
                r[3 * i + a] = acc;
                rm[3 * i + a] = am;
            }
        /* 3-term sums (+ t) */
        tu_assert_close_bound(kind == 1 ? "rotate" : "e3", y->data, r, rm, 15, 4, 1);
        tu_gradcheck(ctx, act_fn, &p, 1, &c, 1e-2, 8 /* 3-term sums + t */);
    }
    /* distances are invariant under a rigid motion */
    y = eqr_e3_transform(ctx, c.R, c.t, p, 1);
    assert_non_null(y);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < i; j++) {
            /* a: float differences (u each, 2u + u^2 on a); b: y = R p + t
             * within e = gamma_4 (sum |R p| + |t|) per coordinate (3-term sum,
             * t), the float difference u more: |b - |p_i - p_j|^2| <=
             * sum_k 2 |dy_k| E_k + E_k^2, E_k = e_ik + e_jk + u |dy_k| */
            double a = 0, b = 0, tol = 1e-14;
            for (int k = 0; k < 3; k++) {
                a += pow(p->data[3 * i + k] - p->data[3 * j + k], 2);
                const double dy = (double)y->data[3 * i + k] - y->data[3 * j + k];
                b += dy * dy;
                double mi = fabs(c.t[k]), mj = fabs(c.t[k]);
                for (int q = 0; q < 3; q++) {
                    mi += fabs((double)c.R[3 * k + q] * p->data[3 * i + q]);
                    mj += fabs((double)c.R[3 * k + q] * p->data[3 * j + q]);
                }
                const double E = tu_gamma(4) * (mi + mj) + TU_U * fabs(dy);
                tol += 2 * fabs(dy) * E + E * E;
            }
            tol += (2 + TU_U) * TU_U * a;
            assert_true(fabs(a - b) <= tol);
        }
    /* translation alone, rotation NULL */
    y = eqr_e3_transform(ctx, NULL, c.t, p, 1);
    assert_non_null(y);
    for (int i = 0; i < 15; i++) assert_true(y->data[i] == p->data[i] + c.t[i % 3]);
    eqr_ctx_destroy(ctx);
}

static void test_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(6);
    float R[9];
    assert_int_equal(eqr_so3_from_axis_angle(ctx, (float[3]){0, 0, 0}, 1.0f, R), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "axis");
    assert_int_equal(eqr_so3_from_quat(ctx, (float[4]){0, 0, 0, 0}, R), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "quaternion");
    eqr_so3_rep bad = {-1, 2}, empty = {0, 0};
    assert_int_equal(eqr_so3_rep_dim(&bad), -1);
    assert_int_equal(eqr_so3_rep_dim(&empty), -1);
    float M[36];
    assert_int_equal(eqr_so3_rep_matrix(ctx, &bad, R, M), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "n_scalars -1");
    assert_int_equal(eqr_so3_rep_generators(ctx, &empty, M), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "dimension");
    eqr_so3_identity(R);
    int64_t s[3] = {2, 4, 3};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 3, s);
    assert_null(eqr_so3_rotate(ctx, R, x, 1));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "[2,4,3]");
    assert_null(eqr_so3_rotate(ctx, R, x, 3));
    tu_assert_error(ctx, EQR_ERR_ARG, "axis 3");
    eqr_so3_rep r1 = {2, 1};
    assert_null(eqr_so3_rep_act(ctx, &r1, R, x, -1));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "expected 5");
    assert_non_null(eqr_so3_rep_act(ctx, &r1, R, eqr_tensor_zeros(ctx, 2, (int64_t[2]){3, 5}), 1));
    assert_null(eqr_e3_transform(ctx, R, NULL, NULL, 0)); /* NULL x: nothing recorded */
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rotations_orthogonal),
        cmocka_unit_test(test_quaternion_round_trip),
        cmocka_unit_test(test_rep_homomorphism),
        cmocka_unit_test(test_generators_finite_difference),
        cmocka_unit_test(test_uniform_sampling),
        cmocka_unit_test(test_tensor_actions),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
