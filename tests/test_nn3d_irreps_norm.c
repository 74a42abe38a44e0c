/* Irreps batch norm and layer norm: forward vs a naive double reference,
 * finite-difference gradients, equivariance under random rotations and
 * parity, running statistics and evaluation mode, checkpointed buffers, and
 * the errors on bad irreps and shapes. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define H 1e-2
/* Rounded ops on the longest path into one output: the statistics sum a
 * channel over the batch (tens of values), then normalise and scale. */
#define DEPTH 128

/* Every kind of channel: centred 0e, 0o, l = 1..3 of both parities. */
static const char *IR = "3x0e+2x1o+1x0o+2x2e+1x3o+1x1e+2x0e";

static void randomise(eqr_tensor *t, uint64_t seed, float lo, float hi) {
    if (!t) return;
    tu_fill_uniform(t->data, t->numel, seed);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = lo + (hi - lo) * 0.5f * (t->data[i] + 1.0f);
}

/* x ~ 2 N(0, 1) + 3: a large mean, so a missing centring shows. */
static eqr_tensor *shifted_input(eqr_ctx *ctx, const char *name, int64_t n, int64_t dim) {
    int64_t s[2] = {n, dim};
    eqr_tensor *x = tu_input(ctx, name, 2, s, 2.0f);
    for (int64_t i = 0; i < x->numel; i++) x->data[i] += 3.0f;
    return x;
}

/* y = a (x - mu) + b at index k, and mag = |a x| + |a mu| + |b|, the size
 * the float result is rounded against. */
static void put(double *y, double *mag, const float *x, int64_t k, double a, double mu, double b) {
    y[k] = a * (x[k] - mu) + b;
    mag[k] = fabs(a * x[k]) + fabs(a * mu) + fabs(b);
}

/* Double reference of either layer. Batch norm (ln = 0): statistics per
 * channel over all rows (training) or the running buffers rm, rv; layer
 * norm (ln = 1): per row and entry, over the entry's channels. */
static void norm_ref(const eqr_irreps *ir, const float *x, int64_t rows, int ln, int training,
                     const float *w, const float *b, const float *rm, const float *rv, double eps,
                     double *y, double *mag) {
    const int64_t dim = eqr_irreps_dim(ir);
    int64_t c = 0, cb = 0; /* first channel, first 0e channel of the entry */
    for (int i = 0; i < ir->n; i++) {
        const int d = 2 * ir->e[i].l + 1, mul = ir->e[i].mul, sc = ir->e[i].l == 0 && ir->e[i].p == 1;
        const int64_t off = eqr_irreps_offset(ir, i);
        if (ln) {
            for (int64_t r = 0; r < rows; r++) {
                const float *xr = x + r * dim + off;
                double mu = 0, ss = 0, M = (double)mul * d;
                for (int k = 0; k < mul * d; k++) mu += xr[k];
                mu = sc ? mu / M : 0;
                for (int k = 0; k < mul * d; k++) ss += (xr[k] - mu) * (xr[k] - mu);
                const double is = 1.0 / sqrt(ss / M + eps);
                for (int u = 0; u < mul; u++)
                    for (int m = 0; m < d; m++)
                        put(y, mag, x, r * dim + off + u * d + m, (w ? w[c + u] : 1.0) * is, mu,
                            sc && b ? b[cb + u] : 0.0);
            }
        } else {
            for (int u = 0; u < mul; u++) {
                double mu = 0, var = 0, M = (double)rows * d;
                if (training) {
                    for (int64_t r = 0; r < rows; r++)
                        for (int m = 0; m < d; m++) mu += x[r * dim + off + u * d + m];
                    mu = sc ? mu / M : 0;
                    for (int64_t r = 0; r < rows; r++)
                        for (int m = 0; m < d; m++) var += pow(x[r * dim + off + u * d + m] - mu, 2) / M;
                } else {
                    mu = sc ? rm[cb + u] : 0;
                    var = rv[c + u];
                }
                const double a = (w ? w[c + u] : 1.0) / sqrt(var + eps);
                for (int64_t r = 0; r < rows; r++)
                    for (int m = 0; m < d; m++)
                        put(y, mag, x, r * dim + off + u * d + m, a, mu, sc && b ? b[cb + u] : 0.0);
            }
        }
        c += mul;
        cb += sc ? mul : 0;
    }
}

