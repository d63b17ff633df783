"""`fit`: every catalogue shape that holds the model at its full context, with the plan for each (pure).

Answers "what should I rent?" before `sky launch`: 1, 2, 4 and 8 GPUs of each GPU this image runs on, and two
nodes of eight where one node of that GPU does not hold it, each planned in full by `make_plan` (dtype,
quantization, layout, memory) with the user's other settings. A shape is listed when it serves the full
context (MAX_MODEL_LEN, else the model's maximum). Nothing is launched; the user chooses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .engines.base import Engine
from .errors import DoesNotFitError, EntrypointError
from .fixes import on_gpus
from .hardware.catalog import GPUS, GpuSpec
from .model.info import ModelInfo
from .plan import Plan, make_plan
from .sizing import GPUS_PER_NODE, MIN_CONTEXT
from .supervise.prices import SOURCE, gpu_price

if TYPE_CHECKING:  # pure: the settings module is the configuration edge
    from .settings import Settings

# (GPUs per node, nodes): one machine of each common size, and two full nodes.
SHAPES = ((1, 1), (2, 1), (4, 1), (8, 1), (GPUS_PER_NODE, 2))


@dataclass(frozen=True)
class Fit:
    gpu: GpuSpec
    per_node: int
    nodes: int
    plan: Plan

    @property
    def gpus(self) -> int:
        return self.per_node * self.nodes

    @property
    def usd_per_hour(self) -> float | None:
        price = gpu_price(None, self.gpu.name)  # the typical spot price: fit compares GPUs, not your bill
        return None if price is None else round(price.usd_per_gpu_hour * self.gpus, 4)

    @property
    def accelerators(self) -> str:
        return f"{self.gpu.name}:{self.per_node}"

    def to_json(self) -> dict[str, Any]:
        concurrency = self.plan.concurrency
        return {
            "accelerators": self.accelerators,
            "nodes": self.nodes,
            "gpus": self.gpus,
            "tp": self.plan.tp,
            "pp": self.plan.pp,
            "dp": self.plan.dp,
            "ep": self.plan.ep,
            "max_model_len": self.plan.max_model_len,
            "kv_cache": self.plan.kv_cache,
            "kv_tokens": self.plan.memory_per_gpu.kv_tokens,
            "concurrency_per_replica": None if concurrency is None else concurrency.at_max_model_len,
            "concurrency_per_replica_at_typical": None if concurrency is None else concurrency.at_typical,
            "usd_per_hour": self.usd_per_hour,
        }


def fits(settings: Settings, model: ModelInfo, engine: Engine, draft: ModelInfo | None = None) -> list[Fit]:
    """The shapes that serve the full context, cheapest first (typical price, then fewer GPUs); unpriced last."""
    target = settings.max_model_len or model.shape.max_position or MIN_CONTEXT
    found: list[Fit] = []
    for gpu in GPUS:  # make_plan refuses the GPUs this engine's image does not run on
        for per_node, nodes in SHAPES:
            if nodes > 1 and any(fit.gpu == gpu for fit in found):
                continue  # one node of this GPU holds it: more nodes only add pipeline stages (plan warns)
            plan = _plan_on(settings, model, engine, draft, gpu, per_node, nodes)
            if plan is not None and plan.max_model_len >= target:
                found.append(Fit(gpu, per_node, nodes, plan))
    return sorted(found, key=lambda fit: (fit.usd_per_hour is None, fit.usd_per_hour or 0.0, fit.gpus, fit.gpu.name))


def _plan_on(
    settings: Settings,
    model: ModelInfo,
    engine: Engine,
    draft: ModelInfo | None,
    gpu: GpuSpec,
    per_node: int,
    nodes: int,
) -> Plan | None:
    variant, hardware = on_gpus(settings, gpu, per_node, nodes)
    try:
        return make_plan(variant, hardware, model, engine, draft, suggest=False)
    except EntrypointError:
        return None


def nothing_fits(model: ModelInfo, engine: Engine) -> DoesNotFitError:
    return DoesNotFitError(
        f"no catalogue shape up to 2 nodes of {GPUS_PER_NODE} GPUs holds {model.name} at its full context with "
        f"{engine.name}",
        "set MAX_MODEL_LEN or QUANTIZATION=fp8 and run fit again, or plan more nodes with `plan`",
    )


def as_table(model: ModelInfo, engine: Engine, found: list[Fit]) -> str:
    context = found[0].plan.max_model_len
    typical = found[0].plan.concurrency.typical_request_tokens if found[0].plan.concurrency else context
    header = (
        f"{'ACCELERATORS':<16}{'nodes':>6}{'TP':>4}{'PP':>4}{'DP':>4}{'EP':>4}{'KV tokens':>12}"
        f"{f'at {context}':>12}{f'at {typical}':>10}{'$/h':>9}"
    )
    lines = [f"shapes that hold {model.name} at {context} tokens with {engine.name}, cheapest first", "", header]
    for fit in found:
        concurrency = fit.plan.concurrency
        kv_tokens = f"{fit.plan.memory_per_gpu.kv_tokens:,}" if fit.plan.kv_cache else "none"
        price = f"{fit.usd_per_hour:.2f}" if fit.usd_per_hour is not None else "-"
        lines.append(
            f"{fit.accelerators:<16}{fit.nodes:>6}{fit.plan.tp:>4}{fit.plan.pp:>4}{fit.plan.dp:>4}{fit.plan.ep:>4}"
            f"{kv_tokens:>12}"
            f"{_total(concurrency.at_max_model_len if concurrency else None, fit.plan.dp):>12}"
            f"{_total(concurrency.at_typical if concurrency else None, fit.plan.dp):>10}{price:>9}"
        )
    lines += [
        "",
        "at N: requests of N tokens the KV caches of all replicas hold at once"
        + ("." if found[0].plan.kv_cache else f"; none: {engine.name} keeps no KV cache for this model."),
        f"$/h: {SOURCE}, for the GPUs alone; '-': no typical price.",
    ]
    return "\n".join(lines)


def _total(per_replica: float | None, replicas: int) -> str:
    return "-" if per_replica is None else f"{per_replica * replicas:.1f}"
