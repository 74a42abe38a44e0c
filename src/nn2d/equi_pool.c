/* Pooling of fields to trivial fields: group pooling (regular fields),
 * norm pooling (any field) and the invariant map of any type. All three are
 * one kernel driven by a per-output-channel table built at construction. */
#include "nn2d/equi_internal.h"
#include "equirelax/equi_layers.h"

#include <math.h>
#include <stdlib.h>

enum { OP_COPY = 0, OP_MAX = 1, OP_MEAN = 2, OP_NORM = 3 };
enum { KIND_GROUP = 0, KIND_NORM = 1, KIND_INVARIANT = 2 };

/* Output channel o reduces input channels [off, off + cnt) with op. */
typedef struct pool_src {
    int32_t off, cnt, op;
} pool_src;

struct eqr_field_pool {
    const eqr_rep *in_type; /* caller's */
    eqr_rep *out_type;      /* owned */
    int nout;
    pool_src *src;
};

static const char *kind_fn(int kind) {
    return kind == KIND_GROUP ? "eqr_group_pool_create"
         : kind == KIND_NORM  ? "eqr_norm_pool_create"
                              : "eqr_invariant_map_create";
}

/* Op for the fields of part p, or -1 if the layer kind does not accept it. */
static int part_op(const eqr_rep_part *p, int kind, eqr_gpool_mode mode) {
    int pool = mode == EQR_GPOOL_MAX ? OP_MAX : OP_MEAN;
    if (kind == KIND_NORM) return OP_NORM;
    if (eqr__part_is_trivial(p)) return OP_COPY;
    if (p->kind == EQR_PART_REGULAR) return pool;
    return kind == KIND_INVARIANT ? OP_NORM : -1;
}

static eqr_field_pool *pool_create(eqr_ctx *ctx, const eqr_rep *in_type, int kind,
                                   eqr_gpool_mode mode) {
    if (!eqr__ok(ctx, 0)) return NULL;
    const char *fn = kind_fn(kind);
    if (!in_type) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: NULL input type", fn);
        return NULL;
    }
    if (mode != EQR_GPOOL_MAX && mode != EQR_GPOOL_MEAN) {
        eqr__fail(ctx, EQR_ERR_ARG, "%s: unknown pooling mode %d", fn, (int)mode);
        return NULL;
    }
    int nfields = 0;
    for (int k = 0; k < in_type->nparts; k++) {
        const eqr_rep_part *p = &in_type->parts[k];
        if (part_op(p, kind, mode) < 0) {
            char iname[48];
            eqr__fail(ctx, EQR_ERR_ARG,
                      "%s: part %d is %s, which group pooling cannot reduce (only regular and "
                      "trivial fields); use norm pooling or the invariant map",
                      fn, k, eqr_irrep_name(p->irrep, iname, sizeof iname));
            return NULL;
        }
        nfields += p->mult;
    }
    eqr_field_pool *l = calloc(1, sizeof *l);
    pool_src *src = calloc((size_t)nfields, sizeof *src);
    if (!l || !src) {
        free(l);
        free(src);
        eqr__fail(ctx, EQR_ERR_NOMEM, "%s: out of memory", fn);
        return NULL;
    }
    int o = 0;
    for (int k = 0; k < in_type->nparts; k++) {
        const eqr_rep_part *p = &in_type->parts[k];
        int d = eqr_rep_part_dim(in_type, k), off = eqr_rep_part_offset(in_type, k);
        int op = part_op(p, kind, mode);
        for (int c = 0; c < p->mult; c++, o++) {
            src[o].off = off + c * d;
            src[o].cnt = d;
            src[o].op = op;
        }
    }
    eqr_rep_part triv = eqr_part_irrep(eqr_irrep_of(&in_type->group, 0, 0), nfields);
    l->out_type = eqr_rep_create(ctx, &in_type->group, 1, &triv);
    if (!l->out_type) {
        free(src);
        free(l);
        return NULL;
    }
    l->in_type = in_type;
    l->nout = nfields;
    l->src = src;
    return l;
}

eqr_field_pool *eqr_group_pool_create(eqr_ctx *ctx, const eqr_rep *in_type, eqr_gpool_mode mode) {
    return pool_create(ctx, in_type, KIND_GROUP, mode);
}

eqr_field_pool *eqr_norm_pool_create(eqr_ctx *ctx, const eqr_rep *in_type) {
    return pool_create(ctx, in_type, KIND_NORM, EQR_GPOOL_MAX);
}

eqr_field_pool *eqr_invariant_map_create(eqr_ctx *ctx, const eqr_rep *in_type,
                                         eqr_gpool_mode mode) {
    return pool_create(ctx, in_type, KIND_INVARIANT, mode);
}

