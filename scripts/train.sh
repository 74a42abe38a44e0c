#!/usr/bin/env bash
# Build equirelax (Release) and run the main job: train the example CNN on
# Fashion-MNIST. Extra arguments go to the trainer (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target train_fmnist_cnn
exec ./build/examples/train_fmnist_cnn --threads "$(nproc)" "$@"
