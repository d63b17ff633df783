"""Supervised mode: the engine as a child, watched through its own /metrics.

By default the entrypoint execs the engine (docs/adr/0007). It stays as a
small supervisor only when something must watch the server (docs/adr/0011):
IDLE_TIMEOUT_MIN, MAX_RUN_HOURS or METRICS_PORT. Then it

- starts the engine with the same argv and environment exec would have used,
- forwards SIGTERM/SIGINT to it and exits 0 once it drained; a second signal kills the engine's whole
  process group at once and exits 128+N (143 for SIGTERM),
- reads the engine's Prometheus /metrics every few seconds (parsed by
  prometheus_client, see `usage`), counts a request in flight or a finished
  request as activity, and stops the engine gracefully (SIGTERM, then the
  drain time) after IDLE_TIMEOUT_MIN without activity or after MAX_RUN_HOURS,
  exiting 0 so that SkyPilot's autostop can take the machine down,
- exits with the engine's own code when it dies, so the orchestrator restarts it,
- relays the engine's output and times the phases of the start from its log lines (phases.py): one
  `ready in ...` line says where the time went, and the phases are metrics,
- serves its own metrics on METRICS_PORT: the plan, time to ready, idle time,
  tokens, and with GPU_HOURLY_USD the running cost and the cost per 1,000
  generated tokens.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from .. import loopback, redact
from ..engines.base import Engine
from ..errors import ENGINE_EXITED_UNASKED, SettingError
from ..launch import Launch
from ..plan import Plan
from ..settings import Settings
from . import relay
from .engine_metrics import KV_GAP_TO_REPORT, Usage, cost, kv_check, read_kv_tokens, read_usage
from .phases import PhaseTime, StartTimeline, summary
from .prices import GpuPrice, gpu_price


@dataclass(frozen=True)
class Limits:
    idle_seconds: float | None
    max_run_seconds: float | None
    metrics_port: int | None
    price: GpuPrice | None  # None: no cost metrics
    drain_seconds: float  # how long the engine may take to stop after SIGTERM

    @property
    def poll_seconds(self) -> float:
        # Often enough that a stop is late by a small fraction of its limit.
        limits = [limit / 20 for limit in (self.idle_seconds, self.max_run_seconds) if limit]
        return max(0.5, min([10.0, *limits]))


def limits_from(settings: Settings, plan: Plan) -> Limits | None:
    """None when nothing needs watching: then the engine is exec'd."""
    if not (settings.idle_timeout_min or settings.max_run_hours or settings.metrics_port):
        return None
    return Limits(
        idle_seconds=settings.idle_timeout_min * 60 if settings.idle_timeout_min else None,
        max_run_seconds=settings.max_run_hours * 3600 if settings.max_run_hours else None,
        metrics_port=settings.metrics_port,
        price=gpu_price(settings.gpu_hourly_usd, plan.gpu_catalog_name),
        drain_seconds=settings.shutdown_timeout + 30,
    )


