#!/usr/bin/env bash
# Relaxation telemetry on the short budget where relaxation used to hurt
# (issue 15): fmnist_rot C4, 5000 images, 2 epochs, seeds 1 and 2, strict vs
# relaxed (defaults: penalties on the detached input) vs relaxed with the
# penalties' full gradient, with the per-step telemetry every 5 steps (probe:
# 500 test images). Keeps each finished run in results/telemetry/<run>.*
# and skips it next time (resumable); copies the charts of seed 1 to
# docs/figures/telemetry_<config>.svg for docs/relaxation.md.
# Usage: bash scripts/telemetry_fmnist.sh   (BUILD_DIR, THREADS, SEEDS)
set -euo pipefail
cd "$(dirname "$0")/.."
# A build of its own, so rebuilding build/ meanwhile cannot pull the binary away.
BUILD_DIR=${BUILD_DIR:-build-exp}
BIN=$BUILD_DIR/examples/fmnist_rot
[ -x "$BIN" ] || { source scripts/deps.sh; cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null; cmake --build "$BUILD_DIR" -j"$(nproc)" --target fmnist_rot >/dev/null; }
OUT=results/telemetry
mkdir -p "$OUT" docs/figures
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
common=(--train-size 5000 --epochs 2 --telemetry 5 --probe-images 500 --threads "${THREADS:-2}")
for s in ${SEEDS:-1 2}; do
    for cfg in strict relaxed full; do
        case $cfg in
        strict) args=(--relax off) ;;
        relaxed) args=() ;;
        full) args=(--penalty-grad full) ;;
        esac
        name=${cfg}_s$s
        f=$OUT/$name.out
        if [ -f "$f" ] && tail -n 1 "$f" | grep -q '^result '; then continue; fi
        echo "[$(date +%H:%M:%S)] $name"
        "$BIN" "${common[@]}" "${args[@]}" --seed "$s" --steps "$OUT/$name.steps.csv" \
            --steps-plot "$OUT/$name.steps.svg" --metrics "$OUT/$name.csv" \
            --plot "$OUT/$name.svg" >"$f.tmp" 2>"$OUT/$name.err" && mv "$f.tmp" "$f" ||
            { echo "  FAILED (see $OUT/$name.err)"; continue; }
        tail -n 1 "$f"
        [ "$s" = 1 ] && cp "$OUT/$name.steps.svg" "docs/figures/telemetry_$cfg.svg"
    done
done
