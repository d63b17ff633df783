"""Download exactly the files the engine will load into HF_HOME (edge): `python -m entrypoint prefetch`, and
the serve path before the engine starts (PREFETCH, on by default).

For TARGET_MODEL, the speculative draft and each LoRA adapter that is a Hub repo: config and tokenizer files
(every small file at the top of the repo), the chat template, and the safetensors the index names (or
every top-level safetensors file without one); never the other formats a repo ships beside them. The disk
room is checked first (entrypoint.disk), downloads resume where they stopped, run in parallel with Xet's
fast path, and a second run finds everything in the cache and downloads no weight byte.

Serving downloads here rather than in the engine because then a gated, missing or too-large repo is one
line before the engine starts, both engines get the parallel Xet path, and the start's download phase is
measured (bytes, seconds, rate) instead of hidden in the engine's weight loading (docs/adr/0023).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

from . import disk, files, launch
from .errors import CorruptCheckpointError
from .model import source
from .model.info import ModelInfo
from .settings import Settings

# Small files of a repo the engine may read: configs, tokenizers, templates (weights are chosen by the index).
SMALL_FILES = ("*.json", "*.jinja", "*.txt", "*.model", "*.tiktoken", "*.py")
PARALLEL_FILES = 8


@dataclass(frozen=True)
class Downloaded:
    """What a prefetch fetched: bytes that reached the cache and the seconds it took."""

    bytes: int
    seconds: float

    def describe(self) -> str:
        return f"{self.seconds:.1f} s, " + self.size_and_rate()

    def size_and_rate(self) -> str:
        if not self.bytes:
            return "everything already in HF_HOME"
        rate = self.bytes / self.seconds / 1e6 if self.seconds else 0.0
        size = f"{self.bytes / 1e9:.2f} GB" if self.bytes >= 1e9 else f"{self.bytes / 1e6:.1f} MB"
        return f"{size}, {rate:.0f} MB/s"


def repos_to_fetch(settings: Settings) -> list[tuple[str, str | None, str]]:
    """(repo, revision, the setting that names it) for every Hub repo the engine will load."""
    wanted = [(settings.target_model, settings.hf_revision, "TARGET_MODEL")]
    if settings.spec_enabled and settings.spec_draft_model:
        wanted.append((settings.spec_draft_model, None, "SPEC_DRAFT_MODEL"))
    wanted += [(path, None, f"LORA_MODULES={name}") for name, path in settings.lora_modules or ()]
    return [(repo, revision, variable) for repo, revision, variable in wanted if not os.path.isdir(repo)]


def prefetch(settings: Settings, environ: Mapping[str, str], log: TextIO) -> int:
    """The `prefetch` command: read the headers (checks the repos and sizes the download), then download."""
    model, _, _ = launch.read_models(settings)
    disk.check_room(model, environ)
    downloaded = download(settings, environ, log)
    print(f"prefetch: {downloaded.describe()}", file=log)
    return 0


def wanted_before_serving(settings: Settings, model: ModelInfo) -> bool:
    """Whether serve downloads first: PREFETCH is on and the model comes from the Hub (not a folder, not the
    offline cache, where the engine reads what is there)."""
    return settings.prefetch and model.location == "hub"


def download(settings: Settings, environ: Mapping[str, str], log: TextIO) -> Downloaded:
    """Fetch every repo of `repos_to_fetch` into the cache; the bytes are what the cache grew by."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import enable_progress_bars  # type: ignore[attr-defined]

    os.environ.setdefault("HF_XET_HIGH_PERFORMANCE", "1")  # huggingface_hub reads it when it downloads
    enable_progress_bars()  # read_models quietened them for `plan --json`; a download shows its progress
    started, fetched = time.monotonic(), 0
    for repo, revision, variable in repos_to_fetch(settings):
        before = disk.cached_bytes(repo, environ)
        with source._hub_errors(repo, revision, settings.hf_token, variable.split("=")[0]):
            patterns = [*SMALL_FILES, *_weight_files(repo, revision, settings.hf_token)]
            folder = snapshot_download(
                repo,
                revision=revision,
                token=settings.hf_token,
                allow_patterns=patterns,
                max_workers=PARALLEL_FILES,
            )
        fetched += max(0, disk.cached_bytes(repo, environ) - before)
        print(f"prefetch: {variable.split('=')[0]}={repo} is in {folder}", file=log)
    return Downloaded(bytes=fetched, seconds=time.monotonic() - started)


def _weight_files(repo: str, revision: str | None, token: str | None) -> list[str]:
    """The weight files the engine loads: those the safetensors index names, else every top-level
    safetensors file (an adapter's adapter_model.safetensors included)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        index = hf_hub_download(repo, source.INDEX_FILE, revision=revision, token=token)
    except EntryNotFoundError:
        return ["*.safetensors"]
    try:
        return sorted(source.indexed_shards(files.read_json(index), repo))
    except files.Unreadable as exc:
        raise CorruptCheckpointError(f"{repo}: {source.INDEX_FILE} {exc.reason}", "download the model again") from None
