"""Run inside the vLLM environment: write a LoRA adapter (PEFT's on-disk format) for the tiny Llama.

usage: python make_tiny_lora.py MODEL_FOLDER ADAPTER_FOLDER

adapter_config.json and adapter_model.safetensors with lora_A / lora_B of q_proj and v_proj in every layer,
named as PEFT names them, rank 8, small random values: what `peft` saves for this model, written without
peft (not in the engine image).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

RANK = 8


def main(model: str, folder: str) -> None:
    config = json.loads((Path(model) / "config.json").read_text())
    hidden, head_dim = config["hidden_size"], config["head_dim"]
    outputs = {"q_proj": config["num_attention_heads"] * head_dim, "v_proj": config["num_key_value_heads"] * head_dim}
    torch.manual_seed(0)
    tensors = {}
    for layer in range(config["num_hidden_layers"]):
        for module, size_out in outputs.items():
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[f"{prefix}.lora_A.weight"] = (torch.randn(RANK, hidden) * 0.01).to(torch.bfloat16)
            tensors[f"{prefix}.lora_B.weight"] = (torch.randn(size_out, RANK) * 0.01).to(torch.bfloat16)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "adapter_model.safetensors"))
    adapter_config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": RANK,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "bias": "none",
        "target_modules": list(outputs),
        "base_model_name_or_path": model,
    }
    (out / "adapter_config.json").write_text(json.dumps(adapter_config, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
