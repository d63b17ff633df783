"""What each model family needs turned on: tool-call and reasoning parsers, and its task (pure data).

One table, `FAMILIES`, read top to bottom: the first family whose config facts and chat-template markers
match is the model's. The chat template decides more than the architecture: it is what the model was
trained to emit (Hermes-3 is a Llama that calls tools the Hermes way), and a template that takes no
`tools` gets no tool parser at all. Parser names are each engine's own spelling at its pinned version
(`Engine.tool_parsers` / `Engine.reasoning_parsers`, checked against the installed engines' registries in
tests/test_contract.py); a family with no parser in an engine has no entry for it, and the plan says so.
Sources for every row: the engines' tool-calling and reasoning docs and recipes (docs/adr/0021).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Chat-template markers of the tool-call formats and of thinking.
HERMES = "<tool_call>"
QWEN3_CODER = "<function="
MISTRAL_TOOLS = "[TOOL_CALLS]"
LLAMA3_IPYTHON = "<|eom_id|>"
PHI4_TOOLS = "<|tool|>"
THINK = "<think>"
DEEPSEEK_TOOLS = "tool▁calls▁begin"  # <｜tool▁calls▁begin｜>, spelled without the full-width bars


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...] = ()  # config.json model_type (or text_config's)
    template_has: tuple[str, ...] = ()  # every one of these occurs in the chat template
    tools: Mapping[str, str] = field(default_factory=dict)  # engine -> its tool-call parser
    reasoning: Mapping[str, str] = field(default_factory=dict)  # engine -> its reasoning parser
    # Reasoning needs these in the template too (a hybrid model's <think>); empty: always (Harmony).
    reasoning_needs: tuple[str, ...] = (THINK,)
    # engine -> config overrides that serve this family's causal LM as a reranker by the logits of a yes and a
    # no token (TASK=score); the architecture becomes the family's *ForSequenceClassification.
    reranker_overrides: Mapping[str, Mapping[str, object]] = field(default_factory=dict)


FAMILIES: tuple[Family, ...] = (
    Family(
        "gpt-oss (Harmony)",
        ("gpt_oss",),
        tools={"vllm": "openai", "sglang": "gpt-oss"},
        reasoning={"vllm": "openai_gptoss", "sglang": "gpt-oss"},
        reasoning_needs=(),
    ),
    Family(
        "DeepSeek-V3.2",
        ("deepseek_v32",),
        tools={"vllm": "deepseek_v32", "sglang": "deepseekv32"},
        reasoning={"vllm": "deepseek_v3", "sglang": "deepseek-v3"},
        reasoning_needs=("thinking",),
    ),
    # V3.1 and later: one hybrid template switched by `thinking`.
    Family(
        "DeepSeek-V3.1",
        ("deepseek_v3",),
        ("thinking", DEEPSEEK_TOOLS),
        tools={"vllm": "deepseek_v31", "sglang": "deepseekv31"},
        reasoning={"vllm": "deepseek_v3", "sglang": "deepseek-v3"},
        reasoning_needs=("thinking",),
    ),
    Family(
        "DeepSeek-R1",
        ("deepseek_v3",),
        (THINK,),
        tools={"vllm": "deepseek_v3", "sglang": "deepseekv3"},
        reasoning={"vllm": "deepseek_r1", "sglang": "deepseek-r1"},
    ),
    Family("DeepSeek-V3", ("deepseek_v3",), tools={"vllm": "deepseek_v3", "sglang": "deepseekv3"}),
    Family(
        "Kimi-K2",
        ("kimi_k2",),
        tools={"vllm": "kimi_k2", "sglang": "kimi_k2"},
        reasoning={"vllm": "kimi_k2", "sglang": "kimi_k2"},
    ),
    Family(
        "GLM-4.5",
        ("glm4_moe",),
        tools={"vllm": "glm45", "sglang": "glm45"},
        reasoning={"vllm": "glm45", "sglang": "glm45"},
    ),
    Family(
        "Qwen3-Coder", ("qwen3", "qwen3_moe"), (QWEN3_CODER,), tools={"vllm": "qwen3_coder", "sglang": "qwen3_coder"}
    ),
    Family(
        "Qwen3",
        ("qwen3", "qwen3_moe"),
        tools={"vllm": "hermes", "sglang": "qwen"},
        reasoning={"vllm": "qwen3", "sglang": "qwen3"},
        # Qwen3-Reranker's recipe (vLLM 0.32 model_executor/models/config.py
        # Qwen3ForSequenceClassificationConfig: a 2-way softmax over these tokens); sglang 0.5.23 has none.
        reranker_overrides={"vllm": {"classifier_from_token": ["no", "yes"], "is_original_qwen3_reranker": True}},
    ),
    # QwQ and the R1 distills think the R1 way on a Qwen2 or Llama body.
    Family(
        "Qwen2.5",
        ("qwen2", "qwen2_moe"),
        tools={"vllm": "hermes", "sglang": "qwen25"},
        reasoning={"vllm": "deepseek_r1", "sglang": "deepseek-r1"},
    ),
    Family("Llama 4", ("llama4", "llama4_text"), tools={"vllm": "llama4_pythonic", "sglang": "pythonic"}),
    Family("Hermes (Llama)", ("llama",), (HERMES,), tools={"vllm": "hermes", "sglang": "hermes"}),
    Family(
        "Llama 3.1-3.3",
        ("llama",),
        (LLAMA3_IPYTHON,),
        tools={"vllm": "llama3_json", "sglang": "llama3"},
        reasoning={"vllm": "deepseek_r1", "sglang": "deepseek-r1"},
    ),
    Family("Llama (R1 distill)", ("llama",), reasoning={"vllm": "deepseek_r1", "sglang": "deepseek-r1"}),
    Family(
        "Mistral / Mixtral",
        ("mistral", "mixtral", "mistral3"),
        tools={"vllm": "mistral", "sglang": "mistral"},
        reasoning={"vllm": "mistral", "sglang": "mistral"},
        reasoning_needs=("[THINK]",),
    ),
    Family(
        "Granite",
        ("granite", "granitemoe", "granitemoehybrid"),
        tools={"vllm": "granite"},
        reasoning={"vllm": "granite"},
        reasoning_needs=("thinking",),
    ),
    Family("Phi-4-mini", ("phi3",), (PHI4_TOOLS,), tools={"vllm": "phi4_mini_json"}),
    Family("InternLM2", ("internlm2",), tools={"vllm": "internlm"}),
    Family("Gemma", ("gemma", "gemma2", "gemma3", "gemma3_text")),
)

# Tasks as TASK names them; pooling ones serve /v1/embeddings, /classify, /score or /rerank.
TASKS = ("generate", "embed", "classify", "score")
# Encoder-only model types, which only pool.
ENCODERS = frozenset({"bert", "roberta", "xlm-roberta", "nomic_bert", "modernbert", "new", "distilbert", "deberta-v2"})
# Decoder architectures run with bidirectional attention whatever config.json says: the ones vLLM 0.32 always
# sets `is_causal = False` for (model_executor/models/config.py, MODELS_CONFIG_MAP; tests/test_families.py
# reads them from the installed source). JinaEmbeddingsV5Model is left out: only its encoder checkpoints are.
BIDIRECTIONAL_ARCHITECTURES = frozenset(
    {
        "LlamaBidirectionalForSequenceClassification",
        "LlamaBidirectionalModel",
        "LlamaNemotronVLForSequenceClassification",
        "LlamaNemotronVLModel",
        "VoyageQwen3BidirectionalEmbedModel",
    }
)


# Multimodal inputs by config facts. Video: the families whose processors take it (vLLM's registry).
VIDEO_MODEL_TYPES = frozenset(
    {
        "qwen2_vl",
        "qwen2_5_vl",
        "qwen3_vl",
        "qwen3_vl_moe",
        "qwen2_5_omni",
        "llava_onevision",
        "llava_next_video",
        "glm4v",
    }
)
AUDIO_MODEL_TYPES = frozenset({"qwen2_audio", "qwen2_5_omni", "ultravox", "voxtral", "phi4mm", "gemma3n"})
# The inputs a multimodal model gets per request unless MM_LIMIT says otherwise: vLLM's own default is 999
# of each, and it profiles memory for the most the limits allow.
DEFAULT_MM_LIMITS = {"image": 4, "video": 1, "audio": 1}


def modalities(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The non-text inputs the model takes: image, video, audio (in that order)."""
    kind = model_type(config)
    taken = []
    if "vision_config" in config or any(key in config for key in ("image_token_index", "image_token_id")):
        taken.append("image")
    if kind in VIDEO_MODEL_TYPES:
        taken.append("video")
    if "audio_config" in config or kind in AUDIO_MODEL_TYPES:
        taken.append("audio")
    return tuple(taken)


