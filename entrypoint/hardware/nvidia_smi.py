"""The GPUs nvidia-smi shows this process.

`detect()` is the only I/O here (it runs nvidia-smi); `parse_query()`,
`parse_mig_list()`, `select_visible()` and `summarize()` are pure and tested
against recorded outputs (tests/fixtures/nvidia-smi).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

from ..errors import NoGpuError, NvidiaSmiFailedError, NvidiaSmiMissingError
from ..units import MIB
from .catalog import identify, parse_capability
from .types import Gpu, Hardware

QUERY_FIELDS = "index,name,memory.total,compute_cap,uuid,mig.mode.current"
QUERY_ARGS = (f"--query-gpu={QUERY_FIELDS}", "--format=csv,noheader,nounits")

# How long the whole detection (the query, and `-L` for MIG) may take. A healthy nvidia-smi answers in well under
# a second warm and in 1-3 s cold on an 8-GPU host (the driver initialises each GPU when no persistence daemon
# keeps it loaded); one that takes longer is stuck (a hung driver, a GPU fallen off the bus) and would hold the
# container's start forever. 15 s is five times the slow cold start and still a short wait before the error,
# or before ACCELERATORS is planned without it.
DETECT_TIMEOUT_S = 15.0
# Memory figures no real GPU has: the smallest GPUs a driver that knows compute_cap (R510+) still supports have
# 2 GiB, the largest today under 300 GB. Outside these bounds the figure is garbage, not a GPU to plan for.
MIN_MEMORY_MIB = 1024
MAX_MEMORY_MIB = 16 * 1024 * 1024  # 16 TiB


# ---------------------------------------------------------------- pure parsing


def parse_query(text: str) -> list[Gpu]:
    """Parse `nvidia-smi --query-gpu=QUERY_FIELDS --format=csv,noheader,nounits`."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != 6:
            raise NvidiaSmiFailedError(
                f"nvidia-smi printed a line that is not {QUERY_FIELDS}: {line.strip()!r}",
                "check that `nvidia-smi` works on the host; the driver may be too old (needs compute_cap, R510+)",
            )
        index, name, memory_mib, capability, uuid, mig_mode = cells
        _check_gpu_line(line.strip(), index, name, memory_mib)
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


def _check_gpu_line(line: str, index: str, name: str, memory_mib: str) -> None:
    """A GPU line the planner can trust: a name and a memory size some GPU has (not 0, [N/A] or garbage)."""
    if not memory_mib.isdigit():
        raise NvidiaSmiFailedError(
            f"nvidia-smi gives no memory size for GPU {index} ({memory_mib or 'empty'}): {line!r}",
            "check `nvidia-smi` on the host (some drivers and unified-memory GPUs report none), "
            "or set ACCELERATORS to plan for the GPUs you know are there",
        )
    if not MIN_MEMORY_MIB <= int(memory_mib) <= MAX_MEMORY_MIB:
        raise NvidiaSmiFailedError(
            f"nvidia-smi says GPU {index} has {int(memory_mib)} MiB of memory, which no GPU has: {line!r}",
            "check `nvidia-smi` on the host (the driver may be in a bad state), "
            "or set ACCELERATORS to plan for the GPUs you know are there",
        )
    if not name:
        raise NvidiaSmiFailedError(
            f"nvidia-smi gives GPU {index} no name: {line!r}",
            "check `nvidia-smi` on the host, or set ACCELERATORS to plan for the GPUs you know are there",
        )


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

Runner = Callable[[Sequence[str], Mapping[str, str], float], "subprocess.CompletedProcess[bytes]"]
_DRIVER_HINT = "check the NVIDIA driver on the host (`nvidia-smi` there), or set ACCELERATORS to plan without it"


class _Timeout(Exception):
    """nvidia-smi (or a process it started, holding its output open) did not finish in time."""


