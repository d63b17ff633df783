"""GPU detection against recorded nvidia-smi outputs, and the ACCELERATORS catalog."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from entrypoint.errors import NoGpuError, NvidiaSmiFailedError, NvidiaSmiMissingError, UnknownAcceleratorError
from entrypoint.hardware import nvidia_smi as gpus
from entrypoint.hardware.catalog import GPUS, identify, lookup, parse_accelerators
from entrypoint.hardware.resolve import compare
from entrypoint.hardware.types import from_accelerators
from entrypoint.units import MIB
from tests.support import hostile
from tests.support.paths import BASE_PATH

GIB = 1024**3


@pytest.mark.parametrize(
    ("scenario", "count", "name", "memory_mib", "capability", "mig"),
    [
        ("h100x1", 1, "NVIDIA H100 80GB HBM3", 81559, "9.0", False),
        ("h100x8", 8, "NVIDIA H100 80GB HBM3", 81559, "9.0", False),
        ("mixed", 2, "NVIDIA A100-SXM4-40GB", 40960, "8.0", False),  # planned on the smallest
        ("mig", 3, "NVIDIA A100-SXM4-80GB MIG 1g.10gb", 10000, "8.0", True),
    ],
)
def test_detect_with_recorded_outputs(fake_gpus, scenario, count, name, memory_mib, capability, mig):
    hardware = gpus.detect(fake_gpus(scenario))
    assert (hardware.count, hardware.name, hardware.memory_bytes, hardware.capability, hardware.mig) == (
        count,
        name,
        memory_mib * MIB,
        capability,
        mig,
    )
    assert hardware.source == "nvidia-smi"


def test_mixed_gpus_are_reported(fake_gpus):
    notes = gpus.detect(fake_gpus("mixed")).notes
    assert any("mixed GPUs" in note and "A100-SXM4-40GB" in note for note in notes)


@pytest.mark.parametrize(
    ("scenario", "error", "text"),
    [
        ("driver-failure", NvidiaSmiFailedError, "exit code 9: NVIDIA-SMI has failed"),
        ("no-devices", NoGpuError, "found no GPU"),
        ("old-driver", NvidiaSmiFailedError, "exit code 2"),
    ],
)
def test_detect_failures(fake_gpus, scenario, error, text):
    with pytest.raises(error, match=text):
        gpus.detect(fake_gpus(scenario))


def test_missing_nvidia_smi_says_run_with_gpus():
    with pytest.raises(NvidiaSmiMissingError) as caught:
        gpus.detect({"PATH": "/usr/bin:/bin"})
    assert "--gpus all" in caught.value.hint


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ["0", "1", "2", "3", "4", "5", "6", "7"]),
        ({"CUDA_VISIBLE_DEVICES": "2,5"}, ["2", "5"]),
        ({"CUDA_VISIBLE_DEVICES": "GPU-30000000"}, ["3"]),
        ({"NVIDIA_VISIBLE_DEVICES": "all"}, ["0", "1", "2", "3", "4", "5", "6", "7"]),
        ({"NVIDIA_VISIBLE_DEVICES": "1,3"}, ["1", "3"]),
        ({"NVIDIA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7", "CUDA_VISIBLE_DEVICES": "7"}, ["7"]),
    ],
)
def test_visible_devices(fake_gpus, environ, expected):
    all_gpus = gpus.parse_query(Path(fake_gpus("h100x8")["FAKE_NVIDIA_SMI"], "query.csv").read_text())
    visible, _ = gpus.select_visible(all_gpus, environ)
    assert [gpu.index for gpu in visible] == expected


@pytest.mark.parametrize(
    "environ",
    [
        {"NVIDIA_VISIBLE_DEVICES": "void"},
        {"NVIDIA_VISIBLE_DEVICES": "none"},
        {"CUDA_VISIBLE_DEVICES": ""},
        {"CUDA_VISIBLE_DEVICES": "-1"},
    ],
)
def test_hidden_devices_are_an_error(fake_gpus, environ):
    with pytest.raises(NoGpuError, match="hides every GPU"):
        gpus.detect({**fake_gpus("h100x8"), **environ})


def test_visible_devices_pick_mig_instances(fake_gpus):
    hardware = gpus.detect({**fake_gpus("mig"), "CUDA_VISIBLE_DEVICES": "MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f"})
    assert (hardware.count, hardware.memory_bytes) == (1, 40000 * MIB)


@pytest.mark.parametrize(
    ("text", "name", "count"),
    [
        ("L4:1", "L4", 1),
        ("A100-80GB:2", "A100-80GB", 2),
        ("H100:4", "H100", 4),
        ("h100", "H100", 1),
        ("l40s:8", "L40S", 8),
        ("RTX6000-Ada:2", "RTX6000-Ada", 2),
        ("rtx4090", "RTX4090", 1),
        ("GH200:1", "GH200", 1),
        ("B300:8", "B300", 8),
        ("MI300X:8", "MI300X", 8),
        ("MI325X:8", "MI325X", 8),
        ("A6000:4", "A6000", 4),
    ],
)
def test_parse_accelerators(text, name, count):
    parsed = parse_accelerators(text)
    assert (parsed.spec.name, parsed.count) == (name, count)


def test_catalog_covers_the_required_gpus():
    names = {spec.name for spec in GPUS}
    assert {
        "L4",
        "A10G",
        "T4",
        "A100",
        "A100-80GB",
        "H100",
        "H200",
        "B200",
        "L40S",
        "A6000",
        "RTX6000-Ada",
        "RTX4090",
        "GH200",
        "B300",
        "MI300X",
        "MI325X",
    } <= names
    assert len({spec.name for spec in GPUS}) == len(GPUS)


def test_unknown_accelerator_lists_known_and_how_to_add():
    with pytest.raises(UnknownAcceleratorError) as caught:
        lookup("H1000")
    assert "H100" in caught.value.message and "entrypoint/hardware/catalog.py" in caught.value.hint


def test_compare_reports_disagreement(fake_gpus):
    planned = from_accelerators(parse_accelerators("H100:4"))
    detected = gpus.detect(fake_gpus("h100x1"))
    (note,) = compare(planned, detected)
    assert "1 visible, not 4" in note
    same = from_accelerators(parse_accelerators("H100:8"))
    assert compare(same, gpus.detect(fake_gpus("h100x8"))) == []


@pytest.mark.parametrize(
    ("detected", "memory_mib", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", 81559, "H100"),
        ("NVIDIA H100 NVL", 95830, "H100"),
        ("NVIDIA A100-SXM4-80GB", 81920, "A100-80GB"),  # the memory tells the two A100s apart
        ("NVIDIA A100-SXM4-40GB", 40960, "A100"),
        ("NVIDIA L4", 23034, "L4"),
        ("NVIDIA GH200 480GB", 97871, "GH200"),
        ("A100-80GB", 81920, "A100-80GB"),  # SkyPilot's own names (ACCELERATORS) too
        ("NVIDIA RTX A4000", 16376, None),
    ],
)
def test_identify_a_detected_gpu(detected, memory_mib, expected):
    spec = identify(detected, memory_mib * 2**20)
    assert (spec.name if spec else None) == expected


@pytest.mark.parametrize(
    ("scenario", "model"),
    [
        ("h100x1", "Llama-3.1-70B-Instruct"),
        ("h100x8", "DeepSeek-V3"),
        ("mixed", "Llama-3.1-70B-Instruct"),
        ("mig", "Llama-3.1-70B-Instruct"),
    ],
)
def test_hints_on_detected_gpus_name_catalogue_gpus(cli, fake_gpus, models, scenario, model):
    """nvidia-smi says "NVIDIA H100 80GB HBM3"; every ACCELERATORS=... a hint names must be one that
    ACCELERATORS accepts: a catalogue name, NVIDIA like the detected GPUs, at most one node's GPUs."""
    result = cli(["plan"], TARGET_MODEL=str(models(model)), **fake_gpus(scenario))
    assert result.returncode == 40, result.stderr
    (line,) = result.stderr.strip().splitlines()
    named = re.findall(r"ACCELERATORS=(\S+?)(?=[;)\s]|$)", line)
    assert named or scenario == "mig", line  # a MIG slice is no catalogue GPU: no count or bigger-GPU hint
    for value in named:
        parsed = parse_accelerators(value)
        assert parsed.spec.vendor == "nvidia" and parsed.count <= 8, line
    assert "NVIDIA" not in line.split("; try ", 1)[1]  # the detected name is in the message, never in a fix


