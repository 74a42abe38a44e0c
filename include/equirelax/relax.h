/* equirelax constraint relaxation (Pertigkiozoglou et al., NeurIPS 2024):
 * every equivariant layer f_eq may carry a learnable unconstrained term,
 *
 *     y = f_eq(x) + theta * W_r x,
 *
 * theta is annealed to 0 by a scheduler (schedule.h) and the model is then
 * projected to an exactly equivariant one. Two penalties keep the relaxed
 * model near the equivariant space:
 *
 *     loss = task + lambda_defect * ssqrt(sum_layers LD)
 *                 + lambda_norm   * ssqrt(sum_layers N)
 *
 * LD  equivariance defect of W_r:
 *       finite groups acting exactly on the grid (group convs): the
 *         generator defect sum_{g in generators} ||W_r - g.W_r||^2, where g
 *         rotates / flips each filter AND permutes the input and output
 *         fields' channels by rho_in(g), rho_out(g);
 *       steerable convs (any group): ||W_r - P W_r||^2, P the orthogonal
 *         projection onto the span of the layer's equivariant basis (when
 *         that span holds every equivariant bank of a grid-exact finite
 *         group, this is the full-group defect sum_{g in G} ||W_r - g.W_r||^2
 *         divided by 2 |G|; band limits can make the span smaller);
 *       linear maps between representations of continuous groups: the Lie
 *         derivative sum_A ||W_r drho_in(A) - drho_out(A) W_r||^2 over the
 *         Lie algebra generators A (weight form), or
 *         sum_A ||(W_r drho_in(A) - drho_out(A) W_r) x||^2 (activation form).
 * N   activation norm ||W_r x||^2 summed over the batch and all output
 *     entries (exact: one extra conv of the batch with W_r), or estimated
 *     (opts.norm_subsample = m < B) from the first m images of the batch
 *     times B / m: an extra conv of m images only; unbiased when the order
 *     of the images in a batch is random (shuffled batches); m >= B is exact.
 * ssqrt is a safe square root: its gradient is defined as 0 at 0, so the
 * penalties stay finite when W_r starts at exactly zero.
 *
 * Fused computation: a relaxed conv runs as ONE conv with filter bank
 * T(W) + theta W_r; the weight gradient splits into T^*(dBank) for W and
 * theta dBank for W_r. With theta == 0 and both penalties off, W_r is not
 * touched at all.
 *
 * theta is a one-element buffer in the parameter store (the relaxation's
 * "<name>.theta", or a layer's own "<layer>.theta"), so checkpoints save it
 * and a scheduler drives it (eqr_scheduler_add_value). W_r is a parameter
 * "<layer>.wr", saved like any other. To evaluate the projected model in the
 * middle of training, copy the store's data block (eqr_param_data_block,
 * eqr_param_num_scalars floats), project, evaluate, and copy it back. */
#ifndef EQUIRELAX_RELAX_H
#define EQUIRELAX_RELAX_H

#include "egnn.h"
#include "gconv.h"
#include "irreps_nn.h"
#include "segnn.h"
#include "module.h"
#include "steerable.h"
#include "vn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum eqr_relax_init {
    EQR_RELAX_INIT_ZERO = 0,  /* W_r = 0 (the paper's default) */
    EQR_RELAX_INIT_NORMAL = 1 /* W_r ~ N(0, init_std^2) from the context RNG */
} eqr_relax_init;

typedef enum eqr_lie_form {
    EQR_LIE_WEIGHT = 0,    /* sum_A ||W dA_in - dA_out W||^2 */
    EQR_LIE_ACTIVATION = 1 /* sum_A ||(W dA_in - dA_out W) x||^2 over the batch */
} eqr_lie_form;

typedef enum eqr_project_mode {
    EQR_PROJECT_DROP = 0, /* drop theta W_r (the paper) */
    EQR_PROJECT_FOLD = 1  /* add theta * (equivariant part of W_r) into f_eq's
                             weights first: group average / least-squares fit
                             in the steerable basis */
} eqr_project_mode;

/* Where the penalties' gradient goes. The paper computes N and the
 * activation-form Lie derivative on the DETACHED input x: they shape W_r
 * only. The full form also sends their gradient into x and so into every
 * earlier layer, which learns to shrink the features W_r would amplify
 * (measured to hurt: docs/relaxation.md). */
