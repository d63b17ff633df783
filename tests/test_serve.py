"""`python -m entrypoint` serving, against stand-in engines on PYTHONPATH (tests/fake_engines).

The real engines are exercised by test_contract.py (parsers) and
test_endpoint_cpu.py (a real vLLM server); these tests pin down what the
entrypoint itself does: exec (same pid), argv order, the child's environment,
exit codes, container arguments and secrets.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

from tests.support.cli import clean_env, report, run_cli, start_cli

API_KEY = "sk-serve-test-9f8e7d"
HF_TOKEN = "hf_serveTestToken12345"


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_serve_execs_the_engine_in_place(serve_env, engine):
    env = serve_env(engine)
    process = start_cli(env)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    started = report(env)
    assert started["pid"] == process.pid  # exec: the engine is the process the container started
    assert started["executable"] == sys.executable
    assert started["module"] == {"vllm": "vllm.entrypoints.openai.api_server", "sglang": "sglang.launch_server"}[engine]
    launched = {"vllm": "vllm.entrypoints.openai.api_server", "sglang": "entrypoint.engines.sglang_server"}[engine]
    assert started["cmdline"][:3] == [sys.executable, "-m", launched]
    assert "exec: " in stderr and "TP=1" in stderr and "auth: off" in stderr
    assert f"fake {started['module']} started" in stdout


def test_flags_given_to_the_container_come_last(serve_env):
    env = serve_env(EXTRA_ARGS="--max-num-seqs 16")
    result = run_cli(["--max-num-seqs", "8", "--enable-prefix-caching"], env)
    assert result.returncode == 0, result.stderr
    argv = report(env)["argv"]
    assert argv[-5:] == ["--max-num-seqs", "16", "--max-num-seqs", "8", "--enable-prefix-caching"]
    assert run_cli(["serve", "--max-num-seqs", "4"], env).returncode == 0
    assert report(env)["argv"][-2:] == ["--max-num-seqs", "4"]


def test_other_container_commands_run_unchanged(serve_env):
    env = serve_env()
    result = run_cli(["echo", "hi", "--there"], env)
    assert (result.returncode, result.stdout) == (0, "hi --there\n")
    missing = run_cli(["no-such-program"], env)
    assert missing.returncode == 127
    assert missing.stderr.startswith("error: cannot run 'no-such-program'")


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_secrets_reach_the_engine_only_in_its_own_form(serve_env, tmp_path, engine):
    token_file = tmp_path / "hf_token"
    token_file.write_text(HF_TOKEN + "\n")
    env = serve_env(engine, API_KEY=API_KEY, HF_TOKEN_FILE=str(token_file), DEBUG="1")
    result = run_cli([], env)
    assert result.returncode == 0, result.stderr
    started = report(env)
    child_env = started["env"]
    assert "API_KEY" not in child_env and "HF_TOKEN_FILE" not in child_env
    assert child_env["HF_TOKEN"] == HF_TOKEN  # huggingface_hub in the engine reads it
    # No process's command line holds the key (what `ps` shows); each engine gets it its own way.
    assert not any(API_KEY in arg for arg in started["cmdline"]), started["cmdline"]
    if engine == "vllm":
        assert child_env["VLLM_API_KEY"] == API_KEY
    else:
        # Our launcher took it out of the environment (sglang's children inherit none) and set it on the
        # arguments sglang serves with.
        assert started["server_args_api_key"] == API_KEY
        assert not any(API_KEY in value for value in child_env.values())
    output = result.stdout + result.stderr
    assert API_KEY not in output and HF_TOKEN not in output
    assert "auth: on" in result.stderr


ADMIN_KEY = "sk-serve-admin-0123456789"


@pytest.mark.parametrize("admin", [None, ADMIN_KEY])
@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_the_guard_is_in_front_of_every_route_with_the_keys(serve_env, engine, admin):
    """vLLM gets our guard as its outermost --middleware and reads the keys from its environment; our sglang
    launcher adds it to sglang's app with the keys sglang parsed. Neither key is on any command line or in the
    output, and sglang's children inherit neither."""
    env = serve_env(engine, API_KEY="sk-serve-test-0123456789", **({"ADMIN_API_KEY": admin} if admin else {}))
    result = run_cli([], env)
    assert result.returncode == 0, result.stderr
    started = report(env)
    child_env = started["env"]
    assert "ADMIN_API_KEY" not in child_env
    if engine == "vllm":
        argv = started["argv"]
        assert argv[argv.index("--middleware") + 1] == "entrypoint.engines.guard.Guard"
        assert child_env["INFERENCE_ENDPOINT_GUARD"] == "vllm@0.32.0"
        assert child_env.get("INFERENCE_ENDPOINT_ADMIN_API_KEY") == admin
    else:
        guard = [
            "entrypoint.engines.guard.Guard",
            {
                "engine": "sglang@0.5.23",
                "client_key": "sk-serve-test-0123456789",
                "admin_key": admin,
                "admin_as_client": False,
            },
        ]
        assert started["middlewares"] == [guard]
        assert started["server_args_admin_api_key"] == admin
        assert not {"INFERENCE_ENDPOINT_ADMIN_API_KEY", "INFERENCE_ENDPOINT_GUARD"} & set(child_env)
    assert not any(admin in arg for arg in started["cmdline"]) if admin else True
    assert (admin or "sk-serve-test-0123456789") not in result.stdout + result.stderr
    closed = "the routes that change the server " + ("need ADMIN_API_KEY" if admin else "closed")
    assert closed in result.stderr


