/* Ops: max/avg pooling and global average pooling against naive double
 * references (padding never wins a max and is not counted in an average),
 * gradients against reference gradients and finite differences, one vs two
 * threads, and argument errors. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct pool_case {
    int ndim;
    int64_t shape[5];
    int k, s, p;
} pool_case;

static const pool_case CASES[] = {
    {4, {2, 3, 6, 6}, 2, 2, 0},   {4, {2, 2, 7, 5}, 3, 2, 1}, {4, {1, 2, 5, 5}, 3, 1, 1},
    {5, {2, 2, 3, 2, 7}, 2, 1, 0}, {4, {1, 3, 4, 4}, 3, 3, 2}, {4, {2, 2, 5, 6}, 1, 2, 0},
    {3, {4, 9, 8}, 4, 3, 2},
};
#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

typedef struct pdims {
    int64_t planes;
    int H, W, OH, OW;
} pdims;

static pdims dims_of(const pool_case *c) {
    pdims d;
    d.H = (int)c->shape[c->ndim - 2];
    d.W = (int)c->shape[c->ndim - 1];
    d.planes = 1;
    for (int i = 0; i < c->ndim - 2; i++) d.planes *= c->shape[i];
    d.OH = (d.H + 2 * c->p - c->k) / c->s + 1;
    d.OW = (d.W + 2 * c->p - c->k) / c->s + 1;
    return d;
}

static eqr_ctx *mkctx(int threads) {
    eqr_ctx_opts o = {0};
    o.seed = 11;
    o.threads = threads;
    o.arena_bytes = 1 << 20;
    eqr_ctx *ctx = eqr_ctx_create(&o);
    assert_non_null(ctx);
    return ctx;
}

/* Distinct negative values -(1..n)*0.05 in a seeded random order: a padded
 * zero would beat all of them, and no two are within 0.05 (no ties near h). */
static void fill_distinct_negative(float *p, int64_t n, uint64_t seed) {
    eqr_rng rng;
    eqr_rng_seed(&rng, seed);
    for (int64_t i = 0; i < n; i++) p[i] = -0.05f * (float)(i + 1);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)eqr_rng_below(&rng, (uint64_t)(i + 1));
        float t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
}

/* Reference pooling; argmax[] gets the flat input index of each max (first
 * maximal element in row-major window order), avg divides by real cells;
 * mag[] gets the error-bound scale (avg: sum |x| / cnt; max: 0, exact). */
static void ref_pool(const pool_case *c, const float *x, int is_max, double *y, int64_t *argmax,
                     double *mag) {
    pdims d = dims_of(c);
    for (int64_t pl = 0; pl < d.planes; pl++)
        for (int oh = 0; oh < d.OH; oh++)
            for (int ow = 0; ow < d.OW; ow++) {
                double best = -INFINITY, sum = 0, asum = 0;
                int64_t bi = -1;
                int cnt = 0;
                for (int i = 0; i < c->k; i++)
                    for (int j = 0; j < c->k; j++) {
                        int ih = oh * c->s - c->p + i, iw = ow * c->s - c->p + j;
                        if (ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) continue;
                        int64_t xi = (pl * d.H + ih) * d.W + iw;
                        if (x[xi] > best) {
                            best = x[xi];
                            bi = xi;
                        }
                        sum += x[xi];
                        asum += fabs(x[xi]);
                        cnt++;
                    }
                int64_t yi = (pl * d.OH + oh) * d.OW + ow;
                assert_true(cnt > 0);
                y[yi] = is_max ? best : sum / cnt;
                mag[yi] = is_max ? 0 : asum / cnt;
                if (argmax) argmax[yi] = bi;
            }
}

static eqr_tensor *run_pool(eqr_ctx *ctx, const pool_case *c, eqr_tensor *x, int is_max) {
    return is_max ? eqr_maxpool2d(ctx, x, c->k, c->s, c->p)
                  : eqr_avgpool2d(ctx, x, c->k, c->s, c->p);
}

