/* Adaptive theta by constrained optimisation (relax.h opts.adaptive): the
 * per-layer thetas are learnable parameters with a gradient through every
 * kind's forward (finite differences), the penalty's multiplier term and
 * its gradient, the dual ascent (hard and resilient), training that drives
 * the thetas under an annealed bound and ends exactly equivariant, and a
 * bit-exact resume with the multipliers in the checkpoint. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"
#include "tu_tiny_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static eqr_relax *adaptive(eqr_ctx *ctx, float theta, float slack) {
    eqr_relax_opts ro = {.theta = theta, .init = EQR_RELAX_INIT_NORMAL, .init_std = 0.1f,
                         .lambda_defect = 0.01f, .lambda_norm = 0.01f, .adaptive = 1,
                         .dual_lr = 0.5f, .slack_cost = slack};
    eqr_relax *r = eqr_relax_create(ctx, "relax", &ro);
    assert_non_null(r);
    return r;
}

/* The tiny C4 model of tu_tiny_model.h with an adaptive relaxation. */
static void tiny_adaptive(eqr_ctx *ctx, tu_tiny_model *m, float theta, float slack) {
    eqr_group G = eqr_group_cyclic(4);
    m->in = tu_trivial_rep(ctx, &G, 1);
    m->out = tu_regular_rep(ctx, &G, 3);
    m->g = tu_gconv(ctx, "c1", m->in, m->out, 3, EQR_CONV2D(1, 1, 1), 0.1f);
    m->r = adaptive(ctx, theta, slack);
    m->rl = eqr_relax_gconv(ctx, m->r, "c1", m->g, NULL);
    assert_non_null(m->rl);
    m->head = eqr_param_create(ctx, "head", 2, (int64_t[]){2, 12}, 0);
    eqr_param_init_xavier_uniform(ctx, m->head, 1.0f);
    m->bias = eqr_param_create(ctx, "head.bias", 1, (int64_t[]){2}, EQR_PARAM_NO_DECAY);
}

static void test_parameters(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(1);
    tu_tiny_model m;
    tiny_adaptive(ctx, &m, 0.4f, 0.0f);
    eqr_tensor *th = eqr_param_find(ctx, "c1.theta"), *mu = eqr_param_find(ctx, "c1.mult");
    assert_non_null(th);
    assert_non_null(mu);
    assert_ptr_equal(eqr_rlayer_theta(m.rl), th);
    assert_ptr_equal(eqr_rlayer_multiplier(m.rl), mu);
    assert_true(th->flags & EQR_T_REQUIRES_GRAD); /* learnable */
    assert_false(mu->flags & EQR_T_REQUIRES_GRAD);
    assert_true(th->data[0] == 0.4f && mu->data[0] == 0.0f);
    tu_tiny_free(&m);
    /* bad options */
    eqr_relax_opts bad = {.adaptive = 1, .dual_lr = -1.0f};
    assert_null(eqr_relax_create(ctx, "r2", &bad));
    tu_assert_error(ctx, EQR_ERR_ARG, "dual_lr");
    eqr_ctx_destroy(ctx);
}

/* d/dtheta through the fused relaxed conv, a relaxed linear term and a
 * relaxed VN layer, by central differences. */
typedef struct gfix {
    eqr_rlayer *l;
    float *x;
    int ndim;
    int64_t shape[4];
} gfix;

static eqr_tensor *fwd(eqr_ctx *ctx, eqr_tensor **in, void *user) {
    (void)in;
    gfix *g = user;
    return eqr_rlayer_forward(ctx, g->l, eqr_tensor_from(ctx, g->ndim, g->shape, g->x));
}

static void check_theta_grad(eqr_ctx *ctx, eqr_rlayer *l, int ndim, const int64_t *shape,
                             double depth) {
    gfix g = {.l = l, .ndim = ndim};
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (g.shape[i] = shape[i]);
    g.x = malloc(sizeof(float) * (size_t)n);
    tu_fill_uniform(g.x, n, 5);
    eqr_tensor *in[2] = {eqr_rlayer_theta(l), eqr_rlayer_wr(l)};
    tu_gradcheck(ctx, fwd, in, 2, &g, 1e-2, depth);
    free(g.x);
}

