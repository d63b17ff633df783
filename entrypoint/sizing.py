"""The fit arithmetic the planner searches with: one layout's budget, weights, KV room and capacity (pure).

`Sizing` holds everything a fit needs (the model's shape as the engine caches it, the weights, the devices,
the engine's memory rules, MEM_FRACTION, pins), so the planner, its fixes and `fit` can try variants
cheaply; `search` finds the layout (docs/adr/0005, 0016).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from .engines.base import DeviceUse, MemoryRules, ReserveTerms
from .hardware.types import Hardware
from .layout import Pins, candidate_layouts
from .model import kv
from .model.shape import ModelShape
from .model.weights import WeightEstimate
from .units import MIB

MIN_CONTEXT = 4096  # below this an automatic context is not worth serving
CONTEXT_STEP = 1024  # automatic contexts are rounded down to a multiple of this
GPUS_PER_NODE = 8  # the most GPUs one machine has; more are planned as several nodes


@dataclass(frozen=True)
class Sizing:
    """Everything the fit arithmetic needs, so variants are cheap to try."""

    shape: ModelShape
    weights: WeightEstimate
    hardware: Hardware
    memory: MemoryRules  # the engine's
    mem_fraction: float | None  # MEM_FRACTION; None: the engine's own, per layout
    kv_dtype_bytes: int
    # A speculative draft runs with the target's TP on every replica (both engines' default).
    draft_bytes: int = 0
    pins: Pins = field(default_factory=Pins)
    kv_unit: int = 1  # the KV cache is given to the engine in whole units of this (Engine.cpu_kv_cache_unit_bytes)
    swa_ratio: float | None = None  # the engine's SWA pool share (MemoryRules.swa_pool_ratio), for this model
    # The embedding's bytes (vocab x hidden at the runtime dtype): with pipeline stages the first stage holds
    # the embedding and the last the LM head, so those two stages carry more than their share of the layers.
    head_bytes: int = 0
    # LoRA buffers on one GPU at a TP size (lora.buffer_bytes); None: no adapters.
    lora_bytes: Callable[[int], int] | None = None

    def fraction(self, tp: int, pp: int) -> float:
        """MEM_FRACTION, or what the engine itself picks for this layout."""
        if self.mem_fraction is not None:
            return self.mem_fraction
        gpu_mib = self.hardware.memory_bytes // MIB
        return self.memory.default_fraction(gpu_mib, tp, pp, self.shape.is_mla)

    def fraction_shown(self, tp: int, pp: int) -> str:
        if self.mem_fraction is not None:
            return f"MEM_FRACTION={self.mem_fraction}"
        return f"the engine's own fraction {self.fraction(tp, pp):g}"

    def device_use(self, tp: int, pp: int) -> DeviceUse:
        hardware, shape = self.hardware, self.shape
        spec = hardware.spec
        return DeviceUse(
            tp=tp,
            pp=pp,
            memory_bytes=hardware.memory_bytes,
            gpu="" if hardware.is_cpu else spec.name if spec else hardware.name,
            nvlink=bool(spec and spec.nvlink),
            cpu=hardware.is_cpu,
            vocab_size=shape.vocab_size,
            hidden_size=shape.hidden_size,
            layers=math.ceil(shape.layers / pp),
        )

    def startup(self, tp: int, pp: int) -> int:
        return self.memory.startup_bytes(self.device_use(tp, pp))

    def budget(self, tp: int, pp: int) -> int:
        """Bytes for weights, KV cache and reserve on one device. On the CPU path no more than is available
        now, which the vLLM CPU worker checks the KV cache against (hardware.host)."""
        hardware = self.hardware
        if hardware.is_cpu:
            budget = int(hardware.memory_bytes * self.fraction(tp, pp))
            return budget if hardware.available_bytes is None else min(budget, hardware.available_bytes)
        return int((hardware.memory_bytes - self.startup(tp, pp)) * self.fraction(tp, pp))

    def reserve_terms(self, tp: int, pp: int) -> ReserveTerms:
        """What the engine allocates inside the budget besides weights and KV cache, term by term."""
        return self.memory.reserve(self.device_use(tp, pp))

    def reserve(self, tp: int, pp: int) -> int:
        return sum(size for _, size in self.reserve_terms(tp, pp))

    def weights_per_gpu(self, tp: int, pp: int, expert_split: int = 0) -> int:
        """Weights on the fullest GPU; routed experts split `expert_split` ways (EP size, or TP without EP)."""
        expert_split = expert_split or tp
        dense = self.weights.dense_bytes
        if pp > 1 and self.head_bytes:
            # Stage 0 holds the embedding, the last stage the LM head (a copy of its own when tied): each
            # holds its share of the layers plus one head (Llama-3.1-8B at PP=4 on vLLM 0.19: 4.26 GiB a GPU,
            # not a quarter of 14.96; tests/test_calibration.py).
            heads = self.head_bytes * (1 if self.shape.tie_word_embeddings else 2)
            dense = (dense - heads) + self.head_bytes * pp
        lora = self.lora_per_gpu(tp, pp)
        experts = self.weights.expert_bytes / (expert_split * pp)
        return math.ceil(dense / (tp * pp) + experts + self.draft_bytes / tp) + lora

    def lora_per_gpu(self, tp: int, pp: int) -> int:
        """LoRA buffers on one GPU: each pipeline stage buffers its own layers."""
        return self.lora_bytes(tp) // pp if self.lora_bytes else 0

    def kv_available(self, tp: int, pp: int, expert_split: int = 0) -> int:
        """What is left for the KV cache on one GPU once weights and reserve are placed."""
        left = self.budget(tp, pp) - self.weights_per_gpu(tp, pp, expert_split) - self.reserve(tp, pp)
        return left // self.kv_unit * self.kv_unit

    def context_capacity(self, tp: int, pp: int, expert_split: int = 0) -> int:
        """Longest single sequence whose KV cache fits next to the weights."""
        available = self.kv_available(tp, pp, expert_split)
        return kv.longest_sequence(self.shape, available, tp, pp, self.kv_dtype_bytes, self.swa_ratio)

    def concurrency(self, length: int, tp: int, pp: int, expert_split: int = 0) -> float:
        """Sequences of `length` tokens the KV cache holds at once."""
        available = self.kv_available(tp, pp, expert_split)
        return kv.concurrent_sequences(self.shape, available, length, tp, pp, self.kv_dtype_bytes, self.swa_ratio)


@dataclass(frozen=True)
class Layout:
    tp: int
    pp: int
    context: int


# Given the layouts of the fewest stages that hold the context (smallest TP first), the one to serve with
# (throughput.choose: OPTIMIZE); without one, the first.
Pick = Callable[[list[tuple[int, int]]], tuple[int, int]]


def search(sizing: Sizing, target: int, explicit: bool, pick: Pick | None = None) -> Layout | None:
    """A layout that holds `target` tokens, of the fewest pipeline stages (`pick` chooses among them); else
    (automatic context) the one with the most room."""
    layouts = candidate_layouts(sizing.shape, sizing.hardware, sizing.pins)
    if not layouts:
        return None
    holding = [(tp, pp) for tp, pp in layouts if sizing.context_capacity(tp, pp) >= target]
    if holding:
        fewest = [layout for layout in holding if layout[1] == holding[0][1]]
        tp, pp = pick(fewest) if pick else fewest[0]
        return Layout(tp, pp, target)
    if explicit:
        return None
    # An automatic context shorter than the model's: the fewest stages that give at least MIN_CONTEXT, and of
    # those the layout with the most room (max() keeps the first of equals: the smaller TP). More stages for
    # a little more context would cost every token the pipeline's latency.
    floor = min(MIN_CONTEXT, target)
    for stages in sorted({pp for _, pp in layouts}):
        capacity, tp, pp = max(
            ((sizing.context_capacity(tp, pp), tp, pp) for tp, pp in layouts if pp == stages),
            key=lambda row: row[0] // CONTEXT_STEP,
        )
        if capacity >= floor:
            return Layout(tp, pp, max(floor, capacity // CONTEXT_STEP * CONTEXT_STEP))
    return None
