/* equirelax modules: one interface for every layer, a sequential container,
 * one recursive train/eval switch and a model summary.
 *
 * A MODULE (eqr_module, opaque) is a layer or a container of modules. It
 * has a name, a kind ("gconv", "relu", "sequential", ...), a forward
 * y = f(x) on one tensor, a training flag, an input and an output FIELD
 * TYPE (eqr_ftype: what the tensor's channels are, or "none" when it
 * does not matter or is not known), and a list of the parameter-store
 * entries it owns. Built-in constructors (below) mirror the layers'
 * create functions and register the same parameters under the same
 * names; eqr_module_create wraps anything else, so user code can define
 * its own modules with the same interface.
 *
 * OWNERSHIP. A module owns its layer (destroyed with it) and a container
 * owns its children. Field types a constructor is given (eqr_rep) stay
 * the caller's and must outlive the module; irreps are copied. Parameters
 * stay in the context's store when a module is destroyed (like the
 * layers'). Every function taking a module to own (eqr_sequential_add,
 * eqr_relax_module) takes it in all cases: on error it is destroyed, so
 * calls nest without leaks, e.g.
 *     eqr_sequential_add(net, eqr_relu_module(ctx, NULL));
 * where a NULL child (a failed constructor) is an error already recorded.
 *
 * TYPES. A container checks, when a child is added, that the child's
 * input type matches the output type of the layers before it (when both
 * are known): EQR_ERR_ARG naming both layers and both types. Modules that
 * keep the type (activations, spatial pooling, dropout, batch norm of
 * plain channels) pass the type before them through. Field types are
 * compared as: two reps must be equal (same group, same parts in order);
 * two irreps equal (eqr_irreps_equal); two VN types the same channel count;
 * plain channels accept any type of that dimension (e.g. a linear head
 * after an invariant pool: its fields lose their meaning, not their size).
 *
 * FORWARD. eqr_module_forward(ctx, m, x) follows the error contract of
 * ops.h (a context in error gives NULL without a new message); the forward of a container is its children's in order (bit-identical
 * to calling them by hand).
 *
 * TUPLE FORWARD. Layers of several tensors (EGNN: node features h,
 * coordinates x, velocities v, edge attributes) run through
 * eqr_module_forward_n, which maps a tuple io[0..n) in place; a one-tensor
 * module inside such a stack maps io[0] and passes the rest through, so
 * e.g. an EGNN stack is a sequential of EGNN modules mapping (h, x, v, e)
 * to (h', x', v, e). */
#ifndef EQUIRELAX_MODULE_H
#define EQUIRELAX_MODULE_H

#include "egnn.h"
#include "equi_layers.h"
#include "gconv.h"
#include "irreps_nn.h"
#include "irreps_norm.h"
#include "ops.h"
#include "steerable.h"
#include "segnn.h"
#include "tensor_product.h"
#include "vn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ field types */

typedef enum eqr_ftype_kind {
    EQR_FTYPE_NONE = 0,   /* not known or not meaningful: never checked */
    EQR_FTYPE_PLAIN = 1,  /* channels plain numbers: [N, channels, ...] */
    EQR_FTYPE_REP = 2,    /* planar field type: [N, rep->dim, ...] */
    EQR_FTYPE_IRREPS = 3, /* O(3) irreps: [N, dim(irreps)] */
    EQR_FTYPE_VN = 4      /* vector neurons: [N, channels, 3 (, P)] */
} eqr_ftype_kind;

/* A field type as a value. rep and irreps point at data owned elsewhere
 * (the caller's rep, a layer's output rep, the module's copy of irreps). */
typedef struct eqr_ftype {
    eqr_ftype_kind kind;
    int channels;             /* PLAIN, VN */
    const eqr_rep *rep;       /* REP */
    const eqr_irreps *irreps; /* IRREPS */
} eqr_ftype;

