"""Running `python -m entrypoint` as the images do, in an environment of the test's making."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

from .paths import BASE_PATH, ROOT


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A minimal environment: no GPU tools, an empty HF cache, nothing from the developer's shell."""
    env = {
        "PATH": BASE_PATH,
        "HOME": str(tmp_path),
        "HF_HOME": str(tmp_path / "hf"),
        "PYTHONPATH": str(ROOT),
        "LANG": "C.UTF-8",
    }
    env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "entrypoint", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def start_cli(env: dict[str, str], **popen: object) -> subprocess.Popen[str]:
    """`python -m entrypoint` started as the image starts it; stdout and stderr are pipes unless `popen` says."""
    options: dict = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    return subprocess.Popen([sys.executable, "-m", "entrypoint"], env=env, cwd=ROOT, text=True, **options)


def plan_json(env: dict[str, str]) -> dict:
    result = run_cli(["plan", "--json"], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def report(env: dict[str, str]) -> dict:
    """What the stand-in engine recorded about how it was started (pid, argv, environment)."""
    with open(env["FAKE_ENGINE_REPORT"], encoding="utf-8") as handle:
        return json.load(handle)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pinned_version(engine: str) -> str:
    """The engine version a Dockerfile pins (`ARG VLLM_VERSION=...`): the one source the others are checked
    against."""
    text = (ROOT / f"Dockerfile.{engine}").read_text()
    match = re.search(rf"^ARG {engine.upper()}_VERSION=(\S+)$", text, re.M)
    assert match, f"Dockerfile.{engine} has no ARG {engine.upper()}_VERSION"
    return match.group(1)
