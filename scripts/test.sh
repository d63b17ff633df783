#!/usr/bin/env bash
# The project's one test command (README "Run the tests"; .ci/run calls it).
# Creates .venv on first use, installs the pinned test dependencies, runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .

# The real engines the contract and end-to-end tests run against, at the
# Dockerfiles' pinned versions: built once per machine, then reused.
engine_envs="$(bash scripts/test-envs.sh)"
while IFS='=' read -r name path; do
  export "$name=$path"
done <<< "$engine_envs"

# -p no:logging keeps the fake Hub's access log out of failure reports.
exec "$venv/bin/python" -m pytest -p no:logging "$@"
