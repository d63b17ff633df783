"""The safetensors header: an 8-byte little-endian length, then JSON.

Only headers are ever read, and this module reads none itself (pure):
`model.source.read_local_header` reads a file's first bytes, and
`check_file_size` compares the header with the file's size so that a truncated
download is caught before an engine spends minutes loading it.
"""

from __future__ import annotations

import json
import struct
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


def parse_header(raw: bytes, source: str) -> tuple[dict[str, Tensor], int]:
    """Parse header JSON bytes into tensors; returns them and the data size."""
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _corrupt(source, f"its header is not JSON ({exc})") from None
    except RecursionError:  # nesting no real header has
        raise _corrupt(source, "its header is nested too deeply to be a safetensors header") from None
    if not isinstance(header, dict):
        raise _corrupt(source, "its header is not a JSON object")
    tensors: dict[str, Tensor] = {}
    data_end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise _corrupt(source, f"tensor {name!r} lacks dtype, shape or data_offsets") from None
        tensor = checked_tensor(name, dtype, shape, source)
        if not (type(start) is int and type(end) is int and 0 <= start <= end):
            raise _corrupt(source, f"tensor {name!r} has data_offsets that are not 0 <= start <= end: {[start, end]}")
        if end - start != tensor.nbytes and dtype not in ("F4", "F6_E2M3", "F6_E3M2"):
            raise _corrupt(source, f"tensor {name!r} spans {end - start} bytes, its shape needs {tensor.nbytes}")
        tensors[name] = tensor
        data_end = max(data_end, end)
    return tensors, data_end


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
