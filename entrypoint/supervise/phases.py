"""Where a start's time went: the phases of one start, from our own clock and the engine's log lines (pure).

A start is cut into consecutive phases, so that they add up to the time to ready: `plan` from the process's
start, `download` while we prefetch, `engine_start` from the engine's launch (interpreter, imports, its
processes, distributed set-up), then one phase per log line the engine prints as it begins a step it always
takes (`Engine.start_marks`: weights, compilation and profiling, KV cache, CUDA graphs, API server), and the
last phase runs to the first answer on the port. A phase begins with the first line that names it and that
comes after the current phase (several ranks print each line; a later step's line is never undone by an
earlier one), so a step the engine skips (no CUDA graphs on the CPU, sglang without torch.compile) is simply
absent and its time stays in the step before.

The times are when the lines reach the supervisor, not the engine's printed timestamps (vLLM's have whole
seconds and no year): the engine's output is relayed unbuffered, line by line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..engines.base import StartMark

# Every phase a start can have, in the order a start goes through them, with the words the summary uses.
PHASES = {
    "plan": "plan",
    "download": "download",
    "engine_start": "engine start",
    "load": "load",
    "compile": "compile and profile",
    "kv_cache": "kv cache",
    "graphs": "CUDA graphs",
    "server": "server start",
}
ORDER = {phase: rank for rank, phase in enumerate(PHASES)}


@dataclass(frozen=True)
class PhaseTime:
    phase: str
    seconds: float
    detail: str = ""  # e.g. the download's size and rate

    def describe(self) -> str:
        return f"{PHASES[self.phase]} {self.seconds:.1f} s" + (f" ({self.detail})" if self.detail else "")


class StartTimeline:
    """The phases of one start as they begin; `phases(ready_at)` closes the last one."""

    def __init__(self, began: float, marks: Sequence[StartMark]) -> None:
        self.marks = tuple(marks)
        self.began = began
        self.points: list[tuple[str, float]] = [("plan", began)]
        self.details: dict[str, str] = {}

    @property
    def current(self) -> str:
        return self.points[-1][0]

    def begin(self, phase: str, at: float, detail: str = "") -> None:
        """Phase `phase` begins at `at`; ignored unless it comes after the current one."""
        if ORDER[phase] > ORDER[self.current]:
            self.points.append((phase, max(at, self.points[-1][1])))
            if detail:
                self.details[phase] = detail

    def feed(self, line: str, at: float) -> None:
        """One line of the engine's output, received at `at`."""
        for mark in self.marks:
            if ORDER[mark.phase] > ORDER[self.current] and mark.text in line:
                self.begin(mark.phase, at)
                return

    def phases(self, ready_at: float) -> list[PhaseTime]:
        ends = [at for _, at in self.points[1:]] + [max(ready_at, self.points[-1][1])]
        return [
            PhaseTime(phase, end - start, self.details.get(phase, ""))
            for (phase, start), end in zip(self.points, ends, strict=True)
        ]


def summary(phases: Sequence[PhaseTime]) -> str:
    """`ready in 412.0 s: download 250.0 s (14.10 GB in 250.0 s, 56 MB/s), load 38.0 s, ...`"""
    total = sum(phase.seconds for phase in phases)
    return f"ready in {total:.1f} s: " + ", ".join(phase.describe() for phase in phases)
