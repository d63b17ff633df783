"""Room for the download: the weights still to fetch against the free space where HF_HOME lives (edge).

An engine that runs out of disk half-way through a 700 GB download fails after an hour with a stack trace;
this says so before the first byte, with the numbers and the fix (issue #14).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from . import caches
from .errors import NoDiskSpaceError
from .model.info import ModelInfo
from .units import GIB, gib

# Room kept free beyond the weights: tokenizer and config files, the engine's compile caches, logs.
HEADROOM_BYTES = 2 * GIB


def check_room(model: ModelInfo, environ: Mapping[str, str]) -> None:
    """Refuse when the weights still to download from the Hub do not fit the cache's disk."""
    if model.location != "hub":  # a folder, or the cache offline: nothing to download
        return
    hub_cache = _hub_cache(environ)
    cached = cached_bytes(model.name, environ)
    needed = model.weights.checkpoint_bytes - cached
    disk = _existing(hub_cache)
    stats = os.statvfs(disk)
    free = stats.f_bavail * stats.f_frsize
    if needed + HEADROOM_BYTES > free:
        raise NoDiskSpaceError(
            f"{model.name} needs {gib(needed)} more for its weights ({gib(cached)} already cached), but {disk} "
            f"has {gib(free)} free",
            "give the Hugging Face cache a bigger disk: disk_size in the SkyPilot YAML, a larger volume for "
            "HF_HOME, or HF_HOME on a disk with room",
        )


def _hub_cache(environ: Mapping[str, str]) -> str:
    return environ.get("HF_HUB_CACHE") or os.path.join(os.path.expanduser(caches.hf_home(environ)), "hub")


def cached_bytes(repo: str, environ: Mapping[str, str]) -> int:
    """What the cache holds of this model repo already (its blobs, partial downloads included)."""
    blobs = os.path.join(_hub_cache(environ), "models--" + repo.replace("/", "--"), "blobs")
    if not os.path.isdir(blobs):
        return 0
    return sum(entry.stat().st_size for entry in os.scandir(blobs) if entry.is_file(follow_symlinks=False))


def _existing(path: str) -> str:
    """The path, or its nearest parent that exists: the disk the cache will be created on."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path
