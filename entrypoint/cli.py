"""`python -m entrypoint [serve|plan|health|help|version | -engine-flags... | CMD...]`: the table of contents.

What the images run. With no arguments it serves: settings -> hardware -> model -> plan -> the engine's
argv -> exec (or supervise). Like the official engine images, a first argument starting with `-` is
appended to the engine's argv, and any other command (`bash`, `nvidia-smi`) is exec'd unchanged. Errors end
here as one line and an exit code; secrets never reach the output.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import textwrap
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, cast

from . import __version__, disk, launch, redact, render
from .engines import ENGINES
from .errors import (
    READER_GONE,
    UNHEALTHY,
    CommandNotFoundError,
    EntrypointError,
    OutputError,
    SettingError,
    UnexpectedError,
    UsageError,
)
from .settings import SETTINGS, Settings, load, load_value, secret_values

if TYPE_CHECKING:
    from .model.info import ModelInfo
    from .supervise.phases import StartTimeline

USAGE = """usage: python -m entrypoint [COMMAND]

  (nothing), serve [FLAGS]   plan, then exec the engine (FLAGS are appended to its argv)
  -FLAG ...                  the same as `serve -FLAG ...`
  plan [--json]              print the plan and the engine command, start nothing
  fit [--json]               every GPU shape that holds TARGET_MODEL at its full context, cheapest first
  prefetch                   download the files the engine will load into HF_HOME, then exit
  health                     exit 0 when the local server's /health answers 200
  version, --version         print this tool's version and the engine's
  help, --help, -h           this text and the settings
  CMD [ARGS]                 run CMD instead (e.g. bash), like the engine images do

