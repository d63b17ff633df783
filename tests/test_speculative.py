"""Speculative decoding: one vocabulary, each engine's spelling, the draft's memory in the plan."""

from __future__ import annotations

import json
import shutil

import pytest

from entrypoint import launch
from entrypoint.engines import ENGINES
from entrypoint.errors import MissingSettingError, SettingError, UnsupportedByEngineError
from entrypoint.model.source import read_model
from entrypoint.speculative import METHODS, normalise
from tests.support.cli import clean_env, run_cli
from tests.support.planning import plan_env


@pytest.mark.parametrize(
    ("given", "method"),
    [
        ("eagle3", "eagle3"),
        ("EAGLE3", "eagle3"),
        ("Eagle", "eagle"),
        ("NEXTN", "mtp"),
        ("deepseek_mtp", "mtp"),
        ("STANDALONE", "draft_model"),
        ("draft-model", "draft_model"),
        ("NGRAM", "ngram"),
        ("suffix", "suffix"),
    ],
)
def test_either_engines_spelling_is_accepted(given, method):
    assert normalise(given) == method


def test_unknown_method_names_the_known_ones():
    with pytest.raises(SettingError, match="SPEC_METHOD='medusa'") as caught:
        normalise("medusa")
    assert "known: eagle, eagle3" in caught.value.hint


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_every_method_is_mapped_or_refused_by_each_engine(engine):
    mapped = ENGINES[engine].speculative_methods
    assert set(mapped) <= set(METHODS)
    assert engine == "vllm" or "suffix" not in mapped  # sglang has no suffix decoding


def plan(models, engine="sglang", name="Llama-3.1-8B-Instruct", **env):
    """A local SPEC_DRAFT_MODEL folder is read for its headers; a repo id is planned without them."""
    return plan_env(
        {"TARGET_MODEL": str(models(name)), "ACCELERATORS": "H100:1", "ENGINE": engine, "SPEC_ENABLED": "true", **env}
    )


@pytest.mark.parametrize(
    ("env", "error", "text"),
    [
        ({"SPEC_METHOD": "suffix"}, UnsupportedByEngineError, "not available in sglang"),
        ({"SPEC_METHOD": "eagle3"}, MissingSettingError, "SPEC_DRAFT_MODEL is not set"),
        ({"SPEC_METHOD": "mtp"}, SettingError, "multi-token-prediction layers .* has none"),
    ],
)
def test_impossible_combinations_fail_before_download(models, env, error, text):
    with pytest.raises(error, match=text):
        plan(models, **env)


@pytest.mark.parametrize(
    ("name", "env", "method"),
    [
        ("Llama-3.1-8B-Instruct", {}, "ngram"),
        ("DeepSeek-V3", {}, "mtp"),
        ("Llama-3.1-8B-Instruct", {"SPEC_DRAFT_MODEL": "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"}, "eagle3"),
    ],
)
def test_default_method(models, name, env, method):
    _, result = plan_env({"TARGET_MODEL": str(models(name)), "ACCELERATORS": "H200:8", "SPEC_ENABLED": "true", **env})
    assert result.speculative.method == method


def test_sglang_gets_three_numbers_together_or_none(models):
    settings, with_count = plan(models, SPEC_METHOD="ngram", SPEC_NUM_TOKENS="5")
    argv = launch.engine_command(ENGINES["sglang"], settings, with_count).argv
    joined = " ".join(argv)
    assert (
        "--speculative-algorithm NGRAM --speculative-num-steps 5 --speculative-eagle-topk 1 "
        "--speculative-num-draft-tokens 6"
    ) in joined
    settings, without = plan(models, SPEC_METHOD="ngram")
    argv = launch.engine_command(ENGINES["sglang"], settings, without).argv
    assert not {"--speculative-num-steps", "--speculative-eagle-topk", "--speculative-num-draft-tokens"} & set(argv)


def test_vllm_gets_one_json_config(models):
    settings, result = plan(
        models, "vllm", SPEC_METHOD="STANDALONE", SPEC_DRAFT_MODEL="meta-llama/Llama-3.2-1B-Instruct"
    )
    argv = launch.engine_command(ENGINES["vllm"], settings, result).argv
    config = json.loads(argv[argv.index("--speculative-config") + 1])
    assert config == {"method": "draft_model", "model": "meta-llama/Llama-3.2-1B-Instruct", "num_speculative_tokens": 3}


def test_draft_weights_count_per_gpu(models):
    draft = str(models("Qwen2.5-7B-Instruct"))
    _, without = plan(models, SPEC_METHOD="ngram")
    _, with_draft = plan(models, SPEC_METHOD="draft_model", SPEC_DRAFT_MODEL=draft)
    added = with_draft.memory_per_gpu.weight_bytes - without.memory_per_gpu.weight_bytes
    assert added == pytest.approx(read_model(draft).weights.checkpoint_bytes, rel=0.01)
    assert with_draft.draft_weight_bytes == pytest.approx(added, rel=0.001)
    assert with_draft.memory_per_gpu.kv_tokens < without.memory_per_gpu.kv_tokens
    assert any("adds 14.2 GiB of weights per GPU" in reason for reason in with_draft.reasons)


def test_draft_without_safetensors_is_planned_with_a_warning(tmp_path, models):
    draft = tmp_path / "eagle-head"
    draft.mkdir()
    shutil.copy(models("Llama-3.1-8B-Instruct") / "config.json", draft / "config.json")
    (draft / "pytorch_model.bin").write_bytes(b"\0" * 64)
    env = clean_env(
        tmp_path,
        TARGET_MODEL=str(models("Llama-3.1-8B-Instruct")),
        ACCELERATORS="H100:1",
        SPEC_ENABLED="true",
        SPEC_DRAFT_MODEL=str(draft),
    )
    result = run_cli(["plan", "--json"], env)
    assert result.returncode == 0, result.stderr
    planned = json.loads(result.stdout)
    assert planned["draft_weight_bytes"] == 0
    assert any("has no safetensors headers" in warning for warning in planned["warnings"])


def test_spec_settings_without_spec_enabled_warn(models):
    _, result = plan_env(
        {"TARGET_MODEL": str(models("Llama-3.1-8B-Instruct")), "ACCELERATORS": "H100:1", "SPEC_METHOD": "eagle3"}
    )
    assert result.speculative is None
    assert any("SPEC_ENABLED is not true" in warning for warning in result.warnings)
