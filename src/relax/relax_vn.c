/* The relaxed-layer kind "vn_linear" (relax.h eqr_relax_vn_linear): a
 * dense W_r on the flattened vector features of a VN-Linear. */
#include "relax/relax_internal.h"
#include "nn3d/vn_internal.h"

#include <stdlib.h>

typedef struct vnr_impl {
    eqr_vn_linear *layer;
    int64_t *kron; /* gather table of W (x) I3: [3 c_out, 3 c_in], -1 off the diagonal */
} vnr_impl;

/* [3 c_out, 3 c_in] flattened view of the vector features: x4 -> [N, 3 c_in, P]. */
static eqr_tensor *flat_vectors(eqr_ctx *ctx, eqr_tensor *x4) {
    int64_t s[3] = {x4->shape[0], 3 * x4->shape[1], x4->shape[3]};
    return eqr_reshape(ctx, x4, 3, s);
}

static eqr_tensor *vnr_forward(eqr_ctx *ctx, eqr_rlayer *l, eqr_tensor *x) {
    if (!eqr__ok(ctx, 2, l, x)) return NULL;
    vnr_impl *im = l->impl;
    eqr_vn_linear *lay = im->layer;
    eqr_tensor *x4 = eqr__vn_view4(ctx, "eqr_rlayer_forward (vn_linear)", x, eqr_vn_linear_in_channels(lay));
    if (!x4) return NULL;
    int64_t N = x4->shape[0], P = x4->shape[3];
    const eqr_relax_opts *o = eqr_relax_get_opts(l->relax);
    float theta = eqr__rlayer_theta(l);
    int want_norm = eqr__rlayer_wants_norm(ctx, l);
    int want_lie = eqr_grad_enabled(ctx) && o && o->lambda_defect > 0.0f &&
                   o->lie_form == EQR_LIE_ACTIVATION;
    if (N == 0) want_norm = want_lie = 0;

    eqr_tensor *y4;
    if (theta == 0.0f) {
        y4 = eqr__vn_linear4(ctx, eqr_vn_linear_weight(lay), x4, eqr_vn_linear_out_channels(lay)); /* W alone: W_r takes no part */
    } else {
        /* one channel mix with W (x) I3 + theta W_r on the flattened vectors */
        int64_t ms[2] = {3 * (int64_t)eqr_vn_linear_out_channels(lay), 3 * (int64_t)eqr_vn_linear_in_channels(lay)};
        eqr_tensor *m = eqr_add(ctx, eqr__gather(ctx, eqr_vn_linear_weight(lay), im->kron, 2, ms),
                                eqr__rlayer_scale(ctx, l, l->wr));
        int64_t os[4] = {N, eqr_vn_linear_out_channels(lay), 3, P};
        y4 = eqr_reshape(ctx, eqr__vn_mix(ctx, m, flat_vectors(ctx, x4)), 4, os);
    }
    if (want_norm) {
        float scale = 1.0f;
        int64_t rows = eqr__rlayer_norm_rows(l, N, &scale);
        eqr_tensor *xs = flat_vectors(ctx, eqr__rlayer_penalty_input(ctx, l, x4));
        if (rows < N) xs = eqr_slice(ctx, xs, 0, 0, rows);
        eqr_tensor *n = eqr_sumsq(ctx, eqr__vn_mix(ctx, l->wr, xs));
        if (scale != 1.0f) n = eqr_scale(ctx, n, scale);
        if (n) eqr__rlayer_set_norm(l, n);
    }
    if (want_lie) {
        /* sum_a ||D_a x||^2 over the whole batch */
        eqr_tensor *d = eqr__vn_lie_blocks(ctx, l->wr), *total = NULL;
        eqr_tensor *xf = flat_vectors(ctx, eqr__rlayer_penalty_input(ctx, l, x4));
        int64_t ds[2] = {3 * (int64_t)eqr_vn_linear_out_channels(lay), 3 * (int64_t)eqr_vn_linear_in_channels(lay)};
        for (int a = 0; a < 3; a++) {
            eqr_tensor *da = eqr_reshape(ctx, eqr_slice(ctx, d, 0, a, 1), 2, ds);
            eqr_tensor *s = eqr_sumsq(ctx, eqr__vn_mix(ctx, da, xf));
            total = total ? eqr_add(ctx, total, s) : s;
        }
        if (total) l->lie_act_term = total;
    }
    if (ctx->status != EQR_OK) return NULL;
    return eqr__vn_unview(ctx, y4, x);
}

