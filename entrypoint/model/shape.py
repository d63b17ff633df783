"""config.json → ModelShape: the facts the planner needs, from any architecture.

Pure: a dict in, a frozen dataclass out. Multimodal wrappers keep the language
model under `text_config`; MoE counts hide under four different keys; MLA
models (DeepSeek) cache a compressed latent instead of K and V.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import CorruptCheckpointError

_EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")


@dataclass(frozen=True)
class Quantization:
    method: str  # "fp8", "awq", "gptq", "compressed-tensors", "mxfp4", ...
    details: str = ""  # e.g. "block 128x128", "4-bit, group 128"


@dataclass(frozen=True)
class ModelShape:
    architecture: str
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    vocab_size: int
    max_position: int
    dtype: str  # checkpoint's torch dtype: bfloat16, float16, float32
    experts: int = 0
    experts_per_token: int = 0
    shared_experts: int = 0
    kv_lora_rank: int = 0  # MLA latent width; 0 when not MLA
    qk_rope_head_dim: int = 0
    sliding_window: int = 0  # 0: no sliding-window layers
    sliding_layers: int = 0
    tie_word_embeddings: bool = False
    quantization: Quantization | None = None
    mtp_layers: int = 0  # DeepSeek-style multi-token-prediction layers stored after the main ones
    intermediate_size: int = 0  # the dense MLP's width (LoRA buffers are sized by it); 0 when absent

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def full_attention_layers(self) -> int:
        return self.layers - self.sliding_layers


# Fields that must be at least 1, and those that may be 0 (absent); anything below is a broken config.
_POSITIVE = ("layers", "hidden_size", "attention_heads", "kv_heads", "head_dim")
_NON_NEGATIVE = (
    "vocab_size",
    "max_position",
    "experts",
    "experts_per_token",
    "shared_experts",
    "kv_lora_rank",
    "qk_rope_head_dim",
    "sliding_window",
    "sliding_layers",
    "mtp_layers",
    "intermediate_size",
)


def from_config(config: Mapping[str, Any], source: str = "config.json") -> ModelShape:
    try:
        shape = _from_config(config, source)
    except CorruptCheckpointError:
        raise
    except (TypeError, ValueError, AttributeError, ZeroDivisionError, OverflowError, IndexError) as exc:
        # A field of the wrong type (rope_scaling as a string, "eight" heads...): name what could not be read.
        raise CorruptCheckpointError(
            f"{source} has a field of the wrong type or value ({type(exc).__name__}: {exc})",
            "download the model again, or fix config.json to the model's published one",
        ) from None
    _check_ranges(shape, source)
    return shape


def _check_ranges(shape: ModelShape, source: str) -> None:
    for field in _POSITIVE + _NON_NEGATIVE:
        value = getattr(shape, field)
        if value < (1 if field in _POSITIVE else 0):
            raise CorruptCheckpointError(
                f"{source} gives {field}={value}, which no model has",
                "download the model again, or fix config.json to the model's published one",
            )
    if shape.sliding_layers > shape.layers:
        raise CorruptCheckpointError(
            f"{source} marks {shape.sliding_layers} of its {shape.layers} layers as sliding-window layers",
            "download the model again, or fix layer_types in config.json",
        )


def _from_config(config: Mapping[str, Any], source: str) -> ModelShape:
    text = _text_config(config)
    try:
        heads = int(text["num_attention_heads"])
        hidden = int(text["hidden_size"])
        layers = int(_first(text, "num_hidden_layers", "n_layer", "num_layers"))
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptCheckpointError(
            f"{source} lacks a usable {exc} (needed: num_attention_heads, hidden_size, num_hidden_layers)",
            "check TARGET_MODEL points at a language or embedding model; diffusion models are not served here",
        ) from None
    kv_heads = int(text.get("num_key_value_heads") or (1 if text.get("multi_query") else heads))
    sliding_window, sliding_layers = _sliding(text, layers)
    return ModelShape(
        architecture=(config.get("architectures") or text.get("architectures") or ["unknown"])[0],
        layers=layers,
        hidden_size=hidden,
        attention_heads=heads,
        kv_heads=kv_heads,
        head_dim=int(text.get("head_dim") or hidden // heads),
        vocab_size=int(text.get("vocab_size") or config.get("vocab_size") or 0),
        max_position=_max_position(text),
        dtype=str(
            config.get("torch_dtype")
            or config.get("dtype")
            or text.get("torch_dtype")
            or text.get("dtype")
            or "bfloat16"
        ),
        experts=int(_first(text, *_EXPERT_KEYS, default=0) or 0),
        experts_per_token=int(_first(text, "num_experts_per_tok", "moe_topk", "num_experts_per_token", default=0) or 0),
        shared_experts=_shared_experts(text),
        kv_lora_rank=int(text.get("kv_lora_rank") or 0),
        qk_rope_head_dim=int(text.get("qk_rope_head_dim") or 0),
        sliding_window=sliding_window,
        sliding_layers=sliding_layers,
        tie_word_embeddings=bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
        quantization=_quantization(config.get("quantization_config") or text.get("quantization_config")),
        mtp_layers=int(text.get("num_nextn_predict_layers") or 0),
        intermediate_size=int(text.get("intermediate_size") or 0),
    )


def _text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    # Multimodal wrappers (Llava, Gemma 3, Mistral 3, Qwen-VL...) nest the LM.
    for key in ("text_config", "llm_config", "language_config"):
        nested = config.get(key)
        if isinstance(nested, Mapping) and "num_attention_heads" in nested:
            return nested
    return config


def _first(config: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    if default is not None:
        return default
    raise KeyError(keys[0])


def _shared_experts(text: Mapping[str, Any]) -> int:
    if text.get("n_shared_experts"):
        return int(text["n_shared_experts"])
    # Qwen2-MoE / Qwen1.5-MoE: one shared expert of its own width.
    return 1 if text.get("shared_expert_intermediate_size") else 0


def _max_position(text: Mapping[str, Any]) -> int:
    base = int(text.get("max_position_embeddings") or text.get("n_positions") or text.get("seq_length") or 0)
    scaling = text.get("rope_scaling") or {}
    kind = scaling.get("rope_type") or scaling.get("type")
    # YaRN-style scaling extends the trained window; engines derive the same
    # maximum (original × factor). Llama 3's "llama3" type is already in base.
    if kind in ("yarn", "dynamic", "longrope") and scaling.get("factor"):
        original = int(scaling.get("original_max_position_embeddings") or base)
        return max(base, int(original * float(scaling["factor"])))
    return base


# Families whose config.json may omit `layer_types`: transformers (5.19, models/<family>/configuration_*.py)
# then builds them as "every N-th layer is full attention, the others slide", and the engines load the model
# through that config. A family not listed here with a sliding_window slides on every layer (Mistral 7B v0.1).
GLOBAL_LAYER_EVERY = {
    "gemma2": 2,
    "gpt_oss": 2,
    "vaultgemma": 2,
    "gemma3": 6,  # sliding_window_pattern, 6 unless config.json says otherwise
    "gemma3_text": 6,
    "gemma4": 6,
    "gemma4_text": 6,
    "cohere2": 4,
    "olmo3": 4,
}


def _sliding(text: Mapping[str, Any], layers: int) -> tuple[int, int]:
    window = int(text.get("sliding_window") or 0)
    if not window or text.get("use_sliding_window") is False:
        return 0, 0
    layer_types = text.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        return window, sum(1 for kind in layer_types if kind == "sliding_attention")
    pattern = int(text.get("sliding_window_pattern") or GLOBAL_LAYER_EVERY.get(str(text.get("model_type")), 0))
    if pattern > 1:
        # Every pattern-th layer is global, the rest slide.
        return window, layers - layers // pattern
    return window, layers


def _quantization(config: Mapping[str, Any] | None) -> Quantization | None:
    if not config:
        return None
    method = str(config.get("quant_method") or config.get("quant_algo") or "unknown").lower()
    details = []
    if config.get("weight_block_size"):
        details.append("block " + "x".join(str(size) for size in config["weight_block_size"]))
    if config.get("bits") or config.get("w_bit"):
        details.append(f"{config.get('bits') or config.get('w_bit')}-bit")
    if config.get("group_size") or config.get("q_group_size"):
        details.append(f"group {config.get('group_size') or config.get('q_group_size')}")
    if method == "compressed-tensors" and config.get("format"):
        details.append(str(config["format"]))
    return Quantization(method=method, details=", ".join(details))
