"""Contract tests: the argv we build, parsed by each engine's own parser at the pinned version.

A matrix of settings (engine x model x GPUs x quantization x speculative x API
key x EXTRA_ARGS x other options) is planned in-process; every resulting argv
is parsed by the real sglang / vLLM parser in its own environment (one process
per engine), and the parsed values are compared with the plan, so a flag that
is rejected, misspelt or lands on the wrong option fails here.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

import pytest

from entrypoint import launch, redact
from entrypoint.engines import ENGINES
from entrypoint.errors import EntrypointError, RemovedFlagError
from tests.support.paths import TESTS
from tests.support.planning import plan_env

pytestmark = pytest.mark.engines

MODELS = [
    "Llama-3.1-8B-Instruct",
    "Qwen3-30B-A3B",
    "DeepSeek-V2-Lite-Chat",
    "Qwen2.5-7B-Instruct-AWQ",
    "Mixtral-8x7B-Instruct-v0.1",
]
ACCELERATORS = ["H100:1", "H100:8", "A100-80GB:4", "A100:3"]  # A100:3: Mixtral as three pipeline stages
QUANTIZATION = [None, "fp8"]
SPECULATIVE = [None, ("eagle3", "draft"), ("ngram", None), ("EAGLE", "draft")]
API_KEYS = [None, "sk-contract-0123456789"]
EXTRA_ARGS = {
    "sglang": ["", "--max-running-requests 64 --chunked-prefill-size 4096"],
    "vllm": ["", "--max-num-seqs 64 --enable-prefix-caching"],
}
OPTIONS = [
    {},
    {
        "TRUST_REMOTE_CODE": "true",
        "HF_REVISION": "v1.0",
        "SERVED_MODEL_NAME": "chat",
        "SPEC_NUM_TOKENS": "4",
        "PORT": "9000",
        "MAX_MODEL_LEN": "4096",
        "MEM_FRACTION": "0.9",
        "KV_CACHE_DTYPE": "fp8",
        # Any readable file will do for parsing; the end-to-end test serves a real certificate.
        "TLS_CERT_FILE": __file__,
        "TLS_KEY_FILE": __file__,
        "LOG_REQUESTS": "true",
        "SHUTDOWN_TIMEOUT": "45",
    },
]


def matrix(engine: str, models) -> list[tuple[dict, object, object]]:
    """Every combination as (env, plan, command); combinations the planner refuses are left out."""
    cases = []
    refused = 0
    for name, accel, quant, spec, key, extra, options in itertools.product(
        MODELS, ACCELERATORS, QUANTIZATION, SPECULATIVE, API_KEYS, EXTRA_ARGS[engine], OPTIONS
    ):
        env = {"TARGET_MODEL": str(models(name)), "ENGINE": engine, "ACCELERATORS": accel, **options}
        if quant:
            env["QUANTIZATION"] = quant
        if spec:
            env.update(SPEC_ENABLED="true", SPEC_METHOD=spec[0])
            if spec[1]:
                env["SPEC_DRAFT_MODEL"] = str(models("Llama-3.1-8B-Instruct"))
        if key:
            env["API_KEY"] = key
        if extra:
            env["EXTRA_ARGS"] = extra
        try:
            settings, plan = plan_env(env)
        except EntrypointError:
            refused += 1  # e.g. fp8 over an AWQ checkpoint, or 4096 tokens that do not fit
            continue
        command = launch.engine_command(ENGINES[engine], settings, plan, python="python3")
        cases.append((env, plan, command))
    assert refused < len(cases), "the matrix should mostly plan"
    return cases


def expected_sglang(env: dict, plan) -> dict:
    spec = plan.speculative
    expected = {
        "model_path": env["TARGET_MODEL"],
        "served_model_name": env.get("SERVED_MODEL_NAME") or Path(env["TARGET_MODEL"]).name,
        "host": "0.0.0.0",
        "port": int(env.get("PORT", 8000)),
        "tp_size": plan.tp,
        "pp_size": plan.pp,
        "dp_size": plan.dp,
        "ep_size": plan.ep,
        "context_length": plan.max_model_len,
        "dtype": plan.dtype,
        "kv_cache_dtype": {"auto": "auto", "fp8": "fp8_e4m3"}[plan.kv_cache_dtype],
        # Unset: not passed, so sglang's parser leaves it None and resolves its own (test below).
        "mem_fraction_static": float(env["MEM_FRACTION"]) if "MEM_FRACTION" in env else None,
        "quantization": env.get("QUANTIZATION"),
        "revision": env.get("HF_REVISION"),
        "trust_remote_code": env.get("TRUST_REMOTE_CODE") == "true",
        "api_key": None,  # never on argv: the launcher sets it from the environment (engines/sglang_server.py)
        "enable_metrics": True,
        "ssl_certfile": env.get("TLS_CERT_FILE"),
        "ssl_keyfile": env.get("TLS_KEY_FILE"),
        "log_requests": env.get("LOG_REQUESTS") == "true",
        "speculative_algorithm": {"eagle3": "EAGLE3", "eagle": "EAGLE", "ngram": "NGRAM"}[spec.method]
        if spec
        else None,
        "speculative_draft_model_path": spec.draft_model if spec else None,
    }
    if spec and spec.num_tokens:
        expected.update(
            speculative_num_steps=spec.num_tokens,
            speculative_eagle_topk=1,
            speculative_num_draft_tokens=spec.num_tokens + 1,
        )
    if env.get("EXTRA_ARGS"):
        expected.update(max_running_requests=64, chunked_prefill_size=4096)
    return expected


def expected_vllm(env: dict, plan) -> dict:
    spec = plan.speculative
    spec_config = None
    if spec:
        spec_config = {"method": spec.method, "num_speculative_tokens": spec.num_tokens or 3}
        if spec.draft_model:
            spec_config["model"] = spec.draft_model
    expected = {
        "model": env["TARGET_MODEL"],
        "served_model_name": [env.get("SERVED_MODEL_NAME") or Path(env["TARGET_MODEL"]).name],
        "host": "0.0.0.0",
        "port": int(env.get("PORT", 8000)),
        "tensor_parallel_size": plan.tp,
        "pipeline_parallel_size": plan.pp,
        "data_parallel_size": plan.dp,
        "enable_expert_parallel": plan.ep > 1,
        "max_model_len": plan.max_model_len,
        "dtype": plan.dtype,
        "kv_cache_dtype": plan.kv_cache_dtype,
        # Unset: not passed, and the parser's own default is the 0.92 the plan used.
        "gpu_memory_utilization": plan.mem_fraction,
        "quantization": env.get("QUANTIZATION"),
        "revision": env.get("HF_REVISION"),
        "trust_remote_code": env.get("TRUST_REMOTE_CODE") == "true",
        "api_key": None,  # never on argv: VLLM_API_KEY in the child's environment
        "speculative_config": spec_config,
        "ssl_certfile": env.get("TLS_CERT_FILE"),
        "ssl_keyfile": env.get("TLS_KEY_FILE"),
        "enable_log_requests": env.get("LOG_REQUESTS") == "true",
        "shutdown_timeout": int(env.get("SHUTDOWN_TIMEOUT", 30)),
    }
    if env.get("EXTRA_ARGS"):
        expected.update(max_num_seqs=64, enable_prefix_caching=True)
    return expected


EXPECTED = {"sglang": expected_sglang, "vllm": expected_vllm}


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_every_argv_in_the_matrix_parses_to_the_plan(engine, engine_parser, models):
    cases = matrix(engine, models)
    argvs = [list(command.argv[3:]) for _, _, command in cases]  # drop `python3 -m <module>`
    parsed = engine_parser(engine, argvs)
    rejected = [
        (" ".join(argv), result["error"])
        for argv, result in zip(argvs, parsed["results"], strict=True)
        if not result["ok"]
    ]
    assert not rejected, f"{len(rejected)} of {len(argvs)} rejected by {engine}, e.g. {rejected[:3]}"
    for (env, plan, command), result in zip(cases, parsed["results"], strict=True):
        expected = EXPECTED[engine](env, plan)
        got = {key: result["args"][key] for key in expected}
        assert got == expected, " ".join(command.argv)
        key_variable = {"vllm": "VLLM_API_KEY", "sglang": "INFERENCE_ENDPOINT_SGLANG_API_KEY"}[engine]
        assert command.env.get(key_variable) == env.get("API_KEY")
    print(f"{engine}: {len(cases)} argv combinations parsed by {engine} {parsed['facts']['version']}")
    # Enough variety that every branch of the builder ran.
    assert {plan.ep > 1 for _, plan, _ in cases} == {True, False}
    assert {plan.dp > 1 for _, plan, _ in cases} == {True, False}
    assert {bool(plan.speculative) for _, plan, _ in cases} == {True, False}
    assert {plan.pp > 1 for _, plan, _ in cases} == {True, False}


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_removed_flags_are_refused_by_us_and_by_the_engine(engine, engine_parser):
    """Our table of removed flags is true of the pinned engine: its parser rejects each one too."""
    flags = sorted(ENGINES[engine].removed_flags)
    model_flag = {"sglang": "--model-path", "vllm": "--model"}[engine]
    argvs = [[model_flag, "m", *tail] for flag in flags for tail in ([flag], [flag, "1"])]
    parsed = engine_parser(engine, argvs)
    accepted = [" ".join(argv[2:]) for argv, result in zip(argvs, parsed["results"], strict=True) if result["ok"]]
    assert not accepted, f"{engine} still accepts: {accepted}"
    for flag in flags:
        with pytest.raises(RemovedFlagError, match=flag):
            launch.check_removed_flags(ENGINES[engine], ["--port", "1", f"{flag}=1"], "EXTRA_ARGS")


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_our_engine_vocabulary_matches_the_engine(engine, engine_parser):
    facts = engine_parser(engine, [])["facts"]
    ours = ENGINES[engine]
    assert sorted(ours.quantization_methods) == facts["quantization"]
    assert not set(ours.removed_quantization) & set(facts["quantization"])
    if engine == "sglang":
        known = set(facts["speculative_algorithms"]) | {"NEXTN"}  # NEXTN resolves to EAGLE in from_string
    else:
        known = set(facts["speculative_methods"])
    assert set(ours.speculative_methods.values()) <= known


def test_sglang_key_guards_v1_but_not_probes(engine_parser):
    """sglang is not started here, so its own auth decision answers: with --api-key (which the contract
    matrix above passes whenever API_KEY is set), /health and /metrics need no key and /v1 does."""
    auth = engine_parser("sglang", [])["facts"]["auth"]
    assert auth == {
        "/health": {"without key": True, "with key": True},
        "/metrics": {"without key": True, "with key": True},
        "/v1/models": {"without key": False, "with key": True},
        "/v1/chat/completions": {"without key": False, "with key": True},
    }


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_secret_flags_in_every_spelling_the_engine_takes(engine, engine_parser):
    """Our secret flags exist in the pinned engine; the flags of its own that are prefixes of a secret flag are
    exactly `not_abbreviations`; and each spelling we hide (underscores, unique prefixes) is one the engine
    really takes as the secret flag, or rejects."""
    ours = ENGINES[engine]
    facts = engine_parser(engine, [])["facts"]
    options = set(facts["options"])
    assert ours.secret_flags <= options
    prefixes = {
        option for option in options for flag in ours.secret_flags if flag != option and flag.startswith(option)
    }
    assert prefixes == ours.not_abbreviations
    model_flag = {"sglang": "--model-path", "vllm": "--model"}[engine]
    spellings = ["--api-key", "--api_key", "--api-ke", "--api-k"]
    parsed = engine_parser(engine, [[model_flag, "m", spelling, "sk-0123456789abcdef"] for spelling in spellings])
    for spelling, result in zip(spellings, parsed["results"], strict=True):
        assert redact.secret_flag(spelling, ours.secret_flags, ours.not_abbreviations) == "--api-key"
        if result["ok"]:  # taken: then as the key, which is why we hide it
            assert result["args"]["api_key"] in ("sk-0123456789abcdef", ["sk-0123456789abcdef"]), spelling


# (fixture model, GPU, TP, PP): the automatic --mem-fraction-static as sglang resolves it, against ours.
SGLANG_MEMORY = [
    ("Llama-3.1-8B-Instruct", "H100", 1, 1),
    ("Llama-3.1-8B-Instruct", "H100", 8, 1),
    ("Llama-3.1-8B-Instruct", "L4", 1, 1),
    ("Llama-3.1-8B-Instruct", "T4", 1, 1),
    ("Llama-3.1-8B-Instruct", "A100", 2, 1),
    ("Llama-3.1-70B-Instruct", "H200", 8, 1),
    ("Llama-3.1-70B-Instruct", "B200", 4, 2),  # pipeline stages: no prefill graphs
    ("Llama-3.1-70B-Instruct", "A10G", 4, 1),
    ("DeepSeek-V2-Lite-Chat", "A100-80GB", 2, 1),  # MLA: its own prefill-graph reserve
    ("DeepSeek-V3", "H200", 8, 1),
]


def test_sglangs_own_memory_fraction_is_what_the_plan_uses(engine_envs, models):
    """sglang resolves --mem-fraction-static itself when none is given (arg_groups/memory_hook.py); its own
    resolution, run with each GPU's memory (tests/engines/sglang_memory.py), gives the fraction we plan with."""
    import json

    from entrypoint.engines.sglang import auto_mem_fraction
    from entrypoint.hardware.catalog import lookup

    cases = [
        {"model": str(models(name)), "gpu_mib": lookup(gpu).memory_mib, "tp": tp, "pp": pp}
        for name, gpu, tp, pp in SGLANG_MEMORY
    ]
    result = subprocess.run(
        [str(engine_envs["sglang"] / "bin" / "python"), str(TESTS / "engines" / "sglang_memory.py"), json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": os.environ["PATH"], "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    resolved = json.loads(result.stdout.splitlines()[-1])
    for (name, gpu, tp, pp), case, theirs in zip(SGLANG_MEMORY, cases, resolved, strict=True):
        mla = name.startswith("DeepSeek")
        ours = auto_mem_fraction(case["gpu_mib"], tp, pp, mla)
        assert ours == theirs["mem_fraction_static"], (name, gpu, tp, pp, theirs)
