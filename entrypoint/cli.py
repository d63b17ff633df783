"""`python -m entrypoint [serve|plan|health|help|version | -engine-flags... | CMD...]`.

What the images run. With no arguments it serves: settings -> GPUs -> model
-> plan -> the engine's argv -> exec. Like the official engine images, a first
argument starting with `-` is appended to the engine's argv, and any other
command (`bash`, `nvidia-smi`) is exec'd unchanged. Errors end here as one
line and an exit code; secrets never reach the output.
"""

from __future__ import annotations

import argparse
import os
import shlex
import ssl
import sys
import traceback
import urllib.error
import urllib.request
from dataclasses import replace
from typing import Mapping, Sequence, TextIO

from . import __version__, cluster, gpus, launch, render, supervisor
from .engines import ENGINES
from .engines.base import Engine
from .errors import (CommandNotFoundError, EntrypointError, MissingSettingError, NoSafetensorsError,
                     NvidiaSmiMissingError, UnsupportedByEngineError)
from .model.source import ModelInfo, read_model
from .plan import Plan, make_plan
from .settings import Settings, load, load_value, secret_values

_TRUTHY = {"1", "true", "yes", "on"}
USAGE = """usage: python -m entrypoint [COMMAND]

  (nothing), serve [FLAGS]   plan, then exec the engine (FLAGS are appended to its argv)
  -FLAG ...                  the same as `serve -FLAG ...`
  plan [--json]              print the plan and the engine command, start nothing
  health                     exit 0 when the local server's /health answers 200
  version                    print this tool's version
  help                       this text
  CMD [ARGS]                 run CMD instead (e.g. bash), like the engine images do

Settings come from environment variables; see README.md."""


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
         stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    environ = os.environ if environ is None else environ
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _dispatch(argv, environ, stdout, stderr)
    except EntrypointError as exc:
        secrets = secret_values(environ)
        if environ.get("DEBUG", "").strip().lower() in _TRUTHY:
            stderr.write(launch.redact_text(traceback.format_exc(), secrets))
        hint = f"; {exc.hint}" if exc.hint else ""
        print(launch.redact_text(f"error: {exc.message}{hint}", secrets), file=stderr)
        return exc.exit_code


