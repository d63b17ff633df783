"""The real huggingface_hub code path against a fake Hub on loopback (HF_ENDPOINT)."""

from __future__ import annotations

import io
import json
import re
import socket

import pytest

from tests.support import modelgen
from tests.support.cli import clean_env, run_cli
from tests.support.fakehub import COMMIT, FakeHub

REFERENCE = [
    ("Qwen/Qwen2.5-7B-Instruct", "Qwen2.5-7B-Instruct", "A100:1", (1, 1, 1, 1)),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "Mixtral-8x7B-Instruct-v0.1", "A100-80GB:2", (2, 1, 1, 2)),
    ("Qwen/Qwen3-14B-FP8", "Qwen3-14B-FP8", "H100:1", (1, 1, 1, 1)),
    ("meta-llama/Llama-3.1-70B-Instruct", "Llama-3.1-70B-Instruct", "A100-80GB:4", (4, 1, 1, 1)),
]


@pytest.fixture
def hub(httpserver, models):
    fake = FakeHub()
    for repo_id, fixture, _, _ in REFERENCE:
        fake.add(repo_id, models(fixture))
    fake.add("meta-llama/Llama-3.1-8B-Instruct", models("Llama-3.1-8B-Instruct"), gated=True)
    httpserver.expect_request(re.compile(".*")).respond_with_handler(fake.handle)
    fake.endpoint = httpserver.url_for("").rstrip("/")
    return fake


def hub_env(tmp_path, hub, **extra):
    return clean_env(tmp_path, HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1", **extra)


@pytest.mark.parametrize(("repo_id", "fixture", "accelerators", "expected"), REFERENCE)
def test_reference_plans_through_the_hub(tmp_path, hub, repo_id, fixture, accelerators, expected):
    result = run_cli(["plan", "--json"], hub_env(tmp_path, hub, TARGET_MODEL=repo_id, ACCELERATORS=accelerators))
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert (plan["tp"], plan["pp"], plan["dp"], plan["ep"]) == expected
    assert plan["model_location"] == "hub"
    # config.json (HEAD + GET), every shard header in one request, and a HEAD for each of the small files that
    # decide the chat template and the task (chat_template.jinja, tokenizer_config.json, modules.json; a file
    # the repo has is also fetched: none here).
    assert hub.count() == 6, hub.requests
    assert hub.count("/safetensors-metadata/") == 1
    assert hub.count(".safetensors") == 1  # that one request, never a shard download


def test_without_the_one_request_endpoint_headers_are_read_in_parallel(tmp_path, hub):
    hub.one_request_headers = False
    result = run_cli(
        ["plan", "--json"],
        hub_env(tmp_path, hub, TARGET_MODEL="meta-llama/Llama-3.1-70B-Instruct", ACCELERATORS="A100-80GB:4"),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tp"] == 4
    shard_reads = [line for line in hub.requests if line.startswith("GET") and "-of-00030.safetensors" in line]
    assert len(shard_reads) == 30  # one ranged read per shard, no more
    assert hub.count() <= 30 + 10


def test_revision_is_passed_through(tmp_path, hub):
    result = run_cli(
        ["plan", "--json"],
        hub_env(tmp_path, hub, TARGET_MODEL="Qwen/Qwen2.5-7B-Instruct", ACCELERATORS="A100:1", HF_REVISION=COMMIT),
    )
    assert result.returncode == 0, result.stderr
    assert all(f"/resolve/{COMMIT}/" in line for line in hub.requests if "/resolve/" in line)


@pytest.mark.parametrize(
    ("env", "code", "text"),
    [
        ({"TARGET_MODEL": "nobody/no-such-model"}, 30, "does not exist"),
        ({"TARGET_MODEL": "meta-llama/Llama-3.1-8B-Instruct"}, 31, "gated: no HF_TOKEN was given"),
        (
            {"TARGET_MODEL": "meta-llama/Llama-3.1-8B-Instruct", "HF_TOKEN": "hf_wrong_secret_value"},
            31,
            "the HF_TOKEN given has no access",
        ),
        (
            {"TARGET_MODEL": "Qwen/Qwen2.5-7B-Instruct", "HF_REVISION": "no-such-branch"},
            35,
            "HF_REVISION=no-such-branch",
        ),
    ],
)
def test_hub_errors(tmp_path, hub, env, code, text):
    result = run_cli(["plan"], hub_env(tmp_path, hub, ACCELERATORS="H100:1", **env))
    assert result.returncode == code, result.stderr
    assert text in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "hf_wrong_secret_value" not in result.stderr + result.stdout


def test_gated_model_with_a_valid_token(tmp_path, hub):
    result = run_cli(
        ["plan", "--json"],
        hub_env(
            tmp_path, hub, TARGET_MODEL="meta-llama/Llama-3.1-8B-Instruct", ACCELERATORS="H100:1", HF_TOKEN=hub.token
        ),
    )
    assert result.returncode == 0, result.stderr
    assert hub.token not in result.stdout + result.stderr


def test_token_from_file(tmp_path, hub):
    (tmp_path / "token").write_text(hub.token + "\n")
    result = run_cli(
        ["plan", "--json"],
        hub_env(
            tmp_path,
            hub,
            TARGET_MODEL="meta-llama/Llama-3.1-8B-Instruct",
            ACCELERATORS="H100:1",
            HF_TOKEN_FILE=str(tmp_path / "token"),
        ),
    )
    assert result.returncode == 0, result.stderr


def test_repo_with_only_bin_weights(tmp_path, hub, httpserver):
    folder = tmp_path / "bin-only"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"num_attention_heads": 8, "hidden_size": 64, "num_hidden_layers": 2})
    )
    (folder / "pytorch_model.bin").write_bytes(b"\0" * 16)
    hub.add("old/bin-model", folder)
    result = run_cli(["plan"], hub_env(tmp_path, hub, TARGET_MODEL="old/bin-model", ACCELERATORS="H100:1"))
    assert result.returncode == 32, result.stderr
    assert "no .safetensors weights" in result.stderr


