"""The two Dockerfiles: hadolint, their structure, and what the image runs, run here.

No Docker engine exists on these machines, so the images are built and
smoke-tested by .github/workflows/images.yml where one does. Here: the real
hadolint binary, dockerfile-parse for structure (pinned base = the version the
contract tests parse with, exec-form ENTRYPOINT, EXPOSE, HEALTHCHECK, labels),
and the image's own environment replayed around a copy of what COPY puts in.
Each check also runs on a deliberately broken copy kept in tests/fixtures/broken.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from tests.support.paths import BASE_PATH, FAKE_BIN, ROOT, TESTS

VENV_BIN = Path(sys.executable).parent
BROKEN = TESTS / "fixtures" / "broken"
BASE_IMAGES = {"vllm": "vllm/vllm-openai:v{version}", "sglang": "lmsysorg/sglang:v{version}-runtime"}
VERSION_ARG = {"vllm": "VLLM_VERSION", "sglang": "SGLANG_VERSION"}


def hadolint(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "hadolint"), "--no-color", *map(str, paths)], capture_output=True, text=True, cwd=ROOT
    )


def parse(path: Path, **build_args: str) -> DockerfileParser:
    # path= would be taken as a folder holding "Dockerfile"; fileobj reads this file.
    return DockerfileParser(fileobj=io.BytesIO(path.read_bytes()), build_args=build_args or None)


def structure_problems(path: Path, engine: str, tested_version: str) -> list[str]:
    """What is wrong with a Dockerfile for `engine`, or [] (the checks hadolint does not make)."""
    parser = parse(path)
    problems = []
    args = {
        item["value"].split("=", 1)[0]: item["value"].split("=", 1)[1]
        for item in parser.structure
        if item["instruction"] == "ARG" and "=" in item["value"]
    }
    version = args.get(VERSION_ARG[engine])
    if version != tested_version:
        problems.append(f"ARG {VERSION_ARG[engine]}={version}, but the contract tests ran {engine} {tested_version}")
    expected_base = BASE_IMAGES[engine].format(version=tested_version)
    if expected_base not in parser.parent_images:
        problems.append(f"no FROM {expected_base} (has {parser.parent_images})")
    instructions = {item["instruction"]: item["value"] for item in parser.structure}
    try:
        entrypoint = json.loads(instructions.get("ENTRYPOINT", ""))
    except ValueError:
        entrypoint = None
    if entrypoint != ["python3", "-m", "entrypoint"]:
        problems.append(f"ENTRYPOINT is not the exec form [python3, -m, entrypoint]: {instructions.get('ENTRYPOINT')}")
    if instructions.get("EXPOSE") != "8000":
        problems.append(f"EXPOSE is {instructions.get('EXPOSE')}, not 8000")
    healthcheck = instructions.get("HEALTHCHECK", "")
    if '"entrypoint", "health"' not in healthcheck or "API_KEY" in healthcheck:
        problems.append(f"HEALTHCHECK must run `python3 -m entrypoint health` without a key: {healthcheck!r}")
    if parser.envs.get("ENGINE") != engine or parser.envs.get("PORT") != "8000":
        problems.append(f"ENV ENGINE/PORT are {parser.envs.get('ENGINE')}/{parser.envs.get('PORT')}")
    if parser.labels.get("io.inference-endpoint.engine.version") != tested_version:
        problems.append("label io.inference-endpoint.engine.version does not carry the engine version")
    if not any(item["instruction"] == "COPY" and item["value"].startswith("entrypoint ") for item in parser.structure):
        problems.append("the entrypoint package is not copied in")
    if any(item["instruction"] == "RUN" and "pip" in item["value"] for item in parser.structure):
        problems.append("RUN pip: the image must not pull new packages")
    return problems


@pytest.fixture(scope="module")
def tested_versions(engine_parser) -> dict[str, str]:
    """The versions the contract tests really parsed with, as the installed engines report them."""
    return {engine: engine_parser(engine, [])["facts"]["version"] for engine in ("vllm", "sglang")}


def test_hadolint_passes_both_dockerfiles():
    result = hadolint(ROOT / "Dockerfile.vllm", ROOT / "Dockerfile.sglang")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_structure(engine, tested_versions):
    assert structure_problems(ROOT / f"Dockerfile.{engine}", engine, tested_versions[engine]) == []


def test_cpu_variant_plans_for_the_cpu():
    parser = parse(ROOT / "Dockerfile.vllm", VARIANT="cpu")
    assert "vllm/vllm-openai-cpu:v0.32.0-x86_64" in parser.parent_images
    stage = (ROOT / "Dockerfile.vllm").read_text().split("AS base-cpu", 1)[1].split("FROM ", 1)[0]
    assert "ENV ACCELERATORS=cpu" in stage


@pytest.mark.parametrize(
    ("broken", "engine", "found"),
    [
        ("Dockerfile.vllm-latest", "vllm", "DL3007"),  # FROM ...:latest
        ("Dockerfile.sglang-shell-entrypoint", "sglang", "DL3025"),  # ENTRYPOINT python3 -m entrypoint
    ],
)
def test_hadolint_rejects_broken_copies(broken, engine, found):
    result = hadolint(BROKEN / broken)
    assert result.returncode == 1 and found in result.stdout


@pytest.mark.parametrize(
    ("broken", "engine", "found"),
    [
        ("Dockerfile.vllm-latest", "vllm", "ARG VLLM_VERSION=None"),
        ("Dockerfile.sglang-shell-entrypoint", "sglang", "ENTRYPOINT is not the exec form"),
        ("Dockerfile.sglang-untested-version", "sglang", "but the contract tests ran sglang"),
        ("Dockerfile.vllm-no-healthcheck", "vllm", "HEALTHCHECK must run"),
    ],
)
def test_structure_rejects_broken_copies(broken, engine, found, tested_versions):
    problems = structure_problems(BROKEN / broken, engine, tested_versions[engine])
    assert any(found in problem for problem in problems), problems


# ---------------------------------------------------------------- what the image runs, replayed here


def image_env(tmp_path: Path, dockerfile: str, **build_args: str) -> dict[str, str]:
    """The image's ENV with its COPY replayed into tmp_path (the same relative layout)."""
    parser = parse(ROOT / dockerfile, **build_args)
    opt = tmp_path / "opt" / "inference-endpoint"
    shutil.copytree(ROOT / "entrypoint", opt / "entrypoint")
    env = dict(parser.envs)
    if build_args.get("VARIANT") == "cpu":
        env["ACCELERATORS"] = "cpu"  # ENV of the base-cpu stage, inherited by the final one
    env.update(
        PYTHONPATH=env["PYTHONPATH"].replace("/opt/inference-endpoint", str(opt)),
        PATH=BASE_PATH,
        HOME=str(tmp_path),
        HF_HOME=str(tmp_path / "hf"),
    )
    return env


