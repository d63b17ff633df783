"""The engine's own options, and an argv read the way the engine's parser reads it (pure).

Each engine's options at its pinned version are data, `options/<engine>-<version>.txt` beside this module,
generated from the engine's own parser and compared with it by tests/test_options.py, so an engine bump fails
until the table is made again; nothing here imports an engine, and the only file read is that table of ours.

`resolve` follows argparse (Lib/argparse.py: `_parse_optional`, `_get_option_tuples`, `consume_optional`),
which both engines use with its defaults (`allow_abbrev=True`), and for vLLM its FlexibleArgumentParser
(vllm/utils/argparse_utils.py: `parse_args`), which rewrites argv before argparse reads it:

- a flag is an option string as written, then `--flag=value` / `-f=value`, then the beginning of option
  strings (`--hos` is `--host`): of exactly one, or the parser refuses it as ambiguous, even where all of them
  name the same option; a short option takes its value attached (`-qfp8`, `-n2`);
- argparse takes every token that starts with `-` as a flag, even where a value was expected (the engine then
  fails, "expected one argument"), except a negative number, a token with a space, and all after `--`;
- vLLM only: `_` is `-` in a `--` token's name (up to `=` and the first `.`); `-O3`, `-O=3` and `-O 3` are
  `--optimization-level 3`; a dotted `--compilation-config.mode 3` (or `-cc.mode 3`) sets the option named
  before the first `.`, read like any flag, and takes the next token as its value whatever it looks like.

Where argparse versions differ, this reads as the newer: since 3.12.7 and 3.13.1 (cpython gh-124345) `-t=8` is
`-t 8`, so `-tp 8` on vLLM; before (the tests' 3.11 among them) no abbreviation matched it and the engine failed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Engine

# nargs as the tables write it: "0" takes no value (store_true, BooleanOptionalAction's --X and --no-X), "1" one,
# "?" at most one, "*" any number, "+" at least one; a number, exactly that many.
NARGS = frozenset({"0", "1", "?", "*", "+"})
# vLLM's parser class: it rewrites argv (underscores, -O, dotted arguments) before argparse reads it.
FLEXIBLE = "FlexibleArgumentParser"
# argparse's own test: such a token is a value, not a flag (neither engine has an option that looks like one).
_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")
# FlexibleArgumentParser's: the name of a `--` token, from the dashes to the first ".".
_NAME = re.compile(r"(?<=--)[^.]*")
# How many option strings an ambiguous prefix lists before "and N more".
_LISTED = 6


@dataclass(frozen=True)
class Option:
    dest: str  # what it sets (argparse's dest): two spellings with the same dest set the same thing
    nargs: str  # see NARGS
    strings: tuple[str, ...]  # every option string, long and short, in the parser's order

    @property
    def flag(self) -> str:
        """The name it is shown by: its first long option string (`--tensor-parallel-size` for `-tp`)."""
        return next((string for string in self.strings if string.startswith("--")), self.strings[0])


@dataclass(frozen=True)
class Table:
    """One engine's parser at one version: its class, whether it takes abbreviations, its options."""

    parser: str
    allow_abbrev: bool
    options: tuple[Option, ...]
    by_string: Mapping[str, Option] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        strings = {string: option for option in self.options for string in option.strings}
        object.__setattr__(self, "by_string", strings)


@dataclass(frozen=True)
class Given:
    """A flag of an argv as the engine's parser reads it."""

    spelling: str  # as written, without `=value`: "--hos", "-tp", "--api_key", "-O", "--compilation-config.mode"
    option: Option | None  # None: the engine has no such option, or cannot tell which (candidates)
    values: tuple[str, ...] = ()
    candidates: tuple[str, ...] = ()  # an ambiguous prefix: every option string it begins

    @property
    def shown(self) -> str:
        """`--hos (= --host)`; `--host` where it is spelled so."""
        if self.option is None or self.spelling == self.option.flag:
            return self.spelling
        return f"{self.spelling} (= {self.option.flag})"

    @property
    def could_be(self) -> str:
        """An ambiguous prefix's candidates, the first few of them."""
        more = len(self.candidates) - _LISTED
        return ", ".join(self.candidates[:_LISTED]) + (f" and {more} more" if more > 0 else "")


def table_file(engine: Engine) -> str:
    """The table of the engine's pinned version, in the folder `options` beside this module."""
    return f"{engine.name}-{engine.pinned_version}.txt"


def table(engine: Engine) -> Table:
    return _load(table_file(engine))


@cache
def _load(name: str) -> Table:
    folder = resources.files(__name__.rpartition(".")[0]).joinpath("options")
    return parse_table(folder.joinpath(name).read_text(encoding="utf-8"))


def parse_table(text: str) -> Table:
    """Comment lines (`#`), then `parser: NAME` and `allow_abbrev: true|false`, then one option per line:
    `dest nargs option-string...`."""
    header: dict[str, str] = {}
    found = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        first, *rest = line.split()
        if first.endswith(":"):
            header[first[:-1]] = " ".join(rest)
            continue
        if len(rest) < 2 or not (rest[0] in NARGS or rest[0].isdigit()):
            raise ValueError(f"not an option line: {line!r}")
        found.append(Option(first, rest[0], tuple(rest[1:])))
    return Table(parser=header["parser"], allow_abbrev=header["allow_abbrev"] == "true", options=tuple(found))


@dataclass(frozen=True)
class _Token:
    text: str  # as argparse reads it
    spelling: str  # the flag part as written
    value: bool = False  # a value whatever it looks like (vLLM's dotted arguments)


# (the option or None, the option string matched, a value given with it or None)
_Match = tuple[Option | None, str, str | None]


