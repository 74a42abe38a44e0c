#!/usr/bin/env bash
# Regenerate the tiny seed corpus: a valid checkpoint of the harness model,
# then truncated, bit-flipped and empty variants. Usage: bash fuzz/make_corpus.sh
set -euo pipefail
cd "$(dirname "$0")/.."
d=fuzz/corpus/checkpoint; mkdir -p $d
FUZZ_WRITE_SEED=$d/valid.ckpt build-fuzz/fuzz_checkpoint || true
head -c 40 $d/valid.ckpt > $d/truncated.ckpt
: > $d/empty.ckpt
printf 'EQRCKPT1' > $d/magic_only.ckpt
python3 - "$d" <<'PY'
import sys; d=sys.argv[1]; b=bytearray(open(d+'/valid.ckpt','rb').read()); b[len(b)//2]^=0x40
open(d+'/bitflip.ckpt','wb').write(b)
PY
ls -l $d
