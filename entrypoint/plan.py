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
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from . import quantization
from .engines.base import Engine, MemoryRules
from .errors import DoesNotFitError, EntrypointError, SettingError, UnsupportedByEngineError
from .hardware.catalog import GPUS, Accelerators, GpuSpec
from .hardware.types import Hardware, from_accelerators
from .layout import Pins, candidate_layouts, check_pins, expert_parallel, valid_tensor_parallel_sizes
from .model import kv
from .model.info import ModelInfo
from .model.shape import ModelShape
from .model.weights import RUNTIME_DTYPE_BYTES, WeightEstimate, estimate
from .speculative import Speculation
from .speculative import resolve as resolve_speculation
from .units import MIB, gib

if TYPE_CHECKING:  # pure: the settings module is the configuration edge
    from .settings import Settings

MIN_CONTEXT = 4096  # below this an automatic context is not worth serving
CONTEXT_STEP = 1024  # automatic contexts are rounded down to a multiple of this
GPUS_PER_NODE = 8  # the most GPUs one machine has; more are planned as several nodes
# Both engines refuse bfloat16 below Ampere (vLLM 0.32 platforms/cuda.py: "Bfloat16 is only supported on GPUs
# with compute capability of at least 8.0"), after the download.
BF16_MIN_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class MemoryPerGpu:
    budget_bytes: int
    weight_bytes: int
    reserve_bytes: int
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
    kv_bytes_per_token: int  # whole model, one replica, before any split
    memory_per_gpu: MemoryPerGpu
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    mem_fraction: float = 0.92  # as the engine will apply it: MEM_FRACTION, or its own choice for this layout
    mem_fraction_set: bool = False  # MEM_FRACTION was given, so it is passed to the engine's flag
    on_cpu: bool = False
    speculative: Speculation | None = None
    draft_weight_bytes: int = 0
    gpu_catalog_name: str | None = None  # the GPU as ACCELERATORS spells it; None for CPU, MIG, unknown GPUs
    concurrency: Concurrency | None = None
    kv_cache_dtype: str = "auto"  # KV_CACHE_DTYPE as resolved; the engine spells it (Engine.kv_cache_dtypes)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        data["warnings"] = list(self.warnings)
        return data


@dataclass(frozen=True)
class _Sizing:
    """Everything the fit arithmetic needs, so variants are cheap to try."""

    shape: ModelShape
    weights: WeightEstimate
    hardware: Hardware
    memory: MemoryRules  # the engine's
    mem_fraction: float | None  # MEM_FRACTION; None: the engine's own, per layout
    kv_dtype_bytes: int
    # A speculative draft runs with the target's TP on every replica (both engines' default).
    draft_bytes: int = 0
    pins: Pins = field(default_factory=Pins)
    kv_unit: int = 1  # the KV cache is given to the engine in whole units of this (Engine.cpu_kv_cache_unit_bytes)
    swa_ratio: float | None = None  # the engine's SWA pool share (MemoryRules.swa_pool_ratio), for this model

    def fraction(self, tp: int, pp: int) -> float:
        """MEM_FRACTION, or what the engine itself picks for this layout."""
        if self.mem_fraction is not None:
            return self.mem_fraction
        gpu_mib = self.hardware.memory_bytes // MIB
        return self.memory.default_fraction(gpu_mib, tp, pp, self.shape.is_mla)

    def budget(self, tp: int, pp: int) -> int:
        """Bytes for weights, KV cache and reserve on one device. On the CPU path no more than is available
        now, which the vLLM CPU worker checks the KV cache against (hardware.host)."""
        hardware = self.hardware
        if hardware.is_cpu:
            budget = int(hardware.memory_bytes * self.fraction(tp, pp))
            return budget if hardware.available_bytes is None else min(budget, hardware.available_bytes)
        nvlink = bool(hardware.spec and hardware.spec.nvlink)
        usable = hardware.memory_bytes - self.memory.startup_bytes(tp * pp, nvlink)
        return int(usable * self.fraction(tp, pp))

    @property
    def reserve(self) -> int:
        return self.memory.cpu_reserve_bytes if self.hardware.is_cpu else self.memory.reserve_bytes

    def weights_per_gpu(self, tp: int, pp: int, expert_split: int = 0) -> int:
        """Weights on one GPU; routed experts split `expert_split` ways (EP size, or TP without EP)."""
        expert_split = expert_split or tp
        return math.ceil(
            self.weights.dense_bytes / (tp * pp)
            + self.weights.expert_bytes / (expert_split * pp)
            + self.draft_bytes / tp
        )

    def kv_available(self, tp: int, pp: int, expert_split: int = 0) -> int:
        """What is left for the KV cache on one GPU once weights and reserve are placed."""
        left = self.budget(tp, pp) - self.weights_per_gpu(tp, pp, expert_split) - self.reserve
        return left // self.kv_unit * self.kv_unit

    def context_capacity(self, tp: int, pp: int, expert_split: int = 0) -> int:
        """Longest single sequence whose KV cache fits next to the weights."""
        available = self.kv_available(tp, pp, expert_split)
        return kv.longest_sequence(self.shape, available, tp, pp, self.kv_dtype_bytes, self.swa_ratio)

    def concurrency(self, length: int, tp: int, pp: int, expert_split: int = 0) -> float:
        """Sequences of `length` tokens the KV cache holds at once."""
        available = self.kv_available(tp, pp, expert_split)
        return kv.concurrent_sequences(self.shape, available, length, tp, pp, self.kv_dtype_bytes, self.swa_ratio)


