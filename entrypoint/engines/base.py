"""The one interface every engine implements, as data plus an argv builder.

The planner and the CLI only ever talk to an `Engine`; anything that differs
between sglang and vLLM (flag spellings, accepted quantizations, how expert
parallelism is sized) lives in the engine's own module as values here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping


@dataclass(frozen=True)
class Engine:
    name: str
    # Values accepted by the engine's --quantization at the pinned version.
    quantization_methods: frozenset[str]
    # Values the engine once accepted, with what to use instead.
    removed_quantization: Mapping[str, str]
    # FP8 below native support (compute capability 8.9) runs weight-only
    # through Marlin down to this capability; below it FP8 is refused.
    fp8_min_capability: tuple[int, int]
    # Expert-parallel group size for a TP x DP layout of an MoE model.
    expert_parallel_size: Callable[[int, int], int]
    supports_cpu: bool = False
    # Checkpoint quant methods mapped to the --quantization values that can load them.
    compatible_quantization: Mapping[str, frozenset[str]] = field(default_factory=dict)
