/* Optimizers and gradient clipping: the first steps
 * of each optimizer against double-precision references and hand-computed
 * values, flag handling (buffers, frozen, no-decay), and argument checks. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define NW 4

static const double W0[NW] = {1.0, -2.0, 0.5, 0.25};
/* gradients of steps 1..3 (changing, with sign flips, so momentum and the
 * moment estimates are exercised) */
static const double GS[3][NW] = {
    {0.1, 0.2, -0.3, 0.05},
    {-0.2, 0.1, 0.4, 0.0},
    {0.3, -0.5, 0.1, 0.2},
};

/* Context with a trainable "w" [4] (decayed) and "b" [4] (NO_DECAY), both
 * starting at W0. */
static eqr_ctx *make_ctx(eqr_tensor **w, eqr_tensor **b) {
    eqr_ctx *ctx = tu_ctx(1);
    int64_t s[1] = {NW};
    *w = eqr_param_create(ctx, "w", 1, s, 0);
    *b = eqr_param_create(ctx, "b", 1, s, EQR_PARAM_NO_DECAY);
    assert_non_null(*w);
    assert_non_null(*b);
    for (int i = 0; i < NW; i++) (*w)->data[i] = (*b)->data[i] = (float)W0[i];
    return ctx;
}

static void set_grads(eqr_tensor *t, int step) {
    for (int i = 0; i < NW; i++) t->grad[i] = (float)GS[step][i];
}

/* Double reference state, with the error-bound scales of the float run: wm,
 * mm, vm carry the sums of |terms| that made w, m, v (first order: an input
 * within gamma * mag moves a result by its partial derivative times that),
 * so the float values are within gamma_{OPS t} of the reference after t
 * steps (OPS rounded ops per step, counting the float hyperparameters). */
typedef struct ref {
    double w[NW], m[NW], v[NW], wm[NW], mm[NW], vm[NW];
} ref;
#define OPS 16

static void ref_init(ref *r) {
    memset(r, 0, sizeof *r);
    memcpy(r->w, W0, sizeof r->w);
}

/* PyTorch SGD in double. */
static void ref_sgd(ref *r, const double *g, double lr, double mu, int nesterov, double wd) {
    for (int i = 0; i < NW; i++) {
        double gi = g[i] + wd * r->w[i], gm = fabs(g[i]) + wd * (fabs(r->w[i]) + r->wm[i]);
        if (mu > 0) {
            r->m[i] = mu * r->m[i] + gi;
            r->mm[i] = mu * (fabs(r->m[i]) + r->mm[i]) + gm;
            gm = nesterov ? gm + mu * r->mm[i] : r->mm[i];
            gi = nesterov ? gi + mu * r->m[i] : r->m[i];
        }
        r->wm[i] += fabs(r->w[i]) + lr * gm;
        r->w[i] -= lr * gi;
    }
}

/* Adam (l2 added to the gradient) / AdamW (decoupled) in double. */
static void ref_adam(ref *r, const double *g, int t, double lr, double b1, double b2, double eps,
                     double l2, double decoupled) {
    /* 1 - b^t in float is within gamma (1 + b^t) of exact: relatively
     * (1 + b^t) / (1 - b^t), large for b2 near 1 */
    const double c1 = (1 + pow(b1, t)) / (1 - pow(b1, t)), c2 = (1 + pow(b2, t)) / (1 - pow(b2, t));
    for (int i = 0; i < NW; i++) {
        r->wm[i] = r->wm[i] * (1.0 - lr * decoupled) + fabs(r->w[i]) * (1.0 + lr * decoupled);
        r->w[i] *= 1.0 - lr * decoupled;
        double gi = g[i] + l2 * r->w[i], gm = fabs(g[i]) + l2 * (fabs(r->w[i]) + r->wm[i]);
        r->mm[i] = b1 * (fabs(r->m[i]) + r->mm[i]) + (1 - b1) * gm;
        r->vm[i] = b2 * (r->v[i] + r->vm[i]) + (1 - b2) * (gi * gi + 2 * fabs(gi) * gm);
        r->m[i] = b1 * r->m[i] + (1 - b1) * gi;
        r->v[i] = b2 * r->v[i] + (1 - b2) * gi * gi;
        double mh = r->m[i] / (1 - pow(b1, t)), vh = r->v[i] / (1 - pow(b2, t));
        double sv = sqrt(vh), den = sv + eps, upd = lr * mh / den;
        /* the update's scale: m^ (its terms and the bias correction), sqrt(v^)
         * (half of v's relative error and of its correction's) and a few
         * roundings */
        double um = lr * (r->mm[i] / (1 - pow(b1, t)) + fabs(mh) * c1) / den +
                    fabs(upd) * (0.5 * (vh > 0 ? r->vm[i] / r->v[i] : 0) + 0.5 * c2) * sv / den +
                    fabs(upd);
        r->wm[i] += fabs(r->w[i]) + um;
        r->w[i] -= upd;
    }
}

