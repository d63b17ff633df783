"""Build model folders whose safetensors files hold real headers and no weights.

Tensor names and shapes follow the published architectures (Llama/Qwen/Mistral,
Mixtral, Qwen-MoE, DeepSeek MLA+MoE) from a config.json; files are sparse, so a
"70B" checkpoint costs a few hundred kilobytes of disk. FP8 block and AWQ
checkpoints get the quantized tensors and scales those formats store.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "models"
DTYPE_BYTES = {"F32": 4, "I32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "U8": 1}


def load_fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def build(name: str, folder: Path, shards: int | None = None) -> Path:
    """Write fixture `name` into folder/<name>; returns that folder."""
    fixture = load_fixture(name)
    config, checkpoint = fixture["config"], fixture["checkpoint"]
    target = folder / name
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_text(json.dumps(config, indent=1))
    tensors = quantize(architecture_tensors(config), checkpoint)
    write_shards(target, tensors, shards or checkpoint["shards"])
    for file, content in fixture.get("files", {}).items():  # tokenizer_config.json, modules.json, ...
        (target / file).write_text(json.dumps(content))
    return target


def parameter_count(name: str) -> int:
    """Parameters of the unquantized architecture (for checking against published sizes)."""
    config = load_fixture(name)["config"]
    return sum(math.prod(shape) for shape, _ in architecture_tensors(config).values())


def architecture_tensors(config: dict) -> dict[str, tuple[tuple[int, ...], str]]:
    text = config.get("text_config", config)
    dtype = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}[config.get("torch_dtype", "bfloat16")]
    prefix = "language_model.model" if "text_config" in config else "model"
    h, vocab = text["hidden_size"], text["vocab_size"]
    t: dict[str, tuple[tuple[int, ...], str]] = {
        f"{prefix}.embed_tokens.weight": ((vocab, h), dtype),
        f"{prefix}.norm.weight": ((h,), dtype),
    }
    if not config.get("tie_word_embeddings", False):
        t["lm_head.weight"] = ((vocab, h), dtype)
    total_layers = text["num_hidden_layers"] + text.get("num_nextn_predict_layers", 0)
    for i in range(total_layers):
        p = f"{prefix}.layers.{i}"
        t[f"{p}.input_layernorm.weight"] = ((h,), dtype)
        t[f"{p}.post_attention_layernorm.weight"] = ((h,), dtype)
        t.update(_attention(text, p, dtype))
        t.update(_mlp(text, p, i, dtype))
        if i >= text["num_hidden_layers"]:  # DeepSeek MTP extras
            t[f"{p}.eh_proj.weight"] = ((h, 2 * h), dtype)
            t[f"{p}.enorm.weight"] = ((h,), dtype)
            t[f"{p}.hnorm.weight"] = ((h,), dtype)
    return t


def _attention(c: dict, p: str, dtype: str) -> dict:
    h, heads = c["hidden_size"], c["num_attention_heads"]
    if c.get("kv_lora_rank"):
        qk = c["qk_nope_head_dim"] + c["qk_rope_head_dim"]
        t = {
            f"{p}.self_attn.kv_a_proj_with_mqa.weight": ((c["kv_lora_rank"] + c["qk_rope_head_dim"], h), dtype),
            f"{p}.self_attn.kv_a_layernorm.weight": ((c["kv_lora_rank"],), dtype),
            f"{p}.self_attn.kv_b_proj.weight": (
                (heads * (c["qk_nope_head_dim"] + c["v_head_dim"]), c["kv_lora_rank"]),
                dtype,
            ),
            f"{p}.self_attn.o_proj.weight": ((h, heads * c["v_head_dim"]), dtype),
        }
        if c.get("q_lora_rank"):
            t[f"{p}.self_attn.q_a_proj.weight"] = ((c["q_lora_rank"], h), dtype)
            t[f"{p}.self_attn.q_a_layernorm.weight"] = ((c["q_lora_rank"],), dtype)
            t[f"{p}.self_attn.q_b_proj.weight"] = ((heads * qk, c["q_lora_rank"]), dtype)
        else:
            t[f"{p}.self_attn.q_proj.weight"] = ((heads * qk, h), dtype)
        return t
    kv, hd = c.get("num_key_value_heads", heads), c.get("head_dim") or h // heads
    t = {
        f"{p}.self_attn.q_proj.weight": ((heads * hd, h), dtype),
        f"{p}.self_attn.k_proj.weight": ((kv * hd, h), dtype),
        f"{p}.self_attn.v_proj.weight": ((kv * hd, h), dtype),
        f"{p}.self_attn.o_proj.weight": ((h, heads * hd), dtype),
    }
    if c.get("model_type") in ("qwen2", "qwen2_moe"):
        for name, rows in (("q", heads * hd), ("k", kv * hd), ("v", kv * hd)):
            t[f"{p}.self_attn.{name}_proj.bias"] = ((rows,), dtype)
    if c.get("model_type", "").startswith("qwen3"):
        t[f"{p}.self_attn.q_norm.weight"] = ((hd,), dtype)
        t[f"{p}.self_attn.k_norm.weight"] = ((hd,), dtype)
    return t


def _ffn(p: str, h: int, inter: int, dtype: str, names=("gate_proj", "up_proj", "down_proj")) -> dict:
    gate, up, down = names
    return {
        f"{p}.{gate}.weight": ((inter, h), dtype),
        f"{p}.{up}.weight": ((inter, h), dtype),
        f"{p}.{down}.weight": ((h, inter), dtype),
    }


def _mlp(c: dict, p: str, layer: int, dtype: str) -> dict:
    h = c["hidden_size"]
    experts = c.get("num_local_experts") or c.get("num_experts") or c.get("n_routed_experts") or 0
    if not experts or layer < c.get("first_k_dense_replace", 0):
        return _ffn(f"{p}.mlp", h, c["intermediate_size"], dtype)
    if c.get("model_type") == "mixtral":
        t = {f"{p}.block_sparse_moe.gate.weight": ((experts, h), dtype)}
        for e in range(experts):
            t.update(_ffn(f"{p}.block_sparse_moe.experts.{e}", h, c["intermediate_size"], dtype, ("w1", "w3", "w2")))
        return t
    inter = c["moe_intermediate_size"]
    t = {f"{p}.mlp.gate.weight": ((experts, h), dtype)}
    if c.get("topk_method") == "noaux_tc":
        t[f"{p}.mlp.gate.e_score_correction_bias"] = ((experts,), "F32")
    for e in range(experts):
        t.update(_ffn(f"{p}.mlp.experts.{e}", h, inter, dtype))
    if c.get("n_shared_experts"):
        t.update(_ffn(f"{p}.mlp.shared_experts", h, inter * c["n_shared_experts"], dtype))
    if c.get("shared_expert_intermediate_size"):
        t.update(_ffn(f"{p}.mlp.shared_expert", h, c["shared_expert_intermediate_size"], dtype))
        t[f"{p}.mlp.shared_expert_gate.weight"] = ((1, h), dtype)
    return t


def _is_linear(name: str, shape: tuple[int, ...]) -> bool:
    return (len(shape) == 2 and name.endswith("_proj.weight")) or name.endswith(
        (".w1.weight", ".w2.weight", ".w3.weight")
    )


def quantize(tensors: dict, checkpoint: dict) -> dict:
    method = checkpoint.get("quant")
    if not method:
        return tensors
    out = {}
    for name, (shape, dtype) in tensors.items():
        if not _is_linear(name, shape):
            out[name] = (shape, dtype)
            continue
        rows, cols = shape
        base = name[: -len(".weight")]
        if method == "fp8-block":
            out[name] = (shape, "F8_E4M3")
            out[f"{base}.weight_scale_inv"] = ((math.ceil(rows / 128), math.ceil(cols / 128)), "F32")
        elif method == "awq":
            group = checkpoint.get("group_size", 128)
            out[f"{base}.qweight"] = ((cols, rows // 8), "I32")
            out[f"{base}.qzeros"] = ((cols // group, rows // 8), "I32")
            out[f"{base}.scales"] = ((cols // group, rows), "F16")
        else:
            raise ValueError(method)
    return out


def write_shards(folder: Path, tensors: dict, shards: int) -> None:
    names = list(tensors)
    weight_map, total = {}, 0
    for index in range(shards):  # spread evenly so no shard is empty
        chunk = names[index * len(names) // shards : (index + 1) * len(names) // shards]
        filename = "model.safetensors" if shards == 1 else f"model-{index + 1:05d}-of-{shards:05d}.safetensors"
        total += write_header_only(folder / filename, {n: tensors[n] for n in chunk})
        weight_map.update({n: filename for n in chunk})
    if shards > 1:
        (folder / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map})
        )


def header_bytes(tensors: dict) -> tuple[bytes, int]:
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, (shape, dtype) in tensors.items():
        size = math.prod(shape) * DTYPE_BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes
    return raw, offset


def write_header_only(path: Path, tensors: dict) -> int:
    """A sparse safetensors file: real header, holes where the data would be."""
    raw, data_size = header_bytes(tensors)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + data_size)
    return data_size


LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def lora_adapter(
    folder: Path, rank: int = 16, base: str = "meta-llama/Llama-3.1-8B-Instruct", targets=LORA_TARGETS, hidden: int = 0
) -> Path:
    """A PEFT-format LoRA adapter of the Llama-3.1-8B shape (or another hidden size): adapter_config.json and a
    header-only adapter_model.safetensors with lora_A / lora_B of every targeted projection."""
    config = load_fixture("Llama-3.1-8B-Instruct")["config"]
    hidden, kv = hidden or config["hidden_size"], config["num_key_value_heads"] * 128
    sizes = {"q_proj": (hidden, hidden), "k_proj": (hidden, kv), "v_proj": (hidden, kv), "o_proj": (hidden, hidden)}
    sizes |= {"gate_proj": (hidden, 14336), "up_proj": (hidden, 14336), "down_proj": (14336, hidden)}
    tensors = {}
    for layer in range(config["num_hidden_layers"]):
        for module in targets:
            part = "mlp" if module in ("gate_proj", "up_proj", "down_proj") else "self_attn"
            prefix = f"base_model.model.model.layers.{layer}.{part}.{module}"
            size_in, size_out = sizes[module]
            tensors[f"{prefix}.lora_A.weight"] = ((rank, size_in), "BF16")
            tensors[f"{prefix}.lora_B.weight"] = ((size_out, rank), "BF16")
    folder.mkdir(parents=True)
    write_header_only(folder / "adapter_model.safetensors", tensors)
    peft = {"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank, "target_modules": list(targets)}
    (folder / "adapter_config.json").write_text(json.dumps({**peft, "base_model_name_or_path": base}))
    return folder
