#include "testutil.h"

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
    eqr_tensor *t = eqr_param_new(ctx, name, ndim, shape, 0);
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

static double objective(eqr_ctx *ctx, tu_fn f, eqr_tensor **in, void *user, const float *r,
                        int64_t *n_out) {
    int prev = eqr_set_grad_enabled(ctx, 0);
    eqr_tensor *y = f(ctx, in, user);
    eqr_set_grad_enabled(ctx, prev);
    if (!y) fail_msg("gradcheck forward failed: %s", eqr_error_message(ctx));
    double s = 0;
    for (int64_t i = 0; i < y->numel; i++) s += (double)y->data[i] * r[i];
    if (n_out) *n_out = y->numel;
    eqr_step_reset(ctx);
    return s;
}

void tu_gradcheck(eqr_ctx *ctx, tu_fn f, eqr_tensor **in, int nin, void *user, double h,
                  double atol, double rtol) {
    eqr_zero_grad(ctx);
    eqr_step_reset(ctx);
    eqr_tensor *y = f(ctx, in, user);
    if (!y) fail_msg("gradcheck forward failed: %s", eqr_error_message(ctx));
    int64_t n = y->numel;
    float *r = malloc((size_t)n * sizeof(float));
    assert_non_null(r);
    eqr_rng rng;
    eqr_rng_seed(&rng, 12345);
    for (int64_t i = 0; i < n; i++) r[i] = eqr_rng_normal(&rng);
    eqr_tensor *seed = eqr_tensor_from(ctx, y->ndim, y->shape, r);
    assert_non_null(seed);
    if (eqr_backward_from(ctx, y, seed) != EQR_OK)
        fail_msg("gradcheck backward failed: %s", eqr_error_message(ctx));
    eqr_step_reset(ctx);
    for (int k = 0; k < nin; k++) {
        eqr_tensor *x = in[k];
        if (!x->grad) continue; /* not differentiable input (buffer/frozen) */
        for (int64_t i = 0; i < x->numel; i++) {
            float x0 = x->data[i];
            x->data[i] = (float)(x0 + h);
            double lp = objective(ctx, f, in, user, r, NULL);
            x->data[i] = (float)(x0 - h);
            double lm = objective(ctx, f, in, user, r, NULL);
            x->data[i] = x0;
            double num = (lp - lm) / (2 * h);
            double ana = x->grad[i];
            double tol = atol + rtol * fmax(fabs(num), fabs(ana));
            if (!(fabs(num - ana) <= tol))
                fail_msg("gradcheck: input %d element %lld: analytic %.8g, numeric %.8g (tol %.3g)",
                         k, (long long)i, ana, num, tol);
        }
    }
    free(r);
    if (eqr_status_get(ctx) != EQR_OK) fail_msg("gradcheck: context error: %s", eqr_error_message(ctx));
}

void tu_assert_error(eqr_ctx *ctx, eqr_status st, const char *needle) {
    if (eqr_status_get(ctx) != st)
        fail_msg("expected status %s, got %s (%s)", eqr_status_name(st),
                 eqr_status_name(eqr_status_get(ctx)), eqr_error_message(ctx));
    const char *msg = eqr_error_message(ctx);
    assert_true(msg[0] != '\0');
    if (needle && !strstr(msg, needle)) fail_msg("message '%s' lacks '%s'", msg, needle);
    eqr_clear_error(ctx);
}

char *tu_tmp_path(char *buf, const char *name) {
    const char *dir = getenv("EQR_TEST_TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    snprintf(buf, 512, "%s/eqr_%ld_%s", dir, (long)getpid(), name);
    return buf;
}