/* Run 3 steps of opts on w (decayed) and b (no decay); compare after each
 * step against the references rw / rb advanced by adv(). */
typedef void (*adv_fn)(ref *r, const double *g, int t, int decayed, const eqr_optim_opts *o);

/* Take n steps with the gradients of set_grads and compare w[0] after each
 * with the hand-computed values; the state covers the whole store. */
static void check_w0_by_hand(const eqr_optim_opts *o, const double *hand, int n, const char *what) {
    eqr_tensor *w, *b;
    eqr_ctx *ctx = make_ctx(&w, &b);
    eqr_optim *opt = eqr_optim_create(ctx, o);
    assert_non_null(opt);
    assert_int_equal(eqr_optim_num_state_floats(opt), eqr_param_num_scalars(ctx));
    for (int t = 0; t < n; t++) {
        set_grads(w, t);
        set_grads(b, t);
        assert_int_equal(eqr_optim_step(opt), EQR_OK);
        /* the terms are of size <= |w0| = 1 (updates 0.1 and less); the
         * float hyperparameters and OPS roundings per step */
        const double one = 1.0;
        tu_assert_close_bound(what, w->data, &hand[t], &one, 1, OPS * (t + 1), 1);
    }
    eqr_optim_destroy(opt);
    eqr_ctx_destroy(ctx);
}

static void run_three(const eqr_optim_opts *o, adv_fn adv) {
    eqr_tensor *w, *b;
    eqr_ctx *ctx = make_ctx(&w, &b);
    eqr_optim *opt = eqr_optim_create(ctx, o);
    assert_non_null(opt);
    ref rw, rb;
    ref_init(&rw);
    ref_init(&rb);
    for (int t = 1; t <= 3; t++) {
        set_grads(w, t - 1);
        set_grads(b, t - 1);
        assert_int_equal(eqr_optim_step(opt), EQR_OK);
        adv(&rw, GS[t - 1], t, 1, o);
        adv(&rb, GS[t - 1], t, 0, o);
        char what[64];
        snprintf(what, sizeof what, "kind %d step %d w", (int)o->kind, t);
        tu_assert_close_bound(what, w->data, rw.w, rw.wm, NW, OPS * t, 1);
        snprintf(what, sizeof what, "kind %d step %d b (no decay)", (int)o->kind, t);
        tu_assert_close_bound(what, b->data, rb.w, rb.wm, NW, OPS * t, 1);
        assert_int_equal(eqr_optim_num_steps(opt), t);
    }
    eqr_optim_destroy(opt);
    eqr_ctx_destroy(ctx);
}

static void adv_sgd(ref *r, const double *g, int t, int decayed, const eqr_optim_opts *o) {
    (void)t;
    ref_sgd(r, g, o->lr, o->momentum, o->nesterov, decayed ? o->weight_decay : 0.0);
}

