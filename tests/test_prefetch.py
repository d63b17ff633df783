"""`python -m entrypoint prefetch` against a fake Hub on loopback (issue #14): exactly the files the engine
loads, into HF_HOME; a second run downloads no weight byte."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import modelgen
from tests.support.cli import clean_env, run_cli, start_cli
from tests.support.fakehub import FakeHub
from tests.support.paths import FAKE_ENGINES, ROOT

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


def hub_env(hub, tmp_path, **extra: str) -> dict[str, str]:
    """test/small-llama from the fake Hub, into an HF_HOME of its own."""
    return clean_env(
        tmp_path,
        TARGET_MODEL="test/small-llama",
        ACCELERATORS="H100:1",
        HF_ENDPOINT=hub.endpoint,
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_XET="1",
        **extra,
    )


def shard_downloads(hub, since: int = 0) -> list[str]:
    """Whole-file GETs of a shard the fake Hub answered, from its request number `since` on."""
    return [line for line in hub.requests[since:] if line.startswith("GET ") and line.endswith(".safetensors")]


def test_prefetch_downloads_what_the_engine_loads_once(hub, tmp_path):
    env = hub_env(hub, tmp_path)
    first = run_cli(["prefetch"], env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "prefetch: TARGET_MODEL=test/small-llama is in" in first.stderr
    assert len(shard_downloads(hub)) == SHARDS  # every shard the index names, once
    assert hub.count("consolidated.pth") == 0
    snapshot = next((tmp_path / "hf" / "hub").glob("models--test--small-llama/snapshots/*"))
    assert (snapshot / "tokenizer_config.json").is_file() and len(list(snapshot.glob("*.safetensors"))) == SHARDS
    before = len(hub.requests)
    second = run_cli(["prefetch"], env, timeout=300)
    assert second.returncode == 0, second.stderr
    assert shard_downloads(hub, before) == []  # found in HF_HOME: no weight byte downloaded twice


def test_prefetch_of_a_missing_repo_is_one_line(hub, tmp_path):
    env = clean_env(tmp_path, TARGET_MODEL="meta-llama/No-Such-Model", ACCELERATORS="H100:1", HF_ENDPOINT=hub.endpoint)
    result = run_cli(["prefetch"], env)
    assert result.returncode == 30
    assert (
        result.stderr.strip().splitlines()[-1].startswith("error: TARGET_MODEL=meta-llama/No-Such-Model does not exist")
    )
    assert "Traceback" not in result.stderr


def serving_env(hub, tmp_path, **extra: str) -> dict[str, str]:
    """Serving test/small-llama from the fake Hub with the stand-in engine."""
    return hub_env(
        hub,
        tmp_path,
        PYTHONPATH=f"{ROOT}{os.pathsep}{FAKE_ENGINES}",
        FAKE_ENGINE_REPORT=str(tmp_path / "engine.json"),
        **extra,
    )


def served_then_stopped(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Supervised serving, stopped with SIGTERM once the stand-in engine has started (its report is written):
    a stop by the clock (MAX_RUN_HOURS) could come before the engine starts on a busy machine."""
    report = Path(env["FAKE_ENGINE_REPORT"])
    report.unlink(missing_ok=True)
    process = start_cli(env)
    deadline = time.monotonic() + 300
    while not report.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_serving_downloads_before_the_engine_and_times_it(hub, tmp_path):
    """Supervised: the weights are in HF_HOME before the engine starts, and the start's summary has a
    download phase with the bytes that arrived; a restart on the same cache downloads nothing."""
    env = serving_env(hub, tmp_path, MAX_RUN_HOURS="1", FAKE_ENGINE_SLEEP="300")
    # The stand-in never answers /metrics, so the summary never comes: the log's download line is checked, and
    # the engine's report proves the order (it is written once the weights are in the cache).
    first = served_then_stopped(env)
    assert first.returncode == 0, first.stderr
    snapshot = next((tmp_path / "hf" / "hub").glob("models--test--small-llama/snapshots/*"))
    assert len(list(snapshot.glob("*.safetensors"))) == SHARDS and len(shard_downloads(hub)) == SHARDS
    weights = sum(path.stat().st_size for path in snapshot.glob("*.safetensors"))
    line = next(line for line in first.stderr.splitlines() if line.startswith("prefetch: ") and " MB, " in line)
    assert f"{weights / 1e6:.1f} MB, " in line  # what the cache grew by
    assert os.path.getmtime(env["FAKE_ENGINE_REPORT"]) >= max(p.stat().st_mtime for p in snapshot.glob("*"))
    second = served_then_stopped(env)
    assert second.returncode == 0, second.stderr
    assert "prefetch: " in second.stderr and "everything already in HF_HOME" in second.stderr
    assert len(shard_downloads(hub)) == SHARDS  # none twice


def test_prefetch_false_leaves_the_download_to_the_engine(hub, tmp_path):
    env = serving_env(hub, tmp_path, PREFETCH="false")
    result = run_cli([], env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "exec: " in result.stderr and "prefetch:" not in result.stderr
    assert shard_downloads(hub) == []  # headers only, as the plan reads them
