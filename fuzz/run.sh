#!/usr/bin/env bash
# Build and run every harness for a bounded time (default 20 s each) from its
# committed seed corpus; exits non-zero on the first crash. Usage: bash fuzz/run.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-20}
bash fuzz/build.sh
for h in build-fuzz/fuzz_*; do
  n=$(basename "$h"); n=${n#fuzz_}
  work=$(mktemp -d); cp fuzz/corpus/$n/* "$work"/
  "$h" -max_total_time="$t" -rss_limit_mb=2048 -malloc_limit_mb=2048 "$work" fuzz/corpus/$n
  rm -rf "$work"
done
