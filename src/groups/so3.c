/* SO(3) / E(3): rotation matrices, quaternions, generators, the
 * scalar + vector field types and their (differentiable) action on tensors. */
#include "core/internal.h"
#include "equirelax/so3.h"

#include <math.h>

/* ------------------------------------------------------------ matrices */

void eqr_so3_identity(float R[9]) {
    for (int i = 0; i < 9; i++) R[i] = (i % 4 == 0) ? 1.0f : 0.0f;
}

/* R = cos a I + sin a [u]_x + (1 - cos a) u u^T for a unit axis u. */
static void rodrigues(const double u[3], double a, float R[9]) {
    double c = cos(a), s = sin(a), C = 1.0 - c;
    double x = u[0], y = u[1], z = u[2];
    R[0] = (float)(c + C * x * x);
    R[1] = (float)(C * x * y - s * z);
    R[2] = (float)(C * x * z + s * y);
    R[3] = (float)(C * y * x + s * z);
    R[4] = (float)(c + C * y * y);
    R[5] = (float)(C * y * z - s * x);
    R[6] = (float)(C * z * x - s * y);
    R[7] = (float)(C * z * y + s * x);
    R[8] = (float)(c + C * z * z);
}

eqr_status eqr_so3_from_axis_angle(eqr_ctx *ctx, const float axis[3], float angle, float R[9]) {
    if (!ctx) return EQR_ERR_ARG;
    if (!axis || !R) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_so3_from_axis_angle: NULL axis or R");
    double n = sqrt((double)axis[0] * axis[0] + (double)axis[1] * axis[1] +
                    (double)axis[2] * axis[2]);
    if (!(n > 0.0) || !isfinite(n) || !isfinite(angle))
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "eqr_so3_from_axis_angle: axis (%g, %g, %g) / angle %g must be "
                         "nonzero and finite",
                         (double)axis[0], (double)axis[1], (double)axis[2], (double)angle);
    double u[3] = {axis[0] / n, axis[1] / n, axis[2] / n};
    rodrigues(u, angle, R);
    return EQR_OK;
}

void eqr_so3_exp(const float w[3], float R[9]) {
    double n = sqrt((double)w[0] * w[0] + (double)w[1] * w[1] + (double)w[2] * w[2]);
    if (!(n > 0.0)) {
        eqr_so3_identity(R);
        return;
    }
    double u[3] = {w[0] / n, w[1] / n, w[2] / n};
    rodrigues(u, n, R);
}

static void quat_to_mat(const double q[4], float R[9]) {
    double w = q[0], x = q[1], y = q[2], z = q[3];
    R[0] = (float)(1 - 2 * (y * y + z * z));
    R[1] = (float)(2 * (x * y - w * z));
    R[2] = (float)(2 * (x * z + w * y));
    R[3] = (float)(2 * (x * y + w * z));
    R[4] = (float)(1 - 2 * (x * x + z * z));
    R[5] = (float)(2 * (y * z - w * x));
    R[6] = (float)(2 * (x * z - w * y));
    R[7] = (float)(2 * (y * z + w * x));
    R[8] = (float)(1 - 2 * (x * x + y * y));
}

eqr_status eqr_so3_from_quat(eqr_ctx *ctx, const float q[4], float R[9]) {
    if (!ctx) return EQR_ERR_ARG;
    if (!q || !R) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_so3_from_quat: NULL q or R");
    double n = 0;
    for (int i = 0; i < 4; i++) n += (double)q[i] * q[i];
    n = sqrt(n);
    if (!(n > 0.0) || !isfinite(n))
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "eqr_so3_from_quat: quaternion (%g, %g, %g, %g) must be nonzero and finite",
                         (double)q[0], (double)q[1], (double)q[2], (double)q[3]);
    double u[4] = {q[0] / n, q[1] / n, q[2] / n, q[3] / n};
    quat_to_mat(u, R);
    return EQR_OK;
}

