"""The planner: model shape + hardware + settings in, a frozen Plan out.

Pure: no environment, files, network or subprocesses. Every choice appends a
sentence to `reasons`, so the plan explains itself. Memory per GPU follows the
engine's own rules (`Engine.memory`, docs/adr/0018):

    fraction × (GPU memory − startup)  ≥  weights / (TP·PP)  +  KV cache  +  reserve

where the fraction is MEM_FRACTION or the engine's own choice for that layout,
and the KV cache must hold at least one sequence of `max_model_len` tokens
(docs/adr/0004).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from . import features, fixes, lora, quantization, throughput
from .engines.base import Engine, ReserveTerms
from .errors import EntrypointError, SettingError, UnsupportedByEngineError
from .hardware.types import Hardware
from .layout import Pins, check_pins, expert_parallel, valid_tensor_parallel_sizes
from .model import families, kv
from .model.info import ModelInfo
from .model.shape import ModelShape
from .model.weights import RUNTIME_DTYPE_BYTES, WeightEstimate, estimate
from .sizing import CONTEXT_STEP, MIN_CONTEXT, Layout, Sizing, search
from .speculative import Speculation
from .speculative import resolve as resolve_speculation
from .units import gib

if TYPE_CHECKING:  # pure: the settings module is the configuration edge
    from .settings import Settings

# Both engines refuse bfloat16 below Ampere (vLLM 0.32 platforms/cuda.py: "Bfloat16 is only supported on GPUs
# with compute capability of at least 8.0"), after the download.
BF16_MIN_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class MemoryPerGpu:
    budget_bytes: int
    weight_bytes: int
    reserve_bytes: int
    reserve_terms: ReserveTerms  # what reserve_bytes holds, by name (MemoryRules.reserve)
    kv_cache_bytes: int
    # Tokens of full-length sequences the KV cache of one replica holds (concurrency x max_model_len, as vLLM
    # logs "KV cache size: N tokens"); with sliding-window layers fewer tokens than the cache has slots.
    kv_tokens: int


@dataclass(frozen=True)
class Concurrency:
    """How many requests one replica's KV cache holds at once."""

    at_max_model_len: float  # sequences of the full context (vLLM's "Maximum concurrency for N tokens")
    typical_request_tokens: int  # TYPICAL_REQUEST_TOKENS, at most the context
    at_typical: float  # sequences of that length


@dataclass(frozen=True)
class Plan:
    engine: str
    model: str
    tp: int
    pp: int
    dp: int
    ep: int
    nodes: int
    gpu_count: int
    gpu_name: str  # as detected (nvidia-smi) or given (ACCELERATORS)
    gpu_memory_bytes: int
    max_model_len: int
    dtype: str
    quantization: str | None
    weight_bytes: int
    kv_bytes_per_token: int  # whole model, one replica, before any split; 0 without a KV cache
    memory_per_gpu: MemoryPerGpu
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    mem_fraction: float = 0.92  # as the engine will apply it: MEM_FRACTION, or its own choice for this layout
    mem_fraction_set: bool = False  # MEM_FRACTION was given, so it is passed to the engine's flag
    on_cpu: bool = False
    speculative: Speculation | None = None
    draft_weight_bytes: int = 0
    gpu_catalog_name: str | None = None  # the GPU as ACCELERATORS spells it; None for CPU, MIG, unknown GPUs
    concurrency: Concurrency | None = None  # None: no KV cache (kv_cache false)
    kv_cache: bool = True  # false: the engine keeps none for this model (bidirectional attention on vLLM)
    kv_cache_dtype: str = "auto"  # KV_CACHE_DTYPE as resolved; the engine spells it (Engine.kv_cache_dtypes)
    architecture: str = ""  # config.json's first architecture
    task: str = "generate"  # TASK as resolved (entrypoint.features)
    detected_task: str = "generate"  # what the model's files suggest, which an engine's auto mode follows
    tool_call_parser: str | None = None  # the engine's parser name; None: no tool calling
    reasoning_parser: str | None = None
    mm_limits: tuple[tuple[str, int], ...] | None = None  # per request by modality; (): text only; None: text model
    config_overrides: str | None = None  # JSON for the engine's config override flag (a family's reranker recipe)
    lora_modules: tuple[tuple[str, str], ...] = ()  # LORA_MODULES: (name, folder or repo)
    max_lora_rank: int = 0
    max_loras: int = 0
    lora_bytes: int = 0  # LoRA buffers on one GPU, counted in memory_per_gpu.weight_bytes

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        data["warnings"] = list(self.warnings)
        data["memory_per_gpu"]["reserve_terms"] = dict(self.memory_per_gpu.reserve_terms)  # {"non-torch": bytes}
        return data


