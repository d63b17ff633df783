"""`python -m entrypoint plan` end to end, in a subprocess with a clean environment."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from tests.support.cli import clean_env, run_cli
from tests.support.paths import ROOT

REQUIRED_KEYS = {
    "engine",
    "tp",
    "pp",
    "dp",
    "ep",
    "gpu_count",
    "gpu_name",
    "gpu_memory_bytes",
    "max_model_len",
    "weight_bytes",
    "kv_bytes_per_token",
    "reasons",
}


def test_plan_json_from_detected_gpus(tmp_path, models, fake_gpus):
    env = clean_env(tmp_path, TARGET_MODEL=str(models("Llama-3.1-8B-Instruct")), ENGINE="vllm", **fake_gpus("h100x8"))
    result = run_cli(["plan", "--json"], env)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert set(plan) >= REQUIRED_KEYS
    assert (plan["engine"], plan["gpu_count"], plan["gpu_name"], plan["gpu_memory_bytes"]) == (
        "vllm",
        8,
        "NVIDIA H100 80GB HBM3",
        81559 * 2**20,
    )
    assert (plan["tp"], plan["dp"]) == (1, 8)
    assert all(isinstance(reason, str) and reason.endswith(".") for reason in plan["reasons"])


def test_plan_table_explains_itself(tmp_path, models):
    env = clean_env(tmp_path, TARGET_MODEL=str(models("Mixtral-8x7B-Instruct-v0.1")), ACCELERATORS="A100-80GB:2")
    result = run_cli(["plan"], env)
    assert result.returncode == 0, result.stderr
    for text in ("TP=2  PP=1  DP=1  EP=2", "memory per GPU", "KV cache", "why", "ep=2: 8 experts"):
        assert text in result.stdout


def test_accelerators_disagreeing_with_nvidia_smi_is_said(tmp_path, models, fake_gpus):
    env = clean_env(
        tmp_path, TARGET_MODEL=str(models("Qwen2.5-7B-Instruct")), ACCELERATORS="H100:4", **fake_gpus("h100x1")
    )
    plan = json.loads(run_cli(["plan", "--json"], env).stdout)
    assert plan["gpu_count"] == 4
    assert any("ACCELERATORS says H100:4 but nvidia-smi shows" in warning for warning in plan["warnings"])


@pytest.mark.parametrize(
    ("env", "code", "text"),
    [
        ({}, 20, "--gpus all"),  # no nvidia-smi, no ACCELERATORS
        ({"ACCELERATORS": "cpu", "ENGINE": "sglang"}, 13, "ENGINE=vllm"),
        ({"ACCELERATORS": "A100:4", "TARGET_MODEL": "@70b"}, 40, "ACCELERATORS=A100:8"),
        ({"ACCELERATORS": "H100:1", "TARGET_MODEL": "/no/such/folder"}, 30, "is not a folder"),
    ],
)
def test_cli_errors(tmp_path, models, env, code, text):
    target = env.pop("TARGET_MODEL", "@7b")
    target = {"@7b": str(models("Qwen2.5-7B-Instruct")), "@70b": str(models("Llama-3.1-70B-Instruct"))}.get(
        target, target
    )
    result = run_cli(["plan"], clean_env(tmp_path, TARGET_MODEL=target, **env))
    assert result.returncode == code, result.stderr
    assert text in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_failing_nvidia_smi(tmp_path, models, fake_gpus):
    env = clean_env(tmp_path, TARGET_MODEL=str(models("Qwen2.5-7B-Instruct")), **fake_gpus("driver-failure"))
    result = run_cli(["plan"], env)
    assert result.returncode == 21 and "NVIDIA-SMI has failed" in result.stderr


def test_cpu_path_plans_on_host_memory(tmp_path, models):
    env = clean_env(
        tmp_path,
        TARGET_MODEL=str(models("Qwen2.5-7B-Instruct")),
        ACCELERATORS="cpu",
        ENGINE="vllm",
        MAX_MODEL_LEN="2048",
        MEM_FRACTION="0.9",
    )
    result = run_cli(["plan", "--json"], env)
    if result.returncode == 40:  # a machine with less than ~17 GiB of RAM cannot hold the 7B model
        pytest.skip("not enough RAM on this machine for the 7B fixture")
    plan = json.loads(result.stdout)
    assert (plan["gpu_name"], plan["tp"], plan["dp"]) == ("cpu", 1, 1)


@pytest.mark.parametrize("flag", ["--help", "-h", "help"])
def test_help_needs_no_settings_and_lists_them(cli, flag):
    result = cli([flag])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m entrypoint")
    for name in ("TARGET_MODEL (required", "ENGINE (default sglang", "API_KEY (optional"):
        assert name in result.stdout


@pytest.mark.parametrize("flag", ["--version", "version"])
def test_version_names_the_tool_and_the_engine(cli, flag):
    from entrypoint import __version__

    result = cli([flag], ENGINE="vllm")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"inference-endpoint {__version__}"
    assert lines[1] == "vllm is not installed here"  # the test venv has no engine; the image's says its version


def test_help_among_engine_flags_goes_to_the_engine(serve_env):
    from tests.support.cli import report

    env = serve_env()
    assert run_cli(["--max-num-seqs", "8", "--help"], env).returncode == 0
    assert report(env)["argv"][-1] == "--help"


@pytest.mark.parametrize("args", [["plan", "--jsn"], ["plan", "extra"]])
def test_unknown_arguments_of_our_commands(cli, args):
    result = cli(args, TARGET_MODEL="m")
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: python -m entrypoint plan: unrecognized arguments") and "--help" in line


def in_a_shell(models, tmp_path, args: list[str], redirect: str) -> subprocess.CompletedProcess[str]:
    """`python -m entrypoint ARGS REDIRECT` as a shell runs it (pipes and closed descriptors are the shell's)."""
    env = clean_env(tmp_path, TARGET_MODEL=str(models("Llama-3.1-8B-Instruct")), ACCELERATORS="H100:1")
    return subprocess.run(
        f"{shlex.quote(sys.executable)} -m entrypoint {shlex.join(args)} {redirect}",
        shell=True,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_closed_pipe_is_quiet(models, tmp_path):
    """`plan | head -1`: the reader goes away early; no BrokenPipeError, no traceback."""
    pipeline = in_a_shell(models, tmp_path, ["plan"], "| head -c 1")
    assert pipeline.stdout == "p"
    assert pipeline.stderr == ""


@pytest.mark.parametrize(
    ("redirect", "args"),
    [
        (">&-", ["plan"]),  # stdout closed: Python starts with sys.stdout None
        (">/dev/full", ["plan"]),  # every write fails with ENOSPC, seen only when the buffer is flushed
        (">/dev/full", ["plan", "--json"]),
        (">/dev/full", ["help"]),
        (">&-", ["version"]),
    ],
)
def test_output_that_cannot_be_written_is_exit_74_not_a_bug(models, tmp_path, redirect, args):
    result = in_a_shell(models, tmp_path, args, redirect)
    assert result.returncode == 74, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: cannot write our output (")


def test_an_unexpected_failure_is_one_redacted_line(monkeypatch):
    """A bug of ours (here: the planner raising something no rule expects) is exit 70 and one line."""
    import io

    from entrypoint import cli as entry

    def broken(*args, **kwargs):
        raise KeyError("sk-unexpected-0123456789 \x1b[2J")

    monkeypatch.setattr(entry.launch, "plan_for", broken)
    stderr = io.StringIO()
    env = {"TARGET_MODEL": "m", "ACCELERATORS": "H100:1", "API_KEY": "sk-unexpected-0123456789"}
    assert entry.main(["plan"], env, io.StringIO(), stderr) == 70
    (line,) = stderr.getvalue().splitlines()
    assert line.startswith("error: unexpected KeyError: ") and "DEBUG=1" in line
    assert "sk-unexpected-0123456789" not in line and "\x1b" not in line


@pytest.mark.parametrize(
    ("env", "text"),
    [
        ({"METRICS_PORT": "8000"}, "METRICS_PORT=8000 is the same port as PORT=8000"),
        ({"PORT": "9400", "METRICS_PORT": "9400"}, "METRICS_PORT=9400 is the same port as PORT=9400"),
        (
            {"SKYPILOT_NUM_NODES": "2", "SKYPILOT_NODE_IPS": "10.0.0.1\n10.0.0.2", "DIST_PORT": "8000"},
            "DIST_PORT=8000 is the same port as PORT=8000",
        ),
    ],
)
def test_ports_must_differ(cli, env, text):
    result = cli(["plan"], TARGET_MODEL="m", ACCELERATORS="H100:1", **env)
    assert result.returncode == 10
    assert result.stderr.startswith(f"error: {text}")
