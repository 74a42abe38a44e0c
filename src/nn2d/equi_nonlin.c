/* Equivariant nonlinearities on field types: pointwise (trivial and regular
 * fields), norm-ReLU (any field, bias per field) and gated (trivial gates). */
#include "nn2d/equi_internal.h"
#include "equirelax/equi_layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Number of fields (copies) of t. */
static int count_fields(const eqr_rep *t) {
    int n = 0;
    for (int k = 0; k < t->nparts; k++) n += t->parts[k].mult;
    return n;
}

/* *off and *dim: the channel offset and dimension of each of the F fields of
 * t, in order, in one allocation of 2F (freed through *off). 0 if it fails. */
static int field_table(const eqr_rep *t, int F, int32_t **off, int32_t **dim) {
    int32_t *tab = calloc(2 * (size_t)F, sizeof *tab);
    if (!tab) return 0;
    *off = tab;
    *dim = tab + F;
    int f = 0;
    for (int k = 0; k < t->nparts; k++) {
        int d = eqr_rep_part_dim(t, k), o = eqr_rep_part_offset(t, k);
        for (int c = 0; c < t->parts[k].mult; c++, f++) {
            tab[f] = o + c * d;
            tab[F + f] = d;
        }
    }
    return 1;
}

/* Check x is [N, dim, ...]; sets N and S (spatial size). 0 on error. */
static int check_x(eqr_ctx *ctx, const char *fn, const eqr_rep *t, const eqr_tensor *x, int64_t *N,
                   int64_t *S) {
    if (x->ndim < 2 || x->shape[1] != t->dim) {
        char b[EQR_SHAPE_BUF];
        eqr__fail(ctx, EQR_ERR_SHAPE, "%s: x %s must be [N,%d,...] (input type dim %d)", fn,
                  EQR_SHAPE(x, b), t->dim, t->dim);
        return 0;
    }
    *N = x->shape[0];
    *S = 1;
    for (int d = 2; d < x->ndim; d++) *S *= x->shape[d];
    return 1;
}

/* ------------------------------------------------------------- pointwise */

struct eqr_pointwise {
    const eqr_rep *type;
    eqr_pointwise_kind kind;
    float slope;
};

eqr_pointwise *eqr_pointwise_create(eqr_ctx *ctx, const eqr_rep *in_type, eqr_pointwise_kind kind,
                                    float slope) {
    if (!eqr__ok(ctx, 0)) return NULL;
    if (!in_type) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_pointwise_create: NULL input type");
        return NULL;
    }
    if ((int)kind < EQR_PW_RELU || kind > EQR_PW_SILU) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_pointwise_create: unknown nonlinearity %d", (int)kind);
        return NULL;
    }
    if (kind == EQR_PW_LEAKY_RELU && !isfinite(slope)) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_pointwise_create: leaky ReLU slope must be finite, got %g",
                  (double)slope);
        return NULL;
    }
    for (int k = 0; k < in_type->nparts; k++) {
        const eqr_rep_part *p = &in_type->parts[k];
        if (p->kind != EQR_PART_REGULAR && !eqr__part_is_trivial(p)) {
            char iname[48];
            eqr__fail(ctx, EQR_ERR_ARG,
                      "eqr_pointwise_create: part %d is %s; a pointwise nonlinearity is only "
                      "equivariant on trivial and regular fields (use norm-ReLU or gated)",
                      k, eqr_irrep_name(p->irrep, iname, sizeof iname));
            return NULL;
        }
    }
    eqr_pointwise *l = eqr__calloc(ctx, "eqr_pointwise_create", 1, sizeof *l);
    if (!l) return NULL;
    l->type = in_type;
    l->kind = kind;
    l->slope = slope;
    return l;
}

eqr_tensor *eqr_pointwise_forward(eqr_ctx *ctx, eqr_pointwise *l, eqr_tensor *x) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    if (!l) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_pointwise_forward: NULL layer");
        return NULL;
    }
    int64_t N, S;
    if (!check_x(ctx, "eqr_pointwise_forward", l->type, x, &N, &S)) return NULL;
    switch (l->kind) {
    case EQR_PW_RELU: return eqr_relu(ctx, x);
    case EQR_PW_LEAKY_RELU: return eqr_leaky_relu(ctx, x, l->slope);
    case EQR_PW_SIGMOID: return eqr_sigmoid(ctx, x);
    case EQR_PW_TANH: return eqr_tanh(ctx, x);
    case EQR_PW_GELU: return eqr_gelu(ctx, x);
    default: return eqr_silu(ctx, x);
    }
}

