"""What the endpoint turns on for this model: task, tool-call parser, reasoning parser (pure; docs/adr/0021).

TASK, TOOL_CALL_PARSER and REASONING_PARSER are `auto` by default: the model's family and chat template
(model.families) decide, and each decision is a reason in the plan. A name the user gives must be one of
the engine's own (`Engine.tool_parsers` / `Engine.reasoning_parsers`), refused with the valid names before
anything is downloaded otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .engines.base import Engine
from .errors import SettingError, UnsupportedByEngineError
from .model import families
from .model.info import ModelInfo

if TYPE_CHECKING:  # settings is an edge module (it reads the environment)
    from .settings import Settings


@dataclass(frozen=True)
class Serving:
    task: str  # families.TASKS
    detected_task: str  # what the model itself suggests (an engine's own auto-detection would pick it)
    tool_call_parser: str | None  # the engine's spelling; None: no tool calling
    reasoning_parser: str | None
    # Inputs per request of a multimodal model, by modality; () text only; None: the model takes only text.
    mm_limits: tuple[tuple[str, int], ...] | None = None
    config_overrides: str | None = None  # JSON: config.json as the engine should read it (a reranker recipe)


def resolve(settings: Settings, model: ModelInfo, engine: Engine, reasons: list[str], warnings: list[str]) -> Serving:
    template = model.files.chat_template
    detected, why = families.task_of(model.config, model.files)
    task = _task(settings, model, (detected, why), reasons)
    limits = _mm_limits(settings, model, reasons, warnings)
    if task != "generate":
        overrides = _pooling_overrides((settings.task, task), model, engine, reasons)
        return Serving(task, detected, None, None, limits, overrides)
    if template is None and not settings.chat_template:
        warnings.append(
            f"{model.name} has no chat template (tokenizer_config.json or chat_template.jinja): "
            "/v1/chat/completions will fail; /v1/completions works. Set CHAT_TEMPLATE to a Jinja file."
        )
    family = families.family_of(model.config, template)
    tools = _parser(
        ("TOOL_CALL_PARSER", settings.tool_call_parser, "tool calls"),
        engine,
        engine.tool_parsers,
        (family, family.tools if family else {}),
        (families.takes_tools(template), "its chat template takes no tools"),
        reasons,
    )
    thinking = _parser(
        ("REASONING_PARSER", settings.reasoning_parser, "reasoning"),
        engine,
        engine.reasoning_parsers,
        (family, family.reasoning if family else {}),
        (family is not None and families.reasons_for_thinking(family, template), "its chat template does not think"),
        reasons,
    )
    if family is not None and (tools or thinking):
        reasons.append(f"family: {family.name} (model_type {families.model_type(model.config)}, chat template).")
    return Serving(task, detected, tools, thinking, limits)


def _pooling_overrides(tasks: tuple[str, str], model: ModelInfo, engine: Engine, reasons: list[str]) -> str | None:
    """A classifier or reranker: the config overrides of its family's recipe where a causal LM needs one,
    refused where the engine serves only its own classifier architectures. `tasks`: TASK as set, as resolved."""
    asked, task = tasks
    if task not in ("classify", "score"):
        return None
    architecture = str((model.config.get("architectures") or [""])[0])
    family = families.family_of(model.config, model.files.chat_template)
    recipe = family.reranker_overrides.get(engine.name) if family else None
    overrides: dict[str, object] = {}
    if recipe and architecture.endswith("ForCausalLM"):
        architecture = architecture.removesuffix("ForCausalLM") + "ForSequenceClassification"
        overrides = {"architectures": [architecture], **recipe}
        reasons.append(
            f"reranker: {family.name if family else ''} causal LM scored by its yes/no tokens as {architecture} "
            f"(the family's recipe: {json.dumps(recipe)})."
        )
    allowed = engine.classifier_architectures
    if allowed is not None and architecture not in allowed:
        raise UnsupportedByEngineError(
            f"TASK={asked if asked == task else f'{asked} ({task})'}: {engine.name} serves classifiers and "
            f"rerankers of {', '.join(sorted(allowed))} "
            f"only, not {architecture}",
            "use a *ForSequenceClassification checkpoint of the model, or ENGINE=vllm, which converts causal LMs",
        )
    return json.dumps(overrides, separators=(",", ":")) if overrides else None


def _mm_limits(
    settings: Settings, model: ModelInfo, reasons: list[str], warnings: list[str]
) -> tuple[tuple[str, int], ...] | None:
    taken = families.modalities(model.config)
    asked = settings.mm_limit
    if not taken:
        if asked:
            warnings.append(f"MM_LIMIT is set but {model.name} takes only text: it is ignored.")
        return None
    if asked is not None and (extra := sorted(set(asked) - set(taken))):
        raise SettingError(
            f"MM_LIMIT asks for {', '.join(extra)} but {model.name} takes {', '.join(taken)}",
            f"for example MM_LIMIT={','.join(f'{name}=1' for name in taken)}, or MM_LIMIT=0 for text only",
        )
    if asked == {}:
        reasons.append(f"inputs: text only (MM_LIMIT=0): the model's {', '.join(taken)} inputs are turned off.")
        return ()
    limits = {name: (asked or families.DEFAULT_MM_LIMITS).get(name, 0) for name in taken}
    shown = ", ".join(f"{name}={count}" for name, count in limits.items())
    source = "MM_LIMIT" if asked else "the default here (vLLM's own is 999 of each, and it reserves memory for them)"
    reasons.append(f"inputs: at most {shown} per request, by {source}; the vision weights are in the headers.")
    return tuple(limits.items())


def _task(settings: Settings, model: ModelInfo, own: tuple[str, str], reasons: list[str]) -> str:
    """TASK resolved; `own` is the model's own (task, why) from families.task_of."""
    detected, why = own
    if settings.task == "auto":
        if detected != "generate":
            reasons.append(f"task: {detected}, because {why}; served without chat (TASK=generate to override).")
        return detected
    # modules.json alone does not stop a causal LM generating (Qwen3-Embedding): its architecture does.
    by_architecture, because = families.task_of(model.config, families.ModelFiles())
    if settings.task == "generate" and by_architecture != "generate":
        raise SettingError(
            f"TASK=generate but {model.name} cannot generate: {because}",
            "set TASK=embed (or unset TASK) to serve it as an embedding model",
        )
    reasons.append(f"task: {settings.task}, set by TASK (the model itself: {detected}, because {why}).")
    return settings.task


