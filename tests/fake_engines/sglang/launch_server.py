"""Stand-in for sglang.launch_server: what our launcher (entrypoint/engines/sglang_server.py) calls of it."""

import types

from fake_engine import main


def load_plugins():
    pass


def prepare_server_args(argv):
    return types.SimpleNamespace(argv=list(argv), api_key=None)


def run_server(server_args):
    # What sglang would serve with: the key set on its parsed arguments, never on argv.
    main("sglang.launch_server", {"server_args_api_key": server_args.api_key})


def kill_process_tree(pid, include_parent=True):
    pass


if __name__ == "__main__":
    main("sglang.launch_server")