void eqr_so3_to_quat(const float R[9], float q[4]) {
    double m00 = R[0], m01 = R[1], m02 = R[2], m10 = R[3], m11 = R[4], m12 = R[5], m20 = R[6],
           m21 = R[7], m22 = R[8];
    double tr = m00 + m11 + m22, w, x, y, z, s;
    /* Divide by the largest of 4w^2, 4x^2, 4y^2, 4z^2 (Shepperd). */
    if (tr > 0) {
        s = 2.0 * sqrt(tr + 1.0);
        w = 0.25 * s, x = (m21 - m12) / s, y = (m02 - m20) / s, z = (m10 - m01) / s;
    } else if (m00 > m11 && m00 > m22) {
        s = 2.0 * sqrt(1.0 + m00 - m11 - m22);
        w = (m21 - m12) / s, x = 0.25 * s, y = (m01 + m10) / s, z = (m02 + m20) / s;
    } else if (m11 > m22) {
        s = 2.0 * sqrt(1.0 + m11 - m00 - m22);
        w = (m02 - m20) / s, x = (m01 + m10) / s, y = 0.25 * s, z = (m12 + m21) / s;
    } else {
        s = 2.0 * sqrt(1.0 + m22 - m00 - m11);
        w = (m10 - m01) / s, x = (m02 + m20) / s, y = (m12 + m21) / s, z = 0.25 * s;
    }
    double n = sqrt(w * w + x * x + y * y + z * z);
    double v[4] = {w / n, x / n, y / n, z / n};
    /* canonical sign: w > 0, or the first nonzero component positive */
    int flip = 0;
    for (int i = 0; i < 4; i++) {
        if (v[i] != 0.0) {
            flip = v[i] < 0.0;
            break;
        }
    }
    for (int i = 0; i < 4; i++) q[i] = (float)(flip ? -v[i] : v[i]);
}

void eqr_so3_random(eqr_rng *rng, float R[9], float q[4]) {
    double v[4], n;
    do { /* a direction uniform on S^3: normalised Gaussian vector */
        n = 0;
        for (int i = 0; i < 4; i++) {
            v[i] = eqr_rng_normal(rng);
            n += v[i] * v[i];
        }
    } while (!(n > 1e-12));
    n = sqrt(n);
    for (int i = 0; i < 4; i++) v[i] /= n;
    quat_to_mat(v, R);
    if (q)
        for (int i = 0; i < 4; i++) q[i] = (float)v[i];
}

void eqr_so3_mul(const float A[9], const float B[9], float C[9]) {
    float t[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            double s = 0;
            for (int k = 0; k < 3; k++) s += (double)A[3 * i + k] * B[3 * k + j];
            t[3 * i + j] = (float)s;
        }
    memcpy(C, t, sizeof t);
}

void eqr_so3_transpose(const float R[9], float Rt[9]) {
    float t[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) t[3 * j + i] = R[3 * i + j];
    memcpy(Rt, t, sizeof t);
}

void eqr_so3_apply(const float R[9], const float v[3], float out[3]) {
    float t[3];
    for (int i = 0; i < 3; i++)
        t[i] = (float)((double)R[3 * i] * v[0] + (double)R[3 * i + 1] * v[1] +
                       (double)R[3 * i + 2] * v[2]);
    memcpy(out, t, sizeof t);
}

void eqr_so3_generators(float L[27]) {
    memset(L, 0, 27 * sizeof(float));
    /* (L_a)_ij = -eps_aij, so L_a v = e_a x v */
    L[0 * 9 + 3 * 1 + 2] = -1.0f, L[0 * 9 + 3 * 2 + 1] = 1.0f; /* L_x */
    L[1 * 9 + 3 * 0 + 2] = 1.0f, L[1 * 9 + 3 * 2 + 0] = -1.0f; /* L_y */
    L[2 * 9 + 3 * 0 + 1] = -1.0f, L[2 * 9 + 3 * 1 + 0] = 1.0f; /* L_z */
}

/* ------------------------------------------------------ representations */

int eqr_so3_rep_dim(const eqr_so3_rep *rep) {
    if (!rep || rep->n_scalars < 0 || rep->n_vectors < 0) return -1;
    int64_t d = (int64_t)rep->n_scalars + 3 * (int64_t)rep->n_vectors;
    return (d >= 1 && d <= (1 << 28)) ? (int)d : -1;
}

