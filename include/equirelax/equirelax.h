/* equirelax: C11 training library for group-equivariant networks with
 * constraint relaxation. Umbrella header: include this one. */
#ifndef EQUIRELAX_H
#define EQUIRELAX_H

#define EQUIRELAX_VERSION_MAJOR 0
#define EQUIRELAX_VERSION_MINOR 1
#define EQUIRELAX_VERSION_PATCH 0

#include "core.h"
#include "tensor.h"
#include "autodiff.h"
#include "param.h"
#include "ops.h"
#include "graph.h"
#include "gate.h"
#include "tensor_product.h"
#include "optim.h"
#include "checkpoint.h"
#include "safetensors.h"
#include "data.h"
#include "groups.h"
#include "equivariance.h"
#include "equi_layers.h"
#include "steerable.h"
#include "gconv.h"
#include "schedule.h"
#include "train.h"
#include "relax.h"
#include "so3.h"
#include "o3.h"
#include "irreps_nn.h"
#include "irreps_norm.h"
#include "vn.h"
#include "nbody.h"
#include "egnn.h"
#include "segnn.h"
#include "module.h"

#endif
