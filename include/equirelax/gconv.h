/* equirelax group convolutions by the filter-transform method (GrouPy /
 * Cohen & Welling's G-CNN), for finite groups whose elements act exactly on
 * the k x k pixel grid: C1, C2, C4, D1, D2, D4 (rotations by multiples of 90
 * degrees and flips). Other groups (C8, D6, SO(2), ...) are rejected at
 * construction: use a steerable convolution for them.
 *
 * Two kinds of layer:
 *   lifting conv  in_type: trivial fields only (Cin channels)
 *                 out_type: regular fields only (Fout fields, Fout*|G| channels)
 *                 weight [Fout, Cin, k, k]
 *   group conv    in_type and out_type: regular fields only (Fin -> Fout)
 *                 weight [Fout, Fin, |G|, k, k]
 * plus an optional bias [Fout], one value per output field shared over its
 * |G| channels (a per-channel bias would break equivariance).
 *
 * Feature maps use the layout of groups.h: channel = field * |G| + element
 * index. With h an element and W_h the filter for output channel
 * (fo, h), the expanded filter bank is
 *     lifting:  bank[fo*|G| + h, c, q]        = W[fo, c, h^-1 q]
 *     group:    bank[fo*|G| + h, fi*|G| + s, q] = W[fo, fi, h^-1 s, h^-1 q]
 * (q a filter tap, h^-1 q its position rotated / flipped about the filter
 * centre), so that f(g.x) = g.f(x) for every g in G.
 *
 * A call is "expand the bank" (one differentiable gather with indices
 * precomputed at construction) then one eqr_conv2d. The two steps are also
 * exposed separately (eqr_gconv_filter_bank, eqr_gconv_bias_vector) so that a
 * relaxation term can be fused into the same conv, and eqr_gconv_export
 * writes the bank as plain conv2d weights with identical outputs.
 *
 * EXACTNESS OF THE GEOMETRY. The filter transform makes the layer commute
 * with the group exactly when the conv's sampling points are placed
 * symmetrically about the centre of the input grid. Along an axis of size n
 * this holds iff
 *     (n + 2 pad - dil (k - 1) - 1) is divisible by stride
 * (the last window then ends exactly at the end of the padded input). With
 * stride 1 this holds for every kernel size (odd or even), padding and
 * dilation; e.g. odd k with 'same' padding pad = dil (k - 1) / 2, or any k
 * with pad 0. Groups with 90-degree rotations (C4, D4) also need a square
 * input (H == W). With stride > 1 it depends on the input size: k = 3,
 * pad = 1, stride 2 is exact on 9 x 9 inputs but not on 8 x 8.
 * eqr_gconv_exact_on answers this for a given input size. The same rule
 * applies to pooling between layers: max-pool 2 / stride 2 is exact on even
 * sizes only.
 *
 * WARNINGS (EQR_LOG_WARN through the log callback, eqr_ctx_set_log; never an
 * error: the layer computes its conv either way), each naming the layer and
 * the rule. At construction, only for a geometry that no input size can
 * make exact: with 90-degree rotations (C4, D4), a stride, padding or
 * dilation that differs between the axes. Every other geometry is exact on
 * some sizes (on all of them with stride 1; with stride s on the sizes
 * n = dil (k - 1) + 1 - 2 pad mod s), so whether it is exact depends on the
 * input: a stride > 1 is accepted silently at construction and the warning
 * comes at the first forward (eqr_gconv_forward, or eqr_rlayer_forward of
 * the relaxed layer) on an input size that breaks the rule, once per size
 * (again when the size changes). Steerable convs (steerable.h) warn the
 * same way. */
#ifndef EQUIRELAX_GCONV_H
#define EQUIRELAX_GCONV_H

#include "groups.h"
#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum eqr_gconv_kind {
    EQR_GCONV_AUTO = 0,    /* deduce from in_type (trivial -> lifting, regular -> group) */
    EQR_GCONV_LIFTING = 1, /* trivial fields -> regular fields */
    EQR_GCONV_GROUP = 2    /* regular fields -> regular fields */
} eqr_gconv_kind;

/* Options of eqr_gconv_create; zero-initialise for the defaults (the same as
 * passing NULL): kind deduced, stride 1, no padding, dilation 1, with bias,
 * Kaiming-normal init with the ReLU gain sqrt(2). */
typedef struct eqr_gconv_opts {
    eqr_gconv_kind kind;  /* a kind other than AUTO is checked against in_type */
    eqr_conv2d_geom geom; /* stride / padding / dilation of the conv (ops.h) */
    int no_bias;          /* 1: no bias parameter */
    float init_gain;      /* weight std = gain / sqrt(fan_in); 0 = sqrt(2) */
} eqr_gconv_opts;

/* A group conv layer (opaque; read it through the accessors below). */
typedef struct eqr_gconv eqr_gconv;

