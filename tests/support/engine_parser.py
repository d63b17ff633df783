"""The real engines' argument parsers, one long-lived process per engine (tests/engines/parse_argv.py).

Importing vLLM or sglang takes seconds; a test run starts each parser once and sends it every argv.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import IO

from .paths import ENGINE_SCRIPTS


class EngineParser:
    def __init__(self, python: Path, engine: str, log: Path) -> None:
        self.log = log
        self._stderr: IO[str] = open(log, "w", encoding="utf-8")  # noqa: SIM115 (lives as long as the process)
        self.process = subprocess.Popen(
            [str(python), str(ENGINE_SCRIPTS / "parse_argv.py"), engine],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )

    def parse(self, argvs: list[list[str]]) -> dict:
        """{"results": [...], "facts": {...}} for argvs (what follows `python -m <server module>`)."""
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps({"argvs": argvs}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the parser exited with {self.process.poll()}: {self.log.read_text()[-3000:]}"
        return json.loads(line)

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=60)
        self._stderr.close()
