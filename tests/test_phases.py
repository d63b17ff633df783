"""Where a start's time went (entrypoint/supervise/phases.py, relay.py): the engines' own start-up lines cut
a start into phases that add up to the time to ready. The supervised runs are in test_supervisor.py and, on
the real vLLM CPU server, test_endpoint_cpu.py."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from entrypoint.engines import ENGINES
from entrypoint.supervise import relay
from entrypoint.supervise.phases import PHASES, PhaseTime, StartTimeline, summary
from tests.support.paths import TESTS

STARTLOGS = TESTS / "fixtures" / "startlogs"


def engine_lines(fixture: str) -> list[str]:
    return [line for line in (STARTLOGS / fixture).read_text().splitlines() if not line.startswith("# ")]


@pytest.mark.parametrize(
    ("engine", "fixture", "phases"),
    [
        # Recorded from the real vLLM 0.32.0 CPU server started by `python -m entrypoint` (no CUDA graphs there).
        ("vllm", "vllm-0.32.0-cpu.log", ["plan", "engine_start", "load", "compile", "kv_cache", "server"]),
        # sglang 0.5.23's own lines on a GPU (no torch.compile by default).
        ("sglang", "sglang-0.5.23.log", ["plan", "engine_start", "load", "kv_cache", "graphs", "server"]),
    ],
)
def test_each_engines_log_cuts_the_start_into_phases(engine, fixture, phases):
    """One line a second from t=10 after a 2 s plan: each phase begins at its engine's line, and the phases add
    up to the time to ready exactly."""
    timeline = StartTimeline(0.0, ENGINES[engine].start_marks)
    timeline.begin("engine_start", 2.0)
    lines = engine_lines(fixture)
    for second, line in enumerate(lines, start=10):
        timeline.feed(line, float(second))
    ready = 10.0 + len(lines) + 3
    found = timeline.phases(ready)
    assert [phase.phase for phase in found] == phases
    assert sum(phase.seconds for phase in found) == pytest.approx(ready)
    assert found[0].seconds == 2.0 and found[1].seconds == 8.0 + next(
        number for number, line in enumerate(lines) if ENGINES[engine].start_marks[0].text in line
    )


def test_a_phase_begins_once_and_never_goes_back():
    """Every rank prints its own "Starting to load model"; a later rank's line after compilation began does
    not move the start back to loading."""
    timeline = StartTimeline(0.0, ENGINES["vllm"].start_marks)
    timeline.begin("engine_start", 1.0)
    for at, line in [
        (5.0, "(Worker_TP0 pid=1) INFO [gpu_model_runner.py] Starting to load model meta-llama/Llama-3.1-8B..."),
        (6.0, "(Worker_TP1 pid=2) INFO [gpu_model_runner.py] Starting to load model meta-llama/Llama-3.1-8B..."),
        (20.0, "(Worker_TP0 pid=1) INFO [gpu_model_runner.py] Model loading took 7.5 GiB memory and 14.2 seconds"),
        (21.0, "(Worker_TP1 pid=2) INFO [gpu_model_runner.py] Starting to load model meta-llama/Llama-3.1-8B..."),
        (40.0, "(Worker_TP0 pid=1) INFO [gpu_worker.py] Available KV cache memory: 61.2 GiB"),
        (41.0, "Capturing CUDA graphs (mixed prefill-decode, PIECEWISE): 100%|██████████| 67/67"),
        (52.0, "(Worker_TP0 pid=1) INFO [gpu_model_runner.py] Graph capturing finished in 11 secs, took 0.53 GiB"),
    ]:
        timeline.feed(line, at)
    assert [(phase.phase, phase.seconds) for phase in timeline.phases(60.0)] == [
        ("plan", 1.0),
        ("engine_start", 4.0),
        ("load", 15.0),
        ("compile", 20.0),
        ("kv_cache", 1.0),
        ("graphs", 11.0),
        ("server", 8.0),
    ]


def test_summary_line():
    phases = [PhaseTime("plan", 1.04), PhaseTime("download", 250.0, "14.10 GB, 56 MB/s"), PhaseTime("load", 38.0)]
    assert summary(phases) == "ready in 289.0 s: plan 1.0 s, download 250.0 s (14.10 GB, 56 MB/s), load 38.0 s"


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_mark_names_a_phase(engine):
    marks = ENGINES[engine].start_marks
    assert marks and {mark.phase for mark in marks} <= set(PHASES) - {"plan", "download", "engine_start"}


@pytest.mark.engines
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_mark_is_in_the_pinned_engines_own_sources(engine, engine_envs):
    """An engine bump that rewords a start-up line fails here, not silently in the summary."""
    package = next((engine_envs[engine] / "lib").glob(f"python3*/site-packages/{ENGINES[engine].package}"))
    sources = "\n".join(path.read_text(errors="replace") for path in package.rglob("*.py"))
    missing = [mark.text for mark in ENGINES[engine].start_marks if mark.text not in sources]
    assert missing == []


def test_the_relay_passes_every_byte_and_shows_each_line(tmp_path: Path):
    """Progress bars redraw with a carriage return: those are lines too; a line cut across reads is one line;
    the bytes reach our side unchanged."""
    source_read, source_write = os.pipe()
    target = tmp_path / "out"
    seen: list[str] = []
    with open(target, "wb") as out:
        thread = threading.Thread(target=relay.relay, args=(source_read, out.fileno(), seen.append))
        thread.start()
        written = [b"INFO Starting to load", b" model x...\nLoading: 10%\rLoading: 100%\r\n", "é end".encode()]
        for piece in written:
            os.write(source_write, piece)
        os.close(source_write)
        thread.join(timeout=10)
    assert target.read_bytes() == b"".join(written)
    assert seen == ["INFO Starting to load model x...", "Loading: 10%", "Loading: 100%", "é end"]


def test_the_relay_masks_secrets_and_credentials_in_the_engines_output(tmp_path: Path):
    """A secret the engine prints, even cut across two reads, is hidden whole; a progress bar left standing
    is still written once the engine is quiet; bytes that are not UTF-8 pass through unchanged."""
    from entrypoint import redact

    secret = "sk-relay-secret-0123456789"
    source_read, source_write = os.pipe()
    target = tmp_path / "out"
    with open(target, "wb") as out:
        masker = redact.Masker([secret])
        thread = threading.Thread(target=relay.relay, args=(source_read, out.fileno(), lambda _: None, masker))
        thread.start()
        os.write(source_write, b"args: api_key=sk-relay-se")
        time.sleep(0.05)
        os.write(source_write, b"cret-0123456789 model=https://u:pw@hub/x\n\xff raw\nLoading: 50%")
        deadline = time.monotonic() + 60  # the bar is left standing: written while the pipe is still open
        while not target.read_bytes().endswith(b"Loading: 50%") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert target.read_bytes().endswith(b"Loading: 50%")
        os.close(source_write)
        thread.join(timeout=10)
    assert target.read_bytes() == b"args: api_key=*** model=https://***@hub/x\n\xff raw\nLoading: 50%"
