"""Model-aware serving on the real vLLM CPU server (issue #13): no hand-written flags.

- Tools: the tiny Llama with a Hermes-style chat template that takes `tools`. The plan turns on vLLM's
  hermes parser by itself, so a request with `tools` and tool_choice "auto" is served (vLLM answers 400
  without the flags), and a named tool_choice of a `strict` tool returns a tool call whose arguments parse
  as JSON of the tool's schema (vLLM constrains the output to it, so this holds even for random weights;
  without `strict` vLLM 0.32 constrains only the <tool_call> wrapper).
- Embeddings: the same model with a sentence-transformers modules.json is served for /v1/embeddings
  (--runner pooling --convert embed, planned), with vectors of its hidden size; chat is refused by vLLM.
- Encoders: a tiny BertModel (tests/engines/make_tiny_bert.py) is served for /v1/embeddings with no KV cache,
  as planned: vLLM's /metrics reports none, and the supervisor makes no KV self-check.
- LoRA: a rank-8 adapter of the tiny model in PEFT's format (tests/engines/make_tiny_lora.py); /v1/models
  lists it and a completion with its name as `model` is served.
- Reasoning: the tiny model cannot be made to emit <think>; the flags and the parser names are proven against
  vLLM's own parser and registries in tests/test_families.py instead.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import openai
import pytest

from entrypoint.engines import ENGINES
from entrypoint.supervise.engine_metrics import read_kv_tokens
from tests.support.cli import free_port
from tests.support.endpoint import Endpoint, endpoint_env
from tests.support.paths import TESTS

pytestmark = pytest.mark.e2e

HERMES_TEMPLATE = (
    "{{ bos_token }}{% if tools %}<|start|>system\nYou may call these tools: <tools>"
    "{% for tool in tools %}{{ tool | tojson }}{% endfor %}</tools> Answer with "
    '<tool_call>{"name": ..., "arguments": ...}</tool_call><|end|>\n{% endif %}'
    "{% for message in messages %}<|start|>{{ message['role'] }}\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|start|>assistant\n{% endif %}"
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def _variant(tiny_model, folder, template: str | None = None, modules: bool = False):
    shutil.copytree(tiny_model, folder)
    if template is not None:
        (folder / "chat_template.jinja").write_text(template)
        config = json.loads((folder / "tokenizer_config.json").read_text())
        config.pop("chat_template", None)
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    if modules:
        (folder / "modules.json").write_text(
            json.dumps([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}])
        )
    return folder


def _serving(engine_envs, root, model, **extra: str | None):
    """A healthy CPU endpoint for `model`, stopped (its whole process group) when the module is done."""
    server = Endpoint(
        engine_envs["vllm"] / "bin" / "python", endpoint_env(root, model, free_port(), **extra), root / "log"
    )
    server.wait_healthy()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tools_endpoint(engine_envs, tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("tools")
    yield from _serving(engine_envs, root, _variant(tiny_model, root / "tiny-hermes", HERMES_TEMPLATE))


def test_the_plan_turned_on_the_hermes_parser_by_itself(tools_endpoint):
    log = tools_endpoint.log()
    assert "--enable-auto-tool-choice" in log and "--tool-call-parser hermes" in log
    assert "tool calls: vllm's parser hermes for this family" in log


def test_tools_with_auto_choice_are_served(tools_endpoint):
    reply = tools_endpoint.client().chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER], max_tokens=8
    )
    assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls")


def test_a_named_tool_choice_returns_arguments_of_its_schema(tools_endpoint):
    reply = tools_endpoint.client().chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        # The byte-level tokenizer spends a token a character on <tool_call>{"name": ..., "arguments": ...}.
        max_tokens=160,
    )
    assert reply.choices[0].message.tool_calls, reply
    (call,) = reply.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["city"] in ("Paris", "Rome")


@pytest.fixture(scope="module")
def embedding_endpoint(engine_envs, tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("embed")
    yield from _serving(engine_envs, root, _variant(tiny_model, root / "tiny-embed", modules=True))


def test_a_sentence_transformers_model_serves_embeddings(embedding_endpoint):
    assert "--runner pooling --convert embed" in embedding_endpoint.log()
    client = embedding_endpoint.client()
    vectors = client.embeddings.create(model="tiny", input=["hello", "the quick brown fox"]).data
    hidden_size = json.loads((Path(embedding_endpoint.env["TARGET_MODEL"]) / "config.json").read_text())["hidden_size"]
    assert [len(item.embedding) for item in vectors] == [hidden_size, hidden_size]
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert refused.value.status_code in (400, 404)


@pytest.fixture(scope="module")
def encoder_endpoint(engine_envs, tiny_bert, tmp_path_factory):
    """Supervised (METRICS_PORT), so the supervisor's start-up self-check runs against vLLM's /metrics."""
    root = tmp_path_factory.mktemp("encoder")
    yield from _serving(engine_envs, root, tiny_bert, METRICS_PORT=str(free_port()), MAX_MODEL_LEN=None)


def test_an_encoder_is_served_with_no_kv_cache_as_planned(encoder_endpoint):
    """A BertModel: the plan says vLLM keeps no KV cache for its bidirectional attention, and vLLM's own
    /metrics agrees (its cache_config_info carries no KV cache size), so the supervisor, ready, has no
    self-check to make and says nothing of a KV cache."""
    client = encoder_endpoint.client()
    vectors = client.embeddings.create(model="tiny", input=["hello world", "the quick brown fox"]).data
    assert [len(item.embedding) for item in vectors] == [64, 64]  # make_tiny_bert.py's hidden size
    _, text = encoder_endpoint.get("/metrics")
    assert read_kv_tokens(text, ENGINES["vllm"].metric_names) is None, text
    # The supervisor polls every second until the engine answers, and checks the KV cache in that same poll.
    deadline = time.monotonic() + 30
    while "supervisor: ready in" not in encoder_endpoint.log() and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)
    log = encoder_endpoint.log()
    assert "no KV cache: model_type bert is an encoder" in log and "(none: bidirectional attention)" in log
    assert "supervisor: ready in" in log and "kv cache: planned" not in log, log[-3000:]


@pytest.fixture(scope="module")
def lora_endpoint(engine_envs, tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    model = _variant(tiny_model, root / "tiny-base")
    python = engine_envs["vllm"] / "bin" / "python"
    script = TESTS / "engines" / "make_tiny_lora.py"
    subprocess.run([str(python), str(script), str(model), str(root / "sql-lora")], check=True, timeout=300)
    yield from _serving(engine_envs, root, model, LORA_MODULES=f"sqlbot={root / 'sql-lora'}")


def test_a_lora_adapter_is_listed_and_served_by_its_name(lora_endpoint):
    log = lora_endpoint.log()
    assert "--enable-lora --lora-modules sqlbot=" in log and "--max-lora-rank 8 --max-loras 1" in log
    client = lora_endpoint.client()
    assert {model.id for model in client.models.list().data} == {"tiny", "sqlbot"}
    reply = client.completions.create(model="sqlbot", prompt="Hello", max_tokens=4)
    assert reply.model == "sqlbot" and reply.choices[0].text is not None