/* Type constructors (values; never fail). */
eqr_ftype eqr_ftype_none(void);
eqr_ftype eqr_ftype_plain(int channels);
eqr_ftype eqr_ftype_rep(const eqr_rep *rep);
eqr_ftype eqr_ftype_irreps(const eqr_irreps *irreps);
eqr_ftype eqr_ftype_vn(int channels);
/* Print a type, e.g. "C4[regular x16]", "D4[trivial]", "8x0e+4x1o",
 * "vn(16)", "plain(10)", "-" for none, into buf (always terminated when
 * n > 0). Returns the length the full text needs (as snprintf). */
int eqr_ftype_str(const eqr_ftype *t, char *buf, size_t n);
/* 1 if a tensor of type out can feed a layer expecting type in (the rules
 * of the file comment; a NONE on either side is compatible). */
int eqr_ftype_compatible(const eqr_ftype *out, const eqr_ftype *in);

/* ----------------------------------------------------- the interface */

typedef struct eqr_module eqr_module;

/* What a kind of module does. Only kind and forward are required. */
typedef struct eqr_module_ops {
    const char *kind; /* short name shown by the summary, e.g. "gconv" */
    /* y = f(x) in the step arena; the ops.h error contract. Reach the
     * module's own data with eqr_module_impl(m). */
    eqr_tensor *(*forward)(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x);
    /* Called by eqr_module_set_training on this module (after its flag is
     * set, before its children); NULL if the module has no mode. Modules
     * may instead read eqr_module_training(m) in forward. */
    void (*train)(eqr_module *m, int on);
    /* Free impl when the module is destroyed; NULL: impl is not owned. */
    void (*destroy)(void *impl);
    /* Details for the summary ("5x5 pad 2", "p=0.5"); returns the length as
     * snprintf. NULL: none. */
    int (*describe)(const eqr_module *m, char *buf, size_t n);
    /* 1: the output type is the input type (activations, pooling over
     * space); the module's own types are then ignored by containers. */
    int keeps_type;
    /* Tuple forward (see TUPLE FORWARD): maps io[0..n) in place, returns
     * the status. NULL: io[0] = forward(io[0]). */
    eqr_status (*forward_n)(eqr_ctx *ctx, eqr_module *m, int n, eqr_tensor **io);
    /* A tuple-only module: the names of its io entries, e.g. "x1, x2".
     * forward may then be NULL; a single tensor is refused with a message
     * naming them, and forward_n is called only with that many entries,
     * none NULL. NULL: not tuple-only. */
    const char *tuple;
} eqr_module_ops;

/* A module of a user-defined kind: ops (kept by pointer: static storage)
 * and impl (handed to ops->destroy at the end). Its parameters are the
 * store entries whose names start with "<name>." at this call (create the
 * layer's parameters first), and its types are none until
 * eqr_module_set_types. New modules are in training mode. NULL on error
 * (EQR_ERR_ARG: NULL ops or kind, a NULL forward without tuple and
 * forward_n, a NULL/empty/too long name;
 * EQR_ERR_NOMEM); impl is then destroyed too. */
eqr_module *eqr_module_create(eqr_ctx *ctx, const char *name, const eqr_module_ops *ops,
                              void *impl);
/* Set a module's input and output types (irreps are copied, reps kept by
 * pointer). Set them before adding the module to a container, which
 * checks them at that time. EQR_ERR_ARG for a NULL module or type. */
eqr_status eqr_module_set_types(eqr_module *m, const eqr_ftype *in, const eqr_ftype *out);

/* Free a module, its layer and its children (NULL ok). Parameters stay in
 * the store. A module inside a container is freed by the container. */
void eqr_module_destroy(eqr_module *m);

/* y = m(x): the module's forward. A context in error: NULL, nothing
 * recorded; a NULL m or x on a healthy context: EQR_ERR_ARG. */
eqr_tensor *eqr_module_forward(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x);
/* Tuple forward: io[0..n) mapped in place by m (a container: by each child
 * in order). EQR_ERR_ARG for a NULL m or io, n < 1 or a NULL io[0] on a
 * healthy context; a context in error: its status, io untouched. On error
 * io[0] is NULL. */
