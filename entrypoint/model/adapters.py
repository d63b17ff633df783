"""LORA_MODULES' adapters read from a folder or the Hub: adapter_config.json and the weights' header only.

An adapter is refused here, before anything big is downloaded, when its folder or repo is missing or its
adapter_config.json is not a LoRA config (`lora.check` then compares its base model and rank).
"""

from __future__ import annotations

import os
from typing import Any

from .. import files
from ..errors import CorruptCheckpointError, ModelNotFoundError
from ..lora import Adapter
from .safetensors import DTYPE_BYTES
from .source import read_local_header

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def read_adapters(modules: tuple[tuple[str, str], ...], token: str | None, offline: bool) -> tuple[Adapter, ...]:
    return tuple(_read(name, source, token, offline) for name, source in modules)


def _read(name: str, source: str, token: str | None, offline: bool) -> Adapter:
    shown = f"LORA_MODULES={name}={source}"
    weights_path: str | None
    if os.path.isdir(source):
        config_path, weights_path = (os.path.join(source, file) for file in (ADAPTER_CONFIG, ADAPTER_WEIGHTS))
        if not os.path.isfile(config_path):
            raise ModelNotFoundError(
                f"{shown}: the folder has no {ADAPTER_CONFIG}", "point it at a PEFT adapter folder"
            )
    elif source.startswith(("/", "./", "../", "~")):
        raise ModelNotFoundError(f"{shown} is not a folder", "mount the adapter folder, or use a Hub repo id")
    else:
        config_path, weights_path = _from_hub(shown, source, token, offline)
    config = _json(config_path, shown)
    if not isinstance(config, dict) or str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise CorruptCheckpointError(f"{shown}: {ADAPTER_CONFIG} is not a LoRA adapter's", "use a LoRA (PEFT) adapter")
    try:
        rank = int(config["r"])
        targets = config.get("target_modules") or []
        targets = (targets,) if isinstance(targets, str) else tuple(str(module) for module in targets)
    except (KeyError, TypeError, ValueError):
        raise CorruptCheckpointError(
            f"{shown}: {ADAPTER_CONFIG} has no usable rank `r`", "use a LoRA (PEFT) adapter"
        ) from None
    if rank < 1:
        raise CorruptCheckpointError(f"{shown}: {ADAPTER_CONFIG} says rank {rank}", "use a LoRA (PEFT) adapter")
    return Adapter(
        name=name,
        source=source,
        rank=rank,
        target_modules=targets,
        base_model=str(config.get("base_model_name_or_path") or ""),
        **_from_header(weights_path, shown),
    )


def _from_hub(shown: str, repo: str, token: str | None, offline: bool) -> tuple[str, str | None]:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    try:
        config = hf_hub_download(repo, ADAPTER_CONFIG, token=token, local_files_only=offline)
    except (EntryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, ValueError) as exc:
        raise ModelNotFoundError(
            f"{shown}: no {ADAPTER_CONFIG} could be read ({exc.__class__.__name__})",
            "check the repo id (org/name) and HF_TOKEN, or use a local adapter folder",
        ) from None
    try:
        weights: str | None = hf_hub_download(repo, ADAPTER_WEIGHTS, token=token, local_files_only=offline)
    except (EntryNotFoundError, LocalEntryNotFoundError):
        weights = None  # an adapter_model.bin: the engine loads it; its size is not counted
    return str(config), weights


def _json(path: str, shown: str) -> Any:
    try:
        return files.read_json(path)
    except files.Unreadable as exc:
        raise CorruptCheckpointError(f"{shown}: {ADAPTER_CONFIG} {exc.reason}", "download it again") from None


def _from_header(path: str | None, shown: str) -> dict[str, Any]:
    """The adapter's weight bytes and the (in, out) sizes of the layers it adapts, from its header: lora_A of
    a layer is rank x in, lora_B out x rank."""
    if not path or not os.path.isfile(path):
        return {"weight_bytes": 0, "module_sizes": ()}
    total = 0
    sizes: dict[str, list[int]] = {}

    def count(name: str, dtype: str, shape: tuple[int, ...], numel: int) -> None:
        nonlocal total
        total += int(numel * DTYPE_BYTES[dtype])
        for part, axis, slot in ((".lora_A.", 1, 0), (".lora_B.", 0, 1)):
            if part in name and len(shape) == 2:
                module = name.split(part, maxsplit=1)[0].rsplit(".", 1)[-1]
                sizes.setdefault(module, [0, 0])[slot] = shape[axis]

    try:
        read_local_header(path, count)  # the model's own reader: bounded, checked against the file's size
    except CorruptCheckpointError as exc:
        raise CorruptCheckpointError(f"{shown}: {exc.message}", exc.hint) from None
    return {
        "weight_bytes": total,
        "module_sizes": tuple((module, size_in, size_out) for module, (size_in, size_out) in sorted(sizes.items())),
    }