def _run(args: Sequence[str], environ: Mapping[str, str], timeout_s: float) -> subprocess.CompletedProcess[bytes]:
    """Run nvidia-smi for at most `timeout_s`, then kill it and everything it started.

    Not `subprocess.run(timeout=...)`: after the kill it reads the pipes to their end without a timeout, which
    is forever when a child of nvidia-smi keeps them open. Its own session makes its process group all of it.
    """
    process = subprocess.Popen(
        list(args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(environ),
        start_new_session=True,
    )
    try:
        stdout, stderr = _bounded_output(process, time.monotonic() + max(timeout_s, 0.0))
    except (_Timeout, _TooMuch):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        # A process stuck in the driver dies only when the kernel lets it go: reap it if it goes soon, else leave it.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=1)
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


# nvidia-smi prints well under a KiB a GPU: more than this is not nvidia-smi answering, and would fill memory.
OUTPUT_LIMIT = 1 * MIB


class _TooMuch(Exception):
    pass


def _bounded_output(process: subprocess.Popen[bytes], deadline: float) -> tuple[bytes, bytes]:
    """Its stdout and stderr to their end, each to OUTPUT_LIMIT, by `deadline`; then its exit status."""
    import selectors

    read: dict[int, bytearray] = {}
    with selectors.DefaultSelector() as selector:
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                selector.register(pipe, selectors.EVENT_READ)
                read[pipe.fileno()] = bytearray()
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Timeout
            for key, _ in selector.select(left):
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                read[key.fd] += data
                if len(read[key.fd]) > OUTPUT_LIMIT:
                    raise _TooMuch
    try:
        process.wait(timeout=max(deadline - time.monotonic(), 0.0))
    except subprocess.TimeoutExpired:
        raise _Timeout from None
    stdout, stderr = (bytes(read.get(pipe.fileno(), b"")) if pipe else b"" for pipe in (process.stdout, process.stderr))
    return stdout, stderr


def _ask(
    run: Runner, args: Sequence[str], environ: Mapping[str, str], deadline: float
) -> subprocess.CompletedProcess[bytes]:
    """One nvidia-smi call within what is left of DETECT_TIMEOUT_S; every way it can fail is an EntrypointError."""
    try:
        return run(args, environ, deadline - time.monotonic())
    except _TooMuch:
        raise NvidiaSmiFailedError(
            f"nvidia-smi printed more than {OUTPUT_LIMIT // MIB} MiB (it is not the driver's nvidia-smi)",
            _DRIVER_HINT,
        ) from None
    except _Timeout:
        raise NvidiaSmiFailedError(
            f"nvidia-smi did not answer within {DETECT_TIMEOUT_S:g} s (it hangs: a stuck driver or GPU)",
            _DRIVER_HINT,
        ) from None
    except OSError as exc:  # present but not a program: no x bit, noexec mount, wrong architecture, a directory
        raise NvidiaSmiFailedError(
            f"nvidia-smi at {args[0]} cannot be run: {exc.strerror or exc}", _DRIVER_HINT
        ) from None


def _text(output: bytes) -> str:
    """nvidia-smi's output as text; bytes that are not UTF-8 mean it is not nvidia-smi's usual CSV."""
    try:
        return output.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NvidiaSmiFailedError(
            f"nvidia-smi printed bytes that are not UTF-8 text (at byte {exc.start} of its output)", _DRIVER_HINT
        ) from None


def _unrunnable(search_path: str) -> str | None:
    """The first nvidia-smi on PATH that `shutil.which` skips because it cannot be run (no x bit, a directory)."""
    for folder in search_path.split(os.pathsep):
        candidate = os.path.join(folder, "nvidia-smi")
        if folder and os.path.exists(candidate):
            return candidate
    return None


def detect(environ: Mapping[str, str], run: Runner = _run) -> Hardware:
    """Run nvidia-smi and describe the visible GPUs; errors explain the fix."""
    deadline = time.monotonic() + DETECT_TIMEOUT_S
    search_path = environ.get("PATH", os.environ.get("PATH", os.defpath))
    binary = shutil.which("nvidia-smi", path=search_path)
    if binary is None:
        found = _unrunnable(search_path)
        if found is not None:
            # Something is there (a broken toolkit mount, a bad image): "start with --gpus" would mislead.
            reason = "it is a directory" if os.path.isdir(found) else "Permission denied (it is not executable)"
            raise NvidiaSmiFailedError(f"nvidia-smi at {found} cannot be run: {reason}", _DRIVER_HINT)
        raise NvidiaSmiMissingError(
            "nvidia-smi is not on PATH, so no GPU can be seen",
            "start the container with GPUs (docker run --gpus all ..., or the NVIDIA container toolkit), "
            "or set ACCELERATORS=H100:1 to plan without GPUs, or ACCELERATORS=cpu with ENGINE=vllm",
        )
    result = _ask(run, [binary, *QUERY_ARGS], environ, deadline)
    stdout = result.stdout.decode("utf-8", errors="replace")
    if result.returncode == 6 or "No devices were found" in stdout:
        raise NoGpuError("nvidia-smi found no GPU", "check `nvidia-smi` on the host and run with --gpus all")
    if result.returncode != 0:
        said = (result.stderr.decode("utf-8", errors="replace") or stdout).strip().splitlines()[:1] or ["(no output)"]
        raise NvidiaSmiFailedError(
            f"nvidia-smi failed with exit code {result.returncode}: {said[0][:300]}", _DRIVER_HINT
        )
    gpus = parse_query(_text(result.stdout))
    if any(gpu.mig for gpu in gpus):
        listing = _ask(run, [binary, "-L"], environ, deadline)
        migs = parse_mig_list(_text(listing.stdout), gpus)
        gpus = [gpu for gpu in gpus if not gpu.mig] + migs
    visible, notes = select_visible(gpus, environ)
    if not visible:
        raise NoGpuError(
            f"no GPU is visible ({'; '.join(notes) or 'nvidia-smi listed none'})",
            "unset CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES, or run with --gpus all",
        )
    return summarize(visible, notes)
