#!/usr/bin/env bash
# Tensor-product forward+backward: ours (bench_tp) against the PyTorch peer's
# O3TensorProduct (the CG-einsum way of ../shared/bench/segnn_reference.py),
# same shapes, N edges, shared weights, one thread each. Prints both times and
# the ratio ours / torch per shape (target <= 0.5).
#   bash bench/compare_tp.sh [build-dir] [reps]
# Needs /usr/bin/python3 with python3-torch (apt-get install -y python3-torch).
# The peer's Irreps allow l <= 2, so lmax3 is ours only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
reps=${2:-20}
ref=${EQR_SEGNN_REF:-$here/../../shared/bench/segnn_reference.py}
[ -f "$ref" ] || ref=/work/shared/bench/segnn_reference.py
ours=$(OPENBLAS_NUM_THREADS=1 "$build/bench/bench_tp" --threads 1 --n 2000 --reps "$reps")
echo "$ours"
theirs=$(OPENBLAS_NUM_THREADS=1 /usr/bin/python3 - "$ref" "$reps" <<'PY'
import importlib.util, statistics, sys, time
spec = importlib.util.spec_from_file_location("segnn_ref", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
import torch
torch.set_num_threads(1)
torch.manual_seed(0)
reps = int(sys.argv[2])
shapes = {"segnn": ("32x0e+32x1o", "1x0e+1x1o", "32x0e+32x1o"),
          "lmax2": ("32x0e+32x1o+32x2e", "1x0e+1x1o+1x2e", "32x0e+32x1o+32x2e")}
for name, (a, b, c) in shapes.items():
    tp = m.O3TensorProduct(a, b, c)
    x1 = torch.randn(2000, m.Irreps(a).dim, requires_grad=True)
    x2 = torch.randn(2000, m.Irreps(b).dim, requires_grad=True)
    ts = []
    for r in range(reps + 1):
        t0 = time.perf_counter()
        tp(x1, x2).sum().backward()
        ts.append(time.perf_counter() - t0)
        x1.grad = x2.grad = None; tp.zero_grad()
    print(f"torch shape={name} n=2000 ms_fwd_bwd={statistics.median(ts[1:]) * 1e3:.3f}")
PY
)
echo "$theirs"
for s in segnn lmax2; do
  a=$(echo "$ours" | sed -n "s/^tp shape=$s .*ms_fwd_bwd=\([0-9.]*\).*/\1/p")
  b=$(echo "$theirs" | sed -n "s/^torch shape=$s .*ms_fwd_bwd=\([0-9.]*\).*/\1/p")
  awk -v s="$s" -v a="$a" -v b="$b" 'BEGIN { printf "ratio shape=%s ours/torch=%.2f\n", s, a / b }'
done