typedef enum eqr_penalty_grad {
    EQR_PENALTY_DETACHED = 0, /* d penalty / dx = 0 (the paper; default) */
    EQR_PENALTY_FULL = 1      /* gradient into x and the upstream layers too */
} eqr_penalty_grad;

/* Options of a relaxation; zero-initialise for the defaults. */
typedef struct eqr_relax_opts {
    float theta;          /* initial global theta (default 0) */
    eqr_relax_init init;  /* W_r initialisation (default zero) */
    float init_std;       /* EQR_RELAX_INIT_NORMAL; 0 = 1e-2 */
    float lambda_defect;  /* weight of ssqrt(sum LD); 0 = off */
    float lambda_norm;    /* weight of ssqrt(sum N); 0 = off */
    int norm_subsample;   /* 0 = exact N; m > 0: estimate from m images */
    eqr_lie_form lie_form; /* LD of linear maps of continuous groups */
    eqr_penalty_grad penalty_grad; /* N / activation LD on detached x (default) or not */
    /* ADAPTIVE theta by constrained optimisation (as ACE, Manolache et al.,
     * NeurIPS 2025). With adaptive = 1 every relaxed layer gets its own
     * LEARNABLE "<name>.theta" (a parameter, no weight decay, starting at
     * opts.theta) and a Lagrange multiplier "<name>.mult" (buffer, >= 0), and
     * the relaxation's own theta buffer becomes the constraint's bound
     * eps(t): |theta_i| <= eps(t). Schedule that buffer down to 0 as for the
     * paper's theta (any eqr_schedule on eqr_relax_theta); the penalty
     * gains sum_i mult_i |theta_i| and eqr_relax_dual_step, called after
     * each optimizer step, does the dual ascent
     *     mult_i <- max(0, mult_i + dual_lr (|theta_i| - eps - slack_cost mult_i))
     * (slack_cost > 0: the resilient form, in which the bound of layer i
     * relaxes by the slack s_i = slack_cost mult_i that balances the cost
     * of the slack against the multiplier, so a constraint gives way where
     * keeping it costs the loss most; 0: the hard constraint).
     * Thetas and multipliers live in the store, so checkpoints and resume
     * stay bit-exact; projection sets every theta to 0 as always. */
    int adaptive;
    float dual_lr;    /* adaptive: dual step size; 0 = 0.1 */
    float slack_cost; /* adaptive: resilient slack cost (0 = hard constraint) */
    /* ORTHOGONAL relaxation: after every optimizer step
     * (eqr_relax_after_step) the equivariant part P W_r of each W_r is moved
     * into its layer's equivariant weights, scaled by theta (as fold does),
     * and removed from W_r:  W += theta P W_r,  W_r -= P W_r.  The function
     * is unchanged, W_r stays in the orthogonal complement of the layer's
     * equivariant span, and annealing theta away removes only the
     * non-equivariant part: what W_r learnt that is equivariant is kept.
     * P is the projection of fold (group average, steerable least squares,
     * the trace of VN blocks, Schur per irreps pair). Kinds with nothing to
     * fold into (bare "linear" terms, EGNN, SEGNN) keep W_r whole. */
    int orthogonal;
    /* The term is theta * wr_scale * W_r x (0 = 1). With Adam, whose steps
     * do not depend on the gradient's scale, this is a learning rate
     * wr_scale times the others' for the term's effect: the telemetry of
     * docs/relaxation.md found the paper's term at ~1% of the layer
     * outputs. Penalties act on W_r itself; fold and the orthogonal split
     * use theta * wr_scale; stats report theta. */
    float wr_scale;
} eqr_relax_opts;

/* The form of a relaxed layer. */
typedef enum eqr_relax_kind {
    /* f_eq(x) + theta W_r x, W_r a free term of the layer's signature (the
     * paper; every relaxable layer) */
    EQR_RELAX_KIND_ADDITIVE = 0,
    /* relaxed group convolution (Wang, Walters, Yu, ICML 2022): the filter
     * is a bank of L base filters mixed by one weight per (filter, group
     * element); group convs (eqr_gconv) only. See eqr_relax_rgconv. */
    EQR_RELAX_KIND_RGCONV = 1
} eqr_relax_kind;

/* Largest number of filter banks L of a relaxed group conv. */
#define EQR_RGCONV_MAX_BANKS 16

