/* Representations as direct sums of irreps and regular reps. */
#include "core/internal.h"
#include "equirelax/groups.h"

#include <math.h>
#include <stdlib.h>

eqr_rep_part eqr_part_irrep(eqr_irrep ir, int mult) {
    eqr_rep_part p = {EQR_PART_IRREP, ir, mult};
    return p;
}

eqr_rep_part eqr_part_regular(int mult) {
    eqr_rep_part p = {EQR_PART_REGULAR, {0, 0, 0}, mult};
    return p;
}

static int part_dim(const eqr_group *G, const eqr_rep_part *p) {
    return p->kind == EQR_PART_REGULAR ? eqr_group_order(G) : p->irrep.dim;
}

eqr_rep *eqr_rep_create(eqr_ctx *ctx, const eqr_group *G, int nparts,
                        const eqr_rep_part *parts) {
    if (!eqr__ok(ctx, 0)) return NULL;
    if (!eqr_group_valid(G)) {
        if (!G)
            eqr__fail(ctx, EQR_ERR_ARG, "eqr_rep_create: invalid group (NULL)");
        else
            eqr__fail(ctx, EQR_ERR_ARG,
                      "eqr_rep_create: invalid group (kind %d, N %d, L %d; need 1 <= N <= %d "
                      "for C_N / D_N, L >= 0 for SO(2) / O(2))",
                      (int)G->kind, G->n, G->max_freq, EQR_GROUP_MAX_N);
        return NULL;
    }
    char gname[32], iname[48];
    eqr_group_name(G, gname, sizeof gname);
    if (nparts < 1 || !parts) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_rep_create: need at least one part (got %d)", nparts);
        return NULL;
    }
    int64_t dim = 0;
    for (int k = 0; k < nparts; k++) {
        const eqr_rep_part *p = &parts[k];
        if (p->mult < 1) {
            eqr__fail(ctx, EQR_ERR_ARG, "eqr_rep_create: part %d has multiplicity %d (must be >= 1)",
                      k, p->mult);
            return NULL;
        }
        if (p->kind == EQR_PART_REGULAR) {
            if (!eqr_group_is_finite(G)) {
                eqr__fail(ctx, EQR_ERR_ARG,
                          "eqr_rep_create: part %d is regular but %s is not finite", k, gname);
                return NULL;
            }
        } else if (p->kind == EQR_PART_IRREP) {
            if (!eqr_irrep_valid(G, p->irrep)) {
                eqr__fail(ctx, EQR_ERR_ARG, "eqr_rep_create: part %d: %s (dim %d) is not an irrep of %s",
                          k, eqr_irrep_name(p->irrep, iname, sizeof iname), p->irrep.dim, gname);
                return NULL;
            }
        } else {
            eqr__fail(ctx, EQR_ERR_ARG, "eqr_rep_create: part %d has unknown kind %d", k, (int)p->kind);
            return NULL;
        }
        dim += (int64_t)part_dim(G, p) * p->mult;
        if (dim > INT32_MAX / 2) {
            eqr__fail(ctx, EQR_ERR_ARG,
                      "eqr_rep_create: total dimension %lld (after part %d) exceeds %d",
                      (long long)dim, k, INT32_MAX / 2);
            return NULL;
        }
    }
    eqr_rep *rep = malloc(sizeof *rep + (size_t)nparts * sizeof *parts);
    if (!rep) {
        eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_rep_create: out of memory");
        return NULL;
    }
    rep->group = *G;
    if (eqr_group_is_finite(G)) rep->group.max_freq = G->n / 2; /* informational */
    rep->nparts = nparts;
    rep->parts = (eqr_rep_part *)(rep + 1);
    memcpy(rep->parts, parts, (size_t)nparts * sizeof *parts);
    for (int k = 0; k < nparts; k++)
        if (rep->parts[k].kind == EQR_PART_REGULAR) rep->parts[k].irrep = (eqr_irrep){0, 0, 0};
    rep->dim = (int)dim;
    return rep;
}

eqr_rep *eqr_rep_regular_decomposition(eqr_ctx *ctx, const eqr_group *G) {
    if (!eqr__ok(ctx, 0)) return NULL;
    if (!eqr_group_valid(G) || !eqr_group_is_finite(G)) {
        eqr__fail(ctx, EQR_ERR_ARG,
                  "eqr_rep_regular_decomposition: group must be a valid C_N or D_N");
        return NULL;
    }
    int nir = eqr_group_num_irreps(G);
    eqr_rep_part *parts = malloc((size_t)nir * sizeof *parts);
    if (!parts) {
        eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_rep_regular_decomposition: out of memory");
        return NULL;
    }
    for (int i = 0; i < nir; i++) {
        eqr_irrep ir = eqr_group_irrep(G, i);
        parts[i] = eqr_part_irrep(ir, eqr_regular_multiplicity(G, ir));
    }
    eqr_rep *rep = eqr_rep_create(ctx, G, nir, parts);
    free(parts);
    return rep;
}

void eqr_rep_destroy(eqr_rep *rep) { free(rep); }

int eqr_rep_part_dim(const eqr_rep *rep, int k) {
    if (!rep || k < 0 || k >= rep->nparts) return 0;
    return part_dim(&rep->group, &rep->parts[k]);
}