@dataclass(frozen=True)
class _Layout:
    tp: int
    pp: int
    context: int


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
    kv_shape, swa_ratio = _as_the_engine_caches(shape, engine, reasons)
    sizing = _Sizing(
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
    )
    target, explicit = _target_context(settings.max_model_len, shape, reasons)
    layout = _search(sizing, target, explicit)
    if layout is None:
        raise _does_not_fit(sizing, target, explicit, settings, model, engine, draft, suggest)
    tp, pp = layout.tp, layout.pp
    dp = pins.dp or hardware.total_count // (tp * pp)
    reasons[:0] = [_describe_model(model, weights), _describe_hardware(sizing, layout)]
    reasons.append(_explain_tp(sizing, layout))
    if pp > 1:
        reasons.append(_explain_pp(sizing, layout, target, explicit, warnings))
    reasons.append(_explain_dp(hardware, tp, pp, dp, bool(pins.dp), warnings))
    if speculation:
        reasons.append(_explain_speculation(speculation, draft_bytes, tp))
    ep = expert_parallel(shape, tp, dp, engine, pins.ep, reasons)
    # Without EP the experts are tensor-parallel, i.e. split TP ways like the rest.
    expert_split = ep if ep > 1 else tp
    concurrency = _concurrency(sizing, layout.context, settings.typical_request_tokens, tp, pp, expert_split)
    if settings.mem_fraction and settings.mem_fraction > 0.9 and not hardware.is_cpu:
        warnings.append(
            f"MEM_FRACTION={settings.mem_fraction} leaves only "
            f"{gib(int(hardware.memory_bytes * (1 - settings.mem_fraction)))} per GPU outside the "
            "engine's budget; long prompts or large batches may run out of memory."
        )
    kv_tokens = int(sizing.concurrency(layout.context, tp, pp, expert_split) * layout.context)
    reasons.append(_explain_context(layout.context, target, explicit, kv_tokens, concurrency, warnings))
    if not explicit:
        _warn_few_sequences(sizing, layout, concurrency, expert_split, warnings)
    weights_per_gpu = sizing.weights_per_gpu(tp, pp, expert_split)
    memory = MemoryPerGpu(
        budget_bytes=sizing.budget(tp, pp),
        weight_bytes=weights_per_gpu,
        reserve_bytes=sizing.reserve,
        kv_cache_bytes=max(0, sizing.kv_available(tp, pp, expert_split)),
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
        kv_bytes_per_token=kv.bytes_per_token(shape, sizing.kv_dtype_bytes),
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
        kv_cache_dtype=kv_dtype,
    )


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


# ---------------------------------------------------------------- layout search


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