def make_plan(
    settings: Settings,
    hardware: Hardware,
    model: ModelInfo,
    engine: Engine,
    draft: ModelInfo | None = None,
    *,
    suggest: bool = True,
) -> Plan:
    """`draft` is the speculative draft model's headers, when SPEC_DRAFT_MODEL names one; `suggest=False`
    leaves the fixes out of a DoesNotFitError (a fix being checked suggests none of its own)."""
    _check_vendor(hardware, engine)
    shape = model.shape
    reasons: list[str] = []
    warnings: list[str] = list(hardware.notes)
    serving = features.resolve(settings, model, engine, reasons, warnings)
    speculation = speculation_for(settings, shape, engine)
    if not speculation and (settings.spec_method or settings.spec_draft_model or settings.spec_num_tokens):
        warnings.append(
            "SPEC_METHOD, SPEC_DRAFT_MODEL or SPEC_NUM_TOKENS is set but SPEC_ENABLED is not true, "
            "so speculative decoding stays off."
        )
    dtype = _runtime_dtype(settings.dtype, shape, hardware, reasons)
    method, online_fp8 = quantization.choose(settings.quantization, shape, hardware, engine, reasons)
    weights = estimate(model.weights, dtype, online_fp8)
    draft_bytes = estimate(draft.weights, dtype).total_bytes if draft and speculation else 0
    kv_dtype, kv_bytes = _kv_cache_dtype(settings.kv_cache_dtype, dtype, hardware, engine, reasons)
    pins = Pins.from_settings(settings)
    check_pins(pins, shape, hardware)
    kv_unit = engine.cpu_kv_cache_unit_bytes if hardware.is_cpu else 1
    lora_rank, max_loras, lora_bytes = _lora(settings, model, dtype, reasons)
    kv_shape, swa_ratio = _as_the_engine_caches(shape, engine, reasons)
    sizing = Sizing(
        kv_shape,
        weights,
        hardware,
        engine.memory,
        settings.mem_fraction,
        kv_bytes,
        draft_bytes,
        pins,
        kv_unit,
        swa_ratio,
        head_bytes=shape.vocab_size * shape.hidden_size * RUNTIME_DTYPE_BYTES[dtype],
        lora_bytes=lora_bytes,
    )
    target, explicit = _target_context(settings.max_model_len, shape, reasons)
    scores: list[throughput.Score] = []

    def pick(layouts: list[tuple[int, int]]) -> tuple[int, int]:
        chosen, scores[:] = throughput.choose(sizing, layouts, settings.optimize, settings.typical_request_tokens)
        return chosen

    layout = search(sizing, target, explicit, pick)
    if layout is None:
        checker = (lambda fix: _plans(fix, model, engine, draft)) if suggest else None
        raise fixes.does_not_fit(sizing, target, explicit, settings, model, engine, checker)
    tp, pp = layout.tp, layout.pp
    dp = pins.dp or hardware.total_count // (tp * pp)
    reasons[:0] = [_describe_model(model, weights), _describe_hardware(sizing, layout)]
    reasons.append(_explain_tp(sizing, layout, settings, scores))
    if pp > 1:
        reasons.append(_explain_pp(sizing, layout, target, explicit, warnings))
    reasons.append(_explain_dp(hardware, tp, pp, dp, bool(pins.dp), warnings))
    if speculation:
        reasons.append(_explain_speculation(speculation, draft_bytes, tp))
    ep = expert_parallel(shape, tp, dp, engine, pins.ep, reasons)
    # Without EP the experts are tensor-parallel, i.e. split TP ways like the rest.
    expert_split = ep if ep > 1 else tp
    if settings.mem_fraction and settings.mem_fraction > 0.9 and not hardware.is_cpu:
        warnings.append(
            f"MEM_FRACTION={settings.mem_fraction} leaves only "
            f"{gib(int(hardware.memory_bytes * (1 - settings.mem_fraction)))} per GPU outside the "
            "engine's budget; long prompts or large batches may run out of memory."
        )
    source = _context_source(layout.context, target, explicit, warnings)
    uncached = None if engine.memory.encoder_kv_cache else families.bidirectional(model.config)
    concurrency: Concurrency | None = None
    kv_tokens = 0
    if uncached:
        # The search above still made room for one sequence's cache: a margin, small next to any encoder.
        reasons.append(
            f"max_model_len={layout.context}: {source}; no KV cache: {uncached}, and {engine.name} keeps none "
            "for attention that reads each prompt both ways, so the budget past the weights holds each batch's "
            "activations."
        )
    else:
        concurrency = _concurrency(sizing, layout.context, settings.typical_request_tokens, tp, pp, expert_split)
        kv_tokens = int(sizing.concurrency(layout.context, tp, pp, expert_split) * layout.context)
        reasons.append(_explain_context(layout.context, source, kv_tokens, concurrency))
        if serving.task != "generate":
            # A pooling request is a prompt and nothing else: the cache holds the prompts being read, never a
            # growing answer, so how many full-length sequences fit matters only as a batch of prompts.
            reasons.append(
                f"{serving.task}: requests are prompts with no decode; the KV cache holds {kv_tokens:,} prompt "
                "tokens at once."
            )
        elif not explicit:
            _warn_few_sequences(sizing, layout, concurrency, expert_split, warnings)
    weights_per_gpu = sizing.weights_per_gpu(tp, pp, expert_split)
    memory = MemoryPerGpu(
        budget_bytes=sizing.budget(tp, pp),
        weight_bytes=weights_per_gpu,
        reserve_bytes=sizing.reserve(tp, pp),
        reserve_terms=sizing.reserve_terms(tp, pp),
        kv_cache_bytes=0 if uncached else max(0, sizing.kv_available(tp, pp, expert_split)),
        kv_tokens=kv_tokens,
    )
    return Plan(
        engine=engine.name,
        model=model.name,
        tp=tp,
        pp=pp,
        dp=dp,
        ep=ep,
        nodes=hardware.nodes,
        gpu_count=hardware.total_count,
        gpu_name=hardware.name,
        gpu_memory_bytes=hardware.memory_bytes,
        max_model_len=layout.context,
        dtype=dtype,
        quantization=method,
        weight_bytes=weights.total_bytes,
        kv_bytes_per_token=0 if uncached else kv.bytes_per_token(shape, sizing.kv_dtype_bytes),
        memory_per_gpu=memory,
        reasons=tuple(reasons),
        warnings=tuple(warnings),
        mem_fraction=sizing.fraction(tp, pp),
        mem_fraction_set=settings.mem_fraction is not None,
        on_cpu=hardware.is_cpu,
        speculative=speculation,
        draft_weight_bytes=draft_bytes,
        gpu_catalog_name=hardware.spec.name if hardware.spec else None,
        concurrency=concurrency,
        kv_cache=not uncached,
        kv_cache_dtype=kv_dtype,
        architecture=shape.architecture,
        task=serving.task,
        detected_task=serving.detected_task,
        tool_call_parser=serving.tool_call_parser,
        reasoning_parser=serving.reasoning_parser,
        mm_limits=serving.mm_limits,
        config_overrides=serving.config_overrides,
        lora_modules=tuple((adapter.name, adapter.source) for adapter in model.adapters),
        max_lora_rank=lora_rank,
        max_loras=max_loras,
        lora_bytes=sizing.lora_per_gpu(tp, pp),
    )


