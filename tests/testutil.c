#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

eqr_ctx *tu_ctx(uint64_t seed) {
    eqr_ctx_opts o = {0};
    o.seed = seed;
    o.arena_bytes = 1 << 20;
    eqr_ctx *ctx = eqr_ctx_create(&o);
    assert_non_null(ctx);
    return ctx;
}

eqr_tensor *tu_input(eqr_ctx *ctx, const char *name, int ndim, const int64_t *shape, float std) {
    eqr_tensor *t = eqr_param_create(ctx, name, ndim, shape, 0);
    if (!t) fail_msg("tu_input(%s): %s", name, eqr_error_message(ctx));
    eqr_tensor_normal(t, eqr_ctx_rng(ctx), std);
    return t;
}

void tu_fill_uniform(float *p, int64_t n, uint64_t seed) {
    eqr_rng rng;
    eqr_rng_seed(&rng, seed);
    for (int64_t i = 0; i < n; i++) p[i] = 2.0f * eqr_rng_uniform(&rng) - 1.0f;
}

void tu_backward_ones(eqr_ctx *ctx, eqr_tensor *y) {
    assert_non_null(y);
    eqr_tensor *ones = eqr_tensor_zeros(ctx, y->ndim, y->shape);
    assert_non_null(ones);
    eqr_tensor_fill(ones, 1.0f);
    if (eqr_backward_from(ctx, y, ones) != EQR_OK)
        fail_msg("backward from ones failed: %s", eqr_error_message(ctx));
}

void tu_assert_close(const char *what, const float *got, const double *ref, int64_t n,
                     double atol, double rtol) {
    for (int64_t i = 0; i < n; i++) {
        double a = got[i], b = ref[i];
        double tol = atol + rtol * fmax(fabs(a), fabs(b));
        if (!(fabs(a - b) <= tol))
            fail_msg("%s: element %lld: got %.8g, expected %.8g (tol %.3g)", what, (long long)i, a,
                     b, tol);
    }
}

double tu_gamma(int64_t n) {
    double nu = (double)n * TU_U;
    assert_true(nu < 1.0);
    return nu / (1.0 - nu);
}

void tu_assert_close_bound(const char *what, const float *got, const double *ref, const double *mag,
                           int64_t n, int64_t nsum, double c) {
    const double g = c * tu_gamma(nsum);
    for (int64_t i = 0; i < n; i++) {
        double a = got[i], b = ref[i];
        double tol = g * mag[i] + TU_U * fabs(b) + FLT_MIN;
        if (!(fabs(a - b) <= tol))
            fail_msg("%s: element %lld: got %.8g, expected %.8g (bound %.3g = %g * gamma_%lld * mag %.4g"
                     " + u|ref|)",
                     what, (long long)i, a, b, tol, c, (long long)nsum, mag[i]);
    }
}

void tu_assert_close_rel(const char *what, const float *got, const double *ref, const double *mag,
                         int64_t n, double c) {
    for (int64_t i = 0; i < n; i++) {
        double a = got[i], b = ref[i], m = mag ? mag[i] : 0;
        double tol = c * TU_U * (fabs(b) + m) + FLT_MIN;
        if (!(fabs(a - b) <= tol))
            fail_msg("%s: element %lld: got %.8g, expected %.8g (bound %.3g = %g u (|ref| + %.4g))",
                     what, (long long)i, a, b, tol, c, m);
    }
}

/* sum(f(in) * r) over the n outputs, with gradients on (record) or off; the
 * outputs are copied to out (n floats). */
static double objective(eqr_ctx *ctx, tu_fn f, eqr_tensor **in, void *user, const float *r,
                        int64_t n, int record, float *out) {
    int prev = eqr_grad_set_enabled(ctx, record);
    eqr_tensor *y = f(ctx, in, user);
    eqr_grad_set_enabled(ctx, prev);
    if (!y) fail_msg("gradcheck forward failed: %s", eqr_error_message(ctx));
    if (y->numel != n)
        fail_msg("gradcheck: output size changed (%lld, was %lld)", (long long)y->numel,
                 (long long)n);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)y->data[i] * r[i]; /* products exact in double */
    memcpy(out, y->data, (size_t)n * sizeof(float));
    eqr_step_reset(ctx);
    return s;
}

