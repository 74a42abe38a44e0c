/* Steerable convolutions, the layer: forward against a double reference,
 * export, projection (the adjoint of the expansion, least-squares fit),
 * gradients by finite differences and type errors; plus the construction
 * time of a 10-layer model. The basis is in
 * test_equivariance_steerable_basis.c, equivariance in
 * test_equivariance_steerable_layer.c. */

#include "testutil.h"
#include "tu_steerable.h"
#include "equirelax/steerable.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------ layer: forward reference, export */

/* Bias of each output channel under the documented rule, computed from the
 * type independently of the layer. */
static void ref_bias(const eqr_rep *out, const float *b, double *vec) {
    int c = 0, f = 0;
    for (int p = 0; p < out->nparts; p++) {
        const eqr_rep_part *pt = &out->parts[p];
        int reg = pt->kind == EQR_PART_REGULAR;
        int d = eqr_rep_part_dim(out, p);
        int carries = reg || (pt->irrep.j == 0 && pt->irrep.freq == 0);
        for (int m = 0; m < pt->mult; m++) {
            for (int e = 0; e < d; e++) vec[c++] = carries ? b[f] : 0.0;
            f += carries;
        }
    }
}

static void test_forward_reference_and_export(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(31);
    eqr_group G = eqr_group_dihedral(4);
    eqr_rep *in = tu_steer_type(ctx, &G, "t1 r1 i0,1x1"), *out = tu_steer_type(ctx, &G, "r2 i1,0x1 t1 i0,1x1");
    eqr_steer_conv_opts o = {0};
    o.geom = EQR_CONV2D(1, 1, 1);
    eqr_steer_conv *L = eqr_steer_conv_create(ctx, "ref", in, out, 3, &o);
    assert_non_null(L);
    const eqr_steer_basis *B = eqr_steer_conv_basis(L);
    eqr_tensor *w = eqr_steer_conv_weight(L), *bias = eqr_steer_conv_bias(L);
    assert_non_null(bias);
    assert_int_equal(bias->numel, 2 + 1); /* two regular fields, one trivial */
    assert_int_equal(w->numel, eqr_steer_basis_num_elements(B));
    eqr_tensor_normal(bias, eqr_ctx_rng(ctx), 1.0f);
    int O = out->dim, C = in->dim, k = 3, H = 7;
    int64_t L1 = (int64_t)O * C * k * k;
    /* bank reference: sum_t w_t basis_t in double */
    double *bank = calloc((size_t)L1, sizeof *bank), *bmag = calloc((size_t)L1, sizeof *bmag);
    float *el = malloc(sizeof(float) * (size_t)L1);
    assert_true(bank && bmag && el);
    for (int64_t t = 0; t < w->numel; t++) {
        assert_true(eqr_steer_basis_sample(B, t, el));
        for (int64_t i = 0; i < L1; i++) {
            bank[i] += (double)w->data[t] * el[i];
            bmag[i] += fabs((double)w->data[t] * el[i]);
        }
    }
    const int64_t nbas = w->numel; /* the bank sums <= nbas basis terms */
    eqr_tensor *fb = eqr_steer_conv_filter_bank(ctx, L);
    assert_non_null(fb);
    assert_int_equal(fb->numel, L1);
    tu_assert_close_bound("bank", fb->data, bank, bmag, L1, nbas, 1);
    /* conv reference with the bias rule */
    double *bv = malloc(sizeof(double) * O);
    ref_bias(out, bias->data, bv);
    eqr_tensor *x = tu_steer_randn(ctx, 2, C, H, H, 1.0f);
    eqr_tensor *y = eqr_steer_conv_forward(ctx, L, x);
    assert_non_null(y);
    assert_int_equal(y->shape[1], O);
    double *ref = malloc(sizeof(double) * 2 * O * H * H), *ymag = malloc(sizeof(double) * 2 * O * H * H);
    assert_true(ref && ymag);
    for (int n = 0; n < 2; n++)
        for (int oc = 0; oc < O; oc++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < H; j++) {
                    double s = bv[oc], m = fabs(bv[oc]);
                    for (int c = 0; c < C; c++)
                        for (int a = 0; a < k; a++)
                            for (int b = 0; b < k; b++) {
                                int ii = i + a - 1, jj = j + b - 1;
                                if (ii < 0 || jj < 0 || ii >= H || jj >= H) continue;
                                int64_t bi = ((oc * C + c) * k + a) * k + b;
                                double xv = x->data[((n * C + c) * H + ii) * H + jj];
                                s += bank[bi] * xv;
                                /* the float bank is within gamma_nbas bmag */
                                m += (fabs(bank[bi]) + bmag[bi]) * fabs(xv);
                            }
                    ref[((n * O + oc) * H + i) * H + j] = s;
                    ymag[((n * O + oc) * H + i) * H + j] = m;
                }
    /* the bank's nb-term sums, then C k k products and the bias */
    const int64_t ny = (int64_t)C * k * k + 1 + nbas;
    tu_assert_close_bound("forward", y->data, ref, ymag, y->numel, ny, 1);
    /* the bias sits on trivial and regular channels only */
    eqr_tensor *bvec = eqr_steer_conv_bias_vector(ctx, L);
    tu_assert_close("bias vector", bvec->data, bv, O, 0, 0);
    /* export: plain conv2d with the exported bank and bias == forward */
    float *we = malloc(sizeof(float) * (size_t)L1), *be = malloc(sizeof(float) * O);
    assert_int_equal(eqr_steer_conv_export(ctx, L, we, be), EQR_OK);
    int64_t ws[4];
    eqr_steer_conv_bank_shape(L, ws);
    eqr_tensor *wt = eqr_tensor_from(ctx, 4, ws, we), *bt = eqr_tensor_from(ctx, 1, ws, be);
    eqr_tensor *y2 = eqr_conv2d(ctx, x, wt, bt, eqr_steer_conv_geom(L));
    assert_non_null(y2);
    double *yd = malloc(sizeof(double) * y->numel);
    for (int64_t i = 0; i < y->numel; i++) yd[i] = y->data[i];
    /* two float paths to the same reference: the sum of both bounds */
    tu_assert_close_bound("export", y2->data, yd, ymag, y->numel, ny, 2);
    free(ymag);
    free(bmag);
    assert_int_equal(eqr_steer_conv_export(ctx, L, NULL, be), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "weight");
    /* accessors */
    assert_int_equal(eqr_steer_conv_kernel_size(L), 3);
    assert_ptr_equal(eqr_steer_conv_in_type(L), in);
    assert_ptr_equal(eqr_steer_conv_out_type(L), out);
    assert_int_equal(eqr_steer_conv_group(L)->kind, EQR_GROUP_DIHEDRAL);
    free(bank);
    free(el);
    free(bv);
    free(ref);
    free(we);
    free(be);
    free(yd);
    eqr_steer_conv_destroy(L);
    /* no bias on request, and none without a trivial or regular output field */
    eqr_steer_conv_opts nb = {0};
    nb.no_bias = 1;
    L = eqr_steer_conv_create(ctx, "nb", in, out, 3, &nb);
    assert_null(eqr_steer_conv_bias(L));
    assert_null(eqr_steer_conv_bias_vector(ctx, L));
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    eqr_steer_conv_destroy(L);
    eqr_rep *vec = tu_steer_type(ctx, &G, "i0,1x2 i1,2x1");
    L = eqr_steer_conv_create(ctx, "vec", in, vec, 3, NULL);
    assert_non_null(L);
    assert_null(eqr_steer_conv_bias(L));
    float be2[5] = {9, 9, 9, 9, 9}, *we2 = malloc(sizeof(float) * 5 * C * 9);
    assert_int_equal(eqr_steer_conv_export(ctx, L, we2, be2), EQR_OK);
    for (int i = 0; i < 5; i++) assert_true(be2[i] == 0.0f);
    free(we2);
    eqr_steer_conv_destroy(L);
    eqr_rep_destroy(vec);
    eqr_rep_destroy(in);
    eqr_rep_destroy(out);
    eqr_ctx_destroy(ctx);
}