def _lora(
    settings: Settings, model: ModelInfo, dtype: str, reasons: list[str]
) -> tuple[int, int, Callable[[int], int] | None]:
    """(--max-lora-rank, adapters per batch, their buffers on one GPU by TP) for LORA_MODULES' adapters."""
    adapters = model.adapters
    if not adapters:
        return 0, 0, None
    rank = lora.check(adapters, settings.target_model, model.shape)
    max_loras = settings.max_loras or min(len(adapters), 8)
    dtype_bytes = RUNTIME_DTYPE_BYTES[dtype]

    def buffers(tp: int) -> int:
        return lora.buffer_bytes(model.shape, adapters, max_loras, rank, tp, dtype_bytes)

    names = ", ".join(f"{adapter.name} (rank {adapter.rank})" for adapter in adapters)
    reasons.append(
        f"lora: {names}; --max-lora-rank {rank}, {max_loras} at once: {gib(buffers(1))} of buffers at TP=1, "
        "counted with the weights."
    )
    return rank, max_loras, buffers


def speculation_for(settings: Settings, shape: ModelShape, engine: Engine) -> Speculation | None:
    return resolve_speculation(
        settings.spec_enabled, settings.spec_method, settings.spec_draft_model, settings.spec_num_tokens, shape, engine
    )


