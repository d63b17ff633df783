"""A stand-in engine server for tests of the serve path (no real engine needed).

Installed as `vllm.entrypoints.openai.api_server` and `sglang.launch_server`
on PYTHONPATH. It writes what it was started with (pid, argv, environment) as
JSON to $FAKE_ENGINE_REPORT, prints a start-up line, then exits with
$FAKE_ENGINE_EXIT (default 0), or with $FAKE_ENGINE_SLEEP waits for a signal.
With $FAKE_ENGINE_CHILD it first starts a child that ignores SIGTERM and outlives it unless killed, as
vLLM's EngineCore can outlive its API server; the child's pid is in the report.
With $FAKE_ENGINE_METRICS (a file of Prometheus text) it also serves that file
as /metrics, and /health, on the --port it was given, like a real engine.
With $FAKE_ENGINE_LOG (a recorded start-up log, tests/fixtures/startlogs) it first prints that log's lines,
$FAKE_ENGINE_LOG_GAP seconds apart (default 0.05), as the engine's start would. $FAKE_ENGINE_QUIET: no line.
With $FAKE_ENGINE_DRAIN a SIGTERM makes it drain for that many seconds before it exits 0.
"""

import http.server
import json
import os
import sys
import threading
import time
from pathlib import Path


def serve_metrics(path: str, port: int) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = Path(path).read_bytes() if self.path == "/metrics" else b"ok"
            self.send_response(200 if self.path in ("/metrics", "/health") else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def replay_log(path: str, gap: float) -> None:
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.startswith("# "):  # the fixture's own comments
            print(line)  # no flush: the supervisor must make a piped engine unbuffered itself
            time.sleep(gap)


def stubborn_child() -> int:
    import subprocess

    # Ignores SIGTERM from its first line, as a busy engine process may.
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    return subprocess.Popen([sys.executable, "-c", code]).pid


def main(module: str, extra: dict | None = None) -> None:
    child = stubborn_child() if os.environ.get("FAKE_ENGINE_CHILD") else None
    report = {
        "child_pid": child,
        "pid": os.getpid(),
        "module": module,
        "argv": sys.argv[1:],
        "env": dict(os.environ),
        "executable": sys.executable,
        # What `ps` shows of this process, whatever Python did to sys.argv.
        "cmdline": Path("/proc/self/cmdline").read_bytes().decode().split("\0")[:-1],
        **(extra or {}),
    }
    with open(os.environ["FAKE_ENGINE_REPORT"], "w", encoding="utf-8") as handle:
        json.dump(report, handle)
    if os.environ.get("FAKE_ENGINE_DRAIN"):  # a SIGTERM starts a drain of that many seconds, then exit 0
        import signal

        drain = float(os.environ["FAKE_ENGINE_DRAIN"])
        signal.signal(signal.SIGTERM, lambda *_: (time.sleep(drain), sys.exit(0)))
    if os.environ.get("FAKE_ENGINE_LOG"):
        replay_log(os.environ["FAKE_ENGINE_LOG"], float(os.environ.get("FAKE_ENGINE_LOG_GAP", "0.05")))
    if os.environ.get("FAKE_ENGINE_METRICS"):
        serve_metrics(os.environ["FAKE_ENGINE_METRICS"], int(sys.argv[sys.argv.index("--port") + 1]))
    if not os.environ.get("FAKE_ENGINE_QUIET"):
        print(f"fake {module} started", flush=True)
    if os.environ.get("FAKE_ENGINE_SLEEP"):
        time.sleep(float(os.environ["FAKE_ENGINE_SLEEP"]))
    code = int(os.environ.get("FAKE_ENGINE_EXIT", "0"))
    if code:
        print(f"fake {module}: start-up failed", file=sys.stderr, flush=True)
    sys.exit(code)
