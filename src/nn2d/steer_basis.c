/* Steerable kernel basis: the exact solution of
 *     K(g p) = rho_out(g) K(p) rho_in(g)^-1
 * per irrep pair and angular frequency, Gaussian rings, sampling and
 * orthonormalisation on the k x k grid, and assembly into blocks of field
 * pairs (regular fields through the change of basis Q); the per irrep pair
 * bases are steer_pair.c. The mathematics is written out in
 * include/equirelax/steerable.h. */
#include "nn2d/steer_internal.h"
#include "equirelax/steerable.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>

/* -------------------------------------------------------------- types */

/* Validate a type; 0 with EQR_ERR_ARG recorded if it is not usable. */
static int type_ok(eqr_ctx *ctx, const char *fn, const char *which, const eqr_rep *t) {
    char gname[32], iname[48];
    if (!t) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: %s is NULL", fn, which);
        return 0;
    }
    const eqr_group *G = &t->group;
    if (!eqr_group_valid(G) || t->nparts < 1 || !t->parts) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: %s has an invalid group or no parts", fn, which);
        return 0;
    }
    eqr_group_name(G, gname, sizeof gname);
    int64_t dim = 0;
    for (int p = 0; p < t->nparts; p++) {
        const eqr_rep_part *pt = &t->parts[p];
        if (pt->mult < 1) {
            eqr__fail(ctx, EQR_ERR_ARG, "%s: %s part %d has multiplicity %d", fn, which, p, pt->mult);
            return 0;
        }
        if (pt->kind == EQR_PART_REGULAR) {
            if (!eqr_group_is_finite(G)) {
                eqr__fail(ctx, EQR_ERR_ARG,
                          "%s: %s part %d is regular but %s is not finite (use irreps)", fn, which,
                          p, gname);
                return 0;
            }
            dim += (int64_t)eqr_group_order(G) * pt->mult;
        } else if (pt->kind == EQR_PART_IRREP && eqr_irrep_valid(G, pt->irrep)) {
            dim += (int64_t)pt->irrep.dim * pt->mult;
        } else {
            eqr__fail(ctx, EQR_ERR_ARG, "%s: %s part %d (%s) is not an irrep or regular part of %s",
                      fn, which, p, eqr_irrep_name(pt->irrep, iname, sizeof iname), gname);
            return 0;
        }
    }
    if (dim != t->dim) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: %s has dim %d but its parts add up to %lld", fn, which,
                  t->dim, (long long)dim);
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------- create */

void eqr_steer_basis_destroy(eqr_steer_basis *b) {
    if (!b) return;
    if (b->pairs)
        for (int i = 0; i < b->nir * b->nir; i++) {
            free(b->pairs[i].raw);
            free(b->pairs[i].coef);
            free(b->pairs[i].samp);
        }
    if (b->elems)
        for (int i = 0; i < b->nblocks; i++) free(b->elems[i]);
    if (b->bdata)
        for (int i = 0; i < b->nblocks; i++) free(b->bdata[i]);
    free(b->elems);
    free(b->bdata);
    free(b->blocks);
    free(b->pairs);
    free(b->irreps);
    free(b->ring_M);
    free(b->Q);
    free(b->ints);
    free(b->mono);
    free(b->chol);
    free(b->radmom);
    free(b->angmom);
    free(b->kout);
    free(b->kin);
    free(b);
}

/* Field kinds of the parts of t; comp tables carved from *ints. */
static void fill_kinds(const eqr_steer_basis *B, const eqr_rep *t, field_kind *kinds, int **ints,
                       const int *reg_ir, const int *reg_off, int reg_ncomp) {
    for (int p = 0; p < t->nparts; p++) {
        const eqr_rep_part *pt = &t->parts[p];
        field_kind *f = &kinds[p];
        if (pt->kind == EQR_PART_REGULAR) {
            f->dim = eqr_group_order(&B->G);
            f->ncomp = reg_ncomp;
            f->comp_ir = reg_ir;
            f->comp_off = reg_off;
            f->Q = B->Q;
        } else {
            int *tab = *ints;
            *ints += 2;
            tab[0] = eqr_group_irrep_index(&B->G, pt->irrep);
            tab[1] = 0;
            f->dim = pt->irrep.dim;
            f->ncomp = 1;
            f->comp_ir = tab;
            f->comp_off = tab + 1;
            f->Q = NULL;
        }
    }
}

