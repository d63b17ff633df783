"""The key check in front of every route of the engine's server: an ASGI middleware (docs/adr/0026).

It runs inside the engine's API server process, outermost of its middlewares, so it sees each request before
CORS, the engine's own key check or any route does:

- vLLM imports it by name (`--middleware entrypoint.engines.guard.Guard`, vllm/entrypoints/serve/middleware/
  register.py adds the user's middlewares last, so outermost) and constructs it with the app alone: the
  engine and the keys come from the environment the builder set (`ENGINE_VARIABLE`, the engine's key
  variable, `ADMIN_KEY_VARIABLE`);
- sglang's launcher (`sglang_server`) adds it to sglang's app with the engine and keys as arguments.

Which key a path needs is `routes.RouteTable` (pure); this module only reads the request's path and headers
and answers a refusal itself, in the OpenAI error shape, or passes the request on (streaming, websockets and
lifespan included) with two changes only: our keys masked out of its query string, for the access log, and,
on vLLM, an admin request passed on with the clients' key, for vLLM's own check. It imports no engine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

from .. import redact
from . import routes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class Guard:
    """`Guard(app)` as vLLM constructs it, from the environment; `Guard(app, "sglang@0.5.23", key, admin_key)`
    as our sglang launcher does, with the keys sglang itself parsed."""

    def __init__(
        self,
        app: App,
        engine: str | None = None,
        client_key: str | None = None,
        admin_key: str | None = None,
        admin_as_client: bool = True,
    ) -> None:
        self.app = app
        self.admin_as_client = admin_as_client
        if engine is None:
            # Fails closed: a server that cannot tell which table applies must not start, rather than start open.
            engine = os.environ[routes.ENGINE_VARIABLE]
            from . import ENGINES

            client_key = os.environ.get(ENGINES[engine.partition("@")[0]].api_key_variable)
            admin_key = os.environ.get(routes.ADMIN_KEY_VARIABLE)
        name, _, version = engine.partition("@")
        self.table = routes.table(name, version)
        self.client_key, self.admin_key = client_key or None, admin_key or None
        keys = [key for key in (self.client_key, self.admin_key) if key]
        self._query_mask = redact.Masker([form for key in keys for form in (key, quote(key, safe=""))])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):  # lifespan
            await self.app(scope, receive, send)
            return
        self._hide_keys_in_query(scope)
        # The stricter of the path as sent and as the app routes it (without its root path): no root path can
        # make an admin route look like a client one.
        sent, routed = str(scope.get("path", "")), _route_path(scope)
        level = self.table.level(sent) if routed == sent else routes.stricter(*map(self.table.level, (sent, routed)))
        headers = [value for name, value in scope.get("headers", ()) if name.lower() == b"authorization"]
        refusal = routes.decide(level, headers, self.client_key, self.admin_key)
        if refusal is None:
            passed = self._as_client(scope) if level == "admin" and self.admin_as_client else scope
            await self.app(passed, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy violation, before any accept
        else:
            await _answer(send, refusal)

    def _hide_keys_in_query(self, scope: Scope) -> None:
        """Our keys sent in the query string (where they never count), as written or percent-encoded, masked in
        the request itself: the server logs each request line from this same scope (uvicorn's access log), and
        no log may hold a key. Nothing else of the query is changed."""
        query = scope.get("query_string", b"")
        if query:
            text = query.decode("latin-1")
            hidden = self._query_mask.exactly(text)
            if hidden != text:
                scope["query_string"] = hidden.encode("latin-1")

    def _as_client(self, scope: Scope) -> Scope:
        """An admin request, let through, as the engine's own check must see it: vLLM's checks every /v1 path
        (an adapter loaded at run time is /v1/load_lora_adapter) against the clients' key alone."""
        if not self.client_key:
            return scope
        headers = [(name, value) for name, value in scope.get("headers", ()) if name.lower() != b"authorization"]
        return {**scope, "headers": [*headers, (b"authorization", b"Bearer " + self.client_key.encode())]}


def _route_path(scope: Scope) -> str:
    """The path the app routes on, as Starlette's own routing finds it (starlette/_utils.py get_route_path):
    without the root path (vLLM --root-path, sglang --fastapi-root-path) only where a `/` follows it."""
    path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
    if not root or not path.startswith(root):
        return path
    if path == root:
        return ""
    return path[len(root) :] if path[len(root)] == "/" else path


async def _answer(send: Send, refusal: routes.Refusal) -> None:
    kind = "authentication_error" if refusal.status == 401 else "permission_error"
    body = json.dumps({"error": {"message": refusal.message, "type": kind, "code": refusal.status}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if refusal.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
