"""When nothing fits: the settings that would make it fit, each planned in full before it is named (pure).

Each kind of fix (more GPUs of this kind, online FP8, a bigger GPU of the same vendor, more memory for the
engine, letting the planner choose the layout) offers its alternatives in order of preference; the first
that the whole planner accepts is named (docs/adr/0016). The planner is passed in as `plans`, so that this
module needs no import of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .engines.base import Engine
from .errors import DoesNotFitError
from .hardware.catalog import GPUS, Accelerators, GpuSpec
from .hardware.types import Hardware, from_accelerators
from .model.info import ModelInfo
from .model.weights import estimate
from .sizing import GPUS_PER_NODE, MIN_CONTEXT, Sizing, search
from .units import gib

if TYPE_CHECKING:  # pure: the settings module is the configuration edge
    from .settings import Settings


@dataclass(frozen=True)
class Fix:
    """A change of settings that would make it fit, with the devices it implies."""

    text: str
    settings: Settings
    hardware: Hardware


def does_not_fit(
    sizing: Sizing,
    target: int,
    explicit: bool,
    settings: Settings,
    model: ModelInfo,
    engine: Engine,
    plans: Callable[[Fix], bool] | None,
) -> DoesNotFitError:
    """The error, with the fixes that `plans` accepts (None: name none, for a fix being checked itself)."""
    hardware = sizing.hardware
    needs = (
        f"{model.name} needs {gib(sizing.weights.total_bytes)} of weights plus KV cache for "
        f"{target if explicit else min(MIN_CONTEXT, target)} tokens"
    )
    if sizing.pins.described():
        needs += f" with {sizing.pins.described()}"
    if hardware.is_cpu:
        message = f"{needs}; the CPU path has {gib(sizing.budget(1, 1))} for it ({hardware.source})"
    else:
        message = (
            f"{needs}; {hardware.total_count}x {hardware.name} at {sizing.fraction_shown(1, 1)} give "
            f"{gib(sizing.budget(1, 1))} per GPU"
        )
    fixes = []
    if plans is not None:
        # Each kind of fix offers its alternatives in order of preference; the first that the whole planner
        # accepts (dtype, quantization, vendor, layout, not just memory) is named: a hint that would itself be
        # refused is no hint.
        for alternatives in _fix_kinds(sizing, target, explicit, settings, model):
            chosen = next((fix for fix in alternatives if plans(fix)), None)
            if chosen:
                fixes.append(chosen.text)
    if fixes:
        hint = "try " + "; or ".join(fixes)
    elif hardware.is_cpu:
        hint = "use a smaller or quantized model, give the container more memory, or run on GPUs with the GPU image"
    else:
        hint = "no GPU in the catalog holds it; use a quantized checkpoint"
    return DoesNotFitError(message, hint)


def _fix_kinds(sizing: Sizing, target: int, explicit: bool, settings: Settings, model: ModelInfo) -> list[list[Fix]]:
    """Letting the planner choose a pinned layout, more GPUs of this kind, online FP8, a bigger GPU of the same
    vendor, more memory for the engine (the smallest MEM_FRACTION that holds it, or 0.95 with a short context).

    Counts are named only for GPUs the catalogue knows (hints use its names), and no GPU at all for the CPU
    path, whose image has no CUDA. GPU alternatives are filtered by memory first, which is cheap.
    """
    hardware = sizing.hardware
    spec = hardware.spec
    kinds: list[list[Fix]] = []
    pinned = sizing.pins.pinned()
    if pinned:
        names = " and ".join(name for name, _ in pinned)
        free = replace(settings, tensor_parallel_size=None, pipeline_parallel_size=None, data_parallel_size=None)
        kinds.append([Fix(f"unset {names} (the planner chooses the layout)", free, hardware)])
    if spec:
        why = f"the fewest {spec.name} GPUs that hold it"
        more = [_on_gpus(settings, spec, count, why) for count in (2, 4, 8, 16, 32, 64) if count > hardware.total_count]
        kinds.append([fix for fix in more if _fits(sizing, fix.hardware, target, explicit)])
    if not model.shape.quantization and not settings.quantization and not hardware.is_cpu:
        fp8 = estimate(model.weights, "bfloat16", online_fp8=True)
        text = f"QUANTIZATION=fp8 (weights shrink to {gib(fp8.total_bytes)})"
        kinds.append([Fix(text, replace(settings, quantization="fp8"), hardware)])
    if not hardware.is_cpu:
        bigger = [_on_gpus(settings, row, hardware.total_count, "") for row in _bigger_gpus(hardware)]
        # A bigger GPU is only worth naming if it serves the full context.
        kinds.append([fix for fix in bigger if _fits(sizing, fix.hardware, target, True)])
    current = sizing.fraction(1, 1)
    if current < MAX_SUGGESTED_FRACTION:
        kinds.append(_more_memory(sizing, target, explicit, settings, model, current))
    return kinds


MAX_SUGGESTED_FRACTION = 0.95


def _more_memory(
    sizing: Sizing, target: int, explicit: bool, settings: Settings, model: ModelInfo, current: float
) -> list[Fix]:
    """The smallest MEM_FRACTION (in hundredths, up to 0.95) that holds it; else 0.95 with a short context."""
    hardware = sizing.hardware
    fixes = []
    for hundredths in range(math.floor(current * 100) + 1, round(MAX_SUGGESTED_FRACTION * 100) + 1):
        fraction = hundredths / 100
        if search(replace(sizing, mem_fraction=fraction), target, explicit) is not None:
            text = f"MEM_FRACTION={fraction} (now {current:g}: less room for activations and CUDA graphs)"
            fixes.append(Fix(text, replace(settings, mem_fraction=fraction), hardware))
            break
    context = min(MIN_CONTEXT, model.shape.max_position or MIN_CONTEXT)
    text = f"MEM_FRACTION=0.95 with MAX_MODEL_LEN={context} (little headroom: expect out-of-memory under load)"
    fixes.append(Fix(text, replace(settings, mem_fraction=MAX_SUGGESTED_FRACTION, max_model_len=context), hardware))
    return fixes


def _on_gpus(settings: Settings, spec: GpuSpec, count: int, why: str) -> Fix:
    """`count` GPUs of `spec` as SkyPilot gives them: up to GPUS_PER_NODE on one node, else whole nodes."""
    per_node = min(count, GPUS_PER_NODE)
    nodes = max(1, count // per_node)
    if nodes == 1:
        text = f"ACCELERATORS={spec.name}:{count}" + (f" ({why})" if why else "")
    else:
        text = (
            f"{nodes} nodes of ACCELERATORS={spec.name}:{GPUS_PER_NODE} ({count} GPUs{', ' + why if why else ''}; "
            f"skypilot/multinode.yaml with --num-nodes {nodes})"
        )
    return Fix(text, *on_gpus(settings, spec, per_node, nodes))


def on_gpus(settings: Settings, spec: GpuSpec, per_node: int, nodes: int) -> tuple[Settings, Hardware]:
    """The settings and devices of `nodes` machines of `per_node` GPUs of `spec`, as SkyPilot would start them."""
    accelerators = Accelerators(spec, per_node)
    variant = replace(settings, accelerators=accelerators, skypilot_num_nodes=nodes)
    return variant, replace(from_accelerators(accelerators), nodes=nodes)


def _bigger_gpus(hardware: Hardware) -> list[GpuSpec]:
    """The same family with more memory first (A100 -> A100-80GB), then the vendor's others, smallest first.

    Without a catalogue row (a GPU the catalogue lacks, a MIG slice) the vendor is taken to be NVIDIA, whose
    tools detected it.
    """
    spec = hardware.spec
    family = spec.name.split("-")[0] if spec else None
    vendor = spec.vendor if spec else "nvidia"
    candidates = [row for row in GPUS if row.vendor == vendor and row.memory_bytes > hardware.memory_bytes]
    return sorted(candidates, key=lambda row: (row.name.split("-")[0] != family, row.memory_mib))


def _fits(sizing: Sizing, hardware: Hardware, target: int, explicit: bool) -> bool:
    """Memory alone, on other devices (the cheap first filter; `_plans` has the last word)."""
    return search(replace(sizing, hardware=hardware), target, explicit) is not None
