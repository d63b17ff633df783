"""The GPUs nvidia-smi shows this process.

`detect()` is the only I/O here (it runs nvidia-smi); `parse_query()`,
`parse_mig_list()`, `select_visible()` and `summarize()` are pure and tested
against recorded outputs (tests/fixtures/nvidia-smi).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence

from ..errors import NoGpuError, NvidiaSmiFailedError, NvidiaSmiMissingError
from ..units import MIB
from .catalog import identify, parse_capability
from .types import Gpu, Hardware

QUERY_FIELDS = "index,name,memory.total,compute_cap,uuid,mig.mode.current"
QUERY_ARGS = (f"--query-gpu={QUERY_FIELDS}", "--format=csv,noheader,nounits")


# ---------------------------------------------------------------- pure parsing


def parse_query(text: str) -> list[Gpu]:
    """Parse `nvidia-smi --query-gpu=QUERY_FIELDS --format=csv,noheader,nounits`."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != 6 or not cells[2].isdigit():
            raise NvidiaSmiFailedError(
                f"nvidia-smi printed a line that is not {QUERY_FIELDS}: {line.strip()!r}",
                "check that `nvidia-smi` works on the host; the driver may be too old (needs compute_cap, R510+)",
            )
        index, name, memory_mib, capability, uuid, mig_mode = cells
        gpus.append(
            Gpu(
                index=index,
                name=name,
                memory_bytes=int(memory_mib) * MIB,
                capability="" if capability.startswith("[") else capability,
                uuid=uuid,
                mig=mig_mode == "Enabled",
            )
        )
    return gpus


_MIG_LINE = re.compile(r"^\s+MIG\s+(?P<profile>\S+)\s+Device\s+(?P<dev>\d+):\s+\(UUID:\s+(?P<uuid>MIG-[^)\s]+)\)")
_GPU_LINE = re.compile(r"^GPU\s+(?P<index>\d+):")


def parse_mig_list(text: str, parents: Sequence[Gpu]) -> list[Gpu]:
    """Turn `nvidia-smi -L` into one Gpu per MIG instance of MIG-enabled parents."""
    by_index = {gpu.index: gpu for gpu in parents}
    devices: list[Gpu] = []
    parent: Gpu | None = None
    for line in text.splitlines():
        if match := _GPU_LINE.match(line):
            parent = by_index.get(match["index"])
        elif (match := _MIG_LINE.match(line)) and parent is not None and parent.mig:
            # Profile names like "3g.40gb" carry the slice's memory in (decimal) GB.
            size = re.search(r"(\d+)gb", match["profile"])
            memory = int(size.group(1)) * 1000 * MIB if size else parent.memory_bytes
            devices.append(
                Gpu(
                    index=f"{parent.index}:{match['dev']}",
                    name=f"{parent.name} MIG {match['profile']}",
                    memory_bytes=memory,
                    capability=parent.capability,
                    uuid=match["uuid"],
                    mig=True,
                )
            )
    return devices


def select_visible(gpus: Sequence[Gpu], environ: Mapping[str, str]) -> tuple[list[Gpu], list[str]]:
    """Apply NVIDIA_VISIBLE_DEVICES and CUDA_VISIBLE_DEVICES like CUDA would."""
    notes: list[str] = []
    visible = list(gpus)
    nvidia = environ.get("NVIDIA_VISIBLE_DEVICES", "").strip()
    if nvidia.lower() in ("void", "none"):
        return [], [f"NVIDIA_VISIBLE_DEVICES={nvidia} hides every GPU"]
    if nvidia and nvidia.lower() != "all":
        wanted = _tokens(nvidia)
        # Inside a container the runtime already filtered (and renumbered) the
        # GPUs; only filter when nvidia-smi still shows more than were asked for.
        if len(visible) > len(wanted):
            visible = [gpu for gpu in visible if _matches(gpu, wanted)]
    cuda = environ.get("CUDA_VISIBLE_DEVICES")
    if cuda is not None:
        if cuda.strip() in ("", "-1"):
            return [], [f"CUDA_VISIBLE_DEVICES={cuda!r} hides every GPU"]
        wanted = _tokens(cuda)
        chosen = [gpu for token in wanted for gpu in visible if _matches(gpu, [token])]
        if len(chosen) < len(wanted):
            notes.append(f"CUDA_VISIBLE_DEVICES={cuda} names devices nvidia-smi does not show; using {len(chosen)}")
        visible = list(dict.fromkeys(chosen))
    return visible, notes