const eqr_rep *eqr_pointwise_out_type(const eqr_pointwise *l) { return l ? l->type : NULL; }
void eqr_pointwise_destroy(eqr_pointwise *l) { free(l); }

/* ------------------------------------------------------------- norm-ReLU */

struct eqr_norm_relu {
    const eqr_rep *type;
    int nfields;
    int32_t *off, *dim;
    eqr_tensor *bias;
};

eqr_norm_relu *eqr_norm_relu_create(eqr_ctx *ctx, const char *name, const eqr_rep *in_type) {
    if (!eqr__ok(ctx, 0)) return NULL;
    if (!in_type) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_norm_relu_create: NULL input type");
        return NULL;
    }
    static const char *const suffix[1] = {".bias"};
    if (!eqr__layer_name_ok(ctx, "eqr_norm_relu_create", name, ".bias") ||
        !eqr__param_names_free(ctx, "eqr_norm_relu_create", name, 1, suffix))
        return NULL;
    char pname[EQR_NAME_LEN];
    snprintf(pname, sizeof pname, "%s.bias", name);
    int F = count_fields(in_type);
    eqr_norm_relu *l = calloc(1, sizeof *l);
    if (!l || !field_table(in_type, F, &l->off, &l->dim)) {
        free(l);
        eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_norm_relu_create: out of memory");
        return NULL;
    }
    l->type = in_type;
    l->nfields = F;
    int64_t shape[1] = {F};
    l->bias = eqr_param_create(ctx, pname, 1, shape, EQR_PARAM_NO_DECAY);
    if (!l->bias) {
        eqr_norm_relu_destroy(l);
        return NULL;
    }
    return l; /* bias starts at 0: the store zero-fills */
}

const eqr_rep *eqr_norm_relu_out_type(const eqr_norm_relu *l) { return l ? l->type : NULL; }
eqr_tensor *eqr_norm_relu_bias(const eqr_norm_relu *l) { return l ? l->bias : NULL; }

void eqr_norm_relu_destroy(eqr_norm_relu *l) {
    if (!l) return;
    free(l->off);
    free(l);
}

/* Norms of one field at every pixel: nrm[p] = |x(p)| over d channels. */
static void field_norms(const float *xp, int d, int64_t S, float *nrm) {
    for (int64_t p = 0; p < S; p++) nrm[p] = xp[p] * xp[p];
    for (int c = 1; c < d; c++)
        for (int64_t p = 0; p < S; p++) nrm[p] += xp[c * S + p] * xp[c * S + p];
    for (int64_t p = 0; p < S; p++) nrm[p] = sqrtf(nrm[p]);
}

/* in: x, bias; i: [0] N, [1] S, [2] D; saved: the layer. With s = (n + b) / n
 * on active pixels (n > 0, n + b > 0) and y = s x:
 *     dx = s g - b (g.x) x / n^3,   db = (g.x) / n. */
static void norm_relu_backward(eqr_ctx *ctx, eqr_node *nd) {
    eqr_tensor *x = nd->in[0], *bias = nd->in[1];
    const eqr_norm_relu *l = nd->saved;
    int64_t N = nd->i[0], S = nd->i[1], D = nd->i[2];
    float *gx = NULL, *gb = NULL;
    if (eqr__needs_grad(x) && !(gx = eqr__grad(ctx, x))) return;
    if (eqr__needs_grad(bias) && !(gb = eqr__grad(ctx, bias))) return;
    float *nrm = eqr__arena_alloc(ctx, 2 * (size_t)S * sizeof *nrm);
    if (!nrm) return;
    float *dot = nrm + S;
    const float *gy = nd->out->grad;
    for (int64_t n = 0; n < N; n++)
        for (int f = 0; f < l->nfields; f++) {
            const int d = l->dim[f];
            const float b = bias->data[f];
            const size_t at = (size_t)(n * D + l->off[f]) * (size_t)S;
            const float *xp = x->data + at, *gp = gy + at;
            field_norms(xp, d, S, nrm);
            for (int64_t p = 0; p < S; p++) dot[p] = gp[p] * xp[p];
            for (int c = 1; c < d; c++)
                for (int64_t p = 0; p < S; p++) dot[p] += gp[c * S + p] * xp[c * S + p];
            double sb = 0;
            for (int64_t p = 0; p < S; p++) {
                const float r = nrm[p];
                if (!(r > 0.0f && r + b > 0.0f)) continue;
                sb += dot[p] / r;
                if (!gx) continue;
                const float s = (r + b) / r, k = -b * dot[p] / (r * r * r);
                for (int c = 0; c < d; c++) gx[at + c * S + p] += s * gp[c * S + p] + k * xp[c * S + p];
            }
            if (gb) gb[f] += (float)sb;
        }
}