static int part_offset(const eqr_rep *t, int p) {
    int off = 0;
    for (int i = 0; i < p; i++)
        off += t->parts[i].mult *
               (t->parts[i].kind == EQR_PART_REGULAR ? eqr_group_order(&t->group) : t->parts[i].irrep.dim);
    return off;
}

/* Entry (row, col) of a field's change of basis. */
static inline double qval(const field_kind *f, int row, int col) {
    return f->Q ? f->Q[(size_t)row * f->dim + col] : (double)(row == col);
}

/* Build block bi = (po, pi): elements and sampled data. 0 on OOM. */
static int block_build(eqr_steer_basis *B, int bi, const field_kind *fo, const field_kind *fi) {
    int n = 0;
    for (int a = 0; a < fo->ncomp; a++)
        for (int b = 0; b < fi->ncomp; b++) {
            int pidx = fo->comp_ir[a] * B->nir + fi->comp_ir[b];
            if (!B->pairs[pidx].ready && !eqr__steer_pair_build(B, fo->comp_ir[a], fi->comp_ir[b])) return 0;
            n += B->pairs[pidx].n;
        }
    int kk = B->kk, dO = fo->dim, dI = fi->dim;
    block_elem *el = malloc((size_t)(n ? n : 1) * sizeof *el);
    float *data = malloc((size_t)(n ? n : 1) * dO * dI * kk * sizeof *data);
    double *T = malloc((size_t)dO * 2 * kk * sizeof *T);
    if (!el || !data || !T) {
        free(el);
        free(data);
        free(T);
        return 0;
    }
    B->elems[bi] = el;
    B->bdata[bi] = data;
    int t = 0;
    for (int a = 0; a < fo->ncomp; a++)
        for (int b = 0; b < fi->ncomp; b++) {
            const pair_basis *P = &B->pairs[fo->comp_ir[a] * B->nir + fi->comp_ir[b]];
            int oa = fo->comp_off[a], ob = fi->comp_off[b], da = P->dO, db = P->dI;
            for (int u = 0; u < P->n; u++, t++) {
                el[t].a = a;
                el[t].b = b;
                el[t].u = u;
                const double *Bu = P->samp + (size_t)u * da * db * kk;
                float *E = data + (size_t)t * dO * dI * kk;
                /* E[o, c, q] = sum Qo[o, oa + al] Bu[al, be, q] Qi[c, ob + be],
                 * in two passes: T[o, be, q] = sum_al Qo[o, oa + al] Bu[al, be, q] */
                for (int o = 0; o < dO; o++)
                    for (int be = 0; be < db; be++) {
                        double *To = T + ((size_t)o * db + be) * kk;
                        for (int q = 0; q < kk; q++) To[q] = 0;
                        for (int al = 0; al < da; al++) {
                            double qo = qval(fo, o, oa + al);
                            if (qo == 0) continue;
                            const double *Bab = Bu + ((size_t)al * db + be) * kk;
                            for (int q = 0; q < kk; q++) To[q] += qo * Bab[q];
                        }
                    }
                for (int o = 0; o < dO; o++)
                    for (int c = 0; c < dI; c++) {
                        float *Eoc = E + ((size_t)o * dI + c) * kk;
                        double q0 = qval(fi, c, ob), q1 = db > 1 ? qval(fi, c, ob + 1) : 0;
                        const double *T0 = T + (size_t)o * db * kk, *T1 = T0 + kk;
                        if (db > 1)
                            for (int q = 0; q < kk; q++) Eoc[q] = (float)(q0 * T0[q] + q1 * T1[q]);
                        else
                            for (int q = 0; q < kk; q++) Eoc[q] = (float)(q0 * T0[q]);
                    }
            }
        }
    free(T);
    B->blocks[bi].n = n;
    B->blocks[bi].basis = data;
    return 1;
}