eqr_status eqr_module_forward_n(eqr_ctx *ctx, eqr_module *m, int n, eqr_tensor **io);
/* The same with the module as a void pointer: the eqr_forward_fn shape of
 * equivariance.h, so a module can be measured as it is,
 *     eqr_equivariance_error_max(ctx, eqr_module_apply, net, ...). */
eqr_tensor *eqr_module_apply(eqr_ctx *ctx, void *m, eqr_tensor *x);

/* Training (1, the default) or evaluation (0) mode for m and every module
 * inside it: batch norms switch between batch and running statistics,
 * dropout between masking and identity. NULL ok (no-op). */
void eqr_module_set_training(eqr_module *m, int on);
/* The module's mode (0 for NULL). */
int eqr_module_training(const eqr_module *m);

/* Accessors (NULL / 0 / none for a NULL module). */
const char *eqr_module_name(const eqr_module *m);
const char *eqr_module_kind(const eqr_module *m);
const eqr_module_ops *eqr_module_get_ops(const eqr_module *m);
void *eqr_module_impl(const eqr_module *m);
eqr_ctx *eqr_module_ctx(const eqr_module *m);
/* Declared input / output type. For a keeps_type module these are none:
 * its types are those of the module before it. A container gives the
 * types its children resolve to. */
eqr_ftype eqr_module_in_type(const eqr_module *m);
eqr_ftype eqr_module_out_type(const eqr_module *m);
/* Children of a container (or the module a relaxed module wraps). */
int eqr_module_num_children(const eqr_module *m);
eqr_module *eqr_module_child(const eqr_module *m, int i); /* NULL out of range */

/* Parameters: the store entries of m and of every module inside it, in
 * order (each once). eqr_module_param_index gives the store index (for
 * eqr_param_at / eqr_param_name / eqr_param_flags), -1 out of range. */
int eqr_module_num_params(const eqr_module *m);
int eqr_module_param_index(const eqr_module *m, int i);
/* Scalars in those entries: *params over parameters (trainable or
 * frozen), *buffers over EQR_PARAM_BUFFER entries (running statistics,
 * thetas). Either pointer may be NULL. */
void eqr_module_num_scalars(const eqr_module *m, int64_t *params, int64_t *buffers);

/* The model summary: one line per module (nested ones indented), with
 * name, kind, input -> output type (resolved through keeps_type modules),
 * details and parameter count, then a line of totals:
 *     name        kind        in -> out                      params
 *     net         sequential  D4[trivial] -> plain(10)        12345
 *       c1        gconv       D4[trivial] -> D4[regular x8]     584
 *     ...
 *     total: 12345 parameters in 9 tensors, 64 buffer values
 * Written into buf (always terminated when n > 0; buf may be NULL with
 * n = 0 to size it). Returns the length the full text needs, or -1 with
 * EQR_ERR_ARG for a NULL module. */
int eqr_module_summary(eqr_ctx *ctx, const eqr_module *m, char *buf, size_t n);
/* The same text to the context's log callback, one message per line at
 * level. EQR_ERR_ARG for a NULL module; EQR_ERR_NOMEM. */
eqr_status eqr_module_log_summary(eqr_ctx *ctx, const eqr_module *m, eqr_log_level level);

/* ------------------------------------------------------------ containers */

/* New empty sequential container: forward runs the children in order.
 * Parameterless; in training mode. name as eqr_module_create.
 *
 * Build it one statement per child,
 *     eqr_module *net = eqr_sequential_create(ctx, "net");
 *     eqr_sequential_add(net, eqr_gconv_module(ctx, "c1", t_in, r8, 5, &k5));
 *     eqr_sequential_add(net, eqr_relu_module(ctx, NULL));
 * so that the layers are created in the order written: constructors
 * register their parameters and draw their initial values from the
 * context RNG when they run, and C leaves the order in which the arguments
 * of one call are evaluated unspecified (GCC on x86-64 goes last to
 * first), which is why there is no variadic "sequential of these modules"
 * call: with the constructors as its arguments, the same seed would give
 * another model from another compiler. */