def test_unreachable_hub(tmp_path, monkeypatch):
    """The real huggingface_hub against a port nobody listens on, in-process, with its retry back-off not
    slept (it would wait about half a minute): the connection error becomes exit 34 with the fixes."""
    import huggingface_hub.utils._http as hub_http

    from entrypoint import cli

    sleeps: list[float] = []
    monkeypatch.setattr(hub_http.time, "sleep", sleeps.append)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", endpoint)
    monkeypatch.setattr(
        "huggingface_hub.constants.HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    env = clean_env(tmp_path, TARGET_MODEL="Qwen/Qwen2.5-7B-Instruct", ACCELERATORS="H100:1")
    stdout, stderr = io.StringIO(), io.StringIO()
    assert cli.main(["plan"], env, stdout, stderr) == 34, stderr.getvalue()
    (line,) = stderr.getvalue().splitlines()
    assert line.startswith(f"error: cannot reach the Hugging Face Hub at http://127.0.0.1:{port}")
    assert "HF_HUB_OFFLINE=1" in line
    assert sleeps, "huggingface_hub retried without backing off: the test no longer exercises its retries"


def test_offline_mode_uses_the_cache(tmp_path, hub, models):
    env = hub_env(tmp_path, hub, TARGET_MODEL="Qwen/Qwen2.5-7B-Instruct", ACCELERATORS="A100:1", HF_HUB_OFFLINE="1")
    # The cache layout an engine's earlier download leaves: refs/main -> snapshots/<commit>/<files>.
    repo_cache = tmp_path / "hf" / "hub" / "models--Qwen--Qwen2.5-7B-Instruct"
    snapshot = repo_cache / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo_cache / "refs").mkdir()
    (repo_cache / "refs" / "main").write_text(COMMIT)
    for path in models("Qwen2.5-7B-Instruct").iterdir():
        (snapshot / path.name).symlink_to(path)
    result = run_cli(["plan", "--json"], env)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert (plan["tp"], plan["model_location"]) == (1, "hub cache (offline)")
    assert hub.count() == 0  # offline: not one request
    missing = run_cli(["plan"], {**env, "TARGET_MODEL": "mistralai/Mixtral-8x7B-Instruct-v0.1"})
    assert missing.returncode == 30 and "not in the local cache" in missing.stderr


