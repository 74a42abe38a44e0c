/* Writes tests/data/ckpt_v1.ckpt, a checkpoint of format version 1, with the
 * library as it was before checkpoints matched names (main at f22c6a0):
 *   cc -I$MAIN/include make_ckpt_v1.c $BUILD/libequirelax.a -fopenmp -lopenblas -lz -lm
 * Values follow formulas test_io_checkpoint_byname.c recomputes: element e of the
 * p-th parameter holds 100 p + e + 0.5, its Adam m -(100 p + e) - 0.25 and its
 * v 1000 + 100 p + e; 7 steps, lr 0.0125, RNG {1,2,3,4}, counters {11, 22}. */
#include <equirelax/equirelax.h>
#include <stdio.h>

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "ckpt_v1.ckpt";
    eqr_ctx *ctx = eqr_ctx_create(NULL);
    int64_t s0[2] = {3, 5}, s1[1] = {5}, s3[2] = {2, 5};
    eqr_param_create(ctx, "enc.weight", 2, s0, 0);
    eqr_param_create(ctx, "enc.bias", 1, s1, EQR_PARAM_NO_DECAY);
    eqr_param_create(ctx, "bn.running_mean", 1, s1, EQR_PARAM_BUFFER);
    eqr_param_create(ctx, "head.weight", 2, s3, 0);
    eqr_optim_opts o = {.kind = EQR_OPTIM_ADAM, .lr = 0.0125f};
    eqr_optim *opt = eqr_optim_create(ctx, &o);
    float *st = eqr_optim_state(opt);
    int64_t total = eqr_param_num_scalars(ctx);
    for (int p = 0; p < eqr_param_num_tensors(ctx); p++) {
        eqr_tensor *t = eqr_param_at(ctx, p);
        int64_t off = eqr_param_offset(ctx, p);
        for (int64_t e = 0; e < t->numel; e++) {
            t->data[e] = (float)(100 * p + e) + 0.5f;
            st[off + e] = -(float)(100 * p + e) - 0.25f;
            st[total + off + e] = 1000.0f + (float)(100 * p + e);
        }
    }
    eqr_optim_set_num_steps(opt, 7);
    eqr_rng *r = eqr_ctx_rng(ctx);
    for (int k = 0; k < 4; k++) r->s[k] = (uint64_t)k + 1;
    uint64_t c[2] = {11, 22};
    if (eqr_checkpoint_save(ctx, path, opt, c, 2) != EQR_OK) {
        fprintf(stderr, "%s\n", eqr_error_message(ctx));
        return 1;
    }
    eqr_optim_destroy(opt);
    eqr_ctx_destroy(ctx);
    return 0;
}