/* Forward and backward of one case vs the reference; returns dx (malloc). */
static float *check_case(const pool_case *c, int is_max, int threads) {
    eqr_ctx *ctx = mkctx(threads);
    pdims d = dims_of(c);
    eqr_tensor *x = eqr_param_create(ctx, "x", c->ndim, c->shape, 0);
    assert_non_null(x);
    if (is_max)
        fill_distinct_negative(x->data, x->numel, 21);
    else
        tu_fill_uniform(x->data, x->numel, 21);
    eqr_tensor *y = run_pool(ctx, c, x, is_max);
    if (!y) fail_msg("pool: %s", eqr_error_message(ctx));
    assert_int_equal(y->ndim, c->ndim);
    for (int i = 0; i < c->ndim - 2; i++) assert_int_equal(y->shape[i], c->shape[i]);
    assert_int_equal(y->shape[c->ndim - 2], d.OH);
    assert_int_equal(y->shape[c->ndim - 1], d.OW);
    int64_t ny = y->numel;
    double *ref = malloc(sizeof(double) * (size_t)ny), *mag = malloc(sizeof(double) * (size_t)ny);
    int64_t *arg = malloc(sizeof(int64_t) * (size_t)ny);
    float *r = malloc(sizeof(float) * (size_t)ny);
    double *dx = calloc((size_t)x->numel, sizeof(double));
    double *dmag = calloc((size_t)x->numel, sizeof(double));
    assert_true(ref && mag && arg && r && dx && dmag);
    ref_pool(c, x->data, is_max, ref, arg, mag);
    /* avg: a sum of <= k*k cells, one divide; max: exact */
    tu_assert_close_bound(is_max ? "maxpool" : "avgpool", y->data, ref, mag, ny, c->k * c->k + 1, 1);

    /* again on an exact-size malloc'd input, so ASan sees stray reads */
    float *xcopy = malloc(sizeof(float) * (size_t)x->numel);
    assert_non_null(xcopy);
    memcpy(xcopy, x->data, sizeof(float) * (size_t)x->numel);
    eqr_tensor *yw = run_pool(ctx, c, eqr_tensor_wrap(ctx, xcopy, c->ndim, c->shape), is_max);
    assert_non_null(yw);
    assert_memory_equal(yw->data, y->data, sizeof(float) * (size_t)ny);
    free(xcopy);

    tu_fill_uniform(r, ny, 22);
    eqr_grad_zero(ctx);
    assert_int_equal(eqr_backward_from(ctx, y, eqr_tensor_from(ctx, c->ndim, y->shape, r)), EQR_OK);
    for (int64_t pl = 0; pl < d.planes; pl++)
        for (int oh = 0; oh < d.OH; oh++)
            for (int ow = 0; ow < d.OW; ow++) {
                int64_t yi = (pl * d.OH + oh) * d.OW + ow;
                if (is_max) {
                    dx[arg[yi]] += r[yi];
                    dmag[arg[yi]] += fabs(r[yi]);
                    continue;
                }
                int h0 = oh * c->s - c->p, w0 = ow * c->s - c->p, cnt = 0;
                for (int pass = 0; pass < 2; pass++)
                    for (int ih = h0; ih < h0 + c->k; ih++)
                        for (int iw = w0; iw < w0 + c->k; iw++) {
                            if (ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) continue;
                            if (pass == 0)
                                cnt++;
                            else {
                                dx[(pl * d.H + ih) * d.W + iw] += (double)r[yi] / cnt;
                                dmag[(pl * d.H + ih) * d.W + iw] += fabs((double)r[yi]) / cnt;
                            }
                        }
            }
    /* each input cell gathers <= k*k window contributions (r / cnt: one
     * divide each), summed */
    tu_assert_close_bound(is_max ? "maxpool dx" : "avgpool dx", x->grad, dx, dmag, x->numel,
                          c->k * c->k + 1, 1);
    free(dmag);
    free(mag);
    float *out = malloc(sizeof(float) * (size_t)(ny + x->numel));
    assert_non_null(out);
    memcpy(out, y->data, sizeof(float) * (size_t)ny);
    memcpy(out + ny, x->grad, sizeof(float) * (size_t)x->numel);
    free(ref);
    free(arg);
    free(r);
    free(dx);
    eqr_ctx_destroy(ctx);
    return out;
}

