"""What the planner is told about the devices: values only, filled in by `hardware.resolve` (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import Accelerators, GpuSpec, parse_capability


@dataclass(frozen=True)
class Gpu:
    """One device as nvidia-smi lists it."""

    index: str
    name: str
    memory_bytes: int
    capability: str
    uuid: str = ""
    mig: bool = False


@dataclass(frozen=True)
class Hardware:
    """The devices one engine instance plans for (per node)."""

    name: str  # as nvidia-smi names it, or the catalogue name from ACCELERATORS; for people, not for hints
    memory_bytes: int  # per device; the smallest when they differ
    capability: str  # lowest of the devices
    count: int  # devices per node
    source: str  # "nvidia-smi", "ACCELERATORS" or "cpu"
    nodes: int = 1
    is_cpu: bool = False
    mig: bool = False
    notes: tuple[str, ...] = ()
    # The catalogue row these devices are, resolved once at the edge; every ACCELERATORS=... hint and every
    # price is written from it, never from `name`. None for the CPU, MIG slices and GPUs the catalogue lacks.
    spec: GpuSpec | None = None
    # The CPU path only: what the engine may still allocate now (the NUMA node's available memory within the
    # cgroup limit; hardware.host), which bounds the KV cache beside MEM_FRACTION x memory_bytes.
    available_bytes: int | None = None

    @property
    def total_count(self) -> int:
        return self.count * self.nodes

    @property
    def compute_capability(self) -> tuple[int, int] | None:
        return parse_capability(self.capability)


def from_accelerators(accelerators: Accelerators, cpu_memory_bytes: int = 0) -> Hardware:
    """An ACCELERATORS value as the planner's Hardware (`cpu`: host memory stands in for GPU memory)."""
    spec, count = accelerators.spec, accelerators.count
    if spec is None:
        return Hardware(name="cpu", memory_bytes=cpu_memory_bytes, capability="", count=1, source="cpu", is_cpu=True)
    return Hardware(
        name=spec.name,
        memory_bytes=spec.memory_bytes,
        capability=spec.capability,
        count=count,
        source="ACCELERATORS",
        spec=spec,
    )
