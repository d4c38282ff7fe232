"""Converts all-MiniLM-L6-v2 (Hugging Face layout: config.json, model.safetensors,
tokenizer.json, 1_Pooling/config.json) into a GGUF embedding model that llama.cpp runs
(architecture `bert`, mean pooling, F32 weights), the way llama.cpp's convert_hf_to_gguf.py
converts BERT models, without needing torch: safetensors is read with numpy.

    python3 scripts/minilm_to_gguf.py MODEL_DIR OUT.gguf

Needs the `gguf` (0.19.0) and `numpy` packages.
"""

import json
import struct
import sys
from pathlib import Path

import gguf
import numpy as np


def read_safetensors(path):
    data = Path(path).read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    dtypes = {"F32": np.float32, "F16": np.float16}
    for name, info in header.items():
        # `position_ids` (I64) is a buffer, not a weight.
        if name == "__metadata__" or info["dtype"] not in dtypes:
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(data[base + start : base + end], dtype=dtypes[info["dtype"]])
        yield name, array.reshape(info["shape"]).astype(np.float32)


def main(model_dir, out_path):
    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    if not pooling.get("pooling_mode_mean_tokens"):
        sys.exit("only mean pooling is supported")

    writer = gguf.GGUFWriter(out_path, "bert")
    writer.add_name(model_dir.name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_layer_norm_eps(config["layer_norm_eps"])
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_token_type_count(config.get("type_vocab_size", 2))

    # WordPiece vocabulary, in llama.cpp's "phantom space" form: a word start gets "▁",
    # a continuation loses its "##", special tokens stay as they are.
    vocab = tokenizer["model"]["vocab"]
    tokens = [None] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    special = {t["content"] for t in tokenizer.get("added_tokens", []) if t.get("special")}

    def phantom(token):
        if token.startswith("[") and token.endswith("]"):
            return token
        if token.startswith("##"):
            return token[2:]
        return "\u2581" + token

    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([phantom(t) for t in tokens])
    writer.add_token_types(
        [gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens]
    )
    ids = {t["content"]: t["id"] for t in tokenizer.get("added_tokens", [])}
    writer.add_bos_token_id(ids["[CLS]"])
    writer.add_sep_token_id(ids["[SEP]"])
    writer.add_unk_token_id(ids["[UNK]"])
    writer.add_pad_token_id(ids["[PAD]"])
    writer.add_mask_token_id(ids["[MASK]"])

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, config["num_hidden_layers"])
    for name, array in read_safetensors(model_dir / "model.safetensors"):
        if name.startswith("bert."):
            name = name[5:]
        # Only embeddings are wanted: the pooler head is not used.
        if name in ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"):
            continue
        mapped = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            sys.exit(f"unexpected tensor {name}")
        writer.add_tensor(mapped, array)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