static void test_pool_reference(void **state) {
    (void)state;
    for (int ci = 0; ci < NCASES; ci++) {
        const pool_case *c = &CASES[ci];
        pdims d = dims_of(c);
        int64_t n = d.planes * (d.OH * d.OW + d.H * d.W);
        for (int is_max = 0; is_max <= 1; is_max++) {
            float *a = check_case(c, is_max, 1);
            float *b = check_case(c, is_max, 2);
            assert_memory_equal(a, b, sizeof(float) * (size_t)n);
            free(a);
            free(b);
        }
    }
}

/* Constant input: ties go to the first real cell of the window; padding
 * neither wins a max nor dilutes an average. */
static void test_ties_and_padding(void **state) {
    (void)state;
    eqr_ctx *ctx = mkctx(1);
    int64_t s[4] = {1, 1, 4, 4};
    eqr_tensor *x = eqr_param_create(ctx, "x", 4, s, 0);
    eqr_tensor_fill(x, -2.0f);
    eqr_tensor *y = eqr_maxpool2d(ctx, x, 3, 2, 1); /* windows start at -1 and 1 */
    assert_non_null(y);
    assert_int_equal(y->shape[2], 2);
    for (int i = 0; i < 4; i++) assert_true(y->data[i] == -2.0f);
    eqr_grad_zero(ctx);
    tu_backward_ones(ctx, y);
    /* first real cells: (0,0), (0,1), (1,0), (1,1) */
    const float want[16] = {1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < 16; i++) assert_true(x->grad[i] == want[i]);
    eqr_step_reset(ctx);
    eqr_tensor_fill(x, 3.0f);
    y = eqr_avgpool2d(ctx, x, 3, 1, 1);
    assert_non_null(y);
    /* <= 9 cells of 3: the partial sums are exact, then a divide (or a
     * multiply by a rounded 1 / cnt): 2 roundings */
    double three[16];
    for (int i = 0; i < 16; i++) three[i] = 3.0;
    tu_assert_close_rel("avgpool of a constant", y->data, three, NULL, 16, 2);
    eqr_ctx_destroy(ctx);
}

typedef struct pool_args {
    int is_max, k, s, p;
} pool_args;

static eqr_tensor *f_pool(eqr_ctx *ctx, eqr_tensor **in, void *u) {
    pool_args *a = u;
    return a->is_max ? eqr_maxpool2d(ctx, in[0], a->k, a->s, a->p)
                     : eqr_avgpool2d(ctx, in[0], a->k, a->s, a->p);
}

static eqr_tensor *f_gap(eqr_ctx *ctx, eqr_tensor **in, void *u) {
    (void)u;
    return eqr_global_avgpool(ctx, in[0]);
}

static void test_gradcheck(void **state) {
    (void)state;
    for (int threads = 1; threads <= 2; threads++) {
        eqr_ctx *ctx = mkctx(threads);
        int64_t s[4] = {2, 2, 5, 5};
        eqr_tensor *x = eqr_param_create(ctx, "x", 4, s, 0);
        assert_non_null(x);
        fill_distinct_negative(x->data, x->numel, 31); /* gaps 0.05 > 2h */
        pool_args a[] = {{1, 3, 2, 1}, {1, 2, 2, 0}, {0, 3, 2, 1}, {0, 2, 1, 1}};
        for (size_t i = 0; i < sizeof a / sizeof a[0]; i++)
            tu_gradcheck(ctx, f_pool, &x, 1, &a[i], 1e-2, 27 /* windows of <= 25 (global), + the scale */);
        tu_gradcheck(ctx, f_gap, &x, 1, NULL, 1e-2, 27);
        eqr_ctx_destroy(ctx);
    }
}

