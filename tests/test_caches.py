"""The engines' compile and kernel caches live in the Hugging Face cache's volume (issue #14)."""

from __future__ import annotations

import pytest

from entrypoint import caches, launch
from entrypoint.engines import ENGINES
from tests.support.planning import plan_env


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_every_cache_goes_under_hf_home_unless_set(models, engine):
    environ = {"HF_HOME": "/data/hf", "HOME": "/root", "TRITON_CACHE_DIR": "/mine"}
    settings, plan = plan_env(
        {"TARGET_MODEL": str(models("Qwen2.5-7B-Instruct")), "ENGINE": engine, "ACCELERATORS": "H100:1"}
    )
    env = launch.prepare(ENGINES[engine], settings, plan, environ, python="python3").env
    for name, folder in ENGINES[engine].cache_variables.items():
        expected = "/mine" if name == "TRITON_CACHE_DIR" else f"/data/hf/engine-cache/{engine}/{folder}"
        assert env[name] == expected, name
    assert (env.get("HF_XET_HIGH_PERFORMANCE") == "1") == (engine == "sglang")  # vLLM sets it itself


def test_without_hf_home_the_caches_follow_huggingface_hubs_default():
    assert caches.cache_root(ENGINES["vllm"], {"HOME": "/home/u"}) == "/home/u/.cache/huggingface/engine-cache/vllm"
    set_already = caches.engine_environment(
        ENGINES["sglang"], {"HF_XET_HIGH_PERFORMANCE": "0", "SGLANG_CACHE_DIR": "/c"}
    )
    assert set_already == {}  # the user's own values win
