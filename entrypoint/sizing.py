"""The fit arithmetic the planner searches with: one layout's budget, weights, KV room and capacity (pure).

`Sizing` holds everything a fit needs (the model's shape as the engine caches it, the weights, the devices,
the engine's memory rules, MEM_FRACTION, pins), so the planner, its fixes and `fit` can try variants
cheaply; `search` finds the layout (docs/adr/0005, 0016).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .engines.base import MemoryRules
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

    def budget(self, tp: int, pp: int) -> int:
        """Bytes for weights, KV cache and reserve on one device. On the CPU path no more than is available
        now, which the vLLM CPU worker checks the KV cache against (hardware.host)."""
        hardware = self.hardware
        if hardware.is_cpu:
            budget = int(hardware.memory_bytes * self.fraction(tp, pp))
            return budget if hardware.available_bytes is None else min(budget, hardware.available_bytes)
        nvlink = bool(hardware.spec and hardware.spec.nvlink)
        usable = hardware.memory_bytes - self.memory.startup_bytes(tp * pp, nvlink)
        return int(usable * self.fraction(tp, pp))

    @property
    def reserve(self) -> int:
        return self.memory.cpu_reserve_bytes if self.hardware.is_cpu else self.memory.reserve_bytes

    def weights_per_gpu(self, tp: int, pp: int, expert_split: int = 0) -> int:
        """Weights on one GPU; routed experts split `expert_split` ways (EP size, or TP without EP)."""
        expert_split = expert_split or tp
        return math.ceil(
            self.weights.dense_bytes / (tp * pp)
            + self.weights.expert_bytes / (expert_split * pp)
            + self.draft_bytes / tp
        )

    def kv_available(self, tp: int, pp: int, expert_split: int = 0) -> int:
        """What is left for the KV cache on one GPU once weights and reserve are placed."""
        left = self.budget(tp, pp) - self.weights_per_gpu(tp, pp, expert_split) - self.reserve
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


def search(sizing: Sizing, target: int, explicit: bool) -> Layout | None:
    """The first layout that holds `target` tokens; else (automatic context) the one with the most room."""
    layouts = candidate_layouts(sizing.shape, sizing.hardware, sizing.pins)
    if not layouts:
        return None
    for tp, pp in layouts:
        if sizing.context_capacity(tp, pp) >= target:
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
