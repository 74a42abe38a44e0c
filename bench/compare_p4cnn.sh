#!/usr/bin/env bash
# Side-by-side benchmark of equirelax's P4CNN training step (bench_p4cnn)
# and its PyTorch peer (p4cnn_reference.py), run interleaved in one go.
#
#   bench/compare_p4cnn.sh [--rounds R] [--build DIR] [--peer PATH] [--log FILE]
#   bench/compare_p4cnn.sh --report FILE   # only summarise an earlier log
#
# For relax 0/1 x threads 1/2 x batch 64/1, every round runs ours and the
# peer back to back (alternating who goes first), plus a large sgemm on 1
# and 2 threads, all with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for
# those commands only. Ratios are taken per round (the two runs of a round
# see nearly the same machine load) and reported as median [min, max]:
#   ours/peer step time, ours/peer peak RSS, ours relaxed/strict,
#   GFLOP/s of our strict step (FLOPs counted from the model's convs) next to
#   the large sgemm's GFLOP/s of the same round.
# Defaults: 5 rounds, build dir build-bench (configured Release and built if
# needed), peer ../shared/bench/p4cnn_reference.py relative to the repo root.
# python3-torch is installed with apt-get if the peer's Python lacks torch.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=5
BUILD=$ROOT/build-bench
PEER=$ROOT/../shared/bench/p4cnn_reference.py
PY=/usr/bin/python3
LOG=
REPORT=
STEPS64=10 WARM64=3 STEPS1=50 WARM1=10

while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --peer) PEER=$2; shift 2 ;;
    --log) LOG=$2; shift 2 ;;
    --report) REPORT=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "compare_p4cnn.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
# Build, then run every configuration ROUNDS times into $LOG.
run_all() {
  [ -f "$PEER" ] || { echo "compare_p4cnn.sh: peer script $PEER not found (use --peer)" >&2; exit 2; }

  if ! "$PY" -c 'import torch' 2>/dev/null; then
    echo "# installing python3-torch (apt-get)" >&2
    apt-get install -y python3-torch >/dev/null
  fi
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  cmake --build "$BUILD" -j2 --target bench_p4cnn bench_sgemm >/dev/null
  OURS=$BUILD/bench/bench_p4cnn
  SGEMM=$BUILD/bench/bench_sgemm
  [ -n "$LOG" ] || LOG=$(mktemp /tmp/compare_p4cnn.XXXXXX)

  clean() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$@"; }

  {
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC')  $(uname -m)  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')  cores $(nproc)"
    echo "# load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  } | tee "$LOG"

  for r in $(seq 1 "$ROUNDS"); do
    for t in 1 2; do
      echo "round=$r $(clean "$SGEMM" --threads "$t" --n 2048 --reps 5)" | tee -a "$LOG"
    done
    for b in 64 1; do
      if [ "$b" = 64 ]; then s=$STEPS64 w=$WARM64; else s=$STEPS1 w=$WARM1; fi
      for rx in 0 1; do
        for t in 1 2; do
          args=(--relax "$rx" --threads "$t" --batch "$b" --steps "$s" --warmup "$w")
          # relaxed: ours with the exact norm (as the peer) and, at batch >= 8,
          # with the documented estimator from m = batch/8 images
          m=$(( b / 8 ))
          ours() {
            echo "round=$r $(clean "$OURS" "${args[@]}")" | tee -a "$LOG"
            if [ "$rx" = 1 ] && [ "$m" -ge 1 ] && [ "$m" -lt "$b" ]; then
              echo "round=$r $(clean "$OURS" "${args[@]}" --norm-subsample "$m")" | tee -a "$LOG"
            fi
          }
          if [ $(( (r + rx + t) % 2 )) = 0 ]; then
            ours
            echo "round=$r $(clean "$PY" "$PEER" "${args[@]}")" | tee -a "$LOG"
          else
            echo "round=$r $(clean "$PY" "$PEER" "${args[@]}")" | tee -a "$LOG"
            ours
          fi
        done
      done
    done
  done
  echo "# load at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$LOG"
}

if [ -n "$REPORT" ]; then
  LOG=$REPORT
else
  run_all
fi