/* Options of one relaxed layer; NULL or zero-initialised for the defaults. */
typedef struct eqr_rlayer_opts {
    int own_theta; /* 1: the layer gets its own theta "<name>.theta",
                      initialised to the global theta's current value */
    eqr_relax_kind kind; /* default ADDITIVE */
    int nbanks;    /* RGCONV: the number L of base filters, 1..EQR_RGCONV_MAX_BANKS
                      (required: 0 is refused); must be 0 for ADDITIVE */
} eqr_rlayer_opts;

/* The relaxation of one model: the global theta, the penalty settings and
 * the list of relaxed layers. */
typedef struct eqr_relax eqr_relax;
/* One relaxed layer (opaque). */
typedef struct eqr_rlayer eqr_rlayer;

/* New relaxation; registers the buffer "<name>.theta" ([1]). NULL on error
 * (bad option values: negative lambda or init_std, negative subsample;
 * NULL/empty name; errors of eqr_param_create). opts may be NULL. */
eqr_relax *eqr_relax_create(eqr_ctx *ctx, const char *name, const eqr_relax_opts *opts);
/* Free the relaxation and its layers' own memory (NULL ok). Parameters stay
 * in the store; the wrapped equivariant layers are not freed. */
void eqr_relax_destroy(eqr_relax *r);

/* The global theta ([1] buffer in the store: a scheduler target); with
 * opts.adaptive the bound eps(t) of the layers' learnable thetas. */
eqr_tensor *eqr_relax_theta(eqr_relax *r);
/* Adaptive theta (opts.adaptive): one step of dual ascent on every layer's
 * multiplier against the current bound; call it after each optimizer step
 * (the trainer does). A no-op without opts.adaptive. */
eqr_status eqr_relax_dual_step(eqr_ctx *ctx, eqr_relax *r);
/* Orthogonal relaxation (opts.orthogonal): for every layer whose kind
 * folds, W += theta P W_r and W_r -= P W_r with the layer's current theta
 * (file comment). Callable without opts.orthogonal too (one split now). */
eqr_status eqr_relax_orthogonalize(eqr_ctx *ctx, eqr_relax *r);
/* What a training loop calls after each optimizer step and scheduler step
 * (the trainer does): eqr_relax_dual_step, then eqr_relax_orthogonalize
 * if opts.orthogonal. */
eqr_status eqr_relax_after_step(eqr_ctx *ctx, eqr_relax *r);
/* The multiplier of a layer (adaptive; NULL otherwise). */
eqr_tensor *eqr_rlayer_multiplier(const eqr_rlayer *l);
/* Set the global theta (and every layer's own theta) to value. */
void eqr_relax_set_theta(eqr_relax *r, float value);
const eqr_relax_opts *eqr_relax_get_opts(const eqr_relax *r);
/* Change the penalty weights (e.g. to turn penalties off for an ablation). */
void eqr_relax_set_lambdas(eqr_relax *r, float lambda_defect, float lambda_norm);
/* Change where the penalties' gradient goes (an ablation of the paper's
 * detached form); an unknown value is ignored. Takes effect from the next
 * forward. */
void eqr_relax_set_penalty_grad(eqr_relax *r, eqr_penalty_grad mode);

/* Relax a group conv: registers "<name>.wr" with the shape of its expanded
 * bank [Fout*|G|, in_dim, k, k] (no bias), initialised per the
 * relaxation's opts (with opts->kind == EQR_RELAX_KIND_RGCONV: the relaxed
 * group conv of eqr_relax_rgconv instead). The gconv stays owned by the caller and must outlive
 * the relaxed layer. NULL on error (recorded). */
eqr_rlayer *eqr_relax_gconv(eqr_ctx *ctx, eqr_relax *r, const char *name, eqr_gconv *layer,
                            const eqr_rlayer_opts *opts);