def run_image(python: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, "-m", "entrypoint", *args], env=env, capture_output=True, text=True, cwd="/", timeout=120
    )


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_image_plan_json_with_accelerators(engine, engine_envs, models, tmp_path):
    env = image_env(tmp_path, f"Dockerfile.{engine}")
    env.update(TARGET_MODEL=str(models("Qwen2.5-7B-Instruct")), ACCELERATORS="H100:1")
    result = run_image(str(engine_envs[engine] / "bin" / "python"), env, "plan", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["engine"] == engine and plan["argv"][plan["argv"].index("--port") + 1] == "8000"


def test_image_without_gpus_says_so(engine_envs, models, tmp_path):
    env = image_env(tmp_path, "Dockerfile.sglang")
    env["TARGET_MODEL"] = str(models("Qwen2.5-7B-Instruct"))
    result = run_image(str(engine_envs["sglang"] / "bin" / "python"), env)
    assert result.returncode == 20 and "--gpus all" in result.stderr


def test_cpu_image_plans_on_the_host_without_being_told(engine_envs, models, tmp_path):
    env = image_env(tmp_path, "Dockerfile.vllm", VARIANT="cpu")
    env.update(
        TARGET_MODEL=str(models("Qwen2.5-7B-Instruct")), MAX_MODEL_LEN="4096", PATH=f"{FAKE_BIN}:{BASE_PATH}"
    )  # even with an nvidia-smi around, the CPU image plans for the CPU
    result = run_image(str(engine_envs["vllm"] / "bin" / "python"), env, "plan", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["on_cpu"] is True


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_image_runs_other_commands_unchanged(engine, engine_envs, tmp_path):
    result = run_image(
        str(engine_envs[engine] / "bin" / "python"), image_env(tmp_path, f"Dockerfile.{engine}"), "echo", "hi"
    )
    assert (result.returncode, result.stdout) == (0, "hi\n")


def test_image_healthcheck_fails_when_nothing_listens(engine_envs, tmp_path):
    env = image_env(tmp_path, "Dockerfile.vllm")
    env["PORT"] = "9"  # discard port: nothing serves HTTP there
    assert run_image(str(engine_envs["vllm"] / "bin" / "python"), env, "health").returncode == 1
