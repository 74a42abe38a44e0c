/* Equivariant layers on field types (include/equirelax/equi_layers.h),
 * pooling: equivariance for every element of C4 and D4 and the grid-exact
 * elements of C8, SO(2) and O(2); forward against a double-precision
 * reference; gradients by finite differences; and the type errors of all
 * the layers. Nonlinearities are in test_equivariance_layers_nonlin.c,
 * batch norm in test_equivariance_layers_bn.c. */

#include "testutil.h"
#include "tu_equi_layers.h"

#include "equirelax/equi_layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ types */

/* ------------------------------------------------------------ inputs */

/* ------------------------------------------------------ equivariance */

/* ------------------------------------------------------- references */

/* mode: 0 group pool, 1 norm pool, 2 invariant map; mean: regular fields by
 * mean instead of max. */
/* mag (may be NULL) gets the scale a pooled value can cancel against: for a
 * mean, sum |x| / d; 0 for a max, a norm or a trivial copy (relative error
 * only). */
static void ref_pool(const eqr_rep *t, const float *x, int N, int S, int mode, int mean, double *y,
                     double *mag) {
    tu_flist f;
    tu_lay_walk(t, &f);
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

/* ========================================================= pooling */

static void test_pools_equivariant(void **state) {
    (void)state;
    for (int gi = 0; gi < NGROUPS; gi++) {
        eqr_group G = tu_lay_group(gi);
        eqr_ctx *ctx = tu_ctx(100 + gi);
        eqr_rep *T = tu_lay_mixed_type(ctx, &G), *R = tu_lay_regular_type(ctx, &G);
        tu_flist ft;
        tu_lay_walk(T, &ft);
        eqr_tensor *x = tu_lay_rand_x(ctx, T->dim, 2, 5, 5, 1 + gi), *xr = tu_lay_rand_x(ctx, R->dim, 2, 5, 5, 2 + gi);
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
        tu_lay_check_equiv(ctx, tu_fw_pool, np, T, eqr_field_pool_out_type(np), x, "norm pool");
        tu_lay_check_equiv(ctx, tu_fw_pool, imx, T, eqr_field_pool_out_type(imx), x, "invariant map (max)");
        tu_lay_check_equiv(ctx, tu_fw_pool, imn, T, eqr_field_pool_out_type(imn), x, "invariant map (mean)");
        tu_lay_check_equiv(ctx, tu_fw_pool, gmx, R, eqr_field_pool_out_type(gmx), xr, "group pool (max)");
        tu_lay_check_equiv(ctx, tu_fw_pool, gmn, R, eqr_field_pool_out_type(gmn), xr, "group pool (mean)");
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
        eqr_group G = tu_lay_group(gi);
        eqr_ctx *ctx = tu_ctx(200 + gi);
        eqr_rep *T = tu_lay_mixed_type(ctx, &G), *R = tu_lay_regular_type(ctx, &G);
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
            eqr_tensor *x = tu_lay_rand_x(ctx, t->dim, N, H, W, 10 + c);
            eqr_tensor *y = eqr_field_pool_forward(ctx, l, x);
            assert_non_null(y);
            int O = eqr_field_pool_out_type(l)->dim;
            assert_int_equal(y->ndim, 4);
            assert_int_equal(y->shape[0], N);
            assert_int_equal(y->shape[1], O);
            assert_int_equal(y->shape[2], H);
            assert_int_equal(y->shape[3], W);
            double *ref = tu_dalloc((int64_t)N * O * S), *mag = tu_dalloc((int64_t)N * O * S);
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
            double *refv = tu_dalloc((int64_t)N * S * O);
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
        eqr_group G = tu_lay_group(gis[q]);
        eqr_ctx *ctx = tu_ctx(300 + q);
        eqr_rep *T = tu_lay_mixed_type(ctx, &G), *R = tu_lay_regular_type(ctx, &G);
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
            tu_lay_kinkless(t, x->data, N, H * W, 40 + c);
            tu_gradcheck(ctx, gc_pool, &x, 1, ls[c], 1e-2, 16 /* pooling over <= |G| = 8 entries, a scale */);
            eqr_field_pool_destroy(ls[c]);
        }
        eqr_rep_destroy(T);
        eqr_rep_destroy(R);
        eqr_ctx_destroy(ctx);
    }
}

