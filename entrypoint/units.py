"""Byte units, written once (pure)."""

from __future__ import annotations

MIB = 1024**2
GIB = 1024**3


def gib(size: float) -> str:
    """Bytes as people read them in a plan: "12.3 GiB"."""
    return f"{size / GIB:.1f} GiB"