# ---------------------------------------------------------------- devices and dtype


def _check_vendor(hardware: Hardware, engine: Engine) -> None:
    spec = hardware.spec
    if spec and spec.vendor not in engine.gpu_vendors:
        raise UnsupportedByEngineError(
            f"ACCELERATORS={spec.name} is an {spec.vendor.upper()} GPU, but this image's {engine.name} is built for "
            + ", ".join(sorted(vendor.upper() for vendor in engine.gpu_vendors)),
            f"use an NVIDIA GPU (e.g. ACCELERATORS=H200:{hardware.count}), or {engine.name}'s own ROCm image",
        )


def _runtime_dtype(requested: str, shape: ModelShape, hardware: Hardware, reasons: list[str]) -> str:
    capability = hardware.compute_capability
    no_bf16 = not hardware.is_cpu and capability is not None and capability < BF16_MIN_CAPABILITY
    if requested != "auto":
        if requested == "bfloat16" and no_bf16:
            shown = ".".join(map(str, capability or ()))
            raise UnsupportedByEngineError(
                f"DTYPE=bfloat16 needs compute capability 8.0 or newer (Ampere); {hardware.name} has {shown}",
                "use DTYPE=float16, or leave DTYPE unset (float16 is chosen on these GPUs)",
            )
        reasons.append(f"dtype={requested}: set by DTYPE (checkpoint is {shape.dtype}).")
        return requested
    dtype = {"float32": "bfloat16", "float": "bfloat16", "half": "float16"}.get(shape.dtype, shape.dtype)
    if dtype not in RUNTIME_DTYPE_BYTES:
        dtype = "bfloat16"
    if dtype == "bfloat16" and no_bf16:
        reasons.append(
            f"dtype=float16: {hardware.name} has no bfloat16 (compute capability below 8.0), so the "
            f"{shape.dtype} checkpoint is served in float16."
        )
        return "float16"
    if dtype != shape.dtype:
        reasons.append(f"dtype={dtype}: the checkpoint is {shape.dtype}; engines serve it in half precision.")
    return dtype


def _as_the_engine_caches(shape: ModelShape, engine: Engine, reasons: list[str]) -> tuple[ModelShape, float | None]:
    """The model's sliding-window layers as the engine allocates them: window-bounded, a pool of their own at a
    fixed share (sglang's SWA pool), or like full attention for architectures without one."""
    rules = engine.memory
    if not shape.sliding_layers or rules.sliding_window_architectures is None:
        return shape, None
    if shape.architecture in rules.sliding_window_architectures:
        return shape, rules.swa_pool_ratio
    reasons.append(
        f"kv cache: {engine.name} gives {shape.architecture} no sliding-window pool, so its "
        f"{shape.sliding_layers} sliding layers cache every token like the full-attention ones."
    )
    return replace(shape, sliding_layers=0, sliding_window=0), None


FP8_KV_CACHE = frozenset({"fp8", "fp8_e4m3", "fp8_e5m2"})