static int rep_check(eqr_ctx *ctx, const char *fn, const eqr_so3_rep *rep) {
    int d = eqr_so3_rep_dim(rep);
    if (d < 0)
        eqr__fail(ctx, EQR_ERR_ARG,
                  "%s: invalid SO(3) type (n_scalars %d, n_vectors %d): counts must be >= 0 "
                  "and the dimension >= 1",
                  fn, rep ? rep->n_scalars : 0, rep ? rep->n_vectors : 0);
    return d;
}

/* Block-diagonal dim x dim matrix: 'scalar' on the scalar diagonal, the 3x3
 * block B on each vector block. */
static void block_diag(const eqr_so3_rep *rep, int d, float scalar, const float B[9], float *M) {
    memset(M, 0, (size_t)d * (size_t)d * sizeof(float));
    for (int s = 0; s < rep->n_scalars; s++) M[(size_t)s * d + s] = scalar;
    for (int k = 0; k < rep->n_vectors; k++) {
        size_t c = (size_t)rep->n_scalars + 3 * (size_t)k;
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) M[(c + i) * d + c + j] = B[3 * i + j];
    }
}

eqr_status eqr_so3_rep_matrix(eqr_ctx *ctx, const eqr_so3_rep *rep, const float R[9], float *M) {
    if (!ctx) return EQR_ERR_ARG;
    int d = rep_check(ctx, "eqr_so3_rep_matrix", rep);
    if (d < 0) return EQR_ERR_ARG;
    if (!R || !M) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_so3_rep_matrix: NULL R or M");
    block_diag(rep, d, 1.0f, R, M);
    return EQR_OK;
}

eqr_status eqr_so3_rep_generators(eqr_ctx *ctx, const eqr_so3_rep *rep, float *gens) {
    if (!ctx) return EQR_ERR_ARG;
    int d = rep_check(ctx, "eqr_so3_rep_generators", rep);
    if (d < 0) return EQR_ERR_ARG;
    if (!gens) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_so3_rep_generators: NULL gens");
    float L[27];
    eqr_so3_generators(L);
    for (int a = 0; a < 3; a++) block_diag(rep, d, 0.0f, L + 9 * a, gens + (size_t)a * d * d);
    return EQR_OK;
}

eqr_status eqr_so3_rep_lie(eqr_ctx *ctx, const eqr_so3_rep *rep, float *gens, eqr_lie_rep *out) {
    if (!ctx) return EQR_ERR_ARG;
    if (!out) return eqr__fail(ctx, EQR_ERR_ARG, "eqr_so3_rep_lie: NULL out");
    eqr_status st = eqr_so3_rep_generators(ctx, rep, gens);
    if (st != EQR_OK) return st;
    out->dim = eqr_so3_rep_dim(rep);
    out->ngen = 3;
    out->gens = gens;
    return EQR_OK;
}

/* ------------------------------------------------- acting on tensors */

/* The one kernel behind rep_act / rotate / e3_transform: along an axis of
 * size ns + 3 nv, copy the ns scalars and map each vector v -> R v + t. */
typedef struct blockrot_saved {
    float R[9];
} blockrot_saved;

