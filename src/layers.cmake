# The library's layers, bottom up: each folder of src/ is one layer, built as
# its own object library whose include path holds only its own folder, the
# folders of the layers it may use (DEPS, closed under "uses") and their public
# headers (HEADERS). An include of anything above fails to compile, and
# scripts/check_layers.sh (run by .ci/run) names the offending line.
# docs/design.md draws this table. dist is not part of the core library:
# it is the separate library equirelax_dist, built only when MPI is found.
eqr_layer(core    DEPS                                          HEADERS core.h tensor.h autodiff.h param.h)
eqr_layer(ops     DEPS core                                     HEADERS ops.h graph.h)
eqr_layer(groups  DEPS core                                     HEADERS groups.h so3.h o3.h)
eqr_layer(optim   DEPS core                                     HEADERS optim.h schedule.h)
eqr_layer(data    DEPS core                                     HEADERS data.h nbody.h)
eqr_layer(io      DEPS core optim                               HEADERS checkpoint.h safetensors.h)
eqr_layer(nn2d    DEPS core ops groups                          HEADERS gconv.h steerable.h equi_layers.h)
eqr_layer(nn3d    DEPS core ops groups                          HEADERS vn.h egnn.h irreps_nn.h irreps_norm.h tensor_product.h gate.h segnn.h)
eqr_layer(nn      DEPS core ops groups nn2d nn3d                HEADERS module.h)
eqr_layer(relax   DEPS core ops groups nn2d nn3d nn             HEADERS relax.h)
eqr_layer(measure DEPS core ops groups data nn2d nn3d nn relax       HEADERS equivariance.h)
eqr_layer(train   DEPS core ops groups optim data io nn2d nn3d nn relax measure HEADERS train.h)
eqr_layer(dist    OWN_LIBRARY equirelax_dist NEEDS MPI::MPI_C DEPS core ops groups optim data io nn2d nn3d nn relax measure train HEADERS dist.h)
