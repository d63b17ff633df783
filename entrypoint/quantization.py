"""QUANTIZATION against the checkpoint, the engine and the GPUs: which method runs, and is it online FP8 (pure).

The engine's data says what it accepts (`Engine.quantization_methods`, `removed_quantization`,
`compatible_quantization`, `fp8_methods`, `fp8_min_capability`); the rules here are the same for every engine.
"""

from __future__ import annotations

from .engines.base import Engine
from .errors import SettingError, UnsupportedByEngineError
from .hardware.types import Hardware
from .model.shape import ModelShape

FP8_NATIVE = (8, 9)  # Ada / Hopper and newer compute FP8 natively


def choose(
    requested: str | None, shape: ModelShape, hardware: Hardware, engine: Engine, reasons: list[str]
) -> tuple[str | None, bool]:
    """Validate QUANTIZATION; returns (method the engine runs, whether weights are quantized to FP8 at load)."""
    stored = shape.quantization.method if shape.quantization else None
    if requested is not None and requested in engine.removed_quantization:
        raise UnsupportedByEngineError(
            f"QUANTIZATION={requested} is not accepted by {engine.name}", engine.removed_quantization[requested]
        )
    if requested and requested not in engine.quantization_methods:
        raise SettingError(
            f"QUANTIZATION={requested!r} is not a {engine.name} quantization method",
            f"for example QUANTIZATION=fp8; {engine.name} accepts: " + ", ".join(sorted(engine.quantization_methods)),
        )
    if (
        requested
        and stored
        and requested != stored
        and requested not in engine.compatible_quantization.get(stored, frozenset())
    ):
        raise SettingError(
            f"QUANTIZATION={requested} cannot load this checkpoint, which is already {stored}",
            "unset QUANTIZATION to use the checkpoint's own quantization",
        )
    if requested and not stored and requested in engine.checkpoint_quantization:
        raise SettingError(
            f"QUANTIZATION={requested} needs a checkpoint quantized with {requested}, and this one is not quantized",
            f"use a {requested} checkpoint (e.g. a repo whose name ends in -{requested.split('_')[0].upper()}), or "
            "QUANTIZATION=fp8 to quantize this one at load time",
        )
    method = requested or stored
    online_fp8 = bool(requested in engine.fp8_methods and not stored)
    if method in engine.fp8_methods:
        _check_fp8(hardware, engine, reasons)
    if online_fp8:
        reasons.append(
            f"quantization={requested}: linear weights are quantized to FP8 at load time, halving their 16-bit size."
        )
    elif shape.quantization:
        details = f" ({shape.quantization.details})" if shape.quantization.details else ""
        reasons.append(f"quantization={stored}{details}: read from the checkpoint's quantization_config.")
    return method, online_fp8


def fp8_possible(hardware: Hardware, engine: Engine) -> bool:
    """Whether online FP8 is worth suggesting on these GPUs (unknown capability: let the engine decide)."""
    capability = hardware.compute_capability
    return not hardware.is_cpu and (capability is None or capability >= engine.fp8_min_capability)


def _check_fp8(hardware: Hardware, engine: Engine, reasons: list[str]) -> None:
    capability = hardware.compute_capability
    if hardware.is_cpu or capability is None:
        return  # AMD MI300-class (gfx942) has native FP8; unknown capability: the engine decides
    if capability >= FP8_NATIVE:
        return
    shown = ".".join(map(str, capability))
    if capability < engine.fp8_min_capability:
        minimum = ".".join(map(str, engine.fp8_min_capability))
        raise UnsupportedByEngineError(
            f"FP8 needs compute capability {minimum}+ in {engine.name}; {hardware.name} has {shown}",
            "use a 16-bit checkpoint without QUANTIZATION, an awq/gptq checkpoint, or newer GPUs (L4, L40S, H100)",
        )
    reasons.append(
        f"fp8 on {hardware.name} (compute capability {shown} < 8.9): no native FP8 compute, so "
        f"{engine.name} runs weight-only FP8 through Marlin kernels: memory halves, speed does not improve."
    )
