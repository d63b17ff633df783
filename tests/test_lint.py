"""ruff and mypy on our Python, yamllint on every YAML we ship, shellcheck on every shell script, and the image
workflow's shape."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.paths import ROOT, TESTS

BIN = Path(sys.executable).parent
BROKEN = TESTS / "fixtures" / "broken"
SHELL_SCRIPTS = [*sorted(ROOT.glob("scripts/*.sh")), ROOT / ".ci" / "run"]
WORKFLOW = ROOT / ".github" / "workflows" / "images.yml"


def yamllint(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "yamllint"), "-f", "parsable", "-c", str(ROOT / ".yamllint.yaml"), *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def shellcheck(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "shellcheck"), "-f", "gcc", *map(str, paths)], capture_output=True, text=True, cwd=ROOT
    )


def test_yamllint_passes_everything_we_ship():
    result = yamllint(ROOT / "compose.yaml", ROOT / "skypilot", ROOT / ".github")
    assert result.returncode == 0, result.stdout


def test_yamllint_rejects_a_broken_copy():
    result = yamllint(BROKEN / "yaml-duplicate-key.yaml")
    assert result.returncode == 1 and "key-duplicates" in result.stdout


def test_shellcheck_passes_every_script():
    assert len(SHELL_SCRIPTS) >= 3
    result = shellcheck(*SHELL_SCRIPTS)
    assert result.returncode == 0, result.stdout


def test_shellcheck_rejects_a_broken_copy():
    result = shellcheck(BROKEN / "test.sh")
    assert result.returncode == 1 and "SC2046" in result.stdout


def test_image_workflow_builds_and_smoke_tests_every_image():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    job = workflow["jobs"]["image"]
    matrix = job["strategy"]["matrix"]["include"]
    assert {(row["dockerfile"], row["variant"], row["prefix"]) for row in matrix} == {
        ("Dockerfile.sglang", "gpu", "sglang"),
        ("Dockerfile.vllm", "gpu", "vllm"),
        ("Dockerfile.vllm", "cpu", "vllm-cpu"),
    }
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    for expected in (
        "docker build -f ${{ matrix.dockerfile }}",
        "plan --json",
        "echo hi",
        "test $? -eq 20",
        "/v1/chat/completions",
        "PROJECT_VERSION=",
    ):
        assert expected in runs, expected
    # The tag step reads the same lines the tests and test-envs.sh read.
    for engine in ("VLLM", "SGLANG"):
        dockerfile = (ROOT / f"Dockerfile.{engine.lower()}").read_text()
        assert re.search(rf"^ARG {engine}_VERSION=\d+\.\d+\.\d+$", dockerfile, re.M)
    assert "_VERSION=//p" in runs and "entrypoint.__version__" in runs


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, cwd=ROOT)


def test_ruff_lint_and_format():
    """pyproject.toml [tool.ruff] decides the rules; one test each way would only restate them."""
    lint = run_tool("ruff", "check", "--output-format", "concise", "entrypoint", "tests", "bench")
    assert lint.returncode == 0, lint.stdout
    formatted = run_tool("ruff", "format", "--check", "entrypoint", "tests", "bench")
    assert formatted.returncode == 0, formatted.stdout


def test_ruff_rejects_a_broken_copy():
    result = run_tool("ruff", "check", "--no-cache", "--output-format", "concise", str(BROKEN / "lint_me.py"))
    assert result.returncode == 1 and "F401" in result.stdout and "B006" in result.stdout


def test_mypy_strict_on_entrypoint():
    result = run_tool("mypy")  # strict, on entrypoint/ (pyproject.toml [tool.mypy])
    assert result.returncode == 0, result.stdout


def test_mypy_rejects_a_broken_copy():
    result = run_tool("mypy", "--strict", "--no-incremental", str(BROKEN / "lint_me.py"))
    assert result.returncode == 1 and "Missing return statement" in result.stdout
