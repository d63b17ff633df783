"""Every route of either engine needs a key, but the open table's; admin routes need the admin key (ADR 0026).

The route tables (entrypoint/engines/routes/) are checked against the engines themselves: vLLM's own app built
with every router a start can attach, sglang's source with the auth level sglang gives each route. A route an
engine bump adds, or one sglang calls admin, fails here until the table says which key it needs. vLLM's app
is then asked every route through our guard, each way a key can be given wrong.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from entrypoint.engines import ENGINES, routes
from entrypoint.engines.guard import Guard
from tests.support.paths import ROOT, TESTS

CLIENT, ADMIN = "sk-client-0123456789abcdef", "sk-admin-0123456789abcdef"
OPEN = {"/health", "/metrics"}  # what README's security section says is open, and why


def pinned(engine: str) -> str:
    return f"{engine}@{ENGINES[engine].pinned_version}"


def table(engine: str) -> routes.RouteTable:
    return routes.table(engine, ENGINES[engine].pinned_version)


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_only_health_and_metrics_are_open_each_with_its_reason(engine):
    assert set(table(engine).paths("open")) == OPEN
    assert all(route.why for route in table(engine).routes if route.level == "open")


# (path, level) for both engines: exact matches, templates, mounts, and paths no table knows.
LEVELS = [
    ("/health", "open"),
    ("/health/", "client"),  # a redirect at most; only the exact path is open
    ("/health_generate", "client"),  # sglang's own check opens every /health* path: this one generates
    ("/metrics", "open"),
    ("/metrics/", "open"),  # the Prometheus mount serves below it too
    ("/metricsfoo", "client"),
    ("/v1/chat/completions", "client"),
    ("/invocations", "client"),  # vLLM's own check leaves it open
    ("/tokenize", "client"),
    ("/v1/models", "client"),
    ("/no/such/route", "client"),  # unknown: never open by omission
    ("", "client"),
]
VLLM_LEVELS = [("/sleep", "admin"), ("/collective_rpc", "admin"), ("/adapters/x", "admin"), ("/pause", "admin")]
SGLANG_LEVELS = [("/update_weights_from_disk", "admin"), ("/release_memory_occupation", "admin"), ("/ready", "client")]


@pytest.mark.parametrize(
    ("engine", "path", "level"),
    [(engine, *row) for engine in sorted(ENGINES) for row in LEVELS]
    + [("vllm", *row) for row in VLLM_LEVELS]
    + [("sglang", *row) for row in SGLANG_LEVELS],
)
def test_the_level_of_a_path(engine, path, level):
    assert table(engine).level(path) == level


# (level, Authorization headers, client key, admin key, status or None to serve)
DECISIONS = [
    ("open", [], CLIENT, ADMIN, None),
    ("client", [], CLIENT, ADMIN, 401),
    ("client", [b"Bearer " + CLIENT.encode()], CLIENT, ADMIN, None),
    ("client", [b"Bearer " + ADMIN.encode()], CLIENT, ADMIN, 401),  # the admin key is not a client key
    ("client", [b"bearer " + CLIENT.encode()], CLIENT, ADMIN, 401),
    ("client", [b"Bearer  " + CLIENT.encode()], CLIENT, ADMIN, 401),
    ("client", [b"Bearer " + CLIENT.encode() + b" "], CLIENT, ADMIN, 401),
    ("client", [CLIENT.encode()], CLIENT, ADMIN, 401),
    ("client", [b"Basic " + CLIENT.encode()], CLIENT, ADMIN, 401),
    ("client", [b"Bearer " + CLIENT.encode()] * 2, CLIENT, ADMIN, 401),  # two headers: no key
    ("client", [b"Bearer " + CLIENT[:-1].encode()], CLIENT, ADMIN, 401),
    ("client", [], None, ADMIN, None),  # no API_KEY: clients need none
    ("admin", [b"Bearer " + CLIENT.encode()], CLIENT, ADMIN, 401),  # the client key is not an admin key
    ("admin", [b"Bearer " + ADMIN.encode()], CLIENT, ADMIN, None),
    ("admin", [b"Bearer " + CLIENT.encode()], CLIENT, None, 403),  # no ADMIN_API_KEY: closed
    ("admin", [], None, None, 403),  # no keys at all: admin routes stay closed
]


@pytest.mark.parametrize(("level", "headers", "client", "admin", "status"), DECISIONS)
def test_who_may_call_a_route(level, headers, client, admin, status):
    refusal = routes.decide(level, headers, client, admin)
    assert (refusal and refusal.status) == status


def call(guard: Guard, scope: dict) -> list[dict]:
    """What the guard sends for one request; its app records whether it was reached."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    return sent