static void blockrot_apply(const float *R, const float *t, int64_t outer, int64_t inner,
                           int64_t ns, int64_t nv, int transpose, const float *x, float *y,
                           int accumulate) {
    int64_t d = ns + 3 * nv;
    float M[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) M[3 * i + j] = transpose ? R[3 * j + i] : R[3 * i + j];
    for (int64_t o = 0; o < outer; o++) {
        const float *xo = x + o * d * inner;
        float *yo = y + o * d * inner;
        for (int64_t c = 0; c < ns * inner; c++) yo[c] = accumulate ? yo[c] + xo[c] : xo[c];
        for (int64_t k = 0; k < nv; k++) {
            const float *x0 = xo + (ns + 3 * k) * inner, *x1 = x0 + inner, *x2 = x1 + inner;
            float *y0 = yo + (ns + 3 * k) * inner, *y1 = y0 + inner, *y2 = y1 + inner;
            float t0 = t ? t[0] : 0.0f, t1 = t ? t[1] : 0.0f, t2 = t ? t[2] : 0.0f;
            for (int64_t n = 0; n < inner; n++) {
                float a = x0[n], b = x1[n], c = x2[n];
                float r0 = M[0] * a + M[1] * b + M[2] * c + t0;
                float r1 = M[3] * a + M[4] * b + M[5] * c + t1;
                float r2 = M[6] * a + M[7] * b + M[8] * c + t2;
                if (accumulate) {
                    y0[n] += r0, y1[n] += r1, y2[n] += r2;
                } else {
                    y0[n] = r0, y1[n] = r1, y2[n] = r2;
                }
            }
        }
    }
}

static void blockrot_backward(eqr_ctx *ctx, eqr_node *n) {
    eqr_tensor *x = n->in[0];
    if (!eqr__needs_grad(x)) return;
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    const blockrot_saved *s = n->saved;
    /* d/dx (R x + t) = R: the gradient goes back through R^T */
    blockrot_apply(s->R, NULL, n->i[0], n->i[1], n->i[2], n->i[3], 1, n->out->grad, gx, 1);
}

static eqr_tensor *blockrot(eqr_ctx *ctx, const char *fn, eqr_tensor *x, int axis, int64_t ns,
                            int64_t nv, const float *R, const float *t) {
    int ax = eqr__axis(axis, x->ndim);
    if (ax < 0)
    {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: axis %d out of range for a %d-d tensor", fn, axis,
                  x->ndim);
        return NULL;
    }
    int64_t d = ns + 3 * nv;
    if (x->shape[ax] != d) {
        char b[EQR_SHAPE_BUF];
        eqr__fail(ctx, EQR_ERR_SHAPE, "%s: x %s has size %lld on axis %d, expected %lld", fn,
                  EQR_SHAPE(x, b), (long long)x->shape[ax], axis, (long long)d);
        return NULL;
    }
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < ax; i++) outer *= x->shape[i];
    for (int i = ax + 1; i < x->ndim; i++) inner *= x->shape[i];
    float Rm[9];
    if (R)
        memcpy(Rm, R, sizeof Rm);
    else
        eqr_so3_identity(Rm);
    eqr_tensor *y = eqr__tensor_empty(ctx, x->ndim, x->shape);
    if (!y) return NULL;
    blockrot_apply(Rm, t, outer, inner, ns, nv, 0, x->data, y->data, 0);
    eqr_node *n = eqr__record(ctx, y, blockrot_backward, 1, &x);
    if (n) {
        blockrot_saved *s = eqr__arena_alloc(ctx, sizeof *s);
        if (!s) return NULL;
        memcpy(s->R, Rm, sizeof Rm);
        n->saved = s;
        n->i[0] = outer, n->i[1] = inner, n->i[2] = ns, n->i[3] = nv;
    }
    return y;
}

eqr_tensor *eqr_so3_rep_act(eqr_ctx *ctx, const eqr_so3_rep *rep, const float R[9],
                            eqr_tensor *x, int axis) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    if (rep_check(ctx, "eqr_so3_rep_act", rep) < 0) return NULL;
    if (!R) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_so3_rep_act: NULL R");
        return NULL;
    }
    return blockrot(ctx, "eqr_so3_rep_act", x, axis, rep->n_scalars, rep->n_vectors, R, NULL);
}

eqr_tensor *eqr_so3_rotate(eqr_ctx *ctx, const float R[9], eqr_tensor *x, int axis) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    if (!R) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_so3_rotate: NULL R");
        return NULL;
    }
    return blockrot(ctx, "eqr_so3_rotate", x, axis, 0, 1, R, NULL);
}

eqr_tensor *eqr_e3_transform(eqr_ctx *ctx, const float R[9], const float t[3], eqr_tensor *x,
                             int axis) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    return blockrot(ctx, "eqr_e3_transform", x, axis, 0, 1, R, t);
}
