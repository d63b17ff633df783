"""Run inside the vLLM environment: vLLM's own app, built as its server builds it with our guard as
`--middleware`, asked every route it registers with each way of (not) giving a key. No engine starts.

usage:  python guarded_app.py TABLE CLIENT_KEY ADMIN_KEY   (TABLE as the builder writes it: vllm@0.32.0)
stdout: JSON {"middleware": [outermost first], "answers": [{"path", "method", "how", "status"}]}

Every router vLLM 0.32 can attach is on (dev mode, run-time LoRA, profiler, fault tolerance, tokens-only,
tokenizer info), and the app answers through Starlette's TestClient; a route that passes the guard answers
whatever it answers without an engine (often 500), which is not 401 or 403.
"""

from __future__ import annotations

import json
import os
import re
import sys


def main() -> None:
    table, client_key, admin_key = sys.argv[1:4]
    os.environ.update(
        {
            "INFERENCE_ENDPOINT_GUARD": table,
            "VLLM_API_KEY": client_key,
            "INFERENCE_ENDPOINT_ADMIN_API_KEY": admin_key,
            "VLLM_SERVER_DEV_MODE": "1",
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "1",
        }
    )
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    from starlette.routing import Mount
    from starlette.testclient import TestClient
    from vllm.entrypoints.launchers.app import build_app
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    extra = ["--profiler-config", '{"profiler": "torch", "torch_profiler_dir": "/tmp/prof"}', "--tokens-only"]
    extra += ["--enable-fault-tolerance", "--enable-tokenizer-info-endpoint"]
    extra += ["--middleware", "entrypoint.engines.guard.Guard"]
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(["model", *extra])
    app = build_app(args, ("generate", "transcription"), None)
    client = TestClient(app, raise_server_exceptions=False)
    answers = []
    for route in app.routes:
        if isinstance(route, Mount) or not hasattr(route, "methods"):
            continue
        path = re.sub(r"\{[^}]*\}", "x", route.path)
        method = sorted(route.methods - {"HEAD"})[0]
        tries = {
            "none": {},
            "wrong": {"Authorization": "Bearer wrong-key-0123456789"},
            "lowercase scheme": {"Authorization": f"bearer {client_key}"},
            "two spaces": {"Authorization": f"Bearer  {client_key}"},
            "no scheme": {"Authorization": client_key},
            "client": {"Authorization": f"Bearer {client_key}"},
            "admin": {"Authorization": f"Bearer {admin_key}"},
        }
        for how, headers in tries.items():
            status = client.request(method, path, headers=headers).status_code
            answers.append({"path": route.path, "method": method, "how": how, "status": status})
        for how, (verb, target) in {
            "query": (method, f"{path}?api_key={client_key}"),
            "OPTIONS": ("OPTIONS", path),
            "HEAD": ("HEAD", path),
        }.items():
            status = client.request(verb, target, headers={"Origin": "https://elsewhere.example"}).status_code
            answers.append({"path": route.path, "method": verb, "how": how, "status": status})
    stack = [middleware.cls.__name__ for middleware in app.user_middleware]
    print(json.dumps({"middleware": stack, "answers": answers}))


if __name__ == "__main__":
    main()
