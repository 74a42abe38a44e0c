#!/bin/sh
# Tiny end-to-end runs of fmnist_rot (a few batches each): the last line of
# stdout is the result line; relaxed and strict equivariant runs end
# projected=1 with equiv_err <= 1e-5, the plain CNN projected=0; test_acc in
# [0, 1]; the metrics CSV and the SVG plot are written; and a run stopped
# after epoch 1 and resumed from its checkpoint ends exactly like the
# uninterrupted run. Usage: fmnist_rot_tiny.sh PATH/TO/fmnist_rot WORKDIR
bin=$1
dir=$2
fail=0
rm -rf "$dir" && mkdir -p "$dir" || exit 1
# additive unless a run says otherwise (a later --relax-form wins); the
# default, auto, is checked on its own below
tiny="--train-size 256 --test-size 200 --batch 32 --width 8 --equiv-images 50 --threads 1 --relax-form additive"

# run NAME EXPECT_PROJECTED CHECK_EQUIV args... : run, check the result line.
run() {
    name=$1
    want_proj=$2
    check_eq=$3
    shift 3
    if ! "$bin" $tiny "$@" >"$dir/$name.out" 2>"$dir/$name.err"; then
        echo "FAIL $name: exit status $?"
        sed 's/^/    /' "$dir/$name.err"
        fail=1
        return
    fi
    last=$(tail -n 1 "$dir/$name.out")
    if ! echo "$last" | grep -Eq '^result test_acc=[0-9.]+ equiv_err=[0-9.e+-]+ projected=[01] seconds=[0-9.]+$'; then
        echo "FAIL $name: last line is not a result line: $last"
        fail=1
        return
    fi
    if ! echo "$last" | awk -v wp="$want_proj" -v ce="$check_eq" '{
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] + 0 }
        ok = v["test_acc"] >= 0 && v["test_acc"] <= 1 && v["projected"] == wp
        if (ce) ok = ok && v["equiv_err"] <= 1e-5
        exit !ok }'; then
        echo "FAIL $name: $last (want projected=$want_proj, equiv_err <= 1e-5: $check_eq)"
        fail=1
        return
    fi
    echo "ok $name: $last"
}

run c4_triangle 1 1 --epochs 1 --metrics "$dir/m.csv" --plot "$dir/p.svg"
run c4_strict 1 1 --epochs 1 --relax off
run c4_constant_fold 1 1 --epochs 1 --relax constant --theta-max 0.5 --projection fold
run c4_constant_drop 1 1 --epochs 1 --relax constant --theta-max 0.5 --projection drop --wr-init normal
run d4_linear 1 1 --epochs 1 --group d4 --relax linear
run c8_cosine 1 1 --epochs 1 --group c8 --relax cosine
run c4_rgconv 1 1 --epochs 1 --relax-form rgconv --rgconv-banks 2
run d4_rgconv_drop 1 1 --epochs 1 --group d4 --relax constant --theta-max 0.5 --projection drop \
    --relax-form rgconv --rgconv-banks 3
grep -q 'rg_spread c1 ' "$dir/c4_rgconv.out" || { echo "FAIL rgconv: no rg_spread on the epoch line"; fail=1; }
run plain 0 0 --epochs 1 --group none
# auto (the default): rgconv for c4 / d4, additive + orthogonal for c8, additive with an
# additive-only option
run c4_auto 1 1 --epochs 1 --relax-form auto
run c8_auto 1 1 --epochs 1 --group c8 --relax-form auto
run c4_auto_orth 1 1 --epochs 1 --relax-form auto --orthogonal
grep -q '^# relaxed group convs' "$dir/c4_auto.out" || { echo "FAIL auto: c4 is not rgconv"; fail=1; }
! grep -q '^# relaxed group convs' "$dir/c8_auto.out" || { echo "FAIL auto: c8 is rgconv"; fail=1; }
grep -q '^# orthogonal relaxation' "$dir/c8_auto.out" || { echo "FAIL auto: c8 is not orthogonal"; fail=1; }
grep -q '^# relaxed group convs (--relax-form rgconv): 4 base filters' "$dir/c4_auto.out" ||
    { echo "FAIL auto: c4 has not 4 base filters"; fail=1; }
! grep -q '^# relaxed group convs' "$dir/c4_auto_orth.out" || { echo "FAIL auto: --orthogonal is rgconv"; fail=1; }
run c4_continuous 1 1 --epochs 1 --rotate continuous --train-size 64 --test-size 100

# Metrics: a header and one row; plot: an SVG document.
if [ "$(wc -l <"$dir/m.csv")" -ne 2 ] || ! head -n 1 "$dir/m.csv" | grep -q '^epoch,steps,train_loss'; then
    echo "FAIL metrics: $dir/m.csv"
    fail=1
