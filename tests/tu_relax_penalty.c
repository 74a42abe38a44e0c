/* Helpers shared by the relaxation-penalty tests; see tu_relax_penalty.h. */
#include "tu_relax_penalty.h"

eqr_gconv *tu_pen_gconv(eqr_ctx *ctx, const char *name, const eqr_rep *in, const eqr_rep *out,
                        int k) {
    return tu_gconv(ctx, name, in, out, k, EQR_CONV2D(1, k / 2, 1), 0.0f);
}

double tu_pen_value(eqr_tensor *t) {
    if (!t) fail_msg("NULL tensor");
    return t->data[0];
}
