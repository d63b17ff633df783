"""Benchmark: plan time and Hub request count for a 163-shard model (DeepSeek-V3 layout).

    .venv/bin/python -m bench.plan_bench [--runs 5]    (from the repository root)

Builds the header-only checkpoint, then times `python -m entrypoint plan --json`
(a whole process, as pipelines call it) from the local folder and through a
fake Hub on loopback, with and without the Hub's one-request header endpoint.
Numbers are reported, never asserted: they depend on the machine.
"""

from __future__ import annotations

import argparse
import logging
import re
import statistics
import tempfile
import time
from pathlib import Path

from pytest_httpserver import HTTPServer

from tests.support import modelgen
from tests.support.cli import clean_env, run_cli
from tests.support.fakehub import FakeHub

MODEL, REPO, ACCELERATORS = "DeepSeek-V3", "deepseek-ai/DeepSeek-V3", "H200:8"


def timed(env: dict, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = run_cli(["plan", "--json"], env)
        times.append(time.perf_counter() - start)
        assert result.returncode == 0, result.stderr
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        folder = modelgen.build(MODEL, tmp_path / "models")
        shards = len(list(folder.glob("*.safetensors")))
        rows = [
            ("local folder", timed(clean_env(tmp_path, TARGET_MODEL=str(folder), ACCELERATORS=ACCELERATORS), runs), 0)
        ]
        server = HTTPServer(host="127.0.0.1", port=0)
        server.start()
        try:
            hub = FakeHub()
            hub.add(REPO, folder)
            server.expect_request(re.compile(".*")).respond_with_handler(hub.handle)
            endpoint = server.url_for("").rstrip("/")
            for label, one_request in (
                ("fake Hub, one-request headers", True),
                ("fake Hub, one read per shard", False),
            ):
                hub.one_request_headers = one_request
                hub.requests.clear()
                env = clean_env(
                    tmp_path / label.replace(" ", "_"),
                    TARGET_MODEL=REPO,
                    ACCELERATORS=ACCELERATORS,
                    HF_ENDPOINT=endpoint,
                    HF_HUB_DISABLE_XET="1",
                )
                times = timed(env, runs)
                rows.append((label, times, len(hub.requests) // runs))
        finally:
            server.stop()
    print(f"{MODEL}: {shards} shards, {runs} runs each, `python -m entrypoint plan --json` as a process")
    print(f"{'source':<32}{'median s':>10}{'min s':>8}{'requests/run':>14}")
    for label, times, requests in rows:
        print(f"{label:<32}{statistics.median(times):>10.2f}{min(times):>8.2f}{requests:>14}")


if __name__ == "__main__":
    main()
