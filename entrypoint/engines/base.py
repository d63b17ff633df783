"""The one interface every engine implements: values plus an argv builder.

The planner and the CLI only ever talk to an `Engine`; anything that differs
between sglang and vLLM (flag spellings, accepted quantizations, how expert
parallelism is sized, how the API key travels) lives in the engine's own
module. `build` is pure: a `ServeRequest` in, a `Command` out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..hardware.cluster import Cluster
from . import routes

if TYPE_CHECKING:  # the plan imports this module; only type checkers need the reverse
    from ..plan import Plan


@dataclass(frozen=True)
class ServeRequest:
    """What the engine must serve: the plan plus the settings that are not planning."""

    plan: Plan
    model: str  # TARGET_MODEL as given: a Hub repo id or a local folder
    served_name: str
    port: int
    revision: str | None = None
    trust_remote_code: bool = False
    api_key: str | None = None
    admin_api_key: str | None = None  # ADMIN_API_KEY: the admin routes' key (engines/routes.py)
    requested_quantization: str | None = None  # only what the user asked for; the checkpoint's own is implicit
    python: str = "python3"
    host: str = "0.0.0.0"
    cluster: Cluster = field(default_factory=Cluster)  # this node's place when the plan spans nodes
    tls_cert: str | None = None
    tls_key: str | None = None
    log_requests: bool = False
    shutdown_timeout: int = 30  # seconds in-flight requests may finish after SIGTERM
    chat_template: str | None = None  # CHAT_TEMPLATE: a Jinja file given to --chat-template


@dataclass(frozen=True)
class Command:
    """A program to exec and what its environment gains."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    planned: int | None = None  # how many argv tokens the builder wrote (the rest are the user's); None: all


def flag_name(arg: str) -> str:
    """The long flag `arg` sets, as both engines read it (`--api_key=K` is `--api-key`); "" for anything else."""
    if not arg.startswith("--"):
        return ""
    return "--" + arg[2:].split("=", 1)[0].replace("_", "-")


def listen_flags(request: ServeRequest) -> list[str]:
    """The name clients use and where the server listens: both engines spell these the same way.

    The host must be given: sglang binds 127.0.0.1:30000 unless told otherwise.
    """
    return ["--served-model-name", request.served_name, "--host", request.host, "--port", str(request.port)]


def model_source_flags(request: ServeRequest) -> list[str]:
    """Flags both engines spell the same way: quantization asked for, revision, remote code."""
    flags = []
    if request.requested_quantization:
        flags += ["--quantization", request.requested_quantization]
    if request.revision:
        flags += ["--revision", request.revision]
    if request.trust_remote_code:
        flags.append("--trust-remote-code")
    return flags


def memory_flags(request: ServeRequest, rules: MemoryRules) -> list[str]:
    """MEM_FRACTION, passed unchanged to the engine's own flag; unset, the engine keeps its own value (which
    the plan reproduced)."""
    plan = request.plan
    return [rules.flag, str(plan.mem_fraction)] if plan.mem_fraction_set else []


def kv_cache_dtype_flags(request: ServeRequest, spelling: Mapping[str, str]) -> list[str]:
    """Both engines take --kv-cache-dtype, with their own values (`Engine.kv_cache_dtypes`); auto is the default."""
    kv_dtype = request.plan.kv_cache_dtype
    return [] if kv_dtype == "auto" else ["--kv-cache-dtype", spelling[kv_dtype]]


def chat_template_flags(request: ServeRequest) -> list[str]:
    """Both engines take a template file as --chat-template."""
    return ["--chat-template", request.chat_template] if request.chat_template else []


def lora_flags(request: ServeRequest, modules_flag: str, batch_flag: str) -> list[str]:
    """LORA_MODULES: both engines take name=path pairs and a largest rank; their flags for the list and for
    the adapters a batch may mix differ (vLLM --lora-modules / --max-loras, sglang --lora-paths /
    --max-loras-per-batch)."""
    plan = request.plan
    if not plan.lora_modules:
        return []
    pairs = [f"{name}={source}" for name, source in plan.lora_modules]
    return [
        "--enable-lora",
        modules_flag,
        *pairs,
        "--max-lora-rank",
        str(plan.max_lora_rank),
        batch_flag,
        str(plan.max_loras),
    ]