static eqr_tensor *vnr_defect(eqr_ctx *ctx, eqr_rlayer *l) {
    if (!eqr__ok(ctx, 1, l)) return NULL;
    return eqr_sumsq(ctx, eqr__vn_lie_blocks(ctx, l->wr));
}

/* Orthogonal split, also the fold: the trace part tr(B_oc) / 3 I3 of each
 * 3x3 block (its projection onto the commutant of SO(3) on R^3, the
 * multiples of I3) moves to W[o, c] (times theta) and leaves W_r. */
static eqr_status vnr_split(eqr_ctx *ctx, eqr_rlayer *l, float theta) {
    (void)ctx;
    eqr_vn_linear *lay = ((vnr_impl *)l->impl)->layer;
    const int64_t ci = eqr_vn_linear_in_channels(lay), cols = 3 * ci;
    float *wr = l->wr->data, *w = eqr_vn_linear_weight(lay)->data;
    for (int64_t o = 0; o < eqr_vn_linear_out_channels(lay); o++)
        for (int64_t c = 0; c < ci; c++) {
            double tr = 0.0;
            for (int i = 0; i < 3; i++) tr += wr[(3 * o + i) * cols + 3 * c + i];
            const float t = (float)(tr / 3.0);
            w[o * ci + c] += theta * t;
            for (int i = 0; i < 3; i++) wr[(3 * o + i) * cols + 3 * c + i] -= t;
        }
    return EQR_OK;
}

static void vnr_destroy(void *impl) {
    vnr_impl *im = impl;
    if (im) free(im->kron);
    free(im);
}

/* f_eq x = W x and W_r x on the flattened vectors. */
static eqr_status vnr_probe(eqr_ctx *ctx, eqr_rlayer *l, eqr_tensor *x, double *eq, double *wr) {
    eqr_vn_linear *lay = ((vnr_impl *)l->impl)->layer;
    eqr_tensor *x4 = eqr__vn_view4(ctx, "eqr_rlayer_probe (vn_linear)", x,
                                   eqr_vn_linear_in_channels(lay));
    if (!x4) return ctx->status;
    *eq = eqr__norm_of(ctx, eqr__vn_linear4(ctx, eqr_vn_linear_weight(lay), x4,
                                            eqr_vn_linear_out_channels(lay)));
    *wr = eqr__norm_of(ctx, eqr__vn_mix(ctx, l->wr, flat_vectors(ctx, x4)));
    return ctx->status;
}

static const eqr_rlayer_ops vnr_ops = {.kind = "vn_linear", .forward = vnr_forward,
                                       .defect = vnr_defect, .fold = vnr_split,
                                       .split = vnr_split, .probe = vnr_probe,
                                       .destroy = vnr_destroy};

eqr_rlayer *eqr_relax_vn_linear(eqr_ctx *ctx, eqr_relax *relax, const char *name,
                                eqr_vn_linear *layer, const eqr_rlayer_opts *opts) {
    if (!ctx || ctx->status != EQR_OK) return NULL;
    if (!relax || !layer) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_relax_vn_linear: relaxation or layer is NULL");
        return NULL;
    }
    int64_t ro = 3 * (int64_t)eqr_vn_linear_out_channels(layer), ci = 3 * (int64_t)eqr_vn_linear_in_channels(layer);
    vnr_impl *im = calloc(1, sizeof *im);
    int64_t *kron = malloc((size_t)(ro * ci) * sizeof(int64_t));
    if (!im || !kron) {
        free(im), free(kron);
        eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_relax_vn_linear: out of memory");
        return NULL;
    }
    for (int64_t r = 0; r < ro; r++)
        for (int64_t c = 0; c < ci; c++)
            kron[r * ci + c] = (r % 3 == c % 3) ? (r / 3) * eqr_vn_linear_in_channels(layer) + c / 3 : -1;
    im->layer = layer;
    im->kron = kron;
    int64_t shape[2] = {ro, ci};
    return eqr__rlayer_new(ctx, relax, name, &vnr_ops, im, 2, shape, opts);
}
