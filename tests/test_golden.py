"""Golden argv files: the exact command for the reference configurations, one token a line.

A review of a change to an engine builder shows here as a diff of these files.
Regenerate with `UPDATE_GOLDEN=1 bash scripts/test.sh tests/test_golden.py`
and read the diff before committing it.
"""

from __future__ import annotations

import os

import pytest

from tests.support.paths import TESTS
from tests.support.planning import command_env

GOLDEN = TESTS / "golden"
DRAFT = "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"

# name -> (fixture model, the repo id users type, settings)
CONFIGURATIONS = {
    "qwen2.5-7b-a100": ("Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct", {"ACCELERATORS": "A100:1"}),
    "mixtral-8x7b-a100-80gb-2": (
        "Mixtral-8x7B-Instruct-v0.1",
        "mistralai/Mixtral-8x7B-Instruct-v0.1",
        {"ACCELERATORS": "A100-80GB:2"},
    ),
    "qwen3-14b-fp8-h100": ("Qwen3-14B-FP8", "Qwen/Qwen3-14B-FP8", {"ACCELERATORS": "H100:1"}),
    "llama-3.1-70b-a100-80gb-4": (
        "Llama-3.1-70B-Instruct",
        "meta-llama/Llama-3.1-70B-Instruct",
        {"ACCELERATORS": "A100-80GB:4"},
    ),
    "llama-3.1-8b-h100-8-replicas": (
        "Llama-3.1-8B-Instruct",
        "meta-llama/Llama-3.1-8B-Instruct",
        {"ACCELERATORS": "H100:8"},
    ),
    "llama-3.1-70b-h100-2-fp8": (
        "Llama-3.1-70B-Instruct",
        "meta-llama/Llama-3.1-70B-Instruct",
        {"ACCELERATORS": "H100:2", "QUANTIZATION": "fp8"},
    ),
    # Three GPUs: TP=2 cannot hold 70B, so three pipeline stages of TP=1.
    "llama-3.1-70b-h100-3-pipeline": (
        "Llama-3.1-70B-Instruct",
        "meta-llama/Llama-3.1-70B-Instruct",
        {"ACCELERATORS": "H100:3"},
    ),
    "qwen3-30b-a3b-l40s-4": ("Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B", {"ACCELERATORS": "L40S:4"}),
    "deepseek-v3-h200-8": ("DeepSeek-V3", "deepseek-ai/DeepSeek-V3", {"ACCELERATORS": "H200:8"}),
    "llama-3.1-8b-eagle3-api-key": (
        "Llama-3.1-8B-Instruct",
        "meta-llama/Llama-3.1-8B-Instruct",
        {
            "ACCELERATORS": "H100:1",
            "SPEC_ENABLED": "true",
            "SPEC_DRAFT_MODEL": DRAFT,
            "SPEC_NUM_TOKENS": "3",
            "API_KEY": "sk-golden-secret",
            "SERVED_MODEL_NAME": "llama",
            "EXTRA_ARGS": "--enable-prefix-caching",
        },
    ),
    "qwen2.5-7b-awq-t4": ("Qwen2.5-7B-Instruct-AWQ", "Qwen/Qwen2.5-7B-Instruct-AWQ", {"ACCELERATORS": "T4:1"}),
    # Model-aware serving (issue #13): Qwen3's template takes tools and thinks; Qwen3-Embedding pools.
    "qwen3-8b-tools-reasoning": ("Qwen3-8B", "Qwen/Qwen3-8B", {"ACCELERATORS": "L40S:1"}),
    "qwen3-embedding-0.6b": ("Qwen3-Embedding-0.6B", "Qwen/Qwen3-Embedding-0.6B", {"ACCELERATORS": "L4:1"}),
}
CASES = [(engine, name) for name in CONFIGURATIONS for engine in ("sglang", "vllm")]


def command_for(models, engine: str, name: str):
    fixture, repo_id, env = CONFIGURATIONS[name]
    # The draft's own headers are not generated; the plan notes that its memory is not counted.
    return command_env({"TARGET_MODEL": repo_id, "ENGINE": engine, **env}, model_folder=str(models(fixture)))


@pytest.mark.parametrize(("engine", "name"), CASES, ids=[f"{e}/{n}" for e, n in CASES])
def test_golden_argv(models, engine, name):
    _, shown = command_for(models, engine, name)
    path = GOLDEN / engine / f"{name}.argv"
    text = "\n".join(shown) + "\n"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.read_text() == text, f"{path} differs; UPDATE_GOLDEN=1 regenerates it"
    assert "sk-golden-secret" not in text


def test_api_key_travels_as_each_engine_expects(models):
    vllm, _ = command_for(models, "vllm", "llama-3.1-8b-eagle3-api-key")
    sglang, sglang_shown = command_for(models, "sglang", "llama-3.1-8b-eagle3-api-key")
    assert vllm.env["VLLM_API_KEY"] == "sk-golden-secret"  # out of argv, so out of `ps`
    assert "--api-key" not in vllm.command.argv
    assert "--api-key" not in sglang.command.argv  # sglang's launcher sets it from the environment
    assert sglang.env["INFERENCE_ENDPOINT_SGLANG_API_KEY"] == "sk-golden-secret"
    assert not any("sk-golden-secret" in arg for arg in sglang_shown)
    assert "API_KEY" not in vllm.env and "API_KEY" not in sglang.env
