"""Model-aware serving (issue #13): what each real model family gets turned on, on both engines.

Each row is a published model: its config.json `model_type` and `architectures`, whether it ships a
sentence-transformers `modules.json`, and the markers its published chat template contains (the tool-call
and thinking markers the planner reads, not the whole template). The model is built header-only with a
small common shape (the features do not depend on size), planned for both engines, and the flags we emit
are parsed by each engine's own parser at the pinned version; the parser names are checked against the
installed engines' registries.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from entrypoint import launch
from entrypoint.engines import ENGINES
from entrypoint.errors import SettingError, UnsupportedByEngineError
from entrypoint.model import families
from tests.support import modelgen
from tests.support.planning import plan_env

# Markers of the published chat templates (tokenizer_config.json / chat_template.jinja of each repo).
REFUSED = "refused"  # an expectation: the plan is refused (exit 13) for this engine
TOOLS = "{%- if tools %}"
HERMES, THINK, QWEN3_CODER = "<tool_call>", "<think>", "<function="
LLAMA31 = "<|eom_id|>"
DEEPSEEK = "<｜tool▁calls▁begin｜>"
MISTRAL = "[AVAILABLE_TOOLS] [TOOL_CALLS]"

# (model, model_type, architecture, template markers (None: no template), modules.json, TASK,
#  expected vLLM (task, tools, reasoning), expected sglang (task, tools, reasoning))
# One model a line (and its expectations on the next), so the table reads as one.
# fmt: off
ROWS = [
    ("meta-llama/Llama-3.1-8B-Instruct", "llama", "LlamaForCausalLM", [TOOLS, LLAMA31], False, None,
     ("generate", "llama3_json", None), ("generate", "llama3", None)),
    ("meta-llama/Llama-3.2-3B-Instruct", "llama", "LlamaForCausalLM", [TOOLS, LLAMA31], False, None,
     ("generate", "llama3_json", None), ("generate", "llama3", None)),
    ("meta-llama/Llama-3.3-70B-Instruct", "llama", "LlamaForCausalLM", [TOOLS, LLAMA31], False, None,
     ("generate", "llama3_json", None), ("generate", "llama3", None)),
    ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "llama4", "Llama4ForConditionalGeneration", [TOOLS], False, None,
     ("generate", "llama4_pythonic", None), ("generate", "pythonic", None)),
    ("NousResearch/Hermes-3-Llama-3.1-8B", "llama", "LlamaForCausalLM", [TOOLS, HERMES], False, None,
     ("generate", "hermes", None), ("generate", "hermes", None)),
    ("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "llama", "LlamaForCausalLM", [THINK], False, None,
     ("generate", None, "deepseek_r1"), ("generate", None, "deepseek-r1")),
    ("Qwen/Qwen2.5-7B-Instruct", "qwen2", "Qwen2ForCausalLM", [TOOLS, HERMES], False, None,
     ("generate", "hermes", None), ("generate", "qwen25", None)),
    ("Qwen/QwQ-32B", "qwen2", "Qwen2ForCausalLM", [TOOLS, HERMES, THINK], False, None,
     ("generate", "hermes", "deepseek_r1"), ("generate", "qwen25", "deepseek-r1")),
    ("Qwen/Qwen3-8B", "qwen3", "Qwen3ForCausalLM", [TOOLS, HERMES, THINK], False, None,
     ("generate", "hermes", "qwen3"), ("generate", "qwen", "qwen3")),
    ("Qwen/Qwen3-30B-A3B", "qwen3_moe", "Qwen3MoeForCausalLM", [TOOLS, HERMES, THINK], False, None,
     ("generate", "hermes", "qwen3"), ("generate", "qwen", "qwen3")),
    ("Qwen/Qwen3-Coder-30B-A3B-Instruct", "qwen3_moe", "Qwen3MoeForCausalLM",
     [TOOLS, HERMES, QWEN3_CODER], False, None,
     ("generate", "qwen3_coder", None), ("generate", "qwen3_coder", None)),
    ("Qwen/Qwen3-Embedding-0.6B", "qwen3", "Qwen3ForCausalLM", [THINK], True, None,
     ("embed", None, None), ("embed", None, None)),
    # TASK=generate over modules.json: vLLM is told --runner generate, or its auto runner would pool it.
    ("Qwen/Qwen3-Embedding-0.6B-as-chat", "qwen3", "Qwen3ForCausalLM", [THINK], True, "generate",
     ("generate", None, "qwen3"), ("generate", None, "qwen3")),
    # The causal LM scored by its yes/no logits: vLLM's recipe (--hf-overrides); sglang has none (REFUSED).
    ("Qwen/Qwen3-Reranker-0.6B", "qwen3", "Qwen3ForCausalLM", [THINK], False, "score",
     ("score", None, None), REFUSED),
    ("mistralai/Mistral-7B-Instruct-v0.3", "mistral", "MistralForCausalLM", [TOOLS, MISTRAL], False, None,
     ("generate", "mistral", None), ("generate", "mistral", None)),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral", "MixtralForCausalLM", ["[INST]"], False, None,
     ("generate", None, None), ("generate", None, None)),
    ("deepseek-ai/DeepSeek-V3", "deepseek_v3", "DeepseekV3ForCausalLM", [TOOLS, DEEPSEEK], False, None,
     ("generate", "deepseek_v3", None), ("generate", "deepseekv3", None)),
    ("deepseek-ai/DeepSeek-R1-0528", "deepseek_v3", "DeepseekV3ForCausalLM", [TOOLS, DEEPSEEK, THINK], False, None,
     ("generate", "deepseek_v3", "deepseek_r1"), ("generate", "deepseekv3", "deepseek-r1")),
    ("deepseek-ai/DeepSeek-V3.1", "deepseek_v3", "DeepseekV3ForCausalLM",
     [TOOLS, DEEPSEEK, THINK, "thinking"], False, None,
     ("generate", "deepseek_v31", "deepseek_v3"), ("generate", "deepseekv31", "deepseek-v3")),
    ("openai/gpt-oss-20b", "gpt_oss", "GptOssForCausalLM", [TOOLS], False, None,
     ("generate", "openai", "openai_gptoss"), ("generate", "gpt-oss", "gpt-oss")),
    ("ibm-granite/granite-3.3-8b-instruct", "granite", "GraniteForCausalLM", [TOOLS, "thinking"], False, None,
     ("generate", "granite", "granite"), ("generate", None, None)),
    ("microsoft/Phi-4-mini-instruct", "phi3", "Phi3ForCausalLM", [TOOLS, "<|tool|>"], False, None,
     ("generate", "phi4_mini_json", None), ("generate", None, None)),
    ("zai-org/GLM-4.5-Air", "glm4_moe", "Glm4MoeForCausalLM", [TOOLS, THINK], False, None,
     ("generate", "glm45", "glm45"), ("generate", "glm45", "glm45")),
    ("moonshotai/Kimi-K2-Instruct", "kimi_k2", "DeepseekV3ForCausalLM", [TOOLS], False, None,
     ("generate", "kimi_k2", None), ("generate", "kimi_k2", None)),
    ("google/gemma-2-9b-it", "gemma2", "Gemma2ForCausalLM", ["<start_of_turn>"], False, None,
     ("generate", None, None), ("generate", None, None)),
    ("google/gemma-3-27b-it", "gemma3", "Gemma3ForConditionalGeneration", ["<start_of_turn>"], False, None,
     ("generate", None, None), ("generate", None, None)),
    ("llava-hf/llava-1.5-7b-hf", "llava", "LlavaForConditionalGeneration", ["USER:"], False, None,
     ("generate", None, None), ("generate", None, None)),
    ("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration",
     ["<|vision_start|>"], False, None,
     ("generate", None, None), ("generate", None, None)),
    ("BAAI/bge-base-en-v1.5", "bert", "BertModel", None, True, None,
     ("embed", None, None), ("embed", None, None)),
    ("intfloat/e5-large-v2", "bert", "BertModel", None, True, None,
     ("embed", None, None), ("embed", None, None)),
    ("Alibaba-NLP/gte-Qwen2-1.5B-instruct", "qwen2", "Qwen2ForCausalLM", [HERMES], True, None,
     ("embed", None, None), ("embed", None, None)),
    ("cross-encoder/ms-marco-MiniLM-L6-v2", "bert", "BertForSequenceClassification", None, False, None,
     ("classify", None, None), ("classify", None, None)),
]
# fmt: on
IDS = [row[0].split("/")[1] for row in ROWS]
# A small common body: features depend on the facts above, not on the size.
SHAPE = {
    "hidden_size": 512,
    "intermediate_size": 1024,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "vocab_size": 32000,
    "max_position_embeddings": 8192,
    "torch_dtype": "bfloat16",
}


# The published configs' multimodal parts (their vision towers' weights are not generated: sizes do not
# matter here).
VISION = {"vision_config": {"model_type": "vision"}}
EXTRA_CONFIG = {
    "meta-llama/Llama-4-Scout-17B-16E-Instruct": VISION,
    "google/gemma-3-27b-it": VISION,
    "llava-hf/llava-1.5-7b-hf": VISION,
    "Qwen/Qwen2.5-VL-7B-Instruct": VISION,
}
# What each multimodal model is allowed per request by default (families.DEFAULT_MM_LIMITS of its inputs).
MM_LIMITS = {
    "meta-llama/Llama-4-Scout-17B-16E-Instruct": (("image", 4),),
    "google/gemma-3-27b-it": (("image", 4),),
    "llava-hf/llava-1.5-7b-hf": (("image", 4),),
    "Qwen/Qwen2.5-VL-7B-Instruct": (("image", 4), ("video", 1)),
}


def build(root: Path, row) -> Path:
    name, model_type, architecture, markers, sentence_transformers = row[:5]
    folder = root / name.replace("/", "__")
    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    config = {"architectures": [architecture], "model_type": model_type, **SHAPE, **EXTRA_CONFIG.get(name, {})}
    (folder / "config.json").write_text(json.dumps(config))
    modelgen.write_shards(folder, modelgen.architecture_tensors(config), 1)
    if markers is not None:
        template = "{% for message in messages %}{{ message['content'] }}{% endfor %}" + " ".join(markers)
        (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}))
    if sentence_transformers:
        (folder / "modules.json").write_text(
            json.dumps([{"idx": 0, "type": "sentence_transformers.models.Transformer"}])
        )
    return folder


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("families")


def planned(root: Path, row, engine: str):
    env = {"TARGET_MODEL": str(build(root, row)), "ENGINE": engine, "ACCELERATORS": "H100:1"}
    if row[5]:
        env["TASK"] = row[5]
    return plan_env(env)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_each_family_gets_its_engines_parsers_and_task(root, row):
    for engine, expected in (("vllm", row[6]), ("sglang", row[7])):
        if expected is REFUSED:
            with pytest.raises(UnsupportedByEngineError, match=rf"TASK={row[5]}: {engine} serves classifiers"):
                planned(root, row, engine)
            continue
        _, plan = planned(root, row, engine)
        assert (plan.task, plan.tool_call_parser, plan.reasoning_parser) == expected, engine
        assert plan.mm_limits == MM_LIMITS.get(row[0]), engine
        for parser in (plan.tool_call_parser, plan.reasoning_parser):
            assert parser is None or any(parser in reason for reason in plan.reasons)


def test_the_table_covers_the_families_the_issue_names():
    assert len(ROWS) >= 25
    assert {row[6][0] for row in ROWS} == set(families.TASKS)
    assert len({(row[1], row[6][1], row[7][1]) for row in ROWS}) >= 15


def test_every_family_parser_is_one_its_engine_has():
    for family in families.FAMILIES:
        for engine, parser in family.tools.items():
            assert parser in ENGINES[engine].tool_parsers, (family.name, engine, parser)
        for engine, parser in family.reasoning.items():
            assert parser in ENGINES[engine].reasoning_parsers, (family.name, engine, parser)


def test_a_family_without_a_parser_in_this_engine_says_so(root):
    row = next(row for row in ROWS if row[0].startswith("ibm-granite"))
    _, plan = planned(root, row, "sglang")
    assert any("sglang has no parser for Granite (vllm has granite)" in reason for reason in plan.reasons)


def test_a_template_without_tools_gets_no_parser_and_the_reason(root, tmp_path):
    row = ("x/Qwen2.5-no-tools", "qwen2", "Qwen2ForCausalLM", [HERMES], False, None)
    _, plan = planned(tmp_path, row, "vllm")
    assert plan.tool_call_parser is None
    assert any("its chat template takes no tools (TOOL_CALL_PARSER=hermes to force it)" in r for r in plan.reasons)


def test_a_model_without_a_chat_template_is_warned_about(root):
    row = ("x/no-template", "llama", "LlamaForCausalLM", None, False, None)
    _, plan = planned(root, row, "vllm")
    assert any("has no chat template" in warning and "CHAT_TEMPLATE" in warning for warning in plan.warnings)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_explicit_parsers_are_checked_against_the_engine(root, engine):
    row = ROWS[0]
    folder = str(build(root, row))
    base = {"TARGET_MODEL": folder, "ENGINE": engine, "ACCELERATORS": "H100:1"}
    name = {"vllm": "deepseek_r1", "sglang": "deepseek-r1"}[engine]
    assert plan_env({**base, "REASONING_PARSER": name})[1].reasoning_parser == name
    assert plan_env({**base, "TOOL_CALL_PARSER": "none"})[1].tool_call_parser is None
    other = {"vllm": "deepseek-r1", "sglang": "deepseek_r1"}[engine]  # the other engine's spelling
    with pytest.raises(UnsupportedByEngineError) as caught:
        plan_env({**base, "REASONING_PARSER": other})
    assert f"REASONING_PARSER={other} is not a parser {engine} has" in caught.value.message
    assert name in caught.value.hint


def test_generate_on_an_encoder_is_refused(root):
    row = next(row for row in ROWS if row[0] == "BAAI/bge-base-en-v1.5")
    with pytest.raises(SettingError, match=r"TASK=generate but .* cannot generate"):
        plan_env({"TARGET_MODEL": str(build(root, row)), "ACCELERATORS": "H100:1", "TASK": "generate"})


@pytest.mark.engines
@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_the_engines_parse_every_familys_flags_and_have_our_parser_names(root, engine, engine_parser):
    cases = []
    for row in ROWS:
        if row[6 if engine == "vllm" else 7] is REFUSED:
            continue
        settings, plan = planned(root, row, engine)
        command = launch.engine_command(ENGINES[engine], settings, plan, python="python3")
        cases.append((plan, list(command.argv[3:])))
    parsed = engine_parser(engine, [argv for _, argv in cases])
    facts = parsed["facts"]
    assert sorted(ENGINES[engine].tool_parsers) == facts["tool_parsers"]
    assert sorted(ENGINES[engine].reasoning_parsers) == facts["reasoning_parsers"]
    for (plan, argv), result in zip(cases, parsed["results"], strict=True):
        assert result["ok"], (argv, result["error"])
        args = result["args"]
        assert (args["tool_call_parser"] or None) == plan.tool_call_parser, argv  # vLLM: "" when unset
        assert (args["reasoning_parser"] or None) == plan.reasoning_parser, argv
        limits = dict(plan.mm_limits) if plan.mm_limits is not None else None
        if engine == "vllm":
            assert args["enable_auto_tool_choice"] == bool(plan.tool_call_parser)
            assert (args["limit_mm_per_prompt"] or None) == limits, argv
            runner = (
                "pooling" if plan.task != "generate" else "auto" if plan.detected_task == "generate" else "generate"
            )
            assert args["runner"] == runner, argv
            overrides = json.loads(plan.config_overrides) if plan.config_overrides else {}
            assert (args["hf_overrides"] or {}) == overrides, argv
        else:
            assert args["is_embedding"] == (plan.task != "generate"), argv
            assert args["limit_mm_data_per_request"] == limits, argv


@pytest.mark.engines
def test_sglangs_classifier_architectures_are_its_own(engine_envs):
    """Read from the pinned sglang's source (importing it needs torchvision, which the parser environment
    lacks): the architectures it serves as classifiers and rerankers; vLLM converts any (None)."""
    source = next(engine_envs["sglang"].glob("lib/python3*/site-packages/sglang/srt/configs/embedding_model_spec.py"))
    tree = ast.parse(source.read_text())
    found = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_CLASSIFICATION_ARCHITECTURES"
    )
    assert ENGINES["sglang"].classifier_architectures == found
    assert ENGINES["vllm"].classifier_architectures is None


def test_sglang_refuses_a_classifier_it_would_only_embed(root):
    """Detected, not asked: a *ForSequenceClassification sglang has no classifier for would be served as an
    embedding model; the plan is refused instead, naming TASK as set and as resolved."""
    row = ("test/Mistral-Classifier", "mistral", "MistralForSequenceClassification", None, False, None)
    with pytest.raises(UnsupportedByEngineError, match=r"TASK=auto \(classify\): sglang serves classifiers"):
        planned(root, row, "sglang")
    _, plan = planned(root, row, "vllm")
    assert plan.task == "classify" and plan.config_overrides is None


def test_qwen3_reranker_gets_vllms_recipe(root):
    row = next(row for row in ROWS if row[0] == "Qwen/Qwen3-Reranker-0.6B")
    settings, plan = planned(root, row, "vllm")
    argv = list(launch.engine_command(ENGINES["vllm"], settings, plan, python="python3", write_files=True).argv)
    overrides = json.loads(argv[argv.index("--hf-overrides") + 1])
    assert overrides == {
        "architectures": ["Qwen3ForSequenceClassification"],
        "classifier_from_token": ["no", "yes"],
        "is_original_qwen3_reranker": True,
    }
    assert "--convert" not in argv and argv[argv.index("--runner") + 1] == "pooling"
    assert any("scored by its yes/no tokens" in reason for reason in plan.reasons)


def test_text_only_and_wrong_modalities(root):
    row = next(row for row in ROWS if row[0] == "Qwen/Qwen2.5-VL-7B-Instruct")
    base = {"TARGET_MODEL": str(build(root, row)), "ACCELERATORS": "H100:1"}
    settings, plan = plan_env({**base, "ENGINE": "vllm", "MM_LIMIT": "0"})
    assert plan.mm_limits == ()
    argv = launch.engine_command(ENGINES["vllm"], settings, plan, python="python3").argv
    assert "--language-model-only" in argv and "--limit-mm-per-prompt" not in argv
    assert plan_env({**base, "MM_LIMIT": "image=2"})[1].mm_limits == (("image", 2), ("video", 0))
    with pytest.raises(SettingError, match=r"MM_LIMIT asks for audio but .* takes image, video"):
        plan_env({**base, "MM_LIMIT": "image=1,audio=1"})
    text = next(row for row in ROWS if row[0] == "Qwen/Qwen2.5-7B-Instruct")
    plan = plan_env({"TARGET_MODEL": str(build(root, text)), "ACCELERATORS": "H100:1", "MM_LIMIT": "image=2"})[1]
    assert plan.mm_limits is None and any("takes only text" in warning for warning in plan.warnings)


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "file"])
def test_chat_template_given_decides_the_parsers_and_reaches_the_engine(root, tmp_path, inline):
    row = ("x/llama-no-template", "llama", "LlamaForCausalLM", None, False, None)
    template = "{%- if tools %}{{ tools }}<tool_call>{%- endif %}{% for m in messages %}{{ m.content }}{% endfor %}"
    value = template
    if not inline:
        value = str(tmp_path / "chat.jinja")
        Path(value).write_text(template)
    env = {"TARGET_MODEL": str(build(root, row)), "ENGINE": "vllm", "ACCELERATORS": "H100:1", "CHAT_TEMPLATE": value}
    settings, plan = plan_env(env)
    assert plan.tool_call_parser == "hermes"
    assert not any("no chat template" in warning for warning in plan.warnings)
    argv = list(launch.engine_command(ENGINES["vllm"], settings, plan, python="python3", write_files=True).argv)
    given = argv[argv.index("--chat-template") + 1]
    assert Path(given).read_text() == template


def test_a_pooling_model_is_planned_as_prompts_only(root):
    row = next(row for row in ROWS if row[0] == "Qwen/Qwen3-Embedding-0.6B")
    plan = plan_env({"TARGET_MODEL": str(build(root, row)), "ENGINE": "vllm", "ACCELERATORS": "L4:1"})[1]
    assert any(reason.startswith("embed: requests are prompts with no decode") for reason in plan.reasons)
    assert not any("run at once" in warning for warning in plan.warnings)


# Whose attention reads each prompt both ways, by the config facts vLLM goes by (families.bidirectional):
# (row as in ROWS, config.json additions, bidirectional). vLLM then keeps no KV cache (EncoderOnlyAttention);
# sglang sizes its token pool as for any model.
# fmt: off
KV_ROWS = [
    (ROWS[IDS.index("bge-base-en-v1.5")][:6], {}, True),
    (("x/modernbert-embed", "modernbert", "ModernBertModel", None, True, None), {}, True),
    (("x/llama-bidirectional", "llama", "LlamaBidirectionalModel", None, True, None), {"pooling": "avg"}, True),
    (("x/gemma3-text-embed", "gemma3_text", "Gemma3TextModel", None, True, None),
     {"use_bidirectional_attention": True}, True),
    (("x/qwen3-not-causal", "qwen3", "Qwen3Model", None, True, None), {"is_causal": False}, True),
    (ROWS[IDS.index("gte-Qwen2-1.5B-instruct")][:6], {}, False),
    (("x/gemma3-text-causal", "gemma3_text", "Gemma3TextModel", None, True, None),
     {"use_bidirectional_attention": False}, False),
]
# fmt: on


@pytest.mark.parametrize(("row", "extra", "both_ways"), KV_ROWS, ids=[row[0].split("/")[1] for row, _, _ in KV_ROWS])
def test_bidirectional_attention_gets_no_kv_cache_on_vllm(tmp_path, row, extra, both_ways):
    folder = build(tmp_path, row)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **extra}))
    assert (families.bidirectional({**config, **extra}) is not None) is both_ways
    for engine in ("vllm", "sglang"):
        plan = plan_env({"TARGET_MODEL": str(folder), "ENGINE": engine, "ACCELERATORS": "L4:1"})[1]
        kept = not both_ways or ENGINES[engine].memory.encoder_kv_cache
        memory = plan.memory_per_gpu
        assert plan.kv_cache is kept, engine
        assert (memory.kv_tokens > 0, memory.kv_cache_bytes > 0, plan.concurrency is not None) == (kept,) * 3
        assert (plan.kv_bytes_per_token > 0) is kept
        assert any("no KV cache: " in reason for reason in plan.reasons) is not kept, plan.reasons


@pytest.mark.engines
def test_the_bidirectional_architectures_are_vllms_own(engine_envs):
    """The architectures whose config hook in vLLM's model_executor/models/config.py sets is_causal = False
    whatever the checkpoint says (an assignment before any branch of the hook)."""
    source = next(engine_envs["vllm"].glob("lib/python3*/site-packages/vllm/model_executor/models/config.py"))
    tree = ast.parse(source.read_text())

    def sets_it_first(method: ast.FunctionDef) -> bool:
        for statement in method.body:
            if isinstance(statement, (ast.If, ast.Return, ast.Raise)):
                return False  # what follows a branch depends on the checkpoint (Jina V5: encoders only)
            if (
                isinstance(statement, ast.Assign)
                and isinstance(statement.value, ast.Constant)
                and statement.value.value is False
                and any(
                    isinstance(target, ast.Attribute) and target.attr == "is_causal" for target in statement.targets
                )
            ):
                return True
        return False

    def always_bidirectional(hook: ast.ClassDef) -> bool:
        return any(isinstance(method, ast.FunctionDef) and sets_it_first(method) for method in hook.body)

    hooks = {node.name for node in tree.body if isinstance(node, ast.ClassDef) and always_bidirectional(node)}
    table = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "MODELS_CONFIG_MAP"
    )
    assert isinstance(table, ast.Dict)
    found = {
        ast.literal_eval(key)
        for key, value in zip(table.keys, table.values, strict=True)
        if getattr(value, "id", "") in hooks
    }
    assert found == families.BIDIRECTIONAL_ARCHITECTURES
