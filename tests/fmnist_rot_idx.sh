#!/bin/sh
# fmnist_rot on IDX datasets that are not Fashion-MNIST: 301 training and
# 117 test images of 28x28 (training images gzipped, the rest plain) load
# and train to a result line; so do images of other sides (20: 4m; 30: 4m+2,
# conv 1 padded by one more ring) with c4 / d4 / c8 exactly invariant
# (equiv_err <= 1e-5, as in fmnist_rot_tiny.sh), odd sides with the plain
# CNN, 3 and 12 classes taken from the labels, and --classes above the
# labels'. Refused before training with a message naming the problem:
# non-square images, odd sides for the equivariant models, --classes below
# the labels' (usage error, status 2), image/label counts that disagree.
# Usage: fmnist_rot_idx.sh PATH/TO/fmnist_rot WORKDIR
bin=$1
dir=$2
fail=0
rm -rf "$dir" && mkdir -p "$dir" || exit 1

byte() { printf "\\$(printf %03o "$1")"; }
be32() { byte $(($1 >> 24 & 255)); byte $(($1 >> 16 & 255)); byte $(($1 >> 8 & 255)); byte $(($1 & 255)); }
# images FILE N H [W] ; labels FILE N CLASSES
images() {
    w=${4:-$3}
    { printf '\000\000\010\003'; be32 "$2"; be32 "$3"; be32 "$w"; head -c $(($2 * $3 * w)) /dev/urandom; } >"$1"
}
labels() {
    { printf '\000\000\010\001'; be32 "$2"; i=0; while [ $i -lt "$2" ]; do byte $((i % $3)); i=$((i + 1)); done; } >"$1"
}
# split DIR NTRAIN NTEST SIDE CLASSES [NTRAIN_LABELS [WIDTH]]
split() {
    mkdir -p "$1"
    images "$1/train-images-idx3-ubyte" "$2" "$4" "${7:-$4}" && gzip -f "$1/train-images-idx3-ubyte"
    labels "$1/train-labels-idx1-ubyte" "${6:-$2}" "$5"
    images "$1/t10k-images-idx3-ubyte" "$3" "$4" "${7:-$4}"
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

# trains NAME DATADIR PROJECTED "header text" [args...]: trains to a result
# line with projected=PROJECTED (and, when 1, equiv_err <= 1e-5), and the
# "# model:" line says "header text".
trains() {
    name=$1 data=$2 proj=$3 want=$4
    shift 4
    if "$bin" $tiny --data "$data" "$@" >"$dir/$name.out" 2>"$dir/$name.err" &&
        tail -n 1 "$dir/$name.out" | awk -v wp="$proj" '$1 == "result" {
            for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] + 0 }
            ok = v["test_acc"] >= 0 && v["test_acc"] <= 1 && v["projected"] == wp
            if (wp) ok = ok && v["equiv_err"] <= 1e-5
            found = 1; exit !ok } END { if (!found) exit 1 }' &&
        grep '^# model: ' "$dir/$name.out" | grep -qF -- "$want"; then
        echo "ok $name: $(grep '^# model: ' "$dir/$name.out" | cut -c1-60)... $(tail -n 1 "$dir/$name.out")"
    else
        echo "FAIL $name: want a result line with projected=$proj and a model line with \"$want\":"
        sed 's/^/    /' "$dir/$name.err" "$dir/$name.out"
        fail=1
    fi
}

# refuse DATADIR STATUS "message" [args...]: exits with STATUS (any: nonzero)
# before training, the message on stderr.
refuse() {
    data=$1 want_st=$2 msg=$3
    shift 3
    "$bin" $tiny --data "$data" "$@" >"$dir/r.out" 2>"$dir/r.err"
    st=$?
    if [ "$st" -eq 0 ] || { [ "$want_st" != any ] && [ "$st" -ne "$want_st" ]; } ||
        ! grep -qF -- "$msg" "$dir/r.err" || grep -q '^epoch ' "$dir/r.out"; then
        echo "FAIL $data $*: status $st, want $want_st and a refusal before training saying \"$msg\":"
        sed 's/^/    /' "$dir/r.err"
        fail=1
    else
        echo "ok refused ($st): $(head -n 1 "$dir/r.err")"
    fi
}

# other sides: 4m as is, 4m+2 padded to 4m+4 in conv 1; exact for every group
split "$dir/side20" 40 20 20 10
trains side20_c4 "$dir/side20" 1 "20x20 images, 10 classes"
split "$dir/side30" 40 20 30 10
trains side30_d4 "$dir/side30" 1 "30x30 images (conv 1 padded by 1 more), 10 classes" --group d4
trains side30_c8 "$dir/side30" 1 "30x30 images (conv 1 padded by 1 more)" --group c8
# odd sides: the plain CNN takes them, the equivariant models refuse
split "$dir/side21" 40 20 21 10
trains side21_plain "$dir/side21" 0 "21x21 images" --group none
refuse "$dir/side21" any "an odd side cannot be padded symmetrically to even"
refuse "$dir/side21" any "% stride == 0" --group c8
# non-square images, for every group
split "$dir/rect" 40 20 20 10 40 24
refuse "$dir/rect" any "holds 20x24 images; this model needs square images"
refuse "$dir/rect" any "holds 20x24 images; this model needs square images" --group none

# classes: from the labels (3, 12), or more with --classes, never fewer
split "$dir/classes3" 40 20 20 3
trains classes3 "$dir/classes3" 1 "20x20 images, 3 classes"
trains classes3_as5 "$dir/classes3" 1 ", 5 classes" --classes 5 --relax off
refuse "$dir/classes3" 2 "bad value '2' for --classes: the labels in $dir/classes3 go up to 2 (3 classes)" --classes 2
split "$dir/classes12" 40 20 28 12
trains classes12 "$dir/classes12" 1 "28x28 images, 12 classes" --relax off
refuse "$dir/classes12" 2 "bad value '10' for --classes: the labels in $dir/classes12 go up to 11 (12 classes)" --classes 10

split "$dir/count" 40 20 28 10 39
refuse "$dir/count" any "40 images in"
[ "$fail" -eq 0 ] && echo "all IDX dataset checks passed"
exit "$fail"
