"""Hiding secrets in anything printed: argv, log lines, errors, tracebacks (pure).

Which values are secret comes from the settings table (`Setting.secret`), which flags are secret from the
engine (`Engine.secret_flags`); nothing here lists either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .engines.base import flag_name

MASK = "***"


def printable(value: str) -> str:
    """Control characters (a terminal escape in config.json, a NUL in a value) as escapes, never raw."""
    return "".join(char if char.isprintable() or char == "\n" else repr(char)[1:-1] for char in value)


def text(value: str, secrets: Iterable[str]) -> str:
    """`value` with every secret in it replaced by ***, wherever it appears."""
    for secret in secrets:
        if secret:
            value = value.replace(secret, MASK)
    return value


def secret_flag(arg: str, secret_flags: frozenset[str], other_flags: frozenset[str] = frozenset()) -> str | None:
    """The secret flag `arg` means, in any spelling the engines accept, or None.

    vLLM takes `--api_key` for `--api-key`, and argparse takes any unique prefix (`--api-k`), so a prefix of a
    secret flag counts as that flag unless it is a flag of its own (`other_flags`: `--ssl-keyfile` is one,
    not an abbreviation of `--ssl-keyfile-password`). Hiding too much is harmless; too little is not.
    """
    name = flag_name(arg)
    if not name or len(arg) < 4 or name in other_flags:
        return None
    return next((flag for flag in sorted(secret_flags) if flag.startswith(name)), None)


def secret_flag_values(
    args: Sequence[str], secret_flags: frozenset[str], other_flags: frozenset[str] = frozenset()
) -> list[str]:
    """Every value given to a secret flag in `args` (`--api-key K` or `--api-key=K`): secrets to hide."""
    values = []
    for arg, following in zip(args, [*args[1:], ""], strict=True):
        if secret_flag(arg, secret_flags, other_flags):
            _, has_value, value = arg.partition("=")
            values.append(value if has_value else following)
    return [value for value in values if value]


def argv(
    args: Sequence[str], secrets: Sequence[str], secret_flags: frozenset[str], other_flags: frozenset[str] = frozenset()
) -> list[str]:
    """argv safe to print: values of secret flags, in any spelling, and any secret value become ***."""
    shown: list[str] = []
    hide_next = False
    for arg in args:
        flag, has_value, _ = arg.partition("=")
        is_secret = secret_flag(arg, secret_flags, other_flags) is not None
        if hide_next:
            shown.append(MASK)
        elif has_value and is_secret:
            shown.append(f"{flag}={MASK}")
        else:
            shown.append(text(arg, secrets))
        hide_next = is_secret and not has_value
    return shown
