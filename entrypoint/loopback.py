"""GET a path of the engine's own server on this machine: the health check and the supervisor's scrape (edge)."""

from __future__ import annotations

import ssl
import urllib.request


def get(port: int, path: str, tls: bool, timeout: float = 5) -> tuple[int, bytes]:
    """(status, body) of GET 127.0.0.1:port/path; raises OSError (URLError included) when nothing answers.

    With TLS the certificate is not verified: it names the public host, not 127.0.0.1, and the server is
    our own child on loopback.
    """
    scheme = "https" if tls else "http"
    context = ssl._create_unverified_context() if tls else None
    with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}{path}", timeout=timeout, context=context) as response:
        return response.status, response.read()
