/* Internal structure of relaxations (relax.h), shared by the relaxed-layer
 * kinds: group / steerable convs (relax_conv.c), linear maps of Lie-algebra
 * representations (relax_linear.c) and the 3D layer modules (vector neurons,
 * EGNN), which create their relaxed layers through eqr__rlayer_new. */
#ifndef EQR_RELAX_INTERNAL_H
#define EQR_RELAX_INTERNAL_H

#include "core/internal.h"
#include "equirelax/relax.h"

/* What a kind of relaxed layer does; every function pointer is required
 * unless noted. */
typedef struct eqr_rlayer_ops {
    const char *kind; /* "gconv", "steer_conv", "linear", "vn_linear", ... */
    /* Fused f_eq(x) + theta W_r x (or theta W_r x for a bare term). Must
     * skip W_r entirely when theta == 0 and nothing needs it, and record
     * this step's activation-norm term with eqr__rlayer_set_norm when
     * eqr__rlayer_wants_norm says so. */
    eqr_tensor *(*forward)(eqr_ctx *ctx, eqr_rlayer *l, eqr_tensor *x);
    /* LD of W_r (weight form) as a differentiable scalar [1]. */
    eqr_tensor *(*defect)(eqr_ctx *ctx, eqr_rlayer *l);
    /* Add theta * (equivariant part of W_r) into the equivariant layer's
     * weights (no gradient recorded); what it leaves in W_r does not
     * matter, projection zeroes W_r next. NULL: fold acts as drop. */
    eqr_status (*fold)(eqr_ctx *ctx, eqr_rlayer *l, float theta);
    /* Orthogonal split: theta * P W_r into the weights AND W_r -= P W_r,
     * so the layer's function stays the same (no gradient recorded, no
     * allocation: scratch comes from construction). It is a fold, and the
     * kinds that have it use it as their fold. NULL with fold NULL. */
    eqr_status (*split)(eqr_ctx *ctx, eqr_rlayer *l, float theta);
    /* ||f_eq x|| (NaN for a bare term, which has no f_eq of its own) and
     * ||W_r x|| on x, without gradients (telemetry, eqr_rlayer_probe). */
    eqr_status (*probe)(eqr_ctx *ctx, eqr_rlayer *l, eqr_tensor *x, double *eq_norm,
                        double *wr_norm);
    /* Free impl (NULL: impl is not owned). */
    void (*destroy)(void *impl);
    /* 1: the equivariant part lives in the layer's own parameters (the
     * relaxed group conv), so projection calls fold in both modes and
     * whatever theta, before W_r is zeroed; 0: fold in FOLD mode at
     * theta != 0 only. */
    int fold_always;
} eqr_rlayer_ops;

struct eqr_rlayer {
    const eqr_rlayer_ops *ops;
    eqr_relax *relax;
    char name[EQR_NAME_LEN];
    eqr_tensor *wr;    /* "<name>.wr" */
    eqr_tensor *theta; /* own "<name>.theta" or the relaxation's */
    eqr_tensor *mult;  /* adaptive: the Lagrange multiplier "<name>.mult"; else NULL */
    int own_theta;
    void *impl;        /* the kind's data (wrapped layer, generators, ...) */
    /* This step's activation-norm term N (scalar [1], step arena) or NULL;
     * consumed (set to NULL) by eqr_relax_penalty. */
    eqr_tensor *norm_term;
    /* This step's activation-form Lie derivative term, same life cycle.
     * When recorded it stands in for ops->defect in the sum of LD (a
     * layer's LD is one form or the other, never both). */
    eqr_tensor *lie_act_term;
    float last_act_norm; /* ||W_r x|| of the last recorded forward, -1 if none */
    eqr_tensor *last_x;      /* input of the last forward (step arena) ... */
    uint64_t last_x_step;    /* ... valid while ctx->step_id equals this */
};

/* Register a relaxed layer of the given kind in r: creates "<name>.wr" with
 * the given shape (initialised per r's opts) and, if opts->own_theta,
 * "<name>.theta". impl is handed to ops->destroy when r is destroyed.
 * NULL on error (recorded; impl is then destroyed too). */