static double dflt(float x, double d) { return x == 0.0f ? d : (double)x; }

static void adv_adam(ref *r, const double *g, int t, int decayed, const eqr_optim_opts *o) {
    double wd = decayed ? o->weight_decay : 0.0;
    double b1 = dflt(o->beta1, 0.9), b2 = dflt(o->beta2, 0.999), eps = dflt(o->eps, 1e-8);
    if (o->kind == EQR_OPTIM_ADAM)
        ref_adam(r, g, t, o->lr, b1, b2, eps, wd, 0.0);
    else
        ref_adam(r, g, t, o->lr, b1, b2, eps, 0.0, wd);
}

static void test_sgd_plain_hand(void **state) {
    (void)state;
    eqr_optim_opts o = {.kind = EQR_OPTIM_SGD, .lr = 0.1f};
    eqr_tensor *w, *b;
    eqr_ctx *ctx = make_ctx(&w, &b);
    eqr_optim *opt = eqr_optim_create(ctx, &o);
    assert_non_null(opt);
    assert_int_equal(eqr_optim_num_state_floats(opt), 0); /* no momentum, no state */
    set_grads(w, 0);
    set_grads(b, 0);
    assert_int_equal(eqr_optim_step(opt), EQR_OK);
    /* w - 0.1 g by hand */
    const double hand[NW] = {0.99, -2.02, 0.53, 0.245};
    const double w0m[NW] = {1.0, 2.0, 0.5, 0.25}; /* |w0|: the terms' scale */
    tu_assert_close_bound("sgd step 1", w->data, hand, w0m, NW, OPS, 1);
    eqr_optim_destroy(opt);
    eqr_ctx_destroy(ctx);
    run_three(&o, adv_sgd);
}

static void test_sgd_momentum(void **state) {
    (void)state;
    eqr_optim_opts o = {.kind = EQR_OPTIM_SGD, .lr = 0.1f, .momentum = 0.9f};
    /* by hand for w[0]: buf1 = 0.1, w1 = 0.99; buf2 = 0.09 - 0.2 = -0.11, w2 = 1.001;
     * buf3 = -0.099 + 0.3 = 0.201, w3 = 0.9809 */
    const double hand[3] = {0.99, 1.001, 0.9809};
    check_w0_by_hand(&o, hand, 3, "sgd momentum w[0]");
    run_three(&o, adv_sgd);
}

static void test_sgd_nesterov(void **state) {
    (void)state;
    eqr_optim_opts o = {.kind = EQR_OPTIM_SGD, .lr = 0.1f, .momentum = 0.9f, .nesterov = 1};
    /* by hand for w[0]: buf1 = 0.1, step = 0.1 + 0.09 = 0.19, w1 = 0.981;
     * buf2 = -0.11, step = -0.2 - 0.099 = -0.299, w2 = 1.0109 */
    const double hand[2] = {0.981, 1.0109};
    check_w0_by_hand(&o, hand, 2, "sgd nesterov w[0]");
    run_three(&o, adv_sgd);
}

static void test_sgd_weight_decay(void **state) {
    (void)state;
    eqr_optim_opts o = {.kind = EQR_OPTIM_SGD, .lr = 0.1f, .momentum = 0.5f, .weight_decay = 0.1f};
    /* by hand, step 1: w[0] = 1 - 0.1 (0.1 + 0.1*1) = 0.98, b[0] (no decay) = 0.99 */
    eqr_tensor *w, *b;
    eqr_ctx *ctx = make_ctx(&w, &b);
    eqr_optim *opt = eqr_optim_create(ctx, &o);
    assert_non_null(opt);
    set_grads(w, 0);
    set_grads(b, 0);
    assert_int_equal(eqr_optim_step(opt), EQR_OK);
    const double hw = 0.98, hb = 0.99;
    const double one = 1.0; /* |w0[0]|: the terms' scale */
    tu_assert_close_bound("sgd wd w[0]", w->data, &hw, &one, 1, OPS, 1);
    tu_assert_close_bound("sgd wd b[0]", b->data, &hb, &one, 1, OPS, 1);
    eqr_optim_destroy(opt);
    eqr_ctx_destroy(ctx);
    run_three(&o, adv_sgd);
}