static eqr_irreps_bn *g_bn;
static eqr_irreps_ln *g_ln;
static eqr_tensor *f_bn(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    return eqr_irreps_bn_forward(ctx, g_bn, in[0]);
}
static eqr_tensor *f_ln(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)user;
    return eqr_irreps_ln_forward(ctx, g_ln, in[0]);
}

enum { NR = 6 };

static void test_bn_forward_and_grad(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(31);
    eqr_irreps ir;
    assert_int_equal(eqr_irreps_parse(ctx, IR, &ir), EQR_OK);
    const int64_t dim = eqr_irreps_dim(&ir);
    g_bn = eqr_irreps_bn_create(ctx, "bn", &ir, NULL);
    assert_non_null(g_bn);
    assert_int_equal(eqr_irreps_bn_training(g_bn), 1);
    assert_int_equal(eqr_irreps_bn_weight(g_bn)->numel, eqr_irreps_num_irreps(&ir));
    assert_int_equal(eqr_irreps_bn_bias(g_bn)->numel, 5);
    assert_int_equal(eqr_irreps_bn_running_mean(g_bn)->numel, 5);
    assert_int_equal(eqr_irreps_bn_running_var(g_bn)->numel, eqr_irreps_num_irreps(&ir));
    assert_true(eqr_irreps_equal(eqr_irreps_bn_irreps(g_bn), &ir));
    randomise(eqr_irreps_bn_weight(g_bn), 1, 0.5f, 1.5f);
    randomise(eqr_irreps_bn_bias(g_bn), 2, -1.0f, 1.0f);
    eqr_tensor *x = shifted_input(ctx, "x", NR, dim);
    eqr_tensor *y = eqr_irreps_bn_forward(ctx, g_bn, x);
    assert_non_null(y);
    double ref[NR * 64], mag[NR * 64];
    norm_ref(&ir, x->data, NR, 0, 1, eqr_irreps_bn_weight(g_bn)->data, eqr_irreps_bn_bias(g_bn)->data,
             NULL, NULL, (double)1e-5f, ref, mag);
    /* statistics in double; then float roundings of istd, a = w istd, the
     * mean, a * mean, b - a mean, a x and the sum: 7 relative errors of
     * size u on the terms of mag */
    tu_assert_close_bound("bn forward", y->data, ref, mag, NR * dim, 7, 1);
    /* all leading axes are batch axes: [2, 3, dim] is the same as [6, dim] */
    int64_t s3[3] = {2, 3, dim};
    eqr_tensor *x3 = eqr_tensor_from(ctx, 3, s3, x->data);
    eqr_tensor *y3 = eqr_irreps_bn_forward(ctx, g_bn, x3);
    assert_non_null(y3);
    assert_memory_equal(y3->data, y->data, sizeof(float) * (size_t)y->numel);
    /* the normalised batch: 0e channels mean b and variance w^2 (checked
     * through the reference above); l > 0 channels are not centred */
    eqr_tensor *in[3] = {x, eqr_irreps_bn_weight(g_bn), eqr_irreps_bn_bias(g_bn)};
    tu_gradcheck(ctx, f_bn, in, 3, NULL, H, DEPTH);
    /* evaluation mode: random running statistics, gradient of the affine map */
    eqr_irreps_bn_set_training(g_bn, 0);
    randomise(eqr_irreps_bn_running_mean(g_bn), 3, -2.0f, 2.0f);
    randomise(eqr_irreps_bn_running_var(g_bn), 4, 0.5f, 3.0f);
    tu_gradcheck(ctx, f_bn, in, 3, NULL, H, DEPTH);
    eqr_irreps_bn_destroy(g_bn);
    eqr_ctx_destroy(ctx);
}