/* Relax a group conv as a RELAXED GROUP CONVOLUTION (Wang, Walters, Yu,
 * ICML 2022, "Approximately equivariant networks for imperfectly symmetric
 * dynamics"); eqr_relax_gconv and eqr_relax_module do this when
 * opts->kind == EQR_RELAX_KIND_RGCONV. With L = opts->nbanks base filters
 * Psi_0 .. Psi_{L-1} (each of the gconv's weight shape) and h.Psi the
 * usual group-transformed filter (the rows of output orientation h of the
 * gconv's bank T(Psi), gconv.h), the filter of output orientation h is
 *     K_h = sum_l w_eff[l][h] h.Psi_l,
 *     w_eff[l][h] = a_l + theta (D[l][h] - mean_g D[l][g]).
 * a [L] ("<name>.mix", no weight decay) holds the mean over g of the
 * weights, D [L, |G|] ("<name>.wr", the layer's W_r: its Adam moments,
 * norm and stats are those of W_r) their deviations; at theta = 1 the
 * weights are the paper's w[l][g] = a_l + D[l][g] - mean_g D[l][g]. The
 * layer is exactly equivariant whenever w_eff is equal over g: at theta =
 * 0, or with D equal over g (D = 0 at init). It is again f_eq + theta W_r
 * x, with f_eq the group conv of the filter sum_l a_l Psi_l and W_r the
 * bank sum_l (D - mean D)[l][h] h.Psi_l, so the library's schedules,
 * penalties and projection apply unchanged (docs/relaxation.md says why
 * this form rather than a spread penalty alone):
 *   LD = sum_l sum_g (D[l][g] - mean D[l])^2, the spread of the weights;
 *   N  = ||W_r x||^2, the deviation bank's output; in the default
 *        EQR_PENALTY_DETACHED form on the detached x AND base filters (N
 *        shapes D only, as it shapes only W_r elsewhere), in the FULL form
 *        with its gradient into x and the base filters too.
 * Storage: Psi_0 IS the gconv's weight; Psi_1 .. Psi_{L-1} are
 * "<name>.psi" [L-1, <weight shape>] (absent for L = 1). Init: a_l = 1/L;
 * D per the relaxation's opts.init (zero: exactly equal over g, so the
 * layer starts exactly equivariant; normal: N(0, init_std^2), equivariant
 * at theta = 0 only); Psi_l = W + delta_l with W the gconv's weight as
 * created and delta_l ~ N(0, rms(W)^2) from the context RNG, centred over
 * l, so sum_l a_l Psi_l = W: the relaxed layer starts as the strict one
 * (to rounding) with distinct base filters. Projection (either mode, any
 * theta): the gconv's weight becomes sum_l a_l Psi_l, a = (1, 0, .., 0)
 * and D = 0, so the layer computes the plain gconv (the same bank, bit
 * for bit) and eqr_gconv_forward alone gives the projected model (the
 * Reynolds average of the deviation bank is 0, so folding theta times its
 * equivariant part adds nothing). The forward costs L gathers of the bank
 * more than the plain gconv. The gconv stays owned by the caller and must
 * outlive the relaxed layer. NULL on error (recorded): EQR_ERR_ARG for
 * NULL arguments, opts NULL or nbanks outside 1..EQR_RGCONV_MAX_BANKS,
 * a name whose "<name>.wr", ".psi" or ".mix" exists. */
eqr_rlayer *eqr_relax_rgconv(eqr_ctx *ctx, eqr_relax *r, const char *name, eqr_gconv *layer,
                             const eqr_rlayer_opts *opts);

/* How far the mixing weights of a relaxed group conv moved from equal over
 * the group: "where the data broke the symmetry". Per base filter l, of
 * the weights at theta = 1, w[l][g] = a_l + D[l][g] - mean_g D[l][g]. */
typedef struct eqr_rgconv_report {
    int nbanks, order; /* L and |G| */
    float theta;       /* the layer's theta now */
    float mean[EQR_RGCONV_MAX_BANKS];   /* a_l = mean over g of w[l][g] */
    float spread[EQR_RGCONV_MAX_BANKS]; /* std over g of w[l][g] (population: / |G|) */
    /* spread / |mean| (0 when spread is 0; INFINITY when mean is 0 < spread) */
    float rel_spread[EQR_RGCONV_MAX_BANKS];
    float max_rel_spread;    /* largest rel_spread over l */
    float eff_max_rel_spread; /* |theta| max_rel_spread: that of the weights in use */
} eqr_rgconv_report;

/* Fill *out for a relaxed group conv (statistics in double, stored as
 * float). EQR_ERR_ARG for NULL arguments or a layer of another kind. */
