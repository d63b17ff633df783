"""The one reader of files that users and checkpoints name (edge): bounded, and never blocked.

A path in a setting (CHAT_TEMPLATE, TLS_CERT_FILE, a `*_FILE` secret) or in a checkpoint (config.json, the
safetensors index, a shard) may be anything: a FIFO, whose open blocks until a writer comes; `/dev/zero`,
which never ends; a folder. So every such file is opened without blocking, checked to be a regular file on
the descriptor it was opened as (no window between check and use), and read to a limit. Each failure is an
`Unreadable` with a short reason the caller puts in its own one-line error, with the variable it names.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

KIB = 1024
MIB = 1024 * KIB

# Limits, far above any real file of the kind and far below what would hurt: a chat template is tens of KiB,
# a PEM certificate chain a few, DeepSeek-V3's safetensors index 9 MiB (92,000 tensors).
TEMPLATE_LIMIT = 4 * MIB
PEM_LIMIT = 1 * MIB
JSON_LIMIT = 64 * MIB


class Unreadable(Exception):
    """A file that cannot be read as asked; `reason` says why in a few words ("is not a regular file")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TooLarge(Unreadable):
    pass


class NotText(Unreadable):
    pass


@contextmanager
def opened(path: str) -> Iterator[BinaryIO]:
    """`path` opened for reading if it is a regular file; a FIFO or device is refused, not waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise Unreadable(f"cannot be read ({exc.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise Unreadable(f"is not a regular file (a {_kind(mode)})")
        os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def read_bytes(path: str, limit: int) -> bytes:
    """The whole of a regular file of at most `limit` bytes."""
    with opened(path) as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise Unreadable(f"cannot be read ({exc.strerror})") from None
    if len(data) > limit:
        raise TooLarge(f"is larger than {_size(limit)}")
    return data


def read_text(path: str, limit: int) -> str:
    try:
        return read_bytes(path, limit).decode("utf-8")
    except UnicodeDecodeError:
        raise NotText("is not UTF-8 text") from None


def read_json(path: str, limit: int = JSON_LIMIT) -> Any:
    try:
        return json.loads(read_text(path, limit))
    except json.JSONDecodeError as exc:
        raise Unreadable(f"is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except RecursionError:
        raise Unreadable("is not valid JSON (nested too deeply)") from None


def check(path: str, limit: int) -> None:
    """Raise `Unreadable` unless `path` is a regular file of at most `limit` bytes this process can open (a file
    named now, read later: by the engine, or by us at start)."""
    with opened(path) as handle:
        if os.fstat(handle.fileno()).st_size > limit:
            raise TooLarge(f"is larger than {_size(limit)}")


def _kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "device"), (stat.S_ISSOCK, "socket"))
    return next((name for test, name in kinds if test(mode)), "special file")


def _size(limit: int) -> str:
    return f"{limit // MIB} MiB" if limit >= MIB else f"{limit} bytes"