static void test_ln_forward_and_grad(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(32);
    eqr_irreps ir;
    assert_int_equal(eqr_irreps_parse(ctx, IR, &ir), EQR_OK);
    const int64_t dim = eqr_irreps_dim(&ir);
    eqr_irreps_norm_opts o = {1e-3f, 0, 0};
    g_ln = eqr_irreps_ln_create(ctx, "ln", &ir, &o);
    assert_non_null(g_ln);
    assert_int_equal(eqr_irreps_ln_weight(g_ln)->numel, eqr_irreps_num_irreps(&ir));
    assert_int_equal(eqr_irreps_ln_bias(g_ln)->numel, 5);
    randomise(eqr_irreps_ln_weight(g_ln), 5, 0.5f, 1.5f);
    randomise(eqr_irreps_ln_bias(g_ln), 6, -1.0f, 1.0f);
    eqr_tensor *x = shifted_input(ctx, "x", NR, dim);
    eqr_tensor *y = eqr_irreps_ln_forward(ctx, g_ln, x);
    assert_non_null(y);
    double ref[NR * 64], mag[NR * 64];
    norm_ref(&ir, x->data, NR, 1, 1, eqr_irreps_ln_weight(g_ln)->data, eqr_irreps_ln_bias(g_ln)->data,
             NULL, NULL, (double)1e-3f, ref, mag);
    /* computed in double and rounded once: u |ref| plus double rounding */
    tu_assert_close_bound("ln forward", y->data, ref, mag, NR * dim, 1, 1);
    eqr_tensor *in[3] = {x, eqr_irreps_ln_weight(g_ln), eqr_irreps_ln_bias(g_ln)};
    tu_gradcheck(ctx, f_ln, in, 3, NULL, H, DEPTH);
    eqr_irreps_ln_destroy(g_ln);
    /* no affine: no parameters. eps 1e-3 again: the last entry has two
     * scalars, close in one row, where a smaller eps makes the function too
     * curved for finite differences with step H */
    eqr_irreps_norm_opts na = {1e-3f, 0, 1};
    g_ln = eqr_irreps_ln_create(ctx, "ln2", &ir, &na);
    assert_non_null(g_ln);
    assert_null(eqr_irreps_ln_weight(g_ln));
    assert_null(eqr_irreps_ln_bias(g_ln));
    assert_null(eqr_param_find(ctx, "ln2.weight"));
    y = eqr_irreps_ln_forward(ctx, g_ln, x);
    norm_ref(&ir, x->data, NR, 1, 1, NULL, NULL, NULL, NULL, (double)1e-3f, ref, mag);
    tu_assert_close_bound("ln forward, no affine", y->data, ref, mag, NR * dim, 1, 1);
    tu_gradcheck(ctx, f_ln, in, 1, NULL, H, DEPTH);
    eqr_irreps_ln_destroy(g_ln);
    eqr_ctx_destroy(ctx);
}

/* ---- equivariance through the public measurement ---- */

typedef struct { eqr_irreps_bn *bn; eqr_irreps_ln *ln; } norm_model;
static eqr_tensor *f_model(eqr_ctx *ctx, eqr_tensor *x, eqr_tensor *pos, void *user) {
    (void)pos;
    norm_model *m = user;
    return m->bn ? eqr_irreps_bn_forward(ctx, m->bn, x) : eqr_irreps_ln_forward(ctx, m->ln, x);
}

