"""Fixtures: generated model folders, the recorded nvidia-smi, stand-in engines, and the real engines.

Tiers (markers registered in pyproject.toml):
- no marker: in-process or stand-in programs only; `bash scripts/test.sh -m "not engines and not e2e" -n 2`.
- `engines`: a real engine's parser, registry or collectors, or SkyPilot's parser (their environments are
  built on first use, scripts/test-envs.sh). Added here to every test that uses `engine_envs` or
  `engine_parser`, so the fast tier can never build an environment.
- `e2e`: a real vLLM server on the CPU (test_endpoint_cpu*.py mark themselves).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import modelgen
from tests.support.cli import clean_env, run_cli
from tests.support.engine_parser import EngineParser
from tests.support.paths import BASE_PATH, FAKE_BIN, FAKE_ENGINES, NVIDIA_SMI_FIXTURES, ROOT, TESTS

ENGINE_FIXTURES = {"engine_envs", "engine_parser"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        uses = ENGINE_FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses and not item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.engines)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """models("Qwen2.5-7B-Instruct") -> folder with config.json and header-only shards (built once)."""
    root = tmp_path_factory.mktemp("models")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = modelgen.build(name, root)
        return built[name]

    return get


@pytest.fixture
def fake_gpus(tmp_path: Path) -> Callable[[str], dict[str, str]]:
    """fake_gpus("h100x8") -> env entries putting a recorded nvidia-smi first on PATH."""

    def env(scenario: str) -> dict[str, str]:
        return {
            "PATH": f"{FAKE_BIN}:{BASE_PATH}",
            "FAKE_NVIDIA_SMI": str(NVIDIA_SMI_FIXTURES / scenario),
            "FAKE_NVIDIA_SMI_LOG": str(tmp_path / "nvidia-smi.log"),
        }

    return env


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """cli(args, **env) runs `python -m entrypoint` in a clean environment."""

    def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
        return run_cli(args, clean_env(tmp_path, **env))

    return run


class EngineEnvs:
    """{"vllm": venv, "sglang": venv, "skypilot": venv}, each built (or found) only when a test asks for it."""

    def __init__(self) -> None:
        self.found: dict[str, Path] = {}

    def __getitem__(self, name: str) -> Path:
        if name not in self.found:
            given = os.environ.get(f"{name.upper()}_ENV")
            self.found[name] = Path(given) if given else self._build(name)
        return self.found[name]

    @staticmethod
    def _build(name: str) -> Path:
        result = subprocess.run(
            ["bash", str(ROOT / "scripts" / "test-envs.sh"), name],
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        return Path(result.stdout.strip().split("=", 1)[1])


@pytest.fixture(scope="session")
def engine_envs() -> EngineEnvs:
    """The real programs' environments (tests that use them are marked `engines`)."""
    return EngineEnvs()


@pytest.fixture(scope="session")
def engine_parser(
    engine_envs: EngineEnvs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str, list[list[str]]], dict]]:
    """engine_parser("vllm", argvs) -> the pinned engine's own parser on each argv (one process per engine)."""
    parsers: dict[str, EngineParser] = {}

    def parse(engine: str, argvs: list[list[str]]) -> dict:
        if engine not in parsers:
            log = tmp_path_factory.mktemp(f"{engine}-parser") / "stderr.log"
            parsers[engine] = EngineParser(engine_envs[engine] / "bin" / "python", engine, log)
        return parsers[engine].parse(argvs)

    yield parse
    for parser in parsers.values():
        parser.close()


@pytest.fixture
def serve_env(tmp_path: Path, models: Callable[[str], Path]) -> Callable[..., dict[str, str]]:
    """serve_env(engine, **env): a clean environment whose engine is the stand-in on PYTHONPATH."""

    def env(engine: str = "vllm", **extra: str) -> dict[str, str]:
        values = clean_env(
            tmp_path,
            TARGET_MODEL=str(models("Llama-3.1-8B-Instruct")),
            ENGINE=engine,
            ACCELERATORS="H100:1",
            FAKE_ENGINE_REPORT=str(tmp_path / "engine.json"),
            PYTHONPATH=f"{ROOT}{os.pathsep}{FAKE_ENGINES}",
        )
        values.update(extra)
        return values

    return env


def _built_in_vllm_env(
    engine_envs: EngineEnvs, tmp_path_factory: pytest.TempPathFactory, script: str, name: str
) -> Path:
    """A tiny random model written by `tests/engines/<script>` with the vLLM environment's torch and transformers."""
    folder = tmp_path_factory.mktemp(name)
    subprocess.run(
        [str(engine_envs["vllm"] / "bin" / "python"), str(TESTS / "engines" / script), str(folder)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return folder


@pytest.fixture(scope="session")
def tiny_model(engine_envs: EngineEnvs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Llama vLLM serves on the CPU (tests/engines/make_tiny_model.py), built once."""
    return _built_in_vllm_env(engine_envs, tmp_path_factory, "make_tiny_model.py", "tiny-llama")


@pytest.fixture(scope="session")
def tiny_bert(engine_envs: EngineEnvs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BertModel vLLM serves on the CPU for embeddings (tests/engines/make_tiny_bert.py)."""
    return _built_in_vllm_env(engine_envs, tmp_path_factory, "make_tiny_bert.py", "tiny-bert")


# ---------------------------------------------------------------- no process left behind

# What a test's engine leaves when its process group is not ended: vLLM's API server, EngineCore and workers,
# multiprocessing's resource tracker, a stand-in engine's child.
STRAY_MARKERS = ("vllm", "VLLM::", "resource_tracker", "sglang", "fake_engine", "time.sleep(600)")
_SESSION_STARTED = float(Path("/proc/uptime").read_text().split()[0])  # seconds since boot, as /proc/<pid>/stat counts


def stray_processes(orphans_only: bool = True) -> list[str]:
    """Processes of ours started during this session that an ended test left orphaned (parent 1); with
    orphans_only=False, any of ours still alive."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state, parent, started = fields[0], int(fields[1]), int(fields[19]) / ticks
        orphan = parent == 1 or not orphans_only
        if state != "Z" and orphan and started >= _SESSION_STARTED and any(m in command for m in STRAY_MARKERS):
            found.append(f"{entry.name}: {command[:160]}")
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a test left an engine process running (each test must end its whole group)."""
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller checks once, at the end
        return
    left = stray_processes()
    if not left and stray_processes(orphans_only=False):
        # A killed server's processes become orphans a moment after it dies (vLLM's EngineCore outlives its
        # API server): look again once they had the time to.
        time.sleep(3)
        left = stray_processes()
    if left:
        print("\nerror: processes left running by the tests:\n  " + "\n  ".join(left))
        for line in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(line.split(":", 1)[0]), 9)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
