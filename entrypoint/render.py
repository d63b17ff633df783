"""Plans as text for people and as JSON for pipelines (pure)."""

from __future__ import annotations

import json
from typing import Any

from .plan import Plan
from .units import GIB


def as_json(plan: Plan, extra: dict[str, Any] | None = None) -> str:
    data = plan.to_json()
    data.update(extra or {})
    return json.dumps(data, indent=2, sort_keys=False)


def as_table(plan: Plan) -> str:
    memory = plan.memory_per_gpu
    devices = (
        ("CPU", f"memory {plan.gpu_memory_bytes / GIB:.1f} GiB")
        if plan.on_cpu
        else (
            "GPUs",
            f"{plan.gpu_count}x {plan.gpu_name}, {plan.gpu_memory_bytes / GIB:.1f} GiB each"
            + (f", {plan.nodes} nodes" if plan.nodes > 1 else ""),
        )
    )
    rows = [
        ("engine", plan.engine),
        ("model", plan.model),
        devices,
        ("parallelism", f"TP={plan.tp}  PP={plan.pp}  DP={plan.dp}  EP={plan.ep}"),
        ("context", f"{plan.max_model_len} tokens"),
        *_concurrency_row(plan),
        ("dtype", plan.dtype),
        ("quantization", plan.quantization or "none"),
        ("weights", f"{plan.weight_bytes / GIB:.1f} GiB in all"),
        ("KV per token", f"{plan.kv_bytes_per_token / 1024:.1f} KiB (whole model)" if plan.kv_cache else "none"),
    ]
    if plan.speculative:
        spec = plan.speculative
        rows.append(
            (
                "speculative",
                f"{spec.method}"
                + (f" with {spec.draft_model}" if spec.draft_model else "")
                + (f", {spec.num_tokens} tokens" if spec.num_tokens else ""),
            )
        )
    lines = ["plan"] + [f"  {name:<14}{value}" for name, value in rows]
    lines += ["", "memory (CPU)" if plan.on_cpu else "memory per GPU"]
    owner = "MEM_FRACTION" if plan.mem_fraction_set else "the engine's own"
    fraction = f"{owner} {plan.mem_fraction:g}"
    sizes = [
        ("usable", memory.budget_bytes, f"  ({fraction}{', at most what is available' if plan.on_cpu else ''})"),
        ("weights", memory.weight_bytes, ""),
    ]
    if memory.reserve_bytes:
        why = ", ".join(f"{name} {size / GIB:.2f}" for name, size in memory.reserve_terms)
        sizes.append(("reserve", memory.reserve_bytes, f"  ({why})"))
    kept = f"  (~{memory.kv_tokens:,} tokens)" if plan.kv_cache else "  (none: bidirectional attention)"
    sizes.append(("KV cache", memory.kv_cache_bytes, kept))
    lines += [f"  {name:<14}{size / GIB:>8.1f} GiB{note}" for name, size, note in sizes]
    lines += ["", "why"] + [f"  - {reason}" for reason in plan.reasons]
    if plan.warnings:
        lines += ["", "warnings"] + [f"  ! {warning}" for warning in plan.warnings]
    return "\n".join(lines)


def _concurrency_row(plan: Plan) -> list[tuple[str, str]]:
    concurrency = plan.concurrency
    if concurrency is None:
        return []
    return [
        (
            "concurrency",
            f"{concurrency.at_max_model_len:g} at {plan.max_model_len} tokens, "
            f"{concurrency.at_typical:g} at {concurrency.typical_request_tokens} (per replica)",
        )
    ]