/* One central difference at x[i] with step h: the quotient over the step
 * actually taken (the float values x0 +- h, whose difference is exact in
 * double), and its forward-rounding bound R (see testutil.h). yp/ym receive
 * the outputs; g1 (may be NULL) gets sum_j |r_j (yp_j - ym_j)| / step. */
static double central(eqr_ctx *ctx, tu_fn f, eqr_tensor **in, void *user, const float *r,
                      int64_t n, int record, eqr_tensor *x, int64_t i, double h, double depth,
                      double scale, float *yp, float *ym, double *R, double *g1) {
    float x0 = x->data[i];
    float xp = (float)(x0 + h), xm = (float)(x0 - h);
    x->data[i] = xp;
    double lp = objective(ctx, f, in, user, r, n, record, yp);
    x->data[i] = xm;
    double lm = objective(ctx, f, in, user, r, n, record, ym);
    x->data[i] = x0;
    double step = (double)xp - (double)xm;
    double rs = 0, ga = 0;
    for (int64_t j = 0; j < n; j++) {
        if (yp[j] == ym[j]) continue; /* bit-equal outputs add nothing to lp - lm */
        double s = fmax(scale, fmax(fabsf(yp[j]), fabsf(ym[j])));
        rs += fabs((double)r[j]) * s;
        ga += fabs((double)r[j] * ((double)yp[j] - ym[j]));
    }
    *R = 2.0 * depth * TU_U * rs / step;
    if (g1) *g1 = ga / step;
    return (lp - lm) / step;
}

/* The central-difference check behind tu_gradcheck (record = 0: weights
 * N(0, 1) from seed 12345, inputs without a gradient skipped) and
 * tu_gradcheck_recorded (record = 1: weights from tu_fill_uniform(seed),
 * every input must have a gradient). Tolerance: testutil.h. */
static void gradcheck(eqr_ctx *ctx, tu_fn f, eqr_tensor **in, int nin, void *user, int record,
                      uint64_t seed, double h, double depth) {
    assert_true(h > 0 && depth >= 1);
    eqr_grad_zero(ctx);
    eqr_step_reset(ctx);
    eqr_tensor *y = f(ctx, in, user);
    if (!y) fail_msg("gradcheck forward failed: %s", eqr_error_message(ctx));
    int64_t n = y->numel;
    double scale = 0; /* the outputs' scale: max |y| at the unperturbed inputs */
    for (int64_t j = 0; j < n; j++) scale = fmax(scale, fabsf(y->data[j]));
    float *r = malloc((size_t)(n ? n : 1) * sizeof(float) * 3);
    assert_non_null(r);
    float *yp = r + n, *ym = r + 2 * n;
    if (record) {
        tu_fill_uniform(r, n, seed);
    } else {
        eqr_rng rng;
        eqr_rng_seed(&rng, 12345);
        for (int64_t i = 0; i < n; i++) r[i] = eqr_rng_normal(&rng);
    }
    eqr_tensor *rt = eqr_tensor_from(ctx, y->ndim, y->shape, r);
    assert_non_null(rt);
    if (eqr_backward_from(ctx, y, rt) != EQR_OK)
        fail_msg("gradcheck backward failed: %s", eqr_error_message(ctx));
    eqr_step_reset(ctx);
    for (int k = 0; k < nin; k++) {
        eqr_tensor *x = in[k];
        if (!x->grad) {
            if (record) fail_msg("gradcheck: input %d has no gradient", k);
            continue; /* not differentiable input (buffer/frozen) */
        }
        /* the analytic gradient, kept apart from the forwards below */
        float *ana = malloc((size_t)x->numel * sizeof(float));
        assert_non_null(ana);
        memcpy(ana, x->grad, (size_t)x->numel * sizeof(float));
        /* a single gradient term r_j dy_j/dx is taken to be at most
         * rmax * scale / xscale (outputs over inputs), for terms that cancel
         * in the total (x - x, x / x) */
        double xscale = h, rmax = 0;
        for (int64_t i = 0; i < x->numel; i++) xscale = fmax(xscale, fabsf(x->data[i]));
        for (int64_t j = 0; j < n; j++) rmax = fmax(rmax, fabsf(r[j]));
        const double term = rmax * scale / xscale;
        for (int64_t i = 0; i < x->numel; i++) {
            double R1, R2, gmag;
            double d1 = central(ctx, f, in, user, r, n, record, x, i, h, depth, scale, yp, ym, &R1,
                                &gmag);
            double d2 = central(ctx, f, in, user, r, n, record, x, i, 2 * h, depth, scale, yp, ym,
                                &R2, NULL);
            double T = fabs(d2 - d1), A = depth * TU_U * (fmax(gmag, fabs(ana[i])) + term);
            double tol = T + 2.0 * (R1 + R2) + A;
            if (!(fabs(d1 - ana[i]) <= tol))
                fail_msg("gradcheck%s: input %d element %lld: analytic %.8g, numeric %.8g (tol %.3g ="
                         " trunc %.3g + round 2*(%.3g + %.3g) + analytic %.3g; h %g, depth %g)",
                         record ? " (recorded)" : "", k, (long long)i, (double)ana[i], d1, tol, T,
                         R1, R2, A, h, depth);
        }
        free(ana);
    }
    free(r);
    if (eqr_error_status(ctx) != EQR_OK) fail_msg("gradcheck: context error: %s", eqr_error_message(ctx));
}

