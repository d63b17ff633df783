"""Self-signed certificates made with the openssl command, for the TLS tests."""

from __future__ import annotations

import subprocess
from pathlib import Path


def self_signed(folder: Path, name: str = "tls", *options: str) -> tuple[Path, Path]:
    """(certificate, key) for localhost and 127.0.0.1 in `folder`; `options` go to `openssl req` (e.g. -nodes
    for an unencrypted key, or -passout pass:... for an encrypted one)."""
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            *options,
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
