"""Run inside the vLLM environment: write a tiny random Llama that vLLM can serve.

usage: python make_tiny_model.py FOLDER

Random weights (so answers are gibberish, but real tokens through the real
server), head_dim 64 (the CPU attention backend rejects smaller), a byte-level
BPE tokenizer trained here on a small corpus, and a chat template, so that
/v1/chat/completions works exactly as for a Hub model. Deterministic: seeded.
"""

from __future__ import annotations

import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

# The tool-call markers too: vLLM's Hermes parser looks them up in the vocabulary (tests/test_endpoint_cpu_features.py).
SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|start|>", "<|end|>", "<tool_call>", "</tool_call>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|start|>assistant\n{% endif %}"
)
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "An OpenAI-compatible endpoint serves chat completions and completions.",
    "Tensor parallelism splits every layer across GPUs; pipeline parallelism splits the layers.",
    "Hello! How can I help you today? Say hello in one word.",
] * 50


def tokenizer() -> PreTrainedTokenizerFast:
    model = Tokenizer(models.BPE())
    model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    model.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    model.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=model, bos_token=SPECIAL[0], eos_token=SPECIAL[1], pad_token=SPECIAL[1]
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def main(folder: str) -> None:
    torch.manual_seed(0)
    tok = tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
        dtype="bfloat16",
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)


if __name__ == "__main__":
    main(sys.argv[1])