void tu_gradcheck(eqr_ctx *ctx, tu_fn f, eqr_tensor **in, int nin, void *user, double h,
                  double depth) {
    gradcheck(ctx, f, in, nin, user, 0, 0, h, depth);
}

void tu_gradcheck_recorded(eqr_ctx *ctx, tu_fn f, eqr_tensor **in, int nin, void *user,
                           uint64_t seed, double h, double depth) {
    gradcheck(ctx, f, in, nin, user, 1, seed, h, depth);
}

void tu_assert_error(eqr_ctx *ctx, eqr_status st, const char *needle) {
    if (eqr_error_status(ctx) != st)
        fail_msg("expected status %s, got %s (%s)", eqr_status_name(st),
                 eqr_status_name(eqr_error_status(ctx)), eqr_error_message(ctx));
    const char *msg = eqr_error_message(ctx);
    assert_true(msg[0] != '\0');
    if (needle && !strstr(msg, needle)) fail_msg("message '%s' lacks '%s'", msg, needle);
    eqr_error_clear(ctx);
}

char *tu_tmp_path(char *buf, const char *name) {
    const char *dir = getenv("EQR_TEST_TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    snprintf(buf, 512, "%s/eqr_%ld_%s", dir, (long)getpid(), name);
    return buf;
}

eqr_group tu_small_group(int i) {
    switch (i) {
    case 0: return eqr_group_cyclic(1);
    case 1: return eqr_group_cyclic(2);
    case 2: return eqr_group_cyclic(4);
    case 3: return eqr_group_dihedral(1);
    case 4: return eqr_group_dihedral(2);
    default: return eqr_group_dihedral(4);
    }
}

eqr_rep *tu_trivial_rep(eqr_ctx *ctx, const eqr_group *G, int c) {
    eqr_rep_part p = eqr_part_irrep(eqr_irrep_of(G, 0, 0), c);
    eqr_rep *r = eqr_rep_create(ctx, G, 1, &p);
    if (!r) fail_msg("tu_trivial_rep: %s", eqr_error_message(ctx));
    return r;
}

eqr_rep *tu_regular_rep(eqr_ctx *ctx, const eqr_group *G, int f) {
    eqr_rep_part p = eqr_part_regular(f);
    eqr_rep *r = eqr_rep_create(ctx, G, 1, &p);
    if (!r) fail_msg("tu_regular_rep: %s", eqr_error_message(ctx));
    return r;
}

eqr_rep *tu_irreps_rep(eqr_ctx *ctx, const eqr_group *G, int n, const int *freqs) {
    eqr_rep_part p[4];
    assert_true(n >= 1 && n <= 4);
    for (int i = 0; i < n; i++) p[i] = eqr_part_irrep(eqr_irrep_of(G, 0, freqs[i]), 1);
    eqr_rep *r = eqr_rep_create(ctx, G, n, p);
    if (!r) fail_msg("tu_irreps_rep: %s", eqr_error_message(ctx));
    return r;
}

eqr_tensor *tu_randn(eqr_ctx *ctx, int n, int c, int h, int w) {
    int64_t s[4] = {n, c, h, w};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, s);
    assert_non_null(x);
    eqr_tensor_normal(x, eqr_ctx_rng(ctx), 1.0f);
    return x;
}

