"""The engines' option tables (entrypoint/engines/options/) and argv read through them as the engines read it.

The tables are the pinned engines' own parsers written down, compared with them here in the engines' environments
(after a bump, `UPDATE_OPTIONS=1 bash scripts/test.sh tests/test_options.py -k pinned_engines_own` writes them
again); the resolution tables run without an engine, and a handful of argvs are parsed by the engines themselves
to show that our reading is theirs. EXTRA_ARGS and the container arguments are judged by that reading
(entrypoint/launch.py).
"""

from __future__ import annotations

import os

import pytest

from entrypoint import launch
from entrypoint.engines import ENGINES, options
from entrypoint.engines.base import Command
from entrypoint.errors import RemovedFlagError, SettingError
from tests.support.cli import pinned_version, run_cli
from tests.support.paths import ROOT

TABLES = ROOT / "entrypoint" / "engines" / "options"
SERVERS = {
    "vllm": ("vLLM", "python -m vllm.entrypoints.openai.api_server", "make_arg_parser on FlexibleArgumentParser"),
    "sglang": ("sglang", "python -m sglang.launch_server", "ServerArgs.add_cli_args on ArgumentParser"),
}
MODEL_FLAG = {"vllm": "--model", "sglang": "--model-path"}


def render(engine: str, table: options.Table) -> str:
    """A table as the file holds it (entrypoint.engines.options.parse_table reads it back)."""
    name, command, parser = SERVERS[engine]
    lines = [
        f"# {name} {ENGINES[engine].pinned_version}: every option of `{command}`",
        f"# ({parser}), one per line:",
        "# dest, nargs (0: takes no value; 1: one; ?, *, +: as argparse), then every option string.",
        "# Written from the engine's own parser and compared with it by tests/test_options.py",
        "# (UPDATE_OPTIONS=1 writes it again); do not edit.",
        f"parser: {table.parser}",
        f"allow_abbrev: {str(table.allow_abbrev).lower()}",
    ]
    for option in sorted(table.options, key=lambda option: (option.dest, option.strings)):
        lines.append(" ".join((option.dest, option.nargs, *option.strings)))
    return "\n".join(lines) + "\n"


def from_facts(facts: dict) -> options.Table:
    found = facts["option_table"]
    rows = tuple(options.Option(dest, nargs, tuple(strings)) for dest, nargs, strings in found["options"])
    return options.Table(parser=found["parser"], allow_abbrev=found["allow_abbrev"], options=rows)


# ---------------------------------------------------------------- the tables


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_the_option_table_is_the_pinned_engines_own(engine, engine_parser):
    facts = engine_parser(engine, [])["facts"]
    assert facts["version"] == ENGINES[engine].pinned_version
    path = TABLES / options.table_file(ENGINES[engine])
    text = render(engine, from_facts(facts))
    if os.environ.get("UPDATE_OPTIONS"):
        path.write_text(text)
    assert path.read_text() == text, f"{path.name} is not {engine}'s parser; UPDATE_OPTIONS=1 writes it again"


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_each_engine_reads_the_table_of_the_version_its_image_pins(engine):
    ours = ENGINES[engine]
    assert ours.pinned_version == pinned_version(engine)
    path = TABLES / options.table_file(ours)
    assert path.read_text() == render(engine, options.table(ours))  # read back as written
    table = options.table(ours)
    assert {"--host", "--port", "--api-key"} <= set(table.by_string)
    assert not set(ours.removed_flags) & set(table.by_string)  # removed flags are the ones it no longer has
    assert ours.secret_flags <= set(table.by_string)


# ---------------------------------------------------------------- resolution, without the engine

