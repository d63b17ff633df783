"""Hiding secrets in anything printed: argv, log lines, errors, tracebacks (pure).

Which values are secret comes from the settings table (`Setting.secret`), which flags are secret from the
engine (`Engine.secret_flags`); nothing here lists either. Besides those values, `credentials` hides what
is a credential by its shape wherever it appears: the `user:password@` of a URL, a token-like query
parameter (`?token=`), a Hugging Face token. Both run on every line we print (cli's output streams, the
supervisor's relay of the engine's output).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from .engines.base import flag_name

MASK = "***"
# A credential found by its shape shorter than this is left alone: masking every "a" or "1" in our output would
# hide the output, not a secret (the settings refuse secrets this short).
MIN_HIDDEN = 4

# The userinfo of a URL (`https://user:hf_xxx@host`, or a token alone as the user): everything up to the last @
# before the next space or quote, since a pasted password may hold a raw `/` or `@` (masking a path is harmless).
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<secret>[^\s'\"<>]+)@")
# Query parameters that carry credentials in the URLs people paste (signed URLs, token-in-query mirrors).
_TOKEN_PARAMETER = re.compile(
    r"(?P<name>[?&;](?:[\w.-]*token|[\w.-]*key|key|password|passwd|pwd|secret|sig|signature|auth|authorization"
    r"|credential|x-amz-[\w-]+|x-goog-[\w-]+)=)(?P<secret>[^&#\s'\"]*)",
    re.IGNORECASE,
)
# A Hugging Face token (hf_ and 30 or more letters and digits; today's are 34), wherever it was pasted.
_HF_TOKEN = re.compile(r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{30,}(?![A-Za-z0-9])")


def printable(value: str) -> str:
    """Control characters (a terminal escape in config.json, a NUL in a value) as escapes, never raw."""
    return "".join(char if char.isprintable() or char == "\n" else repr(char)[1:-1] for char in value)


def credentials(value: str) -> str:
    """`value` with every credential-shaped part (userinfo, token query parameter, HF token) as ***."""
    value = _USERINFO.sub(lambda match: f"{match['scheme']}{MASK}@", value)
    value = _TOKEN_PARAMETER.sub(lambda match: f"{match['name']}{MASK}", value)
    return _HF_TOKEN.sub(MASK, value)


def credentials_in(value: str) -> list[str]:
    """The credentials inside `value` (a URL's userinfo and password, token query parameters, HF tokens),
    to hide wherever else they appear, e.g. cut out of the URL by a library that prints its parts."""
    found = []
    for match in _USERINFO.finditer(value):
        found += [match["secret"], *match["secret"].split(":", 1)[1:]]
    found += [match["secret"] for match in _TOKEN_PARAMETER.finditer(value)]
    found += _HF_TOKEN.findall(value)
    return [part for part in found if len(part) >= MIN_HIDDEN]


class Masker:
    """Every secret replaced at once, longest first: masking one after another lets a short secret masked
    first cut a longer one (`0` inside `sk-0123...` left 15 of its 16 characters), and the longer one is then
    no longer found."""

    def __init__(self, secrets: Iterable[str]) -> None:
        unique = sorted({secret for secret in secrets if secret}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(secret) for secret in unique)) if unique else None
        self.longest = len(unique[0]) if unique else 0

    def __call__(self, value: str) -> str:
        return credentials(self.exactly(value))

    def exactly(self, value: str) -> str:
        """Only the secrets themselves hidden, nothing else by its shape."""
        return self._pattern.sub(MASK, value) if self._pattern is not None else value


def text(value: str, secrets: Iterable[str]) -> str:
    """`value` with every secret in it replaced by ***, wherever it appears, and every credential-shaped
    part too (`credentials`)."""
    return Masker(secrets)(value)


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
    """Every value given to a secret flag in `args` (`--api-key K`, `--api-key=K`, and vLLM's several keys
    `--api-key K1 K2`: each token up to the next flag): secrets to hide."""
    values = []
    for index, arg in enumerate(args):
        if secret_flag(arg, secret_flags, other_flags):
            _, has_value, value = arg.partition("=")
            values += [value] if has_value else _values_after(args, index)
    return [value for value in values if value]


def _values_after(args: Sequence[str], index: int) -> list[str]:
    """The tokens after args[index] up to the next flag (hiding a flag's neighbour too much is harmless)."""
    values: list[str] = []
    for arg in args[index + 1 :]:
        if arg.startswith("-") and values:
            break
        values.append(arg)
    return values


def argv(
    args: Sequence[str], secrets: Sequence[str], secret_flags: frozenset[str], other_flags: frozenset[str] = frozenset()
) -> list[str]:
    """argv safe to print: values of secret flags, in any spelling, and any secret value become ***."""
    mask = Masker([*secrets, *secret_flag_values(args, secret_flags, other_flags)])
    shown: list[str] = []
    for arg in args:
        flag, has_value, _ = arg.partition("=")
        if has_value and secret_flag(arg, secret_flags, other_flags) is not None:
            shown.append(f"{flag}={MASK}")
        else:
            shown.append(mask(arg))
    return shown