eqr_status eqr_rgconv_get_report(eqr_ctx *ctx, const eqr_rlayer *l, eqr_rgconv_report *out);
/* The mixing weights of a relaxed group conv, w into out[l * |G| + g]
 * (L * |G| floats): at theta = 1 (effective = 0) or the ones in use now,
 * w_eff (effective = 1). EQR_ERR_ARG as eqr_rgconv_get_report. */
eqr_status eqr_rgconv_weights(eqr_ctx *ctx, const eqr_rlayer *l, int effective, float *out);
/* The kind of a relaxed layer: "gconv", "rgconv", "steer_conv", "linear",
 * "vn_linear", "irreps_linear", ...; NULL for NULL. */
const char *eqr_rlayer_kind(const eqr_rlayer *l);

/* Relax a steerable conv: W_r has the shape of its bank [out_dim, in_dim,
 * k, k]. As eqr_relax_gconv otherwise. */
eqr_rlayer *eqr_relax_steer_conv(eqr_ctx *ctx, eqr_relax *r, const char *name,
                                 eqr_steer_conv *layer, const eqr_rlayer_opts *opts);

/* Relax a VN-Linear (vn.h): registers "<name>.wr" [3 c_out, 3 c_in], a
 * dense map on the flattened vector features (row 3o + i, column 3c + j),
 * and returns a relaxed layer of kind "vn_linear" whose forward
 * (eqr_rlayer_forward, same x shapes as eqr_vn_linear_forward) is
 *     y = VN-Linear(x) + theta W_r x,
 * computed as ONE channel mix with the matrix W (x) I3 + theta W_r when
 * theta != 0, and by the plain layer when theta == 0 (W_r untouched unless
 * a penalty needs W_r x). Penalties: LD = sum_a ||W_r (I (x) L_a) -
 * (I (x) L_a) W_r||^2 over the so(3) generators (closed form, blockwise;
 * the activation form when the relaxation's opts.lie_form says so); N =
 * ||W_r x||^2 over the batch (or its first opts.norm_subsample items,
 * scaled). Fold projection adds theta * tr(B_oc) / 3 to W[o, c], B_oc the
 * 3x3 block (o, c) of W_r: the least-squares equivariant part (the maps of
 * a 3-vector commuting with SO(3) are the multiples of I3). The VN-Linear
 * stays owned by the caller and must outlive the relaxed layer. NULL on
 * error (recorded). */
eqr_rlayer *eqr_relax_vn_linear(eqr_ctx *ctx, eqr_relax *r, const char *name,
                                eqr_vn_linear *layer, const eqr_rlayer_opts *opts);

/* Relax an EGNN layer's coordinate update (egnn.h, RELAXATION there):
 * creates the term with eqr_relax_linear under name (W_r "<name>.wr",
 * [3, 6] for a layer with velocities, [3, 3] without) and attaches it
 * through eqr_egnn_set_coord_term; opts as for eqr_relax_linear. r owns
 * the term and must outlive the layer's forwards; the layer's coordinate
 * term (eqr_egnn_coord_term) is then this eqr_rlayer. NULL on error (also
 * if the layer has a coordinate term already). */
eqr_rlayer *eqr_relax_egnn(eqr_ctx *ctx, eqr_relax *r, const char *name, eqr_egnn *layer,
                           const eqr_rlayer_opts *opts);

/* Relax an irreps linear layer in -> out: registers "<name>.wr"
 * [dim(out), dim(in)], a dense map of the flat feature vectors (row = output
 * index, column = input index, the o3.h layout), and returns a relaxed
 * layer of kind "irreps_linear" whose forward (eqr_rlayer_forward, the x
 * shapes of eqr_irreps_linear_forward) is
 *     y = irreps_linear(x) + theta W_r x
 * (the layer alone when theta == 0: W_r untouched unless a penalty needs
 * W_r x). Penalties, as for eqr_relax_linear:
 *   LD = sum_k ||W_r G^in_k - G^out_k W_r||^2 over the three so(3)
 *        generators above, plus the PARITY term ||(W_r S_in - S_out W_r)/2||^2
 *        (S = diag of each entry's parity p): the squared norm of the blocks
 *        of W_r between entries of opposite parity, which the Lie derivative
 *        cannot see (parity is not connected to the identity); it equals
 *        ||W_r - P(W_r)||^2 / 4 for the parity action P(W) = S_out W S_in.
 *        Weight form, or activation form ||(...) x||^2 over the batch when
 *        the relaxation's opts.lie_form says so;
 *   N  = ||W_r x||^2 over the batch (or its first opts.norm_subsample rows
 *        of the leading axis, scaled).
 * Both are exactly 0 (in float too) for a W_r that is itself an irreps
 * linear map (blocks c I between entries of equal (l, p)).
 * Fold projection adds theta times the equivariant part of W_r to the
 * layer's weights: by Schur's lemma the equivariant maps between copy u of
 * input entry a and copy w of output entry b are c I when (l, p) agree and 0
 * otherwise, and the least-squares c of a block B is tr(B) / (2l+1), so
 * weight [w][u] of path (a, b) grows by theta tr(B) / ((2l+1) c_b), c_b the
 * layer's 1/sqrt(fan_in). This is the orthogonal (Frobenius) projection of
 * W_r onto the equivariant maps: the closest one. Blocks of W_r with no
 * matching pair are dropped. The layer stays owned by the caller and must
 * outlive the relaxed layer. NULL on error (recorded). */