/* Projection: the adjoint of the expansion; least-squares fit. */
static void test_projection(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(32);
    eqr_group G = eqr_group_cyclic(4);
    eqr_rep *in = tu_steer_type(ctx, &G, "r1 t1"), *out = tu_steer_type(ctx, &G, "r1 i0,1x1");
    eqr_steer_basis *B = eqr_steer_basis_create(ctx, in, out, 3, NULL);
    int64_t n = eqr_steer_basis_num_elements(B), L1 = (int64_t)out->dim * in->dim * 9;
    float *w = malloc(sizeof(float) * n), *w2 = malloc(sizeof(float) * n);
    float *bank = malloc(sizeof(float) * L1), *bank2 = malloc(sizeof(float) * L1);
    eqr_rng rng;
    eqr_rng_seed(&rng, 5);
    for (int64_t i = 0; i < n; i++) w[i] = eqr_rng_normal(&rng);
    eqr_steer_basis_expand(B, w, bank);
    eqr_steer_basis_project(B, bank, w2);
    double *wd = malloc(sizeof(double) * n), *mg = malloc(sizeof(double) * n);
    float *Sm = malloc(sizeof(float) * (size_t)(n * L1)); /* the float samples, [n, L1] */
    assert_true(wd && mg && Sm);
    for (int64_t t = 0; t < n; t++) assert_true(eqr_steer_basis_sample(B, t, Sm + t * L1));
    /* |S_t| . |S_s|, the scale of the float samples' Gram error (2 u of it) */
    double *GA = malloc(sizeof(double) * (size_t)(n * n));
    assert_non_null(GA);
    for (int64_t a = 0; a < n; a++)
        for (int64_t b = 0; b < n; b++) {
            double g = 0;
            for (int64_t i = 0; i < L1; i++) g += fabs((double)Sm[a * L1 + i] * Sm[b * L1 + i]);
            GA[a * n + b] = g;
        }
    /* w2 = S (S^T w): the projection sums L1 terms S_ti bank_i (magnitude
     * sum_i |S_ti| |bank_i|), the bank n terms w_s S_si, each within
     * gamma_n sum_s |w_s S_si|, carried by |S_t| (magnitude sum_s |w_s|
     * |S_t|.|S_s|, which also scales the float samples' Gram error 2u):
     * gamma_L1 m1 + gamma_{n + 2} m2, passed as gamma_L1 of m1 + m2 scaled */
    for (int64_t t = 0; t < n; t++) {
        double m1 = 0, m2 = 0;
        for (int64_t i = 0; i < L1; i++) m1 += fabs((double)Sm[t * L1 + i] * bank[i]);
        for (int64_t q = 0; q < n; q++) m2 += fabs((double)w[q]) * GA[t * n + q];
        wd[t] = w[t];
        mg[t] = m1 + m2 * tu_gamma(n + 2) / tu_gamma(L1);
    }
    tu_assert_close_bound("project(expand(w))", w2, wd, mg, n, L1, 1);
    /* a random bank: its residual after the fit is orthogonal to every
     * element, and the fit is an equivariant bank (grid check on a conv) */
    for (int64_t i = 0; i < L1; i++) bank[i] = eqr_rng_normal(&rng);
    eqr_steer_basis_project(B, bank, w2);
    eqr_steer_basis_expand(B, w2, bank2);
    /* <bank - bank2, S_t> (in double; bank - bank2 exact in double): bank2 =
     * sum_s w2_s S_s within gamma_n of sum_s |w2_s| |S_s|, seen through S_t:
     * A_t = sum_s |w2_s| |S_t|.|S_s| (which also bounds the float samples'
     * Gram error, 2u A_t); w2_s within gamma_L1 of sum_j |S_sj| |bank_j|,
     * seen through S_s . S_t: B_t. c 3 gamma_{L1 + n} (A_t + B_t) */
    double *pm = malloc(sizeof(double) * n);
    assert_non_null(pm);
    for (int64_t q = 0; q < n; q++) {
        pm[q] = 0;
        for (int64_t j = 0; j < L1; j++) pm[q] += fabs((double)Sm[q * L1 + j] * bank[j]);
    }
    for (int64_t t = 0; t < n; t++) {
        double s = 0, A = 0, Bt = 0;
        for (int64_t i = 0; i < L1; i++) s += ((double)bank[i] - bank2[i]) * Sm[t * L1 + i];
        for (int64_t q = 0; q < n; q++) {
            A += fabs((double)w2[q]) * GA[t * n + q];
            Bt += GA[t * n + q] * pm[q];
        }
        const double tol = 3 * tu_gamma(L1 + n) * (A + Bt);
        if (!(fabs(s) <= tol)) fail_msg("residual . S_%lld = %g > %g", (long long)t, s, tol);
    }
    free(pm);
    free(GA);
    free(Sm);
    free(mg);
    free(w);
    free(w2);
    free(bank);
    free(bank2);
    free(wd);
    eqr_steer_basis_destroy(B);
    eqr_rep_destroy(in);
    eqr_rep_destroy(out);
    eqr_ctx_destroy(ctx);
}