int eqr_rep_part_offset(const eqr_rep *rep, int k) {
    if (!rep || k < 0 || k > rep->nparts) return -1;
    int off = 0;
    for (int i = 0; i < k; i++) off += part_dim(&rep->group, &rep->parts[i]) * rep->parts[i].mult;
    return off;
}

/* Block-diagonal rho(g) into outd (double) or outf (float), whichever is set. */
static int rep_matrix(const eqr_rep *rep, eqr_gelem g, double *outd, float *outf) {
    if (!rep || (!outd && !outf) || !eqr_group_contains(&rep->group, g)) return 0;
    const eqr_group *G = &rep->group;
    int D = rep->dim, off = 0;
    size_t DD = (size_t)D * (size_t)D;
    if (outd) memset(outd, 0, DD * sizeof *outd);
    if (outf) memset(outf, 0, DD * sizeof *outf);
    /* regular copies: row h has its 1 in column index(g^-1 h) */
    int ginv = eqr_group_is_finite(G) ? eqr_group_index_inverse(G, eqr_group_index(G, g)) : 0;
    for (int k = 0; k < rep->nparts; k++) {
        const eqr_rep_part *p = &rep->parts[k];
        int d = part_dim(G, p);
        double m[4];
        if (p->kind == EQR_PART_IRREP) eqr_irrep_matrix(G, p->irrep, g, m);
        for (int c = 0; c < p->mult; c++, off += d)
            for (int r = 0; r < d; r++) {
                size_t row = (size_t)(off + r) * D + off;
                if (p->kind == EQR_PART_IRREP) {
                    for (int s = 0; s < d; s++) {
                        if (outd) outd[row + s] = m[r * d + s];
                        if (outf) outf[row + s] = (float)m[r * d + s];
                    }
                } else {
                    size_t at = row + (size_t)eqr_group_index_compose(G, ginv, r);
                    if (outd) outd[at] = 1.0;
                    if (outf) outf[at] = 1.0f;
                }
            }
    }
    return D;
}

int eqr_rep_matrix(const eqr_rep *rep, eqr_gelem g, double *out) {
    return out ? rep_matrix(rep, g, out, NULL) : 0;
}

int eqr_rep_matrix_f(const eqr_rep *rep, eqr_gelem g, float *out) {
    return out ? rep_matrix(rep, g, NULL, out) : 0;
}

double eqr_rep_character(const eqr_rep *rep, eqr_gelem g) {
    if (!rep || !eqr_group_contains(&rep->group, g)) return NAN;
    const eqr_group *G = &rep->group;
    double chi = 0.0;
    for (int k = 0; k < rep->nparts; k++) {
        const eqr_rep_part *p = &rep->parts[k];
        double c = p->kind == EQR_PART_IRREP
                       ? eqr_irrep_character(G, p->irrep, g)
                       : (eqr_group_index(G, g) == 0 ? (double)eqr_group_order(G) : 0.0);
        chi += p->mult * c;
    }
    return chi;
}

eqr_status eqr_rep_lie_generator(eqr_ctx *ctx, const eqr_rep *rep, float *gens) {
    if (!ctx) return EQR_ERR_ARG;
    if (ctx->status != EQR_OK) return ctx->status;
    if (!rep || !gens)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_rep_lie_generator: rep or gens is NULL");
    char gname[48];
    eqr_group_name(&rep->group, gname, sizeof gname);
    if (!eqr_group_valid(&rep->group) ||
        (rep->group.kind != EQR_GROUP_SO2 && rep->group.kind != EQR_GROUP_O2))
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "eqr_rep_lie_generator: group %s has no continuous rotation "
                         "(need SO(2) or O(2))", gname);
    if (rep->dim < 1 || rep->nparts < 1 || !rep->parts)
        return eqr__fail(ctx, EQR_ERR_ARG, "eqr_rep_lie_generator: empty representation");
    int64_t d = rep->dim;
    for (int64_t i = 0; i < d * d; i++) gens[i] = 0.0f;
    int off = 0;
    for (int k = 0; k < rep->nparts; k++) {
        const eqr_rep_part *p = &rep->parts[k];
        if (p->kind != EQR_PART_IRREP || !eqr_irrep_valid(&rep->group, p->irrep) || p->mult < 1)
            return eqr__fail(ctx, EQR_ERR_ARG,
                             "eqr_rep_lie_generator: part %d is not an irrep of %s", k, gname);
        int pd = p->irrep.dim;
        if (off + pd * p->mult > rep->dim)
            return eqr__fail(ctx, EQR_ERR_ARG,
                             "eqr_rep_lie_generator: parts exceed rep dim %d", rep->dim);
        /* 1D irreps (trivial, O(2)'s sign) are constant on rotations: 0.
         * Frequency m: rho(rot t) = R(m t), derivative [[0, -m], [m, 0]]. */
        if (pd == 2) {
            float m = (float)p->irrep.freq;
            for (int c = 0; c < p->mult; c++) {
                int b = off + 2 * c;
                gens[(int64_t)b * d + b + 1] = -m;
                gens[(int64_t)(b + 1) * d + b] = m;
            }
        }
        off += pd * p->mult;
    }
    if (off != rep->dim)
        return eqr__fail(ctx, EQR_ERR_ARG,
                         "eqr_rep_lie_generator: parts cover %d of rep dim %d", off, rep->dim);
    return EQR_OK;
}