static void test_adam(void **state) {
    (void)state;
    /* defaults (0 -> 0.9, 0.999, 1e-8); first step moves each weight by
     * lr * g/|g| (to within eps) whatever the gradient's size */
    eqr_optim_opts o = {.kind = EQR_OPTIM_ADAM, .lr = 0.01f};
    eqr_tensor *w, *b;
    eqr_ctx *ctx = make_ctx(&w, &b);
    eqr_optim *opt = eqr_optim_create(ctx, &o);
    assert_non_null(opt);
    assert_int_equal(eqr_optim_num_state_floats(opt), 2 * eqr_param_num_scalars(ctx));
    set_grads(w, 0);
    set_grads(b, 0);
    assert_int_equal(eqr_optim_step(opt), EQR_OK);
    const double hand[NW] = {0.99, -2.01, 0.51, 0.24};
    /* terms: |w0| and the update lr, whose 1 - b2 (float 0.999f) carries a
     * relative (1 + b2) / (1 - b2) = 1999 times the rounding, halved by the
     * sqrt */
    double am[NW];
    for (int i = 0; i < NW; i++) am[i] = fabs(W0[i]) + 0.01 * (2 + 0.5 * 1999);
    tu_assert_close_bound("adam step 1", w->data, hand, am, NW, OPS, 1);
    eqr_optim_destroy(opt);
    eqr_ctx_destroy(ctx);
    run_three(&o, adv_adam);
    /* explicit betas, an eps that matters (it sits outside the sqrt) and L2 decay */
    eqr_optim_opts o2 = {.kind = EQR_OPTIM_ADAM, .lr = 0.05f, .beta1 = 0.8f, .beta2 = 0.9f,
                         .eps = 0.1f, .weight_decay = 0.2f};
    run_three(&o2, adv_adam);
}

static void test_adamw(void **state) {
    (void)state;
    eqr_optim_opts o = {.kind = EQR_OPTIM_ADAMW, .lr = 0.05f, .beta1 = 0.8f, .beta2 = 0.9f,
                        .eps = 0.1f, .weight_decay = 0.5f};
    run_three(&o, adv_adam);
    /* by hand, step 1 for w[3] (g = 0.05): decay 0.25 * (1 - 0.025) = 0.24375;
     * m^ = 0.05, sqrt(v^) = 0.05, update 0.05 * 0.05 / 0.15 = 0.0166667 */
    eqr_tensor *w, *b;
    eqr_ctx *ctx = make_ctx(&w, &b);
    eqr_optim *opt = eqr_optim_create(ctx, &o);
    assert_non_null(opt);
    set_grads(w, 0);
    set_grads(b, 0);
    assert_int_equal(eqr_optim_step(opt), EQR_OK);
    const double hw = 0.24375 - 0.05 * 0.05 / 0.15, hb = 0.25 - 0.05 * 0.05 / 0.15;
    /* terms: |w| and the update, whose bias corrections (b1 0.8, b2 0.9)
     * carry (1 + b) / (1 - b) = 9 and 19 times their roundings */
    const double hm = 0.25 + 0.05 * 0.05 / 0.15 * (2 + 9 + 0.5 * 19);
    tu_assert_close_bound("adamw w[3]", &w->data[3], &hw, &hm, 1, OPS, 1);
    tu_assert_close_bound("adamw b[3] (no decay)", &b->data[3], &hb, &hm, 1, OPS, 1);
    eqr_optim_destroy(opt);
    eqr_ctx_destroy(ctx);
}

/* Buffers and frozen parameters keep their values even with garbage in
 * their slots of the gradient block, for every optimizer. */