@pytest.mark.parametrize(
    ("setting", "key", "serves"),
    [
        ({}, None, True),  # a workstation: a key is up to you
        ({"SKYPILOT_TASK_ID": "sky-2026-11-27_llm_1"}, None, False),  # SkyPilot's open port: the default requires one
        ({"SKYPILOT_TASK_ID": "sky-2026-11-27_llm_1"}, API_KEY, True),
        ({"SKYPILOT_TASK_ID": "sky-2026-11-27_llm_1", "REQUIRE_API_KEY": "false"}, None, True),  # opted out
        ({"REQUIRE_API_KEY": "true"}, None, False),
        ({"REQUIRE_API_KEY": "auto"}, None, True),
    ],
)
def test_api_key_policy(serve_env, setting, key, serves):
    env = serve_env("vllm", **setting, **({"API_KEY": key} if key else {}))
    result = run_cli([], env)
    if serves:
        assert result.returncode == 0, result.stderr
        assert ("auth: on" if key else "auth: off") in result.stderr
    else:
        assert result.returncode == 11, result.stderr
        assert result.stderr.startswith("error: API_KEY is not set, and ") and "REQUIRE_API_KEY=false" in result.stderr
        assert "Traceback" not in result.stderr


def test_engine_exit_code_is_the_containers(serve_env):
    env = serve_env(FAKE_ENGINE_EXIT="3", API_KEY=API_KEY)
    result = run_cli([], env)
    assert result.returncode == 3
    assert "start-up failed" in result.stderr and "exec: " in result.stderr
    assert API_KEY not in result.stdout + result.stderr


