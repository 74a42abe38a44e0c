/* Relaxation penalties (relax.h), the generator defect: exactly 0 on
 * equivariant banks (the layer's own exported bank) for C1..D4 and > 0
 * otherwise, and equal to a naive double reference of the PyTorch peer's
 * act_on_filters semantic (rotate the kernel AND roll the output and input
 * rotation channels; D4 adds the flip); the paper's rotate-only C4 penalty
 * is shown NOT to vanish on an equivariant bank; the steerable defect
 * ||W_r - P W_r||^2 against W_r - E^T E W_r in double; telemetry. The
 * activation norm, its estimator and the penalty's gradients are in
 * test_relax_penalty_norm.c. */

#include "testutil.h"
#include "tu_relax_penalty.h"
#include "relax/relax_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------- naive generator defect */

/* One generator of C4 / D4 applied to a bank [F*ord, C, k, k] (out) in
 * double, written from the PyTorch peer's act_on_filters: the kernel turns
 * by np.rot90 (out[a][b] = in[b][k-1-a]) or flips by np.fliplr
 * (out[a][b] = in[a][k-1-b]), and each orientation axis is permuted by the
 * generator: rotation = roll by one within each half (h -> h-1 as source),
 * flip = (fl, j) -> (1-fl, -j). */
static int src_elem(int ord, int flip_gen, int h) {
    const int n = ord > 4 ? 4 : ord, fl = h / n, j = h % n;
    if (!flip_gen) return fl * n + (j + n - 1) % n;
    return (1 - fl) * n + (n - j) % n;
}

static double naive_defect_d(const float *w, int O, int C, int k, int ord, int lifting, int ngen,
                             int rotate_only, double *dout) {
    double s = 0;
    int64_t nd = 0;
    for (int gen = 0; gen < ngen; gen++) {
        const int flip = gen == 1;
        for (int o = 0; o < O; o++)
            for (int c = 0; c < C; c++)
                for (int a = 0; a < k; a++)
                    for (int b = 0; b < k; b++) {
                        int os = rotate_only ? o : o / ord * ord + src_elem(ord, flip, o % ord);
                        int cs = lifting || rotate_only ? c : c / ord * ord + src_elem(ord, flip, c % ord);
                        int sa = flip ? a : b, sb = flip ? k - 1 - b : k - 1 - a;
                        double g = w[(((int64_t)os * C + cs) * k + sa) * k + sb];
                        double d = w[(((int64_t)o * C + c) * k + a) * k + b] - g;
                        s += d * d;
                        if (dout) dout[nd++] = d;
                    }
    }
    return s;
}

static double naive_defect(const float *w, int O, int C, int k, int ord, int lifting, int ngen,
                           int rotate_only) {
    return naive_defect_d(w, O, C, k, ord, lifting, ngen, rotate_only, NULL);
}

/* eqr_sumsq of n float values v~_i, each within e_i of the exact d_i,
 * accumulates v~^2 in double (exact products, a sum whose error n 2^-53 is
 * far below u) and rounds once to float, and nadd float adds of such sums
 * follow: the result lies in [(1 - g) lo, (1 + g) hi], lo = sum (|d| - e)+^2,
 * hi = sum (|d| + e)^2, g = gamma_{nadd + 2}. Asserts it; returns sum d^2. */
static double check_sumsq(const char *what, double got, const double *d, const double *e, int64_t n,
                          int nadd) {
    double S = 0, lo = 0, hi = 0;
    for (int64_t i = 0; i < n; i++) {
        const double a = fabs(d[i]), l = a > e[i] ? a - e[i] : 0;
        S += a * a;
        lo += l * l;
        hi += (a + e[i]) * (a + e[i]);
    }
    const double g = tu_gamma(nadd + 2);
    if (!(got >= (1 - g) * lo && got <= (1 + g) * hi))
        fail_msg("%s: %.9g outside [%.9g, %.9g] (exact %.9g)", what, got, (1 - g) * lo, (1 + g) * hi, S);
    return S;
}