def test_detected_gpu_is_resolved_to_its_catalogue_row(cli, fake_gpus, models):
    result = cli(["plan", "--json"], TARGET_MODEL=str(models("Qwen2.5-7B-Instruct")), **fake_gpus("h100x1"))
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert (plan["gpu_name"], plan["gpu_catalog_name"]) == ("NVIDIA H100 80GB HBM3", "H100")


@pytest.mark.parametrize("text", ["H100:0", "H100:17", "H100:99999999999", "H100:-1", "H100:2.5", ":4"])
def test_accelerator_counts_are_one_machines(text):
    with pytest.raises(ValueError):
        parse_accelerators(text)


# ---------------------------------------------------------------- an nvidia-smi that misbehaves

HUNG_TIMEOUT_S = 2.0  # DETECT_TIMEOUT_S in these tests (monkeypatched): the real 15 s waits for a slow driver
SLACK_S = 30.0  # what a busy machine may add: the bound proves "gave up", not how fast
# The broken nvidia-smis made here rather than recorded: git keeps no empty folder, and a copy may lose the x bit.
MADE = {
    "not-executable": b"#!/bin/sh\necho never\n",  # mode 644
    "exec-format": b"\x7fELF\x02\x01\x01 not a program for this machine",  # mode 755
    "directory": None,
    "endless": b"#!/bin/sh\nexec yes 0, NVIDIA H100 80GB HBM3, 81559, 9.0, GPU-x, Disabled\n",  # mode 755
}


