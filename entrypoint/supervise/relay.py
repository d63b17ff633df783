"""The engine's output, passed on to ours as it comes, each line also shown to a watcher (edge).

Supervised mode reads the engine's log to time the phases of its start (phases.py). The bytes are copied
unchanged and at once (progress bars included), so the log reads as if the engine wrote it itself; the
watcher sees each line, split at a newline or a carriage return (a progress bar redraws with one).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable

CHUNK = 65536
LINE_LIMIT = 65536  # a line longer than this (binary output) is passed on but not kept whole for the watcher
LINE_END = re.compile(rb"[\r\n]")


def relay(source: int, target: int, on_line: Callable[[str], None]) -> None:
    """Copy `source` to `target` until the engine closes it; `on_line` gets every line."""
    pending = b""
    while True:
        try:
            chunk = os.read(source, CHUNK)
        except OSError:
            break
        if not chunk:
            break
        _write_all(target, chunk)
        *lines, pending = LINE_END.split(pending + chunk)
        for line in lines:
            if line:
                on_line(line.decode("utf-8", "replace"))
        pending = pending[-LINE_LIMIT:]
    if pending:
        on_line(pending.decode("utf-8", "replace"))
    os.close(source)


def start(source: int, target: int, on_line: Callable[[str], None]) -> threading.Thread:
    thread = threading.Thread(target=relay, args=(source, target, on_line), daemon=True, name=f"relay-{target}")
    thread.start()
    return thread


def _write_all(target: int, data: bytes) -> None:
    # Our own output gone (a closed pipe) must not stop the engine: the rest is read and dropped.
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(target, view) :]
    except OSError:
        pass
