"""SGLang: accepted values, sizing rules and the server's argv at the pinned version (0.5.23).

The server is started as `python3 -m entrypoint.engines.sglang_server`, our launcher, which runs sglang's own
`sglang.launch_server` code with the API key taken from the environment instead of argv (docs/adr/0014).
Not the `sglang` console script: some official images shipped without it (sglang issue #26897).
"""

from __future__ import annotations

import json

from ..units import GIB
from .base import (
    Command,
    DeviceUse,
    Engine,
    MemoryRules,
    MetricNames,
    ReserveTerms,
    ServeRequest,
    StartMark,
    chat_template_flags,
    guard_environment,
    kv_cache_dtype_flags,
    listen_flags,
    lora_flags,
    memory_flags,
    model_source_flags,
    tls_flags,
)

# argparse choices of --quantization in sglang 0.5.23 (server_args choices.py).
QUANTIZATION_METHODS = frozenset(
    {
        "awq",
        "fp8",
        "mxfp8",
        "gptq",
        "gptq_marlin",
        "awq_marlin",
        "bitsandbytes",
        "gguf",
        "modelopt",
        "modelopt_fp8",
        "modelopt_fp4",
        "nvfp4_online",
        "modelopt_mixed",
        "petit_nvfp4",
        "w8a8_int8",
        "w8a8_fp8",
        "moe_wna16",
        "w4afp8",
        "mxfp4",
        "auto-round",
        "auto-round-int8",
        "compressed-tensors",
        "modelslim",
        "mxfp_w4a8",
        "quark",
        "quark_int4fp8_moe",
        "quark_mxfp4",
        "mlx_q4",
        "mlx_q8",
        "unquant",
        "humming",
    }
)

REMOVED_QUANTIZATION = {
    "torchao": "sglang removed its torchao integration in 0.5.18; use fp8 (online) or an awq/gptq checkpoint, "
    "or ENGINE=vllm",
    "int4wo-128": "torchao options were removed from sglang in 0.5.18; use an awq or gptq checkpoint",
    "int8wo": "torchao options were removed from sglang in 0.5.18; use w8a8_int8 or fp8",
    "int8dq": "torchao options were removed from sglang in 0.5.18; use w8a8_int8",
    "fp8wo": "torchao options were removed from sglang in 0.5.18; use fp8",
    "marlin": "use gptq_marlin or awq_marlin (or leave QUANTIZATION unset for the checkpoint's own)",
    "int8": "use w8a8_int8",
}

# Bisected on sglang wheels: each flag is rejected by the pinned parser (tests/test_contract.py checks it);
# the version that removed it is from sglang's release notes and git history.
REMOVED_FLAGS = {
    "--enable-ep-moe": "nothing: the planner sets --ep-size for MoE models (removed in 0.5.5)",
    "--enable-deepep-moe": "--moe-a2a-backend deepep (removed in 0.5.5)",
    "--enable-flashinfer-cutlass-moe": "--moe-runner-backend flashinfer_cutlass (removed in 0.5.5)",
    "--enable-flashinfer-trtllm-moe": "--moe-runner-backend flashinfer_trtllm (removed in 0.5.5)",
    "--enable-triton-kernel-moe": "--moe-runner-backend triton_kernel (removed in 0.5.5)",
    "--enable-flashinfer-cutedsl-moe": "--moe-runner-backend flashinfer_cutedsl (removed in 0.5.5)",
    "--enable-double-sparsity": "nothing: removed in 0.5.11",
    "--ds-channel-config-path": "nothing: removed in 0.5.11",
    "--enable-nan-detection": "the environment variable SGLANG_SPEC_NAN_DETECTION=1 (removed in 0.5.13)",
    "--torchao-config": "QUANTIZATION=fp8 or an awq/gptq checkpoint (removed in 0.5.18)",
    "--cuda-graph-max-bs": "--cuda-graph-max-bs-decode / --cuda-graph-max-bs-prefill (removed in 0.5.20)",
    "--cuda-graph-bs": "--cuda-graph-bs-decode / --cuda-graph-bs-prefill (removed in 0.5.20)",
    "--enable-flashinfer-mla": "--attention-backend flashinfer",
    "--enable-flashmla": "--attention-backend flashmla",
    "--disable-flashinfer": "--attention-backend triton",
    "--disable-flashinfer-sampling": "--sampling-backend pytorch",
    "--enable-overlap-schedule": "nothing: overlap scheduling is on by default (--disable-overlap-schedule)",
    "--disable-mla": "--attention-backend ...",
}