eqr_tensor *eqr_norm_relu_forward(eqr_ctx *ctx, eqr_norm_relu *l, eqr_tensor *x) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    if (!l) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_norm_relu_forward: NULL layer");
        return NULL;
    }
    int64_t N, S, D = l->type->dim;
    if (!check_x(ctx, "eqr_norm_relu_forward", l->type, x, &N, &S)) return NULL;
    eqr_tensor *out = eqr__tensor_empty(ctx, x->ndim, x->shape);
    float *nrm = out ? eqr__arena_alloc(ctx, (size_t)S * sizeof *nrm) : NULL;
    if (!nrm) return NULL;
    const float *bias = l->bias->data;
    for (int64_t n = 0; n < N; n++)
        for (int f = 0; f < l->nfields; f++) {
            const int d = l->dim[f];
            const float b = bias[f];
            const size_t at = (size_t)(n * D + l->off[f]) * (size_t)S;
            const float *xp = x->data + at;
            float *yp = out->data + at;
            field_norms(xp, d, S, nrm);
            for (int64_t p = 0; p < S; p++) {
                const float r = nrm[p], a = r + b;
                nrm[p] = (r > 0.0f && a > 0.0f) ? a / r : 0.0f; /* scale */
            }
            for (int c = 0; c < d; c++)
                for (int64_t p = 0; p < S; p++) yp[c * S + p] = xp[c * S + p] * nrm[p];
        }
    eqr_tensor *in[2] = {x, l->bias};
    eqr__record_with(ctx, out, norm_relu_backward, 2, in, l, 3, (const int64_t[]){N, S, D});
    return out;
}

/* ----------------------------------------------------------------- gated */

struct eqr_gated {
    const eqr_rep *in_type;
    eqr_rep *out_type; /* owned: the gated fields */
    int ngated;        /* K */
    int gate_off;      /* channel of gate 0 = out_type->dim */
    int32_t *off, *dim;
};

eqr_gated *eqr_gated_create(eqr_ctx *ctx, const eqr_rep *in_type) {
    if (!eqr__ok(ctx, 0)) return NULL;
    if (!in_type) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_gated_create: NULL input type");
        return NULL;
    }
    int F = count_fields(in_type);
    if (F % 2 != 0) {
        eqr__fail(ctx, EQR_ERR_ARG,
                  "eqr_gated_create: the input type has %d fields; need 2K (K gated fields "
                  "followed by K trivial gates)", F);
        return NULL;
    }
    const int K = F / 2;
    /* The last K fields must be trivial; find the parts holding fields 0..K-1. */
    int seen = 0, nparts_out = 0;
    eqr_rep_part *parts = calloc(in_type->nparts > 0 ? (size_t)in_type->nparts : 1, sizeof *parts);
    if (!parts) {
        eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_gated_create: out of memory");
        return NULL;
    }
    for (int k = 0; k < in_type->nparts; k++) {
        const eqr_rep_part *p = &in_type->parts[k];
        int ngated = seen < K ? (K - seen < p->mult ? K - seen : p->mult) : 0;
        if (ngated < p->mult && !eqr__part_is_trivial(p)) { /* some of this part's fields are gates */
            char iname[48];
            free(parts);
            eqr__fail(ctx, EQR_ERR_ARG,
                      "eqr_gated_create: fields %d..%d (part %d, %s) fall among the last %d "
                      "fields, which are the gates and must be trivial",
                      seen + ngated, seen + p->mult - 1, k,
                      p->kind == EQR_PART_REGULAR ? "regular"
                                                  : eqr_irrep_name(p->irrep, iname, sizeof iname),
                      K);
            return NULL;
        }
        if (ngated > 0) {
            parts[nparts_out] = *p;
            parts[nparts_out++].mult = ngated;
        }
        seen += p->mult;
    }
    eqr_gated *l = calloc(1, sizeof *l);
    if (!l || !field_table(in_type, F, &l->off, &l->dim)) {
        free(parts);
        free(l);
        eqr__fail(ctx, EQR_ERR_NOMEM, "eqr_gated_create: out of memory");
        return NULL;
    }
    l->in_type = in_type;
    l->ngated = K;
    l->out_type = eqr_rep_create(ctx, &in_type->group, nparts_out, parts);
    free(parts);
    if (!l->out_type) {
        eqr_gated_destroy(l);
        return NULL;
    }
    l->gate_off = l->out_type->dim;
    return l;
}

