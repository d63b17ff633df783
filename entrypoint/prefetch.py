"""`python -m entrypoint prefetch`: put exactly the files the engine will load into HF_HOME (edge).

For TARGET_MODEL, the speculative draft and each LoRA adapter that is a Hub repo: config and tokenizer files
(every small file at the top of the repo), the chat template, and the safetensors the index names (or
every top-level safetensors file without one); never the other formats a repo ships beside them. The disk
room is checked first (entrypoint.disk), downloads resume where they stopped, run in parallel with Xet's
fast path, and a second run finds everything in the cache and downloads no weight byte.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TextIO

from . import disk, launch
from .model import source
from .settings import Settings

# Small files of a repo the engine may read: configs, tokenizers, templates (weights are chosen by the index).
SMALL_FILES = ("*.json", "*.jinja", "*.txt", "*.model", "*.tiktoken", "*.py")
PARALLEL_FILES = 8


def repos_to_fetch(settings: Settings) -> list[tuple[str, str | None, str]]:
    """(repo, revision, the setting that names it) for every Hub repo the engine will load."""
    wanted = [(settings.target_model, settings.hf_revision, "TARGET_MODEL")]
    if settings.spec_enabled and settings.spec_draft_model:
        wanted.append((settings.spec_draft_model, None, "SPEC_DRAFT_MODEL"))
    wanted += [(path, None, f"LORA_MODULES={name}") for name, path in settings.lora_modules or ()]
    return [(repo, revision, variable) for repo, revision, variable in wanted if not os.path.isdir(repo)]


def prefetch(settings: Settings, environ: Mapping[str, str], log: TextIO) -> int:
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import enable_progress_bars  # type: ignore[attr-defined]

    os.environ.setdefault("HF_XET_HIGH_PERFORMANCE", "1")  # huggingface_hub reads it when it downloads
    model, _, _ = launch.read_models(settings)  # headers only: checks the repos and sizes the download
    disk.check_room(model, environ)
    enable_progress_bars()  # read_models quietened them for `plan --json`; a download shows its progress
    for repo, revision, variable in repos_to_fetch(settings):
        with source._hub_errors(repo, revision, settings.hf_token, variable.split("=")[0]):
            patterns = [*SMALL_FILES, *_weight_files(repo, revision, settings.hf_token)]
            folder = snapshot_download(
                repo,
                revision=revision,
                token=settings.hf_token,
                allow_patterns=patterns,
                max_workers=PARALLEL_FILES,
            )
        print(f"prefetch: {variable.split('=')[0]}={repo} is in {folder}", file=log)
    return 0


def _weight_files(repo: str, revision: str | None, token: str | None) -> list[str]:
    """The weight files the engine loads: those the safetensors index names, else every top-level
    safetensors file (an adapter's adapter_model.safetensors included)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        index = hf_hub_download(repo, source.INDEX_FILE, revision=revision, token=token)
    except EntryNotFoundError:
        return ["*.safetensors"]
    with open(index, encoding="utf-8") as handle:
        return sorted(set(json.load(handle)["weight_map"].values()))
