"""`python -m entrypoint prefetch` against a fake Hub on loopback (issue #14): exactly the files the engine
loads, into HF_HOME; a second run downloads no weight byte."""

from __future__ import annotations

import json
import re

import pytest

from tests.support import modelgen
from tests.support.cli import clean_env, run_cli
from tests.support.fakehub import FakeHub

# A small Llama (some 30 MB of weights: the fake Hub serves them in full) in three shards and an index.
SMALL = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
    "torch_dtype": "bfloat16",
}
SHARDS = 3


@pytest.fixture
def hub(httpserver, tmp_path):
    fake = FakeHub()
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "config.json").write_text(json.dumps(SMALL))
    modelgen.write_shards(repo, modelgen.architecture_tensors(SMALL), SHARDS)
    (repo / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    (repo / "consolidated.pth").write_bytes(b"\0" * 1024)  # another format: never fetched
    fake.add("test/small-llama", repo)
    httpserver.expect_request(re.compile(".*")).respond_with_handler(fake.handle)
    fake.endpoint = httpserver.url_for("").rstrip("/")
    return fake


def test_prefetch_downloads_what_the_engine_loads_once(hub, tmp_path):
    env = clean_env(
        tmp_path,
        TARGET_MODEL="test/small-llama",
        ACCELERATORS="H100:1",
        HF_ENDPOINT=hub.endpoint,
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_XET="1",
    )
    first = run_cli(["prefetch"], env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "prefetch: TARGET_MODEL=test/small-llama is in" in first.stderr
    whole = [line for line in hub.requests if line.startswith("GET ") and line.endswith(".safetensors")]
    assert len(whole) == SHARDS  # every shard the index names, once
    assert hub.count("consolidated.pth") == 0
    snapshot = next((tmp_path / "hf" / "hub").glob("models--test--small-llama/snapshots/*"))
    assert (snapshot / "tokenizer_config.json").is_file() and len(list(snapshot.glob("*.safetensors"))) == SHARDS
    before = len(hub.requests)
    second = run_cli(["prefetch"], env, timeout=300)
    assert second.returncode == 0, second.stderr
    again = [line for line in hub.requests[before:] if line.startswith("GET ") and line.endswith(".safetensors")]
    assert again == []  # found in HF_HOME: no weight byte downloaded twice


def test_prefetch_of_a_missing_repo_is_one_line(hub, tmp_path):
    env = clean_env(tmp_path, TARGET_MODEL="meta-llama/No-Such-Model", ACCELERATORS="H100:1", HF_ENDPOINT=hub.endpoint)
    result = run_cli(["prefetch"], env)
    assert result.returncode == 30
    assert (
        result.stderr.strip().splitlines()[-1].startswith("error: TARGET_MODEL=meta-llama/No-Such-Model does not exist")
    )
    assert "Traceback" not in result.stderr
