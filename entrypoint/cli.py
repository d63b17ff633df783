"""`python -m entrypoint [plan [--json]]`: settings → GPUs → model → plan.

`main()` reads like the table of contents of a start-up; each step is one
call into a module that owns it. Errors end here as one line and an exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from dataclasses import replace
from typing import Mapping, Sequence, TextIO

from . import __version__, gpus, render
from .engines import ENGINES
from .engines.base import Engine
from .errors import EntrypointError, NvidiaSmiMissingError, UnsupportedByEngineError
from .model.source import ModelInfo, read_model
from .plan import Plan, make_plan
from .settings import Settings, load

_TRUTHY = {"1", "true", "yes", "on"}


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
         stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    environ = os.environ if environ is None else environ
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _dispatch(argv, environ, stdout, stderr)
    except EntrypointError as exc:
        if environ.get("DEBUG", "").strip().lower() in _TRUTHY:
            traceback.print_exc(file=stderr)
        hint = f"; {exc.hint}" if exc.hint else ""
        print(f"error: {exc.message}{hint}", file=stderr)
        return exc.exit_code


def _dispatch(argv: list[str], environ: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    parser = argparse.ArgumentParser(prog="python -m entrypoint",
                                     description="Plan and start an OpenAI-compatible LLM endpoint.")
    parser.add_argument("--version", action="version", version=f"inference-endpoint {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    plan_parser = commands.add_parser("plan", help="print the plan for the current settings and exit")
    plan_parser.add_argument("--json", action="store_true", help="one JSON object for pipelines")
    args = parser.parse_args(argv)
    settings, plan, model = build_plan(environ)
    for warning in settings.warnings:
        print(f"warning: {warning}", file=stderr)
    if args.json:
        print(render.as_json(plan, {"shards": model.shards, "model_location": model.location}), file=stdout)
    else:
        print(render.as_table(plan), file=stdout)
    return 0


def build_plan(environ: Mapping[str, str]) -> tuple[Settings, Plan, ModelInfo]:
    settings = load(environ)
    engine = ENGINES[settings.engine]
    hardware = resolve_hardware(settings, engine, environ)
    _quiet_hub_progress()
    model = read_model(settings.target_model, settings.hf_revision, settings.hf_token,
                       offline=environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY)
    return settings, make_plan(settings, hardware, model, engine), model


def resolve_hardware(settings: Settings, engine: Engine, environ: Mapping[str, str]) -> gpus.Hardware:
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


def _quiet_hub_progress() -> None:
    # Progress bars would interleave with `plan --json` consumers' stderr parsing.
    try:
        from huggingface_hub.utils import disable_progress_bars
    except ImportError:
        return
    disable_progress_bars()
