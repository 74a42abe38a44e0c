#!/usr/bin/env bash
# Build the libFuzzer harnesses with clang (ASan + UBSan + libFuzzer) into
# build-fuzz/: the library sources are compiled once (coverage-instrumented)
# into an archive that every harness links. Usage: bash fuzz/build.sh
# (EQR_FUZZ_OUT=dir builds elsewhere)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${EQR_FUZZ_OUT:-build-fuzz}; mkdir -p "$out/obj"
cblas=$(dirname "$(find /usr/include -name cblas.h | head -1)")
san="-g -O1 -DEQR_NO_TARGET_CLONES -fsanitize=address,undefined -fno-sanitize-recover=all"
inc="-Iinclude -Isrc -I$cblas"
export san inc out
# one object per source, named after its path (src/groups/x.c -> groups_x.o);
# src/dist is not part of the core library (equirelax_dist, with MPI)
find src -path src/dist -prune -o -name '*.c' -print | xargs -P "$(nproc)" -I{} sh -c \
  'o=$(echo "{}" | sed "s|^src/||; s|/|_|g; s|\.c$|.o|"); clang -std=c11 -D_GNU_SOURCE $san -fsanitize=fuzzer-no-link $inc -c "{}" -o "$out/obj/$o"'
rm -f "$out/libeqr_fuzz.a"
ar rcs "$out/libeqr_fuzz.a" "$out"/obj/*.o
for h in fuzz/fuzz_*.c; do
  n=$(basename "$h" .c)
  clang -std=c11 -D_GNU_SOURCE $san -fsanitize=fuzzer $inc "$h" "$out/libeqr_fuzz.a" -o "$out/$n" -lopenblas -lz -lm
done
echo "built: $(cd $out && ls -d fuzz_*)"