def _kv_cache_dtype(
    requested: str, dtype: str, hardware: Hardware, engine: Engine, reasons: list[str]
) -> tuple[str, int]:
    """KV_CACHE_DTYPE checked against the engine (and its CPU attention); returns it and its bytes per value."""
    if requested not in engine.kv_cache_dtypes:
        raise UnsupportedByEngineError(
            f"KV_CACHE_DTYPE={requested} is not a KV cache dtype of {engine.name}",
            f"{engine.name} takes: " + ", ".join(sorted(engine.kv_cache_dtypes)),
        )
    if hardware.is_cpu and requested not in engine.cpu_kv_cache_dtypes:
        raise UnsupportedByEngineError(
            f"KV_CACHE_DTYPE={requested} is not taken by {engine.name}'s CPU attention",
            "on the CPU path use: " + ", ".join(sorted(engine.cpu_kv_cache_dtypes)),
        )
    if requested == "auto":
        return requested, RUNTIME_DTYPE_BYTES[dtype]
    if requested in FP8_KV_CACHE:
        reasons.append(
            f"kv cache dtype {requested}: one byte per value, so the cache holds {RUNTIME_DTYPE_BYTES[dtype]}x the "
            f"tokens of a {dtype} one (at some cost in accuracy)."
        )
        return requested, 1
    reasons.append(f"kv cache dtype {requested}: set by KV_CACHE_DTYPE.")
    return requested, RUNTIME_DTYPE_BYTES[requested]


# ---------------------------------------------------------------- context


def _target_context(requested: int | None, shape: ModelShape, reasons: list[str]) -> tuple[int, bool]:
    if requested is not None:
        if shape.max_position and requested > shape.max_position:
            raise SettingError(
                f"MAX_MODEL_LEN={requested} is longer than the model's maximum of {shape.max_position} tokens",
                f"for example MAX_MODEL_LEN={shape.max_position}",
            )
        return requested, True
    if not shape.max_position:
        reasons.append(f"config.json gives no maximum context; planning {MIN_CONTEXT} tokens.")
        return MIN_CONTEXT, False
    return shape.max_position, False


# ---------------------------------------------------------------- when nothing fits (entrypoint.fixes)


def _plans(fix: fixes.Fix, model: ModelInfo, engine: Engine, draft: ModelInfo | None) -> bool:
    """Whether a suggested fix is itself a plan: the whole planner, naming no fixes of its own."""
    try:
        make_plan(fix.settings, fix.hardware, model, engine, draft, suggest=False)
    except EntrypointError:
        return False
    return True


# ---------------------------------------------------------------- explanations


def _describe_model(model: ModelInfo, weights: WeightEstimate) -> str:
    shape = model.shape
    attention = (
        f"MLA (latent {shape.kv_lora_rank}+{shape.qk_rope_head_dim})"
        if shape.is_mla
        else f"{shape.attention_heads} heads / {shape.kv_heads} KV heads, head_dim {shape.head_dim}"
    )
    moe = f", MoE {shape.experts} experts ({shape.experts_per_token} active)" if shape.is_moe else ""
    window = (
        f", sliding window {shape.sliding_window} on {shape.sliding_layers} of {shape.layers} layers"
        if shape.sliding_layers
        else ""
    )
    return (
        f"model: {model.name} ({shape.architecture}), {shape.layers} layers, {attention}{moe}{window}; "
        f"{gib(weights.total_bytes)} of weights from {model.shards} safetensors header(s) ({model.location})."
    )


def _describe_hardware(sizing: Sizing, layout: Layout) -> str:
    hardware = sizing.hardware
    tp, pp = layout.tp, layout.pp
    budget = gib(sizing.budget(tp, pp))
    fraction = sizing.fraction_shown(tp, pp)
    if hardware.is_cpu:
        return (
            f"hardware: cpu, {gib(hardware.memory_bytes)} ({hardware.source}); the engine may use {budget}, the "
            f"smaller of {fraction} of it and what is available now, {gib(sizing.reserve(tp, pp))} of it reserved "
            "for the engine's processes and activations."
        )
    nodes = f" on each of {hardware.nodes} nodes" if hardware.nodes > 1 else ""
    rules = sizing.memory
    startup = sizing.startup(tp, pp)
    of = f"of the {gib(hardware.memory_bytes - startup)} {rules.startup_meaning}" if startup else "of it"
    terms = sizing.reserve_terms(tp, pp)
    inside = (
        f", less {gib(sizing.reserve(tp, pp))} the engine allocates besides ("
        + ", ".join(f"{name} {gib(size)}" for name, size in terms)
        + ")"
        if terms
        else "; activations, CUDA graphs and NCCL live outside it"
    )
    return (
        f"hardware: {hardware.count}x {hardware.name}{nodes}, {gib(hardware.memory_bytes)} each ({hardware.source}); "
        f"{fraction} ({rules.flag}) {of} leaves {budget} per device for weights and KV cache{inside}."
    )