static void test_theta_gradient(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(2);
    tu_tiny_model m;
    tiny_adaptive(ctx, &m, 0.4f, 0.0f);
    /* depth: a 3x3 conv over 1 channel (9 terms) plus bias and the scale */
    check_theta_grad(ctx, m.rl, 4, (int64_t[]){2, 1, 6, 6}, 12);
    eqr_so3_rep t2 = {0, 2}, t1 = {0, 1};
    float gi[3 * 36], go[3 * 9];
    eqr_lie_rep li, lo;
    assert_int_equal(eqr_so3_rep_lie(ctx, &t2, gi, &li), EQR_OK);
    assert_int_equal(eqr_so3_rep_lie(ctx, &t1, go, &lo), EQR_OK);
    eqr_rlayer *lin = eqr_relax_linear(ctx, m.r, "lin", &li, &lo, NULL);
    assert_non_null(lin);
    check_theta_grad(ctx, lin, 2, (int64_t[]){5, 6}, 8);
    eqr_vn_linear *vn = eqr_vn_linear_create(ctx, "vn", 2, 3);
    eqr_rlayer *rv = eqr_relax_vn_linear(ctx, m.r, "vn.r", vn, NULL);
    assert_non_null(rv);
    check_theta_grad(ctx, rv, 4, (int64_t[]){2, 2, 3, 4}, 8);
    eqr_vn_linear_destroy(vn);
    tu_tiny_free(&m);
    eqr_ctx_destroy(ctx);
}

/* The penalty's multiplier term mult |theta| and its gradient mult sign(theta). */
static void test_multiplier_term(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(3);
    eqr_relax_opts ro = {.theta = -0.25f, .adaptive = 1};
    eqr_relax *r = eqr_relax_create(ctx, "relax", &ro);
    eqr_so3_rep t1 = {0, 1};
    float g[27];
    eqr_lie_rep li;
    assert_int_equal(eqr_so3_rep_lie(ctx, &t1, g, &li), EQR_OK);
    eqr_rlayer *l = eqr_relax_linear(ctx, r, "lin", &li, &li, NULL);
    assert_non_null(l);
    eqr_rlayer_multiplier(l)->data[0] = 0.75f;
    eqr_grad_zero(ctx);
    eqr_tensor *pen = eqr_relax_penalty(ctx, r);
    assert_non_null(pen);
    assert_true(pen->data[0] == 0.75f * 0.25f); /* both lambdas 0: the multiplier term alone */
    assert_int_equal(eqr_backward(ctx, pen), EQR_OK);
    assert_true(eqr_rlayer_theta(l)->grad[0] == -0.75f);
    eqr_step_reset(ctx);
    eqr_relax_destroy(r);
    eqr_ctx_destroy(ctx);
}

/* mult <- max(0, mult + dual_lr (|theta| - eps - slack_cost mult)). */
static void test_dual_step(void **state) {
    (void)state;
    eqr_ctx *ctx = tu_ctx(4);
    for (int resilient = 0; resilient < 2; resilient++) {
        tu_tiny_model m;
        tiny_adaptive(ctx, &m, 0.5f, resilient ? 2.0f : 0.0f);
        eqr_relax_theta(m.r)->data[0] = 0.2f; /* the bound */
        float *mu = eqr_rlayer_multiplier(m.rl)->data, *th = eqr_rlayer_theta(m.rl)->data;
        /* the same double operations as the update: equal to the bit */
        const double eps = (double)0.2f, c = resilient ? 2.0 : 0.0;
        assert_int_equal(eqr_relax_dual_step(ctx, m.r), EQR_OK);
        const float want1 = (float)(0.0 + 0.5 * (0.5 - eps - c * 0.0));
        assert_true(mu[0] == want1);
        assert_int_equal(eqr_relax_dual_step(ctx, m.r), EQR_OK);
        const float want2 = (float)((double)want1 + 0.5 * (0.5 - eps - c * (double)want1));
        assert_true(mu[0] == want2);
        th[0] = -0.1f; /* inside the bound: the multiplier falls, never below 0 */
        for (int k = 0; k < 20; k++) assert_int_equal(eqr_relax_dual_step(ctx, m.r), EQR_OK);
        assert_true(mu[0] == 0.0f);
        tu_tiny_free(&m);
        eqr_ctx_destroy(ctx);
        ctx = tu_ctx(4);
    }
    eqr_ctx_destroy(ctx);
}

/* Training with the bound annealed from 0.5 to 0: the theta ends within a
 * small multiple of the last bound, the projected model is exactly
 * invariant, and a run stopped and resumed from a checkpoint ends
 * bit-identical (thetas, multipliers, Adam). */