def guard_environment(request: ServeRequest, engine: str, version: str) -> dict[str, str]:
    """What our guard in front of the engine's routes reads (engines/guard.py): whose route table, and the
    admin key; the client key travels in the engine's own variable. Both engines, whatever the settings: with
    no key set, the admin routes are still closed."""
    env = {routes.ENGINE_VARIABLE: f"{engine}@{version}"}
    if request.admin_api_key:
        env[routes.ADMIN_KEY_VARIABLE] = request.admin_api_key
    return env


def tls_flags(request: ServeRequest) -> list[str]:
    """Both engines serve HTTPS themselves with the same two flags (settings only accept them as a pair)."""
    if request.tls_cert and request.tls_key:
        return ["--ssl-certfile", request.tls_cert, "--ssl-keyfile", request.tls_key]
    return []


@dataclass(frozen=True)
class MetricNames:
    """The engine's /metrics families the supervisor reads, as prometheus_client names them
    (a counter's family drops `_total`)."""

    requests: str  # counter of requests finished
    running: str  # gauge of requests in flight
    generation_tokens: str  # counter of generated tokens
    # The KV cache the engine allocated, in tokens: the family, and the label that holds it (None: the value).
    kv_tokens: str = ""
    kv_tokens_label: str | None = None


@dataclass(frozen=True)
class StartMark:
    """A literal the engine logs as it begins a phase of its start (entrypoint.supervise.phases.PHASES names
    them); tests find each one in the pinned engine's own sources."""

    phase: str
    text: str


@dataclass(frozen=True)
class DeviceUse:
    """One device of a layout, with the model facts the engine's own allocations on it depend on."""

    tp: int
    pp: int
    memory_bytes: int  # as nvidia-smi reports it (or the host's memory on the CPU path)
    gpu: str  # the catalogue's name ("H100"); "" when unknown or on the CPU path
    nvlink: bool  # GPUs joined by NVLink (hardware.catalog.GpuSpec.nvlink)
    cpu: bool  # the CPU path
    vocab_size: int
    hidden_size: int
    layers: int  # on this device: the model's layers over the pipeline stages


# What the engine allocates inside its fraction besides weights and KV cache, by name ("activation peak")
# and bytes, so the plan can show each term.
ReserveTerms = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class MemoryRules:
    """How the engine's memory flag divides a device, at the pinned version (docs/adr/0018).

    The planner gives weights plus KV cache `fraction x (device memory - startup_bytes)` less the `reserve`
    terms: what the engine allocates inside its fraction besides weights and KV cache.
    """

    flag: str  # the engine's own flag, which MEM_FRACTION is passed to unchanged
    # The engine's own fraction when MEM_FRACTION is unset: (device MiB, TP, PP, MLA attention) -> fraction.
    default_fraction: Callable[[int, int, int, bool], float]
    # Device memory the fraction is not applied to (gone before the engine measures, or never shown to CUDA).
    startup_bytes: Callable[[DeviceUse], int]
    # What the fraction must also hold besides weights and KV cache, term by term.
    reserve: Callable[[DeviceUse], ReserveTerms]
    # What startup_bytes is, for the plan's explanation ("free once the engine has started").
    startup_meaning: str = "free once the engine has started"
    # Architectures whose sliding-window layers get a window-sized pool; None: every model's do. The others'
    # sliding layers cache every token, like full attention.
    sliding_window_architectures: frozenset[str] | None = None
    # With a pool of its own, how big the sliding layers' pool is next to the full layers' (None: each
    # sequence keeps at most its window, as vLLM's hybrid allocator does).
    swa_pool_ratio: float | None = None
    # Whether a model whose attention is bidirectional (families.bidirectional: BERT-like encoders, bidirectional
    # embedders) gets a KV cache at all; without one the budget past the weights holds only activations.
    encoder_kv_cache: bool = True


