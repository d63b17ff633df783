"""Weight bytes from safetensors headers: exact sizes, no parameter guesses.

`summarize()` folds every tensor into a few buckets (expert or not, quantizable
linear or not, dtype); `estimate()` turns the buckets into the bytes the engine
will hold for a given runtime dtype and online quantization. Both are pure.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from .safetensors import DTYPE_BYTES, Tensor
from .shape import ModelShape

FLOAT_DTYPES = {"F32": 4, "F16": 2, "BF16": 2}
RUNTIME_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}

_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")
# Quantization metadata (by name suffix) stays in its stored dtype whatever the runtime dtype.
_AUX_SUFFIXES = ("scale", "scales", "scale_inv", "qzeros", "zeros", "g_idx", "zero_point", "_shift", "bias_scale")
# Embeddings and the LM head are not quantized by online FP8.
_NOT_LINEAR = re.compile(r"(embed|wte|wpe|lm_head|norm|\.ln_|router|\.gate\.weight$)")


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


def summarize(tensors: Mapping[str, Tensor], shape: ModelShape) -> WeightSummary:
    # Plain tuples and string tests that run in C: this loop runs once per tensor, some 90,000 times for
    # DeepSeek-V3.
    numel: Counter[tuple[bool, bool, bool, str]] = Counter()
    skipped = 0
    for name, (dtype, dims, count) in tensors.items():
        # DeepSeek-style checkpoints append MTP layers after the last real
        # layer; the engine loads them only for MTP speculative decoding.
        if shape.mtp_layers:
            layer = _LAYER.search(name)
            if layer and int(layer.group(1)) >= shape.layers:
                skipped += 1
                continue
        aux = name.endswith(_AUX_SUFFIXES)
        expert = ".experts." in name and "shared_expert" not in name
        numel[expert, not aux and len(dims) >= 2 and _NOT_LINEAR.search(name) is None, aux, dtype] += count
    return WeightSummary(numel={Bucket(*key): count for key, count in numel.items()}, skipped_mtp_tensors=skipped)


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
