/* Shared between steer_basis.c and steer_conv.c. Not installed. */
#ifndef EQR_STEER_INTERNAL_H
#define EQR_STEER_INTERNAL_H

#include "nn2d/equi_internal.h"
#include "equirelax/steerable.h"

/* The basis builder behind eqr_steer_basis_create; errors name fn. */
eqr_steer_basis *eqr__steer_basis_build(eqr_ctx *ctx, const char *fn, const eqr_rep *in_type,
                                        const eqr_rep *out_type, int k,
                                        const eqr_steer_basis_opts *opts);

#endif
