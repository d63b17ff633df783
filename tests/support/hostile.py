"""The checks every hostile input gets, in-process through `cli.main` as `python -m entrypoint` runs it.

Each input is tried twice, plainly and with DEBUG=1, with a token and an API key of known value in the
environment (unless the case sets its own): a documented exit code; without DEBUG one line that starts with
`error:` and names the variable or file, and no traceback; in both, neither secret nor a raw control
character in anything printed, `plan --json` included.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence

from entrypoint import cli
from entrypoint.errors import EXIT_CODES, OTHER_EXIT_CODES

from .cli import run_cli

HF_TOKEN = "hf_HostileCanaryToken0123456789"
API_KEY = "sk-hostile-canary-0123456789abcdef"
DOCUMENTED = set(EXIT_CODES.values()) | {code for code, _, _ in OTHER_EXIT_CODES}


def run(args: Sequence[str], env: Mapping[str, str]) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = cli.main(list(args), dict(env), stdout, stderr)
    return code, stdout.getvalue(), stderr.getvalue()


def run_process(args: Sequence[str], env: Mapping[str, str]) -> tuple[int, str, str]:
    """As a separate process (serve mode, which would exec the engine in this one), e.g. with stand-in engines."""
    result = run_cli(list(args), dict(env))
    return result.returncode, result.stdout, result.stderr


def refused(
    env: Mapping[str, str],
    code: int,
    named: str,
    args: Sequence[str] = ("plan", "--json"),
    *,
    text: str = "",
    runner: Callable[[Sequence[str], Mapping[str, str]], tuple[int, str, str]] = run,
    with_debug: bool = True,
    hidden: Sequence[str] = (),
) -> str:
    """Assert the checks above for `env`; returns the error line (without DEBUG). `with_debug=False` skips the
    DEBUG=1 pass (for DEBUG's own values); `hidden` names more values that must never be printed."""
    assert code in DOCUMENTED, f"exit code {code} is not in the README's table"
    base = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HF_TOKEN": HF_TOKEN, "API_KEY": API_KEY}
    given = (env.get("HF_TOKEN", HF_TOKEN), env.get("API_KEY", API_KEY), env.get("ADMIN_API_KEY", ""))
    secrets = [value for value in (*given, *hidden) if len(value) > 3]
    line = ""
    for debug in (False, True) if with_debug else (False,):
        full = {**base, **env, **({"DEBUG": "1"} if debug else {})}
        got, out, err = runner(args, full)
        printed = out + err
        assert got == code, f"exit {got}, not {code} (DEBUG={int(debug)}):\n{err[-3000:]}"
        for secret in secrets:
            assert secret not in printed, f"a secret was printed (DEBUG={int(debug)}):\n{printed[-3000:]}"
        raw = [char for char in printed if not char.isprintable() and char != "\n"]
        assert not raw, f"raw control characters {raw!r} were printed"
        if debug:
            continue
        assert "Traceback" not in err, err
        assert out == "", f"a refusal printed on stdout: {out[:500]}"
        (line,) = err.splitlines()
        assert line.startswith("error: "), line
        assert named in line, f"{named!r} is not named in: {line}"
        assert text in line, f"{text!r} is not in: {line}"
    return line
