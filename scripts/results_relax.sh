#!/usr/bin/env bash
# Issue 15's measurement: strict training vs the paper's relaxation recipe vs
# each option the library adds (theta presets early / late, orthogonal
# relaxation, adaptive theta, relaxed group convolution, a 10x scaled
# term), on rotated
# Fashion-MNIST for C4, D4 and C8 at a short and a long budget, 3 seeds,
# written to docs/results_relax.md: mean ± sample std of the PROJECTED
# model's test accuracy (all 10,000 rotated test images) and of its
# validation accuracy (5,000 held-out training images, --val-size), and for
# each setting the option chosen on VALIDATION with its test figure beside
# strict's.
#
# Resumable: every run writes results/relax/<run>.out and is skipped when it
# already ends with its result line. Budget on 2 quiet cores, one thread a
# run, 2 runs at a time: ~35 s a short run, ~60 s a long one, ~200 s a mid
# one and 200-500 s a full one (BUDGETS selects; RESULTS_ONLY runs a
# subset). Environment: SEEDS (default "1 2 3"), JOBS (default 2),
# BUILD_DIR (default build), OUT (default results/relax), FMNIST_DATA (--data),
# RESULTS_ONLY (extended regex on the run names).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
source scripts/results_lib.sh
export -f has_result
BUILD=${BUILD_DIR:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target fmnist_rot >/dev/null
export BIN=./$BUILD/examples/fmnist_rot
export OUT=${OUT:-results/relax}
SEEDS=${SEEDS:-"1 2 3"}
JOBS=${JOBS:-2}
export DATA_ARG=${FMNIST_DATA:+--data $FMNIST_DATA}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p "$OUT"

# Budgets: NAME:train images:epochs (mid: the short run's images for 6x
# the epochs; full: all 60,000 images less the 5,000 held out, ~5x a short
# run each; brief: a short budget on the long one's 1000 images)
BUDGETS=${BUDGETS:-"short:5000:2 mid:5000:12 long:1000:40 full:55000:3 brief:1000:10"}
GROUPS_="c4 d4 c8"
OPTIONS="strict paper early late orthogonal adaptive rgconv wrscale10 rgconv_L4 rgconv_t03 rgconv_lr1e-3 rgconv_L4_lam0.1 rgconv_L4_lam0.001"

flags_for() {
    case $1 in
    strict) echo "--relax off" ;;
    paper) echo "--relax triangle --relax-form additive" ;;
    early) echo "--relax early --relax-form additive" ;;
    late) echo "--relax late --relax-form additive" ;;
    orthogonal) echo "--relax triangle --relax-form additive --orthogonal" ;;
    adaptive) echo "--relax cosine --relax-form additive --adaptive" ;;
    rgconv) echo "--relax triangle --relax-form rgconv --rgconv-banks 2" ;;
    wrscale10) echo "--relax triangle --relax-form additive --wr-scale 10" ;;
    # the default recipe's knobs, swept on validation (C4): base filters,
    # theta peak, learning rate
    rgconv_L4) echo "--relax triangle --relax-form rgconv --rgconv-banks 4" ;;
    rgconv_t03) echo "--relax triangle --relax-form rgconv --rgconv-banks 2 --theta-max 0.3" ;;
    rgconv_lr1e-3) echo "--relax triangle --relax-form rgconv --rgconv-banks 2 --lr 1e-3" ;;
    # the penalty weight of the default (4 base filters), both penalties
    rgconv_L4_lam0.1) echo "--relax triangle --relax-form rgconv --rgconv-banks 4 --lambda-defect 0.1 --lambda-norm 0.1" ;;
    rgconv_L4_lam0.001) echo "--relax triangle --relax-form rgconv --rgconv-banks 4 --lambda-defect 0.001 --lambda-norm 0.001" ;;
    esac
}

run_one() {
    local tag=$1
    shift
    local f=$OUT/$tag.out
    if has_result "$f"; then return 0; fi
    echo "$BIN $* --threads 1 $DATA_ARG" >"$OUT/$tag.cmd"
    echo "[$(date +%H:%M:%S)] start $tag" >&2
    # shellcheck disable=SC2086
    if "$BIN" "$@" --threads 1 $DATA_ARG >"$f.tmp" 2>"$OUT/$tag.err"; then
        mv "$f.tmp" "$f"
        echo "[$(date +%H:%M:%S)] done $tag: $(tail -n 1 "$f")" >&2
    else
        echo "[$(date +%H:%M:%S)] FAILED $tag (see $OUT/$tag.err)" >&2
    fi
}
export -f run_one