"$PY" - "$LOG" <<'EOF'
import re, statistics, sys
runs, gemm = {}, {}
for line in open(sys.argv[1]):
    kv = dict(re.findall(r'(\w+)=(\S+)', line))
    if 'round' not in kv:
        continue
    r = int(kv['round'])
    if line.split()[1] == 'sgemm':
        gemm[(r, int(kv['threads']))] = float(kv['gflops_median'])
        continue
    name = line.split()[1]
    # relaxed rows of ours: 'x' = exact norm (also logs without a norm field),
    # 'e' = the estimator (norm=est)
    rx = int(kv['relax'])
    if rx and name == 'equirelax' and kv.get('norm') == 'est':
        rx = 'e'
    key = (name, rx, int(kv['threads']), int(kv['batch']))
    runs.setdefault(key, {})[r] = (float(kv['ms_per_step']), float(kv['peak_rss_mb']))

def flops(batch, relax):
    """FLOPs of one training step, convs only (the rest is < 0.1%):
    forward 2 B O C k^2 OH OW per conv, backward the same for dW and for dX
    (none for l1, whose input is the data). Relaxed with the exact norm: the
    fused conv plus the separate W_r x conv, each forward and backward."""
    layers = [(1, 64, 5, 28, False), (64, 64, 5, 28, True), (64, 128, 3, 14, True),
              (128, 128, 3, 7, True)]
    tot = 0.0
    for c, o, k, s, dx in layers:
        f = 2.0 * batch * o * c * k * k * s * s
        tot += f * (3 if dx else 2)
    return tot * (2 if relax else 1)

def stat(v):
    return statistics.median(v), min(v), max(v)

def fmt(v, p=2):
    m, lo, hi = stat(v)
    return f"{m:.{p}f} [{lo:.{p}f}, {hi:.{p}f}]"

LABEL = {0: 'relax=0  ', 1: 'relax=1x ', 'e': 'relax=1e '}
print()
print("relax=1x: our relaxed step with the exact activation norm (as the peer);")
print("relax=1e: with the estimator from m = batch/8 images (--norm-subsample); both")
print("          against the same peer run (exact norm)")
print("config                       ours ms   peer ms   ours/peer time        ours/peer RSS"
      "        ours MB  peer MB")
for b in (64, 1):
    for rx in (0, 1, 'e'):
        for t in (1, 2):
            o = runs.get(('equirelax', rx, t, b), {})
            p = runs.get(('torch', 1 if rx == 'e' else rx, t, b), {})
            rs = sorted(set(o) & set(p))
            if not rs:
                continue
            tr = [o[r][0] / p[r][0] for r in rs]
            mr = [o[r][1] / p[r][1] for r in rs]
            print(f"{LABEL[rx]}threads={t} batch={b:<3d}   {statistics.median(o[r][0] for r in rs):8.2f}"
                  f"  {statistics.median(p[r][0] for r in rs):8.2f}   {fmt(tr):20s}  {fmt(mr):20s}"
                  f" {statistics.median(o[r][1] for r in rs):6.0f}   {statistics.median(p[r][1] for r in rs):6.0f}")
print()
print("ours relaxed/strict (per round)")
for rx in (1, 'e'):
    for b in (64, 1):
        for t in (1, 2):
            s0 = runs.get(('equirelax', 0, t, b), {})
            s1 = runs.get(('equirelax', rx, t, b), {})
            rs = sorted(set(s0) & set(s1))
            if rs:
                print(f"  {LABEL[rx]}threads={t} batch={b:<3d} {fmt([s1[r][0] / s0[r][0] for r in rs])}")
print()
print("GFLOP/s of our strict step vs a large sgemm (n=2048) in the same round")
for t in (1, 2):
    s0 = runs.get(('equirelax', 0, t, 64), {})
    rs = sorted(r for r in s0 if (r, t) in gemm)
    if not rs:
        continue
    gf = [flops(64, 0) / (s0[r][0] * 1e-3) * 1e-9 for r in rs]
    gs = [gemm[(r, t)] for r in rs]
    frac = [a / g for a, g in zip(gf, gs)]
    print(f"  threads={t} batch=64: step {flops(64, 0) * 1e-9:.1f} GFLOP, {fmt(gf, 1)} GFLOP/s;"
          f" sgemm {fmt(gs, 1)} GFLOP/s; step/sgemm {fmt(frac)}")
EOF
echo "# raw log: $LOG"