eqr_module *eqr_sequential_create(eqr_ctx *ctx, const char *name);
/* Append child (owned from now on, also on error: then destroyed).
 * EQR_ERR_ARG if seq is not a sequential, child is NULL on a healthy
 * context, is seq itself or already inside a container, or its input type
 * does not match the output type before it (message names both layers and
 * types). A context in error: the child is destroyed, the error kept. */
eqr_status eqr_sequential_add(eqr_module *seq, eqr_module *child);
/* Replace child i of a sequential by m (m owned; the old child returned
 * to the caller, who now owns it). m's types are checked against the
 * modules before and after it. NULL on error (EQR_ERR_ARG: not a
 * sequential, i out of range, m NULL or in a container, a type mismatch;
 * m destroyed unless it is in a container). */
eqr_module *eqr_module_replace_child(eqr_module *parent, int i, eqr_module *m);

/* ------------------------------------------------- plain layers (ops.h) */

/* conv2d c_in -> c_out, k x k, geometry geom (NULL: stride 1, no
 * padding): "<name>.weight" [c_out, c_in, k, k] (Kaiming normal, gain
 * sqrt(2)) and, if bias, "<name>.bias" [c_out] (zeros, NO_DECAY). Types
 * plain(c_in) -> plain(c_out). */
eqr_module *eqr_conv2d_module(eqr_ctx *ctx, const char *name, int c_in, int c_out, int k,
                              const eqr_conv2d_geom *geom, int bias);
/* linear in -> out on x [N, in]: "<name>.weight" [out, in] (Xavier
 * uniform, gain 1) and, if bias, "<name>.bias" [out] (zeros, NO_DECAY).
 * Types plain(in) -> plain(out). */
eqr_module *eqr_linear_module(eqr_ctx *ctx, const char *name, int in, int out, int bias);
/* Pointwise activation of any tensor (kinds of equi_layers.h; slope for
 * leaky ReLU); keeps the type. Use eqr_pointwise_module to have the field
 * type checked for equivariance. name may be NULL (the kind's name). */
eqr_module *eqr_activation_module(eqr_ctx *ctx, const char *name, eqr_pointwise_kind kind,
                                  float slope);
/* eqr_activation_module(ctx, name, EQR_PW_RELU, 0). */
eqr_module *eqr_relu_module(eqr_ctx *ctx, const char *name);
/* Max / average pooling of [N, C, H, W] (ops.h); keep the type. */
eqr_module *eqr_maxpool2d_module(eqr_ctx *ctx, const char *name, int k, int stride, int pad);
eqr_module *eqr_avgpool2d_module(eqr_ctx *ctx, const char *name, int k, int stride, int pad);
/* Mean over the spatial axes, [N, C, ...] -> [N, C]; keeps the type. */
eqr_module *eqr_global_avgpool_module(eqr_ctx *ctx, const char *name);
/* [N, ...] -> [N, numel / N]; output type none. */
eqr_module *eqr_flatten_module(eqr_ctx *ctx, const char *name);
/* Inverted dropout with probability p in [0, 1) in training mode, the
 * identity in evaluation mode; keeps the type. */
eqr_module *eqr_dropout_module(eqr_ctx *ctx, const char *name, float p);
/* Batch norm of plain channels (eqr_batchnorm, momentum 0.1, eps 1e-5):
 * "<name>.weight" [channels] (1), "<name>.bias" (0), buffers
 * "<name>.running_mean" (0) and "<name>.running_var" (1). Types
 * plain(channels) both sides. */
eqr_module *eqr_batchnorm_module(eqr_ctx *ctx, const char *name, int channels);