@pytest.mark.parametrize("one_request", [True, False])
@pytest.mark.parametrize(
    ("dims", "text"),
    [([-4096, 4096], "not whole numbers of at least 0"), ([4096, True], "not whole numbers of at least 0")],
)
def test_hostile_headers_through_the_hub_are_refused_as_local_ones_are(tmp_path, hub, one_request, dims, text):
    """huggingface_hub parses the headers but checks no shape: a negative dimension would cancel real weights
    (an 8B model planned as 0 GiB). Both ways of reading them get the local checks."""
    import struct

    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"num_attention_heads": 8, "hidden_size": 64, "num_hidden_layers": 2})
    )
    header = json.dumps({"w": {"dtype": "F16", "shape": dims, "data_offsets": [0, 0]}}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    hub.add("evil/negative", folder)
    hub.one_request_headers = one_request
    result = run_cli(["plan"], hub_env(tmp_path, hub, TARGET_MODEL="evil/negative", ACCELERATORS="H100:1"))
    assert result.returncode == 33, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: TARGET_MODEL=evil/negative: ") and text in line, line


def test_the_chat_template_and_modules_json_are_read_through_the_hub(tmp_path, hub):
    """The small files decide the parsers and the task on the Hub as in a folder: a Qwen2.5 with its Hermes
    tool template gets vLLM's hermes parser; with modules.json it is served for embeddings."""
    # Built here, small, rather than copied: copying a sparse checkpoint writes every byte of its holes.
    template = "{%- if tools %}{{ tools }}<tool_call>{%- endif %}{% for m in messages %}{{ m.content }}{% endfor %}"
    config = {**modelgen.load_fixture("Qwen2.5-7B-Instruct")["config"], "num_hidden_layers": 2}
    chat, embed = tmp_path / "chat", tmp_path / "embed"
    for folder in (chat, embed):
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(config))
        modelgen.write_shards(folder, modelgen.architecture_tensors(config), 2)
        (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}))
    (embed / "modules.json").write_text("[]")
    hub.add("Qwen/chat", chat)
    hub.add("Qwen/embed", embed)
    plans = {}
    for repo in ("Qwen/chat", "Qwen/embed"):
        env = hub_env(tmp_path, hub, TARGET_MODEL=repo, ACCELERATORS="H100:1", ENGINE="vllm")
        result = run_cli(["plan", "--json"], env)
        assert result.returncode == 0, result.stderr
        plans[repo] = json.loads(result.stdout)
    assert (plans["Qwen/chat"]["task"], plans["Qwen/chat"]["tool_call_parser"]) == ("generate", "hermes")
    assert (plans["Qwen/embed"]["task"], plans["Qwen/embed"]["tool_call_parser"]) == ("embed", None)
    assert hub.count("tokenizer_config.json") == 4  # HEAD and GET for each repo: it is there


def test_a_lora_adapter_on_the_hub_is_planned_from_its_files_and_given_by_its_repo_id(tmp_path, hub):
    """LORA_MODULES=name=org/repo: adapter_config.json and the adapter's weights come through huggingface_hub
    into HF_HOME, where the engine's own download finds them (vLLM: snapshot_download of the repo id it gets);
    the rank and the buffers are planned from them. A repo that is not there fails in one line, exit 30."""
    hub.add("someone/llama-sql-lora", modelgen.lora_adapter(tmp_path / "sql-lora", rank=8))
    base = {"TARGET_MODEL": "meta-llama/Llama-3.1-8B-Instruct", "ACCELERATORS": "H100:1", "HF_TOKEN": hub.token}
    base["ENGINE"] = "vllm"
    env = hub_env(tmp_path, hub, **base, LORA_MODULES="sql=someone/llama-sql-lora")
    result = run_cli(["plan", "--json"], env)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["lora_modules"] == [["sql", "someone/llama-sql-lora"]]
    assert (plan["max_lora_rank"], plan["max_loras"]) == (8, 1)
    assert plan["lora_bytes"] == 40 * 2**20  # one slot of rank 8 for Llama-3.1-8B (half the 80 MiB of rank 16)
    argv = plan["argv"]
    assert argv[argv.index("--lora-modules") + 1] == "sql=someone/llama-sql-lora"
    assert hub.count("GET /someone/llama-sql-lora/resolve/main/adapter_config.json") == 1
    assert hub.count("GET /someone/llama-sql-lora/resolve/main/adapter_model.safetensors") == 1
    cached = list((tmp_path / "hf").rglob("adapter_model.safetensors"))
    missing = run_cli(["plan"], hub_env(tmp_path, hub, **base, LORA_MODULES="sql=someone/no-such-lora"))
    assert missing.returncode == 30, missing.stderr
    (line,) = missing.stderr.splitlines()
    assert "LORA_MODULES=sql=someone/no-such-lora: no adapter_config.json could be read" in line, line
    assert hub.token not in result.stdout + result.stderr + missing.stderr
    assert cached, "the adapter is not in HF_HOME"