def reached_app() -> tuple[list[dict], Guard]:
    seen: list[dict] = []

    async def app(scope, receive, send):
        seen.append(scope)

    return seen, Guard(app, pinned("vllm"), CLIENT, ADMIN)


@pytest.mark.parametrize(
    ("scope", "reached", "answer"),
    [
        ({"type": "lifespan"}, True, None),
        ({"type": "http", "path": "/health", "headers": []}, True, None),
        ({"type": "http", "path": "/invocations", "headers": []}, False, 401),
        (
            {"type": "http", "path": "/invocations", "headers": [(b"authorization", f"Bearer {CLIENT}".encode())]},
            True,
            None,
        ),
        ({"type": "http", "path": "/sleep", "headers": [(b"authorization", f"Bearer {CLIENT}".encode())]}, False, 401),
        ({"type": "http", "path": "/sleep", "headers": [(b"Authorization", f"Bearer {ADMIN}".encode())]}, True, None),
        ({"type": "websocket", "path": "/v1/realtime", "headers": []}, False, "close"),
        # vLLM --root-path: Starlette routes on the path without it, and so must the guard.
        (
            {
                "type": "http",
                "path": "/api/sleep",
                "root_path": "/api",
                "headers": [(b"authorization", f"Bearer {CLIENT}".encode())],
            },
            False,
            401,
        ),
        ({"type": "http", "path": "/api/health", "root_path": "/api", "headers": []}, False, 401),  # the stricter
        ({"type": "http", "path": "/health", "root_path": "/api", "headers": []}, True, None),
        # Starlette strips a root path only where a "/" follows it: with "/" or "/s" the path routes as sent.
        (
            {
                "type": "http",
                "path": "/sleep",
                "root_path": "/",
                "headers": [(b"authorization", f"Bearer {CLIENT}".encode())],
            },
            False,
            401,
        ),
        (
            {
                "type": "http",
                "path": "/start_profile",
                "root_path": "/s",
                "headers": [(b"authorization", f"Bearer {CLIENT}".encode())],
            },
            False,
            401,
        ),
    ],
)
def test_the_guard_as_an_asgi_middleware(scope, reached, answer):
    seen, guard = reached_app()
    sent = call(guard, scope)
    assert bool(seen) == reached
    if answer == "close":
        assert sent == [{"type": "websocket.close", "code": 1008}]
    elif answer:
        assert sent[0]["status"] == answer and (b"www-authenticate", b"Bearer") in sent[0]["headers"]
        assert json.loads(sent[1]["body"])["error"]["code"] == answer


def test_a_guard_that_cannot_tell_its_table_refuses_to_start(monkeypatch):
    monkeypatch.delenv(routes.ENGINE_VARIABLE, raising=False)
    with pytest.raises(KeyError):
        Guard(lambda *_: None)
    with pytest.raises(FileNotFoundError):
        Guard(lambda *_: None, "vllm@0.0.1")


@pytest.mark.parametrize(
    "text",
    ["open GET /x", "public GET /x", "client GET", "client GET x", "client GET /x /y"],
    ids=["open without a reason", "unknown level", "no path", "relative path", "two paths"],
)
def test_a_malformed_table_line_is_refused(text):
    with pytest.raises(ValueError):
        routes.parse(text)


