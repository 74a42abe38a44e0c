/* Helpers shared by the steerable-conv tests; see tu_steerable.h. */
#include "tu_steerable.h"

#include <stdio.h>

eqr_rep *tu_steer_type(eqr_ctx *ctx, const eqr_group *G, const char *spec) {
    eqr_rep_part parts[8];
    int n = 0;
    const char *s = spec;
    while (*s) {
        if (*s == ' ') {
            s++;
            continue;
        }
        int j = 0, f = 0, m = 0, used = 0;
        if (*s == 't' && sscanf(s, "t%d%n", &m, &used) == 1) {
            parts[n++] = eqr_part_irrep(eqr_irrep_of(G, 0, 0), m);
        } else if (*s == 'r' && sscanf(s, "r%d%n", &m, &used) == 1) {
            parts[n++] = eqr_part_regular(m);
        } else if (*s == 'i' && sscanf(s, "i%d,%dx%d%n", &j, &f, &m, &used) == 3) {
            parts[n++] = eqr_part_irrep(eqr_irrep_of(G, j, f), m);
        } else {
            fail_msg("bad type spec '%s'", spec);
        }
        s += used;
    }
    eqr_rep *r = eqr_rep_create(ctx, G, n, parts);
    if (!r) fail_msg("type '%s': %s", spec, eqr_error_message(ctx));
    return r;
}

eqr_tensor *tu_steer_randn(eqr_ctx *ctx, int64_t n, int64_t c, int64_t h, int64_t w, float std) {
    int64_t s[4] = {n, c, h, w};
    eqr_tensor *x = eqr_tensor_zeros(ctx, 4, s);
    assert_non_null(x);
    eqr_tensor_normal(x, eqr_ctx_rng(ctx), std);
    return x;
}
