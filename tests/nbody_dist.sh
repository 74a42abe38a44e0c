#!/bin/sh
# nbody data-parallel under mpirun (label dist): 2 ranks against 1 process
# with the same global batch end with the same epoch lines (but act_norm,
# rank 0's share) and result to the printed digits; a 2-rank run stopped
# after epoch 1 and resumed on 2 ranks ends like the uninterrupted one; its
# checkpoint is refused on 1 process. Usage: nbody_dist.sh PATH/TO/nbody MPIEXEC WORKDIR
bin=$1
mpi="$2 --oversubscribe"
dir=$3
fail=0
rm -rf "$dir" && mkdir -p "$dir" || exit 1
args="--train-size 100 --epochs 2 --layers 2 --hidden 16 --batch 50 --relax triangle --threads 1"
keep() { grep -E '^epoch|^result|^# (selected|before|test)' | sed 's/  [0-9.]*s$//;s/ seconds=.*//;s/act_norm [^ ]*//'; }
"$bin" $args >"$dir/one.out" 2>&1 || { echo "FAIL one process"; fail=1; }
$mpi -np 2 "$bin" $args >"$dir/two.out" 2>"$dir/two.err" || { echo "FAIL 2 ranks"; cat "$dir/two.err"; fail=1; }
keep <"$dir/one.out" >"$dir/one.keep"
keep <"$dir/two.out" >"$dir/two.keep"
if ! grep -q '^result' "$dir/two.keep" || ! diff "$dir/one.keep" "$dir/two.keep"; then
    echo "FAIL 1 vs 2 ranks differ"; fail=1
else
    echo "ok 1 vs 2 ranks: $(grep '^result' "$dir/two.keep")"
fi
$mpi -np 2 "$bin" $args --checkpoint "$dir/full.ckpt" >"$dir/full.out" 2>&1 || { echo "FAIL straight"; fail=1; }
$mpi -np 2 "$bin" $args --checkpoint "$dir/part.ckpt" --stop-after 1 >"$dir/a.out" 2>&1 || { echo "FAIL stop"; fail=1; }
cp "$dir/part.ckpt" "$dir/epoch1.ckpt"
$mpi -np 2 "$bin" $args --checkpoint "$dir/part.ckpt" --resume >"$dir/b.out" 2>&1 || { echo "FAIL resume"; fail=1; }
keep <"$dir/full.out" >"$dir/full.keep"
cat "$dir/a.out" "$dir/b.out" | keep >"$dir/resumed.keep"
# (not the checkpoints' bytes: nbody's history buffer holds the epochs' timings)
if ! grep -q '^# resumed from' "$dir/b.out" || ! diff "$dir/full.keep" "$dir/resumed.keep"; then
    echo "FAIL resume on 2 ranks differs"; fail=1
else
    echo "ok resume on 2 ranks: the same epoch lines and result"
fi
if "$bin" $args --checkpoint "$dir/epoch1.ckpt" --resume >"$dir/r1.out" 2>&1 ||
    ! grep -q 'written by a run on 2 processes, this run has 1' "$dir/r1.out"; then
    echo "FAIL 2-rank checkpoint not refused on 1 process"; cat "$dir/r1.out"; fail=1
else
    echo "ok 2-rank checkpoint refused on 1 process"
fi
[ "$fail" -eq 0 ] && echo "all nbody dist runs passed"
exit "$fail"
