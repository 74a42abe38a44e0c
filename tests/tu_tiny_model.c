/* The tiny relaxed C4 model of the trainer tests (tu_tiny_model.h). */
#include "tu_tiny_model.h"

#include "testutil.h"

#include <stdlib.h>

eqr_tensor *tu_tiny_forward(eqr_ctx *ctx, void *mm, eqr_tensor *x) {
    tu_tiny_model *m = mm;
    eqr_tensor *h = eqr_relu(ctx, eqr_rlayer_forward(ctx, m->rl, x));
    h = eqr_mean(ctx, eqr_mean(ctx, h, 3, 0), 2, 0); /* [N, 4F] */
    return eqr_linear(ctx, h, m->head, m->bias);
}

void tu_tiny_build(eqr_ctx *ctx, tu_tiny_model *m, float theta) {
    eqr_group G = eqr_group_cyclic(4);
    m->in = tu_trivial_rep(ctx, &G, 1);
    m->out = tu_regular_rep(ctx, &G, 3);
    m->g = tu_gconv(ctx, "c1", m->in, m->out, 3, EQR_CONV2D(1, 1, 1), 0.1f);
    m->r = tu_relax(ctx, "relax", theta, 0.1f, 0.01f, 0.01f, 0);
    m->rl = eqr_relax_gconv(ctx, m->r, "c1", m->g, NULL);
    int64_t hs[2] = {2, 12};
    m->head = eqr_param_create(ctx, "head", 2, hs, 0);
    eqr_param_init_xavier_uniform(ctx, m->head, 1.0f);
    int64_t bs[1] = {2};
    m->bias = eqr_param_create(ctx, "head.bias", 1, bs, EQR_PARAM_NO_DECAY);
    assert_non_null(m->rl);
}

void tu_tiny_free(tu_tiny_model *m) {
    eqr_relax_destroy(m->r);
    eqr_gconv_destroy(m->g);
    eqr_rep_destroy(m->in);
    eqr_rep_destroy(m->out);
}

void tu_tiny_data(eqr_dataset *ds, int64_t n, uint64_t seed) {
    ds->n = n;
    ds->c = 1;
    ds->h = ds->w = 8;
    ds->classes = 2;
    ds->x = malloc((size_t)(n * 64) * sizeof(float));
    ds->y = malloc((size_t)n * sizeof(int32_t));
    tu_fill_uniform(ds->x, n * 64, seed);
    for (int64_t i = 0; i < n; i++) {
        ds->y[i] = (int32_t)(i % 2);
        float *p = ds->x + i * 64;
        for (int k = 0; k < 64; k++) p[k] = 0.25f * (p[k] + 1.0f);
        if (ds->y[i])
            for (int a = 3; a < 5; a++)
                for (int b = 3; b < 5; b++) p[a * 8 + b] += 1.5f;
    }
}
