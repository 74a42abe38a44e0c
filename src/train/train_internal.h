/* Internals shared by the training helper's files. Not installed. */
#ifndef EQR_TRAIN_INTERNAL_H
#define EQR_TRAIN_INTERNAL_H

#include "core/internal.h"
#include "equirelax/train.h"

/* Column col of the table copied into scratch (rows doubles); returns it. */
const double *eqr__metrics_col_values(const eqr_metrics *m, int col, double *scratch);

#endif