eqr_steer_basis *eqr__steer_basis_build(eqr_ctx *ctx, const char *fn, const eqr_rep *in_type,
                                        const eqr_rep *out_type, int k,
                                        const eqr_steer_basis_opts *opts) {
    if (!eqr__ok(ctx, 0)) return NULL;
    if (!type_ok(ctx, fn, "in_type", in_type) || !type_ok(ctx, fn, "out_type", out_type)) return NULL;
    if (!eqr__same_group(&in_type->group, &out_type->group)) {
        char g1[32], g2[32];
        eqr__fail(ctx, EQR_ERR_ARG, "%s: in_type is over %s but out_type over %s (different groups)",
                  fn, eqr_group_name(&in_type->group, g1, sizeof g1),
                  eqr_group_name(&out_type->group, g2, sizeof g2));
        return NULL;
    }
    if (k < 1 || k > 255) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: kernel size %d must be in [1, 255]", fn, k);
        return NULL;
    }
    double sigma = opts && opts->sigma != 0 ? opts->sigma : EQR_STEER_SIGMA;
    int cap = opts ? opts->max_freq : 0;
    if (!(sigma > 0) || !isfinite(sigma) || cap < 0) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: basis options need sigma > 0 (got %g) and max_freq >= 0 (got %d)",
                  fn, sigma, cap);
        return NULL;
    }
    eqr_steer_basis *B = calloc(1, sizeof *B);
    if (!B) goto oom;
    const eqr_group *G = &in_type->group;
    B->G = *G;
    B->k = k;
    B->kk = k * k;
    B->sigma = sigma;
    B->in_dim = in_type->dim;
    B->out_dim = out_type->dim;
    B->nrings = (k - 1) / 2 + 1;
    B->ring_M = malloc((size_t)B->nrings * sizeof *B->ring_M);
    if (!B->ring_M) goto oom;
    for (int s = 0; s < B->nrings; s++) {
        int M = 2 * s;
        if (cap > 0 && M > cap) M = cap;
        B->ring_M[s] = M;
        if (M > B->max_m) B->max_m = M;
    }
    B->point_sampling = opts ? opts->point_sampling != 0 : 0;
    B->mom_max = k - 1 < EQR_STEER_MOMENT_MAX ? k - 1 : EQR_STEER_MOMENT_MAX;
    if (B->max_m < B->mom_max) B->mom_max = B->max_m;
    if (!B->point_sampling) {
        int st = eqr__steer_moment_setup(B);
        if (st == 0) goto oom;
        if (st < 0) { /* cannot happen for D <= k - 1; kept as a guard */
            eqr_steer_basis_destroy(B);
            eqr__fail(ctx, EQR_ERR_ARG, "%s: moment matrix of the %dx%d grid is singular", fn, k, k);
            return NULL;
        }
    }
    B->nir = eqr_group_num_irreps(G);
    B->irreps = malloc((size_t)B->nir * sizeof *B->irreps);
    B->pairs = calloc((size_t)B->nir * B->nir, sizeof *B->pairs);
    if (!B->irreps || !B->pairs) goto oom;
    for (int i = 0; i < B->nir; i++) B->irreps[i] = eqr_group_irrep(G, i);
    /* regular field decomposition (finite groups) */
    int order = eqr_group_order(G), reg_ncomp = 0;
    for (int i = 0; order && i < B->nir; i++) reg_ncomp += eqr_regular_multiplicity(G, B->irreps[i]);
    int nparts_all = in_type->nparts + out_type->nparts;
    B->ints = malloc((size_t)(2 * nparts_all + 2 * reg_ncomp + 1) * sizeof *B->ints);
    B->kout = malloc((size_t)out_type->nparts * sizeof *B->kout);
    B->kin = malloc((size_t)in_type->nparts * sizeof *B->kin);
    if (!B->ints || !B->kout || !B->kin) goto oom;
    int *reg_ir = B->ints, *reg_off = B->ints + reg_ncomp, *rest = B->ints + 2 * reg_ncomp;
    if (order) {
        B->Q = malloc((size_t)order * order * sizeof *B->Q);
        if (!B->Q) goto oom;
        eqr_regular_change_of_basis(G, B->Q);
        int c = 0, off = 0;
        for (int i = 0; i < B->nir; i++)
            for (int a = 0; a < eqr_regular_multiplicity(G, B->irreps[i]); a++, c++) {
                reg_ir[c] = i;
                reg_off[c] = off;
                off += B->irreps[i].dim;
            }
    }
    fill_kinds(B, out_type, B->kout, &rest, reg_ir, reg_off, reg_ncomp);
    fill_kinds(B, in_type, B->kin, &rest, reg_ir, reg_off, reg_ncomp);
    B->nblocks = out_type->nparts * in_type->nparts;
    B->blocks = calloc((size_t)B->nblocks, sizeof *B->blocks);
    B->elems = calloc((size_t)B->nblocks, sizeof *B->elems);
    B->bdata = calloc((size_t)B->nblocks, sizeof *B->bdata);
    if (!B->blocks || !B->elems || !B->bdata) goto oom;
    int64_t woff = 0;
    for (int po = 0; po < out_type->nparts; po++)
        for (int pi = 0; pi < in_type->nparts; pi++) {
            int bi = po * in_type->nparts + pi;
            eqr_steer_block *bl = &B->blocks[bi];
            bl->out_part = po;
            bl->in_part = pi;
            bl->out_off = part_offset(out_type, po);
            bl->in_off = part_offset(in_type, pi);
            bl->out_mult = out_type->parts[po].mult;
            bl->in_mult = in_type->parts[pi].mult;
            bl->out_fdim = B->kout[po].dim;
            bl->in_fdim = B->kin[pi].dim;
            if (!block_build(B, bi, &B->kout[po], &B->kin[pi])) goto oom;
            bl->weight_off = woff;
            woff += (int64_t)bl->out_mult * bl->in_mult * bl->n;
        }
    B->size = woff;
    return B;