# The launcher (engines/sglang_server.py) reads the key from here, so it is on no command line.
VERSION = "0.5.23"  # Dockerfile.sglang's ARG SGLANG_VERSION (tests/test_options.py)
API_KEY_VARIABLE = "INFERENCE_ENDPOINT_SGLANG_API_KEY"
LAUNCHER = "entrypoint.engines.sglang_server"
# ServerArgs fields whose values are secrets: sglang's start-up log shows them as ***, through the launcher.
SECRET_SERVER_ARGS = frozenset({"api_key", "admin_api_key", "ssl_keyfile_password"})

SPECULATIVE_METHODS = {
    "eagle": "EAGLE",
    "eagle3": "EAGLE3",
    "draft_model": "STANDALONE",
    "dflash": "DFLASH",
    "mtp": "NEXTN",
    "ngram": "NGRAM",
}


# KV_CACHE_DTYPE -> --kv-cache-dtype at 0.5.23 (server_args.py choices): no float16, and "fp8" alone is refused.
KV_CACHE_DTYPES = {
    "auto": "auto",
    "fp8": "fp8_e4m3",
    "fp8_e4m3": "fp8_e4m3",
    "fp8_e5m2": "fp8_e5m2",
    "bfloat16": "bfloat16",
}


# ---------------------------------------------------------------- memory (sglang 0.5.23, arg_groups/memory_hook.py)

# By GPU memory (MiB, as nvidia-smi reports it): (below this, chunked_prefill_size, decode CUDA-graph max batch
# at TP < 4, at TP >= 4). handle_gpu_memory_settings, "GPU-dependent capacity defaults".
_CAPACITY = (
    (20 * 1024, 2048, 8, 8),
    (35 * 1024, 4096, 48, 160),
    (60 * 1024, 4096, 32, 160),
    (90 * 1024, 8192, 256, 512),
    (160 * 1024, 8192, 256, 512),
    (float("inf"), 16384, 512, 512),
)
_MLA_PREFILL_GRAPH_TOKENS = 8192  # MLA caps prefill graph capture at 8192 tokens


def _prefill_graph_sizes(max_tokens: int) -> int:
    """How many prefill CUDA graphs sglang captures (cuda_graph_hook.generate_prefill_cuda_graph_batch_sizes)."""
    sizes = [
        *range(4, 33, 4),
        *range(48, 257, 16),
        *range(288, 513, 32),
        *range(576, 1025, 64),
        *range(1280, 4097, 256),
        *range(4608, max_tokens + 1, 512),
    ]
    return sum(1 for size in sizes if size <= max_tokens)


def auto_mem_fraction(gpu_mib: int, tp: int, pp: int, mla: bool) -> float:
    """The --mem-fraction-static sglang picks when none is given, on CUDA with its default graphs.

    reserved (MiB) = 512 + 1.5 x max(chunked prefill, 2048) + TP x PP / 8 x 1024 + 2 x decode max batch
    + prefill graphs (8 per captured size; 1536 for MLA; none with PP), at least 10 GiB on GPUs over 60 GiB;
    the fraction is round((memory - reserved) / memory, 3). Checked against sglang's own resolution in
    tests/test_contract.py.
    """
    chunk, small_tp_bs, large_tp_bs = next(row[1:] for row in _CAPACITY if gpu_mib < row[0])
    decode_max_bs = small_tp_bs if tp < 4 else large_tp_bs
    prefill_tokens = min(_MLA_PREFILL_GRAPH_TOKENS, chunk) if mla else chunk
    # Prefill graphs are off by default with pipeline stages (cuda_graph_hook, "PP prefill graph replay is
    # opt-in").
    prefill_graphs = 0 if pp > 1 else 1.5 * 1024 if mla else 8 * _prefill_graph_sizes(prefill_tokens)
    graphs = 2 * decode_max_bs + prefill_graphs
    reserved = 512 + 1.5 * max(chunk, 2048) + tp * pp / 8 * 1024 + graphs
    if gpu_mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    return round((gpu_mib - reserved) / gpu_mib, 3)