def _explain_tp(sizing: Sizing, layout: Layout, settings: Settings, scores: list[throughput.Score]) -> str:
    tp, pp = layout.tp, layout.pp
    if sizing.pins.tp:
        return f"tp={tp}: set by TENSOR_PARALLEL_SIZE."
    heads = (
        f"it divides the {sizing.shape.attention_heads} attention heads and suits the {sizing.shape.kv_heads} KV heads"
    )
    if scores:
        typical = settings.typical_request_tokens
        weighed = ", ".join(
            f"TP={row.tp} x {row.replicas}: {row.batch:.0f} at once, ~{row.tokens_per_second:,.0f} tokens/s"
            for row in scores
        )
        return (
            f"tp={tp}: {heads}; OPTIMIZE=throughput weighs each size by memory-bound decode of requests of "
            f"TYPICAL_REQUEST_TOKENS={typical} at {sizing.hardware.spec.hbm_gbps if sizing.hardware.spec else 0} "
            f"GB/s per GPU ({weighed}; a larger TP must gain {throughput.NEAR_EQUAL:.0%})."
        )
    if settings.optimize == "latency" and tp > 1:
        return f"tp={tp}: {heads}; OPTIMIZE=latency takes the largest TP that fits, for the fastest single stream."
    smaller = [size for size in valid_tensor_parallel_sizes(sizing.shape, tp) if size < tp]
    why = "; ".join(
        f"TP={size} would need {gib(sizing.weights_per_gpu(size, pp))} of weights per GPU"
        f" and leave room for {min(sizing.context_capacity(size, pp), layout.context)} tokens"
        for size in smaller
    )
    return f"tp={tp}: {heads}" + (f"; {why}." if why else "; the smallest size that fits.")


def _explain_pp(sizing: Sizing, layout: Layout, target: int, explicit: bool, warnings: list[str]) -> str:
    hardware = sizing.hardware
    if sizing.pins.pp:
        return f"pp={layout.pp}: set by PIPELINE_PARALLEL_SIZE ({sizing.shape.layers} layers in {layout.pp} stages)."
    if hardware.nodes == 1:
        return (
            f"pp={layout.pp}: no tensor-parallel size alone (powers of two that suit the heads, at most "
            f"{hardware.count}) holds the model with its context, so its {sizing.shape.layers} layers are split "
            f"into {layout.pp} pipeline stages of TP={layout.tp}."
        )
    one_node = search(replace(sizing, hardware=replace(hardware, nodes=1)), target, explicit)
    if one_node is not None and one_node.context >= layout.context:
        warnings.append(
            f"one node holds this model (TP={one_node.tp}, {one_node.context} tokens), yet SKYPILOT_NUM_NODES="
            f"{hardware.nodes} spreads it over {hardware.nodes} nodes as pipeline stages, which adds latency and "
            "no throughput; for more throughput run one-node replicas with skypilot/serve.yaml instead."
        )
        return (
            f"pp={layout.pp}: SKYPILOT_NUM_NODES={hardware.nodes} asks for {hardware.nodes} nodes, so the layers "
            f"are split into one pipeline stage per node (one node would hold the model)."
        )
    return (
        f"pp={layout.pp}: no tensor-parallel size within one node holds the model, so its layers are split "
        f"into {layout.pp} pipeline stages across {hardware.nodes} nodes (TP={layout.tp} inside each)."
    )


