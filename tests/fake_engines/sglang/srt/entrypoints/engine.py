"""Stand-in for the one function of sglang's engine module our launcher wraps (the real one is tested in
tests/engines/sglang_secrets.py)."""


def _server_args_for_logging(server_args):
    return dict(vars(server_args))
