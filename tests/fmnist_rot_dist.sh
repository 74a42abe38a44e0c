#!/bin/sh
# fmnist_rot data-parallel under mpirun (label dist; tiny runs of a few
# seconds): 2 ranks against 1 process with the same global batch give the
# same numbers to float tolerance; a 2-rank run stopped after epoch 1 and
# resumed on 2 ranks ends bit for bit like the uninterrupted one (metrics
# and the final checkpoint's bytes); resuming that checkpoint on 1 process
# is refused naming both counts; ranks started with different flags are
# refused by rank 0 before training; a rank that fails ends the job and
# rank 0 says so. Usage: fmnist_rot_dist.sh PATH/TO/fmnist_rot MPIEXEC WORKDIR
bin=$1
mpi="$2 --oversubscribe"
dir=$3
fail=0
rm -rf "$dir" && mkdir -p "$dir" || exit 1
# the whole batch in the norm penalty: a subsample is each rank's own
tiny="--train-size 256 --test-size 200 --batch 32 --width 8 --equiv-images 50 --threads 1 --norm-subsample 0 --epochs 2"

say() { echo "$1"; [ "${1#FAIL}" != "$1" ] && fail=1; }
result() { tail -n 1 "$1" | sed 's/ seconds=.*//'; }

# 1. one process and 2 ranks: the same result line, metrics within 1e-4
"$bin" $tiny --metrics "$dir/one.csv" >"$dir/one.out" 2>"$dir/one.err" || say "FAIL one process: exit $?"
$mpi -np 2 "$bin" $tiny --metrics "$dir/two.csv" >"$dir/two.out" 2>"$dir/two.err" || {
    say "FAIL 2 ranks: exit $?"; sed 's/^/    /' "$dir/two.err"; }
r1=$(result "$dir/one.out" | sed 's/ equiv_err=[^ ]*//')
r2=$(result "$dir/two.out" | sed 's/ equiv_err=[^ ]*//')
grep -q '^# data-parallel on 2 ranks: global batch 32' "$dir/two.out" || say "FAIL 2 ranks: no data-parallel header"
[ "$(grep -c '^result ' "$dir/two.out")" -eq 1 ] || say "FAIL 2 ranks: want one result line (rank 0's)"
if [ -z "$r1" ] || [ "$r1" != "$r2" ]; then
    say "FAIL 1 vs 2 ranks: '$r1' vs '$r2'"
elif ! paste -d, "$dir/one.csv" "$dir/two.csv" | awk -F, 'NR == 1 { n = NF / 2; next }
        { for (i = 1; i <= 14; i++) { a = $i; b = $(i + n); d = a - b; d = d < 0 ? -d : d
              m = (a < 0 ? -a : a) > (b < 0 ? -b : b) ? (a < 0 ? -a : a) : (b < 0 ? -b : b)
              if (d > 1e-4 * m + 1e-5) { print "row " NR - 1 " column " i ": " a " vs " b; bad = 1 } } }
        END { exit bad }'; then
    say "FAIL 1 vs 2 ranks: metrics differ"
else
    say "ok 1 vs 2 ranks: $r2, metrics within 1e-4"
fi

# 2. a 2-rank checkpoint resumes bit for bit on 2 ranks
$mpi -np 2 "$bin" $tiny --checkpoint "$dir/a.ckpt" --metrics "$dir/a.csv" >"$dir/a.out" 2>&1 ||
    say "FAIL straight: exit $?"
$mpi -np 2 "$bin" $tiny --checkpoint "$dir/b.ckpt" --metrics "$dir/b.csv" --stop-after 1 \
    >"$dir/stop.out" 2>&1 || say "FAIL stop-after: exit $?"
cp "$dir/b.ckpt" "$dir/epoch1.ckpt"
$mpi -np 2 "$bin" $tiny --checkpoint "$dir/b.ckpt" --metrics "$dir/b.csv" --resume \
    >"$dir/b.out" 2>"$dir/b.err" || say "FAIL resume: exit $?"
grep -q '^# resumed from .* after epoch 1 ' "$dir/b.out" || say "FAIL resume: no resume note"
if [ "$(result "$dir/a.out")" != "$(result "$dir/b.out")" ] ||
    [ "$(cut -d, -f1-14 "$dir/a.csv")" != "$(cut -d, -f1-14 "$dir/b.csv")" ] ||
    ! cmp -s "$dir/a.ckpt" "$dir/b.ckpt"; then
    say "FAIL resume on 2 ranks: '$(result "$dir/a.out")' vs '$(result "$dir/b.out")'"
else
    say "ok resume on 2 ranks: bit for bit (metrics, final checkpoint)"
fi

# 3. resuming it on another number of ranks is refused
if "$bin" $tiny --checkpoint "$dir/epoch1.ckpt" --resume >"$dir/r1.out" 2>"$dir/r1.err" ||
    ! grep -q 'written by a run on 2 processes, this run has 1' "$dir/r1.err"; then
    say "FAIL 2-rank checkpoint on 1 process not refused"; sed 's/^/    /' "$dir/r1.err"
else
    say "ok 2-rank checkpoint refused on 1 process: $(grep -o 'written by.*has 1' "$dir/r1.err")"
fi

# 4. ranks with different flags are refused by rank 0 before training
$mpi -np 1 "$bin" $tiny : -np 1 "$bin" $tiny --lr 0.01 >"$dir/mm.out" 2>"$dir/mm.err"
st=$?
if [ "$st" -ne 2 ] || ! grep -q '^fmnist_rot: eqr_dist_check_same: the training configuration (command-line flags) differs between the 2 ranks' "$dir/mm.err" ||
    grep -q '^epoch' "$dir/mm.out"; then
    say "FAIL mismatched flags: exit $st"; sed 's/^/    /' "$dir/mm.err"
else
    say "ok mismatched flags refused (exit 2)"
fi

# 5. a rank that fails (here rank 1 alone, its data directory missing)
# ends the job: its message, and rank 0's that it was stopped
$mpi -np 1 "$bin" $tiny : -np 1 "$bin" $tiny --data /nonexistent >"$dir/f.out" 2>"$dir/f.err"
st=$?
if [ "$st" -eq 0 ] || ! grep -q "^fmnist_rot: rank 1/2: bad value '/nonexistent' for --data" "$dir/f.err" ||
    ! grep -q '^fmnist_rot: rank 0/2: terminated (another rank failed' "$dir/f.err"; then
    say "FAIL failing rank: exit $st"; sed 's/^/    /' "$dir/f.err"
else
    say "ok a failing rank ends the job (exit $st), rank 0 says so"
fi
[ "$fail" -eq 0 ] && echo "all dist runs passed"
exit "$fail"