/* ============================================================ errors */

static void test_type_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1000);
    eqr_group C4 = eqr_group_cyclic(4);
    eqr_rep *T = tu_lay_mixed_type(ctx, &C4), *R = tu_lay_regular_type(ctx, &C4);
    eqr_irrep triv = eqr_irrep_of(&C4, 0, 0), vec = eqr_irrep_of(&C4, 0, 1), sgn = eqr_irrep_of(&C4, 0, 2);
    assert_int_equal(vec.dim, 2);
    assert_int_equal(sgn.dim, 1);

    /* pointwise on irreps, including the 1D sign irrep */
    assert_null(eqr_pointwise_create(ctx, T, EQR_PW_RELU, 0));
    tu_assert_error(ctx, EQR_ERR_ARG, "only equivariant on trivial and regular");
    eqr_rep_part ps[2] = {eqr_part_irrep(triv, 1), eqr_part_irrep(sgn, 1)};
    eqr_rep *Ts = tu_lay_make_type(ctx, &C4, 2, ps);
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
    eqr_rep *Todd = tu_lay_make_type(ctx, &C4, 1, &p1);
    assert_null(eqr_gated_create(ctx, Todd));
    tu_assert_error(ctx, EQR_ERR_ARG, "has 3 fields");
    eqr_rep_part p2[2] = {eqr_part_irrep(triv, 2), eqr_part_irrep(vec, 2)}; /* gates must come last */
    eqr_rep *Tgates_first = tu_lay_make_type(ctx, &C4, 2, p2);
    assert_null(eqr_gated_create(ctx, Tgates_first));
    tu_assert_error(ctx, EQR_ERR_ARG, "must be trivial");
    eqr_rep_part p3[2] = {eqr_part_irrep(vec, 1), eqr_part_regular(1)};
    eqr_rep *Treg_gate = tu_lay_make_type(ctx, &C4, 2, p3);
    assert_null(eqr_gated_create(ctx, Treg_gate));
    tu_assert_error(ctx, EQR_ERR_ARG, "regular");
    eqr_rep_part p4[3] = {eqr_part_irrep(vec, 1), eqr_part_irrep(triv, 1), eqr_part_irrep(sgn, 1)};
    eqr_rep *Tsgn_gate = tu_lay_make_type(ctx, &C4, 3, p4); /* 3 fields: odd */
    assert_null(eqr_gated_create(ctx, Tsgn_gate));
    tu_assert_error(ctx, EQR_ERR_ARG, "2K");
    eqr_rep_part p5[3] = {eqr_part_irrep(vec, 2), eqr_part_irrep(triv, 1), eqr_part_irrep(sgn, 1)};
    eqr_rep *Tsgn_gate2 = tu_lay_make_type(ctx, &C4, 3, p5); /* the sign irrep cannot gate */
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
    eqr_tensor *x1 = tu_lay_rand_x(ctx, T->dim, 1, 1, 1, 1);
    assert_null(eqr_field_bn_forward(ctx, bn, x1));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "more than one value");
    /* a regular field is one centred group of |G| values: a single [1, |G|]
     * sample is enough, and is normalised over its group axis */
    eqr_rep_part rp = eqr_part_regular(2);
    eqr_rep *Rr = tu_lay_make_type(ctx, &C4, 1, &rp);
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
    eqr_rep *Tg = tu_lay_gated_type(ctx, &C4, &K);
    eqr_gated *ga = eqr_gated_create(ctx, Tg);
    assert_non_null(np);
    assert_non_null(pw);
    assert_non_null(ga);
    eqr_tensor *xT = tu_lay_rand_x(ctx, T->dim + 1, 1, 3, 3, 2), *xR = tu_lay_rand_x(ctx, R->dim - 1, 1, 3, 3, 3);
    eqr_tensor *xG = tu_lay_rand_x(ctx, Tg->dim + 2, 1, 3, 3, 4);
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
    eqr_tensor *xok = tu_lay_rand_x(ctx, T->dim, 1, 3, 3, 5);
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pools_equivariant),
        cmocka_unit_test(test_pools_forward_reference),
        cmocka_unit_test(test_pools_gradcheck),
        cmocka_unit_test(test_type_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
