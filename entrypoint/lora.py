"""LoRA adapters: what LORA_MODULES asks for, checked, and what their buffers cost (pure; docs/adr/0021).

vLLM preallocates, for every linear layer an adapter targets, stacks of `max_loras x max_lora_rank x (in +
out)` values at the model's dtype (lora/layers/base_linear.py create_lora_weights): a column-parallel layer
keeps A whole and B split over TP, a row-parallel one the reverse. sglang's LoRA memory pool is sized the
same way by its `--max-loras-per-batch`. The plan counts those buffers beside the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SettingError, UnsupportedByEngineError
from .model.shape import ModelShape

# The ranks vLLM 0.32 accepts for --max-lora-rank (config/lora.py MaxLoRARanks).
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
COLUMN_PARALLEL = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "qkv_proj", "gate_up_proj")
ROW_PARALLEL = ("o_proj", "down_proj")


@dataclass(frozen=True)
class Adapter:
    name: str  # as clients send it in `model`
    source: str  # a folder or a Hub repo id, as given
    rank: int  # adapter_config.json `r`
    target_modules: tuple[str, ...]
    base_model: str  # adapter_config.json base_model_name_or_path ("" when absent)
    weight_bytes: int  # from its safetensors header
    # (module, in features, out features) its lora_A / lora_B tensors imply, from the header.
    module_sizes: tuple[tuple[str, int, int], ...] = ()


def check(adapters: tuple[Adapter, ...], target_model: str, shape: ModelShape) -> int:
    """The --max-lora-rank to pass: the smallest the engine takes that holds every adapter. An adapter
    whose layers do not have the model's sizes is of another model, whatever the folder names say; with
    TARGET_MODEL a Hub id, a different base model name is refused too (a local folder can be named anything)."""
    sizes = _sizes(shape)
    for adapter in adapters:
        shown = f"LORA_MODULES={adapter.name}={adapter.source}"
        for module, size_in, size_out in adapter.module_sizes:
            if module in sizes and sizes[module] != (size_in, size_out):
                raise SettingError(
                    f"{shown} has {module} of {size_in}x{size_out}, but TARGET_MODEL={target_model} has "
                    f"{sizes[module][0]}x{sizes[module][1]}: it is an adapter of another model"
                    + (f" ({adapter.base_model})" if adapter.base_model else ""),
                    "use adapters trained on TARGET_MODEL (adapter_config.json base_model_name_or_path)",
                )
        hub_id = "/" in target_model and not target_model.startswith(("/", ".", "~"))
        if hub_id and adapter.base_model and _short(adapter.base_model) != _short(target_model):
            raise SettingError(
                f"{shown} is an adapter of {adapter.base_model}, not of TARGET_MODEL={target_model}",
                "use adapters trained on TARGET_MODEL (adapter_config.json base_model_name_or_path)",
            )
    rank = max(adapter.rank for adapter in adapters)
    fitting = [allowed for allowed in LORA_RANKS if allowed >= rank]
    if not fitting:
        raise UnsupportedByEngineError(
            f"LORA_MODULES: {next(a.name for a in adapters if a.rank == rank)} has rank {rank}, above the "
            f"engines' largest --max-lora-rank {LORA_RANKS[-1]}",
            "use an adapter of rank 512 or less",
        )
    return fitting[0]


def _sizes(shape: ModelShape) -> dict[str, tuple[int, int]]:
    """(in, out) of each linear layer an adapter may target."""
    heads, kv_heads, head_dim, hidden = shape.attention_heads, shape.kv_heads, shape.head_dim, shape.hidden_size
    inter = shape.intermediate_size or 4 * hidden
    return {
        "q_proj": (hidden, heads * head_dim),
        "k_proj": (hidden, kv_heads * head_dim),
        "v_proj": (hidden, kv_heads * head_dim),
        "o_proj": (heads * head_dim, hidden),
        "gate_proj": (hidden, inter),
        "up_proj": (hidden, inter),
        "down_proj": (inter, hidden),
    }


def _short(model: str) -> str:
    """A model's name without its folder or owner, for comparing a base model with TARGET_MODEL: adapters
    record the Hub id, a local folder or a path of the trainer's machine."""
    return model.rstrip("/").rsplit("/", 1)[-1].lower()


def buffer_bytes(
    shape: ModelShape, adapters: tuple[Adapter, ...], max_loras: int, rank: int, tp: int, dtype_bytes: int
) -> int:
    """The LoRA buffers on one GPU for `max_loras` adapters of `rank` at once."""
    targets = {module for adapter in adapters for module in adapter.target_modules}
    sizes = _sizes(shape)
    hidden = shape.hidden_size
    per_layer = 0
    for module in targets:
        size_in, size_out = sizes.get(module, (hidden, hidden))
        if module in ROW_PARALLEL:
            per_layer += size_in // tp + size_out
        else:
            per_layer += size_in + size_out // tp
    return max_loras * rank * per_layer * shape.layers * dtype_bytes
