/* A small C8-steerable CNN, as shown in docs/equivariant_layers.md: build it,
 * run a forward pass and measure that its logits are invariant to rotations
 * by 90 degrees (exact on the grid) and nearly invariant at 45 degrees. */
#include <equirelax/equirelax.h>
#include <math.h>
#include <stdio.h>

#define PI 3.14159265358979323846

typedef struct model {
    eqr_steer_conv *c1, *c2;
    eqr_field_bn *bn1;
    eqr_pointwise *act1, *act2;
    eqr_field_pool *pool;
    eqr_tensor *fc_w, *fc_b;
} model;

/* x [N,1,H,W] -> logits [N,10] */
static eqr_tensor *forward(eqr_ctx *ctx, void *p, eqr_tensor *x) {
    model *m = p;
    eqr_tensor *h = eqr_steer_conv_forward(ctx, m->c1, x);
    h = eqr_pointwise_forward(ctx, m->act1, eqr_field_bn_forward(ctx, m->bn1, h));
    h = eqr_pointwise_forward(ctx, m->act2, eqr_steer_conv_forward(ctx, m->c2, h));
    h = eqr_global_avgpool(ctx, eqr_field_pool_forward(ctx, m->pool, h)); /* [N, 8] */
    return eqr_linear(ctx, h, m->fc_w, m->fc_b);
}

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

    model m = {0};
    eqr_steer_conv_opts same5 = {.geom = EQR_CONV2D(1, 2, 1)};
    m.c1 = eqr_steer_conv_create(ctx, "c1", t_in, t_hid, 5, &same5);
    m.bn1 = eqr_field_bn_create(ctx, "bn1", t_hid, NULL);
    m.act1 = eqr_pointwise_create(ctx, t_hid, EQR_PW_RELU, 0);
    m.c2 = eqr_steer_conv_create(ctx, "c2", t_hid, t_hid, 5, &same5);
    m.act2 = eqr_pointwise_create(ctx, t_hid, EQR_PW_RELU, 0);
    m.pool = eqr_group_pool_create(ctx, t_hid, EQR_GPOOL_MAX); /* 8 invariant fields */
    int64_t wshape[2] = {10, 8}, bshape[1] = {10};
    m.fc_w = eqr_param_new(ctx, "fc.weight", 2, wshape, 0);
    m.fc_b = eqr_param_new(ctx, "fc.bias", 1, bshape, EQR_PARAM_NO_DECAY);
    eqr_init_xavier_uniform(ctx, m.fc_w, 1.0f);
    if (eqr_status_get(ctx)) {
        fprintf(stderr, "model: %s\n", eqr_error_message(ctx));
        return 1;
    }
    eqr_field_bn_set_training(m.bn1, 0); /* evaluation mode */

    /* A smooth test image: two Gaussian blobs on a 33x33 grid. */
    int64_t xs[4] = {1, 1, 33, 33};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, xs);
    for (int i = 0; i < 33; i++)
        for (int j = 0; j < 33; j++)
            x->data[i * 33 + j] = expf(-((i - 12.f) * (i - 12.f) + (j - 18.f) * (j - 18.f)) / 18.f) +
                                  0.5f * expf(-((i - 20.f) * (i - 20.f) + (j - 11.f) * (j - 11.f)) / 12.f);

    double err90 = 0, err45 = 0;
    eqr_equivariance_error(ctx, forward, &m, t_in, NULL, eqr_gelem_make(0, PI / 2), x, NULL, &err90);
    eqr_equivariance_error(ctx, forward, &m, t_in, NULL, eqr_gelem_make(0, PI / 4), x, NULL, &err45);
    if (eqr_status_get(ctx)) {
        fprintf(stderr, "measure: %s\n", eqr_error_message(ctx));
        return 1;
    }
    printf("logit change under rotation: 90 deg %.2e, 45 deg %.2e\n", err90, err45);

    eqr_steer_conv_destroy(m.c1);
    eqr_steer_conv_destroy(m.c2);
    eqr_field_bn_destroy(m.bn1);
    eqr_pointwise_destroy(m.act1);
    eqr_pointwise_destroy(m.act2);
    eqr_field_pool_destroy(m.pool);
    eqr_rep_destroy(t_in);
    eqr_rep_destroy(t_hid);
    eqr_ctx_destroy(ctx);
    return err90 < 1e-5 ? 0 : 1;
}
