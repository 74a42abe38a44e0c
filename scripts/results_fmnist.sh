#!/usr/bin/env bash
# The comparison of issue 5 on rotated Fashion-MNIST, written to
# docs/results_fmnist.md (assembled into docs/results.md): strict equivariant training vs relaxed (triangle schedule,
# both penalties) vs relaxed without penalties vs constant theta vs a plain
# CNN with the same channels, at training sizes 1k and 5k (and 60k with
# RESULTS_60K=1), 3 seeds each, mean +- std of the PROJECTED model's test
# accuracy on all 10,000 rotated test images; plus a learning-rate sweep
# (3e-4, 1e-3, 3e-3) of strict vs relaxed at 5k.
#
# Resumable: every run writes results/fmnist/<run>.out and is skipped when
# that file already ends with its result line; interrupt and rerun at will.
# Budget, from single-thread CPU times (relaxed ~44 ms per step of 64, strict
# ~35 ms, a full-test-set evaluation ~2.3 s, the final invariance check ~9 s):
# ~25 min on 2 quiet cores for the default part (42 runs), ~20 min more for
# RESULTS_60K=1 (15 runs of ~80 s). Environment: THREADS (default nproc), SEEDS (default
# "1 2 3"), RESULTS_DIR (default results/fmnist), BUILD_DIR (default build),
# FMNIST_DATA (--data),
# RESULTS_ONLY (an extended regex: run only the runs whose name matches, e.g.
# 'strict_n1000_lr0.003_s1'; the table is still written from what exists).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
BUILD=${BUILD_DIR:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target fmnist_rot >/dev/null

BIN=./$BUILD/examples/fmnist_rot
# Idle OpenMP workers sleep instead of spinning (see scripts/train.sh).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
OUT=${RESULTS_DIR:-results/fmnist}
THREADS=${THREADS:-$(nproc)}
SEEDS=${SEEDS:-"1 2 3"}
DATA_ARGS=()
[ -n "${FMNIST_DATA:-}" ] && DATA_ARGS=(--data "$FMNIST_DATA")
mkdir -p "$OUT"

# Training budget per size: epochs (same for every config of a size), and
# how often the projected model is evaluated during training.
epochs_for() {
    case $1 in
    1000) echo 40 ;;
    5000) echo 12 ;;
    60000) echo 3 ;;
    esac
}
every_for() {
    case $1 in
    1000) echo 10 ;;
    5000) echo 4 ;;
    60000) echo 1 ;;
    esac
}

# Flags of each compared configuration.
flags_for() {
    case $1 in
    strict) echo "--relax off" ;;
    relaxed) echo "--relax triangle --relax-form additive" ;;
    relaxed_nopen) echo "--relax triangle --relax-form additive --lambda-defect 0 --lambda-norm 0" ;;
    constant) echo "--relax constant --relax-form additive" ;;
    plain) echo "--group none" ;;
    esac
}
CONFIGS="strict relaxed relaxed_nopen constant plain"

# run NAME ARGS...: run fmnist_rot unless NAME already has its result.
run() {
    local name=$1
    shift
    local f=$OUT/$name.out
    if [ -n "${RESULTS_ONLY:-}" ] && ! [[ $name =~ ^(${RESULTS_ONLY})$ ]]; then
        return 0
    fi
    if [ -f "$f" ] && tail -n 1 "$f" | grep -q '^result '; then
        return 0
    fi
    echo "$BIN $* --threads $THREADS" >"$OUT/$name.cmd"
    echo "[$(date +%H:%M:%S)] $name: $BIN $*"
    if "$BIN" "$@" --threads "$THREADS" "${DATA_ARGS[@]}" >"$f.tmp" 2>"$OUT/$name.err"; then
        mv "$f.tmp" "$f"
        tail -n 1 "$f"
    else
        echo "  FAILED (see $OUT/$name.err)"
    fi
}

# One run of configuration cfg at size n, learning rate lr, seed s.
one() {
    local cfg=$1 n=$2 lr=$3 s=$4
    # shellcheck disable=SC2046
    local e
    e=$(epochs_for "$n")
    run "${cfg}_n${n}_e${e}_lr${lr}_s${s}" $(flags_for "$cfg") --train-size "$n" \
        --epochs "$e" --eval-every "$(every_for "$n")" --lr "$lr" --seed "$s"
}

SIZES="1000 5000"
[ "${RESULTS_60K:-0}" = 1 ] && SIZES="$SIZES 60000"
LR=0.003
for n in $SIZES; do
    for s in $SEEDS; do
        for cfg in $CONFIGS; do one "$cfg" "$n" "$LR" "$s"; done
    done
done
for lr in 0.0003 0.001 0.003; do
    for s in $SEEDS; do
        for cfg in strict relaxed; do one "$cfg" 5000 "$lr" "$s"; done
    done
done

# ---- the table ----

