"""Where things are in the repository, for tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
FAKE_BIN = TESTS / "bin"  # a recorded nvidia-smi
NVIDIA_SMI_FIXTURES = TESTS / "fixtures" / "nvidia-smi"
FAKE_ENGINES = TESTS / "fake_engines"  # stand-in vllm / sglang server modules
ENGINE_SCRIPTS = TESTS / "engines"  # run inside an engine's own environment
# A PATH with the system tools but never a real nvidia-smi or engine.
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
