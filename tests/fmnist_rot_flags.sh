#!/bin/sh
# fmnist_rot flag errors: each bad command line must exit with status exactly
# 2 and print a message naming the problem on stderr; --help exits 0 and
# documents every flag. Bad output paths (--checkpoint, --metrics, --plot)
# and --stop-after past the last epoch are refused before any data is loaded
# or trained (no epoch line on stdout), creating nothing; --classes below
# the labels' (default data) is refused after loading, before training.
# Usage: fmnist_rot_flags.sh PATH/TO/fmnist_rot
bin=$1
fail=0
out=$(mktemp)
sout=$(mktemp)
scratch=$(mktemp -d)
trap 'rm -f "$out" "$sout"; chmod -R u+w "$scratch"; rm -rf "$scratch"' EXIT

# check "expected stderr text" args...
check() {
    want=$1
    shift
    "$bin" "$@" >"$sout" 2>"$out"
    st=$?
    if [ "$st" -ne 2 ]; then
        echo "FAIL: '$*' exited with $st, expected 2"
        fail=1
    elif ! grep -qF -- "$want" "$out"; then
        echo "FAIL: '$*': stderr lacks \"$want\":"
        sed 's/^/    /' "$out"
        fail=1
    elif grep -q '^epoch ' "$sout"; then
        echo "FAIL: '$*': refused only after training an epoch"
        fail=1
    else
        echo "ok: '$*' -> 2: $(head -n 1 "$out")"
    fi
}

check "unknown option '--bogus'" --bogus
check "unexpected argument 'extra'" extra
check "bad value 'bogus' for --relax: expected off, triangle, linear, cosine, constant, early or late" --relax bogus
check "bad value 'c5' for --group" --group c5
check "bad value 'foo' for --relax-form: expected additive, rgconv or auto" --relax-form foo
check "--relax-form rgconv needs group convs: --group c4 or d4 (got c8)" --relax-form rgconv --group c8
check "--relax-form rgconv needs a relaxation" --relax-form rgconv --relax off
check "bad value '0' for --rgconv-banks" --rgconv-banks 0
check "bad value 'keep' for --projection" --projection keep
check "bad value 'any' for --rotate" --rotate any
check "bad value 'abc' for --epochs" --epochs abc
check "bad value '1.5' for --train-size" --train-size 1.5
check "bad value '0' for --batch" --batch 0
check "bad value '-1' for --lr" --lr -1
check "bad value 'x' for --theta-max" --theta-max x
check "bad value '12' for --width: expected a multiple of 8" --width 12
check "missing value for --seed" --seed
check "bad value '/nonexistent/fmnist' for --data: no such directory" --data /nonexistent/fmnist
check "--resume needs --checkpoint FILE" --resume
check "bad value 'half' for --penalty-grad: expected detached or full" --penalty-grad half
check "--orthogonal needs a relaxation" --orthogonal --relax off
check "the two must not overlap" --train-size 59600 --val-size 500
check "leaves none of the 60000 training images" --val-size 60000
check "bad value '1' for --classes: expected an integer in [2, 65536]" --classes 1
check "bad value 'ten' for --classes" --classes ten
# fewer classes than the labels have (the default data, as fmnist_rot_tiny.sh; other
# datasets in fmnist_rot_idx.sh): refused after loading, before training
check "bad value '5' for --classes: the labels in the default Fashion-MNIST directory go up to 9 (10 classes)" \
    --classes 5

# output paths and --stop-after, checked before training
mkdir "$scratch/d.ckpt" "$scratch/ro"
: >"$scratch/ro/m.csv"
chmod a-w "$scratch/ro"
check "bad value '/nonexistent/dir/x.ckpt' for --checkpoint: no such directory '/nonexistent/dir'" \
    --checkpoint /nonexistent/dir/x.ckpt
check "bad value '/nonexistent/dir/m.csv' for --metrics: no such directory" \
    --metrics /nonexistent/dir/m.csv
check "bad value '/nonexistent/dir/p.svg' for --plot: no such directory" --plot /nonexistent/dir/p.svg
check "bad value '$scratch/d.ckpt' for --checkpoint: is a directory" --checkpoint "$scratch/d.ckpt"
check "bad value '$scratch/d.ckpt' for --checkpoint: is a directory" \
    --checkpoint "$scratch/d.ckpt" --resume
check "bad value '$scratch' for --metrics: is a directory" --metrics "$scratch"
if [ "$(id -u)" -ne 0 ]; then # root writes anywhere
    check "for --plot: directory '$scratch/ro' is not writable" --plot "$scratch/ro/p.svg"
    check "for --metrics: the file is not writable" --metrics "$scratch/ro/m.csv"
fi
check "--stop-after 4 is beyond the last epoch (--epochs 3)" --stop-after 4
check "--stop-after 3 is beyond the last epoch (--epochs 2)" --epochs 2 --stop-after 3
if [ -n "$(ls "$scratch/d.ckpt")" ] || [ "$(ls "$scratch/ro")" != m.csv ]; then
    echo "FAIL: a refused run created files"
    fail=1
fi

"$bin" --help >"$out" 2>&1
st=$?
if [ "$st" -ne 0 ]; then
    echo "FAIL: --help exited with $st"
    fail=1
fi
for f in --group --relax --theta-max --lambda-defect --lambda-norm --norm-subsample --penalty-grad \
    --projection --lr --batch --epochs --train-size --test-size --rotate --seed --threads \
    --data --classes --checkpoint --resume --metrics --plot; do
    if ! grep -q -- "^  $f " "$out"; then
        echo "FAIL: --help does not document $f"
        fail=1
    fi
done
[ "$fail" -eq 0 ] && echo "all flag checks passed"
exit "$fail"