runs=()
# short budget first, then long; per group every seed (partial results are
# whole groups)
for b in $BUDGETS; do
    IFS=: read -r bname n e <<<"$b"
    for g in $GROUPS_; do
        for s in $SEEDS; do
            for opt in $OPTIONS; do
                [[ $opt == rgconv* ]] && [ "$g" = c8 ] && continue # rgconv: group convs only
                tag="${g}_${bname}_${opt}_s${s}"
                if [ -n "${RESULTS_ONLY:-}" ] && ! [[ $tag =~ ^(${RESULTS_ONLY})$ ]]; then continue; fi
                runs+=("$tag --group $g $(flags_for "$opt") --train-size $n --epochs $e --eval-every $e --val-size 5000 --seed $s")
            done
        done
    done
done
if [ ${#runs[@]} -gt 0 ]; then
    printf '%s\n' "${runs[@]}" | xargs -P "$JOBS" -L 1 bash -c 'run_one "$@"' _
fi

# ---- the tables ----

# stats GLOB KEY: "mean std k" of KEY over the finished runs
stats() {
    local files=()
    for f in $OUT/$1.out; do has_result "$f" && files+=("$f"); done
    if [ ${#files[@]} -eq 0 ]; then echo "nan nan 0"; return; fi
    tail -q -n 1 "${files[@]}" | awk -v key="$2" '
        { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
          a[NR] = v[key] + 0; sum += a[NR] }
        END { m = sum / NR; ss = 0
              for (i = 1; i <= NR; i++) ss += (a[i] - m) ^ 2
              sd = 0; if (NR > 1) sd = sqrt(ss / (NR - 1))
              printf "%.4f %.4f %d\n", m, sd, NR }'
}
# paired GLOB_PREFIX OPT: "mean std k" over seeds of test_acc(OPT) -
# test_acc(strict) with the same seed (same data order, rotations, init)
paired() {
    local d=() f s o
    for f in $OUT/${1}_strict_s*.out; do
        [ -f "$f" ] || continue
        s=${f##*_s}; s=${s%.out}
        o=$OUT/${1}_${2}_s$s.out
        has_result "$f" || continue
        has_result "$o" || continue
        d+=("$(tail -n 1 "$o" | grep -o 'test_acc=[0-9.]*' | cut -d= -f2) $(tail -n 1 "$f" | grep -o 'test_acc=[0-9.]*' | cut -d= -f2)")
    done
    if [ ${#d[@]} -eq 0 ]; then echo "nan nan 0"; return; fi
    printf '%s\n' "${d[@]}" | awk '{ a[NR] = $1 - $2; sum += a[NR] }
        END { m = sum / NR; ss = 0; for (i = 1; i <= NR; i++) ss += (a[i] - m) ^ 2
              sd = 0; if (NR > 1) sd = sqrt(ss / (NR - 1))
              printf "%+.4f %.4f %d\n", m, sd, NR }'
}
fmt() { # mean std k
    if [ "$3" = 0 ]; then echo "—"; else echo "$1 ± $2 ($3)"; fi
}

DOC=docs/results_relax.md
{
    echo "# Results: does relaxation pay? Strict vs the paper's recipe vs the library's options"
    echo
    echo "Written by \`scripts/results_relax.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $JOBS runs in"
    echo "parallel, one thread each; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))."
    echo "Task: examples/fmnist_rot.c (rotated Fashion-MNIST, the default model of width 32, Adam"
    echo "lr 3e-3 with a cosine decay, batch 64). Budgets: **short** = 5000 training images x 2"
    echo "epochs, **mid** = the same 5000 images x 12 epochs, **long** = 1000 images x 40 epochs,"
    echo "**full** = all 55,000 non-validation images x 3 epochs, **brief** = 1000 images x 10"
    echo "epochs (mid, full and brief: only some options run there). Validation: the last 5000"
    echo "training images"
    echo "(\`--val-size 5000\`, never trained on). Every figure is the accuracy of the"
    echo "**projected** (exactly equivariant) final model, mean ± sample std over seeds (count"
    echo "in brackets). Options (flags of fmnist_rot):"
    echo
    for opt in $OPTIONS; do echo "- $opt: \`$(flags_for "$opt")\`"; done
    echo
    echo "All relaxed runs use the library's defaults: theta peak 1, lambda 0.01 for both"
    echo "penalties on detached inputs, W_r = 0 at start."
    echo
    echo "![strict, the paper's recipe and the default per group and budget](figures/results_relax.svg)"
    for b in $BUDGETS; do
        IFS=: read -r bname n e <<<"$b"
        echo
        echo "## $bname budget ($n images, $e epochs): test accuracy (validation accuracy)"
        echo
        echo "| option | $(echo $GROUPS_ | sed 's/ / | /g') |"
        echo "|---|$(for g in $GROUPS_; do printf -- '---|'; done)"
        for opt in $OPTIONS; do
            row="| $opt |"
            for g in $GROUPS_; do
                read -r tm ts tk <<<"$(stats "${g}_${bname}_${opt}_s*" test_acc)"
                read -r vm vs vk <<<"$(stats "${g}_${bname}_${opt}_s*" val_acc)"
                if [ "$tk" = 0 ]; then row="$row — |"; else row="$row $tm ± $ts ($tk) (val $vm) |"; fi
            done
            echo "$row"
        done
    done
    echo
    echo "## Paired: option minus strict, same seed"
    echo
    echo "A seed fixes the training images' rotations, the initialisation and the batch order"
    echo "for every option (rgconv's extra base filters aside), so most of the seed-to-seed"
    echo "spread above is shared; the paired"
    echo "difference (mean ± std over seeds, count) isolates the option's effect."
    for b in $BUDGETS; do
        IFS=: read -r bname n e <<<"$b"
        echo
        echo "$bname budget:"
        echo
        echo "| option | $(echo $GROUPS_ | sed 's/ / | /g') |"
        echo "|---|$(for g in $GROUPS_; do printf -- '---|'; done)"
        for opt in $OPTIONS; do
            [ "$opt" = strict ] && continue
            row="| $opt |"
            for g in $GROUPS_; do
                read -r pm ps pk <<<"$(paired "${g}_${bname}" "$opt")"
                if [ "$pk" = 0 ]; then row="$row — |"; else row="$row $pm ± $ps ($pk) |"; fi
            done
            echo "$row"
        done
    done
    echo
    echo "## Chosen on validation, confirmed on test"
    echo
    echo "Per group and budget: the relaxed option with the best mean validation accuracy,"
    echo "its test accuracy against strict's, and the difference in units of the larger of the"
    echo "two test stds (\"never worse than strict by more than 1 std\"; \"beats strict by more"
    echo "than 2 std\")."
    echo
    echo "| group | budget | chosen (val) | its test | strict test | diff / std | paired diff | paper's recipe diff / std |"
    echo "|---|---|---|---|---|---|---|---|"
    for b in $BUDGETS; do
        IFS=: read -r bname n e <<<"$b"
        for g in $GROUPS_; do
            read -r sm ss sk <<<"$(stats "${g}_${bname}_strict_s*" test_acc)"
            [ "$sk" = 0 ] && continue
            best="" bv=-1
            for opt in $OPTIONS; do
                [ "$opt" = strict ] && continue
                read -r vm vs vk <<<"$(stats "${g}_${bname}_${opt}_s*" val_acc)"
                [ "$vk" = 0 ] && continue
                if awk -v a="$vm" -v b="$bv" 'BEGIN { exit !(a > b) }'; then best=$opt bv=$vm; fi
            done
            [ -z "$best" ] && continue
            read -r bm bs bk <<<"$(stats "${g}_${bname}_${best}_s*" test_acc)"
            read -r pm ps pk <<<"$(stats "${g}_${bname}_paper_s*" test_acc)"
            z() { awk -v a="$1" -v b="$2" -v s1="$3" -v s2="$4" 'BEGIN { s = s1; if (s2 > s1) s = s2
                  if (a == "nan") print "—"; else if (s == 0) print "n/a (1 seed)"
                  else printf "%+.1f", (a - b) / s }'; }
            read -r dm ds dk <<<"$(paired "${g}_${bname}" "$best")"
            echo "| $g | $bname | $best ($bv) | $(fmt "$bm" "$bs" "$bk") | $(fmt "$sm" "$ss" "$sk") | $(z "$bm" "$sm" "$bs" "$ss") | $(fmt "$dm" "$ds" "$dk") | $(z "$pm" "$sm" "$ps" "$ss") |"
        done
    done
} >"$DOC"
# ---- the chart: strict, the paper's recipe and fmnist_rot's default per
# group and budget (test accuracy, mean and +- 1 std over seeds) ----
CHART=docs/figures/results_relax.svg
# default_opt GROUP: the option fmnist_rot's --relax-form auto runs
default_opt() { if [ "$1" = c8 ]; then echo orthogonal; else echo rgconv_L4; fi; }
for b in $BUDGETS; do
    IFS=: read -r bname n e <<<"$b"
    for g in $GROUPS_; do
        read -r sm ss sk <<<"$(stats "${g}_${bname}_strict_s*" test_acc)"
        [ "$sk" = 0 ] && continue
        read -r pm ps pk <<<"$(stats "${g}_${bname}_paper_s*" test_acc)"
        read -r dm ds dk <<<"$(stats "${g}_${bname}_$(default_opt "$g")_s*" test_acc)"
        echo "$g $bname ${n}x$e $sm $ss $pm $ps $dm $ds"
    done
done | awk -v title="rotated Fashion-MNIST: projected test accuracy, mean +- std over seeds (scripts/results_relax.sh)" '
    BEGIN { ymin = 1; ymax = 0 }
    { lab[NR] = toupper($1) " " $3; for (k = 0; k < 3; k++) { m[NR, k] = $(4 + 2 * k); s[NR, k] = $(5 + 2 * k)
          if (m[NR, k] == "nan") continue
          if (m[NR, k] - s[NR, k] < ymin) ymin = m[NR, k] - s[NR, k]
          if (m[NR, k] + s[NR, k] > ymax) ymax = m[NR, k] + s[NR, k] } }
    END {
        n = NR; if (n == 0) exit 1
        ymin = int(ymin * 10) / 10; ymax = int(ymax * 10 + 0.999) / 10 # whole tenths around the data
        W = 70 + 62 * n; H = 380; x0 = 60; y0 = 40; ph = 260
        col[0] = "#888888"; col[1] = "#4477aa"; col[2] = "#ee7733"
        name[0] = "strict"; name[1] = "paper (additive)"; name[2] = "default (auto: rgconv L4; C8 orthogonal)"
        printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"11\">\n", W, H
        printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"%d\" y=\"18\" font-size=\"13\">%s</text>\n", x0, title
        for (t = ymin; t <= ymax + 1e-9; t += 0.1) {
            y = y0 + ph * (ymax - t) / (ymax - ymin)
            printf "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\"/><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n", x0, W - 10, y, y, x0 - 4, y + 4, t
        }
        for (i = 1; i <= n; i++) {
            cx = x0 + 62 * (i - 1) + 31
            for (k = 0; k < 3; k++) {
                if (m[i, k] == "nan") continue
                x = cx + 14 * (k - 1); y = y0 + ph * (ymax - m[i, k]) / (ymax - ymin)
                yl = y0 + ph * (ymax - m[i, k] + s[i, k]) / (ymax - ymin); yh = y0 + ph * (ymax - m[i, k] - s[i, k]) / (ymax - ymin)
                printf "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>", x, x, yl, yh, col[k]
                printf "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n", x, y, col[k]
            }
            split(lab[i], L, " ")
            printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text><text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", cx, y0 + ph + 16, L[1], cx, y0 + ph + 30, L[2]
        }
        for (k = 0; k < 3; k++) {
            printf "<circle cx=\"%d\" cy=\"%d\" r=\"4\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">%s</text>\n", x0 + 10 + 230 * k, H - 16, col[k], x0 + 18 + 230 * k, H - 12, name[k]
        }
        print "</svg>"
    }' >"$CHART.tmp" && mv "$CHART.tmp" "$CHART" && echo "wrote $CHART"
echo "wrote $DOC"
bash scripts/results_page.sh
