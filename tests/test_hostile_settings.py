"""Every setting given values people and attackers give: each is refused with a documented code and one line
that names the variable, never a traceback, a secret or a raw control character (tests/support/hostile.py).

The table has a row for every setting of `entrypoint.settings.SETTINGS` (a test keeps it so), so a new
setting cannot arrive without its hostile values.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from entrypoint.settings import SETTINGS
from tests.support.hostile import refused, run_process

ESC = "\x1b[2J"
FIFO = "<FIFO>"  # replaced by a FIFO made for the case: opening one for reading blocks until a writer comes
TWO_NODES = {"SKYPILOT_NUM_NODES": "2", "SKYPILOT_NODE_IPS": "10.0.0.1\n10.0.0.2"}

# setting -> [(value, other settings, exit code, text the line must hold)]
BAD: dict[str, list[tuple[str, dict[str, str], int, str]]] = {
    "TARGET_MODEL": [
        (" ", {}, 11, "is not set"),
        ("/models/no-such-folder", {}, 30, "is not a folder"),
        ("not a repo id!", {}, 30, "neither a folder nor a Hub repo id"),
        (f"/models/{ESC}", {}, 10, "control character"),
    ],
    "ACCELERATORS": [
        ("H100:0", {}, 10, "from 1 to 16"),
        ("H100:17", {}, 10, "from 1 to 16"),
        ("H100:99999999999", {}, 10, "from 1 to 16"),
        ("H100:-1", {}, 10, "whole number"),
        ("H100:1.5", {}, 10, "whole number"),
        ("H100:four", {}, 10, "whole number"),
        (":4", {}, 10, "NAME[:COUNT]"),
        ("cpu:64", {}, 10, "takes no count"),
        ("H100:4:2", {}, 10, "whole number"),
        ("TPU-v5:8", {}, 12, "unknown GPU"),
        ("MI300X:8", {}, 13, "AMD GPU"),
        ("cpu", {"ENGINE": "sglang"}, 13, "not supported with ENGINE=sglang"),
        (f"H100{ESC}", {}, 10, "control character"),
    ],
    "ENGINE": [
        ("tgi", {}, 10, "one of"),
        ("vllm2", {}, 10, "one of"),
        ("sglang;rm -rf /", {}, 10, "one of"),
        (ESC, {}, 10, "control character"),
    ],
    "SERVED_MODEL_NAME": [
        (f"tiny{ESC}", {}, 10, "control character"),
        ("a\x07b", {}, 10, "control character"),
        ("tiny\nINFO: auth off", {}, 10, "spans lines"),  # a forged log line
        ("tiny\rINFO", {}, 10, "spans lines"),
    ],
    "PORT": [
        ("0", {}, 10, "between 1 and 65535"),
        ("65536", {}, 10, "between 1 and 65535"),
        ("-1", {}, 10, "between 1 and 65535"),
        ("80.5", {}, 10, "plain integer"),
        ("8O00", {}, 10, "plain integer"),
        ("1e3", {}, 10, "plain integer"),
        ("9" * 30, {}, 10, "between 1 and 65535"),
        ("8000", {"METRICS_PORT": "8000"}, 10, "same port as PORT"),
    ],
    "MAX_MODEL_LEN": [
        ("0", {}, 10, "between"),
        ("-5", {}, 10, "between"),
        ("32k", {}, 10, "plain integer"),
        ("10000000", {}, 10, "longer than the model's maximum"),
    ],
    "TYPICAL_REQUEST_TOKENS": [("0", {}, 10, "between"), ("4k", {}, 10, "plain integer")],
    "OPTIMIZE": [("speed", {}, 10, "one of: throughput, latency"), ("max", {}, 10, "one of")],
    "DTYPE": [
        ("int8", {}, 10, "one of"),
        ("bf17", {}, 10, "one of"),
        ("bfloat16", {"ACCELERATORS": "T4:1"}, 13, "compute capability 8.0"),
    ],
    "TENSOR_PARALLEL_SIZE": [
        ("0", {}, 10, "between"),
        ("3", {"ACCELERATORS": "H100:4"}, 10, "does not suit the model's 32 attention heads"),
        ("8", {"ACCELERATORS": "H100:4"}, 10, "more than the 4 GPU(s) of one node"),
        ("2", {"ENGINE": "vllm", "ACCELERATORS": "cpu"}, 13, "on the CPU path"),
        ("two", {}, 10, "plain integer"),
    ],
    "PIPELINE_PARALLEL_SIZE": [
        ("0", {}, 10, "between"),
        ("33", {"ACCELERATORS": "H100:8"}, 10, "more than the model's 32 layers"),
        ("3", {"ACCELERATORS": "H100:2"}, 10, "needs 3 GPUs, and there are 2"),
        ("3", {"ACCELERATORS": "H100:8", **TWO_NODES}, 10, "does not split over SKYPILOT_NUM_NODES=2"),
    ],
    "DATA_PARALLEL_SIZE": [
        ("0", {}, 10, "between"),
        ("9", {"ACCELERATORS": "H100:8"}, 10, "needs 9 GPUs, and there are 8"),
        ("2", {"ACCELERATORS": "H100:8", "TENSOR_PARALLEL_SIZE": "8"}, 10, "needs 16 GPUs"),
    ],
    "EXPERT_PARALLEL": [("sometimes", {}, 10, "use auto, true or false"), ("true", {}, 13, "the model is dense")],
    "KV_CACHE_DTYPE": [
        ("fp4", {}, 10, "one of"),
        ("float16", {}, 13, "not a KV cache dtype of sglang"),  # sglang has no float16 cache
        ("bfloat16", {"ENGINE": "vllm", "ACCELERATORS": "cpu"}, 13, "CPU attention"),
        (ESC, {}, 10, "control character"),
    ],
    "TASK": [("embedding", {}, 10, "one of: auto, generate, embed"), (ESC, {}, 10, "control character")],
    "TOOL_CALL_PARSER": [
        ("not_a_parser", {}, 13, "is not a parser sglang has"),
        ("llama3_json", {}, 13, "use one of:"),  # vLLM's name, refused by sglang with sglang's names
        ("hermes;rm", {}, 10, "a parser name is letters"),
        ("qwen25", {"ENGINE": "vllm"}, 13, "is not a parser vllm has"),
    ],
    "REASONING_PARSER": [
        ("deepseek_r1", {}, 13, "is not a parser sglang has"),  # vLLM's spelling; sglang's is deepseek-r1
        ("deepseek-r1", {"ENGINE": "vllm"}, 13, "is not a parser vllm has"),
        ("$(reboot)", {}, 10, "a parser name is letters"),
    ],
    "LORA_MODULES": [
        ("sql", {}, 10, "name=folder-or-repo"),
        ("a=/x,a=/y", {}, 10, "the name a is given twice"),
        ("bad name=/x", {}, 10, "name=folder-or-repo"),
        ("x=/models/no-such-lora", {}, 30, "is not a folder"),
    ],
    "MAX_LORAS": [("0", {}, 10, "between"), ("two", {}, 10, "plain integer")],
    "MM_LIMIT": [
        ("images=4", {}, 10, "image, video, audio"),
        ("image=100", {}, 10, "0 to 64 each"),
        ("image=1,image=2", {}, 10, "image is given twice"),
        ("image=-1", {}, 10, "a list like image=4,video=1"),
    ],
    "CHAT_TEMPLATE": [
        ("/models/no-such-template.jinja", {}, 10, "cannot be read"),
        (FIFO, {}, 10, "is not a regular file (a FIFO)"),
        ("/dev/zero", {}, 10, "is not a regular file (a device)"),
        ("/etc", {}, 10, "is not a regular file (a folder)"),
    ],
    "QUANTIZATION": [
        ("nope", {}, 10, "is not a sglang quantization method"),
        ("awq", {}, 10, "needs a checkpoint quantized with awq"),
        ("gptq", {"ENGINE": "vllm"}, 10, "needs a checkpoint quantized with gptq"),
        ("fp8", {"ACCELERATORS": "T4:1"}, 13, "FP8 needs compute capability"),
        (ESC, {}, 10, "control character"),
    ],
    "MEM_FRACTION": [
        ("0", {}, 10, "greater than 0"),
        ("1.5", {}, 10, "at most 1"),
        ("-0.1", {}, 10, "greater than 0"),
        ("nan", {}, 10, "finite number"),
        ("inf", {}, 10, "finite number"),
        ("85%", {}, 10, "decimal number"),
        ("0,9", {}, 10, "decimal number"),
    ],
    "HF_TOKEN": [
        ("0", {}, 10, "shorter than 16 characters"),  # a typo: hidden first, it cut the API key when masked
        ("hf_abc", {}, 10, "shorter than 16 characters"),
        ("hf_abc def", {}, 10, "whitespace or control"),
        ("hf_abc\tdef", {}, 10, "whitespace or control"),
        (f"hf_abc{ESC}", {}, 10, "control character"),
    ],
    "HF_REVISION": [(f"main{ESC}", {}, 10, "control character"), ("main\nx", {}, 10, "spans lines")],
    "TRUST_REMOTE_CODE": [("maybe", {}, 10, "use true or false"), ("2", {}, 10, "use true or false")],
    "SPEC_ENABLED": [("yes please", {}, 10, "use true or false")],
    "SPEC_DRAFT_MODEL": [
        ("/models/no-such-draft", {"SPEC_ENABLED": "true"}, 30, "is not a folder"),
        (f"draft{ESC}", {"SPEC_ENABLED": "true"}, 10, "control character"),
    ],
    "SPEC_METHOD": [("medusa2", {"SPEC_ENABLED": "true"}, 10, "SPEC_METHOD")],
    "SPEC_NUM_TOKENS": [("0", {}, 10, "between 1 and 64"), ("65", {}, 10, "between 1 and 64"), ("x", {}, 10, "")],
    "API_KEY": [
        ("8000", {}, 10, "shorter than 16"),
        ("sk-0123456789 abcdef", {}, 10, "whitespace or control"),
        (f"sk-0123456789abcdef{ESC}", {}, 10, "control character"),
    ],
    "ADMIN_API_KEY": [
        ("adm1n-key", {}, 10, "shorter than 16"),
        ("sk-hostile-canary-0123456789abcdef", {}, 10, "ADMIN_API_KEY is the same as API_KEY"),
        ("sk-admin-0123456789 abcdef", {}, 10, "whitespace or control"),
    ],
    "REQUIRE_API_KEY": [("sometimes", {}, 10, "use auto, true or false")],
    "TLS_CERT_FILE": [
        ("/run/secrets/no-such.crt", {"TLS_KEY_FILE": "/etc/hostname"}, 10, "cannot be read"),
        (FIFO, {"TLS_KEY_FILE": "/etc/hostname"}, 10, "is not a regular file (a FIFO)"),
        ("/dev/zero", {"TLS_KEY_FILE": "/etc/hostname"}, 10, "is not a regular file (a device)"),
        ("/etc/hostname", {}, 10, "TLS_KEY_FILE is not"),
    ],
    "TLS_KEY_FILE": [
        ("/run/secrets/no-such.key", {"TLS_CERT_FILE": "/etc/hostname"}, 10, "cannot be read"),
        (FIFO, {"TLS_CERT_FILE": "/etc/hostname"}, 10, "is not a regular file (a FIFO)"),
        ("/etc/hostname", {}, 10, "TLS_CERT_FILE is not"),
    ],
    "LOG_REQUESTS": [("verbose", {}, 10, "use true or false")],
    "SHUTDOWN_TIMEOUT": [("-1", {}, 10, "between"), ("30s", {}, 10, "plain integer")],
    "IDLE_TIMEOUT_MIN": [("0", {}, 10, "greater than 0"), ("-3", {}, 10, "greater than 0"), ("soon", {}, 10, "")],
    "MAX_RUN_HOURS": [("0", {}, 10, "greater than 0"), ("inf", {}, 10, "finite number")],
    "METRICS_PORT": [("0", {}, 10, "between"), ("70000", {}, 10, "between")],
    "GPU_HOURLY_USD": [("-1", {}, 10, "must not be negative"), ("$2.49", {}, 10, "decimal number")],
    "EXTRA_ARGS": [
        ("--port 9000", {}, 10, "PORT"),
        ("--api-key abc", {}, 10, "a secret of 3 characters"),  # held to API_KEY's rules
        ("--admin-api-key=1234", {}, 10, "shorter than 16"),
        ("--uds /tmp/vllm.sock", {"ENGINE": "vllm"}, 10, "--uds"),
        ("--host=127.0.0.1", {}, 10, "--host"),
        ("--hos 127.0.0.1", {}, 10, "EXTRA_ARGS has --hos (= --host)"),  # argparse takes a unique prefix
        ("--por 9000", {"ENGINE": "vllm"}, 10, "EXTRA_ARGS has --por (= --port)"),
        ("--h 1", {"ENGINE": "vllm"}, 10, "it could be --help, --host"),  # ambiguous: the engine would refuse it
        ("--device cpu", {"ENGINE": "vllm"}, 14, "--device"),
        ("'--unbalanced", {}, 10, "EXTRA_ARGS"),
        (f"--enable-prefix-caching {ESC}", {}, 10, "control character"),
    ],
    "DEBUG": [("please", {}, 10, "use true or false")],
    "HF_HUB_OFFLINE": [("sometimes", {}, 10, "use true or false")],
    "PREFETCH": [("maybe", {}, 10, "use true or false")],
    "SKYPILOT_NUM_NODES": [
        ("0", {}, 10, "between"),
        ("-2", {}, 10, "between"),
        ("two", {}, 10, "plain integer"),
        ("2", {}, 10, "SKYPILOT_NODE_IPS lists 0"),
        (
            "2",
            {"ACCELERATORS": "cpu", "ENGINE": "vllm", "SKYPILOT_NODE_IPS": "10.0.0.1\n10.0.0.2"},
            13,
            "CPU path runs on one",
        ),
    ],
    "SKYPILOT_NODE_RANK": [("5", TWO_NODES, 10, "is not below SKYPILOT_NUM_NODES=2"), ("-1", {}, 10, "between")],
    "SKYPILOT_NODE_IPS": [
        (f"10.0.0.1{ESC}", TWO_NODES, 10, "control character"),
        ("$(reboot)\n10.0.0.2", TWO_NODES, 10, "'$(reboot)' is not an IP address"),  # reaches --dist-init-addr
        ("10.0.0.1\n-h", TWO_NODES, 10, "'-h' is not an IP address"),
        ("head-node\n10.0.0.2", TWO_NODES, 10, "is not an IP address"),
    ],
    "SKYPILOT_TASK_ID": [(f"sky-{ESC}", {}, 10, "control character")],
    "SKYPILOT_NUM_GPUS_PER_NODE": [("-1", {}, 10, "between"), ("eight", {}, 10, "plain integer")],
    "DIST_PORT": [("0", {}, 10, "between"), ("8000", TWO_NODES, 10, "same port as PORT")],
}

CASES = [
    pytest.param(name, value, other, code, text, id=f"{name}={value!r}")
    for name, rows in BAD.items()
    for value, other, code, text in rows
]


def test_every_setting_has_hostile_values():
    assert set(BAD) == {setting.name for setting in SETTINGS}


@pytest.mark.parametrize(("name", "value", "other", "code", "text"), CASES)
def test_a_hostile_setting_is_one_line_and_a_documented_code(models, tmp_path, name, value, other, code, text):
    if value == FIFO:
        value = str(tmp_path / "fifo")
        os.mkfifo(value)
    env = {"TARGET_MODEL": str(models("Llama-3.1-8B-Instruct")), "ACCELERATORS": "H100:1", **other, name: value}
    named = name if name not in {"TLS_CERT_FILE", "TLS_KEY_FILE"} else "TLS_"
    refused(env, code, named, text=text, with_debug=name != "DEBUG")


# Serving, as a separate process whose engine is the stand-in (conftest.serve_env): (container arguments,
# settings, exit code, what the line names). Each is refused before the engine starts.
SERVE = [
    ([], {"REQUIRE_API_KEY": "true", "API_KEY": ""}, 11, "API_KEY is not set, and REQUIRE_API_KEY=true"),
    ([], {"SKYPILOT_TASK_ID": "sky-1", "API_KEY": ""}, 11, "API_KEY is not set, and this runs under SkyPilot"),
    (["--port", "9000"], {}, 10, "PORT"),
    (["--host", "127.0.0.1"], {}, 10, "--host"),
    (["--hos", "0.0.0.0"], {}, 10, "the container arguments has --hos (= --host)"),
    (["--device", "cpu"], {}, 14, "--device"),
    (["--disable-log-requests"], {}, 14, "--disable-log-requests"),
    (["no-such-command"], {}, 127, "no-such-command"),
    (["plan", "--jsn"], {}, 2, "--jsn"),
    (["health", "--now"], {}, 2, "--now"),
    ([], {"METRICS_PORT": "8000", "MAX_RUN_HOURS": "1"}, 10, "METRICS_PORT=8000 is the same port as PORT"),
]


@pytest.mark.parametrize(("args", "other", "code", "text"), SERVE, ids=[" ".join(r[0]) or str(r[1]) for r in SERVE])
def test_a_hostile_start_is_refused_before_the_engine(serve_env, args, other, code, text):
    env = serve_env(**other)
    refused(env, code, text, args, runner=run_process)
    assert not Path(env["FAKE_ENGINE_REPORT"]).exists(), "the engine was started"
