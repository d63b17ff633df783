"""Shared fixtures: generated model folders, the fake nvidia-smi, a CLI runner."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import modelgen

TESTS = Path(__file__).parent
ROOT = TESTS.parent
FAKE_BIN = TESTS / "bin"
NVIDIA_SMI_FIXTURES = TESTS / "fixtures" / "nvidia-smi"
FAKE_ENGINES = TESTS / "fake_engines"  # stand-in vllm / sglang server modules
# A PATH with the system tools but never a real nvidia-smi or engine.
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """models("Qwen2.5-7B-Instruct") -> folder with config.json and header-only shards (built once)."""
    root = tmp_path_factory.mktemp("models")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = modelgen.build(name, root)
        return built[name]

    return get


@pytest.fixture
def fake_gpus(tmp_path):
    """fake_gpus("h100x8") -> env entries putting a recorded nvidia-smi first on PATH."""

    def env(scenario: str) -> dict[str, str]:
        return {"PATH": f"{FAKE_BIN}:{BASE_PATH}", "FAKE_NVIDIA_SMI": str(NVIDIA_SMI_FIXTURES / scenario),
                "FAKE_NVIDIA_SMI_LOG": str(tmp_path / "nvidia-smi.log")}

    return env


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A minimal environment: no GPU tools, an empty HF cache, nothing from the developer's shell."""
    env = {"PATH": BASE_PATH, "HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"),
           "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "entrypoint", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def plan_json(env: dict[str, str]) -> dict:
    result = run_cli(["plan", "--json"], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def cli(tmp_path):
    """cli(args, **env) runs `python -m entrypoint` in a clean environment."""

    def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
        return run_cli(args, clean_env(tmp_path, **env))

    return run


@pytest.fixture(scope="session")
def engine_envs() -> dict[str, Path]:
    """{"vllm": venv, "sglang": venv, "skypilot": venv}: the real programs (scripts/test-envs.sh)."""
    envs = {name: os.environ.get(f"{name.upper()}_ENV") for name in ("vllm", "sglang", "skypilot")}
    if not all(envs.values()):
        # scripts/test.sh builds them first; a bare `pytest` builds (or reuses) them here.
        result = subprocess.run(["bash", str(ROOT / "scripts" / "test-envs.sh")], capture_output=True, text=True,
                                timeout=3600)
        assert result.returncode == 0, result.stderr[-4000:]
        found = dict(line.split("=", 1) for line in result.stdout.split())
        envs = {name: found[f"{name.upper()}_ENV"] for name in envs}
    return {name: Path(path) for name, path in envs.items()}


@pytest.fixture
def serve_env(tmp_path, models):
    """serve_env(engine, **env): a clean environment whose engine is the stand-in on PYTHONPATH."""
    def env(engine: str = "vllm", **extra: str) -> dict[str, str]:
        values = clean_env(tmp_path, TARGET_MODEL=str(models("Llama-3.1-8B-Instruct")), ENGINE=engine,
                           ACCELERATORS="H100:1", FAKE_ENGINE_REPORT=str(tmp_path / "engine.json"),
                           PYTHONPATH=f"{ROOT}{os.pathsep}{FAKE_ENGINES}")
        values.update(extra)
        return values

    return env


def report(env: dict[str, str]) -> dict:
    """What the stand-in engine recorded about how it was started (pid, argv, environment)."""
    with open(env["FAKE_ENGINE_REPORT"], encoding="utf-8") as handle:
        return json.load(handle)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pinned_version(engine: str) -> str:
    """The engine version a Dockerfile pins (`ARG VLLM_VERSION=...`): the one place it is written."""
    text = (ROOT / f"Dockerfile.{engine}").read_text()
    return re.search(rf"^ARG {engine.upper()}_VERSION=(\S+)$", text, re.M).group(1)
