"""Run in the sglang environment: our launcher (entrypoint/engines/sglang_server.py) against the pinned
sglang's own argument parsing and start-up logging.

usage: python sglang_secrets.py KEY ARGV...   (ARGV: what the sglang builder puts after `-m <launcher>`)
prints one JSON object: what sglang itself would log and record, with the key on argv (upstream's way) and
through the launcher (ours). The repository root must be on PYTHONPATH, HF_HUB_OFFLINE=1 set, and the
model folder in ARGV hold a config.json.
"""

import json
import sys

import sglang_standins  # noqa: F401  (first: an empty torchvision)

# isort: split
from sglang import launch_server
from sglang.srt.entrypoints import engine

from entrypoint.engines import sglang_server

key, argv = sys.argv[1], sys.argv[2:]

# Upstream's way: the key on argv, sglang's logging as shipped.
on_argv = sglang_server.server_args([*argv, "--api-key", key], None)
upstream_logged = str(engine._server_args_for_logging(on_argv))

# Ours: the key set after parsing, and sglang's logging wrapped by the launcher.
ours = sglang_server.server_args(argv, key)
sglang_server.redact_logged_server_args()
logged = engine._server_args_for_logging(ours)

print(
    json.dumps(
        {
            "upstream_logs_the_key": key in upstream_logged,
            "upstream_records_the_key": key in str(on_argv.launch_command),
            "logged_has_the_key": key in str(logged),
            "logged_api_key": logged.get("api_key"),
            "recorded_command_has_the_key": key in str(ours.launch_command),
            "serves_with_the_key": ours.api_key == key,
            "logged_fields": len(logged),
            # What the launcher's main() calls of sglang.launch_server, as its own __main__ block does.
            "launch_server_has": sorted(
                name
                for name in ("load_plugins", "prepare_server_args", "run_server", "kill_process_tree")
                if callable(getattr(launch_server, name, None))
            ),
        }
    )
)