def _explain_dp(hardware: Hardware, tp: int, pp: int, dp: int, pinned: bool, warnings: list[str]) -> str:
    idle = hardware.total_count - dp * tp * pp
    if idle:
        why = f"DATA_PARALLEL_SIZE={dp}" if pinned else f"{hardware.total_count} is not a multiple of TP·PP={tp * pp}"
        warnings.append(f"{idle} GPU(s) stay idle: {why}.")
    if dp == 1:
        return f"dp=1: one replica uses {tp * pp} GPU(s)."
    return f"dp={dp}: {dp} independent replicas of {tp * pp} GPU(s) share the requests."


def _explain_speculation(speculation: Speculation, draft_bytes: int, tp: int) -> str:
    tokens = (
        f"{speculation.num_tokens} draft tokens per step"
        if speculation.num_tokens
        else "the engine's default number of draft tokens"
    )
    if speculation.draft_model:
        draft = (
            f"draft {speculation.draft_model} adds {gib(math.ceil(draft_bytes / tp))} of weights per GPU"
            if draft_bytes
            else f"draft {speculation.draft_model}"
        )
    else:
        draft = "no draft weights"
    return f"speculative decoding: {speculation.method}, {tokens}; {draft}."


def _concurrency(sizing: Sizing, context: int, typical: int, tp: int, pp: int, expert_split: int) -> Concurrency:
    typical = min(typical, context)
    return Concurrency(
        at_max_model_len=round(sizing.concurrency(context, tp, pp, expert_split), 2),
        typical_request_tokens=typical,
        at_typical=round(sizing.concurrency(typical, tp, pp, expert_split), 2),
    )


def _context_source(context: int, target: int, explicit: bool, warnings: list[str]) -> str:
    """Where max_model_len came from, warning when it is less than the model allows."""
    if explicit:
        return "set by MAX_MODEL_LEN"
    if context < target:
        warnings.append(
            f"context reduced to {context} tokens (model maximum {target}); add GPUs or quantize "
            "for more, or set MAX_MODEL_LEN"
        )
        return f"the model allows {target} but only {context} fit next to the weights"
    return "the model's maximum"


def _explain_context(context: int, source: str, kv_tokens: int, concurrency: Concurrency) -> str:
    return (
        f"max_model_len={context}: {source}; the KV cache holds {kv_tokens} tokens per replica: "
        f"{concurrency.at_max_model_len:g} sequence(s) of {context} tokens at once, or "
        f"{concurrency.at_typical:g} of {concurrency.typical_request_tokens} (TYPICAL_REQUEST_TOKENS)."
    )


GOOD_CONCURRENCY = 4  # full-length sequences at once below which an automatic context is a poor default


def _warn_few_sequences(
    sizing: Sizing, layout: Layout, concurrency: Concurrency, expert_split: int, warnings: list[str]
) -> None:
    """An automatic context that leaves room for one sequence serves one user at a time: name a context that
    holds GOOD_CONCURRENCY (a multiple of CONTEXT_STEP, at least MIN_CONTEXT), if there is one."""
    if concurrency.at_max_model_len >= 2:
        return
    tp, pp = layout.tp, layout.pp
    low, high = MIN_CONTEXT // CONTEXT_STEP, layout.context // CONTEXT_STEP
    if low > high or sizing.concurrency(low * CONTEXT_STEP, tp, pp, expert_split) < GOOD_CONCURRENCY:
        suggestion = "add GPUs or quantize for more"
    else:
        while low < high:  # the longest step count that still holds GOOD_CONCURRENCY sequences
            middle = (low + high + 1) // 2
            if sizing.concurrency(middle * CONTEXT_STEP, tp, pp, expert_split) >= GOOD_CONCURRENCY:
                low = middle
            else:
                high = middle - 1
        suggestion = f"MAX_MODEL_LEN={low * CONTEXT_STEP} would hold {GOOD_CONCURRENCY} at once"
    warnings.append(
        f"the KV cache holds {concurrency.at_max_model_len:g} sequence(s) of {layout.context} tokens, so only "
        f"{math.floor(concurrency.at_max_model_len)} request(s) of that length run at once; {suggestion}"
    )
