"""Every "try ..." a refusal prints is itself a plan the whole planner accepts: each suggestion is parsed out of
the printed line, applied to the settings, and planned again through `python -m entrypoint plan`."""

from __future__ import annotations

import io
import re

import pytest

from entrypoint import cli
from entrypoint.settings import BY_NAME

ASSIGNMENT = re.compile(r"\b([A-Z][A-Z0-9_]+)=([^\s;,()]+)")
NODES = re.compile(r"\b(\d+) nodes of ")
UNSET = re.compile(r"\b([A-Z][A-Z0-9_]+)\b")


def run(env: dict[str, str]) -> tuple[int, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = cli.main(["plan"], {"PATH": "/usr/bin:/bin", **env}, stdout, stderr)
    return code, stderr.getvalue()


def suggestions(line: str) -> list[dict[str, str]]:
    """The settings each `try A; or B` suggestion names; `N nodes of ...` is SkyPilot's node count."""
    assert "; try " in line, line
    fixes = []
    for text in line.split("; try ", 1)[1].split("; or "):
        changes = dict(ASSIGNMENT.findall(text))
        if text.startswith("unset "):
            changes = {name: "" for name in UNSET.findall(text.split("(")[0])}
        nodes = NODES.search(text)
        if nodes:
            count = int(nodes.group(1))
            changes["SKYPILOT_NUM_NODES"] = str(count)
            changes["SKYPILOT_NODE_IPS"] = "\n".join(f"10.0.0.{rank + 1}" for rank in range(count))
        assert changes, f"a suggestion that names no setting: {text!r}"
        assert set(changes) <= set(BY_NAME), f"a suggestion names no setting of ours: {text!r}"
        fixes.append(changes)
    return fixes


# (model, ACCELERATORS, other settings, a suggestion that must be among them or None)
REFUSED = [
    ("Llama-3.1-70B-Instruct", "A100:4", {}, "ACCELERATORS=A100:8"),
    ("Llama-3.1-70B-Instruct", "A100:2", {"ENGINE": "vllm"}, "QUANTIZATION=fp8"),
    # sglang's own fraction on an L4 (0.684) cannot hold 8B; the smallest MEM_FRACTION that can is named.
    ("Llama-3.1-8B-Instruct", "L4:1", {}, "MEM_FRACTION=0.72 (now 0.684"),
    ("Llama-3.1-70B-Instruct", "L4:1", {}, "ACCELERATORS=L4:8"),
    ("Llama-3.1-70B-Instruct", "H100:1", {"MAX_MODEL_LEN": "131072"}, "ACCELERATORS=B300:1"),
    ("Llama-3.1-405B-Instruct", "H100:8", {}, "2 nodes of ACCELERATORS=H100:8"),
    ("DeepSeek-V3", "H100:8", {}, "2 nodes of ACCELERATORS=H100:8"),
    # Turing and Volta: no bfloat16 (planned float16), no FP8 at all (never suggested there).
    ("Llama-3.1-8B-Instruct", "T4:1", {}, "ACCELERATORS=T4:2"),
    ("Llama-3.1-70B-Instruct", "V100-32GB:2", {}, "ACCELERATORS=V100-32GB:8"),
    # An FP8 checkpoint on an Ampere A10 (weight-only FP8): the bigger GPU must run FP8 too, so never the
    # larger V100-32GB, which the engines refuse FP8 on.
    ("Qwen3-14B-FP8", "A10:1", {"MAX_MODEL_LEN": "40960"}, None),
    ("Mixtral-8x7B-Instruct-v0.1", "A10G:2", {}, "ACCELERATORS=A10G:8"),
    ("Llama-3.1-8B-Instruct", "L4:1", {"MAX_MODEL_LEN": "131072", "MEM_FRACTION": "0.5"}, None),
    # Pins that cannot hold it: letting the planner choose is a fix of its own, and every other fix keeps them.
    (
        "Llama-3.1-70B-Instruct",
        "H100:4",
        {"TENSOR_PARALLEL_SIZE": "1", "PIPELINE_PARALLEL_SIZE": "1"},
        "unset TENSOR_PARALLEL_SIZE and PIPELINE_PARALLEL_SIZE",
    ),
    ("Llama-3.1-70B-Instruct", "H100:8", {"DATA_PARALLEL_SIZE": "8"}, "unset DATA_PARALLEL_SIZE"),
]


@pytest.mark.parametrize(("name", "accelerators", "env", "expected"), REFUSED)
def test_every_printed_fix_plans(models, name, accelerators, env, expected):
    base = {"TARGET_MODEL": str(models(name)), "ACCELERATORS": accelerators, **env}
    code, err = run(base)
    assert code == 40, err
    (line,) = err.splitlines()
    if expected:
        assert expected in line
    fixes = suggestions(line)
    assert fixes
    for changes in fixes:
        code, err = run({**base, **changes})
        assert code == 0, f"{changes} was suggested but is refused: {err}"


def test_an_fp8_checkpoint_is_never_sent_to_a_gpu_without_fp8(models):
    code, err = run({"TARGET_MODEL": str(models("Qwen3-14B-FP8")), "ACCELERATORS": "A10:1", "MAX_MODEL_LEN": "40960"})
    assert code == 40 and "V100" not in err and "T4" not in err, err


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_amd_gpus_are_refused_by_the_cuda_images(models, engine):
    code, err = run(
        {"TARGET_MODEL": str(models("Llama-3.1-8B-Instruct")), "ACCELERATORS": "MI300X:8", "ENGINE": engine}
    )
    assert code == 13
    assert err.startswith(f"error: ACCELERATORS=MI300X is an AMD GPU, but this image's {engine} is built for NVIDIA")


def test_the_cpu_path_is_never_offered_gpus(models):
    code, err = run({"TARGET_MODEL": str(models("Llama-3.1-70B-Instruct")), "ACCELERATORS": "cpu", "ENGINE": "vllm"})
    assert code == 40, err
    assert err.startswith(f"error: {models('Llama-3.1-70B-Instruct')} needs 131.4 GiB of weights"), err
    assert "the CPU path has" in err and "available now" in err  # from the node's meminfo, not MemTotal
    assert "ACCELERATORS=" not in err and "try " not in err