class Exporter:
    """The supervisor's own /metrics (prometheus_client, a registry of its own)."""

    def __init__(self, port: int, plan: Plan, price: GpuPrice | None) -> None:
        from prometheus_client import CollectorRegistry, Gauge, Info, start_http_server

        self.registry = CollectorRegistry()
        info = Info("inference_endpoint_plan", "The plan the engine runs", registry=self.registry)
        info.info(
            {
                "engine": plan.engine,
                "model": plan.model,
                "gpu": plan.gpu_name,
                "gpus": str(plan.gpu_count),
                "tp": str(plan.tp),
                "pp": str(plan.pp),
                "dp": str(plan.dp),
                "ep": str(plan.ep),
                "nodes": str(plan.nodes),
                "max_model_len": str(plan.max_model_len),
            }
        )

        def gauge(name: str, text: str) -> Gauge:
            return Gauge(f"inference_endpoint_{name}", text, registry=self.registry)

        self.ready = gauge("ready", "1 once the engine answers /metrics")
        self.time_to_ready = gauge("time_to_ready_seconds", "Seconds from start to the engine answering")
        self.idle = gauge("idle_seconds", "Seconds since the last request was in flight or finished")
        self.requests = gauge("requests", "Requests the engine has finished")
        self.tokens = gauge("generation_tokens", "Tokens the engine has generated")
        self.kv_planned = gauge("kv_cache_tokens_planned", "KV cache tokens per replica the plan expects")
        self.kv_planned.set(plan.memory_per_gpu.kv_tokens)
        self.kv_allocated = gauge("kv_cache_tokens_allocated", "KV cache tokens per replica the engine reports")
        self.start_phase = Gauge(
            "inference_endpoint_start_phase_seconds",
            "Seconds the start spent in each phase, set once the engine answers",
            ["phase"],
            registry=self.registry,
        )
        if price is not None:  # which price the cost figures use, and where it came from
            Gauge(
                "inference_endpoint_gpu_hourly_usd",
                "Price of one GPU-hour used for the cost figures",
                ["source"],
                registry=self.registry,
            ).labels(source=price.source).set(price.usd_per_gpu_hour)
        self.hourly = gauge("cost_usd_per_hour", "The GPU-hour price times the GPUs of the plan")
        self.running_cost = gauge("running_cost_usd", "Cost of the GPUs since start")
        self.per_1k = gauge("cost_per_1k_generated_tokens_usd", "Running cost per 1,000 generated tokens")
        self.server, self.thread = start_http_server(port, registry=self.registry)

    def close(self) -> None:
        self.server.shutdown()