def _dispatch(argv: list[str], environ: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    if not argv or argv[0].startswith("-"):
        return serve(argv, environ, stderr)
    command, rest = argv[0], argv[1:]
    if command == "serve":
        return serve(rest, environ, stderr)
    if command == "plan":
        return plan_command(rest, environ, stdout, stderr)
    if command == "health":
        return health(environ, stderr)
    if command == "version":
        print(f"inference-endpoint {__version__}", file=stdout)
        return 0
    if command in ("help", "--help", "-h"):
        print(USAGE, file=stdout)
        return 0
    return passthrough(argv)


def key_required_because(settings: Settings) -> str | None:
    """Why serving needs API_KEY, or None. The default policy (auto): under SkyPilot, whose ports are public."""
    if settings.require_api_key == "auto":
        return "this runs under SkyPilot (REQUIRE_API_KEY=auto)" if settings.skypilot_task_id else None
    return "REQUIRE_API_KEY=true" if settings.require_api_key else None


def serve(user_args: Sequence[str], environ: Mapping[str, str], log: TextIO) -> int:
    settings = load(environ)
    engine = ENGINES[settings.engine]
    why_key = key_required_because(settings)
    if why_key and not settings.api_key:
        raise MissingSettingError(f"API_KEY is not set, and {why_key}: this endpoint would be open to anyone who "
                                  "can reach its port",
                                  "pass a key (sky launch ... --secret API_KEY=$(openssl rand -hex 24)), or opt out "
                                  "explicitly with REQUIRE_API_KEY=false")
    launch.require_engine(engine)  # before minutes of planning and download
    launch.checked_extra_args(engine, settings, user_args)
    for warning in settings.warnings:
        print(f"warning: {warning}", file=log)
    plan, _ = plan_for(settings, engine, environ)
    print(f"inference-endpoint {__version__}", file=log)
    print(render.as_table(plan), file=log)
    started = launch.prepare(engine, settings, plan, environ, user_args)
    limits = supervisor.limits_from(settings, plan)
    if limits:  # something must watch the server: stay as its parent (docs/adr/0011)
        launch.announce(started, engine, log, verb="start")
        return supervisor.Supervisor(started, engine, plan, settings, limits, log).run()
    launch.exec_engine(started, engine, log)
    return 0  # not reached: exec_engine replaces the process or raises


def plan_command(argv: Sequence[str], environ: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    parser = argparse.ArgumentParser(prog="python -m entrypoint plan",
                                     description="Print the plan and the engine command; start nothing.")
    parser.add_argument("--json", action="store_true", help="one JSON object for pipelines")
    args = parser.parse_args(argv)
    settings = load(environ)
    engine = ENGINES[settings.engine]
    for warning in settings.warnings:
        print(f"warning: {warning}", file=stderr)
    plan, model = plan_for(settings, engine, environ)
    started = launch.prepare(engine, settings, plan, environ)
    argv_shown = launch.shown_argv(started, engine)
    if args.json:
        extra = {"shards": model.shards, "model_location": model.location, "argv": argv_shown,
                 "engine_env": {name: launch.redact_text(value, started.secrets)
                                for name, value in started.command.env.items()}}
        print(render.as_json(plan, extra), file=stdout)
    else:
        print(render.as_table(plan), file=stdout)
        print(f"\ncommand\n  {shlex.join(argv_shown)}", file=stdout)
    return 0


def build_plan(environ: Mapping[str, str]) -> tuple[Settings, Plan, ModelInfo]:
    settings = load(environ)
    plan, model = plan_for(settings, ENGINES[settings.engine], environ)
    return settings, plan, model


def plan_for(settings: Settings, engine: Engine, environ: Mapping[str, str]) -> tuple[Plan, ModelInfo]:
    hardware = resolve_hardware(settings, engine, environ)
    _quiet_hub_progress()
    offline = environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY
    model = read_model(settings.target_model, settings.hf_revision, settings.hf_token, offline=offline)
    draft, notes = _read_draft(settings, offline)
    plan = make_plan(settings, hardware, model, engine, draft)
    return replace(plan, warnings=plan.warnings + tuple(notes)), model


def _read_draft(settings: Settings, offline: bool) -> tuple[ModelInfo | None, list[str]]:
    if not (settings.spec_enabled and settings.spec_draft_model):
        return None, []
    try:
        return read_model(settings.spec_draft_model, None, settings.hf_token, offline=offline), []
    except NoSafetensorsError:
        # Many EAGLE heads ship only pytorch_model.bin; the engine loads them fine.
        return None, [f"SPEC_DRAFT_MODEL={settings.spec_draft_model} has no safetensors headers to read, so its "
                      "memory is not counted in this plan; leave headroom with MEM_FRACTION."]


def resolve_hardware(settings: Settings, engine: Engine, environ: Mapping[str, str]) -> gpus.Hardware:
    """One node's GPUs (ACCELERATORS or nvidia-smi) times the nodes SkyPilot started."""
    hardware = _node_hardware(settings, engine, environ)
    allocated = settings.skypilot_num_gpus_per_node
    if allocated and not hardware.is_cpu and allocated != hardware.count:
        hardware = _with_notes(hardware, [f"SkyPilot allocated {allocated} GPU(s) per node, but the plan uses "
                                          f"{hardware.count}: check --gpus against ACCELERATORS or the container's "
                                          "GPU access."])
    nodes = cluster.from_settings(settings).nodes
    if nodes > 1 and hardware.is_cpu:
        raise UnsupportedByEngineError("the CPU path runs on one node, but SKYPILOT_NUM_NODES is above 1",
                                       "use num_nodes: 1 for ACCELERATORS=cpu")
    return replace(hardware, nodes=nodes)


def _node_hardware(settings: Settings, engine: Engine, environ: Mapping[str, str]) -> gpus.Hardware:
    """ACCELERATORS when set (compared with nvidia-smi when present), else detection."""
    accelerators = settings.accelerators
    if accelerators is None:
        return gpus.detect(environ)
    if accelerators.is_cpu:
        if not engine.supports_cpu:
            raise UnsupportedByEngineError(f"ACCELERATORS=cpu is not supported with ENGINE={engine.name}",
                                           "use ENGINE=vllm for the CPU path, or run on GPUs")
        return gpus.from_accelerators(accelerators, gpus.host_memory_bytes())
    planned = gpus.from_accelerators(accelerators)
    try:
        detected = gpus.detect(environ)
    except NvidiaSmiMissingError:
        return planned  # planning without GPUs is what ACCELERATORS is for
    except EntrypointError as exc:
        note = f"ACCELERATORS is set but nvidia-smi could not confirm it: {exc.message}"
        return _with_notes(planned, [note])
    return _with_notes(planned, gpus.compare(planned, detected))


def _with_notes(hardware: gpus.Hardware, notes: list[str]) -> gpus.Hardware:
    return replace(hardware, notes=hardware.notes + tuple(notes))


def health(environ: Mapping[str, str], log: TextIO) -> int:
    """The image's HEALTHCHECK: /health needs no API key on either engine."""
    port = load_value("PORT", environ)
    if environ.get("TLS_CERT_FILE"):
        # Our own server on loopback: the certificate names the public host, not 127.0.0.1.
        url, context = f"https://127.0.0.1:{port}/health", ssl._create_unverified_context()
    else:
        url, context = f"http://127.0.0.1:{port}/health", None
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {exc}", file=log)
        return 1


def passthrough(argv: Sequence[str]) -> int:
    try:
        os.execvp(argv[0], list(argv))
    except OSError as exc:
        raise CommandNotFoundError(f"cannot run {argv[0]!r}: {exc.strerror}",
                                   "run `python -m entrypoint help` for the commands this image knows") from None
    return 0


def _quiet_hub_progress() -> None:
    # Progress bars would interleave with `plan --json` consumers' stderr parsing.
    try:
        from huggingface_hub.utils import disable_progress_bars
    except ImportError:
        return
    disable_progress_bars()
