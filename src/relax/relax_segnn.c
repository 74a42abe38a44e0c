/* Relaxation of SEGNN (relax.h eqr_relax_segnn): the paper's dense theta W_r
 * terms on the two updates of every layer, relaxed linear terms on the
 * irreps' so(3) generators attached through the layer's term hooks
 * (segnn.h). */
#include "relax/relax_internal.h"
#include "equirelax/segnn.h"

#include <stdlib.h>

static eqr_tensor *segnn_term(eqr_ctx *ctx, void *user, eqr_tensor *x) {
    return eqr_rlayer_forward(ctx, user, x);
}

/* The relaxed term in -> out under name (generators of both sides). */
static eqr_rlayer *term(eqr_ctx *ctx, eqr_relax *r, const char *name, const eqr_irreps *in,
                        const eqr_irreps *out, const eqr_rlayer_opts *opts) {
    const int64_t di = eqr_irreps_dim(in), dout = eqr_irreps_dim(out);
    float *g = malloc(sizeof(float) * (size_t)(3 * (di * di + dout * dout)));
    if (!g) {
        eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_relax_segnn: out of memory for the generators");
        return NULL;
    }
    eqr_rlayer *l = NULL;
    if (!eqr_irreps_lie_generators(ctx, in, g) &&
        !eqr_irreps_lie_generators(ctx, out, g + 3 * di * di)) {
        eqr_lie_rep rin = {(int)di, 3, g}, rout = {(int)dout, 3, g + 3 * di * di};
        l = eqr_relax_linear(ctx, r, name, &rin, &rout, opts);
    }
    free(g);
    return l;
}

eqr_status eqr_relax_segnn_layer(eqr_ctx *ctx, eqr_relax *r, const char *name,
                                 eqr_segnn_layer *layer, const eqr_rlayer_opts *opts) {
    if (!eqr__ok(ctx, 3, r, name, layer)) return ctx ? ctx->status : EQR_ERR_ARG;
    if (eqr_segnn_layer_term(layer, 0) || eqr_segnn_layer_term(layer, 1))
        return eqr__fail(ctx, EQR_ERR_STATE, "eqr_relax_segnn: layer %s has update terms already "
                         "(relaxed twice?)", name);
    const eqr_irreps *h = eqr_segnn_layer_hidden(layer);
    if (2 * eqr_irreps_dim(h) > 4096) /* dense W_r and generators */
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_relax_segnn: hidden dim %lld too large for a "
                         "dense W_r (2 dim <= 4096)", (long long)eqr_irreps_dim(h));
    eqr_irreps hh = *h;
    if (2 * h->n > EQR_IRREPS_MAX)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_relax_segnn: too many irreps entries");
    for (int i = 0; i < h->n; i++) hh.e[hh.n++] = h->e[i];
    char nm[EQR_NAME_LEN];
    snprintf(nm, sizeof nm, "%s.relax1", name);
    eqr_rlayer *t1 = term(ctx, r, nm, &hh, h, opts);
    snprintf(nm, sizeof nm, "%s.relax2", name);
    eqr_rlayer *t2 = t1 ? term(ctx, r, nm, h, h, opts) : NULL;
    if (!t2) return ctx->status;
    if (eqr_segnn_layer_set_term(ctx, layer, 0, segnn_term, t1) ||
        eqr_segnn_layer_set_term(ctx, layer, 1, segnn_term, t2))
        return ctx->status;
    return EQR_OK;
}

eqr_status eqr_relax_segnn(eqr_ctx *ctx, eqr_relax *r, const char *name, eqr_segnn *m,
                           const eqr_rlayer_opts *opts) {
    if (!eqr__ok(ctx, 3, r, name, m)) return ctx ? ctx->status : EQR_ERR_ARG;
    char nm[EQR_NAME_LEN];
    for (int k = 0; k < eqr_segnn_num_layers(m); k++) {
        snprintf(nm, sizeof nm, "%s.layer%d", name, k);
        if (eqr_relax_segnn_layer(ctx, r, nm, eqr_segnn_layer_at(m, k), opts)) return ctx->status;
    }
    return EQR_OK;
}