static void test_gconv_defect_zero_iff_equivariant(void **state) {
    (void)state;
    for (int gi = 0; gi < TU_NSMALL_GROUPS; gi++)
        for (int lifting = 0; lifting < 2; lifting++) {
            eqr_ctx *ctx = tu_ctx(100 + gi);
            const eqr_group grp = tu_small_group(gi), *G = &grp;
            eqr_rep *in = lifting ? tu_trivial_rep(ctx, G, 2) : tu_regular_rep(ctx, G, 2);
            eqr_rep *out = tu_regular_rep(ctx, G, 2);
            eqr_gconv *g = tu_pen_gconv(ctx, "g", in, out, 3);
            eqr_relax *r = tu_relax(ctx, "relax", 0.5f, 0.5f, 1.0f, 0.0f, 0);
            eqr_rlayer *l = eqr_relax_gconv(ctx, r, "g", g, NULL);
            assert_non_null(l);
            eqr_tensor *wr = eqr_rlayer_wr(l);
            double rnd = tu_pen_value(eqr_relax_defect(ctx, r));
            assert_int_equal(eqr_gconv_export(ctx, g, wr->data, NULL), EQR_OK);
            double eq = tu_pen_value(eqr_relax_defect(ctx, r));
            if (eqr_group_order(G) > 1)
                assert_true(rnd > 1.0);
            else
                assert_true(rnd == 0.0); /* C1: every bank is equivariant */
            assert_true(eq == 0.0);
            eqr_relax_destroy(r);
            eqr_gconv_destroy(g);
            eqr_rep_destroy(in);
            eqr_rep_destroy(out);
            eqr_ctx_destroy(ctx);
        }
}

static void test_defect_matches_act_on_filters(void **state) {
    (void)state;
    const eqr_group groups[2] = {eqr_group_cyclic(4), eqr_group_dihedral(4)};
    for (int gi = 0; gi < 2; gi++)
        for (int lifting = 0; lifting < 2; lifting++) {
            eqr_ctx *ctx = tu_ctx(200 + gi);
            const eqr_group *G = &groups[gi];
            const int ord = eqr_group_order(G), k = 3;
            eqr_rep *in = lifting ? tu_trivial_rep(ctx, G, 3) : tu_regular_rep(ctx, G, 2);
            eqr_rep *out = tu_regular_rep(ctx, G, 2);
            eqr_gconv *g = tu_pen_gconv(ctx, "g", in, out, k);
            eqr_relax *r = tu_relax(ctx, "relax", 0.5f, 1.0f, 1.0f, 0.0f, 0);
            eqr_rlayer *l = eqr_relax_gconv(ctx, r, "g", g, NULL);
            assert_non_null(l);
            const float *w = eqr_rlayer_wr(l)->data;
            const int O = out->dim, C = in->dim;
            const int ngen = gi ? 2 : 1;
            const int64_t nd = (int64_t)ngen * O * C * k * k;
            double *dd = malloc((size_t)nd * sizeof(double)), *de = malloc((size_t)nd * sizeof(double));
            assert_true(dd && de);
            double ref = naive_defect_d(w, O, C, k, ord, lifting, ngen, 0, dd);
            double got = tu_pen_value(eqr_relax_defect(ctx, r));
            print_message("%s %s: defect %.6g, act_on_filters reference %.6g\n", gi ? "D4" : "C4",
                          lifting ? "lifting" : "group", got, ref);
            /* each difference w - g rounds once (e = u |d|), the squares are
             * summed in double (eqr_sumsq), the generators' sums added in
             * float: ~(2 + ngen) u relative, far below one term (~ref / nd) */
            for (int64_t i = 0; i < nd; i++) de[i] = TU_U * fabs(dd[i]);
            check_sumsq("gconv defect", got, dd, de, nd, ngen - 1);
            free(dd);
            free(de);
            /* the paper's C4 penalty rotates the kernel only: it does not
             * vanish on an exactly equivariant bank, ours does */
            assert_int_equal(eqr_gconv_export(ctx, g, eqr_rlayer_wr(l)->data, NULL), EQR_OK);
            assert_true(naive_defect(w, O, C, k, ord, lifting, gi ? 2 : 1, 0) == 0.0);
            assert_true(naive_defect(w, O, C, k, ord, lifting, 1, 1) > 1e-2);
            assert_true(tu_pen_value(eqr_relax_defect(ctx, r)) == 0.0);
            eqr_relax_destroy(r);
            eqr_gconv_destroy(g);
            eqr_rep_destroy(in);
            eqr_rep_destroy(out);
            eqr_ctx_destroy(ctx);
        }
}

