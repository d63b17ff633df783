"""Known accelerators, by the names SkyPilot uses, and the ACCELERATORS parser.

Memory is what `nvidia-smi --query-gpu=memory.total` reports (MiB) where we
have seen it, otherwise the datasheet capacity converted to MiB; capability is
the CUDA compute capability ("9.0") or the AMD gfx target ("gfx942").

To add a GPU: append one `GpuSpec` row to `GPUS` (SkyPilot's name first, then
aliases), with its memory and capability, and add it to a test in
tests/test_hardware.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UnknownAcceleratorError
from ..units import MIB

# The most GPUs of one machine in SkyPilot's catalog (16: e.g. GCP a2-megagpu-16g); a bound that keeps a typo
# like H100:99999999999 from planning forever.
MAX_GPUS_PER_NODE = 16


@dataclass(frozen=True)
class GpuSpec:
    name: str
    memory_mib: int
    capability: str
    aliases: tuple[str, ...] = ()
    # Sold as SXM boards whose GPUs talk over NVLink (the clouds' 8-GPU machines); the engines then set up
    # peer-to-peer buffers for tensor parallelism that PCIe cards do without.
    nvlink: bool = False
    # Memory bandwidth, GB/s, from the vendor's datasheet: decode reads every weight and the batch's KV cache
    # once per token, so this bounds tokens per second (OPTIMIZE=throughput, entrypoint.throughput).
    hbm_gbps: int = 0

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * MIB

    @property
    def vendor(self) -> str:
        # AMD rows carry a gfx target instead of a CUDA compute capability.
        return "amd" if self.capability.startswith("gfx") else "nvidia"


GPUS: tuple[GpuSpec, ...] = (
    GpuSpec("V100", 16384, "7.0", nvlink=True, hbm_gbps=900),
    GpuSpec("V100-32GB", 32768, "7.0", nvlink=True, hbm_gbps=900),
    GpuSpec("T4", 15360, "7.5", hbm_gbps=320),
    GpuSpec("A10", 23028, "8.6", hbm_gbps=600),
    GpuSpec("A10G", 23028, "8.6", hbm_gbps=600),
    GpuSpec("A40", 46068, "8.6", hbm_gbps=696),
    GpuSpec("A6000", 49140, "8.6", ("RTXA6000",), hbm_gbps=768),
    GpuSpec("RTX3090", 24576, "8.6", hbm_gbps=936),
    GpuSpec("A100", 40960, "8.0", ("A100-40GB",), nvlink=True, hbm_gbps=1555),
    GpuSpec("A100-80GB", 81920, "8.0", nvlink=True, hbm_gbps=2039),
    GpuSpec("L4", 23034, "8.9", hbm_gbps=300),
    GpuSpec("L40", 46068, "8.9", hbm_gbps=864),
    GpuSpec("L40S", 46068, "8.9", hbm_gbps=864),
    GpuSpec("RTX4090", 24564, "8.9", hbm_gbps=1008),
    GpuSpec("RTX6000-Ada", 49140, "8.9", ("RTX6000Ada", "RTX6000-ADA-GENERATION"), hbm_gbps=960),
    GpuSpec("H100", 81559, "9.0", ("H100-80GB", "H100-SXM", "H100-MEGA"), nvlink=True, hbm_gbps=3350),
    GpuSpec("H200", 143771, "9.0", nvlink=True, hbm_gbps=4800),
    GpuSpec("GH200", 97871, "9.0", hbm_gbps=4000),
    GpuSpec("B200", 183359, "10.0", nvlink=True, hbm_gbps=8000),
    GpuSpec("B300", 274658, "10.3", nvlink=True, hbm_gbps=8000),  # 288 GB HBM3e datasheet
    GpuSpec("MI300X", 196592, "gfx942", hbm_gbps=5300),
    GpuSpec("MI325X", 262144, "gfx942", hbm_gbps=6000),
)


def _key(name: str) -> str:
    # SkyPilot names are case-insensitive in practice; people also write
    # "rtx6000_ada" or "RTX 6000 Ada".
    return re.sub(r"[^A-Z0-9]", "", name.upper())


_BY_KEY = {_key(alias): spec for spec in GPUS for alias in (spec.name, *spec.aliases)}


def lookup(name: str) -> GpuSpec:
    spec = _BY_KEY.get(_key(name))
    if spec is None:
        known = ", ".join(spec.name for spec in GPUS)
        raise UnknownAcceleratorError(
            f"ACCELERATORS names an unknown GPU {name!r}; known: {known}, cpu",
            "use one of those names (e.g. ACCELERATORS=H100:4), or add a row to GPUS in entrypoint/hardware/catalog.py",
        )
    return spec


def identify(detected_name: str, memory_bytes: int) -> GpuSpec | None:
    """The row for a GPU as nvidia-smi names it ("NVIDIA A100-SXM4-80GB") or as SkyPilot does ("A100-80GB").

    A row is a candidate when the first part of its name is a word of the detected name; among candidates
    (A100 with 40 or 80 GB) the one whose memory is closest wins. None when no row matches.
    """
    words = set(re.split(r"[^A-Z0-9]+", detected_name.upper()))
    candidates = [spec for spec in GPUS if _key(spec.name.split("-")[0]) in words]
    if not candidates:
        return None
    return min(candidates, key=lambda spec: abs(spec.memory_bytes - memory_bytes))


def parse_capability(text: str) -> tuple[int, int] | None:
    """CUDA compute capability "8.9" -> (8, 9); None for AMD gfx targets and unknown values."""
    major, _, minor = text.strip().partition(".")
    if not major.isdigit() or not (minor or "0").isdigit():
        return None
    return int(major), int(minor or 0)


@dataclass(frozen=True)
class Accelerators:
    """A parsed ACCELERATORS value: `spec` is None for the CPU path."""

    spec: GpuSpec | None
    count: int

    @property
    def is_cpu(self) -> bool:
        return self.spec is None


def parse_accelerators(raw: str) -> Accelerators:
    """Parse SkyPilot's `NAME[:COUNT]` (count defaults to 1) or `cpu`."""
    text = raw.strip()
    if text.lower() == "cpu":
        return Accelerators(spec=None, count=1)
    name, _, count_text = text.partition(":")
    if not name:
        raise ValueError("expected NAME[:COUNT]")
    if name.lower() == "cpu":
        raise ValueError("the CPU path is one machine and takes no count: use ACCELERATORS=cpu")
    count = 1
    if count_text:
        if not count_text.isdigit() or not 1 <= int(count_text) <= MAX_GPUS_PER_NODE:
            raise ValueError(
                f"the count after ':' must be a whole number of GPUs from 1 to {MAX_GPUS_PER_NODE} "
                "(one machine's; more machines are SKYPILOT_NUM_NODES)"
            )
        count = int(count_text)
    return Accelerators(spec=lookup(name), count=count)
