"""Speculative decoding: one vocabulary of methods over both engines (pure).

SPEC_METHOD takes either engine's spelling (eagle3, EAGLE3, NEXTN, STANDALONE);
it is normalised to the names below, and each engine maps them back to its own
(`Engine.speculative_methods`). A method an engine lacks is refused before any
download, naming the engines that have it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .engines.base import Engine
from .errors import MissingSettingError, SettingError, UnsupportedByEngineError
from .model.shape import ModelShape

# method -> does it need SPEC_DRAFT_MODEL?
METHODS = {
    "eagle": True,
    "eagle3": True,
    "draft_model": True,  # a separate small LM of the same family (sglang: STANDALONE)
    "dflash": True,
    "mtp": False,  # the model's own multi-token-prediction layers (DeepSeek V3, GLM-4.5...)
    "ngram": False,  # prompt lookup, no extra weights
    "suffix": False,
}
ALIASES = {
    "nextn": "mtp",
    "deepseek_mtp": "mtp",
    "standalone": "draft_model",
    "draft-model": "draft_model",
    "eagle-3": "eagle3",
    "prompt_lookup": "ngram",
}


@dataclass(frozen=True)
class Speculation:
    method: str
    draft_model: str | None
    num_tokens: int | None  # None: the engine's own default


def normalise(method: str) -> str:
    text = method.strip().lower()
    text = ALIASES.get(text, text.replace("-", "_"))
    if text not in METHODS:
        raise SettingError(
            f"SPEC_METHOD={method!r} is not a speculative decoding method",
            f"for example SPEC_METHOD=eagle3; known: {', '.join(METHODS)}",
        )
    return text


def resolve(
    enabled: bool,
    method: str | None,
    draft_model: str | None,
    num_tokens: int | None,
    shape: ModelShape,
    engine: Engine,
) -> Speculation | None:
    """The speculation to run, or None; raises for combinations no engine can start."""
    if not enabled:
        return None
    if method:
        chosen = normalise(method)
    elif draft_model:
        chosen = "eagle3"
    else:
        chosen = "mtp" if shape.mtp_layers else "ngram"
    if chosen not in engine.speculative_methods:
        raise UnsupportedByEngineError(
            f"SPEC_METHOD={chosen} is not available in {engine.name}",
            f"use one of: {', '.join(engine.speculative_methods)}",
        )
    if METHODS[chosen] and not draft_model:
        raise MissingSettingError(
            f"SPEC_DRAFT_MODEL is not set but SPEC_METHOD={chosen} needs a draft model",
            "for example SPEC_DRAFT_MODEL=yuhuili/EAGLE3-LLaMA3.1-Instruct-8B, or SPEC_METHOD=ngram (no draft)",
        )
    if chosen == "mtp" and not draft_model and not shape.mtp_layers:
        raise SettingError(
            "SPEC_METHOD=mtp needs a model with multi-token-prediction layers "
            "(config.json num_nextn_predict_layers), and this one has none",
            "for example SPEC_METHOD=ngram, or SPEC_METHOD=eagle3 with SPEC_DRAFT_MODEL",
        )
    return Speculation(method=chosen, draft_model=draft_model, num_tokens=num_tokens)
