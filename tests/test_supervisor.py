"""Supervised mode: usage from the engines' /metrics, cost arithmetic, and the supervisor's behaviour
against stand-in engines (the real vLLM CPU server is in test_endpoint_cpu.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from entrypoint.engines import ENGINES
from entrypoint.settings import load
from entrypoint.supervise.engine_metrics import Usage, cost, kv_check, read_kv_tokens, read_usage
from entrypoint.supervise.prices import SOURCE, GpuPrice
from entrypoint.supervise.supervisor import limits_from
from tests.support import modelgen
from tests.support.cli import free_port, report, start_cli
from tests.support.paths import TESTS

METRICS = TESTS / "fixtures" / "metrics"


@pytest.mark.parametrize(
    ("engine", "fixture", "expected"),
    [
        # Recorded from the real vLLM 0.32.0 CPU server after 3 chats of 10 tokens and a 7-token stream.
        ("vllm", "vllm-0.32.0-cpu.txt", Usage(requests=4, running=0, generation_tokens=37)),
        # Recorded from sglang 0.5.23's own collectors (below), summed over is_streaming.
        ("sglang", "sglang-0.5.23.txt", Usage(requests=42, running=3, generation_tokens=12345)),
    ],
)
def test_usage_from_each_engines_metrics(engine, fixture, expected):
    assert read_usage((METRICS / fixture).read_text(), ENGINES[engine].metric_names) == expected


def families(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (type, label names) of every family in a /metrics text."""
    return {
        family.name: (family.type, frozenset(label for sample in family.samples for label in sample.labels))
        for family in text_string_to_metric_families(text)
    }


def test_sglang_metrics_come_from_sglang_itself(engine_envs, models):
    """sglang cannot serve here, so its collectors are driven directly (tests/engines/sglang_metrics.py):
    the names we read exist in the pinned sglang with these types, and the fixture above is what it exports."""
    live = subprocess.run(
        [
            str(engine_envs["sglang"] / "bin" / "python"),
            str(TESTS / "engines" / "sglang_metrics.py"),
            str(models("Qwen2.5-7B-Instruct")),
            "Qwen2.5-7B-Instruct",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": os.environ["PATH"], "HF_HUB_OFFLINE": "1"},
    )
    assert live.returncode == 0, live.stderr[-3000:]
    names = ENGINES["sglang"].metric_names
    assert read_usage(live.stdout, names) == Usage(requests=42, running=3, generation_tokens=12345)
    exported = families(live.stdout)
    assert {exported[names.requests][0], exported[names.generation_tokens][0], exported[names.running][0]} == {
        "counter",
        "gauge",
    } and exported[names.running][0] == "gauge"
    assert read_kv_tokens(live.stdout, names) == 400_000  # the family the self-check reads, as sglang emits it
    recorded = families((METRICS / "sglang-0.5.23.txt").read_text())
    sglang_only = {name: value for name, value in exported.items() if name.startswith("sglang:")}
    assert sglang_only == {name: value for name, value in recorded.items() if name.startswith("sglang:")}


@pytest.mark.parametrize(
    ("engine", "fixture", "tokens"),
    [("sglang", "sglang-0.5.23.txt", 400_000), ("vllm", "vllm-0.32.0-cpu.txt", 2_097_152)],
)
def test_the_kv_cache_the_engine_reports(engine, fixture, tokens):
    """vLLM: cache_config_info's kv_cache_size_tokens label (the real CPU server's scrape); sglang: the
    max_total_num_tokens gauge (its own collector)."""
    assert read_kv_tokens((METRICS / fixture).read_text(), ENGINES[engine].metric_names) == tokens
    assert read_kv_tokens("# nothing yet\n", ENGINES[engine].metric_names) is None


@pytest.mark.parametrize(
    ("planned", "allocated", "shown", "report"),
    [(415_498, 400_000, "(-3.7%)", False), (100_000, 116_000, "(+16.0%)", True), (100_000, 85_000, "(-15.0%)", False)],
)
def test_kv_check_line(planned, allocated, shown, report):
    line, off = kv_check(planned, allocated)
    assert line == f"kv cache: planned {planned:,} tokens, engine allocated {allocated:,} {shown}"
    assert off is report


@pytest.mark.parametrize(("mem_fraction", "warned"), [("0.85", False), ("0.5", True)])
def test_the_kv_cache_is_checked_once_the_engine_is_ready(serve_env, mem_fraction, warned):
    """The stand-in serves sglang's own recorded /metrics (400,000 tokens); Llama-3.1-8B on one H100 at 0.85
    plans within a few percent of it, at 0.5 far below, which asks for a report."""
    port, metrics_port = free_port(), free_port()
    env = serve_env(
        "sglang",
        FAKE_ENGINE_SLEEP="60",
        FAKE_ENGINE_METRICS=str(METRICS / "sglang-0.5.23.txt"),
        PORT=str(port),
        METRICS_PORT=str(metrics_port),
        MEM_FRACTION=mem_fraction,
    )
    process = start_cli(env)
    wait_for_report(env)
    families = supervisor_metrics(metrics_port, "inference_endpoint_kv_cache_tokens_allocated")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert families["inference_endpoint_kv_cache_tokens_allocated"].samples[0].value == 400_000
    (line,) = [line for line in stderr.splitlines() if "kv cache: planned" in line]
    planned = families["inference_endpoint_kv_cache_tokens_planned"].samples[0].value
    assert line == "supervisor: " + kv_check(int(planned), 400_000)[0]
    assert ("please report it" in stderr) is warned


def test_no_kv_self_check_where_the_plan_has_no_kv_cache(serve_env, tmp_path):
    """An encoder on vLLM is planned with no KV cache (ADR 0025). The stand-in serves vLLM's recorded /metrics,
    which do carry a KV cache size, and yet the supervisor, ready, says nothing of a KV cache: it has no
    planned figure to check it against."""
    config = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 256, "intermediate_size": 512}
    config |= {"num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 1000, "max_position_embeddings": 512}
    model = tmp_path / "encoder"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(config))
    modelgen.write_shards(model, modelgen.architecture_tensors(config), 1)
    metrics_port = free_port()
    env = serve_env(
        "vllm",
        TARGET_MODEL=str(model),
        FAKE_ENGINE_SLEEP="60",
        FAKE_ENGINE_METRICS=str(METRICS / "vllm-0.32.0-cpu.txt"),
        PORT=str(free_port()),
        METRICS_PORT=str(metrics_port),
    )
    process = start_cli(env)
    wait_for_report(env)
    families = supervisor_metrics(metrics_port, "inference_endpoint_ready")
    time.sleep(1.5)  # a poll past ready, where the self-check would have run
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert families["inference_endpoint_ready"].samples[0].value == 1
    assert families["inference_endpoint_kv_cache_tokens_planned"].samples[0].value == 0
    assert families["inference_endpoint_kv_cache_tokens_allocated"].samples[0].value == 0  # never set
    assert "supervisor: ready in" in stderr and "kv cache" not in stderr, stderr