/* --------------------------------------------------------- gradients */

static eqr_tensor *gc_forward(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    return eqr_steer_conv_forward(ctx, (eqr_steer_conv *)user, in[2]);
}

static eqr_tensor *gc_bank(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)in;
    return eqr_steer_conv_filter_bank(ctx, (eqr_steer_conv *)user);
}

static void test_gradcheck(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(41);
    struct {
        eqr_group G;
        const char *in, *out;
    } cs[] = {
        {eqr_group_cyclic(4), "t1 r1", "r1 i0,1x1 t1"},
        {eqr_group_o2(2), "t1 i0,1x1", "i0,1x1 t1 i1,0x1"},
    };
    for (int c = 0; c < 2; c++) {
        eqr_rep *in = tu_steer_type(ctx, &cs[c].G, cs[c].in), *out = tu_steer_type(ctx, &cs[c].G, cs[c].out);
        char name[16];
        snprintf(name, sizeof name, "g%d", c);
        eqr_steer_conv_opts o = {0};
        o.geom = EQR_CONV2D(1, 1, 1);
        eqr_steer_conv *L = eqr_steer_conv_create(ctx, name, in, out, 3, &o);
        assert_non_null(L);
        eqr_tensor *b = eqr_steer_conv_bias(L);
        assert_non_null(b);
        eqr_tensor_normal(b, eqr_ctx_rng(ctx), 0.5f);
        snprintf(name, sizeof name, "gx%d", c);
        int64_t xs[4] = {1, in->dim, 4, 4};
        eqr_tensor *x = tu_input(ctx, name, 4, xs, 1.0f);
        eqr_tensor *ins[3] = {eqr_steer_conv_weight(L), b, x};
        tu_gradcheck(ctx, gc_forward, ins, 3, L, 1e-2, in->dim * 9 + ins[0]->numel + 2 /* conv sum, the filter basis sum, bias */);
        tu_gradcheck(ctx, gc_bank, ins, 1, L, 1e-2, ins[0]->numel + 2 /* the filter basis sum */);
        eqr_steer_conv_destroy(L);
        eqr_rep_destroy(in);
        eqr_rep_destroy(out);
    }
    eqr_ctx_destroy(ctx);
}