static void test_equivariance(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(33);
    eqr_irreps ir;
    assert_int_equal(eqr_irreps_parse(ctx, IR, &ir), EQR_OK);
    const int64_t dim = eqr_irreps_dim(&ir);
    eqr_tensor *x = shifted_input(ctx, "x", 7, dim);
    /* Both sides round the action once per component (it sums in double),
     * and the statistics see inputs perturbed by u relative, so istd moves
     * by <= u + its own rounding; then a = w istd, a x and (0e) the shift
     * round once each (0e channels are acted on by exactly 1, so they match
     * bit for bit). Per component <= 8 u relative on each side, 16 u for
     * the difference; as a norm ratio the same bound holds. */
    const double tol = 16 * TU_U;
    double rel = -1;
    norm_model m = {eqr_irreps_bn_create(ctx, "bn", &ir, NULL), NULL};
    assert_non_null(m.bn);
    randomise(eqr_irreps_bn_weight(m.bn), 7, 0.5f, 1.5f);
    randomise(eqr_irreps_bn_bias(m.bn), 8, -1.0f, 1.0f);
    assert_int_equal(eqr_irreps_equivariance(ctx, f_model, &m, &ir, &ir, x, NULL, 8, EQR_EQ_PARITY, &rel),
                     EQR_OK);
    assert_true(rel >= 0 && rel <= tol);
    eqr_irreps_bn_set_training(m.bn, 0);
    randomise(eqr_irreps_bn_running_mean(m.bn), 9, -2.0f, 2.0f);
    randomise(eqr_irreps_bn_running_var(m.bn), 10, 0.5f, 3.0f);
    assert_int_equal(eqr_irreps_equivariance(ctx, f_model, &m, &ir, &ir, x, NULL, 8, EQR_EQ_PARITY, &rel),
                     EQR_OK);
    assert_true(rel >= 0 && rel <= tol);
    eqr_irreps_bn_destroy(m.bn);
    m.bn = NULL;
    m.ln = eqr_irreps_ln_create(ctx, "ln", &ir, NULL);
    randomise(eqr_irreps_ln_weight(m.ln), 11, 0.5f, 1.5f);
    randomise(eqr_irreps_ln_bias(m.ln), 12, -1.0f, 1.0f);
    assert_int_equal(eqr_irreps_equivariance(ctx, f_model, &m, &ir, &ir, x, NULL, 8, EQR_EQ_PARITY, &rel),
                     EQR_OK);
    assert_true(rel >= 0 && rel <= tol);
    eqr_irreps_ln_destroy(m.ln);
    /* the measurement catches the wrong split: a layer norm that takes a
     * vector 1x1o for three scalars centres it and shifts it by a bias */
    eqr_irreps vec, three;
    assert_int_equal(eqr_irreps_parse(ctx, "1x1o+2x0e", &vec), EQR_OK);
    assert_int_equal(eqr_irreps_parse(ctx, "5x0e", &three), EQR_OK);
    m.ln = eqr_irreps_ln_create(ctx, "ln_wrong", &three, NULL);
    randomise(eqr_irreps_ln_bias(m.ln), 13, -1.0f, 1.0f);
    eqr_tensor *xv = shifted_input(ctx, "xv", 7, 5);
    assert_int_equal(eqr_irreps_equivariance(ctx, f_model, &m, &vec, &vec, xv, NULL, 8, EQR_EQ_PARITY, &rel),
                     EQR_OK);
    assert_true(rel > 1e-2);
    eqr_irreps_ln_destroy(m.ln);
    eqr_ctx_destroy(ctx);
}

/* ---- running statistics, evaluation, checkpoint ---- */