/* New lifting or group conv with square k x k filters, registering its
 * parameters in the context's store as "<name>.weight" (shape in the file
 * comment) and "<name>.bias" ([Fout], unless opts->no_bias). The weight is
 * initialised Kaiming-normal from the context RNG with the fan-in of one
 * expanded output channel, Cin k^2 (lifting) or Fin |G| k^2 (group); the bias
 * is zero. The layer keeps pointers to in_type and out_type only to hand them
 * back (eqr_gconv_in_type / out_type): it never reads them after this call.
 * opts may be NULL.
 * Errors (NULL returned, message recorded): EQR_ERR_ARG if in_type and
 * out_type have different groups, the group is not finite or has an element
 * that does not map the k x k grid onto itself (e.g. C8), out_type has a part
 * that is not regular, in_type mixes trivial and regular parts or has an
 * irrep part that is not trivial, in_type does not fit opts->kind, k < 1,
 * the geometry has a negative entry, or name is NULL / empty / too long for
 * the parameter names; errors of eqr_param_create (e.g. a duplicate name).
 * Logs a warning (no error) if the geometry is exact on no input size (file
 * comment, WARNINGS). */
eqr_gconv *eqr_gconv_create(eqr_ctx *ctx, const char *name, const eqr_rep *in_type,
                            const eqr_rep *out_type, int k, const eqr_gconv_opts *opts);

/* y = conv2d(x, bank, bias) for x [N, in_type->dim, H, W]; y is
 * [N, out_type->dim, OH, OW] with OH, OW as for eqr_conv2d. Differentiable in
 * x, the weight and the bias. NULL with EQR_ERR_SHAPE recorded if x is not
 * 4-D with in_type->dim channels (e.g. a lifting conv given regular fields);
 * NULL with EQR_ERR_ARG if layer is NULL; NULL x or a context in error: NULL,
 * nothing recorded. Allocates only in the step arena. The backward reads the
 * layer's gather indices: the layer must outlive the backward of the step.
 * Logs a warning, once per input size, if the layer is not exact on H x W
 * (eqr_gconv_exact_on; file comment, WARNINGS). */
eqr_tensor *eqr_gconv_forward(eqr_ctx *ctx, eqr_gconv *layer, eqr_tensor *x);

/* The expanded filter bank [Fout*|G|, in_type->dim, k, k] as a step-arena
 * tensor, differentiable in the weight (gradients flow back to
 * "<name>.weight" through the transposed gather). NULL on error. */
eqr_tensor *eqr_gconv_filter_bank(eqr_ctx *ctx, eqr_gconv *layer);

/* The expanded bias [Fout*|G|] (each field's bias repeated |G| times),
 * differentiable in "<name>.bias". NULL without an error if the layer has no
 * bias; NULL with the error recorded on failure. */
eqr_tensor *eqr_gconv_bias_vector(eqr_ctx *ctx, eqr_gconv *layer);

/* Write the layer as a plain conv: weight gets the bank (Fout*|G| *
 * in_type->dim * k * k floats, layout [O, C, k, k]) and bias, if not NULL, the
 * expanded bias (Fout*|G| floats; zeros if the layer has no bias). Then
 * eqr_conv2d(x, weight, bias, eqr_gconv_geom(layer)) equals
 * eqr_gconv_forward(x). No gradient is recorded and the arena is not used.
 * EQR_ERR_ARG if layer or weight is NULL. */
eqr_status eqr_gconv_export(eqr_ctx *ctx, const eqr_gconv *layer, float *weight, float *bias);

/* 1 if the layer is exactly equivariant on H x W inputs (the condition of
 * the file comment on the axes the group's elements move; with 90-degree
 * rotations also H == W and the same stride, padding and dilation on both
 * axes), 0 otherwise (including sizes too small for the kernel, or a NULL
 * layer). */
int eqr_gconv_exact_on(const eqr_gconv *layer, int h, int w);

/* Accessors; NULL / 0 for a NULL layer. */
eqr_gconv_kind eqr_gconv_get_kind(const eqr_gconv *layer); /* LIFTING or GROUP */
const eqr_group *eqr_gconv_group(const eqr_gconv *layer);
const eqr_rep *eqr_gconv_in_type(const eqr_gconv *layer);
const eqr_rep *eqr_gconv_out_type(const eqr_gconv *layer);
eqr_tensor *eqr_gconv_weight(const eqr_gconv *layer);
eqr_tensor *eqr_gconv_bias(const eqr_gconv *layer); /* NULL if no bias */
/* The conv geometry with defaults filled in (stride and dilation >= 1). */
const eqr_conv2d_geom *eqr_gconv_geom(const eqr_gconv *layer);
int eqr_gconv_kernel_size(const eqr_gconv *layer);
/* Shape of the expanded bank [Fout*|G|, in_type->dim, k, k] into shape[4]. */
void eqr_gconv_bank_shape(const eqr_gconv *layer, int64_t shape[4]);

/* Free the layer's own memory (indices). Its parameters stay in the
 * context's store. NULL is ok. */
void eqr_gconv_destroy(eqr_gconv *layer);

#ifdef __cplusplus
}
#endif
#endif