fi
if ! head -c 4 "$dir/p.svg" | grep -q '<svg' || ! tail -n 1 "$dir/p.svg" | grep -q '</svg>'; then
    echo "FAIL plot: $dir/p.svg"
    fail=1
fi

# Resume: 2 epochs straight vs stopped after 1 and resumed; same numbers.
run straight 1 1 --epochs 2 --checkpoint "$dir/a.ckpt" --metrics "$dir/a.csv"
"$bin" $tiny --epochs 2 --checkpoint "$dir/b.ckpt" --metrics "$dir/b.csv" --stop-after 1 \
    >"$dir/stop.out" 2>&1 || { echo "FAIL stop-after: exit $?"; fail=1; }
run resumed 1 1 --epochs 2 --checkpoint "$dir/b.ckpt" --metrics "$dir/b.csv" --resume
grep -q '^# resumed from .* after epoch 1 ' "$dir/resumed.out" || { echo "FAIL resume: no resume note"; fail=1; }
a=$(tail -n 1 "$dir/straight.out" | sed 's/ seconds=.*//')
b=$(tail -n 1 "$dir/resumed.out" | sed 's/ seconds=.*//')
# Every metrics column but the wall time must agree.
ca=$(cut -d, -f1-14 "$dir/a.csv")
cb=$(cut -d, -f1-14 "$dir/b.csv")
if [ "$a" != "$b" ] || [ "$ca" != "$cb" ]; then
    echo "FAIL resume: straight '$a' vs resumed '$b'"
    diff "$dir/a.csv" "$dir/b.csv"
    fail=1
else
    echo "ok resume: $b, metrics identical"
fi
# The same for a relaxed group conv run (its base filters, mixing weights).
run rg_straight 1 1 --epochs 2 --relax-form rgconv --checkpoint "$dir/ra.ckpt" --metrics "$dir/ra.csv"
"$bin" $tiny --epochs 2 --relax-form rgconv --checkpoint "$dir/rb.ckpt" --metrics "$dir/rb.csv" \
    --stop-after 1 >"$dir/rstop.out" 2>&1 || { echo "FAIL rgconv stop-after: exit $?"; fail=1; }
run rg_resumed 1 1 --epochs 2 --relax-form rgconv --checkpoint "$dir/rb.ckpt" --metrics "$dir/rb.csv" --resume
a2=$(tail -n 1 "$dir/rg_straight.out" | sed 's/ seconds=.*//')
b2=$(tail -n 1 "$dir/rg_resumed.out" | sed 's/ seconds=.*//')
if [ "$a2" != "$b2" ] || [ "$(cut -d, -f1-14 "$dir/ra.csv")" != "$(cut -d, -f1-14 "$dir/rb.csv")" ]; then
    echo "FAIL rgconv resume: straight '$a2' vs resumed '$b2'"
    fail=1
else
    echo "ok rgconv resume: $b2, metrics identical"
fi
# An additive checkpoint is refused for an rgconv run.
if "$bin" $tiny --epochs 2 --relax-form rgconv --checkpoint "$dir/b.ckpt" --resume >/dev/null \
    2>"$dir/rmismatch.err" || ! grep -Eq 'other settings|does not match the model' "$dir/rmismatch.err"; then
    echo "FAIL rgconv resume from an additive checkpoint was not refused"
    fail=1
fi
# A checkpoint with other settings is refused.
if "$bin" $tiny --epochs 3 --checkpoint "$dir/b.ckpt" --resume >/dev/null 2>"$dir/mismatch.err" ||
    ! grep -q 'other settings' "$dir/mismatch.err"; then
    echo "FAIL resume with other settings was not refused"
    fail=1
fi
# Telemetry watches without steering: the same numbers with it on, a step
# table row every 2 steps (16 steps, 3 layers x 6 columns + 11 more) and a chart.
run telemetry 1 1 --epochs 2 --telemetry 2 --probe-images 50 --steps "$dir/s.csv" \
    --steps-plot "$dir/s.svg"
t=$(tail -n 1 "$dir/telemetry.out" | sed 's/ seconds=.*//')
rows=$(($(wc -l <"$dir/s.csv") - 1))
cols=$(head -n 1 "$dir/s.csv" | tr ',' '\n' | wc -l)
if [ "$t" != "$a" ] || [ "$rows" -ne 8 ] || [ "$cols" -ne 29 ] ||
    ! head -n 1 "$dir/s.csv" | grep -q 'c2.share' || ! tail -n 1 "$dir/s.svg" | grep -q '</svg>'; then
    echo "FAIL telemetry: '$t' vs '$a', $rows rows, $cols columns"
    fail=1
else
    echo "ok telemetry: same result, $rows rows of $cols columns, chart written"
fi
[ "$fail" -eq 0 ] && echo "all tiny runs passed"
exit "$fail"