@dataclass(frozen=True)
class ModelFiles:
    """The small files besides config.json that decide how a model is served (None or False: absent)."""

    chat_template: str | None = None  # tokenizer_config.json's chat_template, or chat_template.jinja
    sentence_transformers: bool = False  # modules.json: a sentence-transformers embedding model


def model_type(config: Mapping[str, Any]) -> str:
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else None
    return str(config.get("model_type") or (text or {}).get("model_type") or "")


def family_of(config: Mapping[str, Any], template: str | None) -> Family | None:
    kind = model_type(config)
    for family in FAMILIES:
        if kind in family.model_types and all(marker in (template or "") for marker in family.template_has):
            return family
    return None


def takes_tools(template: str | None) -> bool:
    """Whether the chat template renders the request's `tools` (Jinja reads the variable by name)."""
    return template is not None and "tools" in template


def reasons_for_thinking(family: Family, template: str | None) -> bool:
    return all(marker in (template or "") for marker in family.reasoning_needs)


def bidirectional(config: Mapping[str, Any]) -> str | None:
    """Why the model's attention reads each prompt both ways, as an encoder's does, or None when it is causal.
    Such attention keeps nothing for a next token, so an engine may give it no KV cache (MemoryRules)."""
    nested = config.get("text_config")
    text: Mapping[str, Any] = nested if isinstance(nested, dict) else config
    architectures: Sequence[str] = config.get("architectures") or []
    if model_type(config) in ENCODERS:
        return f"model_type {model_type(config)} is an encoder"
    if architectures and architectures[0] in BIDIRECTIONAL_ARCHITECTURES:
        return f"{architectures[0]} attends both ways"
    if text.get("is_causal") is False:
        return "config.json sets is_causal false"
    if text.get("use_bidirectional_attention") is True:
        return "config.json sets use_bidirectional_attention"
    return None


def task_of(config: Mapping[str, Any], files: ModelFiles) -> tuple[str, str]:
    """The model's task and why: (task, reason)."""
    architectures: Sequence[str] = config.get("architectures") or []
    architecture = str(architectures[0]) if architectures else ""
    if files.sentence_transformers:
        return "embed", "modules.json makes it a sentence-transformers embedding model"
    if architecture.endswith("ForSequenceClassification"):
        return "classify", f"{architecture} is a classifier (scores and reranks too)"
    if architecture.endswith(("EmbeddingModel", "ForTextEncoding")) or (
        architecture.endswith("Model") and not architecture.endswith(("ForCausalLM", "LMHeadModel"))
    ):
        return "embed", f"{architecture} has no language-model head: it pools hidden states"
    if model_type(config) in ENCODERS:
        return "embed", f"model_type {model_type(config)} is an encoder"
    return "generate", f"{architecture or 'the model'} generates text"