def _startup_bytes(use: DeviceUse) -> int:
    """GPU memory gone before sglang measures the free memory its fraction applies to ("Load weight begin.
    avail mem=..."), against nvidia-smi's total. Read from public start-up logs, three so far:
    - Llama-3.1-8B, one H100 (docs.sglang.ai/start/send_request.html, Jan 2025): avail mem=78.81 GB of
      81559 MiB = 79.65 GiB, so 0.84 GiB (the CUDA context);
    - QwQ-32B, TP=4 on PCIe L4s (didier-durand/llms-in-clouds docs/sglang.md, 0.4.3.post4): 21.63 of
      22.49 GiB, 0.86 GiB: no peer-to-peer buffers without NVLink;
    - Llama-3.3-70B, TP=8 on H200s (sgl-project/sglang#11716): "Init torch distributed ends. mem
      usage=1.96 GB", then 137.34 of 140.40 GiB: the context plus 1.96 GiB for NCCL and custom all-reduce.
    """
    context = int(0.85 * GIB)
    return context + (int(1.96 * GIB) if use.tp * use.pp > 1 and use.nvlink else 0)


# sglang/srt/function_call/parser_names.py TOOL_CALL_PARSER_NAMES and srt/parser/reasoning_parser_names.py
# REASONING_PARSER_NAMES at 0.5.23 (tests/test_contract.py compares them with the installed engine's).
TOOL_PARSERS = frozenset(
    [
        "apertus2509",
        "beam",
        "cohere_command4",
        "deepseekv3",
        "deepseekv31",
        "deepseekv32",
        "deepseekv4",
        "deepseekv41",
        "dots",
        "gemma4",
        "gigachat3",
        "gigachat35",
        "glm",
        "glm45",
        "glm47",
        "gpt-oss",
        "hermes",
        "hunyuan",
        "inkling",
        "interns1",
        "iquest_q1",
        "k2_horizon",
        "kimi_k2",
        "kimi_k3",
        "lfm2",
        "ling3",
        "llama3",
        "mimo",
        "minicpm5",
        "minimax-m2",
        "minimax-m3",
        "mistral",
        "muse",
        "nanbeige",
        "poolside_v1",
        "pythonic",
        "qwen",
        "qwen25",
        "qwen3_coder",
        "response_template",
        "spark25",
        "step3",
        "step3p5",
        "trinity",
    ]
)
REASONING_PARSERS = frozenset(
    [
        "apertus2509",
        "beam",
        "cohere_command4",
        "deepseek-r1",
        "deepseek-v3",
        "deepseek-v4",
        "deepseek-v41",
        "dots",
        "gemma4",
        "gigachat35",
        "glm45",
        "gpt-oss",
        "granite_thinking_parser",
        "hunyuan",
        "inkling",
        "interns1",
        "iquest_q1",
        "k2_horizon",
        "kimi",
        "kimi_k2",
        "kimi_k3",
        "ling3",
        "mimo",
        "minimax",
        "minimax-append-think",
        "minimax-m3",
        "mistral",
        "muse",
        "nanbeige",
        "nemotron_3",
        "poolside_v1",
        "qwen3",
        "qwen3-thinking",
        "response_template",
        "step3",
        "step3p5",
    ]
)


def _serving_flags(request: ServeRequest) -> list[str]:
    """Pooling, tool calling and reasoning (entrypoint.features); sglang has no --enable-auto-tool-choice."""
    plan = request.plan
    flags = []
    if plan.mm_limits is not None:  # text only: every modality at 0 (sglang has no language-model-only mode)
        limits = dict(plan.mm_limits) or {name: 0 for name in ("image", "video", "audio")}
        flags += ["--limit-mm-data-per-request", json.dumps(limits)]
    if plan.task != "generate":
        overrides = [ENGINE.config_override_flag, plan.config_overrides] if plan.config_overrides else []
        return [*flags, "--is-embedding", *overrides]
    flags += ["--tool-call-parser", plan.tool_call_parser] if plan.tool_call_parser else []
    return flags + (["--reasoning-parser", plan.reasoning_parser] if plan.reasoning_parser else [])