eqr_rlayer *eqr_relax_irreps_linear(eqr_ctx *ctx, eqr_relax *r, const char *name,
                                    eqr_irreps_linear *layer, const eqr_rlayer_opts *opts);

/* Relax a weighted tensor product with internal weights (tensor_product.h)
 * y = tp(x1, x2), the paper's form theta W_r acting on the features:
 * registers "<name>.wr" [dim(out), dim(in1)], a dense map of x1's flat
 * vector, and returns a relaxed layer of kind "tp" whose forward is
 * eqr_rlayer_forward_tp,
 *     y = tp(x1, x2) + theta W_r x1
 * (the product alone when theta == 0, W_r untouched unless a penalty needs
 * W_r x1). The term is eqr_relax_irreps_linear's on the irreps in1 -> out:
 * LD = sum_k ||W_r G^in1_k - G^out_k W_r||^2 over the three so(3)
 * generators of both irreps plus the parity term (weight form, or the
 * activation form on x1), N = ||W_r x1||^2, both on the detached x1 by
 * default (opts.penalty_grad), so their gradient reaches W_r only.
 * Projection: drop as every kind. FOLD IS REFUSED (EQR_ERR_ARG naming the
 * layer, nothing projected, every W_r kept) when this layer's theta is not
 * 0: the term is linear in x1 alone and every output of the product is
 * bilinear in (x1, x2), so no choice of the product's weights reproduces
 * even the term's equivariant part for all x2 (it would if x2 had a
 * constant 0e component, which a product cannot know; folding into the
 * paths with a 0e of in2 would silently change the function wherever that
 * scalar is not 1). A silent drop under the name "fold" would hide that
 * the folded model differs from the relaxed one by more than the
 * non-equivariant part, hence the error. The product stays owned by the
 * caller and must outlive the relaxed layer. NULL on error (recorded;
 * EQR_ERR_ARG also for a product with external weights). */
eqr_rlayer *eqr_relax_tp(eqr_ctx *ctx, eqr_relax *r, const char *name, eqr_tp *tp,
                         const eqr_rlayer_opts *opts);
/* Forward of a relaxed tensor product: x1 [N, dim in1], x2 [N, dim in2]
 * -> [N, dim out], errors as eqr_tp_forward; EQR_ERR_ARG if l is not of
 * kind "tp". eqr_rlayer_forward refuses that kind (it takes two inputs).
 * Records x1 (and x2) for eqr_rlayer_probe. */
eqr_tensor *eqr_rlayer_forward_tp(eqr_ctx *ctx, eqr_rlayer *l, eqr_tensor *x1, eqr_tensor *x2);

/* Relax a SEGNN layer as the paper (segnn.h, RELAXATION): two terms
 * theta W_r x on its updates, "<name>.relax1.wr" [dim H, 2 dim H] on x =
 * [h, m] added to u and "<name>.relax2.wr" [dim H, dim H] on u added to
 * the update of h, each an eqr_relax_linear term on the irreps' so(3)
 * generators (LD as there: weight or activation form; N = ||W_r x||^2;
 * the penalties on the detached x by default). Parity is not penalised, as
 * in the paper and ../shared/bench/segnn_reference.py. Projection drops the
 * terms (fold acts as drop: the tensor products have no plain linear map to
 * absorb them). EQR_ERR_STATE if the layer has terms already. */
