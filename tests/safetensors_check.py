#!/usr/bin/env python3
"""Independent safetensors reader/writer (stdlib json and struct only) for
the library's export and import. Usage: safetensors_check.py C_TEST DIR

1. `C_TEST export DIR` writes DIR/c.safetensors and DIR/c.dump (name as hex,
   ndim, shape, numel, float32 bits); this script parses the file from the
   format description alone (u64 LE header length, JSON header, offsets
   relative to the buffer, contiguous, covering it) and checks every name,
   shape and value bit against the dump, and the library metadata.
2. It writes DIR/py.safetensors (F32, F16, BF16, F64; json.dumps spacing,
   keys in another order than the data) and DIR/py.dump with the float32
   bits each value must become, and runs `C_TEST import` on them.
Exit status 0 when both directions agree."""
import json
import os
import struct
import subprocess
import sys

SIZES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        fail("file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        fail("header length %d beyond the file" % n)
    text = raw[8:8 + n].decode("utf-8")
    if not text.startswith("{"):
        fail("header does not start with '{'")
    if (8 + n) % 8:
        fail("buffer not 8-byte aligned (header length %d)" % n)

    def no_dupes(pairs):
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            fail("duplicate keys %r" % keys)
        return dict(pairs)

    header = json.loads(text, object_pairs_hook=no_dupes)
    buf = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        fail("__metadata__ must map strings to strings")
    spans = []
    tensors = {}
    for name, info in header.items():
        if set(info) != {"dtype", "shape", "data_offsets"}:
            fail("%r has keys %r" % (name, sorted(info)))
        begin, end = info["data_offsets"]
        count = 1
        for d in info["shape"]:
            count *= d
        if end - begin != count * SIZES[info["dtype"]]:
            fail("%r: offsets %r do not hold %d %s" % (name, (begin, end), count, info["dtype"]))
        spans.append((begin, end, name))
        tensors[name] = (info["dtype"], info["shape"], buf[begin:end])
    at = 0
    for begin, end, name in sorted(spans):
        if begin != at:
            fail("%r starts at %d, expected %d" % (name, begin, at))
        at = end
    if at != len(buf):
        fail("tensors cover %d of %d buffer bytes" % (at, len(buf)))
    return meta, tensors


def read_dump(path):
    lines = open(path).read().split("\n")
    library = None
    entries = []
    for line in lines:
        if not line:
            continue
        w = line.split()
        if w[0] == "library":
            library = " ".join(w[1:])
            continue
        name = bytes.fromhex(w[0]).decode("utf-8")
        nd = int(w[1])
        shape = [int(x) for x in w[2:2 + nd]]
        numel = int(w[2 + nd])
        vals = [int(x, 16) for x in w[3 + nd:]]
        if len(vals) != numel:
            fail("dump line for %r has %d values, expected %d" % (name, len(vals), numel))
        entries.append((name, shape, vals))
    return library, entries


def check_export(c_test, d):
    if subprocess.call([c_test, "export", d]) != 0:
        fail("C export failed")
    meta, tensors = read_safetensors(os.path.join(d, "c.safetensors"))
    library, entries = read_dump(os.path.join(d, "c.dump"))
    if meta.get("library") != library:
        fail("metadata library %r, dump says %r" % (meta.get("library"), library))
    if sorted(tensors) != sorted(e[0] for e in entries):
        fail("names %r vs dump %r" % (sorted(tensors), sorted(e[0] for e in entries)))
    for name, shape, vals in entries:
        dtype, fshape, data = tensors[name]
        if dtype != "F32" or fshape != shape:
            fail("%r: %s %r in the file, F32 %r in the dump" % (name, dtype, fshape, shape))
        got = list(struct.unpack("<%dI" % len(vals), data))
        if got != vals:
            fail("%r: values differ" % name)
    print("export: %d tensors, names/shapes/bits equal, %r" % (len(entries), meta))


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def write_import_case(d):
    # name -> (dtype, shape, values as Python floats exactly representable in dtype)
    cases = [
        ("layer1.weight", "F32", [2, 3], [0.5, -1.25, 3.0e-39, -0.0, 1e30, 7.0]),
        ("layer1.bias", "F16", [3], [1.0, -2.5, 65504.0]),
        ("norm.scale", "BF16", [2], [1.0, -3.0]),
        ("head.w", "F64", [2, 2], [0.1, -1.0 / 3.0, 2.0 ** -130, 1e10]),
        ("scalar", "F32", [], [42.0]),
        ("caf\u00e9.\"q\"", "F16", [1], [2.0 ** -24]),
    ]
    fmt = {"F32": "<%df", "F16": "<%de", "F64": "<%dd"}
    blobs, header, at = [], {}, 0
    for name, dtype, shape, vals in reversed(cases):  # data in reverse order of the dump
        if dtype == "BF16":
            blob = b"".join(struct.pack("<H", f32_bits(v) >> 16) for v in vals)
        else:
            blob = struct.pack(fmt[dtype] % len(vals), *vals)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + len(blob)]}
        at += len(blob)
        blobs.append(blob)
    header["__metadata__"] = {"format": "pt", "writer": "safetensors_check.py"}
    text = json.dumps(dict(sorted(header.items())), indent=1).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(os.path.join(d, "py.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    with open(os.path.join(d, "py.dump"), "w") as f:
        for name, dtype, shape, vals in cases:
            # what each value is as a float32: F16/BF16/F32 exactly, F64 rounded to nearest
            bits = [f32_bits(v) for v in vals]
            f.write("%s %d %s %d %s\n" % (name.encode("utf-8").hex(), len(shape),
                                          " ".join(str(s) for s in shape), len(vals),
                                          " ".join("%08x" % b for b in bits)))


def main():
    if len(sys.argv) != 3:
        fail("usage: safetensors_check.py C_TEST DIR")
    c_test, d = sys.argv[1], sys.argv[2]
    os.makedirs(d, exist_ok=True)
    check_export(c_test, d)
    write_import_case(d)
    if subprocess.call([c_test, "import", os.path.join(d, "py.safetensors"),
                        os.path.join(d, "py.dump")]) != 0:
        fail("C import of the Python-written file failed")
    print("OK")


if __name__ == "__main__":
    main()