const eqr_rep *eqr_field_pool_out_type(const eqr_field_pool *l) { return l ? l->out_type : NULL; }

void eqr_field_pool_destroy(eqr_field_pool *l) {
    if (!l) return;
    eqr_rep_destroy(l->out_type);
    free(l->src);
    free(l);
}

/* i: [0] N, [1] S (spatial size), [2] D in channels, [3] O out channels;
 * saved: the layer's table. */
static void pool_backward(eqr_ctx *ctx, eqr_node *nd) {
    eqr_tensor *x = nd->in[0];
    if (!eqr__needs_grad(x)) return;
    float *gx = eqr__grad(ctx, x);
    if (!gx) return;
    const pool_src *src = nd->saved;
    int64_t N = nd->i[0], S = nd->i[1], D = nd->i[2], O = nd->i[3];
    const float *gy = nd->out->grad, *y = nd->out->data;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++) {
            const pool_src *s = &src[o];
            const float *xp = x->data + (n * D + s->off) * S, *yp = y + (n * O + o) * S;
            const float *gp = gy + (n * O + o) * S;
            float *gxp = gx + (n * D + s->off) * S;
            switch (s->op) {
            case OP_COPY:
                for (int64_t p = 0; p < S; p++) gxp[p] += gp[p];
                break;
            case OP_MEAN: {
                const float inv = 1.0f / (float)s->cnt;
                for (int c = 0; c < s->cnt; c++)
                    for (int64_t p = 0; p < S; p++) gxp[c * S + p] += inv * gp[p];
                break;
            }
            case OP_MAX: /* the first channel equal to the max takes it */
                for (int64_t p = 0; p < S; p++) {
                    int c = 0;
                    while (c < s->cnt - 1 && xp[c * S + p] != yp[p]) c++;
                    gxp[c * S + p] += gp[p];
                }
                break;
            default: /* OP_NORM: d|x|/dx = x / |x|, 0 at a zero field */
                for (int c = 0; c < s->cnt; c++)
                    for (int64_t p = 0; p < S; p++)
                        if (yp[p] > 0.0f) gxp[c * S + p] += gp[p] * xp[c * S + p] / yp[p];
                break;
            }
        }
}

eqr_tensor *eqr_field_pool_forward(eqr_ctx *ctx, eqr_field_pool *l, eqr_tensor *x) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    if (!l) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_field_pool_forward: NULL layer");
        return NULL;
    }
    const int64_t D = l->in_type->dim, O = l->nout;
    if (x->ndim < 2 || x->shape[1] != D) {
        char b[EQR_SHAPE_BUF];
        eqr__fail(ctx, EQR_ERR_SHAPE,
                  "eqr_field_pool_forward: x %s must be [N,%lld,...] (input type dim %lld)",
                  EQR_SHAPE(x, b), (long long)D, (long long)D);
        return NULL;
    }
    int64_t N = x->shape[0], S = 1, shape[EQR_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    for (int d = 2; d < x->ndim; d++) S *= x->shape[d];
    shape[1] = O;
    eqr_tensor *out = eqr__tensor_empty(ctx, x->ndim, shape);
    if (!out) return NULL;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++) {
            const pool_src *s = &l->src[o];
            const float *xp = x->data + (n * D + s->off) * S;
            float *yp = out->data + (n * O + o) * S;
            switch (s->op) {
            case OP_COPY:
                memcpy(yp, xp, (size_t)S * sizeof *yp);
                break;
            case OP_MAX:
                memcpy(yp, xp, (size_t)S * sizeof *yp);
                for (int c = 1; c < s->cnt; c++)
                    for (int64_t p = 0; p < S; p++) {
                        float v = xp[c * S + p];
                        yp[p] = v > yp[p] ? v : yp[p];
                    }
                break;
            case OP_MEAN: {
                memcpy(yp, xp, (size_t)S * sizeof *yp);
                for (int c = 1; c < s->cnt; c++)
                    for (int64_t p = 0; p < S; p++) yp[p] += xp[c * S + p];
                const float inv = 1.0f / (float)s->cnt;
                for (int64_t p = 0; p < S; p++) yp[p] *= inv;
                break;
            }
            default: /* OP_NORM */
                for (int64_t p = 0; p < S; p++) yp[p] = xp[p] * xp[p];
                for (int c = 1; c < s->cnt; c++)
                    for (int64_t p = 0; p < S; p++) yp[p] += xp[c * S + p] * xp[c * S + p];
                for (int64_t p = 0; p < S; p++) yp[p] = sqrtf(yp[p]);
                break;
            }
        }
    eqr__record_with(ctx, out, pool_backward, 1, &x, l->src, 4, (const int64_t[]){N, S, D, O});
    return out;
}
