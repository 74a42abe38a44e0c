#!/usr/bin/env bash
# Regenerate the safetensors seed corpus: the harness model's export, then
# truncated, bit-flipped, empty and header-only variants, and a file in the
# json.dumps spacing with F16/BF16/F64. Usage: bash fuzz/make_corpus_safetensors.sh
set -euo pipefail
cd "$(dirname "$0")/.."
d=fuzz/corpus/safetensors; mkdir -p $d
FUZZ_WRITE_SEED=$d/valid.safetensors build-fuzz/fuzz_safetensors || true
python3 - "$d" <<'PY'
import json, struct, sys
d = sys.argv[1]
b = open(d + '/valid.safetensors', 'rb').read()
open(d + '/truncated.safetensors', 'wb').write(b[:len(b) // 2])
f = bytearray(b); f[20] ^= 0x04
open(d + '/bitflip.safetensors', 'wb').write(bytes(f))
open(d + '/empty.safetensors', 'wb').write(b'')
open(d + '/empty_header.safetensors', 'wb').write(struct.pack('<Q', 8) + b'{}      ')
h = {"w": {"dtype": "F16", "shape": [3, 4], "data_offsets": [0, 24]},
     "b": {"dtype": "BF16", "shape": [5], "data_offsets": [24, 34]},
     "s": {"dtype": "F64", "shape": [], "data_offsets": [34, 42]},
     "__metadata__": {"k": "\u00e9"}}
t = json.dumps(h).encode(); t += b' ' * ((8 - len(t) % 8) % 8)
open(d + '/dtypes.safetensors', 'wb').write(struct.pack('<Q', len(t)) + t + bytes(42))
PY
ls -l $d
