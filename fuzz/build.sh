#!/usr/bin/env bash
# Build the libFuzzer harnesses with clang (ASan + UBSan + libFuzzer) against
# the library sources, into build-fuzz/. Usage: bash fuzz/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=build-fuzz; mkdir -p "$out"
cblas=$(dirname "$(find /usr/include -name cblas.h | head -1)")
flags="-g -O1 -DEQR_NO_TARGET_CLONES -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iinclude -Isrc -I$cblas"
for h in fuzz/fuzz_*.c; do
  n=$(basename "$h" .c)
  clang -std=c11 -D_GNU_SOURCE $flags "$h" $(find src -name '*.c') -o "$out/$n" -lopenblas -lz -lm
done
echo "built: $(ls $out)"