def test_activity_is_a_request_in_flight_or_finished():
    idle = Usage(requests=4, running=0, generation_tokens=37)
    assert idle.busier_than(None)
    assert not idle.busier_than(idle)
    assert Usage(requests=4, running=1, generation_tokens=37).busier_than(idle)
    assert Usage(requests=5, running=0, generation_tokens=40).busier_than(idle)


def test_cost_arithmetic_on_recorded_counters():
    tokens = read_usage((METRICS / "sglang-0.5.23.txt").read_text(), ENGINES["sglang"].metric_names).generation_tokens
    # 4 GPUs at $2.50 an hour for 90 minutes: $15.00, over 12,345 generated tokens.
    result = cost(gpu_hourly_usd=2.5, gpu_count=4, seconds=5400, generated_tokens=tokens)
    assert result.hourly_usd == 10.0 and result.running_usd == pytest.approx(15.0)
    assert result.per_1k_generated_tokens_usd == pytest.approx(15.0 / 12.345)  # $1.2151 per 1k tokens
    assert cost(2.5, 1, 60, 0).per_1k_generated_tokens_usd is None


# What limits_from reads of a plan: the catalogue row the GPU was resolved to at start-up (None: no row).
H100_PLAN = SimpleNamespace(gpu_catalog_name="H100")
CPU_PLAN = SimpleNamespace(gpu_catalog_name=None)


def test_exec_unless_something_must_watch():
    assert limits_from(load({"TARGET_MODEL": "m"}), H100_PLAN) is None
    limits = limits_from(load({"TARGET_MODEL": "m", "IDLE_TIMEOUT_MIN": "30", "SHUTDOWN_TIMEOUT": "20"}), H100_PLAN)
    assert (limits.idle_seconds, limits.max_run_seconds, limits.drain_seconds, limits.poll_seconds) == (
        1800,
        None,
        50,
        10.0,
    )
    assert limits_from(load({"TARGET_MODEL": "m", "IDLE_TIMEOUT_MIN": "1"}), H100_PLAN).poll_seconds == 3.0
    assert limits_from(load({"TARGET_MODEL": "m", "MAX_RUN_HOURS": "0.5"}), H100_PLAN).max_run_seconds == 1800
    assert limits_from(load({"TARGET_MODEL": "m", "METRICS_PORT": "9400"}), H100_PLAN).metrics_port == 9400


