#!/bin/sh
# fmnist_rot flag errors: each bad command line must exit with status exactly
# 2 and print a message naming the problem on stderr; --help exits 0 and
# documents every flag. Usage: fmnist_rot_flags.sh PATH/TO/fmnist_rot
bin=$1
fail=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# check "expected stderr text" args...
check() {
    want=$1
    shift
    "$bin" "$@" >/dev/null 2>"$out"
    st=$?
    if [ "$st" -ne 2 ]; then
        echo "FAIL: '$*' exited with $st, expected 2"
        fail=1
    elif ! grep -qF -- "$want" "$out"; then
        echo "FAIL: '$*': stderr lacks \"$want\":"
        sed 's/^/    /' "$out"
        fail=1
    else
        echo "ok: '$*' -> 2: $(head -n 1 "$out")"
    fi
}

check "unknown option '--bogus'" --bogus
check "unexpected argument 'extra'" extra
check "bad value 'bogus' for --relax: expected off, triangle, linear, cosine or constant" --relax bogus
check "bad value 'c5' for --group" --group c5
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

"$bin" --help >"$out" 2>&1
st=$?
if [ "$st" -ne 0 ]; then
    echo "FAIL: --help exited with $st"
    fail=1
fi
for f in --group --relax --theta-max --lambda-defect --lambda-norm --norm-subsample --penalty-grad \
    --projection --lr --batch --epochs --train-size --test-size --rotate --seed --threads \
    --data --checkpoint --resume --metrics --plot; do
    if ! grep -q -- "^  $f " "$out"; then
        echo "FAIL: --help does not document $f"
        fail=1
    fi
done
[ "$fail" -eq 0 ] && echo "all flag checks passed"
exit "$fail"
