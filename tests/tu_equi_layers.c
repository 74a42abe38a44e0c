/* Equivariant-layer test helpers; see tu_equi_layers.h. */
#include "tu_equi_layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

eqr_group tu_lay_group(int i) {
    switch (i) {
    case 0: return eqr_group_cyclic(4);
    case 1: return eqr_group_dihedral(4);
    case 2: return eqr_group_cyclic(8);
    case 3: return eqr_group_so2(3);
    case 4: return eqr_group_o2(2);
    default: return eqr_group_cyclic(16);
    }
}

void tu_lay_walk(const eqr_rep *t, tu_flist *f) {
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

eqr_rep *tu_lay_make_type(eqr_ctx *ctx, const eqr_group *G, int np, const eqr_rep_part *parts) {
    eqr_rep *t = eqr_rep_create(ctx, G, np, parts);
    if (!t) fail_msg("eqr_rep_create: %s", eqr_error_message(ctx));
    return t;
}

/* trivial x2, the first non-trivial irrep, regular x2 (finite G), then
 * every other non-trivial irrep (2D ones twice). */
eqr_rep *tu_lay_mixed_type(eqr_ctx *ctx, const eqr_group *G) {
    eqr_rep_part parts[16];
    int np = 0;
    parts[np++] = eqr_part_irrep(eqr_irrep_of(G, 0, 0), 2);
    for (int i = 1; i < eqr_group_num_irreps(G); i++) {
        eqr_irrep ir = eqr_group_irrep(G, i);
        parts[np++] = eqr_part_irrep(ir, ir.dim == 2 ? 2 : 1);
        if (i == 1 && eqr_group_is_finite(G)) parts[np++] = eqr_part_regular(2);
    }
    return tu_lay_make_type(ctx, G, np, parts);
}

/* Fields a pointwise nonlinearity / group pooling accepts: trivial x2 and
 * regular x2 (trivial x3 for continuous groups). */
eqr_rep *tu_lay_regular_type(eqr_ctx *ctx, const eqr_group *G) {
    eqr_rep_part parts[2] = {eqr_part_irrep(eqr_irrep_of(G, 0, 0), 2), eqr_part_regular(2)};
    if (!eqr_group_is_finite(G)) {
        parts[0].mult = 3;
        return tu_lay_make_type(ctx, G, 1, parts);
    }
    return tu_lay_make_type(ctx, G, 2, parts);
}

/* Gated input: every non-trivial irrep once, regular x1 (finite G) and one
 * trivial field, then K trivial gates, merged into the last trivial part. */
eqr_rep *tu_lay_gated_type(eqr_ctx *ctx, const eqr_group *G, int *K) {
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
    return tu_lay_make_type(ctx, G, np, parts);
}

eqr_tensor *tu_lay_rand_x(eqr_ctx *ctx, int C, int N, int H, int W, uint64_t seed) {
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
void tu_lay_kinkless(const eqr_rep *t, float *x, int N, int S, uint64_t seed) {
    eqr_rng r;
    eqr_rng_seed(&r, seed);
    tu_flist f;
    tu_lay_walk(t, &f);
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

/* Grid-exact elements of G on a square grid: multiples of 90 degrees, with
 * and without flip, that belong to G. */
int tu_lay_exact_elems(const eqr_group *G, eqr_gelem *e) {
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
double tu_lay_check_equiv(eqr_ctx *ctx, eqr_forward_fn f, void *m, const eqr_rep *in,
                          const eqr_rep *out, eqr_tensor *x, const char *what) {
    char gname[32];
    eqr_group_name(&in->group, gname, sizeof gname);
    eqr_gelem e[8];
    int ne = tu_lay_exact_elems(&in->group, e);
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

eqr_tensor *tu_fw_pool(eqr_ctx *c, void *m, eqr_tensor *x) { return eqr_field_pool_forward(c, m, x); }
eqr_tensor *tu_fw_pw(eqr_ctx *c, void *m, eqr_tensor *x) { return eqr_pointwise_forward(c, m, x); }
eqr_tensor *tu_fw_nrelu(eqr_ctx *c, void *m, eqr_tensor *x) { return eqr_norm_relu_forward(c, m, x); }
eqr_tensor *tu_fw_gated(eqr_ctx *c, void *m, eqr_tensor *x) { return eqr_gated_forward(c, m, x); }
eqr_tensor *tu_fw_bn(eqr_ctx *c, void *m, eqr_tensor *x) { return eqr_field_bn_forward(c, m, x); }
eqr_tensor *tu_fw_relu(eqr_ctx *c, void *m, eqr_tensor *x) {
    (void)m;
    return eqr_relu(c, x);
}
/* Per-channel batch norm with a scale per channel (m: gamma [C]). */
eqr_tensor *tu_fw_plain_bn(eqr_ctx *c, void *m, eqr_tensor *x) {
    return eqr_batchnorm(c, x, m, NULL, NULL, NULL, 0.1f, 1e-5f, 1);
}

double *tu_dalloc(int64_t n) {
    double *p = malloc((size_t)n * sizeof *p);
    assert_non_null(p);
    return p;
}

void tu_lay_random_bias(eqr_tensor *b, uint64_t seed) {
    eqr_rng r;
    eqr_rng_seed(&r, seed);
    for (int64_t i = 0; i < b->numel; i++) b->data[i] = -1.0f + 1.5f * eqr_rng_uniform(&r);
}
