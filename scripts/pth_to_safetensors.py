#!/usr/bin/env python3
"""Converts a PyTorch state dict saved in the legacy (pre-1.6, non-zip) format to
safetensors, with the Python standard library only: the fetch scripts run before any
PyTorch is installed, and the file is read as data, never by running its pickle's code
(only the few globals a state dict needs are allowed).

Usage: pth_to_safetensors.py IN.pth OUT.safetensors

The legacy format is five pickles in a row (magic number, protocol version, system
info, the state dict with its storages as persistent ids, the storage keys in file
order) followed by each storage as an 8-byte little-endian element count and its raw
little-endian bytes.
"""

import collections
import json
import pickle
import struct
import sys

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# Storage class name -> (safetensors dtype, bytes per element).
STORAGES = {
    "FloatStorage": ("F32", 4),
    "DoubleStorage": ("F64", 8),
    "HalfStorage": ("F16", 2),
    "LongStorage": ("I64", 8),
    "IntStorage": ("I32", 4),
}


class StorageType:
    def __init__(self, name):
        if name not in STORAGES:
            raise pickle.UnpicklingError(f"unsupported storage type {name}")
        self.name = name


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def rebuild_tensor(storage, offset, size, stride, *_rest):
    return Tensor(storage, offset, size, stride)


class Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return rebuild_tensor
        if module == "torch" and name.endswith("Storage"):
            return StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, element count, view metadata)
        kind, storage_type, key, _location, count = pid[:5]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {kind}")
        storages = self.storages
        if key not in storages:
            storages[key] = {"type": storage_type, "count": count}
        return key


def contiguous(tensor):
    expected, step = [], 1
    for dim in reversed(tensor.size):
        expected.insert(0, step)
        step *= dim
    return all(s == e for s, e, d in zip(tensor.stride, expected, tensor.size) if d > 1)


def main(source, target):
    with open(source, "rb") as f:
        if pickle.load(f) != LEGACY_MAGIC:
            sys.exit(f"{source}: not a legacy PyTorch file (bad magic number)")
        pickle.load(f)  # protocol version
        pickle.load(f)  # system info
        unpickler = Unpickler(f)
        unpickler.storages = {}
        state = unpickler.load()
        keys = pickle.load(f)
        data = {}
        for key in keys:
            (count,) = struct.unpack("<q", f.read(8))
            info = unpickler.storages[key]
            dtype, width = STORAGES[info["type"].name]
            raw = f.read(count * width)
            if len(raw) != count * width:
                sys.exit(f"{source}: storage {key} is cut short")
            data[key] = (dtype, width, raw)
    header, chunks, offset = {}, [], 0
    for name, tensor in state.items():
        if not isinstance(tensor, Tensor):
            continue
        if not contiguous(tensor):
            sys.exit(f"{source}: {name} is not contiguous")
        dtype, width, raw = data[tensor.storage]
        elements = 1
        for dim in tensor.size:
            elements *= dim
        start = tensor.offset * width
        chunk = raw[start : start + elements * width]
        header[name] = {
            "dtype": dtype,
            "shape": list(tensor.size),
            "data_offsets": [offset, offset + len(chunk)],
        }
        chunks.append(chunk)
        offset += len(chunk)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(target, "wb") as out:
        out.write(struct.pack("<Q", len(encoded)))
        out.write(encoded)
        for chunk in chunks:
            out.write(chunk)
    print(f"{target}: {len(header)} tensors, {offset} bytes")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