static void test_buffers_untouched(void **state) {
    (void)state;
    const eqr_optim_kind kinds[3] = {EQR_OPTIM_SGD, EQR_OPTIM_ADAM, EQR_OPTIM_ADAMW};
    for (int k = 0; k < 3; k++) {
        eqr_ctx *ctx = tu_ctx(2);
        int64_t s[1] = {5};
        eqr_tensor *w = tu_input(ctx, "w", 1, s, 1.0f);
        eqr_tensor *buf = eqr_param_create(ctx, "running", 1, s, EQR_PARAM_BUFFER);
        eqr_tensor *fr = eqr_param_create(ctx, "frozen", 1, s, EQR_PARAM_FROZEN);
        assert_non_null(buf);
        assert_non_null(fr);
        assert_null(buf->grad);
        assert_null(fr->grad);
        for (int i = 0; i < 5; i++) {
            buf->data[i] = 1.5f + (float)i;
            fr->data[i] = -0.5f - (float)i;
            w->grad[i] = 0.3f;
        }
        float *G = eqr_param_grad_block(ctx);
        for (int p = 1; p < 3; p++)
            for (int i = 0; i < 5; i++) G[eqr_param_offset(ctx, p) + i] = 7.0f;
        float bsave[5], fsave[5], wsave[5];
        memcpy(bsave, buf->data, sizeof bsave);
        memcpy(fsave, fr->data, sizeof fsave);
        memcpy(wsave, w->data, sizeof wsave);
        eqr_optim_opts o = {.kind = kinds[k], .lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.1f};
        if (kinds[k] != EQR_OPTIM_SGD) o.momentum = 0;
        eqr_optim *opt = eqr_optim_create(ctx, &o);
        assert_non_null(opt);
        for (int t = 0; t < 3; t++) assert_int_equal(eqr_optim_step(opt), EQR_OK);
        assert_memory_equal(bsave, buf->data, sizeof bsave);
        assert_memory_equal(fsave, fr->data, sizeof fsave);
        assert_memory_not_equal(wsave, w->data, sizeof wsave); /* the trainable one moved */
        eqr_optim_destroy(opt);
        eqr_ctx_destroy(ctx);
    }
}

static void test_store_grew(void **state) {
    (void)state;
    eqr_tensor *w, *b;
    eqr_ctx *ctx = make_ctx(&w, &b);
    eqr_optim_opts o = {.kind = EQR_OPTIM_ADAM, .lr = 0.01f};
    eqr_optim *opt = eqr_optim_create(ctx, &o);
    assert_non_null(opt);
    int64_t s[1] = {3};
    assert_non_null(eqr_param_create(ctx, "late", 1, s, 0));
    w = eqr_param_find(ctx, "w");
    set_grads(w, 0);
    float before[NW];
    memcpy(before, w->data, sizeof before);
    assert_int_equal(eqr_optim_step(opt), EQR_ERR_STATE);
    tu_assert_error(ctx, EQR_ERR_STATE, "parameter store changed");
    assert_memory_equal(before, w->data, sizeof before);
    assert_int_equal(eqr_optim_num_steps(opt), 0);
    eqr_optim_destroy(opt);
    eqr_ctx_destroy(ctx);
}

static void test_step_on_error_context(void **state) {
    (void)state;
    eqr_tensor *w, *b;
    eqr_ctx *ctx = make_ctx(&w, &b);
    eqr_optim_opts o = {.kind = EQR_OPTIM_SGD, .lr = 0.1f};
    eqr_optim *opt = eqr_optim_create(ctx, &o);
    assert_non_null(opt);
    set_grads(w, 0);
    int64_t bad[1] = {-1};
    assert_null(eqr_tensor_zeros(ctx, 1, bad)); /* puts ctx in error */
    float before[NW];
    memcpy(before, w->data, sizeof before);
    assert_int_equal(eqr_optim_step(opt), EQR_ERR_SHAPE);
    assert_memory_equal(before, w->data, sizeof before);
    eqr_error_clear(ctx);
    assert_int_equal(eqr_optim_step(opt), EQR_OK);
    assert_memory_not_equal(before, w->data, sizeof before);
    eqr_optim_destroy(opt);
    eqr_ctx_destroy(ctx);
}

