#!/usr/bin/env bash
# Install equirelax into a scratch prefix and build an out-of-tree C program
# against it twice: through pkg-config and through find_package(equirelax).
# The prefix is not a system one and every consumer is RUN with
# LD_LIBRARY_PATH unset: the documented commands must work exactly as shown.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake -S . -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DEQR_BUILD_TESTS=OFF -DEQR_BUILD_EXAMPLES=OFF \
  -DCMAKE_INSTALL_PREFIX="$work/prefix" >/dev/null
cmake --build "$work/build" -j"$(nproc)" >/dev/null
cmake --install "$work/build" >/dev/null
libdir=$(ls -d "$work"/prefix/lib*/ | head -n1)
unset LD_LIBRARY_PATH
pclibs=$(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --libs equirelax)
case "$pclibs" in *-rpath*) ;; *) echo "pkg-config Libs lack an rpath for a non-system prefix: $pclibs" >&2; exit 1 ;; esac
# 1. pkg-config, shared library
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -std=c11 -Wall -Wextra -Werror tests/consumer/main.c $(pkg-config --cflags --libs equirelax) \
  -o "$work/consumer_pc"
"$work/consumer_pc"
# 2. pkg-config, static library
cc -std=c11 tests/consumer/main.c $(pkg-config --cflags equirelax) "$libdir/libequirelax.a" \
  -lopenblas -lz -lm -fopenmp -o "$work/consumer_static"
"$work/consumer_static"
# 3. the README's snippet, exactly as shown, through pkg-config
sed -n '/^```c$/,/^```$/p' README.md | sed '1d;$d' > "$work/readme.c"
cc -std=c11 -Wall -Wextra -Werror "$work/readme.c" $(pkg-config --cflags --libs equirelax) \
  -o "$work/readme"
"$work/readme"
# 4. find_package
cmake -S tests/consumer -B "$work/cbuild" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/cbuild" >/dev/null
"$work/cbuild/consumer"
# 5. equirelax_dist through pkg-config, run on 2 ranks (where MPI was found)
dist=""
if [ -f "$libdir/pkgconfig/equirelax_dist.pc" ] && command -v mpirun >/dev/null; then
  cc -std=c11 -Wall -Wextra -Werror tests/consumer/dist_main.c \
    $(pkg-config --cflags --libs equirelax_dist) -o "$work/consumer_dist"
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe -np 2 \
    "$work/consumer_dist"
  dist=", equirelax_dist on 2 ranks"
fi
echo "install check: pkg-config (shared, static), README snippet and find_package consumers$dist OK"
