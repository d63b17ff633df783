"""Where the engine's compile and kernel caches go: the Hugging Face cache's volume (pure; docs/adr/0022).

A container is new at every start (compose recreate, a SkyPilot replica, a spot restart); only the volume
that holds HF_HOME outlives it. Left to their defaults, vLLM's torch.compile cache, torch inductor's and
Triton's (/tmp, ~/.triton), FlashInfer's, DeepGEMM's and CUDA's kernel caches live in the container and
are rebuilt by every start. `engine_environment` puts each under `HF_HOME/engine-cache/<engine>/` unless
the user set it, so a restart finds its weights and its compiled kernels in the same place.
"""

from __future__ import annotations

import posixpath  # paths as strings: a pure module touches no file system
from collections.abc import Mapping

from .engines.base import Engine

DEFAULT_HF_HOME = "~/.cache/huggingface"  # huggingface_hub's own default


def hf_home(environ: Mapping[str, str]) -> str:
    """HF_HOME as huggingface_hub resolves it for this environment."""
    return environ.get("HF_HOME") or DEFAULT_HF_HOME.replace("~", environ.get("HOME") or "~", 1)


def cache_root(engine: Engine, environ: Mapping[str, str]) -> str:
    return posixpath.join(hf_home(environ), "engine-cache", engine.name)


def engine_environment(engine: Engine, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables to add to the engine's environment: its caches and defaults, where not set already."""
    root = cache_root(engine, environ)
    added = {name: posixpath.join(root, folder) for name, folder in engine.cache_variables.items()}
    added.update(engine.environment_defaults)
    return {name: value for name, value in added.items() if not environ.get(name)}