eqr_status eqr_relax_segnn_layer(eqr_ctx *ctx, eqr_relax *r, const char *name,
                                 eqr_segnn_layer *layer, const eqr_rlayer_opts *opts);
/* Relax every layer k of an N-body SEGNN under "<name>.layer<k>" (call it
 * after creating the model, so a seed gives the same equivariant weights
 * strict or relaxed). */
eqr_status eqr_relax_segnn(eqr_ctx *ctx, eqr_relax *r, const char *name, eqr_segnn *m,
                           const eqr_rlayer_opts *opts);

/* A relaxation term alone for a linear map between Lie-algebra
 * representations in -> out: W_r [out->dim, in->dim], penalised by the Lie
 * derivative (opts' lie_form). Its forward maps x [..., in->dim] to
 * theta W_r x [..., out->dim]; add it to the equivariant map's output. The
 * generators are copied. Fold-projection has no equivariant layer to fold
 * into and acts as drop, unless a layer module wraps it (e.g. vector
 * neurons). NULL on error (dims < 1, different ngen, ...). */
eqr_rlayer *eqr_relax_linear(eqr_ctx *ctx, eqr_relax *r, const char *name,
                             const eqr_lie_rep *in, const eqr_lie_rep *out,
                             const eqr_rlayer_opts *opts);

/* Forward of a relaxed layer: f_eq(x) + theta W_r x (fused for convs), or
 * theta W_r x for eqr_relax_linear. Records this step's activation-norm
 * term when gradients are enabled and lambda_norm > 0 (or the activation
 * form of the Lie derivative). Errors as the wrapped layer's forward; a
 * relaxed group or steerable conv logs the wrapped layer's warning on input
 * sizes it is not exact on (WARNINGS in gconv.h). */
eqr_tensor *eqr_rlayer_forward(eqr_ctx *ctx, eqr_rlayer *l, eqr_tensor *x);

/* Data-parallel training (dist.h): *sum holds this rank's value and gets
 * the sum over all ranks; *inv_weight gets 1 / this rank's weight in the
 * average of the gradients over ranks (size for equal shares). Collective. */
typedef eqr_status (*eqr_relax_reduce_fn)(eqr_ctx *ctx, void *user, double *sum,
                                          double *inv_weight);
/* With fn set, eqr_relax_penalty's batch terms are those of the global
 * batch: lambda_norm * ssqrt(N summed over the ranks' shares) and, with
 * opts.lie_form == EQR_LIE_ACTIVATION, lambda_defect * ssqrt(weight-form
 * LD + activation-form LD summed over the shares), with each rank's
 * gradient scaled so that the weighted mean over ranks is their gradient
 * (eqr_dist_relax_reduce). fn is called once per penalty term per step on
 * every rank. Weight-form defects alone need nothing: they are the same on
 * every rank. NULL: no reduction. */
void eqr_relax_set_reduce(eqr_relax *r, eqr_relax_reduce_fn fn, void *user);

/* The penalty lambda_defect * ssqrt(sum LD) + lambda_norm * ssqrt(sum N) of
 * this step as a differentiable scalar tensor [1] (N from the forwards since
 * the last call; it consumes them). A zero scalar if both lambdas are 0. */
eqr_tensor *eqr_relax_penalty(eqr_ctx *ctx, eqr_relax *r);

/* Sum over layers of LD (differentiable scalar [1]), for tests and
 * telemetry. The activation form uses this step's recorded inputs. */
eqr_tensor *eqr_relax_defect(eqr_ctx *ctx, eqr_relax *r);

/* The Lie derivative of a linear map in closed form: for W [out->dim,
 * in->dim] writes ngen matrices W drho_in(A) - drho_out(A) W into out_ld
 * (ngen * out->dim * in->dim floats). */
eqr_status eqr_lie_derivative(eqr_ctx *ctx, const float *W, const eqr_lie_rep *in,
                              const eqr_lie_rep *out, float *out_ld);

/* Project every layer (mode DROP or FOLD), then set W_r = 0 and every theta
 * to 0 (a relaxed group conv folds its mean weights into the gconv in both
 * modes: eqr_relax_rgconv). Afterwards the model is exactly equivariant and the relaxed layers
 * compute f_eq alone. */
eqr_status eqr_relax_project(eqr_ctx *ctx, eqr_relax *r, eqr_project_mode mode);

