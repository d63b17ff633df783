"""What the engine's own /metrics says about use, and what that use costs (pure).

The supervisor reads the engine's Prometheus text every few seconds; this
module turns one scrape into `Usage` (requests finished so far, requests in
flight, tokens generated so far) with prometheus_client's parser, and turns
usage plus time plus a GPU price into money. Metric names differ per engine
and live in `Engine.metric_names`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engines.base import MetricNames


@dataclass(frozen=True)
class Usage:
    requests: float
    running: float
    generation_tokens: float

    def busier_than(self, earlier: Usage | None) -> bool:
        """Any request in flight, or any finished since `earlier`."""
        if self.running > 0:
            return True
        return (
            earlier is None or self.requests != earlier.requests or self.generation_tokens != earlier.generation_tokens
        )


def read_usage(text: str, names: MetricNames) -> Usage:
    """Sum each family over all its label sets (models, streaming or not, finish reasons)."""
    # Imported here: only supervised mode reads metrics, so `plan` and exec need no prometheus_client.
    from prometheus_client.parser import text_string_to_metric_families

    totals = {names.requests: 0.0, names.running: 0.0, names.generation_tokens: 0.0}
    for family in text_string_to_metric_families(text):
        if family.name not in totals:
            continue
        for sample in family.samples:
            # Counters also expose `_created` timestamps; only the value samples count.
            if sample.name in (family.name, f"{family.name}_total"):
                totals[family.name] += sample.value
    return Usage(
        requests=totals[names.requests],
        running=totals[names.running],
        generation_tokens=totals[names.generation_tokens],
    )


def read_kv_tokens(text: str, names: MetricNames) -> int | None:
    """The KV cache the engine allocated, in tokens (the smallest over replicas and ranks); None before it says."""
    from prometheus_client.parser import text_string_to_metric_families

    found = []
    for family in text_string_to_metric_families(text):
        if family.name != names.kv_tokens:
            continue
        for sample in family.samples:
            raw = sample.labels.get(names.kv_tokens_label, "") if names.kv_tokens_label else str(sample.value)
            try:
                value = float(raw)
            except ValueError:
                continue
            if value > 0:
                found.append(int(value))
    return min(found) if found else None


KV_GAP_TO_REPORT = 0.15  # a plan off by more than this asks for a report


def kv_check(planned: int, allocated: int) -> tuple[str, bool]:
    """The start-up line comparing the plan with the engine, and whether the gap is worth a report."""
    gap = (allocated - planned) / planned if planned else 0.0
    line = f"kv cache: planned {planned:,} tokens, engine allocated {allocated:,} ({gap:+.1%})"
    return line, abs(gap) > KV_GAP_TO_REPORT


@dataclass(frozen=True)
class Cost:
    hourly_usd: float  # all GPUs of this deployment
    running_usd: float
    per_1k_generated_tokens_usd: float | None  # None until a token was generated


def cost(gpu_hourly_usd: float, gpu_count: int, seconds: float, generated_tokens: float) -> Cost:
    hourly = gpu_hourly_usd * gpu_count
    running = hourly * seconds / 3600
    per_1k = running / (generated_tokens / 1000) if generated_tokens > 0 else None
    return Cost(hourly_usd=hourly, running_usd=running, per_1k_generated_tokens_usd=per_1k)