def _load_bytes(use: DeviceUse) -> ReserveTerms:
    """What sglang's weight load allocates besides the weights, inside its fraction ("Load weight end. ...
    mem usage=" is the free memory the load took): with TP on PCIe cards, NCCL's buffers, made at the first
    collective during the load (on NVLink boards they come earlier, in startup_bytes). QwQ-32B at TP=4 on L4s
    took 15.54 GB for 15.26 GiB of weights (didier-durand/llms-in-clouds), Qwen3-14B at TP=4 on RTX 4090s
    7.08 for 6.88 (tests/fixtures/calibration/collected/sglang_rows.json)."""
    if use.tp * use.pp > 1 and not use.nvlink and not use.cpu:
        return (("NCCL buffers", int(0.25 * GIB)),)
    return ()


# --mem-fraction-static covers weights and the KV pool only, of the free memory measured before the weights
# load (KV = fraction x free before load - weights: kv_cache_configurator._profile_available_bytes);
# activations, CUDA graphs and NCCL live in the rest, which sglang sizes itself (auto_mem_fraction).
MEMORY = MemoryRules(
    flag="--mem-fraction-static",
    default_fraction=auto_mem_fraction,
    startup_bytes=_startup_bytes,
    reserve=_load_bytes,
    # configs/model_config.py is_hybrid_swa_model: only these get sglang's SWA pool; Gemma 2/3 and Mistral cache
    # every token in every layer.
    sliding_window_architectures=frozenset(
        {
            "Llama4ForConditionalGeneration",
            "GptOssForCausalLM",
            "GraniteSWAForCausalLM",
            "GraniteMoeSWAForCausalLM",
            "MiMoV2ForCausalLM",
            "MiMoV2FlashForCausalLM",
            "Step3p5ForCausalLM",
            "Gemma4ForCausalLM",
            "Gemma4ForConditionalGeneration",
        }
    ),
    # swa_full_tokens_ratio's default (arg_groups/fields/schedule.py): the SWA pool holds 0.8 of the full pool's
    # tokens (pool_configurator.HybridSWAPoolConfigurator).
    swa_pool_ratio=0.8,
    # model_executor/pool_configurator.py sizes the token pool from the fraction alone, with no case for an
    # embedding model: an encoder gets its pool like any model.
    encoder_kv_cache=True,
)


def build(request: ServeRequest) -> Command:
    plan = request.plan
    argv = [
        request.python,
        "-m",
        LAUNCHER,
        "--model-path",
        request.model,
        *listen_flags(request),
        "--tp-size",
        str(plan.tp),
        "--pp-size",
        str(plan.pp),
        "--dp-size",
        str(plan.dp),
    ]
    if plan.ep > 1:
        argv += ["--ep-size", str(plan.ep)]
    node = request.cluster
    if node.multi_node:
        # tp and pp are global sizes: each node runs tp*pp/nnodes ranks.
        argv += [
            "--nnodes",
            str(node.nodes),
            "--node-rank",
            str(node.rank),
            "--dist-init-addr",
            f"{node.head}:{node.port}",
        ]
    argv += [
        "--context-length",
        str(plan.max_model_len),
        "--dtype",
        plan.dtype,
        *memory_flags(request, MEMORY),
        *kv_cache_dtype_flags(request, KV_CACHE_DTYPES),
        *_serving_flags(request),
        *lora_flags(request, "--lora-paths", "--max-loras-per-batch"),
        *chat_template_flags(request),
    ]
    argv += model_source_flags(request)
    argv += _speculative_args(request)
    argv += _operations_args(request)
    argv.append("--enable-metrics")  # /metrics exists only with this flag
    # sglang has no variable for the key, only --api-key, which `ps` shows: the launcher sets it instead.
    env = guard_environment(request, "sglang", VERSION)  # our launcher puts the guard on sglang's app
    if request.api_key:
        env[API_KEY_VARIABLE] = request.api_key
    return Command(argv=tuple(argv), env=env)


def _operations_args(request: ServeRequest) -> list[str]:
    args = tls_flags(request)
    if request.log_requests:
        args.append("--log-requests")
    # No shutdown flag: on SIGTERM sglang drains in-flight requests without a time limit, so the
    # orchestrator's grace period is the limit.
    return args