/* The steerable defect ||W - P W||^2 term by term: d = W - E^T E W in
 * double with the float basis E as the layer stores it (what the layer
 * computes, before rounding), and the bound err on the float d~: the
 * coefficients c_t sum <= nt products and are rounded to float, the
 * expansion sums <= ne terms c_t e_t, the subtraction rounds:
 * err_i = gamma_{nt + ne + 3} (m_i + |d_i|), m_i = sum_t |e_ti| sum_j |e_tj w_j|. */
static void steer_defect_terms(const eqr_steer_basis *b, const float *w, int64_t n, double *d,
                               double *err) {
    const int64_t nb = eqr_steer_basis_num_elements(b);
    float *e = malloc((size_t)n * sizeof(float));
    double *m = calloc((size_t)n, sizeof(double));
    int64_t *ne = calloc((size_t)n, sizeof(int64_t)), nt = 0, nemax = 0;
    assert_true(e && m && ne);
    for (int64_t i = 0; i < n; i++) d[i] = w[i];
    for (int64_t t = 0; t < nb; t++) {
        assert_int_equal(eqr_steer_basis_sample(b, t, e), 1);
        double c = 0, cm = 0;
        int64_t cnt = 0;
        for (int64_t i = 0; i < n; i++) {
            c += (double)w[i] * e[i];
            cm += fabs((double)w[i] * e[i]);
            cnt += e[i] != 0;
        }
        if (cnt > nt) nt = cnt;
        for (int64_t i = 0; i < n; i++) {
            d[i] -= c * e[i];
            m[i] += cm * fabs(e[i]);
            ne[i] += e[i] != 0;
        }
    }
    for (int64_t i = 0; i < n; i++)
        if (ne[i] > nemax) nemax = ne[i];
    for (int64_t i = 0; i < n; i++) err[i] = tu_gamma(nt + nemax + 3) * (m[i] + fabs(d[i]));
    free(e);
    free(m);
    free(ne);
}

static void test_steer_defect(void **state) {
    (void)state;
    const eqr_group groups[3] = {eqr_group_cyclic(8), eqr_group_dihedral(4), eqr_group_so2(3)};
    for (int gi = 0; gi < 3; gi++) {
        eqr_ctx *ctx = tu_ctx(300 + gi);
        const eqr_group *G = &groups[gi];
        const int f2[2] = {0, 1}, f3[3] = {0, 1, 2};
        eqr_rep *in = tu_irreps_rep(ctx, G, 2, f2);
        eqr_rep *out = eqr_group_is_finite(G) ? tu_regular_rep(ctx, G, 1) : tu_irreps_rep(ctx, G, 3, f3);
        eqr_steer_conv *s = eqr_steer_conv_create(ctx, "s", in, out, 5, NULL);
        assert_non_null(s);
        eqr_relax *r = tu_relax(ctx, "relax", 0.5f, 1.0f, 1.0f, 0.0f, 0);
        eqr_rlayer *l = eqr_relax_steer_conv(ctx, r, "s", s, NULL);
        assert_non_null(l);
        eqr_tensor *wr = eqr_rlayer_wr(l);
        const int64_t n = wr->numel;
        double *dd = malloc((size_t)n * sizeof(double)), *de = malloc((size_t)n * sizeof(double));
        assert_true(dd && de);
        double got = tu_pen_value(eqr_relax_defect(ctx, r));
        double ww = 0;
        for (int64_t i = 0; i < n; i++) ww += (double)wr->data[i] * wr->data[i];
        steer_defect_terms(eqr_steer_conv_basis(s), wr->data, n, dd, de);
        const double ref = check_sumsq("steer defect", got, dd, de, n, 0);
        assert_int_equal(eqr_steer_conv_export(ctx, s, wr->data, NULL), EQR_OK);
        double eq = tu_pen_value(eqr_relax_defect(ctx, r)), we = 0;
        for (int64_t i = 0; i < n; i++) we += (double)wr->data[i] * wr->data[i];
        print_message("steer group %d: random defect %.6g (ref %.6g, ||W_r||^2 %.6g), "
                      "equivariant %.3g of %.6g\n", gi, got, ref, ww, eq, we);
        assert_true(got > 0.1 * ww); /* a threshold: a random W_r is far from equivariant */
        /* an exported bank: d is the float expansion's rounding as the
         * projection sees it; the same bound holds (rounding squared) */
        steer_defect_terms(eqr_steer_conv_basis(s), wr->data, n, dd, de);
        const double se = check_sumsq("steer defect, equivariant bank", eq, dd, de, n, 0);
        double ee = 0;
        for (int64_t i = 0; i < n; i++) ee += de[i] * de[i];
        assert_true(se <= ee); /* and the bank is equivariant to rounding level (float E) */
        free(dd);
        free(de);
        eqr_relax_destroy(r);
        eqr_steer_conv_destroy(s);
        eqr_rep_destroy(in);
        eqr_rep_destroy(out);
        eqr_ctx_destroy(ctx);
    }
}