class Supervisor:
    def __init__(
        self,
        launch: Launch,
        engine: Engine,
        plan: Plan,
        settings: Settings,
        limits: Limits,
        log: TextIO,
        clock: Callable[[], float] = time.monotonic,
        timeline: StartTimeline | None = None,
    ) -> None:
        self.launch, self.engine, self.plan, self.limits, self.log, self.clock = (
            launch,
            engine,
            plan,
            limits,
            log,
            clock,
        )
        self.port, self.tls = settings.port, bool(settings.tls_cert_file)
        self.forwarded: int | None = None  # the signal we passed on, if any
        self.second: int | None = None  # a second signal, which ended the drain at once
        self.child: subprocess.Popen[bytes] | None = None
        # The start so far (plan, download) as the CLI saw it; or from now, for callers that only supervise.
        self.timeline = timeline or StartTimeline(clock(), engine.start_marks)
        self.timeline_lock = threading.Lock()  # fed by the two relay threads

    def run(self) -> int:
        exporter = self._exporter()
        self._say(
            f"supervising {self.engine.name} (idle timeout {self._minutes(self.limits.idle_seconds)}, "
            f"run limit {self._minutes(self.limits.max_run_seconds)}"
            + (f", metrics on :{self.limits.metrics_port}" if exporter else "")
            + ")"
        )
        price = self.limits.price
        if exporter and price is not None:
            self._say(
                f"cost figures use ${price.usd_per_gpu_hour:.2f} per GPU-hour: {price.source}"
                + ("" if price.source == "GPU_HOURLY_USD" else "; set GPU_HOURLY_USD to what you pay")
            )
        # Handlers first, so a SIGTERM that arrives while the engine starts is not lost.
        previous = {signum: signal.signal(signum, self._on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
        # Its own session and process group, so that whatever it leaves behind (vLLM's EngineCore and workers
        # can outlive the API server) is ended with it.
        child, relays = self._start_engine()
        if self.forwarded is not None:
            child.send_signal(self.forwarded)
        try:
            return self._watch(child, exporter)
        finally:
            if child.poll() is None:
                child.kill()
            _end_group(child.pid)
            for thread in relays:  # the last lines, once every process that held the pipes is gone
                thread.join(timeout=5)
            if exporter:
                exporter.close()
            for signum, handler in previous.items():  # for callers that go on (tests); the CLI exits
                signal.signal(signum, handler)

    def _start_engine(self) -> tuple[subprocess.Popen[bytes], list[threading.Thread]]:
        # Python engines buffer a pipe by blocks; unbuffered, each line arrives when it is written.
        env = {**self.launch.env, "PYTHONUNBUFFERED": "1"}
        pipes = [os.pipe(), os.pipe()]
        try:
            child = self.child = subprocess.Popen(
                _dying_with(os.getpid(), self.launch.command.argv),
                env=env,
                stdout=pipes[0][1],
                stderr=pipes[1][1],
                start_new_session=True,
            )
        except BaseException:
            for read_end, write_end in pipes:
                os.close(read_end)
                os.close(write_end)
            raise
        with self.timeline_lock:
            self.timeline.begin("engine_start", self.clock())
        relays = []
        for (read_end, write_end), ours in zip(pipes, (1, 2), strict=True):
            os.close(write_end)  # the child holds it: the pipe ends when the engine's processes are gone
            relays.append(relay.start(read_end, ours, self._on_engine_line, redact.Masker(self.launch.secrets)))
        return child, relays

    def _on_engine_line(self, line: str) -> None:
        with self.timeline_lock:
            self.timeline.feed(line, self.clock())

    def _ready(self, now: float, exporter: Exporter | None) -> None:
        with self.timeline_lock:
            phases = self.timeline.phases(now)
        self._say(summary(phases))
        if exporter:
            _export_phases(exporter, phases)

    def _watch(self, child: subprocess.Popen[bytes], exporter: Exporter | None) -> int:
        started = self.timeline.began
        ready_at: float | None = None
        last_active = started
        previous: Usage | None = None
        kv_checked = not self.plan.kv_cache  # nothing to check where the engine keeps no KV cache
        while True:
            if self.forwarded is not None:
                return self._wait_after_signal(child)
            code = child.poll()
            if code is not None:
                return self._engine_exited(code, ready_at is not None)
            now = self.clock()
            usage, text = self._scrape()
            if usage is not None:
                if ready_at is None:
                    ready_at = last_active = now
                    self._ready(now, exporter)
                if not kv_checked:
                    kv_checked = self._check_kv_cache(text, exporter)
                if usage.busier_than(previous):
                    last_active = now
                previous = usage
            if exporter:
                self._export(
                    exporter,
                    usage,
                    now - started,
                    ready_at - started if ready_at is not None else None,
                    now - last_active,
                )
            limit = self.limits
            if limit.idle_seconds and ready_at is not None and now - last_active >= limit.idle_seconds:
                return self._stop(child, f"no request for {self._minutes(now - last_active)} (IDLE_TIMEOUT_MIN)")
            if limit.max_run_seconds and now - started >= limit.max_run_seconds:
                return self._stop(child, f"running for {self._minutes(now - started)} (MAX_RUN_HOURS)")
            # Every second until the engine first answers, so time to ready is exact to a second.
            wait = limit.poll_seconds if ready_at is not None else min(1.0, limit.poll_seconds)
            # Returns at once when the engine exits, or when a signal made us stop it.
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=wait)

    def _scrape(self) -> tuple[Usage | None, str]:
        try:
            _, body = loopback.get(self.port, "/metrics", self.tls)
            text = body.decode("utf-8", "replace")
            return read_usage(text, self.engine.metric_names), text
        except (OSError, ValueError):
            return None, ""  # not up yet, or busy: the next poll tries again

    def _check_kv_cache(self, text: str, exporter: Exporter | None) -> bool:
        """Once the engine reports its KV cache: the plan against it, in the log and as metrics (ADR 0017)."""
        allocated = read_kv_tokens(text, self.engine.metric_names)  # text that read_usage just parsed
        if allocated is None:
            return False
        line, off = kv_check(self.plan.memory_per_gpu.kv_tokens, allocated)
        self._say(line)
        if off:
            self._say(
                "warning: the plan's KV cache is off by more than "
                f"{KV_GAP_TO_REPORT:.0%}; please report it with this log and `plan --json`"
            )
        if exporter:
            exporter.kv_allocated.set(allocated)
        return True

    def _export(
        self, exporter: Exporter, usage: Usage | None, elapsed: float, time_to_ready: float | None, idle: float
    ) -> None:
        exporter.ready.set(1 if time_to_ready is not None else 0)
        if time_to_ready is not None:
            exporter.time_to_ready.set(time_to_ready)
            exporter.idle.set(idle)
        if usage is None:
            return
        exporter.requests.set(usage.requests)
        exporter.tokens.set(usage.generation_tokens)
        if self.limits.price is not None:
            now_cost = cost(self.limits.price.usd_per_gpu_hour, self.plan.gpu_count, elapsed, usage.generation_tokens)
            exporter.hourly.set(now_cost.hourly_usd)
            exporter.running_cost.set(now_cost.running_usd)
            if now_cost.per_1k_generated_tokens_usd is not None:
                exporter.per_1k.set(now_cost.per_1k_generated_tokens_usd)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.forwarded is not None and self.child is not None:
            # Asked twice: stop now. The drain the first signal started is cut short, engine and workers alike.
            self.second = signum
            _end_group(self.child.pid)
            return
        self.forwarded = signum
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)

    def _exporter(self) -> Exporter | None:
        port = self.limits.metrics_port
        if not port:
            return None
        try:
            return Exporter(port, self.plan, self.limits.price)
        except OSError as exc:
            raise SettingError(
                f"METRICS_PORT={port} cannot be used: {exc.strerror}", "pick a free port, for example METRICS_PORT=9400"
            ) from None

    def _wait_after_signal(self, child: subprocess.Popen[bytes]) -> int:
        # The orchestrator asked; it also decides how long to wait before SIGKILL. A second signal ends the
        # wait at once (_on_signal): then the exit says so, as a shell's would (143 for SIGTERM).
        code = child.wait()
        if self.second is not None:
            self._say(f"{self.engine.name} killed on a second signal, before its requests drained")
            return _exit_status(-self.second)
        return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else _exit_status(code)

    def _stop(self, child: subprocess.Popen[bytes], reason: str) -> int:
        self._say(f"stopping {self.engine.name}: {reason}")
        child.send_signal(signal.SIGTERM)
        try:
            code = child.wait(timeout=self.limits.drain_seconds)
        except subprocess.TimeoutExpired:
            self._say(f"{self.engine.name} did not stop within {self.limits.drain_seconds:.0f} s; killing it")
            child.kill()
            code = child.wait()
        self._say(f"{self.engine.name} stopped (status {code}); exiting 0")
        return 0

    def _engine_exited(self, code: int, was_ready: bool) -> int:
        when = "after serving" if was_ready else "during start-up"
        status = _exit_status(code) or ENGINE_EXITED_UNASKED
        self._say(
            f"error: {self.engine.name} exited {when} with status {code}; exiting {status} so that the "
            "orchestrator restarts it (its log above says why)"
        )
        return status

    def _say(self, text: str) -> None:
        print(f"supervisor: {text}", file=self.log, flush=True)

    @staticmethod
    def _minutes(seconds: float | None) -> str:
        if seconds is None:
            return "off"
        return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