def _tokens(value: str) -> list[str]:
    return [token.strip() for token in value.split(",") if token.strip()]


def _matches(gpu: Gpu, tokens: Sequence[str]) -> bool:
    return any(token == gpu.index or (len(token) > 4 and gpu.uuid.startswith(token)) for token in tokens)


def summarize(gpus: Sequence[Gpu], notes: Sequence[str] = ()) -> Hardware:
    """Reduce visible GPUs to the shape the planner needs (plans on the smallest)."""
    smallest = min(gpus, key=lambda gpu: gpu.memory_bytes)
    capabilities = [gpu.capability for gpu in gpus if gpu.capability]
    all_notes = list(notes)
    if len({(gpu.name, gpu.memory_bytes) for gpu in gpus}) > 1:
        names = ", ".join(sorted({gpu.name for gpu in gpus}))
        all_notes.append(f"mixed GPUs ({names}): planning every GPU as the smallest, {smallest.name}")
    mig = any(gpu.mig for gpu in gpus)
    if mig:
        all_notes.append("MIG instances: each is planned as its own small GPU")
    return Hardware(
        name=smallest.name,
        memory_bytes=smallest.memory_bytes,
        capability=_lowest(capabilities),
        count=len(gpus),
        source="nvidia-smi",
        mig=mig,
        notes=tuple(all_notes),
        # A MIG slice is no catalogue GPU: hints and prices must not treat it as a whole one.
        spec=None if mig else identify(smallest.name, smallest.memory_bytes),
    )


def _lowest(capabilities: Sequence[str]) -> str:
    """The lowest CUDA capability ("8.0" of "8.0" and "9.0"); AMD gfx targets only when there is no CUDA one."""
    cuda = [text for text in capabilities if parse_capability(text)]
    if cuda:
        return min(cuda, key=lambda text: parse_capability(text) or (0, 0))
    return capabilities[0] if capabilities else ""


# ---------------------------------------------------------------- I/O edge

Runner = Callable[[Sequence[str], Mapping[str, str]], "subprocess.CompletedProcess[str]"]


def _run(args: Sequence[str], environ: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=False, env=dict(environ))


def detect(environ: Mapping[str, str], run: Runner = _run) -> Hardware:
    """Run nvidia-smi and describe the visible GPUs; errors explain the fix."""
    binary = shutil.which("nvidia-smi", path=environ.get("PATH"))
    if binary is None:
        raise NvidiaSmiMissingError(
            "nvidia-smi is not on PATH, so no GPU can be seen",
            "start the container with GPUs (docker run --gpus all ..., or the NVIDIA container toolkit), "
            "or set ACCELERATORS=H100:1 to plan without GPUs, or ACCELERATORS=cpu with ENGINE=vllm",
        )
    result = run([binary, *QUERY_ARGS], environ)
    if result.returncode == 6 or "No devices were found" in result.stdout:
        raise NoGpuError("nvidia-smi found no GPU", "check `nvidia-smi` on the host and run with --gpus all")
    if result.returncode != 0:
        first_line = (result.stderr or result.stdout).strip().splitlines()[:1] or ["(no output)"]
        raise NvidiaSmiFailedError(
            f"nvidia-smi failed with exit code {result.returncode}: {first_line[0]}",
            "check the NVIDIA driver on the host (`nvidia-smi` there), or set ACCELERATORS to plan without it",
        )
    gpus = parse_query(result.stdout)
    if any(gpu.mig for gpu in gpus):
        listing = run([binary, "-L"], environ)
        migs = parse_mig_list(listing.stdout, gpus)
        gpus = [gpu for gpu in gpus if not gpu.mig] + migs
    visible, notes = select_visible(gpus, environ)
    if not visible:
        raise NoGpuError(
            f"no GPU is visible ({'; '.join(notes) or 'nvidia-smi listed none'})",
            "unset CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES, or run with --gpus all",
        )
    return summarize(visible, notes)
