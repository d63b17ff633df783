#!/usr/bin/env bash
# The project's one test command (README "Tests"; .ci/run calls it).
# Creates .venv on first use, installs the pinned test dependencies, runs pytest
# with any arguments given, e.g. the fast tier:
#   bash scripts/test.sh -m "not engines and not e2e" -n 2
# The real engines' environments (scripts/test-envs.sh) are built by the tests
# that need them, on first use, and reused after that.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# Installed again only when what is installed changes (pip's own no-op check takes seconds).
stamp="$venv/.installed-$(cat requirements-test.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi

# -p no:logging keeps the fake Hub's access log out of failure reports.
exec "$venv/bin/python" -m pytest -p no:logging "$@"
