"""What the planner is told about a checkpoint (pure values; `model.source` fills them)."""

from __future__ import annotations

from dataclasses import dataclass

from .shape import ModelShape
from .weights import WeightSummary


@dataclass(frozen=True)
class ModelInfo:
    name: str
    location: str  # "local folder", "hub" or "hub cache (offline)"
    shape: ModelShape
    weights: WeightSummary
    shards: int