eqr_rlayer *eqr__rlayer_new(eqr_ctx *ctx, eqr_relax *r, const char *name,
                            const eqr_rlayer_ops *ops, void *impl, int ndim,
                            const int64_t *wr_shape, const eqr_rlayer_opts *opts);

/* Current theta of the layer. */
float eqr__rlayer_theta(const eqr_rlayer *l);
/* theta * t: through the tape (a gradient for theta) when theta is
 * learnable (adaptive), else a constant scale. Every kind scales its W_r
 * term with this. */
eqr_tensor *eqr__rlayer_scale(eqr_ctx *ctx, const eqr_rlayer *l, eqr_tensor *t);
/* 1 if this forward must record the activation-norm term: gradients
 * enabled and lambda_norm > 0. */
int eqr__rlayer_wants_norm(eqr_ctx *ctx, const eqr_rlayer *l);
/* 1 if W_r takes part in this forward at all (theta != 0, or a penalty
 * needs W_r x). */
int eqr__rlayer_active(eqr_ctx *ctx, const eqr_rlayer *l);
/* The input the penalty terms (N, activation-form LD) of this forward are
 * computed on: x itself (EQR_PENALTY_FULL) or a view of x's data that
 * takes no gradient (EQR_PENALTY_DETACHED). NULL on error (recorded). */
eqr_tensor *eqr__rlayer_penalty_input(eqr_ctx *ctx, const eqr_rlayer *l, eqr_tensor *x);
/* 1 if the penalties' gradient must not reach the layer's input. */
int eqr__rlayer_detached(const eqr_rlayer *l);
/* Record N (scalar [1]) for this step and its value for telemetry. */
void eqr__rlayer_set_norm(eqr_rlayer *l, eqr_tensor *n);
/* Number of images the norm estimate uses for a batch of n (all of them in
 * exact mode), and the factor n / m that scales the estimate. */
int64_t eqr__rlayer_norm_rows(const eqr_rlayer *l, int64_t n, float *scale);
/* ||t|| (Frobenius, accumulated in double); NaN for NULL. */
double eqr__norm_of(eqr_ctx *ctx, eqr_tensor *t);
/* A pair of Lie-algebra representations (in, out) with private copies of
 * their generators, one block: free() releases it. The data of the kind
 * "linear" (eqr_relax_linear), and of kinds adding such a term to an
 * equivariant map. */
typedef struct eqr__lie_nz {
    int32_t r, c;
    float v;
} eqr__lie_nz;
typedef struct eqr__lie_pair {
    int in_dim, out_dim, ngen;
    /* The generators' nonzero entries, row-major per generator (they are
     * sparse: block-diagonal, a few entries per row), so LD costs
     * dim x nnz, not dim^3: generator a of the input side is
     * nz[in_off[a] .. in_off[a + 1]), of the output side
     * nz[out_off[a] .. out_off[a + 1]). */
    int64_t *in_off, *out_off; /* [ngen + 1] each */
    eqr__lie_nz *nz;
} eqr__lie_pair;
/* Validated copy of in, out (errors named after fn); NULL on error. */
eqr__lie_pair *eqr__lie_pair_new(eqr_ctx *ctx, const char *fn, const eqr_lie_rep *in,
                                 const eqr_lie_rep *out);
/* theta W_r x for x [..., in_dim] with l's W_r [out_dim, in_dim] (zeros,
 * W_r untouched, when theta == 0 and no penalty needs it), recording the
 * activation norm and the activation-form Lie derivative as the options
 * say: the forward of kind "linear". */
eqr_tensor *eqr__lie_forward(eqr_ctx *ctx, eqr_rlayer *l, const eqr__lie_pair *p, eqr_tensor *x);
/* Weight-form LD sum_A ||W_r drho_in(A) - drho_out(A) W_r||^2, scalar [1]. */
eqr_tensor *eqr__lie_defect(eqr_ctx *ctx, eqr_rlayer *l, const eqr__lie_pair *p);

/* Safe square root op: y = sqrt(x) for a scalar x >= 0, dy/dx = 0 at 0. */
eqr_tensor *eqr__ssqrt(eqr_ctx *ctx, eqr_tensor *x);

#endif