static void test_running_stats(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(34);
    eqr_irreps ir;
    assert_int_equal(eqr_irreps_parse(ctx, IR, &ir), EQR_OK);
    const int64_t dim = eqr_irreps_dim(&ir), C = eqr_irreps_num_irreps(&ir);
    const double mom = 0.25;
    eqr_irreps_norm_opts o = {1e-4f, 0.25f, 0};
    eqr_irreps_bn *bn = eqr_irreps_bn_create(ctx, "bn", &ir, &o);
    assert_non_null(bn);
    randomise(eqr_irreps_bn_weight(bn), 14, 0.5f, 1.5f);
    randomise(eqr_irreps_bn_bias(bn), 15, -1.0f, 1.0f);
    double rm[64], rv[64], mx = 0;
    for (int i = 0; i < 64; i++) rm[i] = 0, rv[i] = 1;
    enum { T = 4 };
    eqr_grad_set_enabled(ctx, 0);
    for (int t = 0; t < T; t++) {
        int64_t s[2] = {5, dim};
        eqr_tensor *x = eqr_tensor_zeros(ctx, 2, s);
        tu_fill_uniform(x->data, x->numel, 40 + (uint64_t)t);
        for (int64_t i = 0; i < x->numel; i++) x->data[i] = 3.0f * x->data[i] + 1.0f + (float)t;
        assert_non_null(eqr_irreps_bn_forward(ctx, bn, x));
        /* reference update: 0e unbiased variance, others the mean square */
        int64_t c = 0, cb = 0;
        for (int i = 0; i < ir.n; i++) {
            const int d = 2 * ir.e[i].l + 1, sc = ir.e[i].l == 0 && ir.e[i].p == 1;
            for (int u = 0; u < ir.e[i].mul; u++, c++) {
                const int64_t off = eqr_irreps_offset(&ir, i) + u * d;
                double mu = 0, ss = 0, M = 5.0 * d;
                for (int r = 0; r < 5; r++)
                    for (int m = 0; m < d; m++) mu += x->data[r * dim + off + m];
                mu = sc ? mu / M : 0;
                for (int r = 0; r < 5; r++)
                    for (int m = 0; m < d; m++) ss += pow(x->data[r * dim + off + m] - mu, 2);
                if (sc) {
                    rm[cb] = (1 - mom) * rm[cb] + mom * mu;
                    rv[c] = (1 - mom) * rv[c] + mom * ss / (M - 1);
                    cb++;
                } else {
                    rv[c] = (1 - mom) * rv[c] + mom * ss / M;
                }
            }
        }
        eqr_step_reset(ctx);
    }
    for (int i = 0; i < C; i++) mx = fmax(mx, fmax(fabs(rm[i]), rv[i]));
    /* each update rounds its result once (computed in double from the float
     * buffer); earlier roundings shrink by 1 - momentum: <= T u max|r| */
    tu_assert_close("running_mean", eqr_irreps_bn_running_mean(bn)->data, rm, 5, (T + 1) * TU_U * mx, 0);
    tu_assert_close("running_var", eqr_irreps_bn_running_var(bn)->data, rv, C, (T + 1) * TU_U * mx, 0);
    /* evaluation: the running statistics normalise, and stay untouched */
    eqr_irreps_bn_set_training(bn, 0);
    assert_int_equal(eqr_irreps_bn_training(bn), 0);
    float keep_m[64], keep_v[64];
    memcpy(keep_m, eqr_irreps_bn_running_mean(bn)->data, 5 * sizeof(float));
    memcpy(keep_v, eqr_irreps_bn_running_var(bn)->data, (size_t)C * sizeof(float));
    int64_t s1[2] = {1, dim}; /* one row is fine in evaluation */
    eqr_tensor *x = eqr_tensor_zeros(ctx, 2, s1);
    tu_fill_uniform(x->data, x->numel, 50);
    eqr_tensor *y = eqr_irreps_bn_forward(ctx, bn, x);
    assert_non_null(y);
    double ref[64], mag[64];
    norm_ref(&ir, x->data, 1, 0, 0, eqr_irreps_bn_weight(bn)->data, eqr_irreps_bn_bias(bn)->data,
             keep_m, keep_v, (double)1e-4f, ref, mag);
    tu_assert_close_bound("bn eval", y->data, ref, mag, dim, 7, 1);
    assert_memory_equal(keep_m, eqr_irreps_bn_running_mean(bn)->data, 5 * sizeof(float));
    assert_memory_equal(keep_v, eqr_irreps_bn_running_var(bn)->data, (size_t)C * sizeof(float));
    /* the buffers are checkpointed: save, spoil, load gives them back */
    char path[512];
    tu_tmp_path(path, "irreps_bn.ckpt");
    assert_int_equal(eqr_checkpoint_save(ctx, path, NULL, NULL, 0), EQR_OK);
    eqr_tensor_fill(eqr_irreps_bn_running_mean(bn), 7.0f);
    eqr_tensor_fill(eqr_irreps_bn_running_var(bn), 9.0f);
    assert_int_equal(eqr_checkpoint_load(ctx, path, NULL, NULL, 0), EQR_OK);
    assert_memory_equal(keep_m, eqr_irreps_bn_running_mean(bn)->data, 5 * sizeof(float));
    assert_memory_equal(keep_v, eqr_irreps_bn_running_var(bn)->data, (size_t)C * sizeof(float));
    remove(path);
    /* and flagged as buffers (no gradient, no optimizer step) */
    for (int i = 0; i < eqr_param_num_tensors(ctx); i++) {
        const char *nm = eqr_param_name(ctx, i);
        int buf = !strcmp(nm, "bn.running_mean") || !strcmp(nm, "bn.running_var");
        assert_int_equal(!!(eqr_param_flags(ctx, i) & EQR_PARAM_BUFFER), buf);
    }
    eqr_irreps_bn_destroy(bn);
    eqr_ctx_destroy(ctx);
}

