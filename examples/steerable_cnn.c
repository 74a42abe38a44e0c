/* A small C8-steerable CNN, as shown in docs/equivariant_layers.md: build it,
 * run a forward pass and measure that its logits are invariant to rotations
 * by 90 degrees (exact on the grid) and nearly invariant at 45 degrees. */
#include <equirelax/equirelax.h>
#include <math.h>
#include <stdio.h>

#define PI 3.14159265358979323846

int main(void) {
    eqr_ctx *ctx = eqr_ctx_create(&(eqr_ctx_opts){.seed = 7});
    if (!ctx) return 1;
    /* Field types: the input image is one trivial field; hidden layers carry
     * 8 regular fields of C8 (8 channels each). */
    eqr_group c8 = eqr_group_cyclic(8);
    eqr_rep_part trivial = eqr_part_irrep(eqr_irrep_of(&c8, 0, 0), 1);
    eqr_rep_part regular = eqr_part_regular(8);
    eqr_rep *t_in = eqr_rep_create(ctx, &c8, 1, &trivial);
    eqr_rep *t_hid = eqr_rep_create(ctx, &c8, 1, &regular);

    /* x [N,1,H,W] -> logits [N,10], one module per statement (the order
     * in which they draw their initial weights) */
    eqr_steer_conv_opts same5 = {.geom = EQR_CONV2D(1, 2, 1)};
    eqr_module *net = eqr_sequential_create(ctx, "net");
    eqr_sequential_add(net, eqr_steer_conv_module(ctx, "c1", t_in, t_hid, 5, &same5));
    eqr_sequential_add(net, eqr_field_bn_module(ctx, "bn1", t_hid, NULL));
    eqr_sequential_add(net, eqr_pointwise_module(ctx, NULL, t_hid, EQR_PW_RELU, 0));
    eqr_sequential_add(net, eqr_steer_conv_module(ctx, "c2", t_hid, t_hid, 5, &same5));
    eqr_sequential_add(net, eqr_pointwise_module(ctx, NULL, t_hid, EQR_PW_RELU, 0));
    eqr_sequential_add(net, eqr_group_pool_module(ctx, NULL, t_hid, EQR_GPOOL_MAX)); /* 8 invariant fields */
    eqr_sequential_add(net, eqr_global_avgpool_module(ctx, NULL));                  /* [N, 8] */
    eqr_sequential_add(net, eqr_linear_module(ctx, "fc", 8, 10, 1));
    if (eqr_error_status(ctx)) {
        fprintf(stderr, "model: %s\n", eqr_error_message(ctx));
        return 1;
    }
    eqr_module_set_training(net, 0); /* evaluation mode */

    /* A smooth test image: two Gaussian blobs on a 33x33 grid. */
    int64_t xs[4] = {1, 1, 33, 33};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, xs);
    for (int i = 0; i < 33; i++)
        for (int j = 0; j < 33; j++)
            x->data[i * 33 + j] = expf(-((i - 12.f) * (i - 12.f) + (j - 18.f) * (j - 18.f)) / 18.f) +
                                  0.5f * expf(-((i - 20.f) * (i - 20.f) + (j - 11.f) * (j - 11.f)) / 12.f);

    double err90 = 0, err45 = 0;
    eqr_equivariance_error(ctx, eqr_module_apply, net, t_in, NULL, eqr_gelem_of(0, PI / 2), x, NULL, &err90);
    eqr_equivariance_error(ctx, eqr_module_apply, net, t_in, NULL, eqr_gelem_of(0, PI / 4), x, NULL, &err45);
    if (eqr_error_status(ctx)) {
        fprintf(stderr, "measure: %s\n", eqr_error_message(ctx));
        return 1;
    }
    printf("logit change under rotation: 90 deg %.2e, 45 deg %.2e\n", err90, err45);

    eqr_module_destroy(net);
    eqr_rep_destroy(t_in);
    eqr_rep_destroy(t_hid);
    eqr_ctx_destroy(ctx);
    return err90 < 1e-5 ? 0 : 1;
}