@pytest.fixture
def broken_smi(fake_gpus, tmp_path, monkeypatch):
    """broken_smi(case) -> env entries putting that broken nvidia-smi first on PATH (a fixture folder or MADE)."""
    monkeypatch.setattr(gpus, "DETECT_TIMEOUT_S", HUNG_TIMEOUT_S)

    def env(case: str) -> dict[str, str]:
        if case not in MADE:
            return fake_gpus(case)
        folder = tmp_path / case
        folder.mkdir()
        smi = folder / "nvidia-smi"
        content = MADE[case]
        if content is None:
            smi.mkdir()
        else:
            smi.write_bytes(content)
            smi.chmod(0o644 if case == "not-executable" else 0o755)
        return {"PATH": f"{folder}:{BASE_PATH}"}

    return env


def timed(took: list[float]):
    """hostile.run that appends how long each call took to `took`."""

    def run(args, env):
        began = time.monotonic()
        try:
            return hostile.run(args, env)
        finally:
            took.append(time.monotonic() - began)

    return run


@pytest.mark.parametrize(
    ("case", "text"),
    [
        ("hung", f"nvidia-smi did not answer within {HUNG_TIMEOUT_S:g} s"),  # never exits
        ("hung-child", f"nvidia-smi did not answer within {HUNG_TIMEOUT_S:g} s"),  # exits; a child holds its stdout
        ("not-executable", "cannot be run: Permission denied"),
        ("directory", "cannot be run: it is a directory"),
        ("exec-format", "cannot be run: Exec format error"),
        ("not-utf8", "nvidia-smi printed bytes that are not UTF-8 text"),
        ("zero-memory", "nvidia-smi says GPU 0 has 0 MiB of memory"),  # was a ZeroDivisionError in planning (70)
        ("huge-memory", "nvidia-smi says GPU 0 has 99999999999 MiB of memory"),
        ("no-name", "nvidia-smi gives GPU 0 no name"),
        ("na-memory", "nvidia-smi gives no memory size for GPU 0 ([N/A])"),
        ("endless", "nvidia-smi printed more than 1 MiB"),  # would have filled memory for 15 s
    ],
)
def test_a_misbehaving_nvidia_smi_is_one_line_and_exit_21(broken_smi, models, case, text):
    """Each is nvidia-smi's failure (21), never a bug of ours (70): one `error:` line naming nvidia-smi, in
    bounded time, with and without DEBUG (hostile.refused)."""
    took: list[float] = []
    env = {"TARGET_MODEL": str(models("Qwen2.5-7B-Instruct")), **broken_smi(case)}
    hostile.refused(env, 21, "nvidia-smi", ("plan",), text=text, runner=timed(took))
    assert max(took) < HUNG_TIMEOUT_S + SLACK_S, took


