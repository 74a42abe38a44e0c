#!/usr/bin/env bash
# Build equirelax (Release) and run the whole cmocka suite through ctest.
# Usage: bash scripts/test.sh [extra ctest args, e.g. -L ops]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