Settings come from environment variables (docker run -e NAME=VALUE):"""

Command = Callable[[Sequence[str], Mapping[str, str], TextIO, TextIO], int]

# When this process began, near enough (the interpreter's own start is a fraction of a second before):
# the start of the `plan` phase of a supervised start.
PROCESS_STARTED = time.monotonic()


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO = sys.stdout,
    stderr: TextIO = sys.stderr,
) -> int:
    environ = os.environ if environ is None else environ
    args = sys.argv[1:] if argv is None else list(argv)
    # Whatever we print passes through the mask and printable(): no secret, credential or terminal escape (in
    # config.json or a header) reaches a terminal or a log.
    mask = redact.Masker(secret_values(environ))
    stdout, stderr = _Printable.wrap(stdout, mask), _Printable.wrap(stderr, mask)
    try:
        code = _dispatch(args, environ, stdout, stderr)
        stdout.flush()  # a full disk or a closed stdout shows only now: it must end as OutputError, not at exit
        return code
    except EntrypointError as exc:
        return _report(exc, environ, stderr)
    except BrokenPipeError:
        # The reader went away (`plan | head -1`): print nothing more, not even at exit.
        _to_devnull(sys.stdout.fileno())
        return READER_GONE
    except Exception as exc:  # the last resort: a bug of ours still ends as one redacted line
        return _report(
            UnexpectedError(
                f"unexpected {type(exc).__name__}: {exc}", "rerun with DEBUG=1 for the traceback, and report it"
            ),
            environ,
            stderr,
        )


class _Printable:
    """A text stream that hides secrets and credentials (redact.Masker) and writes control characters as
    escapes (redact.printable); the rest is the stream's."""

    def __init__(self, inner: TextIO, mask: redact.Masker) -> None:
        self._inner = inner
        self._mask = mask

    @classmethod
    def wrap(cls, stream: TextIO, mask: redact.Masker) -> TextIO:
        return stream if isinstance(stream, cls) else cast(TextIO, cls(stream, mask))

    def write(self, text: str) -> int:
        shown = redact.printable(self._mask(text))  # outside the guard: a bug here is ours (70), not the stream's
        return int(self._guarded(lambda: self._inner.write(shown)))

    def flush(self) -> None:
        self._guarded(self._flush_inner)

    def _flush_inner(self) -> None:
        self._inner.flush()

    def _guarded(self, call: Callable[[], Any]) -> Any:
        """`call` on the stream; a stream that cannot be written (closed at start: None; /dev/full; closed since:
        ValueError) ends as OutputError, after which it writes to /dev/null so that the interpreter's own flush at
        exit cannot fail again (it would print a traceback and exit 120). A reader gone (EPIPE) stays
        BrokenPipeError, and a text the stream cannot encode stays the bug it is."""
        if self._inner is None:
            raise _output_error("it is closed")
        try:
            return call()
        except (BrokenPipeError, UnicodeError):
            raise
        except (OSError, ValueError) as exc:
            self._to_devnull()
            raise _output_error(getattr(exc, "strerror", None) or str(exc)) from None

    def _to_devnull(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            _to_devnull(self._inner.fileno())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _output_error(why: str) -> OutputError:
    return OutputError(
        f"cannot write our output ({why})",
        "give the container a writable stdout and stderr (a closed one, or a full disk, loses the output)",
    )


def _to_devnull(fd: int) -> None:
    """Whatever is written to `fd` from now on is dropped."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _report(exc: EntrypointError, environ: Mapping[str, str], stderr: TextIO) -> int:
    secrets = secret_values(environ)
    hint = f"; {exc.hint}" if exc.hint else ""
    line = redact.text(f"error: {exc.message}{hint}", secrets)
    with contextlib.suppress(OutputError):  # with no stderr to say it on, the exit code alone tells
        if _debug(environ):
            stderr.write(redact.printable(redact.text(traceback.format_exc(), secrets)))
        print(redact.printable(line).replace("\n", " "), file=stderr)  # one line, whatever the message held
        stderr.flush()
    return exc.exit_code


def _debug(environ: Mapping[str, str]) -> bool:
    try:
        return bool(load_value("DEBUG", environ))
    except SettingError:
        return False  # a DEBUG that does not parse must not hide the error being reported


def _dispatch(argv: list[str], environ: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    if len(argv) == 1 and argv[0] in OWN_FLAGS:  # alone: ours; with other flags: the engine's (`--help` of vLLM)
        return OWN_FLAGS[argv[0]](argv[1:], environ, stdout, stderr)
    if not argv or argv[0].startswith("-"):
        return serve(argv, environ, stdout, stderr)
    command = COMMANDS.get(argv[0])
    if command is None:
        return passthrough(argv)
    return command(argv[1:], environ, stdout, stderr)


def serve(user_args: Sequence[str], environ: Mapping[str, str], _stdout: TextIO, log: TextIO) -> int:
    settings = load(environ)
    engine = ENGINES[settings.engine]
    launch.require_api_key(settings)
    launch.check_tls(settings)
    launch.require_engine(engine)  # before minutes of planning and download
    launch.checked_extra_args(engine, settings, user_args)
    for warning in settings.warnings:
        print(f"warning: {warning}", file=log)
    plan, model = launch.plan_for(settings, engine, environ)
    disk.check_room(model, environ)  # before the engine downloads anything
    print(f"inference-endpoint {__version__}", file=log)
    print(render.as_table(plan), file=log)
    from .supervise.phases import StartTimeline  # each command imports what only it needs

    timeline = StartTimeline(PROCESS_STARTED, engine.start_marks)
    _download_first(settings, model, environ, log, timeline)
    started = launch.prepare(engine, settings, plan, environ, user_args, write_files=True)
    from .supervise import supervisor

    limits = supervisor.limits_from(settings, plan)
    if limits:  # something must watch the server: stay as its parent (docs/adr/0011)
        launch.announce(started, engine, log, verb="start")
        return supervisor.Supervisor(started, engine, plan, settings, limits, log, timeline=timeline).run()
    launch.exec_engine(started, engine, log)
    return 0  # not reached: exec_engine replaces the process or raises


def _download_first(
    settings: Settings, model: ModelInfo, environ: Mapping[str, str], log: TextIO, timeline: StartTimeline
) -> None:
    """PREFETCH: the Hub's files into HF_HOME before the engine starts (entrypoint.prefetch), timed."""
    from . import prefetch

    if not prefetch.wanted_before_serving(settings, model):
        return
    began = time.monotonic()
    downloaded = prefetch.download(settings, environ, log)
    print(f"prefetch: {downloaded.describe()}", file=log)
    timeline.begin("download", began, downloaded.size_and_rate())


def plan_command(argv: Sequence[str], environ: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    parser = _Parser(
        prog="python -m entrypoint plan", description="Print the plan and the engine command; start nothing."
    )
    parser.add_argument("--json", action="store_true", help="one JSON object for pipelines")
    args = parser.parse_args(argv)
    settings = load(environ)
    engine = ENGINES[settings.engine]
    for warning in settings.warnings:
        print(f"warning: {warning}", file=stderr)
    launch.check_tls(settings)
    plan, model = launch.plan_for(settings, engine, environ)
    started = launch.prepare(engine, settings, plan, environ)
    for warning in started.warnings:
        print(f"warning: {warning}", file=stderr)
    argv_shown = launch.shown_argv(started, engine)
    if args.json:
        extra = {
            "shards": model.shards,
            "model_location": model.location,
            "argv": argv_shown,
            "engine_env": launch.shown_env(started),
        }
        print(render.as_json(plan, extra), file=stdout)
    else:
        print(render.as_table(plan), file=stdout)
        print(f"\ncommand\n  {shlex.join(argv_shown)}", file=stdout)
    return 0


def fit_command(argv: Sequence[str], environ: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    """Every catalogue shape that holds TARGET_MODEL at its full context, cheapest first."""
    parser = _Parser(prog="python -m entrypoint fit", description="what to rent for TARGET_MODEL")
    parser.add_argument("--json", action="store_true", help="one JSON object for pipelines")
    args = parser.parse_args(argv)
    from . import fit  # each command imports what only it needs: `plan` is timed by pipelines

    settings = load(environ)
    engine = ENGINES[settings.engine]
    model, draft, notes = launch.read_models(settings)
    for note in notes:
        print(f"warning: {note}", file=stderr)
    found = fit.fits(settings, model, engine, draft)
    if not found:
        raise fit.nothing_fits(model, engine)
    if args.json:
        shapes = [row.to_json() for row in found]
        print(json.dumps({"model": model.name, "engine": engine.name, "shapes": shapes}, indent=2), file=stdout)
    else:
        print(fit.as_table(model, engine, found), file=stdout)
    return 0


def prefetch_command(argv: Sequence[str], environ: Mapping[str, str], _stdout: TextIO, log: TextIO) -> int:
    """Download what the engine will load (model, draft, adapters) into HF_HOME: a setup step, a one-shot."""
    _Parser(prog="python -m entrypoint prefetch", description="download the model into HF_HOME").parse_args(argv)
    from . import prefetch  # each command imports what only it needs: `plan` is timed by pipelines

    return prefetch.prefetch(load(environ), environ, log)


def health(argv: Sequence[str], environ: Mapping[str, str], _stdout: TextIO, log: TextIO) -> int:
    """The image's HEALTHCHECK: /health needs no API key on either engine; 0 healthy, 1 not (Docker's codes)."""
    _Parser(prog="python -m entrypoint health", description="exit 0 when /health answers 200").parse_args(argv)
    from . import loopback  # each command imports what only it needs: `plan` is timed by pipelines

    try:
        port, tls = load_value("PORT", environ), bool(load_value("TLS_CERT_FILE", environ))
        status, _ = loopback.get(port, "/health", tls)
    except OSError as exc:
        print(f"unhealthy: {exc}", file=log)
        return UNHEALTHY
    return 0 if status == 200 else UNHEALTHY


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and a documented code, not argparse's exit 2 + usage
        raise UsageError(f"{self.prog}: {message}", f"run `{self.prog} --help`")


def version(_argv: Sequence[str], environ: Mapping[str, str], stdout: TextIO, _stderr: TextIO) -> int:
    print(f"inference-endpoint {__version__}", file=stdout)
    try:
        engine = ENGINES[load_value("ENGINE", environ)]
    except SettingError:
        return 0
    print(f"{engine.name} {launch.installed_version(engine) or 'is not installed here'}", file=stdout)
    return 0


def usage(_argv: Sequence[str], _environ: Mapping[str, str], stdout: TextIO, _stderr: TextIO) -> int:
    print(USAGE, file=stdout)
    for setting in SETTINGS:  # the images hold no README: the table is here
        default = "required" if setting.required else f"default {setting.default}" if setting.default else "optional"
        print(f"\n  {setting.name} ({default}; e.g. {setting.example})", file=stdout)
        print(textwrap.fill(setting.help, width=100, initial_indent="      ", subsequent_indent="      "), file=stdout)
    return 0


def passthrough(argv: Sequence[str]) -> int:
    try:
        os.execvp(argv[0], list(argv))
    except OSError as exc:
        raise CommandNotFoundError(
            f"cannot run {argv[0]!r}: {exc.strerror}",
            "run `python -m entrypoint help` for the commands this image knows",
        ) from None
    return 0


COMMANDS: dict[str, Command] = {
    "serve": serve,
    "plan": plan_command,
    "fit": fit_command,
    "prefetch": prefetch_command,
    "health": health,
    "version": version,
    "help": usage,
}
OWN_FLAGS: dict[str, Command] = {"--help": usage, "-h": usage, "--version": version}