# ---------------------------------------------------------------- against the engines


def engine_routes(engine_envs, engine: str) -> list[dict]:
    env = engine_envs[engine]
    args = [str(env / "bin" / "python"), str(TESTS / "engines" / "list_routes.py"), engine]
    if engine == "sglang":
        args += [str(next(env.glob("lib/python3*/site-packages")))]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_every_route_of_vllms_app_is_in_the_table(engine_envs):
    registered = {route["path"] for route in engine_routes(engine_envs, "vllm")}
    listed = {route.path for route in table("vllm").routes}
    assert registered - listed == set(), "routes of vLLM that need a level in the table"
    assert listed - registered == set(), "routes in the table that vLLM no longer registers"


def test_every_route_of_sglang_is_in_the_table_and_its_admin_routes_are_admin(engine_envs):
    registered = engine_routes(engine_envs, "sglang")
    listed = table("sglang")
    framework = {"/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}  # not decorated routes
    assert {route["path"] for route in registered} - {route.path for route in listed.routes} == set()
    assert {route.path for route in listed.routes} - {route["path"] for route in registered} == framework
    sglangs_admin = {route["path"] for route in registered if route["auth"] != "NORMAL"}
    assert sglangs_admin and sglangs_admin <= set(listed.paths("admin"))


def test_vllms_app_with_our_guard_refuses_every_route_without_the_right_key(engine_envs):
    script = TESTS / "engines" / "guarded_app.py"
    result = subprocess.run(
        [str(engine_envs["vllm"] / "bin" / "python"), str(script), pinned("vllm"), CLIENT, ADMIN],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout)
    assert found["middleware"][0] == "Guard"  # outermost: it sees each request before CORS or vLLM's check
    refused = {401, 403}
    levels = table("vllm")
    for answer in found["answers"]:
        level, how, status = levels.level(answer["path"]), answer["how"], answer["status"]
        shown = f"{answer['method']} {answer['path']} ({level}) with {how}: {status}"
        if level == "open" or (how in ("client", "admin") and how == level):
            assert status not in refused, shown
        else:
            assert status in refused, shown
    assert len({answer["path"] for answer in found["answers"]}) > 60


def test_the_guard_imports_no_engine():
    """vLLM imports the guard by name inside its API server; it must stay light and engine-free."""
    code = "import sys, entrypoint.engines.guard; print([m for m in ('vllm', 'sglang', 'torch') if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"


def test_a_key_in_the_query_string_is_hidden_from_the_servers_access_log():
    """uvicorn logs each request line from the scope the app got: a key there would reach the log. The rest of
    the query reaches the engine as sent."""
    from urllib.parse import quote

    seen, guard = reached_app()
    query = f"api_key={CLIENT}&sig=abc&q={quote(ADMIN + '+/', safe='')}&key=kept"
    scope = {"type": "http", "path": "/v1/models", "query_string": query.encode()}
    scope["headers"] = [(b"authorization", f"Bearer {CLIENT}".encode())]
    call(guard, scope)
    assert scope["query_string"] == b"api_key=***&sig=abc&q=***%2B%2F&key=kept" and seen


@pytest.mark.parametrize("admin_as_client", [True, False])
def test_an_admin_request_reaches_the_engine_with_the_key_its_own_check_wants(admin_as_client):
    """vLLM's own check wants the clients' key on /v1/load_lora_adapter; sglang's (outside ours) the admin's."""
    seen: list[dict] = []

    async def app(scope, receive, send):
        seen.append(scope)

    guard = Guard(app, pinned("vllm"), CLIENT, ADMIN, admin_as_client=admin_as_client)
    call(
        guard,
        {"type": "http", "path": "/v1/load_lora_adapter", "headers": [(b"authorization", f"Bearer {ADMIN}".encode())]},
    )
    (passed,) = seen
    assert dict(passed["headers"])[b"authorization"] == f"Bearer {CLIENT if admin_as_client else ADMIN}".encode()
