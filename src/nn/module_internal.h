/* Internal structure of modules (module.h), shared by the nn layer's
 * sources and by the relax layer's relaxed module. */
#ifndef EQR_MODULE_INTERNAL_H
#define EQR_MODULE_INTERNAL_H

#include "core/internal.h"
#include "equirelax/module.h"

struct eqr_module {
    eqr_ctx *ctx;
    const eqr_module_ops *ops;
    void *impl;
    char name[EQR_NAME_LEN];
    int training;
    int in_container;        /* owned by a container */
    eqr_ftype in, out;       /* declared (leaf) or resolved (container) */
    eqr_irreps in_ir, out_ir; /* storage of IRREPS types */
    int typed;               /* container: holds a type-defining child */
    int *params, nparams;    /* the module's own store indices */
    eqr_module **child;
    int nchild, cap;
};

/* New module whose own parameters are the store entries [p0, p1) (p0 ==
 * p1: none). name NULL: the kind's name. fn names the public function in
 * messages. NULL on error (recorded); impl is then destroyed by ops. */
eqr_module *eqr__module_new(eqr_ctx *ctx, const char *fn, const char *name,
                            const eqr_module_ops *ops, void *impl, int p0, int p1);
/* m's forward and tuple forward without the public entry checks, but with
 * a tuple-only module's (ops->tuple) arity and NULL checks. */
eqr_tensor *eqr__module_fwd(eqr_ctx *ctx, eqr_module *m, eqr_tensor *x);
eqr_status eqr__module_fwd_n(eqr_ctx *ctx, eqr_module *m, int n, eqr_tensor **io);
/* Append the store entries [p0, p1) to m's own parameters. */
eqr_status eqr__module_add_params(eqr_module *m, int p0, int p1);
/* Append child to m without a type check (a wrapper's one child). */
eqr_status eqr__module_adopt(eqr_module *m, eqr_module *child);
/* The ops of sequential containers (for kind checks). */
extern const eqr_module_ops eqr__sequential_ops;
/* 1 if the module passes its input type through (keeps_type, or a
 * container without a type-defining child). */
int eqr__module_passes_type(const eqr_module *m);

#endif
