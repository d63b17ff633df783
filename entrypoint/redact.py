"""Hiding secrets in anything printed: argv, log lines, errors, tracebacks (pure).

Which values are secret comes from the settings table (`Setting.secret`), which flags are secret from the
engine (`Engine.secret_flags`); nothing here lists either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

MASK = "***"


def text(value: str, secrets: Iterable[str]) -> str:
    """`value` with every secret in it replaced by ***, wherever it appears."""
    for secret in secrets:
        if secret:
            value = value.replace(secret, MASK)
    return value


def argv(args: Sequence[str], secrets: Sequence[str], secret_flags: frozenset[str]) -> list[str]:
    """argv safe to print: values of secret flags (`--api-key K`, `--api-key=K`) and any secret value become ***."""
    shown: list[str] = []
    hide_next = False
    for arg in args:
        flag, has_value, _ = arg.partition("=")
        if hide_next:
            shown.append(MASK)
        elif has_value and flag in secret_flags:
            shown.append(f"{flag}={MASK}")
        else:
            shown.append(text(arg, secrets))
        hide_next = arg in secret_flags
    return shown