@pytest.mark.parametrize(
    ("environ", "plan", "expected"),
    [
        ({"GPU_HOURLY_USD": "2.5"}, H100_PLAN, GpuPrice(2.5, "GPU_HOURLY_USD")),  # what you pay wins
        ({"GPU_HOURLY_USD": "0"}, H100_PLAN, GpuPrice(0.0, "GPU_HOURLY_USD")),  # reserved or owned hardware
        ({}, H100_PLAN, GpuPrice(2.253, SOURCE)),  # else the typical spot price, labelled as such
        ({}, SimpleNamespace(gpu_catalog_name="A100-80GB"), GpuPrice(1.5712, SOURCE)),
        ({}, SimpleNamespace(gpu_catalog_name="A10G"), None),  # a catalogue GPU without a typical price
        ({}, CPU_PLAN, None),  # no GPU, no GPU price
        ({"GPU_HOURLY_USD": "0.4"}, CPU_PLAN, GpuPrice(0.4, "GPU_HOURLY_USD")),
    ],
)
def test_which_price_the_cost_figures_use(environ, plan, expected):
    limits = limits_from(load({"TARGET_MODEL": "m", "METRICS_PORT": "9400", **environ}), plan)
    assert limits.price == expected


def wait_for_report(env: dict[str, str]) -> dict:
    deadline = time.monotonic() + 30
    while not os.path.exists(env["FAKE_ENGINE_REPORT"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    return report(env)


def supervisor_metrics(port: int, until: str, timeout: float = 20) -> dict:
    """The supervisor's own /metrics families, once the family `until` has a non-zero sample (or the time is up)."""
    deadline, families = time.monotonic() + timeout, {}
    while time.monotonic() < deadline and not (until in families and families[until].samples[0].value):
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            families = {f.name: f for f in text_string_to_metric_families(text) if f.samples}
        except OSError:
            pass
        time.sleep(0.2)
    return families


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return status != "Z"


@pytest.mark.parametrize(("engine_exit", "expected"), [("7", 7), ("0", 51)])
def test_engine_dying_gives_its_code_to_the_orchestrator(serve_env, engine_exit, expected):
    process = start_cli(serve_env(FAKE_ENGINE_EXIT=engine_exit, IDLE_TIMEOUT_MIN="5"))
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == expected
    assert f"exited during start-up with status {engine_exit}" in stderr
    assert "start: " in stderr and "exec: " not in stderr  # supervised: a child, not an exec


def test_requests_in_flight_keep_it_alive(serve_env):
    port = free_port()
    env = serve_env(
        "sglang",
        FAKE_ENGINE_SLEEP="60",
        FAKE_ENGINE_METRICS=str(METRICS / "sglang-0.5.23.txt"),
        PORT=str(port),
        IDLE_TIMEOUT_MIN="0.02",
    )  # 1.2 s, but the recording has 3 requests running
    process = start_cli(env)
    wait_for_report(env)
    time.sleep(3)  # 2.5 times the idle limit
    assert process.poll() is None
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    # Without this the test would pass with scraping broken: an engine never seen ready is never idle.
    assert "supervisor: ready in " in stderr


def test_sigterm_is_forwarded_and_the_supervisor_follows(serve_env):
    env = serve_env(FAKE_ENGINE_SLEEP="60", IDLE_TIMEOUT_MIN="5", FAKE_ENGINE_CHILD="1")
    process = start_cli(env)
    engine = wait_for_report(env)
    assert engine["pid"] != process.pid  # supervised: the engine is a child
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 0 and not alive(engine["pid"])
    assert not alive(engine["child_pid"])  # what the engine left behind ends with it (its process group)


def test_a_second_sigterm_ends_the_drain_at_once(serve_env):
    """The first SIGTERM lets the engine drain (here for a minute); a second one kills its whole process group
    at once and exits 143, as a shell reports a SIGTERM."""
    env = serve_env(FAKE_ENGINE_SLEEP="120", FAKE_ENGINE_DRAIN="60", IDLE_TIMEOUT_MIN="5", FAKE_ENGINE_CHILD="1")
    process = start_cli(env)
    engine = wait_for_report(env)
    process.send_signal(signal.SIGTERM)
    time.sleep(1.5)
    assert process.poll() is None and alive(engine["pid"])  # draining
    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 143 and time.monotonic() - signalled < 5
    assert "killed on a second signal" in stderr
    assert not alive(engine["pid"]) and not alive(engine["child_pid"])


def test_the_engine_dies_with_a_killed_supervisor(serve_env):
    """SIGKILL (or the OOM killer) gives the supervisor no chance to end the engine, whose own session escapes
    a kill of the supervisor's group: the kernel kills it (PR_SET_PDEATHSIG, set before it became the engine,
    whose argv `ps` still shows)."""
    env = serve_env(FAKE_ENGINE_SLEEP="120", IDLE_TIMEOUT_MIN="5")
    process = start_cli(env)
    engine = wait_for_report(env)
    assert engine["cmdline"][1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    process.kill()
    process.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while alive(engine["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(engine["pid"])


def test_max_run_hours_stops_everything_and_exits_0(serve_env):
    env = serve_env(FAKE_ENGINE_SLEEP="60", MAX_RUN_HOURS="0.0005")  # 1.8 s
    process = start_cli(env)
    engine = wait_for_report(env)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0 and "(MAX_RUN_HOURS)" in stderr
    assert not alive(engine["pid"])


@pytest.mark.parametrize(
    ("price_setting", "price", "source"),
    [
        ({"GPU_HOURLY_USD": "2.5"}, 2.5, "GPU_HOURLY_USD"),
        ({}, 2.253, SOURCE),  # ACCELERATORS=H100:1 and no price given: the typical spot price, said so
    ],
)
def test_idle_engine_is_stopped_and_cost_is_exported(serve_env, price_setting, price, source):
    port, metrics_port = free_port(), free_port()
    # The recorded vLLM counters: no request in flight, and they never move, so it is idle from the start.
    env = serve_env(
        "vllm",
        FAKE_ENGINE_SLEEP="60",
        FAKE_ENGINE_METRICS=str(METRICS / "vllm-0.32.0-cpu.txt"),
        PORT=str(port),
        IDLE_TIMEOUT_MIN="0.06",  # 3.6 s: time enough to read the metrics several times first
        METRICS_PORT=str(metrics_port),
        **price_setting,
    )
    process = start_cli(env)
    engine = wait_for_report(env)
    families = supervisor_metrics(metrics_port, "inference_endpoint_generation_tokens")
    info = families["inference_endpoint_plan_info"].samples[0].labels
    assert (info["engine"], info["tp"], info["gpu"]) == ("vllm", "1", "H100")
    value = {name: family.samples[0].value for name, family in families.items()}
    assert value["inference_endpoint_generation_tokens"] == 37
    assert value["inference_endpoint_cost_usd_per_hour"] == price
    assert families["inference_endpoint_gpu_hourly_usd"].samples[0].labels == {"source": source}
    # Cost per 1k tokens is the running cost over the engine's own token counter.
    assert value["inference_endpoint_cost_per_1k_generated_tokens_usd"] == pytest.approx(
        value["inference_endpoint_running_cost_usd"] / 0.037, rel=0.2
    )
    _, stderr = process.communicate(timeout=60)  # idle 3.6 s after the engine first answered
    assert process.returncode == 0 and "(IDLE_TIMEOUT_MIN)" in stderr
    assert f"cost figures use ${price:.2f} per GPU-hour: {source}" in stderr
    assert ("set GPU_HOURLY_USD to what you pay" in stderr) == (source == SOURCE)
    assert not alive(engine["pid"])


def test_metrics_port_in_use_is_a_setting_error(serve_env):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = start_cli(serve_env(FAKE_ENGINE_SLEEP="60", METRICS_PORT=str(port)))
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 10
    assert stderr.strip().splitlines()[-1].startswith(f"error: METRICS_PORT={port} cannot be used")
    assert "Traceback" not in stderr


def test_engine_killed_after_serving_gives_its_status(serve_env, tmp_path):
    """The engine dying once it served is the supervisor's exit status (137 for SIGKILL), so Docker's or
    SkyPilot's restart policy sees a failure."""
    env = serve_env(
        FAKE_ENGINE_SLEEP="60",
        FAKE_ENGINE_METRICS=str(METRICS / "vllm-0.32.0-cpu.txt"),
        PORT=str(free_port()),
        METRICS_PORT=str(free_port()),
        FAKE_ENGINE_CHILD="1",
    )
    log = tmp_path / "supervisor.log"
    with open(log, "w", encoding="utf-8") as handle:
        process = start_cli(env, stdout=handle, stderr=subprocess.STDOUT)
    engine = wait_for_report(env)
    deadline = time.monotonic() + 30
    while "supervisor: ready in " not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "supervisor: ready in " in log.read_text()
    os.kill(engine["pid"], signal.SIGKILL)
    assert process.wait(timeout=30) == 128 + signal.SIGKILL
    assert "exited after serving with status -9; exiting 137" in log.read_text()
    assert not alive(engine["child_pid"])  # an EngineCore-like child does not outlive it


class SteppingClock:
    """A monotonic clock that moves `step` seconds each time it is read: hours pass in a few polls."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_max_run_hours_counts_hours_on_the_supervisors_clock(serve_env, models):
    """MAX_RUN_HOURS=12 in-process, on an injected clock: the cap is read in hours, the engine (a real child
    that would run for a minute) is stopped with SIGTERM, and the supervisor exits 0."""
    import io

    from entrypoint import launch
    from entrypoint.supervise.supervisor import Supervisor
    from tests.support.planning import plan_env

    # Quiet: each line it printed would be one more reading of the clock (the phases of the start).
    env = serve_env(FAKE_ENGINE_SLEEP="60", MAX_RUN_HOURS="12", FAKE_ENGINE_QUIET="1")
    settings, plan = plan_env(env)
    engine = ENGINES[settings.engine]
    started = launch.prepare(engine, settings, plan, env, python=sys.executable)
    limits = limits_from(settings, plan)
    log = io.StringIO()
    clock = SteppingClock(step=4 * 3600.0)  # four hours per reading: start, then 4, 8, 12 hours in
    code = Supervisor(started, engine, plan, settings, limits, log, clock=clock).run()
    assert code == 0
    assert "stopping vllm: running for 12.0 h (MAX_RUN_HOURS)" in log.getvalue()
    assert clock.now == 16 * 3600  # readings: start, the engine's launch, then polls at 8 and 12 hours in
    assert not alive(report(env)["pid"])


@pytest.mark.parametrize(
    ("engine", "startlog", "shown"),
    [
        ("vllm", "vllm-0.32.0-cpu.log", ["engine start", "load", "compile and profile", "kv cache", "server start"]),
        ("sglang", "sglang-0.5.23.log", ["engine start", "load", "kv cache", "CUDA graphs", "server start"]),
    ],
)
def test_the_start_is_timed_phase_by_phase(serve_env, engine, startlog, shown):
    """A stand-in engine prints a recorded start-up log (without flushing: the supervisor must make the pipe
    unbuffered) before it answers: the engine's output is relayed unchanged, one line says where the time
    went, and the same phases are metrics that add up to the time to ready."""
    port, metrics_port = free_port(), free_port()
    metrics = "vllm-0.32.0-cpu.txt" if engine == "vllm" else "sglang-0.5.23.txt"
    env = serve_env(
        engine,
        FAKE_ENGINE_SLEEP="60",
        FAKE_ENGINE_LOG=str(TESTS / "fixtures" / "startlogs" / startlog),
        FAKE_ENGINE_LOG_GAP="0.01",
        FAKE_ENGINE_METRICS=str(METRICS / metrics),
        PORT=str(port),
        METRICS_PORT=str(metrics_port),
        IDLE_TIMEOUT_MIN="5",
    )
    process = start_cli(env)
    families = supervisor_metrics(metrics_port, "inference_endpoint_time_to_ready_seconds", timeout=60)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    recorded = (TESTS / "fixtures" / "startlogs" / startlog).read_text().splitlines()
    assert [line for line in recorded if not line.startswith("# ")] == [
        line for line in stdout.splitlines() if not line.startswith("fake ")
    ]  # relayed byte for byte, on the engine's own stream
    summary = next(line for line in stderr.splitlines() if line.startswith("supervisor: ready in "))
    for words in ["plan", *shown]:
        assert f" {words} " in summary
    phases = {
        sample.labels["phase"]: sample.value for sample in families["inference_endpoint_start_phase_seconds"].samples
    }
    assert phases["plan"] > 0 and phases["engine_start"] > 0
    ready = families["inference_endpoint_time_to_ready_seconds"].samples[0].value
    assert sum(phases.values()) == pytest.approx(ready, abs=0.01)  # both from the process's start
