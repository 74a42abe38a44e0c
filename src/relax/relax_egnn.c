/* Relaxation of an EGNN layer's coordinate update (relax.h eqr_relax_egnn):
 * a relaxed linear term on u = [x_i - c, v_i], attached through the layer's
 * coordinate-term hook (egnn.h). */
#include "relax/relax_internal.h"
#include "equirelax/egnn.h"
#include "equirelax/so3.h"

static eqr_tensor *egnn_term(eqr_ctx *ctx, void *user, eqr_tensor *u) {
    return eqr_rlayer_forward(ctx, user, u);
}

eqr_rlayer *eqr_relax_egnn(eqr_ctx *ctx, eqr_relax *r, const char *name, eqr_egnn *layer,
                           const eqr_rlayer_opts *opts) {
    if (!eqr__ok(ctx, 3, r, name, layer)) return NULL;
    if (eqr_egnn_coord_term(layer)) {
        eqr__fail(ctx, EQR_ERR_STATE, "eqr_relax_egnn: the layer already has a coordinate term (already "
                  "relaxed)");
        return NULL;
    }
    int vel = eqr_egnn_has_velocity(layer);
    eqr_so3_rep tin = {0, vel ? 2 : 1}, tout = {0, 1};
    float gin[3 * 36], gout[3 * 9];
    eqr_lie_rep lin, lout;
    if (eqr_so3_rep_lie(ctx, &tin, gin, &lin) || eqr_so3_rep_lie(ctx, &tout, gout, &lout))
        return NULL;
    eqr_rlayer *rl = eqr_relax_linear(ctx, r, name, &lin, &lout, opts);
    if (!rl) return NULL;
    if (eqr_egnn_set_coord_term(ctx, layer, egnn_term, rl, vel)) return NULL;
    return rl;
}