/* eqr_optim_state_norms: after one Adam step m = (1 - b1) g and
 * v = (1 - b2) g^2 per parameter (to their float rounding, below); a
 * tensor outside the store is refused. */
static void test_state_norms(void **state) {
    (void)state;
    eqr_optim_opts o = {.kind = EQR_OPTIM_ADAM, .lr = 0.01f};
    eqr_tensor *w, *b;
    eqr_ctx *ctx = make_ctx(&w, &b);
    eqr_optim *opt = eqr_optim_create(ctx, &o);
    double m, v;
    assert_int_equal(eqr_optim_state_norms(opt, w, &m, &v), EQR_OK);
    assert_true(m == 0 && v == 0);
    set_grads(w, 0);
    set_grads(b, 2);
    assert_int_equal(eqr_optim_step(opt), EQR_OK);
    for (int p = 0; p < 2; p++) {
        const double *g = GS[p ? 2 : 0];
        double g2 = 0, g4 = 0;
        for (int i = 0; i < NW; i++) g2 += g[i] * g[i], g4 += g[i] * g[i] * g[i] * g[i];
        /* the betas as the optimizer holds them: float 0.9f, 0.999f */
        double rm = (1 - (double)0.9f) * sqrt(g2), rv = (1 - (double)0.999f) * sqrt(g4);
        assert_int_equal(eqr_optim_state_norms(opt, p ? b : w, &m, &v), EQR_OK);
        /* m_i = (1 - b1) g: g rounded to float, the product rounded (1 - b1
         * is exact, the add of b1 * 0 too): gamma_2 relative per entry, so
         * for the norm (summed in double, 1e-15); v_i: g^2 (2 u from g, the
         * square) times (1 - b2): gamma_4 */
        assert_true(fabs(m - rm) <= tu_gamma(2) * rm + 1e-15 * rm);
        assert_true(fabs(v - rv) <= tu_gamma(4) * rv + 1e-15 * rv);
    }
    int64_t s1 = 1;
    eqr_tensor *loose = eqr_tensor_zeros(ctx, 1, &s1);
    tu_assert_error(ctx, eqr_optim_state_norms(opt, loose, &m, &v), "not a parameter");
    eqr_optim_destroy(opt);
    eqr_ctx_destroy(ctx);
}

static void test_accessors(void **state) {
    (void)state;
    eqr_tensor *w, *b;
    eqr_ctx *ctx = make_ctx(&w, &b);
    eqr_optim_opts o = {.kind = EQR_OPTIM_ADAMW, .lr = 0.01f};
    eqr_optim *opt = eqr_optim_create(ctx, &o);
    assert_non_null(opt);
    assert_int_equal(eqr_optim_get_kind(opt), EQR_OPTIM_ADAMW);
    assert_true(eqr_optim_lr(opt) == 0.01f);
    eqr_optim_set_lr(opt, 0.5f);
    assert_true(eqr_optim_lr(opt) == 0.5f);
    eqr_optim_set_lr(opt, -1.0f);
    tu_assert_error(ctx, EQR_ERR_ARG, "lr");
    assert_true(eqr_optim_lr(opt) == 0.5f);
    eqr_optim_set_num_steps(opt, 41);
    assert_int_equal(eqr_optim_num_steps(opt), 41);
    eqr_optim_set_num_steps(opt, -3);
    tu_assert_error(ctx, EQR_ERR_ARG, "steps");
    assert_int_equal(eqr_optim_num_steps(opt), 41);
    /* the step count drives Adam's bias correction: at t = 42 the update is
     * about 0.65 lr, not the lr of a first step */
    eqr_optim_set_lr(opt, 0.01f);
    set_grads(w, 0);
    assert_int_equal(eqr_optim_step(opt), EQR_OK);
    double b1c = 1 - pow(0.9, 42), b2c = 1 - pow(0.999, 42);
    double exp0 = 1.0 - 0.01 * (0.1 * 0.1 / b1c) / (sqrt(0.001 * 0.01 / b2c) + 1e-8);
    /* terms: w = 1 and the update, whose corrections at t = 42 carry
     * (1 + b^42) / (1 - b^42) times their roundings */
    const double upd = 1.0 - exp0, em = 1.0 + upd * (2 + (2 - b1c) / b1c + 0.5 * (2 - b2c) / b2c);
    tu_assert_close_bound("adamw after set_steps", w->data, &exp0, &em, 1, OPS * 42, 1);
    assert_non_null(eqr_optim_state(opt));
    eqr_optim_destroy(opt);
    eqr_optim_destroy(NULL);
    eqr_ctx_destroy(ctx);
}

