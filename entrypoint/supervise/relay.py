"""The engine's output, passed on to ours as it comes, each line also shown to a watcher (edge).

Supervised mode reads the engine's log to time the phases of its start (phases.py). The bytes are copied
unchanged (progress bars included), so the log reads as if the engine wrote it itself, but for secrets: with a
`mask` (redact.Masker: our secrets and anything shaped like a credential) each line is masked whole before it
is written, so a line is held until it ends. A line the engine leaves unfinished (a progress bar left
standing) is written once the engine has been quiet for HOLD_SECONDS, but for its last bytes, which could be
the start of a secret still to come; those follow after a second quiet spell. The watcher sees each line,
split at a newline or a carriage return (a progress bar redraws with one).
"""

from __future__ import annotations

import os
import re
import select
import threading
from collections.abc import Callable

CHUNK = 65536
LINE_LIMIT = 65536  # a line longer than this (binary output) is passed on but not kept whole for the watcher
LINE_END = re.compile(rb"[\r\n]")
HOLD_SECONDS = 0.2  # how long an unfinished line waits for its end before it is written anyway (masked)

Mask = Callable[[str], str]


def relay(source: int, target: int, on_line: Callable[[str], None], mask: Mask | None = None) -> None:
    """Copy `source` to `target` until the engine closes it; `on_line` gets every line."""
    pending = b""  # the watcher's unfinished line
    held = b""  # with a mask: read, not yet written, after the last line end
    # Bytes of an unfinished line kept back: as long as the longest secret could be, in UTF-8.
    tail = 4 * getattr(mask, "longest", 0)
    poller = select.poll()  # not select(): it fails on a descriptor numbered 1024 or more
    poller.register(source, select.POLLIN)
    quiet = 0
    while True:
        if held and not poller.poll(HOLD_SECONDS * 1000):
            quiet += 1
            cut = len(held) if quiet > 1 else max(0, len(held) - tail)
            _write_all(target, _masked(held[:cut], mask))
            held = held[cut:]
            continue
        quiet = 0
        try:
            chunk = os.read(source, CHUNK)
        except OSError:
            break
        if not chunk:
            break
        held = _write_lines(target, held + chunk, mask, tail)
        *lines, pending = LINE_END.split(pending + chunk)
        for line in lines:
            if line:
                on_line(line.decode("utf-8", "replace"))
        pending = pending[-LINE_LIMIT:]
    if held:
        _write_all(target, _masked(held, mask))
    if pending:
        on_line(pending.decode("utf-8", "replace"))
    os.close(source)


def _write_lines(target: int, data: bytes, mask: Mask | None, tail: int) -> bytes:
    """Write what `data` holds up to its last line end (all of it without a mask; of a line longer than
    LINE_LIMIT, all but its `tail` bytes); return the rest."""
    if mask is None:
        _write_all(target, data)
        return b""
    ends = [match.end() for match in LINE_END.finditer(data)]
    cut = ends[-1] if ends else (len(data) - tail if len(data) > LINE_LIMIT else 0)
    if cut:
        _write_all(target, _masked(data[:cut], mask))
    return data[cut:]


def _masked(data: bytes, mask: Mask | None) -> bytes:
    if mask is None:
        return data
    # surrogateescape: bytes that are not UTF-8 pass through unchanged, whatever the mask does around them.
    return mask(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


def start(source: int, target: int, on_line: Callable[[str], None], mask: Mask | None = None) -> threading.Thread:
    thread = threading.Thread(target=relay, args=(source, target, on_line, mask), daemon=True, name=f"relay-{target}")
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