/* ------------------------------------------------------------ errors */

static void test_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(51);
    eqr_group C4 = eqr_group_cyclic(4), D4 = eqr_group_dihedral(4), S = eqr_group_so2(2),
              O = eqr_group_o2(2);
    eqr_rep *a = tu_steer_type(ctx, &C4, "r1"), *b = tu_steer_type(ctx, &D4, "r1");
    assert_null(eqr_steer_conv_create(ctx, "e1", a, b, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "different groups");
    assert_null(eqr_steer_basis_create(ctx, a, b, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "different groups");
    eqr_rep *s2 = tu_steer_type(ctx, &S, "t1"), *s3 = tu_steer_type(ctx, &(eqr_group){EQR_GROUP_SO2, 0, 3}, "t1");
    assert_null(eqr_steer_conv_create(ctx, "e2", s2, s3, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "different groups");
    /* a regular part of SO(2), built by hand (eqr_rep_create refuses it) */
    eqr_rep_part rp = eqr_part_regular(1);
    eqr_rep bad = {S, 1, &rp, 4};
    assert_null(eqr_steer_conv_create(ctx, "e3", &bad, s2, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "regular");
    /* an irrep that is not of the group (frequency 3 > L = 2) */
    eqr_rep_part ip = eqr_part_irrep((eqr_irrep){0, 3, 2}, 1);
    eqr_rep bad2 = {S, 1, &ip, 2};
    assert_null(eqr_steer_conv_create(ctx, "e4", s2, &bad2, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "out_type");
    /* no kernel at all: O(2) trivial -> det */
    eqr_rep *ot = tu_steer_type(ctx, &O, "t1"), *od = tu_steer_type(ctx, &O, "i1,0x1");
    assert_null(eqr_steer_conv_create(ctx, "e5", ot, od, 5, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "no equivariant");
    assert_null(eqr_param_find(ctx, "e5.weight"));
    /* kernel size, geometry, names, basis options */
    assert_null(eqr_steer_conv_create(ctx, "e6", a, a, 0, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "kernel size");
    eqr_steer_conv_opts o = {0};
    o.geom.pad_h = -1;
    assert_null(eqr_steer_conv_create(ctx, "e7", a, a, 3, &o));
    tu_assert_error(ctx, EQR_ERR_ARG, "negative");
    assert_null(eqr_steer_conv_create(ctx, NULL, a, a, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "name");
    eqr_steer_conv_opts o2 = {0};
    o2.basis.sigma = -1;
    assert_null(eqr_steer_conv_create(ctx, "e8", a, a, 3, &o2));
    tu_assert_error(ctx, EQR_ERR_ARG, "sigma");
    assert_null(eqr_steer_conv_create(ctx, "e9", NULL, a, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "in_type");
    /* duplicate name */
    eqr_steer_conv *L = eqr_steer_conv_create(ctx, "dup", a, a, 3, NULL);
    assert_non_null(L);
    assert_null(eqr_steer_conv_create(ctx, "dup", a, a, 3, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "already exists");
    /* forward: wrong channel count, wrong rank, NULL layer, NULL x */
    eqr_tensor *x = tu_steer_randn(ctx, 1, 5, 6, 6, 1.0f);
    assert_null(eqr_steer_conv_forward(ctx, L, x));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "[N, 4, H, W]");
    int64_t s3d[3] = {4, 6, 6};
    assert_null(eqr_steer_conv_forward(ctx, L, eqr_tensor_zeros(ctx, 3, s3d)));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "eqr_steer_conv_forward");
    assert_null(eqr_steer_conv_forward(ctx, NULL, x));
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");
    assert_null(eqr_steer_conv_forward(ctx, L, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    /* NULL-safe accessors and destroy */
    assert_int_equal(eqr_steer_basis_num_elements(NULL), 0);
    assert_null(eqr_steer_conv_weight(NULL));
    assert_false(eqr_steer_conv_exact_on(NULL, 5, 5));
    eqr_steer_conv_destroy(NULL);
    eqr_steer_basis_destroy(NULL);
    eqr_steer_conv_destroy(L);
    eqr_rep_destroy(a);
    eqr_rep_destroy(b);
    eqr_rep_destroy(s2);
    eqr_rep_destroy(s3);
    eqr_rep_destroy(ot);
    eqr_rep_destroy(od);
    eqr_ctx_destroy(ctx);
}

/* ------------------------------------------------- construction time */

static double now(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Build 10-layer models (the basis is solved once per layer, at create)
 * and report the time. The bound is loose (sanitizer / debug builds); in
 * Release these models take a few milliseconds. */
/* Builds three 10-layer models and prints the construction time (a
 * measurement, not a timed assertion: speed goals are for benchmarks). */
static void test_construction_time(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(61);
    struct {
        eqr_group G;
        const char *first, *hidden;
        int k;
    } ms[] = {
        {eqr_group_cyclic(8), "t1", "r8", 5},
        {eqr_group_dihedral(4), "t1", "r8", 5},
        {eqr_group_so2(3), "t1", "t4 i0,1x4 i0,2x4 i0,3x4", 5},
    };
    for (int mi = 0; mi < 3; mi++) {
        eqr_rep *first = tu_steer_type(ctx, &ms[mi].G, ms[mi].first), *hid = tu_steer_type(ctx, &ms[mi].G, ms[mi].hidden);
        eqr_steer_conv *Ls[10];
        double t0 = now();
        int64_t nw = 0;
        for (int l = 0; l < 10; l++) {
            char name[16];
            snprintf(name, sizeof name, "m%d_%d", mi, l);
            Ls[l] = eqr_steer_conv_create(ctx, name, l == 0 ? first : hid, l == 9 ? first : hid, ms[mi].k, NULL);
            assert_non_null(Ls[l]);
            nw += eqr_steer_basis_num_elements(eqr_steer_conv_basis(Ls[l]));
        }
        double dt = now() - t0;
        char gname[32];
        print_message("10-layer %s model (%s hidden, k=%d, %lld weights): built in %.1f ms\n",
                      eqr_group_name(&ms[mi].G, gname, sizeof gname), ms[mi].hidden, ms[mi].k,
                      (long long)nw, 1e3 * dt);
        for (int l = 0; l < 10; l++) eqr_steer_conv_destroy(Ls[l]);
        eqr_rep_destroy(first);
        eqr_rep_destroy(hid);
    }
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_reference_and_export),
        cmocka_unit_test(test_projection),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_construction_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