/* Telemetry of one layer. */
typedef struct eqr_rlayer_stats {
    float theta;       /* its theta */
    float wr_norm;     /* ||W_r|| (Frobenius) */
    float act_norm;    /* ||W_r x|| of its last forward with the norm recorded, -1 if none */
    float defect;      /* LD (weight form) of W_r now */
} eqr_rlayer_stats;

/* Relax a module (module.h) through one call, whatever its kind: a
 * "gconv", "steer_conv", "vn_linear", "irreps_linear", "tp", "egnn" or
 * "segnn" module is relaxed as by eqr_relax_gconv / eqr_relax_steer_conv /
 * eqr_relax_vn_linear / eqr_relax_irreps_linear / eqr_relax_tp /
 * eqr_relax_egnn / eqr_relax_segnn under name (NULL: the module's name;
 * W_r is "<name>.wr", for SEGNN "<name>.layer<k>.relax1.wr" and
 * ".relax2.wr"), and the call returns a module of kind "relaxed" whose
 * forward is eqr_rlayer_forward (for a tensor product the tuple forward
 * io = {x1, x2} -> {tp(x1, x2) + theta W_r x1, x2} of eqr_rlayer_forward_tp,
 * its one-tensor forward refused as the product's; for EGNN and SEGNN,
 * whose terms sit in the layers' hooks: the layer's own tuple forward;
 * eqr_module_rlayer then gives the first of SEGNN's terms), with m's types, m
 * as its one child and m's parameters plus the new ones. For a
 * container, every relaxable module inside it (at any depth) is replaced
 * in place by its relaxed module under its own name (name is unused), and
 * the container is returned. m is owned by the result (and destroyed on
 * error, unless it is inside a container: relax the container instead);
 * r must outlive the module's forwards. NULL on error: EQR_ERR_ARG
 * for a NULL r or m on a healthy context, a module of a kind that cannot
 * be relaxed (the message names it and the relaxable kinds), a container
 * with nothing relaxable in it, an already relaxed module; errors of the
 * eqr_relax_xxx call. opts (NULL: defaults) applies to every layer; with
 * opts->kind == EQR_RELAX_KIND_RGCONV every gconv becomes a relaxed group
 * conv (eqr_relax_rgconv) and any other relaxable module inside is
 * refused (EQR_ERR_ARG naming it). */
eqr_module *eqr_relax_module(eqr_ctx *ctx, eqr_relax *r, const char *name, eqr_module *m,
                             const eqr_rlayer_opts *opts);
/* The relaxed layer of a module eqr_relax_module returned (for
 * eqr_rlayer_get_stats); NULL if m is not a relaxed module. */
eqr_rlayer *eqr_module_rlayer(const eqr_module *m);

int eqr_relax_num_layers(const eqr_relax *r);
eqr_rlayer *eqr_relax_layer(eqr_relax *r, int i);
const char *eqr_rlayer_name(const eqr_rlayer *l);
eqr_tensor *eqr_rlayer_wr(const eqr_rlayer *l);
eqr_tensor *eqr_rlayer_theta(const eqr_rlayer *l); /* own or the global one */
eqr_status eqr_rlayer_get_stats(eqr_ctx *ctx, eqr_rlayer *l, eqr_rlayer_stats *stats);

/* How much of a layer's output the relaxation makes, on the input of its
 * last forward. */
typedef struct eqr_rlayer_probe_stats {
    float theta;    /* the layer's theta */
    double eq_norm; /* ||f_eq x|| (NaN for an eqr_relax_linear term: no f_eq of its own) */
    double wr_norm; /* ||W_r x|| */
    double share;   /* |theta| ||W_r x|| / ||f_eq x|| (NaN without f_eq or if it is 0) */
} eqr_rlayer_probe_stats;

/* Measure eqr_rlayer_probe_stats on the input x of the layer's last
 * eqr_rlayer_forward since the last eqr_step_reset (if it has not run
 * since, the norms and share are NaN; theta is set either way). Costs one more forward of the layer's two
 * parts, without gradients; the step's tensors, tape and gradients are left
 * as they were, so it may run between backward and the optimizer step. */
eqr_status eqr_rlayer_probe(eqr_ctx *ctx, eqr_rlayer *l, eqr_rlayer_probe_stats *out);

#ifdef __cplusplus
}
#endif
#endif