# (argv, [(spelling, the option's flag or None, values)]): the flags as the engine reads them.
VLLM = [
    (["--host", "127.0.0.1"], [("--host", "--host", ("127.0.0.1",))]),
    (["--hos", "127.0.0.1"], [("--hos", "--host", ("127.0.0.1",))]),  # a unique prefix
    (["--host=::"], [("--host", "--host", ("::",))]),
    (["--por=9000"], [("--por", "--port", ("9000",))]),
    (["--HOST", "x"], [("--HOST", None, ())]),  # argparse is case-sensitive: unknown, and x is positional
    (["-tp", "8"], [("-tp", "--tensor-parallel-size", ("8",))]),  # a short alias
    (["-tp=8"], [("-tp", "--tensor-parallel-size", ("8",))]),
    (["-t", "8"], [("-t", "--tensor-parallel-size", ("8",))]),  # a prefix of -tp, the only -t option
    (["-t=8"], [("-t", "--tensor-parallel-size", ("8",))]),  # as argparse since 3.12.7 reads it (gh-124345)
    (["--tensor_parallel_size", "2"], [("--tensor_parallel_size", "--tensor-parallel-size", ("2",))]),
    (
        ["--api_key=k", "--enforce-eager"],
        [("--api_key", "--api-key", ("k",)), ("--enforce-eager", "--enforce-eager", ())],
    ),
    (
        ["--api-key", "a", "b", "-q", "fp8"],
        [("--api-key", "--api-key", ("a", "b")), ("-q", "--quantization", ("fp8",))],
    ),
    (["-qfp8", "-n2"], [("-q", "--quantization", ("fp8",)), ("-n", "--nnodes", ("2",))]),  # short, value attached
    (["--no-enable-prefix-caching"], [("--no-enable-prefix-caching", "--enable-prefix-caching", ())]),
    (["--enable-prefix-caching", "64"], [("--enable-prefix-caching", "--enable-prefix-caching", ())]),  # takes none
    (["-O3"], [("-O", "--optimization-level", ("3",))]),
    (["-O=3"], [("-O", "--optimization-level", ("3",))]),
    (["-O", "3"], [("-O", "--optimization-level", ("3",))]),
    (["--compilation-config.mode", "3"], [("--compilation-config.mode", "--compilation-config", ("3",))]),
    (
        ["-cc.mode=3", "-tp", "2"],
        [("-tp", "--tensor-parallel-size", ("2",)), ("-cc.mode", "--compilation-config", ("3",))],
    ),
    (["--compilation_config.mode", "--host"], [("--compilation_config.mode", "--compilation-config", ("--host",))]),
    (["--hos.x", "1"], [("--hos.x", "--host", ("1",))]),  # the name before the dot, read like any flag
    # Values that look like flags: after `=`, negative numbers, with a space, after `--`.
    (["--served-model-name=--host"], [("--served-model-name", "--served-model-name", ("--host",))]),
    (["--max-model-len", "-1"], [("--max-model-len", "--max-model-len", ("-1",))]),
    (["--port 9000"], []),  # one token with a space: a positional argument
    (["--", "--host", "x"], []),
    # A flag where a value was expected is a flag (the engine fails: expected one argument).
    (
        ["--served-model-name", "--host", "x"],
        [("--served-model-name", "--served-model-name", ()), ("--host", "--host", ("x",))],
    ),
    (["--no-such-flag", "1"], [("--no-such-flag", None, ())]),
]
SGLANG = [
    (["--hos", "127.0.0.1"], [("--hos", "--host", ("127.0.0.1",))]),
    (["--por", "9000"], [("--por", "--port", ("9000",))]),
    (["--port=9000"], [("--port", "--port", ("9000",))]),
    (["--tensor-parallel-size", "2"], [("--tensor-parallel-size", "--tp-size", ("2",))]),  # an alias
    (["--tensor-parallel", "2"], [("--tensor-parallel", "--tp-size", ("2",))]),
    (["--ep", "2"], [("--ep", "--ep-size", ("2",))]),  # an option string, though others begin with it
    (["--model", "m"], [("--model", "--model-path", ("m",))]),
    (["--enable-hicache"], [("--enable-hicache", "--enable-hierarchical-cache", ())]),
    (["--api_key", "k"], [("--api_key", None, ())]),  # sglang's parser keeps underscores: no such flag
    (["-tp", "2"], [("-tp", None, ())]),
    (["--compilation-config.mode", "3"], [("--compilation-config.mode", None, ())]),  # no dotted arguments
    (["--host=--port"], [("--host", "--host", ("--port",))]),
]


def described(given: list[options.Given]) -> list[tuple[str, str | None, tuple[str, ...]]]:
    return [(one.spelling, one.option.flag if one.option else None, one.values) for one in given]


@pytest.mark.parametrize(
    ("engine", "argv", "expected"), [("vllm", *row) for row in VLLM] + [("sglang", *row) for row in SGLANG]
)
def test_flags_resolve_as_the_engine_reads_them(engine, argv, expected):
    assert described(options.resolve(options.table(ENGINES[engine]), argv)) == expected


