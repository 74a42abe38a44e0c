/* The minimal relaxed training loop of docs/relaxation.md: a small C4
 * group-conv classifier built with the module container, whose two convs
 * are relaxed in one call (theta * W_r), trained a few Adam steps through
 * the shared trainer (train.h) on random data with a per-step triangle
 * schedule of theta and both penalties, then projected (fold) and checked:
 * theta ends at exactly 0 and the projected model is invariant to every
 * rotation by 90 degrees. Exit status 0 on success. */
#include <equirelax/equirelax.h>
#include <stdio.h>

enum { BATCH = 16, HW = 9, CLASSES = 3, FIELDS = 4, STEPS = 40 };

int main(void) {
    eqr_ctx *ctx = eqr_ctx_create(&(eqr_ctx_opts){.seed = 3});
    if (!ctx) return 1;
    eqr_group c4 = eqr_group_cyclic(4);
    eqr_rep_part trivial = eqr_part_irrep(eqr_irrep_of(&c4, 0, 0), 1);
    eqr_rep_part regular = eqr_part_regular(FIELDS);
    eqr_rep *t_in = eqr_rep_create(ctx, &c4, 1, &trivial);
    eqr_rep *t_hid = eqr_rep_create(ctx, &c4, 1, &regular);

    /* 1. the model, as without relaxation: x [N,1,H,W] -> logits [N,CLASSES]:
     * lifting conv, ReLU, group conv, ReLU, spatial mean, max over the 4
     * orientations (invariant), linear */
    eqr_gconv_opts same3 = {.geom = EQR_CONV2D(1, 1, 1)};
    eqr_module *net = eqr_sequential_create(ctx, "net");
    eqr_sequential_add(net, eqr_gconv_module(ctx, "c1", t_in, t_hid, 3, &same3));
    eqr_sequential_add(net, eqr_relu_module(ctx, NULL));
    eqr_sequential_add(net, eqr_gconv_module(ctx, "c2", t_hid, t_hid, 3, &same3));
    eqr_sequential_add(net, eqr_relu_module(ctx, NULL));
    eqr_sequential_add(net, eqr_global_avgpool_module(ctx, NULL));
    eqr_sequential_add(net, eqr_group_pool_module(ctx, NULL, t_hid, EQR_GPOOL_MAX));
    eqr_sequential_add(net, eqr_linear_module(ctx, "fc", FIELDS, CLASSES, 1));
    /* 2. the relaxation: W_r = 0 at start, both penalties with lambda 0.01;
     * every conv of net relaxed in place (registers c1.wr, c2.wr) */
    eqr_relax_opts ro = {.init = EQR_RELAX_INIT_ZERO, .lambda_defect = 0.01f, .lambda_norm = 0.01f};
    eqr_relax *relax = eqr_relax_create(ctx, "relax", &ro);
    net = eqr_relax_module(ctx, relax, NULL, net, NULL);

    /* 3. optimizer (after every parameter exists), the theta schedule
     * (triangle 0 -> 1 -> 0 over the STEPS optimizer steps) and the trainer */
    eqr_optim *opt = eqr_optim_create(ctx, &(eqr_optim_opts){.kind = EQR_OPTIM_ADAM, .lr = 1e-2f});
    eqr_scheduler *sched = eqr_scheduler_create(ctx, opt);
    eqr_schedule tri = {.kind = EQR_SCHED_TRIANGLE, .start = 1.0f, .total = STEPS};
    eqr_scheduler_add_value(sched, eqr_relax_theta(relax), &tri);
    eqr_trainer *tr = eqr_trainer_create(ctx, &(eqr_trainer_opts){
        .module = net, .opt = opt, .sched = sched, .relax = relax, .epochs = 1});
    if (eqr_error_status(ctx)) {
        fprintf(stderr, "setup: %s\n", eqr_error_message(ctx));
        return 1;
    }
    eqr_rlayer *r2 = eqr_module_rlayer(eqr_module_child(net, 2)); /* relaxed c2 */

    /* random images and labels stand in for a dataset */
    int64_t xs[4] = {BATCH, 1, HW, HW};
    int32_t labels[BATCH];
    eqr_rng data_rng;
    eqr_rng_seed(&data_rng, 11);
    for (int step = 0; step < STEPS; step++) {
        eqr_tensor *x = eqr_tensor_zeros(ctx, 4, xs);
        if (x) eqr_tensor_normal(x, &data_rng, 1.0f);
        for (int i = 0; i < BATCH; i++) labels[i] = (int32_t)eqr_rng_below(&data_rng, CLASSES);

        /* 4. the task loss; the trainer adds lambda (ssqrt(sum LD) +
         * ssqrt(sum N)) (the penalty reads the activation norms the forward
         * just recorded), runs backward, the optimizer step, then the
         * scheduler (theta for the next step), and resets the step */
        eqr_tensor *task = eqr_softmax_cross_entropy(ctx, eqr_module_forward(ctx, net, x), labels);
        double loss = task ? task->data[0] : 0, pen = 0;
        if (!task || eqr_trainer_step(tr, task, BATCH, &pen) != EQR_OK) break;

        if (step % 10 == 0 || step == STEPS - 1) {
            eqr_rlayer_stats st;
            eqr_rlayer_get_stats(ctx, r2, &st);
            printf("step %2d  loss %.4f  penalty %.4f  theta(next) %.3f  c2: |W_r| %.4f "
                   "|W_r x| %.4f  LD %.3g\n",
                   step, loss, pen, eqr_relax_theta(relax)->data[0], st.wr_norm, st.act_norm,
                   st.defect);
        }
    }
    if (eqr_error_status(ctx)) {
        fprintf(stderr, "training: %s\n", eqr_error_message(ctx));
        return 1;
    }

    /* 5. project: the schedule ended at theta = 0 exactly; fold is then the
     * same as drop. The model is now exactly C4-invariant. */
    float theta_end = eqr_relax_theta(relax)->data[0];
    eqr_relax_project(ctx, relax, EQR_PROJECT_FOLD);
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, xs);
    if (x) eqr_tensor_normal(x, &data_rng, 1.0f);
    double err = 1;
    eqr_equivariance_error_max(ctx, eqr_module_apply, net, t_in, NULL, x, NULL, 0, &err);
    printf("theta at the end %g; projected model: max C4 invariance error %.3g\n", theta_end, err);
    int ok = eqr_error_status(ctx) == EQR_OK && theta_end == 0.0f && err <= 1e-5;

    eqr_trainer_destroy(tr);
    eqr_scheduler_destroy(sched);
    eqr_optim_destroy(opt);
    eqr_module_destroy(net);
    eqr_relax_destroy(relax);
    eqr_rep_destroy(t_in);
    eqr_rep_destroy(t_hid);
    eqr_ctx_destroy(ctx);
    return ok ? 0 : 1;
}
