#!/usr/bin/env bash
# SEGNN N-body results of docs/results_segnn.md (issue 14): the paper's Fig. 4
# protocol, strict vs relaxed SEGNN, test MSE at the best validation epoch vs
# the number of layers (2, 4, 6 at 3000 training samples) and vs the
# training-set size (500, 1000, 3000 at 4 layers), over seeds, mean +- sample
# std; our EGNN at the same budget beside it; and (SEGNN_LONG=1) one long
# strict SEGNN run whose validation curve shows what a longer budget reaches;
# SEGNN_COSINE=1 one strict run of COS_EPOCHS (default 400) epochs with the
# learning rate decayed to 0 by a cosine (--lr-schedule cosine), once per
# decoupled weight decay in COS_WD (default "0": plain Adam; e.g. "0 0.1 1");
# SEGNN_CURVE=1 the test MSE vs epochs (nbody --test-curve, reported only:
# selection stays on validation) of a strict run of LONG_EPOCHS epochs at the
# constant rate and of one of COS_EPOCHS epochs at the cosine rate.
#
# Resumable: every run writes results/segnn/<tag>.out and is skipped once
# that file ends with its result line; a run in progress keeps
# results/segnn/<tag>.ckpt (not committed) after every epoch and continues
# from it when the script is rerun in the same checkout. Interrupt at will.
#
# Environment: EPOCHS (default 100), SEEDS (default "1 2 3"), JOBS parallel
# runs of one thread each (default 2), BUILD_DIR (default build), OUT
# (default results/segnn), SEGNN_LONG=1 adds the long run (LONG_EPOCHS,
# default 1000), RESULTS_ONLY (an extended regex of tags to run; the table
# is still written from what exists). Budget (measured, 1 thread, quiet
# machine): a 4-layer strict SEGNN epoch on 3000 samples ~4 s including the
# per-epoch validation, relaxed ~1.3x; see docs/results_segnn.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
source scripts/results_lib.sh
export -f has_result
BUILD=${BUILD_DIR:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target nbody >/dev/null
export BIN=./$BUILD/examples/nbody
export OUT=${OUT:-results/segnn}
EPOCHS=${EPOCHS:-100}
SEEDS=${SEEDS:-"1 2 3"}
JOBS=${JOBS:-2}
LONG_EPOCHS=${LONG_EPOCHS:-1000}
COS_EPOCHS=${COS_EPOCHS:-400}
COS_WD=${COS_WD:-0}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p "$OUT"

# run_one TAG ARGS...: run nbody unless TAG already has its result.
run_one() {
    local tag=$1
    shift
    local f=$OUT/$tag.out
    if has_result "$f"; then return 0; fi
    echo "$BIN $* --threads 1" >"$OUT/$tag.cmd"
    echo "[$(date +%H:%M:%S)] start $tag" >&2
    if "$BIN" "$@" --threads 1 --checkpoint "$OUT/$tag.ckpt" --resume \
        --metrics "$OUT/$tag.csv" >"$f.tmp" 2>"$OUT/$tag.err"; then
        mv "$f.tmp" "$f"
        rm -f "$OUT/$tag.ckpt"
        echo "[$(date +%H:%M:%S)] done $tag: $(tail -n 1 "$f")" >&2
    else
        echo "[$(date +%H:%M:%S)] FAILED $tag (see $OUT/$tag.err)" >&2
    fi
}
export -f run_one

# tag and flags of one run
runs=()
add() { # MODEL MODE LAYERS N SEED EPOCHS
    local model=$1 mode=$2 L=$3 N=$4 s=$5 e=$6 relax=off
    [ "$mode" = relaxed ] && relax=triangle
    local tag="${model}_${mode}_L${L}_N${N}_e${e}_s${s}"
    if [ -n "${RESULTS_ONLY:-}" ] && ! [[ $tag =~ ^(${RESULTS_ONLY})$ ]]; then return 0; fi
    runs+=("$tag --model $model --relax $relax --layers $L --train-size $N --epochs $e --seed $s --select best")
}
# the long run first: it takes one core for the whole time while the
# other runs share the rest
[ "${SEGNN_LONG:-0}" = 1 ] && add segnn strict 4 3000 1 "$LONG_EPOCHS"
# cos_tag WD: the cosine run's tag (weight decay 0 keeps the tag it had)
cos_tag() { echo "segnn_strict_L4_N3000_e${COS_EPOCHS}_cos$([ "$1" = 0 ] || echo "_wd$1")_s1"; }
if [ "${SEGNN_COSINE:-0}" = 1 ]; then
    for wd in $COS_WD; do
        tag=$(cos_tag "$wd")
        if [ -n "${RESULTS_ONLY:-}" ] && ! [[ $tag =~ ^(${RESULTS_ONLY})$ ]]; then continue; fi
        runs+=("$tag --model segnn --relax off --layers 4 --train-size 3000 --epochs $COS_EPOCHS --seed 1 --select best --lr-schedule cosine --wd $wd")
    done
fi
if [ "${SEGNN_CURVE:-0}" = 1 ]; then
    for c in "e${LONG_EPOCHS}|--epochs $LONG_EPOCHS" "e${COS_EPOCHS}_cos|--epochs $COS_EPOCHS --lr-schedule cosine"; do
        tag="segnn_curve_L4_N3000_${c%%|*}_s1"
        if [ -n "${RESULTS_ONLY:-}" ] && ! [[ $tag =~ ^(${RESULTS_ONLY})$ ]]; then continue; fi
        runs+=("$tag --model segnn --relax off --layers 4 --train-size 3000 ${c#*|} --seed 1 --select best --test-curve")
    done
fi
for s in $SEEDS; do
    for c in 4:3000 2:3000 6:3000 4:500 4:1000; do
        for mode in strict relaxed; do add segnn "$mode" "${c%%:*}" "${c##*:}" "$s" "$EPOCHS"; done
    done
    add egnn strict 4 3000 "$s" "$EPOCHS"
done
if [ ${#runs[@]} -gt 0 ]; then
    printf '%s\n' "${runs[@]}" | xargs -P "$JOBS" -L 1 bash -c 'run_one "$@"' _
fi

# ---- the tables ----

# stats GLOB: "mean std k max_equiv mean_seconds" of test_mse over finished runs
stats() {
    local files=()
    for f in $OUT/$1.out; do has_result "$f" && files+=("$f"); done
    if [ ${#files[@]} -eq 0 ]; then echo "- - 0 - -"; return; fi
    tail -q -n 1 "${files[@]}" | awk '
        { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
          a[NR] = v["test_mse"] + 0; sum += a[NR]; sec += v["seconds"]
          if (v["equiv_err"] + 0 > eq) eq = v["equiv_err"] + 0 }
        END { m = sum / NR; ss = 0
              for (i = 1; i <= NR; i++) ss += (a[i] - m) ^ 2
              sd = NR > 1 ? sqrt(ss / (NR - 1)) : 0
              printf "%.5f %.5f %d %.1e %.0f\n", m, sd, NR, eq, sec / NR }'
}
cell() {
    read -r m sd k eq sec <<<"$(stats "$1")"
    if [ "$k" = 0 ]; then echo "not run"; else echo "$m ± $sd ($k)"; fi
}
nseeds=$(echo $SEEDS | wc -w)

DOC=docs/results_segnn.md
{
    echo "# Results: SEGNN on N-body, strict vs relaxed (the paper's Fig. 4 protocol)"
    echo
    echo "Written by \`scripts/results_segnn.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $JOBS runs in"
    echo "parallel, one thread each; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))."
    echo "Task and data: nbody.h (5 charged particles, frame 30 -> 40; 3000 / 2000 / 2000"
    echo "train / val / test, a training set of N is the first N of the 3000). Model: SEGNN's"
    echo "N-body model (segnn.h: hidden 32x0e+32x1o, attributes lmax 1), Adam lr 5e-4, batch"
    echo "100, $EPOCHS epochs. Relaxed = the paper's relaxed SEGNN (theta W_r on both updates of"
    echo "every layer, triangle theta schedule per step peaking at 1 and ending at 0,"
    echo "lambda 0.01 for the activation-form Lie derivative and the norm penalty on"
    echo "detached inputs, W_r = 0 at start), **projected** (W_r dropped) for every number"
    echo "here. Every number is the test MSE of the epoch with the best validation MSE"
    echo "(validation of relaxed models at theta 0), mean ± sample std over seeds (count"
    echo "in brackets; $nseeds planned)."
    echo
    echo "## Test MSE vs layers (3000 training samples)"
    echo
    echo "| layers | strict SEGNN | relaxed SEGNN |"
    echo "|---|---|---|"
    for L in 2 4 6; do
        echo "| $L | $(cell "segnn_strict_L${L}_N3000_e${EPOCHS}_s*") | $(cell "segnn_relaxed_L${L}_N3000_e${EPOCHS}_s*") |"
    done
    echo
    echo "## Test MSE vs training-set size (4 layers)"
    echo
    echo "| train size | strict SEGNN | relaxed SEGNN |"
    echo "|---|---|---|"
    for N in 500 1000 3000; do
        echo "| $N | $(cell "segnn_strict_L4_N${N}_e${EPOCHS}_s*") | $(cell "segnn_relaxed_L4_N${N}_e${EPOCHS}_s*") |"
    done
    echo
    echo "## EGNN at the same budget (4 layers, 3000 samples, $EPOCHS epochs, best validation epoch)"
    echo
    echo "| model | test MSE |"
    echo "|---|---|"
    echo "| EGNN (examples/nbody.c --model egnn) | $(cell "egnn_strict_L4_N3000_e${EPOCHS}_s*") |"
    echo "| strict SEGNN | $(cell "segnn_strict_L4_N3000_e${EPOCHS}_s*") |"
    long="$OUT/segnn_strict_L4_N3000_e${LONG_EPOCHS}_s1"
    if [ -f "$long.csv" ]; then
        echo
        echo "## Longer budget (strict SEGNN, 4 layers, 3000 samples, seed 1)"
        echo
        if has_result "$long.out"; then
            echo "Finished $LONG_EPOCHS epochs: \`$(tail -n 1 "$long.out")\` ($(grep '^# selected' "$long.out"))."
        else
            echo "In progress (resumable); validation MSE so far, every 50th epoch:"
        fi
        echo
        echo "| epoch | val MSE |"
        echo "|---|---|"
        awk -F, 'NR > 1 && ($1 % 50 == 0 || $1 == 1) { printf "| %d | %.5f |\n", $1, $3 }' "$long.csv"
    fi
    for cos in "$OUT"/segnn_strict_L4_N3000_e*_cos*_s1.csv; do
        [ -f "$cos" ] || continue
        cos=${cos%.csv}
        ce=$(grep -o '_e[0-9]*_cos' <<<"${cos##*/}" | tr -dc 0-9)
        wd=$(grep -o 'wd[0-9.e-]*' <<<"${cos##*/}" | cut -c3- || true)
        echo
        echo "## Cosine learning rate (strict SEGNN, 4 layers, 3000 samples, seed 1, $ce epochs${wd:+, weight decay $wd})"
        echo
        if [ -n "$wd" ]; then
            echo "AdamW lr 5e-4 with decoupled weight decay $wd, the rate decayed to 0 by a cosine over the run (\`--lr-schedule cosine --wd $wd\`)."
        else
            echo "Adam lr 5e-4 decayed to 0 by a cosine over the run (\`--lr-schedule cosine\`)."
        fi
        if has_result "$cos.out"; then
            echo "Finished: \`$(tail -n 1 "$cos.out")\` ($(grep '^# selected' "$cos.out"))."
        else
            echo "In progress (resumable); validation MSE so far, every 25th epoch:"
        fi
        echo
        echo "| epoch | train MSE | val MSE |"
        echo "|---|---|---|"
        awk -F, 'NR > 1 && ($1 % 25 == 0 || $1 == 1) { printf "| %d | %.5f | %.5f |\n", $1, $2, $3 }' "$cos.csv"
    done
    # the issue's accuracy target against the best strict 4-layer run here
    best=$(for f in "$OUT"/segnn_strict_L4_N3000_*.out; do
        has_result "$f" && echo "$(tail -n 1 "$f" | grep -o 'test_mse=[0-9.]*' | cut -d= -f2) $(basename "$f" .out)"
    done | sort -g | head -n 1)
    if [ -n "$best" ]; then
        read -r bm bt <<<"$best"
        read -r em _ ek _ _ <<<"$(stats "egnn_strict_L4_N3000_e${EPOCHS}_s*")"
        read -r sm _ sk _ _ <<<"$(stats "segnn_strict_L4_N3000_e${EPOCHS}_s*")"
        echo
        echo "## Against the published accuracy"
        echo
        echo "Target (issue 14): strict SEGNN test MSE <= 0.0050 on our generator (published, on the"
        echo "original data set: SEGNN 0.0043 after 1000 epochs, EGNN 0.0070). The best strict"
        echo "4-layer run here: **$bm** ($bt), so the target is $(awk -v b="$bm" 'BEGIN { print (b <= 0.005) ? "met" : "**not met**" }')."
        if [ "$ek" != 0 ] && [ "$sk" != 0 ]; then
            r=$(awk -v s="$sm" -v e="$em" 'BEGIN { printf "%.2f", s / e }')
            echo "At $EPOCHS epochs SEGNN / EGNN = $r here (published: 0.0043 / 0.0070 = 0.61): SEGNN's"
            echo "lead over EGNN is $(awk -v r="$r" 'BEGIN { print (r <= 0.61) ? "as large as published or larger" : "somewhat smaller than published" }'), and our EGNN too is"
            echo "above its published figure ($em vs 0.0070), which suggests our generator's task is harder than the original's."
        fi
        echo
        echo "Test MSE (at the best validation epoch) against the training budget, every strict"
        echo "4-layer run on 3000 samples here (seed 1 only where one seed ran):"
        echo
        echo "| epochs | learning rate | weight decay | seeds | test MSE | best validation epoch(s) |"
        echo "|---|---|---|---|---|---|"
        for e in $(ls "$OUT" | sed -n 's/^segnn_strict_L4_N3000_e\([0-9]*\)_.*\.out$/\1/p' | sort -un); do
            for v in "" _cos _cos_wd0.1 _cos_wd1; do
                read -r m sd k _ _ <<<"$(stats "segnn_strict_L4_N3000_e${e}${v}_s*")"
                [ "$k" = 0 ] && continue
                sel=$(grep -ho '^# selected epoch [0-9]*' "$OUT"/segnn_strict_L4_N3000_e"${e}${v}"_s*.out | awk '{ printf "%s%s", (NR > 1 ? ", " : ""), $4 }')
                lr=constant; [ -n "$v" ] && lr=cosine
                wd=${v#_cos}; wd=${wd#_wd}; [ -z "$wd" ] && wd=0
                echo "| $e | $lr | $wd | $k | $m$([ "$k" -gt 1 ] && echo " ± $sd") | $sel |"
            done
        done
        echo
        for cur in "$OUT"/segnn_curve_L4_N3000_e*_s1.csv; do
            [ -f "$cur" ] || continue
            cur=${cur%.csv}
            ce=$(grep -o '_e[0-9]*' <<<"${cur##*/}" | tr -dc 0-9)
            lr=constant; [[ $cur == *_cos_* ]] && lr=cosine
            echo
            echo "### Test MSE vs epochs (strict SEGNN, 4 layers, 3000 samples, seed 1, $ce epochs, $lr rate)"
            echo
            echo "\`--test-curve\` measures the test set after every epoch, for this curve only: the"
            echo "model is still selected on validation, and the lowest test figure below is not"
            echo "one a user could select."
            if has_result "$cur.out"; then
                echo "Finished: \`$(tail -n 1 "$cur.out")\` ($(grep '^# selected' "$cur.out"))."
            else
                echo "In progress (resumable; epochs so far below)."
            fi
            awk -F, 'NR > 1 && $11 != "" && (b == "" || $11 < b) { b = $11; be = $1 }
                END { if (be) printf "Lowest test MSE over the epochs: %.5f at epoch %d.\n", b, be }' "$cur.csv"
            echo
            echo "| epoch | train MSE | val MSE | test MSE |"
            echo "|---|---|---|---|"
            awk -F, -v k=$((ce >= 1000 ? 50 : 25)) 'NR > 1 && ($1 % k == 0 || $1 == 1) { printf "| %d | %.5f | %.5f | %s |\n", $1, $2, $3, ($11 == "" ? "—" : sprintf("%.5f", $11)) }' "$cur.csv"
        done
        echo
        echo "Every longer run overfits after about 200 epochs (train MSE keeps falling, validation"
        echo "rises); a cosine rate or decoupled weight decay (0.1, 1) did not move the best"
        echo "validation figure below 0.006 (the sections above)."
    fi
    echo
    echo "## Invariance and time"
    echo
    echo "| runs | max equiv_err (test set, after projection) | mean seconds per run |"
    echo "|---|---|---|"
    for g in "segnn_strict_*_e${EPOCHS}_*" "segnn_relaxed_*_e${EPOCHS}_*" "egnn_strict_*_e${EPOCHS}_*"; do
        read -r m sd k eq sec <<<"$(stats "$g")"
        [ "$k" = 0 ] || echo "| ${g%%_\**} ($k runs) | $eq | $sec |"
    done
    echo
    echo "## Commands"
    echo
    echo "Each run (layers L, size N, epochs E, seed S; relax off or triangle):"
    echo
    echo "    ./build/examples/nbody --model segnn --relax R --layers L --train-size N --epochs E --seed S --select best --threads 1"
    echo
    echo "All of them: \`bash scripts/results_segnn.sh\` (EPOCHS, SEEDS, JOBS, SEGNN_LONG=1, SEGNN_COSINE=1, SEGNN_CURVE=1 as"
    echo "in its header). Logs, per-epoch CSVs and the exact command of each run: results/segnn/."
} >"$DOC"
echo "wrote $DOC" >&2
bash scripts/results_page.sh
