"""Engine registry: the only place that names every engine."""

from __future__ import annotations

from . import sglang, vllm
from .base import Engine

ENGINES: dict[str, Engine] = {engine.name: engine for engine in (sglang.ENGINE, vllm.ENGINE)}
