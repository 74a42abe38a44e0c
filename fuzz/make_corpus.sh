#!/usr/bin/env bash
# Regenerate the tiny seed corpora under fuzz/corpus/<harness>/ (build the
# harnesses first: bash fuzz/build.sh). Usage: bash fuzz/make_corpus.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# checkpoint: valid files of the harness model (without and with Adam state),
# then truncated, bit-flipped and empty variants
d=fuzz/corpus/checkpoint; mkdir -p $d
FUZZ_WRITE_SEED=$d/valid.ckpt ${EQR_FUZZ_OUT:-build-fuzz}/fuzz_checkpoint || true
head -c 40 $d/valid.ckpt > $d/truncated.ckpt
: > $d/empty.ckpt
printf 'EQRCKPT1' > $d/magic_only.ckpt

python3 - <<'PY'
import gzip, os, struct
def w(path, b):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, 'wb').write(b)
d = 'fuzz/corpus/checkpoint'
b = bytearray(open(d + '/valid.ckpt', 'rb').read()); b[len(b) // 2] ^= 0x40
w(d + '/bitflip.ckpt', bytes(b))

def idx(t, dims, payload):
    return bytes([0, 0, t, len(dims)]) + b''.join(struct.pack('>I', x) for x in dims) + payload
u8 = idx(0x08, [2, 3, 3], bytes(range(18)))
seeds = {  # first byte: 0 as is, 1 gzip by the harness, 2 + 4k gzip then damaged
    'u8_plain': b'\0' + u8,
    'i8_plain': b'\0' + idx(0x09, [3], b'\x80\x00\x7f'),
    'i16_plain': b'\0' + idx(0x0B, [3], struct.pack('>3h', -32768, 1, 32767)),
    'i32_plain': b'\0' + idx(0x0C, [2], struct.pack('>2i', -7, 1 << 30)),
    'f32_plain': b'\0' + idx(0x0D, [2, 2], struct.pack('>4f', 1.5, -0.0, float('inf'), 3e38)),
    'f64_plain': b'\0' + idx(0x0E, [2], struct.pack('>2d', 1e300, -2.5)),
    'u8_8dims': b'\0' + idx(0x08, [1] * 8, b'\x07'),
    'truncated': b'\0' + u8[:-3],
    'trailing': b'\0' + u8 + b'\0',
    'raw_gzip': b'\0' + gzip.compress(u8, mtime=0),
    'u8_gz': b'\1' + u8,
    'f32_gz': b'\5' + idx(0x0D, [1], struct.pack('>f', 2.0)),
    'gz_cut': b'\2' + u8,
    'gz_flip': b'\x06' + u8,
}
for k, v in seeds.items(): w('fuzz/corpus/idx/' + k, v)

# dataset: flags, image file length (LE u16), image file, label file
img = idx(0x08, [3, 2, 2], bytes([0, 255, 128, 1] * 3)); lab = idx(0x08, [3], b'\x00\x02\x01')
for k, fl in {'plain_auto': 0x00, 'gz_both_10': 0x07, 'shuffle_b3': 0xA0, 'classes3': 0x08}.items():
    w('fuzz/corpus/dataset/' + k, bytes([fl]) + struct.pack('<H', len(img)) + img + lab)
w('fuzz/corpus/dataset/count_mismatch', b'\0' + struct.pack('<H', len(img)) + img + idx(0x08, [2], b'\0\1'))
w('fuzz/corpus/dataset/label_range', b'\x0c' + struct.pack('<H', len(img)) + img + lab)

for k, s in {'typical': '32x0e+32x1o+8x2e', 'bare': '0e', 'empty': '', 'spaces': ' 2 x 1o + 3e ',
             'lmax': '1x32o+0x0e', 'too_big_l': '1x33e', 'long_number': '1000000000x0e',
             'many': '+'.join(['1x1o'] * 64), 'bad_parity': '2x1z'}.items():
    w('fuzz/corpus/irreps/' + k, s.encode())

# metrics: CSV tables of the harness's columns step,loss,theta
for k, s in {'valid': 'step,loss,theta\n1,0.5,0.25\n2,,1e-3\n3,inf,-2\n', 'header_only': 'step,loss,theta\n',
             'short_line': 'step,loss,theta\n1,2\n', 'other_header': 'step,loss\n1,2\n',
             'not_number': 'step,loss,theta\n1,x,3\n', 'all_empty': 'step,loss,theta\n,,\n'}.items():
    w('fuzz/corpus/metrics/' + k, s.encode())
PY
ls fuzz/corpus/*
