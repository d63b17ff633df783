"""Stand-in for sglang.launch_server: what our launcher (entrypoint/engines/sglang_server.py) calls of it."""

import types

from fake_engine import main


def load_plugins():
    pass


def prepare_server_args(argv):
    return types.SimpleNamespace(argv=list(argv), api_key=None, admin_api_key=None, tokenizer_worker_num=1)


def run_server(server_args):
    # What sglang would serve with: the keys set on its parsed arguments, never on argv, and the middlewares
    # its app was given.
    from sglang.srt.entrypoints.http_server import app

    main(
        "sglang.launch_server",
        {
            "server_args_api_key": server_args.api_key,
            "server_args_admin_api_key": server_args.admin_api_key,
            "middlewares": app.middlewares,
        },
    )


def kill_process_tree(pid, include_parent=True):
    pass


if __name__ == "__main__":
    main("sglang.launch_server")
