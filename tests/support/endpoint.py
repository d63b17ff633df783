"""A real `python -m entrypoint` serving vLLM on the CPU, for the e2e tests (marked `e2e`)."""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest

from .paths import BASE_PATH, ROOT

API_KEY = "sk-cpu-endpoint-5b1f2c"
ADMIN_API_KEY = "sk-cpu-endpoint-admin-7d3e9a"
STARTUP_TIMEOUT = 900  # a cold start on two busy cores; about a minute when idle


def endpoint_env(home: Path, model: Path, port: int, **extra: str | None) -> dict[str, str]:
    """The environment of a CPU endpoint; an `extra` value of None removes that setting (its default then)."""
    env = {
        "PATH": BASE_PATH,
        "HOME": str(home),
        "HF_HOME": str(home / "hf"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
        "LANG": "C.UTF-8",
        "TARGET_MODEL": str(model),
        "ENGINE": "vllm",
        "ACCELERATORS": "cpu",
        "PORT": str(port),
        "API_KEY": API_KEY,
        "SERVED_MODEL_NAME": "tiny",
        # A small KV cache (the test shares the machine with everything else): 0.2 of the memory leaves 1-3 GiB
        # once the CPU path's 2 GiB reserve is out, and vLLM takes the CPU cache in whole GiB.
        "MEM_FRACTION": "0.2",
        "MAX_MODEL_LEN": "1024",
    }
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def session_processes(*sids: int) -> list[str]:
    """Processes still alive in these sessions (the server was started as a session leader; a supervised
    engine leads a session of its own)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) in sids and fields[0] != "Z":
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")[:120]
            alive.append(f"{entry.name}: {command!r}")
    return alive


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (any of its threads)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every process under `pid`, children first, while they are still its descendants."""
    found, pending = [], [pid]
    while pending:
        below = children(pending.pop())
        found += below
        pending += below
    return found


def session_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])
    except OSError:
        return None


class Endpoint:
    def __init__(self, python: Path, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log_path = log
        tls = env.get("TLS_CERT_FILE")
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{env['PORT']}"
        # Trust exactly our certificate, as a client of this endpoint would.
        self.ssl = ssl.create_default_context(cafile=tls) if tls else None
        self.started = time.monotonic()
        with open(log, "wb") as handle:
            self.process = subprocess.Popen(
                [str(python), "-m", "entrypoint"],
                env=env,
                cwd=ROOT,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # Its own session, and once it is up each session under it (a supervised engine has its own).
        self.sessions = {self.process.pid}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self) -> float:
        deadline = self.started + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2, context=self.ssl) as response:
                    if response.status == 200:
                        ready = time.monotonic() - self.started
                        self.sessions |= {sid for pid in descendants(self.process.pid) if (sid := session_of(pid))}
                        return ready
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        pytest.fail(f"no /health within {STARTUP_TIMEOUT} s:\n{self.log()[-4000:]}")

    def leftovers(self) -> list[str]:
        """What is still alive of the server in any of its sessions (empty once it ended everything)."""
        return session_processes(*self.sessions)

    def stop(self) -> None:
        """Kill the whole tree: the supervisor, then whatever is left in the engine's own session (vLLM's
        EngineCore and workers outlive a killed API server)."""
        if self.process.poll() is None:
            for pid in descendants(self.process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for line in self.leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)

    def client(self, api_key: str = API_KEY) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.url}/v1",
            api_key=api_key,
            max_retries=0,
            timeout=120,
            http_client=openai.DefaultHttpxClient(verify=self.ssl or True),
        )

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        return self.request("GET", path, headers)

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> tuple[int, str]:
        request = urllib.request.Request(f"{self.url}{path}", data=body, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30, context=self.ssl) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