/* ------------------------------------------------------------ telemetry */

static void test_stats(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(800);
    eqr_group G = eqr_group_dihedral(4);
    eqr_rep *T = tu_trivial_rep(ctx, &G, 1), *R = tu_regular_rep(ctx, &G, 1);
    eqr_gconv *g = tu_pen_gconv(ctx, "g", T, R, 3);
    eqr_relax *r = tu_relax(ctx, "relax", 0.25f, 0.5f, 1.0f, 0.0f, 0);
    eqr_rlayer *l = eqr_relax_gconv(ctx, r, "g", g, NULL);
    assert_non_null(l);
    eqr_tensor *wr = eqr_rlayer_wr(l);
    double n2 = 0;
    for (int64_t i = 0; i < wr->numel; i++) n2 += (double)wr->data[i] * wr->data[i];
    eqr_tensor *d = eqr_relax_defect(ctx, r);
    size_t used = eqr_arena_used(ctx);
    int64_t tape = eqr_tape_num_nodes(ctx);
    eqr_rlayer_stats st;
    assert_int_equal(eqr_rlayer_get_stats(ctx, l, &st), EQR_OK);
    assert_true(eqr_arena_used(ctx) == used && eqr_tape_num_nodes(ctx) == tape);
    assert_true(st.theta == 0.25f);
    /* the square root of a sum of numel squares: relatively gamma_{numel + 2} */
    assert_true(fabs(st.wr_norm - sqrt(n2)) <= tu_gamma(wr->numel + 2) * sqrt(n2));
    assert_true(st.act_norm == -1.0f);
    /* stats and the defect op against the naive defect (D4 lifting: 2
     * generators; terms rounded once, squares in double, one float add) */
    {
        const int64_t nd = 2 * wr->numel;
        double *dd = malloc((size_t)nd * sizeof(double)), *de = malloc((size_t)nd * sizeof(double));
        assert_true(dd && de);
        naive_defect_d(wr->data, 8, 1, 3, 8, 1, 2, 0, dd);
        for (int64_t i = 0; i < nd; i++) de[i] = TU_U * fabs(dd[i]);
        check_sumsq("stats defect", st.defect, dd, de, nd, 1);
        check_sumsq("defect", d->data[0], dd, de, nd, 1);
        free(dd);
        free(de);
    }
    assert_true(st.defect > 0);
    /* the penalty with lambda_norm = 0 is lambda_defect (1) * sqrt(LD): the
     * float sqrt of the float LD, one rounding */
    const float pv = (float)tu_pen_value(eqr_relax_penalty(ctx, r));
    const double sq = sqrt(d->data[0]);
    tu_assert_close_rel("defect penalty", &pv, &sq, NULL, 1, 1);
    assert_int_equal(eqr_rlayer_get_stats(ctx, NULL, &st), EQR_ERR_ARG);
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL");
    eqr_relax_destroy(r);
    eqr_gconv_destroy(g);
    eqr_rep_destroy(T);
    eqr_rep_destroy(R);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gconv_defect_zero_iff_equivariant),
        cmocka_unit_test(test_defect_matches_act_on_filters),
        cmocka_unit_test(test_steer_defect),
        cmocka_unit_test(test_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
