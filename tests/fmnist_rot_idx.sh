#!/bin/sh
# fmnist_rot on an IDX dataset that is not Fashion-MNIST's size: 301
# training and 117 test images of 28x28 (training images gzipped, the rest
# plain) load and train to a result line; images of another size, labels
# past the model's 10 classes, and image/label counts that disagree are
# refused before training with a message naming the problem.
# Usage: fmnist_rot_idx.sh PATH/TO/fmnist_rot WORKDIR
bin=$1
dir=$2
fail=0
rm -rf "$dir" && mkdir -p "$dir" || exit 1

byte() { printf "\\$(printf %03o "$1")"; }
be32() { byte $(($1 >> 24 & 255)); byte $(($1 >> 16 & 255)); byte $(($1 >> 8 & 255)); byte $(($1 & 255)); }
# images FILE N SIDE ; labels FILE N CLASSES
images() {
    { printf '\000\000\010\003'; be32 "$2"; be32 "$3"; be32 "$3"; head -c $(($2 * $3 * $3)) /dev/urandom; } >"$1"
}
labels() {
    { printf '\000\000\010\001'; be32 "$2"; i=0; while [ $i -lt "$2" ]; do byte $((i % $3)); i=$((i + 1)); done; } >"$1"
}
# split DIR NTRAIN NTEST SIDE CLASSES [NTRAIN_LABELS]
split() {
    mkdir -p "$1"
    images "$1/train-images-idx3-ubyte" "$2" "$4" && gzip -f "$1/train-images-idx3-ubyte"
    labels "$1/train-labels-idx1-ubyte" "${6:-$2}" "$5"
    images "$1/t10k-images-idx3-ubyte" "$3" "$4"
    labels "$1/t10k-labels-idx1-ubyte" "$3" "$5"
}
tiny="--batch 32 --width 8 --equiv-images 20 --threads 1 --epochs 1"

split "$dir/ok" 301 117 28 10
if "$bin" $tiny --data "$dir/ok" >"$dir/ok.out" 2>"$dir/ok.err" &&
    tail -n 1 "$dir/ok.out" | grep -Eq '^result test_acc=[0-9.]+ equiv_err=[0-9.e+-]+ projected=1 ' &&
    grep -q '^epoch 1/1  loss .*  theta [0-9.]*  penalty ' "$dir/ok.out"; then
    echo "ok 301/117 images: $(tail -n 1 "$dir/ok.out")"
else
    echo "FAIL 301/117 images did not train:"
    sed 's/^/    /' "$dir/ok.err" "$dir/ok.out"
    fail=1
fi
# a strict run on it: the epoch line has no relaxation fields
if "$bin" $tiny --data "$dir/ok" --relax off >"$dir/strict.out" 2>&1 &&
    grep -q '^epoch 1/1  loss ' "$dir/strict.out" && ! grep -Eq 'nan|theta|penalty' "$dir/strict.out"; then
    echo "ok strict epoch line: $(grep '^epoch 1/1  loss' "$dir/strict.out")"
else
    echo "FAIL strict run (or its epoch line shows nan/relaxation fields):"
    sed 's/^/    /' "$dir/strict.out"
    fail=1
fi

# refuse DATADIR "message"
refuse() {
    "$bin" $tiny --data "$1" >"$dir/r.out" 2>"$dir/r.err"
    st=$?
    if [ "$st" -eq 0 ] || ! grep -qF -- "$2" "$dir/r.err" || grep -q '^epoch ' "$dir/r.out"; then
        echo "FAIL $1: status $st, want a refusal before training saying \"$2\":"
        sed 's/^/    /' "$dir/r.err"
        fail=1
    else
        echo "ok refused: $(head -n 1 "$dir/r.err")"
    fi
}
split "$dir/side20" 40 20 20 10
refuse "$dir/side20" "holds 20x20 images; this model takes 28x28"
split "$dir/classes12" 40 20 28 12
refuse "$dir/classes12" "has labels up to 11; this model has 10 classes"
split "$dir/count" 40 20 28 10 39
refuse "$dir/count" "40 images in"
[ "$fail" -eq 0 ] && echo "all IDX dataset checks passed"
exit "$fail"