def _parser(
    setting: tuple[str, str, str],
    engine: Engine,
    registered: frozenset[str],
    family: tuple[families.Family | None, Mapping[str, str]],
    template: tuple[bool, str],
    reasons: list[str],
) -> str | None:
    """The parser to pass: `setting` is (variable, value, what it parses), `family` the model's family and its
    parsers by engine, `template` whether the chat template allows it and why not."""
    variable, value, what = setting
    if value == "none":
        return None
    if value != "auto":
        if value not in registered:
            raise UnsupportedByEngineError(
                f"{variable}={value} is not a parser {engine.name} has",
                f"use one of: {', '.join(sorted(registered))} (or auto, none)",
            )
        reasons.append(f"{what}: parser {value}, set by {variable}.")
        return value
    known, parsers = family
    allowed, not_allowed = template
    choice = parsers.get(engine.name)
    if known is None or not allowed:
        if known is not None and choice:
            reasons.append(f"{what}: none, since {not_allowed} ({variable}={choice} to force it).")
        return None
    if choice is None:
        others = ", ".join(f"{name} has {parser}" for name, parser in parsers.items()) or "no engine has one"
        reasons.append(f"{what}: {engine.name} has no parser for {known.name} ({others}); they stay in the content.")
        return None
    reasons.append(f"{what}: {engine.name}'s parser {choice} for this family.")
    return choice
