/* The minimal relaxed training loop of docs/relaxation.md: a small C4
 * group-conv classifier whose two convs carry relaxation terms theta * W_r,
 * trained a few Adam steps on random data with a per-step triangle schedule
 * of theta and both penalties, then projected (fold) and checked: theta
 * ends at exactly 0 and the projected model is invariant to every rotation
 * by 90 degrees. Exit status 0 on success. */
#include <equirelax/equirelax.h>
#include <stdio.h>
#include <string.h>

enum { BATCH = 16, HW = 9, CLASSES = 3, FIELDS = 4, STEPS = 40 };

typedef struct model {
    eqr_gconv *c1, *c2;
    eqr_relax *relax;
    eqr_rlayer *r1, *r2;
    eqr_tensor *fc_w, *fc_b;
} model;

/* x [N,1,H,W] -> logits [N,CLASSES]: relaxed lifting conv, ReLU, relaxed
 * group conv, ReLU, spatial mean, max over the 4 orientations, linear. */
static eqr_tensor *forward(eqr_ctx *ctx, void *p, eqr_tensor *x) {
    model *m = p;
    eqr_tensor *h = eqr_relu(ctx, eqr_rlayer_forward(ctx, m->r1, x));
    h = eqr_relu(ctx, eqr_rlayer_forward(ctx, m->r2, h));
    h = eqr_global_avgpool(ctx, h); /* [N, FIELDS*4] */
    int64_t s3[3] = {-1, FIELDS, 4};
    h = eqr_max(ctx, eqr_reshape(ctx, h, 3, s3), 2, 0); /* [N, FIELDS], invariant */
    return eqr_linear(ctx, h, m->fc_w, m->fc_b);
}

int main(void) {
    eqr_ctx *ctx = eqr_ctx_create(&(eqr_ctx_opts){.seed = 3});
    if (!ctx) return 1;
    eqr_group c4 = eqr_group_cyclic(4);
    eqr_rep_part trivial = eqr_part_irrep(eqr_irrep_of(&c4, 0, 0), 1);
    eqr_rep_part regular = eqr_part_regular(FIELDS);
    eqr_rep *t_in = eqr_rep_create(ctx, &c4, 1, &trivial);
    eqr_rep *t_hid = eqr_rep_create(ctx, &c4, 1, &regular);

    /* 1. the equivariant layers, as without relaxation */
    model m = {0};
    eqr_gconv_opts same3 = {.geom = EQR_CONV2D(1, 1, 1)};
    m.c1 = eqr_gconv_create(ctx, "c1", t_in, t_hid, 3, &same3);
    m.c2 = eqr_gconv_create(ctx, "c2", t_hid, t_hid, 3, &same3);
    /* 2. the relaxation: W_r = 0 at start, both penalties with lambda 0.01 */
    eqr_relax_opts ro = {.init = EQR_RELAX_INIT_ZERO, .lambda_defect = 0.01f, .lambda_norm = 0.01f};
    m.relax = eqr_relax_create(ctx, "relax", &ro);
    m.r1 = eqr_relax_gconv(ctx, m.relax, "c1", m.c1, NULL); /* registers c1.wr */
    m.r2 = eqr_relax_gconv(ctx, m.relax, "c2", m.c2, NULL);
    int64_t ws[2] = {CLASSES, FIELDS}, bs[1] = {CLASSES};
    m.fc_w = eqr_param_new(ctx, "fc.weight", 2, ws, 0);
    m.fc_b = eqr_param_new(ctx, "fc.bias", 1, bs, EQR_PARAM_NO_DECAY);
    eqr_init_xavier_uniform(ctx, m.fc_w, 1.0f);

    /* 3. optimizer (after every parameter exists) and the theta schedule:
     * triangle 0 -> 1 -> 0 over the STEPS optimizer steps */
    eqr_optim *opt = eqr_optim_create(ctx, &(eqr_optim_opts){.kind = EQR_OPTIM_ADAM, .lr = 1e-2f});
    eqr_scheduler *sched = eqr_scheduler_create(ctx, opt);
    eqr_schedule tri = {.kind = EQR_SCHED_TRIANGLE, .start = 1.0f, .total = STEPS};
    eqr_scheduler_add_value(sched, eqr_relax_theta(m.relax), &tri);
    if (eqr_status_get(ctx)) {
        fprintf(stderr, "setup: %s\n", eqr_error_message(ctx));
        return 1;
    }

    /* random images and labels stand in for a dataset */
    int64_t xs[4] = {BATCH, 1, HW, HW};
    int32_t labels[BATCH];
    eqr_rng data_rng;
    eqr_rng_seed(&data_rng, 11);
    for (int step = 0; step < STEPS; step++) {
        eqr_step_reset(ctx);
        eqr_zero_grad(ctx);
        eqr_tensor *x = eqr_tensor_zeros(ctx, 4, xs);
        if (x) eqr_tensor_normal(x, &data_rng, 1.0f);
        for (int i = 0; i < BATCH; i++) labels[i] = (int32_t)eqr_rng_below(&data_rng, CLASSES);

        /* 4. loss = task + lambda (ssqrt(sum LD) + ssqrt(sum N)): the
         * penalty reads the activation norms the forward just recorded */
        eqr_tensor *task = eqr_softmax_cross_entropy(ctx, forward(ctx, &m, x), labels);
        eqr_tensor *pen = eqr_relax_penalty(ctx, m.relax);
        eqr_tensor *loss = eqr_add(ctx, task, eqr_sum_all(ctx, pen));
        if (!loss || eqr_backward(ctx, loss) != EQR_OK) break;

        /* 5. optimizer step, then the scheduler sets theta for the next step */
        eqr_optim_step(opt);
        eqr_scheduler_step(sched);

        if (step % 10 == 0 || step == STEPS - 1) {
            eqr_rlayer_stats st;
            eqr_rlayer_get_stats(ctx, m.r2, &st);
            printf("step %2d  loss %.4f  penalty %.4f  theta(next) %.3f  c2: |W_r| %.4f "
                   "|W_r x| %.4f  LD %.3g\n",
                   step, task->data[0], pen->data[0], eqr_relax_theta(m.relax)->data[0],
                   st.wr_norm, st.act_norm, st.defect);
        }
    }
    if (eqr_status_get(ctx)) {
        fprintf(stderr, "training: %s\n", eqr_error_message(ctx));
        return 1;
    }

    /* 6. project: the schedule ended at theta = 0 exactly; fold is then the
     * same as drop. The model is now exactly C4-invariant. */
    float theta_end = eqr_relax_theta(m.relax)->data[0];
    eqr_relax_project(ctx, m.relax, EQR_PROJECT_FOLD);
    eqr_step_reset(ctx);
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, xs);
    if (x) eqr_tensor_normal(x, &data_rng, 1.0f);
    double err = 1;
    eqr_equivariance_error_max(ctx, forward, &m, t_in, NULL, x, NULL, 0, &err);
    printf("theta at the end %g; projected model: max C4 invariance error %.3g\n", theta_end, err);
    int ok = eqr_status_get(ctx) == EQR_OK && theta_end == 0.0f && err <= 1e-5;

    eqr_scheduler_destroy(sched);
    eqr_optim_destroy(opt);
    eqr_relax_destroy(m.relax);
    eqr_gconv_destroy(m.c1);
    eqr_gconv_destroy(m.c2);
    eqr_rep_destroy(t_in);
    eqr_rep_destroy(t_hid);
    eqr_ctx_destroy(ctx);
    return ok ? 0 : 1;
}