# (engine, argv, some of the option strings it could mean)
AMBIGUOUS = [
    ("vllm", ["--h", "x"], {"--host", "--help", "--headless"}),
    ("vllm", ["--ho=x"], set()),  # --host alone begins so: not ambiguous
    ("vllm", ["-d", "2"], {"-dp", "-dcp"}),
    ("sglang", ["--mod", "m"], {"--model", "--model-path"}),  # two names of one option are two matches still
    ("sglang", ["--tp-", "2"], set()),
]


@pytest.mark.parametrize(("engine", "argv", "some"), AMBIGUOUS)
def test_an_ambiguous_prefix_names_what_it_could_be(engine, argv, some):
    (given,) = options.resolve(options.table(ENGINES[engine]), argv)
    assert some <= set(given.candidates)
    assert (given.option is None) == bool(some)


# ---------------------------------------------------------------- our reading is the engine's


def flags_set(engine: str, argv: list[str]) -> set[str] | str:
    """The dests our reading sets, or the error the engine must give."""
    given = options.resolve(options.table(ENGINES[engine]), argv)
    if any(one.candidates for one in given):
        return "ambiguous option"
    if any(one.option is None for one in given):
        return "unrecognized arguments"
    return {one.option.dest for one in given if one.option}


# Each value differs from the engine's default, so the dests it changes are the dests set.
CROSS = {
    "vllm": [
        ["--hos", "10.0.0.1"],
        ["--por=9001"],
        ["-tp", "2"],
        ["-t", "2"],
        ["--tensor_parallel_size=2", "--max_model_len", "2048"],
        ["-qfp8"],
        ["--no-enable-prefix-caching", "--enforce-eager"],
        ["--api_key", "k1", "k2"],
        ["--compilation-config.mode", "3"],
        ["-cc.mode=3"],
        ["--served-model-name=--host"],
        ["-O3"],
        ["-O", "1"],
        ["--compilation_config.mode", "3"],
        ["--hos.x", "1"],
        ["--h", "x"],
        ["--HOST", "x"],
        ["-tp8"],
    ],
    "sglang": [
        ["--hos", "10.0.0.1"],
        ["--por=9001"],
        ["--tensor-parallel-size", "2"],
        ["--tensor-parallel", "2"],
        ["--ep", "2", "--tp-size", "2"],
        ["--enable-hicache"],
        ["--context-length=2048", "--host=::"],
        ["--host=--port", "--ep=2"],
        ["--mod", "x"],
        ["--api_key", "k"],
        ["--HOST", "x"],
    ],
}


@pytest.mark.parametrize("engine", sorted(CROSS))
def test_our_reading_is_the_engines_own(engine, engine_parser):
    base = [MODEL_FLAG[engine], "m"]
    parsed = engine_parser(engine, [base] + [base + argv for argv in CROSS[engine]])["results"]
    assert parsed[0]["ok"], parsed[0]
    defaults = parsed[0]["args"]
    for argv, result in zip(CROSS[engine], parsed[1:], strict=True):
        ours = flags_set(engine, argv)
        if isinstance(ours, str):
            assert not result["ok"] and ours in " ".join(result["error"]), (argv, result)
            continue
        assert result["ok"], (argv, result)
        theirs = {dest for dest, value in result["args"].items() if value != defaults.get(dest)}
        assert theirs == ours, argv


# ---------------------------------------------------------------- what launch makes of it

# (engine, EXTRA_ARGS split, the error, text of its line; None: taken)
CHECKS = [
    ("vllm", ["--hos", "127.0.0.1"], SettingError, "EXTRA_ARGS has --hos (= --host), but where the server listens"),
    ("vllm", ["--por", "9000"], SettingError, "EXTRA_ARGS has --por (= --port), but"),
    ("vllm", ["--hos.x", "1"], SettingError, "EXTRA_ARGS has --hos.x (= --host)"),
    ("sglang", ["--hos=0.0.0.0"], SettingError, "EXTRA_ARGS has --hos (= --host)"),
    ("sglang", ["--port=9000"], SettingError, "EXTRA_ARGS has --port, but"),
    ("vllm", ["--h", "1"], SettingError, "has --h, which vllm cannot tell apart: it could be --help, --host"),
    ("vllm", ["--HOST", "x"], None, ""),  # not a flag of vLLM's: the engine says so itself
    ("vllm", ["--compilation-config.mode", "--host"], None, ""),  # --host is the value there
    ("vllm", ["--served-model-name=--port"], None, ""),
    ("vllm", ["-tp", "8"], None, ""),  # a warning, not a refusal
    ("vllm", ["--device", "cpu"], RemovedFlagError, "EXTRA_ARGS has --device, which vllm no longer accepts"),
    ("vllm", ["--num_scheduler_steps=2"], RemovedFlagError, "has --num_scheduler_steps (= --num-scheduler-steps)"),
    ("vllm", ["--num-sched", "2"], RemovedFlagError, "has --num-sched (= --num-scheduler-steps), which vllm no"),
    ("sglang", ["--enable-flashinfer-ml"], RemovedFlagError, "(= --enable-flashinfer-mla), which sglang no longer"),
    ("sglang", ["--torchao-config=int4wo-128"], RemovedFlagError, "has --torchao-config, which sglang no longer"),
]