def _speculative_args(request: ServeRequest) -> list[str]:
    speculation = request.plan.speculative
    if not speculation:
        return []
    args = ["--speculative-algorithm", SPECULATIVE_METHODS[speculation.method]]
    if speculation.draft_model:
        args += ["--speculative-draft-model-path", speculation.draft_model]
    if speculation.num_tokens:
        # All three or none: topk or draft-tokens without num-steps is an AssertionError,
        # and with topk 1 sglang forces draft tokens to steps + 1 anyway.
        steps = speculation.num_tokens
        args += [
            "--speculative-num-steps",
            str(steps),
            "--speculative-eagle-topk",
            "1",
            "--speculative-num-draft-tokens",
            str(steps + 1),
        ]
    return args


ENGINE = Engine(
    name="sglang",
    pinned_version=VERSION,
    package="sglang",
    distributions=("sglang",),
    quantization_methods=QUANTIZATION_METHODS,
    removed_quantization=REMOVED_QUANTIZATION,
    fp8_methods=frozenset({"fp8", "w8a8_fp8"}),
    # Fp8Config.get_min_capability() is 80; SM 8.0-8.8 auto-enables Marlin FP8.
    fp8_min_capability=(8, 0),
    # --ep-size is carved out of the TP group (moe_tp = tp // ep): ep = tp.
    expert_parallel_size=lambda tp, dp: tp,
    speculative_methods=SPECULATIVE_METHODS,
    removed_flags=REMOVED_FLAGS,
    secret_flags=frozenset({"--api-key", "--admin-api-key", "--ssl-keyfile-password"}),
    api_key_variable=API_KEY_VARIABLE,
    not_abbreviations=frozenset({"--ssl-keyfile"}),
    build=build,
    # observability/metrics_collector.py (sglang) and v1/metrics/loggers.py (vLLM) at the pinned versions.
    memory=MEMORY,
    tool_parsers=TOOL_PARSERS,
    reasoning_parsers=REASONING_PARSERS,
    # srt/environ.py third_party_cache_defaults puts Triton, inductor, CUDA, FlashInfer, DeepGEMM and TileLang
    # under SGLANG_CACHE_DIR.
    cache_variables={"SGLANG_CACHE_DIR": "sglang"},
    # sglang 0.5.23 leaves huggingface_hub's Xet downloads at their default pace (vLLM turns this on itself).
    environment_defaults={"HF_XET_HIGH_PERFORMANCE": "1"},
    metric_names=MetricNames(
        requests="sglang:num_requests",
        running="sglang:num_running_reqs",
        generation_tokens="sglang:generation_tokens",
        kv_tokens="sglang:max_total_num_tokens",  # emitted once at start-up (emit_constants)
    ),
    # srt/configs/embedding_model_spec.py _CLASSIFICATION_ARCHITECTURES: any other is served with
    # --is-embedding as an embedding model, never as a classifier (tests/test_families.py reads the set).
    classifier_architectures=frozenset(
        {
            "BertForSequenceClassification",
            "LlamaForSequenceClassification",
            "LlamaForSequenceClassificationWithNormal_Weights",
            "Qwen2ForSequenceClassification",
            "Qwen3ForSequenceClassification",
            "XLMRobertaForSequenceClassification",
        }
    ),
    config_override_flag="--json-model-override-args",
    # sglang 0.5.23's lines (srt/model_executor/model_runner.py, model_runner_components/cuda_graph_setup.py,
    # entrypoints/http_server.py): the KV pool is made after the weights, then the CUDA graphs are captured.
    start_marks=(
        StartMark("load", "Load weight begin"),
        StartMark("kv_cache", "Load weight end"),
        StartMark("graphs", "graph begin."),  # "Capture decode CUDA graph begin." and the prefill one
        StartMark("server", "graph end."),
        StartMark("server", "Uvicorn running on"),  # with CUDA graphs off
    ),
    kv_cache_dtypes=KV_CACHE_DTYPES,
    checkpoint_quantization=frozenset(
        {"awq", "awq_marlin", "gptq", "gptq_marlin", "moe_wna16", "compressed-tensors", "gguf"}
    ),
    compatible_quantization={
        "awq": frozenset({"awq", "awq_marlin", "moe_wna16"}),
        "gptq": frozenset({"gptq", "gptq_marlin", "moe_wna16"}),
        "fp8": frozenset({"fp8", "w8a8_fp8"}),
    },
)