def test_sigterm_reaches_the_engine_directly(serve_env):
    env = serve_env(FAKE_ENGINE_SLEEP="60")
    process = start_cli(env)
    deadline = time.monotonic() + 30
    while not os.path.exists(env["FAKE_ENGINE_REPORT"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=10)
    assert process.returncode == -signal.SIGTERM  # the engine got it, not a wrapper


@pytest.mark.parametrize(
    ("engine", "flag", "replacement"),
    [
        ("vllm", "--disable-log-requests", "request logging is off by default"),
        ("vllm", "--speculative_model=x", "SPEC_DRAFT_MODEL"),
        ("sglang", "--enable-ep-moe", "--ep-size"),
        ("sglang", "--torchao-config int4wo-128", "QUANTIZATION=fp8"),
    ],
)
def test_removed_flags_are_caught_before_exec(serve_env, engine, flag, replacement):
    env = serve_env(engine, EXTRA_ARGS=flag)
    result = run_cli([], env)
    assert result.returncode == 14
    assert replacement in result.stderr and result.stderr.count("\n") == 1
    assert not os.path.exists(env["FAKE_ENGINE_REPORT"])
    from_container = run_cli(flag.split(), serve_env(engine))
    assert from_container.returncode == 14 and "the container arguments" in from_container.stderr


def test_missing_engine_is_said_before_planning(tmp_path, models):
    env = clean_env(tmp_path, TARGET_MODEL="/nonexistent/model", ENGINE="sglang", ACCELERATORS="H100:1")
    result = run_cli([], env)  # the test venv has no sglang
    assert result.returncode == 50
    assert "sglang package is not installed" in result.stderr and "Dockerfile.sglang" in result.stderr


def test_vanished_model_folder(serve_env):
    result = run_cli([], serve_env(TARGET_MODEL="/models/gone"))
    assert result.returncode == 30
    assert "TARGET_MODEL=/models/gone" in result.stderr


def test_unbalanced_extra_args_quote(serve_env):
    result = run_cli([], serve_env(EXTRA_ARGS="--chat-template 'oops"))
    assert result.returncode == 10 and "EXTRA_ARGS" in result.stderr


def test_plan_json_shows_the_argv_without_secrets(serve_env):
    env = serve_env("sglang", API_KEY=API_KEY)
    result = run_cli(["plan", "--json"], env)
    plan = json.loads(result.stdout)
    assert "--api-key" not in plan["argv"]  # the launcher sets it from the environment
    assert plan["engine_env"] == {
        "INFERENCE_ENDPOINT_SGLANG_API_KEY": "***",
        "INFERENCE_ENDPOINT_GUARD": "sglang@0.5.23",
    }
    assert API_KEY not in result.stdout
    vllm = json.loads(run_cli(["plan", "--json"], serve_env("vllm", API_KEY=API_KEY)).stdout)
    assert vllm["engine_env"] == {"VLLM_API_KEY": "***", "INFERENCE_ENDPOINT_GUARD": "vllm@0.32.0"}


def test_health_command(serve_env, httpserver):
    httpserver.expect_request("/health").respond_with_data("", status=200)
    env = serve_env(PORT=str(httpserver.port))
    assert run_cli(["health"], env).returncode == 0
    httpserver.clear()
    httpserver.expect_request("/health").respond_with_data("", status=503)
    assert run_cli(["health"], env).returncode == 1


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
@pytest.mark.parametrize(
    ("extra", "flag"),
    [("--port 9000", "--port"), ("--port=9000", "--port"), ("--host 127.0.0.1", "--host"), ("--host=::", "--host")],
)
def test_listen_flags_belong_to_settings(serve_env, engine, extra, flag):
    result = run_cli(["plan"], serve_env(engine, EXTRA_ARGS=extra))
    assert result.returncode == 10
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: EXTRA_ARGS has {flag}, but where the server listens is a setting")
    container = run_cli(extra.replace("=", " ").split(), serve_env(engine))
    assert container.returncode == 10 and "the container arguments has" in container.stderr


@pytest.mark.parametrize(
    ("engine", "extra", "flag"),
    [("vllm", "--max-model-len 2048", "--max-model-len"), ("sglang", "--context-length=2048", "--context-length")],
)
def test_repeating_a_planned_flag_warns(serve_env, engine, extra, flag):
    result = run_cli(["plan", "--json"], serve_env(engine, EXTRA_ARGS=extra))
    assert result.returncode == 0, result.stderr
    assert f"warning: EXTRA_ARGS or the container arguments set {flag} again" in result.stderr
    quiet = run_cli(["plan", "--json"], serve_env(engine, EXTRA_ARGS="--enable-metrics" if engine == "vllm" else ""))
    assert "set --" not in quiet.stderr


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_an_inline_chat_template_is_written_where_only_we_can_write(serve_env, tmp_path, engine):
    """A shared TMPDIR: a file planted where the template once went (a name from its hash) decided it. Now
    each start writes into a folder mkdtemp creates afresh (0700), and `plan` writes nothing at all."""
    import hashlib

    template = "{% for m in messages %}{{ m.content }}{% endfor %}"
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    planted = shared / f"inference-endpoint-chat-template-{hashlib.sha256(template.encode()).hexdigest()[:16]}.jinja"
    planted.write_text("{{ 'owned' }}")
    env = serve_env(engine, CHAT_TEMPLATE=template, TMPDIR=str(shared))
    planned = run_cli(["plan", "--json"], env)
    assert planned.returncode == 0, planned.stderr
    shown = json.loads(planned.stdout)["argv"]
    assert shown[shown.index("--chat-template") + 1] == f"{shared}/inference-endpoint-XXXXXXXX/chat-template.jinja"
    assert sorted(path.name for path in shared.iterdir()) == [planted.name]  # plan wrote nothing
    served = run_cli([], env)
    assert served.returncode == 0, served.stderr
    argv = report(env)["argv"]
    given = argv[argv.index("--chat-template") + 1]
    folder = os.path.dirname(given)
    assert os.path.dirname(folder) == str(shared) and given != str(planted)
    assert open(given).read() == template  # noqa: SIM115 (read once)
    assert os.stat(folder).st_mode & 0o777 == 0o700 and os.stat(given).st_mode & 0o777 == 0o600


def test_serving_with_stdout_closed_still_starts_the_engine(serve_env):
    """Our log is stderr: a container started with stdout closed serves, rather than ending as a bug (70)."""
    import subprocess

    from tests.support.paths import ROOT

    env = serve_env()
    result = subprocess.run(
        f"{sys.executable} -m entrypoint >&-", shell=True, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert report(env)["module"] == "vllm.entrypoints.openai.api_server"
