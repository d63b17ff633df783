"""The CPU path's memory, as the vLLM CPU worker will see it (edge: reads /sys and /proc).

vLLM 0.32's CPU worker (`v1/worker/cpu_worker.py`, `utils/cpu_resource_utils.get_memory_node_info`) measures
the NUMA node of the first CPU it may run on: total = the node's MemTotal, available = MemFree + Active(file) +
Inactive(file) + SReclaimable, both clamped by the cgroup's memory limit (`docker run --memory`, a Kubernetes
limit). It then refuses a KV cache larger than what is still available once the weights are loaded. Planning
from the host's MemTotal instead asks for more than a container or a multi-socket machine has.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# cgroup v1 reports "no limit" as a number near 2^63 rounded down to a page; vLLM ignores values from 2^62.
_NO_LIMIT = 2**62


@dataclass(frozen=True)
class HostMemory:
    total_bytes: int
    available_bytes: int
    node: int | None  # the NUMA node measured; None when the machine exposes none (then /proc/meminfo)
    cgroup_limit_bytes: int | None  # None when the container has no memory limit

    def describe(self) -> str:
        where = f"NUMA node {self.node}" if self.node is not None else "host"
        limit = f", cgroup limit {self.cgroup_limit_bytes / 2**30:.1f} GiB" if self.cgroup_limit_bytes else ""
        return f"{where} meminfo{limit}; {self.available_bytes / 2**30:.1f} GiB available now"


def read(root: str = "/") -> HostMemory:
    """What the vLLM CPU worker will measure; `root` is "/" except in tests, which build a fake one."""
    base = Path(root)
    node = _first_cpu_node(base)
    meminfo = _meminfo(base / f"sys/devices/system/node/node{node}/meminfo") if node is not None else None
    if meminfo is None:
        node = None
        meminfo = _meminfo(base / "proc/meminfo") or {}
    try:
        total = meminfo["MemTotal"]
    except KeyError:
        raise OSError(f"no MemTotal in {base / 'proc/meminfo'}") from None
    if node is None and "MemAvailable" in meminfo:
        available = meminfo["MemAvailable"]
    else:
        parts = ("MemFree", "Active(file)", "Inactive(file)", "SReclaimable")
        available = sum(meminfo.get(part, 0) for part in parts)
    limit, usage = _cgroup(base)
    if limit is not None and limit < total:
        total = limit
        available = max(0, min(available, limit - (usage or 0)))
    else:
        limit = None
    return HostMemory(total, available, node, limit)


def _first_cpu_node(base: Path) -> int | None:
    """The NUMA node of the lowest CPU this process may run on, as vLLM picks it."""
    try:
        cpu = min(os.sched_getaffinity(0)) if base == Path("/") else 0
    except (AttributeError, OSError, ValueError):
        cpu = 0
    try:
        entries = os.listdir(base / f"sys/devices/system/cpu/cpu{cpu}")
    except OSError:
        entries = []
    nodes = [int(entry[4:]) for entry in entries if entry.startswith("node") and entry[4:].isdigit()]
    if nodes:
        return min(nodes)
    return 0 if (base / "sys/devices/system/node/node0/meminfo").is_file() else None


def _meminfo(path: Path) -> dict[str, int] | None:
    """`Node 0 MemTotal: 97421888 kB` or `MemTotal: 97421888 kB` lines, in bytes; None if unreadable."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        words = line.replace(":", " ").split()
        if words[:1] == ["Node"]:
            words = words[2:]
        if len(words) >= 2 and words[1].isdigit():
            values[words[0]] = int(words[1]) * (1024 if words[2:3] == ["kB"] else 1)
    return values


def _cgroup(base: Path) -> tuple[int | None, int | None]:
    """(limit, usage) in bytes from cgroup v2, else v1; (None, None) without a limit."""
    for limit_file, usage_file in (
        ("sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory.current"),
        ("sys/fs/cgroup/memory/memory.limit_in_bytes", "sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        limit = _read_int(base / limit_file)
        if limit is not None and limit < _NO_LIMIT:
            return limit, _read_int(base / usage_file)
    return None, None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 writes "max" for no limit