const eqr_rep *eqr_gated_out_type(const eqr_gated *l) { return l ? l->out_type : NULL; }

void eqr_gated_destroy(eqr_gated *l) {
    if (!l) return;
    eqr_rep_destroy(l->out_type);
    free(l->off);
    free(l);
}

/* i: [0] N, [1] S, [2] D in channels, [3] Dout; saved: the layer. */
static void gated_backward(eqr_ctx *ctx, eqr_node *nd) {
    eqr_tensor *x = nd->in[0];
    if (!eqr__needs_grad(x)) return;
    float *gx = eqr__grad(ctx, x);
    float *s = gx ? eqr__arena_alloc(ctx, 2 * (size_t)nd->i[1] * sizeof *s) : NULL;
    if (!s) return;
    const eqr_gated *l = nd->saved;
    int64_t N = nd->i[0], S = nd->i[1], D = nd->i[2], Do = nd->i[3];
    float *dot = s + S;
    const float *gy = nd->out->grad;
    for (int64_t n = 0; n < N; n++)
        for (int f = 0; f < l->ngated; f++) {
            const int d = l->dim[f];
            const float *xp = x->data + (n * D + l->off[f]) * S, *gp = gy + (n * Do + l->off[f]) * S;
            float *gxp = gx + (n * D + l->off[f]) * S;
            const int64_t gate = (n * D + l->gate_off + f) * S;
            eqr__sigmoid_n(x->data + gate, s, S);
            for (int64_t p = 0; p < S; p++) dot[p] = 0.0f;
            for (int c = 0; c < d; c++)
                for (int64_t p = 0; p < S; p++) {
                    gxp[c * S + p] += s[p] * gp[c * S + p];
                    dot[p] += gp[c * S + p] * xp[c * S + p];
                }
            for (int64_t p = 0; p < S; p++) gx[gate + p] += s[p] * (1.0f - s[p]) * dot[p];
        }
}

eqr_tensor *eqr_gated_forward(eqr_ctx *ctx, eqr_gated *l, eqr_tensor *x) {
    if (!eqr__ok(ctx, 1, x)) return NULL;
    if (!l) {
        eqr__fail(ctx, EQR_ERR_ARG, "eqr_gated_forward: NULL layer");
        return NULL;
    }
    int64_t N, S, D = l->in_type->dim, Do = l->gate_off;
    if (!check_x(ctx, "eqr_gated_forward", l->in_type, x, &N, &S)) return NULL;
    int64_t shape[EQR_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    shape[1] = Do;
    eqr_tensor *out = eqr__tensor_empty(ctx, x->ndim, shape);
    float *s = out ? eqr__arena_alloc(ctx, (size_t)S * sizeof *s) : NULL;
    if (!s) return NULL;
    for (int64_t n = 0; n < N; n++)
        for (int f = 0; f < l->ngated; f++) {
            const float *xp = x->data + (n * D + l->off[f]) * S;
            float *yp = out->data + (n * Do + l->off[f]) * S;
            eqr__sigmoid_n(x->data + (n * D + l->gate_off + f) * S, s, S);
            for (int c = 0; c < l->dim[f]; c++)
                for (int64_t p = 0; p < S; p++) yp[c * S + p] = s[p] * xp[c * S + p];
        }
    eqr__record_with(ctx, out, gated_backward, 1, &x, l, 4, (const int64_t[]){N, S, D, Do});
    return out;
}