static void test_global_avgpool(void **state) {
    (void)state;
    const int64_t shapes[][5] = {{2, 3, 4, 5, 0}, {2, 3, 2, 3, 3}, {3, 4, 0, 0, 0}};
    const int ndims[] = {4, 5, 2};
    for (int c = 0; c < 3; c++) {
        eqr_ctx *ctx = mkctx(1);
        eqr_tensor *x = eqr_param_create(ctx, "x", ndims[c], shapes[c], 0);
        assert_non_null(x);
        tu_fill_uniform(x->data, x->numel, 41);
        eqr_tensor *y = eqr_global_avgpool(ctx, x);
        assert_non_null(y);
        assert_int_equal(y->ndim, 2);
        assert_int_equal(y->shape[0], shapes[c][0]);
        assert_int_equal(y->shape[1], shapes[c][1]);
        int64_t planes = y->numel, S = x->numel / planes;
        double ref[64], mag[64];
        for (int64_t pl = 0; pl < planes; pl++) {
            double s = 0, a = 0;
            for (int64_t q = 0; q < S; q++) s += x->data[pl * S + q], a += fabs(x->data[pl * S + q]);
            ref[pl] = s / (double)S;
            mag[pl] = a / (double)S;
        }
        /* a sum of S, one divide (or scale by 1/S: 2 roundings) */
        tu_assert_close_bound("global_avgpool", y->data, ref, mag, planes, S + 2, 1);
        tu_gradcheck(ctx, f_gap, &x, 1, NULL, 1e-2, 27);
        eqr_ctx_destroy(ctx);
    }
}

static void test_errors(void **state) {
    (void)state;
    eqr_ctx *ctx = mkctx(1);
    int64_t s4[4] = {1, 2, 4, 4}, s2[2] = {2, 3}, s1[1] = {5}, sempty[4] = {1, 2, 0, 4};
    int64_t sgap[3] = {2, 3, 0};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, s4);
    assert_null(eqr_maxpool2d(ctx, x, 0, 1, 0));
    tu_assert_error(ctx, EQR_ERR_ARG, "eqr_maxpool2d");
    assert_null(eqr_maxpool2d(ctx, x, 2, 0, 0));
    tu_assert_error(ctx, EQR_ERR_ARG, "stride");
    assert_null(eqr_avgpool2d(ctx, x, 2, 2, 2)); /* pad >= k: windows of padding only */
    tu_assert_error(ctx, EQR_ERR_ARG, "pad");
    assert_null(eqr_avgpool2d(ctx, x, 2, 2, -1));
    tu_assert_error(ctx, EQR_ERR_ARG, "eqr_avgpool2d");
    assert_null(eqr_maxpool2d(ctx, x, 7, 1, 1));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "larger than the padded input");
    assert_non_null(eqr_maxpool2d(ctx, x, 6, 1, 1)); /* exactly fits once padded */
    assert_null(eqr_maxpool2d(ctx, eqr_tensor_zeros(ctx, 2, s2), 2, 2, 0));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "[2,3]");
    assert_null(eqr_avgpool2d(ctx, eqr_tensor_zeros(ctx, 4, sempty), 1, 1, 0));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "empty");
    assert_null(eqr_global_avgpool(ctx, eqr_tensor_zeros(ctx, 1, s1)));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "[N,C,...]");
    assert_null(eqr_global_avgpool(ctx, eqr_tensor_zeros(ctx, 3, sgap)));
    tu_assert_error(ctx, EQR_ERR_SHAPE, "no elements");
    assert_null(eqr_maxpool2d(ctx, NULL, 2, 2, 0));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_null(eqr_avgpool2d(ctx, NULL, 2, 2, 0));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_null(eqr_global_avgpool(ctx, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "is NULL");
    assert_int_equal(eqr_error_status(ctx), EQR_OK);
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_reference), cmocka_unit_test(test_ties_and_padding),
        cmocka_unit_test(test_gradcheck),      cmocka_unit_test(test_global_avgpool),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
