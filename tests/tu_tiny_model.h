/* The tiny relaxed C4 model and its synthetic task, shared by the trainer
 * tests (test_train_helper.c) and the data-parallel ones (test_dist_*.c). */
#ifndef TU_TINY_MODEL_H
#define TU_TINY_MODEL_H

#include <equirelax/train.h>

/* A relaxed C4 lifting conv (1 -> 3 regular fields, 3x3), ReLU, a global
 * mean and a linear head to 2 classes. */
typedef struct tu_tiny_model {
    eqr_rep *in, *out; /* the conv's reps, freed with the model */
    eqr_gconv *g;
    eqr_relax *r;
    eqr_rlayer *rl;
    eqr_tensor *head, *bias;
} tu_tiny_model;

/* Build it in ctx (parameters drawn from ctx's RNG) with relaxation theta. */
void tu_tiny_build(eqr_ctx *ctx, tu_tiny_model *m, float theta);
/* The eqr_forward_fn of the model (mm: a tu_tiny_model). */
eqr_tensor *tu_tiny_forward(eqr_ctx *ctx, void *mm, eqr_tensor *x);
void tu_tiny_free(tu_tiny_model *m);
/* n 1x8x8 images of two classes: a bright 2x2 blob in the centre or not
 * (rotation invariant), labels alternating, noise from seed. */
void tu_tiny_data(eqr_dataset *ds, int64_t n, uint64_t seed);

#endif
