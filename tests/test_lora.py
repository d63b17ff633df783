"""LORA_MODULES (issue #13): adapters read from their adapter_config.json and header, checked, counted, and
given to both engines with flags their own parsers accept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from entrypoint import launch, lora
from entrypoint.engines import ENGINES
from entrypoint.errors import CorruptCheckpointError, ModelNotFoundError, SettingError, UnsupportedByEngineError
from entrypoint.units import MIB
from tests.support import modelgen
from tests.support.planning import plan_env

LLAMA = "Llama-3.1-8B-Instruct"
adapter = modelgen.lora_adapter


def env(models, tmp_path, modules: str, **extra: str) -> dict[str, str]:
    return {"TARGET_MODEL": str(models(LLAMA)), "ACCELERATORS": "H100:1", "LORA_MODULES": modules, **extra}


def test_adapters_are_planned_with_their_rank_and_buffers(models, tmp_path):
    sql, chat = adapter(tmp_path / "sql", rank=16), adapter(tmp_path / "chat", rank=40)
    plain = plan_env({"TARGET_MODEL": str(models(LLAMA)), "ACCELERATORS": "H100:1"})[1]
    plan = plan_env(env(models, tmp_path, f"sql={sql},chat={chat}"))[1]
    assert plan.lora_modules == (("sql", str(sql)), ("chat", str(chat)))
    assert (plan.max_lora_rank, plan.max_loras) == (64, 2)  # 40 -> the engines' next rank, 64
    # Per slot at rank 16 Llama-3.1-8B takes 80 MiB (32 layers x 81920 values of A and B x 2 bytes): here
    # two slots of rank 64.
    assert plan.lora_bytes == 2 * 4 * 80 * MIB
    assert plan.memory_per_gpu.weight_bytes == plain.memory_per_gpu.weight_bytes + plan.lora_bytes
    assert any("lora: sql (rank 16), chat (rank 40); --max-lora-rank 64, 2 at once" in r for r in plan.reasons)


def test_buffers_shrink_with_tensor_parallelism():
    shape = modelgen_shape()
    one = lora.Adapter("a", "a", 16, modelgen.LORA_TARGETS, "", 0)
    at = [lora.buffer_bytes(shape, (one,), 1, 16, tp, 2) for tp in (1, 2, 4)]
    assert at[0] == 80 * MIB and at[0] > at[1] > at[2]


def modelgen_shape():
    from entrypoint.model.shape import from_config

    return from_config(modelgen.load_fixture(LLAMA)["config"])


@pytest.mark.parametrize(
    ("make", "error", "text"),
    [
        (lambda p: adapter(p, hidden=3584), SettingError, "has down_proj of 14336x3584, but TARGET_MODEL="),
        (lambda p: adapter(p, rank=1024), UnsupportedByEngineError, "has rank 1024, above"),
        (lambda p: p.mkdir() or p, ModelNotFoundError, "the folder has no adapter_config.json"),
        (lambda p: _written(p, "not json"), CorruptCheckpointError, "adapter_config.json is not valid JSON"),
        (lambda p: _written(p, '{"peft_type": "PREFIX_TUNING"}'), CorruptCheckpointError, "is not a LoRA"),
        (lambda p: _written(p, '{"peft_type": "LORA", "r": "sixteen"}'), CorruptCheckpointError, "no usable rank"),
    ],
    ids=["another model's sizes", "rank too big", "no adapter_config", "not json", "not lora", "bad rank"],
)
def test_bad_adapters_are_refused_with_the_variable_named(models, tmp_path, make, error, text):
    folder = make(tmp_path / "bad")
    with pytest.raises(error) as caught:
        plan_env(env(models, tmp_path, f"bad={folder}"))
    assert text in caught.value.message
    assert "LORA_MODULES" in caught.value.message


def test_with_a_hub_target_an_adapter_of_another_base_model_is_refused(models, tmp_path):
    other = adapter(tmp_path / "other", base="Qwen/Qwen2.5-7B-Instruct")
    env = {"TARGET_MODEL": "meta-llama/Llama-3.1-8B-Instruct", "ACCELERATORS": "H100:1", "LORA_MODULES": f"x={other}"}
    with pytest.raises(SettingError) as caught:
        plan_env(env, model_folder=str(models(LLAMA)))
    assert "is an adapter of Qwen/Qwen2.5-7B-Instruct, not of TARGET_MODEL=meta-llama" in caught.value.message
    # A local TARGET_MODEL may be any folder name: only the layers' sizes decide there.
    assert plan_env({**env, "TARGET_MODEL": str(models(LLAMA))})[1].lora_modules == (("x", str(other)),)


def _written(folder: Path, config: str) -> Path:
    folder.mkdir()
    (folder / "adapter_config.json").write_text(config)
    return folder


def test_a_local_path_that_is_not_a_folder_is_refused(models, tmp_path):
    with pytest.raises(ModelNotFoundError, match="LORA_MODULES=x=/models/no-such-lora is not a folder"):
        plan_env(env(models, tmp_path, "x=/models/no-such-lora"))


@pytest.mark.engines
@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_the_engines_parse_the_lora_flags(models, tmp_path, engine, engine_parser):
    sql, chat = adapter(tmp_path / "sql", rank=8), adapter(tmp_path / "chat", rank=16)
    settings, plan = plan_env(env(models, tmp_path, f"sql={sql},chat={chat}", ENGINE=engine))
    argv = list(launch.engine_command(ENGINES[engine], settings, plan, python="python3").argv[3:])
    (result,) = engine_parser(engine, [argv])["results"]
    assert result["ok"], result["error"]
    args = result["args"]
    assert args["enable_lora"] is True and args["max_lora_rank"] == 16
    if engine == "vllm":
        assert args["max_loras"] == 2
        # LoRAModulePath objects, passed back as their repr.
        shown = json.dumps(args["lora_modules"])
        assert "name='sql'" in shown and f"path='{sql}'" in shown and f"path='{chat}'" in shown
    else:
        assert args["max_loras_per_batch"] == 2
        assert "sql" in json.dumps(args["lora_paths"]) and str(chat) in json.dumps(args["lora_paths"])
