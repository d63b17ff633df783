"""Which key each route of an engine's HTTP server needs (pure): docs/adr/0026.

Every route an engine registers at its pinned version is in the engine's table, `routes/<engine>-<version>.txt`
beside this module, at one of three levels:

- `open`: no key. Only what the image's HEALTHCHECK, SkyPilot's probe and Prometheus read, each with its
  reason in the table;
- `admin`: ADMIN_API_KEY, never the clients' key. Routes that change the server for everyone (weights,
  memory, caches, profiling, pausing, adapters loaded at run time, scaling). Closed (403) when ADMIN_API_KEY
  is unset: we never make up an admin key;
- `client`: API_KEY when it is set. Everything that runs the model, tokenizes or lists models.

A path the table does not know (a route of an engine plugin, a typo) needs the client key, so nothing is open
by omission. tests/test_routes.py enumerates the routes of the engine's own app (vLLM's FastAPI routes with
every router a start can attach, sglang's with the auth level sglang gives each) and fails when one is not in
the table, or when sglang calls admin a route the table does not, so an engine bump cannot ship a hole.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

LEVELS = ("open", "admin", "client")
# Set by the engine's builder in the engine's environment, for the guard (`guard.Guard`): whose table, at
# which version ("vllm@0.32.0"), and the admin key (the client key travels in the engine's own variable).
ENGINE_VARIABLE = "INFERENCE_ENDPOINT_GUARD"
ADMIN_KEY_VARIABLE = "INFERENCE_ENDPOINT_ADMIN_API_KEY"


@dataclass(frozen=True)
class Route:
    level: str  # one of LEVELS
    methods: tuple[str, ...]  # as the engine registers them ("WEBSOCKET" for a websocket route, "MOUNT" a mount)
    path: str  # Starlette's template: /v1/models/{model:path}
    why: str = ""  # for an open route: why it needs no key


def stricter(*levels: str) -> str:
    return next(level for level in ("admin", "client", "open") if level in levels)


@dataclass(frozen=True)
class RouteTable:
    routes: tuple[Route, ...]
    _patterns: tuple[tuple[re.Pattern[str], str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        patterns = tuple((_compiled(route), route.level) for route in self.routes)
        object.__setattr__(self, "_patterns", patterns)

    def level(self, path: str) -> str:
        """The level of the route `path` reaches; "admin" wins over "client" over "open" when templates
        overlap, and an unknown path is "client"."""
        found = {level for pattern, level in self._patterns if pattern.fullmatch(path)}
        return stricter(*found) if found else "client"

    def paths(self, level: str) -> list[str]:
        return sorted({route.path for route in self.routes if route.level == level})


def _compiled(route: Route) -> re.Pattern[str]:
    """Starlette's matching: `{name}` is one path segment, `{name:path}` anything; a mount also takes what
    follows it after a `/`. (Both engines' /metrics mount matches `^/metrics.*`, so `/metricsX` reaches it too;
    here that is a client path, which needs the key: narrower, never wider.)"""
    parts = re.split(r"(\{[^}]*\})", route.path)
    regex = "".join(
        (".*" if part.endswith(":path}") else "[^/]+") if part.startswith("{") else re.escape(part) for part in parts
    )
    if "MOUNT" in route.methods:
        regex += "(/.*)?"
    return re.compile(regex)


def parse(text: str) -> RouteTable:
    """The table's lines: `LEVEL METHODS PATH [# why]`, e.g. `open GET /health # the image's HEALTHCHECK`."""
    routes = []
    for number, raw in enumerate(text.splitlines(), 1):
        line, _, why = raw.partition("#")
        if not line.strip():
            continue
        try:
            level, methods, path = line.split()
        except ValueError:
            raise ValueError(f"line {number}: {raw!r} is not LEVEL METHODS PATH") from None
        if level not in LEVELS or not path.startswith("/"):
            raise ValueError(f"line {number}: {raw!r} has no level of {LEVELS} or no path")
        if level == "open" and not why.strip():
            raise ValueError(f"line {number}: an open route needs its reason after #")
        routes.append(Route(level, tuple(methods.split(",")), path, why.strip()))
    return RouteTable(tuple(routes))


@cache
def table(engine: str, version: str) -> RouteTable:
    text = (
        resources.files(__package__).joinpath("routes").joinpath(f"{engine}-{version}.txt").read_text(encoding="utf-8")
    )
    return parse(text)


# ---------------------------------------------------------------- the decision


@dataclass(frozen=True)
class Refusal:
    status: int  # 401: no key or the wrong one; 403: an admin route with no admin key set
    message: str


def decide(level: str, authorization: Iterable[bytes], client_key: str | None, admin_key: str | None) -> Refusal | None:
    """None to serve the request, else why not. `authorization` is every Authorization header it carried.

    The key is accepted only as exactly `Bearer <key>` in one header, compared in constant time, as both
    engines' own checks read it (vLLM's AuthenticationMiddleware, sglang's auth.py); a key in the query string,
    another scheme's spelling or a second header is no key.
    """
    if level == "open":
        return None
    if level == "admin":
        if not admin_key:
            return Refusal(403, "this route changes the server and is closed: the server has no ADMIN_API_KEY")
        return None if _carries(authorization, admin_key) else Refusal(401, "this route needs the admin key")
    if not client_key:
        return None
    return None if _carries(authorization, client_key) else Refusal(401, "a valid API key is required")


def _carries(headers: Iterable[bytes], key: str) -> bool:
    values = list(headers)
    return len(values) == 1 and hmac.compare_digest(values[0], b"Bearer " + key.encode())
