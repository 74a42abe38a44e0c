/* Out-of-tree consumer: the README snippet, checked by scripts/check_install.sh. */
#include <equirelax/equirelax.h>
#include <stdio.h>

int main(void) {
    eqr_ctx *ctx = eqr_ctx_create(&(eqr_ctx_opts){.seed = 1});
    if (!ctx) return 1;
    int64_t wshape[2] = {1, 3};
    eqr_tensor *w = eqr_param_create(ctx, "w", 2, wshape, 0);
    eqr_optim *opt = eqr_optim_create(ctx, &(eqr_optim_opts){.kind = EQR_OPTIM_ADAM, .lr = 0.1f});
    float xs[3] = {1, 2, 3}, target = 2.0f;
    int64_t xshape[2] = {1, 3}, yshape[2] = {1, 1};
    float loss_value = 0;
    for (int step = 0; step < 200; step++) {
        eqr_tensor *x = eqr_tensor_wrap(ctx, xs, 2, xshape);
        eqr_tensor *y = eqr_linear(ctx, x, w, NULL);               /* y = x w^T */
        eqr_tensor *t = eqr_tensor_wrap(ctx, &target, 2, yshape);
        eqr_tensor *loss = eqr_mse(ctx, y, t);
        eqr_grad_zero(ctx);
        if (!loss || eqr_backward(ctx, loss) || eqr_optim_step(opt)) {
            fprintf(stderr, "error: %s\n", eqr_error_message(ctx));
            return 1;
        }
        loss_value = loss->data[0];
        eqr_step_reset(ctx);
    }
    printf("final loss %.6f\n", loss_value);
    eqr_optim_destroy(opt);
    eqr_ctx_destroy(ctx);
    return loss_value < 1e-3f ? 0 : 1;
}
