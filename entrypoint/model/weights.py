"""Weight bytes from safetensors headers: exact sizes, no parameter guesses.

`Tally` (or `summarize()`) folds every tensor into a few buckets (expert or not, quantizable
linear or not, dtype); `estimate()` turns the buckets into the bytes the engine
will hold for a given runtime dtype and online quantization. Both are pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .safetensors import DTYPE_BYTES, Tensor
from .shape import ModelShape

FLOAT_DTYPES = {"F32": 4, "F16": 2, "BF16": 2}
RUNTIME_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}

# Quantization metadata (by name suffix) stays in its stored dtype whatever the runtime dtype.
_AUX_SUFFIXES = ("scale", "scales", "scale_inv", "qzeros", "zeros", "g_idx", "zero_point", "_shift", "bias_scale")
# Embeddings, norms, routers and the LM head are not quantized by online FP8: names holding one of these, or
# ending in a router's `.gate.weight`. Substring tests rather than a regex: this runs once per tensor.
_NOT_LINEAR_PARTS = ("embed", "wte", "wpe", "lm_head", "norm", ".ln_", "router")
_NOT_LINEAR_SUFFIX = ".gate.weight"


@dataclass(frozen=True)
class Bucket:
    expert: bool  # a routed expert's weight (split by expert parallelism)
    linear: bool  # a 2-D projection online quantization would shrink
    aux: bool  # scales / zero points
    dtype: str


@dataclass(frozen=True)
class WeightSummary:
    numel: Mapping[Bucket, int]
    skipped_mtp_tensors: int = 0

    @property
    def checkpoint_bytes(self) -> int:
        return int(sum(count * DTYPE_BYTES[bucket.dtype] for bucket, count in self.numel.items()))


@dataclass(frozen=True)
class WeightEstimate:
    total_bytes: int
    expert_bytes: int

    @property
    def dense_bytes(self) -> int:
        return self.total_bytes - self.expert_bytes


class Tally:
    """Counts tensors into buckets as headers are read, one `add` per tensor, so no per-tensor object is kept:
    DeepSeek-V3 has some 90,000 tensors, and keeping them cost more than classifying them
    (bench/plan_bench.py). Pure: values in, a WeightSummary out."""

    def __init__(self, shape: ModelShape) -> None:
        self._numel: dict[tuple[bool, bool, bool, str], int] = {}
        # DeepSeek-style checkpoints append MTP layers after the last real layer; the engine loads them only
        # for MTP speculative decoding.
        mtp = [f"layers.{index}." for index in range(shape.layers, shape.layers + shape.mtp_layers)]
        self._mtp = mtp + [f".{layer}" for layer in mtp]
        self._skipped = 0

    def add(self, name: str, dtype: str, dims: tuple[int, ...], count: int) -> None:
        # Substring tests that run in C: a regex per name took half the time.
        if self._mtp and _in_any_layer(name, self._mtp):
            self._skipped += 1
            return
        aux = name.endswith(_AUX_SUFFIXES)
        expert = ".experts." in name and "shared_expert" not in name
        key = (expert, not aux and len(dims) >= 2 and _named_linear(name), aux, dtype)
        self._numel[key] = self._numel.get(key, 0) + count

    def summary(self) -> WeightSummary:
        numel = {Bucket(*key): count for key, count in self._numel.items()}
        return WeightSummary(numel=numel, skipped_mtp_tensors=self._skipped)


def merged(summaries: list[WeightSummary]) -> WeightSummary:
    """One summary of several (the shards read by separate workers)."""
    numel: dict[Bucket, int] = {}
    for summary in summaries:
        for bucket, count in summary.numel.items():
            numel[bucket] = numel.get(bucket, 0) + count
    return WeightSummary(numel=numel, skipped_mtp_tensors=sum(s.skipped_mtp_tensors for s in summaries))


def summarize(tensors: Mapping[str, Tensor], shape: ModelShape) -> WeightSummary:
    """The summary of tensors already in hand (the Hub's parsed headers)."""
    tally = Tally(shape)
    for name, (dtype, dims, count) in tensors.items():
        tally.add(name, dtype, dims, count)
    return tally.summary()


def _in_any_layer(name: str, layers: list[str]) -> bool:
    """Whether `name` lies in one of `layers`, given as "layers.61." (a prefix) and ".layers.61." (inside)."""
    for layer in layers:  # noqa: SIM110 - a loop, not any() over a generator: this runs once per tensor
        if (layer[0] == "." and layer in name) or name.startswith(layer):
            return True
    return False


def _named_linear(name: str) -> bool:
    for part in _NOT_LINEAR_PARTS:
        if part in name:
            return False
    return not name.endswith(_NOT_LINEAR_SUFFIX)


def estimate(summary: WeightSummary, runtime_dtype: str, online_fp8: bool = False) -> WeightEstimate:
    """Bytes on the GPUs: float weights take the runtime dtype, online FP8 makes linear weights 1 byte."""
    total = expert = 0.0
    for bucket, count in summary.numel.items():
        per_element = DTYPE_BYTES[bucket.dtype]
        if bucket.dtype in FLOAT_DTYPES and not bucket.aux:
            per_element = RUNTIME_DTYPE_BYTES[runtime_dtype]
            if online_fp8 and bucket.linear:
                per_element = 1
        size = count * per_element
        total += size
        if bucket.expert:
            expert += size
    return WeightEstimate(total_bytes=int(total), expert_bytes=int(expert))
