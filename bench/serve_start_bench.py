"""Benchmark: time to a healthy CPU endpoint through the entrypoint vs. vLLM started directly, and a restart.

    VLLM_ENV=... .venv/bin/python bench/serve_start_bench.py [--runs 1]
    VLLM_ENV=... .venv/bin/python bench/serve_start_bench.py --restart [--env VLLM_USE_AOT_COMPILE=0]

--restart: a first start with an empty HF_HOME (the volume) against a second with that HF_HOME kept, each
with a fresh HOME and TMPDIR as a new container has, so only the volume carries over: the engine's compile
caches live there (entrypoint.caches). Reports both times and their ratio.

Starts the tiny test Llama on vLLM's CPU backend twice per run: once as users
do (`python -m entrypoint`, which plans, then execs the server) and once with
the very argv and environment the entrypoint printed, started directly. Each
start is timed from process start to the first 200 from /health, then stopped
with SIGTERM. Reports both times and their ratio: the entrypoint's overhead.
One unmeasured start comes first: vLLM's first start on a machine fills its
torch.compile cache (under HOME), which would otherwise be charged to whichever
variant ran first.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def time_to_health(argv: list[str], env: dict[str, str], port: int, log: Path) -> float:
    started = time.monotonic()
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"server exited with {process.returncode}; see {log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        time.sleep(2)  # let the engine core release its memory before the next start


def restart(python: str, base: dict[str, str], work: Path, extra: dict[str, str]) -> None:
    times = []
    for start in ("cold", "warm"):
        home = work / f"home-{start}"
        (home / "tmp").mkdir(parents=True)
        port = free_port()
        env = {**base, **extra, "HOME": str(home), "TMPDIR": str(home / "tmp"), "HF_HOME": str(work / "volume")}
        times.append(
            time_to_health([python, "-m", "entrypoint"], {**env, "PORT": str(port)}, port, work / f"{start}.log")
        )
        print(f"{start}: {times[-1]:.1f} s (log {work / f'{start}.log'})")
    print(
        f"\n| restart ({' '.join(f'{k}={v}' for k, v in extra.items()) or 'defaults'}) | seconds |\n|---|---|\n"
        f"| first start, empty volume | {times[0]:.1f} |\n| second start, volume kept | {times[1]:.1f} |\n"
        f"| ratio | {times[1] / times[0]:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--restart", action="store_true", help="cold start against a start with the volume kept")
    parser.add_argument(
        "--env", action="append", default=[], help="NAME=VALUE for the server, e.g. VLLM_USE_AOT_COMPILE=0"
    )
    args = parser.parse_args()
    vllm_env = Path(os.environ["VLLM_ENV"])
    python = str(vllm_env / "bin" / "python")
    work = Path(tempfile.mkdtemp(prefix="serve-start-"))
    model = work / "tiny"
    subprocess.run(
        [python, str(ROOT / "tests" / "engines" / "make_tiny_model.py"), str(model)], check=True, capture_output=True
    )
    base = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(work),
        "HF_HOME": str(work / "hf"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
        "TARGET_MODEL": str(model),
        "ENGINE": "vllm",
        "ACCELERATORS": "cpu",
        "MEM_FRACTION": "0.2",  # 1-3 GiB of KV cache once the CPU path's 2 GiB reserve is out
        "MAX_MODEL_LEN": "1024",
    }
    if args.restart:
        restart(python, base, work, dict(item.split("=", 1) for item in args.env))
        return
    rows = []
    warm_port = free_port()
    time_to_health([python, "-m", "entrypoint"], {**base, "PORT": str(warm_port)}, warm_port, work / "warmup.log")
    for run in range(args.runs):
        port = free_port()
        env = {**base, "PORT": str(port)}
        plan = json.loads(
            subprocess.run(
                [python, "-m", "entrypoint", "plan", "--json"],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        direct_env = {**env, **plan["engine_env"]}
        through = time_to_health([python, "-m", "entrypoint"], env, port, work / f"entrypoint-{run}.log")
        direct = time_to_health(plan["argv"], direct_env, port, work / f"direct-{run}.log")
        rows.append((through, direct))
        print(f"run {run + 1}: entrypoint {through:.1f} s, direct {direct:.1f} s, ratio {through / direct:.2f}")
    through = sum(row[0] for row in rows) / len(rows)
    direct = sum(row[1] for row in rows) / len(rows)
    print(
        f"\n| start to /health 200 | seconds |\n|---|---|\n| python -m entrypoint | {through:.1f} |\n"
        f"| api_server directly | {direct:.1f} |\n| ratio | {through / direct:.2f} |"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
