"""From settings to a running engine: the plan's inputs, the API-key policy, argv, environment, exec.

`plan_for` gathers what the planner needs from the edges (hardware.resolve, model.source) and calls the pure
planner; `engine_command` and `prepare` are pure; `exec_engine` replaces this process with the engine, so the
engine is the container's main process and receives SIGTERM directly (docs/adr/0007). Everything printed
goes through `redact`, which hides secret values wherever they appear.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TextIO

from . import caches, files, redact
from .engines.base import Command, Engine, ServeRequest, flag_name
from .errors import EngineMissingError, MissingSettingError, NoSafetensorsError, RemovedFlagError, SettingError
from .hardware import cluster
from .hardware.resolve import resolve as resolve_hardware
from .model.adapters import read_adapters
from .model.info import ModelInfo
from .model.source import read_model
from .plan import Plan, make_plan
from .settings import MIN_API_KEY_LENGTH, SETTINGS, Settings, is_inline_template

# Our own secret variables: the engine gets what it needs in its own form
# (VLLM_API_KEY or --api-key; HF_TOKEN), never these.
_PRIVATE_VARIABLES = {name for s in SETTINGS if s.secret for name in (s.name, f"{s.name}_FILE")}


@dataclass(frozen=True)
class Launch:
    command: Command  # the full argv, EXTRA_ARGS and container arguments included
    env: Mapping[str, str]  # the child's whole environment
    secrets: tuple[str, ...]  # values to hide in anything printed
    auth: bool  # clients must send a key (API_KEY, or one given to the engine some other way)
    admin: bool  # the admin routes take ADMIN_API_KEY (else they are closed)
    tls: bool
    warnings: tuple[str, ...] = ()


# ---------------------------------------------------------------- before planning


def key_required_because(settings: Settings) -> str | None:
    """Why serving needs API_KEY, or None. The default policy (auto): under SkyPilot, whose ports are public."""
    if settings.require_api_key == "auto":
        return "this runs under SkyPilot (REQUIRE_API_KEY=auto)" if settings.skypilot_task_id else None
    return "REQUIRE_API_KEY=true" if settings.require_api_key else None


def require_api_key(settings: Settings) -> None:
    """Refuse to open an endpoint without a key where the policy asks for one."""
    why = key_required_because(settings)
    if why and not settings.api_key:
        raise MissingSettingError(
            f"API_KEY is not set, and {why}: this endpoint would be open to anyone who can reach its port",
            "pass a key (sky launch ... --secret API_KEY=$(openssl rand -hex 24)), or opt out "
            "explicitly with REQUIRE_API_KEY=false",
        )


def check_tls(settings: Settings) -> None:
    """Load TLS_CERT_FILE and TLS_KEY_FILE as the engine's server will, before any download: a file that is no
    PEM certificate, a key of another certificate or a key with a passphrase fails here, in one line."""
    if not (settings.tls_cert_file and settings.tls_key_file):
        return
    import ssl  # here, not at the top: `plan --json` is timed by pipelines (bench/plan_bench.py)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # A passphrase would be asked for on the terminal; an empty one makes an encrypted key fail instead.
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file, password=lambda: b"")
    except (ssl.SSLError, OSError) as exc:
        raise SettingError(
            f"TLS_CERT_FILE={settings.tls_cert_file} and TLS_KEY_FILE={settings.tls_key_file} are not a PEM "
            f"certificate and its unencrypted private key ({exc.__class__.__name__}: {exc.args[-1]})",
            "for example: openssl req -x509 -newkey rsa:2048 -nodes -keyout tls.key -out tls.crt -subj /CN=host",
        ) from None


def require_engine(engine: Engine) -> None:
    # find_spec locates the package without importing it (and without torch).
    if importlib.util.find_spec(engine.package) is None:
        raise EngineMissingError(
            f"ENGINE={engine.name} but the {engine.package} package is not installed for {sys.executable}",
            f"run the {engine.name} image (Dockerfile.{engine.name}), or set ENGINE to the engine this image has",
        )


def installed_version(engine: Engine) -> str | None:
    """The engine's installed version (the image's pin), read from package metadata without importing it."""
    import importlib.metadata  # here, not at the top: `plan --json` is timed by pipelines (bench/plan_bench.py)

    for distribution in engine.distributions:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def extra_args(settings: Settings) -> list[str]:
    if not settings.extra_args:
        return []
    try:
        return shlex.split(settings.extra_args)
    except ValueError as exc:
        raise SettingError(
            f"EXTRA_ARGS cannot be split like a shell would: {exc}",
            "for example EXTRA_ARGS='--enable-prefix-caching --max-num-seqs 64'",
        ) from None


def check_removed_flags(engine: Engine, args: Sequence[str], source: str) -> None:
    """Refuse flags the pinned engine no longer has, naming what replaced them: written out (`--device`,
    `--num_scheduler_steps=2`), or abbreviated as the engine read them while it had them (no flag of today's
    begins so, and only that removed flag does)."""
    if not args:
        return  # the table is read only when there is something to read with it
    from .engines import options

    table = options.table(engine)
    for given in options.resolve(table, args):
        flag = flag_name(given.spelling)
        removed = flag if flag in engine.removed_flags else ""
        if not removed and flag and given.option is None and not given.candidates and table.allow_abbrev:
            begun = [old for old in engine.removed_flags if old.startswith(flag)]
            removed = begun[0] if len(begun) == 1 else ""
        if removed:
            shown = given.spelling if given.spelling == removed else f"{given.spelling} (= {removed})"
            raise RemovedFlagError(
                f"{source} has {shown}, which {engine.name} no longer accepts",
                f"instead: {engine.removed_flags[removed]}",
            )


def checked_extra_args(engine: Engine, settings: Settings, user_args: Sequence[str]) -> list[str]:
    """EXTRA_ARGS split, after refusing removed flags, --host and --port, and prefixes the engine cannot tell
    apart, there and in the container arguments, each flag read as the engine reads it (engines.options).

    Cheap, so `serve` runs it before planning: a typo should not wait for a download.
    """
    extra = extra_args(settings)
    for args, source in ((extra, "EXTRA_ARGS"), (user_args, "the container arguments")):
        check_removed_flags(engine, args, source)
        check_listen_flags(engine, args, source)
        check_keys_on_argv(engine, args, source)
    return extra


def check_keys_on_argv(engine: Engine, args: Sequence[str], source: str) -> None:
    """A key given on the engine's argv is held to API_KEY's rules: a short one is guessable, and hiding it in
    the log would also hide every other "8000" or "abc"."""
    key_flags = frozenset({"--api-key", "--admin-api-key"}) & engine.secret_flags
    for key in redact.secret_flag_values(args, key_flags, engine.not_abbreviations):
        if len(key) < MIN_API_KEY_LENGTH or any(char.isspace() for char in key):
            raise SettingError(
                f"{source} gives the engine a secret of {len(key)} characters, shorter than {MIN_API_KEY_LENGTH} "
                "(or with whitespace)",
                "set API_KEY instead, for example API_KEY=$(openssl rand -hex 24)",
            )


# Where the server listens belongs to settings: health checks, compose, SkyPilot and the supervisor follow them.
LISTEN_FLAGS = {
    "--port": "PORT=9000",
    "--host": "nothing: the server listens on every interface (0.0.0.0)",
    "--uds": "PORT=9000 (vLLM would listen on a Unix socket instead of the port)",
}


def check_listen_flags(engine: Engine, args: Sequence[str], source: str) -> None:
    """Refuse --host and --port in any spelling the engine reads as them (`--hos`, `--port=9000`, vLLM's
    `--host.x`), and a prefix the engine cannot tell apart, which it would refuse too, only later."""
    if not args:
        return
    from .engines import options

    for given in options.resolve(options.table(engine), args):
        if given.candidates:
            raise SettingError(
                f"{source} has {given.spelling}, which {engine.name} cannot tell apart: it could be {given.could_be}",
                "instead: write the flag out in full",
            )
        flag = given.option.flag if given.option else ""
        if flag in LISTEN_FLAGS:
            raise SettingError(
                f"{source} has {given.shown}, but where the server listens is a setting: the health check, compose, "
                "SkyPilot and the supervisor all follow PORT",
                f"instead: {LISTEN_FLAGS[flag]}",
            )


def repeated_flags(engine: Engine, planned: Sequence[str], added: Sequence[str]) -> list[str]:
    """Flags of EXTRA_ARGS or the container arguments that set an option the plan already sets (the engine takes
    the last), as the engine reads them: `-tp 8` is shown as `-tp (= --tensor-parallel-size)`, once."""
    from .engines import options

    table = options.table(engine)
    ours = {given.option.dest for given in options.resolve(table, planned) if given.option}
    repeated: dict[str, str] = {}
    for given in options.resolve(table, added):
        if given.option and given.option.dest in ours:
            repeated.setdefault(given.option.dest, given.shown)
    return [repeated[dest] for dest in sorted(repeated)]


# ---------------------------------------------------------------- planning


def plan_for(settings: Settings, engine: Engine, environ: Mapping[str, str]) -> tuple[Plan, ModelInfo]:
    """GPUs, then config.json and safetensors headers (target, then draft), then the plan."""
    hardware = resolve_hardware(settings, engine, environ)
    model, draft, notes = read_models(settings)
    plan = make_plan(settings, hardware, model, engine, draft)
    return replace(plan, warnings=plan.warnings + tuple(notes)), model


def read_models(settings: Settings) -> tuple[ModelInfo, ModelInfo | None, list[str]]:
    """The target's and (when speculative decoding names one) the draft's headers, and notes about them."""
    draft_name = settings.spec_draft_model if settings.spec_enabled else None
    if not all(os.path.isdir(name) for name in (settings.target_model, draft_name) if name):
        _quiet_hub_progress()  # only when the Hub is read: importing huggingface_hub takes a tenth of a second
    offline = settings.hf_hub_offline
    model = read_model(settings.target_model, settings.hf_revision, settings.hf_token, offline=offline)
    model = with_serving_files(model, settings, offline)
    draft, notes = _read_draft(settings, offline)
    return model, draft, notes


def with_serving_files(model: ModelInfo, settings: Settings, offline: bool) -> ModelInfo:
    """The model with LORA_MODULES' adapters read, and CHAT_TEMPLATE's text in place of its own template
    (the template the engine will use decides the parsers too)."""
    if settings.lora_modules:
        model = replace(model, adapters=read_adapters(settings.lora_modules, settings.hf_token, offline))
    if settings.chat_template:
        model = replace(model, files=replace(model.files, chat_template=_template_text(settings.chat_template)))
    return model


def _template_text(template: str) -> str:
    if is_inline_template(template):
        return template
    try:
        return files.read_text(template, files.TEMPLATE_LIMIT)
    except files.Unreadable as exc:
        raise SettingError(
            f"CHAT_TEMPLATE={template} {exc.reason}", "give a Jinja file, for example CHAT_TEMPLATE=/models/t.jinja"
        ) from None


def _read_draft(settings: Settings, offline: bool) -> tuple[ModelInfo | None, list[str]]:
    if not (settings.spec_enabled and settings.spec_draft_model):
        return None, []
    try:
        draft = read_model(settings.spec_draft_model, None, settings.hf_token, offline, variable="SPEC_DRAFT_MODEL")
        return draft, []
    except NoSafetensorsError:
        # Many EAGLE heads ship only pytorch_model.bin; the engine loads them fine.
        return None, [
            f"SPEC_DRAFT_MODEL={settings.spec_draft_model} has no safetensors headers to read, so its "
            "memory is not counted in this plan; leave headroom with MEM_FRACTION."
        ]


def _quiet_hub_progress() -> None:
    # Progress bars would interleave with `plan --json` consumers' stderr parsing, and huggingface_hub's
    # retry warnings print the whole URL (a password in HF_ENDPOINT included) before our one line says it all.
    try:
        from huggingface_hub.utils import disable_progress_bars, logging  # type: ignore[attr-defined]
    except ImportError:
        return
    disable_progress_bars()
    logging.set_verbosity_error()  # type: ignore[no-untyped-call]


# ---------------------------------------------------------------- the command


def serve_request(settings: Settings, plan: Plan, python: str, write_files: bool = False) -> ServeRequest:
    return ServeRequest(
        plan=plan,
        model=settings.target_model,
        served_name=settings.served_model_name or default_served_name(settings.target_model),
        port=settings.port,
        revision=settings.hf_revision,
        trust_remote_code=settings.trust_remote_code,
        api_key=settings.api_key,
        admin_api_key=settings.admin_api_key,
        requested_quantization=settings.quantization,
        chat_template=chat_template_file(settings.chat_template, write_files),
        python=python,
        cluster=cluster.from_settings(settings),
        tls_cert=settings.tls_cert_file,
        tls_key=settings.tls_key_file,
        log_requests=settings.log_requests,
        shutdown_timeout=settings.shutdown_timeout,
    )


# Where an inline CHAT_TEMPLATE goes: a folder of ours that mkdtemp creates afresh (mode 0700) at each start.
TEMPLATE_FOLDER_PREFIX = "inference-endpoint-"
TEMPLATE_FILE = "chat-template.jinja"


def chat_template_file(template: str | None, write: bool = False) -> str | None:
    """CHAT_TEMPLATE as the engines take it, a file (sglang's --chat-template reads only files).

    A template given inline is written, when `write` (serving), into a folder created afresh that only we can
    write, so nothing planted in a shared /tmp beforehand can decide the template. Without `write` (`plan`,
    which writes nothing) the path is shown with mkdtemp's XXXXXXXX for the part chosen at start.
    """
    if template is None or not is_inline_template(template):
        return template
    import tempfile

    if not write:
        return os.path.join(tempfile.gettempdir(), f"{TEMPLATE_FOLDER_PREFIX}XXXXXXXX", TEMPLATE_FILE)
    path = os.path.join(tempfile.mkdtemp(prefix=TEMPLATE_FOLDER_PREFIX), TEMPLATE_FILE)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as handle:
        handle.write(template)
    return path


def default_served_name(target_model: str) -> str:
    """`Qwen/Qwen2.5-7B-Instruct` -> `Qwen2.5-7B-Instruct`; a folder's last component."""
    return os.path.basename(target_model.rstrip("/")) or target_model


def engine_command(
    engine: Engine,
    settings: Settings,
    plan: Plan,
    user_args: Sequence[str] = (),
    python: str = "python3",
    write_files: bool = False,
) -> Command:
    """The engine's argv: planned flags, then EXTRA_ARGS, then container arguments (last wins). Only with
    `write_files` (serving) are the files it names written (an inline CHAT_TEMPLATE)."""
    extra = checked_extra_args(engine, settings, user_args)
    command = engine.build(serve_request(settings, plan, python, write_files))
    return Command(argv=command.argv + tuple(extra) + tuple(user_args), env=command.env, planned=len(command.argv))


def prepare(
    engine: Engine,
    settings: Settings,
    plan: Plan,
    environ: Mapping[str, str],
    user_args: Sequence[str] = (),
    python: str | None = None,
    write_files: bool = False,
) -> Launch:
    command = engine_command(engine, settings, plan, user_args, python or sys.executable, write_files)
    env = {name: value for name, value in environ.items() if name not in _PRIVATE_VARIABLES}
    env.update(caches.engine_environment(engine, environ))
    if settings.hf_token:
        env["HF_TOKEN"] = settings.hf_token  # also when it came from HF_TOKEN_FILE
    env.update(command.env)
    on_argv = redact.secret_flag_values(command.argv, engine.secret_flags, engine.not_abbreviations)
    inherited = None if settings.api_key else environ.get(engine.api_key_variable)
    argv_key = _key_on_argv(command.argv, engine)
    if argv_key and not (settings.api_key or inherited):
        # The engine checks the key its argv gives it on its own routes only (vLLM: /v1...); our guard, in front
        # of every route, reads it from the engine's variable.
        env[engine.api_key_variable] = argv_key
    return Launch(
        command=command,
        env=env,
        secrets=(*settings.secret_values(), *on_argv, *([inherited] if inherited else [])),
        auth=bool(settings.api_key or inherited or argv_key),
        admin=bool(settings.admin_api_key),
        tls=bool(settings.tls_cert_file),
        warnings=tuple(_secret_warnings(engine, bool(on_argv), bool(inherited)) + _repeat_warnings(command, engine)),
    )


def _key_on_argv(argv: Sequence[str], engine: Engine) -> str | None:
    """The clients' key given to the engine in EXTRA_ARGS or the container arguments (the last, as the engine
    takes it), or None. Only --api-key: sglang's --admin-api-key alone leaves the client routes open."""
    key_flags = frozenset({"--api-key"}) & engine.secret_flags
    keys = redact.secret_flag_values(argv, key_flags, engine.not_abbreviations)
    return keys[-1] if keys else None


def _repeat_warnings(command: Command, engine: Engine) -> list[str]:
    count = len(command.argv) if command.planned is None else command.planned
    planned, added = command.argv[3:count], command.argv[count:]  # the builder's flags follow `python -m <server>`
    if not added:
        return []
    return [
        f"EXTRA_ARGS or the container arguments set {flag} again, over the plan's value: the engine takes yours, "
        "and the plan's memory figures may no longer hold"
        for flag in repeated_flags(engine, planned, added)
    ]


def _secret_warnings(engine: Engine, on_argv: bool, inherited: bool) -> list[str]:
    warnings = []
    if on_argv:
        warnings.append(
            "EXTRA_ARGS or the container arguments give the engine a secret on its command line, where "
            "`ps` shows it to every user of the machine; set API_KEY (or API_KEY_FILE) instead"
        )
    if inherited:
        warnings.append(
            f"{engine.api_key_variable} is set in the environment, so {engine.name} requires that key; "
            "set API_KEY instead, which this entrypoint checks and never prints"
        )
    return warnings


def shown_argv(launch: Launch, engine: Engine) -> list[str]:
    return redact.argv(launch.command.argv, launch.secrets, engine.secret_flags, engine.not_abbreviations)


def shown_env(launch: Launch) -> dict[str, str]:
    """What the engine's environment gains, secrets as ***."""
    return {name: redact.text(value, launch.secrets) for name, value in launch.command.env.items()}


# ---------------------------------------------------------------- exec


def exec_engine(launch: Launch, engine: Engine, log: TextIO) -> None:
    """Replace this process with the engine; returns only by raising."""
    announce(launch, engine, log)
    argv = list(launch.command.argv)
    try:
        os.execve(argv[0], argv, dict(launch.env))
    except OSError as exc:
        raise EngineMissingError(
            f"cannot start {argv[0]}: {exc.strerror}",
            "the image's Python is missing or not executable; rebuild the image",
        ) from None


def announce(launch: Launch, engine: Engine, log: TextIO, verb: str = "exec") -> None:
    """Whether auth and TLS are on, and the exact command (secrets as ***): `exec` or, supervised, `start`."""
    for warning in launch.warnings:
        print(f"warning: {warning}", file=log)
    auth = (
        "on: every route needs `Authorization: Bearer <API_KEY>` but /health and /metrics"
        if launch.auth
        else "off: anyone who can reach the port can use it"
    )
    admin = "need ADMIN_API_KEY" if launch.admin else "closed (set ADMIN_API_KEY to open them)"
    print(f"auth: {auth}; the routes that change the server {admin}", file=log)
    tls = "on: HTTPS with TLS_CERT_FILE" if launch.tls else "off: plain HTTP (set TLS_CERT_FILE and TLS_KEY_FILE)"
    print(f"tls: {tls}", file=log)
    print(f"{verb}: {shlex.join(shown_argv(launch, engine))}", file=log)
    log.flush()
    with contextlib.suppress(OSError, ValueError, AttributeError):  # a closed stdout (None) has nothing to lose
        sys.stdout.flush()