# stats NAME_GLOB: "mean std k max_equiv mean_seconds" over finished runs.
stats() {
    local files=()
    for f in $OUT/$1.out; do [ -f "$f" ] && files+=("$f"); done
    if [ ${#files[@]} -eq 0 ]; then
        echo "- - 0 - -"
        return
    fi
    tail -q -n 1 "${files[@]}" | awk '
        { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
          a[NR] = v["test_acc"] + 0; sum += a[NR]; sec += v["seconds"]
          if (v["equiv_err"] + 0 > eq) eq = v["equiv_err"] + 0 }
        END { m = sum / NR; ss = 0
              for (i = 1; i <= NR; i++) ss += (a[i] - m) ^ 2
              sd = NR > 1 ? sqrt(ss / (NR - 1)) : 0
              printf "%.4f %.4f %d %.1e %.0f\n", m, sd, NR, eq, sec / NR }'
}

cell() { # "mean +- std (k)"
    read -r m sd k eq sec <<<"$(stats "$1")"
    if [ "$k" = 0 ]; then echo "not run"; else echo "$m ± $sd ($k)"; fi
}

DOC=docs/results_fmnist.md
{
    echo "# Results: relaxed vs strict equivariant training on rotated Fashion-MNIST"
    echo
    echo "Written by \`scripts/results_fmnist.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores,"
    echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), threads $THREADS)."
    echo "Every number is the test accuracy of the **projected** model (the model"
    echo "after \`eqr_relax_project\`, exactly C4-invariant; strict models are their"
    echo "own projection; the plain CNN is not equivariant) on all 10,000 test images,"
    echo "each rotated by a fixed random multiple of 90 degrees; training images"
    echo "likewise, rotations drawn from the seed. Mean ± sample std over seeds"
    echo "(number of seeds in brackets)."
    echo
    echo "Model (examples/fmnist_rot.c): C4 convs 32/64/128 channels (8/16/32 regular"
    echo "fields), 5x5 then 3x3, ReLU, two max-pools, group max-pool, mean over space,"
    echo "linear; the plain CNN has the same channels. Adam, cosine learning-rate"
    echo "decay to 0, batch 64; relaxed runs: theta per optimizer step (triangle peak 1,"
    echo "or constant 1), lambda 0.01 for both penalties unless stated, W_r = 0 at"
    echo "start, fold-projection at the end (identical to drop when theta ends at 0)."
    echo
    echo "## Strict vs relaxed (lr 3e-3)"
    echo
    echo "| train size (epochs) | strict | relaxed (triangle + penalties) | relaxed, no penalties | constant theta | plain CNN |"
    echo "|---|---|---|---|---|---|"
    for n in 1000 5000 60000; do
        row="| $n ($(epochs_for $n)) |"
        for cfg in $CONFIGS; do row="$row $(cell "${cfg}_n${n}_e$(epochs_for $n)_lr${LR}_s*") |"; done
        echo "$row"
    done
    echo
    echo "## Learning-rate sweep (5k images, $(epochs_for 5000) epochs)"
    echo
    echo "| lr | strict | relaxed (triangle + penalties) |"
    echo "|---|---|---|"
    for lr in 0.0003 0.001 0.003; do
        e=$(epochs_for 5000)
        echo "| $lr | $(cell "strict_n5000_e${e}_lr${lr}_s*") | $(cell "relaxed_n5000_e${e}_lr${lr}_s*") |"
    done
    echo
    echo "## Invariance and time"
    echo
    echo "Largest equiv_err (max relative change of the logits over the 4 rotations,"
    echo "every test image) and mean seconds per run:"
    echo
    echo "| run | max equiv_err | mean seconds |"
    echo "|---|---|---|"
    for n in 1000 5000 60000; do
        for cfg in $CONFIGS; do
            read -r m sd k eq sec <<<"$(stats "${cfg}_n${n}_e$(epochs_for $n)_lr${LR}_s*")"
            [ "$k" = 0 ] || echo "| $cfg, $n | $eq | $sec |"
        done
    done
    echo
    echo "## Commands"
    echo
    echo "Build: \`cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build --target fmnist_rot\`."
    echo "Each run (seed S, size N, epochs E, evaluation every V epochs, learning rate L):"
    echo
    echo "    ./build/examples/fmnist_rot <config flags> --train-size N --epochs E --eval-every V --lr L --seed S --threads $THREADS"
    echo
    echo "| config | flags |"
    echo "|---|---|"
    for cfg in $CONFIGS; do echo "| $cfg | \`$(flags_for "$cfg")\` |"; done
    echo
    echo "Sizes / epochs / evaluation interval: 1000 / 40 / 10, 5000 / 12 / 4, 60000 / 3 / 1"
    echo "(60k only with \`RESULTS_60K=1\`). Seeds: $SEEDS. The exact command of every run is"
    echo "in \`$OUT/<run>.cmd\` and its output in \`$OUT/<run>.out\`. Reproduce everything with"
    echo
    echo "    bash scripts/results_fmnist.sh            # RESULTS_60K=1 to add 60k"
} >"$DOC"
echo "wrote $DOC"
bash scripts/results_page.sh