def _gone(pid: int) -> bool:
    """The process has ended (a zombie waiting for its reaper counts), within a few seconds."""
    for _ in range(100):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("case", ["hung", "hung-child"])
def test_a_hung_nvidia_smi_is_killed_with_what_it_started(broken_smi, case):
    env = broken_smi(case)
    with pytest.raises(NvidiaSmiFailedError, match="did not answer"):
        gpus.detect(env)
    child = int(Path(env["FAKE_NVIDIA_SMI_LOG"] + ".child").read_text())
    assert _gone(child), f"nvidia-smi's child {child} outlived the timeout"


@pytest.mark.parametrize("case", ["hung", "hung-child", "not-executable", "directory", "not-utf8", "zero-memory"])
def test_accelerators_plan_on_past_a_misbehaving_nvidia_smi(broken_smi, models, case):
    """With ACCELERATORS, nvidia-smi only confirms: its failure is one warning in the plan, not the end of it."""
    env = {
        "HF_HUB_OFFLINE": "1",
        "TARGET_MODEL": str(models("Qwen2.5-7B-Instruct")),
        "ACCELERATORS": "H100:1",
        **broken_smi(case),
    }
    took: list[float] = []
    code, out, err = timed(took)(["plan"], env)
    assert code == 0, err
    assert "error" not in err, err
    (warning,) = [line for line in out.splitlines() if "nvidia-smi could not confirm" in line]
    assert warning.startswith("  ! ACCELERATORS is set but nvidia-smi could not confirm it: nvidia-smi "), warning
    assert took[0] < HUNG_TIMEOUT_S + SLACK_S, took


# ---------------------------------------------------------------- the CPU path's memory (hardware.host)

NODE_MEMINFO = """Node 0 MemTotal:       14113860 kB
Node 0 MemFree:        6000000 kB
Node 0 MemUsed:         8113860 kB
Node 0 Active(file):    1000000 kB
Node 0 Inactive(file):   500000 kB
Node 0 SReclaimable:     170000 kB
"""
PROC_MEMINFO = "MemTotal:       24683652 kB\nMemFree:        1000 kB\nMemAvailable:   20000000 kB\n"


def fake_root(tmp_path: Path, numa: bool = True, cgroup: dict[str, str] | None = None) -> str:
    """A / with the files hardware.host reads: the CPU's node link, node and proc meminfo, cgroup files."""
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "meminfo").write_text(PROC_MEMINFO)
    if numa:
        (tmp_path / "sys/devices/system/cpu/cpu0/node0").mkdir(parents=True)
        (tmp_path / "sys/devices/system/node/node0").mkdir(parents=True)
        (tmp_path / "sys/devices/system/node/node0/meminfo").write_text(NODE_MEMINFO)
    for name, text in (cgroup or {}).items():
        path = tmp_path / "sys/fs/cgroup" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(tmp_path)


GIB_KB = 1024 * 1024