eqr_gconv *tu_gconv(eqr_ctx *ctx, const char *name, const eqr_rep *in, const eqr_rep *out, int k,
                    eqr_conv2d_geom geom, float bias_std) {
    eqr_gconv_opts o = {0};
    o.geom = geom;
    eqr_gconv *L = eqr_gconv_create(ctx, name, in, out, k, &o);
    if (!L) fail_msg("eqr_gconv_create(%s): %s", name, eqr_error_message(ctx));
    /* a random bias, so that it takes part in what is checked */
    eqr_tensor *b = eqr_gconv_bias(L);
    if (b && bias_std > 0) eqr_tensor_normal(b, eqr_ctx_rng(ctx), bias_std);
    return L;
}

eqr_relax *tu_relax(eqr_ctx *ctx, const char *name, float theta, float std, float lambda_defect,
                    float lambda_norm, int norm_subsample) {
    eqr_relax_opts o = {0};
    o.theta = theta;
    o.init = std > 0 ? EQR_RELAX_INIT_NORMAL : EQR_RELAX_INIT_ZERO;
    o.init_std = std;
    o.lambda_defect = lambda_defect;
    o.lambda_norm = lambda_norm;
    o.norm_subsample = norm_subsample;
    eqr_relax *r = eqr_relax_create(ctx, name, &o);
    if (!r) fail_msg("tu_relax(%s): %s", name, eqr_error_message(ctx));
    return r;
}

eqr_tensor *tu_rlayer_forward(eqr_ctx *ctx, void *layer, eqr_tensor *x) {
    return eqr_rlayer_forward(ctx, (eqr_rlayer *)layer, x);
}

eqr_tensor *tu_rlayer_fn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    return eqr_rlayer_forward(ctx, (eqr_rlayer *)user, in[0]);
}

double tu_equiv_bound(int64_t depth, double amp) {
    return sqrt(3.0) * tu_gamma(3) * (amp + 1) + 2 * amp * tu_gamma(depth);
}

double tu_so3_equiv_err(eqr_ctx *ctx, eqr_forward_fn f, void *model, eqr_tensor *x, int nrot,
                        int invariant) {
    double worst = 0;
    for (int t = 0; t < nrot; t++) {
        float R[9];
        eqr_so3_random(eqr_ctx_rng(ctx), R, NULL);
        eqr_tensor *y = f(ctx, model, x);
        eqr_tensor *yr = f(ctx, model, eqr_so3_rotate(ctx, R, x, 2));
        if (!y || !yr) fail_msg("forward failed: %s", eqr_error_message(ctx));
        eqr_tensor *ry = invariant ? y : eqr_so3_rotate(ctx, R, y, 2);
        if (!ry) fail_msg("rotate failed: %s", eqr_error_message(ctx));
        double num = 0, den = 0;
        for (int64_t i = 0; i < y->numel; i++) {
            num += pow((double)yr->data[i] - ry->data[i], 2);
            den += (double)y->data[i] * y->data[i];
        }
        assert_true(den > 0);
        worst = fmax(worst, sqrt(num / den));
        eqr_step_reset(ctx);
    }
    return worst;
}