def _search(sizing: _Sizing, target: int, explicit: bool) -> _Layout | None:
    """The first layout that holds `target` tokens; else (automatic context) the one with the most room."""
    layouts = candidate_layouts(sizing.shape, sizing.hardware, sizing.pins)
    if not layouts:
        return None
    for tp, pp in layouts:
        if sizing.context_capacity(tp, pp) >= target:
            return _Layout(tp, pp, target)
    if explicit:
        return None
    # An automatic context shorter than the model's: the fewest stages that give at least MIN_CONTEXT, and of
    # those the layout with the most room (max() keeps the first of equals: the smaller TP). More stages for
    # a little more context would cost every token the pipeline's latency.
    floor = min(MIN_CONTEXT, target)
    for stages in sorted({pp for _, pp in layouts}):
        capacity, tp, pp = max(
            ((sizing.context_capacity(tp, pp), tp, pp) for tp, pp in layouts if pp == stages),
            key=lambda row: row[0] // CONTEXT_STEP,
        )
        if capacity >= floor:
            return _Layout(tp, pp, max(floor, capacity // CONTEXT_STEP * CONTEXT_STEP))
    return None


# ---------------------------------------------------------------- when nothing fits


@dataclass(frozen=True)
class _Fix:
    """A change of settings that would make it fit, with the devices it implies."""

    text: str
    settings: Settings
    hardware: Hardware


def _does_not_fit(
    sizing: _Sizing,
    target: int,
    explicit: bool,
    settings: Settings,
    model: ModelInfo,
    engine: Engine,
    draft: ModelInfo | None,
    suggest: bool,
) -> DoesNotFitError:
    hardware = sizing.hardware
    needs = (
        f"{model.name} needs {gib(sizing.weights.total_bytes)} of weights plus KV cache for "
        f"{target if explicit else min(MIN_CONTEXT, target)} tokens"
    )
    if sizing.pins.described():
        needs += f" with {sizing.pins.described()}"
    if hardware.is_cpu:
        message = f"{needs}; the CPU path has {gib(sizing.budget(1, 1))} for it ({hardware.source})"
    else:
        message = (
            f"{needs}; {hardware.total_count}x {hardware.name} at {_fraction_shown(sizing, 1, 1)} give "
            f"{gib(sizing.budget(1, 1))} per GPU"
        )
    fixes = []
    if suggest:
        # Each kind of fix offers its alternatives in order of preference; the first that the whole planner
        # accepts (dtype, quantization, vendor, layout, not just memory) is named: a hint that would itself be
        # refused is no hint.
        for alternatives in _fix_kinds(sizing, target, explicit, settings, model):
            chosen = next((fix for fix in alternatives if _plans(fix, model, engine, draft)), None)
            if chosen:
                fixes.append(chosen.text)
    if fixes:
        hint = "try " + "; or ".join(fixes)
    elif hardware.is_cpu:
        hint = "use a smaller or quantized model, give the container more memory, or run on GPUs with the GPU image"
    else:
        hint = "no GPU in the catalog holds it; use a quantized checkpoint"
    return DoesNotFitError(message, hint)


def _plans(fix: _Fix, model: ModelInfo, engine: Engine, draft: ModelInfo | None) -> bool:
    try:
        make_plan(fix.settings, fix.hardware, model, engine, draft, suggest=False)
    except EntrypointError:
        return False
    return True


def _fix_kinds(sizing: _Sizing, target: int, explicit: bool, settings: Settings, model: ModelInfo) -> list[list[_Fix]]:
    """More GPUs of this kind, online FP8, a bigger GPU of the same vendor, a short context at 0.95.

    Counts are named only for GPUs the catalogue knows (hints use its names), and no GPU at all for the CPU
    path, whose image has no CUDA. GPU alternatives are filtered by memory first, which is cheap.
    """
    hardware = sizing.hardware
    spec = hardware.spec
    kinds: list[list[_Fix]] = []
    pinned = sizing.pins.described()
    if pinned:
        names = " and ".join(pin.split("=")[0] for pin in pinned.split(", "))
        free = replace(settings, tensor_parallel_size=None, pipeline_parallel_size=None, data_parallel_size=None)
        kinds.append([_Fix(f"unset {names} (the planner chooses the layout)", free, hardware)])
    if spec:
        why = f"the fewest {spec.name} GPUs that hold it"
        more = [_on_gpus(settings, spec, count, why) for count in (2, 4, 8, 16, 32, 64) if count > hardware.total_count]
        kinds.append([fix for fix in more if _fits(sizing, fix.hardware, target, explicit)])
    if not model.shape.quantization and not settings.quantization and not hardware.is_cpu:
        fp8 = estimate(model.weights, "bfloat16", online_fp8=True)
        text = f"QUANTIZATION=fp8 (weights shrink to {gib(fp8.total_bytes)})"
        kinds.append([_Fix(text, replace(settings, quantization="fp8"), hardware)])
    if not hardware.is_cpu:
        bigger = [_on_gpus(settings, row, hardware.total_count, "") for row in _bigger_gpus(hardware)]
        # A bigger GPU is only worth naming if it serves the full context.
        kinds.append([fix for fix in bigger if _fits(sizing, fix.hardware, target, True)])
    current = sizing.fraction(1, 1)
    if current < MAX_SUGGESTED_FRACTION:
        kinds.append(_more_memory(sizing, target, explicit, settings, model, current))
    return kinds


MAX_SUGGESTED_FRACTION = 0.95


def _more_memory(
    sizing: _Sizing, target: int, explicit: bool, settings: Settings, model: ModelInfo, current: float
) -> list[_Fix]:
    """The smallest MEM_FRACTION (in hundredths, up to 0.95) that holds it; else 0.95 with a short context."""
    hardware = sizing.hardware
    fixes = []
    for hundredths in range(math.floor(current * 100) + 1, round(MAX_SUGGESTED_FRACTION * 100) + 1):
        fraction = hundredths / 100
        if _search(replace(sizing, mem_fraction=fraction), target, explicit) is not None:
            text = f"MEM_FRACTION={fraction} (now {current:g}: less room for activations and CUDA graphs)"
            fixes.append(_Fix(text, replace(settings, mem_fraction=fraction), hardware))
            break
    context = min(MIN_CONTEXT, model.shape.max_position or MIN_CONTEXT)
    text = f"MEM_FRACTION=0.95 with MAX_MODEL_LEN={context} (little headroom: expect out-of-memory under load)"
    fixes.append(_Fix(text, replace(settings, mem_fraction=MAX_SUGGESTED_FRACTION, max_model_len=context), hardware))
    return fixes


def _on_gpus(settings: Settings, spec: GpuSpec, count: int, why: str) -> _Fix:
    """`count` GPUs of `spec` as SkyPilot gives them: up to GPUS_PER_NODE on one node, else whole nodes."""
    per_node = min(count, GPUS_PER_NODE)
    nodes = max(1, count // per_node)
    accelerators = Accelerators(spec, per_node)
    if nodes == 1:
        text = f"ACCELERATORS={spec.name}:{count}" + (f" ({why})" if why else "")
    else:
        text = (
            f"{nodes} nodes of ACCELERATORS={spec.name}:{GPUS_PER_NODE} ({count} GPUs{', ' + why if why else ''}; "
            f"skypilot/multinode.yaml with --num-nodes {nodes})"
        )
    return _Fix(
        text,
        replace(settings, accelerators=accelerators, skypilot_num_nodes=nodes),
        replace(from_accelerators(accelerators), nodes=nodes),
    )


def _bigger_gpus(hardware: Hardware) -> list[GpuSpec]:
    """The same family with more memory first (A100 -> A100-80GB), then the vendor's others, smallest first.

    Without a catalogue row (a GPU the catalogue lacks, a MIG slice) the vendor is taken to be NVIDIA, whose
    tools detected it.
    """
    spec = hardware.spec
    family = spec.name.split("-")[0] if spec else None
    vendor = spec.vendor if spec else "nvidia"
    candidates = [row for row in GPUS if row.vendor == vendor and row.memory_bytes > hardware.memory_bytes]
    return sorted(candidates, key=lambda row: (row.name.split("-")[0] != family, row.memory_mib))


def _fits(sizing: _Sizing, hardware: Hardware, target: int, explicit: bool) -> bool:
    """Memory alone, on other devices (the cheap first filter; `_plans` has the last word)."""
    return _search(replace(sizing, hardware=hardware), target, explicit) is not None


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


def _describe_hardware(sizing: _Sizing, layout: _Layout) -> str:
    hardware = sizing.hardware
    tp, pp = layout.tp, layout.pp
    budget = gib(sizing.budget(tp, pp))
    fraction = _fraction_shown(sizing, tp, pp)
    if hardware.is_cpu:
        return (
            f"hardware: cpu, {gib(hardware.memory_bytes)} ({hardware.source}); the engine may use {budget}, the "
            f"smaller of {fraction} of it and what is available now, {gib(sizing.reserve)} of it reserved for the "
            "engine's processes and activations."
        )
    nodes = f" on each of {hardware.nodes} nodes" if hardware.nodes > 1 else ""
    rules = sizing.memory
    startup = rules.startup_bytes(tp * pp, bool(hardware.spec and hardware.spec.nvlink))
    of = f"of the {gib(hardware.memory_bytes - startup)} free once the engine has started" if startup else "of it"
    inside = (
        f", {gib(sizing.reserve)} of it reserved for activations, CUDA graphs and NCCL"
        if sizing.reserve
        else "; activations, CUDA graphs and NCCL live outside it"
    )
    return (
        f"hardware: {hardware.count}x {hardware.name}{nodes}, {gib(hardware.memory_bytes)} each ({hardware.source}); "
        f"{fraction} ({rules.flag}) {of} leaves {budget} per device for weights and KV cache{inside}."
    )


def _fraction_shown(sizing: _Sizing, tp: int, pp: int) -> str:
    if sizing.mem_fraction is not None:
        return f"MEM_FRACTION={sizing.mem_fraction}"
    return f"the engine's own fraction {sizing.fraction(tp, pp):g}"


def _explain_tp(sizing: _Sizing, layout: _Layout) -> str:
    tp, pp = layout.tp, layout.pp
    if sizing.pins.tp:
        return f"tp={tp}: set by TENSOR_PARALLEL_SIZE."
    smaller = [size for size in valid_tensor_parallel_sizes(sizing.shape, tp) if size < tp]
    why = "; ".join(
        f"TP={size} would need {gib(sizing.weights_per_gpu(size, pp))} of weights per GPU"
        f" and leave room for {min(sizing.context_capacity(size, pp), layout.context)} tokens"
        for size in smaller
    )
    heads = (
        f"it divides the {sizing.shape.attention_heads} attention heads and suits the {sizing.shape.kv_heads} KV heads"
    )
    return f"tp={tp}: {heads}" + (f"; {why}." if why else "; the smallest size that fits.")


def _explain_pp(sizing: _Sizing, layout: _Layout, target: int, explicit: bool, warnings: list[str]) -> str:
    hardware = sizing.hardware
    if sizing.pins.pp:
        return f"pp={layout.pp}: set by PIPELINE_PARALLEL_SIZE ({sizing.shape.layers} layers in {layout.pp} stages)."
    if hardware.nodes == 1:
        return (
            f"pp={layout.pp}: no tensor-parallel size alone (powers of two that suit the heads, at most "
            f"{hardware.count}) holds the model with its context, so its {sizing.shape.layers} layers are split "
            f"into {layout.pp} pipeline stages of TP={layout.tp}."
        )
    one_node = _search(replace(sizing, hardware=replace(hardware, nodes=1)), target, explicit)
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


def _concurrency(sizing: _Sizing, context: int, typical: int, tp: int, pp: int, expert_split: int) -> Concurrency:
    typical = min(typical, context)
    return Concurrency(
        at_max_model_len=round(sizing.concurrency(context, tp, pp, expert_split), 2),
        typical_request_tokens=typical,
        at_typical=round(sizing.concurrency(typical, tp, pp, expert_split), 2),
    )


def _explain_context(
    context: int, target: int, explicit: bool, kv_tokens: int, concurrency: Concurrency, warnings: list[str]
) -> str:
    if explicit:
        source = "set by MAX_MODEL_LEN"
    elif context < target:
        source = f"the model allows {target} but only {context} fit next to the weights"
        warnings.append(
            f"context reduced to {context} tokens (model maximum {target}); add GPUs or quantize "
            "for more, or set MAX_MODEL_LEN"
        )
    else:
        source = "the model's maximum"
    return (
        f"max_model_len={context}: {source}; the KV cache holds {kv_tokens} tokens per replica: "
        f"{concurrency.at_max_model_len:g} sequence(s) of {context} tokens at once, or "
        f"{concurrency.at_typical:g} of {concurrency.typical_request_tokens} (TYPICAL_REQUEST_TOKENS)."
    )


GOOD_CONCURRENCY = 4  # full-length sequences at once below which an automatic context is a poor default


def _warn_few_sequences(
    sizing: _Sizing, layout: _Layout, concurrency: Concurrency, expert_split: int, warnings: list[str]
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
