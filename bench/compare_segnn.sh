#!/usr/bin/env bash
# Side-by-side benchmark of equirelax's SEGNN training step (bench_segnn)
# and its PyTorch peer (segnn_reference.py), run interleaved in one go.
#
#   bench/compare_segnn.sh [--rounds R] [--build DIR] [--peer PATH] [--batch B] [--log FILE]
#   bench/compare_segnn.sh --report FILE   # only summarise an earlier log
#
# For relax 0/1 x threads 1/2, every round runs ours and the peer back to
# back (alternating who goes first), with OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE unset for those commands only (OMP_WAIT_POLICY as the
# caller has it: passive made the peer's 2-thread step 1.7x slower). Ratios are taken per round
# (the two runs of a round see nearly the same machine load) and reported as
# median [min, max] of ours/peer step time and ours/peer peak RSS (target
# <= 0.5 for both). Defaults: 3 rounds, batch 100, build dir build-bench
# (configured Release and built if needed), peer
# ../shared/bench/segnn_reference.py relative to the repo root.
# python3-torch is installed with apt-get if the peer's Python lacks torch.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=3
BATCH=100
BUILD=$ROOT/build-bench
PEER=$ROOT/../shared/bench/segnn_reference.py
PY=/usr/bin/python3
LOG=
REPORT=

while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --peer) PEER=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --log) LOG=$2; shift 2 ;;
    --report) REPORT=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "compare_segnn.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

run_all() {
  [ -f "$PEER" ] || { echo "compare_segnn.sh: peer script $PEER not found (use --peer)" >&2; exit 2; }
  if ! "$PY" -c 'import torch' 2>/dev/null; then
    echo "# installing python3-torch (apt-get)" >&2
    apt-get install -y python3-torch >/dev/null
  fi
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  cmake --build "$BUILD" -j2 --target bench_segnn >/dev/null
  OURS=$BUILD/bench/bench_segnn
  [ -n "$LOG" ] || LOG=$(mktemp /tmp/compare_segnn.XXXXXX)
  clean() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$@"; }
  {
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC')  $(uname -m)  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')  cores $(nproc)"
    for r in $(seq "$ROUNDS"); do
      for relax in 0 1; do
        for t in 1 2; do
          ours() { echo "round=$r $(clean "$OURS" --relax $relax --threads $t --batch "$BATCH")"; }
          peer() { echo "round=$r $(clean "$PY" "$PEER" --relax $relax --threads $t --batch "$BATCH")"; }
          if [ $((r % 2)) -eq 1 ]; then ours; peer; else peer; ours; fi
        done
      done
    done
  } | tee "$LOG"
  REPORT=$LOG
}

report() {
  echo "# ratios ours/peer per round, median [min, max] over rounds ($1)"
  awk '
    function val(k,   i, a) { for (i = 1; i <= NF; i++) { split($i, a, "="); if (a[1] == k) return a[2] } return "" }
    /^round=/ {
      who = ($2 ~ /^equirelax/) ? "ours" : "peer"
      key = val("relax") " " val("threads") " " val("round")
      ms[who, key] = val("ms_per_step"); rss[who, key] = val("peak_rss_mb")
      cfg[val("relax") " " val("threads")] = 1; rounds[val("round")] = 1
    }
    END {
      for (c in cfg) {
        n = 0
        for (rd in rounds) {
          k = c " " rd
          if ((("ours", k) in ms) && (("peer", k) in ms) && ms["peer", k] > 0) {
            n++; t[n] = ms["ours", k] / ms["peer", k]; m[n] = rss["ours", k] / rss["peer", k]
            to[n] = ms["ours", k]; tp[n] = ms["peer", k]
          }
        }
        if (!n) continue
        split(c, cc, " ")
        printf "relax=%s threads=%s  time %s  rss %s  (ours %s ms, peer %s ms, medians; %d rounds)\n", cc[1], cc[2], stat(t, n), stat(m, n), med(to, n), med(tp, n), n
      }
    }
    function sort(a, n,   i, j, x) { for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x } }
    function med(a, n) { sort(a, n); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    function stat(a, n,   mn, mx, i) { mn = a[1]; mx = a[1]; for (i = 2; i <= n; i++) { if (a[i] < mn) mn = a[i]; if (a[i] > mx) mx = a[i] } return sprintf("%.2f [%.2f, %.2f]", med(a, n), mn, mx) }
  ' "$1" | sort
}

[ -n "$REPORT" ] || run_all
report "$REPORT"
