"""Run inside the vLLM environment: write a tiny random BertModel that vLLM serves for /v1/embeddings.

usage: python make_tiny_bert.py FOLDER

An encoder: its attention reads each prompt both ways, so vLLM keeps no KV cache for it (the planner's
MemoryRules.encoder_kv_cache). Random weights, a WordPiece vocabulary of letters and a few words, hidden size
64. Deterministic: seeded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *map(chr, range(ord("a"), ord("z") + 1))]
VOCAB += ["hello", "world", "the", "quick", "brown", "fox"]


def main(folder: str) -> None:
    torch.manual_seed(0)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    BertTokenizerFast(vocab_file=str(out / "vocab.txt")).save_pretrained(out)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        architectures=["BertModel"],
    )
    BertModel(config).save_pretrained(out, safe_serialization=True)


if __name__ == "__main__":
    main(sys.argv[1])