oom:
    eqr_steer_basis_destroy(B);
    eqr__fail(ctx, EQR_ERR_NOMEM, "%s: out of memory building the steerable basis", fn);
    return NULL;
}

eqr_steer_basis *eqr_steer_basis_create(eqr_ctx *ctx, const eqr_rep *in_type,
                                        const eqr_rep *out_type, int k,
                                        const eqr_steer_basis_opts *opts) {
    return eqr__steer_basis_build(ctx, "eqr_steer_basis_create", in_type, out_type, k, opts);
}

/* ----------------------------------------------------------- accessors */

int64_t eqr_steer_basis_num_elements(const eqr_steer_basis *b) { return b ? b->size : 0; }
int eqr_steer_basis_kernel_size(const eqr_steer_basis *b) { return b ? b->k : 0; }
int eqr_steer_basis_out_dim(const eqr_steer_basis *b) { return b ? b->out_dim : 0; }
int eqr_steer_basis_in_dim(const eqr_steer_basis *b) { return b ? b->in_dim : 0; }
int eqr_steer_basis_num_rings(const eqr_steer_basis *b) { return b ? b->nrings : 0; }
int eqr_steer_basis_num_blocks(const eqr_steer_basis *b) { return b ? b->nblocks : 0; }

int eqr_steer_basis_ring(const eqr_steer_basis *b, int s, double *radius, int *max_freq) {
    if (!b || s < 0 || s >= b->nrings) return 0;
    if (radius) *radius = s;
    if (max_freq) *max_freq = b->ring_M[s];
    return 1;
}

const eqr_steer_block *eqr_steer_basis_block(const eqr_steer_basis *b, int i) {
    return b && i >= 0 && i < b->nblocks ? &b->blocks[i] : NULL;
}

/* Block, copy pair and element of weight t. */
static int locate(const eqr_steer_basis *b, int64_t t, int *bi, int *co, int *ci, int *e) {
    if (!b || t < 0 || t >= b->size) return 0;
    for (int i = 0; i < b->nblocks; i++) {
        const eqr_steer_block *bl = &b->blocks[i];
        int64_t len = (int64_t)bl->out_mult * bl->in_mult * bl->n;
        if (t < bl->weight_off || t >= bl->weight_off + len) continue;
        int64_t loc = t - bl->weight_off;
        *bi = i;
        *e = (int)(loc % bl->n);
        *ci = (int)((loc / bl->n) % bl->in_mult);
        *co = (int)(loc / ((int64_t)bl->n * bl->in_mult));
        return 1;
    }
    return 0;
}

