/* Representations shared by the Lie-derivative tests; see tu_relax_lie.h. */
#include "tu_relax_lie.h"

#include <math.h>
#include <string.h>

eqr_rep *tu_lie_rep4(eqr_ctx *ctx, eqr_group G, const int part[4][3], int dim) {
    eqr_rep_part p[4];
    for (int k = 0; k < 4; k++) p[k] = eqr_part_irrep(eqr_irrep_of(&G, part[k][0], part[k][1]), part[k][2]);
    eqr_rep *r = eqr_rep_create(ctx, &G, 4, p);
    assert_non_null(r);
    assert_int_equal(r->dim, dim);
    return r;
}

eqr_rep *tu_lie_so2_a(eqr_ctx *ctx) {
    static const int part[4][3] = {{0, 0, 2}, {0, 1, 2}, {0, 2, 1}, {0, 3, 1}};
    return tu_lie_rep4(ctx, eqr_group_so2(3), part, 10);
}

eqr_rep *tu_lie_so2_b(eqr_ctx *ctx) {
    static const int part[4][3] = {{0, 0, 1}, {0, 1, 1}, {0, 2, 2}, {0, 3, 1}};
    return tu_lie_rep4(ctx, eqr_group_so2(3), part, 9);
}

int tu_rep3_dim(const tu_rep3 *r) { return r->ns + 3 * r->nv; }

void tu_so3_basis(int a, double L[9]) {
    memset(L, 0, 9 * sizeof(double));
    int j = (a + 1) % 3, k = (a + 2) % 3; /* eps_{a j k} = +1 */
    L[j * 3 + k] = -1.0;
    L[k * 3 + j] = 1.0;
}

void tu_rep3_gens(const tu_rep3 *r, float *g) {
    int d = tu_rep3_dim(r);
    memset(g, 0, sizeof(float) * 3 * (size_t)(d * d));
    for (int a = 0; a < 3; a++) {
        double L[9];
        tu_so3_basis(a, L);
        for (int v = 0; v < r->nv; v++) {
            int o = r->ns + 3 * v;
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++) g[(size_t)a * d * d + (o + i) * d + o + j] = (float)L[i * 3 + j];
        }
    }
}

double tu_max_abs(const float *v, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
    return m;
}