/* ------------------------------------- planar equivariant layers (nn2d) */

/* Each takes the arguments of the layer's create function (same
 * parameters, same names, same errors) and gives the layer's in -> out
 * field types. The layer is reachable with the typed accessors below. */
eqr_module *eqr_gconv_module(eqr_ctx *ctx, const char *name, const eqr_rep *in_type,
                             const eqr_rep *out_type, int k, const eqr_gconv_opts *opts);
eqr_module *eqr_steer_conv_module(eqr_ctx *ctx, const char *name, const eqr_rep *in_type,
                                  const eqr_rep *out_type, int k,
                                  const eqr_steer_conv_opts *opts);
/* Pools to trivial fields: eqr_group_pool_create, eqr_norm_pool_create,
 * eqr_invariant_map_create. name may be NULL. */
eqr_module *eqr_group_pool_module(eqr_ctx *ctx, const char *name, const eqr_rep *in_type,
                                  eqr_gpool_mode mode);
eqr_module *eqr_norm_pool_module(eqr_ctx *ctx, const char *name, const eqr_rep *in_type);
eqr_module *eqr_invariant_map_module(eqr_ctx *ctx, const char *name, const eqr_rep *in_type,
                                     eqr_gpool_mode mode);
/* Nonlinearities on field types. name may be NULL for the pointwise and
 * gated ones (they have no parameters). */
eqr_module *eqr_pointwise_module(eqr_ctx *ctx, const char *name, const eqr_rep *in_type,
                                 eqr_pointwise_kind kind, float slope);
eqr_module *eqr_norm_relu_module(eqr_ctx *ctx, const char *name, const eqr_rep *in_type);
eqr_module *eqr_gated_module(eqr_ctx *ctx, const char *name, const eqr_rep *in_type);
/* Equivariant batch norm; follows eqr_module_set_training. */
eqr_module *eqr_field_bn_module(eqr_ctx *ctx, const char *name, const eqr_rep *in_type,
                                const eqr_field_bn_opts *opts);

/* ------------------------------------------------- 3D layers (nn3d) */

/* Vector neurons (vn.h): types vn(c_in) -> vn(c_out). The pools take the
 * point axis away ([N, C, 3, P] -> [N, C, 3]) and keep vn(C); the
 * invariant layer's output type is none (invariant numbers in a VN
 * layout). VN batch norm follows eqr_module_set_training. */
eqr_module *eqr_vn_linear_module(eqr_ctx *ctx, const char *name, int c_in, int c_out);
eqr_module *eqr_vn_leaky_relu_module(eqr_ctx *ctx, const char *name, int channels,
                                     const eqr_vn_leaky_relu_opts *opts);
eqr_module *eqr_vn_bn_module(eqr_ctx *ctx, const char *name, int channels,
                             const eqr_vn_bn_opts *opts);
eqr_module *eqr_vn_mean_pool_module(eqr_ctx *ctx, const char *name);
eqr_module *eqr_vn_max_pool_module(eqr_ctx *ctx, const char *name, int channels);
eqr_module *eqr_vn_invariant_module(eqr_ctx *ctx, const char *name, int channels);
/* EGNN layer (egnn.h, the arguments of eqr_egnn_create): a tuple-only
 * module, io = {h [B, n, F], x [B, n, 3], v (or NULL), edge_attr (or
 * NULL)} -> {h', x', v, edge_attr} (n = 4); its one-tensor forward is
 * refused (EQR_ERR_ARG). Types none. Relaxed by eqr_relax_module through
 * eqr_relax_egnn. */
eqr_module *eqr_egnn_module(eqr_ctx *ctx, const char *name, int in_features, int out_features,
                            const eqr_egnn_opts *opts);
/* N-body SEGNN (segnn.h, the arguments of eqr_segnn_create): a tuple-only
 * module, io = {x [B, n, 3], v [B, n, 3], q [B, n, 1]} -> {predicted x, v,
 * q} (n = 3); its one-tensor forward is refused. Types none. Relaxed by
 * eqr_relax_module through eqr_relax_segnn. */