@pytest.mark.parametrize(
    ("numa", "cgroup", "total_kb", "available_kb", "node", "limited"),
    [
        # vLLM's sum: MemFree + Active(file) + Inactive(file) + SReclaimable of the node, not the host.
        (True, {}, 14113860, 6000000 + 1000000 + 500000 + 170000, 0, False),
        (False, {}, 24683652, 20000000, None, False),  # no NUMA in sysfs: the host's MemAvailable
        # docker run --memory=8g (cgroup v2): the limit is the total, limit - usage bounds what is available.
        (
            True,
            {"memory.max": str(8 * GIB_KB * 1024), "memory.current": str(3 * GIB_KB * 1024)},
            8 * GIB_KB,
            5 * GIB_KB,
            0,
            True,
        ),
        (True, {"memory.max": "max\n"}, 14113860, 7670000, 0, False),
        # cgroup v1: the near-2^63 sentinel is no limit; a real limit above the node's memory changes nothing.
        (True, {"memory/memory.limit_in_bytes": "9223372036854771712"}, 14113860, 7670000, 0, False),
        (True, {"memory/memory.limit_in_bytes": str(64 * GIB_KB * 1024)}, 14113860, 7670000, 0, False),
        (
            True,
            {"memory/memory.limit_in_bytes": str(4 * GIB_KB * 1024), "memory/memory.usage_in_bytes": "0"},
            4 * GIB_KB,
            4 * GIB_KB,
            0,
            True,
        ),
    ],
)
def test_cpu_memory_as_the_vllm_worker_measures_it(tmp_path, numa, cgroup, total_kb, available_kb, node, limited):
    from entrypoint.hardware import host

    memory = host.read(fake_root(tmp_path, numa, cgroup))
    assert (memory.total_bytes, memory.available_bytes, memory.node) == (total_kb * 1024, available_kb * 1024, node)
    assert (memory.cgroup_limit_bytes is not None) == limited


def test_cpu_plan_is_bounded_by_what_is_available(models):
    """A 32 GiB machine with 12 GiB available: the budget is what is available, not 0.85 x 32 GiB (what vLLM's
    CPU worker would refuse), and the KV cache is that minus the weights and the reserve."""
    from dataclasses import replace

    from entrypoint.hardware.catalog import Accelerators
    from tests.support.planning import plan_env

    cpu = replace(from_accelerators(Accelerators(None, 1), 32 * 2**30), available_bytes=12 * 2**30)
    _, plan = plan_env({"TARGET_MODEL": str(models("Qwen2.5-7B-Instruct-AWQ")), "ENGINE": "vllm"}, hardware=cpu)
    memory = plan.memory_per_gpu
    assert memory.budget_bytes == 12 * 2**30
    # vLLM takes the CPU KV cache in whole GiB (VLLM_CPU_KVCACHE_SPACE): the plan counts what it will get.
    left = memory.budget_bytes - memory.weight_bytes - memory.reserve_bytes
    assert memory.kv_cache_bytes == left // 2**30 * 2**30
    roomy = replace(cpu, available_bytes=31 * 2**30)
    _, plan = plan_env({"TARGET_MODEL": str(models("Qwen2.5-7B-Instruct-AWQ")), "ENGINE": "vllm"}, hardware=roomy)
    assert plan.memory_per_gpu.budget_bytes == int(32 * 2**30 * 0.92)  # vLLM's own --gpu-memory-utilization


@pytest.mark.engines
def test_cpu_memory_matches_vllms_own_reading(engine_envs):
    """On this machine, against vllm-cpu's own get_memory_node_info, read back to back in one process (memory
    moves while other tests run): the same total, and the same available memory within 64 MiB."""
    import subprocess

    from tests.support.paths import ROOT

    code = (
        "from vllm.utils.cpu_resource_utils import get_memory_node_info as info, get_allowed_cpu_list as cpus;"
        "from entrypoint.hardware import host;"
        "m = info(cpus()[0].numa_node); ours = host.read();"
        "print(m.total_memory, m.available_memory, ours.total_bytes, ours.available_bytes)"
    )
    result = subprocess.run(
        [str(engine_envs["vllm"] / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    total, available, our_total, our_available = map(int, result.stdout.split()[-4:])
    assert our_total == total
    assert abs(our_available - available) < 64 * 2**20
