#!/usr/bin/env bash
# Tensor-product forward+backward: ours (bench_tp, the public eqr_tp_forward
# + eqr_backward) against the PyTorch peer's O3TensorProduct (the CG-einsum
# way of ../shared/bench/segnn_reference.py), same shapes, N = 2000 edges,
# shared (internal) weights as SEGNN's TPs, T threads each (OpenBLAS pinned
# to 1 thread in both; ours threads over edge blocks, torch its OpenMP pool).
# The two programs run alternately for several rounds (the machine is
# shared and its load drifts); each prints medians of reps, and the ratio is
# taken between the medians over the rounds (target <= 0.5).
#   bash bench/compare_tp.sh [build-dir] [reps] [rounds] [threads]
# Needs /usr/bin/python3 with python3-torch (apt-get install -y python3-torch).
# The peer's Irreps allow l <= 2, so lmax3 is ours only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
reps=${2:-20}
rounds=${3:-3}
threads=${4:-1}
ref=${EQR_SEGNN_REF:-$here/../../shared/bench/segnn_reference.py}
[ -f "$ref" ] || ref=/work/shared/bench/segnn_reference.py
all_ours="" all_theirs=""
for r in $(seq "$rounds"); do
  ours=$(OPENBLAS_NUM_THREADS=1 "$build/bench/bench_tp" --threads "$threads" --n 2000 --reps "$reps")
  echo "$ours"
  theirs=$(OPENBLAS_NUM_THREADS=1 /usr/bin/python3 - "$ref" "$reps" "$threads" <<'PY'
import importlib.util, statistics, sys, time
spec = importlib.util.spec_from_file_location("segnn_ref", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
import torch
torch.set_num_threads(int(sys.argv[3]))
torch.manual_seed(0)
reps = int(sys.argv[2])
shapes = {"segnn": ("32x0e+32x1o", "1x0e+1x1o", "32x0e+32x1o"),
          "lmax2": ("32x0e+32x1o+32x2e", "1x0e+1x1o+1x2e", "32x0e+32x1o+32x2e")}
for name, (a, b, c) in shapes.items():
    tp = m.O3TensorProduct(a, b, c)
    x1 = torch.randn(2000, m.Irreps(a).dim, requires_grad=True)
    x2 = torch.randn(2000, m.Irreps(b).dim, requires_grad=True)
    ts, cs = [], []
    for r in range(reps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        tp(x1, x2).sum().backward()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
        x1.grad = x2.grad = None; tp.zero_grad()
    print(f"torch shape={name} n=2000 threads={sys.argv[3]} ms_fwd_bwd={statistics.median(ts[1:]) * 1e3:.3f}"
          f" cpu_ms_fwd_bwd={statistics.median(cs[1:]) * 1e3:.3f}")
PY
)
  echo "$theirs"
  all_ours+="$ours"$'\n' all_theirs+="$theirs"$'\n'
done
med() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# wall time (what a user waits) and process CPU time (not counting waits
# for a core; with threads > 1 the sum over threads)
for s in segnn lmax2; do
  a=$(echo "$all_ours" | sed -n "s/^tp shape=$s .* ms_fwd_bwd=\([0-9.]*\).*/\1/p" | med)
  b=$(echo "$all_theirs" | sed -n "s/^torch shape=$s .* ms_fwd_bwd=\([0-9.]*\).*/\1/p" | med)
  ac=$(echo "$all_ours" | sed -n "s/^tp shape=$s .*cpu_ms_fwd_bwd=\([0-9.]*\).*/\1/p" | med)
  bc=$(echo "$all_theirs" | sed -n "s/^torch shape=$s .*cpu_ms_fwd_bwd=\([0-9.]*\).*/\1/p" | med)
  awk -v s="$s" -v a="$a" -v b="$b" -v ac="$ac" -v bc="$bc" -v t="$threads" -v r="$rounds" 'BEGIN {
    printf "ratio shape=%s threads=%s rounds=%s ours_ms=%.3f torch_ms=%.3f ours/torch=%.2f", s, t, r, a, b, a / b
    printf " ours_cpu_ms=%.3f torch_cpu_ms=%.3f cpu_ours/torch=%.2f\n", ac, bc, ac / bc }'
done