static void test_invalid_opts(void **state) {
    (void)state;
    eqr_tensor *w, *b;
    eqr_ctx *ctx = make_ctx(&w, &b);
    struct {
        eqr_optim_opts o;
        const char *needle;
    } bad[] = {
        {{.kind = EQR_OPTIM_SGD, .lr = -0.1f}, "lr"},
        {{.kind = EQR_OPTIM_SGD, .lr = NAN}, "lr"},
        {{.kind = EQR_OPTIM_SGD, .lr = INFINITY}, "lr"},
        {{.kind = EQR_OPTIM_SGD, .lr = 0.1f, .momentum = -0.5f}, "momentum"},
        {{.kind = EQR_OPTIM_SGD, .lr = 0.1f, .momentum = 1.0f}, "momentum"},
        {{.kind = EQR_OPTIM_SGD, .lr = 0.1f, .nesterov = 1}, "nesterov"},
        {{.kind = EQR_OPTIM_ADAM, .lr = 0.1f, .nesterov = 1}, "nesterov"},
        {{.kind = EQR_OPTIM_SGD, .lr = 0.1f, .weight_decay = -1.0f}, "weight_decay"},
        {{.kind = EQR_OPTIM_ADAM, .lr = 0.1f, .beta1 = 1.0f}, "beta1"},
        {{.kind = EQR_OPTIM_ADAM, .lr = 0.1f, .beta1 = -0.1f}, "beta1"},
        {{.kind = EQR_OPTIM_ADAMW, .lr = 0.1f, .beta2 = 1.5f}, "beta2"},
        {{.kind = EQR_OPTIM_ADAM, .lr = 0.1f, .eps = -1e-8f}, "eps"},
        {{.kind = (eqr_optim_kind)7, .lr = 0.1f}, "kind"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(eqr_optim_create(ctx, &bad[i].o));
        tu_assert_error(ctx, EQR_ERR_ARG, bad[i].needle);
    }
    assert_null(eqr_optim_create(ctx, NULL));
    tu_assert_error(ctx, EQR_ERR_ARG, "opts");
    /* lr = 0 is valid (e.g. the first step of a schedule) */
    eqr_optim_opts ok = {.kind = EQR_OPTIM_SGD, .lr = 0.0f};
    eqr_optim *opt = eqr_optim_create(ctx, &ok);
    assert_non_null(opt);
    eqr_optim_destroy(opt);
    eqr_ctx_destroy(ctx);
}

static double grad_norm(eqr_tensor *const *ts, int n) {
    double s = 0;
    for (int k = 0; k < n; k++)
        for (int64_t i = 0; i < ts[k]->numel; i++) s += (double)ts[k]->grad[i] * ts[k]->grad[i];
    return sqrt(s);
}

static void test_clip_grad_norm(void **state) {
    (void)state;
    eqr_tensor *w, *b;
    eqr_ctx *ctx = make_ctx(&w, &b);
    int64_t s[1] = {3};
    eqr_tensor *buf = eqr_param_create(ctx, "buf", 1, s, EQR_PARAM_BUFFER);
    assert_non_null(buf);
    float *G = eqr_param_grad_block(ctx);
    for (int i = 0; i < 3; i++) G[eqr_param_offset(ctx, 2) + i] = 100.0f; /* must be ignored */
    /* w grads (3,4,0,0), b grads (0,0,12,0): norm 13 */
    const float gw[NW] = {3, 4, 0, 0}, gb[NW] = {0, 0, 12, 0};
    memcpy(w->grad, gw, sizeof gw);
    memcpy(b->grad, gb, sizeof gb);
    eqr_tensor *ts[2] = {w, b};
    /* below the threshold: returned norm, gradients bit-identical */
    float n = eqr_grad_clip_norm(ctx, 20.0f);
    assert_true(n == 13.0f); /* integers: 169 and its square root are exact */
    assert_memory_equal(w->grad, gw, sizeof gw);
    assert_memory_equal(b->grad, gb, sizeof gb);
    /* above: scaled to max_norm (not above it), direction kept */
    n = eqr_grad_clip_norm(ctx, 6.5f);
    assert_true(n == 13.0f);
    /* the scale 6.5 / 13 (or / (13 + 1e-6)) and the products: a few roundings */
    double after = grad_norm(ts, 2);
    assert_true(after <= 6.5 * (1 + 4 * TU_U));
    assert_true(after >= 6.5 * (1 - 4 * TU_U) * 13 / (13 + 1e-6));
    const double ew[NW] = {1.5, 2.0, 0, 0}, eb[NW] = {0, 0, 6.0, 0};
    /* scaled by 6.5 / 13 (+ an eps of 1e-6 / 13 relative at most): 4 roundings */
    double em[NW];
    for (int i = 0; i < NW; i++) em[i] = 1e-6 / 13 / (4 * TU_U) * (ew[i] + eb[i]);
    tu_assert_close_rel("clipped w grad", w->grad, ew, em, NW, 4);
    tu_assert_close_rel("clipped b grad", b->grad, eb, em, NW, 4);
    for (int i = 0; i < 3; i++) assert_true(G[eqr_param_offset(ctx, 2) + i] == 100.0f);
    /* norm in double: many small gradients whose float sum of squares would lose digits */
    eqr_ctx *c2 = tu_ctx(3);
    int64_t big[1] = {100000};
    eqr_tensor *p = eqr_param_create(c2, "p", 1, big, 0);
    assert_non_null(p);
    double ss = 0;
    for (int64_t i = 0; i < big[0]; i++) {
        p->grad[i] = (i % 2 ? 1.0f : 1e-3f) * (float)(1 + i % 7);
        ss += (double)p->grad[i] * p->grad[i];
    }
    float nn = eqr_grad_clip_norm(c2, 1e30f);
    /* summed in double (error ~1e-16 relative), rounded to float once */
    assert_true(fabs(nn - sqrt(ss)) <= 2 * TU_U * sqrt(ss));
    eqr_ctx_destroy(c2);
    /* invalid max_norm */
    eqr_grad_clip_norm(ctx, -1.0f);
    tu_assert_error(ctx, EQR_ERR_ARG, "max_norm");
    eqr_grad_clip_norm(ctx, NAN);
    tu_assert_error(ctx, EQR_ERR_ARG, "max_norm");
    eqr_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_plain_hand),
        cmocka_unit_test(test_sgd_momentum),
        cmocka_unit_test(test_sgd_nesterov),
        cmocka_unit_test(test_sgd_weight_decay),
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_buffers_untouched),
        cmocka_unit_test(test_store_grew),
        cmocka_unit_test(test_step_on_error_context),
        cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_state_norms),
        cmocka_unit_test(test_invalid_opts),
        cmocka_unit_test(test_clip_grad_norm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