@dataclass(frozen=True)
class Engine:
    name: str
    # The Python package that must be importable (checked without importing it).
    package: str
    # The distributions that install it, whose metadata carry the version (`version`).
    distributions: tuple[str, ...]
    # Values accepted by the engine's --quantization at the pinned version.
    quantization_methods: frozenset[str]
    # Values the engine once accepted, with what to use instead.
    removed_quantization: Mapping[str, str]
    # The --quantization values that mean FP8 (online when the checkpoint is not quantized).
    fp8_methods: frozenset[str]
    # FP8 below native support (compute capability 8.9) runs weight-only
    # through Marlin down to this capability; below it FP8 is refused.
    fp8_min_capability: tuple[int, int]
    # Expert-parallel group size for a TP x DP layout of an MoE model.
    expert_parallel_size: Callable[[int, int], int]
    # Our speculative method names (entrypoint.speculative) -> the engine's spelling.
    speculative_methods: Mapping[str, str]
    # Flags the engine removed at or before the pinned version -> what to use instead.
    removed_flags: Mapping[str, str]
    # Flags whose value is a secret; printed as *** wherever argv is shown, in any spelling the engine takes.
    secret_flags: frozenset[str]
    # The variable the engine (or its launcher) reads the API key from; one inherited from the environment
    # turns auth on as surely as API_KEY does.
    api_key_variable: str
    build: Callable[[ServeRequest], Command]
    metric_names: MetricNames
    memory: MemoryRules
    supports_cpu: bool = False
    # Flags of their own that are also prefixes of a secret flag, so not abbreviations of it (checked against
    # the engine's parser in tests/test_contract.py).
    not_abbreviations: frozenset[str] = frozenset()
    # --quantization values that only load a checkpoint already quantized that way (they quantize nothing).
    checkpoint_quantization: frozenset[str] = frozenset()
    # Checkpoint quant methods mapped to the --quantization values that can load them.
    compatible_quantization: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # KV_CACHE_DTYPE values -> the engine's --kv-cache-dtype spelling; a value missing here is refused.
    kv_cache_dtypes: Mapping[str, str] = field(default_factory=dict)
    # The CPU path's KV cache is given to the engine in whole units of this many bytes (vLLM: whole GiB of
    # VLLM_CPU_KVCACHE_SPACE), so the plan counts what the engine will really get.
    cpu_kv_cache_unit_bytes: int = 1
    # The KV cache dtypes the engine's CPU attention takes (the CPU path only).
    cpu_kv_cache_dtypes: frozenset[str] = frozenset({"auto"})
    # Parser names the engine registers at the pinned version (TOOL_CALL_PARSER, REASONING_PARSER and the
    # family table's choices are checked against them; tests/test_contract.py reads the installed registries).
    tool_parsers: frozenset[str] = frozenset()
    reasoning_parsers: frozenset[str] = frozenset()
    # Compile and kernel caches the engine (and the libraries under it) write: variable -> a folder under
    # the engine's cache root in HF_HOME (entrypoint.caches), so a new container on the same volume starts
    # warm. Each is set only when the environment leaves it unset.
    cache_variables: Mapping[str, str] = field(default_factory=dict)
    # Variables the engine runs better with, set when unset (sglang does not turn on fast Xet downloads).
    environment_defaults: Mapping[str, str] = field(default_factory=dict)
    # GPU vendors (hardware.catalog.GpuSpec.vendor) this engine's image runs on: both images are CUDA builds
    # (Dockerfile.sglang, Dockerfile.vllm); AMD GPUs need the engines' own ROCm images.
    gpu_vendors: frozenset[str] = frozenset({"nvidia"})
    # Architectures it serves as classifiers and rerankers (TASK=classify, score); None: any, since it
    # converts a causal LM itself (vLLM --convert classify).
    classifier_architectures: frozenset[str] | None = None
    # Its flag for config.json overrides (a JSON object), e.g. a family's reranker recipe.
    config_override_flag: str = ""
    # The log lines that begin each phase of a start, so supervised mode can say where the time went.
    start_marks: tuple[StartMark, ...] = ()
    # The version its image pins (Dockerfile.<name>'s ARG): the engine's own options at that version are
    # engines/options/<name>-<version>.txt, which entrypoint.engines.options reads argv with.
    pinned_version: str = ""
