"""KV cache arithmetic per architecture: how many bytes a token costs and how many tokens fit (pure).

Where a new attention layout is taught to the planner. Today:
- GQA/MQA: K and V per KV head; with fewer KV heads than TP ranks each rank holds a replica of one head.
- MLA (DeepSeek V2/V3): one compressed latent plus the rotary part per token, replicated on every rank.
- Sliding-window layers (Gemma 2/3, Mistral): never cache more than their window.
"""

from __future__ import annotations

import math

from .shape import ModelShape

UNBOUNDED = 10**9  # every layer slides: the context is not limited by the KV cache


def bytes_per_layer_token(shape: ModelShape, tp: int, dtype_bytes: int) -> int:
    """KV bytes one token adds to one layer on one of `tp` tensor-parallel ranks."""
    if shape.is_mla:  # the compressed latent is replicated on every TP rank
        return (shape.kv_lora_rank + shape.qk_rope_head_dim) * dtype_bytes
    heads = max(1, shape.kv_heads // tp)  # fewer KV heads than ranks: replicated
    return 2 * heads * shape.head_dim * dtype_bytes


def bytes_per_token(shape: ModelShape, dtype_bytes: int) -> int:
    """Whole model, one replica, before any split (what `plan --json` reports)."""
    return bytes_per_layer_token(shape, 1, dtype_bytes) * shape.layers


def sequence_bytes(
    shape: ModelShape, length: int, tp: int, pp: int, dtype_bytes: int, swa_ratio: float | None = None
) -> int:
    """KV bytes one sequence of `length` tokens holds on one GPU of a TP x PP layout. A sliding-window layer
    keeps at most its window (vLLM), or, with `swa_ratio`, its pool is that share of the full layers' pool
    (sglang's hybrid SWA pool, swa_full_tokens_ratio), so each token costs that share there."""
    per_layer = bytes_per_layer_token(shape, tp, dtype_bytes)
    full = math.ceil(shape.full_attention_layers / pp)
    sliding = math.ceil(shape.sliding_layers / pp)
    if swa_ratio is not None:
        return math.ceil(per_layer * (full + swa_ratio * sliding) * length)
    return per_layer * (full * length + sliding * min(length, shape.sliding_window or length))


def concurrent_sequences(
    shape: ModelShape,
    available_bytes: int,
    length: int,
    tp: int,
    pp: int,
    dtype_bytes: int,
    swa_ratio: float | None = None,
) -> float:
    """How many sequences of `length` tokens the KV cache holds at once (vLLM's "Maximum concurrency")."""
    if available_bytes <= 0 or length <= 0:
        return 0.0
    return available_bytes / sequence_bytes(shape, length, tp, pp, dtype_bytes, swa_ratio)


def longest_sequence(
    shape: ModelShape, available_bytes: int, tp: int, pp: int, dtype_bytes: int, swa_ratio: float | None = None
) -> int:
    """Longest single sequence whose KV cache fits in `available_bytes` on one GPU of a TP x PP layout."""
    if available_bytes <= 0:
        return 0
    per_layer = bytes_per_layer_token(shape, tp, dtype_bytes)
    if swa_ratio is not None:  # every token costs the same: the full layers' share plus the SWA pool's
        layers = math.ceil(shape.full_attention_layers / pp) + swa_ratio * math.ceil(shape.sliding_layers / pp)
        return int(available_bytes / (per_layer * layers))
    full = math.ceil(shape.full_attention_layers / pp) * per_layer
    sliding = math.ceil(shape.sliding_layers / pp) * per_layer
    window = shape.sliding_window
    if sliding == 0:
        return available_bytes // full
    if available_bytes <= (full + sliding) * window:
        return available_bytes // (full + sliding)  # shorter than the window: every layer caches every token
    return UNBOUNDED if full == 0 else (available_bytes - sliding * window) // full