int eqr_steer_basis_eval(const eqr_steer_basis *b, int64_t t, double x, double y, double *out) {
    int bi, co, ci, e;
    if (!out || !locate(b, t, &bi, &co, &ci, &e)) return 0;
    const eqr_steer_block *bl = &b->blocks[bi];
    const field_kind *fo = &b->kout[bl->out_part], *fi = &b->kin[bl->in_part];
    const block_elem *el = &b->elems[bi][e];
    const pair_basis *P = &b->pairs[fo->comp_ir[el->a] * b->nir + fi->comp_ir[el->b]];
    double Bu[4];
    eqr__steer_pair_eval(P, b->sigma, el->u, x, y, Bu);
    memset(out, 0, (size_t)b->out_dim * b->in_dim * sizeof *out);
    int oa = fo->comp_off[el->a], ob = fi->comp_off[el->b];
    for (int o = 0; o < fo->dim; o++)
        for (int c = 0; c < fi->dim; c++) {
            double s = 0;
            for (int al = 0; al < P->dO; al++)
                for (int be = 0; be < P->dI; be++)
                    s += qval(fo, o, oa + al) * Bu[al * P->dI + be] * qval(fi, c, ob + be);
            int row = bl->out_off + co * fo->dim + o, col = bl->in_off + ci * fi->dim + c;
            out[(size_t)row * b->in_dim + col] = s;
        }
    return 1;
}

int eqr_steer_basis_sample(const eqr_steer_basis *b, int64_t t, float *out) {
    int bi, co, ci, e;
    if (!out || !locate(b, t, &bi, &co, &ci, &e)) return 0;
    const eqr_steer_block *bl = &b->blocks[bi];
    int kk = b->kk, dO = bl->out_fdim, dI = bl->in_fdim;
    memset(out, 0, (size_t)b->out_dim * b->in_dim * kk * sizeof *out);
    const float *E = bl->basis + (size_t)e * dO * dI * kk;
    for (int o = 0; o < dO; o++) {
        size_t row = (size_t)(bl->out_off + co * dO + o);
        memcpy(out + (row * b->in_dim + bl->in_off + (size_t)ci * dI) * kk, E + (size_t)o * dI * kk,
               (size_t)dI * kk * sizeof *out);
    }
    return 1;
}

/* ----------------------------------------------- expansion and adjoint */

/* Per block and output row (co, a): the row segment of the bank over the
 * block's input part is [in_mult, in_fdim * kk] = w[co] [in_mult, n] times
 * E[:, a] [n, in_fdim * kk] (row stride out_fdim * in_fdim * kk): one GEMM
 * writing straight into the bank. */
void eqr_steer_basis_expand(const eqr_steer_basis *b, const float *w, float *bank) {
    if (!b || !w || !bank) return;
    size_t rowlen = (size_t)b->in_dim * b->kk;
    for (int i = 0; i < b->nblocks; i++) {
        const eqr_steer_block *bl = &b->blocks[i];
        int seg = bl->in_fdim * b->kk, mi = bl->in_mult, n = bl->n;
        for (int co = 0; co < bl->out_mult; co++)
            for (int a = 0; a < bl->out_fdim; a++) {
                float *C = bank + (size_t)(bl->out_off + co * bl->out_fdim + a) * rowlen +
                           (size_t)bl->in_off * b->kk;
                if (n == 0) {
                    memset(C, 0, (size_t)mi * seg * sizeof *C);
                    continue;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mi, seg, n, 1.0f,
                            w + bl->weight_off + (int64_t)co * mi * n, n, bl->basis + (size_t)a * seg,
                            bl->out_fdim * seg, 0.0f, C, seg);
            }
    }
}

void eqr_steer_basis_project(const eqr_steer_basis *b, const float *bank, float *w) {
    if (!b || !w || !bank) return;
    size_t rowlen = (size_t)b->in_dim * b->kk;
    for (int i = 0; i < b->nblocks; i++) {
        const eqr_steer_block *bl = &b->blocks[i];
        int seg = bl->in_fdim * b->kk, mi = bl->in_mult, n = bl->n;
        if (n == 0) continue;
        for (int co = 0; co < bl->out_mult; co++) {
            float *Wc = w + bl->weight_off + (int64_t)co * mi * n;
            for (int a = 0; a < bl->out_fdim; a++) {
                const float *A = bank + (size_t)(bl->out_off + co * bl->out_fdim + a) * rowlen +
                                 (size_t)bl->in_off * b->kk;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mi, n, seg, 1.0f, A, seg,
                            bl->basis + (size_t)a * seg, bl->out_fdim * seg, a == 0 ? 0.0f : 1.0f, Wc,
                            n);
            }
        }
    }
}
