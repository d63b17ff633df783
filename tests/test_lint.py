"""yamllint on every YAML we ship, shellcheck on every shell script, and the image workflow's shape."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import ROOT, TESTS

BIN = Path(sys.executable).parent
BROKEN = TESTS / "fixtures" / "broken"
SHELL_SCRIPTS = sorted(ROOT.glob("scripts/*.sh")) + [ROOT / ".ci" / "run"]
WORKFLOW = ROOT / ".github" / "workflows" / "images.yml"


def yamllint(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "yamllint"), "-f", "parsable", "-c", str(ROOT / ".yamllint.yaml"),
                           *map(str, paths)], capture_output=True, text=True, cwd=ROOT)


def shellcheck(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "shellcheck"), "-f", "gcc", *map(str, paths)], capture_output=True, text=True,
                          cwd=ROOT)


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
        ("Dockerfile.sglang", "gpu", "sglang"), ("Dockerfile.vllm", "gpu", "vllm"), ("Dockerfile.vllm", "cpu", "vllm-cpu")}
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    for expected in ("docker build -f ${{ matrix.dockerfile }}", "plan --json", "echo hi", "test $? -eq 20",
                     "/v1/chat/completions", "PROJECT_VERSION="):
        assert expected in runs, expected
    # The tag step reads the same lines the tests and test-envs.sh read.
    for engine in ("VLLM", "SGLANG"):
        dockerfile = (ROOT / f"Dockerfile.{engine.lower()}").read_text()
        assert re.search(rf"^ARG {engine}_VERSION=\d+\.\d+\.\d+$", dockerfile, re.M)
    assert "_VERSION=//p" in runs and "entrypoint.__version__" in runs
