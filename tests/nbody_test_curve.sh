#!/bin/sh
# nbody --test-curve: the test MSE after every epoch, reported only. The
# last epoch's figure is the final test MSE of a strict --select last run
# (same model), the CSV gets it per row (empty without the flag), and the
# flag changes nothing else. Usage: nbody_test_curve.sh PATH/TO/nbody WORKDIR
bin=$1
dir=$2
rm -rf "$dir" && mkdir -p "$dir" || exit 1
args="--model segnn --train-size 100 --epochs 2 --layers 1 --hidden 8 --batch 50 --relax off"
"$bin" $args --test-curve --metrics "$dir/on.csv" >"$dir/on.out" 2>&1 || { cat "$dir/on.out"; exit 1; }
"$bin" $args --metrics "$dir/off.csv" >"$dir/off.out" 2>&1 || { cat "$dir/off.out"; exit 1; }
last=$(sed -n 's/^# epoch 2 test_mse \([0-9.]*\)$/\1/p' "$dir/on.out")
final=$(sed -n 's/^# test_mse \([0-9.]*\) .*/\1/p' "$dir/on.out")
[ -n "$last" ] && [ "$last" = "$final" ] || { echo "FAIL: epoch 2 test_mse '$last' vs final '$final'"; exit 1; }
head -n 1 "$dir/on.csv" | grep -q ',test_mse$' || { echo "FAIL: no test_mse column"; exit 1; }
[ "$(awk -F, 'NR > 1 && $11 != ""' "$dir/on.csv" | wc -l)" -eq 2 ] || { echo "FAIL: test_mse not in every row"; exit 1; }
[ "$(awk -F, 'NR > 1 && $11 == ""' "$dir/off.csv" | wc -l)" -eq 2 ] || { echo "FAIL: test_mse filled without the flag"; exit 1; }
strip() { grep -E '^epoch|^result|^# test' | sed 's/  [0-9.]*s$//;s/ seconds=.*//'; }
strip <"$dir/on.out" >"$dir/on.keep"
strip <"$dir/off.out" >"$dir/off.keep"
diff "$dir/on.keep" "$dir/off.keep" || { echo "FAIL: --test-curve changed the run"; exit 1; }
echo "test curve OK"
