"""Benchmark: time to a healthy CPU endpoint through the entrypoint vs. vLLM started directly.

    VLLM_ENV=... .venv/bin/python bench/serve_start_bench.py [--runs 1]

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1)
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
