"""Run inside an engine environment: every HTTP route the engine's server can register, as JSON on stdout.

usage:  python list_routes.py vllm              (in the vLLM environment)
        python list_routes.py sglang SITE_PACKAGES   (any Python: sglang's source is read, not imported)

vLLM: its own `build_app` (vllm/entrypoints/launchers/app.py) with arguments from its own parser, for every
configuration that attaches routers of its own: each task's routers, dev mode (VLLM_SERVER_DEV_MODE), adapters
loaded at run time (VLLM_ALLOW_RUNTIME_LORA_UPDATING), the profiler, fault tolerance, offline docs, tokens-only
scale-out, the tokenizer-info endpoint. build_app only registers routers and middlewares (the engine is
attached later, by init_app_state), so no engine starts. Prints [{"path", "methods"}] over all of them.

sglang: its app registers each route with a decorator on a module-level function of
sglang/srt/entrypoints/http_server.py (and of the routers it includes), and gives some an auth level with
`@auth_level(AuthLevel.X)`; importing the module needs CUDA-only packages, so it is read with `ast`. Prints
[{"path", "methods", "auth"}]; a path sglang takes from an environment variable is given as its default.
"""

from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path

# (environment, supported tasks, pooling task, num_labels, extra arguments): every router vLLM 0.32 can attach.
VLLM_SCENARIOS = [
    ({}, ("generate",), None, 0, []),
    ({"VLLM_SERVER_DEV_MODE": "1"}, ("generate",), None, 0, []),
    ({}, ("embed", "token_embed", "plugin"), "embed", 0, []),
    ({}, ("classify", "token_classify", "plugin"), "classify", 1, []),
    ({}, ("generate", "transcription", "realtime"), None, 0, []),
    ({}, ("render",), None, 0, []),
    (
        {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "1"},
        ("generate",),
        None,
        0,
        [
            "--profiler-config",
            '{"profiler": "torch", "torch_profiler_dir": "/tmp/prof"}',
            "--enable-fault-tolerance",
            "--enable-offline-docs",
            "--tokens-only",
            "--enable-tokenizer-info-endpoint",
        ],
    ),
]


def vllm_routes() -> list[dict]:
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    from starlette.routing import Mount, WebSocketRoute
    from vllm.entrypoints.launchers.app import build_app
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    found: dict[str, set[str]] = {}
    for environment, tasks, pooling, labels, extra in VLLM_SCENARIOS:
        saved = {name: os.environ.get(name) for name in environment}
        os.environ.update(environment)
        try:
            args = make_arg_parser(FlexibleArgumentParser()).parse_args(["model", *extra])
            app = build_app(args, tasks, _model_config(pooling, labels) if pooling else None)
        finally:
            for name, value in saved.items():
                os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
        for route in app.routes:
            if isinstance(route, Mount):
                methods = {"MOUNT"}
            elif isinstance(route, WebSocketRoute) or type(route).__name__ == "APIWebSocketRoute":
                methods = {"WEBSOCKET"}
            else:
                methods = set(getattr(route, "methods", None) or ())
            found.setdefault(route.path, set()).update(methods)
    return [{"path": path, "methods": sorted(methods)} for path, methods in sorted(found.items())]


def _model_config(task: str, labels: int) -> object:
    """What the pooling routers read of a model config (vllm/entrypoints/pooling/factories.py)."""

    class HfConfig:
        num_labels = labels

    class ModelConfig:
        hf_config = HfConfig()
        architecture = "Model"
        architectures = ("Model",)
        io_processor_plugin = None
        pooler_config = None

        def get_pooling_task(self, supported_tasks: object) -> str:
            return task

    return ModelConfig()


# ---------------------------------------------------------------- sglang, read with ast

VERBS = {"get", "post", "put", "delete", "patch", "head", "options", "api_route", "websocket"}


def sglang_routes(site: Path) -> list[dict]:
    server = site / "sglang" / "srt" / "entrypoints" / "http_server.py"
    tree = ast.parse(server.read_text())
    found = _decorated(tree, {"app"})
    for router in _included_routers(tree):
        module = site / Path(*router.split(".")).with_suffix(".py")
        found += _decorated(ast.parse(module.read_text()), {"router"})
    return found


def _included_routers(tree: ast.Module) -> list[str]:
    """The modules of `app.include_router(x)` calls, through their `from module import router as x`."""
    imported = {
        alias.asname or alias.name: node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    names = [
        node.args[0].id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "include_router"
        and node.args
        and isinstance(node.args[0], ast.Name)
    ]
    return [imported[name] for name in names if name in imported]


def _decorated(tree: ast.Module, owners: set[str]) -> list[dict]:
    routes = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        auth = "NORMAL"
        paths = []
        for decorator in node.decorator_list:
            if not isinstance(decorator, ast.Call):
                continue
            function = decorator.func
            if isinstance(function, ast.Name) and function.id == "auth_level":
                auth = ast.unparse(decorator.args[0]).rsplit(".", 1)[-1]
            elif (
                isinstance(function, ast.Attribute)
                and function.attr in VERBS
                and isinstance(function.value, ast.Name)
                and function.value.id in owners
            ):
                paths.append((_path(decorator.args[0]), _methods(function.attr, decorator)))
        routes += [{"path": path, "methods": methods, "auth": auth} for path, methods in paths if path]
    return routes


def _path(node: ast.expr) -> str | None:
    """A literal path, or the default of `os.environ.get(NAME, default)` (or of a name bound to one)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Call) and len(node.args) == 2:
        return _path(node.args[1])
    return None


def _methods(verb: str, decorator: ast.Call) -> list[str]:
    if verb == "websocket":
        return ["WEBSOCKET"]
    if verb != "api_route":
        return [verb.upper()]
    for keyword in decorator.keywords:
        if keyword.arg == "methods":
            return sorted(ast.literal_eval(keyword.value))
    return ["GET"]


if __name__ == "__main__":
    engine = sys.argv[1]
    routes = vllm_routes() if engine == "vllm" else sglang_routes(Path(sys.argv[2]))
    print(json.dumps(routes))
