#!/bin/sh
# nbody --checkpoint / --resume: a run stopped after epoch 1 and resumed
# ends exactly like the uninterrupted one (epoch lines, selection, test
# MSE, result line; timings aside), and a checkpoint of other settings is
# refused. Usage: nbody_resume.sh PATH/TO/nbody WORKDIR
bin=$1
dir=$2
rm -rf "$dir" && mkdir -p "$dir" || exit 1
args="--model segnn --train-size 100 --epochs 3 --layers 1 --hidden 8 --batch 50 --relax triangle --select best"
"$bin" $args --checkpoint "$dir/full.ckpt" >"$dir/full.out" 2>&1 || { cat "$dir/full.out"; exit 1; }
"$bin" $args --checkpoint "$dir/part.ckpt" --stop-after 1 >"$dir/a.out" 2>&1 || { cat "$dir/a.out"; exit 1; }
"$bin" $args --checkpoint "$dir/part.ckpt" --resume >"$dir/b.out" 2>&1 || { cat "$dir/b.out"; exit 1; }
keep() { grep -E '^epoch|^result|^# (selected|before|test)' | sed 's/  [0-9.]*s$//;s/ seconds=.*//'; }
keep <"$dir/full.out" >"$dir/full.keep"
cat "$dir/a.out" "$dir/b.out" | keep >"$dir/resumed.keep"
grep -q '^result ' "$dir/full.keep" || { echo "FAIL: no result line"; exit 1; }
grep -q '^# resumed from' "$dir/b.out" || { echo "FAIL: the second run did not resume"; exit 1; }
if ! diff "$dir/full.keep" "$dir/resumed.keep"; then echo "FAIL: resumed run differs"; exit 1; fi
if "$bin" $args --lr 0.001 --checkpoint "$dir/part.ckpt" --resume >"$dir/c.out" 2>&1; then
    echo "FAIL: a checkpoint of other settings was accepted"; exit 1
fi
grep -q 'other settings' "$dir/c.out" || { echo "FAIL: refusal does not say why:"; cat "$dir/c.out"; exit 1; }
echo "resume OK"