@pytest.mark.parametrize(("engine", "args", "error", "text"), CHECKS)
def test_extra_args_are_judged_as_the_engine_reads_them(engine, args, error, text):
    if error is None:
        launch.check_removed_flags(ENGINES[engine], args, "EXTRA_ARGS")
        launch.check_listen_flags(ENGINES[engine], args, "EXTRA_ARGS")
        return
    with pytest.raises(error) as raised:
        launch.check_removed_flags(ENGINES[engine], args, "EXTRA_ARGS")
        launch.check_listen_flags(ENGINES[engine], args, "EXTRA_ARGS")
    assert text in raised.value.message


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_removed_flag_is_refused_in_each_spelling(engine):
    ours = ENGINES[engine]
    for flag in ours.removed_flags:
        for spelling in ([flag], [f"{flag}=1"], [flag.replace("-", "_").replace("__", "--", 1), "1"]):
            with pytest.raises(RemovedFlagError, match=f"has {spelling[0].split('=')[0]}"):
                launch.check_removed_flags(ours, ["--port", "1", *spelling], "EXTRA_ARGS")


# (engine, planned flags, added, the flags the warning names)
REPEATS = [
    (
        "vllm",
        ["--tensor-parallel-size", "1", "--max-model-len", "4096"],
        ["-tp", "8"],
        ["-tp (= --tensor-parallel-size)"],
    ),
    ("vllm", ["--max-model-len", "4096"], ["--max_model_len=2048"], ["--max_model_len (= --max-model-len)"]),
    (
        "vllm",
        ["--enable-prefix-caching"],
        ["--no-enable-prefix-caching"],
        ["--no-enable-prefix-caching (= --enable-prefix-caching)"],
    ),
    ("vllm", ["--max-model-len", "4096"], ["--max-model-len", "1", "--max-model-len", "2"], ["--max-model-len"]),
    ("vllm", ["--tensor-parallel-size", "1"], ["--enable-metrics", "--served-model-name=-tp"], []),  # unknown; a value
    (
        "sglang",
        ["--tp-size", "1", "--context-length", "4096"],
        ["--tensor-parallel-size", "2"],
        ["--tensor-parallel-size (= --tp-size)"],
    ),
    ("sglang", ["--model-path", "m"], ["--model", "n"], ["--model (= --model-path)"]),
]


@pytest.mark.parametrize(("engine", "planned", "added", "named"), REPEATS)
def test_a_flag_repeated_in_any_spelling_is_named(engine, planned, added, named):
    assert launch.repeated_flags(ENGINES[engine], planned, added) == named
    command = Command(argv=("python3", "-m", "server", *planned, *added), planned=3 + len(planned))
    warnings = launch._repeat_warnings(command, ENGINES[engine])
    assert [warning.split(" again,")[0].split(" set ", 1)[1] for warning in warnings] == named


@pytest.mark.parametrize(
    ("engine", "extra", "shown"),
    [
        ("vllm", "-tp 8", "-tp (= --tensor-parallel-size)"),
        ("sglang", "--tensor-parallel-size 2", "--tensor-parallel-size (= --tp-size)"),
    ],
)
def test_an_alias_of_a_planned_flag_warns_in_the_plan(serve_env, engine, extra, shown):
    result = run_cli(["plan", "--json"], serve_env(engine, EXTRA_ARGS=extra))
    assert result.returncode == 0, result.stderr
    assert f"warning: EXTRA_ARGS or the container arguments set {shown} again, over the plan's value" in result.stderr
