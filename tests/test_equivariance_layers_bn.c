/* Equivariant layers on field types (include/equirelax/equi_layers.h),
 * batch norm: equivariance for every element of C4 and D4 and the
 * grid-exact elements of C8, SO(2) and O(2); forward against a
 * double-precision reference; types of irrep fields only; gradients by
 * finite differences; and a small equivariant block chained end to end. */

#include "testutil.h"
#include "tu_equi_layers.h"

#include "equirelax/equi_layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    tu_flist f;
    tu_lay_walk(t, &f);
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
    eqr_tensor *x = tu_lay_rand_x(ctx, t->dim, N, H, W, seed);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < t->dim; c++)
            for (int p = 0; p < H * W; p++) x->data[((int64_t)n * t->dim + c) * H * W + p] += 0.3f * (float)c - 1.0f;
    return x;
}

static void test_bn_equivariant(void **state) {
    (void)state;
    for (int gi = 0; gi < NGROUPS; gi++) {
        eqr_group G = tu_lay_group(gi);
        eqr_ctx *ctx = tu_ctx(700 + gi);
        eqr_rep *T = tu_lay_mixed_type(ctx, &G);
        eqr_field_bn *bn = eqr_field_bn_create(ctx, "bn", T, NULL);
        assert_non_null(bn);
        assert_ptr_equal(eqr_field_bn_out_type(bn), T);
        assert_int_equal(eqr_field_bn_training(bn), 1);
        randomise_bn(bn, 3);
        eqr_tensor *x = offset_x(ctx, T, 3, 5, 5, 8 + gi);
        tu_lay_check_equiv(ctx, tu_fw_bn, bn, T, T, x, "batch norm (train)");
        eqr_field_bn_set_training(bn, 0);
        assert_int_equal(eqr_field_bn_training(bn), 0);
        randomise_running(bn, 4);
        tu_lay_check_equiv(ctx, tu_fw_bn, bn, T, T, x, "batch norm (eval)");
        /* negative control: per-channel batch norm is not equivariant on
         * regular fields once its affine scale differs along the group axis */
        if (eqr_group_is_finite(&G)) {
            eqr_rep *R = tu_lay_regular_type(ctx, &G);
            eqr_tensor *xr = offset_x(ctx, R, 3, 5, 5, 9);
            int64_t sc[1] = {R->dim};
            eqr_tensor *gamma = eqr_tensor_zeros(ctx, 1, sc);
            for (int c = 0; c < R->dim; c++) gamma->data[c] = 0.5f + 0.1f * (float)c;
            double err = 0, e;
            eqr_gelem el[8];
            int ne = tu_lay_exact_elems(&G, el);
            for (int i = 0; i < ne; i++) {
                assert_int_equal(eqr_equivariance_error(ctx, tu_fw_plain_bn, gamma, R, R, el[i], xr, NULL, &e), EQR_OK);
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
        eqr_group G = tu_lay_group(gi);
        eqr_ctx *ctx = tu_ctx(800 + gi);
        eqr_rep *T = tu_lay_mixed_type(ctx, &G);
        tu_flist f;
        tu_lay_walk(T, &f);
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
        double *ref = tu_dalloc(x->numel), rmr[128], rvr[128];
        bn_mag bm = {tu_dalloc(x->numel), {0}, {0}, 0};
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
    eqr_rep *T = tu_lay_make_type(ctx, &G, 2, p);
    eqr_field_bn *bn = eqr_field_bn_create(ctx, "bn", T, NULL);
    assert_non_null(bn);
    assert_int_equal(eqr_field_bn_num_groups(bn), 3);
    assert_int_equal(eqr_field_bn_num_centred(bn), 0);
    assert_null(eqr_field_bn_bias(bn));
    assert_null(eqr_field_bn_running_mean(bn));
    /* one value per field is enough without centring */
    eqr_tensor *x = tu_lay_rand_x(ctx, T->dim, 1, 1, 1, 3);
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
        eqr_group G = tu_lay_group(gis[q]);
        eqr_ctx *ctx = tu_ctx(900 + q);
        eqr_rep *T = tu_lay_mixed_type(ctx, &G);
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
    eqr_rep *T = tu_lay_mixed_type(ctx, &D4);
    block b = {eqr_field_bn_create(ctx, "bn", T, NULL), eqr_norm_relu_create(ctx, "nr", T),
               eqr_invariant_map_create(ctx, T, EQR_GPOOL_MAX)};
    assert_non_null(b.bn);
    assert_non_null(b.nr);
    assert_non_null(b.inv);
    tu_lay_random_bias(eqr_norm_relu_bias(b.nr), 3);
    eqr_tensor *x = offset_x(ctx, T, 2, 6, 6, 4);
    tu_lay_check_equiv(ctx, fw_block, &b, T, eqr_field_pool_out_type(b.inv), x, "BN -> norm-ReLU -> invariant map");
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
        cmocka_unit_test(test_bn_equivariant),
        cmocka_unit_test(test_bn_forward_reference),
        cmocka_unit_test(test_bn_irreps_only),
        cmocka_unit_test(test_bn_gradcheck),
        cmocka_unit_test(test_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