# Run by the engine's Python before it becomes the engine: the kernel then kills it if the supervisor dies
# without ending it (SIGKILL, the OOM killer), since its own session escapes a kill of the supervisor's
# group. The setting survives exec (not for setuid programs), and `ps` shows the engine's argv. A wrapper,
# not preexec_fn, which is unsafe with threads. The engine's own children do not inherit it (vLLM 0.32's
# EngineCore outlives a killed API server): in a container they end with its PID 1; outside one, only a
# supervisor that lives can end them (_end_group).
ORPHAN_GUARD = (
    "import ctypes, os, sys\n"
    "ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL\n"
    "os.getppid() == int(sys.argv[1]) or os._exit(1)  # the supervisor died before prctl took effect\n"
    "os.execvp(sys.argv[2], sys.argv[2:])"
)


def _dying_with(supervisor: int, argv: tuple[str, ...]) -> list[str]:
    """The engine's argv, started through ORPHAN_GUARD with its own Python on Linux."""
    if not sys.platform.startswith("linux"):
        return list(argv)
    return [argv[0], "-c", ORPHAN_GUARD, str(supervisor), *argv]


def _export_phases(exporter: Exporter, phases: list[PhaseTime]) -> None:
    for phase in phases:
        exporter.start_phase.labels(phase=phase.phase).set(phase.seconds)


def _end_group(pgid: int) -> None:
    """Kill what is left of the engine's process group: its children once it has exited."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _exit_status(code: int) -> int:
    """A shell's view of a child's status: killed by signal N is 128+N."""
    return 128 - code if code < 0 else code
