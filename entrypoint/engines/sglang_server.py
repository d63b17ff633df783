"""What the sglang image execs: sglang's own server, with the API key in no command line and no log line.

sglang takes the key only as `--api-key`, which `ps` shows to every user of the machine, and at start-up it
logs `server_args={...}` with `api_key` in clear (0.5.23: `_server_args_for_logging` redacts watermark fields
only). So the sglang builder passes the key in this process's environment (`API_KEY_VARIABLE`), and this
module, exec'd in place of `python -m sglang.launch_server` (same PID, so exec semantics hold, ADR 0007):

1. takes the keys (API_KEY's and ADMIN_API_KEY's) out of the environment, so sglang's own child processes
   never inherit them;
2. wraps sglang's server-args logging so that secret fields print as ***;
3. parses the argv exactly as `sglang.launch_server` does, then sets the keys on the parsed arguments, so they
   are not in the recorded launch command either; sglang's own check and start-up warm-up use them;
4. puts our guard (`guard.Guard`, docs/adr/0026) in front of every route of sglang's app, with the keys sglang
   parsed: sglang's own check opens every path that starts with /health, /ready or /metrics, never checks a
   websocket, and lets the client key call its admin routes when no admin key is set;
5. runs sglang's server as `sglang.launch_server` does.

It is the one module of ours that imports sglang (a launcher; the planner never does), and it runs only
inside the sglang image (docs/adr/0014).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

from ..redact import MASK
from . import routes
from .guard import Guard
from .sglang import API_KEY_VARIABLE, SECRET_SERVER_ARGS


def redacted(server_args: Mapping[str, Any]) -> dict[str, Any]:
    """sglang's logged server args with every secret field that is set shown as ***."""
    return {name: (MASK if name in SECRET_SERVER_ARGS and value else value) for name, value in server_args.items()}


def redact_logged_server_args() -> None:
    """Wrap sglang's `_server_args_for_logging`, which it looks up by name each time it logs."""
    from sglang.srt.entrypoints import engine  # type: ignore[import-not-found]

    upstream: Callable[[Any], dict[str, Any]] = engine._server_args_for_logging
    if getattr(upstream, "redacts_secrets", False):
        return

    def for_logging(server_args: Any) -> dict[str, Any]:
        return redacted(upstream(server_args))

    for_logging.redacts_secrets = True  # type: ignore[attr-defined]
    engine._server_args_for_logging = for_logging


def server_args(argv: Sequence[str], api_key: str | None, admin_key: str | None = None) -> Any:
    """sglang's parsed arguments for `argv`, with the keys set after parsing (so no argv ever held them)."""
    from sglang import launch_server as upstream  # type: ignore[import-not-found]

    parsed = upstream.prepare_server_args(list(argv))
    if api_key:
        parsed.api_key = api_key
    if admin_key:
        parsed.admin_api_key = admin_key
    return parsed


def guard(parsed: Any, table: str) -> None:
    """Our guard on sglang's app, which sglang's server serves as it is (http_server.app, a module global).
    With several tokenizer workers each worker imports the app afresh, without it: refused, rather than
    served with its admin routes open."""
    if getattr(parsed, "tokenizer_worker_num", 1) > 1:
        raise SystemExit(
            "error: --tokenizer-worker-num above 1 serves sglang's app without the key check in front of every "
            "route (each worker imports the app afresh); leave it at 1"
        )
    from sglang.srt.entrypoints import http_server

    # sglang's own check, added later and so outside ours, wants the admin key itself on its admin routes.
    http_server.app.add_middleware(
        Guard, engine=table, client_key=parsed.api_key, admin_key=parsed.admin_api_key, admin_as_client=False
    )


def main(argv: Sequence[str] | None = None, environ: MutableMapping[str, str] | None = None) -> None:
    env = os.environ if environ is None else environ
    api_key = env.pop(API_KEY_VARIABLE, None)
    admin_key = env.pop(routes.ADMIN_KEY_VARIABLE, None)
    table = env.pop(routes.ENGINE_VARIABLE)  # set by the builder; none: refuse to serve unguarded
    from sglang import launch_server as upstream

    redact_logged_server_args()
    upstream.load_plugins()
    parsed = server_args(sys.argv[1:] if argv is None else argv, api_key, admin_key)
    guard(parsed, table)
    try:
        upstream.run_server(parsed)
    finally:
        upstream.kill_process_tree(os.getpid(), include_parent=False)


if __name__ == "__main__":
    main()
