"""A stand-in engine server for tests of the serve path (no real engine needed).

Installed as `vllm.entrypoints.openai.api_server` and `sglang.launch_server`
on PYTHONPATH. It writes what it was started with (pid, argv, environment) as
JSON to $FAKE_ENGINE_REPORT, prints a start-up line, then exits with
$FAKE_ENGINE_EXIT (default 0), or with $FAKE_ENGINE_SLEEP waits for a signal.
"""

import json
import os
import sys
import time


def main(module: str) -> None:
    report = {"pid": os.getpid(), "module": module, "argv": sys.argv[1:], "env": dict(os.environ),
              "executable": sys.executable}
    with open(os.environ["FAKE_ENGINE_REPORT"], "w", encoding="utf-8") as handle:
        json.dump(report, handle)
    print(f"fake {module} started", flush=True)
    if os.environ.get("FAKE_ENGINE_SLEEP"):
        time.sleep(float(os.environ["FAKE_ENGINE_SLEEP"]))
    code = int(os.environ.get("FAKE_ENGINE_EXIT", "0"))
    if code:
        print(f"fake {module}: start-up failed", file=sys.stderr, flush=True)
    sys.exit(code)
