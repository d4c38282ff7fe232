"""Writes a small but complete GGUF (version 3): llama architecture, two layers, a chat
template, three F32 tensors and their data; the seed of the `gguf` fuzz target (the same
file tests/integration/property.rs builds)."""
import struct
import sys


def string(s):
    data = s.encode()
    return struct.pack("<Q", len(data)) + data


def key_u32(key, value):
    return string(key) + struct.pack("<I", 4) + struct.pack("<I", value)


tensors = [("token_embd.weight", (8, 16)), ("blk.0.attn_q.weight", (8, 8)), ("blk.1.attn_q.weight", (8, 8))]
out = b"GGUF" + struct.pack("<I", 3) + struct.pack("<Q", len(tensors)) + struct.pack("<Q", 6)
out += string("general.architecture") + struct.pack("<I", 8) + string("llama")
out += key_u32("llama.block_count", 2)
out += key_u32("llama.embedding_length", 8)
out += key_u32("llama.attention.head_count", 2)
out += key_u32("llama.attention.head_count_kv", 2)
out += string("tokenizer.chat_template") + struct.pack("<I", 8)
out += string("{% for m in messages %}{{ m.content }}{% endfor %}")
offset = 0
for name, dims in tensors:
    out += string(name) + struct.pack("<I", 2)
    for d in dims:
        out += struct.pack("<Q", d)
    out += struct.pack("<I", 0) + struct.pack("<Q", offset)
    offset += dims[0] * dims[1] * 4
out += b"\0" * (-len(out) % 32)
out += b"\0" * offset
with open(sys.argv[1], "wb") as f:
    f.write(out)
