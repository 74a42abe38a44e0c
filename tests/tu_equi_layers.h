/* Field types, inputs, the equivariance check and forwards shared by the
 * equivariant-layer tests (test_equivariance_layers_*.c). */
#ifndef TU_EQUI_LAYERS_H
#define TU_EQUI_LAYERS_H

#include "testutil.h"

#include "equirelax/equi_layers.h"

#define PI 3.14159265358979323846
/* Equivariance bound of the layers checked here (tu_equiv_bound): no conv;
 * the deepest is batch norm, whose statistics sum over N H W = 75 positions
 * times a field's <= 3 components, twice (mean, variance), then the
 * normalisation: depth < 512; pools and norms sum <= 8 entries. amp 8: the
 * centring x - mean (magnitudes over the spread, ~3 for the offset inputs)
 * times the few components a field norm mixes. */
#define EQ_TOL tu_equiv_bound(512, 8.0)
#define NGROUPS 6

/* The i-th of C4, D4, C8, SO(2) (L = 3), O(2) (L = 2), C16 (i < NGROUPS). */
eqr_group tu_lay_group(int i);

/* Field list of a type, walked here independently of the library. */
enum { K_TRIV = 0, K_REG = 1, K_IRR = 2 };
typedef struct tu_flist {
    int n;
    int off[128], dim[128], kind[128];
} tu_flist;

void tu_lay_walk(const eqr_rep *t, tu_flist *f);

eqr_rep *tu_lay_make_type(eqr_ctx *ctx, const eqr_group *G, int np, const eqr_rep_part *parts);

/* trivial x2, the first non-trivial irrep, regular x2 (finite G), then
 * every other non-trivial irrep (2D ones twice). */
eqr_rep *tu_lay_mixed_type(eqr_ctx *ctx, const eqr_group *G);

/* Fields a pointwise nonlinearity / group pooling accepts: trivial x2 and
 * regular x2 (trivial x3 for continuous groups). */
eqr_rep *tu_lay_regular_type(eqr_ctx *ctx, const eqr_group *G);

/* Gated input: every non-trivial irrep once, regular x1 (finite G) and one
 * trivial field, then K trivial gates, merged into the last trivial part. */
eqr_rep *tu_lay_gated_type(eqr_ctx *ctx, const eqr_group *G, int *K);

/* A plain [N, C, H, W] input of N(0, 1) samples from seed. */
eqr_tensor *tu_lay_rand_x(eqr_ctx *ctx, int C, int N, int H, int W, uint64_t seed);

/* Away from kinks: every value has |v| >= 0.3 (so every field norm >= 0.3)
 * and the channels of each regular field at a pixel are >= 0.2 apart (no
 * ties for max, no zeros for ReLU). */
void tu_lay_kinkless(const eqr_rep *t, float *x, int N, int S, uint64_t seed);

/* Grid-exact elements of G on a square grid: multiples of 90 degrees, with
 * and without flip, that belong to G. */
int tu_lay_exact_elems(const eqr_group *G, eqr_gelem *e);

/* Equivariance error <= EQ_TOL for every grid-exact element (and the max
 * over the whole group when all its elements are grid-exact); the output
 * must not be trivially zero. Returns the largest error. */
double tu_lay_check_equiv(eqr_ctx *ctx, eqr_forward_fn f, void *m, const eqr_rep *in,
                          const eqr_rep *out, eqr_tensor *x, const char *what);

eqr_tensor *tu_fw_pool(eqr_ctx *c, void *m, eqr_tensor *x);
eqr_tensor *tu_fw_pw(eqr_ctx *c, void *m, eqr_tensor *x);
eqr_tensor *tu_fw_nrelu(eqr_ctx *c, void *m, eqr_tensor *x);
eqr_tensor *tu_fw_gated(eqr_ctx *c, void *m, eqr_tensor *x);
eqr_tensor *tu_fw_bn(eqr_ctx *c, void *m, eqr_tensor *x);
eqr_tensor *tu_fw_relu(eqr_ctx *c, void *m, eqr_tensor *x);
/* Per-channel batch norm with a scale per channel (m: gamma [C]). */
eqr_tensor *tu_fw_plain_bn(eqr_ctx *c, void *m, eqr_tensor *x);

double *tu_dalloc(int64_t n);

void tu_lay_random_bias(eqr_tensor *b, uint64_t seed);

#endif
