"""Which devices this engine plans for: ACCELERATORS, nvidia-smi, the CPU path and the nodes SkyPilot started.

The edge that fills `Hardware`: it may run nvidia-smi (`nvidia_smi.detect`) and read the CPU path's memory
(`host.read`). The catalogue row (`Hardware.spec`) is resolved here, once, so that the planner's hints name GPUs the way
ACCELERATORS spells them whatever nvidia-smi printed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import EntrypointError, NvidiaSmiMissingError, UnsupportedByEngineError
from ..units import MIB
from . import cluster, host, nvidia_smi
from .types import Hardware, from_accelerators

if TYPE_CHECKING:
    from ..engines.base import Engine
    from ..settings import Settings


def resolve(settings: Settings, engine: Engine, environ: Mapping[str, str]) -> Hardware:
    """One node's devices (ACCELERATORS or nvidia-smi) times the nodes SkyPilot started."""
    hardware = _node_hardware(settings, engine, environ)
    allocated = settings.skypilot_num_gpus_per_node
    if allocated and not hardware.is_cpu and allocated != hardware.count:
        hardware = _with_notes(
            hardware,
            [
                f"SkyPilot allocated {allocated} GPU(s) per node, but the plan uses "
                f"{hardware.count}: check --gpus against ACCELERATORS or the container's "
                "GPU access."
            ],
        )
    nodes = cluster.from_settings(settings).nodes
    if nodes > 1 and hardware.is_cpu:
        raise UnsupportedByEngineError(
            "the CPU path runs on one node, but SKYPILOT_NUM_NODES is above 1", "use num_nodes: 1 for ACCELERATORS=cpu"
        )
    return replace(hardware, nodes=nodes)


def _node_hardware(settings: Settings, engine: Engine, environ: Mapping[str, str]) -> Hardware:
    """ACCELERATORS when set (compared with nvidia-smi when present), else detection."""
    accelerators = settings.accelerators
    if accelerators is None:
        return nvidia_smi.detect(environ)
    if accelerators.is_cpu:
        if not engine.supports_cpu:
            raise UnsupportedByEngineError(
                f"ACCELERATORS=cpu is not supported with ENGINE={engine.name}",
                "use ENGINE=vllm for the CPU path, or run on GPUs",
            )
        memory = host.read()
        return replace(
            from_accelerators(accelerators, memory.total_bytes),
            available_bytes=memory.available_bytes,
            source=f"cpu: {memory.describe()}",
        )
    planned = from_accelerators(accelerators)
    try:
        detected = nvidia_smi.detect(environ)
    except NvidiaSmiMissingError:
        return planned  # planning without GPUs is what ACCELERATORS is for
    except EntrypointError as exc:
        return _with_notes(planned, [f"ACCELERATORS is set but nvidia-smi could not confirm it: {exc.message}"])
    return _with_notes(planned, compare(planned, detected))


def compare(planned: Hardware, detected: Hardware) -> list[str]:
    """Sentences about how ACCELERATORS differs from what nvidia-smi shows."""
    differences = []
    if detected.count != planned.count:
        differences.append(f"{detected.count} visible, not {planned.count}")
    if abs(detected.memory_bytes - planned.memory_bytes) > 2 * 1024 * MIB:
        differences.append(f"{detected.memory_bytes // 2**30} GiB each, not {planned.memory_bytes // 2**30} GiB")
    if not differences:
        return []
    return [
        f"ACCELERATORS says {planned.name}:{planned.count} but nvidia-smi shows {detected.name}: "
        f"{'; '.join(differences)}. Planning for ACCELERATORS."
    ]


def _with_notes(hardware: Hardware, notes: list[str]) -> Hardware:
    return replace(hardware, notes=hardware.notes + tuple(notes))
