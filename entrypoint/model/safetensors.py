"""The safetensors header: an 8-byte little-endian length, then JSON.

Only headers are ever read, and this module reads none itself (pure):
`model.source.read_local_header` reads a file's first bytes, and
`check_file_size` compares the header with the file's size so that a truncated
download is caught before an engine spends minutes loading it.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable
from math import prod
from typing import Any, NamedTuple

from ..errors import CorruptCheckpointError

# Bytes per element for every dtype the format defines; F4 / F6 pack two or
# more values per byte and count fractionally.
DTYPE_BYTES: dict[str, float] = {
    "F64": 8,
    "I64": 8,
    "U64": 8,
    "F32": 4,
    "I32": 4,
    "U32": 4,
    "F16": 2,
    "BF16": 2,
    "I16": 2,
    "U16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E8M0": 1,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F6_E2M3": 0.75,
    "F6_E3M2": 0.75,
    "F4": 0.5,
}

# A header larger than this is not a header (the format caps it at 100 MB).
MAX_HEADER_BYTES = 100_000_000


class Tensor(NamedTuple):
    """One tensor of a header. A tuple rather than a dataclass: DeepSeek-V3 has some 90,000, read per plan."""

    dtype: str
    shape: tuple[int, ...]
    numel: int

    @property
    def nbytes(self) -> int:
        return int(self.numel * DTYPE_BYTES[self.dtype])


_INTEGERS = frozenset({int})  # `type(x) is int`: JSON true is a bool, which is an int, and no dimension


def checked_tensor(name: str, dtype: object, shape: tuple[Any, ...], source: str) -> Tensor:
    """A header's tensor entry, refused unless its dtype is known and its shape whole numbers of at least 0
    (a negative dimension would cancel real weights). For local headers and the Hub's parsed ones alike."""
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        raise _corrupt(source, f"tensor {name!r} has unknown dtype {dtype!r}")
    # Set and min() run in C: a 163-shard checkpoint has some 90,000 tensors and this is the hot loop.
    if shape and ({*map(type, shape)} != _INTEGERS or min(shape) < 0):
        raise _corrupt(source, f"tensor {name!r} has a shape that is not whole numbers of at least 0: {shape!r}")
    return Tensor(dtype, shape, prod(shape))


# Told of each tensor as it is read: (name, dtype, shape, element count); weights.Tally.add.
OnTensor = Callable[[str, str, tuple[int, ...], int], None]


def parse_header(raw: bytes, source: str, on_tensor: OnTensor) -> int:
    """Check header JSON bytes and pass each tensor to `on_tensor`; returns the data size."""
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _corrupt(source, f"its header is not JSON ({exc})") from None
    except RecursionError:  # nesting no real header has
        raise _corrupt(source, "its header is nested too deeply to be a safetensors header") from None
    if not isinstance(header, dict):
        raise _corrupt(source, "its header is not a JSON object")
    header.pop("__metadata__", None)
    # This loop runs once per tensor, some 90,000 times for DeepSeek-V3 (bench/plan_bench.py): checked_tensor's
    # checks are inlined, and the number checks are made once over the raw bytes where they can be.
    plain = _plainly_whole_numbers(raw, len(header))
    data_end = 0
    for name, entry in header.items():
        try:
            dtype, shape, (start, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
            size = DTYPE_BYTES[dtype]
        except (KeyError, TypeError, ValueError):
            if isinstance(entry, dict) and "dtype" in entry and isinstance(entry.get("shape"), list):
                checked_tensor(name, entry["dtype"], (), source)  # an unknown dtype is named as such
            raise _corrupt(source, f"tensor {name!r} lacks dtype, shape or data_offsets") from None
        if not plain:
            checked_tensor(name, dtype, shape, source)
            if not (type(start) is int and type(end) is int and start >= 0):
                raise _corrupt(source, f"tensor {name!r} has data_offsets that are not whole numbers: {[start, end]}")
        if start > end:
            raise _corrupt(source, f"tensor {name!r} has data_offsets that are not 0 <= start <= end: {[start, end]}")
        numel = prod(shape)
        if end - start != int(numel * size) and size >= 1:  # F4 / F6 pad their last byte
            raise _corrupt(source, f"tensor {name!r} spans {end - start} bytes, its shape needs {int(numel * size)}")
        on_tensor(name, dtype, shape, numel)
        data_end = max(data_end, end)
    return data_end


_KEYS = (b'"shape"', b'"shape":[', b'"data_offsets"', b'"data_offsets":[')
_NOT_ONLY_DIGITS = re.compile(rb'"(?:shape|data_offsets)":\[[0-9,]*[^0-9,\]]')


def _plainly_whole_numbers(raw: bytes, tensors: int) -> bool:
    """Whether every tensor's shape and data_offsets are lists of plain JSON digits (whole numbers >= 0), told
    by a scan in C of the raw bytes. Sound because a JSON string cannot hold an unescaped quote, so each
    `"shape"` in the bytes is a key; with exactly one per tensor, each spelled `"shape":[` (likewise
    data_offsets), every one is seen, and a JSON number of digits only is a non-negative integer. Anything
    else (spaces, a sign, a fraction, `true`, a key twice) makes the per-tensor checks run instead."""
    return all(raw.count(key) == tensors for key in _KEYS) and _NOT_ONLY_DIGITS.search(raw) is None


def header_length(prefix: bytes, source: str) -> int:
    if len(prefix) < 8:
        raise _corrupt(source, "it is shorter than 8 bytes")
    length = int(struct.unpack("<Q", prefix[:8])[0])
    if length == 0 or length > MAX_HEADER_BYTES:
        raise _corrupt(source, f"its header length field says {length} bytes")
    return length


def check_file_size(source: str, size: int, length: int, data_end: int | None) -> CorruptCheckpointError | None:
    """The error for a file whose size disagrees with its header (data_end None: the header itself is cut)."""
    if data_end is None:
        return _corrupt(source, f"its header claims {length} bytes but the file has {size}")
    if 8 + length + data_end != size:
        return _corrupt(
            source,
            f"the file has {size} bytes but its header describes {8 + length + data_end} "
            "(truncated or unfinished download?)",
        )
    return None


def _corrupt(source: str, why: str) -> CorruptCheckpointError:
    return CorruptCheckpointError(
        f"safetensors file {source} is corrupt: {why}",
        "download the file again (delete it from the folder or the HF cache), or check TARGET_MODEL",
    )
