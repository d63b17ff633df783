"""What the planner is told about a checkpoint (pure values; `model.source` fills them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..lora import Adapter
from .families import ModelFiles
from .shape import ModelShape
from .weights import WeightSummary


@dataclass(frozen=True)
class ModelInfo:
    name: str
    location: str  # "local folder", "hub" or "hub cache (offline)"
    shape: ModelShape
    weights: WeightSummary
    shards: int
    config: Mapping[str, Any] = field(default_factory=dict)  # config.json as read (families.family_of)
    files: ModelFiles = field(default_factory=ModelFiles)  # chat template, modules.json
    adapters: tuple[Adapter, ...] = ()  # LORA_MODULES, read (model.adapters)