eqr_module *eqr_segnn_module(eqr_ctx *ctx, const char *name, const eqr_segnn_opts *opts);
/* Irreps linear (irreps_nn.h): types in -> out (copied). Relaxed by
 * eqr_relax_module through eqr_relax_irreps_linear (fold supported). */
eqr_module *eqr_irreps_linear_module(eqr_ctx *ctx, const char *name, const eqr_irreps *in,
                                     const eqr_irreps *out);
/* Weighted tensor product (tensor_product.h) with internal weights
 * "<name>.weight" and, if bias, "<name>.bias" on the 0e outputs
 * (eqr_tp_add_bias; EQR_ERR_ARG if out has no 0e entry). A tuple-only
 * module: io = {x1 [N, dim in1], x2 [N, dim in2]} -> {y [N, dim out], x2}
 * (n = 2): x2 (e.g. spherical harmonics of the edges, a node attribute)
 * passes through, so a sequential of tensor products, gates, norms and
 * linears maps {h, attr} to {h', attr} (the one-tensor modules map io[0]).
 * The one-tensor forward and any other n are refused (EQR_ERR_ARG naming
 * the module). Types: irreps in1 -> irreps out (the features in io[0];
 * in2 is shown by the summary's details). Relaxed by eqr_relax_module
 * through eqr_relax_tp (relax.h: y + theta W_r x1; fold is refused there). */
eqr_module *eqr_tp_module(eqr_ctx *ctx, const char *name, const eqr_irreps *in1,
                          const eqr_irreps *in2, const eqr_irreps *out, int bias);
/* Irreps batch norm and layer norm (irreps_norm.h, the arguments of the
 * create functions; opts may be NULL): types irreps -> the same irreps.
 * The batch norm follows eqr_module_set_training (batch statistics and
 * running update in training, running statistics in evaluation); the
 * layer norm has no mode (it is the same in both). Their running
 * statistics count as buffers in the summary. */
eqr_module *eqr_irreps_bn_module(eqr_ctx *ctx, const char *name, const eqr_irreps *irreps,
                                 const eqr_irreps_norm_opts *opts);
eqr_module *eqr_irreps_ln_module(eqr_ctx *ctx, const char *name, const eqr_irreps *irreps,
                                 const eqr_irreps_norm_opts *opts);
/* Gate (gate.h) with its irreps spelled out: scalars (entries of l = 0,
 * parity +1) pass through the normalised SiLU, and each copy of each entry
 * of gated is multiplied by its gate. Input type scalars + G x 0e + gated
 * (G = the copies in gated), output scalars + gated. EQR_ERR_ARG if
 * scalars has an entry other than 0e or an irreps is NULL. name may be
 * NULL. */
eqr_module *eqr_gate_module(eqr_ctx *ctx, const char *name, const eqr_irreps *scalars,
                            const eqr_irreps *gated);

/* The layer inside a built-in module; NULL if m is not of that kind. */
eqr_gconv *eqr_module_gconv(const eqr_module *m);
eqr_steer_conv *eqr_module_steer_conv(const eqr_module *m);
eqr_field_bn *eqr_module_field_bn(const eqr_module *m);
eqr_vn_linear *eqr_module_vn_linear(const eqr_module *m);
eqr_vn_bn *eqr_module_vn_bn(const eqr_module *m);
eqr_irreps_linear *eqr_module_irreps_linear(const eqr_module *m);
eqr_tp *eqr_module_tp(const eqr_module *m);
eqr_irreps_bn *eqr_module_irreps_bn(const eqr_module *m);
eqr_irreps_ln *eqr_module_irreps_ln(const eqr_module *m);
eqr_egnn *eqr_module_egnn(const eqr_module *m);
eqr_segnn *eqr_module_segnn(const eqr_module *m);

#ifdef __cplusplus
}
#endif
#endif