static void test_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(35);
    eqr_irreps ir, empty, bad;
    assert_int_equal(eqr_irreps_parse(ctx, "2x0e+1x1o", &ir), EQR_OK);
    assert_int_equal(eqr_irreps_parse(ctx, "", &empty), EQR_OK);
    bad = ir;
    bad.e[1].p = 0;
    assert_null(eqr_irreps_bn_create(ctx, "bn", &bad, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "irreps entry 1 is mul 1, l 1, p 0");
    bad = ir;
    bad.e[0].l = EQR_O3_LMAX + 1;
    assert_null(eqr_irreps_ln_create(ctx, "ln", &bad, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "eqr_irreps_ln_create: irreps entry 0");
    assert_null(eqr_irreps_bn_create(ctx, "bn", &empty, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "empty irreps");
    assert_null(eqr_irreps_ln_create(ctx, "ln", NULL, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL irreps");
    assert_null(eqr_irreps_bn_create(ctx, "", &ir, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "name");
    eqr_irreps_norm_opts o = {0, 1.5f, 0};
    assert_null(eqr_irreps_bn_create(ctx, "bn", &ir, &o));
    tu_assert_error(ctx, EQR_ERR_ARG, "momentum in (0, 1]");
    assert_int_equal(eqr_param_num_tensors(ctx), 0); /* nothing registered by a failed create */
    eqr_irreps_bn *bn = eqr_irreps_bn_create(ctx, "bn", &ir, NULL);
    eqr_irreps_ln *ln = eqr_irreps_ln_create(ctx, "ln", &ir, NULL);
    assert_non_null(bn);
    assert_non_null(ln);
    int np = eqr_param_num_tensors(ctx);
    assert_null(eqr_irreps_bn_create(ctx, "bn", &ir, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "'bn.running_var' already exists");
    assert_null(eqr_irreps_ln_create(ctx, "ln", &ir, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "'ln.weight' already exists");
    assert_int_equal(eqr_param_num_tensors(ctx), np);
    /* x not ending in dim(irreps): names the irreps */
    int64_t s[2] = {4, 6};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 2, s);
    assert_null(eqr_irreps_bn_forward(ctx, bn, x));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "must end in 5, the dim of the layer's irreps 2x0e+1x1o");
    assert_null(eqr_irreps_ln_forward(ctx, ln, x));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "must end in 5, the dim of the layer's irreps 2x0e+1x1o");
    /* training batch norm with 0e channels on one row */
    int64_t s1[2] = {1, 5};
    eqr_tensor *x1 = eqr_tensor_zeros(ctx, 2, s1);
    assert_null(eqr_irreps_bn_forward(ctx, bn, x1));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "more than one with 0e channels");
    /* ... but one row is fine without 0e channels, and in evaluation */
    eqr_irreps vo;
    assert_int_equal(eqr_irreps_parse(ctx, "1x0o+1x1o+1x0e", &vo), EQR_OK);
    vo.n = 2;
    eqr_irreps_bn *bv = eqr_irreps_bn_create(ctx, "bv", &vo, NULL);
    assert_null(eqr_irreps_bn_bias(bv));
    assert_null(eqr_irreps_bn_running_mean(bv));
    int64_t s4[2] = {1, 4};
    assert_non_null(eqr_irreps_bn_forward(ctx, bv, eqr_tensor_zeros(ctx, 2, s4)));
    int64_t s0[2] = {0, 4}; /* no rows: no batch statistics */
    float keep = eqr_irreps_bn_running_var(bv)->data[0];
    assert_null(eqr_irreps_bn_forward(ctx, bv, eqr_tensor_zeros(ctx, 2, s0)));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "training needs a row");
    assert_true(eqr_irreps_bn_running_var(bv)->data[0] == keep);
    eqr_irreps_bn_set_training(bn, 0);
    assert_non_null(eqr_irreps_bn_forward(ctx, bn, x1));
    assert_null(eqr_irreps_bn_forward(ctx, NULL, x1));
    tu_assert_error(ctx, EQR_ERR_ARG, "NULL layer");
    eqr_irreps_bn_destroy(bv);
    eqr_irreps_bn_destroy(bn);
    eqr_irreps_ln_destroy(ln);
    eqr_irreps_bn_destroy(NULL);
    eqr_irreps_ln_destroy(NULL);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bn_forward_and_grad), cmocka_unit_test(test_ln_forward_and_grad),
        cmocka_unit_test(test_equivariance), cmocka_unit_test(test_running_stats),
        cmocka_unit_test(test_errors)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
