"""Writes tests/fixtures/minilm-golden.json: all-MiniLM-L6-v2 sentence embeddings as the
reference implementation computes them (transformers' BertModel, mean pooling over the
attention mask, L2 normalisation, inputs truncated at 256 tokens as sentence-transformers
does). promptlab's embeddings must match them to 1e-4. Needs `torch` and `transformers`:

    python3 scripts/minilm_golden.py ~/.cache/promptlab/models/all-MiniLM-L6-v2
"""
import json
import pathlib
import sys

import torch
from transformers import AutoModel, AutoTokenizer

SENTENCES = [
    "The cat sat on the mat.",
    "A cat was sitting on the mat.",
    "Stock markets fell sharply on Monday.",
    "Reset your password from the login page.",
    "To reset your password, use the login page.",
    "東京は日本の首都です",
    "",
    "word " * 300,
]


def main():
    model_dir = sys.argv[1]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    batch = tokenizer(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    embeddings = torch.nn.functional.normalize(pooled, p=2, dim=1)
    path = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/minilm-golden.json"
    path.write_text(json.dumps({
        "generated_by": "scripts/minilm_golden.py (transformers, mean pooling, normalised)",
        "sentences": SENTENCES,
        "embeddings": [[round(float(x), 7) for x in row] for row in embeddings],
    }) + "\n")
    print(f"{len(SENTENCES)} embeddings written to {path}")


if __name__ == "__main__":
    main()