static float *train(int stop_resume, const char *ckpt, int64_t *total) {
    eqr_ctx *ctx = tu_ctx(5);
    tu_tiny_model m;
    tiny_adaptive(ctx, &m, 0.5f, 0.0f);
    eqr_optim *opt = eqr_optim_create(ctx, &(eqr_optim_opts){.kind = EQR_OPTIM_ADAM, .lr = 0.02f});
    eqr_scheduler *sch = eqr_scheduler_create(ctx, opt);
    eqr_schedule s = {.kind = EQR_SCHED_LINEAR, .start = 0.5f, .end = 0.0f, .total = 60,
                      .unit_steps = 1};
    assert_int_equal(eqr_scheduler_add_value(sch, eqr_relax_theta(m.r), &s), EQR_OK);
    eqr_dataset train;
    tu_tiny_data(&train, 80, 7);
    eqr_batcher bt;
    assert_int_equal(eqr_batcher_init(ctx, &bt, &train, 16, 1, 3), EQR_OK);
    eqr_trainer_opts to = {.forward = tu_tiny_forward, .model = &m, .opt = opt, .sched = sch,
                           .relax = m.r, .epochs = 12};
    eqr_trainer *t = eqr_trainer_create(ctx, &to);
    assert_non_null(t);
    eqr_epoch_stats st;
    float peak_mult = 0;
    for (int e = 0; e < 12; e++) {
        if (stop_resume && e == 6) { /* save, rebuild everything, load */
            uint64_t c[1] = {(uint64_t)e};
            assert_int_equal(eqr_checkpoint_save(ctx, ckpt, opt, c, 1), EQR_OK);
            eqr_trainer_destroy(t);
            eqr_batcher_free(&bt);
            eqr_scheduler_destroy(sch);
            eqr_optim_destroy(opt);
            tu_tiny_free(&m);
            eqr_ctx_destroy(ctx);
            ctx = tu_ctx(99);
            tiny_adaptive(ctx, &m, 0.5f, 0.0f);
            opt = eqr_optim_create(ctx, &(eqr_optim_opts){.kind = EQR_OPTIM_ADAM, .lr = 0.02f});
            sch = eqr_scheduler_create(ctx, opt);
            assert_int_equal(eqr_scheduler_add_value(sch, eqr_relax_theta(m.r), &s), EQR_OK);
            assert_int_equal(eqr_checkpoint_load(ctx, ckpt, opt, c, 1), EQR_OK);
            assert_int_equal(eqr_scheduler_sync(sch), EQR_OK);
            assert_int_equal(eqr_batcher_init(ctx, &bt, &train, 16, 1, 3), EQR_OK);
            assert_int_equal(eqr_batcher_seek(ctx, &bt, e, 0), EQR_OK);
            to.forward = tu_tiny_forward, to.model = &m, to.opt = opt, to.sched = sch, to.relax = m.r;
            t = eqr_trainer_create(ctx, &to);
            assert_non_null(t);
        }
        assert_int_equal(eqr_trainer_epoch(t, &bt, e + 1, &st), EQR_OK);
        const float mu = eqr_rlayer_multiplier(m.rl)->data[0];
        peak_mult = mu > peak_mult ? mu : peak_mult;
    }
    const float th = eqr_rlayer_theta(m.rl)->data[0];
    if (!stop_resume)
        print_message("adaptive: final |theta| %.4g (bound 0 from step 60), peak multiplier %.3g, "
                      "last loss %.4f\n", fabsf(th), peak_mult, st.loss);
    /* the multipliers acted and pulled theta far below its start */
    assert_true(peak_mult > 0.0f);
    assert_true(fabsf(th) < 0.05f);
    assert_int_equal(eqr_relax_project(ctx, m.r, EQR_PROJECT_FOLD), EQR_OK);
    assert_true(eqr_rlayer_theta(m.rl)->data[0] == 0.0f);
    *total = eqr_param_num_scalars(ctx);
    float *out = malloc(sizeof(float) * (size_t)*total);
    memcpy(out, eqr_param_data_block(ctx), sizeof(float) * (size_t)*total);
    eqr_trainer_destroy(t);
    eqr_batcher_free(&bt);
    eqr_dataset_free(&train);
    eqr_scheduler_destroy(sch);
    eqr_optim_destroy(opt);
    tu_tiny_free(&m);
    eqr_ctx_destroy(ctx);
    return out;
}

static void test_training_and_resume(void **state) {
    (void)state;
    char ckpt[] = "/tmp/eqr_adaptive_XXXXXX";
    int fd = mkstemp(ckpt);
    assert_true(fd >= 0);
    close(fd);
    int64_t n0, n1;
    float *a = train(0, ckpt, &n0), *b = train(1, ckpt, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(a, b, sizeof(float) * (size_t)n0);
    free(a);
    free(b);
    remove(ckpt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parameters),      cmocka_unit_test(test_theta_gradient),
        cmocka_unit_test(test_multiplier_term), cmocka_unit_test(test_dual_step),
        cmocka_unit_test(test_training_and_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