def resolve(table: Table, argv: Sequence[str]) -> list[Given]:
    """The flags of `argv` (what follows the server's module) as the engine's parser reads them, in order;
    values and positional arguments are left out."""
    tokens = _flexible(argv) if table.parser == FLEXIBLE else [_Token(arg, arg.partition("=")[0]) for arg in argv]
    kinds = _kinds(table, tokens)
    pattern = "".join(kind if isinstance(kind, str) else "O" for kind in kinds)
    found = []
    index = 0
    while index < len(tokens):
        token, kind = tokens[index], kinds[index]
        index += 1
        if isinstance(kind, str):  # a value, a positional argument or `--`
            continue
        if len(kind) > 1:
            candidates = sorted((string for _, string, _ in kind), key=lambda string: (len(string), string))
            found.append(Given(token.spelling, None, candidates=tuple(candidates)))
            continue
        ((option, string, explicit),) = kind
        spelling = string if explicit is not None and token.text == string + explicit else token.spelling
        # Short options that take no value, run together (`-xy`): argparse reads the next letter as a flag too.
        while option is not None and explicit and option.nargs == "0" and string[1] != "-":
            found.append(Given(string, option))
            string, explicit = "-" + explicit[0], explicit[1:] or None
            option, spelling = table.by_string.get(string), string
        if option is None:
            found.append(Given(spelling, None))
            continue
        if explicit is not None:
            found.append(Given(spelling, option, (explicit,)))
            continue
        count = _taken(option.nargs, pattern[index:])
        found.append(Given(spelling, option, tuple(token.text for token in tokens[index : index + count])))
        index += count
    return found


def _kinds(table: Table, tokens: Sequence[_Token]) -> list[list[_Match] | str]:
    """Per token, as argparse's pattern has it: the flag's matches, "A" (an argument) or "-" (`--`)."""
    kinds: list[list[_Match] | str] = []
    rest = False  # after `--`, every token is an argument
    for token in tokens:
        if rest or token.value:
            kinds.append("A")
        elif token.text == "--":
            kinds.append("-")
            rest = True
        else:
            kinds.append(_matches(table, token.text) or "A")
    return kinds


def _matches(table: Table, arg: str) -> list[_Match] | None:
    """argparse's `_parse_optional`: None for an argument, else every option `arg` may be (one, or ambiguous),
    or `[(None, arg, None)]` for a flag the parser does not have."""
    if not arg.startswith("-"):
        return None
    if arg in table.by_string:
        return [(table.by_string[arg], arg, None)]
    if len(arg) == 1:
        return None
    name, equals, explicit = arg.partition("=")
    if equals and name in table.by_string:
        return [(table.by_string[name], name, explicit)]
    found = _abbreviations(table, arg)
    if found:
        return found
    if _NEGATIVE_NUMBER.match(arg) or " " in arg:
        return None
    return [(None, arg, None)]


def _abbreviations(table: Table, arg: str) -> list[_Match]:
    """argparse's `_get_option_tuples`: the option strings `arg` begins, and a short option with its value."""
    prefix, equals, explicit = arg.partition("=")
    value = explicit if equals else None
    if arg.startswith("--"):
        if not table.allow_abbrev:
            return []
        return [(option, string, value) for string, option in table.by_string.items() if string.startswith(prefix)]
    found: list[_Match] = []
    for string, option in table.by_string.items():
        if string == arg[:2]:
            found.append((option, string, arg[2:]))
        elif table.allow_abbrev and string.startswith(prefix):
            found.append((option, string, value))
    return found


def _taken(nargs: str, pattern: str) -> int:
    """How many of the tokens after a flag are its value: argparse's nargs patterns, arguments only ("A")."""
    arguments = len(pattern) - len(pattern.lstrip("A"))
    if nargs in ("*", "+"):
        return arguments
    if nargs in ("1", "?"):
        return min(arguments, 1)
    return 0 if nargs == "0" else min(arguments, int(nargs))


def _flexible(argv: Sequence[str]) -> list[_Token]:
    """argv as vLLM's FlexibleArgumentParser.parse_args hands it to argparse (a `--config` file aside):
    underscores in names, `-O`, then dotted arguments moved to the end as `name value`."""
    rewritten = []
    for index, arg in enumerate(argv):
        if arg.startswith("--help="):
            rewritten.append(_Token("--help", "--help"))
        elif arg.startswith("--"):
            name, equals, value = arg.partition("=")
            dashed = _NAME.sub(lambda match: match.group(0).replace("_", "-"), name, count=1)
            rewritten.append(_Token(dashed + equals + value, name))
        elif arg.startswith("-O") and arg != "-O":
            rewritten += [_Token("--optimization-level", "-O"), _Token(arg[3:] if arg[2] == "=" else arg[2:], "")]
        elif arg == "-O" and index + 1 < len(argv) and argv[index + 1] in ("0", "1", "2", "3"):
            rewritten.append(_Token("--optimization-level", "-O"))
        else:
            rewritten.append(_Token(arg, arg.partition("=")[0]))
    kept: list[_Token] = []
    dotted: list[_Token] = []
    index = 0
    while index < len(rewritten):
        token = rewritten[index]
        name, equals, value = token.text.partition("=")
        index += 1
        if not (token.text.startswith("-") and "." in name):
            kept.append(token)
            continue
        dotted.append(_Token(name.split(".", 1)[0], token.spelling))
        if not equals:
            if index == len(rewritten):
                continue  # no value: vLLM itself fails (IndexError)
            value, index = rewritten[index].text, index + 1
        dotted.append(_Token(value, "", value=True))
    return kept + dotted
